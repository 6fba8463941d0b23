/*
 * The VMM with the real test guest (tests/guests/): lazy boots with 1, 2,
 * 4 and 8 vCPUs through both boot protocols, checksums against the data the
 * guest was built from, exactly-once loading seen from the page states,
 * partial touching, eager vs lazy, write=1, work= against the host's digest,
 * idle and halt, crash, power-off and reset, a truncated image, stop while
 * vCPUs fault, and nothing left behind.  Skips (77) without /dev/kvm or userfaultfd.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guests/testguest.h"
#include "vmm/vm.h"
#include "testutil.h"

static char guest[4096];
static uint64_t data_gpa, bss_zero_gpa;

static uint64_t symbol(const char *path, const char *name)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	Elf *e;
	Elf_Scn *scn = NULL;
	uint64_t found = 0;

	if (fd < 0) {
		fprintf(stderr, "test_vm: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ, NULL);
	while ((scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;
		Elf_Data *d;

		gelf_getshdr(scn, &sh);
		if (sh.sh_type != SHT_SYMTAB)
			continue;
		d = elf_getdata(scn, NULL);
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym s;

			gelf_getsym(d, (int)i, &s);
			if (!strcmp(elf_strptr(e, sh.sh_link, s.st_name), name))
				found = s.st_value;
		}
	}
	elf_end(e);
	close(fd);
	if (!found) {
		fprintf(stderr, "test_vm: symbol %s not in %s\n", name, path);
		exit(1);
	}
	return found;
}

struct run {
	struct kevd_vm *vm;
	char console[65536];
	enum kevd_vm_state state;
	char reason[512];
	int status;
	struct kevd_pager_stats st;
};

static struct kevd_vm *create(const char *kernel, unsigned vcpus, const char *cmdline, bool eager,
			      unsigned window, enum kevd_boot_protocol proto)
{
	struct kevd_vm_config cfg = {
		.name = "test", .kernel = kernel, .memory_mib = 128, .vcpus = vcpus, .cmdline = cmdline,
		.eager = eager, .window_pages = window, .protocol = proto, .console_fd = -1,
	};
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_vm *vm = NULL;

	if (kevd_vm_create(&cfg, &vm, &err) < 0)
		ck_abort_msg("create: %s", err.msg);
	return vm;
}

/* Starts R->vm, waits (bounded), collects the outcome; the caller frees
 * r->vm. */
static void run_vm(struct run *r)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	size_t n;

	if (kevd_vm_start(r->vm, &err) < 0)
		ck_abort_msg("start: %s", err.msg);
	if (kevd_vm_wait(r->vm, 60000) < 0)
		ck_abort_msg("the guest did not end within 60 s");
	n = kevd_vm_console_read(r->vm, 0, r->console, sizeof(r->console) - 1, NULL, NULL);
	r->console[n] = '\0';
	r->state = kevd_vm_state(r->vm);
	kevd_vm_reason(r->vm, r->reason, sizeof(r->reason));
	r->status = kevd_vm_exit_status(r->vm);
	/* Settle: a coalesced fault's event may be handled after the guest
	 * moved on (see tests/test_pager.c). */
	for (int i = 0; i < 200; i++) {
		kevd_vm_pager_stats(r->vm, &r->st);
		if (r->st.faults == r->st.loads + r->st.faults_coalesced + r->st.load_failures + r->st.faults_unserved)
			break;
		usleep(10000);
	}
}

/* Boots, waits (bounded), collects the outcome; the caller frees run->vm. */
static void boot(struct run *r, const char *kernel, unsigned vcpus, const char *cmdline, bool eager,
		 unsigned window, enum kevd_boot_protocol proto)
{
	memset(r, 0, sizeof(*r));
	r->vm = create(kernel, vcpus, cmdline, eager, window, proto);
	run_vm(r);
}

/* Host-side checksum of data pages [first, end) step STEP, as the guest sums. */
static uint64_t expected_sum(uint64_t first, uint64_t end, uint64_t step)
{
	uint64_t sum = 0;

	for (uint64_t p = first; p < end; p += step)
		for (uint64_t w = 0; w < TESTGUEST_WORDS_PER_PAGE; w++)
			sum += testguest_word(p * TESTGUEST_WORDS_PER_PAGE + w);
	return sum;
}

static void check_guest_ok(const struct run *r, unsigned vcpus, uint64_t pages, uint64_t sum)
{
	char want[128];

	if (r->state != KEVD_VM_EXITED || r->status != 1)
		ck_abort_msg("guest ended %s (%s), status %d; console:\n%s", kevd_vm_state_name(r->state),
			     r->reason, r->status, r->console);
	ck_assert_ptr_nonnull(strstr(r->console, "result: ok\n"));
	ck_assert_ptr_nonnull(strstr(r->console, "bss: pages=512 bad=0\n"));
	snprintf(want, sizeof(want), "vcpus=%u\n", vcpus);
	ck_assert_ptr_nonnull(strstr(r->console, want));
	for (unsigned i = 0; i < vcpus; i++) {
		snprintf(want, sizeof(want), "vcpu %u: pages=%llu sum=0x%016llx bad=0\n", i,
			 (unsigned long long)pages, (unsigned long long)sum);
		if (!strstr(r->console, want))
			ck_abort_msg("console lacks '%s':\n%s", want, r->console);
	}
}

/* Counts image pages whose state is MAPPED, in total and among data pages
 * [first, end) of the data image. */
static uint64_t mapped_pages(struct kevd_vm *vm, uint64_t *data_mapped, uint64_t first, uint64_t end)
{
	uint64_t n = 0;

	*data_mapped = 0;
	for (uint64_t gpa = TESTGUEST_LOAD_ADDR; gpa < bss_zero_gpa + TESTGUEST_BSS_BYTES + (1 << 20); gpa += 4096) {
		enum kevd_page_state s;
		bool backed;

		if (kevd_vm_translate_gpa(vm, KEVD_GPA(gpa), NULL, &s, &backed, NULL) < 0 || !backed)
			continue;
		if (s == KEVD_PAGE_MAPPED) {
			uint64_t dp = (gpa - data_gpa) / 4096;

			n++;
			if (gpa >= data_gpa && dp >= first && dp < end)
				(*data_mapped)++;
		}
	}
	return n;
}

/* Exactly once, fault-around off: every vCPU touches all 8192 data pages
 * at once; the pager loads each image page the guest touched once. */
START_TEST(lazy_all_vcpus)
{
	static const unsigned counts[] = { 1, 2, 4, 8 };
	unsigned vcpus = counts[_i % 4];
	enum kevd_boot_protocol proto = _i < 4 ? KEVD_BOOT_PVH : KEVD_BOOT_MULTIBOOT2;
	struct run r;
	uint64_t data_mapped, mapped;

	boot(&r, guest, vcpus, "touch=all", false, 1, proto);
	check_guest_ok(&r, vcpus, TESTGUEST_DATA_PAGES, expected_sum(0, TESTGUEST_DATA_PAGES, 1));
	ck_assert_ptr_nonnull(strstr(r.console, proto == KEVD_BOOT_PVH ? "boot=pvh" : "boot=multiboot2"));
	mapped = mapped_pages(r.vm, &data_mapped, 0, TESTGUEST_DATA_PAGES);
	ck_assert_uint_eq(data_mapped, TESTGUEST_DATA_PAGES);
	/* pages_loaded counts loads; mapped counts distinct pages: equal
	 * means no page was loaded twice. */
	ck_assert_uint_eq(r.st.pages_loaded, mapped);
	ck_assert_uint_eq(r.st.loads, r.st.pages_loaded);
	ck_assert_uint_eq(r.st.pages_loaded_around, 0);
	ck_assert_uint_eq(r.st.faults - r.st.faults_coalesced, r.st.loads);
	ck_assert_uint_le(r.st.pages_loaded, r.st.image_pages);
	ck_assert_uint_eq(r.st.load_failures, 0);
	/* Faults are attributed to vCPUs, and every vCPU took some. */
	for (unsigned i = 0; i < vcpus; i++) {
		struct kevd_vcpu_info vi;

		kevd_vm_vcpu_info(r.vm, i, &vi);
		ck_assert_int_gt(vi.tid, 0);
		ck_assert_uint_gt(vi.pager_faults, 0);
	}
	kevd_vm_free(r.vm);
}
END_TEST

/* 10% of the data touched: that 10% is loaded, the rest is not read. */
START_TEST(lazy_partial)
{
	struct run r;
	uint64_t data_mapped, first_pages = TESTGUEST_DATA_PAGES * 10 / 100, other;

	boot(&r, guest, 2, "touch=percent:10", false, 1, KEVD_BOOT_AUTO);
	check_guest_ok(&r, 2, first_pages, expected_sum(0, first_pages, 1));
	mapped_pages(r.vm, &data_mapped, 0, first_pages);
	ck_assert_uint_eq(data_mapped, first_pages);
	mapped_pages(r.vm, &other, first_pages, TESTGUEST_DATA_PAGES);
	ck_assert_uint_eq(other, 0);
	/* Data is 8192 of the image's pages; the rest is code, page tables,
	 * stacks and the 512-page zero region the guest checks. */
	ck_assert_uint_lt(r.st.pages_loaded, first_pages + 800);
	ck_assert_uint_lt(r.st.bytes_read, (first_pages + 100) * 4096);
	kevd_vm_free(r.vm);

	boot(&r, guest, 1, "touch=stride:7", false, 0, KEVD_BOOT_AUTO);
	check_guest_ok(&r, 1, (TESTGUEST_DATA_PAGES + 6) / 7, expected_sum(0, TESTGUEST_DATA_PAGES, 7));
	ck_assert_uint_gt(r.st.pages_loaded_around, 0);  /* default window brings neighbours */
	kevd_vm_free(r.vm);
}
END_TEST

START_TEST(eager_equals_lazy)
{
	struct run lazy, eager;
	char *a, *b;

	/* Window 1: 3000 random touches hit 99.6% of the 16-page blocks, so
	 * with fault-around (and read-ahead, on the faults that look
	 * sequential) a lazy VM may well load every page; one page a fault
	 * loads the ~2500 it touches. */
	boot(&lazy, guest, 4, "touch=random:3000 seed=99", false, 1, KEVD_BOOT_AUTO);
	boot(&eager, guest, 4, "touch=random:3000 seed=99", true, 0, KEVD_BOOT_AUTO);
	ck_assert_int_eq(lazy.state, KEVD_VM_EXITED);
	ck_assert_int_eq(eager.state, KEVD_VM_EXITED);
	ck_assert_int_eq(lazy.status, 1);
	ck_assert_int_eq(eager.status, 1);
	a = strstr(lazy.console, "touch:");
	b = strstr(eager.console, "touch:");
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(a, b);
	ck_assert(eager.st.eager);
	ck_assert_uint_eq(eager.st.pages_loaded, eager.st.image_pages);
	ck_assert_uint_eq(eager.st.faults, 0);
	ck_assert_uint_lt(lazy.st.pages_loaded, lazy.st.image_pages);
	kevd_vm_free(lazy.vm);
	kevd_vm_free(eager.vm);
}
END_TEST

START_TEST(crash)
{
	struct run r;

	boot(&r, guest, 2, "mode=crash", false, 0, KEVD_BOOT_AUTO);
	ck_assert_int_eq(r.state, KEVD_VM_CRASHED);
	ck_assert_ptr_nonnull(strstr(r.reason, "triple fault"));
	ck_assert_int_eq(r.status, -1);
	kevd_vm_free(r.vm);
}
END_TEST

/* write=1: every touched data page (each once, whichever vCPU claims it)
 * holds testguest_written_word() afterwards, in the guest and in its RAM
 * seen from the host; untouched pages still hold the image. */
START_TEST(write_touched_pages)
{
	uint64_t state = 5, distinct = 0;
	static bool picked[TESTGUEST_DATA_PAGES];
	char want[128];
	struct run r;

	memset(picked, 0, sizeof(picked));
	for (int i = 0; i < 2000; i++) {
		uint64_t p = testguest_random_page(&state);

		distinct += !picked[p];
		picked[p] = true;
	}
	boot(&r, guest, 4, "touch=random:2000 seed=5 write=1", false, 0, KEVD_BOOT_AUTO);
	ck_assert_int_eq(r.state, KEVD_VM_EXITED);
	ck_assert_int_eq(r.status, 1);
	ck_assert_ptr_nonnull(strstr(r.console, "result: ok\n"));
	snprintf(want, sizeof(want), "\nwrite: pages=%llu bad=0\nresult: ok\n", (unsigned long long)distinct);
	if (!strstr(r.console, want))
		ck_abort_msg("console lacks '%s':\n%s", want + 1, r.console);
	for (uint64_t p = 0; p < TESTGUEST_DATA_PAGES; p++) {
		uint64_t w0 = p * TESTGUEST_WORDS_PER_PAGE, w;
		struct kevd_error err = KEVD_ERROR_INIT;
		enum kevd_page_state st;
		void *host;
		bool backed;

		if (kevd_vm_translate_gpa(r.vm, KEVD_GPA(data_gpa + p * 4096), &host, &st, &backed, &err) < 0)
			ck_abort_msg("page %llu: %s", (unsigned long long)p, err.msg);
		if (!picked[p]) {
			if (st != KEVD_PAGE_MAPPED)
				continue;  /* not loaded: nothing to read without loading it */
			memcpy(&w, host, sizeof(w));
			ck_assert_uint_eq(w, testguest_word(w0));
			continue;
		}
		for (uint64_t j = 0; j < TESTGUEST_WORDS_PER_PAGE; j += 97) {
			memcpy(&w, (char *)host + j * 8, sizeof(w));
			ck_assert_uint_eq(w, testguest_written_word(w0 + j));
		}
	}
	kevd_vm_free(r.vm);
}
END_TEST

/* work=ROUNDS: the guest's digest is the host's testguest_work_result() for
 * the same options, whatever the vCPU count, with write=1 or without, and
 * progress lines every 100 rounds; mode=halt still ends the VM after it. */
START_TEST(work_matches_host)
{
	static const struct {
		const char *cmdline;
		unsigned vcpus;
		int touch;
		uint64_t arg, seed;
		int write;
		uint64_t rounds;
	} c[] = {
		{ "touch=random:2000 seed=5 write=1 work=120", 3, TESTGUEST_TOUCH_RANDOM, 2000, 5, 1, 120 },
		{ "touch=stride:3 work=101", 1, TESTGUEST_TOUCH_STRIDE, 3, 1, 0, 101 },
		{ "touch=percent:10 work=7 mode=halt", 4, TESTGUEST_TOUCH_PERCENT, 10, 1, 0, 7 },
	};
	uint64_t want = testguest_work_result(c[_i].touch, c[_i].arg, c[_i].seed, c[_i].write, c[_i].rounds);
	char line[128];
	struct run r;

	boot(&r, guest, c[_i].vcpus, c[_i].cmdline, false, 0, KEVD_BOOT_AUTO);
	ck_assert_int_eq(r.state, KEVD_VM_EXITED);
	ck_assert_ptr_nonnull(strstr(r.console, "result: ok\n"));
	snprintf(line, sizeof(line), "\nwork: result=0x%016llx\n", (unsigned long long)want);
	if (!strstr(r.console, line))
		ck_abort_msg("%s: console lacks '%s':\n%s", c[_i].cmdline, line + 1, r.console);
	ck_assert((strstr(r.console, "\nwork: round 100\n") != NULL) == (c[_i].rounds >= 100));
	if (strstr(c[_i].cmdline, "mode=halt"))
		ck_assert_ptr_nonnull(strstr(r.console, "\nhalt: vcpus=4\n"));
	else
		ck_assert_int_eq(r.status, 1);
	kevd_vm_free(r.vm);
}
END_TEST

/* Pauses right after the start (vCPU threads still starting), in the
 * middle of the work and again at once after a resume: the guest still
 * ends with the result of an uninterrupted run, and no vCPU is left
 * kicked for ever (immediate_exit) by a pause it missed. */
START_TEST(pause_resume_races)
{
	unsigned vcpus = _i ? 4 : 1;
	uint64_t want = testguest_work_result(TESTGUEST_TOUCH_PERCENT, 10, 1, 1, 40);
	struct kevd_error err = KEVD_ERROR_INIT;
	char line[128], *console = malloc(65536);
	size_t n;

	ck_assert_ptr_nonnull(console);
	for (int round = 0; round < 6; round++) {
		struct kevd_vm *vm = create(guest, vcpus, "touch=percent:10 write=1 work=40", false, 0, KEVD_BOOT_AUTO);

		ck_assert_int_eq(kevd_vm_pause(vm, 1000, &err), -EBUSY);  /* created, not running */
		ck_assert_int_eq(kevd_vm_start(vm, &err), 0);
		for (int k = 0; k < 3; k++) {
			int r = kevd_vm_pause(vm, 5000, &err);

			if (r == -EBUSY && kevd_vm_state(vm) == KEVD_VM_EXITED)
				break;  /* done before this pause */
			ck_assert_msg(r == 0, "pause: %s", err.msg);
			ck_assert_int_eq(kevd_vm_state(vm), KEVD_VM_PAUSED);
			ck_assert_int_eq(kevd_vm_pause(vm, 1000, &err), -EBUSY);
			ck_assert_int_eq(kevd_vm_resume(vm, &err), 0);
			ck_assert_int_eq(kevd_vm_resume(vm, &err), -EBUSY);
			usleep((useconds_t)(round * 3000));
		}
		ck_assert_msg(kevd_vm_wait(vm, 60000) == 0, "the guest did not end after its pauses");
		ck_assert_int_eq(kevd_vm_state(vm), KEVD_VM_EXITED);
		ck_assert_int_eq(kevd_vm_exit_status(vm), 1);
		ck_assert_int_eq(kevd_vm_pause(vm, 1000, &err), -EBUSY);
		n = kevd_vm_console_read(vm, 0, console, 65535, NULL, NULL);
		console[n] = '\0';
		snprintf(line, sizeof(line), "\nwork: result=0x%016llx\n", (unsigned long long)want);
		if (!strstr(console, line))
			ck_abort_msg("vcpus %u round %d: console lacks '%s':\n%s", vcpus, round, line + 1, console);
		kevd_vm_free(vm);
	}
	free(console);
}
END_TEST

/* A paused VM stops, and a stop wakes its parked vCPUs. */
START_TEST(stop_paused)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_vm *vm = create(guest, 2, "touch=none work=100000000", false, 0, KEVD_BOOT_AUTO);

	ck_assert_int_eq(kevd_vm_start(vm, &err), 0);
	usleep(50000);
	ck_assert_msg(kevd_vm_pause(vm, 5000, &err) == 0, "pause: %s", err.msg);
	ck_assert(kevd_vm_stop(vm, "test"));
	ck_assert_int_eq(kevd_vm_wait(vm, 10000), 0);
	ck_assert_int_eq(kevd_vm_state(vm), KEVD_VM_STOPPED);
	ck_assert_int_eq(kevd_vm_resume(vm, &err), -EBUSY);
	kevd_vm_free(vm);
}
END_TEST

/* CPU time (utime + stime, in clock ticks) of thread TID of this process. */
static long thread_ticks(int tid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields 14 and 15; the name (field 2) may hold spaces, so count
	 * from the ')' that closes it (field 3 follows). */
	p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
	return (long)(ut + st);
}

/* mode=idle: after its report every vCPU halts with interrupts enabled;
 * the VM stays running, each vCPU took one HLT exit and its thread uses no
 * CPU, until the VM is stopped.  mode=halt (interrupts disabled) ends it. */
START_TEST(idle_and_halt)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_vcpu_info vi;
	static char console[65536];
	long ticks[2];
	struct run r;
	size_t n;

	console[0] = '\0';
	r.vm = create(guest, 2, "touch=percent:10 mode=idle", false, 0, KEVD_BOOT_AUTO);
	ck_assert_int_eq(kevd_vm_start(r.vm, &err), 0);
	for (int i = 0; i < 6000 && !strstr(console, "\nidle: vcpus=2\n"); i++) {
		usleep(10000);
		n = kevd_vm_console_read(r.vm, 0, console, sizeof(console) - 1, NULL, NULL);
		console[n] = '\0';
	}
	if (!strstr(console, "\nresult: ok\nidle: vcpus=2\n"))
		ck_abort_msg("no idle line; console:\n%s", console);
	usleep(100000);  /* the APs were a few instructions from their HLT */
	for (unsigned i = 0; i < 2; i++) {
		kevd_vm_vcpu_info(r.vm, i, &vi);
		ck_assert_uint_eq(vi.exits[KEVD_EXIT_HLT], 1);
		ticks[i] = thread_ticks(vi.tid);
	}
	ck_assert_int_eq(kevd_vm_wait(r.vm, 1000), -ETIMEDOUT);
	ck_assert_int_eq(kevd_vm_state(r.vm), KEVD_VM_RUNNING);
	for (unsigned i = 0; i < 2; i++) {
		kevd_vm_vcpu_info(r.vm, i, &vi);
		ck_assert_int_le(thread_ticks(vi.tid) - ticks[i], 1);
		ck_assert_uint_eq(vi.exits[KEVD_EXIT_HLT], 1);
	}
	ck_assert(kevd_vm_stop(r.vm, "test is over"));
	ck_assert_int_eq(kevd_vm_wait(r.vm, 10000), 0);
	ck_assert_int_eq(kevd_vm_state(r.vm), KEVD_VM_STOPPED);
	kevd_vm_free(r.vm);

	boot(&r, guest, 2, "touch=percent:10 mode=halt", false, 0, KEVD_BOOT_AUTO);
	ck_assert_int_eq(r.state, KEVD_VM_EXITED);
	ck_assert_int_eq(r.status, -1);
	ck_assert_str_eq(r.reason, "every vCPU halted");
	ck_assert_ptr_nonnull(strstr(r.console, "\nresult: ok\nhalt: vcpus=2\n"));
	kevd_vm_free(r.vm);
}
END_TEST

/* ACPI S5 and the i8042 reset end the test guest's VM (no ACPI tables, no
 * irqchip) as exited without a status, through either boot protocol. */
START_TEST(power_off_and_reset)
{
	static const char *const cmdlines[] = { "mode=poweroff", "mode=reset" };
	static const char *const reasons[] = { "guest powered off (ACPI S5)", "guest reset the machine (i8042 pulse)" };
	enum kevd_boot_protocol proto = _i < 2 ? KEVD_BOOT_PVH : KEVD_BOOT_MULTIBOOT2;
	struct run r;

	boot(&r, guest, 1 + _i % 2, cmdlines[_i % 2], false, 0, proto);
	if (r.state != KEVD_VM_EXITED || r.status != -1 || strcmp(r.reason, reasons[_i % 2]))
		ck_abort_msg("%s: ended %s (%s), status %d", cmdlines[_i % 2], kevd_vm_state_name(r.state), r.reason,
			     r.status);
	kevd_vm_free(r.vm);
}
END_TEST

static int copy_file(const char *from, const char *to)
{
	char cmd[2 * 4096 + 16];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	return system(cmd);
}

START_TEST(truncated_image_fails_vm)
{
	char path[] = "/tmp/kevd-test-vm-XXXXXX";
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_vm *vm;
	char reason[512];
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(copy_file(guest, path), 0);
	vm = create(path, 2, "touch=all", false, 0, KEVD_BOOT_AUTO);
	/* Validated at create; cut after: the first fault past the cut fails. */
	ck_assert_int_eq(truncate(path, 1 << 20), 0);
	ck_assert_int_eq(kevd_vm_start(vm, &err), 0);
	ck_assert_int_eq(kevd_vm_wait(vm, 30000), 0);
	ck_assert_int_eq(kevd_vm_state(vm), KEVD_VM_FAILED);
	kevd_vm_reason(vm, reason, sizeof(reason));
	ck_assert_ptr_nonnull(strstr(reason, "lazy paging failed"));
	ck_assert_ptr_nonnull(strstr(reason, path));
	kevd_vm_free(vm);
	unlink(path);
}
END_TEST

static int count_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* kvm_run mappings of vCPUs (anon_inode:kvm-vcpu) still in place. */
static int count_vcpu_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int n = 0;

	while (fgets(line, sizeof(line), f))
		n += strstr(line, "kvm-vcpu") != NULL;
	fclose(f);
	return n;
}

/* Mappings of at least 64 MiB: guest RAM is 128 MiB here. */
static int count_big_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long long a, b;
	char line[512];
	int n = 0;

	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx-%llx", &a, &b) == 2 && b - a >= (64ull << 20))
			n++;
	fclose(f);
	return n;
}

static void stop_round(void)
{
	static const unsigned delays_us[] = { 0, 500, 2000, 5000, 20000 };

	for (unsigned i = 0; i < sizeof(delays_us) / sizeof(delays_us[0]); i++) {
		struct kevd_error err = KEVD_ERROR_INIT;
		struct kevd_vm *vm = create(guest, 8, "touch=all", false, 1 + (i % 2) * 15, KEVD_BOOT_AUTO);
		char reason[512];

		ck_assert_int_eq(kevd_vm_start(vm, &err), 0);
		usleep(delays_us[i]);
		kevd_vm_stop(vm, "test stop");
		ck_assert_int_eq(kevd_vm_wait(vm, 10000), 0);
		kevd_vm_reason(vm, reason, sizeof(reason));
		ck_assert_msg(kevd_vm_state(vm) == KEVD_VM_STOPPED || kevd_vm_state(vm) == KEVD_VM_EXITED,
			      "state %s: %s", kevd_vm_state_name(kevd_vm_state(vm)), reason);
		kevd_vm_free(vm);
	}
}

/* Stop at moments when vCPUs are faulting; afterwards no thread, fd,
 * guest RAM or kvm_run mapping is left.  The first round sets the baseline
 * (sanitizers start helper threads and keep freed memory in quarantine on
 * first use). */
START_TEST(stop_mid_fault_leaves_nothing)
{
	int threads0, fds0, big0;

	stop_round();
	threads0 = count_dir("/proc/self/task");
	fds0 = count_dir("/proc/self/fd");
	big0 = count_big_maps();
	ck_assert_int_eq(count_vcpu_maps(), 0);
	stop_round();
	ck_assert_int_eq(count_dir("/proc/self/task"), threads0);
	ck_assert_int_eq(count_dir("/proc/self/fd"), fds0);
	ck_assert_int_eq(count_big_maps(), big0);
	ck_assert_int_eq(count_vcpu_maps(), 0);
}
END_TEST

/* Whether ADDR is in a mapping of this process. */
static bool mapped(const void *addr)
{
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long long a, b, x = (uintptr_t)addr;
	char line[512];
	bool in = false;

	while (!in && fgets(line, sizeof(line), f))
		in = sscanf(line, "%llx-%llx", &a, &b) == 2 && a <= x && x < b;
	fclose(f);
	return in;
}

/* A spare of the VM's shape is taken over, low and high RAM: the guest
 * runs as in a VM made whole.  One of another shape, or given to a create
 * that fails, is freed.  Nothing is left after. */
START_TEST(spare_vms)
{
	static const uint64_t sizes[] = { 128, 4200 };  /* 4200: RAM above the MMIO hole too */
	struct kevd_vm_config cfg = { .name = "spare", .kernel = guest, .vcpus = 2, .cmdline = "touch=all",
				      .console_fd = -1 };
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_vm *vm = NULL;
	void *low, *high = NULL;
	int fds0, big0;
	uint64_t mib;
	unsigned n;
	bool pc;
	struct run r;

	/* The baseline after a first VM of each size (sanitizers map memory of
	 * their own on first use, as in stop_mid_fault_leaves_nothing). */
	for (unsigned i = 0; i < 2; i++) {
		memset(&r, 0, sizeof(r));
		cfg.memory_mib = sizes[i];
		ck_assert_msg(kevd_vm_create(&cfg, &r.vm, &err) == 0, "%s", err.msg);
		run_vm(&r);
		check_guest_ok(&r, 2, TESTGUEST_DATA_PAGES, expected_sum(0, TESTGUEST_DATA_PAGES, 1));
		kevd_vm_free(r.vm);
	}
	fds0 = count_dir("/proc/self/fd");
	big0 = count_big_maps();
	for (unsigned i = 0; i < 2; i++) {
		cfg.memory_mib = sizes[i];
		ck_assert_int_eq(kevd_vm_spare_new(sizes[i], 2, false, &cfg.spare, &err), 0);
		kevd_vm_spare_shape(cfg.spare, &mib, &n, &pc);
		ck_assert(mib == sizes[i] && n == 2 && !pc);
		ck_assert_int_eq(count_dir("/proc/self/fd"), fds0 + 4);  /* /dev/kvm, the VM, two vCPUs */
		ck_assert_int_gt(count_big_maps(), big0);  /* its RAM (one or two mappings: adjacent ones merge) */
		memset(&r, 0, sizeof(r));
		ck_assert_msg(kevd_vm_create(&cfg, &r.vm, &err) == 0, "%s", err.msg);
		ck_assert(kevd_vm_from_spare(r.vm));
		ck_assert_int_eq(kevd_vm_translate_gpa(r.vm, KEVD_GPA(0), &low, NULL, NULL, &err), 0);
		if (i == 1)
			ck_assert_int_eq(kevd_vm_translate_gpa(r.vm, KEVD_GPA(1ull << 32), &high, NULL, NULL, &err), 0);
		run_vm(&r);
		check_guest_ok(&r, 2, TESTGUEST_DATA_PAGES, expected_sum(0, TESTGUEST_DATA_PAGES, 1));
		kevd_vm_free(r.vm);
		/* The spare's RAM went with the VM (counting big mappings would
		 * count a sanitizer's too). */
		ck_assert_int_eq(count_dir("/proc/self/fd"), fds0);
		ck_assert(!mapped(low));
		ck_assert(i == 0 || !mapped(high));
		ck_assert_int_eq(count_vcpu_maps(), 0);
	}

	/* A PC's spare (its interrupt controllers made before its vCPU)
	 * taken by a PC: the test guest boots as its BSP. */
	{
		struct kevd_vm_config pcc = { .name = "pc", .kernel = guest, .memory_mib = 128, .vcpus = 1,
					      .cmdline = "touch=none bss=0", .ap_start = KEVD_AP_SIPI, .console_fd = -1 };

		ck_assert_int_eq(kevd_vm_spare_new(128, 1, true, &pcc.spare, &err), 0);
		memset(&r, 0, sizeof(r));
		ck_assert_msg(kevd_vm_create(&pcc, &r.vm, &err) == 0, "%s", err.msg);
		ck_assert(kevd_vm_from_spare(r.vm) && kevd_vm_is_pc(r.vm));
		run_vm(&r);
		ck_assert_msg(r.state == KEVD_VM_EXITED && r.status == 1 && strstr(r.console, "result: ok\n"),
			      "PC over a spare: %s (%s); console:\n%s", kevd_vm_state_name(r.state), r.reason, r.console);
		kevd_vm_free(r.vm);
		ck_assert_int_eq(count_dir("/proc/self/fd"), fds0);
	}

	/* Another size, another vCPU count, a PC: a VM of its own each
	 * time, and the spare goes. */
	cfg.memory_mib = 128;
	cfg.cmdline = "touch=none bss=0";
	cfg.spare = NULL;  /* the last one was taken */
	ck_assert_msg(kevd_vm_create(&cfg, &vm, &err) == 0, "%s", err.msg);
	n = (unsigned)count_dir("/proc/self/fd");  /* a VM's own */
	kevd_vm_free(vm);
	for (unsigned i = 0; i < 3; i++) {
		ck_assert_int_eq(kevd_vm_spare_new(i == 0 ? 256 : 128, i == 1 ? 1 : 2, i == 2, &cfg.spare, &err), 0);
		ck_assert_msg(kevd_vm_create(&cfg, &vm, &err) == 0, "%s", err.msg);
		ck_assert(!kevd_vm_from_spare(vm));
		ck_assert_int_eq(count_dir("/proc/self/fd"), (int)n);  /* the spare's are gone */
		kevd_vm_free(vm);
	}
	/* A create refused before any part, and one whose image part fails. */
	ck_assert_int_eq(kevd_vm_spare_new(128, 2, false, &cfg.spare, &err), 0);
	cfg.vcpus = 0;
	ck_assert_int_eq(kevd_vm_create(&cfg, &vm, &err), -EINVAL);
	cfg.vcpus = 2;
	ck_assert_int_eq(kevd_vm_spare_new(128, 2, false, &cfg.spare, &err), 0);
	cfg.kernel = "/nonexistent.elf";
	ck_assert_int_eq(kevd_vm_create(&cfg, &vm, &err), -ENOENT);
	ck_assert_int_eq(count_dir("/proc/self/fd"), fds0);  /* its VM fd, so its memslots, and its vCPUs */
	ck_assert_int_eq(count_vcpu_maps(), 0);
	/* A shape no VM may have. */
	ck_assert_int_eq(kevd_vm_spare_new(1, 1, false, &cfg.spare, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "1 MiB of memory is outside"));
	ck_assert_int_eq(kevd_vm_spare_new(128, 0, false, &cfg.spare, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "0 vCPUs is outside"));
}
END_TEST

START_TEST(bad_configs)
{
	struct kevd_vm_config cfg = { .name = "bad", .kernel = guest, .memory_mib = 128, .vcpus = 1, .console_fd = -1 };
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_vm *vm = NULL;

	cfg.vcpus = 0;
	ck_assert_int_eq(kevd_vm_create(&cfg, &vm, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "vm 'bad': 0 vCPUs is outside"));
	cfg.vcpus = 1;
	cfg.memory_mib = 16;  /* the image needs about 37 MiB above 1 MiB */
	ck_assert_int_eq(kevd_vm_create(&cfg, &vm, &err), -ERANGE);
	ck_assert_ptr_nonnull(strstr(err.msg, "does not fit in 16 MiB of guest RAM"));
	cfg.memory_mib = 128;
	cfg.kernel = "/nonexistent.elf";
	ck_assert_int_eq(kevd_vm_create(&cfg, &vm, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "vm 'bad': image '/nonexistent.elf'"));
	ck_assert_ptr_null(vm);

	/* Started twice. */
	cfg.kernel = guest;
	cfg.cmdline = "touch=none bss=0";
	ck_assert_int_eq(kevd_vm_create(&cfg, &vm, &err), 0);
	ck_assert_int_eq(kevd_vm_start(vm, &err), 0);
	ck_assert_int_eq(kevd_vm_start(vm, &err), -EBUSY);
	kevd_vm_wait(vm, 10000);
	kevd_vm_free(vm);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("vm");
	TCase *t = tcase_create("vm");

	tcase_set_timeout(t, 120);
	tcase_add_loop_test(t, lazy_all_vcpus, 0, 8);
	tcase_add_test(t, lazy_partial);
	tcase_add_test(t, eager_equals_lazy);
	tcase_add_test(t, write_touched_pages);
	tcase_add_loop_test(t, work_matches_host, 0, 3);
	tcase_add_test(t, idle_and_halt);
	tcase_add_loop_test(t, pause_resume_races, 0, 2);
	tcase_add_test(t, stop_paused);
	tcase_add_test(t, crash);
	tcase_add_loop_test(t, power_off_and_reset, 0, 4);
	tcase_add_test(t, truncated_image_fails_vm);
	tcase_add_test(t, stop_mid_fault_leaves_nothing);
	tcase_add_test(t, bad_configs);
	tcase_add_test(t, spare_vms);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	int r;

	struct kevd_error err = KEVD_ERROR_INIT;

	if ((r = kevd_test_need_kvm("test_vm")) || (r = kevd_test_need_uffd("test_vm")))
		return r;
	if (kevd_vm_signals_install(&err) < 0) {
		fprintf(stderr, "test_vm: %s\n", err.msg);
		return 1;
	}
	if (kevd_test_built("test_vm", "tests/guests/testguest.elf", guest, sizeof(guest)) < 0)
		return 1;
	data_gpa = symbol(guest, TESTGUEST_SYM_DATA);
	bss_zero_gpa = symbol(guest, TESTGUEST_SYM_BSS_ZERO);
	return kevd_test_run(suite());
}
