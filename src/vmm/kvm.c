/*
 * The kvm part: /dev/kvm, the capabilities kevd relies on, the VM fd and,
 * for a PC (SIPI mode), the in-kernel interrupt controllers and PIT.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fault.h"
#include "common/log.h"
#include "vmm/platform.h"
#include "vmm/kvmstate.h"
#include "vmm/vm_internal.h"

static int check_kvm(struct kevd_vm *vm, struct kevd_error *err)
{
	int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	int max;

	if (api != KVM_API_VERSION)
		return kevd_error_set(err, ENOTSUP, "vm '%s': KVM API version %d, kevd needs %d", vm->name, api,
				      KVM_API_VERSION);
	max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max > 0 && vm->nvcpus > (unsigned)max)
		return kevd_error_set(err, EINVAL, "vm '%s': %u vCPUs is more than KVM allows here (%d)",
				      vm->name, vm->nvcpus, max);
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) <= 0 ||
	    ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS) <= 0)
		return kevd_error_set(err, ENOTSUP, "vm '%s': KVM lacks immediate_exit or sync regs", vm->name);
	return 0;
}

/* 8259s, I/O APIC at 0xfec00000 and a LAPIC per vCPU, in KVM; then the
 * PIT, whose IRQ 0 reaches I/O APIC pin 2. */
static int create_pc(struct kevd_vm *vm, struct kevd_error *err)
{
	struct kvm_pit_config pit = { .flags = 0 };

	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return kevd_error_sys(err, errno, "vm '%s': KVM_CREATE_IRQCHIP", vm->name);
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return kevd_error_sys(err, errno, "vm '%s': KVM_CREATE_PIT2", vm->name);
	return 0;
}

static int kvm_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	int r, size;

	(void)state;
	/* After the image part, which tells whether the VM is a PC. */
	if (vm->spare && (vm->spare->memory_mib != vm->cfg.memory_mib || vm->spare->nvcpus != vm->nvcpus ||
			  vm->spare->pc != vm->sipi)) {
		kevd_vm_spare_free(vm->spare);
		vm->spare = NULL;
	}
	if (vm->spare) {
		/* Made by this function and the next parts' (kevd_vm_spare_new()). */
		vm->kvm_fd = vm->spare->kvm_fd;
		vm->vm_fd = vm->spare->vm_fd;
		vm->run_size = vm->spare->run_size;
		vm->spare->kvm_fd = vm->spare->vm_fd = -1;
		vm->from_spare = true;
		return check_kvm(vm, err);
	}
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return kevd_error_sys(err, errno, "vm '%s': /dev/kvm", vm->name);
	if ((r = check_kvm(vm, err)) < 0)
		return r;
	/* KVM_CREATE_VM returns EINTR when a signal (the daemon's SIGHUP)
	 * lands while it waits; it has done nothing then, so ask again. */
	vm->vm_fd = KEVD_RETRY_EINTR(kevd_fault("kvm_create_vm") ? (errno = EINTR, -1)
								 : ioctl(vm->kvm_fd, KVM_CREATE_VM, 0));
	if (vm->vm_fd < 0)
		return kevd_error_sys(err, errno, "vm '%s': KVM_CREATE_VM", vm->name);
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KEVD_PLAT_TSS_GPA) < 0)
		return kevd_error_sys(err, errno, "vm '%s': KVM_SET_TSS_ADDR", vm->name);
	if (vm->sipi && (r = create_pc(vm, err)) < 0)
		return r;
	size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size <= 0)
		return kevd_error_sys(err, errno, "vm '%s': KVM_GET_VCPU_MMAP_SIZE", vm->name);
	vm->run_size = (size_t)size;
	return 0;
}

static void kvm_free(struct kevd_vm *vm, void *state)
{
	(void)state;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
}

/* A PC's interrupt controllers and PIT, and kvmclock, in every VM. */
static int kvm_save(struct kevd_vm *vm, void *state, struct kevd_blob *out, struct kevd_error *err)
{
	(void)state;
	return kevd_kvmstate_vm_save(vm->vm_fd, vm->sipi, vm->sipi, out, err);
}

static int kvm_load(struct kevd_vm *vm, void *state, const void *data, size_t len, struct kevd_error *err)
{
	(void)state;
	return kevd_kvmstate_vm_load(vm->vm_fd, vm->sipi, vm->sipi, data, len, err);
}

const struct kevd_vm_part kevd_part_kvm = {
	.name = "kvm", .create = kvm_create, .free = kvm_free, .save = kvm_save, .load = kvm_load,
};

void kevd_vm_irq_line(struct kevd_vm *vm, unsigned irq, int level)
{
	struct kvm_irq_level l = { .irq = irq, .level = (uint32_t)level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		kevd_debug("vm '%s': KVM_IRQ_LINE %u %d: %s", vm->name, irq, level, strerror(errno));
}
