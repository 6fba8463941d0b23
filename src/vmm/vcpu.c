/*
 * vCPUs: creation in kevd's boot state, the run loop, and the kick that
 * takes a vCPU out of KVM_RUN.
 *
 * The run loop is a plain switch on the exit reason.  Every reason is
 * handled on purpose; the ones that end the guest go through kevd_vm_end(),
 * which records the first final state and kicks the other vCPUs.
 *
 * Kicking: the kicker sets kvm_run.immediate_exit and then signals the
 * thread.  A vCPU inside KVM_RUN (or asleep on a page fault the pager is
 * serving) returns with EINTR; one just about to enter returns at once
 * because of immediate_exit, so no kick is lost between the stop check and
 * the ioctl.  A vCPU idle in kevd (HLT with interrupts enabled, no
 * irqchip) waits on vm->unhalt, which the kick broadcasts.  The kick
 * signal's handler (and SIGBUS's, for poisoned pages) is process-wide, so
 * the program installs both once, through kevd_vm_signals_install(), not a
 * library call behind its back.
 *
 * The vcpus part (last in parts.h) creates the vCPU fds, starts one thread
 * each, kicks them on quiesce and joins them on free.
 */
#include "config.h"

#include <sys/resource.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/sandbox.h"
#include "common/time.h"
#include "vmm/kvmstate.h"
#include "vmm/platform.h"
#include "vmm/vm_internal.h"

#define KICK_SIGNAL (SIGRTMIN + 1)
#define MAX_CPUID_ENTRIES 256
#define RFLAGS_IF (1u << 9)

static __thread bool in_vcpu_thread;
static bool signals_installed;  /* atomic: kevd_vm_signals_install() succeeded */

/* A vCPU thread runs KVM_RUN and raises the serial port's interrupt line;
 * ending the VM it kicks the other vCPUs and puts their nice back
 * (setpriority); the rest it does (locks, logs, kicks, eventfd writes) is
 * in the common set of common/sandbox.h. */
static const int vcpu_calls[] = { __NR_setpriority };
static const unsigned long vcpu_ioctls[] = { KVM_RUN, KVM_IRQ_LINE };

const struct kevd_sandbox_role kevd_vcpu_sandbox_role = {
	.name = "vCPU",
	.syscalls = vcpu_calls, .nsyscalls = sizeof(vcpu_calls) / sizeof(vcpu_calls[0]),
	.ioctls = vcpu_ioctls, .nioctls = sizeof(vcpu_ioctls) / sizeof(vcpu_ioctls[0]),
};

static void on_kick(int sig)
{
	(void)sig;
}

/* A poisoned page (one the pager could not load) reaches a vCPU as SIGBUS
 * from KVM, which then leaves KVM_RUN with EINTR: nothing to do here, the
 * pager has already failed the VM.  Anywhere else SIGBUS is a real fault. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (in_vcpu_thread && si->si_code == BUS_MCEERR_AR)
		return;
	signal(sig, SIG_DFL);
	raise(sig);
}

bool kevd_vm_signals_installed(void)
{
	return __atomic_load_n(&signals_installed, __ATOMIC_ACQUIRE);
}

int kevd_vm_signals_install(struct kevd_error *err)
{
	struct sigaction sa = { .sa_handler = on_kick };
	struct sigaction sb = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	sigemptyset(&sb.sa_mask);
	/* No SA_RESTART: KVM_RUN must return. */
	if (sigaction(KICK_SIGNAL, &sa, NULL) < 0 || sigaction(SIGBUS, &sb, NULL) < 0)
		return kevd_error_sys(err, errno, "vmm: installing the vCPU signal handlers");
	__atomic_store_n(&signals_installed, true, __ATOMIC_RELEASE);
	return 0;
}

/* CPUID as KVM supports it, with this vCPU's APIC ID in the leaves that
 * carry one; KVM also needs it to allow long mode (EFER.LME) at all. */
static int setup_cpuid(struct kevd_vm *vm, struct kevd_vcpu *v, struct kevd_error *err)
{
	cleanup_free struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + MAX_CPUID_ENTRIES * sizeof(c->entries[0]));

	if (!c)
		return kevd_error_sys(err, ENOMEM, "vm '%s': cpuid", vm->name);
	c->nent = MAX_CPUID_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0)
		return kevd_error_sys(err, errno, "vm '%s': KVM_GET_SUPPORTED_CPUID", vm->name);
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0x0000ffffu) | ((uint32_t)vm->nvcpus << 16) | (v->index << 24);
			e->edx |= 1u << 28;  /* HTT: the count in EBX[23:16] is meaningful */
			break;
		case 0xb:
		case 0x1f:
			e->edx = v->index;
			break;
		default:
			break;
		}
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		return kevd_error_sys(err, errno, "vm '%s': vcpu %u: KVM_SET_CPUID2", vm->name, v->index);
	return 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	*s = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};
}

/* 32-bit flat protected mode, paging off: the state multiboot2 and PVH
 * both promise, and kevd's boot protocol for every vCPU. */
static int setup_regs(struct kevd_vm *vm, struct kevd_vcpu *v, struct kevd_error *err)
{
	struct kvm_sregs sr;
	struct kvm_regs r = { 0 };

	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		return kevd_error_sys(err, errno, "vm '%s': vcpu %u: KVM_GET_SREGS", vm->name, v->index);
	flat_segment(&sr.cs, KEVD_PLAT_SEL_CODE32, 0xb);
	flat_segment(&sr.ds, KEVD_PLAT_SEL_DATA32, 0x3);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	sr.tr = (struct kvm_segment){ .base = 0, .limit = 0x67, .type = 0xb, .present = 1 };
	sr.ldt = (struct kvm_segment){ .base = 0, .limit = 0xffff, .type = 0x2, .present = 1 };
	sr.gdt.base = KEVD_PLAT_GDT_GPA;
	sr.gdt.limit = KEVD_PLAT_GDT_ENTRIES * 8 - 1;
	sr.idt.base = 0;
	sr.idt.limit = 0;
	sr.cr0 = 0x11;  /* PE | ET */
	sr.cr3 = 0;
	sr.cr4 = 0;
	sr.efer = 0;
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0)
		return kevd_error_sys(err, errno, "vm '%s': vcpu %u: KVM_SET_SREGS", vm->name, v->index);

	r.rflags = 0x2;
	r.rip = vm->entry.v;
	r.rbx = vm->boot_info_gpa;
	r.rdi = vm->nvcpus;
	if (v->index == 0) {
		r.rax = vm->protocol == KEVD_BOOT_MULTIBOOT2 ? 0x36d76289u : 0;
		r.rcx = KEVD_BOOT_MAGIC_BSP;
		r.rsi = 0;
	} else {
		r.rax = KEVD_BOOT_MAGIC_AP;
		r.rsi = v->index;
	}
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return kevd_error_sys(err, errno, "vm '%s': vcpu %u: KVM_SET_REGS", vm->name, v->index);
	return 0;
}

static int vcpu_setup(struct kevd_vm *vm, struct kevd_vcpu *v, struct kevd_error *err)
{
	int r;

	if (vm->from_spare) {
		v->fd = vm->spare->vcpus[v->index].fd;
		v->run = vm->spare->vcpus[v->index].run;
		vm->spare->vcpus[v->index].fd = -1;
		vm->spare->vcpus[v->index].run = NULL;
	} else {
		v->fd = kevd_fault("kvm_create_vcpu") ? (errno = ENOSPC, -1)
						      : ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->index);
		if (v->fd < 0)
			return kevd_error_sys(err, errno, "vm '%s': KVM_CREATE_VCPU %u", vm->name, v->index);
		v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED) {
			v->run = NULL;
			return kevd_error_sys(err, errno, "vm '%s': vcpu %u: mapping kvm_run", vm->name, v->index);
		}
	}
	/* A restore loads CPUID and every register from the snapshot
	 * (kevd_vm_restore_parts); a spare's vCPUs get theirs from the VM
	 * that takes them. */
	if (vm->cfg.restore || vm->making_spare)
		return 0;
	r = setup_cpuid(vm, v, err);
	if (r < 0)
		return r;
	/* On a PC the application processors wait for INIT/SIPI in their
	 * reset state, which KVM gives them with an in-kernel LAPIC. */
	if (vm->sipi && v->index != 0)
		return 0;
	return setup_regs(vm, v, err);
}

static void snapshot_paging(struct kevd_vcpu *v)
{
	struct kvm_sregs *sr = &v->run->s.regs.sregs;

	__atomic_store_n(&v->cr0, sr->cr0, __ATOMIC_RELAXED);
	__atomic_store_n(&v->cr3, sr->cr3, __ATOMIC_RELAXED);
	__atomic_store_n(&v->cr4, sr->cr4, __ATOMIC_RELAXED);
	__atomic_store_n(&v->efer, sr->efer, __ATOMIC_RELAXED);
}

static void count(struct kevd_vcpu *v, enum kevd_exit_kind k)
{
	__atomic_store_n(&v->exits[k], v->exits[k] + 1, __ATOMIC_RELAXED);
}

static void handle_io(struct kevd_vcpu *v)
{
	struct kvm_run *run = v->run;
	struct kevd_io io = {
		.space = KEVD_IO_PIO, .addr = run->io.port, .write = run->io.direction == KVM_EXIT_IO_OUT,
		.data = (uint8_t *)run + run->io.data_offset, .size = run->io.size, .vcpu = v->index,
	};

	/* A string instruction (rep outsb) brings COUNT accesses at once. */
	for (uint32_t i = 0; i < run->io.count; i++, io.data += run->io.size)
		kevd_iobus_dispatch(v->vm->iobus, &io);
}

static void handle_mmio(struct kevd_vcpu *v)
{
	struct kvm_run *run = v->run;
	struct kevd_io io = {
		.space = KEVD_IO_MMIO, .addr = run->mmio.phys_addr, .write = run->mmio.is_write,
		.data = run->mmio.data, .size = run->mmio.len, .vcpu = v->index,
	};

	if (io.size > sizeof(run->mmio.data))
		io.size = sizeof(run->mmio.data);
	kevd_iobus_dispatch(v->vm->iobus, &io);
}

/* HLT reaches kevd only without an in-kernel irqchip, where kevd has no
 * interrupt to deliver, so the vCPU never runs again either way.  With
 * interrupts disabled the guest meant to stop it: its thread ends here,
 * and when every vCPU has stopped so the guest is over.  With interrupts
 * enabled the guest waits for work (it idles): the thread sleeps until
 * the VM ends, and the VM stays running at no CPU cost. */
static void handle_hlt(struct kevd_vcpu *v)
{
	struct kevd_vm *vm = v->vm;
	bool all = false;

	pthread_mutex_lock(&vm->lock);
	v->in_hlt = true;
	if (v->run->s.regs.regs.rflags & RFLAGS_IF) {
		/* Idle counts as parked for a pause: this vCPU is out of the
		 * guest, and its state no longer changes. */
		vm->idle++;
		pthread_cond_broadcast(&vm->parking);
		while (!__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
			pthread_cond_wait(&vm->unhalt, &vm->lock);
		vm->idle--;
	} else {
		all = ++vm->halted == vm->nvcpus;
	}
	pthread_mutex_unlock(&vm->lock);
	if (all)
		kevd_vm_end(vm, KEVD_VM_EXITED, -1, "every vCPU halted");
}

/* Returns false when the vCPU must stop. */
static bool handle_exit(struct kevd_vcpu *v)
{
	struct kevd_vm *vm = v->vm;
	struct kvm_run *run = v->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		count(v, KEVD_EXIT_IO);
		handle_io(v);
		return true;
	case KVM_EXIT_MMIO:
		count(v, KEVD_EXIT_MMIO);
		handle_mmio(v);
		return true;
	case KVM_EXIT_HLT:
		count(v, KEVD_EXIT_HLT);
		handle_hlt(v);
		return false;
	case KVM_EXIT_SHUTDOWN:
		count(v, KEVD_EXIT_SHUTDOWN);
		kevd_vm_end(vm, KEVD_VM_CRASHED, -1, "vcpu %u: triple fault (KVM_EXIT_SHUTDOWN) at rip 0x%llx",
			    v->index, (unsigned long long)run->s.regs.regs.rip);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		count(v, KEVD_EXIT_INTERNAL_ERROR);
		kevd_vm_end(vm, KEVD_VM_CRASHED, -1,
			    "vcpu %u: KVM internal error, suberror %u%s at rip 0x%llx", v->index,
			    run->internal.suberror,
			    run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? " (emulation failure)" : "",
			    (unsigned long long)run->s.regs.regs.rip);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		count(v, KEVD_EXIT_FAIL_ENTRY);
		kevd_vm_end(vm, KEVD_VM_CRASHED, -1, "vcpu %u: VM entry failed, hardware reason 0x%llx", v->index,
			    (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		count(v, KEVD_EXIT_SYSTEM_EVENT);
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			kevd_vm_end(vm, KEVD_VM_EXITED, -1, "guest powered off");
			break;
		case KVM_SYSTEM_EVENT_RESET:
			kevd_vm_end(vm, KEVD_VM_EXITED, -1, "guest asked for a reset");
			break;
		default:
			kevd_vm_end(vm, KEVD_VM_CRASHED, -1, "vcpu %u: system event %u", v->index,
				    run->system_event.type);
			break;
		}
		return false;
	case KVM_EXIT_INTR:
		count(v, KEVD_EXIT_INTR);
		return true;
	default:
		count(v, KEVD_EXIT_OTHER);
		kevd_vm_end(vm, KEVD_VM_CRASHED, -1, "vcpu %u: unexpected KVM exit reason %u", v->index,
			    run->exit_reason);
		return false;
	}
}

/* A pause: out of the guest until resumed or stopped.  immediate_exit,
 * which the pause's kick set, is cleared under vm->lock, as every kick
 * sets it: a stop's kick after this point still takes effect, and one
 * before it set stopping, which the run loop checks next. */
static void vcpu_park(struct kevd_vcpu *v)
{
	struct kevd_vm *vm = v->vm;

	pthread_mutex_lock(&vm->lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->parking);
	while (__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE) && !__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
		pthread_cond_wait(&vm->unhalt, &vm->lock);
	vm->parked--;
	if (!__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
}

/* A kick that found nothing to do: a pause that was over (resumed, or
 * timed out) before this vCPU parked, its thread started after the pause
 * began.  Without this, immediate_exit would keep KVM_RUN from entering
 * the guest ever again. */
static void vcpu_unkick(struct kevd_vcpu *v)
{
	struct kevd_vm *vm = v->vm;

	pthread_mutex_lock(&vm->lock);
	if (!__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE) && !__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE))
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
}

/* From here on the thread runs guest code's exits: nothing but KVM_RUN,
 * the IRQ line of the serial port, its locks, logs and kicks. */
static void confine(struct kevd_vm *vm, struct kevd_vcpu *v)
{
	struct kevd_error err = KEVD_ERROR_INIT;

	if (kevd_sandbox_thread(&kevd_vcpu_sandbox_role, &err) < 0 && err.errnum != ENOSYS)
		kevd_warn("vm '%s': vcpu %u runs unconfined: %s", vm->name, v->index, err.msg);
}

static bool vm_stopping(void *arg)
{
	return __atomic_load_n(&((struct kevd_vm *)arg)->stopping, __ATOMIC_ACQUIRE);
}

/* The boot slot (bootgate.h): vCPU 0 waits in line for the VM's, the
 * others for vCPU 0 to get it.  A vCPU in line counts as parked for a
 * pause: it has not entered the guest.  Returns false when the VM
 * stopped meanwhile. */
static bool vcpu_admit(struct kevd_vcpu *v)
{
	struct kevd_vm *vm = v->vm;
	struct kevd_bootgate *gate = vm->cfg.boot_gate;
	uint64_t waited = 0;
	bool ok;

	if (!gate)
		return true;
	pthread_mutex_lock(&vm->lock);
	vm->gated++;
	pthread_cond_broadcast(&vm->parking);
	if (v->index == 0) {
		pthread_mutex_unlock(&vm->lock);
		v->leased = kevd_bootgate_enter(gate, vm_stopping, vm, &v->lease, &waited) == 0;
		pthread_mutex_lock(&vm->lock);
		__atomic_store_n(&vm->boot_wait_ns, waited, __ATOMIC_RELAXED);
		vm->admitted = v->leased;
		pthread_cond_broadcast(&vm->unhalt);
	} else {
		while (!vm->admitted && !__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
			pthread_cond_wait(&vm->unhalt, &vm->lock);
	}
	ok = vm->admitted && !__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE);
	vm->gated--;
	pthread_cond_broadcast(&vm->parking);
	pthread_mutex_unlock(&vm->lock);
	return ok;
}

/* The guest has done what its first moments needed the slot for: it
 * idles, or its vCPU 0 ends. */
static void vcpu_unlease(struct kevd_vcpu *v)
{
	if (!v->leased)
		return;
	v->leased = false;
	kevd_bootgate_leave(v->vm->cfg.boot_gate, &v->lease);
}

/* The thread's own set-up: its id and name, the signals it takes, the
 * registers KVM syncs, its seccomp filter. */
static void vcpu_thread_setup(struct kevd_vcpu *v)
{
	sigset_t unblock;
	char name[16];

	in_vcpu_thread = true;
	__atomic_store_n(&v->tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
	snprintf(name, sizeof(name), "vcpu-%u", v->index % 1000);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&unblock);
	sigaddset(&unblock, KICK_SIGNAL);
	sigaddset(&unblock, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
	v->run->kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
	confine(v->vm, v);
}

/* Made with the VM, so that its start, which only lets it in here, does
 * not wait for a thread to be made, scheduled and confined.  False for a
 * VM that ends before its start: the thread ends (done, not counted
 * live). */
static bool vcpu_wait_start(struct kevd_vcpu *v)
{
	struct kevd_vm *vm = v->vm;
	bool go;

	pthread_mutex_lock(&vm->lock);
	while (!vm->vcpus_go && !__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
		pthread_cond_wait(&vm->unhalt, &vm->lock);
	go = vm->vcpus_go;
	v->done = !go;
	pthread_mutex_unlock(&vm->lock);
	return go;
}

/* From the start to the guest's first instruction: niced, let in by the
 * boot slots.  False if the VM ended in line. */
static bool vcpu_enter(struct kevd_vcpu *v)
{
	struct kevd_vm *vm = v->vm;

	/* Niced after the wait, which would otherwise have the rest of the
	 * way to the guest's first instruction wait behind every other thread
	 * of the daemon.  Below the pager's and the API's threads: a guest spinning on every
	 * core must not keep them from serving its faults and the daemon's
	 * requests (docs/reliability.md has the measurements).  Linux takes a
	 * thread id for PRIO_PROCESS; 0 is this thread. */
	if (vm->cfg.vcpu_nice && setpriority(PRIO_PROCESS, 0, (int)vm->cfg.vcpu_nice) < 0)
		kevd_warn("vm '%s': vcpu %u: setpriority: %s", vm->name, v->index, strerror(errno));
	if (!vcpu_admit(v))
		return false;
	/* Let in while paused (a vCPU in line counts as parked): the guest
	 * has not run, so the slot goes back to the line at once. */
	if (__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE)) {
		vcpu_unlease(v);
		vcpu_park(v);
	}
	/* The guest's first instruction runs in the first KVM_RUN of vCPU 0:
	 * the closest point to it the VMM can stamp. */
	if (v->index == 0)
		__atomic_store_n(&vm->first_run_ns, kevd_now_ns(CLOCK_MONOTONIC), __ATOMIC_RELEASE);
	return true;
}

/* KVM_RUN and its exits until the VM stops or an exit ends it. */
static void vcpu_run_loop(struct kevd_vcpu *v)
{
	struct kevd_vm *vm = v->vm;

	while (!__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE)) {
		int r = kevd_unlikely(kevd_fault("kvm_run")) ? (errno = EFAULT, -1) : ioctl(v->fd, KVM_RUN, 0);
		uint64_t zero = 0;

		if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
			count(v, KEVD_EXIT_INTR);
			/* A pause kicks like a stop: every path back into the
			 * guest comes through here first. */
			if (kevd_unlikely(__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE)))
				vcpu_park(v);
			else
				vcpu_unkick(v);
			continue;
		}
		__atomic_compare_exchange_n(&vm->first_exit_ns, &zero, kevd_now_ns(CLOCK_MONOTONIC), false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
		if (r < 0) {
			int e = errno;

			kevd_vm_end(vm, KEVD_VM_FAILED, -1, "vcpu %u: KVM_RUN: %s", v->index, strerror(e));
			break;
		}
		snapshot_paging(v);
		if (v->run->exit_reason == KVM_EXIT_HLT)
			vcpu_unlease(v);
		if (!handle_exit(v))
			break;
	}
}

static void *vcpu_main(void *arg)
{
	struct kevd_vcpu *v = arg;
	struct kevd_vm *vm = v->vm;

	vcpu_thread_setup(v);
	if (!vcpu_wait_start(v))
		return NULL;
	if (vcpu_enter(v))
		vcpu_run_loop(v);
	vcpu_unlease(v);

	pthread_mutex_lock(&vm->lock);
	v->done = true;
	if (--vm->live == 0)
		pthread_cond_broadcast(&vm->ended);
	pthread_cond_broadcast(&vm->parking);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

static int vcpu_start(struct kevd_vcpu *v, struct kevd_error *err)
{
	int r = pthread_create(&v->thread, NULL, vcpu_main, v);

	if (r)
		return kevd_error_sys(err, r, "vm '%s': starting vcpu %u", v->vm->name, v->index);
	/* Release: a kicker that sees started also sees thread. */
	__atomic_store_n(&v->started, true, __ATOMIC_RELEASE);
	return 0;
}

static void vcpu_kick(struct kevd_vcpu *v)
{
	int tid = __atomic_load_n(&v->tid, __ATOMIC_ACQUIRE);

	if (v->run)
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
	/* A thread on its way out need not yield to the guests still
	 * spinning: back to the daemon's own priority, so that stops and
	 * deletes are not paced by vcpu_nice (needs CAP_SYS_NICE; without
	 * it the thread ends at its nice, only later).  Under vm->lock, and
	 * before the thread marked itself done under it: its tid is still
	 * its own. */
	if (tid && !v->done && v->vm->cfg.vcpu_nice && __atomic_load_n(&v->vm->stopping, __ATOMIC_ACQUIRE))
		setpriority(PRIO_PROCESS, (id_t)tid, 0);
	if (__atomic_load_n(&v->started, __ATOMIC_ACQUIRE))
		pthread_kill(v->thread, KICK_SIGNAL);
}

/* Under vm->lock: the vcpus part's free clears a vCPU's started flag under
 * it before joining, so no kick reaches a joined thread.  The kicking
 * thread may renice the vCPU (setpriority): it is the loop's, a worker's
 * or another vCPU's, so the vCPU role allows it. */
void kevd_vcpus_kick_locked(struct kevd_vm *vm)
{
	pthread_cond_broadcast(&vm->unhalt);
	if (vm->cfg.boot_gate)
		kevd_bootgate_kick(vm->cfg.boot_gate, vm);
	for (unsigned i = 0; vm->vcpus && i < vm->nvcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
}

/* ---- the vcpus part ---- */

static int vcpus_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	int r;

	(void)state;
	vm->vcpus = calloc(vm->nvcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return kevd_error_sys(err, ENOMEM, "vm '%s': vcpus", vm->name);
	/* All marked unopened first: a failed setup frees the whole array. */
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vm->vcpus[i] = (struct kevd_vcpu){ .vm = vm, .index = i, .fd = -1 };
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if ((r = vcpu_setup(vm, &vm->vcpus[i], err)) < 0)
			return r;
	/* A spare's vCPUs get their threads in the VM that takes them. */
	for (unsigned i = 0; i < vm->nvcpus && !vm->making_spare; i++)
		if ((r = vcpu_start(&vm->vcpus[i], err)) < 0)
			return r;
	return 0;
}

/* The threads wait for this (vcpu_main).  One that saw the VM end first
 * has ended (done) and is not counted live. */
static int vcpus_start(struct kevd_vm *vm, void *state, struct kevd_error *err)
{
	(void)state;
	(void)err;
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vm->live += !vm->vcpus[i].done;
	vm->vcpus_go = true;
	pthread_cond_broadcast(&vm->unhalt);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

/* A create that failed ends its threads without ending a VM nobody was
 * given: no "stopped" in the log, no on_end. */
static void vcpus_quiesce(struct kevd_vm *vm, void *state)
{
	(void)state;
	if (!vm->vcpus)
		return;
	if (vm->made) {
		kevd_vm_end(vm, KEVD_VM_STOPPED, -1, "VM deleted");
		return;
	}
	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->stopping, 1, __ATOMIC_RELEASE);
	kevd_vcpus_kick_locked(vm);
	pthread_mutex_unlock(&vm->lock);
}

/* Every thread is joined before any kvm_run page goes: a vCPU still
 * running may end the VM, which kicks (writes immediate_exit of) every
 * vCPU, joined or not. */
static void vcpus_free(struct kevd_vm *vm, void *state)
{
	(void)state;
	for (unsigned i = 0; vm->vcpus && i < vm->nvcpus; i++) {
		struct kevd_vcpu *v = &vm->vcpus[i];
		bool started;

		pthread_mutex_lock(&vm->lock);
		started = v->started;
		__atomic_store_n(&v->started, false, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&vm->lock);
		if (started)
			pthread_join(v->thread, NULL);
	}
	for (unsigned i = 0; vm->vcpus && i < vm->nvcpus; i++) {
		struct kevd_vcpu *v = &vm->vcpus[i];

		if (v->run)
			munmap(v->run, vm->run_size);
		if (v->fd >= 0)
			close(v->fd);
	}
	free(vm->vcpus);
}

/* Every vCPU's KVM state, one record each (tag = its index).  Parked
 * vCPUs came out of KVM_RUN through EINTR, so KVM had completed any I/O
 * they were in (it finishes pending I/O before it looks at
 * immediate_exit): their state is consistent. */
/* A vCPU stopped by a HLT exit (no irqchip: nothing wakes it) has its
 * RIP past the HLT, and would run on from there in a restored VM: put it
 * back on the HLT (one byte), which the restored vCPU then executes again,
 * idling or halting as here.  This VM's vCPU never enters the guest
 * again, so moving its RIP changes nothing for it; once only. */
static int rewind_hlt(struct kevd_vm *vm, struct kevd_vcpu *v, struct kevd_error *err)
{
	struct kvm_regs regs;
	bool todo;

	pthread_mutex_lock(&vm->lock);
	todo = v->in_hlt && !v->hlt_rewound;
	pthread_mutex_unlock(&vm->lock);
	if (!todo)
		return 0;
	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return kevd_error_sys(err, errno, "KVM_GET_REGS");
	regs.rip -= 1;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return kevd_error_sys(err, errno, "KVM_SET_REGS");
	pthread_mutex_lock(&vm->lock);
	v->hlt_rewound = true;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static int vcpus_save(struct kevd_vm *vm, void *state, struct kevd_blob *out, struct kevd_error *err)
{
	(void)state;
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct kevd_blob one;
		int r;

		if ((r = rewind_hlt(vm, &vm->vcpus[i], err)) < 0)
			return kevd_error_prefix(err, "vcpu %u", i);
		kevd_blob_init(&one);
		r = kevd_kvmstate_vcpu_save(vm->kvm_fd, vm->vcpus[i].fd, vm->sipi, &one, err);
		if (r == 0)
			kevd_blob_put(out, i, one.data, one.len);
		if (r == 0 && one.oom)
			r = kevd_error_sys(err, ENOMEM, "vcpu %u", i);
		kevd_blob_free(&one);
		if (r < 0)
			return kevd_error_prefix(err, "vcpu %u", i);
	}
	return 0;
}

static int vcpus_load(struct kevd_vm *vm, void *state, const void *data, size_t len, struct kevd_error *err)
{
	struct kevd_blob_reader rd;
	unsigned next = 0;
	const void *p;
	uint32_t tag;
	size_t n;
	int r;

	(void)state;
	kevd_blob_reader_init(&rd, data, len);
	while ((r = kevd_blob_next(&rd, &tag, &p, &n)) == 1) {
		if (tag != next || next >= vm->nvcpus)
			return kevd_error_set(err, EBADMSG, "vcpu record %u where %u was due (the VM has %u)", tag,
					      next, vm->nvcpus);
		if ((r = kevd_kvmstate_vcpu_load(vm->kvm_fd, vm->vcpus[next].fd, vm->sipi, p, n, err)) < 0)
			return kevd_error_prefix(err, "vcpu %u", next);
		next++;
	}
	if (r < 0 || next != vm->nvcpus)
		return kevd_error_set(err, EBADMSG, "%u vcpu records for %u vCPUs%s", next, vm->nvcpus,
				      r < 0 ? " (truncated)" : "");
	return 0;
}

const struct kevd_vm_part kevd_part_vcpus = {
	.name = "vcpus", .create = vcpus_create, .start = vcpus_start, .quiesce = vcpus_quiesce,
	.free = vcpus_free, .save = vcpus_save, .load = vcpus_load,
};
