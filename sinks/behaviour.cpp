// The sink's behaviour table: parsing of durations, delays and replies, validation of the
// configuration, and the lock-free decision path (greylist table, GCRA rate limiter). See
// behaviour.hpp.
#include "sinks/behaviour.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

#include "core/smtp/ascii.hpp"

namespace ringmta::sink {
namespace {

constexpr std::array<std::string_view, kPhaseCount> kPhaseNames = {
    "connect", "ehlo", "mail", "rcpt", "data", "end-of-data"};

constexpr std::size_t idx(Phase p) {
  return static_cast<std::size_t>(p);
}

void set_why(std::string* why, std::string text) {
  if (why != nullptr) *why = std::move(text);
}

std::string in_quotes(std::string_view s) {
  std::string r = "'";
  r.append(s);
  r += '\'';
  return r;
}

// Shortest text that reads back to the same double ("0.1", "1e-05").
std::string format_double(double v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

bool iequal_lower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (smtp::to_lower(s[i]) != lower[i]) return false;
  }
  return true;
}

// ---- Magic recipients ------------------------------------------------------------------------

struct Magic {
  enum class Kind : std::uint8_t {
    none,
    tempfail,
    permfail,
    disconnect,
    delay,
    tempfail_data,
    permfail_data
  };
  Kind kind = Kind::none;
  std::uint32_t delay_us = 0;
};

// "tempfail+x@d": the tag is the local part up to its first '+', compared without case.
Magic parse_magic(std::string_view recipient) {
  const std::size_t at = recipient.rfind('@');
  const std::string_view local = recipient.substr(0, at);
  const std::size_t plus = local.find('+');
  if (plus == std::string_view::npos || plus == 0) return {};
  const std::string_view tag = local.substr(0, plus);
  using K = Magic::Kind;
  if (iequal_lower(tag, "tempfail")) return {K::tempfail, 0};
  if (iequal_lower(tag, "permfail")) return {K::permfail, 0};
  if (iequal_lower(tag, "disconnect")) return {K::disconnect, 0};
  if (iequal_lower(tag, "tempfail-data")) return {K::tempfail_data, 0};
  if (iequal_lower(tag, "permfail-data")) return {K::permfail_data, 0};
  constexpr std::string_view kDelay = "delay-";
  if (tag.size() > kDelay.size() && iequal_lower(tag.substr(0, kDelay.size()), kDelay)) {
    std::uint64_t us = 0;
    if (parse_duration(tag.substr(kDelay.size()), us, nullptr) && us <= kMaxDelayUs) {
      return {K::delay, static_cast<std::uint32_t>(us)};
    }
  }
  return {};
}

// Replies the sink makes on its own; static, so Action::reply.text stays valid.
constexpr smtp::Reply kMagicTempfail{
    450, {4, 2, 0}, "Mailbox temporarily unavailable (tempfail+ recipient)"};
constexpr smtp::Reply kMagicPermfail{550, {5, 1, 1}, "No such mailbox (permfail+ recipient)"};
constexpr smtp::Reply kMagicTempfailData{
    450, {4, 2, 0}, "Message temporarily refused (tempfail-data+ recipient)"};
constexpr smtp::Reply kMagicPermfailData{
    550, {5, 1, 1}, "Message refused (permfail-data+ recipient)"};
constexpr smtp::Reply kGreylisted{451, {4, 7, 1}, "Greylisted, please try again later"};
constexpr smtp::Reply kRateLimitClose{
    421, {4, 7, 0}, "Too many messages, slow down; closing connection"};
constexpr smtp::Reply kRateLimitDefer{451, {4, 7, 1}, "Rate limit exceeded, try again later"};
constexpr smtp::Reply kShorthandTempfail{
    451, {4, 3, 0}, "Temporary failure, please try again later"};
constexpr smtp::Reply kShorthandPermfail{554, {5, 6, 0}, "Message content rejected"};

// ---- Greylist hashing ------------------------------------------------------------------------

std::uint64_t mix64(std::uint64_t z) {  // splitmix64 finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// FNV-1a over the lower-cased triple with separators (so "a","bc" differs from "ab","c").
std::uint64_t triple_hash(const Context& c) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  auto add = [&h](std::string_view s) {
    for (char ch : s) {
      h ^= static_cast<unsigned char>(smtp::to_lower(ch));
      h *= 0x100000001b3ull;
    }
    h ^= 0xff;  // not a byte of any address
    h *= 0x100000001b3ull;
  };
  add(c.client_ip);
  add(c.sender);
  add(c.recipient);
  h = mix64(h);
  return h == 0 ? 1 : h;  // 0 marks an empty slot
}

// Linear probing this far; beyond, the table counts as full (it never grows).
constexpr std::size_t kMaxProbes = 64;

}  // namespace

// ---- Names -----------------------------------------------------------------------------------

std::string_view phase_name(Phase p) {
  return kPhaseNames[idx(p)];
}

bool parse_phase(std::string_view text, Phase& out) {
  for (std::size_t i = 0; i < kPhaseCount; ++i) {
    if (text == kPhaseNames[i]) {
      out = static_cast<Phase>(i);
      return true;
    }
  }
  if (text == "end_of_data") {
    out = Phase::end_of_data;
    return true;
  }
  return false;
}

std::string_view action_name(Action::Kind k) {
  switch (k) {
    case Action::Kind::accept:
      return "accept";
    case Action::Kind::reply:
      return "reply";
    case Action::Kind::disconnect:
      return "disconnect";
    case Action::Kind::reply_and_disconnect:
      return "reply-and-disconnect";
    case Action::Kind::disconnect_mid_data:
      return "disconnect-mid-data";
  }
  return "?";
}

bool parse_action(std::string_view text, Action::Kind& out) {
  std::string t(text);
  std::replace(t.begin(), t.end(), '_', '-');
  for (auto k : {Action::Kind::reply, Action::Kind::disconnect, Action::Kind::reply_and_disconnect,
                 Action::Kind::disconnect_mid_data}) {
    if (t == action_name(k)) {
      out = k;
      return true;
    }
  }
  return false;
}

// ---- Rng -------------------------------------------------------------------------------------

Rng::Rng(std::uint64_t seed) {
  for (auto& w : s_) {
    seed += 0x9e3779b97f4a7c15ull;
    w = mix64(seed);
  }
}

std::uint64_t Rng::next() {
  auto rotl = [](std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform01() {
  return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

// ---- Durations -------------------------------------------------------------------------------

bool parse_duration(std::string_view text, std::uint64_t& out_us, std::string* why) {
  constexpr const char* kUnits = "us, ms, s, m or h";
  if (text.empty()) {
    if (why != nullptr) *why = "empty duration (write e.g. 5ms, 250us, 1.5s)";
    return false;
  }
  if (text[0] == '-') {
    if (why != nullptr) *why = in_quotes(text) + ": a duration cannot be negative";
    return false;
  }
  std::size_t i = 0;
  std::uint64_t whole = 0;
  std::uint64_t frac = 0;
  std::uint64_t frac_scale = 1;
  std::size_t digits = 0;
  for (; i < text.size() && smtp::is_digit(text[i]); ++i, ++digits) {
    if (digits >= 12) {  // beyond any sensible duration; keeps the arithmetic in 64 bits
      if (why != nullptr) *why = in_quotes(text) + " is too large";
      return false;
    }
    whole = whole * 10 + static_cast<std::uint64_t>(text[i] - '0');
  }
  bool has_frac = false;
  if (i < text.size() && text[i] == '.') {
    has_frac = true;
    ++i;
    std::size_t fd = 0;
    for (; i < text.size() && smtp::is_digit(text[i]); ++i, ++fd) {
      if (fd >= 9) {
        if (why != nullptr) *why = in_quotes(text) + " has more than 9 decimals";
        return false;
      }
      frac = frac * 10 + static_cast<std::uint64_t>(text[i] - '0');
      frac_scale *= 10;
    }
    if (fd == 0) digits = 0;  // "5." or "." is not a number
  }
  if (digits == 0) {
    if (why != nullptr) {
      *why = in_quotes(text) + " is not a duration (a number and a unit: 250us, 5ms, 1.5s, 2m, 1h)";
    }
    return false;
  }
  const std::string_view unit = text.substr(i);
  std::uint64_t scale = 0;
  if (unit == "us") {
    scale = 1;
  } else if (unit == "ms") {
    scale = 1'000;
  } else if (unit == "s") {
    scale = 1'000'000;
  } else if (unit == "m") {
    scale = 60'000'000;
  } else if (unit == "h") {
    scale = 3'600'000'000;
  } else if (unit.empty()) {
    if (whole == 0 && frac == 0) {  // "0" needs no unit
      out_us = 0;
      return true;
    }
    if (why != nullptr) *why = in_quotes(text) + " has no unit (" + kUnits + ")";
    return false;
  } else {
    if (why != nullptr) {
      *why = in_quotes(text) + ": unknown unit " + in_quotes(unit) + " (" + kUnits + ")";
    }
    return false;
  }
  std::uint64_t us = 0;
  if (__builtin_mul_overflow(whole, scale, &us)) {
    if (why != nullptr) *why = in_quotes(text) + " is too large";
    return false;
  }
  if (has_frac) {
    // frac < 10^9 and scale <= 3.6e9: the product fits in 64 bits.
    const std::uint64_t part = frac * scale;
    if (part % frac_scale != 0) {
      if (why != nullptr) *why = in_quotes(text) + " is finer than 1us";
      return false;
    }
    if (__builtin_add_overflow(us, part / frac_scale, &us)) {
      if (why != nullptr) *why = in_quotes(text) + " is too large";
      return false;
    }
  }
  out_us = us;
  return true;
}

std::string format_duration(std::uint64_t us) {
  if (us == 0) return "0s";
  struct Unit {
    std::uint64_t scale;
    const char* name;
  };
  for (const Unit u :
       {Unit{3'600'000'000, "h"}, Unit{60'000'000, "m"}, Unit{1'000'000, "s"}, Unit{1'000, "ms"}}) {
    if (us % u.scale == 0) return std::to_string(us / u.scale) + u.name;
  }
  return std::to_string(us) + "us";
}

// ---- Delays ----------------------------------------------------------------------------------

std::uint32_t DelaySpec::sample(Rng& rng) const {
  switch (kind) {
    case Kind::none:
      return 0;
    case Kind::fixed:
      return a_us;
    case Kind::uniform: {
      const double span = static_cast<double>(b_us - a_us) + 1.0;
      const auto off = static_cast<std::uint64_t>(rng.uniform01() * span);
      return static_cast<std::uint32_t>(std::min<std::uint64_t>(a_us + off, b_us));
    }
    case Kind::lognormal: {
      // Box-Muller; u1 in (0, 1] so the log is finite.
      const double u1 = 1.0 - rng.uniform01();
      const double u2 = rng.uniform01();
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
      const double v = static_cast<double>(a_us) * std::exp(sigma * z);
      constexpr double kMax = std::numeric_limits<std::uint32_t>::max();
      return v >= kMax ? std::numeric_limits<std::uint32_t>::max()
                       : static_cast<std::uint32_t>(v + 0.5);
    }
  }
  return 0;
}

namespace {

bool parse_delay_value(std::string_view spec, std::string_view text, std::uint64_t& us,
                       std::string* why) {
  std::string inner;
  if (!parse_duration(text, us, why != nullptr ? &inner : nullptr)) {
    if (why != nullptr) *why = spec == text ? inner : "in " + in_quotes(spec) + ": " + inner;
    return false;
  }
  if (us > kMaxDelayUs) {
    if (why != nullptr) {
      *why = (spec == text ? "" : "in " + in_quotes(spec) + ": ") + in_quotes(text) +
             " is longer than the 1h maximum for a delay";
    }
    return false;
  }
  return true;
}

}  // namespace

bool parse_delay(std::string_view text, DelaySpec& out, std::string* why) {
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    std::uint64_t us = 0;
    if (!parse_delay_value(text, text, us, why)) return false;
    out = DelaySpec{};
    if (us != 0) {
      out.kind = DelaySpec::Kind::fixed;
      out.a_us = static_cast<std::uint32_t>(us);
    }
    return true;
  }
  const std::string_view dist = text.substr(0, colon);
  const std::string_view args = text.substr(colon + 1);
  if (dist == "uniform") {
    const std::size_t dash = args.find('-');
    if (dash == std::string_view::npos) {
      set_why(why, in_quotes(text) + ": write uniform:LOW-HIGH, e.g. uniform:1ms-10ms");
      return false;
    }
    std::uint64_t lo = 0;
    std::uint64_t hi = 0;
    if (!parse_delay_value(text, args.substr(0, dash), lo, why) ||
        !parse_delay_value(text, args.substr(dash + 1), hi, why)) {
      return false;
    }
    if (lo > hi) {
      set_why(why, in_quotes(text) + ": the low bound is above the high bound");
      return false;
    }
    out = DelaySpec{DelaySpec::Kind::uniform, static_cast<std::uint32_t>(lo),
                    static_cast<std::uint32_t>(hi), 0};
    return true;
  }
  if (dist == "lognormal") {
    const std::size_t comma = args.find(',');
    if (comma == std::string_view::npos) {
      set_why(why, in_quotes(text) + ": write lognormal:MEDIAN,SIGMA, e.g. lognormal:5ms,0.5");
      return false;
    }
    std::uint64_t median = 0;
    if (!parse_delay_value(text, args.substr(0, comma), median, why)) return false;
    if (median == 0) {
      set_why(why, in_quotes(text) + ": the median must be above 0");
      return false;
    }
    const std::string_view s = args.substr(comma + 1);
    double sigma = -1;
    const auto res = std::from_chars(s.data(), s.data() + s.size(), sigma);
    if (s.empty() || res.ec != std::errc() || res.ptr != s.data() + s.size() ||
        !std::isfinite(sigma) || sigma < 0 || sigma > 10) {
      set_why(why, in_quotes(text) + ": sigma must be a number from 0 to 10, got " + in_quotes(s));
      return false;
    }
    out = DelaySpec{DelaySpec::Kind::lognormal, static_cast<std::uint32_t>(median), 0, sigma};
    return true;
  }
  set_why(why, in_quotes(text) + ": unknown distribution " + in_quotes(dist) +
                   " (uniform:LOW-HIGH or lognormal:MEDIAN,SIGMA)");
  return false;
}

std::string format_delay(const DelaySpec& d) {
  switch (d.kind) {
    case DelaySpec::Kind::none:
      return "0s";
    case DelaySpec::Kind::fixed:
      return format_duration(d.a_us);
    case DelaySpec::Kind::uniform:
      return "uniform:" + format_duration(d.a_us) + "-" + format_duration(d.b_us);
    case DelaySpec::Kind::lognormal:
      return "lognormal:" + format_duration(d.a_us) + "," + format_double(d.sigma);
  }
  return "0s";
}

// ---- Replies ---------------------------------------------------------------------------------

bool parse_reply_spec(std::string_view text, ReplySpec& out, std::string* why) {
  const std::string_view code = text.substr(0, std::min(text.find(' '), text.size()));
  if (code.size() != 3 || !smtp::is_digit(code[0]) || !smtp::is_digit(code[1]) ||
      !smtp::is_digit(code[2])) {
    set_why(why, "reply " + in_quotes(text) +
                     " must start with a 3-digit code, e.g. \"451 4.3.0 Try again later\"");
    return false;
  }
  ReplySpec r;
  r.code =
      static_cast<std::uint16_t>((code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0'));
  // RFC 5321 4.2: first digit 2-5, second 0-5.
  if (code[0] < '2' || code[0] > '5' || code[1] > '5') {
    set_why(why, "reply code " + std::string(code) +
                     " is not an SMTP reply code (RFC 5321 4.2: 2yz-5yz with y from 0 to 5)");
    return false;
  }
  std::string_view rest = text.substr(code.size());
  if (!rest.empty()) rest.remove_prefix(1);
  // An enhanced code is a token "d.d{1,3}.d{1,3}" (RFC 3463 2); a token that starts like one
  // but is malformed is refused rather than sent as text.
  const std::string_view token = rest.substr(0, std::min(rest.find(' '), rest.size()));
  if (token.size() >= 2 && smtp::is_digit(token[0]) && token[1] == '.') {
    std::uint64_t parts[3] = {0, 0, 0};
    std::size_t n = 0;
    std::size_t start = 0;
    bool ok = true;
    while (ok && n < 3) {
      const std::size_t dot = token.find('.', start);
      const std::string_view part =
          token.substr(start, dot == std::string_view::npos ? token.npos : dot - start);
      ok = smtp::parse_decimal(part, n == 0 ? 1 : 3, parts[n]);
      ++n;
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
    if (!ok || n != 3 || token.find('.', start) != std::string_view::npos ||
        std::count(token.begin(), token.end(), '.') != 2) {
      set_why(why, "enhanced status code " + in_quotes(token) +
                       " is malformed (RFC 3463 2: class.subject.detail, e.g. 4.3.0)");
      return false;
    }
    if (parts[0] != static_cast<std::uint64_t>(r.code / 100)) {
      set_why(why, "enhanced status code " + std::string(token) + " does not match reply code " +
                       std::to_string(r.code) +
                       " (RFC 3463 2: its class is the code's first digit)");
      return false;
    }
    r.enhanced = {static_cast<std::uint8_t>(parts[0]), static_cast<std::uint16_t>(parts[1]),
                  static_cast<std::uint16_t>(parts[2])};
    rest.remove_prefix(token.size());
    if (!rest.empty()) rest.remove_prefix(1);
  }
  for (char c : rest) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      set_why(why, "reply text " + in_quotes(rest) + " has a control character");
      return false;
    }
  }
  // RFC 5321 4.5.3.1.5: the whole line, CRLF included, is at most 512 octets.
  const std::size_t head = 4 + (r.enhanced.present() ? token.size() + 1 : 0);
  if (head + rest.size() + 2 > smtp::kMaxReplyLine) {
    set_why(why, "reply text is " + std::to_string(rest.size()) + " octets; at most " +
                     std::to_string(smtp::kMaxReplyLine - 2 - head) +
                     " fit a reply line (RFC 5321 4.5.3.1.5)");
    return false;
  }
  r.text = rest.empty() ? (r.code >= 500   ? "Requested action not taken"
                           : r.code >= 400 ? "Requested action not taken, try again later"
                                           : "OK")
                        : std::string(rest);
  out = std::move(r);
  return true;
}

std::string format_reply_spec(const ReplySpec& r) {
  std::string s = std::to_string(r.code);
  if (r.enhanced.present()) {
    s += ' ';
    s += std::to_string(r.enhanced.cls) + "." + std::to_string(r.enhanced.subject) + "." +
         std::to_string(r.enhanced.detail);
  }
  if (!r.text.empty()) {
    s += ' ';
    s += r.text;
  }
  return s;
}

// ---- Validation ------------------------------------------------------------------------------

bool check_rule(const Rule& r, std::string* why, std::string_view* key) {
  auto refuse = [&](std::string_view k, std::string text) {
    if (key != nullptr) *key = k;
    set_why(why, std::move(text));
    return false;
  };
  if (!std::isfinite(r.probability) || r.probability < 0 || r.probability > 1) {
    return refuse("probability",
                  "probability must be from 0 to 1, got " + format_double(r.probability));
  }
  const std::string action(action_name(r.action));
  const std::uint16_t code = r.reply.code;
  switch (r.action) {
    case Action::Kind::accept:
      return refuse("action",
                    "action 'accept' is what happens when no rule fires; it is not a rule");
    case Action::Kind::reply:
    case Action::Kind::reply_and_disconnect:
      if (code == 0 && r.action == Action::Kind::reply) {
        return refuse("reply",
                      "action 'reply' needs a reply, e.g. reply = \"451 4.3.0 Try again later\"");
      }
      if (code != 0 && (code < 400 || code > 599)) {
        return refuse("reply", "reply " + std::to_string(code) +
                                   " is not a failure: a rule replies with 4xx or 5xx");
      }
      if (r.phase == Phase::connect && code != 0 && code != 421 && code != 554) {
        return refuse("reply",
                      "at phase 'connect' only 421 or 554 can replace the 220 banner "
                      "(RFC 5321 3.1), not " +
                          std::to_string(code));
      }
      break;
    case Action::Kind::disconnect:
    case Action::Kind::disconnect_mid_data:
      if (code != 0) {
        return refuse("reply", "action " + in_quotes(action) +
                                   " sends no reply; remove reply or use action "
                                   "'reply-and-disconnect'");
      }
      break;
  }
  if (r.action == Action::Kind::disconnect_mid_data && r.phase != Phase::data) {
    return refuse("action", "action 'disconnect-mid-data' works at phase 'data' only, not " +
                                in_quotes(phase_name(r.phase)));
  }
  if (r.after_bytes != 0 && r.action != Action::Kind::disconnect_mid_data) {
    return refuse("after-bytes", "after-bytes is only used with action 'disconnect-mid-data'");
  }
  return true;
}

bool validate_profile(const Profile& p, bool in_domain, std::string* why) {
  const std::pair<const char*, double> rates[] = {{"tempfail-rate", p.tempfail_rate},
                                                  {"permfail-rate", p.permfail_rate},
                                                  {"disconnect-rate", p.disconnect_rate}};
  for (const auto& [name, v] : rates) {
    if (!std::isfinite(v) || v < 0 || v > 1) {
      set_why(why, std::string(name) + " must be from 0 to 1, got " + format_double(v));
      return false;
    }
  }
  std::array<double, kPhaseCount> sum{};
  sum[idx(Phase::end_of_data)] = p.tempfail_rate + p.permfail_rate + p.disconnect_rate;
  for (std::size_t i = 0; i < p.rules.size(); ++i) {
    const Rule& r = p.rules[i];
    std::string inner;
    if (!check_rule(r, why != nullptr ? &inner : nullptr)) {
      set_why(why, "rule " + std::to_string(i + 1) + ": " + inner);
      return false;
    }
    if (in_domain && r.phase < Phase::rcpt) {
      set_why(why, "rule " + std::to_string(i + 1) + ": phase " + in_quotes(phase_name(r.phase)) +
                       " never applies in a domain table (domains apply from rcpt on)");
      return false;
    }
    sum[idx(r.phase)] += r.probability;
  }
  for (std::size_t i = 0; i < kPhaseCount; ++i) {
    if (sum[i] > 1 + 1e-9) {
      set_why(why, "the rules of phase " + in_quotes(kPhaseNames[i]) + " add up to probability " +
                       format_double(sum[i]) +
                       (i == idx(Phase::end_of_data)
                            ? " (tempfail-rate, permfail-rate and disconnect-rate included)"
                            : "") +
                       "; one draw decides between them, so the total is at most 1");
      return false;
    }
  }
  if (in_domain) {
    for (Phase ph : {Phase::connect, Phase::ehlo, Phase::mail}) {
      if (p.delays[idx(ph)].kind != DelaySpec::Kind::none) {
        set_why(why, "delay-" + std::string(phase_name(ph)) +
                         " never applies in a domain table (domains apply from rcpt on)");
        return false;
      }
    }
  }
  if (!std::isfinite(p.rate_limit.per_second) || p.rate_limit.per_second < 0 ||
      p.rate_limit.per_second > 1e9) {
    set_why(why, "rate-limit must be from 0 (off) to 1e9 per second, got " +
                     format_double(p.rate_limit.per_second));
    return false;
  }
  return true;
}

bool normalize_domain_pattern(std::string_view text, std::string& out, std::string* why) {
  std::string_view name = text;
  std::string r;
  if (name.substr(0, 2) == "*.") {
    r = "*.";
    name.remove_prefix(2);
  }
  bool ok = !name.empty() && name.size() <= 253;
  std::size_t label = 0;
  for (std::size_t i = 0; ok && i < name.size(); ++i) {
    const char c = name[i];
    if (c == '.') {
      ok = label > 0;
      label = 0;
    } else {
      ok = smtp::is_let_dig(static_cast<unsigned char>(c)) || c == '-' || c == '_';
      ok = ok && ++label <= 63;
    }
    r += smtp::to_lower(c);
  }
  if (!ok || label == 0) {
    set_why(why, in_quotes(text) + " is not a domain name or a *.domain pattern");
    return false;
  }
  out = std::move(r);
  return true;
}

bool validate_behaviour(const BehaviourConfig& c, std::string* why) {
  if (!validate_profile(c.defaults, false, why)) return false;
  for (std::size_t i = 0; i < c.domains.size(); ++i) {
    const DomainProfile& d = c.domains[i];
    std::string norm;
    if (!normalize_domain_pattern(d.pattern, norm, why)) return false;
    if (norm != d.pattern) {
      set_why(why, "domain " + in_quotes(d.pattern) + " must be in lower case");
      return false;
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (c.domains[j].pattern == d.pattern) {
        set_why(why, "domain " + in_quotes(d.pattern) + " is given twice");
        return false;
      }
    }
    std::string inner;
    if (!validate_profile(d.profile, true, why != nullptr ? &inner : nullptr)) {
      set_why(why, "domain " + in_quotes(d.pattern) + ": " + inner);
      return false;
    }
  }
  if (c.greylist_capacity < 1 || c.greylist_capacity > (1u << 28)) {
    set_why(why, "greylist-capacity must be from 1 to 268435456, got " +
                     std::to_string(c.greylist_capacity));
    return false;
  }
  return true;
}

// ---- Behaviour -------------------------------------------------------------------------------

struct Behaviour::GreylistSlot {
  std::atomic<std::uint64_t> key{0};   // triple hash; 0 = empty
  std::atomic<std::uint64_t> seen{0};  // first-seen time + 1; 0 = being written
};

Behaviour::Behaviour(BehaviourConfig config) : config_(std::move(config)) {
  std::string why;
  if (!validate_behaviour(config_, &why)) throw std::invalid_argument(why);

  std::size_t buckets = 0;
  bool greylisting = false;
  auto compile = [&](const Profile& src) {
    CompiledProfile p;
    p.source = &src;
    std::array<double, kPhaseCount> upper{};
    auto add = [&](Phase ph, double prob, Action a, const std::optional<DelaySpec>& delay) {
      if (prob <= 0) return;  // never fires; keeps the draw away from empty phases
      upper[idx(ph)] += prob;
      a.cause = Action::Cause::rule;
      p.rules[idx(ph)].push_back(CompiledRule{upper[idx(ph)], a, delay});
    };
    for (const Rule& r : src.rules) {
      Action a;
      a.kind = r.action;
      a.after_bytes = r.after_bytes;
      if (r.action == Action::Kind::reply || r.action == Action::Kind::reply_and_disconnect) {
        const ReplySpec& spec = r.reply.code != 0 ? r.reply : default_close_reply();
        a.reply = smtp::Reply{spec.code, spec.enhanced, spec.text};  // views config_ (stable)
      }
      add(r.phase, r.probability, a, r.delay);
    }
    add(Phase::end_of_data, src.tempfail_rate, Action{Action::Kind::reply, {}, kShorthandTempfail},
        std::nullopt);
    add(Phase::end_of_data, src.permfail_rate, Action{Action::Kind::reply, {}, kShorthandPermfail},
        std::nullopt);
    add(Phase::end_of_data, src.disconnect_rate, Action{Action::Kind::disconnect, {}, {}},
        std::nullopt);
    const RateLimit& rl = src.rate_limit;
    if (rl.per_second > 0) {
      p.bucket = static_cast<std::int32_t>(buckets++);
      p.interval_ns = std::max<std::uint64_t>(1, std::llround(1e9 / rl.per_second));
      const std::uint64_t burst =
          rl.burst != 0
              ? rl.burst
              : std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(rl.per_second)));
      p.tolerance_ns = (burst - 1) * p.interval_ns;
    }
    greylisting = greylisting || src.greylist_wait_us.has_value();
    profiles_.push_back(std::move(p));
  };
  profiles_.reserve(1 + config_.domains.size());
  compile(config_.defaults);
  for (const DomainProfile& d : config_.domains)
    compile(d.profile);

  if (buckets > 0) {
    buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(buckets);
    for (std::size_t i = 0; i < buckets; ++i)
      buckets_[i].store(0, std::memory_order_relaxed);
  }
  if (greylisting) {
    std::size_t cap = 1;
    while (cap < config_.greylist_capacity)
      cap <<= 1;
    greylist_ = std::make_unique<GreylistSlot[]>(cap);
    greylist_mask_ = cap - 1;
  }
}

Behaviour::~Behaviour() = default;

std::size_t Behaviour::profile_index(std::string_view recipient) const {
  if (config_.domains.empty() || recipient.empty()) return 0;
  const std::size_t at = recipient.rfind('@');
  if (at == std::string_view::npos) return 0;
  const std::string_view domain = recipient.substr(at + 1);
  std::size_t best = 0;
  std::size_t best_len = 0;
  for (std::size_t i = 0; i < config_.domains.size(); ++i) {
    const std::string_view pat = config_.domains[i].pattern;
    if (pat.substr(0, 2) != "*.") {
      if (iequal_lower(domain, pat)) return i + 1;  // an exact name beats any pattern
      continue;
    }
    // "*.slow.test" matches "a.slow.test" (the dot included), not "slow.test" itself.
    const std::string_view suffix = pat.substr(1);
    if (domain.size() > suffix.size() && suffix.size() > best_len &&
        iequal_lower(domain.substr(domain.size() - suffix.size()), suffix)) {
      best = i + 1;
      best_len = suffix.size();
    }
  }
  return best;
}

Action Behaviour::apply_rules(const CompiledProfile& p, Phase phase, Rng& rng) const {
  const auto& rules = p.rules[idx(phase)];
  if (!rules.empty()) {
    const double u = rng.uniform01();
    for (const CompiledRule& r : rules) {
      if (u < r.upper) {
        Action a = r.action;
        a.delay_us = (r.delay ? *r.delay : p.source->delays[idx(phase)]).sample(rng);
        return a;
      }
    }
  }
  Action a;
  a.delay_us = p.source->delays[idx(phase)].sample(rng);
  return a;
}

bool Behaviour::take_token(const CompiledProfile& p, std::uint64_t now_us) const {
  // GCRA (a token bucket in one word): the slot holds the theoretical arrival time of the
  // next message; a message fits while that time is at most tolerance ahead of now.
  std::atomic<std::uint64_t>& tat = buckets_[static_cast<std::size_t>(p.bucket)];
  const std::uint64_t now = now_us * 1000;
  std::uint64_t t = tat.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t base = std::max(t, now);
    if (base - now > p.tolerance_ns) {
      counters_.rate_limited.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (tat.compare_exchange_weak(t, base + p.interval_ns, std::memory_order_relaxed)) {
      return true;
    }
  }
}

Action Behaviour::rate_limited(const CompiledProfile& p) const {
  Action a;
  a.cause = Action::Cause::rate_limit;
  if (p.source->rate_limit.reply == RateLimitReply::close_421) {
    a.kind = Action::Kind::reply_and_disconnect;
    a.reply = kRateLimitClose;
  } else {
    a.kind = Action::Kind::reply;
    a.reply = kRateLimitDefer;
  }
  return a;
}

bool Behaviour::greylist_pass(const Context& ctx, std::uint64_t wait_us) const {
  const std::uint64_t h = triple_hash(ctx);
  for (std::size_t i = 0; i < kMaxProbes && i <= greylist_mask_; ++i) {
    GreylistSlot& s = greylist_[(h + i) & greylist_mask_];
    std::uint64_t k = s.key.load(std::memory_order_acquire);
    if (k == 0) {
      if (s.key.compare_exchange_strong(k, h, std::memory_order_acq_rel)) {
        s.seen.store(ctx.now_us + 1, std::memory_order_release);
        counters_.greylist_triples.fetch_add(1, std::memory_order_relaxed);
        counters_.greylisted.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      // Another thread took the slot; k now holds its key: compare below.
    }
    if (k != h) continue;
    const std::uint64_t seen = s.seen.load(std::memory_order_acquire);
    // seen == 0: the first sighting is being recorded right now, by another thread.
    if (seen == 0 || ctx.now_us < seen - 1 + wait_us) {
      counters_.greylisted.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    counters_.greylist_passed.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // No room: let the recipient through rather than refuse it forever; the counter says so.
  counters_.greylist_table_full.fetch_add(1, std::memory_order_relaxed);
  return true;
}

Action Behaviour::decide(Phase phase, const Context& ctx, Rng& rng) const {
  const std::size_t pi = phase >= Phase::rcpt ? profile_index(ctx.recipient) : 0;
  const CompiledProfile& p = profiles_[pi];
  const DelaySpec& phase_delay = p.source->delays[idx(phase)];
  auto answer = [&](Action::Kind kind, Action::Cause cause, const smtp::Reply& r) {
    Action a;
    a.kind = kind;
    a.cause = cause;
    a.reply = r;
    a.delay_us = phase_delay.sample(rng);
    return a;
  };
  using K = Action::Kind;
  using C = Action::Cause;
  switch (phase) {
    case Phase::mail:
      if (p.bucket >= 0 && !take_token(p, ctx.now_us)) {
        const Action a = rate_limited(p);
        return answer(a.kind, C::rate_limit, a.reply);
      }
      break;
    case Phase::rcpt: {
      if (config_.magic) {
        const Magic m = parse_magic(ctx.recipient);
        switch (m.kind) {
          case Magic::Kind::none:
            break;
          case Magic::Kind::tempfail:
            return answer(K::reply, C::magic, kMagicTempfail);
          case Magic::Kind::permfail:
            return answer(K::reply, C::magic, kMagicPermfail);
          case Magic::Kind::disconnect:
            return answer(K::disconnect, C::magic, {});
          case Magic::Kind::delay: {
            Action a;
            a.cause = C::magic;
            a.delay_us = m.delay_us;
            return a;
          }
          case Magic::Kind::tempfail_data:
          case Magic::Kind::permfail_data:
            return answer(K::accept, C::magic, {});
        }
      }
      // The listener's own limit was taken at MAIL; a domain table has its own.
      if (pi != 0 && p.bucket >= 0 && !take_token(p, ctx.now_us)) {
        const Action a = rate_limited(p);
        return answer(a.kind, C::rate_limit, a.reply);
      }
      const auto& wait = p.source->greylist_wait_us;
      if (wait && !greylist_pass(ctx, *wait)) return answer(K::reply, C::greylist, kGreylisted);
      break;
    }
    case Phase::end_of_data:
      if (config_.magic) {
        const Magic m = parse_magic(ctx.recipient);
        if (m.kind == Magic::Kind::tempfail_data) {
          return answer(K::reply, C::magic, kMagicTempfailData);
        }
        if (m.kind == Magic::Kind::permfail_data) {
          return answer(K::reply, C::magic, kMagicPermfailData);
        }
        if (m.kind == Magic::Kind::delay) {
          Action a;
          a.cause = C::magic;
          a.delay_us = m.delay_us;
          return a;
        }
      }
      break;
    case Phase::connect:
    case Phase::ehlo:
    case Phase::data:
      break;
  }
  return apply_rules(p, phase, rng);
}

bool Behaviour::try_enter_connection() const {
  const std::uint32_t max = config_.max_connections;
  if (max == 0) {
    connections_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // CAS rather than add-then-undo, so a refused attempt never makes another one fail.
  std::uint32_t c = connections_.load(std::memory_order_relaxed);
  do {
    if (c >= max) {
      counters_.connections_refused.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  } while (!connections_.compare_exchange_weak(c, c + 1, std::memory_order_relaxed));
  return true;
}

void Behaviour::leave_connection() const {
  connections_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace ringmta::sink
