#include "actors/context.hpp"

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace fota {

caf::error to_error(const failure& x) {
  return caf::make_error(x.code, x.message);
}

failure from_error(const caf::error& x) {
  if (!x)
    return failure{};
  if (x.category() == caf::atom("fota")) {
    failure out{static_cast<errc>(x.code()), {}};
    const auto& ctx = x.context();
    if (ctx.size() == 1 && ctx.match_element<std::string>(0))
      out.message = ctx.get_as<std::string>(0);
    return out;
  }
  if (x.category() == caf::atom("system")) {
    auto code = static_cast<caf::sec>(x.code());
    if (code == caf::sec::request_receiver_down ||
        code == caf::sec::request_timeout)
      return failure{errc::unavailable, "the owning actor is not available"};
  }
  return failure{errc::internal, "unexpected error: " + caf::to_string(x)};
}

} // namespace fota
