#!/bin/bash
# Many VMs in one daemon: N idle VMs of the test guest (touch=none, then
# mode=idle: halted with interrupts on, no CPU), 64 MiB each, created by 4
# clients; then /v1/health latency with all of them alive; then all deleted
# by 4 clients.  Reports the create and delete rates, health p50/p99, and
# the host memory per VM beyond the guest's own pages (the daemon's PSS and
# the drop of MemAvailable, over N).
#
# usage: bench/bench_many.sh [-n VMS]   (default 500)
set -eu
export LC_ALL=C
n=500
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=${2:?}; shift 2 ;;
	*) echo "usage: bench/bench_many.sh [-n VMS]" >&2; exit 2 ;;
	esac
done
top=$(cd "$(dirname "$0")/.." && pwd)
kevd="$top/kevd"
. "$top/bench/lib.sh"
bench_begin bench_many kvm curl
daemon_dir "$tmp" "$top/tests/guests/testguest.elf" <<EOF
[limits]
max_vms = $((n + 10))
max_memory_mib = 64
max_total_memory_mib = $((n * 64 + 640))
EOF
now() { date +%s.%N; }
avail_kib() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }
ulimit -n 65536 2>/dev/null || :
daemon_start "$kevd" "$tmp"
sync
before=$(avail_kib)

# client K of 4 creates (or deletes) the VMs i = K, K+4, ..., one request
# after the other on one kept-alive connection: one curl process, given
# its requests in a config file (a process per request would measure the
# fork and exec of 500 curls, which cost more here than kevd's work).
client() {
	local k=$1 what=$2 i
	for ((i = k; i < n; i += 4)); do
		[ "$i" = "$k" ] || echo next
		echo "unix-socket = \"$sock\""
		echo 'silent'
		echo 'output = "/dev/null"'
		echo 'write-out = "%{http_code}\n"'
		if [ "$what" = create ]; then
			echo 'request = "POST"'
			echo 'header = "Content-Type: application/json"'
			echo "data = \"{\\\"name\\\":\\\"m$i\\\",\\\"kernel\\\":\\\"guest.elf\\\",\\\"memory_mib\\\":64,\\\"cmdline\\\":\\\"touch=none bss=0 mode=idle\\\"}\""
			echo 'url = "http://l/v1/vms"'
		else
			echo 'request = "DELETE"'
			echo "url = \"http://l/v1/vms/m$i\""
		fi
	done > "$tmp/$what.$k.cfg"
	curl -K "$tmp/$what.$k.cfg" > "$tmp/$what.$k"
}

# Waits for the clients only: a bare wait would wait for kevd too.
run_clients() {
	local k pids=
	for k in 0 1 2 3; do
		client "$k" "$1" &
		pids="$pids $!"
	done
	for k in $pids; do wait "$k"; done
}

t0=$(now)
run_clients create
t1=$(now)
ok=$(cat "$tmp"/create.* | grep -c '^201$' || :)
# Every guest idle (its last line printed) before measuring.
for ((i = 0; i < n; i++)); do
	for _ in $(seq 200); do
		curl -s --unix-socket "$sock" "http://l/v1/vms/m$i/console" | grep -q '^idle: ' && break
		sleep 0.05
	done
done
sleep 1
pss=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")
used=$((before - $(avail_kib)))
for _ in $(seq 200); do
	curl -s -o /dev/null -w '%{time_total}\n' --unix-socket "$sock" http://l/v1/health
	sleep 0.01
done | sort -n > "$tmp/health"
running=$(curl -s --unix-socket "$sock" http://l/metrics | awk '/^kevd_vms\{state="running"\}/ { print $2 }')
t2=$(now)
run_clients delete
t3=$(now)
dok=$(cat "$tmp"/delete.* | grep -c '^204$' || :)
echo "kevd many-VM benchmark ($(date -u '+%Y-%m-%d %H:%M UTC')): $n VMs of the test guest, 64 MiB each,"
echo "touch=none mode=idle; 4 clients; load average $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v n="$n" -v ok="$ok" -v dok="$dok" -v c="$(echo "$t1 - $t0" | bc)" -v d="$(echo "$t3 - $t2" | bc)" \
	-v pss="$pss" -v used="$used" -v run="$running" \
	-v p50="$(sed -n 100p "$tmp/health")" -v p99="$(sed -n 198p "$tmp/health")" 'BEGIN {
	printf "creates: %d of %d in %.2f s = %.0f/s\n", ok, n, c, ok / c
	printf "running at once: %s\n", run
	printf "health with all alive: p50 %.2f ms, p99 %.2f ms\n", p50 * 1e3, p99 * 1e3
	printf "host memory: kevd PSS %.1f MiB = %.0f KiB per VM; MemAvailable drop %.1f MiB = %.0f KiB per VM\n",
		pss / 1024, pss / n, used / 1024, used / n
	printf "deletes: %d of %d in %.2f s = %.0f/s\n", dok, n, d, dok / d
}'
