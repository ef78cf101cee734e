// libFuzzer target for ServerSession: one client byte stream, fed whole and cut into
// input-derived pieces, with a handler that accepts, refuses or defers as the input says, must
// give the same replies and handler events; replies stay well formed, accepted messages clean.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/smtp/server_session.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using namespace ringmta::smtp;
using ringmta::fuzz::escape;

// ServerSession's output buffer and the room it keeps free before reading a command
// (server_session.cpp); the fuzzer checks the session respects them.
const std::size_t kOutCapacity = ringmta::smtp::ServerConfig{}.output_buffer_bytes;
constexpr std::size_t kReplyReserve = ringmta::smtp::ServerSession::kReplyReserve;
constexpr std::uint64_t kMaxMessage = 2048;  // small enough to exceed within -max_len=4096
constexpr std::uint32_t kMaxRecipients = 5;

// What the input asks for, besides the client bytes.
struct Script {
  std::vector<std::uint8_t> decisions;  // per handler decision, cyclic; empty: accept all
  std::vector<std::size_t> packets;     // sizes of plaintext reads, cyclic; empty: one
  std::vector<std::size_t> pieces;      // split run: feed sizes, cyclic; empty: 1 byte
  bool lazy_drain = false;              // split run: send output only when the session stops
  std::uint8_t banner = 0;
  bool auth = false;                    // ServerConfig::auth
  bool auth_without_tls = false;        // auth_requires_tls off
  std::uint32_t max_auth_failures = 3;
};

const std::string& long_text() {
  static const std::string text(600, 'x');  // over the 512-octet reply line limit
  return text;
}

// Replies a handler may give: positive, transient, permanent, closing, with a CR/LF in the
// text, too long, or empty.
Reply handler_reply(std::uint8_t pick) {
  switch (pick & 7) {
    case 0:
      return {250, {2, 0, 0}, "Ok from handler"};
    case 1:
      return {251, {2, 1, 5}, "User not local; will forward"};
    case 2:
      return {421, {4, 3, 2}, "Handler shutting down"};
    case 3:
      return {451, {4, 3, 0}, "Local error\r\nRSET"};
    case 4:
      return {452, {4, 5, 3}, long_text()};
    case 5:
      return {550, {5, 1, 1}, "No such user"};
    case 6:
      return {552, {5, 3, 4}, ""};
    default:
      return {554, {5, 7, 1}, "Rejected"};
  }
}

bool is_line_start(std::string_view s, std::size_t i) {
  return i == 0 || (i >= 2 && s[i - 2] == '\r' && s[i - 1] == '\n');
}

// What the session promised about a message it hands over as accepted.
void check_message(const MessageInfo& info, std::string_view body) {
  FUZZ_CHECK(info.wire_octets == body.size());
  FUZZ_CHECK(info.recipients >= 1 && info.recipients <= kMaxRecipients);
  FUZZ_CHECK(info.message_octets <= kMaxMessage);  // RFC 1870
  const bool dot = info.format == BodyFormat::dot_stuffed;
  std::uint64_t dots = 0;
  bool high = false;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const auto c = static_cast<unsigned char>(body[i]);
    if (c >= 0x80) high = true;
    if (c == '.' && is_line_start(body, i)) ++dots;
    // RFC 5321 2.3.8: CR and LF only as CRLF, anywhere in an accepted message.
    if (c == '\r') FUZZ_CHECK(i + 1 < body.size() && body[i + 1] == '\n');
    if (c == '\n') {
      FUZZ_CHECK(i > 0 && body[i - 1] == '\r');
      std::size_t len = i + 1 - line_start;
      if (dot && body[line_start] == '.') --len;
      FUZZ_CHECK(len <= kMaxTextLine);  // RFC 5321 4.5.3.1.6
      line_start = i + 1;
    }
  }
  FUZZ_CHECK(info.dot_lines == dots);
  FUZZ_CHECK(info.has_8bit == high);
  if (dot) {
    // Wire format up to (not including) the end of data, which never occurs inside it.
    FUZZ_CHECK(body.empty() || body.substr(body.size() - 2) == "\r\n");
    FUZZ_CHECK(("\r\n" + std::string(body)).find("\r\n.\r\n") == std::string::npos);
    FUZZ_CHECK(info.message_octets == info.wire_octets - dots);
  } else {
    FUZZ_CHECK(info.message_octets == info.wire_octets);
  }
}

class FuzzHandler : public ServerHandler {
 public:
  FuzzHandler(const Script& script, std::string& log) : script_(script), log_(log) {}
  void attach(const ServerSession* s) { session_ = s; }

  Decision on_helo(const Command& c) override {
    event("helo " + std::string(verb_name(c.verb)) + " " + std::string(c.argument));
    FUZZ_CHECK(state() == SessionState::greeted || state() == SessionState::ready);
    return decide();
  }
  Decision on_mail(const Command& c) override {
    event("mail " + path(c.path) + " size=" + std::to_string(c.mail.size));
    FUZZ_CHECK(state() == SessionState::ready);
    return decide();
  }
  Decision on_rcpt(const Command& c) override {
    event("rcpt " + path(c.path));
    FUZZ_CHECK(state() == SessionState::mail || state() == SessionState::rcpt);
    return decide();
  }
  Decision on_data_start(BodyFormat) override {
    event("data_start");
    FUZZ_CHECK(state() == SessionState::rcpt);
    message_.clear();
    const Decision d = decide();
    // Body may follow only once this handler agreed (now, or later through resume()).
    data_pending_ = d.kind == Decision::Kind::defer;
    data_ok_ =
        d.kind == Decision::Kind::accept || (d.kind == Decision::Kind::reply && d.reply.positive());
    return d;
  }
  void on_body(std::string_view b) override {
    FUZZ_CHECK(!closed_);
    FUZZ_CHECK(!b.empty());
    FUZZ_CHECK(state() == SessionState::data || state() == SessionState::bdat);
    FUZZ_CHECK(txn_open_ && !message_seen_);
    FUZZ_CHECK(data_ok_);  // the handler did not refuse this transaction's data
    message_.append(b);
  }
  Decision on_message(const MessageInfo& info) override {
    event("message format=" + std::to_string(static_cast<int>(info.format)) + " wire=" +
          std::to_string(info.wire_octets) + " size=" + std::to_string(info.message_octets) +
          " dots=" + std::to_string(info.dot_lines) + " 8bit=" + std::to_string(info.has_8bit) +
          " rcpts=" + std::to_string(info.recipients));
    FUZZ_CHECK(txn_open_ && !message_seen_);
    check_message(info, message_);
    log_ += "body [" + escape(message_, 1 << 20) + "]\n";
    message_.clear();
    message_seen_ = true;
    return decide();
  }
  // A transaction opens when MAIL is accepted and ends once: by an abort, or by a message
  // handed over whose acceptance returns the session to a state outside transactions. The
  // body of a failed message is not logged: how much of it was handed on before the fault
  // showed (e.g. the size limit) depends on how the input was cut.
  void on_transaction_abort() override {
    event("abort");
    FUZZ_CHECK(txn_open_);  // one abort per transaction, never outside one
    txn_open_ = false;
    message_seen_ = false;
    data_ok_ = false;
    message_.clear();
  }
  void on_state_change(SessionState from, SessionState to) override {
    event("state " + std::string(state_name(from)) + " -> " + std::string(state_name(to)));
    FUZZ_CHECK(from != to);
    FUZZ_CHECK(from == last_state_);  // every change is reported, in order
    last_state_ = to;
    if (to == SessionState::mail && from == SessionState::ready) {
      FUZZ_CHECK(!txn_open_);
      txn_open_ = true;
    }
    const bool outside = to == SessionState::ready || to == SessionState::greeted ||
                         to == SessionState::closed || to == SessionState::tls_pending;
    if (outside && txn_open_) {
      FUZZ_CHECK(message_seen_);  // a transaction that did not deliver was aborted first
      txn_open_ = false;
      message_seen_ = false;
      data_ok_ = false;
    }
    if (to == SessionState::closed) closed_ = true;
  }

  // The reply for the next resume(), from the same decision bytes.
  // AUTH: the credentials are well formed and come only where AUTH is allowed; the verdict
  // comes from the decision bytes.
  AuthVerdict on_auth(const AuthCredentials& c) override {
    event("auth " + std::string(mechanism_name(c.mechanism)) + " user=" + escape(c.user, 300) +
          " password=" + escape(c.password, 300));
    FUZZ_CHECK(script_.auth);
    FUZZ_CHECK(state() == SessionState::auth);
    FUZZ_CHECK(!session_->authenticated());
    FUZZ_CHECK(session_->tls_active() || script_.auth_without_tls);
    for (std::string_view f : {c.user, c.password}) {
      FUZZ_CHECK(!f.empty() && f.size() <= 255);  // RFC 4616 2
      FUZZ_CHECK(f.find('\0') == std::string_view::npos);
    }
    password_at_ = c.password.data();
    password_len_ = c.password.size();
    const std::uint8_t d = next_byte();
    const AuthVerdict v = static_cast<AuthVerdict>(d & 3);
    log_ += "  -> verdict " + std::to_string(d & 3) + "\n";
    if (v == AuthVerdict::accept) accepted_user_ = std::string(c.user);
    return v;
  }
  // The session wiped the password it showed the last on_auth (its memory is still alive).
  void check_password_wiped() const {
    for (std::size_t i = 0; i < password_len_; ++i) FUZZ_CHECK(password_at_[i] == '\0');
  }
  const std::string& accepted_user() const { return accepted_user_; }

  Reply resume_reply() {
    const Reply r = handler_reply(next_byte() >> 2);
    event("resume " + std::to_string(r.code));
    if (data_pending_) data_ok_ = r.positive();
    data_pending_ = false;
    return r;
  }
  void note(std::string_view what) { event(std::string(what)); }
  void start_from(SessionState s) { last_state_ = s; }

 private:
  std::uint8_t next_byte() {
    if (script_.decisions.empty()) return 0;
    return script_.decisions[next_++ % script_.decisions.size()];
  }
  Decision decide() {
    const std::uint8_t d = next_byte();
    switch (d & 3) {
      case 1: {
        const Reply r = handler_reply(d >> 2);
        log_ += "  -> reply " + std::to_string(r.code) + "\n";
        return Decision::respond(r);
      }
      case 2:
        log_ += "  -> defer\n";
        return Decision::defer();
      default:
        return Decision::accept();
    }
  }
  void event(const std::string& what) {
    FUZZ_CHECK(!closed_);  // no callback after the session closed
    log_ += what;
    log_ += '\n';
  }
  SessionState state() const { return session_->state(); }
  static std::string path(const Path& p) {
    return "<" + std::string(p.local_part) + "@" + std::string(p.domain) + ">";
  }

  const Script& script_;
  std::string& log_;
  const ServerSession* session_ = nullptr;
  std::size_t next_ = 0;
  std::string message_;
  SessionState last_state_ = SessionState::greeted;
  bool txn_open_ = false;
  bool message_seen_ = false;  // on_message was called in the open transaction
  bool data_ok_ = false;       // on_data_start was accepted in the open transaction
  bool data_pending_ = false;  // on_data_start was deferred, resume() decides
  bool closed_ = false;
  const char* password_at_ = nullptr;
  std::size_t password_len_ = 0;
  std::string accepted_user_;
};

struct Transcript {
  std::string output;
  std::string events;
  std::string summary;
  SessionState state = SessionState::greeted;
  bool tls = false;
  bool authenticated = false;
  std::string auth_user;
};

void check_output_now(const ServerSession& s) {
  const std::string_view out = s.output();
  FUZZ_CHECK(out.size() <= kOutCapacity);
  FUZZ_CHECK(out.empty() || out.substr(out.size() - 2) == "\r\n");
}

void drain(ServerSession& s, Transcript& t) {
  check_output_now(s);
  t.output.append(s.output());
  s.consume_output(s.output().size());
  FUZZ_CHECK(s.output().empty());
}

std::vector<std::string_view> cut(std::string_view s, const std::vector<std::size_t>& sizes) {
  std::vector<std::string_view> parts;
  for (std::size_t i = 0; !s.empty(); ++i) {
    const std::size_t n = sizes.empty() ? s.size() : sizes[i % sizes.size()];
    parts.push_back(s.substr(0, n));
    s.remove_prefix(parts.back().size());
  }
  return parts;
}

Transcript run(const Script& script, std::string_view input, bool split) {
  Transcript t;
  ServerConfig config;
  config.hostname = "mx.fuzz.test";
  config.max_message_size = kMaxMessage;
  config.max_recipients = kMaxRecipients;
  config.starttls = true;
  config.auth = script.auth;
  config.auth_requires_tls = !script.auth_without_tls;
  config.max_auth_failures = script.max_auth_failures;
  FuzzHandler h(script, t.events);
  ServerSession s(config, h);
  h.attach(&s);
  h.start_from(s.state());
  switch (script.banner & 3) {
    case 1:
      s.start(Reply{554, {5, 3, 2}, "No SMTP service here"});
      break;
    case 2:
      s.start(Reply{220, {}, "mx.fuzz.test custom banner"});
      break;
    default:
      s.start();
      break;
  }
  drain(s, t);

  const bool lazy = split && script.lazy_drain;
  // Each feed uses a byte, or stops for a reason the loop then removes: a bound on steps
  // catches a session that neither reads nor waits.
  std::size_t steps = 0;
  const std::size_t max_steps = 4 * input.size() + 16;
  std::size_t piece = 0;
  for (const std::string_view packet : cut(input, script.packets)) {
    if (s.closed()) break;
    std::size_t pos = 0;
    while (pos < packet.size() && !s.closed()) {
      FUZZ_CHECK(++steps <= max_steps);
      std::size_t len = packet.size() - pos;
      if (split) {
        len = script.pieces.empty() ? 1 : script.pieces[piece++ % script.pieces.size()];
      }
      const std::string_view in = packet.substr(pos, len);
      const std::size_t out_before = s.output().size();
      const std::size_t n = s.feed(in);
      FUZZ_CHECK(n <= in.size());
      check_output_now(s);
      h.check_password_wiped();
      if (n == 0) {
        FUZZ_CHECK(s.waiting() || s.closed() || s.wants_tls() ||
                   out_before > kOutCapacity - kReplyReserve);
      }
      pos += n;
      const bool stopped_for_output =
          n < in.size() && !s.waiting() && !s.closed() && !s.wants_tls();
      if (!lazy || stopped_for_output || s.closed() || s.wants_tls()) drain(s, t);
      for (int resumes = 0; s.waiting(); ++resumes) {
        FUZZ_CHECK(resumes < 8);  // each resume ends one decision; few can chain
        s.resume(h.resume_reply());
        check_output_now(s);
        h.check_password_wiped();
      }
      if (s.wants_tls()) {
        // The rest of this read is plaintext sent before the handshake (CVE-2011-0411): the
        // session must have swallowed it, and the caller drops it.
        FUZZ_CHECK(n == in.size());
        drain(s, t);
        h.note("tls_started");
        s.tls_started();
        FUZZ_CHECK(!s.wants_tls() && s.tls_active());
        break;
      }
    }
  }
  if (!s.closed()) {
    s.shutdown(Reply{421, {4, 3, 2}, "Shutting down"});
    check_output_now(s);
  }
  FUZZ_CHECK(s.closed());
  drain(s, t);
  t.summary = s.summary();
  t.state = s.state();
  t.tls = s.tls_active();
  t.authenticated = s.authenticated();
  t.auth_user = std::string(s.auth_user());
  // Authenticated exactly as the last accepted user, unless STARTTLS came after it.
  if (t.authenticated) FUZZ_CHECK(t.auth_user == h.accepted_user());
  else FUZZ_CHECK(t.auth_user.empty());
  FUZZ_CHECK(!t.authenticated || script.auth);
  if (script.max_auth_failures != 0) {
    FUZZ_CHECK(s.auth_failures() <= script.max_auth_failures);
  }
  return t;
}

// Every line the server writes is one reply line (RFC 5321 4.2): "DDD" then SP or "-",
// no CR or LF inside, at most 512 octets with CRLF; a "-" line is followed by the same code.
void check_reply_lines(std::string_view out) {
  FUZZ_CHECK(out.empty() || out.substr(out.size() - 2) == "\r\n");
  std::string_view continued_code;
  while (!out.empty()) {
    const std::size_t end = out.find("\r\n");
    FUZZ_CHECK(end != std::string_view::npos);
    const std::string_view line = out.substr(0, end);
    out.remove_prefix(end + 2);
    FUZZ_CHECK(line.size() >= 4 && line.size() + 2 <= kMaxReplyLine);
    FUZZ_CHECK(line[0] >= '2' && line[0] <= '5');
    FUZZ_CHECK(line[1] >= '0' && line[1] <= '9' && line[2] >= '0' && line[2] <= '9');
    FUZZ_CHECK(line[3] == ' ' || line[3] == '-');
    FUZZ_CHECK(line.find_first_of("\r\n") == std::string_view::npos);
    if (!continued_code.empty()) FUZZ_CHECK(line.substr(0, 3) == continued_code);
    continued_code = line[3] == '-' ? line.substr(0, 3) : std::string_view{};
  }
  FUZZ_CHECK(continued_code.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ringmta::fuzz::InputReader in(data, size);
  const std::uint8_t counts = in.byte();
  const std::uint8_t flags = in.byte();
  Script script;
  script.lazy_drain = (flags & 1) != 0;
  script.banner = static_cast<std::uint8_t>((flags >> 1) & 3);
  script.auth = (flags & 8) != 0;
  script.auth_without_tls = (flags & 16) != 0;
  // 0: the default (3); 1, 2; 3: no limit.
  static constexpr std::uint32_t kMaxFailures[] = {3, 1, 2, 0};
  script.max_auth_failures = kMaxFailures[(flags >> 5) & 3];
  for (int i = 0, n = counts & 7; i < n; ++i)
    script.decisions.push_back(in.byte());
  for (int i = 0, n = (counts >> 3) & 3; i < n; ++i)
    script.packets.push_back(in.u16() + 1u);
  for (int i = 0, n = counts >> 5; i < n; ++i)
    script.pieces.push_back(in.byte() + 1u);
  const std::string_view input = in.rest();

  const Transcript whole = run(script, input, false);
  if (std::getenv("RINGMTA_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr, "events:\n%s\noutput:\n%s\nsummary: %s\n", whole.events.c_str(),
                 whole.output.c_str(), whole.summary.c_str());
  }
  const Transcript split = run(script, input, true);
  FUZZ_CHECK_EQ_STR(whole.events, split.events);
  FUZZ_CHECK_EQ_STR(whole.output, split.output);
  FUZZ_CHECK_EQ_STR(whole.summary, split.summary);
  FUZZ_CHECK(whole.state == split.state && whole.tls == split.tls);
  FUZZ_CHECK(whole.authenticated == split.authenticated && whole.auth_user == split.auth_user);
  check_reply_lines(whole.output);
  return 0;
}
