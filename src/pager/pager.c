/*
 * The lazy pager (see pager.h).
 *
 * Fault path, per handler thread (service.c): poll(uffd, stop) -> read a
 * batch of events -> for each, top-down: the fault-around window (it
 * doubles while faults are sequential, and falls back to window_pages,
 * aligned, on a random one) -> the faulting page's state word -> either
 *   - win the claim (UNLOADED -> LOADING) and extend it over the free
 *     neighbours in the window, read the run from the image once into
 *     this thread's buffer, install it (private: one UFFDIO_COPY,
 *     DONTWAKE; shared: one write into the cache's memfd, which every VM
 *     of the image maps), count, publish MAPPED and only then wake the
 *     faulting threads (shared: their retried faults find the pages in the
 *     cache).  A sequential fault's window is read in part before the
 *     wake (its first chunk) and the rest afterwards, as its stream's
 *     read-ahead: between fault batches, a chunk at a time, claimed the
 *     same way; or
 *   - meet LOADING/MAPPED (a coalesced fault; shared, maybe another VM's
 *     load): sleep on the word until the owner publishes, then UFFDIO_WAKE
 *     the page, because an EEXIST or a copy finished before this fault
 *     queued does not promise that the faulting thread was woken.
 * Shared, a page already filled never faults to the pager at all: only
 * holes of the memfd are missing pages, the kernel maps the rest.
 * Which thread reads a page is settled by the claim before any byte is
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
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/time.h"
#include "pager/pager_internal.h"

int kevd_pager_open_uffd(struct kevd_error *err)
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
	cleanup_close int probe = kevd_pager_open_uffd(err);
	uint64_t want = UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_POISON;

	if (probe < 0)
		return probe;
	if (ioctl(probe, UFFDIO_API, &api) < 0)
		return kevd_error_sys(err, errno, "userfaultfd: UFFDIO_API");
	if (!(api.features & UFFD_FEATURE_THREAD_ID))
		return kevd_error_set(err, ENOTSUP, "userfaultfd: the kernel lacks UFFD_FEATURE_THREAD_ID");
	want &= api.features;
	p->uffd = kevd_pager_open_uffd(err);
	if (p->uffd < 0)
		return p->uffd;
	api = (struct uffdio_api){ .api = UFFD_API, .features = want };
	if (ioctl(p->uffd, UFFDIO_API, &api) < 0)
		return kevd_error_sys(err, errno, "userfaultfd: UFFDIO_API with features 0x%llx",
				      (unsigned long long)want);
	p->poison = (want & UFFD_FEATURE_POISON) != 0;
	return 0;
}

/* Takes a reference to the cache's entry for the image, or, where this
 * kernel cannot share, says so once and leaves the pager private.  False
 * (with ERR) only when the cache cannot be used although it could. */
static bool use_cache(struct kevd_pager *p, struct kevd_error *err)
{
	static int said;
	struct kevd_error why = KEVD_ERROR_INIT;
	int r;

	if (!kevd_imagecache_supported(&why)) {
		if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
			kevd_warn("lazy paging: images are not shared (%s): every VM loads its own pages", why.msg);
		p->cfg.cache = NULL;
		return true;
	}
	r = kevd_imagecache_acquire(p->cfg.cache, p->img, &p->cached, err);
	if (r == -ENOTSUP) {
		/* Huge shared pages forced since the probe: no sharing now. */
		kevd_warn("lazy paging: image '%s' is not shared (%s): its VM loads its own pages",
			  kevd_image_path(p->img), err->msg);
		kevd_error_clear(err);
		p->cfg.cache = NULL;
		return true;
	}
	return r == 0;
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
	p->pagemap = -1;
	if (cfg)
		p->cfg = *cfg;
	if (!p->cfg.handler_threads)
		p->cfg.handler_threads = KEVD_PAGER_DEFAULT_THREADS;
	if (!p->cfg.window_pages)
		p->cfg.window_pages = KEVD_PAGER_DEFAULT_WINDOW;
	if (!p->cfg.stripes)
		p->cfg.stripes = KEVD_PAGER_DEFAULT_STRIPES;
	/* A window of 1 turns fault-around off: it does not grow either. */
	if (!p->cfg.window_max_pages)
		p->cfg.window_max_pages = p->cfg.window_pages == 1 ? 1 : KEVD_PAGER_DEFAULT_WINDOW_MAX;
	if (p->cfg.window_max_pages < p->cfg.window_pages)
		p->cfg.window_max_pages = p->cfg.window_pages;
	if (p->cfg.handler_threads > KEVD_PAGER_MAX_THREADS) {
		r = kevd_error_set(err, EINVAL, "pager: %u handler threads is more than %u",
				   p->cfg.handler_threads, KEVD_PAGER_MAX_THREADS);
		goto fail;
	}
	if (p->cfg.window_max_pages > KEVD_PAGER_MAX_WINDOW) {
		r = kevd_error_set(err, EINVAL, "pager: fault-around window of %u pages is more than %u",
				   p->cfg.window_max_pages, KEVD_PAGER_MAX_WINDOW);
		goto fail;
	}
	if (p->cfg.eager)
		p->cfg.cache = NULL;
	if (p->cfg.cache && !use_cache(p, err)) {
		r = -(err && err->errnum ? err->errnum : EIO);
		goto fail;
	}
	if (p->cached) {
		p->states = kevd_cached_image_states(p->cached);
	} else {
		r = kevd_pagestate_new(p->cfg.stripes, &p->states, err);
		if (r < 0)
			goto fail;
	}
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

const struct region *kevd_pager_region_of_gpa(const struct kevd_pager *p, uint64_t gpa)
{
	for (size_t i = 0; i < p->nregions; i++)
		if (gpa >= p->regions[i].gpa && gpa - p->regions[i].gpa < p->regions[i].len)
			return &p->regions[i];
	return NULL;
}

const struct region *kevd_pager_region_of_host(const struct kevd_pager *p, uint64_t addr)
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
		uint64_t need = (p->cached ? 0 : 1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_WAKE);
		unsigned char *at;

		if (a < gpa.v)
			a = gpa.v;
		if (b > gpa.v + len)
			b = gpa.v + len;
		if (a >= b)
			continue;
		at = (unsigned char *)host + (a - gpa.v);
		/* Room to remember the mapping first, so that one made is always
		 * undone by kevd_pager_stop(). */
		if (p->cached) {
			struct uffdio_range *m = realloc(p->shared_maps, (p->nshared_maps + 1) * sizeof(*m));

			if (!m)
				return kevd_error_sys(err, ENOMEM, "pager");
			p->shared_maps = m;
		}
		/* Shared: the cache's pages appear here copy-on-write, and only
		 * its holes (pages not filled yet) fault to the pager. */
		if (p->cached && mmap(at, b - a, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE,
				      kevd_cached_image_memfd(p->cached),
				      (off_t)kevd_cached_image_offset(p->cached, a >> KEVD_PAGE_SHIFT)) == MAP_FAILED)
			return kevd_error_sys(err, errno, "pager: mapping the shared image over guest pages 0x%llx-0x%llx",
					      (unsigned long long)a, (unsigned long long)b);
		if (p->cached) {
			madvise(at, b - a, MADV_DONTDUMP);
			p->shared_maps[p->nshared_maps++] = (struct uffdio_range){ (uintptr_t)at, b - a };
		}
		reg = (struct uffdio_register){
			.range = { .start = (uintptr_t)at, .len = b - a },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		if (kevd_fault("uffd_register") ? (errno = ENOMEM, true) : ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0)
			return kevd_error_sys(err, errno, "pager: registering guest pages 0x%llx-0x%llx with userfaultfd",
					      (unsigned long long)a, (unsigned long long)b);
		if ((reg.ioctls & need) != need)
			return kevd_error_set(err, ENOTSUP, "pager: userfaultfd does not offer %sUFFDIO_WAKE on guest memory",
					      p->cached ? "" : "UFFDIO_COPY and ");
		if (!(reg.ioctls & (1ull << _UFFDIO_POISON)))
			p->poison = false;
	}
	return 0;
}

static int load_eager(struct kevd_pager *p, struct kevd_error *err)
{
	uint64_t t0 = kevd_now_ns(CLOCK_MONOTONIC), bytes = 0;
	int r = 0;

	for (size_t i = 0; i < kevd_image_extent_count(p->img) && r == 0; i++) {
		const struct kevd_image_extent *e = kevd_image_extent(p->img, i);
		const struct region *rg = kevd_pager_region_of_gpa(p, e->first_gfn << KEVD_PAGE_SHIFT);
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
		const struct region *rg = kevd_pager_region_of_gpa(p, a);

		if (!rg || b - rg->gpa > rg->len)
			return kevd_error_set(err, ERANGE, "pager: image '%s' pages 0x%llx-0x%llx are not all in guest RAM",
					      kevd_image_path(p->img), (unsigned long long)a, (unsigned long long)b);
	}
	p->started = true;
	if (p->cfg.eager)
		return load_eager(p, err);

	kevd_pager_ws_prepare(p);
	__atomic_store_n(&p->handlers, calloc(p->cfg.handler_threads, sizeof(*p->handlers)), __ATOMIC_RELEASE);
	if (!p->handlers)
		return kevd_error_sys(err, ENOMEM, "pager");
	for (unsigned i = 0; i < p->cfg.handler_threads; i++) {
		struct handler *h = &p->handlers[i];
		char name[16];
		int r;

		h->pager = p;
		h->buf = aligned_alloc(KEVD_PAGE_SIZE, (size_t)p->cfg.window_max_pages * KEVD_PAGE_SIZE);
		if (!h->buf)
			return kevd_error_sys(err, ENOMEM, "pager: fault buffer");
		r = pthread_create(&h->thread, NULL, kevd_pager_handler_main, h);
		if (r)
			return kevd_error_sys(err, r, "pager: starting handler thread %u", i);
		h->started = true;
		snprintf(name, sizeof(name), "pager-%u", i % KEVD_PAGER_MAX_THREADS);
		pthread_setname_np(h->thread, name);
	}
	return kevd_pager_ws_start(p, err);
}

int kevd_pager_quiesce(struct kevd_pager *p, int timeout_ms)
{
	uint64_t deadline = kevd_now_ns(CLOCK_MONOTONIC) + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;

	if (!p)
		return 0;
	/* Idle means no read-ahead either: a read-ahead queued by a batch
	 * that began before this bump, or by one this wait sees in flight (a
	 * fault a parked vCPU left behind), carries the older generation and
	 * is dropped; a read of it under way is waited for.  A batch that
	 * begins after the bump was not in flight here.  (Each side writes
	 * first and then reads the other's word, both sequentially
	 * consistent: a batch that read the old generation is seen busy.)
	 * Faults after a resume queue anew. */
	__atomic_add_fetch(&p->ra_gen, 1, __ATOMIC_SEQ_CST);
	/* A batch is a few window fills: polling beats a condition variable
	 * on every fault's path. */
	while (__atomic_load_n(&p->busy, __ATOMIC_SEQ_CST)) {
		if (kevd_now_ns(CLOCK_MONOTONIC) >= deadline)
			return -ETIMEDOUT;
		nanosleep(&(struct timespec){ 0, 100000 }, NULL);
	}
	return 0;
}

void kevd_pager_stop(struct kevd_pager *p)
{
	if (!p)
		return;
	__atomic_store_n(&p->stopping, 1, __ATOMIC_RELEASE);
	if (p->handlers) {
		uint64_t one = 1;

		if (write(p->stopfd, &one, sizeof(one)) < 0) {
			/* eventfd write fails only on counter overflow: already signalled */
		}
		/* The working-set thread first, while the handlers still serve:
		 * nothing of it waits for them, but should a touch of guest
		 * memory of its ever fault, it would be served. */
		kevd_pager_ws_stop(p);
		for (unsigned i = 0; i < p->cfg.handler_threads; i++) {
			if (p->handlers[i].started)
				pthread_join(p->handlers[i].thread, NULL);
			p->handlers[i].started = false;
		}
	}
	/* The working set's last walks read this VM's view of the cache:
	 * before it goes (without handler threads it was not stopped above). */
	kevd_pager_ws_stop(p);
	/* Shared, the guest's view of the cache goes first: once the
	 * userfaultfd is closed, a touch of a hole (a vCPU still about, a
	 * late inspection) would make the kernel add a zero page to the memfd
	 * that every VM of the image would then map.  Anonymous memory in its
	 * place keeps the cache what was filled, and wakes any fault still
	 * waiting there onto plain zero pages of this ending VM's own. */
	for (size_t i = 0; i < p->nshared_maps; i++) {
		void *at = (void *)(uintptr_t)p->shared_maps[i].start;
		size_t len = p->shared_maps[i].len;

		/* Failing that, a hole: an ending VM that touches it gets EFAULT. */
		if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) ==
		    MAP_FAILED && munmap(at, len) < 0)
			kevd_warn("pager: detaching the shared image from guest RAM: %s", strerror(errno));
	}
	p->nshared_maps = 0;
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
	kevd_pager_ws_free(p);
	if (p->stopfd >= 0)
		close(p->stopfd);
	if (p->cached)
		kevd_imagecache_release(p->cached);
	else
		kevd_pagestate_free(p->states);
	free(p->regions);
	free(p->shared_maps);
	free(p);
}

int kevd_pager_translate(struct kevd_pager *p, kevd_gpa_t gpa, void **host,
			 enum kevd_page_state *state, bool *image_backed)
{
	const struct region *rg = kevd_pager_region_of_gpa(p, gpa.v);
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

#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_FILE (1ull << 61)   /* a file page (the cache's) or shared anonymous memory */

int kevd_pager_residency(struct kevd_pager *p, uint64_t *mapped, uint64_t *private_pages, struct kevd_error *err)
{
	cleanup_close int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t ent[512];

	*mapped = *private_pages = 0;
	if (fd < 0)
		return kevd_error_sys(err, errno, "pager: /proc/self/pagemap");
	for (size_t i = 0; i < kevd_image_extent_count(p->img); i++) {
		const struct kevd_image_extent *e = kevd_image_extent(p->img, i);

		for (uint64_t g = e->first_gfn; g < e->end_gfn;) {
			const struct region *rg = kevd_pager_region_of_gpa(p, g << KEVD_PAGE_SHIFT);
			uint64_t n = e->end_gfn - g, host;
			ssize_t got;

			if (!rg)
				break;  /* checked at start: cannot happen once started */
			if (n > 512)
				n = 512;
			host = (uint64_t)(uintptr_t)rg->host + ((g << KEVD_PAGE_SHIFT) - rg->gpa);
			got = KEVD_RETRY_EINTR(pread(fd, ent, n * sizeof(ent[0]), (off_t)((host >> KEVD_PAGE_SHIFT) * sizeof(ent[0]))));
			if (got < (ssize_t)(n * sizeof(ent[0])))
				return kevd_error_sys(err, got < 0 ? errno : EIO, "pager: reading /proc/self/pagemap");
			for (uint64_t k = 0; k < n; k++) {
				*mapped += (ent[k] & PAGEMAP_PRESENT) != 0;
				*private_pages += (ent[k] & PAGEMAP_PRESENT) && !(ent[k] & PAGEMAP_FILE);
			}
			g += n;
		}
	}
	return 0;
}

bool kevd_pager_shared(const struct kevd_pager *p)
{
	return p->cached != NULL;
}

bool kevd_pager_poisons(const struct kevd_pager *p)
{
	return p->poison;
}
