#include "actors/history.hpp"

#include "actors/context.hpp"
#include "events/paging.hpp"

namespace fota {

expected<history_page> read_history(const storage::event_log& log,
                                    history_request req,
                                    const std::atomic<bool>& cancel) {
  history_builder builder{std::move(req)};
  status failed;
  bool canceled = false;
  auto st =
      log.read_range(sequence_number{builder.start()}, log.last_sequence(),
                     [&](sequence_number seq, std::string_view bytes) {
                       if (cancel.load(std::memory_order_relaxed)) {
                         canceled = true;
                         return false;
                       }
                       auto more = builder.add(seq, bytes);
                       if (!more) {
                         failed = std::move(more).error();
                         return false;
                       }
                       return *more;
                     });
  if (st)
    return std::move(*st);
  if (failed)
    return std::move(*failed);
  if (canceled)
    return make_failure(errc::unavailable,
                        "the node is stopping; the history was not read");
  return builder.finish();
}

namespace {

/// The request of a page, or INVALID_ARGUMENT naming a bad page token.
expected<history_request> request_of(history_subject who, uint32_t page_size,
                                     const std::string& token, bool has_at,
                                     int64_t at_ms) {
  auto from = page_position(token);
  if (!from)
    return std::move(from).error();
  history_request req;
  req.subject = std::move(who);
  req.page_size = page_size;
  req.from = *from;
  req.has_at = has_at;
  req.at_ms = at_ms;
  return req;
}

template <class Self>
caf::result<history_page> answer(Self* self, expected<history_request> req) {
  if (!req)
    return to_error(req.error());
  auto page =
      read_history(*self->state.log, std::move(*req), *self->state.cancel);
  if (!page)
    return to_error(page.error());
  return std::move(*page);
}

} // namespace

history_actor::behavior_type
history_behavior(history_actor::stateful_pointer<history_state> self,
                 const storage::event_log* log,
                 std::shared_ptr<std::atomic<bool>> cancel) {
  self->state.log = log;
  self->state.cancel = std::move(cancel);
  return {
      [self](get_device_history& cmd) {
        return answer(
            self,
            request_of(history_subject::of_device(std::move(cmd.product),
                                                  std::move(cmd.device)),
                       cmd.page_size, cmd.page_token, cmd.has_at, cmd.at_ms));
      },
      [self](get_task_history& cmd, int32_t method) {
        return answer(self,
                      request_of(history_subject::of_task(
                                     cmd.task, static_cast<v1::Method>(method)),
                                 cmd.page_size, cmd.page_token, cmd.has_at,
                                 cmd.at_ms));
      },
  };
}

} // namespace fota
