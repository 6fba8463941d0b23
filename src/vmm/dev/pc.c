/*
 * The few PC ports a Linux guest touches that end the VM or would hang it,
 * present in SIPI-mode VMs only (the PC kevd builds for Linux): the
 * hardware-reduced ACPI sleep control and status registers (S5 = power
 * off), the i8042 command port (0xfe = reset), and a CMOS clock that reads
 * 0, so that Linux's wait for the RTC's update-in-progress bit ends at once.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/acpi.h"
#include "vmm/platform.h"
#include "vmm/vm_internal.h"

struct pc {
	struct kevd_vm *vm;     /* borrowed */
	uint8_t cmos_index;     /* atomic relaxed: the last index written to port 0x70 */
};

static void fill(const struct kevd_io *io, uint8_t byte)
{
	if (!io->write)
		memset(io->data, byte, io->size);
}

static void acpi_sleep_io(void *opaque, const struct kevd_io *io)
{
	struct pc *pc = opaque;
	uint8_t v = io->data[0];

	/* Offset 0 is the sleep control register, 1 the status register. */
	if (io->write && io->offset == 0 && (v & KEVD_ACPI_SLP_EN) &&
	    ((v & KEVD_ACPI_SLP_TYP_MASK) >> KEVD_ACPI_SLP_TYP_SHIFT) == KEVD_PLAT_ACPI_S5_TYP)
		kevd_vm_end(pc->vm, KEVD_VM_EXITED, -1, "guest powered off (ACPI S5)");
	fill(io, 0);
}

static void i8042_io(void *opaque, const struct kevd_io *io)
{
	struct pc *pc = opaque;

	if (io->write && io->data[0] == 0xfe)
		kevd_vm_end(pc->vm, KEVD_VM_EXITED, -1, "guest reset the machine (i8042 pulse)");
	fill(io, 0);  /* no data, input buffer empty: ready for commands */
}

static void cmos_io(void *opaque, const struct kevd_io *io)
{
	struct pc *pc = opaque;

	if (io->offset == 0) {
		if (io->write)
			__atomic_store_n(&pc->cmos_index, io->data[0] & 0x7f, __ATOMIC_RELAXED);
		fill(io, 0xff);
	} else {
		fill(io, 0);  /* every CMOS register reads 0 */
	}
}

static int pc_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	struct pc *pc;

	if (!vm->sipi)
		return 0;
	pc = calloc(1, sizeof(*pc));
	if (!pc)
		return kevd_error_sys(err, ENOMEM, "vm '%s': PC ports", vm->name);
	pc->vm = vm;
	*state = pc;
	if (kevd_iobus_register(vm->iobus, KEVD_IO_PIO, KEVD_PLAT_ACPI_SLEEP_PORT, 2, "acpi-sleep", acpi_sleep_io,
				pc, err) < 0 ||
	    kevd_iobus_register(vm->iobus, KEVD_IO_PIO, KEVD_PLAT_I8042_PORT, 1, "i8042", i8042_io, pc, err) < 0 ||
	    kevd_iobus_register(vm->iobus, KEVD_IO_PIO, KEVD_PLAT_CMOS_PORT, 2, "cmos", cmos_io, pc, err) < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

static void pc_free(struct kevd_vm *vm, void *state)
{
	(void)vm;
	free(state);
}

const struct kevd_vm_part kevd_dev_pc = { .name = "pc", .create = pc_create, .free = pc_free };
