// TlsStream client and server wired back to back in memory: handshakes (TLS 1.2 and 1.3),
// data both ways, resumption through the client's TlsSessionCache, verification failures,
// the send-buffer contract (a view stays put until sent), the handshake's CPU time and bad
// certificate files.
#include "core/io/tls.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "test_certs.hpp"

namespace ringmta::io {
namespace {

class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certs_ = new TestCerts; }
  static void TearDownTestSuite() { delete certs_; }
  static std::string file(const char* f) { return certs_->file(f); }
  static TlsServerOptions server_options() { return certs_->server_options(); }
  static TestCerts* certs_;
};
TestCerts* Tls::certs_ = nullptr;

// Moves ciphertext both ways until neither side has anything to send.
void shuttle(TlsStream& a, TlsStream& b) {
  for (int guard = 0; guard < 100; ++guard) {
    bool moved = false;
    for (auto [from, to] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
      const std::string_view v = from->next_send();
      if (v.empty()) continue;
      const std::string copy(v);
      from->sent(copy.size());
      to->feed(copy);
      moved = true;
    }
    if (!moved) return;
  }
  FAIL() << "TLS streams never went quiet";
}

TEST_F(Tls, HandshakeAndDataBothWaysTls13) {
  auto sctx = TlsContext::server(server_options());
  auto cctx = TlsContext::client({});
  TlsStream server(*sctx);
  TlsStream client(*cctx, nullptr, "localhost");
  EXPECT_EQ(server.handshake_cpu_ns(), 0u);
  EXPECT_EQ(client.handshake_cpu_ns(), 0u);
  client.start();
  shuttle(client, server);
  ASSERT_TRUE(client.established()) << client.error();
  ASSERT_TRUE(server.established()) << server.error();
  EXPECT_STREQ(client.info().version, "TLSv1.3");
  EXPECT_FALSE(client.info().resumed);
  // Handshake CPU time, only what is certain: a full handshake (key exchange, signature, its
  // check) costs both sides some, and the data below adds none. How much, and whether a
  // resumed handshake costs less, depends on the machine's load: not asserted.
  const std::uint64_t client_cpu = client.handshake_cpu_ns();
  const std::uint64_t server_cpu = server.handshake_cpu_ns();
  EXPECT_GT(client_cpu, 0u);
  EXPECT_GT(server_cpu, 0u);
  EXPECT_EQ(client.handshake_cpu_us(), (client_cpu + 500) / 1000);
  ASSERT_TRUE(client.write("EHLO x\r\n"));
  shuttle(client, server);
  EXPECT_EQ(server.plaintext(), "EHLO x\r\n");
  server.consume_plaintext(4);
  EXPECT_EQ(server.plaintext(), " x\r\n");
  const std::string big(100'000, 'x');
  ASSERT_TRUE(server.write(big));
  shuttle(client, server);
  EXPECT_EQ(client.plaintext(), big);
  server.close_notify();
  shuttle(client, server);
  EXPECT_EQ(client.status(), TlsStatus::closed);
  EXPECT_EQ(client.handshake_cpu_ns(), client_cpu);
  EXPECT_EQ(server.handshake_cpu_ns(), server_cpu);
}

TEST_F(Tls, ResumptionWithTheSessionCache) {
  for (const TlsVersion v : {TlsVersion::tls1_2, TlsVersion::tls1_3}) {
    TlsServerOptions so = server_options();
    so.max_version = v;
    auto sctx = TlsContext::server(so);
    auto cctx = TlsContext::client({});
    TlsSessionCache cache;
    for (int i = 0; i < 3; ++i) {
      TlsStream server(*sctx);
      TlsStream client(*cctx, &cache);
      client.start();
      shuttle(client, server);
      ASSERT_TRUE(client.established()) << client.error();
      // TLS 1.3 tickets come after the handshake, with the first application data.
      server.write("220 x\r\n");
      shuttle(client, server);
      EXPECT_EQ(client.info().resumed, i > 0) << tls_version_name(v) << " connection " << i;
      EXPECT_EQ(server.info().resumed, i > 0);
    }
    EXPECT_GE(cache.stored(), 1u);
  }
}

TEST_F(Tls, NoResumptionWhenOff) {
  auto sctx = TlsContext::server(server_options());
  TlsClientOptions co;
  co.resumption = false;
  auto cctx = TlsContext::client(co);
  TlsSessionCache cache;
  for (int i = 0; i < 2; ++i) {
    TlsStream server(*sctx);
    TlsStream client(*cctx, &cache);
    client.start();
    shuttle(client, server);
    server.write("220 x\r\n");
    shuttle(client, server);
    ASSERT_TRUE(client.established());
    EXPECT_FALSE(client.info().resumed);
  }
  EXPECT_EQ(cache.stored(), 0u);
}

TEST_F(Tls, VerificationAgainstTheRightAndTheWrongAnchor) {
  auto sctx = TlsContext::server(server_options());
  {
    TlsClientOptions co;
    co.verify = true;
    co.ca_file = file("server.pem");  // self-signed: its own anchor
    auto cctx = TlsContext::client(co);
    TlsStream server(*sctx);
    TlsStream client(*cctx, nullptr, "localhost");
    client.start();
    shuttle(client, server);
    EXPECT_TRUE(client.established()) << client.error();
  }
  {
    TlsClientOptions co;
    co.verify = true;
    co.ca_file = file("other.pem");
    auto cctx = TlsContext::client(co);
    TlsStream server(*sctx);
    TlsStream client(*cctx, nullptr, "localhost");
    client.start();
    shuttle(client, server);
    EXPECT_EQ(client.status(), TlsStatus::failed);
    EXPECT_NE(client.error().find("certificate verify failed"), std::string::npos)
        << client.error();
    EXPECT_EQ(server.status(), TlsStatus::failed) << "the alert reached the server";
    // The client made its key share (start) before the check failed: CPU time, final now.
    const std::uint64_t cpu = client.handshake_cpu_ns();
    EXPECT_GT(cpu, 0u);
    client.feed("more bytes");
    EXPECT_EQ(client.handshake_cpu_ns(), cpu);
  }
}

TEST_F(Tls, VersionsAreEnforced) {
  TlsServerOptions so = server_options();
  so.min_version = TlsVersion::tls1_3;
  auto sctx = TlsContext::server(so);
  TlsClientOptions co;
  co.max_version = TlsVersion::tls1_2;
  auto cctx = TlsContext::client(co);
  TlsStream server(*sctx);
  TlsStream client(*cctx);
  client.start();
  shuttle(client, server);
  EXPECT_EQ(server.status(), TlsStatus::failed);
  EXPECT_EQ(client.status(), TlsStatus::failed);
}

TEST_F(Tls, GarbageFailsTheHandshake) {
  // Plaintext commands where a ClientHello belongs (an injection that reached the TLS
  // layer): the handshake fails, nothing is decrypted.
  auto sctx = TlsContext::server(server_options());
  TlsStream server(*sctx);
  EXPECT_EQ(server.feed("RSET\r\nMAIL FROM:<evil@x>\r\n"), TlsStatus::failed);
  EXPECT_TRUE(server.plaintext().empty());
  EXPECT_FALSE(server.error().empty());
}

TEST_F(Tls, SendViewStaysPutUntilSent) {
  auto sctx = TlsContext::server(server_options());
  auto cctx = TlsContext::client({});
  TlsStream server(*sctx);
  TlsStream client(*cctx);
  client.start();
  shuttle(client, server);
  ASSERT_TRUE(client.established());
  client.write("one\r\n");
  const std::string_view v = client.next_send();
  const std::string before(v);
  EXPECT_TRUE(client.send_in_flight());
  EXPECT_TRUE(client.next_send().empty()) << "one send at a time";
  for (int i = 0; i < 100; ++i) client.write(std::string(1000, 'y'));  // queues behind
  EXPECT_EQ(std::string(v), before) << "the in-flight bytes moved or changed";
  // Partial send: the rest comes first, then what queued meanwhile, in order.
  client.sent(3);
  std::string all = before.substr(0, 3);
  while (true) {
    const std::string_view n = client.next_send();
    if (n.empty()) break;
    all += n;
    client.sent(n.size());
  }
  EXPECT_EQ(client.pending_output(), 0u);
  server.feed(all);
  EXPECT_EQ(server.plaintext().size(), 5u + 100'000u);
  EXPECT_EQ(server.plaintext().substr(0, 5), "one\r\n");
}

TEST_F(Tls, BadFilesAreRefusedWithTheReason) {
  TlsServerOptions so = server_options();
  so.key_file = file("other.key");
  try {
    TlsContext::server(so);
    FAIL() << "mismatched key accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("key values mismatch"), std::string::npos) << e.what();
  }
  so = server_options();
  so.cert_file = file("missing.pem");
  EXPECT_THROW(TlsContext::server(so), std::runtime_error);
  TlsVersion v;
  EXPECT_TRUE(parse_tls_version("1.3", v));
  EXPECT_EQ(v, TlsVersion::tls1_3);
  EXPECT_FALSE(parse_tls_version("1.1", v));
}

}  // namespace
}  // namespace ringmta::io
