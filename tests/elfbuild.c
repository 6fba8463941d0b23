/* Writes test ELF images (see elfbuild.h). */
#include "config.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elfbuild.h"

static int fill_pattern(int fd, uint64_t size)
{
	unsigned char buf[65536];
	uint64_t off = 0;

	while (off < size) {
		size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = elfbuild_byte(off + i);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			return -errno;
		off += n;
	}
	return 0;
}

int elfbuild_write(const struct eb_elf *e, const char *path)
{
	int cls = e->elfclass ? e->elfclass : 64;
	size_t ehsize = cls == 64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	size_t phsz = cls == 64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	uint64_t phoff = e->phoff ? e->phoff : ehsize;
	int phnum = e->phnum >= 0 ? e->phnum : (int)e->nseg;
	uint64_t size = e->file_size;
	unsigned char ident[EI_NIDENT] = { 0 };
	int fd, r = 0;

	if (!size) {
		size = phoff + phsz * e->nseg;
		for (size_t i = 0; i < e->nseg; i++)
			if (e->seg[i].offset + e->seg[i].filesz > size &&
			    e->seg[i].offset + e->seg[i].filesz < (1ull << 32))
				size = e->seg[i].offset + e->seg[i].filesz;
		if (e->blob && e->blob_off + e->blob_len > size)
			size = e->blob_off + e->blob_len;
	}
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if ((r = fill_pattern(fd, size)) < 0)
		goto out;
	memcpy(ident, ELFMAG, SELFMAG);
	ident[EI_CLASS] = e->ident_class ? e->ident_class : (cls == 64 ? ELFCLASS64 : ELFCLASS32);
	ident[EI_DATA] = e->ident_data ? e->ident_data : ELFDATA2LSB;
	ident[EI_VERSION] = EV_CURRENT;
	if (cls == 64) {
		Elf64_Ehdr h = { 0 };

		memcpy(h.e_ident, ident, EI_NIDENT);
		h.e_type = e->type ? e->type : ET_EXEC;
		h.e_machine = e->machine ? e->machine : EM_X86_64;
		h.e_version = EV_CURRENT;
		h.e_entry = e->entry;
		h.e_phoff = phoff;
		h.e_ehsize = sizeof(h);
		h.e_phentsize = e->phentsize ? (uint16_t)e->phentsize : sizeof(Elf64_Phdr);
		h.e_phnum = (uint16_t)phnum;
		if (size >= sizeof(h) && pwrite(fd, &h, sizeof(h), 0) != sizeof(h))
			r = -errno;
		else if (size < sizeof(h) && pwrite(fd, &h, size, 0) != (ssize_t)size)
			r = -errno;
		for (size_t i = 0; !r && phoff < size && i < e->nseg && phoff + (i + 1) * phsz <= size; i++) {
			Elf64_Phdr p = {
				.p_type = e->seg[i].type, .p_flags = e->seg[i].flags,
				.p_offset = e->seg[i].offset, .p_vaddr = e->seg[i].vaddr,
				.p_paddr = e->seg[i].paddr, .p_filesz = e->seg[i].filesz,
				.p_memsz = e->seg[i].memsz, .p_align = 4096,
			};
			if (pwrite(fd, &p, sizeof(p), (off_t)(phoff + i * phsz)) != sizeof(p))
				r = -errno;
		}
	} else {
		Elf32_Ehdr h = { 0 };

		memcpy(h.e_ident, ident, EI_NIDENT);
		h.e_type = e->type ? e->type : ET_EXEC;
		h.e_machine = e->machine ? e->machine : EM_386;
		h.e_version = EV_CURRENT;
		h.e_entry = (uint32_t)e->entry;
		h.e_phoff = (uint32_t)phoff;
		h.e_ehsize = sizeof(h);
		h.e_phentsize = e->phentsize ? (uint16_t)e->phentsize : sizeof(Elf32_Phdr);
		h.e_phnum = (uint16_t)phnum;
		if (pwrite(fd, &h, size < sizeof(h) ? size : sizeof(h), 0) < 0)
			r = -errno;
		for (size_t i = 0; !r && phoff < size && i < e->nseg && phoff + (i + 1) * phsz <= size; i++) {
			Elf32_Phdr p = {
				.p_type = e->seg[i].type, .p_flags = e->seg[i].flags,
				.p_offset = (uint32_t)e->seg[i].offset, .p_vaddr = (uint32_t)e->seg[i].vaddr,
				.p_paddr = (uint32_t)e->seg[i].paddr, .p_filesz = (uint32_t)e->seg[i].filesz,
				.p_memsz = (uint32_t)e->seg[i].memsz, .p_align = 4096,
			};
			if (pwrite(fd, &p, sizeof(p), (off_t)(phoff + i * phsz)) != sizeof(p))
				r = -errno;
		}
	}
	if (!r && e->blob && pwrite(fd, e->blob, e->blob_len, (off_t)e->blob_off) != (ssize_t)e->blob_len)
		r = -errno;
out:
	close(fd);
	return r;
}

char *elfbuild_tmppath(const char *tag)
{
	const char *dir = getenv("TMPDIR");
	static unsigned counter;
	char *p;

	if (!dir)
		dir = "/tmp";
	if (asprintf(&p, "%s/kevd-test-%d-%u-%s.elf", dir, (int)getpid(),
		     __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED), tag) < 0)
		return NULL;
	return p;
}

void elfbuild_default(struct eb_elf *e, uint64_t file_pages, uint64_t zero_pages)
{
	uint64_t filesz = file_pages * 4096 + 1000;

	memset(e, 0, sizeof(*e));
	e->elfclass = 64;
	e->phnum = -1;
	e->nseg = 1;
	e->seg[0] = (struct eb_seg){
		.type = PT_LOAD, .paddr = 0x100000, .vaddr = 0xffffffff80100000ull,
		.offset = 0x1234, .filesz = filesz, .memsz = filesz + zero_pages * 4096,
		.flags = PF_R | PF_W | PF_X,
	};
	e->entry = 0xffffffff80100040ull;
}
