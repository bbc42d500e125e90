/// Writes seed inputs for the fuzzers: event logs that replay (firmware,
/// devices, trees, every kind of task event) and frames of every request,
/// so that mutations start from deep inside the rules.
/// Usage: fota-fuzz-seeds REPLAY_DIR FRAME_DIR
#include "api/frame_codec.hpp"
#include "events/codec.hpp"
#include "events/device.hpp"
#include "events/firmware.hpp"
#include "events/replay.hpp"
#include "events/task.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

using namespace fota;

void write(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out{path, std::ios::binary};
  out << bytes;
}

/// A log built the way a node builds it: decide, stamp, apply.
struct log_builder {
  world w;
  std::string bytes;
  int64_t tick = 1'767'225'600'000;

  timestamp now() { return from_millis(++tick); }

  void add(const event_list& xs) {
    for (auto e : xs) {
      e.set_sequence(w.last_sequence.value() + 1);
      if (apply(w, e))
        continue;
      append_frame(bytes, e);
    }
  }

  void add(expected<event_list> xs) {
    if (xs)
      add(*xs);
  }
};

std::string scenario(int variant) {
  log_builder b;
  b.add(decide(b.w.firmware,
               create_firmware{"p", "2.0", "https://f/2.0", 10,
                               std::string(64, 'a'), "", ""},
               firmware_policy{}, b.now()));
  b.add(decide(b.w.firmware, skip_verification{"p", "2.0", "lab"}, b.now()));
  for (int i = 0; i < 6; ++i) {
    auto key = "d" + std::to_string(i);
    b.add(decide(nullptr,
                 register_device{"p",
                                 key,
                                 i % 2 ? "1.0" : "1.1",
                                 {{"ring", i % 3 ? "main" : "canary"}},
                                 {}},
                 b.now()));
  }
  b.add(
      decide(b.w.trees,
             create_asset_tree{asset_tree{
                 "t", "p", "site", {{"r", "", "", ""}, {"n", "r", "", "d1"}}}},
             b.now()));
  task_spec spec;
  spec.name = "seed";
  spec.product = "p";
  spec.target_version = "2.0";
  spec.source_versions = {"1.0", "1.1"};
  spec.strategy = variant % 2 ? v1::STRATEGY_INCREMENT : v1::STRATEGY_SNAPSHOT;
  spec.scope.kind = v1::SCOPE_KIND_ALL;
  spec.method =
      variant == 2 ? v1::METHOD_DEVICE_REQUEST : v1::METHOD_CLOUD_PUSH;
  spec.retry = retry_spec{1, 5};
  b.add(
      decide_create(task_id{1}, spec, b.w.firmware.find("p", "2.0"), b.now()));
  auto& t = b.w.tasks.at(1);
  b.add(decide_enroll(t, {"d0", "d1", "d2", "d3", "d4"}, {{"d5", "busy"}},
                      b.now()));
  b.add(decide_notified(t, execution_seq{1}, b.now()));
  b.add(decide_progress(t, execution_seq{1}, 40, "x", b.now()));
  b.add(decide_version(t, execution_seq{1}, "2.0", b.now()));
  b.add(decide_notified(t, execution_seq{2}, b.now()));
  b.add(decide_failure(t, execution_seq{2}, "E", "boom", b.now()));
  b.add(decide_retry(t, execution_seq{2}, from_millis(b.tick + 10'000)));
  b.add(decide_notified(t, execution_seq{3}, b.now()));
  if (variant == 1)
    b.add(decide_pause(t, "look", b.now()));
  else
    b.add(decide_cancel(t, "stop", b.now()));
  return b.bytes;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s REPLAY_DIR FRAME_DIR\n", argv[0]);
    return 2;
  }
  std::filesystem::path replay_dir{argv[1]};
  std::filesystem::path frame_dir{argv[2]};
  std::filesystem::create_directories(replay_dir);
  std::filesystem::create_directories(frame_dir);
  for (int v = 0; v < 3; ++v)
    write(replay_dir / ("log-" + std::to_string(v)), scenario(v));
  // One frame of every request, with a few fields set.
  const auto* oneof = v1::ClientFrame::descriptor()->FindOneofByName("body");
  for (int i = 0; i < oneof->field_count(); ++i) {
    v1::ClientFrame f;
    f.set_request_id(static_cast<uint64_t>(i + 1));
    auto* body = f.GetReflection()->MutableMessage(&f, oneof->field(i));
    const auto* d = body->GetDescriptor();
    for (int k = 0; k < d->field_count(); ++k) {
      const auto* field = d->field(k);
      if (field->type() == google::protobuf::FieldDescriptor::TYPE_STRING &&
          !field->is_repeated())
        body->GetReflection()->SetString(body, field, "x" + field->name());
      if (field->type() == google::protobuf::FieldDescriptor::TYPE_UINT64 &&
          !field->is_repeated())
        body->GetReflection()->SetUInt64(body, field, (uint64_t{1} << 32) | 1);
    }
    std::string bytes;
    append_frame(bytes, f);
    write(frame_dir / (oneof->field(i)->name()),
          std::string(1, '\x07') + bytes);
  }
  return 0;
}
