/*
 * KVM state save and load (vmm/kvmstate.h) and the blob records it is kept
 * in (common/blob.h).
 *
 * The blob: the bytes on disk, a round trip, every truncation point, bad
 * padding and lengths, and a put too long to record.  The state, on raw KVM
 * VMs (no kevd VM: a memslot with a few bytes of 32-bit code and one vCPU),
 * with and without the in-kernel irqchip and PIT: distinctive registers,
 * system registers, MSRs (the TSC among them), XCR0, debug registers, FPU
 * and LAPIC state set on one vCPU, which runs a little and is saved; the
 * state loaded into a vCPU of a second VM reads back as saved, and the vCPU
 * goes on running from where the first stopped.  The VM-wide state (PICs,
 * I/O APIC, PIT, kvmclock) likewise.  Then the errors: every truncation of
 * a real state, garbage, unknown, duplicate, missing and misplaced records
 * (all -EBADMSG, before any ioctl), a record KVM refuses, and bad fds.
 * Skips (77) without /dev/kvm.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/blob.h"
#include "common/cleanup.h"
#include "vmm/kvmstate.h"
#include "testutil.h"

#define MSR_IA32_TSC 0x10
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_STAR 0xc0000081

#define MEM_SIZE 0x10000
#define CODE_GPA 0x1000
#define OUT_PORT 0xe9
#define TSS_GPA 0xfffbd000ul

/* 32-bit code at CODE_GPA, forever: inc ebx; mov eax, ebx; out 0xe9, al;
 * jmp back.  Each pass reports EBX; the OUT is at +3, the JMP at +5. */
static const unsigned char guest_code[] = { 0x43, 0x89, 0xd8, 0xe6, OUT_PORT, 0xeb, 0xf9 };

#define SET_RBX 0x41
#define SET_TSC (1ull << 40)
#define SET_CLOCK_NS 1000000000000ull  /* 1000 s */
#define SET_MXCSR 0x1fc0u              /* the default with DAZ */
#define LAPIC_TPR 0x80
#define LAPIC_SVR 0xf0
#define LAPIC_LVTT 0x320
#define LAPIC_LINT0 0x350

static const uint64_t set_high[8] = {
	0x0808080808080808, 0x0909090909090909, 0x1010101010101010, 0x1111111111111111,
	0x1212121212121212, 0x1313131313131313, 0x1414141414141414, 0x1515151515151515,
};
static const uint64_t set_dr[4] = { 0xdead0000, 0xdead1000, 0xdead2000, 0xdead3000 };
#define SET_DR7 0x401ull  /* L0: an execution breakpoint the code never reaches */

/* ---- the blob ---- */

START_TEST(blob_bytes_and_round_trip)
{
	static const size_t lens[] = { 0, 1, 7, 8, 9, 13, 1000 };
	struct kevd_blob b;
	struct kevd_blob_reader rd;
	unsigned char src[1000];
	static const unsigned char want[16] = { 4, 3, 2, 1, 3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0, 0 };
	uint32_t tag;
	const void *p;
	size_t n;

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(i * 7 + 1);
	kevd_blob_init(&b);
	kevd_blob_put(&b, 0x01020304, "abc", 3);
	ck_assert_uint_eq(b.len, 16);
	ck_assert_mem_eq(b.data, want, 16);  /* little-endian tag and length, zero padding */
	kevd_blob_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		kevd_blob_put(&b, 100 + (uint32_t)i, src, lens[i]);
	ck_assert(!b.oom);
	kevd_blob_reader_init(&rd, b.data, b.len);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		ck_assert_int_eq(kevd_blob_next(&rd, &tag, &p, &n), 1);
		ck_assert_uint_eq(tag, 100 + i);
		ck_assert_uint_eq(n, lens[i]);
		ck_assert(n == 0 || !memcmp(p, src, n));
		ck_assert_uint_eq(rd.off % 8, 0);
	}
	ck_assert_int_eq(kevd_blob_next(&rd, &tag, &p, &n), 0);
	ck_assert_int_eq(kevd_blob_next(&rd, &tag, &p, &n), 0);
	kevd_blob_free(&b);

	kevd_blob_reader_init(&rd, NULL, 0);
	ck_assert_int_eq(kevd_blob_next(&rd, &tag, &p, &n), 0);
}
END_TEST

/* A blob cut anywhere inside a record is refused; cut between two records
 * it is a shorter blob (which is why kvmstate ends its own with END). */
START_TEST(blob_every_truncation)
{
	static const size_t lens[] = { 5, 0, 16, 3 };
	struct kevd_blob b;
	size_t bounds[5] = { 0 };
	unsigned char src[16] = "0123456789abcdef";

	kevd_blob_init(&b);
	for (size_t i = 0; i < 4; i++) {
		kevd_blob_put(&b, 7, src, lens[i]);
		bounds[i + 1] = b.len;
	}
	for (size_t cut = 0; cut < b.len; cut++) {
		struct kevd_blob_reader rd;
		uint32_t tag;
		const void *p;
		size_t n, whole = 0;
		int r;

		kevd_blob_reader_init(&rd, b.data, cut);
		while ((r = kevd_blob_next(&rd, &tag, &p, &n)) == 1)
			whole++;
		ck_assert_uint_le(bounds[whole], cut);
		if (cut == bounds[whole]) {
			ck_assert_msg(r == 0, "cut %zu at a boundary: %d", cut, r);
		} else {
			ck_assert_msg(r == -EBADMSG, "cut %zu inside record %zu: %d", cut, whole, r);
			ck_assert_uint_eq(rd.off, bounds[whole]);  /* still at the bad record */
		}
	}
	kevd_blob_free(&b);
}
END_TEST

START_TEST(blob_malformed)
{
	struct kevd_blob b;
	struct kevd_blob_reader rd;
	uint32_t tag;
	const void *p;
	size_t n;

	kevd_blob_init(&b);
	kevd_blob_put(&b, 1, "abc", 3);
	/* Padding that is not zero. */
	b.data[12] = 1;
	kevd_blob_reader_init(&rd, b.data, b.len);
	ck_assert_int_eq(kevd_blob_next(&rd, &tag, &p, &n), -EBADMSG);
	b.data[12] = 0;
	/* A length past the end, and the largest length there is. */
	b.data[4] = 9;
	kevd_blob_reader_init(&rd, b.data, b.len);
	ck_assert_int_eq(kevd_blob_next(&rd, &tag, &p, &n), -EBADMSG);
	memset(b.data + 4, 0xff, 4);
	kevd_blob_reader_init(&rd, b.data, b.len);
	ck_assert_int_eq(kevd_blob_next(&rd, &tag, &p, &n), -EBADMSG);
	kevd_blob_free(&b);
}
END_TEST

START_TEST(blob_too_long_sets_oom)
{
	struct kevd_blob b;
	char c = 'x';

	kevd_blob_init(&b);
	kevd_blob_put(&b, 1, &c, 1);
	/* Never read: the length alone is refused. */
	kevd_blob_put(&b, 2, &c, (size_t)UINT32_MAX + 1);
	ck_assert(b.oom);
	ck_assert_uint_eq(b.len, 16);
	kevd_blob_put(&b, 3, &c, 1);  /* dropped, like every put after */
	ck_assert_uint_eq(b.len, 16);
	kevd_blob_free(&b);
	ck_assert(!b.oom);
}
END_TEST

/* ---- raw KVM VMs ---- */

struct tvm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	size_t run_size;
	unsigned char *mem;
	bool irqchip;
};

static void tvm_create(struct tvm *t, bool irqchip)
{
	struct kvm_userspace_memory_region slot = { .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE };
	int size;

	t->irqchip = irqchip;
	t->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(t->kvm, 0);
	t->vm = KEVD_RETRY_EINTR(ioctl(t->kvm, KVM_CREATE_VM, 0));
	ck_assert_int_ge(t->vm, 0);
	ck_assert_int_eq(ioctl(t->vm, KVM_SET_TSS_ADDR, TSS_GPA), 0);
	if (irqchip) {
		struct kvm_pit_config pit = { .flags = 0 };

		ck_assert_int_eq(ioctl(t->vm, KVM_CREATE_IRQCHIP, 0), 0);
		ck_assert_int_eq(ioctl(t->vm, KVM_CREATE_PIT2, &pit), 0);
	}
	t->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(t->mem, MAP_FAILED);
	memcpy(t->mem + CODE_GPA, guest_code, sizeof(guest_code));
	slot.userspace_addr = (uintptr_t)t->mem;
	ck_assert_int_eq(ioctl(t->vm, KVM_SET_USER_MEMORY_REGION, &slot), 0);
	t->vcpu = ioctl(t->vm, KVM_CREATE_VCPU, 0);
	ck_assert_int_ge(t->vcpu, 0);
	size = ioctl(t->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	ck_assert_int_gt(size, 0);
	t->run_size = (size_t)size;
	t->run = mmap(NULL, t->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, t->vcpu, 0);
	ck_assert_ptr_ne(t->run, MAP_FAILED);
}

static void tvm_free(struct tvm *t)
{
	munmap(t->run, t->run_size);
	close(t->vcpu);
	close(t->vm);
	close(t->kvm);
	munmap(t->mem, MEM_SIZE);
}

static bool has_xcrs(const struct tvm *t)
{
	return ioctl(t->kvm, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
}

static size_t xsave_size(const struct tvm *t)
{
	int n = ioctl(t->kvm, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return n > (int)sizeof(struct kvm_xsave) ? (size_t)n : sizeof(struct kvm_xsave);
}

static void get_xsave(const struct tvm *t, struct kvm_xsave *x)
{
	bool v2 = ioctl(t->kvm, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2) > 0;

	ck_assert_int_eq(ioctl(t->vcpu, v2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, x), 0);
}

static struct kvm_msrs *one_msr(uint32_t index, uint64_t data)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + sizeof(m->entries[0]));

	ck_assert_ptr_nonnull(m);
	m->nmsrs = 1;
	m->entries[0] = (struct kvm_msr_entry){ .index = index, .data = data };
	return m;
}

static uint64_t get_msr(const struct tvm *t, uint32_t index)
{
	cleanup_free struct kvm_msrs *m = one_msr(index, 0);

	ck_assert_int_eq(ioctl(t->vcpu, KVM_GET_MSRS, m), 1);
	return m->entries[0].data;
}

static void set_msr(const struct tvm *t, uint32_t index, uint64_t data)
{
	cleanup_free struct kvm_msrs *m = one_msr(index, data);

	ck_assert_int_eq(ioctl(t->vcpu, KVM_SET_MSRS, m), 1);
}

static uint32_t lapic_reg(const struct kvm_lapic_state *l, unsigned off)
{
	uint32_t v;

	memcpy(&v, l->regs + off, sizeof(v));
	return v;
}

static void set_lapic_reg(struct kvm_lapic_state *l, unsigned off, uint32_t v)
{
	memcpy(l->regs + off, &v, sizeof(v));
}

static void flat(struct kvm_segment *s, uint16_t sel, uint8_t type, uint64_t base)
{
	*s = (struct kvm_segment){
		.base = base, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .db = 1, .s = 1, .g = 1,
	};
}

/* The source vCPU: KVM's CPUID, 32-bit flat protected mode at CODE_GPA,
 * and something distinctive in every part of the state that has room. */
static void setup_source(const struct tvm *t)
{
	cleanup_free struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 256 * sizeof(c->entries[0]));
	cleanup_free struct kvm_xsave *x = calloc(1, xsave_size(t));
	struct kvm_sregs sr;
	struct kvm_regs r = { 0 };
	struct kvm_debugregs dr;
	uint32_t mxcsr = SET_MXCSR;
	uint64_t bv;

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(x);
	c->nent = 256;
	ck_assert_int_eq(ioctl(t->kvm, KVM_GET_SUPPORTED_CPUID, c), 0);
	ck_assert_int_eq(ioctl(t->vcpu, KVM_SET_CPUID2, c), 0);

	ck_assert_int_eq(ioctl(t->vcpu, KVM_GET_SREGS, &sr), 0);
	flat(&sr.cs, 0x08, 0xb, 0);
	flat(&sr.ds, 0x10, 0x3, 0);
	flat(&sr.es, 0x10, 0x3, 0);
	flat(&sr.ss, 0x10, 0x3, 0);
	flat(&sr.fs, 0x10, 0x3, 0x12345000);
	flat(&sr.gs, 0x10, 0x3, 0x6789a000);
	sr.gdt.base = 0x500;
	sr.gdt.limit = 0x1f;
	sr.idt.base = 0x600;
	sr.idt.limit = 0xff;
	sr.cr0 = 0x33;  /* PE MP ET NE */
	sr.cr2 = 0xdeadb000;
	sr.cr3 = 0x3000;
	sr.cr4 = 0x600 | (has_xcrs(t) ? 0x40000 : 0);  /* OSFXSR OSXMMEXCPT (OSXSAVE) */
	ck_assert_int_eq(ioctl(t->vcpu, KVM_SET_SREGS, &sr), 0);

	r.rip = CODE_GPA;
	r.rflags = 0x2;
	r.rax = 0x1111;
	r.rbx = SET_RBX;
	r.rcx = 0xc0ffee;
	r.rdx = 0xd00d;
	r.rsi = 0x5151;
	r.rdi = 0xd1d1;
	r.rsp = 0x7ff0;
	r.rbp = 0xb0b0;
	memcpy(&r.r8, set_high, sizeof(set_high));
	ck_assert_int_eq(ioctl(t->vcpu, KVM_SET_REGS, &r), 0);

	set_msr(t, MSR_IA32_SYSENTER_CS, 0x10);
	set_msr(t, MSR_IA32_SYSENTER_ESP, 0x8000f000);
	set_msr(t, MSR_IA32_SYSENTER_EIP, 0xc0001000);
	set_msr(t, MSR_STAR, 0x0023001000000000ull);
	set_msr(t, MSR_IA32_TSC, SET_TSC);

	if (has_xcrs(t)) {
		struct kvm_xcrs xc = { .nr_xcrs = 1, .xcrs[0] = { .xcr = 0, .value = 3 } };  /* x87 SSE */

		ck_assert_int_eq(ioctl(t->vcpu, KVM_SET_XCRS, &xc), 0);
	}

	get_xsave(t, x);
	memcpy((unsigned char *)x->region + 24, &mxcsr, sizeof(mxcsr));
	for (int i = 0; i < 16; i++)
		((unsigned char *)x->region)[160 + i] = (unsigned char)(0xa0 + i);  /* XMM0 */
	memcpy(&bv, (unsigned char *)x->region + 512, sizeof(bv));
	bv |= 3;  /* XSTATE_BV: x87 and SSE state present */
	memcpy((unsigned char *)x->region + 512, &bv, sizeof(bv));
	ck_assert_int_eq(ioctl(t->vcpu, KVM_SET_XSAVE, x), 0);

	ck_assert_int_eq(ioctl(t->vcpu, KVM_GET_DEBUGREGS, &dr), 0);
	memcpy(dr.db, set_dr, sizeof(set_dr));
	dr.dr7 = SET_DR7;
	ck_assert_int_eq(ioctl(t->vcpu, KVM_SET_DEBUGREGS, &dr), 0);

	if (t->irqchip) {
		struct kvm_lapic_state l;

		ck_assert_int_eq(ioctl(t->vcpu, KVM_GET_LAPIC, &l), 0);
		set_lapic_reg(&l, LAPIC_SVR, 0x1ff);     /* enabled, spurious vector 0xff */
		set_lapic_reg(&l, LAPIC_TPR, 0x20);
		set_lapic_reg(&l, LAPIC_LVTT, 0x100ef);  /* masked, vector 0xef */
		set_lapic_reg(&l, LAPIC_LINT0, 0x700);   /* ExtINT */
		ck_assert_int_eq(ioctl(t->vcpu, KVM_SET_LAPIC, &l), 0);
	}
}

/* Runs to the next OUT and returns the byte it wrote, then completes the
 * OUT without running further (KVM_RUN with immediate_exit), as a vCPU must
 * be left before its state is saved. */
static unsigned run_to_out(const struct tvm *t)
{
	unsigned char byte;

	ck_assert_int_eq(ioctl(t->vcpu, KVM_RUN, 0), 0);
	ck_assert_uint_eq(t->run->exit_reason, KVM_EXIT_IO);
	ck_assert_uint_eq(t->run->io.direction, KVM_EXIT_IO_OUT);
	ck_assert_uint_eq(t->run->io.port, OUT_PORT);
	ck_assert_uint_eq(t->run->io.size, 1);
	byte = ((unsigned char *)t->run)[t->run->io.data_offset];
	t->run->immediate_exit = 1;
	ck_assert_int_eq(ioctl(t->vcpu, KVM_RUN, 0), -1);
	ck_assert_int_eq(errno, EINTR);
	t->run->immediate_exit = 0;
	return byte;
}

/* The payload of TAG in a state, or NULL. */
static const void *find(const struct kevd_blob *b, uint32_t tag, size_t *n)
{
	struct kevd_blob_reader rd;
	uint32_t t;
	const void *p;

	kevd_blob_reader_init(&rd, b->data, b->len);
	while (kevd_blob_next(&rd, &t, &p, n) == 1)
		if (t == tag)
			return p;
	return NULL;
}

/* A copy of IN with the record TAG left out (P NULL), replaced by N bytes
 * at P, or (ADD) kept with a record ADD_TAG of those bytes put before it. */
static void edit(const struct kevd_blob *in, struct kevd_blob *out, uint32_t tag, const void *p, size_t n,
		 bool add, uint32_t add_tag)
{
	struct kevd_blob_reader rd;
	uint32_t t;
	const void *q;
	size_t m;

	kevd_blob_init(out);
	kevd_blob_reader_init(&rd, in->data, in->len);
	while (kevd_blob_next(&rd, &t, &q, &m) == 1) {
		if (t != tag) {
			kevd_blob_put(out, t, q, m);
		} else if (add) {
			kevd_blob_put(out, add_tag, p, n);
			kevd_blob_put(out, t, q, m);
		} else if (p) {
			kevd_blob_put(out, t, p, n);
		}
	}
	ck_assert(!out->oom);
}

/* The destination's state, read with the same ioctls, is the saved one. */
static void check_fixed(const struct tvm *t, const struct kevd_blob *b, uint32_t tag, unsigned long req,
			const char *name)
{
	unsigned char got[4096];
	size_t n = 0;
	const void *want = find(b, tag, &n);

	ck_assert_msg(want, "no %s record", name);
	ck_assert_uint_le(n, sizeof(got));
	memset(got, 0, sizeof(got));
	ck_assert_int_eq(ioctl(t->vcpu, req, got), 0);
	ck_assert_msg(!memcmp(got, want, n), "%s differs after the load", name);
}

static void save_source(struct tvm *src, struct kevd_blob *state)
{
	struct kevd_error err = KEVD_ERROR_INIT;

	kevd_blob_init(state);
	ck_assert_msg(kevd_kvmstate_vcpu_save(src->kvm, src->vcpu, src->irqchip, state, &err) == 0, "%s", err.msg);
	ck_assert(!state->oom);
}

START_TEST(vcpu_round_trip_and_run)
{
	bool irqchip = _i;
	struct kevd_error err = KEVD_ERROR_INIT;
	struct tvm src, dst;
	struct kevd_blob state;
	struct kvm_regs r;
	struct kvm_sregs sr;
	struct kvm_debugregs dr;
	const struct kvm_msr_entry *msrs;
	size_t n, nmsrs;
	uint64_t tsc_saved = 0, tsc_now;
	int khz;

	tvm_create(&src, irqchip);
	setup_source(&src);
	ck_assert_uint_eq(run_to_out(&src), SET_RBX + 1);
	save_source(&src, &state);

	tvm_create(&dst, irqchip);
	ck_assert_msg(kevd_kvmstate_vcpu_load(dst.kvm, dst.vcpu, irqchip, state.data, state.len, &err) == 0, "%s",
		      err.msg);

	/* Every fixed record reads back as it was saved... */
	check_fixed(&dst, &state, KEVD_KVMSTATE_REGS, KVM_GET_REGS, "REGS");
	check_fixed(&dst, &state, KEVD_KVMSTATE_SREGS2, KVM_GET_SREGS2, "SRG2");
	check_fixed(&dst, &state, KEVD_KVMSTATE_DEBUGREGS, KVM_GET_DEBUGREGS, "DBRG");
	check_fixed(&dst, &state, KEVD_KVMSTATE_EVENTS, KVM_GET_VCPU_EVENTS, "EVNT");
	check_fixed(&dst, &state, KEVD_KVMSTATE_MPSTATE, KVM_GET_MP_STATE, "MPST");
	if (has_xcrs(&dst))
		check_fixed(&dst, &state, KEVD_KVMSTATE_XCRS, KVM_GET_XCRS, "XCRS");
	if (irqchip) {
		struct kvm_lapic_state l;

		check_fixed(&dst, &state, KEVD_KVMSTATE_LAPIC, KVM_GET_LAPIC, "LAPC");
		ck_assert_int_eq(ioctl(dst.vcpu, KVM_GET_LAPIC, &l), 0);
		ck_assert_uint_eq(lapic_reg(&l, LAPIC_TPR), 0x20);
		ck_assert_uint_eq(lapic_reg(&l, LAPIC_LVTT), 0x100ef);
	} else {
		ck_assert_ptr_null(find(&state, KEVD_KVMSTATE_LAPIC, &n));
	}
	{
		cleanup_free struct kvm_xsave *x = calloc(1, xsave_size(&dst));
		const void *want = find(&state, KEVD_KVMSTATE_XSAVE, &n);
		uint32_t mxcsr;

		ck_assert_ptr_nonnull(want);
		ck_assert_uint_eq(n, xsave_size(&dst));
		get_xsave(&dst, x);
		ck_assert_msg(!memcmp(x, want, n), "XSAV differs after the load");
		memcpy(&mxcsr, (unsigned char *)x->region + 24, sizeof(mxcsr));
		ck_assert_uint_eq(mxcsr, SET_MXCSR);
		ck_assert_uint_eq(((unsigned char *)x->region)[160 + 15], 0xaf);
	}
	{
		cleanup_free struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 256 * sizeof(c->entries[0]));
		const void *want = find(&state, KEVD_KVMSTATE_CPUID, &n);

		c->nent = 256;
		ck_assert_int_eq(ioctl(dst.vcpu, KVM_GET_CPUID2, c), 0);
		ck_assert_uint_gt(c->nent, 0);
		ck_assert_uint_eq(c->nent * sizeof(c->entries[0]), n);
		ck_assert(!memcmp(c->entries, want, n));
	}

	/* ...and holds what the source was given. */
	ck_assert_int_eq(ioctl(dst.vcpu, KVM_GET_REGS, &r), 0);
	ck_assert_uint_eq(r.rip, CODE_GPA + 5);  /* the OUT completed: at the JMP */
	ck_assert_uint_eq(r.rbx, SET_RBX + 1);
	ck_assert_uint_eq(r.rcx, 0xc0ffee);
	ck_assert_uint_eq(r.rsp, 0x7ff0);
	ck_assert(!memcmp(&r.r8, set_high, sizeof(set_high)));
	ck_assert_int_eq(ioctl(dst.vcpu, KVM_GET_SREGS, &sr), 0);
	ck_assert_uint_eq(sr.fs.base, 0x12345000);
	ck_assert_uint_eq(sr.gs.base, 0x6789a000);
	ck_assert_uint_eq(sr.gdt.base, 0x500);
	ck_assert_uint_eq(sr.idt.limit, 0xff);
	ck_assert_uint_eq(sr.cr0, 0x33);
	ck_assert_uint_eq(sr.cr2, 0xdeadb000);
	ck_assert_int_eq(ioctl(dst.vcpu, KVM_GET_DEBUGREGS, &dr), 0);
	ck_assert(!memcmp(dr.db, set_dr, sizeof(set_dr)));
	ck_assert_uint_eq(dr.dr7 & 0xffff, SET_DR7);
	if (has_xcrs(&dst)) {
		struct kvm_xcrs xc;

		ck_assert_int_eq(ioctl(dst.vcpu, KVM_GET_XCRS, &xc), 0);
		ck_assert_uint_ge(xc.nr_xcrs, 1);
		ck_assert_uint_eq(xc.xcrs[0].xcr, 0);
		ck_assert_uint_eq(xc.xcrs[0].value, 3);
	}
	ck_assert_uint_eq(get_msr(&dst, MSR_IA32_SYSENTER_CS), 0x10);
	ck_assert_uint_eq(get_msr(&dst, MSR_IA32_SYSENTER_ESP), 0x8000f000);
	ck_assert_uint_eq(get_msr(&dst, MSR_IA32_SYSENTER_EIP), 0xc0001000);
	ck_assert_uint_eq(get_msr(&dst, MSR_STAR), 0x0023001000000000ull);

	/* Every saved MSR reads back as saved, the TSC as a TSC: no earlier
	 * than saved, and not far on (a minute, at this vCPU's rate). */
	msrs = find(&state, KEVD_KVMSTATE_MSRS, &n);
	ck_assert_ptr_nonnull(msrs);
	nmsrs = n / sizeof(*msrs);
	ck_assert_uint_gt(nmsrs, 5);
	for (size_t i = 0; i < nmsrs; i++) {
		uint64_t v = get_msr(&dst, msrs[i].index);

		if (msrs[i].index == MSR_IA32_TSC)
			tsc_saved = msrs[i].data;
		else
			ck_assert_msg(v == msrs[i].data, "MSR 0x%x: 0x%llx after the load, 0x%llx saved",
				      msrs[i].index, (unsigned long long)v, (unsigned long long)msrs[i].data);
	}
	khz = ioctl(dst.vcpu, KVM_GET_TSC_KHZ, 0);
	ck_assert_int_gt(khz, 0);
	tsc_now = get_msr(&dst, MSR_IA32_TSC);
	ck_assert_uint_ge(tsc_saved, SET_TSC);
	ck_assert_uint_ge(tsc_now, tsc_saved);
	ck_assert_uint_lt(tsc_now, tsc_saved + 60ull * 1000 * (uint64_t)khz);

	/* The loaded vCPU goes on from the saved RIP with the saved
	 * registers: the JMP, then one more INC of the saved EBX. */
	ck_assert_uint_eq(run_to_out(&dst), SET_RBX + 2);
	ck_assert_uint_eq(run_to_out(&dst), SET_RBX + 3);
	ck_assert_int_eq(ioctl(dst.vcpu, KVM_GET_REGS, &r), 0);
	ck_assert_uint_eq(r.rip, CODE_GPA + 5);
	ck_assert_uint_eq(r.rbx, SET_RBX + 3);
	ck_assert_uint_eq(r.rcx, 0xc0ffee);
	ck_assert_uint_eq(r.rdx, 0xd00d);
	ck_assert(!memcmp(&r.r8, set_high, sizeof(set_high)));
	ck_assert_uint_ge(get_msr(&dst, MSR_IA32_TSC), tsc_now);
	/* The source is untouched by all this and goes on by itself. */
	ck_assert_uint_eq(run_to_out(&src), SET_RBX + 2);

	kevd_blob_free(&state);
	tvm_free(&dst);
	tvm_free(&src);
}
END_TEST

/* Every cut of a real state is refused before any ioctl: the vCPU fd is
 * -1, so a cut that got that far would say EBADF. */
START_TEST(vcpu_every_truncation_refused)
{
	struct tvm src;
	struct kevd_blob state;

	tvm_create(&src, true);
	setup_source(&src);
	save_source(&src, &state);
	for (size_t cut = 0; cut < state.len; cut++) {
		struct kevd_error err = KEVD_ERROR_INIT;
		int r = kevd_kvmstate_vcpu_load(src.kvm, -1, true, state.data, cut, &err);

		ck_assert_msg(r == -EBADMSG, "cut at %zu of %zu: %d %s", cut, state.len, r, err.msg);
		ck_assert(strstr(err.msg, "vcpu state: "));
	}
	kevd_blob_free(&state);
	tvm_free(&src);
}
END_TEST

static void refused(const struct tvm *t, bool irqchip, const struct kevd_blob *b, const char *want)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	int r = kevd_kvmstate_vcpu_load(t->kvm, -1, irqchip, b->data, b->len, &err);

	ck_assert_msg(r == -EBADMSG, "%s: %d %s", want, r, err.msg);
	ck_assert_msg(strstr(err.msg, want), "wanted '%s' in: %s", want, err.msg);
}

START_TEST(vcpu_malformed_refused)
{
	static const char garbage[] = "this is not a saved vCPU, not at all.";
	struct tvm src;
	struct kevd_blob state, b;
	struct kevd_error err = KEVD_ERROR_INIT;
	const void *p;
	size_t n;

	tvm_create(&src, true);
	setup_source(&src);
	save_source(&src, &state);

	kevd_blob_init(&b);
	ck_assert_int_eq(kevd_kvmstate_vcpu_load(src.kvm, src.vcpu, true, garbage, sizeof(garbage), &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "vcpu state: ") && strstr(err.msg, "truncated or malformed"), "%s", err.msg);
	ck_assert_int_eq(kevd_kvmstate_vcpu_load(src.kvm, src.vcpu, true, NULL, 0, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "no END record"), "%s", err.msg);

	/* Unknown tags are refused, not skipped. */
	edit(&state, &b, KEVD_KVMSTATE_END, "new", 3, true, KEVD_KVMSTATE_TAG('N', 'E', 'W', '!'));
	refused(&src, true, &b, "unknown record 'NEW!'");
	kevd_blob_free(&b);
	/* A VM's records are not a vCPU's. */
	edit(&state, &b, KEVD_KVMSTATE_END, "x", 1, true, KEVD_KVMSTATE_PIT2);
	refused(&src, true, &b, "unknown record 'PIT2'");
	kevd_blob_free(&b);
	/* Sizes. */
	edit(&state, &b, KEVD_KVMSTATE_REGS, "abc", 3, false, 0);
	refused(&src, true, &b, "record 'REGS' is 3 bytes");
	kevd_blob_free(&b);
	edit(&state, &b, KEVD_KVMSTATE_MSRS, "0123456789abcdefX", 17, false, 0);
	refused(&src, true, &b, "record 'MSRS' is 17 bytes");
	kevd_blob_free(&b);
	edit(&state, &b, KEVD_KVMSTATE_XSAVE, "0123", 4, false, 0);
	refused(&src, true, &b, "record 'XSAV' is 4 bytes");
	kevd_blob_free(&b);
	edit(&state, &b, KEVD_KVMSTATE_END, "x", 1, false, 0);
	refused(&src, true, &b, "the END record has 1 bytes");
	kevd_blob_free(&b);
	/* Twice, missing, after the end. */
	p = find(&state, KEVD_KVMSTATE_REGS, &n);
	edit(&state, &b, KEVD_KVMSTATE_REGS, p, n, true, KEVD_KVMSTATE_REGS);
	refused(&src, true, &b, "two 'REGS' records");
	kevd_blob_free(&b);
	edit(&state, &b, KEVD_KVMSTATE_SREGS2, NULL, 0, false, 0);
	refused(&src, true, &b, "no 'SRG2' record");
	kevd_blob_free(&b);
	edit(&state, &b, KEVD_KVMSTATE_END, NULL, 0, false, 0);
	refused(&src, true, &b, "no END record: truncated after 'EVNT'");
	kevd_blob_put(&b, KEVD_KVMSTATE_END, NULL, 0);
	kevd_blob_put(&b, KEVD_KVMSTATE_END, NULL, 0);
	refused(&src, true, &b, "8 bytes after the END record");
	kevd_blob_free(&b);
	/* The LAPIC goes with the irqchip, both ways. */
	refused(&src, false, &state, "a 'LAPC' record, but the VM has no in-kernel irqchip");
	edit(&state, &b, KEVD_KVMSTATE_LAPIC, NULL, 0, false, 0);
	refused(&src, true, &b, "no 'LAPC' record");
	kevd_blob_free(&b);

	/* None of that touched the vCPU: the state still loads into it. */
	ck_assert_msg(kevd_kvmstate_vcpu_load(src.kvm, src.vcpu, true, state.data, state.len, &err) == 0, "%s",
		      err.msg);
	kevd_blob_free(&state);
	tvm_free(&src);
}
END_TEST

/* A well-formed record that KVM refuses comes back with KVM's errno and
 * the ioctl's name. */
START_TEST(vcpu_refused_by_kvm)
{
	struct tvm src, dst;
	struct kevd_blob state, b;
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kvm_debugregs dr;
	const void *p;
	size_t n;
	int r;

	tvm_create(&src, false);
	setup_source(&src);
	save_source(&src, &state);

	/* DR7's upper half must be zero. */
	p = find(&state, KEVD_KVMSTATE_DEBUGREGS, &n);
	ck_assert_uint_eq(n, sizeof(dr));
	memcpy(&dr, p, sizeof(dr));
	dr.dr7 |= 1ull << 32;
	edit(&state, &b, KEVD_KVMSTATE_DEBUGREGS, &dr, sizeof(dr), false, 0);
	tvm_create(&dst, false);
	r = kevd_kvmstate_vcpu_load(dst.kvm, dst.vcpu, false, b.data, b.len, &err);
	ck_assert_msg(r == -EINVAL, "%d %s", r, err.msg);
	ck_assert_str_eq(err.msg, "vcpu: KVM_SET_DEBUGREGS: Invalid argument");
	kevd_blob_free(&b);
	tvm_free(&dst);

	/* An MSR no x86 has (unless KVM is told to ignore unknown MSRs). */
	{
		char ignore = 'N';
		FILE *f = fopen("/sys/module/kvm/parameters/ignore_msrs", "re");
		const struct kvm_msr_entry *m = find(&state, KEVD_KVMSTATE_MSRS, &n);
		cleanup_free struct kvm_msr_entry *more = calloc(n / sizeof(*m) + 1, sizeof(*m));

		if (f) {
			if (fscanf(f, "%c", &ignore) != 1)
				ignore = 'N';
			fclose(f);
		}
		ck_assert_ptr_nonnull(more);
		memcpy(more, m, n);
		more[n / sizeof(*m)] = (struct kvm_msr_entry){ .index = 0xdeadbeef, .data = 7 };
		edit(&state, &b, KEVD_KVMSTATE_MSRS, more, n + sizeof(*m), false, 0);
		tvm_create(&dst, false);
		r = kevd_kvmstate_vcpu_load(dst.kvm, dst.vcpu, false, b.data, b.len, &err);
		if (ignore == 'N') {
			ck_assert_msg(r == -EINVAL, "%d %s", r, err.msg);
			ck_assert_str_eq(err.msg, "vcpu: KVM_SET_MSRS: MSR 0xdeadbeef = 0x7 refused: Invalid argument");
		}
		kevd_blob_free(&b);
		tvm_free(&dst);
	}
	kevd_blob_free(&state);
	tvm_free(&src);
}
END_TEST

START_TEST(vcpu_bad_fd)
{
	struct tvm src;
	struct kevd_blob state;
	struct kevd_error err = KEVD_ERROR_INIT;
	cleanup_close int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	size_t len;

	tvm_create(&src, false);
	setup_source(&src);
	save_source(&src, &state);
	len = state.len;

	/* A failed save leaves the blob as it was. */
	ck_assert_int_eq(kevd_kvmstate_vcpu_save(src.kvm, -1, false, &state, &err), -EBADF);
	ck_assert_str_eq(err.msg, "vcpu: KVM_GET_MP_STATE: Bad file descriptor");
	ck_assert_uint_eq(state.len, len);
	ck_assert_int_eq(kevd_kvmstate_vcpu_save(src.kvm, devnull, false, &state, &err), -ENOTTY);
	ck_assert_str_eq(err.msg, "vcpu: KVM_GET_MP_STATE: Inappropriate ioctl for device");
	ck_assert_uint_eq(state.len, len);

	ck_assert_int_eq(kevd_kvmstate_vcpu_load(src.kvm, -1, false, state.data, state.len, &err), -EBADF);
	ck_assert_str_eq(err.msg, "vcpu: KVM_SET_CPUID2: Bad file descriptor");
	ck_assert_int_eq(kevd_kvmstate_vcpu_load(src.kvm, devnull, false, state.data, state.len, &err), -ENOTTY);
	ck_assert_str_eq(err.msg, "vcpu: KVM_SET_CPUID2: Inappropriate ioctl for device");
	kevd_blob_free(&state);
	tvm_free(&src);
}
END_TEST

/* ---- the VM ---- */

static void pit_same(const struct kvm_pit_state2 *a, const struct kvm_pit_state2 *b)
{
	ck_assert_uint_eq(a->flags, b->flags);
	for (int i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *x = &a->channels[i], *y = &b->channels[i];

		/* All but count_load_time, the host's time of the load. */
		ck_assert_uint_eq(x->count, y->count);
		ck_assert_uint_eq(x->latched_count, y->latched_count);
		ck_assert_uint_eq(x->count_latched, y->count_latched);
		ck_assert_uint_eq(x->status_latched, y->status_latched);
		ck_assert_uint_eq(x->status, y->status);
		ck_assert_uint_eq(x->read_state, y->read_state);
		ck_assert_uint_eq(x->write_state, y->write_state);
		ck_assert_uint_eq(x->write_latch, y->write_latch);
		ck_assert_uint_eq(x->rw_mode, y->rw_mode);
		ck_assert_uint_eq(x->mode, y->mode);
		ck_assert_uint_eq(x->bcd, y->bcd);
		ck_assert_uint_eq(x->gate, y->gate);
	}
}

static void get_chip(const struct tvm *t, uint32_t id, struct kvm_irqchip *c)
{
	memset(c, 0, sizeof(*c));
	c->chip_id = id;
	ck_assert_int_eq(ioctl(t->vm, KVM_GET_IRQCHIP, c), 0);
}

START_TEST(vm_round_trip)
{
	bool irqchip = _i;
	struct kevd_error err = KEVD_ERROR_INIT;
	struct tvm src, dst;
	struct kevd_blob state;
	struct kvm_clock_data clock = { .clock = SET_CLOCK_NS }, saved, now;
	struct kvm_irqchip chips[3], got;
	struct kvm_pit_state2 pit, pit_got;
	const void *p;
	size_t n;

	tvm_create(&src, irqchip);
	if (irqchip) {
		get_chip(&src, KVM_IRQCHIP_PIC_MASTER, &chips[0]);
		chips[0].chip.pic.imr = 0xfa;
		chips[0].chip.pic.irq_base = 0x20;
		ck_assert_int_eq(ioctl(src.vm, KVM_SET_IRQCHIP, &chips[0]), 0);
		get_chip(&src, KVM_IRQCHIP_PIC_SLAVE, &chips[1]);
		chips[1].chip.pic.imr = 0xbf;
		chips[1].chip.pic.irq_base = 0x28;
		ck_assert_int_eq(ioctl(src.vm, KVM_SET_IRQCHIP, &chips[1]), 0);
		get_chip(&src, KVM_IRQCHIP_IOAPIC, &chips[2]);
		chips[2].chip.ioapic.id = 3;
		chips[2].chip.ioapic.redirtbl[5].fields.vector = 0x35;
		chips[2].chip.ioapic.redirtbl[5].fields.mask = 1;
		ck_assert_int_eq(ioctl(src.vm, KVM_SET_IRQCHIP, &chips[2]), 0);
		for (uint32_t i = 0; i < 3; i++)
			get_chip(&src, i, &chips[i]);

		/* Channel 1: a count and a mode, and no timer (only channel 0's
		 * runs one, which would change the PICs' state under the test). */
		ck_assert_int_eq(ioctl(src.vm, KVM_GET_PIT2, &pit), 0);
		pit.channels[1].count = 0x1234;
		pit.channels[1].mode = 2;
		pit.channels[1].rw_mode = 3;
		ck_assert_int_eq(ioctl(src.vm, KVM_SET_PIT2, &pit), 0);
		ck_assert_int_eq(ioctl(src.vm, KVM_GET_PIT2, &pit), 0);
	}
	ck_assert_int_eq(ioctl(src.vm, KVM_SET_CLOCK, &clock), 0);

	kevd_blob_init(&state);
	ck_assert_msg(kevd_kvmstate_vm_save(src.vm, irqchip, irqchip, &state, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(p = find(&state, KEVD_KVMSTATE_CLOCK, &n));
	ck_assert_uint_eq(n, sizeof(saved));
	memcpy(&saved, p, sizeof(saved));
	ck_assert_uint_ge(saved.clock, SET_CLOCK_NS);
	ck_assert((find(&state, KEVD_KVMSTATE_PIT2, &n) != NULL) == irqchip);
	ck_assert((find(&state, KEVD_KVMSTATE_IOAPIC, &n) != NULL) == irqchip);

	tvm_create(&dst, irqchip);
	ck_assert_msg(kevd_kvmstate_vm_load(dst.vm, irqchip, irqchip, state.data, state.len, &err) == 0, "%s",
		      err.msg);
	if (irqchip) {
		for (uint32_t i = 0; i < 3; i++) {
			get_chip(&dst, i, &got);
			ck_assert_msg(!memcmp(&got, &chips[i], sizeof(got)), "irqchip %u differs after the load", i);
		}
		ck_assert_uint_eq(got.chip.ioapic.redirtbl[5].fields.vector, 0x35);
		ck_assert_int_eq(ioctl(dst.vm, KVM_GET_PIT2, &pit_got), 0);
		pit_same(&pit, &pit_got);
		ck_assert_uint_eq(pit_got.channels[1].count, 0x1234);
	}
	/* The guest's time goes on from the snapshot's. */
	ck_assert_int_eq(ioctl(dst.vm, KVM_GET_CLOCK, &now), 0);
	ck_assert_uint_ge(now.clock, saved.clock);
	ck_assert_uint_lt(now.clock, saved.clock + 10000000000ull);

	kevd_blob_free(&state);
	tvm_free(&dst);
	tvm_free(&src);
}
END_TEST

START_TEST(vm_errors)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct tvm src;
	struct kevd_blob state, vcpu;
	size_t len;

	tvm_create(&src, true);
	kevd_blob_init(&state);
	ck_assert_msg(kevd_kvmstate_vm_save(src.vm, true, true, &state, &err) == 0, "%s", err.msg);

	ck_assert_int_eq(kevd_kvmstate_vm_load(src.vm, true, true, "garbage", 7, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "vm state: the record at offset 0"), "%s", err.msg);
	for (size_t cut = 0; cut < state.len; cut++)
		ck_assert_int_eq(kevd_kvmstate_vm_load(-1, true, true, state.data, cut, &err), -EBADMSG);
	/* The VM's make-up must match the state's. */
	ck_assert_int_eq(kevd_kvmstate_vm_load(src.vm, false, false, state.data, state.len, &err), -EBADMSG);
	ck_assert_str_eq(err.msg, "vm state: a 'PIC0' record, but the VM has no in-kernel irqchip");
	ck_assert_int_eq(kevd_kvmstate_vm_load(src.vm, true, false, state.data, state.len, &err), -EBADMSG);
	ck_assert_str_eq(err.msg, "vm state: a 'PIT2' record, but the VM has no PIT");
	/* A vCPU's state is not a VM's. */
	setup_source(&src);
	save_source(&src, &vcpu);
	ck_assert_int_eq(kevd_kvmstate_vm_load(src.vm, true, true, vcpu.data, vcpu.len, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "vm state: unknown record"), "%s", err.msg);
	kevd_blob_free(&vcpu);

	/* Bad fds, and a failed save leaves the blob as it was. */
	len = state.len;
	ck_assert_int_eq(kevd_kvmstate_vm_save(-1, true, true, &state, &err), -EBADF);
	ck_assert_str_eq(err.msg, "vm: KVM_GET_IRQCHIP (PIC master): Bad file descriptor");
	ck_assert_int_eq(kevd_kvmstate_vm_save(-1, false, false, &state, &err), -EBADF);
	ck_assert_str_eq(err.msg, "vm: KVM_GET_CLOCK: Bad file descriptor");
	ck_assert_uint_eq(state.len, len);
	ck_assert_int_eq(kevd_kvmstate_vm_load(-1, true, true, state.data, state.len, &err), -EBADF);
	ck_assert_str_eq(err.msg, "vm: KVM_SET_IRQCHIP (PIC master): Bad file descriptor");
	kevd_blob_free(&state);
	tvm_free(&src);
}
END_TEST

static Suite *suite(bool with_kvm)
{
	Suite *s = suite_create("kvmstate");
	TCase *blob = tcase_create("blob");
	TCase *kvm;

	tcase_add_test(blob, blob_bytes_and_round_trip);
	tcase_add_test(blob, blob_every_truncation);
	tcase_add_test(blob, blob_malformed);
	tcase_add_test(blob, blob_too_long_sets_oom);
	suite_add_tcase(s, blob);
	if (!with_kvm)
		return s;
	kvm = tcase_create("kvm");
	tcase_set_timeout(kvm, 60);
	tcase_add_loop_test(kvm, vcpu_round_trip_and_run, 0, 2);
	tcase_add_test(kvm, vcpu_every_truncation_refused);
	tcase_add_test(kvm, vcpu_malformed_refused);
	tcase_add_test(kvm, vcpu_refused_by_kvm);
	tcase_add_test(kvm, vcpu_bad_fd);
	tcase_add_loop_test(kvm, vm_round_trip, 0, 2);
	tcase_add_test(kvm, vm_errors);
	suite_add_tcase(s, kvm);
	return s;
}

int main(void)
{
	/* Without /dev/kvm the blob's tests still run, and then the program
	 * skips: most of what it is for was not tested. */
	int skip = kevd_test_need_kvm("test_kvmstate");
	int r = kevd_test_run(suite(skip == 0));

	return r ? r : skip;
}
