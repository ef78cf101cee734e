// SpoolWriter on a real io_uring reactor and a temporary directory: every message is acked
// only after its record is written (and synced, per the mode), group commit batches
// messages, segments roll over, and recovery reads back exactly what was acked.
#include "relay/spool/spool_writer.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "relay/spool/crc32c.hpp"
#include "relay/spool/record.hpp"
#include "relay/spool/recovery.hpp"

namespace ringmta::spool {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/ringmta-spool-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
};

// A message the test owns: envelope + body, as a session would hand it over.
struct TestMessage {
  PendingMessage pm;
  std::string envelope;
  std::string body;
  std::uint64_t id = 0;
  int result = 1;  // 1: not done yet
};

void prepare(TestMessage& t, std::uint64_t id, std::string body) {
  t.id = id;
  t.body = std::move(body);
  const RecipientView r[] = {{"rcpt@example.test", 0, ""}};
  EnvelopeView e;
  e.id = id;
  e.sender = "s@example.test";
  e.recipients = r;
  t.envelope.clear();
  ASSERT_TRUE(encode_envelope(e, t.body.size(), t.envelope));
  t.pm.iov = {iovec{nullptr, 0}, iovec{t.envelope.data(), t.envelope.size()},
              iovec{t.body.data(), t.body.size()}};
  t.pm.payload_bytes = t.envelope.size() + t.body.size();
  t.pm.payload_crc = crc32c(t.body, crc32c(t.envelope));
  t.pm.owner = &t;
  t.pm.done = [](PendingMessage& m, int res) { static_cast<TestMessage*>(m.owner)->result = res; };
}

struct RunResult {
  std::vector<std::unique_ptr<TestMessage>> messages;
  SpoolWriter::Stats stats;
};

// Runs a reactor on this thread, appends `count` messages (sizes from size_of), stops once
// all are done.
RunResult run(const SpoolConfig& cfg, int count, std::size_t (*size_of)(int)) {
  RunResult out;
  io::Reactor r(io::ReactorConfig{}, 0);
  SpoolTotals totals;
  SpoolWriter w(r, cfg, totals, 0, 0);
  for (int i = 0; i < count; ++i) {
    auto t = std::make_unique<TestMessage>();
    std::string body = "Subject: m" + std::to_string(i) + "\r\n\r\n";
    body.append(size_of(i), static_cast<char>('a' + i % 26));
    body += "\r\n";
    prepare(*t, w.next_id(), std::move(body));
    out.messages.push_back(std::move(t));
  }
  struct Ctx {
    SpoolWriter* w;
    RunResult* out;
    io::Reactor* r;
    int next = 0;
  } ctx{&w, &out, &r};
  io::Timer feed;
  // Append in bursts from a timer, as sessions would, so batches form.
  feed.set_callback([](io::Timer& t, void* p) {
    auto* c = static_cast<Ctx*>(p);
    for (int k = 0; k < 25 && c->next < static_cast<int>(c->out->messages.size()); ++k) {
      c->w->append(c->out->messages[static_cast<std::size_t>(c->next++)]->pm);
    }
    bool all = c->next == static_cast<int>(c->out->messages.size());
    for (auto& m : c->out->messages) all = all && m->result != 1;
    if (all) c->r->request_stop();
    else c->r->timers().arm(t, 0);
  }, &ctx);
  r.timers().arm(feed, 0);
  r.run();
  out.stats = w.stats();
  return out;
}

std::map<std::uint64_t, std::string> recover(const std::string& dir, RecoveryReport& rep) {
  std::map<std::uint64_t, std::string> got;
  std::string err;
  EXPECT_TRUE(recover_spool(dir, true, [&](const RecoveredMessage& m) {
    got[m.envelope.id] = std::string(m.body);
  }, rep, &err)) << err;
  return got;
}

TEST(SpoolWriter, BatchModeAcksOnlyDurableAndGroupsSyncs) {
  TempDir d;
  SpoolConfig cfg;
  cfg.dir = d.path;
  cfg.segment_bytes = 4 << 20;
  const RunResult res = run(cfg, 500, [](int) -> std::size_t { return 1000; });
  for (const auto& m : res.messages) ASSERT_EQ(m->result, 0);
  EXPECT_GT(res.stats.syncs, 0u);
  EXPECT_LT(res.stats.syncs, 500u) << "group commit should need fewer syncs than messages";
  RecoveryReport rep;
  const auto got = recover(d.path, rep);
  ASSERT_EQ(got.size(), 500u);
  for (const auto& m : res.messages) EXPECT_EQ(got.at(m->id), m->body);
  EXPECT_EQ(rep.torn_tails, 0u);
  EXPECT_EQ(rep.corrupt_records, 0u);
}

// Closed-loop writers, as SMTP clients waiting for their 250: each appends its next message
// only once the previous one is acked, after a short think time. With a batch wait set, a
// batch whose wait ends while the previous batch is still syncing must close when that sync
// is done; otherwise it waits for batch_max_messages that the waiting clients never send.
TEST(SpoolWriter, BatchWaitEndingDuringASyncDoesNotStallClosedLoopWriters) {
  TempDir d;
  SpoolConfig cfg;
  cfg.dir = d.path;
  cfg.batch_max_wait_us = 1000;
  cfg.batch_max_messages = 64;
  constexpr int kWriters = 8;
  constexpr int kEach = 60;
  io::Reactor r(io::ReactorConfig{}, 0);
  SpoolTotals totals;
  SpoolWriter w(r, cfg, totals, 0, 0);
  struct Writer {
    TestMessage msg;
    io::Timer think;
    int sent = 0;
    unsigned seed = 0;
    SpoolWriter* w = nullptr;
    int* finished = nullptr;
    io::Reactor* r = nullptr;
  };
  int finished = 0;
  std::vector<std::unique_ptr<Writer>> writers;
  for (int i = 0; i < kWriters; ++i) {
    auto wr = std::make_unique<Writer>();
    wr->seed = static_cast<unsigned>(i * 7919 + 1);
    wr->w = &w;
    wr->finished = &finished;
    wr->r = &r;
    wr->think.set_callback([](io::Timer&, void* p) {
      auto* me = static_cast<Writer*>(p);
      // Large enough that a sync takes a while, so batch waits end during syncs.
      prepare(me->msg, me->w->next_id(), "Subject: x\r\n\r\n" + std::string(100'000, 'b') + "\r\n");
      me->msg.pm.owner = me;
      me->msg.pm.done = [](PendingMessage& m, int res) {
        auto* self = static_cast<Writer*>(m.owner);
        EXPECT_EQ(res, 0);
        if (++self->sent == kEach) {
          if (++*self->finished == kWriters) self->r->request_stop();
          return;
        }
        self->seed = self->seed * 1103515245u + 12345u;
        self->r->timers().arm(self->think, (self->seed >> 16) % 3);
      };
      me->w->append(me->msg.pm);
    }, wr.get());
    r.timers().arm(wr->think, static_cast<std::uint64_t>(i % 3));
    writers.push_back(std::move(wr));
  }
  bool stalled = false;
  std::pair<bool*, io::Reactor*> wctx{&stalled, &r};
  io::Timer watchdog([](io::Timer&, void* p) {
    auto* c = static_cast<std::pair<bool*, io::Reactor*>*>(p);
    *c->first = true;
    c->second->request_stop();
  }, &wctx);
  r.timers().arm(watchdog, 10'000);
  r.run();
  watchdog.cancel();
  for (auto& wr : writers) wr->think.cancel();
  EXPECT_FALSE(stalled) << finished << " of " << kWriters << " writers finished in 10 s";
  EXPECT_EQ(finished, kWriters);
}

TEST(SpoolWriter, AlwaysSyncsEveryMessage) {
  TempDir d;
  SpoolConfig cfg;
  cfg.dir = d.path;
  cfg.durability = Durability::always;
  const RunResult res = run(cfg, 60, [](int) -> std::size_t { return 200; });
  for (const auto& m : res.messages) ASSERT_EQ(m->result, 0);
  EXPECT_EQ(res.stats.syncs, 60u);
  RecoveryReport rep;
  EXPECT_EQ(recover(d.path, rep).size(), 60u);
}

TEST(SpoolWriter, NoneNeverSyncs) {
  TempDir d;
  SpoolConfig cfg;
  cfg.dir = d.path;
  cfg.durability = Durability::none;
  const RunResult res = run(cfg, 60, [](int) -> std::size_t { return 200; });
  for (const auto& m : res.messages) ASSERT_EQ(m->result, 0);
  EXPECT_EQ(res.stats.syncs, 0u);
  RecoveryReport rep;
  EXPECT_EQ(recover(d.path, rep).size(), 60u);
}

TEST(SpoolWriter, SegmentsRollOverAndBigMessagesGetTheirOwn) {
  TempDir d;
  SpoolConfig cfg;
  cfg.dir = d.path;
  cfg.segment_bytes = 1 << 20;
  const RunResult res = run(cfg, 120, [](int i) -> std::size_t {
    return i == 50 ? (3u << 20) : 60'000u;  // one message larger than a segment
  });
  for (const auto& m : res.messages) ASSERT_EQ(m->result, 0);
  RecoveryReport rep;
  const auto got = recover(d.path, rep);
  ASSERT_EQ(got.size(), 120u);
  for (const auto& m : res.messages) EXPECT_EQ(got.at(m->id), m->body);
  EXPECT_GT(rep.segments, 5u);
  EXPECT_GE(rep.last_sequence[0], rep.segments);
}

TEST(SpoolWriter, RestartContinuesNumberingAndKeepsOldMessages) {
  TempDir d;
  SpoolConfig cfg;
  cfg.dir = d.path;
  const RunResult first = run(cfg, 30, [](int) -> std::size_t { return 100; });
  RecoveryReport rep1;
  ASSERT_EQ(recover(d.path, rep1).size(), 30u);
  // A second run after "restart": new segments numbered after the old ones.
  io::Reactor r(io::ReactorConfig{}, 0);
  SpoolTotals totals;
  SpoolWriter w(r, cfg, totals, 0, rep1.last_sequence[0]);
  RecoveryReport rep2;
  EXPECT_EQ(recover(d.path, rep2).size(), 30u);
  EXPECT_EQ(rep2.last_sequence[0], rep1.last_sequence[0] + 1);
}

TEST(SpoolRecovery, TornTailIsCutAndEmptySegmentRemoved) {
  TempDir d;
  SpoolConfig cfg;
  cfg.dir = d.path;
  run(cfg, 10, [](int) -> std::size_t { return 100; });
  // Append half a record's worth of junk after the last good record of the segment.
  std::string seg;
  for (const auto& e : fs::directory_iterator(d.path + "/t0")) seg = e.path();
  RecoveryReport before;
  recover(d.path, before);
  const std::string torn = std::string("RGMS") + std::string(10, '\x7f');
  {
    FILE* f = std::fopen(seg.c_str(), "r+");
    struct stat st {};
    ::stat(seg.c_str(), &st);
    // Find the end of the good data by recovering read-only, then write garbage there.
    std::fseek(f, 0, SEEK_SET);
    std::string all(static_cast<std::size_t>(st.st_size), '\0');
    ASSERT_EQ(std::fread(all.data(), 1, all.size(), f), all.size());
    const SegmentScan s = scan_segment(all, [](const RecordHeader&, std::string_view,
                                               std::uint64_t) {});
    std::fseek(f, static_cast<long>(s.valid_end), SEEK_SET);
    std::fwrite(torn.data(), 1, torn.size(), f);
    std::fclose(f);
  }
  // Empty segments left by a crash during creation: before the preallocation (no bytes),
  // and after it but before the segment record was written (zeros).
  FILE* e = std::fopen((d.path + "/t0/seg-00000000000000ff.log").c_str(), "w");
  std::fclose(e);
  e = std::fopen((d.path + "/t0/seg-00000000000000fe.log").c_str(), "w");
  const std::string zeros(1 << 20, '\0');
  std::fwrite(zeros.data(), 1, zeros.size(), e);
  std::fclose(e);
  RecoveryReport rep;
  const auto got = recover(d.path, rep);
  EXPECT_EQ(got.size(), 10u);
  EXPECT_EQ(rep.torn_tails, 1u);
  EXPECT_EQ(rep.removed_empty, 2u);
  EXPECT_EQ(rep.last_sequence[0], 0xffu);
  EXPECT_FALSE(fs::exists(d.path + "/t0/seg-00000000000000fe.log"));
  // Repaired: a second recovery finds nothing to repair.
  RecoveryReport again;
  EXPECT_EQ(recover(d.path, again).size(), 10u);
  EXPECT_EQ(again.torn_tails, 0u);
  EXPECT_EQ(again.removed_empty, 0u);
}

}  // namespace
}  // namespace ringmta::spool
