/*
 * Pager benchmark: how fast the lazy pager serves first touches of a
 * kernel image, against the kernel's own lazy loading of the same file,
 * eager loading and already-present memory, all measured in one run; and
 * what the stripe count of the page state table costs or buys.
 *
 * Fault service is driven from plain threads, as tests/test_pager.c does:
 * toucher threads read one byte of every image page once, in sequential or
 * in a fixed random order, timing each first access with CLOCK_MONOTONIC.
 * No VM is involved, so a "fault" here is a host thread's fault on
 * userfaultfd-registered memory, which is what a vCPU's EPT fault turns
 * into as well.
 *
 * This nested host is noisy (idle cores wake up slowly), so every
 * measurement is repeated and the median run is reported; the repetitions
 * are interleaved across configurations so that a slow spell of the host
 * spreads over all of them instead of spoiling one.  The fault service runs
 * twice: on an otherwise idle machine and with a SCHED_IDLE thread spinning
 * (busy cores, but nobody of ours loses a time slice to it).  Each section
 * also reports how much CPU other processes took meanwhile: this machine is
 * shared, and a neighbour's build or VM skews every number.
 *
 * A last section compares what a user of kevd picks between (docs/pager.md,
 * "Shared images"): the kernel's mapping of the file, eager loading,
 * lazy-private (each VM its own copy, UFFDIO_COPY) and the shared image
 * cache, cold (the first VM of the image) and warm (a second VM after a
 * first one touched everything), all with the default pager settings.
 *
 * Usage: bench_pager [--quick] [--pages N] [--reps N] [--idle-only]
 * Exits 77 when userfaultfd cannot be opened.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "elfbuild.h"
#include "pager/cache.h"
#include "pager/pager.h"
#include "pager/pagestate.h"

#define PAGE 4096u
#define BASE_GFN 0x100u          /* elfbuild_default loads at 1 MiB */
#define TOUCH_OFF 77u            /* byte of each page the touchers read */
#define MAX_TOUCHERS 4
#define DEFAULT_FILE_PAGES 16384 /* 64 MiB */
#define QUICK_FILE_PAGES 2048
#define SEED 0x6b657664u         /* "kevd": the random order is the same every run */
#define STRIPE_MAX_THREADS 8
#define STRIPE_REPS 5
#define DEFAULT_REPS 5

/* K_LAZY: a fixed window (window_max = window); K_PRIVATE, K_COLD and
 * K_WARM: the defaults, private or shared (cold cache, or warmed by a
 * first pager that touched every page). */
enum kind { K_PRESENT, K_MMAP, K_EAGER, K_LAZY, K_PRIVATE, K_COLD, K_WARM };
enum order { SEQ, RND };
enum load { IDLE, LOADED };

static const char *const order_name[] = { "seq", "rnd" };
static const char *const load_name[] = { "idle", "loaded" };

struct scenario {
	enum kind kind;
	enum order order;
	unsigned threads, window, touchers;   /* K_LAZY only, touchers for all */
};

/* One run's outcome.  err is non-empty when the run could not be set up
 * or its result failed verification. */
struct sample {
	uint64_t total_ns;          /* eager: start + touch; others: touch */
	uint64_t setup_ns;          /* eager: kevd_pager_start */
	uint32_t p50_ns, p99_ns, max_ns;
	uint64_t faults, loads, loaded, coalesced;
	uint64_t mapped, private_pages;  /* image pages in the VM's memory after the touch, its own copies */
	char err[KEVD_ERROR_MSG_MAX];
};

struct bench {
	bool quick, idle_only, cache_only;
	unsigned reps;
	uint64_t file_pages;
	uint64_t pages;             /* image pages: the file pages plus a partial one */
	char *path;
	struct eb_elf elf;
	struct kevd_image *img;
	int fd;                     /* the image, for the MAP_PRIVATE baseline */
	size_t map_bytes;           /* the image file's size */
	size_t mem_bytes;           /* guest memory: RAM below the image plus the image */
	uint32_t *order[2];         /* page indices in touching order */
	uint32_t *lat;              /* MAX_TOUCHERS * pages touch latencies (ns) */
	uint32_t *load_count;       /* per image page: times on_load reported it */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void shuffle_u32(uint32_t *a, size_t n, uint64_t seed)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(splitmix(&seed) % i);
		uint32_t t = a[i - 1];

		a[i - 1] = a[j];
		a[j] = t;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static bool uffd_available(void)
{
	int fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return true;
	}
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return true;
	}
	return false;
}

/* ---- background load ---- */

/* CPU time the whole machine spent busy and the part this process spent,
 * so that a table can say how much other processes (someone's build or
 * VM on this shared machine) competed with it. */
struct cpu_mark {
	uint64_t busy_ns, self_ns, wall_ns;
};

static void cpu_mark(struct cpu_mark *m)
{
	unsigned long long v[8] = { 0 };
	long hz = sysconf(_SC_CLK_TCK);
	struct rusage ru;
	FILE *f = fopen("/proc/stat", "re");

	m->busy_ns = 0;
	if (f) {
		/* user nice system idle iowait irq softirq steal */
		if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
			   &v[5], &v[6], &v[7]) == 8 && hz > 0)
			m->busy_ns = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * (1000000000ull / (uint64_t)hz);
		fclose(f);
	}
	getrusage(RUSAGE_SELF, &ru);
	m->self_ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
		     ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
	m->wall_ns = now_ns();
}

/* Other processes' CPU use since A, in CPUs (1.0 = one core busy). */
static double others_cpus(const struct cpu_mark *a)
{
	struct cpu_mark b;
	double other;

	cpu_mark(&b);
	if (!a->busy_ns || b.wall_ns == a->wall_ns)
		return -1;
	other = (double)(int64_t)((b.busy_ns - a->busy_ns) - (b.self_ns - a->self_ns));
	return other < 0 ? 0 : other / (double)(b.wall_ns - a->wall_ns);
}

/* A spinning thread keeps the cores out of their idle state, which on this
 * nested host changes how fast the handler and touchers wake up.  It runs
 * as SCHED_IDLE so that it only fills time nobody else wants: the point is
 * busy cores, not touchers and handlers losing time slices to it (on 2
 * cores a normal-priority burner preempts them for milliseconds). */
static int burn_stop;

static void *burn_main(void *arg)
{
	uint64_t *spins = arg;
	struct sched_param sp = { .sched_priority = 0 };

	pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	while (!__atomic_load_n(&burn_stop, __ATOMIC_RELAXED))
		__atomic_store_n(spins, *spins + 1, __ATOMIC_RELAXED);
	return NULL;
}

/* ---- start gate ---- */

/* Holds worker threads until the main thread has started all it could and
 * opens it for all at once.  Unlike a barrier sized in advance it cannot
 * strand the started threads when a later pthread_create fails. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned ready;
	bool open;
};

static void gate_init(struct gate *g)
{
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->ready = 0;
	g->open = false;
}

static void gate_destroy(struct gate *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

static void gate_pass(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->ready++;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

/* Waits for N threads to arrive, then lets them all go. */
static void gate_open(struct gate *g, unsigned n)
{
	pthread_mutex_lock(&g->lock);
	while (g->ready < n)
		pthread_cond_wait(&g->cond, &g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* ---- touchers ---- */

struct toucher {
	const unsigned char *base;  /* first image page (or first file page) */
	const uint32_t *order;
	size_t n;
	uint32_t *lat;
	struct gate *gate;
	uint64_t start_ns, end_ns;
	unsigned sum;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;
	unsigned sum = 0;

	gate_pass(t->gate);
	t->start_ns = now_ns();
	for (size_t i = 0; i < t->n; i++) {
		uint64_t t0 = now_ns(), d;

		/* The clock reads are calls the compiler cannot move the
		 * volatile load across; the vDSO orders the TSC reads. */
		sum += *(const volatile unsigned char *)(t->base + (size_t)t->order[i] * PAGE + TOUCH_OFF);
		d = now_ns() - t0;
		t->lat[i] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
	}
	t->end_ns = now_ns();
	t->sum = sum;
	return NULL;
}

/* NT threads touch every page of BASE in ORDER at the same time.  Fills
 * the wall time (first start to last end) and the latency percentiles. */
static int touch_all(struct bench *b, const unsigned char *base, enum order order, unsigned nt,
		     struct sample *s)
{
	struct toucher ts[MAX_TOUCHERS];
	pthread_t th[MAX_TOUCHERS];
	struct gate gate;
	uint64_t first = UINT64_MAX, last = 0;
	size_t n = (size_t)nt * b->pages;
	unsigned started = 0;
	int r = 0;

	gate_init(&gate);
	for (unsigned i = 0; i < nt; i++) {
		ts[i] = (struct toucher){ .base = base, .order = b->order[order], .n = b->pages,
					  .lat = b->lat + (size_t)i * b->pages, .gate = &gate };
		r = pthread_create(&th[i], NULL, touch_main, &ts[i]);
		if (r) {
			snprintf(s->err, sizeof(s->err), "starting toucher: %s", strerror(r));
			break;
		}
		started++;
	}
	/* After a failed start the others still run (and are joined); the
	 * run is reported failed. */
	gate_open(&gate, started);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	gate_destroy(&gate);
	if (r)
		return -1;
	for (unsigned i = 0; i < nt; i++) {
		if (ts[i].start_ns < first)
			first = ts[i].start_ns;
		if (ts[i].end_ns > last)
			last = ts[i].end_ns;
	}
	s->total_ns = last - first;
	qsort(b->lat, n, sizeof(*b->lat), cmp_u32);
	s->p50_ns = b->lat[(n - 1) / 2];
	s->p99_ns = b->lat[(size_t)((double)(n - 1) * 0.99)];
	s->max_ns = b->lat[n - 1];
	return 0;
}

/* ---- verification ---- */

/* The byte image page G holds at offset OFF. */
static uint8_t image_byte(const struct bench *b, uint64_t g, unsigned off)
{
	uint64_t so = g * PAGE + off;

	return so < b->elf.seg[0].filesz ? elfbuild_byte(b->elf.seg[0].offset + so) : 0;
}

/* Checks the touched byte of every page and every byte of a spread of
 * pages (and of the last, partial one, zero fill included). */
static bool check_content(const struct bench *b, const unsigned char *base, bool file_map, struct sample *s)
{
	for (uint64_t g = 0; g < b->pages; g++) {
		bool full = g % 251 == 7 || g == b->pages - 1;

		if (file_map && g == 0)
			continue;  /* the ELF headers live there, not the pattern */
		for (unsigned o = full ? 0 : TOUCH_OFF; o < (full ? PAGE : TOUCH_OFF + 1); o++) {
			uint8_t want = file_map ? elfbuild_byte(g * PAGE + o) : image_byte(b, g, o);
			uint8_t got = base[g * PAGE + o];

			if (got != want) {
				snprintf(s->err, sizeof(s->err), "page %llu byte %u is 0x%02x, want 0x%02x",
					 (unsigned long long)g, o, got, want);
				return false;
			}
		}
	}
	return true;
}

static void on_load(void *arg, uint64_t first_gfn, size_t npages)
{
	struct bench *b = arg;

	for (size_t i = 0; i < npages; i++)
		__atomic_fetch_add(&b->load_count[first_gfn + i - BASE_GFN], 1, __ATOMIC_RELAXED);
}

static void on_failure(void *arg, kevd_gpa_t gpa, const struct kevd_error *e)
{
	fprintf(stderr, "bench_pager: pager failure at 0x%llx: %s\n", (unsigned long long)gpa.v, e->msg);
}

/* Exactly once: every image page loaded, none twice, and every fault
 * either won a load or met a page somebody else was loading. */
static void check_pager(struct bench *b, const struct kevd_pager_stats *st, struct sample *s)
{
	s->faults = st->faults;
	s->loads = st->loads;
	s->loaded = st->pages_loaded;
	s->coalesced = st->faults_coalesced;
	if (st->pages_loaded != b->pages || st->image_pages != b->pages) {
		snprintf(s->err, sizeof(s->err), "pages_loaded %llu, image_pages %llu, want %llu",
			 (unsigned long long)st->pages_loaded, (unsigned long long)st->image_pages,
			 (unsigned long long)b->pages);
		return;
	}
	if (st->eager)
		return;
	for (uint64_t g = 0; g < b->pages; g++) {
		if (b->load_count[g] != 1) {
			snprintf(s->err, sizeof(s->err), "page %llu loaded %u times", (unsigned long long)g,
				 b->load_count[g]);
			return;
		}
	}
	if (st->faults - st->faults_coalesced != st->loads || st->load_failures || st->pages_loaded_demand != st->loads)
		snprintf(s->err, sizeof(s->err), "faults %llu - coalesced %llu != loads %llu (failures %llu)",
			 (unsigned long long)st->faults, (unsigned long long)st->faults_coalesced,
			 (unsigned long long)st->loads, (unsigned long long)st->load_failures);
}

/* ---- one run ---- */

static const char *kind_name(enum kind k);

/* Warms CACHE with B's image: a first pager over memory of its own whose
 * every page is touched (untimed), then freed; the cache keeps the entry. */
static int warm_cache(struct bench *b, struct kevd_imagecache *cache, struct kevd_error *err)
{
	struct kevd_pager_config cfg = { .cache = cache, .on_failure = on_failure, .cb_arg = b };
	struct kevd_pager *p = NULL;
	unsigned char *mem = mmap(NULL, b->mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				  -1, 0);
	unsigned sum = 0;
	int r;

	if (mem == MAP_FAILED)
		return kevd_error_sys(err, errno, "mmap");
	r = kevd_pager_new(b->img, &cfg, &p, err);
	if (r == 0)
		r = kevd_pager_add_memory(p, KEVD_GPA(0), mem, b->mem_bytes, err);
	if (r == 0)
		r = kevd_pager_start(p, err);
	for (uint64_t g = 0; r == 0 && g < b->pages; g++)
		sum += *(volatile unsigned char *)(mem + (BASE_GFN + g) * PAGE);
	(void)sum;
	kevd_pager_free(p);
	munmap(mem, b->mem_bytes);
	return r;
}

static void run_once(struct bench *b, const struct scenario *sc, struct sample *s)
{
	bool defaults = sc->kind == K_PRIVATE || sc->kind == K_COLD || sc->kind == K_WARM;
	struct kevd_pager_config cfg = { .handler_threads = defaults ? 0 : sc->threads,
					 .window_pages = defaults ? 0 : sc->window,
					 .window_max_pages = defaults ? 0 : sc->window,
					 .eager = sc->kind == K_EAGER, .on_load = on_load,
					 .on_failure = on_failure, .cb_arg = b };
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_imagecache *cache = NULL;
	struct kevd_pager *p = NULL;
	struct kevd_pager_stats st;
	unsigned char *mem, *base;
	size_t len;

	memset(s, 0, sizeof(*s));
	if (sc->kind == K_MMAP) {
		len = b->map_bytes;
		mem = mmap(NULL, len, PROT_READ, MAP_PRIVATE, b->fd, 0);
	} else {
		len = b->mem_bytes;
		mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	}
	if (mem == MAP_FAILED) {
		snprintf(s->err, sizeof(s->err), "mmap: %s", strerror(errno));
		return;
	}
	base = sc->kind == K_MMAP ? mem : mem + (size_t)BASE_GFN * PAGE;

	switch (sc->kind) {
	case K_PRESENT: {
		uint64_t bytes = 0;

		if (kevd_image_fill(b->img, BASE_GFN, b->pages, base, &bytes, &err) < 0)
			goto fail;
		break;
	}
	case K_MMAP:
		break;
	case K_COLD:
	case K_WARM:
		if (kevd_imagecache_new(NULL, &cache, &err) < 0 ||
		    (sc->kind == K_WARM && warm_cache(b, cache, &err) < 0))
			goto fail;
		cfg.cache = cache;
		/* fall through */
	case K_EAGER:
	case K_LAZY:
	case K_PRIVATE:
		memset(b->load_count, 0, b->pages * sizeof(*b->load_count));
		if (kevd_pager_new(b->img, &cfg, &p, &err) < 0 ||
		    kevd_pager_add_memory(p, KEVD_GPA(0), mem, len, &err) < 0)
			goto fail;
		if (sc->kind != K_EAGER) {
			if (kevd_pager_start(p, &err) < 0)
				goto fail;
		} else {
			uint64_t t0 = now_ns();

			if (kevd_pager_start(p, &err) < 0)
				goto fail;
			s->setup_ns = now_ns() - t0;
		}
		break;
	}

	if (touch_all(b, base, sc->order, sc->touchers, s) < 0)
		goto out;
	s->total_ns += s->setup_ns;
	if (p) {
		kevd_pager_get_stats(p, &st);
		if (kevd_pager_residency(p, &s->mapped, &s->private_pages, &err) < 0)
			goto fail;
		/* Shared means shared: warm, the cache had every page, the kernel
		 * mapped them all and nothing faulted to the pager. */
		if (sc->kind == K_WARM) {
			s->faults = st.faults;
			if (!st.shared || st.faults || st.pages_loaded || st.bytes_read)
				snprintf(s->err, sizeof(s->err), "warm: shared %d, faults %llu, pages_loaded %llu",
					 st.shared, (unsigned long long)st.faults, (unsigned long long)st.pages_loaded);
		} else {
			check_pager(b, &st, s);
			if (!s->err[0] && sc->kind == K_COLD && !st.shared)
				snprintf(s->err, sizeof(s->err), "cold: not shared");
		}
		/* Every page touched is in this VM's memory; shared, none of
		 * them is a private copy. */
		if (!s->err[0] && (s->mapped != b->pages ||
				   s->private_pages != (sc->kind == K_COLD || sc->kind == K_WARM ? 0 : b->pages)))
			snprintf(s->err, sizeof(s->err), "%s: %llu pages mapped, %llu private", kind_name(sc->kind),
				 (unsigned long long)s->mapped, (unsigned long long)s->private_pages);
	}
	if (!s->err[0])
		check_content(b, base, sc->kind == K_MMAP, s);
	goto out;
fail:
	snprintf(s->err, sizeof(s->err), "%s", err.msg);
out:
	kevd_pager_free(p);
	munmap(mem, len);
	kevd_imagecache_free(cache);
}

/* ---- fault service tables ---- */

struct cell {
	struct scenario sc;
	struct sample *runs;        /* reps of them, indexed by repetition */
	const struct sample *med;   /* the run with the median total time */
	double spread;              /* (max - min) / median of the total times */
	unsigned failed;            /* runs that failed verification */
	const char *first_err;
};

/* Picks the median run by total time among the runs that passed. */
static void summarize(struct cell *c, unsigned reps)
{
	uint64_t totals[64];
	unsigned n = 0;

	c->failed = 0;
	c->first_err = NULL;
	for (unsigned r = 0; r < reps; r++) {
		if (c->runs[r].err[0]) {
			if (!c->failed++)
				c->first_err = c->runs[r].err;
			continue;
		}
		totals[n++] = c->runs[r].total_ns;
	}
	c->med = NULL;
	if (!n)
		return;
	qsort(totals, n, sizeof(totals[0]), cmp_u64);
	for (unsigned r = 0; r < reps; r++)
		if (!c->runs[r].err[0] && c->runs[r].total_ns == totals[(n - 1) / 2]) {
			c->med = &c->runs[r];
			break;
		}
	c->spread = totals[(n - 1) / 2] ? (double)(totals[n - 1] - totals[0]) / (double)totals[(n - 1) / 2] : 0;
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }
static double us(uint64_t ns) { return (double)ns / 1e3; }

static const struct cell *find_cell(const struct cell *cells, size_t n, enum kind k, enum order o)
{
	for (size_t i = 0; i < n; i++)
		if (cells[i].sc.kind == k && cells[i].sc.order == o)
			return &cells[i];
	return NULL;
}

static const char *kind_name(enum kind k)
{
	switch (k) {
	case K_PRESENT: return "present (floor)";
	case K_MMAP: return "kernel mmap";
	case K_EAGER: return "kevd eager";
	case K_LAZY: return "kevd lazy";
	case K_PRIVATE: return "lazy-private";
	case K_COLD: return "shared, cold";
	case K_WARM: return "shared, warm";
	}
	return "?";
}

static void print_failures(const struct cell *cells, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (cells[i].failed)
			printf("  !! %s thr %u win %u touchers %u %s: %u run(s) failed: %s\n",
			       kind_name(cells[i].sc.kind), cells[i].sc.threads, cells[i].sc.window,
			       cells[i].sc.touchers, order_name[cells[i].sc.order], cells[i].failed,
			       cells[i].first_err);
}

static void print_baselines(const struct bench *b, const struct cell *cells, size_t n)
{
	printf("%-16s %-5s %9s %11s %8s %8s %9s %9s %7s\n", "baseline", "order", "total ms", "pages/s",
	       "p50 us", "p99 us", "max us", "start ms", "spread");
	for (size_t i = 0; i < n; i++) {
		const struct cell *c = &cells[i];

		if (c->sc.kind == K_LAZY)
			continue;
		if (!c->med) {
			printf("%-16s %-5s FAILED\n", kind_name(c->sc.kind), order_name[c->sc.order]);
			continue;
		}
		printf("%-16s %-5s %9.2f %11.0f %8.2f %8.2f %9.1f", kind_name(c->sc.kind), order_name[c->sc.order],
		       ms(c->med->total_ns), (double)b->pages / (ms(c->med->total_ns) / 1e3), us(c->med->p50_ns),
		       us(c->med->p99_ns), us(c->med->max_ns));
		if (c->sc.kind == K_EAGER)
			printf(" %9.2f", ms(c->med->setup_ns));
		else
			printf(" %9s", "-");
		printf(" %6.0f%%\n", 100 * c->spread);
	}
}

static void print_lazy(const struct bench *b, const struct cell *cells, size_t n, unsigned touchers)
{
	printf("%3s %4s %-5s %9s %10s %7s %7s %8s %7s %7s %6s %7s %6s %7s %7s %6s\n", "thr", "win", "order",
	       "total ms", "pages/s", "p50 us", "p99 us", "max us", "us/flt", "faults", "loads", "loaded", "coal",
	       "x mmap", "x eager", "spread");
	for (size_t i = 0; i < n; i++) {
		const struct cell *c = &cells[i], *mm, *eg;

		if (c->sc.kind != K_LAZY || c->sc.touchers != touchers)
			continue;
		if (!c->med) {
			printf("%3u %4u %-5s FAILED\n", c->sc.threads, c->sc.window, order_name[c->sc.order]);
			continue;
		}
		mm = find_cell(cells, n, K_MMAP, c->sc.order);
		eg = find_cell(cells, n, K_EAGER, c->sc.order);
		printf("%3u %4u %-5s %9.2f %10.0f %7.2f %7.2f %8.1f %7.2f %7llu %6llu %7llu %6llu", c->sc.threads,
		       c->sc.window, order_name[c->sc.order], ms(c->med->total_ns),
		       (double)b->pages / (ms(c->med->total_ns) / 1e3), us(c->med->p50_ns), us(c->med->p99_ns),
		       us(c->med->max_ns), c->med->faults ? us(c->med->total_ns) / (double)c->med->faults : 0.0,
		       (unsigned long long)c->med->faults, (unsigned long long)c->med->loads,
		       (unsigned long long)c->med->loaded, (unsigned long long)c->med->coalesced);
		if (mm && mm->med)
			printf(" %6.1f", (double)c->med->total_ns / (double)mm->med->total_ns);
		else
			printf(" %6s", "-");
		if (eg && eg->med)
			printf(" %7.2f", (double)c->med->total_ns / (double)eg->med->total_ns);
		else
			printf(" %7s", "-");
		printf(" %6.0f%%\n", 100 * c->spread);
	}
}

static size_t build_scenarios(const struct bench *b, struct scenario *sc)
{
	static const unsigned full_threads[] = { 1, 2, 4 }, quick_threads[] = { 1, 2 };
	static const unsigned full_windows[] = { 1, 4, 8, 16, 32, 64 }, quick_windows[] = { 1, 8, 32 };
	static const unsigned full_cthreads[] = { 1, 2 }, quick_cthreads[] = { 1 };
	static const unsigned cwindows[] = { 1, 8 };
	const unsigned *threads = b->quick ? quick_threads : full_threads;
	const unsigned *windows = b->quick ? quick_windows : full_windows;
	const unsigned *cthreads = b->quick ? quick_cthreads : full_cthreads;
	size_t nthreads = b->quick ? 2 : 3, nwindows = b->quick ? 3 : 6, ncthreads = b->quick ? 1 : 2;
	size_t n = 0;

	for (int o = SEQ; o <= RND; o++) {
		sc[n++] = (struct scenario){ .kind = K_PRESENT, .order = (enum order)o, .touchers = 1 };
		sc[n++] = (struct scenario){ .kind = K_MMAP, .order = (enum order)o, .touchers = 1 };
		sc[n++] = (struct scenario){ .kind = K_EAGER, .order = (enum order)o, .touchers = 1 };
	}
	for (size_t t = 0; t < nthreads; t++)
		for (size_t w = 0; w < nwindows; w++)
			for (int o = SEQ; o <= RND; o++)
				sc[n++] = (struct scenario){ .kind = K_LAZY, .order = (enum order)o,
							     .threads = threads[t], .window = windows[w],
							     .touchers = 1 };
	for (size_t t = 0; t < ncthreads; t++)
		for (size_t w = 0; w < 2; w++)
			for (int o = SEQ; o <= RND; o++)
				sc[n++] = (struct scenario){ .kind = K_LAZY, .order = (enum order)o,
							     .threads = cthreads[t], .window = cwindows[w],
							     .touchers = MAX_TOUCHERS };
	return n;
}

/* Runs every scenario REPS times, repetitions interleaved, and prints the
 * tables of one load state. */
static int fault_service(struct bench *b, enum load ld)
{
	struct scenario scs[64];  /* 50 in a full run */
	size_t n = build_scenarios(b, scs);
	struct cell *cells = calloc(n, sizeof(*cells));
	struct sample *samples = calloc(n * b->reps, sizeof(*samples));
	pthread_t burner;
	uint64_t spins = 0, t0 = now_ns();
	struct cpu_mark mark;
	double others;
	int r;

	if (!cells || !samples) {
		free(cells);
		free(samples);
		fprintf(stderr, "bench_pager: out of memory\n");
		return -1;
	}
	cpu_mark(&mark);
	if (ld == LOADED) {
		__atomic_store_n(&burn_stop, 0, __ATOMIC_RELAXED);
		r = pthread_create(&burner, NULL, burn_main, &spins);
		if (r) {
			fprintf(stderr, "bench_pager: starting the CPU burner: %s\n", strerror(r));
			free(cells);
			free(samples);
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++)
		cells[i] = (struct cell){ .sc = scs[i], .runs = samples + i * b->reps };
	for (unsigned rep = 0; rep < b->reps; rep++)
		for (size_t i = 0; i < n; i++)
			run_once(b, &cells[i].sc, &cells[i].runs[rep]);
	if (ld == LOADED) {
		__atomic_store_n(&burn_stop, 1, __ATOMIC_RELAXED);
		pthread_join(burner, NULL);
	}
	others = others_cpus(&mark);
	for (size_t i = 0; i < n; i++)
		summarize(&cells[i], b->reps);

	printf("\n== Fault service, %s machine (%s; %.1f s for this section;\n"
	       "   other processes used %.2f CPUs meanwhile)\n", load_name[ld],
	       ld == LOADED ? "a SCHED_IDLE thread spinning throughout" : "no background load of ours",
	       ms(now_ns() - t0) / 1e3, others);
	printf("\n-- Baselines, 1 toucher\n");
	print_baselines(b, cells, n);
	printf("\n-- kevd lazy pager, 1 toucher (x mmap, x eager: total time over that baseline's, same order)\n");
	print_lazy(b, cells, n, 1);
	printf("\n-- Contention: %u touchers touch the same pages in the same order at once\n", MAX_TOUCHERS);
	print_lazy(b, cells, n, MAX_TOUCHERS);
	print_failures(cells, n);
	r = 0;
	for (size_t i = 0; i < n; i++)
		if (cells[i].failed)
			r = 1;
	free(cells);
	free(samples);
	return r;
}

/* ---- shared images ---- */

/* The choices a user has, default settings, 1 and MAX_TOUCHERS touchers,
 * both orders; one table with every ratio from this run. */
static int cache_section(struct bench *b)
{
	static const enum kind kinds[] = { K_MMAP, K_EAGER, K_PRIVATE, K_COLD, K_WARM };
	static const unsigned touchers[] = { 1, MAX_TOUCHERS };
	enum { NK = sizeof(kinds) / sizeof(kinds[0]) };
	struct cell cells[NK * 2 * 2];
	struct sample *samples = calloc(NK * 2 * 2 * b->reps, sizeof(*samples));
	uint64_t t0 = now_ns();
	struct cpu_mark mark;
	size_t n = 0;
	int r = 0;

	if (!samples) {
		fprintf(stderr, "bench_pager: out of memory\n");
		return -1;
	}
	for (size_t t = 0; t < 2; t++)
		for (int o = SEQ; o <= RND; o++)
			for (size_t k = 0; k < NK; k++, n++)
				cells[n] = (struct cell){
					.sc = { .kind = kinds[k], .order = (enum order)o, .touchers = touchers[t] },
					.runs = samples + n * b->reps,
				};
	cpu_mark(&mark);
	for (unsigned rep = 0; rep < b->reps; rep++)
		for (size_t i = 0; i < n; i++)
			run_once(b, &cells[i].sc, &cells[i].runs[rep]);
	for (size_t i = 0; i < n; i++)
		summarize(&cells[i], b->reps);
	printf("\n== Shared images: what a VM of a %.0f MiB image costs to touch all of it, default settings\n"
	       "   (%u handler thread(s), window %u doubling to %u; cold = the first VM of the image, warm = a second\n"
	       "   VM after a first one touched every page; x mmap, x eager: total over that baseline's with the\n"
	       "   same touchers and order; %.1f s for this section; other processes used %.2f CPUs meanwhile)\n",
	       (double)b->pages * PAGE / (1 << 20), KEVD_PAGER_DEFAULT_THREADS, KEVD_PAGER_DEFAULT_WINDOW,
	       KEVD_PAGER_DEFAULT_WINDOW_MAX, ms(now_ns() - t0) / 1e3, others_cpus(&mark));
	printf("%-14s %3s %-5s %9s %8s %8s %7s %7s %8s %7s %7s %6s\n", "backing", "tch", "order", "total ms", "p50 us",
	       "p99 us", "faults", "loaded", "private", "x mmap", "x eager", "spread");
	for (size_t i = 0; i < n; i++) {
		const struct cell *c = &cells[i], *mm = c - (c->sc.kind - K_MMAP), *eg = mm + 1;

		if (c->sc.kind >= K_PRIVATE)
			mm = c - (2 + (c->sc.kind - K_PRIVATE)), eg = mm + 1;
		if (!c->med) {
			printf("%-14s %3u %-5s FAILED\n", kind_name(c->sc.kind), c->sc.touchers, order_name[c->sc.order]);
			r = 1;
			continue;
		}
		printf("%-14s %3u %-5s %9.2f %8.2f %8.2f %7llu %7llu %8llu", kind_name(c->sc.kind), c->sc.touchers,
		       order_name[c->sc.order], ms(c->med->total_ns), us(c->med->p50_ns), us(c->med->p99_ns),
		       (unsigned long long)c->med->faults, (unsigned long long)c->med->loaded,
		       (unsigned long long)c->med->private_pages);
		if (mm->med && c->sc.kind != K_MMAP)
			printf(" %7.2f", (double)c->med->total_ns / (double)mm->med->total_ns);
		else
			printf(" %7s", "-");
		if (eg->med && c->sc.kind > K_EAGER)
			printf(" %7.2f", (double)c->med->total_ns / (double)eg->med->total_ns);
		else
			printf(" %7s", "-");
		printf(" %5.0f%%\n", 100 * c->spread);
	}
	print_failures(cells, n);
	free(samples);
	return r;
}

/* ---- page state table stripes ---- */

struct sworker {
	struct kevd_pagestate *ps;
	struct gate *gate;
	pthread_barrier_t *phase;   /* between the phases, sized to the threads started */
	const uint64_t *gfns;
	size_t n;
	uint64_t start_ns[2], end_ns[2];  /* per phase: insert, lookup */
	uint64_t won;
	bool oom;
};

/* What a handler does per page: find or create the state word, try to
 * claim it and publish it loaded.  Phase 0 meets fresh entries (the first
 * fault on a page), phase 1 the same entries again, all claimed already
 * (a coalesced fault or a window meeting loaded neighbours). */
static void *stripe_main(void *arg)
{
	struct sworker *w = arg;

	gate_pass(w->gate);
	for (int ph = 0; ph < 2; ph++) {
		if (ph)
			pthread_barrier_wait(w->phase);
		w->start_ns[ph] = now_ns();
		for (size_t i = 0; i < w->n; i++) {
			uint32_t *word = kevd_pagestate_get(w->ps, w->gfns[i]);

			if (!word) {
				w->oom = true;
				break;
			}
			if (kevd_pagestate_claim(word)) {
				kevd_pagestate_publish(word, KEVD_PAGE_MAPPED);
				w->won++;
			}
		}
		w->end_ns[ph] = now_ns();
	}
	return NULL;
}

/* One trial: NT threads on a fresh table of STRIPES stripes.  Fills the
 * aggregate ns per operation of both phases. */
static int stripe_trial(unsigned stripes, unsigned nt, uint64_t *const *gfns, size_t m, uint64_t distinct,
			double ns_op[2])
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_pagestate *ps;
	struct sworker ws[STRIPE_MAX_THREADS];
	pthread_t th[STRIPE_MAX_THREADS];
	struct gate gate;
	pthread_barrier_t phase;
	uint64_t won = 0;
	unsigned started = 0;
	bool bad = false;
	int r = 0;

	if (kevd_pagestate_new(stripes, &ps, &err) < 0) {
		fprintf(stderr, "bench_pager: %s\n", err.msg);
		return -1;
	}
	gate_init(&gate);
	for (unsigned t = 0; t < nt; t++) {
		ws[t] = (struct sworker){ .ps = ps, .gate = &gate, .phase = &phase, .gfns = gfns[t], .n = m };
		r = pthread_create(&th[t], NULL, stripe_main, &ws[t]);
		if (r)
			break;
		started++;
	}
	/* No worker reaches the phase barrier before the gate opens, so it
	 * can be sized to the workers that did start. */
	if (started)
		pthread_barrier_init(&phase, NULL, started);
	gate_open(&gate, started);
	for (unsigned t = 0; t < started; t++)
		pthread_join(th[t], NULL);
	if (started)
		pthread_barrier_destroy(&phase);
	gate_destroy(&gate);
	if (r) {
		fprintf(stderr, "bench_pager: starting a stripe worker: %s\n", strerror(r));
		kevd_pagestate_free(ps);
		return -1;
	}
	for (int ph = 0; ph < 2; ph++) {
		uint64_t first = UINT64_MAX, last = 0;

		for (unsigned t = 0; t < nt; t++) {
			if (ws[t].start_ns[ph] < first)
				first = ws[t].start_ns[ph];
			if (ws[t].end_ns[ph] > last)
				last = ws[t].end_ns[ph];
		}
		ns_op[ph] = (double)(last - first) / ((double)nt * (double)m);
	}
	for (unsigned t = 0; t < nt; t++) {
		won += ws[t].won;
		bad |= ws[t].oom;
	}
	/* Exactly one claimant per page, and one entry per page. */
	if (bad || won != distinct || kevd_pagestate_count(ps) != distinct) {
		fprintf(stderr, "bench_pager: stripes %u threads %u: %llu claims won, %llu entries, want %llu\n",
			stripes, nt, (unsigned long long)won, (unsigned long long)kevd_pagestate_count(ps),
			(unsigned long long)distinct);
		r = -1;
	}
	kevd_pagestate_free(ps);
	return r;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int stripe_bench(const struct bench *b)
{
	static const unsigned full_threads[] = { 1, 2, 4, 8 }, quick_threads[] = { 1, 4 };
	static const unsigned full_stripes[] = { 1, 4, 16, 64, 256 }, quick_stripes[] = { 1, 64 };
	static const char *const pattern_name[] = { "disjoint", "shared" };
	const unsigned *threads = b->quick ? quick_threads : full_threads;
	const unsigned *stripes = b->quick ? quick_stripes : full_stripes;
	size_t nthreads = b->quick ? 2 : 4, nstripes = b->quick ? 2 : 5;
	unsigned reps = b->quick ? 1 : STRIPE_REPS;
	/* Gfns per thread: a few images' worth, so that a trial lasts long
	 * enough (milliseconds) that the staggered wake-ups of the threads
	 * leaving the barrier do not decide it. */
	size_t m = b->quick ? b->pages : 4 * b->pages;
	uint64_t *arrays[2][STRIPE_MAX_THREADS] = { { NULL } };
	double res[2][4][5][2];  /* pattern, threads, stripes, phase */
	uint64_t t0 = now_ns();
	struct cpu_mark mark;
	int r = 0;

	cpu_mark(&mark);
	for (int pat = 0; pat < 2; pat++)
		for (unsigned t = 0; t < STRIPE_MAX_THREADS; t++) {
			arrays[pat][t] = malloc(m * sizeof(uint64_t));
			if (!arrays[pat][t]) {
				fprintf(stderr, "bench_pager: out of memory\n");
				r = -1;
				goto out;
			}
			/* Disjoint: each thread its own image-sized run of pages,
			 * in order.  Shared: the same run for all, each thread in
			 * its own random order, so they collide on entries and
			 * stripes as handlers serving one image do. */
			for (size_t i = 0; i < m; i++)
				arrays[pat][t][i] = BASE_GFN + (pat ? i : t * m + i);
			if (pat) {
				uint64_t seed = SEED + t;

				for (size_t i = m; i > 1; i--) {
					size_t j = (size_t)(splitmix(&seed) % i);
					uint64_t x = arrays[pat][t][i - 1];

					arrays[pat][t][i - 1] = arrays[pat][t][j];
					arrays[pat][t][j] = x;
				}
			}
		}

	for (int pat = 0; pat < 2; pat++)
		for (size_t ti = 0; ti < nthreads; ti++)
			for (size_t si = 0; si < nstripes; si++) {
				double v[2][STRIPE_REPS];
				uint64_t distinct = pat ? m : threads[ti] * m;

				for (unsigned rep = 0; rep < reps; rep++) {
					double ns_op[2];

					if (stripe_trial(stripes[si], threads[ti], arrays[pat], m, distinct, ns_op) < 0) {
						r = -1;
						goto out;
					}
					v[0][rep] = ns_op[0];
					v[1][rep] = ns_op[1];
				}
				for (int ph = 0; ph < 2; ph++) {
					qsort(v[ph], reps, sizeof(double), cmp_double);
					res[pat][ti][si][ph] = v[ph][(reps - 1) / 2];
				}
			}

	printf("\n== Page state table: kevd_pagestate_get + claim (+ publish when won), ns per operation\n");
	printf("   (wall time over all threads' operations, %zu gfns per thread, median of %u trials on fresh tables;\n"
	       "   insert = first pass over fresh entries, lookup = second pass, every claim already taken;\n"
	       "   %.1f s for this section; other processes used %.2f CPUs meanwhile)\n", m, reps,
	       ms(now_ns() - t0) / 1e3, others_cpus(&mark));
	for (int ph = 0; ph < 2; ph++) {
		printf("\n-- %s\n%-9s %3s", ph ? "lookup (entries exist)" : "insert (entries created)", "gfns", "thr");
		for (size_t si = 0; si < nstripes; si++) {
			char h[24];

			snprintf(h, sizeof(h), "stripes=%u", stripes[si]);
			printf(" %11s", h);
		}
		printf("\n");
		for (int pat = 0; pat < 2; pat++)
			for (size_t ti = 0; ti < nthreads; ti++) {
				printf("%-9s %3u", pattern_name[pat], threads[ti]);
				for (size_t si = 0; si < nstripes; si++)
					printf(" %11.1f", res[pat][ti][si][ph]);
				printf("\n");
			}
	}
out:
	for (int pat = 0; pat < 2; pat++)
		for (unsigned t = 0; t < STRIPE_MAX_THREADS; t++)
			free(arrays[pat][t]);
	return r;
}

/* ---- setup ---- */

static int bench_open(struct bench *b)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct stat st;
	int r;

	b->fd = -1;
	b->path = elfbuild_tmppath("bench");
	if (!b->path)
		return -1;
	elfbuild_default(&b->elf, b->file_pages, 0);
	r = elfbuild_write(&b->elf, b->path);
	if (r < 0) {
		fprintf(stderr, "bench_pager: writing %s: %s\n", b->path, strerror(-r));
		return -1;
	}
	if (kevd_image_open(b->path, &b->img, &err) < 0) {
		fprintf(stderr, "bench_pager: %s\n", err.msg);
		return -1;
	}
	b->pages = kevd_image_pages(b->img);
	b->fd = open(b->path, O_RDONLY | O_CLOEXEC);
	if (b->fd < 0 || fstat(b->fd, &st) < 0) {
		fprintf(stderr, "bench_pager: %s: %s\n", b->path, strerror(errno));
		return -1;
	}
	b->map_bytes = (size_t)st.st_size;
	if (b->map_bytes < b->pages * PAGE) {
		fprintf(stderr, "bench_pager: %s is shorter than its %llu pages\n", b->path,
			(unsigned long long)b->pages);
		return -1;
	}
	b->mem_bytes = (size_t)(BASE_GFN + b->pages) * PAGE;
	b->order[SEQ] = malloc(b->pages * sizeof(uint32_t));
	b->order[RND] = malloc(b->pages * sizeof(uint32_t));
	b->lat = malloc((size_t)MAX_TOUCHERS * b->pages * sizeof(uint32_t));
	b->load_count = calloc(b->pages, sizeof(uint32_t));
	if (!b->order[SEQ] || !b->order[RND] || !b->lat || !b->load_count) {
		fprintf(stderr, "bench_pager: out of memory\n");
		return -1;
	}
	for (uint32_t i = 0; i < b->pages; i++)
		b->order[SEQ][i] = b->order[RND][i] = i;
	shuffle_u32(b->order[RND], b->pages, SEED);
	/* Warm the page cache: the mmap baseline is the kernel serving
	 * faults from memory, as the pager's reads are. */
	{
		unsigned char *buf = malloc(1 << 20);
		off_t off = 0;
		ssize_t n;

		if (!buf)
			return -1;
		while ((n = pread(b->fd, buf, 1 << 20, off)) > 0)
			off += n;
		free(buf);
	}
	return 0;
}

static void bench_close(struct bench *b)
{
	kevd_image_free(b->img);
	if (b->fd >= 0)
		close(b->fd);
	if (b->path) {
		unlink(b->path);
		free(b->path);
	}
	free(b->order[SEQ]);
	free(b->order[RND]);
	free(b->lat);
	free(b->load_count);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_pager [--quick] [--pages N] [--reps N] [--idle-only] [--shared-only]\n"
		   "  --quick      a few seconds: %u file pages, fewer configurations, 1 run each, idle only\n"
		   "  --pages N    file pages of the test image (default %u = 64 MiB; the image has N+1 pages)\n"
		   "  --reps N     runs per configuration, the median reported (default %u, at most 64)\n"
		   "  --idle-only  skip the pass with a CPU burner running\n"
		   "  --shared-only  only the shared-image section\n",
		   QUICK_FILE_PAGES, DEFAULT_FILE_PAGES, DEFAULT_REPS);
}

int main(int argc, char **argv)
{
	struct bench b = { .reps = DEFAULT_REPS, .fd = -1 };
	uint64_t pages_opt = 0, t0 = now_ns();
	unsigned reps_opt = 0;
	struct utsname u;
	int r = 0;

	for (int i = 1; i < argc; i++) {
		char *end;

		if (!strcmp(argv[i], "--quick")) {
			b.quick = true;
		} else if (!strcmp(argv[i], "--idle-only")) {
			b.idle_only = true;
		} else if (!strcmp(argv[i], "--shared-only")) {
			b.cache_only = true;
		} else if ((!strcmp(argv[i], "--pages") || !strcmp(argv[i], "--reps")) && i + 1 < argc) {
			unsigned long long v = strtoull(argv[i + 1], &end, 10);

			if (*end || !v || (argv[i][2] == 'p' && v > (1ull << 22)) || (argv[i][2] == 'r' && v > 64)) {
				fprintf(stderr, "bench_pager: bad value for %s: %s\n", argv[i], argv[i + 1]);
				return 2;
			}
			if (argv[i][2] == 'p')
				pages_opt = v;
			else
				reps_opt = (unsigned)v;
			i++;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!uffd_available()) {
		fprintf(stderr, "bench_pager: userfaultfd cannot be opened here (needs root or "
				"vm.unprivileged_userfaultfd=1, or access to /dev/userfaultfd): skipped\n");
		return 77;
	}
	if (b.quick) {
		b.reps = 1;
		b.idle_only = true;
	}
	b.file_pages = pages_opt ? pages_opt : b.quick ? QUICK_FILE_PAGES : DEFAULT_FILE_PAGES;
	if (reps_opt)
		b.reps = reps_opt;
	if (bench_open(&b) < 0) {
		bench_close(&b);
		return 1;
	}

	if (uname(&u) < 0)
		memset(&u, 0, sizeof(u));
	printf("# kevd pager benchmark%s: nproc %ld, %s %s %s\n", b.quick ? " (quick)" : "",
	       sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, u.machine);
	printf("# image: elfbuild_default, %llu file pages + 1 partial = %llu pages (%.1f MiB), one PT_LOAD at 1 MiB\n",
	       (unsigned long long)b.file_pages, (unsigned long long)b.pages, (double)b.pages * PAGE / (1 << 20));
	printf("# method: toucher threads read 1 byte of every image page once (seq = in order, rnd = a fixed-seed\n"
	       "#   permutation), CLOCK_MONOTONIC around each read; total = first toucher start to last toucher end\n"
	       "#   (eager: + kevd_pager_start); pages/s = image pages / total.  Each cell is the median of %u runs\n"
	       "#   by total time (p50/p99/max and pager stats are from that run), repetitions interleaved across\n"
	       "#   configurations; spread = (max - min) / median of the total times.  Fresh anonymous guest memory\n"
	       "#   and a fresh pager per run (thread start not timed).  Every run is verified: pages_loaded ==\n"
	       "#   image pages, every page reported loaded exactly once (on_load), faults - coalesced == loads,\n"
	       "#   and content against elfbuild_byte (touched byte of every page, every byte of 1 page in 251).\n"
	       "# baselines: present = image copied into anonymous memory before the clock (the floor);\n"
	       "#   kernel mmap = the file MAP_PRIVATE read-only, page cache warm, the same page count (the kernel\n"
	       "#   also maps up to 16 cached neighbours per read fault: fault_around_bytes);\n"
	       "#   kevd eager = cfg.eager, total = kevd_pager_start (copies the image) + touching.\n",
	       b.reps);
	fflush(stdout);

	if (!b.cache_only && fault_service(&b, IDLE) != 0)
		r = 1;
	fflush(stdout);
	if (!b.idle_only && !b.cache_only && fault_service(&b, LOADED) != 0)
		r = 1;
	fflush(stdout);
	if (cache_section(&b) != 0)
		r = 1;
	fflush(stdout);
	if (!b.cache_only && stripe_bench(&b) < 0)
		r = 1;
	printf("\n# done in %.1f s%s\n", ms(now_ns() - t0) / 1e3, r ? ", WITH FAILURES (see above)" : "");
	bench_close(&b);
	return r;
}
