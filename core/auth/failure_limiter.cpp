// Per-client AUTH failure windows; see failure_limiter.hpp.
#include "core/auth/failure_limiter.hpp"

#include <algorithm>

namespace ringmta::auth {

AuthFailureLimiter::AuthFailureLimiter(FailureLimiterOptions o) : options_(o) {
  options_.max_clients = std::max<std::size_t>(options_.max_clients, 1);
}

std::uint32_t AuthFailureLimiter::failures(std::string_view client, std::uint64_t now_ms) const {
  const auto it = clients_.find(std::string(client));
  if (it == clients_.end() || !open(it->second, now_ms)) return 0;
  return it->second.failures;
}

bool AuthFailureLimiter::blocked(std::string_view client, std::uint64_t now_ms) const {
  return options_.max_failures != 0 && failures(client, now_ms) >= options_.max_failures;
}

void AuthFailureLimiter::record_failure(std::string_view client, std::uint64_t now_ms) {
  auto it = clients_.find(std::string(client));
  if (it == clients_.end()) {
    if (clients_.size() >= options_.max_clients) prune(now_ms);
    if (clients_.size() >= options_.max_clients) {
      // Still full of open windows: the oldest one goes (rare, O(n)).
      auto oldest = std::min_element(clients_.begin(), clients_.end(), [](const auto& a, const auto& b) {
        return a.second.start_ms < b.second.start_ms;
      });
      clients_.erase(oldest);
    }
    it = clients_.emplace(std::string(client), Window{now_ms, 0}).first;
  } else if (!open(it->second, now_ms)) {
    it->second = Window{now_ms, 0};
  }
  ++it->second.failures;
}

void AuthFailureLimiter::prune(std::uint64_t now_ms) {
  std::erase_if(clients_, [&](const auto& kv) { return !open(kv.second, now_ms); });
}

}  // namespace ringmta::auth
