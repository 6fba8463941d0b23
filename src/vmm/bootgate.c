/* Boot slots (see bootgate.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "common/time.h"
#include "vmm/bootgate.h"

struct waiter {
	struct waiter *next;
	pthread_cond_t cond;         /* CLOCK_MONOTONIC */
	bool granted;
	void *arg;                   /* the cancel callback's: what kevd_bootgate_kick() names */
	struct kevd_boot_lease lease;
};

struct slot {
	bool busy;
	uint64_t gen;                /* bumped whenever the slot is freed: stale leases do nothing */
	uint64_t deadline_ns;        /* CLOCK_MONOTONIC: when the lease runs out */
};

struct kevd_bootgate {
	pthread_mutex_t lock;        /* protects everything below */
	unsigned limit;              /* 0 = none */
	uint64_t lease_ns;
	unsigned busy;
	unsigned used;               /* slots[0, used) have ever been busy: what expiry scans */
	struct waiter *head, **tail; /* the line, first come first */
	unsigned nwaiting;
	struct kevd_bootgate_stats st;
	struct slot slots[KEVD_BOOTGATE_MAX_SLOTS];
};

int kevd_bootgate_check(unsigned slots, unsigned lease_ms, struct kevd_error *err)
{
	if (slots > KEVD_BOOTGATE_MAX_SLOTS)
		return kevd_error_set(err, EINVAL, "boot slots: %u is more than %u", slots, KEVD_BOOTGATE_MAX_SLOTS);
	if (lease_ms < 1 || lease_ms > 3600000)
		return kevd_error_set(err, EINVAL, "boot slots: a lease of %u ms is not in 1..3600000", lease_ms);
	return 0;
}

int kevd_bootgate_new(unsigned slots, unsigned lease_ms, struct kevd_bootgate **out, struct kevd_error *err)
{
	struct kevd_bootgate *g;

	*out = NULL;
	if (kevd_bootgate_check(slots, lease_ms, err) < 0)
		return -EINVAL;
	if (!(g = calloc(1, sizeof(*g))))
		return kevd_error_sys(err, ENOMEM, "boot slots");
	pthread_mutex_init(&g->lock, NULL);
	g->limit = slots;
	g->lease_ns = (uint64_t)lease_ms * 1000000u;
	g->tail = &g->head;
	*out = g;
	return 0;
}

void kevd_bootgate_free(struct kevd_bootgate *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static void free_slot(struct kevd_bootgate *g, unsigned i)
{
	g->slots[i].busy = false;
	g->slots[i].gen++;
	g->busy--;
}

static bool may_grant(const struct kevd_bootgate *g)
{
	/* Without a limit the slots' table still bounds the leases held. */
	return g->busy < KEVD_BOOTGATE_MAX_SLOTS && (!g->limit || g->busy < g->limit);
}

/* Takes a free slot (there is one: may_grant() held). */
static void take_slot(struct kevd_bootgate *g, uint64_t now, struct kevd_boot_lease *lease)
{
	unsigned i = 0;

	while (g->slots[i].busy)
		i++;
	g->slots[i].busy = true;
	g->slots[i].deadline_ns = now + g->lease_ns;
	if (i >= g->used)
		g->used = i + 1;
	g->busy++;
	g->st.granted++;
	*lease = (struct kevd_boot_lease){ .slot = i, .gen = g->slots[i].gen };
}

/* Frees the leases that ran out; returns the earliest deadline left (0:
 * none). */
static uint64_t expire(struct kevd_bootgate *g, uint64_t now)
{
	uint64_t next = 0;

	for (unsigned i = 0; i < g->used; i++) {
		struct slot *s = &g->slots[i];

		if (!s->busy)
			continue;
		if (s->deadline_ns <= now) {
			free_slot(g, i);
			g->st.expired++;
		} else if (!next || s->deadline_ns < next) {
			next = s->deadline_ns;
		}
	}
	return next;
}

/* Grants the first in line as long as there are slots, and wakes the new
 * first in line so that it watches the next deadline. */
static void serve(struct kevd_bootgate *g, uint64_t now)
{
	expire(g, now);
	while (g->head && may_grant(g)) {
		struct waiter *w = g->head;

		g->head = w->next;
		if (!g->head)
			g->tail = &g->head;
		g->nwaiting--;
		take_slot(g, now, &w->lease);
		w->granted = true;
		pthread_cond_signal(&w->cond);
	}
	if (g->head)
		pthread_cond_signal(&g->head->cond);
}

static void unlink_waiter(struct kevd_bootgate *g, struct waiter *w)
{
	struct waiter **p = &g->head;

	while (*p != w)
		p = &(*p)->next;
	*p = w->next;
	if (g->tail == &w->next)
		g->tail = p;
	g->nwaiting--;
}

static struct timespec to_timespec(uint64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u) };
}

int kevd_bootgate_enter(struct kevd_bootgate *g, bool (*cancelled)(void *), void *arg,
			struct kevd_boot_lease *lease, uint64_t *waited_ns)
{
	uint64_t t0 = kevd_now_ns(CLOCK_MONOTONIC), now = t0;
	struct waiter w = { .next = NULL, .arg = arg };
	pthread_condattr_t ca;
	int r = 0;

	if (waited_ns)
		*waited_ns = 0;
	pthread_mutex_lock(&g->lock);
	expire(g, now);
	if (cancelled(arg)) {
		g->st.cancelled++;
		pthread_mutex_unlock(&g->lock);
		return -ECANCELED;
	}
	if (!g->head && may_grant(g)) {
		take_slot(g, now, lease);
		pthread_mutex_unlock(&g->lock);
		return 0;
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &ca);
	pthread_condattr_destroy(&ca);
	*g->tail = &w;
	g->tail = &w.next;
	g->nwaiting++;
	for (;;) {
		serve(g, now);
		if (w.granted)
			break;
		if (cancelled(arg)) {
			unlink_waiter(g, &w);
			g->st.cancelled++;
			serve(g, now);  /* a new first in line watches the deadline */
			r = -ECANCELED;
			break;
		}
		if (g->head == &w) {
			/* Every slot is held (serve() would have granted one): the
			 * first lease to run out frees one. */
			uint64_t next = expire(g, now);
			struct timespec ts = to_timespec(next);

			if (next)
				pthread_cond_timedwait(&w.cond, &g->lock, &ts);
			else
				pthread_cond_wait(&w.cond, &g->lock);
		} else {
			pthread_cond_wait(&w.cond, &g->lock);
		}
		now = kevd_now_ns(CLOCK_MONOTONIC);
	}
	if (r == 0) {
		*lease = w.lease;
		g->st.waited++;
		g->st.wait_ns += now - t0;
		if (waited_ns)
			*waited_ns = now - t0;
	}
	pthread_mutex_unlock(&g->lock);
	pthread_cond_destroy(&w.cond);
	return r;
}

void kevd_bootgate_leave(struct kevd_bootgate *g, const struct kevd_boot_lease *lease)
{
	pthread_mutex_lock(&g->lock);
	if (lease->slot < KEVD_BOOTGATE_MAX_SLOTS && g->slots[lease->slot].busy &&
	    g->slots[lease->slot].gen == lease->gen) {
		free_slot(g, lease->slot);
		serve(g, kevd_now_ns(CLOCK_MONOTONIC));
	}
	pthread_mutex_unlock(&g->lock);
}

int kevd_bootgate_set(struct kevd_bootgate *g, unsigned slots, unsigned lease_ms, struct kevd_error *err)
{
	if (kevd_bootgate_check(slots, lease_ms, err) < 0)
		return -EINVAL;
	pthread_mutex_lock(&g->lock);
	g->limit = slots;
	g->lease_ns = (uint64_t)lease_ms * 1000000u;
	serve(g, kevd_now_ns(CLOCK_MONOTONIC));
	pthread_mutex_unlock(&g->lock);
	return 0;
}

void kevd_bootgate_kick(struct kevd_bootgate *g, void *arg)
{
	pthread_mutex_lock(&g->lock);
	for (struct waiter *w = g->head; w; w = w->next)
		if (w->arg == arg)
			pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&g->lock);
}

void kevd_bootgate_stats(struct kevd_bootgate *g, struct kevd_bootgate_stats *out)
{
	pthread_mutex_lock(&g->lock);
	expire(g, kevd_now_ns(CLOCK_MONOTONIC));
	*out = g->st;
	out->slots = g->limit;
	out->lease_ms = (unsigned)(g->lease_ns / 1000000u);
	out->busy = g->busy;
	out->waiting = g->nwaiting;
	pthread_mutex_unlock(&g->lock);
}
