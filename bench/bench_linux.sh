#!/bin/bash
# Linux boot benchmark of kevd with Debian's cloud kernel (bench/fetch-debian-kernel.sh)
# and the busybox initramfs of tests/linux/mkinitramfs.sh, 512 MiB, 1 vCPU:
#  1. VM creation to the first guest instruction, lazy vs eager (kevd run --json);
#  2. through a real `kevd serve`: time from the create request to the
#     "Linux version" banner on the console, the share of the image loaded at
#     the banner and at the end of a bounded run (and where the run ended),
#     lazy vs eager;
#  3. QEMU microvm (PVH) booting the same kernel and initramfs in the same run:
#     time from its start to the banner on its serial output.
# Plain-text tables on stdout; every ratio is between values of this run.
# The first daemon run of each mode also samples GET /v1/vms/{id}/paging every
# --sample ms; the samples, the banner times and the pager's load-latency
# histogram go to $KEVD_BENCH_OUT (default bench/out/) as linux_pages.tsv,
# linux_events.tsv and linux_hist.tsv, which bench/plot.sh draws.
#
# usage: bench/bench_linux.sh [-n RUNS] [--end SECONDS] [--banner-limit SECONDS] [--sample MS] [--no-qemu] [--quick]
#   -n RUNS               runs per configuration, the median is shown (default 3)
#   --end SECONDS         the first daemon run of lazy and of eager goes on until this many
#                         seconds after its create (or until the VM ends) (default 90)
#   --banner-limit SECONDS  a run without a banner by then is given up (default 60)
#   --sample MS           paging statistics sampled this often in the first runs (default 500)
#   --no-qemu             skip QEMU
#   --quick               -n 1 --end 30
#
# Needs (Debian 12): bash, coreutils, mawk/gawk, curl, apt + dpkg + lz4 (the kernel),
# busybox-static + cpio + gzip (the initramfs), qemu-system-x86 (optional).
# Exits 77 if /dev/kvm cannot be opened or the kernel cannot be fetched.
set -eu
export LC_ALL=C

runs=3
end=90
banner_limit=60
sample=500
do_qemu=1

usage() { sed -n '17,24p' "$0" | sed 's/^# \{0,1\}//'; }
posint() { case $2 in '' | *[!0-9]* | 0*) echo "bench_linux.sh: $1 needs a positive number" >&2; exit 2 ;; esac; }
while [ $# -gt 0 ]; do
	case $1 in
	-n | --runs) runs=${2:?}; shift 2 ;;
	--end) end=${2:?}; shift 2 ;;
	--banner-limit) banner_limit=${2:?}; shift 2 ;;
	--sample) sample=${2:?}; shift 2 ;;
	--no-qemu) do_qemu=0; shift ;;
	--quick) runs=1 end=30; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench_linux.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done
posint -n "$runs"; posint --end "$end"; posint --banner-limit "$banner_limit"; posint --sample "$sample"
# The long runs poll the VM's state this often (seconds): every --sample ms, at most 1 s.
poll=$(awk -v s="$sample" 'BEGIN { printf "%.3f\n", (s < 1000 ? s : 1000) / 1000 }')

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "bench_linux.sh: /dev/kvm cannot be opened: skipped"
	exit 77
fi

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
kevd=$top/kevd
out=${KEVD_BENCH_OUT:-$top/bench/out}
if [ ! -x "$kevd" ]; then
	[ -f Makefile ] || { echo "bench_linux.sh: $top is not configured (./configure)" >&2; exit 1; }
	echo "bench_linux.sh: building kevd" >&2
	make -j2 kevd >&2
fi
command -v curl >/dev/null || { echo "bench_linux.sh: curl missing (Debian package: curl)" >&2; exit 1; }
qemu=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu" ] || do_qemu=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-bench-linux.XXXXXX")
dpid='' qpid=''
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
	trap - EXIT INT TERM
	[ -z "$qpid" ] || { kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; }
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

if ! vmlinux=$("$top/bench/fetch-debian-kernel.sh" 2>"$tmp/fetch.err"); then
	echo "bench_linux.sh: skipped: $(tail -n 1 "$tmp/fetch.err" | sed 's/^fetch-debian-kernel: //')"
	exit 77
fi
mkdir "$tmp/images"
sh "$top/tests/linux/mkinitramfs.sh" "$tmp/images/initrd.gz" 2>"$tmp/mkinit.err" || {
	echo "bench_linux.sh: skipped: $(tail -n 1 "$tmp/mkinit.err")"
	exit 77
}
ln "$vmlinux" "$tmp/images/vmlinux" 2>/dev/null || cp "$vmlinux" "$tmp/images/vmlinux"
opts="console=ttyS0 earlyprintk=serial,ttyS0,115200 noxsave clearcpuid=smap,cx16"

now_us() { echo "${EPOCHREALTIME/./}"; }
# jnum FILE KEY: the first number for "KEY": in kevd run's JSON.
jnum() { sed -n '/^{$/,$p' "$1" | sed -n "s/^ *\"$2\": *\(-\{0,1\}[0-9][0-9]*\),\{0,1\}\$/\1/p" | head -n 1; }
# cnum FILE KEY / cstr FILE KEY: a number / string value in compact JSON.
cnum() { grep -o "\"$2\":[0-9]*" "$1" | head -n 1 | cut -d : -f 2 | grep . || echo -; }
cstr() { grep -o "\"$2\":\"[^\"]*\"" "$1" | head -n 1 | sed 's/^[^:]*:"//; s/"$//'; }

. "$top/bench/lib.sh"
kevd_built=$(kevd_build)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(loadavg)

# --- 1. create -> first guest instruction (kevd run) ---------------------------------

for r in $(seq 1 "$runs"); do
	for mode in lazy eager; do
		args=
		[ $mode = eager ] && args=--eager
		# shellcheck disable=SC2086
		"$kevd" run --kernel "$tmp/images/vmlinux" --initrd "$tmp/images/initrd.gz" --memory 512 --vcpus 1 \
			--cmdline "$opts" --timeout 1 --json $args </dev/null >"$tmp/run.out" 2>"$tmp/run.err" || true
		v=$(jnum "$tmp/run.out" create_to_first_run_ns)
		[ -n "$v" ] || { echo "bench_linux.sh: kevd run $mode: no create_to_first_run_ns:" >&2; tail -n 3 "$tmp/run.err" >&2; v=-; }
		res run-$mode frun "$v"
		v=$(jnum "$tmp/run.out" eager_load_ns); res run-$mode eagerload "${v:--}"
		printf '.' >&2
	done
done

# --- 2. the daemon: banner, image fraction, end of the bounded run ------------------------

sock=$tmp/kevd.sock
cat >"$tmp/kevd.conf" <<EOF
[api]
socket = $sock
[paths]
image_dir = $tmp/images
state_dir = $tmp
runtime_dir = $tmp
[limits]
max_vms = 4
max_vcpus = 1
max_memory_mib = 512
max_total_memory_mib = 2048
[log]
level = warn
EOF
"$kevd" serve --config "$tmp/kevd.conf" </dev/null >"$tmp/kevd.log" 2>&1 &
dpid=$!
api() { curl -sS --unix-socket "$sock" --max-time 30 "$@"; }
for _ in $(seq 1 100); do
	api -o /dev/null http://localhost/v1/health 2>/dev/null && break
	kill -0 "$dpid" 2>/dev/null || { cat "$tmp/kevd.log" >&2; echo "bench_linux.sh: kevd serve exited" >&2; dpid=''; exit 1; }
	sleep 0.1
done

# sample MODE ID T0: in a long run, the VM's paging statistics as one line of
# $tmp/samples ("MODE T_MS PAGES_LOADED IMAGE_PAGES FAULTS BYTES_READ", T_MS
# since the create request) once --sample ms have passed since the last one.
sample() {
	local t
	t=$(now_us)
	[ $((t - last_sample)) -ge $((sample * 1000)) ] || return 0
	last_sample=$t
	api -o "$tmp/sample.pg" "http://localhost/v1/vms/$2/paging" || return 0
	echo "$1 $(((t - $3) / 1000)) $(cnum "$tmp/sample.pg" pages_loaded) $(cnum "$tmp/sample.pg" image_pages)" \
		"$(cnum "$tmp/sample.pg" faults) $(cnum "$tmp/sample.pg" bytes_read)" >>"$tmp/samples"
}
last_sample=0
: >"$tmp/samples"
: >"$tmp/events"

# banner_run MODE RUN LONG: one VM through the API.
banner_run() {
	local mode=$1 r=$2 long=$3 t0 t1 id off=0 tb=- next st f=$tmp/d
	rm -f "$f".*
	last_sample=0
	: >"$f.console"
	t0=$(now_us)
	api -o "$f.vm" -X POST -H 'Content-Type: application/json' \
		-d "{\"kernel\":\"vmlinux\",\"initrd\":\"initrd.gz\",\"memory_mib\":512,\"vcpus\":1,\"cmdline\":\"$opts\",\"paging\":\"$mode\"}" \
		http://localhost/v1/vms || true
	id=$(cstr "$f.vm" id)
	[ -n "$id" ] || { echo "bench_linux.sh: create ($mode) failed: $(cat "$f.vm")" >&2; return 0; }
	# Follow the console every 50 ms until the banner appears.
	while :; do
		[ "$long" = 0 ] || sample "$mode" "$id" "$t0"
		api -D "$f.h" -o "$f.chunk" "http://localhost/v1/vms/$id/console?offset=$off" || true
		cat "$f.chunk" >>"$f.console"
		next=$(tr -d '\r' <"$f.h" | sed -n 's/^X-Console-Next-Offset: *//p')
		[ -z "$next" ] || off=$next
		if grep -q 'Linux version' "$f.console"; then
			t1=$(now_us)
			tb=$((t1 - t0))
			api -o "$f.pg" "http://localhost/v1/vms/$id/paging" || true
			# create_to_first_run_ns may still be null in the 201 (eager: the
			# vCPU had not entered the guest yet); by now it is set.
			api -o "$f.st" "http://localhost/v1/vms/$id" || true
			res api-"$mode" frun "$(cnum "$f.st" create_to_first_run_ns)"
			[ "$long" = 0 ] || echo "$mode banner $((tb / 1000))" >>"$tmp/events"
			break
		fi
		t1=$(now_us)
		if [ $((t1 - t0)) -gt $((banner_limit * 1000000)) ]; then
			echo "bench_linux.sh: $mode run $r: no banner within ${banner_limit}s" >&2
			break
		fi
		api -o "$f.st" "http://localhost/v1/vms/$id" || true
		st=$(cstr "$f.st" state)
		if [ "$st" != running ]; then
			echo "bench_linux.sh: $mode run $r: VM $st before the banner: $(cstr "$f.st" reason)" >&2
			break
		fi
		sleep 0.05
	done
	res api-"$mode" banner "$tb"
	if [ -s "$f.pg" ]; then
		res api-"$mode" pl "$(cnum "$f.pg" pages_loaded)"
		res api-"$mode" ip "$(cnum "$f.pg" image_pages)"
		res api-"$mode" br "$(cnum "$f.pg" bytes_read)"
		res api-"$mode" faults "$(cnum "$f.pg" faults)"
	fi
	if [ "$long" = 1 ]; then
		while :; do
			api -o "$f.st" "http://localhost/v1/vms/$id" || true
			st=$(cstr "$f.st" state)
			[ "$st" = running ] || break
			t1=$(now_us)
			[ $((t1 - t0)) -lt $((end * 1000000)) ] || break
			sample "$mode" "$id" "$t0"
			sleep "$poll"
		done
		t1=$(now_us)
		api -o "$f.pg2" "http://localhost/v1/vms/$id/paging" || true
		last_sample=0
		sample "$mode" "$id" "$t0"
		echo "$mode end $(((t1 - t0) / 1000)) $st" >>"$tmp/events"
		grep -o '{"le_us":[0-9a-z]*,"count":[0-9]*}' "$f.pg2" |
			sed "s/^{\"le_us\":\([0-9a-z]*\),\"count\":\([0-9]*\)}\$/linux-boot-$mode \1 \2/; s/ null / inf /" >>"$tmp/hist" || true
		api -o "$f.console" "http://localhost/v1/vms/$id/console" || true
		{
			echo "end_t_us $((t1 - t0))"
			echo "end_state $st"
			echo "end_reason $(cstr "$f.st" reason | tr ' ' '_')"
			echo "end_pl $(cnum "$f.pg2" pages_loaded)"
			echo "end_ip $(cnum "$f.pg2" image_pages)"
			echo "end_br $(cnum "$f.pg2" bytes_read)"
			echo "end_faults $(cnum "$f.pg2" faults)"
			echo "end_run $(cnum "$f.st" run_time_ns)"
		} >"$tmp/end-$mode"
		tr -d '\r' <"$f.console" | grep '^\[' | tail -n 1 | cut -c 1-100 >"$tmp/end-$mode.line" || true
	fi
	api -o /dev/null -X DELETE "http://localhost/v1/vms/$id" || true
}

# --- 3. QEMU ---------------------------------------------------------------------------

# shellcheck disable=SC2054 # commas belong to the -M value
qemu_args=(-accel kvm -M microvm -nodefaults -no-user-config -display none -serial stdio -m 512
	-kernel "$tmp/images/vmlinux" -initrd "$tmp/images/initrd.gz" -append "$opts")
qemu_run() {
	local r=$1 t0 t1 tb=-
	t0=$(now_us)
	"$qemu" "${qemu_args[@]}" </dev/null >"$tmp/q.out" 2>"$tmp/q.err" &
	qpid=$!
	while :; do
		if grep -q 'Linux version' "$tmp/q.out"; then
			t1=$(now_us)
			tb=$((t1 - t0))
			break
		fi
		kill -0 "$qpid" 2>/dev/null || { echo "bench_linux.sh: QEMU run $r exited before the banner: $(head -n 2 "$tmp/q.err")" >&2; break; }
		t1=$(now_us)
		[ $((t1 - t0)) -lt $((banner_limit * 1000000)) ] || { echo "bench_linux.sh: QEMU run $r: no banner within ${banner_limit}s" >&2; break; }
		sleep 0.05
	done
	kill "$qpid" 2>/dev/null || true
	wait "$qpid" 2>/dev/null || true
	qpid=''
	res qemu banner "$tb"
}

for r in $(seq 1 "$runs"); do
	long=0
	[ "$r" = 1 ] && long=1
	banner_run lazy "$r" $long; printf '.' >&2
	banner_run eager "$r" $long; printf '.' >&2
	if [ "$do_qemu" = 1 ]; then qemu_run "$r"; printf '.' >&2; fi
done
echo >&2
load_end=$(loadavg)

# --- report -----------------------------------------------------------------------------------

describe=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
echo "kevd Linux boot benchmark ($started)"
echo "machine: $(nproc) CPUs, Linux $(uname -r), kevd $describe; nested KVM: guest ring 0 is emulated (MACHINE.md)"
echo "         kevd $kevd_built"
[ "$(kevd_build)" = "$kevd_built" ] || echo "WARNING: ./kevd was rebuilt during the run: now $(kevd_build)"
echo "load:    load average (1/5/15 min) $load_start at start, $load_end at end"
[ "$do_qemu" = 1 ] && echo "QEMU:    $("$qemu" --version | head -n 1)"
echo "kernel:  $(basename "$vmlinux") ($(($(wc -c <"$vmlinux") / 1048576)) MiB), initramfs: tests/linux/mkinitramfs.sh" \
	"($(($(wc -c <"$tmp/images/initrd.gz") / 1024)) KiB)"
echo "         512 MiB, 1 vCPU, cmdline \"$opts\""
echo "method:  median of $runs runs per configuration, configurations interleaved, all in this run"
echo

echo "== VM creation -> first guest instruction (kevd run --json --timeout 1: vm.create_to_first_run_ns)"
printf '%-12s %12s %7s %14s %6s\n' config "1st run ms" spread "eager load ms" runs
for m in lazy eager; do
	el=n/a
	[ "$m" = lazy ] || el=$(fmt "$(med "run-$m" eagerload)" 1e6 2)
	printf '%-12s %12s %7s %14s %6s\n' "kevd $m" "$(fmt "$(med run-$m frun)" 1e6 2)" "$(spread run-$m frun)" \
		"$el" "$(cnt run-$m frun)"
done
echo "   ratio lazy / eager: $(ratio "$(med run-lazy frun)" "$(med run-eager frun)")"
echo "   (the same through the API, POST /v1/vms: lazy $(fmt "$(med api-lazy frun)" 1e6 2) ms," \
	"eager $(fmt "$(med api-eager frun)" 1e6 2) ms)"
echo

echo "== Time to the banner (\"Linux version\" on the serial console)"
echo "   kevd: \`kevd serve\` already running; from the POST /v1/vms request to the console poll (every 50 ms,"
echo "         GET /v1/vms/{id}/console) that shows the banner; then at once GET /v1/vms/{id}/paging"
if [ "$do_qemu" = 1 ]; then
	echo "   QEMU: from starting the process to the poll (every 50 ms) of its serial output file that shows the banner"
	echo "         (${qemu_args[*]/#$tmp\/images\//})"
fi
printf '%-14s %11s %7s %13s %11s %9s %6s\n' config "banner s" spread "pages/image" "image MiB" faults runs
for m in lazy eager; do
	n=api-$m
	printf '%-14s %11s %7s %13s %11s %9s %6s\n' "kevd $m" "$(fmt "$(med $n banner)" 1e6 2)" "$(spread $n banner)" \
		"$(frac "$(med $n pl)" "$(med $n ip)")" "$(fmt "$(med $n br)" 1048576 2)" "$(med $n faults)" \
		"$(cnt $n banner)/$runs"
done
if [ "$do_qemu" = 1 ]; then
	printf '%-14s %11s %7s %13s %11s %9s %6s\n' "QEMU microvm" "$(fmt "$(med qemu banner)" 1e6 2)" \
		"$(spread qemu banner)" n/a n/a n/a "$(cnt qemu banner)/$runs"
else
	echo "QEMU microvm   skipped (qemu-system-x86_64 not found or --no-qemu)"
fi
echo "   pages/image = pages_loaded / image_pages at the banner; image MiB = bytes_read; faults = pager faults"
echo
printf '%-28s %10s\n' "ratio (time to the banner)" ""
printf '%-28s %10s\n' "kevd lazy / kevd eager" "$(ratio "$(med api-lazy banner)" "$(med api-eager banner)")"
if [ "$do_qemu" = 1 ]; then
	printf '%-28s %10s\n' "kevd lazy / QEMU" "$(ratio "$(med api-lazy banner)" "$(med qemu banner)")"
	printf '%-28s %10s\n' "kevd eager / QEMU" "$(ratio "$(med api-eager banner)" "$(med qemu banner)")"
fi
echo

echo "== End of the bounded run (the first daemon run of each mode; at most $end s after its create)"
printf '%-12s %9s %9s %-9s %13s %11s %9s  %s\n' config "seen s" "ran s" state "pages/image" "image MiB" faults "reason"
for m in lazy eager; do
	e=$tmp/end-$m
	if [ -s "$e" ]; then
		g() { awk -v k="$1" '$1 == k { print $2 }' "$e"; }
		printf '%-12s %9s %9s %-9s %13s %11s %9s  %s\n' "kevd $m" "$(fmt "$(g end_t_us)" 1e6 1)" \
			"$(fmt "$(g end_run)" 1e9 1)" "$(g end_state)" \
			"$(frac "$(g end_pl)" "$(g end_ip)")" "$(fmt "$(g end_br)" 1048576 2)" "$(g end_faults)" \
			"$(g end_reason | tr '_' ' ')"
		echo "   last kernel line: $(cat "$e.line")"
	else
		echo "kevd $m      no data (the create failed)"
	fi
done
echo "   seen s: create request to the last state poll (every $poll s); ran s: the VM's run_time_ns, start to end"
echo "   ('-' while running); state running = still running at the bound (the VM was then deleted)"

# --- data for bench/plot.sh -----------------------------------------------------------------

mkdir -p "$out"
{
	echo "# kevd Linux boot benchmark ($started), $(nproc) CPUs, Linux $(uname -r), load average ${load_start%% *} at start, ${load_end%% *} at end, kevd $describe; paging sampled every $sample ms"
	printf 'mode\tt_s\tpages_loaded\timage_pages\tloaded_pct\tfaults\tread_mib\n'
	awk '$3 != "-" && $4 != "-" && $4 > 0 {
		printf "%s\t%.3f\t%s\t%s\t%.2f\t%s\t%.2f\n", $1, $2 / 1000, $3, $4, $3 * 100 / $4, $5, $6 / 1048576 }' "$tmp/samples"
} >"$out/linux_pages.tsv"
{
	printf 'mode\tevent\tt_s\tstate\n'
	awk '{ printf "%s\t%s\t%.3f\t%s\n", $1, $2, $3 / 1000, ($4 == "" ? "-" : $4) }' "$tmp/events"
} >"$out/linux_events.tsv"
{
	printf 'name\tle_us\tcount\n'
	[ ! -s "$tmp/hist" ] || tr ' ' '\t' <"$tmp/hist"
} >"$out/linux_hist.tsv"
echo "bench_linux.sh: data in $out/linux_pages.tsv, linux_events.tsv, linux_hist.tsv (bench/plot.sh draws them)" >&2
