// The client side of an SMTP session as a sans-I/O state machine, for the relay's delivery
// and the loadgen: greeting, EHLO (HELO fall-back), transactions with pipelined
// MAIL/RCPT/DATA when offered (RFC 2920) or lockstep otherwise, BDAT when offered and asked
// for (RFC 3030), a result per recipient, and a timeout per state given as data (the caller
// owns the clock). It keeps a send cursor (next command to write) and a receive cursor (which
// command the next reply answers). The message body never passes through the session: it
// tells the caller when to send it (body_due) so the bytes go out from the caller's buffers.
// With PIPELINING and CHUNKING offered it can keep several transactions in flight on one
// connection (transactions_in_flight): each further one is written as RSET, MAIL, RCPT...,
// BDAT LAST and its body behind the earlier ones, before their replies came back.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/buf/out_buffer.hpp"
#include "core/smtp/command.hpp"
#include "core/smtp/reply_parser.hpp"

namespace ringmta::smtp {

// STARTTLS use (RFC 3207), as Postfix's smtp_tls_security_level none / may / encrypt.
enum class TlsPolicy : std::uint8_t {
  none,           // never
  opportunistic,  // when offered; a refused STARTTLS goes on in plaintext
  required,       // no mail without TLS: not offered or refused closes the session
};
const char* tls_policy_name(TlsPolicy p);  // "none" | "opportunistic" | "required"

struct ClientConfig {
  std::string helo_name = "localhost";
  TlsPolicy starttls = TlsPolicy::none;
  // AUTH (RFC 4954) after EHLO (after TLS when it is used): PLAIN when offered, else LOGIN.
  // Empty user: no AUTH. The strings must outlive the session.
  std::string auth_user;
  std::string auth_password;
  bool use_pipelining = true;  // when the server offers PIPELINING
  bool use_bdat = false;       // when the server offers CHUNKING
  std::uint32_t max_recipients = 1000;  // per transaction; sizes the output buffer
  // Transactions written ahead of their replies (1 to kMaxTransactionsInFlight): only with
  // PIPELINING and BDAT (a DATA transaction waits for its 354), each further one begun with
  // RSET so that it starts clean whatever became of the one before (RFC 2920 3.1: RSET, MAIL
  // and RCPT may appear anywhere in a group, and a client need not wait for the reply to a
  // BDAT chunk). 1: one transaction at a time.
  std::uint32_t transactions_in_flight = 1;
  // Timeouts per state, in ms (the defaults are Postfix's smtp_*_timeout).
  std::uint32_t greeting_timeout_ms = 300'000;
  std::uint32_t helo_timeout_ms = 300'000;
  std::uint32_t mail_timeout_ms = 300'000;
  std::uint32_t rcpt_timeout_ms = 300'000;
  std::uint32_t data_init_timeout_ms = 120'000;
  std::uint32_t data_xfer_timeout_ms = 180'000;
  std::uint32_t data_done_timeout_ms = 600'000;
  std::uint32_t rset_timeout_ms = 20'000;
  std::uint32_t quit_timeout_ms = 300'000;
  std::uint32_t starttls_timeout_ms = 300'000;  // STARTTLS reply and the handshake
  std::uint32_t auth_timeout_ms = 300'000;
};

inline constexpr std::uint32_t kMaxTransactionsInFlight = 64;

// One message's envelope. Addresses are without angle brackets ("" is the null sender,
// "Postmaster" a bare postmaster). Views must stay valid until the transaction ends.
struct Envelope {
  std::string_view sender{};
  std::span<const std::string_view> recipients{};
  MailParams mail{};  // BODY, SMTPUTF8, RET, ENVID; SIZE is added by the session
  std::span<const RcptParams> rcpt_params{};  // empty, or one per recipient
  // False: this message goes by DATA even when BDAT is offered and configured (its body is
  // at hand only in DATA's dot-stuffed form).
  bool allow_bdat = true;
};

// How a transaction ended: on a server reply, or on something local (the data reply is
// then made up: 451 4.4.2 / 4.5.0 / 552 / 553, text saying what happened).
enum class Ending : std::uint8_t {
  reply,          // the server's own final reply
  refused_local,  // not sent: over the server's SIZE, or SMTPUTF8 not offered
  timeout,        // the caller's timer fired (on_timeout)
  protocol,       // a malformed or unexpected reply
  closed,         // the server closed the connection (421 or plain close) mid-transaction
};

struct TransactionResult {
  Ending ending = Ending::reply;
  Reply mail{};                  // reply to MAIL
  Reply data{};                  // final reply: end of data, BDAT LAST, or the one that failed
  std::uint32_t accepted = 0;    // recipients accepted at RCPT
  std::uint32_t rejected = 0;
  bool delivered = false;        // the server took responsibility for `accepted` recipients
};

enum class ClientState : std::uint8_t {
  greeting,   // waiting for the banner
  ehlo,       // EHLO sent
  helo,       // HELO sent (EHLO was refused)
  starttls,   // STARTTLS sent
  tls,        // STARTTLS answered 220: the caller does the handshake (wants_tls)
  auth,       // AUTH sent (PLAIN, or a step of LOGIN)
  ready,      // idle: send_message() or quit()
  envelope,   // MAIL/RCPT/DATA or BDAT sent, replies pending
  data_body,  // DATA got 354: the caller sends the body now (body_due)
  data_done,  // end of data sent, waiting for the final reply
  rset,       // RSET after a failed transaction
  quit,       // QUIT sent
  closed,
};
std::string_view client_state_name(ClientState s);

// Callbacks report; they must not call back into the session. Views are valid only during
// the call.
class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  virtual void on_greeting(const Reply&) {}
  // Each EHLO (or HELO) accepted: once before STARTTLS and once after.
  virtual void on_ehlo(const Reply&) {}
  virtual void on_rcpt_reply(std::size_t /*index*/, const Reply&) {}
  virtual void on_transaction_done(const TransactionResult&) {}
  // The session ended: the server's last reply (421, a refused greeting) or a local reason
  // (timeout, protocol error) in `why`.
  virtual void on_closed(const Reply& /*last*/, std::string_view /*why*/) {}
};

class ClientSession {
 public:
  ClientSession(const ClientConfig& config, ClientHandler& handler);
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // Server bytes in; returns bytes used (all of them, except once closed).
  // Once closed(), send what output() still holds (a QUIT), then close the connection.
  std::size_t feed(std::string_view in);
  std::string_view output() const { return out_.view(); }
  // Drops sent output; pipelined commands that did not fit are written as room appears.
  void consume_output(std::size_t n);

  // Whether the next message goes by BDAT: the caller must then send it unstuffed.
  bool will_use_bdat() const;
  // Starts a transaction: in state ready, or behind the ones in flight when
  // can_pipeline_message() (then only by BDAT: an envelope with allow_bdat false is refused).
  // body_octets: the size of what the caller will send: the dot-stuffed body ending in CRLF
  // for DATA, the raw message for BDAT. Returns false if it cannot start now. Results come
  // in the order the transactions were started (a local refusal at once, from inside).
  bool send_message(const Envelope& env, std::uint64_t body_octets);
  // Whether another transaction may be written behind those in flight now: pipelining and
  // BDAT in use, fewer than transactions_in_flight started and unanswered, the last one
  // written whole with its body.
  bool can_pipeline_message() const;
  std::size_t transactions_in_flight() const { return count_; }
  // The caller must send the body right after the current output, then call body_sent().
  bool body_due() const { return body_due_; }
  void body_sent();
  void quit();
  // The caller's timer for timeout_ms() fired.
  void on_timeout();
  // The connection went away (the caller saw EOF or an error): a transaction in flight
  // ends with Ending::closed, then on_closed.
  void on_connection_lost();

  // STARTTLS was answered 220: the caller starts the TLS handshake now. Every server byte
  // behind the 220 in that read was dropped (plaintext injected before the handshake,
  // CVE-2011-0411) and nothing more may be fed as plaintext.
  bool wants_tls() const { return state_ == ClientState::tls; }
  // The handshake completed: the session says EHLO again (RFC 3207 4.2), over TLS. If it
  // failed, the caller closes the connection and calls on_connection_lost().
  void tls_started();
  bool tls_active() const { return tls_active_; }
  bool authenticated() const { return authenticated_; }
  ClientState state() const { return state_; }
  bool ready() const { return state_ == ClientState::ready; }
  bool closed() const { return state_ == ClientState::closed; }
  std::uint32_t timeout_ms() const;
  const Capabilities& capabilities() const { return caps_; }

 private:
  void enter_state(ClientState s);
  void on_reply(const Reply& r);
  void after_ehlo();
  void on_auth_reply(const Reply& r);
  void write_auth_line(std::string_view prefix, std::string_view secret);
  void on_envelope_reply(const Reply& r);
  void send_next_envelope_command();
  bool write_envelope_command(std::size_t index);
  void finish_transaction(const Reply& data_reply, bool server_has_transaction);
  void close(const Reply& last, std::string_view why, Ending ending = Ending::closed);

  // A transaction started and not yet answered in full. The oldest (head) gets the replies;
  // the newest (tail) is the one being written.
  struct Txn {
    Envelope env{};
    std::uint64_t body_octets = 0;
    TransactionResult result{};
    std::size_t send_cursor = 0;  // next command to write: 0 MAIL, 1..n RCPT, n+1 DATA/BDAT
    std::size_t recv_cursor = 0;  // command the next reply answers
    bool bdat = false;
    bool body_was_sent = false;
    bool rset_first = false;      // written behind another: RSET went first...
    bool rset_answered = false;   // ...and its reply came
    char mail_text[kMaxReplyLine] = {};  // MAIL's reply text, kept until the result
    std::size_t rcpt_count() const { return env.recipients.size(); }
  };
  Txn& head() { return txns_[head_]; }
  const Txn& head() const { return txns_[head_]; }
  Txn& tail() { return txns_[(head_ + count_ - 1) % txns_.size()]; }
  const Txn& tail() const { return txns_[(head_ + count_ - 1) % txns_.size()]; }
  void pop_head();

  const ClientConfig& config_;
  ClientHandler& handler_;
  buf::OutBuffer out_;
  ReplyParser parser_;
  Capabilities caps_{};
  ClientState state_ = ClientState::greeting;
  bool pipelining_ = false;
  bool body_due_ = false;  // the tail's body
  bool tls_active_ = false;
  bool tls_declined_ = false;  // STARTTLS refused (opportunistic: go on in plaintext)
  bool authenticated_ = false;
  bool auth_login_ = false;    // AUTH LOGIN in progress (else PLAIN)
  std::uint8_t auth_step_ = 0;
  std::vector<Txn> txns_;  // a ring, sized once from transactions_in_flight
  std::size_t head_ = 0;
  std::size_t count_ = 0;
};

}  // namespace ringmta::smtp
