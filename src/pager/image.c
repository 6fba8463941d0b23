/*
 * ELF kernel image model (see image.h).  libelf parses the headers; every
 * bound libelf does not promise to check (program headers inside the file,
 * segment ranges, overflow, overlap, the MMIO hole) is checked here, so that
 * nothing past kevd_image_open() needs to distrust the headers again.  The
 * file is re-checked (size and mtime) before each read because the pager
 * reads pages long after the open.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "pager/image_internal.h"

#define MB2_MAGIC 0xe85250d6u
#define MB2_SEARCH 32768
#define XEN_NOTE_PHYS32_ENTRY 18
#define MAX_NOTE_BYTES (1u << 20)

static int cmp_seg(const void *a, const void *b)
{
	const struct kevd_image_segment *x = a, *y = b;

	return x->paddr.v < y->paddr.v ? -1 : x->paddr.v > y->paddr.v;
}

static const char *type_name(int t)
{
	switch (t) {
	case ET_NONE: return "ET_NONE";
	case ET_REL: return "ET_REL (an object file)";
	case ET_DYN: return "ET_DYN (position-independent)";
	case ET_CORE: return "ET_CORE";
	default: return "unknown";
	}
}

static int check_segment(struct kevd_image *img, const GElf_Phdr *ph, unsigned idx,
			 uint64_t fsize, struct kevd_error *err)
{
	const char *p = img->path;
	uint64_t end;

	if (ph->p_filesz > ph->p_memsz)
		return kevd_error_set(err, EINVAL, "image '%s': PT_LOAD %u: p_filesz 0x%llx exceeds p_memsz 0x%llx",
				      p, idx, (unsigned long long)ph->p_filesz, (unsigned long long)ph->p_memsz);
	if (__builtin_add_overflow(ph->p_offset, ph->p_filesz, &end))
		return kevd_error_set(err, EINVAL, "image '%s': PT_LOAD %u: p_offset 0x%llx + p_filesz 0x%llx overflows",
				      p, idx, (unsigned long long)ph->p_offset, (unsigned long long)ph->p_filesz);
	if (end > fsize)
		return kevd_error_set(err, EINVAL, "image '%s': PT_LOAD %u: file range 0x%llx-0x%llx ends past the end of the file (%llu bytes)",
				      p, idx, (unsigned long long)ph->p_offset, (unsigned long long)end,
				      (unsigned long long)fsize);
	if (__builtin_add_overflow(ph->p_paddr, ph->p_memsz, &end))
		return kevd_error_set(err, EINVAL, "image '%s': PT_LOAD %u: p_paddr 0x%llx + p_memsz 0x%llx overflows",
				      p, idx, (unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz);
	if (end > KEVD_GPA_LIMIT)
		return kevd_error_set(err, EINVAL, "image '%s': PT_LOAD %u: physical range 0x%llx-0x%llx is above the guest-physical limit 0x%llx",
				      p, idx, (unsigned long long)ph->p_paddr, (unsigned long long)end,
				      (unsigned long long)KEVD_GPA_LIMIT);
	if (ph->p_paddr < KEVD_MMIO_HOLE_END && end > KEVD_MMIO_HOLE_START)
		return kevd_error_set(err, EINVAL, "image '%s': PT_LOAD %u: physical range 0x%llx-0x%llx overlaps the MMIO hole 0x%llx-0x%llx",
				      p, idx, (unsigned long long)ph->p_paddr, (unsigned long long)end,
				      (unsigned long long)KEVD_MMIO_HOLE_START, (unsigned long long)KEVD_MMIO_HOLE_END);
	if (__builtin_add_overflow(ph->p_vaddr, ph->p_memsz, &end))
		return kevd_error_set(err, EINVAL, "image '%s': PT_LOAD %u: p_vaddr 0x%llx + p_memsz 0x%llx overflows",
				      p, idx, (unsigned long long)ph->p_vaddr, (unsigned long long)ph->p_memsz);
	return 0;
}

/* Notes are parsed by hand from a bounded buffer: only PVH's entry is needed
 * and libelf's note iterator trusts sizes we would have to check anyway. */
static int read_notes(struct kevd_image *img, const GElf_Phdr *ph, unsigned idx, uint64_t fsize,
		      struct kevd_error *err)
{
	cleanup_free unsigned char *buf = NULL;
	uint64_t end, pos = 0, len = ph->p_filesz;
	ssize_t n;

	if (__builtin_add_overflow(ph->p_offset, ph->p_filesz, &end) || end > fsize)
		return kevd_error_set(err, EINVAL, "image '%s': PT_NOTE %u: file range ends past the end of the file",
				      img->path, idx);
	if (len == 0)
		return 0;
	if (len > MAX_NOTE_BYTES)
		return kevd_error_set(err, EINVAL, "image '%s': PT_NOTE %u: %llu bytes of notes is more than %u",
				      img->path, idx, (unsigned long long)len, MAX_NOTE_BYTES);
	buf = malloc(len);
	if (!buf)
		return kevd_error_sys(err, ENOMEM, "image '%s'", img->path);
	n = KEVD_RETRY_EINTR(pread(img->fd, buf, len, (off_t)ph->p_offset));
	if (n < 0)
		return kevd_error_sys(err, errno, "image '%s': reading PT_NOTE %u", img->path, idx);
	if ((uint64_t)n != len)
		return kevd_error_set(err, EIO, "image '%s': PT_NOTE %u: short read", img->path, idx);
	while (len - pos >= 12) {
		uint32_t namesz, descsz, type;
		uint64_t name_off, desc_off, next;

		memcpy(&namesz, buf + pos, 4);
		memcpy(&descsz, buf + pos + 4, 4);
		memcpy(&type, buf + pos + 8, 4);
		name_off = pos + 12;
		desc_off = name_off + (((uint64_t)namesz + 3) & ~3ull);
		next = desc_off + (((uint64_t)descsz + 3) & ~3ull);
		if (desc_off > len || next > len)
			return kevd_error_set(err, EINVAL, "image '%s': PT_NOTE %u: note at offset %llu runs past the segment",
					      img->path, idx, (unsigned long long)pos);
		if (namesz == 6 && memcmp(buf + name_off, "Linux", 6) == 0)
			img->is_linux = true;
		if (namesz == 4 && memcmp(buf + name_off, "Xen", 4) == 0 && type == XEN_NOTE_PHYS32_ENTRY) {
			uint64_t e = 0;

			if (descsz == 4) {
				uint32_t e32;
				memcpy(&e32, buf + desc_off, 4);
				e = e32;
			} else if (descsz == 8) {
				memcpy(&e, buf + desc_off, 8);
			} else {
				return kevd_error_set(err, EINVAL, "image '%s': PT_NOTE %u: Xen PHYS32_ENTRY note has a %u-byte value",
						      img->path, idx, descsz);
			}
			if (e >= (1ull << 32))
				return kevd_error_set(err, EINVAL, "image '%s': PT_NOTE %u: PVH entry 0x%llx is not a 32-bit address",
						      img->path, idx, (unsigned long long)e);
			img->has_pvh = true;
			img->pvh_entry = KEVD_GPA(e);
		}
		pos = next;
	}
	return 0;
}

static int find_multiboot2(struct kevd_image *img, uint64_t fsize, struct kevd_error *err)
{
	uint32_t buf[MB2_SEARCH / 4];
	size_t want = fsize < MB2_SEARCH ? (size_t)fsize : MB2_SEARCH;
	ssize_t n = KEVD_RETRY_EINTR(pread(img->fd, buf, want, 0));

	if (n < 0)
		return kevd_error_sys(err, errno, "image '%s': reading the multiboot2 search area", img->path);
	/* The header is 8-byte aligned: magic, architecture, length, checksum. */
	for (size_t i = 0; i + 4 <= (size_t)n / 4; i += 2) {
		if (buf[i] != MB2_MAGIC)
			continue;
		if ((uint32_t)(buf[i] + buf[i + 1] + buf[i + 2] + buf[i + 3]) != 0)
			continue;
		if (buf[i + 1] != 0)  /* architecture 0: i386 protected mode */
			continue;
		img->has_mb2 = true;
		img->mb2_offset = i * 4;
		return 0;
	}
	return 0;
}

static int find_entry(struct kevd_image *img, struct kevd_error *err)
{
	for (size_t i = 0; i < img->nseg; i++) {
		const struct kevd_image_segment *s = &img->seg[i];

		if (img->elf_entry >= s->vaddr && img->elf_entry - s->vaddr < s->memsz) {
			img->entry = KEVD_GPA(img->elf_entry - s->vaddr + s->paddr.v);
			return 0;
		}
	}
	for (size_t i = 0; i < img->nseg; i++) {
		const struct kevd_image_segment *s = &img->seg[i];

		if (img->elf_entry >= s->paddr.v && img->elf_entry - s->paddr.v < s->memsz) {
			img->entry = KEVD_GPA(img->elf_entry);
			return 0;
		}
	}
	return kevd_error_set(err, EINVAL, "image '%s': entry point 0x%llx is outside every PT_LOAD segment",
			      img->path, (unsigned long long)img->elf_entry);
}

static int build_extents(struct kevd_image *img, struct kevd_error *err)
{
	img->ext = calloc(img->nseg, sizeof(*img->ext));
	if (!img->ext)
		return kevd_error_sys(err, ENOMEM, "image '%s'", img->path);
	img->n_ext = 0;
	img->pages = 0;
	for (size_t i = 0; i < img->nseg; i++) {
		const struct kevd_image_segment *s = &img->seg[i];
		struct kevd_image_extent *last = img->n_ext ? &img->ext[img->n_ext - 1] : NULL;

		if (s->first_gfn == s->end_gfn)
			continue;
		if (last && s->first_gfn <= last->end_gfn) {
			if (s->end_gfn > last->end_gfn)
				last->end_gfn = s->end_gfn;
		} else {
			img->ext[img->n_ext++] = (struct kevd_image_extent){ s->first_gfn, s->end_gfn };
		}
	}
	for (size_t i = 0; i < img->n_ext; i++)
		img->pages += img->ext[i].end_gfn - img->ext[i].first_gfn;
	return 0;
}

/* libelf reports a short or foreign header only as "not ELF"; look at the
 * identification first so the message says what is wrong. */
static int check_ident(struct kevd_image *img, struct kevd_error *err)
{
	unsigned char id[EI_NIDENT];
	uint64_t fsize = (uint64_t)img->st.st_size;
	ssize_t n = KEVD_RETRY_EINTR(pread(img->fd, id, sizeof(id), 0));
	size_t ehsize;

	if (n < 0)
		return kevd_error_sys(err, errno, "image '%s'", img->path);
	if (n < SELFMAG || memcmp(id, ELFMAG, SELFMAG) != 0)
		return kevd_error_set(err, ENOEXEC, "image '%s': not an ELF file", img->path);
	if (n < EI_NIDENT)
		return kevd_error_set(err, ENOEXEC, "image '%s': ELF identification is truncated (%zd bytes)",
				      img->path, n);
	if (id[EI_CLASS] != ELFCLASS64 && id[EI_CLASS] != ELFCLASS32)
		return kevd_error_set(err, ENOEXEC, "image '%s': unknown ELF class %u", img->path, id[EI_CLASS]);
	if (id[EI_DATA] != ELFDATA2LSB)
		return kevd_error_set(err, ENOEXEC, "image '%s': not a little-endian ELF (EI_DATA %u)",
				      img->path, id[EI_DATA]);
	ehsize = id[EI_CLASS] == ELFCLASS64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	if (fsize < ehsize)
		return kevd_error_set(err, ENOEXEC, "image '%s': ELF header is truncated (%llu of %zu bytes)",
				      img->path, (unsigned long long)fsize, ehsize);
	return 0;
}

/* The ELF header: class and machine, ET_EXEC, program headers inside the
 * file.  Their count goes to *PHNUM. */
static int check_header(struct kevd_image *img, Elf *elf, size_t *phnum, struct kevd_error *err)
{
	const char *p = img->path;
	uint64_t fsize = (uint64_t)img->st.st_size;
	unsigned char *ident;
	GElf_Ehdr eh;
	size_t phsize;
	uint64_t phend;

	if (elf_kind(elf) != ELF_K_ELF)
		return kevd_error_set(err, ENOEXEC, "image '%s': ELF header is invalid: %s", p, elf_errmsg(-1));
	ident = (unsigned char *)elf_getident(elf, NULL);
	if (!ident)
		return kevd_error_set(err, ENOEXEC, "image '%s': ELF identification unreadable", p);
	if (!gelf_getehdr(elf, &eh))
		return kevd_error_set(err, ENOEXEC, "image '%s': ELF header is truncated or invalid: %s", p, elf_errmsg(-1));
	if (ident[EI_CLASS] == ELFCLASS64 && eh.e_machine != EM_X86_64)
		return kevd_error_set(err, ENOEXEC, "image '%s': ELF64 for machine %u, not x86-64", p, eh.e_machine);
	if (ident[EI_CLASS] == ELFCLASS32 && eh.e_machine != EM_386)
		return kevd_error_set(err, ENOEXEC, "image '%s': ELF32 for machine %u, not i386", p, eh.e_machine);
	img->class = ident[EI_CLASS] == ELFCLASS64 ? KEVD_IMAGE_ELF64 : KEVD_IMAGE_ELF32;
	if (eh.e_type != ET_EXEC)
		return kevd_error_set(err, ENOEXEC, "image '%s': e_type is %s, not ET_EXEC", p, type_name(eh.e_type));
	phsize = img->class == KEVD_IMAGE_ELF64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	if (eh.e_phnum == 0)
		return kevd_error_set(err, ENOEXEC, "image '%s': no program headers", p);
	if (eh.e_phnum == PN_XNUM)
		return kevd_error_set(err, ENOEXEC, "image '%s': extended program header numbering (PN_XNUM) is not supported", p);
	if (eh.e_phentsize != phsize)
		return kevd_error_set(err, ENOEXEC, "image '%s': e_phentsize %u, expected %zu", p, eh.e_phentsize, phsize);
	*phnum = eh.e_phnum;
	if (__builtin_add_overflow(eh.e_phoff, (uint64_t)*phnum * phsize, &phend) || phend > fsize)
		return kevd_error_set(err, ENOEXEC, "image '%s': program headers (offset 0x%llx, %zu entries) run past the end of the file (%llu bytes)",
				      p, (unsigned long long)eh.e_phoff, *phnum, (unsigned long long)fsize);
	img->elf_entry = eh.e_entry;
	return 0;
}

/* Every program header: notes read, PT_LOADs checked and, with memory,
 * kept as segments; then sorted by p_paddr and checked for overlaps. */
static int read_segments(struct kevd_image *img, Elf *elf, size_t phnum, struct kevd_error *err)
{
	const char *p = img->path;
	uint64_t fsize = (uint64_t)img->st.st_size;
	size_t nload = 0;

	img->seg = calloc(phnum, sizeof(*img->seg));
	if (!img->seg)
		return kevd_error_sys(err, ENOMEM, "image '%s'", p);
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;
		int r;

		if (!gelf_getphdr(elf, (int)i, &ph))
			return kevd_error_set(err, ENOEXEC, "image '%s': program header %zu unreadable: %s", p, i, elf_errmsg(-1));
		if (ph.p_type == PT_NOTE) {
			r = read_notes(img, &ph, (unsigned)i, fsize, err);
			if (r < 0)
				return r;
			continue;
		}
		if (ph.p_type != PT_LOAD)
			continue;
		r = check_segment(img, &ph, (unsigned)i, fsize, err);
		if (r < 0)
			return r;
		nload++;
		if (ph.p_memsz == 0)
			continue;
		img->seg[img->nseg++] = (struct kevd_image_segment){
			.phdr_index = (unsigned)i, .paddr = KEVD_GPA(ph.p_paddr), .vaddr = ph.p_vaddr,
			.offset = ph.p_offset, .filesz = ph.p_filesz, .memsz = ph.p_memsz, .flags = ph.p_flags,
			.first_gfn = ph.p_paddr >> KEVD_PAGE_SHIFT,
			.end_gfn = kevd_page_up(ph.p_paddr + ph.p_memsz) >> KEVD_PAGE_SHIFT,
		};
	}
	if (nload == 0 || img->nseg == 0)
		return kevd_error_set(err, ENOEXEC, "image '%s': no PT_LOAD segment with memory", p);
	qsort(img->seg, img->nseg, sizeof(*img->seg), cmp_seg);
	for (size_t i = 1; i < img->nseg; i++) {
		const struct kevd_image_segment *a = &img->seg[i - 1], *b = &img->seg[i];

		if (a->paddr.v + a->memsz > b->paddr.v)
			return kevd_error_set(err, ENOEXEC, "image '%s': PT_LOAD %u (0x%llx-0x%llx) overlaps PT_LOAD %u (0x%llx-0x%llx)",
					      p, a->phdr_index, (unsigned long long)a->paddr.v,
					      (unsigned long long)(a->paddr.v + a->memsz), b->phdr_index,
					      (unsigned long long)b->paddr.v, (unsigned long long)(b->paddr.v + b->memsz));
	}
	return 0;
}

static int validate(struct kevd_image *img, Elf *elf, struct kevd_error *err)
{
	size_t phnum = 0;
	int r;

	if ((r = check_header(img, elf, &phnum, err)) < 0 || (r = read_segments(img, elf, phnum, err)) < 0)
		return r;
	if (find_entry(img, err) < 0)
		return -ENOEXEC;
	if (find_multiboot2(img, (uint64_t)img->st.st_size, err) < 0)
		return -EIO;
	return build_extents(img, err);
}

int kevd_image_open_fd(int fd, const char *path, struct kevd_image **out, struct kevd_error *err)
{
	struct kevd_image *img;
	Elf *elf;
	int r;

	if (elf_version(EV_CURRENT) == EV_NONE) {
		close(fd);
		return kevd_error_set(err, ENOSYS, "libelf: %s", elf_errmsg(-1));
	}
	img = calloc(1, sizeof(*img));
	if (!img) {
		close(fd);
		return kevd_error_sys(err, ENOMEM, "image '%s'", path);
	}
	img->fd = fd;
	img->flat_fd = -1;
	img->ovl_fd = -1;
	img->refs = 1;
	img->path = strdup(path);
	if (!img->path) {
		kevd_image_free(img);
		return kevd_error_sys(err, ENOMEM, "image '%s'", path);
	}
	if (fstat(img->fd, &img->st) < 0) {
		r = kevd_error_sys(err, errno, "image '%s'", path);
		kevd_image_free(img);
		return r;
	}
	if (!S_ISREG(img->st.st_mode)) {
		kevd_image_free(img);
		return kevd_error_set(err, EINVAL, "image '%s': not a regular file", path);
	}
	r = check_ident(img, err);
	if (r < 0) {
		kevd_image_free(img);
		return r;
	}
	elf = elf_begin(img->fd, ELF_C_READ, NULL);
	if (!elf) {
		kevd_image_free(img);
		return kevd_error_set(err, ENOEXEC, "image '%s': not an ELF file (%s)", path, elf_errmsg(-1));
	}
	r = validate(img, elf, err);
	elf_end(elf);
	if (r < 0) {
		kevd_image_free(img);
		return r;
	}
	*out = img;
	return 0;
}

int kevd_image_open(const char *path, struct kevd_image **out, struct kevd_error *err)
{
	/* O_NONBLOCK so that a FIFO cannot block the open; it is rejected as
	 * not a regular file. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return kevd_error_sys(err, errno, "image '%s'", path);
	return kevd_image_open_fd(fd, path, out, err);
}

struct kevd_image *kevd_image_ref(struct kevd_image *img)
{
	__atomic_add_fetch(&img->refs, 1, __ATOMIC_RELAXED);
	return img;
}

void kevd_image_free(struct kevd_image *img)
{
	/* The last holder frees; acq_rel so that its frees see every other
	 * holder's last use. */
	if (!img || __atomic_sub_fetch(&img->refs, 1, __ATOMIC_ACQ_REL))
		return;
	if (img->fd >= 0)
		close(img->fd);
	if (img->flat_fd >= 0)
		close(img->flat_fd);
	free(img->flat_path);
	if (img->ovl_fd >= 0)
		close(img->ovl_fd);
	free(img->ovl_path);
	free(img->ovl);
	free(img->seg);
	free(img->ext);
	free(img->path);
	free(img);
}

const char *kevd_image_path(const struct kevd_image *img) { return img->path; }
enum kevd_image_class kevd_image_class(const struct kevd_image *img) { return img->class; }
uint64_t kevd_image_file_size(const struct kevd_image *img) { return (uint64_t)img->st.st_size; }

void kevd_image_identity(const struct kevd_image *img, struct kevd_image_identity *id)
{
	*id = (struct kevd_image_identity){
		.dev = (uint64_t)img->st.st_dev, .ino = (uint64_t)img->st.st_ino, .size = (uint64_t)img->st.st_size,
		.mtime_ns = (int64_t)img->st.st_mtim.tv_sec * 1000000000 + img->st.st_mtim.tv_nsec,
		.ctime_ns = (int64_t)img->st.st_ctim.tv_sec * 1000000000 + img->st.st_ctim.tv_nsec,
	};
	if (img->flat_fd >= 0) {
		id->flat_dev = (uint64_t)img->flat_st.st_dev;
		id->flat_ino = (uint64_t)img->flat_st.st_ino;
		id->flat_size = (uint64_t)img->flat_st.st_size;
		id->flat_gpa = img->flat_gpa;
		id->flat_mtime_ns = (int64_t)img->flat_st.st_mtim.tv_sec * 1000000000 + img->flat_st.st_mtim.tv_nsec;
		id->flat_ctime_ns = (int64_t)img->flat_st.st_ctim.tv_sec * 1000000000 + img->flat_st.st_ctim.tv_nsec;
	}
	if (img->ovl_fd >= 0) {
		id->ovl_dev = (uint64_t)img->ovl_st.st_dev;
		id->ovl_ino = (uint64_t)img->ovl_st.st_ino;
		id->ovl_size = (uint64_t)img->ovl_st.st_size;
		id->ovl_mtime_ns = (int64_t)img->ovl_st.st_mtim.tv_sec * 1000000000 + img->ovl_st.st_mtim.tv_nsec;
		id->ovl_ctime_ns = (int64_t)img->ovl_st.st_ctim.tv_sec * 1000000000 + img->ovl_st.st_ctim.tv_nsec;
	}
}

/* FNV-1a over the identity: a short, stable name for labels, URLs and
 * files. */
void kevd_image_identity_digest(const struct kevd_image_identity *id, char out[17])
{
	const uint64_t words[] = {
		id->dev, id->ino, id->size, (uint64_t)id->mtime_ns, (uint64_t)id->ctime_ns,
		id->flat_dev, id->flat_ino, id->flat_size, id->flat_gpa, (uint64_t)id->flat_mtime_ns,
		(uint64_t)id->flat_ctime_ns, id->ovl_dev, id->ovl_ino, id->ovl_size, (uint64_t)id->ovl_mtime_ns,
		(uint64_t)id->ovl_ctime_ns,
	};
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
		for (unsigned b = 0; b < 64; b += 8) {
			h ^= (words[w] >> b) & 0xff;
			h *= 0x100000001b3ull;
		}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

const char *kevd_image_overlay_path(const struct kevd_image *img)
{
	return img->ovl_fd >= 0 ? img->ovl_path : NULL;
}

const struct kevd_image_page *kevd_image_overlay_pages(const struct kevd_image *img, size_t *n)
{
	*n = img->novl;
	return img->ovl;
}

int kevd_image_add_overlay(struct kevd_image *img, int fd, const char *path, const struct kevd_image_extent *ram,
			   size_t nram, struct kevd_image_page *pages, size_t npages, struct kevd_error *err)
{
	struct kevd_image_extent *ext = NULL;
	uint64_t total = 0;
	size_t j = 0;
	int r = 0;

	if (img->ovl_fd >= 0)
		r = kevd_error_set(err, EBUSY, "image '%s': already has a snapshot's memory", img->path);
	for (size_t i = 0; r == 0 && i < nram; i++)
		if (ram[i].end_gfn <= ram[i].first_gfn || (i && ram[i].first_gfn < ram[i - 1].end_gfn))
			r = kevd_error_set(err, EINVAL, "image '%s': RAM ranges not sorted or empty", img->path);
	/* Every listed page inside RAM, in order, once. */
	for (size_t i = 0; r == 0 && i < npages; i++) {
		while (j < nram && pages[i].gfn >= ram[j].end_gfn)
			j++;
		if (j == nram || pages[i].gfn < ram[j].first_gfn || (i && pages[i].gfn <= pages[i - 1].gfn))
			r = kevd_error_set(err, EINVAL, "snapshot memory '%s': page 0x%llx is out of order or outside RAM",
					   path, (unsigned long long)pages[i].gfn);
	}
	if (r == 0 && (!(img->ovl_path = strdup(path)) || !(ext = calloc(nram ? nram : 1, sizeof(*ext)))))
		r = kevd_error_sys(err, ENOMEM, "image '%s'", img->path);
	if (r == 0 && fstat(fd, &img->ovl_st) < 0)
		r = kevd_error_sys(err, errno, "snapshot memory '%s'", path);
	if (r < 0) {
		free(ext);
		free(pages);
		close(fd);
		return r;
	}
	for (size_t i = 0; i < nram; i++) {
		ext[i] = ram[i];
		total += ram[i].end_gfn - ram[i].first_gfn;
	}
	free(img->ext);
	img->ext = ext;
	img->n_ext = nram;
	img->pages = total;
	img->ovl = pages;
	img->novl = npages;
	img->ovl_fd = fd;
	return 0;
}

const char *kevd_image_flat_path(const struct kevd_image *img)
{
	return img->flat_fd >= 0 ? img->flat_path : NULL;
}

int kevd_image_add_flat(struct kevd_image *img, int fd, const char *path, kevd_gpa_t gpa, uint64_t size,
			struct kevd_error *err)
{
	struct kevd_image_segment *seg, s = {
		.phdr_index = UINT32_MAX, .paddr = gpa, .vaddr = gpa.v, .offset = 0, .filesz = size, .memsz = size,
		.flags = 4 /* PF_R */, .flat = true,
	};
	struct kevd_image_extent *old_ext = img->ext;
	size_t old_n_ext = img->n_ext;
	uint64_t old_pages = img->pages;
	int r;

	if (img->flat_fd >= 0) {
		close(fd);
		return kevd_error_set(err, EBUSY, "image '%s': already has a flat part", img->path);
	}
	if (gpa.v & KEVD_PAGE_MASK || size == 0 || __builtin_add_overflow(gpa.v, size, &s.end_gfn)) {
		close(fd);
		return kevd_error_set(err, EINVAL, "image '%s': flat part '%s' at 0x%llx is not page aligned or empty",
				      img->path, path, (unsigned long long)gpa.v);
	}
	s.first_gfn = gpa.v >> KEVD_PAGE_SHIFT;
	s.end_gfn = (gpa.v + size + KEVD_PAGE_SIZE - 1) >> KEVD_PAGE_SHIFT;
	for (size_t i = 0; i < img->nseg; i++)
		if (s.first_gfn < img->seg[i].end_gfn && img->seg[i].first_gfn < s.end_gfn) {
			close(fd);
			return kevd_error_set(err, EINVAL, "image '%s': '%s' at 0x%llx overlaps PT_LOAD %u", img->path, path,
					      (unsigned long long)gpa.v, img->seg[i].phdr_index);
		}
	img->flat_path = strdup(path);
	seg = realloc(img->seg, (img->nseg + 1) * sizeof(*seg));
	if (!img->flat_path || !seg) {
		close(fd);
		if (seg)
			img->seg = seg;
		return kevd_error_sys(err, ENOMEM, "image '%s'", img->path);
	}
	img->seg = seg;
	if (fstat(fd, &img->flat_st) < 0) {
		r = kevd_error_sys(err, errno, "'%s'", path);
		close(fd);
		return r;
	}
	img->seg[img->nseg++] = s;
	qsort(img->seg, img->nseg, sizeof(*img->seg), cmp_seg);
	img->ext = NULL;
	r = build_extents(img, err);
	if (r < 0) {
		/* Back to the image it was: the flat segment out again. */
		for (size_t i = 0, j = 0; i < img->nseg; i++)
			if (!img->seg[i].flat)
				img->seg[j++] = img->seg[i];
		img->nseg--;
		img->ext = old_ext;
		img->n_ext = old_n_ext;
		img->pages = old_pages;
		close(fd);
		return r;
	}
	free(old_ext);
	img->flat_fd = fd;
	img->flat_gpa = gpa.v;
	return 0;
}

bool kevd_image_identity_equal(const struct kevd_image_identity *a, const struct kevd_image_identity *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns && a->flat_dev == b->flat_dev && a->flat_ino == b->flat_ino &&
	       a->flat_size == b->flat_size && a->flat_gpa == b->flat_gpa && a->flat_mtime_ns == b->flat_mtime_ns &&
	       a->flat_ctime_ns == b->flat_ctime_ns && a->ovl_dev == b->ovl_dev && a->ovl_ino == b->ovl_ino &&
	       a->ovl_size == b->ovl_size && a->ovl_mtime_ns == b->ovl_mtime_ns && a->ovl_ctime_ns == b->ovl_ctime_ns;
}
size_t kevd_image_segment_count(const struct kevd_image *img) { return img->nseg; }
size_t kevd_image_extent_count(const struct kevd_image *img) { return img->n_ext; }
uint64_t kevd_image_pages(const struct kevd_image *img) { return img->pages; }
kevd_gpa_t kevd_image_entry(const struct kevd_image *img) { return img->entry; }
uint64_t kevd_image_elf_entry(const struct kevd_image *img) { return img->elf_entry; }

const struct kevd_image_segment *kevd_image_segment(const struct kevd_image *img, size_t i)
{
	return i < img->nseg ? &img->seg[i] : NULL;
}

const struct kevd_image_extent *kevd_image_extent(const struct kevd_image *img, size_t i)
{
	return i < img->n_ext ? &img->ext[i] : NULL;
}

const struct kevd_image_segment *kevd_image_segment_of(const struct kevd_image *img, uint64_t gfn)
{
	size_t lo = 0, hi = img->nseg;

	/* First segment whose pages end after GFN. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (img->seg[mid].end_gfn <= gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < img->nseg && img->seg[lo].first_gfn <= gfn)
		return &img->seg[lo];
	return NULL;
}

const struct kevd_image_extent *kevd_image_extent_of(const struct kevd_image *img, uint64_t gfn)
{
	size_t lo = 0, hi = img->n_ext;

	/* First extent whose pages end after GFN. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (img->ext[mid].end_gfn <= gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < img->n_ext && img->ext[lo].first_gfn <= gfn)
		return &img->ext[lo];
	return NULL;
}

/* The extents, not the segments: with a snapshot's memory every page of
 * RAM is the image's, in or outside the kernel's segments. */
bool kevd_image_has_page(const struct kevd_image *img, uint64_t gfn)
{
	return kevd_image_extent_of(img, gfn) != NULL;
}

bool kevd_image_pvh_entry(const struct kevd_image *img, kevd_gpa_t *entry)
{
	if (img->has_pvh && entry)
		*entry = img->pvh_entry;
	return img->has_pvh;
}

bool kevd_image_is_linux(const struct kevd_image *img)
{
	return img->is_linux;
}

bool kevd_image_multiboot2(const struct kevd_image *img, uint64_t *file_offset)
{
	if (img->has_mb2 && file_offset)
		*file_offset = img->mb2_offset;
	return img->has_mb2;
}

int kevd_image_check_ram(const struct kevd_image *img, uint64_t ram_bytes, struct kevd_error *err)
{
	uint64_t low = ram_bytes < KEVD_MMIO_HOLE_START ? ram_bytes : KEVD_MMIO_HOLE_START;
	uint64_t high_end = KEVD_MMIO_HOLE_END + (ram_bytes - low);

	for (size_t i = 0; i < img->nseg; i++) {
		const struct kevd_image_segment *s = &img->seg[i];
		uint64_t end = s->paddr.v + s->memsz;
		bool in_low = end <= low;
		bool in_high = ram_bytes > low && s->paddr.v >= KEVD_MMIO_HOLE_END && end <= high_end;

		if (!in_low && !in_high)
			return kevd_error_set(err, ERANGE, "image '%s': PT_LOAD %u (0x%llx-0x%llx) does not fit in %llu MiB of guest RAM",
					      img->path, s->phdr_index, (unsigned long long)s->paddr.v,
					      (unsigned long long)end, (unsigned long long)(ram_bytes >> 20));
	}
	return 0;
}
