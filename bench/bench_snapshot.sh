#!/bin/bash
# Snapshot restore: a 1 GiB VM of the test guest that touched and rewrote
# its 32 MiB data image (touch=all write=1) and wrote RAM_MIB (224) MiB of
# RAM besides (ram=), 256 MiB in all, is snapshotted as its work begins
# (work=ROUNDS); clones restored from it finish that work.  For each
# way to restore, create -> first guest instruction (create_to_first_run_ns)
# and create -> end of the work (the guest's exit), median of RUNS:
#   lazy          the shared cache empty: every page from the snapshot file
#   lazy-warm     the cache already filled by an earlier clone: the
#                 clone maps the filled memfd MAP_PRIVATE and takes minor
#                 faults only -- what a plain MAP_PRIVATE mapping of a
#                 memory file in the page cache gives (Firecracker's File
#                 backend), without a full-size file
#   lazy-private  the pager copies every page into the clone (UFFDIO_COPY)
#   eager         every page read before the first instruction
#   lazy+ws, lazy-private+ws  the same with the working set: the first
#                 restore recorded the pages the guest touched ([snapshot]
#                 record_ms), this one prefetches them before it needs them
#                 (the other rows run with record_ms = 0: no working set)
# The snapshot's files are in the page cache in every case (just written).
# Then 20 clones alive at once (mode=idle after the work): kevd's PSS
# growth against one snapshot's pages plus what the clones wrote.
#
# The 20 clones' guest works on its data image only (no ram=).
#
# usage: bench/bench_snapshot.sh [-r RUNS] [-w ROUNDS] [-m RAM_MIB]   (defaults 5, 4, 224)
set -eu
export LC_ALL=C
runs=5
rounds=4
ram=224
while [ $# -gt 0 ]; do
	case $1 in
	-r) runs=${2:?}; shift 2 ;;
	-w) rounds=${2:?}; shift 2 ;;
	-m) ram=${2:?}; shift 2 ;;
	*) echo "usage: bench/bench_snapshot.sh [-r RUNS] [-w ROUNDS] [-m RAM_MIB]" >&2; exit 2 ;;
	esac
done
top=$(cd "$(dirname "$0")/.." && pwd)
kevd="$top/kevd"
guest="$top/tests/guests/testguest.elf"
. "$top/bench/lib.sh"
bench_begin bench_snapshot curl kvm
daemon_dir "$tmp" "$guest" <<EOF
[limits]
max_vms = 32
max_memory_mib = 1024
max_total_memory_mib = 40000
[pager]
cache_keep_s = 600
EOF
# Two configurations: without working sets (record_ms = 0), and with.
cp "$tmp/kevd.conf" "$tmp/kevd-ws.conf"
printf '[snapshot]\nrecord_ms = 0\n' >> "$tmp/kevd.conf"
printf '[snapshot]\nrecord_ms = 60000\n' >> "$tmp/kevd-ws.conf"
cp "$tmp/kevd.conf" "$tmp/kevd-nows.conf"
api() { curl -sS --max-time 120 --unix-socket "$sock" "$@"; }
post() { api -X POST -H 'Content-Type: application/json' -d "$2" "http://l$1"; }
num() { grep -o "\"$1\": *[0-9]*" | head -n 1 | sed 's/.*: *//'; }
pss_kib() { awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup"; }
wait_for() {  # VM PATTERN: until the console matches (120 s at most)
	local t=0
	until api "http://l/v1/vms/$1/console" | grep -q "$2"; do
		t=$((t + 1))
		[ "$t" -lt 2400 ] || { echo "bench_snapshot: $1 never printed '$2'" >&2; exit 1; }
		sleep 0.05
	done
}
wait_exit() {
	local t=0
	until api "http://l/v1/vms/$1" | grep -q '"state":"exited"'; do
		t=$((t + 1))
		[ "$t" -lt 2400 ] || { echo "bench_snapshot: $1 did not exit: $(api "http://l/v1/vms/$1")" >&2; exit 1; }
		sleep 0.02
	done
}
# fresh [ws]: a new daemon, so that the cache holds nothing of the
# snapshot (an unused entry is kept for cache_keep_s: the warm case relies
# on it); with "ws", one that records and prefetches working sets.
fresh() {
	kill "$pid"
	wait "$pid" 2> /dev/null || :
	pid=
	if [ "${1:-}" = ws ]; then cp "$tmp/kevd-ws.conf" "$tmp/kevd.conf"; else cp "$tmp/kevd-nows.conf" "$tmp/kevd.conf"; fi
	daemon_start "$kevd" "$tmp" || exit 1
}

# snapshot_at_work VM SNAPSHOT CMDLINE: boots VM with CMDLINE and takes
# SNAPSHOT (stop) as soon as its work begins (polled without a pause: the
# whole work takes a few ms per round); one taken after the work ended
# would leave the clones nothing to do, so it is made again.  The
# snapshot's answer in $tmp/snap.json.
snapshot_at_work() {
	local vm=$1 snap=$2 cmdline=$3 try t late
	for try in 1 2 3 4 5 0; do
		[ "$try" != 0 ] || { echo "bench_snapshot: no snapshot of $vm before its work ended" >&2; exit 1; }
		post /v1/vms "{\"name\":\"$vm\",\"kernel\":\"guest.elf\",\"memory_mib\":1024,\"cmdline\":\"$cmdline\"}" > /dev/null
		t=0
		until api "http://l/v1/vms/$vm/console" | grep -q 'work: rounds='; do
			t=$((t + 1))
			[ "$t" -lt 20000 ] || { echo "bench_snapshot: $vm never began its work" >&2; exit 1; }
		done
		post "/v1/vms/$vm/snapshot" "{\"name\":\"$snap\",\"stop\":true}" > "$tmp/snap.json"
		late=$(api "http://l/v1/vms/$vm/console" | grep -c 'work: result=' || :)
		api -X DELETE "http://l/v1/vms/$vm" > /dev/null
		[ "$late" = 0 ] && return 0
		api -X DELETE "http://l/v1/snapshots/$snap" > /dev/null
	done
}

daemon_start "$kevd" "$tmp" || exit 1
snapshot_at_work src gold "touch=all write=1 work=$rounds ram=$ram"
snap_pages=$(num pages < "$tmp/snap.json")

# one NAME PAGING [HOLDER]: restores a clone, waits for its exit, records
# its times; checks its result against the first clone's.
first_result=
one() {
	local name=$1 paging=$2 v=c$RANDOM j
	j=$(post /v1/vms "{\"name\":\"$v\",\"snapshot\":\"gold\",\"paging\":\"$paging\"}")
	case $j in *'"id":'*) ;; *) echo "bench_snapshot: restore ($name): $j" >&2; exit 1 ;; esac
	wait_exit "$v"
	j=$(api "http://l/v1/vms/$v")
	res "$name" first_ns "$(echo "$j" | num create_to_first_run_ns)"
	res "$name" run_ns "$(echo "$j" | num run_time_ns)"
	res "$name" total_ns "$(($(echo "$j" | num create_to_first_run_ns) + $(echo "$j" | num run_time_ns)))"
	j=$(api "http://l/v1/vms/$v/paging")
	res "$name" faults "$(echo "$j" | num faults)"
	res "$name" prefetched "$(echo "$j" | num pages_prefetched)"
	res "$name" hits "$(echo "$j" | num prefetch_hits)"
	res "$name" premapped "$(echo "$j" | num pages_premapped)"
	res "$name" prefetch_ns "$(echo "$j" | num prefetch_ns)"
	r=$(api "http://l/v1/vms/$v/console" | grep -o 'work: result=0x[0-9a-f]*' | tail -n 1)
	[ -n "$first_result" ] || first_result=$r
	[ "$r" = "$first_result" ] || { echo "bench_snapshot: clone $v ($name) ended with '$r', not '$first_result'" >&2; exit 1; }
	api -X DELETE "http://l/v1/vms/$v" > /dev/null
}

for i in $(seq "$runs"); do
	fresh
	one lazy lazy
	# warm: the entry the cold clone filled, kept after it was deleted
	one lazy-warm lazy
	fresh
	one lazy-private lazy-private
	fresh
	one eager eager
done
# The working set: recorded by a first restore (not measured), then used.
# Recorded shared: the list then says which pages the guest wrote.
fresh ws
one record lazy
sleep 2.5
api http://l/v1/snapshots/gold > /dev/null
for i in $(seq "$runs"); do
	fresh ws
	one lazy+ws lazy
	one lazy-warm+ws lazy
	fresh ws
	one lazy-private+ws lazy-private
done


# ---- 20 clones alive at once ----
# As for gold: taken as the work begins (until a snapshot taken whenever
# the console showed it begun came after the work had ended, and the
# clones wrote nothing).  Without gold's RAM its ROUNDS rounds are over
# in a few ms, often before the snapshot's pause, five times in a row:
# 25 times as many rounds.
fresh
snapshot_at_work idle idle "touch=all write=1 work=$((rounds * 25)) mode=idle"
sleep 1
before=$(pss_kib)
for i in $(seq 20); do
	post /v1/vms "{\"name\":\"k$i\",\"snapshot\":\"idle\"}" > /dev/null
done
for i in $(seq 20); do wait_for "k$i" 'work: result='; done
sleep 0.5
after=$(pss_kib)
priv=0
for i in $(seq 20); do
	p=$(api "http://l/v1/vms/k$i/paging" | num pages_private)
	priv=$((priv + ${p:-0}))
done
idle_pages=$(api http://l/v1/snapshots/idle | num pages)

printf 'bench_snapshot: %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC'), load $(loadavg), $(kevd_build)"
printf 'snapshot: 1024 MiB VM, %s pages in its memory file (%s MiB); work=%s rounds after the restore, ram=%s\n' \
	"$snap_pages" "$(fmt "$((snap_pages * 4096))" 1048576 1)" "$rounds" "$ram"
printf '%-16s %12s %12s %12s %8s %10s %8s %9s %9s   %s\n' restore "first ins ms" "finish ms" "run ms" faults prefetched hits \
	premapped "ws ms" "(median of $runs)"
for m in lazy lazy-warm lazy-private eager lazy+ws lazy-warm+ws lazy-private+ws; do
	printf '%-16s %12s %12s %12s %8s %10s %8s %9s %9s\n' "$m" "$(fmt "$(med "$m" first_ns)" 1e6 3)" \
		"$(fmt "$(med "$m" total_ns)" 1e6 1)" "$(fmt "$(med "$m" run_ns)" 1e6 1)" "$(med "$m" faults)" \
		"$(med "$m" prefetched)" "$(med "$m" hits)" "$(med "$m" premapped)" "$(fmt "$(med "$m" prefetch_ns)" 1e6 1)"
done
printf '\nratios (this run):\n'
printf '  first instruction, lazy / eager:        %s   (target <= 0.02x, and <= 2 ms)\n' \
	"$(ratio "$(med lazy first_ns)" "$(med eager first_ns)")"
printf '  finish, lazy / lazy-warm:                %s\n' "$(ratio "$(med lazy total_ns)" "$(med lazy-warm total_ns)")"
printf '  finish, lazy / eager:                    %s\n' "$(ratio "$(med lazy total_ns)" "$(med eager total_ns)")"
printf '  finish, lazy-private / lazy:             %s\n' "$(ratio "$(med lazy-private total_ns)" "$(med lazy total_ns)")"
printf '  finish, lazy+ws / lazy-warm:             %s   (target <= 1.2x the plain mapping)\n' \
	"$(ratio "$(med lazy+ws total_ns)" "$(med lazy-warm total_ns)")"
printf '  finish, lazy+ws / lazy:                  %s   (target <= 0.5x)\n' "$(ratio "$(med lazy+ws total_ns)" "$(med lazy total_ns)")"
printf '  finish, lazy-warm+ws / lazy-warm:        %s\n' "$(ratio "$(med lazy-warm+ws total_ns)" "$(med lazy-warm total_ns)")"
printf '  finish, lazy-private+ws / lazy-private:  %s\n' \
	"$(ratio "$(med lazy-private+ws total_ns)" "$(med lazy-private total_ns)")"
printf '  faults, lazy+ws / lazy:                  %s\n' "$(ratio "$(med lazy+ws faults)" "$(med lazy faults)")"
printf '\n20 clones alive: kevd PSS +%s MiB; one snapshot %s MiB + the clones wrote %s MiB = %s MiB: %s (target <= 1.2x)\n' \
	"$(fmt "$((after - before))" 1024 1)" "$(fmt "$((idle_pages * 4096))" 1048576 1)" "$(fmt "$((priv * 4096))" 1048576 1)" \
	"$(fmt "$((idle_pages * 4096 + priv * 4096))" 1048576 1)" \
	"$(ratio "$((after - before))" "$(((idle_pages * 4096 + priv * 4096) / 1024))")"
