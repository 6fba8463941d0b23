/*
 * A CMOS clock that reads 0, in SIPI-mode VMs only (the PC kevd builds for
 * Linux): Linux's wait for the RTC's update-in-progress bit then ends at
 * once (its FADT says there is no RTC, so rtc_cmos stays away).  Other
 * kernels see the empty bus of dev/unclaimed.c there, as for any clock
 * kevd does not have.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/platform.h"
#include "vmm/vm_internal.h"

struct cmos {
	uint8_t index;          /* atomic relaxed: the last index written to port 0x70 */
};

static void cmos_io(void *opaque, const struct kevd_io *io)
{
	struct cmos *c = opaque;

	if (io->offset == 0) {
		if (io->write)
			__atomic_store_n(&c->index, io->data[0] & 0x7f, __ATOMIC_RELAXED);
		else
			memset(io->data, 0xff, io->size);
	} else if (!io->write) {
		memset(io->data, 0, io->size);  /* every CMOS register reads 0 */
	}
}

static int cmos_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	struct cmos *c;

	if (!vm->sipi)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return kevd_error_sys(err, ENOMEM, "vm '%s': CMOS", vm->name);
	*state = c;
	if (kevd_iobus_register(vm->iobus, KEVD_IO_PIO, KEVD_PLAT_CMOS_PORT, 2, "cmos", cmos_io, c, err) < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

static void cmos_free(struct kevd_vm *vm, void *state)
{
	(void)vm;
	free(state);
}

const struct kevd_vm_part kevd_dev_cmos = { .name = "cmos", .create = cmos_create, .free = cmos_free };
