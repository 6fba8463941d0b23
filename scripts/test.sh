#!/bin/sh
# The whole test suite: packages, build, unit and integration tests,
# the distribution check and the Debian package.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
sh scripts/build.sh
make -j"$(nproc)" check || { cat tests/*.log tests/*/*.log 2>/dev/null | tail -200; exit 1; }
make -j"$(nproc)" distcheck
# The .deb built from a copy of the tree, linted, installed, run and purged
# (root only: it skips, 77, otherwise).
sh scripts/test-deb.sh || [ $? -eq 77 ]
# ASan+UBSan over make check, TSan over the concurrency tests, and 1000
# create/delete cycles against an ASan daemon (docs/reliability.md).
sh scripts/ci-sanitizers.sh
