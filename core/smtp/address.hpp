// The RFC 5321 4.1.2 path grammar: reverse and forward paths, mailboxes with dot-string or
// quoted local parts, domains and address literals, with RFC 6531 UTF-8 where it is allowed.
// Parsers are pure functions over a byte span; results are views into that span.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ringmta::smtp {

// RFC 5321 4.5.3.1: size limits of the parts of an address.
inline constexpr std::size_t kMaxLocalPart = 64;   // 4.5.3.1.1
inline constexpr std::size_t kMaxDomain = 255;     // 4.5.3.1.2
inline constexpr std::size_t kMaxPath = 256;       // 4.5.3.1.3, with the angle brackets
inline constexpr std::size_t kMaxLabel = 63;       // RFC 1035 2.3.4

enum class AddressError : std::uint8_t {
  none,
  syntax,          // not a path at all (no brackets, junk)
  local_part,      // bad local part
  domain,          // bad domain or address literal
  too_long,        // a 4.5.3.1 size limit
  bad_utf8,        // ill-formed UTF-8
};

struct Path {
  std::string_view local_part{};  // as on the wire: a quoted local part keeps its quotes
  std::string_view domain{};      // domain, or address literal with its brackets
  bool null = false;              // "<>" (reverse path only)
  bool postmaster = false;        // "<Postmaster>" without a domain (forward path only)
  bool non_ascii = false;         // holds UTF-8 (needs SMTPUTF8, RFC 6531 3.4)
  bool quoted = false;            // local part is a Quoted-string

  friend bool operator==(const Path&, const Path&) = default;
};

enum class PathKind : std::uint8_t { reverse, forward };

struct PathParse {
  AddressError error = AddressError::none;
  std::size_t consumed = 0;  // up to and including '>'
};

// Parses a path at the start of s ("<...>"); source routes ("<@a,@b:x@y>") are accepted and
// ignored (RFC 5321 4.1.1.3, C). UTF-8 is accepted when well formed and flagged in non_ascii;
// whether it is allowed is the session's decision (it depends on MAIL's SMTPUTF8).
PathParse parse_path(std::string_view s, PathKind kind, Path& out);

// Domain = sub-domain *("." sub-domain); U-labels allowed and flagged when allow_utf8.
bool is_valid_domain(std::string_view s, bool allow_utf8, bool* non_ascii = nullptr);
// address-literal = "[" ( IPv4 / "IPv6:" IPv6 / General-address-literal ) "]".
bool is_valid_address_literal(std::string_view s);
// The EHLO argument: Domain / address-literal (RFC 5321 4.1.1.1).
bool is_valid_ehlo_domain(std::string_view s);

}  // namespace ringmta::smtp
