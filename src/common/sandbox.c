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
#include <seccomp.h>

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

int kevd_sandbox_thread(const struct kevd_sandbox_role *role, struct kevd_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	int r;

	if (!ctx)
		return kevd_error_set(err, ENOMEM, "seccomp: seccomp_init failed");
	r = allow_all(ctx, common_calls, N(common_calls));
	if (r == 0)
		r = allow_all(ctx, role->syscalls, role->nsyscalls);
	if (r == 0)
		r = allow_ioctls(ctx, role->ioctls, role->nioctls);
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0)
		return kevd_error_sys(err, -r, "seccomp: installing the %s thread filter", role->name);
	return 0;
}

bool kevd_sandbox_available(void)
{
	return true;
}

#else

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
