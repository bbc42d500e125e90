/// How fota-sim's devices reach the node. The simulator speaks native
/// device requests and hears native responses and pushes whatever carries
/// them: a gateway connection to the node (sim_native_link), or MQTT
/// through a broker and the bridge, fota-mqtt (sim_mqtt_link).
#pragma once

#include "api/client.hpp"
#include "events/error.hpp"
#include "fota/v1/api.pb.h"

#include <cstddef>
#include <cstdint>

namespace fota {

/// The transport of a simulator's devices.
class sim_link {
public:
  // -- member types ----------------------------------------------------------

  using response_handler = client::response_handler;

  using push_handler = client::push_handler;

  // -- constructors, destructors, and assignment operators -------------------

  sim_link() = default;

  sim_link(const sim_link&) = delete;

  sim_link& operator=(const sim_link&) = delete;

  virtual ~sim_link() = default;

  // -- the link --------------------------------------------------------------

  /// Connects again after `close()`. A failure with `errc::unavailable` is
  /// worth retrying; any other (the node refused the token) is not, and its
  /// message says why.
  virtual status reconnect() = 0;

  /// Queues `frame` for the next `poll()` and returns its request id, which
  /// its response carries.
  virtual uint64_t queue(v1::ClientFrame frame) = 0;

  /// Sends what is queued, waits up to `timeout_ms` for what arrives, and
  /// hands every response and push to the handlers. Returns how many it
  /// handed; fails when the link broke.
  virtual expected<size_t> poll(int timeout_ms,
                                const response_handler& on_response,
                                const push_handler& on_push) = 0;

  /// Closes the link; requests not answered yet are forgotten.
  virtual void close() = 0;

  /// Whether devices register in batches (RegisterDevices); otherwise one
  /// by one (RegisterDevice, then DeviceOnline).
  virtual bool batches() const noexcept = 0;

  /// Ends a run that stops normally; a transport that cannot tell the node
  /// by itself that the devices went away says so for each device.
  virtual void finish() {
    // nop
  }
};

} // namespace fota
