/*
 * The image cache: one lazily filled copy of each kernel image, shared by
 * every VM of the process that boots it.
 *
 * An entry belongs to one image identity (device, inode, size, mtime and
 * ctime): a file replaced or rewritten is a new identity, so new VMs get a
 * new entry while running VMs keep theirs.  It holds
 *   - a memfd with the image's guest pages laid out in guest-physical order
 *     (the extents one after the other), filled page run by page run as
 *     faults need them, never written after it is filled;
 *   - the page-state table of those pages (pagestate.h), shared by the VMs,
 *     so that a page is read from the file exactly once across all of them;
 *   - a bitmap of the filled pages that a fault reads without a lock.
 * Guests map the memfd MAP_PRIVATE, registered with userfaultfd for missing
 * pages only: a page not filled yet is a hole, whose fault comes to a
 * pager thread; a filled page is the kernel's to map, at page-cache speed
 * and with its fault-around, without a round trip to kevd.  A guest write
 * copies the page privately.  Nothing maps the memfd shared: the cache is
 * written only by kevd_cached_image_fill(), whole pages at a time.
 *
 * Entries are counted by their VMs; an unused entry is kept for keep_s
 * seconds and while the unused entries together hold at most max_bytes,
 * then freed by kevd_imagecache_sweep() (oldest first).
 */
#ifndef KEVD_CACHE_H
#define KEVD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "pager/image.h"
#include "pager/pagestate.h"

#define KEVD_IMAGECACHE_DEFAULT_KEEP_S 60
#define KEVD_IMAGECACHE_DEFAULT_MAX_MIB 1024

struct kevd_imagecache;
struct kevd_cached_image;

/* Called by the filling thread after every fill (tests count reads). */
typedef void (*kevd_imagecache_fill_fn)(void *arg, uint64_t first_gfn, size_t npages);

struct kevd_imagecache_config {
	unsigned keep_s;            /* seconds an unused entry is kept */
	uint64_t max_bytes;         /* resident bytes of unused entries kept at most */
	unsigned stripes;           /* of each entry's page-state table; 0 = default */
	kevd_imagecache_fill_fn on_fill;
	void *cb_arg;
};

/* One entry, as kevd_imagecache_list() shows it. */
struct kevd_cached_image_info {
	const char *path;           /* valid during the callback only */
	const char *initrd;         /* the initrd that is part of the image, or NULL; the same */
	const char *snapshot;       /* a restore's: the snapshot memory file over it, or NULL; the same */
	char id[17];                /* hex digest of the identity, stable for the entry */
	struct kevd_image_identity identity;
	uint64_t image_pages;
	uint64_t pages_filled;
	uint64_t fills;             /* fill operations (one file read each) */
	uint64_t bytes_read;
	uint64_t fill_failures;
	unsigned vms;               /* VMs holding it */
	uint64_t resident_bytes;    /* memory the memfd holds */
	double unused_s;            /* seconds since the last VM let go; 0 while in use */
	bool failed;                /* a fill failed: no new VM gets this entry */
};

/* Default configuration: keep 60 s, 1 GiB. */
void kevd_imagecache_config_default(struct kevd_imagecache_config *cfg);
int kevd_imagecache_new(const struct kevd_imagecache_config *cfg, struct kevd_imagecache **out,
			struct kevd_error *err);
/* Frees the cache and every entry; no VM may hold one any more. */
void kevd_imagecache_free(struct kevd_imagecache *c);
/* Changes keep_s and max_bytes (a configuration reload) and sweeps. */
void kevd_imagecache_reconfigure(struct kevd_imagecache *c, unsigned keep_s, uint64_t max_bytes);

/* Whether this kernel lets kevd share images: memfd, userfaultfd on a
 * private mapping of it, and no huge pages forced on shared memory.  Probed once; WHY says what is
 * missing when it returns false. */
bool kevd_imagecache_supported(struct kevd_error *why);

/* The entry for IMG's identity, created (empty) if there is none usable; a
 * reference the caller gives back with kevd_imagecache_release(). */
int kevd_imagecache_acquire(struct kevd_imagecache *c, struct kevd_image *img,
			    struct kevd_cached_image **out, struct kevd_error *err);
void kevd_imagecache_release(struct kevd_cached_image *e);
/* Frees the unused entries past their keep time or beyond max_bytes. */
void kevd_imagecache_sweep(struct kevd_imagecache *c);
/* Calls FN for every entry, under the cache's lock (FN must not call into
 * the cache); sweeps first.  Returns the number of entries. */
size_t kevd_imagecache_list(struct kevd_imagecache *c,
			    void (*fn)(void *arg, const struct kevd_cached_image_info *info), void *arg);

/* A copy of every entry's info (paths copied too), for a caller that
 * renders them outside the cache's lock; free with
 * kevd_imagecache_snapshot_free().  NULL when out of memory. */
struct kevd_cached_image_info *kevd_imagecache_snapshot(struct kevd_imagecache *c, size_t *n);
void kevd_imagecache_snapshot_free(struct kevd_cached_image_info *infos, size_t n);

/* ---- for the pager ---- */

struct kevd_image *kevd_cached_image_image(const struct kevd_cached_image *e);
int kevd_cached_image_memfd(const struct kevd_cached_image *e);
struct kevd_pagestate *kevd_cached_image_states(const struct kevd_cached_image *e);
/* The memfd offset of image page GFN. */
uint64_t kevd_cached_image_offset(const struct kevd_cached_image *e, uint64_t gfn);
/* Whether GFN's page is filled (no lock; acquire). */
bool kevd_cached_image_filled(const struct kevd_cached_image *e, uint64_t gfn);
/* Fills the NPAGES pages from GFN, claimed (LOADING) by the caller, from
 * the file into the memfd, through BUF (NPAGES pages), and marks them
 * filled; the caller publishes their state words.  *BYTES_READ gets the
 * file bytes read. */
int kevd_cached_image_fill(struct kevd_cached_image *e, uint64_t gfn, size_t npages, void *buf,
			   uint64_t *bytes_read, struct kevd_error *err);
/* Records a failed fill: the entry takes no new VM, and OUT of
 * kevd_cached_image_failure() is ERR's message for the first one. */
void kevd_cached_image_fail(struct kevd_cached_image *e, const struct kevd_error *err);
void kevd_cached_image_failure(struct kevd_cached_image *e, struct kevd_error *out);

#endif
