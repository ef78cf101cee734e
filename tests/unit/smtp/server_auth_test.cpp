// ServerSession AUTH (RFC 4954): PLAIN and LOGIN, the TLS requirement, cancel, bad base64,
// the failure limit, the handler's verdicts, wiping of the password, MAIL's AUTH= parameter.
// Whole exchanges as seen on the wire are also in tests/golden/smtp/auth_*.in.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "core/smtp/base64.hpp"
#include "core/smtp/server_session.hpp"

namespace ringmta::smtp {
namespace {

class AuthHandler : public ServerHandler {
 public:
  AuthVerdict on_auth(const AuthCredentials& c) override {
    ++calls;
    mechanism = c.mechanism;
    user = std::string(c.user);
    password = std::string(c.password);
    password_at = c.password.data();
    password_len = c.password.size();
    if (!verdicts.empty()) {
      const AuthVerdict v = verdicts.front();
      verdicts.erase(verdicts.begin());
      return v;
    }
    return c.user == "alice" && c.password == "s3cret" ? AuthVerdict::accept
                                                       : AuthVerdict::reject;
  }
  void on_state_change(SessionState, SessionState to) override { states.push_back(to); }

  int calls = 0;
  AuthMechanism mechanism = AuthMechanism::plain;
  std::string user, password;
  const char* password_at = nullptr;
  std::size_t password_len = 0;
  std::vector<AuthVerdict> verdicts;
  std::vector<SessionState> states;
};

std::string b64(std::string_view s) {
  std::string out(base64_size(s.size()), '\0');
  base64_encode(s, out.data());
  return out;
}

std::string plain(std::string_view authzid, std::string_view user, std::string_view pass) {
  std::string m(authzid);
  m += '\0';
  m += user;
  m += '\0';
  m += pass;
  return b64(m);
}

struct Fixture {
  explicit Fixture(ServerConfig c) : cfg(std::move(c)), s(cfg, h) {
    s.start();
    out();
  }
  std::string out() {
    std::string o(s.output());
    s.consume_output(o.size());
    return o;
  }
  // Feeds whole lines and returns the replies they produced.
  std::string send(const std::string& in) {
    EXPECT_EQ(s.feed(in), in.size());
    return out();
  }
  ServerConfig cfg;
  AuthHandler h;
  ServerSession s;
};

ServerConfig auth_config(bool requires_tls = false) {
  ServerConfig c;
  c.auth = true;
  c.auth_requires_tls = requires_tls;
  c.starttls = true;
  return c;
}

TEST(ServerAuth, OfferedOnlyAfterTlsByDefault) {
  ServerConfig c;
  c.auth = true;
  c.starttls = true;
  Fixture f(c);
  EXPECT_EQ(f.send("EHLO c.example\r\n").find("AUTH"), std::string::npos);
  EXPECT_EQ(f.send("AUTH PLAIN " + plain("", "alice", "s3cret") + "\r\n"),
            "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
  EXPECT_EQ(f.h.calls, 0);
  EXPECT_EQ(f.send("MAIL FROM:<a@c.example> AUTH=<>\r\n"),
            "555 5.5.4 Error: MAIL/RCPT parameter not supported\r\n");
  f.send("STARTTLS\r\n");
  f.s.tls_started();
  const std::string ehlo = f.send("EHLO c.example\r\n");
  EXPECT_NE(ehlo.find("\r\n250 AUTH PLAIN LOGIN\r\n"), std::string::npos) << ehlo;
  EXPECT_EQ(f.send("AUTH PLAIN " + plain("", "alice", "s3cret") + "\r\n"),
            "235 2.7.0 Authentication successful\r\n");
  EXPECT_TRUE(f.s.authenticated());
  EXPECT_EQ(f.s.auth_user(), "alice");
}

TEST(ServerAuth, NotConfiguredKeepsTheOldAnswers) {
  Fixture f(ServerConfig{});
  EXPECT_EQ(f.send("EHLO c.example\r\n").find("AUTH"), std::string::npos);
  EXPECT_EQ(f.send("AUTH PLAIN " + plain("", "alice", "s3cret") + "\r\n"),
            "503 5.5.1 Error: authentication not enabled\r\n");
  EXPECT_EQ(f.send("MAIL FROM:<a@c.example> AUTH=<>\r\n"),
            "555 5.5.4 Error: MAIL/RCPT parameter not supported\r\n");
  EXPECT_EQ(f.h.calls, 0);
  EXPECT_FALSE(f.s.authenticated());
}

TEST(ServerAuth, PlainWithInitialResponse) {
  Fixture f(auth_config());
  EXPECT_NE(f.send("EHLO c.example\r\n").find("250 AUTH PLAIN LOGIN\r\n"), std::string::npos);
  EXPECT_EQ(f.send("AUTH PLAIN " + plain("", "alice", "s3cret") + "\r\n"),
            "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(f.h.calls, 1);
  EXPECT_EQ(f.h.mechanism, AuthMechanism::plain);
  EXPECT_EQ(f.h.user, "alice");
  EXPECT_EQ(f.h.password, "s3cret");
  EXPECT_TRUE(f.s.authenticated());
  EXPECT_EQ(f.s.auth_user(), "alice");
  EXPECT_EQ(f.s.state(), SessionState::ready);
  // RFC 4954 4: no second AUTH.
  EXPECT_EQ(f.send("AUTH LOGIN\r\n"), "503 5.5.1 Error: already authenticated\r\n");
  // RFC 4954 5: AUTH= is accepted (and ignored) once AUTH is offered.
  EXPECT_EQ(f.send("MAIL FROM:<a@c.example> AUTH=alice@c.example\r\n"),
            "250 2.1.0 Sender ok\r\n");
  EXPECT_EQ(f.s.summary(), "ehlo=1 auth=1/2 mail=1 commands=3/4");
}

TEST(ServerAuth, PlainWithChallengeAndMatchingAuthzid) {
  Fixture f(auth_config());
  f.send("EHLO c.example\r\n");
  EXPECT_EQ(f.send("AUTH plain\r\n"), "334 \r\n");
  EXPECT_EQ(f.s.state(), SessionState::auth);
  EXPECT_EQ(f.send(plain("alice", "alice", "s3cret") + "\r\n"),
            "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(f.s.auth_user(), "alice");
  const std::vector<SessionState> states = {SessionState::ready, SessionState::auth,
                                            SessionState::ready};
  EXPECT_EQ(f.h.states, states);
}

TEST(ServerAuth, PlainWithAnotherAuthzidIsRefusedWithoutAsking) {
  Fixture f(auth_config());
  f.send("EHLO c.example\r\n");
  EXPECT_EQ(f.send("AUTH PLAIN " + plain("bob", "alice", "s3cret") + "\r\n"),
            "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(f.h.calls, 0);
  EXPECT_EQ(f.s.auth_failures(), 1u);
}

TEST(ServerAuth, MalformedPlainMessagesFailAsCredentials) {
  Fixture f(auth_config());
  f.send("EHLO c.example\r\n");
  // No NULs; empty (an empty line, and "=" as the initial response); empty user; empty
  // password; a 256-octet user.
  EXPECT_EQ(f.send("AUTH PLAIN " + b64("alices3cret") + "\r\n"),
            "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(f.send("AUTH PLAIN =\r\n"), "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(f.send("AUTH PLAIN\r\n\r\n"),
            "334 \r\n421 4.7.0 Too many failed authentication attempts; closing\r\n");
  EXPECT_TRUE(f.s.closed());
  EXPECT_EQ(f.h.calls, 0);

  Fixture g(auth_config());
  g.cfg.max_auth_failures = 0;  // no limit
  g.send("EHLO c.example\r\n");
  EXPECT_EQ(g.send("AUTH PLAIN " + plain("", "", "s3cret") + "\r\n").substr(0, 3), "535");
  EXPECT_EQ(g.send("AUTH PLAIN " + plain("", "alice", "") + "\r\n").substr(0, 3), "535");
  EXPECT_EQ(g.send("AUTH PLAIN " + plain("", std::string(256, 'a'), "s3cret") + "\r\n")
                .substr(0, 3),
            "535");
  EXPECT_EQ(g.h.calls, 0);
  // 255 octets each is the most RFC 4616 2 asks a server to take: it reaches the handler.
  EXPECT_EQ(g.send("AUTH PLAIN " + plain("", std::string(255, 'a'), std::string(255, 'p')) +
                   "\r\n")
                .substr(0, 3),
            "535");
  EXPECT_EQ(g.h.calls, 1);
  EXPECT_EQ(g.h.user.size(), 255u);
  EXPECT_EQ(g.h.password.size(), 255u);
  EXPECT_EQ(g.s.auth_failures(), 4u);
  EXPECT_FALSE(g.s.closed());
}

TEST(ServerAuth, Login) {
  Fixture f(auth_config());
  f.send("EHLO c.example\r\n");
  EXPECT_EQ(f.send("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");  // "Username:"
  EXPECT_EQ(f.send(b64("alice") + "\r\n"), "334 UGFzc3dvcmQ6\r\n");  // "Password:"
  EXPECT_EQ(f.h.calls, 0);
  EXPECT_EQ(f.send(b64("s3cret") + "\r\n"), "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(f.h.mechanism, AuthMechanism::login);
  EXPECT_EQ(f.h.user, "alice");
  EXPECT_EQ(f.s.auth_user(), "alice");
}

TEST(ServerAuth, LoginWithInitialResponseAndAWrongPassword) {
  Fixture f(auth_config());
  f.send("EHLO c.example\r\n");
  EXPECT_EQ(f.send("AUTH LOGIN " + b64("alice") + "\r\n"), "334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(f.send(b64("wrong") + "\r\n"), "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_FALSE(f.s.authenticated());
  EXPECT_EQ(f.s.auth_user(), "");
  EXPECT_EQ(f.h.password, "wrong");
  // A NUL in a LOGIN password is refused before the handler.
  EXPECT_EQ(f.send("AUTH LOGIN " + b64("alice") + "\r\n" + b64(std::string("s3\0cret", 7)) +
                   "\r\n"),
            "334 UGFzc3dvcmQ6\r\n535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(f.h.calls, 1);
}

TEST(ServerAuth, StarCancelsAndIsNotAFailure) {
  Fixture f(auth_config());
  f.send("EHLO c.example\r\n");
  EXPECT_EQ(f.send("AUTH LOGIN\r\n*\r\n"), "334 VXNlcm5hbWU6\r\n501 5.0.0 Authentication cancelled\r\n");
  EXPECT_EQ(f.send("AUTH LOGIN\r\n" + b64("alice") + "\r\n*\r\n"),
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n501 5.0.0 Authentication cancelled\r\n");
  EXPECT_EQ(f.send("AUTH PLAIN\r\n*\r\n"), "334 \r\n501 5.0.0 Authentication cancelled\r\n");
  EXPECT_EQ(f.s.auth_failures(), 0u);
  EXPECT_EQ(f.s.state(), SessionState::ready);
  EXPECT_EQ(f.h.calls, 0);
  EXPECT_EQ(f.send("NOOP\r\n"), "250 2.0.0 Ok\r\n");  // commands again
}

TEST(ServerAuth, BadBase64) {
  Fixture f(auth_config());
  f.send("EHLO c.example\r\n");
  EXPECT_EQ(f.send("AUTH PLAIN\r\nnot base64!\r\n"),
            "334 \r\n501 5.5.2 Error: invalid base64 in AUTH exchange\r\n");
  // Not canonical: bits under the padding (RFC 4648 3.5).
  EXPECT_EQ(f.send("AUTH LOGIN\r\nQR==\r\n"),
            "334 VXNlcm5hbWU6\r\n501 5.5.2 Error: invalid base64 in AUTH exchange\r\n");
  EXPECT_EQ(f.send("AUTH PLAIN abc\r\n"), "501 5.5.2 Error: invalid base64 in AUTH exchange\r\n");
  EXPECT_EQ(f.send("AUTH PLAIN QR==\r\n"), "501 5.5.2 Error: invalid base64 in AUTH exchange\r\n");
  EXPECT_EQ(f.send("AUTH\r\n"), "501 5.5.4 Error: syntax error in arguments\r\n");
  EXPECT_EQ(f.s.auth_failures(), 0u);
  EXPECT_EQ(f.h.calls, 0);
}

TEST(ServerAuth, UnknownMechanismAndWrongTimes) {
  Fixture f(auth_config());
  EXPECT_EQ(f.send("AUTH PLAIN\r\n"), "503 5.5.1 Error: send HELO/EHLO first\r\n");
  EXPECT_EQ(f.send("HELO c.example\r\n"), "250 localhost\r\n");
  EXPECT_EQ(f.send("AUTH PLAIN\r\n"), "502 5.5.1 Error: command not implemented\r\n");
  f.send("EHLO c.example\r\n");
  EXPECT_EQ(f.send("AUTH CRAM-MD5\r\n"), "504 5.5.4 Unrecognized authentication type\r\n");
  f.send("MAIL FROM:<a@c.example>\r\n");
  EXPECT_EQ(f.send("AUTH PLAIN\r\n"), "503 5.5.1 Error: AUTH not allowed during a mail transaction\r\n");
  EXPECT_EQ(f.h.calls, 0);
}

TEST(ServerAuth, ThirdFailureCloses) {
  Fixture f(auth_config());
  f.send("EHLO c.example\r\n");
  const std::string wrong = "AUTH PLAIN " + plain("", "alice", "wrong") + "\r\n";
  EXPECT_EQ(f.send(wrong), "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(f.send(wrong), "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(f.s.feed(wrong + "NOOP\r\n"), wrong.size() + 6);  // nothing is read after 421
  EXPECT_EQ(f.out(), "421 4.7.0 Too many failed authentication attempts; closing\r\n");
  EXPECT_TRUE(f.s.closed());
  EXPECT_EQ(f.h.calls, 3);
  EXPECT_EQ(f.s.summary(), "ehlo=1 auth=0/3 commands=1/4");
}

TEST(ServerAuth, HandlerVerdicts) {
  ServerConfig c = auth_config();
  c.max_auth_failures = 2;
  Fixture f(c);
  f.send("EHLO c.example\r\n");
  const std::string right = "AUTH PLAIN " + plain("", "alice", "s3cret") + "\r\n";
  f.h.verdicts = {AuthVerdict::temporary_failure, AuthVerdict::reject,
                  AuthVerdict::temporary_failure};
  EXPECT_EQ(f.send(right), "454 4.7.0 Temporary authentication failure\r\n");
  EXPECT_EQ(f.send(right), "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(f.send(right), "454 4.7.0 Temporary authentication failure\r\n");
  EXPECT_EQ(f.s.auth_failures(), 1u);  // temporary failures do not count
  EXPECT_EQ(f.send(right), "235 2.7.0 Authentication successful\r\n");

  Fixture g(c);
  g.send("EHLO c.example\r\n");
  g.h.verdicts = {AuthVerdict::too_many_failures};
  EXPECT_EQ(g.send(right), "421 4.7.0 Too many failed authentication attempts; closing\r\n");
  EXPECT_TRUE(g.s.closed());
  EXPECT_FALSE(g.s.authenticated());
}

TEST(ServerAuth, PasswordIsWipedAfterTheCall) {
  Fixture f(auth_config());
  f.send("EHLO c.example\r\n");
  // Cut inside the response so that the line is gathered in the framer's own buffer.
  const std::string line = plain("", "alice", "s3cret") + "\r\n";
  f.send("AUTH PLAIN\r\n");
  EXPECT_EQ(f.s.feed(std::string_view(line).substr(0, 5)), 5u);
  EXPECT_EQ(f.s.feed(std::string_view(line).substr(5)), line.size() - 5);
  EXPECT_EQ(f.out(), "235 2.7.0 Authentication successful\r\n");
  ASSERT_EQ(f.h.password_len, 6u);
  // The view pointed into the session (it is alive): the bytes are gone.
  EXPECT_EQ(std::string(f.h.password_at, f.h.password_len), std::string(6, '\0'));
}

TEST(ServerAuth, LongResponseLine) {
  Fixture f(auth_config());
  f.send("EHLO c.example\r\n");
  EXPECT_EQ(f.send("AUTH PLAIN\r\n" + std::string(2000, 'A') + "\r\nNOOP\r\n"),
            "334 \r\n500 5.5.6 Authentication exchange line is too long\r\n250 2.0.0 Ok\r\n");
  // 1024 octets with CRLF is the longest response taken.
  const std::string most = std::string(1018, 'A') + "==";
  EXPECT_EQ(f.send("AUTH PLAIN\r\n" + most + "\r\n").substr(0, 10), "334 \r\n535 ");
}

TEST(ServerAuth, StarttlsForgetsAuthentication) {
  Fixture f(auth_config());
  f.send("EHLO c.example\r\nAUTH PLAIN " + plain("", "alice", "s3cret") + "\r\n");
  EXPECT_TRUE(f.s.authenticated());
  EXPECT_EQ(f.send("STARTTLS\r\n"), "220 2.0.0 Ready to start TLS\r\n");
  f.s.tls_started();
  EXPECT_FALSE(f.s.authenticated());
  EXPECT_EQ(f.s.auth_user(), "");
}

TEST(ServerAuth, ShutdownDuringTheExchange) {
  Fixture f(auth_config());
  f.send("EHLO c.example\r\nAUTH LOGIN\r\n" + b64("alice") + "\r\n");
  EXPECT_EQ(f.s.state(), SessionState::auth);
  f.s.shutdown(Reply{421, {4, 3, 2}, "Shutting down"});
  EXPECT_EQ(f.out(), "421 4.3.2 Shutting down\r\n");
  EXPECT_TRUE(f.s.closed());
  EXPECT_EQ(f.s.summary(), "ehlo=1 auth=0/1 commands=1/2");
}

TEST(ServerAuth, WithoutEnhancedCodes) {
  ServerConfig c = auth_config();
  c.enhanced_status_codes = false;
  Fixture f(c);
  f.send("EHLO c.example\r\n");
  EXPECT_EQ(f.send("AUTH LOGIN\r\n" + b64("alice") + "\r\n" + b64("s3cret") + "\r\n"),
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 Authentication successful\r\n");
}

TEST(ServerAuth, ExchangeDoesNotAllocate) {
  std::string in;
  for (int i = 0; i < 2; ++i) in += "AUTH PLAIN " + plain("", "alice", "wrong") + "\r\n";
  in += "AUTH PLAIN\r\n*\r\n";
  in += "AUTH LOGIN\r\n" + b64("alice") + "\r\n" + b64("s3cret") + "\r\n";
  ServerConfig cfg = auth_config();
  // A handler that keeps nothing, so that only the session could allocate.
  struct NoCopy : ServerHandler {
    AuthVerdict on_auth(const AuthCredentials& c) override {
      return c.password == "s3cret" ? AuthVerdict::accept : AuthVerdict::reject;
    }
  } h;
  ServerSession s(cfg, h);
  s.start();
  s.feed("EHLO c.example\r\n");
  s.consume_output(s.output().size());
  testing::CountAllocations allocs;
  EXPECT_EQ(s.feed(in), in.size());
  EXPECT_EQ(allocs.count(), 0u);
  EXPECT_TRUE(s.authenticated());
}

}  // namespace
}  // namespace ringmta::smtp
