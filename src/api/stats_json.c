/* JSON views of VMs and pager statistics (see stats_json.h). */
#include "config.h"

#include "api/stats_json.h"

#define SET(o, k, v) json_object_set_new((o), (k), (v))
#define INT(x) json_integer((json_int_t)(x))

/* A member of struct kevd_pager_stats as JSON, by its row's kind
 * (KEVD_PAGER_STATS): a stamp of 0 means "none yet", which is null. */
#define JSON_SUM(v) INT(v)
#define JSON_PAGER(v) INT(v)
#define JSON_SETUP(v) INT(v)
#define JSON_EARLIEST(v) ((v) ? INT(v) : json_null())
#define JSON_LATEST(v) ((v) ? INT(v) : json_null())
#define JSON_MEASURED(v) ((v) == KEVD_PAGER_UNMEASURED ? json_null() : INT(v))
#define JSON_MEMBER(field, how, json, metric, type, help) SET(o, json, JSON_##how(st->field));

json_t *kevd_json_pager_stats(const struct kevd_pager_stats *st)
{
	json_t *o = json_object(), *hist = json_array(), *threads = json_array();

	json_t *windows = json_array();

	SET(o, "mode", json_string(st->eager ? "eager" : st->shared ? "lazy" : "lazy-private"));
	SET(o, "backing", json_string(st->shared ? "shared" : "private"));
	SET(o, "working_set", json_string(kevd_pager_working_set_name(st->working_set)));
	KEVD_PAGER_STATS(JSON_MEMBER)
	for (int b = 0; b < KEVD_PAGER_HIST_BUCKETS; b++) {
		json_t *le = b == KEVD_PAGER_HIST_BUCKETS - 1 ? json_null() : INT(1ull << b);

		json_array_append_new(hist, json_pack("{s:o,s:I}", "le_us", le, "count",
						      (json_int_t)st->latency_hist[b]));
	}
	SET(o, "latency_histogram", hist);
	for (int b = 0; b < KEVD_PAGER_WINDOW_BUCKETS; b++)
		json_array_append_new(windows, json_pack("{s:I,s:I}", "pages", (json_int_t)(1ll << b), "count",
							 (json_int_t)st->window_hist[b]));
	SET(o, "window_histogram", windows);
	for (size_t i = 0; i < st->nthreads; i++)
		json_array_append_new(threads, json_pack("{s:i,s:I}", "tid", (int)st->threads[i].tid, "faults",
							 (json_int_t)st->threads[i].faults));
	SET(o, "faulting_threads", threads);
	return o;
}

json_t *kevd_json_vm_from(struct kevd_vm *vm, const struct kevd_pager_stats *st)
{
	const struct kevd_vm_config *c = kevd_vm_config(vm);
	json_t *o = json_object(), *vcpus = json_array(), *cfg = json_object();
	struct kevd_vm_times t;
	char reason[512];
	int status = kevd_vm_exit_status(vm);

	kevd_vm_reason(vm, reason, sizeof(reason));
	kevd_vm_times(vm, &t);
	SET(o, "name", json_string(kevd_vm_name(vm)));
	SET(o, "state", json_string(kevd_vm_state_name(kevd_vm_state(vm))));
	SET(o, "reason", json_string(reason));
	SET(o, "exit_status", status >= 0 ? INT(status) : json_null());
	SET(cfg, "kernel", json_string(c->kernel));
	SET(cfg, "memory_mib", INT(c->memory_mib));
	SET(cfg, "vcpus", INT(c->vcpus));
	SET(cfg, "cmdline", json_string(c->cmdline ? c->cmdline : ""));
	SET(cfg, "initrd", c->initrd ? json_string(c->initrd) : json_null());
	SET(cfg, "paging", json_string(c->eager ? "eager" : c->private_pages ? "lazy-private" : "lazy"));
	SET(cfg, "boot_protocol", json_string(kevd_vm_protocol(vm) == KEVD_BOOT_PVH ? "pvh" : "multiboot2"));
	SET(cfg, "snapshot", kevd_vm_snapshot_name(vm) ? json_string(kevd_vm_snapshot_name(vm)) : json_null());
	SET(o, "config", cfg);
	SET(o, "spare", json_boolean(kevd_vm_from_spare(vm)));
	/* Durations, not clock readings: CLOCK_MONOTONIC means nothing outside. */
	SET(o, "create_to_start_ns", t.start_ns ? INT(t.start_ns - t.create_ns) : json_null());
	SET(o, "create_to_first_run_ns", t.first_run_ns ? INT(t.first_run_ns - t.create_ns) : json_null());
	SET(o, "boot_slot_wait_ns", t.first_run_ns ? INT(t.boot_wait_ns) : json_null());
	SET(o, "start_to_first_exit_ns", t.first_exit_ns ? INT(t.first_exit_ns - t.start_ns) : json_null());
	SET(o, "run_time_ns", t.end_ns && t.start_ns ? INT(t.end_ns - t.start_ns) : json_null());
	for (unsigned i = 0; i < kevd_vm_vcpu_count(vm); i++) {
		struct kevd_vcpu_info vi;
		json_t *v = json_object(), *ex = json_object();

		kevd_vm_vcpu_info_from(vm, i, st, &vi);
		for (int k = 0; k < KEVD_EXIT_KINDS; k++)
			SET(ex, kevd_exit_kind_name((enum kevd_exit_kind)k), INT(vi.exits[k]));
		SET(v, "index", INT(i));
		SET(v, "exits", ex);
		SET(v, "pager_faults", INT(vi.pager_faults));
		json_array_append_new(vcpus, v);
	}
	SET(o, "vcpus", vcpus);
	return o;
}

json_t *kevd_json_vm(struct kevd_vm *vm)
{
	struct kevd_pager_stats st;

	kevd_vm_pager_stats(vm, &st);
	return kevd_json_vm_from(vm, &st);
}

/* One summary of the pager for both halves: the vCPUs' fault counts and
 * the paging object then agree, and the pager is summed once. */
json_t *kevd_json_vm_report(struct kevd_vm *vm)
{
	struct kevd_pager_stats st;
	json_t *o = json_object();

	kevd_vm_pager_stats(vm, &st);
	SET(o, "vm", kevd_json_vm_from(vm, &st));
	SET(o, "paging", kevd_json_pager_stats(&st));
	return o;
}
