/*
 * The daemon's snapshots: directories under [paths] state_dir/snapshots,
 * one per name, each whole or absent (written under a temporary name,
 * fsynced, renamed).  A directory holds manifest.json (format version,
 * kevd version, the VM's configuration, the kernel's identity, the sizes
 * and hashes of the other files) and the VMM's files (vm.h: state, pages,
 * memory).  Everything here opens or writes files: workers only.
 * docs/snapshots.md describes the format.
 */
#ifndef KEVD_SNAPSHOTS_H
#define KEVD_SNAPSHOTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "pager/image.h"
#include "vmm/vm.h"

#define KEVD_SNAPSHOT_FORMAT 1
#define KEVD_SNAPSHOT_MANIFEST "manifest.json"

struct kevd_snapstore;

/* A snapshot read and checked for a restore. */
struct kevd_snapshot {
	json_t *manifest;                  /* owned; the strings below point into it */
	const char *name;
	const char *kernel, *initrd, *cmdline;  /* initrd, cmdline NULL = none */
	uint64_t memory_mib;
	unsigned vcpus;
	enum kevd_boot_protocol protocol;
	bool pc;                           /* the VM was a PC (its manifest's vm.pc): the shape of a spare for it */
	struct kevd_image_identity kernel_id;
	int memory_fd;                     /* owned until handed to the VM; -1 */
	int dirfd;                         /* owned: its directory (for its working set) */
	char *memory_path;                 /* owned */
	struct kevd_image_page *pages;     /* owned until handed to the VM */
	size_t npages;
	void *state;                       /* owned */
	size_t state_len;
};

/* Opens (creating it if needed) the snapshot directory PATH. */
int kevd_snapstore_new(const char *path, struct kevd_snapstore **out, struct kevd_error *err);
void kevd_snapstore_free(struct kevd_snapstore *st);
const char *kevd_snapstore_path(const struct kevd_snapstore *st);

/* Writes the paused VM's snapshot NAME; -EEXIST if there is one.  On
 * failure nothing of it is left.  *INFO gets the snapshot's summary. */
int kevd_snapstore_take(struct kevd_snapstore *st, const char *name, struct kevd_vm *vm, json_t **info,
			struct kevd_error *err);
/* Reads and checks snapshot NAME: -ENOENT if there is none; -EBADMSG
 * (truncated, corrupted, not kevd's, a format this kevd does not read)
 * with a message naming the file and what is wrong. */
int kevd_snapstore_load(struct kevd_snapstore *st, const char *name, struct kevd_snapshot **out,
			struct kevd_error *err);
/* The same for the snapshot directory at PATH, outside any store (kevd
 * run --restore): one kevd wrote, perhaps copied or renamed since, so its
 * manifest's name need not be the directory's.  Messages call the
 * snapshot by the directory's last component. */
int kevd_snapshot_load_dir(const char *path, struct kevd_snapshot **out, struct kevd_error *err);
void kevd_snapshot_free(struct kevd_snapshot *s);
/* Summaries of every snapshot (a JSON array, sorted by name), or of one. */
int kevd_snapstore_list(struct kevd_snapstore *st, json_t **out, struct kevd_error *err);
int kevd_snapstore_info(struct kevd_snapstore *st, const char *name, json_t **out, struct kevd_error *err);
int kevd_snapstore_delete(struct kevd_snapstore *st, const char *name, struct kevd_error *err);

#endif
