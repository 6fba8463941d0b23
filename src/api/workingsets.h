/*
 * The daemon's working sets (docs/pager.md, "Working set"): the lists
 * beside the snapshots (state_dir/snapshots/NAME/workingset), those of the
 * kernels' boots (state_dir/workingsets/DIGEST, DIGEST the image cache's
 * id of the kernel and initrd), their file format, and the recordings
 * under way until they are written.
 *
 * A new VM asks what to do about its list (kevd_wsstore_plan, on the
 * create's worker): prefetch it if it reads back whole, else record it,
 * unless another VM records it already (then neither).  A recording is
 * kept here once its VM is made (kevd_wsstore_track); the daemon's
 * once-a-second timer (kevd_wsstore_poll) hands every one that ended to a
 * worker, which writes the list atomically (a temporary file, fsync,
 * rename, fsync of the directory).  A list that is missing or does not
 * read back whole and matching its hash means no prefetch and a new
 * recording, never a failed create.
 */
#ifndef KEVD_WORKINGSETS_H
#define KEVD_WORKINGSETS_H

#include <stddef.h>
#include <stdint.h>

#include "api/jobs.h"
#include "common/error.h"
#include "pager/pager.h"

/* A snapshot's list, in its directory. */
#define KEVD_WORKINGSET_FILE "workingset"
/* Its temporary name while written. */
#define KEVD_WORKINGSET_TMP ".workingset.tmp"

/* The file: this header, then count little-endian u64 guest page
 * numbers in the order the recording loaded them, bit 63 set on those
 * the recorded guest wrote (KEVD_PAGER_WS_WRITTEN; version 2).  Version 1
 * files (no flags) are read as well. */
#define KEVD_WORKINGSET_MAGIC "KEVDWSET"
#define KEVD_WORKINGSET_VERSION 2
#define KEVD_WORKINGSET_VERSION_MIN 1
struct kevd_workingset_header {
	char magic[8];           /* KEVD_WORKINGSET_MAGIC, no terminator */
	uint32_t version;        /* KEVD_WORKINGSET_VERSION */
	uint32_t header_bytes;   /* sizeof(struct kevd_workingset_header), 32 */
	uint64_t count;          /* pages that follow */
	uint64_t hash;           /* kevd_hash64() of their count * 8 bytes */
};

struct kevd_wsstore;
struct kevd_wslist;  /* one list a VM records: where it goes, its recording */

enum kevd_ws_plan {
	KEVD_WS_NOTHING,   /* another VM records this list now (or no memory) */
	KEVD_WS_PREFETCH,  /* the list was read: prefetch it */
	KEVD_WS_RECORD,    /* record it: the list is reserved for this VM */
};

/* The store, with DIR (made if needed) for the kernels' lists; NULL, or a
 * directory kevd cannot make, leaves boots without working sets (said
 * so).  Fails only without memory. */
int kevd_wsstore_new(const char *dir, struct kevd_wsstore **out, struct kevd_error *err);
/* Drops the recordings not written yet; no job of the store may be
 * pending. */
void kevd_wsstore_free(struct kevd_wsstore *st);
/* The kernels' lists' directory, or -1, and its path ("" without). */
int kevd_wsstore_dirfd(const struct kevd_wsstore *st);
const char *kevd_wsstore_path(const struct kevd_wsstore *st);

/* Worker: what a new VM does about the list NAME in directory DIRFD (a
 * snapshot's, or kevd_wsstore_dirfd()); PATH names the file and WHAT its
 * owner ("vm 'a': snapshot 'x'") in messages.  PREFETCH: *GFNS (malloc'd)
 * and *N hold it.  RECORD: *LIST is reserved for the VM, for
 * kevd_wsstore_track() or kevd_wsstore_drop(). */
enum kevd_ws_plan kevd_wsstore_plan(struct kevd_wsstore *st, int dirfd, const char *name, const char *path,
				    const char *what, uint64_t **gfns, size_t *n, struct kevd_wslist **list);
/* Loop: keeps LIST until REC (a reference, taken) ends, then writes it. */
void kevd_wsstore_track(struct kevd_wsstore *st, struct kevd_wslist *list, struct kevd_pager_recording *rec);
/* Any thread: gives up a reserved LIST (its VM was not made). */
void kevd_wsstore_drop(struct kevd_wsstore *st, struct kevd_wslist *list);
/* Loop, once a second: a job on JOBS writes each list whose recording
 * ended (an empty one is dropped: the next VM records again). */
void kevd_wsstore_poll(struct kevd_wsstore *st, struct kevd_jobs *jobs);

/* The file NAME in DIRFD: -ENOENT if there is none; -EBADMSG when it is
 * not a whole list kevd wrote.  The messages say what is wrong with it,
 * not which file it is. */
int kevd_wsfile_read(int dirfd, const char *name, uint64_t **gfns, size_t *n, struct kevd_error *err);
/* Writes GFNS as NAME in DIRFD, atomically. */
int kevd_wsfile_write(int dirfd, const char *name, const uint64_t *gfns, size_t n, struct kevd_error *err);

#endif
