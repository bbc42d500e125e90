#include "actors/task_registry.hpp"

#include "actors/gather.hpp"
#include "actors/previewer.hpp"
#include "events/paging.hpp"

#include <algorithm>

#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>

namespace fota {

caf::result<task_summary> task_registry_state::enqueue(task_spec spec) {
  auto rp = self->make_response_promise<task_summary>();
  pending.push_back(pending_creation{std::move(spec), rp});
  create_next();
  return rp;
}

void task_registry_state::create_next() {
  if (creating || pending.empty())
    return;
  auto next = std::move(pending.front());
  pending.pop_front();
  if (next_id > max_task_id) {
    next.promise.deliver(to_error(
        make_failure(errc::resource_exhausted, "task ids are exhausted")));
    create_next();
    return;
  }
  creating = true;
  auto id = next_id;
  auto start = std::make_shared<task_start>();
  start->is_new = true;
  start->id = task_id{id};
  start->board = std::make_shared<summary_board>();
  auto actor = self->spawn<caf::linked>(task_behavior, ctx, start);
  tasks.emplace(id, entry{actor, next.spec.product,
                          next.spec.method == v1::METHOD_DEVICE_REQUEST,
                          start->board});
  ctx->metrics->tasks.add(id, start->board);
  self->monitor(actor);
  // The task creates itself and answers once durable.
  auto rp = next.promise;
  self->request(actor, caf::infinite, create_task{std::move(next.spec)})
      .then(
          [this, id, rp](task_summary& summary) mutable {
            next_id = id + 1;
            rp.deliver(std::move(summary));
            creation_decided();
          },
          [this, id, rp, actor](caf::error& err) {
            // A refused task quits without writing: its id goes to the next
            // creation. A task that outlives its refusal failed to write its
            // creation, which may have reached the log: its id is used.
            self->request(actor, caf::infinite, get_atom_v)
                .then(
                    [this, id, rp, err](task_summary&) mutable {
                      next_id = id + 1;
                      rp.deliver(err);
                      creation_decided();
                    },
                    [this, id, rp, err, actor](caf::error&) mutable {
                      auto i = tasks.find(id);
                      if (i != tasks.end() && i->second.actor == actor) {
                        ctx->metrics->tasks.remove(id);
                        tasks.erase(i);
                      }
                      rp.deliver(err);
                      creation_decided();
                    });
          });
}

void task_registry_state::creation_decided() {
  creating = false;
  create_next();
}

namespace {

/// A client's spec that asks for a verification run, which only
/// VerifyFirmware starts.
status refuse_verification(const task_spec& spec) {
  if (spec.verification)
    return make_failure(
        errc::invalid_argument,
        "spec.verification: only VerifyFirmware starts verification runs");
  return std::nullopt;
}

} // namespace

caf::result<task_summary> task_registry_state::operator()(create_task& cmd) {
  if (auto err = refuse_verification(cmd.spec))
    return to_error(*err);
  return enqueue(std::move(cmd.spec));
}

caf::result<task_preview> task_registry_state::operator()(preview_task& cmd) {
  if (auto err = refuse_verification(cmd.spec))
    return to_error(*err);
  // Creations queued or being decided take the ids before it.
  auto id = next_id + pending.size() + (creating ? 1 : 0);
  if (id > max_task_id)
    return to_error(
        make_failure(errc::resource_exhausted, "task ids are exhausted"));
  auto previewer = self->spawn(previewer_behavior, ctx, task_id{id});
  return self->delegate(previewer, std::move(cmd));
}

caf::result<task_summary> task_registry_state::operator()(spawn_atom,
                                                          task_spec& spec) {
  return enqueue(std::move(spec));
}

namespace {

/// The summary with its forecast, from what the task published.
task_summary with_forecast(task_summary s, const task_live& live,
                           const node_limits& limits, timestamp now) {
  forecast_input in;
  in.status = s.status;
  in.status_reason = s.status_reason;
  in.cloud_push = s.spec.is_cloud_push();
  in.queued = s.counters.queued;
  in.queued_online = live.queued_online;
  in.upgrading = s.counters.notified + s.counters.in_progress;
  in.succeeded = s.counters.succeeded;
  in.retries_waiting = live.retries_waiting;
  in.next_retry_ms = live.next_retry_ms;
  in.rate = s.spec.rate;
  in.node_per_minute = limits.max_pushes_per_minute;
  in.schedule = s.spec.schedule;
  in.pushes_last_minute = live.pushes.last_minute(now);
  in.now = now;
  s.forecast = forecast(in);
  s.has_forecast = true;
  return s;
}

bool matches(const list_tasks& filter, const task_summary& s) {
  if (!filter.product.empty() && s.spec.product != filter.product)
    return false;
  if (!filter.target_version.empty() &&
      s.spec.target_version != filter.target_version)
    return false;
  return filter.statuses.empty() ||
         std::find(filter.statuses.begin(), filter.statuses.end(), s.status) !=
             filter.statuses.end();
}

} // namespace

caf::result<task_summary> task_registry_state::operator()(get_task& cmd) {
  auto i = tasks.find(cmd.task.value());
  if (i != tasks.end() && i->second.board)
    if (auto s = i->second.board->get_live())
      return with_forecast(std::move(s->first), s->second, ctx->limits,
                           ctx->now());
  // Unknown, or still being created: the task (or its absence) answers.
  return route(cmd);
}

caf::result<task_page> task_registry_state::operator()(list_tasks& cmd) {
  auto after = page_position(cmd.page_token);
  if (!after)
    return to_error(after.error());
  auto size = page_size_of(cmd.page_size);
  // Published summaries answer at once; a task still being created is
  // asked.
  // Filters look at published summaries; a task still being created has
  // none and is left out of a filtered list.
  bool filtered = !cmd.product.empty() || !cmd.statuses.empty() ||
                  !cmd.target_version.empty();
  std::vector<task_actor> page;
  std::vector<std::optional<task_summary>> known;
  std::string next;
  uint64_t last = 0;
  for (auto i = tasks.upper_bound(*after); i != tasks.end(); ++i) {
    auto s = i->second.board ? i->second.board->get()
                             : std::optional<task_summary>{};
    if (filtered && (!s || !matches(cmd, *s)))
      continue;
    if (known.size() == size) {
      next = std::to_string(last);
      break;
    }
    last = i->first;
    if (!s)
      page.push_back(i->second.actor);
    known.push_back(std::move(s));
  }
  auto rp = self->make_response_promise<task_page>();
  gather<task_summary>(
      self, std::move(page),
      [rp, next, known = std::move(known)](std::vector<task_summary>& xs,
                                           size_t) mutable {
        task_page out;
        size_t asked = 0;
        for (auto& k : known) {
          auto x = k ? std::move(*k) : std::move(xs[asked++]);
          if (x.id.value() != 0)
            out.items.push_back(std::move(x));
        }
        out.next_page_token = next;
        rp.deliver(std::move(out));
      },
      get_atom_v);
  return rp;
}

caf::result<offer_candidates>
task_registry_state::operator()(candidate_atom, const std::string& product,
                                const std::string& device) {
  std::vector<task_actor> asked;
  for (const auto& [id, t] : tasks)
    if (t.device_request && t.product == product)
      asked.push_back(t.actor);
  auto rp = self->make_response_promise<offer_candidates>();
  gather<offer_candidates>(
      self, std::move(asked),
      [rp](std::vector<offer_candidates>& xs, size_t) mutable {
        offer_candidates out;
        for (auto& x : xs)
          out.insert(out.end(), x.begin(), x.end());
        // Higher priority first; the older task first among equals.
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
          return a.priority != b.priority ? a.priority > b.priority
                                          : a.id < b.id;
        });
        rp.deliver(std::move(out));
      },
      candidate_atom_v, device);
  return rp;
}

caf::result<digest_sum> task_registry_state::operator()(digest_atom) {
  std::vector<task_actor> all;
  for (const auto& [id, t] : tasks)
    all.push_back(t.actor);
  auto rp = self->make_response_promise<digest_sum>();
  gather<digest_sum>(
      self, std::move(all),
      [rp](std::vector<digest_sum>& xs, size_t failures) mutable {
        if (failures > 0) {
          rp.deliver(to_error(make_failure(errc::unavailable,
                                           std::to_string(failures) +
                                               " task actors did not answer")));
          return;
        }
        digest_sum sum;
        for (const auto& x : xs)
          sum.add(x);
        rp.deliver(sum);
      },
      digest_atom_v);
  return rp;
}

task_registry_actor::behavior_type
task_registry_behavior(task_registry_state::self_pointer self, context_ptr ctx,
                       std::map<uint64_t, task_registry_state::entry> tasks) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.tasks = std::move(tasks);
  survive_children(self);
  ignore_stray_errors(self);
  if (!st.tasks.empty())
    st.next_id = st.tasks.rbegin()->first + 1;
  for (const auto& [id, t] : st.tasks) {
    self->monitor(t.actor);
    self->link_to(t.actor);
    st.ctx->metrics->tasks.add(id, t.board);
  }
  self->set_down_handler([self](const caf::down_msg& down) {
    auto& tasks = self->state.tasks;
    for (auto i = tasks.begin(); i != tasks.end(); ++i)
      if (i->second.actor.address() == down.source) {
        self->state.ctx->metrics->tasks.remove(i->first);
        tasks.erase(i);
        return;
      }
  });
  return {
      [self](create_task& x) { return self->state(x); },
      [self](preview_task& x) { return self->state(x); },
      [self](get_task& x) { return self->state(x); },
      [self](list_tasks& x) { return self->state(x); },
      [self](get_task_details& x) { return self->state.route(x); },
      [self](pause_task& x) { return self->state.route(x); },
      [self](resume_task& x) { return self->state.route(x); },
      [self](cancel_task& x) { return self->state.route(x); },
      [self](spawn_atom tag, task_spec& spec) {
        return self->state(tag, spec);
      },
      [self](candidate_atom tag, const std::string& product,
             const std::string& device) {
        return self->state(tag, product, device);
      },
      [self](digest_atom tag) { return self->state(tag); },
  };
}

} // namespace fota
