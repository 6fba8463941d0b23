/*
 * tests/hash64 FILE: prints kevd_hash64 of FILE's bytes the way a snapshot
 * manifest writes it (0x and 16 hex digits), so that the shell tests can
 * forge a file that passes its checksum and reach the checks behind it.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/hash.h"

int main(int argc, char **argv)
{
	FILE *f;
	char *buf;
	long n;

	if (argc != 2) {
		fprintf(stderr, "usage: hash64 FILE\n");
		return 2;
	}
	f = fopen(argv[1], "rbe");
	if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		perror(argv[1]);
		return 1;
	}
	buf = malloc(n ? (size_t)n : 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "hash64: cannot read %s\n", argv[1]);
		return 1;
	}
	printf("0x%016" PRIx64 "\n", kevd_hash64(buf, (size_t)n));
	free(buf);
	fclose(f);
	return 0;
}
