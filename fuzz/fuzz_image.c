/*
 * Fuzz target: the ELF image validator and the page filler (pager/image.c).
 *
 * The input is the whole image file, handed over through a memfd as an
 * image directory would hand an open file to kevd_image_open_fd().  When the
 * image is accepted, every query on it is checked against what the
 * validator promises (image.h), and pages are filled from every extent and
 * compared byte for byte with what the input itself says they hold: file
 * bytes below p_filesz, zeroes above it and between segments.  At most
 * FILL_CAP pages are filled per input, so an image with a huge p_memsz
 * costs no more than a small one.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "pager/image.h"

#define FILL_CAP 64         /* pages filled per input */
#define FILL_CHUNK 8        /* pages per kevd_image_fill() call at most */
#define RAM_BYTES (256ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "fuzz_image: %s:%d: invariant failed: %s\n", __FILE__,  \
				__LINE__, #cond);                                                \
			abort();                                                                 \
		}                                                                                \
	} while (0)

/* What guest page GFN must hold according to the input bytes themselves. */
static void expected_page(const struct kevd_image *img, const uint8_t *data, uint64_t gfn, uint8_t *out)
{
	uint64_t start = gfn << KEVD_PAGE_SHIFT, end = start + KEVD_PAGE_SIZE;

	memset(out, 0, KEVD_PAGE_SIZE);
	for (size_t i = 0; i < kevd_image_segment_count(img); i++) {
		const struct kevd_image_segment *s = kevd_image_segment(img, i);
		uint64_t a = s->paddr.v > start ? s->paddr.v : start;
		uint64_t fe = s->paddr.v + s->filesz;
		uint64_t b = fe < end ? fe : end;

		if (b > a)
			memcpy(out + (a - start), data + s->offset + (a - s->paddr.v), b - a);
	}
}

static void check_queries(const struct kevd_image *img, const uint8_t *data, size_t size)
{
	uint64_t pages = 0, off;
	kevd_gpa_t e;
	bool in_seg = false;

	check(kevd_image_file_size(img) == size);
	check(kevd_image_class(img) == KEVD_IMAGE_ELF64 || kevd_image_class(img) == KEVD_IMAGE_ELF32);
	check(kevd_image_segment_count(img) > 0);
	check(kevd_image_segment(img, kevd_image_segment_count(img)) == NULL);
	check(kevd_image_extent(img, kevd_image_extent_count(img)) == NULL);

	for (size_t i = 0; i < kevd_image_segment_count(img); i++) {
		const struct kevd_image_segment *s = kevd_image_segment(img, i);

		check(s->memsz > 0 && s->filesz <= s->memsz);
		check(s->offset + s->filesz <= size);
		check(s->first_gfn < s->end_gfn);
		check(s->first_gfn == s->paddr.v >> KEVD_PAGE_SHIFT);
		check((s->end_gfn << KEVD_PAGE_SHIFT) >= s->paddr.v + s->memsz);
		check(((s->end_gfn - 1) << KEVD_PAGE_SHIFT) < s->paddr.v + s->memsz);
		if (i > 0)
			check(kevd_image_segment(img, i - 1)->paddr.v + kevd_image_segment(img, i - 1)->memsz <= s->paddr.v);
		/* A page two segments share belongs to the first of them. */
		check(kevd_image_segment_of(img, s->first_gfn) == s ||
		      (i > 0 && kevd_image_segment(img, i - 1)->end_gfn - 1 == s->first_gfn));
		check(kevd_image_segment_of(img, s->end_gfn - 1) == s || s->first_gfn == s->end_gfn - 1);
		check(kevd_image_has_page(img, s->first_gfn) && kevd_image_has_page(img, s->end_gfn - 1));
		if (kevd_image_entry(img).v >= s->paddr.v && kevd_image_entry(img).v - s->paddr.v < s->memsz)
			in_seg = true;
	}
	check(in_seg);

	for (size_t i = 0; i < kevd_image_extent_count(img); i++) {
		const struct kevd_image_extent *x = kevd_image_extent(img, i);

		check(x->first_gfn < x->end_gfn);
		if (i > 0)
			check(kevd_image_extent(img, i - 1)->end_gfn < x->first_gfn);  /* maximal runs */
		check(kevd_image_has_page(img, x->first_gfn));
		check(kevd_image_has_page(img, x->end_gfn - 1));
		check(!kevd_image_has_page(img, x->end_gfn));
		if (x->first_gfn > 0)
			check(!kevd_image_has_page(img, x->first_gfn - 1));
		pages += x->end_gfn - x->first_gfn;
	}
	check(pages == kevd_image_pages(img));
	check(!kevd_image_has_page(img, UINT64_MAX));

	if (kevd_image_pvh_entry(img, &e))
		check(e.v < (1ull << 32));
	check(kevd_image_pvh_entry(img, NULL) == kevd_image_pvh_entry(img, &e));
	if (kevd_image_multiboot2(img, &off)) {
		uint32_t magic;

		check(off % 8 == 0 && off + 16 <= size && off + 16 <= 32768);
		memcpy(&magic, data + off, 4);
		check(magic == 0xe85250d6u);
	}
}

static void fill_extents(const struct kevd_image *img, const uint8_t *data)
{
	static uint8_t buf[FILL_CHUNK * 4096], want[4096];
	uint64_t budget = FILL_CAP, bytes = 0, file_bytes = 0;
	struct kevd_error err = KEVD_ERROR_INIT;

	_Static_assert(KEVD_PAGE_SIZE == 4096, "one page of want[]");
	for (size_t i = 0; i < kevd_image_segment_count(img); i++)
		file_bytes += kevd_image_segment(img, i)->filesz;
	for (size_t i = 0; i < kevd_image_extent_count(img) && budget; i++) {
		const struct kevd_image_extent *x = kevd_image_extent(img, i);
		/* One page before the extent too: it is not backed and must be zero. */
		uint64_t gfn = x->first_gfn ? x->first_gfn - 1 : x->first_gfn;

		while (gfn < x->end_gfn && budget) {
			uint64_t n = x->end_gfn - gfn;

			if (n > FILL_CHUNK)
				n = FILL_CHUNK;
			if (n > budget)
				n = budget;
			memset(buf, 0xa5, sizeof(buf));
			check(kevd_image_fill(img, gfn, (size_t)n, buf, &bytes, &err) == 0);
			for (uint64_t p = 0; p < n; p++) {
				expected_page(img, data, gfn + p, want);
				check(memcmp(buf + p * 4096, want, 4096) == 0);
			}
			budget -= n;
			gfn += n;
		}
	}
	check(bytes <= file_bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_image *img = NULL;
	int fd = memfd_create("fuzz.elf", MFD_CLOEXEC);
	size_t done = 0;

	if (fd < 0) {
		perror("fuzz_image: memfd_create");
		abort();
	}
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);

		if (n <= 0) {
			perror("fuzz_image: write");
			abort();
		}
		done += (size_t)n;
	}
	/* Takes fd, accepted or not. */
	if (kevd_image_open_fd(fd, "fuzz.elf", &img, &err) < 0) {
		check(err.errnum != 0 && err.msg[0] != '\0');
		return 0;
	}
	check(strcmp(kevd_image_path(img), "fuzz.elf") == 0);
	check_queries(img, data, size);
	if (kevd_image_check_ram(img, RAM_BYTES, &err) == 0) {
		for (size_t i = 0; i < kevd_image_segment_count(img); i++)
			check(kevd_image_segment(img, i)->paddr.v + kevd_image_segment(img, i)->memsz <= RAM_BYTES);
	} else {
		check(err.errnum != 0);
	}
	fill_extents(img, data);
	kevd_image_free(img);
	return 0;
}
