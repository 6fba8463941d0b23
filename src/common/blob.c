/*
 * Tagged records in a byte buffer (see blob.h).  The integers are stored
 * and read byte by byte, little-endian, so neither side depends on the
 * host's byte order or on the buffer's alignment.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/blob.h"
#include "common/bytes.h"

#define BLOB_MIN_CAP 256

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void kevd_blob_init(struct kevd_blob *b)
{
	*b = (struct kevd_blob){ .data = NULL };
}

void kevd_blob_free(struct kevd_blob *b)
{
	free(b->data);
	kevd_blob_init(b);
}

/* Room for NEED more bytes, doubling so that many small puts stay cheap. */
static bool reserve(struct kevd_blob *b, size_t need)
{
	size_t cap = b->cap ? b->cap : BLOB_MIN_CAP;
	unsigned char *d;

	if (need > SIZE_MAX - b->len)
		return false;
	while (cap - b->len < need) {
		if (cap > SIZE_MAX / 2)
			return false;
		cap *= 2;
	}
	if (cap == b->cap)
		return true;
	d = realloc(b->data, cap);
	if (!d)
		return false;
	b->data = d;
	b->cap = cap;
	return true;
}

void kevd_blob_put(struct kevd_blob *b, uint32_t tag, const void *p, size_t n)
{
	unsigned char *q;
	size_t padded;

	if (b->oom)
		return;
	if (n > UINT32_MAX || !reserve(b, KEVD_BLOB_HEADER + kevd_align8(n))) {
		b->oom = true;
		return;
	}
	padded = kevd_align8(n);
	q = b->data + b->len;
	kevd_put32(q, tag);
	kevd_put32(q + 4, (uint32_t)n);
	if (n)
		memcpy(q + KEVD_BLOB_HEADER, p, n);
	memset(q + KEVD_BLOB_HEADER + n, 0, padded - n);
	b->len += KEVD_BLOB_HEADER + padded;
}

void kevd_blob_reader_init(struct kevd_blob_reader *r, const void *p, size_t len)
{
	*r = (struct kevd_blob_reader){ .p = p, .len = len, .off = 0 };
}

int kevd_blob_next(struct kevd_blob_reader *r, uint32_t *tag, const void **data, size_t *n)
{
	size_t left = r->len - r->off, len, padded;
	const unsigned char *q = r->p + r->off;

	if (left == 0)
		return 0;
	if (left < KEVD_BLOB_HEADER)
		return -EBADMSG;
	len = get32(q + 4);
	padded = kevd_align8(len);
	/* The padding is part of the record: a blob cut inside it is cut. */
	if (padded > left - KEVD_BLOB_HEADER)
		return -EBADMSG;
	for (size_t i = len; i < padded; i++)
		if (q[KEVD_BLOB_HEADER + i])
			return -EBADMSG;
	*tag = get32(q);
	*data = q + KEVD_BLOB_HEADER;
	*n = len;
	r->off += KEVD_BLOB_HEADER + padded;
	return 1;
}
