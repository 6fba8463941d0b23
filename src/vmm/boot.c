/*
 * Boot placement: the image part (the kernel image and the initrd file,
 * which decide everything after them: how much RAM the image needs,
 * whether the VM is a PC with SIPI) and the boot part (entry point and
 * protocol, the initrd in RAM, ACPI tables, the GDT of the 32-bit entry
 * state and the boot information).
 *
 * Guest-physical layout (vmm/platform.h): RAM from 0 to min(size,
 * 0xbffda000), the rest from 4 GiB.  kevd keeps the first 64 KiB for
 * itself: a flat GDT for the 32-bit entry at 0x500 and the boot
 * information (multiboot2 or PVH start_info) from 0x1000.  An image that
 * puts a segment there is refused.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/cleanup.h"
#include "vmm/acpi.h"
#include "vmm/bootinfo.h"
#include "vmm/platform.h"
#include "vmm/vm_internal.h"

#define BOOT_INFO_MAX (KEVD_PLAT_BOOT_AREA_END - KEVD_PLAT_BOOT_INFO_GPA)
#define E820_MAX 8

/* ---- the image part ---- */

static int image_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	struct kevd_vm_config *cfg = &vm->cfg;
	int r;

	(void)state;
	if (cfg->initrd_fd_valid) {
		vm->initrd_fd = cfg->initrd_fd;
		cfg->initrd_fd_valid = false;
	}
	if (cfg->kernel_fd_valid) {
		cfg->kernel_fd_valid = false;  /* taken even on failure */
		r = kevd_image_open_fd(cfg->kernel_fd, vm->kernel, &vm->img, err);
	} else {
		r = kevd_image_open(vm->kernel, &vm->img, err);
	}
	if (r == 0)
		r = kevd_image_check_ram(vm->img, cfg->memory_mib << 20, err);
	if (r < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	if (vm->initrd_fd < 0 && vm->initrd) {
		vm->initrd_fd = open(vm->initrd, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (vm->initrd_fd < 0)
			return kevd_error_sys(err, errno, "vm '%s': initrd '%s'", vm->name, vm->initrd);
	}
	vm->sipi = cfg->ap_start == KEVD_AP_SIPI || (cfg->ap_start == KEVD_AP_AUTO && kevd_image_is_linux(vm->img));
	return 0;
}

static void image_free(struct kevd_vm *vm, void *state)
{
	(void)state;
	kevd_image_free(vm->img);
	if (vm->initrd_fd >= 0)
		close(vm->initrd_fd);
}

const struct kevd_vm_part kevd_part_image = {
	.name = "image", .create = image_create, .free = image_free,
};

/* ---- the boot part ---- */

/* The flat GDT the 32-bit entry state refers to: null, null, code (0x10),
 * data (0x18), as multiboot2 and PVH kernels expect of a loader. */
static void write_gdt(struct kevd_vm *vm)
{
	unsigned char *g = vm->ram_low + KEVD_PLAT_GDT_GPA;

	kevd_put64(g, 0);
	kevd_put64(g + 8, 0);
	kevd_put64(g + KEVD_PLAT_SEL_CODE32, 0x00cf9b000000ffffull);
	kevd_put64(g + KEVD_PLAT_SEL_DATA32, 0x00cf93000000ffffull);
}

static uint64_t image_end(const struct kevd_image *img)
{
	uint64_t end = 0;

	for (size_t i = 0; i < kevd_image_segment_count(img); i++) {
		const struct kevd_image_segment *g = kevd_image_segment(img, i);

		if (g->paddr.v + g->memsz > end)
			end = g->paddr.v + g->memsz;
	}
	return end;
}

/* The initrd goes as high as possible below 2 GiB and below the hole,
 * where Linux expects it, and becomes part of the image: the pager loads
 * its pages as the kernel unpacks it (in one sequential pass, which the
 * growing fault-around window follows), so a large initrd costs the create
 * nothing, and VMs of one kernel and initrd share it like the kernel. */
int kevd_vm_place_initrd(struct kevd_vm *vm, struct kevd_error *err)
{
	uint64_t top = vm->low_len < KEVD_PLAT_INITRD_LIMIT ? vm->low_len : KEVD_PLAT_INITRD_LIMIT;
	uint64_t size;
	struct stat st;
	int r;

	if (vm->initrd_fd < 0)
		return 0;
	if (fstat(vm->initrd_fd, &st) < 0)
		return kevd_error_sys(err, errno, "vm '%s': initrd '%s'", vm->name, vm->initrd);
	if (!S_ISREG(st.st_mode))
		return kevd_error_set(err, EINVAL, "vm '%s': initrd '%s': not a regular file", vm->name, vm->initrd);
	size = (uint64_t)st.st_size;
	if (size == 0)
		return kevd_error_set(err, EINVAL, "vm '%s': initrd '%s' is empty", vm->name, vm->initrd);
	if (size + kevd_page_up(image_end(vm->img)) + (1 << 20) > top)
		return kevd_error_set(err, ERANGE, "vm '%s': initrd '%s' (%llu bytes) does not fit in guest RAM below %llu MiB above the kernel",
				      vm->name, vm->initrd, (unsigned long long)size, (unsigned long long)(top >> 20));
	vm->initrd_gpa = kevd_page_down(top - size);
	vm->initrd_size = size;
	/* The image takes the descriptor, also when it fails. */
	r = kevd_image_add_flat(vm->img, vm->initrd_fd, vm->initrd, KEVD_GPA(vm->initrd_gpa), size, err);
	vm->initrd_fd = -1;
	if (r < 0)
		return kevd_error_prefix(err, "vm '%s': initrd '%s'", vm->name, vm->initrd);
	return 0;
}

static int check_placement(struct kevd_vm *vm, struct kevd_error *err)
{
	for (size_t i = 0; i < kevd_image_segment_count(vm->img); i++) {
		const struct kevd_image_segment *s = kevd_image_segment(vm->img, i);

		if (s->paddr.v < KEVD_PLAT_BOOT_AREA_END)
			return kevd_error_set(err, EINVAL, "vm '%s': image '%s': PT_LOAD %u at 0x%llx overlaps kevd's boot area 0x0-0x%x",
					      vm->name, vm->kernel, s->phdr_index, (unsigned long long)s->paddr.v,
					      KEVD_PLAT_BOOT_AREA_END);
		if (vm->sipi && s->paddr.v < KEVD_PLAT_ACPI_GPA + KEVD_PLAT_ACPI_MAX &&
		    s->paddr.v + s->memsz > KEVD_PLAT_ACPI_GPA)
			return kevd_error_set(err, EINVAL, "vm '%s': image '%s': PT_LOAD %u at 0x%llx overlaps the ACPI tables at 0x%x-0x%x",
					      vm->name, vm->kernel, s->phdr_index, (unsigned long long)s->paddr.v,
					      KEVD_PLAT_ACPI_GPA, KEVD_PLAT_ACPI_GPA + KEVD_PLAT_ACPI_MAX);
	}
	return 0;
}

static int choose_entry(struct kevd_vm *vm, struct kevd_error *err)
{
	kevd_gpa_t pvh;
	bool has_pvh = kevd_image_pvh_entry(vm->img, &pvh);

	switch (vm->cfg.protocol) {
	case KEVD_BOOT_PVH:
		if (!has_pvh)
			return kevd_error_set(err, EINVAL, "vm '%s': image '%s' has no Xen PVH entry note",
					      vm->name, vm->kernel);
		vm->protocol = KEVD_BOOT_PVH;
		break;
	case KEVD_BOOT_MULTIBOOT2:
		vm->protocol = KEVD_BOOT_MULTIBOOT2;
		break;
	default:
		vm->protocol = has_pvh ? KEVD_BOOT_PVH : KEVD_BOOT_MULTIBOOT2;
		break;
	}
	vm->entry = vm->protocol == KEVD_BOOT_PVH ? pvh : kevd_image_entry(vm->img);
	if (vm->entry.v >= (1ull << 32))
		return kevd_error_set(err, EINVAL, "vm '%s': entry 0x%llx is not reachable from 32-bit protected mode",
				      vm->name, (unsigned long long)vm->entry.v);
	return 0;
}

static int write_acpi(struct kevd_vm *vm, kevd_gpa_t *rsdp, struct kevd_error *err)
{
	struct kevd_acpi_config ac = {
		.ncpus = vm->nvcpus, .lapic_addr = KEVD_PLAT_LAPIC_GPA, .ioapic_addr = KEVD_PLAT_IOAPIC_GPA,
		.ioapic_id = (uint8_t)vm->nvcpus, .sleep_port = KEVD_PLAT_ACPI_SLEEP_PORT,
		.s5_slp_typ = KEVD_PLAT_ACPI_S5_TYP, .serial_com1 = true,
	};

	if (kevd_acpi_build(vm->ram_low + KEVD_PLAT_ACPI_GPA, KEVD_PLAT_ACPI_MAX, KEVD_GPA(KEVD_PLAT_ACPI_GPA), &ac,
			    rsdp, err) < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

static int write_boot_info(struct kevd_vm *vm, kevd_gpa_t rsdp, struct kevd_error *err)
{
	struct kevd_e820_entry map[E820_MAX];
	const char *cmdline = vm->cmdline ? vm->cmdline : "";
	unsigned char *at = vm->ram_low + KEVD_PLAT_BOOT_INFO_GPA;
	kevd_gpa_t gpa = KEVD_GPA(KEVD_PLAT_BOOT_INFO_GPA);
	int n = kevd_boot_e820(vm->cfg.memory_mib << 20, map, E820_MAX, err), r;

	if (n < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	vm->boot_info_gpa = KEVD_PLAT_BOOT_INFO_GPA;
	if (vm->protocol == KEVD_BOOT_PVH)
		r = kevd_boot_pvh_build(at, BOOT_INFO_MAX, gpa, map, (size_t)n, cmdline, KEVD_GPA(vm->initrd_gpa),
					vm->initrd_size, rsdp, err);
	else
		r = kevd_boot_mb2_build(at, BOOT_INFO_MAX, gpa, map, (size_t)n, cmdline, "kevd " PACKAGE_VERSION, err);
	if (r < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

static int boot_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	kevd_gpa_t rsdp = KEVD_GPA(0);
	int r;

	(void)state;
	if ((r = check_placement(vm, err)) < 0 || (r = choose_entry(vm, err)) < 0)
		return r;
	if (vm->initrd_size && vm->protocol != KEVD_BOOT_PVH)
		return kevd_error_set(err, EINVAL, "vm '%s': an initrd needs the PVH boot protocol", vm->name);
	/* A restored VM's memory is the snapshot's, already booted (and all
	 * of it the pager's to load: a write here would wait on a fault
	 * nobody serves yet). */
	if (vm->cfg.restore)
		return 0;
	if (vm->sipi && (r = write_acpi(vm, &rsdp, err)) < 0)
		return r;
	write_gdt(vm);
	return write_boot_info(vm, rsdp, err);
}

const struct kevd_vm_part kevd_part_boot = { .name = "boot", .create = boot_create };
