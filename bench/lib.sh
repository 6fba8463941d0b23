# Shared by the bench scripts (sourced, not run).
# Results are lines "NAME KEY VALUE" in $tmp/results ("-" = no value);
# the helpers print "-" rather than failing on missing values.

res() { echo "$1 $2 $3" >>"$tmp/results"; }
# values NAME KEY: the recorded values, sorted numerically
values() { awk -v n="$1" -v k="$2" '$1 == n && $2 == k && $3 != "-" { print $3 }' "$tmp/results" | sort -g; }
med() { values "$1" "$2" | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }
top_() { values "$1" "$2" | awk '{ v = $1 } END { if (NR == 0) print "-"; else print v }'; }
cnt() { values "$1" "$2" | awk 'END { print NR }'; }
spread() {
	values "$1" "$2" |
		awk '{ v[NR] = $1 } END { m = v[int((NR + 1) / 2)]; if (NR == 0 || m == 0) print "-"; else printf "%.0f%%\n", (v[NR] - v[1]) * 100 / m }'
}
# fmt VALUE DIVISOR DECIMALS
fmt() { case $1 in -) echo - ;; *) awk -v v="$1" -v d="$2" -v p="$3" 'BEGIN { printf "%.*f\n", p, v / d }' ;; esac; }
# rate N NS: N per second
rate() { case "$1$2" in *-*) echo - ;; *) awk -v n="$1" -v t="$2" 'BEGIN { if (t <= 0) print "-"; else printf "%.3f\n", n * 1e9 / t }' ;; esac; }
ratio() { case "$1$2" in *-*) echo - ;; *) awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2fx\n", a / b }' ;; esac; }
frac() { case "$1$2" in *-*) echo - ;; *) awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.1f%%\n", a * 100 / b }' ;; esac; }
loadavg() { cut -d " " -f 1-3 /proc/loadavg; }

# kevd_build: when $kevd was built and which sanitizers it carries (a
# sanitizer build is several times slower; ./kevd may be rebuilt any time).
kevd_build() {
	san=''
	for s in asan tsan ubsan; do
		grep -aq "__${s}_" "$kevd" && san="$san${san:+,}$s"
	done
	echo "binary built $(date -u -r "$kevd" '+%H:%M:%S UTC'), sanitizers: ${san:-none}"
}

# daemon_dir DIR GUEST: DIR/images holding a copy of GUEST as guest.elf,
# and DIR/kevd.conf for a daemon on DIR/kevd.sock logging warnings only,
# followed by the lines on stdin (more sections: [limits], ...).
daemon_dir() {
	mkdir "$1/images"
	cp "$2" "$1/images/guest.elf"
	{
		printf '[api]\nsocket = %s/kevd.sock\n[paths]\nimage_dir = %s/images\nstate_dir = %s\nruntime_dir = %s\n' \
			"$1" "$1" "$1" "$1"
		printf '[log]\nlevel = warn\n'
		cat
	} > "$1/kevd.conf"
}

# daemon_start KEVD DIR: `KEVD serve` on DIR's configuration in the
# background (its pid in $pid, its log in DIR/kevd.log); returns once it
# answers /v1/health (5 s at most, else fails saying so).
daemon_start() {
	"$1" serve --config "$2/kevd.conf" > "$2/kevd.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		curl -s --unix-socket "$2/kevd.sock" http://l/v1/health > /dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "kevd did not start: $(cat "$2/kevd.log")" >&2
	return 1
}

# bench_begin NAME NEED...: what every bench script checks first, by NEED:
# kvm (/dev/kvm that cannot be opened: skipped, exit 77), bench_api (built),
# or a command (missing: exit 1); then $tmp (a new directory), $sock in it,
# $pid (the daemon's, none yet) and the trap that stops the daemon and
# removes $tmp at exit (KEEP=1 keeps it).  $top must be set.
bench_begin() {
	local me=$1 need
	shift
	for need in "$@"; do
		case $need in
		kvm) (exec 3<>/dev/kvm) 2>/dev/null || { echo "$me: /dev/kvm cannot be opened: skipped"; exit 77; } ;;
		bench_api) [ -x "$top/bench/bench_api" ] || { echo "$me: build bench/bench_api first (make bench/bench_api)" >&2; exit 1; } ;;
		*) command -v "$need" > /dev/null || { echo "$me: needs $need" >&2; exit 1; } ;;
		esac
	done
	tmp=$(mktemp -d)
	sock="$tmp/kevd.sock"
	pid=
	trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || :; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
}
