// ESMTP parameter parsing for MAIL and RCPT; see esmtp_params.hpp.
#include "core/smtp/esmtp_params.hpp"

#include "core/smtp/address.hpp"
#include "core/smtp/ascii.hpp"

namespace ringmta::smtp {
namespace {

// RFC 1870 3: the SIZE value is 1*20DIGIT.
constexpr std::size_t kMaxSizeDigits = 20;
// RFC 3461 4.4: ENVID is at most 100 characters.
constexpr std::size_t kMaxEnvid = 100;
// RFC 3461 4.2: ORCPT's xtext address is at most 500 characters.
constexpr std::size_t kMaxOrcpt = 500;

bool is_esmtp_keyword(std::string_view k) {
  // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
  if (k.empty() || !is_let_dig(static_cast<unsigned char>(k[0]))) return false;
  for (char c : k) {
    if (!is_let_dig(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

bool is_esmtp_value(std::string_view v) {
  // esmtp-value = 1*(%d33-60 / %d62-126), extended with UTF-8 by RFC 6531 3.3.
  if (v.empty()) return false;
  for (std::size_t i = 0; i < v.size();) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence_length(v.substr(i));
      if (n == 0) return false;
      i += n;
      continue;
    }
    if (c < 33 || c > 126 || c == '=') return false;
    ++i;
  }
  return true;
}

// Splits the parameter list and hands each keyword/value to `take`, which returns the
// error for that parameter.
template <typename Take>
ParamParse for_each_param(std::string_view s, Take take) {
  ParamParse r;
  while (!s.empty()) {
    if (s[0] != ' ' || s.size() == 1 || s[1] == ' ') {
      r.error = ParamError::syntax;
      return r;
    }
    s.remove_prefix(1);
    const std::size_t end = s.find(' ');
    const std::string_view param = s.substr(0, end);
    s = end == std::string_view::npos ? std::string_view{} : s.substr(end);
    const std::size_t eq = param.find('=');
    const std::string_view keyword = param.substr(0, eq);
    const bool has_value = eq != std::string_view::npos;
    const std::string_view value = has_value ? param.substr(eq + 1) : std::string_view{};
    if (!is_esmtp_keyword(keyword) || (has_value && !is_esmtp_value(value))) {
      r.error = ParamError::syntax;
      r.keyword = keyword;
      return r;
    }
    const ParamError e = take(keyword, has_value, value);
    if (e != ParamError::none) {
      r.error = e;
      r.keyword = keyword;
      return r;
    }
  }
  return r;
}

}  // namespace

bool is_valid_utf8_addr_xtext(std::string_view s) {
  if (!is_valid_utf8(s)) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      // EmbeddedUnicodeChar = %x5C.78 "{" HEXPOINT "}", HEXPOINT 2 to 6 hex digits.
      if (i + 1 >= s.size() || s[i + 1] != 'x' || i + 2 >= s.size() || s[i + 2] != '{') {
        return false;
      }
      std::size_t j = i + 3;
      while (j < s.size() && is_hexdig(static_cast<unsigned char>(s[j]))) ++j;
      if (j >= s.size() || s[j] != '}' || j - (i + 3) < 2 || j - (i + 3) > 6) return false;
      i = j;
      continue;
    }
    // QUCHAR: any UTF-8 but controls, SP, '+' and '='.
    if (c <= 32 || c == 127 || c == '+' || c == '=') return false;
  }
  return true;
}

bool is_valid_xtext(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '+') {
      if (i + 2 >= s.size()) return false;
      if (!is_hexdig_upper(static_cast<unsigned char>(s[i + 1])) ||
          !is_hexdig_upper(static_cast<unsigned char>(s[i + 2]))) {
        return false;
      }
      i += 2;
      continue;
    }
    if (c < 33 || c > 126 || c == '=') return false;
  }
  return true;
}

ParamParse parse_mail_params(std::string_view s, MailParams& out) {
  out = MailParams{};
  bool seen_body = false, seen_ret = false, seen_envid = false, seen_auth = false;
  return for_each_param(s, [&](std::string_view k, bool has_v, std::string_view v) {
    if (iequals(k, "SIZE")) {
      if (out.has_size) return ParamError::duplicate;
      if (!has_v || !parse_decimal(v, kMaxSizeDigits, out.size)) return ParamError::bad_value;
      out.has_size = true;
    } else if (iequals(k, "BODY")) {
      if (seen_body) return ParamError::duplicate;
      seen_body = true;
      if (iequals(v, "7BIT")) out.body = BodyType::seven_bit;
      else if (iequals(v, "8BITMIME")) out.body = BodyType::eight_bit_mime;
      else if (iequals(v, "BINARYMIME")) out.body = BodyType::binary_mime;
      else return ParamError::bad_value;
    } else if (iequals(k, "SMTPUTF8")) {
      if (out.smtputf8) return ParamError::duplicate;
      if (has_v) return ParamError::bad_value;  // RFC 6531 3.4: no value
      out.smtputf8 = true;
    } else if (iequals(k, "RET")) {
      if (seen_ret) return ParamError::duplicate;
      seen_ret = true;
      if (iequals(v, "FULL")) out.ret = DsnRet::full;
      else if (iequals(v, "HDRS")) out.ret = DsnRet::hdrs;
      else return ParamError::bad_value;
    } else if (iequals(k, "ENVID")) {
      if (seen_envid) return ParamError::duplicate;
      seen_envid = true;
      if (!has_v || v.size() > kMaxEnvid || !is_valid_xtext(v)) return ParamError::bad_value;
      out.envid = v;
    } else if (iequals(k, "AUTH")) {
      if (seen_auth) return ParamError::duplicate;
      seen_auth = true;
      // RFC 4954 5: AUTH=<> or AUTH=xtext(mailbox).
      if (!has_v || (v != "<>" && !is_valid_xtext(v))) return ParamError::bad_value;
      out.auth = v;
    } else {
      return ParamError::unknown;
    }
    return ParamError::none;
  });
}

ParamParse parse_rcpt_params(std::string_view s, RcptParams& out) {
  out = RcptParams{};
  bool seen_orcpt = false;
  return for_each_param(s, [&](std::string_view k, bool has_v, std::string_view v) {
    if (iequals(k, "NOTIFY")) {
      if (out.notify != 0) return ParamError::duplicate;
      if (!has_v) return ParamError::bad_value;
      if (iequals(v, "NEVER")) {
        out.notify = kNotifyNever;
        return ParamError::none;
      }
      std::uint8_t flags = 0;
      while (true) {
        const std::size_t comma = v.find(',');
        const std::string_view item = v.substr(0, comma);
        std::uint8_t f = 0;
        if (iequals(item, "SUCCESS")) f = kNotifySuccess;
        else if (iequals(item, "FAILURE")) f = kNotifyFailure;
        else if (iequals(item, "DELAY")) f = kNotifyDelay;
        if (f == 0 || (flags & f) != 0) return ParamError::bad_value;  // NEVER mixed, repeats
        flags |= f;
        if (comma == std::string_view::npos) break;
        v.remove_prefix(comma + 1);
      }
      out.notify = flags;
    } else if (iequals(k, "ORCPT")) {
      if (seen_orcpt) return ParamError::duplicate;
      seen_orcpt = true;
      // RFC 3461 4.2: ORCPT=addr-type ";" xtext, addr-type an atom ("rfc822", "utf-8").
      const std::size_t semi = v.find(';');
      if (!has_v || semi == std::string_view::npos || semi == 0) return ParamError::bad_value;
      const std::string_view type = v.substr(0, semi);
      const std::string_view addr = v.substr(semi + 1);
      for (char c : type) {
        if (!is_atext(static_cast<unsigned char>(c))) return ParamError::bad_value;
      }
      const bool value_ok =
          iequals(type, "UTF-8") ? is_valid_utf8_addr_xtext(addr) : is_valid_xtext(addr);
      if (addr.empty() || addr.size() > kMaxOrcpt || !value_ok) return ParamError::bad_value;
      out.orcpt_type = type;
      out.orcpt_value = addr;
    } else {
      return ParamError::unknown;
    }
    return ParamError::none;
  });
}

}  // namespace ringmta::smtp
