// Message bodies for the micro-benchmarks (see bench_bodies.hpp): a fixed seed, so every run
// and every benchmark scans the same bytes.
#include "tests/micro/bench_bodies.hpp"

#include <array>
#include <cstdint>

namespace ringmta::bench {
namespace {

constexpr std::string_view kHeaders =
    "Received: from client.example.org (client.example.org [192.0.2.10])\r\n"
    "\tby mx.example.net (ringmta) with ESMTP id 4F3A2B1C5D\r\n"
    "\tfor <bob@example.net>; Tue, 14 May 2024 10:21:33 +0000\r\n"
    "From: Alice Sender <alice.sender@example.org>\r\n"
    "To: Bob Receiver <bob@example.net>\r\n"
    "Subject: Quarterly report, third draft\r\n"
    "Date: Tue, 14 May 2024 10:21:30 +0000\r\n"
    "Message-ID: <20240514102130.4f3a2b1c@client.example.org>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n";

constexpr std::array<std::string_view, 32> kWords = {
    "the",      "report",  "shows",    "that",    "revenue",  "grew",     "in",
    "every",    "region",  "except",   "north",   "where",    "shipping", "costs",
    "rose",     "sharply", "during",   "second",  "quarter",  "we",       "expect",
    "margins",  "to",      "recover",  "once",    "contracts", "renew",   "please",
    "review",   "attached", "figures", "before",
};

// A small LCG: deterministic and identical on every platform.
class Lcg {
 public:
  std::uint32_t next() {
    state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::uint32_t>(state_ >> 33);
  }

 private:
  std::uint64_t state_ = 0x5eed;
};

// Appends words (separated by spaces) up to exactly `len` characters.
void append_text(std::string& out, std::size_t len, Lcg& rng) {
  std::size_t used = 0;
  while (used < len) {
    if (used != 0) {
      out += ' ';
      ++used;
      if (used == len) {
        out.back() = '.';  // no trailing space: the sentence ends
        break;
      }
    }
    const std::string_view w = kWords[rng.next() % kWords.size()];
    const std::size_t take = w.size() < len - used ? w.size() : len - used;
    out.append(w.substr(0, take));
    used += take;
  }
}

}  // namespace

DataBody make_data_body(std::size_t total, std::size_t dot_every) {
  constexpr std::string_view kEnd = ".\r\n";
  DataBody b{std::string(), 0};
  b.wire.reserve(total);
  b.wire.append(kHeaders);
  Lcg rng;
  const std::size_t content = total - kEnd.size();  // ends with the last line's CRLF
  for (std::size_t line = 0;; ++line) {
    const std::size_t left = content - b.wire.size();
    if (left <= 80) {
      // The last line takes what is left (its CRLF included), so the size is exact.
      append_text(b.wire, left - 2, rng);
      b.wire.append("\r\n");
      break;
    }
    if (line % 12 == 11) {
      b.wire.append("\r\n");  // a paragraph break
      continue;
    }
    std::size_t len = 60 + rng.next() % 17;  // 60..76
    if (dot_every != 0 && line % dot_every == 3 % dot_every) {
      // A line that begins with '.', doubled for transparency (RFC 5321 4.5.2).
      b.wire.append("..");
      ++b.stuffed_lines;
      len -= 2;
    }
    append_text(b.wire, len, rng);
    b.wire.append("\r\n");
  }
  b.wire.append(kEnd);
  return b;
}

}  // namespace ringmta::bench
