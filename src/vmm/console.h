/*
 * A VM's console: a bounded byte log that keeps the newest bytes.  Every
 * byte gets an offset counted from the start of the VM, so a reader can
 * poll with "everything since offset N" and learn when bytes it never saw
 * were dropped.  Optionally mirrors every byte to a file descriptor (the
 * terminal in `kevd run`).
 */
#ifndef KEVD_CONSOLE_H
#define KEVD_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct kevd_console;

int kevd_console_new(size_t capacity, int mirror_fd, struct kevd_console **out, struct kevd_error *err);
void kevd_console_free(struct kevd_console *c);

void kevd_console_put(struct kevd_console *c, const void *bytes, size_t n);

/* Copies up to LEN bytes starting at OFFSET (clamped to the oldest byte
 * kept) into BUF; *START gets the offset of the first byte copied and
 * *END the offset after the newest byte written so far.  Returns the count. */
size_t kevd_console_read(struct kevd_console *c, uint64_t offset, void *buf, size_t len,
			 uint64_t *start, uint64_t *end);

uint64_t kevd_console_total(struct kevd_console *c);

/* A restored VM's console: the log as the snapshot had it, the newest
 * byte at offset TOTAL, without mirroring it (it was shown once). */
void kevd_console_restore(struct kevd_console *c, uint64_t total, const void *bytes, size_t n);

#endif
