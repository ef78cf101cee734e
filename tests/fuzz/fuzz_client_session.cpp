// libFuzzer target for ClientSession: arbitrary server replies, cut at input-derived points,
// against a caller that starts messages, sends bodies, times out and quits as the input says;
// results must add up, callbacks stop at close, and every line written is a valid command.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "core/smtp/client_session.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using namespace ringmta::smtp;
using ringmta::fuzz::escape;

// RINGMTA_FUZZ_VERBOSE set: the caller's actions and the callbacks go to stderr.
void trace(const std::string& what) {
  static const bool on = std::getenv("RINGMTA_FUZZ_VERBOSE") != nullptr;
  if (on) std::fprintf(stderr, "%s\n", what.c_str());
}

constexpr std::string_view kHeloName = "client.fuzz.test";
constexpr std::size_t kOutCapacity = 16 * 1024;  // ClientSession's output (client_session.cpp)

// Up to 256 recipients with long domains: enough to fill the 16 KiB output with pipelined
// RCPTs, so that the send cursor has to wait for room.
const std::vector<std::string>& recipient_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (int i = 0; i < 256; ++i) {
      v.push_back("rcpt" + std::to_string(i) +
                  "@a-rather-long-subdomain-for-fuzzing-pipelined-rcpts.mail.example.test");
    }
    v[1] = "Postmaster";  // RFC 5321 4.1.1.3: a forward path without a domain
    return v;
  }();
  return names;
}

struct Plan {
  ClientConfig config;
  std::vector<std::string_view> recipients;
  std::vector<RcptParams> rcpt_params;
  Envelope envelope;
  std::uint64_t body_octets = 0;
  std::size_t max_messages = 1;
  std::size_t quit_after = 0;  // call quit() when ready after this many results; 0: never
  std::size_t timeout_at = 0;  // the timer fires before this piece (1-based); 0: never
  bool partial_drain = false;  // send at most 512 bytes of output per step
};

class FuzzClient : public ClientHandler {
 public:
  explicit FuzzClient(const Plan& plan) : plan_(plan) {}

  void on_greeting(const Reply& r) override {
    trace("on_greeting " + std::to_string(r.code));
    FUZZ_CHECK(!closed_);
    FUZZ_CHECK(!greeted_);
    FUZZ_CHECK(r.code >= 200 && r.code <= 599);
    greeted_ = true;
  }
  void on_rcpt_reply(std::size_t index, const Reply& r) override {
    trace("on_rcpt_reply " + std::to_string(index) + " " + std::to_string(r.code));
    FUZZ_CHECK(!closed_);
    FUZZ_CHECK(!txns_.empty());
    Txn& t = txns_.front();  // replies belong to the oldest transaction in flight
    FUZZ_CHECK(index == t.rcpt_replies);  // each recipient once, in order
    FUZZ_CHECK(index < plan_.recipients.size());
    ++t.rcpt_replies;
    if (r.code / 100 == 2) ++t.rcpt_ok;  // only a 2xx accepts a recipient
  }
  void on_transaction_done(const TransactionResult& res) override {
    trace("on_transaction_done mail=" + std::to_string(res.mail.code) +
          " data=" + std::to_string(res.data.code) + " accepted=" + std::to_string(res.accepted) +
          " rejected=" + std::to_string(res.rejected) +
          " delivered=" + std::to_string(res.delivered));
    FUZZ_CHECK(!closed_);
    FUZZ_CHECK(!txns_.empty());
    // Results come oldest first; a local refusal is the one being started, at once.
    const bool local = res.ending == Ending::refused_local;
    const Txn t = local ? txns_.back() : txns_.front();
    if (local) {
      FUZZ_CHECK(t.rcpt_replies == 0 && !t.body_sent);
      txns_.pop_back();
    } else {
      txns_.pop_front();
    }
    ++done_;
    const std::size_t n = plan_.recipients.size();
    FUZZ_CHECK(res.accepted + res.rejected <= n);
    FUZZ_CHECK(res.accepted == t.rcpt_ok);
    FUZZ_CHECK(res.rejected == t.rcpt_replies - t.rcpt_ok ||
               (t.rcpt_replies == 0 && res.rejected == n));
    if (res.delivered) {
      FUZZ_CHECK(res.accepted > 0 && res.data.code / 100 == 2);
      FUZZ_CHECK(res.mail.code / 100 == 2);
      // The server can only have taken a message whose body was sent.
      FUZZ_CHECK(t.body_sent);
    }
  }
  void on_closed(const Reply& last, std::string_view why) override {
    trace("on_closed " + std::to_string(last.code) + " " + std::string(why));
    FUZZ_CHECK(!closed_);  // once
    FUZZ_CHECK(!why.empty());
    FUZZ_CHECK(txns_.empty());  // every transaction in flight was reported before the close
    closed_ = true;
  }

  void started() {
    FUZZ_CHECK(txns_.size() < plan_.config.transactions_in_flight);
    txns_.emplace_back();
    ++started_;
  }
  void sent_body() {
    trace("body_sent");
    FUZZ_CHECK(!txns_.empty());
    txns_.back().body_sent = true;  // the newest one's body is the one due
  }

  bool closed() const { return closed_; }
  bool in_txn() const { return !txns_.empty(); }
  std::size_t in_flight() const { return txns_.size(); }
  std::size_t started_count() const { return started_; }
  std::size_t done_count() const { return done_; }

 private:
  const Plan& plan_;
  bool greeted_ = false;
  bool closed_ = false;
  struct Txn {
    std::size_t rcpt_replies = 0;
    std::size_t rcpt_ok = 0;
    bool body_sent = false;
  };
  std::deque<Txn> txns_;
  std::size_t started_ = 0;
  std::size_t done_ = 0;
};

// Reads the client's output stream as a server would: every line is a valid command (or
// the "." ending DATA), in an order a transaction allows.
class OutputChecker {
 public:
  explicit OutputChecker(const Plan& plan) : plan_(plan) {}

  void add(std::string_view bytes) {
    pending_.append(bytes);
    for (std::size_t end; (end = pending_.find("\r\n")) != std::string::npos;) {
      line(std::string_view(pending_).substr(0, end));
      pending_.erase(0, end + 2);
    }
  }
  void finish() const { FUZZ_CHECK(pending_.empty()); }

 private:
  void line(std::string_view l) {
    FUZZ_CHECK(!quit_);  // nothing after QUIT
    FUZZ_CHECK(l.find_first_of("\r\n") == std::string_view::npos);
    if (l == ".") {
      FUZZ_CHECK(after_data_);
      after_data_ = false;
      return;
    }
    // AUTH LOGIN's answers to 334: the user name, the password, or "*" to cancel.
    if (auth_lines_ > 0 && (l == "dXNlcg==" || l == "c2VjcmV0" || l == "*")) {
      --auth_lines_;
      return;
    }
    const Command c = parse_command(l);
    if (!c.ok()) std::fprintf(stderr, "bad line: %s\n", ringmta::fuzz::escape(l).c_str());
    FUZZ_CHECK(c.ok());
    switch (c.verb) {
      case Verb::ehlo:
      case Verb::helo:
        FUZZ_CHECK(c.argument == kHeloName);
        break;
      case Verb::mail:
        // A refused MAIL, DATA or last RCPT may be followed by the next MAIL directly.
        in_envelope_ = true;
        after_data_ = false;
        rcpts_ = 0;
        FUZZ_CHECK(c.path.null == plan_.envelope.sender.empty());
        FUZZ_CHECK(!c.mail.has_size || c.mail.size == plan_.body_octets);
        break;
      case Verb::rcpt:
        FUZZ_CHECK(in_envelope_);
        FUZZ_CHECK(++rcpts_ <= plan_.recipients.size());
        break;
      case Verb::data:
        FUZZ_CHECK(in_envelope_ && rcpts_ == plan_.recipients.size());
        in_envelope_ = false;
        after_data_ = true;
        break;
      case Verb::bdat:
        FUZZ_CHECK(in_envelope_ && rcpts_ == plan_.recipients.size());
        FUZZ_CHECK(c.last && c.chunk_size == plan_.body_octets);
        in_envelope_ = false;
        break;
      case Verb::rset:
        in_envelope_ = false;
        after_data_ = false;
        break;
      case Verb::quit:
        quit_ = true;
        break;
      case Verb::starttls:
        FUZZ_CHECK(plan_.config.starttls != TlsPolicy::none);
        FUZZ_CHECK(!starttls_ && !in_envelope_);  // once, outside a transaction
        starttls_ = true;
        break;
      case Verb::auth:
        FUZZ_CHECK(!plan_.config.auth_user.empty() && !in_envelope_);
        // The user name and the password, each after a 334, then "*" if a third 334 comes
        // (a challenge the client cannot answer: RFC 4954 4 cancel).
        if (c.argument == "LOGIN") auth_lines_ = 3;
        break;
      default:
        FUZZ_CHECK(false);  // the client writes no other command
    }
  }

  const Plan& plan_;
  std::string pending_;
  bool in_envelope_ = false;
  bool after_data_ = false;
  bool quit_ = false;
  bool starttls_ = false;
  int auth_lines_ = 0;
  std::size_t rcpts_ = 0;
};

struct Driver {
  const Plan& plan;
  ClientSession& s;
  FuzzClient& h;
  OutputChecker& out;
  bool quit_called = false;

  void check_state() const {
    FUZZ_CHECK(s.closed() == h.closed());  // on_closed exactly when the session closes
    FUZZ_CHECK(s.output().size() <= kOutCapacity);
    if (s.ready()) FUZZ_CHECK(!h.in_txn());  // idle means every result was reported
    if (!s.ready() && !s.closed()) FUZZ_CHECK(s.timeout_ms() > 0);
    FUZZ_CHECK(h.done_count() <= h.started_count());
    FUZZ_CHECK(s.transactions_in_flight() == h.in_flight());
  }

  void drain() {
    if (!s.output().empty()) trace("output [" + escape(s.output()) + "]");
    const std::size_t n =
        plan.partial_drain ? std::min<std::size_t>(s.output().size(), 512) : s.output().size();
    out.add(s.output().substr(0, n));
    s.consume_output(n);
    check_state();
  }

  // The body goes out right after the output that is there now, so the caller commits to it
  // as soon as it is due (a BDAT written as output drains makes it due too).
  void send_body_if_due() {
    if (!s.body_due()) return;
    s.body_sent();
    h.sent_body();
  }

  // What a caller does between reads: send the body when due, start the next message or
  // quit when idle, send output.
  void act() {
    if (s.wants_tls()) {
      // The caller's handshake, done at once: the session says EHLO again.
      trace("tls_started");
      FUZZ_CHECK(!s.tls_active());
      s.tls_started();
      FUZZ_CHECK(s.tls_active() && !s.wants_tls());
    }
    send_body_if_due();
    if (s.ready() && !quit_called) {
      if (plan.quit_after != 0 && h.done_count() >= plan.quit_after) {
        trace("quit");
        s.quit();
        quit_called = true;
      } else if (h.started_count() < plan.max_messages) {
        h.started();
        trace("send_message");
        FUZZ_CHECK(s.send_message(plan.envelope, plan.body_octets));
        send_body_if_due();
      }
    }
    // More behind it while the session allows (transactions_in_flight > 1).
    while (!quit_called && s.can_pipeline_message() && h.started_count() < plan.max_messages) {
      h.started();
      trace("send_message (pipelined)");
      FUZZ_CHECK(s.send_message(plan.envelope, plan.body_octets));
      send_body_if_due();
    }
    check_state();
    drain();
    send_body_if_due();
    check_state();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ringmta::fuzz::InputReader in(data, size);
  const std::uint8_t flags = in.byte();
  const std::uint8_t rcpt_pick = in.byte();
  Plan plan;
  plan.config.helo_name = std::string(kHeloName);
  plan.config.use_pipelining = (flags & 1) != 0;
  plan.config.use_bdat = (flags & 2) != 0;
  const bool utf8 = (flags & 4) != 0;
  const bool dsn = (flags & 8) != 0;
  const int n_pieces = (flags >> 4) & 7;
  plan.partial_drain = (flags & 0x80) != 0;
  plan.body_octets = in.u16();
  plan.timeout_at = in.byte();
  plan.quit_after = in.byte() & 3;
  const std::uint8_t misc = in.byte();
  plan.max_messages = 1 + (misc & 3);
  plan.config.transactions_in_flight = (misc & 128) != 0 ? 4 : 1;
  // STARTTLS policy (and AUTH with the last one) from the top bits.
  switch ((misc >> 5) & 3) {
    case 1: plan.config.starttls = TlsPolicy::opportunistic; break;
    case 2: plan.config.starttls = TlsPolicy::required; break;
    case 3:
      plan.config.starttls = TlsPolicy::opportunistic;
      plan.config.auth_user = "user";
      plan.config.auth_password = "secret";
      break;
    default: break;
  }
  std::vector<std::size_t> pieces;
  for (int i = 0; i < n_pieces; ++i)
    pieces.push_back(in.byte() + 1u);
  const std::string_view server = in.rest();

  // Small envelopes mostly; a few with up to 256 recipients.
  const std::size_t n_rcpt = rcpt_pick < 128 ? 1 + (rcpt_pick & 7) : 1 + rcpt_pick;
  const auto& names = recipient_names();
  plan.recipients.assign(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(n_rcpt));
  plan.config.max_recipients = 256;
  switch ((misc >> 2) & 3) {
    case 1:
      plan.envelope.sender = "";
      break;  // the null reverse path
    case 2:
      plan.envelope.sender = "\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.example";
      break;
    default:
      plan.envelope.sender = "sender@client.fuzz.test";
      break;
  }
  plan.envelope.recipients = plan.recipients;
  plan.envelope.mail.smtputf8 = utf8;
  plan.envelope.mail.body = (misc & 16) != 0 ? BodyType::eight_bit_mime : BodyType::unspecified;
  if (dsn) {
    plan.envelope.mail.ret = DsnRet::hdrs;
    plan.envelope.mail.envid = "QQ314159+2B";
    RcptParams p;
    p.notify = kNotifySuccess | kNotifyFailure;
    p.orcpt_type = "rfc822";
    p.orcpt_value = "rcpt@example.test";
    plan.rcpt_params.assign(n_rcpt, p);
    plan.envelope.rcpt_params = plan.rcpt_params;
  }

  FuzzClient h(plan);
  ClientSession s(plan.config, h);
  OutputChecker out(plan);
  Driver d{plan, s, h, out};

  std::size_t piece = 0;
  std::string_view rest = server;
  for (std::size_t k = 1; !rest.empty(); ++k) {
    if (k == plan.timeout_at) {
      trace("on_timeout");
      s.on_timeout();
      d.check_state();
    }
    d.act();
    const std::size_t len = pieces.empty() ? rest.size() : pieces[piece++ % pieces.size()];
    const std::string_view chunk = rest.substr(0, len);
    rest.remove_prefix(chunk.size());
    const bool was_closed = s.closed();
    trace("feed [" + escape(chunk) + "]");
    const std::size_t used = s.feed(chunk);
    trace("  state " + std::string(client_state_name(s.state())));
    FUZZ_CHECK(used == chunk.size());  // all of it, always
    if (was_closed) FUZZ_CHECK(s.closed());
    d.check_state();
  }
  d.act();
  // Send what is left, whatever the drain policy.
  while (!s.output().empty()) {
    out.add(s.output());
    s.consume_output(s.output().size());
  }
  out.finish();
  d.check_state();
  return 0;
}
