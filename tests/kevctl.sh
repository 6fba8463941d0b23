#!/bin/sh
# kevctl against a real kevd on a temporary socket: every command in its
# text and --json forms, the exit classes (0 ok, 2 usage, 3 not found,
# 4 refused, 5 daemon down), run's VM-derived statuses with the test
# guest, console -f, pause and resume, snapshots taken, listed, shown,
# restored (the clones finishing the test guest's work with the digest of
# an uninterrupted run) and deleted, --url with --token-file against the
# TCP listener and a wrong token, the bash completion.  Skips (77) without
# /dev/kvm or without kevctl (built only with libcurl).
set -eu
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-$top_builddir}
kevd="$top_builddir/kevd"
kevctl="$top_builddir/kevctl"
guest="$top_builddir/tests/guests/testguest.elf"
me=kevctl.sh

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "$me: /dev/kvm cannot be opened: skipped"
	exit 77
fi
[ -x "$kevctl" ] || { echo "$me: $kevctl was not built (no libcurl): skipped"; exit 77; }
for f in "$kevd" "$guest"; do
	[ -r "$f" ] || { echo "$me: $f is missing"; exit 1; }
done

. "$top_srcdir/tests/lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-kevctl-XXXXXX")
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

kevd_images "$tmp/images" "$guest"
printf 'not an ELF\n' > "$tmp/images/bad.elf"
token=kevctl-test-token-0123456789
(umask 077 && printf '%s\n' "$token" > "$tmp/token" && printf 'wrong-token-0123456789\n' > "$tmp/wrong")
sock="$tmp/kevd.sock"
kevd_conf "$tmp/kevd.conf" "$sock" "$tmp"

start_daemon() {
	port=$(kevd_port)
	"$kevd" serve --config "$tmp/kevd.conf" --listen "127.0.0.1:$port" --token-file "$tmp/token" \
		> "$tmp/kevd.log" 2>&1 &
	pid=$!
	# Ready only once the TCP listener answers: kevd binds the socket
	# first and removes it again if the port turns out to be taken.
	kevd_ready "$pid" "$kevctl" --url "http://127.0.0.1:$port" health || { pid=; return 1; }
}
tries=0
until start_daemon; do
	tries=$((tries + 1))
	[ "$tries" -lt 5 ] || die "kevd did not start"
done

# k EXPECTED-STATUS ARGS...: runs kevctl on the socket; stdout in $tmp/out,
# stderr in $tmp/err; fails unless it exits EXPECTED-STATUS.
k() {
	want=$1
	shift
	rc=0
	timeout 60 "$kevctl" --socket "$sock" "$@" > "$tmp/out" 2> "$tmp/err" || rc=$?
	[ "$rc" = "$want" ] || die "kevctl $*: exit $rc, not $want"
}
has() { grep -q -e "$1" "$tmp/out" || die "kevctl output lacks '$1'"; }
err_is() { [ "$(cat "$tmp/err")" = "kevctl: $1" ] || die "stderr is not 'kevctl: $1'"; }
one_line_err() { [ "$(wc -l < "$tmp/err")" = 1 ] || die "stderr is not one line"; }

# --- health, version, metrics
k 0 health
has "^kevd at $sock: ok, 0 VM(s)$"
k 0 health --json
[ "$(cat "$tmp/out")" = '{"status":"ok","vms":0}' ] || die "health --json is not the daemon's JSON"
k 0 version
has '^kevctl [0-9]' && has '^kevd [0-9].* (API v1)$'
k 0 --json version
has '"api":"v1"'
k 0 metrics
has '^kevd_build_info{version='

# --- create (not started), ls, show, start, paging, translate, console
k 0 create --name loop --kernel guest.elf --vcpus 2 --memory 64 --cmdline "touch=percent:10 mode=loop" --no-start
has '^[0-9a-f]\{12\} loop created$'
id=$(cut -d' ' -f1 "$tmp/out")
k 0 ls
head -1 "$tmp/out" | grep -q '^NAME *ID *STATE *VCPUS *MEM_MIB *PAGES *FAULTS *AGE$' || die "ls header"
has "^loop  *$id  *created  *2  *64  *0/[1-9][0-9]*  *0  *[0-9]*s$"
k 0 ls --json
has "\"vms\":\[{\"name\":\"loop\",\"state\":\"created\""
k 0 __names
[ "$(cat "$tmp/out")" = loop ] || die "__names is not 'loop'"
k 0 show loop
has '^state: *created$' && has '^memory: *64 MiB$' && has '^cmdline: *touch=percent:10 mode=loop$'
# Control bytes a creator put in a cmdline reach no terminal: show escapes
# them (ESC, BEL, a newline that would fake a line); --json keeps them as
# JSON escapes.
esc=$(printf 'touch=none \033[31mRED\033]0;title\007\nFAKE: line')
k 0 create --name esc --kernel guest.elf --memory 64 --cmdline "$esc" --no-start
k 0 show esc
! grep -q "$(printf '\033')" "$tmp/out" || die "show printed an ESC byte"
! grep -q "$(printf '\007')" "$tmp/out" || die "show printed a BEL byte"
! grep -q '^FAKE: line' "$tmp/out" || die "show let a cmdline fake a line"
has '^cmdline: *touch=none \\x1b\[31mRED\\x1b\]0;title\\x07\\x0aFAKE: line$'
k 0 show esc --json
has '\\u001[bB]\[31mRED'
k 0 rm esc
# Nothing but control bytes (the escaped text fills its buffer), and a C1
# CSI (U+009B) that some terminals obey in UTF-8.
k 0 create --name esc2 --kernel guest.elf --memory 64 --cmdline "$(printf '\007\007 \302\233x')" --no-start
k 0 show esc2
has '^cmdline: *\\x07\\x07 \\xc2\\x9bx$'
k 0 rm esc2
k 0 start "$id"
has "^$id loop running$"
k 4 start loop
err_is "vm 'loop' is running; only a created VM can start"
k 0 show loop --json
has '"state":"running"'
# The guest's first lines and faults come a little after the start.
i=0
until "$kevctl" --socket "$sock" console loop 2> /dev/null | grep -q '^cmdline: touch=percent:10 mode=loop$'; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || die "no console output from the loop VM in 10 s"
	sleep 0.1
done
k 0 console loop
has '^testguest: boot=pvh vcpus=2$'
k 0 console loop --offset 11
head -c 8 "$tmp/out" | grep -q '^boot=pvh' || die "console --offset 11 does not start at the 12th byte"
k 0 paging loop
has '^mode: *lazy' && has '^faults  *[1-9]' && has '^load latency'
grep -q '^ *<= [0-9]* [um]s  *[1-9][0-9]* #\{1,50\}$' "$tmp/out" || die "paging shows no histogram bar"
k 0 paging loop --json
has '"latency_histogram":\[{"le_us":1,'
k 0 translate loop --gpa 0x100000
has '^gpa 0x100000 -> host 0x[0-9a-f]*, image-backed, page mapped$'
k 0 translate loop --gva 0x100000 --vcpu 1
has '^gva 0x100000 (vcpu 1) -> gpa 0x100000 -> host 0x[0-9a-f]*, image-backed, page mapped$'
k 0 translate loop --gpa 0x2000000 --json
has '"page_state":"unloaded","loaded":false'
k 4 translate loop --gpa 0xc0000000
err_is "vm 'loop': guest-physical 0xc0000000 is not RAM"
k 4 translate loop --gva 0x100000 --vcpu 7
one_line_err
k 0 stop loop
has "^$id loop stopped$"
k 4 stop loop
err_is "vm 'loop' is stopped already"
k 0 show loop
has '^reason: *stopped through the API$'
k 0 rm loop
[ ! -s "$tmp/out" ] || die "rm printed something"
k 3 show loop
err_is "no VM 'loop'"

# --- pause and resume; snapshots taken, listed, shown, restored, deleted.
# The clones' work digest is the one an uninterrupted run prints.
work="touch=percent:25 work=2000"
k 1 run --kernel guest.elf --name ref --cmdline "$work" --rm
ref=$(sed -n 's/^work: result=\(0x[0-9a-f]\{16\}\)$/\1/p' "$tmp/out")
[ -n "$ref" ] || die "the reference run printed no work result"
k 0 create --name src --kernel guest.elf --cmdline "$work"
i=0
until "$kevctl" --socket "$sock" console src 2> /dev/null | grep -q '^work: rounds='; do
	i=$((i + 1))
	[ "$i" -lt 200 ] || die "the src VM did not reach its work phase in 10 s"
	sleep 0.05
done
k 0 pause src
has '^[0-9a-f]\{12\} src paused$'
k 0 show src
has '^state: *paused$'
k 0 ls
has '^src  *[0-9a-f]\{12\}  *paused  '
k 4 pause src
err_is "vm 'src' is paused; only a running VM can pause"
k 0 resume src --json
has '"name":"src","state":"running"'
k 4 resume src
err_is "vm 'src' is running; only a paused VM can resume"
# A running VM's snapshot: it runs on.
k 0 snapshot src S1
has '^S1 src: [1-9][0-9]* pages kept ([0-9.]* MiB), written in [0-9.]* ms$'
k 0 show src --json
has '"state":"running"'
# A paused VM's: it stays paused; --stop stops it.
k 0 pause src
k 0 snapshot src S2 --json
has '"name":"S2"' && has '"from_vm":"src"' && has '"links":{"self":"/v1/snapshots/S2"}'
k 0 show src
has '^state: *paused$'
k 4 snapshot src S1
err_is "a snapshot named 'S1' exists"
k 4 snapshot src 'bad name'
one_line_err
k 0 snapshot --stop src S3
has '^S3 src: .*; VM stopped$'
k 0 show src
has '^state: *stopped$'
k 4 snapshot src S4
err_is "vm 'src' is stopped; only a running or paused VM has a snapshot"
k 0 snapshots
head -1 "$tmp/out" | grep -q '^NAME *FROM_VM *KERNEL *MEM_MIB *VCPUS *KEPT_MIB *AGE$' || die "snapshots header"
has '^S1  *src  *guest.elf  *128  *1  *[0-9.]*  *[0-9]*s$' && has '^S2  *src ' && has '^S3  *src '
k 0 snapshots --json
has '^{"snapshots":\[{.*"name":"S1"'
k 0 __snapshots
[ "$(cat "$tmp/out")" = "$(printf 'S1\nS2\nS3')" ] || die "__snapshots is not S1 S2 S3"
k 0 snapshot-show S1
has '^name: *S1$' && has '^from vm: *src$' && has '^kernel: *guest.elf (pvh, lazy paging)$' &&
	has "^cmdline: *$work$" && has '^memory: *128 MiB$' && has '^pages kept: *[1-9][0-9]* ('
k 0 snapshot-show S1 --json
has '"name":"S1"' && has '"vm":{'
# Restored: the clone runs the rest of the work to the same digest.
k 0 restore S1 --name clone1
has '^[0-9a-f]\{12\} clone1 running$'
k 0 console -f clone1
has "^work: result=$ref$"
# Its console is the snapshot's, then what it printed since: one boot.
[ "$(grep -c '^testguest:' "$tmp/out")" = 1 ] || die "clone1's console does not show exactly one boot"
k 0 show clone1
has '^state: *exited$' && has '^exit status: *1$' && has '^snapshot: *S1 (restored from it)$'
k 0 restore S2 --name clone2 --paging eager --no-start
has '^[0-9a-f]\{12\} clone2 created$'
k 0 show clone2 --json
has '"paging":"eager"'
k 0 start clone2
k 0 console -f clone2
has "^work: result=$ref$"
k 0 restore S3 --json --window 4 --no-start
has '"state":"created"'
clone3=$(sed 's/.*"id":"\([0-9a-f]*\)".*/\1/' "$tmp/out")
k 0 rm "$clone3"
k 4 restore S2 --name clone2
err_is "a VM named 'clone2' exists"
k 4 snapshot clone1 S4
err_is "vm 'clone1' is exited; only a running or paused VM has a snapshot"
k 0 snapshot-rm S1
[ ! -s "$tmp/out" ] || die "snapshot-rm printed something"
k 3 snapshot-show S1
err_is "no snapshot 'S1'"
k 0 snapshots
grep -q '^S1 ' "$tmp/out" && die "S1 is still listed"
k 3 snapshot-rm S1
err_is "no snapshot 'S1'"
k 3 restore S1
err_is "no snapshot 'S1'"
k 3 restore nope --name x
err_is "no snapshot 'nope'"
k 3 snapshot nope S9
err_is "no VM 'nope'"
k 2 restore S2 --kernel guest.elf
err_is "restore: --kernel comes from the snapshot"
k 2 restore S2 --memory 64
err_is "restore: --memory comes from the snapshot"
for v in src clone1 clone2; do k 0 rm "$v"; done
k 0 snapshot-rm S2

# --- not found and refused, with the daemon's messages
for cmd in show paging console start stop pause resume rm; do
	k 3 "$cmd" nope
	err_is "no VM 'nope'"
done
k 3 translate nope --gpa 0
k 4 create --kernel missing.elf
err_is "image 'missing.elf': no such file in the image directory"
k 4 create --kernel bad.elf
one_line_err
grep -q '^kevctl: .*bad.elf' "$tmp/err" || die "a bad kernel's message does not name it"
k 4 create --kernel guest.elf --vcpus 100000
one_line_err
k 4 create --kernel /etc/passwd
one_line_err
k 0 create --kernel guest.elf --name dup --no-start
k 4 create --kernel guest.elf --name dup
err_is "a VM named 'dup' exists"
k 0 rm dup

# --- run: the status from the VM's end
k 1 run --kernel guest.elf --name ok --cmdline touch=all
has '^result: ok$'
grep -q "^--- kevctl: vm 'ok' exited: guest wrote 0x0 to the debug exit port (exit status 1)$" "$tmp/err" ||
	die "run's end line"
# mode=fault ends with debug-exit byte 2: (2 << 1) | 1 = 5.
k 5 run --kernel guest.elf --name fault --cmdline "mode=fault" --rm
grep -q "exit status 5)$" "$tmp/err" || die "run mode=fault: no exit status 5 in the end line"
k 3 run --kernel guest.elf --name crash --cmdline mode=crash --rm
grep -q "^--- kevctl: vm 'crash' crashed: " "$tmp/err" || die "run mode=crash: no crashed end line"
k 1 run --kernel guest.elf --name quiet --cmdline touch=none --json --rm
has '"state":"exited"' && has '"exit_status":1'
grep -q 'testguest:' "$tmp/out" && die "run --json printed the console"
k 3 show quiet
k 3 show fault
k 0 rm ok
# A VM stopped from elsewhere while run follows it: 1.
rc=0
"$kevctl" --socket "$sock" run --kernel guest.elf --name spin --cmdline mode=loop > "$tmp/spin.out" 2> "$tmp/spin.err" &
runner=$!
i=0
until grep -q '^cmdline: mode=loop$' "$tmp/spin.out" 2> /dev/null; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || { kill "$runner"; die "run mode=loop printed no console in 10 s"; }
	sleep 0.1
done
k 0 stop spin
wait "$runner" || rc=$?
[ "$rc" = 1 ] || die "run of a VM stopped through the API: exit $rc, not 1"
grep -q "^--- kevctl: vm 'spin' stopped: stopped through the API$" "$tmp/spin.err" || die "run's end line for stop"
k 0 rm spin
k 4 run --kernel missing.elf
err_is "image 'missing.elf': no such file in the image directory"

# --- console -f follows a running VM to its end (and to its last byte)
k 0 create --name follow --kernel guest.elf --cmdline touch=all
k 0 console -f follow
has '^result: ok$'
k 0 show follow
has '^state: *exited$'
k 0 rm follow

# --- eager and window flags reach the daemon
k 0 create --name eager --kernel guest.elf --eager --window 4 --protocol multiboot2 --no-start --json
has '"paging":"eager"' && has '"boot_protocol":"multiboot2"'
k 0 paging eager
has '^mode: *eager'
k 0 rm eager
k 0 create --name win --kernel guest.elf --window 4 --no-start
k 0 paging win --json
has '"window_pages":4'
has '"window_max_pages":256'
k 0 rm win
# window 1 alone is no fault-around: the daemon's window_max_pages does not grow it
k 0 create --name w1 --kernel guest.elf --window 1 --no-start
k 0 paging w1 --json
has '"window_pages":1' && has '"window_max_pages":1,'
k 0 rm w1
k 0 create --name priv --kernel guest.elf --paging lazy-private --window-max 32 --no-start --json
has '"paging":"lazy-private"'
k 0 paging priv --json
has '"window_max_pages":32'
k 2 create --name bad --kernel guest.elf --window-max x
k 4 create --name bad --kernel guest.elf --paging shared
grep -q 'lazy-private' "$tmp/err" || die "--paging shared: the message does not name the modes"
k 0 rm priv

# --- images: the shared image the lazy VMs above used
k 0 images
has '^ID  *PATH  *FILLED  *READ_MIB  *VMS  *RESIDENT_MIB  *UNUSED_S$'
has '^[0-9a-f]\{16\}  *guest.elf  *[1-9][0-9]*/[0-9]* '
k 0 images --json
has '"sharing":true' && has '"images":\[{"id":"'
k 2 images extra
# Output that cannot be written is a failure, not a cut answer taken whole.
rc=0
"$kevctl" --socket "$sock" images > /dev/full 2> "$tmp/err" || rc=$?
[ "$rc" = 1 ] || die "images > /dev/full: exit $rc, not 1"
err_is "writing the output: No space left on device"

# --- usage errors: 2, one line, nothing sent
for args in "" "bogus" "ls extra" "show" "show a b" "create" "create --kernel" "create --kernel g --memory x" \
	"run --kernel guest.elf --no-start" "create --kernel g --rm" "translate x" "translate x --gpa 1 --gva 2" \
	"translate x --gpa zz" "translate x --gpa 1 --vcpu 1" "console x --offset -1" "ls --nope" "--nope ls" \
	"pause" "resume a b" "snapshot" "snapshot x" "snapshot x y z" "snapshot x y --nope" "snapshots x" \
	"snapshot-show" "snapshot-show a b" "snapshot-rm" "restore" "restore a b" "restore a --rm" \
	"restore a --cmdline x" "restore a --window x"; do
	# shellcheck disable=SC2086
	k 2 $args
	one_line_err
done
k 2 --token-file "$tmp/token" ls
# Text that is not UTF-8 cannot be sent: refused, never silently dropped.
k 2 create --kernel guest.elf --cmdline "$(printf 'a\377b')"
one_line_err
grep -q "not UTF-8" "$tmp/err" || die "a non-UTF-8 --cmdline: $(cat "$tmp/err")"
k 2 --url 127.0.0.1:1 ls
k 0 --help
has '^exit status: 0 ok, 1 other failure, 2 usage, 3 not found (404), 4 refused by kevd$'
k 0 ls --help
has '^usage: kevctl \[global options\] ls'
k 0 health
has ' 0 VM(s)$'

# --- TCP with a token; a wrong token is refused with the 401's message
url="http://127.0.0.1:$port"
rc=0
"$kevctl" --url "$url" --token-file "$tmp/token" ls > "$tmp/out" 2> "$tmp/err" || rc=$?
[ "$rc" = 0 ] || die "ls over TCP with the token: exit $rc"
has '^NAME'
rc=0
"$kevctl" --url "$url" --token-file "$tmp/token" create --kernel guest.elf --name tcp --no-start > "$tmp/out" 2> "$tmp/err" || rc=$?
[ "$rc" = 0 ] || die "create over TCP: exit $rc"
rc=0
"$kevctl" --url "$url" --token-file "$tmp/wrong" ls > "$tmp/out" 2> "$tmp/err" || rc=$?
[ "$rc" = 4 ] || die "ls over TCP with a wrong token: exit $rc, not 4"
err_is "this listener needs 'Authorization: Bearer <token>'"
rc=0
"$kevctl" --url "$url" ls > "$tmp/out" 2> "$tmp/err" || rc=$?
[ "$rc" = 4 ] || die "ls over TCP without a token: exit $rc, not 4"
rc=0
"$kevctl" --url "$url" health > "$tmp/out" 2> "$tmp/err" || rc=$?
[ "$rc" = 0 ] || die "health over TCP needs no token: exit $rc"
has ': ok, 1 VM(s)$'
rc=0
"$kevctl" --url "$url" --token-file "$tmp/missing" ls > "$tmp/out" 2> "$tmp/err" || rc=$?
[ "$rc" = 1 ] || die "a missing token file: exit $rc, not 1"
grep -q "^kevctl: token file '$tmp/missing': No such file or directory$" "$tmp/err" || die "missing token file message"
# $KEVD_SOCKET is the default socket.
rc=0
KEVD_SOCKET="$sock" "$kevctl" __names > "$tmp/out" 2> "$tmp/err" || rc=$?
[ "$rc" = 0 ] && [ "$(cat "$tmp/out")" = tcp ] || die "\$KEVD_SOCKET was not used"

# --- the bash completion: commands, a command's options, VM names from __names
if command -v bash > /dev/null 2>&1; then
	comp() {  # WORDS...: the completions of the last word
		PATH="$(cd "$top_builddir" && pwd):$PATH" bash -c '. "$1"; shift; COMP_WORDS=("$@");
			COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _kevctl; printf "%s\n" "${COMPREPLY[@]}"' \
			sh "$top_srcdir/completion/kevctl.bash" "$@" > "$tmp/out" 2> "$tmp/err"
	}
	comp kevctl pag
	[ "$(cat "$tmp/out")" = paging ] || die "completion of 'pag' is not 'paging'"
	comp kevctl create --no
	[ "$(cat "$tmp/out")" = --no-start ] || die "completion of 'create --no' is not '--no-start'"
	comp kevctl --socket "$sock" show t
	[ "$(cat "$tmp/out")" = tcp ] || die "completion of a VM name is not 'tcp'"
	comp kevctl snapshot-s
	[ "$(cat "$tmp/out")" = snapshot-show ] || die "completion of 'snapshot-s' is not 'snapshot-show'"
	comp kevctl snapshot tcp --s
	[ "$(cat "$tmp/out")" = --stop ] || die "completion of 'snapshot tcp --s' is not '--stop'"
	comp kevctl --socket "$sock" pause ""
	[ "$(cat "$tmp/out")" = tcp ] || die "completion of pause's VM is not 'tcp'"
	comp kevctl --socket "$sock" snapshot tcp ""
	[ -z "$(cat "$tmp/out")" ] || die "completion of a new snapshot's name offers '$(cat "$tmp/out")'"
	comp kevctl --socket "$sock" restore --name x ""
	[ "$(cat "$tmp/out")" = S3 ] || die "completion of restore's snapshot is not 'S3'"
	comp kevctl --socket "$sock" snapshot-rm S3 ""
	[ -z "$(cat "$tmp/out")" ] || die "completion after snapshot-rm's name offers '$(cat "$tmp/out")'"
fi

# --- the daemon down: 5, and the socket named
kill -TERM "$pid"
wait "$pid" || :
pid=
k 5 ls
err_is "cannot reach kevd at $sock: No such file or directory"
rc=0
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$tmp/dead.sock" 2> /dev/null || :
if [ -S "$tmp/dead.sock" ]; then
	rc=0
	"$kevctl" --socket "$tmp/dead.sock" health > "$tmp/out" 2> "$tmp/err" || rc=$?
	[ "$rc" = 5 ] || die "a socket nobody listens on: exit $rc, not 5"
	err_is "cannot reach kevd at $tmp/dead.sock: Connection refused"
fi
rc=0
"$kevctl" --url "$url" health > "$tmp/out" 2> "$tmp/err" || rc=$?
[ "$rc" = 5 ] || die "TCP, daemon down: exit $rc, not 5"
one_line_err
echo "$me: ok"
