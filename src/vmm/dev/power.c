/*
 * The two ports through which a guest ends the machine, in every VM: the
 * hardware-reduced ACPI sleep control register (status at +1), where
 * SLP_TYP 5 with SLP_EN is S5, power off, as the FADT of a Linux VM
 * describes it; and the i8042 command port, where 0xfe pulses the reset
 * line.  Both end the VM as exited.  Kernels that are not Linux get no ACPI
 * tables, but the ports mean the same for them (kevd's test guest uses
 * both), so a guest's power-off or reset never leaves a VM running.
 */
#include "config.h"

#include <string.h>

#include "vmm/acpi.h"
#include "vmm/platform.h"
#include "vmm/vm_internal.h"

static void acpi_sleep_io(void *opaque, const struct kevd_io *io)
{
	struct kevd_vm *vm = opaque;
	uint8_t v = io->data[0];

	/* Offset 0 is the sleep control register, 1 the status register. */
	if (io->write && io->offset == 0 && (v & KEVD_ACPI_SLP_EN) &&
	    ((v & KEVD_ACPI_SLP_TYP_MASK) >> KEVD_ACPI_SLP_TYP_SHIFT) == KEVD_PLAT_ACPI_S5_TYP)
		kevd_vm_end(vm, KEVD_VM_EXITED, -1, "guest powered off (ACPI S5)");
	if (!io->write)
		memset(io->data, 0, io->size);
}

static void i8042_io(void *opaque, const struct kevd_io *io)
{
	struct kevd_vm *vm = opaque;

	if (io->write && io->data[0] == 0xfe)
		kevd_vm_end(vm, KEVD_VM_EXITED, -1, "guest reset the machine (i8042 pulse)");
	if (!io->write)
		memset(io->data, 0, io->size);  /* no data, input buffer empty: ready for commands */
}

static int power_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	(void)state;
	if (kevd_iobus_register(vm->iobus, KEVD_IO_PIO, KEVD_PLAT_ACPI_SLEEP_PORT, 2, "acpi-sleep", acpi_sleep_io,
				vm, err) < 0 ||
	    kevd_iobus_register(vm->iobus, KEVD_IO_PIO, KEVD_PLAT_I8042_PORT, 1, "i8042", i8042_io, vm, err) < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

const struct kevd_vm_part kevd_dev_power = { .name = "power", .create = power_create };
