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
#include "common/hash.h"
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
	if (r == 0 && img->ovl_fd >= 0)
		r = file_still_valid(img->ovl_fd, &img->ovl_st, img->ovl_path, err);
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

static int fill_segments(const struct kevd_image *img, uint64_t gfn, size_t npages, void *buf,
			 uint64_t *bytes_read, struct kevd_error *err)
{
	uint64_t start = gfn << KEVD_PAGE_SHIFT;
	uint64_t end = start + ((uint64_t)npages << KEVD_PAGE_SHIFT);
	uint64_t pos = start;
	unsigned char *out = buf;
	size_t lo = 0, hi = img->nseg;
	int r;

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
	return 0;
}

/* NPAGES pages of the snapshot's memory from GFN on, every one listed
 * from OVL[0] on: one read, then each page checked. */
static int fill_overlay(const struct kevd_image *img, const struct kevd_image_page *ovl, uint64_t gfn,
			size_t npages, unsigned char *out, uint64_t *bytes_read, struct kevd_error *err)
{
	size_t len = npages << KEVD_PAGE_SHIFT, done = 0;
	uint64_t off = gfn << KEVD_PAGE_SHIFT;

	while (done < len) {
		ssize_t n = KEVD_RETRY_EINTR(pread(img->ovl_fd, out + done, len - done, (off_t)(off + done)));

		if (n < 0)
			return kevd_error_sys(err, errno, "snapshot memory '%s': reading %zu bytes at offset 0x%llx",
					      img->ovl_path, len, (unsigned long long)off);
		if (n == 0)
			return kevd_error_set(err, EBADMSG, "snapshot memory '%s': file ends at offset 0x%llx, inside page 0x%llx (truncated)",
					      img->ovl_path, (unsigned long long)(off + done),
					      (unsigned long long)((off + done) >> KEVD_PAGE_SHIFT));
		done += (size_t)n;
	}
	if (bytes_read)
		*bytes_read += len;
	for (size_t i = 0; i < npages; i++)
		if (kevd_hash64(out + (i << KEVD_PAGE_SHIFT), KEVD_PAGE_SIZE) != ovl[i].hash)
			return kevd_error_set(err, EBADMSG, "snapshot memory '%s': page 0x%llx does not match its checksum (corrupted)",
					      img->ovl_path, (unsigned long long)ovl[i].gfn);
	return 0;
}

int kevd_image_fill(const struct kevd_image *img, uint64_t gfn, size_t npages, void *buf,
		    uint64_t *bytes_read, struct kevd_error *err)
{
	unsigned char *out = buf;
	uint64_t end = gfn + npages;
	size_t lo = 0, hi = img->novl;
	int r = still_valid(img, err);

	/* Runs of pages alike: from the snapshot's file, or from the
	 * kernel's segments (and zeroes). */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (img->ovl[mid].gfn < gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (r == 0 && gfn < end) {
		uint64_t run = gfn;

		if (lo < img->novl && img->ovl[lo].gfn == gfn) {
			size_t first = lo;

			while (run < end && lo < img->novl && img->ovl[lo].gfn == run)
				run++, lo++;
			r = fill_overlay(img, &img->ovl[first], gfn, run - gfn, out, bytes_read, err);
		} else {
			uint64_t next = lo < img->novl && img->ovl[lo].gfn < end ? img->ovl[lo].gfn : end;

			run = next;
			r = fill_segments(img, gfn, run - gfn, out, bytes_read, err);
		}
		out += (run - gfn) << KEVD_PAGE_SHIFT;
		gfn = run;
	}
	/* A truncation that raced the reads above shows in the size now. */
	return r < 0 ? r : still_valid(img, err);
}
