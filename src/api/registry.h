/*
 * The VMs a server holds: one entry per VM (its id, name, VM, memory and
 * creation time), in creation order.  The registry owns each entry and the
 * VM in it; removing an entry frees both.  Loop thread only: VM threads
 * never see the registry (VM state is read through the VMM's own locked
 * accessors).
 */
#ifndef KEVD_REGISTRY_H
#define KEVD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/error.h"
#include "vmm/vm.h"

/* Room for an id and its NUL. */
#define KEVD_REGISTRY_ID_SIZE 32

struct kevd_registry;
struct kevd_registry_entry;

int kevd_registry_new(struct kevd_registry **out, struct kevd_error *err);
/* Frees every entry and its VM (kevd_vm_free() stops one still running). */
void kevd_registry_free(struct kevd_registry *reg);

/* A new id: a counter (unique within this daemon) and random bits (so that
 * the ids of a restarted daemon do not collide with ones clients still
 * hold).  BUF has KEVD_REGISTRY_ID_SIZE bytes. */
void kevd_registry_new_id(struct kevd_registry *reg, char *buf);

/* Adds VM (taking it, even on failure) under ID and NAME, created now. */
int kevd_registry_add(struct kevd_registry *reg, const char *id, const char *name, struct kevd_vm *vm,
		      uint64_t memory_mib, struct kevd_registry_entry **out, struct kevd_error *err);
/* Takes E out of the registry and frees it with its VM. */
void kevd_registry_remove(struct kevd_registry *reg, struct kevd_registry_entry *e);
/* Takes E out of the registry and frees it, but not its VM, which the
 * caller gets (to free off the loop thread). */
struct kevd_vm *kevd_registry_detach(struct kevd_registry *reg, struct kevd_registry_entry *e);
/* Whether a start, stop or delete of E is running on a worker (the
 * handlers refuse another one meanwhile). */
bool kevd_registry_entry_busy(const struct kevd_registry_entry *e);
void kevd_registry_entry_set_busy(struct kevd_registry_entry *e, bool busy);
/* Whether E's VM is being released on a worker (it ended; then E is busy
 * too), and what waits for that: a delete, submitted once it is done. */
bool kevd_registry_entry_releasing(const struct kevd_registry_entry *e);
void kevd_registry_entry_set_releasing(struct kevd_registry_entry *e, bool releasing);
void *kevd_registry_entry_after(const struct kevd_registry_entry *e);
void kevd_registry_entry_set_after(struct kevd_registry_entry *e, void *job);

/* The VM whose id or name is KEY; NULL if none. */
struct kevd_registry_entry *kevd_registry_find(const struct kevd_registry *reg, const char *key);

/* Iteration in creation order: for (e = first(reg); e; e = next(e)), with
 * no entry removed on the way. */
struct kevd_registry_entry *kevd_registry_first(const struct kevd_registry *reg);
struct kevd_registry_entry *kevd_registry_next(const struct kevd_registry_entry *e);

/* The VMs as their readers need them (metrics): a malloc'd array in
 * creation order, valid until the registry next changes; NULL if out of
 * memory.  *N is the number of VMs. */
struct kevd_registry_vm {
	const char *name;
	struct kevd_vm *vm;
};
struct kevd_registry_vm *kevd_registry_list(const struct kevd_registry *reg, size_t *n);

size_t kevd_registry_count(const struct kevd_registry *reg);
uint64_t kevd_registry_total_memory(const struct kevd_registry *reg);
unsigned kevd_registry_running_count(const struct kevd_registry *reg);

const char *kevd_registry_entry_id(const struct kevd_registry_entry *e);
const char *kevd_registry_entry_name(const struct kevd_registry_entry *e);
struct kevd_vm *kevd_registry_entry_vm(const struct kevd_registry_entry *e);
time_t kevd_registry_entry_created(const struct kevd_registry_entry *e);

#endif
