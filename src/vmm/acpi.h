/*
 * ACPI tables for a PC-like guest booted without firmware: the guest (an
 * unmodified Linux entered through Xen PVH, whose start_info carries the
 * RSDP address) learns its vCPUs, the I/O APIC and the ISA IRQ routing from
 * the MADT, and powers off through the hardware-reduced sleep control
 * register the FADT names.  The builder only fills a caller's buffer, like
 * the boot information builders: placing it in guest memory, trapping the
 * sleep port and creating the interrupt controllers (KVM_CREATE_IRQCHIP,
 * KVM_CREATE_PIT2) is the VMM's business.
 *
 * What is built, in this order in the buffer, each table 8-byte aligned:
 * RSDP (revision 2) -> XSDT -> { FADT, MADT }, and FADT.X_DSDT -> DSDT.
 * The tables claim ACPI 6.3 (FADT 6.3, MADT revision 5).  Every multi-byte
 * field is stored little-endian byte by byte, so the buffer needs no
 * particular alignment on the host.
 */
#ifndef KEVD_ACPI_H
#define KEVD_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/types.h"

/* Most vCPUs the MADT describes: xAPIC IDs are 8 bits and 0xff is the
 * broadcast ID, which Linux skips in a Processor Local APIC entry. */
#define KEVD_ACPI_MAX_CPUS 255

/* Fixed strings in every table header. */
#define KEVD_ACPI_OEM_ID "KEVD  "          /* 6 bytes */
#define KEVD_ACPI_OEM_TABLE_ID "KEVDVM  "  /* 8 bytes */
#define KEVD_ACPI_CREATOR_ID "KEVD"        /* 4 bytes */

/* Bits the guest writes to the sleep control register (ACPI 6.3, 4.8.3.7):
 * SLP_TYP in bits 2-4 and SLP_EN; the VMM powers off on
 * (s5_slp_typ << KEVD_ACPI_SLP_TYP_SHIFT) | KEVD_ACPI_SLP_EN. */
#define KEVD_ACPI_SLP_TYP_SHIFT 2
#define KEVD_ACPI_SLP_TYP_MASK 0x1c
#define KEVD_ACPI_SLP_EN 0x20

struct kevd_acpi_config {
	unsigned ncpus;         /* 1..KEVD_ACPI_MAX_CPUS; APIC IDs 0..ncpus-1 */
	uint32_t lapic_addr;    /* 0xfee00000 */
	uint32_t ioapic_addr;   /* 0xfec00000 */
	uint8_t ioapic_id;      /* not one of the vCPUs' APIC IDs, e.g. ncpus */
	uint16_t sleep_port;    /* sleep control register; the status register is at sleep_port + 1 */
	uint8_t s5_slp_typ;     /* 0..7, SLP_TYP of \_S5 */
	bool serial_com1;       /* describe the COM1 16550 (vmm/platform.h) in the DSDT */
};

/* Builds the tables into BUF (SIZE bytes), which the VMM copies unchanged
 * to guest-physical AT_GPA: every pointer field is AT_GPA plus an offset in
 * BUF.  The RSDP comes first, so *RSDP_GPA is AT_GPA; it is what the PVH
 * start_info's rsdp_paddr should hold.  AT_GPA must be non-zero (PVH reads
 * 0 as "no ACPI") and 16-byte aligned (where an RSDP scan would look), and
 * the tables must end at or below 4 GiB; a good home is the reserved legacy
 * area at 0xe0000, where an OS that scans for the RSDP finds it too.
 * Returns the bytes used (a few KiB at most), ENOSPC if SIZE is too small,
 * EINVAL for a bad configuration or placement.  A failed call leaves BUF
 * untouched. */
int kevd_acpi_build(void *buf, size_t size, kevd_gpa_t at_gpa, const struct kevd_acpi_config *cfg,
		    kevd_gpa_t *rsdp_gpa, struct kevd_error *err);

#endif
