#!/bin/sh
# Boot slots through the real daemon, run on one CPU (taskset) with
# boot_slots_per_cpu = 1, so one slot: a guest that never idles holds it
# and the next VM is created and "running" but waits in line (no first
# run, an empty console, counted in /metrics); a VM in line can be paused,
# resumed and deleted at once; the holder's stop lets the next one in,
# which reports how long it waited; a guest that idles (HLT) gives its slot
# back at once; a reload shortens the lease, and a lease that runs out
# lets the next one in without the holder doing anything.  Skips (77)
# without /dev/kvm, curl or taskset.
set -eu
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-$top_builddir}
kevd="$top_builddir/kevd"
guest="$top_builddir/tests/guests/testguest.elf"
me=bootslots.sh

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "$me: /dev/kvm cannot be opened: skipped"
	exit 77
fi
command -v curl > /dev/null 2>&1 || { echo "$me: curl is not installed: skipped"; exit 77; }
command -v taskset > /dev/null 2>&1 || { echo "$me: taskset is not installed: skipped"; exit 77; }

. "$top_srcdir/tests/lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-bootslots-XXXXXX")
pid=
cleanup() {
	kevd_stop "$pid"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
die() {
	echo "$me: FAIL: $*"
	[ -f "$tmp/body" ] && sed 's/^/body: /' "$tmp/body"
	[ -f "$tmp/kevd.log" ] && sed 's/^/kevd: /' "$tmp/kevd.log"
	exit 1
}

kevd_images "$tmp/images" "$guest"
sock="$tmp/kevd.sock"
kevd_conf "$tmp/kevd.conf" "$sock" "$tmp"
conf() {
	kevd_conf "$tmp/kevd.conf" "$sock" "$tmp"
	printf '[limits]\nboot_slots_per_cpu = 1\nboot_slot_ms = %s\n[snapshot]\nrecord_ms = 0\n' "$1" >> "$tmp/kevd.conf"
}
conf 60000
taskset -c 0 "$kevd" serve --config "$tmp/kevd.conf" > "$tmp/kevd.log" 2>&1 &
pid=$!
kevd_ready "$pid" curl -sf --unix-socket "$sock" http://localhost/v1/health || { pid=; die "kevd did not start"; }

api() {
	code=$(curl -sS --max-time 30 --unix-socket "$sock" -X "$1" -H 'Content-Type: application/json' \
		${3:+-d "$3"} -o "$tmp/body" -w '%{http_code}' "http://localhost$2") || code=000
}
expect() {
	[ "$code" = "$1" ] || die "$2: status $code, not $1"
}
# field NAME: the number (or null) of "NAME" in the last body.
field() {
	sed -n "s/.*\"$1\":\\([0-9a-z]*\\).*/\\1/p" "$tmp/body"
}
metric() {
	curl -sS --unix-socket "$sock" http://localhost/metrics | sed -n "s/^$1 //p"
}
create() {
	api POST /v1/vms "{\"name\":\"$1\",\"kernel\":\"guest.elf\",\"memory_mib\":64,\"vcpus\":${3:-1},\"cmdline\":\"$2\"}"
	expect 201 "create $1"
}
# first_run VM: the VM's create_to_first_run_ns (null while it waits).
first_run() {
	api GET "/v1/vms/$1"
	expect 200 "GET $1"
	field create_to_first_run_ns
}
# wait_run VM TENTHS: until the VM has run, TENTHS tenths of a second at most.
wait_run() {
	i=0
	while [ "$(first_run "$1")" = null ]; do
		i=$((i + 1))
		[ "$i" -le "$2" ] || die "$1 never ran"
		sleep 0.1
	done
}

[ "$(metric kevd_boot_slots)" = 1 ] || die "one CPU, one slot per CPU: kevd_boot_slots is '$(metric kevd_boot_slots)'"

# A guest that never idles holds the slot; it did not wait for it.
create holder "touch=none bss=0 mode=loop"
wait_run holder 50
[ "$(field boot_slot_wait_ns)" = 0 ] || die "holder waited $(field boot_slot_wait_ns) ns for a free slot"

# The next one (two vCPUs: neither may run before vCPU 0 has the slot) is
# made and running, but in line.
create waiter "touch=none bss=0 mode=idle" 2
grep -q '"state":"running"' "$tmp/body" || die "waiter is not running"
sleep 0.5
[ "$(first_run waiter)" = null ] || die "waiter ran although the only slot is held"
[ "$(field boot_slot_wait_ns)" = null ] || die "waiter has a wait before it ran"
! grep -o '"exits":{[^}]*}' "$tmp/body" | grep -q '":[1-9]' || die "a vCPU of waiter left the guest while in line"
api GET /v1/vms/waiter/console
[ ! -s "$tmp/body" ] || die "waiter printed while in line"
[ "$(metric kevd_boot_slot_queue)" = 1 ] || die "kevd_boot_slot_queue is '$(metric kevd_boot_slot_queue)', not 1"
[ "$(metric kevd_boot_slots_busy)" = 1 ] || die "kevd_boot_slots_busy is not 1"

# In line, it pauses and resumes (it has not entered the guest), and a
# third one in line behind it is deleted at once.
api PUT /v1/vms/waiter/actions '{"action":"pause"}'
expect 200 "pause in line"
grep -q '"state":"paused"' "$tmp/body" || die "waiter did not pause"
api PUT /v1/vms/waiter/actions '{"action":"resume"}'
expect 200 "resume in line"
create third "touch=none bss=0 mode=idle"
[ "$(metric kevd_boot_slot_queue)" = 2 ] || die "two in line: kevd_boot_slot_queue is '$(metric kevd_boot_slot_queue)'"
t0=$(date +%s)
api DELETE /v1/vms/third
expect 204 "delete in line"
[ $(($(date +%s) - t0)) -le 3 ] || die "a delete of a VM in line took $(($(date +%s) - t0)) s"
[ "$(metric kevd_boot_slot_queue)" = 1 ] || die "after the delete: kevd_boot_slot_queue is '$(metric kevd_boot_slot_queue)'"

# A restore does not wait in line: a clone of the holder runs at once
# while waiter still waits.
api POST /v1/vms/holder/snapshot '{"name":"s1"}'
expect 201 "snapshot holder"
api POST /v1/vms '{"name":"clone","snapshot":"s1"}'
expect 201 "restore clone"
wait_run clone 50
[ "$(field boot_slot_wait_ns)" = 0 ] || die "the clone waited $(field boot_slot_wait_ns) ns for a boot slot"
[ "$(first_run waiter)" = null ] || die "waiter ran although the only slot is held"
api DELETE /v1/vms/clone
expect 204 "delete clone"

# The holder's stop gives the slot to the one in line, which says how
# long it waited (at least the half second above).
api PUT /v1/vms/holder/actions '{"action":"stop"}'
expect 200 "stop holder"
wait_run waiter 50
w=$(field boot_slot_wait_ns)
[ "$w" -ge 500000000 ] || die "waiter waited $w ns, less than it was kept in line"
ck=0
while ! curl -sS --unix-socket "$sock" http://localhost/v1/vms/waiter/console | grep -q 'result:'; do
	ck=$((ck + 1)); [ "$ck" -le 100 ] || die "waiter never printed its result"; sleep 0.1
done
[ "$(metric kevd_boot_slot_waits_total)" = 1 ] || die "kevd_boot_slot_waits_total is not 1 (the VM deleted in line never got a slot)"

# waiter idles (mode=idle): its slot is back, and the next VM runs at once.
create next "touch=none bss=0 mode=idle"
wait_run next 50
[ "$(metric kevd_boot_slot_expired_total)" = 0 ] || die "a lease of 60 s ran out"

# A reload to a short lease: a guest that never idles holds the slot only
# that long, and the next one runs without it stopping.
conf 300
kill -HUP "$pid"
i=0
while [ "$(metric kevd_boot_slot_lease_seconds)" != 0.300 ]; do
	i=$((i + 1)); [ "$i" -le 50 ] || die "the reload did not change the lease"; sleep 0.1
done
create spinner "touch=none bss=0 mode=loop"
wait_run spinner 50
create after "touch=none bss=0 mode=idle"
wait_run after 100
api GET /v1/vms/spinner
grep -q '"state":"running"' "$tmp/body" || die "spinner did not keep running"
[ "$(metric kevd_boot_slot_expired_total)" -ge 1 ] || die "no lease ran out"
for vm in holder waiter next spinner after; do
	api DELETE "/v1/vms/$vm"
	expect 204 "delete $vm"
done
echo "$me: ok"
