/*
 * Boot slots: how many VMs of the process may be in the first moments of
 * their run at once.
 *
 * Every VM of kevd shares one address space, and a guest's first moments
 * are when it touches most memory for the first time: each such touch
 * that the kernel's page tables do not hold yet is a fault that takes the
 * process's mmap_lock (KVM's get_user_pages, and on a host whose KVM
 * emulates the guest's kernel, the emulator's own copies to guest pages).
 * A hundred VMs booting at once on two cores preempt each other while
 * they hold it, and every create, whose mmap, KVM_CREATE_VM and
 * UFFDIO_REGISTER take it for writing, waits behind them: creates ran at
 * 45-90 a second with four clients (docs/reliability.md has the
 * profile).  With the boots let in a few at a time, in the order they
 * came, the creates run unhindered and the boots, which shared the same
 * cores anyway, finish about as soon.
 *
 * A booted VM's vCPU 0 takes a slot (a lease) before it first enters the
 * guest (a restore does not: it resumes past its first moments) and
 * gives it back when the guest first idles (a HLT that exits to kevd; a
 * PC's in-kernel LAPIC keeps its HLTs, so it holds its slot for the whole
 * lease), when its thread
 * ends, or when the lease runs out, lease_ms after it was granted,
 * whether or not the vCPU gave it back: a guest that never idles, that
 * waits or that is paused holds its slot that long at most, so the line
 * moves by slots VMs every lease_ms at the least.  (A lease counted in
 * the holder's own CPU time was tried: beside many spinning guests a new
 * one gets little CPU, and the line stalled.)
 *
 * One mutex protects the gate; waiters are served first come, first
 * served, and each sleeps on a condition of its own.  The first in line
 * sleeps until the earliest lease runs out, so no thread watches the
 * clock for the gate.
 */
#ifndef KEVD_BOOTGATE_H
#define KEVD_BOOTGATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

#define KEVD_BOOTGATE_MAX_SLOTS 4096

struct kevd_bootgate;

/* A granted slot, as kevd_bootgate_enter() hands it out: a value, valid
 * until given back or run out (giving back one that ran out does
 * nothing). */
struct kevd_boot_lease {
	unsigned slot;
	uint64_t gen;
};

struct kevd_bootgate_stats {
	unsigned slots;          /* the limit; 0 = none */
	unsigned lease_ms;       /* of the leases granted from now on */
	unsigned busy;           /* leases held now */
	unsigned waiting;        /* threads in line now */
	uint64_t granted;        /* leases granted */
	uint64_t waited;         /* of them, those that had to wait */
	uint64_t wait_ns;        /* the time all of those waited */
	uint64_t expired;        /* leases that ran out before they were given back */
	uint64_t cancelled;      /* waits given up */
};

/* SLOTS leases at once (0: no limit, every enter is granted at once up to
 * KEVD_BOOTGATE_MAX_SLOTS held),
 * each for LEASE_MS at most (1..3600000). */
int kevd_bootgate_new(unsigned slots, unsigned lease_ms, struct kevd_bootgate **out, struct kevd_error *err);
/* Whether kevd_bootgate_new() and _set() take these values. */
int kevd_bootgate_check(unsigned slots, unsigned lease_ms, struct kevd_error *err);
/* No thread may be waiting. */
void kevd_bootgate_free(struct kevd_bootgate *g);
/* Changes the limit and the lease of leases granted from now on; a
 * lower limit takes effect as leases end.  Fails (changing nothing) only
 * where kevd_bootgate_check() does. */
int kevd_bootgate_set(struct kevd_bootgate *g, unsigned slots, unsigned lease_ms, struct kevd_error *err);

/* Waits in line for a slot.  0: granted, *LEASE holds it, *WAITED_NS
 * (if not NULL) the time in line.  -ECANCELED: CANCELLED(ARG) returned
 * true, checked before waiting and after every kevd_bootgate_kick()
 * (the callback runs under the gate's mutex: it must not block). */
int kevd_bootgate_enter(struct kevd_bootgate *g, bool (*cancelled)(void *), void *arg,
			struct kevd_boot_lease *lease, uint64_t *waited_ns);
void kevd_bootgate_leave(struct kevd_bootgate *g, const struct kevd_boot_lease *lease);
/* Wakes the waiters whose cancel callback's argument is ARG to check it. */
void kevd_bootgate_kick(struct kevd_bootgate *g, void *arg);
void kevd_bootgate_stats(struct kevd_bootgate *g, struct kevd_bootgate_stats *out);

#endif
