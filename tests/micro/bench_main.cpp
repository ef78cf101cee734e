// main() of micro_smtp: Google Benchmark's, plus the allocator in the report's context, so
// that every result says whether mimalloc really replaced malloc in that run.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#if defined(RINGMTA_WITH_MIMALLOC)
#include <mimalloc.h>
#endif

namespace {

std::string allocator_description() {
#if defined(RINGMTA_WITH_MIMALLOC)
  // mi_version() only proves the library is linked; a block from plain malloc() and one
  // from operator new living in mimalloc's heap proves it is the process allocator.
  void* p = std::malloc(64);
  int* q = new int(1);
  const bool malloc_is_mi = mi_is_in_heap_region(p);
  const bool new_is_mi = mi_is_in_heap_region(q);
  delete q;
  std::free(p);
  const int v = mi_version();
  return "mimalloc " + std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." +
         std::to_string(v % 10) + " (malloc " + (malloc_is_mi ? "overridden" : "NOT overridden") +
         ", operator new " + (new_is_mi ? "overridden" : "NOT overridden") + ")";
#else
  return "system malloc (built without RINGMTA_MIMALLOC)";
#endif
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::AddCustomContext("allocator", allocator_description());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
