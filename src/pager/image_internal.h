/* The image model's state, shared by image.c (parse, validate, query) and
 * image_fill.c (reading pages).  Nothing outside src/pager/ sees it. */
#ifndef KEVD_IMAGE_INTERNAL_H
#define KEVD_IMAGE_INTERNAL_H

#include <stdbool.h>
#include <sys/stat.h>

#include "pager/image.h"

struct kevd_image {
	unsigned refs;                 /* atomic; kevd_image_ref / kevd_image_free */
	char *path;
	int fd;                        /* owned; O_CLOEXEC, read-only */
	struct stat st;                /* as validated; pages are read only while it still matches */
	int flat_fd;                   /* owned; the initrd (kevd_image_add_flat), -1 without */
	struct stat flat_st;           /* the same for it */
	char *flat_path;
	uint64_t flat_gpa;
	int ovl_fd;                    /* owned; a snapshot's memory (kevd_image_add_overlay), -1 without */
	struct stat ovl_st;
	char *ovl_path;
	struct kevd_image_page *ovl;   /* owned, sorted by gfn */
	size_t novl;
	enum kevd_image_class class;
	uint64_t elf_entry;
	kevd_gpa_t entry;
	bool has_pvh;
	bool is_linux;                 /* carries a "Linux" ELF note (vmlinux) */
	kevd_gpa_t pvh_entry;
	bool has_mb2;
	uint64_t mb2_offset;
	size_t nseg;
	struct kevd_image_segment *seg;  /* sorted by paddr */
	size_t n_ext;                    /* entries in ext */
	struct kevd_image_extent *ext;   /* sorted by first_gfn */
	uint64_t pages;
};

#endif
