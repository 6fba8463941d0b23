/*
 * The lazy pager (see pager.h).
 *
 * Fault path, per handler thread:  poll(uffd, stop) -> read a batch of
 * events -> for each: page state word of the faulting page -> either
 *   - win the claim (UNLOADED -> LOADING), extend the claim over free
 *     neighbours inside the aligned fault-around window of the same segment,
 *     read the run from the image into the thread's buffer and install it
 *     with one UFFDIO_COPY (DONTWAKE), count it, publish MAPPED and only
 *     then wake the faulting threads; or
 *   - meet LOADING/MAPPED (a coalesced fault): sleep on the word until the
 *     owner publishes, then UFFDIO_WAKE the page, because an EEXIST or a
 *     copy finished before this fault queued does not promise that the
 *     faulting thread was woken.
 * Which thread loads a page is settled by the claim before any byte is
 * written, so a slow loser never overwrites a page in use.
 *
 * A page that cannot be read is published FAILED and, where the kernel has
 * UFFDIO_POISON, poisoned, so its faulting threads wake with SIGBUS instead
 * of sleeping forever; the owner hears of the first failure through its
 * callback and fails the VM.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/sandbox.h"
#include "common/time.h"
#include "pager/pager.h"

/* Debian 12's headers predate UFFDIO_POISON (Linux 6.6); the ABI is fixed. */
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#define EVENT_BATCH 16
#define EAGAIN_MAX_RETRIES 1000

struct region {
	uint64_t gpa;
	uint64_t len;
	unsigned char *host;
};

/* Counters of one handler thread: written only by it (relaxed stores, no
 * read-modify-write on the hot path), read by anyone with relaxed loads.
 * The scalars are the per-thread rows of KEVD_PAGER_STATS, under the same
 * names; an EARLIEST/LATEST stamp is CLOCK_MONOTONIC here. */
#define COUNTER_SUM(field) uint64_t field;
#define COUNTER_EARLIEST(field) uint64_t field;
#define COUNTER_LATEST(field) uint64_t field;
#define COUNTER_PAGER(field)
#define COUNTER_SETUP(field)
#define COUNTER_MEMBER(field, how, json, metric, type, help) COUNTER_##how(field)

struct counters {
	KEVD_PAGER_STATS(COUNTER_MEMBER)
	uint64_t hist[KEVD_PAGER_HIST_BUCKETS];
	struct { int32_t tid; uint64_t faults; } tids[KEVD_PAGER_MAX_TIDS];
};

struct handler {
	struct kevd_pager *pager;
	pthread_t thread;        /* owned by the pager: joined in kevd_pager_free */
	bool started;
	unsigned char *buf;      /* window_pages pages; this thread's only */
	struct counters c;
};

struct kevd_pager {
	struct kevd_image *img;          /* borrowed; outlives the pager */
	struct kevd_pager_config cfg;
	struct kevd_pagestate *states;
	int uffd;                        /* owned; -1 in eager mode */
	int stopfd;                      /* owned eventfd; readable = threads must exit */
	bool poison;                     /* UFFDIO_POISON granted on every range */
	size_t nregions;
	struct region *regions;          /* immutable once started */
	struct handler *handlers;        /* published (release) before any thread starts */
	bool started;
	int failed;                      /* atomic: first failure reported */
	uint64_t mono_base_ns, real_base_ns;
	uint64_t eager_load_ns;          /* relaxed atomics: set by start, read by stats */
	uint64_t eager_bytes;
};

static inline void store(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void bump(uint64_t *p, uint64_t n) { store(p, load(p) + n); }

static int open_uffd(struct kevd_error *err)
{
	int fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		int u = ioctl(fd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		int saved = errno;

		close(fd);
		if (u >= 0)
			return u;
		errno = saved;
	}
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return kevd_error_sys(err, errno, "userfaultfd");
	return fd;
}

/* The kernel offers what it has to a handshake asking for nothing; a
 * second descriptor then asks for what kevd uses of it. */
static int setup_uffd(struct kevd_pager *p, struct kevd_error *err)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	cleanup_close int probe = open_uffd(err);
	uint64_t want = UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_POISON;

	if (probe < 0)
		return probe;
	if (ioctl(probe, UFFDIO_API, &api) < 0)
		return kevd_error_sys(err, errno, "userfaultfd: UFFDIO_API");
	if (!(api.features & UFFD_FEATURE_THREAD_ID))
		return kevd_error_set(err, ENOTSUP, "userfaultfd: the kernel lacks UFFD_FEATURE_THREAD_ID");
	want &= api.features;
	p->uffd = open_uffd(err);
	if (p->uffd < 0)
		return p->uffd;
	api = (struct uffdio_api){ .api = UFFD_API, .features = want };
	if (ioctl(p->uffd, UFFDIO_API, &api) < 0)
		return kevd_error_sys(err, errno, "userfaultfd: UFFDIO_API with features 0x%llx",
				      (unsigned long long)want);
	p->poison = (want & UFFD_FEATURE_POISON) != 0;
	return 0;
}

int kevd_pager_new(struct kevd_image *img, const struct kevd_pager_config *cfg,
		   struct kevd_pager **out, struct kevd_error *err)
{
	struct kevd_pager *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return kevd_error_sys(err, ENOMEM, "pager");
	p->img = img;
	p->uffd = -1;
	p->stopfd = -1;
	if (cfg)
		p->cfg = *cfg;
	if (!p->cfg.handler_threads)
		p->cfg.handler_threads = KEVD_PAGER_DEFAULT_THREADS;
	if (!p->cfg.window_pages)
		p->cfg.window_pages = KEVD_PAGER_DEFAULT_WINDOW;
	if (!p->cfg.stripes)
		p->cfg.stripes = KEVD_PAGER_DEFAULT_STRIPES;
	if (p->cfg.handler_threads > KEVD_PAGER_MAX_THREADS) {
		r = kevd_error_set(err, EINVAL, "pager: %u handler threads is more than %u",
				   p->cfg.handler_threads, KEVD_PAGER_MAX_THREADS);
		goto fail;
	}
	if (p->cfg.window_pages > KEVD_PAGER_MAX_WINDOW) {
		r = kevd_error_set(err, EINVAL, "pager: fault-around window of %u pages is more than %u",
				   p->cfg.window_pages, KEVD_PAGER_MAX_WINDOW);
		goto fail;
	}
	r = kevd_pagestate_new(p->cfg.stripes, &p->states, err);
	if (r < 0)
		goto fail;
	p->mono_base_ns = kevd_now_ns(CLOCK_MONOTONIC);
	p->real_base_ns = kevd_now_ns(CLOCK_REALTIME);
	if (!p->cfg.eager) {
		r = setup_uffd(p, err);
		if (r < 0)
			goto fail;
		p->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->stopfd < 0) {
			r = kevd_error_sys(err, errno, "pager: eventfd");
			goto fail;
		}
	}
	*out = p;
	return 0;
fail:
	kevd_pager_free(p);
	return r;
}

static const struct region *region_of_gpa(const struct kevd_pager *p, uint64_t gpa)
{
	for (size_t i = 0; i < p->nregions; i++)
		if (gpa >= p->regions[i].gpa && gpa - p->regions[i].gpa < p->regions[i].len)
			return &p->regions[i];
	return NULL;
}

static const struct region *region_of_host(const struct kevd_pager *p, uint64_t addr)
{
	for (size_t i = 0; i < p->nregions; i++) {
		uint64_t base = (uint64_t)(uintptr_t)p->regions[i].host;

		if (addr >= base && addr - base < p->regions[i].len)
			return &p->regions[i];
	}
	return NULL;
}

int kevd_pager_add_memory(struct kevd_pager *p, kevd_gpa_t gpa, void *host, size_t len,
			  struct kevd_error *err)
{
	struct region *rs;

	if (p->started)
		return kevd_error_set(err, EBUSY, "pager: memory added after start");
	if ((gpa.v | (uintptr_t)host | len) & KEVD_PAGE_MASK || len == 0)
		return kevd_error_set(err, EINVAL, "pager: memory region at 0x%llx is not page aligned",
				      (unsigned long long)gpa.v);
	for (size_t i = 0; i < p->nregions; i++)
		if (gpa.v < p->regions[i].gpa + p->regions[i].len && p->regions[i].gpa < gpa.v + len)
			return kevd_error_set(err, EEXIST, "pager: memory region at 0x%llx overlaps another",
					      (unsigned long long)gpa.v);
	rs = realloc(p->regions, (p->nregions + 1) * sizeof(*rs));
	if (!rs)
		return kevd_error_sys(err, ENOMEM, "pager");
	p->regions = rs;
	p->regions[p->nregions++] = (struct region){ gpa.v, len, host };

	if (p->cfg.eager)
		return 0;
	for (size_t i = 0; i < kevd_image_extent_count(p->img); i++) {
		const struct kevd_image_extent *e = kevd_image_extent(p->img, i);
		uint64_t a = e->first_gfn << KEVD_PAGE_SHIFT, b = e->end_gfn << KEVD_PAGE_SHIFT;
		struct uffdio_register reg;
		uint64_t need = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_WAKE);

		if (a < gpa.v)
			a = gpa.v;
		if (b > gpa.v + len)
			b = gpa.v + len;
		if (a >= b)
			continue;
		reg = (struct uffdio_register){
			.range = { .start = (uintptr_t)host + (a - gpa.v), .len = b - a },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		if (kevd_fault("uffd_register") ? (errno = ENOMEM, true) : ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0)
			return kevd_error_sys(err, errno, "pager: registering guest pages 0x%llx-0x%llx with userfaultfd",
					      (unsigned long long)a, (unsigned long long)b);
		if ((reg.ioctls & need) != need)
			return kevd_error_set(err, ENOTSUP, "pager: userfaultfd does not offer UFFDIO_COPY and UFFDIO_WAKE on guest memory");
		if (!(reg.ioctls & (1ull << _UFFDIO_POISON)))
			p->poison = false;
	}
	return 0;
}

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

static void report_failure(struct kevd_pager *p, uint64_t gfn, const struct kevd_error *e)
{
	if (__atomic_exchange_n(&p->failed, 1, __ATOMIC_ACQ_REL))
		return;
	if (p->cfg.on_failure)
		p->cfg.on_failure(p->cfg.cb_arg, KEVD_GPA(gfn << KEVD_PAGE_SHIFT), e);
}

/* Installs BUF at HOST for LEN bytes: retries the remainder after EAGAIN
 * (a partial copy reports the bytes done) with a growing sleep, never a
 * spin; skips (and wakes) a page that is already present.  *INSTALLED gets
 * how many bytes from HOST are in place, also when it fails. */
static int copy_in(struct handler *h, uint64_t host, const unsigned char *buf, uint64_t len,
		   uint64_t *installed, struct kevd_error *err)
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
	*installed = done;
	return r;
}

/* Ends the claims of [FIRST, END) as FAILED; the caller counted them. */
static void fail_run(struct handler *h, const struct region *rg, uint64_t first, uint64_t end,
		     uint32_t **words, const struct kevd_error *e)
{
	struct kevd_pager *p = h->pager;
	uint64_t host = (uint64_t)(uintptr_t)rg->host + ((first << KEVD_PAGE_SHIFT) - rg->gpa);

	/* The owner hears first, so that it has stopped its vCPUs by the time
	 * the poison wakes them with SIGBUS; otherwise they would re-enter the
	 * guest and meet the poison again. */
	report_failure(p, first, e);
	/* Page by page, so that one already present (EEXIST) does not leave the
	 * rest unpoisoned.  A page that cannot be poisoned is not woken: its
	 * thread would only fault again; the owner's stop ends its wait. */
	for (uint64_t g = first; p->poison && g < end; g++) {
		struct uffdio_poison po = {
			.range = { .start = host + ((g - first) << KEVD_PAGE_SHIFT), .len = KEVD_PAGE_SIZE },
		};

		if (ioctl(p->uffd, UFFDIO_POISON, &po) < 0 && errno != EEXIST)
			kevd_debug("pager: UFFDIO_POISON of guest page 0x%llx: %s",
				   (unsigned long long)(g << KEVD_PAGE_SHIFT), strerror(errno));
	}
	for (uint64_t g = first; g < end; g++)
		kevd_pagestate_publish(words[g - first], KEVD_PAGE_FAILED);
}

static void handle_fault(struct handler *h, uint64_t addr, pid_t tid)
{
	struct kevd_pager *p = h->pager;
	uint64_t t0 = kevd_now_ns(CLOCK_MONOTONIC);
	const struct region *rg = region_of_host(p, addr);
	uint32_t *words[KEVD_PAGER_MAX_WINDOW];
	uint64_t gfn, first, end, wstart, wend, seg_first, seg_end, host;
	const struct kevd_image_segment *seg;
	struct kevd_error e = KEVD_ERROR_INIT;
	uint64_t bytes = 0, installed = 0;
	uint32_t *w;

	if (!load(&h->c.first_fault_ns))
		store(&h->c.first_fault_ns, t0);
	store(&h->c.last_fault_ns, t0);
	bump(&h->c.faults, 1);
	record_tid(&h->c, tid);
	/* From here every fault event ends in exactly one of loads,
	 * faults_coalesced, load_failures and faults_unserved (docs/pager.md). */
	if (kevd_unlikely(!rg)) {
		/* Not guest memory: cannot happen, only ranges we registered fault. */
		bump(&h->c.faults_unserved, 1);
		return;
	}
	addr &= ~KEVD_PAGE_MASK;
	gfn = (rg->gpa + (addr - (uint64_t)(uintptr_t)rg->host)) >> KEVD_PAGE_SHIFT;
	w = kevd_pagestate_get(p->states, gfn);
	if (kevd_unlikely(!w)) {
		/* Not a load failure: no page was claimed, none is FAILED, and a
		 * later fault on the page may still load it.  Counted before the
		 * owner hears, as every failure is. */
		bump(&h->c.faults_unserved, 1);
		kevd_error_set(&e, ENOMEM, "pager: no memory for the state of guest page 0x%llx",
			       (unsigned long long)(gfn << KEVD_PAGE_SHIFT));
		report_failure(p, gfn, &e);
		return;
	}
	if (!kevd_pagestate_claim(w)) {
		bump(&h->c.faults_coalesced, 1);
		/* Wake only onto something: a FAILED page without poison would
		 * fault again at once, so its thread sleeps until its owner
		 * stops it. */
		if (kevd_pagestate_wait(w) == KEVD_PAGE_MAPPED || p->poison)
			wake_range(p, addr, KEVD_PAGE_SIZE);
		return;
	}

	/* Won the page: grow the run over free neighbours inside the aligned
	 * window, clipped to the segment and to this memory region. */
	seg = kevd_image_segment_of(p->img, gfn);
	seg_first = seg ? seg->first_gfn : gfn;
	seg_end = seg ? seg->end_gfn : gfn + 1;
	wstart = gfn - gfn % p->cfg.window_pages;
	wend = wstart + p->cfg.window_pages;
	if (wstart < seg_first)
		wstart = seg_first;
	if (wend > seg_end)
		wend = seg_end;
	if (wstart < rg->gpa >> KEVD_PAGE_SHIFT)
		wstart = rg->gpa >> KEVD_PAGE_SHIFT;
	if (wend > (rg->gpa + rg->len) >> KEVD_PAGE_SHIFT)
		wend = (rg->gpa + rg->len) >> KEVD_PAGE_SHIFT;
	first = gfn;
	end = gfn + 1;
	words[gfn - wstart] = w;
	while (first > wstart) {
		uint32_t *n = kevd_pagestate_get(p->states, first - 1);

		if (!n || !kevd_pagestate_claim(n))
			break;
		words[--first - wstart] = n;
	}
	while (end < wend) {
		uint32_t *n = kevd_pagestate_get(p->states, end);

		if (!n || !kevd_pagestate_claim(n))
			break;
		words[end++ - wstart] = n;
	}

	host = (uint64_t)(uintptr_t)rg->host + ((first << KEVD_PAGE_SHIFT) - rg->gpa);
	if ((kevd_unlikely(kevd_fault("image_read")) &&
	     kevd_error_set(&e, EIO, "image '%s': injected read error", kevd_image_path(p->img)) < 0) ||
	    kevd_image_fill(p->img, first, end - first, h->buf, &bytes, &e) < 0) {
		kevd_error_prefix(&e, "guest page 0x%llx", (unsigned long long)(gfn << KEVD_PAGE_SHIFT));
		bump(&h->c.load_failures, 1);
		bump(&h->c.pages_failed, end - first);
		fail_run(h, rg, first, end, words + (first - wstart), &e);
		return;
	}
	bump(&h->c.bytes_read, bytes);
	if (copy_in(h, host, h->buf, (end - first) << KEVD_PAGE_SHIFT, &installed, &e) < 0) {
		uint64_t ok_end = first + (installed >> KEVD_PAGE_SHIFT);

		/* The pages before the failing one are in place: they count as
		 * loaded, the rest as failed, and the operation as one failed
		 * load, not also as a load, so that each fault has one outcome.
		 * Counted before anything is woken, as a load is. */
		bump(&h->c.load_failures, 1);
		bump(&h->c.pages_failed, end - ok_end);
		if (ok_end > first) {
			bump(&h->c.pages_loaded_demand, gfn < ok_end);
			bump(&h->c.pages_loaded_around, ok_end - first - (gfn < ok_end));
			for (uint64_t g = first; g < ok_end; g++)
				kevd_pagestate_publish(words[g - wstart], KEVD_PAGE_MAPPED);
			wake_range(p, host, installed);
		}
		kevd_error_prefix(&e, "guest page 0x%llx", (unsigned long long)(gfn << KEVD_PAGE_SHIFT));
		fail_run(h, rg, ok_end, end, words + (ok_end - wstart), &e);
		return;
	}
	/* Count and publish before the wake, so that whoever the faulting
	 * thread talks to next already sees this load in the statistics. */
	bump(&h->c.loads, 1);
	bump(&h->c.pages_loaded_demand, 1);
	bump(&h->c.pages_loaded_around, end - first - 1);
	record_latency(&h->c, kevd_now_ns(CLOCK_MONOTONIC) - t0);
	if (p->cfg.on_load)
		p->cfg.on_load(p->cfg.cb_arg, first, end - first);
	for (uint64_t g = first; g < end; g++)
		kevd_pagestate_publish(words[g - wstart], KEVD_PAGE_MAPPED);
	wake_range(p, host, (end - first) << KEVD_PAGE_SHIFT);
}

/* A handler thread polls the userfaultfd and its stop eventfd, reads
 * events and the image (pread, fstat for the changed-file check) and
 * installs, wakes or poisons pages. */
static const int handler_calls[] = {
	__NR_poll, __NR_ppoll, __NR_read, __NR_pread64, __NR_fstat, __NR_newfstatat,
};
static const unsigned long handler_ioctls[] = { UFFDIO_COPY, UFFDIO_WAKE, UFFDIO_POISON };

const struct kevd_sandbox_role kevd_pager_sandbox_role = {
	.name = "pager",
	.syscalls = handler_calls, .nsyscalls = sizeof(handler_calls) / sizeof(handler_calls[0]),
	.ioctls = handler_ioctls, .nioctls = sizeof(handler_ioctls) / sizeof(handler_ioctls[0]),
};

static void *handler_main(void *arg)
{
	struct handler *h = arg;
	struct kevd_pager *p = h->pager;
	struct uffd_msg msgs[EVENT_BATCH];
	struct kevd_error err = KEVD_ERROR_INIT;

	if (kevd_sandbox_thread(&kevd_pager_sandbox_role, &err) < 0 && err.errnum != ENOSYS)
		kevd_warn("pager thread runs unconfined: %s", err.msg);
	for (;;) {
		struct pollfd pfd[2] = { { p->uffd, POLLIN, 0 }, { p->stopfd, POLLIN, 0 } };
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			break;
		n = read(p->uffd, msgs, sizeof(msgs));
		if (n < 0)
			continue;  /* EAGAIN: another handler took the events */
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			handle_fault(h, msgs[i].arg.pagefault.address,
				     (pid_t)msgs[i].arg.pagefault.feat.ptid);
		}
	}
	return NULL;
}

static int load_eager(struct kevd_pager *p, struct kevd_error *err)
{
	uint64_t t0 = kevd_now_ns(CLOCK_MONOTONIC), bytes = 0;
	int r = 0;

	for (size_t i = 0; i < kevd_image_extent_count(p->img) && r == 0; i++) {
		const struct kevd_image_extent *e = kevd_image_extent(p->img, i);
		const struct region *rg = region_of_gpa(p, e->first_gfn << KEVD_PAGE_SHIFT);
		unsigned char *host = rg->host + ((e->first_gfn << KEVD_PAGE_SHIFT) - rg->gpa);

		r = kevd_image_fill(p->img, e->first_gfn, e->end_gfn - e->first_gfn, host, &bytes, err);
	}
	/* Stored, not accumulated in place: a statistics reader may look at
	 * any time. */
	store(&p->eager_bytes, bytes);
	if (r < 0)
		return r;
	store(&p->eager_load_ns, kevd_now_ns(CLOCK_MONOTONIC) - t0);
	return 0;
}

int kevd_pager_start(struct kevd_pager *p, struct kevd_error *err)
{
	if (p->started)
		return kevd_error_set(err, EBUSY, "pager: already started");
	/* Every image page must be in one declared region, or a fault would
	 * be served nowhere (lazy) or a copy would run off a mapping (eager). */
	for (size_t i = 0; i < kevd_image_extent_count(p->img); i++) {
		const struct kevd_image_extent *e = kevd_image_extent(p->img, i);
		uint64_t a = e->first_gfn << KEVD_PAGE_SHIFT, b = e->end_gfn << KEVD_PAGE_SHIFT;
		const struct region *rg = region_of_gpa(p, a);

		if (!rg || b - rg->gpa > rg->len)
			return kevd_error_set(err, ERANGE, "pager: image '%s' pages 0x%llx-0x%llx are not all in guest RAM",
					      kevd_image_path(p->img), (unsigned long long)a, (unsigned long long)b);
	}
	p->started = true;
	if (p->cfg.eager)
		return load_eager(p, err);

	__atomic_store_n(&p->handlers, calloc(p->cfg.handler_threads, sizeof(*p->handlers)), __ATOMIC_RELEASE);
	if (!p->handlers)
		return kevd_error_sys(err, ENOMEM, "pager");
	for (unsigned i = 0; i < p->cfg.handler_threads; i++) {
		struct handler *h = &p->handlers[i];
		char name[16];
		int r;

		h->pager = p;
		h->buf = aligned_alloc(KEVD_PAGE_SIZE, (size_t)p->cfg.window_pages * KEVD_PAGE_SIZE);
		if (!h->buf)
			return kevd_error_sys(err, ENOMEM, "pager: fault buffer");
		r = pthread_create(&h->thread, NULL, handler_main, h);
		if (r)
			return kevd_error_sys(err, r, "pager: starting handler thread %u", i);
		h->started = true;
		snprintf(name, sizeof(name), "pager-%u", i % KEVD_PAGER_MAX_THREADS);
		pthread_setname_np(h->thread, name);
	}
	return 0;
}

void kevd_pager_stop(struct kevd_pager *p)
{
	if (!p)
		return;
	if (p->handlers) {
		uint64_t one = 1;

		if (write(p->stopfd, &one, sizeof(one)) < 0) {
			/* eventfd write fails only on counter overflow: already signalled */
		}
		for (unsigned i = 0; i < p->cfg.handler_threads; i++) {
			if (p->handlers[i].started)
				pthread_join(p->handlers[i].thread, NULL);
			p->handlers[i].started = false;
		}
	}
	/* Closing the userfaultfd wakes every thread still waiting on a fault
	 * (the pages become plain anonymous memory). */
	if (p->uffd >= 0)
		close(p->uffd);
	p->uffd = -1;
}

void kevd_pager_free(struct kevd_pager *p)
{
	if (!p)
		return;
	kevd_pager_stop(p);
	if (p->handlers) {
		for (unsigned i = 0; i < p->cfg.handler_threads; i++)
			free(p->handlers[i].buf);
		free(p->handlers);
	}
	if (p->stopfd >= 0)
		close(p->stopfd);
	kevd_pagestate_free(p->states);
	free(p->regions);
	free(p);
}

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
#define FOLD_MEMBER(field, how, json, metric, type, help) FOLD_##how(s->field, c->field)

/* Takes no lock that a fault takes: the per-thread counters and the page
 * state table's count are read with relaxed loads (see their writers), the
 * rest never changes once the pager runs.  So the summary is not one
 * instant's: each counter is read at its own moment, and a reader that
 * wants the identities of docs/pager.md waits until they hold. */
void kevd_pager_get_stats(struct kevd_pager *p, struct kevd_pager_stats *s)
{
	const struct handler *handlers = __atomic_load_n(&p->handlers, __ATOMIC_ACQUIRE);

	memset(s, 0, sizeof(*s));
	s->eager = p->cfg.eager;
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
	for (unsigned i = 0; handlers && i < p->cfg.handler_threads; i++) {
		const struct counters *c = &handlers[i].c;

		KEVD_PAGER_STATS(FOLD_MEMBER)
		for (unsigned b = 0; b < KEVD_PAGER_HIST_BUCKETS; b++)
			s->latency_hist[b] += load(&c->hist[b]);
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
	s->pages_loaded = s->pages_loaded_demand + s->pages_loaded_around;
}

uint64_t kevd_pager_stats_thread_faults(const struct kevd_pager_stats *st, pid_t tid)
{
	for (size_t i = 0; tid && i < st->nthreads; i++)
		if (st->threads[i].tid == tid)
			return st->threads[i].faults;
	return 0;
}

int kevd_pager_translate(struct kevd_pager *p, kevd_gpa_t gpa, void **host,
			 enum kevd_page_state *state, bool *image_backed)
{
	const struct region *rg = region_of_gpa(p, gpa.v);
	uint64_t gfn = gpa.v >> KEVD_PAGE_SHIFT;
	bool backed;
	uint32_t *w;

	if (!rg)
		return -ENOENT;
	backed = kevd_image_has_page(p->img, gfn);
	if (host)
		*host = rg->host + (gpa.v - rg->gpa);
	if (image_backed)
		*image_backed = backed;
	if (state) {
		if (!backed || p->cfg.eager)
			*state = (backed && !p->started) ? KEVD_PAGE_UNLOADED : KEVD_PAGE_MAPPED;
		else
			*state = (w = kevd_pagestate_find(p->states, gfn)) ? kevd_pagestate_read(w)
									   : KEVD_PAGE_UNLOADED;
	}
	return 0;
}

bool kevd_pager_failed(struct kevd_pager *p)
{
	return __atomic_load_n(&p->failed, __ATOMIC_ACQUIRE) != 0;
}

bool kevd_pager_poisons(const struct kevd_pager *p)
{
	return p->poison;
}
