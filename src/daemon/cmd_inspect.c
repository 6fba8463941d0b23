/*
 * `kevd inspect PATH [--json]`: what the pager sees in a kernel image, or
 * the one-line reason it rejects it (exit 1).
 */
#include "config.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon/commands.h"
#include "pager/image.h"

static void flags_str(uint32_t f, char out[4])
{
	out[0] = f & 4 ? 'R' : '-';
	out[1] = f & 2 ? 'W' : '-';
	out[2] = f & 1 ? 'X' : '-';
	out[3] = '\0';
}

static int print_json(const struct kevd_image *img)
{
	json_t *o = json_object(), *segs = json_array(), *protos = json_array();
	kevd_gpa_t pvh;
	uint64_t mb2;
	char *s;

	for (size_t i = 0; i < kevd_image_segment_count(img); i++) {
		const struct kevd_image_segment *g = kevd_image_segment(img, i);
		char fl[4];

		flags_str(g->flags, fl);
		json_array_append_new(segs, json_pack("{s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:s}",
			"phdr", (int)g->phdr_index, "paddr", (json_int_t)g->paddr.v,
			"vaddr", (json_int_t)g->vaddr, "offset", (json_int_t)g->offset,
			"filesz", (json_int_t)g->filesz, "memsz", (json_int_t)g->memsz,
			"pages", (json_int_t)(g->end_gfn - g->first_gfn), "flags", fl));
	}
	if (kevd_image_multiboot2(img, &mb2))
		json_array_append_new(protos, json_pack("{s:s,s:I}", "name", "multiboot2",
							"header_offset", (json_int_t)mb2));
	if (kevd_image_pvh_entry(img, &pvh))
		json_array_append_new(protos, json_pack("{s:s,s:I}", "name", "pvh", "entry",
							(json_int_t)pvh.v));
	json_object_set_new(o, "path", json_string(kevd_image_path(img)));
	json_object_set_new(o, "class", json_string(kevd_image_class(img) == KEVD_IMAGE_ELF64 ? "ELF64" : "ELF32"));
	json_object_set_new(o, "file_size", json_integer((json_int_t)kevd_image_file_size(img)));
	json_object_set_new(o, "elf_entry", json_integer((json_int_t)kevd_image_elf_entry(img)));
	json_object_set_new(o, "entry", json_integer((json_int_t)kevd_image_entry(img).v));
	json_object_set_new(o, "image_pages", json_integer((json_int_t)kevd_image_pages(img)));
	json_object_set_new(o, "segments", segs);
	json_object_set_new(o, "boot_protocols", protos);
	s = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	if (!s)
		return 1;
	puts(s);
	free(s);
	return 0;
}

static void print_text(const struct kevd_image *img)
{
	kevd_gpa_t pvh;
	uint64_t mb2;
	bool any = false;

	printf("image:   %s (%s %s, %llu bytes)\n", kevd_image_path(img),
	       kevd_image_class(img) == KEVD_IMAGE_ELF64 ? "ELF64" : "ELF32",
	       kevd_image_class(img) == KEVD_IMAGE_ELF64 ? "x86-64" : "i386",
	       (unsigned long long)kevd_image_file_size(img));
	printf("entry:   0x%llx (physical 0x%llx)\n", (unsigned long long)kevd_image_elf_entry(img),
	       (unsigned long long)kevd_image_entry(img).v);
	printf("%-6s %-37s %-27s %8s %s\n", "phdr", "guest-physical", "file", "pages", "flags");
	for (size_t i = 0; i < kevd_image_segment_count(img); i++) {
		const struct kevd_image_segment *g = kevd_image_segment(img, i);
		char fl[4];

		flags_str(g->flags, fl);
		printf("%-6u 0x%016llx-0x%016llx 0x%011llx-0x%011llx %8llu %s\n", g->phdr_index,
		       (unsigned long long)g->paddr.v, (unsigned long long)(g->paddr.v + g->memsz),
		       (unsigned long long)g->offset, (unsigned long long)(g->offset + g->filesz),
		       (unsigned long long)(g->end_gfn - g->first_gfn), fl);
	}
	printf("pages:   %llu image-backed guest pages (%llu KiB)\n",
	       (unsigned long long)kevd_image_pages(img), (unsigned long long)kevd_image_pages(img) * 4);
	printf("boot:   ");
	if (kevd_image_multiboot2(img, &mb2)) {
		printf(" multiboot2 (header at file offset 0x%llx)", (unsigned long long)mb2);
		any = true;
	}
	if (kevd_image_pvh_entry(img, &pvh)) {
		printf(" pvh (entry 0x%llx)", (unsigned long long)pvh.v);
		any = true;
	}
	printf("%s\n", any ? "" : " none found");
}

int kevd_cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_image *img = NULL;
	bool json = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: kevd inspect PATH [--json]\n");
			return 0;
		default:
			fprintf(stderr, "usage: kevd inspect PATH [--json]\n");
			return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "kevd inspect: expected exactly one image path\n");
		return 2;
	}
	if (kevd_image_open(argv[optind], &img, &err) < 0) {
		fprintf(stderr, "kevd: %s\n", err.msg);
		return 1;
	}
	if (json)
		rc = print_json(img);
	else {
		print_text(img);
		rc = 0;
	}
	kevd_image_free(img);
	return rc;
}
