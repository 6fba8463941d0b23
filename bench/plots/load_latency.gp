# The pager's load-latency histogram: share of each configuration's loads in
# each power-of-two bucket.  Run by bench/plot.sh with: out, title, sub, data
# (bucket label, then one column of percentages per configuration, with a
# header line naming them), ncol (columns in data).
set terminal pngcairo size 800,500 font "DejaVu Sans,10"
set output out
set datafile separator "\t"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics lc rgb "#dddddd"
set key top right samplen 1.5 font ",9"
set title title . "\n" . sub font ",10"
set ylabel "share of the loads (%)"
set xlabel "load latency bucket (upper bound)"
set yrange [0:*]
set offsets 0, 0, graph 0.05, 0
set xtics nomirror rotate by 30 right
set ytics nomirror
plot for [i=2:ncol] data using i:xtic(1) title columnheader(i)
