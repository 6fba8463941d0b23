/* What every Check test program does the same way: run its suite, skip
 * (exit 77) where a device it needs cannot be opened, find built files. */
#ifndef KEVD_TESTUTIL_H
#define KEVD_TESTUTIL_H

#include <check.h>
#include <stddef.h>

/* Runs S and returns the program's exit status (0 = all passed). */
int kevd_test_run(Suite *s);
/* 0 when /dev/kvm (resp. userfaultfd) can be opened, else 77 after saying why. */
int kevd_test_need_kvm(const char *prog);
int kevd_test_need_uffd(const char *prog);
/* The absolute path of REL under $top_builddir (or the current directory);
 * 0, or -1 after saying why. */
int kevd_test_built(const char *prog, const char *rel, char *out, size_t len);

#endif
