#!/bin/sh
# Work off the event loop, through the real daemon: while a slow create
# (a 1 TiB guest: KVM takes up to 10 s to set up its memory slot here) is
# under way, /v1/health answers at once, its name is taken (409), and so is
# the VM of a delete under way (409 busy); a client that gives up does not
# lose its VM; a delete answers and frees the VM off the loop.  Skips (77)
# without /dev/kvm or curl.
set -eu
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-$top_builddir}
kevd="$top_builddir/kevd"
guest="$top_builddir/tests/guests/testguest.elf"
me=api_async.sh

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "$me: /dev/kvm cannot be opened: skipped"
	exit 77
fi
command -v curl > /dev/null 2>&1 || { echo "$me: curl is not installed: skipped"; exit 77; }

. "$top_srcdir/tests/lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-async-XXXXXX")
pid= bg=
cleanup() {
	[ -z "$bg" ] || kill "$bg" 2> /dev/null || :
	kevd_stop "$pid"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
die() {
	echo "$me: FAIL: $*"
	for f in body big.out; do [ -f "$tmp/$f" ] && sed "s/^/$f: /" "$tmp/$f"; done
	[ -f "$tmp/kevd.log" ] && sed 's/^/kevd: /' "$tmp/kevd.log"
	exit 1
}

kevd_images "$tmp/images" "$guest"
sock="$tmp/kevd.sock"
kevd_conf "$tmp/kevd.conf" "$sock" "$tmp"
printf '[limits]\nmax_memory_mib = 1048576\nmax_total_memory_mib = 4194304\n' >> "$tmp/kevd.conf"
"$kevd" serve --config "$tmp/kevd.conf" > "$tmp/kevd.log" 2>&1 &
pid=$!
kevd_ready "$pid" curl -sf --unix-socket "$sock" http://localhost/v1/health || { pid=; die "kevd did not start"; }

api() {
	code=$(curl -sS --max-time 30 --unix-socket "$sock" -X "$1" -H 'Content-Type: application/json' \
		${3:+-d "$3"} -o "$tmp/body" -w '%{http_code}' "http://localhost$2") || code=000
}
# A slow create in the background (KVM's memory slot set-up for 1 TiB takes
# from a fraction of a second to 10 s here); the loop answers meanwhile.
big='{"name":"big","kernel":"guest.elf","memory_mib":1048576,"cmdline":"touch=none bss=0 mode=loop"}'
curl -sS --max-time 60 --unix-socket "$sock" -X POST -H 'Content-Type: application/json' -d "$big" \
	-o "$tmp/big.out" -w '%{http_code}' http://localhost/v1/vms > "$tmp/big.code" 2>&1 &
bg=$!
sleep 0.1
overlapped=no
slow=0
for _ in 1 2 3 4 5 6 7 8 9 10; do
	kill -0 "$bg" 2> /dev/null && overlapped=yes || break
	t=$(curl -sS --max-time 5 --unix-socket "$sock" -o /dev/null -w '%{time_total}' http://localhost/v1/health)
	awk -v t="$t" 'BEGIN { exit !(t > 0.5) }' && slow=$((slow + 1))
done
[ "$slow" = 0 ] || die "$slow health requests took over 0.5 s during a create"
api POST /v1/vms "$big"
if kill -0 "$bg" 2> /dev/null; then
	[ "$code" = 409 ] || die "a second create named 'big' during the first: $code, want 409"
	grep -q "a VM named 'big' exists" "$tmp/body" || die "409 without the name"
fi
[ "$overlapped" = yes ] || echo "$me: the create took under 0.1 s this time: health during it not measured"
wait "$bg" || die "the background create failed"
bg=
[ "$(cat "$tmp/big.code")" = 201 ] || die "the slow create answered $(cat "$tmp/big.code")"
grep -q '"name":"big"' "$tmp/big.out" || die "the 201 is not the VM"

# A client that gives up: the VM is made all the same.
code=$(curl -sS --max-time 0.3 --unix-socket "$sock" -X POST -H 'Content-Type: application/json' \
	-d '{"name":"left","kernel":"guest.elf","memory_mib":1048576,"cmdline":"touch=none bss=0"}' \
	-o /dev/null -w '%{http_code}' http://localhost/v1/vms 2> /dev/null) || :
# 000: it gave up first (the case of interest); 201: the create was faster.
[ "$code" = 000 ] || [ "$code" = 201 ] || die "the impatient create answered $code"
i=0
until api GET /v1/vms/left && [ "$code" = 200 ]; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || die "the VM of a client that left never appeared"
	sleep 0.1
done

# Two deletes at once: one deletes (204); the other finds the VM busy
# (409) while the first stops it, or gone (404) once it is out of the
# registry.  Health answers meanwhile.
curl -sS --max-time 60 --unix-socket "$sock" -X DELETE -o "$tmp/del.body" -w '%{http_code}' \
	http://localhost/v1/vms/big > "$tmp/del.code" 2>&1 &
bg=$!
api DELETE /v1/vms/big
first=$code
cp "$tmp/body" "$tmp/first.body"
api GET /v1/health
[ "$code" = 200 ] || die "health during a delete: $code"
wait "$bg" || :
bg=
second=$(cat "$tmp/del.code")
case "$first $second" in
"204 409" | "204 404") loser=$second; grep -q . "$tmp/del.body" || die "the losing delete has no body" ;;
"409 204" | "404 204") loser=$first ;;
*) die "two deletes answered $first and $second" ;;
esac
[ "$loser" != 409 ] || cat "$tmp/first.body" "$tmp/del.body" | grep -q "is busy: a start, stop, pause, resume, delete or snapshot of it is under way" || die "the 409 does not say busy"
api GET /v1/vms/big
[ "$code" = 404 ] || die "a deleted VM answers $code"
api DELETE /v1/vms/left
[ "$code" = 204 ] || die "delete left: $code"
api GET /v1/health
grep -q '"vms":0' "$tmp/body" || die "VMs left after the deletes"
kill -TERM "$pid"
wait "$pid" || die "kevd exited $? on SIGTERM"
pid=
echo "$me: ok"
