/*
 * Prometheus metrics (see metrics.h).  Counters are cumulative for the
 * life of a VM (the pager's counters never reset); a deleted VM's series
 * end with it.  Latency buckets are the pager's power-of-two microsecond
 * buckets, exposed in seconds.
 *
 * A scrape reads each VM's pager summary once (struct scrape) and renders
 * every family from it, the vCPUs' included, so the families agree with
 * each other and the pager is summed once per VM however many vCPUs it has.
 *
 * The text is appended to a growing buffer by hand (struct text), not
 * printed: with 50 VMs a scrape is some 2700 lines, and fprintf() into a
 * memstream spent two thirds of the scrape's CPU parsing formats and
 * converting the buckets' bounds from double on every line (perf, this
 * host).  Integers are converted here, the bounds once per scrape, and
 * printf-style formatting is kept for the few lines a scrape has once.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/metrics.h"
#include "api/registry.h"
#include "api/scrapes.h"
#include "common/fault.h"
#include "vmm/bootgate.h"

/* The scrape's text: grown as needed; after a failed allocation it takes
 * nothing more and the scrape fails (-ENOMEM). */
struct text {
	char *p;      /* owned */
	size_t len, cap;
	bool failed;
};

/* Room for N more bytes and a NUL. */
static bool room(struct text *t, size_t n)
{
	size_t cap;
	char *p;

	if (t->failed)
		return false;
	if (t->len + n < t->cap)
		return true;
	for (cap = t->cap ? t->cap : 64 * 1024; cap <= t->len + n; cap *= 2)
		;
	p = realloc(t->p, cap);
	if (!p) {
		t->failed = true;
		return false;
	}
	t->p = p;
	t->cap = cap;
	return true;
}

static void putn(struct text *t, const char *s, size_t n)
{
	if (!room(t, n))
		return;
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void put(struct text *t, const char *s)
{
	putn(t, s, strlen(s));
}

static void put_u64(struct text *t, uint64_t v)
{
	char d[20];
	size_t i = sizeof(d);

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10));
	putn(t, d + i, sizeof(d) - i);
}

/* NS nanoseconds as seconds, exactly ("1.000000123"). */
static void put_seconds(struct text *t, uint64_t ns)
{
	char frac[10];

	put_u64(t, ns / 1000000000u);
	frac[0] = '.';
	for (int i = 9; i >= 1; i--, ns /= 10)
		frac[i] = (char)('0' + ns % 10);
	putn(t, frac, sizeof(frac));
}

__attribute__((format(printf, 2, 3))) static void putf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !room(t, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

/* "NAME{vm=\"VM\"": the start of a per-VM series. */
static void series(struct text *t, const char *name, const char *vm)
{
	put(t, name);
	putn(t, "{vm=\"", 5);
	put(t, vm);
	putn(t, "\"", 1);
}

/* "} V\n": the end of a series. */
static void value(struct text *t, uint64_t v)
{
	putn(t, "} ", 2);
	put_u64(t, v);
	putn(t, "\n", 1);
}

/* Label values are VM names ([A-Za-z0-9._-]) and fixed words, which need
 * no escaping, and image paths (the name a VM was created with, relative
 * to the image directory), which are escaped. */

struct scrape {
	struct text *t;
	struct kevd_registry_vm *vms;   /* owned */
	size_t nvms;
	struct kevd_pager_stats *st;    /* owned: one summary per VM */
	struct kevd_cached_image_info *images;  /* owned: the shared images */
	size_t nimages;
};

/* The pager's scalars with a metric name (KEVD_PAGER_STATS), each one
 * family with one series per VM.  A reader per row keeps the member's own
 * type out of the loop below. */
struct pager_scalar {
	const char *metric, *type, *help;
	uint64_t (*value)(const struct kevd_pager_stats *st);
};

#define PROM_COUNTER "counter"
#define PROM_GAUGE "gauge"
#define SCALAR_READER(field, how, json, metric, type, text) \
	static uint64_t value_##field(const struct kevd_pager_stats *st) { return (uint64_t)st->field; }
#define SCALAR_ROW(field, how, json, metric, type, text) { metric, PROM_##type, text, value_##field },

KEVD_PAGER_STATS(SCALAR_READER)
static const struct pager_scalar pager_scalars[] = { KEVD_PAGER_STATS(SCALAR_ROW) };

static void help(struct text *t, const char *name, const char *type, const char *text)
{
	put(t, "# HELP ");
	put(t, name);
	putn(t, " ", 1);
	put(t, text);
	put(t, "\n# TYPE ");
	put(t, name);
	putn(t, " ", 1);
	put(t, type);
	putn(t, "\n", 1);
}

static void render_daemon(const struct scrape *s)
{
	static const enum kevd_vm_state states[] = { KEVD_VM_CREATED, KEVD_VM_RUNNING, KEVD_VM_PAUSED, KEVD_VM_EXITED,
						     KEVD_VM_CRASHED, KEVD_VM_FAILED, KEVD_VM_STOPPED };

	help(s->t, "kevd_build_info", "gauge", "kevd's version; always 1.");
	put(s->t, "kevd_build_info{version=\"" PACKAGE_VERSION "\"} 1\n");
	help(s->t, "kevd_vms", "gauge", "VMs held by the daemon, by state.");
	for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++) {
		unsigned n = 0;

		for (size_t i = 0; i < s->nvms; i++)
			n += kevd_vm_state(s->vms[i].vm) == states[k];
		put(s->t, "kevd_vms{state=\"");
		put(s->t, kevd_vm_state_name(states[k]));
		putn(s->t, "\"", 1);
		value(s->t, n);
	}
}

static void render_pager_scalars(const struct scrape *s)
{
	for (size_t m = 0; m < sizeof(pager_scalars) / sizeof(pager_scalars[0]); m++) {
		const struct pager_scalar *ps = &pager_scalars[m];

		if (!ps->metric)
			continue;
		help(s->t, ps->metric, ps->type, ps->help);
		for (size_t i = 0; i < s->nvms; i++) {
			uint64_t v = ps->value(&s->st[i]);

			series(s->t, ps->metric, s->vms[i].name);
			/* Only a MEASURED row's value can be that: not measurable here. */
			if (v == KEVD_PAGER_UNMEASURED)
				put(s->t, "} NaN\n");
			else
				value(s->t, v);
		}
	}
}

static void render_pages_loaded(const struct scrape *s)
{
	static const char name[] = "kevd_vm_pager_pages_loaded_total";

	help(s->t, name, "counter",
	     "Image pages installed, by cause: the faulting page (demand), its neighbours (fault_around) or the working-set prefetch (prefetch).");
	for (size_t i = 0; i < s->nvms; i++) {
		series(s->t, name, s->vms[i].name);
		put(s->t, ",cause=\"demand\"");
		value(s->t, s->st[i].pages_loaded_demand);
		series(s->t, name, s->vms[i].name);
		put(s->t, ",cause=\"fault_around\"");
		value(s->t, s->st[i].pages_loaded_around);
		series(s->t, name, s->vms[i].name);
		put(s->t, ",cause=\"prefetch\"");
		value(s->t, s->st[i].pages_prefetched);
	}
}

static void render_latency(const struct scrape *s)
{
	static const char bucket[] = "kevd_vm_pager_load_duration_seconds_bucket";
	/* ",le=\"BOUND\"" of each bucket but the last: 2^b microseconds. */
	char le[KEVD_PAGER_HIST_BUCKETS - 1][32];

	for (int b = 0; b < KEVD_PAGER_HIST_BUCKETS - 1; b++)
		snprintf(le[b], sizeof(le[b]), ",le=\"%.7g\"", (double)(1ull << b) * 1e-6);
	help(s->t, "kevd_vm_pager_load_duration_seconds", "histogram",
	     "Time from reading a fault event to the page installed, per load.");
	for (size_t i = 0; i < s->nvms; i++) {
		const char *vm = s->vms[i].name;
		const struct kevd_pager_stats *st = &s->st[i];
		uint64_t cum = 0;

		for (int b = 0; b < KEVD_PAGER_HIST_BUCKETS - 1; b++) {
			cum += st->latency_hist[b];
			series(s->t, bucket, vm);
			put(s->t, le[b]);
			value(s->t, cum);
		}
		cum += st->latency_hist[KEVD_PAGER_HIST_BUCKETS - 1];
		series(s->t, bucket, vm);
		put(s->t, ",le=\"+Inf\"");
		value(s->t, cum);
		series(s->t, "kevd_vm_pager_load_duration_seconds_sum", vm);
		putn(s->t, "} ", 2);
		put_seconds(s->t, st->latency_sum_ns);
		putn(s->t, "\n", 1);
		series(s->t, "kevd_vm_pager_load_duration_seconds_count", vm);
		value(s->t, cum);
	}
}

/* "NAME{vm=\"VM\",vcpu=\"V\"": the start of a per-vCPU series. */
static void vcpu_series(struct text *t, const char *name, const char *vm, unsigned v)
{
	series(t, name, vm);
	put(t, ",vcpu=\"");
	put_u64(t, v);
	putn(t, "\"", 1);
}

static void render_vcpus(const struct scrape *s)
{
	struct kevd_vcpu_info vi;

	help(s->t, "kevd_vm_vcpu_page_faults_total", "counter", "Pager faults taken by each vCPU.");
	for (size_t i = 0; i < s->nvms; i++)
		for (unsigned v = 0; v < kevd_vm_vcpu_count(s->vms[i].vm); v++) {
			kevd_vm_vcpu_info_from(s->vms[i].vm, v, &s->st[i], &vi);
			vcpu_series(s->t, "kevd_vm_vcpu_page_faults_total", s->vms[i].name, v);
			value(s->t, vi.pager_faults);
		}
	help(s->t, "kevd_vm_vcpu_exits_total", "counter", "Exits of each vCPU to kevd, by reason.");
	for (size_t i = 0; i < s->nvms; i++)
		for (unsigned v = 0; v < kevd_vm_vcpu_count(s->vms[i].vm); v++) {
			kevd_vm_vcpu_info_from(s->vms[i].vm, v, &s->st[i], &vi);
			for (int k = 0; k < KEVD_EXIT_KINDS; k++) {
				vcpu_series(s->t, "kevd_vm_vcpu_exits_total", s->vms[i].name, v);
				put(s->t, ",reason=\"");
				put(s->t, kevd_exit_kind_name((enum kevd_exit_kind)k));
				putn(s->t, "\"", 1);
				value(s->t, vi.exits[k]);
			}
		}
}

/* A label value in the text format: backslash, quote and newline escaped. */
static void label_value(struct text *t, const char *v)
{
	for (; *v; v++) {
		if (*v == '\n')
			putn(t, "\\n", 2);
		else if (*v == '\\' || *v == '"')
			putn(t, (const char[]){ '\\', *v }, 2);
		else
			putn(t, v, 1);
	}
}

/* "NAME{id=\"ID\",image=\"PATH\"": the start of a per-image series. */
static void image_series(struct text *t, const char *name, const struct kevd_cached_image_info *in)
{
	put(t, name);
	put(t, "{id=\"");
	put(t, in->id);
	put(t, "\",image=\"");
	label_value(t, in->path);
	putn(t, "\"", 1);
}

/* The shared images, one series per entry (id: a digest of the file's
 * identity; image: its path). */
static void render_images(const struct scrape *s)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} fam[] = {
		{ "kevd_image_pages", "gauge", "Guest pages backed by the shared image.",
		  offsetof(struct kevd_cached_image_info, image_pages) },
		{ "kevd_image_pages_filled_total", "counter", "Pages of the shared image read from its file (each once).",
		  offsetof(struct kevd_cached_image_info, pages_filled) },
		{ "kevd_image_read_bytes_total", "counter", "Bytes read from the shared image's file.",
		  offsetof(struct kevd_cached_image_info, bytes_read) },
		{ "kevd_image_fill_failures_total", "counter", "Reads of the shared image that failed.",
		  offsetof(struct kevd_cached_image_info, fill_failures) },
		{ "kevd_image_resident_bytes", "gauge", "Memory the shared image holds.",
		  offsetof(struct kevd_cached_image_info, resident_bytes) },
	};

	for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		help(s->t, fam[k].name, fam[k].type, fam[k].help);
		for (size_t i = 0; i < s->nimages; i++) {
			image_series(s->t, fam[k].name, &s->images[i]);
			value(s->t, *(const uint64_t *)((const char *)&s->images[i] + fam[k].off));
		}
	}
	help(s->t, "kevd_image_vms", "gauge", "VMs using the shared image.");
	for (size_t i = 0; i < s->nimages; i++) {
		image_series(s->t, "kevd_image_vms", &s->images[i]);
		value(s->t, s->images[i].vms);
	}
}

static void render_boot_slots(struct text *t, struct kevd_bootgate *gate)
{
	struct kevd_bootgate_stats st;

	kevd_bootgate_stats(gate, &st);
	help(t, "kevd_boot_slots", "gauge", "VMs let into their first moments at once ([limits] boot_slots_per_cpu times the CPUs); 0: no limit.");
	putf(t, "kevd_boot_slots %u\n", st.slots);
	help(t, "kevd_boot_slot_lease_seconds", "gauge", "How long a boot slot is held at most ([limits] boot_slot_ms).");
	putf(t, "kevd_boot_slot_lease_seconds %.3f\n", st.lease_ms / 1e3);
	help(t, "kevd_boot_slots_busy", "gauge", "Boot slots held now.");
	putf(t, "kevd_boot_slots_busy %u\n", st.busy);
	help(t, "kevd_boot_slot_queue", "gauge", "VMs waiting in line for a boot slot now.");
	putf(t, "kevd_boot_slot_queue %u\n", st.waiting);
	help(t, "kevd_boot_slot_waits_total", "counter", "VMs that had to wait for a boot slot.");
	putf(t, "kevd_boot_slot_waits_total %" PRIu64 "\n", st.waited);
	help(t, "kevd_boot_slot_wait_seconds_total", "counter", "Time those VMs waited, in all.");
	put(t, "kevd_boot_slot_wait_seconds_total ");
	put_seconds(t, st.wait_ns);
	putn(t, "\n", 1);
	help(t, "kevd_boot_slot_expired_total", "counter", "Boot slots that ran out ([limits] boot_slot_ms) before their guest idled or ended.");
	putf(t, "kevd_boot_slot_expired_total %" PRIu64 "\n", st.expired);
}

static void render_scrapes(struct text *t, const struct kevd_scrapes *scrapes)
{
	struct kevd_scrapes_stats st;

	kevd_scrapes_stats(scrapes, &st);
	help(t, "kevd_metrics_renders_total", "counter", "Renders of /metrics; scrapes that arrive in the same turn of the event loop share one.");
	put(t, "kevd_metrics_renders_total ");
	put_u64(t, st.renders);
	put(t, "\n");
}

static void render_requests(struct text *t, const struct kevd_http *http)
{
	size_t n;
	const struct kevd_http_count *req = kevd_http_counts(http, &n);

	help(t, "kevd_api_requests_total", "counter", "API requests answered, by method and status code.");
	for (size_t i = 0; i < n; i++)
		putf(t, "kevd_api_requests_total{method=\"%s\",code=\"%d\"} %" PRIu64 "\n", req[i].method, req[i].code,
		     req[i].count);
}

int kevd_metrics_render(const struct kevd_metrics_sources *src, char **text, size_t *len)
{
	struct text t = { 0 };
	struct scrape s = { .t = &t };

	s.vms = kevd_registry_list(src->reg, &s.nvms);
	s.st = calloc(s.nvms ? s.nvms : 1, sizeof(*s.st));
	s.images = src->images ? kevd_imagecache_snapshot(src->images, &s.nimages) : calloc(1, sizeof(*s.images));
	/* metrics_render: the scrape runs out of memory. */
	if (s.vms && s.st && s.images && !kevd_fault("metrics_render")) {
		for (size_t i = 0; i < s.nvms; i++)
			kevd_vm_pager_stats(s.vms[i].vm, &s.st[i]);
		render_daemon(&s);
		render_pager_scalars(&s);
		render_pages_loaded(&s);
		render_latency(&s);
		render_vcpus(&s);
		render_images(&s);
		if (src->gate)
			render_boot_slots(&t, src->gate);
		if (src->scrapes)
			render_scrapes(&t, src->scrapes);
		render_requests(&t, src->http);
	} else {
		t.failed = true;
	}
	free(s.vms);
	free(s.st);
	kevd_imagecache_snapshot_free(s.images, s.nimages);
	if (t.failed || !t.p) {
		free(t.p);
		*text = NULL;
		*len = 0;
		return -ENOMEM;
	}
	*text = t.p;
	*len = t.len;
	return 0;
}
