# Image pages loaded over time while Debian's kernel boots under kevd, lazy and
# eager, from GET /v1/vms/{id}/paging sampled during the run; the lazy run's
# pager faults on the right axis.  Run by bench/plot.sh with: out, title, sub,
# lazy and eager (rows mode, t_s, pages_loaded, image_pages, loaded_pct,
# faults, read_mib), marks (a gnuplot file of arrows and labels for events).
set terminal pngcairo size 800,500 font "DejaVu Sans,10"
set output out
set datafile separator "\t"
set title title . "\n" . sub font ",10"
set xlabel "seconds since the create request"
set ylabel "image pages loaded (% of the image)"
set y2label "pager faults (lazy)"
set yrange [0:105]
set y2range [0:*]
set xrange [0:*]
set ytics nomirror
set y2tics
set grid lc rgb "#dddddd"
set key bottom right
set style textbox opaque noborder
load marks
plot eager using 2:5 with lines lw 2 lc rgb "#ff7f0e" title "kevd eager: % loaded", \
     lazy using 2:5 with lines lw 2 lc rgb "#1f77b4" title "kevd lazy: % loaded", \
     lazy using 2:6 axes x1y2 with lines lw 1.5 dt 2 lc rgb "#1f77b4" title "kevd lazy: pager faults (right axis)"
