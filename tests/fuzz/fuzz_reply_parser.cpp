// libFuzzer target for ReplyParser: the same bytes fed whole, split at an input-derived
// point and one byte at a time must give the same replies and the same error at the same place.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/smtp/reply_parser.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using namespace ringmta::smtp;

struct Limits {
  std::size_t max_line;
  std::size_t max_text;
};

struct Outcome {
  std::string replies;  // one record per complete reply, rendered as text
  std::size_t count = 0;
  ReplyError error = ReplyError::none;
  std::size_t error_at = 0;  // stream offset just after the bytes that made the error
};

void record(const ReplyParser& p, const Limits& lim, Outcome& o) {
  const Reply& r = p.reply();
  FUZZ_CHECK(r.code >= 200 && r.code <= 599);
  FUZZ_CHECK(p.line_count() >= 1);
  FUZZ_CHECK(r.text.size() <= lim.max_text);
  FUZZ_CHECK(r.text.find('\r') == std::string_view::npos);
  FUZZ_CHECK(static_cast<std::size_t>(std::count(r.text.begin(), r.text.end(), '\n')) <
             p.line_count());
  if (r.enhanced.present()) {
    FUZZ_CHECK(r.enhanced.cls == r.code / 100);
    FUZZ_CHECK(r.enhanced.subject <= 999 && r.enhanced.detail <= 999);
  }
  if (r.code == 250) {
    const Capabilities caps = parse_ehlo_capabilities(r.text);
    FUZZ_CHECK(caps.esmtp);
    FUZZ_CHECK(caps.max_size == 0 || caps.size);
  }
  o.replies += std::to_string(r.code) + " " + std::to_string(r.enhanced.cls) + "." +
               std::to_string(r.enhanced.subject) + "." + std::to_string(r.enhanced.detail) +
               " lines=" + std::to_string(p.line_count()) + " [" + std::string(r.text) + "]\n";
  ++o.count;
}

// Feeds one piece at stream offset `base` until it is used up or the parser fails.
void feed(ReplyParser& p, const Limits& lim, std::string_view in, std::size_t base, Outcome& o) {
  std::size_t pos = 0;
  while (pos < in.size() && o.error == ReplyError::none) {
    const ReplyParser::Step s = p.next(in.substr(pos));
    // No progress on non-empty input would hang every caller.
    FUZZ_CHECK(s.consumed > 0 && s.consumed <= in.size() - pos);
    pos += s.consumed;
    if (s.error != ReplyError::none) {
      FUZZ_CHECK(!s.complete);
      o.error = s.error;
      o.error_at = base + pos;
      return;
    }
    if (s.complete) {
      record(p, lim, o);
    } else {
      FUZZ_CHECK(pos == in.size());  // an incomplete step has used everything
    }
  }
}

void check_same(const Outcome& a, const Outcome& b) {
  FUZZ_CHECK_EQ_STR(a.replies, b.replies);
  FUZZ_CHECK(a.count == b.count);
  FUZZ_CHECK(a.error == b.error);
  FUZZ_CHECK(a.error_at == b.error_at);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ringmta::fuzz::InputReader in(data, size);
  const std::uint8_t flags = in.byte();
  const std::uint16_t split_seed = in.u16();
  const std::string_view bytes = in.rest();
  // Small limits make the too-long and cut-text paths reachable with short inputs.
  const Limits lim = (flags & 1) != 0 ? Limits{64, 100} : Limits{2048, 4096};
  const std::size_t split = bytes.empty() ? 0 : split_seed % (bytes.size() + 1);

  Outcome whole;
  {
    ReplyParser p(lim.max_line, lim.max_text);
    feed(p, lim, bytes, 0, whole);
  }
  Outcome halves;
  {
    ReplyParser p(lim.max_line, lim.max_text);
    feed(p, lim, bytes.substr(0, split), 0, halves);
    if (halves.error == ReplyError::none) feed(p, lim, bytes.substr(split), split, halves);
  }
  Outcome bytewise;
  {
    ReplyParser p(lim.max_line, lim.max_text);
    for (std::size_t i = 0; i < bytes.size() && bytewise.error == ReplyError::none; ++i) {
      feed(p, lim, bytes.substr(i, 1), i, bytewise);
    }
  }
  check_same(whole, halves);
  check_same(whole, bytewise);
  return 0;
}
