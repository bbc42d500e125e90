/// The task registry: allocates task ids, spawns a task actor per task,
/// routes task commands by id, lists tasks, and finds the device-request
/// tasks that could offer a device its upgrade.
#pragma once

#include "actors/context.hpp"
#include "actors/task.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include <caf/error.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

namespace fota {

struct task_registry_state {
  // -- member types -----------------------------------------------------------

  using self_pointer =
      task_registry_actor::stateful_pointer<task_registry_state>;

  /// A task as the registry knows it.
  struct entry {
    task_actor actor;
    std::string product;
    bool device_request = false;
    /// The task's durable summary, read without asking the task.
    std::shared_ptr<summary_board> board;
  };

  /// A task to create once the creations before it are decided.
  struct pending_creation {
    task_spec spec;
    caf::typed_response_promise<task_summary> promise;
  };

  // -- constants --------------------------------------------------------------

  static inline constexpr const char* name = "fota.tasks";

  // -- constructors -----------------------------------------------------------

  explicit task_registry_state(self_pointer ptr) : self(ptr) {
    // nop
  }

  // -- message handlers -------------------------------------------------------

  caf::result<task_summary> operator()(create_task& cmd);

  /// Hands the preview to a previewer of its own, with the id the task
  /// would take if created now; refuses what `create_task` refuses here.
  caf::result<task_preview> operator()(preview_task& cmd);
  caf::result<task_summary> operator()(get_task& cmd);
  caf::result<task_page> operator()(list_tasks& cmd);
  caf::result<task_summary> operator()(spawn_atom, task_spec& spec);
  caf::result<offer_candidates> operator()(candidate_atom,
                                           const std::string& product,
                                           const std::string& device);
  caf::result<digest_sum> operator()(digest_atom);

  /// Hands a command naming a task id to the task.
  template <class Command>
  auto route(Command& cmd) -> caf::result<typename Command::reply> {
    auto i = tasks.find(cmd.task.value());
    if (i == tasks.end())
      return to_error(make_failure(errc::not_found,
                                   "task " + std::to_string(cmd.task.value()) +
                                       " does not exist"));
    return self->delegate(i->second.actor, std::move(cmd));
  }

  // -- member variables -------------------------------------------------------

  self_pointer self;
  context_ptr ctx;
  std::map<uint64_t, entry> tasks;
  /// The id of the next task created. A task takes it only once its
  /// creation is decided: a refused creation leaves it to the next one.
  uint64_t next_id = 1;
  /// Creations wait here while one is being decided, in the order they
  /// came, so that ids follow that order without gaps.
  std::deque<pending_creation> pending;
  bool creating = false;

private:
  /// Queues a creation; answers once it is decided.
  caf::result<task_summary> enqueue(task_spec spec);
  /// Starts the next queued creation unless one is being decided.
  void create_next();
  void creation_decided();
};

/// `tasks` are the recovered tasks.
task_registry_actor::behavior_type
task_registry_behavior(task_registry_state::self_pointer self, context_ptr ctx,
                       std::map<uint64_t, task_registry_state::entry> tasks);

} // namespace fota
