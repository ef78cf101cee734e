// MessageDigest: the accounting fingerprint (X-Ringmta-Id and SHA-256 of the unstuffed body)
// is the same for DATA and BDAT forms, for any cut of the input, and with headers added.
#include "core/smtp/message_digest.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ringmta::smtp {
namespace {

struct Print {
  std::string id, hex;
  std::uint64_t octets;
};

Print digest(const std::string& wire, BodyFormat f, std::size_t cut = 0) {
  MessageDigest d;
  d.begin(f);
  if (cut != 0 && cut < wire.size()) {
    d.update(std::string_view(wire).substr(0, cut));
    d.update(std::string_view(wire).substr(cut));
  } else {
    d.update(wire);
  }
  d.finish();
  return {std::string(d.id()), std::string(d.sha256_hex()), d.body_octets()};
}

const std::string kRaw =
    "From: a@b.example\r\nX-Ringmta-Id: run7-42\r\nSubject: t\r\n\r\n"
    "hello\r\n.dotted\r\n..two\r\nend\r\n";
const std::string kStuffed =
    "From: a@b.example\r\nX-Ringmta-Id: run7-42\r\nSubject: t\r\n\r\n"
    "hello\r\n..dotted\r\n...two\r\nend\r\n";

TEST(MessageDigest, KnownHashOfTheBody) {
  // sha256("hello\r\n") computed independently: printf 'hello\r\n' | sha256sum
  const Print p = digest("Subject: x\r\n\r\nhello\r\n", BodyFormat::raw);
  EXPECT_EQ(p.hex, "cd2eca3535741f27a8ae40c31b0c41d4057a7a7b912b33b9aed86485d1c84676");
  EXPECT_EQ(p.octets, 7u);
}

TEST(MessageDigest, StuffedAndRawAgree) {
  const Print a = digest(kRaw, BodyFormat::raw);
  const Print b = digest(kStuffed, BodyFormat::dot_stuffed);
  EXPECT_EQ(a.id, "run7-42");
  EXPECT_EQ(a.hex, b.hex);
  EXPECT_EQ(a.octets, b.octets);
  EXPECT_EQ(a.octets, std::string("hello\r\n.dotted\r\n..two\r\nend\r\n").size());
}

TEST(MessageDigest, SameAtEveryCut) {
  const Print whole = digest(kStuffed, BodyFormat::dot_stuffed);
  for (std::size_t cut = 1; cut < kStuffed.size(); ++cut) {
    const Print p = digest(kStuffed, BodyFormat::dot_stuffed, cut);
    ASSERT_EQ(p.hex, whole.hex) << cut;
    ASSERT_EQ(p.id, whole.id) << cut;
  }
}

TEST(MessageDigest, AddedHeadersDoNotChangeIt) {
  const Print a = digest(kRaw, BodyFormat::raw);
  const Print b = digest("Received: from x by y; Mon, 30 Nov 2026 00:00:00 +0000\r\n" + kRaw,
                         BodyFormat::raw);
  EXPECT_EQ(a.hex, b.hex);
  EXPECT_EQ(b.id, "run7-42");
}

TEST(MessageDigest, IdHeaderIsCaseInsensitiveAndTrimmed) {
  EXPECT_EQ(digest("x-ringmta-id:\t abc-1 \r\n\r\nb\r\n", BodyFormat::raw).id, "abc-1");
  EXPECT_EQ(digest("Subject: X-Ringmta-Id: no\r\n\r\nb\r\n", BodyFormat::raw).id, "");
  EXPECT_EQ(digest("Subject: s\r\n\r\nX-Ringmta-Id: in-body\r\n", BodyFormat::raw).id, "");
}

}  // namespace
}  // namespace ringmta::smtp
