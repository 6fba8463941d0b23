/*
 * One guest: a KVM VM, its RAM, its lazy pager, one thread per vCPU, its
 * devices (a serial console, the debug-exit port, PC ports) on an I/O bus.
 * The VMM owns every thread and fd it creates; kevd_vm_free() stops the
 * guest if it still runs, joins the threads and releases everything in the
 * reverse order of setup (vm_internal.h, parts.h).
 *
 * Boot (docs/boot.md): every vCPU starts at the kernel's physical entry in
 * 32-bit flat protected mode, paging off.  The bootstrap processor gets the
 * protocol's registers (multiboot2: EAX = 0x36d76289, EBX = the information
 * structure; PVH: EBX = start_info) plus ECX = 0x6b657664 ("kevd") and EDI =
 * the vCPU count; application processors start at the same entry with
 * EAX = 0x6b657641, ESI = their index, EDI = the count and EBX = the same
 * boot information.
 */
#ifndef KEVD_VM_H
#define KEVD_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/types.h"
#include "common/sandbox.h"
#include "pager/pager.h"
#include "vmm/bootgate.h"

#define KEVD_VM_MAX_VCPUS 64
#define KEVD_VM_DEFAULT_CONSOLE (1u << 20)
#define KEVD_BOOT_MAGIC_BSP 0x6b657664u
#define KEVD_BOOT_MAGIC_AP 0x6b657641u

enum kevd_vm_state {
	KEVD_VM_CREATED,
	KEVD_VM_RUNNING,
	KEVD_VM_PAUSED,    /* every vCPU parked out of the guest, the pager idle (kevd_vm_pause) */
	KEVD_VM_EXITED,    /* the guest ended itself (debug exit, power-off, reset, all vCPUs halted with interrupts off) */
	KEVD_VM_CRASHED,   /* triple fault, emulation or entry failure */
	KEVD_VM_FAILED,    /* kevd could not go on (a page failed to load, KVM error) */
	KEVD_VM_STOPPED,   /* stopped on request */
};

enum kevd_boot_protocol {
	KEVD_BOOT_AUTO,        /* PVH if the image has the note, else multiboot2 */
	KEVD_BOOT_MULTIBOOT2,
	KEVD_BOOT_PVH,
};

/* How application processors start. */
enum kevd_ap_start {
	KEVD_AP_AUTO,     /* SIPI for Linux images (a "Linux" ELF note), else ENTRY */
	KEVD_AP_ENTRY,    /* kevd's convention: every vCPU at the entry (see above) */
	KEVD_AP_SIPI,     /* a PC: in-kernel LAPICs, I/O APIC and PIT, ACPI tables;
			   * APs wait for INIT/SIPI from the BSP */
};

struct kevd_vm;
struct kevd_image_page;
struct kevd_image_identity;

/* What kevd_vm_create() needs to restore a VM from a snapshot instead of
 * booting it (snapshot.c; the daemon reads and checks the files). */
struct kevd_vm_restore {
	int memory_fd;                    /* the memory file; taken by kevd_vm_create, even on failure */
	const char *memory_path;          /* names it in messages */
	const char *name;                 /* the snapshot's name, as the VM reports it (kevd_vm_snapshot_name) */
	struct kevd_image_page *pages;    /* its pages, sorted by gfn; malloc'd, taken like the fd */
	size_t npages;
	const void *state;                /* the parts' state file (kevd_vm_snapshot_write), borrowed */
	size_t state_len;
	const struct kevd_image_identity *kernel_id;  /* the kernel (and initrd) the snapshot was taken over */
};

/* A spare VM: made ahead of a create, so that the create skips what costs
 * it most before the guest can run -- KVM_CREATE_VM, the memslots of guest
 * RAM (on a host whose KVM shadows the guest's page tables, registering
 * 1 GiB sizes 2.5 MiB of reverse maps at once: 0.7 ms here) and
 * KVM_CREATE_VCPU (0.35 ms each).  It holds a fresh KVM VM (its TSS set;
 * for a PC its interrupt controllers and PIT), untouched anonymous guest
 * RAM registered as its memslots, and VCPUS fresh vCPUs with their kvm_run
 * mapped: no guest state, nothing ever ran.  A create of that shape
 * (memory_mib, vcpus, and whether the image makes it a PC: KEVD_AP_SIPI
 * in effect) takes it over (kevd_vm_config.spare); any other frees it. */
struct kevd_vm_spare;

int kevd_vm_spare_new(uint64_t memory_mib, unsigned vcpus, bool pc, struct kevd_vm_spare **out,
		      struct kevd_error *err);
void kevd_vm_spare_shape(const struct kevd_vm_spare *s, uint64_t *memory_mib, unsigned *vcpus, bool *pc);
void kevd_vm_spare_free(struct kevd_vm_spare *s);
/* Whether the VM is a PC (KEVD_AP_SIPI in effect): the shape of a spare
 * for it. */
bool kevd_vm_is_pc(const struct kevd_vm *vm);

/* The vCPU threads' nice that kevd run and the daemon's configuration
 * default to. */
#define KEVD_VM_DEFAULT_VCPU_NICE 10

/* Called once when the VM reaches a final state, from whichever thread got
 * it there (a vCPU, a pager thread or the caller of kevd_vm_stop()). */
typedef void (*kevd_vm_end_fn)(void *arg, struct kevd_vm *vm);

struct kevd_vm_config {
	const char *name;
	const char *kernel;          /* ELF image path (names it in messages) */
	bool kernel_fd_valid;        /* open kernel_fd instead of the path */
	int kernel_fd;               /* taken by kevd_vm_create, even on failure */
	uint64_t memory_mib;
	unsigned vcpus;
	const char *cmdline;         /* NULL = empty */
	enum kevd_boot_protocol protocol;
	enum kevd_ap_start ap_start;
	const char *initrd;          /* initial ramdisk path (names it in messages); NULL = none */
	bool initrd_fd_valid;        /* read initrd_fd instead of the path */
	int initrd_fd;               /* taken by kevd_vm_create, even on failure */
	bool eager;
	bool private_pages;          /* lazy-private: this VM reads its own copy of the image */
	struct kevd_imagecache *image_cache;  /* lazy: shares the image through it; NULL = private */
	unsigned pager_threads;      /* 0 = pager default */
	unsigned window_pages;       /* 0 = pager default, 1 = no fault-around */
	unsigned window_max_pages;   /* 0 = pager default */
	unsigned vcpu_nice;          /* nice of the vCPU threads, 0..19: they yield to the pager and the API */
	struct kevd_bootgate *boot_gate;  /* vCPU 0 takes a boot slot here before the guest runs; NULL = none;
					   * borrowed, must outlive the VM */
	size_t console_bytes;        /* 0 = KEVD_VM_DEFAULT_CONSOLE */
	int console_fd;              /* mirror console output here; -1 = none */
	kevd_vm_end_fn on_end;
	void *cb_arg;
	const struct kevd_vm_restore *restore;  /* NULL = boot; borrowed for kevd_vm_create only */
	struct kevd_vm_spare *spare;  /* NULL = none; taken by kevd_vm_create, even on failure */
};

enum kevd_exit_kind {
	KEVD_EXIT_IO, KEVD_EXIT_MMIO, KEVD_EXIT_HLT, KEVD_EXIT_SHUTDOWN, KEVD_EXIT_INTR,
	KEVD_EXIT_INTERNAL_ERROR, KEVD_EXIT_FAIL_ENTRY, KEVD_EXIT_SYSTEM_EVENT, KEVD_EXIT_OTHER,
	KEVD_EXIT_KINDS
};

const char *kevd_exit_kind_name(enum kevd_exit_kind k);
const char *kevd_vm_state_name(enum kevd_vm_state s);

struct kevd_vcpu_info {
	unsigned index;
	int tid;                            /* 0 until its thread runs (made with the VM) */
	uint64_t exits[KEVD_EXIT_KINDS];
	uint64_t pager_faults;              /* faults the pager served for this vCPU */
};

/* Installs the process-wide handlers the VMM needs: the signal that kicks
 * a vCPU out of KVM_RUN, and SIGBUS, which KVM raises on a vCPU thread that
 * touches a page the pager poisoned (swallowed there; anywhere else it
 * stays fatal).  A program calls it once before its first kevd_vm_create(),
 * which fails without it. */
int kevd_vm_signals_install(struct kevd_error *err);

/* What a vCPU thread may do once it runs (common/sandbox.h). */
extern const struct kevd_sandbox_role kevd_vcpu_sandbox_role;

/* Validates the configuration and the image, creates the VM, its memory,
 * pager and vCPUs and writes the boot information; nothing runs yet. */
int kevd_vm_create(const struct kevd_vm_config *cfg, struct kevd_vm **out, struct kevd_error *err);
/* Starts the pager and the vCPU threads. */
int kevd_vm_start(struct kevd_vm *vm, struct kevd_error *err);
/* Asks the VM to stop (kicks every vCPU out of KVM_RUN); returns at once.
 * A VM already in a final state keeps it; returns true if this call set
 * the state to stopped. */
bool kevd_vm_stop(struct kevd_vm *vm, const char *reason);
/* Parks every vCPU out of KVM_RUN (a vCPU idle in HLT counts as parked)
 * and waits, up to TIMEOUT_MS, for the pager to finish what it serves:
 * guest memory and vCPU state then hold still until kevd_vm_resume().
 * -EBUSY unless running; -ETIMEDOUT (the VM runs on) if a vCPU does not
 * park in time.  A paused VM can still be stopped. */
int kevd_vm_pause(struct kevd_vm *vm, int timeout_ms, struct kevd_error *err);
/* -EBUSY unless paused. */
int kevd_vm_resume(struct kevd_vm *vm, struct kevd_error *err);

/* What kevd_vm_snapshot_write() wrote. */
struct kevd_vm_snapshot_result {
	uint64_t state_bytes, state_hash;   /* the state file: kevd_hash64 of its bytes */
	uint64_t pages, pages_hash;         /* the page list (16 bytes a page) and its hash */
	uint64_t image_pages_left;          /* image pages left to the kernel image (never loaded or unwritten) */
	uint64_t zero_pages_left;           /* RAM pages left out as zero */
	uint64_t write_ns;
};
#define KEVD_SNAPSHOT_STATE_FILE "state"
#define KEVD_SNAPSHOT_PAGES_FILE "pages"
#define KEVD_SNAPSHOT_MEMORY_FILE "memory"

/* Writes a paused VM's state into the directory DIRFD: the parts' state
 * (vCPUs, interrupt controllers, clock, serial port, console) and the
 * memory, as a sparse file holding only the pages that are not the
 * image's own and not zero (at offset gfn * 4096), with their list.  The
 * caller fsyncs and names the directory.  -EBUSY unless paused. */
int kevd_vm_snapshot_write(struct kevd_vm *vm, int dirfd, struct kevd_vm_snapshot_result *res,
			   struct kevd_error *err);
/* The identity of the kernel (and initrd) the VM runs, as a snapshot
 * records it. */
void kevd_vm_kernel_identity(struct kevd_vm *vm, struct kevd_image_identity *out);
/* Whether the VM was restored from a snapshot, and from which (NULL if
 * booted). */
bool kevd_vm_restored(const struct kevd_vm *vm);
/* Made over a spare VM (kevd_vm_config.spare had its size). */
bool kevd_vm_from_spare(const struct kevd_vm *vm);
const char *kevd_vm_snapshot_name(const struct kevd_vm *vm);

/* The working set (docs/pager.md, "Working set"), set between
 * kevd_vm_create() and kevd_vm_start(), one of the two, not in eager mode
 * (-ENOTSUP): record the image pages the VM loads until the guest has run
 * RECORD_MS ms from its first instruction, it pauses or it ends (*OUT
 * gets a reference to the recording, which outlives the VM); or prefetch
 * the list GFNS (copied) on a thread of the pager while the guest runs. */
int kevd_vm_record_working_set(struct kevd_vm *vm, unsigned record_ms, struct kevd_pager_recording **out,
			       struct kevd_error *err);
int kevd_vm_prefetch_working_set(struct kevd_vm *vm, const uint64_t *gfns, size_t n, struct kevd_error *err);
/* The digest (kevd_image_identity_digest) of the kernel's and initrd's
 * identity: the image cache's id of a booted VM's image, and the name
 * of its boot working set. */
void kevd_vm_kernel_digest(struct kevd_vm *vm, char out[17]);

/* Waits until every vCPU thread has ended, up to TIMEOUT_MS (-1 = forever);
 * returns 0, or -ETIMEDOUT. */
int kevd_vm_wait(struct kevd_vm *vm, int timeout_ms);
void kevd_vm_free(struct kevd_vm *vm);

enum kevd_vm_state kevd_vm_state(struct kevd_vm *vm);
/* Copies the reason for the current state (empty while created/running). */
void kevd_vm_reason(struct kevd_vm *vm, char *buf, size_t len);
/* The guest's exit status ((v << 1) | 1 for a debug-exit write of v, as
 * QEMU's isa-debug-exit); -1 if it has not exited that way. */
int kevd_vm_exit_status(struct kevd_vm *vm);
const char *kevd_vm_name(const struct kevd_vm *vm);
const struct kevd_vm_config *kevd_vm_config(const struct kevd_vm *vm);
enum kevd_boot_protocol kevd_vm_protocol(const struct kevd_vm *vm);
struct kevd_vm_times {
	uint64_t create_ns;      /* CLOCK_MONOTONIC: kevd_vm_create() called */
	uint64_t start_ns;       /* kevd_vm_start() called */
	uint64_t first_run_ns;   /* vCPU 0 entered the guest for the first time */
	uint64_t boot_wait_ns;   /* how long vCPU 0 waited for a boot slot (kevd_vm_config.boot_gate) */
	uint64_t first_exit_ns;  /* the first exit to kevd of any vCPU */
	uint64_t end_ns;         /* the final state was reached; 0 = not yet */
};
void kevd_vm_times(struct kevd_vm *vm, struct kevd_vm_times *out);

unsigned kevd_vm_vcpu_count(const struct kevd_vm *vm);
void kevd_vm_vcpu_info(struct kevd_vm *vm, unsigned index, struct kevd_vcpu_info *out);
/* As kevd_vm_vcpu_info(), with pager_faults taken from ST: one summary of
 * the VM's pager read once serves all of its vCPUs. */
void kevd_vm_vcpu_info_from(struct kevd_vm *vm, unsigned index, const struct kevd_pager_stats *st,
			    struct kevd_vcpu_info *out);
void kevd_vm_pager_stats(struct kevd_vm *vm, struct kevd_pager_stats *out);

/* A VM that has ended lets go of its guest RAM, threads and fds while its
 * statistics, console and reason stay readable until it is freed, in two
 * steps: kevd_vm_freeze() (on the thread that reads the VM: its vCPU
 * threads must have ended, see kevd_vm_wait) stops the pager and copies
 * the statistics, which every accessor returns from then on without
 * touching the parts; kevd_vm_release() (any thread, once, never beside
 * kevd_vm_free) then frees every part but the console.  Translation of a
 * frozen VM fails (ENODATA).  -EBUSY while the VM has not ended. */
int kevd_vm_freeze(struct kevd_vm *vm, struct kevd_error *err);
void kevd_vm_release(struct kevd_vm *vm);
bool kevd_vm_frozen(struct kevd_vm *vm);
/* Image pages in the VM's memory now, and its private ones among them
 * (kevd_pager_residency). */
int kevd_vm_pager_residency(struct kevd_vm *vm, uint64_t *mapped, uint64_t *private_pages, struct kevd_error *err);

size_t kevd_vm_console_read(struct kevd_vm *vm, uint64_t offset, void *buf, size_t len,
			    uint64_t *start, uint64_t *end);

/* Host address of GPA and whether its page is loaded. */
int kevd_vm_translate_gpa(struct kevd_vm *vm, kevd_gpa_t gpa, void **host,
			  enum kevd_page_state *state, bool *image_backed, struct kevd_error *err);
/* Guest-virtual to guest-physical through VCPU's page tables (as of its
 * last exit to kevd). */
int kevd_vm_translate_gva(struct kevd_vm *vm, unsigned vcpu, kevd_gva_t gva, kevd_gpa_t *gpa,
			  struct kevd_error *err);

#endif
