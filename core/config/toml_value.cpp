// Reading settings alike from TOML and from flags; see toml_value.hpp. Taken from the sink's
// and the loadgen's loaders (same texts, so their messages do not change when they switch).
#include "core/config/toml_value.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/smtp/ascii.hpp"

namespace ringmta::config {

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

std::string Origin::prefix() const {
  if (file == nullptr) return name;
  return *file + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": " + name;
}

void fail_at(const Origin& o, const std::string& reason) {
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

// ---- Durations -------------------------------------------------------------------------------

bool parse_duration_ns(std::string_view text, std::uint64_t& out, std::string& why,
                       BareNumber bare) {
  const bool bare_seconds = bare == BareNumber::seconds;
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
    return bad(in_quotes(text) + " is not a duration (a number and a unit: 250us, 5ms, 1.5s, " +
               "2m, 1h" + (bare_seconds ? "; or seconds)" : ")"));
  }
  const std::string_view unit = text.substr(i);
  std::uint64_t scale = 0;
  if (unit == "ns") {
    scale = 1;
  } else if (unit == "us") {
    scale = 1'000;
  } else if (unit == "ms") {
    scale = 1'000'000;
  } else if (unit == "s" || (unit.empty() && bare_seconds)) {
    scale = kNsPerSecond;
  } else if (unit == "m") {
    scale = 60 * kNsPerSecond;
  } else if (unit == "h") {
    scale = 3600 * kNsPerSecond;
  } else if (unit.empty() && whole == 0 && frac == 0) {
    scale = 1;  // zero is zero in any unit
  } else if (unit.empty()) {
    return bad(in_quotes(text) + " needs a unit (ns, us, ms, s, m or h)");
  } else {
    return bad(in_quotes(text) + ": unknown unit " + in_quotes(unit) + " (ns, us, ms, s, m or h" +
               (bare_seconds ? "; none means seconds)" : ")"));
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

// ---- Sizes -----------------------------------------------------------------------------------

bool parse_size(std::string_view text, std::uint64_t& out) {
  std::uint64_t scale = 1;
  if (!text.empty()) {
    switch (smtp::to_lower(text.back())) {
      case 'k':
        scale = std::uint64_t{1} << 10;
        break;
      case 'm':
        scale = std::uint64_t{1} << 20;
        break;
      case 'g':
        scale = std::uint64_t{1} << 30;
        break;
      default:
        break;
    }
    if (scale != 1) text.remove_suffix(1);
  }
  std::uint64_t n = 0;
  // 16 digits keep n * scale (<= 2^30) from overflowing before the range check.
  if (!smtp::parse_decimal(text, 16, n) || n > kMaxSize / scale) return false;
  out = n * scale;
  return true;
}

std::string format_size(std::uint64_t bytes) {
  if (bytes != 0) {
    for (const auto& [shift, suffix] :
         {std::pair{30, 'G'}, std::pair{20, 'M'}, std::pair{10, 'K'}}) {
      if (bytes % (std::uint64_t{1} << shift) == 0) {
        return std::to_string(bytes >> shift) + suffix;
      }
    }
  }
  return std::to_string(bytes);
}

// ---- Files -----------------------------------------------------------------------------------

toml::table parse_toml_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError("--config: cannot read " + in_quotes(path) + ": " + std::strerror(errno));
  }
  std::stringstream text;
  text << in.rdbuf();
  try {
    return toml::parse(text.str(), path);
  } catch (const toml::parse_error& e) {
    throw ConfigError(path + ":" + std::to_string(e.source().begin.line) + ":" +
                      std::to_string(e.source().begin.column) + ": " +
                      std::string(e.description()));
  }
}

// ---- Values ----------------------------------------------------------------------------------

std::string Value::shown() const {
  if (node_ == nullptr) return in_quotes(text_);
  if (const auto* s = node_->as_string()) return "\"" + s->get() + "\"";
  if (const auto* i = node_->as_integer()) return std::to_string(i->get());
  if (const auto* f = node_->as_floating_point()) return format_double(f->get());
  if (const auto* b = node_->as_boolean()) return b->get() ? "true" : "false";
  return type_name(*node_);
}

std::string Value::text(std::string_view expected) const {
  if (node_ == nullptr) return text_;
  if (const auto* s = node_->as_string()) return s->get();
  fail("must be " + std::string(expected) + ", not " + type_name(*node_));
}

double Value::number(double lo, double hi, std::string_view expected) const {
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

std::int64_t Value::integer(std::int64_t lo, std::int64_t hi, std::string_view expected) const {
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

bool Value::boolean() const {
  if (node_ == nullptr) {
    if (switch_) return text_ == "true";
    if (text_ == "true" || text_ == "false") return text_ == "true";
    fail("must be true or false, got " + shown());
  }
  if (const auto* b = node_->as_boolean()) return b->get();
  fail("must be true or false, not " + type_name(*node_));
}

std::uint64_t Value::duration_ns(std::uint64_t max_ns, BareNumber bare) const {
  const std::string_view expected =
      bare == BareNumber::seconds
          ? "a duration such as \"10s\", \"500ms\" or \"2m\", or a number of seconds"
          : "a duration with a unit, such as \"500us\", \"5ms\" or \"1s\"";
  std::uint64_t ns = 0;
  if (bare == BareNumber::seconds && node_ != nullptr &&
      (node_->is_integer() || node_->is_floating_point())) {
    const double s = number(0, static_cast<double>(max_ns) / kNsPerSecond, expected);
    ns = static_cast<std::uint64_t>(std::llround(s * static_cast<double>(kNsPerSecond)));
  } else {
    std::string why;
    if (!parse_duration_ns(text(expected), ns, why, bare)) fail(why);
  }
  if (ns > max_ns) fail("must be at most " + format_duration_ns(max_ns) + ", got " + shown());
  return ns;
}

std::uint64_t Value::size() const {
  constexpr std::string_view kExpected =
      "a size in bytes (an integer, or text such as \"512K\", \"35M\", \"1G\")";
  if (is_integer_node()) {
    return static_cast<std::uint64_t>(integer(0, static_cast<std::int64_t>(kMaxSize), kExpected));
  }
  std::uint64_t n = 0;
  if (!parse_size(text(kExpected), n))
    fail("must be " + std::string(kExpected) + ", got " + shown());
  return n;
}

io::SocketAddress Value::address() const {
  const std::string s = text("an address \"HOST:PORT\"");
  io::SocketAddress a;
  std::string why;
  if (!io::parse_socket_address(s, a, &why)) fail(in_quotes(s) + ": " + why);
  return a;
}

}  // namespace ringmta::config
