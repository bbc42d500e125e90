/// Asking many actors at once with a bounded number of requests in flight.
/// CAF 0.17 keeps an actor's pending replies in a flat map, so each request
/// costs time proportional to those outstanding: 100k requests at once take
/// quadratic time. A window keeps that cost constant.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include <caf/error.hpp>

namespace fota {

/// Requests outstanding at most, per gather.
inline constexpr size_t gather_window = 256;

/// Sends `(xs...)` to every actor of `to` as requests, at most
/// `gather_window` at a time, and calls `done(replies, failures)` once every
/// request is answered: `replies[i]` holds the answer of `to[i]`, a
/// default `T` when its request failed, and `failures` counts those.
template <class T, class Self, class Handle, class Done, class... Ts>
void gather(Self* self, std::vector<Handle> to, Done done, Ts... xs) {
  struct gatherer : std::enable_shared_from_this<gatherer> {
    Self* self;
    std::vector<Handle> to;
    std::vector<T> replies;
    size_t next = 0;
    size_t pending = 0;
    size_t failures = 0;
    Done done;
    std::tuple<Ts...> args;

    gatherer(Self* s, std::vector<Handle> t, Done d, Ts... a)
      : self(s), to(std::move(t)), replies(to.size()), done(std::move(d)),
        args(std::move(a)...) {
      // nop
    }

    void send_next() {
      auto i = next++;
      ++pending;
      auto me = this->shared_from_this();
      std::apply(
          [&](auto&... a) { return self->request(to[i], caf::infinite, a...); },
          args)
          .then(
              [me, i](T& x) {
                me->replies[i] = std::move(x);
                me->answered();
              },
              [me](caf::error&) {
                ++me->failures;
                me->answered();
              });
    }

    void answered() {
      --pending;
      if (next < to.size())
        send_next();
      else if (pending == 0)
        done(replies, failures);
    }
  };
  if (to.empty()) {
    std::vector<T> none;
    done(none, size_t{0});
    return;
  }
  auto g = std::make_shared<gatherer>(self, std::move(to), std::move(done),
                                      std::move(xs)...);
  for (size_t k = 0; k < gather_window && g->next < g->to.size(); ++k)
    g->send_next();
}

} // namespace fota
