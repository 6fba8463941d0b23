#!/bin/bash
# Idle connections against the TCP listener: kevd runs with a limit of
# 1024 descriptors (prlimit) and a TCP listener (token required, [api] max_connections at its
# default 256); a client opens CONNS TCP connections (default 1100: more
# than the daemon has descriptors) that send nothing and holds them
# SECONDS; meanwhile bench_api samples GET /v1/health on the Unix socket.
# Reports kevd's CPU time while the connections are held, how many were
# answered 503 (over the cap) or left waiting in the kernel's backlog,
# health p50/p99/max, and how much the log grew.
#
# usage: bench/bench_conns.sh [-c CONNS] [-s SECONDS]   (defaults 1100, 5)
set -eu
export LC_ALL=C
conns=1100
secs=5
while [ $# -gt 0 ]; do
	case $1 in
	-c) conns=${2:?}; shift 2 ;;
	-s) secs=${2:?}; shift 2 ;;
	*) echo "usage: bench/bench_conns.sh [-c CONNS] [-s SECONDS]" >&2; exit 2 ;;
	esac
done
top=$(cd "$(dirname "$0")/.." && pwd)
kevd="$top/kevd"
gen="$top/bench/bench_api"
. "$top/bench/lib.sh"
bench_begin bench_conns python3 prlimit curl bench_api
port=$((20000 + RANDOM % 20000))
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tmp/token"
daemon_dir "$tmp" "$top/tests/guests/testguest.elf" <<EOF
EOF
sed -i "s|^\[api\]|[api]\nlisten = 127.0.0.1:$port\ntoken_file = $tmp/token|" "$tmp/kevd.conf"
daemon_start "$kevd" "$tmp"
prlimit --pid "$pid" --nofile=1024:1024
ulimit -n 8192 2> /dev/null || :
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
log0=$(stat -c %s "$tmp/kevd.log")
# The client holds its connections 2 x SECONDS: kevd's CPU is read over
# the first SECONDS (nothing else asks it anything), health is sampled in
# the second.
python3 - "$port" "$conns" "$((secs * 2))" > "$tmp/client" <<'EOF2' &
import socket, sys, time, select
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    socks.append(s)
end = time.time() + secs
answered = 0
closed = set()
byfd = {s.fileno(): s for s in socks}
p = select.poll()
for s in socks:
    p.register(s, select.POLLIN)
while time.time() < end:
    for fd, _ in p.poll(200):
        s = byfd[fd]
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if b" 503 " in data:
            answered += 1
        closed.add(s)
        p.unregister(fd)
print("answered_503=%d closed=%d held=%d" % (answered, len(closed), n - len(closed)))
EOF2
cpid=$!
sleep 0.5
t0=$(cpu_ticks)
sleep "$secs"
t1=$(cpu_ticks)
"$gen" "$tmp/kevd.sock" load --threads 1 --seconds "$((secs - 1))" --path /v1/health > "$tmp/health" 2>&1 || :
wait "$cpid" || :
log1=$(stat -c %s "$tmp/kevd.log")
hz=$(getconf CLK_TCK)
kv() { grep "^$2=" "$1" | head -n 1 | cut -d= -f2; }
echo "bench_conns: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(loadavg), $(kevd_build)"
echo "kevd with 1024 descriptors, TCP listener with max_connections 256; $conns idle TCP connections held $((secs * 2)) s"
echo "client: $(cat "$tmp/client") (503: over the cap; closed: by kevd; held: accepted and idle, or waiting in the backlog)"
echo "kevd CPU while they were held (no other request): $(( (t1 - t0) * 1000 / hz )) ms in ${secs} s"
echo "log grew by $((log1 - log0)) bytes; its last lines:"
tail -n 3 "$tmp/kevd.log" | sed 's/^/  /'
printf 'GET /v1/health (Unix socket) meanwhile: %s requests, p50 %s ms, p99 %s ms, max %s ms\n' "$(kv "$tmp/health" lat_n)" \
	"$(fmt "$(kv "$tmp/health" lat_p50_ns)" 1e6 2)" "$(fmt "$(kv "$tmp/health" lat_p99_ns)" 1e6 2)" \
	"$(fmt "$(kv "$tmp/health" lat_max_ns)" 1e6 2)"
echo "target (issue): no spin, Unix-socket health p99 <= 50 ms, log bounded"
