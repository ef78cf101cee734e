// ClientSession's STARTTLS (RFC 3207) and AUTH (RFC 4954) steps against scripted replies and
// against a real ServerSession in memory (the TLS handshake itself is the caller's: here it
// is a no-op on both sides, tls_started()).
#include <gtest/gtest.h>

#include <string>

#include "core/smtp/base64.hpp"
#include "core/smtp/client_session.hpp"
#include "core/smtp/server_session.hpp"

namespace ringmta::smtp {
namespace {

class Recorder : public ClientHandler {
 public:
  void on_ehlo(const Reply&) override { ++ehlos; }
  void on_closed(const Reply& last, std::string_view why) override {
    closed = true;
    last_code = last.code;
    reason = why;
  }
  int ehlos = 0;
  bool closed = false;
  std::uint16_t last_code = 0;
  std::string reason;
};

struct Scripted {
  explicit Scripted(TlsPolicy p = TlsPolicy::opportunistic) { cfg.starttls = p; }
  ClientConfig cfg;
  Recorder h;
  ClientSession c{cfg, h};
  std::string sent() {
    std::string s(c.output());
    c.consume_output(s.size());
    return s;
  }
};

constexpr std::string_view kEhloTls = "250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
constexpr std::string_view kEhloPlain = "250-mx.example\r\n250 PIPELINING\r\n";

TEST(ClientStarttls, UsedWhenOfferedThenEhloAgain) {
  Scripted s;
  s.c.feed("220 mx.example ESMTP\r\n");
  EXPECT_EQ(s.sent(), "EHLO localhost\r\n");
  s.c.feed(kEhloTls);
  EXPECT_EQ(s.sent(), "STARTTLS\r\n");
  EXPECT_EQ(s.c.state(), ClientState::starttls);
  EXPECT_EQ(s.c.timeout_ms(), s.cfg.starttls_timeout_ms);
  s.c.feed("220 2.0.0 Ready to start TLS\r\n");
  EXPECT_TRUE(s.c.wants_tls());
  EXPECT_FALSE(s.c.tls_active());
  EXPECT_EQ(s.sent(), "");
  s.c.tls_started();
  EXPECT_TRUE(s.c.tls_active());
  EXPECT_EQ(s.sent(), "EHLO localhost\r\n");
  EXPECT_FALSE(s.c.capabilities().pipelining) << "pre-TLS capabilities forgotten";
  // Offered again after TLS (a broken server): not used twice.
  s.c.feed(kEhloTls);
  EXPECT_TRUE(s.c.ready());
  EXPECT_EQ(s.sent(), "");
  EXPECT_EQ(s.h.ehlos, 2);
}

TEST(ClientStarttls, RepliesInjectedBehindThe220AreDropped) {
  // CVE-2011-0411 from the server side: a man in the middle appends plaintext replies
  // after the 220; they must not answer the EHLO sent over TLS.
  Scripted s;
  s.c.feed("220 mx.example ESMTP\r\n");
  s.c.feed(kEhloTls);
  s.sent();
  const std::string_view in = "220 go ahead\r\n250-evil\r\n250 AUTH PLAIN\r\n250 ok";
  EXPECT_EQ(s.c.feed(in), in.size());
  ASSERT_TRUE(s.c.wants_tls());
  s.c.tls_started();
  EXPECT_EQ(s.sent(), "EHLO localhost\r\n");
  EXPECT_EQ(s.c.state(), ClientState::ehlo) << "an injected reply answered the EHLO";
  s.c.feed(kEhloPlain);
  EXPECT_TRUE(s.c.ready());
  EXPECT_TRUE(s.c.capabilities().pipelining);
  EXPECT_FALSE(s.c.capabilities().auth_plain);
}

TEST(ClientStarttls, NotOfferedOpportunisticGoesOnInPlaintext) {
  Scripted s;
  s.c.feed("220 x\r\n");
  s.sent();
  s.c.feed(kEhloPlain);
  EXPECT_TRUE(s.c.ready());
  EXPECT_FALSE(s.c.tls_active());
  EXPECT_EQ(s.sent(), "");
}

TEST(ClientStarttls, NoneNeverUsesIt) {
  Scripted s(TlsPolicy::none);
  s.c.feed("220 x\r\n");
  s.sent();
  s.c.feed(kEhloTls);
  EXPECT_TRUE(s.c.ready());
  EXPECT_EQ(s.sent(), "");
}

TEST(ClientStarttls, RequiredButNotOfferedQuits) {
  Scripted s(TlsPolicy::required);
  s.c.feed("220 x\r\n");
  s.sent();
  s.c.feed(kEhloPlain);
  EXPECT_TRUE(s.c.closed());
  EXPECT_EQ(s.sent(), "QUIT\r\n");
  EXPECT_EQ(s.h.last_code, 454);
  EXPECT_EQ(s.h.reason, "STARTTLS not offered");
}

TEST(ClientStarttls, RefusedOpportunisticGoesOnRequiredQuits) {
  {
    Scripted s;
    s.c.feed("220 x\r\n");
    s.sent();
    s.c.feed(kEhloTls);
    s.sent();
    s.c.feed("454 4.7.0 TLS not available\r\n");
    EXPECT_TRUE(s.c.ready());
    EXPECT_TRUE(s.c.capabilities().pipelining);
  }
  {
    Scripted s(TlsPolicy::required);
    s.c.feed("220 x\r\n");
    s.sent();
    s.c.feed(kEhloTls);
    s.sent();
    s.c.feed("454 4.7.0 TLS not available\r\n");
    EXPECT_TRUE(s.c.closed());
    EXPECT_EQ(s.sent(), "QUIT\r\n");
    EXPECT_EQ(s.h.last_code, 454);
  }
}

TEST(ClientStarttls, HeloServerWithRequiredQuits) {
  Scripted s(TlsPolicy::required);
  s.c.feed("220 x\r\n");
  s.sent();
  s.c.feed("500 what\r\n");
  EXPECT_EQ(s.sent(), "HELO localhost\r\n");
  s.c.feed("250 x\r\n");
  EXPECT_TRUE(s.c.closed());
}

TEST(ClientAuth, PlainAfterTls) {
  Scripted s;
  s.cfg.auth_user = "user";
  s.cfg.auth_password = "secret";
  s.c.feed("220 x\r\n");
  s.sent();
  s.c.feed("250-x\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n");
  EXPECT_EQ(s.sent(), "STARTTLS\r\n") << "no AUTH before TLS";
  s.c.feed("220 go\r\n");
  s.c.tls_started();
  s.sent();
  s.c.feed("250-x\r\n250 AUTH PLAIN LOGIN\r\n");
  // RFC 4616: "\0user\0secret"
  EXPECT_EQ(s.sent(), "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
  EXPECT_EQ(s.c.state(), ClientState::auth);
  s.c.feed("235 2.7.0 Authentication successful\r\n");
  EXPECT_TRUE(s.c.ready());
  EXPECT_TRUE(s.c.authenticated());
}

TEST(ClientAuth, LoginWhenPlainIsNotOffered) {
  Scripted s(TlsPolicy::none);
  s.cfg.auth_user = "user";
  s.cfg.auth_password = "secret";
  s.c.feed("220 x\r\n");
  s.sent();
  s.c.feed("250-x\r\n250 AUTH LOGIN\r\n");
  EXPECT_EQ(s.sent(), "AUTH LOGIN\r\n");
  s.c.feed("334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(s.sent(), "dXNlcg==\r\n");
  s.c.feed("334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(s.sent(), "c2VjcmV0\r\n");
  s.c.feed("235 2.7.0 ok\r\n");
  EXPECT_TRUE(s.c.authenticated());
}

TEST(ClientAuth, RefusedOrNotOfferedCloses) {
  {
    Scripted s(TlsPolicy::none);
    s.cfg.auth_user = "user";
    s.c.feed("220 x\r\n");
    s.sent();
    s.c.feed("250-x\r\n250 AUTH PLAIN\r\n");
    s.sent();
    s.c.feed("535 5.7.8 Authentication credentials invalid\r\n");
    EXPECT_TRUE(s.c.closed());
    EXPECT_EQ(s.sent(), "QUIT\r\n");
    EXPECT_EQ(s.h.last_code, 535);
  }
  {
    Scripted s(TlsPolicy::none);
    s.cfg.auth_user = "user";
    s.c.feed("220 x\r\n");
    s.sent();
    s.c.feed(kEhloPlain);
    EXPECT_TRUE(s.c.closed());
    EXPECT_EQ(s.h.reason, "AUTH not offered");
  }
}

// Against the real server session: STARTTLS, the reset, EHLO again, then a message.
class Sink : public ServerHandler {
 public:
  void on_body(std::string_view b) override { body.append(b); }
  std::string body;
};

TEST(ClientStarttls, AgainstServerSessionWithTlsRequired) {
  ServerConfig scfg;
  scfg.starttls = true;
  scfg.require_tls = true;
  Sink sh;
  ServerSession server(scfg, sh);
  Scripted s(TlsPolicy::required);
  server.start();
  bool handshook = false;
  for (int i = 0; i < 100; ++i) {
    std::string s2c(server.output());
    server.consume_output(s2c.size());
    if (!s2c.empty()) s.c.feed(s2c);
    if (s.c.wants_tls() && server.wants_tls()) {
      server.tls_started();
      s.c.tls_started();
      handshook = true;
    }
    const std::string c2s = s.sent();
    if (!c2s.empty()) server.feed(c2s);
    if (s.c.ready() && server.output().empty()) break;
  }
  ASSERT_TRUE(handshook);
  ASSERT_TRUE(s.c.ready());
  EXPECT_TRUE(server.tls_active());
  const std::string_view rcpts[] = {"b@x.test"};
  const std::string body = "Subject: t\r\n\r\nhi\r\n";
  ASSERT_TRUE(s.c.send_message(Envelope{"a@c.example", rcpts}, body.size()));
  for (int i = 0; i < 100 && !sh.body.size(); ++i) {
    std::string c2s = s.sent();
    if (s.c.body_due()) {
      c2s += body;
      s.c.body_sent();
      c2s += s.sent();
    }
    if (!c2s.empty()) server.feed(c2s);
    std::string s2c(server.output());
    server.consume_output(s2c.size());
    if (!s2c.empty()) s.c.feed(s2c);
  }
  EXPECT_EQ(sh.body, body);
  EXPECT_NE(server.summary().find("starttls=1"), std::string::npos) << server.summary();
}

TEST(Base64, RoundTripsAndRefusesNonCanonical) {
  const std::string cases[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar",
                               std::string("\0u\0p", 4)};
  const char* want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy", "AHUAcA=="};
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    char enc[64];
    const std::size_t n = base64_encode(cases[i], enc);
    EXPECT_EQ(std::string(enc, n), want[i]);
    EXPECT_EQ(n, base64_size(cases[i].size()));
    char dec[64];
    const long m = base64_decode(std::string_view(enc, n), dec);
    ASSERT_GE(m, 0);
    EXPECT_EQ(std::string(dec, static_cast<std::size_t>(m)), cases[i]);
  }
  char dec[64];
  EXPECT_EQ(base64_decode("Zg=", dec), -1);
  EXPECT_EQ(base64_decode("Zh==", dec), -1);  // bits under the padding
  EXPECT_EQ(base64_decode("Z!==", dec), -1);
  EXPECT_EQ(base64_decode("Zg==Zg==", dec), -1);  // padding only at the end
}

}  // namespace
}  // namespace ringmta::smtp
