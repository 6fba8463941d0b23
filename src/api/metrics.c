/*
 * Prometheus metrics (see metrics.h).  Counters are cumulative for the
 * life of a VM (the pager's counters never reset); a deleted VM's series
 * end with it.  Latency buckets are the pager's power-of-two microsecond
 * buckets, exposed in seconds.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/metrics.h"
#include "api/server_internal.h"

/* Label values are VM names ([A-Za-z0-9._-]) and fixed words, so no
 * escaping is needed; kernel paths are not exported as labels. */

static void help(FILE *f, const char *name, const char *type, const char *text)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

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

int kevd_metrics_render(struct kevd_server *srv, char **text, size_t *len)
{
	static const enum kevd_vm_state states[] = { KEVD_VM_CREATED, KEVD_VM_RUNNING, KEVD_VM_EXITED,
						     KEVD_VM_CRASHED, KEVD_VM_FAILED, KEVD_VM_STOPPED };
	struct kevd_pager_stats *st;
	FILE *f = open_memstream(text, len);

	if (!f)
		return -ENOMEM;
	st = calloc(srv->nvms ? srv->nvms : 1, sizeof(*st));
	if (!st) {
		fclose(f);
		free(*text);
		return -ENOMEM;
	}
	/* One summary per VM for the whole scrape: every family, the vCPUs'
	 * included, reads from it, so they agree and the pager is summed
	 * once per VM however many vCPUs it has. */
	for (size_t i = 0; i < srv->nvms; i++)
		kevd_vm_pager_stats(srv->vms[i]->vm, &st[i]);

	help(f, "kevd_build_info", "gauge", "kevd's version; always 1.");
	fprintf(f, "kevd_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);

	help(f, "kevd_vms", "gauge", "VMs held by the daemon, by state.");
	for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
		unsigned n = 0;

		for (size_t i = 0; i < srv->nvms; i++)
			n += kevd_vm_state(srv->vms[i]->vm) == states[s];
		fprintf(f, "kevd_vms{state=\"%s\"} %u\n", kevd_vm_state_name(states[s]), n);
	}

	for (size_t m = 0; m < sizeof(pager_scalars) / sizeof(pager_scalars[0]); m++) {
		const struct pager_scalar *ps = &pager_scalars[m];

		if (!ps->metric)
			continue;
		help(f, ps->metric, ps->type, ps->help);
		for (size_t i = 0; i < srv->nvms; i++)
			fprintf(f, "%s{vm=\"%s\"} %" PRIu64 "\n", ps->metric, srv->vms[i]->name, ps->value(&st[i]));
	}

	help(f, "kevd_vm_pager_pages_loaded_total", "counter",
	     "Image pages installed, by cause: the faulting page (demand) or its neighbours (fault_around).");
	for (size_t i = 0; i < srv->nvms; i++) {
		fprintf(f, "kevd_vm_pager_pages_loaded_total{vm=\"%s\",cause=\"demand\"} %" PRIu64 "\n",
			srv->vms[i]->name, st[i].pages_loaded_demand);
		fprintf(f, "kevd_vm_pager_pages_loaded_total{vm=\"%s\",cause=\"fault_around\"} %" PRIu64 "\n",
			srv->vms[i]->name, st[i].pages_loaded_around);
	}

	help(f, "kevd_vm_pager_load_duration_seconds", "histogram",
	     "Time from reading a fault event to the page installed, per load.");
	for (size_t i = 0; i < srv->nvms; i++) {
		uint64_t cum = 0;

		for (int b = 0; b < KEVD_PAGER_HIST_BUCKETS - 1; b++) {
			cum += st[i].latency_hist[b];
			fprintf(f, "kevd_vm_pager_load_duration_seconds_bucket{vm=\"%s\",le=\"%.7g\"} %" PRIu64 "\n",
				srv->vms[i]->name, (double)(1ull << b) * 1e-6, cum);
		}
		cum += st[i].latency_hist[KEVD_PAGER_HIST_BUCKETS - 1];
		fprintf(f, "kevd_vm_pager_load_duration_seconds_bucket{vm=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
			srv->vms[i]->name, cum);
		fprintf(f, "kevd_vm_pager_load_duration_seconds_sum{vm=\"%s\"} %.9f\n", srv->vms[i]->name,
			(double)st[i].latency_sum_ns * 1e-9);
		fprintf(f, "kevd_vm_pager_load_duration_seconds_count{vm=\"%s\"} %" PRIu64 "\n", srv->vms[i]->name, cum);
	}

	help(f, "kevd_vm_vcpu_page_faults_total", "counter", "Pager faults taken by each vCPU.");
	for (size_t i = 0; i < srv->nvms; i++)
		for (unsigned v = 0; v < kevd_vm_vcpu_count(srv->vms[i]->vm); v++) {
			struct kevd_vcpu_info vi;

			kevd_vm_vcpu_info_from(srv->vms[i]->vm, v, &st[i], &vi);
			fprintf(f, "kevd_vm_vcpu_page_faults_total{vm=\"%s\",vcpu=\"%u\"} %" PRIu64 "\n",
				srv->vms[i]->name, v, vi.pager_faults);
		}

	help(f, "kevd_vm_vcpu_exits_total", "counter", "Exits of each vCPU to kevd, by reason.");
	for (size_t i = 0; i < srv->nvms; i++)
		for (unsigned v = 0; v < kevd_vm_vcpu_count(srv->vms[i]->vm); v++) {
			struct kevd_vcpu_info vi;

			kevd_vm_vcpu_info_from(srv->vms[i]->vm, v, &st[i], &vi);
			for (int k = 0; k < KEVD_EXIT_KINDS; k++)
				fprintf(f, "kevd_vm_vcpu_exits_total{vm=\"%s\",vcpu=\"%u\",reason=\"%s\"} %" PRIu64 "\n",
					srv->vms[i]->name, v, kevd_exit_kind_name((enum kevd_exit_kind)k), vi.exits[k]);
		}

	help(f, "kevd_api_requests_total", "counter", "API requests answered, by method and status code.");
	for (size_t i = 0; i < srv->nreq; i++)
		fprintf(f, "kevd_api_requests_total{method=\"%s\",code=\"%d\"} %" PRIu64 "\n", srv->req[i].method,
			srv->req[i].code, srv->req[i].count);
	free(st);
	if (fclose(f) != 0) {
		free(*text);
		*text = NULL;
		return -ENOMEM;
	}
	return 0;
}
