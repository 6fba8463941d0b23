/*
 * The guest-visible machine kevd builds, in one place: every port, line
 * and fixed guest-physical address that a device, the boot code, the ACPI
 * tables and the vCPU state refer to (docs/boot.md describes it for guest
 * authors).
 */
#ifndef KEVD_PLATFORM_H
#define KEVD_PLATFORM_H

/* Guest-physical: kevd's boot area (the flat GDT of the 32-bit entry
 * state, then the boot information), the ACPI tables in the legacy BIOS
 * area, KVM's TSS inside the MMIO hole below the BIOS, and the interrupt
 * controllers of a PC. */
#define KEVD_PLAT_BOOT_AREA_END 0x10000
#define KEVD_PLAT_GDT_GPA 0x500
#define KEVD_PLAT_GDT_ENTRIES 4
#define KEVD_PLAT_SEL_CODE32 0x10
#define KEVD_PLAT_SEL_DATA32 0x18
#define KEVD_PLAT_BOOT_INFO_GPA 0x1000
#define KEVD_PLAT_ACPI_GPA 0xe0000
#define KEVD_PLAT_ACPI_MAX 0x10000
#define KEVD_PLAT_TSS_GPA 0xfffbd000ull
#define KEVD_PLAT_IOAPIC_GPA 0xfec00000u
#define KEVD_PLAT_LAPIC_GPA 0xfee00000u
/* Linux wants its initrd below 2 GiB. */
#define KEVD_PLAT_INITRD_LIMIT (1ull << 31)

/* Ports and lines. */
#define KEVD_PLAT_COM1_PORT 0x3f8
#define KEVD_PLAT_COM1_PORTS 8
#define KEVD_PLAT_COM1_IRQ 4
#define KEVD_PLAT_DEBUG_EXIT_PORT 0xf4   /* as QEMU's isa-debug-exit */
#define KEVD_PLAT_I8042_PORT 0x64        /* command port: 0xfe pulses reset */
#define KEVD_PLAT_CMOS_PORT 0x70         /* index; data at 0x71 */
/* Hardware-reduced ACPI sleep control register (status at +1); \_S5's
 * SLP_TYP, so a guest powering off writes (5 << 2) | SLP_EN to it. */
#define KEVD_PLAT_ACPI_SLEEP_PORT 0x3c0
#define KEVD_PLAT_ACPI_S5_TYP 5

#endif
