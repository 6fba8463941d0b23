/*
 * Per-thread least privilege.  A vCPU thread needs KVM_RUN and little
 * else; a pager thread needs userfaultfd's copy/wake/poison, reads of the
 * image and its own poll.  kevd_sandbox_thread() confines the calling
 * thread (only it: no TSYNC) with a seccomp filter of what its role needs;
 * any other system call then fails with EPERM.  EPERM rather than a kill:
 * a path the list missed degrades one operation instead of taking every VM
 * of the daemon down, while the call itself still never happens.
 *
 * Without libseccomp, and in sanitizer builds (whose runtimes make system
 * calls of their own), it is a no-op that says so.
 */
#ifndef KEVD_SANDBOX_H
#define KEVD_SANDBOX_H

#include <stdbool.h>

#include "common/error.h"

enum kevd_sandbox_role {
	KEVD_SANDBOX_VCPU,
	KEVD_SANDBOX_PAGER,
};

/* 0 when the filter is in place; -ENOSYS when sandboxing is not built in. */
int kevd_sandbox_thread(enum kevd_sandbox_role role, struct kevd_error *err);
bool kevd_sandbox_available(void);

#endif
