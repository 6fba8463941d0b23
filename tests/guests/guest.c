/*
 * guest.c - the test guest's ring-3 workload (plus the ring-0 exception
 * reporter).  Freestanding: no libc, no SSE, no cpuid.
 *
 * entry.S enters testguest_main(index) at CPL 3 with IOPL 3 and IF 0 on every
 * vCPU.  See README.md for the command line and the output format.
 */
#include <stdint.h>

#include "testguest.h"

typedef uint64_t u64;
typedef uint32_t u32;
typedef uint8_t u8;

/* ---- symbols from entry.S / data.S --------------------------------------- */
extern u64 testguest_data[];         /* written by write=1 only */
extern const u8 testguest_tail[];
extern const u8 testguest_tail_end[];
extern u8 testguest_idt[];
extern u32 testguest_boot_eax;
extern u32 testguest_boot_info;
extern u32 testguest_vcpu_count;

/* The zero region the host tests can look up by name. */
__attribute__((section(".bss.zero"), aligned(4096)))
u8 testguest_bss_zero[TESTGUEST_BSS_BYTES];

void testguest_main(u64 index) __attribute__((noreturn, used));
/* entry.S: halt this vCPU for good, with interrupts enabled (mode=idle) or
 * disabled (mode=halt). */
void testguest_idle(void) __attribute__((noreturn));
void testguest_halt(void) __attribute__((noreturn));
void testguest_exception(const u64 *frame) __attribute__((noreturn, used));

/* gcc may emit calls to these even when freestanding. */
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

void *memset(void *d, int c, unsigned long n)
{
	volatile u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	volatile u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

/* ---- ports and output ---------------------------------------------------- */

static inline void outb(u32 port, u8 v)
{
	__asm__ volatile("outb %0, %w1" : : "a"(v), "Nd"((uint16_t)port) : "memory");
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" : : : "memory");
}

static void putch(char c)
{
	outb(TESTGUEST_SERIAL_PORT, (u8)c);
}

static void puts_(const char *s)
{
	while (*s)
		putch(*s++);
}

static void put_dec(u64 v)
{
	char buf[24];
	int n = 0;

	do {
		buf[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		putch(buf[--n]);
}

static void put_hex(u64 v, int digits)
{
	static const char hex[] = "0123456789abcdef";
	int i;

	puts_("0x");
	for (i = digits - 1; i >= 0; i--)
		putch(hex[(v >> (4 * i)) & 15]);
}

static __attribute__((noreturn)) void guest_exit(u8 v)
{
	outb(TESTGUEST_EXIT_PORT, v);
	for (;;)
		cpu_relax();
}

/* ---- ring-0 exception reporter (reached only on errors) ------------------ */

void testguest_exception(const u64 *frame)
{
	/* frame: vector, error code, rip, cs, rflags, rsp, ss */
	u64 cr2;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	puts_("\nexception ");
	put_dec(frame[0]);
	puts_(" at rip=");
	put_hex(frame[2], 16);
	puts_(" err=");
	put_hex(frame[1], 4);
	puts_(" cs=");
	put_hex(frame[3], 4);
	puts_(" rflags=");
	put_hex(frame[4], 8);
	puts_(" rsp=");
	put_hex(frame[5], 16);
	puts_(" cr2=");
	put_hex(cr2, 16);
	puts_("\nresult: FAIL\n");
	outb(TESTGUEST_EXIT_PORT, TESTGUEST_EXIT_EXCEPTION);
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* ---- configuration ------------------------------------------------------- */

enum touch_mode {
	TOUCH_ALL = TESTGUEST_TOUCH_ALL, TOUCH_PERCENT = TESTGUEST_TOUCH_PERCENT,
	TOUCH_STRIDE = TESTGUEST_TOUCH_STRIDE, TOUCH_RANDOM = TESTGUEST_TOUCH_RANDOM,
	TOUCH_NONE = TESTGUEST_TOUCH_NONE
};
enum run_mode {
	RUN_NORMAL, RUN_CRASH, RUN_LOOP, RUN_FLOOD, RUN_FAULT, RUN_POWEROFF, RUN_RESET, RUN_PORTS,
	RUN_IDLE, RUN_HALT
};

static const char *const touch_names[] = { "all", "percent", "stride", "random", "none" };

struct config {
	enum touch_mode touch;
	u64 touch_arg;
	u64 seed;
	u64 bss_pages;
	enum run_mode mode;
	int write;            /* write=1: overwrite the touched pages, check them */
	u64 touches;          /* pages= : number of touches per vCPU */
	u64 work_rounds;      /* work=ROUNDS, 0: no work phase */
	u64 ram_pages;        /* ram=MIB: pages of RAM from TESTGUEST_RAM_BASE the work phase works on too */
};

struct vcpu_result {
	u64 pages;
	u64 sum;
	u64 bad;
	u64 bss_bad;
	u64 write_pages;      /* distinct data pages this vCPU overwrote */
	u64 write_bad;        /* words not reading back as testguest_written_word */
} __attribute__((aligned(64)));

static struct config cfg;
static struct vcpu_result results[TESTGUEST_MAX_VCPUS];
static u32 config_ready;
/* Barriers: each counts the vCPUs that passed it. */
static u32 start_count;       /* about to touch */
static u32 done_count;        /* touch pass and bss check done */
static u32 written_count;     /* write=1: its share written */
static u32 checked_count;     /* write=1: every touched page read back */
static u32 parked_count;      /* mode=idle/halt: APs about to halt */
static u32 work_ready;        /* work=: every check done, page_map complete */
static u32 worked_count;      /* work=: its share's rounds done */
/* Bit p: data page p is touched.  write=1 sets it (atomically) as the one
 * vCPU that overwrites page p claims it; work= has the BSP set every bit (no
 * new one with write=1) before work_ready, then only reads it. */
static u64 page_map[TESTGUEST_DATA_PAGES / 64];

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Does [s, s+n) start with the NUL-terminated prefix p?  Returns its length. */
static u64 prefix(const char *s, u64 n, const char *p)
{
	u64 i = 0;

	while (p[i]) {
		if (i >= n || s[i] != p[i])
			return 0;
		i++;
	}
	return i;
}

static int token_is(const char *s, u64 n, const char *p)
{
	u64 k = prefix(s, n, p);
	return k != 0 && k == n;
}

/* Decimal or 0x-hex number filling [s, s+n) exactly. */
static int parse_u64(const char *s, u64 n, u64 *out)
{
	u64 v = 0, i = 0, base = 10;

	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i >= n)
		return 0;
	for (; i < n; i++) {
		char c = s[i];
		u64 d;

		if (c >= '0' && c <= '9')
			d = (u64)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (u64)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (u64)(c - 'A' + 10);
		else
			return 0;
		v = v * base + d;
	}
	*out = v;
	return 1;
}

static void parse_option(const char *s, u64 n)
{
	u64 k, v;

	if ((k = prefix(s, n, "touch="))) {
		s += k;
		n -= k;
		if (token_is(s, n, "all"))
			cfg.touch = TOUCH_ALL;
		else if (token_is(s, n, "none"))
			cfg.touch = TOUCH_NONE;
		else if ((k = prefix(s, n, "percent:")) && parse_u64(s + k, n - k, &v)) {
			cfg.touch = TOUCH_PERCENT;
			cfg.touch_arg = v > 100 ? 100 : v;
		} else if ((k = prefix(s, n, "stride:")) && parse_u64(s + k, n - k, &v)) {
			cfg.touch = TOUCH_STRIDE;
			cfg.touch_arg = v ? v : 1;
		} else if ((k = prefix(s, n, "random:")) && parse_u64(s + k, n - k, &v)) {
			cfg.touch = TOUCH_RANDOM;
			cfg.touch_arg = v;
		}
	} else if ((k = prefix(s, n, "seed="))) {
		if (parse_u64(s + k, n - k, &v))
			cfg.seed = v;
	} else if ((k = prefix(s, n, "bss="))) {
		if (parse_u64(s + k, n - k, &v))
			cfg.bss_pages = v > TESTGUEST_BSS_PAGES ? TESTGUEST_BSS_PAGES : v;
	} else if ((k = prefix(s, n, "write="))) {
		if (parse_u64(s + k, n - k, &v))
			cfg.write = v != 0;
	} else if ((k = prefix(s, n, "work="))) {
		if (parse_u64(s + k, n - k, &v))
			cfg.work_rounds = v;
	} else if ((k = prefix(s, n, "ram="))) {
		if (parse_u64(s + k, n - k, &v))
			cfg.ram_pages = v > TESTGUEST_RAM_MAX_MIB ? TESTGUEST_RAM_MAX_MIB * 256 : v * 256;
	} else if ((k = prefix(s, n, "mode="))) {
		s += k;
		n -= k;
		if (token_is(s, n, "crash"))
			cfg.mode = RUN_CRASH;
		else if (token_is(s, n, "loop"))
			cfg.mode = RUN_LOOP;
		else if (token_is(s, n, "flood"))
			cfg.mode = RUN_FLOOD;
		else if (token_is(s, n, "fault"))
			cfg.mode = RUN_FAULT;
		else if (token_is(s, n, "poweroff"))
			cfg.mode = RUN_POWEROFF;
		else if (token_is(s, n, "reset"))
			cfg.mode = RUN_RESET;
		else if (token_is(s, n, "ports"))
			cfg.mode = RUN_PORTS;
		else if (token_is(s, n, "idle"))
			cfg.mode = RUN_IDLE;
		else if (token_is(s, n, "halt"))
			cfg.mode = RUN_HALT;
		else if (token_is(s, n, "normal"))
			cfg.mode = RUN_NORMAL;
	}
}

static void parse_cmdline(const char *s)
{
	cfg.touch = TOUCH_ALL;
	cfg.touch_arg = 0;
	cfg.seed = 1;
	cfg.bss_pages = TESTGUEST_BSS_PAGES;
	cfg.mode = RUN_NORMAL;
	cfg.write = 0;
	cfg.work_rounds = 0;
	cfg.ram_pages = 0;
	while (s && *s) {
		u64 n = 0;

		while (is_space(*s))
			s++;
		while (s[n] && !is_space(s[n]))
			n++;
		if (n)
			parse_option(s, n);
		s += n;
	}
	cfg.touches = testguest_touch_count(cfg.touch, cfg.touch_arg);
}

/* ---- boot information ---------------------------------------------------- */

enum boot_kind { BOOT_UNKNOWN, BOOT_MB2, BOOT_PVH };

struct mb2_tag {
	u32 type;
	u32 size;
};

struct mb2_mmap_entry {
	u64 base;
	u64 len;
	u32 type;
	u32 reserved;
};

struct hvm_start_info {
	u32 magic;
	u32 version;
	u32 flags;
	u32 nr_modules;
	u64 modlist_paddr;
	u64 cmdline_paddr;
	u64 rsdp_paddr;
	u64 memmap_paddr;
	u32 memmap_entries;
	u32 reserved;
};

struct hvm_memmap_entry {
	u64 addr;
	u64 size;
	u32 type;
	u32 reserved;
};

static const struct mb2_tag *mb2_find(u32 info, u32 type)
{
	const u8 *base = (const u8 *)(uintptr_t)info;
	u32 total = *(const u32 *)base;
	u32 off = 8;

	while (off + 8 <= total) {
		const struct mb2_tag *t = (const struct mb2_tag *)(base + off);

		if (t->type == 0 || t->size < 8)
			break;
		if (t->type == type)
			return t;
		off += (t->size + 7) & ~7u;
	}
	return 0;
}

/* The end of the usable RAM that holds TESTGUEST_RAM_BASE (0: none), from
 * the memory map print_mmap() reads. */
static u64 ram_end;

static void print_mmap_entry(u64 base, u64 len, u32 type)
{
	if (type == 1 && base <= TESTGUEST_RAM_BASE && base + len > TESTGUEST_RAM_BASE)
		ram_end = base + len;
	puts_("mmap: base=");
	put_hex(base, 16);
	puts_(" len=");
	put_hex(len, 16);
	puts_(" type=");
	put_dec(type);
	putch('\n');
}

static void print_mmap(enum boot_kind kind, u32 info)
{
	if (kind == BOOT_MB2) {
		const struct mb2_tag *t = mb2_find(info, 6);
		const u8 *p, *end;
		u32 esize;

		if (!t || t->size < 16)
			return;
		esize = ((const u32 *)t)[2];
		if (esize < sizeof(struct mb2_mmap_entry))
			return;
		p = (const u8 *)t + 16;
		end = (const u8 *)t + t->size;
		for (; p + esize <= end; p += esize) {
			const struct mb2_mmap_entry *e = (const void *)p;
			print_mmap_entry(e->base, e->len, e->type);
		}
	} else if (kind == BOOT_PVH) {
		const struct hvm_start_info *si = (const void *)(uintptr_t)info;
		const struct hvm_memmap_entry *e;
		u32 i;

		if (si->version < 1 || !si->memmap_paddr)
			return;
		e = (const void *)(uintptr_t)si->memmap_paddr;
		for (i = 0; i < si->memmap_entries; i++)
			print_mmap_entry(e[i].addr, e[i].size, e[i].type);
	}
}

static const char *boot_cmdline(enum boot_kind kind, u32 info)
{
	if (kind == BOOT_MB2) {
		const struct mb2_tag *t = mb2_find(info, 1);
		return t ? (const char *)(t + 1) : "";
	}
	if (kind == BOOT_PVH) {
		const struct hvm_start_info *si = (const void *)(uintptr_t)info;
		return si->cmdline_paddr ? (const char *)(uintptr_t)si->cmdline_paddr : "";
	}
	return "";
}

/* ---- the work ------------------------------------------------------------ */

static void check_page(u64 page, u64 *sum, u64 *bad)
{
	const u64 *p = testguest_data + page * TESTGUEST_WORDS_PER_PAGE;
	u64 w0 = page * TESTGUEST_WORDS_PER_PAGE;
	u64 s = 0, b = 0;
	u32 j;

	for (j = 0; j < TESTGUEST_WORDS_PER_PAGE; j++) {
		u64 w = p[j];
		s += w;
		b += (w != testguest_word(w0 + j));
	}
	*sum += s;
	*bad += b;
}

/* Page of touch number i; called for i = 0, 1, ... in order with *state
 * starting at cfg.seed (touch=random walks its sequence). */
static u64 touch_page(u64 i, u64 *state)
{
	return testguest_touch_page(cfg.touch, cfg.touch_arg, i, state);
}

static void touch_data(struct vcpu_result *r)
{
	u64 i, sum = 0, bad = 0, state = cfg.seed;

	for (i = 0; i < cfg.touches; i++)
		check_page(touch_page(i, &state), &sum, &bad);
	r->pages = cfg.touches;
	r->sum = sum;
	r->bad = bad;
}

/* write=1, after every vCPU's touch pass: vCPU index takes touches index,
 * index + n, ...; the first vCPU to claim a page in page_map overwrites
 * it, so each distinct touched page is written exactly once. */
static void write_share(struct vcpu_result *r, u64 index, u32 nvcpus)
{
	u64 i, n = 0, state = cfg.seed;

	for (i = 0; i < cfg.touches; i++) {
		u64 page = touch_page(i, &state), bit = 1ull << (page % 64);
		u64 *p = testguest_data + page * TESTGUEST_WORDS_PER_PAGE;
		u64 w0 = page * TESTGUEST_WORDS_PER_PAGE;
		u32 j;

		if (i % nvcpus != index ||
		    (__atomic_fetch_or(&page_map[page / 64], bit, __ATOMIC_RELAXED) & bit))
			continue;
		for (j = 0; j < TESTGUEST_WORDS_PER_PAGE; j++)
			p[j] = testguest_written_word(w0 + j);
		n++;
	}
	r->write_pages = n;
}

/* write=1, after every vCPU's share: this vCPU reads every touch back. */
static void check_written(struct vcpu_result *r)
{
	u64 i, bad = 0, state = cfg.seed;

	for (i = 0; i < cfg.touches; i++) {
		u64 page = touch_page(i, &state);
		const volatile u64 *p = testguest_data + page * TESTGUEST_WORDS_PER_PAGE;
		u64 w0 = page * TESTGUEST_WORDS_PER_PAGE;
		u32 j;

		for (j = 0; j < TESTGUEST_WORDS_PER_PAGE; j++)
			bad += (p[j] != testguest_written_word(w0 + j));
	}
	r->write_bad = bad;
}

/* The work phase's pages: the touched data pages (0 .. TESTGUEST_DATA_PAGES),
 * then with ram=, cfg.ram_pages pages of RAM from TESTGUEST_RAM_BASE
 * (numbered from TESTGUEST_DATA_PAGES on). */
static u64 work_end(void)
{
	return TESTGUEST_DATA_PAGES + cfg.ram_pages;
}

static u64 *work_words(u64 page)
{
	if (page < TESTGUEST_DATA_PAGES)
		return testguest_data + page * TESTGUEST_WORDS_PER_PAGE;
	return (u64 *)(uintptr_t)(TESTGUEST_RAM_BASE + (page - TESTGUEST_DATA_PAGES) * TESTGUEST_PAGE_SIZE);
}

/* work=, BSP, once every check is done: mark the touched pages; with
 * ram=, fit the RAM pages into the memory map and give each its first
 * contents (so that a snapshot taken from here on holds them). */
static void work_prepare(void)
{
	u64 i, page, state = cfg.seed;

	for (i = 0; i < cfg.touches; i++) {
		page = touch_page(i, &state);
		page_map[page / 64] |= 1ull << (page % 64);
	}
	if (ram_end <= TESTGUEST_RAM_BASE)
		cfg.ram_pages = 0;
	else if (cfg.ram_pages > (ram_end - TESTGUEST_RAM_BASE) / TESTGUEST_PAGE_SIZE)
		cfg.ram_pages = (ram_end - TESTGUEST_RAM_BASE) / TESTGUEST_PAGE_SIZE;
	for (page = TESTGUEST_DATA_PAGES; page < work_end(); page++) {
		u64 *w = work_words(page);
		u32 j;

		for (j = 0; j < TESTGUEST_WORDS_PER_PAGE; j++)
			w[j] = testguest_word(page * TESTGUEST_WORDS_PER_PAGE + j);
	}
}

static int worked(u64 page)
{
	if (page >= TESTGUEST_DATA_PAGES)
		return page < work_end();
	return page_map[page / 64] >> (page % 64) & 1;
}

static u64 work_npages(void)
{
	u64 page, n = cfg.ram_pages;

	for (page = 0; page < TESTGUEST_DATA_PAGES; page++)
		n += worked(page);
	return n;
}

/* The worked page with rank worked pages below it; work_end() if there
 * are no more than rank. */
static u64 work_page_at(u64 rank)
{
	u64 page, n = 0;

	for (page = 0; page < TESTGUEST_DATA_PAGES; page++) {
		if (!worked(page))
			continue;
		if (n == rank)
			return page;
		n++;
	}
	return rank - n < cfg.ram_pages ? TESTGUEST_DATA_PAGES + (rank - n) : work_end();
}

/* work=: vCPU index of n runs every round over its slice of the worked
 * pages (a contiguous run of them, so the slices partition the pages and
 * each vCPU streams through memory).  A page's rounds depend on that page
 * only: no vCPU waits for another between rounds, and the outcome is the
 * same for any n. */
static void work_share(u64 index, u32 nvcpus)
{
	u64 total = work_npages();
	u64 first = work_page_at(total * index / nvcpus);
	u64 end = work_page_at(total * (index + 1) / nvcpus);
	u64 r, page;

	for (r = 1; r <= cfg.work_rounds; r++) {
		for (page = first; page < end; page++)
			if (worked(page))
				testguest_work_page(work_words(page), page, r);
		if (index == 0 && r % 100 == 0) {
			puts_("work: round ");
			put_dec(r);
			putch('\n');
		}
	}
}

/* work=, BSP, once every vCPU is done: the digest of the worked pages. */
static u64 work_digest(void)
{
	u64 page, d = TESTGUEST_WORK_DIGEST_INIT;

	for (page = 0; page < work_end(); page++)
		if (worked(page))
			d = testguest_work_digest(d, page, work_words(page));
	return d;
}

static u64 check_bss(void)
{
	const volatile u64 *z = (const volatile u64 *)testguest_bss_zero;
	const volatile u8 *p;
	u64 i, bad = 0, n = cfg.bss_pages * TESTGUEST_WORDS_PER_PAGE;

	for (i = 0; i < n; i++)
		bad += (z[i] != 0);
	/* The page holding the end of p_filesz: tail bytes are 1..100, the
	 * rest of the page (part of p_memsz only) must be zero. */
	for (i = 0; i < TESTGUEST_TAIL_BYTES; i++)
		bad += (testguest_tail[i] != (u8)(i + 1));
	p = testguest_tail_end;
	while (((uintptr_t)p & (TESTGUEST_PAGE_SIZE - 1)) != 0)
		bad += (*p++ != 0);
	return bad;
}

static __attribute__((noreturn)) void spin_forever(void)
{
	for (;;)
		cpu_relax();
}

static void wait_u32(u32 *p, u32 value)
{
	while (__atomic_load_n(p, __ATOMIC_ACQUIRE) < value)
		cpu_relax();
}

/* mode=idle or mode=halt, once this vCPU's work is done. */
static __attribute__((noreturn)) void park(void)
{
	if (cfg.mode == RUN_IDLE)
		testguest_idle();
	testguest_halt();
}

/* Counts this vCPU in, waits for all. */
static void barrier(u32 *count, u32 nvcpus)
{
	__atomic_fetch_add(count, 1, __ATOMIC_ACQ_REL);
	wait_u32(count, nvcpus);
}


static __attribute__((noreturn)) void crash(void)
{
	/* Make every IDT gate not-present, then fault: #GP -> #NP -> #DF ->
	 * triple fault (shutdown).  Ring 3 can write the IDT because every page
	 * is mapped user-writable. */
	volatile u8 *idt = testguest_idt;
	u32 i;

	for (i = 0; i < 32 * 16; i++)
		idt[i] = 0;
	__asm__ volatile("" : : : "memory");
	(void)*(volatile u64 *)0x8000000000000000ull;    /* non-canonical: #GP */
	spin_forever();
}

void testguest_main(u64 index)
{
	u32 nvcpus = testguest_vcpu_count;
	struct vcpu_result *r = &results[index];
	u32 i;

	if (index == 0) {
		u32 info = testguest_boot_info;
		enum boot_kind kind = BOOT_UNKNOWN;
		const char *cmdline;

		if (testguest_boot_eax == TESTGUEST_MB2_BOOT_MAGIC)
			kind = BOOT_MB2;
		else if (*(const volatile u32 *)(uintptr_t)info == TESTGUEST_PVH_MAGIC)
			kind = BOOT_PVH;
		puts_("testguest: boot=");
		puts_(kind == BOOT_MB2 ? "multiboot2" : kind == BOOT_PVH ? "pvh" : "unknown");
		puts_(" vcpus=");
		put_dec(nvcpus);
		putch('\n');
		if (kind == BOOT_UNKNOWN) {
			puts_("result: FAIL\n");
			guest_exit(TESTGUEST_EXIT_BADBOOT);
		}
		cmdline = boot_cmdline(kind, info);
		puts_("cmdline: ");
		puts_(cmdline);
		putch('\n');
		parse_cmdline(cmdline);
		switch (cfg.mode) {
		case RUN_CRASH:
			crash();
		case RUN_LOOP:
			spin_forever();
		case RUN_FLOOD:
			for (;;)
				putch('x');
		case RUN_FAULT:
			(void)*(volatile u64 *)0x8000000000000000ull;
			spin_forever();
		case RUN_POWEROFF:
			/* Hardware-reduced ACPI S5 as kevd's FADT describes it:
			 * SLP_TYP 5, SLP_EN, to the sleep control register. */
			outb(0x3c0, (5 << 2) | 0x20);
			spin_forever();
		case RUN_RESET:
			outb(0x64, 0xfe);  /* the i8042 reset pulse */
			spin_forever();
		case RUN_PORTS:
			/* Hammer ports nobody emulates, then finish normally. */
			for (u32 i = 0; i < 20000; i++)
				outb(0x100 + (i % 0x200), (u8)i);
			break;
		default:
			break;
		}
		print_mmap(kind, info);
		puts_("touch: mode=");
		puts_(touch_names[cfg.touch]);
		puts_(" pages=");
		put_dec(cfg.touches);
		putch('\n');
		__atomic_store_n(&config_ready, 1, __ATOMIC_RELEASE);
	} else {
		wait_u32(&config_ready, 1);
	}

	/* Start together, touch the same pages in the same order. */
	barrier(&start_count, nvcpus);
	touch_data(r);
	r->bss_bad = check_bss();
	if (cfg.write) {
		/* No page changes before every vCPU has read them all. */
		barrier(&done_count, nvcpus);
		write_share(r, index, nvcpus);
		barrier(&written_count, nvcpus);
		check_written(r);
		__atomic_fetch_add(&checked_count, 1, __ATOMIC_ACQ_REL);
		if (index == 0)
			wait_u32(&checked_count, nvcpus);
	} else {
		__atomic_fetch_add(&done_count, 1, __ATOMIC_ACQ_REL);
		if (index == 0)
			wait_u32(&done_count, nvcpus);
	}
	if (index != 0) {
		if (cfg.work_rounds) {
			wait_u32(&work_ready, 1);
			work_share(index, nvcpus);
			__atomic_fetch_add(&worked_count, 1, __ATOMIC_ACQ_REL);
		}
		if (cfg.mode == RUN_IDLE || cfg.mode == RUN_HALT) {
			__atomic_fetch_add(&parked_count, 1, __ATOMIC_ACQ_REL);
			park();
		}
		spin_forever();
	}

	{
		u64 bss_bad = 0, write_pages = 0, write_bad = 0;
		int ok = 1;

		for (i = 0; i < nvcpus; i++) {
			const struct vcpu_result *v = &results[i];

			puts_("vcpu ");
			put_dec(i);
			puts_(": pages=");
			put_dec(v->pages);
			puts_(" sum=");
			put_hex(v->sum, 16);
			puts_(" bad=");
			put_dec(v->bad);
			putch('\n');
			bss_bad += v->bss_bad;
			write_pages += v->write_pages;
			write_bad += v->write_bad;
			if (v->bad || v->sum != results[0].sum || v->pages != results[0].pages)
				ok = 0;
		}
		puts_("bss: pages=");
		put_dec(cfg.bss_pages);
		puts_(" bad=");
		put_dec(bss_bad);
		putch('\n');
		if (bss_bad)
			ok = 0;
		if (cfg.write) {
			puts_("write: pages=");
			put_dec(write_pages);
			puts_(" bad=");
			put_dec(write_bad);
			putch('\n');
			if (write_bad)
				ok = 0;
		}
		puts_(ok ? "result: ok\n" : "result: FAIL\n");
		if (cfg.work_rounds) {
			/* Every vCPU is past its checks (the barrier above):
			 * the pages may change now. */
			work_prepare();
			puts_("work: rounds=");
			put_dec(cfg.work_rounds);
			puts_(" pages=");
			put_dec(work_npages());
			if (cfg.ram_pages) {
				puts_(" ram_pages=");
				put_dec(cfg.ram_pages);
			}
			putch('\n');
			__atomic_store_n(&work_ready, 1, __ATOMIC_RELEASE);
			work_share(0, nvcpus);
			__atomic_fetch_add(&worked_count, 1, __ATOMIC_ACQ_REL);
			wait_u32(&worked_count, nvcpus);
			puts_("work: result=");
			put_hex(work_digest(), 16);
			putch('\n');
		}
		if (cfg.mode == RUN_IDLE || cfg.mode == RUN_HALT) {
			wait_u32(&parked_count, nvcpus - 1);
			puts_(cfg.mode == RUN_IDLE ? "idle: vcpus=" : "halt: vcpus=");
			put_dec(nvcpus);
			putch('\n');
			park();
		}
		guest_exit(ok ? TESTGUEST_EXIT_OK : TESTGUEST_EXIT_FAIL);
	}
}
