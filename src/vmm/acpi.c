/*
 * ACPI table builder (see acpi.h).  The DSDT's AML is assembled first in a
 * small local buffer, because its size decides the layout; then the layout
 * is checked against the buffer and the placement, and only then is BUF
 * written, so a failed call leaves it untouched.  Fields are stored with
 * put16/32/64(), little-endian at any offset: the guest is x86 whatever the
 * host is, and no unaligned or packed-struct pointer is ever formed.
 * Offsets and encodings are those of the ACPI 6.3 specification (section
 * numbers below refer to it).
 *
 * Why hardware-reduced ACPI: kevd has no PM1 event/control blocks, no PM
 * timer, no GPE blocks and no SCI, and a hardware-reduced FADT (5.2.9,
 * flag HW_REDUCED_ACPI) is how a platform says so.  Linux (6.1 included)
 * accepts it on x86 and then (arch/x86/kernel/acpi/boot.c,
 * acpi_generic_reduced_hw_init) skips the PIT/HPET timer setup and the
 * legacy 8259 entirely: no IRQ 0 timer check, the LAPIC timer is the tick,
 * calibrated against the TSC (the VMM should expose kvmclock or the TSC
 * deadline timer in CPUID so that needs no PIT).  SMP needs nothing more
 * than the MADT: Linux enumerates CPUs from its Processor Local APIC
 * entries and starts them with INIT/SIPI, which KVM's in-kernel LAPICs
 * handle.  Power-off goes through the sleep control register: ACPICA
 * writes WAK_STS to the status register, then (SLP_TYP << 2) | SLP_EN to
 * the control register, and Linux only offers ACPI power-off when \_S5
 * exists and both registers have non-zero addresses.
 *
 * With no legacy PIC, Linux pre-allocates no ISA IRQs, so a driver that
 * hardcodes IRQ 4 (the 8250 legacy port table) cannot get it; describing
 * COM1 in the DSDT (PNP0501 with its _CRS) lets the PNP ACPI layer map
 * GSI 4 and the 8250 PNP driver take over the port with a working IRQ.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "common/bytes.h"
#include "vmm/acpi.h"
#include "vmm/platform.h"

/* Sizes of the fixed parts (5.2.5.3, 5.2.7, 5.2.8, 5.2.9, 5.2.12). */
#define RSDP_SIZE 36
#define HEADER_SIZE 36
#define XSDT_ENTRY 8
#define XSDT_ENTRIES 2             /* FADT, MADT; the DSDT hangs off the FADT */
#define FADT_SIZE 276              /* revision 6, through the hypervisor vendor id */
#define MADT_FIXED 44              /* header, local APIC address, flags */
#define MADT_LAPIC_SIZE 8
#define MADT_IOAPIC_SIZE 12
#define MADT_ISO_SIZE 10
#define MADT_LAPIC_NMI_SIZE 6
#define GAS_SIZE 12

#define RSDP_REVISION 2            /* ACPI 2.0+ RSDP: 36 bytes with XSDT */
#define XSDT_REVISION 1
#define FADT_REVISION 6
#define FADT_MINOR_REVISION 3      /* ACPI 6.3, matching MADT revision 5 */
#define MADT_REVISION 5
#define DSDT_REVISION 2            /* 2 and above: AML integers are 64-bit */
#define OEM_REVISION 1
#define CREATOR_REVISION 1

/* RSDP fields (5.2.5.3). */
#define RSDP_CHECKSUM 8
#define RSDP_OEM_ID 9
#define RSDP_REVISION_OFF 15
#define RSDP_RSDT 16
#define RSDP_LENGTH 20
#define RSDP_XSDT 24
#define RSDP_EXT_CHECKSUM 32
#define RSDP_V1_SIZE 20            /* what the first checksum covers */

/* System description table header (5.2.6). */
#define HDR_LENGTH 4
#define HDR_REVISION 8
#define HDR_CHECKSUM 9
#define HDR_OEM_ID 10
#define HDR_OEM_TABLE_ID 16
#define HDR_OEM_REVISION 24
#define HDR_CREATOR_ID 28
#define HDR_CREATOR_REVISION 32

/* FADT fields (5.2.9, table 5-34).  The ones not named stay zero: with
 * HW_REDUCED_ACPI set, OSPM ignores the PM1/PM2/timer/GPE blocks, SCI_INT,
 * SMI_CMD and the 32-bit DSDT pointer is superseded by X_DSDT; there is no
 * FACS (allowed when hardware-reduced) since there is no S4BIOS, no global
 * lock and no waking vector to share. */
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_MINOR 131
#define FADT_X_DSDT 140
#define FADT_SLEEP_CONTROL 244
#define FADT_SLEEP_STATUS 256
#define FADT_HYPERVISOR_ID 268

/* FADT fixed feature flags.  WBINVD works on every x86 CPU kevd runs on;
 * PWR_BUTTON and SLP_BUTTON set say "no fixed-hardware button", which is
 * the truth on a hardware-reduced platform. */
#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PWR_BUTTON (1u << 4)
#define FADT_F_SLP_BUTTON (1u << 5)
#define FADT_F_HW_REDUCED_ACPI (1u << 20)

/* IA-PC boot architecture flags (5.2.9.3), as Linux reads them in
 * acpi_parse_fadt():
 * - LEGACY_DEVICES: set only when COM1 is described, since that 16550 is a
 *   user-visible ISA device (Linux only uses the bit to rule out PnP BIOS).
 * - 8042 clear: the i8042 driver then skips probing (kevd answers only the
 *   reset pulse on port 0x64, not the controller's self test), while
 *   reboot=k still writes 0xfe to port 0x64 directly and kevd traps it.
 * - VGA_NOT_PRESENT: there is no VGA; Linux must not probe it.
 * - CMOS_RTC_NOT_PRESENT: kevd's ports 0x70/0x71 read zeros rather than a
 *   clock, so rtc_cmos must not register; wall time comes from kvmclock.
 * - MSI_NOT_SUPPORTED clear: there is no PCI today, and the bit would
 *   silently disable MSI for a future virtio-pci transport. */
#define IAPC_LEGACY_DEVICES (1u << 0)
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)

/* Generic Address Structure (5.2.3.2). */
#define GAS_SPACE_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1

/* Hypervisor vendor identity: 8 bytes, informative only. */
#define HYPERVISOR_ID "KEVD\0\0\0\0"

/* MADT (5.2.12).  PCAT_COMPAT is true: KVM's in-kernel irqchip does have
 * the two 8259s, and the flag tells an OS to mask them before using the
 * APICs.  Linux in hardware-reduced mode ignores the 8259 either way (and
 * newer kernels only use the flag to skip probing for a PIC). */
#define MADT_LAPIC_ADDR 36
#define MADT_FLAGS 40
#define MADT_PCAT_COMPAT 1u
#define MADT_TYPE_LAPIC 0
#define MADT_TYPE_IOAPIC 1
#define MADT_TYPE_ISO 2
#define MADT_TYPE_LAPIC_NMI 4
#define MADT_LAPIC_ENABLED 1u       /* Online Capable stays 0, as it must when Enabled is set */
#define MADT_ALL_PROCESSORS 0xff    /* ACPI processor UID meaning "every processor" */
#define MADT_ISA_BUS 0

/* MPS INTI flags (5.2.12.5): explicit edge/active-high rather than
 * "conforms to the bus", so no OS has to guess for IRQ 0 rerouted to
 * pin 2, where KVM's PIT delivers it. */
#define MPS_INTI_ACTIVE_HIGH 0x1
#define MPS_INTI_EDGE 0x4
#define PIT_ISA_IRQ 0
#define PIT_GSI 2
#define NMI_LINT 1                  /* LINT1 is wired to NMI on PCs */

/* AML opcodes and prefixes (20.2). */
#define AML_ZERO 0x00
#define AML_ONE 0x01
#define AML_NAME 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_DWORD_PREFIX 0x0c
#define AML_BUFFER 0x11
#define AML_PACKAGE 0x12
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_EXT_PREFIX 0x5b
#define AML_ROOT_CHAR 0x5c
#define AML_EXT_DEVICE 0x82

/* Small resource descriptors (6.4.2): tag byte = type << 3 | length. */
#define RES_IRQ_NOFLAGS 0x22        /* IRQ, 2 bytes: edge, active-high, exclusive (ISA) */
#define RES_IO 0x47                 /* I/O port, 7 bytes */
#define RES_IO_DECODE16 0x01
#define RES_END 0x79                /* end tag, 1 byte: checksum, 0 = none */

/* The DSDT's AML is a fixed few dozen bytes whatever the configuration. */
#define AML_MAX 256
/* A PkgLength is reserved at its longest and shrunk when the package ends. */
#define PKG_LENGTH_MAX 4

/* The byte that makes P[0..N) sum to zero, computed with the checksum
 * byte itself still zero. */
static uint8_t checksum(const unsigned char *p, size_t n)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)(0x100 - sum);
}

/* --- AML assembly ------------------------------------------------------ */

struct aml {
	unsigned char b[AML_MAX];
	size_t len;
	bool overflow;  /* a bug, not an input error: the content is fixed */
};

static void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->overflow || n > AML_MAX - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->b + a->len, p, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t v)
{
	aml_bytes(a, &v, 1);
}

/* Integers the shortest way ASL compilers emit them (20.2.3). */
static void aml_integer(struct aml *a, uint8_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO);
	} else if (v == 1) {
		aml_byte(a, AML_ONE);
	} else {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_byte(a, v);
	}
}

/* Opens a package (the part after an opcode that carries a PkgLength):
 * reserves the longest PkgLength and returns where it starts. */
static size_t aml_pkg_begin(struct aml *a)
{
	static const unsigned char zeros[PKG_LENGTH_MAX];
	size_t at = a->len;

	aml_bytes(a, zeros, sizeof(zeros));
	return at;
}

/* Closes the package opened at AT: encodes the PkgLength in as few bytes
 * as it takes (20.2.4; the length counts its own bytes) and moves the body
 * down over the unused reserve.  Packages nest because an inner one is
 * always closed before the outer one, whose body then simply shrinks. */
static void aml_pkg_end(struct aml *a, size_t at)
{
	size_t body, total, n;
	unsigned char *p = a->b + at;

	if (a->overflow)
		return;
	body = a->len - at - PKG_LENGTH_MAX;
	if (body + 1 < 0x40)
		n = 1;
	else if (body + 2 < (size_t)1 << 12)
		n = 2;
	else if (body + 3 < (size_t)1 << 20)
		n = 3;
	else
		n = 4;  /* AML_MAX keeps us far below the 2^28 limit */
	total = body + n;
	if (n == 1) {
		p[0] = (unsigned char)total;
	} else {
		/* Lead byte: count of following bytes in bits 7-6, the low
		 * nibble of the length in bits 3-0; then 8 bits per byte. */
		p[0] = (unsigned char)(((n - 1) << 6) | (total & 0xf));
		for (size_t i = 1; i < n; i++)
			p[i] = (unsigned char)(total >> (4 + 8 * (i - 1)));
	}
	memmove(p + n, p + PKG_LENGTH_MAX, body);
	a->len -= PKG_LENGTH_MAX - n;
}

/* A compressed EISA ID (6.1.5): three letters of five bits each ('A' is 1)
 * big-endian in the first two bytes, then four hex digits. */
static uint32_t eisa_id(const char id[7])
{
	unsigned char b[4];
	unsigned d[4];

	for (int i = 0; i < 4; i++) {
		char c = id[3 + i];

		d[i] = (unsigned)(c <= '9' ? c - '0' : c - 'A' + 10);
	}
	b[0] = (unsigned char)(((id[0] - '@') << 2) | ((id[1] - '@') >> 3));
	b[1] = (unsigned char)((((id[1] - '@') & 7) << 5) | (id[2] - '@'));
	b[2] = (unsigned char)(d[0] << 4 | d[1]);
	b[3] = (unsigned char)(d[2] << 4 | d[3]);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void aml_name_dword(struct aml *a, const char seg[4], uint32_t v)
{
	unsigned char le[4];

	kevd_put32(le, v);
	aml_byte(a, AML_NAME);
	aml_bytes(a, seg, 4);
	aml_byte(a, AML_DWORD_PREFIX);
	aml_bytes(a, le, sizeof(le));
}

/* Device (\_SB.COM1) { _HID PNP0501, _UID 1, _CRS { IO 0x3f8/8, IRQ 4 } }:
 * what the 8250 PNP driver binds to. */
static void aml_com1(struct aml *a)
{
	const unsigned char crs[] = {
		RES_IO, RES_IO_DECODE16,
		KEVD_PLAT_COM1_PORT & 0xff, KEVD_PLAT_COM1_PORT >> 8,   /* minimum base */
		KEVD_PLAT_COM1_PORT & 0xff, KEVD_PLAT_COM1_PORT >> 8,   /* maximum base */
		1, 8,                                                   /* alignment, length */
		RES_IRQ_NOFLAGS, 1u << KEVD_PLAT_COM1_IRQ, 0,           /* IRQ mask */
		RES_END, 0,
	};
	size_t dev, buf;

	aml_byte(a, AML_EXT_PREFIX);
	aml_byte(a, AML_EXT_DEVICE);
	dev = aml_pkg_begin(a);
	aml_byte(a, AML_ROOT_CHAR);
	aml_byte(a, AML_DUAL_NAME_PREFIX);
	aml_bytes(a, "_SB_COM1", 8);

	aml_name_dword(a, "_HID", eisa_id("PNP0501"));
	aml_byte(a, AML_NAME);
	aml_bytes(a, "_UID", 4);
	aml_integer(a, 1);

	aml_byte(a, AML_NAME);
	aml_bytes(a, "_CRS", 4);
	aml_byte(a, AML_BUFFER);
	buf = aml_pkg_begin(a);
	aml_integer(a, (uint8_t)sizeof(crs));   /* BufferSize */
	aml_bytes(a, crs, sizeof(crs));
	aml_pkg_end(a, buf);

	aml_pkg_end(a, dev);
}

/* The DSDT's definition block: \_S5 and, if asked, COM1. */
static void build_dsdt_aml(const struct kevd_acpi_config *cfg, struct aml *a)
{
	size_t pkg;

	/* Name (_S5, Package () { SLP_TYPa, SLP_TYPb }).  Hardware-reduced
	 * sleep uses only SLP_TYPa; SLP_TYPb (for a PM1b block that does not
	 * exist) repeats it. */
	aml_byte(a, AML_NAME);
	aml_bytes(a, "_S5_", 4);
	aml_byte(a, AML_PACKAGE);
	pkg = aml_pkg_begin(a);
	aml_byte(a, 2);  /* NumElements */
	aml_integer(a, cfg->s5_slp_typ);
	aml_integer(a, cfg->s5_slp_typ);
	aml_pkg_end(a, pkg);

	if (cfg->serial_com1)
		aml_com1(a);
}

/* --- tables ------------------------------------------------------------ */

static void put_header(unsigned char *t, const char sig[4], size_t len, uint8_t revision)
{
	memcpy(t, sig, 4);
	kevd_put32(t + HDR_LENGTH, (uint32_t)len);
	t[HDR_REVISION] = revision;
	t[HDR_CHECKSUM] = 0;
	memcpy(t + HDR_OEM_ID, KEVD_ACPI_OEM_ID, 6);
	memcpy(t + HDR_OEM_TABLE_ID, KEVD_ACPI_OEM_TABLE_ID, 8);
	kevd_put32(t + HDR_OEM_REVISION, OEM_REVISION);
	memcpy(t + HDR_CREATOR_ID, KEVD_ACPI_CREATOR_ID, 4);
	kevd_put32(t + HDR_CREATOR_REVISION, CREATOR_REVISION);
}

/* Last step for every table, once its body is written. */
static void seal(unsigned char *t, size_t len)
{
	t[HDR_CHECKSUM] = checksum(t, len);
}

static void put_gas_io8(unsigned char *p, uint16_t port)
{
	p[0] = GAS_SPACE_SYSTEM_IO;
	p[1] = 8;   /* register bit width */
	p[2] = 0;   /* register bit offset */
	p[3] = GAS_ACCESS_BYTE;
	kevd_put64(p + 4, port);
}

static void build_fadt(unsigned char *t, const struct kevd_acpi_config *cfg, uint64_t dsdt_gpa)
{
	uint16_t boot_arch = IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT;

	if (cfg->serial_com1)
		boot_arch |= IAPC_LEGACY_DEVICES;
	put_header(t, "FACP", FADT_SIZE, FADT_REVISION);
	kevd_put16(t + FADT_IAPC_BOOT_ARCH, boot_arch);
	kevd_put32(t + FADT_FLAGS, FADT_F_WBINVD | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON | FADT_F_HW_REDUCED_ACPI);
	t[FADT_MINOR] = FADT_MINOR_REVISION;
	kevd_put64(t + FADT_X_DSDT, dsdt_gpa);
	put_gas_io8(t + FADT_SLEEP_CONTROL, cfg->sleep_port);
	put_gas_io8(t + FADT_SLEEP_STATUS, (uint16_t)(cfg->sleep_port + 1));
	memcpy(t + FADT_HYPERVISOR_ID, HYPERVISOR_ID, 8);
	seal(t, FADT_SIZE);
}

static size_t madt_size(unsigned ncpus)
{
	return MADT_FIXED + ncpus * MADT_LAPIC_SIZE + MADT_IOAPIC_SIZE + MADT_ISO_SIZE + MADT_LAPIC_NMI_SIZE;
}

static void build_madt(unsigned char *t, const struct kevd_acpi_config *cfg)
{
	size_t len = madt_size(cfg->ncpus), off = MADT_FIXED;
	unsigned char *e;

	put_header(t, "APIC", len, MADT_REVISION);
	kevd_put32(t + MADT_LAPIC_ADDR, cfg->lapic_addr);
	kevd_put32(t + MADT_FLAGS, MADT_PCAT_COMPAT);

	/* Processor UID i for APIC ID i: there are no processor objects in
	 * the DSDT for the UIDs to match, and identity is what OSes expect. */
	for (unsigned i = 0; i < cfg->ncpus; i++, off += MADT_LAPIC_SIZE) {
		e = t + off;
		e[0] = MADT_TYPE_LAPIC;
		e[1] = MADT_LAPIC_SIZE;
		e[2] = (unsigned char)i;
		e[3] = (unsigned char)i;
		kevd_put32(e + 4, MADT_LAPIC_ENABLED);
	}

	e = t + off;
	e[0] = MADT_TYPE_IOAPIC;
	e[1] = MADT_IOAPIC_SIZE;
	e[2] = cfg->ioapic_id;
	e[3] = 0;
	kevd_put32(e + 4, cfg->ioapic_addr);
	kevd_put32(e + 8, 0);  /* GSI base: pins 0..23 are GSIs 0..23 */
	off += MADT_IOAPIC_SIZE;

	/* The only ISA IRQ not identity-mapped: KVM's PIT drives IOAPIC pin 2
	 * (pin 0 is the 8259's INTR on a PC).  COM1's IRQ 4 is pin 4, edge,
	 * active-high, the ISA default, so it needs no override; there is no
	 * SCI to route in hardware-reduced mode. */
	e = t + off;
	e[0] = MADT_TYPE_ISO;
	e[1] = MADT_ISO_SIZE;
	e[2] = MADT_ISA_BUS;
	e[3] = PIT_ISA_IRQ;
	kevd_put32(e + 4, PIT_GSI);
	kevd_put16(e + 8, MPS_INTI_EDGE | MPS_INTI_ACTIVE_HIGH);
	off += MADT_ISO_SIZE;

	/* LINT1 of every LAPIC is NMI, as on a PC. */
	e = t + off;
	e[0] = MADT_TYPE_LAPIC_NMI;
	e[1] = MADT_LAPIC_NMI_SIZE;
	e[2] = MADT_ALL_PROCESSORS;
	kevd_put16(e + 3, MPS_INTI_EDGE | MPS_INTI_ACTIVE_HIGH);
	e[5] = NMI_LINT;

	seal(t, len);
}

static int check_config(const struct kevd_acpi_config *cfg, kevd_gpa_t at_gpa, struct kevd_error *err)
{
	if (!cfg)
		return kevd_error_set(err, EINVAL, "ACPI tables: no configuration");
	if (cfg->ncpus == 0 || cfg->ncpus > KEVD_ACPI_MAX_CPUS)
		return kevd_error_set(err, EINVAL, "ACPI MADT: %u vCPUs, must be 1 to %d (8-bit xAPIC IDs, 0xff is broadcast)",
				      cfg->ncpus, KEVD_ACPI_MAX_CPUS);
	if (cfg->ioapic_id < cfg->ncpus)
		return kevd_error_set(err, EINVAL, "ACPI MADT: I/O APIC ID %u is also the APIC ID of vCPU %u",
				      cfg->ioapic_id, cfg->ioapic_id);
	if (cfg->s5_slp_typ > (KEVD_ACPI_SLP_TYP_MASK >> KEVD_ACPI_SLP_TYP_SHIFT))
		return kevd_error_set(err, EINVAL, "ACPI DSDT: SLP_TYP %u for \\_S5 does not fit its 3 bits",
				      cfg->s5_slp_typ);
	/* Linux offers ACPI power-off only if both sleep registers have
	 * non-zero addresses, and the status register is the next port. */
	if (cfg->sleep_port == 0 || cfg->sleep_port == UINT16_MAX)
		return kevd_error_set(err, EINVAL, "ACPI FADT: sleep control port 0x%x leaves no room for the status register at the next port, or reads as absent",
				      cfg->sleep_port);
	if (at_gpa.v == 0)
		return kevd_error_set(err, EINVAL, "ACPI RSDP at 0x0: PVH treats address 0 as no ACPI");
	if (at_gpa.v & 15)
		return kevd_error_set(err, EINVAL, "ACPI RSDP at 0x%llx: not 16-byte aligned",
				      (unsigned long long)at_gpa.v);
	return 0;
}

int kevd_acpi_build(void *buf, size_t size, kevd_gpa_t at_gpa, const struct kevd_acpi_config *cfg,
		    kevd_gpa_t *rsdp_gpa, struct kevd_error *err)
{
	unsigned char *p = buf;
	struct aml aml = { .len = 0 };
	size_t xsdt_off, xsdt_len, fadt_off, madt_off, madt_len, dsdt_off, dsdt_len, total;
	unsigned char *t;
	int ret;

	ret = check_config(cfg, at_gpa, err);
	if (ret < 0)
		return ret;

	build_dsdt_aml(cfg, &aml);
	if (aml.overflow)
		return kevd_error_set(err, EOVERFLOW, "ACPI DSDT: AML longer than %d bytes (a kevd bug)", AML_MAX);

	/* The RSDP first, at AT_GPA itself, so it keeps its 16-byte alignment. */
	xsdt_off = kevd_align8(RSDP_SIZE);
	xsdt_len = HEADER_SIZE + XSDT_ENTRIES * XSDT_ENTRY;
	fadt_off = kevd_align8(xsdt_off + xsdt_len);
	madt_off = kevd_align8(fadt_off + FADT_SIZE);
	madt_len = madt_size(cfg->ncpus);
	dsdt_off = kevd_align8(madt_off + madt_len);
	dsdt_len = HEADER_SIZE + aml.len;
	total = dsdt_off + dsdt_len;

	if (!buf || total > size)
		return kevd_error_set(err, ENOSPC, "ACPI tables at 0x%llx: need %zu bytes, the buffer holds %zu",
				      (unsigned long long)at_gpa.v, total, buf ? size : 0);
	/* The whole set below 4 GiB: the XSDT could point higher, but an RSDP
	 * consumer may still follow the 32-bit fields, and kevd's reserved
	 * low area is where the tables belong anyway. */
	if (at_gpa.v >= KEVD_MMIO_HOLE_END || KEVD_MMIO_HOLE_END - at_gpa.v < total)
		return kevd_error_set(err, EINVAL, "ACPI tables at 0x%llx (%zu bytes): must lie below 4 GiB",
				      (unsigned long long)at_gpa.v, total);

	/* Zeroing first makes reserved fields and the padding between tables
	 * deterministic. */
	memset(p, 0, total);

	t = p + dsdt_off;
	put_header(t, "DSDT", dsdt_len, DSDT_REVISION);
	memcpy(t + HEADER_SIZE, aml.b, aml.len);
	seal(t, dsdt_len);

	build_fadt(p + fadt_off, cfg, at_gpa.v + dsdt_off);
	build_madt(p + madt_off, cfg);

	t = p + xsdt_off;
	put_header(t, "XSDT", xsdt_len, XSDT_REVISION);
	kevd_put64(t + HEADER_SIZE, at_gpa.v + fadt_off);
	kevd_put64(t + HEADER_SIZE + XSDT_ENTRY, at_gpa.v + madt_off);
	seal(t, xsdt_len);

	/* No RSDT (its address stays 0): every ACPI 2.0+ OS follows the XSDT
	 * of a revision 2 RSDP. */
	memcpy(p, "RSD PTR ", 8);
	memcpy(p + RSDP_OEM_ID, KEVD_ACPI_OEM_ID, 6);
	p[RSDP_REVISION_OFF] = RSDP_REVISION;
	kevd_put32(p + RSDP_RSDT, 0);
	kevd_put32(p + RSDP_LENGTH, RSDP_SIZE);
	kevd_put64(p + RSDP_XSDT, at_gpa.v + xsdt_off);
	p[RSDP_CHECKSUM] = checksum(p, RSDP_V1_SIZE);
	p[RSDP_EXT_CHECKSUM] = checksum(p, RSDP_SIZE);

	if (rsdp_gpa)
		*rsdp_gpa = at_gpa;
	return (int)total;
}
