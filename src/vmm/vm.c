/*
 * VM lifecycle (see vm.h and vm_internal.h): the state machine and the
 * walk over the ordered table of parts (parts.h) that a VM is built from.
 * The console and the I/O bus, which have no file of their own, are the
 * two parts defined here.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/time.h"
#include "vmm/vm_internal.h"

#define MAX_MEMORY_MIB (1u << 20)    /* 1 TiB */

#define KEVD_VM_PART_DECLARE_(p) extern const struct kevd_vm_part p;
KEVD_VM_PARTS(KEVD_VM_PART_DECLARE_)
#define KEVD_VM_PART_ROW_(p) &p,
static const struct kevd_vm_part *const parts[KEVD_VM_NPARTS] = { KEVD_VM_PARTS(KEVD_VM_PART_ROW_) };

const struct kevd_vm_part *kevd_vm_part_at(unsigned i)
{
	return i < KEVD_VM_NPARTS ? parts[i] : NULL;
}

static const char *const state_names[] = {
	[KEVD_VM_CREATED] = "created", [KEVD_VM_RUNNING] = "running", [KEVD_VM_PAUSED] = "paused",[KEVD_VM_EXITED] = "exited",
	[KEVD_VM_CRASHED] = "crashed", [KEVD_VM_FAILED] = "failed", [KEVD_VM_STOPPED] = "stopped",
};

static const char *const exit_names[] = {
	[KEVD_EXIT_IO] = "io", [KEVD_EXIT_MMIO] = "mmio", [KEVD_EXIT_HLT] = "hlt",
	[KEVD_EXIT_SHUTDOWN] = "shutdown", [KEVD_EXIT_INTR] = "intr",
	[KEVD_EXIT_INTERNAL_ERROR] = "internal_error", [KEVD_EXIT_FAIL_ENTRY] = "fail_entry",
	[KEVD_EXIT_SYSTEM_EVENT] = "system_event", [KEVD_EXIT_OTHER] = "other",
};

const char *kevd_vm_state_name(enum kevd_vm_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "unknown";
}

const char *kevd_exit_kind_name(enum kevd_exit_kind k)
{
	return (unsigned)k < KEVD_EXIT_KINDS ? exit_names[k] : "unknown";
}

bool kevd_vm_end(struct kevd_vm *vm, enum kevd_vm_state state, int exit_status, const char *fmt, ...)
{
	bool won = false;
	va_list ap;

	pthread_mutex_lock(&vm->lock);
	if (vm->state == KEVD_VM_RUNNING || vm->state == KEVD_VM_CREATED || vm->state == KEVD_VM_PAUSED) {
		vm->state = state;
		vm->exit_status = exit_status;
		va_start(ap, fmt);
		vsnprintf(vm->reason, sizeof(vm->reason), fmt, ap);
		va_end(ap);
		vm->end_ns = kevd_now_ns(CLOCK_MONOTONIC);
		won = true;
	}
	__atomic_store_n(&vm->stopping, 1, __ATOMIC_RELEASE);
	/* A frozen VM's vCPU threads are gone, and its vCPUs may be freed. */
	if (!__atomic_load_n(&vm->frozen, __ATOMIC_ACQUIRE))
		kevd_vcpus_kick_locked(vm);
	pthread_mutex_unlock(&vm->lock);
	if (won) {
		kevd_info("vm '%s': %s: %s", vm->name, kevd_vm_state_name(state), vm->reason);
		if (vm->cfg.on_end)
			vm->cfg.on_end(vm->cfg.cb_arg, vm);
	}
	return won;
}

/* ---- the console and I/O bus parts ---- */

static int console_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	(void)state;
	return kevd_console_new(vm->cfg.console_bytes, vm->cfg.console_fd, &vm->console, err);
}

static void console_free(struct kevd_vm *vm, void *state)
{
	(void)state;
	kevd_console_free(vm->console);
}

/* The bytes the console still has and the offset after the newest, so
 * that a restored VM's console goes on where the snapshot's stopped. */
static int console_save(struct kevd_vm *vm, void *state, struct kevd_blob *out, struct kevd_error *err)
{
	uint64_t total = kevd_console_total(vm->console), start, end;
	uint64_t from = total > vm->cfg.console_bytes ? total - vm->cfg.console_bytes : 0;
	cleanup_free unsigned char *buf = malloc(vm->cfg.console_bytes ? vm->cfg.console_bytes : 1);
	size_t n;

	(void)state;
	if (!buf)
		return kevd_error_sys(err, ENOMEM, "console");
	n = kevd_console_read(vm->console, from, buf, vm->cfg.console_bytes, &start, &end);
	kevd_blob_put(out, 1, &end, sizeof(end));
	kevd_blob_put(out, 2, buf, n);
	return 0;
}

static int console_load(struct kevd_vm *vm, void *state, const void *data, size_t len, struct kevd_error *err)
{
	struct kevd_blob_reader rd;
	const void *p, *bytes;
	uint64_t total;
	uint32_t t1, t2;
	size_t n, nb;

	(void)state;
	kevd_blob_reader_init(&rd, data, len);
	if (kevd_blob_next(&rd, &t1, &p, &n) != 1 || t1 != 1 || n != sizeof(total) ||
	    kevd_blob_next(&rd, &t2, &bytes, &nb) != 1 || t2 != 2)
		return kevd_error_set(err, EBADMSG, "malformed console record");
	memcpy(&total, p, sizeof(total));
	kevd_console_restore(vm->console, total, bytes, nb);
	return 0;
}

const struct kevd_vm_part kevd_part_console = {
	.name = "console", .create = console_create, .free = console_free, .save = console_save,
	.load = console_load,
};

/* Sealed at the end of kevd_vm_create(), once every device registered. */
static int iobus_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	(void)state;
	if (kevd_iobus_new(&vm->iobus, err) < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

static void iobus_free(struct kevd_vm *vm, void *state)
{
	(void)state;
	kevd_iobus_free(vm->iobus);
}

const struct kevd_vm_part kevd_part_iobus = {
	.name = "iobus", .create = iobus_create, .free = iobus_free,
};

/* ---- create, start, stop, free ---- */

static int check_config(const struct kevd_vm_config *cfg, struct kevd_error *err)
{
	const char *n = cfg->name ? cfg->name : "vm";

	if (!cfg->kernel || !*cfg->kernel)
		return kevd_error_set(err, EINVAL, "vm '%s': no kernel given", n);
	if (cfg->vcpus < 1 || cfg->vcpus > KEVD_VM_MAX_VCPUS)
		return kevd_error_set(err, EINVAL, "vm '%s': %u vCPUs is outside 1..%u", n, cfg->vcpus,
				      KEVD_VM_MAX_VCPUS);
	if (cfg->memory_mib < 2 || cfg->memory_mib > MAX_MEMORY_MIB)
		return kevd_error_set(err, EINVAL, "vm '%s': %llu MiB of memory is outside 2..%u", n,
				      (unsigned long long)cfg->memory_mib, MAX_MEMORY_MIB);
	if (cfg->vcpu_nice > 19)
		return kevd_error_set(err, EINVAL, "vm '%s': vCPU nice %u is outside 0..19", n, cfg->vcpu_nice);
	if (cfg->cmdline && strlen(cfg->cmdline) >= 4096)
		return kevd_error_set(err, E2BIG, "vm '%s': command line longer than 4095 bytes", n);
	return 0;
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

/* The VM keeps its own copies of the configuration's strings; the fds
 * stay in the config until the image part takes them. */
static struct kevd_vm *vm_alloc(const struct kevd_vm_config *cfg)
{
	struct kevd_vm *vm = calloc(1, sizeof(*vm));
	bool oom = false;

	if (!vm)
		return NULL;
	vm->cfg = *cfg;
	vm->initrd_fd = vm->kvm_fd = vm->vm_fd = vm->restore_fd = -1;
	vm->exit_status = -1;
	vm->nvcpus = cfg->vcpus;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->ended, NULL);
	pthread_cond_init(&vm->unhalt, NULL);
	pthread_cond_init(&vm->parking, NULL);
	vm->cfg.name = vm->name = dup_or_null(cfg->name ? cfg->name : "vm", &oom);
	vm->cfg.kernel = vm->kernel = dup_or_null(cfg->kernel, &oom);
	vm->cfg.cmdline = vm->cmdline = dup_or_null(cfg->cmdline, &oom);
	vm->cfg.initrd = vm->initrd = dup_or_null(cfg->initrd, &oom);
	vm->snapshot = dup_or_null(cfg->restore ? (cfg->restore->name ? cfg->restore->name : "") : NULL, &oom);
	if (!vm->cfg.console_bytes)
		vm->cfg.console_bytes = KEVD_VM_DEFAULT_CONSOLE;
	if (oom) {
		kevd_vm_free(vm);
		return NULL;
	}
	return vm;
}

static void close_config_fds(struct kevd_vm_config *cfg)
{
	if (cfg->kernel_fd_valid)
		close(cfg->kernel_fd);
	if (cfg->initrd_fd_valid)
		close(cfg->initrd_fd);
	cfg->kernel_fd_valid = cfg->initrd_fd_valid = false;
}

static void drop_restore(struct kevd_vm *vm)
{
	if (vm->restore_fd >= 0)
		close(vm->restore_fd);
	free(vm->restore_pages);
	vm->restore_fd = -1;
	vm->restore_pages = NULL;
}

/* ---- spare VMs ---- */

/* The kvm, memory and vcpus parts' own create, on a VM that is never more
 * than them (kevd_vm_spare_making() tells the vcpus part to stop at the
 * fds): what they leave is moved into the spare. */
int kevd_vm_spare_new(uint64_t memory_mib, unsigned vcpus, bool pc, struct kevd_vm_spare **out,
		      struct kevd_error *err)
{
	struct kevd_vm_config cfg = { .name = "spare", .kernel = "-", .memory_mib = memory_mib, .vcpus = vcpus,
				      .console_fd = -1 };
	struct kevd_vm_spare *s;
	struct kevd_vm *vm;
	void *unused = NULL;
	int r = check_config(&cfg, err);

	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s) + vcpus * sizeof(s->vcpus[0]));
	vm = s ? vm_alloc(&cfg) : NULL;
	if (!vm) {
		free(s);
		return kevd_error_sys(err, ENOMEM, "spare VM");
	}
	vm->sipi = pc;
	vm->making_spare = true;
	r = kevd_part_kvm.create(vm, &unused, err);
	if (r == 0)
		r = kevd_part_memory.create(vm, &unused, err);
	if (r == 0)
		r = kevd_vm_memslots_wait(vm, err);
	if (r == 0)
		r = kevd_part_vcpus.create(vm, &unused, err);
	if (r == 0) {
		*s = (struct kevd_vm_spare){
			.memory_mib = memory_mib, .nvcpus = vcpus, .pc = pc, .kvm_fd = vm->kvm_fd, .vm_fd = vm->vm_fd,
			.run_size = vm->run_size, .ram_low = vm->ram_low, .ram_high = vm->ram_high,
			.low_len = vm->low_len, .high_len = vm->high_len,
		};
		for (unsigned i = 0; i < vcpus; i++) {
			s->vcpus[i].fd = vm->vcpus[i].fd;
			s->vcpus[i].run = vm->vcpus[i].run;
			vm->vcpus[i].fd = -1;
			vm->vcpus[i].run = NULL;
		}
		vm->kvm_fd = vm->vm_fd = -1;
		vm->ram_low = vm->ram_high = NULL;
	}
	/* Frees what is left: empty records, or all of it. */
	kevd_part_vcpus.free(vm, NULL);
	kevd_part_memory.free(vm, NULL);
	kevd_part_kvm.free(vm, NULL);
	kevd_vm_free(vm);
	if (r < 0) {
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

void kevd_vm_spare_shape(const struct kevd_vm_spare *s, uint64_t *memory_mib, unsigned *vcpus, bool *pc)
{
	*memory_mib = s->memory_mib;
	*vcpus = s->nvcpus;
	*pc = s->pc;
}

/* The memslots and the vCPUs go with the VM fd, after their own fds. */
void kevd_vm_spare_free(struct kevd_vm_spare *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->nvcpus; i++) {
		if (s->vcpus[i].run)
			munmap(s->vcpus[i].run, s->run_size);
		if (s->vcpus[i].fd >= 0)
			close(s->vcpus[i].fd);
	}
	if (s->vm_fd >= 0)
		close(s->vm_fd);
	if (s->kvm_fd >= 0)
		close(s->kvm_fd);
	if (s->ram_low)
		munmap(s->ram_low, s->low_len);
	if (s->ram_high)
		munmap(s->ram_high, s->high_len);
	free(s);
}

int kevd_vm_create(const struct kevd_vm_config *cfg, struct kevd_vm **out, struct kevd_error *err)
{
	uint64_t t0 = kevd_now_ns(CLOCK_MONOTONIC);
	struct kevd_vm *vm;
	int r = check_config(cfg, err);

	/* Before any work: a kick would otherwise kill the process. */
	if (r == 0 && !kevd_vm_signals_installed())
		r = kevd_error_set(err, EINVAL, "vm '%s': kevd_vm_signals_install() was not called",
				   cfg->name ? cfg->name : "vm");

	if (r < 0 || !(vm = vm_alloc(cfg))) {
		struct kevd_vm_config c = *cfg;

		close_config_fds(&c);
		kevd_vm_spare_free(cfg->spare);
		if (cfg->restore) {
			close(cfg->restore->memory_fd);
			free(cfg->restore->pages);
		}
		return r < 0 ? r : kevd_error_sys(err, ENOMEM, "vm");
	}
	if (cfg->restore) {
		vm->restored = true;
		vm->restore_fd = cfg->restore->memory_fd;
		vm->restore_pages = cfg->restore->pages;
	}
	/* The kvm part takes it if it fits, and frees it otherwise. */
	vm->cfg.spare = NULL;
	vm->spare = cfg->spare;
	vm->create_ns = t0;
	for (; vm->nparts < KEVD_VM_NPARTS; vm->nparts++) {
		const struct kevd_vm_part *p = parts[vm->nparts];

		r = p->create(vm, &vm->part_state[vm->nparts], err);
		if (r < 0) {
			vm->nparts++;  /* a failed part is torn down too */
			break;
		}
	}
	/* Whatever of the spare no part took (all of it if the kvm part
	 * failed before taking it). */
	kevd_vm_spare_free(vm->spare);
	vm->spare = NULL;
	if (r == 0)
		r = kevd_vm_memslots_wait(vm, err);
	if (r == 0 && cfg->restore) {
		vm->restore_state = malloc(cfg->restore->state_len ? cfg->restore->state_len : 1);
		if (!vm->restore_state)
			r = kevd_error_sys(err, ENOMEM, "vm '%s': snapshot state", vm->name);
		else
			memcpy(vm->restore_state, cfg->restore->state, cfg->restore->state_len);
		vm->restore_state_len = cfg->restore->state_len;
	}
	/* Only kevd_vm_create() sees the restore's borrowed buffers. */
	vm->cfg.restore = NULL;
	if (r < 0) {
		close_config_fds(&vm->cfg);
		drop_restore(vm);
		kevd_vm_free(vm);
		return r;
	}
	drop_restore(vm);
	/* Devices registered during create; the vCPU threads, started later,
	 * dispatch over ranges that no longer change. */
	kevd_iobus_seal(vm->iobus);
	vm->state = KEVD_VM_CREATED;
	vm->made = true;
	*out = vm;
	return 0;
}

int kevd_vm_start(struct kevd_vm *vm, struct kevd_error *err)
{
	enum kevd_vm_state s;

	pthread_mutex_lock(&vm->lock);
	s = vm->state;
	if (s == KEVD_VM_CREATED) {
		vm->state = KEVD_VM_RUNNING;
		vm->start_ns = kevd_now_ns(CLOCK_MONOTONIC);
	}
	pthread_mutex_unlock(&vm->lock);
	if (s != KEVD_VM_CREATED)
		return kevd_error_set(err, EBUSY, "vm '%s' is %s, not created", vm->name, kevd_vm_state_name(s));
	for (unsigned i = 0; i < vm->nparts; i++) {
		int r = 0;

		/* A restore's state goes in once the pager (before the vCPUs
		 * in parts.h) serves faults, and before any vCPU runs. */
		if (parts[i] == &kevd_part_vcpus && vm->restore_state) {
			r = kevd_vm_restore_parts(vm, err);
			free(vm->restore_state);
			vm->restore_state = NULL;
		}
		if (r == 0 && parts[i]->start)
			r = parts[i]->start(vm, vm->part_state[i], err);
		if (r < 0) {
			kevd_vm_end(vm, KEVD_VM_FAILED, -1, "%s", err->msg);
			return r;
		}
	}
	/* Pauses wait for this: until now a part may still be filling guest
	 * memory (an eager load) or starting vCPU threads. */
	pthread_mutex_lock(&vm->lock);
	vm->start_done = true;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

bool kevd_vm_stop(struct kevd_vm *vm, const char *reason)
{
	return kevd_vm_end(vm, KEVD_VM_STOPPED, -1, "%s", reason ? reason : "stopped on request");
}

static struct timespec deadline_in(int timeout_ms)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	if (timeout_ms >= 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
	}
	return deadline;
}

int kevd_vm_pause(struct kevd_vm *vm, int timeout_ms, struct kevd_error *err)
{
	uint64_t t0 = kevd_now_ns(CLOCK_MONOTONIC);
	struct timespec deadline = deadline_in(timeout_ms < 0 ? 0 : timeout_ms);
	enum kevd_vm_state s;
	int r = 0;

	pthread_mutex_lock(&vm->lock);
	s = vm->state;
	if (s != KEVD_VM_RUNNING || vm->pausing || !vm->start_done) {
		bool pausing = vm->pausing;

		pthread_mutex_unlock(&vm->lock);
		if (s == KEVD_VM_RUNNING)
			return kevd_error_set(err, EBUSY, "vm '%s' is %s", vm->name,
					      pausing ? "being paused already" : "still starting");
		return kevd_error_set(err, EBUSY, "vm '%s' is %s, not running", vm->name, kevd_vm_state_name(s));
	}
	/* One pauser at a time: a second one failing would clear pause_req
	 * under the first one's paused VM. */
	vm->pausing = true;
	__atomic_store_n(&vm->pause_req, 1, __ATOMIC_RELEASE);
	kevd_vcpus_kick_locked(vm);
	while (r == 0 && vm->parked + vm->idle + vm->gated < vm->live && vm->state == KEVD_VM_RUNNING)
		r = pthread_cond_timedwait(&vm->parking, &vm->lock, &deadline);
	if (vm->state != KEVD_VM_RUNNING) {
		s = vm->state;
		r = -EBUSY;
	} else if (r != 0) {
		r = -ETIMEDOUT;
	} else {
		vm->state = KEVD_VM_PAUSED;
	}
	if (r < 0) {
		__atomic_store_n(&vm->pause_req, 0, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&vm->unhalt);
	}
	vm->pausing = false;
	pthread_mutex_unlock(&vm->lock);
	if (r == -EBUSY)
		return kevd_error_set(err, EBUSY, "vm '%s' became %s while pausing", vm->name,
				      kevd_vm_state_name(s));
	if (r == -ETIMEDOUT)
		return kevd_error_set(err, ETIMEDOUT, "vm '%s': its vCPUs did not park within %d ms", vm->name,
				      timeout_ms);
	/* The vCPUs are out; a fault one of them left behind may still be
	 * filling a window on a pager thread. */
	/* What is left of the same timeout. */
	if (kevd_pager_quiesce(vm->pager, timeout_ms - (int)((kevd_now_ns(CLOCK_MONOTONIC) - t0) / 1000000)) < 0) {
		kevd_vm_resume(vm, NULL);
		return kevd_error_set(err, ETIMEDOUT, "vm '%s': the pager did not go idle within %d ms", vm->name,
				      timeout_ms);
	}
	/* A working set is what the guest touched while it ran: a pause (a
	 * snapshot, most often) ends its recording. */
	kevd_pager_record_end(vm->pager);
	return 0;
}

int kevd_vm_resume(struct kevd_vm *vm, struct kevd_error *err)
{
	enum kevd_vm_state s;

	pthread_mutex_lock(&vm->lock);
	s = vm->state;
	if (s == KEVD_VM_PAUSED) {
		vm->state = KEVD_VM_RUNNING;
		__atomic_store_n(&vm->pause_req, 0, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&vm->unhalt);
	}
	pthread_mutex_unlock(&vm->lock);
	if (s != KEVD_VM_PAUSED)
		return kevd_error_set(err, EBUSY, "vm '%s' is %s, not paused", vm->name, kevd_vm_state_name(s));
	return 0;
}

int kevd_vm_wait(struct kevd_vm *vm, int timeout_ms)
{
	struct timespec deadline = deadline_in(timeout_ms);
	int r = 0;

	pthread_mutex_lock(&vm->lock);
	while (vm->live > 0 && r == 0)
		r = timeout_ms < 0 ? pthread_cond_wait(&vm->ended, &vm->lock)
				   : pthread_cond_timedwait(&vm->ended, &vm->lock, &deadline);
	pthread_mutex_unlock(&vm->lock);
	return r == ETIMEDOUT ? -ETIMEDOUT : 0;
}

/* Every part is told to stop (vCPUs kicked, then the pager's threads
 * stopped, which wakes a vCPU asleep on a fault) before any is freed (the
 * vCPU threads joined first, memory and fds last). */
static void free_parts(struct kevd_vm *vm, bool keep_console)
{
	for (unsigned i = vm->nparts; i-- > 0;)
		if (parts[i]->quiesce && !vm->part_freed[i] && !(keep_console && parts[i] == &kevd_part_console))
			parts[i]->quiesce(vm, vm->part_state[i]);
	for (unsigned i = vm->nparts; i-- > 0;) {
		if (vm->part_freed[i] || (keep_console && parts[i] == &kevd_part_console))
			continue;
		if (parts[i]->free)
			parts[i]->free(vm, vm->part_state[i]);
		vm->part_freed[i] = true;
	}
}

void kevd_vm_free(struct kevd_vm *vm)
{
	if (!vm)
		return;
	free_parts(vm, false);
	free(vm->final_vcpus);
	pthread_cond_destroy(&vm->ended);
	pthread_cond_destroy(&vm->unhalt);
	pthread_cond_destroy(&vm->parking);
	pthread_mutex_destroy(&vm->lock);
	free(vm->name);
	free(vm->kernel);
	free(vm->cmdline);
	free(vm->initrd);
	free(vm->snapshot);
	free(vm->restore_state);
	free(vm);
}

/* ---- accessors ---- */

bool kevd_vm_from_spare(const struct kevd_vm *vm)
{
	return vm->from_spare;
}

bool kevd_vm_is_pc(const struct kevd_vm *vm)
{
	return vm->sipi;
}

enum kevd_vm_state kevd_vm_state(struct kevd_vm *vm)
{
	enum kevd_vm_state s;

	pthread_mutex_lock(&vm->lock);
	s = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

void kevd_vm_reason(struct kevd_vm *vm, char *buf, size_t len)
{
	pthread_mutex_lock(&vm->lock);
	snprintf(buf, len, "%s", vm->reason);
	pthread_mutex_unlock(&vm->lock);
}

int kevd_vm_exit_status(struct kevd_vm *vm)
{
	int s;

	pthread_mutex_lock(&vm->lock);
	s = vm->exit_status;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

const char *kevd_vm_name(const struct kevd_vm *vm) { return vm->name; }
const struct kevd_vm_config *kevd_vm_config(const struct kevd_vm *vm) { return &vm->cfg; }
enum kevd_boot_protocol kevd_vm_protocol(const struct kevd_vm *vm) { return vm->protocol; }
unsigned kevd_vm_vcpu_count(const struct kevd_vm *vm) { return vm->nvcpus; }

void kevd_vm_times(struct kevd_vm *vm, struct kevd_vm_times *t)
{
	pthread_mutex_lock(&vm->lock);
	t->create_ns = vm->create_ns;
	t->start_ns = vm->start_ns;
	t->end_ns = vm->end_ns;
	pthread_mutex_unlock(&vm->lock);
	t->first_run_ns = __atomic_load_n(&vm->first_run_ns, __ATOMIC_ACQUIRE);
	t->boot_wait_ns = __atomic_load_n(&vm->boot_wait_ns, __ATOMIC_RELAXED);
	t->first_exit_ns = __atomic_load_n(&vm->first_exit_ns, __ATOMIC_RELAXED);
}

int kevd_vm_freeze(struct kevd_vm *vm, struct kevd_error *err)
{
	struct kevd_vcpu_info *vi;

	if (__atomic_load_n(&vm->frozen, __ATOMIC_ACQUIRE))
		return 0;
	if (kevd_vm_state(vm) < KEVD_VM_EXITED || kevd_vm_wait(vm, 0) < 0)
		return kevd_error_set(err, EBUSY, "vm '%s' has not ended", vm->name);
	vi = calloc(vm->nvcpus ? vm->nvcpus : 1, sizeof(*vi));
	if (!vi)
		return kevd_error_sys(err, ENOMEM, "vm '%s'", vm->name);
	/* The pager's threads go first, so that nothing counts on after the
	 * copy. */
	kevd_pager_stop(vm->pager);
	kevd_pager_get_stats(vm->pager, &vm->final_stats);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		kevd_vm_vcpu_info_from(vm, i, &vm->final_stats, &vi[i]);
	vm->final_vcpus = vi;
	__atomic_store_n(&vm->frozen, 1, __ATOMIC_RELEASE);
	return 0;
}

void kevd_vm_release(struct kevd_vm *vm)
{
	if (__atomic_load_n(&vm->frozen, __ATOMIC_ACQUIRE))
		free_parts(vm, true);
}

bool kevd_vm_frozen(struct kevd_vm *vm)
{
	return __atomic_load_n(&vm->frozen, __ATOMIC_ACQUIRE) != 0;
}

void kevd_vm_vcpu_info_from(struct kevd_vm *vm, unsigned index, const struct kevd_pager_stats *st,
			    struct kevd_vcpu_info *out)
{
	const struct kevd_vcpu *v;

	memset(out, 0, sizeof(*out));
	if (index >= vm->nvcpus)
		return;
	if (__atomic_load_n(&vm->frozen, __ATOMIC_ACQUIRE)) {
		*out = vm->final_vcpus[index];
		return;
	}
	v = &vm->vcpus[index];
	out->index = index;
	out->tid = __atomic_load_n(&v->tid, __ATOMIC_ACQUIRE);
	for (int k = 0; k < KEVD_EXIT_KINDS; k++)
		out->exits[k] = __atomic_load_n(&v->exits[k], __ATOMIC_RELAXED);
	out->pager_faults = kevd_pager_stats_thread_faults(st, out->tid);
}

void kevd_vm_vcpu_info(struct kevd_vm *vm, unsigned index, struct kevd_vcpu_info *out)
{
	struct kevd_pager_stats st;

	kevd_vm_pager_stats(vm, &st);
	kevd_vm_vcpu_info_from(vm, index, &st, out);
}

void kevd_vm_pager_stats(struct kevd_vm *vm, struct kevd_pager_stats *out)
{
	if (__atomic_load_n(&vm->frozen, __ATOMIC_ACQUIRE))
		*out = vm->final_stats;
	else
		kevd_pager_get_stats(vm->pager, out);
}

int kevd_vm_pager_residency(struct kevd_vm *vm, uint64_t *mapped, uint64_t *private_pages, struct kevd_error *err)
{
	if (__atomic_load_n(&vm->frozen, __ATOMIC_ACQUIRE))
		return kevd_error_set(err, ENODATA, "vm '%s' has ended: its memory is released", vm->name);
	return kevd_pager_residency(vm->pager, mapped, private_pages, err);
}

size_t kevd_vm_console_read(struct kevd_vm *vm, uint64_t offset, void *buf, size_t len,
			    uint64_t *start, uint64_t *end)
{
	return kevd_console_read(vm->console, offset, buf, len, start, end);
}
