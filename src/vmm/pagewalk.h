/*
 * Guest-virtual to guest-physical translation by walking a vCPU's x86 page
 * tables in guest memory, as the debugger, the inspect command and
 * instruction emulation need it.  The walk reads guest memory only through
 * a caller's reader callback, so it knows nothing of how the VMM maps RAM
 * and can be tested against a plain buffer.  It translates; it does not
 * check access rights (the flags are reported for the caller to judge) nor
 * set accessed/dirty bits.
 *
 * Supported: paging off (identity), 32-bit PAE paging (3 levels, 4 KiB and
 * 2 MiB pages), 4-level and 5-level long-mode paging (4 KiB, 2 MiB and
 * 1 GiB pages).  Legacy 32-bit paging without PAE is refused (ENOTSUP).
 */
#ifndef KEVD_PAGEWALK_H
#define KEVD_PAGEWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/types.h"

/* Control register bits the walk depends on. */
#define KEVD_CR0_PG ((uint64_t)1 << 31)
#define KEVD_CR4_PSE ((uint64_t)1 << 4)
#define KEVD_CR4_PAE ((uint64_t)1 << 5)
#define KEVD_CR4_LA57 ((uint64_t)1 << 12)
#define KEVD_EFER_LME ((uint64_t)1 << 8)
#define KEVD_EFER_LMA ((uint64_t)1 << 10)
#define KEVD_EFER_NXE ((uint64_t)1 << 11)

/* Page table entry bits. */
#define KEVD_PTE_P ((uint64_t)1 << 0)
#define KEVD_PTE_RW ((uint64_t)1 << 1)
#define KEVD_PTE_US ((uint64_t)1 << 2)
#define KEVD_PTE_PS ((uint64_t)1 << 7)
#define KEVD_PTE_NX ((uint64_t)1 << 63)
/* Bits 12..51: the frame of the next table or of a 4 KiB page. */
#define KEVD_PTE_ADDR_MASK ((uint64_t)0x000ffffffffff000)

/* Returns a host pointer to LEN bytes at guest-physical GPA, or NULL if
 * that range is not guest RAM. */
typedef const void *(*kevd_gpa_reader)(void *ctx, kevd_gpa_t gpa, size_t len);

struct kevd_paging_regs {
	uint64_t cr0, cr3, cr4, efer;
};

struct kevd_walk_info {
	unsigned levels;     /* table levels walked: 0 (paging off), 3, 4 or 5 */
	uint64_t page_size;  /* 4 KiB, 2 MiB or 1 GiB; 0 with paging off */
	bool writable;       /* RW set at every level */
	bool user;           /* US set at every level */
	bool nx;             /* NX set at some level, with EFER.NXE */
};

/* Translates GVA in the paging state REGS into *GPA, reading the tables
 * through READ(CTX, ...).  INFO may be NULL.  Errors: EINVAL for a
 * non-canonical GVA (or one above 4 GiB outside long mode) or inconsistent
 * control registers; ENOENT when an entry is not present, naming the level
 * and the entry's guest-physical address; EFAULT when a table is not in
 * guest RAM; ENOTSUP for 32-bit paging without PAE. */
int kevd_pagewalk(kevd_gva_t gva, const struct kevd_paging_regs *regs,
		  kevd_gpa_reader read, void *ctx, kevd_gpa_t *gpa,
		  struct kevd_walk_info *info, struct kevd_error *err);

#endif
