// Message size distributions for ringmta-loadgen's --size: a fixed size ("1024", "1K", "4M"),
// uniform:LOW-HIGH, lognormal:MEDIAN,SIGMA or file:PATH (one size per line). Parsed at start;
// the message factory draws from it when it builds its body pool, never per message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "loadgen/rng.hpp"

namespace ringmta::loadgen {

// No spec may ask for more than this per message (1 GiB): beyond it the spec is a typo.
inline constexpr std::uint64_t kMaxMessageBytes = std::uint64_t{1} << 30;

// "1024", "64K", "4M", "1G": a whole number of bytes with an optional binary multiple
// (K = 1024, M, G; either case), from 1 to kMaxMessageBytes. On error returns false and, if
// why is not null, says what is wrong. Does not allocate when why is null.
bool parse_byte_size(std::string_view text, std::uint64_t& out, std::string* why);
// The shortest exact text for a size: "4M", "64K", "1500" (parses back).
std::string format_byte_size(std::uint64_t bytes);

struct SizeSpec {
  enum class Kind : std::uint8_t { fixed, uniform, lognormal, file };
  Kind kind = Kind::fixed;
  std::uint64_t a = 1024;  // fixed: the size; uniform: the low bound; lognormal: the median
  std::uint64_t b = 0;     // uniform: the high bound (inclusive)
  double sigma = 0;        // lognormal: sigma of the underlying normal
  std::string path;        // file: the path as given
  std::vector<std::uint64_t> sizes;  // file: the sizes, in file order (at least one)

  // A draw in [min_bytes(), max_bytes()]: file sizes are drawn uniformly by line; lognormal
  // draws are rounded and clamped to [1, kMaxMessageBytes].
  std::uint64_t sample(Rng& rng) const;
  std::uint64_t min_bytes() const;  // the smallest possible draw (lognormal: 1)
  std::uint64_t max_bytes() const;  // the largest possible draw (lognormal: kMaxMessageBytes)
  friend bool operator==(const SizeSpec&, const SizeSpec&) = default;
};

// "4K", "uniform:1K-64K", "lognormal:4K,1.0" (sigma 0 to 10), "file:PATH". file: reads PATH
// now (start-up only) through parse_size_list. False with a reason on error.
bool parse_size_spec(std::string_view text, SizeSpec& out, std::string* why);
// The body of a sizes file: one size per line (parse_byte_size syntax); blank lines are
// skipped, '#' starts a comment. name (the path) prefixes the reasons: "sizes.txt:3: ...".
bool parse_size_list(std::string_view name, std::string_view content,
                     std::vector<std::uint64_t>& out, std::string* why);
// Parses back to an equal SizeSpec (file: re-reads the file).
std::string format_size_spec(const SizeSpec& spec);

}  // namespace ringmta::loadgen
