/*
 * seccomp filters for kevd's worker threads (see sandbox.h).  The common
 * list holds what glibc does underneath any thread's work (futex for locks,
 * memory calls of malloc and of thread exit, signals for kicks, write for
 * logs and eventfds); each role adds its own calls.
 */
#include "config.h"

#include <errno.h>

#include "common/sandbox.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#endif

#if defined(HAVE_SECCOMP) && !defined(SANITIZED)
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* What every kevd thread may do. */
static const int common_calls[] = {
	SCMP_SYS(futex), SCMP_SYS(write), SCMP_SYS(exit), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(tgkill), SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(sched_yield), SCMP_SYS(restart_syscall),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(madvise), SCMP_SYS(brk),
};

static int allow_all(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);

		if (r < 0)
			return r;
	}
	return 0;
}

static int allow_ioctls(scmp_filter_ctx ctx, const unsigned long *req, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					 SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)req[i]));

		if (r < 0)
			return r;
	}
	return 0;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* libseccomp compiles a filter at far greater cost than the kernel loads
 * it (the first compile in a process took 1.4 ms here, on the way of a
 * restored VM's vCPU thread to its first instruction; a load 85 us): each
 * role's program is compiled once, and every thread of the role loads that
 * same program. */
#define MAX_ROLES 8

static pthread_mutex_t compiled_lock = PTHREAD_MUTEX_INITIALIZER;
static struct compiled {
	const struct kevd_sandbox_role *role;
	int errnum;                  /* 0, or why the filter could not be exported (each thread then loads its own) */
	struct sock_fprog prog;      /* its filter: malloc'd once, kept for the process's life */
} compiled[MAX_ROLES];           /* under compiled_lock */
static unsigned ncompiled;       /* under compiled_lock */

static int export_prog(scmp_filter_ctx ctx, struct sock_fprog *out)
{
	int fd = memfd_create("kevd-seccomp", MFD_CLOEXEC);
	struct sock_filter *f = NULL;
	off_t n;
	int r;

	if (fd < 0)
		return -errno;
	r = seccomp_export_bpf(ctx, fd);
	n = r == 0 ? lseek(fd, 0, SEEK_END) : -1;
	if (r == 0 && (n <= 0 || n % (off_t)sizeof(*f)))
		r = -EINVAL;
	if (r == 0 && !(f = malloc((size_t)n)))
		r = -ENOMEM;
	if (r == 0 && pread(fd, f, (size_t)n, 0) != n)
		r = -EIO;
	close(fd);
	if (r < 0) {
		free(f);
		return r;
	}
	*out = (struct sock_fprog){ .len = (unsigned short)(n / (off_t)sizeof(*f)), .filter = f };
	return 0;
}

/* ROLE's filter in libseccomp's terms; NULL without memory. */
static scmp_filter_ctx build(const struct kevd_sandbox_role *role, int *r)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));

	*r = ctx ? 0 : -ENOMEM;
	if (*r == 0)
		*r = allow_all(ctx, common_calls, N(common_calls));
	if (*r == 0)
		*r = allow_all(ctx, role->syscalls, role->nsyscalls);
	if (*r == 0)
		*r = allow_ioctls(ctx, role->ioctls, role->nioctls);
	return ctx;
}

/* ROLE's program, compiled on first use.  Where it cannot be exported
 * (no memfd_create: an old kernel, a container's profile) that is kept
 * too, and the caller compiles and loads its own, as kevd used to. */
static int program(const struct kevd_sandbox_role *role, struct sock_fprog *out)
{
	int r = 0;
	unsigned i;

	pthread_mutex_lock(&compiled_lock);
	for (i = 0; i < ncompiled && compiled[i].role != role; i++)
		;
	if (i == ncompiled && i < MAX_ROLES) {
		scmp_filter_ctx ctx = build(role, &r);

		if (r == 0)
			r = export_prog(ctx, &compiled[i].prog);
		if (ctx)
			seccomp_release(ctx);
		compiled[i].role = role;
		compiled[i].errnum = -r;
		ncompiled++;
	}
	if (i == MAX_ROLES)
		r = -ENOSPC;
	else if ((r = -compiled[i].errnum) == 0)
		*out = compiled[i].prog;
	pthread_mutex_unlock(&compiled_lock);
	return r;
}

int kevd_sandbox_prepare(const struct kevd_sandbox_role *role, struct kevd_error *err)
{
	struct sock_fprog prog;
	int r = program(role, &prog);

	if (r < 0)
		return kevd_error_sys(err, -r, "seccomp: compiling the %s thread filter", role->name);
	return 0;
}

/* What seccomp_load() does with libseccomp's default attributes: no new
 * privileges (which lets a process without CAP_SYS_ADMIN load a filter),
 * then the filter for this thread only. */
int kevd_sandbox_thread(const struct kevd_sandbox_role *role, struct kevd_error *err)
{
	struct sock_fprog prog;
	int r = program(role, &prog);

	if (r < 0) {
		scmp_filter_ctx ctx = build(role, &r);

		if (r == 0)
			r = seccomp_load(ctx);
		if (ctx)
			seccomp_release(ctx);
		if (r < 0)
			return kevd_error_sys(err, -r, "seccomp: installing the %s thread filter", role->name);
		return 0;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return kevd_error_sys(err, errno, "seccomp: installing the %s thread filter", role->name);
	return 0;
}

bool kevd_sandbox_available(void)
{
	return true;
}

#else

int kevd_sandbox_prepare(const struct kevd_sandbox_role *role, struct kevd_error *err)
{
	return kevd_sandbox_thread(role, err);
}

int kevd_sandbox_thread(const struct kevd_sandbox_role *role, struct kevd_error *err)
{
	(void)role;
#ifdef SANITIZED
	return kevd_error_set(err, ENOSYS, "seccomp: not used in sanitizer builds");
#else
	return kevd_error_set(err, ENOSYS, "seccomp: kevd was built without libseccomp");
#endif
}

bool kevd_sandbox_available(void)
{
	return false;
}

#endif
