/*
 * Guest memory: the memory part (anonymous RAM below the MMIO hole and
 * above 4 GiB, one memslot each), the pager part (the lazy pager over the
 * image-backed pages of that RAM), and translation of guest-physical and
 * guest-virtual addresses for inspection.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "common/fault.h"
#include "vmm/pagewalk.h"
#include "vmm/vm_internal.h"

/* ---- the memory part ---- */

static void *map_ram(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Guest RAM in a core dump of kevd is neither useful nor private. */
	madvise(p, len, MADV_DONTDUMP);
	return p;
}

/* KVM_SET_USER_MEMORY_REGION of a large slot is most of a restore's way to
 * its first instruction on a host whose KVM shadows the guest's page
 * tables: it sizes the slot's reverse maps at once (2 MiB of them for
 * 1 GiB).  Nothing the pager and vCPU parts do during the create needs a
 * memslot (they work on the host mapping and on fresh vCPUs), so from
 * SLOT_THREAD_BYTES on the slots are registered by a thread of their own
 * meanwhile, and kevd_vm_create() waits for it (kevd_vm_memslots_wait())
 * before anything can run or set an MSR that points into guest memory.
 * Below that the thread would cost more than it hides. */
#define SLOT_THREAD_BYTES (256ull << 20)

struct kevd_memslots {
	int vm_fd;
	unsigned n;
	struct kvm_userspace_memory_region r[2];
	const char *what[2];
	pthread_t thread;
	bool running;           /* thread started and not joined yet */
	/* Written by whoever registers the slots; read after the join. */
	int errnum;             /* 0: every slot is in */
	unsigned failed;        /* the slot that failed */
};

static void register_slots(struct kevd_memslots *m)
{
	for (unsigned i = 0; i < m->n; i++) {
		int r = kevd_fault("kvm_memslot") ? (errno = ENOMEM, -1)
						  : ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &m->r[i]);

		if (r < 0) {
			m->errnum = errno;
			m->failed = i;
			return;
		}
	}
}

static void *slots_main(void *arg)
{
	register_slots(arg);
	return NULL;
}

int kevd_vm_memslots_wait(struct kevd_vm *vm, struct kevd_error *err)
{
	struct kevd_memslots *m = vm->memslots;

	if (!m)
		return 0;
	if (m->running) {
		pthread_join(m->thread, NULL);
		m->running = false;
	}
	if (m->errnum)
		return kevd_error_sys(err, m->errnum, "vm '%s': KVM_SET_USER_MEMORY_REGION (%s)", vm->name,
				      m->what[m->failed]);
	return 0;
}

static int add_ram(struct kevd_vm *vm, uint64_t gpa, unsigned char **host, size_t len, const char *what,
		   struct kevd_error *err)
{
	struct kevd_memslots *m = vm->memslots;

	*host = map_ram(len);
	if (!*host)
		return kevd_error_sys(err, errno, "vm '%s': mapping %zu bytes of guest RAM", vm->name, len);
	m->r[m->n] = (struct kvm_userspace_memory_region){
		.slot = m->n, .guest_phys_addr = gpa, .memory_size = len, .userspace_addr = (uintptr_t)*host,
	};
	m->what[m->n++] = what;
	return 0;
}

static int memory_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	uint64_t bytes = vm->cfg.memory_mib << 20;
	struct kevd_memslots *m;
	pthread_attr_t attr;
	int r;

	(void)state;
	if (vm->from_spare) {
		/* The spare's RAM, of this size, registered with its VM. */
		vm->ram_low = vm->spare->ram_low;
		vm->ram_high = vm->spare->ram_high;
		vm->low_len = vm->spare->low_len;
		vm->high_len = vm->spare->high_len;
		vm->spare->ram_low = vm->spare->ram_high = NULL;
		return 0;
	}
	vm->memslots = m = calloc(1, sizeof(*m));
	if (!m)
		return kevd_error_sys(err, ENOMEM, "vm '%s': memslots", vm->name);
	m->vm_fd = vm->vm_fd;
	vm->low_len = bytes < KEVD_MMIO_HOLE_START ? bytes : KEVD_MMIO_HOLE_START;
	vm->high_len = bytes - vm->low_len;
	r = add_ram(vm, 0, &vm->ram_low, vm->low_len, "low RAM", err);
	if (r == 0 && vm->high_len)
		r = add_ram(vm, KEVD_MMIO_HOLE_END, &vm->ram_high, vm->high_len, "high RAM", err);
	if (r < 0)
		return r;
	if (bytes < SLOT_THREAD_BYTES) {
		register_slots(m);
		return kevd_vm_memslots_wait(vm, err);
	}
	/* The thread makes two ioctls: a small stack does. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 << 10);
	r = pthread_create(&m->thread, &attr, slots_main, m);
	pthread_attr_destroy(&attr);
	if (r) {
		register_slots(m);  /* no thread: in line, as for a small VM */
		return kevd_vm_memslots_wait(vm, err);
	}
	m->running = true;
	return 0;
}

/* A create that failed after this part may have left the thread running. */
static void memory_free(struct kevd_vm *vm, void *state)
{
	(void)state;
	if (vm->memslots && vm->memslots->running)
		pthread_join(vm->memslots->thread, NULL);
	free(vm->memslots);
	vm->memslots = NULL;
	if (vm->ram_low)
		munmap(vm->ram_low, vm->low_len);
	if (vm->ram_high)
		munmap(vm->ram_high, vm->high_len);
}

const struct kevd_vm_part kevd_part_memory = { .name = "memory", .create = memory_create, .free = memory_free };

/* ---- the pager part ---- */

static void on_pager_failure(void *arg, kevd_gpa_t gpa, const struct kevd_error *e)
{
	struct kevd_vm *vm = arg;

	(void)gpa;
	kevd_vm_end(vm, KEVD_VM_FAILED, -1, "lazy paging failed: %s", e->msg);
}

static int pager_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	struct kevd_pager_config pc = {
		.handler_threads = vm->cfg.pager_threads, .window_pages = vm->cfg.window_pages,
		.window_max_pages = vm->cfg.window_max_pages, .eager = vm->cfg.eager,
		.cache = vm->cfg.private_pages ? NULL : vm->cfg.image_cache,
		.prefetch_nice = vm->cfg.vcpu_nice, .on_failure = on_pager_failure, .cb_arg = vm,
	};
	int r = kevd_vm_place_initrd(vm, err);

	(void)state;
	if (r == 0 && vm->cfg.restore)
		r = kevd_vm_restore_memory(vm, err);
	if (r < 0)
		return r;
	r = kevd_pager_new(vm->img, &pc, &vm->pager, err);
	if (r == 0)
		r = kevd_pager_add_memory(vm->pager, KEVD_GPA(0), vm->ram_low, vm->low_len, err);
	if (r == 0 && vm->high_len)
		r = kevd_pager_add_memory(vm->pager, KEVD_GPA(KEVD_MMIO_HOLE_END), vm->ram_high, vm->high_len, err);
	if (r < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

static int pager_start(struct kevd_vm *vm, void *state, struct kevd_error *err)
{
	(void)state;
	if (kevd_pager_start(vm->pager, err) < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

/* The pager's threads stop and its userfaultfd closes before any vCPU is
 * joined: that wakes a vCPU still asleep on a fault (even one no kick
 * reaches, on a kernel without UFFDIO_POISON) and leaves nobody to kick a
 * vCPU later. */
static void pager_quiesce(struct kevd_vm *vm, void *state)
{
	(void)state;
	kevd_pager_stop(vm->pager);
}

static void pager_free(struct kevd_vm *vm, void *state)
{
	(void)state;
	kevd_pager_free(vm->pager);
}

const struct kevd_vm_part kevd_part_pager = {
	.name = "pager", .create = pager_create, .start = pager_start, .quiesce = pager_quiesce,
	.free = pager_free,
};

int kevd_vm_record_working_set(struct kevd_vm *vm, unsigned record_ms, struct kevd_pager_recording **out,
			       struct kevd_error *err)
{
	/* The clock starts at the guest's first instruction (vcpu.c). */
	if (kevd_pager_record(vm->pager, record_ms, &vm->first_run_ns, out, err) < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

int kevd_vm_prefetch_working_set(struct kevd_vm *vm, const uint64_t *gfns, size_t n, struct kevd_error *err)
{
	if (kevd_pager_prefetch(vm->pager, gfns, n, err) < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

void kevd_vm_kernel_digest(struct kevd_vm *vm, char out[17])
{
	struct kevd_image_identity id;

	kevd_vm_kernel_identity(vm, &id);
	kevd_image_identity_digest(&id, out);
}

/* ---- translation ---- */

int kevd_vm_translate_gpa(struct kevd_vm *vm, kevd_gpa_t gpa, void **host,
			  enum kevd_page_state *state, bool *image_backed, struct kevd_error *err)
{
	if (kevd_vm_frozen(vm))
		return kevd_error_set(err, ENODATA, "vm '%s' has ended: its memory is released", vm->name);
	if (kevd_pager_translate(vm->pager, gpa, host, state, image_backed) < 0)
		return kevd_error_set(err, ENOENT, "vm '%s': guest-physical 0x%llx is not RAM", vm->name,
				      (unsigned long long)gpa.v);
	return 0;
}

static const void *read_guest(void *ctx, kevd_gpa_t gpa, size_t len)
{
	struct kevd_vm *vm = ctx;
	enum kevd_page_state state;
	bool backed;
	void *host;

	/* Page tables never straddle pages; one translation covers LEN. */
	if (((gpa.v & KEVD_PAGE_MASK) + len) > KEVD_PAGE_SIZE)
		return NULL;
	if (kevd_pager_translate(vm->pager, gpa, &host, &state, &backed) < 0)
		return NULL;
	/* Only memory that is there: touching an unloaded image page from
	 * here would load it (or, if it failed, fault this thread). */
	if (backed && state != KEVD_PAGE_MAPPED)
		return NULL;
	return host;
}

int kevd_vm_translate_gva(struct kevd_vm *vm, unsigned vcpu, kevd_gva_t gva, kevd_gpa_t *gpa,
			  struct kevd_error *err)
{
	struct kevd_paging_regs regs;
	const struct kevd_vcpu *v;

	if (vcpu >= vm->nvcpus)
		return kevd_error_set(err, EINVAL, "vm '%s': no vcpu %u (it has %u)", vm->name, vcpu, vm->nvcpus);
	if (kevd_vm_frozen(vm))
		return kevd_error_set(err, ENODATA, "vm '%s' has ended: its memory is released", vm->name);
	v = &vm->vcpus[vcpu];
	regs.cr0 = __atomic_load_n(&v->cr0, __ATOMIC_RELAXED);
	regs.cr3 = __atomic_load_n(&v->cr3, __ATOMIC_RELAXED);
	regs.cr4 = __atomic_load_n(&v->cr4, __ATOMIC_RELAXED);
	regs.efer = __atomic_load_n(&v->efer, __ATOMIC_RELAXED);
	if (kevd_pagewalk(gva, &regs, read_guest, vm, gpa, NULL, err) < 0)
		return kevd_error_prefix(err, "vm '%s': vcpu %u", vm->name, vcpu);
	return 0;
}
