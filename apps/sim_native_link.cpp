#include "apps/sim_native_link.hpp"

#include <chrono>
#include <utility>

namespace fota {

using namespace std::chrono_literals;

sim_native_link::sim_native_link(client cl, std::string host, uint16_t port,
                                 std::string token, tls_cli_options tls)
  : client_(std::move(cl)), host_(std::move(host)), port_(port),
    token_(std::move(token)), tls_(std::move(tls)) {
  // nop
}

status sim_native_link::reconnect() {
  auto cl = client::connect(host_, port_, 1s, tls_.get());
  // Transport failures are worth retrying, whatever their code.
  if (!cl)
    return make_failure(errc::unavailable, cl.error().message);
  v1::ClientFrame hello;
  hello.mutable_hello()->set_token(token_);
  hello.mutable_hello()->set_client_name("fota-sim");
  auto r = cl->call(std::move(hello), 5s);
  if (!r)
    return make_failure(errc::unavailable, r.error().message);
  if (r->status() != v1::STATUS_CODE_OK)
    return make_failure(errc::permission_denied,
                        std::string{to_string(r->status())} + ": " +
                            r->message());
  client_ = std::move(*cl);
  return std::nullopt;
}

uint64_t sim_native_link::queue(v1::ClientFrame frame) {
  return client_.queue(std::move(frame));
}

expected<size_t> sim_native_link::poll(int timeout_ms,
                                       const response_handler& on_response,
                                       const push_handler& on_push) {
  return client_.poll(timeout_ms, on_response, on_push);
}

void sim_native_link::close() {
  client_.close();
}

} // namespace fota
