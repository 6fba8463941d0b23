#!/bin/bash
# Density: N VMs of the test guest alive at once after each touched its
# whole image (touch=all mode=idle: the guest checks its pages, reports and
# halts with interrupts on, so the VM stays running at no CPU), under one
# daemon, with the image shared ("paging": "lazy") and with every VM its own
# copy ("lazy-private").  Reports the host memory they hold three ways:
# kevd's PSS (smaps_rollup), the drop of MemAvailable, and kevd's own
# accounting (the shared image's resident bytes plus every VM's private
# image pages, from GET /v1/images and /paging).  Every ratio is from this
# run.
#
# usage: bench/bench_density.sh [-n VMS]   (default 50)
set -eu
export LC_ALL=C
n=50
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=${2:?}; shift 2 ;;
	*) echo "usage: bench/bench_density.sh [-n VMS]" >&2; exit 2 ;;
	esac
done
top=$(cd "$(dirname "$0")/.." && pwd)
kevd="$top/kevd"
guest="$top/tests/guests/testguest.elf"
. "$top/bench/lib.sh"
bench_begin bench_density curl kvm
sock="$tmp/kevd.sock"
daemon_dir "$tmp" "$guest" <<EOF
[limits]
max_vms = $((n + 1))
max_memory_mib = 64
max_total_memory_mib = $((n * 64 + 64))
EOF
api() { curl -sS --max-time 60 --unix-socket "$sock" "$@"; }
num() { grep -o "\"$1\": *[0-9]*" | head -n 1 | sed 's/.*: *//'; }
avail_kib() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }
pss_kib() { awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup"; }

# measure MODE: fills $res_MODE with "pss_mib avail_mib acct_mib ok"
measure() {
	local mode=$1 i before ok=0 priv=0 shared=0 t
	daemon_start "$kevd" "$tmp" || exit 1
	sync
	before=$(avail_kib)
	for i in $(seq "$n"); do
		api -X POST -H 'Content-Type: application/json' -d "{\"name\":\"d$i\",\"kernel\":\"guest.elf\",\"memory_mib\":64,\"paging\":\"$mode\",\"cmdline\":\"touch=all mode=idle\"}" \
			http://l/v1/vms > /dev/null
	done
	for i in $(seq "$n"); do
		t=0
		until api "http://l/v1/vms/d$i/console" | grep -q 'result: ok'; do
			t=$((t + 1))
			[ "$t" -lt 600 ] || break
			sleep 0.1
		done
		api "http://l/v1/vms/d$i" | grep -q '"state":"running"' && ok=$((ok + 1))
		priv=$((priv + $(api "http://l/v1/vms/d$i/paging" | num pages_private)))
	done
	shared=$(api http://l/v1/images | num resident_bytes)
	shared=${shared:-0}
	eval "res_${mode//-/_}=\"$(( $(pss_kib) / 1024 )) $(( (before - $(avail_kib)) / 1024 )) $(( (priv * 4096 + shared) >> 20 )) $ok\""
	kill "$pid"
	wait "$pid" || :
	pid=
}

measure lazy
measure lazy-private
read -r sp sa sc sok <<< "$res_lazy"
read -r pp pa pc pok <<< "$res_lazy_private"
img=$(( $(stat -c %s "$guest") >> 20 ))
echo "kevd density benchmark ($(date -u '+%Y-%m-%d %H:%M UTC')): $n VMs of the test guest (touch=all mode=idle,"
echo "64 MiB each), all alive at once after touching their whole $img MiB image; load average $(cut -d' ' -f1 /proc/loadavg)"
printf '%-14s %10s %16s %18s %9s\n' "paging" "PSS MiB" "MemAvailable MiB" "image+private MiB" "running"
printf '%-14s %10s %16s %18s %9s\n' "lazy (shared)" "$sp" "$sa" "$sc" "$sok/$n"
printf '%-14s %10s %16s %18s %9s\n' "lazy-private" "$pp" "$pa" "$pc" "$pok/$n"
awk -v sp="$sp" -v pp="$pp" -v sa="$sa" -v pa="$pa" -v sc="$sc" -v pc="$pc" -v img="$img" -v n="$n" 'BEGIN {
	printf "shared / private: PSS %.3fx, MemAvailable drop %.3fx, image memory %.3fx\n", sp / pp, sa / pa, sc / pc
	printf "image memory shared = %.2f images (target <= 1.2 plus what the guests wrote); private = %.2f images\n",
		sc / img, pc / img
}'
