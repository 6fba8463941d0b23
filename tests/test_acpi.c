/*
 * ACPI tables read back by a walker written here from the specification,
 * independently of the builder's offsets and helpers: from the RSDP
 * through the XSDT to the FADT and MADT, from the FADT to the DSDT, whose
 * AML is parsed term by term (PkgLengths included) down to the COM1
 * resource template.  When iasl (acpica-tools) is installed, each table is
 * also disassembled by it, and the DSDT recompiled from that disassembly
 * must give back the same AML; without iasl that part is skipped.  (iasl
 * cannot disassemble a bare RSDP, so the RSDP is checked here only.)
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/acpi.h"
#include "testutil.h"

#define AT 0xe0000
#define BUF_SIZE 0x10000
#define GiB ((uint64_t)1 << 30)

static unsigned char buf[BUF_SIZE];

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static unsigned sum8(const unsigned char *p, size_t n)
{
	unsigned s = 0;

	for (size_t i = 0; i < n; i++)
		s += p[i];
	return s & 0xff;
}

static struct kevd_acpi_config config(unsigned ncpus, bool com1)
{
	return (struct kevd_acpi_config){
		.ncpus = ncpus, .lapic_addr = 0xfee00000, .ioapic_addr = 0xfec00000,
		.ioapic_id = (uint8_t)ncpus, .sleep_port = 0x3c0, .s5_slp_typ = 5, .serial_com1 = com1,
	};
}

static int build_ok(const struct kevd_acpi_config *cfg)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	kevd_gpa_t rsdp = KEVD_GPA(1);
	int n;

	memset(buf, 0xa5, sizeof(buf));
	n = kevd_acpi_build(buf, sizeof(buf), KEVD_GPA(AT), cfg, &rsdp, &err);
	if (n < 0)
		ck_abort_msg("build for %u vCPUs failed: %s", cfg->ncpus, err.msg);
	ck_assert_uint_eq(rsdp.v, AT);
	return n;
}

/* The table at guest-physical GPA, checked to lie inside the N bytes
 * built, with its signature, length, checksum and header strings. */
static const unsigned char *table(uint64_t gpa, int n, const char *sig)
{
	const unsigned char *t;
	uint32_t len;

	ck_assert_uint_ge(gpa, AT);
	ck_assert_uint_le(gpa + 36, (uint64_t)AT + (uint64_t)n);
	t = buf + (gpa - AT);
	ck_assert_msg(memcmp(t, sig, 4) == 0, "expected %s at 0x%llx, found %.4s", sig,
		      (unsigned long long)gpa, (const char *)t);
	len = le32(t + 4);
	ck_assert_uint_ge(len, 36);
	ck_assert_uint_le(gpa + len, (uint64_t)AT + (uint64_t)n);
	ck_assert_msg(sum8(t, len) == 0, "%s checksum", sig);
	ck_assert(memcmp(t + 10, "KEVD  ", 6) == 0);
	ck_assert(memcmp(t + 16, "KEVDVM  ", 8) == 0);
	ck_assert(memcmp(t + 28, "KEVD", 4) == 0);
	return t;
}

struct tables {
	const unsigned char *xsdt, *fadt, *madt, *dsdt;
};

static struct tables walk_root(int n)
{
	struct tables tb = { 0 };
	uint32_t xlen;

	ck_assert(memcmp(buf, "RSD PTR ", 8) == 0);
	ck_assert_uint_eq(sum8(buf, 20), 0);
	ck_assert_uint_eq(buf[15], 2);
	ck_assert_uint_eq(le32(buf + 20), 36);
	ck_assert_uint_eq(sum8(buf, 36), 0);
	ck_assert(memcmp(buf + 9, "KEVD  ", 6) == 0);

	tb.xsdt = table(le64(buf + 24), n, "XSDT");
	xlen = le32(tb.xsdt + 4);
	ck_assert_uint_eq((xlen - 36) % 8, 0);
	for (uint32_t off = 36; off < xlen; off += 8) {
		uint64_t gpa = le64(tb.xsdt + off);
		const unsigned char *t = buf + (gpa - AT);

		ck_assert_uint_ge(gpa, AT);
		ck_assert_uint_lt(gpa, (uint64_t)AT + (uint64_t)n);
		if (memcmp(t, "FACP", 4) == 0) {
			ck_assert_ptr_null(tb.fadt);
			tb.fadt = table(gpa, n, "FACP");
		} else if (memcmp(t, "APIC", 4) == 0) {
			ck_assert_ptr_null(tb.madt);
			tb.madt = table(gpa, n, "APIC");
		} else {
			ck_abort_msg("unexpected table %.4s in the XSDT", (const char *)t);
		}
	}
	ck_assert_ptr_nonnull(tb.fadt);
	ck_assert_ptr_nonnull(tb.madt);
	/* FADT: revision 6 is 276 bytes; X_DSDT at 140. */
	ck_assert_uint_eq(tb.fadt[8], 6);
	ck_assert_uint_ge(le32(tb.fadt + 4), 276);
	tb.dsdt = table(le64(tb.fadt + 140), n, "DSDT");
	return tb;
}

static void check_gas_io8(const unsigned char *g, uint64_t port)
{
	ck_assert_uint_eq(g[0], 1);   /* system I/O */
	ck_assert_uint_eq(g[1], 8);   /* bit width */
	ck_assert_uint_eq(g[2], 0);   /* bit offset */
	ck_assert_uint_eq(g[3], 1);   /* byte access */
	ck_assert_uint_eq(le64(g + 4), port);
}

static void check_fadt(const unsigned char *f, const struct kevd_acpi_config *cfg)
{
	uint32_t flags = le32(f + 112);
	uint16_t boot = le16(f + 109);

	ck_assert_msg(flags & (1u << 20), "HW_REDUCED_ACPI not set");
	ck_assert_uint_eq(boot & (1u << 1), 0);       /* no 8042 for the driver to probe */
	ck_assert_uint_ne(boot & (1u << 2), 0);       /* VGA not present */
	check_gas_io8(f + 244, cfg->sleep_port);
	check_gas_io8(f + 256, cfg->sleep_port + 1u);
	ck_assert_uint_eq(le32(f + 36), 0);           /* no FACS */
	ck_assert_uint_eq(le64(f + 132), 0);
	ck_assert_uint_eq(le32(f + 76), 0);           /* no PM timer */
}

static void check_madt(const unsigned char *m, const struct kevd_acpi_config *cfg)
{
	uint32_t len = le32(m + 4), off = 44;
	unsigned char seen[256] = { 0 };
	unsigned lapics = 0, ioapics = 0, iso0 = 0;

	ck_assert_uint_eq(le32(m + 36), cfg->lapic_addr);
	ck_assert_uint_eq(le32(m + 40) & 1, 1);       /* PCAT_COMPAT */
	while (off < len) {
		const unsigned char *e = m + off;

		ck_assert_uint_ge(e[1], 2);
		ck_assert_uint_le(off + e[1], len);
		switch (e[0]) {
		case 0:
			ck_assert_uint_eq(e[1], 8);
			ck_assert_uint_lt(e[3], cfg->ncpus);
			ck_assert_uint_eq(seen[e[3]], 0);
			seen[e[3]] = 1;
			ck_assert_uint_eq(le32(e + 4) & 1, 1);
			lapics++;
			break;
		case 1:
			ck_assert_uint_eq(e[1], 12);
			ck_assert_uint_eq(e[2], cfg->ioapic_id);
			ck_assert_uint_eq(le32(e + 4), cfg->ioapic_addr);
			ck_assert_uint_eq(le32(e + 8), 0);
			ioapics++;
			break;
		case 2:
			ck_assert_uint_eq(e[1], 10);
			ck_assert_uint_eq(e[2], 0);           /* ISA */
			if (e[3] == 0) {
				ck_assert_uint_eq(le32(e + 4), 2);
				ck_assert_uint_eq(le16(e + 8), 0x5);  /* edge, active high */
				iso0++;
			}
			break;
		case 4:
			ck_assert_uint_eq(e[1], 6);
			ck_assert_uint_eq(e[5], 1);           /* LINT1 */
			break;
		default:
			ck_abort_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	ck_assert_uint_eq(off, len);
	ck_assert_uint_eq(lapics, cfg->ncpus);
	ck_assert_uint_eq(ioapics, 1);
	ck_assert_uint_eq(iso0, 1);
}

/* --- an AML reader for the few constructs the DSDT may hold ---------- */

struct reader {
	const unsigned char *p;
	size_t pos, end;
};

static unsigned char rd(struct reader *r)
{
	ck_assert_uint_lt(r->pos, r->end);
	return r->p[r->pos++];
}

/* PkgLength (ACPI 20.2.4); returns the absolute end of the package. */
static size_t rd_pkg_end(struct reader *r)
{
	size_t start = r->pos, len;
	unsigned lead = rd(r), follow = lead >> 6;

	if (follow == 0)
		return start + (lead & 0x3f);
	ck_assert_uint_eq(lead & 0x30, 0);
	len = lead & 0x0f;
	for (unsigned i = 0; i < follow; i++)
		len |= (size_t)rd(r) << (4 + 8 * i);
	ck_assert_uint_le(start + len, r->end);
	return start + len;
}

static uint64_t rd_integer(struct reader *r)
{
	unsigned char op = rd(r);
	uint64_t v = 0;
	int n;

	switch (op) {
	case 0x00: return 0;
	case 0x01: return 1;
	case 0xff: return ~(uint64_t)0;
	case 0x0a: n = 1; break;
	case 0x0b: n = 2; break;
	case 0x0c: n = 4; break;
	case 0x0e: n = 8; break;
	default: ck_abort_msg("opcode 0x%02x at %zu is not an integer", op, r->pos - 1); return 0;
	}
	for (int i = 0; i < n; i++)
		v |= (uint64_t)rd(r) << (8 * i);
	return v;
}

static void rd_name(struct reader *r, char seg[5])
{
	for (int i = 0; i < 4; i++)
		seg[i] = (char)rd(r);
	seg[4] = '\0';
}

static void check_s5(struct reader *r, uint8_t typ)
{
	size_t end;
	unsigned count;

	ck_assert_uint_eq(rd(r), 0x12);     /* PackageOp */
	end = rd_pkg_end(r);
	count = rd(r);
	ck_assert_uint_ge(count, 1);
	for (unsigned i = 0; i < count; i++)
		ck_assert_uint_eq(rd_integer(r), typ);
	ck_assert_uint_eq(r->pos, end);
}

static void check_crs(struct reader *r)
{
	size_t end, len, pos;
	const unsigned char *b;
	bool io = false, irq = false, endtag = false;

	ck_assert_uint_eq(rd(r), 0x11);     /* BufferOp */
	end = rd_pkg_end(r);
	len = (size_t)rd_integer(r);
	ck_assert_uint_eq(r->pos + len, end);
	b = r->p + r->pos;
	for (pos = 0; pos < len && !endtag;) {
		unsigned tag = b[pos], type = (tag >> 3) & 0xf, n = tag & 7;

		ck_assert_msg(!(tag & 0x80), "large resource descriptor 0x%02x unexpected", tag);
		ck_assert_uint_le(pos + 1 + n, len);
		switch (type) {
		case 0x8:   /* I/O port: decode, min, max, align, length */
			ck_assert_uint_eq(n, 7);
			ck_assert_uint_eq(b[pos + 1] & 1, 1);
			ck_assert_uint_eq(le16(b + pos + 2), 0x3f8);
			ck_assert_uint_eq(le16(b + pos + 4), 0x3f8);
			ck_assert_uint_eq(b[pos + 7], 8);
			io = true;
			break;
		case 0x4:   /* IRQ mask (and optional flags) */
			ck_assert_uint_ge(n, 2);
			ck_assert_uint_eq(le16(b + pos + 1), 1u << 4);
			irq = true;
			break;
		case 0xf:
			ck_assert_uint_eq(n, 1);
			endtag = true;
			break;
		default:
			ck_abort_msg("unexpected small resource type 0x%x", type);
		}
		pos += 1 + n;
	}
	ck_assert(io && irq && endtag);
	ck_assert_uint_eq(pos, len);
	r->pos = end;
}

static void check_com1(struct reader *r)
{
	/* EISA ID "PNP0501" worked out by hand: P=0x10, N=0x0e, P=0x10 in
	 * 5-bit fields -> 0 10000 01110 10000 = 0x41d0 big-endian, then 05 01. */
	static const unsigned char pnp0501[4] = { 0x41, 0xd0, 0x05, 0x01 };
	size_t end = rd_pkg_end(r);
	bool hid = false, uid = false, crs = false;
	char seg[5];

	ck_assert_uint_eq(rd(r), 0x5c);     /* \ */
	ck_assert_uint_eq(rd(r), 0x2e);     /* DualNamePrefix */
	rd_name(r, seg);
	ck_assert_str_eq(seg, "_SB_");
	rd_name(r, seg);
	ck_assert_str_eq(seg, "COM1");
	while (r->pos < end) {
		ck_assert_uint_eq(rd(r), 0x08);     /* NameOp */
		rd_name(r, seg);
		if (strcmp(seg, "_HID") == 0) {
			ck_assert_uint_eq(rd(r), 0x0c);
			ck_assert(memcmp(r->p + r->pos, pnp0501, 4) == 0);
			r->pos += 4;
			hid = true;
		} else if (strcmp(seg, "_UID") == 0) {
			ck_assert_uint_eq(rd_integer(r), 1);
			uid = true;
		} else if (strcmp(seg, "_CRS") == 0) {
			check_crs(r);
			crs = true;
		} else {
			ck_abort_msg("unexpected name %s in COM1", seg);
		}
	}
	ck_assert_uint_eq(r->pos, end);
	ck_assert(hid && uid && crs);
}

static void check_dsdt(const unsigned char *d, const struct kevd_acpi_config *cfg)
{
	struct reader r = { d, 36, le32(d + 4) };
	bool s5 = false, com1 = false;
	char seg[5];

	ck_assert_uint_ge(d[8], 2);
	while (r.pos < r.end) {
		unsigned char op = rd(&r);

		if (op == 0x08) {
			rd_name(&r, seg);
			ck_assert_str_eq(seg, "_S5_");
			check_s5(&r, cfg->s5_slp_typ);
			s5 = true;
		} else if (op == 0x5b) {
			ck_assert_uint_eq(rd(&r), 0x82);    /* DeviceOp */
			check_com1(&r);
			com1 = true;
		} else {
			ck_abort_msg("unexpected AML opcode 0x%02x at %zu", op, r.pos - 1);
		}
	}
	ck_assert_uint_eq(r.pos, r.end);
	ck_assert(s5);
	ck_assert(com1 == cfg->serial_com1);
}

static void check_all(unsigned ncpus, bool com1)
{
	struct kevd_acpi_config cfg = config(ncpus, com1);
	int n = build_ok(&cfg);
	struct tables tb = walk_root(n);

	check_fadt(tb.fadt, &cfg);
	check_madt(tb.madt, &cfg);
	check_dsdt(tb.dsdt, &cfg);
	/* Nothing past the bytes reported used. */
	ck_assert_uint_eq(buf[n], 0xa5);
}

START_TEST(one_cpu_no_serial)
{
	check_all(1, false);
}
END_TEST

START_TEST(four_cpus_com1)
{
	check_all(4, true);
}
END_TEST

START_TEST(many_cpus)
{
	check_all(64, true);
	check_all(KEVD_ACPI_MAX_CPUS, false);   /* I/O APIC ID 255 */
}
END_TEST

START_TEST(other_sleep_values)
{
	struct kevd_acpi_config cfg = config(2, true);
	int n;

	for (uint8_t typ = 0; typ <= 7; typ++) {
		cfg.s5_slp_typ = typ;
		cfg.sleep_port = (uint16_t)(0x600 + typ);
		n = build_ok(&cfg);
		struct tables tb = walk_root(n);

		check_fadt(tb.fadt, &cfg);
		check_dsdt(tb.dsdt, &cfg);
	}
}
END_TEST

static int build_err(size_t size, uint64_t at, const struct kevd_acpi_config *cfg, struct kevd_error *err)
{
	kevd_gpa_t rsdp = KEVD_GPA(1);
	int r;

	memset(buf, 0xa5, sizeof(buf));
	r = kevd_acpi_build(buf, size, KEVD_GPA(at), cfg, &rsdp, err);
	/* A failed call writes nothing. */
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != 0xa5)
			ck_abort_msg("failed build wrote byte %zu", i);
	ck_assert_uint_eq(rsdp.v, 1);
	return r;
}

START_TEST(errors)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_acpi_config cfg = config(4, true);
	int need;

	need = build_ok(&cfg);
	ck_assert_int_eq(build_err((size_t)need - 1, AT, &cfg, &err), -ENOSPC);
	ck_assert_int_eq(err.errnum, ENOSPC);
	ck_assert_ptr_nonnull(strstr(err.msg, "need"));
	ck_assert_int_eq(build_err(0, AT, &cfg, &err), -ENOSPC);

	cfg.ncpus = 0;
	ck_assert_int_eq(build_err(BUF_SIZE, AT, &cfg, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "0 vCPUs"));
	cfg.ncpus = 256;
	cfg.ioapic_id = 0;
	ck_assert_int_eq(build_err(BUF_SIZE, AT, &cfg, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "256 vCPUs"));

	cfg = config(4, true);
	ck_assert_int_eq(build_err(BUF_SIZE, AT + 8, &cfg, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "16-byte aligned"));
	ck_assert_int_eq(build_err(BUF_SIZE, 0, &cfg, &err), -EINVAL);
	ck_assert_int_eq(build_err(BUF_SIZE, 4 * GiB - 256, &cfg, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "below 4 GiB"));
	ck_assert_int_eq(build_err(BUF_SIZE, 8 * GiB, &cfg, &err), -EINVAL);
	/* Just fits under 4 GiB. */
	ck_assert_int_eq(kevd_acpi_build(buf, BUF_SIZE, KEVD_GPA(4 * GiB - (((uint64_t)need + 15) & ~15ull)),
					 &cfg, NULL, &err), need);

	cfg.ioapic_id = 3;
	ck_assert_int_eq(build_err(BUF_SIZE, AT, &cfg, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "I/O APIC ID 3"));
	cfg = config(4, true);
	cfg.s5_slp_typ = 8;
	ck_assert_int_eq(build_err(BUF_SIZE, AT, &cfg, &err), -EINVAL);
	cfg = config(4, true);
	cfg.sleep_port = 0;
	ck_assert_int_eq(build_err(BUF_SIZE, AT, &cfg, &err), -EINVAL);
	cfg.sleep_port = 0xffff;
	ck_assert_int_eq(build_err(BUF_SIZE, AT, &cfg, &err), -EINVAL);
	ck_assert_int_eq(build_err(BUF_SIZE, AT, NULL, &err), -EINVAL);
}
END_TEST

/* --- iasl cross-check ---------------------------------------------- */

static int write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wbe");
	size_t w;

	if (!f)
		return -1;
	w = fwrite(p, 1, n, f);
	return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static unsigned char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rbe");
	unsigned char *p;
	long len;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return NULL;
	}
	p = malloc((size_t)len + 1);
	if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
		free(p);
		p = NULL;
	}
	fclose(f);
	if (p) {
		p[len] = '\0';
		*n = (size_t)len;
	}
	return p;
}

/* Runs iasl in DIR; 0 when it exits 0. */
static int iasl(const char *dir, const char *args)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "cd '%s' && iasl %s >>iasl.log 2>&1", dir, args);
	return system(cmd);
}

/* The disassembly must exist and carry none of the complaints iasl writes
 * into it (bad checksums, lengths, unknown subtables). */
static void check_dsl(const char *dir, const char *name)
{
	char path[512];
	unsigned char *dsl;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s.dsl", dir, name);
	dsl = read_file(path, &n);
	ck_assert_msg(dsl, "iasl -d %s.dat produced no %s.dsl", name, name);
	ck_assert_msg(!strstr((char *)dsl, "Incorrect checksum"), "%s: iasl reports a bad checksum", name);
	ck_assert_msg(!strstr((char *)dsl, "Invalid"), "%s: iasl reports something invalid", name);
	ck_assert_msg(!strstr((char *)dsl, "**** "), "%s: iasl flags a problem", name);
	free(dsl);
}

START_TEST(iasl_roundtrip)
{
	struct kevd_acpi_config cfg = config(4, true);
	char dir[] = "/tmp/kevd-acpi-XXXXXX", path[512];
	static const char *const names[] = { "xsdt", "facp", "apic", "dsdt" };
	const unsigned char *tabs[4];
	struct tables tb;
	unsigned char *aml;
	size_t aml_len;
	int n;

	if (system("command -v iasl >/dev/null 2>&1") != 0) {
		fprintf(stderr, "test_acpi: iasl not found, skipping the disassembly check\n");
		return;
	}
	n = build_ok(&cfg);
	tb = walk_root(n);
	tabs[0] = tb.xsdt;
	tabs[1] = tb.fadt;
	tabs[2] = tb.madt;
	tabs[3] = tb.dsdt;
	ck_assert_ptr_nonnull(mkdtemp(dir));
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s.dat", dir, names[i]);
		ck_assert_int_eq(write_file(path, tabs[i], le32(tabs[i] + 4)), 0);
		snprintf(path, sizeof(path), "-d %s.dat", names[i]);
		ck_assert_msg(iasl(dir, path) == 0, "iasl -d %s.dat failed (see %s/iasl.log)", names[i], dir);
		check_dsl(dir, names[i]);
	}

	/* Recompiling the DSDT's disassembly gives the same AML body.  -oa
	 * keeps iasl from shortening \_SB.COM1 to the equivalent _SB.COM1
	 * (names at the root scope resolve the same either way). */
	ck_assert_msg(iasl(dir, "-oa -p again dsdt.dsl") == 0, "iasl could not recompile dsdt.dsl (see %s/iasl.log)", dir);
	snprintf(path, sizeof(path), "%s/again.aml", dir);
	aml = read_file(path, &aml_len);
	ck_assert_ptr_nonnull(aml);
	ck_assert_uint_eq(aml_len, le32(tb.dsdt + 4));
	ck_assert(memcmp(aml + 36, tb.dsdt + 36, aml_len - 36) == 0);
	free(aml);

	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(path), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("acpi");
	TCase *t = tcase_create("acpi");

	tcase_add_test(t, one_cpu_no_serial);
	tcase_add_test(t, four_cpus_com1);
	tcase_add_test(t, many_cpus);
	tcase_add_test(t, other_sleep_values);
	tcase_add_test(t, errors);
	tcase_add_test(t, iasl_roundtrip);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return kevd_test_run(suite());
}
