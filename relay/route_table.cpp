// The routing table and the alias table (route_table.hpp), built once from a loaded
// RelayConfig. Alias expansion lives here alone: check_aliases (the loader's check) and
// AliasTable run the same expansion, so what loads is what expands.
#include "relay/route_table.hpp"

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <unordered_set>

#include "core/smtp/ascii.hpp"
#include "relay/relay_config.hpp"

namespace ringmta::relay {

namespace route_table_detail {

std::size_t NoCaseHash::operator()(std::string_view s) const noexcept {
  std::uint64_t h = 0xcbf29ce484222325u;  // FNV-1a, 64 bits
  for (char c : s) {
    h ^= static_cast<unsigned char>(smtp::to_lower(c));
    h *= 0x100000001b3u;
  }
  return static_cast<std::size_t>(h);
}

bool NoCaseEqual::operator()(std::string_view a, std::string_view b) const noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (smtp::to_lower(a[i]) != smtp::to_lower(b[i])) return false;
  }
  return true;
}

}  // namespace route_table_detail

namespace {

using route_table_detail::NoCaseEqual;
using route_table_detail::NoCaseHash;
using route_table_detail::NoCaseMap;

// Where "@domain" starts in a mailbox: the last '@', or for an address literal the "@[" before
// it (a General-address-literal may hold '@'; RFC 5321 4.1.3). npos: no domain.
std::size_t domain_at(std::string_view address) {
  if (address.ends_with(']')) return address.rfind("@[");
  return address.rfind('@');
}

// Final recipients are the same mailbox when the local parts are equal (they are the
// receiving system's to interpret, RFC 5321 2.4) and the domains equal ignoring case.
struct MailboxHash {
  std::size_t operator()(std::string_view m) const noexcept {
    const std::size_t at = std::min(domain_at(m), m.size());
    return std::hash<std::string_view>()(m.substr(0, at)) ^ (NoCaseHash()(m.substr(at)) << 1);
  }
};
struct MailboxEqual {
  bool operator()(std::string_view a, std::string_view b) const noexcept {
    const std::size_t ia = std::min(domain_at(a), a.size());
    const std::size_t ib = std::min(domain_at(b), b.size());
    return a.substr(0, ia) == b.substr(0, ib) && NoCaseEqual()(a.substr(ia), b.substr(ib));
  }
};

using Targets = std::vector<std::string>;

// The entry for an address: its own key, else its "@domain" key. nullptr: none.
const Targets* find_alias(const NoCaseMap<Targets>& m, std::string_view address) {
  auto it = m.find(address);
  if (it == m.end()) {
    const std::size_t at = domain_at(address);
    if (at == std::string_view::npos || at == 0) return nullptr;
    it = m.find(address.substr(at));
    if (it == m.end()) return nullptr;
  }
  return &it->second;
}

// The aliases as written: lower-case key -> its targets. A repeated key (which the loader
// refuses) keeps its first targets.
NoCaseMap<Targets> direct_map(const std::vector<Alias>& aliases) {
  NoCaseMap<Targets> m;
  for (const Alias& a : aliases)
    m.emplace(a.address, a.targets);
  return m;
}

// Expands one alias, depth first: the rules of the AliasTable comment. The views point into
// the direct map, which outlives the expansion.
class AliasExpansion {
 public:
  explicit AliasExpansion(const NoCaseMap<Targets>& direct) : direct_(direct) {}

  // The final recipients of `key` (an entry of the direct map); "" or why it fails.
  std::string run(std::string_view key, const Targets& targets, Targets& finals) {
    path_.clear();
    expanded_.clear();
    seen_.clear();
    error_.clear();
    finals_ = &finals;
    if (!visit(key, targets)) return error_;
    return "";
  }

 private:
  // The way from path_[from] to `last`, for messages: "a@x -> b@y -> a@x".
  std::string chain(std::size_t from, std::string_view last) const {
    std::string s;
    for (std::size_t i = from; i < path_.size(); ++i)
      s.append(path_[i]).append(" -> ");
    return s.append(last);
  }

  // The error for a way from path_[from] back to `again`. Where an address on it is expanded
  // by an "@domain" alias, which matches its own targets again, says how to keep it as it is.
  void cycle(std::size_t from, std::string_view again) {
    error_ = "alias cycle: " + chain(from, again);
    std::string by_domain;
    for (std::size_t i = from; i < path_.size(); ++i) {
      if (!path_[i].starts_with('@') && !direct_.contains(path_[i])) {
        by_domain.append(by_domain.empty() ? "" : ", ").append(path_[i]);
      }
    }
    if (!by_domain.empty()) {
      error_ += " (" + by_domain +
                ": expanded by an @domain alias; an alias to itself delivers an address as it is)";
    }
  }

  // Expands `node`, whose lookup gave `targets`.
  bool visit(std::string_view node, const Targets& targets) {
    if (path_.size() == kMaxAliasDepth) {
      error_ = "aliases nested deeper than " + std::to_string(kMaxAliasDepth) + ": " +
               chain(0, node);
      return false;
    }
    path_.push_back(node);
    expanded_.insert(node);
    for (const std::string& t : targets) {
      const Targets* next = nullptr;
      if (NoCaseEqual()(t, node)) {
        // An address that expands to itself is kept (Postfix virtual(5)).
      } else if (const auto on_path = std::find_if(
                     path_.begin(), path_.end(),
                     [&](std::string_view p) { return NoCaseEqual()(p, t); });
                 on_path != path_.end()) {
        cycle(static_cast<std::size_t>(on_path - path_.begin()), t);
        return false;
      } else if (expanded_.contains(t)) {
        continue;  // met before by another branch: its recipients are in already
      } else {
        next = find_alias(direct_, t);
      }
      if (next != nullptr) {
        if (!visit(t, *next)) return false;
      } else if (seen_.insert(t).second) {
        if (finals_->size() == kMaxAliasRecipients) {
          error_ = "'" + std::string(path_.front()) + "' expands to more than " +
                   std::to_string(kMaxAliasRecipients) + " recipients";
          return false;
        }
        finals_->push_back(t);
      }
    }
    path_.pop_back();
    return true;
  }

  const NoCaseMap<Targets>& direct_;
  std::vector<std::string_view> path_;  // the aliases being expanded, outermost first
  std::unordered_set<std::string_view, NoCaseHash, NoCaseEqual> expanded_;
  std::unordered_set<std::string_view, MailboxHash, MailboxEqual> seen_;  // finals_, as views
  Targets* finals_ = nullptr;
  std::string error_;
};

// Expands every alias in config order; the first failure's reason (and its index in
// *failed), or "" with each key's final recipients in *expanded when it is not null.
std::string expand_all(const std::vector<Alias>& aliases, NoCaseMap<Targets>* expanded,
                       std::size_t* failed) {
  const NoCaseMap<Targets> direct = direct_map(aliases);
  AliasExpansion expansion(direct);
  for (std::size_t i = 0; i < aliases.size(); ++i) {
    const auto it = direct.find(aliases[i].address);
    Targets finals;
    if (std::string why = expansion.run(it->first, it->second, finals); !why.empty()) {
      if (failed != nullptr) *failed = i;
      return why;
    }
    if (expanded != nullptr) expanded->emplace(it->first, std::move(finals));
  }
  return "";
}

}  // namespace

// ---- Routes ----------------------------------------------------------------------------------

RouteTable::RouteTable(const RelayConfig& config) {
  destinations_.reserve(config.routes.size());
  for (const Route& r : config.routes) {
    Destination d;
    d.index = destinations_.size();
    d.pattern = r.domain;
    std::transform(d.pattern.begin(), d.pattern.end(), d.pattern.begin(), smtp::to_lower);
    for (std::size_t i = 0; i < r.hops.size(); ++i)
      d.hops.push_back(Hop{r.hops[i], r.priority(i)});
    std::stable_sort(d.hops.begin(), d.hops.end(),
                     [](const Hop& a, const Hop& b) { return a.priority < b.priority; });
    d.policy = r.policy(config.delivery.policy);
    if (d.pattern == "*") {
      if (default_ == kNone) default_ = d.index;
    } else if (d.pattern.starts_with("*.")) {
      suffix_.emplace(d.pattern.substr(1), d.index);
    } else {
      exact_.emplace(d.pattern, d.index);
    }
    destinations_.push_back(std::move(d));
  }
}

const Destination* RouteTable::route(std::string_view domain) const {
  if (const auto it = exact_.find(domain); it != exact_.end()) return &destinations_[it->second];
  if (domain.starts_with('[')) return nullptr;  // an address literal: its own entry only
  // Each ".suffix" of the domain, longest first; not the whole domain (*.x is not x).
  for (std::size_t dot = domain.find('.', 1); dot != std::string_view::npos && !suffix_.empty();
       dot = domain.find('.', dot + 1)) {
    if (const auto it = suffix_.find(domain.substr(dot)); it != suffix_.end()) {
      return &destinations_[it->second];
    }
  }
  return default_ != kNone ? &destinations_[default_] : nullptr;
}

// ---- Aliases ---------------------------------------------------------------------------------

std::string check_aliases(const std::vector<Alias>& aliases, std::size_t* failed) {
  return expand_all(aliases, nullptr, failed);
}

AliasTable::AliasTable(const RelayConfig& config) {
  if (std::string why = expand_all(config.aliases, &aliases_, nullptr); !why.empty()) {
    throw std::invalid_argument(why);
  }
}

bool AliasTable::expand(std::string_view address, std::vector<std::string>& out) const {
  const Targets* finals = find_alias(aliases_, address);
  if (finals == nullptr) return false;
  out.insert(out.end(), finals->begin(), finals->end());
  return true;
}

}  // namespace ringmta::relay
