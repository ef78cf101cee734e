// ESMTP parameters of MAIL and RCPT (RFC 5321 4.1.2 esmtp-param): SIZE (RFC 1870),
// BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET/ENVID/NOTIFY/ORCPT (RFC 3461) and
// AUTH (RFC 4954). Values are views into the command line.
#pragma once

#include <cstdint>
#include <string_view>

namespace ringmta::smtp {

enum class BodyType : std::uint8_t { unspecified, seven_bit, eight_bit_mime, binary_mime };
enum class DsnRet : std::uint8_t { unspecified, full, hdrs };

// RFC 3461 4.1: NOTIFY=NEVER or any of SUCCESS, FAILURE, DELAY.
enum NotifyFlag : std::uint8_t {
  kNotifyNever = 1,
  kNotifySuccess = 2,
  kNotifyFailure = 4,
  kNotifyDelay = 8,
};

struct MailParams {
  bool has_size = false;
  std::uint64_t size = 0;
  BodyType body = BodyType::unspecified;
  bool smtputf8 = false;
  DsnRet ret = DsnRet::unspecified;
  std::string_view envid{};  // xtext, as received
  std::string_view auth{};   // xtext mailbox or "<>", as received
  friend bool operator==(const MailParams&, const MailParams&) = default;
};

struct RcptParams {
  std::uint8_t notify = 0;         // NotifyFlag bits; 0 = not given
  std::string_view orcpt_type{};   // e.g. "rfc822", "utf-8"
  std::string_view orcpt_value{};  // xtext (or utf-8-addr-xtext), as received
  friend bool operator==(const RcptParams&, const RcptParams&) = default;
};

enum class ParamError : std::uint8_t {
  none,
  syntax,     // not keyword[=value] separated by single spaces
  unknown,    // keyword not known for this command (555, RFC 5321 4.1.1.11)
  bad_value,  // known keyword, bad value (501)
  duplicate,  // the same keyword twice (501)
};

struct ParamParse {
  ParamError error = ParamError::none;
  std::string_view keyword{};  // the offending keyword, when there is an error
};

// s is everything after the path: empty, or " param *(SP param)".
ParamParse parse_mail_params(std::string_view s, MailParams& out);
ParamParse parse_rcpt_params(std::string_view s, RcptParams& out);

// RFC 3461 4: xtext = *( xchar / hexchar ), xchar = %d33-126 except '+' and '=',
// hexchar = "+" 2(HEXDIG upper case).
bool is_valid_xtext(std::string_view s);
// RFC 6533 3: utf-8-addr-xtext = 1*(QUCHAR / EmbeddedUnicodeChar): UTF-8 without controls,
// SP, '+', '=' or a '\\' that does not start "\\x{HEXPOINT}".
bool is_valid_utf8_addr_xtext(std::string_view s);

}  // namespace ringmta::smtp
