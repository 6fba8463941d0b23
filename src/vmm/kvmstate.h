/*
 * The state KVM holds for a VM and for each of its vCPUs, read out into
 * blob records (common/blob.h) and put back, the building blocks of VM
 * snapshots.  The functions take raw fds, not a struct kevd_vm, so that they
 * serve any VM built on KVM, kevd's or a test's.
 *
 * A record's payload is KVM's own x86 structure, exactly as the ioctl passes
 * it (x86 is little-endian, so the payloads are too); loading checks each
 * one's size.  A state ends with an END record, so that one cut short at a
 * record boundary is refused like any other truncation.  A record whose tag
 * this kevd does not know is refused as well, not skipped: state that cannot
 * be put back would let the guest resume with part of it reset, and nothing
 * would say so.  Loading checks the whole state before its first ioctl, so
 * malformed input leaves the vCPU or VM untouched.
 *
 * Saving needs the VM quiet: every vCPU out of KVM_RUN and not about to
 * enter it, with the exit it came out on completed (I/O and MMIO exits are
 * finished by the next KVM_RUN: enter it once more with
 * kvm_run.immediate_exit set, as the KVM API documentation says).  Loading
 * needs a VM created the same way (in-kernel irqchip and PIT or not, the same
 * memory); load the VM's state, then create each vCPU in order and load its
 * state before its first KVM_RUN (KVM refuses KVM_SET_CPUID2 after it).
 */
#ifndef KEVD_KVMSTATE_H
#define KEVD_KVMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/blob.h"
#include "common/error.h"

/* Tags are four characters, which a hex dump shows as they are written. */
#define KEVD_KVMSTATE_TAG(a, b, c, d) \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

enum {
	/* vCPU */
	KEVD_KVMSTATE_CPUID = KEVD_KVMSTATE_TAG('C', 'P', 'U', 'I'),  /* kvm_cpuid_entry2[] */
	KEVD_KVMSTATE_REGS = KEVD_KVMSTATE_TAG('R', 'E', 'G', 'S'),   /* kvm_regs */
	KEVD_KVMSTATE_SREGS2 = KEVD_KVMSTATE_TAG('S', 'R', 'G', '2'), /* kvm_sregs2 */
	KEVD_KVMSTATE_XSAVE = KEVD_KVMSTATE_TAG('X', 'S', 'A', 'V'),  /* kvm_xsave, >= 4096 bytes */
	KEVD_KVMSTATE_XCRS = KEVD_KVMSTATE_TAG('X', 'C', 'R', 'S'),   /* kvm_xcrs; hosts with XSAVE */
	KEVD_KVMSTATE_MSRS = KEVD_KVMSTATE_TAG('M', 'S', 'R', 'S'),   /* kvm_msr_entry[] */
	KEVD_KVMSTATE_LAPIC = KEVD_KVMSTATE_TAG('L', 'A', 'P', 'C'),  /* kvm_lapic_state; irqchip */
	KEVD_KVMSTATE_EVENTS = KEVD_KVMSTATE_TAG('E', 'V', 'N', 'T'), /* kvm_vcpu_events */
	KEVD_KVMSTATE_MPSTATE = KEVD_KVMSTATE_TAG('M', 'P', 'S', 'T'), /* kvm_mp_state */
	KEVD_KVMSTATE_DEBUGREGS = KEVD_KVMSTATE_TAG('D', 'B', 'R', 'G'), /* kvm_debugregs */
	/* VM */
	KEVD_KVMSTATE_PIC_MASTER = KEVD_KVMSTATE_TAG('P', 'I', 'C', '0'), /* kvm_pic_state; irqchip */
	KEVD_KVMSTATE_PIC_SLAVE = KEVD_KVMSTATE_TAG('P', 'I', 'C', '1'),  /* kvm_pic_state; irqchip */
	KEVD_KVMSTATE_IOAPIC = KEVD_KVMSTATE_TAG('I', 'O', 'A', 'P'),     /* kvm_ioapic_state; irqchip */
	KEVD_KVMSTATE_PIT2 = KEVD_KVMSTATE_TAG('P', 'I', 'T', '2'),       /* kvm_pit_state2; pit */
	KEVD_KVMSTATE_CLOCK = KEVD_KVMSTATE_TAG('C', 'L', 'C', 'K'),      /* kvm_clock_data */
	/* both: the last record, empty */
	KEVD_KVMSTATE_END = KEVD_KVMSTATE_TAG('E', 'N', 'D', '.'),
};

/* Appends everything KVM holds for one vCPU to OUT: CPUID, registers,
 * system registers (KVM_GET_SREGS2, with the PAE PDPTRs), XSAVE (the
 * KVM_CAP_XSAVE2 size when KVM has it), XCRs, every MSR of
 * KVM_GET_MSR_INDEX_LIST that KVM_GET_MSRS reads for this vCPU (the TSC
 * among them), the LAPIC if IRQCHIP (the VM has KVM's in-kernel irqchip),
 * vCPU events, MP state and debug registers.  KVM_FD is /dev/kvm's.  On
 * failure OUT is as it was, but for oom. */
int kevd_kvmstate_vcpu_save(int kvm_fd, int vcpu_fd, bool irqchip, struct kevd_blob *out, struct kevd_error *err);

/* Puts a state that kevd_kvmstate_vcpu_save() made into a fresh vCPU of a
 * VM set up the same way, in the order KVM needs (kvmstate.c says why).
 * Malformed or truncated input: -EBADMSG, naming the record; a record KVM
 * refuses: its errno, naming the ioctl (and for an MSR, which one; but an
 * MSR that KVM will not write and the fresh vCPU already holds at the saved
 * value is let be). */
int kevd_kvmstate_vcpu_load(int kvm_fd, int vcpu_fd, bool irqchip, const void *data, size_t len,
			    struct kevd_error *err);

/* The VM-wide state: with IRQCHIP the PIC master, PIC slave and I/O APIC;
 * with PIT the PIT (KVM_GET_PIT2); always kvmclock (KVM_GET_CLOCK).  Loading
 * sets the clock to the saved value, so the guest's time continues from the
 * snapshot, not from the wall clock. */
int kevd_kvmstate_vm_save(int vm_fd, bool irqchip, bool pit, struct kevd_blob *out, struct kevd_error *err);
int kevd_kvmstate_vm_load(int vm_fd, bool irqchip, bool pit, const void *data, size_t len,
			  struct kevd_error *err);

#endif
