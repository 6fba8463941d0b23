/*
 * The VM lifecycle commands: ls, create, restore, show, start, stop,
 * pause, resume, rm, and the hidden __names for the bash completion.  Each
 * is one or a few requests and a rendering of the answer; --json prints
 * the answer instead.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kevctl/format.h"
#include "kevctl/kevctl.h"

#define PATH_MAX_LEN 512

static json_int_t num(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* One ls row; the pager's page and fault counts take a second request. */
static int ls_row(struct kevctl_ctx *ctx, struct kevctl_table *t, const json_t *vm)
{
	const json_t *cfg = json_object_get(vm, "config");
	char vcpus[16], mem[24], pages[48] = "-", faults[24] = "-", age[16], path[PATH_MAX_LEN];
	json_t *paging = NULL;
	struct kevd_error ignored = KEVD_ERROR_INIT;

	snprintf(vcpus, sizeof(vcpus), "%" JSON_INTEGER_FORMAT, num(cfg, "vcpus"));
	snprintf(mem, sizeof(mem), "%" JSON_INTEGER_FORMAT, num(cfg, "memory_mib"));
	kevctl_format_age(age, sizeof(age), kevctl_str(vm, "created_at"));
	/* A VM deleted since the list was read keeps its row, with "-". */
	if (kevctl_vm_path(path, sizeof(path), kevctl_str(vm, "id"), "/paging", &ignored) == KEVCTL_OK &&
	    kevctl_request_json(&ctx->client, "GET", path, NULL, &paging, &ignored) == KEVCTL_OK) {
		snprintf(pages, sizeof(pages), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
			 num(paging, "pages_loaded"), num(paging, "image_pages"));
		snprintf(faults, sizeof(faults), "%" JSON_INTEGER_FORMAT, num(paging, "faults"));
	}
	json_decref(paging);
	return kevctl_table_add(t, (const char *const[]){ kevctl_str(vm, "name"), kevctl_str(vm, "id"), kevctl_str(vm, "state"), vcpus,
						       mem, pages, faults, age });
}

int kevctl_cmd_ls(struct kevctl_ctx *ctx, int argc, char **argv)
{
	static const char *const header[] = { "NAME", "ID", "STATE", "VCPUS", "MEM_MIB", "PAGES", "FAULTS", "AGE" };
	struct kevctl_table t;
	json_t *list = NULL, *vm;
	size_t i;
	int rc;

	if (kevctl_getopt(ctx, argc, argv, "", NULL) != -1)
		return KEVCTL_USAGE;
	if (optind != argc)
		return kevctl_usage(ctx, "ls takes no operand");
	rc = kevctl_request_json(&ctx->client, "GET", "/v1/vms", NULL, &list, &ctx->err);
	if (rc != KEVCTL_OK)
		return rc;
	if (ctx->json) {
		kevctl_print_json(list);
		json_decref(list);
		return KEVCTL_OK;
	}
	if (kevctl_table_init(&t, 8, header) < 0)
		rc = KEVCTL_FAIL;
	json_array_foreach(json_object_get(list, "vms"), i, vm)
		if (rc == KEVCTL_OK && ls_row(ctx, &t, vm) < 0)
			rc = KEVCTL_FAIL;
	if (rc == KEVCTL_OK)
		kevctl_table_print(&t, stdout);
	else
		kevd_error_set(&ctx->err, ENOMEM, "out of memory");
	kevctl_table_free(&t);
	json_decref(list);
	return rc;
}

int kevctl_print_names(struct kevctl_ctx *ctx, const char *path, const char *key)
{
	json_t *list = NULL, *item;
	size_t i;
	int rc = kevctl_request_json(&ctx->client, "GET", path, NULL, &list, &ctx->err);

	json_array_foreach(json_object_get(list, key), i, item)
		printf("%s\n", kevctl_str(item, "name"));
	json_decref(list);
	return rc;
}

int kevctl_cmd_names(struct kevctl_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return kevctl_print_names(ctx, "/v1/vms", "vms");
}

/* A non-negative decimal that fits a JSON integer kevd will range-check. */
static int set_count(struct kevctl_ctx *ctx, json_t *body, const char *key, const char *opt, const char *arg)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (!*arg || *end || errno || v > INT32_MAX || arg[0] == '-')
		return kevctl_usage(ctx, "--%s '%s' is not a number", opt, arg);
	json_object_set_new(body, key, json_integer((json_int_t)v));
	return KEVCTL_OK;
}

/* JSON strings are UTF-8: text that is not cannot be sent, and must not
 * be dropped without a word. */
static int set_string(struct kevctl_ctx *ctx, json_t *body, const char *key, const char *opt, const char *arg)
{
	json_t *s = json_string(arg);

	if (!s)
		return kevctl_usage(ctx, "--%s: '%s' is not UTF-8 text", opt, arg);
	json_object_set_new(body, key, s);
	return KEVCTL_OK;
}

static int create_option(struct kevctl_ctx *ctx, int c, json_t *body, bool *rm)
{
	switch (c) {
	case 'n': return set_string(ctx, body, "name", "name", optarg);
	case 'k': return set_string(ctx, body, "kernel", "kernel", optarg);
	case 'i': return set_string(ctx, body, "initrd", "initrd", optarg);
	case 'c': return set_string(ctx, body, "cmdline", "cmdline", optarg);
	case 'p': return set_string(ctx, body, "protocol", "protocol", optarg);
	case 'e': json_object_set_new(body, "paging", json_string("eager")); return KEVCTL_OK;
	case 'P': return set_string(ctx, body, "paging", "paging", optarg);
	case 'W': return set_count(ctx, body, "window_max_pages", "window-max", optarg);
	case 'S': json_object_set_new(body, "start", json_false()); return KEVCTL_OK;
	case 'm': return set_count(ctx, body, "memory_mib", "memory", optarg);
	case 'v': return set_count(ctx, body, "vcpus", "vcpus", optarg);
	case 'w': return set_count(ctx, body, "window_pages", "window", optarg);
	case 'r':
		if (rm) {
			*rm = true;
			return KEVCTL_OK;
		}
		return kevctl_usage(ctx, "create: unknown option '--rm' (it is run's)");
	default: return KEVCTL_USAGE;
	}
}

int kevctl_create_options(struct kevctl_ctx *ctx, int argc, char **argv, json_t **out, bool *rm)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' }, { "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' }, { "memory", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'v' }, { "cmdline", required_argument, NULL, 'c' },
		{ "eager", no_argument, NULL, 'e' }, { "paging", required_argument, NULL, 'P' },
		{ "window", required_argument, NULL, 'w' }, { "window-max", required_argument, NULL, 'W' },
		{ "protocol", required_argument, NULL, 'p' }, { "no-start", no_argument, NULL, 'S' },
		{ "rm", no_argument, NULL, 'r' }, { NULL, 0, NULL, 0 },
	};
	json_t *body = json_object();
	int c;

	*out = NULL;
	if (!body)
		return kevd_error_set(&ctx->err, ENOMEM, "out of memory"), KEVCTL_FAIL;
	while ((c = kevctl_getopt(ctx, argc, argv, "", opts)) != -1)
		if (c == '?' || create_option(ctx, c, body, rm) != KEVCTL_OK) {
			json_decref(body);
			return KEVCTL_USAGE;
		}
	if (optind != argc || !json_object_get(body, "kernel")) {
		json_decref(body);
		if (optind != argc)
			return kevctl_usage(ctx, "%s: unexpected operand '%s'", argv[0], argv[optind]);
		return kevctl_usage(ctx, "%s: --kernel is required", argv[0]);
	}
	*out = body;
	return KEVCTL_OK;
}

/* A create's or an action's answer: the VM as one line, or its JSON. */
static void print_vm_line(const struct kevctl_ctx *ctx, const json_t *vm)
{
	if (ctx->json)
		kevctl_print_json(vm);
	else
		printf("%s %s %s\n", kevctl_str(vm, "id"), kevctl_str(vm, "name"), kevctl_str(vm, "state"));
}

int kevctl_cmd_create(struct kevctl_ctx *ctx, int argc, char **argv)
{
	json_t *body = NULL, *vm = NULL;
	int rc = kevctl_create_options(ctx, argc, argv, &body, NULL);

	if (rc != KEVCTL_OK)
		return rc;
	rc = kevctl_request_json(&ctx->client, "POST", "/v1/vms", body, &vm, &ctx->err);
	if (rc == KEVCTL_OK)
		print_vm_line(ctx, vm);
	json_decref(body);
	json_decref(vm);
	return rc;
}

/* restore takes create's options for how the new VM pages and whether it
 * starts; those for what the snapshot fixes are refused by name. */
int kevctl_cmd_restore(struct kevctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' }, { "eager", no_argument, NULL, 'e' },
		{ "paging", required_argument, NULL, 'P' }, { "window", required_argument, NULL, 'w' },
		{ "window-max", required_argument, NULL, 'W' }, { "no-start", no_argument, NULL, 'S' },
		{ "kernel", required_argument, NULL, 'k' }, { "initrd", required_argument, NULL, 'i' },
		{ "memory", required_argument, NULL, 'm' }, { "vcpus", required_argument, NULL, 'v' },
		{ "cmdline", required_argument, NULL, 'c' }, { "protocol", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *body = json_object(), *vm = NULL;
	int c, rc = KEVCTL_OK;

	if (!body)
		return kevd_error_set(&ctx->err, ENOMEM, "out of memory"), KEVCTL_FAIL;
	while (rc == KEVCTL_OK && (c = kevctl_getopt(ctx, argc, argv, "", opts)) != -1) {
		if (c == '?') {
			rc = KEVCTL_USAGE;
		} else if (strchr("kimvcp", c)) {
			const struct option *o = opts;

			while (o->val != c)
				o++;
			rc = kevctl_usage(ctx, "restore: --%s comes from the snapshot", o->name);
		} else {
			rc = create_option(ctx, c, body, NULL);
		}
	}
	if (rc == KEVCTL_OK && (optind != argc - 1 || !argv[optind][0]))
		rc = kevctl_usage(ctx, "restore: give exactly one snapshot name");
	if (rc == KEVCTL_OK)
		rc = set_string(ctx, body, "snapshot", "snapshot", argv[optind]);
	if (rc == KEVCTL_OK) {
		/* The daemon reads the snapshot's files before it answers. */
		ctx->client.timeout_ms = KEVCTL_SLOW_TIMEOUT_MS;
		rc = kevctl_request_json(&ctx->client, "POST", "/v1/vms", body, &vm, &ctx->err);
	}
	if (rc == KEVCTL_OK)
		print_vm_line(ctx, vm);
	json_decref(body);
	json_decref(vm);
	return rc;
}

int kevctl_vm_request(struct kevctl_ctx *ctx, int argc, char **argv, const char *method, const char *suffix,
			  json_t *body, json_t **out)
{
	char path[PATH_MAX_LEN];
	const char *vm;
	int rc;

	*out = NULL;
	if (kevctl_getopt(ctx, argc, argv, "", NULL) != -1)
		return KEVCTL_USAGE;
	vm = kevctl_one_vm(ctx, argc, argv);
	if (!vm)
		return KEVCTL_USAGE;
	rc = kevctl_vm_path(path, sizeof(path), vm, suffix, &ctx->err);
	if (rc != KEVCTL_OK)
		return rc;
	if (!strcmp(method, "DELETE")) {
		struct kevctl_response r;

		rc = kevctl_request(&ctx->client, method, path, NULL, &r, &ctx->err);
		kevctl_response_free(&r);
		return rc;
	}
	return kevctl_request_json(&ctx->client, method, path, body, out, &ctx->err);
}

static void show_vcpu(const json_t *v)
{
	const json_t *exits = json_object_get(v, "exits"), *count;
	const char *reason;

	printf("vcpu %" JSON_INTEGER_FORMAT ":      pager faults %" JSON_INTEGER_FORMAT ", exits:", num(v, "index"),
	       num(v, "pager_faults"));
	json_object_foreach((json_t *)exits, reason, count)
		if (json_integer_value(count))
			printf(" %s %" JSON_INTEGER_FORMAT, reason, json_integer_value(count));
	printf("\n");
}

static void show_vm(const json_t *vm)
{
	static const char *const timings[][2] = {
		{ "create_to_start_ns", "create to start" }, { "create_to_first_run_ns", "create to first run" },
		{ "boot_slot_wait_ns", "boot slot wait" },
		{ "start_to_first_exit_ns", "start to first exit" }, { "run_time_ns", "run time" },
	};
	const json_t *cfg = json_object_get(vm, "config"), *v;
	char age[16], buf[32];
	size_t i;

	kevctl_format_age(age, sizeof(age), kevctl_str(vm, "created_at"));
	printf("name:        %s\nid:          %s\nstate:       %s\n", kevctl_str(vm, "name"), kevctl_str(vm, "id"), kevctl_str(vm, "state"));
	if (*kevctl_str(vm, "reason"))
		printf("reason:      %s\n", kevctl_str(vm, "reason"));
	if (json_is_integer(json_object_get(vm, "exit_status")))
		printf("exit status: %" JSON_INTEGER_FORMAT "\n", num(vm, "exit_status"));
	printf("kernel:      %s (%s, %s paging)\n", kevctl_str(cfg, "kernel"), kevctl_str(cfg, "boot_protocol"), kevctl_str(cfg, "paging"));
	if (*kevctl_str(cfg, "initrd"))
		printf("initrd:      %s\n", kevctl_str(cfg, "initrd"));
	if (*kevctl_str(cfg, "snapshot"))
		printf("snapshot:    %s (restored from it)\n", kevctl_str(cfg, "snapshot"));
	printf("memory:      %" JSON_INTEGER_FORMAT " MiB\nvcpus:       %" JSON_INTEGER_FORMAT "\n",
	       num(cfg, "memory_mib"), num(cfg, "vcpus"));
	printf("cmdline:     %s\ncreated:     %s (%s ago)\n", kevctl_str(cfg, "cmdline"), kevctl_str(vm, "created_at"), age);
	for (i = 0; i < sizeof(timings) / sizeof(timings[0]); i++) {
		kevctl_format_ns(buf, sizeof(buf), json_object_get(vm, timings[i][0]));
		printf("%-20s %s\n", timings[i][1], buf);
	}
	json_array_foreach(json_object_get(vm, "vcpus"), i, v)
		show_vcpu(v);
}

int kevctl_cmd_show(struct kevctl_ctx *ctx, int argc, char **argv)
{
	json_t *vm;
	int rc = kevctl_vm_request(ctx, argc, argv, "GET", "", NULL, &vm);

	if (rc == KEVCTL_OK) {
		if (ctx->json)
			kevctl_print_json(vm);
		else
			show_vm(vm);
	}
	json_decref(vm);
	return rc;
}

static int action(struct kevctl_ctx *ctx, int argc, char **argv, const char *what)
{
	json_t *body = json_pack("{s:s}", "action", what), *vm = NULL;
	int rc = body ? kevctl_vm_request(ctx, argc, argv, "PUT", "/actions", body, &vm) : KEVCTL_FAIL;

	if (!body)
		kevd_error_set(&ctx->err, ENOMEM, "out of memory");
	if (rc == KEVCTL_OK)
		print_vm_line(ctx, vm);
	json_decref(body);
	json_decref(vm);
	return rc;
}

int kevctl_cmd_start(struct kevctl_ctx *ctx, int argc, char **argv)
{
	return action(ctx, argc, argv, "start");
}

int kevctl_cmd_stop(struct kevctl_ctx *ctx, int argc, char **argv)
{
	return action(ctx, argc, argv, "stop");
}

int kevctl_cmd_pause(struct kevctl_ctx *ctx, int argc, char **argv)
{
	return action(ctx, argc, argv, "pause");
}

int kevctl_cmd_resume(struct kevctl_ctx *ctx, int argc, char **argv)
{
	return action(ctx, argc, argv, "resume");
}

/* 204 has no body: --json prints nothing either, and the status says it. */
int kevctl_cmd_rm(struct kevctl_ctx *ctx, int argc, char **argv)
{
	json_t *none;

	return kevctl_vm_request(ctx, argc, argv, "DELETE", "", NULL, &none);
}
