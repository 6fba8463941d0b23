/*
 * Lock-striped hash of page state words (see pagestate.h).
 *
 * The gfn's hash picks a stripe; each stripe is an independent chained hash
 * table with its own mutex, its own bucket array and its own node pool, so
 * faults on different pages rarely meet on a lock, and a lock is only held
 * for a lookup or an insert, never while a page loads.  Nodes come from
 * chunks that are only freed with the table, which is what keeps a state
 * word's address stable for the table's lifetime.
 *
 * The state word itself is changed with atomics only.  Waiting uses a
 * second LOADING value (LOADING_WAITED) set by the first sleeper, so a
 * publish that finds plain LOADING knows nobody sleeps and skips the
 * FUTEX_WAKE system call.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fault.h"
#include "pager/pagestate.h"

#define NODES_PER_CHUNK 256
#define MAX_STRIPES 4096

struct node {
	uint64_t gfn;
	struct node *next;   /* bucket chain; written under the stripe lock */
	uint32_t state;      /* enum kevd_page_state; atomics only, no lock */
};

struct chunk {
	struct chunk *next;
	struct node nodes[NODES_PER_CHUNK];
};

struct stripe {
	pthread_mutex_t lock;  /* protects buckets, nbuckets, chunks, used; serialises writes of count */
	struct node **buckets;
	size_t nbuckets;       /* power of two */
	size_t count;          /* nodes handed out; written under lock (relaxed store), read without it */
	struct chunk *chunks;
	size_t used;           /* nodes handed out from chunks->nodes */
	char pad[64];          /* keep neighbouring stripes' locks off one cache line */
};

struct kevd_pagestate {
	unsigned nstripes;     /* power of two; immutable */
	unsigned shift;        /* 64 - log2(nstripes) */
	struct stripe *stripes;
};

static inline uint64_t mix(uint64_t gfn)
{
	return gfn * 0x9e3779b97f4a7c15ull;
}

int kevd_pagestate_new(unsigned stripes, struct kevd_pagestate **out, struct kevd_error *err)
{
	struct kevd_pagestate *ps;
	unsigned n = 1, log = 0;

	if (stripes == 0 || stripes > MAX_STRIPES)
		return kevd_error_set(err, EINVAL, "page state table: %u stripes is outside 1..%u", stripes, MAX_STRIPES);
	while (n < stripes) {
		n <<= 1;
		log++;
	}
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return kevd_error_sys(err, ENOMEM, "page state table");
	ps->stripes = calloc(n, sizeof(*ps->stripes));
	if (!ps->stripes) {
		free(ps);
		return kevd_error_sys(err, ENOMEM, "page state table");
	}
	ps->nstripes = n;
	ps->shift = 64 - log;
	for (unsigned i = 0; i < n; i++)
		pthread_mutex_init(&ps->stripes[i].lock, NULL);
	*out = ps;
	return 0;
}

void kevd_pagestate_free(struct kevd_pagestate *ps)
{
	if (!ps)
		return;
	for (unsigned i = 0; i < ps->nstripes; i++) {
		struct stripe *s = &ps->stripes[i];
		struct chunk *c = s->chunks;

		while (c) {
			struct chunk *next = c->next;
			free(c);
			c = next;
		}
		free(s->buckets);
		pthread_mutex_destroy(&s->lock);
	}
	free(ps->stripes);
	free(ps);
}

static inline struct stripe *stripe_of(struct kevd_pagestate *ps, uint64_t h)
{
	return ps->nstripes == 1 ? &ps->stripes[0] : &ps->stripes[h >> ps->shift];
}

/* Bucket index from the low bits of the hash; the stripe used the high ones. */
static inline size_t bucket_of(const struct stripe *s, uint64_t h)
{
	return (size_t)(h ^ (h >> 29)) & (s->nbuckets - 1);
}

static struct node *lookup(const struct stripe *s, uint64_t h, uint64_t gfn)
{
	if (!s->nbuckets)
		return NULL;
	for (struct node *n = s->buckets[bucket_of(s, h)]; n; n = n->next)
		if (n->gfn == gfn)
			return n;
	return NULL;
}

static int grow(struct stripe *s)
{
	size_t nb = s->nbuckets ? s->nbuckets * 2 : 64;
	struct node **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct node *n = s->buckets[i];

		while (n) {
			struct node *next = n->next;
			uint64_t h = mix(n->gfn);
			size_t j = (size_t)(h ^ (h >> 29)) & (nb - 1);

			n->next = b[j];
			b[j] = n;
			n = next;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = nb;
	return 0;
}

uint32_t *kevd_pagestate_find(struct kevd_pagestate *ps, uint64_t gfn)
{
	uint64_t h = mix(gfn);
	struct stripe *s = stripe_of(ps, h);
	struct node *n;

	pthread_mutex_lock(&s->lock);
	n = lookup(s, h, gfn);
	pthread_mutex_unlock(&s->lock);
	return n ? &n->state : NULL;
}

uint32_t *kevd_pagestate_get(struct kevd_pagestate *ps, uint64_t gfn)
{
	uint64_t h = mix(gfn);
	struct stripe *s = stripe_of(ps, h);
	struct node *n;
	size_t b;

	pthread_mutex_lock(&s->lock);
	n = lookup(s, h, gfn);
	if (n || kevd_fault("state_alloc"))
		goto out;
	if (s->count >= s->nbuckets && grow(s) < 0)
		goto out;
	if (!s->chunks || s->used == NODES_PER_CHUNK) {
		struct chunk *c = malloc(sizeof(*c));

		if (!c)
			goto out;
		c->next = s->chunks;
		s->chunks = c;
		s->used = 0;
	}
	n = &s->chunks->nodes[s->used++];
	n->gfn = gfn;
	__atomic_store_n(&n->state, KEVD_PAGE_UNLOADED, __ATOMIC_RELAXED);
	b = bucket_of(s, h);
	n->next = s->buckets[b];
	s->buckets[b] = n;
	/* A store, not a read-modify-write: the lock already makes this
	 * thread the only writer of count. */
	__atomic_store_n(&s->count, s->count + 1, __ATOMIC_RELAXED);
out:
	pthread_mutex_unlock(&s->lock);
	return n ? &n->state : NULL;
}

/* Without the stripe locks, so that reading statistics never makes a fault
 * wait.  That is safe because each stripe's count is written only by the
 * holder of its lock, with an atomic store, and only ever grows: a relaxed
 * load returns a value the count really had (never a torn or lost one), and
 * the sum lies between the total at the start and at the end of the walk,
 * the same promise as the pager's per-thread counters.  Nothing but the
 * counts is read; the stripe array itself never changes while the table
 * lives. */
uint64_t kevd_pagestate_count(const struct kevd_pagestate *ps)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < ps->nstripes; i++)
		total += __atomic_load_n(&ps->stripes[i].count, __ATOMIC_RELAXED);
	return total;
}

unsigned kevd_pagestate_stripes(const struct kevd_pagestate *ps)
{
	return ps->nstripes;
}

bool kevd_pagestate_claim(uint32_t *word)
{
	uint32_t expected = KEVD_PAGE_UNLOADED;

	return __atomic_compare_exchange_n(word, &expected, KEVD_PAGE_LOADING, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static long futex(uint32_t *uaddr, int op, uint32_t val)
{
	return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

void kevd_pagestate_publish(uint32_t *word, enum kevd_page_state final)
{
	uint32_t old = __atomic_exchange_n(word, (uint32_t)final, __ATOMIC_RELEASE);

	if (old == KEVD_PAGE_LOADING_WAITED)
		futex(word, FUTEX_WAKE_PRIVATE, INT_MAX);
}

enum kevd_page_state kevd_pagestate_wait(uint32_t *word)
{
	for (;;) {
		uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);

		if (v == KEVD_PAGE_LOADING) {
			/* Tell the loader that somebody sleeps; retry on a lost race. */
			if (!__atomic_compare_exchange_n(word, &v, KEVD_PAGE_LOADING_WAITED, false,
							 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				continue;
			v = KEVD_PAGE_LOADING_WAITED;
		}
		if (v != KEVD_PAGE_LOADING_WAITED)
			return (enum kevd_page_state)v;
		/* EAGAIN (word changed) and EINTR both mean: look again. */
		futex(word, FUTEX_WAIT_PRIVATE, KEVD_PAGE_LOADING_WAITED);
	}
}

enum kevd_page_state kevd_pagestate_read(const uint32_t *word)
{
	uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);

	return v == KEVD_PAGE_LOADING_WAITED ? KEVD_PAGE_LOADING : (enum kevd_page_state)v;
}
