/*
 * A fast, non-cryptographic 64-bit hash for integrity checks of files
 * kevd wrote itself (a snapshot's pages and parts): it catches corruption
 * and truncation, not tampering.  Four independent lanes so that a 4 KiB
 * page costs well under a microsecond: a restored page is checked on the
 * fault that loads it.
 */
#ifndef KEVD_HASH_H
#define KEVD_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t kevd_hash_mix(uint64_t x)
{
	/* splitmix64's finalizer */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline uint64_t kevd_hash64(const void *data, size_t n)
{
	const unsigned char *b = data;
	uint64_t lane[4] = { 0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full, 0x165667b19e3779f9ull,
			     0x27d4eb2f165667c5ull };
	uint64_t h, w;
	size_t i;

	for (; n >= 32; n -= 32, b += 32)
		for (i = 0; i < 4; i++) {
			memcpy(&w, b + 8 * i, 8);
			lane[i] = (lane[i] ^ w) * 0x9fb21c651e98df25ull;
			lane[i] ^= lane[i] >> 29;
		}
	h = (uint64_t)n;
	for (i = 0; i < 4; i++)
		h = kevd_hash_mix(h ^ lane[i]);
	for (; n >= 8; n -= 8, b += 8) {
		memcpy(&w, b, 8);
		h = kevd_hash_mix(h ^ w);
	}
	if (n) {
		w = 0;
		memcpy(&w, b, n);
		h = kevd_hash_mix(h ^ w ^ ((uint64_t)n << 56));
	}
	return h;
}

#endif
