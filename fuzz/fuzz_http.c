/*
 * Fuzz target: the HTTP control plane (src/api: listener, routes and
 * handlers) behind libevent's evhttp, fed raw bytes over its real Unix
 * socket.
 *
 * A one-time setup makes a temporary directory with an image directory that
 * holds a single file, "bad.elf", which is not ELF, an event base and a
 * server listening on a socket beside (not inside) the image directory.  No
 * request can therefore start a VM: every create ends with 4xx (or 500 for
 * an unreadable image) before the VMM opens /dev/kvm, so the target needs
 * no KVM and stays fast and deterministic.
 *
 * Per input: connect, write the input (interleaved with the loop, which
 * has to read for large inputs to get through), shut down the write side,
 * then run the loop without blocking until the server closes the
 * connection or DEADLINE_MS pass, reading and discarding the response.
 * Checked: an answer starts with a status line ("HTTP/1.1 NNN"; see
 * check_head() for the exception), its status is one this server can give
 * with no VM in it, and no VM ever exists.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/server.h"
#include "common/log.h"
#include "vmm/vm.h"

#define DEADLINE_MS 2000   /* per input; a connection still open then is a hang */
#define SPIN_LOOPS 64      /* non-blocking loop passes before waiting 1 ms at a time */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "fuzz_http: %s:%d: invariant failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                                \
			abort();                                                                 \
		}                                                                                \
	} while (0)

static struct {
	char dir[64], img_dir[80], bad_elf[96], sock[96];
	struct event_base *base;
	struct kevd_server *srv;
	struct sockaddr_un sa;
	bool verbose;              /* $KEVD_FUZZ_VERBOSE: print each status line */
} fz;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_http: %s: %s\n", what, strerror(errno));
	abort();
}

static void teardown(void)
{
	kevd_server_free(fz.srv);  /* removes the socket */
	if (fz.base)
		event_base_free(fz.base);
	unlink(fz.bad_elf);
	rmdir(fz.img_dir);
	rmdir(fz.dir);
}

static void setup(void)
{
	static const char not_elf[] = "#!/bin/sh\n# not an ELF image\n";
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_server_settings s = { 0 };
	const char *tmp = getenv("TMPDIR");
	int fd;

	/* Replies to a client that went away must not kill the process. */
	signal(SIGPIPE, SIG_IGN);
	kevd_log_set_level(KEVD_LOG_ERROR);
	if (!tmp || strlen(tmp) > 40)
		tmp = "/tmp";
	snprintf(fz.dir, sizeof(fz.dir), "%s/kevd-fuzz-http-XXXXXX", tmp);
	if (!mkdtemp(fz.dir))
		die("mkdtemp");
	snprintf(fz.img_dir, sizeof(fz.img_dir), "%s/images", fz.dir);
	snprintf(fz.bad_elf, sizeof(fz.bad_elf), "%s/bad.elf", fz.img_dir);
	snprintf(fz.sock, sizeof(fz.sock), "%s/api.sock", fz.dir);
	if (mkdir(fz.img_dir, 0700) < 0)
		die("mkdir");
	fd = open(fz.bad_elf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, not_elf, sizeof(not_elf) - 1) != (ssize_t)(sizeof(not_elf) - 1) || close(fd) < 0)
		die("bad.elf");

	fz.base = event_base_new();
	if (!fz.base)
		die("event_base_new");
	s.socket_path = fz.sock;
	s.socket_mode = 0600;
	s.image_dir = fz.img_dir;
	s.max_body_bytes = 65536;
	s.request_timeout_s = 1;
	s.max_vms = 4;
	s.max_vcpus = 4;
	s.max_memory_mib = 512;
	s.max_total_memory_mib = 1024;
	s.console_bytes = 4096;
	s.pager_threads = 1;
	s.window_pages = 16;
	if (kevd_vm_signals_install(&err) < 0 || kevd_server_new(fz.base, &s, NULL, NULL, &fz.srv, &err) < 0) {
		fprintf(stderr, "fuzz_http: kevd_server_new: %s\n", err.msg);
		abort();
	}
	fz.verbose = getenv("KEVD_FUZZ_VERBOSE") != NULL;
	fz.sa.sun_family = AF_UNIX;
	snprintf(fz.sa.sun_path, sizeof(fz.sa.sun_path), "%s", fz.sock);
	atexit(teardown);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One pass of the loop: non-blocking at first, then waiting up to 1 ms so
 * that a slow answer does not turn into a busy spin. */
static void loop_once(unsigned pass)
{
	static const struct timeval ms = { 0, 1000 };

	if (pass < SPIN_LOOPS) {
		event_base_loop(fz.base, EVLOOP_NONBLOCK);
	} else {
		event_base_loopexit(fz.base, &ms);
		event_base_loop(fz.base, EVLOOP_ONCE);
	}
}

/* A status that the server (or evhttp itself) may answer with when no VM
 * exists: never 201 Created, 204 (a delete) or 409 (a VM in the way). */
static bool status_possible(int code)
{
	switch (code) {
	case 200: case 400: case 401: case 404: case 405: case 413: case 414: case 415:
	case 417: case 422: case 429: case 431: case 500: case 501: case 503: case 505:
		return true;
	default:
		return false;
	}
}

/* An answer is a status line, "HTTP/1.1 NNN ...", with a status this
 * server can give.  The version is not checked: evhttp echoes the one of
 * the request line, stored in a signed char, so "HTTP/0.1" comes back as
 * "HTTP/0.1" and "HTTP/1.141" as "HTTP/1.-115" (libevent 2.1, not kevd). */
static void check_head(const char *head, size_t n)
{
	const char *sp = memchr(head, ' ', n);
	int code;

	check(n >= 5 && memcmp(head, "HTTP/", 5) == 0);
	check(sp && (size_t)(sp - head) + 4 <= n);
	check(sp[1] >= '1' && sp[1] <= '5' && sp[2] >= '0' && sp[2] <= '9' && sp[3] >= '0' && sp[3] <= '9');
	code = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
	if (!status_possible(code)) {
		fprintf(stderr, "fuzz_http: unexpected status %d\n", code);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char head[64], buf[16384];
	size_t written = 0, nhead = 0;
	bool shut = false, eof = false, connected = false;
	uint64_t deadline;
	unsigned pass = 0;
	int c;

	if (!fz.srv)
		setup();
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c < 0)
		die("socket");
	deadline = now_ms() + DEADLINE_MS;
	while (!eof) {
		bool progress = false;
		ssize_t n;

		if (!connected) {
			if (connect(c, (struct sockaddr *)&fz.sa, sizeof(fz.sa)) == 0)
				connected = progress = true;
			else if (errno != EAGAIN && errno != EINTR)
				die("connect");
		}
		if (connected && written < size) {
			n = send(c, data + written, size - written, MSG_NOSIGNAL);
			if (n > 0) {
				written += (size_t)n;
				progress = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				written = size;  /* the server hung up: stop sending, read what it said */
			}
		}
		if (connected && written == size && !shut) {
			shutdown(c, SHUT_WR);
			shut = true;
		}
		loop_once(pass++);
		while (connected && !eof) {
			n = read(c, buf, sizeof(buf));
			if (n <= 0) {
				eof = n == 0 || errno == ECONNRESET;
				break;
			}
			if (nhead < sizeof(head)) {
				size_t k = (size_t)n < sizeof(head) - nhead ? (size_t)n : sizeof(head) - nhead;

				memcpy(head + nhead, buf, k);
				nhead += k;
			}
			progress = true;
		}
		if (progress)
			pass = 0;
		if (!eof && now_ms() > deadline) {
			fprintf(stderr, "fuzz_http: the server kept the connection open for %d ms after the request\n",
				DEADLINE_MS);
			abort();
		}
	}
	close(c);
	if (fz.verbose) {
		const char *cr = memchr(head, '\r', nhead);

		printf("  -> %.*s\n", (int)(cr ? (size_t)(cr - head) : nhead), head);
		fflush(stdout);
	}
	if (nhead)
		check_head(head, nhead);
	check(kevd_server_vm_count(fz.srv) == 0);
	return 0;
}
