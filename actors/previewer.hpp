/// The previewer, one per PreviewTask: what CreateTask would do with a spec
/// now, without doing it. It validates the spec as a task being created
/// does (the firmware's record of the target, then `decide_create`), asks
/// the fleet for the scope (the same selection, subscribing nothing), walks
/// the devices in scope once with a bounded number of requests in flight,
/// answers, and quits. It writes nothing and claims nothing.
#pragma once

#include "actors/context.hpp"
#include "events/preview.hpp"

#include <memory>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

namespace fota {

/// Answers one `preview_task`.
using previewer_actor =
    caf::typed_actor<caf::replies_to<preview_task>::with<task_preview>>;

struct previewer_state {
  // -- member types -----------------------------------------------------------

  using self_pointer = previewer_actor::stateful_pointer<previewer_state>;

  // -- constants --------------------------------------------------------------

  static inline constexpr const char* name = "fota.previewer";

  // -- constructors -----------------------------------------------------------

  explicit previewer_state(self_pointer ptr) : self(ptr) {
    // nop
  }

  // -- message handlers -------------------------------------------------------

  caf::result<task_preview> operator()(preview_task& cmd);

  // -- member variables -------------------------------------------------------

  self_pointer self;
  context_ptr ctx;
  /// The id the task would take if created now: the busy rule judges its
  /// claims.
  task_id claimant;
  caf::typed_response_promise<task_preview> promise;

  /// Answers with the preview and quits.
  void finish(const preview_tally& tally);

private:
  /// Validates `spec` and resolves its scope; answers with the error, if any.
  void start(task_spec spec);

  /// Walks the devices of `scope`, then answers with the preview.
  void walk(task_spec spec, scope_preview scope);

  /// Answers with `err` and quits.
  void fail(caf::error err);
};

previewer_actor::behavior_type
previewer_behavior(previewer_state::self_pointer self, context_ptr ctx,
                   task_id claimant);

} // namespace fota
