/// The firmware catalog: one entry per (product, version), with its
/// verification lifecycle UNVERIFIED → VERIFYING → VERIFIED |
/// VERIFICATION_FAILED. Only VERIFIED firmware can be a batch task's target.
#pragma once

#include "events/error.hpp"
#include "events/event.hpp"
#include "fota/v1/api.pb.h"

#include <map>
#include <string>
#include <utility>

namespace fota {

/// Every firmware known to the node, deleted ones excluded.
struct firmware_catalog {
  using key = std::pair<std::string, std::string>; // product, version
  std::map<key, v1::Firmware> entries;

  /// Returns the firmware or nullptr.
  const v1::Firmware* find(const std::string& product,
                           const std::string& version) const;
};

// -- decide ------------------------------------------------------------------

expected<event_list> decide(const firmware_catalog& state,
                            const v1::CreateFirmware& cmd, timestamp now);

/// Most devices of one verification run.
constexpr int max_verification_devices = 5;

/// With devices, starts a verification run on them (VERIFYING). With no
/// devices the operator attests the firmware: it becomes VERIFIED.
/// Verification can run again after it failed.
expected<event_list> decide(const firmware_catalog& state,
                            const v1::VerifyFirmware& cmd, timestamp now);

/// The outcome of a verification run: VERIFIED when every device succeeded,
/// VERIFICATION_FAILED with `reason` otherwise. Empty when the firmware is
/// not VERIFYING (any more).
event_list decide_verification_result(const firmware_catalog& state,
                                      const std::string& product,
                                      const std::string& version,
                                      bool succeeded, const std::string& reason,
                                      timestamp now);

/// `in_use` says whether an active task or verification targets it.
expected<event_list> decide(const firmware_catalog& state,
                            const v1::DeleteFirmware& cmd, bool in_use,
                            timestamp now);

// -- apply -------------------------------------------------------------------

/// Applies a firmware event; ignores events of other streams.
void apply(firmware_catalog& state, const event& e);

} // namespace fota
