// Replaces the global operator new/delete of the test binary with counting wrappers around
// malloc/free (the sanitizers still see every allocation). See alloc_counter.hpp.
#include "alloc_counter.hpp"

#include <cstdlib>
#include <new>

namespace {
thread_local std::size_t g_allocations = 0;
}

namespace ringmta::testing {
std::size_t allocations_on_this_thread() { return g_allocations; }
}  // namespace ringmta::testing

void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
