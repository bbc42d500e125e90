/// Embeds a fota node in a program: starts it on a data directory,
/// registers firmware and a batch upgrade task through the in-process API,
/// runs a few devices behind an in-process gateway, and reads the task's
/// progress until it completes.
///
/// Usage: fota-embed DATA_DIR [DEVICES]   (a fresh DATA_DIR; 5 devices)
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fota/actors/node.hpp>
#include <fota/v1/api.pb.h>
#include <iostream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

namespace {

using namespace std::chrono_literals;
namespace v1 = fota::v1;

constexpr const char* product = "lamp";
constexpr const char* source_version = "1.0.0";
constexpr const char* target_version = "2.0.0";

/// Prints one line in one write: the gateway prints from another thread.
void say(const std::string& line) {
  std::cout << line + "\n" << std::flush;
}

// -- in-process gateway -------------------------------------------------------

/// Sends `frame` from `self`, an in-process gateway, through the node's
/// router and calls `then` once the node answers OK.
template <class Then>
void send(caf::event_based_actor* self, const fota::router_actor& router,
          const v1::ClientFrame& frame, Then then) {
  self->request(router, caf::infinite, fota::request_atom_v,
                static_cast<int32_t>(v1::ROLE_GATEWAY),
                frame.SerializeAsString(), caf::actor_cast<caf::actor>(self))
      .then([then](const std::string& bytes) mutable {
        v1::Response r;
        if (!r.ParseFromString(bytes) || r.status() != v1::STATUS_CODE_OK) {
          std::cerr << "gateway: " << v1::StatusCode_Name(r.status()) << ": "
                    << r.message() << "\n";
          return;
        }
        then();
      });
}

struct gateway_state {
  static inline constexpr const char* name = "embed.gateway";
  /// The pushes each device has, by execution id and attempt. A push sent
  /// again (not acknowledged in time, or the device came online again) is
  /// acknowledged again, not run again.
  std::set<std::pair<uint64_t, uint32_t>> seen;
};

/// The devices behind an in-process gateway. The node hands their pushes
/// to this actor, as it hands them to a network session; each device
/// acknowledges its push, reports progress, then reports the target version
/// it now runs.
caf::behavior gateway(caf::stateful_actor<gateway_state>* self,
                      fota::router_actor router) {
  return {
      [self, router](fota::push_atom, const fota::push_frame& push,
                     const caf::actor&) {
        v1::ServerFrame frame;
        if (!frame.ParseFromString(push.frame) || !frame.push().has_upgrade())
          return; // A cancel push: these devices finish quickly anyway.
        const auto up = frame.push().upgrade();
        v1::ClientFrame ack;
        auto* a = ack.mutable_ack_push();
        a->set_product_key(up.product_key());
        a->set_device_key(up.device_key());
        a->set_execution_id(up.execution_id());
        a->set_attempt(up.attempt());
        if (!self->state.seen.emplace(up.execution_id(), up.attempt()).second) {
          send(self, router, ack, [] {});
          return;
        }
        say(up.device_key() + ": upgrade to " + up.firmware().version() +
            " pushed (execution " + std::to_string(up.execution_id()) + ")");
        send(self, router, ack, [self, router, up] {
          v1::ClientFrame progress;
          auto* p = progress.mutable_report_progress();
          p->set_product_key(up.product_key());
          p->set_device_key(up.device_key());
          p->set_execution_id(up.execution_id());
          p->set_step(50);
          p->set_text("flashing");
          send(self, router, progress, [self, router, up] {
            v1::ClientFrame done;
            auto* d = done.mutable_report_version();
            d->set_product_key(up.product_key());
            d->set_device_key(up.device_key());
            d->set_version(up.firmware().version());
            send(self, router, done, [] {});
          });
        });
      },
  };
}

// -- operator requests --------------------------------------------------------

/// Sends `frame` as an operator and returns the response; throws when the
/// node refuses.
v1::Response call(fota::node& node, const v1::ClientFrame& frame) {
  auto r = node.call(frame);
  if (r.status() != v1::STATUS_CODE_OK)
    throw std::runtime_error("refused: " + v1::StatusCode_Name(r.status()) +
                             ": " + r.message());
  return r;
}

void add_firmware(fota::node& node) {
  v1::ClientFrame create;
  auto* fw = create.mutable_create_firmware()->mutable_firmware();
  fw->set_product_key(product);
  fw->set_version(target_version);
  fw->set_url("https://firmware.example/lamp-2.0.0.bin");
  fw->set_size(1 << 20);
  fw->set_sha256(
      "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
  call(node, create);
  // A batch task needs VERIFIED firmware: attest it without a run.
  v1::ClientFrame skip;
  auto* s = skip.mutable_skip_verification();
  s->set_product_key(product);
  s->set_version(target_version);
  s->set_reason("tested on the bench before release");
  call(node, skip);
}

/// Registers `devices` devices on the source version and brings them online
/// on the in-process gateway `gw`.
void register_devices(fota::node& node, const caf::actor& gw, int devices) {
  v1::ClientFrame frame;
  auto* batch = frame.mutable_register_devices();
  batch->set_online(true);
  for (int i = 1; i <= devices; ++i) {
    auto* d = batch->add_devices();
    d->set_product_key(product);
    d->set_device_key("lamp-" + std::to_string(i));
    d->set_version(source_version);
  }
  auto r = node.call(frame, v1::ROLE_GATEWAY, gw);
  if (r.status() != v1::STATUS_CODE_OK || r.registered().failed() != 0)
    throw std::runtime_error("registration failed: " + r.DebugString());
}

uint64_t create_task(fota::node& node) {
  v1::ClientFrame create;
  auto* spec = create.mutable_create_task()->mutable_spec();
  spec->set_name("lamp 2.0.0");
  spec->set_product_key(product);
  spec->set_target_version(target_version);
  spec->add_source_versions(source_version);
  spec->set_strategy(v1::STRATEGY_SNAPSHOT);
  spec->mutable_scope()->set_kind(v1::SCOPE_KIND_ALL);
  spec->set_method(v1::METHOD_CLOUD_PUSH);
  return call(node, create).task().task_id();
}

/// Reads the task until it completes (or a minute has passed) and returns
/// its last summary.
v1::TaskSummary follow(fota::node& node, uint64_t id) {
  v1::ClientFrame get;
  get.mutable_get_task()->set_task_id(id);
  uint64_t shown = UINT64_MAX;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  for (;;) {
    auto task = call(node, get).task();
    const auto& c = task.counters();
    if (c.succeeded() != shown) {
      shown = c.succeeded();
      say("task " + std::to_string(id) + " " +
          v1::TaskStatus_Name(task.status()) + ": " +
          std::to_string(c.succeeded()) + " succeeded, " +
          std::to_string(c.notified() + c.in_progress()) + " upgrading, " +
          std::to_string(c.queued()) + " queued");
    }
    if (task.status() != v1::TASK_STATUS_RUNNING)
      return task;
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("task " + std::to_string(id) +
                               " did not complete within a minute");
    std::this_thread::sleep_for(20ms);
  }
}

/// Runs the rollout on a started node with devices behind the in-process
/// gateway `gw`; returns the exit code.
int run(fota::node& node, const caf::actor& gw, int devices) {
  add_firmware(node);
  register_devices(node, gw, devices);
  auto id = create_task(node);
  say("task " + std::to_string(id) + " created over " +
      std::to_string(devices) + " devices");
  auto task = follow(node, id);
  const auto& c = task.counters();
  say("task " + std::to_string(id) + " " + v1::TaskStatus_Name(task.status()) +
      ": " + std::to_string(c.succeeded()) + " succeeded, " +
      std::to_string(c.failed() + c.timed_out()) + " failed");
  return task.status() == v1::TASK_STATUS_COMPLETED &&
                 c.succeeded() == static_cast<uint64_t>(devices)
             ? EXIT_SUCCESS
             : EXIT_FAILURE;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: fota-embed DATA_DIR [DEVICES]\n";
    return EXIT_FAILURE;
  }
  const int devices = argc > 2 ? std::atoi(argv[2]) : 5;
  caf::actor_system_config cfg;
  fota::add_message_types(cfg);
  caf::actor_system sys{cfg};

  fota::node_config nc;
  nc.data_dir = argv[1];
  auto started = fota::node::start(sys, nc);
  if (!started) {
    std::cerr << "cannot start: " << started.error().message << "\n";
    return EXIT_FAILURE;
  }
  auto& node = **started;
  auto gw = sys.spawn(gateway, node.router());
  int rc = EXIT_FAILURE;
  try {
    rc = run(node, gw, devices);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
  }
  caf::anon_send_exit(gw, caf::exit_reason::user_shutdown);
  // Stops the node's actors; the journal writes what it holds first.
  node.stop();
  return rc;
}
