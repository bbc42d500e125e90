/// Persist, then act. An actor applies the events it decides at once, so
/// that the next command is decided against them, and hands them to its
/// outbox. Everything that leaves the actor because of them (a reply, a
/// push, a release, credit, a message to another actor) goes through the
/// outbox too, and leaves only once every event applied before it is
/// durable. Events of one actor reach the journal in the order they were
/// applied; everything applied while a flush is on its way travels as one
/// append (group commit within the actor, before the journal's own).
#pragma once

#include "actors/context.hpp"
#include "actors/fwd.hpp"
#include "actors/metrics.hpp"
#include "events/event.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/result.hpp>
#include <caf/typed_response_promise.hpp>

namespace fota {

class outbox {
public:
  // -- member types -----------------------------------------------------------

  using action = std::function<void()>;
  using failure_action = std::function<void(const caf::error&)>;

  // -- constants --------------------------------------------------------------

  /// A batch this large goes to the journal without waiting for the flush.
  static constexpr size_t max_batch_events = 4096;

  /// Outputs that may have left before the vector drops them.
  static constexpr size_t small_capacity = 8;

  /// Capacity for waiting outputs kept once all have left: an actor that
  /// waits on many outputs at a time keeps room for them.
  static constexpr size_t large_capacity = 65536;

  // -- initialization ---------------------------------------------------------

  void init(journal_actor journal, std::shared_ptr<node_metrics> metrics) {
    journal_ = std::move(journal);
    metrics_ = std::move(metrics);
  }

  // -- properties -------------------------------------------------------------

  /// Whether a journal write failed; nothing leaves after that.
  bool failed() const noexcept { return static_cast<bool>(error_); }

  /// Whether the queued events make a batch that goes to the journal at once.
  bool batch_full() const noexcept { return batch_.size() >= max_batch_events; }

  /// Whether every event added so far is durable and no output waits.
  bool idle() const noexcept { return durable_ == added_ && waiting() == 0; }

  // -- adding events and outputs ---------------------------------------------

  /// Queues events the actor has applied for the next append.
  void add(const event_list& events) {
    for (const auto& e : events)
      batch_.push_back(e.SerializeAsString());
    added_ += events.size();
  }

  /// Runs `run` once every event added so far is durable, or at once when it
  /// is. When the write fails, runs `fail` with the journal's error instead.
  void then(action run, failure_action fail = {}) {
    if (error_) {
      if (fail)
        fail(error_);
      return;
    }
    if (durable_ == added_ && waiting() == 0) {
      run();
      return;
    }
    outputs_.push_back(output{added_, std::move(run), std::move(fail)});
  }

  /// Delivers `x` to `rp` once durable, or the journal's error.
  template <class T>
  void reply(caf::typed_response_promise<T> rp, T x) {
    then([rp, x = std::move(x)]() mutable { rp.deliver(std::move(x)); },
         [rp](const caf::error& err) mutable { rp.deliver(err); });
  }

  // -- writing ----------------------------------------------------------------

  /// Sends `flush_atom` to `self` unless one is on its way or nothing waits;
  /// sends a large batch at once.
  template <class Self>
  void schedule_flush(Self* self) {
    if (batch_.size() >= max_batch_events) {
      flush(self);
      return;
    }
    if (flush_scheduled_ || batch_.empty())
      return;
    flush_scheduled_ = true;
    self->send(self, flush_atom_v);
  }

  /// Sends the queued events to the journal as one append.
  template <class Self>
  void flush(Self* self) {
    flush_scheduled_ = false;
    if (batch_.empty() || error_)
      return;
    auto n = batch_.size();
    auto upto = durable_ + in_flight_ + n;
    in_flight_ += n;
    auto metrics = metrics_;
    self->request(journal_, caf::infinite, append_atom_v,
                  event_batch{std::move(batch_)})
        .then(
            [this, n, upto, metrics](sequence_number) {
              node_metrics::add(metrics->events_persisted, n);
              node_metrics::add(metrics->appends);
              in_flight_ -= n;
              durable_ = upto;
              release();
            },
            [this](caf::error& err) {
              error_ = std::move(err);
              auto pending = std::move(outputs_);
              auto first = head_;
              outputs_ = {};
              head_ = 0;
              for (auto i = first; i < pending.size(); ++i)
                if (pending[i].fail)
                  pending[i].fail(error_);
            });
    batch_.clear();
  }

private:
  struct output {
    /// Events added before this output; it leaves once that many are
    /// durable.
    uint64_t after;
    action run;
    failure_action fail;
  };

  /// Outputs waiting for their events.
  size_t waiting() const noexcept { return outputs_.size() - head_; }

  /// Runs the outputs whose events are durable, in order. An output may add
  /// outputs while it runs.
  void release() {
    while (head_ < outputs_.size() && outputs_[head_].after <= durable_) {
      auto o = std::move(outputs_[head_++]);
      o.run();
    }
    if (head_ == outputs_.size()) {
      outputs_.clear();
      head_ = 0;
      if (outputs_.capacity() > large_capacity)
        outputs_.shrink_to_fit();
    } else if (head_ > small_capacity && head_ * 2 > outputs_.size()) {
      // An actor whose outputs never all leave at once (a task in a long
      // rollout) drops the ones that left, so the vector stays bounded.
      outputs_.erase(outputs_.begin(),
                     outputs_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

  journal_actor journal_;
  std::shared_ptr<node_metrics> metrics_;
  std::vector<std::string> batch_;
  /// Waiting outputs are `outputs_[head_..]`. A vector rather than a deque:
  /// libstdc++'s deque allocates over 500 bytes when constructed, and every
  /// device actor has an outbox.
  std::vector<output> outputs_;
  size_t head_ = 0;
  /// Events added, durable and on their way to the journal, since start.
  uint64_t added_ = 0;
  uint64_t durable_ = 0;
  uint64_t in_flight_ = 0;
  bool flush_scheduled_ = false;
  caf::error error_;
};

/// The common path of a command that only changes `state`: a refused
/// decision answers its failure at once; otherwise the events are applied,
/// queued in `out`, and `answer(state)`, taken right after applying, is
/// delivered once they are durable.
template <class T, class Self, class State, class Answer>
caf::result<T> commit_and_answer(Self* self, outbox& out, State& state,
                                 const expected<event_list>& decided,
                                 Answer answer) {
  if (!decided)
    return to_error(decided.error());
  for (const auto& e : *decided)
    if (auto err = apply(state, e))
      return to_error(make_failure(errc::internal, err->message));
  out.add(*decided);
  out.schedule_flush(self);
  auto rp = self->template make_response_promise<T>();
  out.reply(rp, T{answer(std::as_const(state))});
  return rp;
}

} // namespace fota
