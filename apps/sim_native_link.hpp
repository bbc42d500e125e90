/// fota-sim's devices on a gateway connection to the node: the native
/// protocol (docs/protocol.md), with a Hello on every reconnect.
#pragma once

#include "apps/sim_link.hpp"
#include "apps/tls_options.hpp"

#include <string>

namespace fota {

/// A gateway connection that can be opened again.
class sim_native_link : public sim_link {
public:
  /// Takes `cl`, already connected and past its Hello; reconnects to
  /// `host:port` with `token` and `tls`.
  sim_native_link(client cl, std::string host, uint16_t port, std::string token,
                  tls_cli_options tls);

  status reconnect() override;

  uint64_t queue(v1::ClientFrame frame) override;

  expected<size_t> poll(int timeout_ms, const response_handler& on_response,
                        const push_handler& on_push) override;

  void close() override;

  bool batches() const noexcept override { return true; }

private:
  client client_;
  std::string host_;
  uint16_t port_;
  std::string token_;
  tls_cli_options tls_;
};

} // namespace fota
