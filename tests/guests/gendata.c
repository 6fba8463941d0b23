/*
 * gendata - write the test guest's 32 MiB data image.
 *
 * Usage: gendata OUT.bin
 * Word i (64-bit, little-endian) of the output is testguest_word(i).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testguest.h"

#define CHUNK_WORDS 65536u

int main(int argc, char **argv)
{
	static unsigned char buf[CHUNK_WORDS * 8u];
	FILE *out;
	uint64_t i = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUT.bin\n", argc > 0 ? argv[0] : "gendata");
		return 2;
	}
	out = fopen(argv[1], "wb");
	if (out == NULL) {
		fprintf(stderr, "gendata: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	while (i < TESTGUEST_DATA_WORDS) {
		unsigned k;

		for (k = 0; k < CHUNK_WORDS; k++, i++) {
			uint64_t w = testguest_word(i);
			unsigned b;

			for (b = 0; b < 8u; b++)
				buf[k * 8u + b] = (unsigned char)(w >> (8u * b));
		}
		if (fwrite(buf, 1, sizeof buf, out) != sizeof buf) {
			fprintf(stderr, "gendata: %s: write failed: %s\n", argv[1], strerror(errno));
			fclose(out);
			return 1;
		}
	}
	if (fclose(out) != 0) {
		fprintf(stderr, "gendata: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	return 0;
}
