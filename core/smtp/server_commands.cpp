// The server's command table: one row per verb with the check that decides whether the
// verb is allowed now (no side effects) and the step that carries it out. Replies are in
// server_replies.hpp. See server_session.hpp.
#include <array>

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
      {Verb::auth, after_helo, &ServerSession::do_auth},
  }};
};

void ServerSession::dispatch(const Command& cmd, std::size_t line_size) {
  if (cmd.verb == Verb::unknown) {
    count(Verb::unknown, false);
    reply(replies::kUnknownCommand);
    return;
  }
  const std::size_t limit =
      cmd.verb == Verb::mail || cmd.verb == Verb::rcpt ? kMaxParamCommandLine : kMaxCommandLine;
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
  if (!m.auth.empty()) return &replies::kUnknownParameter;  // AUTH is not offered (yet)
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

void ServerSession::do_auth(const Command&) {
  count(Verb::auth, false);
  reply(replies::kAuthNotEnabled);
}

}  // namespace ringmta::smtp
