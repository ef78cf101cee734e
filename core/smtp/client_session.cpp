// Client session state machine; see client_session.hpp.
#include "core/smtp/client_session.hpp"

#include "core/smtp/base64.hpp"

namespace ringmta::smtp {
namespace {

// A command succeeded only with a 2xx (a 3xx is an answer to DATA alone).
bool completed(const Reply& r) { return r.code / 100 == 2; }

// Output holds commands only (never the body); pipelined RCPTs that do not fit are written
// as the output drains (the send cursor).
constexpr std::size_t kOutCapacity = 16 * 1024;

constexpr Reply kTimeout{451, {4, 4, 2}, "timeout waiting for the server"};
constexpr Reply kProtocolError{451, {4, 5, 0}, "malformed reply from the server"};
constexpr Reply kTooBigForServer{552, {5, 3, 4}, "message exceeds the server's SIZE limit"};
constexpr Reply kNoSmtputf8{553, {5, 6, 7}, "server does not offer SMTPUTF8"};
constexpr Reply kConnectionClosed{451, {4, 4, 2}, "server closed the session"};
// A pipelined transaction's leading RSET refused: what follows cannot be trusted.
constexpr Reply kRsetRefused{451, {4, 5, 0}, "RSET refused by the server"};
// Room a further pipelined transaction needs in the output for its RSET and MAIL at once
// (RCPTs that do not fit follow as the output drains).
constexpr std::size_t kPipelineReserve = 2048;
// RFC 3207 4: 454 is "TLS not available"; these are the local equivalents.
constexpr Reply kTlsNotOffered{454, {4, 7, 0}, "TLS required but STARTTLS not offered"};
constexpr Reply kTlsRefused{454, {4, 7, 0}, "TLS required but STARTTLS refused"};
constexpr Reply kAuthNotOffered{454, {4, 7, 0}, "AUTH PLAIN/LOGIN not offered by the server"};
// RFC 4954 4: the longest AUTH line a client sends is 12 288 octets; ours are far shorter.
constexpr std::size_t kMaxAuthSecret = 1024;

Path make_path(std::string_view addr) {
  Path p;
  if (addr.empty()) {
    p.null = true;
    return p;
  }
  // The domain follows the last '@': a quoted local part may hold '@' itself.
  const std::size_t at = addr.rfind('@');
  if (at == std::string_view::npos) {
    p.postmaster = true;
    p.local_part = addr;
    return p;
  }
  p.local_part = addr.substr(0, at);
  p.domain = addr.substr(at + 1);
  return p;
}

}  // namespace

std::string_view client_state_name(ClientState s) {
  switch (s) {
    case ClientState::greeting: return "greeting";
    case ClientState::ehlo: return "ehlo";
    case ClientState::helo: return "helo";
    case ClientState::starttls: return "starttls";
    case ClientState::tls: return "tls";
    case ClientState::auth: return "auth";
    case ClientState::ready: return "ready";
    case ClientState::envelope: return "envelope";
    case ClientState::data_body: return "data_body";
    case ClientState::data_done: return "data_done";
    case ClientState::rset: return "rset";
    case ClientState::quit: return "quit";
    case ClientState::closed: return "closed";
  }
  return "?";
}

ClientSession::ClientSession(const ClientConfig& config, ClientHandler& handler)
    : config_(config),
      handler_(handler),
      out_(kOutCapacity),
      txns_(config.transactions_in_flight < 1 ? 1
            : config.transactions_in_flight > kMaxTransactionsInFlight
                ? kMaxTransactionsInFlight
                : config.transactions_in_flight) {}

void ClientSession::pop_head() {
  head_ = (head_ + 1) % txns_.size();
  --count_;
  if (count_ == 0) body_due_ = false;
}

void ClientSession::enter_state(ClientState s) { state_ = s; }

std::uint32_t ClientSession::timeout_ms() const {
  switch (state_) {
    case ClientState::greeting: return config_.greeting_timeout_ms;
    case ClientState::ehlo:
    case ClientState::helo: return config_.helo_timeout_ms;
    case ClientState::starttls:
    case ClientState::tls: return config_.starttls_timeout_ms;
    case ClientState::auth: return config_.auth_timeout_ms;
    case ClientState::envelope: {
      const Txn& t = head();
      if (t.rset_first && !t.rset_answered) return config_.rset_timeout_ms;
      if (t.recv_cursor == 0) return config_.mail_timeout_ms;
      if (t.recv_cursor <= t.rcpt_count()) return config_.rcpt_timeout_ms;
      return t.bdat ? config_.data_done_timeout_ms : config_.data_init_timeout_ms;
    }
    case ClientState::data_body: return config_.data_xfer_timeout_ms;
    case ClientState::data_done: return config_.data_done_timeout_ms;
    case ClientState::rset: return config_.rset_timeout_ms;
    case ClientState::quit: return config_.quit_timeout_ms;
    case ClientState::ready:
    case ClientState::closed: return 0;
  }
  return 0;
}

bool ClientSession::will_use_bdat() const { return config_.use_bdat && caps_.chunking; }

std::size_t ClientSession::feed(std::string_view in) {
  std::size_t pos = 0;
  while (pos < in.size() && state_ != ClientState::closed) {
    const ReplyParser::Step s = parser_.next(in.substr(pos));
    pos += s.consumed;
    if (s.error != ReplyError::none) {
      close(kProtocolError, "protocol error: malformed reply", Ending::protocol);
      break;
    }
    if (s.complete) on_reply(parser_.reply());
    if (state_ == ClientState::tls) {
      // CVE-2011-0411, client side: nothing behind the 220 is read as plaintext.
      parser_.reset();
      return in.size();
    }
  }
  return state_ == ClientState::closed ? in.size() : pos;
}

void ClientSession::close(const Reply& last, std::string_view why, Ending ending) {
  enter_state(ClientState::closed);
  body_due_ = false;
  // Every transaction in flight ends here, oldest first.
  while (count_ > 0) {
    TransactionResult& result = head().result;
    result.data = last.code != 0 ? last : kConnectionClosed;
    result.delivered = false;
    result.ending = ending;
    handler_.on_transaction_done(result);
    pop_head();
  }
  handler_.on_closed(last, why);
}

void ClientSession::on_connection_lost() {
  if (state_ == ClientState::closed) return;
  close(kConnectionClosed, "connection lost", Ending::closed);
}

void ClientSession::on_timeout() {
  if (state_ == ClientState::closed || state_ == ClientState::ready) return;
  close(kTimeout, "timeout", Ending::timeout);
}

void ClientSession::on_reply(const Reply& r) {
  // RFC 5321 3.8: 421 may answer anything; the server is closing.
  if (r.code == 421 && state_ != ClientState::quit) {
    close(r, "server closed the session (421)", Ending::closed);
    return;
  }
  switch (state_) {
    case ClientState::greeting: {
      handler_.on_greeting(r);
      if (r.code != 220) {
        // RFC 5321 3.1: after a 554 greeting the client should QUIT.
        out_.append("QUIT\r\n");
        close(r, "greeting refused");
        return;
      }
      Command ehlo;
      ehlo.verb = Verb::ehlo;
      ehlo.argument = config_.helo_name;
      encode_command(ehlo, out_);
      enter_state(ClientState::ehlo);
      return;
    }
    case ClientState::ehlo:
      if (r.code == 250) {
        caps_ = parse_ehlo_capabilities(r.text);
        handler_.on_ehlo(r);
        after_ehlo();
      } else if (r.permanent()) {
        // RFC 5321 3.2: a server that does not know EHLO gets HELO.
        Command helo;
        helo.verb = Verb::helo;
        helo.argument = config_.helo_name;
        encode_command(helo, out_);
        enter_state(ClientState::helo);
      } else {
        close(r, "EHLO refused");
      }
      return;
    case ClientState::helo:
      if (r.code == 250) {
        caps_ = Capabilities{};
        handler_.on_ehlo(r);
        after_ehlo();
      } else {
        close(r, "HELO refused");
      }
      return;
    case ClientState::starttls:
      if (r.code == 220) {
        enter_state(ClientState::tls);  // feed() drops whatever follows
        return;
      }
      if (config_.starttls == TlsPolicy::required) {
        out_.append("QUIT\r\n");
        close(r.code != 0 ? r : kTlsRefused, "STARTTLS refused");
        return;
      }
      tls_declined_ = true;  // opportunistic: on in plaintext, with what EHLO offered
      after_ehlo();
      return;
    case ClientState::auth:
      on_auth_reply(r);
      return;
    case ClientState::envelope:
      on_envelope_reply(r);
      return;
    case ClientState::data_done:
      // After the end of data the transaction is over whatever the reply (RFC 5321 4.1.1.4).
      finish_transaction(r, false);
      return;
    case ClientState::rset:
      if (completed(r)) enter_state(ClientState::ready);
      else close(r, "RSET refused");
      return;
    case ClientState::quit:
      close(r, "quit");
      return;
    case ClientState::ready:
    case ClientState::data_body:
    case ClientState::tls:
    case ClientState::closed:
      close(kProtocolError, "protocol error: unexpected reply", Ending::protocol);
      return;
  }
}

void ClientSession::after_ehlo() {
  if (!tls_active_ && config_.starttls != TlsPolicy::none) {
    if (caps_.starttls && !tls_declined_) {
      out_.append("STARTTLS\r\n");
      enter_state(ClientState::starttls);
      return;
    }
    if (config_.starttls == TlsPolicy::required) {
      out_.append("QUIT\r\n");
      close(tls_declined_ ? kTlsRefused : kTlsNotOffered,
            tls_declined_ ? "STARTTLS refused" : "STARTTLS not offered");
      return;
    }
  }
  if (!config_.auth_user.empty() && !authenticated_) {
    auth_step_ = 0;
    if (caps_.auth_plain) {
      // RFC 4616: authzid NUL authcid NUL passwd, as the initial response (RFC 4954 4).
      char plain[2 * kMaxAuthSecret + 2];
      const std::string_view user = std::string_view(config_.auth_user).substr(0, kMaxAuthSecret);
      const std::string_view pass =
          std::string_view(config_.auth_password).substr(0, kMaxAuthSecret);
      std::size_t n = 0;
      plain[n++] = '\0';
      n += user.copy(plain + n, user.size());
      plain[n++] = '\0';
      n += pass.copy(plain + n, pass.size());
      auth_login_ = false;
      write_auth_line("AUTH PLAIN ", std::string_view(plain, n));
      enter_state(ClientState::auth);
      return;
    }
    if (caps_.auth_login) {
      auth_login_ = true;
      out_.append("AUTH LOGIN\r\n");
      enter_state(ClientState::auth);
      return;
    }
    out_.append("QUIT\r\n");
    close(kAuthNotOffered, "AUTH not offered");
    return;
  }
  enter_state(ClientState::ready);
}

void ClientSession::write_auth_line(std::string_view prefix, std::string_view secret) {
  char line[base64_size(2 * kMaxAuthSecret + 2) + 16];
  const std::size_t n = base64_encode(secret, line);
  if (!prefix.empty()) out_.append(prefix);
  out_.append(std::string_view(line, n));
  out_.append("\r\n");
}

void ClientSession::on_auth_reply(const Reply& r) {
  if (auth_login_ && r.code == 334 && auth_step_ < 2) {
    // RFC 4954 4: 334 asks for the next step: the user name, then the password.
    const std::string& v = auth_step_ == 0 ? config_.auth_user : config_.auth_password;
    write_auth_line({}, std::string_view(v).substr(0, kMaxAuthSecret));
    ++auth_step_;
    return;
  }
  if (r.code == 235) {  // RFC 4954 6: authentication succeeded
    authenticated_ = true;
    enter_state(ClientState::ready);
    return;
  }
  if (r.code == 334) out_.append("*\r\n");  // a challenge we cannot answer: cancel
  else out_.append("QUIT\r\n");
  close(r, "AUTH refused");
}

void ClientSession::tls_started() {
  if (state_ != ClientState::tls) return;
  tls_active_ = true;
  caps_ = Capabilities{};  // RFC 3207 4.2: forget what the server said before TLS
  Command ehlo;
  ehlo.verb = Verb::ehlo;
  ehlo.argument = config_.helo_name;
  encode_command(ehlo, out_);
  enter_state(ClientState::ehlo);
}

const char* tls_policy_name(TlsPolicy p) {
  switch (p) {
    case TlsPolicy::none: return "none";
    case TlsPolicy::opportunistic: return "opportunistic";
    case TlsPolicy::required: return "required";
  }
  return "?";
}

bool ClientSession::can_pipeline_message() const {
  if (state_ != ClientState::envelope || count_ == 0 || count_ >= txns_.size() || !pipelining_ ||
      !will_use_bdat() || body_due_ || out_.free_space() < kPipelineReserve) {
    return false;
  }
  const Txn& t = tail();
  return t.bdat && t.body_was_sent && t.send_cursor > t.rcpt_count() + 1;
}

bool ClientSession::send_message(const Envelope& env, std::uint64_t body_octets) {
  const bool behind = can_pipeline_message();
  if ((state_ != ClientState::ready && !behind) || env.recipients.empty() ||
      env.recipients.size() > config_.max_recipients ||
      (!env.rcpt_params.empty() && env.rcpt_params.size() != env.recipients.size()) ||
      (behind && !env.allow_bdat)) {
    return false;
  }
  if (!behind) pipelining_ = config_.use_pipelining && caps_.pipelining;
  ++count_;
  Txn& t = tail();
  t.env = env;
  t.body_octets = body_octets;
  t.result = TransactionResult{};
  t.send_cursor = 0;
  t.recv_cursor = 0;
  t.bdat = will_use_bdat() && env.allow_bdat;
  t.body_was_sent = false;
  t.rset_first = behind;
  t.rset_answered = false;
  body_due_ = false;
  // Refuse locally what the server announced it would refuse.
  const Reply* local = nullptr;
  if (caps_.size && caps_.max_size != 0 && body_octets > caps_.max_size) local = &kTooBigForServer;
  if (env.mail.smtputf8 && !caps_.smtputf8) local = &kNoSmtputf8;
  if (local != nullptr) {
    t.result.ending = Ending::refused_local;
    t.result.data = *local;
    t.result.rejected = static_cast<std::uint32_t>(t.rcpt_count());
    --count_;  // never sent: the transactions before it go on
    handler_.on_transaction_done(t.result);
    return true;
  }
  if (behind) out_.append("RSET\r\n");  // room checked by can_pipeline_message
  enter_state(ClientState::envelope);
  send_next_envelope_command();
  return true;
}

bool ClientSession::write_envelope_command(std::size_t index) {
  const Txn& t = tail();
  Command c;
  const std::size_t n = t.rcpt_count();
  if (index == 0) {
    c.verb = Verb::mail;
    c.path = make_path(t.env.sender);
    // Only parameters of extensions the server offered (RFC 5321 4.1.1.11).
    c.mail.has_size = caps_.size;
    c.mail.size = t.body_octets;
    if (caps_.eight_bit_mime && t.env.mail.body != BodyType::binary_mime) c.mail.body = t.env.mail.body;
    if (caps_.binary_mime && t.bdat) c.mail.body = t.env.mail.body;
    c.mail.smtputf8 = t.env.mail.smtputf8;
    if (caps_.dsn) {
      c.mail.ret = t.env.mail.ret;
      c.mail.envid = t.env.mail.envid;
    }
  } else if (index <= n) {
    c.verb = Verb::rcpt;
    c.path = make_path(t.env.recipients[index - 1]);
    if (caps_.dsn && !t.env.rcpt_params.empty()) c.rcpt = t.env.rcpt_params[index - 1];
  } else if (t.bdat) {
    c.verb = Verb::bdat;
    c.chunk_size = t.body_octets;
    c.last = true;
  } else {
    c.verb = Verb::data;
  }
  return encode_command(c, out_);
}

void ClientSession::send_next_envelope_command() {
  Txn& t = tail();
  const std::size_t last = t.rcpt_count() + 1;
  // Pipelining: write ahead as far as the output has room. Lockstep: one command at a time
  // (and one transaction: head and tail are the same).
  while (t.send_cursor <= last && (pipelining_ || t.send_cursor == t.recv_cursor)) {
    if (!write_envelope_command(t.send_cursor)) break;  // full: more once output drains
    ++t.send_cursor;
    if (t.send_cursor > last && t.bdat) body_due_ = true;  // BDAT: the chunk follows at once
  }
}

void ClientSession::consume_output(std::size_t n) {
  out_.consume(n);
  if (state_ == ClientState::envelope && count_ > 0) send_next_envelope_command();
}

void ClientSession::on_envelope_reply(const Reply& r) {
  Txn& t = head();
  if (t.rset_first && !t.rset_answered) {
    t.rset_answered = true;
    if (!completed(r)) close(kRsetRefused, "RSET refused", Ending::protocol);
    return;
  }
  TransactionResult& result = t.result;
  const std::size_t n = t.rcpt_count();
  const std::size_t i = t.recv_cursor++;
  const bool mail_ok = completed(result.mail);
  if (i == 0) {
    result.mail = r;
    result.mail.text = std::string_view(t.mail_text, r.text.copy(t.mail_text, sizeof(t.mail_text)));
    if (!completed(r) && !pipelining_) {
      finish_transaction(r, false);
      return;
    }
  } else if (i <= n) {
    handler_.on_rcpt_reply(i - 1, r);
    if (completed(r)) ++result.accepted;
    else ++result.rejected;
    if (i == n && !pipelining_ && result.accepted == 0) {
      finish_transaction(r, mail_ok);  // nothing to send: RSET the open transaction
      return;
    }
  } else if (t.bdat) {
    // BDAT LAST's reply is final; a refused BDAT may leave the server's transaction open.
    finish_transaction(r, !completed(r) && mail_ok);
    return;
  } else if (r.code == 354) {
    if (result.accepted > 0 && mail_ok) {
      body_due_ = true;
      enter_state(ClientState::data_body);
    } else {
      // RFC 2920 3.1: DATA accepted although no recipient was: send an empty message.
      out_.append(".\r\n");
      enter_state(ClientState::data_done);
    }
    return;
  } else {
    finish_transaction(r, mail_ok);
    return;
  }
  if (!pipelining_) send_next_envelope_command();
}

void ClientSession::body_sent() {
  if (!body_due_ || state_ == ClientState::closed) return;
  body_due_ = false;
  Txn& t = tail();
  t.body_was_sent = true;
  if (t.bdat) return;  // still waiting for the replies up to BDAT LAST's
  // The body ends with CRLF, so the terminator is "." CRLF (RFC 5321 4.1.1.4).
  out_.append(".\r\n");
  enter_state(ClientState::data_done);
}

void ClientSession::finish_transaction(const Reply& data_reply, bool server_has_transaction) {
  TransactionResult& result = head().result;
  result.data = data_reply;
  // Delivered means: the server took MAIL, at least one RCPT, and the body that was really
  // sent, with a 2xx at its end. Anything else (a 250 where 354 was due, an empty message
  // after a refused MAIL) is not a delivery.
  result.delivered = head().body_was_sent && completed(result.mail) && result.accepted > 0 &&
                     completed(data_reply);
  handler_.on_transaction_done(result);
  pop_head();
  if (count_ > 0) return;  // the next one in flight begins with its own RSET
  if (server_has_transaction) {
    out_.append("RSET\r\n");
    enter_state(ClientState::rset);
  } else {
    enter_state(ClientState::ready);
  }
}

void ClientSession::quit() {
  if (state_ == ClientState::closed || state_ == ClientState::quit) return;
  out_.append("QUIT\r\n");
  enter_state(ClientState::quit);
}

}  // namespace ringmta::smtp
