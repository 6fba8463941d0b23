/* State shared by vm.c (lifecycle, memory, boot) and vcpu.c (run loop). */
#ifndef KEVD_VM_INTERNAL_H
#define KEVD_VM_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>

#include "pager/image.h"
#include "pager/pager.h"
#include "vmm/console.h"
#include "vmm/serial.h"
#include "vmm/vm.h"

struct kevd_vcpu {
	struct kevd_vm *vm;
	unsigned index;
	int fd;                      /* owned: the KVM vCPU fd */
	struct kvm_run *run;         /* owned mapping of vm->run_size bytes */
	pthread_t thread;            /* joined by kevd_vm_free */
	bool started;                /* atomic: set (release) once thread is valid */
	int tid;                     /* atomic; set by the thread itself */
	uint64_t exits[KEVD_EXIT_KINDS];  /* written by the vCPU thread only */
	/* Paging registers as of the last exit, for gva translation. */
	uint64_t cr0, cr3, cr4, efer;     /* atomic relaxed */
};

struct kevd_vm {
	struct kevd_vm_config cfg;   /* strings point at the owned copies below */
	char *name, *kernel, *cmdline;
	struct kevd_image *img;      /* owned */
	struct kevd_pager *pager;    /* owned */
	int kvm_fd, vm_fd;           /* owned */
	size_t run_size;
	unsigned char *ram_low;      /* owned mapping: guest-physical [0, low_len) */
	size_t low_len;
	unsigned char *ram_high;     /* owned mapping: [4 GiB, 4 GiB + high_len) */
	size_t high_len;
	struct kevd_console *console;  /* owned */
	struct kevd_serial *serial;    /* owned */
	enum kevd_boot_protocol protocol;
	bool sipi;                   /* KEVD_AP_SIPI in effect */
	kevd_gpa_t entry;
	char *initrd;
	int initrd_fd;               /* owned until the initrd is read into RAM; -1 */
	uint64_t initrd_gpa, initrd_size;
	uint8_t cmos_index;          /* atomic enough: a byte written by port 0x70 */
	uint32_t boot_info_gpa;
	unsigned nvcpus;
	struct kevd_vcpu *vcpus;     /* owned array */

	pthread_mutex_t lock;        /* protects state, reason, exit_status, live, halted, end_ns */
	pthread_cond_t ended;        /* broadcast when live drops to 0 */
	enum kevd_vm_state state;
	char reason[512];
	int exit_status;
	unsigned live;               /* vCPU threads still running */
	unsigned halted;             /* vCPUs parked after HLT */
	bool end_notified;
	int stopping;                /* atomic: vCPUs must leave KVM_RUN and end */
	uint64_t create_ns;          /* kevd_vm_create entered */
	uint64_t start_ns, first_exit_ns, end_ns;  /* first_exit_ns: atomic */
	uint64_t first_run_ns;       /* atomic: vCPU 0 about to enter the guest the first time */
	uint8_t ports_logged[65536 / 8];  /* atomic bit per port: logged once */
};

/* Moves a running VM to a final state (first caller wins), records why,
 * and kicks every vCPU.  Returns true if this call set the state. */
bool kevd_vm_end(struct kevd_vm *vm, enum kevd_vm_state state, int exit_status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

int kevd_vcpu_setup(struct kevd_vm *vm, struct kevd_vcpu *v, struct kevd_error *err);
int kevd_vcpu_start(struct kevd_vcpu *v, struct kevd_error *err);
void kevd_vcpu_kick(struct kevd_vcpu *v);

#endif
