/*
 * VM lifecycle, guest memory and boot information (see vm.h).
 *
 * Setup runs in this order and kevd_vm_free() undoes it in reverse:
 * image -> KVM VM -> guest RAM (memslots) -> pager (userfaultfd on the
 * image pages) -> console and serial -> boot information -> vCPUs.
 *
 * Guest-physical layout: RAM from 0 to min(size, 0xbffda000), the rest from
 * 4 GiB.  kevd keeps the first 64 KiB for itself: a flat GDT for the 32-bit
 * entry at 0x500 and the boot information (multiboot2 or PVH start_info)
 * from 0x1000.  An image that puts a segment there is refused.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "vmm/acpi.h"
#include "vmm/bootinfo.h"
#include "vmm/pagewalk.h"
#include "vmm/vm_internal.h"

#define BOOT_AREA_END 0x10000
#define BOOT_GDT_GPA 0x500
#define BOOT_INFO_GPA 0x1000
#define BOOT_INFO_MAX (BOOT_AREA_END - BOOT_INFO_GPA)
#define ACPI_GPA 0xe0000             /* in the reserved legacy area, where ACPI tables live on PCs */
#define ACPI_MAX 0x10000
#define INITRD_LIMIT (1ull << 31)    /* Linux wants its initrd below 2 GiB */
#define SERIAL_IRQ 4
#define KVM_TSS_GPA 0xfffbd000ull    /* inside the MMIO hole, below the BIOS area */
#define MAX_MEMORY_MIB (1u << 20)    /* 1 TiB */
#define E820_MAX 8

static const char *const state_names[] = {
	[KEVD_VM_CREATED] = "created", [KEVD_VM_RUNNING] = "running", [KEVD_VM_EXITED] = "exited",
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

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void notify_end(struct kevd_vm *vm)
{
	if (vm->cfg.on_end)
		vm->cfg.on_end(vm->cfg.cb_arg, vm);
}

bool kevd_vm_end(struct kevd_vm *vm, enum kevd_vm_state state, int exit_status, const char *fmt, ...)
{
	bool won = false;
	va_list ap;

	pthread_mutex_lock(&vm->lock);
	if (vm->state == KEVD_VM_RUNNING || vm->state == KEVD_VM_CREATED) {
		vm->state = state;
		vm->exit_status = exit_status;
		va_start(ap, fmt);
		vsnprintf(vm->reason, sizeof(vm->reason), fmt, ap);
		va_end(ap);
		vm->end_ns = now_ns();
		won = true;
	}
	__atomic_store_n(&vm->stopping, 1, __ATOMIC_RELEASE);
	/* Under the lock: kevd_vm_free() clears a vCPU's started flag under it
	 * before joining, so no kick reaches a joined thread. */
	for (unsigned i = 0; vm->vcpus && i < vm->nvcpus; i++)
		kevd_vcpu_kick(&vm->vcpus[i]);
	pthread_mutex_unlock(&vm->lock);
	if (won) {
		kevd_info("vm '%s': %s: %s", vm->name, kevd_vm_state_name(state), vm->reason);
		notify_end(vm);
	}
	return won;
}

static void on_pager_failure(void *arg, kevd_gpa_t gpa, const struct kevd_error *e)
{
	struct kevd_vm *vm = arg;

	kevd_vm_end(vm, KEVD_VM_FAILED, -1, "lazy paging failed: %s", e->msg);
}

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
	if (cfg->cmdline && strlen(cfg->cmdline) >= 4096)
		return kevd_error_set(err, E2BIG, "vm '%s': command line longer than 4095 bytes", n);
	return 0;
}

static void *map_ram(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Guest RAM in a core dump of kevd is neither useful nor private. */
	madvise(p, len, MADV_DONTDUMP);
	return p;
}

static void serial_irq(void *arg, int level)
{
	struct kevd_vm *vm = arg;
	struct kvm_irq_level irq = { .irq = SERIAL_IRQ, .level = (uint32_t)level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		kevd_debug("vm '%s': KVM_IRQ_LINE %d: %s", vm->name, level, strerror(errno));
}

static int setup_memory(struct kevd_vm *vm, struct kevd_error *err)
{
	uint64_t bytes = vm->cfg.memory_mib << 20;
	struct kvm_userspace_memory_region slot;

	vm->low_len = bytes < KEVD_MMIO_HOLE_START ? bytes : KEVD_MMIO_HOLE_START;
	vm->high_len = bytes - vm->low_len;
	vm->ram_low = map_ram(vm->low_len);
	if (!vm->ram_low)
		return kevd_error_sys(err, errno, "vm '%s': mapping %zu bytes of guest RAM", vm->name, vm->low_len);
	slot = (struct kvm_userspace_memory_region){
		.slot = 0, .guest_phys_addr = 0, .memory_size = vm->low_len,
		.userspace_addr = (uintptr_t)vm->ram_low,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return kevd_error_sys(err, errno, "vm '%s': KVM_SET_USER_MEMORY_REGION (low RAM)", vm->name);
	if (vm->high_len) {
		vm->ram_high = map_ram(vm->high_len);
		if (!vm->ram_high)
			return kevd_error_sys(err, errno, "vm '%s': mapping %zu bytes of guest RAM", vm->name,
					      vm->high_len);
		slot = (struct kvm_userspace_memory_region){
			.slot = 1, .guest_phys_addr = KEVD_MMIO_HOLE_END, .memory_size = vm->high_len,
			.userspace_addr = (uintptr_t)vm->ram_high,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return kevd_error_sys(err, errno, "vm '%s': KVM_SET_USER_MEMORY_REGION (high RAM)", vm->name);
	}
	return 0;
}

static int setup_pager(struct kevd_vm *vm, struct kevd_error *err)
{
	struct kevd_pager_config pc = {
		.handler_threads = vm->cfg.pager_threads, .window_pages = vm->cfg.window_pages,
		.eager = vm->cfg.eager, .on_failure = on_pager_failure, .cb_arg = vm,
	};
	int r = kevd_pager_new(vm->img, &pc, &vm->pager, err);

	if (r < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	r = kevd_pager_add_memory(vm->pager, KEVD_GPA(0), vm->ram_low, vm->low_len, err);
	if (r == 0 && vm->high_len)
		r = kevd_pager_add_memory(vm->pager, KEVD_GPA(KEVD_MMIO_HOLE_END), vm->ram_high, vm->high_len, err);
	if (r < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

/* The flat GDT the 32-bit entry state refers to: null, null, code (0x10),
 * data (0x18), as multiboot2 and PVH kernels expect of a loader. */
static void write_gdt(struct kevd_vm *vm)
{
	unsigned char *g = vm->ram_low + BOOT_GDT_GPA;

	kevd_put64(g, 0);
	kevd_put64(g + 8, 0);
	kevd_put64(g + 16, 0x00cf9b000000ffffull);
	kevd_put64(g + 24, 0x00cf93000000ffffull);
}

/* The initrd is copied in whole: it is a compressed archive the kernel
 * unpacks in one pass, so lazy loading would gain nothing.  It goes as high
 * as possible below 2 GiB and below the hole, where Linux expects it. */
static int load_initrd(struct kevd_vm *vm, struct kevd_error *err)
{
	uint64_t top = vm->low_len < INITRD_LIMIT ? vm->low_len : INITRD_LIMIT;
	uint64_t kernel_end = 0, size, done = 0;
	struct stat st;

	for (size_t i = 0; i < kevd_image_segment_count(vm->img); i++) {
		const struct kevd_image_segment *g = kevd_image_segment(vm->img, i);

		if (g->paddr.v + g->memsz > kernel_end)
			kernel_end = g->paddr.v + g->memsz;
	}
	if (fstat(vm->initrd_fd, &st) < 0)
		return kevd_error_sys(err, errno, "vm '%s': initrd '%s'", vm->name, vm->initrd);
	if (!S_ISREG(st.st_mode))
		return kevd_error_set(err, EINVAL, "vm '%s': initrd '%s': not a regular file", vm->name, vm->initrd);
	size = (uint64_t)st.st_size;
	if (size == 0)
		return kevd_error_set(err, EINVAL, "vm '%s': initrd '%s' is empty", vm->name, vm->initrd);
	if (size + kevd_page_up(kernel_end) + (1 << 20) > top)
		return kevd_error_set(err, ERANGE, "vm '%s': initrd '%s' (%llu bytes) does not fit in guest RAM below %llu MiB above the kernel",
				      vm->name, vm->initrd, (unsigned long long)size, (unsigned long long)(top >> 20));
	vm->initrd_gpa = kevd_page_down(top - size);
	vm->initrd_size = size;
	while (done < size) {
		ssize_t n = pread(vm->initrd_fd, vm->ram_low + vm->initrd_gpa + done, size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return kevd_error_sys(err, n < 0 ? errno : EIO, "vm '%s': reading initrd '%s'", vm->name, vm->initrd);
		done += (uint64_t)n;
	}
	close(vm->initrd_fd);
	vm->initrd_fd = -1;
	return 0;
}

static int setup_boot(struct kevd_vm *vm, struct kevd_error *err)
{
	struct kevd_e820_entry map[E820_MAX];
	const char *cmdline = vm->cmdline ? vm->cmdline : "";
	kevd_gpa_t pvh, rsdp = KEVD_GPA(0);
	int n, r;

	for (size_t i = 0; i < kevd_image_segment_count(vm->img); i++) {
		const struct kevd_image_segment *s = kevd_image_segment(vm->img, i);

		if (s->paddr.v < BOOT_AREA_END)
			return kevd_error_set(err, EINVAL, "vm '%s': image '%s': PT_LOAD %u at 0x%llx overlaps kevd's boot area 0x0-0x%x",
					      vm->name, vm->kernel, s->phdr_index, (unsigned long long)s->paddr.v,
					      BOOT_AREA_END);
		if (vm->sipi && s->paddr.v < ACPI_GPA + ACPI_MAX && s->paddr.v + s->memsz > ACPI_GPA)
			return kevd_error_set(err, EINVAL, "vm '%s': image '%s': PT_LOAD %u at 0x%llx overlaps the ACPI tables at 0x%x-0x%x",
					      vm->name, vm->kernel, s->phdr_index, (unsigned long long)s->paddr.v,
					      ACPI_GPA, ACPI_GPA + ACPI_MAX);
	}
	switch (vm->cfg.protocol) {
	case KEVD_BOOT_PVH:
		if (!kevd_image_pvh_entry(vm->img, &pvh))
			return kevd_error_set(err, EINVAL, "vm '%s': image '%s' has no Xen PVH entry note",
					      vm->name, vm->kernel);
		vm->protocol = KEVD_BOOT_PVH;
		break;
	case KEVD_BOOT_MULTIBOOT2:
		vm->protocol = KEVD_BOOT_MULTIBOOT2;
		break;
	default:
		vm->protocol = kevd_image_pvh_entry(vm->img, &pvh) ? KEVD_BOOT_PVH : KEVD_BOOT_MULTIBOOT2;
		break;
	}
	vm->entry = vm->protocol == KEVD_BOOT_PVH ? pvh : kevd_image_entry(vm->img);
	if (vm->entry.v >= (1ull << 32))
		return kevd_error_set(err, EINVAL, "vm '%s': entry 0x%llx is not reachable from 32-bit protected mode",
				      vm->name, (unsigned long long)vm->entry.v);

	n = kevd_boot_e820(vm->cfg.memory_mib << 20, map, E820_MAX, err);
	if (n < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	if (vm->initrd_fd >= 0) {
		if (vm->protocol != KEVD_BOOT_PVH)
			return kevd_error_set(err, EINVAL, "vm '%s': an initrd needs the PVH boot protocol", vm->name);
		r = load_initrd(vm, err);
		if (r < 0)
			return r;
	}
	if (vm->sipi) {
		struct kevd_acpi_config ac = {
			.ncpus = vm->nvcpus, .lapic_addr = 0xfee00000, .ioapic_addr = 0xfec00000,
			.ioapic_id = (uint8_t)vm->nvcpus, .sleep_port = KEVD_ACPI_SLEEP_PORT,
			.s5_slp_typ = KEVD_ACPI_S5_TYP, .serial_com1 = true,
		};

		r = kevd_acpi_build(vm->ram_low + ACPI_GPA, ACPI_MAX, KEVD_GPA(ACPI_GPA), &ac, &rsdp, err);
		if (r < 0)
			return kevd_error_prefix(err, "vm '%s'", vm->name);
	}
	write_gdt(vm);
	vm->boot_info_gpa = BOOT_INFO_GPA;
	if (vm->protocol == KEVD_BOOT_PVH)
		r = kevd_boot_pvh_build(vm->ram_low + BOOT_INFO_GPA, BOOT_INFO_MAX, KEVD_GPA(BOOT_INFO_GPA), map,
					(size_t)n, cmdline, KEVD_GPA(vm->initrd_gpa), vm->initrd_size, rsdp, err);
	else
		r = kevd_boot_mb2_build(vm->ram_low + BOOT_INFO_GPA, BOOT_INFO_MAX, KEVD_GPA(BOOT_INFO_GPA), map,
					(size_t)n, cmdline, "kevd " PACKAGE_VERSION, err);
	if (r < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

static int setup_kvm(struct kevd_vm *vm, struct kevd_error *err)
{
	int api, max;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return kevd_error_sys(err, errno, "vm '%s': /dev/kvm", vm->name);
	api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
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
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return kevd_error_sys(err, errno, "vm '%s': KVM_CREATE_VM", vm->name);
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_GPA) < 0)
		return kevd_error_sys(err, errno, "vm '%s': KVM_SET_TSS_ADDR", vm->name);
	if (vm->sipi) {
		struct kvm_pit_config pit = { .flags = 0 };

		/* 8259s, I/O APIC at 0xfec00000 and a LAPIC per vCPU, in KVM;
		 * then the PIT, whose IRQ 0 reaches I/O APIC pin 2. */
		if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
			return kevd_error_sys(err, errno, "vm '%s': KVM_CREATE_IRQCHIP", vm->name);
		if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
			return kevd_error_sys(err, errno, "vm '%s': KVM_CREATE_PIT2", vm->name);
	}
	max = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (max <= 0)
		return kevd_error_sys(err, errno, "vm '%s': KVM_GET_VCPU_MMAP_SIZE", vm->name);
	vm->run_size = (size_t)max;
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

int kevd_vm_create(const struct kevd_vm_config *cfg, struct kevd_vm **out, struct kevd_error *err)
{
	struct kevd_vm *vm;
	bool oom = false;
	uint64_t t0 = now_ns();
	int r;

	r = check_config(cfg, err);
	if (r < 0 || !(vm = calloc(1, sizeof(*vm)))) {
		if (cfg->kernel_fd_valid)
			close(cfg->kernel_fd);
		if (cfg->initrd_fd_valid)
			close(cfg->initrd_fd);
		return r < 0 ? r : kevd_error_sys(err, ENOMEM, "vm");
	}
	vm->create_ns = t0;
	vm->initrd_fd = cfg->initrd_fd_valid ? cfg->initrd_fd : -1;
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = -1;
	vm->exit_status = -1;
	vm->nvcpus = cfg->vcpus;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->ended, NULL);
	vm->name = dup_or_null(cfg->name ? cfg->name : "vm", &oom);
	vm->kernel = dup_or_null(cfg->kernel, &oom);
	vm->cmdline = dup_or_null(cfg->cmdline, &oom);
	vm->initrd = dup_or_null(cfg->initrd, &oom);
	vm->cfg.name = vm->name;
	vm->cfg.kernel = vm->kernel;
	vm->cfg.cmdline = vm->cmdline;
	vm->cfg.initrd = vm->initrd;
	vm->cfg.initrd_fd_valid = false;
	if (!vm->cfg.console_bytes)
		vm->cfg.console_bytes = KEVD_VM_DEFAULT_CONSOLE;
	vm->cfg.kernel_fd_valid = false;
	if (oom) {
		if (cfg->kernel_fd_valid)
			close(cfg->kernel_fd);
		r = kevd_error_sys(err, ENOMEM, "vm");
		goto fail;
	}
	r = cfg->kernel_fd_valid ? kevd_image_open_fd(cfg->kernel_fd, vm->kernel, &vm->img, err)
				 : kevd_image_open(vm->kernel, &vm->img, err);
	if (r < 0) {
		kevd_error_prefix(err, "vm '%s'", vm->name);
		goto fail;
	}
	r = kevd_image_check_ram(vm->img, cfg->memory_mib << 20, err);
	if (r < 0) {
		kevd_error_prefix(err, "vm '%s'", vm->name);
		goto fail;
	}
	if (vm->initrd_fd < 0 && vm->initrd) {
		vm->initrd_fd = open(vm->initrd, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (vm->initrd_fd < 0) {
			r = kevd_error_sys(err, errno, "vm '%s': initrd '%s'", vm->name, vm->initrd);
			goto fail;
		}
	}
	vm->sipi = cfg->ap_start == KEVD_AP_SIPI || (cfg->ap_start == KEVD_AP_AUTO && kevd_image_is_linux(vm->img));
	if ((r = setup_kvm(vm, err)) < 0 || (r = setup_memory(vm, err)) < 0 || (r = setup_pager(vm, err)) < 0)
		goto fail;
	r = kevd_console_new(vm->cfg.console_bytes, cfg->console_fd, &vm->console, err);
	if (r < 0)
		goto fail;
	vm->serial = kevd_serial_new(vm->console);
	if (!vm->serial) {
		r = kevd_error_sys(err, ENOMEM, "vm '%s': serial port", vm->name);
		goto fail;
	}
	if (vm->sipi)
		kevd_serial_set_irq(vm->serial, serial_irq, vm);
	if ((r = setup_boot(vm, err)) < 0)
		goto fail;
	vm->vcpus = calloc(vm->nvcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		r = kevd_error_sys(err, ENOMEM, "vm '%s': vcpus", vm->name);
		goto fail;
	}
	/* All marked unopened first: a failed setup frees the whole array. */
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vm->vcpus[i] = (struct kevd_vcpu){ .vm = vm, .index = i, .fd = -1 };
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if ((r = kevd_vcpu_setup(vm, &vm->vcpus[i], err)) < 0)
			goto fail;
	vm->state = KEVD_VM_CREATED;
	*out = vm;
	return 0;
fail:
	kevd_vm_free(vm);
	return r;
}

int kevd_vm_start(struct kevd_vm *vm, struct kevd_error *err)
{
	int r;

	pthread_mutex_lock(&vm->lock);
	if (vm->state != KEVD_VM_CREATED) {
		enum kevd_vm_state s = vm->state;

		pthread_mutex_unlock(&vm->lock);
		return kevd_error_set(err, EBUSY, "vm '%s' is %s, not created", vm->name, kevd_vm_state_name(s));
	}
	vm->state = KEVD_VM_RUNNING;
	vm->start_ns = now_ns();
	pthread_mutex_unlock(&vm->lock);

	r = kevd_pager_start(vm->pager, err);
	if (r < 0) {
		kevd_error_prefix(err, "vm '%s'", vm->name);
		kevd_vm_end(vm, KEVD_VM_FAILED, -1, "%s", err->msg);
		return r;
	}
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		pthread_mutex_lock(&vm->lock);
		vm->live++;
		pthread_mutex_unlock(&vm->lock);
		r = kevd_vcpu_start(&vm->vcpus[i], err);
		if (r < 0) {
			pthread_mutex_lock(&vm->lock);
			if (--vm->live == 0)
				pthread_cond_broadcast(&vm->ended);
			pthread_mutex_unlock(&vm->lock);
			kevd_vm_end(vm, KEVD_VM_FAILED, -1, "%s", err->msg);
			return r;
		}
	}
	return 0;
}

bool kevd_vm_stop(struct kevd_vm *vm, const char *reason)
{
	return kevd_vm_end(vm, KEVD_VM_STOPPED, -1, "%s", reason ? reason : "stopped on request");
}

int kevd_vm_wait(struct kevd_vm *vm, int timeout_ms)
{
	struct timespec deadline;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	if (timeout_ms >= 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
	}
	pthread_mutex_lock(&vm->lock);
	while (vm->live > 0 && r == 0)
		r = timeout_ms < 0 ? pthread_cond_wait(&vm->ended, &vm->lock)
				   : pthread_cond_timedwait(&vm->ended, &vm->lock, &deadline);
	pthread_mutex_unlock(&vm->lock);
	return r == ETIMEDOUT ? -ETIMEDOUT : 0;
}

void kevd_vm_free(struct kevd_vm *vm)
{
	if (!vm)
		return;
	if (vm->vcpus)
		kevd_vm_end(vm, KEVD_VM_STOPPED, -1, "VM deleted");
	/* The pager's threads stop first and its userfaultfd closes, which wakes
	 * any vCPU still asleep on a fault (even one that no kick reaches, on a
	 * kernel without UFFDIO_POISON) and leaves nobody to kick a vCPU later. */
	kevd_pager_stop(vm->pager);
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
	kevd_pager_free(vm->pager);
	for (unsigned i = 0; vm->vcpus && i < vm->nvcpus; i++) {
		struct kevd_vcpu *v = &vm->vcpus[i];

		if (v->run)
			munmap(v->run, vm->run_size);
		if (v->fd >= 0)
			close(v->fd);
	}
	free(vm->vcpus);
	kevd_serial_free(vm->serial);
	kevd_console_free(vm->console);
	if (vm->ram_low)
		munmap(vm->ram_low, vm->low_len);
	if (vm->ram_high)
		munmap(vm->ram_high, vm->high_len);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	kevd_image_free(vm->img);
	pthread_cond_destroy(&vm->ended);
	pthread_mutex_destroy(&vm->lock);
	if (vm->initrd_fd >= 0)
		close(vm->initrd_fd);
	free(vm->name);
	free(vm->kernel);
	free(vm->cmdline);
	free(vm->initrd);
	free(vm);
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
	t->first_run_ns = __atomic_load_n(&vm->first_run_ns, __ATOMIC_RELAXED);
	t->first_exit_ns = __atomic_load_n(&vm->first_exit_ns, __ATOMIC_RELAXED);
}

void kevd_vm_vcpu_info_from(struct kevd_vm *vm, unsigned index, const struct kevd_pager_stats *st,
			    struct kevd_vcpu_info *out)
{
	const struct kevd_vcpu *v;

	memset(out, 0, sizeof(*out));
	if (index >= vm->nvcpus)
		return;
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

	kevd_pager_get_stats(vm->pager, &st);
	kevd_vm_vcpu_info_from(vm, index, &st, out);
}

void kevd_vm_pager_stats(struct kevd_vm *vm, struct kevd_pager_stats *out)
{
	kevd_pager_get_stats(vm->pager, out);
}

size_t kevd_vm_console_read(struct kevd_vm *vm, uint64_t offset, void *buf, size_t len,
			    uint64_t *start, uint64_t *end)
{
	return kevd_console_read(vm->console, offset, buf, len, start, end);
}

int kevd_vm_translate_gpa(struct kevd_vm *vm, kevd_gpa_t gpa, void **host,
			  enum kevd_page_state *state, bool *image_backed, struct kevd_error *err)
{
	if (kevd_pager_translate(vm->pager, gpa, host, state, image_backed) < 0)
		return kevd_error_set(err, ENOENT, "vm '%s': guest-physical 0x%llx is not RAM", vm->name,
				      (unsigned long long)gpa.v);
	return 0;
}

static const void *read_guest(void *ctx, kevd_gpa_t gpa, size_t len)
{
	struct kevd_vm *vm = ctx;
	enum kevd_page_state state;
	bool backed;
	void *host;

	/* Page tables never straddle pages; one translation covers LEN. */
	if (((gpa.v & KEVD_PAGE_MASK) + len) > KEVD_PAGE_SIZE)
		return NULL;
	if (kevd_pager_translate(vm->pager, gpa, &host, &state, &backed) < 0)
		return NULL;
	/* Only memory that is there: touching an unloaded image page from
	 * here would load it (or, if it failed, fault this thread). */
	if (backed && state != KEVD_PAGE_MAPPED)
		return NULL;
	return host;
}

int kevd_vm_translate_gva(struct kevd_vm *vm, unsigned vcpu, kevd_gva_t gva, kevd_gpa_t *gpa,
			  struct kevd_error *err)
{
	struct kevd_paging_regs regs;
	const struct kevd_vcpu *v;

	if (vcpu >= vm->nvcpus)
		return kevd_error_set(err, EINVAL, "vm '%s': no vcpu %u (it has %u)", vm->name, vcpu, vm->nvcpus);
	v = &vm->vcpus[vcpu];
	regs.cr0 = __atomic_load_n(&v->cr0, __ATOMIC_RELAXED);
	regs.cr3 = __atomic_load_n(&v->cr3, __ATOMIC_RELAXED);
	regs.cr4 = __atomic_load_n(&v->cr4, __ATOMIC_RELAXED);
	regs.efer = __atomic_load_n(&v->efer, __ATOMIC_RELAXED);
	if (kevd_pagewalk(gva, &regs, read_guest, vm, gpa, NULL, err) < 0)
		return kevd_error_prefix(err, "vm '%s': vcpu %u", vm->name, vcpu);
	return 0;
}
