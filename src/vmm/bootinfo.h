/*
 * Boot information a guest kernel reads at entry: the e820-style memory map
 * of kevd's guest RAM layout, and that map packaged either as a Multiboot2
 * information structure or as a Xen PVH hvm_start_info.  The builders only
 * fill a caller's buffer; placing it in guest memory and pointing the vCPU
 * at it (%ebx) is the VMM's business.  Every multi-byte field is stored
 * little-endian byte by byte, so buffers need no particular alignment.
 */
#ifndef KEVD_BOOTINFO_H
#define KEVD_BOOTINFO_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/types.h"

/* e820 types; Multiboot2 and PVH memory maps use the same numbers. */
#define KEVD_E820_RAM 1
#define KEVD_E820_RESERVED 2
#define KEVD_E820_ACPI 3
#define KEVD_E820_NVS 4

/* End of the conventional memory the guest may use below 1 MiB; from here
 * to 1 MiB is the legacy EBDA/VGA/BIOS area, which kevd reports reserved. */
#define KEVD_BOOT_LOW_RAM_END ((uint64_t)0x9fc00)
#define KEVD_BOOT_HIGH_RAM_START ((uint64_t)0x100000)

/* Smallest guest kevd lays out: 1 MiB of legacy area plus 1 MiB for a kernel. */
#define KEVD_BOOT_MIN_RAM ((uint64_t)2 << 20)

/* Longest command line (and boot loader name), counting the NUL. */
#define KEVD_BOOT_CMDLINE_MAX 4096

/* Most entries kevd_boot_e820() produces. */
#define KEVD_BOOT_E820_MAX 4

#define KEVD_BOOT_PVH_MAGIC 0x336ec578u

struct kevd_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;  /* KEVD_E820_* */
};

/* Describes RAM_BYTES of guest RAM as kevd lays it out: RAM [0, 0x9fc00),
 * reserved [0x9fc00, 1 MiB), RAM [1 MiB, low_end) where low_end is
 * min(RAM_BYTES, KEVD_MMIO_HOLE_START), and RAM [4 GiB, 4 GiB + the rest)
 * if anything is left.  RAM_BYTES must be at least 2 MiB and a multiple of
 * 4 KiB (EINVAL).  Writes at most MAX entries to OUT (ENOSPC if that is too
 * few; KEVD_BOOT_E820_MAX always suffices) and returns how many. */
int kevd_boot_e820(uint64_t ram_bytes, struct kevd_e820_entry *out, size_t max,
		   struct kevd_error *err);

/* Writes a Multiboot2 boot information structure into BUF (SIZE bytes):
 * a command line tag, a boot loader name tag (omitted if LOADER_NAME is
 * NULL), a memory map tag with the N entries of MAP, and the end tag.
 * CMDLINE NULL is taken as "".  AT_GPA is where the VMM will copy it; the
 * structure holds no pointers, so it only has to be 8-byte aligned (EINVAL)
 * and appears in messages.  Returns the bytes used (the total_size field),
 * ENOSPC if SIZE is too small, E2BIG if a string is longer than
 * KEVD_BOOT_CMDLINE_MAX, EINVAL for an empty map. */
int kevd_boot_mb2_build(void *buf, size_t size, kevd_gpa_t at_gpa,
			const struct kevd_e820_entry *map, size_t n,
			const char *cmdline, const char *loader_name,
			struct kevd_error *err);

/* Writes a Xen PVH start of day structure (hvm_start_info version 1) into
 * BUF (SIZE bytes), followed in the same buffer by the memory map, the
 * module list and the command line; each *_paddr field is AT_GPA plus the
 * offset of what it points to, so BUF must be copied to AT_GPA unchanged.
 * AT_GPA must be 8-byte aligned and the whole structure below 4 GiB, since
 * the kernel receives its address in the 32-bit %ebx.  INITRD_SIZE 0 means
 * no module; otherwise the initrd at INITRD_GPA is module 0.  CMDLINE NULL
 * means no command line (cmdline_paddr 0); RSDP_GPA 0 means no ACPI.
 * Returns the bytes used, or ENOSPC, E2BIG, EINVAL as for the Multiboot2
 * builder. */
int kevd_boot_pvh_build(void *buf, size_t size, kevd_gpa_t at_gpa,
			const struct kevd_e820_entry *map, size_t n,
			const char *cmdline, kevd_gpa_t initrd_gpa, uint64_t initrd_size,
			kevd_gpa_t rsdp_gpa, struct kevd_error *err);

#endif
