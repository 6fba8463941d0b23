#!/bin/sh
# `kevd run --restore DIR` end to end: a daemon takes a snapshot of the test
# guest in the middle of its work= phase, and the foreground restore of
# that directory prints the work digest an uninterrupted `kevd run` of the
# same command line prints, with its exit status, without booting again;
# the kernel found beneath --image-dir or from the current directory,
# lazily and eagerly, the JSON report naming the snapshot.  Then one-line
# errors and status 1 for a missing, corrupt or truncated snapshot and for
# a kernel that is not the file the snapshot was taken over, and 2 for
# options a restore does not take.  Skips (77) without /dev/kvm or curl.
set -eu
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-$top_builddir}
kevd="$top_builddir/kevd"
guest="$top_builddir/tests/guests/testguest.elf"
me=run_restore.sh
work="work=300"

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "$me: /dev/kvm cannot be opened: skipped"
	exit 77
fi
command -v curl > /dev/null 2>&1 || { echo "$me: curl is not installed: skipped"; exit 77; }
for f in "$kevd" "$guest"; do
	[ -r "$f" ] || { echo "$me: $f is missing"; exit 1; }
done

. "$top_srcdir/tests/lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-restore-XXXXXX")
pid=
cleanup() {
	kevd_stop "$pid"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
die() {
	echo "$me: FAIL: $*"
	for f in out err; do [ -f "$tmp/$f" ] && sed "s/^/$f: /" "$tmp/$f"; done
	[ -f "$tmp/kevd.log" ] && sed 's/^/kevd: /' "$tmp/kevd.log"
	exit 1
}
api() {  # METHOD PATH [BODY]: the answer's body on stdout, its status in $tmp/status
	if [ $# -gt 2 ]; then
		curl -s -o "$tmp/answer" -w '%{http_code}' --unix-socket "$sock" -X "$1" \
			-H 'Content-Type: application/json' -d "$3" "http://localhost$2" > "$tmp/status" || :
	else
		curl -s -o "$tmp/answer" -w '%{http_code}' --unix-socket "$sock" -X "$1" "http://localhost$2" \
			> "$tmp/status" || :
	fi
	cat "$tmp/answer"
}
# run EXPECTED-STATUS ARGS...: kevd run, stdout in $tmp/out, stderr in $tmp/err.
run() {
	want=$1
	shift
	rc=0
	timeout 120 "$kevd" run "$@" > "$tmp/out" 2> "$tmp/err" || rc=$?
	[ "$rc" = "$want" ] || die "kevd run $*: exit $rc, not $want"
}
result() { sed -n 's/^work: result=\(0x[0-9a-f]\{16\}\)$/\1/p' "$tmp/out"; }
one_line() {  # PATTERN: stderr is one line and holds it
	[ "$(wc -l < "$tmp/err")" = 1 ] || die "stderr is not one line"
	grep -q -e "$1" "$tmp/err" || die "stderr lacks '$1'"
}

# --- the reference: the same command line, never interrupted
kevd_images "$tmp/images" "$guest"
rc=0
"$kevd" run --kernel "$tmp/images/guest.elf" --cmdline "$work" > "$tmp/out" 2> "$tmp/err" || rc=$?
ref_rc=$rc
ref=$(result)
[ -n "$ref" ] || die "the uninterrupted run printed no work result (exit $rc)"

# --- a snapshot in the middle of the work, taken by a daemon
sock="$tmp/kevd.sock"
kevd_conf "$tmp/kevd.conf" "$sock" "$tmp"
"$kevd" serve --config "$tmp/kevd.conf" > "$tmp/kevd.log" 2>&1 &
pid=$!
kevd_ready "$pid" curl -sf --unix-socket "$sock" http://localhost/v1/health || { pid=; die "kevd did not start"; }
api POST /v1/vms "{\"name\":\"w\",\"kernel\":\"guest.elf\",\"cmdline\":\"$work\"}" > /dev/null
[ "$(cat "$tmp/status")" = 201 ] || die "create: HTTP $(cat "$tmp/status")"
i=0
until api GET /v1/vms/w/console | grep -q '^work: rounds='; do
	i=$((i + 1))
	[ "$i" -lt 400 ] || die "the guest did not reach its work phase in 20 s"
	sleep 0.05
done
api POST /v1/vms/w/snapshot '{"name":"S","stop":true}' > "$tmp/out"
[ "$(cat "$tmp/status")" = 201 ] || die "snapshot: HTTP $(cat "$tmp/status"): $(cat "$tmp/out")"
# Taken mid-work: the daemon's VM had not printed its result yet.
api GET /v1/vms/w/console | grep -q '^work: result=' && die "the VM had finished before its snapshot"
kevd_stop "$pid"
pid=
snap="$tmp/snapshots/S"
[ -r "$snap/manifest.json" ] || die "no $snap/manifest.json"

# --- the restore: the same digest and status, the console going on from
# the snapshot (no second boot)
run "$ref_rc" --restore "$snap" --image-dir "$tmp/images"
[ "$(result)" = "$ref" ] || die "restored: work result '$(result)', uninterrupted $ref"
grep -q '^testguest:' "$tmp/out" && die "the restore booted the guest again"
grep -q "^    restored from snapshot 'S' in '$snap'$" "$tmp/err" || die "the report does not name the snapshot"
grep -q "^--- kevd: vm 'run' exited: guest wrote 0x0 to the debug exit port" "$tmp/err" || die "no end line"
# Eagerly, and with the JSON report.
run "$ref_rc" --restore "$snap/" --image-dir "$tmp/images" --paging eager --json
[ "$(result)" = "$ref" ] || die "restored eagerly: work result '$(result)', uninterrupted $ref"
grep -q "\"restored_from\": \"$snap/\"" "$tmp/out" || die "the JSON report lacks restored_from"
grep -q '"snapshot": "S"' "$tmp/out" || die "the JSON report's config lacks the snapshot's name"
grep -q '"mode": "eager"' "$tmp/out" || die "the JSON report is not eager"
# Without --image-dir the manifest's kernel path is the current directory's.
rc=0
(cd "$tmp/images" && exec "$kevd" run --restore ../snapshots/S --paging lazy-private > "$tmp/out" 2> "$tmp/err") ||
	rc=$?
[ "$rc" = "$ref_rc" ] || die "restored from the image directory: exit $rc, not $ref_rc"
[ "$(result)" = "$ref" ] || die "restored from the image directory: work result '$(result)', uninterrupted $ref"

# --- what a restore does not take: 2
run 2 --restore "$snap" --kernel "$tmp/images/guest.elf"
one_line "^kevd run: --kernel comes from the snapshot"
run 2 --restore "$snap" --cmdline work=1
one_line "^kevd run: --cmdline comes from the snapshot"
for o in "--memory 64" "--vcpus 2" "--protocol pvh" "--ap-start sipi" "--initrd $tmp/x"; do
	# shellcheck disable=SC2086
	run 2 --restore "$snap" $o
	one_line "comes from the snapshot"
done
run 2 --kernel "$tmp/images/guest.elf" --image-dir "$tmp/images"
one_line "^kevd run: --image-dir goes with --restore"
run 2 --restore

# --- bad snapshots and images: 1, one line
run 1 --restore "$tmp/nope"
one_line "^kevd: snapshot directory '$tmp/nope': No such file or directory$"
run 1 --restore "$tmp/images/guest.elf"
one_line "^kevd: snapshot directory '$tmp/images/guest.elf': Not a directory$"
run 1 --restore "$tmp/images"
one_line "^kevd: snapshot 'images': '$tmp/images/manifest.json' is missing"
# Copies that share the big files (hard links), each broken in one way.
broken() {  # NAME: $tmp/NAME, a copy of the snapshot
	mkdir "$tmp/$1"
	for f in manifest.json state pages memory; do ln "$snap/$f" "$tmp/$1/$f"; done
}
broken garbled
rm "$tmp/garbled/manifest.json"
printf '{"format": 1, "name": ' > "$tmp/garbled/manifest.json"
run 1 --restore "$tmp/garbled" --image-dir "$tmp/images"
one_line "^kevd: snapshot 'garbled': '$tmp/garbled/manifest.json' is not a kevd manifest"
broken future
rm "$tmp/future/manifest.json"
sed 's/"format": 1/"format": 99/' "$snap/manifest.json" > "$tmp/future/manifest.json"
run 1 --restore "$tmp/future" --image-dir "$tmp/images"
one_line "format unknown, this kevd reads format 1$"
broken short
rm "$tmp/short/state"
head -c 100 "$snap/state" > "$tmp/short/state"
run 1 --restore "$tmp/short" --image-dir "$tmp/images"
one_line "^kevd: snapshot 'short': '$tmp/short/state' has 100 bytes, the manifest says [0-9]* (truncated or corrupted)$"
broken nomem
rm "$tmp/nomem/memory"
run 1 --restore "$tmp/nomem" --image-dir "$tmp/images"
one_line "^kevd: snapshot 'nomem': '$tmp/nomem/memory' is missing"
# Renamed, it still restores: its manifest's name is not the directory's.
broken renamed
run "$ref_rc" --restore "$tmp/renamed" --image-dir "$tmp/images" --quiet
# The kernel: missing, or a copy (another file than the snapshot's).
run 1 --restore "$snap"
one_line "^kevd: snapshot '$snap': kernel 'guest.elf': No such file or directory (looked for in the current directory"
run 1 --restore "$snap" --image-dir "$tmp/none"
one_line "^kevd: image directory '$tmp/none': No such file or directory$"
kevd_images "$tmp/copy" "$guest"
run 1 --restore "$snap" --image-dir "$tmp/copy"
one_line "^kevd: vm 'run': kernel '$tmp/copy/guest.elf' is not the file the snapshot was taken over"
mkdir "$tmp/empty"
run 1 --restore "$snap" --image-dir "$tmp/empty"
one_line "^kevd: snapshot '$snap': image 'guest.elf': no such file in the image directory"
echo "$me: ok (work result $ref, exit status $ref_rc)"
