/*
 * The parts a VM is built from, in the order they are set up (and, in
 * reverse, torn down).  Each row names a `const struct kevd_vm_part`
 * defined in the part's own file.  A device is one file under dev/ plus
 * one row here, after the I/O bus it registers on and before the boot
 * information that may describe it.
 */
#ifndef KEVD_PARTS_H
#define KEVD_PARTS_H

#define KEVD_VM_PARTS(X) \
	X(kevd_part_image)       /* boot.c: the kernel image, the initrd file */ \
	X(kevd_part_kvm)         /* kvm.c: /dev/kvm, the VM fd, irqchip and PIT */ \
	X(kevd_part_memory)      /* memory.c: guest RAM and its memslots */ \
	X(kevd_part_pager)       /* memory.c: the lazy pager over the image pages */ \
	X(kevd_part_console)     /* vm.c: the console log */ \
	X(kevd_part_iobus)       /* vm.c: the I/O bus the devices register on */ \
	X(kevd_dev_serial)       /* dev/serial.c: the 16550 at COM1 */ \
	X(kevd_dev_debug_exit)   /* dev/debug_exit.c: port 0xf4 ends the guest */ \
	X(kevd_dev_power)        /* dev/power.c: ACPI S5 power-off and i8042 reset */ \
	X(kevd_dev_cmos)         /* dev/cmos.c: a CMOS clock reading 0 (SIPI VMs) */ \
	X(kevd_dev_unclaimed)    /* dev/unclaimed.c: ports and MMIO nobody claims */ \
	X(kevd_part_boot)        /* boot.c: entry, initrd, ACPI, boot information */ \
	X(kevd_part_vcpus)       /* vcpu.c: vCPU fds, their threads */

#define KEVD_VM_PART_COUNT_(p) +1
enum { KEVD_VM_NPARTS = 0 KEVD_VM_PARTS(KEVD_VM_PART_COUNT_) };

#endif
