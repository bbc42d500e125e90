/// The firmware catalog: one record per (product, version), with its
/// verification lifecycle UNVERIFIED → VERIFYING → VERIFIED |
/// VERIFICATION_FAILED. Only VERIFIED firmware can be a batch task's target.
#pragma once

#include "events/commands.hpp"
#include "events/error.hpp"
#include "events/event.hpp"
#include "events/manifest.hpp"
#include "events/values.hpp"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fota {

/// Every firmware known to the node, deleted ones excluded.
struct firmware_catalog {
  using key = std::pair<std::string, std::string>; // product, version
  std::map<key, firmware_record> entries;

  /// Returns the firmware or nullptr.
  const firmware_record* find(const std::string& product,
                              const std::string& version) const;
};

/// What a node demands of the firmware it registers. The firmware actor
/// holds it and hands it to `decide`; it is configuration, not state, so
/// replay does not check old firmware against it.
struct firmware_policy {
  /// URL schemes devices may download from, lower case ("https").
  std::vector<std::string> url_schemes{"https"};
  /// Trusted Ed25519 keys by product. Firmware of a product listed here
  /// must carry a signature over its manifest that one of the keys verifies
  /// (several keys: rotation); other products accept unsigned firmware and
  /// keep a signature as opaque bytes.
  std::map<std::string, std::vector<public_key>> signing_keys;
};

/// "firmware <product>/<version>", as messages name it.
std::string firmware_name(const std::string& product,
                          const std::string& version);

// -- decide ------------------------------------------------------------------

/// Registers firmware UNVERIFIED, built field by field from `cmd`. Refuses
/// with INVALID_ARGUMENT naming the field: a missing or malformed field, a
/// control character in a manifest field, a URL whose scheme `policy` does
/// not allow, and, for a product with trusted keys, a missing signature or
/// one that no trusted key verifies over the manifest.
expected<event_list> decide(const firmware_catalog& state,
                            const create_firmware& cmd,
                            const firmware_policy& policy, timestamp now);

/// Starts a verification run on 1 to 5 named devices (VERIFYING).
/// Verification can run again after it failed.
expected<event_list> decide(const firmware_catalog& state,
                            const verify_firmware& cmd, timestamp now);

/// The operator attests the firmware without a run: VERIFIED, with the
/// reason recorded.
expected<event_list> decide(const firmware_catalog& state,
                            const skip_verification& cmd, timestamp now);

/// The outcome of a verification run: VERIFIED when every device succeeded,
/// VERIFICATION_FAILED with `reason` otherwise. Empty when the firmware is
/// not VERIFYING (any more).
event_list decide_verification_result(const firmware_catalog& state,
                                      const std::string& product,
                                      const std::string& version,
                                      bool succeeded, const std::string& reason,
                                      timestamp now);

/// `in_use` says whether a task (one being created included) or a
/// verification targets it.
expected<event_list> decide(const firmware_catalog& state,
                            const delete_firmware& cmd, bool in_use,
                            timestamp now);

// -- apply -------------------------------------------------------------------

/// Applies a firmware event, checking it against the catalog: an event for
/// firmware that does not exist, or a record created twice, is refused.
status apply(firmware_catalog& state, const event& e);

} // namespace fota
