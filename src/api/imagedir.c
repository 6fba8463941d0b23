/*
 * The image directory (see imagedir.h).  openat2() with RESOLVE_BENEATH
 * does the confining in the kernel, so there is no window between checking
 * a path and opening it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
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

int kevd_imagedir_open(int dirfd, const char *key, const char *path, int *status, struct kevd_error *err)
{
	struct open_how how = {
		/* O_NONBLOCK: a FIFO planted in the directory must not hang the loop. */
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd, e;

	*status = 400;
	if (!*path || path[0] == '/')
		return kevd_error_set(err, EINVAL, "'%s' must be a relative path inside the image directory, not '%s'",
				      key, path);
	fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (fd >= 0)
		return fd;
	switch ((e = errno)) {
	case EXDEV:
		return kevd_error_set(err, e, "'%s' '%s' leads outside the image directory", key, path);
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
