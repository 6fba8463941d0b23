#!/bin/sh
# Draws the data the benchmarks leave beside their tables as PNG pictures
# (gnuplot, 800x500), one gnuplot script per picture in bench/plots/:
#   vm.png            bench_vm.sh's vm.tsv: wall time and peak RSS of the test
#                     guest, 1 vCPU, kevd lazy / kevd eager / QEMU microvm
#   load_latency.png  vm_hist.tsv (and linux_hist.tsv): the pager's
#                     load-latency histogram, share of loads per bucket
#   linux_pages.png   bench_linux.sh's linux_pages.tsv and linux_events.tsv:
#                     image pages loaded over time during the Linux boot
# A picture whose data is missing is skipped (said so on stderr).
#
# usage: bench/plot.sh [-o OUTDIR] [DATADIR]
#   DATADIR  where the .tsv files are (default $KEVD_BENCH_OUT, else bench/out)
#   -o DIR   where the .png files go (default DATADIR)
#
# Needs gnuplot (Debian package gnuplot-nox) with its pngcairo terminal.
set -eu
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
outdir=
while [ $# -gt 0 ]; do
	case $1 in
	-o) outdir=${2:?}; shift 2 ;;
	-h | --help) sed -n '12,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "plot.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
data=${1:-${KEVD_BENCH_OUT:-$here/out}}
outdir=${outdir:-$data}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot is not installed (Debian package gnuplot-nox)" >&2; exit 1; }
[ -d "$data" ] || { echo "plot.sh: no data directory $data (run bench/bench_vm.sh or bench/bench_linux.sh first)" >&2; exit 1; }
mkdir -p "$outdir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-plot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

made=0
# gp SCRIPT OUT.png TITLE ORIGIN -e VAR=VALUE...: runs bench/plots/SCRIPT with its
# inputs; the picture's title is TITLE over ORIGIN (when and where measured).
gp() {
	s=$1 png=$2 title=$3 sub=$4
	shift 4
	# Double quotes: a "\n" in SUB starts a new line (origin() leaves no quote or backslash).
	set -- -e "out='$outdir/$png'" -e "title='$title'" -e "sub=\"$sub\"" "$@"
	gnuplot "$@" "$here/plots/$s"
	echo "plot.sh: $outdir/$png" >&2
	made=$((made + 1))
}
# origin FILE: the run's description, the first line of FILE without "# ".
origin() { sed -n '1s/^# //p' "$1" | sed 's/^kevd [A-Za-z ]* benchmark (\([^)]*\))/measured \1/; s/load average \([0-9.]*\) at start, \([0-9.]*\) at end/load \1 to \2/; s/, kevd .*//; s/'"'"'//g'; }

# --- vm.png: one row per workload, 1 vCPU --------------------------------------
if [ -s "$data/vm.tsv" ]; then
	awk -F '\t' '
		function put(k, c, v) { if (!(k in seen)) { seen[k] = 1; order[++n] = k } val[k, c] = v }
		$1 ~ /^kevd-lazy-v1-w[0-9]+$/ { put($3, 1, $4); put($3, 5, $7) }
		$1 ~ /^kevd-lazy-private-v1-w[0-9]+$/ { put($3, 2, $4); put($3, 6, $7) }
		$1 ~ /^kevd-eager-v1-w[0-9]+$/ { put($3, 3, $4); put($3, 7, $7) }
		$1 ~ /^qemu-v1-w[0-9]+$/ { put($3, 4, $4); put($3, 8, $7) }
		function label(w) {
			if (w == "touch=all") return "all"
			if (w ~ /^touch=percent:[0-9]+$/) { sub(/^touch=percent:/, "", w); return w "%" }
			if (w ~ /^touch=none/) return "none"
			return w
		}
		END {
			for (i = 1; i <= n; i++) {
				k = order[i]; line = label(k)
				for (c = 1; c <= 8; c++) line = line "\t" (((k, c) in val) ? val[k, c] : "-")
				print line
			}
		}' "$data/vm.tsv" >"$tmp/vm_wide.tsv"
	if [ -s "$tmp/vm_wide.tsv" ]; then
		gp vm.gp vm.png "test guest (32 MiB image, 128 MiB guest, 1 vCPU), median of the runs" "$(origin "$data/vm.tsv")" \
			-e "data='$tmp/vm_wide.tsv'"
	else
		echo "plot.sh: vm.tsv has no 1-vCPU test-guest rows: vm.png skipped" >&2
	fi
else
	echo "plot.sh: no $data/vm.tsv (bench/bench_vm.sh writes it): vm.png skipped" >&2
fi

# --- load_latency.png: share of loads per bucket, one column per configuration ---
: >"$tmp/hist"
for f in "$data/vm_hist.tsv" "$data/linux_hist.tsv"; do
	[ ! -s "$f" ] || tail -n +2 "$f" >>"$tmp/hist"
done
if [ -s "$tmp/hist" ]; then
	awk -F '\t' '
		BEGIN {
			want["kevd-lazy-v1-w0"] = "test guest, touch all, lazy, window 16→256"
			want["kevd-lazy-private-v1-w0"] = "test guest, touch all, lazy-private, window 16→256"
			want["kevd-lazy-w1-v1-w0"] = "test guest, touch all, lazy, window 1"
			want["kevd-lazy-v4-w0"] = "test guest, touch all, lazy, window 16→256, 4 vCPUs"
			want["linux-boot-lazy"] = "Debian kernel boot, lazy"
			nb = 0; ns = 0
		}
		!($1 in want) { next }
		{
			if (!($1 in total)) series[++ns] = $1
			if (!($2 in bseen)) { bseen[$2] = 1; bucket[++nb] = $2 }
			cnt[$1, $2] += $3; total[$1] += $3
		}
		function label(le) {
			if (le == "inf") return "more"
			if (le < 1000) return "≤" le " µs"
			if (le < 1000000) return sprintf("≤%.*f ms", le < 10000 ? 1 : 0, le / 1000)
			return sprintf("≤%.1f s", le / 1000000)
		}
		END {
			# only the buckets from the first to the last that any series uses
			lo = 0; hi = 0
			for (b = 1; b <= nb; b++) for (s = 1; s <= ns; s++)
				if (cnt[series[s], bucket[b]] > 0) { if (!lo) lo = b; hi = b }
			if (!lo) exit
			line = "bucket"
			for (s = 1; s <= ns; s++) line = line "\t" want[series[s]] " (" total[series[s]] " loads)"
			print line
			for (b = lo; b <= hi; b++) {
				line = label(bucket[b])
				for (s = 1; s <= ns; s++)
					line = line "\t" (total[series[s]] ? sprintf("%.2f", cnt[series[s], bucket[b]] * 100 / total[series[s]]) : 0)
				print line
			}
			print ns + 1 > "/dev/stderr"
		}' "$tmp/hist" >"$tmp/hist_wide.tsv" 2>"$tmp/hist_cols"
	if [ -s "$tmp/hist_wide.tsv" ]; then
		# The two benchmarks may come from different runs: name each one's.
		o=
		[ ! -s "$data/vm_hist.tsv" ] || o="test guest: $(origin "$data/vm.tsv" 2>/dev/null || true)"
		if [ -s "$data/linux_hist.tsv" ] && [ "$(wc -l <"$data/linux_hist.tsv")" -gt 1 ]; then
			o="$o${o:+\\n}Linux boot: $(origin "$data/linux_pages.tsv" 2>/dev/null || true)"
		fi
		gp load_latency.gp load_latency.png "pager load latency (fault event read to pages installed), all runs" "$o" \
			-e "data='$tmp/hist_wide.tsv'" -e "ncol=$(cat "$tmp/hist_cols")"
	else
		echo "plot.sh: the histograms hold no loads: load_latency.png skipped" >&2
	fi
else
	echo "plot.sh: no vm_hist.tsv or linux_hist.tsv: load_latency.png skipped" >&2
fi

# --- linux_pages.png ---------------------------------------------------------------
if [ -s "$data/linux_pages.tsv" ]; then
	awk -F '\t' 'NR > 1 && $1 == "lazy"' "$data/linux_pages.tsv" >"$tmp/lazy.tsv"
	awk -F '\t' 'NR > 1 && $1 == "eager"' "$data/linux_pages.tsv" >"$tmp/eager.tsv"
	# Marks for the events: the banner of each mode, the end of the lazy run.
	: >"$tmp/marks.gp"
	if [ -s "$data/linux_events.tsv" ]; then
		# A label right of its line, or left of it in the last third of the time axis.
		tmax=$(awk -F '\t' 'FNR > 1 && $3 + 0 > m { m = $3 + 0 } END { print m + 0 }' "$data/linux_events.tsv")
		awk -F '\t' -v tmax="$tmax" '
			function mark(t, text, y) {
				printf "set label \"%s\" at %s, graph %s front boxed %s\n", text, t, y,
					(t > tmax * 0.66 ? "right offset -0.6,0" : "left offset 0.6,0")
			}
			NR > 1 && $2 == "banner" {
				printf "set arrow from %s, graph 0 to %s, graph 1 nohead dt 2 lc rgb \"#555555\"\n", $3, $3
				mark($3, sprintf("banner (%s) %.1f s", $1, $3), $1 == "lazy" ? 0.64 : 0.57)
			}
			NR > 1 && $1 == "lazy" && $2 == "end" && $4 != "running" {
				mark($3, sprintf("lazy VM %s at %.0f s", $4, $3), 0.12)
			}
		' "$data/linux_events.tsv" >"$tmp/marks.gp"
	fi
	gp linux_pages.gp linux_pages.png "Debian cloud kernel booting under kevd, 512 MiB, 1 vCPU" "$(origin "$data/linux_pages.tsv")" \
		-e "lazy='$tmp/lazy.tsv'" -e "eager='$tmp/eager.tsv'" -e "marks='$tmp/marks.gp'"
else
	echo "plot.sh: no $data/linux_pages.tsv (bench/bench_linux.sh writes it): linux_pages.png skipped" >&2
fi

[ "$made" -gt 0 ] || { echo "plot.sh: nothing to draw in $data" >&2; exit 1; }
