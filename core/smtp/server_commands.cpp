// The server's command table: one row per verb with the check that decides whether the
// verb is allowed now (no side effects) and the step that carries it out. Replies are in
// server_replies.hpp. See server_session.hpp.
#include <openssl/crypto.h>

#include <array>
#include <cstring>

#include "core/smtp/ascii.hpp"
#include "core/smtp/base64.hpp"
#include "core/smtp/server_replies.hpp"
#include "core/smtp/server_session.hpp"

namespace ringmta::smtp {
namespace {


constexpr Reply kSyntaxHelo{501, {5, 5, 4}, "Syntax: HELO/EHLO domain-or-address-literal"};
constexpr Reply kSyntaxMail{501, {5, 5, 4}, "Syntax: MAIL FROM:<address> [parameters]"};
constexpr Reply kSyntaxRcpt{501, {5, 5, 4}, "Syntax: RCPT TO:<address> [parameters]"};
constexpr Reply kRcptAfterBdat{503, {5, 5, 1}, "Error: RCPT after BDAT in one transaction"};

const Reply& error_reply(const Command& c) {
  switch (c.error) {
    case CommandError::none:
    case CommandError::unknown_verb:
      return replies::kUnknownCommand;
    case CommandError::syntax:
      if (c.verb == Verb::helo || c.verb == Verb::ehlo) return kSyntaxHelo;
      if (c.verb == Verb::mail) return kSyntaxMail;
      if (c.verb == Verb::rcpt) return kSyntaxRcpt;
      return replies::kSyntax;
    case CommandError::bad_sender:
      return replies::kBadSender;
    case CommandError::bad_recipient:
      return replies::kBadRecipient;
    case CommandError::address_too_long:
      return replies::kPathTooLong;
    case CommandError::unknown_parameter:
      return replies::kUnknownParameter;
    case CommandError::bad_parameter:
      return replies::kBadParameter;
  }
  return replies::kSyntax;
}

}  // namespace

struct ServerCommandTable {
  using Check = const Reply* (*)(const ServerSession&);
  using Proceed = void (ServerSession::*)(const Command&);
  struct Row {
    Verb verb;
    Check check;  // nullptr: allowed; else the reply that refuses it now
    Proceed proceed;
  };

  static const Reply* any_time(const ServerSession&) { return nullptr; }
  static const Reply* after_helo(const ServerSession& s) {
    return s.state_ == SessionState::greeted ? &replies::kNeedHelo : nullptr;
  }
  static const Reply* mail_check(const ServerSession& s) {
    if (s.state_ == SessionState::greeted) return &replies::kNeedHelo;
    if (s.state_ != SessionState::ready) return &replies::kNestedMail;
    if (s.config_.require_tls && !s.tls_active_) return &replies::kNeedTls;  // RFC 3207 4
    return nullptr;
  }
  static const Reply* rcpt_check(const ServerSession& s) {
    if (s.state_ == SessionState::greeted) return &replies::kNeedHelo;
    if (s.state_ == SessionState::ready) return &replies::kNeedMail;
    if (s.bdat_used_) return &kRcptAfterBdat;
    return nullptr;
  }
  static const Reply* data_check(const ServerSession& s) {
    if (s.state_ == SessionState::greeted) return &replies::kNeedHelo;
    if (s.state_ == SessionState::ready) return &replies::kNeedMail;
    // RFC 3030 3: DATA after BDAT in one transaction is 503.
    if (s.bdat_used_) return &replies::kDataAfterBdat;
    // RFC 5321 3.3: no RCPT at all is 503; every RCPT refused is 554.
    if (s.state_ == SessionState::mail) {
      return s.rcpt_attempted_ ? &replies::kNoValidRecipients : &replies::kNeedRcpt;
    }
    return nullptr;
  }
  static const Reply* starttls_check(const ServerSession& s) {
    if (!s.config_.starttls) return &replies::kNotOffered;
    if (s.tls_active_) return &replies::kTlsActive;
    if (s.state_ == SessionState::greeted) return &replies::kNeedHelo;
    return nullptr;
  }
  static const Reply* auth_check(const ServerSession& s) {
    if (!s.config_.auth) return &replies::kAuthNotEnabled;
    if (s.state_ == SessionState::greeted) return &replies::kNeedHelo;
    if (!s.esmtp_) return &replies::kNotOffered;  // an extension: EHLO only
    // RFC 4954 4: after a successful AUTH, further AUTH commands get 503.
    if (s.authenticated_) return &replies::kAlreadyAuthenticated;
    if (s.state_ != SessionState::ready) return &replies::kAuthInTransaction;
    if (s.config_.auth_requires_tls && !s.tls_active_) return &replies::kAuthNeedTls;
    return nullptr;
  }

  // Indexed by Verb. BDAT checks its sequence itself: its chunk must be read either way.
  static constexpr std::array<Row, kVerbCount> kRows = {{
      {Verb::unknown, any_time, nullptr},
      {Verb::helo, any_time, &ServerSession::do_helo},
      {Verb::ehlo, any_time, &ServerSession::do_helo},
      {Verb::mail, mail_check, &ServerSession::do_mail},
      {Verb::rcpt, rcpt_check, &ServerSession::do_rcpt},
      {Verb::data, data_check, &ServerSession::do_data},
      {Verb::bdat, any_time, &ServerSession::do_bdat},
      {Verb::rset, any_time, &ServerSession::do_rset},
      {Verb::noop, any_time, &ServerSession::do_noop},
      {Verb::quit, any_time, &ServerSession::do_quit},
      {Verb::vrfy, any_time, &ServerSession::do_vrfy},
      {Verb::help, any_time, &ServerSession::do_help},
      {Verb::starttls, starttls_check, &ServerSession::do_starttls},
      {Verb::auth, auth_check, &ServerSession::do_auth},
  }};
};

void ServerSession::dispatch(const Command& cmd, std::size_t line_size) {
  if (cmd.verb == Verb::unknown) {
    count(Verb::unknown, false);
    reply(replies::kUnknownCommand);
    return;
  }
  // AUTH with an initial response gets the MAIL/RCPT allowance when AUTH is on: PLAIN with
  // 255-octet names and passwords (RFC 4616 2) is 684 octets of base64.
  const bool long_ok = cmd.verb == Verb::mail || cmd.verb == Verb::rcpt ||
                       (cmd.verb == Verb::auth && config_.auth);
  const std::size_t limit = long_ok ? kMaxParamCommandLine : kMaxCommandLine;
  if (line_size > limit) {
    count(cmd.verb, false);
    reply(replies::kLineTooLong);
    return;
  }
  if (state_ == SessionState::rejected && cmd.verb != Verb::quit) {
    count(cmd.verb, false);
    reply(replies::kNoService);
    return;
  }
  const auto& row = ServerCommandTable::kRows[static_cast<std::size_t>(cmd.verb)];
  if (const Reply* refused = row.check(*this)) {
    count(cmd.verb, false);
    reply(*refused);
    return;
  }
  deferred_verb_ = cmd.verb;
  (this->*row.proceed)(cmd);
}

void ServerSession::do_helo(const Command& cmd) {
  if (!cmd.ok()) {
    count(cmd.verb, false);
    reply(error_reply(cmd));
    return;
  }
  // RFC 5321 4.1.4: HELO/EHLO in a transaction ends it, as RSET does.
  abort_transaction();
  if (state_ != SessionState::greeted) enter_state(SessionState::ready);
  apply(Pending::helo, handler_.on_helo(cmd));
}

void ServerSession::reply_ehlo() {
  char size_line[32] = "SIZE";
  std::size_t size_len = 4;
  if (config_.max_message_size != 0) {
    size_line[size_len++] = ' ';
    size_len += buf::format_decimal(config_.max_message_size, size_line + size_len);
  }
  std::array<std::string_view, 10> caps{};
  std::size_t n = 0;
  if (config_.pipelining) caps[n++] = "PIPELINING";
  if (config_.size) caps[n++] = std::string_view(size_line, size_len);
  if (config_.eight_bit_mime) caps[n++] = "8BITMIME";
  if (config_.smtputf8) caps[n++] = "SMTPUTF8";
  if (config_.enhanced_status_codes) caps[n++] = "ENHANCEDSTATUSCODES";
  if (config_.chunking) caps[n++] = "CHUNKING";
  if (config_.dsn) caps[n++] = "DSN";
  // RFC 3207 4.2: STARTTLS is not offered again once TLS is up.
  if (config_.starttls && !tls_active_) caps[n++] = "STARTTLS";
  if (auth_offered()) caps[n++] = "AUTH PLAIN LOGIN";
  const std::string_view host = std::string_view(config_.hostname).substr(0, 200);
  if (n == 0) {
    write_reply(out_, Reply{250, {}, host}, false);
    return;
  }
  write_reply_continuation(out_, 250, host);
  for (std::size_t i = 0; i + 1 < n; ++i) write_reply_continuation(out_, 250, caps[i]);
  write_reply(out_, Reply{250, {}, caps[n - 1]}, false);
}

const Reply* ServerSession::check_mail_params(const Command& cmd) const {
  const MailParams& m = cmd.mail;
  const bool any = m.has_size || m.body != BodyType::unspecified || m.smtputf8 ||
                   m.ret != DsnRet::unspecified || !m.envid.empty() || !m.auth.empty();
  // Parameters exist only for extensions offered in an EHLO reply (RFC 5321 4.1.1.11).
  if (any && !esmtp_) return &replies::kUnknownParameter;
  if (m.has_size && !config_.size) return &replies::kUnknownParameter;
  if (m.body != BodyType::unspecified && !config_.eight_bit_mime) {
    return &replies::kUnknownParameter;
  }
  if (m.body == BodyType::binary_mime) return &replies::kBodyNotSupported;
  if (m.smtputf8 && !config_.smtputf8) return &replies::kUnknownParameter;
  if ((m.ret != DsnRet::unspecified || !m.envid.empty()) && !config_.dsn) {
    return &replies::kUnknownParameter;
  }
  // RFC 4954 5: AUTH= is accepted where AUTH is offered, and ignored: ringmta trusts no
  // identity a client asserts for a message (as if AUTH=<> were given).
  if (!m.auth.empty() && !auth_offered()) return &replies::kUnknownParameter;
  // RFC 6531 3.7.4: a UTF-8 address needs SMTPUTF8 on this MAIL.
  if (cmd.path.non_ascii && !m.smtputf8) return &replies::kNeedSmtputf8;
  // RFC 1870 6.2: a declared size over the limit is refused at MAIL.
  if (m.has_size && config_.max_message_size != 0 && m.size > config_.max_message_size) {
    return &replies::kSizeDeclaredTooBig;
  }
  return nullptr;
}

void ServerSession::do_mail(const Command& cmd) {
  const Reply* refused = cmd.ok() ? check_mail_params(cmd) : &error_reply(cmd);
  if (refused != nullptr) {
    count(Verb::mail, false);
    reply(*refused);
    return;
  }
  declared_size_ = cmd.mail.has_size ? cmd.mail.size : 0;
  smtputf8_ = cmd.mail.smtputf8;
  apply(Pending::mail, handler_.on_mail(cmd));
}

void ServerSession::do_rcpt(const Command& cmd) {
  rcpt_attempted_ = true;
  const Reply* refused = nullptr;
  if (!cmd.ok()) {
    refused = &error_reply(cmd);
  } else if ((cmd.rcpt.notify != 0 || !cmd.rcpt.orcpt_type.empty()) &&
             (!config_.dsn || !esmtp_)) {
    refused = &replies::kUnknownParameter;
  } else if (cmd.path.non_ascii && !smtputf8_) {
    refused = &replies::kNeedSmtputf8;
  } else if (recipients_ >= config_.max_recipients) {
    refused = &replies::kTooManyRecipients;  // RFC 5321 4.5.3.1.10
  }
  if (refused != nullptr) {
    count(Verb::rcpt, false);
    reply(*refused);
    return;
  }
  apply(Pending::rcpt, handler_.on_rcpt(cmd));
}

void ServerSession::do_data(const Command& cmd) {
  if (!cmd.ok()) {
    count(Verb::data, false);
    reply(error_reply(cmd));
    return;
  }
  msg_error_ = nullptr;
  apply(Pending::data_start, handler_.on_data_start(BodyFormat::dot_stuffed));
}

void ServerSession::do_bdat(const Command& cmd) {
  if (!cmd.ok()) {
    // Without a readable size the chunk's end is unknown: the session cannot stay in step.
    count(Verb::bdat, false);
    reply(replies::kBdatSyntax);
    abort_transaction();
    enter_state(SessionState::closed);
    return;
  }
  bdat_remaining_ = cmd.chunk_size;
  bdat_chunk_size_ = cmd.chunk_size;
  bdat_last_ = cmd.last;
  const Reply* refused = nullptr;
  if (!config_.chunking || !esmtp_) refused = &replies::kNotOffered;
  else if (state_ == SessionState::greeted) refused = &replies::kNeedHelo;
  else if (state_ == SessionState::ready) refused = &replies::kNeedMail;
  else if (state_ == SessionState::mail) {
    refused = rcpt_attempted_ ? &replies::kNoValidRecipients : &replies::kNeedRcpt;
  }
  if (refused != nullptr) {
    // RFC 3030 2: the chunk is read and dropped, then answered.
    bdat_discard_ = true;
    bdat_error_ = refused;
    bdat_return_state_ = state_;
    enter_state(SessionState::bdat);
    if (bdat_remaining_ == 0) finish_bdat_chunk();
    return;
  }
  bdat_return_state_ = state_;
  const std::uint64_t so_far = bdat_used_ ? scanner_.wire_octets() : 0;
  if (config_.max_message_size != 0 && msg_error_ == nullptr &&
      so_far + cmd.chunk_size > config_.max_message_size) {
    msg_error_ = &replies::kTooBig;  // read, dropped, answered at the end of this chunk
  }
  if (!bdat_used_) {
    bdat_used_ = true;
    scanner_.begin_chunked();
    apply(Pending::data_start, handler_.on_data_start(BodyFormat::raw));
    return;
  }
  bdat_discard_ = false;
  enter_state(SessionState::bdat);
  if (bdat_remaining_ == 0) finish_bdat_chunk();
}

void ServerSession::do_rset(const Command& cmd) {
  if (!cmd.ok()) {
    count(Verb::rset, false);
    reply(error_reply(cmd));
    return;
  }
  abort_transaction();
  if (state_ != SessionState::greeted && state_ != SessionState::rejected) {
    enter_state(SessionState::ready);
  }
  count(Verb::rset, true);
  reply(replies::kOk);
}

void ServerSession::do_noop(const Command& cmd) {
  count(Verb::noop, cmd.ok());
  reply(cmd.ok() ? replies::kOk : error_reply(cmd));
}

void ServerSession::do_quit(const Command& cmd) {
  // RFC 5321 4.1.1.10: QUIT takes no argument, but the client wants out either way.
  count(Verb::quit, cmd.ok());
  reply(replies::kBye);
  abort_transaction();
  enter_state(SessionState::closed);
}

void ServerSession::do_vrfy(const Command& cmd) {
  // RFC 5321 3.5.3: 252 when the server will not verify but would accept mail.
  count(Verb::vrfy, cmd.ok());
  reply(cmd.ok() ? replies::kCannotVrfy : error_reply(cmd));
}

void ServerSession::do_help(const Command& cmd) {
  count(Verb::help, cmd.ok());
  reply(cmd.ok() ? replies::kHelp : error_reply(cmd));
}

void ServerSession::do_starttls(const Command& cmd) {
  if (!cmd.ok()) {
    count(Verb::starttls, false);
    reply(error_reply(cmd));
    return;
  }
  count(Verb::starttls, true);
  reply(replies::kReadyTls);
  abort_transaction();
  framer_.reset();
  enter_state(SessionState::tls_pending);
}

std::string_view mechanism_name(AuthMechanism m) {
  return m == AuthMechanism::plain ? "PLAIN" : "LOGIN";
}

bool ServerSession::auth_offered() const {
  return config_.auth && (tls_active_ || !config_.auth_requires_tls);
}

// RFC 4954 4: AUTH mechanism [initial-response]; the exchange goes on in state auth with one
// 334 challenge per step (auth_response) and ends in auth_end().
void ServerSession::do_auth(const Command& cmd) {
  const bool plain = iequals(cmd.argument, "PLAIN");
  const bool login = iequals(cmd.argument, "LOGIN");
  if (!cmd.ok()) {
    // A known mechanism with an initial response that is not base64 (or "=").
    const bool bad_base64 = (plain || login) && !cmd.auth_initial.empty();
    count(Verb::auth, false);
    reply(bad_base64 ? replies::kAuthBadBase64 : replies::kSyntax);
    wipe_auth_buffers();
    return;
  }
  if (!plain && !login) {
    count(Verb::auth, false);
    reply(replies::kAuthUnknownMechanism);
    return;
  }
  enter_state(SessionState::auth);
  if (cmd.auth_initial.empty()) {
    auth_step_ = plain ? AuthStep::plain : AuthStep::login_user;
    write_reply(out_, plain ? replies::kAuthChallengeEmpty : replies::kAuthChallengeUser, false);
    return;
  }
  // RFC 4954 4: "=" is an empty initial response.
  const std::string_view initial = cmd.auth_initial == "=" ? std::string_view{} : cmd.auth_initial;
  auth_step_ = plain ? AuthStep::plain : AuthStep::login_user;
  auth_decoded(initial);
}

void ServerSession::auth_response(const FramedLine& line) {
  switch (line.flaw) {
    case LineFlaw::none:
      break;
    case LineFlaw::too_long:
      auth_end(replies::kAuthLineTooLong, false);
      return;
    case LineFlaw::bare_lf:
    case LineFlaw::bare_cr:
      auth_end(replies::kBareNewline, false);
      return;
  }
  // RFC 4954 4: "*" cancels the exchange.
  if (line.text == "*") {
    auth_end(replies::kAuthCancelled, false);
    return;
  }
  auth_decoded(line.text);
}

void ServerSession::auth_decoded(std::string_view base64) {
  // The framer's line buffer size bounds the input: decoded_ always has room.
  const long n = base64.size() / 4 * 3 <= decoded_.size() ? base64_decode(base64, decoded_.data())
                                                            : -1;
  if (n < 0) {
    auth_end(base64.size() / 4 * 3 <= decoded_.size() ? replies::kAuthBadBase64
                                                       : replies::kAuthLineTooLong,
             false);
    return;
  }
  const std::string_view decoded(decoded_.data(), static_cast<std::size_t>(n));
  switch (auth_step_) {
    case AuthStep::none:
      return;
    case AuthStep::plain:
      auth_plain(decoded);
      return;
    case AuthStep::login_user:
      // Kept for the second step; a name too long to keep fails at the end.
      user_len_ = decoded.size() <= user_.size() ? decoded.copy(user_.data(), user_.size())
                                                 : user_.size() + 1;
      OPENSSL_cleanse(decoded_.data(), decoded_.size());
      framer_.wipe();
      auth_step_ = AuthStep::login_password;
      write_reply(out_, replies::kAuthChallengePassword, false);
      return;
    case AuthStep::login_password: {
      const std::string_view user =
          user_len_ <= user_.size() ? std::string_view(user_.data(), user_len_) : std::string_view{};
      auth_check(AuthMechanism::login, user, decoded);
      return;
    }
  }
}

void ServerSession::auth_plain(std::string_view message) {
  // RFC 4616 2: [authzid] NUL authcid NUL passwd.
  const std::size_t nul1 = message.find('\0');
  const std::size_t nul2 = nul1 == std::string_view::npos ? nul1 : message.find('\0', nul1 + 1);
  if (nul2 == std::string_view::npos) {
    auth_check(AuthMechanism::plain, {}, {});
    return;
  }
  const std::string_view authzid = message.substr(0, nul1);
  const std::string_view user = message.substr(nul1 + 1, nul2 - nul1 - 1);
  const std::string_view password = message.substr(nul2 + 1);
  // No proxy authorisation: an authzid, when given, must name the user itself.
  if (!authzid.empty() && authzid != user) {
    auth_check(AuthMechanism::plain, {}, {});
    return;
  }
  auth_check(AuthMechanism::plain, user, password);
}

void ServerSession::auth_check(AuthMechanism m, std::string_view user, std::string_view password) {
  // RFC 4616 2: 1-255 octets each, no NUL (PLAIN cannot carry one; LOGIN could).
  const auto valid = [](std::string_view f) {
    return !f.empty() && f.size() <= kMaxAuthField && f.find('\0') == std::string_view::npos;
  };
  AuthVerdict verdict = AuthVerdict::reject;
  if (valid(user) && valid(password)) verdict = handler_.on_auth({m, user, password});
  switch (verdict) {
    case AuthVerdict::accept:
      // user is a view of decoded_ (PLAIN) or of user_ (LOGIN): copied before the wipe.
      std::memmove(user_.data(), user.data(), user.size());
      user_len_ = user.size();
      authenticated_ = true;
      auth_end(replies::kAuthOk, true);
      return;
    case AuthVerdict::reject:
      ++auth_failures_;
      auth_end(config_.max_auth_failures != 0 && auth_failures_ >= config_.max_auth_failures
                   ? replies::kAuthTooMany
                   : replies::kAuthFailed,
               false);
      return;
    case AuthVerdict::temporary_failure:
      auth_end(replies::kAuthTempFail, false);
      return;
    case AuthVerdict::too_many_failures:
      auth_end(replies::kAuthTooMany, false);
      return;
  }
}

void ServerSession::auth_end(const Reply& r, bool ok) {
  auth_step_ = AuthStep::none;
  wipe_auth_buffers();
  count(Verb::auth, ok);
  if (state_ == SessionState::auth) enter_state(SessionState::ready);
  reply(r);  // a 421 closes
}

void ServerSession::wipe_auth_buffers() {
  OPENSSL_cleanse(decoded_.data(), decoded_.size());
  framer_.wipe();
  if (!authenticated_ && auth_step_ == AuthStep::none) {
    OPENSSL_cleanse(user_.data(), user_.size());
    user_len_ = 0;
  }
}

}  // namespace ringmta::smtp
