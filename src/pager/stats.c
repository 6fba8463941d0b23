/*
 * The pager's statistics summary (kevd_pager_get_stats): the handler
 * threads' counters folded row by row of KEVD_PAGER_STATS.
 */
#include "config.h"

#include <string.h>

#include "pager/pager_internal.h"

/* A handler thread's CLOCK_MONOTONIC stamp as CLOCK_REALTIME ns. */
static int64_t realtime_of(const struct kevd_pager *p, uint64_t mono_ns)
{
	return (int64_t)(p->real_base_ns + (mono_ns - p->mono_base_ns));
}

/* Folding one handler thread's counter C into the summary's member D, by
 * the row's kind (KEVD_PAGER_STATS).  The conversion to CLOCK_REALTIME
 * keeps the order, so the earliest stamp converted is the earliest one. */
#define FOLD_SUM(d, c) (d) += load(&(c));
#define FOLD_EARLIEST(d, c) { \
		uint64_t v_ = load(&(c)); \
		if (v_ && (!(d) || realtime_of(p, v_) < (d))) \
			(d) = realtime_of(p, v_); \
	}
#define FOLD_LATEST(d, c) { \
		uint64_t v_ = load(&(c)); \
		if (v_ && realtime_of(p, v_) > (d)) \
			(d) = realtime_of(p, v_); \
	}
#define FOLD_PAGER(d, c)
#define FOLD_SETUP(d, c)
#define FOLD_MEASURED(d, c)
#define FOLD_MEMBER(field, how, json, metric, type, help) FOLD_##how(s->field, c->field)

/* Takes no lock that a fault takes: the per-thread counters and the page
 * state table's count are read with relaxed loads (see their writers), the
 * rest never changes once the pager runs.  So the summary is not one
 * instant's: each counter is read at its own moment, and a reader that
 * wants the identities of docs/pager.md waits until they hold. */
void kevd_pager_get_stats(struct kevd_pager *p, struct kevd_pager_stats *s)
{
	const struct handler *handlers = __atomic_load_n(&p->handlers, __ATOMIC_ACQUIRE);
	const struct handler *wsh = __atomic_load_n(&p->wsh, __ATOMIC_ACQUIRE);

	memset(s, 0, sizeof(*s));
	s->eager = p->cfg.eager;
	s->shared = p->cached != NULL;
	s->window_max_pages = p->cfg.window_max_pages;
	s->handler_threads = p->cfg.eager ? 0 : p->cfg.handler_threads;
	s->window_pages = p->cfg.window_pages;
	s->stripes = kevd_pagestate_stripes(p->states);
	s->image_pages = kevd_image_pages(p->img);
	s->state_entries = kevd_pagestate_count(p->states);
	if (p->cfg.eager) {
		uint64_t ns = load(&p->eager_load_ns), bytes = load(&p->eager_bytes);

		if (ns || bytes) {
			s->pages_loaded = s->image_pages;
			s->loads = kevd_image_extent_count(p->img);
		}
		s->bytes_read = bytes;
		s->eager_load_ns = ns;
		return;
	}
	/* The handler threads, then the working-set thread's prefetch. */
	for (unsigned i = 0; handlers && i <= p->cfg.handler_threads; i++) {
		const struct counters *c = i < p->cfg.handler_threads ? &handlers[i].c : wsh ? &wsh->c : NULL;

		if (!c)
			break;

		KEVD_PAGER_STATS(FOLD_MEMBER)
		for (unsigned b = 0; b < KEVD_PAGER_HIST_BUCKETS; b++)
			s->latency_hist[b] += load(&c->hist[b]);
		for (unsigned b = 0; b < KEVD_PAGER_WINDOW_BUCKETS; b++)
			s->window_hist[b] += load(&c->window_hist[b]);
		for (unsigned t = 0; t < KEVD_PAGER_MAX_TIDS; t++) {
			int32_t tid = __atomic_load_n(&c->tids[t].tid, __ATOMIC_ACQUIRE);
			uint64_t n = load(&c->tids[t].faults);
			size_t k;

			if (!tid)
				break;
			for (k = 0; k < s->nthreads && s->threads[k].tid != tid; k++)
				;
			if (k == s->nthreads) {
				if (k == KEVD_PAGER_MAX_TIDS) {
					s->faults_other_threads += n;
					continue;
				}
				s->threads[s->nthreads++] = (struct kevd_pager_thread_faults){ tid, 0 };
			}
			s->threads[k].faults += n;
		}
	}
	s->pages_loaded = s->pages_loaded_demand + s->pages_loaded_around + s->pages_prefetched;
	s->working_set = kevd_pager_ws_state(p, &s->working_set_pages);
	s->prefetch_ns = load(&p->prefetch_ns);
	s->prefetch_hits = load(&p->prefetch_hits);
	if (s->prefetch_hits == KEVD_PAGER_UNMEASURED)
		s->prefetch_unused = KEVD_PAGER_UNMEASURED;
	else
		s->prefetch_unused = load(&p->runs_pages) > s->prefetch_hits ? load(&p->runs_pages) - s->prefetch_hits : 0;
}

uint64_t kevd_pager_stats_thread_faults(const struct kevd_pager_stats *st, pid_t tid)
{
	for (size_t i = 0; tid && i < st->nthreads; i++)
		if (st->threads[i].tid == tid)
			return st->threads[i].faults;
	return 0;
}

