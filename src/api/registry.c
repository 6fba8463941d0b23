/*
 * The VM registry (see registry.h): a tail queue, so that iteration keeps
 * creation order and removal is O(1); lookups are linear, which is plenty
 * at the few hundred VMs a daemon's limits allow.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>

#include "api/registry.h"

struct kevd_registry_entry {
	TAILQ_ENTRY(kevd_registry_entry) link;
	char *id;              /* owned */
	char *name;            /* owned */
	struct kevd_vm *vm;    /* owned */
	uint64_t memory_mib;
	time_t created;
	bool busy;             /* a start, stop or delete of it is on a worker */
	bool releasing;        /* its release is on a worker (then busy too) */
	void *after;           /* a job to submit once it is not busy (a delete that waited) */
};

struct kevd_registry {
	TAILQ_HEAD(, kevd_registry_entry) vms;  /* owned entries */
	size_t count;
	unsigned id_counter;
};

int kevd_registry_new(struct kevd_registry **out, struct kevd_error *err)
{
	struct kevd_registry *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return kevd_error_sys(err, ENOMEM, "api");
	TAILQ_INIT(&reg->vms);
	*out = reg;
	return 0;
}

static void free_entry(struct kevd_registry_entry *e)
{
	kevd_vm_free(e->vm);
	free(e->id);
	free(e->name);
	free(e);
}

void kevd_registry_free(struct kevd_registry *reg)
{
	struct kevd_registry_entry *e;

	if (!reg)
		return;
	while ((e = TAILQ_FIRST(&reg->vms))) {
		TAILQ_REMOVE(&reg->vms, e, link);
		free_entry(e);
	}
	free(reg);
}

void kevd_registry_new_id(struct kevd_registry *reg, char *buf)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)time(NULL) * 2654435761u;
	snprintf(buf, KEVD_REGISTRY_ID_SIZE, "%04x%08" PRIx32, (unsigned)(++reg->id_counter & 0xffff), r);
}

int kevd_registry_add(struct kevd_registry *reg, const char *id, const char *name, struct kevd_vm *vm,
		      uint64_t memory_mib, struct kevd_registry_entry **out, struct kevd_error *err)
{
	struct kevd_registry_entry *e = calloc(1, sizeof(*e));

	if (!e) {
		kevd_vm_free(vm);
		return kevd_error_sys(err, ENOMEM, "vm '%s'", name);
	}
	e->vm = vm;
	if (!(e->id = strdup(id)) || !(e->name = strdup(name))) {
		free_entry(e);
		return kevd_error_sys(err, ENOMEM, "vm '%s'", name);
	}
	e->memory_mib = memory_mib;
	e->created = time(NULL);
	TAILQ_INSERT_TAIL(&reg->vms, e, link);
	reg->count++;
	*out = e;
	return 0;
}

struct kevd_vm *kevd_registry_detach(struct kevd_registry *reg, struct kevd_registry_entry *e)
{
	struct kevd_vm *vm = e->vm;

	TAILQ_REMOVE(&reg->vms, e, link);
	reg->count--;
	e->vm = NULL;
	free_entry(e);
	return vm;
}

bool kevd_registry_entry_busy(const struct kevd_registry_entry *e)
{
	return e->busy;
}

void kevd_registry_entry_set_busy(struct kevd_registry_entry *e, bool busy)
{
	e->busy = busy;
}

bool kevd_registry_entry_releasing(const struct kevd_registry_entry *e)
{
	return e->releasing;
}

void kevd_registry_entry_set_releasing(struct kevd_registry_entry *e, bool releasing)
{
	e->releasing = releasing;
	e->busy = releasing;
}

void *kevd_registry_entry_after(const struct kevd_registry_entry *e)
{
	return e->after;
}

void kevd_registry_entry_set_after(struct kevd_registry_entry *e, void *job)
{
	e->after = job;
}

void kevd_registry_remove(struct kevd_registry *reg, struct kevd_registry_entry *e)
{
	TAILQ_REMOVE(&reg->vms, e, link);
	reg->count--;
	free_entry(e);
}

struct kevd_registry_entry *kevd_registry_find(const struct kevd_registry *reg, const char *key)
{
	struct kevd_registry_entry *e;

	TAILQ_FOREACH(e, &reg->vms, link)
		if (!strcmp(e->id, key) || !strcmp(e->name, key))
			return e;
	return NULL;
}

struct kevd_registry_entry *kevd_registry_first(const struct kevd_registry *reg)
{
	return TAILQ_FIRST(&reg->vms);
}

struct kevd_registry_entry *kevd_registry_next(const struct kevd_registry_entry *e)
{
	return TAILQ_NEXT(e, link);
}

struct kevd_registry_vm *kevd_registry_list(const struct kevd_registry *reg, size_t *n)
{
	struct kevd_registry_vm *list = calloc(reg->count ? reg->count : 1, sizeof(*list));
	const struct kevd_registry_entry *e;
	size_t i = 0;

	*n = reg->count;
	if (!list)
		return NULL;
	TAILQ_FOREACH(e, &reg->vms, link)
		list[i++] = (struct kevd_registry_vm){ e->name, e->vm };
	return list;
}

size_t kevd_registry_count(const struct kevd_registry *reg)
{
	return reg->count;
}

uint64_t kevd_registry_total_memory(const struct kevd_registry *reg)
{
	const struct kevd_registry_entry *e;
	uint64_t t = 0;

	TAILQ_FOREACH(e, &reg->vms, link)
		t += e->memory_mib;
	return t;
}

unsigned kevd_registry_running_count(const struct kevd_registry *reg)
{
	const struct kevd_registry_entry *e;
	unsigned n = 0;

	TAILQ_FOREACH(e, &reg->vms, link)
		n += kevd_vm_state(e->vm) == KEVD_VM_RUNNING;
	return n;
}

const char *kevd_registry_entry_id(const struct kevd_registry_entry *e)
{
	return e->id;
}

const char *kevd_registry_entry_name(const struct kevd_registry_entry *e)
{
	return e->name;
}

struct kevd_vm *kevd_registry_entry_vm(const struct kevd_registry_entry *e)
{
	return e->vm;
}

time_t kevd_registry_entry_created(const struct kevd_registry_entry *e)
{
	return e->created;
}
