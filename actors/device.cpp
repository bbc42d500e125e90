#include "actors/device.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>

namespace fota {

namespace {

using self_ptr = caf::stateful_actor<device_actor_state>*;

std::string busy_reason(const device_state& d) {
  auto task = std::to_string(d.active_execution >> 32);
  auto seq = d.active_execution & 0xFFFFFFFFu;
  if (seq & 0x80000000u) // A provisional claim: the task is enrolling it.
    return "device " + d.key + " is busy: being enrolled in task " + task;
  return "device " + d.key + " is busy in execution " + task + "/" +
         std::to_string(seq);
}

/// Applies `events`, tells fleet and task about a new version, and replies
/// with the device once durable.
caf::result<std::string> commit(self_ptr self, expected<event_list> decided,
                                bool reports_version = false) {
  if (!decided)
    return to_error(decided.error());
  auto& st = self->state;
  bool indexed_change = false;
  for (const auto& e : *decided) {
    apply(st.device, e);
    indexed_change = indexed_change || e.has_device_version_reported() ||
                     e.has_device_tags_changed() ||
                     e.has_device_attributes_changed();
  }
  auto rp = self->make_response_promise();
  auto new_version = st.device.version;
  persist(self, *st.ctx, *decided, rp,
          [self, new_version, indexed_change,
           reports_version](caf::response_promise& rp) {
            auto& st = self->state;
            if (indexed_change)
              self->send(st.ctx->fleet, changed_atom_v,
                         st.device.to_proto().SerializeAsString());
            // Every report counts while an upgrade is under way, even an
            // unchanged version: the task may not have heard it before a
            // crash.
            if (reports_version && st.device.active_execution != 0 && st.task)
              self->send(st.task, version_atom_v, st.device.active_execution,
                         new_version);
            v1::Response r;
            *r.mutable_device() = st.device.to_proto();
            rp.deliver(ok_response(r));
          });
  return rp;
}

caf::result<std::string> not_active(const device_state& d, uint64_t exec) {
  return to_error(make_failure(errc::failed_precondition,
                               "execution " + std::to_string(exec >> 32) + "/" +
                                   std::to_string(exec & 0xFFFFFFFFu) +
                                   " is not active on device " + d.key));
}

} // namespace

caf::behavior device_actor(self_ptr self, context_ptr ctx,
                           device_state initial) {
  self->state.ctx = std::move(ctx);
  self->state.device = std::move(initial);
  ignore_stray_errors(self);
  return {
      [=](command& cmd) -> caf::result<std::string> {
        auto& st = self->state;
        auto now = st.ctx->now();
        switch (cmd.kind) {
        case v1::ClientFrame::kRegisterDevice: {
          v1::RegisterDevice req;
          if (!parse_body(cmd, req))
            break;
          return commit(self, decide(&st.device, req, now), true);
        }
        case v1::ClientFrame::kReportVersion: {
          v1::ReportVersion req;
          if (!parse_body(cmd, req))
            break;
          return commit(self, decide(st.device, req, now), true);
        }
        case v1::ClientFrame::kDeviceOnline: {
          v1::DeviceOnline req;
          if (!parse_body(cmd, req))
            break;
          st.session = cmd.origin;
          auto result = commit(self, decide(st.device, req, now));
          if (st.device.active_execution != 0 && st.task)
            self->send(st.task, online_atom_v, st.device.active_execution);
          return result;
        }
        case v1::ClientFrame::kDeviceOffline: {
          v1::DeviceOffline req;
          if (!parse_body(cmd, req))
            break;
          if (cmd.origin && st.session && cmd.origin != st.session)
            return ok_response(); // Online on another session by now.
          st.session = nullptr;
          return commit(self, decide(st.device, req, now));
        }
        case v1::ClientFrame::kSetDeviceTags: {
          v1::SetDeviceTags req;
          if (!parse_body(cmd, req))
            break;
          return commit(self, decide(st.device, req, now));
        }
        case v1::ClientFrame::kSetDeviceAttributes: {
          v1::SetDeviceAttributes req;
          if (!parse_body(cmd, req))
            break;
          return commit(self, decide(st.device, req, now));
        }
        case v1::ClientFrame::kGetDevice: {
          v1::Response r;
          *r.mutable_device() = st.device.to_proto();
          return ok_response(r);
        }
        case v1::ClientFrame::kReportProgress: {
          v1::ReportProgress req;
          if (!parse_body(cmd, req))
            break;
          if (req.execution_id() != st.device.active_execution || !st.task)
            return not_active(st.device, req.execution_id());
          return forward(self, st.task, std::move(cmd));
        }
        case v1::ClientFrame::kRequestUpgrade: {
          if (st.device.active_execution == 0 || !st.task) {
            v1::Response r;
            r.mutable_offer()->set_available(false);
            r.mutable_offer()->set_reason(
                "no upgrade available: no active device-request task covers "
                "device " +
                st.device.key);
            return ok_response(r);
          }
          return forward(self, st.task, std::move(cmd));
        }
        case v1::ClientFrame::kConfirmUpgrade: {
          v1::ConfirmUpgrade req;
          if (!parse_body(cmd, req))
            break;
          if (req.execution_id() != st.device.active_execution || !st.task)
            return not_active(st.device, req.execution_id());
          return forward(self, st.task, std::move(cmd));
        }
        case v1::ClientFrame::kReportFailure: {
          v1::ReportFailure req;
          if (!parse_body(cmd, req))
            break;
          if (req.execution_id() != st.device.active_execution || !st.task)
            return not_active(st.device, req.execution_id());
          return forward(self, st.task, std::move(cmd));
        }
        default:
          return to_error(
              make_failure(errc::internal, "device actor got command " +
                                               std::to_string(cmd.kind)));
        }
        return to_error(make_failure(errc::invalid_argument,
                                     "request body does not parse"));
      },
      [=](claim_atom, uint64_t execution, const caf::actor& task) {
        auto& st = self->state;
        if (st.device.active_execution != 0 &&
            st.device.active_execution != execution)
          return busy_reason(st.device);
        bool rebind = st.device.active_execution == execution;
        st.device.active_execution = execution;
        st.task = task;
        // After a restart: the device may already run the target version,
        // reported before a crash that the task never heard of.
        if (rebind)
          self->send(task, version_atom_v, execution, st.device.version);
        return std::string{};
      },
      [=](claim_atom, uint64_t provisional, uint64_t execution,
          const caf::actor& task) {
        auto& st = self->state;
        if (st.device.active_execution == provisional) {
          st.device.active_execution = execution;
          st.task = task;
        }
      },
      [=](release_atom, uint64_t execution) {
        auto& st = self->state;
        if (st.device.active_execution == execution) {
          st.device.active_execution = 0;
          st.task = nullptr;
        }
      },
      [=](const push_order& order) {
        auto& st = self->state;
        if (order.execution != st.device.active_execution ||
            !st.device.online || !st.session)
          return false;
        self->send(st.session, push_atom_v, order.frame);
        node_metrics::add(st.ctx->metrics->pushes);
        return true;
      },
      [=](get_atom) {
        return self->state.device.to_proto().SerializeAsString();
      },
  };
}

} // namespace fota
