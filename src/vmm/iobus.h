/*
 * The I/O bus: where a vCPU's port I/O and MMIO exits go.  A device
 * registers the ranges it decodes, with a handler and its own state, while
 * the VM is being created; each address space may also have one fallback
 * for addresses no device claims.  kevd_iobus_seal() ends registration
 * before any vCPU runs, so the vCPU threads dispatch over an array that no
 * longer changes, without locks.  Handlers run on vCPU threads, several at
 * once: a device guards its own state.
 */
#ifndef KEVD_IOBUS_H
#define KEVD_IOBUS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

enum kevd_io_space { KEVD_IO_PIO, KEVD_IO_MMIO, KEVD_IO_SPACES };

/* One access.  DATA holds SIZE bytes: what the guest wrote, or where a
 * read's result goes (the handler must fill all of it). */
struct kevd_io {
	enum kevd_io_space space;
	uint64_t addr;          /* the port or guest-physical address */
	uint64_t offset;        /* addr minus the base of the handler's range */
	bool write;
	uint8_t *data;
	unsigned size;
	unsigned vcpu;          /* index of the vCPU making the access */
};

typedef void (*kevd_io_fn)(void *opaque, const struct kevd_io *io);

struct kevd_iobus;

int kevd_iobus_new(struct kevd_iobus **out, struct kevd_error *err);
void kevd_iobus_free(struct kevd_iobus *bus);

/* Claims [BASE, BASE+LEN) of SPACE for NAME (in messages).  EEXIST if it
 * overlaps a range already claimed, EINVAL for an empty or wrapping range,
 * EBUSY once the bus is sealed. */
int kevd_iobus_register(struct kevd_iobus *bus, enum kevd_io_space space, uint64_t base, uint64_t len,
			const char *name, kevd_io_fn fn, void *opaque, struct kevd_error *err);
/* The handler for addresses of SPACE that no range claims (EEXIST if one
 * is set already, EBUSY once sealed).  Without one, reads return 0xff
 * bytes and writes are dropped. */
int kevd_iobus_set_fallback(struct kevd_iobus *bus, enum kevd_io_space space, const char *name,
			    kevd_io_fn fn, void *opaque, struct kevd_error *err);
void kevd_iobus_seal(struct kevd_iobus *bus);

/* Hands IO to the device whose range holds io->addr (setting io->offset),
 * or to the fallback.  Only on a sealed bus.  Returns the name of the
 * device that took it. */
const char *kevd_iobus_dispatch(const struct kevd_iobus *bus, struct kevd_io *io);

#endif
