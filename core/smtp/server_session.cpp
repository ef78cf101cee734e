// The server session's input loop, decisions and message end; the per-command steps are in
// server_commands.cpp. See server_session.hpp.
#include "core/smtp/server_session.hpp"

#include <algorithm>

#include "core/smtp/ascii.hpp"
#include "core/smtp/server_replies.hpp"

namespace ringmta::smtp {
namespace {

constexpr std::size_t kMinOutput = 2 * ServerSession::kReplyReserve;

}  // namespace

std::string_view state_name(SessionState s) {
  switch (s) {
    case SessionState::rejected: return "rejected";
    case SessionState::greeted: return "greeted";
    case SessionState::ready: return "ready";
    case SessionState::mail: return "mail";
    case SessionState::rcpt: return "rcpt";
    case SessionState::data: return "data";
    case SessionState::bdat: return "bdat";
    case SessionState::tls_pending: return "tls_pending";
    case SessionState::auth: return "auth";
    case SessionState::closed: return "closed";
  }
  return "?";
}

ServerSession::ServerSession(const ServerConfig& config, ServerHandler& handler)
    : config_(config),
      handler_(handler),
      out_(std::max<std::size_t>(config.output_buffer_bytes, kMinOutput)),
      framer_(kMaxParamCommandLine) {}

void ServerSession::start() {
  // "220 <hostname> <greeting>": composed in place, the config owns both strings.
  out_.append("220 ");
  out_.append(config_.hostname.substr(0, 200));
  out_.append(' ');
  out_.append(config_.greeting.substr(0, 200));
  out_.append("\r\n");
  enter_state(SessionState::greeted);
}

void ServerSession::start(const Reply& banner) {
  // A 220 greeting carries no enhanced code (RFC 2034 3); a refusal in its place (421, 554)
  // does, as every other refusal.
  write_reply(out_, banner, config_.enhanced_status_codes && banner.code != 220);
  if (banner.code == 554) enter_state(SessionState::rejected);
  else if (banner.code == 421 || !banner.positive()) enter_state(SessionState::closed);
  else enter_state(SessionState::greeted);
}

void ServerSession::enter_state(SessionState next) {
  if (next == state_) return;
  const SessionState from = state_;
  state_ = next;
  handler_.on_state_change(from, next);
}

void ServerSession::reply(const Reply& r) {
  write_reply(out_, r, config_.enhanced_status_codes);
  if (r.closes()) {
    abort_transaction();
    enter_state(SessionState::closed);
  }
}

void ServerSession::count(Verb v, bool ok) {
  Counter& c = counters_[static_cast<std::size_t>(v)];
  ++c.total;
  if (ok) ++c.ok;
}

std::uint32_t ServerSession::timeout_ms() const {
  switch (state_) {
    case SessionState::data:
    case SessionState::bdat:
      return config_.data_timeout_ms;
    default:
      return config_.command_timeout_ms;
  }
}

std::size_t ServerSession::feed(std::string_view in) {
  std::size_t pos = 0;
  while (pos < in.size() && deferred_ == Pending::none) {
    if (state_ == SessionState::closed) return in.size();  // nothing is read after QUIT/421
    // CVE-2011-0411: plaintext that followed STARTTLS is dropped, never run after the
    // handshake.
    if (state_ == SessionState::tls_pending) return in.size();
    if (out_.free_space() < kReplyReserve) break;  // the client is not reading replies
    if (state_ == SessionState::data) {
      pos += feed_data(in.substr(pos));
      continue;
    }
    if (state_ == SessionState::bdat) {
      pos += feed_bdat(in.substr(pos));
      continue;
    }
    const FrameStep f = framer_.next(in.substr(pos));
    pos += f.consumed;
    if (f.has_line) handle_line(f.line);
  }
  return pos;
}

void ServerSession::handle_line(const FramedLine& line) {
  if (state_ == SessionState::auth) {
    auth_response(line);  // a SASL response, not a command
    return;
  }
  const Verb verb = handle_command_line(line);
  // An AUTH line's initial response may hold a password; the framer may have copied it.
  if (verb == Verb::auth) framer_.wipe();
}

Verb ServerSession::handle_command_line(const FramedLine& line) {
  switch (line.flaw) {
    case LineFlaw::none:
      break;
    case LineFlaw::too_long:
    case LineFlaw::bare_lf:
    case LineFlaw::bare_cr: {
      const Verb verb = peek_verb(line.text);
      count(verb, false);
      reply(line.flaw == LineFlaw::too_long ? replies::kLineTooLong : replies::kBareNewline);
      return verb;
    }
  }
  const Command cmd = parse_command(line.text);
  dispatch(cmd, line.text.size() + 2);
  return cmd.verb;
}

void ServerSession::apply(Pending what, const Decision& d) {
  switch (d.kind) {
    case Decision::Kind::accept:
      finish_pending(what, Reply{});
      return;
    case Decision::Kind::reply:
      finish_pending(what, d.reply);
      return;
    case Decision::Kind::defer:
      deferred_ = what;
      return;
  }
}

void ServerSession::resume(const Reply& r) {
  const Pending what = deferred_;
  if (what == Pending::none) return;
  deferred_ = Pending::none;
  finish_pending(what, r);
}

void ServerSession::finish_pending(Pending what, const Reply& r) {
  // r.code == 0 means "accepted with the default reply".
  const bool accepted = r.code == 0 || r.positive();
  const Verb verb = deferred_verb_;
  switch (what) {
    case Pending::none:
      return;
    case Pending::helo:
      if (accepted) {
        esmtp_ = verb == Verb::ehlo;
        enter_state(SessionState::ready);
        count(verb, true);
        if (verb == Verb::ehlo) {
          reply_ehlo();
        } else {
          write_reply(out_, Reply{250, {}, config_.hostname}, false);
        }
        return;
      }
      break;
    case Pending::mail:
      if (accepted) {
        txn_active_ = true;
        enter_state(SessionState::mail);
      } else {
        reset_transaction();
      }
      break;
    case Pending::rcpt:
      if (accepted) {
        ++recipients_;
        enter_state(SessionState::rcpt);
      }
      break;
    case Pending::data_start:
      if (!accepted) {
        if (verb == Verb::bdat) {
          // RFC 3030 2: the chunk still has to be read; it is answered with r once read.
          bdat_discard_ = true;
          bdat_error_ = nullptr;  // answered with stored_reply_, and the transaction ends
          stored_reply_ = r;
          stored_reply_.text = std::string_view(stored_text_, r.text.copy(stored_text_,
                                                                          sizeof(stored_text_)));
          enter_state(SessionState::bdat);
          if (bdat_remaining_ == 0) finish_bdat_chunk();
          return;
        }
        break;
      }
      if (verb == Verb::data) {
        reply(replies::kStartData);
        scanner_.begin_data();
        enter_state(SessionState::data);
      } else {
        bdat_discard_ = false;
        enter_state(SessionState::bdat);
        if (bdat_remaining_ == 0) finish_bdat_chunk();
      }
      return;
    case Pending::message:
      if (!accepted) {
        fail_message(verb, r);
        return;
      }
      count(verb, true);
      reset_transaction();
      enter_state(SessionState::ready);
      reply(r.code == 0 ? replies::kMessageAccepted : r);
      return;
  }
  count(verb, accepted);
  if (r.code != 0) reply(r);
  else reply(what == Pending::mail ? replies::kSenderOk : replies::kRecipientOk);
}

const Reply* ServerSession::message_fault() const {
  const std::uint8_t flaws = scanner_.flaws();
  // A bare CR/LF outranks every other fault: it is the smuggling signature.
  if ((flaws & (kFlawBareCr | kFlawBareLf)) != 0) return &replies::kBareNewlineInData;
  if (msg_error_ != nullptr) return msg_error_;
  if ((flaws & kFlawLongLine) != 0) return &replies::kLongTextLine;
  return nullptr;
}

void ServerSession::fail_message(Verb verb, const Reply& r) {
  count(verb, false);
  abort_transaction();
  if (state_ != SessionState::closed) enter_state(SessionState::ready);
  reply(r);
}

void ServerSession::end_message() {
  const Verb verb = bdat_used_ ? Verb::bdat : Verb::data;
  if (const Reply* fault = message_fault()) {
    fail_message(verb, *fault);
    return;
  }
  MessageInfo info;
  info.format = bdat_used_ ? BodyFormat::raw : BodyFormat::dot_stuffed;
  info.wire_octets = scanner_.wire_octets();
  info.message_octets = scanner_.message_octets();
  info.dot_lines = scanner_.dot_lines();
  info.has_8bit = scanner_.has_8bit();
  info.recipients = recipients_;
  deferred_verb_ = verb;
  apply(Pending::message, handler_.on_message(info));
}

std::size_t ServerSession::feed_data(std::string_view in) {
  const BodyScanner::DataStep st = scanner_.scan_data(in);
  if (msg_error_ == nullptr && config_.max_message_size != 0 &&
      scanner_.message_octets() > config_.max_message_size) {
    msg_error_ = &replies::kTooBig;  // the rest is read and dropped; answered at the dot
  }
  if (msg_error_ == nullptr) {
    if (!st.released.empty()) handler_.on_body(st.released);
    if (!st.body.empty()) handler_.on_body(st.body);
  }
  if (st.done) end_message();
  return st.consumed;
}

std::size_t ServerSession::feed_bdat(std::string_view in) {
  const std::size_t n =
      static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), bdat_remaining_));
  const std::string_view chunk = in.substr(0, n);
  if (!bdat_discard_) {
    scanner_.scan_chunk(chunk);
    if (msg_error_ == nullptr) handler_.on_body(chunk);
  }
  bdat_remaining_ -= n;
  if (bdat_remaining_ == 0) finish_bdat_chunk();
  return n;
}

void ServerSession::finish_bdat_chunk() {
  if (bdat_discard_) {
    bdat_discard_ = false;
    if (bdat_error_ == nullptr) {
      // The handler refused the first chunk: RFC 3030 3, the transaction has failed, and
      // chunks pipelined behind it meet "need MAIL".
      fail_message(Verb::bdat, stored_reply_);
      return;
    }
    // A chunk read only to stay in step (RFC 3030 2): answer it, nothing else changes.
    count(Verb::bdat, false);
    enter_state(bdat_return_state_);
    reply(*bdat_error_);
    return;
  }
  if (bdat_last_) scanner_.end_chunked();
  if (const Reply* fault = message_fault()) {
    // RFC 3030 3: the failing chunk is answered at once and the transaction is over;
    // chunks already pipelined behind it meet "need MAIL" and are read and dropped.
    fail_message(Verb::bdat, *fault);
    return;
  }
  if (bdat_last_) {
    enter_state(SessionState::rcpt);
    end_message();
    return;
  }
  count(Verb::bdat, true);
  enter_state(SessionState::rcpt);
  char text[48];
  std::size_t len = buf::format_decimal(bdat_chunk_size_, text);
  constexpr std::string_view kSuffix = " octets received";
  kSuffix.copy(text + len, kSuffix.size());
  len += kSuffix.size();
  reply(Reply{250, {2, 0, 0}, std::string_view(text, len)});
}

void ServerSession::abort_transaction() {
  const bool active = txn_active_;
  reset_transaction();
  if (active) handler_.on_transaction_abort();
}

void ServerSession::reset_transaction() {
  txn_active_ = false;
  declared_size_ = 0;
  smtputf8_ = false;
  bdat_used_ = false;
  bdat_last_ = false;
  rcpt_attempted_ = false;
  recipients_ = 0;
  msg_error_ = nullptr;
}

void ServerSession::tls_started() {
  if (state_ != SessionState::tls_pending) return;
  tls_active_ = true;
  esmtp_ = false;
  authenticated_ = false;  // RFC 3207 4.2: forget what the client said before TLS
  wipe_auth_buffers();
  reset_transaction();
  framer_.reset();
  enter_state(SessionState::greeted);
}

void ServerSession::shutdown(const Reply& r) {
  if (state_ == SessionState::closed) return;
  if (auth_step_ != AuthStep::none) {
    auth_step_ = AuthStep::none;  // an exchange cut short fails
    count(Verb::auth, false);
    wipe_auth_buffers();
  }
  reply(r);
  abort_transaction();
  enter_state(SessionState::closed);
}

std::string ServerSession::summary() const {
  // Postfix's order: the session's life from greeting to QUIT.
  static constexpr Verb kOrder[] = {Verb::helo, Verb::ehlo, Verb::starttls, Verb::auth,
                                    Verb::mail, Verb::rcpt, Verb::data,     Verb::bdat,
                                    Verb::rset, Verb::noop, Verb::vrfy,     Verb::help,
                                    Verb::quit, Verb::unknown};
  std::string s;
  std::uint32_t total = 0, ok = 0;
  for (Verb v : kOrder) {
    const Counter& c = counters_[static_cast<std::size_t>(v)];
    if (c.total == 0) continue;
    total += c.total;
    ok += c.ok;
    s += verb_name(v);
    s += '=';
    s += std::to_string(c.ok);
    if (c.ok != c.total) s += '/' + std::to_string(c.total);
    s += ' ';
  }
  s += "commands=" + std::to_string(ok);
  if (ok != total) s += '/' + std::to_string(total);
  // verb_name() is upper case; the summary is lower case as in Postfix logs.
  for (char& ch : s) ch = to_lower(ch);
  return s;
}

}  // namespace ringmta::smtp
