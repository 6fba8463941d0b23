/*
 * The I/O bus on its own: ranges found by bisection with the right offset,
 * overlaps refused in every position, bad ranges, the fallback, the seal;
 * and the VMM refusing to create a VM before the program installed its
 * signal handlers (this program deliberately never installs them).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <string.h>

#include "vmm/iobus.h"
#include "vmm/vm.h"
#include "testutil.h"

struct seen {
	int calls;
	struct kevd_io last;
};

static void record(void *opaque, const struct kevd_io *io)
{
	struct seen *s = opaque;

	s->calls++;
	s->last = *io;
	if (!io->write)
		memset(io->data, 0x5a, io->size);
}

static struct kevd_iobus *new_bus(void)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_iobus *bus = NULL;

	ck_assert_int_eq(kevd_iobus_new(&bus, &err), 0);
	return bus;
}

static struct kevd_io pio(uint64_t addr, bool write, uint8_t *data)
{
	return (struct kevd_io){ .space = KEVD_IO_PIO, .addr = addr, .write = write, .data = data, .size = 1 };
}

START_TEST(dispatch_finds_range_and_offset)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_iobus *bus = new_bus();
	struct seen a = { 0 }, b = { 0 }, c = { 0 };
	uint8_t byte = 0;
	struct kevd_io io;

	/* Registered out of order: the bus keeps them sorted. */
	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_PIO, 0x3f8, 8, "b", record, &b, &err), 0);
	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_PIO, 0x70, 2, "a", record, &a, &err), 0);
	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_PIO, 0xf4, 1, "c", record, &c, &err), 0);
	/* The same addresses in the other space are a different range. */
	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_MMIO, 0x70, 2, "m", record, &c, &err), 0);
	kevd_iobus_seal(bus);

	io = pio(0x3fd, false, &byte);
	ck_assert_str_eq(kevd_iobus_dispatch(bus, &io), "b");
	ck_assert_int_eq(b.calls, 1);
	ck_assert_uint_eq(b.last.offset, 5);
	ck_assert_uint_eq(byte, 0x5a);
	io = pio(0x71, true, &byte);
	ck_assert_str_eq(kevd_iobus_dispatch(bus, &io), "a");
	ck_assert_uint_eq(a.last.offset, 1);
	ck_assert(a.last.write);
	io = pio(0xf4, true, &byte);
	ck_assert_str_eq(kevd_iobus_dispatch(bus, &io), "c");
	/* Just outside each range: nobody, and with no fallback a read is all ones. */
	for (uint64_t addr = 0; addr < 0x500; addr++) {
		bool inside = (addr >= 0x70 && addr < 0x72) || addr == 0xf4 || (addr >= 0x3f8 && addr < 0x400);

		byte = 0;
		io = pio(addr, false, &byte);
		ck_assert_str_eq(kevd_iobus_dispatch(bus, &io), inside ? (addr == 0xf4 ? "c" : addr < 0x100 ? "a" : "b")
								      : "none");
		ck_assert_uint_eq(byte, inside ? 0x5a : 0xff);
	}
	kevd_iobus_free(bus);
}
END_TEST

START_TEST(overlaps_refused)
{
	static const struct { uint64_t base, len; } bad[] = {
		{ 0x100, 0x10 },   /* the same */
		{ 0xf8, 0x10 },    /* over the start */
		{ 0x108, 0x10 },   /* over the end */
		{ 0x104, 2 },      /* inside */
		{ 0xf0, 0x40 },    /* around */
		{ 0x10f, 1 },      /* the last byte */
		{ 0x1f0, 0x20 },   /* over the start of the second range */
	};
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_iobus *bus = new_bus();
	struct seen s = { 0 };

	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_PIO, 0x100, 0x10, "dev", record, &s, &err), 0);
	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_PIO, 0x200, 0x10, "dev2", record, &s, &err), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_PIO, bad[i].base, bad[i].len, "new", record, &s, &err),
				 -EEXIST);
		ck_assert_msg(strstr(err.msg, "overlaps dev"), "%s", err.msg);
	}
	/* Touching is not overlapping. */
	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_PIO, 0xf0, 0x10, "below", record, &s, &err), 0);
	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_PIO, 0x110, 0xf0, "between", record, &s, &err), 0);
	kevd_iobus_free(bus);
}
END_TEST

START_TEST(bad_ranges_and_seal)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_iobus *bus = new_bus();
	struct seen s = { 0 };

	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_PIO, 0x10, 0, "empty", record, &s, &err), -EINVAL);
	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_MMIO, UINT64_MAX - 1, 4, "wraps", record, &s, &err),
			 -EINVAL);
	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_PIO, 0x10, 1, "nofn", NULL, &s, &err), -EINVAL);
	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_SPACES, 0x10, 1, "space", record, &s, &err), -EINVAL);
	/* The very top of the address space is a valid range. */
	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_MMIO, UINT64_MAX, 1, "top", record, &s, &err), 0);
	kevd_iobus_seal(bus);
	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_PIO, 0x10, 1, "late", record, &s, &err), -EBUSY);
	ck_assert_msg(strstr(err.msg, "late"), "%s", err.msg);
	ck_assert_int_eq(kevd_iobus_set_fallback(bus, KEVD_IO_PIO, "late", record, &s, &err), -EBUSY);
	kevd_iobus_free(bus);
}
END_TEST

START_TEST(fallback)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_iobus *bus = new_bus();
	struct seen dev = { 0 }, fb = { 0 };
	uint8_t byte = 0;
	struct kevd_io io;

	ck_assert_int_eq(kevd_iobus_register(bus, KEVD_IO_PIO, 0x60, 1, "dev", record, &dev, &err), 0);
	ck_assert_int_eq(kevd_iobus_set_fallback(bus, KEVD_IO_PIO, "fb", record, &fb, &err), 0);
	ck_assert_int_eq(kevd_iobus_set_fallback(bus, KEVD_IO_PIO, "fb2", record, &fb, &err), -EEXIST);
	ck_assert_int_eq(kevd_iobus_set_fallback(bus, KEVD_IO_MMIO, "nofn", NULL, &fb, &err), -EINVAL);
	kevd_iobus_seal(bus);
	io = pio(0x61, false, &byte);
	ck_assert_str_eq(kevd_iobus_dispatch(bus, &io), "fb");
	ck_assert_int_eq(fb.calls, 1);
	ck_assert_uint_eq(fb.last.addr, 0x61);
	ck_assert_int_eq(dev.calls, 0);
	io = pio(0x60, false, &byte);
	ck_assert_str_eq(kevd_iobus_dispatch(bus, &io), "dev");
	ck_assert_int_eq(fb.calls, 1);
	kevd_iobus_free(bus);
}
END_TEST

/* Refused before any work: not even the image is opened (it does not
 * exist), so the error can only be the missing handlers. */
START_TEST(create_needs_signal_handlers)
{
	struct kevd_vm_config cfg = {
		.name = "nosig", .kernel = "/nonexistent/guest.elf", .memory_mib = 64, .vcpus = 1, .console_fd = -1,
	};
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_vm *vm = NULL;

	ck_assert_int_eq(kevd_vm_create(&cfg, &vm, &err), -EINVAL);
	ck_assert_ptr_null(vm);
	ck_assert_msg(strstr(err.msg, "kevd_vm_signals_install"), "%s", err.msg);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("iobus");
	TCase *t = tcase_create("core");

	tcase_add_test(t, dispatch_finds_range_and_offset);
	tcase_add_test(t, overlaps_refused);
	tcase_add_test(t, bad_ranges_and_seal);
	tcase_add_test(t, fallback);
	tcase_add_test(t, create_needs_signal_handlers);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return kevd_test_run(suite());
}
