#!/bin/sh
# Fault injection (a build with --enable-fault-injection; skipped otherwise):
# system calls kevd depends on fail on purpose, and every time the VM ends
# failed with the reason, or the create fails with one line; nothing hangs
# (each run is bounded), and the daemon keeps serving other VMs.
set -eu
kevd="$top_builddir/kevd"
guest="$top_builddir/tests/guests/testguest.elf"
if ! "$kevd" version | grep -q 'fault injection: on'; then
	echo "faults.sh: built without --enable-fault-injection: skipped"
	exit 77
fi
if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "faults.sh: /dev/kvm cannot be opened: skipped"
	exit 77
fi
tmp=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || :; rm -rf "$tmp"' EXIT
fail() { echo "faults.sh: FAIL: $*"; cat "$tmp/err" 2>/dev/null; exit 1; }

# run EXPECTED_RC PATTERN INJECT [kevd run args...]
run() {
	want=$1 pattern=$2 inject=$3
	shift 3
	set +e
	KEVD_FAULT_INJECT=$inject timeout 60 "$kevd" run --kernel "$guest" --quiet "$@" > /dev/null 2> "$tmp/err"
	rc=$?
	set -e
	[ "$rc" -ne 124 ] || fail "$inject: hung"
	[ "$rc" -eq "$want" ] || fail "$inject: exit $rc, want $want"
	grep -q -e "$pattern" "$tmp/err" || fail "$inject: no '$pattern'"
	echo "faults.sh: $inject -> $(grep -m1 -e "$pattern" "$tmp/err")"
}

run 1 "failed: lazy paging failed: .*UFFDIO_COPY.*Input/output error" uffd_copy=3 --vcpus 2 --paging lazy-private --window 16 --window-max 16
run 1 "failed: lazy paging failed: .*injected read error" image_read=5 --vcpus 4 --window 1 --paging lazy-private
# Shared: a read into the cache that fails fails the VM the same way; an
# image cache entry that cannot be made fails the create in one line.
# (Fixed windows here and below: a read-ahead's failed read or copy only
# gives its pages back, tests/test_pager.c readahead_after_wake, so a
# growing window would make which read fails the VM a matter of timing.)
run 1 "failed: lazy paging failed: .*injected read error" image_read=5+ --vcpus 4 --window 16 --window-max 16
# A window whose read fails once: the half with its faulting page is read,
# the other half is given back, and the guest runs to its result.
set +e
KEVD_FAULT_INJECT=image_read=5 timeout 60 "$kevd" run --kernel "$guest" --vcpus 4 --window 16 --window-max 16 \
	--log-level debug > "$tmp/out" 2> "$tmp/err"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "image_read=5, window 16: exit $rc, want 1 (the guest's success)"
grep -q "injected read error; reading 0x" "$tmp/err" || fail "image_read=5, window 16: no retry"
grep -q "^result: ok" "$tmp/out" || fail "image_read=5, window 16: no 'result: ok'"
! grep -q "failed" "$tmp/err" || fail "image_read=5, window 16: $(grep -m1 failed "$tmp/err")"
echo "faults.sh: image_read=5 window 16 -> read alone, result: ok"
run 1 "image cache: memfd_create: Too many open files" cache_memfd=1
run 1 "failed: vcpu [0-9]: KVM_RUN: Bad address" kvm_run=20 --vcpus 2
run 1 "KVM_CREATE_VCPU 1: No space left on device" kvm_create_vcpu=2 --vcpus 4
run 1 "failed: lazy paging failed: pager: no memory for the state of guest page" state_alloc=30 --vcpus 2 --window 1
run 1 "registering guest pages .* with userfaultfd: Cannot allocate memory" uffd_register=1
[ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "a failed create is not one line"
# A memslot KVM refuses, registered in line (a small VM) or on the memory
# part's thread (256 MiB and more; the second slot: RAM above 4 GiB).
run 1 "KVM_SET_USER_MEMORY_REGION (low RAM): Cannot allocate memory" kvm_memslot=1
run 1 "KVM_SET_USER_MEMORY_REGION (high RAM): Cannot allocate memory" kvm_memslot=2 --memory 4200
[ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "a failed create is not one line"
# An interrupted KVM_CREATE_VM is asked again: the VM runs to its end.
run 1 "exited: guest wrote 0x0 to the debug exit port" kvm_create_vm=1

# Through the daemon: the first VM's 40th copy fails; the daemon answers,
# and a second VM runs to its end.
mkdir "$tmp/images"
cp "$guest" "$tmp/images/g.elf"
cat > "$tmp/kevd.conf" <<CONF
[api]
socket = $tmp/s
[paths]
image_dir = $tmp/images
state_dir = $tmp
runtime_dir = $tmp
CONF
KEVD_FAULT_INJECT=uffd_copy=40 "$kevd" serve --config "$tmp/kevd.conf" 2> "$tmp/daemon.err" &
pid=$!
for _ in $(seq 100); do [ -S "$tmp/s" ] && break; sleep 0.05; done
api() { curl -sS --unix-socket "$tmp/s" -H 'Content-Type: application/json' "$@"; }
api -X POST -d '{"name":"a","kernel":"g.elf","cmdline":"touch=all","window_pages":1,"window_max_pages":1,"paging":"lazy-private"}' http://l/v1/vms > /dev/null
for _ in $(seq 200); do api http://l/v1/vms/a | grep -q '"state":"failed"' && break; sleep 0.05; done
api http://l/v1/vms/a | grep -q '"state":"failed","reason":"lazy paging failed: ' || fail "VM a did not fail"
api -X POST -d '{"name":"b","kernel":"g.elf","cmdline":"touch=percent:20"}' http://l/v1/vms > /dev/null
for _ in $(seq 200); do api http://l/v1/vms/b | grep -q '"state":"exited"' && break; sleep 0.05; done
api http://l/v1/vms/b | grep -q '"exit_status":1' || fail "VM b did not run to its end"
api -X DELETE http://l/v1/vms/a
api -X DELETE http://l/v1/vms/b
kill "$pid"
wait "$pid" || fail "daemon exit status $?"
pid=

# A spare VM that cannot be made: the boot's memslot is the first
# KVM_SET_USER_MEMORY_REGION, the spare its snapshot asks for the second.
# The restore then makes its VM itself, and runs.
KEVD_FAULT_INJECT=kvm_memslot=2 "$kevd" serve --config "$tmp/kevd.conf" 2> "$tmp/daemon.err" &
pid=$!
for _ in $(seq 100); do [ -S "$tmp/s" ] && api http://l/v1/health > /dev/null 2>&1 && break; sleep 0.05; done
api -X POST -d '{"name":"c","kernel":"g.elf","cmdline":"touch=none work=100000"}' http://l/v1/vms > /dev/null
for _ in $(seq 200); do api http://l/v1/vms/c/console | grep -q 'work: round 100$' && break; sleep 0.05; done
api -X POST -d '{"name":"cs","stop":true}' http://l/v1/vms/c/snapshot | grep -q '"name":"cs"' || fail "no snapshot cs"
for _ in $(seq 100); do grep -q 'no spare VM' "$tmp/daemon.err" && break; sleep 0.05; done
grep -q 'no spare VM of 128 MiB with 1 vCPU(s): .*KVM_SET_USER_MEMORY_REGION (low RAM): Cannot allocate memory' \
	"$tmp/daemon.err" || fail "the spare's failure was not logged: $(cat "$tmp/daemon.err")"
api -X POST -d '{"name":"r","snapshot":"cs"}' http://l/v1/vms | grep -q '"spare":false' || fail "restore r"
for _ in $(seq 200); do api http://l/v1/vms/r/console | grep -q 'work: round [1-9][0-9]*00$' && break; sleep 0.05; done
api http://l/v1/vms/r | grep -q '"state":"running"' || fail "restore r does not run: $(api http://l/v1/vms/r)"
echo "faults.sh: kvm_memslot=2 (a spare) -> $(grep -m1 'no spare VM' "$tmp/daemon.err")"
kill "$pid"
wait "$pid" || fail "daemon exit status $?"
pid=

# A create that fails once its vCPU threads exist: an answer, and no VM
# "stopped" (nor its on_end) for a VM that never was.  No snapshot left,
# so no spare is made at start.
rm -rf "$tmp/snapshots"
KEVD_FAULT_INJECT=kvm_create_vcpu=2 "$kevd" serve --config "$tmp/kevd.conf" 2> "$tmp/daemon.err" &
pid=$!
for _ in $(seq 100); do [ -S "$tmp/s" ] && api http://l/v1/health > /dev/null 2>&1 && break; sleep 0.05; done
api -X POST -d '{"name":"f","kernel":"g.elf","vcpus":2}' http://l/v1/vms | grep -q 'KVM_CREATE_VCPU 1: No space left' ||
	fail "create f did not fail on its second vCPU"
api http://l/v1/vms | grep -q '"f"' && fail "VM f is listed"
grep -q "vm 'f'.*stopped" "$tmp/daemon.err" && fail "a failed create logged a stop: $(cat "$tmp/daemon.err")"
echo "faults.sh: kvm_create_vcpu=2 (daemon) -> $(grep -m1 'KVM_CREATE_VCPU' "$tmp/daemon.err" || echo 500)"
kill "$pid"
wait "$pid" || fail "daemon exit status $?"
pid=

# A /metrics render out of memory: every scrape it was for is answered 500
# with a fault_message, and the next render serves (and counts the one
# that failed).
KEVD_FAULT_INJECT=metrics_render=1 "$kevd" serve --config "$tmp/kevd.conf" 2> "$tmp/daemon.err" &
pid=$!
for _ in $(seq 100); do [ -S "$tmp/s" ] && api http://l/v1/health > /dev/null 2>&1 && break; sleep 0.05; done
code=$(curl -sS --unix-socket "$tmp/s" -o "$tmp/m1" -w '%{http_code}' http://l/metrics)
[ "$code" = 500 ] && grep -q '"fault_message":"cannot render the metrics: Cannot allocate memory"' "$tmp/m1" ||
	fail "a failed render answered $code: $(cat "$tmp/m1")"
api http://l/metrics | grep -qx 'kevd_metrics_renders_total 1' || fail "the scrape after a failed render"
echo "faults.sh: metrics_render=1 -> 500 $(cat "$tmp/m1")"
kill "$pid"
wait "$pid" || fail "daemon exit status $?"
pid=
echo "faults.sh: ok"
