/*
 * Commands that only read: paging, translate, images, health, metrics,
 * version.
 * Each is one GET and a rendering; --json prints the answer as it came.
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

static void paging_text(const json_t *p)
{
	static const char *const counters[] = {
		"pages_loaded", "pages_loaded_demand", "pages_loaded_around", "loads", "faults", "faults_coalesced",
		"eexist", "eagain", "bytes_read", "load_failures", "pages_failed", "faults_unserved", "state_entries",
	};
	const json_t *v;
	json_int_t loads = num(p, "loads");
	size_t i;

	printf("mode:          %s, %s pages (%" JSON_INTEGER_FORMAT " handler thread(s), window %" JSON_INTEGER_FORMAT
	       "..%" JSON_INTEGER_FORMAT " page(s), %" JSON_INTEGER_FORMAT " stripes)\n",
	       kevctl_str(p, "mode"), kevctl_str(p, "backing"), num(p, "handler_threads"), num(p, "window_pages"),
	       num(p, "window_max_pages"), num(p, "stripes"));
	printf("image pages:   %" JSON_INTEGER_FORMAT "\n", num(p, "image_pages"));
	if (json_is_integer(json_object_get(p, "pages_mapped")))
		printf("in memory:     %" JSON_INTEGER_FORMAT " image pages, %" JSON_INTEGER_FORMAT " of them the VM's own\n",
		       num(p, "pages_mapped"), num(p, "pages_private"));
	for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		printf("%-20s %" JSON_INTEGER_FORMAT "\n", counters[i], num(p, counters[i]));
	if (loads)
		printf("mean load:     %.1f us\n", (double)num(p, "latency_sum_ns") / (double)loads / 1e3);
	if (!strcmp(kevctl_str(p, "mode"), "eager"))
		printf("eager load:    %.3f ms\n", (double)num(p, "eager_load_ns") / 1e6);
	json_array_foreach(json_object_get(p, "vcpus"), i, v)
		printf("vcpu %" JSON_INTEGER_FORMAT " faults: %" JSON_INTEGER_FORMAT "\n", num(v, "index"), num(v, "faults"));
	printf("load latency (loads per bucket):\n");
	kevctl_format_histogram(stdout, json_object_get(p, "latency_histogram"));
}

int kevctl_cmd_paging(struct kevctl_ctx *ctx, int argc, char **argv)
{
	json_t *p = NULL;
	int rc = kevctl_vm_request(ctx, argc, argv, "GET", "/paging", NULL, &p);

	if (rc == KEVCTL_OK) {
		if (ctx->json)
			kevctl_print_json(p);
		else
			paging_text(p);
	}
	json_decref(p);
	return rc;
}

/* An address as the daemon reads it (decimal or 0x hex), checked here so
 * that nothing but digits goes into the query string. */
static int address_arg(struct kevctl_ctx *ctx, const char *opt, const char *arg)
{
	const char *digits = strncmp(arg, "0x", 2) && strncmp(arg, "0X", 2) ? arg : arg + 2;
	const char *set = digits == arg ? "0123456789" : "0123456789abcdefABCDEF";

	if (!*digits || strspn(digits, set) != strlen(digits) || strlen(arg) > 20)
		return kevctl_usage(ctx, "translate: --%s '%s' is not an address (decimal or 0x hex)", opt, arg);
	return KEVCTL_OK;
}

static int translate_options(struct kevctl_ctx *ctx, int argc, char **argv, char *query, size_t size)
{
	static const struct option opts[] = {
		{ "gpa", required_argument, NULL, 'p' }, { "gva", required_argument, NULL, 'v' },
		{ "vcpu", required_argument, NULL, 'c' }, { NULL, 0, NULL, 0 },
	};
	const char *gpa = NULL, *gva = NULL, *vcpu = NULL;
	int c;

	while ((c = kevctl_getopt(ctx, argc, argv, "", opts)) != -1) {
		if (c == '?')
			return KEVCTL_USAGE;
		if (address_arg(ctx, c == 'p' ? "gpa" : c == 'v' ? "gva" : "vcpu", optarg) != KEVCTL_OK)
			return KEVCTL_USAGE;
		*(c == 'p' ? &gpa : c == 'v' ? &gva : &vcpu) = optarg;
	}
	if (!gpa == !gva)
		return kevctl_usage(ctx, "translate: give exactly one of --gpa and --gva");
	if (vcpu && gpa)
		return kevctl_usage(ctx, "translate: --vcpu goes with --gva");
	if (gpa)
		snprintf(query, size, "/translate?gpa=%s", gpa);
	else
		snprintf(query, size, "/translate?gva=%s%s%s", gva, vcpu ? "&vcpu=" : "", vcpu ? vcpu : "");
	return KEVCTL_OK;
}

static void translate_text(const json_t *t)
{
	if (json_object_get(t, "gva"))
		printf("gva 0x%" PRIx64 " (vcpu %" JSON_INTEGER_FORMAT ") -> ", (uint64_t)num(t, "gva"), num(t, "vcpu"));
	printf("gpa 0x%" PRIx64 " -> host 0x%" PRIx64 ", %s, page %s\n", (uint64_t)num(t, "gpa"),
	       (uint64_t)num(t, "host"),
	       json_is_true(json_object_get(t, "image_backed")) ? "image-backed" : "not image-backed",
	       kevctl_str(t, "page_state"));
}

int kevctl_cmd_translate(struct kevctl_ctx *ctx, int argc, char **argv)
{
	char query[128], path[PATH_MAX_LEN];
	json_t *t = NULL;
	const char *vm;
	int rc = translate_options(ctx, argc, argv, query, sizeof(query));

	if (rc != KEVCTL_OK)
		return rc;
	vm = kevctl_one_vm(ctx, argc, argv);
	if (!vm)
		return KEVCTL_USAGE;
	rc = kevctl_vm_path(path, sizeof(path), vm, query, &ctx->err);
	if (rc == KEVCTL_OK)
		rc = kevctl_request_json(&ctx->client, "GET", path, NULL, &t, &ctx->err);
	if (rc == KEVCTL_OK) {
		if (ctx->json)
			kevctl_print_json(t);
		else
			translate_text(t);
	}
	json_decref(t);
	return rc;
}

/* The common shape of health, version and images: one GET, no operand. */
static int get_simple(struct kevctl_ctx *ctx, int argc, char **argv, const char *path, json_t **out)
{
	*out = NULL;
	if (kevctl_getopt(ctx, argc, argv, "", NULL) != -1)
		return KEVCTL_USAGE;
	if (optind != argc)
		return kevctl_usage(ctx, "%s takes no operand", argv[0]);
	return kevctl_request_json(&ctx->client, "GET", path, NULL, out, &ctx->err);
}

int kevctl_cmd_health(struct kevctl_ctx *ctx, int argc, char **argv)
{
	json_t *h;
	int rc = get_simple(ctx, argc, argv, "/v1/health", &h);

	if (rc == KEVCTL_OK && ctx->json)
		kevctl_print_json(h);
	else if (rc == KEVCTL_OK)
		printf("kevd at %s: %s, %" JSON_INTEGER_FORMAT " VM(s)\n", kevctl_client_where(&ctx->client),
		       kevctl_str(h, "status"), num(h, "vms"));
	json_decref(h);
	return rc;
}

static void images_text(const json_t *answer)
{
	static const char *const header[] = { "ID", "PATH", "FILLED", "READ_MIB", "VMS", "RESIDENT_MIB", "UNUSED_S" };
	struct kevctl_table t;
	const json_t *img;
	size_t i;

	if (!json_is_true(json_object_get(answer, "sharing")))
		printf("images are not shared here: %s\n", kevctl_str(answer, "sharing_unavailable"));
	if (kevctl_table_init(&t, 7, header) < 0)
		return;
	json_array_foreach(json_object_get(answer, "images"), i, img) {
		char filled[48], read[24], vms[16], res[24], unused[24];

		snprintf(filled, sizeof(filled), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT "%s",
			 num(img, "pages_filled"), num(img, "image_pages"),
			 json_is_true(json_object_get(img, "failed")) ? " FAILED" : "");
		snprintf(read, sizeof(read), "%.1f", (double)num(img, "bytes_read") / 1048576.0);
		snprintf(vms, sizeof(vms), "%" JSON_INTEGER_FORMAT, num(img, "vms"));
		snprintf(res, sizeof(res), "%.1f", (double)num(img, "resident_bytes") / 1048576.0);
		snprintf(unused, sizeof(unused), "%.0f", json_number_value(json_object_get(img, "unused_s")));
		kevctl_table_add(&t, (const char *const[]){ kevctl_str(img, "id"), kevctl_str(img, "path"), filled, read,
							   vms, res, unused });
	}
	kevctl_table_print(&t, stdout);
	kevctl_table_free(&t);
}

int kevctl_cmd_images(struct kevctl_ctx *ctx, int argc, char **argv)
{
	json_t *a;
	int rc = get_simple(ctx, argc, argv, "/v1/images", &a);

	if (rc == KEVCTL_OK && ctx->json)
		kevctl_print_json(a);
	else if (rc == KEVCTL_OK)
		images_text(a);
	json_decref(a);
	return rc;
}

int kevctl_cmd_version(struct kevctl_ctx *ctx, int argc, char **argv)
{
	json_t *v;
	int rc = get_simple(ctx, argc, argv, "/v1/version", &v);

	if (rc == KEVCTL_OK && ctx->json)
		kevctl_print_json(v);
	else if (rc == KEVCTL_OK)
		printf("kevctl %s\nkevd %s (API %s)\n", PACKAGE_VERSION, kevctl_str(v, "version"),
		       kevctl_str(v, "api"));
	json_decref(v);
	return rc;
}

/* The Prometheus text as kevd sent it; there is no JSON form. */
int kevctl_cmd_metrics(struct kevctl_ctx *ctx, int argc, char **argv)
{
	struct kevctl_response r;
	int rc;

	if (kevctl_getopt(ctx, argc, argv, "", NULL) != -1)
		return KEVCTL_USAGE;
	if (optind != argc)
		return kevctl_usage(ctx, "metrics takes no operand");
	rc = kevctl_request(&ctx->client, "GET", "/metrics", NULL, &r, &ctx->err);
	if (rc == KEVCTL_OK && r.len)
		fwrite(r.body, 1, r.len, stdout);
	kevctl_response_free(&r);
	return rc;
}
