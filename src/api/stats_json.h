/*
 * JSON views of a VM and of its lazy-paging statistics, shared by
 * `kevd run --json` and the HTTP API so both use the same field names.
 */
#ifndef KEVD_STATS_JSON_H
#define KEVD_STATS_JSON_H

#include <jansson.h>

#include "pager/pager.h"
#include "vmm/vm.h"

/* Every field of struct kevd_pager_stats (the KEVD_PAGER_STATS rows under
 * their json keys, then the rest); the histogram as an array of
 * {le_us, count} buckets (le_us null for the last, unbounded one). */
json_t *kevd_json_pager_stats(const struct kevd_pager_stats *st);
/* The VM's state, reason, exit status, configuration, times, and per-vCPU
 * exit and fault counts; reads the pager's statistics once. */
json_t *kevd_json_vm(struct kevd_vm *vm);
/* The same, with the vCPUs' fault counts taken from ST, a summary the
 * caller read already. */
json_t *kevd_json_vm_from(struct kevd_vm *vm, const struct kevd_pager_stats *st);
/* {"vm": ..., "paging": ...} as `kevd run --json` prints it. */
json_t *kevd_json_vm_report(struct kevd_vm *vm);

#endif
