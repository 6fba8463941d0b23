/*
 * Per-thread least privilege.  kevd_sandbox_thread() confines the calling
 * thread (only it: no TSYNC) with a seccomp filter that allows what every
 * kevd thread does underneath its work (glibc's locks, memory, signals for
 * kicks, writes for logs and eventfds) plus what ROLE lists.  Roles are
 * declared by the layer that owns the thread (the vCPU role in the VMM, the
 * pager role in the pager): this module knows nothing of KVM or
 * userfaultfd.  Any other system call then fails with EPERM.  EPERM rather
 * than a kill: a path a list missed degrades one operation instead of taking
 * every VM of the daemon down, while the call itself still never happens.
 *
 * Without libseccomp, and in sanitizer builds (whose runtimes make system
 * calls of their own), it is a no-op that says so.
 */
#ifndef KEVD_SANDBOX_H
#define KEVD_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

struct kevd_sandbox_role {
	const char *name;                /* in messages: "vCPU", "pager" */
	const int *syscalls;             /* __NR_* numbers beyond the common set */
	size_t nsyscalls;
	const unsigned long *ioctls;     /* ioctl requests allowed on any fd */
	size_t nioctls;
};

/* 0 when the filter is in place; -ENOSYS when sandboxing is not built in.
 * A role's filter is compiled once, by its first thread or by: */
int kevd_sandbox_thread(const struct kevd_sandbox_role *role, struct kevd_error *err);
/* Compiles ROLE's filter ahead of its first thread (at start, off the
 * way of a VM's first instruction); confines nothing. */
int kevd_sandbox_prepare(const struct kevd_sandbox_role *role, struct kevd_error *err);
bool kevd_sandbox_available(void);

#endif
