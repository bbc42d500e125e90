/// The rollout curve of a task, drawn by `fotactl task curve`: its events
/// binned per second (pushes, successes, failures), written as the CSV that
/// the fleet benchmark's curves use, and plotted with the gnuplot program
/// that scripts/bench_plot.sh runs (scripts/rollout_curve.gp, embedded at
/// build time).
#pragma once

#include "fota/v1/api.pb.h"

#include <cstdint>
#include <string>
#include <vector>

namespace fota::curve {

/// One second of a rollout: what happened in [second, second + 1) after
/// the task was created, and the totals up to its end.
struct bin {
  int64_t second = 0;
  uint64_t pushes = 0;
  uint64_t successes = 0;
  uint64_t failures = 0;
  uint64_t total_pushes = 0;
  uint64_t total_successes = 0;
  uint64_t total_failures = 0;
};

/// Bins a task's history entries (in log order, the first being its
/// creation, which starts the clock) per second. A push is an
/// ExecutionNotified (an offer, for a device-request task), a success an
/// ExecutionSucceeded, a failure an ExecutionFailed or ExecutionTimedOut.
/// Every second from 0 to the last entry's has a bin, empty ones too.
/// An entry stamped before the first counts in second 0.
std::vector<bin> bin_rollout(const std::vector<v1::HistoryEntry>& entries);

/// The CSV: `t_s,pushes_per_s,successes_per_s,failures_per_s,pushes,
/// successes,failures`, one row per bin, `t_s` its start.
std::string to_csv(const std::vector<bin>& bins);

/// The gnuplot program shared with scripts/bench_plot.sh.
const char* gnuplot_program();

/// `x` as a gnuplot string literal (single quotes, each quote doubled).
std::string gnuplot_quote(const std::string& x);

/// The full path of `gnuplot` on PATH, or empty when it is missing.
std::string find_gnuplot();

/// Plots `csv` into `svg` with `title` by running gnuplot; returns an
/// empty string on success, else what went wrong.
std::string plot(const std::string& gnuplot, const std::string& csv,
                 const std::string& svg, const std::string& title);

} // namespace fota::curve
