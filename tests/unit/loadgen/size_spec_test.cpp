// Size specs for --size: byte sizes, the four distributions, the sizes file, exact error
// reasons, and draws that follow the distribution (bounds, median, spread).
#include "loadgen/size_spec.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace ringmta::loadgen {
namespace {

std::string byte_size_error(std::string_view text) {
  std::uint64_t n = 7;
  std::string why;
  EXPECT_FALSE(parse_byte_size(text, n, &why)) << text;
  EXPECT_EQ(n, 7u) << "output changed on error: " << text;
  return why;
}

std::string spec_error(std::string_view text) {
  SizeSpec s;
  std::string why;
  EXPECT_FALSE(parse_size_spec(text, s, &why)) << text;
  return why;
}

SizeSpec spec(std::string_view text) {
  SizeSpec s;
  std::string why;
  EXPECT_TRUE(parse_size_spec(text, s, &why)) << text << ": " << why;
  return s;
}

const std::string kNotASize =
    " is not a size (a whole number of bytes, optionally with K, M or G: 1024, 64K, 4M)";

TEST(ByteSize, ParsesUnits) {
  const std::pair<std::string_view, std::uint64_t> cases[] = {
      {"1", 1},         {"1024", 1024},   {"1K", 1024},
      {"1k", 1024},     {"64K", 65536},   {"4M", 4u << 20},
      {"4m", 4u << 20}, {"1G", 1u << 30}, {"1073741824", 1u << 30},
  };
  for (const auto& [text, want] : cases) {
    std::uint64_t n = 0;
    std::string why;
    ASSERT_TRUE(parse_byte_size(text, n, &why)) << text << ": " << why;
    EXPECT_EQ(n, want) << text;
  }
}

TEST(ByteSize, RefusesWithTheReason) {
  EXPECT_EQ(byte_size_error(""), "empty size (write e.g. 1024, 64K, 4M)");
  EXPECT_EQ(byte_size_error("-5"), "'-5': a size cannot be negative");
  EXPECT_EQ(byte_size_error("abc"), "'abc'" + kNotASize);
  EXPECT_EQ(byte_size_error("K"), "'K'" + kNotASize);
  EXPECT_EQ(byte_size_error("1.5K"), "'1.5K'" + kNotASize);
  EXPECT_EQ(byte_size_error("5X"), "'5X': unknown unit 'X' (K, M or G)");
  EXPECT_EQ(byte_size_error("5KB"), "'5KB': unknown unit 'KB' (K, M or G)");
  EXPECT_EQ(byte_size_error("5 K"), "'5 K': unknown unit ' K' (K, M or G)");
  EXPECT_EQ(byte_size_error("0"), "'0': a size must be at least 1 byte");
  EXPECT_EQ(byte_size_error("0K"), "'0K': a size must be at least 1 byte");
  EXPECT_EQ(byte_size_error("2G"), "'2G' is larger than the 1G maximum");
  EXPECT_EQ(byte_size_error("1073741825"), "'1073741825' is larger than the 1G maximum");
  EXPECT_EQ(byte_size_error("99999999999999999999999"),
            "'99999999999999999999999' is larger than the 1G maximum");
  // Without a reason requested it still refuses.
  std::uint64_t n = 0;
  EXPECT_FALSE(parse_byte_size("x", n, nullptr));
}

TEST(ByteSize, FormatIsShortestAndParsesBack) {
  EXPECT_EQ(format_byte_size(1024), "1K");
  EXPECT_EQ(format_byte_size(1536), "1536");
  EXPECT_EQ(format_byte_size(4u << 20), "4M");
  EXPECT_EQ(format_byte_size(1u << 30), "1G");
  EXPECT_EQ(format_byte_size(1000), "1000");
  for (const std::uint64_t v : {1ull, 999ull, 1024ull, 3ull << 20, 12345678ull, 1ull << 30}) {
    std::uint64_t back = 0;
    ASSERT_TRUE(parse_byte_size(format_byte_size(v), back, nullptr)) << v;
    EXPECT_EQ(back, v);
  }
}

TEST(SizeSpec, ParsesEachKind) {
  SizeSpec f = spec("4K");
  EXPECT_EQ(f.kind, SizeSpec::Kind::fixed);
  EXPECT_EQ(f.a, 4096u);
  EXPECT_EQ(f.min_bytes(), 4096u);
  EXPECT_EQ(f.max_bytes(), 4096u);

  SizeSpec u = spec("uniform:1K-64K");
  EXPECT_EQ(u.kind, SizeSpec::Kind::uniform);
  EXPECT_EQ(u.a, 1024u);
  EXPECT_EQ(u.b, 65536u);
  EXPECT_EQ(u.min_bytes(), 1024u);
  EXPECT_EQ(u.max_bytes(), 65536u);

  SizeSpec l = spec("lognormal:4K,1.0");
  EXPECT_EQ(l.kind, SizeSpec::Kind::lognormal);
  EXPECT_EQ(l.a, 4096u);
  EXPECT_DOUBLE_EQ(l.sigma, 1.0);
  EXPECT_EQ(l.min_bytes(), 1u);
  EXPECT_EQ(l.max_bytes(), kMaxMessageBytes);

  EXPECT_EQ(spec("uniform:5-5").b, 5u);
  EXPECT_DOUBLE_EQ(spec("lognormal:1M,0").sigma, 0.0);
}

TEST(SizeSpec, RefusesWithTheReason) {
  EXPECT_EQ(spec_error(""), "empty size (write e.g. 1024, 64K, 4M)");
  EXPECT_EQ(spec_error("4Q"), "'4Q': unknown unit 'Q' (K, M or G)");
  EXPECT_EQ(spec_error("uniform:1K"), "'uniform:1K': write uniform:LOW-HIGH, e.g. uniform:1K-64K");
  EXPECT_EQ(spec_error("uniform:1K-x"), "in 'uniform:1K-x': 'x'" + kNotASize);
  EXPECT_EQ(spec_error("uniform:-1K"), "in 'uniform:-1K': empty size (write e.g. 1024, 64K, 4M)");
  EXPECT_EQ(spec_error("uniform:1K-2G"), "in 'uniform:1K-2G': '2G' is larger than the 1G maximum");
  EXPECT_EQ(spec_error("uniform:64K-1K"),
            "'uniform:64K-1K': the low bound is above the high bound");
  EXPECT_EQ(spec_error("lognormal:4K"),
            "'lognormal:4K': write lognormal:MEDIAN,SIGMA, e.g. lognormal:4K,1.0");
  EXPECT_EQ(spec_error("lognormal:0,1"), "in 'lognormal:0,1': '0': a size must be at least 1 byte");
  EXPECT_EQ(spec_error("lognormal:4K,-1"),
            "'lognormal:4K,-1': sigma must be a number from 0 to 10, got '-1'");
  EXPECT_EQ(spec_error("lognormal:4K,11"),
            "'lognormal:4K,11': sigma must be a number from 0 to 10, got '11'");
  EXPECT_EQ(spec_error("lognormal:4K,"),
            "'lognormal:4K,': sigma must be a number from 0 to 10, got ''");
  EXPECT_EQ(spec_error("lognormal:4K,1x"),
            "'lognormal:4K,1x': sigma must be a number from 0 to 10, got '1x'");
  EXPECT_EQ(spec_error("lognormal:4K,nan"),
            "'lognormal:4K,nan': sigma must be a number from 0 to 10, got 'nan'");
  EXPECT_EQ(spec_error("normal:4K,1"),
            "'normal:4K,1': unknown distribution 'normal' "
            "(uniform:LOW-HIGH, lognormal:MEDIAN,SIGMA or file:PATH)");
  EXPECT_EQ(spec_error("file:"), "'file:': write file:PATH (one size per line)");
  EXPECT_EQ(spec_error("file:/nonexistent/ringmta/sizes.txt"),
            "cannot read '/nonexistent/ringmta/sizes.txt': No such file or directory");
  const std::string dir = ::testing::TempDir();
  EXPECT_EQ(spec_error("file:" + dir), "cannot read '" + dir + "': Is a directory");
}

TEST(SizeList, SkipsCommentsAndBlankLines) {
  std::vector<std::uint64_t> sizes;
  std::string why;
  ASSERT_TRUE(parse_size_list("sizes.txt",
                              "# sizes seen on the mail gateway\n"
                              "1024\n"
                              "\n"
                              "  4K   # a comment after the size\r\n"
                              "\t2M\n"
                              "   \n"
                              "700",  // no final newline
                              sizes, &why))
      << why;
  EXPECT_EQ(sizes, (std::vector<std::uint64_t>{1024, 4096, 2u << 20, 700}));
}

TEST(SizeList, RefusesWithFileAndLine) {
  std::vector<std::uint64_t> sizes{1};
  std::string why;
  EXPECT_FALSE(parse_size_list("sizes.txt", "1024\n# c\nabc\n", sizes, &why));
  EXPECT_EQ(why, "sizes.txt:3: 'abc'" + kNotASize);
  EXPECT_EQ(sizes, std::vector<std::uint64_t>{1});  // untouched on error
  EXPECT_FALSE(parse_size_list("s", "1K\n2G\n", sizes, &why));
  EXPECT_EQ(why, "s:2: '2G' is larger than the 1G maximum");
  EXPECT_FALSE(parse_size_list("s", "0\n", sizes, &why));
  EXPECT_EQ(why, "s:1: '0': a size must be at least 1 byte");
  EXPECT_FALSE(parse_size_list("empty.txt", "# nothing\n\n", sizes, &why));
  EXPECT_EQ(why, "empty.txt: no sizes (one per line; '#' starts a comment)");
  EXPECT_FALSE(parse_size_list("empty.txt", "", sizes, &why));
  EXPECT_EQ(why, "empty.txt: no sizes (one per line; '#' starts a comment)");
}

std::string write_temp(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(SizeSpec, FileIsReadAndDrawnByLine) {
  const std::string path = write_temp("ringmta_sizes_ok.txt", "# sizes\n1000\n2K\n3000\n");
  const SizeSpec s = spec("file:" + path);
  EXPECT_EQ(s.kind, SizeSpec::Kind::file);
  EXPECT_EQ(s.path, path);
  EXPECT_EQ(s.sizes, (std::vector<std::uint64_t>{1000, 2048, 3000}));
  EXPECT_EQ(s.min_bytes(), 1000u);
  EXPECT_EQ(s.max_bytes(), 3000u);
  EXPECT_EQ(format_size_spec(s), "file:" + path);

  Rng rng(5);
  std::map<std::uint64_t, int> seen;
  constexpr int kDraws = 30000;
  for (int i = 0; i < kDraws; ++i)
    ++seen[s.sample(rng)];
  ASSERT_EQ(seen.size(), 3u);
  for (const auto& [size, n] : seen) {
    EXPECT_NEAR(n / double(kDraws), 1.0 / 3, 0.015) << size;
  }

  const std::string bad = write_temp("ringmta_sizes_bad.txt", "1000\nlots\n");
  EXPECT_EQ(spec_error("file:" + bad), bad + ":2: 'lots'" + kNotASize);
  std::remove(path.c_str());
  std::remove(bad.c_str());
}

TEST(SizeSpec, FormatParsesBack) {
  for (const std::string_view text :
       {"1K", "1500", "uniform:1K-64K", "uniform:100-100", "lognormal:4K,1", "lognormal:3M,0.25"}) {
    const SizeSpec s = spec(text);
    EXPECT_EQ(format_size_spec(s), text);
    EXPECT_EQ(spec(format_size_spec(s)), s);
  }
}

TEST(SizeSpec, FixedAlwaysDrawsItsSize) {
  const SizeSpec s = spec("4K");
  Rng rng(1);
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(s.sample(rng), 4096u);
}

TEST(SizeSpec, UniformStaysInBoundsAndCoversThem) {
  const SizeSpec s = spec("uniform:1K-64K");
  Rng rng(2);
  constexpr int kDraws = 100000;
  std::uint64_t lo = UINT64_MAX;
  std::uint64_t hi = 0;
  double sum = 0;
  for (int i = 0; i < kDraws; ++i) {
    const std::uint64_t v = s.sample(rng);
    ASSERT_GE(v, 1024u);
    ASSERT_LE(v, 65536u);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += double(v);
  }
  EXPECT_LT(lo, 1024u + 100);
  EXPECT_GT(hi, 65536u - 100);
  EXPECT_NEAR(sum / kDraws, (1024 + 65536) / 2.0, 0.01 * (1024 + 65536) / 2.0);
  // Both ends are reachable: a two-value range gives both.
  const SizeSpec two = spec("uniform:10-11");
  int tens = 0;
  for (int i = 0; i < 1000; ++i)
    tens += two.sample(rng) == 10 ? 1 : 0;
  EXPECT_NEAR(tens, 500, 60);
}

TEST(SizeSpec, LognormalHasItsMedianAndSpread) {
  const SizeSpec s = spec("lognormal:4K,1.0");
  Rng rng(3);
  constexpr int kDraws = 100000;
  std::vector<std::uint64_t> v(kDraws);
  for (auto& x : v)
    x = s.sample(rng);
  std::nth_element(v.begin(), v.begin() + kDraws / 2, v.end());
  EXPECT_NEAR(double(v[kDraws / 2]), 4096.0, 0.02 * 4096);
  // One sigma either side of the median holds 68.3% (15.9% beyond each side).
  const double low = 4096 * std::exp(-1.0);
  const double high = 4096 * std::exp(1.0);
  const auto below = std::count_if(v.begin(), v.end(), [&](auto x) { return double(x) < low; });
  const auto above = std::count_if(v.begin(), v.end(), [&](auto x) { return double(x) > high; });
  EXPECT_NEAR(double(below) / kDraws, 0.1587, 0.01);
  EXPECT_NEAR(double(above) / kDraws, 0.1587, 0.01);
  // Draws are clamped to the accepted range.
  const SizeSpec wide = spec("lognormal:1G,10");
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t x = wide.sample(rng);
    ASSERT_GE(x, 1u);
    ASSERT_LE(x, kMaxMessageBytes);
  }
}

TEST(SizeSpec, SameSeedSameDraws) {
  const SizeSpec s = spec("lognormal:4K,0.5");
  Rng a(42);
  Rng b(42);
  Rng c(43);
  int differ = 0;
  for (int i = 0; i < 100; ++i) {
    const std::uint64_t x = s.sample(a);
    ASSERT_EQ(x, s.sample(b));
    differ += x != s.sample(c) ? 1 : 0;
  }
  EXPECT_GT(differ, 90);
}

}  // namespace
}  // namespace ringmta::loadgen
