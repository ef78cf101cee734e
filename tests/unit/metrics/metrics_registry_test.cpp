// Per-thread counters summed at scrape: exact sums across threads, histogram buckets, _sum and
// _count, the text a scrape serves, and no allocation or lock on the hot path.
#include "core/metrics/metrics_registry.hpp"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/metrics/test_metrics.hpp"
#include "tests/unit/smtp/alloc_counter.hpp"

namespace ringmta::metrics {
namespace {

using test_lists::TestMetrics;
using M = TestMetrics;
using namespace std::chrono_literals;

const prometheus::MetricFamily& family(const std::vector<prometheus::MetricFamily>& all,
                                       const std::string& name) {
  for (const auto& f : all) {
    if (f.name == name) return f;
  }
  ADD_FAILURE() << "no family " << name;
  static const prometheus::MetricFamily none;
  return none;
}

bool contains_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n");
}

// The number on the line that starts with `series` and a space, NaN if there is none.
double sample(const std::string& text, const std::string& series) {
  const std::size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return std::nan("");
  return std::strtod(text.c_str() + at + 1 + series.size() + 1, nullptr);
}

// --- The generated list

TEST(MetricList, LayoutIsComputedAtCompileTime) {
  static_assert(M::kPrefix == "ringmta_test_");
  static_assert(M::kDefs.size() == 8);
  static_assert(M::events_total.slot == 0);
  static_assert(M::replies_total.first.slot == 1 && M::replies_total.stride == 1);
  static_assert(M::replies_total[M::replies_total_class::permfail].slot == 3);
  static_assert(M::open_things.slot == 4);
  static_assert(M::queue_messages[M::queue_messages_queue::deferred].slot == 6);
  static_assert(M::spool_free_bytes.index == 4);
  // 19 bounds + Inf + sum per series.
  static_assert(M::wait_seconds.slot == 7);
  static_assert(M::step_seconds.first.slot == 7 + 21 && M::step_seconds.stride == 21);
  static_assert(M::message_size_bytes.slot == 7 + 21 * 3);
  static_assert(M::kSlotCount == 7 + 21 * 3 + 12);
  static_assert(kLatencyBuckets.bounds.size() == 19);
  static_assert(kLatencyBuckets.bounds.front() == 10'000 &&
                kLatencyBuckets.bounds.back() == 10'000'000'000);

  const MetricDef& replies = M::kDefs[M::Index::replies_total];
  EXPECT_EQ(replies.id, "replies_total");
  EXPECT_EQ(replies.kind, MetricKind::kCounter);
  EXPECT_EQ(replies.label, "class");
  ASSERT_EQ(replies.label_values.size(), 3u);
  EXPECT_EQ(replies.label_values[0], "ok");
  EXPECT_EQ(replies.label_values[2], "permfail");
  EXPECT_EQ(M::kDefs[M::Index::step_seconds].buckets, &kLatencyBuckets);
  EXPECT_EQ(M::kSourceFile, "tests/unit/metrics/test_metrics.def");
}

TEST(MetricList, SplitsLabelValuesFromStringizedArguments) {
  constexpr auto v = split_label_values<count_label_values("a, bb,ccc")>("a, bb,ccc");
  static_assert(v.size() == 3 && v[0] == "a" && v[1] == "bb" && v[2] == "ccc");
  static_assert(is_snake_case("end_of_data") && !is_snake_case("Bad") && !is_snake_case("x_"));
}

// --- Counters and gauges

TEST(MetricsRegistry, CountersFromTwoThreadsSumExactly) {
  auto registry = MetricsRegistry::create<TestMetrics>();
  constexpr std::uint64_t kPerThread = 200'000;
  auto work = [&registry](M::replies_total_class cls) {
    ThreadMetrics t = registry->attach_thread();
    for (std::uint64_t i = 0; i < kPerThread; ++i) {
      t.inc(M::events_total);
      t.inc(M::replies_total[cls], 2);
    }
  };
  std::thread a(work, M::replies_total_class::ok);
  std::thread b(work, M::replies_total_class::ok);
  std::thread c(work, M::replies_total_class::tempfail);
  a.join();
  b.join();
  c.join();

  EXPECT_EQ(registry->value(M::events_total), 3 * kPerThread);
  EXPECT_EQ(registry->value(M::replies_total[M::replies_total_class::ok]), 4 * kPerThread);
  EXPECT_EQ(registry->value(M::replies_total[M::replies_total_class::tempfail]), 2 * kPerThread);
  EXPECT_EQ(registry->value(M::replies_total[M::replies_total_class::permfail]), 0u);

  const auto families = registry->Collect();
  const auto& events = family(families, "ringmta_test_events_total");
  EXPECT_EQ(events.type, prometheus::MetricType::Counter);
  EXPECT_EQ(events.help, "Events counted by the test.");
  ASSERT_EQ(events.metric.size(), 1u);
  EXPECT_EQ(events.metric[0].counter.value, 3.0 * kPerThread);
  const auto& replies = family(families, "ringmta_test_replies_total");
  ASSERT_EQ(replies.metric.size(), 3u);
  EXPECT_EQ(replies.metric[0].label.at(0).name, "class");
  EXPECT_EQ(replies.metric[0].label.at(0).value, "ok");
  EXPECT_EQ(replies.metric[0].counter.value, 4.0 * kPerThread);
  EXPECT_EQ(replies.metric[1].label.at(0).value, "tempfail");
  EXPECT_EQ(replies.metric[1].counter.value, 2.0 * kPerThread);
  EXPECT_EQ(replies.metric[2].counter.value, 0.0);
}

TEST(MetricsRegistry, ScrapeWhileThreadsWriteSeesMonotoneCounts) {
  auto registry = MetricsRegistry::create<TestMetrics>();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    ThreadMetrics t = registry->attach_thread();
    while (!stop.load(std::memory_order_relaxed))
      t.inc(M::events_total);
  });
  std::uint64_t last = 0;
  for (int i = 0; i < 200; ++i) {
    const std::uint64_t now = registry->value(M::events_total);
    EXPECT_GE(now, last);
    last = now;
    registry->Collect();
  }
  stop = true;
  writer.join();
  EXPECT_GE(registry->value(M::events_total), last);
}

TEST(MetricsRegistry, GaugesSumSignedSharesOfEveryThread) {
  auto registry = MetricsRegistry::create<TestMetrics>();
  ThreadMetrics a = registry->attach_thread();
  ThreadMetrics b = registry->attach_thread();
  a.add(M::open_things, 5);
  b.add(M::open_things, 2);
  a.add(M::open_things, -7);  // one thread's share may go negative; the sum is right
  b.add(M::open_things, -1);
  EXPECT_EQ(registry->value(M::open_things), -1);
  a.set(M::queue_messages[M::queue_messages_queue::deferred], 40);
  b.set(M::queue_messages[M::queue_messages_queue::deferred], 2);
  b.set(M::queue_messages[M::queue_messages_queue::deferred], 3);
  EXPECT_EQ(registry->value(M::queue_messages[M::queue_messages_queue::deferred]), 43);
  EXPECT_EQ(registry->value(M::queue_messages[M::queue_messages_queue::active]), 0);

  const std::string text = registry->text();
  EXPECT_TRUE(contains_line(text, "# TYPE ringmta_test_open_things gauge")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_open_things -1")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_queue_messages{queue=\"deferred\"} 43")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_queue_messages{queue=\"active\"} 0")) << text;
}

TEST(MetricsRegistry, CallbackGaugeIsReadAtScrapeAndAbsentUntilSet) {
  auto registry = MetricsRegistry::create<TestMetrics>();
  EXPECT_EQ(registry->text().find("spool_free_bytes"), std::string::npos);
  std::atomic<int> calls{0};
  registry->set_callback(M::spool_free_bytes, [&calls] {
    ++calls;
    return 123456789.0;
  });
  const std::string text = registry->text();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(contains_line(text, "# TYPE ringmta_test_spool_free_bytes gauge")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_spool_free_bytes 123456789")) << text;
  EXPECT_THROW(registry->set_callback(CallbackGaugeId{0}, [] { return 0.0; }),
               std::invalid_argument);
}

TEST(MetricsRegistry, BlockOfAnEndedThreadIsReusedAndKeepsItsCounts) {
  auto registry = MetricsRegistry::create<TestMetrics>();
  for (int round = 0; round < 5; ++round) {
    std::thread([&registry] {
      ThreadMetrics t = registry->attach_thread();
      t.inc(M::events_total, 10);
    }).join();
  }
  EXPECT_EQ(registry->value(M::events_total), 50u);
  // Moves hand the block over without returning it twice.
  ThreadMetrics a = registry->attach_thread();
  ThreadMetrics b = std::move(a);
  EXPECT_FALSE(a.attached());  // NOLINT(bugprone-use-after-move): the contract under test
  ASSERT_TRUE(b.attached());
  b.inc(M::events_total);
  a = std::move(b);
  a.inc(M::events_total);
  EXPECT_EQ(registry->value(M::events_total), 52u);
}

TEST(MetricsRegistry, HotPathDoesNotAllocate) {
  auto registry = MetricsRegistry::create<TestMetrics>();
  ThreadMetrics t = registry->attach_thread();
  const ringmta::testing::CountAllocations allocations;
  for (int i = 0; i < 1000; ++i) {
    t.inc(M::events_total);
    t.inc(M::replies_total[M::replies_total_class::permfail]);
    t.add(M::open_things, 1);
    t.set(M::queue_messages[M::queue_messages_queue::active], i);
    t.observe(M::wait_seconds, std::chrono::microseconds(i));
    t.observe(M::step_seconds[M::step_seconds_step::second], 1ms);
    t.observe(M::message_size_bytes, std::uint64_t{1000});
  }
  EXPECT_EQ(allocations.count(), 0u);
  EXPECT_EQ(registry->value(M::events_total), 1000u);
}

// --- Histograms

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithExactSumAndCount) {
  auto registry = MetricsRegistry::create<TestMetrics>();
  ThreadMetrics a = registry->attach_thread();
  ThreadMetrics b = registry->attach_thread();
  a.observe(M::wait_seconds, 5us);                           // le 1e-05
  b.observe(M::wait_seconds, 10us);                          // on the bound: le 1e-05
  a.observe(M::wait_seconds, std::uint64_t{10'001});         // le 2e-05
  b.observe(M::wait_seconds, 1500us);                        // le 0.002
  a.observe(M::wait_seconds, 10s);                           // le 10
  b.observe(M::wait_seconds, 20s);                           // +Inf
  a.observe(M::wait_seconds, std::chrono::nanoseconds(-3));  // counts as 0: le 1e-05
  const std::uint64_t sum_ns =
      5'000 + 10'000 + 10'001 + 1'500'000 + 10'000'000'000ull + 20'000'000'000ull;

  const HistogramSnapshot snap = registry->snapshot(M::wait_seconds);
  ASSERT_EQ(snap.buckets.size(), 20u);
  EXPECT_EQ(snap.buckets[0], 3u);
  EXPECT_EQ(snap.buckets[1], 1u);
  EXPECT_EQ(snap.buckets[7], 1u);   // 2 ms
  EXPECT_EQ(snap.buckets[18], 1u);  // 10 s
  EXPECT_EQ(snap.buckets[19], 1u);  // +Inf
  EXPECT_EQ(snap.count, 7u);
  EXPECT_EQ(snap.sum, sum_ns);

  const auto families = registry->Collect();
  const auto& wait = family(families, "ringmta_test_wait_seconds");
  EXPECT_EQ(wait.type, prometheus::MetricType::Histogram);
  ASSERT_EQ(wait.metric.size(), 1u);
  const auto& h = wait.metric[0].histogram;
  EXPECT_EQ(h.sample_count, 7u);
  EXPECT_DOUBLE_EQ(h.sample_sum, static_cast<double>(sum_ns) / 1e9);
  ASSERT_EQ(h.bucket.size(), 20u);
  const std::uint64_t cumulative[] = {3, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 6, 7};
  for (std::size_t i = 0; i < h.bucket.size(); ++i) {
    EXPECT_EQ(h.bucket[i].cumulative_count, cumulative[i]) << "bucket " << i;
    if (i + 1 < h.bucket.size()) {
      EXPECT_EQ(h.bucket[i].upper_bound, static_cast<double>(kLatencyBuckets.bounds[i]) / 1e9);
    }
  }
  EXPECT_TRUE(std::isinf(h.bucket.back().upper_bound));
  EXPECT_EQ(h.bucket[0].upper_bound, 1e-5);  // exactly the double a reader would parse
  EXPECT_EQ(h.bucket[7].upper_bound, 0.002);

  const std::string text = registry->text();
  EXPECT_TRUE(contains_line(text, "# TYPE ringmta_test_wait_seconds histogram")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_wait_seconds_count 7")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_wait_seconds_sum 30.001525001")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_wait_seconds_bucket{le=\"1e-05\"} 3")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_wait_seconds_bucket{le=\"2e-05\"} 4")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_wait_seconds_bucket{le=\"0.002\"} 5")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_wait_seconds_bucket{le=\"10\"} 6")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_wait_seconds_bucket{le=\"+Inf\"} 7")) << text;
  // One +Inf line only: the serializer must not add its own after ours.
  const auto first_inf = text.find("wait_seconds_bucket{le=\"+Inf\"}");
  EXPECT_EQ(text.find("wait_seconds_bucket{le=\"+Inf\"}", first_inf + 1), std::string::npos);
}

TEST(MetricsRegistry, LabelledHistogramKeepsSeriesApart) {
  auto registry = MetricsRegistry::create<TestMetrics>();
  ThreadMetrics t = registry->attach_thread();
  t.observe(M::step_seconds[M::step_seconds_step::second], 300us);
  t.observe(M::step_seconds[M::step_seconds_step::second], 300us);
  t.observe(M::message_size_bytes, std::uint64_t{1024});      // on the bound: le 1024
  t.observe(M::message_size_bytes, std::uint64_t{1u << 30});  // +Inf
  EXPECT_EQ(registry->snapshot(M::step_seconds[M::step_seconds_step::first]).count, 0u);
  const auto second = registry->snapshot(M::step_seconds[M::step_seconds_step::second]);
  EXPECT_EQ(second.count, 2u);
  EXPECT_EQ(second.sum, 600'000u);
  EXPECT_EQ(second.buckets[5], 2u);  // le 500 µs

  const std::string text = registry->text();
  EXPECT_TRUE(contains_line(text, "ringmta_test_step_seconds_count{step=\"first\"} 0")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_step_seconds_count{step=\"second\"} 2")) << text;
  // prometheus-cpp prints 16 significant digits, so 0.0006 comes out as 0.0005999999999999999:
  // compare the parsed value.
  EXPECT_DOUBLE_EQ(sample(text, "ringmta_test_step_seconds_sum{step=\"second\"}"), 0.0006) << text;
  EXPECT_TRUE(
      contains_line(text, "ringmta_test_step_seconds_bucket{step=\"second\",le=\"0.0005\"} 2"))
      << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_message_size_bytes_bucket{le=\"1024\"} 1")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_message_size_bytes_bucket{le=\"+Inf\"} 2")) << text;
  EXPECT_TRUE(contains_line(text, "ringmta_test_message_size_bytes_sum 1073742848")) << text;
}

TEST(MetricsRegistry, SinkListExportsItsNames) {
  using test_lists::SinkMetrics;
  auto registry = MetricsRegistry::create<SinkMetrics>();
  ThreadMetrics t = registry->attach_thread();
  t.inc(SinkMetrics::sessions_total);
  t.add(SinkMetrics::sessions_active, 1);
  t.inc(SinkMetrics::messages_total[SinkMetrics::messages_total_outcome::disconnect]);
  t.inc(SinkMetrics::recipients_total[SinkMetrics::recipients_total_outcome::rejected], 3);
  t.inc(SinkMetrics::received_bytes_total, 1234);
  t.observe(
      SinkMetrics::command_latency_seconds[SinkMetrics::command_latency_seconds_phase::end_of_data],
      250us);
  const std::string text = registry->text();
  for (const char* line : {
           "ringmta_sink_sessions_total 1",
           "ringmta_sink_sessions_active 1",
           "ringmta_sink_messages_total{outcome=\"disconnect\"} 1",
           "ringmta_sink_messages_total{outcome=\"accepted\"} 0",
           "ringmta_sink_recipients_total{outcome=\"rejected\"} 3",
           "ringmta_sink_received_bytes_total 1234",
           "ringmta_sink_command_latency_seconds_count{phase=\"end_of_data\"} 1",
           "ringmta_sink_command_latency_seconds_bucket{phase=\"end_of_data\",le=\"0.0005\"} 1",
           "ringmta_sink_command_latency_seconds_count{phase=\"connect\"} 0",
           "ringmta_sink_greylisted_total 0",
           "ringmta_sink_rate_limited_total 0",
       }) {
    EXPECT_TRUE(contains_line(text, line)) << line << "\n" << text;
  }
}

TEST(MetricsRegistry, RefusesHistogramsWithBadBuckets) {
  static constexpr std::uint64_t kDown[] = {10, 5};
  static constexpr BucketSet kBad{kDown, 1.0, "_bytes", ""};
  static constexpr MetricDef kDefs[] = {
      {"x_bytes", "x", MetricKind::kHistogram, {}, {}, &kBad},
  };
  EXPECT_THROW(MetricsRegistry::create("p_", kDefs), std::invalid_argument);
}

}  // namespace
}  // namespace ringmta::metrics
