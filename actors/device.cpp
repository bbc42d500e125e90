#include "actors/device.hpp"

#include "events/gateway.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>
#include <caf/send.hpp>

namespace fota {

namespace {

upgrade_offer no_offer(std::string reason) {
  upgrade_offer o;
  o.reason = std::move(reason);
  return o;
}

} // namespace

// -- gateway and operator commands --------------------------------------------

status device_actor_state::apply_all(const event_list& events, bool durable) {
  bool indexed = false;
  for (const auto& e : events) {
    if (auto err = apply(device, e))
      return make_failure(errc::internal, err->message);
    indexed = indexed || e.has_device_version_reported() ||
              e.has_device_tags_changed() ||
              e.has_device_attributes_changed() ||
              e.has_device_gateway_changed() || e.has_execution_succeeded();
  }
  if (!durable) {
    out.add(events);
    out.schedule_flush(self);
  }
  if (indexed)
    out.then([this, d = device] { self->send(ctx->fleet, changed_atom_v, d); });
  return std::nullopt;
}

caf::result<device_state>
device_actor_state::commit(expected<event_list> decided) {
  if (!decided)
    return to_error(decided.error());
  if (auto err = apply_all(*decided, false))
    return to_error(*err);
  auto rp = self->make_response_promise<device_state>();
  out.reply(rp, device);
  return rp;
}

void device_actor_state::set_online(bool online) {
  if (device.online == online)
    return;
  device.online = online;
  if (gauges == nullptr)
    gauges = &ctx->metrics->products.of(device.product);
  gauges->online.fetch_add(online ? 1 : -1, std::memory_order_relaxed);
}

device_quota device_actor_state::quota(const std::string& gateway) const {
  return ctx->edge->device_limits(device.product,
                                  gateway.empty() ? device.gateway : gateway);
}

caf::result<device_state> device_actor_state::operator()(register_device& cmd) {
  auto decided = decide(&device, cmd, ctx->now());
  if (!decided)
    return to_error(decided.error());
  auto result = commit(within(device, std::move(decided), quota(cmd.gateway)));
  // Every report counts while an upgrade is under way, even an unchanged
  // version: the task may not have heard it before a crash.
  if (task && !is_enrolling_claim(device.active_execution))
    out.then([this, x = device.active_execution, v = device.version] {
      self->send(task, version_atom_v, x, v);
    });
  return result;
}

caf::result<device_state> device_actor_state::operator()(register_device& cmd,
                                                         caf::actor& origin) {
  // The registration, decided as a RegisterDevice ...
  auto decided = decide(&device, cmd, ctx->now());
  if (!decided)
    return to_error(decided.error());
  auto registered = within(device, std::move(decided), quota(cmd.gateway));
  if (!registered)
    return to_error(registered.error());
  if (auto err = apply_all(*registered, false))
    return to_error(*err);
  if (task && !is_enrolling_claim(device.active_execution))
    out.then([this, x = device.active_execution, v = device.version] {
      self->send(task, version_atom_v, x, v);
    });
  // ... then a DeviceOnline on `origin` (volatile, no event), decided
  // against the registered device; the reply waits for the registration.
  device_online online{cmd.product, cmd.device, cmd.gateway};
  return (*this)(online, origin);
}

caf::result<device_state> device_actor_state::operator()(device_online& cmd,
                                                         caf::actor& origin) {
  // Another gateway's DeviceOnline must not take the device's pushes.
  auto decided = decide(device, cmd, ctx->now());
  if (!decided)
    return to_error(decided.error());
  session = origin;
  set_online(true); // Volatile: no event (docs/events.md).
  auto result = commit(std::move(decided));
  if (task && !is_enrolling_claim(device.active_execution))
    out.then([this, x = device.active_execution, s = session] {
      self->send(task, status_atom_v, x, s);
    });
  return result;
}

caf::result<device_state> device_actor_state::operator()(device_offline& cmd,
                                                         caf::actor& origin) {
  if (auto err = check_owner(device, cmd.gateway))
    return to_error(*err);
  if (origin && session && origin != session) {
    // Online on another session by now.
    auto rp = self->make_response_promise<device_state>();
    out.reply(rp, device);
    return rp;
  }
  auto decided = decide(device, cmd, ctx->now());
  if (!decided)
    return to_error(decided.error());
  session = nullptr;
  set_online(false); // Volatile: no event (docs/events.md).
  auto result = commit(std::move(decided));
  if (task && !is_enrolling_claim(device.active_execution))
    out.then([this, x = device.active_execution] {
      self->send(task, status_atom_v, x, caf::actor{});
    });
  return result;
}

caf::result<device_state> device_actor_state::operator()(report_version& cmd) {
  auto decided = decide(device, cmd, ctx->now());
  if (decided && !decided->empty() && task &&
      !is_enrolling_claim(device.active_execution))
    return record(std::move(*decided), cmd.version);
  auto result = commit(std::move(decided));
  if (task && !is_enrolling_claim(device.active_execution))
    out.then([this, x = device.active_execution, v = device.version] {
      self->send(task, version_atom_v, x, v);
    });
  return result;
}

caf::result<device_state>
device_actor_state::record(event_list decided, const std::string& version) {
  // The new version may complete the execution holding the device: the task
  // decides, and its success records the version too, one event for both.
  // This device handles nothing else until the task answers, so that no
  // other version of it is written in between; its own events written so
  // far reach the journal first.
  out.flush(self);
  auto rp = self->make_response_promise<device_state>();
  auto fallback = [this, rp, decided]() mutable {
    // Not a success: the device records its version itself.
    if (auto err = apply_all(decided, false)) {
      rp.deliver(to_error(*err));
      return;
    }
    out.reply(rp, device);
  };
  self->request(task, caf::infinite, record_atom_v, device.active_execution,
                version)
      .await(
          [this, rp, fallback](std::string& recorded) mutable {
            if (recorded.empty()) {
              fallback();
              return;
            }
            // Durable already: the task answers once it is.
            event e;
            if (!e.ParseFromString(recorded)) {
              rp.deliver(to_error(make_failure(
                  errc::internal, "the task's success event does not decode")));
              return;
            }
            if (auto err = apply_all(event_list{std::move(e)}, true)) {
              rp.deliver(to_error(*err));
              return;
            }
            out.reply(rp, device);
          },
          [fallback](caf::error&) mutable { fallback(); });
  return rp;
}

caf::result<device_state> device_actor_state::operator()(set_device_tags& cmd) {
  return commit(within(device, decide(device, cmd, ctx->now()), quota()));
}

caf::result<device_state>
device_actor_state::operator()(set_device_attributes& cmd) {
  return commit(within(device, decide(device, cmd, ctx->now()), quota()));
}

caf::result<device_state> device_actor_state::operator()(move_device& cmd) {
  auto decided = decide(device, cmd, ctx->now());
  if (!decided || decided->empty())
    return commit(std::move(decided));
  // The old gateway's session loses the device: pushes stop going there,
  // and the task hears that the device is offline until the new gateway
  // brings it online.
  session = nullptr;
  set_online(false);
  auto result = commit(std::move(decided));
  if (task && !is_enrolling_claim(device.active_execution))
    out.then([this, x = device.active_execution] {
      self->send(task, status_atom_v, x, caf::actor{});
    });
  return result;
}

caf::result<device_state> device_actor_state::operator()(get_device&) {
  auto rp = self->make_response_promise<device_state>();
  out.reply(rp, device);
  return rp;
}

expected<task_sink> device_actor_state::task_of(const std::string& gateway,
                                                execution_id execution) const {
  if (auto err = check_owner(device, gateway))
    return std::move(*err);
  if (execution && !is_enrolling_claim(execution)) {
    if (execution == device.active_execution && task)
      return task;
    if (execution == previous && previous_task)
      return previous_task;
  }
  return make_failure(errc::failed_precondition,
                      "execution " + execution.to_string() +
                          " is not active on device " + device.key);
}

status device_actor_state::resolve_current(const std::string& gateway,
                                           execution_id& execution) const {
  if (execution)
    return std::nullopt;
  if (auto err = check_owner(device, gateway))
    return err;
  const auto& held = device.active_execution;
  if (!held || is_enrolling_claim(held) || !task)
    return make_failure(errc::failed_precondition,
                        "device " + device.key + " has no current execution");
  execution = held;
  return std::nullopt;
}

caf::result<accepted> device_actor_state::operator()(report_progress& cmd) {
  if (auto err = resolve_current(cmd.gateway, cmd.execution))
    return to_error(*err);
  auto to = task_of(cmd.gateway, cmd.execution);
  if (!to)
    return to_error(to.error());
  return self->delegate(*to, std::move(cmd));
}

caf::result<accepted> device_actor_state::operator()(report_failure& cmd) {
  if (auto err = resolve_current(cmd.gateway, cmd.execution))
    return to_error(*err);
  auto to = task_of(cmd.gateway, cmd.execution);
  if (!to)
    return to_error(to.error());
  return self->delegate(*to, std::move(cmd));
}

caf::result<accepted> device_actor_state::operator()(confirm_upgrade& cmd) {
  auto to = task_of(cmd.gateway, cmd.execution);
  if (!to)
    return to_error(to.error());
  return self->delegate(*to, std::move(cmd));
}

caf::result<accepted> device_actor_state::operator()(ack_push& cmd) {
  auto to = task_of(cmd.gateway, cmd.execution);
  if (!to)
    return to_error(to.error());
  return self->delegate(*to, std::move(cmd));
}

caf::result<upgrade_offer>
device_actor_state::operator()(request_upgrade& cmd) {
  if (auto err = check_owner(device, cmd.gateway))
    return to_error(*err);
  const auto& held = device.active_execution;
  if (held && !is_enrolling_claim(held) && task && !asking) {
    // The task holding the device answers: the same offer again, or busy.
    return self->delegate(task, offer_atom_v, held.sequence(), device.version);
  }
  auto rp = self->make_response_promise<upgrade_offer>();
  if (asking) {
    out.reply(rp, no_offer("busy: a request of device " + device.key +
                           " is being answered"));
    return rp;
  }
  if (held) {
    out.reply(rp, no_offer("busy: " + busy_reason(device)));
    return rp;
  }
  asking = true;
  self->request(ctx->tasks, caf::infinite, candidate_atom_v, device.product,
                device.key)
      .then(
          [this, rp](offer_candidates& xs) {
            auto a = std::make_shared<asking_state>();
            a->candidates = std::move(xs);
            ask(rp, std::move(a), 0);
          },
          [this, rp](caf::error& err) mutable {
            asking = false;
            rp.deliver(err);
          });
  return rp;
}

void device_actor_state::ask(caf::typed_response_promise<upgrade_offer> rp,
                             std::shared_ptr<asking_state> a, size_t index) {
  auto refuse = [&](std::string reason) {
    asking = false;
    out.reply(rp, no_offer(std::move(reason)));
  };
  if (device.active_execution) {
    // A task claimed the device while it asked.
    refuse("busy: " + busy_reason(device));
    return;
  }
  if (index == a->candidates.size()) {
    // The best task's reason is the one the device hears.
    refuse(a->first_refusal.empty()
               ? "no upgrade available: no running device-request task "
                 "covers device " +
                     device.key
               : a->first_refusal);
    return;
  }
  // The device-request offer holds the device: from here on, claims of other
  // tasks find it busy.
  auto& c = a->candidates[index];
  auto id = execution_id{c.id, c.sequence};
  device.active_execution = id;
  task = c.task;
  auto let_go = [this, id] {
    if (device.active_execution == id) {
      device.active_execution = execution_id{};
      task = nullptr;
    }
  };
  self->request(c.task, caf::infinite, offer_atom_v, c.sequence, device.version)
      .then(
          [this, rp, a, index, let_go](upgrade_offer& offer) mutable {
            if (offer.available) {
              asking = false;
              out.reply(rp, std::move(offer));
              return;
            }
            let_go();
            if (a->first_refusal.empty())
              a->first_refusal = offer.reason;
            ask(rp, a, index + 1);
          },
          [this, rp, a, index, let_go](caf::error&) {
            let_go();
            ask(rp, a, index + 1);
          });
}

// -- messages from tasks ------------------------------------------------------

caf::result<claim_result>
device_actor_state::operator()(claim_atom, execution_id claimant) {
  auto rp = self->make_response_promise<claim_result>();
  claim_result r;
  if (auto err = decide_claim(device, claimant)) {
    r.reason = err->message;
  } else {
    r.granted = true;
    device.active_execution = claimant;
    if (device.online)
      r.session = session;
  }
  out.reply(rp, std::move(r));
  return rp;
}

void device_actor_state::operator()(bind_atom, execution_id execution,
                                    task_sink& holder) {
  const auto& held = device.active_execution;
  bool claimed = !held || held == execution ||
                 (is_enrolling_claim(held) && held.task() == execution.task());
  if (!claimed)
    return; // Another execution holds the device; the claim rule kept it.
  device.active_execution = execution;
  task = holder;
  // The task learns whether the device is online, and its version: after a
  // restart, the device may already run the target, reported before a crash
  // that the task never heard of.
  out.then([this, execution, s = device.online ? session : caf::actor{},
            v = device.version] {
    self->send(task, bind_atom_v, execution, s);
    self->send(task, version_atom_v, execution, v);
  });
}

void device_actor_state::operator()(release_atom, execution_id execution) {
  const auto& held = device.active_execution;
  bool ours = held == execution ||
              (is_enrolling_claim(execution) && held &&
               held.task() == execution.task() && is_enrolling_claim(held));
  if (!ours)
    return;
  if (!is_enrolling_claim(held)) {
    previous = held;
    previous_task = task;
  }
  device.active_execution = execution_id{};
  task = nullptr;
  // Free again: increment tasks that wanted the device may claim it now.
  out.then([this] {
    self->send(ctx->fleet, free_atom_v, device.product, device.key);
  });
}

void device_actor_state::operator()(push_atom, push_frame& push) {
  if (!session || !device.online)
    return;
  if (!push.cancel && push.execution != device.active_execution)
    return;
  // The session answers `deferred_atom` when its output is full.
  caf::anon_send(session, push_atom_v, std::move(push),
                 caf::actor_cast<caf::actor>(self));
}

void device_actor_state::operator()(deferred_atom, execution_id execution) {
  if (task && execution == device.active_execution)
    self->send(task, deferred_atom_v, execution);
}

void device_actor_state::operator()(resume_atom) {
  auto from = caf::actor_cast<caf::actor>(self->current_sender());
  if (!session || from != session || !device.online)
    return;
  if (task && !is_enrolling_claim(device.active_execution))
    self->send(task, status_atom_v, device.active_execution, session);
}

caf::result<digest_sum> device_actor_state::operator()(digest_atom) {
  auto rp = self->make_response_promise<digest_sum>();
  digest_sum sum;
  sum.add(device);
  out.reply(rp, sum);
  return rp;
}

device_actor_state::~device_actor_state() {
  if (ctx) // Set when the behavior started.
    ctx->metrics->device_actors.fetch_sub(1, std::memory_order_relaxed);
}

// -- behavior -----------------------------------------------------------------

device_impl::behavior_type
device_behavior(device_actor_state::self_pointer self, context_ptr ctx,
                device_state initial, event_list registration) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.ctx->metrics->device_actors.fetch_add(1, std::memory_order_relaxed);
  st.device = std::move(initial);
  st.out.init(st.ctx->journal, st.ctx->metrics);
  ignore_stray_errors(self);
  if (!registration.empty()) {
    // A device registered just now: its registration is its first event,
    // and the fleet selects it for scopes once that is durable.
    st.out.add(registration);
    st.out.schedule_flush(self);
    st.out.then([self] {
      auto& st = self->state;
      self->send(st.ctx->fleet, changed_atom_v, st.device);
    });
  }
  return {
      [self](register_device& x) { return self->state(x); },
      [self](register_device& x, caf::actor& s) { return self->state(x, s); },
      [self](device_online& x, caf::actor& s) { return self->state(x, s); },
      [self](device_offline& x, caf::actor& s) { return self->state(x, s); },
      [self](report_version& x) { return self->state(x); },
      [self](set_device_tags& x) { return self->state(x); },
      [self](set_device_attributes& x) { return self->state(x); },
      [self](move_device& x) { return self->state(x); },
      [self](get_device& x) { return self->state(x); },
      [self](report_progress& x) { return self->state(x); },
      [self](report_failure& x) { return self->state(x); },
      [self](confirm_upgrade& x) { return self->state(x); },
      [self](ack_push& x) { return self->state(x); },
      [self](request_upgrade& x) { return self->state(x); },
      [self](claim_atom tag, execution_id x) { return self->state(tag, x); },
      [self](bind_atom tag, execution_id x, task_sink& t) {
        self->state(tag, x, t);
      },
      [self](release_atom tag, execution_id x) { self->state(tag, x); },
      [self](push_atom tag, push_frame& x) { self->state(tag, x); },
      [self](deferred_atom tag, execution_id x) { self->state(tag, x); },
      [self](resume_atom tag) { self->state(tag); },
      [self](digest_atom tag) { return self->state(tag); },
      [self](flush_atom) { self->state.out.flush(self); },
  };
}

} // namespace fota
