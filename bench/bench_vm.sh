#!/bin/bash
# VM-level benchmark of kevd: whole-process start-up and run costs of the test
# guest under kevd (lazy, lazy with a 1-page window, eager) and under QEMU
# microvm, then the start-up cost of Debian's cloud kernel lazy vs eager.
# Plain-text tables on stdout; all baselines come from the same run.
#
# usage: bench/bench_vm.sh [-n RUNS] [--linux-runs N] [--linux-timeout SECONDS]
#                          [--limit SECONDS] [--no-qemu] [--no-linux] [--no-smp]
#   -n RUNS            runs per configuration, the median is shown (default 5)
#   --linux-runs N     runs per Linux configuration (default: RUNS)
#   --linux-timeout S  kevd --timeout for the Linux runs (default 3)
#   --limit S          a test-guest run taking longer is killed (default 120)
#
# Needs (Debian 12): bash, coreutils, mawk/gawk, time (/usr/bin/time),
# qemu-system-x86 (optional: its rows are skipped without it), and for the
# Linux part apt, dpkg and lz4 (see bench/fetch-debian-kernel.sh).
#
# Besides the tables, the medians and the pager's load-latency histograms go
# to $KEVD_BENCH_OUT (default bench/out/) as vm.tsv and vm_hist.tsv, which
# bench/plot.sh draws.
set -eu
export LC_ALL=C

runs=5
linux_runs=
linux_timeout=3
do_qemu=1
do_linux=1
do_smp=1
limit=120 # seconds a single test-guest run may take before it is killed

usage() { sed -n '7,12p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case $1 in
	-n | --runs) runs=${2:?}; shift 2 ;;
	--linux-runs) linux_runs=${2:?}; shift 2 ;;
	--linux-timeout) linux_timeout=${2:?}; shift 2 ;;
	--limit) limit=${2:?}; shift 2 ;;
	--no-qemu) do_qemu=0; shift ;;
	--no-linux) do_linux=0; shift ;;
	--no-smp) do_smp=0; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench_vm.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done
case $runs in '' | *[!0-9]* | 0) echo "bench_vm.sh: -n needs a positive number" >&2; exit 2 ;; esac
linux_runs=${linux_runs:-$runs}
case $linux_runs in '' | *[!0-9]* | 0) echo "bench_vm.sh: --linux-runs needs a positive number" >&2; exit 2 ;; esac
case $linux_timeout in '' | *[!0-9]* | 0) echo "bench_vm.sh: --linux-timeout needs a positive number" >&2; exit 2 ;; esac
case $limit in '' | *[!0-9.]* | *.*.* | .* | *.) echo "bench_vm.sh: --limit needs a positive number of seconds" >&2; exit 2 ;; esac

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
kevd=$top/kevd
guest=$top/tests/guests/testguest.elf
timebin=/usr/bin/time
out=${KEVD_BENCH_OUT:-$top/bench/out}

[ -x "$timebin" ] || { echo "bench_vm.sh: $timebin missing (Debian package: time)" >&2; exit 1; }
if [ ! -x "$kevd" ] || [ ! -f "$guest" ]; then
	[ -f Makefile ] || { echo "bench_vm.sh: $top is not configured (./configure)" >&2; exit 1; }
	echo "bench_vm.sh: building kevd and the test guest" >&2
	make -j2 kevd tests/guests/testguest.elf >&2
fi
qemu=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu" ] || do_qemu=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-bench-vm.XXXXXX")
job='' wd='' cur=''
cleanup() {
	trap - EXIT INT TERM
	# Stop whatever is still running: the VMM of the current run (its pid is
	# in $cur.pid), then the measuring subshell and the watchdog.
	if [ -n "$cur" ] && [ -s "$cur.pid" ]; then kill "$(cat "$cur.pid")" 2>/dev/null || true; fi
	[ -z "$wd" ] || kill "$wd" 2>/dev/null || true
	[ -z "$job" ] || wait "$job" 2>/dev/null || true
	[ -z "$wd" ] || wait "$wd" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- measuring one run -------------------------------------------------------
#
# The command runs as: /usr/bin/time -f %M sh WRAPPER PREFIX CMD... | reader.
# The wrapper starts CMD in the background (stdin /dev/null), records its pid
# (for the watchdog and cleanup) and exit status, and after reaping it reads
# rchar from its own /proc/PID/io, which by then includes the reaped child's
# read() bytes.  GNU time's %M is the peak RSS of its child's process tree, i.e.
# of the VMM (the wrapper shell is far smaller).  The reader timestamps the first
# byte on stdout.
cat >"$tmp/wrap.sh" <<'EOF'
p=$1; shift
"$@" </dev/null &
echo $! >"$p.pid"
s=0; wait $! || s=$?
echo $s >"$p.rc"
sed -n 's/^rchar: //p' /proc/$$/io >"$p.io"
exit $s
EOF

reader() {
	local c=
	if IFS= read -r -d '' -N 1 c; then
		printf '%s\n' "${EPOCHREALTIME/./}" >"$1.first"
	fi
	printf '%s' "$c" >"$1.out"
	cat >>"$1.out"
}

# measure PREFIX CMD...: one run; leaves PREFIX.{t,first,rc,io,rss,out,err}.
measure() {
	local p=$1; shift
	cur=$p
	(
		t0=${EPOCHREALTIME/./}
		"$timebin" -o "$p.rss" -f %M sh "$tmp/wrap.sh" "$p" "$@" 2>"$p.err" | reader "$p"
		t2=${EPOCHREALTIME/./}
		echo "$t0 $t2" >"$p.t"
	) &
	job=$!
	sleep "$limit" &
	wd=$!
	wait -n "$job" "$wd" || true
	if kill -0 "$job" 2>/dev/null; then
		echo "bench_vm.sh: run $p exceeded ${limit}s, killed" >&2
		if [ -s "$p.pid" ]; then kill "$(cat "$p.pid")" 2>/dev/null || true; fi
		echo killed >"$p.killed"
	else
		kill "$wd" 2>/dev/null || true
	fi
	wait "$job" 2>/dev/null || true
	wait "$wd" 2>/dev/null || true
	job='' wd='' cur=''
}

# jnum FILE KEY: the first number for "KEY": in the JSON part of kevd's output.
jnum() {
	sed -n '/^{$/,$p' "$1" | sed -n "s/^ *\"$2\": *\(-\{0,1\}[0-9][0-9]*\),\{0,1\}\$/\1/p" | head -n 1
}

# record NAME RUN PREFIX KIND: appends one line to $tmp/results:
# name run wall_us first_byte_us first_run_us rss_kib rchar bytes_read
# pages_loaded image_pages rc ok   ("-" where unknown)
record() {
	local name=$1 run=$2 p=$3 kind=$4
	local t0 t2 wall first=- frun=- rss=- io=- br=- pl=- ip=- rc=- ok=no v
	read -r t0 t2 <"$p.t"
	wall=$((t2 - t0))
	[ -s "$p.rc" ] && rc=$(cat "$p.rc")
	[ -s "$p.io" ] && io=$(cat "$p.io")
	[ -s "$p.rss" ] && rss=$(tail -n 1 "$p.rss")
	case $rss in '' | *[!0-9]*) rss=- ;; esac
	# The first byte counts only if it is console output: kevd prints its JSON
	# after a blank line, so a run without console output starts with "\n{".
	if [ -s "$p.first" ] && [ -s "$p.out" ] && [ "$(head -c 1 "$p.out" | od -An -tx1 | tr -d ' ')" != 0a ]; then
		first=$(($(cat "$p.first") - t0))
	fi
	case $kind in
	kevd* | linux*)
		v=$(jnum "$p.out" create_to_first_run_ns); [ -z "$v" ] || frun=$((v / 1000))
		v=$(jnum "$p.out" bytes_read); [ -z "$v" ] || br=$v
		v=$(jnum "$p.out" pages_loaded); [ -z "$v" ] || pl=$v
		v=$(jnum "$p.out" image_pages); [ -z "$v" ] || ip=$v
		;;
	esac
	case $kind in
	linux) [ "$rc" = 124 ] && [ -n "$(jnum "$p.out" create_to_first_run_ns)" ] && ok=yes ;;
	harness) [ "$rc" = 0 ] && ok=yes ;;
	qemu)
		# QEMU maps the image file (no read()) and copies every PT_LOAD segment
		# into guest memory: count the whole file, marked as not measured.
		br=$(wc -c <"$guest" | tr -d ' ')
		[ "$rc" = 1 ] && grep -q '^result: ok$' "$p.out" && ok=yes
		;;
	*) [ "$rc" = 1 ] && grep -q '^result: ok$' "$p.out" && ok=yes ;;
	esac
	[ ! -e "$p.killed" ] || ok=killed
	if [ "$ok" != yes ]; then
		echo "bench_vm.sh: $name run $run: exit $rc, ok=$ok; stderr:" >&2
		head -n 5 "$p.err" >&2
	fi
	echo "$name $run $wall $first $frun $rss $io $br $pl $ip $rc $ok" >>"$tmp/results"
	case $kind:$ok in kevd*:yes | linux:yes) hist "$name" "$p.out" ;; esac
}

# hist NAME FILE: the pager's load-latency histogram in kevd's JSON, one line
# "NAME LE_US COUNT" per bucket appended to $tmp/hist (LE_US inf: the last).
hist() {
	sed -n '/^{$/,$p' "$2" | awk -v n="$1" '
		/"latency_histogram"/ { in_ = 1; next }
		in_ && /]/ { in_ = 0 }
		in_ && /"le_us"/ { le = $2; sub(/,$/, "", le); if (le == "null") le = "inf" }
		in_ && /"count"/ { c = $2; sub(/,$/, "", c); print n, le, c }
	' >>"$tmp/hist"
}

# bench NAME KIND N CMD...: N runs of CMD, recorded under NAME.
bench() {
	local name=$1 kind=$2 n=$3 i; shift 3
	for i in $(seq 1 "$n"); do
		rm -f "$tmp"/run.*
		measure "$tmp/run" "$@"
		record "$name" "$i" "$tmp/run" "$kind"
	done
	rm -f "$tmp"/run.*
	printf '.' >&2
}

# --- aggregation ---------------------------------------------------------------

# med NAME COLUMN: median over the successful runs of NAME (column numbers as in
# record; the lower middle value for an even count); "-" if none has a value.
med() {
	awk -v n="$1" -v c="$2" '$1 == n && $12 == "yes" && $c != "-" { print $c }' "$tmp/results" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'
}
# spread NAME COLUMN: (max - min) / median of the successful runs, in percent.
spread() {
	awk -v n="$1" -v c="$2" '$1 == n && $12 == "yes" && $c != "-" { print $c }' "$tmp/results" | sort -n |
		awk '{ v[NR] = $1 } END { m = v[int((NR + 1) / 2)]; if (NR == 0 || m == 0) print "-"; else printf "%.0f%%\n", (v[NR] - v[1]) * 100 / m }'
}
# okcount NAME: "ok/total"
okcount() {
	awk -v n="$1" '$1 == n { t++; if ($12 == "yes") k++ } END { printf "%d/%d\n", k, t }' "$tmp/results"
}
# fmt VALUE DIVISOR DECIMALS: VALUE/DIVISOR, or "-" / "n/a".
fmt() {
	case $1 in
	-) echo - ;;
	n/a) echo n/a ;;
	*) awk -v v="$1" -v d="$2" -v p="$3" 'BEGIN { printf "%.*f\n", p, v / d }' ;;
	esac
}
# ratio A B: A/B as "0.42x", or "-".
ratio() {
	case "$1$2" in
	*-* | *n/a*) echo - ;;
	*) awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2fx\n", a / b }' ;;
	esac
}

# table_row NAME LABEL: one row of the main table.
table_row() {
	local n=$1 label=$2 wall first frun rss io br pl ip pages
	wall=$(med "$n" 3); first=$(med "$n" 4); frun=$(med "$n" 5); rss=$(med "$n" 6)
	io=$(med "$n" 7); br=$(med "$n" 8); pl=$(med "$n" 9); ip=$(med "$n" 10)
	local brs
	brs=$(fmt "$br" 1048576 2)
	case $n in qemu*) frun=n/a pl=n/a ip=n/a brs="$brs*" ;; esac
	pages=-
	[ "$pl" = n/a ] && pages=n/a
	[ "$pl" != - ] && [ "$pl" != n/a ] && [ "$ip" != - ] && pages="$pl/$ip"
	printf '%-22s %9s %6s %10s %10s %9s %9s %11s %13s %6s\n' "$label" \
		"$(fmt "$wall" 1000 1)" "$(spread "$n" 3)" "$(fmt "$first" 1000 1)" "$(fmt "$frun" 1000 2)" \
		"$(fmt "$rss" 1024 1)" "$(fmt "$io" 1048576 2)" "$brs" "$pages" "$(okcount "$n")"
}
table_head() {
	printf '%-22s %9s %6s %10s %10s %9s %9s %11s %13s %6s\n' config "wall ms" spread "1st byte" "1st run" "RSS MiB" \
		"rchar MiB" "image MiB" "pages/image" ok
}
# ratio_row LABEL NAME BASE: ratios NAME/BASE for wall, first byte, first run,
# RSS, rchar and image bytes read.
ratio_row() {
	local c out="" a b
	for c in 3 4 5 6 7 8; do
		a=$(med "$2" $c); b=$(med "$3" $c)
		# QEMU does not report its first guest instruction, and its rchar
		# does not include the image, which it maps.
		case "$c:$2:$3" in [57]:qemu* | [57]:*:qemu*) a=n/a ;; esac
		out="$out $(printf '%10s' "$(ratio "$a" "$b")")"
	done
	printf '%-30s%s\n' "$1" "$out"
}
ratio_head() {
	printf '%-30s %10s %10s %10s %10s %10s %10s\n' "ratio" wall "1st byte" "1st run" RSS rchar "image"
}

# --- header ----------------------------------------------------------------------

describe=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
qver=-
[ "$do_qemu" = 1 ] && qver=$("$qemu" --version | head -n 1)
defwin=$("$kevd" run --kernel "$guest" --memory 128 --quiet --json --cmdline "touch=none bss=0" 2>/dev/null |
	sed -n 's/^ *"window_pages": *\([0-9]*\),*$/\1/p' | head -n 1 || true)

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(cut -d " " -f 1 /proc/loadavg)

# Harness overhead: the same measuring path around `true` (wall) and `echo`
# (first byte), to read the small constant included in every wall/first byte.
bench harness harness "$runs" true
bench harness_echo harness "$runs" echo x

# shellcheck disable=SC2054 # commas belong to the -M value
qemu_args=(-accel kvm -M microvm,x-option-roms=off,pit=off,pic=off,rtc=off,acpi=off -nodefaults -no-user-config
	-display none -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=1 -m 128 -no-reboot -kernel "$guest")

# --- test guest, 1 vCPU ------------------------------------------------------------

workloads=("touch=all" "touch=percent:10" "touch=none bss=0")
kevd_configs=("lazy:" "lazy-private:--paging lazy-private" "lazy-w1:--window 1" "eager:--eager")

run_workloads() {
	local vcpus=$1 w wi=0 c name args
	for w in "${workloads[@]}"; do
		for c in "${kevd_configs[@]}"; do
			name="kevd-${c%%:*}-v$vcpus-w$wi"
			args=${c#*:}
			# shellcheck disable=SC2086
			bench "$name" kevd "$runs" "$kevd" run --kernel "$guest" --memory 128 --vcpus "$vcpus" \
				--cmdline "$w" --json $args
		done
		if [ "$vcpus" = 1 ] && [ "$do_qemu" = 1 ]; then
			bench "qemu-v1-w$wi" qemu "$runs" "$qemu" "${qemu_args[@]}" -append "$w"
		fi
		wi=$((wi + 1))
	done
}

print_workloads() {
	local vcpus=$1 w wi=0 c q
	for w in "${workloads[@]}"; do
		echo "== test guest, $vcpus vCPU$([ "$vcpus" = 1 ] || echo s), cmdline \"$w\""
		table_head
		table_row "kevd-lazy-v$vcpus-w$wi" "kevd lazy"
		table_row "kevd-lazy-private-v$vcpus-w$wi" "kevd lazy-private"
		table_row "kevd-lazy-w1-v$vcpus-w$wi" "kevd lazy window 1"
		table_row "kevd-eager-v$vcpus-w$wi" "kevd eager"
		q="qemu-v1-w$wi"
		if [ "$vcpus" = 1 ] && [ "$do_qemu" = 1 ]; then
			table_row "$q" "QEMU microvm"
		elif [ "$vcpus" != 1 ]; then
			echo "QEMU microvm           n/a: the test guest's multi-vCPU start (kevd convention) is kevd-only"
		fi
		echo
		ratio_head
		if [ "$vcpus" = 1 ] && [ "$do_qemu" = 1 ]; then
			for c in lazy lazy-private lazy-w1 eager; do
				ratio_row "kevd $c / QEMU" "kevd-$c-v$vcpus-w$wi" "$q"
			done
		fi
		ratio_row "kevd lazy / kevd eager" "kevd-lazy-v$vcpus-w$wi" "kevd-eager-v$vcpus-w$wi"
		ratio_row "kevd lazy / kevd lazy-private" "kevd-lazy-v$vcpus-w$wi" "kevd-lazy-private-v$vcpus-w$wi"
		ratio_row "kevd lazy w1 / kevd eager" "kevd-lazy-w1-v$vcpus-w$wi" "kevd-eager-v$vcpus-w$wi"
		if [ "$vcpus" != 1 ]; then
			ratio_row "kevd lazy, $vcpus / 1 vCPU" "kevd-lazy-v$vcpus-w$wi" "kevd-lazy-v1-w$wi"
			ratio_row "kevd eager, $vcpus / 1 vCPU" "kevd-eager-v$vcpus-w$wi" "kevd-eager-v1-w$wi"
		fi
		echo
		wi=$((wi + 1))
	done
}

run_workloads 1
print_workloads 1 >"$tmp/out1"
if [ "$do_smp" = 1 ]; then
	run_workloads 4
	print_workloads 4 >"$tmp/out4"
fi

# --- Debian's cloud kernel --------------------------------------------------------

linux_cmdline="console=ttyS0 earlyprintk=serial"
{
	echo "== Debian cloud kernel (linux-image-cloud-amd64), 1 vCPU, --memory 512 --timeout $linux_timeout"
	echo "   --cmdline \"$linux_cmdline\"; stopped by the timeout (exit 124): start-up cost only, values at the stop"
} >"$tmp/outl"
if [ "$do_linux" = 1 ]; then
	if vmlinux=$("$top/bench/fetch-debian-kernel.sh" 2>"$tmp/fetch.err"); then
		for c in lazy eager; do
			args=
			[ "$c" = eager ] && args=--eager
			# shellcheck disable=SC2086
			bench "linux-$c" linux "$linux_runs" "$kevd" run --kernel "$vmlinux" --memory 512 --vcpus 1 \
				--timeout "$linux_timeout" --cmdline "$linux_cmdline" --json $args
		done
		{
			echo "   image: $(basename "$vmlinux") ($(($(wc -c <"$vmlinux") / 1048576)) MiB file)"
			table_head
			table_row linux-lazy "kevd lazy"
			table_row linux-eager "kevd eager"
			echo
			ratio_head
			ratio_row "kevd lazy / kevd eager" linux-lazy linux-eager
			echo "   (wall is dominated by the ${linux_timeout} s timeout; 1st byte is '-' when the kernel printed"
			echo "    nothing before the stop: its first serial byte takes about 12 s here)"
		} >>"$tmp/outl"
	else
		echo "   skipped: $(tail -n 1 "$tmp/fetch.err" | sed 's/^fetch-debian-kernel: //')" >>"$tmp/outl"
	fi
else
	echo "   skipped: --no-linux" >>"$tmp/outl"
fi
	echo >&2

{
	echo "kevd VM benchmark ($started)"
	echo "machine: $(nproc) CPUs, Linux $(uname -r), kevd $describe, default fault-around window ${defwin:-?} pages"
	echo "load:    1-minute load average $load_start at start, $(cut -d " " -f 1 /proc/loadavg) at end"
	echo "QEMU:    $qver"
	echo "method:  median of $runs runs per configuration ($linux_runs for Linux), all configurations in this run"
	echo "  wall ms     process start to exit of the whole command (fork/exec included)"
	echo "  spread      (max - min) / median of wall over the runs"
	echo "  1st byte    ms from process start to the first byte the guest wrote to the serial console (stdout)"
	echo "  1st run     ms from VM creation to the first guest instruction (kevd vm.create_to_first_run_ns;"
	echo "              QEMU does not report it: n/a)"
	echo "  RSS MiB     peak resident set of the VMM process (GNU time %M)"
	echo "  rchar MiB   bytes the VMM process got from read()-like system calls (/proc/PID/io rchar, taken"
	echo "              when the process is reaped); kevd reads the image this way, QEMU maps it (not counted)"
	echo "  image MiB   bytes read from the kernel image by kevd's pager (paging.bytes_read)"
	echo "  pages/image guest pages loaded from the image / image-backed pages (paging.pages_loaded/image_pages)"
	echo "  ok          runs that succeeded (test guest: exit status 1 and 'result: ok'; Linux: stopped by --timeout, exit 124)"
	echo "  harness overhead in every wall / 1st byte: $(fmt "$(med harness 3)" 1000 1) ms / $(fmt "$(med harness_echo 4)" 1000 1) ms"
	echo "  (median wall of \`true\`, first byte of \`echo\`, through the same bash + /usr/bin/time + sh wrapper)"
	echo "test guest: $(basename "$guest"), $(($(wc -c <"$guest") / 1048576)) MiB file, 32 MiB data image; guest memory 128 MiB"
	echo "  kevd: kevd run --kernel testguest.elf --memory 128 --vcpus V --cmdline W --json [--paging lazy-private | --window 1 | --eager]"
	[ "$do_qemu" = 1 ] && echo "  QEMU: qemu-system-x86_64 ${qemu_args[*]/#$top\//} -append W"
	[ "$do_qemu" = 1 ] || echo "  QEMU: skipped (qemu-system-x86_64 not found or --no-qemu)"
	echo "  image MiB marked * (QEMU): the image file's size, not measured: QEMU maps the file and copies all of it"
echo
} >"$tmp/header"

# --- data for bench/plot.sh ----------------------------------------------------------
#
# vm.tsv: one row per configuration run (any NAME recorded, in run order) with
# the medians of the table; vm_hist.tsv: the load-latency buckets summed over
# the successful runs of each kevd configuration.
write_data() {
	local n w
	mkdir -p "$out"
	{
		printf '# kevd VM benchmark (%s), %s CPUs, Linux %s, load average %s at start, %s at end, kevd %s\n' "$started" "$(nproc)" "$(uname -r)" "$load_start" "$(cut -d ' ' -f 1 /proc/loadavg)" "$describe"
		printf 'name\tvcpus\tworkload\twall_ms\tfirst_byte_ms\tfirst_run_ms\trss_mib\trchar_mib\timage_mib\tok\n'
		while read -r n; do
			w=-
			[[ $n =~ -w([0-9]+)$ ]] && w=${workloads[${BASH_REMATCH[1]}]}
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" \
				"$([[ $n =~ -v([0-9]+)- ]] && echo "${BASH_REMATCH[1]}" || echo 1)" "$w" \
				"$(fmt "$(med "$n" 3)" 1000 2)" "$(fmt "$(med "$n" 4)" 1000 2)" "$(fmt "$(med "$n" 5)" 1000 3)" \
				"$(fmt "$(med "$n" 6)" 1024 2)" "$(fmt "$(med "$n" 7)" 1048576 2)" "$(fmt "$(med "$n" 8)" 1048576 2)" \
				"$(okcount "$n")"
		done < <(awk '$1 !~ /^harness/ && !s[$1]++ { print $1 }' "$tmp/results")
	} >"$out/vm.tsv"
	{
		printf 'name\tle_us\tcount\n'
		[ ! -s "$tmp/hist" ] || awk '{ k = $1 "\t" $2; if (!(k in c)) o[++m] = k; c[k] += $3 }
			END { for (i = 1; i <= m; i++) print o[i] "\t" c[o[i]] }' "$tmp/hist"
	} >"$out/vm_hist.tsv"
	echo "bench_vm.sh: data in $out/vm.tsv, $out/vm_hist.tsv (bench/plot.sh draws them)" >&2
}
write_data

cat "$tmp/header" "$tmp/out1"
[ "$do_smp" = 0 ] || cat "$tmp/out4"
cat "$tmp/outl"
