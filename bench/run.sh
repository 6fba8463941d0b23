#!/bin/sh
# Builds the pager benchmark if it is out of date and runs it; arguments go
# to bench_pager (--quick, --pages N, --reps N, --idle-only).  Build output
# goes to stderr so that stdout holds only the tables.  Then, when gnuplot is
# installed, bench/plot.sh draws the data the other benchmarks left in
# $KEVD_BENCH_OUT (default bench/out/) as PNG files beside it; it says on
# stderr which, and its failure does not change the exit status.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ ! -f Makefile ]; then
	echo "run.sh: $top is not configured; run ./configure (after autoreconf -fi in a fresh clone) first" >&2
	exit 1
fi
make -j2 bench/bench_pager >&2
s=0
./bench/bench_pager "$@" || s=$?
data=${KEVD_BENCH_OUT:-$top/bench/out}
if command -v gnuplot >/dev/null 2>&1 && [ -d "$data" ]; then
	sh "$top/bench/plot.sh" "$data" || echo "run.sh: bench/plot.sh failed" >&2
fi
exit $s
