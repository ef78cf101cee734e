// RFC 5321 4.1.2 / 4.1.3 address grammar; see address.hpp.
#include "core/smtp/address.hpp"

#include <cstring>

#include "core/smtp/ascii.hpp"

namespace ringmta::smtp {
namespace {

// Consumes one "character" of a dot-atom or label: an ASCII byte accepted by pred, or a
// well-formed UTF-8 sequence (RFC 6531 atext =/ UTF8-non-ascii). Returns bytes used, 0 if none.
template <typename Pred>
std::size_t take_char(std::string_view s, Pred pred, bool& non_ascii, bool& bad_utf8) {
  const auto c = static_cast<unsigned char>(s[0]);
  if (c < 0x80) return pred(c) ? 1 : 0;
  const std::size_t n = utf8_sequence_length(s);
  if (n == 0) {
    bad_utf8 = true;
    return 0;
  }
  non_ascii = true;
  return n;
}

bool is_snum(std::string_view s) {
  std::uint64_t v = 0;
  return parse_decimal(s, 3, v) && v <= 255;
}

bool is_ipv4_literal(std::string_view s) {
  int parts = 0;
  while (true) {
    const std::size_t dot = s.find('.');
    if (!is_snum(s.substr(0, dot))) return false;
    ++parts;
    if (dot == std::string_view::npos) break;
    s.remove_prefix(dot + 1);
  }
  return parts == 4;
}

// IPv6-hex *(":" IPv6-hex) with IPv6-hex = 1*4HEXDIG; an IPv4 literal may end the list
// when allow_v4. Returns the number of 16-bit groups (an IPv4 literal counts 2), or -1.
int count_ipv6_groups(std::string_view s, bool allow_v4) {
  if (s.empty()) return 0;
  int groups = 0;
  while (true) {
    const std::size_t colon = s.find(':');
    const std::string_view part = s.substr(0, colon);
    if (colon == std::string_view::npos && allow_v4 && part.find('.') != part.npos) {
      return is_ipv4_literal(part) ? groups + 2 : -1;
    }
    if (part.empty() || part.size() > 4) return -1;
    for (char c : part) {
      if (!is_hexdig(static_cast<unsigned char>(c))) return -1;
    }
    ++groups;
    if (colon == std::string_view::npos) return groups;
    s.remove_prefix(colon + 1);
  }
}

// RFC 5321 4.1.3 IPv6-addr: full (8 groups), compressed ("::" standing for at least two
// groups, so at most 6 others), and the forms ending in an IPv4 address (6 groups, or at
// most 4 others with "::"). inet_pton is laxer ("::" for a single group), hence this.
bool is_ipv6_addr(std::string_view s) {
  const std::size_t dc = s.find("::");
  const bool v4 = s.find('.') != std::string_view::npos;
  if (dc == std::string_view::npos) {
    return count_ipv6_groups(s, true) == 8;
  }
  if (s.find("::", dc + 1) != std::string_view::npos) return false;
  const int left = count_ipv6_groups(s.substr(0, dc), false);
  const int right = count_ipv6_groups(s.substr(dc + 2), true);
  if (left < 0 || right < 0) return false;
  return left + right <= 6 && (!v4 || left + right - 2 <= 4);
}

// Parses a dot-string local part at the start of s; returns its length or 0.
std::size_t scan_dot_string(std::string_view s, bool& non_ascii, bool& bad_utf8) {
  std::size_t i = 0;
  while (true) {
    const std::size_t atom_start = i;
    while (i < s.size()) {
      const std::size_t n =
          take_char(s.substr(i), [](unsigned char c) { return is_atext(c); }, non_ascii, bad_utf8);
      if (n == 0) break;
      i += n;
    }
    if (i == atom_start) return 0;  // empty atom: leading, trailing or double dot
    if (i < s.size() && s[i] == '.') {
      ++i;
      continue;
    }
    return i;
  }
}

// Parses a Quoted-string at the start of s (s[0] == '"'); returns its length or 0.
std::size_t scan_quoted_string(std::string_view s, bool& non_ascii, bool& bad_utf8) {
  std::size_t i = 1;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"') return i + 1;
    if (c == '\\') {  // quoted-pairSMTP = %d92 %d32-126
      if (i + 1 >= s.size()) return 0;
      const auto q = static_cast<unsigned char>(s[i + 1]);
      if (q < 32 || q > 126) return 0;
      i += 2;
      continue;
    }
    // qtextSMTP = %d32-33 / %d35-91 / %d93-126, plus UTF8-non-ascii
    const std::size_t n = take_char(
        s.substr(i), [](unsigned char x) { return x >= 32 && x <= 126; }, non_ascii, bad_utf8);
    if (n == 0) return 0;
    i += n;
  }
  return 0;
}

// Skips "@dom,@dom:" at the start of s; returns bytes used (0 if there is no source route),
// or npos when it is malformed.
std::size_t skip_source_route(std::string_view s) {
  if (s.empty() || s[0] != '@') return 0;
  std::size_t i = 0;
  while (i < s.size() && s[i] == '@') {
    const std::size_t end = s.find_first_of(",:", i + 1);
    if (end == std::string_view::npos) return std::string_view::npos;
    if (!is_valid_domain(s.substr(i + 1, end - i - 1), true)) return std::string_view::npos;
    i = end + 1;
    if (s[end] == ':') return i;
  }
  return std::string_view::npos;
}

}  // namespace

bool is_valid_domain(std::string_view s, bool allow_utf8, bool* non_ascii_out) {
  if (s.empty() || s.size() > kMaxDomain) return false;
  bool non_ascii = false;
  bool bad_utf8 = false;
  std::size_t i = 0;
  while (true) {
    // sub-domain = Let-dig [Ldh-str]: starts and ends with a letter or digit.
    const std::size_t label_start = i;
    bool last_was_hyphen = false;
    while (i < s.size() && s[i] != '.') {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c == '-') {
        if (i == label_start) return false;
        last_was_hyphen = true;
        ++i;
        continue;
      }
      const std::size_t n =
          take_char(s.substr(i), [](unsigned char x) { return is_let_dig(x); }, non_ascii, bad_utf8);
      if (n == 0) return false;
      last_was_hyphen = false;
      i += n;
    }
    if (i == label_start || last_was_hyphen || i - label_start > kMaxLabel) return false;
    if (i == s.size()) break;
    ++i;  // the dot
    if (i == s.size()) return false;  // trailing dot
  }
  if (non_ascii && !allow_utf8) return false;
  if (non_ascii_out != nullptr) *non_ascii_out = non_ascii;
  return true;
}

bool is_valid_address_literal(std::string_view s) {
  if (s.size() < 3 || s.front() != '[' || s.back() != ']') return false;
  s = s.substr(1, s.size() - 2);
  if (!s.empty() && is_digit(static_cast<unsigned char>(s[0])) && is_ipv4_literal(s)) return true;
  if (istarts_with(s, "IPV6:")) return is_ipv6_addr(s.substr(5));
  // General-address-literal = Standardized-tag ":" 1*dcontent; dcontent = %d33-90 / %d94-126
  const std::size_t colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size()) return false;
  const std::string_view tag = s.substr(0, colon);
  if (!is_let_dig(static_cast<unsigned char>(tag.back()))) return false;
  for (char c : tag) {
    if (!is_let_dig(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  for (char ch : s.substr(colon + 1)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 33 || c > 126 || (c >= 91 && c <= 93)) return false;
  }
  return true;
}

bool is_valid_ehlo_domain(std::string_view s) {
  if (!s.empty() && s[0] == '[') return is_valid_address_literal(s);
  return is_valid_domain(s, true);
}

PathParse parse_path(std::string_view s, PathKind kind, Path& out) {
  out = Path{};
  PathParse r;
  if (s.empty() || s[0] != '<') {
    r.error = AddressError::syntax;
    return r;
  }
  // A quoted local part may hold '>' ("a>b"@c), so the end is found by scanning, not find().
  std::string_view inner = s.substr(1);
  if (kind == PathKind::reverse && !inner.empty() && inner[0] == '>') {
    out.null = true;
    r.consumed = 2;
    return r;
  }
  const std::size_t route = skip_source_route(inner);
  if (route == std::string_view::npos) {
    r.error = AddressError::syntax;
    return r;
  }
  inner.remove_prefix(route);
  bool non_ascii = false;
  bool bad_utf8 = false;
  std::size_t local_len;
  if (!inner.empty() && inner[0] == '"') {
    local_len = scan_quoted_string(inner, non_ascii, bad_utf8);
    out.quoted = true;
  } else {
    local_len = scan_dot_string(inner, non_ascii, bad_utf8);
  }
  if (bad_utf8) {
    r.error = AddressError::bad_utf8;
    return r;
  }
  if (local_len == 0) {
    r.error = inner.find('>') == std::string_view::npos ? AddressError::syntax
                                                          : AddressError::local_part;
    return r;
  }
  out.local_part = inner.substr(0, local_len);
  inner.remove_prefix(local_len);
  // RFC 5321 4.1.1.3: "<Postmaster>" with no domain is a valid forward path.
  if (kind == PathKind::forward && route == 0 && !inner.empty() && inner[0] == '>' &&
      !out.quoted && iequals(out.local_part, "POSTMASTER")) {
    out.postmaster = true;
    r.consumed = static_cast<std::size_t>(inner.data() - s.data()) + 1;
    return r;
  }
  if (inner.empty() || inner[0] != '@') {
    r.error = AddressError::syntax;
    return r;
  }
  inner.remove_prefix(1);
  const std::size_t end = inner.find('>');
  if (end == std::string_view::npos) {
    r.error = AddressError::syntax;
    return r;
  }
  out.domain = inner.substr(0, end);
  if (out.domain.size() > kMaxDomain) {
    r.error = AddressError::too_long;
    return r;
  }
  bool domain_non_ascii = false;
  const bool domain_ok = !out.domain.empty() && out.domain[0] == '['
                             ? is_valid_address_literal(out.domain)
                             : is_valid_domain(out.domain, true, &domain_non_ascii);
  if (!domain_ok) {
    r.error = is_valid_utf8(out.domain) ? AddressError::domain : AddressError::bad_utf8;
    return r;
  }
  r.consumed = static_cast<std::size_t>(inner.data() - s.data()) + end + 1;
  out.non_ascii = non_ascii || domain_non_ascii;
  if (out.local_part.size() > kMaxLocalPart || out.domain.size() > kMaxDomain ||
      r.consumed > kMaxPath) {
    r.error = AddressError::too_long;
    return r;
  }
  return r;
}

}  // namespace ringmta::smtp
