// Corpus replay for builds without libFuzzer: runs LLVMFuzzerTestOneInput on every file of
// the directories (or single files) given, so the fuzz corpus is an ordinary CTest test.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

bool run_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "cannot read %s\n", p.c_str());
    return false;
  }
  const std::vector<char> bytes((std::istreambuf_iterator<char>(f)),
                                std::istreambuf_iterator<char>());
  // A copy of exactly `size` bytes, so ASan sees reads past the end, as under libFuzzer.
  const auto copy = std::make_unique<std::uint8_t[]>(bytes.size() + 1);
  std::copy(bytes.begin(), bytes.end(), copy.get());
  std::fprintf(stderr, "running %s (%zu bytes)\n", p.c_str(), bytes.size());
  LLVMFuzzerTestOneInput(copy.get(), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
    return 2;
  }
  std::size_t total = 0;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg(argv[i]);
    std::error_code ec;
    if (fs::is_regular_file(arg, ec)) {
      if (!run_file(arg)) return 1;
      ++total;
      continue;
    }
    if (!fs::is_directory(arg, ec)) {
      std::fprintf(stderr, "%s: no such directory\n", argv[i]);
      return 1;
    }
    std::vector<fs::path> files;
    for (const fs::directory_entry& e : fs::directory_iterator(arg, ec)) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
    if (ec || files.empty()) {
      std::fprintf(stderr, "%s: empty or unreadable corpus\n", argv[i]);
      return 1;
    }
    std::sort(files.begin(), files.end());  // a stable order makes failures reproducible
    for (const fs::path& p : files) {
      if (!run_file(p)) return 1;
    }
    std::printf("%s: %zu inputs\n", argv[i], files.size());
    total += files.size();
  }
  std::printf("replayed %zu inputs\n", total);
  return 0;
}
