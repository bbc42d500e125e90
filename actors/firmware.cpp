#include "actors/firmware.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>

namespace fota {

namespace {

using self_ptr = caf::stateful_actor<firmware_actor_state>*;

v1::Response with_firmware(const firmware_catalog& c, const std::string& p,
                           const std::string& v) {
  v1::Response r;
  if (const auto* fw = c.find(p, v))
    *r.mutable_firmware() = *fw;
  return r;
}

/// Applies the decided events at once and replies with the firmware once
/// they are durable.
caf::result<std::string> commit(self_ptr self, expected<event_list> decided,
                                const std::string& product,
                                const std::string& version) {
  if (!decided)
    return to_error(decided.error());
  for (const auto& e : *decided)
    apply(self->state.catalog, e);
  auto reply = with_firmware(self->state.catalog, product, version);
  auto rp = self->make_response_promise();
  persist(self, *self->state.ctx, *decided, rp,
          [reply](caf::response_promise& rp) mutable {
            rp.deliver(ok_response(reply));
          });
  return rp;
}

/// Records the outcome of a verification run.
void conclude(self_ptr self, const std::string& product,
              const std::string& version, bool ok, const std::string& reason) {
  auto& st = self->state;
  auto events = decide_verification_result(st.catalog, product, version, ok,
                                           reason, st.ctx->now());
  for (const auto& e : events)
    apply(st.catalog, e);
  persist(self, *st.ctx, events, caf::response_promise{},
          [](caf::response_promise&) {});
}

/// Starts the verification task: a snapshot cloud push of the firmware to
/// the named devices, on whatever version they run.
void start_run(self_ptr self, const v1::VerifyFirmware& req) {
  auto& st = self->state;
  v1::TaskSpec spec;
  spec.set_name("verification of " + req.product_key() + "/" + req.version());
  spec.set_product_key(req.product_key());
  spec.set_target_version(req.version());
  spec.set_strategy(v1::STRATEGY_SNAPSHOT);
  spec.set_method(v1::METHOD_CLOUD_PUSH);
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  *spec.mutable_scope()->mutable_device_keys()->mutable_device_keys() =
      req.device_keys();
  spec.set_timeout_seconds(req.timeout_seconds());
  spec.set_verification(true);
  auto product = req.product_key();
  auto version = req.version();
  self->request(st.ctx->tasks, caf::infinite, spawn_atom_v,
                spec.SerializeAsString())
      .then([](const std::string&) {},
            [=](caf::error& err) {
              conclude(self, product, version, false,
                       "verification run could not start: " +
                           from_error(err).message);
            });
}

} // namespace

caf::behavior firmware_actor(self_ptr self, context_ptr ctx,
                             firmware_catalog catalog) {
  self->state.ctx = std::move(ctx);
  self->state.catalog = std::move(catalog);
  return {
      [=](const command& cmd) -> caf::result<std::string> {
        auto& st = self->state;
        auto now = st.ctx->now();
        switch (cmd.kind) {
        case v1::ClientFrame::kCreateFirmware: {
          v1::CreateFirmware req;
          if (!parse_body(cmd, req))
            break;
          return commit(self, decide(st.catalog, req, now),
                        req.firmware().product_key(), req.firmware().version());
        }
        case v1::ClientFrame::kVerifyFirmware: {
          v1::VerifyFirmware req;
          if (!parse_body(cmd, req))
            break;
          auto result = commit(self, decide(st.catalog, req, now),
                               req.product_key(), req.version());
          const auto* fw = st.catalog.find(req.product_key(), req.version());
          if (fw != nullptr && fw->status() == v1::FIRMWARE_STATUS_VERIFYING)
            start_run(self, req);
          return result;
        }
        case v1::ClientFrame::kGetFirmware: {
          v1::GetFirmware req;
          if (!parse_body(cmd, req))
            break;
          if (st.catalog.find(req.product_key(), req.version()) == nullptr)
            return to_error(make_failure(
                errc::not_found, "firmware " + req.product_key() + "/" +
                                     req.version() + " does not exist"));
          return ok_response(
              with_firmware(st.catalog, req.product_key(), req.version()));
        }
        case v1::ClientFrame::kListFirmware: {
          v1::ListFirmware req;
          if (!parse_body(cmd, req))
            break;
          v1::Response r;
          auto* list = r.mutable_firmware_list();
          for (const auto& [key, fw] : st.catalog.entries)
            if (req.product_key().empty() || key.first == req.product_key())
              *list->add_firmwares() = fw;
          return ok_response(r);
        }
        case v1::ClientFrame::kDeleteFirmware: {
          v1::DeleteFirmware req;
          if (!parse_body(cmd, req))
            break;
          auto rp = self->make_response_promise<std::string>();
          self->request(st.ctx->tasks, caf::infinite, lookup_atom_v,
                        req.product_key(), req.version())
              .then(
                  [=](bool in_use) mutable {
                    auto decided = decide(self->state.catalog, req, in_use,
                                          self->state.ctx->now());
                    if (!decided) {
                      rp.deliver(to_error(decided.error()));
                      return;
                    }
                    for (const auto& e : *decided)
                      apply(self->state.catalog, e);
                    persist(self, *self->state.ctx, *decided, rp,
                            [](caf::response_promise& rp) {
                              rp.deliver(ok_response());
                            });
                  },
                  [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
          return rp;
        }
        default:
          return to_error(
              make_failure(errc::internal, "firmware actor got command " +
                                               std::to_string(cmd.kind)));
        }
        return to_error(make_failure(errc::invalid_argument,
                                     "request body does not parse"));
      },
      [=](verified_atom, const std::string& product, const std::string& version,
          bool ok, const std::string& reason) {
        conclude(self, product, version, ok, reason);
      },
      [=](tick_atom) {
        // After recovery: a run that never got its task (the node stopped in
        // between) is over.
        for (const auto& [key, fw] : self->state.catalog.entries) {
          if (fw.status() != v1::FIRMWARE_STATUS_VERIFYING)
            continue;
          auto product = key.first;
          auto version = key.second;
          self->request(self->state.ctx->tasks, caf::infinite, lookup_atom_v,
                        product, version)
              .then(
                  [=](bool running) {
                    if (!running)
                      conclude(self, product, version, false,
                               "verification run was interrupted by a restart "
                               "before it started; verify again");
                  },
                  [](caf::error&) {});
        }
      },
      [=](get_atom, const std::string& product,
          const std::string& version) -> caf::result<std::string> {
        const auto* fw = self->state.catalog.find(product, version);
        if (fw == nullptr)
          return to_error(make_failure(errc::invalid_argument,
                                       "target_version: firmware " + product +
                                           "/" + version + " does not exist"));
        return fw->SerializeAsString();
      },
  };
}

} // namespace fota
