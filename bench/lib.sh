# Shared by bench/bench_api.sh and bench/bench_linux.sh (sourced, not run).
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
