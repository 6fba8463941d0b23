/*
 * Boot information builders (see bootinfo.h).  Each builder first computes
 * the layout and checks it against the buffer, and only then writes, so a
 * failed call leaves the buffer untouched.  Fields are written with kevd_put32()
 * and kevd_put64(), which store little-endian bytes at any offset: the guest is
 * x86 whatever the host is, and no unaligned pointer is ever formed.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "common/bytes.h"
#include "vmm/bootinfo.h"

/* Multiboot2 tag types and sizes (Multiboot2 specification, 3.6). */
#define MB2_TAG_END 0
#define MB2_TAG_CMDLINE 1
#define MB2_TAG_LOADER_NAME 2
#define MB2_TAG_MMAP 6
#define MB2_FIXED_PART 8         /* total_size, reserved */
#define MB2_TAG_HEADER 8         /* type, size */
#define MB2_MMAP_HEADER 16       /* type, size, entry_size, entry_version */
#define MB2_MMAP_ENTRY 24        /* base_addr, length, type, reserved */

/* Xen PVH (xen/include/public/arch-x86/hvm/start_info.h), version 1. */
#define PVH_VERSION 1
#define PVH_START_INFO 56
#define PVH_MEMMAP_ENTRY 24
#define PVH_MODLIST_ENTRY 32

int kevd_boot_e820(uint64_t ram_bytes, struct kevd_e820_entry *out, size_t max,
		   struct kevd_error *err)
{
	struct kevd_e820_entry e[KEVD_BOOT_E820_MAX];
	uint64_t low_end;
	size_t n = 0;

	if (ram_bytes < KEVD_BOOT_MIN_RAM)
		return kevd_error_set(err, EINVAL, "guest RAM of %llu bytes is less than the minimum of %llu bytes (2 MiB)",
				      (unsigned long long)ram_bytes, (unsigned long long)KEVD_BOOT_MIN_RAM);
	if (ram_bytes & KEVD_PAGE_MASK)
		return kevd_error_set(err, EINVAL, "guest RAM of %llu bytes is not a multiple of the 4 KiB page size",
				      (unsigned long long)ram_bytes);
	/* The part above 4 GiB must stay below the guest-physical limit. */
	if (ram_bytes > KEVD_GPA_LIMIT - (KEVD_MMIO_HOLE_END - KEVD_MMIO_HOLE_START))
		return kevd_error_set(err, EINVAL, "guest RAM of %llu bytes does not fit below the guest-physical limit 0x%llx",
				      (unsigned long long)ram_bytes, (unsigned long long)KEVD_GPA_LIMIT);

	low_end = ram_bytes < KEVD_MMIO_HOLE_START ? ram_bytes : KEVD_MMIO_HOLE_START;
	e[n++] = (struct kevd_e820_entry){ 0, KEVD_BOOT_LOW_RAM_END, KEVD_E820_RAM };
	e[n++] = (struct kevd_e820_entry){ KEVD_BOOT_LOW_RAM_END,
					   KEVD_BOOT_HIGH_RAM_START - KEVD_BOOT_LOW_RAM_END,
					   KEVD_E820_RESERVED };
	e[n++] = (struct kevd_e820_entry){ KEVD_BOOT_HIGH_RAM_START, low_end - KEVD_BOOT_HIGH_RAM_START,
					   KEVD_E820_RAM };
	if (ram_bytes > low_end)
		e[n++] = (struct kevd_e820_entry){ KEVD_MMIO_HOLE_END, ram_bytes - low_end, KEVD_E820_RAM };

	if (n > max)
		return kevd_error_set(err, ENOSPC, "memory map for %llu bytes of guest RAM has %zu entries, room for %zu",
				      (unsigned long long)ram_bytes, n, max);
	memcpy(out, e, n * sizeof(e[0]));
	return (int)n;
}

/* Length of S with its NUL, checked against the limit.  WHAT names the
 * string in the message. */
static int string_size(const char *s, const char *what, size_t *len, struct kevd_error *err)
{
	size_t l = strnlen(s, KEVD_BOOT_CMDLINE_MAX);

	if (l >= KEVD_BOOT_CMDLINE_MAX)
		return kevd_error_set(err, E2BIG, "%s is %zu bytes or more, longer than the limit of %d bytes including the NUL",
				      what, l, KEVD_BOOT_CMDLINE_MAX);
	*len = l + 1;
	return 0;
}

/* Bounds N before any size arithmetic, so the layout sums cannot overflow
 * and the byte count fits the int return. */
static int check_map(const struct kevd_e820_entry *map, size_t n, const char *what,
		     struct kevd_error *err)
{
	if (n == 0 || !map)
		return kevd_error_set(err, EINVAL, "%s: the memory map is empty", what);
	if (n > (INT_MAX / 2) / PVH_MEMMAP_ENTRY)
		return kevd_error_set(err, EINVAL, "%s: %zu memory map entries is absurd", what, n);
	return 0;
}

int kevd_boot_mb2_build(void *buf, size_t size, kevd_gpa_t at_gpa,
			const struct kevd_e820_entry *map, size_t n,
			const char *cmdline, const char *loader_name,
			struct kevd_error *err)
{
	unsigned char *p = buf;
	size_t cmd_len = 0, name_len = 0, off, total, mmap_size;
	int ret;

	if (at_gpa.v & 7)
		return kevd_error_set(err, EINVAL, "multiboot2 information at 0x%llx: not 8-byte aligned",
				      (unsigned long long)at_gpa.v);
	ret = check_map(map, n, "multiboot2 information", err);
	if (ret < 0)
		return ret;
	ret = string_size(cmdline ? cmdline : "", "multiboot2 information: command line", &cmd_len, err);
	if (ret < 0)
		return ret;
	if (loader_name) {
		ret = string_size(loader_name, "multiboot2 information: boot loader name", &name_len, err);
		if (ret < 0)
			return ret;
	}

	mmap_size = MB2_MMAP_HEADER + n * MB2_MMAP_ENTRY;
	total = MB2_FIXED_PART + kevd_align8(MB2_TAG_HEADER + cmd_len) + kevd_align8(mmap_size) + MB2_TAG_HEADER;
	if (loader_name)
		total += kevd_align8(MB2_TAG_HEADER + name_len);
	if (total > size)
		return kevd_error_set(err, ENOSPC, "multiboot2 information at 0x%llx: needs %zu bytes, the buffer holds %zu",
				      (unsigned long long)at_gpa.v, total, size);

	/* Zeroing first makes the padding between tags deterministic. */
	memset(p, 0, total);
	kevd_put32(p, (uint32_t)total);
	off = MB2_FIXED_PART;

	kevd_put32(p + off, MB2_TAG_CMDLINE);
	kevd_put32(p + off + 4, (uint32_t)(MB2_TAG_HEADER + cmd_len));
	memcpy(p + off + MB2_TAG_HEADER, cmdline ? cmdline : "", cmd_len);
	off += kevd_align8(MB2_TAG_HEADER + cmd_len);

	if (loader_name) {
		kevd_put32(p + off, MB2_TAG_LOADER_NAME);
		kevd_put32(p + off + 4, (uint32_t)(MB2_TAG_HEADER + name_len));
		memcpy(p + off + MB2_TAG_HEADER, loader_name, name_len);
		off += kevd_align8(MB2_TAG_HEADER + name_len);
	}

	kevd_put32(p + off, MB2_TAG_MMAP);
	kevd_put32(p + off + 4, (uint32_t)mmap_size);
	kevd_put32(p + off + 8, MB2_MMAP_ENTRY);
	kevd_put32(p + off + 12, 0);  /* entry_version */
	for (size_t i = 0; i < n; i++) {
		unsigned char *e = p + off + MB2_MMAP_HEADER + i * MB2_MMAP_ENTRY;

		kevd_put64(e, map[i].addr);
		kevd_put64(e + 8, map[i].size);
		kevd_put32(e + 16, map[i].type);
	}
	off += kevd_align8(mmap_size);

	kevd_put32(p + off, MB2_TAG_END);
	kevd_put32(p + off + 4, MB2_TAG_HEADER);
	return (int)total;
}

int kevd_boot_pvh_build(void *buf, size_t size, kevd_gpa_t at_gpa,
			const struct kevd_e820_entry *map, size_t n,
			const char *cmdline, kevd_gpa_t initrd_gpa, uint64_t initrd_size,
			kevd_gpa_t rsdp_gpa, struct kevd_error *err)
{
	unsigned char *p = buf;
	size_t cmd_len = 0, memmap_off, modlist_off = 0, cmd_off = 0, total;
	uint64_t end;
	int ret;

	if (at_gpa.v & 7)
		return kevd_error_set(err, EINVAL, "PVH start info at 0x%llx: not 8-byte aligned",
				      (unsigned long long)at_gpa.v);
	/* Address zero reads as "absent" in every PVH field. */
	if (at_gpa.v == 0)
		return kevd_error_set(err, EINVAL, "PVH start info at 0x0: PVH treats address 0 as absent");
	ret = check_map(map, n, "PVH start info", err);
	if (ret < 0)
		return ret;
	if (cmdline) {
		ret = string_size(cmdline, "PVH start info: command line", &cmd_len, err);
		if (ret < 0)
			return ret;
	}
	if (initrd_size && __builtin_add_overflow(initrd_gpa.v, initrd_size, &end))
		return kevd_error_set(err, EINVAL, "PVH start info: initrd at 0x%llx of %llu bytes wraps around",
				      (unsigned long long)initrd_gpa.v, (unsigned long long)initrd_size);

	memmap_off = PVH_START_INFO;
	total = memmap_off + n * PVH_MEMMAP_ENTRY;
	if (initrd_size) {
		modlist_off = kevd_align8(total);
		total = modlist_off + PVH_MODLIST_ENTRY;
	}
	if (cmdline) {
		cmd_off = total;
		total += cmd_len;
	}
	if (total > size)
		return kevd_error_set(err, ENOSPC, "PVH start info at 0x%llx: needs %zu bytes, the buffer holds %zu",
				      (unsigned long long)at_gpa.v, total, size);
	if (at_gpa.v >= KEVD_MMIO_HOLE_END || KEVD_MMIO_HOLE_END - at_gpa.v < total)
		return kevd_error_set(err, EINVAL, "PVH start info at 0x%llx (%zu bytes): must lie below 4 GiB, the kernel gets its address in %%ebx",
				      (unsigned long long)at_gpa.v, total);

	memset(p, 0, total);
	kevd_put32(p, KEVD_BOOT_PVH_MAGIC);
	kevd_put32(p + 4, PVH_VERSION);
	kevd_put32(p + 8, 0);                             /* flags */
	kevd_put32(p + 12, initrd_size ? 1 : 0);          /* nr_modules */
	kevd_put64(p + 16, initrd_size ? at_gpa.v + modlist_off : 0);
	kevd_put64(p + 24, cmdline ? at_gpa.v + cmd_off : 0);
	kevd_put64(p + 32, rsdp_gpa.v);
	kevd_put64(p + 40, at_gpa.v + memmap_off);
	kevd_put32(p + 48, (uint32_t)n);
	kevd_put32(p + 52, 0);                            /* reserved */

	for (size_t i = 0; i < n; i++) {
		unsigned char *e = p + memmap_off + i * PVH_MEMMAP_ENTRY;

		kevd_put64(e, map[i].addr);
		kevd_put64(e + 8, map[i].size);
		kevd_put32(e + 16, map[i].type);
	}
	if (initrd_size) {
		kevd_put64(p + modlist_off, initrd_gpa.v);
		kevd_put64(p + modlist_off + 8, initrd_size);
		/* cmdline_paddr and reserved stay 0: the initrd takes no arguments. */
	}
	if (cmdline)
		memcpy(p + cmd_off, cmdline, cmd_len);
	return (int)total;
}
