// Behaviour table of ringmta-sink: parsing of durations, delays and replies, failure rates,
// delay distributions, domain overrides, magic recipients, greylisting, rate and connection
// limits (also under two threads), and no allocation on the decision path.
#include "sinks/behaviour.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// Counts operator new on this thread, to prove decide() does not allocate. The whole test
// binary goes through it; malloc underneath, so the sanitizers still see every block.
namespace {
thread_local std::size_t g_allocations = 0;
}  // namespace

// noinline: inlined into a caller, GCC 12 pairs free() with operator new and warns
// (-Wmismatched-new-delete) although both sides are ours.
__attribute__((noinline)) void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void* operator new[](std::size_t n) {
  return operator new(n);
}
__attribute__((noinline)) void operator delete(void* p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete[](void* p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}

namespace ringmta::sink {
namespace {

using Kind = Action::Kind;
using Cause = Action::Cause;

Rule reply_rule(Phase phase, double p, std::uint16_t code, smtp::EnhancedCode e, std::string text) {
  Rule r;
  r.phase = phase;
  r.probability = p;
  r.action = Kind::reply;
  r.reply = ReplySpec{code, e, std::move(text)};
  return r;
}

Context ctx(std::string_view rcpt = "", std::uint64_t now_us = 0) {
  return Context{"127.0.0.1", "sender@loadgen.test", rcpt, now_us};
}

// ---- Rng ---------------------------------------------------------------------------------

TEST(Rng, SameSeedSameSequenceOtherSeedOther) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const auto x = a.next();
    EXPECT_EQ(x, b.next());
    EXPECT_NE(x, c.next());
  }
}

TEST(Rng, Uniform01IsInRangeWithMeanOneHalf) {
  Rng r(7);
  double sum = 0;
  for (int i = 0; i < 100'000; ++i) {
    const double u = r.uniform01();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 100'000, 0.5, 0.005);
}

// ---- Durations and delays ------------------------------------------------------------------

TEST(Duration, ParsesUnitsAndFractionsExactly) {
  const std::pair<const char*, std::uint64_t> cases[] = {{"0", 0},
                                                         {"0s", 0},
                                                         {"250us", 250},
                                                         {"5ms", 5'000},
                                                         {"1.5s", 1'500'000},
                                                         {"2m", 120'000'000},
                                                         {"1h", 3'600'000'000},
                                                         {"0.25ms", 250},
                                                         {"1.000001s", 1'000'001}};
  for (const auto& [text, us] : cases) {
    std::uint64_t v = 99;
    std::string why;
    EXPECT_TRUE(parse_duration(text, v, &why)) << text << ": " << why;
    EXPECT_EQ(v, us) << text;
  }
}

TEST(Duration, ErrorsSayWhatIsWrong) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty duration (write e.g. 5ms, 250us, 1.5s)"},
      {"5", "'5' has no unit (us, ms, s, m or h)"},
      {"5xs", "'5xs': unknown unit 'xs' (us, ms, s, m or h)"},
      {"5 ms", "'5 ms': unknown unit ' ms' (us, ms, s, m or h)"},
      {"abc", "'abc' is not a duration (a number and a unit: 250us, 5ms, 1.5s, 2m, 1h)"},
      {".5s", "'.5s' is not a duration (a number and a unit: 250us, 5ms, 1.5s, 2m, 1h)"},
      {"5.ms", "'5.ms' is not a duration (a number and a unit: 250us, 5ms, 1.5s, 2m, 1h)"},
      {"-5ms", "'-5ms': a duration cannot be negative"},
      {"0.5us", "'0.5us' is finer than 1us"},
      {"9999999999999h", "'9999999999999h' is too large"},
      {"9999999999h", "'9999999999h' is too large"},
  };
  for (const auto& [text, msg] : cases) {
    std::uint64_t v = 0;
    std::string why;
    EXPECT_FALSE(parse_duration(text, v, &why)) << text;
    EXPECT_EQ(why, msg) << text;
  }
}

TEST(Duration, FormatIsShortestExactAndParsesBack) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(250), "250us");
  EXPECT_EQ(format_duration(1'500'000), "1500ms");
  EXPECT_EQ(format_duration(300'000'000), "5m");
  for (std::uint64_t us : {1ull, 999ull, 1000ull, 1001ull, 60'000'000ull, 7'200'000'000ull}) {
    std::uint64_t back = 0;
    ASSERT_TRUE(parse_duration(format_duration(us), back, nullptr));
    EXPECT_EQ(back, us);
  }
}

TEST(Delay, ParsesTheThreeForms) {
  DelaySpec d;
  std::string why;
  ASSERT_TRUE(parse_delay("5ms", d, &why)) << why;
  EXPECT_EQ(d, (DelaySpec{DelaySpec::Kind::fixed, 5'000, 0, 0}));
  ASSERT_TRUE(parse_delay("0ms", d, &why));
  EXPECT_EQ(d.kind, DelaySpec::Kind::none);
  ASSERT_TRUE(parse_delay("uniform:1ms-10ms", d, &why)) << why;
  EXPECT_EQ(d, (DelaySpec{DelaySpec::Kind::uniform, 1'000, 10'000, 0}));
  ASSERT_TRUE(parse_delay("lognormal:5ms,0.5", d, &why)) << why;
  EXPECT_EQ(d, (DelaySpec{DelaySpec::Kind::lognormal, 5'000, 0, 0.5}));
  for (const char* text : {"0s", "250us", "uniform:0s-1s", "lognormal:1500ms,0.25", "1h"}) {
    ASSERT_TRUE(parse_delay(text, d, &why)) << text;
    EXPECT_EQ(format_delay(d), text);
  }
}

TEST(Delay, ErrorsSayWhatIsWrong) {
  const std::pair<const char*, const char*> cases[] = {
      {"5", "'5' has no unit (us, ms, s, m or h)"},
      {"2h", "'2h' is longer than the 1h maximum for a delay"},
      {"uniform:5ms", "'uniform:5ms': write uniform:LOW-HIGH, e.g. uniform:1ms-10ms"},
      {"uniform:10ms-1ms", "'uniform:10ms-1ms': the low bound is above the high bound"},
      {"uniform:1ms-xx",
       "in 'uniform:1ms-xx': 'xx' is not a duration (a number and a unit: 250us, 5ms, 1.5s, "
       "2m, 1h)"},
      {"uniform:1ms-2h", "in 'uniform:1ms-2h': '2h' is longer than the 1h maximum for a delay"},
      {"lognormal:5ms", "'lognormal:5ms': write lognormal:MEDIAN,SIGMA, e.g. lognormal:5ms,0.5"},
      {"lognormal:0ms,0.5", "'lognormal:0ms,0.5': the median must be above 0"},
      {"lognormal:5ms,-1", "'lognormal:5ms,-1': sigma must be a number from 0 to 10, got '-1'"},
      {"lognormal:5ms,x", "'lognormal:5ms,x': sigma must be a number from 0 to 10, got 'x'"},
      {"lognormal:5ms,", "'lognormal:5ms,': sigma must be a number from 0 to 10, got ''"},
      {"normal:5ms,1",
       "'normal:5ms,1': unknown distribution 'normal' (uniform:LOW-HIGH or "
       "lognormal:MEDIAN,SIGMA)"},
  };
  for (const auto& [text, msg] : cases) {
    DelaySpec d;
    std::string why;
    EXPECT_FALSE(parse_delay(text, d, &why)) << text;
    EXPECT_EQ(why, msg) << text;
  }
}

// ---- Replies -------------------------------------------------------------------------------

TEST(ReplySpec, ParsesCodeEnhancedCodeAndText) {
  ReplySpec r;
  std::string why;
  ASSERT_TRUE(parse_reply_spec("451 4.3.0 Try again later", r, &why)) << why;
  EXPECT_EQ(r, (ReplySpec{451, {4, 3, 0}, "Try again later"}));
  ASSERT_TRUE(parse_reply_spec("550 No such user", r, &why)) << why;
  EXPECT_EQ(r, (ReplySpec{550, {}, "No such user"}));
  ASSERT_TRUE(parse_reply_spec("452 4.2.2", r, &why)) << why;
  EXPECT_EQ(r.enhanced, (smtp::EnhancedCode{4, 2, 2}));
  EXPECT_EQ(r.text, "Requested action not taken, try again later");
  ASSERT_TRUE(parse_reply_spec("554 5.123.456 x", r, &why)) << why;
  EXPECT_EQ(r.enhanced, (smtp::EnhancedCode{5, 123, 456}));
  EXPECT_EQ(format_reply_spec(ReplySpec{451, {4, 3, 0}, "Try again later"}),
            "451 4.3.0 Try again later");
  EXPECT_EQ(format_reply_spec(ReplySpec{550, {}, "No"}), "550 No");
}

TEST(ReplySpec, ErrorsSayWhatIsWrong) {
  const std::pair<std::string, std::string> cases[] = {
      {"45 x", "reply '45 x' must start with a 3-digit code, e.g. \"451 4.3.0 Try again later\""},
      {"", "reply '' must start with a 3-digit code, e.g. \"451 4.3.0 Try again later\""},
      {"4511 x",
       "reply '4511 x' must start with a 3-digit code, e.g. \"451 4.3.0 Try again later\""},
      {"461 x",
       "reply code 461 is not an SMTP reply code (RFC 5321 4.2: 2yz-5yz with y from 0 to 5)"},
      {"651 x",
       "reply code 651 is not an SMTP reply code (RFC 5321 4.2: 2yz-5yz with y from 0 to 5)"},
      {"451 5.3.0 x",
       "enhanced status code 5.3.0 does not match reply code 451 (RFC 3463 2: its class is "
       "the code's first digit)"},
      {"451 4.3 x",
       "enhanced status code '4.3' is malformed (RFC 3463 2: class.subject.detail, e.g. 4.3.0)"},
      {"451 4.3.0.1 x",
       "enhanced status code '4.3.0.1' is malformed (RFC 3463 2: class.subject.detail, e.g. "
       "4.3.0)"},
      {"451 4.3333.0 x",
       "enhanced status code '4.3333.0' is malformed (RFC 3463 2: class.subject.detail, e.g. "
       "4.3.0)"},
      {"451 4.3.0 a\tb", "reply text 'a\tb' has a control character"},
      // "451 4.3.0 " is 10 octets and CRLF 2: 500 are left for the text.
      {std::string("451 4.3.0 ").append(501, 'x'),
       "reply text is 501 octets; at most 500 fit a reply line (RFC 5321 4.5.3.1.5)"},
      {std::string("451 ").append(507, 'x'),
       "reply text is 507 octets; at most 506 fit a reply line (RFC 5321 4.5.3.1.5)"},
  };
  for (const auto& [text, msg] : cases) {
    ReplySpec r;
    std::string why;
    EXPECT_FALSE(parse_reply_spec(text, r, &why)) << text;
    EXPECT_EQ(why, msg) << text;
  }
  ReplySpec r;
  EXPECT_TRUE(parse_reply_spec(std::string("451 4.3.0 ").append(500, 'x'), r, nullptr));
  EXPECT_TRUE(parse_reply_spec(std::string("451 ").append(506, 'x'), r, nullptr));
}

// ---- Rules ---------------------------------------------------------------------------------

TEST(Behaviour, DefaultAcceptsEverythingAtOnce) {
  const Behaviour b(BehaviourConfig{});
  Rng rng(1);
  for (std::size_t i = 0; i < kPhaseCount; ++i) {
    const Action a = b.decide(static_cast<Phase>(i), ctx("user@example.test"), rng);
    EXPECT_EQ(a.kind, Kind::accept);
    EXPECT_EQ(a.cause, Cause::none);
    EXPECT_EQ(a.delay_us, 0u);
  }
}

TEST(Behaviour, ProbabilityTenPercentGivesTenPercent) {
  BehaviourConfig c;
  c.defaults.rules.push_back(reply_rule(Phase::rcpt, 0.1, 452, {4, 2, 2}, "Mailbox full"));
  const Behaviour b(c);
  Rng rng(12345);
  int fired = 0;
  for (int i = 0; i < 100'000; ++i) {
    const Action a = b.decide(Phase::rcpt, ctx("u@x.test"), rng);
    if (a.kind == Kind::reply) {
      ++fired;
      ASSERT_EQ(a.reply.code, 452);
      ASSERT_EQ(a.reply.enhanced, (smtp::EnhancedCode{4, 2, 2}));
      ASSERT_EQ(a.reply.text, "Mailbox full");
      ASSERT_EQ(a.cause, Cause::rule);
    }
  }
  EXPECT_NEAR(fired / 100'000.0, 0.10, 0.01);
  // Other phases are untouched.
  EXPECT_EQ(b.decide(Phase::mail, ctx(), rng).kind, Kind::accept);
}

TEST(Behaviour, RatesOfOnePhaseEachGetTheirShare) {
  // One draw per decision and consecutive slices: 10% + 10% + 5%, not 10% then 9% of the rest.
  BehaviourConfig c;
  c.defaults.tempfail_rate = 0.1;
  c.defaults.permfail_rate = 0.1;
  c.defaults.disconnect_rate = 0.05;
  const Behaviour b(c);
  Rng rng(99);
  int temp = 0, perm = 0, disc = 0;
  for (int i = 0; i < 100'000; ++i) {
    const Action a = b.decide(Phase::end_of_data, ctx("u@x.test"), rng);
    if (a.kind == Kind::reply && a.reply.code == 451) {
      ++temp;
      ASSERT_EQ(a.reply.enhanced, (smtp::EnhancedCode{4, 3, 0}));
    }
    if (a.kind == Kind::reply && a.reply.code == 554) {
      ++perm;
      ASSERT_EQ(a.reply.enhanced, (smtp::EnhancedCode{5, 6, 0}));
    }
    if (a.kind == Kind::disconnect) ++disc;
  }
  // +-0.4% is over 4 standard deviations here, and excludes the 9% and 4% that drawing
  // again for each rule would give.
  EXPECT_NEAR(temp / 100'000.0, 0.10, 0.004);
  EXPECT_NEAR(perm / 100'000.0, 0.10, 0.004);
  EXPECT_NEAR(disc / 100'000.0, 0.05, 0.004);
}

TEST(Behaviour, ProbabilityOneAlwaysFiresAndFirstRuleWins) {
  BehaviourConfig c;
  c.defaults.rules.push_back(reply_rule(Phase::mail, 0, 550, {5, 7, 1}, "never"));
  c.defaults.rules.push_back(reply_rule(Phase::mail, 1, 451, {4, 7, 1}, "always"));
  const Behaviour b(c);
  Rng rng(3);
  for (int i = 0; i < 1000; ++i) {
    const Action a = b.decide(Phase::mail, ctx(), rng);
    ASSERT_EQ(a.kind, Kind::reply);
    ASSERT_EQ(a.reply.text, "always");
  }
}

TEST(Behaviour, ReplyTextLivesInTheBehaviour) {
  std::string text = "Come back later (a text long enough to be on the heap)";
  auto c = std::make_unique<BehaviourConfig>();
  c->defaults.rules.push_back(reply_rule(Phase::ehlo, 1, 421, {4, 3, 2}, text));
  const Behaviour b(*c);
  c.reset();  // the caller's config is gone; the reply must not point into it
  Rng rng(1);
  const Action a = b.decide(Phase::ehlo, ctx(), rng);
  EXPECT_EQ(a.reply.text, text);
  const auto* first = &b.config().defaults.rules[0].reply.text[0];
  EXPECT_EQ(a.reply.text.data(), first);
}

TEST(Behaviour, ActionKinds) {
  BehaviourConfig c;
  Rule close;
  close.phase = Phase::connect;
  close.action = Kind::reply_and_disconnect;
  close.reply = ReplySpec{421, {4, 3, 2}, "Shutting down"};
  Rule cut;
  cut.phase = Phase::data;
  cut.action = Kind::disconnect_mid_data;
  cut.after_bytes = 4096;
  Rule drop;
  drop.phase = Phase::mail;
  drop.action = Kind::disconnect;
  c.defaults.rules = {close, cut, drop};
  const Behaviour b(c);
  Rng rng(1);
  const Action a = b.decide(Phase::connect, ctx(), rng);
  EXPECT_EQ(a.kind, Kind::reply_and_disconnect);
  EXPECT_EQ(a.reply.code, 421);
  const Action d = b.decide(Phase::data, ctx("u@x.test"), rng);
  EXPECT_EQ(d.kind, Kind::disconnect_mid_data);
  EXPECT_EQ(d.after_bytes, 4096u);
  EXPECT_EQ(b.decide(Phase::mail, ctx(), rng).kind, Kind::disconnect);
}

TEST(Behaviour, ReplyAndDisconnectWithoutReplySends421) {
  BehaviourConfig c;
  Rule r;
  r.phase = Phase::rcpt;
  r.action = Kind::reply_and_disconnect;
  c.defaults.rules = {r};
  const Behaviour b(c);
  Rng rng(1);
  const Action a = b.decide(Phase::rcpt, ctx("u@x.test"), rng);
  EXPECT_EQ(a.reply.code, 421);
  EXPECT_EQ(a.reply.enhanced, (smtp::EnhancedCode{4, 3, 2}));
}

// ---- Delays --------------------------------------------------------------------------------

TEST(Behaviour, FixedDelayPerPhaseAndARuleDelayReplacesIt) {
  BehaviourConfig c;
  c.defaults.delays[static_cast<std::size_t>(Phase::mail)] = {DelaySpec::Kind::fixed, 5'000};
  Rule r = reply_rule(Phase::mail, 0.5, 451, {4, 3, 0}, "slow fail");
  r.delay = DelaySpec{DelaySpec::Kind::fixed, 2'000'000};
  c.defaults.rules = {r};
  const Behaviour b(c);
  Rng rng(5);
  int fired = 0;
  for (int i = 0; i < 1000; ++i) {
    const Action a = b.decide(Phase::mail, ctx(), rng);
    if (a.kind == Kind::reply) {
      ++fired;
      ASSERT_EQ(a.delay_us, 2'000'000u);
    } else {
      ASSERT_EQ(a.delay_us, 5'000u);
    }
  }
  EXPECT_GT(fired, 400);
  EXPECT_EQ(b.decide(Phase::rcpt, ctx("u@x.test"), rng).delay_us, 0u);
}

TEST(Behaviour, UniformDelayStaysInBoundsWithMeanInTheMiddle) {
  BehaviourConfig c;
  c.defaults.delays[static_cast<std::size_t>(Phase::rcpt)] = {DelaySpec::Kind::uniform, 1'000,
                                                              10'000};
  const Behaviour b(c);
  Rng rng(8);
  double sum = 0;
  std::uint32_t lo = ~0u, hi = 0;
  for (int i = 0; i < 100'000; ++i) {
    const std::uint32_t d = b.decide(Phase::rcpt, ctx("u@x.test"), rng).delay_us;
    lo = std::min(lo, d);
    hi = std::max(hi, d);
    sum += d;
  }
  EXPECT_EQ(lo, 1'000u);
  EXPECT_EQ(hi, 10'000u);
  EXPECT_NEAR(sum / 100'000, 5'500, 55);
}

TEST(Behaviour, LognormalMedianAndSpreadMatchTheConfiguration) {
  BehaviourConfig c;
  c.defaults.delays[static_cast<std::size_t>(Phase::end_of_data)] = {DelaySpec::Kind::lognormal,
                                                                     5'000, 0, 0.5};
  const Behaviour b(c);
  Rng rng(2024);
  std::vector<std::uint32_t> v;
  for (int i = 0; i < 100'000; ++i) {
    v.push_back(b.decide(Phase::end_of_data, ctx("u@x.test"), rng).delay_us);
  }
  std::sort(v.begin(), v.end());
  const double median = v[v.size() / 2];
  EXPECT_NEAR(median, 5'000, 5'000 * 0.03);
  // One sigma above: the 84.13th percentile is median * e^sigma.
  const double p84 = v[static_cast<std::size_t>(v.size() * 0.8413)];
  EXPECT_NEAR(p84, 5'000 * std::exp(0.5), 5'000 * std::exp(0.5) * 0.03);
}

// ---- Domains -------------------------------------------------------------------------------

BehaviourConfig three_domains() {
  BehaviourConfig c;
  c.defaults.rules.push_back(reply_rule(Phase::rcpt, 1, 550, {5, 1, 1}, "default"));
  auto add = [&c](std::string pattern, std::string text) {
    DomainProfile d;
    d.pattern = std::move(pattern);
    d.profile.rules.push_back(reply_rule(Phase::rcpt, 1, 450, {4, 2, 0}, std::move(text)));
    c.domains.push_back(std::move(d));
  };
  add("slow.test", "exact slow");
  add("*.slow.test", "under slow");
  add("*.a.slow.test", "under a.slow");
  DomainProfile gmail;  // no rules: accepts everything, the default's 550 is not inherited
  gmail.pattern = "gmail.test";
  gmail.profile.delays[static_cast<std::size_t>(Phase::end_of_data)] = {DelaySpec::Kind::fixed,
                                                                        7'000};
  c.domains.push_back(gmail);
  return c;
}

std::string rcpt_text(const Behaviour& b, std::string_view rcpt) {
  Rng rng(1);
  const Action a = b.decide(Phase::rcpt, ctx(rcpt), rng);
  return a.kind == Kind::accept ? "accept" : std::string(a.reply.text);
}

TEST(Behaviour, DomainOverridesExactAndSuffix) {
  const Behaviour b(three_domains());
  EXPECT_EQ(rcpt_text(b, "u@slow.test"), "exact slow");
  EXPECT_EQ(rcpt_text(b, "u@SLOW.Test"), "exact slow");
  EXPECT_EQ(rcpt_text(b, "u@mx.slow.test"), "under slow");
  EXPECT_EQ(rcpt_text(b, "u@a.slow.test"), "under slow");      // "*.a.slow.test" is below it
  EXPECT_EQ(rcpt_text(b, "u@b.a.slow.test"), "under a.slow");  // the longest suffix wins
  EXPECT_EQ(rcpt_text(b, "u@notslow.test"), "default");
  EXPECT_EQ(rcpt_text(b, "u@slow.test.org"), "default");
  EXPECT_EQ(rcpt_text(b, "u@gmail.test"), "accept");               // replaced, not inherited
  EXPECT_EQ(rcpt_text(b, "weird@local@slow.test"), "exact slow");  // the last '@'
  EXPECT_EQ(rcpt_text(b, "postmaster"), "default");
}

TEST(Behaviour, PhasesBeforeRcptUseTheListenerDefaultDataFollowsTheFirstRecipient) {
  BehaviourConfig c = three_domains();
  c.defaults.rules.push_back(reply_rule(Phase::mail, 1, 451, {4, 7, 0}, "default mail"));
  const Behaviour b(c);
  Rng rng(1);
  // A recipient in the context does not move MAIL to the domain (it cannot be known yet).
  EXPECT_EQ(b.decide(Phase::mail, ctx("u@gmail.test"), rng).reply.text, "default mail");
  EXPECT_EQ(b.decide(Phase::end_of_data, ctx("u@gmail.test"), rng).delay_us, 7'000u);
  EXPECT_EQ(b.decide(Phase::end_of_data, ctx("u@other.test"), rng).delay_us, 0u);
}

// ---- Magic recipients ----------------------------------------------------------------------

TEST(Behaviour, MagicLocalPartsAtRcpt) {
  BehaviourConfig c;
  c.defaults.rules.push_back(reply_rule(Phase::rcpt, 1, 550, {5, 7, 1}, "rule"));
  const Behaviour b(c);
  Rng rng(1);
  Action a = b.decide(Phase::rcpt, ctx("tempfail+1@x.test"), rng);
  EXPECT_EQ(a.kind, Kind::reply);
  EXPECT_EQ(a.reply.code, 450);
  EXPECT_EQ(a.reply.enhanced, (smtp::EnhancedCode{4, 2, 0}));
  EXPECT_EQ(a.cause, Cause::magic);
  a = b.decide(Phase::rcpt, ctx("PermFail+abc@x.test"), rng);
  EXPECT_EQ(a.reply.code, 550);
  EXPECT_EQ(a.reply.enhanced, (smtp::EnhancedCode{5, 1, 1}));
  a = b.decide(Phase::rcpt, ctx("disconnect+x@x.test"), rng);
  EXPECT_EQ(a.kind, Kind::disconnect);
  a = b.decide(Phase::rcpt, ctx("delay-500ms+x@x.test"), rng);
  EXPECT_EQ(a.kind, Kind::accept);
  EXPECT_EQ(a.delay_us, 500'000u);
  a = b.decide(Phase::rcpt, ctx("Delay-1.5s+@x.test"), rng);
  EXPECT_EQ(a.kind, Kind::accept);
  EXPECT_EQ(a.delay_us, 1'500'000u);
  for (const char* data_magic : {"tempfail-data+1@x.test", "permfail-data+1@x.test"}) {
    a = b.decide(Phase::rcpt, ctx(data_magic), rng);
    EXPECT_EQ(a.kind, Kind::accept) << data_magic;
  }
  // Not magic: no '+', an unknown tag, a bad delay, a tag in the domain.
  for (const char* plain :
       {"tempfail@x.test", "tempfailx+1@x.test", "delay-abc+1@x.test", "delay-+1@x.test",
        "delay-2h+1@x.test", "u@tempfail+x.test", "+tempfail@x.test"}) {
    EXPECT_EQ(b.decide(Phase::rcpt, ctx(plain), rng).reply.text, "rule") << plain;
  }
}

TEST(Behaviour, MagicRecipientDecidesTheEndOfData) {
  BehaviourConfig c;
  c.defaults.tempfail_rate = 1;  // would fail every message; the magic recipient wins
  const Behaviour b(c);
  Rng rng(1);
  Action a = b.decide(Phase::end_of_data, ctx("tempfail-data+1@x.test"), rng);
  EXPECT_EQ(a.reply.code, 450);
  EXPECT_EQ(a.reply.enhanced, (smtp::EnhancedCode{4, 2, 0}));
  a = b.decide(Phase::end_of_data, ctx("permfail-data+1@x.test"), rng);
  EXPECT_EQ(a.reply.code, 550);
  EXPECT_EQ(a.reply.enhanced, (smtp::EnhancedCode{5, 1, 1}));
  a = b.decide(Phase::end_of_data, ctx("delay-20ms+1@x.test"), rng);
  EXPECT_EQ(a.kind, Kind::accept);
  EXPECT_EQ(a.delay_us, 20'000u);
  EXPECT_EQ(a.cause, Cause::magic);
  a = b.decide(Phase::end_of_data, ctx("plain@x.test"), rng);
  EXPECT_EQ(a.reply.code, 451);
  EXPECT_EQ(a.cause, Cause::rule);
  // DATA itself is not affected.
  EXPECT_EQ(b.decide(Phase::data, ctx("tempfail-data+1@x.test"), rng).kind, Kind::accept);
}

TEST(Behaviour, MagicOffTreatsThemAsOrdinaryRecipients) {
  BehaviourConfig c;
  c.magic = false;
  const Behaviour b(c);
  Rng rng(1);
  EXPECT_EQ(b.decide(Phase::rcpt, ctx("tempfail+1@x.test"), rng).kind, Kind::accept);
  EXPECT_EQ(b.decide(Phase::end_of_data, ctx("permfail-data+1@x.test"), rng).kind, Kind::accept);
}

// ---- Greylisting ---------------------------------------------------------------------------

TEST(Behaviour, GreylistFirstAttemptRefusedThenAcceptedAfterTheWait) {
  BehaviourConfig c;
  c.defaults.greylist_wait_us = 300'000'000;  // 5 minutes
  const Behaviour b(c);
  Rng rng(1);
  const std::uint64_t t0 = 1'000'000;
  Action a = b.decide(Phase::rcpt, ctx("u@x.test", t0), rng);
  EXPECT_EQ(a.kind, Kind::reply);
  EXPECT_EQ(a.reply.code, 451);
  EXPECT_EQ(a.reply.enhanced, (smtp::EnhancedCode{4, 7, 1}));
  EXPECT_EQ(a.cause, Cause::greylist);
  // A retry too soon is refused again; the wait counts from the first sighting.
  EXPECT_EQ(b.decide(Phase::rcpt, ctx("u@x.test", t0 + 299'999'999), rng).kind, Kind::reply);
  EXPECT_EQ(b.decide(Phase::rcpt, ctx("u@x.test", t0 + 300'000'000), rng).kind, Kind::accept);
  EXPECT_EQ(b.decide(Phase::rcpt, ctx("U@X.TEST", t0 + 400'000'000), rng).kind, Kind::accept);
  // Another recipient, sender or client is another triple.
  EXPECT_EQ(b.decide(Phase::rcpt, ctx("v@x.test", t0 + 400'000'000), rng).kind, Kind::reply);
  Context other = ctx("u@x.test", t0 + 400'000'000);
  other.client_ip = "127.0.0.2";
  EXPECT_EQ(b.decide(Phase::rcpt, other, rng).kind, Kind::reply);
  other.client_ip = "127.0.0.1";
  other.sender = "";
  EXPECT_EQ(b.decide(Phase::rcpt, other, rng).kind, Kind::reply);

  EXPECT_EQ(b.counters().greylisted.load(), 5u);
  EXPECT_EQ(b.counters().greylist_passed.load(), 2u);
  EXPECT_EQ(b.counters().greylist_triples.load(), 4u);
  EXPECT_EQ(b.counters().greylist_table_full.load(), 0u);
}

TEST(Behaviour, GreylistOnlyWhereItsProfileSaysSo) {
  BehaviourConfig c;
  DomainProfile d;
  d.pattern = "grey.test";
  d.profile.greylist_wait_us = 1'000'000;
  c.domains.push_back(d);
  const Behaviour b(c);
  Rng rng(1);
  EXPECT_EQ(b.decide(Phase::rcpt, ctx("u@grey.test"), rng).reply.code, 451);
  EXPECT_EQ(b.decide(Phase::rcpt, ctx("u@white.test"), rng).kind, Kind::accept);
}

TEST(Behaviour, GreylistTableFullLetsRecipientsThroughAndCountsThem) {
  BehaviourConfig c;
  c.defaults.greylist_wait_us = 1'000'000;
  c.greylist_capacity = 4;
  const Behaviour b(c);
  Rng rng(1);
  int refused = 0;
  for (int i = 0; i < 10; ++i) {
    const std::string rcpt = std::string("u").append(std::to_string(i)).append("@x.test");
    if (b.decide(Phase::rcpt, ctx(rcpt), rng).kind == Kind::reply) ++refused;
  }
  EXPECT_EQ(refused, 4);
  EXPECT_EQ(b.counters().greylist_triples.load(), 4u);
  EXPECT_EQ(b.counters().greylist_table_full.load(), 6u);
}

// ---- Rate limits ---------------------------------------------------------------------------

TEST(Behaviour, RateLimitAllowsTheBurstAtOnceThenNPerSecond) {
  BehaviourConfig c;
  c.defaults.rate_limit.per_second = 100;
  const Behaviour b(c);
  Rng rng(1);
  // Frozen clock: exactly one second's worth (the default burst).
  int allowed = 0;
  for (int i = 0; i < 1000; ++i) {
    if (b.decide(Phase::mail, ctx("", 5'000'000), rng).kind == Kind::accept) ++allowed;
  }
  EXPECT_EQ(allowed, 100);
  // Then 10 s of attempts every millisecond: 100 per second get through.
  allowed = 0;
  for (std::uint64_t t = 5'001'000; t <= 15'000'000; t += 1'000) {
    if (b.decide(Phase::mail, ctx("", t), rng).kind == Kind::accept) ++allowed;
  }
  EXPECT_NEAR(allowed, 1000, 2);
  EXPECT_EQ(b.counters().rate_limited.load(), 900u + (10'000u - allowed));
  const Action a = b.decide(Phase::mail, ctx("", 15'000'000), rng);
  EXPECT_EQ(a.kind, Kind::reply_and_disconnect);
  EXPECT_EQ(a.reply.code, 421);
  EXPECT_EQ(a.reply.enhanced, (smtp::EnhancedCode{4, 7, 0}));
  EXPECT_EQ(a.cause, Cause::rate_limit);
  // RCPT is not counted again.
  EXPECT_EQ(b.decide(Phase::rcpt, ctx("u@x.test", 15'000'000), rng).kind, Kind::accept);
}

TEST(Behaviour, RateLimit451AndBurst) {
  BehaviourConfig c;
  c.defaults.rate_limit = RateLimit{2, 5, RateLimitReply::defer_451};
  const Behaviour b(c);
  Rng rng(1);
  int allowed = 0;
  for (int i = 0; i < 20; ++i) {
    const Action a = b.decide(Phase::mail, ctx("", 0), rng);
    if (a.kind == Kind::accept) {
      ++allowed;
    } else {
      EXPECT_EQ(a.kind, Kind::reply);
      EXPECT_EQ(a.reply.code, 451);
      EXPECT_EQ(a.reply.enhanced, (smtp::EnhancedCode{4, 7, 1}));
    }
  }
  EXPECT_EQ(allowed, 5);
  EXPECT_EQ(b.decide(Phase::mail, ctx("", 499'999), rng).kind, Kind::reply);
  EXPECT_EQ(b.decide(Phase::mail, ctx("", 500'000), rng).kind, Kind::accept);
}

TEST(Behaviour, DomainRateLimitAppliesAtRcptToThatDomainOnly) {
  BehaviourConfig c;
  DomainProfile d;
  d.pattern = "*.big.test";
  d.profile.rate_limit = RateLimit{10, 0, RateLimitReply::defer_451};
  c.domains.push_back(d);
  const Behaviour b(c);
  Rng rng(1);
  int allowed = 0;
  for (int i = 0; i < 50; ++i) {
    if (b.decide(Phase::rcpt, ctx("u@mx.big.test", 1'000), rng).kind == Kind::accept) {
      ++allowed;
    }
    ASSERT_EQ(b.decide(Phase::rcpt, ctx("u@small.test", 1'000), rng).kind, Kind::accept);
    ASSERT_EQ(b.decide(Phase::mail, ctx("", 1'000), rng).kind, Kind::accept);
  }
  EXPECT_EQ(allowed, 10);
}

// ---- Connection limit ----------------------------------------------------------------------

TEST(Behaviour, ConnectionLimit) {
  BehaviourConfig c;
  c.max_connections = 3;
  const Behaviour b(c);
  EXPECT_TRUE(b.try_enter_connection());
  EXPECT_TRUE(b.try_enter_connection());
  EXPECT_TRUE(b.try_enter_connection());
  EXPECT_FALSE(b.try_enter_connection());
  EXPECT_EQ(b.connections(), 3u);
  b.leave_connection();
  EXPECT_TRUE(b.try_enter_connection());
  EXPECT_EQ(b.counters().connections_refused.load(), 1u);
  EXPECT_EQ(kTooManyConnections.code, 421);
  EXPECT_EQ(kTooManyConnections.enhanced, (smtp::EnhancedCode{4, 7, 0}));

  const Behaviour unlimited(BehaviourConfig{});
  for (int i = 0; i < 10'000; ++i)
    ASSERT_TRUE(unlimited.try_enter_connection());
}

// ---- Two threads ---------------------------------------------------------------------------

TEST(BehaviourThreads, GreylistKeepsExactCounts) {
  BehaviourConfig c;
  c.defaults.greylist_wait_us = 1'000'000;
  c.greylist_capacity = 1 << 16;
  const Behaviour b(c);
  constexpr int kTriples = 5'000;
  std::vector<std::string> rcpts;
  for (int i = 0; i < kTriples; ++i)
    rcpts.push_back(std::string("user").append(std::to_string(i)).append("@x.test"));
  // Both threads see every triple, at the same (early) time: each sighting is refused and
  // each triple is recorded exactly once.
  auto run = [&](std::uint64_t now, int seed, int* accepted) {
    Rng rng(seed);
    for (const std::string& r : rcpts) {
      if (b.decide(Phase::rcpt, ctx(r, now), rng).kind == Kind::accept) ++*accepted;
    }
  };
  int acc1 = 0, acc2 = 0;
  std::thread t1(run, 10, 1, &acc1), t2(run, 10, 2, &acc2);
  t1.join();
  t2.join();
  EXPECT_EQ(acc1 + acc2, 0);
  EXPECT_EQ(b.counters().greylist_triples.load(), static_cast<std::uint64_t>(kTriples));
  EXPECT_EQ(b.counters().greylisted.load(), 2u * kTriples);
  std::thread t3(run, 2'000'000, 3, &acc1), t4(run, 2'000'000, 4, &acc2);
  t3.join();
  t4.join();
  EXPECT_EQ(acc1 + acc2, 2 * kTriples);
  EXPECT_EQ(b.counters().greylist_passed.load(), 2u * kTriples);
  EXPECT_EQ(b.counters().greylist_table_full.load(), 0u);
}

TEST(BehaviourThreads, RateLimiterLosesNoUpdate) {
  BehaviourConfig c;
  c.defaults.rate_limit.per_second = 20'000;
  const Behaviour b(c);
  constexpr int kAttempts = 100'000;
  auto run = [&](int seed, int* allowed) {
    Rng rng(seed);
    for (int i = 0; i < kAttempts; ++i) {
      if (b.decide(Phase::mail, ctx("", 777), rng).kind == Kind::accept) ++*allowed;
    }
  };
  int a1 = 0, a2 = 0;
  std::thread t1(run, 1, &a1), t2(run, 2, &a2);
  t1.join();
  t2.join();
  // Frozen clock: exactly the burst (one second's worth), however the threads interleave.
  EXPECT_EQ(a1 + a2, 20'000);
  EXPECT_EQ(b.counters().rate_limited.load(), 2u * kAttempts - 20'000u);
}

TEST(BehaviourThreads, ConnectionCounterNeverExceedsTheLimit) {
  BehaviourConfig c;
  c.max_connections = 1;
  const Behaviour b(c);
  std::atomic<std::uint32_t> inside{0};
  std::atomic<std::uint32_t> peak{0};
  std::atomic<std::uint64_t> entered{0};
  auto run = [&]() {
    for (int i = 0; i < 50'000; ++i) {
      if (!b.try_enter_connection()) continue;
      entered.fetch_add(1);
      const std::uint32_t n = inside.fetch_add(1) + 1;
      std::uint32_t p = peak.load();
      while (n > p && !peak.compare_exchange_weak(p, n)) {
      }
      inside.fetch_sub(1);
      b.leave_connection();
    }
  };
  std::thread t1(run), t2(run);
  t1.join();
  t2.join();
  EXPECT_EQ(b.connections(), 0u);
  EXPECT_EQ(peak.load(), 1u);
  // Every attempt either entered or was counted as refused.
  EXPECT_EQ(entered.load() + b.counters().connections_refused.load(), 100'000u);
}

// ---- Validation ----------------------------------------------------------------------------

TEST(CheckRule, RefusesWhatCannotWork) {
  struct Case {
    Rule rule;
    std::string key;
    std::string why;
  };
  Rule base = reply_rule(Phase::rcpt, 1, 451, {4, 3, 0}, "x");
  std::vector<Case> cases;
  Rule r = base;
  r.probability = 1.5;
  cases.push_back({r, "probability", "probability must be from 0 to 1, got 1.5"});
  r = base;
  r.reply.code = 250;
  cases.push_back({r, "reply", "reply 250 is not a failure: a rule replies with 4xx or 5xx"});
  r = base;
  r.phase = Phase::connect;
  cases.push_back({r, "reply",
                   "at phase 'connect' only 421 or 554 can replace the 220 banner (RFC 5321 "
                   "3.1), not 451"});
  r = base;
  r.reply = {};
  cases.push_back(
      {r, "reply", "action 'reply' needs a reply, e.g. reply = \"451 4.3.0 Try again later\""});
  r = base;
  r.action = Kind::disconnect;
  cases.push_back({r, "reply",
                   "action 'disconnect' sends no reply; remove reply or use action "
                   "'reply-and-disconnect'"});
  r = base;
  r.action = Kind::disconnect_mid_data;
  r.reply = {};
  cases.push_back(
      {r, "action", "action 'disconnect-mid-data' works at phase 'data' only, not 'rcpt'"});
  r = base;
  r.after_bytes = 10;
  cases.push_back({r, "after-bytes", "after-bytes is only used with action 'disconnect-mid-data'"});
  r = base;
  r.action = Kind::accept;
  cases.push_back(
      {r, "action", "action 'accept' is what happens when no rule fires; it is not a rule"});
  for (const Case& c : cases) {
    std::string why;
    std::string_view key;
    EXPECT_FALSE(check_rule(c.rule, &why, &key)) << c.why;
    EXPECT_EQ(why, c.why);
    EXPECT_EQ(key, c.key) << c.why;
  }
  r = base;
  r.phase = Phase::connect;
  r.reply = {554, {5, 3, 2}, "No service"};
  EXPECT_TRUE(check_rule(r, nullptr));
}

TEST(ValidateBehaviour, RefusesImpossibleConfigurations) {
  BehaviourConfig c;
  c.defaults.tempfail_rate = 0.6;
  c.defaults.rules.push_back(reply_rule(Phase::end_of_data, 0.5, 554, {}, "x"));
  std::string why;
  EXPECT_FALSE(validate_behaviour(c, &why));
  EXPECT_EQ(why,
            "the rules of phase 'end-of-data' add up to probability 1.1 (tempfail-rate, "
            "permfail-rate and disconnect-rate included); one draw decides between them, so "
            "the total is at most 1");
  EXPECT_THROW(Behaviour{c}, std::invalid_argument);

  BehaviourConfig d;
  DomainProfile dp;
  dp.pattern = "slow.test";
  dp.profile.rules.push_back(reply_rule(Phase::mail, 1, 451, {}, "x"));
  d.domains.push_back(dp);
  EXPECT_FALSE(validate_behaviour(d, &why));
  EXPECT_EQ(why,
            "domain 'slow.test': rule 1: phase 'mail' never applies in a domain table (domains "
            "apply from rcpt on)");
  d.domains[0].profile.rules.clear();
  d.domains[0].profile.delays[0] = {DelaySpec::Kind::fixed, 1};
  EXPECT_FALSE(validate_behaviour(d, &why));
  EXPECT_EQ(why,
            "domain 'slow.test': delay-connect never applies in a domain table (domains apply "
            "from rcpt on)");
  d.domains[0].profile.delays[0] = {};
  d.domains.push_back(d.domains[0]);
  EXPECT_FALSE(validate_behaviour(d, &why));
  EXPECT_EQ(why, "domain 'slow.test' is given twice");
  d.domains.pop_back();
  d.domains[0].pattern = "Slow.test";
  EXPECT_FALSE(validate_behaviour(d, &why));
  EXPECT_EQ(why, "domain 'Slow.test' must be in lower case");

  BehaviourConfig e;
  e.defaults.rate_limit.per_second = -1;
  EXPECT_FALSE(validate_behaviour(e, &why));
  EXPECT_EQ(why, "rate-limit must be from 0 (off) to 1e9 per second, got -1");
}

TEST(DomainPattern, NormalizesAndRefuses) {
  std::string out;
  std::string why;
  ASSERT_TRUE(normalize_domain_pattern("Slow.TEST", out, &why));
  EXPECT_EQ(out, "slow.test");
  ASSERT_TRUE(normalize_domain_pattern("*.Slow.test", out, &why));
  EXPECT_EQ(out, "*.slow.test");
  for (const char* bad : {"", "*.", "a..b", "a.b.", ".a", "a b.test", "*slow.test", "a.*.test"}) {
    EXPECT_FALSE(normalize_domain_pattern(bad, out, &why)) << bad;
    EXPECT_EQ(why,
              std::string("'").append(bad).append("' is not a domain name or a *.domain pattern"));
  }
}

// ---- No allocation -------------------------------------------------------------------------

TEST(Behaviour, DecideDoesNotAllocate) {
  BehaviourConfig c = three_domains();
  c.defaults.tempfail_rate = 0.2;
  c.defaults.rate_limit.per_second = 1000;
  c.defaults.greylist_wait_us = 10;
  c.defaults.delays[2] = {DelaySpec::Kind::lognormal, 1000, 0, 1};
  c.domains[0].profile.greylist_wait_us = 10;
  c.domains[1].profile.rate_limit.per_second = 5;
  const Behaviour b(c);
  Rng rng(1);
  const char* rcpts[] = {
      "u@slow.test",           "u@a.slow.test",  "u@x.test",          "tempfail+1@x.test",
      "delay-5ms+1@x.test",    "delay-+@x.test", "delay-abc+@x.test", "",
      "permfail-data+1@x.test"};
  std::uint64_t sink = 0;
  const std::size_t before = g_allocations;
  for (std::uint64_t t = 0; t < 2000; ++t) {
    for (const char* r : rcpts) {
      for (std::size_t p = 0; p < kPhaseCount; ++p) {
        sink += b.decide(static_cast<Phase>(p), ctx(r, t * 7), rng).delay_us;
      }
    }
  }
  EXPECT_EQ(g_allocations - before, 0u);
  EXPECT_GT(sink, 0u);
}

}  // namespace
}  // namespace ringmta::sink
