#!/usr/bin/env bash
# Runs the fleet benchmark (bench/fleet_bench.cpp) RUNS times per fleet size,
# each run in its own process, and prints the median of every figure per
# size as a markdown table. Writes under bench/results/:
#   raw/fleet-<size>-run<i>.json   each run's Google Benchmark JSON
#   raw/curve-<size>-run<i>.csv    each run's rollout curve
#   curve-<size>.csv               the curve of the run with the median
#                                  upgrades/s (what bench_plot.sh renders)
#   scaling.dat                    medians per size (rows of other sizes kept)
#   fleet-medians.json             medians per size (entries of other sizes kept)
# Usage: scripts/bench_fleet.sh [--report] [RUNS] [SIZES...]
#   (default: 3 10000 100000 1000000; --report only aggregates the raw files
#   of earlier runs)
# Environment: FOTA_BENCH_BIN (default build/bench/bench/fota_bench_fleet),
# FOTA_BENCH_POLICY (Sharing or Stealing, default Sharing); the benchmark's
# own FOTA_BENCH_* variables pass through.
set -euo pipefail
cd "$(dirname "$0")/.."

report_only=0
if [ "${1:-}" = --report ]; then
  report_only=1
  shift
fi
runs="${1:-3}"
shift || true
sizes=("$@")
if ((${#sizes[@]} == 0)); then sizes=(10000 100000 1000000); fi
bin="${FOTA_BENCH_BIN:-build/bench/bench/fota_bench_fleet}"
policy="${FOTA_BENCH_POLICY:-Sharing}"
out=bench/results
raw="$out/raw"

if ((!report_only)) && [ ! -x "$bin" ]; then
  echo "bench_fleet: $bin is missing; build it with" >&2
  echo "  cmake --preset bench && cmake --build --preset bench --target fota_bench_fleet" >&2
  exit 2
fi
command -v python3 >/dev/null || { echo "bench_fleet: needs python3" >&2; exit 2; }
mkdir -p "$raw"

load_before="$(uptime)"
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# Runs alternate between sizes, so that a burst of load on the shared
# machine spreads over all of them rather than one.
for ((i = 1; i <= runs && !report_only; i++)); do
  for n in "${sizes[@]}"; do
    json="$raw/fleet-$n-run$i.json"
    echo "bench_fleet: $policy, $n devices, run $i of $runs" >&2
    FOTA_BENCH_CURVE="$raw/curve-$n-run$i.csv" "$bin" \
      --benchmark_filter="Fleet/$policy/devices:$n/" \
      --benchmark_format=json --benchmark_out_format=json \
      --benchmark_out="$json" >/dev/null 2>"$raw/fleet-$n-run$i.err" ||
      echo "bench_fleet: run $i at $n exited with $?" >&2
    # Keep stderr only when it says more than libbenchmark's build warning.
    if ! grep -qv 'Library was built as DEBUG' "$raw/fleet-$n-run$i.err"; then
      rm -f "$raw/fleet-$n-run$i.err"
    fi
  done
done
load_after="$(uptime)"
if ((report_only)); then
  load_before="(report only)" load_after="(report only)" started="(report only)"
fi

python3 - "$out" "$runs" "$policy" "$started" "$load_before" "$load_after" \
  "$(nproc)" "${sizes[@]}" <<'PY'
import json, os, shutil, statistics, sys

out, runs, policy, started, load_before, load_after, nproc = sys.argv[1:8]
sizes = [int(x) for x in sys.argv[8:]]
runs = int(runs)

# (counter, label, format)
figures = [
    ("devices/s", "registration + online, devices/s", "{:,.0f}"),
    ("task_create_s", "task creation, s", "{:.3f}"),
    ("upgrades/s", "**device upgrades/s** (durable, to SUCCEEDED)", "{:,.0f}"),
    ("events/s", "events made durable/s (rollout)", "{:,.0f}"),
    ("events/upgrade", "events per upgrade", "{:.2f}"),
    ("cpu_us/upgrade", "CPU µs per upgrade (process, rollout)", "{:.1f}"),
    ("rss_KB/device", "RSS per device after registration, KB", "{:.2f}"),
    ("rss_KB/device_task", "RSS per device with the finished task, KB", "{:.2f}"),
    ("peak_rss_MB", "peak RSS, MB", "{:,.0f}"),
    ("stop_s", "stop (node stop until done), s", "{:.3f}"),
    ("shutdown_s", "actor system shutdown after stop, s", "{:.3f}"),
    ("gettask_p50_ms", "operator GetTask p50 during rollout, ms", "{:.2f}"),
    ("gettask_p99_ms", "operator GetTask p99 during rollout, ms", "{:.2f}"),
    ("gettask_calls", "GetTask calls (per run)", "{:,.0f}"),
    ("upgrade_s", "rollout duration, s", "{:.2f}"),
    ("first_push_s", "first push after CreateTask's OK, s", "{:.3f}"),
    ("register_s", "registration duration, s", "{:.2f}"),
]

medians, kept_runs, errors, median_run, loads = {}, {}, {}, {}, {}
for n in sizes:
    rows = []
    for i in range(1, runs + 1):
        path = os.path.join(out, "raw", f"fleet-{n}-run{i}.json")
        try:
            with open(path) as f:
                doc = json.load(f)
            load = doc.get("context", {}).get("load_avg", [])
            if load:
                loads.setdefault(n, []).append(load[0])
        except (OSError, ValueError) as e:
            errors.setdefault(n, []).append(f"run {i}: no JSON ({e})")
            continue
        for b in doc.get("benchmarks", []):
            if b.get("error_occurred"):
                errors.setdefault(n, []).append(
                    f"run {i}: {b.get('error_message', '?')}")
            elif "upgrades/s" in b:
                rows.append((i, b))
    kept_runs[n] = len(rows)
    if not rows:
        continue
    medians[n] = {k: statistics.median(b[k] for _, b in rows if k in b)
                  for k, _, _ in figures if any(k in b for _, b in rows)}
    # The run whose upgrades/s is the median (the lower one for even counts).
    ranked = sorted(rows, key=lambda r: r[1]["upgrades/s"])
    median_run[n] = ranked[(len(ranked) - 1) // 2][0]
    curve = os.path.join(out, "raw", f"curve-{n}-run{median_run[n]}.csv")
    if os.path.exists(curve):
        shutil.copyfile(curve, os.path.join(out, f"curve-{n}.csv"))

def size_name(n):
    return f"{n // 1000000}M" if n % 1000000 == 0 else f"{n // 1000}k"

measured = [n for n in sizes if n in medians]
print(f"Fleet benchmark, {policy} scheduler, median of the runs per size "
      f"(started {started}, nproc {nproc})\n")
print("| figure | " + " | ".join(f"{size_name(n)} ({kept_runs[n]} runs)"
                               for n in measured) + " |")
print("|---|" + "---|" * len(measured))
for key, label, fmt in figures:
    cells = [fmt.format(medians[n][key]) if key in medians[n] else "–"
             for n in measured]
    print(f"| {label} | " + " | ".join(cells) + " |")
print("| 1-min load average at each run's start | " + " | ".join(
    ", ".join(f"{x:.1f}" for x in loads.get(n, [])) for n in measured) + " |")
print()
print(f"load before: {load_before.strip()}")
print(f"load after:  {load_after.strip()}")
for n, errs in errors.items():
    for e in errs:
        print(f"failed at {size_name(n)}: {e}")

# Merge into the medians kept so far: sizes not measured now stay.
store = os.path.join(out, "fleet-medians.json")
try:
    with open(store) as f:
        kept = json.load(f)
except (OSError, ValueError):
    kept = {}
for n in measured:
    entry = {"devices": n, "policy": policy, "runs": kept_runs[n],
             "started": started, "nproc": int(nproc),
             "load_before": load_before, "load_after": load_after,
             "load_avg_1min_at_start": loads.get(n, []), "median": medians[n]}
    old = kept.get(f"{policy}/{n}", {})
    if started == "(report only)":  # keep what the measuring run recorded
        for k in ("started", "load_before", "load_after"):
            entry[k] = old.get(k, entry[k])
    kept[f"{policy}/{n}"] = entry
with open(store, "w") as f:
    json.dump(kept, f, indent=2, sort_keys=True)
    f.write("\n")

# scaling.dat, for bench_plot.sh: the Sharing scheduler's sizes.
rows = sorted((v for v in kept.values() if v["policy"] == "Sharing"),
              key=lambda v: v["devices"])
with open(os.path.join(out, "scaling.dat"), "w") as f:
    f.write("# fleet benchmark medians (scripts/bench_fleet.sh), Sharing scheduler\n")
    f.write("# devices upgrades_per_s task_create_s rss_KB_per_device "
            "rss_KB_per_device_task peak_rss_MB gettask_p99_ms runs\n")
    for v in rows:
        m = v["median"]
        f.write("{} {:.0f} {:.4f} {:.3f} {:.3f} {:.1f} {:.3f} {}\n".format(
            v["devices"], m.get("upgrades/s", 0), m.get("task_create_s", 0),
            m.get("rss_KB/device", 0), m.get("rss_KB/device_task", 0),
            m.get("peak_rss_MB", 0), m.get("gettask_p99_ms", 0), v["runs"]))
PY
