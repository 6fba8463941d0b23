/*
 * Snapshots of a paused VM, and the two steps of a restore that belong to
 * the VMM (docs/snapshots.md has the format and the daemon's side).
 *
 * The state file is a blob of record pairs, one per part that keeps state
 * (parts.h order): tag 1 the part's name, tag 2 what its save hook wrote.
 * The memory file is sparse: page GFN at offset GFN * 4096, and only
 * pages a restore could not get otherwise are there, i.e. neither the
 * image's own unwritten pages (the restore reads them from the image, if
 * its identity still matches) nor zero pages where the image has none.
 * The page list gives each written page and its hash, so that a restore
 * checks a page when it loads it, not the whole file before the first
 * instruction.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/hash.h"
#include "common/time.h"
#include "vmm/vm_internal.h"

#define TAG_PART_NAME 1
#define TAG_PART_DATA 2
#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)
#define PAGEMAP_FILE (1ull << 61)
#define PAGEMAP_BATCH 512

static int write_all(int fd, const void *p, size_t len, off_t off, const char *what, struct kevd_error *err)
{
	const unsigned char *b = p;
	size_t done = 0;

	while (done < len) {
		ssize_t n = KEVD_RETRY_EINTR(pwrite(fd, b + done, len - done, off + (off_t)done));

		if (n < 0)
			return kevd_error_sys(err, errno, "writing the snapshot's %s", what);
		done += (size_t)n;
	}
	return 0;
}

static int create_file(int dirfd, const char *name, struct kevd_error *err)
{
	int fd = openat(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);

	if (fd < 0)
		return kevd_error_sys(err, errno, "creating the snapshot's %s file", name);
	return fd;
}

static int finish_file(int fd, const char *name, struct kevd_error *err)
{
	if (fsync(fd) < 0)
		return kevd_error_sys(err, errno, "writing the snapshot's %s file", name);
	return 0;
}

static int write_state(struct kevd_vm *vm, int dirfd, struct kevd_vm_snapshot_result *res, struct kevd_error *err)
{
	struct kevd_blob all, one;
	cleanup_close int fd = -1;
	int r = 0;

	kevd_blob_init(&all);
	for (unsigned i = 0; r == 0 && i < vm->nparts; i++) {
		const struct kevd_vm_part *p = kevd_vm_part_at(i);

		if (!p->save)
			continue;
		kevd_blob_init(&one);
		r = p->save(vm, vm->part_state[i], &one, err);
		if (r == 0) {
			kevd_blob_put(&all, TAG_PART_NAME, p->name, strlen(p->name));
			kevd_blob_put(&all, TAG_PART_DATA, one.data, one.len);
		}
		if (r == 0 && one.oom)
			r = kevd_error_sys(err, ENOMEM, "vm '%s': snapshot of its %s", vm->name, p->name);
		kevd_blob_free(&one);
	}
	if (r == 0 && all.oom)
		r = kevd_error_sys(err, ENOMEM, "vm '%s': snapshot", vm->name);
	if (r == 0 && (r = fd = create_file(dirfd, KEVD_SNAPSHOT_STATE_FILE, err)) >= 0 &&
	    (r = write_all(fd, all.data, all.len, 0, "state", err)) == 0)
		r = finish_file(fd, KEVD_SNAPSHOT_STATE_FILE, err);
	res->state_bytes = all.len;
	res->state_hash = kevd_hash64(all.data, all.len);
	kevd_blob_free(&all);
	return r < 0 ? r : 0;
}

/* The pages of the snapshot's memory, built while writing it. */
struct page_list {
	struct kevd_image_page *v;
	size_t n, cap;
};

static int list_add(struct page_list *l, uint64_t gfn, const void *page)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct kevd_image_page *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (struct kevd_image_page){ gfn, kevd_hash64(page, KEVD_PAGE_SIZE) };
	return 0;
}

static bool all_zero(const unsigned char *p)
{
	uint64_t acc = 0, w;

	for (size_t i = 0; i < KEVD_PAGE_SIZE; i += 8) {
		memcpy(&w, p + i, 8);
		acc |= w;
	}
	return acc == 0;
}

static bool in_list(const struct kevd_image_page *v, size_t n, uint64_t gfn)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].gfn < gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && v[lo].gfn == gfn;
}

struct mem_writer {
	struct kevd_vm *vm;
	int fd, pagemap;
	struct page_list list;
	const struct kevd_image_page *old;  /* a restored VM's own snapshot pages */
	size_t nold;
	unsigned char *buf;                 /* one page */
	struct kevd_vm_snapshot_result *res;
};

/* One page the restore cannot get from the image: written at its offset. */
static int keep_page(struct mem_writer *w, uint64_t gfn, const void *page, struct kevd_error *err)
{
	if (list_add(&w->list, gfn, page) < 0)
		return kevd_error_sys(err, ENOMEM, "vm '%s': snapshot", w->vm->name);
	return write_all(w->fd, page, KEVD_PAGE_SIZE, (off_t)(gfn << KEVD_PAGE_SHIFT), "memory", err);
}

static int write_region(struct mem_writer *w, uint64_t first_gfn, const unsigned char *host, size_t len,
			struct kevd_error *err)
{
	uint64_t ent[PAGEMAP_BATCH];
	size_t npages = len >> KEVD_PAGE_SHIFT;
	struct kevd_image *img = w->vm->img;

	for (size_t base = 0; base < npages; base += PAGEMAP_BATCH) {
		size_t n = npages - base < PAGEMAP_BATCH ? npages - base : PAGEMAP_BATCH;
		off_t off = (off_t)(((uintptr_t)host >> KEVD_PAGE_SHIFT) + base) * 8;
		ssize_t got = KEVD_RETRY_EINTR(pread(w->pagemap, ent, n * 8, off));

		if (got != (ssize_t)(n * 8))
			return kevd_error_sys(err, got < 0 ? errno : EIO, "vm '%s': reading /proc/self/pagemap",
					      w->vm->name);
		for (size_t i = 0; i < n; i++) {
			uint64_t gfn = first_gfn + base + i;
			const unsigned char *page = host + ((base + i) << KEVD_PAGE_SHIFT);
			bool present = ent[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED);
			bool old = in_list(w->old, w->nold, gfn);
			bool from_image = kevd_image_segment_of(img, gfn) != NULL;
			int r;

			if (old && (!present || (ent[i] & PAGEMAP_FILE))) {
				/* A restored VM's page from its own snapshot that it
				 * never loaded (or never wrote): the new snapshot
				 * cannot refer to the old one's file. */
				if ((r = kevd_image_fill(img, gfn, 1, w->buf, NULL, err)) < 0 ||
				    (r = keep_page(w, gfn, w->buf, err)) < 0)
					return r;
				continue;
			}
			if (!present || (ent[i] & PAGEMAP_FILE)) {
				/* Never touched, or the shared image's page unwritten:
				 * the restore gets it from the image (or as zero). */
				if (from_image)
					w->res->image_pages_left++;
				else
					w->res->zero_pages_left++;
				continue;
			}
			if (!from_image && !old && all_zero(page)) {
				w->res->zero_pages_left++;
				continue;
			}
			if ((r = keep_page(w, gfn, page, err)) < 0)
				return r;
		}
	}
	return 0;
}

static int write_memory(struct kevd_vm *vm, int dirfd, struct kevd_vm_snapshot_result *res, struct kevd_error *err)
{
	struct mem_writer w = { .vm = vm, .fd = -1, .pagemap = -1, .res = res };
	cleanup_close int pfd = -1;
	uint64_t end = vm->high_len ? KEVD_MMIO_HOLE_END + vm->high_len : vm->low_len;
	int r;

	if (vm->restored)
		w.old = kevd_image_overlay_pages(vm->img, &w.nold);
	w.buf = malloc(KEVD_PAGE_SIZE);
	if (!w.buf)
		return kevd_error_sys(err, ENOMEM, "vm '%s': snapshot", vm->name);
	w.pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (w.pagemap < 0) {
		r = kevd_error_sys(err, errno, "vm '%s': /proc/self/pagemap", vm->name);
		goto out;
	}
	if ((r = w.fd = create_file(dirfd, KEVD_SNAPSHOT_MEMORY_FILE, err)) < 0)
		goto out;
	/* The file's size is the end of RAM, so that a page's offset is
	 * its guest-physical address. */
	if (ftruncate(w.fd, (off_t)end) < 0) {
		r = kevd_error_sys(err, errno, "sizing the snapshot's memory file");
		goto out;
	}
	r = write_region(&w, 0, vm->ram_low, vm->low_len, err);
	if (r == 0 && vm->high_len)
		r = write_region(&w, KEVD_MMIO_HOLE_END >> KEVD_PAGE_SHIFT, vm->ram_high, vm->high_len, err);
	if (r == 0)
		r = finish_file(w.fd, KEVD_SNAPSHOT_MEMORY_FILE, err);
	if (r == 0 && (r = pfd = create_file(dirfd, KEVD_SNAPSHOT_PAGES_FILE, err)) >= 0 &&
	    (r = write_all(pfd, w.list.v, w.list.n * sizeof(*w.list.v), 0, "page list", err)) == 0)
		r = finish_file(pfd, KEVD_SNAPSHOT_PAGES_FILE, err);
	res->pages = w.list.n;
	res->pages_hash = kevd_hash64(w.list.v, w.list.n * sizeof(*w.list.v));
out:
	if (w.fd >= 0)
		close(w.fd);
	if (w.pagemap >= 0)
		close(w.pagemap);
	free(w.list.v);
	free(w.buf);
	return r < 0 ? r : 0;
}

int kevd_vm_snapshot_write(struct kevd_vm *vm, int dirfd, struct kevd_vm_snapshot_result *res,
			   struct kevd_error *err)
{
	uint64_t t0 = kevd_now_ns(CLOCK_MONOTONIC);
	enum kevd_vm_state s = kevd_vm_state(vm);
	int r;

	memset(res, 0, sizeof(*res));
	/* Paused, the vCPUs are parked and the pager idle: memory and
	 * registers hold still while they are read. */
	if (s != KEVD_VM_PAUSED || kevd_vm_frozen(vm))
		return kevd_error_set(err, EBUSY, "vm '%s' is %s, not paused", vm->name, kevd_vm_state_name(s));
	r = write_state(vm, dirfd, res, err);
	if (r == 0)
		r = write_memory(vm, dirfd, res, err);
	res->write_ns = kevd_now_ns(CLOCK_MONOTONIC) - t0;
	return r < 0 ? kevd_error_prefix(err, "vm '%s'", vm->name) : 0;
}

void kevd_vm_kernel_identity(struct kevd_vm *vm, struct kevd_image_identity *out)
{
	kevd_image_identity(vm->img, out);
	/* The kernel's, not a restored VM's own snapshot's. */
	out->ovl_dev = out->ovl_ino = out->ovl_size = 0;
	out->ovl_mtime_ns = out->ovl_ctime_ns = 0;
}

bool kevd_vm_restored(const struct kevd_vm *vm)
{
	return vm->restored;
}

const char *kevd_vm_snapshot_name(const struct kevd_vm *vm)
{
	return vm->snapshot;
}

int kevd_vm_restore_memory(struct kevd_vm *vm, struct kevd_error *err)
{
	const struct kevd_vm_restore *rs = vm->cfg.restore;
	struct kevd_image_extent ram[2];
	struct kevd_image_identity id;
	size_t nram = 0;
	int r;

	kevd_image_identity(vm->img, &id);
	if (!kevd_image_identity_equal(&id, rs->kernel_id))
		return kevd_error_set(err, ESTALE, "vm '%s': kernel '%s'%s is not the file the snapshot was taken over (changed since)",
				      vm->name, vm->kernel, vm->initrd ? " or its initrd" : "");
	ram[nram++] = (struct kevd_image_extent){ 0, vm->low_len >> KEVD_PAGE_SHIFT };
	if (vm->high_len)
		ram[nram++] = (struct kevd_image_extent){ KEVD_MMIO_HOLE_END >> KEVD_PAGE_SHIFT,
							  (KEVD_MMIO_HOLE_END + vm->high_len) >> KEVD_PAGE_SHIFT };
	/* The image takes both, also when it fails. */
	r = kevd_image_add_overlay(vm->img, vm->restore_fd, rs->memory_path, ram, nram, vm->restore_pages,
				   rs->npages, err);
	vm->restore_fd = -1;
	vm->restore_pages = NULL;
	return r < 0 ? kevd_error_prefix(err, "vm '%s'", vm->name) : 0;
}

int kevd_vm_restore_parts(struct kevd_vm *vm, struct kevd_error *err)
{
	bool loaded[KEVD_VM_NPARTS] = { false };
	struct kevd_blob_reader rd;
	const void *name, *data;
	size_t nlen, dlen;
	uint32_t tag;
	int r;

	kevd_blob_reader_init(&rd, vm->restore_state, vm->restore_state_len);
	while ((r = kevd_blob_next(&rd, &tag, &name, &nlen)) == 1) {
		unsigned i;

		if (tag != TAG_PART_NAME || kevd_blob_next(&rd, &tag, &data, &dlen) != 1 || tag != TAG_PART_DATA)
			return kevd_error_set(err, EBADMSG, "vm '%s': snapshot state: malformed part record", vm->name);
		for (i = 0; i < vm->nparts; i++) {
			const struct kevd_vm_part *p = kevd_vm_part_at(i);

			if (p->load && strlen(p->name) == nlen && !memcmp(p->name, name, nlen))
				break;
		}
		if (i == vm->nparts || loaded[i])
			return kevd_error_set(err, EBADMSG, "vm '%s': snapshot state: part '%.*s' unknown or given twice",
					      vm->name, (int)(nlen > 64 ? 64 : nlen), (const char *)name);
		loaded[i] = true;
		if ((r = kevd_vm_part_at(i)->load(vm, vm->part_state[i], data, dlen, err)) < 0) {
			/* A value that KVM (or the part) refuses (EINVAL;
			 * E2BIG, ERANGE for a count or size) is the
			 * snapshot's fault as a malformed record is: the VM
			 * that saved it ran, this host will not take it back.
			 * EBADMSG is what the API answers 422 for. */
			if (err->errnum == EINVAL || err->errnum == E2BIG || err->errnum == ERANGE)
				err->errnum = EBADMSG;
			return kevd_error_prefix(err, "vm '%s': snapshot state of its %s", vm->name,
						 kevd_vm_part_at(i)->name);
		}
	}
	if (r < 0)
		return kevd_error_set(err, EBADMSG, "vm '%s': snapshot state is truncated or malformed", vm->name);
	for (unsigned i = 0; i < vm->nparts; i++)
		if (kevd_vm_part_at(i)->load && !loaded[i])
			return kevd_error_set(err, EBADMSG, "vm '%s': snapshot state has nothing for its %s", vm->name,
					      kevd_vm_part_at(i)->name);
	return 0;
}
