/*
 * What the parts of a VM share (vm.c's lifecycle, kvm.c, memory.c, boot.c,
 * vcpu.c and the devices under dev/).  A VM is built from an ordered table
 * of parts (parts.h): kevd_vm_create() runs their create hooks forward,
 * kevd_vm_start() their start hooks forward, kevd_vm_free() their quiesce
 * hooks backward (every thread told to stop before any is joined) and then
 * their free hooks backward.
 */
#ifndef KEVD_VM_INTERNAL_H
#define KEVD_VM_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>

#include "common/blob.h"
#include "pager/image.h"
#include "pager/pager.h"
#include "vmm/console.h"
#include "vmm/iobus.h"
#include "vmm/parts.h"
#include "vmm/vm.h"

/* One part of a VM.  Every hook but create may be NULL.  A part whose
 * create fails is still quiesced and freed, so free must cope with a
 * half-made part; STATE is the part's own slot (NULL until create sets it). */
struct kevd_vm_part {
	const char *name;
	int (*create)(struct kevd_vm *vm, void **state, struct kevd_error *err);
	/* Error messages come back prefixed with nothing: say "vm 'x'". */
	int (*start)(struct kevd_vm *vm, void *state, struct kevd_error *err);
	void (*quiesce)(struct kevd_vm *vm, void *state);
	void (*free)(struct kevd_vm *vm, void *state);
	/* Snapshots (snapshot.c): the part's state as records appended to
	 * OUT, taken while the VM is paused; and, for a VM restored from a
	 * snapshot, that state put back once every part is created.  NULL
	 * for a part with nothing to keep. */
	int (*save)(struct kevd_vm *vm, void *state, struct kevd_blob *out, struct kevd_error *err);
	int (*load)(struct kevd_vm *vm, void *state, const void *data, size_t len, struct kevd_error *err);
};

struct kevd_vcpu {
	struct kevd_vm *vm;
	unsigned index;
	int fd;                      /* owned: the KVM vCPU fd */
	struct kvm_run *run;         /* owned mapping of vm->run_size bytes */
	pthread_t thread;            /* joined by the vcpus part's free */
	bool started;                /* atomic: set (release) once thread is valid */
	int tid;                     /* atomic; set by the thread itself */
	bool done;                   /* under vm->lock: the thread is past its last use of tid */
	bool in_hlt;                 /* under vm->lock: stopped by a HLT exit, never to run again */
	bool hlt_rewound;            /* under vm->lock: a snapshot moved its RIP back onto the HLT */
	uint64_t exits[KEVD_EXIT_KINDS];  /* written by the vCPU thread only */
	bool leased;                 /* vCPU 0's thread only: it holds lease, a boot slot */
	struct kevd_boot_lease lease;
	/* Paging registers as of the last exit, for gva translation. */
	uint64_t cr0, cr3, cr4, efer;     /* atomic relaxed */
};

struct kevd_vm {
	struct kevd_vm_config cfg;   /* strings point at the owned copies below */
	char *name, *kernel, *cmdline, *initrd;
	char *snapshot;              /* a restore's snapshot name; NULL if booted */
	void *part_state[KEVD_VM_NPARTS];  /* each owned by its part */
	bool part_freed[KEVD_VM_NPARTS];   /* by kevd_vm_release() */
	/* kevd_vm_freeze(): what the statistics were when the VM ended; the
	 * accessors read these from then on, never the parts. */
	int frozen;                  /* atomic: 1 once the copies below are made */
	struct kevd_pager_stats final_stats;
	struct kevd_vcpu_info *final_vcpus;  /* owned, nvcpus of them */
	unsigned nparts;             /* parts whose create ran (or failed) */

	/* kevd_vm_create() of a restore: the memory fd and page list until
	 * the pager part hands them to the image; -1/NULL after. */
	int restore_fd;
	struct kevd_image_page *restore_pages;
	bool restored;               /* made from a snapshot */
	/* kevd_vm_create(): cfg.spare of the VM's size until the kvm and
	 * memory parts take its parts over (vm.c frees what is left). */
	struct kevd_vm_spare *spare;
	bool from_spare;             /* the kvm part took the spare's VM */
	bool making_spare;           /* kevd_vm_spare_new()'s VM: vCPUs without state */
	bool made;                   /* kevd_vm_create() returned it: a VM its owner knows of */
	/* The parts' state of a restore (a copy of cfg.restore->state), put
	 * back by kevd_vm_start() once the pager serves faults and before
	 * any vCPU runs: loading it can touch guest memory (KVM writes the
	 * kvmclock pages when their MSRs are set).  Owned; NULL after. */
	void *restore_state;
	size_t restore_state_len;
	/* image part (boot.c) */
	struct kevd_image *img;      /* owned */
	int initrd_fd;               /* owned until the initrd is read into RAM; -1 */
	bool sipi;                   /* KEVD_AP_SIPI in effect */
	/* kvm part (kvm.c) */
	int kvm_fd, vm_fd;           /* owned */
	size_t run_size;
	/* memory and pager parts (memory.c) */
	unsigned char *ram_low;      /* owned mapping: guest-physical [0, low_len) */
	size_t low_len;
	unsigned char *ram_high;     /* owned mapping: [4 GiB, 4 GiB + high_len) */
	size_t high_len;
	struct kevd_memslots *memslots;  /* owned; registered by a thread of their own until kevd_vm_memslots_wait() */
	struct kevd_pager *pager;    /* owned */
	/* console and iobus parts (vm.c) */
	struct kevd_console *console;  /* owned */
	struct kevd_iobus *iobus;    /* owned; sealed at the end of kevd_vm_create() */
	/* boot part (boot.c) */
	enum kevd_boot_protocol protocol;
	kevd_gpa_t entry;
	uint64_t initrd_gpa, initrd_size;
	uint32_t boot_info_gpa;
	/* vcpus part (vcpu.c) */
	unsigned nvcpus;
	struct kevd_vcpu *vcpus;     /* owned array */

	pthread_mutex_t lock;        /* protects state, reason, exit_status, live, halted, idle, parked, gated, admitted, pause_req, pausing, start_done, vcpus_go, end_ns */
	pthread_cond_t ended;        /* broadcast when live drops to 0 */
	pthread_cond_t unhalt;       /* broadcast by kicks and resumes: idle (HLT, IF=1) and parked vCPUs wait on it */
	pthread_cond_t parking;      /* broadcast when parked, idle or live change: a pauser waits on it */
	enum kevd_vm_state state;
	char reason[512];
	int exit_status;
	unsigned live;               /* vCPU threads still running */
	unsigned halted;             /* vCPUs stopped by HLT with interrupts disabled */
	unsigned idle;               /* vCPUs waiting in kevd after HLT with interrupts enabled */
	unsigned parked;             /* vCPUs parked by a pause */
	unsigned gated;              /* vCPUs waiting for the VM's boot slot (count as parked for a pause) */
	bool admitted;               /* vCPU 0 got its boot slot (or there is no gate): the others may run */
	int pause_req;               /* atomic (written under lock): vCPUs must park before KVM_RUN */
	bool pausing;                /* a kevd_vm_pause() is under way: another one is refused */
	bool start_done;             /* kevd_vm_start() has started every part: a pause may begin */
	bool vcpus_go;               /* the vcpus part's start let its threads (made at create) into the guest */
	int stopping;                /* atomic: vCPUs must leave KVM_RUN and end */
	uint64_t create_ns;          /* kevd_vm_create entered */
	uint64_t start_ns, first_exit_ns, end_ns;  /* first_exit_ns: atomic */
	uint64_t first_run_ns;       /* atomic: vCPU 0 about to enter the guest the first time */
	uint64_t boot_wait_ns;       /* atomic: vCPU 0's wait for a boot slot, stored before first_run_ns (release) */
};

/* Moves a running VM to a final state (first caller wins), records why,
 * and kicks every vCPU.  Returns true if this call set the state. */
/* The parts' table (vm.c), for the snapshot code's walks. */
const struct kevd_vm_part *kevd_vm_part_at(unsigned i);

/* A restore (cfg.restore set): the snapshot's memory over the image
 * (memory.c calls it after placing the initrd), and the parts' state put
 * back by kevd_vm_start() between the pager's start and the vCPUs'
 * (snapshot.c). */
int kevd_vm_restore_memory(struct kevd_vm *vm, struct kevd_error *err);
int kevd_vm_restore_parts(struct kevd_vm *vm, struct kevd_error *err);

bool kevd_vm_end(struct kevd_vm *vm, enum kevd_vm_state state, int exit_status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Places the initrd (if any) in guest RAM as a part of the image, for the
 * pager to load lazily (boot.c); after the memory part, before the
 * pager's. */
int kevd_vm_place_initrd(struct kevd_vm *vm, struct kevd_error *err);

/* What a spare VM holds (kevd_vm_spare_new(), vm.c); the kvm and memory
 * parts move its members out (-1/NULL left behind) when they take it. */
struct kevd_vm_spare {
	uint64_t memory_mib;
	unsigned nvcpus;
	bool pc;
	int kvm_fd, vm_fd;
	size_t run_size;
	unsigned char *ram_low, *ram_high;
	size_t low_len, high_len;
	struct {
		int fd;
		struct kvm_run *run;
	} vcpus[];                   /* nvcpus of them */
};

/* Waits for the memory part's slots to be registered with KVM (memory.c);
 * an error if one could not be.  kevd_vm_create() calls it after every
 * part's create: no vCPU runs and no MSR is set before. */
int kevd_vm_memslots_wait(struct kevd_vm *vm, struct kevd_error *err);

/* Whether the program called kevd_vm_signals_install(). */
bool kevd_vm_signals_installed(void);

/* Kicks every vCPU out of KVM_RUN and wakes the idle ones; under vm->lock. */
void kevd_vcpus_kick_locked(struct kevd_vm *vm);

/* Drives interrupt line IRQ of the in-kernel irqchip (SIPI-mode VMs). */
void kevd_vm_irq_line(struct kevd_vm *vm, unsigned irq, int level);

#endif
