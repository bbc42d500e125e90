#!/usr/bin/env bash
# Renders the fleet benchmark's figures as SVGs under bench/results/ with
# gnuplot (Debian's gnuplot-nox, installed when missing):
#   curve-<size>.csv -> curve-<size>.svg   the rollout: pushes, successes and
#                                          failures per second, and RSS
#   scaling.dat      -> scaling.svg        upgrades/s, task creation time and
#                                          RSS per device against fleet size
# Usage: scripts/bench_plot.sh [CURVE.csv...]   (default: bench/results/curve-*.csv)
# The inputs come from scripts/bench_fleet.sh, or from one run with
# FOTA_BENCH_CURVE=path.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results

if ! command -v gnuplot >/dev/null; then
  echo "bench_plot: installing gnuplot-nox"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends gnuplot-nox
fi

curves=("$@")
if ((${#curves[@]} == 0)); then
  shopt -s nullglob
  curves=("$out"/curve-*.csv)
  shopt -u nullglob
fi

# A gnuplot string literal: single quotes, with each quote doubled.
gp_quote() { printf "'%s'" "${1//\'/\'\'}"; }

for csv in "${curves[@]}"; do
  svg="$out/$(basename "${csv%.csv}").svg"
  title="$(basename "${csv%.csv}")"
  # The program is shared with `fotactl task curve` (scripts/rollout_curve.gp).
  gnuplot -e "csv=$(gp_quote "$csv"); svg=$(gp_quote "$svg"); \
title=$(gp_quote "Rollout ($title): gateway view, per 100 ms"); rss=1" \
    scripts/rollout_curve.gp
  echo "bench_plot: wrote $svg"
done

dat="$out/scaling.dat"
if [ -f "$dat" ]; then
  gnuplot <<GP
set terminal svg size 1200,400 dynamic enhanced font "sans,12" background rgb "white"
set output "$out/scaling.svg"
set logscale x
set xlabel "devices"
set format x "%.0s%c"
set grid
set key top left
set multiplot layout 1,3 title "Fleet benchmark against fleet size (medians; Sharing scheduler)"
set title "device upgrades/s (durable)"
set yrange [0:*]
set format y "%.0s%c"
plot "$dat" using 1:2 with linespoints lw 2 pt 7 notitle
set title "task creation (s), log-log; dashed: linear in N"
set logscale y
set yrange [*:*]
set format y "%g"
# The reference line goes through the smallest fleet's point.
stats "$dat" using 1 every ::0::0 nooutput name "N"
stats "$dat" using 3 every ::0::0 nooutput name "T"
n0 = N_min
t0 = T_min
plot "$dat" using 1:3 with linespoints lw 2 pt 7 notitle, \
     t0 * x / n0 with lines dt 2 lc "gray" notitle
unset logscale y
set title "RSS per device (KB)"
set yrange [0:*]
set key bottom left
plot "$dat" using 1:4 with linespoints lw 2 pt 7 title "after registration", \
     "$dat" using 1:5 with linespoints lw 2 pt 5 title "with the finished task"
unset multiplot
GP
  echo "bench_plot: wrote $out/scaling.svg"
else
  echo "bench_plot: no $dat (scripts/bench_fleet.sh writes it)" >&2
fi
