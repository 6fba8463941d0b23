#!/bin/bash
# How much one address space holds the create rate back: the same VMs of the
# test guest, created by the same number of clients, into one `kevd serve`
# and then spread over K daemons (K processes, K address spaces), in one
# run.  Every VM boots (emulated ring-0 set-up, then idle) while the others
# are still being created.  Within one process every create and delete
# changes the one address space (mmap, munmap, KVM_CREATE_VM's
# mmu_notifier_register, UFFDIO_REGISTER: mmap_lock as a writer) while the
# booting vCPUs fault guest pages in through it (KVM's get_user_pages:
# mmap_lock as readers); K daemons split that lock K ways and change nothing
# else, so the ratio against one daemon is what a process per VM would buy
# here (docs/reliability.md, "What holds the creates back").
#
# usage: bench/bench_spread.sh [-n RUNS] [--count M] [--clients C] [--daemons "1 4 8 M"]
#                              [--cmdline S]
#   -n RUNS        rounds of each layout, the median is shown (default 3)
#   --count M      VMs per round, all daemons together (default 100)
#   --clients C    create clients: client threads of one bench_api (default 4)
#   --daemons L    the layouts: numbers of daemons (default "1 4 8 M", M: a daemon per VM)
#   --cmdline S    the test guest's command line (default "touch=none bss=0 mode=idle")
#
# Needs (Debian 12): bash, coreutils, curl, bench/bench_api (make bench/bench_api).
# Exits 77 if /dev/kvm cannot be opened.
set -eu
export LC_ALL=C

runs=3
count=100
clients=4
daemons=
cmdline="touch=none bss=0 mode=idle"
usage() { sed -n '14,20p' "$0" | sed 's/^# \{0,1\}//'; }
posint() { case $2 in '' | *[!0-9]* | 0*) echo "bench_spread.sh: $1 needs a positive number" >&2; exit 2 ;; esac; }
while [ $# -gt 0 ]; do
	case $1 in
	-n | --runs) runs=${2:?}; shift 2 ;;
	--count) count=${2:?}; shift 2 ;;
	--clients) clients=${2:?}; shift 2 ;;
	--daemons) daemons=${2:?}; shift 2 ;;
	--cmdline) cmdline=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench_spread.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done
posint -n "$runs"; posint --count "$count"; posint --clients "$clients"
[ -n "$daemons" ] || daemons="1 4 8 $count"
for k in $daemons; do posint --daemons "$k"; done
case " $daemons " in *" 1 "*) ;; *) echo "bench_spread.sh: --daemons must include 1 (the baseline)" >&2; exit 2 ;; esac

top=$(cd "$(dirname "$0")/.." && pwd)
kevd="$top/kevd"
gen="$top/bench/bench_api"
. "$top/bench/lib.sh"
bench_begin bench_spread kvm curl bench_api
# bench_begin's trap stops one daemon; here there are several.
pids=''
trap 'for p in $pids; do kill "$p" 2>/dev/null || :; done; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT

kv() { grep "^$2=" "$1" | head -n 1 | cut -d= -f2; }

# round K R: COUNT VMs into K fresh daemons at once, VM i into daemon
# i mod K, by one bench_api process whose CLIENTS threads go round the
# daemons (the client side is the same in every layout).
round() {
	local k=$1 r=$2 i n dir socks='' out
	out="$tmp/k$k.r$r.out"
	pids=''
	for ((i = 0; i < k; i++)); do
		dir="$tmp/k$k.r$r.d$i"
		mkdir "$dir"
		n=$(((count + k - 1) / k))
		# No spare VMs: they serve restores only, and each of a hundred
		# daemons would make its own.
		daemon_dir "$dir" "$top/tests/guests/testguest.elf" <<EOF
[limits]
max_vms = $((n + 8))
max_memory_mib = 64
max_total_memory_mib = $(((n + 8) * 64))
[snapshot]
spare_vms = 0
EOF
		daemon_start "$kevd" "$dir"
		pids="$pids $pid"
		socks="$socks${socks:+,}$dir/kevd.sock"
	done
	pid=''
	"$gen" "$socks" create --count "$count" --clients "$clients" --memory 64 --cmdline "$cmdline" > "$out" 2>&1 || :
	for p in $pids; do kill "$p" 2>/dev/null || :; done
	for p in $pids; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
	pids=''
	if [ "$(kv "$out" created_running)" != "$count" ] || [ "$(kv "$out" failures)" != 0 ]; then
		echo "bench_spread.sh: $k daemons, round $r: $(tr '\n' ' ' < "$out")" >&2
		exit 1
	fi
	res "k$k" create "$(rate "$count" "$(kv "$out" create_wall_ns)")"
	res "k$k" first "$(rate "$count" "$(kv "$out" first_byte_wall_ns)")"
	res "k$k" p50 "$(kv "$out" create_p50_ns)"
	rm -rf "$tmp/k$k.r$r".d*
}

load0=$(loadavg)
# Interleaved: each round of every layout before the next round, so that a
# change in the machine's load meets all layouts alike.
for ((r = 1; r <= runs; r++)); do
	for k in $daemons; do round "$k" "$r"; done
done

echo "kevd create rate against address spaces ($(date -u '+%Y-%m-%d %H:%M UTC'))"
echo "machine: $(nproc) CPUs, Linux $(uname -r), kevd $(git -C "$top" describe --always --dirty 2>/dev/null || echo '?')"
echo "         kevd $(kevd_build)"
echo "load:    load average (1/5/15 min) $load0 at start, $(loadavg) at end"
echo "method:  $count VMs of tests/guests/testguest.elf (64 MiB, 1 vCPU, \"$cmdline\") per round, created by"
echo "         one bench/bench_api process, $clients client threads (libcurl), into K fresh \`kevd serve\`"
echo "         processes at once, VM i into daemon i mod K; median of $runs rounds, layouts interleaved"
echo
printf '%-8s %-9s %10s %7s %13s %11s %8s\n' daemons VMs/each create/s spread '->1st byte/s' 'create p50' 'vs K=1'
base=$(med k1 create)
for k in $daemons; do
	printf '%-8s %-9s %10s %7s %13s %9sms %8s\n' "$k" "$(((count + k - 1) / k))" "$(fmt "$(med "k$k" create)" 1 1)" \
		"$(spread "k$k" create)" "$(fmt "$(med "k$k" first)" 1 1)" "$(fmt "$(med "k$k" p50)" 1e6 1)" \
		"$(ratio "$(med "k$k" create)" "$base")"
done
echo "   create/s      VMs running (201 answered) / wall from the first create to the last 201"
echo "   ->1st byte/s  VMs that printed / wall from the first create to the last first console byte"
echo "   create p50    request latency of one create (201)"
echo "   vs K=1        create/s against one daemon holding them all, in the same run"
echo "   with K = the VM count every VM has a daemon, an address space, of its own: what a process per VM would"
echo "   give, less the cost of spawning one.  A client reuses its connection only with K = 1; with more daemons"
echo "   it connects anew for most requests (a Unix-socket connect: some tens of microseconds)"
echo "   the host's CPUs are shared by all daemons' booting guests alike: a layout differs only in how many"
echo "   address spaces (and mmap_locks) the same VMs are spread over"
