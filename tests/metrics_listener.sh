#!/bin/sh
# The metrics listener: --metrics-listen serves /metrics and /v1/health
# without a token and nothing else (404 with a fault_message), while the
# API's TCP listener, configured by flags alone (--listen, --token-file),
# still demands its token; bad or busy metrics addresses are one-line
# errors; then a real Prometheus server (Debian's prometheus) scrapes the
# metrics port and sees kevd up, with a VM's pager series.  Skips (77)
# without /dev/kvm or curl; the Prometheus part says so and is left out
# where the prometheus binary is not installed.
set -eu
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-$top_builddir}
kevd="$top_builddir/kevd"
guest="$top_builddir/tests/guests/testguest.elf"
me=metrics_listener.sh

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "$me: /dev/kvm cannot be opened: skipped"
	exit 77
fi
command -v curl > /dev/null 2>&1 || { echo "$me: curl is not installed: skipped"; exit 77; }
for f in "$kevd" "$guest"; do
	[ -r "$f" ] || { echo "$me: $f is missing"; exit 1; }
done

. "$top_srcdir/tests/lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-metrics-XXXXXX")
pid= prom=
cleanup() {
	kevd_stop "$prom"
	kevd_stop "$pid"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
die() {
	echo "$me: FAIL: $*"
	[ -f "$tmp/kevd.log" ] && sed 's/^/kevd: /' "$tmp/kevd.log"
	exit 1
}

kevd_images "$tmp/images" "$guest"
token=metrics-test-token-0123456789
(umask 077 && printf '%s\n' "$token" > "$tmp/token")
sock="$tmp/kevd.sock"
kevd_conf "$tmp/kevd.conf" "$sock" "$tmp"

# Both TCP ports come from flags only; a port taken by something else
# makes kevd exit, and another pair is tried.
start_daemon() {
	mport=$(kevd_port)
	aport=$(kevd_port)
	[ "$mport" != "$aport" ] || return 1
	"$kevd" serve --config "$tmp/kevd.conf" --metrics-listen "127.0.0.1:$mport" \
		--listen "127.0.0.1:$aport" --token-file "$tmp/token" > "$tmp/kevd.log" 2>&1 &
	pid=$!
	kevd_ready "$pid" curl -sf --max-time 2 "http://127.0.0.1:$mport/v1/health" || { pid=; return 1; }
}
tries=0
until start_daemon; do
	tries=$((tries + 1))
	[ "$tries" -lt 5 ] || die "kevd did not start"
done

# get CURL-ARGS...: sets $code, the body in $tmp/body.
get() {
	code=$(curl -sS -g --max-time 10 -o "$tmp/body" -w '%{http_code}' "$@") || code=000
}
metrics="http://127.0.0.1:$mport"
get "$metrics/metrics"
[ "$code" = 200 ] || die "GET /metrics on the metrics port: $code"
grep -q '^kevd_build_info{version=' "$tmp/body" || die "/metrics on the metrics port has no kevd_build_info"
get "$metrics/v1/health"
{ [ "$code" = 200 ] && grep -q '"status":"ok"' "$tmp/body"; } || die "GET /v1/health on the metrics port: $code"
# Nothing private, with or without the token.
for path in /v1/vms /v1/version /metrics/ //v1/health /v1/vms/x/paging /nothing; do
	get "$metrics$path"
	[ "$code" = 404 ] || die "GET $path on the metrics port: $code, not 404"
	grep -q '"fault_message":"this listener serves only /metrics and /v1/health"' "$tmp/body" ||
		die "GET $path on the metrics port: $(cat "$tmp/body")"
	get -H "Authorization: Bearer $token" "$metrics$path"
	[ "$code" = 404 ] || die "GET $path with the token on the metrics port: $code, not 404"
done
get -X POST -H 'Content-Type: application/json' -d '{"kernel":"guest.elf"}' "$metrics/v1/vms"
[ "$code" = 404 ] || die "POST /v1/vms on the metrics port: $code, not 404"
get -X POST "$metrics/metrics"
[ "$code" = 405 ] || die "POST /metrics on the metrics port: $code, not 405"
# The API's TCP listener, from --listen and --token-file: the token is required.
get "http://127.0.0.1:$aport/v1/vms"
[ "$code" = 401 ] || die "GET /v1/vms on the API port without the token: $code, not 401"
get -H "Authorization: Bearer $token" "http://127.0.0.1:$aport/v1/vms"
[ "$code" = 200 ] || die "GET /v1/vms on the API port with the token: $code"
# A bad address is one line and exit 1.
rc=0
"$kevd" serve --config "$tmp/kevd.conf" --socket "$tmp/other.sock" --metrics-listen nowhere \
	> "$tmp/bad.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || die "--metrics-listen nowhere: exit $rc, not 1"
grep -q "'nowhere' is not ADDR:PORT" "$tmp/bad.log" || die "bad --metrics-listen: $(cat "$tmp/bad.log")"
# The API listener's port: refused at bind, naming the metrics listener.
rc=0
"$kevd" serve --config "$tmp/kevd.conf" --socket "$tmp/other.sock" --metrics-listen "127.0.0.1:$aport" \
	> "$tmp/busy.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || die "a busy --metrics-listen port: exit $rc, not 1"
grep -q "metrics listen '127.0.0.1:$aport'" "$tmp/busy.log" || die "busy --metrics-listen: $(cat "$tmp/busy.log")"
[ ! -e "$tmp/other.sock" ] || die "a failed start left its socket behind"

# Reloads: a new image_dir is served at once; a reload that would leave
# the bound TCP listener without a token is refused before anything of it
# applies, so the token keeps working.
r2=
start_second() {
	port2=$(kevd_port)
	printf '[api]\nsocket = %s\nlisten = 127.0.0.1:%s\ntoken_file = %s\n' "$tmp/second.sock" "$port2" \
		"$tmp/token" > "$tmp/second.conf"
	sed -n '/^\[paths\]/,$p' "$tmp/kevd.conf" | sed 's/^level = .*/level = info/' >> "$tmp/second.conf"
	"$kevd" serve --config "$tmp/second.conf" > "$tmp/second.log" 2>&1 &
	r2=$!
	kevd_ready "$r2" curl -sf --max-time 2 "http://127.0.0.1:$port2/v1/health" || { r2=; return 1; }
}
tries=0
until start_second; do
	tries=$((tries + 1))
	[ "$tries" -lt 5 ] || die "the second kevd did not start: $(cat "$tmp/second.log")"
done
# A reload that moves image_dir serves the new directory at once.
mkdir "$tmp/images2"
cp "$guest" "$tmp/images2/moved.elf"
sed "s|^image_dir = .*|image_dir = $tmp/images2|" "$tmp/second.conf" > "$tmp/second.new"
mv "$tmp/second.new" "$tmp/second.conf"
kill -HUP "$r2"
i=0
until grep -q 'configuration reloaded' "$tmp/second.log"; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || { kevd_stop "$r2"; die "no reload after SIGHUP: $(cat "$tmp/second.log")"; }
	sleep 0.05
done
get -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
	-d '{"kernel":"moved.elf","start":false}' "http://127.0.0.1:$port2/v1/vms"
[ "$code" = 201 ] || { kevd_stop "$r2"; die "an image in the reloaded image_dir: $code $(cat "$tmp/body")"; }
# reload_then PATTERN: SIGHUP the second daemon, wait for PATTERN's
# (N-th, counting earlier ones) line in its log.
reloads=1
reload_then() {
	reloads=$((reloads + 1))
	kill -HUP "$r2"
	i=0
	until [ "$(grep -c -e "$1" "$tmp/second.log")" -ge "$2" ]; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || { kevd_stop "$r2"; die "no '$1' after SIGHUP: $(cat "$tmp/second.log")"; }
		sleep 0.05
	done
}
grep -v -e '^token_file' -e '^listen' "$tmp/second.conf" > "$tmp/second.new" && mv "$tmp/second.new" "$tmp/second.conf"
reload_then 'reload refused' 1
get -H "Authorization: Bearer $token" "http://127.0.0.1:$port2/v1/vms"
[ "$code" = 200 ] || { kevd_stop "$r2"; die "after a refused reload the token no longer works: $code"; }
# The same in two steps: dropping listen (which stays bound) is accepted
# with a warning, dropping the token afterwards is still refused.
sed "s|^socket = .*|&\\ntoken_file = $tmp/token|" "$tmp/second.conf" > "$tmp/second.new"
mv "$tmp/second.new" "$tmp/second.conf"
reload_then 'configuration reloaded' 2
grep -v -e '^token_file' "$tmp/second.conf" > "$tmp/second.new" && mv "$tmp/second.new" "$tmp/second.conf"
reload_then 'reload refused' 2
get -H "Authorization: Bearer $token" "http://127.0.0.1:$port2/v1/vms"
[ "$code" = 200 ] || { kevd_stop "$r2"; die "after a two-step reload the token no longer works: $code"; }
# A limit libevent holds per listener: a reload that changes it says it
# waits for a restart, and the reload itself goes through.
sed "s|^socket = .*|&\ntoken_file = $tmp/token\nmax_body_bytes = 4096|" "$tmp/second.conf" > "$tmp/second.new"
mv "$tmp/second.new" "$tmp/second.conf"
reload_then 'configuration reloaded' 3
kevd_stop "$r2"
grep -q 'max_body_bytes, request_timeout, max_connections and socket_mode change only on restart' "$tmp/second.log" ||
	die "no warning that max_body_bytes waits for a restart"
grep -q 'the listeners change only on restart' "$tmp/second.log" || die "no warning that listen stays bound"

# A VM whose pager series Prometheus should see.
curl -sS -f --max-time 30 --unix-socket "$sock" -H 'Content-Type: application/json' \
	-d '{"name":"scraped","kernel":"guest.elf","cmdline":"touch=all"}' http://localhost/v1/vms > /dev/null ||
	die "creating a VM failed"

if ! command -v prometheus > /dev/null 2>&1; then
	echo "$me: prometheus is not installed: no scrape by a real Prometheus"
	exit 0
fi
cat > "$tmp/prometheus.yml" << CONF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: kevd
    static_configs:
      - targets: ['127.0.0.1:$mport']
CONF
ptries=0
while :; do
	pport=$(kevd_port)
	prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
		--web.listen-address="127.0.0.1:$pport" > "$tmp/prometheus.log" 2>&1 &
	prom=$!
	# Ready when it says so; gone when its port was taken.
	i=0
	while kill -0 "$prom" 2> /dev/null && [ "$i" -lt 200 ] &&
		! curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$pport/-/ready"; do
		sleep 0.05
		i=$((i + 1))
	done
	curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$pport/-/ready" && break
	kevd_stop "$prom"
	prom=
	ptries=$((ptries + 1))
	[ "$ptries" -lt 5 ] || die "prometheus did not start: $(tail -5 "$tmp/prometheus.log")"
done
# query EXPR: succeeds once Prometheus returns a sample for it.
query() {
	curl -sS -G --max-time 5 "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1" \
		-o "$tmp/q" 2> /dev/null && grep -q '"result":\[{' "$tmp/q"
}
i=0
until query 'up{job="kevd"} == 1' && query 'kevd_vm_pager_faults_total{vm="scraped"} > 0'; do
	i=$((i + 1))
	if [ "$i" -ge 60 ]; then
		sed 's/^/prometheus: /' "$tmp/prometheus.log" | tail -20
		die "Prometheus did not scrape kevd within 60 s"
	fi
	sleep 1
done
curl -sS --max-time 5 "http://127.0.0.1:$pport/api/v1/targets" -o "$tmp/targets"
grep -q '"health":"up"' "$tmp/targets" || die "Prometheus reports the kevd target unhealthy: $(cat "$tmp/targets")"
grep -q '"lastError":""' "$tmp/targets" || die "Prometheus reports a scrape error: $(cat "$tmp/targets")"
echo "$me: ok (Prometheus scraped 127.0.0.1:$mport)"
