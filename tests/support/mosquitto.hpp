/// A real Mosquitto broker for the end-to-end tests of the MQTT side: on a
/// free loopback port, anonymous, without persistence, with its config and
/// log in a test's directory.
#pragma once

#include "tests/support/loopback.hpp"
#include "tests/support/processes.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace fota::test {

/// Where Debian installs the broker.
inline std::filesystem::path mosquitto_binary() {
  for (const char* x : {"/usr/sbin/mosquitto", "/usr/bin/mosquitto"})
    if (std::filesystem::exists(x))
      return x;
  return {};
}

class mosquitto {
public:
  /// Starts a broker with its files in `dir`; `port()` is 0 when it did not
  /// come up (its log says why).
  explicit mosquitto(const std::filesystem::path& dir) : dir_(dir) {
    auto exe = mosquitto_binary();
    if (exe.empty())
      return;
    port_ = free_port();
    {
      std::ofstream conf{dir_ / "mosquitto.conf"};
      conf << "listener " << port_ << " 127.0.0.1\n"
           << "allow_anonymous true\n"
           << "persistence false\n"
           // The bridge and fota-sim carry many devices on one connection:
           // nothing for them may be dropped.
           << "max_queued_messages 0\n"
           << "max_inflight_messages 0\n"
           << "log_dest stderr\n";
    }
    start();
  }

  /// Starts the broker again on the same port (after `stop()`).
  void start() {
    proc_ = process{mosquitto_binary(),
                    {"-c", (dir_ / "mosquitto.conf").string()},
                    dir_ / "mosquitto.out",
                    dir_ / "mosquitto.err"};
    if (!eventually(
            [&] {
              auto fd = raw_connect(port_);
              if (fd >= 0)
                ::close(fd);
              return fd >= 0 || !proc_.running();
            },
            10s) ||
        !proc_.running())
      port_ = 0;
  }

  void stop() { proc_.stop(); }

  uint16_t port() const noexcept { return port_; }

  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

  std::string log() const { return proc_.err(); }

private:
  std::filesystem::path dir_;
  uint16_t port_ = 0;
  process proc_;
};

} // namespace fota::test
