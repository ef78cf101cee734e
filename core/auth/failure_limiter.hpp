// Failed AUTH attempts per client address in a time window, so that a relay refuses a
// client that keeps guessing (AuthVerdict::too_many_failures: 421 4.7.0) before it costs a
// PBKDF2 run. One per reactor thread, no locks: a client spread over threads gets up to
// max_failures per thread. The caller owns the clock (now_ms), as everywhere in core.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ringmta::auth {

struct FailureLimiterOptions {
  std::uint32_t max_failures = 10;          // failures in one window that block the client
  std::uint64_t window_ms = 15 * 60 * 1000;  // a window opens at a client's first failure
  std::size_t max_clients = 65536;           // memory bound: the oldest window goes first
};

class AuthFailureLimiter {
 public:
  explicit AuthFailureLimiter(FailureLimiterOptions o = {});

  // True while client has max_failures failures in its open window. Key: the client's
  // address without the port (the relay's choice, e.g. an IPv6 /64 prefix).
  bool blocked(std::string_view client, std::uint64_t now_ms) const;
  // One failed attempt (535). Successes clear nothing: one valid account must not reset a
  // guesser's count for the others.
  void record_failure(std::string_view client, std::uint64_t now_ms);
  // Failures counted in client's open window (0 when none is open).
  std::uint32_t failures(std::string_view client, std::uint64_t now_ms) const;
  // Drops closed windows; record_failure does it when the table is full.
  void prune(std::uint64_t now_ms);
  std::size_t tracked() const { return clients_.size(); }

 private:
  struct Window {
    std::uint64_t start_ms = 0;
    std::uint32_t failures = 0;
  };
  bool open(const Window& w, std::uint64_t now_ms) const {
    return now_ms - w.start_ms < options_.window_ms;
  }

  FailureLimiterOptions options_;
  std::unordered_map<std::string, Window> clients_;
};

}  // namespace ringmta::auth
