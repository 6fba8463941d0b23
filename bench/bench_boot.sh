#!/bin/bash
# A kernel image's recorded boot: the test guest touching 64 MiB (its
# 32 MiB data image read and rewritten, touch=all write=1, and 32 MiB of
# RAM written once, work=1 ram=32), 1 GiB VMs, each run to its end in one
# daemon.  Rows (median of RUNS, the VM's run time and create to first
# instruction):
#   warm           the image cache filled by an earlier boot, no working
#                  set: the guest maps the cache's pages through the
#                  kernel's page faults, 16 at a time, as it would a plain
#                  MAP_PRIVATE mapping of the file in the page cache
#   warm+ws        the same with the recorded boot's working set (its
#                  written pages premapped)
#   cold           a fresh daemon, no working set: every page from the file
#   cold+ws        a fresh daemon with the recorded list: read ahead of the
#                  guest into the cache, written pages premapped
# The recording is a first boot (record_ms long enough for all of it).
#
# usage: bench/bench_boot.sh [-n RUNS]   (default 5)
set -eu
export LC_ALL=C
runs=5
while [ $# -gt 0 ]; do
	case $1 in
	-n) runs=${2:?}; shift 2 ;;
	*) echo "usage: bench/bench_boot.sh [-n RUNS]" >&2; exit 2 ;;
	esac
done
top=$(cd "$(dirname "$0")/.." && pwd)
kevd="$top/kevd"
. "$top/bench/lib.sh"
bench_begin bench_boot kvm curl
daemon_dir "$tmp" "$top/tests/guests/testguest.elf" <<EOF
[limits]
max_memory_mib = 1024
[pager]
cache_keep_s = 600
EOF
cp "$tmp/kevd.conf" "$tmp/kevd-base.conf"
api() { curl -sS --max-time 120 --unix-socket "$sock" "$@"; }
num() { grep -o "\"$1\": *[0-9]*" | head -n 1 | sed 's/.*: *//'; }
cmdline="touch=all write=1 work=1 ram=32"

# fresh RECORD_MS: a new daemon (an empty cache) with that record_ms
fresh() {
	[ -z "$pid" ] || { kill "$pid"; wait "$pid" 2> /dev/null || :; pid=; }
	{ cat "$tmp/kevd-base.conf"; printf '[snapshot]\nrecord_ms = %s\n' "$1"; } > "$tmp/kevd.conf"
	daemon_start "$kevd" "$tmp" || exit 1
}
# one NAME [ROW]: boots a VM to its end; records ROW's times when given
one() {
	local v=b$RANDOM j
	j=$(api -X POST -H 'Content-Type: application/json' \
		-d "{\"name\":\"$v\",\"kernel\":\"guest.elf\",\"memory_mib\":1024,\"cmdline\":\"$cmdline\"}" http://l/v1/vms)
	case $j in *'"id":'*) ;; *) echo "bench_boot: create: $j" >&2; exit 1 ;; esac
	for _ in $(seq 2400); do
		j=$(api "http://l/v1/vms/$v")
		case $j in *'"state":"exited"'*) break ;; esac
		sleep 0.02
	done
	case $j in *'"exit_status":1'*) ;; *) echo "bench_boot: $v did not end well: $j" >&2; exit 1 ;; esac
	if [ -n "${1:-}" ]; then
		res "$1" run_ns "$(echo "$j" | num run_time_ns)"
		res "$1" first_ns "$(echo "$j" | num create_to_first_run_ns)"
		j=$(api "http://l/v1/vms/$v/paging")
		res "$1" faults "$(echo "$j" | num faults)"
		res "$1" premapped "$(echo "$j" | num pages_premapped)"
		res "$1" prefetched "$(echo "$j" | num pages_prefetched)"
	fi
	api -X DELETE "http://l/v1/vms/$v" > /dev/null
}

# The recording: a first boot with working sets on.
fresh 60000
one
sleep 2.5
ls "$tmp/workingsets" | grep -q . || { echo "bench_boot: no working set was recorded" >&2; exit 1; }
for _ in $(seq "$runs"); do
	fresh 0          # no working sets at all
	one cold
	one warm
	fresh 60000      # the recorded list is used
	one cold+ws
	one warm+ws
done

echo "bench_boot: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(loadavg), $(kevd_build)"
echo "test guest, 1 GiB, cmdline \"$cmdline\": 64 MiB touched (32 MiB read and rewritten, 32 MiB written)"
printf '%-10s %10s %12s %8s %10s %10s   %s\n' boot "run ms" "first ins ms" faults prefetched premapped "(median of $runs)"
for m in warm warm+ws cold cold+ws; do
	printf '%-10s %10s %12s %8s %10s %10s\n' "$m" "$(fmt "$(med "$m" run_ns)" 1e6 1)" "$(fmt "$(med "$m" first_ns)" 1e6 2)" \
		"$(med "$m" faults)" "$(med "$m" prefetched)" "$(med "$m" premapped)"
done
printf 'ratios: warm+ws / warm %s (a recorded boot against the cache mapped as a plain file mapping), cold+ws / cold %s\n' \
	"$(ratio "$(med warm+ws run_ns)" "$(med warm run_ns)")" "$(ratio "$(med cold+ws run_ns)" "$(med cold run_ns)")"
