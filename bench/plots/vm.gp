# Test guest under kevd lazy, kevd eager and QEMU microvm: wall time and peak
# RSS per workload, side by side.  Run by bench/plot.sh with: out, title, sub,
# data (workload, then wall ms lazy/eager/QEMU, then RSS MiB lazy/eager/QEMU).
set terminal pngcairo size 800,500 font "DejaVu Sans,10"
set output out
set datafile separator "\t"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics lc rgb "#dddddd"
set key top left reverse Left samplen 1.5
set yrange [0:*]
set offsets 0, 0, graph 0.3, 0
set xtics nomirror
set xlabel "image pages the guest touches"
set ytics nomirror
# Bar k of 3 in cluster i sits at i + (k - 1) * 0.25 (gap 1: 4 slots of 0.25).
bar(k) = $0 + (k - 1) * 0.25
lazy = "#1f77b4"; eager = "#ff7f0e"; qemu = "#7f7f7f"

set multiplot layout 1, 2 title title . "\n" . sub font ",10"
set title "wall time, process start to exit (ms)"
plot data using 2:xtic(1) title "kevd lazy" lc rgb lazy, \
     '' using 3 title "kevd eager" lc rgb eager, \
     '' using 4 title "QEMU microvm" lc rgb qemu, \
     '' using (bar(0)):2:(sprintf("%.0f", $2)) with labels offset 0, 0.6 font ",8" notitle, \
     '' using (bar(1)):3:(sprintf("%.0f", $3)) with labels offset 0, 0.6 font ",8" notitle, \
     '' using (bar(2)):4:(sprintf("%.0f", $4)) with labels offset 0, 0.6 font ",8" notitle
set title "peak RSS of the VMM (MiB)"
plot data using 5:xtic(1) title "kevd lazy" lc rgb lazy, \
     '' using 6 title "kevd eager" lc rgb eager, \
     '' using 7 title "QEMU microvm" lc rgb qemu, \
     '' using (bar(0)):5:(sprintf("%.0f", $5)) with labels offset 0, 0.6 font ",8" notitle, \
     '' using (bar(1)):6:(sprintf("%.0f", $6)) with labels offset 0, 0.6 font ",8" notitle, \
     '' using (bar(2)):7:(sprintf("%.0f", $7)) with labels offset 0, 0.6 font ",8" notitle
unset multiplot
