/*
 * KVM's state in and out of blob records (see kvmstate.h).
 *
 * Saving a vCPU reads in the order QEMU and Firecracker settled on: the MP
 * state first, because KVM_GET_MP_STATE makes the LAPIC take pending INIT
 * and SIPI, which changes what the later reads see; the vCPU events last,
 * because the reads before (the LAPIC's, which moves posted interrupts into
 * the IRR) can change them.
 *
 * Loading checks every record first (parse()), then puts them back in this
 * order:
 *   CPUID      first: KVM judges much of the rest against it (which MSRs
 *              exist, the CR4 and XCR0 bits and EFER.LME it accepts).
 *   SREGS2     before the LAPIC: it carries the APIC base, whose enable and
 *              x2APIC bits decide how KVM_SET_LAPIC reads the APIC ID.
 *   LAPIC      before the MSRs: KVM drops a write of MSR_IA32_TSC_DEADLINE
 *              unless the LAPIC timer is in TSC-deadline mode.
 *   MSRS, XCRS, XSAVE   in the KVM selftests' order (vcpu_load_state()),
 *              XCR0 before the XSAVE image as XRSTOR would have it.
 *   REGS       before EVENTS: KVM_SET_REGS drops a pending exception,
 *              which KVM_SET_VCPU_EVENTS is the one to put back.
 *   EVENTS
 *   MPSTATE    after SREGS2: KVM_SET_SREGS(2) makes a BSP sitting at the
 *              reset vector runnable, which would undo a restored halt.
 *   DEBUGREGS
 * Loading the VM: the PICs and I/O APIC, then the PIT (whose IRQ 0 they
 * take), then kvmclock.
 *
 * System registers go through KVM_GET/SET_SREGS2 rather than _SREGS: it
 * carries the four PDPTRs of a guest with 32-bit PAE paging, so KVM neither
 * reads them again from guest memory (which, loaded lazily, would have the
 * load wait on the pager) nor takes values the guest wrote to memory but
 * never loaded into the CPU; and it drops _SREGS's interrupt bitmap, which
 * only repeats the injected interrupt the vCPU events carry.  It needs
 * Linux 5.14 (Debian 12 has 6.1).
 */
#include "config.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/cleanup.h"
#include "vmm/kvmstate.h"

#define MSR_IA32_TSC 0x10
/* KVM_GET_MSRS and KVM_SET_MSRS take fewer than 256 MSRs a call
 * (MAX_IO_MSRS); the index list may hold more. */
#define MSR_BATCH 128
/* KVM_MAX_CPUID_ENTRIES today; KVM_GET_CPUID2 says E2BIG if it grows. */
#define CPUID_FIRST_GUESS 256
#define CPUID_MOST 4096

/* An ioctl request and its name, for the messages. */
#define IOC(req) (req), #req

/* Every fixed-size structure a record carries: one buffer, aligned for all
 * of them, to copy a payload into (the input need not be aligned). */
union fixed {
	struct kvm_regs regs;
	struct kvm_sregs2 sregs2;
	struct kvm_lapic_state lapic;
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_debugregs debugregs;
	struct kvm_pic_state pic;
	struct kvm_ioapic_state ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

/* When a record must be there. */
enum need { ALWAYS, OPTIONAL, IF_IRQCHIP, IF_PIT };

/* A kind of record: its tag, and its exact size or (size 0) a length that
 * is a multiple of unit and at least min. */
struct kind {
	uint32_t tag;
	size_t size, unit, min;
	enum need need;
};

enum { V_CPUID, V_REGS, V_SREGS2, V_XSAVE, V_XCRS, V_MSRS, V_LAPIC, V_EVENTS, V_MPSTATE, V_DEBUGREGS, V_N };

static const struct kind vcpu_kinds[V_N] = {
	[V_CPUID] = { KEVD_KVMSTATE_CPUID, 0, sizeof(struct kvm_cpuid_entry2), 0, ALWAYS },
	[V_REGS] = { KEVD_KVMSTATE_REGS, sizeof(struct kvm_regs), 0, 0, ALWAYS },
	[V_SREGS2] = { KEVD_KVMSTATE_SREGS2, sizeof(struct kvm_sregs2), 0, 0, ALWAYS },
	[V_XSAVE] = { KEVD_KVMSTATE_XSAVE, 0, 4, sizeof(struct kvm_xsave), ALWAYS },
	/* KVM has XCRs to give only on a host with XSAVE. */
	[V_XCRS] = { KEVD_KVMSTATE_XCRS, sizeof(struct kvm_xcrs), 0, 0, OPTIONAL },
	[V_MSRS] = { KEVD_KVMSTATE_MSRS, 0, sizeof(struct kvm_msr_entry), 0, ALWAYS },
	[V_LAPIC] = { KEVD_KVMSTATE_LAPIC, sizeof(struct kvm_lapic_state), 0, 0, IF_IRQCHIP },
	[V_EVENTS] = { KEVD_KVMSTATE_EVENTS, sizeof(struct kvm_vcpu_events), 0, 0, ALWAYS },
	[V_MPSTATE] = { KEVD_KVMSTATE_MPSTATE, sizeof(struct kvm_mp_state), 0, 0, ALWAYS },
	[V_DEBUGREGS] = { KEVD_KVMSTATE_DEBUGREGS, sizeof(struct kvm_debugregs), 0, 0, ALWAYS },
};

enum { M_PIC_MASTER, M_PIC_SLAVE, M_IOAPIC, M_PIT2, M_CLOCK, M_N };

static const struct kind vm_kinds[M_N] = {
	[M_PIC_MASTER] = { KEVD_KVMSTATE_PIC_MASTER, sizeof(struct kvm_pic_state), 0, 0, IF_IRQCHIP },
	[M_PIC_SLAVE] = { KEVD_KVMSTATE_PIC_SLAVE, sizeof(struct kvm_pic_state), 0, 0, IF_IRQCHIP },
	[M_IOAPIC] = { KEVD_KVMSTATE_IOAPIC, sizeof(struct kvm_ioapic_state), 0, 0, IF_IRQCHIP },
	[M_PIT2] = { KEVD_KVMSTATE_PIT2, sizeof(struct kvm_pit_state2), 0, 0, IF_PIT },
	[M_CLOCK] = { KEVD_KVMSTATE_CLOCK, sizeof(struct kvm_clock_data), 0, 0, ALWAYS },
};

/* A record found by parse(): its payload, in the caller's buffer. */
struct rec {
	const unsigned char *p;
	size_t n;
	bool present;
};

/* TAG as its four characters, quoted (a non-printing one as '?'). */
static const char *tag_str(uint32_t tag, char buf[7])
{
	buf[0] = '\'';
	for (int i = 0; i < 4; i++) {
		unsigned char c = (unsigned char)(tag >> (8 * i));

		buf[1 + i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[5] = '\'';
	buf[6] = '\0';
	return buf;
}

static bool wanted(enum need need, bool irqchip, bool pit)
{
	return need == ALWAYS || (need == IF_IRQCHIP && irqchip) || (need == IF_PIT && pit);
}

static const char *need_str(enum need need)
{
	return need == IF_PIT ? "PIT" : "in-kernel irqchip";
}

static int check_size(const char *what, const struct kind *k, size_t n, struct kevd_error *err)
{
	char t[7];

	if (k->size && n != k->size)
		return kevd_error_set(err, EBADMSG, "%s: record %s is %zu bytes, KVM's structure %zu", what,
				      tag_str(k->tag, t), n, k->size);
	if (!k->size && (n % k->unit || n < k->min))
		return kevd_error_set(err, EBADMSG, "%s: record %s is %zu bytes, not %zu or more in units of %zu",
				      what, tag_str(k->tag, t), n, k->min, k->unit);
	return 0;
}

/* Finds every record of DATA in KINDS and checks it, and that the records
 * the VM's make-up (IRQCHIP, PIT) calls for are all there, and no others:
 * everything that can be wrong with the input is found before an ioctl. */
static int parse(const char *what, const struct kind *kinds, unsigned nkinds, bool irqchip, bool pit,
		 const void *data, size_t len, struct rec *recs, struct kevd_error *err)
{
	struct kevd_blob_reader rd;
	uint32_t tag, last = 0;
	const void *p;
	size_t n;
	char t[7];
	int r;

	kevd_blob_reader_init(&rd, data, len);
	for (;;) {
		size_t off = rd.off;
		unsigned i;

		r = kevd_blob_next(&rd, &tag, &p, &n);
		if (r < 0)
			return kevd_error_set(err, EBADMSG, "%s: the record at offset %zu (after %s) is truncated or malformed",
					      what, off, last ? tag_str(last, t) : "none");
		if (r == 0)
			return kevd_error_set(err, EBADMSG, "%s: no END record: truncated after %s", what,
					      last ? tag_str(last, t) : "nothing");
		if (tag == KEVD_KVMSTATE_END) {
			if (n)
				return kevd_error_set(err, EBADMSG, "%s: the END record has %zu bytes, not 0", what, n);
			if (rd.off != len)
				return kevd_error_set(err, EBADMSG, "%s: %zu bytes after the END record", what,
						      len - rd.off);
			break;
		}
		for (i = 0; i < nkinds && kinds[i].tag != tag; i++)
			;
		if (i == nkinds)
			return kevd_error_set(err, EBADMSG, "%s: unknown record %s (0x%08x) at offset %zu", what,
					      tag_str(tag, t), tag, off);
		if (recs[i].present)
			return kevd_error_set(err, EBADMSG, "%s: two %s records", what, tag_str(tag, t));
		if ((r = check_size(what, &kinds[i], n, err)) < 0)
			return r;
		recs[i] = (struct rec){ .p = p, .n = n, .present = true };
		last = tag;
	}
	for (unsigned i = 0; i < nkinds; i++) {
		bool want = wanted(kinds[i].need, irqchip, pit);

		if (kinds[i].need == OPTIONAL || recs[i].present == want)
			continue;
		if (want)
			return kevd_error_set(err, EBADMSG, "%s: no %s record", what, tag_str(kinds[i].tag, t));
		return kevd_error_set(err, EBADMSG, "%s: a %s record, but the VM has no %s", what,
				      tag_str(kinds[i].tag, t), need_str(kinds[i].need));
	}
	return 0;
}

static int get_fixed(const char *who, int fd, unsigned long req, const char *name, uint32_t tag, size_t size,
		     struct kevd_blob *out, struct kevd_error *err)
{
	union fixed u;

	memset(&u, 0, sizeof(u));
	if (ioctl(fd, req, &u) < 0)
		return kevd_error_sys(err, errno, "%s: %s", who, name);
	kevd_blob_put(out, tag, &u, size);
	return 0;
}

static int set_fixed(const char *who, int fd, unsigned long req, const char *name, const struct rec *rec,
		     struct kevd_error *err)
{
	union fixed u;

	memset(&u, 0, sizeof(u));
	memcpy(&u, rec->p, rec->n);  /* parse() checked the size */
	if (ioctl(fd, req, &u) < 0)
		return kevd_error_sys(err, errno, "%s: %s", who, name);
	return 0;
}

static int need_sregs2(int kvm_fd, struct kevd_error *err)
{
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SREGS2) <= 0)
		return kevd_error_set(err, ENOTSUP, "vcpu: KVM lacks KVM_CAP_SREGS2 (Linux 5.14)");
	return 0;
}

/* What KVM_GET_XSAVE2 writes and KVM_SET_XSAVE reads: the KVM_CAP_XSAVE2
 * size (larger than struct kvm_xsave once AMX and the like are in use), or
 * without that capability struct kvm_xsave. */
static size_t xsave_size(int kvm_fd, bool *v2)
{
	int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	*v2 = n > 0;
	return n > (int)sizeof(struct kvm_xsave) ? (size_t)n : sizeof(struct kvm_xsave);
}

static int save_xsave(int kvm_fd, int vcpu_fd, struct kevd_blob *out, struct kevd_error *err)
{
	bool v2;
	size_t size = xsave_size(kvm_fd, &v2);
	cleanup_free struct kvm_xsave *x = calloc(1, size);

	if (!x)
		return kevd_error_sys(err, ENOMEM, "vcpu: XSAVE state of %zu bytes", size);
	if (ioctl(vcpu_fd, v2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, x) < 0)
		return kevd_error_sys(err, errno, "vcpu: %s", v2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
	kevd_blob_put(out, KEVD_KVMSTATE_XSAVE, x, size);
	return 0;
}

static int load_xsave(int kvm_fd, int vcpu_fd, const struct rec *rec, struct kevd_error *err)
{
	bool v2;
	size_t size = xsave_size(kvm_fd, &v2);
	cleanup_free struct kvm_xsave *x = NULL;

	/* KVM reads its own size whatever we pass: an image from a host with
	 * fewer state components is padded with zeros, which its header
	 * (XSTATE_BV) already says are in their initial state. */
	if (size < rec->n)
		size = rec->n;
	x = calloc(1, size);
	if (!x)
		return kevd_error_sys(err, ENOMEM, "vcpu: XSAVE state of %zu bytes", size);
	memcpy(x, rec->p, rec->n);
	if (ioctl(vcpu_fd, KVM_SET_XSAVE, x) < 0)
		return kevd_error_sys(err, errno, "vcpu: KVM_SET_XSAVE");
	return 0;
}

static int save_cpuid(int vcpu_fd, struct kevd_blob *out, struct kevd_error *err)
{
	/* KVM_GET_CPUID2 does not say how many entries it needs: grow. */
	for (uint32_t nent = CPUID_FIRST_GUESS;; nent *= 2) {
		cleanup_free struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));

		if (!c)
			return kevd_error_sys(err, ENOMEM, "vcpu: KVM_GET_CPUID2");
		c->nent = nent;
		if (ioctl(vcpu_fd, KVM_GET_CPUID2, c) == 0) {
			kevd_blob_put(out, KEVD_KVMSTATE_CPUID, c->entries, c->nent * sizeof(c->entries[0]));
			return 0;
		}
		if (errno != E2BIG || nent >= CPUID_MOST)
			return kevd_error_sys(err, errno, "vcpu: KVM_GET_CPUID2");
	}
}

static int load_cpuid(int vcpu_fd, const struct rec *rec, struct kevd_error *err)
{
	cleanup_free struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + rec->n);

	if (!c)
		return kevd_error_sys(err, ENOMEM, "vcpu: KVM_SET_CPUID2");
	c->nent = (uint32_t)(rec->n / sizeof(c->entries[0]));
	memcpy(c->entries, rec->p, rec->n);
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0)
		return kevd_error_sys(err, errno, "vcpu: KVM_SET_CPUID2");
	return 0;
}

static int msr_index_list(int kvm_fd, struct kvm_msr_list **out, struct kevd_error *err)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	cleanup_free struct kvm_msr_list *l = NULL;

	/* With room for none, KVM says E2BIG and how many there are. */
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return kevd_error_sys(err, errno, "vcpu: KVM_GET_MSR_INDEX_LIST");
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(l->indices[0]));
	if (!l)
		return kevd_error_sys(err, ENOMEM, "vcpu: KVM_GET_MSR_INDEX_LIST");
	l->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0)
		return kevd_error_sys(err, errno, "vcpu: KVM_GET_MSR_INDEX_LIST");
	*out = kevd_steal_ptr(&l);
	return 0;
}

static int save_msrs(int kvm_fd, int vcpu_fd, struct kevd_blob *out, struct kevd_error *err)
{
	cleanup_free struct kvm_msr_list *list = NULL;
	cleanup_free struct kvm_msr_entry *got = NULL;
	cleanup_free struct kvm_msrs *m = calloc(1, sizeof(*m) + MSR_BATCH * sizeof(m->entries[0]));
	size_t ngot = 0;
	bool tsc = false;
	int r;

	if (!m)
		return kevd_error_sys(err, ENOMEM, "vcpu: KVM_GET_MSRS");
	if ((r = msr_index_list(kvm_fd, &list, err)) < 0)
		return r;
	got = calloc(list->nmsrs ? list->nmsrs : 1, sizeof(*got));
	if (!got)
		return kevd_error_sys(err, ENOMEM, "vcpu: KVM_GET_MSRS");
	for (uint32_t i = 0; i < list->nmsrs;) {
		uint32_t k = list->nmsrs - i < MSR_BATCH ? list->nmsrs - i : MSR_BATCH;

		memset(m, 0, sizeof(*m) + k * sizeof(m->entries[0]));
		m->nmsrs = k;
		for (uint32_t j = 0; j < k; j++)
			m->entries[j].index = list->indices[i + j];
		r = ioctl(vcpu_fd, KVM_GET_MSRS, m);
		if (r < 0)
			return kevd_error_sys(err, errno, "vcpu: KVM_GET_MSRS");
		memcpy(got + ngot, m->entries, (size_t)r * sizeof(m->entries[0]));
		ngot += (size_t)r;
		/* KVM stops at the first MSR it will not read for this vCPU
		 * (one its CPUID does not give it, such as a PMU counter past
		 * its count): leave that one out, as QEMU and kvmtool do, and
		 * go on after it. */
		i += (uint32_t)r + ((uint32_t)r < k);
	}
	for (size_t j = 0; j < ngot; j++)
		tsc |= got[j].index == MSR_IA32_TSC;
	if (!tsc)
		return kevd_error_set(err, ENOTSUP, "vcpu: KVM_GET_MSRS: no MSR_IA32_TSC among the MSRs KVM saves");
	kevd_blob_put(out, KEVD_KVMSTATE_MSRS, got, ngot * sizeof(*got));
	return 0;
}

/* Whether the vCPU already holds E's value; reads it through M, which has
 * room for one entry at least. */
static bool msr_holds(int vcpu_fd, struct kvm_msrs *m, struct kvm_msr_entry e)
{
	memset(m, 0, sizeof(*m) + sizeof(m->entries[0]));
	m->nmsrs = 1;
	m->entries[0].index = e.index;
	return ioctl(vcpu_fd, KVM_GET_MSRS, m) == 1 && m->entries[0].data == e.data;
}

static int load_msrs(int vcpu_fd, const struct rec *rec, struct kevd_error *err)
{
	size_t n = rec->n / sizeof(struct kvm_msr_entry);
	cleanup_free struct kvm_msrs *m = calloc(1, sizeof(*m) + MSR_BATCH * sizeof(m->entries[0]));

	if (!m)
		return kevd_error_sys(err, ENOMEM, "vcpu: KVM_SET_MSRS");
	for (size_t i = 0; i < n;) {
		uint32_t k = n - i < MSR_BATCH ? (uint32_t)(n - i) : MSR_BATCH;
		struct kvm_msr_entry e;
		int r;

		memset(m, 0, sizeof(*m));
		m->nmsrs = k;
		memcpy(m->entries, rec->p + i * sizeof(m->entries[0]), k * sizeof(m->entries[0]));
		r = ioctl(vcpu_fd, KVM_SET_MSRS, m);
		if (r < 0)
			return kevd_error_sys(err, errno, "vcpu: KVM_SET_MSRS");
		if ((uint32_t)r == k) {
			i += k;
			continue;
		}
		/* KVM stops at the first MSR it refuses.  It refuses some
		 * that it lets be read: MSR_KVM_ASYNC_PF_INT without an
		 * in-kernel LAPIC, even at 0.  One that the fresh vCPU holds
		 * at the saved value already needs no restoring; any other is
		 * an error, and KVM has no errno for it: say which MSR. */
		e = m->entries[r];
		if (!msr_holds(vcpu_fd, m, e))
			return kevd_error_sys(err, EINVAL, "vcpu: KVM_SET_MSRS: MSR 0x%x = 0x%llx refused", e.index,
					      (unsigned long long)e.data);
		i += (size_t)r + 1;
	}
	return 0;
}

static int vcpu_save(int kvm_fd, int vcpu_fd, bool irqchip, struct kevd_blob *out, struct kevd_error *err)
{
	int r;

	if ((r = need_sregs2(kvm_fd, err)) < 0)
		return r;
	r = get_fixed("vcpu", vcpu_fd, IOC(KVM_GET_MP_STATE), KEVD_KVMSTATE_MPSTATE, sizeof(struct kvm_mp_state),
		      out, err);
	if (r == 0)
		r = get_fixed("vcpu", vcpu_fd, IOC(KVM_GET_REGS), KEVD_KVMSTATE_REGS, sizeof(struct kvm_regs), out,
			      err);
	if (r == 0)
		r = get_fixed("vcpu", vcpu_fd, IOC(KVM_GET_SREGS2), KEVD_KVMSTATE_SREGS2, sizeof(struct kvm_sregs2),
			      out, err);
	if (r == 0)
		r = save_xsave(kvm_fd, vcpu_fd, out, err);
	if (r == 0 && ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0)
		r = get_fixed("vcpu", vcpu_fd, IOC(KVM_GET_XCRS), KEVD_KVMSTATE_XCRS, sizeof(struct kvm_xcrs), out,
			      err);
	if (r == 0)
		r = get_fixed("vcpu", vcpu_fd, IOC(KVM_GET_DEBUGREGS), KEVD_KVMSTATE_DEBUGREGS,
			      sizeof(struct kvm_debugregs), out, err);
	if (r == 0 && irqchip)
		r = get_fixed("vcpu", vcpu_fd, IOC(KVM_GET_LAPIC), KEVD_KVMSTATE_LAPIC,
			      sizeof(struct kvm_lapic_state), out, err);
	if (r == 0)
		r = save_cpuid(vcpu_fd, out, err);
	if (r == 0)
		r = save_msrs(kvm_fd, vcpu_fd, out, err);
	if (r == 0)
		r = get_fixed("vcpu", vcpu_fd, IOC(KVM_GET_VCPU_EVENTS), KEVD_KVMSTATE_EVENTS,
			      sizeof(struct kvm_vcpu_events), out, err);
	if (r == 0)
		kevd_blob_put(out, KEVD_KVMSTATE_END, NULL, 0);
	return r;
}

/* Leaves OUT as it was when saving fails, so the caller can go on with it
 * (or free it) whatever happened. */
static int finish_save(struct kevd_blob *out, size_t start, int r, const char *what, struct kevd_error *err)
{
	if (r == 0 && out->oom)
		r = kevd_error_set(err, ENOMEM, "%s: out of memory", what);
	if (r < 0)
		out->len = start;
	return r;
}

int kevd_kvmstate_vcpu_save(int kvm_fd, int vcpu_fd, bool irqchip, struct kevd_blob *out, struct kevd_error *err)
{
	size_t start = out->len;

	return finish_save(out, start, vcpu_save(kvm_fd, vcpu_fd, irqchip, out, err), "vcpu state", err);
}

int kevd_kvmstate_vcpu_load(int kvm_fd, int vcpu_fd, bool irqchip, const void *data, size_t len,
			    struct kevd_error *err)
{
	struct rec recs[V_N] = { { 0 } };
	int r;

	if ((r = parse("vcpu state", vcpu_kinds, V_N, irqchip, false, data, len, recs, err)) < 0)
		return r;
	if ((r = need_sregs2(kvm_fd, err)) < 0)
		return r;
	/* The order, and why, at the top of the file. */
	r = load_cpuid(vcpu_fd, &recs[V_CPUID], err);
	if (r == 0)
		r = set_fixed("vcpu", vcpu_fd, IOC(KVM_SET_SREGS2), &recs[V_SREGS2], err);
	if (r == 0 && irqchip)
		r = set_fixed("vcpu", vcpu_fd, IOC(KVM_SET_LAPIC), &recs[V_LAPIC], err);
	if (r == 0)
		r = load_msrs(vcpu_fd, &recs[V_MSRS], err);
	if (r == 0 && recs[V_XCRS].present)
		r = set_fixed("vcpu", vcpu_fd, IOC(KVM_SET_XCRS), &recs[V_XCRS], err);
	if (r == 0)
		r = load_xsave(kvm_fd, vcpu_fd, &recs[V_XSAVE], err);
	if (r == 0)
		r = set_fixed("vcpu", vcpu_fd, IOC(KVM_SET_REGS), &recs[V_REGS], err);
	if (r == 0)
		r = set_fixed("vcpu", vcpu_fd, IOC(KVM_SET_VCPU_EVENTS), &recs[V_EVENTS], err);
	if (r == 0)
		r = set_fixed("vcpu", vcpu_fd, IOC(KVM_SET_MP_STATE), &recs[V_MPSTATE], err);
	if (r == 0)
		r = set_fixed("vcpu", vcpu_fd, IOC(KVM_SET_DEBUGREGS), &recs[V_DEBUGREGS], err);
	return r;
}

static int save_chip(int vm_fd, uint32_t chip, const char *name, uint32_t tag, size_t size, struct kevd_blob *out,
		     struct kevd_error *err)
{
	struct kvm_irqchip c = { .chip_id = chip };

	if (ioctl(vm_fd, KVM_GET_IRQCHIP, &c) < 0)
		return kevd_error_sys(err, errno, "vm: KVM_GET_IRQCHIP (%s)", name);
	kevd_blob_put(out, tag, &c.chip, size);
	return 0;
}

static int load_chip(int vm_fd, uint32_t chip, const char *name, const struct rec *rec, struct kevd_error *err)
{
	struct kvm_irqchip c = { .chip_id = chip };

	memcpy(&c.chip, rec->p, rec->n);  /* parse() checked the size */
	if (ioctl(vm_fd, KVM_SET_IRQCHIP, &c) < 0)
		return kevd_error_sys(err, errno, "vm: KVM_SET_IRQCHIP (%s)", name);
	return 0;
}

static int vm_save(int vm_fd, bool irqchip, bool pit, struct kevd_blob *out, struct kevd_error *err)
{
	int r = 0;

	if (irqchip) {
		r = save_chip(vm_fd, KVM_IRQCHIP_PIC_MASTER, "PIC master", KEVD_KVMSTATE_PIC_MASTER,
			      sizeof(struct kvm_pic_state), out, err);
		if (r == 0)
			r = save_chip(vm_fd, KVM_IRQCHIP_PIC_SLAVE, "PIC slave", KEVD_KVMSTATE_PIC_SLAVE,
				      sizeof(struct kvm_pic_state), out, err);
		if (r == 0)
			r = save_chip(vm_fd, KVM_IRQCHIP_IOAPIC, "I/O APIC", KEVD_KVMSTATE_IOAPIC,
				      sizeof(struct kvm_ioapic_state), out, err);
	}
	if (r == 0 && pit)
		r = get_fixed("vm", vm_fd, IOC(KVM_GET_PIT2), KEVD_KVMSTATE_PIT2, sizeof(struct kvm_pit_state2), out,
			      err);
	if (r == 0)
		r = get_fixed("vm", vm_fd, IOC(KVM_GET_CLOCK), KEVD_KVMSTATE_CLOCK, sizeof(struct kvm_clock_data),
			      out, err);
	if (r == 0)
		kevd_blob_put(out, KEVD_KVMSTATE_END, NULL, 0);
	return r;
}

int kevd_kvmstate_vm_save(int vm_fd, bool irqchip, bool pit, struct kevd_blob *out, struct kevd_error *err)
{
	size_t start = out->len;

	return finish_save(out, start, vm_save(vm_fd, irqchip, pit, out, err), "vm state", err);
}

int kevd_kvmstate_vm_load(int vm_fd, bool irqchip, bool pit, const void *data, size_t len, struct kevd_error *err)
{
	struct rec recs[M_N] = { { 0 } };
	struct kvm_clock_data saved, clock = { 0 };
	int r;

	if ((r = parse("vm state", vm_kinds, M_N, irqchip, pit, data, len, recs, err)) < 0)
		return r;
	if (irqchip) {
		r = load_chip(vm_fd, KVM_IRQCHIP_PIC_MASTER, "PIC master", &recs[M_PIC_MASTER], err);
		if (r == 0)
			r = load_chip(vm_fd, KVM_IRQCHIP_PIC_SLAVE, "PIC slave", &recs[M_PIC_SLAVE], err);
		if (r == 0)
			r = load_chip(vm_fd, KVM_IRQCHIP_IOAPIC, "I/O APIC", &recs[M_IOAPIC], err);
		if (r < 0)
			return r;
	}
	if (pit && (r = set_fixed("vm", vm_fd, IOC(KVM_SET_PIT2), &recs[M_PIT2], err)) < 0)
		return r;
	/* The clock alone, no flags: with KVM_CLOCK_REALTIME KVM would move
	 * it on by the wall-clock time since the snapshot, and the guest is to
	 * go on from the snapshot's time. */
	memcpy(&saved, recs[M_CLOCK].p, sizeof(saved));
	clock.clock = saved.clock;
	if (ioctl(vm_fd, KVM_SET_CLOCK, &clock) < 0)
		return kevd_error_sys(err, errno, "vm: KVM_SET_CLOCK");
	return 0;
}
