// One setting's value read the same way from a TOML node (toml++) and from a flag's text
// (CLI11), so that a key and its flag accept the same values and fail with the same one-line
// reasons ("FILE:LINE:COL: key: reason" or "--flag: reason"). Shared by the binaries' loaders;
// a target that includes this header links tomlplusplus::tomlplusplus (it sets how toml++ is
// built), as ringmta_core does privately.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/io/socket_address.hpp"

namespace ringmta::config {

// Start-up only: a loader ends with exit code 2 and this message (after "program: ").
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string in_quotes(std::string_view s);    // 'text', as messages show a flag's value
std::string format_double(double v);          // shortest text that reads back exactly
std::string toml_string(std::string_view s);  // a TOML basic string, quoted and escaped

// Where a value came from: a TOML node (file:line:col and key) or a command-line flag.
struct Origin {
  const std::string* file = nullptr;  // null: a flag. The string outlives the Origin.
  toml::source_position pos{};
  std::string name;  // the key, "--flag", or a table name such as "[[route]]"

  static Origin flag(std::string flag_name) { return Origin{nullptr, {}, std::move(flag_name)}; }
  static Origin at(const std::string& file, const toml::node& n, std::string_view name) {
    return Origin{&file, n.source().begin, std::string(name)};
  }
  static Origin at(const std::string& file, const toml::key& k, std::string_view name) {
    return Origin{&file, k.source().begin, std::string(name)};
  }
  // "FILE:LINE:COL: key" or "--flag".
  std::string prefix() const;
};

[[noreturn]] void fail_at(const Origin& o, const std::string& reason);

// "a string", "an integer", ... for "must be X, not an array".
std::string type_name(const toml::node& n);

// ---- Durations -------------------------------------------------------------------------------

inline constexpr std::uint64_t kNsPerSecond = 1'000'000'000;

// Whether a number without a unit is a duration (in seconds) or refused. Settings far from a
// second (a batch window of 1ms) want the unit written out.
enum class BareNumber : std::uint8_t { seconds, refused };

// "100ns", "250us", "5ms", "1.5s", "2m", "1h" (and "10" = 10s when bare is seconds). Exact to
// the nanosecond (finer is refused, not rounded). False with a reason in why.
bool parse_duration_ns(std::string_view text, std::uint64_t& out, std::string& why,
                       BareNumber bare = BareNumber::seconds);
// The shortest exact text ("0s", "10s", "1500ms", "2m"...), which parses back.
std::string format_duration_ns(std::uint64_t ns);

// ---- Sizes -----------------------------------------------------------------------------------

inline constexpr std::uint64_t kMaxSize = std::uint64_t{1} << 50;

// Digits with an optional K, M or G (1024-based, any case): "16384", "512K", "64M". At most
// kMaxSize. False when it is not one.
bool parse_size(std::string_view text, std::uint64_t& out);
// "64M" when a whole number of K, M or G, else the digits; parse_size reads it back.
std::string format_size(std::uint64_t bytes);

// ---- Files -----------------------------------------------------------------------------------

// Reads and parses a TOML file. Throws ConfigError: "--config: cannot read 'F': reason" or
// "F:LINE:COL: toml++'s description".
toml::table parse_toml_file(const std::string& path);

// ---- Values ----------------------------------------------------------------------------------

// A setting's value: a TOML node (which must outlive the Value) or a flag's text. Every
// reader fails through fail_at, naming where the value came from.
class Value {
 public:
  Value(const toml::node& node, Origin origin) : node_(&node), origin_(std::move(origin)) {}
  Value(std::string text, Origin origin) : text_(std::move(text)), origin_(std::move(origin)) {}
  // A switch flag (--verbose, --no-pipelining): the boolean key is `on`.
  static Value of_switch(bool on, Origin origin) {
    Value v(on ? "true" : "false", std::move(origin));
    v.switch_ = true;
    return v;
  }

  [[noreturn]] void fail(const std::string& reason) const { fail_at(origin_, reason); }

  // The value as the user wrote it, for "got ..." in messages: 'text' for a flag, TOML
  // syntax for a node.
  std::string shown() const;

  bool is_integer_node() const { return node_ != nullptr && node_->is_integer(); }
  const toml::node* node() const { return node_; }  // null for a flag
  const Origin& origin() const { return origin_; }

  // `expected` completes "must be ...".
  std::string text(std::string_view expected) const;
  double number(double lo, double hi, std::string_view expected) const;
  std::int64_t integer(std::int64_t lo, std::int64_t hi, std::string_view expected) const;
  bool boolean() const;
  // Text as a duration (and with BareNumber::seconds a TOML number of seconds); at most max_ns.
  std::uint64_t duration_ns(std::uint64_t max_ns, BareNumber bare = BareNumber::seconds) const;
  // Bytes: an integer, or text for parse_size ("512K", "35M", "1G").
  std::uint64_t size() const;
  // A numeric "HOST:PORT" (io::parse_socket_address).
  io::SocketAddress address() const;

 private:
  const toml::node* node_ = nullptr;
  std::string text_;
  bool switch_ = false;
  Origin origin_;
};

}  // namespace ringmta::config
