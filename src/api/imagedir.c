/*
 * The image directory (see imagedir.h).  openat2() with RESOLVE_BENEATH
 * and RESOLVE_NO_XDEV does the confining in the kernel, so there is no
 * window between checking a path and opening it; an absolute symbolic link
 * is resolved in user space but still opened through a confined path.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "api/imagedir.h"

int kevd_imagedir_open_dir(const char *path, struct kevd_error *err)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return kevd_error_sys(err, errno, "image directory '%s'", path);
	return fd;
}

/* The directory's own path, from its descriptor (the kernel's answer, so
 * a directory renamed since it was opened is named as it is now). */
static int dir_path(int dirfd, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
	n = readlink(link, buf, len - 1);
	if (n <= 0 || (size_t)n >= len - 1)
		return -1;
	buf[n] = 0;
	return 0;
}

/* PATH again, for a path whose symbolic links RESOLVE_BENEATH refused
 * (an absolute one): the kernel resolves it as any path, and what it leads
 * to is opened only if it lies beneath the directory, through a path
 * relative to it that is confined as before and may not contain a link
 * any more.  -1 with errno EXDEV when it leads elsewhere. */
static int open_resolved(int dirfd, const char *path, const struct open_how *confined)
{
	char dir[PATH_MAX], whole[2 * PATH_MAX + 2], *real;
	struct open_how how = *confined;
	size_t dl;
	int fd;

	if (dir_path(dirfd, dir, sizeof(dir)) < 0) {
		errno = EXDEV;
		return -1;
	}
	snprintf(whole, sizeof(whole), "%s/%s", dir, path);
	real = realpath(whole, NULL);
	if (!real)
		return -1;
	dl = strlen(dir);
	if (strncmp(real, dir, dl) || real[dl] != '/') {
		free(real);
		errno = EXDEV;
		return -1;
	}
	how.resolve |= RESOLVE_NO_SYMLINKS;
	fd = (int)syscall(SYS_openat2, dirfd, real + dl + 1, &how, sizeof(how));
	free(real);
	return fd;
}

static bool has_dotdot(const char *path)
{
	for (const char *p = path; *p; p = strchr(p, '/') ? strchr(p, '/') + 1 : p + strlen(p))
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == 0))
			return true;
	return false;
}

int kevd_imagedir_open(int dirfd, const char *key, const char *path, int *status, struct kevd_error *err)
{
	struct open_how how = {
		/* O_NONBLOCK: a FIFO planted in the directory must not hang the loop. */
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		/* NO_XDEV: a mount inside the directory (a bind mount of / say)
		 * must not lead out of it either. */
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	int fd, e;

	*status = 400;
	if (!*path || path[0] == '/')
		return kevd_error_set(err, EINVAL, "'%s' must be a relative path inside the image directory, not '%s'",
				      key, path);
	fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	/* Refused for leading out: maybe an absolute symbolic link that
	 * points back inside.  A ".." of the path itself stays refused. */
	if (fd < 0 && errno == EXDEV && !has_dotdot(path))
		fd = open_resolved(dirfd, path, &how);
	if (fd >= 0)
		return fd;
	switch ((e = errno)) {
	case EXDEV:
		return kevd_error_set(err, e, "'%s' '%s' leads outside the image directory (or across a mount inside it)",
				      key, path);
	case ELOOP:
		return kevd_error_set(err, e, "'%s' '%s': too many symbolic links", key, path);
	case ENOENT:
	case ENOTDIR:
		*status = 422;
		return kevd_error_set(err, e, "image '%s': no such file in the image directory", path);
	default:
		*status = 422;
		return kevd_error_set(err, e, "image '%s': %s", path, strerror(e));
	}
}
