#!/bin/bash
# Cost of a /metrics scrape with many VMs faulting, before and after the
# statistics rework (issue 9: one pager summary per VM per scrape, no stripe
# lock on the read path), in the same run.  "before" is kevd built from the
# commit the rework started from, "after" is this tree's ./kevd; both serve
# the same test guest from a temporary socket.
#
# Per variant and round: a fresh `kevd serve`, 50 VMs of 4 vCPUs
# (touch=all, window_pages=1: every page is its own fault, for some 20 s),
# created stopped and then started; once all run, one client scrapes
# /metrics back to back for T s while they fault, the VMs are stopped, and
# the same client scrapes the 50 held VMs for T2 s.  A second daemon per
# variant and round runs the same VMs unscraped, to see whether scraping
# slows the faulting (pager faults/s over the same window).  Variants
# alternate within a round so that drift hits both.
#
# usage: bench/bench_scrape.sh [-n ROUNDS] [--vms V] [--vcpus C] [--seconds T] [--idle-seconds T2]
#                              [--clients K] [--base REV] [--quick]
#   -n ROUNDS          rounds, the median is shown (default 3)
#   --vms V            VMs (default 50)
#   --vcpus C          vCPUs per VM (default 4)
#   --seconds T        seconds of scraping while the VMs fault (default 5)
#   --idle-seconds T2  seconds of scraping once they are stopped (default 3)
#   --clients K        clients scraping back to back, one connection each (default 1)
#   --base REV         the "before" commit (default: the commit "vm: kevd_vm_vcpu_info_from ...")
#   --quick            -n 1 --seconds 3 --idle-seconds 2
#
# The "before" kevd is built once per commit from `git archive` in
# $KEVD_BENCH_CACHE (else $XDG_CACHE_HOME/kevd-bench, else ~/.cache/kevd-bench).
# Needs (Debian 12): bash, git, autoconf/automake, the build dependencies, curl,
# libcurl4-openssl-dev unless bench/bench_api was built.  Exits 77 if /dev/kvm
# cannot be opened.
set -eu
export LC_ALL=C

runs=3
nvms=50
vcpus=4
seconds=5
idle_seconds=3
clients=1
base=''

usage() { sed -n '17,26p' "$0" | sed 's/^# \{0,1\}//'; }
posint() { case $2 in '' | *[!0-9]* | 0*) echo "bench_scrape.sh: $1 needs a positive number" >&2; exit 2 ;; esac; }
while [ $# -gt 0 ]; do
	case $1 in
	-n | --runs) runs=${2:?}; shift 2 ;;
	--vms) nvms=${2:?}; shift 2 ;;
	--vcpus) vcpus=${2:?}; shift 2 ;;
	--seconds) seconds=${2:?}; shift 2 ;;
	--idle-seconds) idle_seconds=${2:?}; shift 2 ;;
	--clients) clients=${2:?}; shift 2 ;;
	--base) base=${2:?}; shift 2 ;;
	--quick) runs=1 seconds=3 idle_seconds=2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench_scrape.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done
posint -n "$runs"; posint --vms "$nvms"; posint --vcpus "$vcpus"; posint --seconds "$seconds"
posint --idle-seconds "$idle_seconds"; posint --clients "$clients"

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "bench_scrape.sh: /dev/kvm cannot be opened: skipped"
	exit 77
fi

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
after=$top/kevd
guest=$top/tests/guests/testguest.elf
if [ ! -x "$after" ] || [ ! -f "$guest" ]; then
	[ -f Makefile ] || { echo "bench_scrape.sh: $top is not configured (./configure)" >&2; exit 1; }
	echo "bench_scrape.sh: building kevd and the test guest" >&2
	make -j2 kevd tests/guests/testguest.elf >&2
fi
command -v curl >/dev/null || { echo "bench_scrape.sh: curl missing (Debian package: curl)" >&2; exit 1; }

# --- the "before" kevd ---------------------------------------------------------------

if [ -z "$base" ]; then
	base=$(git -C "$top" log --format=%H -n 1 --grep='^vm: kevd_vm_vcpu_info_from' 2>/dev/null || true)
	[ -n "$base" ] || { echo "bench_scrape.sh: no commit 'vm: kevd_vm_vcpu_info_from' in the history; give --base" >&2; exit 1; }
fi
base=$(git -C "$top" rev-parse --verify "$base^{commit}") || { echo "bench_scrape.sh: no commit $base" >&2; exit 1; }
cache=${KEVD_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kevd-bench}
bdir=$cache/kevd-$base
before=$bdir/kevd
if [ ! -x "$before" ]; then
	echo "bench_scrape.sh: building the 'before' kevd from $(git -C "$top" log --format='%h %s' -n 1 "$base" | cut -c 1-60) in $bdir" >&2
	rm -rf "$bdir"
	mkdir -p "$bdir"
	git -C "$top" archive "$base" | tar -x -C "$bdir"
	(cd "$bdir" && autoreconf -fi && ./configure -q && make -j"$(nproc)" kevd) >"$bdir.log" 2>&1 ||
		{ tail -30 "$bdir.log" >&2; echo "bench_scrape.sh: the 'before' build failed (log: $bdir.log)" >&2; exit 1; }
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-bench-scrape.XXXXXX")
dpid=''
stop_daemon() {
	[ -n "$dpid" ] || return 0
	kill -TERM "$dpid" 2>/dev/null || true
	for _ in $(seq 1 300); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$dpid" 2>/dev/null || true
	wait "$dpid" 2>/dev/null || true
	dpid=''
}
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
	trap - EXIT INT TERM
	stop_daemon
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The client: bench/bench_api's "load" mode (one kept-alive connection per
# thread, back to back), built here if make did not.
gen=$top/bench/bench_api
if [ ! -x "$gen" ] || [ "$top/bench/bench_api.c" -nt "$gen" ]; then
	gen=$tmp/bench_api
	# shellcheck disable=SC2046 # pkg-config output is a list of flags
	"${CC:-cc}" -O2 -Wall -Wextra -pthread -o "$gen" "$top/bench/bench_api.c" \
		$(pkg-config --cflags --libs libcurl 2>/dev/null || echo -lcurl) >"$tmp/cc.log" 2>&1 ||
		{ cat "$tmp/cc.log" >&2; echo "bench_scrape.sh: cannot build bench_api.c (Debian package: libcurl4-openssl-dev)" >&2; exit 1; }
fi

mkdir "$tmp/images"
cp "$guest" "$tmp/images/guest.elf"
sock=$tmp/kevd.sock
cat >"$tmp/kevd.conf" <<EOF
[api]
socket = $sock
[paths]
image_dir = $tmp/images
state_dir = $tmp
runtime_dir = $tmp
[limits]
max_vms = $((nvms + 4))
max_vcpus = $vcpus
max_memory_mib = 64
max_total_memory_mib = $(((nvms + 4) * 64))
[log]
level = warn
EOF

api() { curl -sS --unix-socket "$sock" --max-time 60 -H 'Content-Type: application/json' "$@"; }
now() { date +%s%N; }
# kv FILE KEY: the value of KEY=... in FILE, "-" if absent.
kv() { sed -n "s/^$2=//p" "$1" | head -n 1 | grep . || echo -; }
# per A N: A / N, "-" if N is not a positive number.
per() { case $2 in '' | *[!0-9]* | 0) echo - ;; *) awk -v a="$1" -v n="$2" 'BEGIN { printf "%.0f\n", a / n }' ;; esac; }
# loop_cpu: ns the daemon's main thread (the event loop that renders
# /metrics) has run so far.
loop_cpu() { cut -d ' ' -f 1 "/proc/$dpid/task/$dpid/schedstat"; }
# loop_waits: times it has blocked so far (voluntary context switches):
# waiting for the next request, and for any lock it could not take.
loop_waits() { sed -n 's/^voluntary_ctxt_switches:[[:space:]]*//p' "/proc/$dpid/task/$dpid/status"; }
# total FILE METRIC: the sum of METRIC's series in a scrape.
total() { awk -v m="$2" 'index($0, m "{") == 1 { s += $NF } END { printf "%.0f\n", s }' "$1"; }

. "$top/bench/lib.sh"

# up KEVD: a daemon on $sock with the VMs created (stopped) and then started.
up() {
	"$1" serve --config "$tmp/kevd.conf" </dev/null >"$tmp/kevd.log" 2>&1 &
	dpid=$!
	for _ in $(seq 1 100); do
		api -o /dev/null http://localhost/v1/health 2>/dev/null && break
		kill -0 "$dpid" 2>/dev/null || { cat "$tmp/kevd.log" >&2; echo "bench_scrape.sh: kevd serve exited" >&2; exit 1; }
		sleep 0.1
	done
	for i in $(seq 1 "$nvms"); do
		api -o /dev/null -w '%{http_code}\n' -X POST -d "{\"name\":\"s$i\",\"kernel\":\"guest.elf\",\"memory_mib\":64,\"vcpus\":$vcpus,\"cmdline\":\"touch=all\",\"window_pages\":1,\"start\":false}" \
			http://localhost/v1/vms | grep -qx 201 || { echo "bench_scrape.sh: cannot create VM s$i" >&2; exit 1; }
	done
	for i in $(seq 1 "$nvms"); do
		api -o /dev/null -w '%{http_code}\n' -X PUT -d '{"action":"start"}' http://localhost/v1/vms/"s$i"/actions |
			grep -qx 200 || { echo "bench_scrape.sh: cannot start VM s$i" >&2; exit 1; }
	done
}

# measure VARIANT KEVD ROUND: scrape while faulting, then stopped.
measure() {
	local n=$1 r=$2 f a b t0 t1 c0 c1 w0 w1
	up "$3"
	api -o "$tmp/s0" http://localhost/metrics
	t0=$(now)
	f=$tmp/fault-$n-$r
	c0=$(loop_cpu) w0=$(loop_waits)
	"$gen" "$sock" load --threads "$clients" --seconds "$seconds" --path /metrics >"$f" 2>"$f.err" || {
		failed=1; echo "bench_scrape.sh: $n round $r: scrapes failed:" >&2; head -n 3 "$f.err" >&2; }
	c1=$(loop_cpu) w1=$(loop_waits)
	api -o "$tmp/s1" http://localhost/metrics
	t1=$(now)
	res "$n" fcpu "$(per "$((c1 - c0))" "$(kv "$f" lat_n)")"
	res "$n" fwaits "$(per "$(((w1 - w0) * 100))" "$(kv "$f" lat_n)")"
	a=$(total "$tmp/s0" kevd_vm_pager_faults_total) b=$(total "$tmp/s1" kevd_vm_pager_faults_total)
	res "$n" frps "$(kv "$f" rps)"
	res "$n" fp50 "$(kv "$f" lat_p50_ns)"
	res "$n" fp99 "$(kv "$f" lat_p99_ns)"
	res "$n" fmax "$(kv "$f" lat_max_ns)"
	res "$n" faultrate_scraped "$(rate $((b - a)) $((t1 - t0)))"
	res "$n" running_end "$(awk '$1 == "kevd_vms{state=\"running\"}" { print $2 }' "$tmp/s1")"
	res "$n" bytes "$(wc -c <"$tmp/s1" | tr -d ' ')"
	for i in $(seq 1 "$nvms"); do
		api -o /dev/null -X PUT -d '{"action":"stop"}' http://localhost/v1/vms/"s$i"/actions || true
	done
	f=$tmp/idle-$n-$r
	c0=$(loop_cpu) w0=$(loop_waits)
	"$gen" "$sock" load --threads "$clients" --seconds "$idle_seconds" --path /metrics >"$f" 2>"$f.err" || {
		failed=1; echo "bench_scrape.sh: $n round $r: idle scrapes failed:" >&2; head -n 3 "$f.err" >&2; }
	c1=$(loop_cpu) w1=$(loop_waits)
	res "$n" icpu "$(per "$((c1 - c0))" "$(kv "$f" lat_n)")"
	res "$n" iwaits "$(per "$(((w1 - w0) * 100))" "$(kv "$f" lat_n)")"
	res "$n" irps "$(kv "$f" rps)"
	res "$n" ip50 "$(kv "$f" lat_p50_ns)"
	res "$n" ip99 "$(kv "$f" lat_p99_ns)"
	res "$n" imax "$(kv "$f" lat_max_ns)"
	stop_daemon
	# The same VMs over the same window, unscraped.
	up "$3"
	api -o "$tmp/s0" http://localhost/metrics
	t0=$(now)
	sleep "$seconds"
	api -o "$tmp/s1" http://localhost/metrics
	t1=$(now)
	a=$(total "$tmp/s0" kevd_vm_pager_faults_total) b=$(total "$tmp/s1" kevd_vm_pager_faults_total)
	res "$n" faultrate_alone "$(rate $((b - a)) $((t1 - t0)))"
	stop_daemon
	printf '.' >&2
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(loadavg)
# shellcheck disable=SC2034 # $kevd is what kevd_build (bench/lib.sh) looks at
kevd=$after after_built=$(kevd_build)
kevd=$before before_built=$(kevd_build)
failed=0
for r in $(seq 1 "$runs"); do
	if [ $((r % 2)) = 1 ]; then
		measure before "$r" "$before"; measure after "$r" "$after"
	else
		measure after "$r" "$after"; measure before "$r" "$before"
	fi
done
echo >&2
load_end=$(loadavg)

# --- report ----------------------------------------------------------------------------

describe=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
echo "kevd /metrics scrape benchmark ($started)"
echo "machine: $(nproc) CPUs, Linux $(uname -r), curl $(curl --version | head -n 1 | cut -d ' ' -f 2)"
echo "before:  $(git -C "$top" log --format='%h %s' -n 1 "$base" | cut -c 1-90)"
echo "         $before, $before_built"
echo "after:   $describe ($after), $after_built"
echo "load:    load average (1/5/15 min) $load_start at start, $load_end at end"
echo "method:  per variant and round a fresh \`kevd serve\` (Unix socket, log level warn) holding $nvms VMs of $vcpus vCPUs,"
echo "         64 MiB, cmdline \"touch=all\", window_pages 1 (each page its own fault), created stopped, then started;"
echo "         once all run, $clients client(s) (bench/bench_api load, one kept-alive connection each) GET /metrics back to back"
echo "         for $seconds s while they fault; then the VMs are stopped and it scrapes the $nvms held VMs for $idle_seconds s."
echo "         A second daemon runs the same VMs over the same window unscraped (two single scrapes bound it)."
echo "         Variants alternate within a round; median of $runs rounds, max over all rounds"
echo

echo "== GET /metrics, $nvms VMs x $vcpus vCPUs"
printf '%-9s %-8s %10s %9s %9s %9s %9s %7s %8s\n' phase variant "scrapes/s" "p50 ms" "p99 ms" "max ms" "CPU ms" waits bytes
for phase in f i; do
	for n in before after; do
		printf '%-9s %-8s %10s %9s %9s %9s %9s %7s %8s\n' "$([ $phase = f ] && echo faulting || echo stopped)" "$n" \
			"$(fmt "$(med "$n" ${phase}rps)" 1 1)" "$(fmt "$(med "$n" ${phase}p50)" 1e6 3)" \
			"$(fmt "$(med "$n" ${phase}p99)" 1e6 3)" "$(fmt "$(top_ "$n" ${phase}max)" 1e6 3)" \
			"$(fmt "$(med "$n" ${phase}cpu)" 1e6 3)" "$(fmt "$(med "$n" ${phase}waits)" 100 2)" "$(med "$n" bytes)"
	done
done
echo "   CPU ms: CPU time of the daemon's event-loop thread per scrape (its schedstat): the scrape's own cost"
echo "   waits:  times per scrape that thread blocked (voluntary context switches): for the next request, for"
echo "           the client to drain a long answer, and (before) for the stripe locks the faults hold"
echo
printf '%-22s %10s %9s %9s %9s %9s %7s\n' "ratio after / before" "scrapes/s" p50 p99 max "CPU" waits
for phase in f i; do
	printf '%-22s %10s %9s %9s %9s %9s %7s\n' "$([ $phase = f ] && echo "while faulting" || echo "VMs stopped")" \
		"$(ratio "$(med after ${phase}rps)" "$(med before ${phase}rps)")" \
		"$(ratio "$(med after ${phase}p50)" "$(med before ${phase}p50)")" \
		"$(ratio "$(med after ${phase}p99)" "$(med before ${phase}p99)")" \
		"$(ratio "$(top_ after ${phase}max)" "$(top_ before ${phase}max)")" \
		"$(ratio "$(med after ${phase}cpu)" "$(med before ${phase}cpu)")" \
		"$(ratio "$(med after ${phase}waits)" "$(med before ${phase}waits)")"
done
echo "   VMs still running at the end of the faulting window: before $(med before running_end), after $(med after running_end) (of $nvms)"
echo "   bytes: one scrape at the end of the faulting window"
echo

echo "== pager faults/s of the $nvms VMs over the $seconds s window, scraped back to back vs not scraped"
printf '%-8s %12s %12s %16s\n' variant scraped unscraped "scraped/unscraped"
for n in before after; do
	printf '%-8s %12s %12s %16s\n' "$n" "$(fmt "$(med "$n" faultrate_scraped)" 1 0)" "$(fmt "$(med "$n" faultrate_alone)" 1 0)" \
		"$(ratio "$(med "$n" faultrate_scraped)" "$(med "$n" faultrate_alone)")"
done
echo "   ratio after / before: scraped $(ratio "$(med after faultrate_scraped)" "$(med before faultrate_scraped)")," \
	"unscraped $(ratio "$(med after faultrate_alone)" "$(med before faultrate_alone)")"
echo
echo "== every round (in the order run; ms per scrape, faults/s)"
for key in fcpu icpu fp50 ip50 faultrate_scraped faultrate_alone; do
	for n in before after; do
		printf '%-18s %-7s %s\n' "$key" "$n" "$(awk -v n="$n" -v k="$key" '$1 == n && $2 == k { printf "%s ", $3 }' "$tmp/results" |
			awk -v k="$key" '{ for (i = 1; i <= NF; i++) printf "%s ", (k ~ /^faultrate/ ? sprintf("%.0f", $i) : sprintf("%.3f", $i / 1e6)); print "" }')"
	done
done
[ "$failed" = 0 ] || echo "   WARNING: some requests failed (see stderr)"
exit "$failed"
