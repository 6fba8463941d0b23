/*
 * The daemon end to end: the real kevd started on a temporary Unix socket
 * with a temporary image directory, driven over HTTP with libcurl.  The
 * whole VM lifecycle with the test guest, 20 VMs created at once, every
 * error status, a crash that leaves other VMs running, metrics checked by
 * promtool, systemd readiness on a test NOTIFY_SOCKET, SIGTERM with VMs
 * running, and a restart over a stale socket.  Skips (77) without
 * /dev/kvm.
 */
#include "config.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static char kevd_bin[4096], guest[4096];

struct daemon {
	char dir[256], sock[300], images[300], conf[300], notify[300];
	int notify_fd;
	pid_t pid;
};

struct resp {
	long status;
	char *body;
	size_t len;
	char location[256];
	char allow[128];
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	char *b = realloc(r->body, r->len + sz * n + 1);

	if (!b)
		return 0;
	memcpy(b + r->len, p, sz * n);
	r->len += sz * n;
	b[r->len] = '\0';
	r->body = b;
	return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = sz * n;

	if (len > 10 && !strncasecmp(p, "Location: ", 10))
		snprintf(r->location, sizeof(r->location), "%.*s", (int)(len - 12), p + 10);
	if (len > 7 && !strncasecmp(p, "Allow: ", 7))
		snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(len - 9), p + 7);
	return len;
}

/* One request; BODY NULL for none; TYPE NULL = application/json. */
static struct resp http(const struct daemon *d, const char *method, const char *path, const char *body,
			const char *type)
{
	struct resp r = { 0 };
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[512], ct[128];

	snprintf(url, sizeof(url), "http://localhost%s", path);
	snprintf(ct, sizeof(ct), "Content-Type: %s", type ? type : "application/json");
	h = curl_slist_append(h, ct);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (!r.body)
		r.body = calloc(1, 1);
	return r;
}

static void expect(const struct daemon *d, const char *method, const char *path, const char *body, long status,
		   const char *fragment)
{
	struct resp r = http(d, method, path, body, NULL);

	if (r.status != status || (fragment && !strstr(r.body, fragment)))
		ck_abort_msg("%s %s %s: got %ld '%s', want %ld with '%s'", method, path, body ? body : "", r.status,
			     r.body, status, fragment ? fragment : "");
	if (status >= 400)
		ck_assert_msg(strstr(r.body, "\"fault_message\""), "%s %s: error without fault_message: %s", method,
			      path, r.body);
	free(r.body);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* Reads notify datagrams until one contains WHAT (bounded). */
static bool got_notify(struct daemon *d, const char *what, int timeout_ms)
{
	char buf[512];

	for (int waited = 0; waited < timeout_ms; waited += 50) {
		struct pollfd p = { d->notify_fd, POLLIN, 0 };

		if (poll(&p, 1, 50) == 1) {
			ssize_t n = recv(d->notify_fd, buf, sizeof(buf) - 1, 0);

			if (n > 0) {
				buf[n] = '\0';
				if (strstr(buf, what))
					return true;
			}
		}
	}
	return false;
}

static const char *spawn_watchdog_usec;  /* WATCHDOG_USEC for the next spawn, or NULL */

static void spawn(struct daemon *d)
{
	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0) {
		/* Dies with the test process, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setenv("NOTIFY_SOCKET", d->notify, 1);
		if (spawn_watchdog_usec)
			setenv("WATCHDOG_USEC", spawn_watchdog_usec, 1);
		execl(kevd_bin, kevd_bin, "serve", "--config", d->conf, (char *)NULL);
		_exit(127);
	}
	ck_assert_msg(got_notify(d, "READY=1", 10000), "kevd did not report READY=1");
}

static void start_daemon(struct daemon *d, const char *extra_conf)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[600], text[4096];

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%s/kevd-api-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	snprintf(d->sock, sizeof(d->sock), "%s/kevd.sock", d->dir);
	snprintf(d->images, sizeof(d->images), "%s/images", d->dir);
	snprintf(d->conf, sizeof(d->conf), "%s/kevd.conf", d->dir);
	snprintf(d->notify, sizeof(d->notify), "%s/notify", d->dir);
	ck_assert_int_eq(mkdir(d->images, 0755), 0);
	/* A real file in the directory (a symlink leading out is refused): a
	 * copy, since a hard link made and removed moves the guest's ctime,
	 * which kevd takes for a change under the VMs of other tests. */
	snprintf(path, sizeof(path), "%s/guest.elf", d->images);
	{
		char cmd[8192];

		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", guest, path);
		ck_assert_int_eq(system(cmd), 0);
	}
	snprintf(path, sizeof(path), "%s/bad.elf", d->images);
	write_file(path, "this is not an ELF file\n");
	snprintf(path, sizeof(path), "%s/escape.elf", d->images);
	ck_assert_int_eq(symlink(guest, path), 0);
	snprintf(path, sizeof(path), "%s/fifo.elf", d->images);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	snprintf(path, sizeof(path), "%s/subdir", d->images);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(text, sizeof(text),
		 "[api]\nsocket = %s\nmax_body_bytes = 4096\n"
		 "[paths]\nimage_dir = %s\nstate_dir = %s\nruntime_dir = %s\n"
		 "[limits]\nmax_vms = 24\nmax_vcpus = 8\nmax_memory_mib = 512\nmax_total_memory_mib = 4096\n"
		 "[log]\nlevel = warn\n%s",
		 d->sock, d->images, d->dir, d->dir, extra_conf ? extra_conf : "");
	write_file(d->conf, text);

	d->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_uint_lt(strlen(d->notify), sizeof(sa.sun_path));
	memcpy(sa.sun_path, d->notify, strlen(d->notify) + 1);
	ck_assert_int_eq(bind(d->notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	spawn(d);
}

static int wait_exit(pid_t pid, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		int status;

		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10000);
	}
	return -1;
}

static void stop_daemon(struct daemon *d)
{
	char cmd[400];

	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		ck_assert_int_eq(wait_exit(d->pid, 20000), 0);
	}
	close(d->notify_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Polls GET PATH until its body contains WHAT. */
static bool wait_for(const struct daemon *d, const char *path, const char *what, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		struct resp r = http(d, "GET", path, NULL, NULL);
		bool ok = r.status == 200 && strstr(r.body, what);

		free(r.body);
		if (ok)
			return true;
		usleep(20000);
	}
	return false;
}

START_TEST(lifecycle)
{
	struct daemon d;
	struct resp r;
	char path[256];

	start_daemon(&d, NULL);
	expect(&d, "GET", "/v1/health", NULL, 200, "\"status\":\"ok\"");
	expect(&d, "GET", "/v1/version", NULL, 200, "\"version\":\"" PACKAGE_VERSION "\"");
	r = http(&d, "POST", "/v1/vms", "{\"name\":\"life\",\"kernel\":\"guest.elf\",\"memory_mib\":128,\"vcpus\":2,"
		 "\"cmdline\":\"touch=percent:10 mode=loop\",\"paging\":\"lazy\"}", NULL);
	ck_assert_int_eq(r.status, 201);
	ck_assert_ptr_nonnull(strstr(r.body, "\"name\":\"life\""));
	ck_assert_ptr_nonnull(strstr(r.body, "\"state\":\"running\""));
	ck_assert_msg(!strncmp(r.location, "/v1/vms/", 8), "Location '%s'", r.location);
	free(r.body);
	ck_assert(wait_for(&d, "/v1/vms/life/console", "cmdline: touch=percent:10 mode=loop", 10000));
	/* Console from an offset, with the next offset in a header. */
	r = http(&d, "GET", "/v1/vms/life/console?offset=11", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert(!strncmp(r.body, "boot=pvh vcpus=2", 16));
	free(r.body);
	expect(&d, "GET", r.location[0] ? r.location : "/v1/vms/life", NULL, 200, "\"state\":\"running\"");
	expect(&d, "GET", "/v1/vms/life/paging", NULL, 200, "\"image_pages\":8925");
	expect(&d, "GET", "/v1/vms/life/paging", NULL, 200, "\"vcpus\":[{\"index\":0");
	expect(&d, "GET", "/v1/vms/life/translate?gpa=0x100000", NULL, 200, "\"loaded\":true");
	expect(&d, "GET", "/v1/vms/life/translate?gpa=0x2000000", NULL, 200, "\"loaded\":false");
	expect(&d, "GET", "/v1/vms/life/translate?gva=0x100000&vcpu=1", NULL, 200, "\"gpa\":1048576");
	expect(&d, "GET", "/v1/vms", NULL, 200, "\"name\":\"life\"");
	expect(&d, "GET", "/metrics", NULL, 200, "kevd_vm_pager_faults_total{vm=\"life\"}");
	expect(&d, "GET", "/metrics", NULL, 200, "kevd_vms{state=\"running\"} 1");
	expect(&d, "PUT", "/v1/vms/life/actions", "{\"action\":\"stop\"}", 200, "\"state\":\"stopped\"");
	expect(&d, "PUT", "/v1/vms/life/actions", "{\"action\":\"stop\"}", 409, "is stopped already");
	expect(&d, "DELETE", "/v1/vms/life", NULL, 204, NULL);
	expect(&d, "GET", "/v1/vms/life", NULL, 404, "no VM 'life'");

	/* A guest that finishes: exited with its status; created without
	 * start, then started through the actions resource. */
	expect(&d, "POST", "/v1/vms", "{\"name\":\"done\",\"kernel\":\"guest.elf\",\"start\":false,"
	       "\"cmdline\":\"touch=stride:3\"}", 201, "\"state\":\"created\"");
	expect(&d, "PUT", "/v1/vms/done/actions", "{\"action\":\"start\"}", 200, NULL);
	snprintf(path, sizeof(path), "/v1/vms/done");
	ck_assert(wait_for(&d, path, "\"state\":\"exited\"", 20000));
	expect(&d, "GET", path, NULL, 200, "\"exit_status\":1");
	expect(&d, "GET", "/v1/vms/done/console", NULL, 200, "result: ok");
	expect(&d, "PUT", "/v1/vms/done/actions", "{\"action\":\"start\"}", 409, "only a created VM can start");
	stop_daemon(&d);
}
END_TEST

struct creator {
	const struct daemon *d;
	int index;
	long status;
};

static void *create_one(void *arg)
{
	struct creator *c = arg;
	char body[256];
	struct resp r;

	snprintf(body, sizeof(body), "{\"name\":\"vm%02d\",\"kernel\":\"guest.elf\",\"memory_mib\":128,"
		 "\"cmdline\":\"touch=percent:5 mode=loop\"}", c->index);
	r = http(c->d, "POST", "/v1/vms", body, NULL);
	c->status = r.status;
	free(r.body);
	return NULL;
}

START_TEST(twenty_at_once)
{
	enum { N = 20 };
	struct daemon d;
	struct creator c[N];
	pthread_t t[N];
	struct resp r;
	char path[64];

	start_daemon(&d, NULL);
	for (int i = 0; i < N; i++) {
		c[i] = (struct creator){ &d, i, 0 };
		ck_assert_int_eq(pthread_create(&t[i], NULL, create_one, &c[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(c[i].status, 201);
	}
	r = http(&d, "GET", "/metrics", NULL, NULL);
	ck_assert_ptr_nonnull(strstr(r.body, "kevd_vms{state=\"running\"} 20"));
	free(r.body);
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "/v1/vms/vm%02d/console", i);
		ck_assert_msg(wait_for(&d, path, "mode=loop", 20000), "vm%02d printed nothing", i);
	}
	/* SIGTERM with all of them running: every VM stops, exit 0, the
	 * socket file goes, systemd hears STOPPING=1.  The status lines of
	 * the 20 creates are read first, as systemd would have: kevd sends
	 * without blocking, and a queue this test left full (10 datagrams)
	 * would drop the one it waits for. */
	while (recv(d.notify_fd, path, sizeof(path), MSG_DONTWAIT) > 0)
		;
	kill(d.pid, SIGTERM);
	ck_assert(got_notify(&d, "STOPPING=1", 10000));
	ck_assert_int_eq(wait_exit(d.pid, 20000), 0);
	d.pid = 0;
	ck_assert_int_ne(access(d.sock, F_OK), 0);
	stop_daemon(&d);
}
END_TEST

START_TEST(errors)
{
	struct daemon d;
	struct resp r;
	char big[8192];

	start_daemon(&d, NULL);
	expect(&d, "GET", "/nope", NULL, 404, "no resource");
	/* Paths that exist under /v1 are pointed there; / lists the entry points. */
	expect(&d, "POST", "/vms", "{\"kernel\":\"guest.elf\"}", 404, "the API is under /v1: /v1/vms");
	expect(&d, "GET", "/vms/x/paging", NULL, 404, "the API is under /v1: /v1/vms/x/paging");
	expect(&d, "GET", "/", NULL, 404, "the API is under /v1 (/v1/vms, /v1/health)");
	expect(&d, "GET", "/v1/nope", NULL, 404, "no resource at /v1/nope\"");
	expect(&d, "GET", "/v1/vms/zzz", NULL, 404, "no VM 'zzz'");
	expect(&d, "GET", "/v1/vms/zzz/paging", NULL, 404, "no VM");
	r = http(&d, "PATCH", "/v1/vms", "{}", NULL);
	ck_assert_int_eq(r.status, 405);
	ck_assert_str_eq(r.allow, "GET, HEAD, POST");
	free(r.body);
	expect(&d, "POST", "/metrics", "{}", 405, "not allowed");
	/* 400 */
	expect(&d, "POST", "/v1/vms", "{\"kernel\":", 400, "invalid JSON");
	expect(&d, "POST", "/v1/vms", "[1,2]", 400, "must be a JSON object");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"kernel\":\"x\"}", 400, "duplicate");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"colour\":\"red\"}", 400, "unknown key 'colour'");
	expect(&d, "POST", "/v1/vms", "{\"memory_mib\":128}", 400, "'kernel' is required");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":7}", 400, "'kernel' must be a string");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"memory_mib\":\"128\"}", 400, "must be an integer");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"memory_mib\":1.5}", 400, "must be an integer");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"memory_mib\":99999999999999999999}", 400, "invalid JSON");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"vcpus\":0}", 400, "'vcpus' must be at least 1, not 0");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"vcpus\":-3}", 400, "'vcpus' must be at least 1, not -3");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"memory_mib\":1}", 400,
	       "'memory_mib' must be at least 2, not 1");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"window_pages\":0}", 400,
	       "'window_pages' must be in 1..512, not 0");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"paging\":\"lazyish\"}", 400, "'paging' must be");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"start\":\"yes\"}", 400, "'start' must be true or false");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"name\":\"../x\"}", 400, "'name' must be");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"../guest.elf\"}", 400, "leads outside the image directory");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"/etc/passwd\"}", 400, "must be a relative path");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"escape.elf\"}", 400, "leads outside the image directory");
	/* An absolute symbolic link that points inside is followed ... */
	{
		char link[600], target[600], mnt[600];
		struct resp rr;

		snprintf(link, sizeof(link), "%s/inside.elf", d.images);
		snprintf(target, sizeof(target), "%s/guest.elf", d.images);
		ck_assert_int_eq(symlink(target, link), 0);
		rr = http(&d, "POST", "/v1/vms", "{\"kernel\":\"inside.elf\",\"name\":\"inside\",\"start\":false}", NULL);
		ck_assert_msg(rr.status == 201, "absolute link inside: %ld %s", rr.status, rr.body);
		free(rr.body);
		expect(&d, "DELETE", "/v1/vms/inside", NULL, 204, NULL);
		/* ... but a mount inside the directory is not crossed (root only). */
		snprintf(mnt, sizeof(mnt), "%s/mnt", d.images);
		ck_assert_int_eq(mkdir(mnt, 0755), 0);
		if (mount(d.dir, mnt, NULL, MS_BIND, NULL) == 0) {
			expect(&d, "POST", "/v1/vms", "{\"kernel\":\"mnt/images/guest.elf\"}", 400, "across a mount");
			ck_assert_int_eq(umount2(mnt, MNT_DETACH), 0);
		} else {
			fprintf(stderr, "test_api: no bind mount (%s): the mount case is not checked\n", strerror(errno));
		}
		rmdir(mnt);
	}
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"initrd\":\"../x\"}", 400,
	       "'initrd' '../x' leads outside the image directory");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"initrd\":\"nope.img\"}", 422, "no such file");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"initrd\":\"bad.elf\",\"protocol\":\"multiboot2\"}",
	       422, "an initrd needs the PVH boot protocol");
	/* 415 and 413 */
	r = http(&d, "POST", "/v1/vms", "kernel=guest.elf", "application/x-www-form-urlencoded");
	ck_assert_int_eq(r.status, 415);
	ck_assert_ptr_nonnull(strstr(r.body, "must be application/json"));
	free(r.body);
	memset(big, ' ', sizeof(big) - 3);
	big[0] = '{';
	big[sizeof(big) - 3] = '}';
	big[sizeof(big) - 2] = '\0';
	expect(&d, "POST", "/v1/vms", big, 413, "larger than 4096");
	/* 422: the pager's own message */
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"bad.elf\"}", 422, "image 'bad.elf': not an ELF file");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"missing.elf\"}", 422, "no such file");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"fifo.elf\"}", 422, "not a regular file");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"subdir\"}", 422, "not a regular file");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"memory_mib\":16}", 422, "does not fit in 16 MiB");
	/* 429: limits */
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"vcpus\":9}", 429, "limit of 8 per VM");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"memory_mib\":1024}", 429, "limit of 512 MiB per VM");
	/* Past any integer type's bound, the daemon's limit is what is named. */
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"vcpus\":4294967296}", 429,
	       "4294967296 vCPUs is more than this daemon's limit of 8 per VM");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"memory_mib\":9223372036854775807}", 429,
	       "limit of 512 MiB per VM");
	/* 409 */
	expect(&d, "POST", "/v1/vms", "{\"name\":\"a\",\"kernel\":\"guest.elf\",\"cmdline\":\"mode=loop\"}", 201, NULL);
	expect(&d, "POST", "/v1/vms", "{\"name\":\"a\",\"kernel\":\"guest.elf\"}", 409, "named 'a' exists");
	expect(&d, "PUT", "/v1/vms/a/actions", "{\"action\":\"start\"}", 409, "is running");
	expect(&d, "PUT", "/v1/vms/a/actions", "{\"action\":\"jump\"}", 400, "\\\"pause\\\" or \\\"resume\\\", not \\\"jump\\\"");
	expect(&d, "GET", "/v1/vms/a/translate", NULL, 400, "exactly one");
	expect(&d, "GET", "/v1/vms/a/translate?gpa=zz", NULL, 400, "must be a number");
	expect(&d, "GET", "/v1/vms/a/translate?gpa=0xc0000000", NULL, 422, "is not RAM");
	expect(&d, "GET", "/v1/vms/a/translate?gva=0x1000&vcpu=5", NULL, 400, "has no vcpu 5");
	expect(&d, "GET", "/v1/vms/a/console?offset=-1", NULL, 400, "must be a number");
	/* 429: total memory (128 in use; the 8th of 512 MiB passes 4096) */
	for (int i = 0; i < 8; i++) {
		char body[128];

		snprintf(body, sizeof(body), "{\"kernel\":\"guest.elf\",\"memory_mib\":512,\"start\":false}");
		expect(&d, "POST", "/v1/vms", body, i < 7 ? 201 : 429, i < 7 ? NULL : "would pass this daemon's total");
	}
	r = http(&d, "GET", "/metrics", NULL, NULL);
	ck_assert_ptr_nonnull(strstr(r.body, "kevd_api_requests_total{method=\"POST\",code=\"429\"}"));
	ck_assert_ptr_nonnull(strstr(r.body, "kevd_api_requests_total{method=\"POST\",code=\"422\"}"));
	free(r.body);
	stop_daemon(&d);
}
END_TEST

START_TEST(vm_count_limit)
{
	struct daemon d;

	start_daemon(&d, NULL);
	for (int i = 0; i < 25; i++)
		expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"memory_mib\":64,\"start\":false}",
		       i < 24 ? 201 : 429, i < 24 ? NULL : "its limit of 24 VMs");
	stop_daemon(&d);
}
END_TEST

START_TEST(crash_isolated)
{
	struct daemon d;

	start_daemon(&d, NULL);
	expect(&d, "POST", "/v1/vms", "{\"name\":\"steady\",\"kernel\":\"guest.elf\",\"cmdline\":\"mode=loop\"}", 201, NULL);
	expect(&d, "POST", "/v1/vms", "{\"name\":\"boom\",\"kernel\":\"guest.elf\",\"vcpus\":2,\"cmdline\":\"mode=crash\"}",
	       201, NULL);
	ck_assert(wait_for(&d, "/v1/vms/boom", "\"state\":\"crashed\"", 20000));
	expect(&d, "GET", "/v1/vms/boom", NULL, 200, "triple fault");
	expect(&d, "GET", "/v1/vms/steady", NULL, 200, "\"state\":\"running\"");
	expect(&d, "GET", "/v1/health", NULL, 200, "ok");
	ck_assert(got_notify(&d, "STATUS=2 VMs, 1 running", 5000));
	stop_daemon(&d);
}
END_TEST

START_TEST(promtool_accepts_metrics)
{
	struct daemon d;
	struct resp r;
	char path[400], cmd[900];
	FILE *f;

	if (system("command -v promtool > /dev/null 2>&1") != 0) {
		fprintf(stderr, "promtool not installed: metrics not validated\n");
		return;
	}
	start_daemon(&d, NULL);
	expect(&d, "POST", "/v1/vms", "{\"name\":\"m\",\"kernel\":\"guest.elf\",\"cmdline\":\"touch=all\"}", 201, NULL);
	ck_assert(wait_for(&d, "/v1/vms/m", "\"state\":\"exited\"", 20000));
	r = http(&d, "GET", "/metrics", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	snprintf(path, sizeof(path), "%s/metrics.txt", d.dir);
	f = fopen(path, "we");
	fwrite(r.body, 1, r.len, f);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(r.body, "kevd_vm_pager_load_duration_seconds_bucket{vm=\"m\",le=\"+Inf\"}"));
	free(r.body);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", path);
	ck_assert_int_eq(system(cmd), 0);
	stop_daemon(&d);
}
END_TEST

START_TEST(restart_over_stale_socket)
{
	struct daemon d;

	start_daemon(&d, NULL);
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"cmdline\":\"mode=loop\"}", 201, NULL);
	kill(d.pid, SIGKILL);
	ck_assert_int_eq(wait_exit(d.pid, 5000), 128 + SIGKILL);
	ck_assert_int_eq(access(d.sock, F_OK), 0);  /* left behind */
	spawn(&d);
	expect(&d, "GET", "/v1/health", NULL, 200, "\"vms\":0");
	stop_daemon(&d);
}
END_TEST

/* SIGHUP re-reads the file: a new limit applies at once, a broken file is
 * refused and the running configuration kept; the watchdog is petted. */
START_TEST(reload_and_watchdog)
{
	struct daemon d;
	char text[4096];
	FILE *f;
	size_t n;

	spawn_watchdog_usec = "200000";
	start_daemon(&d, NULL);
	spawn_watchdog_usec = NULL;
	ck_assert(got_notify(&d, "WATCHDOG=1", 2000));
	f = fopen(d.conf, "re");
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	ck_assert_ptr_nonnull(strstr(text, "max_vms = 24"));
	memcpy(strstr(text, "max_vms = 24"), "max_vms =  1", 12);
	write_file(d.conf, text);
	kill(d.pid, SIGHUP);
	ck_assert(got_notify(&d, "READY=1", 5000));
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"start\":false}", 201, NULL);
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"start\":false}", 429, "its limit of 1 VMs");
	write_file(d.conf, "[limits]\nmax_vms = lots\n");
	kill(d.pid, SIGHUP);
	ck_assert(got_notify(&d, "READY=1", 5000));
	expect(&d, "GET", "/v1/health", NULL, 200, "ok");
	expect(&d, "POST", "/v1/vms", "{\"kernel\":\"guest.elf\",\"start\":false}", 429, "its limit of 1 VMs");
	stop_daemon(&d);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("api");
	TCase *t = tcase_create("api");

	tcase_set_timeout(t, 120);
	tcase_add_test(t, lifecycle);
	tcase_add_test(t, twenty_at_once);
	tcase_add_test(t, errors);
	tcase_add_test(t, vm_count_limit);
	tcase_add_test(t, crash_isolated);
	tcase_add_test(t, promtool_accepts_metrics);
	tcase_add_test(t, restart_over_stale_socket);
	tcase_add_test(t, reload_and_watchdog);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	int r = kevd_test_need_kvm("test_api");

	if (r)
		return r;
	/* Absolute paths: the daemon runs elsewhere and links the guest. */
	if (kevd_test_built("test_api", "kevd", kevd_bin, sizeof(kevd_bin)) < 0 ||
	    kevd_test_built("test_api", "tests/guests/testguest.elf", guest, sizeof(guest)) < 0)
		return 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = kevd_test_run(suite());
	curl_global_cleanup();
	return r;
}
