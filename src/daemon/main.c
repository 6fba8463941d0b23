/*
 * kevd's command line: a thin front end that picks a subcommand and leaves
 * all work to the libraries under src/.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "common/sandbox.h"
#include "daemon/commands.h"
#include "pager/pager.h"
#include "vmm/vm.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kevd COMMAND [ARGS]\n"
		"\n"
		"       kevd [serve] [--config FILE] [--socket PATH] ... (the daemon; kevd serve --help)\n"
		"\n"
		"commands:\n"
		"  serve                   run the daemon (the default)\n"
		"  run --kernel PATH ...   boot one VM in the foreground (kevd run --help)\n"
		"  run --restore DIR ...   restore a snapshot directory in the foreground\n"
		"  inspect PATH [--json]   show what the pager sees in a kernel image\n"
		"  version                 print the version\n");
}

/* The threads' seccomp filters, compiled now rather than by the first
 * VM's threads on the way to its first instruction.  What fails here says
 * so again, as a warning, when a thread is confined. */
static void prepare_sandboxes(void)
{
	struct kevd_error ignored = KEVD_ERROR_INIT;

	kevd_sandbox_prepare(&kevd_vcpu_sandbox_role, &ignored);
	kevd_sandbox_prepare(&kevd_pager_sandbox_role, &ignored);
}

int main(int argc, char **argv)
{
	struct kevd_error err = KEVD_ERROR_INIT;

	/* Before any thread exists: every command may run VMs. */
	if (kevd_vm_signals_install(&err) < 0) {
		fprintf(stderr, "kevd: %s\n", err.msg);
		return 1;
	}
	if (argc < 2 || (argv[1][0] == '-' && strcmp(argv[1], "--help") && strcmp(argv[1], "-h") &&
			 strcmp(argv[1], "--version"))) {
		prepare_sandboxes();
		return kevd_cmd_serve(argc, argv);
	}
	if (!strcmp(argv[1], "serve")) {
		prepare_sandboxes();
		return kevd_cmd_serve(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "run")) {
		prepare_sandboxes();
		return kevd_cmd_run(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "inspect"))
		return kevd_cmd_inspect(argc - 1, argv + 1);
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("kevd %s\n", PACKAGE_VERSION);
#ifdef KEVD_FAULT_INJECTION
		printf("fault injection: on ($KEVD_FAULT_INJECT)\n");
#endif
		return 0;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "kevd: unknown command '%s' (try 'kevd help')\n", argv[1]);
	return 2;
}
