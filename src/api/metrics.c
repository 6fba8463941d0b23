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

#include "api/http.h"
#include "api/metrics.h"
#include "api/registry.h"

/* Label values are VM names ([A-Za-z0-9._-]) and fixed words, so no
 * escaping is needed; kernel paths are not exported as labels. */

static void help(FILE *f, const char *name, const char *type, const char *text)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

int kevd_metrics_render(const struct kevd_registry *reg, const struct kevd_http *http, char **text, size_t *len)
{
	static const enum kevd_vm_state states[] = { KEVD_VM_CREATED, KEVD_VM_RUNNING, KEVD_VM_EXITED,
						     KEVD_VM_CRASHED, KEVD_VM_FAILED, KEVD_VM_STOPPED };
	size_t nvms, nreq;
	const struct kevd_http_count *req = kevd_http_counts(http, &nreq);
	struct kevd_registry_vm *vms;
	struct kevd_pager_stats *st;
	FILE *f = open_memstream(text, len);

	if (!f)
		return -ENOMEM;
	vms = kevd_registry_list(reg, &nvms);
	st = calloc(nvms ? nvms : 1, sizeof(*st));
	if (!st || !vms) {
		free(st);
		free(vms);
		fclose(f);
		free(*text);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nvms; i++)
		kevd_vm_pager_stats(vms[i].vm, &st[i]);

	help(f, "kevd_build_info", "gauge", "kevd's version; always 1.");
	fprintf(f, "kevd_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);

	help(f, "kevd_vms", "gauge", "VMs held by the daemon, by state.");
	for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
		unsigned n = 0;

		for (size_t i = 0; i < nvms; i++)
			n += kevd_vm_state(vms[i].vm) == states[s];
		fprintf(f, "kevd_vms{state=\"%s\"} %u\n", kevd_vm_state_name(states[s]), n);
	}

#define PER_VM(metric, type, doc, field) \
	help(f, metric, type, doc); \
	for (size_t i = 0; i < nvms; i++) \
		fprintf(f, metric "{vm=\"%s\"} %" PRIu64 "\n", vms[i].name, (uint64_t)st[i].field);

	PER_VM("kevd_vm_image_pages", "gauge", "Guest pages backed by the VM's kernel image.", image_pages)
	PER_VM("kevd_vm_pager_faults_total", "counter", "Page faults on image pages served by the pager.", faults)
	PER_VM("kevd_vm_pager_faults_coalesced_total", "counter",
	       "Faults that met a page already loading or loaded (served by another fault's load).", faults_coalesced)
	PER_VM("kevd_vm_pager_loads_total", "counter", "Load operations (one file read and one UFFDIO_COPY each).", loads)
	PER_VM("kevd_vm_pager_read_bytes_total", "counter", "Bytes read from the kernel image.", bytes_read)
	PER_VM("kevd_vm_pager_load_failures_total", "counter", "Loads that failed (the VM fails with them).",
	       load_failures)
	PER_VM("kevd_vm_pager_eexist_total", "counter", "UFFDIO_COPY that found a page already present.", eexist)
	PER_VM("kevd_vm_pager_eagain_total", "counter", "UFFDIO_COPY retried after EAGAIN.", eagain)
#undef PER_VM

	help(f, "kevd_vm_pager_pages_loaded_total", "counter",
	     "Image pages installed, by cause: the faulting page (demand) or its neighbours (fault_around).");
	for (size_t i = 0; i < nvms; i++) {
		fprintf(f, "kevd_vm_pager_pages_loaded_total{vm=\"%s\",cause=\"demand\"} %" PRIu64 "\n",
			vms[i].name, st[i].pages_loaded_demand);
		fprintf(f, "kevd_vm_pager_pages_loaded_total{vm=\"%s\",cause=\"fault_around\"} %" PRIu64 "\n",
			vms[i].name, st[i].pages_loaded_around);
	}

	help(f, "kevd_vm_pager_load_duration_seconds", "histogram",
	     "Time from reading a fault event to the page installed, per load.");
	for (size_t i = 0; i < nvms; i++) {
		uint64_t cum = 0;

		for (int b = 0; b < KEVD_PAGER_HIST_BUCKETS - 1; b++) {
			cum += st[i].latency_hist[b];
			fprintf(f, "kevd_vm_pager_load_duration_seconds_bucket{vm=\"%s\",le=\"%.7g\"} %" PRIu64 "\n",
				vms[i].name, (double)(1ull << b) * 1e-6, cum);
		}
		cum += st[i].latency_hist[KEVD_PAGER_HIST_BUCKETS - 1];
		fprintf(f, "kevd_vm_pager_load_duration_seconds_bucket{vm=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
			vms[i].name, cum);
		fprintf(f, "kevd_vm_pager_load_duration_seconds_sum{vm=\"%s\"} %.9f\n", vms[i].name,
			(double)st[i].latency_sum_ns * 1e-9);
		fprintf(f, "kevd_vm_pager_load_duration_seconds_count{vm=\"%s\"} %" PRIu64 "\n", vms[i].name, cum);
	}

	help(f, "kevd_vm_vcpu_page_faults_total", "counter", "Pager faults taken by each vCPU.");
	for (size_t i = 0; i < nvms; i++)
		for (unsigned v = 0; v < kevd_vm_vcpu_count(vms[i].vm); v++) {
			struct kevd_vcpu_info vi;

			kevd_vm_vcpu_info(vms[i].vm, v, &vi);
			fprintf(f, "kevd_vm_vcpu_page_faults_total{vm=\"%s\",vcpu=\"%u\"} %" PRIu64 "\n",
				vms[i].name, v, vi.pager_faults);
		}

	help(f, "kevd_vm_vcpu_exits_total", "counter", "Exits of each vCPU to kevd, by reason.");
	for (size_t i = 0; i < nvms; i++)
		for (unsigned v = 0; v < kevd_vm_vcpu_count(vms[i].vm); v++) {
			struct kevd_vcpu_info vi;

			kevd_vm_vcpu_info(vms[i].vm, v, &vi);
			for (int k = 0; k < KEVD_EXIT_KINDS; k++)
				fprintf(f, "kevd_vm_vcpu_exits_total{vm=\"%s\",vcpu=\"%u\",reason=\"%s\"} %" PRIu64 "\n",
					vms[i].name, v, kevd_exit_kind_name((enum kevd_exit_kind)k), vi.exits[k]);
		}

	help(f, "kevd_api_requests_total", "counter", "API requests answered, by method and status code.");
	for (size_t i = 0; i < nreq; i++)
		fprintf(f, "kevd_api_requests_total{method=\"%s\",code=\"%d\"} %" PRIu64 "\n", req[i].method,
			req[i].code, req[i].count);
	free(vms);
	free(st);
	if (fclose(f) != 0) {
		free(*text);
		*text = NULL;
		return -ENOMEM;
	}
	return 0;
}
