# Test guest under kevd lazy, lazy-private, eager and QEMU microvm: wall time
# and peak RSS per workload, side by side.  Run by bench/plot.sh with: out,
# title, sub, data (workload, then wall ms lazy/lazy-private/eager/QEMU, then
# RSS MiB in the same order; "-" where a configuration did not run).
set terminal pngcairo size 800,500 font "DejaVu Sans,10"
set output out
set datafile separator "\t"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics lc rgb "#dddddd"
set key top left reverse Left samplen 1.5 font ",9"
set yrange [0:*]
set offsets 0, 0, graph 0.3, 0
set xtics nomirror
set xlabel "image pages the guest touches"
set ytics nomirror
# Bar k (0-based) of 4 in cluster i sits at i + (k - 1.5) / 5 (gap 1: 5 slots).
bar(k) = $0 + (k - 1.5) / 5.0
lazy = "#1f77b4"; private = "#9ecae1"; eager = "#ff7f0e"; qemu = "#7f7f7f"
lab(v) = sprintf("%.0f", v)

set multiplot layout 1, 2 title title . "\n" . sub font ",10"
set title "wall time, process start to exit (ms)"
plot data using 2:xtic(1) title "kevd lazy" lc rgb lazy, \
     '' using 3 title "kevd lazy-private" lc rgb private, \
     '' using 4 title "kevd eager" lc rgb eager, \
     '' using 5 title "QEMU microvm" lc rgb qemu, \
     for [k=0:3] '' using (bar(k)):(column(k + 2)):(lab(column(k + 2))) with labels offset 0, 0.6 font ",7" notitle
set title "peak RSS of the VMM (MiB)"
plot data using 6:xtic(1) title "kevd lazy" lc rgb lazy, \
     '' using 7 title "kevd lazy-private" lc rgb private, \
     '' using 8 title "kevd eager" lc rgb eager, \
     '' using 9 title "QEMU microvm" lc rgb qemu, \
     for [k=0:3] '' using (bar(k)):(column(k + 6)):(lab(column(k + 6))) with labels offset 0, 0.6 font ",7" notitle
unset multiplot
