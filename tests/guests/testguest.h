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
/* ram=MIB: the work phase's pages of RAM begin here (above the image and
 * its .bss), at most TESTGUEST_RAM_MAX_MIB of them, within the usable RAM
 * of the memory map. */
#define TESTGUEST_RAM_BASE         0x10000000ull
#define TESTGUEST_RAM_MAX_MIB      2048
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

/* ---- touch= page sequences -------------------------------------------- */

/* touch= modes; the argument is P of percent:P (at most 100), S of stride:S
 * (at least 1) or N of random:N. */
#define TESTGUEST_TOUCH_ALL        0
#define TESTGUEST_TOUCH_PERCENT    1
#define TESTGUEST_TOUCH_STRIDE     2
#define TESTGUEST_TOUCH_RANDOM     3
#define TESTGUEST_TOUCH_NONE       4

/* Number of touches (pages= of the touch: line). */
static inline uint64_t testguest_touch_count(int touch, uint64_t arg)
{
	switch (touch) {
	case TESTGUEST_TOUCH_ALL:
		return TESTGUEST_DATA_PAGES;
	case TESTGUEST_TOUCH_PERCENT:
		return (uint64_t)TESTGUEST_DATA_PAGES * arg / 100;
	case TESTGUEST_TOUCH_STRIDE:
		return (TESTGUEST_DATA_PAGES + arg - 1) / arg;
	case TESTGUEST_TOUCH_RANDOM:
		return arg;
	default:
		return 0;
	}
}

/* Page of touch number i; called for i = 0, 1, ... in order with *state
 * starting at the seed (touch=random walks its sequence). */
static inline uint64_t testguest_touch_page(int touch, uint64_t arg, uint64_t i, uint64_t *state)
{
	switch (touch) {
	case TESTGUEST_TOUCH_STRIDE:
		return i * arg;
	case TESTGUEST_TOUCH_RANDOM:
		return testguest_random_page(state);
	default:
		return i;
	}
}

/* ---- work=ROUNDS --------------------------------------------------------- */

/*
 * Round number round (1, 2, ...) of work=ROUNDS over data page page, whose
 * words are w[0..511].  A chain through the page: each new word is the
 * previous new word plus the old word (xor a key drawn from round and page),
 * rotated, and the chain starts from the old last word, so every new word
 * depends on every old word of the page.  Each step can be undone given the
 * result, so the whole round is a bijection of the page: a word left at its
 * value of an earlier round (a lost or stale write) yields a different page
 * after every later round, hence a different digest.  Only the page itself,
 * its index and the round number go in.
 */
static inline void testguest_work_page(uint64_t *w, uint64_t page, uint64_t round)
{
	uint64_t k = testguest_word(round * TESTGUEST_DATA_PAGES + page);
	uint64_t c = k ^ w[TESTGUEST_WORDS_PER_PAGE - 1];
	uint32_t j;

	for (j = 0; j < TESTGUEST_WORDS_PER_PAGE; j++) {
		uint64_t x = (w[j] ^ k) + c;

		c = (x << 25) | (x >> 39);
		w[j] = c;
	}
}

/* The work: result= digest: start from this, then fold in each worked page
 * in increasing page order. */
#define TESTGUEST_WORK_DIGEST_INIT UINT64_C(0x6b65766420776f72)

static inline uint64_t testguest_work_digest(uint64_t d, uint64_t page, const uint64_t *w)
{
	uint32_t j;

	d = (d ^ page) * UINT64_C(0x9e3779b97f4a7c15);
	for (j = 0; j < TESTGUEST_WORDS_PER_PAGE; j++) {
		d ^= w[j];
		d = ((d << 29) | (d >> 35)) * UINT64_C(0xbf58476d1ce4e5b9);
	}
	return d;
}

/*
 * Host reference for `work: result=`: the digest the guest prints for
 * touch=TOUCH (TESTGUEST_TOUCH_*) with argument arg, seed=seed, write=write
 * and work=rounds, whatever the vCPU count.  The worked pages are the
 * distinct touched ones, starting from testguest_word() (testguest_written_
 * word() with write=1).  Host only: it needs 5 KiB of stack; it costs about
 * what one vCPU spends in the guest (README.md).
 */
static inline uint64_t testguest_work_result(int touch, uint64_t arg, uint64_t seed, int write,
					     uint64_t rounds)
{
	uint64_t map[TESTGUEST_DATA_PAGES / 64] = { 0 };
	uint64_t w[TESTGUEST_WORDS_PER_PAGE];
	uint64_t i, n, page, r, state = seed, d = TESTGUEST_WORK_DIGEST_INIT;
	uint32_t j;

	if (touch == TESTGUEST_TOUCH_PERCENT && arg > 100)
		arg = 100;
	if (touch == TESTGUEST_TOUCH_STRIDE && arg == 0)
		arg = 1;
	n = testguest_touch_count(touch, arg);
	for (i = 0; i < n; i++) {
		page = testguest_touch_page(touch, arg, i, &state);
		map[page / 64] |= UINT64_C(1) << (page % 64);
	}
	for (page = 0; page < TESTGUEST_DATA_PAGES; page++) {
		if (!(map[page / 64] >> (page % 64) & 1))
			continue;
		for (j = 0; j < TESTGUEST_WORDS_PER_PAGE; j++) {
			uint64_t wi = page * TESTGUEST_WORDS_PER_PAGE + j;

			w[j] = write ? testguest_written_word(wi) : testguest_word(wi);
		}
		for (r = 1; r <= rounds; r++)
			testguest_work_page(w, page, r);
		d = testguest_work_digest(d, page, w);
	}
	return d;
}

#endif /* !__ASSEMBLER__ */

#endif /* KEVD_TESTGUEST_H */
