#!/bin/sh
# make check-linux, after boot.sh: Debian's cloud kernel snapshotted after
# its banner and restored, through a real daemon (docs/linux.md).
#
# A Linux VM ("orig") is created through the API: the vmlinux and the
# initramfs in the image directory, boot.sh's kernel options, PVH.  It is
# snapshotted at three points, each time paused, its console length noted
# (the snapshot point), snapshotted and resumed:
#   banner    as soon as its console shows the `Linux version` banner;
#   kvmclock  once kvm-clock is its sched_clock (MSR_KVM_SYSTEM_TIME_NEW
#             on: loading it has KVM map the guest's pvclock page);
#   late      at RCU's set-up, before the kernel sets up its interrupts and
#             timers (init_IRQ(), the PIT, the I/O APIC, x2APIC, the LAPIC
#             timer) and well before it ends on nested KVM.
# A clone restored from each must answer within TIMEOUT, its console must
# start with orig's up to the snapshot point, and it must print new kernel
# lines past it within TIMEOUT.  The clones of banner and kvmclock run
# beside orig for TIMEOUT; from late, orig runs alone to its end (TIMEOUT
# at most), then its clone alone.  A clone must not fail, nor crash unless
# orig crashed the same way (on nested KVM both meet the emulator at
# int3_selftest(): docs/linux.md); where orig ended, the clone must end the
# same way after orig's last kernel message; it must print no lockup,
# stall, clocksource or timer complaint past its point, and its printk
# times must go on from the snapshot's without going back or jumping (the
# TSC and kvmclock restored).  How far each VM got (kernel lines, printk
# time, exits, pages loaded) is printed every 10 s and at the end of each
# phase, to compare.  A point orig does not reach while running (a fast
# host boots past it between two looks, a slow one not within TIMEOUT) is
# said and not checked.
#
# Environment: VCPUS (default 1), MEMORY MiB (512), TIMEOUT seconds for
# each wait (120), KEVD_LINUX_EXTRA (extra kernel options).  Skips (77)
# without /dev/kvm, curl or a Debian kernel.
set -eu
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
kevd="$top_builddir/kevd"
vcpus=${VCPUS:-1}
mem=${MEMORY:-512}
timeout=${TIMEOUT:-120}
me=linux-snapshot

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "$me: /dev/kvm cannot be opened: skipped"
	exit 77
fi
command -v curl > /dev/null 2>&1 || { echo "$me: curl is not installed: skipped"; exit 77; }
vmlinux=$(sh "$top_srcdir/bench/fetch-debian-kernel.sh") || { echo "$me: no Debian kernel: skipped"; exit 77; }

. "$top_srcdir/tests/lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-linux-snapshot-XXXXXX")
pid=
cleanup() {
	kevd_stop "$pid"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
die() {
	echo "$me: FAIL: $*"
	[ -f "$tmp/body" ] && head -c 2000 "$tmp/body" | sed 's/^/body: /' && echo
	for f in "$tmp"/*.con; do
		[ -f "$f" ] || continue
		v=$(basename "$f" .con)
		grep '^\[' "$f" | tail -n 3 | sed "s/^/$v: /"
	done
	sed 's/^/kevd: /' "$tmp/kevd.log" | tail -n 20
	exit 1
}

# A copy, not a link (tests/lib.sh: kevd_images says why).
mkdir "$tmp/images"
cp "$vmlinux" "$tmp/images/vmlinux"
sh "$top_srcdir/tests/linux/mkinitramfs.sh" "$tmp/images/initrd.gz"
sock="$tmp/kevd.sock"
kevd_conf "$tmp/kevd.conf" "$sock" "$tmp"
"$kevd" serve --config "$tmp/kevd.conf" > "$tmp/kevd.log" 2>&1 &
pid=$!
kevd_ready "$pid" curl -sf --unix-socket "$sock" http://localhost/v1/health || { pid=; die "kevd did not start"; }

# api METHOD PATH [BODY]: the answer in $tmp/body, its headers in
# $tmp/head, the status in $code (000: none within $timeout s).
api() {
	if [ $# -gt 2 ]; then
		code=$(curl -sS --max-time "$timeout" --unix-socket "$sock" -X "$1" -H 'Content-Type: application/json' \
			-d "$3" -D "$tmp/head" -o "$tmp/body" -w '%{http_code}' "http://localhost$2") || code=000
	else
		code=$(curl -sS --max-time "$timeout" --unix-socket "$sock" -X "$1" -D "$tmp/head" -o "$tmp/body" \
			-w '%{http_code}' "http://localhost$2") || code=000
	fi
}
expect() {
	_want=$1 _what=$2
	shift 2
	api "$@"
	[ "$code" = "$_want" ] || die "$_what: $code, want $_want"
}
now() {
	date +%s
}
# get NAME: variable NAME's value (the per-point and per-VM ones).
get() {
	eval "echo \"\${$1:-}\""
}
field() {
	grep -o "\"$1\":\"[^\"]*\"" "$2" | head -n 1 | sed 's/^[^:]*:"//; s/"$//'
}
num() {
	grep -o "\"$1\":[0-9]*" "$2" | head -n 1 | sed 's/.*://'
}
# fetch VM: VM's whole console into $tmp/VM.con, the VM into $tmp/VM.json.
fetch() {
	api GET "/v1/vms/$1/console"
	[ "$code" = 200 ] || die "$1's console: $code"
	mv "$tmp/body" "$tmp/$1.con"
	api GET "/v1/vms/$1"
	[ "$code" = 200 ] || die "$1: $code"
	mv "$tmp/body" "$tmp/$1.json"
}
state() {
	field state "$tmp/$1.json"
}
reason() {
	field reason "$tmp/$1.json"
}
# lines FILE: its kernel lines.  last_time FILE: its last printk time in
# whole seconds (0: none).
lines() {
	grep -c '^\[ *[0-9]*\.[0-9]*\] ' "$1" || :
}
last_time() {
	grep -o '^\[ *[0-9]*\.[0-9]*\]' "$1" | tail -n 1 | tr -d '[] ' | sed 's/\..*//; s/^$/0/'
}
# new VM: what the clone VM printed past its snapshot point, into $tmp/VM.new.
new() {
	tail -c +$(($(get "len_$(get "point_$(echo "$1" | tr -- - _)")") + 1)) "$tmp/$1.con" > "$tmp/$1.new"
}
progress() {
	echo "$1 $(state "$1"), $(lines "$tmp/$1.con") lines, printk $(last_time "$tmp/$1.con") s"
}
# stuck_threads: kevd's threads in uninterruptible sleep, with their kernel
# stacks where readable (a restore waiting on a page nobody serves).
stuck_threads() {
	for t in /proc/"$pid"/task/*; do
		[ "$(cut -d' ' -f3 "$t/stat" 2> /dev/null)" = D ] || continue
		echo "$me: kevd thread $(cat "$t/comm") in D, wchan $(cat "$t/wchan" 2> /dev/null)"
		sed 's/^/    /' "$t/stack" 2> /dev/null | head -n 24
	done
}

# take POINT PATTERN [BEFORE]: once orig's console has a line matching
# PATTERN (TIMEOUT at most), snapshot POINT at a noted console length (and
# say so if orig was past BEFORE by then).  Fails (returns 1) when orig is
# not running by then.
take() {
	_t=$(now)
	until fetch orig && grep -Eq "$2" "$tmp/orig.con"; do
		if [ "$(state orig)" != running ]; then
			echo "$me: $1: orig is $(state orig) ($(reason orig)) before '$2': not checked"
			return 1
		fi
		if [ $(($(now) - _t)) -ge "$timeout" ]; then
			echo "$me: $1: no '$2' within $timeout s ($(progress orig)): not checked"
			return 1
		fi
		sleep 0.5
	done
	api PUT /v1/vms/orig/actions '{"action":"pause"}'
	if [ "$code" != 200 ]; then
		fetch orig
		echo "$me: $1: orig is $(state orig) ($(reason orig)) once '$2' is there: not checked"
		return 1
	fi
	expect 200 "orig's console, paused" GET /v1/vms/orig/console
	eval "len_$1=\$(tr -d '\r' < \"\$tmp/head\" | sed -n 's/^X-Console-Next-Offset: *//p')"
	mv "$tmp/body" "$tmp/$1.at"
	[ -z "${3:-}" ] || ! grep -Eq "$3" "$tmp/$1.at" || echo "$me: $1: (orig was past '$3' already)"
	expect 201 "snapshot $1 of orig" POST /v1/vms/orig/snapshot "{\"name\":\"$1\"}"
	_ms=$(grep -o '"write_ms":[0-9]*' "$tmp/body" | sed 's/.*://')
	_pages=$(num pages "$tmp/body")
	expect 200 "resume orig" PUT /v1/vms/orig/actions '{"action":"resume"}'
	eval "wall_$1=\$((\$(now) - t0))"
	echo "$me: $1: at $(get "wall_$1") s, console byte $(get "len_$1"), $(lines "$tmp/$1.at") lines, printk $(last_time "$tmp/$1.at") s; $_pages pages written in ${_ms:-?} ms"
}

# restore POINT: clone c-POINT of snapshot POINT; its console starts with
# orig's up to the point.
restore() {
	api POST /v1/vms "{\"snapshot\":\"$1\",\"name\":\"c-$1\"}"
	if [ "$code" != 201 ]; then
		[ "$code" != 000 ] || stuck_threads
		die "restore of $1: $code (000: no answer within $timeout s)"
	fi
	eval "point_c_$1=\$1 start_c_$1=\$(now)"
	echo "$me: c-$1: restored $(($(now) - t0 - $(get "wall_$1"))) s after its snapshot"
	fetch "c-$1"
	cmp -s -n "$(get "len_$1")" "$tmp/c-$1.con" "$tmp/$1.at" ||
		die "c-$1's console does not start with orig's up to the snapshot point"
}

# watch VM...: samples the VMs every 2 s until none is running or TIMEOUT
# has passed; $el is then how long that took.  A clone (c-POINT) must
# print a new kernel line within TIMEOUT of its restore, and not fail.
watch() {
	_t=$(now)
	_next=10
	while :; do
		el=$(($(now) - _t))
		_line=
		_running=0
		for v in "$@"; do
			fetch "$v"
			[ "$(state "$v")" != running ] || _running=1
			_line="$_line; $(progress "$v")"
			case $v in c-*) ;; *) continue ;; esac
			new "$v"
			_line="$_line (+$(lines "$tmp/$v.new"))"
			_v=$(echo "$v" | tr -- - _)
			if [ -z "$(get "first_$_v")" ] && [ "$(lines "$tmp/$v.new")" -gt 0 ]; then
				eval "first_$_v=\$((\$(now) - \$(get start_$_v)))"
				echo "$me: $v: its first new kernel line $(get "first_$_v") s after its restore"
			fi
			[ "$(state "$v")" != failed ] || die "$v failed: $(reason "$v")"
			if [ -z "$(get "first_$_v")" ]; then
				[ "$(state "$v")" = running ] || die "$v is $(state "$v") before a new kernel line: $(reason "$v")"
				[ "$(($(now) - $(get "start_$_v")))" -lt "$timeout" ] ||
					die "$v printed no new kernel line within $timeout s"
			fi
		done
		_line=${_line#; }
		if [ "$el" -ge "$_next" ]; then
			echo "$me: +$el s: $_line"
			_next=$((_next + 10))
		fi
		[ "$_running" = 1 ] && [ "$el" -lt "$timeout" ] || break
		sleep 2
	done
	echo "$me: after $el s: $_line"
	for v in "$@"; do
		api GET "/v1/vms/$v/paging"
		_r=$(reason "$v")
		echo "$me: $v: $(state "$v")${_r:+ ($_r)}; $(grep -o '"exits":{[^}]*}' "$tmp/$v.json" | tr '\n' ' ')pages loaded $(num pages_loaded "$tmp/body")"
		echo "$me: $v: $(grep '^\[' "$tmp/$v.con" | tail -n 1)"
	done
}

# check VM: what the clone VM printed past its point, against orig: $ostate
# and $oreason, how orig ended (running: it has not, or not on its own).
trouble='soft lockup|hard LOCKUP|rcu.*stall|clocksource.*unstable|Marking clocksource|timer doesn.t work|8254 timer not connected|APIC timer|TSC.*(unstable|warp)|Kernel panic|BUG: |Oops'
check() {
	_p=$(get "point_$(echo "$1" | tr -- - _)")
	_snap=$(last_time "$tmp/$_p.at")
	_ran=$(($(now) - $(get "start_$(echo "$1" | tr -- - _)")))
	if grep -E "$trouble" "$tmp/$1.new" > "$tmp/trouble"; then
		sed "s/^/$1: /" "$tmp/trouble"
		grep -qE "$trouble" "$tmp/orig.con" && echo "$me: (orig printed such lines too)"
		die "$1's console reports trouble past its snapshot point"
	fi
	# Its clock goes on from the snapshot's: never back, and no further
	# than the wall time orig had had at the snapshot and the clone has
	# run since, plus slack.
	grep -o '^\[ *[0-9]*\.[0-9]*\]' "$tmp/$1.con" | tr -d '[] ' | sort -c -n 2> /dev/null ||
		die "$1's printk times go back"
	_ct=$(last_time "$tmp/$1.con")
	[ "$_ct" -ge "$_snap" ] || die "$1's printk time $_ct s is before its snapshot's $_snap s"
	[ "$_ct" -le $(($(get "wall_$_p") + _ran + 5)) ] ||
		die "$1's printk time $_ct s jumped: orig had run $(get "wall_$_p") s at the snapshot, $1 $_ran s since"
	case "$(state "$1")" in
	running | exited) ;;
	crashed)
		[ "$ostate" = crashed ] && [ "$(reason "$1")" = "$oreason" ] ||
			die "$1 crashed ($(reason "$1")), orig is $ostate${oreason:+ ($oreason)}"
		;;
	*) die "$1 is $(state "$1"): $(reason "$1")" ;;
	esac
	# Where orig ended, the clone got as far: orig's last message (its
	# printk time left out) is in the clone's console past the point, and
	# the clone ended the same way.
	if [ "$ostate" != running ]; then
		_last=$(grep '^\[' "$tmp/orig.con" | tail -n 1 | sed 's/^\[ *[0-9.]*\] //')
		[ -z "$_last" ] || grep -qF -- "$_last" "$tmp/$1.new" ||
			die "orig ended after '$_last', which $1 never printed"
		[ "$(state "$1")" = "$ostate" ] || die "orig ended $ostate ($oreason), $1 is $(state "$1")"
	fi
	echo "$me: $1: ok"
}

opts="console=ttyS0 earlyprintk=serial,ttyS0,115200 noxsave clearcpuid=smap,cx16 ${KEVD_LINUX_EXTRA:-}"
echo "$me: $vmlinux with $vcpus vCPU(s), $mem MiB; each wait at most $timeout s"
t0=$(now)
expect 201 "create the Linux VM" POST /v1/vms "{\"name\":\"orig\",\"kernel\":\"vmlinux\",\"initrd\":\"initrd.gz\",\"memory_mib\":$mem,\"vcpus\":$vcpus,\"protocol\":\"pvh\",\"cmdline\":\"$opts\"}"

# Early points: the clones beside orig for TIMEOUT.
checked=0
clones=
for p in banner kvmclock; do
	case $p in
	banner) pat='^\[ *[0-9.]*\] Linux version ' ;;
	kvmclock) pat='kvm-clock: using sched offset' ;;
	esac
	take "$p" "$pat" || break
	clones="$clones c-$p"
done
for c in $clones; do
	restore "${c#c-}"
done
if [ -n "$clones" ]; then
	# shellcheck disable=SC2086
	watch orig $clones
	ostate=$(state orig) oreason=$(reason orig)
	for c in $clones; do
		check "$c"
		checked=$((checked + 1))
		expect 204 "delete $c" DELETE "/v1/vms/$c"
	done
fi

# A late point, before the kernel sets up its interrupts and timers
# (init_IRQ(), the PIT, the I/O APIC, x2APIC, the LAPIC timer) and well
# before it ends: orig runs alone from there to its end (TIMEOUT at most),
# then the clone alone.
if [ "$(state orig)" = running ] && take late 'rcu: Adjusting geometry for rcu_fanout_leaf' 'NR_IRQS:'; then
	watch orig
	ostate=$(state orig) oreason=$(reason orig) oel=$el
	if [ "$ostate" = running ]; then
		echo "$me: late: orig still running after $timeout s: the clone's end is not compared"
		expect 200 "stop orig" PUT /v1/vms/orig/actions '{"action":"stop"}'
		fetch orig
	fi
	restore late
	watch c-late
	echo "$me: late: orig took $oel s from the snapshot to its end ($ostate), c-late $el s ($(state c-late))"
	check c-late
	checked=$((checked + 1))
fi
[ "$checked" -gt 0 ] || { echo "$me: no snapshot point was reached: skipped"; exit 77; }
echo "$me: ok ($checked clones)"
