// Shared by the libFuzzer targets: FUZZ_CHECK aborts with a message when a property fails
// (so libFuzzer and the corpus replay both report it), and InputReader takes control bytes
// (split points, handler decisions) from the front of an input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond)                                                   \
  do {                                                                     \
    if (!(cond)) ::ringmta::fuzz::check_failed(#cond, __FILE__, __LINE__); \
  } while (0)

// Equality of two strings; on failure prints both (escaped) from their first difference.
#define FUZZ_CHECK_EQ_STR(a, b) ::ringmta::fuzz::check_eq_str((a), (b), #a, #b, __FILE__, __LINE__)

namespace ringmta::fuzz {

[[noreturn]] inline void check_failed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: property failed: %s\n", file, line, what);
  std::fflush(stderr);
  __builtin_trap();
}

// Printable form of bytes: \r, \n, \\ and \xNN for the rest outside 0x20..0x7e.
inline std::string escape(std::string_view s, std::size_t limit = 2048) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c > 0x7e) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > limit) out += "...";
  return out;
}

inline void check_eq_str(std::string_view a, std::string_view b, const char* an, const char* bn,
                         const char* file, int line) {
  if (a == b) return;
  std::size_t at = 0;
  while (at < a.size() && at < b.size() && a[at] == b[at])
    ++at;
  const std::size_t from = at > 200 ? at - 200 : 0;
  std::fprintf(stderr, "%s:%d: %s != %s (sizes %zu, %zu; first difference at %zu)\n", file, line,
               an, bn, a.size(), b.size(), at);
  std::fprintf(stderr, "  %s[%zu..]: %s\n", an, from, escape(a.substr(from), 1200).c_str());
  std::fprintf(stderr, "  %s[%zu..]: %s\n", bn, from, escape(b.substr(from), 1200).c_str());
  check_failed("strings differ", file, line);
}

// Reads control values from the front of a fuzz input; past its end every value is 0, so
// any input is valid. rest() is what remains (the protocol bytes).
class InputReader {
 public:
  InputReader(const std::uint8_t* data, std::size_t size)
      : data_(reinterpret_cast<const char*>(data), size) {}

  std::uint8_t byte() {
    if (data_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(data_[0]);
    data_.remove_prefix(1);
    return b;
  }
  std::uint16_t u16() {
    const std::uint16_t hi = byte();
    return static_cast<std::uint16_t>(hi << 8 | byte());
  }
  std::string_view bytes(std::size_t n) {
    const std::string_view b = data_.substr(0, n);
    data_.remove_prefix(b.size());
    return b;
  }
  std::string_view rest() const { return data_; }

 private:
  std::string_view data_;
};

}  // namespace ringmta::fuzz
