/*
 * The lazy pager against real userfaultfd faults from plain threads:
 * exactly-once loading under contention (with and without fault-around),
 * content byte for byte, statistics, EEXIST handling, eager mode, failures
 * that must end every fault without a hang, and the error paths.
 * Skips (77) where userfaultfd cannot be opened.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "elfbuild.h"
#include "pager/pager.h"
#include "testutil.h"

#define MEM_BYTES (16u << 20)
#define BASE_GFN 0x100u     /* the default image loads at 1 MiB */
#define MAX_PAGES 4096

struct fixture {
	char *path;
	struct eb_elf elf;
	struct kevd_image *img;
	struct kevd_pager *pager;
	unsigned char *mem;
	int loads[MAX_PAGES];      /* atomic: times each page was loaded */
	int failures;              /* atomic: on_failure calls */
	int load_ops;              /* atomic: on_load calls */
	int slow_ms;               /* atomic: on_load sleeps this long once, then 5 ms a call; 0 = not */
	int in_slow;               /* atomic: the long sleep began */
	char failure_msg[KEVD_ERROR_MSG_MAX];
};

static void on_load(void *arg, uint64_t first, size_t n)
{
	struct fixture *f = arg;

	int ms = __atomic_load_n(&f->slow_ms, __ATOMIC_ACQUIRE);

	for (size_t i = 0; i < n; i++)
		__atomic_fetch_add(&f->loads[first + i - BASE_GFN], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&f->load_ops, 1, __ATOMIC_RELEASE);
	/* Slowed loads: the pages are read but not yet published or woken. */
	if (ms)
		usleep((useconds_t)(__atomic_exchange_n(&f->in_slow, 1, __ATOMIC_ACQ_REL) ? 5 : ms) * 1000);
}

static void on_failure(void *arg, kevd_gpa_t gpa, const struct kevd_error *err)
{
	struct fixture *f = arg;

	snprintf(f->failure_msg, sizeof(f->failure_msg), "%s", err->msg);
	__atomic_fetch_add(&f->failures, 1, __ATOMIC_RELEASE);
}

static struct fixture *setup(uint64_t file_pages, uint64_t zero_pages, const struct kevd_pager_config *cfg_in,
			     bool start)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct kevd_pager_config cfg = { 0 };
	struct kevd_error err = KEVD_ERROR_INIT;

	if (cfg_in)
		cfg = *cfg_in;
	/* Fixed windows, as each case sets them (the fault counts and the
	 * injected N-th operations depend on them); the growing window is
	 * tested with the shared image (test_cache) and the VMs (test_vm). */
	if (!cfg.window_max_pages)
		cfg.window_max_pages = cfg.window_pages;
	cfg.on_load = on_load;
	cfg.on_failure = on_failure;
	cfg.cb_arg = f;
	f->path = elfbuild_tmppath("pager");
	elfbuild_default(&f->elf, file_pages, zero_pages);
	ck_assert_int_eq(elfbuild_write(&f->elf, f->path), 0);
	if (kevd_image_open(f->path, &f->img, &err) < 0)
		ck_abort_msg("%s", err.msg);
	f->mem = mmap(NULL, MEM_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ck_assert_ptr_ne(f->mem, MAP_FAILED);
	if (kevd_pager_new(f->img, &cfg, &f->pager, &err) < 0)
		ck_abort_msg("%s", err.msg);
	if (kevd_pager_add_memory(f->pager, KEVD_GPA(0), f->mem, MEM_BYTES, &err) < 0)
		ck_abort_msg("%s", err.msg);
	if (start && kevd_pager_start(f->pager, &err) < 0)
		ck_abort_msg("%s", err.msg);
	return f;
}

static void teardown(struct fixture *f)
{
	kevd_pager_free(f->pager);
	kevd_image_free(f->img);
	munmap(f->mem, MEM_BYTES);
	unlink(f->path);
	free(f->path);
	free(f);
}

/* Checks every image page against the file, byte for byte, zeroes past
 * p_filesz and outside the segment. */
static void check_content(struct fixture *f, uint64_t pages)
{
	const struct eb_seg *s = &f->elf.seg[0];

	for (uint64_t g = 0; g < pages; g++) {
		const unsigned char *p = f->mem + ((BASE_GFN + g) << 12);

		for (unsigned i = 0; i < 4096; i++) {
			uint64_t off = (g << 12) + i;
			uint8_t want = off < s->filesz ? elfbuild_byte(s->offset + off) : 0;

			if (p[i] != want)
				ck_abort_msg("page %llu byte %u: %u, want %u", (unsigned long long)g, i, p[i], want);
		}
	}
}

struct toucher {
	struct fixture *f;
	pthread_barrier_t *barrier;
	const uint32_t *order;   /* page indices to touch */
	size_t n;
	pid_t tid;
	uint64_t sum;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	t->tid = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(t->barrier);
	for (size_t i = 0; i < t->n; i++)
		t->sum += *(volatile unsigned char *)(t->f->mem + ((BASE_GFN + t->order[i]) << 12) + 77);
	return NULL;
}

/* NT threads touch ORDER (all the same order, at the same time). */
static void storm(struct fixture *f, int nt, const uint32_t *order, size_t n, struct toucher *ts)
{
	pthread_barrier_t b;
	pthread_t th[16];

	pthread_barrier_init(&b, NULL, (unsigned)nt);
	for (int i = 0; i < nt; i++) {
		ts[i] = (struct toucher){ .f = f, .barrier = &b, .order = order, .n = n };
		ck_assert_int_eq(pthread_create(&th[i], NULL, touch_main, &ts[i]), 0);
	}
	for (int i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&b);
}

/* A coalesced fault's event may still be in a handler after its thread
 * resumed (the owner's copy woke it), so the counters settle a moment
 * after the touchers are joined: wait (bounded) until every event read is
 * accounted for as a load or a coalesced fault. */
static void settled_stats(struct kevd_pager *p, struct kevd_pager_stats *st)
{
	for (int i = 0; i < 200; i++) {
		kevd_pager_get_stats(p, st);
		if (st->faults == st->loads + st->faults_coalesced + st->load_failures + st->faults_unserved)
			return;
		usleep(10000);
	}
}

/* The identities docs/pager.md states for a lazy pager with no fault in
 * flight (here: stopped, so every event read has been dealt with).  FAILED
 * says whether the owner heard of a failure. */
static void check_identities(const struct kevd_pager_stats *st, bool failed)
{
	uint64_t tid_faults = 0, hist = 0;

	ck_assert(!st->eager);
	/* Every fault event read has exactly one outcome. */
	ck_assert_msg(st->faults == st->loads + st->faults_coalesced + st->load_failures + st->faults_unserved,
		      "faults %llu != loads %llu + coalesced %llu + load_failures %llu + unserved %llu",
		      (unsigned long long)st->faults, (unsigned long long)st->loads,
		      (unsigned long long)st->faults_coalesced, (unsigned long long)st->load_failures,
		      (unsigned long long)st->faults_unserved);
	/* ... and is attributed to the thread that took it. */
	for (size_t i = 0; i < st->nthreads; i++)
		tid_faults += st->threads[i].faults;
	ck_assert_uint_eq(tid_faults + st->faults_other_threads, st->faults);
	/* Every state word was claimed once and published MAPPED or FAILED. */
	ck_assert_uint_eq(st->pages_loaded, st->pages_loaded_demand + st->pages_loaded_around + st->pages_prefetched);
	/* ... but a failed read-ahead, and the half of a failed window
	 * without its fault, give their pages back (UNLOADED, their words
	 * kept) until a fault loads them. */
	if (st->readahead_failures || st->window_retries)
		ck_assert_uint_ge(st->state_entries, st->pages_loaded + st->pages_failed);
	else
		ck_assert_uint_eq(st->state_entries, st->pages_loaded + st->pages_failed);
	ck_assert_uint_le(st->state_entries, st->image_pages);
	/* A load installs its faulting page; a failed load may have, before
	 * its copy failed. */
	ck_assert_uint_le(st->loads, st->pages_loaded_demand);
	ck_assert_uint_le(st->pages_loaded_demand, st->loads + st->load_failures);
	/* One latency observation per load; a failed load fails a page at least. */
	for (int b = 0; b < KEVD_PAGER_HIST_BUCKETS; b++)
		hist += st->latency_hist[b];
	ck_assert_uint_eq(hist, st->loads);
	ck_assert_uint_le(st->load_failures + st->prefetch_failures, st->pages_failed);
	ck_assert_int_eq(st->load_failures + st->prefetch_failures + st->faults_unserved > 0, failed);
}

/* Stops the pager (joining its threads, so nothing is in flight) and
 * checks the identities on what it counted. */
static void stop_and_check(struct fixture *f, struct kevd_pager_stats *st)
{
	kevd_pager_stop(f->pager);
	kevd_pager_get_stats(f->pager, st);
	check_identities(st, kevd_pager_failed(f->pager));
	ck_assert_int_eq(kevd_pager_failed(f->pager), __atomic_load_n(&f->failures, __ATOMIC_ACQUIRE) > 0);
}

/* Exactly once, fault-around off: 8 threads, many rounds, sequential and
 * random subsets; pages_loaded must equal the distinct pages touched. */
START_TEST(exactly_once_no_window)
{
	enum { FILE_PAGES = 300, ZERO_PAGES = 60, PAGES = FILE_PAGES + 1 + ZERO_PAGES, NT = 8 };
	struct kevd_pager_config cfg = { .window_pages = 1, .handler_threads = 1 + (unsigned)_i % 4 };

	for (int round = 0; round < 6; round++) {
		struct fixture *f = setup(FILE_PAGES, ZERO_PAGES, &cfg, true);
		uint32_t order[PAGES];
		bool touched[PAGES] = { false };
		size_t n = 0, distinct = 0;
		struct toucher ts[NT];
		struct kevd_pager_stats st;
		uint64_t tid_faults = 0, hist = 0;
		unsigned seed = (unsigned)(round * 31 + _i);

		/* Even rounds: every page in order; odd: a random multiset. */
		for (size_t i = 0; i < PAGES; i++) {
			uint32_t g = round % 2 ? (uint32_t)(rand_r(&seed) % PAGES) : (uint32_t)i;

			if (round % 2 && rand_r(&seed) % 3 == 0)
				continue;
			order[n++] = g;
			if (!touched[g]) {
				touched[g] = true;
				distinct++;
			}
		}
		storm(f, NT, order, n, ts);
		settled_stats(f->pager, &st);
		ck_assert_uint_eq(st.image_pages, PAGES);
		ck_assert_uint_eq(st.pages_loaded, distinct);
		ck_assert_uint_eq(st.pages_loaded_demand, distinct);
		ck_assert_uint_eq(st.pages_loaded_around, 0);
		ck_assert_uint_eq(st.loads, distinct);
		ck_assert_uint_ge(st.faults, distinct);
		ck_assert_uint_eq(st.faults - st.faults_coalesced, distinct);
		ck_assert_uint_eq(st.load_failures, 0);
		for (size_t g = 0; g < PAGES; g++)
			ck_assert_int_eq(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED), touched[g] ? 1 : 0);
		/* Faults are attributed to the threads that took them. */
		for (size_t i = 0; i < st.nthreads; i++) {
			bool ours = false;

			for (int k = 0; k < NT; k++)
				ours |= st.threads[i].tid == ts[k].tid;
			ck_assert_msg(ours, "fault attributed to unknown thread %d", st.threads[i].tid);
			tid_faults += st.threads[i].faults;
		}
		ck_assert_uint_eq(tid_faults + st.faults_other_threads, st.faults);
		for (int b = 0; b < KEVD_PAGER_HIST_BUCKETS; b++)
			hist += st.latency_hist[b];
		ck_assert_uint_eq(hist, st.loads);
		ck_assert_int_gt(st.first_fault_ns, 0);
		ck_assert_int_ge(st.last_fault_ns, st.first_fault_ns);
		/* Untouched pages are still not there: touching them now loads them. */
		check_content(f, PAGES);
		kevd_pager_get_stats(f->pager, &st);
		ck_assert_uint_eq(st.pages_loaded, PAGES);
		ck_assert_uint_eq(st.bytes_read, f->elf.seg[0].filesz);
		for (size_t g = 0; g < PAGES; g++)
			ck_assert_int_eq(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED), 1);
		teardown(f);
	}
}
END_TEST

/* Fault-around on: windows race faults and each other; still no page is
 * loaded twice, and demand + around add up. */
START_TEST(exactly_once_window)
{
	static const unsigned windows[] = { 2, 8, 16, 64 };
	enum { FILE_PAGES = 500, ZERO_PAGES = 40, PAGES = FILE_PAGES + 1 + ZERO_PAGES, NT = 8 };
	struct kevd_pager_config cfg = { .window_pages = windows[_i % 4], .handler_threads = 1 + (unsigned)_i % 3 };

	for (int round = 0; round < 4; round++) {
		struct fixture *f = setup(FILE_PAGES, ZERO_PAGES, &cfg, true);
		uint32_t order[PAGES];
		struct toucher ts[NT];
		struct kevd_pager_stats st;
		unsigned seed = (unsigned)round + 7;

		for (size_t i = 0; i < PAGES; i++)
			order[i] = round % 2 ? (uint32_t)(rand_r(&seed) % PAGES) : (uint32_t)(PAGES - 1 - i);
		storm(f, NT, order, PAGES, ts);
		check_content(f, PAGES);
		settled_stats(f->pager, &st);
		ck_assert_uint_eq(st.pages_loaded, PAGES);
		ck_assert_uint_eq(st.pages_loaded_demand + st.pages_loaded_around, PAGES);
		ck_assert_uint_le(st.pages_loaded_demand, PAGES);
		if (cfg.window_pages >= 8)
			ck_assert_uint_gt(st.pages_loaded_around, 0);
		ck_assert_uint_le(st.loads, PAGES);
		for (size_t g = 0; g < PAGES; g++)
			ck_assert_int_eq(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED), 1);
		teardown(f);
	}
}
END_TEST

/* A page already present when a window arrives must not be overwritten:
 * the copy reports EEXIST, the pager skips the page and goes on. */
START_TEST(eexist_skips_present_page)
{
	struct kevd_pager_config cfg = { .window_pages = 8 };
	struct fixture *f = calloc(1, sizeof(*f));
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_pager_stats st;
	unsigned char *present;
	volatile unsigned char *mine;

	/* Page 3 is populated before registration, as if someone else had
	 * installed it; the window of the fault on page 1 covers it. */
	f->path = elfbuild_tmppath("eexist");
	elfbuild_default(&f->elf, 64, 0);
	ck_assert_int_eq(elfbuild_write(&f->elf, f->path), 0);
	ck_assert_int_eq(kevd_image_open(f->path, &f->img, &err), 0);
	f->mem = mmap(NULL, MEM_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	present = f->mem + ((BASE_GFN + 3) << 12);
	mine = f->mem + ((BASE_GFN + 1) << 12);
	memset(present, 0xab, 4096);
	cfg.on_load = on_load;
	cfg.cb_arg = f;
	ck_assert_int_eq(kevd_pager_new(f->img, &cfg, &f->pager, &err), 0);
	ck_assert_int_eq(kevd_pager_add_memory(f->pager, KEVD_GPA(0), f->mem, MEM_BYTES, &err), 0);
	ck_assert_int_eq(kevd_pager_start(f->pager, &err), 0);

	ck_assert_uint_eq(*mine, elfbuild_byte(f->elf.seg[0].offset + 4096));
	kevd_pager_get_stats(f->pager, &st);
	ck_assert_uint_eq(st.eexist, 1);
	ck_assert_uint_eq(st.loads, 1);
	for (int i = 0; i < 4096; i++)
		ck_assert_uint_eq(present[i], 0xab);
	/* The pages after the present one in the window were installed too. */
	ck_assert_uint_eq(f->mem[(BASE_GFN + 5) << 12], elfbuild_byte(f->elf.seg[0].offset + 5 * 4096));
	kevd_pager_get_stats(f->pager, &st);
	ck_assert_uint_eq(st.faults, 1);
	teardown(f);
}
END_TEST

START_TEST(eager_mode)
{
	struct kevd_pager_config cfg = { .eager = true };
	struct fixture *f = setup(200, 30, &cfg, true);
	struct kevd_pager_stats st;
	enum kevd_page_state state;
	bool backed;
	void *host;

	kevd_pager_get_stats(f->pager, &st);
	ck_assert(st.eager);
	ck_assert_uint_eq(st.pages_loaded, 231);
	ck_assert_uint_eq(st.bytes_read, f->elf.seg[0].filesz);
	ck_assert_uint_eq(st.faults, 0);
	check_content(f, 231);
	ck_assert_int_eq(kevd_pager_translate(f->pager, KEVD_GPA(0x100123), &host, &state, &backed), 0);
	ck_assert_ptr_eq(host, f->mem + 0x100123);
	ck_assert(backed);
	ck_assert_int_eq(state, KEVD_PAGE_MAPPED);
	teardown(f);
}
END_TEST

START_TEST(translate_states)
{
	struct fixture *f = setup(20, 0, &(struct kevd_pager_config){ .window_pages = 1 }, true);
	enum kevd_page_state state;
	bool backed;
	void *host;

	ck_assert_int_eq(kevd_pager_translate(f->pager, KEVD_GPA(0x105010), &host, &state, &backed), 0);
	ck_assert_ptr_eq(host, f->mem + 0x105010);
	ck_assert(backed);
	ck_assert_int_eq(state, KEVD_PAGE_UNLOADED);
	ck_assert_uint_eq(*(volatile unsigned char *)host, elfbuild_byte(f->elf.seg[0].offset + 0x5010));
	ck_assert_int_eq(kevd_pager_translate(f->pager, KEVD_GPA(0x105010), &host, &state, &backed), 0);
	ck_assert_int_eq(state, KEVD_PAGE_MAPPED);
	ck_assert_int_eq(kevd_pager_translate(f->pager, KEVD_GPA(0x2000), &host, &state, &backed), 0);
	ck_assert(!backed);
	ck_assert_int_eq(state, KEVD_PAGE_MAPPED);
	ck_assert_int_eq(kevd_pager_translate(f->pager, KEVD_GPA(MEM_BYTES), &host, &state, &backed), -ENOENT);
	teardown(f);
}
END_TEST

/* Failure: the image shrinks under a fault storm.  Every toucher must come
 * back (SIGBUS on a poisoned page, or the kick a VMM would send), the
 * owner hears once, and nothing hangs. */
static __thread sigjmp_buf *fault_jmp;

static void on_signal(int sig)
{
	if (fault_jmp)
		siglongjmp(*fault_jmp, sig);
}

struct failer {
	struct fixture *f;
	pthread_barrier_t *barrier;
	size_t pages;
	int stopped_by;     /* signal that ended it, 0 if it finished */
	size_t reached;
};

static void *fail_main(void *arg)
{
	struct failer *t = arg;
	sigjmp_buf jb;
	volatile size_t i = 0;
	int sig;

	fault_jmp = &jb;
	sig = sigsetjmp(jb, 1);
	if (sig) {
		fault_jmp = NULL;  /* no late signal may jump into a frame that is gone */
		t->stopped_by = sig;
		t->reached = i;
		return NULL;
	}
	pthread_barrier_wait(t->barrier);
	for (; i < t->pages; i++)
		(void)*(volatile unsigned char *)(t->f->mem + ((BASE_GFN + i) << 12));
	fault_jmp = NULL;
	t->reached = i;
	return NULL;
}

START_TEST(truncate_under_storm)
{
	enum { FILE_PAGES = 3500, NT = 8 };
	struct kevd_pager_config cfg = { .window_pages = _i ? 8 : 1, .handler_threads = 2 };
	struct fixture *f = setup(FILE_PAGES, 0, &cfg, true);
	struct sigaction sa = { .sa_handler = on_signal };
	struct failer ts[NT];
	pthread_t th[NT];
	pthread_barrier_t b;
	struct kevd_pager_stats st;
	struct timespec deadline;
	bool all_joined = true;

	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	pthread_barrier_init(&b, NULL, NT + 1);
	for (int i = 0; i < NT; i++) {
		ts[i] = (struct failer){ .f = f, .barrier = &b, .pages = FILE_PAGES };
		ck_assert_int_eq(pthread_create(&th[i], NULL, fail_main, &ts[i]), 0);
	}
	pthread_barrier_wait(&b);
	/* Cut the file once the storm is surely under way (10 loads of the
	 * 437-3500 it needs), whatever the machine's speed. */
	for (int w = 0; w < 100000 && __atomic_load_n(&f->load_ops, __ATOMIC_ACQUIRE) < 10; w++)
		usleep(50);
	ck_assert_int_eq(truncate(f->path, 0x10000), 0);
	/* Wait for the failure report, then kick the touchers as a VMM kicks
	 * its vCPUs, unless poisoning already woke them. */
	for (int w = 0; w < 1000 && !__atomic_load_n(&f->failures, __ATOMIC_ACQUIRE); w++)
		usleep(10000);
	ck_assert_int_eq(f->failures, 1);
	ck_assert(kevd_pager_failed(f->pager));
	ck_assert_ptr_nonnull(strstr(f->failure_msg, "truncated while in use") ?: strstr(f->failure_msg, "size changed"));
	if (!kevd_pager_poisons(f->pager))
		for (int i = 0; i < NT; i++)
			pthread_kill(th[i], SIGUSR1);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	for (int i = 0; i < NT; i++)
		if (pthread_timedjoin_np(th[i], NULL, &deadline) != 0)
			all_joined = false;
	ck_assert_msg(all_joined, "a thread still waits on a failed page");
	kevd_pager_get_stats(f->pager, &st);
	ck_assert_uint_ge(st.load_failures, 1);
	ck_assert_uint_ge(st.pages_failed, 1);
	ck_assert_uint_lt(st.pages_loaded, FILE_PAGES);
	ck_assert_uint_le(st.pages_loaded + st.pages_failed, st.image_pages);
	for (int i = 0; i < NT; i++)
		ck_assert_msg(ts[i].stopped_by == (kevd_pager_poisons(f->pager) ? SIGBUS : SIGUSR1) ||
			      ts[i].reached == FILE_PAGES,
			      "thread %d ended at page %zu by signal %d", i, ts[i].reached, ts[i].stopped_by);
	/* The counters still add up around the failure. */
	stop_and_check(f, &st);
	ck_assert_uint_ge(st.load_failures, 1);
	pthread_barrier_destroy(&b);
	teardown(f);
}
END_TEST

/* Fault storms, no failure, with and without fault-around and with 1 to 4
 * handler threads: the counters add up (docs/pager.md). */
START_TEST(identities_after_storm)
{
	static const struct { unsigned window, threads; } cfgs[] = {
		{ 1, 1 }, { 1, 3 }, { 8, 2 }, { 16, 1 }, { 64, 4 }, { 16, 3 },
	};
	enum { FILE_PAGES = 400, ZERO_PAGES = 40, PAGES = FILE_PAGES + 1 + ZERO_PAGES, NT = 8 };
	struct kevd_pager_config cfg = { .window_pages = cfgs[_i].window, .handler_threads = cfgs[_i].threads };

	for (int round = 0; round < 3; round++) {
		struct fixture *f = setup(FILE_PAGES, ZERO_PAGES, &cfg, true);
		uint32_t order[2 * PAGES];
		struct toucher ts[NT];
		struct kevd_pager_stats st;
		unsigned seed = (unsigned)(round * 17 + _i);

		/* Every page once in a random place, and as many random repeats. */
		for (size_t i = 0; i < PAGES; i++)
			order[i] = (uint32_t)i;
		for (size_t i = PAGES; i-- > 1;) {
			size_t j = (size_t)rand_r(&seed) % (i + 1);
			uint32_t t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (size_t i = PAGES; i < 2 * PAGES; i++)
			order[i] = (uint32_t)(rand_r(&seed) % PAGES);
		storm(f, NT, order, 2 * PAGES, ts);
		stop_and_check(f, &st);
		ck_assert_uint_eq(st.pages_loaded, PAGES);
		ck_assert_uint_eq(st.state_entries, PAGES);
		ck_assert_uint_eq(st.load_failures + st.faults_unserved + st.pages_failed, 0);
		ck_assert_uint_gt(st.faults, 0);
		teardown(f);
	}
}
END_TEST

/* Makes the injected failure SPEC happen in this test's process: the
 * injection reads its setting once per process, and Check forks one per
 * test.  False (the test then checks nothing more) in a build without
 * fault injection or without forking. */
static bool inject(const char *spec)
{
#ifdef KEVD_FAULT_INJECTION
	const char *fork_mode = getenv("CK_FORK");

	if (fork_mode && !strcmp(fork_mode, "no")) {
		fprintf(stderr, "test_pager: CK_FORK=no: %s not injected\n", spec);
		return false;
	}
	setenv("KEVD_FAULT_INJECT", spec, 1);
	return true;
#else
	fprintf(stderr, "test_pager: built without --enable-fault-injection: %s not injected\n", spec);
	return false;
#endif
}

/* A copy that installs part of its run and then fails: the page present
 * beforehand splits the copy in two, and the second UFFDIO_COPY fails.
 * The fault has one outcome, a failed load, not a load and a failure. */
START_TEST(identities_partial_copy)
{
	struct kevd_pager_config cfg = { .window_pages = 8 };
	struct fixture *f;
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_pager_stats st;

	if (!inject("uffd_copy=2"))
		return;
	f = calloc(1, sizeof(*f));
	f->path = elfbuild_tmppath("partial");
	elfbuild_default(&f->elf, 64, 0);
	ck_assert_int_eq(elfbuild_write(&f->elf, f->path), 0);
	ck_assert_int_eq(kevd_image_open(f->path, &f->img, &err), 0);
	f->mem = mmap(NULL, MEM_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(f->mem, MAP_FAILED);
	memset(f->mem + ((BASE_GFN + 3) << 12), 0xab, 4096);
	cfg.on_load = on_load;
	cfg.on_failure = on_failure;
	cfg.cb_arg = f;
	ck_assert_int_eq(kevd_pager_new(f->img, &cfg, &f->pager, &err), 0);
	ck_assert_int_eq(kevd_pager_add_memory(f->pager, KEVD_GPA(0), f->mem, MEM_BYTES, &err), 0);
	ck_assert_int_eq(kevd_pager_start(f->pager, &err), 0);

	/* The first copy stops at the present page 3 after installing 0-2
	 * (the kernel reports that as EAGAIN with progress), the next one
	 * fails: the faulting page 1 is in place and this thread goes on. */
	ck_assert_uint_eq(*(volatile unsigned char *)(f->mem + ((BASE_GFN + 1) << 12)),
			  elfbuild_byte(f->elf.seg[0].offset + 4096));
	stop_and_check(f, &st);
	ck_assert_uint_eq(st.faults, 1);
	ck_assert_uint_eq(st.loads, 0);
	ck_assert_uint_eq(st.load_failures, 1);
	ck_assert_uint_eq(st.eagain + st.eexist, 1);
	ck_assert_uint_eq(st.pages_loaded_demand, 1);
	ck_assert_uint_ge(st.pages_loaded_around, 2);
	ck_assert_uint_ge(st.pages_failed, 4);
	ck_assert_uint_eq(st.pages_loaded + st.pages_failed, 8);
	ck_assert_uint_eq(st.bytes_read, 8 * 4096);
	ck_assert_ptr_nonnull(strstr(f->failure_msg, "Input/output error"));
	teardown(f);
}
END_TEST

/* As fail_main, and counts itself past the barrier in *PAST: a thread is
 * only kicked once it is, since a siglongjmp out of the barrier would
 * leave it broken. */
struct kickable {
	struct failer t;
	int *past;                /* atomic */
};

static void *kickable_main(void *arg)
{
	struct kickable *k = arg;
	sigjmp_buf jb;
	volatile size_t i = 0;
	int sig;

	pthread_barrier_wait(k->t.barrier);
	__atomic_fetch_add(k->past, 1, __ATOMIC_RELEASE);
	fault_jmp = &jb;
	sig = sigsetjmp(jb, 1);
	if (sig) {
		/* As below: the main thread's kick may come after a SIGBUS got
		 * this thread out (the ASan run crashed on one, jumping into
		 * this frame once it was gone). */
		fault_jmp = NULL;
		k->t.stopped_by = sig;
		k->t.reached = i;
		return NULL;
	}
	for (; i < k->t.pages; i++)
		(void)*(volatile unsigned char *)(k->t.f->mem + ((BASE_GFN + i) << 12));
	fault_jmp = NULL;  /* a late kick must not jump into a frame that is gone */
	k->t.reached = i;
	return NULL;
}

/* A window whose read fails once (image_read=1: a page around the fault
 * that cannot be read, as a corrupted page of a snapshot): the half with
 * the faulting page (0-7 of 0-15) is read again and loads, the other half
 * is given back, nothing fails, and a fault there loads it.  With
 * image_read=1+ (every read fails) the window halves down to the faulting
 * page alone (16, 8, 4, 2, 1: four retries), which alone fails: the other
 * pages are given back, not FAILED, so another VM of a shared image that
 * never touches the bad page does not meet the failure through them. */
START_TEST(window_read_fails)
{
	struct kevd_pager_config cfg = { .window_pages = 16 };
	struct fixture *f;
	struct kevd_pager_stats st;

	if (!inject(_i ? "image_read=1+" : "image_read=1"))
		return;
	f = setup(100, 0, &cfg, true);
	if (_i) {
		struct sigaction sa = { .sa_handler = on_signal };
		pthread_barrier_t b;
		int past = 0;
		struct kickable k = { { .f = f, .barrier = &b, .pages = 1 }, &past };
		pthread_t th;

		/* Page 0 alone: its thread comes back through the poison (or,
		 * without UFFDIO_POISON, the kick a VMM would send). */
		sigaction(SIGBUS, &sa, NULL);
		sigaction(SIGUSR1, &sa, NULL);
		pthread_barrier_init(&b, NULL, 2);
		ck_assert_int_eq(pthread_create(&th, NULL, kickable_main, &k), 0);
		pthread_barrier_wait(&b);
		for (int w = 0; w < 1000 && !__atomic_load_n(&f->failures, __ATOMIC_ACQUIRE); w++)
			usleep(10000);
		ck_assert_int_eq(f->failures, 1);
		for (int w = 0; w < 100 && !k.t.stopped_by; w++)
			usleep(10000);
		if (!k.t.stopped_by)
			pthread_kill(th, SIGUSR1);
		pthread_join(th, NULL);
		ck_assert_uint_eq(k.t.reached, 0);
		kevd_pager_get_stats(f->pager, &st);
		ck_assert_uint_eq(st.load_failures, 1);
		ck_assert_uint_eq(st.pages_failed, 1);
		ck_assert_uint_eq(st.loads, 0);
		ck_assert_uint_eq(st.window_retries, 4);
		for (uint64_t g = 0; g < 16; g++) {
			enum kevd_page_state state;
			bool backed;
			void *host;

			ck_assert_int_eq(kevd_pager_translate(f->pager, KEVD_GPA((BASE_GFN + g) << 12), &host, &state,
							      &backed), 0);
			ck_assert_int_eq(state, g == 0 ? KEVD_PAGE_FAILED : KEVD_PAGE_UNLOADED);
		}
		stop_and_check(f, &st);
		pthread_barrier_destroy(&b);
		teardown(f);
		return;
	}
	ck_assert_uint_eq(*(volatile unsigned char *)(f->mem + ((BASE_GFN + 5) << 12)),
			  elfbuild_byte(f->elf.seg[0].offset + 5 * 4096));
	kevd_pager_get_stats(f->pager, &st);
	ck_assert_uint_eq(st.loads, 1);
	ck_assert_uint_eq(st.window_retries, 1);
	ck_assert_uint_eq(st.pages_loaded, 8);
	ck_assert_uint_eq(st.load_failures, 0);
	ck_assert_uint_eq(st.pages_failed, 0);
	ck_assert(!kevd_pager_failed(f->pager));
	for (int g = 0; g < 16; g++)
		ck_assert_int_eq(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED), g < 8);
	/* Given back: a fault there (page 8, where the stream goes on) loads
	 * the other half, each page once. */
	(void)*(volatile unsigned char *)(f->mem + ((BASE_GFN + 8) << 12));
	kevd_pager_get_stats(f->pager, &st);
	ck_assert_uint_eq(st.loads, 2);
	ck_assert_uint_eq(st.window_retries, 1);
	ck_assert_uint_ge(st.pages_loaded, 16);
	for (int g = 0; g < 16; g++)
		ck_assert_int_eq(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED), 1);
	check_content(f, 16);
	stop_and_check(f, &st);
	ck_assert_int_eq(f->failures, 0);
	teardown(f);
}
END_TEST

/* Injected failures under an 8-thread storm: a copy that fails whole, a
 * page read that fails, and a state word that cannot be allocated (the
 * fault the pager cannot serve at all).  Every toucher comes back (poison,
 * or the kick a VMM would send), and the counters add up. */
START_TEST(identities_injected_storm)
{
	static const struct { const char *spec; unsigned window; } cases[] = {
		{ "uffd_copy=15", 4 }, { "image_read=10+", 16 }, { "state_alloc=20", 1 },
	};
	enum { FILE_PAGES = 1000, NT = 8 };
	struct kevd_pager_config cfg = { .window_pages = cases[_i].window, .handler_threads = 2 };
	struct sigaction sa = { .sa_handler = on_signal };
	struct fixture *f;
	struct kickable ts[NT];
	pthread_t th[NT];
	pthread_barrier_t b;
	struct kevd_pager_stats st;
	struct timespec deadline;
	bool all_joined = true;
	int past = 0;

	if (!inject(cases[_i].spec))
		return;
	f = setup(FILE_PAGES, 0, &cfg, true);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	pthread_barrier_init(&b, NULL, NT + 1);
	for (int i = 0; i < NT; i++) {
		ts[i] = (struct kickable){ { .f = f, .barrier = &b, .pages = FILE_PAGES }, &past };
		ck_assert_int_eq(pthread_create(&th[i], NULL, kickable_main, &ts[i]), 0);
	}
	pthread_barrier_wait(&b);
	for (int w = 0; w < 1000 && !__atomic_load_n(&f->failures, __ATOMIC_ACQUIRE); w++)
		usleep(10000);
	ck_assert_int_eq(f->failures, 1);
	for (int w = 0; w < 1000 && __atomic_load_n(&past, __ATOMIC_ACQUIRE) < NT; w++)
		usleep(10000);
	ck_assert_int_eq(past, NT);
	/* A page without a state word is not poisoned: kick everyone. */
	for (int i = 0; i < NT; i++)
		pthread_kill(th[i], SIGUSR1);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	for (int i = 0; i < NT; i++)
		if (pthread_timedjoin_np(th[i], NULL, &deadline) != 0)
			all_joined = false;
	ck_assert_msg(all_joined, "a thread still waits after %s", cases[_i].spec);
	stop_and_check(f, &st);
	if (_i == 2) {
		ck_assert_uint_eq(st.faults_unserved, 1);
		ck_assert_uint_eq(st.load_failures, 0);
		ck_assert_ptr_nonnull(strstr(f->failure_msg, "no memory for the state"));
	} else {
		ck_assert_uint_eq(st.load_failures, 1);
		ck_assert_uint_eq(st.faults_unserved, 0);
	}
	pthread_barrier_destroy(&b);
	teardown(f);
}
END_TEST

/* Waits (bounded) until the pager has done READAHEADS read-aheads. */
static void wait_readaheads(struct kevd_pager *p, uint64_t readaheads, struct kevd_pager_stats *st)
{
	for (int i = 0; i < 500; i++) {
		kevd_pager_get_stats(p, st);
		if (st->readaheads + st->readahead_failures >= readaheads)
			return;
		usleep(10000);
	}
}

/* A growing window (window_pages 2): sequential faults on pages 0, 2
 * and 10 take windows of 2, 4 and 8 pages, each reaching as far again
 * ahead (2-10, then 10-26).  The third is past a chunk (4 x 2 pages): only
 * its first chunk, 10-17, is read before the fault is woken, and 18-25,
 * with nobody faulting there, is one read-ahead.  Touching those pages
 * then takes no fault.  _i = 1, 2: that read-ahead's read, or its
 * UFFDIO_COPY (the fourth of each), fails: nobody asked for those pages,
 * so they are given back and the VM goes on; a fault on one then loads it
 * (a failed load is what fails a VM). */
START_TEST(readahead_after_wake)
{
	static const char *const specs[] = { NULL, "image_read=4", "uffd_copy=4" };
	struct kevd_pager_config cfg = { .window_pages = 2, .window_max_pages = 64 };
	struct fixture *f;
	struct kevd_pager_stats st;

	if (specs[_i] && !inject(specs[_i]))
		return;
	f = setup(100, 0, &cfg, true);
	(void)*(volatile unsigned char *)(f->mem + ((BASE_GFN + 0) << 12));
	(void)*(volatile unsigned char *)(f->mem + ((BASE_GFN + 2) << 12));
	(void)*(volatile unsigned char *)(f->mem + ((BASE_GFN + 10) << 12));
	wait_readaheads(f->pager, 1, &st);
	ck_assert_uint_eq(st.faults, 3);
	ck_assert_uint_eq(st.loads, 3);
	ck_assert_uint_eq(st.pages_loaded_demand, 3);
	ck_assert_uint_eq(st.window_hist[1], 1);
	ck_assert_uint_eq(st.window_hist[2], 1);
	ck_assert_uint_eq(st.window_hist[3], 1);
	if (_i) {
		ck_assert_uint_eq(st.readaheads, 0);
		ck_assert_uint_eq(st.readahead_failures, 1);
		ck_assert_uint_eq(st.load_failures, 0);
		ck_assert_uint_eq(st.pages_failed, 0);
		ck_assert_uint_eq(st.pages_loaded, 18);
		ck_assert(!kevd_pager_failed(f->pager));
		for (int g = 18; g < 26; g++)
			ck_assert_int_eq(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED), 0);
		/* Given back: a fault loads page 20 (with its own window). */
		ck_assert_uint_eq(*(volatile unsigned char *)(f->mem + ((BASE_GFN + 20) << 12)),
				  elfbuild_byte(f->elf.seg[0].offset + 20 * 4096));
		kevd_pager_get_stats(f->pager, &st);
		ck_assert_uint_eq(st.faults, 4);
		ck_assert_uint_eq(st.loads, 4);
		ck_assert_int_eq(__atomic_load_n(&f->loads[20], __ATOMIC_RELAXED), 1);
	} else {
		ck_assert_uint_eq(st.readaheads, 1);
		ck_assert_uint_eq(st.readahead_failures, 0);
		ck_assert_uint_eq(st.pages_loaded, 26);
		ck_assert_uint_eq(st.pages_loaded_around, 23);
		for (int g = 0; g < 101; g++)
			ck_assert_int_eq(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED), g < 26);
		for (int g = 18; g < 26; g++)
			(void)*(volatile unsigned char *)(f->mem + ((BASE_GFN + g) << 12));
		kevd_pager_get_stats(f->pager, &st);
		ck_assert_uint_eq(st.faults, 3);
	}
	check_content(f, 101);
	stop_and_check(f, &st);
	ck_assert_uint_eq(st.pages_loaded, 101);
	ck_assert_int_eq(f->failures, 0);
	for (int g = 0; g < 101; g++)
		ck_assert_int_eq(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED), 1);
	teardown(f);
}
END_TEST

struct quiescer {
	struct fixture *f;
	int rc;
	struct kevd_pager_stats after;  /* right after the quiesce returned */
};

/* Once a slowed load is under way: quiesces, as a pause does. */
static void *quiescer_main(void *arg)
{
	struct quiescer *q = arg;

	for (int w = 0; w < 5000 && !__atomic_load_n(&q->f->in_slow, __ATOMIC_ACQUIRE); w++)
		usleep(1000);
	q->rc = kevd_pager_quiesce(q->f->pager, 5000);
	kevd_pager_get_stats(q->f->pager, &q->after);
	return NULL;
}

/* A quiesce (a pause) leaves the pager idle, also when it comes while a
 * fault is being served (a parked vCPU left it behind): that fault's
 * read-ahead, queued after the quiesce began, is dropped too.  Loads are
 * slowed (on_load sleeps: 50 ms for the fault's, 5 ms for each of its 7
 * read-ahead chunks), the quiesce starts inside the fault's.  At most one
 * chunk may start before the quiesce sees the fault done; none after it
 * returns. */
START_TEST(readahead_dropped_by_quiesce)
{
	struct kevd_pager_config cfg = { .window_pages = 2, .window_max_pages = 64 };
	struct fixture *f = setup(200, 0, &cfg, true);
	struct kevd_pager_stats a, b;
	static const int pages[] = { 0, 2, 10, 26 };
	struct quiescer q = { .f = f };
	pthread_t th;

	/* Windows of 2, 4, 8, 16; the fault on 58 (this thread's stream
	 * still) takes 32: 8 pages at once and 7 chunks of read-ahead. */
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
		(void)*(volatile unsigned char *)(f->mem + ((BASE_GFN + pages[i]) << 12));
	wait_readaheads(f->pager, 4, &a);  /* 10's one chunk and 26's three, done */
	ck_assert_uint_eq(a.readaheads, 4);
	ck_assert_uint_eq(a.pages_loaded, 58);
	__atomic_store_n(&f->slow_ms, 50, __ATOMIC_RELEASE);
	ck_assert_int_eq(pthread_create(&th, NULL, quiescer_main, &q), 0);
	(void)*(volatile unsigned char *)(f->mem + ((BASE_GFN + 58) << 12));
	pthread_join(th, NULL);
	ck_assert_int_eq(q.rc, 0);
	a = q.after;
	usleep(100000);
	kevd_pager_get_stats(f->pager, &b);
	ck_assert_uint_eq(a.faults, 5);
	ck_assert_uint_eq(a.window_hist[5], 1);  /* the window of 32 */
	ck_assert_uint_le(a.readaheads, 4 + 1);
	ck_assert_uint_eq(b.readaheads, a.readaheads);
	ck_assert_uint_eq(b.pages_loaded, a.pages_loaded);
	ck_assert_uint_le(a.pages_loaded, 58 + 8 + 8);
	__atomic_store_n(&f->slow_ms, 0, __ATOMIC_RELEASE);
	/* The next fault reads again, and what was dropped is still loaded
	 * on demand, once. */
	check_content(f, 201);
	stop_and_check(f, &b);
	ck_assert_uint_eq(b.pages_loaded, 201);
	for (int g = 0; g < 201; g++)
		ck_assert_int_eq(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED), 1);
	teardown(f);
}
END_TEST

/* Growing windows under 8-thread storms (each thread up its own slice,
 * all from both ends at once, and random; 1-3 handler threads): read-ahead
 * races the faults that catch up with it or get there first (then it has
 * nothing left to read: demand comes first), and still every page is
 * loaded once, every byte right, and the counters add up. */
START_TEST(readahead_under_storm)
{
	enum { FILE_PAGES = 1500, ZERO_PAGES = 40, PAGES = FILE_PAGES + 1 + ZERO_PAGES, NT = 8 };
	struct kevd_pager_config cfg = { .window_pages = 4, .window_max_pages = 128,
					 .handler_threads = 1 + (unsigned)_i % 3 };

	for (int round = 0; round < 3; round++) {
		struct fixture *f = setup(FILE_PAGES, ZERO_PAGES, &cfg, true);
		static uint32_t order[NT][PAGES];
		pthread_barrier_t b;
		pthread_t th[NT];
		struct toucher ts[NT];
		struct kevd_pager_stats st;
		unsigned seed = (unsigned)round + 11;

		for (int t = 0; t < NT; t++)
			for (size_t i = 0; i < PAGES; i++)
				order[t][i] = round == 0 ? (uint32_t)((t * (PAGES / NT) + i) % PAGES)
					    : round == 2 ? (uint32_t)(rand_r(&seed) % PAGES)
					    : t % 2 ? (uint32_t)(PAGES - 1 - i) : (uint32_t)i;
		pthread_barrier_init(&b, NULL, NT);
		for (int t = 0; t < NT; t++) {
			ts[t] = (struct toucher){ .f = f, .barrier = &b, .order = order[t], .n = PAGES };
			ck_assert_int_eq(pthread_create(&th[t], NULL, touch_main, &ts[t]), 0);
		}
		for (int t = 0; t < NT; t++)
			pthread_join(th[t], NULL);
		pthread_barrier_destroy(&b);
		check_content(f, PAGES);
		stop_and_check(f, &st);
		ck_assert_uint_eq(st.pages_loaded, PAGES);
		ck_assert_uint_eq(st.pages_failed + st.load_failures + st.readahead_failures, 0);
		for (size_t g = 0; g < PAGES; g++)
			ck_assert_int_eq(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED), 1);
		teardown(f);
	}
}
END_TEST

START_TEST(error_paths)
{
	struct fixture *f = setup(20, 0, NULL, false);
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_pager *p = NULL;
	unsigned char *small;

	ck_assert_int_eq(kevd_pager_add_memory(f->pager, KEVD_GPA(0x1001), f->mem, 4096, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "not page aligned"));
	ck_assert_int_eq(kevd_pager_add_memory(f->pager, KEVD_GPA(0x1000), f->mem, 4096, &err), -EEXIST);
	ck_assert_int_eq(kevd_pager_new(f->img, &(struct kevd_pager_config){ .handler_threads = 1000 }, &p, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "handler threads"));
	ck_assert_int_eq(kevd_pager_new(f->img, &(struct kevd_pager_config){ .window_pages = 4096 }, &p, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "fault-around window"));
	ck_assert_ptr_null(p);
	ck_assert_int_eq(kevd_pager_start(f->pager, &err), 0);
	ck_assert_int_eq(kevd_pager_start(f->pager, &err), -EBUSY);
	ck_assert_int_eq(kevd_pager_add_memory(f->pager, KEVD_GPA(MEM_BYTES), f->mem, 4096, &err), -EBUSY);
	teardown(f);

	/* The image is not in the memory given. */
	f = setup(20, 0, NULL, false);
	ck_assert_int_eq(kevd_pager_new(f->img, NULL, &p, &err), 0);
	small = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_int_eq(kevd_pager_add_memory(p, KEVD_GPA(0), small, 1 << 20, &err), 0);
	ck_assert_int_eq(kevd_pager_start(p, &err), -ERANGE);
	ck_assert_ptr_nonnull(strstr(err.msg, "are not all in guest RAM"));
	kevd_pager_free(p);
	munmap(small, 1 << 20);
	teardown(f);
}
END_TEST

/* Waits (bounded) until the working-set prefetch has finished its pass. */
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

/* The working set of pages [0, N) of F's image with every third run of 24
 * pages left out, in order, or shuffled for SEED != 0 (the head is taken
 * in the order given). */
static size_t make_list(uint64_t *list, uint64_t n, unsigned seed, bool *listed)
{
	size_t k = 0;

	for (uint64_t g = 0; g < n; g++) {
		listed[g] = (g / 24) % 3 != 2;
		if (listed[g])
			list[k++] = BASE_GFN + g;
	}
	for (size_t i = k; seed && i > 1; i--) {
		size_t j = (size_t)rand_r(&seed) % i;
		uint64_t t = list[i - 1];

		list[i - 1] = list[j];
		list[j] = t;
	}
	/* Repeats and pages outside the image are taken and left out. */
	list[k++] = list[0];
	list[k++] = 0x7;
	return k;
}

/* A prefetch with nothing touching: every listed page loaded by it, in a
 * few large reads, exactly once; then touching them takes no fault, and a
 * page it does not list is a miss. */
START_TEST(prefetch_alone)
{
	enum { FILE_PAGES = 400, ZERO_PAGES = 40, PAGES = FILE_PAGES + 1 + ZERO_PAGES };
	struct kevd_pager_config cfg = { .window_pages = 4 };
	struct fixture *f = setup(FILE_PAGES, ZERO_PAGES, &cfg, false);
	struct kevd_error err = KEVD_ERROR_INIT;
	uint64_t list[PAGES + 2];
	bool listed[PAGES];
	size_t n = make_list(list, PAGES, 0, listed), nlisted = 0;
	struct kevd_pager_stats st;
	struct kevd_pager_recording *rec;

	for (size_t g = 0; g < PAGES; g++)
		nlisted += listed[g];
	ck_assert_int_eq(kevd_pager_prefetch(f->pager, list, n, &err), 0);
	ck_assert_int_eq(kevd_pager_prefetch(f->pager, list, n, &err), -EBUSY);
	ck_assert_int_eq(kevd_pager_record(f->pager, 100, NULL, &rec, &err), -EBUSY);
	if (kevd_pager_start(f->pager, &err) < 0)
		ck_abort_msg("%s", err.msg);
	wait_prefetched(f->pager, &st);
	ck_assert_int_eq(st.working_set, KEVD_PAGER_WS_PREFETCHED);
	ck_assert_uint_eq(st.working_set_pages, nlisted);
	ck_assert_uint_eq(st.pages_prefetched, nlisted);
	ck_assert_uint_eq(st.pages_loaded, nlisted);
	ck_assert_uint_eq(st.faults, 0);
	ck_assert_uint_eq(st.prefetch_failures, 0);
	/* Runs of consecutive listed pages, cut at KEVD_PAGER_PREFETCH_RUN
	 * (and where the head's order breaks them). */
	ck_assert_uint_le(st.prefetch_loads, nlisted / 8);
	/* Private backing: the prefetch maps the pages, a touch leaves no trace. */
	ck_assert_uint_eq(st.prefetch_hits, KEVD_PAGER_UNMEASURED);
	ck_assert_uint_eq(st.prefetch_unused, KEVD_PAGER_UNMEASURED);
	for (size_t g = 0; g < PAGES; g++)
		ck_assert_int_eq(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED), listed[g] ? 1 : 0);
	for (size_t g = 0; g < PAGES; g++)
		if (listed[g])
			(void)*(volatile unsigned char *)(f->mem + ((BASE_GFN + g) << 12));
	kevd_pager_get_stats(f->pager, &st);
	ck_assert_uint_eq(st.faults, 0);
	check_content(f, PAGES);  /* touches the rest: misses, all of them */
	settled_stats(f->pager, &st);
	ck_assert_uint_eq(st.pages_loaded, PAGES);
	ck_assert_uint_eq(st.prefetch_misses, st.faults);
	ck_assert_uint_gt(st.faults, 0);
	for (size_t g = 0; g < PAGES; g++)
		ck_assert_int_eq(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED), 1);
	stop_and_check(f, &st);
	teardown(f);
}
END_TEST

/* A prefetch read that fails (the second, image_read=2) fails its pages
 * and the VM, as the same read on a fault would: counted once, before the
 * owner hears, and the pages it had loaded before stay loaded. */
START_TEST(prefetch_read_fails)
{
	enum { FILE_PAGES = 400, PAGES = FILE_PAGES + 1 };
	struct kevd_pager_config cfg = { .window_pages = 4 };
	struct fixture *f;
	struct kevd_error err = KEVD_ERROR_INIT;
	uint64_t list[PAGES + 2];
	bool listed[PAGES];
	size_t n;
	struct kevd_pager_stats st;

	if (!inject("image_read=2"))
		return;
	f = setup(FILE_PAGES, 0, &cfg, false);
	n = make_list(list, PAGES, 0, listed);
	ck_assert_int_eq(kevd_pager_prefetch(f->pager, list, n, &err), 0);
	if (kevd_pager_start(f->pager, &err) < 0)
		ck_abort_msg("%s", err.msg);
	for (int i = 0; i < 500; i++) {
		kevd_pager_get_stats(f->pager, &st);
		if (st.prefetch_failures)
			break;
		usleep(10000);
	}
	ck_assert_uint_eq(st.prefetch_failures, 1);
	ck_assert_uint_eq(st.prefetch_loads, 1);
	ck_assert_uint_gt(st.pages_failed, 0);
	ck_assert(kevd_pager_failed(f->pager));
	ck_assert_int_eq(f->failures, 1);
	ck_assert_ptr_nonnull(strstr(f->failure_msg, "(working-set prefetch)"));
	ck_assert_uint_eq(st.pages_loaded, st.pages_prefetched);
	stop_and_check(f, &st);
	teardown(f);
}
END_TEST

/* A prefetch racing 8 faulting threads (1-2 handler threads, windows 1
 * and 16): whoever claims a page first loads it, nothing is loaded twice,
 * every byte right, and the loads add up. */
START_TEST(prefetch_under_storm)
{
	enum { FILE_PAGES = 600, ZERO_PAGES = 60, PAGES = FILE_PAGES + 1 + ZERO_PAGES, NT = 8 };
	struct kevd_pager_config cfg = { .window_pages = _i % 2 ? 16 : 1, .handler_threads = 1 + (unsigned)_i / 2 };

	for (int round = 0; round < 4; round++) {
		struct fixture *f = setup(FILE_PAGES, ZERO_PAGES, &cfg, false);
		struct kevd_error err = KEVD_ERROR_INIT;
		uint64_t list[PAGES + 2];
		uint32_t order[PAGES];
		bool listed[PAGES];
		size_t n = make_list(list, PAGES, (unsigned)round + 11, listed);
		struct toucher ts[NT];
		struct kevd_pager_stats st;
		unsigned seed = (unsigned)round * 3 + 1;

		for (size_t i = 0; i < PAGES; i++)
			order[i] = round % 2 ? (uint32_t)(rand_r(&seed) % PAGES) : (uint32_t)(PAGES - 1 - i);
		ck_assert_int_eq(kevd_pager_prefetch(f->pager, list, n, &err), 0);
		if (kevd_pager_start(f->pager, &err) < 0)
			ck_abort_msg("%s", err.msg);
		storm(f, NT, order, PAGES, ts);
		check_content(f, PAGES);
		wait_prefetched(f->pager, &st);
		settled_stats(f->pager, &st);
		ck_assert_uint_eq(st.pages_loaded, PAGES);
		ck_assert_uint_eq(st.pages_prefetched + st.pages_loaded_demand + st.pages_loaded_around, PAGES);
		ck_assert_uint_le(st.prefetch_misses, st.faults);
		for (size_t g = 0; g < PAGES; g++)
			ck_assert_msg(__atomic_load_n(&f->loads[g], __ATOMIC_RELAXED) == 1, "page %zu loaded %d times", g,
				      __atomic_load_n(&f->loads[g], __ATOMIC_RELAXED));
		stop_and_check(f, &st);
		teardown(f);
	}
}
END_TEST

/* A recording: the pages loaded, in load order, each once; it ends at the
 * stop, and a recording given a short run time ends by itself, holding
 * only what was loaded before. */
START_TEST(record_loads)
{
	enum { FILE_PAGES = 100, PAGES = FILE_PAGES + 1 };
	struct kevd_pager_config cfg = { .window_pages = _i ? 8 : 1 };
	struct fixture *f = setup(FILE_PAGES, 0, &cfg, false);
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_pager_recording *rec;
	struct kevd_pager_stats st;
	uint64_t *got;
	uint32_t order[PAGES];
	bool seen[PAGES] = { false };
	unsigned seed = 3;
	size_t n;

	ck_assert_int_eq(kevd_pager_record(f->pager, 60000, NULL, &rec, &err), 0);
	if (kevd_pager_start(f->pager, &err) < 0)
		ck_abort_msg("%s", err.msg);
	for (size_t i = 0; i < PAGES; i++)
		order[i] = (uint32_t)i;
	for (size_t i = PAGES; i > 1; i--) {
		size_t j = (size_t)rand_r(&seed) % i;
		uint32_t t = order[i - 1];

		order[i - 1] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < PAGES; i++)
		(void)*(volatile unsigned char *)(f->mem + ((BASE_GFN + order[i]) << 12));
	kevd_pager_get_stats(f->pager, &st);
	ck_assert_int_eq(st.working_set, KEVD_PAGER_WS_RECORDING);
	ck_assert(!kevd_pager_recording_ended(rec));
	kevd_pager_stop(f->pager);
	ck_assert(kevd_pager_recording_ended(rec));
	kevd_pager_get_stats(f->pager, &st);
	ck_assert_int_eq(st.working_set, KEVD_PAGER_WS_RECORDED);
	ck_assert_uint_eq(st.working_set_pages, PAGES);
	ck_assert_int_eq(kevd_pager_recording_pages(rec, &got, &n), 0);
	ck_assert_uint_eq(n, PAGES);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_ge(got[i], BASE_GFN);
		ck_assert_uint_lt(got[i], BASE_GFN + PAGES);
		ck_assert(!seen[got[i] - BASE_GFN]);
		seen[got[i] - BASE_GFN] = true;
		/* Window 1: one page a fault, so the touch order itself. */
		if (!_i)
			ck_assert_uint_eq(got[i], BASE_GFN + order[i]);
	}
	free(got);
	/* The recording outlives the pager. */
	teardown(f);
	ck_assert_int_eq(kevd_pager_recording_pages(rec, &got, &n), 0);
	ck_assert_uint_eq(n, PAGES);
	free(got);
	kevd_pager_recording_unref(rec);

	/* 300 ms of run time (from the start: no guest clock given).  What a
	 * busy host lets the first touches load in that time is recorded, at
	 * least the first page; nothing after the end. */
	f = setup(FILE_PAGES, 0, &cfg, false);
	ck_assert_int_eq(kevd_pager_record(f->pager, 300, NULL, &rec, &err), 0);
	if (kevd_pager_start(f->pager, &err) < 0)
		ck_abort_msg("%s", err.msg);
	for (size_t i = 0; i < 10; i++)
		(void)*(volatile unsigned char *)(f->mem + ((BASE_GFN + i) << 12));
	for (int i = 0; i < 300 && !kevd_pager_recording_ended(rec); i++)
		usleep(10000);
	ck_assert(kevd_pager_recording_ended(rec));
	for (size_t i = 50; i < PAGES; i++)
		(void)*(volatile unsigned char *)(f->mem + ((BASE_GFN + i) << 12));
	ck_assert_int_eq(kevd_pager_recording_pages(rec, &got, &n), 0);
	ck_assert_uint_ge(n, 1);
	ck_assert_uint_le(n, _i ? 16 : 10);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_lt(got[i], BASE_GFN + 50);
	free(got);
	kevd_pager_recording_unref(rec);
	teardown(f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pager");
	TCase *t = tcase_create("pager");

	tcase_set_timeout(t, 120);
	tcase_add_loop_test(t, exactly_once_no_window, 0, 4);
	tcase_add_loop_test(t, exactly_once_window, 0, 8);
	tcase_add_test(t, eexist_skips_present_page);
	tcase_add_test(t, eager_mode);
	tcase_add_test(t, translate_states);
	tcase_add_loop_test(t, truncate_under_storm, 0, 2);
	tcase_add_loop_test(t, identities_after_storm, 0, 6);
	tcase_add_test(t, identities_partial_copy);
	tcase_add_loop_test(t, identities_injected_storm, 0, 3);
	tcase_add_loop_test(t, window_read_fails, 0, 2);
	tcase_add_loop_test(t, readahead_after_wake, 0, 3);
	tcase_add_test(t, readahead_dropped_by_quiesce);
	tcase_add_loop_test(t, readahead_under_storm, 0, 3);
	tcase_add_test(t, error_paths);
	tcase_add_test(t, prefetch_alone);
	tcase_add_test(t, prefetch_read_fails);
	tcase_add_loop_test(t, prefetch_under_storm, 0, 4);
	tcase_add_loop_test(t, record_loads, 0, 2);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	int r = kevd_test_need_uffd("test_pager");

	return r ? r : kevd_test_run(suite());
}
