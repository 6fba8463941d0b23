/*
 * kevctl's human-readable output: aligned tables, durations, ages and the
 * load-latency histogram drawn with '#'.  Pure formatting; nothing here
 * talks to kevd.
 */
#ifndef KEVCTL_FORMAT_H
#define KEVCTL_FORMAT_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define KEVCTL_TABLE_COLS 8

/* A table of strings: columns sized to their widest cell when printed. */
struct kevctl_table {
	size_t ncols;
	size_t nrows;   /* including the header row */
	size_t cap;
	char **cells;   /* nrows * ncols, owned */
};

int kevctl_table_init(struct kevctl_table *t, size_t ncols, const char *const *header);
/* Appends a row of NCOLS printf-formatted cells: each argument is one
 * already formatted string. */
int kevctl_table_add(struct kevctl_table *t, const char *const *cells);
void kevctl_table_print(const struct kevctl_table *t, FILE *f);
void kevctl_table_free(struct kevctl_table *t);

/* "12.3 ms", "850 us", "2.00 s"; "-" for a JSON null. */
void kevctl_format_ns(char *buf, size_t size, const json_t *ns);
/* The age of an RFC 3339 UTC time stamp ("2026-11-25T15:16:32Z") as
 * "42s", "5m", "3h", "2d"; "?" if unparsable. */
void kevctl_format_age(char *buf, size_t size, const char *created_at);
/* The latency_histogram array of a paging answer, one bar per bucket from
 * the first non-empty to the last non-empty. */
void kevctl_format_histogram(FILE *f, const json_t *histogram);

/* The string KEY of object O, or "" when it is missing or not a string:
 * the daemon's answers are printed, never trusted to have every field.
 * Control bytes in it are shown as \xNN (O is changed to hold that). */
const char *kevctl_str(const json_t *o, const char *key);
/* S into OUT (SIZE bytes, truncated), control bytes as \xNN: for
 * whatever of the daemon's a terminal shows. */
void kevctl_escape(char *out, size_t size, const char *s);

#endif
