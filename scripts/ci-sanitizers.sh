#!/bin/sh
# Sanitizer builds and runs (docs/reliability.md):
#   1. build/san/asan: --enable-asan --enable-ubsan, `make check` with
#      LeakSanitizer on and every report fatal;
#   2. build/san/tsan: --enable-tsan, the concurrency tests (test_pagestate,
#      test_pager, test_vm) with tests/tsan.supp;
#   3. tests/leakcycle.sh (1000 create/delete cycles) against the ASan kevd,
#      which must exit cleanly on SIGTERM with no leak report.
# (tests/test_hostile, part of `make check`, so runs against the ASan kevd
# in step 1.)
# The builds are out of tree, from a pristine copy of the sources (the
# files git tracks or would track), so an in-tree ./configure does not get
# in the way.  Prints the time of each step.  SAN_DIR overrides build/san;
# LEAK_CYCLES the number of cycles.  About 4 minutes on 2 cores.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
work=${SAN_DIR:-$top/build/san}
jobs=$(nproc)
t_start=$(date +%s)
step() { echo "== ci-sanitizers: $* ($(( $(date +%s) - t_start )) s)"; }
fail() { echo "ci-sanitizers: FAIL: $*" >&2; exit 1; }
# A failed check is recorded and the next steps still run, so that one run
# reports everything; the script fails at the end.
failed=
soft_fail() { echo "ci-sanitizers: FAIL: $*" >&2; failed="$failed
  $*"; }

step "pristine source copy in $work/src"
rm -rf "$work/src"
mkdir -p "$work/src"
if git rev-parse --git-dir >/dev/null 2>&1; then
	git ls-files -co --exclude-standard -z | tar --null -T - -cf - | (cd "$work/src" && tar xf -)
else
	tar --exclude=./build -cf - . | (cd "$work/src" && tar xf -)
	[ ! -f "$work/src/Makefile" ] || (cd "$work/src" && make distclean >/dev/null)
fi
(cd "$work/src" && autoreconf -fi >/dev/null 2>&1) || fail "autoreconf"

# Every sanitizer report is fatal and printed with its stack.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:print_summary=1
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$top/tests/tsan.supp"
export ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS

san_reports() {  # DIR: prints the logs holding a sanitizer report
	grep -l -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' -e 'runtime error:' \
		-e 'WARNING: ThreadSanitizer' "$1"/tests/*.log "$1"/tests/*/*.log 2>/dev/null || true
}

check_logs() {  # DIR: fails on sanitizer reports and on any test failure
	reports=$(san_reports "$1")
	if [ -n "$reports" ]; then
		for f in $reports; do echo "---- $f"; cat "$f"; done
		soft_fail "sanitizer reports in: $reports"
	fi
	for t in $(sed -n 's/^FAIL: //p; s/^ERROR: //p' "$1/test-suite.log" 2>/dev/null); do
		log="$1/$t.log"
		case " $reports " in *" $log "*) ;; *) cat "$log" ;; esac
		soft_fail "$t failed under sanitizers"
	done
}

step "ASan+UBSan build"
mkdir -p "$work/asan"
(cd "$work/asan" && ../src/configure -q --enable-asan --enable-ubsan --enable-fault-injection &&
	make -j"$jobs" >make.log 2>&1) || { tail -50 "$work/asan/make.log"; fail "ASan build"; }
# The freestanding guest must not be instrumented (tests/guests/local.mk).
if nm "$work/asan/tests/guests/testguest.elf" | grep -q -e __asan -e __ubsan; then
	fail "sanitizer flags reached the test guest"
fi

step "make check under ASan+UBSan"
(cd "$work/asan" && make -j"$jobs" check >check.log 2>&1) || true
grep -E '^(PASS|FAIL|SKIP|ERROR|XPASS|XFAIL):' "$work/asan/check.log" || true
grep -q '^# TOTAL:' "$work/asan/test-suite.log" 2>/dev/null || { tail -50 "$work/asan/check.log"; fail "make check did not run"; }
check_logs "$work/asan"

step "TSan build of the concurrency tests"
mkdir -p "$work/tsan"
(cd "$work/tsan" && ../src/configure -q --enable-tsan &&
	make -j"$jobs" tests/test_pagestate tests/test_pager tests/test_cache tests/test_vm tests/guests/testguest.elf \
		>make.log 2>&1) || { tail -50 "$work/tsan/make.log"; fail "TSan build"; }

step "concurrency tests under TSan"
mkdir -p "$work/tsan/tests"
tsan_failed=
for t in test_pagestate test_pager test_cache test_vm; do
	if (cd "$work/tsan" && top_builddir="$work/tsan" top_srcdir="$work/src" "tests/$t") \
		>"$work/tsan/tests/$t.log" 2>&1; then
		echo "PASS: tests/$t"
	else
		echo "FAIL: tests/$t"
		tsan_failed="$tsan_failed tests/$t"
	fi
done
printf '%s\n' $tsan_failed | sed -n 's|^|FAIL: |p' > "$work/tsan/test-suite.log"
check_logs "$work/tsan"

step "leak cycle against the ASan kevd"
# A small quarantine, so that RSS shows growth rather than ASan's 256 MiB of freed blocks.
top_builddir="$work/asan" KEVD="$work/asan/kevd" LEAK_RSS_MAX_KIB=${LEAK_RSS_MAX_KIB:-65536} \
	ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=16" \
	sh "$top/tests/leakcycle.sh" || soft_fail "leak cycle against the ASan kevd"

step "done"
if [ -n "$failed" ]; then
	echo "ci-sanitizers: FAILED:$failed" >&2
	exit 1
fi
