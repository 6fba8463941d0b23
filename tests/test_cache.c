/*
 * The image cache: several pagers ("VMs", each over its own memory) of one
 * image share one copy of it.  Exactly once across VMs under contention,
 * content, isolation of guest writes, identity (a rewritten file is a new
 * entry), a truncated file failing only the VM that needs an unfilled
 * page, and entries let go after their keep time or beyond the cap.
 * Skips (77) where userfaultfd cannot be opened or the kernel cannot share.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elfbuild.h"
#include "pager/cache.h"
#include "pager/pager.h"
#include "testutil.h"

#define BASE_GFN 0x100u
#define PAGES 512u                 /* file pages of the test image */
#define MEM_BYTES ((size_t)(BASE_GFN + PAGES + 8) << 12)
#define VMS 4
#define TOUCHERS 4

struct vm {
	struct kevd_pager *pager;
	unsigned char *mem;
	int failures;                  /* atomic */
	char failure[KEVD_ERROR_MSG_MAX];
};

static int fills[PAGES + 8];       /* atomic: times the cache read each page */

static void on_fill(void *arg, uint64_t first, size_t n)
{
	(void)arg;
	for (size_t i = 0; i < n; i++)
		__atomic_fetch_add(&fills[first + i - BASE_GFN], 1, __ATOMIC_RELAXED);
}

static void on_failure(void *arg, kevd_gpa_t gpa, const struct kevd_error *e)
{
	struct vm *v = arg;

	(void)gpa;
	snprintf(v->failure, sizeof(v->failure), "%s", e->msg);
	__atomic_fetch_add(&v->failures, 1, __ATOMIC_RELEASE);
}

static struct kevd_imagecache *new_cache(unsigned keep_s, uint64_t max_bytes)
{
	struct kevd_imagecache_config cc;
	struct kevd_imagecache *c;
	struct kevd_error err = KEVD_ERROR_INIT;

	kevd_imagecache_config_default(&cc);
	cc.keep_s = keep_s;
	cc.max_bytes = max_bytes;
	cc.on_fill = on_fill;
	memset(fills, 0, sizeof(fills));
	if (kevd_imagecache_new(&cc, &c, &err) < 0)
		ck_abort_msg("%s", err.msg);
	return c;
}

static void vm_create(struct vm *v, struct kevd_image *img, struct kevd_imagecache *c)
{
	struct kevd_pager_config cfg = { .cache = c, .handler_threads = 2, .on_failure = on_failure, .cb_arg = v };
	struct kevd_error err = KEVD_ERROR_INIT;

	memset(v, 0, sizeof(*v));
	v->mem = mmap(NULL, MEM_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ck_assert_ptr_ne(v->mem, MAP_FAILED);
	if (kevd_pager_new(img, &cfg, &v->pager, &err) < 0 ||
	    kevd_pager_add_memory(v->pager, KEVD_GPA(0), v->mem, MEM_BYTES, &err) < 0)
		ck_abort_msg("%s", err.msg);
	ck_assert(kevd_pager_shared(v->pager));
}

static void vm_run(struct vm *v)
{
	struct kevd_error err = KEVD_ERROR_INIT;

	if (kevd_pager_start(v->pager, &err) < 0)
		ck_abort_msg("%s", err.msg);
}

static void vm_start(struct vm *v, struct kevd_image *img, struct kevd_imagecache *c)
{
	vm_create(v, img, c);
	vm_run(v);
}

static void vm_free(struct vm *v)
{
	kevd_pager_free(v->pager);
	munmap(v->mem, MEM_BYTES);
}

static struct kevd_image *open_image(const char *path)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_image *img;

	if (kevd_image_open(path, &img, &err) < 0)
		ck_abort_msg("%s", err.msg);
	return img;
}

static uint8_t want_byte(const struct eb_elf *e, uint64_t g, unsigned i, uint8_t xor)
{
	uint64_t off = (g << 12) + i;

	return off < e->seg[0].filesz ? (uint8_t)(elfbuild_byte(e->seg[0].offset + off) ^ xor) : 0;
}

/* Every byte of the image pages at MEM as the file (XOR: how the test
 * rewrote it) has them. */
static void check_content(const unsigned char *mem, const struct eb_elf *e, uint64_t pages, uint8_t xor)
{
	for (uint64_t g = 0; g < pages; g++)
		for (unsigned i = 0; i < 4096; i++) {
			uint8_t got = mem[((BASE_GFN + g) << 12) + i], want = want_byte(e, g, i, xor);

			if (got != want)
				ck_abort_msg("page %llu byte %u: %u, want %u", (unsigned long long)g, i, got, want);
		}
}

struct toucher {
	unsigned char *mem;
	pthread_barrier_t *barrier;
	unsigned seed;
	uint64_t first, n;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;
	unsigned s = t->seed, sum = 0;

	pthread_barrier_wait(t->barrier);
	/* A random walk first (collisions), then every page in order. */
	for (uint64_t i = 0; i < t->n; i++) {
		s = s * 1103515245u + 12345u;
		sum += *(volatile unsigned char *)(t->mem + ((BASE_GFN + t->first + (s >> 8) % t->n) << 12));
	}
	for (uint64_t i = 0; i < t->n; i++)
		sum += *(volatile unsigned char *)(t->mem + ((BASE_GFN + t->first + i) << 12) + 5);
	return (void *)(uintptr_t)sum;
}

/* TOUCHERS threads per VM of VS, all at once, pages [FIRST, FIRST+N). */
static void storm(struct vm *vs, int nvm, uint64_t first, uint64_t n)
{
	pthread_t th[VMS * TOUCHERS];
	struct toucher ts[VMS * TOUCHERS];
	pthread_barrier_t b;
	int nt = nvm * TOUCHERS;

	pthread_barrier_init(&b, NULL, (unsigned)nt);
	for (int i = 0; i < nt; i++) {
		ts[i] = (struct toucher){ .mem = vs[i / TOUCHERS].mem, .barrier = &b, .seed = (unsigned)i * 7919u + 1,
					  .first = first, .n = n };
		ck_assert_int_eq(pthread_create(&th[i], NULL, touch_main, &ts[i]), 0);
	}
	for (int i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&b);
}

struct listing {
	size_t n;
	struct kevd_cached_image_info last;
	uint64_t total_filled;
};

static void collect(void *arg, const struct kevd_cached_image_info *info)
{
	struct listing *l = arg;

	l->n++;
	l->last = *info;
	l->last.path = NULL;
	l->total_filled += info->pages_filled;
}

static struct listing list(struct kevd_imagecache *c)
{
	struct listing l = { 0 };

	ck_assert_uint_eq(kevd_imagecache_list(c, collect, &l), l.n);
	return l;
}

/* The end of a test: the cache, the image and its file go. */
static void done_with(struct kevd_imagecache *c, struct kevd_image *img, char *path)
{
	kevd_imagecache_free(c);
	kevd_image_free(img);
	unlink(path);
	free(path);
}

static char *write_image(struct eb_elf *e, uint64_t pages)
{
	char *path = elfbuild_tmppath("cache");

	elfbuild_default(e, pages, 2);
	ck_assert_int_eq(elfbuild_write(e, path), 0);
	return path;
}

static void skip_unless_shared(void)
{
	struct kevd_error why = KEVD_ERROR_INIT;

	if (!kevd_imagecache_supported(&why)) {
		fprintf(stderr, "test_cache: images cannot be shared here (%s): skipped\n", why.msg);
		exit(77);
	}
}

/* VMS VMs of one image, TOUCHERS threads each, all faulting at once: every
 * page read from the file exactly once in total, every VM's content
 * right, the loads adding up across the VMs. */
START_TEST(exactly_once_across_vms)
{
	struct eb_elf e;
	char *path = write_image(&e, PAGES);
	struct kevd_image *img = open_image(path);
	struct kevd_imagecache *c = new_cache(60, 1 << 30);
	struct vm vs[VMS];
	uint64_t loaded = 0, pages = kevd_image_pages(img);
	struct listing l;

	for (int i = 0; i < VMS; i++)
		vm_start(&vs[i], img, c);
	storm(vs, VMS, 0, pages);
	for (int i = 0; i < VMS; i++) {
		struct kevd_pager_stats st;
		uint64_t mapped, priv;
		struct kevd_error err = KEVD_ERROR_INIT;

		check_content(vs[i].mem, &e, pages, 0);
		ck_assert_int_eq(kevd_pager_residency(vs[i].pager, &mapped, &priv, &err), 0);
		ck_assert_uint_eq(mapped, pages);
		ck_assert_uint_eq(priv, 0);
		kevd_pager_stop(vs[i].pager);
		kevd_pager_get_stats(vs[i].pager, &st);
		ck_assert(st.shared);
		ck_assert_uint_eq(st.faults, st.loads + st.faults_coalesced);
		ck_assert_uint_eq(st.load_failures, 0);
		loaded += st.pages_loaded;
		ck_assert_int_eq(__atomic_load_n(&vs[i].failures, __ATOMIC_ACQUIRE), 0);
	}
	for (uint64_t g = 0; g < pages; g++)
		ck_assert_msg(fills[g] == 1, "page %llu read %d times", (unsigned long long)g, fills[g]);
	ck_assert_uint_eq(loaded, pages);
	l = list(c);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_uint_eq(l.last.vms, VMS);
	ck_assert_uint_eq(l.last.pages_filled, pages);
	ck_assert_uint_eq(l.last.image_pages, pages);
	ck_assert_uint_eq(l.last.resident_bytes, pages << 12);
	for (int i = 0; i < VMS; i++)
		vm_free(&vs[i]);
	done_with(c, img, path);
}
END_TEST

/* VM A writes over every page it touched; VM B, started after, sees the
 * file's bytes, and so does the cache's memfd. */
START_TEST(guest_writes_stay_private)
{
	struct eb_elf e;
	char *path = write_image(&e, 64);
	struct kevd_image *img = open_image(path);
	struct kevd_imagecache *c = new_cache(60, 1 << 30);
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_cached_image *entry;
	uint64_t pages = kevd_image_pages(img), mapped, priv;
	unsigned char page[4096];
	struct vm a, b;

	vm_start(&a, img, c);
	check_content(a.mem, &e, pages, 0);
	for (uint64_t g = 0; g < pages; g++)
		memset(a.mem + ((BASE_GFN + g) << 12), 0xa5, 4096);
	ck_assert_int_eq(kevd_pager_residency(a.pager, &mapped, &priv, &err), 0);
	ck_assert_uint_eq(mapped, pages);
	ck_assert_uint_eq(priv, pages);
	vm_start(&b, img, c);
	check_content(b.mem, &e, pages, 0);
	ck_assert_int_eq(kevd_pager_residency(b.pager, &mapped, &priv, &err), 0);
	ck_assert_uint_eq(priv, 0);
	ck_assert_int_eq(kevd_imagecache_acquire(c, img, &entry, &err), 0);
	for (uint64_t g = 0; g < pages; g++) {
		ck_assert_int_eq(pread(kevd_cached_image_memfd(entry), page, sizeof(page),
				       (off_t)kevd_cached_image_offset(entry, BASE_GFN + g)), 4096);
		for (unsigned i = 0; i < 4096; i++)
			ck_assert_uint_eq(page[i], want_byte(&e, g, i, 0));
	}
	kevd_imagecache_release(entry);
	/* A's writes are still A's. */
	ck_assert_uint_eq(a.mem[(BASE_GFN + 3) << 12], 0xa5);
	vm_free(&a);
	vm_free(&b);
	done_with(c, img, path);
}
END_TEST

/* A file rewritten between two VMs is a second entry: the first VM keeps
 * what it had, the second gets the new bytes. */
START_TEST(rewritten_file_is_new_entry)
{
	struct eb_elf e;
	char *path = write_image(&e, 32);
	struct kevd_image *img1 = open_image(path), *img2;
	struct kevd_imagecache *c = new_cache(60, 1 << 30);
	uint64_t pages = kevd_image_pages(img1);
	struct vm a, b;

	vm_start(&a, img1, c);
	check_content(a.mem, &e, pages, 0);
	/* The ELF headers are rewritten too: XOR the data only. */
	{
		int fd = open(path, O_RDWR | O_CLOEXEC);
		struct stat st;
		unsigned char buf[4096];
		off_t off = (off_t)e.seg[0].offset;

		ck_assert_int_eq(fstat(fd, &st), 0);
		for (uint64_t done = 0; done < e.seg[0].filesz; done += sizeof(buf)) {
			size_t len = e.seg[0].filesz - done < sizeof(buf) ? e.seg[0].filesz - done : sizeof(buf);

			ck_assert_int_eq(pread(fd, buf, len, off + (off_t)done), (ssize_t)len);
			for (size_t i = 0; i < len; i++)
				buf[i] ^= 0x5a;
			ck_assert_int_eq(pwrite(fd, buf, len, off + (off_t)done), (ssize_t)len);
		}
		ck_assert_int_eq(futimens(fd, (struct timespec[2]){ st.st_atim, st.st_mtim }), 0);
		close(fd);
	}
	img2 = open_image(path);
	vm_start(&b, img2, c);
	check_content(b.mem, &e, pages, 0x5a);
	check_content(a.mem, &e, pages, 0);
	ck_assert_uint_eq(list(c).n, 2);
	vm_free(&a);
	vm_free(&b);
	kevd_imagecache_free(c);
	kevd_image_free(img1);
	kevd_image_free(img2);
	unlink(path);
	free(path);
}
END_TEST

/* A thread touching one page that may fail: it comes back by SIGBUS (the
 * page poisoned) or by a kick (SIGUSR1), as a vCPU would. */
static __thread sigjmp_buf *fault_jmp;

static void on_signal(int sig)
{
	if (fault_jmp)
		siglongjmp(*fault_jmp, sig);
}

struct prober {
	unsigned char *addr;
	int stopped_by;
	int done;          /* atomic */
};

static void *probe_main(void *arg)
{
	struct prober *t = arg;
	sigjmp_buf jb;
	int sig;

	fault_jmp = &jb;
	sig = sigsetjmp(jb, 1);
	if (!sig)
		(void)*(volatile unsigned char *)t->addr;
	fault_jmp = NULL;  /* no late kick may jump into a frame that is gone */
	t->stopped_by = sig;
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Touches page G of V from a thread of its own, as a vCPU would, waits
 * for V's failure report (exactly one), then brings the thread back:
 * poison wakes it with SIGBUS, else a kick does.  Returns the signal that
 * ended its wait. */
static int touch_failing(struct vm *v, uint64_t g)
{
	struct prober pr = { .addr = v->mem + ((BASE_GFN + g) << 12) };
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, probe_main, &pr), 0);
	for (int i = 0; i < 1000 && !__atomic_load_n(&v->failures, __ATOMIC_ACQUIRE); i++)
		usleep(10000);
	ck_assert_int_eq(__atomic_load_n(&v->failures, __ATOMIC_ACQUIRE), 1);
	if (!kevd_pager_poisons(v->pager))
		for (int i = 0; i < 100 && !__atomic_load_n(&pr.done, __ATOMIC_ACQUIRE); i++) {
			pthread_kill(t, SIGUSR1);
			usleep(10000);
		}
	pthread_join(t, NULL);
	return pr.stopped_by;
}

/* Truncated while cached: the VM that faults an unfilled page fails with
 * the reason; one that only touches filled pages does not; the failed
 * entry is given to no new VM. */
START_TEST(truncated_fails_only_who_needs_it)
{
	struct eb_elf e;
	char *path = write_image(&e, 64);
	struct kevd_image *img = open_image(path);
	struct kevd_imagecache *c = new_cache(60, 1 << 30);
	struct sigaction sa = { .sa_handler = on_signal };
	struct vm a, b, n;

	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	vm_start(&a, img, c);
	vm_start(&b, img, c);
	/* A's first fault fills the first window (16 pages). */
	(void)*(volatile unsigned char *)(a.mem + (BASE_GFN << 12));
	ck_assert_int_eq(truncate(path, 4096), 0);
	check_content(b.mem, &e, 16, 0);
	ck_assert_int_eq(__atomic_load_n(&b.failures, __ATOMIC_ACQUIRE), 0);
	/* Page 60 is not filled: A's fault on it fails. */
	ck_assert_int_ne(touch_failing(&a, 60), 0);
	ck_assert_msg(strstr(a.failure, "truncated") || strstr(a.failure, "size changed"), "%s", a.failure);
	ck_assert_int_eq(__atomic_load_n(&b.failures, __ATOMIC_ACQUIRE), 0);
	/* B meets the failed page: it fails with the first failure's reason. */
	touch_failing(&b, 60);
	ck_assert_str_eq(strstr(b.failure, "image '"), strstr(a.failure, "image '"));
	/* A new VM of the same image does not get the failed entry.  (The
	 * file is truncated: a real open would refuse it; the cache is asked
	 * with the old image to see the entry itself passed over.) */
	vm_start(&n, img, c);
	ck_assert_uint_eq(list(c).n, 2);
	vm_free(&n);
	vm_free(&a);
	vm_free(&b);
	/* The failed entry goes as soon as nobody holds it. */
	ck_assert_uint_eq(list(c).n, 1);
	done_with(c, img, path);
}
END_TEST

/* A VM stopped with pages of the image never filled, then touched there
 * (a vCPU still about, an inspection): the cache stays what was filled,
 * and the next VM reads the file's bytes, not zero pages. */
START_TEST(stopped_vm_leaves_cache_alone)
{
	struct eb_elf e;
	char *path = write_image(&e, 256);
	struct kevd_image *img = open_image(path);
	struct kevd_imagecache *c = new_cache(60, 1 << 30);
	uint64_t pages = kevd_image_pages(img), sum = 0;
	struct vm a, b;

	vm_start(&a, img, c);
	sum += *(volatile unsigned char *)(a.mem + (BASE_GFN << 12));  /* the first window only */
	kevd_pager_stop(a.pager);
	for (uint64_t g = 0; g < pages; g++)
		sum += *(volatile unsigned char *)(a.mem + ((BASE_GFN + g) << 12) + 9);
	(void)sum;
	vm_start(&b, img, c);
	check_content(b.mem, &e, pages, 0);
	vm_free(&a);
	vm_free(&b);
	ck_assert_uint_eq(list(c).last.resident_bytes, list(c).last.pages_filled << 12);
	ck_assert(!list(c).last.failed);
	done_with(c, img, path);
}
END_TEST

/* An unused entry goes after its keep time, at once with keep 0, and at
 * once beyond the cap; its memory with it. */
START_TEST(unused_entries_go)
{
	struct eb_elf e;
	char *path = write_image(&e, 16);
	struct kevd_image *img = open_image(path);
	struct kevd_imagecache *c = new_cache(1, 1 << 30);
	struct listing l;
	struct vm a;

	vm_start(&a, img, c);
	check_content(a.mem, &e, kevd_image_pages(img), 0);
	vm_free(&a);
	l = list(c);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_uint_eq(l.last.vms, 0);
	ck_assert_uint_gt(l.last.resident_bytes, 0);
	usleep(1100000);
	kevd_imagecache_sweep(c);
	ck_assert_uint_eq(list(c).n, 0);
	/* Over the cap (0 bytes): gone as the last VM lets go. */
	kevd_imagecache_reconfigure(c, 3600, 0);
	vm_start(&a, img, c);
	check_content(a.mem, &e, kevd_image_pages(img), 0);
	ck_assert_uint_eq(list(c).n, 1);
	vm_free(&a);
	ck_assert_uint_eq(list(c).n, 0);
	done_with(c, img, path);
}
END_TEST

static void wait_prefetched(struct kevd_pager *p, struct kevd_pager_stats *st)
{
	for (int i = 0; i < 500; i++) {
		kevd_pager_get_stats(p, st);
		if (st->prefetch_ns)
			return;
		usleep(10000);
	}
	ck_abort_msg("the prefetch did not finish in 5 s");
}

/* Shared working sets: a prefetch fills the cache once, for every VM; the
 * pages the guest touches afterwards are its hits (it maps them without a
 * fault); a second VM with the same list finds nothing left to read; a VM
 * that records maps the filled pages without a fault and records them all
 * the same (from its page tables, when the recording ends), flagging the
 * ones it wrote; a VM given that list gets those mapped writable before it
 * touches them (its own copies, of the file's bytes), and no others. */
START_TEST(working_set_shared)
{
	struct eb_elf e;
	char *path = write_image(&e, PAGES);
	struct kevd_image *img = open_image(path);
	struct kevd_imagecache *c = new_cache(60, 1 << 30);
	uint64_t pages = kevd_image_pages(img), *got;
	uint64_t *list = malloc(pages * sizeof(*list));
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_pager_recording *rec;
	struct kevd_pager_stats st;
	bool *seen = calloc(pages, 1);
	struct vm a, b, r, d;
	uint64_t mapped, priv, wrote = 0;
	size_t n;

	for (uint64_t g = 0; g < pages; g++)
		list[g] = BASE_GFN + pages - 1 - g;
	vm_create(&a, img, c);
	ck_assert_int_eq(kevd_pager_prefetch(a.pager, list, pages, &err), 0);
	vm_run(&a);
	wait_prefetched(a.pager, &st);
	ck_assert_uint_eq(st.pages_prefetched, pages);
	ck_assert_uint_eq(st.faults, 0);
	for (uint64_t g = 0; g < pages; g++)
		ck_assert_msg(__atomic_load_n(&fills[g], __ATOMIC_RELAXED) == 1, "page %llu read %d times",
			      (unsigned long long)g, __atomic_load_n(&fills[g], __ATOMIC_RELAXED));
	/* Half of it touched: no fault, and hits (the kernel maps a few
	 * filled neighbours of a touched page with it: at least that half). */
	check_content(a.mem, &e, pages / 2, 0);
	kevd_pager_stop(a.pager);
	kevd_pager_get_stats(a.pager, &st);
	ck_assert_uint_eq(st.faults, 0);
	ck_assert_uint_ge(st.prefetch_hits, pages / 2);
	ck_assert_uint_le(st.prefetch_hits, pages);
	ck_assert_uint_eq(st.prefetch_unused, pages - st.prefetch_hits);

	vm_create(&b, img, c);
	ck_assert_int_eq(kevd_pager_prefetch(b.pager, list, pages, &err), 0);
	vm_run(&b);
	wait_prefetched(b.pager, &st);
	ck_assert_uint_eq(st.pages_prefetched, 0);
	ck_assert_uint_eq(st.prefetch_hits, 0);

	vm_create(&r, img, c);
	ck_assert_int_eq(kevd_pager_record(r.pager, 60000, NULL, &rec, &err), 0);
	vm_run(&r);
	check_content(r.mem, &e, pages, 0);
	for (uint64_t g = 0; g < pages; g += 3)  /* every third page written */
		r.mem[((BASE_GFN + g) << 12) + 7] ^= 0xff;
	kevd_pager_get_stats(r.pager, &st);
	ck_assert_uint_eq(st.faults, 0);
	ck_assert_uint_eq(st.working_set_pages, 0);
	kevd_pager_stop(r.pager);
	ck_assert(kevd_pager_recording_ended(rec));
	ck_assert_int_eq(kevd_pager_recording_pages(rec, &got, &n), 0);
	ck_assert_uint_eq(n, pages);
	for (size_t i = 0; i < n; i++) {
		uint64_t g = got[i] & ~KEVD_PAGER_WS_WRITTEN;

		ck_assert(g >= BASE_GFN && g < BASE_GFN + pages && !seen[g - BASE_GFN]);
		seen[g - BASE_GFN] = true;
		ck_assert_msg(!(got[i] & KEVD_PAGER_WS_WRITTEN) == !!((g - BASE_GFN) % 3),
			      "page %llu flagged %d", (unsigned long long)(g - BASE_GFN),
			      !!(got[i] & KEVD_PAGER_WS_WRITTEN));
		wrote += (got[i] & KEVD_PAGER_WS_WRITTEN) != 0;
	}
	for (uint64_t g = 0; g < pages; g++)
		ck_assert_int_eq(__atomic_load_n(&fills[g], __ATOMIC_RELAXED), 1);

	/* That list, the cache warm: the written pages are D's own at once. */
	vm_create(&d, img, c);
	ck_assert_int_eq(kevd_pager_prefetch(d.pager, got, n, &err), 0);
	vm_run(&d);
	wait_prefetched(d.pager, &st);
	ck_assert_uint_eq(st.pages_prefetched, 0);
	ck_assert_uint_eq(st.pages_premapped, wrote);
	ck_assert_int_eq(kevd_pager_residency(d.pager, &mapped, &priv, &err), 0);
	ck_assert_uint_eq(priv, wrote);
	ck_assert_uint_ge(mapped, wrote);
	check_content(d.mem, &e, pages, 0);
	kevd_pager_stop(d.pager);
	kevd_pager_get_stats(d.pager, &st);
	ck_assert_uint_eq(st.faults, 0);
	ck_assert_uint_eq(st.prefetch_hits, 0);
	ck_assert_uint_eq(st.prefetch_unused, 0);
	vm_free(&d);
	free(got);
	kevd_pager_recording_unref(rec);
	vm_free(&r);
	vm_free(&b);
	vm_free(&a);
	free(seen);
	free(list);
	done_with(c, img, path);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("cache");
	SRunner *sr;
	int failed;

	int r = kevd_test_need_uffd("test_cache");

	if (r)
		return r;
	skip_unless_shared();
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, exactly_once_across_vms);
	tcase_add_test(tc, guest_writes_stay_private);
	tcase_add_test(tc, rewritten_file_is_new_entry);
	tcase_add_test(tc, truncated_fails_only_who_needs_it);
	tcase_add_test(tc, stopped_vm_leaves_cache_alone);
	tcase_add_test(tc, unused_entries_go);
	tcase_add_test(tc, working_set_shared);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
