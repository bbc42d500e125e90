/// Running the real binaries as child processes, for the end-to-end tests
/// and the crash-consistency torture harness: waiting on a condition with a
/// deadline, temporary directories, where the binaries are, and a child
/// process with its output in files.
#pragma once

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

extern char** environ;

namespace fota::test {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
namespace fs = std::filesystem;

inline constexpr auto default_deadline = 60s;
inline constexpr auto poll_interval = 50ms;

// -- waiting -----------------------------------------------------------------

/// Polls `pred` every 50 ms until it holds or `timeout` passes.
template <class Pred>
bool eventually(Pred pred, milliseconds timeout = default_deadline) {
  auto deadline = steady_clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(poll_interval);
  }
}

// -- files -------------------------------------------------------------------

inline std::string slurp(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A fresh directory, removed at the end unless it is to be kept.
class temp_dir {
public:
  explicit temp_dir(const std::string& prefix = "fota-e2e") {
    auto base = fs::temp_directory_path() / (prefix + ".XXXXXX");
    std::string templ = base.string();
    if (::mkdtemp(templ.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed: " +
                               std::string{std::strerror(errno)});
    path_ = templ;
  }

  ~temp_dir() {
    if (keep_) {
      std::fprintf(stderr, "keeping %s for inspection\n", path_.c_str());
      return;
    }
    std::error_code ec;
    fs::remove_all(path_, ec);
  }

  /// Keeps the directory, e.g. after a failure.
  void keep() noexcept { keep_ = true; }

  temp_dir(const temp_dir&) = delete;

  temp_dir& operator=(const temp_dir&) = delete;

  const fs::path& path() const noexcept { return path_; }

  fs::path operator/(const std::string& name) const { return path_ / name; }

private:
  fs::path path_;
  bool keep_ = false;
};

/// Where fotad, fotactl and fota-sim live: $FOTA_BIN_DIR, which ctest sets,
/// or the build tree's apps/ next to this test binary.
inline fs::path bin_dir() {
  if (const auto* env = std::getenv("FOTA_BIN_DIR"); env && *env)
    return env;
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  return self.parent_path().parent_path().parent_path() / "apps";
}

// -- processes ---------------------------------------------------------------

/// One child process with its stdout and stderr in files. The destructor
/// kills and reaps a child that is still running.
class process {
public:
  process() = default;

  process(const fs::path& exe, const std::vector<std::string>& args,
          fs::path out, fs::path err)
    : out_(std::move(out)), err_(std::move(err)) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> argv_s{exe.string()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    auto rc =
        ::posix_spawn(&pid_, exe.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error("cannot start " + exe.string() + ": " +
                               std::strerror(rc));
    }
  }

  process(process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      status_(std::exchange(other.status_, std::nullopt)),
      out_(std::move(other.out_)), err_(std::move(other.err_)) {
    // Nothing else to do.
  }

  process& operator=(process&& other) noexcept {
    if (this != &other) {
      reap();
      pid_ = std::exchange(other.pid_, -1);
      status_ = std::exchange(other.status_, std::nullopt);
      out_ = std::move(other.out_);
      err_ = std::move(other.err_);
    }
    return *this;
  }

  ~process() { reap(); }

  pid_t pid() const noexcept { return pid_; }

  /// The exit code, or 128 + signal number, once the child has ended.
  std::optional<int> exit_code() {
    if (!status_ && pid_ > 0) {
      int st = 0;
      auto r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_)
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return status_;
  }

  bool running() { return pid_ > 0 && !exit_code(); }

  /// Waits up to `timeout` for the child to end.
  std::optional<int> wait_for(milliseconds timeout) {
    eventually([&] { return !running(); }, timeout);
    return exit_code();
  }

  void signal(int sig) {
    if (running())
      ::kill(pid_, sig);
  }

  /// SIGTERM, then SIGKILL if the child lingers; returns the exit code.
  int stop(milliseconds grace = 10s) {
    signal(SIGTERM);
    if (auto rc = wait_for(grace))
      return *rc;
    signal(SIGKILL);
    return wait_for(10s).value_or(-1);
  }

  std::string out() const { return slurp(out_); }

  std::string err() const { return slurp(err_); }

private:
  void reap() {
    if (pid_ > 0 && !exit_code()) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    pid_ = -1;
  }

  pid_t pid_ = -1;
  std::optional<int> status_;
  fs::path out_;
  fs::path err_;
};

/// What a finished command printed and how it ended.
/// Waits up to `timeout` for fotad `p` to print `fotad listening on port
/// N`; returns N, or nothing once it ended (or the time ran out) without.
inline std::optional<uint16_t> listening_port(process& p,
                                              milliseconds timeout = 30s) {
  static const std::regex line{R"(fotad listening on port (\d+))"};
  std::smatch m;
  std::string text;
  eventually(
      [&] {
        text = p.out();
        return std::regex_search(text, m, line) || !p.running();
      },
      timeout);
  if (!std::regex_search(text, m, line))
    return std::nullopt;
  return static_cast<uint16_t>(std::stoul(m[1]));
}

struct run_result {
  int code = -1;
  std::string out;
  std::string err;
};

/// Runs `fotactl --port PORT ARGS...` to its end (60 s at most), its output
/// in `dir` under a name numbered by `runs`.
inline run_result run_fotactl(uint16_t port, const fs::path& dir, int& runs,
                              std::vector<std::string> args) {
  auto n = std::to_string(runs++);
  auto out = dir / ("fotactl-" + n + ".out");
  auto err = dir / ("fotactl-" + n + ".err");
  args.insert(args.begin(), {"--port", std::to_string(port)});
  process p{bin_dir() / "fotactl", args, out, err};
  run_result r;
  r.code = p.wait_for(60s).value_or(-1);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

} // namespace fota::test
