// ServerTls between a ServerSession and a client TlsStream, in memory: STARTTLS then a
// handshake (full, then resumed), commands and replies through the stream, the outcome
// reported once (a failed handshake fed again, a timeout), the session's input dropped once
// it closed, and only the bytes asked for taken from the session's output.
#include "core/io/server_tls.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/smtp/server_session.hpp"
#include "test_certs.hpp"

namespace ringmta::io {
namespace {

// A metric label maps by name, whatever its order (checked when this file compiles).
enum class Label { failed, full, resumed };
static_assert(outcome_label<Label>(TlsHandshakeOutcome::full) == Label::full);
static_assert(outcome_label<Label>(TlsHandshakeOutcome::resumed) == Label::resumed);
static_assert(outcome_label<Label>(TlsHandshakeOutcome::failed) == Label::failed);

struct Recorded : ServerTlsObserver {
  void tls_handshake_ended(TlsHandshakeOutcome outcome, std::uint64_t cpu_us) override {
    outcomes.push_back(outcome);
    cpu_us_total += cpu_us;
  }
  void tls_established(std::uint64_t elapsed_ns) override { elapsed.push_back(elapsed_ns); }

  std::vector<TlsHandshakeOutcome> outcomes;
  std::uint64_t cpu_us_total = 0;
  std::vector<std::uint64_t> elapsed;
};

// The observer heard of exactly one handshake, and its outcome was `want`.
::testing::AssertionResult one_outcome(const Recorded& r, TlsHandshakeOutcome want) {
  if (r.outcomes.size() != 1) {
    return ::testing::AssertionFailure() << r.outcomes.size() << " outcomes reported";
  }
  if (r.outcomes[0] != want) {
    return ::testing::AssertionFailure() << "outcome " << static_cast<int>(r.outcomes[0]);
  }
  return ::testing::AssertionSuccess();
}

std::string take_output(smtp::ServerSession& s) {
  std::string out(s.output());
  s.consume_output(out.size());
  return out;
}

// One server connection: a session offering STARTTLS and its ServerTls.
struct Server {
  explicit Server(const TlsContext& ctx) : tls(observer) {
    config.starttls = true;
    session.start();
    take_output(session);  // the banner
    session.feed("EHLO c.example\r\nSTARTTLS\r\n");
    take_output(session);  // the EHLO reply and the plaintext 220 (sent before TLS)
    EXPECT_TRUE(session.wants_tls());
    tls.start(ctx);
  }
  // The ciphertext the server has to send, as if sent whole.
  std::string send_all() {
    std::string out;
    for (std::string_view ct = tls.next_send(); !ct.empty(); ct = tls.next_send()) {
      out.append(ct);
      EXPECT_TRUE(tls.sent(ct.size()));
    }
    return out;
  }
  // What the session has to say, through the stream, as ciphertext.
  std::string reply() {
    if (tls.accepts_output(session)) tls.write_output(session, session.output().size());
    return send_all();
  }

  smtp::ServerConfig config;
  smtp::ServerHandler handler;
  smtp::ServerSession session{config, handler};
  Recorded observer;
  ServerTls tls;
};

// Moves ciphertext between the client and the server until neither has any to send.
void shuttle(TlsStream& client, Server& server) {
  for (int guard = 0; guard < 100; ++guard) {
    const std::string to_server(client.next_send());
    if (!to_server.empty()) {
      client.sent(to_server.size());
      server.tls.receive(to_server, server.session);
    }
    const std::string to_client = server.send_all();
    if (!to_client.empty()) client.feed(to_client);
    if (to_server.empty() && to_client.empty()) return;
  }
  FAIL() << "TLS streams never went quiet";
}

class ServerTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new TestCerts;
    server_ctx_ = TlsContext::server(certs_->server_options()).release();
    client_ctx_ = TlsContext::client({}).release();
  }
  static void TearDownTestSuite() {
    delete client_ctx_;
    delete server_ctx_;
    delete certs_;
  }
  static TestCerts* certs_;
  static TlsContext* server_ctx_;
  static TlsContext* client_ctx_;
};
TestCerts* ServerTlsTest::certs_ = nullptr;
TlsContext* ServerTlsTest::server_ctx_ = nullptr;
TlsContext* ServerTlsTest::client_ctx_ = nullptr;

TEST_F(ServerTlsTest, HandshakeStartsTheSessionOverThenRepliesGoEncrypted) {
  Server s(*server_ctx_);
  EXPECT_TRUE(s.tls.active());
  EXPECT_TRUE(s.tls.handshaking());
  EXPECT_FALSE(s.tls.accepts_output(s.session)) << "nothing from the session mid-handshake";
  EXPECT_TRUE(s.tls.next_send().empty()) << "a server speaks second";
  EXPECT_FALSE(s.tls.sent(10)) << "no ciphertext was in flight";
  TlsStream client(*client_ctx_, nullptr, "localhost");
  client.start();
  shuttle(client, s);
  ASSERT_TRUE(client.established()) << client.error();
  EXPECT_TRUE(s.tls.up());
  EXPECT_FALSE(s.tls.handshaking());
  EXPECT_FALSE(s.tls.ended());
  EXPECT_TRUE(one_outcome(s.observer, TlsHandshakeOutcome::full));
  EXPECT_GT(s.observer.cpu_us_total, 0u) << "a full handshake signs: it costs the server CPU";
  ASSERT_EQ(s.observer.elapsed.size(), 1u);
  EXPECT_GT(s.observer.elapsed[0], 0u);
  // RFC 3207 4.2: the session starts over, waiting for EHLO again.
  EXPECT_FALSE(s.session.wants_tls());
  EXPECT_EQ(s.session.state(), smtp::SessionState::greeted);

  ASSERT_TRUE(client.write("EHLO c.example\r\n"));
  shuttle(client, s);
  EXPECT_EQ(s.tls.plaintext_bytes(), 16u) << "held until the session takes it";
  s.tls.feed_session(s.session);
  EXPECT_EQ(s.tls.plaintext_bytes(), 0u);
  ASSERT_TRUE(s.tls.accepts_output(s.session));
  const std::size_t reply_bytes = s.session.output().size();
  ASSERT_GT(reply_bytes, 0u);
  client.feed(s.reply());
  EXPECT_TRUE(s.session.output().empty()) << "the replies went into the stream";
  EXPECT_EQ(client.plaintext().size(), reply_bytes);
  EXPECT_EQ(client.plaintext().substr(0, 4), "250-");
  EXPECT_EQ(client.plaintext().find("STARTTLS"), std::string_view::npos)
      << "not offered twice (RFC 3207 4.2)";
  EXPECT_EQ(s.observer.outcomes.size(), 1u) << "counted once";
  EXPECT_FALSE(s.tls.handshake_timed_out()) << "done: a timeout now is the session's";
  EXPECT_EQ(s.observer.outcomes.size(), 1u);
}

TEST_F(ServerTlsTest, ResumedHandshakeIsReportedAsResumed) {
  TlsSessionCache cache;
  std::vector<TlsHandshakeOutcome> seen;
  for (int i = 0; i < 2; ++i) {
    Server s(*server_ctx_);
    TlsStream client(*client_ctx_, &cache);
    client.start();
    shuttle(client, s);
    ASSERT_TRUE(client.established()) << client.error();
    // TLS 1.3 tickets come after the handshake, with the first data (here the EHLO reply).
    client.write("EHLO c.example\r\n");
    shuttle(client, s);
    s.tls.feed_session(s.session);
    client.feed(s.reply());
    ASSERT_EQ(s.observer.outcomes.size(), 1u);
    seen.push_back(s.observer.outcomes[0]);
  }
  EXPECT_EQ(seen[0], TlsHandshakeOutcome::full);
  EXPECT_EQ(seen[1], TlsHandshakeOutcome::resumed);
}

TEST_F(ServerTlsTest, FailedHandshakeEndsTheStreamAndIsCountedOnce) {
  Server s(*server_ctx_);
  // Plaintext commands where a ClientHello belongs: the handshake fails.
  EXPECT_TRUE(s.tls.receive("RSET\r\nMAIL FROM:<evil@x>\r\n", s.session));
  EXPECT_TRUE(s.tls.ended());
  EXPECT_FALSE(s.tls.up());
  EXPECT_FALSE(s.tls.established());
  EXPECT_FALSE(s.tls.accepts_output(s.session));
  EXPECT_EQ(s.tls.plaintext_bytes(), 0u);
  EXPECT_TRUE(one_outcome(s.observer, TlsHandshakeOutcome::failed));
  EXPECT_TRUE(s.observer.elapsed.empty());
  // Fed again before the close (and then timed out): still one outcome.
  EXPECT_TRUE(s.tls.receive("QUIT\r\n", s.session));
  EXPECT_TRUE(s.tls.handshake_timed_out());
  EXPECT_EQ(s.observer.outcomes.size(), 1u);
  EXPECT_TRUE(s.session.wants_tls()) << "the session never started over";
}

TEST_F(ServerTlsTest, TimeoutDuringTheHandshakeCountsAFailureOnce) {
  Server s(*server_ctx_);
  TlsStream client(*client_ctx_);
  client.start();
  const std::string hello(client.next_send());
  s.tls.receive(hello, s.session);  // ClientHello in; the client never answers
  EXPECT_TRUE(s.tls.handshaking());
  EXPECT_TRUE(s.tls.handshake_timed_out());
  EXPECT_TRUE(s.tls.handshake_timed_out());
  EXPECT_TRUE(one_outcome(s.observer, TlsHandshakeOutcome::failed));
  EXPECT_GT(s.observer.cpu_us_total, 0u) << "the server's key share and signature";
}

TEST_F(ServerTlsTest, ClosedSessionDropsTheRestAndPeerCloseEndsTheStream) {
  Server s(*server_ctx_);
  TlsStream client(*client_ctx_);
  client.start();
  shuttle(client, s);
  ASSERT_TRUE(s.tls.up());
  client.write("QUIT\r\n");
  shuttle(client, s);
  s.tls.feed_session(s.session);
  ASSERT_TRUE(s.session.closed());
  client.write("NOOP\r\n");
  shuttle(client, s);
  EXPECT_EQ(s.tls.plaintext_bytes(), 6u);
  s.tls.feed_session(s.session);
  EXPECT_EQ(s.tls.plaintext_bytes(), 0u) << "nothing is read after QUIT";
  // Only the first n bytes of the session's output go into the stream.
  const std::string_view out = s.session.output();
  ASSERT_GT(out.size(), 4u);
  const std::string rest(out.substr(4));
  s.tls.write_output(s.session, 4);
  EXPECT_EQ(s.session.output(), rest);
  client.feed(s.send_all());
  EXPECT_EQ(client.plaintext(), "221 ");
  // The client's close_notify: the stream ended, a completed handshake is not re-counted.
  client.close_notify();
  const std::string bye(client.next_send());
  EXPECT_TRUE(s.tls.receive(bye, s.session));
  EXPECT_TRUE(s.tls.ended());
  EXPECT_FALSE(s.tls.established());
  EXPECT_EQ(s.observer.outcomes.size(), 1u);
}

}  // namespace
}  // namespace ringmta::io
