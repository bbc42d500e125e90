#include "actors/task_registry.hpp"

#include "actors/task.hpp"
#include "events/task.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>

namespace fota {

namespace {

using self_ptr = caf::stateful_actor<task_registry_state>*;

std::vector<caf::actor> all_tasks(const task_registry_state& st) {
  std::vector<caf::actor> out;
  out.reserve(st.tasks.size());
  for (const auto& [id, t] : st.tasks)
    out.push_back(t);
  return out;
}

caf::result<std::string> create_task(self_ptr self, const v1::TaskSpec& spec) {
  auto& st = self->state;
  auto start = std::make_shared<task_start>();
  start->is_new = true;
  start->id = st.next_id++;
  start->spec = spec;
  auto rp = self->make_response_promise<std::string>();
  start->created = rp;
  auto task = self->spawn<caf::linked>(task_actor, st.ctx, start);
  st.tasks.emplace(start->id, task);
  self->monitor(task);
  return rp;
}

} // namespace

caf::behavior task_registry(self_ptr self, context_ptr ctx,
                            std::map<uint64_t, caf::actor> tasks) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.tasks = std::move(tasks);
  survive_children(self);
  ignore_stray_errors(self);
  if (!st.tasks.empty())
    st.next_id = st.tasks.rbegin()->first + 1;
  for (const auto& [id, t] : st.tasks) {
    self->monitor(t);
    self->link_to(t);
  }
  self->set_down_handler([=](const caf::down_msg& down) {
    auto& tasks = self->state.tasks;
    for (auto i = tasks.begin(); i != tasks.end(); ++i)
      if (i->second.address() == down.source) {
        tasks.erase(i);
        return;
      }
  });
  return {
      [=](command& cmd) -> caf::result<std::string> {
        auto& st = self->state;
        switch (cmd.kind) {
        case v1::ClientFrame::kCreateTask: {
          v1::CreateTask req;
          if (!parse_body(cmd, req))
            break;
          if (req.spec().verification())
            return to_error(make_failure(
                errc::invalid_argument,
                "spec.verification: only VerifyFirmware starts verification "
                "runs"));
          return create_task(self, req.spec());
        }
        case v1::ClientFrame::kListTasks: {
          auto rp = self->make_response_promise<std::string>();
          gather(
              self, all_tasks(st),
              [rp](std::vector<std::string>& replies) mutable {
                v1::Response r;
                auto* list = r.mutable_task_list();
                for (const auto& bytes : replies)
                  if (!bytes.empty())
                    list->add_tasks()->ParseFromString(bytes);
                rp.deliver(ok_response(r));
              },
              get_atom_v);
          return rp;
        }
        case v1::ClientFrame::kGetTask:
        case v1::ClientFrame::kGetTaskDetails:
        case v1::ClientFrame::kPauseTask:
        case v1::ClientFrame::kResumeTask:
        case v1::ClientFrame::kCancelTask: {
          // Each of these has the task id as field 1.
          v1::GetTask ref;
          if (!ref.ParseFromString(cmd.body))
            break;
          auto i = st.tasks.find(ref.task_id());
          if (i == st.tasks.end())
            return to_error(make_failure(
                errc::not_found,
                "task " + std::to_string(ref.task_id()) + " does not exist"));
          return forward(self, i->second, std::move(cmd));
        }
        default:
          return to_error(
              make_failure(errc::internal, "task registry got command " +
                                               std::to_string(cmd.kind)));
        }
        return to_error(make_failure(errc::invalid_argument,
                                     "request body does not parse"));
      },
      [=](spawn_atom,
          const std::string& spec_bytes) -> caf::result<std::string> {
        v1::TaskSpec spec;
        if (!spec.ParseFromString(spec_bytes))
          return to_error(make_failure(errc::internal, "spec does not parse"));
        return create_task(self, spec);
      },
      [=](lookup_atom, const std::string& product, const std::string& version) {
        auto rp = self->make_response_promise<bool>();
        gather(
            self, all_tasks(self->state),
            [rp, product, version](std::vector<std::string>& replies) mutable {
              for (const auto& bytes : replies) {
                v1::TaskSummary s;
                if (bytes.empty() || !s.ParseFromString(bytes))
                  continue;
                if (!is_finished(s.status()) &&
                    s.spec().product_key() == product &&
                    s.spec().target_version() == version) {
                  rp.deliver(true);
                  return;
                }
              }
              rp.deliver(false);
            },
            get_atom_v);
        return rp;
      },
  };
}

} // namespace fota
