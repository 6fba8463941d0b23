/*
 * systemd notification without systemd: the test plays the manager with a
 * datagram socket of its own (a path in a temporary directory, or an
 * abstract name) and reads what kevd_notify() sends.  Check runs each test
 * in its own process, so the environment set by one does not leak.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/notify.h"
#include "testutil.h"

/* A bound manager socket; ADDR is what goes into NOTIFY_SOCKET. */
struct manager {
	int fd;
	char dir[64];
	char addr[108];
};

static void manager_open(struct manager *m, bool abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	const char *tmp = getenv("TMPDIR");

	m->dir[0] = '\0';
	m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(m->fd, 0);
	if (abstract) {
		snprintf(m->addr, sizeof(m->addr), "@kevd-test-notify-%ld-%d", (long)getpid(), rand());
		memcpy(sa.sun_path + 1, m->addr + 1, strlen(m->addr) - 1);
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(m->addr));
	} else {
		snprintf(m->dir, sizeof(m->dir), "%s/kevd-notify-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
		ck_assert_ptr_nonnull(mkdtemp(m->dir));
		snprintf(m->addr, sizeof(m->addr), "%s/notify", m->dir);
		strcpy(sa.sun_path, m->addr);
		len = sizeof(sa);
	}
	ck_assert_int_eq(bind(m->fd, (struct sockaddr *)&sa, len), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", m->addr, 1), 0);
}

static void manager_close(struct manager *m)
{
	close(m->fd);
	if (m->dir[0]) {
		unlink(m->addr);
		rmdir(m->dir);
	}
}

/* The next datagram, which must already be queued. */
static void expect_datagram(struct manager *m, const char *want)
{
	char buf[4096];
	ssize_t n = recv(m->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	ck_assert_str_eq(buf, want);
}

START_TEST(path_socket)
{
	struct manager m;

	manager_open(&m, false);
	ck_assert_int_eq(kevd_notify("READY=1\nSTATUS=3 VMs"), 0);
	expect_datagram(&m, "READY=1\nSTATUS=3 VMs");
	ck_assert_int_eq(kevd_notifyf("STATUS=%d VMs, %s", 4, "1 starting"), 0);
	expect_datagram(&m, "STATUS=4 VMs, 1 starting");
	ck_assert_int_eq(kevd_notify("WATCHDOG=1"), 0);
	expect_datagram(&m, "WATCHDOG=1");
	/* One datagram per call: nothing else is queued. */
	ck_assert_int_lt(recv(m.fd, (char[8]){ 0 }, 8, MSG_DONTWAIT), 0);
	ck_assert_int_eq(errno, EAGAIN);
	manager_close(&m);
}
END_TEST

START_TEST(abstract_socket)
{
	struct manager m;

	manager_open(&m, true);
	ck_assert_int_eq(kevd_notify("STOPPING=1"), 0);
	expect_datagram(&m, "STOPPING=1");
	manager_close(&m);
	/* The name is gone with the socket. */
	ck_assert_int_eq(kevd_notify("STOPPING=1"), -ECONNREFUSED);
}
END_TEST

START_TEST(large_message)
{
	struct manager m;
	char *big = malloc(3000);

	memcpy(big, "STATUS=", 7);
	memset(big + 7, 'x', 3000 - 8);
	big[2999] = '\0';
	manager_open(&m, false);
	ck_assert_int_eq(kevd_notify(big), 0);
	expect_datagram(&m, big);
	manager_close(&m);
	free(big);
}
END_TEST

START_TEST(not_under_systemd)
{
	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(kevd_notify("READY=1"), 0);
	ck_assert_int_eq(kevd_notifyf("STATUS=%s", "x"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	ck_assert_int_eq(kevd_notify("READY=1"), 0);
}
END_TEST

START_TEST(socket_nowhere)
{
	struct manager m;
	char addr[200];

	setenv("NOTIFY_SOCKET", "/nonexistent/kevd/notify", 1);
	ck_assert_int_eq(kevd_notify("READY=1"), -ENOENT);
	/* A path that is not a socket, and a socket nobody reads any more. */
	manager_open(&m, false);
	snprintf(addr, sizeof(addr), "%s", m.addr);
	manager_close(&m);
	setenv("NOTIFY_SOCKET", addr, 1);
	ck_assert_int_lt(kevd_notify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "/dev/null", 1);
	ck_assert_int_eq(kevd_notify("READY=1"), -ECONNREFUSED);
	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	ck_assert_int_eq(kevd_notify("READY=1"), -EAFNOSUPPORT);
	setenv("NOTIFY_SOCKET", "vsock:2:9999", 1);
	ck_assert_int_eq(kevd_notify("READY=1"), -EAFNOSUPPORT);
	memset(addr, 'a', sizeof(addr));
	addr[0] = '/';
	addr[sizeof(addr) - 1] = '\0';
	setenv("NOTIFY_SOCKET", addr, 1);
	ck_assert_int_eq(kevd_notify("READY=1"), -ENAMETOOLONG);
	addr[0] = '@';
	setenv("NOTIFY_SOCKET", addr, 1);
	ck_assert_int_eq(kevd_notify("READY=1"), -ENAMETOOLONG);
}
END_TEST

/* The full queue: the send fails at once instead of blocking. */
START_TEST(never_blocks)
{
	struct manager m;
	int r = 0;

	manager_open(&m, false);
	for (int i = 0; i < 100000 && r == 0; i++)
		r = kevd_notify("WATCHDOG=1");
	ck_assert_int_eq(r, -EAGAIN);
	manager_close(&m);
}
END_TEST

START_TEST(watchdog)
{
	char pid[32];

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	ck_assert_uint_eq(kevd_notify_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	ck_assert_uint_eq(kevd_notify_watchdog_usec(), 30000000);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	ck_assert_uint_eq(kevd_notify_watchdog_usec(), 30000000);
	/* Meant for another process (say, kevd's parent before a fork). */
	snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	ck_assert_uint_eq(kevd_notify_watchdog_usec(), 0);
	setenv("WATCHDOG_PID", "abc", 1);
	ck_assert_uint_eq(kevd_notify_watchdog_usec(), 0);
	setenv("WATCHDOG_PID", "", 1);
	ck_assert_uint_eq(kevd_notify_watchdog_usec(), 0);
	unsetenv("WATCHDOG_PID");
	static const char *const bad[] = { "", "abc", "-1", "+5", " 5", "5s", "1e6",
					   "99999999999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		ck_assert_msg(kevd_notify_watchdog_usec() == 0, "WATCHDOG_USEC='%s' accepted", bad[i]);
	}
	setenv("WATCHDOG_USEC", "0", 1);
	ck_assert_uint_eq(kevd_notify_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "18446744073709551615", 1);
	ck_assert_uint_eq(kevd_notify_watchdog_usec(), UINT64_MAX);
}
END_TEST

static Suite *notify_suite(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("notify");

	tcase_add_test(tc, path_socket);
	tcase_add_test(tc, abstract_socket);
	tcase_add_test(tc, large_message);
	tcase_add_test(tc, not_under_systemd);
	tcase_add_test(tc, socket_nowhere);
	tcase_add_test(tc, never_blocks);
	tcase_add_test(tc, watchdog);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	srand((unsigned)getpid());
	return kevd_test_run(notify_suite());
}
