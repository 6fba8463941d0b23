/*
 * Load generator for bench/bench_api.sh: drives a running `kevd serve` over
 * its Unix socket with libcurl and prints raw results as key=value lines
 * (times in ns); the script aggregates them into tables.
 *
 *   bench_api SOCK create  --count M --clients C [--memory MIB] [--kernel K] [--cmdline S]
 *       C threads create M VMs back to back (a create is done at its 201,
 *       whose state must be "running"); a watcher thread polls every new VM's
 *       console (HEAD, X-Console-Next-Offset) for its first byte; then C
 *       threads delete them all.  SOCK may list several daemons' sockets,
 *       comma-separated: VM i is created (watched, deleted) through the
 *       (i mod n)-th, so one client process spreads the VMs over them.
 *   bench_api SOCK spawn   --count M [--memory MIB] [--kernel K] [--cmdline S]
 *       creates M VMs, prints their ids (id=...), exits.
 *   bench_api SOCK load    --threads K --seconds T --path P
 *       K threads GET P back to back (one kept-alive connection each) for T s;
 *       latency p50/p99/max and requests per second.
 *   bench_api SOCK churn   --parallel P [--memory MIB] [--kernel K] [--cmdline S]
 *       P threads each create a VM, poll it (every 10 ms) until it is no
 *       longer running, delete it, again, until SIGTERM/SIGINT; then prints
 *       how many VMs completed and the pager faults they took.
 *
 * Exit status 0 if every request succeeded, 1 otherwise (results are printed
 * anyway), 2 on usage errors.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* SOCK may list several daemons' sockets, comma-separated: VM i of a
 * create round goes to socks[i % nsocks] (bench_spread.sh spreads the same
 * VMs over several daemons with one client process); other commands use
 * the first. */
static char **socks;
static int nsocks;
static long memory_mib = 64;
static const char *kernel = "guest.elf";
static const char *cmdline = "touch=percent:10 mode=loop";

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- one HTTP client per thread ------------------------------------------ */

struct client {
	CURL *c;
	struct curl_slist *hdr;
	char *body;
	size_t len, cap;
	long next_offset; /* X-Console-Next-Offset of the last response, -1 if none */
	const char *sock; /* the daemon the next request goes to */
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct client *cl = arg;
	size_t add = sz * n;

	if (cl->len + add + 1 > cl->cap) {
		size_t cap = (cl->len + add + 1) * 2;
		char *b = realloc(cl->body, cap);

		if (!b)
			return 0;
		cl->body = b;
		cl->cap = cap;
	}
	memcpy(cl->body + cl->len, p, add);
	cl->len += add;
	cl->body[cl->len] = '\0';
	return add;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
	struct client *cl = arg;
	size_t len = sz * n;
	static const char key[] = "X-Console-Next-Offset:";

	if (len > sizeof(key) && !strncasecmp(p, key, sizeof(key) - 1))
		cl->next_offset = strtol(p + sizeof(key) - 1, NULL, 10);
	return len;
}

static void client_init(struct client *cl)
{
	memset(cl, 0, sizeof(*cl));
	cl->c = curl_easy_init();
	if (!cl->c) {
		fprintf(stderr, "bench_api: curl_easy_init failed\n");
		exit(1);
	}
	cl->hdr = curl_slist_append(NULL, "Content-Type: application/json");
	cl->sock = socks[0];
}

/* The daemon of VM i of a create round. */
static const char *sock_of(int i)
{
	return socks[i % nsocks];
}

static void client_free(struct client *cl)
{
	curl_slist_free_all(cl->hdr);
	curl_easy_cleanup(cl->c);
	free(cl->body);
}

/* One request on the client's connection (kept alive between calls).
 * Returns the status, 0 on a transport error. */
static long request(struct client *cl, const char *method, const char *path, const char *body)
{
	char url[512];
	long status = 0;
	CURL *c = cl->c;

	cl->len = 0;
	if (cl->body)
		cl->body[0] = '\0';
	cl->next_offset = -1;
	snprintf(url, sizeof(url), "http://localhost%s", path);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, cl->sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, cl);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, cl);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET"))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, cl->hdr);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

/* The string value of "KEY":"..." in the last body (first occurrence). */
static bool json_str(const struct client *cl, const char *key, char *out, size_t outlen)
{
	char pat[64];
	const char *p, *e;

	if (!cl->body)
		return false;
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(cl->body, pat);
	if (!p)
		return false;
	p += strlen(pat);
	e = strchr(p, '"');
	if (!e || (size_t)(e - p) >= outlen)
		return false;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
	return true;
}

/* The integer value of "KEY":N in the last body; -1 if absent or null. */
static long long json_int(const struct client *cl, const char *key)
{
	char pat[64];
	const char *p;

	if (!cl->body)
		return -1;
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(cl->body, pat);
	if (!p)
		return -1;
	p += strlen(pat);
	if (*p < '0' || *p > '9')
		return -1;
	return strtoll(p, NULL, 10);
}

static void create_body(char *buf, size_t len)
{
	snprintf(buf, len, "{\"kernel\":\"%s\",\"memory_mib\":%ld,\"vcpus\":1,\"cmdline\":\"%s\"}", kernel, memory_mib,
		 cmdline);
}

/* --- latency samples --------------------------------------------------------- */

struct samples {
	int64_t *v;
	size_t n, cap;
};

static void sample_add(struct samples *s, int64_t v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		int64_t *n = realloc(s->v, cap * sizeof(*n));

		if (!n) {
			fprintf(stderr, "bench_api: out of memory\n");
			exit(1);
		}
		s->v = n;
		s->cap = cap;
	}
	s->v[s->n++] = v;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples. */
static int64_t pct(const struct samples *s, double p)
{
	size_t i;

	if (!s->n)
		return -1;
	i = (size_t)(p / 100.0 * (double)s->n + 0.999999);
	if (i < 1)
		i = 1;
	if (i > s->n)
		i = s->n;
	return s->v[i - 1];
}

static void print_stats(const char *prefix, struct samples *s)
{
	qsort(s->v, s->n, sizeof(*s->v), cmp64);
	printf("%s_n=%zu\n%s_p50_ns=%lld\n%s_p99_ns=%lld\n%s_max_ns=%lld\n", prefix, s->n, prefix,
	       (long long)pct(s, 50), prefix, (long long)pct(s, 99), prefix, (long long)(s->n ? s->v[s->n - 1] : -1));
}

/* --- create ------------------------------------------------------------------ */

struct vm {
	char id[32];
	int64_t t_start, t_created, t_first_byte; /* 0 = not (yet) */
	bool running;
};

static struct vm *vms;
static int nvms;
static atomic_int next_vm;
static atomic_int created_count; /* VMs whose create returned (index order is not completion order) */
static atomic_int failures;
static int64_t t0;

static void *create_worker(void *arg)
{
	struct client cl;
	char body[1024];
	int i;

	(void)arg;
	client_init(&cl);
	create_body(body, sizeof(body));
	while ((i = atomic_fetch_add(&next_vm, 1)) < nvms) {
		struct vm *v = &vms[i];
		char state[32];
		long st;

		cl.sock = sock_of(i);
		v->t_start = now_ns();
		st = request(&cl, "POST", "/v1/vms", body);
		if (st == 201 && json_str(&cl, "id", v->id, sizeof(v->id)) && json_str(&cl, "state", state, sizeof(state))) {
			v->running = !strcmp(state, "running");
			if (!v->running) {
				fprintf(stderr, "bench_api: VM %s created in state %s\n", v->id, state);
				atomic_fetch_add(&failures, 1);
			}
		} else {
			fprintf(stderr, "bench_api: create: status %ld: %s\n", st, cl.body ? cl.body : "");
			v->id[0] = '\0';
			atomic_fetch_add(&failures, 1);
		}
		__atomic_store_n(&v->t_created, now_ns(), __ATOMIC_RELEASE);
		atomic_fetch_add(&created_count, 1);
	}
	client_free(&cl);
	return NULL;
}

/* Polls the console of every created VM that has not printed yet (HEAD,
 * X-Console-Next-Offset > 0) until all have or 30 s passed. */
static void *watch_worker(void *arg)
{
	struct client cl;
	int64_t deadline = 0;

	(void)arg;
	client_init(&cl);
	for (;;) {
		int pending = 0;
		bool all_created = atomic_load(&created_count) == nvms;

		if (all_created && !deadline)
			deadline = now_ns() + 30000000000LL;
		for (int i = 0; i < nvms; i++) {
			struct vm *v = &vms[i];
			char path[128];

			if (v->t_first_byte)
				continue;
			if (!__atomic_load_n(&v->t_created, __ATOMIC_ACQUIRE)) {
				pending++;
				continue;
			}
			if (!v->id[0])
				continue;
			snprintf(path, sizeof(path), "/v1/vms/%s/console?offset=0", v->id);
			cl.sock = sock_of(i);
			if (request(&cl, "HEAD", path, NULL) == 200 && cl.next_offset > 0)
				v->t_first_byte = now_ns();
			else
				pending++;
		}
		if (!pending || (deadline && now_ns() > deadline))
			break;
		usleep(1000);
	}
	client_free(&cl);
	return NULL;
}

static void *delete_worker(void *arg)
{
	struct client cl;
	int i;

	(void)arg;
	client_init(&cl);
	while ((i = atomic_fetch_add(&next_vm, 1)) < nvms) {
		char path[128];
		long st;

		if (!vms[i].id[0])
			continue;
		snprintf(path, sizeof(path), "/v1/vms/%s", vms[i].id);
		cl.sock = sock_of(i);
		st = request(&cl, "DELETE", path, NULL);
		if (st != 204) {
			fprintf(stderr, "bench_api: delete %s: status %ld\n", vms[i].id, st);
			atomic_fetch_add(&failures, 1);
		}
	}
	client_free(&cl);
	return NULL;
}

static void run_threads(int n, void *(*fn)(void *))
{
	pthread_t *t = calloc((size_t)n, sizeof(*t));

	for (int i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, fn, NULL)) {
			fprintf(stderr, "bench_api: pthread_create failed\n");
			exit(1);
		}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	free(t);
}

static int cmd_create(int clients)
{
	pthread_t watcher;
	struct samples lat = { 0 }, fb = { 0 };
	int64_t t_last_created = 0, t_last_fb = 0, t_del0, t_del1;
	int ok = 0, printed = 0;
	struct client cl;

	vms = calloc((size_t)nvms, sizeof(*vms));
	t0 = now_ns();
	pthread_create(&watcher, NULL, watch_worker, NULL);
	run_threads(clients, create_worker);
	pthread_join(watcher, NULL);
	for (int i = 0; i < nvms; i++) {
		struct vm *v = &vms[i];

		if (!v->running)
			continue;
		ok++;
		sample_add(&lat, v->t_created - v->t_start);
		if (v->t_created > t_last_created)
			t_last_created = v->t_created;
		if (v->t_first_byte) {
			printed++;
			sample_add(&fb, v->t_first_byte - v->t_start);
			if (v->t_first_byte > t_last_fb)
				t_last_fb = v->t_first_byte;
		}
	}
	printf("created_running=%d\ncreate_wall_ns=%lld\n", ok, (long long)(t_last_created - t0));
	printf("first_byte_seen=%d\nfirst_byte_wall_ns=%lld\n", printed, (long long)(printed ? t_last_fb - t0 : -1));
	print_stats("create", &lat);
	print_stats("first_byte", &fb);

	/* create_to_first_run_ns as kevd measured it, for one VM (the last). */
	client_init(&cl);
	for (int i = nvms - 1; i >= 0; i--) {
		char path[128];

		if (!vms[i].id[0])
			continue;
		snprintf(path, sizeof(path), "/v1/vms/%s", vms[i].id);
		cl.sock = sock_of(i);
		if (request(&cl, "GET", path, NULL) == 200)
			printf("last_create_to_first_run_ns=%lld\n", json_int(&cl, "create_to_first_run_ns"));
		break;
	}
	client_free(&cl);

	atomic_store(&next_vm, 0);
	t_del0 = now_ns();
	run_threads(clients, delete_worker);
	t_del1 = now_ns();
	printf("deleted=%d\ndelete_wall_ns=%lld\n", ok, (long long)(t_del1 - t_del0));
	printf("failures=%d\n", atomic_load(&failures));
	return atomic_load(&failures) ? 1 : 0;
}

static int cmd_spawn(void)
{
	struct client cl;
	char body[1024];

	client_init(&cl);
	create_body(body, sizeof(body));
	for (int i = 0; i < nvms; i++) {
		char id[32];
		long st = request(&cl, "POST", "/v1/vms", body);

		if (st != 201 || !json_str(&cl, "id", id, sizeof(id))) {
			fprintf(stderr, "bench_api: create: status %ld: %s\n", st, cl.body ? cl.body : "");
			client_free(&cl);
			return 1;
		}
		printf("id=%s\n", id);
	}
	client_free(&cl);
	return 0;
}

/* --- load ---------------------------------------------------------------------- */

static const char *load_path;
static int64_t load_end;
static struct samples *load_samples;
static atomic_int load_errors, load_slot;

static void *load_worker(void *arg)
{
	struct client cl;
	struct samples *s = &load_samples[atomic_fetch_add(&load_slot, 1)];

	(void)arg;
	client_init(&cl);
	while (now_ns() < load_end) {
		int64_t a = now_ns();
		long st = request(&cl, "GET", load_path, NULL);
		int64_t b = now_ns();

		if (st != 200) {
			if (atomic_fetch_add(&load_errors, 1) < 3)
				fprintf(stderr, "bench_api: GET %s: status %ld\n", load_path, st);
			continue;
		}
		sample_add(s, b - a);
	}
	client_free(&cl);
	return NULL;
}

static int cmd_load(int threads, double seconds)
{
	struct samples all = { 0 };
	int64_t a, b;

	load_samples = calloc((size_t)threads, sizeof(*load_samples));
	a = now_ns();
	load_end = a + (int64_t)(seconds * 1e9);
	run_threads(threads, load_worker);
	b = now_ns();
	for (int i = 0; i < threads; i++)
		for (size_t j = 0; j < load_samples[i].n; j++)
			sample_add(&all, load_samples[i].v[j]);
	printf("wall_ns=%lld\nerrors=%d\n", (long long)(b - a), atomic_load(&load_errors));
	printf("rps=%.1f\n", (double)all.n / ((double)(b - a) / 1e9));
	print_stats("lat", &all);
	return atomic_load(&load_errors) ? 1 : 0;
}

/* --- churn ---------------------------------------------------------------------- */

static volatile sig_atomic_t stop;
static atomic_llong churn_done, churn_faults, churn_errors, churn_life_ns;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void *churn_worker(void *arg)
{
	struct client cl;
	char body[1024];

	(void)arg;
	client_init(&cl);
	create_body(body, sizeof(body));
	while (!stop) {
		char id[32], path[128], state[32];
		int64_t a = now_ns();
		long st = request(&cl, "POST", "/v1/vms", body);

		if (st != 201 || !json_str(&cl, "id", id, sizeof(id))) {
			atomic_fetch_add(&churn_errors, 1);
			usleep(100000);
			continue;
		}
		snprintf(path, sizeof(path), "/v1/vms/%s", id);
		/* Poll until it ends; on stop, delete it anyway (DELETE stops it). */
		for (;;) {
			if (request(&cl, "GET", path, NULL) == 200 && json_str(&cl, "state", state, sizeof(state)) &&
			    strcmp(state, "running") && strcmp(state, "created")) {
				char ppath[160];

				if (strcmp(state, "exited"))
					atomic_fetch_add(&churn_errors, 1);
				atomic_fetch_add(&churn_life_ns, now_ns() - a);
				snprintf(ppath, sizeof(ppath), "%s/paging", path);
				if (request(&cl, "GET", ppath, NULL) == 200)
					atomic_fetch_add(&churn_faults, json_int(&cl, "faults"));
				atomic_fetch_add(&churn_done, 1);
				break;
			}
			if (stop)
				break;
			usleep(10000);
		}
		if (request(&cl, "DELETE", path, NULL) != 204)
			atomic_fetch_add(&churn_errors, 1);
	}
	client_free(&cl);
	return NULL;
}

static int cmd_churn(int parallel)
{
	struct sigaction sa = { .sa_handler = on_stop };
	int64_t a = now_ns(), b;
	long long done;

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	run_threads(parallel, churn_worker);
	b = now_ns();
	done = atomic_load(&churn_done);
	printf("churn_wall_ns=%lld\nchurn_vms=%lld\nchurn_faults=%lld\nchurn_errors=%lld\nchurn_vm_life_avg_ns=%lld\n",
	       (long long)(b - a), done, (long long)atomic_load(&churn_faults), (long long)atomic_load(&churn_errors),
	       done ? (long long)(atomic_load(&churn_life_ns) / done) : -1LL);
	return atomic_load(&churn_errors) ? 1 : 0;
}

/* --- main -------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: bench_api SOCK create --count M --clients C [--memory MIB] [--kernel K] [--cmdline S]\n"
			"       bench_api SOCK spawn --count M [--memory MIB] [--kernel K] [--cmdline S]\n"
			"       bench_api SOCK load --threads K --seconds T --path P\n"
			"       bench_api SOCK churn --parallel P [--memory MIB] [--kernel K] [--cmdline S]\n");
	exit(2);
}

static long num(const char *s)
{
	char *e;
	long v;

	errno = 0;
	v = strtol(s, &e, 10);
	if (errno || *e || v <= 0)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	const char *cmd;
	long count = 20, clients = 1, threads = 4, parallel = 3;
	double seconds = 5;
	int rc;

	if (argc < 3)
		usage();
	for (const char *a = argv[1]; a; a = strchr(a, ',') ? strchr(a, ',') + 1 : NULL) {
		size_t n = strcspn(a, ",");
		char **grown = realloc(socks, (size_t)(nsocks + 1) * sizeof(*socks));

		if (!grown || !(grown[nsocks] = strndup(a, n))) {
			fprintf(stderr, "bench_api: out of memory\n");
			return 1;
		}
		socks = grown;
		if (!n)
			usage();
		nsocks++;
	}
	cmd = argv[2];
	for (int i = 3; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(k, "--count"))
			count = num(v);
		else if (!strcmp(k, "--clients"))
			clients = num(v);
		else if (!strcmp(k, "--threads"))
			threads = num(v);
		else if (!strcmp(k, "--parallel"))
			parallel = num(v);
		else if (!strcmp(k, "--seconds")) {
			seconds = strtod(v, NULL);
			if (seconds <= 0)
				usage();
		} else if (!strcmp(k, "--memory"))
			memory_mib = num(v);
		else if (!strcmp(k, "--kernel"))
			kernel = v;
		else if (!strcmp(k, "--cmdline"))
			cmdline = v;
		else if (!strcmp(k, "--path"))
			load_path = v;
		else
			usage();
	}
	if (strchr(kernel, '"') || strchr(kernel, '\\') || strchr(cmdline, '"') || strchr(cmdline, '\\')) {
		fprintf(stderr, "bench_api: no quotes or backslashes in --kernel/--cmdline\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	nvms = (int)count;
	if (!strcmp(cmd, "create"))
		rc = cmd_create((int)clients);
	else if (!strcmp(cmd, "spawn"))
		rc = cmd_spawn();
	else if (!strcmp(cmd, "load") && load_path)
		rc = cmd_load((int)threads, seconds);
	else if (!strcmp(cmd, "churn"))
		rc = cmd_churn((int)parallel);
	else
		usage();
	fflush(stdout);
	curl_global_cleanup();
	return rc;
}
