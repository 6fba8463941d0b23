/*
 * The fault service of the pager's handler threads (the fault path
 * described at the top of pager.c), top-down: plan the window, claim the
 * run, read it, install it (into the shared cache, or into this VM with
 * UFFDIO_COPY), count, publish, wake; coalesced faults; failures and
 * poison.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/sandbox.h"
#include "common/time.h"
#include "pager/pager_internal.h"

static void record_tid(struct counters *c, pid_t tid)
{
	for (size_t i = 0; i < KEVD_PAGER_MAX_TIDS; i++) {
		int32_t t = __atomic_load_n(&c->tids[i].tid, __ATOMIC_RELAXED);

		if (t == tid) {
			bump(&c->tids[i].faults, 1);
			return;
		}
		if (t == 0) {
			store(&c->tids[i].faults, 1);
			__atomic_store_n(&c->tids[i].tid, tid, __ATOMIC_RELEASE);
			return;
		}
	}
	bump(&c->faults_other_threads, 1);
}

static void record_latency(struct counters *c, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = 0;

	while (us && b < KEVD_PAGER_HIST_BUCKETS - 1) {
		us >>= 1;
		b++;
	}
	bump(&c->hist[b], 1);
	bump(&c->latency_sum_ns, ns);
}

static void wake_range(struct kevd_pager *p, uint64_t addr, uint64_t len)
{
	struct uffdio_range r = { .start = addr, .len = len };

	/* ENOENT/EINVAL only if the range was unregistered, i.e. we are closing. */
	ioctl(p->uffd, UFFDIO_WAKE, &r);
}

void kevd_pager_report_failure(struct kevd_pager *p, uint64_t gfn, const struct kevd_error *e)
{
	if (__atomic_exchange_n(&p->failed, 1, __ATOMIC_ACQ_REL))
		return;
	if (p->cfg.on_failure)
		p->cfg.on_failure(p->cfg.cb_arg, KEVD_GPA(gfn << KEVD_PAGE_SHIFT), e);
}

/* Installs BUF at HOST for LEN bytes with UFFDIO_COPY: retries the
 * remainder after EAGAIN (a partial copy reports the bytes done) with a
 * growing sleep, never a spin; skips (and wakes) a page that is already
 * present.  *DONE gets how many bytes from HOST are in place (installed or
 * already there), also when it fails. */
int kevd_pager_copy_in(struct handler *h, uint64_t host, const unsigned char *buf, uint64_t len, uint64_t *done_out,
		       struct kevd_error *err)
{
	struct kevd_pager *p = h->pager;
	uint64_t done = 0;
	int r = 0;
	unsigned retries = 0;
	long backoff_ns = 1000;

	while (done < len) {
		struct uffdio_copy c = {
			.dst = host + done, .src = (uintptr_t)(buf + done), .len = len - done,
			.mode = UFFDIO_COPY_MODE_DONTWAKE,
		};

		if (kevd_unlikely(kevd_fault("uffd_copy"))) {
			errno = EIO;
			c.copy = -EIO;
		} else if (ioctl(p->uffd, UFFDIO_COPY, &c) == 0) {
			done = len;
			break;
		}
		if (c.copy > 0)
			done += (uint64_t)c.copy;
		if (errno == EEXIST) {
			/* Somebody installed this page: it is not ours to overwrite,
			 * and its faulting thread may not have been woken. */
			bump(&h->c.eexist, 1);
			wake_range(p, host + done, KEVD_PAGE_SIZE);
			done += KEVD_PAGE_SIZE;
			continue;
		}
		if (errno == EAGAIN) {
			struct timespec ts = { 0, backoff_ns };

			bump(&h->c.eagain, 1);
			if (c.copy > 0)
				continue;  /* progress: go on at once */
			if (++retries > EAGAIN_MAX_RETRIES) {
				r = kevd_error_set(err, EAGAIN, "pager: UFFDIO_COPY kept failing with EAGAIN");
				break;
			}
			nanosleep(&ts, NULL);
			if (backoff_ns < 1000000)
				backoff_ns *= 2;
			continue;
		}
		r = kevd_error_sys(err, errno, "pager: UFFDIO_COPY of %llu bytes", (unsigned long long)(len - done));
		break;
	}
	*done_out = done;
	return r;
}

/* The pages one load brings in: [first, end) inside the window
 * [wstart, wend), all claimed (LOADING) by this thread. */
struct run {
	const struct region *rg;
	uint64_t gfn;                  /* the faulting page */
	uint64_t first, end, wstart, wend;
	uint64_t ra_end;               /* growing window: read ahead [end, ra_end) once woken; 0 = none */
	bool ahead;                    /* a read-ahead's run: no fault waits on it as its own */
	uint64_t host;                 /* host address of first */
	struct stream *stream;         /* the faulting thread's fault-around state, if tracked */
	uint32_t *words[KEVD_PAGER_MAX_WINDOW];  /* indexed by gfn - wstart */
};

static uint64_t host_of(const struct run *r, uint64_t gfn)
{
	return (uint64_t)(uintptr_t)r->rg->host + ((gfn << KEVD_PAGE_SHIFT) - r->rg->gpa);
}

/* The stream slot of faulting thread TID (open addressing over the
 * tracked threads); NULL when all are taken by others. */
static struct stream *stream_of(struct kevd_pager *p, pid_t tid)
{
	unsigned start = (unsigned)tid * 2654435761u % KEVD_PAGER_MAX_TIDS;

	for (unsigned k = 0; tid && k < KEVD_PAGER_MAX_TIDS; k++) {
		struct stream *s = &p->streams[(start + k) % KEVD_PAGER_MAX_TIDS];
		int32_t t = __atomic_load_n(&s->tid, __ATOMIC_RELAXED), free_tid = 0;

		if (t == tid)
			return s;
		if (t == 0 && (__atomic_compare_exchange_n(&s->tid, &free_tid, tid, false, __ATOMIC_RELAXED,
							   __ATOMIC_RELAXED) || free_tid == tid))
			return s;
	}
	return NULL;
}

/* A fault of TID served by another fault's load: its stream goes on past
 * GFN, so that vCPUs walking the same pages keep their windows growing. */
static void stream_passed(struct kevd_pager *p, pid_t tid, uint64_t gfn)
{
	struct stream *st = stream_of(p, tid);

	/* Not back into the read-ahead the stream is planned to: that is
	 * still ahead of it. */
	if (st && !(gfn >= __atomic_load_n(&st->start_gfn, __ATOMIC_RELAXED) &&
		    gfn < __atomic_load_n(&st->next_gfn, __ATOMIC_RELAXED)))
		__atomic_store_n(&st->next_gfn, gfn + 1, __ATOMIC_RELAXED);
}

/* The demand load of a growing window, and each read of its read-ahead:
 * what a fault may wait for behind read-ahead work. */
static unsigned readahead_chunk(const struct kevd_pager *p)
{
	unsigned n = p->cfg.window_pages * 4;

	return n < p->cfg.window_max_pages ? n : p->cfg.window_max_pages;
}

/* The fault-around window of the fault at R->gfn by thread TID, as the
 * kernel's readahead does it: while the thread's faults come where its
 * last window ended, the window doubles (up to window_max_pages) and
 * reaches forward from the fault; any other fault falls back to
 * window_pages, aligned around it.  Clipped to the extent (contiguous
 * image pages: for a restore, a whole RAM range, in and outside the
 * kernel's segments) and to the memory region.
 *
 * A sequential fault's window is not read all before the fault is woken:
 * its first chunk is (the demand load, 4 x window_pages), the rest, and
 * one more window past it, is its read-ahead, read by this thread once
 * the guest runs again (a chunk at a time, between fault batches, so that
 * a demand fault never waits for more than one chunk).  The stream then
 * reaches to the end of the read-ahead: a fault before that end is the
 * guest catching up with it, served with a demand load of its own, the
 * window unchanged. */
static void plan_window(struct handler *h, struct run *r, pid_t tid, bool listed)
{
	struct kevd_pager *p = h->pager;
	const struct kevd_image_extent *ext = kevd_image_extent_of(p->img, r->gfn);
	uint64_t seg_first = ext ? ext->first_gfn : r->gfn, seg_end = ext ? ext->end_gfn : r->gfn + 1;
	uint64_t rg_first = r->rg->gpa >> KEVD_PAGE_SHIFT, rg_end = (r->rg->gpa + r->rg->len) >> KEVD_PAGE_SHIFT;
	struct stream *st = stream_of(p, tid);
	unsigned window = st ? __atomic_load_n(&st->window, __ATOMIC_RELAXED) : 0;
	uint64_t next = st ? __atomic_load_n(&st->next_gfn, __ATOMIC_RELAXED) : 0;
	uint64_t from = st ? __atomic_load_n(&st->start_gfn, __ATOMIC_RELAXED) : 0;
	bool grow = p->cfg.window_max_pages > p->cfg.window_pages;
	bool seq = window && r->gfn >= next && r->gfn < next + window;
	/* Not for a listed page, which is read forward from the fault below:
	 * a catch-up reaches to the stream's next page, and faults served by
	 * the prefetch's loads move that on (stream_passed) arbitrarily far. */
	bool catchup = grow && window && !seq && !listed && r->gfn >= from && r->gfn < next;
	unsigned size, b = 0;
	uint64_t end;

	/* A page of the working set: the guest has overtaken the prefetch
	 * and runs on through pages it is known to need, so the largest
	 * window at once, forward, as a sequential stream's. */
	if (listed) {
		seq = true;
		size = p->cfg.window_max_pages;
	} else if (catchup)
		size = window;
	else if (!seq)
		size = p->cfg.window_pages;
	else
		size = window * 2 < p->cfg.window_max_pages ? window * 2 : p->cfg.window_max_pages;
	r->stream = st;
	if (st)
		__atomic_store_n(&st->window, size, __ATOMIC_RELAXED);
	r->wstart = seq || catchup ? r->gfn : r->gfn - r->gfn % size;
	end = catchup ? next : r->wstart + size;
	if (end > seg_end)
		end = seg_end;
	if (end > rg_end)
		end = rg_end;
	if (r->wstart < seg_first)
		r->wstart = seg_first;
	if (r->wstart < rg_first)
		r->wstart = rg_first;
	/* Growing and sequential: the read-ahead reaches one window past
	 * this one (the kernel's asynchronous readahead), so that it is
	 * still reading while the guest runs through this window.  Not for a
	 * listed page: the working-set thread reads on from where this load
	 * ends (ws_hint), so the window is read whole, as before. */
	if (grow && seq && !listed) {
		end = r->wstart + 2 * (uint64_t)size;
		end = end < seg_end ? end : seg_end;
		end = end < rg_end ? end : rg_end;
	}
	r->wend = end;
	r->ra_end = 0;
	if (grow && (seq || catchup) && !listed && end - r->gfn > readahead_chunk(p)) {
		r->wend = r->gfn + readahead_chunk(p);
		r->ra_end = end;
	}
	/* A run is read into the handler's buffer and claimed into r->words,
	 * both window_max_pages long: every window above fits (the fault is
	 * within window_max_pages of wstart), and no plan may make a longer
	 * one (ci87: a listed fault planned as a catch-up claimed 715 pages
	 * and overran both). */
	if (r->wend - r->wstart > p->cfg.window_max_pages)
		r->wend = r->wstart + p->cfg.window_max_pages;
	if (st && (seq || catchup)) {
		__atomic_store_n(&st->start_gfn, r->gfn, __ATOMIC_RELAXED);
		__atomic_store_n(&st->next_gfn, end, __ATOMIC_RELAXED);
	}
	while ((1u << b) < size && b < KEVD_PAGER_WINDOW_BUCKETS - 1)
		b++;
	bump(&h->c.window_hist[b], 1);
}

/* Grows the claim of GFN (word W, already won) over free neighbours in
 * the window. */
static void claim_run(struct kevd_pager *p, struct run *r, uint32_t *w)
{
	r->first = r->gfn;
	r->end = r->gfn + 1;
	r->words[r->gfn - r->wstart] = w;
	while (r->first > r->wstart) {
		uint32_t *n = kevd_pagestate_get(p->states, r->first - 1);

		if (!n || !kevd_pagestate_claim(n))
			break;
		r->words[--r->first - r->wstart] = n;
	}
	while (r->end < r->wend) {
		uint32_t *n = kevd_pagestate_get(p->states, r->end);

		if (!n || !kevd_pagestate_claim(n))
			break;
		r->words[r->end++ - r->wstart] = n;
	}
	r->host = host_of(r, r->first);
}

/* Poisons this VM's pages [FIRST, END) of R's region after telling the
 * owner.  The owner hears first, so that it has stopped its vCPUs by the
 * time the poison wakes them with SIGBUS; otherwise they would re-enter
 * the guest and meet the poison again.  Page by page, so that one already
 * present (EEXIST) does not leave the rest unpoisoned.  A page that cannot
 * be poisoned is not woken: its thread would only fault again; the
 * owner's stop ends its wait. */
void kevd_pager_poison(struct kevd_pager *p, uint64_t host, uint64_t npages)
{
	for (uint64_t i = 0; p->poison && i < npages; i++) {
		struct uffdio_poison po = { .range = { .start = host + (i << KEVD_PAGE_SHIFT), .len = KEVD_PAGE_SIZE } };

		if (ioctl(p->uffd, UFFDIO_POISON, &po) < 0 && errno != EEXIST)
			kevd_debug("pager: UFFDIO_POISON at 0x%llx: %s",
				   (unsigned long long)(host + (i << KEVD_PAGE_SHIFT)), strerror(errno));
	}
}

static void fail_pages(struct kevd_pager *p, const struct run *r, uint64_t first, uint64_t end,
		       const struct kevd_error *e)
{
	kevd_pager_report_failure(p, first, e);
	kevd_pager_poison(p, host_of(r, first), end - first);
}

/* Ends the claims of [FIRST, END) of the run as FAILED; the caller counted
 * them.  Shared, the cache's entry remembers why, for the other VMs that
 * meet these pages. */
static void fail_run(struct handler *h, struct run *r, uint64_t first, uint64_t end, struct kevd_error *e)
{
	struct kevd_pager *p = h->pager;

	if (p->cached)
		kevd_cached_image_fail(p->cached, e);
	fail_pages(p, r, first, end, e);
	for (uint64_t g = first; g < end; g++)
		kevd_pagestate_publish(r->words[g - r->wstart], KEVD_PAGE_FAILED);
}

/* Pages [R->first, END) of a run are in place: recorded (the working
 * set), reported (on_load), published MAPPED and their faulting threads
 * woken.  The caller has counted them: a load is counted before anything
 * is woken, so that whoever a woken thread talks to next sees it. */
static void publish_loaded(struct kevd_pager *p, const struct run *r, uint64_t end)
{
	uint64_t n = end - r->first;

	kevd_pager_record_load(p, r->first, n);
	if (p->cfg.on_load)
		p->cfg.on_load(p->cfg.cb_arg, r->first, n);
	for (uint64_t g = r->first; g < end; g++)
		kevd_pagestate_publish(r->words[g - r->wstart], KEVD_PAGE_MAPPED);
	wake_range(p, r->host, n << KEVD_PAGE_SHIFT);
}

/* A read-ahead whose read or copy failed after its pages up to OK_END
 * were in place: those count as read ahead, the rest are given back
 * (UNLOADED, their sleepers woken to claim them again).  Nobody asked for
 * them yet, so the VM goes on: a fault that wants one loads it and, if the
 * image is really broken there, fails as it always did. */
static void readahead_failed(struct handler *h, struct run *r, uint64_t ok_end)
{
	struct kevd_pager *p = h->pager;

	bump(&h->c.readahead_failures, 1);
	if (ok_end > r->first) {
		bump(&h->c.pages_loaded_around, ok_end - r->first);
		publish_loaded(p, r, ok_end);
	}
	for (uint64_t g = ok_end; g < r->end; g++)
		kevd_pagestate_publish(r->words[g - r->wstart], KEVD_PAGE_UNLOADED);
}

/* A copy that failed after INSTALLED bytes: the pages before the failing
 * one are in place and count as loaded, the rest as failed, and the
 * operation as one failed load (or read-ahead), not also as a load, so
 * that each fault has one outcome.  Counted before anything is woken, as
 * a load is. */
static void copy_failed(struct handler *h, struct run *r, uint64_t installed, struct kevd_error *e)
{
	uint64_t ok_end = r->first + (installed >> KEVD_PAGE_SHIFT);
	uint64_t demand = !r->ahead && r->gfn < ok_end;

	if (r->ahead) {
		readahead_failed(h, r, ok_end);
		return;
	}
	bump(&h->c.load_failures, 1);
	bump(&h->c.pages_failed, r->end - ok_end);
	if (ok_end > r->first) {
		bump(&h->c.pages_loaded_demand, demand);
		bump(&h->c.pages_loaded_around, ok_end - r->first - demand);
		publish_loaded(h->pager, r, ok_end);
	}
	kevd_error_prefix(e, "guest page 0x%llx", (unsigned long long)(r->gfn << KEVD_PAGE_SHIFT));
	fail_run(h, r, ok_end, r->end, e);
}

/* Reads the claimed run from the image into this thread's buffer and,
 * shared, writes it into the cache, where every VM's mapping shows it.  A
 * failed read ends the run FAILED, counted. */
static int read_run(struct handler *h, struct run *r)
{
	struct kevd_pager *p = h->pager;
	struct kevd_error e = KEVD_ERROR_INIT;
	uint64_t bytes = 0, n = r->end - r->first;
	int rc;

	if (kevd_unlikely(kevd_fault("image_read")))
		rc = kevd_error_set(&e, EIO, "image '%s': injected read error", kevd_image_path(p->img));
	else if (p->cached)
		rc = kevd_cached_image_fill(p->cached, r->first, n, h->buf, &bytes, &e);
	else
		rc = kevd_image_fill(p->img, r->first, n, h->buf, &bytes, &e);
	if (rc < 0 && r->ahead) {
		kevd_debug("pager: read-ahead of guest pages 0x%llx+%llu given back: %s",
			   (unsigned long long)(r->first << KEVD_PAGE_SHIFT), (unsigned long long)n, e.msg);
		readahead_failed(h, r, r->first);
		return rc;
	}
	if (rc < 0 && n > 1) {
		/* The window failed, perhaps for a page around the fault that
		 * nobody wants (a corrupted page of a snapshot): the half
		 * without the faulting page goes back (UNLOADED, its sleepers
		 * claim it again) and the half with it is read, down to the
		 * faulting page alone.  Only a page that cannot be read itself
		 * fails, and with it only the VMs that touch it; the faults
		 * around it still load most of their windows. */
		uint64_t half = (n + 1) / 2, first = r->first, end = r->end;

		if (r->gfn < first + half)
			end = first + half;
		else
			first += half;
		kevd_debug("pager: guest pages 0x%llx+%llu: %s; reading 0x%llx+%llu",
			   (unsigned long long)(r->first << KEVD_PAGE_SHIFT), (unsigned long long)n, e.msg,
			   (unsigned long long)(first << KEVD_PAGE_SHIFT), (unsigned long long)(end - first));
		bump(&h->c.window_retries, 1);
		for (uint64_t g = r->first; g < r->end; g++)
			if (g < first || g >= end)
				kevd_pagestate_publish(r->words[g - r->wstart], KEVD_PAGE_UNLOADED);
		r->first = first;
		r->end = end;
		r->host = host_of(r, first);
		r->ra_end = 0;
		return read_run(h, r);
	}
	if (rc < 0) {
		kevd_error_prefix(&e, "guest page 0x%llx", (unsigned long long)(r->gfn << KEVD_PAGE_SHIFT));
		bump(r->ahead ? &h->c.readahead_failures : &h->c.load_failures, 1);
		bump(&h->c.pages_failed, n);
		fail_run(h, r, r->first, r->end, &e);
		return rc;
	}
	bump(&h->c.bytes_read, bytes);
	return 0;
}

/* Counts the run as one load, publishes it and wakes its faulting threads:
 * counted before anything is woken, so that whoever a faulting thread
 * talks to next already sees this load in the statistics. */
static void run_done(struct handler *h, struct run *r, uint64_t t0)
{
	struct kevd_pager *p = h->pager;
	uint64_t n = r->end - r->first;

	bump(&h->c.loads, 1);
	bump(&h->c.pages_loaded_demand, 1);
	bump(&h->c.pages_loaded_around, n - 1);
	record_latency(&h->c, kevd_now_ns(CLOCK_MONOTONIC) - t0);
	publish_loaded(p, r, r->end);
	/* A growing window's stream was planned to the end of its read-ahead. */
	if (r->stream && !r->ra_end) {
		__atomic_store_n(&r->stream->start_gfn, r->first, __ATOMIC_RELAXED);
		__atomic_store_n(&r->stream->next_gfn, r->end, __ATOMIC_RELAXED);
	}
}

/* Queues [R->end, R->ra_end) as the read-ahead of R's stream: its slot,
 * extended if this window begins where the slot's range ends (the stream
 * went on before its last read-ahead was read: that is still wanted) or
 * replaced (it jumped); else a free one, else the next in turn. */
static void readahead_queue(struct handler *h, const struct run *r)
{
	struct readahead *slot = NULL;

	for (unsigned i = 0; i < READAHEAD_SLOTS && !slot; i++)
		if (h->ra[i].rg && h->ra[i].st == r->stream)
			slot = &h->ra[i];
	if (slot && slot->rg == r->rg && slot->gen == h->batch_gen && r->first <= slot->end &&
	    r->first >= slot->next) {
		if (slot->end < r->ra_end)
			slot->end = r->ra_end;
		return;
	}
	for (unsigned i = 0; i < READAHEAD_SLOTS && !slot; i++)
		if (!h->ra[i].rg)
			slot = &h->ra[i];
	if (!slot)
		slot = &h->ra[h->ra_turn++ % READAHEAD_SLOTS];
	*slot = (struct readahead){ .rg = r->rg, .st = r->stream, .next = r->end, .end = r->ra_end,
				    .gen = h->batch_gen };
}

/* Private: the run into this VM's memory with one UFFDIO_COPY.  Shared:
 * the run is in the cache once read, and the woken faults find it there:
 * nothing to install. */
static void load_run(struct handler *h, struct run *r, uint64_t t0)
{
	struct kevd_error e = KEVD_ERROR_INIT;
	uint64_t installed = 0;

	if (read_run(h, r) < 0)
		return;
	if (!h->pager->cached &&
	    kevd_pager_copy_in(h, r->host, h->buf, (r->end - r->first) << KEVD_PAGE_SHIFT, &installed, &e) < 0) {
		copy_failed(h, r, installed, &e);
		return;
	}
	run_done(h, r, t0);
	if (r->ra_end > r->end)
		readahead_queue(h, r);
}

static bool readahead_pending(const struct handler *h)
{
	for (unsigned i = 0; i < READAHEAD_SLOTS; i++)
		if (h->ra[i].rg)
			return true;
	return false;
}

/* One read of read-ahead, for the slots in turn: the first pages from a
 * slot's next on that nobody has claimed (or, shared, filled), up to a
 * chunk, read and installed as a fault's would be, but counted as
 * read-ahead.  A slot whose pages others took is passed over a chunk's
 * worth of pages at a time.  Nothing waits on these pages as its own
 * load, so they are published and woken for whoever met them meanwhile. */
static void readahead_step(struct handler *h)
{
	struct kevd_pager *p = h->pager;
	struct readahead *ra = NULL;
	struct kevd_error e = KEVD_ERROR_INIT;
	unsigned chunk = readahead_chunk(p);
	uint64_t installed = 0, n;
	uint32_t *w = NULL;
	struct run r;

	for (unsigned i = 0; i < READAHEAD_SLOTS && !ra; i++, h->ra_turn++)
		if (h->ra[h->ra_turn % READAHEAD_SLOTS].rg)
			ra = &h->ra[h->ra_turn % READAHEAD_SLOTS];
	if (!ra)
		return;
	/* Queued before a quiesce (a pause): dropped, the pager stays idle.
	 * A failed VM reads nothing more for itself either. */
	if (ra->gen != __atomic_load_n(&p->ra_gen, __ATOMIC_SEQ_CST) || __atomic_load_n(&p->failed, __ATOMIC_ACQUIRE)) {
		ra->rg = NULL;
		return;
	}
	r = (struct run){ .rg = ra->rg, .ahead = true };
	for (unsigned scanned = 0; !w && ra->next < ra->end && scanned < chunk; scanned++) {
		uint64_t g = ra->next++;

		if (p->cached && kevd_cached_image_filled(p->cached, g))
			continue;
		w = kevd_pagestate_get(p->states, g);
		if (!w) {
			/* No memory for a state word: the pages are left to
			 * their faults, which report it. */
			ra->next = ra->end;
			break;
		}
		if (!kevd_pagestate_claim(w))
			w = NULL;
		else
			r.gfn = g;
	}
	if (!w) {
		if (ra->next >= ra->end)
			ra->rg = NULL;
		return;
	}
	r.wstart = r.gfn;
	r.wend = r.gfn + chunk < ra->end ? r.gfn + chunk : ra->end;
	claim_run(p, &r, w);
	ra->next = r.end;
	if (ra->next >= ra->end)
		ra->rg = NULL;
	if (read_run(h, &r) < 0) {
		ra->rg = NULL;
		return;
	}
	n = r.end - r.first;
	if (!p->cached && kevd_pager_copy_in(h, r.host, h->buf, n << KEVD_PAGE_SHIFT, &installed, &e) < 0) {
		ra->rg = NULL;
		copy_failed(h, &r, installed, &e);
		return;
	}
	bump(&h->c.readaheads, 1);
	bump(&h->c.pages_loaded_around, n);
	publish_loaded(p, &r, r.end);
}

/* A fault that met its page loading or loaded by another fault (another
 * VM's, when shared): a coalesced fault, woken once the page is there.  A
 * page that failed in the shared cache fails this VM too, with the first
 * failure's reason. */
static void coalesced(struct handler *h, struct run *r, uint64_t addr, enum kevd_page_state st)
{
	struct kevd_pager *p = h->pager;
	struct kevd_error e = KEVD_ERROR_INIT;

	bump(&h->c.faults_coalesced, 1);
	if (p->cached && st == KEVD_PAGE_FAILED) {
		kevd_cached_image_failure(p->cached, &e);
		fail_pages(p, r, r->gfn, r->gfn + 1, &e);
		return;
	}
	/* Wake only onto something: a FAILED page without poison would fault
	 * again at once, so its thread sleeps until its owner stops it. */
	if (st == KEVD_PAGE_MAPPED || p->poison)
		wake_range(p, addr, KEVD_PAGE_SIZE);
}

static void handle_fault(struct handler *h, uint64_t addr, pid_t tid)
{
	struct kevd_pager *p = h->pager;
	uint64_t t0 = kevd_now_ns(CLOCK_MONOTONIC);
	struct run r = { .rg = kevd_pager_region_of_host(p, addr) };
	struct kevd_error e = KEVD_ERROR_INIT;
	bool listed;
	uint32_t *w;

	if (!load(&h->c.first_fault_ns))
		store(&h->c.first_fault_ns, t0);
	store(&h->c.last_fault_ns, t0);
	bump(&h->c.faults, 1);
	record_tid(&h->c, tid);
	/* From here every fault event ends in exactly one of loads,
	 * faults_coalesced, load_failures and faults_unserved (docs/pager.md). */
	if (kevd_unlikely(!r.rg)) {
		/* Not guest memory: cannot happen, only ranges we registered fault. */
		bump(&h->c.faults_unserved, 1);
		return;
	}
	addr &= ~KEVD_PAGE_MASK;
	r.gfn = (r.rg->gpa + (addr - (uint64_t)(uintptr_t)r.rg->host)) >> KEVD_PAGE_SHIFT;
	listed = p->nws && kevd_pager_ws_listed(p, r.gfn);
	if (p->nws && !listed)
		bump(&h->c.prefetch_misses, 1);
	/* Shared and filled since the fault was queued: the retried fault
	 * finds the page in the cache. */
	if (p->cached && kevd_cached_image_filled(p->cached, r.gfn)) {
		coalesced(h, &r, addr, KEVD_PAGE_MAPPED);
		stream_passed(p, tid, r.gfn);
		return;
	}
	w = kevd_pagestate_get(p->states, r.gfn);
	if (kevd_unlikely(!w)) {
		/* Not a load failure: no page was claimed, none is FAILED, and a
		 * later fault on the page may still load it.  Counted before the
		 * owner hears, as every failure is. */
		bump(&h->c.faults_unserved, 1);
		kevd_error_set(&e, ENOMEM, "pager: no memory for the state of guest page 0x%llx",
			       (unsigned long long)(r.gfn << KEVD_PAGE_SHIFT));
		kevd_pager_report_failure(p, r.gfn, &e);
		return;
	}
	while (!kevd_pagestate_claim(w)) {
		enum kevd_page_state st = kevd_pagestate_wait(w);

		/* UNLOADED: a read-ahead gave the page back; claim it again. */
		if (st == KEVD_PAGE_UNLOADED)
			continue;
		coalesced(h, &r, addr, st);
		stream_passed(p, tid, r.gfn);
		return;
	}
	plan_window(h, &r, tid, listed);
	claim_run(p, &r, w);
	/* The guest is ahead of the prefetch: it goes on past this load. */
	if (listed)
		__atomic_store_n(&p->ws_hint, r.end + 1, __ATOMIC_RELAXED);
	load_run(h, &r, t0);
}

/* A handler thread polls the userfaultfd and its stop eventfd, reads
 * events and the image (pread, fstat for the changed-file check), writes
 * the shared cache (pwrite) and installs, wakes or poisons pages. */
static const int handler_calls[] = {
	__NR_poll, __NR_ppoll, __NR_read, __NR_pread64, __NR_pwrite64, __NR_fstat, __NR_newfstatat,
};
static const unsigned long handler_ioctls[] = { UFFDIO_COPY, UFFDIO_WAKE, UFFDIO_POISON };

const struct kevd_sandbox_role kevd_pager_sandbox_role = {
	.name = "pager",
	.syscalls = handler_calls, .nsyscalls = sizeof(handler_calls) / sizeof(handler_calls[0]),
	.ioctls = handler_ioctls, .nioctls = sizeof(handler_ioctls) / sizeof(handler_ioctls[0]),
};

void *kevd_pager_handler_main(void *arg)
{
	struct handler *h = arg;
	struct kevd_pager *p = h->pager;
	struct uffd_msg msgs[EVENT_BATCH];
	struct kevd_error err = KEVD_ERROR_INIT;

	if (kevd_sandbox_thread(&kevd_pager_sandbox_role, &err) < 0 && err.errnum != ENOSYS)
		kevd_warn("pager thread runs unconfined: %s", err.msg);
	for (;;) {
		struct pollfd pfd[2] = { { p->uffd, POLLIN, 0 }, { p->stopfd, POLLIN, 0 } };
		bool ahead = readahead_pending(h);
		ssize_t n;

		/* Read-ahead only while no fault waits: a look (timeout 0)
		 * before every chunk of it. */
		if (KEVD_RETRY_EINTR(poll(pfd, 2, ahead ? 0 : -1)) < 0)
			break;
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			break;
		if (!(pfd[0].revents & POLLIN)) {
			/* Busy as a batch is, for kevd_pager_quiesce(). */
			__atomic_add_fetch(&p->busy, 1, __ATOMIC_SEQ_CST);
			readahead_step(h);
			__atomic_sub_fetch(&p->busy, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		/* Counted from before the read: kevd_pager_quiesce() must not
		 * see an idle pager while a batch it read is half served. */
		__atomic_add_fetch(&p->busy, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&p->serving, 1, __ATOMIC_RELAXED);
		h->batch_gen = __atomic_load_n(&p->ra_gen, __ATOMIC_SEQ_CST);
		n = read(p->uffd, msgs, sizeof(msgs));
		for (size_t i = 0; n > 0 && i < (size_t)n / sizeof(msgs[0]); i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			handle_fault(h, msgs[i].arg.pagefault.address,
				     (pid_t)msgs[i].arg.pagefault.feat.ptid);
		}
		/* n < 0: EAGAIN, another handler took the events. */
		__atomic_sub_fetch(&p->serving, 1, __ATOMIC_RELAXED);
		__atomic_sub_fetch(&p->busy, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

