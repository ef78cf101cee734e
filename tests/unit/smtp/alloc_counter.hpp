// Counts heap allocations made through operator new on this thread while a scope is open,
// to prove that a hot path does not allocate (the whole test binary routes new through it).
#pragma once

#include <cstddef>

namespace ringmta::testing {

std::size_t allocations_on_this_thread();

class CountAllocations {
 public:
  CountAllocations() : start_(allocations_on_this_thread()) {}
  std::size_t count() const { return allocations_on_this_thread() - start_; }

 private:
  std::size_t start_;
};

}  // namespace ringmta::testing
