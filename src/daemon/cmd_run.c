/*
 * `kevd run`: boot one VM in the foreground, stream its console to stdout,
 * and print its lazy-paging statistics at the end.
 *
 * The main thread only waits: SIGINT/SIGTERM arrive on a signalfd (blocked
 * in every thread, vCPU threads inherit the mask) and the VM's end on an
 * eventfd, so a stop request is handled in the same loop as the timeout.
 *
 * Exit status: the guest's (as QEMU's isa-debug-exit: (v << 1) | 1) when it
 * wrote the debug exit port; 0 when it ended otherwise (power-off, halt);
 * 2 usage; 1 the VM could not be created or failed; 3 crashed; 124 timeout;
 * 130 stopped by a signal.
 */
#include "config.h"

#include <errno.h>
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

#include "api/stats_json.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "daemon/commands.h"
#include "vmm/vm.h"

static const char usage_text[] =
	"usage: kevd run --kernel PATH [--initrd PATH] [--memory MiB] [--vcpus N] [--cmdline STR]\n"
	"                [--eager] [--window PAGES] [--pager-threads N] [--protocol auto|multiboot2|pvh]\n"
	"                [--ap-start auto|entry|sipi]\n"
	"                [--timeout SECONDS] [--json] [--quiet] [--log-level LEVEL]\n";

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

static void print_text_report(struct kevd_vm *vm)
{
	struct kevd_pager_stats st;
	char reason[512];
	struct kevd_vm_times t;
	int status = kevd_vm_exit_status(vm);

	kevd_vm_pager_stats(vm, &st);
	kevd_vm_reason(vm, reason, sizeof(reason));
	kevd_vm_times(vm, &t);
	fprintf(stderr, "\n--- kevd: vm '%s' %s: %s", kevd_vm_name(vm), kevd_vm_state_name(kevd_vm_state(vm)), reason);
	if (status >= 0)
		fprintf(stderr, " (exit status %d)", status);
	fprintf(stderr, "\n");
	if (t.first_run_ns)
		fprintf(stderr, "    first guest instruction %.3f ms after create", (double)(t.first_run_ns - t.create_ns) / 1e6);
	if (t.end_ns && t.start_ns)
		fprintf(stderr, ", ran %.3f s", (double)(t.end_ns - t.start_ns) / 1e9);
	fprintf(stderr, "\n    paging: %s", st.eager ? "eager" : "lazy");
	if (!st.eager)
		fprintf(stderr, ", %u handler thread(s), fault-around %u page(s)", st.handler_threads, st.window_pages);
	fprintf(stderr, "\n    image pages %" PRIu64 ", loaded %" PRIu64 " (%.1f%%: %" PRIu64 " on demand, %" PRIu64
		" by fault-around), %" PRIu64 " bytes read\n",
		st.image_pages, st.pages_loaded, st.image_pages ? 100.0 * (double)st.pages_loaded / (double)st.image_pages : 0.0,
		st.pages_loaded_demand, st.pages_loaded_around, st.bytes_read);
	if (!st.eager) {
		fprintf(stderr, "    faults %" PRIu64 " (%" PRIu64 " coalesced), loads %" PRIu64 ", failures %" PRIu64
			", mean load %.1f us\n", st.faults, st.faults_coalesced, st.loads, st.load_failures,
			st.loads ? (double)st.latency_sum_ns / (double)st.loads / 1e3 : 0.0);
	} else {
		fprintf(stderr, "    eager load took %.3f ms\n", (double)st.eager_load_ns / 1e6);
	}
	for (unsigned i = 0; i < kevd_vm_vcpu_count(vm); i++) {
		struct kevd_vcpu_info vi;

		kevd_vm_vcpu_info(vm, i, &vi);
		fprintf(stderr, "    vcpu %u: %" PRIu64 " page faults, exits io %" PRIu64 " mmio %" PRIu64 " hlt %" PRIu64
			" intr %" PRIu64 "\n", i, vi.pager_faults, vi.exits[KEVD_EXIT_IO], vi.exits[KEVD_EXIT_MMIO],
			vi.exits[KEVD_EXIT_HLT], vi.exits[KEVD_EXIT_INTR]);
	}
}

int kevd_cmd_run(int argc, char **argv)
{
	enum { O_KERNEL = 1, O_INITRD, O_APSTART, O_MEMORY, O_VCPUS, O_CMDLINE, O_EAGER, O_WINDOW, O_THREADS, O_PROTO,
	       O_TIMEOUT, O_JSON, O_QUIET, O_LOG, O_HELP };
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, O_KERNEL },
		{ "initrd", required_argument, NULL, O_INITRD },
		{ "ap-start", required_argument, NULL, O_APSTART },
		{ "memory", required_argument, NULL, O_MEMORY },
		{ "vcpus", required_argument, NULL, O_VCPUS },
		{ "cmdline", required_argument, NULL, O_CMDLINE },
		{ "eager", no_argument, NULL, O_EAGER },
		{ "window", required_argument, NULL, O_WINDOW },
		{ "pager-threads", required_argument, NULL, O_THREADS },
		{ "protocol", required_argument, NULL, O_PROTO },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "json", no_argument, NULL, O_JSON },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct kevd_vm_config cfg = { .name = "run", .memory_mib = 256, .vcpus = 1, .console_fd = STDOUT_FILENO };
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_vm *vm = NULL;
	unsigned long long v, timeout_s = 0;
	bool json = false, quiet = false, by_signal = false, timed_out = false;
	bool stop_sent = false;
	cleanup_close int sfd = -1;
	cleanup_close int efd = -1;
	struct timespec t0;
	sigset_t mask;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_KERNEL: cfg.kernel = optarg; break;
		case O_INITRD: cfg.initrd = optarg; break;
		case O_APSTART:
			if (!strcmp(optarg, "auto"))
				cfg.ap_start = KEVD_AP_AUTO;
			else if (!strcmp(optarg, "entry"))
				cfg.ap_start = KEVD_AP_ENTRY;
			else if (!strcmp(optarg, "sipi"))
				cfg.ap_start = KEVD_AP_SIPI;
			else {
				fprintf(stderr, "kevd run: --ap-start: '%s' is not auto, entry or sipi\n", optarg);
				return 2;
			}
			break;
		case O_MEMORY:
			if (parse_uint("memory", optarg, 1ull << 20, &v) < 0)
				return 2;
			cfg.memory_mib = v;
			break;
		case O_VCPUS:
			if (parse_uint("vcpus", optarg, KEVD_VM_MAX_VCPUS, &v) < 0)
				return 2;
			cfg.vcpus = (unsigned)v;
			break;
		case O_CMDLINE: cfg.cmdline = optarg; break;
		case O_EAGER: cfg.eager = true; break;
		case O_WINDOW:
			if (parse_uint("window", optarg, KEVD_PAGER_MAX_WINDOW, &v) < 0 || v == 0) {
				if (v == 0)
					fprintf(stderr, "kevd run: --window: at least 1 page (1 turns fault-around off)\n");
				return 2;
			}
			cfg.window_pages = (unsigned)v;
			break;
		case O_THREADS:
			if (parse_uint("pager-threads", optarg, KEVD_PAGER_MAX_THREADS, &v) < 0 || v == 0) {
				if (v == 0)
					fprintf(stderr, "kevd run: --pager-threads: at least 1\n");
				return 2;
			}
			cfg.pager_threads = (unsigned)v;
			break;
		case O_PROTO:
			if (!strcmp(optarg, "auto"))
				cfg.protocol = KEVD_BOOT_AUTO;
			else if (!strcmp(optarg, "multiboot2"))
				cfg.protocol = KEVD_BOOT_MULTIBOOT2;
			else if (!strcmp(optarg, "pvh"))
				cfg.protocol = KEVD_BOOT_PVH;
			else {
				fprintf(stderr, "kevd run: --protocol: '%s' is not auto, multiboot2 or pvh\n", optarg);
				return 2;
			}
			break;
		case O_TIMEOUT:
			if (parse_uint("timeout", optarg, 1000000, &timeout_s) < 0)
				return 2;
			break;
		case O_JSON: json = true; break;
		case O_QUIET: quiet = true; break;
		case O_LOG: {
			int l = kevd_log_parse_level(optarg);

			if (l < 0) {
				fprintf(stderr, "kevd run: --log-level: '%s' is not error, warn, info or debug\n", optarg);
				return 2;
			}
			kevd_log_set_level((enum kevd_log_level)l);
			break;
		}
		case O_HELP:
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "kevd run: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!cfg.kernel) {
		fprintf(stderr, "kevd run: --kernel PATH is required\n");
		return 2;
	}
	if (quiet)
		cfg.console_fd = -1;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	efd = eventfd(0, EFD_CLOEXEC);
	if (sfd < 0 || efd < 0) {
		fprintf(stderr, "kevd run: %s\n", strerror(errno));
		return 1;
	}
	cfg.on_end = on_end;
	cfg.cb_arg = &efd;

	if (kevd_vm_create(&cfg, &vm, &err) < 0 || kevd_vm_start(vm, &err) < 0) {
		fprintf(stderr, "kevd: %s\n", err.msg);
		kevd_vm_free(vm);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pfd[2] = { { efd, POLLIN, 0 }, { sfd, POLLIN, 0 } };
		int wait_ms = -1;

		if (timeout_s && !stop_sent) {
			struct timespec now;
			long long left;

			clock_gettime(CLOCK_MONOTONIC, &now);
			left = (long long)timeout_s * 1000 - ((now.tv_sec - t0.tv_sec) * 1000LL +
							     (now.tv_nsec - t0.tv_nsec) / 1000000);
			if (left <= 0) {
				char why[64];

				snprintf(why, sizeof(why), "timeout after %llu s", timeout_s);
				/* Then wait for the end event without a deadline. */
				stop_sent = true;
				timed_out = kevd_vm_stop(vm, why);
				continue;
			}
			wait_ms = left > 1000000 ? 1000000 : (int)left;
		}
		if (poll(pfd, 2, wait_ms) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break;
		if (pfd[1].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				char why[64];

				snprintf(why, sizeof(why), "stopped by %s", strsignal((int)si.ssi_signo));
				by_signal = kevd_vm_stop(vm, why);
			}
		}
	}
	kevd_vm_wait(vm, -1);

	if (json) {
		json_t *report = kevd_json_vm_report(vm);
		char *s = json_dumps(report, JSON_INDENT(2));

		if (s) {
			fflush(stdout);
			printf("%s%s\n", quiet ? "" : "\n", s);
			free(s);
		}
		json_decref(report);
	} else {
		print_text_report(vm);
	}
	switch (kevd_vm_state(vm)) {
	case KEVD_VM_EXITED:
		rc = kevd_vm_exit_status(vm) >= 0 ? kevd_vm_exit_status(vm) : 0;
		break;
	case KEVD_VM_CRASHED: rc = 3; break;
	case KEVD_VM_STOPPED: rc = by_signal ? 130 : timed_out ? 124 : 1; break;
	default: rc = 1; break;
	}
	kevd_vm_free(vm);
	return rc;
}
