/*
 * The lazy pager: serves a guest's first touch of every image-backed page
 * from the kernel's ELF file.  The VMM hands it the host mappings of guest
 * RAM; the pager registers only the image-backed ranges with userfaultfd
 * (the rest of RAM stays plain anonymous memory), and a pool of handler
 * threads reads the fault events, claims each page through its state word
 * (pagestate.h) so that it is read exactly once, and installs it.  A fault
 * brings a window of neighbouring pages of the same segment with it
 * (fault-around), a window that grows while faults are sequential.
 *
 * Two backings:
 *   shared   (a cache given, and the kernel lets it be used): the
 *            image-backed ranges are mapped MAP_PRIVATE from the image
 *            cache's memfd (cache.h); a fault on a hole fills the cache's
 *            pages once for every VM of the image, and filled pages are
 *            mapped by the kernel without a fault to the pager; guest
 *            writes copy the page privately;
 *   private  (lazy-private): every VM reads its own copy and installs it
 *            with UFFDIO_COPY.
 * In eager mode the whole image is copied in before the guest runs.
 *
 * The working set (workingset.c, docs/pager.md "Working set"): a pager
 * either records the pages it loads, in load order, until the guest has
 * run a while, or is given such a list and prefetches it on a thread of
 * its own, in guest-physical order, through the same claims as the faults
 * (which keep being served first).
 *
 * Statistics are per handler thread, written only by their thread and
 * summed when read, so reading them never stops the faults; each is
 * declared once, in KEVD_PAGER_STATS below.
 */
#ifndef KEVD_PAGER_H
#define KEVD_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/types.h"
#include "pager/cache.h"
#include "pager/image.h"
#include "pager/pagestate.h"
#include "common/sandbox.h"

#define KEVD_PAGER_DEFAULT_THREADS 1
#define KEVD_PAGER_DEFAULT_WINDOW 16
#define KEVD_PAGER_DEFAULT_STRIPES 64
#define KEVD_PAGER_MAX_THREADS 64
#define KEVD_PAGER_DEFAULT_WINDOW_MAX 256
#define KEVD_PAGER_MAX_WINDOW 512
/* Window sizes used, by power of two: bucket k counts windows of 2^k pages
 * (1 .. KEVD_PAGER_MAX_WINDOW). */
#define KEVD_PAGER_WINDOW_BUCKETS 10
/* Latency buckets: 0 holds loads under 1 us, bucket k (1..N-2) loads of
 * [2^(k-1), 2^k) us, the last one everything slower. */
#define KEVD_PAGER_HIST_BUCKETS 24
/* Faulting threads tracked individually per handler thread; more are
 * counted in faults_other_threads. */
#define KEVD_PAGER_MAX_TIDS 64
/* Pages per read of the working-set prefetch (1 MiB, the default largest
 * fault-around window): a demand fault that meets a page the prefetch
 * claimed waits for at most one such read, as it may for a fault's. */
#define KEVD_PAGER_PREFETCH_RUN 256
/* Pages at the start of a working set prefetched first, in their order:
 * those a recording loaded first. */
#define KEVD_PAGER_PREFETCH_HEAD 512
/* A working-set entry's flag beside its GFN: the recorded guest wrote the
 * page (shared backing: its copy had become private when the recording
 * ended).  A shared prefetch maps such a page writable, as the guest's
 * own copy, before the guest needs it. */
#define KEVD_PAGER_WS_WRITTEN (1ull << 63)
/* A statistic that cannot be measured here (JSON null, NaN in /metrics). */
#define KEVD_PAGER_UNMEASURED UINT64_MAX

/* What a pager does with the working set. */
enum kevd_pager_working_set {
	KEVD_PAGER_WS_NONE,
	KEVD_PAGER_WS_RECORDING,   /* recording the pages it loads */
	KEVD_PAGER_WS_RECORDED,    /* the recording has ended */
	KEVD_PAGER_WS_PREFETCHED,  /* given a list to prefetch */
};
const char *kevd_pager_working_set_name(enum kevd_pager_working_set ws);

struct kevd_pager;

/* Called once, from a handler thread, for the first page that fails. */
typedef void (*kevd_pager_failure_fn)(void *arg, kevd_gpa_t gpa, const struct kevd_error *err);
/* Called after every load by the loading thread (tests and tracing). */
typedef void (*kevd_pager_load_fn)(void *arg, uint64_t first_gfn, size_t npages);

struct kevd_pager_config {
	unsigned handler_threads;  /* 0 = default */
	unsigned window_pages;     /* first fault-around window; 1 = off, 0 = default */
	unsigned window_max_pages; /* the window grows up to this; 0 = default (at least window_pages) */
	unsigned stripes;          /* page state hash stripes; 0 = default */
	bool eager;                /* load everything at start, no userfaultfd */
	unsigned prefetch_nice;    /* nice of the working-set thread (the guest's: below the handler threads) */
	struct kevd_imagecache *cache;  /* lazy: share the image through it; NULL = private backing */
	kevd_pager_failure_fn on_failure;
	kevd_pager_load_fn on_load;
	void *cb_arg;
};

struct kevd_pager_thread_faults {
	pid_t tid;                 /* the faulting thread (UFFD_FEATURE_THREAD_ID) */
	uint64_t faults;
};

/*
 * Every scalar of struct kevd_pager_stats, declared once.  One row is
 *
 *   X(field, how, json, metric, type, help)
 *
 *   field   the member of struct kevd_pager_stats (and of a handler thread's
 *           counters, for the per-thread kinds)
 *   how     how kevd_pager_get_stats() fills it:
 *             SUM       a per-thread counter, added up over the handler threads
 *             EARLIEST  a per-thread CLOCK_MONOTONIC stamp (0 = none yet); the
 *                       earliest one, as CLOCK_REALTIME ns
 *             LATEST    the same, the latest one
 *             PAGER     no per-thread part: set by hand in kevd_pager_get_stats()
 *                       from the pager, its image or its page-state table
 *             SETUP     the same, an unsigned piece of the configuration
 *             MEASURED  as PAGER, but KEVD_PAGER_UNMEASURED when this pager
 *                       cannot tell (JSON null, NaN in /metrics)
 *   json    its key in kevd_json_pager_stats() (EARLIEST/LATEST: null when 0)
 *   metric  its per-VM Prometheus metric (label vm), or NULL for none
 *   type    COUNTER or GAUGE: what the value is, exported or not
 *   help    its Prometheus HELP text, and its documentation here
 *
 * The order is that of the JSON object (the Prometheus families follow it).
 * Adding a per-thread counter takes one SUM row and its increment in
 * pager.c; the struct members, the sum, the JSON key and the metric follow.
 * The parts that are not one number (mode, latency histogram, faulting
 * threads, pages loaded by cause as labels) are written out by hand.
 */
#define KEVD_PAGER_STATS(X) \
	X(handler_threads, SETUP, "handler_threads", NULL, GAUGE, \
	  "Handler threads serving the userfaultfd (0 in eager mode).") \
	X(window_pages, SETUP, "window_pages", NULL, GAUGE, "First fault-around window, in pages.") \
	X(window_max_pages, SETUP, "window_max_pages", NULL, GAUGE, \
	  "Largest fault-around window, reached by doubling while faults are sequential.") \
	X(stripes, SETUP, "stripes", NULL, GAUGE, "Lock stripes of the page-state table.") \
	X(image_pages, PAGER, "image_pages", "kevd_vm_image_pages", GAUGE, \
	  "Guest pages backed by the VM's kernel image.") \
	X(pages_loaded, PAGER, "pages_loaded", NULL, COUNTER, \
	  "Image pages installed: pages_loaded_demand + pages_loaded_around + pages_prefetched, at most image_pages.") \
	X(pages_loaded_demand, SUM, "pages_loaded_demand", NULL, COUNTER, \
	  "The faulting page of a load, when installed (exported by hand, cause=\"demand\").") \
	X(pages_loaded_around, SUM, "pages_loaded_around", NULL, COUNTER, \
	  "Neighbours installed with a faulting page, or after it as its read-ahead (exported by hand, cause=\"fault_around\").") \
	X(loads, SUM, "loads", "kevd_vm_pager_loads_total", COUNTER, \
	  "Load operations: one read of a run of pages and its install (UFFDIO_COPY, or a write into the shared cache).") \
	X(readaheads, SUM, "readaheads", "kevd_vm_pager_readaheads_total", COUNTER, \
	  "Reads of the rest of a growing window after its fault was woken, each of up to 4 x window_pages pages (their pages count in pages_loaded_around).") \
	X(readahead_failures, SUM, "readahead_failures", NULL, COUNTER, \
	  "Read-aheads that failed (their pages are given back, UNLOADED, for a fault to load; the VM goes on).") \
	X(window_retries, SUM, "window_retries", NULL, COUNTER, \
	  "Reads of the half of a fault-around window with the faulting page, after a read of the window failed (the other half given back, UNLOADED).") \
	X(faults, SUM, "faults", "kevd_vm_pager_faults_total", COUNTER, \
	  "Page faults on image pages served by the pager.") \
	X(faults_coalesced, SUM, "faults_coalesced", "kevd_vm_pager_faults_coalesced_total", COUNTER, \
	  "Faults that met a page already loading or loaded (served by another fault's load).") \
	X(eexist, SUM, "eexist", "kevd_vm_pager_eexist_total", COUNTER, \
	  "UFFDIO_COPY that found a page already present.") \
	X(eagain, SUM, "eagain", "kevd_vm_pager_eagain_total", COUNTER, "UFFDIO_COPY retried after EAGAIN.") \
	X(bytes_read, SUM, "bytes_read", "kevd_vm_pager_read_bytes_total", COUNTER, \
	  "Bytes this VM read from the kernel image.") \
	X(load_failures, SUM, "load_failures", "kevd_vm_pager_load_failures_total", COUNTER, \
	  "Loads that failed (the VM fails with them).") \
	X(pages_failed, SUM, "pages_failed", NULL, COUNTER, "Pages of the failed loads, published FAILED.") \
	X(faults_unserved, SUM, "faults_unserved", "kevd_vm_pager_faults_unserved_total", COUNTER, \
	  "Faults the pager could not serve: no memory for the page's state (the VM fails with them).") \
	X(state_entries, PAGER, "state_entries", NULL, GAUGE, "Page-state words allocated.") \
	X(first_fault_ns, EARLIEST, "first_fault_ns", NULL, GAUGE, \
	  "CLOCK_REALTIME ns of the first fault; 0 (JSON null) before any.") \
	X(last_fault_ns, LATEST, "last_fault_ns", NULL, GAUGE, \
	  "CLOCK_REALTIME ns of the latest fault; 0 (JSON null) before any.") \
	X(eager_load_ns, PAGER, "eager_load_ns", NULL, GAUGE, "Eager mode: ns it took to load the image.") \
	X(latency_sum_ns, SUM, "latency_sum_ns", NULL, COUNTER, \
	  "Sum of the load latencies in ns (the histogram's sum).") \
	X(faults_other_threads, SUM, "faults_other_threads", NULL, COUNTER, \
	  "Faults of threads beyond the KEVD_PAGER_MAX_TIDS counted one by one.") \
	X(working_set_pages, PAGER, "working_set_pages", NULL, GAUGE, \
	  "Pages of the working set: listed for the prefetch, or recorded so far.") \
	X(pages_prefetched, SUM, "pages_prefetched", NULL, COUNTER, \
	  "Working-set pages the prefetch loaded itself, not those a fault or another VM had (exported by hand, cause=\"prefetch\").") \
	X(prefetch_loads, SUM, "prefetch_loads", NULL, COUNTER, \
	  "Reads of the prefetch, each of up to KEVD_PAGER_PREFETCH_RUN pages.") \
	X(prefetch_failures, SUM, "prefetch_failures", NULL, COUNTER, \
	  "Prefetch reads that failed (their pages are published FAILED and the VM fails, as on a fault).") \
	X(pages_premapped, SUM, "pages_premapped", "kevd_vm_pager_pages_premapped_total", COUNTER, \
	  "Working-set pages the recorded guest wrote that the prefetch mapped writable into this VM (shared backing only).") \
	X(prefetch_hits, MEASURED, "prefetch_hits", "kevd_vm_pager_prefetch_hits", GAUGE, \
	  "Prefetched pages, not premapped, the guest has touched since (mapped in its page tables; shared backing only).") \
	X(prefetch_unused, MEASURED, "prefetch_unused", "kevd_vm_pager_prefetch_unused", GAUGE, \
	  "Prefetched pages, not premapped, the guest has not touched (yet).") \
	X(prefetch_misses, SUM, "prefetch_misses", "kevd_vm_pager_prefetch_misses_total", COUNTER, \
	  "Faults on pages the working set does not list (0 without a prefetch).") \
	X(prefetch_ns, PAGER, "prefetch_ns", NULL, GAUGE, \
	  "ns the prefetch pass took; 0 while it runs, or without one.")

/* The C type of a member, by how it is filled. */
#define KEVD_PAGER_STAT_TYPE_SUM uint64_t
#define KEVD_PAGER_STAT_TYPE_EARLIEST int64_t
#define KEVD_PAGER_STAT_TYPE_LATEST int64_t
#define KEVD_PAGER_STAT_TYPE_PAGER uint64_t
#define KEVD_PAGER_STAT_TYPE_SETUP unsigned
#define KEVD_PAGER_STAT_TYPE_MEASURED uint64_t
#define KEVD_PAGER_STAT_MEMBER(field, how, json, metric, type, help) KEVD_PAGER_STAT_TYPE_##how field;

struct kevd_pager_stats {
	bool eager;
	bool shared;               /* lazy and backed by the image cache */
	enum kevd_pager_working_set working_set;
	KEVD_PAGER_STATS(KEVD_PAGER_STAT_MEMBER)
	uint64_t latency_hist[KEVD_PAGER_HIST_BUCKETS];
	uint64_t window_hist[KEVD_PAGER_WINDOW_BUCKETS];
	size_t nthreads;
	struct kevd_pager_thread_faults threads[KEVD_PAGER_MAX_TIDS];
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

/* Waits, up to TIMEOUT_MS, until no handler thread is serving a fault or
 * reading ahead, and drops the read-ahead queued so far: once the
 * faulting threads are parked out of the guest, nothing is then half
 * loaded and nothing more is read until the next fault (a pause, a
 * snapshot).  -ETIMEDOUT if one still is. */
int kevd_pager_quiesce(struct kevd_pager *p, int timeout_ms);

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

/* ---- the working set (workingset.c) ---- */

/* The pages one pager loaded while it recorded, in load order, each once:
 * a reference counted object, so that its owner may keep it beyond the
 * pager's life and read it from any thread. */
struct kevd_pager_recording;

/* Before start, not in eager mode: records every page this pager loads
 * (the runs faults load, in load order) until the guest has run RECORD_MS
 * ms, counted from *RUN_START_NS (the owner's CLOCK_MONOTONIC ns of the
 * guest's first instruction, 0 until then, read atomically), until
 * kevd_pager_record_end() or until the pager stops.  Shared, pages the
 * guest mapped from the cache without a fault (another VM had loaded
 * them) are added, in guest-physical order, when the recording ends, and
 * every page the guest's copy of which is private then (it wrote it) is
 * flagged KEVD_PAGER_WS_WRITTEN.  *OUT gets a reference. */
int kevd_pager_record(struct kevd_pager *p, unsigned record_ms, const uint64_t *run_start_ns,
		      struct kevd_pager_recording **out, struct kevd_error *err);
/* Ends the recording now (a pause); nothing if there is none. */
void kevd_pager_record_end(struct kevd_pager *p);
/* Whether the recording has ended: its list no longer changes. */
bool kevd_pager_recording_ended(struct kevd_pager_recording *r);
/* A copy of the list (malloc'd; NULL and 0 when empty); -ENOMEM. */
int kevd_pager_recording_pages(struct kevd_pager_recording *r, uint64_t **gfns, size_t *n);
void kevd_pager_recording_unref(struct kevd_pager_recording *r);

/* Before start, not in eager mode nor beside a recording: the working set
 * GFNS, in the order a recording loaded them (repeats allowed; pages that
 * are not the image's are left out).  kevd_pager_start() starts a thread
 * that loads its first KEVD_PAGER_PREFETCH_HEAD pages in that order, then
 * all of it in guest-physical order from after the last of those, wrapping
 * around (a fault on a listed page moves it on to where the fault's load
 * ended), in runs of consecutive pages KEVD_PAGER_PREFETCH_RUN at a time.
 * It claims each page as a fault does: a page a fault (or, shared, another
 * VM) loaded first is skipped, and a fault that meets a page the prefetch
 * claimed waits for that one read.  Shared, once the list is read, the
 * listed pages flagged KEVD_PAGER_WS_WRITTEN that the guest has not mapped
 * yet are mapped writable into this VM's view (a private copy,
 * MADV_POPULATE_WRITE), whoever filled them: the guest's first touch
 * takes one EPT violation instead of two (map, then copy on its write).
 * Copies GFNS. */
int kevd_pager_prefetch(struct kevd_pager *p, const uint64_t *gfns, size_t n, struct kevd_error *err);

/* What a handler thread may do once it runs (common/sandbox.h). */
extern const struct kevd_sandbox_role kevd_pager_sandbox_role;

/* Image pages present in this VM's memory now (MAPPED), and how many of
 * them are this VM's own copy (PRIVATE: loaded privately, or written by
 * the guest over a shared page), from /proc/self/pagemap: a walk over the
 * image's pages, so for an inspection, not for every scrape. */
int kevd_pager_residency(struct kevd_pager *p, uint64_t *mapped, uint64_t *private_pages, struct kevd_error *err);

/* Whether the pager shares the image through the cache (it may have been
 * given one and fallen back to private pages). */
bool kevd_pager_shared(const struct kevd_pager *p);

/* True once a page failed to load. */
bool kevd_pager_failed(struct kevd_pager *p);

/* Whether UFFDIO_POISON is used for failed pages (so faulting threads get
 * SIGBUS instead of sleeping until they are stopped). */
bool kevd_pager_poisons(const struct kevd_pager *p);

#endif
