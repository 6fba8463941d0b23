/*
 * Page table walk: tables built in a fake guest memory (a heap buffer that
 * stands for guest-physical [0, MEM_SIZE)) by a small mapper written here,
 * then translated through kevd_pagewalk() in each paging mode, and broken
 * one entry at a time to see each error named.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/pagewalk.h"
#include "testutil.h"

#define MEM_SIZE ((size_t)2 << 20)
#define TABLES_START 0x10000

#define P KEVD_PTE_P
#define RW KEVD_PTE_RW
#define US KEVD_PTE_US
#define PS KEVD_PTE_PS
#define NX KEVD_PTE_NX

struct fake {
	unsigned char *mem;
	uint64_t next;     /* next free table page */
	uint64_t root;     /* top-level table */
	unsigned levels;
};

static const void *reader(void *ctx, kevd_gpa_t gpa, size_t len)
{
	struct fake *f = ctx;

	if (gpa.v >= MEM_SIZE || len > MEM_SIZE - gpa.v)
		return NULL;
	return f->mem + gpa.v;
}

static uint64_t rd(struct fake *f, uint64_t gpa)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | f->mem[gpa + (uint64_t)i];
	return v;
}

static void wr(struct fake *f, uint64_t gpa, uint64_t v)
{
	ck_assert_uint_le(gpa + 8, MEM_SIZE);
	for (int i = 0; i < 8; i++)
		f->mem[gpa + (uint64_t)i] = (unsigned char)(v >> (8 * i));
}

static uint64_t alloc_table(struct fake *f)
{
	uint64_t t = f->next;

	f->next += 4096;
	ck_assert_uint_le(f->next, MEM_SIZE);
	return t;
}

static void fake_init(struct fake *f, unsigned levels)
{
	f->mem = calloc(1, MEM_SIZE);
	ck_assert_ptr_nonnull(f->mem);
	f->next = TABLES_START;
	f->levels = levels;
	f->root = alloc_table(f);
}

static unsigned idx(uint64_t gva, unsigned level)
{
	return (unsigned)(gva >> (12 + 9 * (level - 1))) & 511;
}

/* Guest-physical address of the entry for GVA at LEVEL, following (and
 * creating, with P|RW|US) the tables above it. */
static uint64_t slot(struct fake *f, uint64_t gva, unsigned level)
{
	uint64_t table = f->root;

	for (unsigned l = f->levels; l > level; l--) {
		uint64_t e = table + idx(gva, l) * 8;

		if (!(rd(f, e) & P))
			wr(f, e, alloc_table(f) | P | RW | US);
		table = rd(f, e) & KEVD_PTE_ADDR_MASK;
	}
	return table + idx(gva, level) * 8;
}

/* Maps GVA with a leaf at LEVEL (1: 4 KiB, 2: 2 MiB, 3: 1 GiB). */
static void map(struct fake *f, uint64_t gva, unsigned level, uint64_t frame, uint64_t flags)
{
	wr(f, slot(f, gva, level), frame | flags | P | (level > 1 ? PS : 0));
}

static struct kevd_paging_regs long_regs(const struct fake *f)
{
	struct kevd_paging_regs r = {
		.cr0 = KEVD_CR0_PG | 1,
		.cr3 = f->root,
		.cr4 = KEVD_CR4_PAE | (f->levels == 5 ? KEVD_CR4_LA57 : 0),
		.efer = KEVD_EFER_LME | KEVD_EFER_LMA | KEVD_EFER_NXE,
	};
	return r;
}

static uint64_t walk_ok(struct fake *f, const struct kevd_paging_regs *r, uint64_t gva,
			struct kevd_walk_info *info)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	kevd_gpa_t gpa;

	if (kevd_pagewalk(KEVD_GVA(gva), r, reader, f, &gpa, info, &err) < 0)
		ck_abort_msg("walk of 0x%llx failed: %s", (unsigned long long)gva, err.msg);
	return gpa.v;
}

static void walk_fails(struct fake *f, const struct kevd_paging_regs *r, uint64_t gva, int ret,
		       const char *fragment)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	kevd_gpa_t gpa = KEVD_GPA(0xdead);

	ck_assert_int_eq(kevd_pagewalk(KEVD_GVA(gva), r, reader, f, &gpa, NULL, &err), ret);
	ck_assert_int_eq(err.errnum, -ret);
	if (!strstr(err.msg, fragment))
		ck_abort_msg("message '%s' lacks '%s'", err.msg, fragment);
	ck_assert_uint_eq(gpa.v, 0xdead);
}

START_TEST(paging_off)
{
	struct fake f;
	struct kevd_paging_regs r = { .cr0 = 1 };
	struct kevd_walk_info info;

	fake_init(&f, 4);
	ck_assert_uint_eq(walk_ok(&f, &r, 0x12345, &info), 0x12345);
	ck_assert_uint_eq(info.levels, 0);
	ck_assert_uint_eq(info.page_size, 0);
	ck_assert(info.writable && info.user && !info.nx);
	ck_assert_uint_eq(walk_ok(&f, &r, 0xfffff000, NULL), 0xfffff000);
	walk_fails(&f, &r, 0x100000000ull, -EINVAL, "above 4 GiB with paging off");
	r.efer = KEVD_EFER_LMA;
	walk_fails(&f, &r, 0x1000, -EINVAL, "CR0.PG clear");
	free(f.mem);
}
END_TEST

START_TEST(long4_page_sizes)
{
	struct fake f;
	struct kevd_paging_regs r;
	struct kevd_walk_info info;
	const uint64_t va4k = 0xffff800000201000ull, va2m = 0x40200000ull, va1g = 0x7f8000000000ull;

	fake_init(&f, 4);
	map(&f, va4k, 1, 0x1234000, RW);
	/* Frame bits only: PAT (bit 12 of a large entry), the available
	 * bits 52..58 and NX must not leak into the address. */
	map(&f, va2m, 2, 0x80000000ull | (1ull << 12) | (0x7full << 52), RW | US | NX);
	map(&f, va1g, 3, 0x140000000ull | (1ull << 12) | (1ull << 62), US);
	r = long_regs(&f);

	ck_assert_uint_eq(walk_ok(&f, &r, va4k + 0xabc, &info), 0x1234abc);
	ck_assert_uint_eq(info.levels, 4);
	ck_assert_uint_eq(info.page_size, 4096);

	ck_assert_uint_eq(walk_ok(&f, &r, va2m + 0x12345, &info), 0x80012345ull);
	ck_assert_uint_eq(info.page_size, 2u << 20);
	ck_assert(info.nx);
	ck_assert_uint_eq(walk_ok(&f, &r, va2m + 0x1fffff, NULL), 0x801fffffull);

	ck_assert_uint_eq(walk_ok(&f, &r, va1g + 0x12345678, &info), 0x152345678ull);
	ck_assert_uint_eq(info.page_size, 1u << 30);
	ck_assert(!info.nx);

	/* CR3's low bits (PCID, PWT/PCD) are not part of the table address. */
	r.cr3 |= 0x018;
	ck_assert_uint_eq(walk_ok(&f, &r, va4k, NULL), 0x1234000);
	free(f.mem);
}
END_TEST

static const char *const names[] = { "?", "PTE", "PDE", "PDPTE", "PML4E", "PML5E" };

/* Clears P at each level of a 4 KiB mapping in turn. */
static void not_present_each_level(unsigned levels, uint64_t va)
{
	struct fake f;
	struct kevd_paging_regs r;

	fake_init(&f, levels);
	map(&f, va, 1, 0x200000, RW);
	r = long_regs(&f);
	ck_assert_uint_eq(walk_ok(&f, &r, va + 8, NULL), 0x200008);
	for (unsigned level = levels; level >= 1; level--) {
		uint64_t e = slot(&f, va, level), saved = rd(&f, e);
		char frag[128];

		wr(&f, e, saved & ~P);
		snprintf(frag, sizeof(frag), "%s %u at gpa 0x%llx is not present", names[level],
			 idx(va, level), (unsigned long long)e);
		walk_fails(&f, &r, va, -ENOENT, frag);
		wr(&f, e, saved);
	}
	free(f.mem);
}

START_TEST(not_present)
{
	not_present_each_level(4, 0xffffffff81234000ull);
	not_present_each_level(5, 0xff5a5a5a81234000ull);
}
END_TEST

START_TEST(unmapped_top_level)
{
	struct fake f;
	struct kevd_paging_regs r;
	char frag[128];

	fake_init(&f, 4);
	r = long_regs(&f);
	snprintf(frag, sizeof(frag), "PML4E 0 at gpa 0x%llx is not present", (unsigned long long)f.root);
	walk_fails(&f, &r, 0x1000, -ENOENT, frag);
	free(f.mem);
}
END_TEST

START_TEST(non_canonical)
{
	struct fake f;
	struct kevd_paging_regs r;

	fake_init(&f, 4);
	r = long_regs(&f);
	walk_fails(&f, &r, 0x0000800000000000ull, -EINVAL, "not canonical for 4-level");
	walk_fails(&f, &r, 0xfff0000000000000ull, -EINVAL, "not canonical");
	walk_fails(&f, &r, 0x8000000000000000ull, -EINVAL, "not canonical");
	free(f.mem);

	fake_init(&f, 5);
	r = long_regs(&f);
	/* Canonical with 57 bits: reaches the tables (and finds nothing). */
	walk_fails(&f, &r, 0x0000800000000000ull, -ENOENT, "PML5E 0 at gpa");
	walk_fails(&f, &r, 0x0100000000000000ull, -EINVAL, "not canonical for 5-level");
	free(f.mem);
}
END_TEST

START_TEST(outside_memory)
{
	struct fake f;
	struct kevd_paging_regs r;
	const uint64_t va = 0x400000;
	uint64_t e;

	fake_init(&f, 4);
	map(&f, va, 1, 0x300000, RW);
	r = long_regs(&f);
	/* The PDPTE points at a page directory past the end of RAM. */
	e = slot(&f, va, 3);
	wr(&f, e, 0x40000000ull | P | RW);
	walk_fails(&f, &r, va, -EFAULT, "PDE at gpa 0x40000010 is not in guest RAM");
	/* CR3 itself outside RAM. */
	r.cr3 = 0x7ffff000;
	walk_fails(&f, &r, va, -EFAULT, "PML4E at gpa 0x7ffff000 is not in guest RAM");
	/* A directory in the last page of RAM is read: its entry is merely
	 * not present. */
	r = long_regs(&f);
	wr(&f, e, (MEM_SIZE - 4096) | P | RW);
	walk_fails(&f, &r, va, -ENOENT, "PDE 2 at gpa 0x1ff010 is not present");
	free(f.mem);
}
END_TEST

START_TEST(flags)
{
	struct fake f;
	struct kevd_paging_regs r;
	struct kevd_walk_info info;
	const uint64_t va = 0x7fff12345000ull;
	uint64_t e;

	fake_init(&f, 4);
	map(&f, va, 1, 0x500000, RW | US);
	r = long_regs(&f);
	walk_ok(&f, &r, va, &info);
	ck_assert(info.writable && info.user && !info.nx);

	/* RW clear at one upper level makes the page read-only. */
	e = slot(&f, va, 3);
	wr(&f, e, rd(&f, e) & ~RW);
	walk_ok(&f, &r, va, &info);
	ck_assert(!info.writable && info.user && !info.nx);

	/* US clear in the PTE alone: supervisor-only. */
	e = slot(&f, va, 1);
	wr(&f, e, rd(&f, e) & ~US);
	walk_ok(&f, &r, va, &info);
	ck_assert(!info.writable && !info.user);

	/* NX at the top counts only with EFER.NXE (bit 63 is reserved otherwise). */
	e = slot(&f, va, 4);
	wr(&f, e, rd(&f, e) | NX);
	ck_assert_uint_eq(walk_ok(&f, &r, va + 0x10, &info), 0x500010);
	ck_assert(info.nx);
	r.efer &= ~KEVD_EFER_NXE;
	walk_ok(&f, &r, va, &info);
	ck_assert(!info.nx);
	free(f.mem);
}
END_TEST

START_TEST(five_level)
{
	struct fake f;
	struct kevd_paging_regs r;
	struct kevd_walk_info info;
	const uint64_t va = 0xff12345678abc000ull;

	fake_init(&f, 5);
	map(&f, va, 1, 0x9000, RW);
	map(&f, 0x00ff000000000000ull, 3, 0x40000000, RW);
	r = long_regs(&f);
	ck_assert_uint_eq(walk_ok(&f, &r, va + 0x123, &info), 0x9123);
	ck_assert_uint_eq(info.levels, 5);
	ck_assert_uint_eq(walk_ok(&f, &r, 0x00ff000000000000ull + 0x3fffffff, &info), 0x7fffffff);
	ck_assert_uint_eq(info.page_size, 1u << 30);
	free(f.mem);
}
END_TEST

START_TEST(reserved_ps)
{
	struct fake f;
	struct kevd_paging_regs r;
	const uint64_t va = 0x1000;
	uint64_t e;

	fake_init(&f, 4);
	map(&f, va, 1, 0x9000, RW);
	r = long_regs(&f);
	e = slot(&f, va, 4);
	wr(&f, e, rd(&f, e) | PS);
	walk_fails(&f, &r, va, -EINVAL, "PML4E 0 at gpa");
	walk_fails(&f, &r, va, -EINVAL, "reserved PS bit");
	free(f.mem);
}
END_TEST

START_TEST(pae)
{
	struct fake f;
	struct kevd_paging_regs r = { .cr0 = KEVD_CR0_PG | 1, .cr4 = KEVD_CR4_PAE, .efer = KEVD_EFER_NXE };
	struct kevd_walk_info info;
	const uint64_t pdpt = 0x8020;  /* 32-byte aligned, not page aligned */
	uint64_t pd, pt;

	fake_init(&f, 3);
	pd = alloc_table(&f);
	pt = alloc_table(&f);
	/* 0xc0000000: PDPTE 3, PDE 1 -> page table, PTE 2. */
	wr(&f, pdpt + 3 * 8, pd | P);
	wr(&f, pd + 1 * 8, pt | P | RW | US);
	wr(&f, pt + 2 * 8, 0x777000 | P | RW | NX);
	/* 0x80000000: PDPTE 2 -> the same directory, PDE 0 a 2 MiB page. */
	wr(&f, pdpt + 2 * 8, pd | P);
	wr(&f, pd + 0 * 8, 0x1fe00000 | (1ull << 12) | P | PS | US);
	r.cr3 = pdpt;

	ck_assert_uint_eq(walk_ok(&f, &r, 0xc0202abc, &info), 0x777abc);
	ck_assert_uint_eq(info.levels, 3);
	ck_assert_uint_eq(info.page_size, 4096);
	ck_assert(info.writable && !info.user && info.nx);

	ck_assert_uint_eq(walk_ok(&f, &r, 0x80112345, &info), 0x1ff12345);
	ck_assert_uint_eq(info.page_size, 2u << 20);
	ck_assert(!info.writable && info.user && !info.nx);

	walk_fails(&f, &r, 0x00001000, -ENOENT, "PDPTE 0 at gpa 0x8020 is not present");
	walk_fails(&f, &r, 0x100000000ull, -EINVAL, "above 4 GiB in 32-bit PAE");
	wr(&f, pdpt + 3 * 8, pd | P | PS);
	walk_fails(&f, &r, 0xc0202abc, -EINVAL, "PDPTE 3 at gpa 0x8038 has the reserved PS bit");
	free(f.mem);
}
END_TEST

START_TEST(unsupported_modes)
{
	struct fake f;
	struct kevd_paging_regs r = { .cr0 = KEVD_CR0_PG | 1, .cr3 = 0x10000 };

	fake_init(&f, 4);
	walk_fails(&f, &r, 0x1000, -ENOTSUP, "32-bit paging without PAE");
	r.efer = KEVD_EFER_LMA | KEVD_EFER_LME;
	walk_fails(&f, &r, 0x1000, -EINVAL, "CR4.PAE clear");
	free(f.mem);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pagewalk");
	TCase *t = tcase_create("pagewalk");

	tcase_add_test(t, paging_off);
	tcase_add_test(t, long4_page_sizes);
	tcase_add_test(t, not_present);
	tcase_add_test(t, unmapped_top_level);
	tcase_add_test(t, non_canonical);
	tcase_add_test(t, outside_memory);
	tcase_add_test(t, flags);
	tcase_add_test(t, five_level);
	tcase_add_test(t, reserved_ps);
	tcase_add_test(t, pae);
	tcase_add_test(t, unsupported_modes);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return kevd_test_run(suite());
}
