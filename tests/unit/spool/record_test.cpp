// Spool records: CRC-32C against the RFC 3720 vectors, envelope round trips, and segment
// scans over every kind of damage a crash or a disk can leave: torn tails at every byte
// offset, flipped bits in payloads and headers, empty segments, newer format versions.
#include "relay/spool/record.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "relay/spool/crc32c.hpp"

namespace ringmta::spool {
namespace {

TEST(Crc32c, Rfc3720Vectors) {
  // RFC 3720 B.4.
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string inc, dec;
  for (int i = 0; i < 32; ++i) {
    inc += static_cast<char>(i);
    dec += static_cast<char>(31 - i);
  }
  EXPECT_EQ(crc32c(inc), 0x46DD794Eu);
  EXPECT_EQ(crc32c(dec), 0x113FDB5Cu);
  EXPECT_EQ(crc32c_portable(inc), 0x46DD794Eu);
}

TEST(Crc32c, HardwareAgreesWithTableAndExtends) {
  std::mt19937 rng(5);
  for (int n = 0; n < 300; ++n) {
    std::string s(static_cast<std::size_t>(n) * 7 + static_cast<std::size_t>(rng() % 13), '\0');
    for (char& c : s) c = static_cast<char>(rng());
    ASSERT_EQ(crc32c(s), crc32c_portable(s)) << n;
    const std::size_t cut = s.empty() ? 0 : rng() % s.size();
    ASSERT_EQ(crc32c(std::string_view(s).substr(cut), crc32c(std::string_view(s).substr(0, cut))),
              crc32c(s));
  }
}

std::string record(RecordType type, std::string_view payload) {
  RecordHeader h;
  h.type = type;
  h.length = static_cast<std::uint32_t>(payload.size());
  h.payload_crc = crc32c(payload);
  char head[kHeaderSize];
  encode_header(h, head);
  return std::string(head, kHeaderSize) + std::string(payload);
}

std::string segment_record(std::uint64_t seq) {
  std::string p;
  encode_segment_payload(SegmentInfo{1, seq, 1700000000000}, p);
  return record(RecordType::segment, p);
}

std::string message_record(std::uint64_t id, std::string_view body) {
  const RecipientView rcpts[] = {{"a@example.test", 0, ""}, {"b@example.test", 6, "rfc822;b@x"}};
  EnvelopeView e;
  e.id = id;
  e.arrival_unix_ms = 1700000000123;
  e.sender = "s@client.test";
  e.client_ip = "127.0.0.1";
  e.helo = "client.test";
  e.recipients = rcpts;
  std::string p;
  EXPECT_TRUE(encode_envelope(e, body.size(), p));
  p.append(body);
  return record(RecordType::message, p);
}

std::vector<std::uint64_t> ids(const std::string& seg, SegmentScan* out = nullptr) {
  std::vector<std::uint64_t> got;
  const SegmentScan s = scan_segment(seg, [&](const RecordHeader& h, std::string_view p,
                                               std::uint64_t) {
    StoredMessage m;
    std::string_view body;
    if (h.type == RecordType::message && decode_message_payload(p, m, body, nullptr)) {
      got.push_back(m.id);
    }
  });
  if (out != nullptr) *out = s;
  return got;
}

TEST(SpoolRecord, MessageRoundTrip) {
  const std::string rec = message_record(42, "Subject: x\r\n\r\nbody\r\n");
  RecordHeader h;
  ASSERT_EQ(decode_header(rec, h), HeaderCheck::ok);
  ASSERT_EQ(h.type, RecordType::message);
  StoredMessage m;
  std::string_view body;
  std::string why;
  ASSERT_TRUE(decode_message_payload(std::string_view(rec).substr(kHeaderSize), m, body, &why))
      << why;
  EXPECT_EQ(m.id, 42u);
  EXPECT_EQ(m.arrival_unix_ms, 1700000000123u);
  EXPECT_EQ(m.sender, "s@client.test");
  EXPECT_EQ(m.helo, "client.test");
  ASSERT_EQ(m.recipients.size(), 2u);
  EXPECT_EQ(m.recipients[1].address, "b@example.test");
  EXPECT_EQ(m.recipients[1].notify, 6);
  EXPECT_EQ(m.recipients[1].orcpt, "rfc822;b@x");
  EXPECT_EQ(body, "Subject: x\r\n\r\nbody\r\n");
}

TEST(SpoolRecord, OversizedFieldIsRefused) {
  EnvelopeView e;
  const std::string big(70000, 'a');
  e.sender = big;
  std::string p;
  EXPECT_FALSE(encode_envelope(e, 0, p));
}

TEST(SpoolScan, EmptyAndZeroFilledSegments) {
  SegmentScan s;
  EXPECT_TRUE(ids("", &s).empty());
  EXPECT_FALSE(s.has_segment_record);
  EXPECT_FALSE(s.torn_tail);
  // Preallocated space is zeros: the end of the data, not damage.
  const std::string seg = segment_record(1) + std::string(4096, '\0');
  EXPECT_TRUE(ids(seg, &s).empty());
  EXPECT_TRUE(s.has_segment_record);
  EXPECT_FALSE(s.torn_tail);
  EXPECT_EQ(s.valid_end, segment_record(1).size());
}

TEST(SpoolScan, TornTailAtEveryByteOffset) {
  const std::string good = segment_record(1) + message_record(1, "one\r\n") +
                           message_record(2, "two\r\n");
  const std::string last = message_record(3, std::string(300, 'x') + "\r\n");
  for (std::size_t cut = 0; cut < last.size(); ++cut) {
    // The third record reached the disk only up to `cut` bytes; the rest is zeros.
    const std::string seg = good + last.substr(0, cut) + std::string(last.size() - cut + 64, '\0');
    SegmentScan s;
    const auto got = ids(seg, &s);
    ASSERT_EQ(got, (std::vector<std::uint64_t>{1, 2})) << "cut " << cut;
    EXPECT_EQ(s.valid_end, good.size()) << "cut " << cut;
    EXPECT_EQ(s.torn_tail, cut != 0) << "cut " << cut;
    EXPECT_TRUE(s.corrupt.empty()) << "cut " << cut;
  }
  SegmentScan s;
  EXPECT_EQ(ids(good + last, &s), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_FALSE(s.torn_tail);
}

TEST(SpoolScan, FlippedBitInAPayloadSkipsOnlyThatRecord) {
  const std::string a = message_record(1, "one\r\n");
  const std::string b = message_record(2, "two two two\r\n");
  const std::string c = message_record(3, "three\r\n");
  const std::string head = segment_record(1);
  for (std::size_t bit = 0; bit < (b.size() - kHeaderSize) * 8; bit += 7) {
    std::string bad = b;
    bad[kHeaderSize + bit / 8] = static_cast<char>(bad[kHeaderSize + bit / 8] ^ (1 << (bit % 8)));
    SegmentScan s;
    ASSERT_EQ(ids(head + a + bad + c, &s), (std::vector<std::uint64_t>{1, 3})) << bit;
    ASSERT_EQ(s.corrupt.size(), 1u);
    EXPECT_EQ(s.corrupt[0].offset, head.size() + a.size());
    EXPECT_EQ(s.corrupt[0].length, b.size());
    EXPECT_FALSE(s.torn_tail);
  }
}

TEST(SpoolScan, FlippedBitInAHeaderResyncsOnTheNextRecord) {
  const std::string head = segment_record(1);
  const std::string a = message_record(1, "one\r\n");
  const std::string b = message_record(2, "two\r\n");
  const std::string c = message_record(3, "three\r\n");
  for (std::size_t bit = 0; bit < 20 * 8; ++bit) {  // the checked part of the header
    std::string bad = b;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    SegmentScan s;
    const auto got = ids(head + a + bad + c, &s);
    ASSERT_EQ(got, (std::vector<std::uint64_t>{1, 3})) << bit;
    ASSERT_EQ(s.corrupt.size(), 1u) << bit;
    EXPECT_EQ(s.corrupt[0].length, b.size()) << bit;
  }
}

TEST(SpoolScan, AHoleLeftByAFailedWriteDoesNotHideLaterRecords) {
  // Writes complete in any order: record 2's write failed (its space stayed zeros) while
  // record 3, written after it, succeeded and may have been acknowledged.
  const std::string head = segment_record(1);
  const std::string a = message_record(1, "one\r\n");
  const std::string b = message_record(2, "two two\r\n");
  const std::string c = message_record(3, "three\r\n");
  SegmentScan s;
  const auto got = ids(head + a + std::string(b.size(), '\0') + c + std::string(4096, '\0'), &s);
  EXPECT_EQ(got, (std::vector<std::uint64_t>{1, 3}));
  ASSERT_EQ(s.corrupt.size(), 1u);
  EXPECT_EQ(s.corrupt[0].offset, head.size() + a.size());
  EXPECT_EQ(s.corrupt[0].length, b.size());
  EXPECT_EQ(s.valid_end, head.size() + a.size() + b.size() + c.size());
  EXPECT_FALSE(s.torn_tail);
}

TEST(SpoolScan, NewerFormatVersionIsRefused) {
  std::string seg = segment_record(1) + message_record(1, "x\r\n");
  // Re-encode the segment record's header with version 2.
  RecordHeader h;
  ASSERT_EQ(decode_header(seg, h), HeaderCheck::ok);
  h.version = kFormatVersion + 1;
  encode_header(h, seg.data());
  SegmentScan s;
  EXPECT_TRUE(ids(seg, &s).empty());
  EXPECT_TRUE(s.newer_version);
}

TEST(SpoolScan, WithoutASegmentRecordNothingIsTrusted) {
  // Not a segment of ours (or its first record is gone): recovery moves such a file aside.
  SegmentScan s;
  EXPECT_TRUE(ids(message_record(1, "x\r\n") + message_record(2, "y\r\n"), &s).empty());
  EXPECT_FALSE(s.has_segment_record);
}

TEST(SpoolScan, RandomGarbageNeverCrashesOrInventsRecords) {
  std::mt19937 rng(9);
  const std::string head = segment_record(1);
  for (int i = 0; i < 500; ++i) {
    std::string junk(rng() % 2000, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    SegmentScan s;
    const auto got = ids(head + message_record(7, "ok\r\n") + junk, &s);
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(got[0], 7u);
  }
}

}  // namespace
}  // namespace ringmta::spool
