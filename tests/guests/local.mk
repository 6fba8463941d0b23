# tests/guests/local.mk -- automake fragment for the test guest.
#
# Included by the top-level (non-recursive) Makefile.am, which initialises
# noinst_PROGRAMS, noinst_DATA, CLEANFILES and EXTRA_DIST before the include.
# Paths are relative to the top source/build directory.
#
# The guest is built with explicit rules and GUEST_CFLAGS only: the project's
# CFLAGS/AM_CFLAGS (sanitizers, hardening) must not reach freestanding code.

noinst_PROGRAMS += tests/guests/gendata
tests_guests_gendata_SOURCES = tests/guests/gendata.c tests/guests/testguest.h

GUEST_CFLAGS = -O2 -std=gnu11 -m64 -Wall -Wextra \
	-ffreestanding -fno-builtin \
	-fno-pic -fno-pie -fno-stack-protector -fcf-protection=none \
	-fno-asynchronous-unwind-tables -fno-unwind-tables \
	-mno-red-zone -mgeneral-regs-only -mcmodel=small \
	-I$(srcdir)/tests/guests
GUEST_LINKFLAGS = -nostdlib -static -no-pie -Wl,--build-id=none \
	-Wl,-z,max-page-size=0x1000 -Wl,-z,noexecstack \
	-Wl,-T,$(srcdir)/tests/guests/testguest.ld

tests_guests_guest_objs = \
	tests/guests/testguest-entry.o \
	tests/guests/testguest-guest.o \
	tests/guests/testguest-data.o

tests/guests/testguest-data.bin: tests/guests/gendata$(EXEEXT)
	$(AM_V_GEN)$(MKDIR_P) tests/guests && \
	tests/guests/gendata$(EXEEXT) $@-t && mv -f $@-t $@

tests/guests/testguest-entry.o: $(srcdir)/tests/guests/entry.S $(srcdir)/tests/guests/testguest.h
	$(AM_V_CC)$(MKDIR_P) tests/guests && \
	$(CC) $(GUEST_CFLAGS) -c -o $@ $(srcdir)/tests/guests/entry.S

tests/guests/testguest-guest.o: $(srcdir)/tests/guests/guest.c $(srcdir)/tests/guests/testguest.h
	$(AM_V_CC)$(MKDIR_P) tests/guests && \
	$(CC) $(GUEST_CFLAGS) -c -o $@ $(srcdir)/tests/guests/guest.c

tests/guests/testguest-data.o: $(srcdir)/tests/guests/data.S $(srcdir)/tests/guests/testguest.h \
		tests/guests/testguest-data.bin
	$(AM_V_CC)$(MKDIR_P) tests/guests && \
	$(CC) $(GUEST_CFLAGS) -DTESTGUEST_DATA_BIN='"tests/guests/testguest-data.bin"' \
		-c -o $@ $(srcdir)/tests/guests/data.S

tests/guests/testguest.elf: $(tests_guests_guest_objs) $(srcdir)/tests/guests/testguest.ld
	$(AM_V_CCLD)$(CC) $(GUEST_CFLAGS) $(GUEST_LINKFLAGS) -o $@ $(tests_guests_guest_objs)

noinst_DATA += tests/guests/testguest.elf
CLEANFILES += \
	tests/guests/testguest.elf \
	tests/guests/testguest-data.bin \
	tests/guests/testguest-data.bin-t \
	$(tests_guests_guest_objs)
EXTRA_DIST += \
	tests/guests/entry.S \
	tests/guests/guest.c \
	tests/guests/data.S \
	tests/guests/testguest.ld \
	tests/guests/local.mk \
	tests/guests/README.md
