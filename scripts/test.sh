#!/bin/sh
# The whole test suite: packages, build, unit and integration tests,
# the distribution check and the Debian package.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
sh scripts/build.sh
# A daemon that dies in a test leaves a core ("core" in its directory, the
# test's, where the core pattern allows); a failure then shows its stacks.
ulimit -c unlimited 2>/dev/null || :
# failed DIR: the logs of the tests that failed under DIR, and the stacks of
# any core dumped there.
failed() {
	for t in $(grep -l '^:test-result: FAIL' "$1"/tests/*.trs "$1"/tests/*/*.trs 2>/dev/null); do
		echo "==== ${t%.trs}.log"
		tail -n 100 "${t%.trs}.log"
	done
	find "$1" -maxdepth 3 -name 'core*' -type f 2>/dev/null | while read -r c; do
		echo "==== $c"
		gdb -q -batch -ex 'thread apply all bt' "$1/kevd" "$c" 2>&1 | tail -n 150 || :
	done
}
make -j"$(nproc)" check || { failed .; exit 1; }
make -j"$(nproc)" distcheck || { failed "$(ls -d kevd-*/_build/sub 2>/dev/null | head -n 1)"; exit 1; }
# The .deb built from a copy of the tree, linted, installed, run and purged
# (root only: it skips, 77, otherwise).
sh scripts/test-deb.sh || [ $? -eq 77 ]
# ASan+UBSan over make check, TSan over the concurrency tests, and 1000
# create/delete cycles against an ASan daemon (docs/reliability.md).
sh scripts/ci-sanitizers.sh
