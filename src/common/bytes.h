/*
 * Little-endian stores into byte buffers that stand for guest memory or
 * firmware tables: byte by byte, so no alignment or aliasing assumption,
 * and the same result on any host.
 */
#ifndef KEVD_BYTES_H
#define KEVD_BYTES_H

#include <stddef.h>
#include <stdint.h>

static inline void kevd_put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static inline void kevd_put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void kevd_put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline size_t kevd_align8(size_t x)
{
	return (x + 7) & ~(size_t)7;
}

#endif
