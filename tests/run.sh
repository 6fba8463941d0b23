#!/bin/sh
# `kevd run` end to end: console streamed, statistics printed (text and
# JSON with the pager's field names), the test guest's work= digest (the
# same for any vCPU count), exit statuses, --timeout, SIGINT,
# and one-line errors for bad images and options.  Skips without /dev/kvm.
set -eu
kevd="$top_builddir/kevd"
guest="$top_builddir/tests/guests/testguest.elf"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "run.sh: /dev/kvm cannot be opened: skipped"
	exit 77
fi
fail() { echo "run.sh: $*"; exit 1; }

# A good run: status (0 << 1) | 1 = 1 from the debug exit port.
set +e
"$kevd" run --kernel "$guest" --vcpus 2 --cmdline "touch=percent:25" > "$tmp/out" 2> "$tmp/err"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "good run exited $rc"
grep -q '^result: ok$' "$tmp/out" || fail "console not streamed"
grep -q "exited: guest wrote 0x0 to the debug exit port (exit status 1)" "$tmp/err" || fail "no end line"
grep -q "image pages 8925, loaded" "$tmp/err" || fail "no paging statistics"

# work=ROUNDS: the same digest for 1 and 4 vCPUs, progress every 100 rounds,
# another digest for another round count; the guest still ends normally.
work_result() {
	set +e
	"$kevd" run --kernel "$guest" --vcpus "$1" --cmdline "touch=random:4000 seed=3 write=1 work=$2" \
		> "$tmp/out" 2> "$tmp/err"
	rc=$?
	set -e
	[ "$rc" -eq 1 ] || { cat "$tmp/out" "$tmp/err"; fail "work=$2 on $1 vCPUs exited $rc"; }
	grep -q '^result: ok$' "$tmp/out" || fail "work=$2 on $1 vCPUs: no 'result: ok'"
	sed -n 's/^work: result=\(0x[0-9a-f]\{16\}\)$/\1/p' "$tmp/out"
}
w1=$(work_result 1 200)
grep -q '^work: round 100$' "$tmp/out" || fail "work=200: no 'work: round 100'"
grep -q '^work: round 200$' "$tmp/out" || fail "work=200: no 'work: round 200'"
w4=$(work_result 4 200)
[ -n "$w1" ] || fail "work=200: no 'work: result=' line"
[ "$w1" = "$w4" ] || fail "work=200: result $w1 on 1 vCPU, $w4 on 4"
w199=$(work_result 2 199)
[ -n "$w199" ] && [ "$w199" != "$w1" ] || fail "work=199 gives '$w199', work=200 $w1"

# JSON: one object after the console, the pager's field names.
set +e
"$kevd" run --kernel "$guest" --quiet --json --window 1 --cmdline "touch=stride:4" > "$tmp/json" 2> "$tmp/err"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "json run exited $rc"
for f in '"state": "exited"' '"exit_status": 1' '"image_pages": 8925' '"pages_loaded":' '"faults_coalesced":' \
	 '"eexist":' '"eagain":' '"bytes_read":' '"load_failures": 0' '"latency_histogram":' '"first_fault_ns":' \
	 '"faulting_threads":' '"window_pages": 1' '"exits":'; do
	grep -q "$f" "$tmp/json" || fail "JSON lacks $f"
done

# Crash: status 3 and the reason.
set +e
"$kevd" run --kernel "$guest" --quiet --cmdline mode=crash 2> "$tmp/err"
rc=$?
set -e
[ "$rc" -eq 3 ] || fail "crash exited $rc"
grep -q "crashed: vcpu 0: triple fault" "$tmp/err" || fail "no crash reason"

# --timeout stops a guest that never ends (124), SIGINT too (130), both
# still print the statistics.
set +e
"$kevd" run --kernel "$guest" --quiet --cmdline mode=loop --timeout 1 2> "$tmp/err"
rc=$?
set -e
[ "$rc" -eq 124 ] || fail "timeout exited $rc"
grep -q "stopped: timeout after 1 s" "$tmp/err" || fail "no timeout reason"
grep -q "image pages" "$tmp/err" || fail "no statistics after timeout"

"$kevd" run --kernel "$guest" --quiet --vcpus 2 --cmdline mode=loop 2> "$tmp/err" &
pid=$!
sleep 1
kill -INT "$pid"
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" -eq 130 ] || fail "SIGINT exited $rc"
grep -q "stopped: stopped by Interrupt" "$tmp/err" || fail "no SIGINT reason"

# ACPI S5 and the i8042 reset end every VM as exited, status 0: a PC
# (--ap-start sipi) and the test guest's own machine, under either boot
# protocol.
for m in "poweroff:guest powered off (ACPI S5)" "reset:guest reset the machine (i8042 pulse)"; do
	for how in "--ap-start sipi" "--ap-start entry" "--protocol multiboot2" "--vcpus 2"; do
		set +e
		# shellcheck disable=SC2086
		"$kevd" run --kernel "$guest" --quiet $how --timeout 30 --cmdline "mode=${m%%:*}" 2> "$tmp/err"
		rc=$?
		set -e
		[ "$rc" -eq 0 ] || { cat "$tmp/err"; fail "mode=${m%%:*} $how exited $rc"; }
		grep -q "exited: ${m#*:}" "$tmp/err" || fail "mode=${m%%:*} $how: no '${m#*:}'"
	done
done

# After its report an idle guest (HLT with interrupts enabled) stays until
# stopped; one that halts with interrupts disabled ends as exited, 0.
set +e
"$kevd" run --kernel "$guest" --vcpus 2 --cmdline "touch=none bss=0 mode=idle" --timeout 2 > "$tmp/out" 2> "$tmp/err"
rc=$?
set -e
[ "$rc" -eq 124 ] || { cat "$tmp/err"; fail "mode=idle exited $rc"; }
grep -q '^idle: vcpus=2$' "$tmp/out" || fail "mode=idle: no idle line"
grep -q "stopped: timeout after 2 s" "$tmp/err" || fail "mode=idle: not stopped by the timeout"
set +e
"$kevd" run --kernel "$guest" --quiet --vcpus 2 --cmdline "touch=none bss=0 mode=halt" --timeout 30 2> "$tmp/err"
rc=$?
set -e
[ "$rc" -eq 0 ] || { cat "$tmp/err"; fail "mode=halt exited $rc"; }
grep -q "exited: every vCPU halted" "$tmp/err" || fail "mode=halt: no 'every vCPU halted'"

# A guest hammering 512 ports nobody emulates: 20000 exits, each port
# logged once, and the guest still finishes normally.
set +e
"$kevd" run --kernel "$guest" --cmdline "mode=ports touch=none bss=0" --log-level info > "$tmp/out" 2> "$tmp/err"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "mode=ports exited $rc"
grep -q '^result: ok$' "$tmp/out" || fail "mode=ports guest did not finish"
[ "$(grep -c 'unhandled port' "$tmp/err")" -eq 512 ] || fail "unknown ports not logged exactly once each"

# An initrd is loaded for PVH guests (the test guest ignores it).
head -c 100000 /dev/urandom > "$tmp/initrd"
set +e
"$kevd" run --kernel "$guest" --quiet --initrd "$tmp/initrd" --cmdline "touch=none bss=0" 2> "$tmp/err"
rc=$?
set -e
[ "$rc" -eq 1 ] || { cat "$tmp/err"; fail "run with an initrd exited $rc"; }
# ... lazily: its 489 pages are image pages, and the guest, which never
# touches them, had none read (eager reads them all).
head -c 2000000 /dev/urandom > "$tmp/initrd"
"$kevd" run --kernel "$guest" --quiet --json --cmdline "touch=none bss=0" > "$tmp/json" 2> "$tmp/err" || :
kernel_pages=$(grep -o '"image_pages": *[0-9]*' "$tmp/json" | head -n 1 | sed 's/.*: *//')
for paging in lazy eager; do
	set +e
	"$kevd" run --kernel "$guest" --quiet --json --paging "$paging" --initrd "$tmp/initrd" \
		--cmdline "touch=none bss=0" > "$tmp/json" 2> "$tmp/err"
	rc=$?
	set -e
	[ "$rc" -eq 1 ] || { cat "$tmp/err"; fail "$paging run with an initrd exited $rc"; }
	pages=$(grep -o '"image_pages": *[0-9]*' "$tmp/json" | head -n 1 | sed 's/.*: *//')
	read=$(grep -o '"bytes_read": *[0-9]*' "$tmp/json" | head -n 1 | sed 's/.*: *//')
	[ "$pages" -eq $((kernel_pages + 489)) ] || fail "$paging: $pages image pages, $kernel_pages without a 489-page initrd"
	if [ "$paging" = lazy ]; then
		[ "$read" -lt 2000000 ] || fail "lazy: $read bytes read: the untouched initrd was read"
	else
		[ "$read" -ge 2000000 ] || fail "eager: only $read bytes read"
	fi
done
: > "$tmp/empty"

# The vCPU threads run at the nice asked for (default 10), below the pager.
"$kevd" run --kernel "$guest" --quiet --vcpu-nice 7 --timeout 3 --cmdline "touch=none bss=0 mode=loop" \
	> /dev/null 2>&1 &
rp=$!
nice_of() {
	for t in /proc/$rp/task/*; do
		[ "$(cat "$t/comm" 2>/dev/null)" = "$1" ] && awk '{ print $19 }' "$t/stat" && return
	done
}
# The thread is made with the VM and renices itself once let into the
# guest: wait for that, not only for the thread.
i=0
until [ "$(nice_of vcpu-0)" = 7 ] || [ "$i" -ge 50 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(nice_of vcpu-0)" = 7 ] || fail "vcpu-0 runs at nice '$(nice_of vcpu-0)', not 7"
[ "$(nice_of pager-0)" = 0 ] || fail "pager-0 runs at nice '$(nice_of pager-0)', not 0"
kill "$rp" 2> /dev/null || :
wait "$rp" 2> /dev/null || :
"$kevd" run --kernel "$guest" --quiet --vcpu-nice 20 > /dev/null 2> "$tmp/err" && fail "--vcpu-nice 20 accepted"
grep -q 'vcpu-nice' "$tmp/err" || fail "--vcpu-nice 20: no message naming it"

# Bad input: one line, non-zero.
printf 'junk' > "$tmp/bad.elf"
check_one_line() {
	expected_rc=$1; pattern=$2; shift 2
	set +e
	"$kevd" run "$@" > "$tmp/out" 2> "$tmp/err"
	rc=$?
	set -e
	[ "$rc" -eq "$expected_rc" ] || fail "'$*' exited $rc, expected $expected_rc"
	[ "$(wc -l < "$tmp/err")" -eq 1 ] || { cat "$tmp/err"; fail "'$*': not one line"; }
	grep -q -e "$pattern" "$tmp/err" || { cat "$tmp/err"; fail "'$*': no '$pattern'"; }
}
check_one_line 1 "image '$tmp/bad.elf': not an ELF file" --kernel "$tmp/bad.elf"
check_one_line 1 "does not fit in 8 MiB of guest RAM" --kernel "$guest" --memory 8
check_one_line 1 "0 vCPUs is outside" --kernel "$guest" --vcpus 0
check_one_line 2 "is not a number" --kernel "$guest" --vcpus many
check_one_line 2 "is not a number" --kernel "$guest" --memory -5
check_one_line 2 "--kernel PATH is required"
check_one_line 2 "is not auto, multiboot2 or pvh" --kernel "$guest" --protocol efi
check_one_line 2 "at least 1 page" --kernel "$guest" --window 0
check_one_line 2 "is not auto, entry or sipi" --kernel "$guest" --ap-start bios
check_one_line 1 "initrd '$tmp/empty' is empty" --kernel "$guest" --initrd "$tmp/empty"
check_one_line 1 "initrd '$tmp/nope': No such file" --kernel "$guest" --initrd "$tmp/nope"
check_one_line 1 "an initrd needs the PVH boot protocol" --kernel "$guest" --initrd "$tmp/initrd" --protocol multiboot2
echo "run: ok"
