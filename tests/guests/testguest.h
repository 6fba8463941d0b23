/*
 * testguest.h - constants shared by the kevd test guest and the host-side tests.
 *
 * Must stay plain C99 and depend on <stdint.h> only: it is compiled both into
 * the freestanding guest and into ordinary host programs.
 */
#ifndef KEVD_TESTGUEST_H
#define KEVD_TESTGUEST_H

/* entry.S and data.S include this file too: numbers used there carry no C
 * suffix, and the C-only parts are hidden from the assembler. */
#ifdef __ASSEMBLER__
#define TESTGUEST_U32(x) x
#else
#include <stdint.h>
#define TESTGUEST_U32(x) x##u
#endif

/* ---- boot protocols ---------------------------------------------------- */

/* EAX at entry when booted by a multiboot2 loader. */
#define TESTGUEST_MB2_BOOT_MAGIC   TESTGUEST_U32(0x36d76289)
/* Magic in the multiboot2 header inside the image. */
#define TESTGUEST_MB2_HEADER_MAGIC TESTGUEST_U32(0xe85250d6)
/* First u32 of struct hvm_start_info (PVH boot, EBX points to it). */
#define TESTGUEST_PVH_MAGIC        TESTGUEST_U32(0x336ec578)
/* Xen ELF note type carrying the 32-bit PVH entry point. */
#define TESTGUEST_XEN_ELFNOTE_PHYS32_ENTRY 18

/* kevd multi-vCPU convention: the BSP gets ECX = this ("kevd") and
 * EDI = number of vCPUs.  Without it the guest assumes one vCPU. */
#define TESTGUEST_KEVD_MAGIC       TESTGUEST_U32(0x6b657664)
/* Application processors enter at the same entry point with EAX = this,
 * ESI = vCPU index (1..N-1), EDI = vCPU count, EBX = boot info pointer. */
#define TESTGUEST_KEVD_AP_MAGIC    TESTGUEST_U32(0x6b657641)
/* Largest vCPU count the guest supports (larger counts are clamped). */
#define TESTGUEST_MAX_VCPUS        16

/* ---- I/O ports --------------------------------------------------------- */

#define TESTGUEST_SERIAL_PORT      0x3f8   /* one byte per OUT */
#define TESTGUEST_EXIT_PORT        0xf4    /* isa-debug-exit: status = (v << 1) | 1 */

/* Values written to TESTGUEST_EXIT_PORT. */
#define TESTGUEST_EXIT_OK          0       /* all checks passed */
#define TESTGUEST_EXIT_FAIL        1       /* a verification failed */
#define TESTGUEST_EXIT_EXCEPTION   2       /* a CPU exception was taken */
#define TESTGUEST_EXIT_BADBOOT     3       /* unknown boot protocol */

/* ---- memory image geometry -------------------------------------------- */

#define TESTGUEST_LOAD_ADDR        TESTGUEST_U32(0x100000)         /* physical == virtual */
#define TESTGUEST_PAGE_SIZE        TESTGUEST_U32(4096)
#define TESTGUEST_DATA_BYTES       TESTGUEST_U32(33554432)         /* 32 MiB data image */
#define TESTGUEST_DATA_PAGES       (TESTGUEST_DATA_BYTES / TESTGUEST_PAGE_SIZE)
#define TESTGUEST_DATA_WORDS       (TESTGUEST_DATA_BYTES / 8)
#define TESTGUEST_WORDS_PER_PAGE   (TESTGUEST_PAGE_SIZE / 8)
#define TESTGUEST_BSS_BYTES        TESTGUEST_U32(2097152)          /* 2 MiB zero region */
#define TESTGUEST_BSS_PAGES        (TESTGUEST_BSS_BYTES / TESTGUEST_PAGE_SIZE)
/* Size of the initialised array placed right after the data image; it makes
 * the data PT_LOAD's p_filesz end in the middle of a page. */
#define TESTGUEST_TAIL_BYTES       TESTGUEST_U32(100)

#ifndef __ASSEMBLER__
/* ELF symbol names the host tests can look up. */
#define TESTGUEST_SYM_DATA         "testguest_data"      /* 32 MiB image */
#define TESTGUEST_SYM_BSS_ZERO     "testguest_bss_zero"  /* 2 MiB zero region */
#define TESTGUEST_SYM_TAIL         "testguest_tail"      /* 100 bytes: 1,2,...,100 */

/*
 * Content of 64-bit word number word_index of the data image (splitmix64
 * finaliser of word_index + 1).  Every step is a bijection that maps 0 to 0,
 * so the result is zero only for word_index == UINT64_MAX: no word of the
 * image is zero.
 */
static inline uint64_t testguest_word(uint64_t word_index)
{
	uint64_t z = (word_index + 1u) * UINT64_C(0x9e3779b97f4a7c15);
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* What write=1 stores over word word_index of a touched data page: every
 * bit of testguest_word() flipped, so every word changes. */
static inline uint64_t testguest_written_word(uint64_t word_index)
{
	return ~testguest_word(word_index);
}

/*
 * touch=random:N page sequence: xorshift64 (13, 7, 17) from *state; a seed
 * of 0 is replaced by 1.  Returns the next page index in [0, DATA_PAGES).
 */
static inline uint64_t testguest_random_page(uint64_t *state)
{
	uint64_t x = *state ? *state : 1u;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x % TESTGUEST_DATA_PAGES;
}

#endif /* !__ASSEMBLER__ */

#endif /* KEVD_TESTGUEST_H */
