/*
 * Guest memory: the memory part (anonymous RAM below the MMIO hole and
 * above 4 GiB, one memslot each), the pager part (the lazy pager over the
 * image-backed pages of that RAM), and translation of guest-physical and
 * guest-virtual addresses for inspection.
 */
#include "config.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

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

static int add_slot(struct kevd_vm *vm, uint32_t slot, uint64_t gpa, unsigned char **host, size_t len,
		    const char *what, struct kevd_error *err)
{
	struct kvm_userspace_memory_region r = { .slot = slot, .guest_phys_addr = gpa, .memory_size = len };

	*host = map_ram(len);
	if (!*host)
		return kevd_error_sys(err, errno, "vm '%s': mapping %zu bytes of guest RAM", vm->name, len);
	r.userspace_addr = (uintptr_t)*host;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return kevd_error_sys(err, errno, "vm '%s': KVM_SET_USER_MEMORY_REGION (%s)", vm->name, what);
	return 0;
}

static int memory_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	uint64_t bytes = vm->cfg.memory_mib << 20;
	int r;

	(void)state;
	vm->low_len = bytes < KEVD_MMIO_HOLE_START ? bytes : KEVD_MMIO_HOLE_START;
	vm->high_len = bytes - vm->low_len;
	r = add_slot(vm, 0, 0, &vm->ram_low, vm->low_len, "low RAM", err);
	if (r == 0 && vm->high_len)
		r = add_slot(vm, 1, KEVD_MMIO_HOLE_END, &vm->ram_high, vm->high_len, "high RAM", err);
	return r;
}

static void memory_free(struct kevd_vm *vm, void *state)
{
	(void)state;
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
