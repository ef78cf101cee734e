// The server side of an SMTP session as a sans-I/O state machine: bytes in (feed), replies
// out (output), decisions asked of a handler (the relay, the sink). No sockets, no clocks,
// no allocation after construction. Commands are dispatched through one table
// (server_commands.cpp); every state change goes through enter_state().
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/buf/out_buffer.hpp"
#include "core/smtp/body_scanner.hpp"
#include "core/smtp/command.hpp"
#include "core/smtp/line_framer.hpp"
#include "core/smtp/reply.hpp"

namespace ringmta::smtp {

struct ServerConfig {
  std::string hostname = "localhost";
  std::string greeting = "ESMTP ringmta";       // banner: "220 <hostname> <greeting>"
  std::uint64_t max_message_size = 35u << 20;   // RFC 1870; 0 = no limit
  std::uint32_t max_recipients = 100;           // RFC 5321 4.5.3.1.8: at least 100
  // Extensions offered in the EHLO reply; each can be turned off (as smtp-sink's flags).
  bool pipelining = true;             // RFC 2920
  bool size = true;                   // RFC 1870
  bool eight_bit_mime = true;         // RFC 6152
  bool smtputf8 = true;               // RFC 6531
  bool enhanced_status_codes = true;  // RFC 2034
  bool chunking = true;               // RFC 3030
  bool dsn = true;                    // RFC 3461
  bool starttls = false;              // RFC 3207: offered only when the caller can do TLS
  // RFC 3207 4: no mail before STARTTLS (MAIL answered 530 5.7.0); needs starttls.
  bool require_tls = false;
  // RFC 4954: AUTH PLAIN and LOGIN offered in EHLO; the handler's on_auth() checks the
  // credentials. Off: AUTH is answered 503 5.5.1 and MAIL's AUTH= parameter 555.
  bool auth = false;
  // AUTH only over TLS (offered after STARTTLS; before it, 538 5.7.11): PLAIN and LOGIN
  // send the password in the clear (RFC 4954 4, RFC 4616 6). Off for tests and trusted nets.
  bool auth_requires_tls = true;
  // Failed AUTH exchanges per session; the last one is answered 421 4.7.0 and closes.
  std::uint32_t max_auth_failures = 3;
  // RFC 5321 4.5.3.2.7: the server waits at least 5 minutes for the next command.
  std::uint32_t command_timeout_ms = 300'000;
  std::uint32_t data_timeout_ms = 300'000;
  // Room for replies not yet sent; when it is nearly full the session stops reading (the
  // client is not reading its replies). At least 2 KiB; 4 KiB holds ~100 pipelined replies.
  std::uint32_t output_buffer_bytes = 4096;
};

// A handler's answer to a validated command.
struct Decision {
  enum class Kind : std::uint8_t { accept, reply, defer };
  Kind kind = Kind::accept;
  Reply reply{};  // Kind::reply: sent as is; 2xx/3xx count as accepted, 421 also closes

  static Decision accept() { return {}; }
  static Decision respond(Reply r) { return {Kind::reply, r}; }
  // The answer comes later through ServerSession::resume(); input stops until then.
  static Decision defer() { return {Kind::defer, {}}; }
};

enum class BodyFormat : std::uint8_t {
  dot_stuffed,  // DATA: wire format, CRLF, leading dots doubled
  raw,          // BDAT: the message as is (RFC 3030), nothing stuffed
};

struct MessageInfo {
  BodyFormat format = BodyFormat::dot_stuffed;
  std::uint64_t wire_octets = 0;     // bytes handed to on_body
  std::uint64_t message_octets = 0;  // RFC 1870 size
  std::uint64_t dot_lines = 0;       // lines starting with '.'
  bool has_8bit = false;
  std::uint32_t recipients = 0;      // accepted recipients
};

enum class AuthMechanism : std::uint8_t { plain, login };
std::string_view mechanism_name(AuthMechanism m);

// What the session hands the handler to check. The views are valid only during the call:
// the session wipes its copies of the password right after it (the caller's receive
// buffers, which it does not own, are the caller's to wipe).
struct AuthCredentials {
  AuthMechanism mechanism = AuthMechanism::plain;
  std::string_view user{};      // RFC 4616 authcid, or the LOGIN user name; 1-255 octets
  std::string_view password{};  // 1-255 octets
};

// The handler's verdict on credentials (RFC 4954 6).
enum class AuthVerdict : std::uint8_t {
  accept,             // 235 2.7.0
  reject,             // 535 5.7.8; counts towards max_auth_failures
  temporary_failure,  // 454 4.7.0 (the user database is unavailable); not counted
  too_many_failures,  // 421 4.7.0 and close (e.g. the client's address is over its limit)
};

enum class SessionState : std::uint8_t {
  rejected,     // banner was 554: only QUIT is served (RFC 5321 3.1)
  greeted,      // banner sent, waiting for HELO/EHLO
  ready,        // after HELO/EHLO, no transaction
  mail,         // MAIL accepted
  rcpt,         // at least one RCPT accepted
  data,         // reading a DATA body
  bdat,         // reading a BDAT chunk
  tls_pending,  // 220 sent to STARTTLS, waiting for the caller's handshake
  auth,         // 334 sent to AUTH, waiting for the client's response line
  closed,       // after QUIT or 421: the caller closes once output is sent
};
std::string_view state_name(SessionState s);

// Every callback runs inside feed() or resume(); views in its arguments are valid only
// during the call. The default implementation accepts everything and discards the body.
class ServerHandler {
 public:
  virtual ~ServerHandler() = default;
  virtual Decision on_helo(const Command&) { return Decision::accept(); }
  virtual Decision on_mail(const Command&) { return Decision::accept(); }
  virtual Decision on_rcpt(const Command&) { return Decision::accept(); }
  // DATA (dot_stuffed body) or the first BDAT (raw body) of a transaction, before any body.
  virtual Decision on_data_start(BodyFormat) { return Decision::accept(); }
  virtual void on_body(std::string_view) {}
  // The whole message arrived and passed every check. The 250 is the handler's promise
  // (for the relay: on stable storage), so it may defer until that is true.
  virtual Decision on_message(const MessageInfo&) { return Decision::accept(); }
  // The transaction ended without a message (RSET, EHLO, a refused body, STARTTLS, QUIT).
  virtual void on_transaction_abort() {}
  virtual void on_state_change(SessionState /*from*/, SessionState /*to*/) {}
  // Credentials from AUTH (only when ServerConfig::auth). Synchronous: the answer is the
  // return value. The default refuses everyone.
  virtual AuthVerdict on_auth(const AuthCredentials&) { return AuthVerdict::reject; }
};

class ServerSession {
 public:
  // Output room kept free before a command is read: the largest output one command makes
  // (the EHLO reply, or a handler's reply of at most 512 octets) fits, so a reply is never
  // dropped.
  static constexpr std::size_t kReplyReserve = 1024;

  // The handler must outlive the session. Allocates the session's buffers, once.
  ServerSession(const ServerConfig& config, ServerHandler& handler);
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // Writes the banner. A 554 banner (RFC 5321 3.1) leaves only QUIT served; 421 closes.
  void start();
  void start(const Reply& banner);

  // Consumes input; returns how many bytes were used. Fewer than given means the session is
  // waiting (a deferred decision, a full output buffer, STARTTLS or close): send output(),
  // then feed the rest again once resume() was called or output drained.
  std::size_t feed(std::string_view in);
  // The deferred decision's reply (2xx/3xx accept, 421 closes).
  void resume(const Reply& reply);
  // The caller completed the TLS handshake after STARTTLS: the session starts over from
  // the state after the banner, knowing nothing the client said before (RFC 3207 4.2).
  void tls_started();
  // The caller is shutting down: answer 421 to whatever comes next and close.
  void shutdown(const Reply& reply);

  std::string_view output() const { return out_.view(); }
  void consume_output(std::size_t n) { out_.consume(n); }

  SessionState state() const { return state_; }
  bool waiting() const { return deferred_ != Pending::none; }
  bool wants_tls() const { return state_ == SessionState::tls_pending; }
  bool closed() const { return state_ == SessionState::closed; }
  bool tls_active() const { return tls_active_; }
  // AUTH succeeded in this session (forgotten by STARTTLS, RFC 3207 4.2).
  bool authenticated() const { return authenticated_; }
  // The authenticated user ("" before); valid as long as the session and authenticated().
  std::string_view auth_user() const {
    return authenticated_ ? std::string_view(user_.data(), user_len_) : std::string_view{};
  }
  std::uint32_t auth_failures() const { return auth_failures_; }
  // What the caller's timer should be for the current wait.
  std::uint32_t timeout_ms() const;

  // "ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6": per verb ok or ok/total (as Postfix).
  std::string summary() const;

 private:
  enum class Pending : std::uint8_t { none, helo, mail, rcpt, data_start, message };
  struct Counter {
    std::uint32_t total = 0;
    std::uint32_t ok = 0;
  };
  struct CommandSpec;
  friend struct ServerCommandTable;

  void enter_state(SessionState next);
  void reply(const Reply& r);
  void reply_ehlo();
  void handle_line(const FramedLine& line);
  Verb handle_command_line(const FramedLine& line);
  void dispatch(const Command& cmd, std::size_t line_size);
  void apply(Pending what, const Decision& d);
  void finish_pending(Pending what, const Reply& r);
  std::size_t feed_data(std::string_view in);
  std::size_t feed_bdat(std::string_view in);
  void end_message();
  // The reason the message must be refused (bare CR/LF, size, long line), or nullptr.
  const Reply* message_fault() const;
  void fail_message(Verb verb, const Reply& r);
  void finish_bdat_chunk();
  void abort_transaction();
  void reset_transaction();
  void count(Verb v, bool ok);

  // Command steps (server_commands.cpp): check has no side effects; proceed acts.
  void do_helo(const Command& cmd);
  void do_mail(const Command& cmd);
  void do_rcpt(const Command& cmd);
  void do_data(const Command& cmd);
  void do_bdat(const Command& cmd);
  void do_rset(const Command& cmd);
  void do_noop(const Command& cmd);
  void do_quit(const Command& cmd);
  void do_vrfy(const Command& cmd);
  void do_help(const Command& cmd);
  void do_starttls(const Command& cmd);
  void do_auth(const Command& cmd);
  bool auth_offered() const;
  void auth_response(const FramedLine& line);
  void auth_decoded(std::string_view base64);
  void auth_plain(std::string_view decoded);
  void auth_check(AuthMechanism m, std::string_view user, std::string_view password);
  void auth_end(const Reply& r, bool ok);
  void wipe_auth_buffers();
  const Reply* check_mail_params(const Command& cmd) const;

  const ServerConfig& config_;
  ServerHandler& handler_;
  buf::OutBuffer out_;
  LineFramer framer_;
  BodyScanner scanner_;
  SessionState state_ = SessionState::greeted;
  Pending deferred_ = Pending::none;
  Verb deferred_verb_ = Verb::unknown;
  bool tls_active_ = false;
  bool txn_active_ = false;    // a MAIL was accepted and the transaction has not ended
  bool esmtp_ = false;         // EHLO (not HELO) was used: extensions are in effect
  bool smtputf8_ = false;      // this transaction declared SMTPUTF8
  bool bdat_used_ = false;     // this transaction used BDAT (DATA then is refused)
  bool bdat_last_ = false;     // the chunk being read is the LAST one
  bool bdat_discard_ = false;  // the chunk being read is read only to stay in step
  const Reply* bdat_error_ = nullptr;  // reply for a discarded chunk (else stored_reply_)
  SessionState bdat_return_state_ = SessionState::ready;  // where a discarded chunk returns
  const Reply* msg_error_ = nullptr;   // sticky fault of the message, answered at its end
  Reply stored_reply_{};               // a handler's reply kept beyond its callback
  char stored_text_[kMaxReplyLine] = {};
  bool rcpt_attempted_ = false;
  std::uint64_t declared_size_ = 0;
  std::uint64_t bdat_remaining_ = 0;
  std::uint64_t bdat_chunk_size_ = 0;
  std::uint32_t recipients_ = 0;
  std::array<Counter, kVerbCount> counters_{};
  // AUTH (RFC 4954): the exchange in progress and the result.
  enum class AuthStep : std::uint8_t { none, plain, login_user, login_password };
  AuthStep auth_step_ = AuthStep::none;
  bool authenticated_ = false;
  std::uint32_t auth_failures_ = 0;
  // RFC 4616 2: authcid and passwd up to 255 octets each.
  static constexpr std::size_t kMaxAuthField = 255;
  std::array<char, kMaxAuthField> user_{};  // LOGIN's user between its two steps; then the
  std::size_t user_len_ = 0;                // authenticated user
  // A decoded response: at most a response line's base64 (kMaxParamCommandLine) decoded.
  std::array<char, kMaxParamCommandLine / 4 * 3> decoded_{};
};

}  // namespace ringmta::smtp
