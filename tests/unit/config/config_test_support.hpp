// What the tests of the configuration loaders share (relay, sink, loadgen): a loader run on an
// argv with its stdout and stderr captured, the one line a refusal writes, and a TOML file that
// lives for the test. Header-only; each test binary includes it.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace ringmta::config_test {

// What a loader returned (-1: run; 0: done, e.g. --help; 2: refused), wrote and loaded.
template <class Config>
struct LoadResult {
  int rc = -99;
  std::string out;
  std::string err;
  Config cfg;
};

// A loader's signature: load_relay_config, load_sink_config, load_loadgen_config.
template <class Config>
using Loader = int (*)(int argc, char** argv, Config& out, std::ostream& out_stream,
                       std::ostream& err_stream);

// `program args...` through the loader.
template <class Config>
LoadResult<Config> run_loader(Loader<Config> load, const char* program,
                              std::vector<std::string> args) {
  args.insert(args.begin(), program);
  std::vector<char*> argv;
  for (std::string& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::ostringstream out, err;
  LoadResult<Config> r;
  r.rc = load(static_cast<int>(args.size()), argv.data(), r.cfg, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

// The one line a refusal writes; the test fails unless it exited 2 with nothing on stdout.
template <class Config>
std::string refusal_text(const LoadResult<Config>& r) {
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_EQ(r.out, "");
  return r.err;
}

// A TOML file that lives for the test.
class TomlFile {
 public:
  explicit TomlFile(const std::string& text) {
    static int n = 0;
    path_ = ::testing::TempDir() + "ringmta_config_test_" + std::to_string(::getpid()) + "_" +
            std::to_string(n++) + ".toml";
    std::ofstream(path_) << text;
  }
  ~TomlFile() { std::remove(path_.c_str()); }
  TomlFile(const TomlFile&) = delete;
  TomlFile& operator=(const TomlFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace ringmta::config_test
