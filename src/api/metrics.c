/*
 * Prometheus metrics (see metrics.h).  Counters are cumulative for the
 * life of a VM (the pager's counters never reset); a deleted VM's series
 * end with it.  Latency buckets are the pager's power-of-two microsecond
 * buckets, exposed in seconds.
 *
 * A scrape reads each VM's pager summary once (struct scrape) and renders
 * every family from it, the vCPUs' included, so the families agree with
 * each other and the pager is summed once per VM however many vCPUs it has.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/http.h"
#include "api/metrics.h"
#include "api/registry.h"
#include "vmm/bootgate.h"

/* Label values are VM names ([A-Za-z0-9._-]) and fixed words, which need
 * no escaping, and image paths (the name a VM was created with, relative
 * to the image directory), which are escaped. */

struct scrape {
	FILE *f;
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

static void help(FILE *f, const char *name, const char *type, const char *text)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void render_daemon(const struct scrape *s)
{
	static const enum kevd_vm_state states[] = { KEVD_VM_CREATED, KEVD_VM_RUNNING, KEVD_VM_PAUSED, KEVD_VM_EXITED,
						     KEVD_VM_CRASHED, KEVD_VM_FAILED, KEVD_VM_STOPPED };

	help(s->f, "kevd_build_info", "gauge", "kevd's version; always 1.");
	fprintf(s->f, "kevd_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	help(s->f, "kevd_vms", "gauge", "VMs held by the daemon, by state.");
	for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++) {
		unsigned n = 0;

		for (size_t i = 0; i < s->nvms; i++)
			n += kevd_vm_state(s->vms[i].vm) == states[k];
		fprintf(s->f, "kevd_vms{state=\"%s\"} %u\n", kevd_vm_state_name(states[k]), n);
	}
}

static void render_pager_scalars(const struct scrape *s)
{
	for (size_t m = 0; m < sizeof(pager_scalars) / sizeof(pager_scalars[0]); m++) {
		const struct pager_scalar *ps = &pager_scalars[m];

		if (!ps->metric)
			continue;
		help(s->f, ps->metric, ps->type, ps->help);
		for (size_t i = 0; i < s->nvms; i++) {
			uint64_t v = ps->value(&s->st[i]);

			/* Only a MEASURED row's value can be that: not measurable here. */
			if (v == KEVD_PAGER_UNMEASURED)
				fprintf(s->f, "%s{vm=\"%s\"} NaN\n", ps->metric, s->vms[i].name);
			else
				fprintf(s->f, "%s{vm=\"%s\"} %" PRIu64 "\n", ps->metric, s->vms[i].name, v);
		}
	}
}

static void render_pages_loaded(const struct scrape *s)
{
	help(s->f, "kevd_vm_pager_pages_loaded_total", "counter",
	     "Image pages installed, by cause: the faulting page (demand), its neighbours (fault_around) or the working-set prefetch (prefetch).");
	for (size_t i = 0; i < s->nvms; i++) {
		fprintf(s->f, "kevd_vm_pager_pages_loaded_total{vm=\"%s\",cause=\"demand\"} %" PRIu64 "\n",
			s->vms[i].name, s->st[i].pages_loaded_demand);
		fprintf(s->f, "kevd_vm_pager_pages_loaded_total{vm=\"%s\",cause=\"fault_around\"} %" PRIu64 "\n",
			s->vms[i].name, s->st[i].pages_loaded_around);
		fprintf(s->f, "kevd_vm_pager_pages_loaded_total{vm=\"%s\",cause=\"prefetch\"} %" PRIu64 "\n",
			s->vms[i].name, s->st[i].pages_prefetched);
	}
}

static void render_latency(const struct scrape *s)
{
	help(s->f, "kevd_vm_pager_load_duration_seconds", "histogram",
	     "Time from reading a fault event to the page installed, per load.");
	for (size_t i = 0; i < s->nvms; i++) {
		const char *vm = s->vms[i].name;
		const struct kevd_pager_stats *st = &s->st[i];
		uint64_t cum = 0;

		for (int b = 0; b < KEVD_PAGER_HIST_BUCKETS - 1; b++) {
			cum += st->latency_hist[b];
			fprintf(s->f, "kevd_vm_pager_load_duration_seconds_bucket{vm=\"%s\",le=\"%.7g\"} %" PRIu64 "\n",
				vm, (double)(1ull << b) * 1e-6, cum);
		}
		cum += st->latency_hist[KEVD_PAGER_HIST_BUCKETS - 1];
		fprintf(s->f, "kevd_vm_pager_load_duration_seconds_bucket{vm=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", vm, cum);
		fprintf(s->f, "kevd_vm_pager_load_duration_seconds_sum{vm=\"%s\"} %.9f\n", vm,
			(double)st->latency_sum_ns * 1e-9);
		fprintf(s->f, "kevd_vm_pager_load_duration_seconds_count{vm=\"%s\"} %" PRIu64 "\n", vm, cum);
	}
}

static void render_vcpus(const struct scrape *s)
{
	struct kevd_vcpu_info vi;

	help(s->f, "kevd_vm_vcpu_page_faults_total", "counter", "Pager faults taken by each vCPU.");
	for (size_t i = 0; i < s->nvms; i++)
		for (unsigned v = 0; v < kevd_vm_vcpu_count(s->vms[i].vm); v++) {
			kevd_vm_vcpu_info_from(s->vms[i].vm, v, &s->st[i], &vi);
			fprintf(s->f, "kevd_vm_vcpu_page_faults_total{vm=\"%s\",vcpu=\"%u\"} %" PRIu64 "\n",
				s->vms[i].name, v, vi.pager_faults);
		}
	help(s->f, "kevd_vm_vcpu_exits_total", "counter", "Exits of each vCPU to kevd, by reason.");
	for (size_t i = 0; i < s->nvms; i++)
		for (unsigned v = 0; v < kevd_vm_vcpu_count(s->vms[i].vm); v++) {
			kevd_vm_vcpu_info_from(s->vms[i].vm, v, &s->st[i], &vi);
			for (int k = 0; k < KEVD_EXIT_KINDS; k++)
				fprintf(s->f, "kevd_vm_vcpu_exits_total{vm=\"%s\",vcpu=\"%u\",reason=\"%s\"} %" PRIu64 "\n",
					s->vms[i].name, v, kevd_exit_kind_name((enum kevd_exit_kind)k), vi.exits[k]);
		}
}

/* A label value in the text format: backslash, quote and newline escaped. */
static void label_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
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
		help(s->f, fam[k].name, fam[k].type, fam[k].help);
		for (size_t i = 0; i < s->nimages; i++) {
			fprintf(s->f, "%s{id=\"%s\",image=\"", fam[k].name, s->images[i].id);
			label_value(s->f, s->images[i].path);
			fprintf(s->f, "\"} %" PRIu64 "\n", *(const uint64_t *)((const char *)&s->images[i] + fam[k].off));
		}
	}
	help(s->f, "kevd_image_vms", "gauge", "VMs using the shared image.");
	for (size_t i = 0; i < s->nimages; i++) {
		fprintf(s->f, "kevd_image_vms{id=\"%s\",image=\"", s->images[i].id);
		label_value(s->f, s->images[i].path);
		fprintf(s->f, "\"} %u\n", s->images[i].vms);
	}
}

static void render_boot_slots(FILE *f, struct kevd_bootgate *gate)
{
	struct kevd_bootgate_stats st;

	kevd_bootgate_stats(gate, &st);
	help(f, "kevd_boot_slots", "gauge", "VMs let into their first moments at once ([limits] boot_slots_per_cpu times the CPUs); 0: no limit.");
	fprintf(f, "kevd_boot_slots %u\n", st.slots);
	help(f, "kevd_boot_slot_lease_seconds", "gauge", "How long a boot slot is held at most ([limits] boot_slot_ms).");
	fprintf(f, "kevd_boot_slot_lease_seconds %.3f\n", st.lease_ms / 1e3);
	help(f, "kevd_boot_slots_busy", "gauge", "Boot slots held now.");
	fprintf(f, "kevd_boot_slots_busy %u\n", st.busy);
	help(f, "kevd_boot_slot_queue", "gauge", "VMs waiting in line for a boot slot now.");
	fprintf(f, "kevd_boot_slot_queue %u\n", st.waiting);
	help(f, "kevd_boot_slot_waits_total", "counter", "VMs that had to wait for a boot slot.");
	fprintf(f, "kevd_boot_slot_waits_total %" PRIu64 "\n", st.waited);
	help(f, "kevd_boot_slot_wait_seconds_total", "counter", "Time those VMs waited, in all.");
	fprintf(f, "kevd_boot_slot_wait_seconds_total %.9f\n", (double)st.wait_ns / 1e9);
	help(f, "kevd_boot_slot_expired_total", "counter", "Boot slots that ran out ([limits] boot_slot_ms) before their guest idled or ended.");
	fprintf(f, "kevd_boot_slot_expired_total %" PRIu64 "\n", st.expired);
}

static void render_requests(FILE *f, const struct kevd_http *http)
{
	size_t n;
	const struct kevd_http_count *req = kevd_http_counts(http, &n);

	help(f, "kevd_api_requests_total", "counter", "API requests answered, by method and status code.");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "kevd_api_requests_total{method=\"%s\",code=\"%d\"} %" PRIu64 "\n", req[i].method,
			req[i].code, req[i].count);
}

int kevd_metrics_render(const struct kevd_registry *reg, const struct kevd_http *http, struct kevd_imagecache *images,
			struct kevd_bootgate *gate, char **text, size_t *len)
{
	struct scrape s = { .f = open_memstream(text, len) };
	int r = 0;

	if (!s.f)
		return -ENOMEM;
	s.vms = kevd_registry_list(reg, &s.nvms);
	s.st = calloc(s.nvms ? s.nvms : 1, sizeof(*s.st));
	s.images = images ? kevd_imagecache_snapshot(images, &s.nimages) : calloc(1, sizeof(*s.images));
	if (s.vms && s.st && s.images) {
		for (size_t i = 0; i < s.nvms; i++)
			kevd_vm_pager_stats(s.vms[i].vm, &s.st[i]);
		render_daemon(&s);
		render_pager_scalars(&s);
		render_pages_loaded(&s);
		render_latency(&s);
		render_vcpus(&s);
		render_images(&s);
		if (gate)
			render_boot_slots(s.f, gate);
		render_requests(s.f, http);
	} else {
		r = -ENOMEM;
	}
	free(s.vms);
	free(s.st);
	kevd_imagecache_snapshot_free(s.images, s.nimages);
	if (fclose(s.f) != 0 || r < 0) {
		free(*text);
		*text = NULL;
		return -ENOMEM;
	}
	return 0;
}
