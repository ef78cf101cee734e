// The message factory: config checks, the body pool (text lines from a word bank, hashed once)
// and the allocation-free make(); see message_factory.hpp.
#include "loadgen/message_factory.hpp"

#include <openssl/evp.h>
#include <time.h>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cstring>
#include <iterator>
#include <limits>
#include <stdexcept>

#include "core/smtp/address.hpp"

namespace ringmta::loadgen {
namespace {

// ---- Text pieces -----------------------------------------------------------------------------

constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kDateName = "Date: ";
constexpr std::string_view kFromName = "From: ";
constexpr std::string_view kToName = "To: ";
constexpr std::string_view kUndisclosed = "undisclosed-recipients:;";  // RFC 5322 3.4 group
constexpr std::string_view kMessageIdName = "Message-ID: <";
constexpr std::string_view kSubjectName = "Subject: ";
constexpr std::string_view kSubjectSeq = " #";
constexpr std::string_view kMimeBlock =
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 7bit\r\n";
constexpr std::string_view kIdName = "X-Ringmta-Id: ";
constexpr std::string_view kPadName = "X-Ringmta-Pad: ";
constexpr std::size_t kMinPadHeader = kPadName.size() + 1 + kCrlf.size();  // one filler char
constexpr std::string_view kNullSenderFrom = "MAILER-DAEMON@ringmta.test";
constexpr std::string_view kLocalPrefix = "user";
constexpr std::uint64_t kLocalRange = 1'000'000;  // local parts user0 .. user999999
constexpr std::size_t kMaxLocalDigits = 6;
constexpr std::size_t kMaxSeqDigits = 20;  // 2^64 - 1
// RFC 5322 2.1.1: lines SHOULD be at most 78 characters; we fold To: and the pad there.
constexpr std::size_t kFoldColumn = 78;
// RFC 5321 4.5.3.1.3: a path is at most 256 octets with its angle brackets.
constexpr std::size_t kMaxMailbox = smtp::kMaxPath - 2;

constexpr std::string_view kSubjects[] = {
    "Quarterly report draft",       "Re: meeting notes",
    "Invoice for November",         "Your order has shipped",
    "Weekly status update",         "Fwd: travel itinerary",
    "Re: question about the build", "Reminder: review due Friday",
    "Lunch on Thursday?",           "Release checklist",
    "Re: Re: budget figures",       "Welcome aboard",
    "Password expiry notice",       "Minutes of the last call",
    "Photos from the weekend",      "Re: support ticket",
};

constexpr std::size_t max_subject_bytes() {
  std::size_t n = 0;
  for (const auto s : kSubjects)
    n = std::max(n, s.size());
  return n;
}

// Body text: common words, lower case, none of them "from" (an mbox "From " line).
constexpr std::string_view kWords[] = {
    "the",      "of",       "and",      "to",        "in",       "is",      "that",     "for",
    "it",       "as",       "was",      "with",      "be",       "by",      "on",       "not",
    "he",       "this",     "are",      "or",        "his",      "at",      "which",    "but",
    "have",     "an",       "had",      "they",      "you",      "were",    "their",    "one",
    "all",      "we",       "can",      "her",       "has",      "there",   "been",     "if",
    "more",     "when",     "will",     "would",     "who",      "so",      "no",       "report",
    "meeting",  "schedule", "delivery", "server",    "message",  "queue",   "customer", "account",
    "project",  "review",   "morning",  "afternoon", "question", "answer",  "number",   "system",
    "network",  "figures",  "budget",   "quarter",   "release",  "version", "please",   "thanks",
    "attached", "document", "update",   "status",    "team",     "weekly",  "draft",    "summary",
    "details",  "invoice",  "payment",  "order",     "shipping", "address", "contact",  "support",
    "ticket",   "issue",    "problem",  "solution",  "change",   "request", "approval", "manager",
    "office",   "travel",   "hotel",    "flight",    "agenda",   "minutes", "notes",    "follow",
    "up",       "tomorrow", "today",    "yesterday", "friday",   "monday",  "again",    "soon",
    "later",    "before",   "after",    "about",     "because",  "should",  "could",    "might",
    "also",     "only",     "other",    "some",      "such",     "into",    "time",     "year",
};

std::string in_quotes(std::string_view s) {
  std::string r = "'";
  r.append(s);
  r += '\'';
  return r;
}

void set_why(std::string* why, std::string text) {
  if (why != nullptr) *why = std::move(text);
}

constexpr bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Parses 1 to 9 decimal digits, the whole view.
bool parse_uint(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 9) return false;
  std::uint64_t n = 0;
  for (const char c : s) {
    if (!is_digit(c)) return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = n;
  return true;
}

// Appends to a buffer sized in advance (the factory's header bound); no checks on the hot path
// beyond the debug assertion in make().
struct Cursor {
  char* p;
  void put(std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  }
  void put(char c) { *p++ = c; }
  void put_u64(std::uint64_t v) { p = std::to_chars(p, p + kMaxSeqDigits, v).ptr; }
};

// ---- Body text -------------------------------------------------------------------------------

// Lines of running text (no CRLF), each 1 to 76 characters, starting with a letter and ending
// without a space: realistic line lengths, never a leading '.', the same bytes for DATA and BDAT.
class LineBank {
 public:
  static constexpr std::size_t kLines = 2048;
  static constexpr std::size_t kMaxLine = 76;  // RFC 2045 6.7's soft limit, kept by mail clients

  explicit LineBank(Rng& rng) {
    bool sentence_start = true;
    std::string line;
    for (std::size_t n = 0; n < kLines; ++n) {
      line.clear();
      const std::size_t target = 48 + rng.below(kMaxLine - 48 + 1);
      for (;;) {
        std::string word(kWords[rng.below(std::size(kWords))]);
        if (sentence_start) word[0] = static_cast<char>(word[0] - 'a' + 'A');
        const std::uint64_t mark = rng.below(16);
        sentence_start = mark < 2;
        if (sentence_start)
          word += '.';
        else if (mark == 2)
          word += ',';
        const std::size_t need = word.size() + (line.empty() ? 0 : 1);
        if (line.size() + need > target) {
          // The word is dropped; the next line starts a sentence only if this one ended one.
          sentence_start = !line.empty() && line.back() == '.';
          break;
        }
        if (!line.empty()) line += ' ';
        line += word;
      }
      offsets_.push_back(text_.size());
      text_ += line;
    }
    offsets_.push_back(text_.size());
  }

  std::string_view line(std::size_t i) const {
    return std::string_view(text_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
  }

  // Writes exactly n (<= kMaxLine) characters of text: two bank lines run together, cut, and a
  // trailing space (the cut fell between words) turned into a full stop.
  void write_exact(std::size_t n, Rng& rng, char* out) const {
    const std::size_t i = rng.below(kLines - 1);
    const std::string_view a = line(i);
    std::size_t k = std::min(n, a.size());
    std::memcpy(out, a.data(), k);
    if (k < n) {
      out[k++] = ' ';
      const std::string_view b = line(i + 1);
      std::size_t m = std::min(n - k, b.size());
      std::memcpy(out + k, b.data(), m);
      k += m;
      while (k < n)
        out[k++] = 'x';  // unreachable: two bank lines exceed 76 characters
    }
    if (n > 0 && out[n - 1] == ' ') out[n - 1] = '.';
  }

 private:
  std::string text_;
  std::vector<std::size_t> offsets_;
};

// Fills n bytes (n == 0 or n >= 2) with CRLF lines of bank text in paragraphs of 3 to 8 lines.
// Every line is at most 76 characters and the last one ends with CRLF.
void fill_body(char* out, std::size_t n, const LineBank& bank, Rng& rng) {
  std::size_t r = n;
  std::size_t lines_in_paragraph = 0;
  std::size_t paragraph = 3 + rng.below(6);
  auto crlf = [&] {
    out[0] = '\r';
    out[1] = '\n';
    out += 2;
    r -= 2;
  };
  while (r > 0) {
    if (r <= LineBank::kMaxLine + 2) {  // the last line: exactly what is left
      bank.write_exact(r - 2, rng, out);
      out += r - 2;
      r = 2;
      crlf();
      break;
    }
    const std::string_view line = bank.line(rng.below(LineBank::kLines));
    // A paragraph break, or one to keep from leaving a single byte (no line is 1 byte long).
    if (lines_in_paragraph >= paragraph || r - (line.size() + 2) == 1) {
      crlf();
      lines_in_paragraph = 0;
      paragraph = 3 + rng.below(6);
      continue;
    }
    std::memcpy(out, line.data(), line.size());
    out += line.size();
    r -= line.size();
    crlf();
    ++lines_in_paragraph;
  }
}

void sha256_hex(std::string_view data, char* hex) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1 || len != 32) {
    throw std::runtime_error("SHA-256 (EVP_Digest) failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned int k = 0; k < 32; ++k) {
    hex[2 * k] = kHex[md[k] >> 4];
    hex[2 * k + 1] = kHex[md[k] & 15];
  }
}

// ---- Dates -----------------------------------------------------------------------------------



std::int64_t wall_clock_seconds() {
  // The coarse clock is a vDSO read without a syscall; a second's resolution is all we need.
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec;
}

}  // namespace


// ---- Settings --------------------------------------------------------------------------------

bool parse_recipient_count(std::string_view text, RecipientCount& out, std::string* why) {
  const auto bad_count = [&](std::string_view n) {
    set_why(why, (n == text ? "" : "in " + in_quotes(text) + ": ") + in_quotes(n) +
                     " is not a recipient count (a whole number from 1 to 1000)");
    return false;
  };
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
  constexpr std::string_view kUniform = "uniform:";
  if (text.substr(0, kUniform.size()) == kUniform) {
    const std::string_view args = text.substr(kUniform.size());
    const std::size_t dash = args.find('-');
    if (dash == std::string_view::npos) {
      set_why(why, in_quotes(text) + ": write uniform:LOW-HIGH, e.g. uniform:1-5");
      return false;
    }
    if (!parse_uint(args.substr(0, dash), lo) || lo < 1 || lo > kMaxRecipients) {
      return bad_count(args.substr(0, dash));
    }
    if (!parse_uint(args.substr(dash + 1), hi) || hi < 1 || hi > kMaxRecipients) {
      return bad_count(args.substr(dash + 1));
    }
    if (lo > hi) {
      set_why(why, in_quotes(text) + ": the low bound is above the high bound");
      return false;
    }
  } else {
    if (!parse_uint(text, lo) || lo < 1 || lo > kMaxRecipients) return bad_count(text);
    hi = lo;
  }
  out = RecipientCount{static_cast<std::uint32_t>(lo), static_cast<std::uint32_t>(hi)};
  return true;
}

std::string format_recipient_count(const RecipientCount& c) {
  if (c.min == c.max) return std::to_string(c.min);
  return "uniform:" + std::to_string(c.min) + "-" + std::to_string(c.max);
}

bool parse_domain_weight(std::string_view text, DomainWeight& out, std::string* why) {
  std::string_view domain = text;
  std::uint64_t weight = 1;
  const std::size_t colon = text.rfind(':');
  if (colon != std::string_view::npos) {
    domain = text.substr(0, colon);
    const std::string_view w = text.substr(colon + 1);
    if (!parse_uint(w, weight) || weight < 1 || weight > 1'000'000) {
      set_why(why, in_quotes(text) + ": the weight " + in_quotes(w) +
                       " is not a whole number from 1 to 1000000");
      return false;
    }
  }
  if (domain.empty()) {
    set_why(why, "empty domain (write DOMAIN or DOMAIN:WEIGHT, e.g. example.test:3)");
    return false;
  }
  if (!smtp::is_valid_domain(domain, /*allow_utf8=*/false)) {
    set_why(why, in_quotes(domain) + " is not a domain name");
    return false;
  }
  // The longest local part we make, "user999999@", must leave a valid mailbox.
  if (kLocalPrefix.size() + kMaxLocalDigits + 1 + domain.size() > kMaxMailbox) {
    set_why(why, in_quotes(domain) + " is too long for a recipient address");
    return false;
  }
  out.domain.assign(domain);
  for (char& c : out.domain)
    c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
  out.weight = static_cast<std::uint32_t>(weight);
  return true;
}

std::string format_domain_weight(const DomainWeight& d) {
  return d.domain + ":" + std::to_string(d.weight);
}

// ---- Factory ---------------------------------------------------------------------------------

MessageFactory::MessageFactory(MessageFactoryConfig config) : config_(std::move(config)) {
  check_config();
  compute_header_bytes();
  build_pool();
}

void MessageFactory::check_config() {
  const auto fail = [](std::string why) { throw std::invalid_argument(std::move(why)); };
  const std::string& run = config_.run_id;
  if (run.empty()) fail("run id: empty (e.g. r20261130T0012-ab12)");
  if (run.size() > kMaxRunIdBytes) {
    fail("run id " + in_quotes(run) + ": longer than " + std::to_string(kMaxRunIdBytes) +
         " characters");
  }
  for (const char c : run) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
                    c == '_' || c == '.';
    if (!ok) {
      fail("run id " + in_quotes(run) + ": only letters, digits, '-', '_' and '.' are allowed");
    }
  }
  // "<run>-<seq>" is the Message-ID's left side, an RFC 5322 3.2.3 dot-atom-text.
  if (run.front() == '.' || run.find("..") != std::string::npos) {
    fail("run id " + in_quotes(run) + ": may not start with '.' or hold '..'");
  }

  // The sender goes in MAIL FROM, From: and the Message-ID's right side. The null sender
  // (bounce-like traffic) still needs a From: mailbox and a Message-ID domain.
  if (config_.from.empty()) {
    header_from_ = kNullSenderFrom;
  } else {
    const std::string path = "<" + config_.from + ">";
    smtp::Path parsed;
    const smtp::PathParse pp = smtp::parse_path(path, smtp::PathKind::reverse, parsed);
    if (pp.error != smtp::AddressError::none || pp.consumed != path.size() || parsed.null ||
        parsed.non_ascii || config_.from.find_first_of("<> ") != std::string::npos) {
      fail("from " + in_quotes(config_.from) +
           ": not an address (write local@domain, or \"\" for the null sender)");
    }
    header_from_ = config_.from;
  }
  from_domain_ = header_from_.substr(header_from_.rfind('@') + 1);

  const RecipientCount& rc = config_.recipients;
  if (rc.min < 1 || rc.min > rc.max || rc.max > kMaxRecipients) {
    fail("recipients " + in_quotes(format_recipient_count(rc)) + ": from 1 to " +
         std::to_string(kMaxRecipients) + ", low bound first");
  }

  if (config_.to_domains.empty()) fail("to-domain: at least one domain is needed");
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < config_.to_domains.size(); ++i) {
    const DomainWeight& d = config_.to_domains[i];
    DomainWeight normal;
    std::string why;
    if (!parse_domain_weight(d.domain, normal, &why)) fail("to-domain: " + why);
    if (normal.domain != d.domain) fail("to-domain " + in_quotes(d.domain) + ": not lower case");
    if (d.weight < 1 || d.weight > 1'000'000) {
      fail("to-domain " + in_quotes(format_domain_weight(d)) + ": weight from 1 to 1000000");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (config_.to_domains[j].domain == d.domain) {
        fail("to-domain " + in_quotes(d.domain) + ": listed twice");
      }
    }
    total += d.weight;
    cumulative_weights_.push_back(total);
    max_address_bytes_ =
        std::max(max_address_bytes_, kLocalPrefix.size() + kMaxLocalDigits + 1 + d.domain.size());
  }

  if (config_.max_templates < 1) fail("max templates: at least 1");
}

void MessageFactory::compute_header_bytes() {
  // An upper bound on every header line make() writes, plus the smallest pad header; make()
  // then pads each header block up to exactly this.
  const std::size_t run = config_.run_id.size();
  const std::size_t listed = std::min(config_.recipients.max, kListedRecipients);
  const std::size_t group = config_.recipients.max > kListedRecipients ? 1 : 0;
  constexpr std::size_t kSeparator = 4;  // ",\r\n " at worst
  const std::size_t to = kToName.size() + listed * max_address_bytes_ +
                         (listed - 1 + group) * kSeparator + group * kUndisclosed.size() +
                         kCrlf.size();
  header_bytes_ = kDateName.size() + kDateBytes + kCrlf.size() +           // Date
                  kFromName.size() + header_from_.size() + kCrlf.size() +  // From
                  to +                                                     // To
                  kMessageIdName.size() + run + 1 + kMaxSeqDigits + 1 + from_domain_.size() + 1 +
                  kCrlf.size() +  // Msg-ID
                  kSubjectName.size() + max_subject_bytes() + kSubjectSeq.size() + kMaxSeqDigits +
                  kCrlf.size() +                                             // Subject
                  kMimeBlock.size() +                                        // MIME
                  kIdName.size() + run + 1 + kMaxSeqDigits + kCrlf.size() +  // Id
                  kMinPadHeader +                                            // pad
                  kCrlf.size();                                              // end
}

void MessageFactory::build_pool() {
  const SizeSpec& spec = config_.size;
  const std::uint64_t min_total = min_message_bytes();
  const std::string spec_text = in_quotes(format_size_spec(spec));
  const std::string smallest = "the smallest message of " + std::to_string(min_total) +
                               " bytes (the " + std::to_string(header_bytes_) +
                               "-byte header block and one empty body line)";
  if (spec.kind == SizeSpec::Kind::lognormal) {
    if (spec.a < min_total) {
      throw std::invalid_argument("size " + spec_text + ": the median " + std::to_string(spec.a) +
                                  " is below " + smallest);
    }
  } else if (spec.min_bytes() < min_total) {
    throw std::invalid_argument("size " + spec_text + ": sizes start at " +
                                std::to_string(spec.min_bytes()) + " bytes, below " + smallest);
  }
  // Lognormal draws are clamped into what the pool can hold; the other specs must fit whole.
  const std::uint64_t max_total =
      std::min<std::uint64_t>(kMaxMessageBytes, header_bytes_ + config_.max_pool_bytes);
  if (max_total < min_total) {
    throw std::invalid_argument("max pool bytes " + std::to_string(config_.max_pool_bytes) +
                                ": too small for one message body");
  }
  if (spec.kind != SizeSpec::Kind::lognormal && spec.max_bytes() > max_total) {
    throw std::invalid_argument("size " + spec_text + ": sizes reach " +
                                std::to_string(spec.max_bytes()) +
                                " bytes, more than the body template pool holds (" +
                                std::to_string(config_.max_pool_bytes) + " bytes of body)");
  }

  // Draw sizes until either cap; stopping at the first draw that does not fit (rather than
  // skipping it) keeps the pool an unbiased sample of the spec.
  Rng size_rng(mix64(config_.seed ^ 0x73697a6573ull));  // "sizes"
  std::uint64_t used = 0;
  while (templates_.size() < config_.max_templates) {
    const std::uint64_t total = std::clamp(spec.sample(size_rng), min_total, max_total);
    const std::uint64_t body = total - header_bytes_;
    if (used + body > config_.max_pool_bytes) break;
    BodyTemplate t;
    t.offset = used;
    t.size = body;
    templates_.push_back(t);
    used += body;
  }
  pool_bytes_ = used;
  pool_ = std::make_unique_for_overwrite<char[]>(std::max<std::uint64_t>(used, 1));

  Rng bank_rng(mix64(config_.seed ^ 0x62616e6bull));  // "bank"
  const LineBank bank(bank_rng);
  for (std::size_t i = 0; i < templates_.size(); ++i) {
    BodyTemplate& t = templates_[i];
    Rng rng(mix64(config_.seed) + i);
    fill_body(pool_.get() + t.offset, t.size, bank, rng);
    sha256_hex(template_body(i), t.sha256_hex);
  }
}

std::string_view MessageFactory::template_body(std::size_t i) const {
  const BodyTemplate& t = templates_[i];
  return {pool_.get() + t.offset, static_cast<std::size_t>(t.size)};
}

std::string_view MessageFactory::template_sha256_hex(std::size_t i) const {
  return {templates_[i].sha256_hex, 64};
}

MessageState MessageFactory::new_state() const {
  MessageState s;
  s.owner_ = this;
  s.header_ = std::make_unique<char[]>(header_bytes_);
  s.addresses_ = std::make_unique<char[]>(config_.recipients.max * max_address_bytes_);
  s.recipients_ = std::make_unique<std::string_view[]>(config_.recipients.max);
  if (config_.fixed_date) {
    format_rfc5322_date(*config_.fixed_date, s.date_);
    s.date_second_ = *config_.fixed_date;
    s.date_valid_ = true;
  }
  return s;
}

std::string_view MessageFactory::pick_domain(Rng& rng) const {
  const std::uint64_t u = rng.below(cumulative_weights_.back());
  const auto it = std::upper_bound(cumulative_weights_.begin(), cumulative_weights_.end(), u);
  return config_.to_domains[static_cast<std::size_t>(it - cumulative_weights_.begin())].domain;
}

Message MessageFactory::make(std::uint64_t seq, MessageState& state) const {
  assert(state.owner_ == this);
  // Every draw for this message comes from its seq, not from the thread: the same seq gives
  // the same message on any thread, in any order.
  Rng rng(config_.seed ^ mix64(seq ^ 0x6d657373616765ull));  // "message"
  const BodyTemplate& t = templates_[rng.below(templates_.size())];

  // Recipients: consecutive local parts from a random start, so distinct within the message.
  const RecipientCount& rc = config_.recipients;
  const auto count = static_cast<std::size_t>(rc.min + rng.below(rc.max - rc.min + 1));
  const std::uint64_t base = rng.below(kLocalRange);
  for (std::size_t i = 0; i < count; ++i) {
    Cursor c{state.addresses_.get() + i * max_address_bytes_};
    char* const start = c.p;
    c.put(kLocalPrefix);
    c.put_u64((base + i) % kLocalRange);
    c.put('@');
    c.put(pick_domain(rng));
    state.recipients_[i] = std::string_view(start, static_cast<std::size_t>(c.p - start));
  }
  const std::string_view subject = kSubjects[rng.below(std::size(kSubjects))];

  if (!config_.fixed_date) {
    const std::int64_t now = wall_clock_seconds();
    if (!state.date_valid_ || now != state.date_second_) {
      format_rfc5322_date(now, state.date_);
      state.date_second_ = now;
      state.date_valid_ = true;
    }
  }

  char* const begin = state.header_.get();
  Cursor h{begin};
  h.put(kDateName);
  h.put(std::string_view(state.date_, kDateBytes));
  h.put(kCrlf);
  h.put(kFromName);
  h.put(header_from_);
  h.put(kCrlf);

  // To: the first few recipients, then a group for the rest; folded before column 78.
  h.put(kToName);
  std::size_t column = kToName.size();
  const std::size_t listed = std::min<std::size_t>(count, kListedRecipients);
  for (std::size_t i = 0; i < listed + (count > listed ? 1 : 0); ++i) {
    const std::string_view item = i < listed ? state.recipients_[i] : kUndisclosed;
    if (i > 0) {
      h.put(',');
      if (column + 2 + item.size() + 1 <= kFoldColumn) {
        h.put(' ');
        column += 2;
      } else {
        h.put("\r\n ");
        column = 1;
      }
    }
    h.put(item);
    column += item.size();
  }
  h.put(kCrlf);

  h.put(kMessageIdName);
  h.put(config_.run_id);
  h.put('-');
  h.put_u64(seq);
  h.put('@');
  h.put(from_domain_);
  h.put('>');
  h.put(kCrlf);
  h.put(kSubjectName);
  h.put(subject);
  h.put(kSubjectSeq);
  h.put_u64(seq);
  h.put(kCrlf);
  h.put(kMimeBlock);
  h.put(kIdName);
  char* const id = h.p;
  h.put(config_.run_id);
  h.put('-');
  h.put_u64(seq);
  const std::string_view id_view(id, static_cast<std::size_t>(h.p - id));
  h.put(kCrlf);

  // X-Ringmta-Pad: filler that brings the block to exactly header_bytes_, folded like To:.
  // Continuation lines need at least 4 bytes (CRLF, SP, one character), so no line may leave
  // 1 to 3 bytes behind it.
  const std::size_t written = static_cast<std::size_t>(h.p - begin);
  assert(written + kMinPadHeader + kCrlf.size() <= header_bytes_);
  std::size_t r = header_bytes_ - kCrlf.size() - written - kPadName.size() - kCrlf.size();
  h.put(kPadName);
  std::size_t line = std::min(r, kFoldColumn - 2 - kPadName.size());
  if (r - line > 0 && r - line < 4) line -= 4 - (r - line);
  std::memset(h.p, 'x', line);
  h.p += line;
  r -= line;
  while (r > 0) {
    std::size_t take = std::min(r, kFoldColumn);  // "\r\n " and up to 75 characters
    if (r - take > 0 && r - take < 4) take -= 4 - (r - take);
    h.put("\r\n ");
    std::memset(h.p, 'x', take - 3);
    h.p += take - 3;
    r -= take;
  }
  h.put(kCrlf);
  h.put(kCrlf);
  assert(static_cast<std::size_t>(h.p - begin) == header_bytes_);

  Message m;
  m.sender = config_.from;
  m.recipients = std::span<const std::string_view>(state.recipients_.get(), count);
  m.header = std::string_view(begin, header_bytes_);
  m.body = std::string_view(pool_.get() + t.offset, static_cast<std::size_t>(t.size));
  m.total_octets = header_bytes_ + t.size;
  m.body_sha256_hex = std::string_view(t.sha256_hex, 64);
  m.id = id_view;
  m.template_index = static_cast<std::uint32_t>(&t - templates_.data());
  return m;
}

}  // namespace ringmta::loadgen
