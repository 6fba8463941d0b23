/*
 * The I/O bus (see iobus.h): per address space, an array of ranges kept
 * sorted by base, searched by bisection.  A VM has a handful of ranges, so
 * the array is grown one at a time during creation and never after.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/iobus.h"

struct range {
	uint64_t base, len;
	const char *name;       /* borrowed: a device's static name */
	kevd_io_fn fn;
	void *opaque;           /* borrowed: the device owns its state */
};

struct space {
	struct range *ranges;   /* owned; sorted by base, disjoint */
	size_t n;
	struct range fallback;  /* fn NULL = none */
};

/* Written only until sealed, by the thread creating the VM; read by the
 * vCPU threads afterwards, which are started after the seal. */
struct kevd_iobus {
	struct space spaces[KEVD_IO_SPACES];
	bool sealed;
};

static const char *const space_names[] = { [KEVD_IO_PIO] = "port", [KEVD_IO_MMIO] = "MMIO" };

int kevd_iobus_new(struct kevd_iobus **out, struct kevd_error *err)
{
	struct kevd_iobus *bus = calloc(1, sizeof(*bus));

	if (!bus)
		return kevd_error_sys(err, ENOMEM, "I/O bus");
	*out = bus;
	return 0;
}

void kevd_iobus_free(struct kevd_iobus *bus)
{
	if (!bus)
		return;
	for (int s = 0; s < KEVD_IO_SPACES; s++)
		free(bus->spaces[s].ranges);
	free(bus);
}

/* Index of the first range whose base is above ADDR. */
static size_t upper_bound(const struct space *sp, uint64_t addr)
{
	size_t lo = 0, hi = sp->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sp->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int check_open(const struct kevd_iobus *bus, enum kevd_io_space space, const char *name,
		      struct kevd_error *err)
{
	if ((unsigned)space >= KEVD_IO_SPACES)
		return kevd_error_set(err, EINVAL, "I/O bus: %s: no address space %d", name, (int)space);
	if (bus->sealed)
		return kevd_error_set(err, EBUSY, "I/O bus: %s: registered after the VM was sealed", name);
	return 0;
}

int kevd_iobus_register(struct kevd_iobus *bus, enum kevd_io_space space, uint64_t base, uint64_t len,
			const char *name, kevd_io_fn fn, void *opaque, struct kevd_error *err)
{
	struct space *sp;
	struct range *grown;
	size_t at;
	int r = check_open(bus, space, name, err);

	if (r < 0)
		return r;
	sp = &bus->spaces[space];
	if (len == 0 || base + len - 1 < base || !fn)
		return kevd_error_set(err, EINVAL, "I/O bus: %s: bad %s range 0x%llx+0x%llx", name,
				      space_names[space], (unsigned long long)base, (unsigned long long)len);
	at = upper_bound(sp, base);
	/* Disjoint from the range before (which starts at or below BASE) and
	 * the one after (which starts above it). */
	for (size_t i = at ? at - 1 : 0; i < at + 1 && i < sp->n; i++) {
		const struct range *o = &sp->ranges[i];

		if (base <= o->base + o->len - 1 && o->base <= base + len - 1)
			return kevd_error_set(err, EEXIST, "I/O bus: %s: %s range 0x%llx+0x%llx overlaps %s at 0x%llx+0x%llx",
					      name, space_names[space], (unsigned long long)base,
					      (unsigned long long)len, o->name, (unsigned long long)o->base,
					      (unsigned long long)o->len);
	}
	grown = realloc(sp->ranges, (sp->n + 1) * sizeof(*grown));
	if (!grown)
		return kevd_error_sys(err, ENOMEM, "I/O bus: %s", name);
	sp->ranges = grown;
	memmove(&sp->ranges[at + 1], &sp->ranges[at], (sp->n - at) * sizeof(*grown));
	sp->ranges[at] = (struct range){ .base = base, .len = len, .name = name, .fn = fn, .opaque = opaque };
	sp->n++;
	return 0;
}

int kevd_iobus_set_fallback(struct kevd_iobus *bus, enum kevd_io_space space, const char *name,
			    kevd_io_fn fn, void *opaque, struct kevd_error *err)
{
	int r = check_open(bus, space, name, err);

	if (r < 0)
		return r;
	if (bus->spaces[space].fallback.fn)
		return kevd_error_set(err, EEXIST, "I/O bus: %s: %s already has the %s fallback", name,
				      bus->spaces[space].fallback.name, space_names[space]);
	if (!fn)
		return kevd_error_set(err, EINVAL, "I/O bus: %s: no handler", name);
	bus->spaces[space].fallback = (struct range){ .name = name, .fn = fn, .opaque = opaque };
	return 0;
}

void kevd_iobus_seal(struct kevd_iobus *bus)
{
	bus->sealed = true;
}

const char *kevd_iobus_dispatch(const struct kevd_iobus *bus, struct kevd_io *io)
{
	const struct space *sp = &bus->spaces[io->space];
	size_t at = upper_bound(sp, io->addr);

	if (at > 0) {
		const struct range *r = &sp->ranges[at - 1];

		if (io->addr - r->base < r->len) {
			io->offset = io->addr - r->base;
			r->fn(r->opaque, io);
			return r->name;
		}
	}
	io->offset = 0;
	if (sp->fallback.fn) {
		sp->fallback.fn(sp->fallback.opaque, io);
		return sp->fallback.name;
	}
	if (!io->write)
		memset(io->data, 0xff, io->size);
	return "none";
}
