/*
 * entry.S - 32-bit entry, long-mode switch and drop to ring 3.
 *
 * Everything here runs at CPL 0, which nested KVM on the project machines
 * emulates at about 1 us per instruction, so this file does the minimum:
 * page tables (BSP only), GDT/TSS/IDT, then iretq to ring 3 where guest.c
 * does all the real work.  No cpuid, int3, fwait, xsave or SSE anywhere.
 *
 * Entry state (multiboot2, PVH and kevd's AP convention alike): 32-bit
 * protected mode, paging off, flat CS/DS/ES/SS.
 *   multiboot2: EAX = 0x36d76289, EBX = multiboot2 information
 *   PVH:        EBX = struct hvm_start_info
 *   kevd BSP:   additionally ECX = TESTGUEST_KEVD_MAGIC, EDI = vCPU count
 *   kevd AP:    EAX = TESTGUEST_KEVD_AP_MAGIC, ESI = index, EDI = count
 */
#include "testguest.h"

#define KSTACK_SIZE   8192
#define USTACK_SIZE   32768
#define TSS_STRIDE    0x3000  /* 104-byte TSS + 8 KiB I/O bitmap + 0xff */
#define TSS_LIMIT     (104 + 8192)

#define SEL_KCODE     0x08
#define SEL_KDATA     0x10
#define SEL_UDATA     0x1b   /* GDT index 3, RPL 3 */
#define SEL_UCODE     0x23   /* GDT index 4, RPL 3 */
#define SEL_TSS0      0x28   /* GDT index 5; vCPU i uses 0x28 + 16 * i */

#define PTE_PWU       0x007  /* present, writable, user */
#define PDE_2M        0x087  /* present, writable, user, 2 MiB page */

#define MSR_EFER      0xc0000080
#define EFER_LME      0x100
#define CR4_PAE       0x20
#define CR0_PE_PG     0x80000001

/* ---- multiboot2 header: first thing in the text segment ---------------- */
	.section .multiboot2, "a"
	.balign 8
mb2_header:
	.long TESTGUEST_MB2_HEADER_MAGIC
	.long 0                                 /* architecture: i386 32-bit protected mode */
	.long mb2_header_end - mb2_header
	.long -(TESTGUEST_MB2_HEADER_MAGIC + 0 + (mb2_header_end - mb2_header))
	.balign 8
	.short 0, 0                             /* end tag: type 0, flags 0 */
	.long 8                                 /*          size 8 */
mb2_header_end:

/* ---- Xen PVH entry note ------------------------------------------------ */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4                                 /* namesz */
	.long 4                                 /* descsz */
	.long TESTGUEST_XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.long _start                            /* 32-bit physical entry */

/* ---- 32-bit entry ------------------------------------------------------ */
	.section .text.entry, "ax"
	.code32
	.globl _start
	.type _start, @function
_start:
	cli
	cld
	cmpl $TESTGUEST_KEVD_AP_MAGIC, %eax
	je ap_entry32

	/* BSP: record the boot registers for ring 3. */
	movl %eax, testguest_boot_eax
	movl %ebx, testguest_boot_info
	movl $1, %edx
	cmpl $TESTGUEST_KEVD_MAGIC, %ecx
	jne 1f
	movl %edi, %edx
	testl %edx, %edx
	jnz 1f
	movl $1, %edx
1:	cmpl $TESTGUEST_MAX_VCPUS, %edx
	jbe 2f
	movl $TESTGUEST_MAX_VCPUS, %edx
2:	movl %edx, testguest_vcpu_count
	/* Turn on kvmclock's wall clock, as Linux does: KVM writes guest
	 * memory when the MSR is set, also when a restore sets it again
	 * (the BSP only: one is enough, and the state is per VM). */
	movl $0x4b564d00, %ecx       /* MSR_KVM_WALL_CLOCK_NEW */
	movl $kvmclock_wall, %eax
	xorl %edx, %edx
	wrmsr

	/* Page tables: PML4[0] -> PDPT, PDPT[0..3] -> 4 PDs of 2 MiB pages
	 * identity-mapping 0..4 GiB.  The loader zeroed .bss, so only the
	 * non-zero (low) halves are written. */
	movl $pt_pdpt + PTE_PWU, pt_pml4
	movl $pt_pd + PTE_PWU, pt_pdpt
	movl $pt_pd + 0x1000 + PTE_PWU, pt_pdpt + 8
	movl $pt_pd + 0x2000 + PTE_PWU, pt_pdpt + 16
	movl $pt_pd + 0x3000 + PTE_PWU, pt_pdpt + 24
	movl $pt_pd, %edi
	movl $PDE_2M, %eax
	movl $(2048 / 8), %ecx
3:	movl %eax, 0(%edi)
	leal 0x00200000(%eax), %edx
	movl %edx, 8(%edi)
	leal 0x00400000(%eax), %edx
	movl %edx, 16(%edi)
	leal 0x00600000(%eax), %edx
	movl %edx, 24(%edi)
	leal 0x00800000(%eax), %edx
	movl %edx, 32(%edi)
	leal 0x00a00000(%eax), %edx
	movl %edx, 40(%edi)
	leal 0x00c00000(%eax), %edx
	movl %edx, 48(%edi)
	leal 0x00e00000(%eax), %edx
	movl %edx, 56(%edi)
	addl $0x01000000, %eax
	addl $64, %edi
	decl %ecx
	jnz 3b

	/* IDT: 32 interrupt gates, DPL 0, kernel code selector. */
	movl $isr_table, %esi
	movl $testguest_idt, %edi
	movl $32, %ecx
4:	movl (%esi), %eax
	movl %eax, %edx
	andl $0x0000ffff, %eax
	orl $(SEL_KCODE << 16), %eax
	movl %eax, 0(%edi)
	andl $0xffff0000, %edx
	orl $0x8e00, %edx
	movl %edx, 4(%edi)
	addl $8, %esi
	addl $16, %edi
	decl %ecx
	jnz 4b

	/* Release the APs, then continue as vCPU 0. */
	movl $1, tables_ready
	xorl %esi, %esi
	jmp common32

ap_entry32:
	/* AP: wait for the BSP's tables. */
5:	cmpl $0, tables_ready
	jne 6f
	pause
	jmp 5b
6:	testl %esi, %esi
	jz dead32
	cmpl $TESTGUEST_MAX_VCPUS, %esi
	jae dead32

common32:
	/* ESI = vCPU index. */
	lgdt gdt_ptr
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl $pt_pml4, %eax
	movl %eax, %cr3
	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	orl $CR0_PE_PG, %eax
	movl %eax, %cr0
	ljmp $SEL_KCODE, $long64

dead32:
	cli
	hlt
	jmp dead32

/* ---- 64-bit ring-0 tail ------------------------------------------------ */
	.code64
long64:
	movl %esi, %esi                         /* zero-extend the index */
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs

	/* Kernel stack for exceptions: top of kstack[index]. */
	leaq 1(%rsi), %rax
	imulq $KSTACK_SIZE, %rax
	leaq kstacks(%rax), %rsp

	/* TSS[index]: rsp0, and an all-zero (allow everything) I/O bitmap
	 * over all 65536 ports.  IOPL 3 alone is not enough on the project's
	 * nested KVM: its ring 3 runs with IOPL 0 whatever RFLAGS says, so
	 * the bitmap is what lets ring 3 reach the VMM with in/out. */
	movq %rsi, %rbx
	imulq $TSS_STRIDE, %rbx
	leaq tss_area(%rbx), %rbx
	movq %rsp, 4(%rbx)
	movw $104, 102(%rbx)
	movb $0xff, TSS_LIMIT(%rbx)

	/* GDT descriptor for TSS[index] (base < 4 GiB, type 9). */
	movq %rsi, %rdi
	shlq $4, %rdi
	leaq gdt_tss(%rdi), %rdi
	movl %ebx, %eax
	shll $16, %eax
	orl $TSS_LIMIT, %eax
	movl %eax, 0(%rdi)
	movl %ebx, %eax
	andl $0xff000000, %eax
	movl %ebx, %edx
	shrl $16, %edx
	andl $0xff, %edx
	orl %edx, %eax
	orl $0x8900, %eax
	movl %eax, 4(%rdi)
	movq $0, 8(%rdi)
	movq %rsi, %rax                         /* selector = 0x28 + 16 * index */
	shlq $4, %rax
	addq $SEL_TSS0, %rax
	ltr %ax
	lidt idt_ptr

	/* iretq to ring 3: IOPL 3, IF 0, per-vCPU user stack.  IOPL is also
	 * set with popfq first: this host's emulated iretq keeps the old IOPL. */
	pushq $0x3002
	popfq
	leaq 1(%rsi), %rax
	imulq $USTACK_SIZE, %rax
	leaq ustacks-8(%rax), %rax              /* rsp % 16 == 8 as after a call */
	pushq $SEL_UDATA
	pushq %rax
	pushq $0x3002
	pushq $SEL_UCODE
	pushq $testguest_main
	movq %rsi, %rdi                         /* testguest_main(index) */
	iretq

/* ---- exception stubs (ring 0; only reached on errors) ------------------ */
	.text
.macro ISR n
	.balign 16
isr\n:
	.if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
	.else
	pushq $0                                /* dummy error code */
	.endif
	pushq $\n
	jmp isr_common
.endm
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	ISR \n
	.endr

isr_common:
	cmpq $13, 0(%rsp)                       /* #GP from the hlt of testguest_idle/halt */
	jne 8f
	cmpq $idle_hlt, 16(%rsp)
	je idle_ring0
	cmpq $halt_hlt, 16(%rsp)
	je halt_ring0
8:	movq %rsp, %rdi                         /* vector, error, rip, cs, rflags, rsp, ss */
	andq $-16, %rsp
	call testguest_exception
7:	cli
	hlt
	jmp 7b

/* mode=idle and mode=halt.  Ring 3 calls testguest_idle() or
 * testguest_halt(), whose hlt is privileged there: the #GP brings the vCPU
 * to ring 0 (an `int` gate would be simpler, but this host's nested KVM
 * answers a ring-3 `int n` with #UD), where it halts for good.  Idle halts
 * with interrupts enabled, which kevd treats as waiting for an interrupt:
 * the VM stays running, the vCPU costs no CPU, and no interrupt comes.
 * Halt keeps them disabled: that vCPU has stopped, and when every vCPU has,
 * kevd ends the VM. */
	.globl testguest_idle, testguest_halt
	.type testguest_idle, @function
	.type testguest_halt, @function
testguest_idle:
idle_hlt:
	hlt
	jmp idle_hlt
testguest_halt:
halt_hlt:
	hlt
	jmp halt_hlt
idle_ring0:
	sti
9:	hlt
	jmp 9b
halt_ring0:
	hlt
	jmp halt_ring0

	.section .rodata
	.balign 8
isr_table:
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad isr\n
	.endr

	.balign 8
gdt_ptr:
	.short gdt_end - gdt - 1
	.quad gdt
idt_ptr:
	.short 32 * 16 - 1
	.quad testguest_idt

/* ---- GDT (initialised data; TSS descriptors are filled per vCPU) ------- */
	.data
	.balign 16
gdt:
	.quad 0                                 /* 0x00 null */
	.quad 0x00af9a000000ffff                /* 0x08 kernel code, 64-bit */
	.quad 0x00cf92000000ffff                /* 0x10 kernel data */
	.quad 0x00cff2000000ffff                /* 0x18 user data, DPL 3 */
	.quad 0x00affa000000ffff                /* 0x20 user code, 64-bit, DPL 3 */
gdt_tss:
	.fill TESTGUEST_MAX_VCPUS * 2, 8, 0     /* 0x28 + 16 * i: TSS of vCPU i */
gdt_end:

/* ---- ring-0 state in .bss ---------------------------------------------- */
	.section .bss.pagetables, "aw", @nobits
	.balign 4096
pt_pml4:	.skip 4096
pt_pdpt:	.skip 4096
pt_pd:		.skip 4 * 4096
kstacks:	.skip TESTGUEST_MAX_VCPUS * KSTACK_SIZE
ustacks:	.skip TESTGUEST_MAX_VCPUS * USTACK_SIZE

	.bss
	.balign 16
	.globl testguest_idt
testguest_idt:	.skip 32 * 16
	.balign 4096
tss_area:	.skip TESTGUEST_MAX_VCPUS * TSS_STRIDE
	.balign 8
	.globl testguest_boot_eax, testguest_boot_info, testguest_vcpu_count
testguest_boot_eax:	.skip 4
testguest_boot_info:	.skip 4
testguest_vcpu_count:	.skip 4
tables_ready:		.skip 4
	.balign 16
kvmclock_wall:		.skip 16     /* struct pvclock_wall_clock (12 bytes) */

	.section .note.GNU-stack, "", @progbits
