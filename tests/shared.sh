#!/bin/sh
# Shared images through the real daemon: 8 VMs x 4 vCPUs of the test guest
# started together read every page of the image from the file once in
# total (the image's pages_filled is the sum of the VMs' loads, at most
# the image's pages, and its bytes read at most the file's), every guest's
# checksums right; GET /v1/images and the kevd_image_* metrics say so; a
# VM's writes (the test guest's write=1) stay its own while a VM booted
# after them reads the image's bytes; a lazy-private VM is not shared; a
# bad "paging" is refused; and once the
# VMs are deleted the entry goes after [pager] cache_keep_s.  Skips (77)
# without /dev/kvm or curl.
set -eu
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-$top_builddir}
kevd="$top_builddir/kevd"
guest="$top_builddir/tests/guests/testguest.elf"
me=shared.sh

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "$me: /dev/kvm cannot be opened: skipped"
	exit 77
fi
command -v curl > /dev/null 2>&1 || { echo "$me: curl is not installed: skipped"; exit 77; }

. "$top_srcdir/tests/lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-shared-XXXXXX")
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
printf '[pager]\ncache_keep_s = 1\n[limits]\nmax_vcpus = 4\n' >> "$tmp/kevd.conf"
"$kevd" serve --config "$tmp/kevd.conf" > "$tmp/kevd.log" 2>&1 &
pid=$!
kevd_ready "$pid" curl -sf --unix-socket "$sock" http://localhost/v1/health || { pid=; die "kevd did not start"; }

# api METHOD PATH [BODY]: the answer in $tmp/body, the status in $code.
# wait_console VM PATTERN WHAT: until VM's console has a line matching
# PATTERN (30 s at most); the console is then in $tmp/body.
wait_console() {
	_t=0
	until api GET "/v1/vms/$1/console" && grep -q "$2" "$tmp/body"; do
		_t=$((_t + 1))
		[ "$_t" -lt 300 ] || die "$1: $3"
		sleep 0.1
	done
}
api() {
	if [ $# -gt 2 ]; then
		code=$(curl -sS --max-time 30 --unix-socket "$sock" -X "$1" -H 'Content-Type: application/json' \
			-d "$3" -o "$tmp/body" -w '%{http_code}' "http://localhost$2") || code=000
	else
		code=$(curl -sS --max-time 30 --unix-socket "$sock" -X "$1" -o "$tmp/body" -w '%{http_code}' \
			"http://localhost$2") || code=000
	fi
}
# num KEY: the first number KEY has in $tmp/body.
num() {
	grep -o "\"$1\": *[0-9]*" "$tmp/body" | head -n 1 | sed 's/.*: *//'
}

api POST /v1/vms '{"kernel":"guest.elf","paging":"shared"}'
[ "$code" = 400 ] || die "paging \"shared\": $code, want 400"
grep -q '"fault_message":.*lazy-private' "$tmp/body" || die "paging \"shared\": no fault_message naming the modes"

i=0
while [ "$i" -lt 8 ]; do
	api POST /v1/vms "{\"name\":\"s$i\",\"kernel\":\"guest.elf\",\"vcpus\":4,\"memory_mib\":64,\"cmdline\":\"touch=all mode=idle\"}"
	[ "$code" = 201 ] || die "create s$i: $code"
	i=$((i + 1))
done
# All finish their checks and idle, holding the image (each within a few
# seconds here).
for i in 0 1 2 3 4 5 6 7; do
	wait_console "s$i" '^idle: ' "did not finish in 30 s"
	grep -q 'result: ok' "$tmp/body" || die "s$i: guest checks failed"
done

loads=0 bytes=0
for i in 0 1 2 3 4 5 6 7; do
	api GET "/v1/vms/s$i/paging"
	grep -q '"backing":"shared"' "$tmp/body" || die "s$i is not shared"
	[ "$(num load_failures)" = 0 ] || die "s$i: load failures"
	[ "$(num pages_private)" -lt 64 ] || die "s$i: $(num pages_private) private image pages (the guest writes only a few)"
	loads=$((loads + $(num pages_loaded)))
	bytes=$((bytes + $(num bytes_read)))
done

api GET /v1/images
[ "$code" = 200 ] || die "GET /v1/images: $code"
[ "$(grep -o '"id":' "$tmp/body" | wc -l)" = 1 ] || die "want one image entry"
filled=$(num pages_filled) pages=$(num image_pages) read=$(num bytes_read) size=$(num size)
[ "$(num vms)" = 8 ] || die "the image is held by $(num vms) VMs, want 8"
[ "$filled" = "$loads" ] || die "the image filled $filled pages, the VMs loaded $loads"
[ "$read" = "$bytes" ] || die "the image read $read bytes, the VMs $bytes"
[ "$filled" -le "$pages" ] || die "$filled pages filled of $pages: some page was read twice"
[ "$read" -le "$size" ] || die "$read bytes read from a file of $size"
[ "$filled" -gt 8000 ] || die "only $filled pages filled by touch=all"
[ "$(num resident_bytes)" -ge $((filled * 4096)) ] || die "resident $(num resident_bytes) < $filled pages"
echo "$me: 8 VMs x 4 vCPUs: $filled of $pages pages read once ($read bytes), $loads pages loaded over the VMs"

api GET /metrics
grep -q '^kevd_image_pages_filled_total{id="[0-9a-f]*",image="guest.elf"} '"$filled"'$' "$tmp/body" ||
	die "metrics: no kevd_image_pages_filled_total of $filled"
grep -q '^kevd_image_vms{id="[0-9a-f]*",image="guest.elf"} 8$' "$tmp/body" || die "metrics: kevd_image_vms is not 8"

# Isolation: A overwrites every data page it touched (write=1) and stays;
# B, started after A wrote, reads the image's bytes (its checks pass), and
# A's writes are A's own pages.
api POST /v1/vms '{"name":"wa","kernel":"guest.elf","cmdline":"touch=all write=1 mode=idle"}'
[ "$code" = 201 ] || die "create wa: $code"
wait_console wa '^idle: ' "did not finish its writes"
grep -q '^write: pages=8192 bad=0$' "$tmp/body" || die "wa: the writes did not read back"
grep -q '^result: ok$' "$tmp/body" || die "wa: result"
api POST /v1/vms '{"name":"wb","kernel":"guest.elf","cmdline":"touch=all mode=idle"}'
[ "$code" = 201 ] || die "create wb: $code"
wait_console wb '^idle: ' "did not finish"
grep -q '^result: ok$' "$tmp/body" || die "wb, started after wa wrote, read altered image pages"
api GET /v1/vms/wa/paging
[ "$(num pages_private)" -ge 8192 ] || die "wa's writes are not private pages ($(num pages_private))"
api GET /v1/vms/wb/paging
[ "$(num pages_private)" -lt 64 ] || die "wb has $(num pages_private) private pages"
for v in wa wb; do
	api DELETE "/v1/vms/$v"
	[ "$code" = 204 ] || die "delete $v: $code"
done
echo "$me: isolation: a VM's writes stayed its own"

api POST /v1/vms '{"name":"p","kernel":"guest.elf","paging":"lazy-private","cmdline":"touch=all"}'
[ "$code" = 201 ] || die "create lazy-private: $code"
sleep 1
api GET /v1/vms/p/paging
grep -q '"backing":"private"' "$tmp/body" || die "lazy-private VM is shared"
grep -q '"mode":"lazy-private"' "$tmp/body" || die "lazy-private VM's mode"
# Once it has ended it lets go of its memory and keeps its statistics.
t=0
until api GET /v1/vms/p/paging && grep -q '"pages_mapped":null' "$tmp/body"; do
	t=$((t + 1))
	[ "$t" -lt 100 ] || die "p ended but still holds its memory"
	sleep 0.1
done
[ "$(num pages_loaded)" -gt 8000 ] || die "p's statistics were not kept"
api GET "/v1/vms/p/translate?gpa=0x100000"
[ "$code" = 409 ] || die "translate on a released VM: $code, want 409"
api GET /v1/images
[ "$(num vms)" = 8 ] || die "a lazy-private VM took the shared image"

for v in s0 s1 s2 s3 s4 s5 s6 s7 p; do
	api DELETE "/v1/vms/$v"
	[ "$code" = 200 ] || [ "$code" = 204 ] || die "delete $v: $code"
done
# Unused now: still kept (vms 0), or already let go (keep time 1 s).  A
# delete answers once the VM is out of the registry; its memory, and its
# hold on the image, go on a worker right after.
t=0
until api GET /v1/images && { [ "$(num vms)" = 0 ] || grep -q '"images":\[\]' "$tmp/body"; }; do
	t=$((t + 1))
	[ "$t" -lt 50 ] || die "deleted VMs still hold the image"
	sleep 0.1
done
sleep 2.5
api GET /v1/images
grep -q '"images":\[\]' "$tmp/body" || die "the unused image was not let go after cache_keep_s"
echo "$me: ok"
