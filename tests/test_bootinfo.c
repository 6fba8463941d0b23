/*
 * Boot information builders: the e820 layout for several RAM sizes, and the
 * Multiboot2 and PVH structures read back by parsers written here from the
 * specifications, independently of the builders' own offsets.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bootinfo.h"
#include "testutil.h"

#define GiB ((uint64_t)1 << 30)
#define MiB ((uint64_t)1 << 20)

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void assert_entry(const struct kevd_e820_entry *e, uint64_t addr, uint64_t size, uint32_t type)
{
	ck_assert_uint_eq(e->addr, addr);
	ck_assert_uint_eq(e->size, size);
	ck_assert_uint_eq(e->type, type);
}

static int e820_ok(uint64_t ram, struct kevd_e820_entry *map)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	int n = kevd_boot_e820(ram, map, KEVD_BOOT_E820_MAX, &err);

	if (n < 0)
		ck_abort_msg("e820 for %llu bytes failed: %s", (unsigned long long)ram, err.msg);
	return n;
}

START_TEST(e820_small)
{
	struct kevd_e820_entry m[KEVD_BOOT_E820_MAX];

	ck_assert_int_eq(e820_ok(128 * MiB, m), 3);
	assert_entry(&m[0], 0, 0x9fc00, KEVD_E820_RAM);
	assert_entry(&m[1], 0x9fc00, 0x100000 - 0x9fc00, KEVD_E820_RESERVED);
	assert_entry(&m[2], 0x100000, 127 * MiB, KEVD_E820_RAM);

	ck_assert_int_eq(e820_ok(2 * MiB, m), 3);
	assert_entry(&m[2], 0x100000, MiB, KEVD_E820_RAM);
}
END_TEST

START_TEST(e820_hole_boundary)
{
	struct kevd_e820_entry m[KEVD_BOOT_E820_MAX];

	/* Exactly up to the hole: nothing goes above 4 GiB. */
	ck_assert_int_eq(e820_ok(KEVD_MMIO_HOLE_START, m), 3);
	assert_entry(&m[2], 0x100000, KEVD_MMIO_HOLE_START - 0x100000, KEVD_E820_RAM);

	/* One page more: that page moves to 4 GiB. */
	ck_assert_int_eq(e820_ok(KEVD_MMIO_HOLE_START + 4096, m), 4);
	assert_entry(&m[3], 4 * GiB, 4096, KEVD_E820_RAM);
}
END_TEST

START_TEST(e820_above_4g)
{
	struct kevd_e820_entry m[KEVD_BOOT_E820_MAX];
	uint64_t ram = 0;
	int n;

	n = e820_ok(5 * GiB, m);
	ck_assert_int_eq(n, 4);
	assert_entry(&m[2], 0x100000, KEVD_MMIO_HOLE_START - 0x100000, KEVD_E820_RAM);
	assert_entry(&m[3], 4 * GiB, 5 * GiB - KEVD_MMIO_HOLE_START, KEVD_E820_RAM);
	/* Every byte of RAM is described once: RAM entries plus the reserved
	 * legacy area (backed, but not the guest's to use). */
	for (int i = 0; i < n; i++)
		ram += m[i].size;
	ck_assert_uint_eq(ram, 5 * GiB);
	ck_assert_uint_eq(m[3].addr + m[3].size, 4 * GiB + (5 * GiB - KEVD_MMIO_HOLE_START));
}
END_TEST

START_TEST(e820_invalid)
{
	struct kevd_e820_entry m[KEVD_BOOT_E820_MAX];
	struct kevd_error err = KEVD_ERROR_INIT;

	ck_assert_int_eq(kevd_boot_e820(0, m, 4, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "less than the minimum"));
	ck_assert_int_eq(kevd_boot_e820(2 * MiB - 4096, m, 4, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "less than the minimum"));
	ck_assert_int_eq(kevd_boot_e820(128 * MiB + 512, m, 4, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "multiple of the 4 KiB"));
	ck_assert_int_eq(kevd_boot_e820(UINT64_MAX & ~(uint64_t)4095, m, 4, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "guest-physical limit"));
	ck_assert_int_eq(kevd_boot_e820(5 * GiB, m, 3, &err), -ENOSPC);
	ck_assert_int_eq(err.errnum, ENOSPC);
	ck_assert_ptr_nonnull(strstr(err.msg, "room for 3"));
	ck_assert_int_eq(kevd_boot_e820(128 * MiB, m, 2, &err), -ENOSPC);
}
END_TEST

/* What the Multiboot2 parser found. */
struct mb2_seen {
	const char *cmdline;
	const char *loader;
	size_t nmmap;
	struct kevd_e820_entry mmap[8];
	int end_tags;
};

/* Walks the tags as a kernel would (Multiboot2 spec 3.6), checking the
 * framing on the way. */
static void mb2_parse(const unsigned char *b, int used, struct mb2_seen *s)
{
	uint32_t total = le32(b);
	size_t off = 8;

	memset(s, 0, sizeof(*s));
	ck_assert_uint_eq(total, (uint32_t)used);
	ck_assert_uint_eq(le32(b + 4), 0);
	ck_assert_uint_eq(total % 8, 0);
	while (off < total) {
		uint32_t type = le32(b + off), size = le32(b + off + 4);

		ck_assert_uint_eq(off % 8, 0);
		ck_assert_uint_ge(size, 8);
		ck_assert_uint_le(off + size, total);
		switch (type) {
		case 0:
			ck_assert_uint_eq(size, 8);
			s->end_tags++;
			/* The end tag is the last thing in the structure. */
			ck_assert_uint_eq(off + 8, total);
			break;
		case 1:
			s->cmdline = (const char *)b + off + 8;
			ck_assert_uint_eq(strlen(s->cmdline) + 1 + 8, size);
			break;
		case 2:
			s->loader = (const char *)b + off + 8;
			ck_assert_uint_eq(strlen(s->loader) + 1 + 8, size);
			break;
		case 6: {
			uint32_t esize = le32(b + off + 8);

			ck_assert_uint_eq(esize, 24);
			ck_assert_uint_eq(le32(b + off + 12), 0);
			ck_assert_uint_eq((size - 16) % esize, 0);
			for (uint32_t e = 16; e < size; e += esize) {
				const unsigned char *p = b + off + e;

				ck_assert_uint_lt(s->nmmap, 8);
				s->mmap[s->nmmap++] = (struct kevd_e820_entry){ le64(p), le64(p + 8), le32(p + 16) };
				ck_assert_uint_eq(le32(p + 20), 0);
			}
			break;
		}
		default:
			ck_abort_msg("unexpected tag type %u", type);
		}
		off += (size + 7) & ~7u;
	}
	ck_assert_uint_eq(off, total);
}

START_TEST(mb2_roundtrip)
{
	struct kevd_e820_entry m[KEVD_BOOT_E820_MAX];
	struct kevd_error err = KEVD_ERROR_INIT;
	/* Odd host offset: the builder must not depend on host alignment. */
	unsigned char raw[1025], *buf = raw + 1;
	struct mb2_seen s;
	int n = e820_ok(5 * GiB, m), used;

	memset(raw, 0xa5, sizeof(raw));
	used = kevd_boot_mb2_build(buf, 1024, KEVD_GPA(0x9000), m, (size_t)n,
				   "console=ttyS0 root=/dev/vda", "kevd", &err);
	if (used < 0)
		ck_abort_msg("mb2 build failed: %s", err.msg);
	mb2_parse(buf, used, &s);
	ck_assert_str_eq(s.cmdline, "console=ttyS0 root=/dev/vda");
	ck_assert_str_eq(s.loader, "kevd");
	ck_assert_int_eq(s.end_tags, 1);
	ck_assert_uint_eq(s.nmmap, (size_t)n);
	for (int i = 0; i < n; i++)
		assert_entry(&s.mmap[i], m[i].addr, m[i].size, m[i].type);
	/* Nothing written past the structure. */
	ck_assert_uint_eq(buf[used], 0xa5);

	/* No loader name, NULL command line: an empty cmdline tag remains. */
	used = kevd_boot_mb2_build(buf, 1024, KEVD_GPA(0x9000), m, 3, NULL, NULL, &err);
	ck_assert_int_gt(used, 0);
	mb2_parse(buf, used, &s);
	ck_assert_str_eq(s.cmdline, "");
	ck_assert_ptr_null(s.loader);
	ck_assert_uint_eq(s.nmmap, 3);
}
END_TEST

START_TEST(mb2_errors)
{
	struct kevd_e820_entry m[KEVD_BOOT_E820_MAX];
	struct kevd_error err = KEVD_ERROR_INIT;
	unsigned char buf[256];
	char *huge = malloc(KEVD_BOOT_CMDLINE_MAX + 10);
	int n = e820_ok(128 * MiB, m), used;

	/* The exact size fits; one byte less does not, and nothing is written. */
	used = kevd_boot_mb2_build(buf, sizeof(buf), KEVD_GPA(0x9000), m, (size_t)n, "a", "kevd", &err);
	ck_assert_int_gt(used, 0);
	ck_assert_int_eq(kevd_boot_mb2_build(buf, (size_t)used, KEVD_GPA(0x9000), m, (size_t)n, "a", "kevd", &err), used);
	memset(buf, 0x5a, sizeof(buf));
	ck_assert_int_eq(kevd_boot_mb2_build(buf, (size_t)used - 1, KEVD_GPA(0x9000), m, (size_t)n, "a", "kevd", &err),
			 -ENOSPC);
	ck_assert_ptr_nonnull(strstr(err.msg, "0x9000"));
	ck_assert_ptr_nonnull(strstr(err.msg, "buffer holds"));
	ck_assert_uint_eq(buf[0], 0x5a);

	memset(huge, 'x', KEVD_BOOT_CMDLINE_MAX + 9);
	huge[KEVD_BOOT_CMDLINE_MAX + 9] = '\0';
	ck_assert_int_eq(kevd_boot_mb2_build(buf, sizeof(buf), KEVD_GPA(0x9000), m, (size_t)n, huge, "kevd", &err),
			 -E2BIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "command line"));
	ck_assert_ptr_nonnull(strstr(err.msg, "4096"));
	ck_assert_int_eq(kevd_boot_mb2_build(buf, sizeof(buf), KEVD_GPA(0x9000), m, (size_t)n, "a", huge, &err),
			 -E2BIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "boot loader name"));
	/* 4095 characters plus the NUL is exactly the limit. */
	huge[KEVD_BOOT_CMDLINE_MAX - 1] = '\0';
	{
		unsigned char *big = malloc(8192);

		used = kevd_boot_mb2_build(big, 8192, KEVD_GPA(0x9000), m, (size_t)n, huge, NULL, &err);
		ck_assert_int_gt(used, 0);
		free(big);
	}

	ck_assert_int_eq(kevd_boot_mb2_build(buf, sizeof(buf), KEVD_GPA(0x9004), m, (size_t)n, "a", NULL, &err),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "8-byte aligned"));
	ck_assert_int_eq(kevd_boot_mb2_build(buf, sizeof(buf), KEVD_GPA(0x9000), m, 0, "a", NULL, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "empty"));
	free(huge);
}
END_TEST

/* Pointer into BUF for a PVH paddr field, checked to lie inside USED. */
static const unsigned char *pvh_at(const unsigned char *buf, int used, uint64_t at, uint64_t paddr,
				   size_t len)
{
	ck_assert_uint_ge(paddr, at);
	ck_assert_uint_le(paddr - at + len, (uint64_t)used);
	return buf + (paddr - at);
}

START_TEST(pvh_with_initrd)
{
	struct kevd_e820_entry m[KEVD_BOOT_E820_MAX];
	struct kevd_error err = KEVD_ERROR_INIT;
	const uint64_t at = 0x6000;
	unsigned char raw[1025], *buf = raw + 1;
	const unsigned char *p;
	int n = e820_ok(5 * GiB, m), used;

	used = kevd_boot_pvh_build(buf, 1024, KEVD_GPA(at), m, (size_t)n, "console=hvc0",
				   KEVD_GPA(0x4000000), 0x123456, KEVD_GPA(0xe0000), &err);
	if (used < 0)
		ck_abort_msg("pvh build failed: %s", err.msg);
	ck_assert_uint_eq(le32(buf), 0x336ec578);
	ck_assert_uint_eq(le32(buf + 4), 1);
	ck_assert_uint_eq(le32(buf + 8), 0);
	ck_assert_uint_eq(le32(buf + 12), 1);
	ck_assert_uint_eq(le64(buf + 32), 0xe0000);
	ck_assert_uint_eq(le32(buf + 48), (uint32_t)n);
	ck_assert_uint_eq(le32(buf + 52), 0);

	p = pvh_at(buf, used, at, le64(buf + 40), (size_t)n * 24);
	ck_assert_uint_eq((le64(buf + 40) & 7), 0);
	for (int i = 0; i < n; i++) {
		const unsigned char *e = p + i * 24;

		assert_entry(&(struct kevd_e820_entry){ le64(e), le64(e + 8), le32(e + 16) },
			     m[i].addr, m[i].size, m[i].type);
		ck_assert_uint_eq(le32(e + 20), 0);
	}

	p = pvh_at(buf, used, at, le64(buf + 16), 32);
	ck_assert_uint_eq((le64(buf + 16) & 7), 0);
	ck_assert_uint_eq(le64(p), 0x4000000);
	ck_assert_uint_eq(le64(p + 8), 0x123456);
	ck_assert_uint_eq(le64(p + 16), 0);
	ck_assert_uint_eq(le64(p + 24), 0);

	p = pvh_at(buf, used, at, le64(buf + 24), sizeof("console=hvc0"));
	ck_assert_str_eq((const char *)p, "console=hvc0");
	/* The command line is the last thing: it ends the structure. */
	ck_assert_uint_eq(le64(buf + 24) - at + sizeof("console=hvc0"), (uint64_t)used);
}
END_TEST

START_TEST(pvh_no_module)
{
	struct kevd_e820_entry m[KEVD_BOOT_E820_MAX];
	struct kevd_error err = KEVD_ERROR_INIT;
	const uint64_t at = 0x6000;
	unsigned char buf[512];
	int n = e820_ok(128 * MiB, m), used;

	used = kevd_boot_pvh_build(buf, sizeof(buf), KEVD_GPA(at), m, (size_t)n, "quiet",
				   KEVD_GPA(0x4000000), 0, KEVD_GPA(0), &err);
	ck_assert_int_gt(used, 0);
	ck_assert_uint_eq(le32(buf + 12), 0);
	ck_assert_uint_eq(le64(buf + 16), 0);
	ck_assert_uint_eq(le64(buf + 32), 0);
	ck_assert_uint_eq(le32(buf + 48), 3);
	ck_assert_str_eq((const char *)pvh_at(buf, used, at, le64(buf + 24), 6), "quiet");
	/* start info, 3 memmap entries, "quiet\0". */
	ck_assert_int_eq(used, 56 + 3 * 24 + 6);

	/* No command line at all. */
	used = kevd_boot_pvh_build(buf, sizeof(buf), KEVD_GPA(at), m, (size_t)n, NULL,
				   KEVD_GPA(0), 0, KEVD_GPA(0), &err);
	ck_assert_int_eq(used, 56 + 3 * 24);
	ck_assert_uint_eq(le64(buf + 24), 0);
}
END_TEST

START_TEST(pvh_errors)
{
	struct kevd_e820_entry m[KEVD_BOOT_E820_MAX];
	struct kevd_error err = KEVD_ERROR_INIT;
	unsigned char buf[512];
	char *huge = malloc(KEVD_BOOT_CMDLINE_MAX + 1);
	int n = e820_ok(128 * MiB, m);

	ck_assert_int_eq(kevd_boot_pvh_build(buf, 100, KEVD_GPA(0x6000), m, (size_t)n, "quiet",
					     KEVD_GPA(0x4000000), 4096, KEVD_GPA(0), &err), -ENOSPC);
	ck_assert_ptr_nonnull(strstr(err.msg, "PVH start info at 0x6000: needs"));

	memset(huge, 'y', KEVD_BOOT_CMDLINE_MAX);
	huge[KEVD_BOOT_CMDLINE_MAX] = '\0';
	ck_assert_int_eq(kevd_boot_pvh_build(buf, sizeof(buf), KEVD_GPA(0x6000), m, (size_t)n, huge,
					     KEVD_GPA(0), 0, KEVD_GPA(0), &err), -E2BIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "command line"));

	ck_assert_int_eq(kevd_boot_pvh_build(buf, sizeof(buf), KEVD_GPA(0x6004), m, (size_t)n, NULL,
					     KEVD_GPA(0), 0, KEVD_GPA(0), &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "8-byte aligned"));
	ck_assert_int_eq(kevd_boot_pvh_build(buf, sizeof(buf), KEVD_GPA(0), m, (size_t)n, NULL,
					     KEVD_GPA(0), 0, KEVD_GPA(0), &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "absent"));
	ck_assert_int_eq(kevd_boot_pvh_build(buf, sizeof(buf), KEVD_GPA(4 * GiB - 64), m, (size_t)n, NULL,
					     KEVD_GPA(0), 0, KEVD_GPA(0), &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "below 4 GiB"));
	ck_assert_int_eq(kevd_boot_pvh_build(buf, sizeof(buf), KEVD_GPA(0x6000), m, (size_t)n, NULL,
					     KEVD_GPA(UINT64_MAX - 10), 4096, KEVD_GPA(0), &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "wraps around"));
	free(huge);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("bootinfo");
	TCase *t = tcase_create("bootinfo");

	tcase_add_test(t, e820_small);
	tcase_add_test(t, e820_hole_boundary);
	tcase_add_test(t, e820_above_4g);
	tcase_add_test(t, e820_invalid);
	tcase_add_test(t, mb2_roundtrip);
	tcase_add_test(t, mb2_errors);
	tcase_add_test(t, pvh_with_initrd);
	tcase_add_test(t, pvh_no_module);
	tcase_add_test(t, pvh_errors);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return kevd_test_run(suite());
}
