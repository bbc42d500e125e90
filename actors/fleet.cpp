#include "actors/fleet.hpp"

#include "actors/device.hpp"
#include "actors/gather.hpp"
#include "events/gateway.hpp"
#include "events/paging.hpp"
#include "events/replay.hpp"

#include <algorithm>
#include <optional>

#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>

namespace fota {

std::string fleet_state::key_of(const std::string& product,
                                const std::string& device) {
  return device_ref(product, device);
}

// -- device commands ----------------------------------------------------------

status fleet_state::room_at(const std::string& gateway) const {
  const auto* g = ctx->edge->find(gateway);
  if (g == nullptr)
    return std::nullopt;
  auto i = per_gateway.find(gateway);
  return check_room(i != per_gateway.end() ? i->second : 0, g->quota,
                    "gateway " + gateway);
}

void fleet_state::own(fleet_index::ordinal x, const std::string& gateway) {
  if (owners.size() <= x)
    owners.resize(x + 1);
  auto& owner = owners[x];
  if (owner == gateway)
    return;
  if (auto i = per_gateway.find(owner); i != per_gateway.end() && i->second)
    --i->second;
  ++per_gateway[gateway];
  owner = gateway;
}

// -- dormant devices ----------------------------------------------------------

device_actor fleet_state::actor_of(const std::string& product,
                                   const std::string& key) {
  auto i = directory.find(key_of(product, key));
  if (i == directory.end())
    return device_actor{};
  if (!i->second)
    if (auto x = index.find(product, key))
      awaken(*x); // Sets the directory's entry too.
  return i->second;
}

const device_actor& fleet_state::awaken(fleet_index::ordinal x) {
  auto& actor = actors[x];
  if (actor)
    return actor;
  actor = self->spawn<caf::linked>(device_behavior, ctx, dormant_state(x),
                                   event_list{});
  const auto& e = index.at(x);
  directory[key_of(e.product, e.key)] = actor;
  return actor;
}

device_state fleet_state::dormant_state(fleet_index::ordinal x) const {
  const auto& e = index.at(x);
  device_state d;
  d.product = e.product;
  d.key = e.key;
  d.version = e.version;
  d.tags = e.tags;
  d.attributes = e.attributes;
  // Only recovered devices have rows: one registered since runs.
  if (x < dormant.size()) {
    d.active_execution = dormant[x].active_execution;
    d.registered_at_ms = dormant[x].registered_at_ms;
  }
  d.gateway = owners[x];
  return d;
}

// -- device commands, continued -----------------------------------------------

expected<device_actor> fleet_state::admit(const register_device& cmd) {
  if (directory.count(key_of(cmd.product, cmd.device)) > 0) {
    // A device without an owner becomes the registering gateway's.
    auto x = index.find(cmd.product, cmd.device);
    if (x && *x < owners.size() && owners[*x].empty() && !cmd.gateway.empty())
      if (auto err = room_at(cmd.gateway))
        return std::move(*err);
    return actor_of(cmd.product, cmd.device);
  }
  auto decided = decide(nullptr, cmd, ctx->now());
  if (!decided)
    return std::move(decided).error();
  auto initial = make_device(decided->front());
  if (auto err = room_at(cmd.gateway))
    return std::move(*err);
  auto product_held = per_product[cmd.product];
  if (auto err = check_room(product_held, ctx->edge->product_quota(cmd.product),
                            "product " + cmd.product))
    return std::move(*err);
  if (auto err = check_labels(
          initial, ctx->edge->device_limits(cmd.product, cmd.gateway)))
    return std::move(*err);
  ++per_product[cmd.product];
  ++per_gateway[cmd.gateway];
  // The new device's actor persists its registration first of all, and
  // answers the command once it is durable.
  auto actor = self->spawn<caf::linked>(device_behavior, ctx, initial,
                                        std::move(*decided));
  directory.emplace(key_of(cmd.product, cmd.device), actor);
  node_metrics::add(ctx->metrics->registrations);
  return device_actor{actor};
}

caf::result<device_state> fleet_state::operator()(register_device& cmd) {
  auto actor = admit(cmd);
  if (!actor)
    return to_error(actor.error());
  return self->delegate(*actor, std::move(cmd));
}

caf::result<registered_batch> fleet_state::operator()(register_devices& cmd,
                                                      caf::actor& session) {
  /// The items on their way to their device actors.
  struct batch : std::enable_shared_from_this<batch> {
    fleet_state* fleet;
    fleet_state::self_pointer self;
    caf::typed_response_promise<registered_batch> rp;
    std::vector<register_device> items;
    bool online = false;
    caf::actor session;
    registered_batch out;
    /// Items admitted by the fleet, asked of their actors in this order.
    std::vector<size_t> asks;
    size_t next = 0;
    size_t pending = 0;

    /// Asks the next item of its actor; false when none is left.
    bool ask_next() {
      if (next == asks.size())
        return false;
      auto i = asks[next++];
      ++pending;
      ++fleet->batch_asks;
      auto me = shared_from_this();
      auto on_reply = [me, i](device_state& d) {
        me->out.results[i].device = std::move(d);
        me->answered();
      };
      auto on_error = [me, i](caf::error& err) {
        me->out.results[i].error = from_error(err);
        me->out.actors[i] = device_actor{};
        me->answered();
      };
      const auto& to = out.actors[i];
      if (online)
        self->request(to, caf::infinite, std::move(items[i]), session)
            .then(on_reply, on_error);
      else
        self->request(to, caf::infinite, std::move(items[i]))
            .then(on_reply, on_error);
      return true;
    }

    void answered() {
      --pending;
      --fleet->batch_asks;
      if (pending == 0 && next == asks.size())
        rp.deliver(std::move(out));
      fleet->pump_batches();
    }
  };
  auto b = std::make_shared<batch>();
  b->fleet = this;
  b->self = self;
  b->rp = self->make_response_promise<registered_batch>();
  b->online = cmd.online;
  b->session = session;
  auto n = cmd.devices.size();
  b->out.results.resize(n);
  b->out.actors.resize(n);
  b->asks.reserve(n);
  // Decided one by one, in order, so that quotas count every item before it.
  for (size_t i = 0; i < n; ++i) {
    if (cmd.is_refused(i)) {
      b->out.results[i].error = std::move(cmd.refused[i]);
      continue;
    }
    auto& item = cmd.devices[i];
    item.gateway = cmd.gateway;
    auto actor = admit(item);
    if (!actor) {
      b->out.results[i].error = std::move(actor).error();
      continue;
    }
    b->out.actors[i] = std::move(*actor);
    b->asks.push_back(i);
  }
  b->items = std::move(cmd.devices);
  if (b->asks.empty()) {
    b->rp.deliver(std::move(b->out));
    return b->rp;
  }
  batches.push_back([b] { return b->ask_next(); });
  pump_batches();
  return b->rp;
}

void fleet_state::pump_batches() {
  while (batch_asks < batch_window && !batches.empty())
    if (!batches.front()())
      batches.pop_front();
}

caf::result<device_state> fleet_state::operator()(move_device& cmd) {
  if (cmd.gateway.empty() || ctx->edge->find(cmd.gateway) == nullptr)
    return to_error(
        make_failure(errc::not_found, "gateway: \"" + cmd.gateway +
                                          "\" is not a configured gateway"));
  if (auto x = index.find(cmd.product, cmd.device);
      x && (*x >= owners.size() || owners[*x] != cmd.gateway))
    if (auto err = room_at(cmd.gateway))
      return to_error(*err);
  return route(cmd);
}

caf::result<device_page> fleet_state::operator()(list_devices& cmd) {
  if (cmd.product.empty())
    return to_error(
        make_failure(errc::invalid_argument, "product_key: must not be empty"));
  auto from = page_position(cmd.page_token);
  if (!from)
    return to_error(from.error());
  auto size = page_size_of(cmd.page_size);
  // Running devices answer themselves; dormant ones from their rows, in
  // their places on the page.
  std::vector<device_actor> running;
  std::vector<std::optional<device_state>> rows;
  std::string next;
  for (uint64_t i = *from; i < index.size(); ++i) {
    auto x = static_cast<fleet_index::ordinal>(i);
    const auto& d = index.at(x);
    if (d.product != cmd.product ||
        (!cmd.version.empty() && d.version != cmd.version))
      continue;
    if (rows.size() == size) {
      next = std::to_string(i);
      break;
    }
    if (actors[x]) {
      running.push_back(actors[x]);
      rows.emplace_back();
    } else {
      rows.emplace_back(dormant_state(x));
    }
  }
  auto rp = self->make_response_promise<device_page>();
  gather<device_state>(
      self, std::move(running),
      [this, rp, next, rows = std::move(rows)](std::vector<device_state>& xs,
                                               size_t) mutable {
        device_page result;
        size_t k = 0;
        for (auto& row : rows) {
          auto& x = row ? *row : xs[k++];
          if (!x.key.empty())
            result.items.push_back(std::move(x));
        }
        result.next_page_token = next;
        out.reply(rp, std::move(result));
      },
      get_device{});
  return rp;
}

// -- asset trees --------------------------------------------------------------

caf::result<asset_tree> fleet_state::operator()(create_asset_tree& cmd) {
  return commit_and_answer<asset_tree>(
      self, out, trees, decide(trees, cmd, ctx->now()),
      [&cmd](const tree_catalog&) { return cmd.tree; });
}

caf::result<accepted> fleet_state::operator()(delete_asset_tree& cmd) {
  return commit_and_answer<accepted>(
      self, out, trees, decide(trees, cmd, ctx->now()),
      [](const tree_catalog&) { return accepted{}; });
}

caf::result<asset_tree_page> fleet_state::operator()(list_asset_trees& cmd) {
  auto from = page_position(cmd.page_token);
  if (!from)
    return to_error(from.error());
  auto size = page_size_of(cmd.page_size);
  asset_tree_page page;
  uint64_t i = 0;
  for (const auto& [key, tree] : trees) {
    if (!cmd.product.empty() && key.first != cmd.product)
      continue;
    if (i++ < *from)
      continue;
    if (page.items.size() == size) {
      page.next_page_token = std::to_string(i - 1);
      break;
    }
    page.items.push_back(tree);
  }
  auto rp = self->make_response_promise<asset_tree_page>();
  out.reply(rp, std::move(page));
  return rp;
}

// -- scope --------------------------------------------------------------------

expected<device_handles>
fleet_state::resolve(const task_spec& spec,
                     std::unordered_set<std::string>& named) {
  auto selected = index.select(spec, trees, named);
  if (!selected)
    return std::move(selected).error();
  device_handles out;
  out.reserve(selected->size());
  for (auto x : *selected)
    out.push_back(device_handle{index.at(x).key, awaken(x)});
  return out;
}

caf::result<device_handles> fleet_state::operator()(scope_atom, task_spec& spec,
                                                    task_joiner& joiner) {
  subscription sub;
  auto resolved = resolve(spec, sub.named);
  if (!resolved)
    return to_error(resolved.error());
  auto out = std::move(*resolved);
  if (joiner) {
    sub.task = joiner;
    sub.spec = std::move(spec);
    self->monitor(sub.task);
    subscriptions.push_back(std::move(sub));
  }
  return out;
}

caf::result<scope_preview> fleet_state::operator()(preview_atom,
                                                   task_spec& spec) {
  std::unordered_set<std::string> named;
  auto selected = index.select(spec, trees, named);
  if (!selected)
    return to_error(std::move(selected).error());
  // A preview wakes no dormant device: their rows are their states.
  scope_preview out;
  out.scope.reserve(selected->size());
  for (auto x : *selected)
    if (actors[x])
      out.scope.push_back(device_handle{index.at(x).key, actors[x]});
    else
      out.idle.push_back(dormant_state(x));
  auto on_target = index.select_on_version(spec, trees, spec.target_version);
  if (on_target)
    out.on_target = on_target->size();
  return out;
}

void fleet_state::operator()(forget_atom, task_joiner& joiner) {
  subscriptions.erase(
      std::remove_if(subscriptions.begin(), subscriptions.end(),
                     [&](const subscription& s) { return s.task == joiner; }),
      subscriptions.end());
}

caf::result<device_actor> fleet_state::operator()(lookup_atom,
                                                  const std::string& product,
                                                  const std::string& key) {
  auto actor = actor_of(product, key);
  if (!actor)
    return to_error(make_failure(errc::not_found, device_name(product, key) +
                                                      " is not registered"));
  return actor;
}

// -- messages from devices ----------------------------------------------------

void fleet_state::offer(fleet_index::ordinal x) {
  const auto& e = index.at(x);
  for (const auto& sub : subscriptions)
    if (in_scope(sub.spec, sub.named, e))
      self->send(sub.task, join_atom_v, device_handle{e.key, awaken(x)});
}

void fleet_state::operator()(changed_atom, device_state& d) {
  if (auto x = index.find(d.product, d.key)) {
    index.update(*x, d);
    own(*x, d.gateway);
    offer(*x);
    return;
  }
  auto i = directory.find(key_of(d.product, d.key));
  if (i == directory.end())
    return;
  auto x = index.add(d);
  actors.push_back(i->second);
  ctx->metrics->products.of(d.product).registered.fetch_add(
      1, std::memory_order_relaxed);
  // Counted when its registration was decided.
  if (owners.size() <= x)
    owners.resize(x + 1);
  owners[x] = d.gateway;
  offer(x);
}

void fleet_state::operator()(free_atom, const std::string& product,
                             const std::string& key) {
  if (subscriptions.empty())
    return;
  if (auto x = index.find(product, key))
    offer(*x);
}

caf::result<digest_sum> fleet_state::operator()(digest_atom) {
  auto rp = self->make_response_promise<digest_sum>();
  std::vector<device_actor> all;
  all.reserve(directory.size());
  digest_sum sum;
  for (const auto& [key, actor] : directory)
    if (actor)
      all.push_back(actor);
  for (size_t x = 0; x < actors.size(); ++x)
    if (!actors[x])
      sum.add(dormant_state(static_cast<fleet_index::ordinal>(x)));
  for (const auto& [key, tree] : trees)
    sum.add(tree);
  out.then([this, rp, all = std::move(all), sum]() mutable {
    gather<digest_sum>(
        self, std::move(all),
        [rp, sum](std::vector<digest_sum>& xs, size_t failures) mutable {
          if (failures > 0) {
            rp.deliver(to_error(make_failure(
                errc::unavailable,
                std::to_string(failures) + " device actors did not answer")));
            return;
          }
          for (const auto& x : xs)
            sum.add(x);
          rp.deliver(sum);
        },
        digest_atom_v);
  });
  return rp;
}

// -- behavior -----------------------------------------------------------------

fleet_impl::behavior_type
fleet_behavior(fleet_state::self_pointer self, context_ptr ctx,
               std::vector<std::pair<device_state, device_actor>> devices,
               tree_catalog trees) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.trees = std::move(trees);
  st.out.init(st.ctx->journal, st.ctx->metrics);
  survive_children(self);
  ignore_stray_errors(self);
  st.actors.reserve(devices.size());
  st.dormant.reserve(devices.size());
  for (auto& [d, actor] : devices) {
    if (actor)
      self->link_to(actor);
    st.directory.emplace(device_ref(d.product, d.key), actor);
    st.index.add(d);
    st.actors.push_back(std::move(actor));
    st.dormant.push_back(
        fleet_state::dormant_row{d.active_execution, d.registered_at_ms});
    ++st.per_product[d.product];
    ++st.per_gateway[d.gateway];
    st.owners.push_back(d.gateway);
  }
  for (const auto& [product, n] : st.per_product)
    st.ctx->metrics->products.of(product).registered.fetch_add(
        static_cast<int64_t>(n), std::memory_order_relaxed);
  self->set_down_handler([self](const caf::down_msg& down) {
    auto& subs = self->state.subscriptions;
    subs.erase(std::remove_if(subs.begin(), subs.end(),
                              [&](const auto& s) {
                                return s.task.address() == down.source;
                              }),
               subs.end());
  });
  return {
      [self](register_device& x) { return self->state(x); },
      [self](register_devices& x, caf::actor& s) { return self->state(x, s); },
      [self](device_online& x, caf::actor& s) {
        return self->state.route(x, s);
      },
      [self](device_offline& x, caf::actor& s) {
        return self->state.route(x, s);
      },
      [self](report_version& x) { return self->state.route(x); },
      [self](set_device_tags& x) { return self->state.route(x); },
      [self](set_device_attributes& x) { return self->state.route(x); },
      [self](move_device& x) { return self->state(x); },
      [self](get_device& x) { return self->state.route(x); },
      [self](report_progress& x) { return self->state.route(x); },
      [self](report_failure& x) { return self->state.route(x); },
      [self](confirm_upgrade& x) { return self->state.route(x); },
      [self](ack_push& x) { return self->state.route(x); },
      [self](request_upgrade& x) { return self->state.route(x); },
      [self](list_devices& x) { return self->state(x); },
      [self](create_asset_tree& x) { return self->state(x); },
      [self](delete_asset_tree& x) { return self->state(x); },
      [self](list_asset_trees& x) { return self->state(x); },
      [self](scope_atom tag, task_spec& spec, task_joiner& joiner) {
        return self->state(tag, spec, joiner);
      },
      [self](forget_atom tag, task_joiner& joiner) {
        self->state(tag, joiner);
      },
      [self](lookup_atom tag, const std::string& product,
             const std::string& key) { return self->state(tag, product, key); },
      [self](preview_atom tag, task_spec& spec) {
        return self->state(tag, spec);
      },
      [self](changed_atom tag, device_state& d) { self->state(tag, d); },
      [self](free_atom tag, const std::string& product,
             const std::string& key) { self->state(tag, product, key); },
      [self](digest_atom tag) { return self->state(tag); },
      [self](flush_atom) { self->state.out.flush(self); },
  };
}

} // namespace fota
