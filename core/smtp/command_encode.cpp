// Canonical encoding of commands (the client side writes commands with it, the fuzzer checks
// that it round-trips through parse_command); see command.hpp.
#include "core/smtp/command.hpp"

namespace ringmta::smtp {
namespace {

bool encode_path(const Path& p, buf::OutBuffer& out) {
  if (p.null) return out.append("<>");
  bool ok = out.append('<') && out.append(p.local_part);
  if (!p.postmaster) ok = ok && out.append('@') && out.append(p.domain);
  return ok && out.append('>');
}

bool encode_mail_params(const MailParams& m, buf::OutBuffer& out) {
  bool ok = true;
  if (m.has_size) ok = ok && out.append(" SIZE=") && out.append_uint(m.size);
  switch (m.body) {
    case BodyType::unspecified:
      break;
    case BodyType::seven_bit:
      ok = ok && out.append(" BODY=7BIT");
      break;
    case BodyType::eight_bit_mime:
      ok = ok && out.append(" BODY=8BITMIME");
      break;
    case BodyType::binary_mime:
      ok = ok && out.append(" BODY=BINARYMIME");
      break;
  }
  if (m.smtputf8) ok = ok && out.append(" SMTPUTF8");
  if (m.ret == DsnRet::full) ok = ok && out.append(" RET=FULL");
  if (m.ret == DsnRet::hdrs) ok = ok && out.append(" RET=HDRS");
  if (!m.envid.empty()) ok = ok && out.append(" ENVID=") && out.append(m.envid);
  if (!m.auth.empty()) ok = ok && out.append(" AUTH=") && out.append(m.auth);
  return ok;
}

bool encode_rcpt_params(const RcptParams& r, buf::OutBuffer& out) {
  bool ok = true;
  if (r.notify == kNotifyNever) {
    ok = out.append(" NOTIFY=NEVER");
  } else if (r.notify != 0) {
    ok = out.append(" NOTIFY=");
    const char* sep = "";
    const std::pair<std::uint8_t, std::string_view> names[] = {
        {kNotifySuccess, "SUCCESS"}, {kNotifyFailure, "FAILURE"}, {kNotifyDelay, "DELAY"}};
    for (const auto& [flag, name] : names) {
      if ((r.notify & flag) == 0) continue;
      ok = ok && out.append(sep) && out.append(name);
      sep = ",";
    }
  }
  if (!r.orcpt_type.empty()) {
    ok = ok && out.append(" ORCPT=") && out.append(r.orcpt_type) && out.append(';') &&
         out.append(r.orcpt_value);
  }
  return ok;
}

bool encode_body(const Command& c, buf::OutBuffer& out) {
  bool ok = out.append(verb_name(c.verb));
  switch (c.verb) {
    case Verb::helo:
    case Verb::ehlo:
    case Verb::vrfy:
      return ok && out.append(' ') && out.append(c.argument);
    case Verb::noop:
    case Verb::help:
      if (!c.argument.empty()) ok = ok && out.append(' ') && out.append(c.argument);
      return ok;
    case Verb::mail:
      return ok && out.append(" FROM:") && encode_path(c.path, out) &&
             encode_mail_params(c.mail, out);
    case Verb::rcpt:
      return ok && out.append(" TO:") && encode_path(c.path, out) &&
             encode_rcpt_params(c.rcpt, out);
    case Verb::bdat:
      ok = ok && out.append(' ') && out.append_uint(c.chunk_size);
      return c.last ? ok && out.append(" LAST") : ok;
    case Verb::auth:
      ok = ok && out.append(' ') && out.append(c.argument);
      if (!c.auth_initial.empty()) ok = ok && out.append(' ') && out.append(c.auth_initial);
      return ok;
    case Verb::data:
    case Verb::rset:
    case Verb::quit:
    case Verb::starttls:
    case Verb::unknown:
      return ok;
  }
  return ok;
}

}  // namespace

bool encode_command(const Command& c, buf::OutBuffer& out) {
  if (c.verb == Verb::unknown) return false;
  const std::size_t before = out.size();
  if (encode_body(c, out) && out.append("\r\n")) return true;
  out.truncate(before);
  return false;
}

}  // namespace ringmta::smtp
