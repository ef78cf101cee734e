// Character classes and small text helpers for the SMTP grammars (RFC 5321 4.1.2, RFC 6531).
// Pure functions over bytes; no locale, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ringmta::smtp {

constexpr bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
constexpr bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
constexpr bool is_let_dig(unsigned char c) { return is_alpha(c) || is_digit(c); }
constexpr bool is_hexdig_upper(unsigned char c) { return is_digit(c) || (c >= 'A' && c <= 'F'); }
constexpr bool is_hexdig(unsigned char c) {
  return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}
constexpr char to_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}

// RFC 5322 3.2.3 atext: ALPHA / DIGIT / "!#$%&'*+-/=?^_`{|}~".
bool is_atext(unsigned char c);

// ASCII case-insensitive equality; `upper` must already be the canonical (upper-case) form.
bool iequals(std::string_view s, std::string_view upper);
// ASCII case-insensitive prefix test.
bool istarts_with(std::string_view s, std::string_view upper_prefix);

bool has_non_ascii(std::string_view s);

// Length of the well-formed UTF-8 sequence (RFC 3629, no overlongs, no surrogates) that
// starts at s[0], or 0 if it is not one. s must be non-empty.
std::size_t utf8_sequence_length(std::string_view s);
bool is_valid_utf8(std::string_view s);

// Parses 1..max_digits decimal digits exactly (the whole view); false on overflow or junk.
bool parse_decimal(std::string_view s, std::size_t max_digits, std::uint64_t& out);

}  // namespace ringmta::smtp
