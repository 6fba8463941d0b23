/*
 * Per-page state machines, kept in a lock-striped hash keyed by guest page
 * number.  Entries are created on first use, so the table costs memory in
 * proportion to the pages touched, not to the image.  An entry never moves
 * or goes away while the table lives, so a caller may keep the pointer to
 * its state word and change it with compare-and-swap outside any lock:
 *
 *   UNLOADED --claim--> LOADING --publish--> MAPPED
 *       ^                      \--publish--> FAILED
 *       \-------publish---------/   (a read-ahead giving its pages back)
 *
 * Exactly one thread at a time wins the claim; it loads the page (or
 * gives it back); every other thread that meets LOADING sleeps on the
 * word (futex) until it is published.
 */
#ifndef KEVD_PAGESTATE_H
#define KEVD_PAGESTATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

enum kevd_page_state {
	KEVD_PAGE_UNLOADED = 0,
	KEVD_PAGE_LOADING = 1,
	KEVD_PAGE_LOADING_WAITED = 2,  /* LOADING, and someone sleeps on the word */
	KEVD_PAGE_MAPPED = 3,
	KEVD_PAGE_FAILED = 4,
};

struct kevd_pagestate;

/* STRIPES is rounded up to a power of two (1..4096). */
int kevd_pagestate_new(unsigned stripes, struct kevd_pagestate **out, struct kevd_error *err);
void kevd_pagestate_free(struct kevd_pagestate *ps);

/* The state word of GFN, created UNLOADED if absent; NULL only when out of
 * memory. */
uint32_t *kevd_pagestate_get(struct kevd_pagestate *ps, uint64_t gfn);
/* The state word of GFN if it exists, else NULL (the page is UNLOADED). */
uint32_t *kevd_pagestate_find(struct kevd_pagestate *ps, uint64_t gfn);
/* Entries created so far; takes no lock (a fault never waits for it). */
uint64_t kevd_pagestate_count(const struct kevd_pagestate *ps);
unsigned kevd_pagestate_stripes(const struct kevd_pagestate *ps);

/* UNLOADED -> LOADING; true when this caller won the page. */
bool kevd_pagestate_claim(uint32_t *word);
/* LOADING -> FINAL (MAPPED or FAILED, or UNLOADED to give the page back:
 * a sleeper then finds it UNLOADED and may claim it), waking every
 * sleeper. */
void kevd_pagestate_publish(uint32_t *word, enum kevd_page_state final);
/* Sleeps while the word is LOADING; returns the state it then has. */
enum kevd_page_state kevd_pagestate_wait(uint32_t *word);
enum kevd_page_state kevd_pagestate_read(const uint32_t *word);

#endif
