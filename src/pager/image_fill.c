/*
 * Filling guest pages from the image (kevd_image_fill): file bytes to
 * p_filesz, zeroes to p_memsz and between segments.  The pager calls it
 * long after the image was validated, so the file is re-checked (size, mtime
 * and ctime) around every read: a file changed underneath fails the load
 * instead of feeding the guest bytes that were never validated.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "pager/image_internal.h"

static int file_still_valid(int fd, const struct stat *was, const char *path, struct kevd_error *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return kevd_error_sys(err, errno, "image '%s'", path);
	if (st.st_size != was->st_size)
		return kevd_error_set(err, ESTALE, "image '%s': file size changed from %lld to %lld bytes while in use",
				      path, (long long)was->st_size, (long long)st.st_size);
	/* ctime too: a rewrite that put the mtime back still moved it.  But
	 * not a ctime that moved with the link count (the file was deleted,
	 * replaced by a rename or linked: its bytes are what they were, and a
	 * package upgrade must not fail the VMs of the old kernel) or with its
	 * mode or owner (chmod, chown). */
	if (st.st_mtim.tv_sec != was->st_mtim.tv_sec || st.st_mtim.tv_nsec != was->st_mtim.tv_nsec ||
	    ((st.st_ctim.tv_sec != was->st_ctim.tv_sec || st.st_ctim.tv_nsec != was->st_ctim.tv_nsec) &&
	     st.st_nlink == was->st_nlink && st.st_mode == was->st_mode && st.st_uid == was->st_uid &&
	     st.st_gid == was->st_gid))
		return kevd_error_set(err, ESTALE, "image '%s': file was modified while in use", path);
	return 0;
}

static int still_valid(const struct kevd_image *img, struct kevd_error *err)
{
	int r = file_still_valid(img->fd, &img->st, img->path, err);

	if (r == 0 && img->flat_fd >= 0)
		r = file_still_valid(img->flat_fd, &img->flat_st, img->flat_path, err);
	return r;
}

static int read_exact(const struct kevd_image *img, const struct kevd_image_segment *s, void *buf, size_t len,
		      uint64_t off, struct kevd_error *err)
{
	int fd = s->flat ? img->flat_fd : img->fd;
	const char *path = s->flat ? img->flat_path : img->path;

	size_t done = 0;

	while (done < len) {
		ssize_t n = KEVD_RETRY_EINTR(pread(fd, (char *)buf + done, len - done, (off_t)(off + done)));

		if (n < 0)
			return kevd_error_sys(err, errno, "image '%s': reading %zu bytes at offset 0x%llx",
					      path, len, (unsigned long long)off);
		if (n == 0)
			return kevd_error_set(err, ESTALE, "image '%s': file ends at offset 0x%llx, inside %s data (truncated while in use)",
					      path, (unsigned long long)(off + done), s->flat ? "its" : "PT_LOAD");
		done += (size_t)n;
	}
	return 0;
}

int kevd_image_fill(const struct kevd_image *img, uint64_t gfn, size_t npages, void *buf,
		    uint64_t *bytes_read, struct kevd_error *err)
{
	uint64_t start = gfn << KEVD_PAGE_SHIFT;
	uint64_t end = start + ((uint64_t)npages << KEVD_PAGE_SHIFT);
	uint64_t pos = start;
	unsigned char *out = buf;
	size_t lo = 0, hi = img->nseg;
	int r;

	r = still_valid(img, err);
	if (r < 0)
		return r;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (img->seg[mid].paddr.v + img->seg[mid].memsz <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < img->nseg && img->seg[i].paddr.v < end; i++) {
		const struct kevd_image_segment *s = &img->seg[i];
		uint64_t file_end = s->paddr.v + s->filesz, mem_end = s->paddr.v + s->memsz;
		uint64_t a = s->paddr.v > pos ? s->paddr.v : pos;
		uint64_t b = file_end < end ? file_end : end;

		if (a > pos)
			memset(out + (pos - start), 0, a - pos);
		pos = a;
		if (b > a) {
			r = read_exact(img, s, out + (a - start), b - a, s->offset + (a - s->paddr.v), err);
			if (r < 0)
				return r;
			if (bytes_read)
				*bytes_read += b - a;
			pos = b;
		}
		b = mem_end < end ? mem_end : end;
		if (b > pos) {
			memset(out + (pos - start), 0, b - pos);
			pos = b;
		}
	}
	if (end > pos)
		memset(out + (pos - start), 0, end - pos);
	/* A truncation that raced the reads above shows in the size now. */
	return still_valid(img, err);
}
