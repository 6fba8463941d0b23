/*
 * Spare VMs for restores (kevd_vm_spare_new(), vm.h): a restore whose
 * snapshot's shape (memory size, vCPUs, PC or not) has a spare ready takes
 * it over, and so skips the KVM VM, memslot and vCPU set-up that is most of
 * its way to the first guest instruction.  The spares are made on job
 * workers, one at a time per shape, when a restore, a snapshot or the
 * daemon's start asks for one of its shape; at most `[snapshot] spare_vms`
 * are kept, the oldest going first.
 */
#ifndef KEVD_SPARES_H
#define KEVD_SPARES_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "api/jobs.h"
#include "common/error.h"
#include "vmm/vm.h"

struct kevd_spares;

/* What a spare must match (kevd_vm_spare_new()). */
struct kevd_spare_shape {
	uint64_t memory_mib;
	unsigned vcpus;
	bool pc;
};

/* The shape a snapshot's summary (or manifest) gives in its "vm":
 * memory_mib, vcpus, pc (false where absent).  False if it gives none. */
bool kevd_spare_shape_of(const json_t *snapshot, struct kevd_spare_shape *out);

/* JOBS runs the making, asked for on BASE's loop; both borrowed.  JOBS must
 * outlive every job submitted (the server drains it before
 * kevd_spares_free()). */
int kevd_spares_new(struct event_base *base, struct kevd_jobs *jobs, unsigned max, struct kevd_spares **out,
		    struct kevd_error *err);
/* Frees the spares ready; loop thread, no making under way. */
void kevd_spares_free(struct kevd_spares *sp);
/* Loop thread: the most kept from now on (a reload, the shutdown's 0);
 * those beyond it are freed on a worker. */
void kevd_spares_set_max(struct kevd_spares *sp, unsigned max);
/* Loop thread: a spare of SHAPE is to be ready: one is made on a
 * worker, AT_ONCE or shortly after (MAKE_DELAY_MS: after a restore, whose
 * vCPUs are on their way to the guest), unless one is ready or asked for
 * already, or the most kept is 0. */
void kevd_spares_want(struct kevd_spares *sp, const struct kevd_spare_shape *shape, bool at_once);
/* Any thread: a ready spare of SHAPE, now the caller's; NULL if none. */
struct kevd_vm_spare *kevd_spares_take(struct kevd_spares *sp, const struct kevd_spare_shape *shape);

#endif
