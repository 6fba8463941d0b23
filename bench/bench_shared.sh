#!/bin/bash
# Shared images at VM level, in one daemon: the test guest touching all of
# its 32 MiB, run to its end, with the image shared and the cache cold (the
# first VM of the image: a fresh daemon each time), shared and warm (a VM
# after one that touched everything), lazy-private and eager.  Reports the
# VM's own run time (start to end, from the API) and create to first guest
# instruction, the median of RUNS, and the ratios, all from this run.
#
# usage: bench/bench_shared.sh [-n RUNS] [--vcpus "1 4"]
set -eu
export LC_ALL=C
runs=5
vcpus_list="1 4"
while [ $# -gt 0 ]; do
	case $1 in
	-n) runs=${2:?}; shift 2 ;;
	--vcpus) vcpus_list=${2:?}; shift 2 ;;
	*) echo "usage: bench/bench_shared.sh [-n RUNS] [--vcpus LIST]" >&2; exit 2 ;;
	esac
done
top=$(cd "$(dirname "$0")/.." && pwd)
kevd="$top/kevd"
guest="$top/tests/guests/testguest.elf"
. "$top/bench/lib.sh"
bench_begin bench_shared kvm
daemon_dir "$tmp" "$guest" < /dev/null
api() { curl -sS --max-time 60 --unix-socket "$sock" "$@"; }
num() { grep -o "\"$1\": *[0-9]*" | head -n 1 | sed 's/.*: *//'; }

daemon_stop() { kill "$pid"; wait "$pid" || :; pid=; }

# one NAME PAGING VCPUS: runs one VM to its end; prints "run_ms first_run_ms"
one() {
	local v
	api -X POST -H 'Content-Type: application/json' \
		-d "{\"name\":\"$1\",\"kernel\":\"guest.elf\",\"paging\":\"$2\",\"vcpus\":$3,\"cmdline\":\"touch=all\"}" \
		http://l/v1/vms > /dev/null
	for _ in $(seq 600); do
		v=$(api "http://l/v1/vms/$1")
		echo "$v" | grep -q '"state":"exited"' && break
		sleep 0.05
	done
	echo "$v" | grep -q '"exit_status":1' || { echo "bench_shared: $1 failed: $v" >&2; exit 1; }
	api "http://l/v1/vms/$1/console" | grep -q '^result: ok$' || { echo "bench_shared: $1: guest checks failed" >&2; exit 1; }
	awk -v r="$(echo "$v" | num run_time_ns)" -v f="$(echo "$v" | num create_to_first_run_ns)" \
		'BEGIN { printf "%.2f %.2f\n", r / 1e6, f / 1e6 }'
	api -X DELETE "http://l/v1/vms/$1" > /dev/null
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

declare -A run first
for v in $vcpus_list; do
	for c in cold warm private eager; do : > "$tmp/$c-$v.run"; : > "$tmp/$c-$v.first"; done
	for r in $(seq "$runs"); do
		daemon_start "$kevd" "$tmp" || exit 1
		one "cold$r" lazy "$v" > "$tmp/x"           # the first VM of the image: cold
		cut -d' ' -f1 "$tmp/x" >> "$tmp/cold-$v.run"; cut -d' ' -f2 "$tmp/x" >> "$tmp/cold-$v.first"
		one "warm$r" lazy "$v" > "$tmp/x"           # the second: every page in the cache
		cut -d' ' -f1 "$tmp/x" >> "$tmp/warm-$v.run"; cut -d' ' -f2 "$tmp/x" >> "$tmp/warm-$v.first"
		one "priv$r" lazy-private "$v" > "$tmp/x"
		cut -d' ' -f1 "$tmp/x" >> "$tmp/private-$v.run"; cut -d' ' -f2 "$tmp/x" >> "$tmp/private-$v.first"
		one "eager$r" eager "$v" > "$tmp/x"
		cut -d' ' -f1 "$tmp/x" >> "$tmp/eager-$v.run"; cut -d' ' -f2 "$tmp/x" >> "$tmp/eager-$v.first"
		daemon_stop
	done
	for c in cold warm private eager; do
		run[$c-$v]=$(median < "$tmp/$c-$v.run")
		first[$c-$v]=$(median < "$tmp/$c-$v.first")
	done
done

echo "kevd shared-image benchmark ($(date -u '+%Y-%m-%d %H:%M UTC')): the test guest, touch=all (32 MiB), median of $runs;"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg); run = the VM's start to its end, first = create to first instruction (ms)"
printf '%-26s %6s %9s %9s %12s %12s\n' "paging" "vcpus" "run ms" "first ms" "run/eager" "run/private"
for v in $vcpus_list; do
	for c in cold warm private eager; do
		case $c in
		cold) label="lazy, shared, cold" ;; warm) label="lazy, shared, warm" ;;
		private) label="lazy-private" ;; eager) label="eager" ;;
		esac
		printf '%-26s %6s %9s %9s %12s %12s\n' "$label" "$v" "${run[$c-$v]}" "${first[$c-$v]}" \
			"$(awk -v a="${run[$c-$v]}" -v b="${run[eager-$v]}" 'BEGIN { printf "%.2fx", a / b }')" \
			"$(awk -v a="${run[$c-$v]}" -v b="${run[private-$v]}" 'BEGIN { printf "%.2fx", a / b }')"
	done
done
