/*
 * ELF image model: valid images in several shapes, and a corpus of broken
 * ones, each rejected with its own message.
 */
#include "config.h"

#include <check.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elfbuild.h"
#include "pager/image.h"
#include "testutil.h"

static struct kevd_image *open_ok(const struct eb_elf *e, char **pathp)
{
	char *path = elfbuild_tmppath("ok");
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_image *img = NULL;

	ck_assert_int_eq(elfbuild_write(e, path), 0);
	if (kevd_image_open(path, &img, &err) < 0)
		ck_abort_msg("valid image rejected: %s", err.msg);
	if (pathp)
		*pathp = path;
	else {
		unlink(path);
		free(path);
	}
	return img;
}

START_TEST(default_image)
{
	struct eb_elf e;
	struct kevd_image *img;
	const struct kevd_image_segment *s;

	elfbuild_default(&e, 10, 3);
	img = open_ok(&e, NULL);
	ck_assert_int_eq(kevd_image_segment_count(img), 1);
	s = kevd_image_segment(img, 0);
	ck_assert_uint_eq(s->paddr.v, 0x100000);
	ck_assert_uint_eq(s->first_gfn, 0x100);
	/* 10 pages + 1000 bytes of file, 3 pages more of zeroes: 14 pages. */
	ck_assert_uint_eq(s->end_gfn - s->first_gfn, 14);
	ck_assert_uint_eq(kevd_image_pages(img), 14);
	/* Higher-half kernel: the entry is translated by vaddr - paddr. */
	ck_assert_uint_eq(kevd_image_entry(img).v, 0x100040);
	ck_assert(!kevd_image_pvh_entry(img, NULL));
	ck_assert(!kevd_image_multiboot2(img, NULL));
	ck_assert(kevd_image_has_page(img, 0x100));
	ck_assert(kevd_image_has_page(img, 0x10d));
	ck_assert(!kevd_image_has_page(img, 0x10e));
	ck_assert(!kevd_image_has_page(img, 0xff));
	kevd_image_free(img);
}
END_TEST

START_TEST(fill_content)
{
	struct eb_elf e;
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_image *img;
	unsigned char *buf = malloc(16 * 4096);
	uint64_t bytes = 0, filesz;

	elfbuild_default(&e, 10, 3);
	filesz = e.seg[0].filesz;
	img = open_ok(&e, NULL);
	/* From one page before the segment to two after it. */
	ck_assert_int_eq(kevd_image_fill(img, 0xff, 16, buf, &bytes, &err), 0);
	ck_assert_uint_eq(bytes, filesz);
	for (uint64_t i = 0; i < 16 * 4096; i++) {
		uint64_t gpa = 0xff000 + i;
		uint8_t want = 0;

		if (gpa >= 0x100000 && gpa < 0x100000 + filesz)
			want = elfbuild_byte(0x1234 + (gpa - 0x100000));
		if (buf[i] != want)
			ck_abort_msg("byte at gpa 0x%llx is %u, want %u", (unsigned long long)gpa, buf[i], want);
	}
	free(buf);
	kevd_image_free(img);
}
END_TEST

START_TEST(shared_page_and_entry_forms)
{
	struct eb_elf e;
	struct kevd_image *img;
	unsigned char buf[4096];
	struct kevd_error err = KEVD_ERROR_INIT;

	/* Two segments sharing page 0x200: text ends mid-page, data starts
	 * in the same page; the entry is already physical (Linux's vmlinux). */
	memset(&e, 0, sizeof(e));
	e.phnum = -1;
	e.nseg = 2;
	e.seg[0] = (struct eb_seg){ PT_LOAD, 0x1ff000, 0xffffffff811ff000ull, 0x2000, 0x1800, 0x1800, PF_R | PF_X };
	e.seg[1] = (struct eb_seg){ PT_LOAD, 0x200800, 0xffffffff81200800ull, 0x5000, 0x100, 0x900, PF_R | PF_W };
	e.entry = 0x1ff010;
	img = open_ok(&e, NULL);
	ck_assert_uint_eq(kevd_image_pages(img), 3);  /* 0x1ff, 0x200, 0x201 */
	ck_assert_int_eq(kevd_image_extent_count(img), 1);
	ck_assert_uint_eq(kevd_image_entry(img).v, 0x1ff010);
	ck_assert_int_eq(kevd_image_fill(img, 0x200, 1, buf, NULL, &err), 0);
	ck_assert_uint_eq(buf[0], elfbuild_byte(0x2000 + 0x1000));
	ck_assert_uint_eq(buf[0x7ff], elfbuild_byte(0x2000 + 0x17ff));
	ck_assert_uint_eq(buf[0x800], elfbuild_byte(0x5000));
	ck_assert_uint_eq(buf[0x8ff], elfbuild_byte(0x50ff));
	ck_assert_uint_eq(buf[0x900], 0);
	ck_assert_uint_eq(buf[0xfff], 0);
	kevd_image_free(img);
}
END_TEST

START_TEST(elf32_multiboot2_pvh)
{
	struct eb_elf e;
	struct kevd_image *img;
	uint32_t mb2[4] = { 0xe85250d6u, 0, 16, 0 };
	unsigned char note[] = { 4, 0, 0, 0, 4, 0, 0, 0, 18, 0, 0, 0, 'X', 'e', 'n', 0,
				 0x40, 0x00, 0x10, 0x00 };
	uint64_t off;
	kevd_gpa_t pvh;

	mb2[3] = (uint32_t)-(mb2[0] + mb2[1] + mb2[2]);
	memset(&e, 0, sizeof(e));
	e.elfclass = 32;
	e.phnum = -1;
	e.nseg = 2;
	e.seg[0] = (struct eb_seg){ PT_LOAD, 0x100000, 0x100000, 0x1000, 0x3000, 0x4000, PF_R | PF_X };
	e.seg[1] = (struct eb_seg){ PT_NOTE, 0, 0, 0x800, sizeof(note), sizeof(note), PF_R };
	e.entry = 0x100040;
	e.blob = note;
	e.blob_len = sizeof(note);
	e.blob_off = 0x800;
	img = open_ok(&e, NULL);
	ck_assert_int_eq(kevd_image_class(img), KEVD_IMAGE_ELF32);
	ck_assert(kevd_image_pvh_entry(img, &pvh));
	ck_assert_uint_eq(pvh.v, 0x100040);
	ck_assert(!kevd_image_multiboot2(img, NULL));
	kevd_image_free(img);

	/* A multiboot2 header, 8-byte aligned, inside the first 32 KiB. */
	e.nseg = 1;
	e.blob = mb2;
	e.blob_len = sizeof(mb2);
	e.blob_off = 0x1008;
	img = open_ok(&e, NULL);
	ck_assert(kevd_image_multiboot2(img, &off));
	ck_assert_uint_eq(off, 0x1008);
	kevd_image_free(img);

	/* A bad checksum is no header at all. */
	mb2[3]++;
	img = open_ok(&e, NULL);
	ck_assert(!kevd_image_multiboot2(img, NULL));
	kevd_image_free(img);
}
END_TEST

START_TEST(check_ram)
{
	struct eb_elf e;
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_image *img;

	elfbuild_default(&e, 10, 3);
	img = open_ok(&e, NULL);
	ck_assert_int_eq(kevd_image_check_ram(img, 2 << 20, &err), 0);
	ck_assert_int_eq(kevd_image_check_ram(img, 1 << 20, &err), -ERANGE);
	ck_assert_ptr_nonnull(strstr(err.msg, "does not fit in 1 MiB of guest RAM"));
	kevd_image_free(img);

	/* Above 4 GiB: needs RAM past the hole. */
	elfbuild_default(&e, 1, 0);
	e.seg[0].paddr = 0x100000000ull;
	e.seg[0].vaddr = 0x100000000ull;
	e.entry = 0x100000000ull;
	img = open_ok(&e, NULL);
	ck_assert_int_eq(kevd_image_check_ram(img, 2ull << 30, &err), -ERANGE);
	ck_assert_int_eq(kevd_image_check_ram(img, 4ull << 30, &err), 0);
	kevd_image_free(img);
}
END_TEST

START_TEST(file_changes_detected)
{
	struct eb_elf e;
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_image *img;
	unsigned char buf[4096];
	struct timespec ts[2] = { { 12345, 0 }, { 12345, 0 } };
	char *path;

	elfbuild_default(&e, 10, 3);
	img = open_ok(&e, &path);
	ck_assert_int_eq(kevd_image_fill(img, 0x100, 1, buf, NULL, &err), 0);
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	ck_assert_int_eq(kevd_image_fill(img, 0x100, 1, buf, NULL, &err), -ESTALE);
	ck_assert_ptr_nonnull(strstr(err.msg, "modified while in use"));
	kevd_image_free(img);

	ck_assert_int_eq(elfbuild_write(&e, path), 0);
	ck_assert_int_eq(kevd_image_open(path, &img, &err), 0);
	ck_assert_int_eq(truncate(path, 0x2000), 0);
	ck_assert_int_eq(kevd_image_fill(img, 0x100, 1, buf, NULL, &err), -ESTALE);
	ck_assert_ptr_nonnull(strstr(err.msg, "size changed"));
	kevd_image_free(img);
	unlink(path);
	free(path);
}
END_TEST

/* The malformed corpus: each case breaks one thing and names the message
 * fragment that must explain it. */
struct bad_case {
	const char *name;
	void (*make)(struct eb_elf *e);
	const char *want;
};

#define BAD(fn) static void fn(struct eb_elf *e)
BAD(b_empty) { e->file_size = 1; e->nseg = 0; e->phnum = 0; e->blob = "", e->blob_len = 0; }
BAD(b_truncated_ehdr) { e->file_size = 20; }
BAD(b_class) { e->ident_class = 7; }
BAD(b_bigendian) { e->ident_data = ELFDATA2MSB; }
BAD(b_machine64) { e->machine = EM_AARCH64; }
BAD(b_machine32) { e->elfclass = 32; e->machine = EM_ARM; e->seg[0].vaddr = 0x100000; e->entry = 0x100040; }
BAD(b_dyn) { e->type = ET_DYN; }
BAD(b_rel) { e->type = ET_REL; }
BAD(b_core) { e->type = ET_CORE; }
BAD(b_nophdr) { e->phnum = 0; }
BAD(b_phentsize) { e->phentsize = 40; }
BAD(b_phoff_eof) { e->phoff = 0x100000; e->file_size = 0x3000; }
BAD(b_phoff_overflow) { e->phoff = 0xfffffffffffffff0ull; e->file_size = 0x3000; }
BAD(b_xnum) { e->phnum = 0xffff; }
BAD(b_noload) { e->seg[0].type = PT_NULL; }
BAD(b_onlyempty) { e->seg[0].memsz = 0; e->seg[0].filesz = 0; }
BAD(b_filesz) { e->seg[0].filesz = e->seg[0].memsz + 1; }
BAD(b_off_overflow) { e->seg[0].offset = 0xfffffffffffff000ull; e->file_size = 0x20000; }
BAD(b_past_eof) { e->file_size = 0x5000; }
BAD(b_paddr_overflow) { e->seg[0].paddr = 0xfffffffffffff000ull; }
BAD(b_vaddr_overflow) { e->seg[0].vaddr = 0xfffffffffffff000ull; e->entry = 0x100040; }
BAD(b_hole) { e->seg[0].paddr = 0xbffd0000ull; e->entry = e->seg[0].vaddr; }
BAD(b_hole_end) { e->seg[0].paddr = 0xfffff000ull; e->entry = e->seg[0].vaddr; }
BAD(b_gpa_limit) { e->seg[0].paddr = 1ull << 50; }
BAD(b_overlap)
{
	e->nseg = 2;
	e->seg[1] = e->seg[0];
	e->seg[1].paddr += 0x2000;
	e->seg[1].vaddr += 0x100000;
}
BAD(b_entry) { e->entry = 0x12345678; }
BAD(b_note_eof) { e->nseg = 2; e->seg[1] = (struct eb_seg){ PT_NOTE, 0, 0, 0x40000, 64, 64, 0 }; e->file_size = 0x20000; }
static const unsigned char note_short[] = { 4, 0, 0, 0, 2, 0, 0, 0, 18, 0, 0, 0, 'X', 'e', 'n', 0, 1, 2, 0, 0 };
static const unsigned char note_runs[] = { 4, 0, 0, 0, 64, 0, 0, 0, 18, 0, 0, 0, 'X', 'e', 'n', 0 };
static const unsigned char note_big[] = { 4, 0, 0, 0, 8, 0, 0, 0, 18, 0, 0, 0, 'X', 'e', 'n', 0,
					  0, 0, 0, 0, 1, 0, 0, 0 };
#define NOTE_CASE(fn, arr) BAD(fn) { e->nseg = 2; \
	e->seg[1] = (struct eb_seg){ PT_NOTE, 0, 0, 0x800, sizeof(arr), sizeof(arr), 0 }; \
	e->blob = arr; e->blob_len = sizeof(arr); e->blob_off = 0x800; }
NOTE_CASE(b_note_size, note_short)
NOTE_CASE(b_note_runs, note_runs)
NOTE_CASE(b_note_big, note_big)
BAD(b_text) { e->ident_class = 'X'; }

static const struct bad_case bad_cases[] = {
	{ "empty file", b_empty, "not an ELF file" },
	{ "truncated ELF header", b_truncated_ehdr, "truncated" },
	{ "unknown class", b_class, "unknown ELF class 7" },
	{ "big-endian", b_bigendian, "not a little-endian ELF" },
	{ "ELF64 for aarch64", b_machine64, "not x86-64" },
	{ "ELF32 for arm", b_machine32, "not i386" },
	{ "ET_DYN", b_dyn, "e_type is ET_DYN" },
	{ "ET_REL", b_rel, "e_type is ET_REL" },
	{ "ET_CORE", b_core, "e_type is ET_CORE" },
	{ "no program headers", b_nophdr, "no program headers" },
	{ "wrong e_phentsize", b_phentsize, "e_phentsize 40, expected 56" },
	{ "phdrs past EOF", b_phoff_eof, "program headers (offset 0x100000" },
	{ "phdr offset overflow", b_phoff_overflow, "program headers (offset 0xfffffffffffffff0" },
	{ "PN_XNUM", b_xnum, "PN_XNUM" },
	{ "no PT_LOAD", b_noload, "no PT_LOAD segment" },
	{ "only empty PT_LOAD", b_onlyempty, "no PT_LOAD segment with memory" },
	{ "p_filesz > p_memsz", b_filesz, "exceeds p_memsz" },
	{ "p_offset overflow", b_off_overflow, "p_offset 0xfffffffffffff000 + p_filesz" },
	{ "segment past EOF", b_past_eof, "ends past the end of the file" },
	{ "p_paddr overflow", b_paddr_overflow, "p_paddr 0xfffffffffffff000 + p_memsz" },
	{ "p_vaddr overflow", b_vaddr_overflow, "p_vaddr 0xfffffffffffff000 + p_memsz" },
	{ "segment in the MMIO hole", b_hole, "overlaps the MMIO hole" },
	{ "segment ending in the MMIO hole", b_hole_end, "overlaps the MMIO hole" },
	{ "above the GPA limit", b_gpa_limit, "above the guest-physical limit" },
	{ "overlapping PT_LOADs", b_overlap, "PT_LOAD 0 (0x100000-0x10d3e8) overlaps PT_LOAD 1" },
	{ "entry outside segments", b_entry, "entry point 0x12345678 is outside every PT_LOAD" },
	{ "PT_NOTE past EOF", b_note_eof, "PT_NOTE 1: file range ends past the end" },
	{ "PVH note of 2 bytes", b_note_size, "PHYS32_ENTRY note has a 2-byte value" },
	{ "note past its segment", b_note_runs, "runs past the segment" },
	{ "PVH entry above 4 GiB", b_note_big, "is not a 32-bit address" },
	{ "not ELF at all", b_text, "unknown ELF class 88" },
};

START_TEST(malformed)
{
	const struct bad_case *c = &bad_cases[_i];
	struct eb_elf e;
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_image *img = NULL;
	char *path = elfbuild_tmppath("bad");
	int r;

	elfbuild_default(&e, 10, 3);
	c->make(&e);
	ck_assert_int_eq(elfbuild_write(&e, path), 0);
	r = kevd_image_open(path, &img, &err);
	if (r == 0)
		ck_abort_msg("%s: accepted", c->name);
	ck_assert_ptr_null(img);
	if (!strstr(err.msg, c->want))
		ck_abort_msg("%s: message '%s' does not say '%s'", c->name, err.msg, c->want);
	ck_assert_ptr_nonnull(strstr(err.msg, path));  /* names the file */
	ck_assert_int_ne(err.errnum, 0);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(not_regular_files)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_image *img = NULL;
	char *fifo = elfbuild_tmppath("fifo");

	ck_assert_int_lt(kevd_image_open("/tmp", &img, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "'/tmp': not a regular file"));
	ck_assert_int_eq(kevd_image_open("/nonexistent/kernel.elf", &img, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "No such file"));
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_lt(kevd_image_open(fifo, &img, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a regular file"));
	ck_assert_int_lt(kevd_image_open("/dev/null", &img, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a regular file"));
	ck_assert_ptr_null(img);
	unlink(fifo);
	free(fifo);
}
END_TEST

/* An initrd as a flat part of the image: its bytes at its address, zero to
 * the end of its last page, its pages counted, checked like the file, and
 * refused where it overlaps or twice. */
START_TEST(flat_part)
{
	struct eb_elf e;
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_image_identity before, after;
	char *path, flat[] = "/tmp/kevd-flat-XXXXXX";
	unsigned char data[3 * 4096 + 100], buf[4 * 4096];
	struct kevd_image *img;
	uint64_t pages, bytes = 0;
	int fd;

	elfbuild_default(&e, 10, 0);
	img = open_ok(&e, &path);
	pages = kevd_image_pages(img);
	kevd_image_identity(img, &before);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7 + 3);
	fd = mkstemp(flat);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	/* Overlapping the PT_LOAD at 1 MiB: refused, the image unchanged. */
	ck_assert_int_eq(kevd_image_add_flat(img, dup(fd), flat, KEVD_GPA(0x100000), sizeof(data), &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "overlaps PT_LOAD"));
	ck_assert_uint_eq(kevd_image_pages(img), pages);
	ck_assert_int_eq(kevd_image_add_flat(img, dup(fd), flat, KEVD_GPA(0x800123), sizeof(data), &err), -EINVAL);
	ck_assert_int_eq(kevd_image_add_flat(img, dup(fd), flat, KEVD_GPA(0x800000), sizeof(data), &err), 0);
	ck_assert_uint_eq(kevd_image_pages(img), pages + 4);
	ck_assert(kevd_image_has_page(img, 0x803));
	ck_assert(!kevd_image_has_page(img, 0x804));
	ck_assert_str_eq(kevd_image_flat_path(img), flat);
	kevd_image_identity(img, &after);
	ck_assert(!kevd_image_identity_equal(&before, &after));
	ck_assert_uint_eq(after.flat_gpa, 0x800000);
	memset(buf, 0xee, sizeof(buf));
	ck_assert_int_eq(kevd_image_fill(img, 0x800, 4, buf, &bytes, &err), 0);
	ck_assert_uint_eq(bytes, sizeof(data));
	ck_assert_int_eq(memcmp(buf, data, sizeof(data)), 0);
	for (size_t i = sizeof(data); i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], 0);
	ck_assert_int_eq(kevd_image_add_flat(img, dup(fd), flat, KEVD_GPA(0x900000), 4096, &err), -EBUSY);
	/* The flat file shrinks: its pages fail, naming it. */
	ck_assert_int_eq(ftruncate(fd, 4096), 0);
	ck_assert_int_eq(kevd_image_fill(img, 0x800, 4, buf, NULL, &err), -ESTALE);
	ck_assert_ptr_nonnull(strstr(err.msg, flat));
	close(fd);
	unlink(flat);
	kevd_image_free(img);
	unlink(path);
	free(path);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("image");
	TCase *t = tcase_create("image");

	tcase_add_test(t, default_image);
	tcase_add_test(t, fill_content);
	tcase_add_test(t, shared_page_and_entry_forms);
	tcase_add_test(t, elf32_multiboot2_pvh);
	tcase_add_test(t, check_ram);
	tcase_add_test(t, flat_part);
	tcase_add_test(t, file_changes_detected);
	tcase_add_loop_test(t, malformed, 0, (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(t, not_regular_files);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return kevd_test_run(suite());
}
