/*
 * Per-thread seccomp filters: a confined thread keeps what its role needs
 * (ioctls reach the kernel, which answers for the fd), loses the rest (EPERM
 * before the kernel sees it), and only that thread is confined.  Skips (77)
 * where sandboxing is not built in (no libseccomp, sanitizer builds).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/sandbox.h"
#include "pager/pager.h"
#include "vmm/vm.h"
#include "testutil.h"

struct probe {
	const struct kevd_sandbox_role *role;
	int pipe_rd, pipe_wr, file;
	int load;                       /* kevd_sandbox_thread() */
	int open_errno, socket_errno, fionread_errno, own_ioctl_errno;
	ssize_t written, pread_n;
	int pread_errno;
	char status[64];                /* the Seccomp: line of this thread */
};

static void *probe_main(void *arg)
{
	struct probe *p = arg;
	struct kevd_error err = KEVD_ERROR_INIT;
	unsigned long own = p->role == &kevd_vcpu_sandbox_role ? KVM_RUN : UFFDIO_WAKE;
	char buf[4];
	int n;

	p->load = kevd_sandbox_thread(p->role, &err);
	errno = 0;
	p->open_errno = open("/etc/hostname", O_RDONLY | O_CLOEXEC) < 0 ? errno : 0;
	errno = 0;
	p->socket_errno = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) < 0 ? errno : 0;
	errno = 0;
	p->fionread_errno = ioctl(p->pipe_rd, FIONREAD, &n) < 0 ? errno : 0;
	errno = 0;
	/* An ioctl of the role goes through to the kernel, which says the pipe
	 * is not a vCPU or a userfaultfd. */
	p->own_ioctl_errno = ioctl(p->pipe_rd, own, 0) < 0 ? errno : 0;
	p->written = write(p->pipe_wr, "ok", 2);
	errno = 0;
	p->pread_n = pread(p->file, buf, sizeof(buf), 0);
	p->pread_errno = p->pread_n < 0 ? errno : 0;
	return NULL;
}

static void run_probe(struct probe *p)
{
	int fds[2];
	pthread_t t;

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	p->pipe_rd = fds[0];
	p->pipe_wr = fds[1];
	p->file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(p->file, 0);
	ck_assert_int_eq(pthread_create(&t, NULL, probe_main, p), 0);
	pthread_join(t, NULL);
	close(fds[0]);
	close(fds[1]);
	close(p->file);
}

START_TEST(vcpu_role)
{
	struct probe p = { .role = &kevd_vcpu_sandbox_role };
	int fd;

	run_probe(&p);
	ck_assert_int_eq(p.load, 0);
	ck_assert_int_eq(p.open_errno, EPERM);
	ck_assert_int_eq(p.socket_errno, EPERM);
	ck_assert_int_eq(p.fionread_errno, EPERM);
	ck_assert_int_eq(p.own_ioctl_errno, ENOTTY);
	ck_assert_int_eq(p.written, 2);
	ck_assert_int_eq(p.pread_errno, EPERM);  /* a vCPU reads no files */
	/* The process and its other threads are not confined. */
	fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	close(fd);
}
END_TEST

START_TEST(pager_role)
{
	struct probe p = { .role = &kevd_pager_sandbox_role };

	run_probe(&p);
	ck_assert_int_eq(p.load, 0);
	ck_assert_int_eq(p.open_errno, EPERM);
	ck_assert_int_eq(p.socket_errno, EPERM);
	ck_assert_int_eq(p.fionread_errno, EPERM);
	ck_assert_int_eq(p.own_ioctl_errno, ENOTTY);
	ck_assert_int_eq(p.written, 2);
	ck_assert_int_eq(p.pread_n, 4);          /* the image is read with pread */
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("sandbox");
	TCase *t = tcase_create("sandbox");

	tcase_add_test(t, vcpu_role);
	tcase_add_test(t, pager_role);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	if (!kevd_sandbox_available()) {
		fprintf(stderr, "test_sandbox: built without seccomp sandboxing: skipped\n");
		return 77;
	}
	return kevd_test_run(suite());
}
