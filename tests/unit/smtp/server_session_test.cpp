// ServerSession behaviour that transcripts do not show well: deferred decisions stop input,
// output backpressure, zero-copy body views, no allocation per message, banners, shutdown,
// timeouts and the session summary.
#include "core/smtp/server_session.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "alloc_counter.hpp"

namespace ringmta::smtp {
namespace {

class CollectingHandler : public ServerHandler {
 public:
  Decision on_mail(const Command&) override { return mail; }
  Decision on_rcpt(const Command&) override { return rcpt; }
  Decision on_data_start(BodyFormat) override { return data_start; }
  void on_body(std::string_view b) override {
    body_views.push_back(b);
    body.append(b);
  }
  Decision on_message(const MessageInfo& m) override {
    ++messages;
    last = m;
    return message;
  }
  void on_transaction_abort() override { ++aborts; }

  Decision mail, rcpt, data_start, message;
  std::vector<std::string_view> body_views;
  std::string body;
  MessageInfo last;
  int messages = 0;
  int aborts = 0;
};

std::string take_output(ServerSession& s) {
  std::string out(s.output());
  s.consume_output(out.size());
  return out;
}

TEST(ServerSession, DeferredDecisionStopsInputUntilResumed) {
  ServerConfig cfg;
  CollectingHandler h;
  h.rcpt = Decision::defer();
  ServerSession s(cfg, h);
  s.start();
  take_output(s);
  const std::string in =
      "EHLO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\n";
  const std::size_t used = s.feed(in);
  EXPECT_TRUE(s.waiting());
  const std::size_t after_first_rcpt = in.find("RCPT TO:<c");
  EXPECT_EQ(used, after_first_rcpt);
  EXPECT_EQ(s.feed(std::string_view(in).substr(used)), 0u);  // nothing while waiting
  s.resume(Reply{451, {4, 3, 0}, "try later"});
  EXPECT_FALSE(s.waiting());
  h.rcpt = Decision::accept();
  EXPECT_EQ(s.feed(std::string_view(in).substr(used)), in.size() - used);
  const std::string out = take_output(s);
  EXPECT_NE(out.find("451 4.3.0 try later\r\n250 2.1.5"), std::string::npos) << out;
  EXPECT_EQ(s.state(), SessionState::rcpt);
}

TEST(ServerSession, DeferredMessageReplyIsTheHandlersPromise) {
  ServerConfig cfg;
  CollectingHandler h;
  h.message = Decision::defer();
  ServerSession s(cfg, h);
  s.start();
  s.feed("EHLO c\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n");
  const std::string tail = "hi\r\n.\r\nQUIT\r\n";
  const std::size_t used = s.feed(tail);
  EXPECT_EQ(used, tail.find("QUIT"));  // QUIT waits behind the pending 250
  EXPECT_EQ(take_output(s).find("250 2.0.0 Message accepted"), std::string::npos);
  s.resume(Reply{250, {2, 0, 0}, "queued as X"});
  s.feed(std::string_view(tail).substr(used));
  const std::string out = take_output(s);
  EXPECT_NE(out.find("250 2.0.0 queued as X\r\n221 2.0.0 Bye\r\n"), std::string::npos) << out;
  EXPECT_TRUE(s.closed());
}

TEST(ServerSession, BodyIsHandedOnAsViewsOfTheInput) {
  ServerConfig cfg;
  CollectingHandler h;
  ServerSession s(cfg, h);
  s.start();
  s.feed("EHLO c\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n");
  const std::string read1 = "Subject: x\r\n\r\nline one\r\n";
  const std::string read2 = "line two\r\n.\r\n";
  s.feed(read1);
  s.feed(read2);
  ASSERT_EQ(h.messages, 1);
  EXPECT_EQ(h.body, read1 + "line two\r\n");
  ASSERT_EQ(h.body_views.size(), 2u);
  EXPECT_EQ(h.body_views[0].data(), read1.data());  // no copy
  EXPECT_EQ(h.body_views[1].data(), read2.data());
}

TEST(ServerSession, OutputBackpressureStopsInputInsteadOfGrowing) {
  ServerConfig cfg;
  CollectingHandler h;
  ServerSession s(cfg, h);
  s.start();
  take_output(s);
  std::string in;
  for (int i = 0; i < 10000; ++i) in += "NOOP\r\n";
  std::size_t pos = 0;
  std::size_t replies = 0;
  int rounds = 0;
  while (pos < in.size()) {
    const std::size_t used = s.feed(std::string_view(in).substr(pos));
    ASSERT_GT(used, 0u);
    pos += used;
    const std::string out = take_output(s);
    for (std::size_t at = out.find("250 2.0.0 Ok\r\n"); at != std::string::npos;
         at = out.find("250 2.0.0 Ok\r\n", at + 1)) {
      ++replies;
    }
    ++rounds;
  }
  EXPECT_EQ(replies, 10000u);
  EXPECT_GT(rounds, 1);  // the 16 KiB output filled up: the session paused input
}

TEST(ServerSession, NoAllocationPerMessageInSteadyState) {
  ServerConfig cfg;
  CollectingHandler h;
  ServerSession s(cfg, h);
  s.start();
  take_output(s);
  const std::string txn =
      "MAIL FROM:<a@c.example> SIZE=100\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n"
      "Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\n";
  std::string pipelined = "EHLO c.example\r\n";
  s.feed(pipelined);
  s.consume_output(s.output().size());
  h.body_views.reserve(1000);
  h.body.reserve(100000);
  ringmta::testing::CountAllocations count;
  for (int i = 0; i < 200; ++i) {
    // Cut each transaction in two reads so the framer's gathering path runs too.
    const std::size_t cut = 7 + static_cast<std::size_t>(i % 50);
    s.feed(std::string_view(txn).substr(0, cut));
    s.feed(std::string_view(txn).substr(cut));
    s.consume_output(s.output().size());
    if (h.body_views.size() > 900) h.body_views.clear();
    if (h.body.size() > 90000) h.body.clear();
  }
  EXPECT_EQ(count.count(), 0u);
  EXPECT_EQ(h.messages, 200);
}

TEST(ServerSession, RejectingBannerServesOnlyQuit) {
  ServerConfig cfg;
  CollectingHandler h;
  ServerSession s(cfg, h);
  s.start(Reply{554, {}, "mx.example no service for you"});
  s.feed("EHLO c\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n");
  EXPECT_EQ(take_output(s),
            "554 mx.example no service for you\r\n503 5.5.1 Error: no SMTP service here\r\n"
            "503 5.5.1 Error: no SMTP service here\r\n221 2.0.0 Bye\r\n");
  EXPECT_TRUE(s.closed());
}

TEST(ServerSession, ShutdownSays421AndClosesMidTransaction) {
  ServerConfig cfg;
  CollectingHandler h;
  ServerSession s(cfg, h);
  s.start();
  s.feed("EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
  take_output(s);
  s.shutdown(Reply{421, {4, 3, 2}, "shutting down"});
  EXPECT_EQ(take_output(s), "421 4.3.2 shutting down\r\n");
  EXPECT_TRUE(s.closed());
  EXPECT_EQ(h.aborts, 1);
  EXPECT_EQ(s.feed("RSET\r\n"), 6u);  // read and dropped
  EXPECT_EQ(s.output(), "");
}

TEST(ServerSession, HandlerMay421AnyCommand) {
  ServerConfig cfg;
  CollectingHandler h;
  h.mail = Decision::respond(Reply{421, {4, 7, 0}, "too many connections"});
  ServerSession s(cfg, h);
  s.start();
  s.feed("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRSET\r\n");
  const std::string out = take_output(s);
  EXPECT_NE(out.find("421 4.7.0 too many connections\r\n"), std::string::npos);
  EXPECT_EQ(out.find("250 2.0.0 Ok"), std::string::npos);
  EXPECT_TRUE(s.closed());
}

TEST(ServerSession, RefusedDataStartRefusesDataAndDropsABdatChunk) {
  ServerConfig cfg;
  CollectingHandler h;
  h.data_start = Decision::respond(Reply{452, {4, 3, 1}, "spool full"});
  ServerSession s(cfg, h);
  s.start();
  s.feed("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<b@x.test>\r\n");
  take_output(s);
  s.feed("DATA\r\n");
  EXPECT_EQ(take_output(s), "452 4.3.1 spool full\r\n");
  s.feed("BDAT 6 LAST\r\nRSET\r\nNOOP\r\n");
  EXPECT_EQ(take_output(s), "452 4.3.1 spool full\r\n250 2.0.0 Ok\r\n");  // "RSET\r\n" was data
  EXPECT_EQ(h.messages, 0);
}

// Found by fuzzing: after the handler refuses a BDAT transaction's first chunk, later
// chunks must not be taken as the message (RFC 3030 3: the transaction has failed).
TEST(ServerSession, RefusedFirstBdatChunkEndsTheTransaction) {
  ServerConfig cfg;
  CollectingHandler h;
  h.data_start = Decision::respond(Reply{550, {5, 7, 1}, "refused"});
  ServerSession s(cfg, h);
  s.start();
  s.feed("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<b@x.test>\r\n");
  take_output(s);
  s.feed("BDAT 3\r\nabcBDAT 3 LAST\r\ndefQUIT\r\n");
  EXPECT_EQ(take_output(s),
            "550 5.7.1 refused\r\n503 5.5.1 Error: need MAIL command\r\n221 2.0.0 Bye\r\n");
  EXPECT_EQ(h.messages, 0);
  EXPECT_EQ(h.body, "");
}

// Found by fuzzing: a BDAT message whose last byte is a CR ends in a bare CR.
TEST(ServerSession, BdatMessageEndingInCrIsRefused) {
  ServerConfig cfg;
  CollectingHandler h;
  ServerSession s(cfg, h);
  s.start();
  s.feed("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<b@x.test>\r\n");
  take_output(s);
  s.feed("BDAT 4\r\nab\r\nBDAT 2 LAST\r\nc\r");
  EXPECT_EQ(take_output(s),
            "250 2.0.0 4 octets received\r\n"
            "554 5.6.0 Error: bare CR or LF in message data (RFC 5321 2.3.8)\r\n");
  EXPECT_EQ(h.messages, 0);
}

TEST(ServerSession, BadBdatSizeClosesTheSession) {
  ServerConfig cfg;
  CollectingHandler h;
  ServerSession s(cfg, h);
  s.start();
  s.feed("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<b@x.test>\r\n");
  take_output(s);
  s.feed("BDAT 99999999999999999999999 LAST\r\nQUIT\r\n");
  EXPECT_EQ(take_output(s), "501 5.5.4 Error: BDAT chunk size unreadable; closing\r\n");
  EXPECT_TRUE(s.closed());
}

TEST(ServerSession, TimeoutFollowsTheState) {
  ServerConfig cfg;
  cfg.command_timeout_ms = 1000;
  cfg.data_timeout_ms = 2000;
  CollectingHandler h;
  ServerSession s(cfg, h);
  s.start();
  EXPECT_EQ(s.timeout_ms(), 1000u);
  s.feed("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n");
  EXPECT_EQ(s.state(), SessionState::data);
  EXPECT_EQ(s.timeout_ms(), 2000u);
}

TEST(ServerSession, ExtensionsCanBeTurnedOff) {
  ServerConfig cfg;
  cfg.pipelining = cfg.chunking = cfg.dsn = cfg.smtputf8 = false;
  cfg.max_message_size = 0;
  CollectingHandler h;
  ServerSession s(cfg, h);
  s.start();
  take_output(s);
  s.feed("EHLO c\r\n");
  EXPECT_EQ(take_output(s), "250-localhost\r\n250-SIZE\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n");
  s.feed("MAIL FROM:<a@b.example> SMTPUTF8\r\nBDAT 3\r\nabc");
  EXPECT_EQ(take_output(s),
            "555 5.5.4 Error: MAIL/RCPT parameter not supported\r\n"
            "502 5.5.1 Error: command not implemented\r\n");
}

TEST(ServerSession, NoEnhancedCodesWhenTurnedOff) {
  ServerConfig cfg;
  cfg.enhanced_status_codes = false;
  CollectingHandler h;
  ServerSession s(cfg, h);
  s.start();
  take_output(s);
  s.feed("NOOP\r\nXYZ\r\n");
  EXPECT_EQ(take_output(s), "250 Ok\r\n500 Error: command not recognized\r\n");
}

TEST(ServerSession, SummaryCountsPerVerb) {
  ServerConfig cfg;
  CollectingHandler h;
  ServerSession s(cfg, h);
  s.start();
  s.feed("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\n"
         "DATA\r\nx\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(s.summary(), "ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6");
}

}  // namespace
}  // namespace ringmta::smtp

namespace ringmta::testing {
namespace {
TEST(AllocCounter, CountsOperatorNew) {
  CountAllocations count;
  auto p = std::make_unique<int>(7);
  std::vector<int> v(10);
  EXPECT_EQ(count.count(), 2u);  // the counter itself works, so a 0 elsewhere means something
}
}  // namespace
}  // namespace ringmta::testing
