// Body scanning throughput: BodyScanner::scan_data (DATA) and scan_chunk (BDAT) over realistic
// 1 KiB and 1 MiB bodies, SIMD and scalar, whole or in 16 KiB pieces; memchr as the baseline.
#include <benchmark/benchmark.h>

#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "core/smtp/body_scanner.hpp"
#include "tests/micro/bench_bodies.hpp"

namespace ringmta::smtp {
namespace {

constexpr std::size_t kPiece = 16 * 1024;  // one receive buffer of the ring

// Bodies are made once per size, before any timing, and live for the whole run.
const bench::DataBody& body_of(std::size_t size,
                               std::size_t dot_every = bench::kDefaultDotEvery) {
  static std::map<std::pair<std::size_t, std::size_t>, bench::DataBody> bodies;
  const auto key = std::make_pair(size, dot_every);
  auto it = bodies.find(key);
  if (it == bodies.end()) it = bodies.emplace(key, bench::make_data_body(size, dot_every)).first;
  return it->second;
}

// Scans `wire` in pieces of `piece` bytes and checks everything the scanner reports against
// what the generator knows. Returns an error text, or nullptr when all is as expected.
const char* check_data_scan_once(const bench::DataBody& b, bool simd, std::size_t piece) {
  BodyScanner scanner(simd);
  scanner.begin_data();
  std::string seen;
  const std::string_view wire = b.wire;
  std::size_t pos = 0;
  bool done = false;
  while (pos < wire.size() && !done) {
    const std::string_view in = wire.substr(pos, piece);
    const BodyScanner::DataStep st = scanner.scan_data(in);
    seen.append(st.released);
    seen.append(st.body);
    pos += st.consumed;
    done = st.done;
    if (!done && st.consumed != in.size()) return "scan_data stopped early";
  }
  if (!done || pos != wire.size()) return "end of data not found at the end";
  if (seen != b.content()) return "body handed on differs from the content";
  if (scanner.flaws() != 0) return "flaws reported in a clean body";
  if (scanner.dot_lines() != b.stuffed_lines) return "wrong dot_lines";
  if (scanner.wire_octets() != b.content().size()) return "wrong wire_octets";
  if (scanner.message_octets() != b.content().size() - b.stuffed_lines) {
    return "wrong message_octets";
  }
  return nullptr;
}

// check_data_scan_once() for the whole body, 16 KiB pieces and a few odd piece sizes (1 byte,
// either side of a 64-byte block, either side of a piece) that exercise the held-back "." and
// ".\r" paths. Memoised: the benchmark functions run several times per benchmark.
const char* check_data_scan(const bench::DataBody& b, bool simd) {
  static std::map<std::pair<const bench::DataBody*, bool>, const char*> verdicts;
  const auto key = std::make_pair(&b, simd);
  if (auto it = verdicts.find(key); it != verdicts.end()) return it->second;
  const char* err = nullptr;
  for (std::size_t piece : {b.wire.size(), kPiece, kPiece + 1, std::size_t{1}, std::size_t{63},
                            std::size_t{65}}) {
    if ((err = check_data_scan_once(b, simd, piece)) != nullptr) break;
  }
  verdicts[key] = err;
  return err;
}

// Times scan_data over the whole of `b` in one input.
void run_scan_data(benchmark::State& state, const bench::DataBody& b, bool simd) {
  if (const char* err = check_data_scan(b, simd)) {
    state.SkipWithError(err);
    return;
  }
  BodyScanner scanner(simd);
  std::string_view in = b.wire;
  for (auto _ : state) {
    benchmark::DoNotOptimize(in);
    scanner.begin_data();
    BodyScanner::DataStep st = scanner.scan_data(in);
    benchmark::DoNotOptimize(st);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(b.wire.size()));
}

// DATA body in one input. Args: simd (0/1), body size.
void BM_ScanData(benchmark::State& state) {
  run_scan_data(state, body_of(static_cast<std::size_t>(state.range(1))), state.range(0) != 0);
}
BENCHMARK(BM_ScanData)
    ->ArgNames({"simd", "bytes"})
    ->Args({1, 1024})
    ->Args({0, 1024})
    ->Args({1, 1 << 20})
    ->Args({0, 1 << 20});

// How the share of dot-stuffed lines moves the SIMD path: 1 MiB, a dot line every N text
// lines (0: none). Such a line's block cannot be skipped. Args: N.
void BM_ScanDataDots(benchmark::State& state) {
  run_scan_data(state, body_of(1 << 20, static_cast<std::size_t>(state.range(0))), true);
}
BENCHMARK(BM_ScanDataDots)->ArgName("dot_every")->Arg(0)->Arg(100)->Arg(10)->Arg(1);

// DATA body fed in 16 KiB pieces, as a receive buffer ring hands it over. Args: simd, size.
void BM_ScanDataPieces(benchmark::State& state) {
  const bool simd = state.range(0) != 0;
  const bench::DataBody& b = body_of(static_cast<std::size_t>(state.range(1)));
  if (const char* err = check_data_scan(b, simd)) {
    state.SkipWithError(err);
    return;
  }
  BodyScanner scanner(simd);
  const std::string_view wire = b.wire;
  for (auto _ : state) {
    scanner.begin_data();
    std::size_t pos = 0;
    bool done = false;
    while (!done && pos < wire.size()) {
      std::string_view in = wire.substr(pos, kPiece);
      benchmark::DoNotOptimize(in);
      BodyScanner::DataStep st = scanner.scan_data(in);
      benchmark::DoNotOptimize(st);
      pos += st.consumed;
      done = st.done;
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(wire.size()));
}
BENCHMARK(BM_ScanDataPieces)->ArgNames({"simd", "bytes"})->Args({1, 1 << 20})->Args({0, 1 << 20});

// BDAT: the same content as one LAST chunk (length-framed, no terminator). Args: simd, size.
void BM_ScanChunk(benchmark::State& state) {
  const bool simd = state.range(0) != 0;
  const bench::DataBody& b = body_of(static_cast<std::size_t>(state.range(1)));
  std::string_view chunk = b.content();
  {
    BodyScanner check(simd);
    check.begin_chunked();
    check.scan_chunk(chunk);
    if (check.flaws() != 0 || check.wire_octets() != chunk.size() ||
        check.dot_lines() != b.stuffed_lines) {
      state.SkipWithError("scan_chunk result differs from the generator's");
      return;
    }
  }
  BodyScanner scanner(simd);
  for (auto _ : state) {
    benchmark::DoNotOptimize(chunk);
    scanner.begin_chunked();
    scanner.scan_chunk(chunk);
    std::uint8_t flaws = scanner.flaws();
    benchmark::DoNotOptimize(flaws);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(chunk.size()));
}
BENCHMARK(BM_ScanChunk)->ArgNames({"simd", "bytes"})->Args({1, 1 << 20})->Args({0, 1 << 20});

// Baseline: only find each line end with memchr, line by line, over the same DATA body. A
// scanner that also checks CR/LF pairing, line length and dots cannot beat this by much.
void BM_MemchrLines(benchmark::State& state) {
  const bench::DataBody& b = body_of(static_cast<std::size_t>(state.range(0)));
  std::string_view in = b.wire;
  for (auto _ : state) {
    benchmark::DoNotOptimize(in);
    const char* p = in.data();
    const char* const end = p + in.size();
    std::size_t lines = 0;
    while (const void* lf = std::memchr(p, '\n', static_cast<std::size_t>(end - p))) {
      p = static_cast<const char*>(lf) + 1;
      ++lines;
    }
    benchmark::DoNotOptimize(lines);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(in.size()));
}
BENCHMARK(BM_MemchrLines)->ArgName("bytes")->Arg(1024)->Arg(1 << 20);

}  // namespace
}  // namespace ringmta::smtp
