#include "actors/firmware.hpp"

#include "events/paging.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>
#include <spdlog/spdlog.h>

namespace fota {

namespace {

/// The log line of a firmware lifecycle event; every firmware event is one.
std::string lifecycle_line(const event& e) {
  switch (e.payload_case()) {
  case event::kFirmwareCreated: {
    const auto& fw = e.firmware_created().firmware();
    return fmt::format("{} created: {} bytes, sha256 {}{}",
                       firmware_name(fw.product_key(), fw.version()), fw.size(),
                       fw.sha256(), fw.signature().empty() ? "" : ", signed");
  }
  case event::kFirmwareVerificationStarted: {
    const auto& x = e.firmware_verification_started();
    return fmt::format("{} verification started on {} device(s), timeout {} s",
                       firmware_name(x.product_key(), x.version()),
                       x.device_keys_size(), x.timeout_seconds());
  }
  case event::kFirmwareVerified: {
    const auto& x = e.firmware_verified();
    return firmware_name(x.product_key(), x.version()) + " verified";
  }
  case event::kFirmwareVerificationFailed: {
    const auto& x = e.firmware_verification_failed();
    return firmware_name(x.product_key(), x.version()) +
           " failed verification: " + x.reason();
  }
  case event::kFirmwareVerificationSkipped: {
    const auto& x = e.firmware_verification_skipped();
    return firmware_name(x.product_key(), x.version()) +
           " verification skipped: " + x.reason();
  }
  case event::kFirmwareDeleted: {
    const auto& x = e.firmware_deleted();
    return firmware_name(x.product_key(), x.version()) + " deleted";
  }
  default:
    return {};
  }
}

/// Logs the lifecycle events of `decided` once they are durable.
void log_durable(outbox& out, const expected<event_list>& decided) {
  if (!decided)
    return;
  for (const auto& e : *decided)
    if (auto line = lifecycle_line(e); !line.empty())
      out.then([line = std::move(line)] { spdlog::info("{}", line); });
}

} // namespace

caf::result<firmware_record>
firmware_actor_state::commit(expected<event_list> decided,
                             const std::string& product,
                             const std::string& version) {
  auto result = commit_and_answer<firmware_record>(
      self, out, catalog, decided, [&](const firmware_catalog& c) {
        const auto* fw = c.find(product, version);
        return fw != nullptr ? *fw : firmware_record{};
      });
  log_durable(out, decided);
  return result;
}

void firmware_actor_state::commit_quietly(const event_list& events) {
  for (const auto& e : events)
    if (apply(catalog, e))
      return;
  out.add(events);
  out.schedule_flush(self);
  log_durable(out, events);
}

caf::result<firmware_record>
firmware_actor_state::operator()(create_firmware& cmd) {
  return commit(decide(catalog, cmd, policy, ctx->now()), cmd.product,
                cmd.version);
}

caf::result<firmware_record>
firmware_actor_state::operator()(verify_firmware& cmd) {
  auto result =
      commit(decide(catalog, cmd, ctx->now()), cmd.product, cmd.version);
  const auto* fw = catalog.find(cmd.product, cmd.version);
  if (fw == nullptr || fw->status != v1::FIRMWARE_STATUS_VERIFYING)
    return result;
  // The run: a snapshot cloud push of the firmware to the named devices, on
  // whatever version they run. It starts once VERIFYING is durable.
  task_spec spec;
  spec.name = "verification of " + cmd.product + "/" + cmd.version;
  spec.product = cmd.product;
  spec.target_version = cmd.version;
  spec.strategy = v1::STRATEGY_SNAPSHOT;
  spec.method = v1::METHOD_CLOUD_PUSH;
  spec.scope.kind = v1::SCOPE_KIND_TARGET;
  spec.scope.filters = task_scope::device_keys_filter;
  spec.scope.device_keys = cmd.devices;
  spec.timeout_seconds = cmd.timeout_seconds;
  spec.verification = true;
  out.then([this, spec = std::move(spec), product = cmd.product,
            version = cmd.version] {
    self->request(ctx->tasks, caf::infinite, spawn_atom_v, spec)
        .then([](task_summary&) {},
              [this, product, version](caf::error& err) {
                commit_quietly(decide_verification_result(
                    catalog, product, version, false,
                    "verification run could not start: " +
                        from_error(err).message,
                    ctx->now()));
              });
  });
  return result;
}

caf::result<firmware_record>
firmware_actor_state::operator()(skip_verification& cmd) {
  return commit(decide(catalog, cmd, ctx->now()), cmd.product, cmd.version);
}

caf::result<firmware_record>
firmware_actor_state::operator()(get_firmware& cmd) {
  const auto* fw = catalog.find(cmd.product, cmd.version);
  if (fw == nullptr)
    return to_error(
        make_failure(errc::not_found, firmware_name(cmd.product, cmd.version) +
                                          " does not exist"));
  auto rp = self->make_response_promise<firmware_record>();
  out.reply(rp, *fw);
  return rp;
}

caf::result<firmware_page>
firmware_actor_state::operator()(list_firmware& cmd) {
  auto from = page_position(cmd.page_token);
  if (!from)
    return to_error(from.error());
  auto size = page_size_of(cmd.page_size);
  firmware_page page;
  uint64_t i = 0;
  for (const auto& [key, fw] : catalog.entries) {
    if (!cmd.product.empty() && key.first != cmd.product)
      continue;
    if (i++ < *from)
      continue;
    if (page.items.size() == size) {
      page.next_page_token = std::to_string(i - 1);
      break;
    }
    page.items.push_back(fw);
  }
  auto rp = self->make_response_promise<firmware_page>();
  out.reply(rp, std::move(page));
  return rp;
}

caf::result<accepted> firmware_actor_state::operator()(delete_firmware& cmd) {
  auto i = users.find({cmd.product, cmd.version});
  bool in_use = i != users.end() && !i->second.empty();
  auto decided = decide(catalog, cmd, in_use, ctx->now());
  auto result = commit_and_answer<accepted>(
      self, out, catalog, decided,
      [](const firmware_catalog&) { return accepted{}; });
  log_durable(out, decided);
  return result;
}

expected<const firmware_record*>
firmware_actor_state::target_of(const std::string& product,
                                const std::string& version) const {
  const auto* fw = catalog.find(product, version);
  if (fw == nullptr)
    return make_failure(errc::invalid_argument,
                        "target_version: " + firmware_name(product, version) +
                            " does not exist");
  return fw;
}

caf::result<firmware_record>
firmware_actor_state::operator()(reserve_atom, task_id task,
                                 const std::string& product,
                                 const std::string& version) {
  auto fw = target_of(product, version);
  if (!fw)
    return to_error(fw.error());
  users[{product, version}].insert(task);
  auto rp = self->make_response_promise<firmware_record>();
  out.reply(rp, **fw);
  return rp;
}

caf::result<firmware_record>
firmware_actor_state::operator()(lookup_atom, const std::string& product,
                                 const std::string& version) {
  auto fw = target_of(product, version);
  if (!fw)
    return to_error(fw.error());
  auto rp = self->make_response_promise<firmware_record>();
  out.reply(rp, **fw);
  return rp;
}

void firmware_actor_state::operator()(release_atom, task_id task) {
  for (auto i = users.begin(); i != users.end();) {
    i->second.erase(task);
    if (i->second.empty())
      i = users.erase(i);
    else
      ++i;
  }
}

void firmware_actor_state::operator()(verified_atom, const std::string& product,
                                      const std::string& version, bool ok,
                                      const std::string& reason) {
  commit_quietly(decide_verification_result(catalog, product, version, ok,
                                            reason, ctx->now()));
}

caf::result<digest_sum> firmware_actor_state::operator()(digest_atom) {
  auto rp = self->make_response_promise<digest_sum>();
  out.then([this, rp]() mutable {
    digest_sum sum;
    for (const auto& [key, fw] : catalog.entries)
      sum.add(fw);
    rp.deliver(sum);
  });
  return rp;
}

firmware_impl::behavior_type
firmware_behavior(firmware_actor_state::self_pointer self, context_ptr ctx,
                  firmware_policy policy, firmware_catalog catalog,
                  std::map<firmware_catalog::key, std::set<task_id>> users,
                  std::set<firmware_catalog::key> running_verifications) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.policy = std::move(policy);
  st.catalog = std::move(catalog);
  st.users = std::move(users);
  st.out.init(st.ctx->journal, st.ctx->metrics);
  ignore_stray_errors(self);
  // A run that never got its task (the node stopped in between) is over.
  std::vector<firmware_catalog::key> interrupted;
  for (const auto& [key, fw] : st.catalog.entries)
    if (fw.status == v1::FIRMWARE_STATUS_VERIFYING &&
        running_verifications.count(key) == 0)
      interrupted.push_back(key);
  for (const auto& [product, version] : interrupted)
    st.commit_quietly(decide_verification_result(
        st.catalog, product, version, false,
        "verification run was interrupted by a restart before it started; "
        "verify again",
        st.ctx->now()));
  return {
      [self](create_firmware& x) { return self->state(x); },
      [self](verify_firmware& x) { return self->state(x); },
      [self](skip_verification& x) { return self->state(x); },
      [self](get_firmware& x) { return self->state(x); },
      [self](list_firmware& x) { return self->state(x); },
      [self](delete_firmware& x) { return self->state(x); },
      [self](reserve_atom tag, task_id t, const std::string& p,
             const std::string& v) { return self->state(tag, t, p, v); },
      [self](lookup_atom tag, const std::string& p, const std::string& v) {
        return self->state(tag, p, v);
      },
      [self](release_atom tag, task_id t) { self->state(tag, t); },
      [self](verified_atom tag, const std::string& p, const std::string& v,
             bool ok,
             const std::string& reason) { self->state(tag, p, v, ok, reason); },
      [self](digest_atom tag) { return self->state(tag); },
      [self](flush_atom) { self->state.out.flush(self); },
  };
}

} // namespace fota
