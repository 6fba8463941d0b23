/*
 * `kevd run`: boot one VM in the foreground, stream its console to stdout,
 * and print its lazy-paging statistics at the end.  With --restore DIR the
 * VM is not booted but restored from the snapshot in DIR (a directory as
 * the daemon writes it under state_dir/snapshots): the machine (kernel,
 * initrd, memory, vCPUs, command line, protocol) is the snapshot's, its
 * kernel and initrd found beneath --image-dir, as the daemon found them,
 * or else as the paths say (relative to the current directory).
 *
 * A thin front end over the VMM, in the steps kevd_cmd_run() reads as:
 * the options become a struct kevd_vm_config, the VM is created and
 * started through the same kevd_vm_create()/kevd_vm_start() the daemon
 * uses, the main thread waits for its end, prints the report and turns
 * the final state into the exit status.
 *
 * The main thread only waits: SIGINT/SIGTERM arrive on a signalfd (blocked
 * in every thread, vCPU threads inherit the mask) and the VM's end on an
 * eventfd, so a stop request is handled in the same loop as the timeout.
 *
 * Exit status: the guest's (as QEMU's isa-debug-exit: (v << 1) | 1) when it
 * wrote the debug exit port; 0 when it ended otherwise (power-off, halt);
 * 2 usage; 1 the VM could not be created or failed (a snapshot that cannot
 * be read, or whose kernel is not the file it was taken over, too); 3
 * crashed; 124 timeout; 130 stopped by a signal.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "api/imagedir.h"
#include "api/request.h"
#include "api/snapshots.h"
#include "api/stats_json.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "daemon/commands.h"
#include "vmm/vm.h"

static const char usage_text[] =
	"usage: kevd run --kernel PATH [--initrd PATH] [--memory MiB] [--vcpus N] [--cmdline STR]\n"
	"                [--paging lazy|lazy-private|eager] [--eager] [--window PAGES] [--window-max PAGES]\n"
	"                [--pager-threads N] [--vcpu-nice N] [--protocol auto|multiboot2|pvh]\n"
	"                [--ap-start auto|entry|sipi]\n"
	"                [--timeout SECONDS] [--json] [--quiet] [--log-level LEVEL]\n"
	"       kevd run --restore DIR [--image-dir DIR] [--paging lazy|lazy-private|eager] [--eager]\n"
	"                [--window PAGES] [--window-max PAGES] [--pager-threads N] [--vcpu-nice N]\n"
	"                [--timeout SECONDS] [--json] [--quiet] [--log-level LEVEL]\n";

/* parse_options(), set_option(): go on and run the VM (anything else is
 * the exit status to end with). */
#define RUN_GO (-1)

/* What the command line asks for. */
struct run_options {
	struct kevd_vm_config cfg;
	unsigned long long timeout_s;  /* 0 = none */
	bool json, quiet;
	const char *restore;           /* --restore DIR; NULL = boot */
	const char *image_dir;         /* --image-dir DIR; NULL = paths as they are */
	const char *machine_opt;       /* the first option that sets what a snapshot fixes */
};

/* How the wait ended, beyond the VM's own state. */
struct run_end {
	bool by_signal;   /* a signal stopped the VM */
	bool timed_out;   /* --timeout stopped it */
};

static void on_end(void *arg, struct kevd_vm *vm)
{
	uint64_t one = 1;
	int fd = *(int *)arg;

	(void)vm;
	if (write(fd, &one, sizeof(one)) < 0) {
		/* the counter cannot overflow with one write per VM */
	}
}

static int parse_uint(const char *opt, const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max) {
		fprintf(stderr, "kevd run: --%s: '%s' is not a number in 0..%llu\n", opt, s, max);
		return -1;
	}
	*out = v;
	return 0;
}

/* A count of at least 1; ZERO says why 0 is refused. */
static int parse_count(const char *opt, const char *s, unsigned long long max, const char *zero, unsigned *out)
{
	unsigned long long v;

	if (parse_uint(opt, s, max, &v) < 0)
		return -1;
	if (v == 0) {
		fprintf(stderr, "kevd run: --%s: %s\n", opt, zero);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse_ap_start(const char *s, enum kevd_ap_start *out)
{
	if (!strcmp(s, "auto"))
		*out = KEVD_AP_AUTO;
	else if (!strcmp(s, "entry"))
		*out = KEVD_AP_ENTRY;
	else if (!strcmp(s, "sipi"))
		*out = KEVD_AP_SIPI;
	else {
		fprintf(stderr, "kevd run: --ap-start: '%s' is not auto, entry or sipi\n", s);
		return -1;
	}
	return 0;
}

enum { O_KERNEL = 1, O_INITRD, O_APSTART, O_MEMORY, O_VCPUS, O_CMDLINE, O_EAGER, O_PAGING, O_WINDOW, O_WINDOW_MAX,
       O_THREADS, O_NICE, O_PROTO,
       O_TIMEOUT, O_JSON, O_QUIET, O_LOG, O_HELP, O_RESTORE, O_IMAGE_DIR };

/* The options that set what a snapshot fixes: a restore refuses them. */
static bool machine_option(int c)
{
	return c == O_KERNEL || c == O_INITRD || c == O_APSTART || c == O_MEMORY || c == O_VCPUS || c == O_CMDLINE ||
	       c == O_PROTO;
}

/* The options that take a number. */
static int set_number(struct run_options *o, int c, const char *arg)
{
	struct kevd_vm_config *cfg = &o->cfg;
	unsigned long long v;

	switch (c) {
	case O_MEMORY:
		if (parse_uint("memory", arg, 1ull << 20, &v) < 0)
			return 2;
		cfg->memory_mib = v;
		return RUN_GO;
	case O_VCPUS:
		if (parse_uint("vcpus", arg, KEVD_VM_MAX_VCPUS, &v) < 0)
			return 2;
		cfg->vcpus = (unsigned)v;
		return RUN_GO;
	case O_WINDOW:
		return parse_count("window", arg, KEVD_PAGER_MAX_WINDOW, "at least 1 page (1 turns fault-around off)",
				   &cfg->window_pages) < 0 ? 2 : RUN_GO;
	case O_WINDOW_MAX:
		return parse_count("window-max", arg, KEVD_PAGER_MAX_WINDOW, "at least 1 page", &cfg->window_max_pages) < 0 ?
			2 : RUN_GO;
	case O_THREADS:
		return parse_count("pager-threads", arg, KEVD_PAGER_MAX_THREADS, "at least 1", &cfg->pager_threads) < 0 ?
			2 : RUN_GO;
	case O_NICE:
		if (parse_uint("vcpu-nice", arg, 19, &v) < 0)
			return 2;
		cfg->vcpu_nice = (unsigned)v;
		return RUN_GO;
	default:  /* O_TIMEOUT */
		return parse_uint("timeout", arg, 1000000, &o->timeout_s) < 0 ? 2 : RUN_GO;
	}
}

/* One option C with argument ARG (NULL for a flag). */
static int set_option(struct run_options *o, int c, const char *arg)
{
	struct kevd_vm_config *cfg = &o->cfg;
	int level;

	switch (c) {
	case O_KERNEL: cfg->kernel = arg; return RUN_GO;
	case O_INITRD: cfg->initrd = arg; return RUN_GO;
	case O_CMDLINE: cfg->cmdline = arg; return RUN_GO;
	case O_EAGER: cfg->eager = true; return RUN_GO;
	case O_JSON: o->json = true; return RUN_GO;
	case O_RESTORE: o->restore = arg; return RUN_GO;
	case O_IMAGE_DIR: o->image_dir = arg; return RUN_GO;
	case O_QUIET: o->quiet = true; return RUN_GO;
	case O_APSTART: return parse_ap_start(arg, &cfg->ap_start) < 0 ? 2 : RUN_GO;
	case O_PAGING:
		if (kevd_request_parse_paging(arg, &cfg->eager, &cfg->private_pages) < 0) {
			fprintf(stderr, "kevd run: --paging: '%s' is not lazy, lazy-private or eager\n", arg);
			return 2;
		}
		return RUN_GO;
	case O_MEMORY: case O_VCPUS: case O_WINDOW: case O_WINDOW_MAX: case O_THREADS: case O_NICE: case O_TIMEOUT:
		return set_number(o, c, arg);
	case O_PROTO:
		if (kevd_request_parse_protocol(arg, &cfg->protocol) < 0) {
			fprintf(stderr, "kevd run: --protocol: '%s' is not auto, multiboot2 or pvh\n", arg);
			return 2;
		}
		return RUN_GO;
	case O_LOG:
		level = kevd_log_parse_level(arg);
		if (level < 0) {
			fprintf(stderr, "kevd run: --log-level: '%s' is not error, warn, info or debug\n", arg);
			return 2;
		}
		kevd_log_set_level((enum kevd_log_level)level);
		return RUN_GO;
	case O_HELP:
		fputs(usage_text, stdout);
		return 0;
	default:
		fputs(usage_text, stderr);
		return 2;
	}
}

/* The command line into O (whose defaults it keeps where no option says
 * otherwise); RUN_GO, or the exit status after saying what is wrong. */
static int parse_options(int argc, char **argv, struct run_options *o)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, O_KERNEL },
		{ "initrd", required_argument, NULL, O_INITRD },
		{ "ap-start", required_argument, NULL, O_APSTART },
		{ "memory", required_argument, NULL, O_MEMORY },
		{ "vcpus", required_argument, NULL, O_VCPUS },
		{ "cmdline", required_argument, NULL, O_CMDLINE },
		{ "eager", no_argument, NULL, O_EAGER },
		{ "paging", required_argument, NULL, O_PAGING },
		{ "window", required_argument, NULL, O_WINDOW },
		{ "window-max", required_argument, NULL, O_WINDOW_MAX },
		{ "pager-threads", required_argument, NULL, O_THREADS },
		{ "vcpu-nice", required_argument, NULL, O_NICE },
		{ "protocol", required_argument, NULL, O_PROTO },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "json", no_argument, NULL, O_JSON },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "help", no_argument, NULL, O_HELP },
		{ "restore", required_argument, NULL, O_RESTORE },
		{ "image-dir", required_argument, NULL, O_IMAGE_DIR },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc, idx = -1;

	while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
		if ((rc = set_option(o, c, optarg)) != RUN_GO)
			return rc;
		if (machine_option(c) && !o->machine_opt && idx >= 0)
			o->machine_opt = opts[idx].name;
		idx = -1;
	}
	if (optind != argc) {
		fprintf(stderr, "kevd run: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (o->restore && o->machine_opt) {
		fprintf(stderr, "kevd run: --%s comes from the snapshot; --restore takes only the paging, window, "
			"thread, timeout and output options\n", o->machine_opt);
		return 2;
	}
	if (!o->restore && o->image_dir) {
		fprintf(stderr, "kevd run: --image-dir goes with --restore (a boot takes --kernel's path as it is)\n");
		return 2;
	}
	if (!o->restore && !o->cfg.kernel) {
		fprintf(stderr, "kevd run: --kernel PATH is required (or --restore DIR)\n");
		return 2;
	}
	if (o->quiet)
		o->cfg.console_fd = -1;
	return RUN_GO;
}

/* Blocks SIGINT and SIGTERM (before any vCPU thread exists, so that they
 * inherit the mask) and opens the signalfd that receives them and the
 * eventfd that on_end() writes; 0, or -1 after saying why. */
static int open_wait_fds(int *sfd, int *efd)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	*sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	*efd = eventfd(0, EFD_CLOEXEC);
	if (*sfd < 0 || *efd < 0) {
		fprintf(stderr, "kevd run: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* What --restore reads, kept until the VM is freed. */
struct run_restore {
	struct kevd_snapshot *snap;
	struct kevd_vm_restore rs;
	char *kernel, *initrd;  /* the images' paths as messages name them */
};

static void run_restore_free(struct run_restore *r)
{
	kevd_snapshot_free(r->snap);
	free(r->kernel);
	free(r->initrd);
}

/* Opens the snapshot's image KEY ("kernel", "initrd") NAME: beneath the
 * image directory DIRFD (IMAGE_DIR) by the daemon's own rules, or, with
 * DIRFD < 0, the path as it is.  *SHOWN is its path for messages.  The
 * fd, or -1 after saying why. */
static int open_image(const char *dir, const char *image_dir, int dirfd, const char *key, const char *name,
		      char **shown)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	int fd, status;

	if (dirfd >= 0) {
		fd = kevd_imagedir_open(dirfd, key, name, &status, &err);
		if (fd < 0) {
			fprintf(stderr, "kevd: snapshot '%s': %s (image directory '%s')\n", dir, err.msg, image_dir);
			return -1;
		}
		if (asprintf(shown, "%s/%s", image_dir, name) < 0) {
			*shown = NULL;
			close(fd);
			fprintf(stderr, "kevd: out of memory\n");
			return -1;
		}
		return fd;
	}
	fd = open(name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		fprintf(stderr, "kevd: snapshot '%s': %s '%s': %s (%s; --image-dir DIR looks beneath DIR)\n", dir, key,
			name, strerror(errno), name[0] == '/' ? "an absolute path" : "looked for in the current directory");
		return -1;
	}
	*shown = strdup(name);
	if (!*shown) {
		close(fd);
		fprintf(stderr, "kevd: out of memory\n");
		return -1;
	}
	return fd;
}

/* --restore: reads the snapshot in O->restore into R and makes O->cfg its
 * machine, with the memory file and the page list handed over for
 * kevd_vm_create(); 0, or -1 after saying why. */
static int restore_config(struct run_options *o, struct run_restore *r)
{
	struct kevd_vm_config *cfg = &o->cfg;
	struct kevd_error err = KEVD_ERROR_INIT;
	cleanup_close int dirfd = -1, kernel_fd = -1, initrd_fd = -1;
	struct kevd_snapshot *s;

	if (kevd_snapshot_load_dir(o->restore, &r->snap, &err) < 0) {
		fprintf(stderr, "kevd: %s\n", err.msg);
		return -1;
	}
	s = r->snap;
	if (o->image_dir && (dirfd = kevd_imagedir_open_dir(o->image_dir, &err)) < 0) {
		fprintf(stderr, "kevd: %s\n", err.msg);
		return -1;
	}
	kernel_fd = open_image(o->restore, o->image_dir, dirfd, "kernel", s->kernel, &r->kernel);
	if (kernel_fd < 0)
		return -1;
	if (s->initrd) {
		initrd_fd = open_image(o->restore, o->image_dir, dirfd, "initrd", s->initrd, &r->initrd);
		if (initrd_fd < 0)
			return -1;
		cfg->initrd = r->initrd;
		cfg->initrd_fd_valid = true;
		cfg->initrd_fd = kevd_steal_fd(&initrd_fd);
	}
	cfg->kernel = r->kernel;
	cfg->kernel_fd_valid = true;
	cfg->kernel_fd = kevd_steal_fd(&kernel_fd);
	cfg->memory_mib = s->memory_mib;
	cfg->vcpus = s->vcpus;
	cfg->cmdline = s->cmdline;
	cfg->protocol = s->protocol;
	/* The VM takes the memory file and the page list, even on failure. */
	r->rs = (struct kevd_vm_restore){
		.memory_fd = s->memory_fd, .memory_path = s->memory_path, .name = s->name, .pages = s->pages,
		.npages = s->npages,
		.state = s->state, .state_len = s->state_len, .kernel_id = &s->kernel_id,
	};
	s->memory_fd = -1;
	s->pages = NULL;
	cfg->restore = &r->rs;
	return 0;
}

/* Creates and starts the VM through the calls the daemon makes; 0, or -1
 * after saying why. */
static int start_vm(const struct kevd_vm_config *cfg, struct kevd_vm **out)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_vm *vm = NULL;

	if (kevd_vm_create(cfg, &vm, &err) < 0 || kevd_vm_start(vm, &err) < 0) {
		fprintf(stderr, "kevd: %s\n", err.msg);
		kevd_vm_free(vm);
		return -1;
	}
	*out = vm;
	return 0;
}

/* Milliseconds left of TIMEOUT_S seconds since T0 (<= 0: none). */
static long long ms_left(const struct timespec *t0, unsigned long long timeout_s)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)timeout_s * 1000 - ((now.tv_sec - t0->tv_sec) * 1000LL + (now.tv_nsec - t0->tv_nsec) / 1000000);
}

/* A signal arrived on SFD: stop the VM with it as the reason. */
static void stop_by_signal(struct kevd_vm *vm, int sfd, struct run_end *end)
{
	struct signalfd_siginfo si;
	char why[64];

	if (read(sfd, &si, sizeof(si)) != sizeof(si))
		return;
	snprintf(why, sizeof(why), "stopped by %s", strsignal((int)si.ssi_signo));
	end->by_signal = kevd_vm_stop(vm, why);
}

/* Waits until the VM has ended (EFD), stopping it on a signal (SFD) or
 * once TIMEOUT_S seconds pass, then until its threads are gone. */
static void wait_for_end(struct kevd_vm *vm, int efd, int sfd, unsigned long long timeout_s, struct run_end *end)
{
	bool stop_sent = false;
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pfd[2] = { { efd, POLLIN, 0 }, { sfd, POLLIN, 0 } };
		int wait_ms = -1;

		if (timeout_s && !stop_sent) {
			long long left = ms_left(&t0, timeout_s);

			if (left <= 0) {
				char why[64];

				snprintf(why, sizeof(why), "timeout after %llu s", timeout_s);
				/* Then wait for the end event without a deadline. */
				stop_sent = true;
				end->timed_out = kevd_vm_stop(vm, why);
				continue;
			}
			wait_ms = left > 1000000 ? 1000000 : (int)left;
		}
		if (poll(pfd, 2, wait_ms) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break;
		if (pfd[1].revents)
			stop_by_signal(vm, sfd, end);
	}
	kevd_vm_wait(vm, -1);
}

static void print_json_report(struct kevd_vm *vm, bool quiet, const char *restored_from)
{
	json_t *report = kevd_json_vm_report(vm);
	char *s;

	if (restored_from)
		json_object_set_new(report, "restored_from", json_string(restored_from));
	s = json_dumps(report, JSON_INDENT(2));

	if (s) {
		fflush(stdout);
		printf("%s%s\n", quiet ? "" : "\n", s);
		free(s);
	}
	json_decref(report);
}

static void print_text_report(struct kevd_vm *vm, const char *restored_from)
{
	struct kevd_pager_stats st;
	char reason[512];
	struct kevd_vm_times t;
	struct kevd_error err = KEVD_ERROR_INIT;
	uint64_t mapped, priv;
	int status = kevd_vm_exit_status(vm);

	kevd_vm_pager_stats(vm, &st);
	kevd_vm_reason(vm, reason, sizeof(reason));
	kevd_vm_times(vm, &t);
	fprintf(stderr, "\n--- kevd: vm '%s' %s: %s", kevd_vm_name(vm), kevd_vm_state_name(kevd_vm_state(vm)), reason);
	if (status >= 0)
		fprintf(stderr, " (exit status %d)", status);
	fprintf(stderr, "\n");
	if (restored_from)
		fprintf(stderr, "    restored from snapshot '%s' in '%s'\n", kevd_vm_snapshot_name(vm), restored_from);
	if (t.first_run_ns)
		fprintf(stderr, "    first guest instruction %.3f ms after create", (double)(t.first_run_ns - t.create_ns) / 1e6);
	if (t.end_ns && t.start_ns)
		fprintf(stderr, ", ran %.3f s", (double)(t.end_ns - t.start_ns) / 1e9);
	fprintf(stderr, "\n    paging: %s", st.eager ? "eager" : st.shared ? "lazy (shared image)" : "lazy-private");
	if (!st.eager)
		fprintf(stderr, ", %u handler thread(s), fault-around %u..%u page(s)", st.handler_threads, st.window_pages,
			st.window_max_pages);
	fprintf(stderr, "\n    image pages %" PRIu64 ", loaded %" PRIu64 " (%.1f%%: %" PRIu64 " on demand, %" PRIu64
		" by fault-around), %" PRIu64 " bytes read\n",
		st.image_pages, st.pages_loaded, st.image_pages ? 100.0 * (double)st.pages_loaded / (double)st.image_pages : 0.0,
		st.pages_loaded_demand, st.pages_loaded_around, st.bytes_read);
	if (kevd_vm_pager_residency(vm, &mapped, &priv, &err) == 0)
		fprintf(stderr, "    image pages in the VM's memory %" PRIu64 ", %" PRIu64 " of them its own copy\n", mapped,
			priv);
	if (!st.eager) {
		fprintf(stderr, "    faults %" PRIu64 " (%" PRIu64 " coalesced), loads %" PRIu64 ", failures %" PRIu64
			", mean load %.1f us\n", st.faults, st.faults_coalesced, st.loads, st.load_failures,
			st.loads ? (double)st.latency_sum_ns / (double)st.loads / 1e3 : 0.0);
	} else {
		fprintf(stderr, "    eager load took %.3f ms\n", (double)st.eager_load_ns / 1e6);
	}
	for (unsigned i = 0; i < kevd_vm_vcpu_count(vm); i++) {
		struct kevd_vcpu_info vi;

		kevd_vm_vcpu_info_from(vm, i, &st, &vi);
		fprintf(stderr, "    vcpu %u: %" PRIu64 " page faults, exits io %" PRIu64 " mmio %" PRIu64 " hlt %" PRIu64
			" intr %" PRIu64 "\n", i, vi.pager_faults, vi.exits[KEVD_EXIT_IO], vi.exits[KEVD_EXIT_MMIO],
			vi.exits[KEVD_EXIT_HLT], vi.exits[KEVD_EXIT_INTR]);
	}
}

/* The documented exit status (see the top of this file) of how VM ended. */
static int exit_status(struct kevd_vm *vm, const struct run_end *end)
{
	switch (kevd_vm_state(vm)) {
	case KEVD_VM_EXITED:
		return kevd_vm_exit_status(vm) >= 0 ? kevd_vm_exit_status(vm) : 0;
	case KEVD_VM_CRASHED:
		return 3;
	case KEVD_VM_STOPPED:
		return end->by_signal ? 130 : end->timed_out ? 124 : 1;
	default:
		return 1;
	}
}

int kevd_cmd_run(int argc, char **argv)
{
	struct run_options o = {
		.cfg = { .name = "run", .memory_mib = 256, .vcpus = 1, .console_fd = STDOUT_FILENO,
			 .vcpu_nice = KEVD_VM_DEFAULT_VCPU_NICE },
	};
	struct run_end end = { false, false };
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_imagecache *images = NULL;  /* one VM, but the same path as the daemon's */
	struct run_restore restore = { NULL };
	struct kevd_vm *vm = NULL;
	cleanup_close int sfd = -1;  /* SIGINT and SIGTERM, blocked in every thread */
	cleanup_close int efd = -1;  /* the VM's end; outlives the VM, whose threads write it */
	int rc = parse_options(argc, argv, &o);

	if (rc != RUN_GO)
		return rc;
	if (open_wait_fds(&sfd, &efd) < 0)
		return 1;
	o.cfg.on_end = on_end;
	o.cfg.cb_arg = &efd;
	if (kevd_imagecache_new(NULL, &images, &err) < 0) {
		fprintf(stderr, "kevd: %s\n", err.msg);
		return 1;
	}
	o.cfg.image_cache = images;
	if ((o.restore && restore_config(&o, &restore) < 0) || start_vm(&o.cfg, &vm) < 0) {
		run_restore_free(&restore);
		kevd_imagecache_free(images);
		return 1;
	}
	wait_for_end(vm, efd, sfd, o.timeout_s, &end);
	if (o.json)
		print_json_report(vm, o.quiet, o.restore);
	else
		print_text_report(vm, o.restore);
	rc = exit_status(vm, &end);
	kevd_vm_free(vm);
	run_restore_free(&restore);
	kevd_imagecache_free(images);
	return rc;
}
