/*
 * Fuzz target: the configuration file (daemon/conffile.c over inih).
 *
 * The input is the file, read through /proc/self/fd/N of a memfd as
 * kevd_config_load() would read any path.  Then validate, dump and free.
 * Two promises of conffile.h are checked on the way:
 *  - a load that fails leaves the configuration as it was (the dump before
 *    and after are the same);
 *  - a load that succeeds gives a configuration whose dump loads back to the
 *    same values (dump -> load -> dump is a fixed point), which is what
 *    `kevd serve --check-config` relies on.
 * Leaks show up under LeakSanitizer in the libFuzzer build.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "daemon/conffile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "fuzz_config: %s:%d: invariant failed: %s\n", __FILE__, \
				__LINE__, #cond);                                                \
			abort();                                                                 \
		}                                                                                \
	} while (0)

/* A memfd holding DATA; its /proc path goes to PATH. */
static int memfd_with(const void *data, size_t size, char path[static 64])
{
	int fd = memfd_create("fuzz.conf", MFD_CLOEXEC);
	size_t done = 0;

	if (fd < 0) {
		perror("fuzz_config: memfd_create");
		abort();
	}
	while (done < size) {
		ssize_t n = write(fd, (const char *)data + done, size - done);

		if (n <= 0) {
			perror("fuzz_config: write");
			abort();
		}
		done += (size_t)n;
	}
	snprintf(path, 64, "/proc/self/fd/%d", fd);
	return fd;
}

/* The dump of C as a string (caller frees). */
static char *dump(const struct kevd_config *c, size_t *len)
{
	char *s = NULL;
	FILE *f = open_memstream(&s, len);

	if (!f) {
		perror("fuzz_config: open_memstream");
		abort();
	}
	kevd_config_dump(c, f);
	if (fclose(f) != 0)
		abort();
	return s;
}

static void check_round_trip(const struct kevd_config *c)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_config back;
	cleanup_free char *d1 = NULL, *d2 = NULL;
	cleanup_close int fd = -1;
	char path[64];
	size_t l1, l2;

	d1 = dump(c, &l1);
	fd = memfd_with(d1, l1, path);
	kevd_config_init(&back);
	if (kevd_config_load(&back, path, &err) < 0) {
		fprintf(stderr, "fuzz_config: the dump does not load back: %s\n--- dump:\n%s---\n", err.msg, d1);
		abort();
	}
	d2 = dump(&back, &l2);
	if (l1 != l2 || memcmp(d1, d2, l1) != 0) {
		fprintf(stderr, "fuzz_config: dump -> load -> dump differs\n--- first:\n%s--- second:\n%s---\n", d1, d2);
		abort();
	}
	kevd_config_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_config c;
	cleanup_free char *before = NULL, *after = NULL;
	cleanup_close int fd = -1;
	char path[64];
	size_t lb, la;
	FILE *null;

	kevd_log_set_level(KEVD_LOG_ERROR);
	fd = memfd_with(data, size, path);
	kevd_config_init(&c);
	before = dump(&c, &lb);
	if (kevd_config_load(&c, path, &err) < 0) {
		check(err.errnum != 0 && err.msg[0] != '\0');
		after = dump(&c, &la);
		check(la == lb && memcmp(before, after, lb) == 0);
	} else {
		check_round_trip(&c);
	}
	err = (struct kevd_error)KEVD_ERROR_INIT;
	if (kevd_config_validate(&c, &err) < 0)
		check(err.errnum != 0 && err.msg[0] != '\0');
	null = fopen("/dev/null", "we");
	if (null) {
		kevd_config_dump(&c, null);
		fclose(null);
	}
	kevd_config_free(&c);
	return 0;
}
