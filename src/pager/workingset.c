/*
 * The working set (pager.h; docs/pager.md, "Working set"): recording the
 * pages a pager loads, and prefetching such a list later.
 *
 * Recording: every load a handler thread completes appends its run to the
 * recording, under the recording's mutex (taken once per load, and only
 * by a recording pager), until the guest has run record_ms.  The
 * working-set thread sleeps until then and ends the recording; shared, it
 * first adds the image pages the guest has in its page tables although no
 * load of this VM brought them (another VM had filled them into the
 * cache), from /proc/self/pagemap.  A pause (kevd_pager_record_end) or
 * the pager's stop end it earlier.  Loads are exactly once per page, so
 * the list holds every page once without a check.
 *
 * Prefetch: the working-set thread reads the list's head in the order
 * given (what the recorded guest loaded first), then walks the sorted list
 * once, from where the head left off, following the faults on listed
 * pages (a fault there means the guest overtook the walk).  Each run of
 * consecutive pages is claimed page by page through the state words,
 * as a fault claims its window, so a page a fault (or, shared, another
 * VM) claimed first is skipped and nothing is read twice; the claimed run
 * (at most KEVD_PAGER_PREFETCH_RUN pages) is read with one read and
 * installed: shared, written into the cache, where the guest's touch maps
 * it without a fault to kevd; private, with UFFDIO_COPY.  The handler
 * threads go on serving faults meanwhile: a fault meeting a page this
 * thread claimed waits for that one read, and before every read this
 * thread yields the CPU while a handler serves faults (not while one
 * only reads ahead).  Afterwards, shared, it
 * counts the hits once a second: the prefetched pages present in this
 * VM's page tables, which only the guest's touches put there (the
 * prefetch writes the cache, never this VM's mapping).  Private, the
 * prefetch maps the pages itself, so a touch leaves no trace: no hits.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/sandbox.h"
#include "common/time.h"
#include "pager/pager_internal.h"

#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_FILE (1ull << 61)      /* a page of the file (the cache's memfd), not a private copy */
#define PAGEMAP_BATCH 512
#define HITS_EVERY_MS 1000

struct kevd_pager_recording {
	unsigned refs;           /* atomic */
	pthread_mutex_t lock;    /* protects gfns, cap, oom; n and ended are written under it */
	uint64_t *gfns;          /* in load order */
	size_t n;                /* atomic (relaxed) for readers without the lock */
	size_t cap;
	int ended;               /* atomic: the list no longer changes */
	bool oom;                /* a load could not be added: the list is short of it */
};

const char *kevd_pager_working_set_name(enum kevd_pager_working_set ws)
{
	static const char *const names[] = {
		[KEVD_PAGER_WS_NONE] = "none", [KEVD_PAGER_WS_RECORDING] = "recording",
		[KEVD_PAGER_WS_RECORDED] = "recorded", [KEVD_PAGER_WS_PREFETCHED] = "prefetched",
	};

	return (unsigned)ws < sizeof(names) / sizeof(names[0]) ? names[ws] : "none";
}

/* ---- the recording ---- */

void kevd_pager_recording_unref(struct kevd_pager_recording *r)
{
	if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL))
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->gfns);
	free(r);
}

bool kevd_pager_recording_ended(struct kevd_pager_recording *r)
{
	return __atomic_load_n(&r->ended, __ATOMIC_ACQUIRE) != 0;
}

int kevd_pager_recording_pages(struct kevd_pager_recording *r, uint64_t **gfns, size_t *n)
{
	uint64_t *copy = NULL;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	if (r->n && !(copy = malloc(r->n * sizeof(*copy))))
		rc = -ENOMEM;
	else if (r->n)
		memcpy(copy, r->gfns, r->n * sizeof(*copy));
	*gfns = copy;
	*n = copy ? r->n : 0;
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Under the lock.  Out of memory the list stays as it is, short of these
 * pages (a working set is a hint: a page it misses is faulted in). */
static void append_locked(struct kevd_pager_recording *r, uint64_t first, uint64_t npages)
{
	if (r->n + npages > r->cap) {
		size_t cap = r->cap ? r->cap : 1024;
		uint64_t *v;

		while (cap < r->n + npages)
			cap *= 2;
		v = realloc(r->gfns, cap * sizeof(*v));
		if (!v) {
			r->oom = true;
			return;
		}
		r->gfns = v;
		r->cap = cap;
	}
	for (uint64_t i = 0; i < npages; i++)
		r->gfns[r->n + i] = first + i;
	__atomic_store_n(&r->n, r->n + npages, __ATOMIC_RELAXED);
}

/* Whether the guest has run record_ms (counted from its first instruction,
 * or from the pager's start for an owner that gave no clock); else *LEFT
 * gets the ns still to go (all of them before the guest runs). */
static bool record_due(const struct kevd_pager *p, uint64_t *left)
{
	uint64_t start = p->run_start_ns ? __atomic_load_n(p->run_start_ns, __ATOMIC_ACQUIRE) : p->ws_started_ns;
	uint64_t now = kevd_now_ns(CLOCK_MONOTONIC);

	*left = p->record_ns;
	if (!start)
		return false;
	if (now - start >= p->record_ns)
		return true;
	*left = p->record_ns - (now - start);
	return false;
}

void kevd_pager_record_load(struct kevd_pager *p, uint64_t first, uint64_t npages)
{
	struct kevd_pager_recording *r = p->rec;
	uint64_t left;

	if (!r || kevd_pager_recording_ended(r) || record_due(p, &left))
		return;
	pthread_mutex_lock(&r->lock);
	if (!r->ended)
		append_locked(r, first, npages);
	pthread_mutex_unlock(&r->lock);
}

/* The pagemap entries of the NPAGES (at most PAGEMAP_BATCH) pages from
 * GFN, which lie in one memory region. */
static int read_pagemap(struct kevd_pager *p, uint64_t gfn, uint64_t npages, uint64_t *ent)
{
	const struct region *rg = kevd_pager_region_of_gpa(p, gfn << KEVD_PAGE_SHIFT);
	uint64_t host;
	ssize_t got;

	if (!rg)
		return -ENOENT;
	host = (uint64_t)(uintptr_t)rg->host + ((gfn << KEVD_PAGE_SHIFT) - rg->gpa);
	got = KEVD_RETRY_EINTR(pread(p->pagemap, ent, npages * sizeof(*ent),
				     (off_t)((host >> KEVD_PAGE_SHIFT) * sizeof(*ent))));
	return got == (ssize_t)(npages * sizeof(*ent)) ? 0 : -EIO;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts V (N page numbers) in place, least significant 11 bits first (as
 * many passes as the largest value needs): a working set is read on the
 * create's path, and qsort took 4-8 ms for 65536 pages here where this
 * takes well under one.  Falls back to qsort without memory for the
 * second buffer. */
#define RADIX_BITS 11
static void sort_gfns(uint64_t *v, size_t n)
{
	uint64_t max = 0, *a = v, *b;
	size_t count[1u << RADIX_BITS];

	for (size_t i = 0; i < n; i++)
		max = v[i] > max ? v[i] : max;
	if (n < 64 || !(b = malloc(n * sizeof(*b)))) {
		qsort(v, n, sizeof(*v), cmp_u64);
		return;
	}
	for (unsigned shift = 0; shift < 64 && (max >> shift); shift += RADIX_BITS) {
		size_t sum = 0;
		uint64_t *t;

		memset(count, 0, sizeof(count));
		for (size_t i = 0; i < n; i++)
			count[(a[i] >> shift) & ((1u << RADIX_BITS) - 1)]++;
		for (size_t d = 0; d < (1u << RADIX_BITS); d++) {
			size_t c = count[d];

			count[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			b[count[(a[i] >> shift) & ((1u << RADIX_BITS) - 1)]++] = a[i];
		t = a;
		a = b;
		b = t;
	}
	if (a != v) {
		memcpy(v, a, n * sizeof(*v));
		b = a;
	}
	free(b);
}

/* The first index of the sorted list at or past GFN. */
static size_t lower_bound(const uint64_t *v, size_t n, uint64_t gfn)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid] < gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool in_sorted(const uint64_t *v, size_t n, uint64_t gfn)
{
	size_t i = lower_bound(v, n, gfn);

	return i < n && v[i] == gfn;
}

/* Shared, under the recording's lock: the image pages the guest mapped
 * from the cache without a fault to this VM (present in its page tables,
 * not loaded by it), in guest-physical order after the loads; then every
 * page whose copy is private (the guest wrote it) is flagged written.
 * Out of memory the flags are left out (they are a hint). */
static void add_mapped_locked(struct kevd_pager *p, struct kevd_pager_recording *r)
{
	cleanup_free uint64_t *sorted = r->n ? malloc(r->n * sizeof(*sorted)) : NULL;
	cleanup_free uint64_t *written = NULL;
	size_t nsorted = r->n, nwritten = 0, capw = 0;
	uint64_t ent[PAGEMAP_BATCH];
	bool noflags = false;

	if (nsorted && !sorted)
		return;
	if (nsorted) {
		memcpy(sorted, r->gfns, nsorted * sizeof(*sorted));
		qsort(sorted, nsorted, sizeof(*sorted), cmp_u64);
	}
	for (size_t i = 0; i < kevd_image_extent_count(p->img); i++) {
		const struct kevd_image_extent *e = kevd_image_extent(p->img, i);

		for (uint64_t g = e->first_gfn; g < e->end_gfn;) {
			uint64_t n = e->end_gfn - g < PAGEMAP_BATCH ? e->end_gfn - g : PAGEMAP_BATCH;

			if (read_pagemap(p, g, n, ent) < 0)
				return;
			for (uint64_t k = 0; k < n; k++) {
				if (!(ent[k] & PAGEMAP_PRESENT))
					continue;
				if (!in_sorted(sorted, nsorted, g + k))
					append_locked(r, g + k, 1);
				if ((ent[k] & PAGEMAP_FILE) || noflags)
					continue;
				if (nwritten == capw) {
					uint64_t *v = realloc(written, (capw ? capw * 2 : 256) * sizeof(*v));

					if (!v) {
						noflags = true;  /* the walk goes on, without the flags */
						continue;
					}
					written = v;
					capw = capw ? capw * 2 : 256;
				}
				written[nwritten++] = g + k;  /* in order: extents ascend */
			}
			g += n;
		}
	}
	for (size_t i = 0; i < r->n && nwritten && !noflags; i++)
		if (in_sorted(written, nwritten, r->gfns[i]))
			r->gfns[i] |= KEVD_PAGER_WS_WRITTEN;
}

/* Ends the recording (any thread, once; the others find it ended).
 * Shared, while the cache is still mapped over guest RAM, the pages the
 * guest mapped without a load of its own are added first. */
static void end_recording(struct kevd_pager *p)
{
	struct kevd_pager_recording *r = p->rec;

	if (!r || kevd_pager_recording_ended(r))
		return;
	pthread_mutex_lock(&r->lock);
	if (!r->ended) {
		if (p->cached && p->nshared_maps && p->pagemap >= 0)
			add_mapped_locked(p, r);
		if (r->oom)
			kevd_warn("pager: image '%s': the working set misses pages (out of memory while recording)",
				  kevd_image_path(p->img));
		__atomic_store_n(&r->ended, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&r->lock);
}

int kevd_pager_record(struct kevd_pager *p, unsigned record_ms, const uint64_t *run_start_ns,
		      struct kevd_pager_recording **out, struct kevd_error *err)
{
	struct kevd_pager_recording *r;

	if (p->started || p->rec || p->nws)
		return kevd_error_set(err, EBUSY, "pager: a working set is set after start, or twice");
	if (p->cfg.eager)
		return kevd_error_set(err, ENOTSUP, "pager: no working set in eager mode");
	r = calloc(1, sizeof(*r));
	if (!r)
		return kevd_error_sys(err, ENOMEM, "pager: working set");
	pthread_mutex_init(&r->lock, NULL);
	r->refs = 2;  /* the pager's and the caller's */
	p->rec = r;
	p->record_ns = (uint64_t)record_ms * 1000000u;
	p->run_start_ns = run_start_ns;
	*out = r;
	return 0;
}

void kevd_pager_record_end(struct kevd_pager *p)
{
	end_recording(p);
}

/* ---- the prefetch ---- */

int kevd_pager_prefetch(struct kevd_pager *p, const uint64_t *gfns, size_t n, struct kevd_error *err)
{
	uint64_t *v, *w;
	size_t k = 0, nw = 0, kw = 0;

	if (p->started || p->rec || p->nws)
		return kevd_error_set(err, EBUSY, "pager: a working set is set after start, or twice");
	if (p->cfg.eager)
		return kevd_error_set(err, ENOTSUP, "pager: no working set in eager mode");
	if (!n)
		return 0;
	v = malloc(n * sizeof(*v));
	w = malloc(n * sizeof(*w));
	p->ws_premap = calloc(n, 1);
	/* The head: the first pages as given that are the image's. */
	p->ws_head = malloc((n < KEVD_PAGER_PREFETCH_HEAD ? n : KEVD_PAGER_PREFETCH_HEAD) * sizeof(*p->ws_head));
	if (!v || !w || !p->ws_head || !p->ws_premap) {
		free(v);
		free(w);
		free(p->ws_head);
		free(p->ws_premap);
		p->ws_head = NULL;
		p->ws_premap = NULL;
		return kevd_error_sys(err, ENOMEM, "pager: working set");
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t g = gfns[i] & ~KEVD_PAGER_WS_WRITTEN;

		v[i] = g;
		if (gfns[i] & KEVD_PAGER_WS_WRITTEN)
			w[nw++] = g;
		if (p->nws_head < KEVD_PAGER_PREFETCH_HEAD && kevd_image_has_page(p->img, g))
			p->ws_head[p->nws_head++] = g;
	}
	sort_gfns(v, n);
	for (size_t i = 0; i < n; i++)
		if ((!k || v[i] != v[k - 1]) && kevd_image_has_page(p->img, v[i]))
			v[k++] = v[i];
	sort_gfns(w, nw);
	for (size_t i = 0; i < nw; i++)
		if (!kw || w[i] != w[kw - 1])
			w[kw++] = w[i];
	if (!k) {
		free(v);
		free(w);
		free(p->ws_head);
		free(p->ws_premap);
		p->ws_head = NULL;
		p->ws_premap = NULL;
		p->nws_head = 0;
		return 0;
	}
	p->ws = v;
	p->nws = k;
	if (!kw) {  /* a private recording's list, or an old one: no flags */
		free(w);
		free(p->ws_premap);
		w = NULL;
		p->ws_premap = NULL;
	}
	p->ws_written = w;
	p->nws_written = kw;
	return 0;
}

bool kevd_pager_ws_listed(const struct kevd_pager *p, uint64_t gfn)
{
	return in_sorted(p->ws, p->nws, gfn);
}

/* One past the last page of the extent holding GFN (an image page): a run
 * read at once is contiguous in the cache's memfd, which lays extents one
 * after the other. */
static uint64_t extent_end(const struct kevd_image *img, uint64_t gfn)
{
	const struct kevd_image_extent *e = kevd_image_extent_of(img, gfn);

	return e ? e->end_gfn : gfn + 1;
}

/* GFN claimed for the prefetch (*W its word), as a fault claims it; false
 * if a fault or another VM has it, or it is in the cache already. */
static bool claim(struct kevd_pager *p, uint64_t gfn, uint32_t **w)
{
	if (p->cached && kevd_cached_image_filled(p->cached, gfn))
		return false;
	*w = kevd_pagestate_get(p->states, gfn);
	return *w && kevd_pagestate_claim(*w);
}

static void add_run(struct kevd_pager *p, uint64_t first, uint64_t n)
{
	bump(&p->runs_pages, n);
	if (p->nruns && p->runs[p->nruns - 1].first + p->runs[p->nruns - 1].n == first) {
		p->runs[p->nruns - 1].n += n;
		return;
	}
	if (p->nruns == p->cap_runs) {
		size_t cap = p->cap_runs ? p->cap_runs * 2 : 64;
		struct ws_run *v = realloc(p->runs, cap * sizeof(*v));

		if (!v)
			return;  /* the hits then undercount */
		p->runs = v;
		p->cap_runs = cap;
	}
	p->runs[p->nruns++] = (struct ws_run){ first, n };
}

/* Reads and installs the N claimed pages from GFN (words W) at HOST:
 * counted, then published, as a fault's load.  A failure fails the pages
 * left and the VM, as it would on a fault. */
static int load_run(struct handler *h, uint64_t gfn, uint64_t n, uint64_t host, uint32_t **w)
{
	struct kevd_pager *p = h->pager;
	struct kevd_error e = KEVD_ERROR_INIT;
	uint64_t bytes = 0, installed = 0, ok;
	int rc;

	if (kevd_unlikely(kevd_fault("image_read")))
		rc = kevd_error_set(&e, EIO, "image '%s': injected read error", kevd_image_path(p->img));
	else if (p->cached)
		rc = kevd_cached_image_fill(p->cached, gfn, n, h->buf, &bytes, &e);
	else
		rc = kevd_image_fill(p->img, gfn, n, h->buf, &bytes, &e);
	if (rc == 0)
		bump(&h->c.bytes_read, bytes);
	if (rc == 0 && !p->cached)
		rc = kevd_pager_copy_in(h, host, h->buf, n << KEVD_PAGE_SHIFT, &installed, &e);
	else if (rc == 0)
		installed = n << KEVD_PAGE_SHIFT;
	ok = installed >> KEVD_PAGE_SHIFT;
	if (ok) {
		bump(&h->c.pages_prefetched, ok);
		if (p->cfg.on_load)
			p->cfg.on_load(p->cfg.cb_arg, gfn, ok);
	}
	if (rc == 0) {
		bump(&h->c.prefetch_loads, 1);
	} else {
		bump(&h->c.prefetch_failures, 1);
		bump(&h->c.pages_failed, n - ok);
	}
	for (uint64_t i = 0; i < ok; i++)
		kevd_pagestate_publish(w[i], KEVD_PAGE_MAPPED);
	if (rc == 0)
		return 0;
	kevd_error_prefix(&e, "guest page 0x%llx (working-set prefetch)",
			  (unsigned long long)((gfn + ok) << KEVD_PAGE_SHIFT));
	if (p->cached)
		kevd_cached_image_fail(p->cached, &e);
	kevd_pager_report_failure(p, gfn + ok, &e);
	kevd_pager_poison(p, host + (ok << KEVD_PAGE_SHIFT), n - ok);
	for (uint64_t i = ok; i < n; i++)
		kevd_pagestate_publish(w[i], KEVD_PAGE_FAILED);
	return rc;
}

/* The premap state of a page flagged written (p->ws_premap). */
enum { PREMAP_TODO, PREMAP_LOADED, PREMAP_DONE };

static unsigned char *premap_state(const struct kevd_pager *p, uint64_t gfn)
{
	size_t i = lower_bound(p->ws_written, p->nws_written, gfn);

	return i < p->nws_written && p->ws_written[i] == gfn ? &p->ws_premap[i] : NULL;
}

/* Whether GFN is flagged written and not premapped (nor passed over) yet:
 * the head's pages come again in the pass. */
static bool to_premap(const struct kevd_pager *p, uint64_t gfn)
{
	const unsigned char *st = p->cached ? premap_state(p, gfn) : NULL;

	return st && *st != PREMAP_DONE;
}

static void premap_done(struct kevd_pager *p, uint64_t gfn, uint64_t k)
{
	memset(premap_state(p, gfn), PREMAP_DONE, k);
}

/* Shared: the K pages from GFN (filled in the cache, flagged written, in
 * region RG) mapped writable into this VM's view: the copy the guest's
 * write would make, made now.  A failure leaves the pages to the guest's
 * faults (the list is a hint). */
static void premap_run(struct kevd_pager *p, const struct region *rg, uint64_t gfn, uint64_t k)
{
	unsigned char *at = rg->host + ((gfn << KEVD_PAGE_SHIFT) - rg->gpa);

	if (!p->ws_premap_off && madvise(at, k << KEVD_PAGE_SHIFT, MADV_POPULATE_WRITE) == 0) {
		bump(&p->wsh->c.pages_premapped, k);
		premap_done(p, gfn, k);
		return;
	}
	/* Left to the guest: the ones this VM's prefetch read are counted
	 * over for the hits, as unflagged pages are.  A kernel without
	 * MADV_POPULATE_WRITE (before Linux 5.14) says so once. */
	if (!p->ws_premap_off && errno == EINVAL) {
		kevd_debug("pager: MADV_POPULATE_WRITE: %s: the working set's written pages are not premapped",
			   strerror(errno));
		p->ws_premap_off = true;
	} else if (!p->ws_premap_off) {
		kevd_debug("pager: premapping guest page 0x%llx (+%llu): %s", (unsigned long long)(gfn << KEVD_PAGE_SHIFT),
			   (unsigned long long)k, strerror(errno));
	}
	for (uint64_t j = 0; j < k; j++)
		if (*premap_state(p, gfn + j) == PREMAP_LOADED)
			add_run(p, gfn + j, 1);
	premap_done(p, gfn, k);
}

/* The K (at most PAGEMAP_BATCH) pages from GFN premapped where the guest
 * has no private copy yet: one it has took its faults already (and,
 * loaded by this VM's prefetch, is a hit).  A page mapped from the cache
 * (read by the guest, or mapped with a neighbour by the kernel's
 * fault-around) is premapped still: its write to come would cost it a
 * second EPT violation. */
static void premap_absent(struct kevd_pager *p, const struct region *rg, uint64_t gfn, uint64_t k)
{
	uint64_t ent[PAGEMAP_BATCH];

	if (p->pagemap < 0 || read_pagemap(p, gfn, k, ent) < 0) {
		premap_run(p, rg, gfn, k);
		return;
	}
	for (uint64_t i = 0; i < k;) {
		bool absent = !(ent[i] & PAGEMAP_PRESENT) || (ent[i] & PAGEMAP_FILE);
		uint64_t m = 1;

		while (i + m < k && (!(ent[i + m] & PAGEMAP_PRESENT) || (ent[i + m] & PAGEMAP_FILE)) == absent)
			m++;
		if (absent) {
			premap_run(p, rg, gfn + i, m);
		} else {
			for (uint64_t j = 0; j < m; j++)
				if (*premap_state(p, gfn + i + j) == PREMAP_LOADED)
					add_run(p, gfn + i + j, 1);
			premap_done(p, gfn + i, m);
		}
		i += m;
	}
}

/* The written pages of [GFN, GFN + N) that are filled and not premapped
 * yet, premapped (in runs within one region). */
static void premap_range(struct kevd_pager *p, uint64_t gfn, uint64_t n)
{
	for (uint64_t i = 0; i < n;) {
		const struct region *rg = kevd_pager_region_of_gpa(p, (gfn + i) << KEVD_PAGE_SHIFT);
		uint64_t k = 0;

		while (rg && i + k < n && k < PAGEMAP_BATCH && to_premap(p, gfn + i + k) &&
		       kevd_cached_image_filled(p->cached, gfn + i + k) &&
		       kevd_pager_region_of_gpa(p, (gfn + i + k) << KEVD_PAGE_SHIFT) == rg)
			k++;
		if (k)
			premap_absent(p, rg, gfn + i, k);
		i += k ? k : 1;
	}
}

/* The N pages from GFN this VM's prefetch loaded: the ones flagged
 * written are marked its own (an untouched one premapped later is no
 * hit), the others added to the runs the hits are counted over. */
static void loaded_run(struct kevd_pager *p, uint64_t gfn, uint64_t n)
{
	for (uint64_t i = 0; i < n;) {
		bool wr = to_premap(p, gfn + i);
		uint64_t k = 1;

		while (i + k < n && to_premap(p, gfn + i + k) == wr)
			k++;
		if (wr)
			memset(premap_state(p, gfn + i), PREMAP_LOADED, k);
		else
			add_run(p, gfn + i, k);
		i += k;
	}
}

/* Loads the run of consecutive pages V[I], V[I+1], ... (at most
 * KEVD_PAGER_PREFETCH_RUN, within one extent and region) that this thread
 * can claim, or (shared) passes over the run the cache has already.
 * Returns how many entries of V it dealt with (at least 1: a page a fault
 * or another VM is loading is passed over), or 0 once a read failed. */
static size_t prefetch_at(struct kevd_pager *p, const uint64_t *v, size_t i, size_t nv)
{
	uint32_t *w[KEVD_PAGER_PREFETCH_RUN];
	uint64_t g = v[i], end = extent_end(p->img, g), n = 0;
	const struct region *rg = kevd_pager_region_of_gpa(p, g << KEVD_PAGE_SHIFT);
	uint64_t rg_end = (rg->gpa + rg->len) >> KEVD_PAGE_SHIFT;

	if (end > rg_end)
		end = rg_end;
	/* Faults first: a handler serving one gets this CPU. */
	if (__atomic_load_n(&p->serving, __ATOMIC_RELAXED))
		sched_yield();
	while (p->cached && i + n < nv && n < KEVD_PAGER_PREFETCH_RUN && v[i + n] == g + n && g + n < end &&
	       kevd_cached_image_filled(p->cached, g + n))
		n++;
	if (n)
		return n;  /* its written pages premapped after the pass */
	while (i + n < nv && n < KEVD_PAGER_PREFETCH_RUN && v[i + n] == g + n && g + n < end && claim(p, g + n, &w[n]))
		n++;
	if (!n)
		return 1;  /* being loaded by someone else */
	if (load_run(p->wsh, g, n, (uint64_t)(uintptr_t)rg->host + ((g << KEVD_PAGE_SHIFT) - rg->gpa), w) < 0)
		return 0;
	loaded_run(p, g, n);
	return n;
}

static bool prefetching(struct kevd_pager *p)
{
	return !__atomic_load_n(&p->stopping, __ATOMIC_ACQUIRE) && !kevd_pager_failed(p);
}

/* Ranges of the sorted list still to walk; the first is walked now. */
#define MAX_RANGES 64
struct ranges {
	struct { size_t lo, hi; } r[MAX_RANGES];
	size_t n;
};

static void ranges_add(struct ranges *rs, size_t lo, size_t hi)
{
	if (lo < hi && rs->n < MAX_RANGES) {
		rs->r[rs->n].lo = lo;
		rs->r[rs->n++].hi = hi;
	}
}

/* A fault loaded a listed page the walk has not reached: the walk goes
 * on from index K, where the guest is, and comes back for the rest. */
static void ranges_jump(struct ranges *rs, size_t k)
{
	for (size_t j = 0; j < rs->n; j++) {
		size_t lo = rs->r[j].lo, hi = rs->r[j].hi;

		if (k < lo || k >= hi || (j == 0 && k == lo))
			continue;
		if (rs->n == MAX_RANGES)
			return;
		memmove(&rs->r[1], &rs->r[0], rs->n++ * sizeof(rs->r[0]));
		rs->r[0].lo = k;
		rs->r[0].hi = hi;
		rs->r[j + 1].hi = k;  /* [lo, k): later */
		return;
	}
}

/* The head first, in load order: what the guest touched first (its code,
 * stack and page tables, where it was working) is what it touches first
 * again.  False once a read failed. */
static bool prefetch_head(struct kevd_pager *p)
{
	size_t i = 0, k;

	while (i < p->nws_head && prefetching(p)) {
		if (!(k = prefetch_at(p, p->ws_head, i, p->nws_head)))
			return false;
		i += k;
	}
	return true;
}

/* Shared, after the pass has filled the cache: the written pages not
 * premapped yet and not yet mapped by the guest, in the pass's order (the
 * head's pages, then from after the head's last page, wrapped around),
 * consecutive ones together.  Apart from the reads, which are faster, so
 * that they stay ahead of the guest and keep its faults away; a page the
 * guest reaches first costs it a second EPT violation only, and pages it
 * went past meanwhile are passed over. */
static void premap_pass(struct kevd_pager *p)
{
	size_t start, n = p->nws_written;

	if (!p->cached || !n)
		return;
	for (size_t i = 0; i < p->nws_head && prefetching(p); i++)
		premap_range(p, p->ws_head[i], 1);
	start = p->nws_head ? lower_bound(p->ws_written, n, p->ws_head[p->nws_head - 1] + 1) % n : 0;
	/* Runs of consecutive flagged pages (not across the wrap), each
	 * premapped where it is filled and not done yet. */
	for (size_t done = 0; done < n && prefetching(p);) {
		size_t i = (start + done) % n, k = 1;

		while (i + k < n && done + k < n && k < KEVD_PAGER_PREFETCH_RUN && p->ws_written[i + k] == p->ws_written[i] + k)
			k++;
		premap_range(p, p->ws_written[i], k);
		done += k;
	}
}

/* Then the whole list in guest-physical order, one sequential pass, begun
 * after the head's last page (where the recorded guest was heading) and
 * wrapped around; a fault on a listed page moves the pass on to where
 * that fault's load ended.  T0: when the head began. */
static void prefetch_pass(struct kevd_pager *p, uint64_t t0)
{
	struct ranges rs = { .n = 0 };
	size_t k;

	k = p->nws_head ? lower_bound(p->ws, p->nws, p->ws_head[p->nws_head - 1] + 1) : 0;
	ranges_add(&rs, k, p->nws);
	ranges_add(&rs, 0, k);
	__atomic_store_n(&p->ws_hint, 0, __ATOMIC_RELAXED);
	while (rs.n && prefetching(p)) {
		uint64_t hint = __atomic_exchange_n(&p->ws_hint, 0, __ATOMIC_RELAXED);

		if (hint)
			ranges_jump(&rs, lower_bound(p->ws, p->nws, hint - 1));
		if (rs.r[0].lo >= rs.r[0].hi) {
			memmove(&rs.r[0], &rs.r[1], --rs.n * sizeof(rs.r[0]));
			continue;
		}
		if (!(k = prefetch_at(p, p->ws, rs.r[0].lo, rs.r[0].hi)))
			return;
		rs.r[0].lo += k;
	}
	premap_pass(p);
	store(&p->prefetch_ns, kevd_now_ns(CLOCK_MONOTONIC) - t0);
}

/* Shared: the prefetched pages present in this VM's page tables now. */
static void count_hits(struct kevd_pager *p)
{
	uint64_t ent[PAGEMAP_BATCH], hits = 0;

	for (size_t i = 0; i < p->nruns; i++)
		for (uint64_t g = p->runs[i].first, end = g + p->runs[i].n; g < end;) {
			uint64_t n = end - g < PAGEMAP_BATCH ? end - g : PAGEMAP_BATCH;

			if (read_pagemap(p, g, n, ent) < 0)
				return;
			for (uint64_t k = 0; k < n; k++)
				hits += (ent[k] & PAGEMAP_PRESENT) != 0;
			g += n;
		}
	store(&p->prefetch_hits, hits);
}

/* ---- the working-set thread ---- */

static void *ws_main(void *arg)
{
	struct kevd_pager *p = arg;
	struct kevd_error err = KEVD_ERROR_INIT;
	bool hits = p->nws && p->cached && p->pagemap >= 0, head = true;
	uint64_t t0 = kevd_now_ns(CLOCK_MONOTONIC);

	/* The head races the vCPU, which sets itself up meanwhile: read at
	 * once, before this thread confines itself and lowers its priority
	 * (a millisecond or two, which would let the guest fault first). */
	if (p->nws)
		head = prefetch_head(p);
	/* The guest's priority from here on: the faults' handlers go first,
	 * and the pass does not starve the vCPU it works for. */
	if (p->cfg.prefetch_nice && setpriority(PRIO_PROCESS, 0, (int)p->cfg.prefetch_nice) < 0)
		kevd_debug("pager working-set thread: setpriority: %s", strerror(errno));
	if (kevd_sandbox_thread(&kevd_pager_sandbox_role, &err) < 0 && err.errnum != ENOSYS)
		kevd_warn("pager working-set thread runs unconfined: %s", err.msg);
	if (p->nws && head)
		prefetch_pass(p, t0);
	if (hits)
		count_hits(p);
	while (p->rec || hits) {
		struct pollfd pfd = { p->stopfd, POLLIN, 0 };
		int timeout = HITS_EVERY_MS, r;
		uint64_t left;

		if (p->rec) {
			if (record_due(p, &left)) {
				end_recording(p);
				break;
			}
			/* Before the guest runs, look again soon: its clock starts then. */
			timeout = (p->run_start_ns && !__atomic_load_n(p->run_start_ns, __ATOMIC_ACQUIRE))
					  ? 10 : (int)(left / 1000000u) + 1;
		}
		r = poll(&pfd, 1, timeout);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != 0)
			break;  /* stopping */
		if (hits)
			count_hits(p);
	}
	return NULL;
}

void kevd_pager_ws_prepare(struct kevd_pager *p)
{
	if (!p->rec && !p->nws)
		return;
	p->ws_started_ns = kevd_now_ns(CLOCK_MONOTONIC);
	/* Shared only: the recording's last pages and the hits come from it. */
	if (p->cached) {
		p->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (p->pagemap < 0)
			kevd_warn("pager: /proc/self/pagemap: %s: no prefetch hits counted, no pages mapped from the cache recorded",
				  strerror(errno));
	}
	store(&p->prefetch_hits, p->nws && p->pagemap < 0 ? KEVD_PAGER_UNMEASURED : 0);
}

int kevd_pager_ws_start(struct kevd_pager *p, struct kevd_error *err)
{
	struct handler *h;
	int r;

	if (!p->rec && !p->nws)
		return 0;
	h = calloc(1, sizeof(*h));
	if (!h)
		return kevd_error_sys(err, ENOMEM, "pager: working set");
	h->pager = p;
	h->buf = aligned_alloc(KEVD_PAGE_SIZE, (size_t)KEVD_PAGER_PREFETCH_RUN * KEVD_PAGE_SIZE);
	__atomic_store_n(&p->wsh, h, __ATOMIC_RELEASE);
	if (!h->buf)
		return kevd_error_sys(err, ENOMEM, "pager: prefetch buffer");
	r = pthread_create(&h->thread, NULL, ws_main, p);
	if (r)
		return kevd_error_sys(err, r, "pager: starting the working-set thread");
	h->started = true;
	pthread_setname_np(h->thread, "pager-ws");
	return 0;
}

void kevd_pager_ws_stop(struct kevd_pager *p)
{
	if (p->wsh && p->wsh->started) {
		pthread_join(p->wsh->thread, NULL);
		p->wsh->started = false;
	}
	end_recording(p);
	if (p->nws && p->cached && p->nshared_maps && p->pagemap >= 0)
		count_hits(p);
}

void kevd_pager_ws_free(struct kevd_pager *p)
{
	if (p->wsh)
		free(p->wsh->buf);
	free(p->wsh);
	free(p->ws);
	free(p->ws_written);
	free(p->ws_premap);
	free(p->ws_head);
	free(p->runs);
	if (p->pagemap >= 0)
		close(p->pagemap);
	kevd_pager_recording_unref(p->rec);
}

enum kevd_pager_working_set kevd_pager_ws_state(struct kevd_pager *p, uint64_t *pages)
{
	if (p->nws) {
		*pages = p->nws;
		return KEVD_PAGER_WS_PREFETCHED;
	}
	if (p->rec) {
		*pages = __atomic_load_n(&p->rec->n, __ATOMIC_RELAXED);
		return kevd_pager_recording_ended(p->rec) ? KEVD_PAGER_WS_RECORDED : KEVD_PAGER_WS_RECORDING;
	}
	*pages = 0;
	return KEVD_PAGER_WS_NONE;
}
