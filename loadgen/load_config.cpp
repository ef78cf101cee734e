// Loading ringmta-loadgen's configuration: the CLI11 command line, the --config TOML file
// (toml++), their merge and checks (each error names the flag, or the file, line and key),
// and --print-config. Follows sinks/sink_config.cpp so that both tools read and fail alike.
#include "loadgen/load_config.hpp"

#include <toml++/toml.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <limits>
#include <map>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "core/smtp/address.hpp"
#include "core/smtp/ascii.hpp"
#include "loadgen/message_factory.hpp"
#include "loadgen/size_spec.hpp"

#ifndef RINGMTA_VERSION
#define RINGMTA_VERSION "unknown"
#endif

namespace ringmta::loadgen {
namespace {

// Start-up only: a ConfigError ends load_loadgen_config with exit code 2 and its message.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

constexpr const char* kProgram = "ringmta-loadgen";
constexpr std::string_view kDefaultTarget = "127.0.0.1:2525";

std::string in_quotes(std::string_view s) {
  std::string r = "'";
  r.append(s);
  r += '\'';
  return r;
}

std::string format_double(double v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

// ---- Durations -------------------------------------------------------------------------------

constexpr std::uint64_t kNsPerSecond = 1'000'000'000;
constexpr std::uint64_t kMaxRunNs = 720ull * 3600 * kNsPerSecond;  // 30 days: a soak test
constexpr std::uint64_t kMaxWaitNs = 3600 * kNsPerSecond;          // timeouts, think time

// "100ns", "250us", "5ms", "1.5s", "2m", "1h", or a bare number of seconds ("10", "0.5").
// Exact to the nanosecond (finer is refused, not rounded). False with a reason in why.
bool parse_duration_ns(std::string_view text, std::uint64_t& out, std::string& why) {
  const auto bad = [&](const std::string& reason) {
    why = reason;
    return false;
  };
  if (text.empty()) return bad("empty duration (write e.g. 10s, 500ms, 2m)");
  if (text[0] == '-') return bad(in_quotes(text) + ": a duration cannot be negative");
  std::size_t i = 0;
  std::uint64_t whole = 0;
  std::size_t digits = 0;
  for (; i < text.size() && smtp::is_digit(text[i]); ++i, ++digits) {
    if (digits >= 15) return bad(in_quotes(text) + " is too large");
    whole = whole * 10 + static_cast<std::uint64_t>(text[i] - '0');
  }
  std::uint64_t frac = 0;
  std::uint64_t frac_scale = 1;
  if (i < text.size() && text[i] == '.') {
    ++i;
    std::size_t fd = 0;
    for (; i < text.size() && smtp::is_digit(text[i]); ++i, ++fd) {
      if (fd >= 9) return bad(in_quotes(text) + " has more than 9 decimals");
      frac = frac * 10 + static_cast<std::uint64_t>(text[i] - '0');
      frac_scale *= 10;
    }
    if (fd == 0) digits = 0;  // "5." or "." is not a number
  }
  if (digits == 0) {
    return bad(in_quotes(text) +
               " is not a duration (a number and a unit: 250us, 5ms, 1.5s, 2m, 1h; or seconds)");
  }
  const std::string_view unit = text.substr(i);
  std::uint64_t scale = 0;
  if (unit == "ns") {
    scale = 1;
  } else if (unit == "us") {
    scale = 1'000;
  } else if (unit == "ms") {
    scale = 1'000'000;
  } else if (unit == "s" || unit.empty()) {
    scale = kNsPerSecond;
  } else if (unit == "m") {
    scale = 60 * kNsPerSecond;
  } else if (unit == "h") {
    scale = 3600 * kNsPerSecond;
  } else {
    return bad(in_quotes(text) + ": unknown unit " + in_quotes(unit) +
               " (ns, us, ms, s, m or h; none means seconds)");
  }
  std::uint64_t ns = 0;
  if (__builtin_mul_overflow(whole, scale, &ns)) return bad(in_quotes(text) + " is too large");
  // frac < 10^9 and scale <= 3.6e12: the product needs more than 64 bits.
  const unsigned __int128 f = static_cast<unsigned __int128>(frac) * scale;
  if (f % frac_scale != 0) return bad(in_quotes(text) + " is finer than a nanosecond");
  if (__builtin_add_overflow(ns, static_cast<std::uint64_t>(f / frac_scale), &ns)) {
    return bad(in_quotes(text) + " is too large");
  }
  out = ns;
  return true;
}

// The shortest exact text ("0s", "10s", "1500ms", "2m"...), which parses back.
std::string format_duration_ns(std::uint64_t ns) {
  if (ns == 0) return "0s";
  struct Unit {
    std::uint64_t scale;
    const char* name;
  };
  for (const Unit u : {Unit{3600 * kNsPerSecond, "h"}, Unit{60 * kNsPerSecond, "m"},
                       Unit{kNsPerSecond, "s"}, Unit{1'000'000, "ms"}, Unit{1'000, "us"}}) {
    if (ns % u.scale == 0) return std::to_string(ns / u.scale) + u.name;
  }
  return std::to_string(ns) + "ns";
}

std::uint64_t seconds_to_ns(double s) {
  return static_cast<std::uint64_t>(std::llround(s * static_cast<double>(kNsPerSecond)));
}

// ---- Values ----------------------------------------------------------------------------------
// Origin and Value are copied from sinks/sink_config.cpp (durations aside): worth moving to
// core/config/ once a third binary (the relay) needs them.

// Where a value came from: a TOML node (file:line:col and key) or a command-line flag.
struct Origin {
  const std::string* file = nullptr;  // null: a flag
  toml::source_position pos{};
  std::string name;  // the key or "--flag"

  std::string prefix() const {
    if (file == nullptr) return name;
    return *file + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": " + name;
  }
};

[[noreturn]] void fail_at(const Origin& o, const std::string& reason) {
  throw ConfigError(o.prefix() + ": " + reason);
}

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    default:
      return "a date or time";
  }
}

// One setting's value, from a TOML node or from the text of a flag, read the same way so
// that a key and its flag accept the same values and fail with the same reasons.
class Value {
 public:
  Value(const toml::node& node, Origin origin) : node_(&node), origin_(std::move(origin)) {}
  Value(std::string text, Origin origin) : text_(std::move(text)), origin_(std::move(origin)) {}
  // A switch flag (--bdat, --no-pipelining): the boolean key is `on`.
  static Value of_switch(bool on, Origin origin) {
    Value v(on ? "true" : "false", std::move(origin));
    v.switch_ = true;
    return v;
  }

  [[noreturn]] void fail(const std::string& reason) const { fail_at(origin_, reason); }

  // The value as the user wrote it, for "got ..." in messages.
  std::string shown() const {
    if (node_ == nullptr) return in_quotes(text_);
    if (const auto* s = node_->as_string()) return "\"" + s->get() + "\"";
    if (const auto* i = node_->as_integer()) return std::to_string(i->get());
    if (const auto* f = node_->as_floating_point()) return format_double(f->get());
    if (const auto* b = node_->as_boolean()) return b->get() ? "true" : "false";
    return type_name(*node_);
  }

  bool is_integer_node() const { return node_ != nullptr && node_->is_integer(); }
  bool is_text() const { return node_ == nullptr || node_->is_string(); }

  std::string text(std::string_view expected) const {
    if (node_ == nullptr) return text_;
    if (const auto* s = node_->as_string()) return s->get();
    fail("must be " + std::string(expected) + ", not " + type_name(*node_));
  }

  double number(double lo, double hi, std::string_view expected) const {
    double v = 0;
    if (node_ == nullptr) {
      const auto res = std::from_chars(text_.data(), text_.data() + text_.size(), v);
      if (text_.empty() || res.ec != std::errc() || res.ptr != text_.data() + text_.size()) {
        fail("must be " + std::string(expected) + ", got " + shown());
      }
    } else if (const auto* i = node_->as_integer()) {
      v = static_cast<double>(i->get());
    } else if (const auto* f = node_->as_floating_point()) {
      v = f->get();
    } else {
      fail("must be " + std::string(expected) + ", not " + type_name(*node_));
    }
    if (!(v >= lo && v <= hi)) fail("must be " + std::string(expected) + ", got " + shown());
    return v;
  }

  std::int64_t integer(std::int64_t lo, std::int64_t hi, std::string_view expected) const {
    std::int64_t v = 0;
    if (node_ == nullptr) {
      const auto res = std::from_chars(text_.data(), text_.data() + text_.size(), v);
      if (text_.empty() || res.ec != std::errc() || res.ptr != text_.data() + text_.size()) {
        fail("must be " + std::string(expected) + ", got " + shown());
      }
    } else if (const auto* i = node_->as_integer()) {
      v = i->get();
    } else {
      fail("must be " + std::string(expected) + ", not " + type_name(*node_));
    }
    if (v < lo || v > hi) fail("must be " + std::string(expected) + ", got " + shown());
    return v;
  }

  bool boolean() const {
    if (node_ == nullptr) {
      if (switch_) return text_ == "true";
      if (text_ == "true" || text_ == "false") return text_ == "true";
      fail("must be true or false, got " + shown());
    }
    if (const auto* b = node_->as_boolean()) return b->get();
    fail("must be true or false, not " + type_name(*node_));
  }

  // Text as a duration, or a TOML number of seconds; at most max_ns.
  std::uint64_t duration_ns(std::uint64_t max_ns) const {
    constexpr std::string_view kExpected =
        "a duration such as \"10s\", \"500ms\" or \"2m\", or a number of seconds";
    std::uint64_t ns = 0;
    if (node_ != nullptr && (node_->is_integer() || node_->is_floating_point())) {
      const double s = number(0, static_cast<double>(max_ns) / kNsPerSecond, kExpected);
      ns = seconds_to_ns(s);
    } else {
      std::string why;
      if (!parse_duration_ns(text(kExpected), ns, why)) fail(why);
    }
    if (ns > max_ns) fail("must be at most " + format_duration_ns(max_ns) + ", got " + shown());
    return ns;
  }

  const Origin& origin() const { return origin_; }

 private:
  const toml::node* node_ = nullptr;
  std::string text_;
  bool switch_ = false;
  Origin origin_;
};

// ---- Keys ------------------------------------------------------------------------------------

// --size: the message factory's SPEC (loadgen/size_spec.hpp), checked now so that a mistake
// points at its flag or line; the text is kept, and the factory parses it again.
std::string parse_size(const Value& v) {
  std::string s;
  if (v.is_integer_node()) {
    s = std::to_string(
        v.integer(1, static_cast<std::int64_t>(kMaxMessageBytes), "a size in bytes from 1 to 1G"));
  } else {
    s = v.text("BYTES (1024, 10K, 1M) or a SPEC such as \"uniform:1K-64K\"");
  }
  SizeSpec spec;
  std::string why;
  if (!parse_size_spec(s, spec, &why)) v.fail(why);
  return s;
}

// --recipients and --to-domain: the message factory's own parsers, so that what passes here
// also passes there; the texts are kept as given.
std::string parse_recipients(const Value& v) {
  constexpr std::string_view kExpected = "a count from 1 to 1000, or uniform:LOW-HIGH";
  const std::string s = v.is_integer_node()
                            ? std::to_string(v.integer(1, kMaxRecipients, kExpected))
                            : v.text(kExpected);
  RecipientCount count;
  std::string why;
  if (!parse_recipient_count(s, count, &why)) v.fail(why);
  return s;
}

// Returns the domain (lower case) for the duplicate check; entry gets the text.
std::string parse_to_domain(const Value& v, std::string& entry) {
  entry = v.text("a domain, optionally with a weight: \"example.test:3\"");
  DomainWeight d;
  std::string why;
  if (!parse_domain_weight(entry, d, &why)) v.fail(why);
  return d.domain;
}

Arrival parse_arrival(const Value& v) {
  const std::string s = v.text("constant or poisson");
  if (s == "constant") return Arrival::constant;
  if (s == "poisson") return Arrival::poisson;
  v.fail("must be constant or poisson, got " + v.shown());
}

// What the TOML file and the flags have set so far; later sources win.
struct Sources {
  std::map<std::string, Origin, std::less<>> origin;  // by key: where it was last set
  bool run_id_given = false;

  const Origin* find(std::string_view key) const {
    const auto it = origin.find(key);
    return it == origin.end() ? nullptr : &it->second;
  }
  // Where a cross-setting check points: where `key` was set, else its flag.
  Origin at(std::string_view key) const {
    const Origin* o = find(key);
    return o != nullptr ? *o : Origin{nullptr, {}, "--" + std::string(key)};
  }
};

// Every key but to-domain (a list, applied by its caller). False: not a key.
bool apply_key(std::string_view key, const Value& v, LoadConfig& c, Sources& src) {
  if (key == "target") {
    const std::string s = v.text("an address \"HOST:PORT\"");
    std::string why;
    if (!io::parse_socket_address(s, c.target, &why)) v.fail(in_quotes(s) + ": " + why);
    if (c.target.port() == 0) v.fail(in_quotes(s) + ": port 0 cannot be connected to");
  } else if (key == "threads") {
    c.threads = static_cast<unsigned>(v.integer(1, 1024, "a thread count from 1 to 1024"));
  } else if (key == "connections") {
    c.connections =
        static_cast<unsigned>(v.integer(1, 1'000'000, "a connection count from 1 to 1000000"));
  } else if (key == "rate") {
    c.rate = v.number(0, 1e9, "a rate in messages per second, from above 0 to 1e9");
    if (c.rate == 0) {
      v.fail("must be above 0 messages per second, got " + v.shown() +
             " (leave it out for a closed loop)");
    }
  } else if (key == "arrival") {
    c.arrival = parse_arrival(v);
  } else if (key == "messages") {
    c.messages = static_cast<std::uint64_t>(v.integer(0, std::numeric_limits<std::int64_t>::max(),
                                                      "a message count (0: no count limit)"));
  } else if (key == "duration") {
    c.duration_s = static_cast<double>(v.duration_ns(kMaxRunNs)) / kNsPerSecond;
  } else if (key == "warmup") {
    c.warmup_s = static_cast<double>(v.duration_ns(kMaxRunNs)) / kNsPerSecond;
  } else if (key == "ramp-up") {
    c.ramp_up_s = static_cast<double>(v.duration_ns(kMaxRunNs)) / kNsPerSecond;
  } else if (key == "messages-per-connection") {
    c.messages_per_connection =
        static_cast<std::uint32_t>(v.integer(0, std::numeric_limits<std::uint32_t>::max(),
                                             "a message count (0: reuse the connection forever)"));
  } else if (key == "think-time") {
    const std::uint64_t ns = v.duration_ns(kMaxWaitNs);
    if (ns % 1'000 != 0) v.fail("must be whole microseconds, got " + v.shown());
    c.think_time_us = static_cast<std::uint32_t>(ns / 1'000);
  } else if (key == "helo") {
    const std::string h = v.text("a host name");
    if (!smtp::is_valid_ehlo_domain(h)) {
      v.fail(
          "must be a domain or an address literal such as [127.0.0.1] (RFC 5321 4.1.1.1), "
          "got " +
          v.shown());
    }
    c.helo = h;
  } else if (key == "pipelining") {
    c.pipelining = v.boolean();
  } else if (key == "bdat") {
    c.bdat = v.boolean();
  } else if (key == "starttls") {
    c.starttls = v.boolean();
  } else if (key == "tls-verify") {
    c.tls_verify = v.boolean();
  } else if (key == "tls-ca") {
    c.tls_ca = v.text("a PEM file of CA certificates");
    if (c.tls_ca.empty()) v.fail("must be a file name, not empty");
  } else if (key == "tls-resumption") {
    if (v.is_text()) {
      const std::string t = v.text("on or off");
      if (t != "on" && t != "off") v.fail("must be on or off, got " + v.shown());
      c.tls_resumption = t == "on";
    } else {
      c.tls_resumption = v.boolean();
    }
  } else if (key == "auth") {
    const std::string a = v.text("USER:PASS");
    const std::size_t colon = a.find(':');
    if (colon == std::string::npos || colon == 0) {
      v.fail("must be USER:PASS (the password may contain ':'), got " + v.shown());
    }
    if (a.size() > 512 || a.find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos) {
      v.fail("must be at most 512 characters without NUL, CR or LF");
    }
    c.auth = a;
  } else if (key == "connect-timeout" || key == "timeout") {
    const std::uint64_t ns = v.duration_ns(kMaxWaitNs);
    if (ns < 1'000'000 || ns % 1'000'000 != 0) {
      v.fail("must be whole milliseconds, at least 1ms, got " + v.shown());
    }
    (key == "timeout" ? c.reply_timeout_ms : c.connect_timeout_ms) =
        static_cast<std::uint32_t>(ns / 1'000'000);
  } else if (key == "size") {
    c.size = parse_size(v);
  } else if (key == "recipients") {
    c.recipients = parse_recipients(v);
  } else if (key == "from") {
    // As the factory needs it: MAIL FROM, From: and the Message-ID's right side.
    const std::string a = v.text("an address such as loadgen@ringmta.test");
    const std::string path = "<" + a + ">";
    smtp::Path p;
    const smtp::PathParse r = smtp::parse_path(path, smtp::PathKind::reverse, p);
    if (r.error != smtp::AddressError::none || r.consumed != path.size() || p.null ||
        a.find_first_of("<> ") != std::string::npos) {
      v.fail(
          "must be an address such as loadgen@ringmta.test (local@domain, no angle "
          "brackets), got " +
          v.shown());
    }
    if (p.non_ascii) v.fail("must be ASCII (the loadgen does not send SMTPUTF8), got " + v.shown());
    c.from = a;
  } else if (key == "run-id") {
    const std::string s = v.text("a run id");
    bool ok = !s.empty() && s.size() <= 64;  // the id header is "<run>-<seq>"; sinks keep 127
    for (char ch : s) {
      const auto u = static_cast<unsigned char>(ch);
      ok = ok && (smtp::is_let_dig(u) || ch == '-' || ch == '.' || ch == '_');
    }
    if (!ok) {
      v.fail("must be 1 to 64 letters, digits, '-', '.' or '_', got " + v.shown());
    }
    c.run_id = s;
    src.run_id_given = true;
  } else if (key == "seed") {
    c.seed = static_cast<std::uint64_t>(
        v.integer(0, std::numeric_limits<std::int64_t>::max(), "an integer from 0 to 2^63-1"));
  } else if (key == "json") {
    c.json_path = v.text("a file name");
  } else if (key == "ledger") {
    c.ledger_path = v.text("a file name");
  } else if (key == "progress") {
    c.progress = v.boolean();
  } else {
    return false;
  }
  src.origin.insert_or_assign(std::string(key), v.origin());
  return true;
}

// The domains of to-domain; values from one source (the file, or the flags) replace the list.
std::vector<std::string> read_domains(const std::vector<Value>& values) {
  std::vector<std::string> list;
  std::vector<std::string> seen;
  for (const Value& v : values) {
    std::string entry;
    const std::string domain = parse_to_domain(v, entry);
    for (const std::string& d : seen) {
      if (d == domain) v.fail(in_quotes(domain) + " is given twice (names ignore case)");
    }
    seen.push_back(domain);
    list.push_back(std::move(entry));
  }
  return list;
}

[[noreturn]] void unknown_key(const std::string& file, const toml::key& key) {
  const std::string_view k = key.str();
  std::string hint;
  std::string dashed(k);
  std::replace(dashed.begin(), dashed.end(), '_', '-');
  if (dashed != k) {
    hint = " (did you mean " + in_quotes(dashed) + "?)";
  } else if (k == "no-pipelining" || k == "no-progress") {
    hint = " (write " + std::string(k.substr(3)) + " = false)";
  } else if (k == "config" || k == "print-config" || k == "help" || k == "version") {
    hint = " (a command-line flag only)";
  }
  fail_at(Origin{&file, key.source().begin, std::string(k)}, "unknown key" + hint);
}

// Applies the file's keys to c, in file order; a to-domain key replaces the default list.
void read_toml(const std::string& file, const toml::table& root, LoadConfig& c, Sources& src) {
  for (const auto& [key, node] : root) {
    const std::string_view k = key.str();
    const Origin where{&file, node.source().begin, std::string(k)};
    if (k == "to-domain") {
      std::vector<Value> values;
      if (const auto* arr = node.as_array()) {
        if (arr->empty()) Value(node, where).fail("must name at least one domain");
        for (const toml::node& e : *arr)
          values.emplace_back(e, Origin{&file, e.source().begin, std::string(k)});
      } else {
        values.emplace_back(node, where);
      }
      c.to_domains = read_domains(values);
      src.origin.insert_or_assign("to-domain", where);
    } else if (!apply_key(k, Value(node, where), c, src)) {
      unknown_key(file, key);
    }
  }
}

// The checks between settings. Each points at the setting to change: where it was given (file
// line or flag), or its flag when it was left at its default.
void check(const LoadConfig& c, const Sources& src) {
  const bool open_loop = c.rate > 0;
  if (c.messages == 0 && c.duration_s == 0) {
    fail_at(src.at(src.find("duration") ? "duration" : "messages"),
            "the run has no end: --duration and --messages are both 0; set at least one");
  }
  if (c.duration_s > 0 && c.warmup_s >= c.duration_s) {
    fail_at(src.at("warmup"), "must be shorter than the duration (" +
                                  format_duration_ns(seconds_to_ns(c.duration_s)) +
                                  "), which includes it");
  }
  if (c.duration_s > 0 && c.ramp_up_s >= c.duration_s) {
    fail_at(src.at("ramp-up"), "must be shorter than the duration (" +
                                   format_duration_ns(seconds_to_ns(c.duration_s)) + ")");
  }
  if (!open_loop && c.arrival == Arrival::poisson) {
    fail_at(src.at("arrival"),
            "poisson arrivals need --rate (open loop); a closed loop sends each message when "
            "the previous one is answered");
  }
  if (open_loop && c.think_time_us > 0) {
    fail_at(src.at("think-time"),
            "only applies to a closed loop (no --rate); an open loop starts messages on its "
            "schedule");
  }
  if (c.connections < c.threads) {
    fail_at(src.at(src.find("connections") ? "connections" : "threads"),
            std::to_string(c.connections) + " connections leave some of the " +
                std::to_string(c.threads) + " threads idle; give at least one per thread");
  }
  if (!c.json_path.empty() && c.json_path == c.ledger_path) {
    fail_at(src.at("ledger"), "is the same file as --json");
  }
}

constexpr const char* kDescription =
    "ringmta-loadgen: an SMTP load generator for the ringmta testbed, in the spirit of\n"
    "Postfix's smtp-source and wrk2. It sends messages to --target over --connections,\n"
    "stamped with X-Ringmta-Id, and reports the end-of-data -> reply latency per phase.\n";

constexpr const char* kFooter =
    "\nClosed loop (default, no --rate): each connection sends its next message as soon as\n"
    "the previous one is answered, like smtp-source or wrk. The server sets the pace, and a\n"
    "stall also delays the messages that were not sent meanwhile, which the latencies then\n"
    "hide (coordinated omission). Open loop (--rate R): messages start on a schedule\n"
    "(constant or poisson) whatever the replies, like wrk2; the transaction latency counts\n"
    "from the scheduled start, waits for a free connection included, so stalls show in the\n"
    "tail. Use the open loop to measure latency, the closed loop to find the ceiling.\n"
    "\n"
    "DURATION: 250us, 5ms, 1.5s, 2m, 1h or a bare number of seconds. BYTES: 1024, 10K, 1M.\n"
    "--config FILE (TOML) takes every setting under its flag's name (--no-pipelining is\n"
    "pipelining = false); flags override the file; --print-config shows them all.\n"
    "Exit codes: 0 the run completed, 1 it could not run, 2 bad usage or configuration.\n"
    "\n"
    "Examples:\n"
    "  ringmta-loadgen --target 127.0.0.1:2525 --connections 50 --duration 30s\n"
    "  ringmta-loadgen --target 127.0.0.1:2525 --rate 2000 --duration 2m --warmup 10s \\\n"
    "      --json run.json --ledger run.ledger\n"
    "  ringmta-loadgen --messages 10000 --size uniform:1K-64K --recipients uniform:1-5 \\\n"
    "      --to-domain a.test:3 --to-domain b.test";

// --help stays within 100 columns: CLI11 does not wrap, but indents after a '\n'.
constexpr std::size_t kHelpColumn = 34;
std::string wrapped(std::string_view text) {
  constexpr std::size_t kWidth = 100 - kHelpColumn;
  std::string out;
  std::size_t line = 0;
  while (!text.empty()) {
    const std::size_t space = text.find(' ');
    const std::string_view word = text.substr(0, space);
    if (line > 0 && line + 1 + word.size() > kWidth) {
      out += '\n';
      line = 0;
    } else if (line > 0) {
      out += ' ';
      ++line;
    }
    out.append(word);
    line += word.size();
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
  }
  return out;
}

// A flag that sets a TOML key, applied after the file.
struct Flag {
  std::string key;
  bool is_switch = false;
  bool switch_value = false;  // the key's value when a switch flag is given
  std::string text;
  CLI::Option* option = nullptr;
};

// CLI11's parse errors, as one line that names the flag where it can.
std::string usage_error(const CLI::ParseError& e, const std::vector<std::string>& extras) {
  if (!extras.empty()) {
    const std::string& a = extras.front();
    if (a.starts_with("-")) {
      return a.substr(0, a.find('=')) + ": unknown option (ringmta-loadgen --help lists them)";
    }
    return in_quotes(a) + ": unexpected argument (options take the form --name VALUE)";
  }
  std::string msg = e.what();
  constexpr std::string_view kOverride = " was given a disallowed flag override";
  if (const std::size_t at = msg.find(kOverride); at != std::string::npos) {
    return "--" + msg.substr(0, at) + ": takes no value";
  }
  // CLI11 writes e.g. "--rate: 1 required TEXT missing"; keep its words on one line.
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  return msg + " (ringmta-loadgen --help lists the options)";
}

}  // namespace

const char* arrival_name(Arrival a) {
  return a == Arrival::poisson ? "poisson" : "constant";
}

std::string default_run_id() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "r%Y%m%dT%H%M%S", &tm);
  return std::string(buf) + "-" + std::to_string(::getpid());
}

bool operator==(const LoadConfig& a, const LoadConfig& b) {
  return a.target.to_string() == b.target.to_string() && a.threads == b.threads &&
         a.connections == b.connections && a.rate == b.rate && a.arrival == b.arrival &&
         a.messages == b.messages && a.duration_s == b.duration_s && a.warmup_s == b.warmup_s &&
         a.ramp_up_s == b.ramp_up_s && a.messages_per_connection == b.messages_per_connection &&
         a.think_time_us == b.think_time_us && a.helo == b.helo && a.pipelining == b.pipelining &&
         a.bdat == b.bdat && a.starttls == b.starttls && a.tls_verify == b.tls_verify &&
         a.tls_ca == b.tls_ca && a.tls_resumption == b.tls_resumption && a.auth == b.auth &&
         a.connect_timeout_ms == b.connect_timeout_ms &&
         a.reply_timeout_ms == b.reply_timeout_ms && a.size == b.size &&
         a.recipients == b.recipients && a.to_domains == b.to_domains && a.from == b.from &&
         a.run_id == b.run_id && a.seed == b.seed && a.json_path == b.json_path &&
         a.ledger_path == b.ledger_path && a.progress == b.progress;
}

int load_loadgen_config(int argc, char** argv, LoadConfig& out, std::ostream& out_stream,
                        std::ostream& err_stream) {
  CLI::App app(kDescription, kProgram);
  app.get_formatter()->column_width(kHelpColumn);
  app.footer(kFooter);

  std::string config_file;
  bool print_config = false;
  std::vector<std::string> to_domains;
  std::deque<Flag> flags;  // deque: CLI11 keeps references to the strings

  auto value = [&](const std::string& key, const std::string& type, const std::string& desc,
                   const std::string& group) {
    flags.push_back(Flag{key, false, false, {}, nullptr});
    flags.back().option =
        app.add_option("--" + key, flags.back().text, wrapped(desc))->type_name(type)->group(group);
  };
  auto on_switch = [&](const std::string& key, const std::string& desc, const std::string& group) {
    flags.push_back(Flag{key, true, true, {}, nullptr});
    const std::string text = wrapped(desc);  // add_flag takes the description by reference
    flags.back().option = app.add_flag("--" + key, text)->disable_flag_override()->group(group);
  };
  auto no_switch = [&](const std::string& key, const std::string& desc, const std::string& group) {
    flags.push_back(Flag{key, true, false, {}, nullptr});
    const std::string text = wrapped(desc);  // add_flag takes the description by reference
    flags.back().option = app.add_flag("--no-" + key, text)->disable_flag_override()->group(group);
  };

  const std::string g_target = "Target";
  value("target", "HOST:PORT",
        "SMTP server to load, numeric (default " + std::string(kDefaultTarget) + ")", g_target);
  value("threads", "N", "Loadgen threads, one io_uring each (default 1)", g_target);
  app.add_option("--config", config_file, "TOML file with any of these settings")
      ->type_name("FILE")
      ->group(g_target);

  const std::string g_load = "Load (closed loop unless --rate; see below)";
  value("connections", "N",
        "Closed loop: concurrent sessions, each sending back to back; open loop: the most "
        "connections open at once (default 50)",
        g_load);
  value("rate", "R",
        "Open loop: start R messages per second on schedule, whatever the replies "
        "(default: closed loop)",
        g_load);
  value("arrival", "constant|poisson",
        "Open loop: evenly spaced starts (default) or Poisson arrivals at the same mean rate",
        g_load);
  value("duration", "DURATION",
        "Stop starting messages after this, warm-up included (default 10s; no limit when "
        "--messages is given)",
        g_load);
  value("messages", "N", "Stop after N messages started, warm-up included (default: no limit)",
        g_load);
  value("warmup", "DURATION",
        "Messages started in this first part are sent and logged but not measured (default 0)",
        g_load);
  value("ramp-up", "DURATION",
        "Grow the rate (open) or the connections (closed) linearly over this (default 0)", g_load);
  value("messages-per-connection", "N",
        "QUIT and reconnect after N messages (default 0: keep the connection)", g_load);
  value("think-time", "DURATION",
        "Closed loop: pause between two messages of a connection (default 0)", g_load);

  const std::string g_smtp = "SMTP";
  value("helo", "NAME", "EHLO name (default loadgen.ringmta.test)", g_smtp);
  no_switch("pipelining", "Lockstep commands even if PIPELINING is offered (RFC 2920)", g_smtp);
  on_switch("bdat", "BDAT instead of DATA when CHUNKING is offered (RFC 3030)", g_smtp);
  value("connect-timeout", "DURATION", "Give up a connection attempt after this (default 10s)",
        g_smtp);
  on_switch("starttls",
            "STARTTLS (RFC 3207) on every connection; a server not offering it is an error",
            g_smtp);
  on_switch("tls-verify", "Verify the server's certificate (default: not verified)", g_smtp);
  value("tls-ca", "FILE", "CA certificates (PEM) for --tls-verify (default: the system's)",
        g_smtp);
  value("tls-resumption", "on|off",
        "Offer the last TLS session on new connections (tickets; default on)", g_smtp);
  value("auth", "USER:PASS", "AUTH PLAIN (LOGIN when PLAIN is not offered) after TLS", g_smtp);
  value("timeout", "DURATION", "Give up waiting for any one reply after this (default 60s)",
        g_smtp);

  const std::string g_msg = "Messages";
  value("size", "BYTES|SPEC",
        "Message size: BYTES, uniform:LOW-HIGH, lognormal:MEDIAN,SIGMA or file:PATH (one "
        "size a line) (default 1024)",
        g_msg);
  value("recipients", "N|uniform:A-B", "Recipients per message (default 1)", g_msg);
  app.add_option("--to-domain", to_domains,
                 wrapped("Recipient domain, repeatable; messages pick among them in proportion "
                         "to WEIGHT, a whole number (default 1). Default: ringmta.test"))
      ->type_name("DOMAIN[:WEIGHT]")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->group(g_msg);
  value("from", "ADDR", "Envelope sender and From: (default loadgen@ringmta.test)", g_msg);
  value("run-id", "ID",
        "The first part of each X-Ringmta-Id: letters, digits, '-', '.' and '_' (default "
        "r<UTC yyyymmddThhmmss>-<pid>)",
        g_msg);
  value("seed", "N", "Seed of the size, recipient and arrival draws (default 1)", g_msg);

  const std::string g_out = "Output";
  value("json", "FILE", "Write every figure as JSON (docs/result-format.md)", g_out);
  value("ledger", "FILE",
        "Write one line per message: id, reply, body SHA-256 (for reconciling with sinks)", g_out);
  no_switch("progress", "No live line per second (shown on a terminal only anyway)", g_out);
  app.add_flag("--print-config", print_config, "Print the effective configuration as TOML and exit")
      ->group(g_out);
  app.set_help_flag("-h,--help", "Print this help and exit")->group(g_out);
  app.set_version_flag("--version", std::string(kProgram) + " " RINGMTA_VERSION,
                       "Print the version and exit")
      ->group(g_out);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e, out_stream, err_stream);
    return 0;
  } catch (const CLI::CallForVersion& e) {
    app.exit(e, out_stream, err_stream);
    return 0;
  } catch (const CLI::ParseError& e) {
    err_stream << kProgram << ": " << usage_error(e, app.remaining()) << "\n";
    return 2;
  }

  try {
    LoadConfig cfg;
    Sources src;
    io::parse_socket_address(kDefaultTarget, cfg.target, nullptr);
    if (!config_file.empty()) {
      std::ifstream in(config_file, std::ios::binary);
      if (!in) {
        throw ConfigError("--config: cannot read " + in_quotes(config_file) + ": " +
                          std::strerror(errno));
      }
      std::stringstream text;
      text << in.rdbuf();
      toml::table root;
      try {
        root = toml::parse(text.str(), config_file);
      } catch (const toml::parse_error& e) {
        throw ConfigError(config_file + ":" + std::to_string(e.source().begin.line) + ":" +
                          std::to_string(e.source().begin.column) + ": " +
                          std::string(e.description()));
      }
      read_toml(config_file, root, cfg, src);
    }
    for (const Flag& f : flags) {
      if (f.option->count() == 0) continue;
      const Origin o{nullptr, {}, f.option->get_name()};
      apply_key(f.key, f.is_switch ? Value::of_switch(f.switch_value, o) : Value(f.text, o), cfg,
                src);
    }
    if (!to_domains.empty()) {
      std::vector<Value> values;
      for (const std::string& d : to_domains)
        values.emplace_back(d, Origin{nullptr, {}, "--to-domain"});
      cfg.to_domains = read_domains(values);
      src.origin.insert_or_assign("to-domain", values.front().origin());
    }
    // smtp-source habits: --messages N alone sends N messages, however long that takes.
    if (cfg.messages > 0 && src.find("duration") == nullptr) cfg.duration_s = 0;
    check(cfg, src);
    if (!src.run_id_given) cfg.run_id = default_run_id();

    if (print_config) {
      out_stream << format_loadgen_config(cfg, !src.run_id_given);
      return 0;
    }
    out = std::move(cfg);
    return -1;
  } catch (const ConfigError& e) {
    err_stream << kProgram << ": " << e.what() << "\n";
    return 2;
  }
}

// ---- --print-config --------------------------------------------------------------------------

namespace {

std::string toml_string(std::string_view s) {
  std::string r = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      r += '\\';
      r += ch;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      r += buf;
    } else {
      r += ch;
    }
  }
  return r + "\"";
}

// Integral rates print as integers ("1000"), others in the shortest form that reads back.
std::string toml_number(double v) {
  if (v == std::floor(v) && v < 9e15) return std::to_string(static_cast<std::int64_t>(v));
  std::string s = format_double(v);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

std::string toml_duration_s(double s) {
  return toml_string(format_duration_ns(seconds_to_ns(s)));
}

}  // namespace

std::string format_loadgen_config(const LoadConfig& c, bool run_id_generated) {
  std::ostringstream o;
  o << "# ringmta-loadgen effective configuration (--print-config); read it back with "
       "--config.\n";
  o << "target = " << toml_string(c.target.to_string()) << "\n";
  o << "threads = " << c.threads << "\n";
  o << "connections = " << c.connections << "\n";
  if (c.rate > 0) {
    o << "rate = " << toml_number(c.rate) << "\n";
  } else {
    o << "# rate = 1000  (messages per second, open loop; absent: closed loop)\n";
  }
  o << "arrival = " << toml_string(arrival_name(c.arrival)) << "\n";
  o << "messages = " << c.messages << "\n";
  o << "duration = " << toml_duration_s(c.duration_s) << "\n";
  o << "warmup = " << toml_duration_s(c.warmup_s) << "\n";
  o << "ramp-up = " << toml_duration_s(c.ramp_up_s) << "\n";
  o << "messages-per-connection = " << c.messages_per_connection << "\n";
  o << "think-time = " << toml_string(format_duration_ns(std::uint64_t{c.think_time_us} * 1'000))
    << "\n";
  o << "helo = " << toml_string(c.helo) << "\n";
  o << "pipelining = " << (c.pipelining ? "true" : "false") << "\n";
  o << "bdat = " << (c.bdat ? "true" : "false") << "\n";
  o << "starttls = " << (c.starttls ? "true" : "false") << "\n";
  o << "tls-verify = " << (c.tls_verify ? "true" : "false") << "\n";
  if (c.tls_ca.empty()) {
    o << "# tls-ca = \"FILE\"  (the system's)\n";
  } else {
    o << "tls-ca = " << toml_string(c.tls_ca) << "\n";
  }
  o << "tls-resumption = " << toml_string(c.tls_resumption ? "on" : "off") << "\n";
  if (c.auth.empty()) {
    o << "# auth = \"USER:PASS\"  (off)\n";
  } else {
    o << "auth = " << toml_string(c.auth) << "\n";
  }
  o << "connect-timeout = "
    << toml_string(format_duration_ns(std::uint64_t{c.connect_timeout_ms} * 1'000'000)) << "\n";
  o << "timeout = "
    << toml_string(format_duration_ns(std::uint64_t{c.reply_timeout_ms} * 1'000'000)) << "\n";
  o << "size = " << toml_string(c.size) << "\n";
  o << "recipients = " << toml_string(c.recipients) << "\n";
  o << "to-domain = [";
  for (std::size_t i = 0; i < c.to_domains.size(); ++i)
    o << (i ? ", " : "") << toml_string(c.to_domains[i]);
  o << "]\n";
  o << "from = " << toml_string(c.from) << "\n";
  if (run_id_generated) {
    o << "# run-id = " << toml_string(c.run_id) << "  (generated; absent: a new one per run)\n";
  } else {
    o << "run-id = " << toml_string(c.run_id) << "\n";
  }
  o << "seed = " << c.seed << "\n";
  if (c.json_path.empty()) {
    o << "# json = \"FILE\"  (off)\n";
  } else {
    o << "json = " << toml_string(c.json_path) << "\n";
  }
  if (c.ledger_path.empty()) {
    o << "# ledger = \"FILE\"  (off)\n";
  } else {
    o << "ledger = " << toml_string(c.ledger_path) << "\n";
  }
  o << "progress = " << (c.progress ? "true" : "false") << "\n";
  return o.str();
}

}  // namespace ringmta::loadgen
