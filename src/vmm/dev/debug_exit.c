/*
 * The debug-exit port (0xf4, as QEMU's isa-debug-exit): a write of V ends
 * the guest with exit status (V << 1) | 1; reads return 0.
 */
#include "config.h"

#include <string.h>

#include "vmm/platform.h"
#include "vmm/vm_internal.h"

static void debug_exit_io(void *opaque, const struct kevd_io *io)
{
	struct kevd_vm *vm = opaque;
	uint32_t val = 0;

	if (!io->write) {
		memset(io->data, 0, io->size);
		return;
	}
	memcpy(&val, io->data, io->size < sizeof(val) ? io->size : sizeof(val));
	kevd_vm_end(vm, KEVD_VM_EXITED, (int)((val << 1) | 1), "guest wrote 0x%x to the debug exit port", val);
}

static int debug_exit_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	(void)state;
	if (kevd_iobus_register(vm->iobus, KEVD_IO_PIO, KEVD_PLAT_DEBUG_EXIT_PORT, 1, "debug-exit", debug_exit_io,
				vm, err) < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

const struct kevd_vm_part kevd_dev_debug_exit = { .name = "debug-exit", .create = debug_exit_create };
