/*
 * What happens to an access no device claims: port reads return all ones
 * (an empty ISA bus) and each port is logged once per VM, so a guest that
 * probes hardware kevd lacks is visible without flooding the log; MMIO
 * reads return all ones too and are logged at debug level.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "vmm/vm_internal.h"

struct unclaimed {
	struct kevd_vm *vm;           /* borrowed */
	uint8_t logged[65536 / 8];    /* atomic bit per port: logged once */
};

static void unclaimed_pio(void *opaque, const struct kevd_io *io)
{
	struct unclaimed *u = opaque;
	uint16_t port = (uint16_t)io->addr;
	uint8_t bit = (uint8_t)(1u << (port & 7));

	if (!io->write)
		memset(io->data, 0xff, io->size);
	if (__atomic_fetch_or(&u->logged[port >> 3], bit, __ATOMIC_RELAXED) & bit)
		return;
	kevd_info("vm '%s': guest %s unhandled port 0x%x (ignored; logged once)", u->vm->name,
		  io->write ? "wrote" : "read", port);
}

static void unclaimed_mmio(void *opaque, const struct kevd_io *io)
{
	struct unclaimed *u = opaque;

	if (!io->write)
		memset(io->data, 0xff, io->size);
	kevd_debug("vm '%s': vcpu %u: MMIO %s at 0x%llx (no device)", u->vm->name, io->vcpu,
		   io->write ? "write" : "read", (unsigned long long)io->addr);
}

static int unclaimed_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	struct unclaimed *u = calloc(1, sizeof(*u));

	if (!u)
		return kevd_error_sys(err, ENOMEM, "vm '%s': unclaimed I/O", vm->name);
	u->vm = vm;
	*state = u;
	if (kevd_iobus_set_fallback(vm->iobus, KEVD_IO_PIO, "unclaimed", unclaimed_pio, u, err) < 0 ||
	    kevd_iobus_set_fallback(vm->iobus, KEVD_IO_MMIO, "unclaimed", unclaimed_mmio, u, err) < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

static void unclaimed_free(struct kevd_vm *vm, void *state)
{
	(void)vm;
	free(state);
}

const struct kevd_vm_part kevd_dev_unclaimed = {
	.name = "unclaimed", .create = unclaimed_create, .free = unclaimed_free,
};
