// Loading ringmta-sink's configuration: the CLI11 command line, the --config TOML file
// (toml++), their merge and checks (each error names the file, line and key, or the flag),
// and --print-config. The schema is documented in sink_config.hpp.
#include "sinks/sink_config.hpp"

#include <toml++/toml.h>
#include <CLI/CLI.hpp>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <deque>
#include <fstream>
#include <limits>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/config/starttls_setting.hpp"
#include "core/smtp/ascii.hpp"

#ifndef RINGMTA_VERSION
#define RINGMTA_VERSION "unknown"
#endif

namespace ringmta::sink {
namespace {

// Start-up only: a ConfigError ends load_sink_config with exit code 2 and its message.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string in_quotes(std::string_view s) {
  std::string r = "'";
  r.append(s);
  r += '\'';
  return r;
}

std::string format_double(double v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

// Where a value came from: a TOML node (file:line:col and key) or a command-line flag.
struct Origin {
  const std::string* file = nullptr;  // null: a flag
  toml::source_position pos{};
  std::string name;  // the key, "--flag", or a table name such as "[[listener]]"

  std::string prefix() const {
    if (file == nullptr) return name;
    return *file + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": " + name;
  }
};

[[noreturn]] void fail_at(const Origin& o, const std::string& reason) {
  throw ConfigError(o.prefix() + ": " + reason);
}

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    default:
      return "a date or time";
  }
}

// One setting's value, from a TOML node or from the text of a flag, read the same way so
// that a key and its flag accept the same values and fail with the same reasons.
class Value {
 public:
  Value(const toml::node& node, Origin origin) : node_(&node), origin_(std::move(origin)) {}
  Value(std::string text, Origin origin) : text_(std::move(text)), origin_(std::move(origin)) {}
  // A --no-X flag: the boolean X is false.
  static Value of_switch(bool on, Origin origin) {
    Value v(on ? "true" : "false", std::move(origin));
    v.switch_ = true;
    return v;
  }

  [[noreturn]] void fail(const std::string& reason) const { fail_at(origin_, reason); }

  // The value as the user wrote it, for "got ..." in messages.
  std::string shown() const {
    if (node_ == nullptr) return in_quotes(text_);
    if (const auto* s = node_->as_string()) return "\"" + s->get() + "\"";
    if (const auto* i = node_->as_integer()) return std::to_string(i->get());
    if (const auto* f = node_->as_floating_point()) return format_double(f->get());
    if (const auto* b = node_->as_boolean()) return b->get() ? "true" : "false";
    return type_name(*node_);
  }

  std::string text(std::string_view expected) const {
    if (node_ == nullptr) return text_;
    if (const auto* s = node_->as_string()) return s->get();
    fail("must be " + std::string(expected) + ", not " + type_name(*node_));
  }

  double number(double lo, double hi, std::string_view expected) const {
    double v = 0;
    if (node_ == nullptr) {
      const auto res = std::from_chars(text_.data(), text_.data() + text_.size(), v);
      if (text_.empty() || res.ec != std::errc() || res.ptr != text_.data() + text_.size()) {
        fail("must be " + std::string(expected) + ", got " + shown());
      }
    } else if (const auto* i = node_->as_integer()) {
      v = static_cast<double>(i->get());
    } else if (const auto* f = node_->as_floating_point()) {
      v = f->get();
    } else {
      fail("must be " + std::string(expected) + ", not " + type_name(*node_));
    }
    if (!(v >= lo && v <= hi)) fail("must be " + std::string(expected) + ", got " + shown());
    return v;
  }

  std::int64_t integer(std::int64_t lo, std::int64_t hi, std::string_view expected) const {
    std::int64_t v = 0;
    if (node_ == nullptr) {
      const auto res = std::from_chars(text_.data(), text_.data() + text_.size(), v);
      if (text_.empty() || res.ec != std::errc() || res.ptr != text_.data() + text_.size()) {
        fail("must be " + std::string(expected) + ", got " + shown());
      }
    } else if (const auto* i = node_->as_integer()) {
      v = i->get();
    } else {
      fail("must be " + std::string(expected) + ", not " + type_name(*node_));
    }
    if (v < lo || v > hi) fail("must be " + std::string(expected) + ", got " + shown());
    return v;
  }

  bool boolean() const {
    if (node_ == nullptr) {
      if (switch_) return text_ == "true";
      if (text_ == "true" || text_ == "false") return text_ == "true";
      fail("must be true or false, got " + shown());
    }
    if (const auto* b = node_->as_boolean()) return b->get();
    fail("must be true or false, not " + type_name(*node_));
  }

  std::uint64_t duration() const {
    const std::string s = text("a duration such as \"5ms\", \"1.5s\" or \"5m\"");
    std::uint64_t us = 0;
    std::string why;
    if (!parse_duration(s, us, &why)) fail(why);
    return us;
  }

  DelaySpec delay() const {
    const std::string s =
        text("a delay such as \"5ms\", \"uniform:1ms-10ms\" or \"lognormal:5ms,0.5\"");
    DelaySpec d;
    std::string why;
    if (!parse_delay(s, d, &why)) fail(why);
    return d;
  }

  io::SocketAddress address() const {
    const std::string s = text("an address \"HOST:PORT\"");
    io::SocketAddress a;
    std::string why;
    if (!io::parse_socket_address(s, a, &why)) fail(in_quotes(s) + ": " + why);
    return a;
  }

  // Bytes: an integer, or (as text) digits with a K, M or G suffix (1024-based).
  std::uint64_t size() const {
    constexpr std::string_view kExpected =
        "a size in bytes (an integer, or text such as \"512K\", \"35M\", \"1G\")";
    constexpr std::int64_t kMax = std::int64_t{1} << 50;
    if (node_ != nullptr && node_->is_integer()) {
      return static_cast<std::uint64_t>(integer(0, kMax, kExpected));
    }
    std::string s = text(kExpected);
    std::uint64_t scale = 1;
    if (!s.empty()) {
      switch (smtp::to_lower(s.back())) {
        case 'k':
          scale = 1u << 10;
          break;
        case 'm':
          scale = 1u << 20;
          break;
        case 'g':
          scale = 1u << 30;
          break;
        default:
          break;
      }
      if (scale != 1) s.pop_back();
    }
    std::uint64_t n = 0;
    if (!smtp::parse_decimal(s, 16, n) || n * scale > static_cast<std::uint64_t>(kMax)) {
      fail("must be " + std::string(kExpected) + ", got " + shown());
    }
    return n * scale;
  }

  const Origin& origin() const { return origin_; }

 private:
  const toml::node* node_ = nullptr;
  std::string text_;
  bool switch_ = false;
  Origin origin_;
};

// ---- Keys ------------------------------------------------------------------------------------

constexpr std::string_view kGlobalKeys[] = {"threads", "mode",         "digest-log",
                                            "maildir", "metrics",      "seed",
                                            "recv-buffers", "recv-buffer-size"};

bool is_global_key(std::string_view k) {
  for (std::string_view g : kGlobalKeys) {
    if (g == k) return true;
  }
  return false;
}

struct Extension {
  std::string_view key;
  bool smtp::ServerConfig::*field;
};
constexpr Extension kExtensions[] = {
    {"pipelining", &smtp::ServerConfig::pipelining},
    {"size", &smtp::ServerConfig::size},
    {"8bitmime", &smtp::ServerConfig::eight_bit_mime},
    {"smtputf8", &smtp::ServerConfig::smtputf8},
    {"enhancedstatuscodes", &smtp::ServerConfig::enhanced_status_codes},
    {"chunking", &smtp::ServerConfig::chunking},
    {"dsn", &smtp::ServerConfig::dsn},
};

constexpr std::string_view kPhasesText = "connect, ehlo, mail, rcpt, data or end-of-data";

SinkMode parse_mode(const Value& v) {
  const std::string s = v.text("one of discard, count, digest, maildir");
  for (SinkMode m : {SinkMode::discard, SinkMode::count, SinkMode::digest, SinkMode::maildir}) {
    if (s == mode_name(m)) return m;
  }
  v.fail("must be discard, count, digest or maildir, got " + v.shown());
}

void apply_global_key(std::string_view key, const Value& v, SinkConfig& c) {
  if (key == "threads") {
    c.threads = static_cast<unsigned>(v.integer(1, 1024, "a thread count from 1 to 1024"));
  } else if (key == "mode") {
    c.mode = parse_mode(v);
  } else if (key == "digest-log") {
    c.digest_log = v.text("a file name");
    if (c.digest_log.empty()) v.fail("must be a file name, not empty");
  } else if (key == "maildir") {
    c.maildir = v.text("a directory name");
    if (c.maildir.empty()) v.fail("must be a directory name, not empty");
  } else if (key == "metrics") {
    c.metrics = v.address();
  } else if (key == "seed") {
    c.seed = static_cast<std::uint64_t>(
        v.integer(0, std::numeric_limits<std::int64_t>::max(), "an integer from 0 to 2^63-1"));
  } else if (key == "recv-buffers") {
    const auto n = v.integer(1, 32768, "a power of two from 1 to 32768");
    if ((n & (n - 1)) != 0) v.fail("must be a power of two (io_uring buffer ring), got " + v.shown());
    c.recv_buffers = static_cast<unsigned>(n);
  } else if (key == "recv-buffer-size") {
    c.recv_buffer_size = static_cast<unsigned>(v.integer(512, 1 << 20, "bytes from 512 to 1048576"));
  }
}

// Keys of a profile (the listener default or a domain table). False: not a profile key.
bool apply_profile_key(std::string_view key, const Value& v, Profile& p, bool in_domain) {
  constexpr std::string_view kProbability = "a probability from 0 to 1";
  // A domain table applies from RCPT on; phases before it would silently do nothing.
  const std::size_t first_phase = in_domain ? static_cast<std::size_t>(Phase::rcpt) : 0;
  if (key == "tempfail-rate") {
    p.tempfail_rate = v.number(0, 1, kProbability);
  } else if (key == "permfail-rate") {
    p.permfail_rate = v.number(0, 1, kProbability);
  } else if (key == "disconnect-rate") {
    p.disconnect_rate = v.number(0, 1, kProbability);
  } else if (key == "delay") {
    const DelaySpec d = v.delay();
    for (std::size_t i = first_phase; i < kPhaseCount; ++i)
      p.delays[i] = d;
  } else if (key.substr(0, 6) == "delay-") {
    Phase ph;
    if (!parse_phase(key.substr(6), ph)) {
      v.fail("unknown phase " + in_quotes(key.substr(6)) + " (" + std::string(kPhasesText) + ")");
    }
    if (static_cast<std::size_t>(ph) < first_phase) {
      v.fail("never applies in a domain table (domains apply from rcpt on)");
    }
    p.delays[static_cast<std::size_t>(ph)] = v.delay();
  } else if (key == "greylist-wait") {
    if (v.text("a duration such as \"5m\", or \"off\"") == "off") {
      p.greylist_wait_us.reset();
    } else {
      p.greylist_wait_us = v.duration();
    }
  } else if (key == "rate-limit") {
    p.rate_limit.per_second = v.number(0, 1e9, "a rate per second from 0 (off) to 1e9");
  } else if (key == "rate-limit-burst") {
    p.rate_limit.burst = static_cast<std::uint32_t>(
        v.integer(0, 1'000'000'000, "a count from 0 (one second's worth) to 1e9"));
  } else if (key == "rate-limit-reply") {
    const std::int64_t code =
        v.integer(421, 451, "421 (4.7.0, then close) or 451 (4.7.1, the session goes on)");
    if (code != 421 && code != 451) {
      v.fail("must be 421 (4.7.0, then close) or 451 (4.7.1, the session goes on), got " +
             v.shown());
    }
    p.rate_limit.reply = code == 421 ? RateLimitReply::close_421 : RateLimitReply::defer_451;
  } else {
    return false;
  }
  return true;
}

// Listener settings that are values (not listen, rule or domain). False: not one of them.
bool apply_listener_key(std::string_view key, const Value& v, ListenerConfig& l) {
  smtp::ServerConfig& s = l.server;
  if (key == "hostname") {
    const std::string h = v.text("a host name");
    bool ok = !h.empty() && h.size() <= 255;
    for (char c : h)
      ok = ok && static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
    if (!ok) v.fail("must be a host name (no spaces), got " + v.shown());
    s.hostname = h;
  } else if (key == "max-message-size") {
    s.max_message_size = v.size();
  } else if (key == "max-recipients") {
    // RFC 5321 4.5.3.1.8 asks for at least 100; fewer is allowed here to test clients.
    s.max_recipients = static_cast<std::uint32_t>(v.integer(1, 1'000'000, "from 1 to 1000000"));
  } else if (key == "max-connections") {
    l.behaviour.max_connections = static_cast<std::uint32_t>(
        v.integer(0, 10'000'000, "a count from 0 (no limit) to 10000000"));
  } else if (key == "starttls") {
    config::read_starttls(v, s);
  } else if (key == "tls-cert" || key == "tls-key") {
    const std::string f = v.text("a file name");
    if (f.empty()) v.fail("must be a file name, not empty");
    (key == "tls-cert" ? l.tls_cert : l.tls_key) = f;
  } else if (key == "magic") {
    l.behaviour.magic = v.boolean();
  } else if (key == "greylist-capacity") {
    l.behaviour.greylist_capacity =
        static_cast<std::uint32_t>(v.integer(1, 1 << 28, "from 1 to 268435456"));
  } else {
    for (const Extension& e : kExtensions) {
      if (key == e.key) {
        s.*e.field = v.boolean();
        return true;
      }
    }
    return apply_profile_key(key, v, l.behaviour.defaults, false);
  }
  return true;
}

// ---- TOML ------------------------------------------------------------------------------------

class TomlReader {
 public:
  TomlReader(std::string file, SinkConfig& cfg) : file_(std::move(file)), cfg_(cfg) {}

  void read_root(const toml::table& root) {
    // `delay` sets every phase and a `delay-<phase>` key wins over it, whatever the order.
    if (const toml::node* d = root.get("delay")) {
      apply_profile_key("delay", value(*d, "delay"), top_.behaviour.defaults, false);
      top_setting_ = at(*d, "delay");
    }
    for (const auto& [key, node] : root) {
      const std::string_view k = key.str();
      if (k == "delay") continue;
      if (is_global_key(k)) {
        apply_global_key(k, value(node, k), cfg_);
      } else if (k == "listener") {
        read_listeners(node);
      } else if (read_listener_key(key, node, top_, top_listens_, "")) {
        if (!top_setting_ && k != "listen") top_setting_ = at(key, k);
      } else {
        unknown_key(key, "top-level");
      }
    }
    check_sums(top_.behaviour.defaults, top_sources_);
  }

  ListenerConfig top_;                          // top-level listener settings
  std::vector<io::SocketAddress> top_listens_;  // top-level `listen`
  std::optional<Origin> top_setting_;           // the first top-level listener setting
  std::vector<ListenerConfig> listeners_;       // from [[listener]] tables

 private:
  // Probability sources of a profile, to point at the one that makes the sum exceed 1.
  struct ProfileSources {
    std::array<std::optional<Origin>, 3> rates;  // tempfail, permfail, disconnect
    std::vector<Origin> rules;
  };

  Origin at(const toml::node& n, std::string_view name) const {
    return Origin{&file_, n.source().begin, std::string(name)};
  }
  Origin at(const toml::key& k, std::string_view name) const {
    return Origin{&file_, k.source().begin, std::string(name)};
  }
  Value value(const toml::node& n, std::string_view key) const { return Value(n, at(n, key)); }

  [[noreturn]] void unknown_key(const toml::key& key, std::string_view where) const {
    const std::string_view k = key.str();
    std::string hint;
    std::string dashed(k);
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    if (dashed != k) {
      hint = " (did you mean " + in_quotes(dashed) + "?)";
    } else if (is_global_key(k)) {
      hint = " (a process-wide setting: put it at the top level of the file)";
    } else if (k == "listener") {
      hint = " ([[listener]] tables are top-level only)";
    } else if (k == "listen" || k == "domain" || k == "hostname" || k == "max-message-size" ||
               k == "max-recipients" || k == "max-connections" || k == "magic" ||
               k == "greylist-capacity" || k == "starttls" || k == "tls-cert" ||
               k == "tls-key" || k == "pipelining" || k == "size" || k == "8bitmime" ||
               k == "smtputf8" || k == "enhancedstatuscodes" || k == "chunking" || k == "dsn") {
      hint =
          " (a listener setting; a domain table takes tempfail-rate, permfail-rate, "
          "disconnect-rate, delay, delay-rcpt, delay-data, delay-end-of-data, greylist-wait, "
          "rate-limit, rate-limit-burst, rate-limit-reply and rule)";
    }
    fail_at(at(key, k), "unknown " + std::string(where) + " key" + hint);
  }

  // listen, rule, domain and value settings of a listener table. False: unknown key.
  bool read_listener_key(const toml::key& key, const toml::node& node, ListenerConfig& l,
                         std::vector<io::SocketAddress>& listens, std::string_view prefix) {
    const std::string_view k = key.str();
    ProfileSources& sources = &l == &top_ ? top_sources_ : listener_sources_;
    if (k == "listen") {
      if (const auto* arr = node.as_array()) {
        if (arr->empty()) value(node, k).fail("must name at least one address \"HOST:PORT\"");
        for (const toml::node& e : *arr)
          listens.push_back(value(e, k).address());
      } else {
        listens.push_back(value(node, k).address());
      }
    } else if (k == "rule") {
      read_rules(node, std::string(prefix) + "rule", l.behaviour.defaults, false, sources);
    } else if (k == "domain") {
      read_domains(node, std::string(prefix) + "domain", l.behaviour);
    } else {
      const Value v = value(node, k);
      if (!apply_listener_key(k, v, l)) return false;
      record_rate(k, v, sources);
    }
    return true;
  }

  static void record_rate(std::string_view k, const Value& v, ProfileSources& s) {
    if (k == "tempfail-rate") s.rates[0] = v.origin();
    if (k == "permfail-rate") s.rates[1] = v.origin();
    if (k == "disconnect-rate") s.rates[2] = v.origin();
  }

  void read_listeners(const toml::node& node) {
    const auto* arr = node.as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      value(node, "listener").fail("must be an array of tables: write [[listener]]");
    }
    for (const toml::node& e : *arr) {
      const toml::table& t = *e.as_table();
      ListenerConfig l;
      std::vector<io::SocketAddress> listens;
      listener_sources_ = {};
      if (const toml::node* d = t.get("delay")) {
        apply_profile_key("delay", value(*d, "delay"), l.behaviour.defaults, false);
      }
      for (const auto& [key, child] : t) {
        const std::string_view k = key.str();
        if (k == "delay") continue;
        if (is_global_key(k) || k == "listener" ||
            !read_listener_key(key, child, l, listens, "listener.")) {
          unknown_key(key, "[[listener]]");
        }
      }
      if (listens.empty()) {
        fail_at(at(t, "[[listener]]"), "needs listen = \"HOST:PORT\"");
      }
      check_sums(l.behaviour.defaults, listener_sources_);
      for (const io::SocketAddress& a : listens) {
        listeners_.push_back(l);
        listeners_.back().address = a;
      }
    }
  }

  void read_rules(const toml::node& node, const std::string& name, Profile& p, bool in_domain,
                  ProfileSources& sources) {
    const auto* arr = node.as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      value(node, name).fail("must be an array of tables: write [[" + name + "]]");
    }
    for (const toml::node& e : *arr) {
      Origin where;
      p.rules.push_back(read_rule(*e.as_table(), "[[" + name + "]]", in_domain, where));
      sources.rules.push_back(std::move(where));
    }
  }

  Rule read_rule(const toml::table& t, const std::string& table_name, bool in_domain,
                 Origin& prob_origin) {
    Rule r;
    bool has_phase = false;
    bool has_action = false;
    bool has_reply = false;
    std::vector<std::pair<std::string_view, Origin>> where;
    prob_origin = at(t, table_name);
    for (const auto& [key, node] : t) {
      const std::string_view k = key.str();
      const Value v = value(node, k);
      where.emplace_back(k, v.origin());
      if (k == "phase") {
        const std::string s = v.text("a phase name");
        if (!parse_phase(s, r.phase)) {
          v.fail("unknown phase " + v.shown() + " (" + std::string(kPhasesText) + ")");
        }
        if (in_domain && r.phase < Phase::rcpt) {
          v.fail("phase " + v.shown() +
                 " never applies in a domain table (domains apply from rcpt on)");
        }
        has_phase = true;
      } else if (k == "probability") {
        r.probability = v.number(0, 1, "a probability from 0 to 1");
        prob_origin = v.origin();
      } else if (k == "action") {
        const std::string s = v.text("an action name");
        if (!parse_action(s, r.action)) {
          v.fail("unknown action " + v.shown() +
                 " (reply, disconnect, reply-and-disconnect or disconnect-mid-data)");
        }
        has_action = true;
      } else if (k == "reply") {
        const std::string s = v.text("a reply such as \"451 4.3.0 Try again later\"");
        std::string why;
        if (!parse_reply_spec(s, r.reply, &why)) v.fail(why);
        has_reply = true;
      } else if (k == "after-bytes") {
        r.after_bytes = static_cast<std::uint32_t>(
            v.integer(0, std::numeric_limits<std::uint32_t>::max(), "a byte count"));
      } else if (k == "delay") {
        r.delay = v.delay();
      } else {
        unknown_key(key, table_name);
      }
    }
    const Origin table = at(t, table_name);
    if (!has_phase) fail_at(table, "a rule needs a phase (" + std::string(kPhasesText) + ")");
    if (!has_action) {
      if (!has_reply) {
        fail_at(table,
                "a rule needs a reply (e.g. reply = \"451 4.3.0 Try again later\") "
                "or an action");
      }
      r.action = Action::Kind::reply;
    }
    if (r.action == Action::Kind::reply_and_disconnect && !has_reply) {
      r.reply = default_close_reply();
    }
    std::string why;
    std::string_view bad_key;
    if (!check_rule(r, &why, &bad_key)) {
      for (const auto& [k, o] : where) {
        if (k == bad_key) fail_at(o, why);
      }
      fail_at(table, why);
    }
    return r;
  }

  void read_domains(const toml::node& node, const std::string& name, BehaviourConfig& b) {
    const auto* t = node.as_table();
    if (t == nullptr) {
      value(node, name)
          .fail("must be a table of domain tables: write [" + name + ".\"example.test\"]");
    }
    for (const auto& [key, child] : *t) {
      const std::string_view pattern = key.str();
      DomainProfile d;
      std::string why;
      if (!normalize_domain_pattern(pattern, d.pattern, &why)) fail_at(at(key, name), why);
      for (const DomainProfile& other : b.domains) {
        if (other.pattern == d.pattern) {
          fail_at(at(key, name), in_quotes(pattern) + " is given twice (names ignore case)");
        }
      }
      const std::string table_name = name + ".\"" + std::string(pattern) + "\"";
      const auto* dt = child.as_table();
      if (dt == nullptr) {
        value(child, table_name).fail("must be a table: write [" + table_name + "]");
      }
      ProfileSources sources;
      if (const toml::node* dl = dt->get("delay")) {
        apply_profile_key("delay", value(*dl, "delay"), d.profile, true);
      }
      for (const auto& [k2, v2] : *dt) {
        const std::string_view k = k2.str();
        if (k == "delay") continue;
        if (k == "rule") {
          read_rules(v2, table_name + ".rule", d.profile, true, sources);
          continue;
        }
        const Value v = value(v2, k);
        if (!apply_profile_key(k, v, d.profile, true)) unknown_key(k2, "domain table");
        record_rate(k, v, sources);
      }
      check_sums(d.profile, sources);
      b.domains.push_back(std::move(d));
    }
  }

  // One draw decides between the rules of a phase, so their probabilities add up to <= 1.
  // Points at the rate or rule that goes over.
  void check_sums(const Profile& p, const ProfileSources& s) const {
    std::array<double, kPhaseCount> sum{};
    const double rates[3] = {p.tempfail_rate, p.permfail_rate, p.disconnect_rate};
    const std::size_t eod = static_cast<std::size_t>(Phase::end_of_data);
    for (std::size_t i = 0; i < 3; ++i) {
      sum[eod] += rates[i];
      if (sum[eod] > 1 + 1e-9 && s.rates[i]) {
        fail_at(*s.rates[i], "tempfail-rate, permfail-rate and disconnect-rate add up to " +
                                 format_double(sum[eod]) + "; at most 1");
      }
    }
    for (std::size_t i = 0; i < p.rules.size() && i < s.rules.size(); ++i) {
      const std::size_t ph = static_cast<std::size_t>(p.rules[i].phase);
      sum[ph] += p.rules[i].probability;
      if (sum[ph] > 1 + 1e-9) {
        fail_at(s.rules[i], "the rules of phase " + in_quotes(phase_name(p.rules[i].phase)) +
                                " add up to probability " + format_double(sum[ph]) +
                                " with this one" +
                                (ph == eod ? " (tempfail-rate, permfail-rate and "
                                             "disconnect-rate included)"
                                           : "") +
                                "; one draw decides between them, so at most 1");
      }
    }
  }

  std::string file_;
  SinkConfig& cfg_;
  ProfileSources top_sources_;
  ProfileSources listener_sources_;
};

// ---- Command line ----------------------------------------------------------------------------

// A listener setting given as a flag; applied to every listener after the file.
struct ListenerFlag {
  std::string key;
  std::string flag;
  bool is_switch = false;  // --no-X: X = false
  std::string text;
  CLI::Option* option = nullptr;
};

constexpr const char* kDescription =
    "ringmta-sink: a mock recipient SMTP server for the ringmta testbed, in the spirit of\n"
    "Postfix's smtp-sink, with failure injection. By default it accepts every message\n"
    "and discards it. Probabilities are from 0 to 1; a SPEC is a delay: 5ms, 250us, 1.5s,\n"
    "uniform:1ms-10ms or lognormal:MEDIAN,SIGMA (e.g. lognormal:5ms,0.5).\n";

constexpr const char* kFooter =
    "\nMagic recipients (checked at RCPT, any domain, tag before '+', any case; --no-magic):\n"
    "  tempfail+x@d         450 4.2.0              permfail+x@d       550 5.1.1\n"
    "  disconnect+x@d       close, no reply        delay-500ms+x@d    accept after 500ms\n"
    "  tempfail-data+x@d    450 4.2.0 at end of data (accepted at RCPT)\n"
    "  permfail-data+x@d    550 5.1.1 at end of data (accepted at RCPT)\n"
    "  As first recipient, delay-X+ also delays the end-of-data reply.\n"
    "Per-rule failures, per-domain behaviour ([listener.domain.\"slow.test\"]) and several\n"
    "listeners: --config FILE (TOML, keys named as the flags; see --print-config).\n"
    "Flags override the file, in every listener. Exit codes: 0 ok, 2 bad usage or config.";

}  // namespace

std::string_view mode_name(SinkMode m) {
  switch (m) {
    case SinkMode::discard:
      return "discard";
    case SinkMode::count:
      return "count";
    case SinkMode::digest:
      return "digest";
    case SinkMode::maildir:
      return "maildir";
  }
  return "?";
}

unsigned default_thread_count() {
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 2 : std::min(2u, hw);
}

bool operator==(const ListenerConfig& a, const ListenerConfig& b) {
  const smtp::ServerConfig& x = a.server;
  const smtp::ServerConfig& y = b.server;
  return a.address.to_string() == b.address.to_string() && x.hostname == y.hostname &&
         x.greeting == y.greeting && x.max_message_size == y.max_message_size &&
         x.max_recipients == y.max_recipients && x.pipelining == y.pipelining && x.size == y.size &&
         x.eight_bit_mime == y.eight_bit_mime && x.smtputf8 == y.smtputf8 &&
         x.enhanced_status_codes == y.enhanced_status_codes && x.chunking == y.chunking &&
         x.dsn == y.dsn && x.starttls == y.starttls && x.require_tls == y.require_tls &&
         a.tls_cert == b.tls_cert && a.tls_key == b.tls_key &&
         x.command_timeout_ms == y.command_timeout_ms && x.data_timeout_ms == y.data_timeout_ms &&
         x.output_buffer_bytes == y.output_buffer_bytes && a.behaviour == b.behaviour;
}

bool operator==(const SinkConfig& a, const SinkConfig& b) {
  const bool metrics_equal = a.metrics.has_value() == b.metrics.has_value() &&
                             (!a.metrics || a.metrics->to_string() == b.metrics->to_string());
  return a.threads == b.threads && a.listeners == b.listeners && a.mode == b.mode &&
         a.digest_log == b.digest_log && a.maildir == b.maildir && metrics_equal &&
         a.seed == b.seed && a.recv_buffers == b.recv_buffers &&
         a.recv_buffer_size == b.recv_buffer_size;
}

int load_sink_config(int argc, char** argv, SinkConfig& out, std::ostream& out_stream,
                     std::ostream& err_stream) {
  CLI::App app(kDescription, "ringmta-sink");
  app.get_formatter()->column_width(30);
  app.footer(kFooter);

  std::vector<std::string> listen;
  std::string config_file;
  bool print_config = false;
  std::deque<std::pair<std::string, std::string>> globals;  // key, text (stable addresses)
  std::deque<CLI::Option*> global_options;
  std::deque<ListenerFlag> flags;  // deque: CLI11 keeps references to the strings

  auto global = [&](const std::string& key, const std::string& type, const std::string& desc,
                    const std::string& group) {
    globals.emplace_back(key, std::string());
    global_options.push_back(
        app.add_option("--" + key, globals.back().second, desc)->type_name(type)->group(group));
  };
  auto setting = [&](const std::string& key, const std::string& type, const std::string& desc,
                     const std::string& group) {
    flags.push_back(ListenerFlag{key, "--" + key, false, {}, nullptr});
    flags.back().option =
        app.add_option(flags.back().flag, flags.back().text, desc)->type_name(type)->group(group);
  };
  auto no_switch = [&](const std::string& key, const std::string& desc, const std::string& group) {
    flags.push_back(ListenerFlag{key, "--no-" + key, true, {}, nullptr});
    flags.back().option = app.add_flag(flags.back().flag, desc)->group(group);
  };

  const std::string g_server = "Server";
  app.add_option("--listen", listen,
                 "Accept SMTP here; repeatable (default " + std::string(kDefaultListen) + ")")
      ->type_name("HOST:PORT")
      ->group(g_server);
  app.add_option("--config", config_file,
                 "TOML: these settings, [[listener]] tables, rules, domains")
      ->type_name("FILE")
      ->group(g_server);
  global(
      "threads", "N",
      "Worker threads (default " + std::to_string(default_thread_count()) + " here: min(2, CPUs))",
      g_server);
  global("metrics", "HOST:PORT", "Serve Prometheus /metrics here (default: off)", g_server);
  global("seed", "N", "Seed of the failure and delay draws (default 1)", g_server);
  global("recv-buffers", "N",
         "Receive buffers per thread, a power of two (default 1024); memory is only used as "
         "data arrives",
         g_server);
  global("recv-buffer-size", "BYTES", "Bytes per receive buffer (default 16384)", g_server);
  app.add_flag("--print-config", print_config, "Print the effective configuration as TOML and exit")
      ->group(g_server);

  const std::string g_mode = "Message handling";
  global("mode", "MODE", "discard (default), count, digest (log X-Ringmta-Id) or maildir (store)",
         g_mode);
  global("digest-log", "FILE", "Mode digest: the id log (required)", g_mode);
  global("maildir", "DIR", "Mode maildir: where messages go (required)", g_mode);

  const std::string g_smtp = "SMTP server (as smtp-sink)";
  setting("hostname", "NAME", "Name in the banner and EHLO reply (default localhost)", g_smtp);
  setting("max-message-size", "BYTES",
          "SIZE limit, K/M/G allowed; 0 = none (default 35M = 36700160)", g_smtp);
  setting("max-recipients", "N", "Recipients per message (default 100)", g_smtp);
  no_switch("pipelining", "Do not offer PIPELINING (RFC 2920)", g_smtp);
  no_switch("size", "Do not offer SIZE (RFC 1870)", g_smtp);
  no_switch("8bitmime", "Do not offer 8BITMIME (RFC 6152)", g_smtp);
  no_switch("smtputf8", "Do not offer SMTPUTF8 (RFC 6531)", g_smtp);
  no_switch("enhancedstatuscodes", "Do not offer ENHANCEDSTATUSCODES (RFC 2034)", g_smtp);
  no_switch("chunking", "Do not offer CHUNKING, i.e. BDAT (RFC 3030)", g_smtp);
  no_switch("dsn", "Do not offer DSN (RFC 3461)", g_smtp);
  setting("starttls", "MODE", std::string(config::kStarttlsHelp), g_smtp);
  setting("tls-cert", "FILE", std::string(config::kTlsCertHelp), g_smtp);
  setting("tls-key", "FILE", std::string(config::kTlsKeyHelp), g_smtp);

  const std::string g_fail = "Failures (a probability per message, default 0)";
  setting("tempfail-rate", "P", "Answer 451 4.3.0 at the end of data", g_fail);
  setting("permfail-rate", "P", "Answer 554 5.6.0 at the end of data", g_fail);
  setting("disconnect-rate", "P", "Close without a reply at the end of data", g_fail);
  no_switch("magic", "Treat magic recipients (below) as ordinary ones", g_fail);

  const std::string g_delay = "Delays before replying (SPEC, default 0)";
  setting("delay", "SPEC", "Before every reply", g_delay);
  for (std::size_t i = 0; i < kPhaseCount; ++i) {
    const std::string_view ph = phase_name(static_cast<Phase>(i));
    std::string verb(ph);
    for (char& c : verb)
      c = static_cast<char>(c - 'a' + 'A');
    const std::string what = i == 0   ? "the 220 banner"
                             : i == 5 ? "the reply to the end of data"
                             : i == 4 ? "the reply to DATA / first BDAT"
                                      : "the reply to " + verb;
    setting("delay-" + std::string(ph), "SPEC", "Before " + what + " (wins over --delay)", g_delay);
  }

  const std::string g_limits = "Limits (per listener)";
  setting("max-connections", "N", "Concurrent; beyond, 421 4.7.0 banner (default 0 = no limit)",
          g_limits);
  setting("rate-limit", "N", "Messages per second, checked at MAIL (default 0 = off)", g_limits);
  setting("rate-limit-reply", "CODE",
          "Over the rate: 421 (4.7.0, then close; default) or 451 (4.7.1)", g_limits);
  setting("greylist-wait", "DURATION",
          "New (client, sender, recipient): 451 4.7.1 at RCPT for DURATION (default off)",
          g_limits);
  app.set_help_flag("-h,--help", "Print this help and exit")->group(g_server);
  app.set_version_flag("--version", "ringmta-sink " RINGMTA_VERSION, "Print the version and exit")
      ->group(g_server);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e, out_stream, err_stream);
    return 0;
  } catch (const CLI::CallForVersion& e) {
    app.exit(e, out_stream, err_stream);
    return 0;
  } catch (const CLI::ParseError& e) {
    err_stream << "ringmta-sink: " << e.what() << "\nRun 'ringmta-sink --help' for the options.\n";
    return 2;
  }

  try {
    SinkConfig cfg;
    std::unique_ptr<TomlReader> reader;
    if (!config_file.empty()) {
      std::ifstream in(config_file, std::ios::binary);
      if (!in) {
        throw ConfigError("--config: cannot read " + in_quotes(config_file) + ": " +
                          std::strerror(errno));
      }
      std::stringstream text;
      text << in.rdbuf();
      toml::table root;
      try {
        root = toml::parse(text.str(), config_file);
      } catch (const toml::parse_error& e) {
        throw ConfigError(config_file + ":" + std::to_string(e.source().begin.line) + ":" +
                          std::to_string(e.source().begin.column) + ": " +
                          std::string(e.description()));
      }
      reader = std::make_unique<TomlReader>(config_file, cfg);
      reader->read_root(root);
    }
    for (std::size_t i = 0; i < globals.size(); ++i) {
      if (global_options[i]->count() == 0) continue;
      const auto& [key, text] = globals[i];
      apply_global_key(key, Value(text, Origin{nullptr, {}, "--" + key}), cfg);
    }

    ListenerConfig top = reader ? reader->top_ : ListenerConfig{};
    std::vector<io::SocketAddress> addresses =
        reader ? reader->top_listens_ : std::vector<io::SocketAddress>{};
    if (!listen.empty()) {
      addresses.clear();
      for (const std::string& l : listen) {
        addresses.push_back(Value(l, Origin{nullptr, {}, "--listen"}).address());
      }
    }
    const bool has_tables = reader && !reader->listeners_.empty();
    if (addresses.empty() && has_tables && reader->top_setting_) {
      fail_at(*reader->top_setting_,
              "top-level listener settings apply to the top-level listen addresses (or "
              "--listen), and there are none; put it in each [[listener]] table");
    }
    if (addresses.empty() && !has_tables) {
      io::SocketAddress a;
      io::parse_socket_address(kDefaultListen, a, nullptr);
      addresses.push_back(a);
    }
    for (const io::SocketAddress& a : addresses) {
      cfg.listeners.push_back(top);
      cfg.listeners.back().address = a;
    }
    if (has_tables) {
      for (ListenerConfig& l : reader->listeners_)
        cfg.listeners.push_back(std::move(l));
    }

    for (ListenerConfig& l : cfg.listeners) {
      for (const ListenerFlag& f : flags) {
        if (f.option->count() == 0) continue;
        const Origin o{nullptr, {}, f.flag};
        apply_listener_key(f.key, f.is_switch ? Value::of_switch(false, o) : Value(f.text, o), l);
      }
      if (const std::string_view missing =
              config::missing_tls_files(l.server, l.tls_cert, l.tls_key);
          !missing.empty()) {
        throw ConfigError("listener " + l.address.to_string() + ": starttls " +
                          std::string(missing));
      }
      std::string why;
      if (!validate_behaviour(l.behaviour, &why)) {
        throw ConfigError("listener " + l.address.to_string() + ": " + why);
      }
    }
    for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
      const io::SocketAddress& a = cfg.listeners[i].address;
      if (a.port() == 0) continue;  // each gets its own ephemeral port
      for (std::size_t j = 0; j < i; ++j) {
        if (cfg.listeners[j].address.to_string() == a.to_string()) {
          throw ConfigError("listen address " + a.to_string() + " is given twice");
        }
      }
    }

    if (cfg.mode == SinkMode::digest && cfg.digest_log.empty()) {
      throw ConfigError("--mode digest needs --digest-log FILE (digest-log in the file)");
    }
    if (cfg.mode == SinkMode::maildir && cfg.maildir.empty()) {
      throw ConfigError("--mode maildir needs --maildir DIR (maildir in the file)");
    }
    if (cfg.mode != SinkMode::digest && !cfg.digest_log.empty()) {
      throw ConfigError("--digest-log is only used with --mode digest (mode is " +
                        std::string(mode_name(cfg.mode)) + ")");
    }
    if (cfg.mode != SinkMode::maildir && !cfg.maildir.empty()) {
      throw ConfigError("--maildir is only used with --mode maildir (mode is " +
                        std::string(mode_name(cfg.mode)) + ")");
    }

    if (print_config) {
      out_stream << format_sink_config(cfg);
      return 0;
    }
    out = std::move(cfg);
    return -1;
  } catch (const ConfigError& e) {
    err_stream << "ringmta-sink: " << e.what() << "\n";
    return 2;
  }
}

// ---- --print-config --------------------------------------------------------------------------

namespace {

std::string toml_string(std::string_view s) {
  std::string r = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      r += '\\';
      r += ch;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      r += buf;
    } else {
      r += ch;
    }
  }
  return r + "\"";
}

std::string toml_float(double v) {
  std::string s = format_double(v);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

// Integral rates print as integers ("1000"), others as floats.
std::string toml_rate(double v) {
  if (v == std::floor(v) && v < 9e15) return std::to_string(static_cast<std::int64_t>(v));
  return toml_float(v);
}

void write_profile(std::ostream& o, const Profile& p, bool in_domain) {
  o << "tempfail-rate = " << toml_float(p.tempfail_rate) << "\n";
  o << "permfail-rate = " << toml_float(p.permfail_rate) << "\n";
  o << "disconnect-rate = " << toml_float(p.disconnect_rate) << "\n";
  for (std::size_t i = in_domain ? static_cast<std::size_t>(Phase::rcpt) : 0; i < kPhaseCount;
       ++i) {
    o << "delay-" << phase_name(static_cast<Phase>(i)) << " = "
      << toml_string(format_delay(p.delays[i])) << "\n";
  }
  o << "greylist-wait = "
    << toml_string(p.greylist_wait_us ? format_duration(*p.greylist_wait_us) : "off") << "\n";
  o << "rate-limit = " << toml_rate(p.rate_limit.per_second) << "\n";
  o << "rate-limit-burst = " << p.rate_limit.burst << "\n";
  o << "rate-limit-reply = " << (p.rate_limit.reply == RateLimitReply::close_421 ? 421 : 451)
    << "\n";
}

void write_rules(std::ostream& o, const std::string& table, const std::vector<Rule>& rules) {
  for (const Rule& r : rules) {
    o << "\n[[" << table << "]]\n";
    o << "phase = " << toml_string(phase_name(r.phase)) << "\n";
    o << "probability = " << toml_float(r.probability) << "\n";
    o << "action = " << toml_string(action_name(r.action)) << "\n";
    if (r.action == Action::Kind::reply || r.action == Action::Kind::reply_and_disconnect) {
      o << "reply = " << toml_string(format_reply_spec(r.reply)) << "\n";
    }
    if (r.action == Action::Kind::disconnect_mid_data) {
      o << "after-bytes = " << r.after_bytes << "\n";
    }
    if (r.delay) o << "delay = " << toml_string(format_delay(*r.delay)) << "\n";
  }
}

}  // namespace

std::string format_sink_config(const SinkConfig& c) {
  std::ostringstream o;
  o << "# ringmta-sink effective configuration (--print-config); read it back with --config.\n";
  o << "threads = " << c.threads << "\n";
  o << "mode = " << toml_string(mode_name(c.mode)) << "\n";
  if (c.mode == SinkMode::digest) {
    o << "digest-log = " << toml_string(c.digest_log) << "\n";
  }
  if (c.mode == SinkMode::maildir) o << "maildir = " << toml_string(c.maildir) << "\n";
  if (c.metrics) {
    o << "metrics = " << toml_string(c.metrics->to_string()) << "\n";
  } else {
    o << "# metrics = \"HOST:PORT\"  (off)\n";
  }
  o << "seed = " << c.seed << "\n";
  o << "recv-buffers = " << c.recv_buffers << "\n";
  o << "recv-buffer-size = " << c.recv_buffer_size << "\n";
  for (const ListenerConfig& l : c.listeners) {
    const smtp::ServerConfig& s = l.server;
    const BehaviourConfig& b = l.behaviour;
    o << "\n[[listener]]\n";
    o << "listen = " << toml_string(l.address.to_string()) << "\n";
    o << "hostname = " << toml_string(s.hostname) << "\n";
    o << "max-message-size = " << s.max_message_size << "\n";
    o << "max-recipients = " << s.max_recipients << "\n";
    o << "max-connections = " << b.max_connections << "\n";
    for (const Extension& e : kExtensions) {
      o << e.key << " = " << (s.*e.field ? "true" : "false") << "\n";
    }
    o << "starttls = " << toml_string(config::starttls_text(s)) << "\n";
    if (!l.tls_cert.empty()) o << "tls-cert = " << toml_string(l.tls_cert) << "\n";
    if (!l.tls_key.empty()) o << "tls-key = " << toml_string(l.tls_key) << "\n";
    o << "magic = " << (b.magic ? "true" : "false") << "\n";
    o << "greylist-capacity = " << b.greylist_capacity << "\n";
    write_profile(o, b.defaults, false);
    write_rules(o, "listener.rule", b.defaults.rules);
    for (const DomainProfile& d : b.domains) {
      const std::string table = "listener.domain." + toml_string(d.pattern);
      o << "\n[" << table << "]\n";
      write_profile(o, d.profile, true);
      write_rules(o, table + ".rule", d.profile.rules);
    }
  }
  return o.str();
}

}  // namespace ringmta::sink
