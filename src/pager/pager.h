/*
 * The lazy pager: serves a guest's first touch of every image-backed page
 * from the kernel's ELF file.  The VMM hands it the host mappings of guest
 * RAM; the pager registers only the image-backed ranges with userfaultfd
 * (the rest of RAM stays plain anonymous memory), and a pool of handler
 * threads reads the fault events, claims each page through its state word
 * (pagestate.h) so that it is loaded exactly once, fills it from the image
 * and installs it with UFFDIO_COPY.  A fault may bring a window of
 * neighbouring pages of the same segment with it (fault-around).  In eager
 * mode the whole image is copied in before the guest runs, for comparison.
 *
 * Statistics are per handler thread, written only by their thread and
 * summed when read, so reading them never stops the faults.
 */
#ifndef KEVD_PAGER_H
#define KEVD_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/types.h"
#include "pager/image.h"
#include "pager/pagestate.h"
#include "common/sandbox.h"

#define KEVD_PAGER_DEFAULT_THREADS 1
#define KEVD_PAGER_DEFAULT_WINDOW 16
#define KEVD_PAGER_DEFAULT_STRIPES 64
#define KEVD_PAGER_MAX_THREADS 64
#define KEVD_PAGER_MAX_WINDOW 512
/* Latency buckets: 0 holds loads under 1 us, bucket k (1..N-2) loads of
 * [2^(k-1), 2^k) us, the last one everything slower. */
#define KEVD_PAGER_HIST_BUCKETS 24
/* Faulting threads tracked individually per handler thread; more are
 * counted in faults_other_threads. */
#define KEVD_PAGER_MAX_TIDS 64

struct kevd_pager;

/* Called once, from a handler thread, for the first page that fails. */
typedef void (*kevd_pager_failure_fn)(void *arg, kevd_gpa_t gpa, const struct kevd_error *err);
/* Called after every load by the loading thread (tests and tracing). */
typedef void (*kevd_pager_load_fn)(void *arg, uint64_t first_gfn, size_t npages);

struct kevd_pager_config {
	unsigned handler_threads;  /* 0 = default */
	unsigned window_pages;     /* fault-around window; 1 = off, 0 = default */
	unsigned stripes;          /* page state hash stripes; 0 = default */
	bool eager;                /* load everything at start, no userfaultfd */
	kevd_pager_failure_fn on_failure;
	kevd_pager_load_fn on_load;
	void *cb_arg;
};

struct kevd_pager_thread_faults {
	pid_t tid;                 /* the faulting thread (UFFD_FEATURE_THREAD_ID) */
	uint64_t faults;
};

struct kevd_pager_stats {
	bool eager;
	unsigned handler_threads, window_pages, stripes;
	uint64_t image_pages;
	uint64_t pages_loaded;         /* pages installed; <= image_pages */
	uint64_t pages_loaded_demand;  /* the faulting page of a load */
	uint64_t pages_loaded_around;  /* brought in by fault-around */
	uint64_t loads;                /* read + UFFDIO_COPY operations */
	uint64_t faults;               /* fault events served */
	uint64_t faults_coalesced;     /* met a page already LOADING or MAPPED */
	uint64_t eexist, eagain;       /* UFFDIO_COPY outcomes */
	uint64_t bytes_read;
	uint64_t load_failures;
	uint64_t pages_failed;
	uint64_t state_entries;        /* page state words allocated */
	int64_t first_fault_ns, last_fault_ns;  /* CLOCK_REALTIME; 0 = none yet */
	uint64_t eager_load_ns;        /* eager mode: time to load the image */
	uint64_t latency_hist[KEVD_PAGER_HIST_BUCKETS];
	uint64_t latency_sum_ns;
	size_t nthreads;
	struct kevd_pager_thread_faults threads[KEVD_PAGER_MAX_TIDS];
	uint64_t faults_other_threads;
};

int kevd_pager_new(struct kevd_image *img, const struct kevd_pager_config *cfg,
		   struct kevd_pager **out, struct kevd_error *err);

/* Declares guest RAM [GPA, GPA+LEN) mapped at HOST (anonymous, private,
 * page aligned).  Lazy mode registers the image-backed part with
 * userfaultfd. */
int kevd_pager_add_memory(struct kevd_pager *p, kevd_gpa_t gpa, void *host, size_t len,
			  struct kevd_error *err);

/* Checks that every image page lies in declared memory, then starts the
 * handler threads (lazy) or copies the image in (eager). */
int kevd_pager_start(struct kevd_pager *p, struct kevd_error *err);

/* Stops and joins the handler threads and closes the userfaultfd, which
 * wakes every thread still waiting on a fault; statistics stay readable.
 * Idempotent. */
void kevd_pager_stop(struct kevd_pager *p);

/* Stops (as above) and frees everything. The image stays the caller's. */
void kevd_pager_free(struct kevd_pager *p);

void kevd_pager_get_stats(struct kevd_pager *p, struct kevd_pager_stats *out);
/* Faults of the faulting thread TID in ST; 0 for tid 0 or a thread not
 * tracked individually. */
uint64_t kevd_pager_stats_thread_faults(const struct kevd_pager_stats *st, pid_t tid);

/* Host address of GPA and its page's state (MAPPED for pages not backed by
 * the image, which are plain memory).  -ENOENT outside declared memory. */
int kevd_pager_translate(struct kevd_pager *p, kevd_gpa_t gpa, void **host,
			 enum kevd_page_state *state, bool *image_backed);

/* What a handler thread may do once it runs (common/sandbox.h). */
extern const struct kevd_sandbox_role kevd_pager_sandbox_role;

/* True once a page failed to load. */
bool kevd_pager_failed(struct kevd_pager *p);

/* Whether UFFDIO_POISON is used for failed pages (so faulting threads get
 * SIGBUS instead of sleeping until they are stopped). */
bool kevd_pager_poisons(const struct kevd_pager *p);

#endif
