/// The commands of the API: one plain struct per request, named in the
/// imperative. A request is parsed once, at the edge (`events/codec.hpp`),
/// into one of these; the actor that owns the entity has one typed handler
/// for it. `reply` names what the handler answers, `role` who may send it.
#pragma once

#include "events/ids.hpp"
#include "events/preview.hpp"
#include "events/task_spec.hpp"
#include "events/values.hpp"
#include "fota/v1/api.pb.h"

#include <cstdint>
#include <string>
#include <vector>

namespace fota {

/// Declares the role and reply of a command.
#define FOTA_COMMAND(role_value, reply_type)                                   \
  using reply = reply_type;                                                    \
  static constexpr v1::Role role = v1::role_value

// -- firmware -----------------------------------------------------------------

/// Registers firmware of a product; it starts UNVERIFIED.
struct create_firmware {
  FOTA_COMMAND(ROLE_OPERATOR, firmware_record);
  std::string product;
  std::string version;
  std::string url;
  uint64_t size = 0;
  std::string sha256;
  std::string signature;
  std::string description;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 create_firmware& x) {
    return f(x.product, x.version, x.url, x.size, x.sha256, x.signature,
             x.description);
  }
};

/// Starts verification on 1 to 5 named devices.
struct verify_firmware {
  FOTA_COMMAND(ROLE_OPERATOR, firmware_record);
  std::string product;
  std::string version;
  std::vector<std::string> devices;
  uint32_t timeout_seconds = 0;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 verify_firmware& x) {
    return f(x.product, x.version, x.devices, x.timeout_seconds);
  }
};

/// Marks firmware VERIFIED without a verification run; the reason is kept.
struct skip_verification {
  FOTA_COMMAND(ROLE_OPERATOR, firmware_record);
  std::string product;
  std::string version;
  std::string reason;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 skip_verification& x) {
    return f(x.product, x.version, x.reason);
  }
};

struct get_firmware {
  FOTA_COMMAND(ROLE_OPERATOR, firmware_record);
  std::string product;
  std::string version;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 get_firmware& x) {
    return f(x.product, x.version);
  }
};

struct list_firmware {
  FOTA_COMMAND(ROLE_OPERATOR, firmware_page);
  /// Empty: every product.
  std::string product;
  uint32_t page_size = 0;
  std::string page_token;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 list_firmware& x) {
    return f(x.product, x.page_size, x.page_token);
  }
};

struct delete_firmware {
  FOTA_COMMAND(ROLE_OPERATOR, accepted);
  std::string product;
  std::string version;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 delete_firmware& x) {
    return f(x.product, x.version);
  }
};

// -- tasks --------------------------------------------------------------------

struct create_task {
  FOTA_COMMAND(ROLE_OPERATOR, task_summary);
  task_spec spec;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, create_task& x) {
    return f(x.spec);
  }
};

/// What `create_task` with `spec` would do now; validated as it is, and
/// writes nothing.
struct preview_task {
  FOTA_COMMAND(ROLE_OPERATOR, task_preview);
  task_spec spec;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 preview_task& x) {
    return f(x.spec);
  }
};

struct get_task {
  FOTA_COMMAND(ROLE_OPERATOR, task_summary);
  task_id task;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, get_task& x) {
    return f(x.task);
  }
};

struct list_tasks {
  FOTA_COMMAND(ROLE_OPERATOR, task_page);
  uint32_t page_size = 0;
  std::string page_token;
  /// Filters; an empty one matches every task.
  std::string product;
  std::vector<v1::TaskStatus> statuses;
  std::string target_version;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, list_tasks& x) {
    return f(x.page_size, x.page_token, x.product, x.statuses,
             x.target_version);
  }
};

struct get_task_details {
  FOTA_COMMAND(ROLE_OPERATOR, task_details);
  task_id task;
  /// Empty: every state.
  std::vector<v1::ExecutionState> states;
  /// The skipped devices instead of the executions.
  bool skipped = false;
  uint32_t page_size = 0;
  /// Sequence (or skipped index) to continue after; 0 starts at the
  /// beginning.
  uint64_t page_token = 0;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 get_task_details& x) {
    return f(x.task, x.states, x.skipped, x.page_size, x.page_token);
  }
};

/// A task's events from the log, in order; with `at_ms`, only those up to
/// that time and the task as it was then.
struct get_task_history {
  FOTA_COMMAND(ROLE_OPERATOR, history_page);
  task_id task;
  uint32_t page_size = 0;
  std::string page_token;
  /// Whether the request names a moment, and which (ms since the epoch).
  bool has_at = false;
  int64_t at_ms = 0;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 get_task_history& x) {
    return f(x.task, x.page_size, x.page_token, x.has_at, x.at_ms);
  }
};

struct pause_task {
  FOTA_COMMAND(ROLE_OPERATOR, accepted);
  task_id task;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, pause_task& x) {
    return f(x.task);
  }
};

struct resume_task {
  FOTA_COMMAND(ROLE_OPERATOR, accepted);
  task_id task;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, resume_task& x) {
    return f(x.task);
  }
};

struct cancel_task {
  FOTA_COMMAND(ROLE_OPERATOR, accepted);
  task_id task;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, cancel_task& x) {
    return f(x.task);
  }
};

// -- devices and asset trees (operator) ---------------------------------------

struct list_devices {
  FOTA_COMMAND(ROLE_OPERATOR, device_page);
  std::string product;
  /// Optional filter on the reported version.
  std::string version;
  uint32_t page_size = 0;
  std::string page_token;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 list_devices& x) {
    return f(x.product, x.version, x.page_size, x.page_token);
  }
};

struct get_device {
  FOTA_COMMAND(ROLE_OPERATOR, device_state);
  std::string product;
  std::string device;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, get_device& x) {
    return f(x.product, x.device);
  }
};

/// A device's events from the log, in order; with `at_ms`, only those up
/// to that time and the device as it was then.
struct get_device_history {
  FOTA_COMMAND(ROLE_OPERATOR, history_page);
  std::string product;
  std::string device;
  uint32_t page_size = 0;
  std::string page_token;
  /// Whether the request names a moment, and which (ms since the epoch).
  bool has_at = false;
  int64_t at_ms = 0;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 get_device_history& x) {
    return f(x.product, x.device, x.page_size, x.page_token, x.has_at, x.at_ms);
  }
};

/// Sets tags; an empty value removes a tag.
struct set_device_tags {
  FOTA_COMMAND(ROLE_OPERATOR, device_state);
  std::string product;
  std::string device;
  label_map tags;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 set_device_tags& x) {
    return f(x.product, x.device, x.tags);
  }
};

/// Sets attributes; an empty value removes an attribute.
struct set_device_attributes {
  FOTA_COMMAND(ROLE_OPERATOR, device_state);
  std::string product;
  std::string device;
  label_map attributes;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 set_device_attributes& x) {
    return f(x.product, x.device, x.attributes);
  }
};

/// Hands a device to another gateway: from then on only that gateway may
/// register, report for or bring the device online.
struct move_device {
  FOTA_COMMAND(ROLE_OPERATOR, device_state);
  std::string product;
  std::string device;
  std::string gateway;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, move_device& x) {
    return f(x.product, x.device, x.gateway);
  }
};

struct create_asset_tree {
  FOTA_COMMAND(ROLE_OPERATOR, asset_tree);
  asset_tree tree;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 create_asset_tree& x) {
    return f(x.tree);
  }
};

struct delete_asset_tree {
  FOTA_COMMAND(ROLE_OPERATOR, accepted);
  std::string product;
  std::string tree;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 delete_asset_tree& x) {
    return f(x.product, x.tree);
  }
};

struct list_asset_trees {
  FOTA_COMMAND(ROLE_OPERATOR, asset_tree_page);
  /// Empty: every product.
  std::string product;
  uint32_t page_size = 0;
  std::string page_token;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 list_asset_trees& x) {
    return f(x.product, x.page_size, x.page_token);
  }
};

/// A digest of the node's whole durable state, to compare a running node
/// with its log replayed into a fresh one.
struct get_state_digest {
  FOTA_COMMAND(ROLE_OPERATOR, state_digest);

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 get_state_digest&) {
    return f();
  }
};

// -- gateway ------------------------------------------------------------------

/// Registers a device on first sight; again, it records what changed.
struct register_device {
  FOTA_COMMAND(ROLE_GATEWAY, device_state);
  std::string product;
  std::string device;
  std::string version;
  label_map tags;
  label_map attributes;

  /// The gateway that sent it, set by the edge from the session's
  /// credential, never read from the wire; empty in-process.
  std::string gateway;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 register_device& x) {
    return f(x.product, x.device, x.version, x.tags, x.attributes, x.gateway);
  }
};

/// Registers many devices, each decided exactly as its own
/// `register_device`; with `online`, each device registered is brought
/// online on the sending session as by `device_online`. One result per item,
/// in order.
struct register_devices {
  FOTA_COMMAND(ROLE_GATEWAY, registration_results);
  std::vector<register_device> devices;
  /// Why the edge refused an item already (a field beyond its limit, a
  /// product the gateway does not serve), by item; `errc::none`: not
  /// refused. Refused items are not decided and write nothing.
  std::vector<failure> refused;
  bool online = false;

  /// The gateway that sent it, set by the edge from the session's
  /// credential, never read from the wire; empty in-process.
  std::string gateway;

  /// Records a refusal of item `i` by the edge.
  void refuse(size_t i, failure why) {
    if (refused.size() < devices.size())
      refused.resize(devices.size());
    refused[i] = std::move(why);
  }

  /// Whether the edge refused item `i`.
  bool is_refused(size_t i) const {
    return i < refused.size() && refused[i].code != errc::none;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 register_devices& x) {
    return f(x.devices, x.refused, x.online, x.gateway);
  }
};

/// Brings a device online on the sending session: pushes go there.
struct device_online {
  FOTA_COMMAND(ROLE_GATEWAY, device_state);
  std::string product;
  std::string device;

  /// The gateway that sent it, set by the edge from the session's
  /// credential, never read from the wire; empty in-process.
  std::string gateway;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 device_online& x) {
    return f(x.product, x.device, x.gateway);
  }
};

struct device_offline {
  FOTA_COMMAND(ROLE_GATEWAY, device_state);
  std::string product;
  std::string device;

  /// The gateway that sent it, set by the edge from the session's
  /// credential, never read from the wire; empty in-process.
  std::string gateway;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 device_offline& x) {
    return f(x.product, x.device, x.gateway);
  }
};

struct report_version {
  FOTA_COMMAND(ROLE_GATEWAY, device_state);
  std::string product;
  std::string device;
  std::string version;

  /// The gateway that sent it, set by the edge from the session's
  /// credential, never read from the wire; empty in-process.
  std::string gateway;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 report_version& x) {
    return f(x.product, x.device, x.version, x.gateway);
  }
};

struct report_progress {
  FOTA_COMMAND(ROLE_GATEWAY, accepted);
  std::string product;
  std::string device;
  execution_id execution;
  uint32_t step = 0;
  std::string text;

  /// The gateway that sent it, set by the edge from the session's
  /// credential, never read from the wire; empty in-process.
  std::string gateway;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 report_progress& x) {
    return f(x.product, x.device, x.execution, x.step, x.text, x.gateway);
  }
};

struct report_failure {
  FOTA_COMMAND(ROLE_GATEWAY, accepted);
  std::string product;
  std::string device;
  execution_id execution;
  std::string code;
  std::string text;

  /// The gateway that sent it, set by the edge from the session's
  /// credential, never read from the wire; empty in-process.
  std::string gateway;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 report_failure& x) {
    return f(x.product, x.device, x.execution, x.code, x.text, x.gateway);
  }
};

/// The device asks for its upgrade (device-request tasks).
struct request_upgrade {
  FOTA_COMMAND(ROLE_GATEWAY, upgrade_offer);
  std::string product;
  std::string device;

  /// The gateway that sent it, set by the edge from the session's
  /// credential, never read from the wire; empty in-process.
  std::string gateway;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 request_upgrade& x) {
    return f(x.product, x.device, x.gateway);
  }
};

/// The device starts an offered upgrade.
struct confirm_upgrade {
  FOTA_COMMAND(ROLE_GATEWAY, accepted);
  std::string product;
  std::string device;
  execution_id execution;

  /// The gateway that sent it, set by the edge from the session's
  /// credential, never read from the wire; empty in-process.
  std::string gateway;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 confirm_upgrade& x) {
    return f(x.product, x.device, x.execution, x.gateway);
  }
};

/// The gateway received an `UpgradePush`.
struct ack_push {
  FOTA_COMMAND(ROLE_GATEWAY, accepted);
  std::string product;
  std::string device;
  execution_id execution;
  uint32_t attempt = 0;

  /// The gateway that sent it, set by the edge from the session's
  /// credential, never read from the wire; empty in-process.
  std::string gateway;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, ack_push& x) {
    return f(x.product, x.device, x.execution, x.attempt, x.gateway);
  }
};

#undef FOTA_COMMAND

} // namespace fota
