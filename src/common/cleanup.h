/*
 * Scope-bound cleanup.  A variable declared with one of these attributes is
 * released when it goes out of scope; ownership leaves the scope explicitly
 * through kevd_steal_ptr()/kevd_steal_fd(), which return the value and reset
 * the variable so the cleanup does nothing.
 */
#ifndef KEVD_CLEANUP_H
#define KEVD_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static inline void kevd_freep(void *p)
{
	free(*(void **)p);
}

static inline void kevd_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void kevd_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define cleanup_free __attribute__((cleanup(kevd_freep)))
#define cleanup_close __attribute__((cleanup(kevd_closep)))
#define cleanup_fclose __attribute__((cleanup(kevd_fclosep)))

#define kevd_steal_ptr(pp) ({ __typeof__(*(pp)) kevd_s_ = *(pp); *(pp) = NULL; kevd_s_; })
#define kevd_steal_fd(pfd) ({ int kevd_s_ = *(pfd); *(pfd) = -1; kevd_s_; })

/* Retries a syscall expression while it fails with EINTR. */
#define KEVD_RETRY_EINTR(expr) ({ __typeof__(expr) kevd_r_; \
	do { kevd_r_ = (expr); } while (kevd_r_ == -1 && errno == EINTR); kevd_r_; })

#endif
