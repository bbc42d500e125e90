#include "actors/fleet.hpp"

#include <algorithm>

#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>

#include "actors/device.hpp"
#include "events/replay.hpp"

namespace fota {

namespace {

using self_ptr = caf::stateful_actor<fleet_state>*;

constexpr uint32_t default_page_size = 100;
constexpr uint32_t max_page_size = 1000;

caf::error unknown_device(const std::string& product, const std::string& key) {
  return to_error(make_failure(errc::not_found, "device " + product + "/"
                                                  + key + " is not registered"));
}

caf::result<std::string> register_device(self_ptr self, const command& cmd) {
  auto& st = self->state;
  v1::RegisterDevice req;
  if (!parse_body(cmd, req))
    return to_error(make_failure(errc::invalid_argument,
                                 "RegisterDevice does not parse"));
  auto decided = decide(nullptr, req, st.ctx->now());
  if (!decided)
    return to_error(decided.error());
  auto device = make_device(decided->front());
  auto actor = self->spawn<caf::linked>(device_actor, st.ctx, device);
  st.add(actor, device);
  node_metrics::add(st.ctx->metrics->registrations);
  auto rp = self->make_response_promise();
  persist(self, *st.ctx, *decided, rp,
          [device](caf::response_promise& rp) {
            v1::Response r;
            *r.mutable_device() = device.to_proto();
            rp.deliver(ok_response(r));
          });
  return rp;
}

caf::result<std::string> list_devices(self_ptr self, const command& cmd) {
  auto& st = self->state;
  v1::ListDevices req;
  if (!parse_body(cmd, req))
    return to_error(make_failure(errc::invalid_argument,
                                 "ListDevices does not parse"));
  if (req.product_key().empty())
    return to_error(make_failure(errc::invalid_argument,
                                 "product_key: must not be empty"));
  auto size = req.page_size() == 0 ? default_page_size : req.page_size();
  if (size > max_page_size)
    return to_error(make_failure(errc::invalid_argument,
                                 "page_size: must be at most 1000"));
  uint64_t from = 0;
  if (!req.page_token().empty()) {
    try {
      from = std::stoull(req.page_token());
    } catch (const std::exception&) {
      return to_error(make_failure(errc::invalid_argument,
                                   "page_token: \"" + req.page_token()
                                     + "\" is not a page token"));
    }
  }
  std::vector<caf::actor> page;
  uint64_t next = 0;
  for (uint64_t i = from; i < st.devices.size(); ++i) {
    const auto& d = st.devices[i];
    if (d.product != req.product_key()
        || (!req.version().empty() && d.version != req.version()))
      continue;
    if (page.size() == size) {
      next = i;
      break;
    }
    page.push_back(d.actor);
  }
  auto rp = self->make_response_promise<std::string>();
  struct collect {
    v1::Response response;
    std::vector<std::string> parts;
    size_t pending;
  };
  auto acc = std::make_shared<collect>();
  acc->parts.resize(page.size());
  acc->pending = page.size();
  if (next != 0)
    acc->response.mutable_device_list()->set_next_page_token(
      std::to_string(next));
  auto finish = [acc, rp]() mutable {
    auto* list = acc->response.mutable_device_list();
    for (auto& p : acc->parts)
      list->add_devices()->ParseFromString(p);
    rp.deliver(ok_response(acc->response));
  };
  if (page.empty()) {
    finish();
    return rp;
  }
  for (size_t i = 0; i < page.size(); ++i)
    self->request(page[i], caf::infinite, get_atom_v)
      .then(
        [acc, i, finish](std::string& bytes) mutable {
          acc->parts[i] = std::move(bytes);
          if (--acc->pending == 0)
            finish();
        },
        [acc, finish](caf::error&) mutable {
          if (--acc->pending == 0)
            finish();
        });
  return rp;
}

} // namespace

void fleet_state::add(caf::actor actor, const device_state& d) {
  auto ordinal = static_cast<uint32_t>(devices.size());
  devices.push_back(entry{d.product, d.key, d.version, std::move(actor)});
  directory.emplace(device_ref(d.product, d.key), ordinal);
  by_version[{d.product, d.version}].insert(ordinal);
}

const fleet_state::entry* fleet_state::find(const std::string& product,
                                            const std::string& key) const {
  auto i = directory.find(device_ref(product, key));
  return i == directory.end() ? nullptr : &devices[i->second];
}

caf::behavior fleet_actor(
  self_ptr self, context_ptr ctx,
  std::vector<std::pair<device_state, caf::actor>> devices) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.devices.reserve(devices.size());
  for (auto& [d, actor] : devices) {
    self->link_to(actor);
    st.add(std::move(actor), d);
  }
  return {
    [=](command& cmd) -> caf::result<std::string> {
      auto& st = self->state;
      if (cmd.kind == v1::ClientFrame::kListDevices)
        return list_devices(self, cmd);
      v1::DeviceRef ref;
      if (!ref.ParseFromString(cmd.body))
        return to_error(make_failure(errc::invalid_argument,
                                     "request body does not parse"));
      if (auto err = validate_device_ref(ref.product_key(), ref.device_key()))
        return to_error(*err);
      const auto* e = st.find(ref.product_key(), ref.device_key());
      if (e != nullptr)
        return forward(self, e->actor, std::move(cmd));
      if (cmd.kind == v1::ClientFrame::kRegisterDevice)
        return register_device(self, cmd);
      return unknown_device(ref.product_key(), ref.device_key());
    },
    [=](scope_atom, const std::string& product,
        const std::vector<std::string>& versions) {
      auto& st = self->state;
      std::vector<uint32_t> ordinals;
      for (const auto& v : versions) {
        auto i = st.by_version.find({product, v});
        if (i != st.by_version.end())
          ordinals.insert(ordinals.end(), i->second.begin(), i->second.end());
      }
      std::sort(ordinals.begin(), ordinals.end());
      device_handles out;
      out.reserve(ordinals.size());
      for (auto o : ordinals)
        out.push_back(device_handle{st.devices[o].key, st.devices[o].actor});
      return out;
    },
    [=](version_atom, const std::string& product, const std::string& key,
        const std::string& old_version, const std::string& new_version) {
      auto& st = self->state;
      auto i = st.directory.find(device_ref(product, key));
      if (i == st.directory.end())
        return;
      auto& e = st.devices[i->second];
      auto j = st.by_version.find({product, old_version});
      if (j != st.by_version.end()) {
        j->second.erase(i->second);
        if (j->second.empty())
          st.by_version.erase(j);
      }
      st.by_version[{product, new_version}].insert(i->second);
      e.version = new_version;
    },
    [=](lookup_atom, const std::string& product,
        const std::string& key) -> caf::result<caf::actor> {
      if (const auto* e = self->state.find(product, key))
        return e->actor;
      return unknown_device(product, key);
    },
  };
}

} // namespace fota
