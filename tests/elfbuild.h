/*
 * Test helper: writes small ELF kernel images, valid or deliberately broken,
 * whose file bytes follow a known pattern (elfbuild_byte) so tests can check
 * what the pager installed byte for byte.
 */
#ifndef KEVD_TEST_ELFBUILD_H
#define KEVD_TEST_ELFBUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct eb_seg {
	uint32_t type;     /* PT_LOAD, PT_NOTE, ... */
	uint64_t paddr, vaddr, offset, filesz, memsz;
	uint32_t flags;
};

struct eb_elf {
	int elfclass;          /* 64 (default when 0) or 32 */
	uint8_t ident_class;   /* override e_ident[EI_CLASS] when non-zero */
	uint8_t ident_data;    /* override e_ident[EI_DATA] when non-zero */
	uint16_t machine;      /* 0 = EM_X86_64 / EM_386 by class */
	uint16_t type;         /* 0 = ET_EXEC */
	uint64_t entry;
	uint64_t phoff;        /* 0 = right after the ELF header */
	int phentsize;         /* 0 = correct size */
	int phnum;             /* -1 = number of segments */
	size_t nseg;
	struct eb_seg seg[8];
	uint64_t file_size;    /* 0 = just past the last byte any header names */
	/* Bytes written verbatim at an offset (notes, multiboot2 headers). */
	const void *blob;
	size_t blob_len;
	uint64_t blob_off;
};

/* The pattern byte at file offset OFF. */
static inline uint8_t elfbuild_byte(uint64_t off)
{
	uint64_t x = off * 0x9e3779b97f4a7c15ull;
	return (uint8_t)((x >> 56) | 1);  /* never 0, so zero-fill is visible */
}

/* Writes the image to PATH; returns 0 or -errno. */
int elfbuild_write(const struct eb_elf *e, const char *path);

/* A fresh temporary path under $TMPDIR (caller frees and unlinks). */
char *elfbuild_tmppath(const char *tag);

/* The valid image most tests use: one PT_LOAD at 1 MiB physical, virtual
 * 0xffffffff80100000, FILE_PAGES pages of file data plus part of a page,
 * then ZERO_PAGES of zero fill; p_offset deliberately not congruent with
 * p_paddr modulo 4096. */
void elfbuild_default(struct eb_elf *e, uint64_t file_pages, uint64_t zero_pages);

#endif
