/*
 * x86 page table walk (see pagewalk.h).  The paging mode is decided once
 * from CR0, CR4 and EFER; the walk itself is one loop from the top level
 * down, which every mode shares: 9 index bits per level in long mode, 2 at
 * PAE's top level, with a PS bit ending the walk early at the PDPTE (1 GiB,
 * long mode only) or the PDE (2 MiB).  Entries are read as little-endian
 * bytes through the reader, so a reader may hand back any host pointer.
 */
#include "config.h"

#include <errno.h>

#include "vmm/pagewalk.h"

/* Index 1 is the lowest level (PTE). */
static const char *const level_name[] = { "?", "PTE", "PDE", "PDPTE", "PML4E", "PML5E" };

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Long-mode linear addresses must have bits 63..(bits-1) all equal. */
static bool canonical(uint64_t va, unsigned bits)
{
	int64_t s = (int64_t)(va << (64 - bits)) >> (64 - bits);

	return (uint64_t)s == va;
}

/* The paging mode REGS select: the number of levels (into WI) and the
 * guest-physical address of the top table.  1 when paging is off (the
 * linear address is then physical), 0 for a walk, or a negative error. */
static int walk_root(unsigned long long va, const struct kevd_paging_regs *regs, struct kevd_walk_info *wi,
		     uint64_t *table, struct kevd_error *err)
{
	bool long_mode = regs->efer & KEVD_EFER_LMA;

	if (!(regs->cr0 & KEVD_CR0_PG)) {
		/* Without paging the linear address is physical, and 32 bits wide. */
		if (long_mode)
			return kevd_error_set(err, EINVAL, "gva 0x%llx: EFER.LMA is set with CR0.PG clear", va);
		if (va >> 32)
			return kevd_error_set(err, EINVAL, "gva 0x%llx: above 4 GiB with paging off", va);
		return 1;
	}
	if (long_mode) {
		if (!(regs->cr4 & KEVD_CR4_PAE))
			return kevd_error_set(err, EINVAL, "gva 0x%llx: EFER.LMA is set with CR4.PAE clear", va);
		wi->levels = regs->cr4 & KEVD_CR4_LA57 ? 5 : 4;
		if (!canonical(va, wi->levels == 5 ? 57 : 48))
			return kevd_error_set(err, EINVAL, "gva 0x%llx: not canonical for %u-level paging", va,
					      wi->levels);
		*table = regs->cr3 & KEVD_PTE_ADDR_MASK;
		return 0;
	}
	if (regs->cr4 & KEVD_CR4_PAE) {
		wi->levels = 3;
		if (va >> 32)
			return kevd_error_set(err, EINVAL, "gva 0x%llx: above 4 GiB in 32-bit PAE paging", va);
		/* PAE's CR3 points at 4 PDPTEs, 32-byte aligned below 4 GiB. */
		*table = regs->cr3 & 0xffffffe0u;
		return 0;
	}
	return kevd_error_set(err, ENOTSUP, "gva 0x%llx: 32-bit paging without PAE is not supported", va);
}

int kevd_pagewalk(kevd_gva_t gva, const struct kevd_paging_regs *regs,
		  kevd_gpa_reader read, void *ctx, kevd_gpa_t *gpa,
		  struct kevd_walk_info *info, struct kevd_error *err)
{
	const unsigned long long va = gva.v;
	struct kevd_walk_info wi = { .writable = true, .user = true };
	bool long_mode = regs->efer & KEVD_EFER_LMA;
	bool nxe = regs->efer & KEVD_EFER_NXE;
	uint64_t table = 0, entry = 0;
	unsigned level;
	int r = walk_root(va, regs, &wi, &table, err);

	if (r < 0)
		return r;
	if (r == 1) {
		*gpa = KEVD_GPA(va);
		if (info)
			*info = wi;
		return 0;
	}

	for (level = wi.levels; level >= 1; level--) {
		unsigned shift = 12 + 9 * (level - 1);
		uint64_t idx = (va >> shift) & (wi.levels == 3 && level == 3 ? 3 : 511);
		uint64_t egpa = table + idx * 8;
		/* PAE PDPTEs carry no RW/US/NX bits: those positions are reserved. */
		bool pae_pdpte = !long_mode && level == 3;
		const unsigned char *p = read(ctx, KEVD_GPA(egpa), 8);

		if (!p)
			return kevd_error_set(err, EFAULT, "gva 0x%llx: %s at gpa 0x%llx is not in guest RAM",
					      va, level_name[level], (unsigned long long)egpa);
		entry = get64(p);
		if (!(entry & KEVD_PTE_P))
			return kevd_error_set(err, ENOENT, "gva 0x%llx: %s %u at gpa 0x%llx is not present (0x%llx)",
					      va, level_name[level], (unsigned)idx, (unsigned long long)egpa,
					      (unsigned long long)entry);
		if (!pae_pdpte) {
			wi.writable &= !!(entry & KEVD_PTE_RW);
			wi.user &= !!(entry & KEVD_PTE_US);
			if (nxe && (entry & KEVD_PTE_NX))
				wi.nx = true;
		}
		if (level == 1 || !(entry & KEVD_PTE_PS)) {
			table = entry & KEVD_PTE_ADDR_MASK;
			continue;
		}
		/* PS is a leaf at the PDE, and at the PDPTE in long mode;
		 * anywhere else the CPU faults on a reserved bit. */
		if (level > 3 || pae_pdpte)
			return kevd_error_set(err, EINVAL, "gva 0x%llx: %s %u at gpa 0x%llx has the reserved PS bit set (0x%llx)",
					      va, level_name[level], (unsigned)idx, (unsigned long long)egpa,
					      (unsigned long long)entry);
		wi.page_size = (uint64_t)1 << shift;
		break;
	}
	if (level == 0)
		wi.page_size = KEVD_PAGE_SIZE;

	/* A large page's frame is aligned to its size; the low bits that
	 * remain in the entry (PAT at bit 12) are not address bits. */
	*gpa = KEVD_GPA((entry & KEVD_PTE_ADDR_MASK & ~(wi.page_size - 1)) | (va & (wi.page_size - 1)));
	if (info)
		*info = wi;
	return 0;
}
