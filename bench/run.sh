#!/bin/sh
# Builds the pager benchmark if it is out of date and runs it; arguments go
# to bench_pager (--quick, --pages N, --reps N, --idle-only).  Build output
# goes to stderr so that stdout holds only the tables.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ ! -f Makefile ]; then
	echo "run.sh: $top is not configured; run ./configure (after autoreconf -fi in a fresh clone) first" >&2
	exit 1
fi
make -j2 bench/bench_pager >&2
exec ./bench/bench_pager "$@"
