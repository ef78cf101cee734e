// MessageFactory: headers are RFC 5322 with one X-Ringmta-Id, the fingerprint MessageDigest
// computes (DATA and BDAT forms) is the one the factory reports, sizes follow the spec exactly,
// recipients and domains follow their specs, make() never allocates, and bad settings are
// refused with the reason.
#include "loadgen/message_factory.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/smtp/message_digest.hpp"
#include "tests/unit/smtp/alloc_counter.hpp"

namespace ringmta::loadgen {
namespace {

constexpr std::int64_t kDate = 1764461554;  // Sun, 30 Nov 2025 00:12:34 +0000
constexpr std::string_view kRun = "r20261130T0012-ab12";

SizeSpec size(std::string_view text) {
  SizeSpec s;
  std::string why;
  EXPECT_TRUE(parse_size_spec(text, s, &why)) << why;
  return s;
}

RecipientCount rcpts(std::string_view text) {
  RecipientCount c;
  std::string why;
  EXPECT_TRUE(parse_recipient_count(text, c, &why)) << why;
  return c;
}

MessageFactoryConfig base_config() {
  MessageFactoryConfig c;
  c.run_id = std::string(kRun);
  c.fixed_date = kDate;
  c.max_templates = 64;
  return c;
}

std::string whole(const Message& m) {
  return std::string(m.header) + std::string(m.body);
}

// ---- An RFC 5322 header reader for the checks -----------------------------------------------

struct Field {
  std::string name;
  std::string value;  // unfolded, leading white space removed
};

// Splits a header block into fields, asserting the RFC 5322 2.1/2.2 syntax on the way: CRLF
// lines of printable US-ASCII (or WSP), at most 998 characters (2.1.1 MUST) and at most 78
// (the SHOULD) except for lines of the fields named in long_ok (an id that cannot be folded),
// names of ftext followed by ':', continuation lines starting with WSP, one empty line at
// the end.
std::vector<Field> read_header(std::string_view h,
                               std::initializer_list<std::string_view> long_ok = {}) {
  std::vector<Field> fields;
  EXPECT_GE(h.size(), 4u);
  EXPECT_EQ(h.substr(h.size() - 4), "\r\n\r\n");
  std::size_t pos = 0;
  bool ended = false;
  while (pos < h.size()) {
    const std::size_t eol = h.find("\r\n", pos);
    EXPECT_NE(eol, std::string_view::npos) << "line without CRLF at " << pos;
    if (eol == std::string_view::npos) break;
    const std::string_view line = h.substr(pos, eol - pos);
    pos = eol + 2;
    EXPECT_FALSE(ended) << "bytes after the empty line";
    if (line.empty()) {
      ended = true;
      continue;
    }
    EXPECT_LE(line.size(), 998u) << line;
    const bool may_be_long = std::any_of(long_ok.begin(), long_ok.end(), [&](auto name) {
      return line.starts_with(std::string(name) + ":");
    });
    if (!may_be_long) {
      EXPECT_LE(line.size(), 78u) << line;
    }
    for (const char c : line) {
      EXPECT_TRUE((c >= 33 && c <= 126) || c == ' ' || c == '\t') << int(c) << " in " << line;
    }
    if (line[0] == ' ' || line[0] == '\t') {
      EXPECT_FALSE(fields.empty()) << "continuation first";
      if (!fields.empty()) fields.back().value += std::string(line);
      continue;
    }
    const std::size_t colon = line.find(':');
    EXPECT_NE(colon, std::string_view::npos) << line;
    EXPECT_GT(colon, 0u) << line;
    if (colon == std::string_view::npos || colon == 0) continue;
    for (const char c : line.substr(0, colon))
      EXPECT_TRUE(c >= 33 && c <= 126 && c != ':');
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value[0] == ' ' || value[0] == '\t'))
      value.remove_prefix(1);
    fields.push_back({std::string(line.substr(0, colon)), std::string(value)});
  }
  EXPECT_TRUE(ended);
  return fields;
}

std::vector<std::string> values_of(const std::vector<Field>& fields, std::string_view name) {
  std::vector<std::string> out;
  for (const Field& f : fields) {
    if (f.name.size() == name.size() &&
        std::equal(f.name.begin(), f.name.end(), name.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      out.push_back(f.value);
    }
  }
  return out;
}

std::string one(const std::vector<Field>& fields, std::string_view name) {
  const auto v = values_of(fields, name);
  EXPECT_EQ(v.size(), 1u) << name;
  return v.empty() ? std::string() : v[0];
}

// The address list of an unfolded To: value.
std::vector<std::string> split_to(const std::string& to) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= to.size()) {
    const std::size_t comma = std::min(to.find(',', pos), to.size());
    std::string item = to.substr(pos, comma - pos);
    item.erase(0, item.find_first_not_of(" \t"));
    out.push_back(item);
    pos = comma + 1;
  }
  return out;
}

// ---- Headers ---------------------------------------------------------------------------------

TEST(MessageFactory, HeaderIsRfc5322WithEveryRequiredField) {
  MessageFactoryConfig c = base_config();
  c.recipients = rcpts("uniform:1-6");
  c.to_domains = {{"example.test", 1}, {"mx.other-domain.test", 1}};
  const MessageFactory f(c);
  MessageState st = f.new_state();
  const std::regex date_re(
      R"(^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) )"
      R"(\d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$)");
  std::set<std::size_t> counts;
  for (std::uint64_t seq :
       {0ull, 1ull, 7ull, 42ull, 1000ull, 123456789ull, 18446744073709551615ull}) {
    for (std::uint64_t k = 0; k < 20; ++k) {
      const std::uint64_t s = seq + k * 1'000'003;
      const Message m = f.make(s, st);
      const std::vector<Field> fields = read_header(m.header);
      const std::string id = std::string(kRun) + "-" + std::to_string(s);
      EXPECT_EQ(m.id, id);
      EXPECT_EQ(one(fields, "X-Ringmta-Id"), id);
      EXPECT_EQ(one(fields, "Message-ID"), "<" + id + "@ringmta.test>");
      EXPECT_EQ(one(fields, "From"), "loadgen@ringmta.test");
      EXPECT_EQ(one(fields, "Date"), "Sun, 30 Nov 2025 00:12:34 +0000");
      EXPECT_TRUE(std::regex_match(one(fields, "Date"), date_re));
      EXPECT_EQ(one(fields, "MIME-Version"), "1.0");
      EXPECT_EQ(one(fields, "Content-Type"), "text/plain; charset=utf-8");
      EXPECT_EQ(one(fields, "Content-Transfer-Encoding"), "7bit");
      const std::string subject = one(fields, "Subject");
      EXPECT_TRUE(subject.ends_with(" #" + std::to_string(s))) << subject;
      EXPECT_EQ(values_of(fields, "X-Ringmta-Pad").size(), 1u);

      // To: the first three recipients, then a group standing for the rest.
      const std::vector<std::string> to = split_to(one(fields, "To"));
      const std::size_t n = m.recipients.size();
      counts.insert(n);
      const std::size_t listed = std::min<std::size_t>(n, 3);
      ASSERT_EQ(to.size(), listed + (n > 3 ? 1 : 0)) << one(fields, "To");
      for (std::size_t i = 0; i < listed; ++i)
        EXPECT_EQ(to[i], m.recipients[i]);
      if (n > 3) {
        EXPECT_EQ(to.back(), "undisclosed-recipients:;");
      }
      EXPECT_EQ(m.sender, "loadgen@ringmta.test");
      EXPECT_EQ(m.header.size(), f.max_header_bytes());
    }
  }
  EXPECT_EQ(counts.size(), 6u);  // 1..6 recipients all seen: both To: forms were checked
}

TEST(MessageFactory, HeaderLinesStayFoldedForEveryPadLength) {
  // The pad header absorbs every difference in length (run id, seq digits, recipients); its
  // folding has edge cases at each remainder, so walk the run id length and the seq digits.
  for (std::size_t run_len = 1; run_len <= kMaxRunIdBytes; ++run_len) {
    MessageFactoryConfig c = base_config();
    c.run_id = std::string(run_len, 'r');
    c.max_templates = 2;
    c.recipients = rcpts("uniform:1-4");
    const MessageFactory f(c);
    MessageState st = f.new_state();
    std::uint64_t seq = 0;
    for (int digits = 1; digits <= 20; ++digits) {
      for (const std::uint64_t s : {seq, seq + 1}) {
        const Message m = f.make(s, st);
        ASSERT_EQ(m.header.size(), f.max_header_bytes());
        // A 64-character run id makes ids longer than 78 characters; they cannot be folded.
        const std::vector<Field> fields = read_header(m.header, {"Message-ID", "X-Ringmta-Id"});
        ASSERT_EQ(one(fields, "X-Ringmta-Id"), c.run_id + "-" + std::to_string(s));
        const std::string pad = one(fields, "X-Ringmta-Pad");
        ASSERT_FALSE(pad.empty());
        ASSERT_EQ(pad.find_first_not_of("x "), std::string::npos) << pad;
        if (::testing::Test::HasFailure()) return;
      }
      seq = seq * 10 + 9;
    }
  }
}

TEST(MessageFactory, DateFormatting) {
  char out[kDateBytes + 1] = {};
  const std::pair<std::int64_t, std::string_view> cases[] = {
      {0, "Thu, 01 Jan 1970 00:00:00 +0000"},
      {951782400, "Tue, 29 Feb 2000 00:00:00 +0000"},
      {kDate, "Sun, 30 Nov 2025 00:12:34 +0000"},
      {4102444800, "Fri, 01 Jan 2100 00:00:00 +0000"},
      {253402300799, "Fri, 31 Dec 9999 23:59:59 +0000"},
      {-5, "Thu, 01 Jan 1970 00:00:00 +0000"},  // clamped
  };
  for (const auto& [t, want] : cases) {
    format_rfc5322_date(t, out);
    EXPECT_EQ(std::string_view(out, kDateBytes), want) << t;
  }
}

TEST(MessageFactory, DateFollowsTheWallClockWithoutFixedDate) {
  MessageFactoryConfig c = base_config();
  c.fixed_date.reset();
  const MessageFactory f(c);
  MessageState st = f.new_state();
  const std::time_t before = std::time(nullptr);
  const std::string date = one(read_header(f.make(1, st).header), "Date");
  const std::time_t after = std::time(nullptr);
  std::set<std::string> allowed;
  char out[kDateBytes];
  for (std::int64_t t = before - 1; t <= after; ++t) {  // the coarse clock may lag a tick
    format_rfc5322_date(t, out);
    allowed.insert(std::string(out, kDateBytes));
  }
  EXPECT_TRUE(allowed.count(date)) << date;
}

// ---- Fingerprint and body --------------------------------------------------------------------

std::string evp_sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    static const char* kHex = "0123456789abcdef";
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

TEST(MessageFactory, MessageDigestAgreesForDataAndBdat) {
  MessageFactoryConfig c = base_config();
  c.size = size("uniform:600-20K");
  c.recipients = rcpts("uniform:1-5");
  const MessageFactory f(c);
  MessageState st = f.new_state();
  smtp::MessageDigest d;
  for (std::uint64_t seq = 100; seq < 400; ++seq) {
    const Message m = f.make(seq, st);
    const std::string wire = whole(m);
    ASSERT_EQ(wire.size(), m.total_octets);
    for (const smtp::BodyFormat fmt : {smtp::BodyFormat::dot_stuffed, smtp::BodyFormat::raw}) {
      d.begin(fmt);
      // Cut the stream somewhere inside to mimic receive buffers.
      const std::size_t cut = seq % wire.size();
      d.update(std::string_view(wire).substr(0, cut));
      d.update(std::string_view(wire).substr(cut));
      d.finish();
      ASSERT_EQ(d.id(), m.id) << seq;
      ASSERT_EQ(d.sha256_hex(), m.body_sha256_hex) << seq;
      ASSERT_EQ(d.body_octets(), m.body.size()) << seq;
    }
  }
}

TEST(MessageFactory, TemplateHashesAreTheBodysSha256) {
  MessageFactoryConfig c = base_config();
  c.size = size("uniform:500-9000");
  const MessageFactory f(c);
  ASSERT_EQ(f.template_count(), 64u);
  std::set<std::string> distinct;
  for (std::size_t i = 0; i < f.template_count(); ++i) {
    ASSERT_EQ(f.template_sha256_hex(i), evp_sha256_hex(f.template_body(i))) << i;
    distinct.insert(std::string(f.template_sha256_hex(i)));
  }
  EXPECT_EQ(distinct.size(), f.template_count());  // every template is its own text
}

TEST(MessageFactory, BodiesAreShortCrlfLinesWithoutLeadingDots) {
  MessageFactoryConfig c = base_config();
  c.size = size("uniform:400-30K");
  c.max_templates = 256;
  const MessageFactory f(c);
  std::size_t lines = 0;
  std::size_t empty = 0;
  std::set<std::size_t> lengths;
  for (std::size_t i = 0; i < f.template_count(); ++i) {
    const std::string_view body = f.template_body(i);
    ASSERT_GE(body.size(), 2u);
    ASSERT_EQ(body.substr(body.size() - 2), "\r\n") << i;
    std::size_t pos = 0;
    while (pos < body.size()) {
      const std::size_t eol = body.find("\r\n", pos);
      ASSERT_NE(eol, std::string_view::npos);
      const std::string_view line = body.substr(pos, eol - pos);
      ASSERT_LE(line.size(), 76u) << line;
      ASSERT_EQ(line.find_first_of("\r\n"), std::string_view::npos) << "bare CR or LF";
      if (!line.empty()) {
        ASSERT_NE(line[0], '.') << line;
        ASSERT_NE(line[0], ' ') << line;
        ASSERT_NE(line.back(), ' ') << line;
        ASSERT_FALSE(line.starts_with("From ")) << line;
      } else {
        ++empty;
      }
      for (const char ch : line)
        ASSERT_TRUE(ch >= 32 && ch <= 126) << int(ch);
      lengths.insert(line.size());
      ++lines;
      pos = eol + 2;
    }
  }
  // Text, not one repeated line: paragraph breaks and a spread of line lengths.
  EXPECT_GT(empty, lines / 20);
  EXPECT_GT(lengths.size(), 30u);
}

// ---- Sizes -----------------------------------------------------------------------------------

TEST(MessageFactory, FixedSizeIsExact) {
  for (const std::string_view spec : {"1K", "4K", "1000", "64K"}) {
    MessageFactoryConfig c = base_config();
    c.size = size(spec);
    c.recipients = rcpts("uniform:1-8");  // header content varies; its length must not
    c.to_domains = {{"a.test", 1}, {"a-much-longer-domain-name.example.test", 1}};
    const MessageFactory f(c);
    MessageState st = f.new_state();
    for (std::uint64_t seq = 0; seq < 500; ++seq) {
      const Message m = f.make(seq * 7919, st);
      ASSERT_EQ(m.total_octets, c.size.a) << spec << " seq " << seq;
      ASSERT_EQ(m.header.size() + m.body.size(), c.size.a);
    }
  }
}

TEST(MessageFactory, SmallestMessageIsHeaderAndOneEmptyLine) {
  MessageFactoryConfig c = base_config();
  const std::uint64_t min = MessageFactory(c).min_message_bytes();
  c.size.a = min;
  const MessageFactory f(c);
  MessageState st = f.new_state();
  const Message m = f.make(3, st);
  EXPECT_EQ(m.total_octets, min);
  EXPECT_EQ(m.body, "\r\n");
}

TEST(MessageFactory, UniformSizesStayInBounds) {
  MessageFactoryConfig c = base_config();
  c.size = size("uniform:1K-64K");
  c.max_templates = 1024;
  const MessageFactory f(c);
  ASSERT_EQ(f.template_count(), 1024u);
  std::uint64_t lo = UINT64_MAX;
  std::uint64_t hi = 0;
  double sum = 0;
  for (std::size_t i = 0; i < f.template_count(); ++i) {
    const std::uint64_t total = f.max_header_bytes() + f.template_body(i).size();
    lo = std::min(lo, total);
    hi = std::max(hi, total);
    sum += double(total);
  }
  EXPECT_GE(lo, 1024u);
  EXPECT_LE(hi, 65536u);
  const double span = 65536 - 1024;
  EXPECT_LT(double(lo), 1024 + 0.01 * span);
  EXPECT_GT(double(hi), 65536 - 0.01 * span);
  EXPECT_NEAR(sum / 1024, (1024 + 65536) / 2.0, 0.05 * (1024 + 65536) / 2.0);
  MessageState st = f.new_state();
  for (std::uint64_t seq = 0; seq < 5000; ++seq) {
    const Message m = f.make(seq, st);
    ASSERT_GE(m.total_octets, 1024u);
    ASSERT_LE(m.total_octets, 65536u);
  }
}

TEST(MessageFactory, LognormalMedianAndSpreadOverManyMessages) {
  MessageFactoryConfig c = base_config();
  c.size = size("lognormal:4K,1.0");
  c.max_templates = 8000;  // the median of n draws is off by ~1.25 sigma/sqrt(n): 1.4%
  const MessageFactory f(c);
  ASSERT_EQ(f.template_count(), 8000u);
  MessageState st = f.new_state();
  constexpr int kMessages = 100000;
  std::vector<std::uint64_t> totals(kMessages);
  for (int i = 0; i < kMessages; ++i)
    totals[i] = f.make(std::uint64_t(i), st).total_octets;
  const double low = 4096 * std::exp(-1.0);
  const double high = 4096 * std::exp(1.0);
  const auto below = std::count_if(totals.begin(), totals.end(), [&](auto x) { return x < low; });
  const auto above = std::count_if(totals.begin(), totals.end(), [&](auto x) { return x > high; });
  std::nth_element(totals.begin(), totals.begin() + kMessages / 2, totals.end());
  EXPECT_NEAR(double(totals[kMessages / 2]), 4096.0, 0.05 * 4096);
  EXPECT_NEAR(double(below) / kMessages, 0.1587, 0.02);  // sigma is honoured, not just the median
  EXPECT_NEAR(double(above) / kMessages, 0.1587, 0.02);
}

TEST(MessageFactory, FileSizesAreDrawnFromTheList) {
  MessageFactoryConfig c = base_config();
  c.size.kind = SizeSpec::Kind::file;
  c.size.path = "sizes.txt";
  c.size.sizes = {1000, 2000, 3000};
  c.max_templates = 1024;
  const MessageFactory f(c);
  MessageState st = f.new_state();
  std::map<std::uint64_t, int> seen;
  constexpr int kMessages = 30000;
  for (int i = 0; i < kMessages; ++i)
    ++seen[f.make(std::uint64_t(i), st).total_octets];
  ASSERT_EQ(seen.size(), 3u);
  for (const std::uint64_t s : {1000u, 2000u, 3000u}) {
    EXPECT_NEAR(seen[s] / double(kMessages), 1.0 / 3, 0.04) << s;
  }
}

TEST(MessageFactory, PoolRespectsCountAndMemoryCaps) {
  MessageFactoryConfig c = base_config();
  c.size = size("64K");
  c.max_templates = 1024;
  c.max_pool_bytes = 1 << 20;
  const MessageFactory big(c);
  const std::uint64_t body = 65536 - big.max_header_bytes();
  EXPECT_EQ(big.template_count(), (1u << 20) / body);  // 16: fewer templates when large
  EXPECT_EQ(big.pool_bytes(), big.template_count() * body);
  EXPECT_LE(big.pool_bytes(), 1u << 20);

  c.size = size("1K");
  c.max_templates = 10;
  const MessageFactory small(c);
  EXPECT_EQ(small.template_count(), 10u);
  EXPECT_EQ(small.pool_bytes(), 10 * (1024 - small.max_header_bytes()));

  // Lognormal draws above the cap are clamped into it, never refused.
  c.size = size("lognormal:256K,2");
  c.max_templates = 1024;
  c.max_pool_bytes = 4 << 20;
  const MessageFactory wide(c);
  EXPECT_GE(wide.template_count(), 1u);
  EXPECT_LE(wide.pool_bytes(), 4u << 20);
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < wide.template_count(); ++i)
    sum += wide.template_body(i).size();
  EXPECT_EQ(sum, wide.pool_bytes());
}

// ---- Recipients ------------------------------------------------------------------------------

TEST(MessageFactory, RecipientCountFollowsTheSpec) {
  MessageFactoryConfig c = base_config();
  c.recipients = rcpts("3");
  {
    const MessageFactory f(c);
    MessageState st = f.new_state();
    for (std::uint64_t seq = 0; seq < 1000; ++seq)
      ASSERT_EQ(f.make(seq, st).recipients.size(), 3u);
  }
  c.recipients = rcpts("uniform:1-5");
  const MessageFactory f(c);
  MessageState st = f.new_state();
  std::map<std::size_t, int> counts;
  const std::regex addr_re(R"(^user\d{1,6}@example\.test$)");
  constexpr int kMessages = 20000;
  for (int i = 0; i < kMessages; ++i) {
    const Message m = f.make(std::uint64_t(i), st);
    ++counts[m.recipients.size()];
    std::set<std::string_view> distinct(m.recipients.begin(), m.recipients.end());
    ASSERT_EQ(distinct.size(), m.recipients.size()) << "duplicate recipient in one message";
    if (i < 200) {
      for (const auto r : m.recipients)
        ASSERT_TRUE(std::regex_match(std::string(r), addr_re)) << r;
    }
  }
  ASSERT_EQ(counts.size(), 5u);
  for (const auto& [n, k] : counts) {
    EXPECT_GE(n, 1u);
    EXPECT_LE(n, 5u);
    EXPECT_NEAR(k / double(kMessages), 0.2, 0.015) << n;
  }
}

TEST(MessageFactory, ManyRecipientsAllDistinct) {
  MessageFactoryConfig c = base_config();
  c.recipients = rcpts("1000");
  c.to_domains = {{"a.test", 1}, {"b.test", 1}};
  const MessageFactory f(c);
  MessageState st = f.new_state();
  const Message m = f.make(999, st);
  ASSERT_EQ(m.recipients.size(), 1000u);
  std::set<std::string_view> distinct(m.recipients.begin(), m.recipients.end());
  EXPECT_EQ(distinct.size(), 1000u);
  read_header(m.header);
}

TEST(MessageFactory, DomainWeightsWithinTwoPercent) {
  MessageFactoryConfig c = base_config();
  c.recipients = rcpts("uniform:1-5");
  c.to_domains = {{"a.test", 3}, {"b.test", 1}, {"c.test", 6}};
  const MessageFactory f(c);
  MessageState st = f.new_state();
  std::map<std::string, std::uint64_t> per_domain;
  std::uint64_t total = 0;
  for (std::uint64_t seq = 0; seq < 100000; ++seq) {
    for (const auto r : f.make(seq, st).recipients) {
      ++per_domain[std::string(r.substr(r.find('@') + 1))];
      ++total;
    }
  }
  ASSERT_EQ(per_domain.size(), 3u);
  const std::pair<const char*, double> want[] = {{"a.test", 0.3}, {"b.test", 0.1}, {"c.test", 0.6}};
  for (const auto& [d, share] : want) {
    const double got = double(per_domain[d]) / double(total);
    EXPECT_NEAR(got, share, 0.02 * share) << d << " over " << total << " recipients";
  }
}

TEST(MessageFactory, RecipientSpecsParse) {
  RecipientCount r;
  std::string why;
  ASSERT_TRUE(parse_recipient_count("1", r, &why));
  EXPECT_EQ(r, (RecipientCount{1, 1}));
  ASSERT_TRUE(parse_recipient_count("uniform:1-5", r, &why));
  EXPECT_EQ(r, (RecipientCount{1, 5}));
  EXPECT_EQ(format_recipient_count(r), "uniform:1-5");
  EXPECT_EQ(format_recipient_count({7, 7}), "7");
  ASSERT_TRUE(parse_recipient_count("1000", r, &why));
  const std::string kNot = " is not a recipient count (a whole number from 1 to 1000)";
  const std::pair<std::string_view, std::string> bad[] = {
      {"0", "'0'" + kNot},
      {"1001", "'1001'" + kNot},
      {"", "''" + kNot},
      {"x", "'x'" + kNot},
      {"-1", "'-1'" + kNot},
      {"uniform:1", "'uniform:1': write uniform:LOW-HIGH, e.g. uniform:1-5"},
      {"uniform:0-5", "in 'uniform:0-5': '0'" + kNot},
      {"uniform:1-x", "in 'uniform:1-x': 'x'" + kNot},
      {"uniform:5-1", "'uniform:5-1': the low bound is above the high bound"},
  };
  for (const auto& [text, want] : bad) {
    EXPECT_FALSE(parse_recipient_count(text, r, &why)) << text;
    EXPECT_EQ(why, want) << text;
  }
}

TEST(MessageFactory, DomainWeightsParse) {
  DomainWeight d;
  std::string why;
  ASSERT_TRUE(parse_domain_weight("Example.TEST:3", d, &why)) << why;
  EXPECT_EQ(d, (DomainWeight{"example.test", 3}));
  EXPECT_EQ(format_domain_weight(d), "example.test:3");
  ASSERT_TRUE(parse_domain_weight("mx.example.test", d, &why)) << why;
  EXPECT_EQ(d, (DomainWeight{"mx.example.test", 1}));
  const std::pair<std::string, std::string> bad[] = {
      {"", "empty domain (write DOMAIN or DOMAIN:WEIGHT, e.g. example.test:3)"},
      {":3", "empty domain (write DOMAIN or DOMAIN:WEIGHT, e.g. example.test:3)"},
      {"a.test:0", "'a.test:0': the weight '0' is not a whole number from 1 to 1000000"},
      {"a.test:x", "'a.test:x': the weight 'x' is not a whole number from 1 to 1000000"},
      {"a.test:", "'a.test:': the weight '' is not a whole number from 1 to 1000000"},
      {"a.test:1000001",
       "'a.test:1000001': the weight '1000001' is not a whole number from 1 "
       "to 1000000"},
      {"exa mple.test", "'exa mple.test' is not a domain name"},
      {"a..test:2", "'a..test' is not a domain name"},
      {"[127.0.0.1]", "'[127.0.0.1]' is not a domain name"},
      {std::string(240, 'a') + ".test",
       "'" + std::string(240, 'a') + ".test' is not a domain name"},
  };
  for (const auto& [text, want] : bad) {
    EXPECT_FALSE(parse_domain_weight(text, d, &why)) << text;
    EXPECT_EQ(why, want) << text;
  }
  // A valid domain too long for "user999999@" + domain to be a mailbox (254 octets).
  std::string longest;
  for (int i = 0; i < 4; ++i)
    longest += std::string(59, 'd') + ".";
  longest += "test";  // 244 octets, labels under 64
  EXPECT_FALSE(parse_domain_weight(longest, d, &why));
  EXPECT_EQ(why, "'" + longest + "' is too long for a recipient address");
}

// ---- Hot path --------------------------------------------------------------------------------

TEST(MessageFactory, MakeDoesNotAllocate) {
  MessageFactoryConfig c = base_config();
  c.fixed_date.reset();  // the wall-clock Date path, refreshed each second, is the hot one
  c.recipients = rcpts("uniform:1-5");
  c.to_domains = {{"a.test", 1}, {"b.test", 2}, {"c.test", 3}};
  c.size = size("uniform:1K-8K");
  const MessageFactory f(c);
  MessageState st = f.new_state();
  std::uint64_t octets = 0;
  for (std::uint64_t seq = 0; seq < 10; ++seq)
    octets += f.make(seq, st).total_octets;  // warm
  testing::CountAllocations count;
  std::size_t recipients = 0;
  for (std::uint64_t seq = 10; seq < 10010; ++seq) {
    const Message m = f.make(seq, st);
    octets += m.total_octets;
    recipients += m.recipients.size();
  }
  EXPECT_EQ(count.count(), 0u);
  EXPECT_GT(octets, 10000u * 1024);
  EXPECT_GT(recipients, 10000u);
}

TEST(MessageFactory, IdsDifferAndBodiesAreSharedNotCopied) {
  MessageFactoryConfig c = base_config();
  c.max_templates = 4;
  const MessageFactory f(c);
  MessageState a = f.new_state();
  MessageState b = f.new_state();
  std::set<std::string> ids;
  std::set<std::uint32_t> used;
  for (std::uint64_t seq = 0; seq < 1000; ++seq) {
    const Message m = f.make(seq, seq % 2 ? a : b);
    ids.insert(std::string(m.id));
    ASSERT_LT(m.template_index, f.template_count());
    // The body is the pool's bytes themselves, whichever state asked.
    ASSERT_EQ(m.body.data(), f.template_body(m.template_index).data());
    ASSERT_EQ(m.body.size(), f.template_body(m.template_index).size());
    ASSERT_EQ(m.body_sha256_hex.data(), f.template_sha256_hex(m.template_index).data());
    used.insert(m.template_index);
  }
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_EQ(used.size(), 4u);
  // Two live messages from two states: separate header buffers, same template when it is.
  const Message m1 = f.make(1, a);
  const Message m2 = f.make(1, b);
  EXPECT_NE(m1.header.data(), m2.header.data());
  EXPECT_EQ(m1.header, m2.header);
  EXPECT_EQ(m1.body.data(), m2.body.data());
}

TEST(MessageFactory, SameSeedSameMessages) {
  MessageFactoryConfig c = base_config();
  c.size = size("uniform:1K-16K");
  c.recipients = rcpts("uniform:1-4");
  c.to_domains = {{"a.test", 1}, {"b.test", 1}};
  c.seed = 77;
  const MessageFactory f1(c);
  const MessageFactory f2(c);
  ASSERT_EQ(f1.template_count(), f2.template_count());
  for (std::size_t i = 0; i < f1.template_count(); ++i) {
    ASSERT_EQ(f1.template_body(i), f2.template_body(i));
    ASSERT_EQ(f1.template_sha256_hex(i), f2.template_sha256_hex(i));
  }
  MessageState s1 = f1.new_state();
  MessageState s2 = f2.new_state();
  // Order does not matter: a message is a function of its seq.
  for (std::uint64_t seq = 0; seq < 200; ++seq) {
    const Message a = f1.make(seq, s1);
    const std::string ha(a.header);
    const std::vector<std::string> ra(a.recipients.begin(), a.recipients.end());
    const Message b = f2.make(199 - seq, s2);
    (void)b;
    const Message b2 = f2.make(seq, s2);
    ASSERT_EQ(ha, std::string(b2.header));
    ASSERT_EQ(ra, std::vector<std::string>(b2.recipients.begin(), b2.recipients.end()));
    ASSERT_EQ(a.template_index, b2.template_index);
  }
  c.seed = 78;
  const MessageFactory other(c);
  int same = 0;
  for (std::size_t i = 0; i < std::min(other.template_count(), f1.template_count()); ++i) {
    same += other.template_sha256_hex(i) == f1.template_sha256_hex(i) ? 1 : 0;
  }
  EXPECT_EQ(same, 0);
}

TEST(MessageFactory, ThreadsShareOneFactory) {
  MessageFactoryConfig c = base_config();
  c.recipients = rcpts("uniform:1-3");
  const MessageFactory f(c);
  constexpr int kThreads = 4;
  constexpr std::uint64_t kPer = 2000;
  std::vector<std::vector<std::string>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      MessageState st = f.new_state();
      for (std::uint64_t i = 0; i < kPer; ++i) {
        const Message m = f.make(std::uint64_t(t) * kPer + i, st);
        got[t].push_back(std::string(m.header) + std::string(m.body_sha256_hex));
      }
    });
  }
  for (auto& th : threads)
    th.join();
  MessageState st = f.new_state();
  for (int t = 0; t < kThreads; ++t) {
    for (std::uint64_t i = 0; i < kPer; ++i) {
      const Message m = f.make(std::uint64_t(t) * kPer + i, st);
      ASSERT_EQ(got[t][i], std::string(m.header) + std::string(m.body_sha256_hex));
    }
  }
}

TEST(MessageFactory, StateSurvivesAMove) {
  const MessageFactory f(base_config());
  MessageState a = f.new_state();
  MessageState b = std::move(a);
  std::vector<MessageState> states;
  states.push_back(std::move(b));
  const Message m = f.make(5, states[0]);
  EXPECT_EQ(m.id, std::string(kRun) + "-5");
  read_header(m.header);
}

// ---- Refusals --------------------------------------------------------------------------------

std::string refusal(const MessageFactoryConfig& c) {
  try {
    MessageFactory f(c);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

TEST(MessageFactory, RefusesBadSettingsWithTheReason) {
  const MessageFactoryConfig ok = base_config();
  const MessageFactory probe(ok);
  const std::string h = std::to_string(probe.max_header_bytes());
  const std::string min = std::to_string(probe.min_message_bytes());
  const std::string smallest = "the smallest message of " + min + " bytes (the " + h +
                               "-byte header block and one empty "
                               "body line)";

  MessageFactoryConfig c = ok;
  c.size = size("300");
  EXPECT_EQ(refusal(c), "size '300': sizes start at 300 bytes, below " + smallest);
  c.size = size("uniform:100-64K");
  EXPECT_EQ(refusal(c), "size 'uniform:100-64K': sizes start at 100 bytes, below " + smallest);
  c.size = size("lognormal:300,1");
  EXPECT_EQ(refusal(c), "size 'lognormal:300,1': the median 300 is below " + smallest);
  c.size = SizeSpec{};
  c.size.kind = SizeSpec::Kind::file;
  c.size.path = "s.txt";
  c.size.sizes = {4096, 200};
  EXPECT_EQ(refusal(c), "size 'file:s.txt': sizes start at 200 bytes, below " + smallest);
  c.size = size("4M");
  c.max_pool_bytes = 1 << 20;
  EXPECT_EQ(refusal(c),
            "size '4M': sizes reach 4194304 bytes, more than the body template pool holds "
            "(1048576 bytes of body)");
  c = ok;
  c.max_pool_bytes = 1;
  EXPECT_EQ(refusal(c), "max pool bytes 1: too small for one message body");
  c = ok;
  c.max_templates = 0;
  EXPECT_EQ(refusal(c), "max templates: at least 1");

  c = ok;
  c.run_id = "";
  EXPECT_EQ(refusal(c), "run id: empty (e.g. r20261130T0012-ab12)");
  c.run_id = "run 1";
  EXPECT_EQ(refusal(c), "run id 'run 1': only letters, digits, '-', '_' and '.' are allowed");
  c.run_id = "run/1";
  EXPECT_EQ(refusal(c), "run id 'run/1': only letters, digits, '-', '_' and '.' are allowed");
  c.run_id = ".run";
  EXPECT_EQ(refusal(c), "run id '.run': may not start with '.' or hold '..'");
  c.run_id = "run..1";
  EXPECT_EQ(refusal(c), "run id 'run..1': may not start with '.' or hold '..'");
  c.run_id = std::string(65, 'r');
  EXPECT_EQ(refusal(c), "run id '" + c.run_id + "': longer than 64 characters");

  c = ok;
  for (const std::string from : {"nobody", "a@", "<a@b.test>", "a b@c.test", "a@b..test", "<>"}) {
    c.from = from;
    EXPECT_EQ(
        refusal(c),
        "from '" + from + "': not an address (write local@domain, or \"\" for the null sender)");
  }

  c = ok;
  c.recipients = {0, 3};
  EXPECT_EQ(refusal(c), "recipients 'uniform:0-3': from 1 to 1000, low bound first");
  c.recipients = {5, 2};
  EXPECT_EQ(refusal(c), "recipients 'uniform:5-2': from 1 to 1000, low bound first");
  c.recipients = {1001, 1001};
  EXPECT_EQ(refusal(c), "recipients '1001': from 1 to 1000, low bound first");

  c = ok;
  c.to_domains.clear();
  EXPECT_EQ(refusal(c), "to-domain: at least one domain is needed");
  c.to_domains = {{"a.test", 1}, {"b.test", 2}, {"a.test", 3}};
  EXPECT_EQ(refusal(c), "to-domain 'a.test': listed twice");
  c.to_domains = {{"A.test", 1}};
  EXPECT_EQ(refusal(c), "to-domain 'A.test': not lower case");
  c.to_domains = {{"bad domain", 1}};
  EXPECT_EQ(refusal(c), "to-domain: 'bad domain' is not a domain name");
  c.to_domains = {{"a.test", 0}};
  EXPECT_EQ(refusal(c), "to-domain 'a.test:0': weight from 1 to 1000000");
}

TEST(MessageFactory, NullSenderKeepsAValidHeader) {
  MessageFactoryConfig c = base_config();
  c.from = "";
  c.run_id = "run.7_x";  // dots are allowed inside the run id
  const MessageFactory f(c);
  MessageState st = f.new_state();
  const Message m = f.make(12, st);
  EXPECT_EQ(m.sender, "");
  const auto fields = read_header(m.header);
  EXPECT_EQ(one(fields, "From"), "MAILER-DAEMON@ringmta.test");
  EXPECT_EQ(one(fields, "Message-ID"), "<run.7_x-12@ringmta.test>");
  EXPECT_EQ(one(fields, "X-Ringmta-Id"), "run.7_x-12");
  EXPECT_EQ(m.header.size(), f.max_header_bytes());
}

TEST(MessageFactory, AcceptsOtherSenders) {
  MessageFactoryConfig c = base_config();
  c.from = "bounce+load@mail.Sender.test";
  const MessageFactory f(c);
  MessageState st = f.new_state();
  const Message m = f.make(9, st);
  EXPECT_EQ(m.sender, "bounce+load@mail.Sender.test");
  const auto fields = read_header(m.header);
  EXPECT_EQ(one(fields, "From"), "bounce+load@mail.Sender.test");
  EXPECT_EQ(one(fields, "Message-ID"),
            std::string("<") + std::string(kRun) + "-9@mail.Sender.test>");
}

}  // namespace
}  // namespace ringmta::loadgen
