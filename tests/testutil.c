/* Shared test program scaffolding (see testutil.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "testutil.h"

int kevd_test_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

int kevd_test_need_kvm(const char *prog)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "%s: /dev/kvm cannot be opened (%s): skipped\n", prog, strerror(errno));
		return 77;
	}
	close(fd);
	return 0;
}

int kevd_test_need_uffd(const char *prog)
{
	int fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "%s: userfaultfd cannot be opened (%s): skipped\n", prog, strerror(errno));
		return 77;
	}
	close(fd);
	return 0;
}

int kevd_test_built(const char *prog, const char *rel, char *out, size_t len)
{
	const char *top = getenv("top_builddir");
	char path[PATH_MAX], real[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", top ? top : ".", rel);
	if (!realpath(path, real) || strlen(real) >= len) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno ? errno : ENAMETOOLONG));
		return -1;
	}
	memcpy(out, real, strlen(real) + 1);
	return 0;
}
