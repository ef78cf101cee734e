// ClientSession against a real ServerSession in memory (pipelined, lockstep, BDAT, per
// recipient outcomes, failures and recovery), and against scripted replies (HELO fall-back,
// 421, timeouts, malformed replies, no allocation per message).
#include "core/smtp/client_session.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "core/smtp/server_session.hpp"

namespace ringmta::smtp {
namespace {

class ServerSide : public ServerHandler {
 public:
  Decision on_rcpt(const Command& c) override {
    if (c.path.local_part.rfind("reject", 0) == 0) {
      return Decision::respond(Reply{550, {5, 1, 1}, "no such user"});
    }
    return Decision::accept();
  }
  Decision on_mail(const Command& c) override {
    if (c.path.local_part == "reject") return Decision::respond(Reply{550, {5, 7, 1}, "no"});
    return Decision::accept();
  }
  void on_body(std::string_view b) override { body.append(b); }
  Decision on_message(const MessageInfo& m) override {
    info = m;
    messages.push_back(body);
    body.clear();
    return Decision::accept();
  }
  void on_transaction_abort() override { body.clear(); }
  std::string body;
  std::vector<std::string> messages;
  MessageInfo info;
};

class ClientSide : public ClientHandler {
 public:
  void on_rcpt_reply(std::size_t i, const Reply& r) override {
    rcpt_codes.resize(std::max(rcpt_codes.size(), i + 1));
    rcpt_codes[i] = r.code;
  }
  void on_transaction_done(const TransactionResult& r) override {
    EXPECT_FALSE(closed) << "callback after close";
    results.push_back(r);
    data_texts.emplace_back(r.data.text);
  }
  void on_closed(const Reply& last, std::string_view why) override {
    closed = true;
    last_code = last.code;
    reason = why;
  }
  std::vector<std::uint16_t> rcpt_codes;
  std::vector<TransactionResult> results;
  std::vector<std::string> data_texts;
  bool closed = false;
  std::uint16_t last_code = 0;
  std::string reason;
};

// A client and a server session wired back to back; `reads` records each client flight.
struct Pair {
  explicit Pair(ServerConfig s = {}, ClientConfig c = {})
      : scfg(std::move(s)), ccfg(std::move(c)), server(scfg, sh), client(ccfg, ch) {
    server.start();
  }
  void pump(const std::string& body = {}) {
    for (int guard = 0; guard < 10000; ++guard) {
      std::string c2s(client.output());
      client.consume_output(c2s.size());
      if (client.body_due()) {
        c2s += body;
        client.body_sent();
        std::string more(client.output());  // the DATA terminator
        client.consume_output(more.size());
        c2s += more;
      }
      if (!c2s.empty()) {
        reads.push_back(c2s);
        to_server += c2s;
      }
      // The server may stop reading until its replies are taken (backpressure): what it
      // did not use is fed again on the next round.
      const std::size_t used = server.feed(to_server);
      to_server.erase(0, used);
      std::string s2c(server.output());
      server.consume_output(s2c.size());
      if (!s2c.empty()) client.feed(s2c);
      if (c2s.empty() && s2c.empty() && used == 0 && client.output().empty() &&
          !client.body_due()) {
        return;
      }
    }
    FAIL() << "no quiescence";
  }
  ServerConfig scfg;
  ClientConfig ccfg;
  ServerSide sh;
  ClientSide ch;
  ServerSession server;
  ClientSession client;
  std::vector<std::string> reads;
  std::string to_server;
};

const std::string kBody = "Subject: t\r\n\r\n..dotted\r\nhello\r\n";
const std::string kRawBody = "Subject: t\r\n\r\n.dotted\r\nhello\r\n";

TEST(ClientSession, PipelinedTransactionInOneFlight) {
  Pair p;
  p.pump();
  ASSERT_TRUE(p.client.ready());
  EXPECT_TRUE(p.client.capabilities().pipelining);
  const std::string_view rcpts[] = {"b@x.test", "c@x.test"};
  ASSERT_TRUE(p.client.send_message(Envelope{"a@c.example", rcpts}, kBody.size()));
  p.pump(kBody);
  ASSERT_EQ(p.ch.results.size(), 1u);
  EXPECT_TRUE(p.ch.results[0].delivered);
  EXPECT_EQ(p.ch.results[0].accepted, 2u);
  EXPECT_EQ(p.ch.results[0].data.code, 250);
  ASSERT_EQ(p.sh.messages.size(), 1u);
  EXPECT_EQ(p.sh.messages[0], kBody);
  // RFC 2920: MAIL, both RCPTs and DATA went out together.
  const std::string flight = "MAIL FROM:<a@c.example> SIZE=" + std::to_string(kBody.size()) +
                             "\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n";
  EXPECT_NE(std::find(p.reads.begin(), p.reads.end(), flight), p.reads.end());
  EXPECT_TRUE(p.client.ready());
}

TEST(ClientSession, LockstepWhenPipeliningIsNotOffered) {
  ServerConfig s;
  s.pipelining = false;
  Pair p(s);
  p.pump();
  const std::string_view rcpts[] = {"b@x.test", "c@x.test"};
  ASSERT_TRUE(p.client.send_message(Envelope{"a@c.example", rcpts}, kBody.size()));
  p.pump(kBody);
  ASSERT_EQ(p.ch.results.size(), 1u);
  EXPECT_TRUE(p.ch.results[0].delivered);
  for (const std::string& r : p.reads) {
    // One command per flight (the body flight carries body and terminator only).
    if (r.rfind("Subject", 0) == 0) continue;
    EXPECT_EQ(r.find("\r\n"), r.size() - 2) << r;
  }
}

TEST(ClientSession, BdatWhenOfferedAndAsked) {
  ClientConfig c;
  c.use_bdat = true;
  Pair p({}, c);
  p.pump();
  ASSERT_TRUE(p.client.will_use_bdat());
  const std::string_view rcpts[] = {"b@x.test"};
  ASSERT_TRUE(p.client.send_message(Envelope{"a@c.example", rcpts}, kRawBody.size()));
  p.pump(kRawBody);
  ASSERT_EQ(p.ch.results.size(), 1u);
  EXPECT_TRUE(p.ch.results[0].delivered);
  ASSERT_EQ(p.sh.messages.size(), 1u);
  EXPECT_EQ(p.sh.messages[0], kRawBody);
  EXPECT_EQ(p.sh.info.format, BodyFormat::raw);
  const std::string flight = "MAIL FROM:<a@c.example> SIZE=" + std::to_string(kRawBody.size()) +
                             "\r\nRCPT TO:<b@x.test>\r\nBDAT " +
                             std::to_string(kRawBody.size()) + " LAST\r\n" + kRawBody;
  EXPECT_NE(std::find(p.reads.begin(), p.reads.end(), flight), p.reads.end());
}

TEST(ClientSession, ResultPerRecipient) {
  Pair p;
  p.pump();
  const std::string_view rcpts[] = {"b@x.test", "reject-c@x.test", "d@x.test"};
  p.client.send_message(Envelope{"a@c.example", rcpts}, kBody.size());
  p.pump(kBody);
  ASSERT_EQ(p.ch.results.size(), 1u);
  EXPECT_EQ(p.ch.results[0].accepted, 2u);
  EXPECT_EQ(p.ch.results[0].rejected, 1u);
  EXPECT_TRUE(p.ch.results[0].delivered);
  EXPECT_EQ(p.ch.rcpt_codes, (std::vector<std::uint16_t>{250, 550, 250}));
}

class AllRejected : public ::testing::TestWithParam<bool> {};

TEST_P(AllRejected, ResetsAndTheNextMessageGoesThrough) {
  ServerConfig s;
  s.pipelining = GetParam();
  Pair p(s);
  p.pump();
  const std::string_view bad[] = {"reject-1@x.test", "reject-2@x.test"};
  p.client.send_message(Envelope{"a@c.example", bad}, kBody.size());
  p.pump(kBody);
  ASSERT_EQ(p.ch.results.size(), 1u);
  EXPECT_FALSE(p.ch.results[0].delivered);
  EXPECT_EQ(p.ch.results[0].rejected, 2u);
  EXPECT_TRUE(p.client.ready());
  EXPECT_EQ(p.reads.back(), "RSET\r\n");
  const std::string_view good[] = {"ok@x.test"};
  p.client.send_message(Envelope{"a@c.example", good}, kBody.size());
  p.pump(kBody);
  ASSERT_EQ(p.ch.results.size(), 2u);
  EXPECT_TRUE(p.ch.results[1].delivered);
  EXPECT_EQ(p.sh.messages.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Pipelining, AllRejected, ::testing::Bool());

TEST(ClientSession, RefusedSender) {
  Pair p;
  p.pump();
  const std::string_view rcpts[] = {"b@x.test"};
  p.client.send_message(Envelope{"reject@c.example", rcpts}, kBody.size());
  p.pump(kBody);
  ASSERT_EQ(p.ch.results.size(), 1u);
  EXPECT_FALSE(p.ch.results[0].delivered);
  EXPECT_EQ(p.ch.results[0].mail.code, 550);
  EXPECT_EQ(p.ch.results[0].mail.text, "no");
  EXPECT_TRUE(p.client.ready());
}

TEST(ClientSession, OverTheServersSizeIsRefusedWithoutSending) {
  ServerConfig s;
  s.max_message_size = 10;
  Pair p(s);
  p.pump();
  const std::size_t reads = p.reads.size();
  const std::string_view rcpts[] = {"b@x.test"};
  p.client.send_message(Envelope{"a@c.example", rcpts}, kBody.size());
  p.pump(kBody);
  ASSERT_EQ(p.ch.results.size(), 1u);
  EXPECT_EQ(p.ch.results[0].data.code, 552);
  EXPECT_EQ(p.reads.size(), reads);
}

TEST(ClientSession, ManyRecipientsRefillTheOutputAsItDrains) {
  ServerConfig s;
  s.max_recipients = 1000;
  Pair p(s);
  p.pump();
  std::vector<std::string> names;
  for (int i = 0; i < 1000; ++i) {
    names.push_back("recipient-number-" + std::to_string(i) + "@a-rather-long-domain.example");
  }
  std::vector<std::string_view> rcpts(names.begin(), names.end());
  ASSERT_TRUE(p.client.send_message(Envelope{"a@c.example", rcpts}, kBody.size()));
  p.pump(kBody);
  ASSERT_EQ(p.ch.results.size(), 1u);
  EXPECT_EQ(p.ch.results[0].accepted, 1000u);
  EXPECT_TRUE(p.ch.results[0].delivered);
  EXPECT_EQ(p.sh.info.recipients, 1000u);
}

TEST(ClientSession, QuitCloses) {
  Pair p;
  p.pump();
  p.client.quit();
  p.pump();
  EXPECT_TRUE(p.client.closed());
  EXPECT_EQ(p.ch.reason, "quit");
  EXPECT_EQ(p.ch.last_code, 221);
  EXPECT_TRUE(p.server.closed());
}

// Scripted server replies.
struct Scripted {
  Scripted() = default;
  explicit Scripted(const ClientConfig& config) : cfg(config) {}
  ClientConfig cfg;
  ClientSide h;
  ClientSession c{cfg, h};
  std::string sent() {
    std::string s(c.output());
    c.consume_output(s.size());
    return s;
  }
};

TEST(ClientSession, FallsBackToHeloWhenEhloIsRefused) {
  Scripted s;
  s.c.feed("220 old.example SMTP\r\n");
  EXPECT_EQ(s.sent(), "EHLO localhost\r\n");
  s.c.feed("502 5.5.2 what\r\n");
  EXPECT_EQ(s.sent(), "HELO localhost\r\n");
  s.c.feed("250 old.example\r\n");
  EXPECT_TRUE(s.c.ready());
  EXPECT_FALSE(s.c.capabilities().esmtp);
  const std::string_view rcpts[] = {"b@x.test"};
  s.c.send_message(Envelope{"a@c.example", rcpts}, 5);
  EXPECT_EQ(s.sent(), "MAIL FROM:<a@c.example>\r\n");  // lockstep, no SIZE
}

TEST(ClientSession, RefusedGreetingQuitsAndCloses) {
  Scripted s;
  s.c.feed("554 go away\r\n");
  EXPECT_TRUE(s.c.closed());
  EXPECT_EQ(s.sent(), "QUIT\r\n");
  EXPECT_EQ(s.h.last_code, 554);
}

TEST(ClientSession, A421MidTransactionFailsItAndCloses) {
  Scripted s;
  s.c.feed("220 x\r\n250-x\r\n250 PIPELINING\r\n");
  s.sent();
  const std::string_view rcpts[] = {"b@x.test"};
  s.c.send_message(Envelope{"a@c.example", rcpts}, 5);
  s.c.feed("250 ok\r\n421 4.3.2 shutting down\r\n");
  EXPECT_TRUE(s.c.closed());
  ASSERT_EQ(s.h.results.size(), 1u);
  EXPECT_FALSE(s.h.results[0].delivered);
  EXPECT_EQ(s.h.results[0].data.code, 421);
}

TEST(ClientSession, TimeoutPerStateAndOnTimeoutFails) {
  Scripted s;
  s.cfg.greeting_timeout_ms = 11;
  s.cfg.helo_timeout_ms = 22;
  s.cfg.mail_timeout_ms = 33;
  s.cfg.rcpt_timeout_ms = 44;
  s.cfg.data_init_timeout_ms = 55;
  s.cfg.data_xfer_timeout_ms = 66;
  s.cfg.data_done_timeout_ms = 77;
  EXPECT_EQ(s.c.timeout_ms(), 11u);
  s.c.feed("220 x\r\n");
  EXPECT_EQ(s.c.timeout_ms(), 22u);
  s.c.feed("250-x\r\n250 PIPELINING\r\n");
  EXPECT_EQ(s.c.timeout_ms(), 0u);  // idle: the caller's own policy
  const std::string_view rcpts[] = {"b@x.test"};
  s.c.send_message(Envelope{"a@c.example", rcpts}, 5);
  EXPECT_EQ(s.c.timeout_ms(), 33u);
  s.c.feed("250 ok\r\n");
  EXPECT_EQ(s.c.timeout_ms(), 44u);
  s.c.feed("250 ok\r\n");
  EXPECT_EQ(s.c.timeout_ms(), 55u);
  s.c.feed("354 go\r\n");
  EXPECT_TRUE(s.c.body_due());
  EXPECT_EQ(s.c.timeout_ms(), 66u);
  s.c.body_sent();
  EXPECT_EQ(s.c.timeout_ms(), 77u);
  s.c.on_timeout();
  EXPECT_TRUE(s.c.closed());
  ASSERT_EQ(s.h.results.size(), 1u);
  EXPECT_EQ(s.h.results[0].data.code, 451);
  EXPECT_EQ(s.h.reason, "timeout");
}

// Found by fuzzing: a reply out of step must never count as a delivery.
TEST(ClientSession, DataAnswered250InsteadOf354IsNotADelivery) {
  Scripted s;
  s.c.feed("220 mx\r\n250 mx\r\n");  // HELO-style server: lockstep
  const std::string_view rcpts[] = {"b@x.test"};
  s.c.send_message(Envelope{"a@c.example", rcpts}, 5);
  s.c.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.0.0 queued\r\n");
  ASSERT_EQ(s.h.results.size(), 1u);
  EXPECT_FALSE(s.h.results[0].delivered);
  EXPECT_FALSE(s.c.body_due());
}

TEST(ClientSession, PipelinedRefusedMailThen354IsNotADelivery) {
  Scripted s;
  s.c.feed("220 mx\r\n250-mx\r\n250 PIPELINING\r\n");
  const std::string_view rcpts[] = {"b@x.test"};
  s.c.send_message(Envelope{"a@c.example", rcpts}, 5);
  s.sent();
  s.c.feed("550 5.7.1 sender refused\r\n250 2.1.5 ok\r\n354 go ahead\r\n");
  EXPECT_FALSE(s.c.body_due());
  EXPECT_EQ(s.sent(), ".\r\n");  // RFC 2920: an empty message, not the body
  s.c.feed("250 2.0.0 queued\r\n");
  ASSERT_EQ(s.h.results.size(), 1u);
  EXPECT_FALSE(s.h.results[0].delivered);
}

TEST(ClientSession, BodySentAfterCloseDoesNothing) {
  Scripted s;
  s.c.feed("220 mx\r\n250-mx\r\n250 PIPELINING\r\n");
  const std::string_view rcpts[] = {"b@x.test"};
  s.c.send_message(Envelope{"a@c.example", rcpts}, 5);
  s.sent();
  s.c.feed("250 ok\r\n250 ok\r\n354 go\r\n221 bye\r\n");
  EXPECT_TRUE(s.c.closed());
  EXPECT_FALSE(s.c.body_due());
  s.c.body_sent();
  EXPECT_TRUE(s.c.closed());
  EXPECT_EQ(s.sent(), "");
}

TEST(ClientSession, MalformedReplyCloses) {
  Scripted s;
  s.c.feed("220 x\r\nhello there\r\n");
  EXPECT_TRUE(s.c.closed());
  EXPECT_EQ(s.h.reason, "protocol error: malformed reply");
}

TEST(ClientSession, NoAllocationPerMessageInSteadyState) {
  Scripted s;
  s.c.feed("220 x\r\n250-x\r\n250-PIPELINING\r\n250 SIZE 100000\r\n");
  s.c.consume_output(s.c.output().size());
  s.h.results.reserve(300);
  s.h.data_texts.reserve(300);
  s.h.rcpt_codes.reserve(8);
  const std::string_view rcpts[] = {"b@x.test", "c@x.test"};
  ringmta::testing::CountAllocations count;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(s.c.send_message(Envelope{"a@c.example", rcpts}, 100));
    s.c.consume_output(s.c.output().size());
    s.c.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
    ASSERT_TRUE(s.c.body_due());
    s.c.body_sent();
    s.c.consume_output(s.c.output().size());
    s.c.feed("250 2.0.0 queued\r\n");
    ASSERT_TRUE(s.c.ready());
  }
  // Reply texts here are short enough for std::string's inline storage, so the handler's
  // own bookkeeping does not allocate either: any allocation is the session's.
  EXPECT_EQ(count.count(), 0u);
  EXPECT_EQ(s.h.results.size(), 200u);
}


// ---------------------------------------------------------------- transactions in flight

// Starts a transaction and takes what the client writes for it (commands, then the body
// when it is due), as a caller that sends bodies in line with the commands does.
std::string start_one(ClientSession& c, const Envelope& env, const std::string& body) {
  EXPECT_TRUE(c.send_message(env, body.size()));
  std::string out(c.output());
  c.consume_output(out.size());
  if (c.body_due()) {
    out += body;
    c.body_sent();
  }
  return out;
}

ClientConfig in_flight(std::uint32_t n) {
  ClientConfig c;
  c.use_bdat = true;
  c.transactions_in_flight = n;
  return c;
}

TEST(ClientPipeline, TransactionsGoBehindEachOtherInOneFlight) {
  Pair p({}, in_flight(4));
  p.pump();
  ASSERT_TRUE(p.client.ready());
  EXPECT_FALSE(p.client.can_pipeline_message());  // nothing in flight: send_message as usual
  const std::string_view r1[] = {"b@x.test"};
  const std::string_view r2[] = {"c@x.test", "d@x.test"};
  const std::string_view r3[] = {"e@x.test"};
  std::string flight = start_one(p.client, Envelope{"a@c.example", r1}, kRawBody);
  ASSERT_TRUE(p.client.can_pipeline_message());
  flight += start_one(p.client, Envelope{"a@c.example", r2}, kRawBody + "2");
  ASSERT_TRUE(p.client.can_pipeline_message());
  flight += start_one(p.client, Envelope{"a@c.example", r3}, kRawBody + "3");
  EXPECT_EQ(p.client.transactions_in_flight(), 3u);
  const std::string size = std::to_string(kRawBody.size());
  const std::string size2 = std::to_string(kRawBody.size() + 1);
  EXPECT_EQ(flight,
            "MAIL FROM:<a@c.example> SIZE=" + size + "\r\nRCPT TO:<b@x.test>\r\nBDAT " + size +
                " LAST\r\n" + kRawBody + "RSET\r\nMAIL FROM:<a@c.example> SIZE=" + size2 +
                "\r\nRCPT TO:<c@x.test>\r\nRCPT TO:<d@x.test>\r\nBDAT " + size2 + " LAST\r\n" +
                kRawBody + "2" + "RSET\r\nMAIL FROM:<a@c.example> SIZE=" + size2 +
                "\r\nRCPT TO:<e@x.test>\r\nBDAT " + size2 + " LAST\r\n" + kRawBody + "3");
  p.to_server = flight;
  p.pump();
  ASSERT_EQ(p.ch.results.size(), 3u);
  for (const TransactionResult& r : p.ch.results) EXPECT_TRUE(r.delivered);
  EXPECT_EQ(p.ch.results[1].accepted, 2u);
  EXPECT_EQ(p.sh.messages, (std::vector<std::string>{kRawBody, kRawBody + "2", kRawBody + "3"}));
  EXPECT_TRUE(p.client.ready());
  EXPECT_EQ(p.client.transactions_in_flight(), 0u);
}

TEST(ClientPipeline, NoMoreThanTheLimitAndOnlyBehindAWholeBdatTransaction) {
  Pair p({}, in_flight(2));
  p.pump();
  const std::string_view r[] = {"b@x.test"};
  ASSERT_TRUE(p.client.send_message(Envelope{"a@c.example", r}, kRawBody.size()));
  EXPECT_TRUE(p.client.body_due());
  EXPECT_FALSE(p.client.can_pipeline_message());  // its body is not out yet
  EXPECT_FALSE(p.client.send_message(Envelope{"a@c.example", r}, kRawBody.size()));
  p.client.body_sent();
  ASSERT_TRUE(p.client.can_pipeline_message());
  Envelope data_only{"a@c.example", r};
  data_only.allow_bdat = false;
  EXPECT_FALSE(p.client.send_message(data_only, kBody.size()));  // DATA waits for its 354
  start_one(p.client, Envelope{"a@c.example", r}, kRawBody);
  EXPECT_FALSE(p.client.can_pipeline_message());  // two in flight: the limit
  EXPECT_FALSE(p.client.send_message(Envelope{"a@c.example", r}, kRawBody.size()));
}

TEST(ClientPipeline, OneAtATimeWithoutPipeliningOrBdat) {
  ServerConfig s;
  s.pipelining = false;
  Pair lockstep(s, in_flight(8));
  lockstep.pump();
  const std::string_view r[] = {"b@x.test"};
  ASSERT_TRUE(lockstep.client.send_message(Envelope{"a@c.example", r}, kRawBody.size()));
  EXPECT_FALSE(lockstep.client.can_pipeline_message());
  ClientConfig data = in_flight(8);
  data.use_bdat = false;
  Pair by_data({}, data);
  by_data.pump();
  ASSERT_TRUE(by_data.client.send_message(Envelope{"a@c.example", r}, kBody.size()));
  EXPECT_FALSE(by_data.client.can_pipeline_message());
}

TEST(ClientPipeline, AFailedTransactionInTheMiddleLeavesTheOthersAlone) {
  Pair p({}, in_flight(4));
  p.pump();
  const std::string_view ok[] = {"b@x.test"};
  const std::string_view bad[] = {"reject-1@x.test", "reject-2@x.test"};
  const std::string_view bad_sender_rcpt[] = {"c@x.test"};
  std::string flight = start_one(p.client, Envelope{"a@c.example", ok}, kRawBody);
  flight += start_one(p.client, Envelope{"a@c.example", bad}, kRawBody);  // MAIL ok, no RCPT
  flight += start_one(p.client, Envelope{"reject@c.example", bad_sender_rcpt}, kRawBody);
  flight += start_one(p.client, Envelope{"a@c.example", ok}, kRawBody + "4");
  p.to_server = flight;
  p.pump();
  ASSERT_EQ(p.ch.results.size(), 4u);
  EXPECT_TRUE(p.ch.results[0].delivered);
  EXPECT_FALSE(p.ch.results[1].delivered);
  EXPECT_EQ(p.ch.results[1].rejected, 2u);
  EXPECT_FALSE(p.ch.results[2].delivered);
  EXPECT_EQ(p.ch.results[2].mail.code, 550);
  EXPECT_TRUE(p.ch.results[3].delivered);  // its RSET cleared what the second left open
  EXPECT_EQ(p.sh.messages, (std::vector<std::string>{kRawBody, kRawBody + "4"}));
  EXPECT_TRUE(p.client.ready());
}

TEST(ClientPipeline, LostConnectionEndsEveryTransactionInOrder) {
  Pair p({}, in_flight(3));
  p.pump();
  const std::string_view r1[] = {"b@x.test"};
  const std::string_view r2[] = {"c@x.test"};
  start_one(p.client, Envelope{"a@c.example", r1}, kRawBody);
  start_one(p.client, Envelope{"a@c.example", r2}, kRawBody);
  start_one(p.client, Envelope{"a@c.example", r1}, kRawBody);
  p.client.on_connection_lost();
  ASSERT_EQ(p.ch.results.size(), 3u);
  for (const TransactionResult& r : p.ch.results) {
    EXPECT_FALSE(r.delivered);
    EXPECT_EQ(r.ending, Ending::closed);
    EXPECT_EQ(r.data.code, 451);
  }
  EXPECT_TRUE(p.ch.closed);
  EXPECT_EQ(p.client.transactions_in_flight(), 0u);
}

// A server offering PIPELINING and CHUNKING (and `more` capability lines) greets the client.
void greet(Scripted& s, const std::string& more) {
  s.c.feed("220 x\r\n250-x\r\n250-PIPELINING\r\n" + more + "250 CHUNKING\r\n");
  s.sent();
}

TEST(ClientPipeline, RepliesAndTimeoutsFollowTheOldestTransaction) {
  Scripted s(in_flight(4));
  greet(s, "");
  const std::string_view r1[] = {"b@x.test"};
  const std::string_view r2[] = {"c@x.test", "d@x.test"};
  start_one(s.c, Envelope{"a@c.example", r1}, "x\r\n");
  start_one(s.c, Envelope{"a@c.example", r2}, "y\r\n");
  EXPECT_EQ(s.c.timeout_ms(), s.cfg.mail_timeout_ms);
  s.c.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n");
  EXPECT_EQ(s.c.timeout_ms(), s.cfg.data_done_timeout_ms);
  s.c.feed("250 2.0.0 first\r\n");
  ASSERT_EQ(s.h.results.size(), 1u);
  EXPECT_TRUE(s.h.results[0].delivered);
  EXPECT_EQ(s.c.timeout_ms(), s.cfg.rset_timeout_ms);  // the second's RSET comes first
  s.c.feed("250 2.0.0 reset\r\n250 2.1.0 ok\r\n");
  s.h.rcpt_codes.clear();
  EXPECT_EQ(s.c.timeout_ms(), s.cfg.rcpt_timeout_ms);
  s.c.feed("250 2.1.5 ok\r\n550 5.1.1 no\r\n");
  EXPECT_EQ(s.h.rcpt_codes, (std::vector<std::uint16_t>{250, 550}));
  s.c.feed("250 2.0.0 second\r\n");
  ASSERT_EQ(s.h.results.size(), 2u);
  EXPECT_TRUE(s.h.results[1].delivered);
  EXPECT_EQ(s.h.results[1].accepted, 1u);
  EXPECT_EQ(s.h.data_texts[1], "second");
  EXPECT_TRUE(s.c.ready());
}

TEST(ClientPipeline, RefusedRsetEndsWhatIsInFlightAsATemporaryFailure) {
  Scripted s(in_flight(4));
  greet(s, "");
  const std::string_view r[] = {"b@x.test"};
  start_one(s.c, Envelope{"a@c.example", r}, "x\r\n");
  start_one(s.c, Envelope{"a@c.example", r}, "y\r\n");
  s.c.feed("250 ok\r\n250 ok\r\n250 first\r\n500 5.5.1 what RSET\r\n");
  ASSERT_EQ(s.h.results.size(), 2u);
  EXPECT_TRUE(s.h.results[0].delivered);
  EXPECT_FALSE(s.h.results[1].delivered);
  EXPECT_EQ(s.h.results[1].data.code, 451);  // not the 500: the message was never refused
  EXPECT_EQ(s.h.results[1].ending, Ending::protocol);
  EXPECT_TRUE(s.c.closed());
}

TEST(ClientPipeline, ALocalRefusalBehindOthersIsReportedAtOnce) {
  Scripted s(in_flight(4));
  greet(s, "250-SIZE 10\r\n");
  const std::string_view r[] = {"b@x.test"};
  start_one(s.c, Envelope{"a@c.example", r}, "x\r\n");
  ASSERT_TRUE(s.c.send_message(Envelope{"a@c.example", r}, 100));  // over SIZE 10
  ASSERT_EQ(s.h.results.size(), 1u);
  EXPECT_EQ(s.h.results[0].ending, Ending::refused_local);
  EXPECT_EQ(s.sent(), "");  // nothing written for it
  EXPECT_EQ(s.c.transactions_in_flight(), 1u);
  s.c.feed("250 ok\r\n250 ok\r\n250 first\r\n");
  ASSERT_EQ(s.h.results.size(), 2u);
  EXPECT_TRUE(s.h.results[1].delivered);
  EXPECT_TRUE(s.c.ready());
}

}  // namespace
}  // namespace ringmta::smtp
