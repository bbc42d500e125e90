#include "actors/router.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>

namespace fota {

v1::Role required_role(v1::ClientFrame::BodyCase kind) noexcept {
  using f = v1::ClientFrame;
  switch (kind) {
  case f::kCreateFirmware:
  case f::kVerifyFirmware:
  case f::kGetFirmware:
  case f::kListFirmware:
  case f::kDeleteFirmware:
  case f::kCreateTask:
  case f::kGetTask:
  case f::kListTasks:
  case f::kGetTaskDetails:
  case f::kPauseTask:
  case f::kResumeTask:
  case f::kCancelTask:
  case f::kListDevices:
  case f::kGetDevice:
  case f::kSetDeviceTags:
  case f::kSetDeviceAttributes:
  case f::kCreateAssetTree:
  case f::kDeleteAssetTree:
  case f::kListAssetTrees:
    return v1::ROLE_OPERATOR;
  case f::kRegisterDevice:
  case f::kDeviceOnline:
  case f::kDeviceOffline:
  case f::kReportVersion:
  case f::kReportProgress:
  case f::kReportFailure:
  case f::kRequestUpgrade:
  case f::kConfirmUpgrade:
    return v1::ROLE_GATEWAY;
  default:
    return v1::ROLE_UNSPECIFIED;
  }
}

expected<std::pair<caf::actor, command>>
make_command(const node_context& ctx, v1::Role role,
             const v1::ClientFrame& frame, caf::actor origin) {
  using f = v1::ClientFrame;
  auto kind = frame.body_case();
  if (kind == f::BODY_NOT_SET)
    return make_failure(errc::invalid_argument,
                        "frame has no request body (unknown request type?)");
  auto needed = required_role(kind);
  if (needed == v1::ROLE_UNSPECIFIED)
    return make_failure(errc::invalid_argument,
                        "Hello is only valid as the first frame");
  if (role == v1::ROLE_UNSPECIFIED)
    return make_failure(errc::unauthenticated,
                        "send Hello with a valid token first");
  if (role != needed)
    return make_failure(
        errc::permission_denied,
        "role " + v1::Role_Name(role) + " may not send " +
            frame.GetDescriptor()->FindFieldByNumber(kind)->name());
  const auto* field = frame.GetDescriptor()->FindFieldByNumber(kind);
  command cmd;
  cmd.kind = kind;
  cmd.body =
      frame.GetReflection()->GetMessage(frame, field).SerializeAsString();
  cmd.origin = std::move(origin);
  switch (kind) {
  case f::kCreateFirmware:
  case f::kVerifyFirmware:
  case f::kGetFirmware:
  case f::kListFirmware:
  case f::kDeleteFirmware:
    return std::make_pair(ctx.firmware, std::move(cmd));
  case f::kCreateTask:
  case f::kGetTask:
  case f::kListTasks:
  case f::kGetTaskDetails:
  case f::kPauseTask:
  case f::kResumeTask:
  case f::kCancelTask:
    return std::make_pair(ctx.tasks, std::move(cmd));
  default:
    return std::make_pair(ctx.fleet, std::move(cmd));
  }
}

caf::behavior router_actor(caf::stateful_actor<router_state>* self,
                           context_ptr ctx) {
  self->state.ctx = std::move(ctx);
  return {
      [=](request_atom, int32_t role, const std::string& bytes) {
        auto rp = self->make_response_promise<std::string>();
        v1::ClientFrame frame;
        if (!frame.ParseFromString(bytes)) {
          rp.deliver(error_response(make_failure(errc::invalid_argument,
                                                 "frame does not parse as "
                                                 "fota.v1.ClientFrame"))
                         .SerializeAsString());
          return rp;
        }
        route(self, *self->state.ctx, static_cast<v1::Role>(role), frame,
              caf::actor{}, [rp](const v1::Response& r) mutable {
                rp.deliver(r.SerializeAsString());
              });
        return rp;
      },
  };
}

} // namespace fota
