/*
 * Address types.  Guest-physical and guest-virtual addresses are distinct
 * struct types so that neither can be passed where the other, or a host
 * pointer, is expected; host addresses are plain pointers.
 */
#ifndef KEVD_TYPES_H
#define KEVD_TYPES_H

#include <stdint.h>

typedef struct { uint64_t v; } kevd_gpa_t;   /* guest-physical address */
typedef struct { uint64_t v; } kevd_gva_t;   /* guest-virtual address */

#define KEVD_GPA(x) ((kevd_gpa_t){ (uint64_t)(x) })
#define KEVD_GVA(x) ((kevd_gva_t){ (uint64_t)(x) })

#define KEVD_PAGE_SHIFT 12
#define KEVD_PAGE_SIZE ((uint64_t)1 << KEVD_PAGE_SHIFT)
#define KEVD_PAGE_MASK (KEVD_PAGE_SIZE - 1)

/* Guest RAM layout shared by the pager and the VMM: RAM from 0 up to the
 * hole, none in [HOLE_START, 4 GiB) where MMIO lives, the rest from 4 GiB. */
#define KEVD_MMIO_HOLE_START ((uint64_t)0xbffda000)
#define KEVD_MMIO_HOLE_END ((uint64_t)0x100000000)
/* Highest guest-physical address kevd accepts (a 46-bit space, well inside
 * every x86-64 host's MAXPHYADDR for a VM). */
#define KEVD_GPA_LIMIT ((uint64_t)1 << 46)

static inline uint64_t kevd_page_down(uint64_t x) { return x & ~KEVD_PAGE_MASK; }
static inline uint64_t kevd_page_up(uint64_t x) { return (x + KEVD_PAGE_MASK) & ~KEVD_PAGE_MASK; }

#endif
