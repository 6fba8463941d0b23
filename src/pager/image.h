/*
 * The kernel image model: an ELF file validated once at open and described
 * as the pager needs it.  PT_LOAD segments are listed by guest-physical
 * address (p_paddr); a page's content is whatever the file backs it with up
 * to p_filesz and zeroes up to p_memsz, with no assumption that p_offset and
 * p_paddr are congruent modulo the page size.  The image keeps its file open
 * so that pages can be read long after the open; a file truncated or
 * rewritten after the open is detected when a page is read.
 */
#ifndef KEVD_IMAGE_H
#define KEVD_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/types.h"

struct kevd_image;

struct kevd_image_segment {
	unsigned phdr_index;  /* index of the PT_LOAD in the program headers */
	kevd_gpa_t paddr;     /* p_paddr */
	uint64_t vaddr;       /* p_vaddr */
	uint64_t offset;      /* p_offset */
	uint64_t filesz;      /* p_filesz */
	uint64_t memsz;       /* p_memsz */
	uint32_t flags;       /* p_flags (PF_R/PF_W/PF_X) */
	bool flat;            /* the initrd's bytes (kevd_image_add_flat), not a PT_LOAD */
	uint64_t first_gfn;   /* first guest page the segment touches */
	uint64_t end_gfn;     /* one past its last page */
};

/* A maximal run of guest pages backed by the image (segments that share or
 * abut pages merge into one extent). */
struct kevd_image_extent {
	uint64_t first_gfn;
	uint64_t end_gfn;
};

enum kevd_image_class { KEVD_IMAGE_ELF64 = 64, KEVD_IMAGE_ELF32 = 32 };

/* Opens and validates PATH.  On failure the message names the file and the
 * offending header. */
int kevd_image_open(const char *path, struct kevd_image **out, struct kevd_error *err);
/* The same for a file already open (the caller resolved it, e.g. beneath an
 * image directory); takes FD in all cases, PATH only names it in messages. */
int kevd_image_open_fd(int fd, const char *path, struct kevd_image **out, struct kevd_error *err);
/* Another holder of IMG (the image cache keeps the image of its entry
 * after the VM that opened it is gone); each holder calls
 * kevd_image_free() once, the last one frees. */
struct kevd_image *kevd_image_ref(struct kevd_image *img);
void kevd_image_free(struct kevd_image *img);

/* What makes two opens the same file with the same content: a file
 * rewritten in place changes its ctime even when its mtime is put back. */
struct kevd_image_identity {
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
	/* The initrd's, when the image carries one (kevd_image_add_flat); all
	 * 0 without. */
	uint64_t flat_dev, flat_ino, flat_size, flat_gpa;
	int64_t flat_mtime_ns, flat_ctime_ns;
	/* The snapshot memory's (kevd_image_add_overlay); all 0 without. */
	uint64_t ovl_dev, ovl_ino, ovl_size;
	int64_t ovl_mtime_ns, ovl_ctime_ns;
};

void kevd_image_identity(const struct kevd_image *img, struct kevd_image_identity *id);
bool kevd_image_identity_equal(const struct kevd_image_identity *a, const struct kevd_image_identity *b);
/* A 64-bit digest of the identity in 16 hex digits: the image cache's id
 * of its entry, and the name of the identity's boot working set. */
void kevd_image_identity_digest(const struct kevd_image_identity *id, char out[17]);

const char *kevd_image_path(const struct kevd_image *img);
enum kevd_image_class kevd_image_class(const struct kevd_image *img);
uint64_t kevd_image_file_size(const struct kevd_image *img);

size_t kevd_image_segment_count(const struct kevd_image *img);
const struct kevd_image_segment *kevd_image_segment(const struct kevd_image *img, size_t i);
/* The segment whose pages include GFN (the first one if two share it). */
const struct kevd_image_segment *kevd_image_segment_of(const struct kevd_image *img, uint64_t gfn);

size_t kevd_image_extent_count(const struct kevd_image *img);
/* The extent holding GFN, or NULL: the image's pages are the extents'. */
const struct kevd_image_extent *kevd_image_extent_of(const struct kevd_image *img, uint64_t gfn);
const struct kevd_image_extent *kevd_image_extent(const struct kevd_image *img, size_t i);
/* Number of distinct guest pages backed by the image. */
uint64_t kevd_image_pages(const struct kevd_image *img);
bool kevd_image_has_page(const struct kevd_image *img, uint64_t gfn);

/* e_entry translated to guest-physical: e_entry - (p_vaddr - p_paddr) of the
 * segment whose virtual range holds it; an e_entry that is already inside a
 * segment's physical range only (Linux's vmlinux) is taken as physical. */
kevd_gpa_t kevd_image_entry(const struct kevd_image *img);
uint64_t kevd_image_elf_entry(const struct kevd_image *img);

/* Xen PVH entry (ELF note "Xen", type 18), if present. */
bool kevd_image_pvh_entry(const struct kevd_image *img, kevd_gpa_t *entry);
/* Whether the image carries a "Linux" ELF note, as every vmlinux does. */
bool kevd_image_is_linux(const struct kevd_image *img);
/* Multiboot2 header within the first 32 KiB, if present. */
bool kevd_image_multiboot2(const struct kevd_image *img, uint64_t *file_offset);

/* Adds the flat file FD (an initrd, SIZE bytes, PATH naming it) as one
 * more segment of the image at guest-physical GPA (page aligned), so that
 * the pager loads it lazily like the kernel's pages; takes FD in all
 * cases.  At most one, added before the image is shared; it must not
 * overlap a segment.  Its pages are image pages from then on. */
int kevd_image_add_flat(struct kevd_image *img, int fd, const char *path, kevd_gpa_t gpa, uint64_t size,
			struct kevd_error *err);
/* The flat file's path, or NULL. */
const char *kevd_image_flat_path(const struct kevd_image *img);

/* One page of a snapshot's memory file: its guest page and the
 * kevd_hash64() of its 4096 bytes, which are at file offset GFN * 4096. */
struct kevd_image_page {
	uint64_t gfn;
	uint64_t hash;
};

/* Makes IMG the memory of a restored VM: every page of RAM (the extents,
 * sorted, not overlapping) is an image page from then on, read from the
 * snapshot file FD (PATH names it) if PAGES lists it, else from the
 * kernel's segments (or the flat part) as before, else zero.  A page read
 * from FD is checked against its hash: a mismatch fails its load (EBADMSG)
 * naming the file.  Takes FD and PAGES (sorted by gfn, malloc'd) in all
 * cases.  Once, before the image is shared. */
int kevd_image_add_overlay(struct kevd_image *img, int fd, const char *path, const struct kevd_image_extent *ram,
			   size_t nram, struct kevd_image_page *pages, size_t npages, struct kevd_error *err);
/* The overlay's file, or NULL. */
const char *kevd_image_overlay_path(const struct kevd_image *img);
/* The overlay's page list (NULL, 0 without). */
const struct kevd_image_page *kevd_image_overlay_pages(const struct kevd_image *img, size_t *n);

/* Checks that every segment lies in guest RAM of RAM_BYTES as kevd lays it
 * out (RAM below the MMIO hole, the rest from 4 GiB). */
int kevd_image_check_ram(const struct kevd_image *img, uint64_t ram_bytes, struct kevd_error *err);

/* Fills NPAGES pages starting at guest page GFN into BUF: file bytes where a
 * segment has them, zeroes elsewhere.  Adds the bytes read from the file to
 * *BYTES_READ.  Fails (ESTALE or EIO) when the file no longer matches what
 * was validated: truncated, rewritten, or unreadable. */
int kevd_image_fill(const struct kevd_image *img, uint64_t gfn, size_t npages, void *buf,
		    uint64_t *bytes_read, struct kevd_error *err);

#endif
