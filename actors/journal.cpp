/// Group commit: appends collect in `journal_state::pending`; the first one
/// of a group sends `flush_atom` to the journal itself. That message lands
/// behind everything already in the mailbox, so all waiting appends join the
/// group before it is written.
#include "actors/journal.hpp"

#include <chrono>
#include <utility>

#include <caf/error.hpp>
#include <caf/system_messages.hpp>
#include <spdlog/spdlog.h>

namespace fota {

caf::result<sequence_number> journal_state::operator()(append_atom,
                                                       event_batch& batch) {
  if (batch.envelopes.empty())
    return log->last_sequence();
  // One bad request must not fail the others of its group.
  size_t bytes = 0;
  for (auto& envelope : batch.envelopes) {
    if (auto err = storage::event_log::check_envelope(envelope))
      return caf::make_error(err->code, std::move(err->message));
    bytes += envelope.size();
  }
  auto promise = self->make_response_promise<sequence_number>();
  pending.push_back(pending_append{promise, std::move(batch.envelopes), bytes});
  if (!flush_scheduled) {
    flush_scheduled = true;
    self->send(self, flush_atom_v);
  }
  return promise;
}

void journal_state::operator()(flush_atom) {
  flush_scheduled = false;
  if (write_pending()) {
    flush_scheduled = true;
    self->delayed_send(self, space_retry, flush_atom_v);
  }
}

status journal_state::write_pending() {
  std::vector<std::string> envelopes;
  auto first = pending.begin();
  while (first != pending.end()) {
    // Take whole requests up to the limits, at least one.
    envelopes.clear();
    size_t bytes = 0;
    auto last = first;
    do {
      for (auto& envelope : last->envelopes)
        envelopes.push_back(std::move(envelope));
      bytes += last->bytes;
      ++last;
    } while (last != pending.end() &&
             envelopes.size() + last->envelopes.size() <= max_write_events &&
             bytes + last->bytes <= max_write_bytes);
    auto started = std::chrono::steady_clock::now();
    auto res = log->append(envelopes);
    if (res && metrics) {
      metrics->commit_latency.observe(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(
              std::chrono::steady_clock::now() - started)
              .count()));
      metrics->commit_events.observe(envelopes.size());
    }
    if (res && refused) {
      refused = false;
      spdlog::info("journal: storage takes writes again");
    }
    if (res) {
      auto seq = res->value() - envelopes.size();
      for (auto i = first; i != last; ++i) {
        seq += i->envelopes.size();
        i->promise.deliver(sequence_number{seq});
      }
    } else if (res.error().code == errc::resource_exhausted) {
      if (!refused) {
        refused = true;
        spdlog::warn("journal: holding {} events until storage takes writes "
                     "again: {}",
                     envelopes.size(), res.error().message);
      }
      // Nothing was written: put the envelopes back and hold the rest.
      auto from = envelopes.begin();
      for (auto i = first; i != last; ++i)
        for (auto& envelope : i->envelopes)
          envelope = std::move(*from++);
      pending.erase(pending.begin(), first);
      return std::move(res).error();
    } else {
      spdlog::error("journal: writing {} events failed, their commands are "
                    "answered with the error: {}: {}",
                    envelopes.size(), to_string(res.error().code),
                    res.error().message);
      auto err = caf::make_error(res.error().code, res.error().message);
      for (auto i = first; i != last; ++i)
        i->promise.deliver(err);
    }
    first = last;
  }
  pending.clear();
  return std::nullopt;
}

journal_impl_actor::behavior_type
journal(journal_state::self_pointer self, storage::event_log* log,
        std::shared_ptr<node_metrics> metrics) {
  self->state.log = log;
  self->state.metrics = std::move(metrics);
  // Acknowledge the current group before quitting, so that no requester of
  // an accepted append is left without an answer.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    if (auto refusal = st.write_pending()) {
      spdlog::error("journal: {} appends not written before the node "
                    "stopped: {}",
                    st.pending.size(), refusal->message);
      auto err = caf::make_error(refusal->code,
                                 "not written before the node stopped: " +
                                     refusal->message);
      for (auto& x : st.pending)
        x.promise.deliver(err);
      st.pending.clear();
    }
    self->quit(std::move(msg.reason));
  });
  return {
      [self](append_atom tag, event_batch& batch)
          -> caf::result<sequence_number> { return self->state(tag, batch); },
      [self](flush_atom tag) { self->state(tag); },
  };
}

} // namespace fota
