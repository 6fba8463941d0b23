#!/bin/sh
# Leak cycle: LEAK_CYCLES (1000) create/start/delete cycles through the API
# of one real `kevd serve`, sampling the daemon's open fds and RSS every
# 100 cycles.  The fd count must be flat (the same at the end as after the
# first 100 cycles) and RSS may grow by at most LEAK_RSS_MAX_KIB (16384)
# over the same span.  The daemon is then stopped with SIGTERM and must
# exit 0; under AddressSanitizer (KEVD pointing at an --enable-asan build)
# its LeakSanitizer report, written to a log file, must be empty.
#
#   KEVD=path/to/kevd LEAK_CYCLES=1000 sh tests/leakcycle.sh
#
# Skips (77) without /dev/kvm or curl.  Not part of `make check` (about a
# minute); scripts/ci-sanitizers.sh runs it against the ASan daemon.
set -eu
top_builddir=${top_builddir:-$(cd "$(dirname "$0")/.." && pwd)}
kevd=${KEVD:-$top_builddir/kevd}
guest=$top_builddir/tests/guests/testguest.elf
cycles=${LEAK_CYCLES:-1000}
rss_max=${LEAK_RSS_MAX_KIB:-16384}

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "leakcycle: /dev/kvm cannot be opened: skipped" >&2
	exit 77
fi
command -v curl >/dev/null || { echo "leakcycle: curl not installed: skipped" >&2; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-leak-XXXXXX")
pid=
cleanup() {
	[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || :
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
mkdir "$tmp/images"
cp "$guest" "$tmp/images/guest.elf"
cat > "$tmp/kevd.conf" <<CONF
[api]
socket = $tmp/kevd.sock
[paths]
image_dir = $tmp/images
state_dir = $tmp
runtime_dir = $tmp
[limits]
console_bytes = 64K
[log]
level = warn
CONF

# ASan/LSan write their reports here (a no-op for other builds).
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$tmp/asan"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$tmp/ubsan"
export ASAN_OPTIONS UBSAN_OPTIONS
"$kevd" serve --config "$tmp/kevd.conf" &
pid=$!
for _ in $(seq 200); do
	curl -sf --unix-socket "$tmp/kevd.sock" http://l/v1/health >/dev/null 2>&1 && break
	sleep 0.05
done

api() {  # METHOD PATH [BODY] -> prints the status
	if [ $# -ge 3 ]; then
		curl -s -o /dev/null -w '%{http_code}' --unix-socket "$tmp/kevd.sock" -X "$1" \
			-H 'Content-Type: application/json' -d "$3" "http://l$2"
	else
		curl -s -o /dev/null -w '%{http_code}' --unix-socket "$tmp/kevd.sock" -X "$1" "http://l$2"
	fi
}
# The fd count once the daemon is idle: a connection curl just closed may
# still be open on the daemon's side for a moment, so take the smallest of
# a few samples.
fds() {
	best=
	for _ in 1 2 3 4 5; do
		n=$(ls "/proc/$pid/fd" | wc -l)
		[ -z "$best" ] || [ "$n" -lt "$best" ] && best=$n
		sleep 0.02
	done
	echo "$best"
}
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }

echo "leakcycle: $cycles cycles against $kevd (pid $pid)"
echo "leakcycle: cycle      fds   rss_kib  threads"
echo "leakcycle: 0     $(printf '%8s %9s %8s' "$(fds)" "$(rss)" "$(ls /proc/$pid/task | wc -l)")"
t0=$(date +%s)
fd100= rss100=
i=1
while [ "$i" -le "$cycles" ]; do
	case $((i % 3)) in
	0) cmd="touch=none bss=0"; vcpus=1 ;;
	1) cmd="touch=none bss=0 mode=loop"; vcpus=2 ;;
	*) cmd="touch=percent:1 bss=4 mode=loop"; vcpus=1 ;;
	esac
	s=$(api POST /v1/vms "{\"name\":\"c$i\",\"kernel\":\"guest.elf\",\"memory_mib\":64,\"vcpus\":$vcpus,\"cmdline\":\"$cmd\"}")
	[ "$s" = 201 ] || { echo "leakcycle: cycle $i: create got $s" >&2; exit 1; }
	s=$(api DELETE "/v1/vms/c$i")
	[ "$s" = 204 ] || { echo "leakcycle: cycle $i: delete got $s" >&2; exit 1; }
	if [ $((i % 100)) -eq 0 ]; then
		f=$(fds) r=$(rss)
		echo "leakcycle: $i $(printf '%8s %9s %8s' "$f" "$r" "$(ls /proc/$pid/task | wc -l)")"
		[ -n "$fd100" ] || { fd100=$f; rss100=$r; }
	fi
	i=$((i + 1))
done
t1=$(date +%s)
[ "$(api GET /v1/health)" = 200 ] || { echo "leakcycle: /v1/health fails at the end" >&2; exit 1; }
f=$(fds) r=$(rss)
echo "leakcycle: $cycles cycles in $((t1 - t0)) s; fds $fd100 -> $f; rss ${rss100} -> $r KiB ($((r - rss100)) KiB)"
status=0
if [ "$f" -ne "$fd100" ]; then
	echo "leakcycle: FAIL: fd count $f at the end, $fd100 after 100 cycles" >&2
	ls -l "/proc/$pid/fd" >&2
	status=1
fi
if [ $((r - rss100)) -gt "$rss_max" ]; then
	echo "leakcycle: FAIL: RSS grew by $((r - rss100)) KiB (limit $rss_max)" >&2
	status=1
fi

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
if [ "$rc" -ne 0 ]; then
	echo "leakcycle: FAIL: kevd exited with $rc after SIGTERM" >&2
	status=1
fi
if ls "$tmp"/asan.* "$tmp"/ubsan.* >/dev/null 2>&1; then
	echo "leakcycle: FAIL: sanitizer reports:" >&2
	cat "$tmp"/asan.* "$tmp"/ubsan.* 2>/dev/null | head -200 >&2
	status=1
else
	echo "leakcycle: no sanitizer report at exit"
fi
exit $status
