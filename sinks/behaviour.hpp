// The sink's behaviour table: what ringmta-sink answers at each SMTP phase (accept, fail with a
// reply, close, wait), from rules, per-domain overrides, magic recipients, greylisting, rate and
// connection limits. Pure code: the session calls decide() and carries the Action out.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/smtp/reply.hpp"

namespace ringmta::sink {

// The points where the sink answers. data = the DATA command or the first BDAT of a
// transaction; end_of_data = the whole message arrived (the final dot or BDAT LAST).
enum class Phase : std::uint8_t { connect, ehlo, mail, rcpt, data, end_of_data };
inline constexpr std::size_t kPhaseCount = 6;

// "connect", "ehlo", "mail", "rcpt", "data", "end-of-data".
std::string_view phase_name(Phase p);
// Accepts the names above (and "end_of_data"); false for anything else.
bool parse_phase(std::string_view text, Phase& out);

struct Action {
  enum class Kind : std::uint8_t {
    accept,                // the normal positive reply
    reply,                 // send `reply` instead (4xx/5xx)
    disconnect,            // close without a reply
    reply_and_disconnect,  // send `reply` (usually 421), then close
    disconnect_mid_data,   // phase data only: accept, then close after `after_bytes` of body
  };
  // Why the action is not the default one, for metrics and the session log.
  enum class Cause : std::uint8_t { none, rule, magic, greylist, rate_limit };

  Kind kind = Kind::accept;
  Cause cause = Cause::none;
  smtp::Reply reply{};            // reply kinds: text points into the Behaviour (its lifetime)
  std::uint32_t delay_us = 0;     // wait this long before answering (accept included)
  std::uint32_t after_bytes = 0;  // disconnect_mid_data: body bytes to read before closing
};

struct Context {
  std::string_view client_ip;  // textual peer address
  std::string_view sender;     // MAIL path "local@domain", "" = null sender
  // rcpt: this RCPT; data / end_of_data: the first accepted recipient; other phases: "".
  std::string_view recipient;
  std::uint64_t now_us = 0;  // monotonic clock, for greylisting and rate limits
};

// xoshiro256** seeded through splitmix64: fast, and good enough for failure draws. Not
// thread-safe: one per thread, e.g. Rng(seed + thread_index) (splitmix decorrelates them).
class Rng {
 public:
  explicit Rng(std::uint64_t seed);
  std::uint64_t next();
  double uniform01();  // [0, 1), 53 bits

 private:
  std::array<std::uint64_t, 4> s_{};
};

// ---- Durations and delays -------------------------------------------------------------------

// Delays are held in microseconds in 32 bits; a configured delay is at most one hour.
inline constexpr std::uint64_t kMaxDelayUs = 3'600'000'000ull;

// Parses "250us", "5ms", "1.5s", "2m", "1h" (a bare "0" too) into microseconds. Exact: a value
// finer than 1us is refused rather than rounded. On error returns false and, if why is not
// null, says what is wrong. Does not allocate when why is null.
bool parse_duration(std::string_view text, std::uint64_t& out_us, std::string* why);
// The shortest exact text for a duration: "0s", "250us", "1500ms", "2s", "5m"... (parses back).
std::string format_duration(std::uint64_t us);

struct DelaySpec {
  enum class Kind : std::uint8_t { none, fixed, uniform, lognormal };
  Kind kind = Kind::none;
  std::uint32_t a_us = 0;  // fixed: the value; uniform: the low bound; lognormal: the median
  std::uint32_t b_us = 0;  // uniform: the high bound
  double sigma = 0;        // lognormal: sigma of the underlying normal

  // A draw from the distribution (uses rng only for uniform and lognormal).
  std::uint32_t sample(Rng& rng) const;
  friend bool operator==(const DelaySpec&, const DelaySpec&) = default;
};
// "5ms" (fixed), "uniform:1ms-10ms", "lognormal:5ms,0.5" (median, sigma). A zero fixed delay
// is Kind::none. Each value at most kMaxDelayUs.
bool parse_delay(std::string_view text, DelaySpec& out, std::string* why);
std::string format_delay(const DelaySpec& d);  // parses back to an equal DelaySpec

// ---- Configuration (plain data; Behaviour compiles it) --------------------------------------

// A reply as configured: "451 4.3.0 Try again later" (enhanced code and text optional).
struct ReplySpec {
  std::uint16_t code = 0;
  smtp::EnhancedCode enhanced{};
  std::string text;
  friend bool operator==(const ReplySpec&, const ReplySpec&) = default;
};
// Checks the syntax only (code 2yz-5yz with y <= 5, RFC 5321 4.2; the enhanced code's class
// is the first digit; printable text that fits a reply line; a default text when none);
// whether the code suits a phase is check_rule's job.
bool parse_reply_spec(std::string_view text, ReplySpec& out, std::string* why);
std::string format_reply_spec(const ReplySpec& r);

struct Rule {
  Phase phase = Phase::rcpt;
  double probability = 1.0;
  Action::Kind action = Action::Kind::reply;
  ReplySpec reply;                 // reply kinds only
  std::uint32_t after_bytes = 0;   // disconnect_mid_data only
  std::optional<DelaySpec> delay;  // replaces the phase's delay when this rule fires
  friend bool operator==(const Rule&, const Rule&) = default;
};
// "reply", "disconnect", "reply-and-disconnect", "disconnect-mid-data" (or with '_').
std::string_view action_name(Action::Kind k);
bool parse_action(std::string_view text, Action::Kind& out);
// The reply a reply_and_disconnect rule sends when it names none.
inline const ReplySpec& default_close_reply() {
  static const ReplySpec r{421, {4, 3, 2}, "Service not available, closing transmission channel"};
  return r;
}
// Whether the rule makes sense: action accept is not a rule, probability in [0, 1], the
// reply is a failure (4xx/5xx; only 421 or 554 instead of the banner, RFC 5321 3.1),
// disconnect_mid_data only at phase data, no reply with the disconnect kinds. On failure
// *key (if not null) names the rule key at fault: "probability", "action", "reply",
// "after-bytes".
bool check_rule(const Rule& r, std::string* why, std::string_view* key = nullptr);

enum class RateLimitReply : std::uint8_t {
  close_421,  // 421 4.7.0 and close (what large providers do)
  defer_451,  // 451 4.7.1, the session goes on
};

struct RateLimit {
  double per_second = 0;  // 0 = off
  // Tokens available after an idle period; 0 = one second's worth (at least 1).
  std::uint32_t burst = 0;
  RateLimitReply reply = RateLimitReply::close_421;
  friend bool operator==(const RateLimit&, const RateLimit&) = default;
};

// What the sink does for one set of recipients: the listener's default, or one domain's
// override, which replaces it whole (nothing is inherited).
struct Profile {
  std::vector<Rule> rules;
  // Shorthands that become rules (at end_of_data): 451 4.3.0, 554 5.6.0, close without reply.
  double tempfail_rate = 0;
  double permfail_rate = 0;
  double disconnect_rate = 0;
  std::array<DelaySpec, kPhaseCount> delays{};    // by Phase; the answer waits a draw of it
  std::optional<std::uint64_t> greylist_wait_us;  // greylisting at RCPT; absent = off
  // Listener default: messages per second, checked at MAIL. Domain override: recipients of
  // that domain per second, checked at RCPT (MAIL does not know the recipients yet).
  RateLimit rate_limit;
  friend bool operator==(const Profile&, const Profile&) = default;
};

struct DomainProfile {
  std::string pattern;  // "slow.test" (exact) or "*.slow.test" (sub-domains only); lower case
  Profile profile;
  friend bool operator==(const DomainProfile&, const DomainProfile&) = default;
};

struct BehaviourConfig {
  Profile defaults;
  std::vector<DomainProfile> domains;
  std::uint32_t max_connections = 0;  // concurrent, per listener; 0 = no limit
  bool magic = true;                  // interpret magic recipient local parts (tempfail+...)
  std::uint32_t greylist_capacity = 1u << 18;  // triples remembered (rounded up to 2^n)
  friend bool operator==(const BehaviourConfig&, const BehaviourConfig&) = default;
};

// Validation shared by the config loader and Behaviour: every rule passes check_rule, the
// rules of one phase add up to probability <= 1, domain patterns are well formed and unique,
// domain overrides set nothing for phases before RCPT, rates are finite and >= 0.
bool validate_behaviour(const BehaviourConfig& c, std::string* why);
// Per-profile part of validate_behaviour; in_domain = the profile is a domain override.
bool validate_profile(const Profile& p, bool in_domain, std::string* why);
// "slow.test" or "*.slow.test": letters, digits, '-', '_', '.', no empty label; lower-cases.
bool normalize_domain_pattern(std::string_view text, std::string& out, std::string* why);

// ---- Runtime ---------------------------------------------------------------------------------

// 421 at the banner when try_enter_connection() refuses.
inline constexpr smtp::Reply kTooManyConnections{
    421, {4, 7, 0}, "Too many concurrent connections, try again later"};

// Figures the metrics layer reads (relaxed atomics; they only ever grow).
struct BehaviourCounters {
  std::atomic<std::uint64_t> greylisted{0};           // RCPTs answered 451 by greylisting
  std::atomic<std::uint64_t> greylist_passed{0};      // RCPTs let through after the wait
  std::atomic<std::uint64_t> greylist_triples{0};     // distinct triples recorded
  std::atomic<std::uint64_t> greylist_table_full{0};  // RCPTs let through: no room to record
  std::atomic<std::uint64_t> rate_limited{0};         // MAIL/RCPT refused by a rate limit
  std::atomic<std::uint64_t> connections_refused{0};  // banners replaced by 421
};

// Built once from a BehaviourConfig, then shared by every thread of a listener. decide() and
// the connection calls are thread-safe and lock-free; decide() never allocates nor throws.
// Reply texts point into the Behaviour, so it is neither copied nor moved.
class Behaviour {
 public:
  // Throws std::invalid_argument when validate_behaviour refuses the config (start-up only).
  explicit Behaviour(BehaviourConfig config);
  ~Behaviour();
  Behaviour(const Behaviour&) = delete;
  Behaviour& operator=(const Behaviour&) = delete;

  // Order of checks: at RCPT a magic recipient decides alone (the phase's delay still applies,
  // except to delay-X+, which waits X); else (a domain's) rate limit,
  // greylisting, then the rules (one draw per decision; rules take consecutive slices of
  // [0, 1)). At MAIL the listener's rate limit comes first. At end_of_data a first recipient
  // tempfail-data+ / permfail-data+ / delay-X+ decides alone. No allocation, no exception.
  Action decide(Phase phase, const Context& ctx, Rng& rng) const;

  // Call when a connection is accepted; false = over max_connections: answer
  // kTooManyConnections instead of the banner, close, and do not call leave_connection().
  bool try_enter_connection() const;
  void leave_connection() const;
  std::uint32_t connections() const { return connections_.load(std::memory_order_relaxed); }

  const BehaviourCounters& counters() const { return counters_; }
  const BehaviourConfig& config() const { return config_; }

 private:
  struct CompiledRule {
    double upper = 0;  // the rule fires when the draw is below this (cumulative probability)
    Action action;     // kind, reply (text into config_ or static), after_bytes
    std::optional<DelaySpec> delay;
  };
  struct CompiledProfile {
    const Profile* source = nullptr;
    std::array<std::vector<CompiledRule>, kPhaseCount> rules;
    std::int32_t bucket = -1;  // index into buckets_, or -1 without a rate limit
    std::uint64_t interval_ns = 0;
    std::uint64_t tolerance_ns = 0;
  };
  struct GreylistSlot;

  std::size_t profile_index(std::string_view recipient) const;
  Action apply_rules(const CompiledProfile& p, Phase phase, Rng& rng) const;
  bool take_token(const CompiledProfile& p, std::uint64_t now_us) const;
  Action rate_limited(const CompiledProfile& p) const;
  // True when the triple may pass; false = greylisted.
  bool greylist_pass(const Context& ctx, std::uint64_t wait_us) const;

  const BehaviourConfig config_;
  std::vector<CompiledProfile> profiles_;  // [0] = defaults, [1 + i] = config_.domains[i]
  std::unique_ptr<GreylistSlot[]> greylist_;
  std::size_t greylist_mask_ = 0;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // GCRA theoretical arrival, ns
  mutable std::atomic<std::uint32_t> connections_{0};
  mutable BehaviourCounters counters_;
};

}  // namespace ringmta::sink
