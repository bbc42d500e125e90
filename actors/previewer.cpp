#include "actors/previewer.hpp"

#include "actors/gather.hpp"
#include "events/task.hpp"

#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>

namespace fota {

caf::result<task_preview> previewer_state::operator()(preview_task& cmd) {
  promise = self->make_response_promise<task_preview>();
  start(std::move(cmd.spec));
  return promise;
}

void previewer_state::start(task_spec spec) {
  // The checks of a task being created, in its order: the target exists,
  // the spec is valid with it, the scope resolves.
  auto product = spec.product;
  auto target = spec.target_version;
  self->request(ctx->firmware, caf::infinite, lookup_atom_v, product, target)
      .then(
          [this, spec = std::move(spec)](firmware_record& fw) mutable {
            auto decided = decide_create(claimant, spec, &fw, ctx->now());
            if (!decided) {
              fail(to_error(decided.error()));
              return;
            }
            self->request(ctx->fleet, caf::infinite, preview_atom_v, spec)
                .then(
                    [this, spec](scope_preview& scope) mutable {
                      walk(std::move(spec), std::move(scope));
                    },
                    [this](caf::error& err) { fail(std::move(err)); });
          },
          [this](caf::error& err) { fail(std::move(err)); });
}

void previewer_state::walk(task_spec spec, scope_preview scope) {
  /// The devices on their way, counted as they answer.
  struct walker : std::enable_shared_from_this<walker> {
    previewer_state* st;
    device_handles devices;
    preview_tally tally;
    size_t next = 0;
    size_t pending = 0;

    walker(previewer_state* s, device_handles xs, preview_tally t)
      : st(s), devices(std::move(xs)), tally(std::move(t)) {
      // nop
    }

    void ask_next() {
      auto i = next++;
      ++pending;
      auto me = shared_from_this();
      st->self->request(devices[i].actor, caf::infinite, get_device{})
          .then(
              [me](device_state& d) {
                me->tally.add(d);
                me->answered();
              },
              // A device actor that is gone is not counted.
              [me](caf::error&) { me->answered(); });
    }

    void answered() {
      --pending;
      if (next < devices.size())
        ask_next();
      else if (pending == 0)
        st->finish(tally);
    }
  };
  preview_tally tally{std::move(spec), claimant};
  tally.add_on_target(scope.on_target);
  for (const auto& d : scope.idle)
    tally.add(d);
  if (scope.scope.empty()) {
    finish(tally);
    return;
  }
  auto w =
      std::make_shared<walker>(this, std::move(scope.scope), std::move(tally));
  for (size_t k = 0; k < gather_window && w->next < w->devices.size(); ++k)
    w->ask_next();
}

void previewer_state::finish(const preview_tally& tally) {
  promise.deliver(tally.finish(ctx->limits.max_pushes_per_minute, ctx->now()));
  self->quit();
}

void previewer_state::fail(caf::error err) {
  promise.deliver(std::move(err));
  self->quit();
}

previewer_actor::behavior_type
previewer_behavior(previewer_state::self_pointer self, context_ptr ctx,
                   task_id claimant) {
  self->state.ctx = std::move(ctx);
  self->state.claimant = claimant;
  return {
      [self](preview_task& x) { return self->state(x); },
  };
}

} // namespace fota
