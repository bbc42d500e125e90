# The rollout curve: pushes, successes and failures per second over time,
# from a CSV with the header
#   t_s,pushes_per_s,successes_per_s,failures_per_s[,rss_MB],...
# Shared by scripts/bench_plot.sh (the fleet benchmark's curves, with RSS)
# and `fotactl task curve` (a real task from its event history; fotactl
# embeds this file at build time). Set before loading:
#   csv    input CSV file
#   svg    output SVG file
#   title  the plot's title
#   rss    1 when column 5 is the RSS in MB (plotted on the right axis)
set terminal svg size 900,450 dynamic enhanced font "sans,12" background rgb "white"
set output svg
set datafile separator ","
set key outside top center horizontal
set title title noenhanced
set xlabel "time since rollout start (s)"
set ylabel "per second"
set ytics nomirror
set yrange [0:*]
set grid
set format y "%.0s%c"
if (rss) {
  set y2label "RSS (MB)"
  set y2tics
  set y2range [0:*]
  plot csv using 1:2 skip 1 with lines lw 2 title "pushes/s", \
       csv using 1:3 skip 1 with lines lw 2 title "successes/s", \
       csv using 1:4 skip 1 with lines lw 2 title "failures/s", \
       csv using 1:5 skip 1 axes x1y2 with lines lw 1 dt 2 lc "black" title "RSS (MB)"
} else {
  plot csv using 1:2 skip 1 with lines lw 2 title "pushes/s", \
       csv using 1:3 skip 1 with lines lw 2 title "successes/s", \
       csv using 1:4 skip 1 with lines lw 2 title "failures/s"
}
