#!/bin/bash
# API benchmark of kevd: a real `kevd serve` on a temporary socket, driven by
# bench/bench_api (C, libcurl).  Measures the VM create and delete rates with
# 1 and 4 concurrent clients, and the latency of GET /v1/vms/{id},
# /v1/vms/{id}/paging, /metrics and /v1/health under concurrent load, with the
# VMs idle and while other VMs fault their whole image, in the same run.
# Plain-text tables on stdout; every baseline comes from the same run.
#
# usage: bench/bench_api.sh [-n RUNS] [--count M] [--clients "1 4"] [--threads K]
#                           [--seconds T] [--idle-vms V] [--idle-mode M] [--churn P] [--quick]
#   -n RUNS        rounds of each measurement, the median is shown (default 3)
#   --count M      VMs created per create round (default 20)
#   --clients L    concurrent create/delete clients, a list (default "1 4")
#   --threads K    client threads of the latency measurement (default 4)
#   --seconds T    seconds per endpoint and condition (default 5)
#   --idle-vms V   VMs present during the latency measurement (default 4)
#   --idle-mode M  their test-guest mode: loop (spin a vCPU in ring 3) or idle (HLT) (default loop)
#   --churn P      VMs faulting (touch=all) at once in the loaded condition (default 3)
#   --quick        -n 1 --count 10 --seconds 2
#
# Needs (Debian 12): bash, coreutils, mawk/gawk, curl, a C compiler and
# libcurl4-openssl-dev (or another libcurl -dev) unless bench/bench_api was built.
# Exits 77 if /dev/kvm cannot be opened.
set -eu
export LC_ALL=C

runs=3
count=20
clients_list="1 4"
threads=4
seconds=5
idle_vms=4
idle_mode=loop
churn=3

usage() { sed -n '9,18p' "$0" | sed 's/^# \{0,1\}//'; }
posint() { case $2 in '' | *[!0-9]* | 0*) echo "bench_api.sh: $1 needs a positive number" >&2; exit 2 ;; esac; }
while [ $# -gt 0 ]; do
	case $1 in
	-n | --runs) runs=${2:?}; shift 2 ;;
	--count) count=${2:?}; shift 2 ;;
	--clients) clients_list=${2:?}; shift 2 ;;
	--threads) threads=${2:?}; shift 2 ;;
	--seconds) seconds=${2:?}; shift 2 ;;
	--idle-vms) idle_vms=${2:?}; shift 2 ;;
	--idle-mode) idle_mode=${2:?}; shift 2 ;;
	--churn) churn=${2:?}; shift 2 ;;
	--quick) runs=1 count=10 seconds=2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench_api.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done
posint -n "$runs"; posint --count "$count"; posint --threads "$threads"; posint --seconds "$seconds"
posint --idle-vms "$idle_vms"; posint --churn "$churn"
case $idle_mode in loop | idle) ;; *) echo "bench_api.sh: --idle-mode is loop or idle" >&2; exit 2 ;; esac
for c in $clients_list; do posint --clients "$c"; done

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "bench_api.sh: /dev/kvm cannot be opened: skipped"
	exit 77
fi

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
kevd=$top/kevd
guest=$top/tests/guests/testguest.elf
if [ ! -x "$kevd" ] || [ ! -f "$guest" ]; then
	[ -f Makefile ] || { echo "bench_api.sh: $top is not configured (./configure)" >&2; exit 1; }
	echo "bench_api.sh: building kevd and the test guest" >&2
	make -j2 kevd tests/guests/testguest.elf >&2
fi
command -v curl >/dev/null || { echo "bench_api.sh: curl missing (Debian package: curl)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-bench-api.XXXXXX")
dpid='' cpid=''
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
	trap - EXIT INT TERM
	# The churn generator deletes its VMs on SIGTERM; the daemon stops the rest
	# on SIGTERM (each VM within 10 s) -- after 20 s it is killed.
	if [ -n "$cpid" ]; then kill -TERM "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true; fi
	if [ -n "$dpid" ]; then
		kill -TERM "$dpid" 2>/dev/null || true
		for _ in $(seq 1 200); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$dpid" 2>/dev/null || true
		wait "$dpid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The load generator: bench/bench_api if make built it and it is current,
# else compiled here.
gen=$top/bench/bench_api
if [ ! -x "$gen" ] || [ "$top/bench/bench_api.c" -nt "$gen" ]; then
	gen=$tmp/bench_api
	cc=${CC:-cc}
	# shellcheck disable=SC2046 # pkg-config output is a list of flags
	"$cc" -O2 -Wall -Wextra -pthread -o "$gen" "$top/bench/bench_api.c" \
		$(pkg-config --cflags --libs libcurl 2>/dev/null || echo -lcurl) >"$tmp/cc.log" 2>&1 ||
		{ cat "$tmp/cc.log" >&2; echo "bench_api.sh: cannot build bench_api.c (Debian package: libcurl4-openssl-dev)" >&2; exit 1; }
fi

# --- the daemon --------------------------------------------------------------------

sock=$tmp/kevd.sock
mkdir "$tmp/images"
cp "$guest" "$tmp/images/guest.elf"
max_vms=$((count + idle_vms + churn + 8))
cat >"$tmp/kevd.conf" <<EOF
[api]
socket = $sock
[paths]
image_dir = $tmp/images
state_dir = $tmp
runtime_dir = $tmp
[limits]
max_vms = $max_vms
max_vcpus = 4
max_memory_mib = 1024
max_total_memory_mib = $((max_vms * 64))
[log]
level = warn
EOF
"$kevd" serve --config "$tmp/kevd.conf" </dev/null >"$tmp/kevd.log" 2>&1 &
dpid=$!
api() { curl -sS --unix-socket "$sock" --max-time 30 "$@"; }
for _ in $(seq 1 100); do
	api -o /dev/null http://localhost/v1/health 2>/dev/null && break
	kill -0 "$dpid" 2>/dev/null || { cat "$tmp/kevd.log" >&2; echo "bench_api.sh: kevd serve exited" >&2; dpid=''; exit 1; }
	sleep 0.1
done
api -o /dev/null http://localhost/v1/health || { echo "bench_api.sh: kevd serve does not answer" >&2; exit 1; }

# kv FILE KEY: the value of KEY=... in FILE, "-" if absent.
kv() { sed -n "s/^$2=//p" "$1" | head -n 1 | grep . || echo -; }

. "$top/bench/lib.sh"
kevd_built=$(kevd_build)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(loadavg)
failed=0

# --- 1. create and delete rates ----------------------------------------------------

for c in $clients_list; do
	for r in $(seq 1 "$runs"); do
		f=$tmp/create-$c-$r
		"$gen" "$sock" create --count "$count" --clients "$c" --memory 64 \
			--cmdline "touch=percent:10 mode=loop" >"$f" 2>"$f.err" || {
			failed=1
			echo "bench_api.sh: create round $r with $c clients had failures:" >&2
			head -n 5 "$f.err" >&2
		}
		n=create-$c
		res "$n" ok "$(kv "$f" created_running)"
		res "$n" rate "$(rate "$(kv "$f" created_running)" "$(kv "$f" create_wall_ns)")"
		res "$n" fbrate "$(rate "$(kv "$f" first_byte_seen)" "$(kv "$f" first_byte_wall_ns)")"
		res "$n" fbseen "$(kv "$f" first_byte_seen)"
		res "$n" lat50 "$(kv "$f" create_p50_ns)"
		res "$n" latmax "$(kv "$f" create_max_ns)"
		res "$n" fb50 "$(kv "$f" first_byte_p50_ns)"
		res "$n" frun "$(kv "$f" last_create_to_first_run_ns)"
		res "$n" delrate "$(rate "$(kv "$f" deleted)" "$(kv "$f" delete_wall_ns)")"
		printf '.' >&2
	done
done
load_mid=$(loadavg)

# --- 2. latency under load -----------------------------------------------------------

"$gen" "$sock" spawn --count "$idle_vms" --memory 64 --cmdline "touch=percent:10 mode=$idle_mode" >"$tmp/idle" 2>"$tmp/idle.err" ||
	{ cat "$tmp/idle.err" >&2; echo "bench_api.sh: cannot create the idle VMs" >&2; exit 1; }
vm=$(kv "$tmp/idle" id)
# Past their boots (none holds or waits for a boot slot), then past their
# emulated ring-0 set-up, into the ring-3 loop.
for _ in $(seq 1 300); do
	api http://localhost/metrics | grep -qx -e 'kevd_boot_slots_busy 0' && 
		api http://localhost/metrics | grep -qx -e 'kevd_boot_slot_queue 0' && break
	sleep 0.1
done
sleep 1
paths=("/v1/vms/$vm" "/v1/vms/$vm/paging" "/metrics" "/v1/health")
labels=("GET /v1/vms/{id}" "GET /v1/vms/{id}/paging" "GET /metrics" "GET /v1/health")
metrics_bytes=$(api http://localhost/metrics | wc -c | tr -d ' ')

# measure_paths COND ROUND
measure_paths() {
	local cond=$1 r=$2 i f
	for i in "${!paths[@]}"; do
		f=$tmp/load-$cond-$i-$r
		"$gen" "$sock" load --threads "$threads" --seconds "$seconds" --path "${paths[$i]}" >"$f" 2>"$f.err" || {
			failed=1
			echo "bench_api.sh: GET ${paths[$i]} ($cond) had errors:" >&2
			head -n 3 "$f.err" >&2
		}
		res "load-$cond-$i" rps "$(kv "$f" rps)"
		res "load-$cond-$i" p50 "$(kv "$f" lat_p50_ns)"
		res "load-$cond-$i" p99 "$(kv "$f" lat_p99_ns)"
		res "load-$cond-$i" max "$(kv "$f" lat_max_ns)"
		res "load-$cond-$i" err "$(kv "$f" errors)"
		printf '.' >&2
	done
}

for r in $(seq 1 "$runs"); do
	measure_paths idle "$r"
	f=$tmp/churn-$r
	"$gen" "$sock" churn --parallel "$churn" --memory 64 --cmdline "touch=all" >"$f" 2>"$f.err" &
	cpid=$!
	sleep 1 # let the first churn VMs start
	load_churn=$(loadavg)
	measure_paths churn "$r"
	kill -TERM "$cpid" 2>/dev/null || true
	wait "$cpid" || { failed=1; echo "bench_api.sh: churn round $r had errors" >&2; head -n 3 "$f.err" >&2; }
	cpid=''
	res churn vmrate "$(rate "$(kv "$f" churn_vms)" "$(kv "$f" churn_wall_ns)")"
	res churn faultrate "$(rate "$(kv "$f" churn_faults)" "$(kv "$f" churn_wall_ns)")"
	res churn life "$(kv "$f" churn_vm_life_avg_ns)"
	res churn errors "$(kv "$f" churn_errors)"
done
echo >&2
load_end=$(loadavg)

# --- report ----------------------------------------------------------------------------

describe=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
echo "kevd API benchmark ($started)"
echo "machine: $(nproc) CPUs, Linux $(uname -r), kevd $describe, curl $(curl --version | head -n 1 | cut -d ' ' -f 2)"
echo "         kevd $kevd_built"
[ "$(kevd_build)" = "$kevd_built" ] || echo "WARNING: ./kevd was rebuilt during the run: now $(kevd_build)"
echo "load:    load average (1/5/15 min) $load_start at start, $load_mid after the create rounds,"
echo "         $load_churn during the last faulting round, $load_end at end"
echo "method:  one \`kevd serve\` (Unix socket, log level warn) for the whole run; client bench/bench_api (libcurl,"
echo "         one kept-alive connection per client thread); median of $runs rounds unless said otherwise"
echo "guest:   tests/guests/testguest.elf, 64 MiB, 1 vCPU"
echo

echo "== VM create and delete rate: $count VMs per round, cmdline \"touch=percent:10 mode=loop\""
echo "   a create is done at its 201 (state \"running\" checked); 1st byte: a watcher thread polls each new VM's"
echo "   console (HEAD, every ~1 ms per pass) until its first serial byte; each VM spins in ring 3 after that"
printf '%-8s %10s %7s %11s %10s %10s %11s %10s %10s %7s\n' clients "create/s" spread "->1st byte/s" "create p50" \
	"create max" "1st byte p50" "1st run" "delete/s" ok
for c in $clients_list; do
	n=create-$c
	printf '%-8s %10s %7s %11s %10s %10s %11s %10s %10s %7s\n' "$c" "$(fmt "$(med "$n" rate)" 1 1)" "$(spread "$n" rate)" \
		"$(fmt "$(med "$n" fbrate)" 1 1)" "$(fmt "$(med "$n" lat50)" 1e6 1)ms" "$(fmt "$(top_ "$n" latmax)" 1e6 1)ms" \
		"$(fmt "$(med "$n" fb50)" 1e6 1)ms" "$(fmt "$(med "$n" frun)" 1e6 1)ms" "$(fmt "$(med "$n" delrate)" 1 1)" \
		"$(med "$n" ok)/$count"
done
echo "   create/s      VMs running / wall from the first create request to the last 201"
echo "   ->1st byte/s  VMs that printed / wall from the first create request to the last first byte seen"
echo "   create p50    request latency of one create (201); max over all rounds"
echo "   1st byte p50  create request to first console byte seen, per VM"
echo "   1st run       create_to_first_run_ns that kevd reports for the last VM of a round"
echo "   delete/s      $count DELETEs of running VMs by the same number of clients / their wall"
echo "   every VM created spins a vCPU in ring 3 once booted: with more VMs than cores the later creates share"
echo "   the CPUs with them, so the rate depends on --count and on the machine's load"
read -r -a cl <<<"$clients_list"
if [ "${#cl[@]}" -ge 2 ]; then
	first=${cl[0]}
	for c in "${cl[@]:1}"; do
		echo "   ratio $c / $first clients: create/s $(ratio "$(med create-"$c" rate)" "$(med create-"$first" rate)")," \
			"->1st byte/s $(ratio "$(med create-"$c" fbrate)" "$(med create-"$first" fbrate)")," \
			"delete/s $(ratio "$(med create-"$c" delrate)" "$(med create-"$first" delrate)")"
	done
fi
echo "   note: Firecracker publishes 5 microVMs per host core per second (docs/design.md; ANCHORS.md), i.e. $((5 * $(nproc)))/s"
echo "   for $(nproc) cores -- context only, a different guest, machine and measuring point, not a same-run ratio"
echo

echo "== API latency: $threads client threads back to back for $seconds s per endpoint and condition"
if [ "$idle_mode" = loop ]; then
	echo "   idle:     $idle_vms VMs in mode=loop (each spins one vCPU in ring 3; no paging activity)"
else
	echo "   idle:     $idle_vms VMs in mode=idle (each halts its vCPU; no paging activity)"
fi
echo "   faulting: the same, plus $churn VMs at a time created with \"touch=all\" (each faults its 32 MiB image),"
echo "             polled every 10 ms, deleted when exited, again, for the whole measurement"
echo "   {id} = $vm; /metrics was $metrics_bytes bytes; req/s, p50, p99: median of rounds; max: over all rounds"
printf '%-26s %-9s %9s %9s %9s %9s %7s\n' endpoint condition "req/s" "p50 ms" "p99 ms" "max ms" errors
for i in "${!paths[@]}"; do
	for cond in idle churn; do
		n=load-$cond-$i
		printf '%-26s %-9s %9s %9s %9s %9s %7s\n' "${labels[$i]}" "$([ $cond = idle ] && echo idle || echo faulting)" \
			"$(fmt "$(med "$n" rps)" 1 0)" "$(fmt "$(med "$n" p50)" 1e6 3)" "$(fmt "$(med "$n" p99)" 1e6 3)" \
			"$(fmt "$(top_ "$n" max)" 1e6 3)" "$(top_ "$n" err)"
	done
done
echo
printf '%-34s %9s %9s %9s %9s\n' "ratio faulting / idle" "req/s" p50 p99 max
for i in "${!paths[@]}"; do
	a=load-churn-$i b=load-idle-$i
	printf '%-34s %9s %9s %9s %9s\n' "${labels[$i]}" "$(ratio "$(med "$a" rps)" "$(med "$b" rps)")" \
		"$(ratio "$(med "$a" p50)" "$(med "$b" p50)")" "$(ratio "$(med "$a" p99)" "$(med "$b" p99)")" \
		"$(ratio "$(top_ "$a" max)" "$(top_ "$b" max)")"
done
echo "   background while faulting: $(fmt "$(med churn vmrate)" 1 1) touch=all VMs completed/s," \
	"$(fmt "$(med churn faultrate)" 1 0) pager faults/s, create to exited $(fmt "$(med churn life)" 1e6 0) ms" \
	"per VM (median of rounds), churn errors $(top_ churn errors)"
[ "$failed" = 0 ] || echo "   WARNING: some requests failed (see stderr); their rounds count only the successful requests"
exit "$failed"
