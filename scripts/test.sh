#!/bin/sh
# The whole test suite: packages, build, unit and integration tests,
# and the distribution check.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
sh scripts/build.sh
make -j"$(nproc)" check || { cat tests/*.log tests/*/*.log 2>/dev/null | tail -200; exit 1; }
make -j"$(nproc)" distcheck
# ASan+UBSan over make check, TSan over the concurrency tests, and 1000
# create/delete cycles against an ASan daemon (docs/reliability.md).
sh scripts/ci-sanitizers.sh
