/*
 * The listeners' connections against a real `kevd serve` (no VM needed):
 * a Unix socket and a metrics listener on a random loopback port, driven
 * with raw sockets so that what is sent and what comes back are exact.
 *
 *   conns      [api] max_connections: the connections past the cap are
 *              answered 503 JSON and closed, those open are still served,
 *              the other listener too; every way a connection can end gives
 *              its slot back.
 *   accept     kevd with RLIMIT_NOFILE 64 and more connections than that:
 *              accept() fails with EMFILE, and kevd pauses instead of
 *              spinning (CPU time and log size bounded), then serves again
 *              once the clients leave.
 *   scrape     scrapes of /metrics that arrive in the same turn of the
 *              loop (sent while kevd is stopped by SIGSTOP) share one
 *              render: identical answers, one render counted.
 *   framing    one answer per request where libevent would read what
 *              follows as another (CONNECT, a body libevent does not read);
 *              unknown methods answered 405 JSON; what libevent still
 *              answers itself, in HTML, pinned as docs/api.md describes.
 *
 * Each test starts its own daemon; KEVD overrides the binary (the
 * sanitizer script runs the tests against an ASan build).
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static char kevd_bin[4096];

struct daemon {
	char dir[256], sock[300], conf[300], log[300];
	int port;  /* the metrics listener's */
	pid_t pid;
};

/* What came back on one connection. */
struct answer {
	int status;        /* of the first response; 0 if none */
	char data[16384];  /* everything received, NUL-terminated */
	size_t len;
	bool closed;       /* the server closed the connection */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- raw connections ---- */

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_tcp(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void send_str(int fd, const char *s)
{
	size_t n = strlen(s), off = 0;

	while (off < n) {
		ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;  /* the server closed it: what it said is read next */
		off += (size_t)w;
	}
}

/* Whether A holds a whole first response (headers and, by its
 * Content-Length, the body). */
static bool whole_response(const struct answer *a)
{
	const char *end = strstr(a->data, "\r\n\r\n"), *cl;

	if (!end)
		return false;
	cl = strcasestr(a->data, "\r\nContent-Length:");
	if (!cl || cl > end)
		return false;
	return a->len >= (size_t)(end + 4 - a->data) + strtoul(cl + 17, NULL, 10);
}

/* Reads into A until the server closes, or until UNTIL_CLOSE is false and
 * a whole response is there, for at most TIMEOUT_MS. */
static void read_answer(int fd, struct answer *a, bool until_close, int timeout_ms)
{
	double end = now_s() + timeout_ms / 1000.0;

	while (now_s() < end && a->len < sizeof(a->data) - 1) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (!until_close && whole_response(a))
			break;
		if (poll(&p, 1, 20) <= 0)
			continue;
		n = recv(fd, a->data + a->len, sizeof(a->data) - 1 - a->len, 0);
		if (n <= 0) {
			a->closed = n == 0 || errno == ECONNRESET;
			break;
		}
		a->len += (size_t)n;
		a->data[a->len] = '\0';
	}
	if (!strncmp(a->data, "HTTP/1.", 7))
		a->status = atoi(a->data + 9);
}

/* Sends REQ on FD and reads the answer (see read_answer). */
static struct answer ask(int fd, const char *req, bool until_close, int timeout_ms)
{
	struct answer a = { 0 };

	send_str(fd, req);
	read_answer(fd, &a, until_close, timeout_ms);
	return a;
}

static const char health_req[] = "GET /v1/health HTTP/1.1\r\nHost: l\r\n\r\n";

static bool unix_health(const struct daemon *d)
{
	int fd = connect_unix(d->sock);
	struct answer a;

	if (fd < 0)
		return false;
	a = ask(fd, health_req, false, 2000);
	close(fd);
	return a.status == 200 && strstr(a.data, "\"status\":\"ok\"");
}

/* ---- the daemon ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void spawn(struct daemon *d, rlim_t nofile)
{
	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0) {
		int log = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (log >= 0)
			dup2(log, STDERR_FILENO);
		if (nofile) {
			struct rlimit rl = { nofile, nofile };

			setrlimit(RLIMIT_NOFILE, &rl);
		}
		execl(kevd_bin, kevd_bin, "serve", "--config", d->conf, (char *)NULL);
		_exit(127);
	}
}

/* Whether the daemon answers on both listeners within 5 s; false if it
 * exited (its port was taken, say). */
static bool answering(struct daemon *d)
{
	for (int i = 0; i < 200; i++) {
		int status, fd;

		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			return false;
		}
		if (unix_health(d) && (fd = connect_tcp(d->port)) >= 0) {
			struct answer a = ask(fd, health_req, false, 2000);

			close(fd);
			if (a.status == 200)
				return true;
		}
		usleep(25000);
	}
	return false;
}

/* Starts kevd with EXTRA added to [api] and, if NOFILE, that limit on
 * its file descriptors. */
static void daemon_start(struct daemon *d, const char *extra, rlim_t nofile)
{
	char text[2048], images[300];

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%s/kevd-listener-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	snprintf(d->sock, sizeof(d->sock), "%s/s", d->dir);
	snprintf(d->conf, sizeof(d->conf), "%s/kevd.conf", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/kevd.log", d->dir);
	snprintf(images, sizeof(images), "%s/images", d->dir);
	ck_assert_int_eq(mkdir(images, 0755), 0);
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	for (int attempt = 0; attempt < 5; attempt++) {
		d->port = 20000 + rand() % 30000;
		snprintf(text, sizeof(text),
			 "[api]\nsocket = %s\n%s\n[paths]\nimage_dir = %s\nstate_dir = %s\nruntime_dir = %s\n"
			 "[log]\nlevel = warn\n[metrics]\nlisten = 127.0.0.1:%d\n",
			 d->sock, extra, images, d->dir, d->dir, d->port);
		write_file(d->conf, text);
		spawn(d, nofile);
		if (answering(d))
			return;
		if (d->pid)
			kill(d->pid, SIGKILL);
	}
	ck_abort_msg("kevd did not start (log %s)", d->log);
}

static void daemon_stop(struct daemon *d)
{
	char cmd[400];
	int status = 0;

	kill(d->pid, SIGTERM);
	for (int i = 0; i < 1000 && waitpid(d->pid, &status, WNOHANG) != d->pid; i++)
		usleep(10000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "kevd exited with status 0x%x", status);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_listener: could not remove %s\n", d->dir);
}

/* FD, served once so that it is surely counted. */
static int served(int fd, const char *what)
{
	struct answer a;

	ck_assert_int_ge(fd, 0);
	a = ask(fd, health_req, false, 2000);
	ck_assert_msg(a.status == 200 && !a.closed, "%s: %d %s", what, a.status, a.data);
	return fd;
}

/* An open connection to the metrics listener, served once. */
static int served_connection(const struct daemon *d)
{
	return served(connect_tcp(d->port), "a connection within the cap");
}

static void expect_refused(const struct daemon *d, const char *why)
{
	int fd = connect_tcp(d->port);
	struct answer a;

	ck_assert_int_ge(fd, 0);
	a = ask(fd, health_req, true, 3000);
	close(fd);
	ck_assert_msg(a.status == 503 && a.closed, "%s: want 503 and closed, got %d (%s): %s", why, a.status,
		      a.closed ? "closed" : "open", a.data);
	ck_assert_msg(strstr(a.data, "Content-Type: application/json") &&
		      strstr(a.data, "{\"fault_message\":\"too many connections: this listener serves at most"),
		      "%s: %s", why, a.data);
	ck_assert_msg(strstr(a.data, "Connection: close"), "%s: %s", why, a.data);
}

/* ---- conns ---- */

START_TEST(refused_beyond_max)
{
	enum { MAX = 4 };
	struct daemon d;
	int fds[MAX];

	daemon_start(&d, "max_connections = 4\nrequest_timeout = 30", 0);
	for (int i = 0; i < MAX; i++)
		fds[i] = served_connection(&d);
	for (int i = 0; i < 3; i++)
		expect_refused(&d, "a connection past the cap");
	/* The cap is per listener: the socket is served meanwhile. */
	ck_assert(unix_health(&d));
	/* Those already open are served as before. */
	for (int i = 0; i < MAX; i++) {
		struct answer a = ask(fds[i], health_req, false, 2000);

		ck_assert_msg(a.status == 200 && !a.closed, "open connection %d after refusals: %d %s", i, a.status,
			      a.data);
	}
	/* One closed, one new one admitted; the next refused again. */
	close(fds[0]);
	usleep(100000);
	fds[0] = served_connection(&d);
	expect_refused(&d, "past the cap again");
	for (int i = 0; i < MAX; i++)
		close(fds[i]);
	daemon_stop(&d);
}
END_TEST

/* The ways a connection ends, each of which must give its slot back. */
static void end_connection(const struct daemon *d, int how)
{
	int fd = connect_tcp(d->port);
	struct answer a;

	ck_assert_int_ge(fd, 0);
	switch (how) {
	case 0:  /* the client closes before sending anything */
		usleep(20000);
		break;
	case 1:  /* the client closes after an answer */
		a = ask(fd, health_req, false, 2000);
		ck_assert_int_eq(a.status, 200);
		break;
	case 2:  /* Connection: close: the server closes */
		a = ask(fd, "GET /v1/health HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n", true, 2000);
		ck_assert(a.status == 200 && a.closed);
		break;
	case 3:  /* HTTP/1.0 without keep-alive */
		a = ask(fd, "GET /v1/health HTTP/1.0\r\n\r\n", true, 2000);
		ck_assert(a.status == 200 && a.closed);
		break;
	case 4:  /* a request line libevent refuses (its own 400) */
		a = ask(fd, "GARBAGE\r\n\r\n", true, 2000);
		ck_assert_msg(a.status == 400 && a.closed, "%d %s", a.status, a.data);
		break;
	default:  /* cut mid-request */
		send_str(fd, "GET /v1/hea");
		usleep(20000);
		break;
	}
	close(fd);
}

START_TEST(slots_come_back)
{
	struct daemon d;
	int a, b;

	daemon_start(&d, "max_connections = 2\nrequest_timeout = 1", 0);
	for (int round = 0; round < 4; round++)
		for (int how = 0; how < 6; how++)
			end_connection(&d, how);
	/* Idle until the server's request_timeout closes it. */
	a = connect_tcp(d.port);
	b = connect_tcp(d.port);
	ck_assert(a >= 0 && b >= 0);
	{
		struct answer x = { 0 };

		read_answer(a, &x, true, 4000);
		ck_assert_msg(x.closed && x.len == 0, "an idle connection: %s", x.data);
	}
	close(a);
	close(b);
	usleep(200000);
	/* Both slots free: two open connections are served, a third is not. */
	a = served_connection(&d);
	b = served_connection(&d);
	expect_refused(&d, "the cap after 26 connections came and went");
	close(a);
	close(b);
	daemon_stop(&d);
}
END_TEST

/* ---- accept ---- */

/* User plus system CPU time of PID, in clock ticks. */
static unsigned long cpu_ticks(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	/* Fields 14 and 15; the command name (field 2) may hold blanks. */
	p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
	return ut + st;
}

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

START_TEST(accept_errors_pause)
{
	enum { N = 120, NOFILE = 64 };
	long hz = sysconf(_SC_CLK_TCK);
	unsigned long t0, t1;
	struct daemon d;
	int fds[N], n = 0;
	long log0, log1;

	daemon_start(&d, "max_connections = 1000\nrequest_timeout = 60", NOFILE);
	for (int i = 0; i < N; i++) {
		fds[n] = connect_tcp(d.port);
		n += fds[n] >= 0;
	}
	ck_assert_int_gt(n, NOFILE);
	/* kevd has accepted what its descriptors allow; the rest wait. */
	usleep(500000);
	log0 = file_size(d.log);
	t0 = cpu_ticks(d.pid);
	sleep(2);
	t1 = cpu_ticks(d.pid);
	log1 = file_size(d.log);
	printf("test_listener: %d connections, RLIMIT_NOFILE %d: kevd used %lu ms of CPU in 2 s, logged %ld bytes\n", n,
	       NOFILE, (t1 - t0) * 1000 / (unsigned long)hz, log1);
	/* Spinning on accept() takes the whole 2 s of a core. */
	ck_assert_msg((t1 - t0) * 1000 / (unsigned long)hz <= 200, "kevd used %lu ticks of CPU in 2 s", t1 - t0);
	ck_assert_msg(log1 - log0 < 4096 && log1 < 16384, "the log grew from %ld to %ld bytes", log0, log1);
	{
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "grep -c 'accept: Too many open files; accepting again in' '%s' >/dev/null",
			 d.log);
		ck_assert_msg(system(cmd) == 0, "no warning about the failed accept() in %s", d.log);
	}
	/* The clients leave; kevd serves again within the longest pause. */
	for (int i = 0; i < n; i++)
		close(fds[i]);
	{
		double t = now_s();
		bool ok = false;

		while (!ok && now_s() - t < 5)
			if (!(ok = unix_health(&d)))
				usleep(50000);
		ck_assert_msg(ok, "kevd does not serve again after the clients left");
		printf("test_listener: serving again %.2f s after the clients left\n", now_s() - t);
	}
	daemon_stop(&d);
}
END_TEST

/* ---- framing ---- */

/* How many responses DATA holds: status lines at the start of a line. */
static int responses(const char *data)
{
	int n = 0;

	for (const char *p = data; (p = strstr(p, "HTTP/1.")); p++)
		n += p == data || p[-1] == '\n';
	return n;
}

/* Sends REQ on a fresh Unix socket connection and checks that exactly one
 * answer with STATUS comes back and the connection is then closed (well
 * before request_timeout, so by kevd, not by the idle timeout). */
static struct answer expect_one(const struct daemon *d, const char *what, const char *req, int status)
{
	int fd = connect_unix(d->sock);
	double t0 = now_s();
	struct answer a;

	ck_assert_int_ge(fd, 0);
	a = ask(fd, req, true, 4000);
	close(fd);
	ck_assert_msg(a.status == status, "%s: want %d, got %d: %s", what, status, a.status, a.data);
	ck_assert_msg(responses(a.data) == 1, "%s: %d answers to one request: %s", what, responses(a.data), a.data);
	ck_assert_msg(a.closed && now_s() - t0 < 3, "%s: connection %s after %.1f s: %s", what,
		      a.closed ? "closed" : "still open", now_s() - t0, a.data);
	return a;
}

static void expect_json(const struct answer *a, const char *what, const char *fragment)
{
	ck_assert_msg(strstr(a->data, "Content-Type: application/json") && strstr(a->data, "{\"fault_message\":\"") &&
		      strstr(a->data, fragment), "%s: want JSON with '%s': %s", what, fragment, a->data);
}

/* A CONNECT with a body, and bytes after it, got its answer and then
 * libevent's 400 for those bytes: libevent keeps a CONNECT's connection
 * open whatever Connection says.  Now one answer, framed, and closed. */
START_TEST(connect_answered_once)
{
	struct daemon d;
	struct answer a;

	daemon_start(&d, "request_timeout = 30", 0);
	a = expect_one(&d, "CONNECT with a body and Connection: close",
		       "CONNECT /v1/vms HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n{\"kernel\":\"x\"}\r\n\r\n", 405);
	expect_json(&a, "CONNECT /v1/vms", "method CONNECT is not allowed here; allowed: GET, HEAD, POST");
	ck_assert_msg(strstr(a.data, "Allow: GET, HEAD, POST\r\n"), "%s", a.data);
	ck_assert_msg(strstr(a.data, "Content-Length: 81\r\n"), "a CONNECT's answer without its length: %s", a.data);
	a = expect_one(&d, "CONNECT with a Content-Length body, then a pipelined GET",
		       "CONNECT /v1/health HTTP/1.1\r\nHost: l\r\nContent-Length: 3\r\n\r\nabc"
		       "GET /v1/version HTTP/1.1\r\nHost: l\r\n\r\n", 405);
	ck_assert_msg(!strstr(a.data, "\"version\""), "the request after a CONNECT was answered: %s", a.data);
	a = expect_one(&d, "CONNECT host:port", "CONNECT example.com:443 HTTP/1.1\r\nHost: l\r\n\r\n", 400);
	expect_json(&a, "CONNECT host:port", "kevd is not a proxy");
	a = expect_one(&d, "CONNECT to no resource", "CONNECT /nope HTTP/1.1\r\nHost: l\r\n\r\n", 404);
	expect_json(&a, "CONNECT /nope", "no resource at /nope");
	/* The CONNECTs' slots came back (close_after goes through the count). */
	ck_assert(unix_health(&d));
	daemon_stop(&d);
}
END_TEST

/* libevent reads no body for HEAD, TRACE and methods it does not know: a
 * body sent with one would be read as the next request. */
START_TEST(unread_body_closes)
{
	struct daemon d;
	struct answer a;
	int fd;

	daemon_start(&d, "request_timeout = 30", 0);
	a = expect_one(&d, "HEAD with a body", "HEAD /v1/health HTTP/1.1\r\nHost: l\r\nContent-Length: 7\r\n\r\nabc\r\n\r\n",
		       200);
	a = expect_one(&d, "an unknown method with a body",
		       "BREW /v1/health HTTP/1.1\r\nHost: l\r\nContent-Length: 7\r\n\r\nabc\r\n\r\n", 405);
	a = expect_one(&d, "TRACE chunked", "TRACE /v1/health HTTP/1.1\r\nHost: l\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "3\r\nabc\r\n0\r\n\r\n", 405);
	/* Without a body the connection stays, as for any method. */
	fd = connect_unix(d.sock);
	a = ask(fd, "HEAD /v1/health HTTP/1.1\r\nHost: l\r\nContent-Length: 0\r\n\r\n", false, 2000);
	ck_assert_msg(a.status == 200, "%s", a.data);
	a = ask(fd, health_req, false, 2000);
	ck_assert_msg(a.status == 200 && !a.closed, "a HEAD without a body closed its connection: %s", a.data);
	close(fd);
	daemon_stop(&d);
}
END_TEST

/* docs/api.md promises a JSON 405 with Allow for any method a path does
 * not take, unknown ones included (libevent answered those 501 in HTML). */
START_TEST(unknown_method_json_405)
{
	struct daemon d;
	struct answer a;
	int fd;

	daemon_start(&d, "", 0);
	fd = connect_unix(d.sock);
	a = ask(fd, "FOO /v1/vms HTTP/1.1\r\nHost: l\r\n\r\n", false, 2000);
	ck_assert_msg(a.status == 405 && !a.closed, "FOO /v1/vms: %s", a.data);
	expect_json(&a, "FOO /v1/vms", "this method is not allowed here; allowed: GET, HEAD, POST");
	ck_assert_msg(strstr(a.data, "Allow: GET, HEAD, POST\r\n"), "%s", a.data);
	/* The connection goes on. */
	a = ask(fd, "PURGE /v1/vms/x HTTP/1.1\r\nHost: l\r\n\r\n", false, 2000);
	ck_assert_msg(a.status == 404, "PURGE /v1/vms/x: %s", a.data);
	expect_json(&a, "PURGE /v1/vms/x", "no VM 'x'");
	close(fd);
	/* The metrics listener too; both counted as method OTHER. */
	fd = connect_tcp(d.port);
	a = ask(fd, "BREW /metrics HTTP/1.1\r\nHost: l\r\n\r\n", false, 2000);
	ck_assert_msg(a.status == 405 && strstr(a.data, "Allow: GET, HEAD\r\n"), "BREW /metrics: %s", a.data);
	a = ask(fd, "GET /metrics HTTP/1.1\r\nHost: l\r\n\r\n", false, 2000);
	ck_assert_msg(strstr(a.data, "kevd_api_requests_total{method=\"OTHER\",code=\"405\"} 2\n"), "%s", a.data);
	close(fd);
	daemon_stop(&d);
}
END_TEST

/* What libevent 2.1 answers itself, before kevd sees a request (no hook
 * lets kevd answer in JSON; docs/api.md says so): an HTML error, and the
 * connection closed.  Pinned here so that the docs stay true. */
START_TEST(framing_errors_documented)
{
	static const struct {
		const char *what, *req;
		int status;
	} cases[] = {
		{ "a request line that does not parse", "GARBAGE\r\n\r\n", 400 },
		{ "an HTTP version kevd does not speak", "GET /v1/health HTTP/2.0\r\nHost: l\r\n\r\n", 400 },
		{ "a header line without a colon", "GET /v1/health HTTP/1.1\r\nBad Header\r\n\r\n", 400 },
		{ "a bad chunk size", "POST /v1/vms HTTP/1.1\r\nHost: l\r\nContent-Type: application/json\r\n"
		  "Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", 413 },
		{ "an Expect other than 100-continue", "POST /v1/vms HTTP/1.1\r\nHost: l\r\nExpect: tea\r\n"
		  "Content-Length: 2\r\n\r\n{}", 417 },
	};
	struct daemon d;
	char big[20100];

	daemon_start(&d, "request_timeout = 30", 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct answer a = expect_one(&d, cases[i].what, cases[i].req, cases[i].status);

		ck_assert_msg(strstr(a.data, "Content-Type: text/html"), "%s: %s", cases[i].what, a.data);
		ck_assert(unix_health(&d));
	}
	/* A header block over 16 KiB. */
	snprintf(big, sizeof(big), "GET /v1/health HTTP/1.1\r\nHost: l\r\nX-Big: %020000d\r\n\r\n", 0);
	expect_one(&d, "a 20 KB header", big, 400);
	ck_assert(unix_health(&d));
	daemon_stop(&d);
}
END_TEST

/* ---- scrape ---- */

static const char metrics_req[] = "GET /metrics HTTP/1.1\r\nHost: l\r\n\r\n";

/* The body of the answer A, and kevd_metrics_renders_total in it (-1 if
 * absent). */
static long renders_in(const struct answer *a, const char **body)
{
	const char *b = strstr(a->data, "\r\n\r\n"), *m;

	*body = b ? b + 4 : "";
	m = strstr(*body, "\nkevd_metrics_renders_total ");
	return m ? strtol(m + 28, NULL, 10) : -1;
}

/* As served_connection(), on the Unix socket: a byte sent there is in
 * kevd's receive queue when send() returns. */
static int served_unix_connection(const struct daemon *d)
{
	return served(connect_unix(d->sock), "a connection on the Unix socket");
}

START_TEST(scrapes_share_a_render)
{
	enum { N = 4 };
	struct daemon d;
	struct answer first, next, a[N];
	const char *body0, *body;
	int fd[N], one, status;
	long r0, r;

	daemon_start(&d, "", 0);
	for (int i = 0; i < N; i++)
		fd[i] = served_unix_connection(&d);
	one = served_unix_connection(&d);
	first = ask(one, metrics_req, false, 3000);
	ck_assert_int_eq(first.status, 200);
	r0 = renders_in(&first, &body0);
	ck_assert_msg(r0 >= 0, "no kevd_metrics_renders_total: %s", first.data);

	/* Stopped, kevd reads nothing: the N scrapes are all there when it
	 * goes on, and its next epoll_wait returns all of them at once. */
	ck_assert_int_eq(kill(d.pid, SIGSTOP), 0);
	/* kill() returns before every thread has stopped; this returns after. */
	ck_assert_int_eq(waitpid(d.pid, &status, WUNTRACED), d.pid);
	ck_assert(WIFSTOPPED(status));
	for (int i = 0; i < N; i++)
		send_str(fd[i], metrics_req);
	usleep(50000);
	ck_assert_int_eq(kill(d.pid, SIGCONT), 0);
	for (int i = 0; i < N; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		read_answer(fd[i], &a[i], false, 3000);
		ck_assert_msg(a[i].status == 200 && whole_response(&a[i]), "scrape %d: %d %s", i, a[i].status, a[i].data);
	}
	/* One render: the same text (the answer counts in it included), and
	 * it says so. */
	r = renders_in(&a[0], &body0);
	ck_assert_int_eq(r, r0 + 1);
	for (int i = 1; i < N; i++) {
		ck_assert_int_eq(renders_in(&a[i], &body), r);
		ck_assert_str_eq(body, body0);
	}
	next = ask(one, metrics_req, false, 3000);
	ck_assert_int_eq(next.status, 200);
	ck_assert_int_eq(renders_in(&next, &body), r0 + 2);
	for (int i = 0; i < N; i++)
		close(fd[i]);
	close(one);
	daemon_stop(&d);
}
END_TEST

static Suite *listener_suite(void)
{
	Suite *s = suite_create("listener");
	TCase *conns = tcase_create("conns"), *accept = tcase_create("accept"), *framing = tcase_create("framing");
	TCase *scrape = tcase_create("scrape");

	tcase_set_timeout(conns, 60);
	tcase_set_timeout(accept, 60);
	tcase_set_timeout(framing, 60);
	tcase_set_timeout(scrape, 60);
	tcase_add_test(scrape, scrapes_share_a_render);
	tcase_add_test(framing, connect_answered_once);
	tcase_add_test(framing, unread_body_closes);
	tcase_add_test(framing, unknown_method_json_405);
	tcase_add_test(framing, framing_errors_documented);
	tcase_add_test(conns, refused_beyond_max);
	tcase_add_test(conns, slots_come_back);
	tcase_add_test(accept, accept_errors_pause);
	suite_add_tcase(s, conns);
	suite_add_tcase(s, accept);
	suite_add_tcase(s, framing);
	suite_add_tcase(s, scrape);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getenv("KEVD")) {
		if (!realpath(getenv("KEVD"), kevd_bin)) {
			fprintf(stderr, "test_listener: %s: %s\n", getenv("KEVD"), strerror(errno));
			return 1;
		}
	} else if (kevd_test_built("test_listener", "kevd", kevd_bin, sizeof(kevd_bin)) < 0) {
		return 1;
	}
	return kevd_test_run(listener_suite());
}
