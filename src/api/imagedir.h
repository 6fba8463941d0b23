/*
 * The image directory: where the API finds the kernels and initrds that
 * requests name.  Requests give paths relative to it and can never reach
 * outside it: no absolute path, no "..", no symlink leading out, no magic
 * /proc links.
 */
#ifndef KEVD_IMAGEDIR_H
#define KEVD_IMAGEDIR_H

#include "common/error.h"

/* Opens the directory at PATH (O_PATH): the fd to give kevd_imagedir_open(). */
int kevd_imagedir_open_dir(const char *path, struct kevd_error *err);

/* Opens PATH, the request's KEY ("kernel", "initrd"), beneath DIRFD.
 * Returns the fd, or a negative errno with ERR filled and *STATUS the
 * answer for the request: 400 for a path that is not allowed, 422 for one
 * that names no readable file. */
int kevd_imagedir_open(int dirfd, const char *key, const char *path, int *status, struct kevd_error *err);

#endif
