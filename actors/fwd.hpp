/// The actor protocol of a node: the messages actors exchange besides the
/// API's commands (`events/commands.hpp`), the typed interface of every
/// actor, and the one CAF type id block of fota.
#pragma once

#include "events/commands.hpp"
#include "events/digest.hpp"
#include "events/error.hpp"
#include "events/ids.hpp"
#include "events/task.hpp"
#include "events/values.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/type_id.hpp>
#include <caf/typed_actor.hpp>

CAF_ERROR_CODE_ENUM(fota::errc, "fota")

// The type id block opens here, so that interfaces can name the atoms, and
// closes at the end of the file once every message type is defined.
CAF_BEGIN_TYPE_ID_BLOCK(fota, caf::first_custom_type_id)

CAF_ADD_ATOM(fota, fota, append_atom, "append")
CAF_ADD_ATOM(fota, fota, flush_atom, "flush")
CAF_ADD_ATOM(fota, fota, claim_atom, "claim")
CAF_ADD_ATOM(fota, fota, bind_atom, "bind")
CAF_ADD_ATOM(fota, fota, release_atom, "release")
CAF_ADD_ATOM(fota, fota, push_atom, "push")
CAF_ADD_ATOM(fota, fota, status_atom, "status")
CAF_ADD_ATOM(fota, fota, offer_atom, "offer")
CAF_ADD_ATOM(fota, fota, candidate_atom, "candidate")
CAF_ADD_ATOM(fota, fota, scope_atom, "scope")
CAF_ADD_ATOM(fota, fota, version_atom, "version")
CAF_ADD_ATOM(fota, fota, demand_atom, "demand")
CAF_ADD_ATOM(fota, fota, credit_atom, "credit")
CAF_ADD_ATOM(fota, fota, settled_atom, "settled")
CAF_ADD_ATOM(fota, fota, tick_atom, "tick")
CAF_ADD_ATOM(fota, fota, get_atom, "get")
CAF_ADD_ATOM(fota, fota, lookup_atom, "lookup")
CAF_ADD_ATOM(fota, fota, spawn_atom, "spawn")
CAF_ADD_ATOM(fota, fota, forget_atom, "forget")
CAF_ADD_ATOM(fota, fota, request_atom, "request")
CAF_ADD_ATOM(fota, fota, deadline_atom, "deadline")
CAF_ADD_ATOM(fota, fota, resend_atom, "resend")
CAF_ADD_ATOM(fota, fota, changed_atom, "changed")
CAF_ADD_ATOM(fota, fota, free_atom, "free")
CAF_ADD_ATOM(fota, fota, join_atom, "join")
CAF_ADD_ATOM(fota, fota, verified_atom, "verified")
CAF_ADD_ATOM(fota, fota, reserve_atom, "reserve")
CAF_ADD_ATOM(fota, fota, digest_atom, "digest")
CAF_ADD_ATOM(fota, fota, deferred_atom, "deferred")
CAF_ADD_ATOM(fota, fota, resume_atom, "resume")
CAF_ADD_ATOM(fota, fota, timeout_atom, "timeout")
CAF_ADD_ATOM(fota, fota, record_atom, "record")
CAF_ADD_ATOM(fota, fota, preview_atom, "preview")

namespace fota {

// -- messages -----------------------------------------------------------------

/// Encoded `fota.v1.EventEnvelope` messages, without their sequence numbers,
/// bound for the journal as one atomic append.
struct event_batch {
  std::vector<std::string> envelopes;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, event_batch& x) {
    return f(caf::meta::type_name("event_batch"), x.envelopes);
  }
};

/// A push for a device's gateway: the execution it is about and the encoded
/// `ServerFrame`. Upgrade pushes leave only for the execution that holds the
/// device, and only while the device is online.
struct push_frame {
  execution_id execution;
  bool cancel = false;
  std::string frame;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, push_frame& x) {
    return f(caf::meta::type_name("push_frame"), x.execution, x.cancel,
             x.frame);
  }
};

/// A device's answer to a claim: granted, or busy and why; and what the
/// claiming task needs to know about the device now.
struct claim_result {
  bool granted = false;
  std::string reason;
  /// The gateway session the device is online on, or none.
  caf::actor session;
  std::string version;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 claim_result& x) {
    return f(caf::meta::type_name("claim_result"), x.granted, x.reason,
             x.session, x.version);
  }
};

// -- interfaces ---------------------------------------------------------------

/// The only writer of the event log. Replies with the sequence number of the
/// last event of the batch once the batch is durable, or with an error
/// (`errc::unavailable` once storage has failed).
using journal_actor = caf::typed_actor<
    caf::replies_to<append_atom, event_batch>::with<sequence_number>>;

/// What a device sends to the task of the execution that holds it.
/// - `offer_atom`: the device asks; the task answers with the offer of
///   execution `seq` (the device-request offer rule) or why there is none;
/// - `status_atom`: the device came online on a session, or went offline
///   (no session);
/// - `bind_atom`: the device's answer to its bind: its session, or none;
/// - `version_atom`: the device reported a version (durably);
/// - `record_atom`: the device reports a new version, not yet recorded; the
///   task answers, once durable, with the encoded `ExecutionSucceeded` that
///   records it when it completes the execution, or with nothing (the device
///   then records the version itself);
/// - `deferred_atom`: the push of the execution did not leave: the gateway's
///   session is not reading; the device says `status_atom` again once it
///   is.
using task_sink = caf::typed_actor<
    caf::replies_to<report_progress>::with<accepted>,
    caf::replies_to<report_failure>::with<accepted>,
    caf::replies_to<confirm_upgrade>::with<accepted>,
    caf::replies_to<ack_push>::with<accepted>,
    caf::replies_to<offer_atom, execution_seq,
                    std::string>::with<upgrade_offer>,
    caf::reacts_to<status_atom, execution_id, caf::actor>,
    caf::reacts_to<bind_atom, execution_id, caf::actor>,
    caf::reacts_to<version_atom, execution_id, std::string>,
    caf::replies_to<record_atom, execution_id, std::string>::with<std::string>,
    caf::reacts_to<deferred_atom, execution_id>>;

/// A task that a device-request device may ask, with the execution it has
/// for the device and the task's priority.
struct offer_candidate {
  task_sink task;
  task_id id;
  execution_seq sequence;
  int32_t priority = 0;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 offer_candidate& x) {
    return f(caf::meta::type_name("offer_candidate"), x.task, x.id, x.sequence,
             x.priority);
  }
};

using offer_candidates = std::vector<offer_candidate>;

/// What a device sends to the fleet: its durable state after a change that
/// scope selection sees (registration, version, tags, attributes), and that
/// it is free again after an execution ended (by product and device key:
/// every upgrade frees a device, so the message stays small).
using fleet_sink =
    caf::typed_actor<caf::reacts_to<changed_atom, device_state>,
                     caf::reacts_to<free_atom, std::string, std::string>>;

/// The actor of one device.
/// - `register_device` with a session: registers the device and brings it
///   online on that session, one commit, as a batch item with `online`;
/// - `claim_atom`: a task claims the device for an execution (or, with
///   sequence 0, while enrolling it): the busy claim rule;
/// - `bind_atom`: the execution that holds the device is durable and owned
///   by that task; `release_atom`: it ended, durably;
/// - `push_atom`: hand a push to the device's gateway;
/// - `deferred_atom`: the gateway's session did not send the push, its
///   output is full; `resume_atom`: the session drained and sends again.
using device_actor = caf::typed_actor<
    caf::replies_to<register_device>::with<device_state>,
    caf::replies_to<register_device, caf::actor>::with<device_state>,
    caf::replies_to<device_online, caf::actor>::with<device_state>,
    caf::replies_to<device_offline, caf::actor>::with<device_state>,
    caf::replies_to<report_version>::with<device_state>,
    caf::replies_to<set_device_tags>::with<device_state>,
    caf::replies_to<set_device_attributes>::with<device_state>,
    caf::replies_to<move_device>::with<device_state>,
    caf::replies_to<get_device>::with<device_state>,
    caf::replies_to<report_progress>::with<accepted>,
    caf::replies_to<report_failure>::with<accepted>,
    caf::replies_to<confirm_upgrade>::with<accepted>,
    caf::replies_to<ack_push>::with<accepted>,
    caf::replies_to<request_upgrade>::with<upgrade_offer>,
    caf::replies_to<claim_atom, execution_id>::with<claim_result>,
    caf::reacts_to<bind_atom, execution_id, task_sink>,
    caf::reacts_to<release_atom, execution_id>,
    caf::reacts_to<push_atom, push_frame>,
    caf::reacts_to<deferred_atom, execution_id>, caf::reacts_to<resume_atom>,
    caf::replies_to<digest_atom>::with<digest_sum>>;

/// A device in a scope query result: its key and its actor.
struct device_handle {
  std::string key;
  device_actor actor;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 device_handle& x) {
    return f(caf::meta::type_name("device_handle"), x.key, x.actor);
  }
};

using device_handles = std::vector<device_handle>;

/// The fleet's answer to a preview's scope query: the devices in scope, as a
/// scope query without a joiner gives them, and how many devices the scope's
/// filter selects that already run the target version.
struct scope_preview {
  /// The devices in scope whose actors run.
  device_handles scope;
  /// The dormant devices in scope, as stored: no actor runs for them.
  std::vector<device_state> idle;
  uint64_t on_target = 0;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 scope_preview& x) {
    return f(caf::meta::type_name("scope_preview"), x.scope, x.idle,
             x.on_target);
  }
};

/// The fleet's answer to a batch registration: one result per item, and the
/// actor of each device registered (null for a refused item), so that a
/// session routes the reports of devices online on it straight there.
struct registered_batch {
  registration_results results;
  std::vector<device_actor> actors;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 registered_batch& x) {
    return f(caf::meta::type_name("registered_batch"), x.results, x.actors);
  }
};

/// Where the fleet sends devices that join an increment task's scope.
using task_joiner = caf::typed_actor<caf::reacts_to<join_atom, device_handle>>;

/// The device directory, asset trees and scope selection.
/// - `scope_atom`: the devices in a task's scope; with a joiner, that task
///   also gets every device that later enters the scope, until `forget_atom`;
/// - `lookup_atom`: the actor of a device;
/// - `preview_atom`: the scope of a task being previewed, read only;
/// - `register_devices` with the session that sent it: the batch.
using fleet_actor = fleet_sink::extend<
    caf::replies_to<register_device>::with<device_state>,
    caf::replies_to<register_devices, caf::actor>::with<registered_batch>,
    caf::replies_to<device_online, caf::actor>::with<device_state>,
    caf::replies_to<device_offline, caf::actor>::with<device_state>,
    caf::replies_to<report_version>::with<device_state>,
    caf::replies_to<set_device_tags>::with<device_state>,
    caf::replies_to<set_device_attributes>::with<device_state>,
    caf::replies_to<move_device>::with<device_state>,
    caf::replies_to<get_device>::with<device_state>,
    caf::replies_to<report_progress>::with<accepted>,
    caf::replies_to<report_failure>::with<accepted>,
    caf::replies_to<confirm_upgrade>::with<accepted>,
    caf::replies_to<ack_push>::with<accepted>,
    caf::replies_to<request_upgrade>::with<upgrade_offer>,
    caf::replies_to<list_devices>::with<device_page>,
    caf::replies_to<create_asset_tree>::with<asset_tree>,
    caf::replies_to<delete_asset_tree>::with<accepted>,
    caf::replies_to<list_asset_trees>::with<asset_tree_page>,
    caf::replies_to<scope_atom, task_spec, task_joiner>::with<device_handles>,
    caf::reacts_to<forget_atom, task_joiner>,
    caf::replies_to<lookup_atom, std::string, std::string>::with<device_actor>,
    caf::replies_to<preview_atom, task_spec>::with<scope_preview>,
    caf::replies_to<digest_atom>::with<digest_sum>>;

/// What the dispatcher grants a task: push credit.
using credit_sink = caf::typed_actor<caf::reacts_to<credit_atom, uint64_t>>;

/// A task's standing request for push credit: how many pushes it could
/// send now, and what limits them.
struct push_demand {
  credit_sink task;
  uint64_t pending = 0;
  int32_t priority = 0;
  rate_spec rate;
  schedule_spec schedule;
  /// Durable successes, which the ramp-up follows.
  uint64_t successes = 0;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, push_demand& x) {
    return f(caf::meta::type_name("push_demand"), x.task, x.pending, x.priority,
             x.rate, x.schedule, x.successes);
  }
};

/// The actor of one task.
/// - `candidate_atom`: whether the device (by key) has an execution that a
///   device request could be offered, for the task registry;
/// - `get_atom`: the summary, for listing.
using task_actor =
    task_sink::extend_with<task_joiner>::extend_with<credit_sink>::extend<
        caf::replies_to<get_task>::with<task_summary>,
        caf::replies_to<get_task_details>::with<task_details>,
        caf::replies_to<pause_task>::with<accepted>,
        caf::replies_to<resume_task>::with<accepted>,
        caf::replies_to<cancel_task>::with<accepted>,
        caf::replies_to<get_atom>::with<task_summary>,
        caf::replies_to<candidate_atom, std::string>::with<offer_candidates>,
        caf::replies_to<digest_atom>::with<digest_sum>>;

/// The dispatcher: sequence, rates, windows and fairness between tasks.
/// - `demand_atom`: a task's demand for credit;
/// - `settled_atom`: pushes that are answered (acknowledged, or whose
///   execution moved on) and credit a task did not use.
using dispatcher_actor = caf::typed_actor<
    caf::reacts_to<demand_atom, push_demand>,
    caf::reacts_to<settled_atom, credit_sink, uint64_t, uint64_t>>;

/// The firmware catalog and its verification.
/// - `reserve_atom`: a task (being created) uses the firmware; replies with
///   its record; `release_atom`: the task no longer does;
/// - `lookup_atom`: the record of a previewed task's target, reserving
///   nothing;
/// - `verified_atom`: the outcome of a verification run.
using firmware_actor = caf::typed_actor<
    caf::replies_to<create_firmware>::with<firmware_record>,
    caf::replies_to<verify_firmware>::with<firmware_record>,
    caf::replies_to<skip_verification>::with<firmware_record>,
    caf::replies_to<get_firmware>::with<firmware_record>,
    caf::replies_to<list_firmware>::with<firmware_page>,
    caf::replies_to<delete_firmware>::with<accepted>,
    caf::replies_to<reserve_atom, task_id, std::string,
                    std::string>::with<firmware_record>,
    caf::replies_to<lookup_atom, std::string,
                    std::string>::with<firmware_record>,
    caf::reacts_to<release_atom, task_id>,
    caf::reacts_to<verified_atom, std::string, std::string, bool, std::string>,
    caf::replies_to<digest_atom>::with<digest_sum>>;

/// Task ids, task actors and routing by task id.
/// - `spawn_atom`: starts a verification run;
/// - `candidate_atom`: the device-request tasks that could offer a device
///   an upgrade, best first.
using task_registry_actor =
    caf::typed_actor<caf::replies_to<create_task>::with<task_summary>,
                     caf::replies_to<preview_task>::with<task_preview>,
                     caf::replies_to<get_task>::with<task_summary>,
                     caf::replies_to<list_tasks>::with<task_page>,
                     caf::replies_to<get_task_details>::with<task_details>,
                     caf::replies_to<pause_task>::with<accepted>,
                     caf::replies_to<resume_task>::with<accepted>,
                     caf::replies_to<cancel_task>::with<accepted>,
                     caf::replies_to<spawn_atom, task_spec>::with<task_summary>,
                     caf::replies_to<candidate_atom, std::string,
                                     std::string>::with<offer_candidates>,
                     caf::replies_to<digest_atom>::with<digest_sum>>;

/// The reader of device and task histories. It reads the event log (one
/// consistent RocksDB view per page) on a thread of its own, off the actors
/// that write, so a long read holds up no command. The router asks it only
/// after the owner of the device or task said it exists. The `int32_t` of
/// a task's history is the task's `v1::Method`.
using history_actor = caf::typed_actor<
    caf::replies_to<get_device_history>::with<history_page>,
    caf::replies_to<get_task_history, int32_t>::with<history_page>>;

/// The in-process API: `(request_atom, role, ClientFrame bytes)` replies
/// with `Response` bytes. With a fourth element, the request comes from an
/// in-process gateway: devices it brings online (`DeviceOnline`, or
/// `RegisterDevices` with `online`) send their pushes to that actor as
/// `(push_atom, push_frame, caf::actor device)`, as to a network session.
using router_actor = caf::typed_actor<
    caf::replies_to<request_atom, int32_t, std::string>::with<std::string>,
    caf::replies_to<request_atom, int32_t, std::string,
                    caf::actor>::with<std::string>>;

} // namespace fota

CAF_ADD_TYPE_ID(fota, (fota::event_batch))
CAF_ADD_TYPE_ID(fota, (fota::sequence_number))
CAF_ADD_TYPE_ID(fota, (fota::task_id))
CAF_ADD_TYPE_ID(fota, (fota::execution_id))
CAF_ADD_TYPE_ID(fota, (fota::execution_seq))
CAF_ADD_TYPE_ID(fota, (fota::push_frame))
CAF_ADD_TYPE_ID(fota, (fota::claim_result))
CAF_ADD_TYPE_ID(fota, (fota::offer_candidate))
CAF_ADD_TYPE_ID(fota, (fota::offer_candidates))
CAF_ADD_TYPE_ID(fota, (fota::device_handle))
CAF_ADD_TYPE_ID(fota, (fota::device_handles))
CAF_ADD_TYPE_ID(fota, (fota::registered_batch))
CAF_ADD_TYPE_ID(fota, (fota::push_demand))
CAF_ADD_TYPE_ID(fota, (fota::digest_sum))

// Values.
CAF_ADD_TYPE_ID(fota, (fota::task_spec))
CAF_ADD_TYPE_ID(fota, (fota::firmware_record))
CAF_ADD_TYPE_ID(fota, (fota::device_state))
CAF_ADD_TYPE_ID(fota, (fota::asset_tree))
CAF_ADD_TYPE_ID(fota, (fota::task_summary))
CAF_ADD_TYPE_ID(fota, (fota::task_details))
CAF_ADD_TYPE_ID(fota, (fota::upgrade_offer))
CAF_ADD_TYPE_ID(fota, (fota::firmware_page))
CAF_ADD_TYPE_ID(fota, (fota::device_page))
CAF_ADD_TYPE_ID(fota, (fota::task_page))
CAF_ADD_TYPE_ID(fota, (fota::asset_tree_page))
CAF_ADD_TYPE_ID(fota, (fota::accepted))
CAF_ADD_TYPE_ID(fota, (fota::state_digest))

// Commands.
CAF_ADD_TYPE_ID(fota, (fota::create_firmware))
CAF_ADD_TYPE_ID(fota, (fota::verify_firmware))
CAF_ADD_TYPE_ID(fota, (fota::skip_verification))
CAF_ADD_TYPE_ID(fota, (fota::get_firmware))
CAF_ADD_TYPE_ID(fota, (fota::list_firmware))
CAF_ADD_TYPE_ID(fota, (fota::delete_firmware))
CAF_ADD_TYPE_ID(fota, (fota::create_task))
CAF_ADD_TYPE_ID(fota, (fota::get_task))
CAF_ADD_TYPE_ID(fota, (fota::list_tasks))
CAF_ADD_TYPE_ID(fota, (fota::get_task_details))
CAF_ADD_TYPE_ID(fota, (fota::pause_task))
CAF_ADD_TYPE_ID(fota, (fota::resume_task))
CAF_ADD_TYPE_ID(fota, (fota::cancel_task))
CAF_ADD_TYPE_ID(fota, (fota::get_state_digest))
CAF_ADD_TYPE_ID(fota, (fota::list_devices))
CAF_ADD_TYPE_ID(fota, (fota::get_device))
CAF_ADD_TYPE_ID(fota, (fota::set_device_tags))
CAF_ADD_TYPE_ID(fota, (fota::set_device_attributes))
CAF_ADD_TYPE_ID(fota, (fota::create_asset_tree))
CAF_ADD_TYPE_ID(fota, (fota::delete_asset_tree))
CAF_ADD_TYPE_ID(fota, (fota::list_asset_trees))
CAF_ADD_TYPE_ID(fota, (fota::register_device))
CAF_ADD_TYPE_ID(fota, (fota::device_online))
CAF_ADD_TYPE_ID(fota, (fota::device_offline))
CAF_ADD_TYPE_ID(fota, (fota::report_version))
CAF_ADD_TYPE_ID(fota, (fota::report_progress))
CAF_ADD_TYPE_ID(fota, (fota::report_failure))
CAF_ADD_TYPE_ID(fota, (fota::request_upgrade))
CAF_ADD_TYPE_ID(fota, (fota::confirm_upgrade))
CAF_ADD_TYPE_ID(fota, (fota::ack_push))
CAF_ADD_TYPE_ID(fota, (fota::move_device))
CAF_ADD_TYPE_ID(fota, (fota::register_devices))
CAF_ADD_TYPE_ID(fota, (fota::get_device_history))
CAF_ADD_TYPE_ID(fota, (fota::get_task_history))
CAF_ADD_TYPE_ID(fota, (fota::history_page))

// Previews.
CAF_ADD_TYPE_ID(fota, (fota::preview_task))
CAF_ADD_TYPE_ID(fota, (fota::task_preview))
CAF_ADD_TYPE_ID(fota, (fota::scope_preview))

CAF_END_TYPE_ID_BLOCK(fota)
