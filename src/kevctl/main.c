/*
 * kevctl, the command-line client of kevd's HTTP API (docs/kevctl.md).  A
 * thin front end in the manner of kevd's own: main() reads the global
 * options, sets up the transport (client.c) and hands the rest of the
 * command line to one command function (cmd_*.c), whose return value is
 * the exit status.  Every failure is printed here, as one line.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kevctl/format.h"
#include "kevctl/kevctl.h"

struct command {
	const char *name;
	kevctl_cmd_fn *fn;
	const char *synopsis;  /* NULL: hidden (for the bash completion) */
};

static const struct command commands[] = {
	{ "ls", kevctl_cmd_ls, "ls                      list VMs (name, id, state, vCPUs, memory, pages, faults, age)" },
	{ "create", kevctl_cmd_create,
	  "create --kernel IMG [--name N] [--initrd IMG] [--memory MiB] [--vcpus N] [--cmdline S]\n"
	  "         [--paging lazy|lazy-private|eager] [--eager] [--window PAGES] [--window-max PAGES]\n"
	  "         [--protocol auto|pvh|multiboot2] [--no-start]\n"
	  "                          create (and start) a VM; prints its id and name" },
	{ "run", kevctl_cmd_run,
	  "run [create's options] [--rm]\n"
	  "                          create a VM, print its console until it ends; exit status from its end" },
	{ "show", kevctl_cmd_show, "show VM                 one VM: state, reason, configuration, timings, vCPU exits" },
	{ "paging", kevctl_cmd_paging, "paging VM               pager counters and the load-latency histogram" },
	{ "console", kevctl_cmd_console, "console VM [-f]         the serial console; -f follows it until the VM ends" },
	{ "start", kevctl_cmd_start, "start VM                start a VM created with --no-start" },
	{ "stop", kevctl_cmd_stop, "stop VM                 stop a VM (it stays listed until rm)" },
	{ "pause", kevctl_cmd_pause, "pause VM                park a running VM's vCPUs: its memory and state hold still" },
	{ "resume", kevctl_cmd_resume, "resume VM               let a paused VM run on" },
	{ "rm", kevctl_cmd_rm, "rm VM                   stop if needed and delete a VM" },
	{ "snapshot", kevctl_cmd_snapshot,
	  "snapshot VM NAME [--stop]\n"
	  "                          take snapshot NAME of a running or paused VM, which then goes on\n"
	  "                          as it was (--stop: is stopped); prints the name, VM, pages kept" },
	{ "snapshots", kevctl_cmd_snapshots,
	  "snapshots               list snapshots (name, VM, kernel, memory, vCPUs, MiB kept, age)" },
	{ "snapshot-show", kevctl_cmd_snapshot_show,
	  "snapshot-show NAME      one snapshot: its VM's configuration, the pages kept, when" },
	{ "snapshot-rm", kevctl_cmd_snapshot_rm, "snapshot-rm NAME        delete a snapshot" },
	{ "restore", kevctl_cmd_restore,
	  "restore NAME [--name N] [--paging lazy|lazy-private|eager] [--eager] [--window PAGES]\n"
	  "         [--window-max PAGES] [--no-start]\n"
	  "                          a new VM from snapshot NAME (started unless --no-start); prints\n"
	  "                          its id and name" },
	{ "translate", kevctl_cmd_translate,
	  "translate VM (--gpa X | --gva X [--vcpu N])\n"
	  "                          a guest address's translation and page state" },
	{ "images", kevctl_cmd_images, "images                  the shared images: pages filled, bytes read, VMs, memory" },
	{ "health", kevctl_cmd_health, "health                  is kevd up; how many VMs" },
	{ "metrics", kevctl_cmd_metrics, "metrics                 the Prometheus text, raw" },
	{ "version", kevctl_cmd_version, "version                 kevctl's and kevd's versions" },
	{ "__names", kevctl_cmd_names, NULL },
	{ "__snapshots", kevctl_cmd_snapshot_names, NULL },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: kevctl [--socket PATH | --url http://ADDR:PORT [--token-file FILE]] [--json] COMMAND ...\n"
		   "\n"
		   "  --socket PATH      kevd's Unix socket (default $KEVD_SOCKET, else " KEVCTL_DEFAULT_SOCKET ")\n"
		   "  --url URL          reach kevd's TCP listener instead\n"
		   "  --token-file FILE  send the bearer token in FILE (for --url)\n"
		   "  --json             print the daemon's JSON as is (every command takes it)\n"
		   "\ncommands (a VM is its name or id, a snapshot its name):\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].synopsis)
			fprintf(f, "  %s\n", commands[i].synopsis);
	fprintf(f, "\nexit status: 0 ok, 1 other failure, 2 usage, 3 not found (404), 4 refused by kevd\n"
		   "(any other 4xx or 5xx), 5 kevd unreachable.  `run`, once its VM exists: the guest's\n"
		   "debug-exit status ((v << 1) | 1), 0 other exits, 3 crashed, 1 failed or stopped.\n");
}

int kevctl_usage(struct kevctl_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx->err.msg, sizeof(ctx->err.msg), fmt, ap);
	va_end(ap);
	ctx->err.errnum = EINVAL;
	return KEVCTL_USAGE;
}

int kevctl_print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	putchar('\n');
	return KEVCTL_OK;
}

int kevctl_getopt(struct kevctl_ctx *ctx, int argc, char **argv, const char *shortopts,
		  const struct option *extra)
{
	struct option all[24] = { { "json", no_argument, NULL, 'J' } };
	char spec[64];
	size_t n = 1;
	int c;

	for (; extra && extra[n - 1].name && n < 23; n++)
		all[n] = extra[n - 1];
	/* ':' first: a missing argument is reported as ':', not '?'. */
	snprintf(spec, sizeof(spec), ":%s", shortopts ? shortopts : "");
	while ((c = getopt_long(argc, argv, spec, all, NULL)) == 'J')
		ctx->json = true;
	if (c == '?') {
		if (optopt)
			kevctl_usage(ctx, "%s: unknown option '-%c' (try 'kevctl %s --help')", argv[0], optopt, argv[0]);
		else
			kevctl_usage(ctx, "%s: unknown option '%s' (try 'kevctl %s --help')", argv[0],
				     argv[optind - 1], argv[0]);
	} else if (c == ':') {
		kevctl_usage(ctx, "%s: option '%s' needs a value", argv[0], argv[optind - 1]);
		c = '?';
	}
	return c;
}

const char *kevctl_one_vm(struct kevctl_ctx *ctx, int argc, char **argv)
{
	if (optind != argc - 1 || !argv[optind][0]) {
		kevctl_usage(ctx, "%s: give exactly one VM (a name or an id)", argv[0]);
		return NULL;
	}
	return argv[optind];
}

/* A command's --help: its synopsis, found before any real work. */
static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

/* The global options; returns -1 to go on, else the exit status. */
static int global_options(struct kevctl_ctx *ctx, int argc, char **argv, const char **socket,
			  const char **url, const char **token_file)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' }, { "url", required_argument, NULL, 'u' },
		{ "token-file", required_argument, NULL, 't' }, { "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' }, { NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': *socket = optarg; break;
		case 'u': *url = optarg; break;
		case 't': *token_file = optarg; break;
		case 'J': ctx->json = true; break;
		case 'h': usage(stdout); return KEVCTL_OK;
		case 'V': printf("kevctl %s\n", PACKAGE_VERSION); return KEVCTL_OK;
		case ':': return kevctl_usage(ctx, "option '%s' needs a value", argv[optind - 1]);
		default: return kevctl_usage(ctx, "unknown option '%s' (try 'kevctl --help')", argv[optind - 1]);
		}
	}
	if (*url && strncmp(*url, "http://", 7))
		return kevctl_usage(ctx, "--url '%s' is not http://ADDR:PORT (kevd has no TLS)", *url);
	if (*token_file && !*url)
		return kevctl_usage(ctx, "--token-file is for --url: the Unix socket takes no token");
	if (optind >= argc)
		return kevctl_usage(ctx, "no command (try 'kevctl --help')");
	return -1;
}

static int dispatch(struct kevctl_ctx *ctx, const struct command *cmd, int argc, char **argv, const char *socket,
		    const char *url, const char *token_file)
{
	int rc;

	if (wants_help(argc, argv)) {
		printf("usage: kevctl [global options] %s\n", cmd->synopsis ? cmd->synopsis : cmd->name);
		return KEVCTL_OK;
	}
	if (kevctl_client_init(&ctx->client, socket, url, token_file, &ctx->err) < 0) {
		kevctl_client_free(&ctx->client);
		return KEVCTL_FAIL;
	}
	optind = 0;  /* glibc: start the command's getopt afresh */
	rc = cmd->fn(ctx, argc, argv);
	kevctl_client_free(&ctx->client);
	return rc;
}

int main(int argc, char **argv)
{
	static struct kevctl_ctx ctx = { .err = KEVD_ERROR_INIT };
	const char *socket = getenv("KEVD_SOCKET"), *url = NULL, *token_file = NULL;
	int rc;

	if (!socket || !*socket)
		socket = KEVCTL_DEFAULT_SOCKET;
	rc = global_options(&ctx, argc, argv, &socket, &url, &token_file);
	if (rc < 0) {
		const char *name = argv[optind];

		rc = kevctl_usage(&ctx, "unknown command '%s' (try 'kevctl --help')", name);
		curl_global_init(CURL_GLOBAL_DEFAULT);
		for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (!strcmp(commands[i].name, name)) {
				kevd_error_clear(&ctx.err);
				rc = dispatch(&ctx, &commands[i], argc - optind, argv + optind, socket, url, token_file);
				break;
			}
		curl_global_cleanup();
	}
	/* What was printed must have reached stdout (a full disk, a closed
	 * descriptor): a script reading it would otherwise take a cut answer
	 * for the whole one. */
	if ((fflush(stdout) == EOF || ferror(stdout)) && rc == KEVCTL_OK) {
		kevd_error_sys(&ctx.err, errno ? errno : EIO, "writing the output");
		rc = KEVCTL_FAIL;
	}
	if (rc != KEVCTL_OK && ctx.err.msg[0]) {
		/* A fault_message may quote what a client sent (a name). */
		char msg[sizeof(ctx.err.msg) * 4];

		kevctl_escape(msg, sizeof(msg), ctx.err.msg);
		fprintf(stderr, "kevctl: %s\n", msg);
	}
	return rc;
}
