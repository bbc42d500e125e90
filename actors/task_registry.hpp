/// The task registry: allocates task ids, spawns a task actor per task, and
/// routes task commands by id.
#pragma once

#include "actors/context.hpp"

#include <cstdint>
#include <map>

#include <caf/stateful_actor.hpp>

namespace fota {

struct task_registry_state {
  context_ptr ctx;
  std::map<uint64_t, caf::actor> tasks;
  uint64_t next_id = 1;

  static inline constexpr const char* name = "fota.tasks";
};

/// Handles CreateTask, ListTasks and the commands that name a task id,
/// `(spawn_atom, spec bytes) -> response bytes` to start a verification run,
/// and `(lookup_atom, product, version) -> bool`: whether an unfinished task
/// targets that firmware.
caf::behavior task_registry(caf::stateful_actor<task_registry_state>* self,
                            context_ptr ctx,
                            std::map<uint64_t, caf::actor> tasks);

} // namespace fota
