#!/bin/bash
# The create rate of one `kevd serve` with boot slots ([limits]
# boot_slots_per_cpu, docs/reliability.md "Boot slots") against the same
# daemon without them (boot_slots_per_cpu = 0, the baseline), in one run:
# COUNT VMs created by CLIENTS clients, for two guests, an idle one (boots,
# then HLT: gives its slot back) and a spinning one (never idles: holds its
# slot for boot_slot_ms).  Every VM boots while the others are still being
# created; without slots the boots and the creates convoy on the process's
# mmap_lock.  Besides the create rate, the rate of first console bytes says
# what the boots pay for it.
#
# usage: bench/bench_bootslots.sh [-n RUNS] [--count M] [--clients C] [--slots "0 1 2"]
#                                 [--slot-ms MS]
#   -n RUNS        rounds of each layout, the median is shown (default 3)
#   --count M      VMs per round (default 100)
#   --clients C    create clients: client threads of bench_api (default 4)
#   --slots L      boot_slots_per_cpu values to compare (default "0 1 2"; must include 0)
#   --slot-ms MS   boot_slot_ms (default 30)
#
# Needs (Debian 12): bash, coreutils, curl, bench/bench_api (make bench/bench_api).
set -eu
export LC_ALL=C

runs=3
count=100
clients=4
slots_list="0 1 2"
slot_ms=30
usage() { sed -n '12,18p' "$0" | sed 's/^# \{0,1\}//'; }
posint() { case $2 in '' | *[!0-9]* | 0*) echo "bench_bootslots.sh: $1 needs a positive number" >&2; exit 2 ;; esac; }
while [ $# -gt 0 ]; do
	case $1 in
	-n | --runs) runs=${2:?}; shift 2 ;;
	--count) count=${2:?}; shift 2 ;;
	--clients) clients=${2:?}; shift 2 ;;
	--slots) slots_list=${2:?}; shift 2 ;;
	--slot-ms) slot_ms=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench_bootslots.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done
posint -n "$runs"; posint --count "$count"; posint --clients "$clients"; posint --slot-ms "$slot_ms"
for s in $slots_list; do case $s in '' | *[!0-9]*) echo "bench_bootslots.sh: --slots takes numbers" >&2; exit 2 ;; esac; done
case " $slots_list " in *" 0 "*) ;; *) echo "bench_bootslots.sh: --slots must include 0 (the baseline)" >&2; exit 2 ;; esac

top=$(cd "$(dirname "$0")/.." && pwd)
kevd="$top/kevd"
gen="$top/bench/bench_api"
. "$top/bench/lib.sh"
bench_begin bench_bootslots kvm curl bench_api

guests=("touch=none mode=idle" "touch=percent:10 mode=loop")
kv() { grep "^$2=" "$1" | head -n 1 | cut -d= -f2; }

# round SLOTS G R: COUNT VMs of guest G into a fresh daemon.
round() {
	local s=$1 g=$2 r=$3 dir out
	dir="$tmp/s$s.g$g.r$r"
	out="$dir.out"
	mkdir "$dir"
	daemon_dir "$dir" "$top/tests/guests/testguest.elf" <<EOF
[limits]
max_vms = $((count + 8))
max_memory_mib = 64
max_total_memory_mib = $(((count + 8) * 64))
boot_slots_per_cpu = $s
boot_slot_ms = $slot_ms
[snapshot]
spare_vms = 0
EOF
	daemon_start "$kevd" "$dir"
	"$gen" "$dir/kevd.sock" create --count "$count" --clients "$clients" --memory 64 --cmdline "${guests[$g]}" \
		> "$out" 2>&1 || :
	kill "$pid" 2>/dev/null || :
	while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	pid=''
	if [ "$(kv "$out" created_running)" != "$count" ] || [ "$(kv "$out" failures)" != 0 ]; then
		echo "bench_bootslots.sh: slots $s, guest $g, round $r: $(tr '\n' ' ' < "$out")" >&2
		exit 1
	fi
	res "s$s.g$g" create "$(rate "$count" "$(kv "$out" create_wall_ns)")"
	res "s$s.g$g" first "$(rate "$count" "$(kv "$out" first_byte_wall_ns)")"
	res "s$s.g$g" p50 "$(kv "$out" create_p50_ns)"
	res "s$s.g$g" fb50 "$(kv "$out" first_byte_p50_ns)"
	rm -rf "$dir"
}

load0=$(loadavg)
# Interleaved: each round of every layout before the next round.
for ((r = 1; r <= runs; r++)); do
	for g in 0 1; do
		for s in $slots_list; do round "$s" "$g" "$r"; done
	done
done

echo "kevd create rate with boot slots ($(date -u '+%Y-%m-%d %H:%M UTC'))"
echo "machine: $(nproc) CPUs, Linux $(uname -r), kevd $(git -C "$top" describe --always --dirty 2>/dev/null || echo '?')"
echo "         kevd $(kevd_build)"
echo "load:    load average (1/5/15 min) $load0 at start, $(loadavg) at end"
echo "method:  $count VMs of tests/guests/testguest.elf (64 MiB, 1 vCPU) per round, created by bench/bench_api"
echo "         ($clients client threads, libcurl) into a fresh \`kevd serve\` with [limits] boot_slots_per_cpu = S"
echo "         (S x $(nproc) slots; 0: none, the baseline) and boot_slot_ms = $slot_ms; median of $runs rounds,"
echo "         layouts interleaved"
for g in 0 1; do
	echo
	echo "== guest \"${guests[$g]}\""
	printf '%-9s %5s %10s %7s %11s %13s %13s %8s %10s\n' slots/cpu slots create/s spread 'create p50' '->1st byte/s' \
		'1st byte p50' 'vs S=0' '1st vs S=0'
	base=$(med "s0.g$g" create)
	fbase=$(med "s0.g$g" first)
	for s in $slots_list; do
		printf '%-9s %5s %10s %7s %9sms %13s %11sms %8s %10s\n' "$s" "$((s * $(nproc)))" \
			"$(fmt "$(med "s$s.g$g" create)" 1 1)" "$(spread "s$s.g$g" create)" \
			"$(fmt "$(med "s$s.g$g" p50)" 1e6 1)" "$(fmt "$(med "s$s.g$g" first)" 1 1)" \
			"$(fmt "$(med "s$s.g$g" fb50)" 1e6 0)" "$(ratio "$(med "s$s.g$g" create)" "$base")" \
			"$(ratio "$(med "s$s.g$g" first)" "$fbase")"
	done
done
echo "   create/s      VMs running (201 answered) / wall from the first create to the last 201"
echo "   ->1st byte/s  VMs that printed / wall from the first create to the last first console byte"
echo "   create p50    request latency of one create (201); 1st byte p50: create request to its first byte"
echo "   vs S=0        against the same daemon without boot slots, in the same run"
echo "   a VM in line is created and running; its first instruction waits for a slot, so its first byte"
echo "   comes later while the creates come sooner: the boots share the same two cores either way"
