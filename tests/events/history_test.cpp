/// Tests of the pure history builder: which events of a log concern a device
/// (its own, and its executions in tasks of its product only), the lines
/// they read as, and where a page ends.
#include "events/history.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace fota;

/// A log of encoded envelopes, stamped with their sequences.
struct log_builder {
  std::vector<std::string> bytes;
  int64_t time_ms = 1'000;

  event next(const std::string& stream) {
    event e;
    e.set_stream(stream);
    e.set_time_ms(time_ms += 1000);
    e.set_sequence(bytes.size() + 1);
    return e;
  }

  void add(const event& e) { bytes.push_back(e.SerializeAsString()); }

  void task(uint64_t id, const std::string& product, v1::Method method) {
    auto e = next(task_stream(id));
    auto* x = e.mutable_task_created();
    x->set_task_id(id);
    x->mutable_spec()->set_product_key(product);
    x->mutable_spec()->set_target_version("2.0.0");
    x->mutable_spec()->set_method(method);
    add(e);
  }

  void enrol(uint64_t id, std::vector<std::string> keys) {
    auto e = next(task_stream(id));
    auto* x = e.mutable_devices_enrolled();
    x->set_task_id(id);
    x->set_first_sequence(1);
    for (auto& k : keys)
      x->add_device_keys(k);
    add(e);
  }

  void notified(uint64_t id, uint64_t seq) {
    auto e = next(task_stream(id));
    auto* x = e.mutable_execution_notified();
    x->set_task_id(id);
    x->set_sequence(seq);
    x->set_attempt(1);
    add(e);
  }

  history_page read(history_request req) {
    history_builder b{std::move(req)};
    for (auto s = b.start(); s <= bytes.size(); ++s) {
      auto more = b.add(sequence_number{s}, bytes[s - 1]);
      EXPECT_TRUE(more) << more.error().message;
      if (!more || !*more)
        break;
    }
    return b.finish();
  }
};

std::vector<std::string> texts_of(const history_page& p) {
  std::vector<std::string> out;
  for (const auto& e : p.entries)
    out.push_back(e.text);
  return out;
}

TEST(HistoryBuilder, ADeviceSeesOnlyTheTasksOfItsProduct) {
  log_builder log;
  // Task 1 upgrades product "cam" by device request, task 2 product "door"
  // by cloud push; both have a device "d1".
  log.task(1, "cam", v1::METHOD_DEVICE_REQUEST);
  log.task(2, "door", v1::METHOD_CLOUD_PUSH);
  log.enrol(1, {"d0", "d1"});
  log.enrol(2, {"d1"});
  log.notified(2, 1);
  log.notified(1, 2);
  log.notified(1, 1);
  history_request req;
  req.subject = history_subject::of_device("cam", "d1");
  auto page = log.read(req);
  EXPECT_EQ(texts_of(page),
            (std::vector<std::string>{"enrolled in task 1 as execution 1/2",
                                      "offered execution 1/2 (attempt 1)"}));
  req.subject = history_subject::of_device("door", "d1");
  page = log.read(req);
  EXPECT_EQ(texts_of(page),
            (std::vector<std::string>{"enrolled in task 2 as execution 2/1",
                                      "pushed execution 2/1 (attempt 1)"}));
}

TEST(HistoryBuilder, APageEndsAtItsSizeAndNamesTheNextEntry) {
  log_builder log;
  log.task(1, "cam", v1::METHOD_CLOUD_PUSH);
  log.task(2, "cam", v1::METHOD_CLOUD_PUSH);
  log.enrol(1, {"a", "b", "c"});
  log.notified(1, 1);
  log.notified(2, 1); // no such execution in task 2's log: another stream
  log.notified(1, 2);
  history_request req;
  req.subject = history_subject::of_task(task_id{1}, v1::METHOD_CLOUD_PUSH);
  req.page_size = 2;
  auto page = log.read(req);
  ASSERT_EQ(page.entries.size(), 2u);
  EXPECT_EQ(page.entries[0].kind, "TaskCreated");
  EXPECT_EQ(page.entries[1].text, "enrolled 3 devices, executions 1..3");
  EXPECT_EQ(page.next_page_token, "4");
  req.from = 4;
  page = log.read(req);
  EXPECT_EQ(texts_of(page),
            (std::vector<std::string>{"pushed execution 1/1 (attempt 1)",
                                      "pushed execution 1/2 (attempt 1)"}));
  EXPECT_TRUE(page.next_page_token.empty());
  EXPECT_EQ(page.entries[1].sequence.value(), 6u);
}

TEST(HistoryBuilder, AnEventThatDoesNotDecodeIsNamed) {
  history_request req;
  req.subject = history_subject::of_task(task_id{1}, v1::METHOD_CLOUD_PUSH);
  history_builder b{req};
  auto r = b.add(sequence_number{1}, "\xff\xff\xff");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "event 1 does not decode as fota.v1.EventEnvelope");
}

} // namespace
