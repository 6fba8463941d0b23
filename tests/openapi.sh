#!/bin/sh
# docs/openapi.yaml against a live kevd, without a YAML parser: every path
# and method in the file is requested and must answer a status the file
# lists for that operation; every route kevd serves is in the file and
# nothing else; other methods get 405 with an Allow header naming exactly
# the file's methods; the TCP listener demands the bearer token exactly
# where the file lists 401; the JSON keys of real answers are properties
# of their schemas and vice versa; the snapshot operations succeed and
# fail as documented, also on a daemon without a snapshot directory (503).
# The file's layout rules are in its header comment.  Skips (77) without
# /dev/kvm or curl.
set -eu
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-$top_builddir}
kevd="$top_builddir/kevd"
guest="$top_builddir/tests/guests/testguest.elf"
spec="$top_srcdir/docs/openapi.yaml"
me=openapi.sh

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "$me: /dev/kvm cannot be opened: skipped"
	exit 77
fi
if ! command -v curl > /dev/null 2>&1; then
	echo "$me: curl is not installed: skipped"
	exit 77
fi
for f in "$kevd" "$guest" "$spec"; do
	[ -r "$f" ] || { echo "$me: $f is missing"; exit 1; }
done

. "$top_srcdir/tests/lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-openapi-XXXXXX")
pid=
cleanup() {
	kevd_stop "$pid"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

errors=0
fail() { echo "$me: FAIL: $*"; errors=$((errors + 1)); }
die() { echo "$me: $*"; [ -f "$tmp/kevd.log" ] && sed 's/^/kevd: /' "$tmp/kevd.log"; exit 1; }

# ---- the spec: "PATH METHOD CODE CODE ..." per operation ----
awk '
	function flush() { if (op != "") print op codes; op = ""; codes = "" }
	/^[^ #]/ { flush(); inpaths = ($0 == "paths:"); path = ""; next }
	!inpaths { next }
	/^  \/[^ ]*:$/ { flush(); path = substr($0, 3, length($0) - 3); next }
	/^    (get|put|post|delete|head|patch|options|trace):$/ {
		flush(); m = substr($0, 5, length($0) - 5); op = path " " toupper(m); inresp = 0; next
	}
	/^      responses:$/ { inresp = 1; next }
	/^      [^ ]/ { inresp = 0; next }
	inresp && /^        "[0-9][0-9][0-9]":$/ { codes = codes " " substr($0, 10, 3) }
	END { flush() }
' "$spec" > "$tmp/ops"
[ -s "$tmp/ops" ] || die "no operations found in $spec"
cut -d' ' -f1 "$tmp/ops" | uniq > "$tmp/paths"

# Every route in kevd's route table (src/api/routes.c), and no other.
cat > "$tmp/routes" << 'EOF'
/metrics
/v1/health
/v1/version
/v1/vms
/v1/vms/{vm}
/v1/vms/{vm}/actions
/v1/vms/{vm}/paging
/v1/vms/{vm}/console
/v1/vms/{vm}/translate
/v1/vms/{vm}/snapshot
/v1/snapshots
/v1/snapshots/{name}
/v1/images
EOF
while read -r r; do
	grep -qxF "$r" "$tmp/paths" || fail "route $r is not in $spec"
done < "$tmp/routes"
while read -r p; do
	grep -qxF "$p" "$tmp/routes" || fail "$spec has $p, which kevd does not serve"
done < "$tmp/paths"
while read -r p m codes; do
	[ -n "$codes" ] || fail "$m $p documents no response"
done < "$tmp/ops"

# ---- the daemon: Unix socket plus a TCP listener with a token ----
kevd_images "$tmp/images" "$guest"
printf 'not an ELF file\n' > "$tmp/images/bad.elf"
token=openapi-test-token-0123456789
(umask 077 && printf '%s\n' "$token" > "$tmp/token")
sock="$tmp/kevd.sock"

# start_daemon [STATE_DIR]: the daemon, its state (snapshots) in
# STATE_DIR, default $tmp.
start_daemon() {
	port=$(kevd_port)
	cat > "$tmp/kevd.conf" <<- EOF
	[api]
	socket = $sock
	listen = 127.0.0.1:$port
	token_file = $tmp/token
	max_body_bytes = 4096
	[paths]
	image_dir = $tmp/images
	state_dir = ${1:-$tmp}
	runtime_dir = $tmp
	[limits]
	max_vms = 8
	max_vcpus = 4
	max_memory_mib = 256
	max_total_memory_mib = 1024
	[log]
	level = warn
	EOF
	"$kevd" serve --config "$tmp/kevd.conf" > "$tmp/kevd.log" 2>&1 &
	pid=$!
	i=0
	while [ "$i" -lt 100 ]; do
		kill -0 "$pid" 2> /dev/null || { wait "$pid" || :; pid=; return 1; }
		[ -S "$sock" ] && curl -sf -o /dev/null --max-time 2 --unix-socket "$sock" http://localhost/v1/health &&
			return 0
		sleep 0.05
		i=$((i + 1))
	done
	die "kevd did not answer on $sock within 5 s"
}
tries=0
until start_daemon; do
	tries=$((tries + 1))
	[ "$tries" -lt 5 ] || die "kevd did not start"
done

# req METHOD URLPATH [BODY [CONTENT-TYPE]] [-- TCP|TCPAUTH]: sets $code;
# body in $tmp/body, headers in $tmp/headers.
req() {
	_m=$1 _u=$2 _b=${3-} _t=${4-application/json} _via=${5-unix}
	set -- -sS -g --max-time 15 -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}'
	case $_via in
	unix) set -- "$@" --unix-socket "$sock" ;;
	tcpauth) set -- "$@" -H "Authorization: Bearer $token" ;;
	esac
	case $_m in
	HEAD) set -- "$@" -I ;;
	*) set -- "$@" -X "$_m" ;;
	esac
	[ -z "$_b" ] || set -- "$@" -H "Content-Type: $_t" --data-binary "$_b"
	case $_via in
	unix) code=$(curl "$@" "http://localhost$_u") || code=000 ;;
	*) code=$(curl "$@" "http://127.0.0.1:$port$_u") || code=000 ;;
	esac
}

# documented PATH METHOD CODE: is CODE among the operation's responses?
documented() {
	grep "^$1 $2 " "$tmp/ops" | grep -q " $3\( \|\$\)"
}

# check PATH METHOD URL BODY [WANT]: request, status documented (and WANT).
check() {
	req "$2" "$3" "$4"
	_what="$2 $3"
	[ -z "$4" ] || _what="$_what '$4'"
	if ! documented "$1" "$2" "$code"; then
		fail "$_what answered $code, not documented for $2 $1: $(head -c 200 "$tmp/body")"
	elif [ -n "${5-}" ] && [ "$code" != "$5" ]; then
		fail "$_what answered $code, want $5: $(head -c 200 "$tmp/body")"
	fi
	case $code in
	4??|5??) grep -q '"fault_message":' "$tmp/body" || [ "$2" = HEAD ] ||
		fail "$2 $3: error $code without fault_message" ;;
	esac
}

create() {
	req POST /v1/vms "$1"
	[ "$code" = 201 ] || die "cannot create a VM from '$1': $code $(cat "$tmp/body")"
}
# t1 runs (every read-only resource), t2 is deleted, t3 is started,
# paused, resumed and stopped through actions.  Snapshots of t1: base
# (restored and read), d1 (deleted); s1 is taken in the loop.
create '{"name":"t1","kernel":"guest.elf","memory_mib":64,"vcpus":2,"cmdline":"touch=percent:5 mode=loop"}'
cp "$tmp/body" "$tmp/vm.json"
create '{"name":"t2","kernel":"guest.elf","memory_mib":64,"start":false}'
create '{"name":"t3","kernel":"guest.elf","memory_mib":64,"start":false,"cmdline":"touch=none mode=loop"}'
for s in base d1; do
	req POST /v1/vms/t1/snapshot "{\"name\":\"$s\"}"
	[ "$code" = 201 ] || die "cannot take snapshot $s of t1: $code $(cat "$tmp/body")"
done

# ---- every operation: a bare request, and one that should succeed ----
while read -r p m codes; do
	case $m in
	DELETE) u=$(echo "$p" | sed 's/{vm}/t2/; s/{name}/d1/') ;;
	*) case $p in */actions) u=$(echo "$p" | sed 's/{vm}/t3/') ;; *) u=$(echo "$p" | sed 's/{vm}/t1/; s/{name}/base/') ;; esac ;;
	esac
	case "$m $p" in
	"POST /v1/vms")
		check "$p" "$m" "$u" ""
		check "$p" "$m" "$u" '{"name":"p1","kernel":"guest.elf","memory_mib":64,"start":false}' 201
		check "$p" "$m" "$u" '{"name":"r1","snapshot":"base"}' 201
		cp "$tmp/body" "$tmp/restored.json" ;;
	"PUT /v1/vms/{vm}/actions")
		check "$p" "$m" "$u" ""
		check "$p" "$m" "$u" '{"action":"start"}' 200
		check "$p" "$m" "$u" '{"action":"pause"}' 200
		grep -q '"state":"paused"' "$tmp/body" || fail "pause answered a VM not paused: $(head -c 200 "$tmp/body")"
		cp "$tmp/body" "$tmp/paused.json"
		check "$p" "$m" "$u" '{"action":"resume"}' 200
		check "$p" "$m" "$u" '{"action":"pause"}' 200
		check "$p" "$m" "$u" '{"action":"stop"}' 200 ;;
	"POST /v1/vms/{vm}/snapshot")
		check "$p" "$m" "$u" ""
		check "$p" "$m" "$u" '{"name":"s1"}' 201
		cp "$tmp/body" "$tmp/snap.json"
		grep -qi '^Location: /v1/snapshots/s1' "$tmp/headers" || fail "POST $u: no Location /v1/snapshots/s1" ;;
	*"/translate")
		check "$p" "$m" "$u" ""
		check "$p" "$m" "$u?gpa=0x100000" "" 200
		check "$p" "$m" "$u?gva=0x100000&vcpu=1" "" 200 ;;
	*"/console")
		check "$p" "$m" "$u" "" 200
		check "$p" "$m" "$u?offset=0x4" "" 200 ;;
	"DELETE "*)
		check "$p" "$m" "$u" "" 204 ;;
	*)
		check "$p" "$m" "$u" "" 200 ;;
	esac
done < "$tmp/ops"

# ---- errors, each with the status it must have and documented ----
check /v1/vms POST /v1/vms '{"kernel":"guest.elf","colour":"red"}' 400
check /v1/vms POST /v1/vms '{"kernel":"guest.elf","memory_mib":1}' 400
check /v1/vms POST /v1/vms '{"kernel":"/etc/passwd"}' 400
check /v1/vms POST /v1/vms '{"kernel":"guest.elf","vcpus":5}' 429
check /v1/vms POST /v1/vms '{"kernel":"guest.elf","memory_mib":257}' 429
check /v1/vms POST /v1/vms '{"name":"t1","kernel":"guest.elf"}' 409
check /v1/vms POST /v1/vms '{"kernel":"missing.elf"}' 422
check /v1/vms POST /v1/vms '{"kernel":"bad.elf"}' 422
big=$(printf '%5000s' '')
check /v1/vms POST /v1/vms "{$big}" 413
req POST /v1/vms '{"kernel":"guest.elf"}' text/plain
if [ "$code" != 415 ] || ! documented /v1/vms POST 415; then
	fail "POST text/plain answered $code, want 415 (documented)"
fi
check '/v1/vms/{vm}' GET /v1/vms/nonesuch "" 404
check '/v1/vms/{vm}' DELETE /v1/vms/nonesuch "" 404
check '/v1/vms/{vm}/actions' PUT /v1/vms/t3/actions '{"action":"start"}' 409
check '/v1/vms/{vm}/actions' PUT /v1/vms/t3/actions '{"action":"jump"}' 400
check '/v1/vms/{vm}/translate' GET '/v1/vms/t1/translate?gpa=1&gva=1' "" 400
check '/v1/vms/{vm}/translate' GET '/v1/vms/t1/translate?gpa=0xc0000000' "" 422
check '/v1/vms/{vm}/console' GET '/v1/vms/t1/console?offset=-1' "" 400
check /v1/health GET '/v1/health?x' "" 400
# pause, resume and snapshots
check '/v1/vms/{vm}/actions' PUT /v1/vms/t1/actions '{"action":"resume"}' 409
check '/v1/vms/{vm}/actions' PUT /v1/vms/t3/actions '{"action":"pause"}' 409
check '/v1/vms/{vm}/actions' PUT /v1/vms/t3/actions '{"action":"resume"}' 409
check '/v1/vms/{vm}/snapshot' POST /v1/vms/t1/snapshot '{}' 400
check '/v1/vms/{vm}/snapshot' POST /v1/vms/t1/snapshot '{"name":"../x"}' 400
check '/v1/vms/{vm}/snapshot' POST /v1/vms/t1/snapshot '{"name":"x","stop":1}' 400
check '/v1/vms/{vm}/snapshot' POST /v1/vms/nonesuch/snapshot '{"name":"x"}' 404
check '/v1/vms/{vm}/snapshot' POST /v1/vms/t1/snapshot '{"name":"base"}' 409
check '/v1/vms/{vm}/snapshot' POST /v1/vms/t3/snapshot '{"name":"x"}' 409
check '/v1/vms/{vm}/snapshot' POST /v1/vms/p1/snapshot '{"name":"x"}' 409
req POST /v1/vms/t1/snapshot '{"name":"x"}' text/plain
if [ "$code" != 415 ] || ! documented '/v1/vms/{vm}/snapshot' POST 415; then
	fail "POST snapshot text/plain answered $code, want 415 (documented)"
fi
check '/v1/snapshots/{name}' GET /v1/snapshots/nonesuch "" 404
check '/v1/snapshots/{name}' HEAD /v1/snapshots/nonesuch "" 404
check '/v1/snapshots/{name}' GET /v1/snapshots/.hidden "" 404
check '/v1/snapshots/{name}' DELETE /v1/snapshots/d1 "" 404
check /v1/vms POST /v1/vms '{"snapshot":"nonesuch"}' 404
check /v1/vms POST /v1/vms '{"snapshot":"base","vcpus":1}' 400
check /v1/vms POST /v1/vms '{"snapshot":"base","kernel":"guest.elf"}' 400
check /v1/vms POST /v1/vms '{"name":"t1","snapshot":"base"}' 409
# A snapshot whose state file is cut short restores with 422; one whose
# manifest is not JSON reads with 422, and lists with a fault_message.
snaps="$tmp/snapshots"
cp -r "$snaps/base" "$snaps/cut"
sed 's/"name": "base"/"name": "cut"/' "$snaps/base/manifest.json" > "$snaps/cut/manifest.json"
truncate -s -8 "$snaps/cut/state"
check /v1/vms POST /v1/vms '{"snapshot":"cut"}' 422
grep -q "cut/state' has" "$tmp/body" || fail "restore of a cut snapshot: the message does not name its state file"
mkdir "$snaps/junk"
echo '{' > "$snaps/junk/manifest.json"
check '/v1/snapshots/{name}' GET /v1/snapshots/junk "" 422
check /v1/snapshots GET /v1/snapshots "" 200
grep -q '{"name":"junk","fault_message":"snapshot '"'"'junk'"'"': ' "$tmp/body" ||
	fail "GET /v1/snapshots: no fault entry for junk: $(head -c 300 "$tmp/body")"
check '/v1/snapshots/{name}' DELETE /v1/snapshots/junk "" 204
check '/v1/snapshots/{name}' DELETE /v1/snapshots/cut "" 204

# ---- 405 and Allow: exactly the file's methods for the path ----
while read -r p; do
	want=$(grep "^$p " "$tmp/ops" | cut -d' ' -f2 | sort | tr '\n' ' ')
	u=$(echo "$p" | sed 's/{vm}/t1/; s/{name}/base/')
	req PATCH "$u"
	got=$(sed -n 's/^[Aa]llow: *//p' "$tmp/headers" | tr -d '\r' | tr ',' '\n' | tr -d ' ' | sed '/^$/d' | sort |
		tr '\n' ' ')
	[ "$code" = 405 ] || fail "PATCH $u answered $code, want 405"
	[ "$got" = "$want" ] || fail "PATCH $u: Allow '$got', the file has '$want'"
done < "$tmp/paths"

# ---- the TCP listener: 401 exactly where documented ----
while read -r p m codes; do
	u=$(echo "$p" | sed 's/{vm}/t1/; s/{name}/base/')
	case $m in POST|PUT|DELETE) continue ;; esac   # the token must not let these through by accident
	req "$m" "$u" "" "" tcp
	if documented "$p" "$m" 401; then
		[ "$code" = 401 ] || fail "TCP $m $u without a token answered $code, want 401"
		grep -qi '^WWW-Authenticate: Bearer' "$tmp/headers" || fail "TCP $m $u: 401 without WWW-Authenticate"
		req "$m" "$u" "" "" tcpauth
		[ "$code" != 401 ] || fail "TCP $m $u with the token answered 401"
	else
		[ "$code" != 401 ] || fail "TCP $m $u answered 401 but the file needs no token there"
	fi
done < "$tmp/ops"
req POST /v1/vms '{"kernel":"guest.elf","start":false}' application/json tcp
[ "$code" = 401 ] || fail "TCP POST /v1/vms without a token answered $code, want 401"

# ---- JSON keys of real answers against the schemas ----
# schema_block NAME: the lines of components/schemas/NAME.
schema_block() {
	awk -v n="    $1:" '
		/^  schemas:$/ { s = 1; next }
		s && $0 == n { in_ = 1; next }
		in_ && /^    [^ ]/ { exit }
		in_ && /^[^ ]/ { exit }
		in_ { print }
	' "$spec"
}
# check_keys SCHEMA JSONFILE
check_keys() {
	schema_block "$1" > "$tmp/schema"
	[ -s "$tmp/schema" ] || { fail "no schema $1 in $spec"; return; }
	grep -o '"[a-z_]*":' "$2" | tr -d '":' | sort -u > "$tmp/keys"
	[ -s "$tmp/keys" ] || { fail "$1: no JSON keys in the answer: $(head -c 200 "$2")"; return; }
	while read -r k; do
		grep -q "^ *$k:" "$tmp/schema" || fail "$1: key '$k' of the live answer is not in the schema"
	done < "$tmp/keys"
	# The schema's own properties (8 spaces) all appear in the answer.
	sed -n 's/^        \([a-z_0-9]*\):$/\1/p' "$tmp/schema" | while read -r k; do
		grep -qxF "$k" "$tmp/keys" || echo "$k"
	done > "$tmp/missing"
	[ ! -s "$tmp/missing" ] || fail "$1: properties not in the live answer: $(tr '\n' ' ' < "$tmp/missing")"
}
check_keys VM "$tmp/vm.json"
check_keys VM "$tmp/paused.json"
check_keys VM "$tmp/restored.json"
check_keys Snapshot "$tmp/snap.json"
req GET /v1/snapshots/base; check_keys Snapshot "$tmp/body"
req GET /v1/snapshots
case $(head -c 27 "$tmp/body") in '{"snapshots":[{"created_at"') ;; *) fail "GET /v1/snapshots: not a SnapshotList: $(head -c 100 "$tmp/body")" ;; esac
req GET /v1/vms/t1/paging; check_keys PagingStats "$tmp/body"
req GET '/v1/vms/t1/translate?gva=0x100000&vcpu=1'; check_keys Translation "$tmp/body"
req GET /v1/health; check_keys Health "$tmp/body"
req GET /v1/version; check_keys Version "$tmp/body"
req GET /v1/vms/nonesuch; check_keys Error "$tmp/body"
req GET /v1/vms
case $(head -c 8 "$tmp/body") in '{"vms":[') ;; *) fail "GET /v1/vms: not a VMList: $(head -c 100 "$tmp/body")" ;; esac
# An image entry of the clone r1: its snapshot's memory file.
req GET /v1/images
grep -q '"snapshot_memory":"[^"]*/snapshots/base/memory"' "$tmp/body" ||
	fail "GET /v1/images: no entry with the snapshot_memory of base: $(head -c 300 "$tmp/body")"
grep -q '"snapshot_memory":null' "$tmp/body" || fail "GET /v1/images: no booted image's entry with snapshot_memory null"

# ---- a clean stop ----
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "kevd exited $rc after SIGTERM"
[ ! -e "$sock" ] || fail "the socket file outlived kevd"

# ---- a daemon whose state directory is no directory: 503 for snapshots ----
: > "$tmp/not-a-dir"
tries=0
until start_daemon "$tmp/not-a-dir"; do
	tries=$((tries + 1))
	[ "$tries" -lt 5 ] || die "kevd did not start without a snapshot directory"
done
create '{"name":"n1","kernel":"guest.elf","memory_mib":64,"cmdline":"touch=none mode=loop"}'
check /v1/snapshots GET /v1/snapshots "" 503
check /v1/snapshots HEAD /v1/snapshots "" 503
check '/v1/snapshots/{name}' GET /v1/snapshots/base "" 503
check '/v1/snapshots/{name}' DELETE /v1/snapshots/base "" 503
check '/v1/vms/{vm}/snapshot' POST /v1/vms/n1/snapshot '{"name":"x"}' 503
grep -q 'snapshots are unavailable: .*not-a-dir/snapshots' "$tmp/body" || fail "503 without the reason: $(cat "$tmp/body")"
check /v1/vms POST /v1/vms '{"snapshot":"base"}' 503
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "kevd without a snapshot directory exited $rc after SIGTERM"

if [ "$errors" -ne 0 ]; then
	sed 's/^/kevd: /' "$tmp/kevd.log"
	echo "$me: $errors failure(s)"
	exit 1
fi
echo "$me: $(wc -l < "$tmp/ops") operations checked against $spec"
