/*
 * A growable byte buffer of tagged records, and a reader for one.
 *
 * A record is a u32 tag, a u32 length, that many bytes, and zero padding up
 * to a multiple of 8; the integers are little-endian, and records follow one
 * another with nothing between them.  So a buffer that starts 8-aligned has
 * every payload 8-aligned too, though the reader assumes nothing of the kind.
 *
 * Writing never fails on the spot: an allocation failure sets oom and every
 * later put is dropped, so a writer puts everything and checks oom once.
 * Reading trusts nothing: every length is checked against what is left, and
 * a record that runs past the end, or whose padding is not zero, is
 * malformed.  The blob marks no end of its own, so a truncation that falls
 * exactly between two records reads as a shorter, well-formed blob; a format
 * built on it that must notice that ends with a record of its own (as
 * vmm/kvmstate.h does).
 */
#ifndef KEVD_BLOB_H
#define KEVD_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The bytes before a record's payload: tag and length. */
#define KEVD_BLOB_HEADER 8

struct kevd_blob {
	unsigned char *data;  /* owned; len bytes of records, cap allocated */
	size_t len, cap;
	bool oom;             /* a put was dropped: the blob is incomplete */
};

void kevd_blob_init(struct kevd_blob *b);
/* Frees the buffer and leaves B as kevd_blob_init() does. */
void kevd_blob_free(struct kevd_blob *b);
/* Appends one record: u32 tag, u32 length, the N bytes at P, zero padding
 * to 8 bytes.  On allocation failure (or N too long for a u32) sets b->oom
 * and drops this and every further put. */
void kevd_blob_put(struct kevd_blob *b, uint32_t tag, const void *p, size_t n);

struct kevd_blob_reader {
	const unsigned char *p;
	size_t len, off;  /* off: where the next record starts */
};

void kevd_blob_reader_init(struct kevd_blob_reader *r, const void *p, size_t len);
/* The next record: 1 = got one (*data points into the buffer, *n bytes),
 * 0 = clean end, -EBADMSG = truncated or malformed.  After -EBADMSG r->off
 * is still the offset of the bad record, for the message. */
int kevd_blob_next(struct kevd_blob_reader *r, uint32_t *tag, const void **data, size_t *n);

#endif
