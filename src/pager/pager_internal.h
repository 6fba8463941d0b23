/*
 * What the pager's files share: pager.c (lifecycle, registration, eager
 * mode, translation), service.c (the handler threads' fault service),
 * workingset.c (recording and prefetching the working set) and stats.c
 * (the statistics summary).  Nothing outside src/pager/ sees it.
 */
#ifndef KEVD_PAGER_INTERNAL_H
#define KEVD_PAGER_INTERNAL_H

#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pager/pager.h"

/* glibc before 2.35 lacks MADV_POPULATE_WRITE (Linux 5.14); the ABI is fixed. */
#include <sys/mman.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

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

/* The read-ahead of one stream (service.c): the rest of a growing window,
 * pages [next, end) of region RG, read by the handler thread that served
 * its fault once that fault was woken, between fault batches.  The
 * handler's own; RG NULL = a free slot. */
struct readahead {
	const struct region *rg;
	const struct stream *st;
	uint64_t next, end;
	unsigned gen;            /* the pager's ra_gen when the batch that queued it began: older
				  * ones are dropped */
};

#define READAHEAD_SLOTS 4

/* Counters of one handler thread: written only by it (relaxed stores, no
 * read-modify-write on the hot path), read by anyone with relaxed loads.
 * The scalars are the per-thread rows of KEVD_PAGER_STATS, under the same
 * names; an EARLIEST/LATEST stamp is CLOCK_MONOTONIC here. */
#define COUNTER_SUM(field) uint64_t field;
#define COUNTER_EARLIEST(field) uint64_t field;
#define COUNTER_LATEST(field) uint64_t field;
#define COUNTER_PAGER(field)
#define COUNTER_SETUP(field)
#define COUNTER_MEASURED(field)
#define COUNTER_MEMBER(field, how, json, metric, type, help) COUNTER_##how(field)

struct counters {
	KEVD_PAGER_STATS(COUNTER_MEMBER)
	uint64_t hist[KEVD_PAGER_HIST_BUCKETS];
	uint64_t window_hist[KEVD_PAGER_WINDOW_BUCKETS];
	struct { int32_t tid; uint64_t faults; } tids[KEVD_PAGER_MAX_TIDS];
};

/* A handler thread, or the working-set thread (its counters are those of
 * the prefetch, its buffer KEVD_PAGER_PREFETCH_RUN pages). */
struct handler {
	struct kevd_pager *pager;
	pthread_t thread;        /* owned by the pager: joined in kevd_pager_stop */
	bool started;
	unsigned char *buf;      /* window_max_pages pages; this thread's only */
	struct readahead ra[READAHEAD_SLOTS];  /* this thread's only (a working-set thread has none) */
	unsigned ra_turn;        /* the slot the next read-ahead read serves first */
	unsigned batch_gen;      /* the pager's ra_gen when this thread's current batch began */
	struct counters c;
};

/* A run of pages the prefetch loaded (and did not premap). */
struct ws_run {
	uint64_t first, n;
};

/* The fault-around state of one faulting thread (a vCPU): its faults are
 * its stream, as a file's reads are for the kernel's readahead.  A thread
 * has one fault outstanding at a time, so one handler at a time updates
 * its slot; relaxed atomics only keep readers of a slot reused by another
 * thread from tearing (the state is a hint). */
struct stream {
	int32_t tid;             /* 0 = free; claimed once by compare-and-swap */
	uint32_t window;         /* the window its last fault used; 0 before any */
	uint64_t next_gfn;       /* where its next sequential fault would come */
	uint64_t start_gfn;      /* growing windows: where its window began (its read-ahead runs
				  * to next_gfn), so that a fault in between is a catch-up */
};

struct kevd_pager {
	struct kevd_image *img;          /* borrowed; outlives the pager */
	struct kevd_pager_config cfg;
	struct kevd_pagestate *states;   /* the cache entry's when shared, else owned */
	struct kevd_cached_image *cached;  /* owned reference; NULL = private backing */
	struct uffdio_range *shared_maps;  /* owned: where the cache's memfd is mapped over guest RAM */
	size_t nshared_maps;
	int uffd;                        /* owned; -1 in eager mode */
	int stopfd;                      /* owned eventfd; readable = threads must exit */
	bool poison;                     /* UFFDIO_POISON granted on every range */
	size_t nregions;
	struct region *regions;          /* immutable once started */
	struct handler *handlers;        /* published (release) before any thread starts */
	struct stream streams[KEVD_PAGER_MAX_TIDS];  /* by faulting thread; see struct stream */
	bool started;
	int stopping;                    /* atomic: kevd_pager_stop() under way; the prefetch gives up */
	int failed;                      /* atomic: first failure reported */
	unsigned busy;                   /* atomic: handler threads between poll and the end of their batch
					  * or read-ahead read */
	unsigned serving;                /* atomic: those of them serving a batch of faults (not reading
					  * ahead): what the working-set prefetch gives way to */
	unsigned ra_gen;                 /* atomic: bumped by kevd_pager_quiesce(), which so drops every
					  * read-ahead queued before it */
	uint64_t mono_base_ns, real_base_ns;
	uint64_t eager_load_ns;          /* relaxed atomics: set by start, read by stats */
	uint64_t eager_bytes;
	/* The working set (workingset.c): a recording or a prefetch list,
	 * never both; set before start. */
	struct kevd_pager_recording *rec;  /* owned reference; NULL = not recording */
	uint64_t record_ns;
	uint64_t ws_started_ns;          /* CLOCK_MONOTONIC: the working-set thread started */
	const uint64_t *run_start_ns;    /* the owner's: the guest's first instruction, 0 before; atomic */
	uint64_t *ws;                    /* owned: the prefetch list, sorted, image pages only, no flags; immutable */
	size_t nws;
	uint64_t *ws_written;            /* owned: its pages flagged KEVD_PAGER_WS_WRITTEN, sorted; immutable */
	size_t nws_written;
	unsigned char *ws_premap;        /* owned: per ws_written page, PREMAP_*; the working-set thread's */
	bool ws_premap_off;              /* MADV_POPULATE_WRITE refused (EINVAL); the working-set thread's */
	uint64_t *ws_head;               /* owned: its first pages in the order given (load order); immutable */
	size_t nws_head;
	uint64_t ws_hint;                /* atomic: 1 + where a fault's load on a listed page ended; 0 = none */
	struct handler *wsh;             /* the working-set thread; published (release) before it starts */
	int pagemap;                     /* owned: /proc/self/pagemap, -1 without a working set */
	struct ws_run *runs;             /* owned: what the prefetch loaded and left to the guest to map (not
					  * premapped); the working-set thread's until joined */
	size_t nruns, cap_runs;
	uint64_t runs_pages;             /* pages in runs (relaxed atomics, read by stats) */
	uint64_t prefetch_hits;
	uint64_t prefetch_ns;
};

static inline void store(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void bump(uint64_t *p, uint64_t n) { store(p, load(p) + n); }

/* A new userfaultfd (O_CLOEXEC | O_NONBLOCK), through /dev/userfaultfd
 * where it can. */
int kevd_pager_open_uffd(struct kevd_error *err);

/* The memory region holding GPA (resp. host address ADDR); NULL if none. */
const struct region *kevd_pager_region_of_gpa(const struct kevd_pager *p, uint64_t gpa);
const struct region *kevd_pager_region_of_host(const struct kevd_pager *p, uint64_t addr);

/* A handler thread (ARG = its struct handler): serves fault events until
 * the stop eventfd is readable or the userfaultfd closes. */
void *kevd_pager_handler_main(void *arg);

/* service.c, for the prefetch: the owner hears of the first failure;
 * UFFDIO_COPY of LEN bytes from BUF to HOST (*DONE: the bytes in place,
 * also on failure); poisoning this VM's NPAGES pages at HOST. */
void kevd_pager_report_failure(struct kevd_pager *p, uint64_t gfn, const struct kevd_error *e);
int kevd_pager_copy_in(struct handler *h, uint64_t host, const unsigned char *buf, uint64_t len, uint64_t *done,
		       struct kevd_error *err);
void kevd_pager_poison(struct kevd_pager *p, uint64_t host, uint64_t npages);

/* workingset.c: adds the NPAGES pages loaded from FIRST to the recording
 * (a handler thread, after a load); whether GFN is in the prefetch list;
 * what the handler threads read, set before they start, and the
 * working-set thread, started after them (kevd_pager_start); and what is
 * left once every thread is joined (kevd_pager_stop, before the shared
 * view goes): the recording ended, the hits counted a last time. */
void kevd_pager_record_load(struct kevd_pager *p, uint64_t first, uint64_t npages);
bool kevd_pager_ws_listed(const struct kevd_pager *p, uint64_t gfn);
void kevd_pager_ws_prepare(struct kevd_pager *p);
int kevd_pager_ws_start(struct kevd_pager *p, struct kevd_error *err);
void kevd_pager_ws_stop(struct kevd_pager *p);
void kevd_pager_ws_free(struct kevd_pager *p);
enum kevd_pager_working_set kevd_pager_ws_state(struct kevd_pager *p, uint64_t *pages);

#endif
