// Parsing, formatting and sampling of --size specs; see size_spec.hpp.
#include "loadgen/size_spec.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numbers>

namespace ringmta::loadgen {
namespace {

constexpr const char* kSizeSyntax =
    "a whole number of bytes, optionally with K, M or G: 1024, 64K, 4M";

void set_why(std::string* why, std::string text) {
  if (why != nullptr) *why = std::move(text);
}

std::string in_quotes(std::string_view s) {
  std::string r = "'";
  r.append(s);
  r += '\'';
  return r;
}

// Shortest text that reads back to the same double ("1", "0.5").
std::string format_double(double v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

constexpr bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// The whole file; false with errno set (a directory fails with EISDIR at the first read).
bool read_file(const std::string& path, std::string& out) {
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"),
                                                          &std::fclose);
  if (f == nullptr) return false;
  char buf[16384];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0)
    out.append(buf, n);
  return std::ferror(f.get()) == 0;
}

// A size inside a larger spec: the reason names the spec too.
bool parse_spec_size(std::string_view spec, std::string_view text, std::uint64_t& out,
                     std::string* why) {
  std::string inner;
  if (parse_byte_size(text, out, why != nullptr ? &inner : nullptr)) return true;
  set_why(why, "in " + in_quotes(spec) + ": " + inner);
  return false;
}

}  // namespace

// ---- Byte sizes ------------------------------------------------------------------------------

bool parse_byte_size(std::string_view text, std::uint64_t& out, std::string* why) {
  if (text.empty()) {
    if (why != nullptr) *why = "empty size (write e.g. 1024, 64K, 4M)";
    return false;
  }
  if (text[0] == '-') {
    if (why != nullptr) *why = in_quotes(text) + ": a size cannot be negative";
    return false;
  }
  std::size_t i = 0;
  std::uint64_t n = 0;
  for (; i < text.size() && is_digit(text[i]); ++i) {
    if (i >= 12) {  // far beyond kMaxMessageBytes; keeps the arithmetic in 64 bits
      if (why != nullptr) *why = in_quotes(text) + " is larger than the 1G maximum";
      return false;
    }
    n = n * 10 + static_cast<std::uint64_t>(text[i] - '0');
  }
  const std::string_view unit = text.substr(i);
  if (i == 0 || (!unit.empty() && (unit[0] == '.' || unit[0] == ','))) {
    if (why != nullptr) *why = in_quotes(text) + " is not a size (" + kSizeSyntax + ")";
    return false;
  }
  std::uint64_t scale = 0;
  if (unit.empty()) {
    scale = 1;
  } else if (unit == "K" || unit == "k") {
    scale = std::uint64_t{1} << 10;
  } else if (unit == "M" || unit == "m") {
    scale = std::uint64_t{1} << 20;
  } else if (unit == "G" || unit == "g") {
    scale = std::uint64_t{1} << 30;
  } else {
    if (why != nullptr)
      *why = in_quotes(text) + ": unknown unit " + in_quotes(unit) + " (K, M or G)";
    return false;
  }
  const std::uint64_t bytes = n * scale;  // n < 10^12, scale <= 2^30: fits in 64 bits
  if (bytes == 0) {
    if (why != nullptr) *why = in_quotes(text) + ": a size must be at least 1 byte";
    return false;
  }
  if (bytes > kMaxMessageBytes) {
    if (why != nullptr) *why = in_quotes(text) + " is larger than the 1G maximum";
    return false;
  }
  out = bytes;
  return true;
}

std::string format_byte_size(std::uint64_t bytes) {
  if (bytes != 0) {
    for (const auto& [shift, name] : {std::pair{30, "G"}, std::pair{20, "M"}, std::pair{10, "K"}}) {
      const std::uint64_t unit = std::uint64_t{1} << shift;
      if (bytes % unit == 0) return std::to_string(bytes / unit) + name;
    }
  }
  return std::to_string(bytes);
}

// ---- Size specs ------------------------------------------------------------------------------

std::uint64_t SizeSpec::sample(Rng& rng) const {
  switch (kind) {
    case Kind::fixed:
      return a;
    case Kind::uniform:
      return a + rng.below(b - a + 1);
    case Kind::lognormal: {
      // Box-Muller; u1 in (0, 1] so the log is finite.
      const double u1 = 1.0 - rng.uniform01();
      const double u2 = rng.uniform01();
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
      const double v = std::round(static_cast<double>(a) * std::exp(sigma * z));
      if (!(v >= 1.0)) return 1;
      if (v >= static_cast<double>(kMaxMessageBytes)) return kMaxMessageBytes;
      return static_cast<std::uint64_t>(v);
    }
    case Kind::file:
      return sizes.empty() ? a : sizes[rng.below(sizes.size())];
  }
  return a;
}

std::uint64_t SizeSpec::min_bytes() const {
  switch (kind) {
    case Kind::fixed:
    case Kind::uniform:
      return a;
    case Kind::lognormal:
      return 1;
    case Kind::file:
      return sizes.empty() ? a : *std::min_element(sizes.begin(), sizes.end());
  }
  return a;
}

std::uint64_t SizeSpec::max_bytes() const {
  switch (kind) {
    case Kind::fixed:
      return a;
    case Kind::uniform:
      return b;
    case Kind::lognormal:
      return kMaxMessageBytes;
    case Kind::file:
      return sizes.empty() ? a : *std::max_element(sizes.begin(), sizes.end());
  }
  return a;
}

bool parse_size_list(std::string_view name, std::string_view content,
                     std::vector<std::uint64_t>& out, std::string* why) {
  std::vector<std::uint64_t> sizes;
  std::size_t line_no = 0;
  while (!content.empty()) {
    ++line_no;
    const std::size_t nl = content.find('\n');
    std::string_view line = content.substr(0, nl);
    content.remove_prefix(nl == std::string_view::npos ? content.size() : nl + 1);
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    std::uint64_t n = 0;
    std::string inner;
    if (!parse_byte_size(line, n, why != nullptr ? &inner : nullptr)) {
      set_why(why, std::string(name) + ":" + std::to_string(line_no) + ": " + inner);
      return false;
    }
    sizes.push_back(n);
  }
  if (sizes.empty()) {
    set_why(why, std::string(name) + ": no sizes (one per line; '#' starts a comment)");
    return false;
  }
  out = std::move(sizes);
  return true;
}

bool parse_size_spec(std::string_view text, SizeSpec& out, std::string* why) {
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    std::uint64_t n = 0;
    if (!parse_byte_size(text, n, why)) return false;
    out = SizeSpec{};
    out.a = n;
    return true;
  }
  const std::string_view dist = text.substr(0, colon);
  const std::string_view args = text.substr(colon + 1);
  if (dist == "uniform") {
    const std::size_t dash = args.find('-');
    if (dash == std::string_view::npos) {
      set_why(why, in_quotes(text) + ": write uniform:LOW-HIGH, e.g. uniform:1K-64K");
      return false;
    }
    std::uint64_t lo = 0;
    std::uint64_t hi = 0;
    if (!parse_spec_size(text, args.substr(0, dash), lo, why) ||
        !parse_spec_size(text, args.substr(dash + 1), hi, why)) {
      return false;
    }
    if (lo > hi) {
      set_why(why, in_quotes(text) + ": the low bound is above the high bound");
      return false;
    }
    out = SizeSpec{};
    out.kind = SizeSpec::Kind::uniform;
    out.a = lo;
    out.b = hi;
    return true;
  }
  if (dist == "lognormal") {
    const std::size_t comma = args.find(',');
    if (comma == std::string_view::npos) {
      set_why(why, in_quotes(text) + ": write lognormal:MEDIAN,SIGMA, e.g. lognormal:4K,1.0");
      return false;
    }
    std::uint64_t median = 0;
    if (!parse_spec_size(text, args.substr(0, comma), median, why)) return false;
    const std::string_view s = args.substr(comma + 1);
    double sigma = -1;
    const auto res = std::from_chars(s.data(), s.data() + s.size(), sigma);
    if (s.empty() || res.ec != std::errc() || res.ptr != s.data() + s.size() ||
        !std::isfinite(sigma) || sigma < 0 || sigma > 10) {
      set_why(why, in_quotes(text) + ": sigma must be a number from 0 to 10, got " + in_quotes(s));
      return false;
    }
    out = SizeSpec{};
    out.kind = SizeSpec::Kind::lognormal;
    out.a = median;
    out.sigma = sigma;
    return true;
  }
  if (dist == "file") {
    if (args.empty()) {
      set_why(why, in_quotes(text) + ": write file:PATH (one size per line)");
      return false;
    }
    const std::string path(args);
    std::string content;
    if (!read_file(path, content)) {
      set_why(why, "cannot read " + in_quotes(path) + ": " + std::strerror(errno));
      return false;
    }
    std::vector<std::uint64_t> sizes;
    if (!parse_size_list(path, content, sizes, why)) return false;
    out = SizeSpec{};
    out.kind = SizeSpec::Kind::file;
    out.path = path;
    out.sizes = std::move(sizes);
    return true;
  }
  set_why(why, in_quotes(text) + ": unknown distribution " + in_quotes(dist) +
                   " (uniform:LOW-HIGH, lognormal:MEDIAN,SIGMA or file:PATH)");
  return false;
}

std::string format_size_spec(const SizeSpec& spec) {
  switch (spec.kind) {
    case SizeSpec::Kind::fixed:
      return format_byte_size(spec.a);
    case SizeSpec::Kind::uniform:
      return "uniform:" + format_byte_size(spec.a) + "-" + format_byte_size(spec.b);
    case SizeSpec::Kind::lognormal:
      return "lognormal:" + format_byte_size(spec.a) + "," + format_double(spec.sigma);
    case SizeSpec::Kind::file:
      return "file:" + spec.path;
  }
  return format_byte_size(spec.a);
}

}  // namespace ringmta::loadgen
