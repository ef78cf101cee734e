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
  // An empty segment left by a crash during creation.
  FILE* e = std::fopen((d.path + "/t0/seg-00000000000000ff.log").c_str(), "w");
  std::fclose(e);
  RecoveryReport rep;
  const auto got = recover(d.path, rep);
  EXPECT_EQ(got.size(), 10u);
  EXPECT_EQ(rep.torn_tails, 1u);
  EXPECT_EQ(rep.removed_empty, 1u);
  EXPECT_EQ(rep.last_sequence[0], 0xffu);
  // Repaired: a second recovery finds nothing to repair.
  RecoveryReport again;
  EXPECT_EQ(recover(d.path, again).size(), 10u);
  EXPECT_EQ(again.torn_tails, 0u);
  EXPECT_EQ(again.removed_empty, 0u);
}

}  // namespace
}  // namespace ringmta::spool
