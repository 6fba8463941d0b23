#!/bin/bash
# Guests that spin against the control plane: N VMs of the test guest, each
# spinning one vCPU in ring 3 once booted (touch=none bss=0 mode=loop),
# created back to back by 4 clients (one kept-alive curl each) on a 2-core
# host, while bench_api samples GET /v1/health on the Unix socket from its
# own process (libcurl, one request after the other, no fork per request).
# Reports health p50/p99/max during the creation wave and then with all N
# spinning, the create rate, and the time the 4 clients take to delete them.
# For comparison the same creates with "start": false (kevd's own create
# work, no guest running) and of idle guests (mode=idle: booted, halted).
#
# usage: bench/bench_spin.sh [-n VMS]   (default 100)
set -eu
export LC_ALL=C
n=100
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=${2:?}; shift 2 ;;
	*) echo "usage: bench/bench_spin.sh [-n VMS]" >&2; exit 2 ;;
	esac
done
top=$(cd "$(dirname "$0")/.." && pwd)
kevd="$top/kevd"
gen="$top/bench/bench_api"
. "$top/bench/lib.sh"
bench_begin bench_spin kvm curl bench_api
daemon_dir "$tmp" "$top/tests/guests/testguest.elf" <<EOF
[limits]
max_vms = $((n + 10))
max_memory_mib = 64
max_total_memory_mib = $((n * 64 + 640))
EOF
daemon_start "$kevd" "$tmp"
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# clients WHAT START CMDLINE: 4 clients, one curl each on one connection,
# create (or delete) the VMs v0..v(n-1); prints the wall time in ms.
clients() {
	local what=$1 start=$2 cmd=$3 k i t0
	for k in 0 1 2 3; do
		for ((i = k; i < n; i += 4)); do
			[ "$i" = "$k" ] || echo next
			printf 'unix-socket = "%s"\nsilent\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$sock"
			if [ "$what" = create ]; then
				printf 'request = "POST"\nheader = "Content-Type: application/json"\n'
				printf 'data = "{\\"name\\":\\"v%d\\",\\"kernel\\":\\"guest.elf\\",\\"memory_mib\\":64,\\"start\\":%s,\\"cmdline\\":\\"%s\\"}"\n' \
					"$i" "$start" "$cmd"
				printf 'url = "http://l/v1/vms"\n'
			else
				printf 'request = "DELETE"\nurl = "http://l/v1/vms/v%d"\n' "$i"
			fi
		done > "$tmp/$what.$k.cfg"
	done
	t0=$(now_ms)
	for k in 0 1 2 3; do curl -K "$tmp/$what.$k.cfg" > "$tmp/$what.$k.out" & done
	wait $(jobs -p | grep -v "^$pid\$") 2> /dev/null || :
	echo $(($(now_ms) - t0))
	local want=201
	[ "$what" = create ] || want=204
	[ "$(cat "$tmp"/"$what".*.out | grep -c "^$want\$")" = "$n" ] ||
		{ echo "bench_spin: $what: $(sort "$tmp"/"$what".*.out | uniq -c | tr '\n' ' ')" >&2; exit 1; }
}
# health SECONDS OUT: samples /v1/health for SECONDS in the background
health() { "$gen" "$sock" load --threads 1 --seconds "$1" --path /v1/health > "$2" 2>&1 & }
kv() { grep "^$2=" "$1" | head -n 1 | cut -d= -f2; }
ms() { fmt "$(kv "$1" "$2")" 1e6 2; }

# 1. kevd's own create work: nothing started.
c_nostart=$(clients create false "touch=none bss=0 mode=idle")
d_nostart=$(clients delete - -)
# 2. idle guests: booted (emulated ring-0 set-up, 358 serial bytes), halted.
c_idle=$(clients create true "touch=none bss=0 mode=idle")
d_idle=$(clients delete - -)
# 3. spinning guests, health sampled during the wave, then with all spinning.
health 4 "$tmp/wave"
sleep 0.2
c_spin=$(clients create true "touch=none bss=0 mode=loop")
wait_health() { while kill -0 "$(pgrep -f "$gen $sock load" | head -n 1)" 2> /dev/null; do sleep 0.1; done; }
wait_health
health 3 "$tmp/spin"
sleep 3.5
running=$(curl -s --unix-socket "$sock" http://l/metrics | awk '/^kevd_vms\{state="running"\}/ { print $2 }')
d_spin=$(clients delete - -)

echo "bench_spin: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(loadavg), $(kevd_build)"
echo "$n VMs of the test guest (64 MiB), created and deleted by 4 clients (one kept-alive curl each)"
printf '%-34s %10s %10s %10s\n' "" "create/s" "delete/s" "creates ms"
printf '%-34s %10s %10s %10s\n' 'start false (kevd only)' "$(rate "$n" "${c_nostart}000000")" \
	"$(rate "$n" "${d_nostart}000000")" "$c_nostart"
printf '%-34s %10s %10s %10s\n' 'mode=idle (booted, halted)' "$(rate "$n" "${c_idle}000000")" \
	"$(rate "$n" "${d_idle}000000")" "$c_idle"
printf '%-34s %10s %10s %10s\n' 'mode=loop (each spins a vCPU)' "$(rate "$n" "${c_spin}000000")" \
	"$(rate "$n" "${d_spin}000000")" "$c_spin"
echo "running at once before the deletes: $running"
printf '%-34s %10s %10s %10s %10s\n' "GET /v1/health (Unix socket)" "requests" "p50 ms" "p99 ms" "max ms"
for f in wave spin; do
	case $f in wave) what="during the creation wave" ;; *) what="all $n spinning" ;; esac
	printf '%-34s %10s %10s %10s %10s\n' "$what" "$(kv "$tmp/$f" lat_n)" "$(ms "$tmp/$f" lat_p50_ns)" \
		"$(ms "$tmp/$f" lat_p99_ns)" "$(ms "$tmp/$f" lat_max_ns)"
done
echo "target (issue: 100 spinning vCPUs on 2 cores): health p99 <= 50 ms"
