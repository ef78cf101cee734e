// Golden transcripts: each tests/golden/smtp/*.in script is run through a ServerSession and
// compared with its .ref (RINGMTA_UPDATE_GOLDEN=1 rewrites the .ref files; review the diff).
// The split test runs every script again with its input cut at every byte position, and
// byte by byte: the transcript must not change.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "transcript.hpp"

namespace ringmta::smtp::testing {
namespace {

namespace fs = std::filesystem;

const fs::path kGoldenDir = "tests/golden/smtp";

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<std::string> golden_names() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(kGoldenDir)) {
    if (e.path().extension() == ".in") names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, MatchesReference) {
  const fs::path in = kGoldenDir / (GetParam() + ".in");
  const fs::path ref = kGoldenDir / (GetParam() + ".ref");
  const std::string actual = run_script(parse_script(read_file(in)));
  if (std::getenv("RINGMTA_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(ref, std::ios::binary) << actual;
    GTEST_SKIP() << "rewrote " << ref;
  }
  ASSERT_TRUE(fs::exists(ref)) << "missing " << ref;
  EXPECT_EQ(read_file(ref), actual);
}

TEST_P(Golden, SameAtEverySplitPoint) {
  const Script script = merge_steps(parse_script(read_file(kGoldenDir / (GetParam() + ".in"))));
  const std::string whole = run_script(script);
  std::size_t index = 0;
  for (const ScriptStep& step : script.steps) {
    if (step.kind != ScriptStep::Kind::bytes) continue;
    std::vector<std::vector<std::size_t>> cuts(index + 1);
    for (std::size_t p = 1; p < step.bytes.size(); ++p) {
      cuts[index] = {p};
      const std::string split = run_script(script, cuts);
      ASSERT_EQ(whole, split) << "read " << index << " cut at byte " << p;
    }
    std::vector<std::size_t> every(step.bytes.size());
    for (std::size_t p = 0; p < every.size(); ++p) every[p] = p;
    cuts[index] = every;
    ASSERT_EQ(whole, run_script(script, cuts)) << "read " << index << " fed byte by byte";
    ++index;
  }
}

TEST_P(Golden, MergedReadsGiveTheSameTranscript) {
  // The .in's own reads and the same bytes in as few reads as possible agree.
  const Script script = parse_script(read_file(kGoldenDir / (GetParam() + ".in")));
  EXPECT_EQ(run_script(script), run_script(merge_steps(script)));
}

INSTANTIATE_TEST_SUITE_P(Smtp, Golden, ::testing::ValuesIn(golden_names()),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace ringmta::smtp::testing
