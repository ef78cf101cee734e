// Where each recipient goes: the routing table (recipient domain -> a destination: next hops
// with priorities, and the delivery policy for that destination) and the alias table
// (recipient -> other recipients). Built once at start from RelayConfig, read-only after, so
// every worker thread reads it without a lock. DNS MX lookup is not done: next hops are
// configured (DESIGN.md: loopback only).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/io/socket_address.hpp"
#include "relay/delivery_config.hpp"

namespace ringmta::relay {

struct RelayConfig;

namespace route_table_detail {
// ASCII case-insensitive hash and equality for the tables' keys (stored lower case): a lookup
// takes the domain or address as it came, as a string_view, and builds no string.
struct NoCaseHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept;
};
struct NoCaseEqual {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept;
};
template <typename T>
using NoCaseMap = std::unordered_map<std::string, T, NoCaseHash, NoCaseEqual>;
}  // namespace route_table_detail

// A next hop: lower priority is tried first; hops of equal priority share the load (as MX
// records of equal preference, RFC 5321 5.1).
struct Hop {
  io::SocketAddress address;
  std::uint32_t priority = 0;
};

// One destination: a routing-table entry. Its index is stable for the life of the process
// (per-destination queues and metrics are arrays indexed by it).
struct Destination {
  std::size_t index = 0;
  std::string pattern;        // "example.test", "*.example.test", "*", "[127.0.0.1]"
  std::vector<Hop> hops;      // sorted by priority
  DeliveryPolicy policy;
};

class RouteTable {
 public:
  RouteTable() = default;
  // One destination per config.routes entry, in that order (index = position), hops sorted by
  // priority (stable: equal priorities keep the order written), policy = config.delivery.policy
  // with the route's overrides. Expects a loaded config: of two routes for one pattern (which
  // the loader refuses) the first wins.
  explicit RouteTable(const RelayConfig& config);

  // The destination for a recipient domain (compared ignoring case): an exact entry first,
  // then the longest matching "*.suffix", then "*"; an address literal ("[127.0.0.1]",
  // "[IPv6:::1]") matches only an entry written the same way. nullptr: no route. Any thread;
  // no allocation (one hash lookup per label of the domain at most).
  const Destination* route(std::string_view domain) const;
  const std::vector<Destination>& destinations() const { return destinations_; }

 private:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

  std::vector<Destination> destinations_;
  // Indexes into destinations_ (not pointers: a copied table stays valid).
  route_table_detail::NoCaseMap<std::size_t> exact_;   // "example.test", "[127.0.0.1]"
  route_table_detail::NoCaseMap<std::size_t> suffix_;  // ".example.test" for *.example.test
  std::size_t default_ = kNone;                        // the "*" entry
};

// Aliases (forwarding rules): a recipient rewritten to another address, or fanned out to
// several. Targets are expanded again (an alias may point at an alias) up to a depth of 10;
// a cycle is refused when the configuration is loaded. Keys compare ignoring case; a key
// "@example.test" matches every address of that domain not matched exactly.
//
// As Postfix virtual(5): a target equal (ignoring case) to the address being expanded is
// delivered as it is, not expanded again, so "a@x.test -> a@x.test, b@x.test" keeps a copy
// for a@x.test, and "a@x.test -> a@x.test" exempts a@x.test from an "@x.test" alias. Any
// other return to an address on the way is a cycle: a@x -> b@x -> a@x, or with "@x.test ->
// a@x.test, b@x.test" (each target matches @x.test again) a@x.test -> b@x.test -> a@x.test.
// An address met twice in one expansion (not on the way: by two branches) is expanded once.
// Final recipients are kept in the order first met, without duplicates; two are the same
// when their local parts are equal and their domains equal ignoring case.
class AliasTable {
 public:
  AliasTable() = default;
  // Expands every alias once, here. config.aliases must pass check_aliases (relay_config.hpp),
  // as a loaded config does; otherwise throws std::invalid_argument with its reason.
  explicit AliasTable(const RelayConfig& config);

  // Appends the final recipients of `address` to out (duplicates only among them are left
  // out; what out already held is not looked at), and returns true; false (out untouched)
  // when no alias applies. Any thread; allocates only the strings it appends.
  bool expand(std::string_view address, std::vector<std::string>& out) const;
  bool empty() const { return aliases_.empty(); }

 private:
  // Lower-case key ("info@example.test", "@example.test") -> its final recipients, expanded
  // when the table was built.
  route_table_detail::NoCaseMap<std::vector<std::string>> aliases_;
};

}  // namespace ringmta::relay
