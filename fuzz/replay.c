/*
 * The main() that turns a fuzz target into an ordinary test program: it runs
 * LLVMFuzzerTestOneInput() once over every file of the checked-in corpus, so
 * `make check` replays what the fuzzer found without needing libFuzzer or
 * clang.  Each target is linked twice: with libFuzzer (fuzz/fuzz_X, when
 * configured with --enable-fuzzing) and with this file (fuzz/replay_X,
 * always).
 *
 *   fuzz/replay_X                 the corpus $top_srcdir/fuzz/corpus/X
 *   fuzz/replay_X PATH...         these files, and the files in these
 *                                 directories (e.g. a crash input)
 *
 * KEVD_FUZZ_TARGET (the X) comes from the build.  Each input is read into a
 * buffer of exactly its size, as libFuzzer does, so that a read past the end
 * is caught by AddressSanitizer in sanitizer builds.  Files run in name
 * order; each is named before it runs, so a crash in a test log says which.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

#ifndef KEVD_FUZZ_TARGET
#error "KEVD_FUZZ_TARGET must name the target (e.g. -DKEVD_FUZZ_TARGET='\"image\"')"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path, unsigned *count)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	cleanup_free uint8_t *buf = NULL;
	struct stat st;
	size_t done = 0;

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "replay_%s: %s: %s\n", KEVD_FUZZ_TARGET, path, strerror(errno));
		return -1;
	}
	/* At least one byte so that an empty input still gets its own buffer. */
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		fprintf(stderr, "replay_%s: %s: out of memory\n", KEVD_FUZZ_TARGET, path);
		return -1;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "replay_%s: %s: %s\n", KEVD_FUZZ_TARGET, path, n < 0 ? strerror(errno) : "short read");
			return -1;
		}
		done += (size_t)n;
	}
	printf("%s (%zu bytes)\n", path, done);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, done);
	(*count)++;
	return 0;
}

static int not_hidden(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static int run_path(const char *path, unsigned *count)
{
	struct dirent **names;
	struct stat st;
	int n, r = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay_%s: %s: %s\n", KEVD_FUZZ_TARGET, path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path, count);
	n = scandir(path, &names, not_hidden, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay_%s: %s: %s\n", KEVD_FUZZ_TARGET, path, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		cleanup_free char *p = NULL;

		if (r == 0 && asprintf(&p, "%s/%s", path, names[i]->d_name) < 0)
			r = -1;
		if (r == 0 && run_file(p, count) < 0)
			r = -1;
		free(names[i]);
	}
	free(names);
	return r;
}

int main(int argc, char **argv)
{
	cleanup_free char *corpus = NULL;
	unsigned count = 0;
	int r = 0;

	if (argc > 1) {
		for (int i = 1; i < argc && r == 0; i++)
			r = run_path(argv[i], &count);
	} else {
		const char *top = getenv("top_srcdir");

		if (asprintf(&corpus, "%s/fuzz/corpus/%s", top && *top ? top : ".", KEVD_FUZZ_TARGET) < 0)
			return 99;
		r = run_path(corpus, &count);
	}
	printf("replay_%s: %u inputs ran\n", KEVD_FUZZ_TARGET, count);
	if (r == 0 && count == 0) {
		fprintf(stderr, "replay_%s: no inputs found\n", KEVD_FUZZ_TARGET);
		return 1;
	}
	return r < 0 ? 1 : 0;
}
