/*
 * The image cache (see cache.h).
 *
 * The cache's mutex protects the entry list and every entry's refs and
 * unused_since_ns; an entry's pages, bitmap and counters are changed
 * without it (the state words decide who fills a page, the bitmap and
 * counters are atomics), so a fault never takes the cache's lock.  An
 * entry's failure message has its own lock, taken only on failures.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/time.h"
#include "pager/cache.h"
#include "pager/pager_internal.h"

struct kevd_cached_image {
	struct kevd_imagecache *cache;
	struct kevd_cached_image *next;  /* the cache's list; under its lock */
	struct kevd_image *img;          /* a reference of its own */
	struct kevd_image_identity identity;
	char id[17];
	int memfd;                       /* owned */
	uint64_t memfd_len;
	uint64_t *ext_off;               /* memfd offset of each of img's extents */
	uint64_t *filled;                /* bitmap by memfd page; atomics */
	struct kevd_pagestate *states;   /* owned */
	unsigned refs;                   /* under the cache's lock */
	uint64_t unused_since_ns;        /* CLOCK_MONOTONIC; under the cache's lock, meaningful at refs 0 */
	uint64_t pages_filled, fills, bytes_read, fill_failures;  /* relaxed atomics */
	int failed;                      /* atomic */
	pthread_mutex_t failure_lock;    /* protects failure */
	struct kevd_error failure;
};

struct kevd_imagecache {
	pthread_mutex_t lock;            /* protects entries, refs, unused_since_ns, keep_ns, max_bytes */
	struct kevd_cached_image *entries;
	uint64_t keep_ns;
	uint64_t max_bytes;
	struct kevd_imagecache_config cfg;
};

void kevd_imagecache_config_default(struct kevd_imagecache_config *cfg)
{
	*cfg = (struct kevd_imagecache_config){
		.keep_s = KEVD_IMAGECACHE_DEFAULT_KEEP_S,
		.max_bytes = (uint64_t)KEVD_IMAGECACHE_DEFAULT_MAX_MIB << 20,
	};
}

int kevd_imagecache_new(const struct kevd_imagecache_config *cfg, struct kevd_imagecache **out,
			struct kevd_error *err)
{
	struct kevd_imagecache *c = calloc(1, sizeof(*c));

	if (!c)
		return kevd_error_sys(err, ENOMEM, "image cache");
	if (cfg)
		c->cfg = *cfg;
	else
		kevd_imagecache_config_default(&c->cfg);
	if (!c->cfg.stripes)
		c->cfg.stripes = KEVD_PAGER_DEFAULT_STRIPES;
	c->keep_ns = (uint64_t)c->cfg.keep_s * 1000000000ull;
	c->max_bytes = c->cfg.max_bytes;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

/* ---- support probe ---- */

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static struct kevd_error probe_result = KEVD_ERROR_INIT;  /* errnum 0 = supported; written once */

/* Whether shared memory may come in huge pages whatever kevd asks: then a
 * page written into the cache would become visible as part of a larger
 * one, its other pages zero-filled, before they are filled. */
static int shmem_huge_forced(struct kevd_error *err)
{
	char buf[128] = "";
	cleanup_close int fd = open("/sys/kernel/mm/transparent_hugepage/shmem_enabled", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;  /* no THP at all */
	n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0)
		buf[n] = 0;
	if (strstr(buf, "[always]") || strstr(buf, "[within_size]") || strstr(buf, "[force]"))
		return kevd_error_set(err, ENOTSUP, "shared memory comes in huge pages here (shmem_enabled: %.*s)",
				      (int)strcspn(buf, "\n"), buf);
	return 0;
}

static int probe(struct kevd_error *err)
{
	cleanup_close int mfd = memfd_create("kevd-probe", MFD_CLOEXEC);
	cleanup_close int uffd = -1;
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	struct uffdio_register reg;
	void *m;
	int r = 0;

	if (mfd < 0)
		return kevd_error_sys(err, errno, "memfd_create");
	if (ftruncate(mfd, KEVD_PAGE_SIZE) < 0)
		return kevd_error_sys(err, errno, "memfd: ftruncate");
	uffd = kevd_pager_open_uffd(err);
	if (uffd < 0)
		return uffd;
	if (shmem_huge_forced(err) < 0)
		return -ENOTSUP;
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		return kevd_error_sys(err, errno, "userfaultfd: UFFDIO_API");
	m = mmap(NULL, KEVD_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	if (m == MAP_FAILED)
		return kevd_error_sys(err, errno, "memfd: mmap");
	reg = (struct uffdio_register){
		.range = { .start = (uintptr_t)m, .len = KEVD_PAGE_SIZE },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		r = kevd_error_sys(err, errno, "userfaultfd: registering a private mapping of shared memory");
	else if (!(reg.ioctls & (1ull << _UFFDIO_WAKE)))
		r = kevd_error_set(err, ENOTSUP, "userfaultfd: no UFFDIO_WAKE on shared memory");
	munmap(m, KEVD_PAGE_SIZE);
	return r;
}

static void probe_run(void)
{
	struct kevd_error e = KEVD_ERROR_INIT;

	if (probe(&e) < 0)
		probe_result = e;
}

bool kevd_imagecache_supported(struct kevd_error *why)
{
	pthread_once(&probe_once, probe_run);
	if (probe_result.errnum && why)
		*why = probe_result;
	return probe_result.errnum == 0;
}

/* ---- entries ---- */

static void entry_free(struct kevd_cached_image *e)
{
	if (!e)
		return;
	if (e->memfd >= 0)
		close(e->memfd);
	kevd_pagestate_free(e->states);
	kevd_image_free(e->img);
	free(e->ext_off);
	free(e->filled);
	pthread_mutex_destroy(&e->failure_lock);
	free(e);
}

static int entry_new(struct kevd_imagecache *c, struct kevd_image *img, struct kevd_cached_image **out,
		     struct kevd_error *err)
{
	struct kevd_cached_image *e = calloc(1, sizeof(*e));
	size_t next = kevd_image_extent_count(img);
	uint64_t pages = 0;
	int r;

	if (!e)
		return kevd_error_sys(err, ENOMEM, "image cache");
	e->memfd = -1;
	e->cache = c;
	/* Again for every entry: the setting can change after the probe. */
	r = shmem_huge_forced(err);
	if (r < 0) {
		free(e);
		return r;
	}
	pthread_mutex_init(&e->failure_lock, NULL);
	e->img = kevd_image_ref(img);
	kevd_image_identity(img, &e->identity);
	kevd_image_identity_digest(&e->identity, e->id);
	e->ext_off = calloc(next ? next : 1, sizeof(*e->ext_off));
	if (!e->ext_off) {
		r = kevd_error_sys(err, ENOMEM, "image cache");
		goto fail;
	}
	for (size_t i = 0; i < next; i++) {
		const struct kevd_image_extent *x = kevd_image_extent(img, i);

		e->ext_off[i] = pages << KEVD_PAGE_SHIFT;
		pages += x->end_gfn - x->first_gfn;
	}
	e->memfd_len = pages << KEVD_PAGE_SHIFT;
	e->filled = calloc((pages + 63) / 64 + 1, sizeof(*e->filled));
	if (!e->filled) {
		r = kevd_error_sys(err, ENOMEM, "image cache");
		goto fail;
	}
	r = kevd_pagestate_new(c->cfg.stripes, &e->states, err);
	if (r < 0)
		goto fail;
	e->memfd = kevd_fault("cache_memfd") ? (errno = EMFILE, -1)
					     : memfd_create("kevd-image", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (e->memfd < 0) {
		r = kevd_error_sys(err, errno, "image cache: memfd_create");
		goto fail;
	}
	/* Sized once and sealed: nobody can shrink the pages under a guest
	 * (SIGBUS) or grow the file. */
	if (ftruncate(e->memfd, (off_t)e->memfd_len) < 0 ||
	    fcntl(e->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = kevd_error_sys(err, errno, "image cache: sizing the memfd to %llu bytes",
				   (unsigned long long)e->memfd_len);
		goto fail;
	}
	*out = e;
	return 0;
fail:
	kevd_error_prefix(err, "image '%s'", kevd_image_path(img));
	entry_free(e);
	return r;
}

int kevd_imagecache_acquire(struct kevd_imagecache *c, struct kevd_image *img,
			    struct kevd_cached_image **out, struct kevd_error *err)
{
	struct kevd_image_identity id;
	struct kevd_cached_image *e;
	int r = 0;

	kevd_image_identity(img, &id);
	pthread_mutex_lock(&c->lock);
	for (e = c->entries; e; e = e->next)
		if (kevd_image_identity_equal(&e->identity, &id) && !__atomic_load_n(&e->failed, __ATOMIC_ACQUIRE))
			break;
	if (!e) {
		r = entry_new(c, img, &e, err);
		if (r == 0) {
			e->next = c->entries;
			c->entries = e;
		}
	}
	if (r == 0) {
		e->refs++;
		*out = e;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* Frees, under the lock, what is unused past its time or beyond the cap. */
static void sweep_locked(struct kevd_imagecache *c)
{
	uint64_t now = kevd_now_ns(CLOCK_MONOTONIC), kept = 0;
	struct kevd_cached_image **pp;

	/* Past the keep time, or failed: nobody will get them again. */
	for (pp = &c->entries; *pp;) {
		struct kevd_cached_image *e = *pp;

		if (!e->refs && (now - e->unused_since_ns >= c->keep_ns || __atomic_load_n(&e->failed, __ATOMIC_ACQUIRE))) {
			*pp = e->next;
			entry_free(e);
			continue;
		}
		if (!e->refs)
			kept += load(&e->pages_filled) << KEVD_PAGE_SHIFT;
		pp = &e->next;
	}
	/* Beyond the cap: the longest unused first. */
	while (kept > c->max_bytes) {
		struct kevd_cached_image **oldest = NULL;

		for (pp = &c->entries; *pp; pp = &(*pp)->next)
			if (!(*pp)->refs && (!oldest || (*pp)->unused_since_ns < (*oldest)->unused_since_ns))
				oldest = pp;
		if (!oldest)
			break;
		struct kevd_cached_image *e = *oldest;

		kept -= load(&e->pages_filled) << KEVD_PAGE_SHIFT;
		*oldest = e->next;
		entry_free(e);
	}
}

void kevd_imagecache_release(struct kevd_cached_image *e)
{
	struct kevd_imagecache *c;

	if (!e)
		return;
	c = e->cache;
	pthread_mutex_lock(&c->lock);
	if (--e->refs == 0) {
		struct stat st;

		e->unused_since_ns = kevd_now_ns(CLOCK_MONOTONIC);
		/* With no VM holding it, the memfd holds exactly the pages kevd
		 * filled; anything more came from elsewhere (a zero page a touch
		 * made, a huge page): never give it to a VM again. */
		if (fstat(e->memfd, &st) == 0 && (uint64_t)st.st_blocks * 512 > load(&e->pages_filled) << KEVD_PAGE_SHIFT) {
			kevd_warn("image cache: '%s' holds pages kevd did not fill; it is dropped", kevd_image_path(e->img));
			__atomic_store_n(&e->failed, 1, __ATOMIC_RELEASE);
		}
	}
	sweep_locked(c);
	pthread_mutex_unlock(&c->lock);
}

void kevd_imagecache_sweep(struct kevd_imagecache *c)
{
	pthread_mutex_lock(&c->lock);
	sweep_locked(c);
	pthread_mutex_unlock(&c->lock);
}

void kevd_imagecache_reconfigure(struct kevd_imagecache *c, unsigned keep_s, uint64_t max_bytes)
{
	pthread_mutex_lock(&c->lock);
	c->keep_ns = (uint64_t)keep_s * 1000000000ull;
	c->max_bytes = max_bytes;
	sweep_locked(c);
	pthread_mutex_unlock(&c->lock);
}

size_t kevd_imagecache_list(struct kevd_imagecache *c,
			    void (*fn)(void *arg, const struct kevd_cached_image_info *info), void *arg)
{
	uint64_t now = kevd_now_ns(CLOCK_MONOTONIC);
	size_t n = 0;

	pthread_mutex_lock(&c->lock);
	sweep_locked(c);
	for (struct kevd_cached_image *e = c->entries; e; e = e->next, n++) {
		struct kevd_cached_image_info info = {
			.path = kevd_image_path(e->img), .initrd = kevd_image_flat_path(e->img),
			.snapshot = kevd_image_overlay_path(e->img), .identity = e->identity,
			.image_pages = kevd_image_pages(e->img), .pages_filled = load(&e->pages_filled),
			.fills = load(&e->fills), .bytes_read = load(&e->bytes_read),
			.fill_failures = load(&e->fill_failures), .vms = e->refs,
			.unused_s = e->refs ? 0 : (double)(now - e->unused_since_ns) / 1e9,
			.failed = __atomic_load_n(&e->failed, __ATOMIC_ACQUIRE) != 0,
		};
		struct stat st;

		memcpy(info.id, e->id, sizeof(info.id));
		if (fstat(e->memfd, &st) == 0)
			info.resident_bytes = (uint64_t)st.st_blocks * 512;
		if (fn)
			fn(arg, &info);
	}
	pthread_mutex_unlock(&c->lock);
	return n;
}

struct snapshot {
	struct kevd_cached_image_info *infos;
	size_t n, cap;
	bool oom;
};

static void snap_one(void *arg, const struct kevd_cached_image_info *info)
{
	struct snapshot *s = arg;
	char *path, *initrd, *snap;

	if (s->oom)
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct kevd_cached_image_info *m = realloc(s->infos, cap * sizeof(*m));

		if (!m) {
			s->oom = true;
			return;
		}
		s->infos = m;
		s->cap = cap;
	}
	path = strdup(info->path);
	initrd = info->initrd ? strdup(info->initrd) : NULL;
	snap = info->snapshot ? strdup(info->snapshot) : NULL;
	if (!path || (info->initrd && !initrd) || (info->snapshot && !snap)) {
		free(path);
		free(initrd);
		free(snap);
		s->oom = true;
		return;
	}
	s->infos[s->n] = *info;
	s->infos[s->n].initrd = initrd;
	s->infos[s->n].snapshot = snap;
	s->infos[s->n++].path = path;
}

struct kevd_cached_image_info *kevd_imagecache_snapshot(struct kevd_imagecache *c, size_t *n)
{
	struct snapshot s = { 0 };

	kevd_imagecache_list(c, snap_one, &s);
	if (s.oom) {
		kevd_imagecache_snapshot_free(s.infos, s.n);
		return NULL;
	}
	*n = s.n;
	return s.infos ? s.infos : calloc(1, sizeof(*s.infos));
}

void kevd_imagecache_snapshot_free(struct kevd_cached_image_info *infos, size_t n)
{
	for (size_t i = 0; infos && i < n; i++) {
		free((char *)infos[i].path);
		free((char *)infos[i].initrd);
		free((char *)infos[i].snapshot);
	}
	free(infos);
}

void kevd_imagecache_free(struct kevd_imagecache *c)
{
	if (!c)
		return;
	while (c->entries) {
		struct kevd_cached_image *e = c->entries;

		if (e->refs)
			kevd_warn("image cache: entry of '%s' freed with %u VMs holding it", kevd_image_path(e->img),
				  e->refs);
		c->entries = e->next;
		entry_free(e);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* ---- pages ---- */

struct kevd_image *kevd_cached_image_image(const struct kevd_cached_image *e) { return e->img; }
int kevd_cached_image_memfd(const struct kevd_cached_image *e) { return e->memfd; }
struct kevd_pagestate *kevd_cached_image_states(const struct kevd_cached_image *e) { return e->states; }

/* The extent holding GFN, by bisection (extents are sorted). */
static size_t extent_index(const struct kevd_cached_image *e, uint64_t gfn)
{
	size_t lo = 0, hi = kevd_image_extent_count(e->img);

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (kevd_image_extent(e->img, mid)->first_gfn <= gfn)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

uint64_t kevd_cached_image_offset(const struct kevd_cached_image *e, uint64_t gfn)
{
	size_t i = extent_index(e, gfn);

	return e->ext_off[i] + ((gfn - kevd_image_extent(e->img, i)->first_gfn) << KEVD_PAGE_SHIFT);
}

bool kevd_cached_image_filled(const struct kevd_cached_image *e, uint64_t gfn)
{
	uint64_t pg;

	if (!kevd_image_has_page(e->img, gfn))
		return false;
	pg = kevd_cached_image_offset(e, gfn) >> KEVD_PAGE_SHIFT;
	return (__atomic_load_n(&e->filled[pg / 64], __ATOMIC_ACQUIRE) >> (pg % 64)) & 1;
}

int kevd_cached_image_fill(struct kevd_cached_image *e, uint64_t gfn, size_t npages, void *buf,
			   uint64_t *bytes_read, struct kevd_error *err)
{
	uint64_t off = kevd_cached_image_offset(e, gfn), len = (uint64_t)npages << KEVD_PAGE_SHIFT, bytes = 0, done = 0;
	int r;

	if (off + len > e->memfd_len)
		return kevd_error_set(err, ERANGE, "image cache: pages 0x%llx+%zu are not the image's",
				      (unsigned long long)gfn, npages);
	r = kevd_image_fill(e->img, gfn, npages, buf, &bytes, err);
	if (r < 0)
		return r;
	/* Whole pages, written (not mapped and stored into): the kernel adds
	 * each page to the memfd locked and unlocks it once it holds all its
	 * bytes, so a guest's fault never maps a page half written. */
	while (done < len) {
		ssize_t n = KEVD_RETRY_EINTR(pwrite(e->memfd, (const char *)buf + done, len - done, (off_t)(off + done)));

		if (n <= 0)
			return kevd_error_sys(err, n < 0 ? errno : EIO, "image cache: writing %zu pages", npages);
		done += (uint64_t)n;
	}
	/* Filled before it is marked: a reader that sees the bit (acquire)
	 * sees the bytes. */
	for (uint64_t pg = off >> KEVD_PAGE_SHIFT; pg < (off + len) >> KEVD_PAGE_SHIFT; pg++)
		__atomic_or_fetch(&e->filled[pg / 64], 1ull << (pg % 64), __ATOMIC_RELEASE);
	__atomic_add_fetch(&e->pages_filled, npages, __ATOMIC_RELAXED);
	__atomic_add_fetch(&e->fills, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&e->bytes_read, bytes, __ATOMIC_RELAXED);
	if (e->cache->cfg.on_fill)
		e->cache->cfg.on_fill(e->cache->cfg.cb_arg, gfn, npages);
	*bytes_read = bytes;
	return 0;
}

void kevd_cached_image_fail(struct kevd_cached_image *e, const struct kevd_error *err)
{
	__atomic_add_fetch(&e->fill_failures, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&e->failure_lock);
	if (!e->failure.errnum)
		e->failure = *err;
	pthread_mutex_unlock(&e->failure_lock);
	__atomic_store_n(&e->failed, 1, __ATOMIC_RELEASE);
}

void kevd_cached_image_failure(struct kevd_cached_image *e, struct kevd_error *out)
{
	pthread_mutex_lock(&e->failure_lock);
	if (e->failure.errnum)
		*out = e->failure;
	else
		kevd_error_set(out, EIO, "image '%s': a page failed to load", kevd_image_path(e->img));
	pthread_mutex_unlock(&e->failure_lock);
}
