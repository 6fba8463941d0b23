/*
 * What kevctl's commands share: the context main() builds from the global
 * options, and one entry point per command.  Each command parses its own
 * options from ARGV (ARGV[0] is the command's name) and returns kevctl's
 * exit status; on failure it leaves the message in ctx->err for main() to
 * print as the single line "kevctl: <message>".
 */
#ifndef KEVCTL_KEVCTL_H
#define KEVCTL_KEVCTL_H

#include <stdbool.h>

#include "common/error.h"
#include "kevctl/client.h"

struct kevctl_ctx {
	struct kevctl_client client;
	bool json;              /* print the daemon's JSON as is */
	struct kevd_error err;
};

typedef int kevctl_cmd_fn(struct kevctl_ctx *ctx, int argc, char **argv);

/* cmd_vm.c */
kevctl_cmd_fn kevctl_cmd_ls, kevctl_cmd_create, kevctl_cmd_restore, kevctl_cmd_show, kevctl_cmd_start,
	kevctl_cmd_stop, kevctl_cmd_pause, kevctl_cmd_resume, kevctl_cmd_rm, kevctl_cmd_names;
/* cmd_snapshot.c */
kevctl_cmd_fn kevctl_cmd_snapshot, kevctl_cmd_snapshots, kevctl_cmd_snapshot_show, kevctl_cmd_snapshot_rm,
	kevctl_cmd_snapshot_names;
/* The "name" of every object in the array KEY of GET PATH, one a line
 * (the completion's lists of VMs and snapshots). */
int kevctl_print_names(struct kevctl_ctx *ctx, const char *path, const char *key);
/* cmd_run.c */
kevctl_cmd_fn kevctl_cmd_run, kevctl_cmd_console;
/* cmd_info.c */
kevctl_cmd_fn kevctl_cmd_paging, kevctl_cmd_translate, kevctl_cmd_images, kevctl_cmd_health, kevctl_cmd_metrics,
	kevctl_cmd_version;

/* Parses the options every command takes (--json, --help) plus EXTRA
 * (getopt_long's, may be NULL): returns the option for the caller to
 * handle, -1 at the end, or '?' after a usage error was set in ctx->err. */
struct option;
int kevctl_getopt(struct kevctl_ctx *ctx, int argc, char **argv, const char *shortopts,
		  const struct option *extra);

/* A usage error: sets ctx->err and returns KEVCTL_USAGE. */
int kevctl_usage(struct kevctl_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The single VM operand after the options, or NULL after a usage error. */
const char *kevctl_one_vm(struct kevctl_ctx *ctx, int argc, char **argv);
/* The common start of the one-VM commands: no options, one VM argument,
 * METHOD on /v1/vms/<VM><SUFFIX> with BODY (NULL = none); the answer's JSON
 * in *OUT (none for DELETE).  A kevctl exit status. */
int kevctl_vm_request(struct kevctl_ctx *ctx, int argc, char **argv, const char *method, const char *suffix,
		      json_t *body, json_t **out);

/* create's and run's options (cmd_vm.c) into the POST /v1/vms *BODY; RM
 * (run's --rm) is refused when NULL.  Returns KEVCTL_OK or KEVCTL_USAGE. */
int kevctl_create_options(struct kevctl_ctx *ctx, int argc, char **argv, json_t **body, bool *rm);

/* Prints J (compact, as kevd sent it) and a newline; KEVCTL_OK. */
int kevctl_print_json(const json_t *j);

#endif
