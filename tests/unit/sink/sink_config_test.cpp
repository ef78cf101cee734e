// ringmta-sink configuration: flags, the TOML file, their merge, every refusal with its file,
// line and reason, --help/--version, and --print-config reading back to an equal config.
#include "sinks/sink_config.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/config/config_test_support.hpp"

namespace ringmta::sink {
namespace {

using config_test::TomlFile;
using Result = config_test::LoadResult<SinkConfig>;

Result run(std::vector<std::string> args) {
  return config_test::run_loader<SinkConfig>(load_sink_config, "ringmta-sink", std::move(args));
}

std::string addr(const io::SocketAddress& a) {
  return a.to_string();
}

constexpr std::size_t kRcpt = static_cast<std::size_t>(Phase::rcpt);
constexpr std::size_t kEod = static_cast<std::size_t>(Phase::end_of_data);

// ---- Command line --------------------------------------------------------------------------

TEST(SinkConfig, NoArgumentsGiveOneLoopbackListenerWithDefaults) {
  const Result r = run({});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.err, "");
  ASSERT_EQ(r.cfg.listeners.size(), 1u);
  const ListenerConfig& l = r.cfg.listeners[0];
  EXPECT_EQ(addr(l.address), "127.0.0.1:2525");
  EXPECT_EQ(l.server.hostname, "localhost");
  EXPECT_EQ(l.server.max_message_size, 35u << 20);
  EXPECT_TRUE(l.server.pipelining && l.server.chunking && l.server.dsn);
  EXPECT_EQ(l.behaviour, BehaviourConfig{});
  EXPECT_EQ(r.cfg.mode, SinkMode::discard);
  EXPECT_EQ(r.cfg.threads, default_thread_count());
  EXPECT_GE(r.cfg.threads, 1u);
  EXPECT_LE(r.cfg.threads, 2u);
  EXPECT_FALSE(r.cfg.metrics.has_value());
  EXPECT_EQ(r.cfg.seed, 1u);
}

TEST(SinkConfig, HelpIsGroupedWithUnitsAndDefaults) {
  const Result r = run({"--help"});
  EXPECT_EQ(r.rc, 0);
  for (const char* s : {"Usage: ringmta-sink [OPTIONS]",
                        "Server:",
                        "Message handling:",
                        "SMTP server (as smtp-sink):",
                        "Failures (a probability per message, default 0):",
                        "Delays before replying (SPEC, default 0):",
                        "Limits (per listener):",
                        "--listen HOST:PORT",
                        "(default 127.0.0.1:2525)",
                        "--tempfail-rate P",
                        "451 4.3.0",
                        "554 5.6.0",
                        "--delay-end-of-data SPEC",
                        "lognormal:MEDIAN,SIGMA",
                        "--no-pipelining",
                        "--no-dsn",
                        "--max-message-size BYTES",
                        "default 35M = 36700160",
                        "--rate-limit N",
                        "Messages per second",
                        "(default 0 = off)",
                        "--greylist-wait DURATION",
                        "tempfail+x@d",
                        "delay-500ms+x@d",
                        "Exit codes: 0 ok, 2 bad usage or config"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  EXPECT_EQ(run({"-h"}).rc, 0);
}

TEST(SinkConfig, VersionExitsZero) {
  const Result r = run({"--version"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.out, "ringmta-sink 0.1.0\n");
}

TEST(SinkConfig, EveryFlagSetsItsField) {
  const Result r = run({"--listen",
                        "127.0.0.1:0",
                        "--listen",
                        "[::1]:2600",
                        "--threads",
                        "3",
                        "--metrics",
                        "127.0.0.1:9101",
                        "--seed",
                        "77",
                        "--mode",
                        "digest",
                        "--digest-log",
                        "/tmp/ids.log",
                        "--hostname",
                        "mx.sink.test",
                        "--max-message-size",
                        "10M",
                        "--max-recipients",
                        "5",
                        "--no-pipelining",
                        "--no-size",
                        "--no-8bitmime",
                        "--no-smtputf8",
                        "--no-enhancedstatuscodes",
                        "--no-chunking",
                        "--no-dsn",
                        "--no-magic",
                        "--tempfail-rate",
                        "0.1",
                        "--permfail-rate",
                        "0.2",
                        "--disconnect-rate",
                        "0.05",
                        "--delay",
                        "5ms",
                        "--delay-rcpt",
                        "lognormal:5ms,0.5",
                        "--max-connections",
                        "50",
                        "--rate-limit",
                        "1000",
                        "--rate-limit-reply",
                        "451",
                        "--greylist-wait",
                        "5m"});
  ASSERT_EQ(r.rc, -1) << r.err;
  const SinkConfig& c = r.cfg;
  EXPECT_EQ(c.threads, 3u);
  ASSERT_TRUE(c.metrics.has_value());
  EXPECT_EQ(addr(*c.metrics), "127.0.0.1:9101");
  EXPECT_EQ(c.seed, 77u);
  EXPECT_EQ(c.mode, SinkMode::digest);
  EXPECT_EQ(c.digest_log, "/tmp/ids.log");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(addr(c.listeners[0].address), "127.0.0.1:0");
  EXPECT_EQ(addr(c.listeners[1].address), "[::1]:2600");
  for (const ListenerConfig& l : c.listeners) {
    EXPECT_EQ(l.server.hostname, "mx.sink.test");
    EXPECT_EQ(l.server.max_message_size, 10u << 20);
    EXPECT_EQ(l.server.max_recipients, 5u);
    EXPECT_FALSE(l.server.pipelining || l.server.size || l.server.eight_bit_mime ||
                 l.server.smtputf8 || l.server.enhanced_status_codes || l.server.chunking ||
                 l.server.dsn);
    const BehaviourConfig& b = l.behaviour;
    EXPECT_FALSE(b.magic);
    EXPECT_EQ(b.max_connections, 50u);
    EXPECT_EQ(b.defaults.tempfail_rate, 0.1);
    EXPECT_EQ(b.defaults.permfail_rate, 0.2);
    EXPECT_EQ(b.defaults.disconnect_rate, 0.05);
    EXPECT_EQ(b.defaults.delays[0], (DelaySpec{DelaySpec::Kind::fixed, 5'000}));
    EXPECT_EQ(b.defaults.delays[kEod], (DelaySpec{DelaySpec::Kind::fixed, 5'000}));
    EXPECT_EQ(b.defaults.delays[kRcpt], (DelaySpec{DelaySpec::Kind::lognormal, 5'000, 0, 0.5}));
    EXPECT_EQ(b.defaults.rate_limit.per_second, 1000);
    EXPECT_EQ(b.defaults.rate_limit.reply, RateLimitReply::defer_451);
    EXPECT_EQ(b.defaults.greylist_wait_us, std::optional<std::uint64_t>(300'000'000));
  }
}

TEST(SinkConfig, MaildirMode) {
  Result r = run({"--mode", "maildir", "--maildir", "/tmp/md"});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.cfg.mode, SinkMode::maildir);
  EXPECT_EQ(r.cfg.maildir, "/tmp/md");
  r = run({"--mode", "count"});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.cfg.mode, SinkMode::count);
}

TEST(SinkConfig, BadFlagsAreRefusedWithTheReason) {
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--tempfail-rate", "1.5"},
       "ringmta-sink: --tempfail-rate: must be a probability from 0 to 1, got '1.5'\n"},
      {{"--permfail-rate", "x"},
       "ringmta-sink: --permfail-rate: must be a probability from 0 to 1, got 'x'\n"},
      {{"--disconnect-rate", "-0.1"},
       "ringmta-sink: --disconnect-rate: must be a probability from 0 to 1, got '-0.1'\n"},
      {{"--delay", "5"}, "ringmta-sink: --delay: '5' has no unit (us, ms, s, m or h)\n"},
      {{"--delay-data", "uniform:9ms-1ms"},
       "ringmta-sink: --delay-data: 'uniform:9ms-1ms': the low bound is above the high "
       "bound\n"},
      {{"--greylist-wait", "soon"},
       "ringmta-sink: --greylist-wait: 'soon' is not a duration (a number and a unit: 250us, "
       "5ms, 1.5s, 2m, 1h)\n"},
      {{"--rate-limit", "-5"},
       "ringmta-sink: --rate-limit: must be a rate per second from 0 (off) to 1e9, got '-5'\n"},
      {{"--rate-limit-reply", "450"},
       "ringmta-sink: --rate-limit-reply: must be 421 (4.7.0, then close) or 451 (4.7.1, the "
       "session goes on), got '450'\n"},
      {{"--threads", "0"},
       "ringmta-sink: --threads: must be a thread count from 1 to 1024, got '0'\n"},
      {{"--seed", "-1"}, "ringmta-sink: --seed: must be an integer from 0 to 2^63-1, got '-1'\n"},
      {{"--max-connections", "many"},
       "ringmta-sink: --max-connections: must be a count from 0 (no limit) to 10000000, got "
       "'many'\n"},
      {{"--max-message-size", "10X"},
       "ringmta-sink: --max-message-size: must be a size in bytes (an integer, or text such "
       "as \"512K\", \"35M\", \"1G\"), got '10X'\n"},
      {{"--mode", "store"},
       "ringmta-sink: --mode: must be discard, count, digest or maildir, got 'store'\n"},
      {{"--hostname", "a b"},
       "ringmta-sink: --hostname: must be a host name (no spaces), got 'a b'\n"},
      {{"--mode", "digest"},
       "ringmta-sink: --mode digest needs --digest-log FILE (digest-log in the file)\n"},
      {{"--mode", "maildir"},
       "ringmta-sink: --mode maildir needs --maildir DIR (maildir in the file)\n"},
      {{"--digest-log", "x.log"},
       "ringmta-sink: --digest-log is only used with --mode digest (mode is discard)\n"},
      {{"--maildir", "/tmp/x", "--mode", "count"},
       "ringmta-sink: --maildir is only used with --mode maildir (mode is count)\n"},
      {{"--tempfail-rate", "0.6", "--permfail-rate", "0.5"},
       "ringmta-sink: listener 127.0.0.1:2525: the rules of phase 'end-of-data' add up to "
       "probability 1.1 (tempfail-rate, permfail-rate and disconnect-rate included); one draw "
       "decides between them, so the total is at most 1\n"},
      {{"--listen", "127.0.0.1:2600", "--listen", "127.0.0.1:2600"},
       "ringmta-sink: listen address 127.0.0.1:2600 is given twice\n"},
      {{"--config", "/nonexistent/sink.toml"},
       "ringmta-sink: --config: cannot read '/nonexistent/sink.toml': No such file or "
       "directory\n"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = run(args);
    EXPECT_EQ(r.rc, 2) << message;
    EXPECT_EQ(r.err, message);
  }
}

// STARTTLS per listener: the modes, the certificate and key it needs, and the exact refusals
// (the relay reads the same settings through the same code and texts).
TEST(SinkConfig, StarttlsModesNeedACertificateAndKey) {
  const Result off = run({"--starttls", "off"});
  ASSERT_EQ(off.rc, -1) << off.err;
  EXPECT_FALSE(off.cfg.listeners[0].server.starttls || off.cfg.listeners[0].server.require_tls);
  const Result on = run({"--starttls", "on", "--tls-cert", "c.pem", "--tls-key", "k.pem"});
  ASSERT_EQ(on.rc, -1) << on.err;
  EXPECT_TRUE(on.cfg.listeners[0].server.starttls);
  EXPECT_FALSE(on.cfg.listeners[0].server.require_tls);
  EXPECT_EQ(on.cfg.listeners[0].tls_cert, "c.pem");
  EXPECT_EQ(on.cfg.listeners[0].tls_key, "k.pem");
  const Result required =
      run({"--starttls", "required", "--tls-cert", "c.pem", "--tls-key", "k.pem"});
  ASSERT_EQ(required.rc, -1) << required.err;
  EXPECT_TRUE(required.cfg.listeners[0].server.starttls &&
              required.cfg.listeners[0].server.require_tls);

  const std::string kNeeds =
      "starttls needs tls-cert and tls-key (--tls-cert FILE --tls-key FILE)\n";
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--starttls", "maybe", "--tls-cert", "c.pem", "--tls-key", "k.pem"},
       "ringmta-sink: --starttls: must be off, on or required, got 'maybe'\n"},
      {{"--starttls", "on"}, "ringmta-sink: listener 127.0.0.1:2525: " + kNeeds},
      {{"--starttls", "required", "--tls-cert", "c.pem"},
       "ringmta-sink: listener 127.0.0.1:2525: " + kNeeds},
      {{"--starttls", "on", "--tls-key", "k.pem", "--listen", "127.0.0.1:2570"},
       "ringmta-sink: listener 127.0.0.1:2570: " + kNeeds},
      {{"--tls-cert", ""}, "ringmta-sink: --tls-cert: must be a file name, not empty\n"},
      {{"--tls-key", ""}, "ringmta-sink: --tls-key: must be a file name, not empty\n"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = run(args);
    EXPECT_EQ(r.rc, 2) << message;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, message);
  }
  EXPECT_EQ(run({"--tls-cert", "c.pem", "--tls-key", "k.pem"}).rc, -1);

  const std::pair<std::string, std::string> toml_cases[] = {
      {"starttls = \"maybe\"\n", "1:12: starttls: must be off, on or required, got \"maybe\""},
      {"starttls = 1\n", "1:12: starttls: must be off, on or required, not an integer"},
      {"tls-cert = \"\"\n", "1:12: tls-cert: must be a file name, not empty"},
      {"[[listener]]\nlisten = \"127.0.0.1:2571\"\nstarttls = \"required\"\n"
       "tls-key = \"k.pem\"\n",
       "listener 127.0.0.1:2571: starttls needs tls-cert and tls-key (--tls-cert FILE "
       "--tls-key FILE)"},
  };
  for (const auto& [text, message] : toml_cases) {
    const TomlFile f(text);
    const Result r = run({"--config", f.path()});
    EXPECT_EQ(r.rc, 2) << text;
    const std::string where = message.rfind("listener ", 0) == 0 ? "" : f.path() + ":";
    EXPECT_EQ(r.err, "ringmta-sink: " + where + message + "\n") << text;
  }

  // --print-config writes each mode back as its word, with the files.
  for (const std::string mode : {"off", "on", "required"}) {
    const Result printed =
        run({"--starttls", mode, "--tls-cert", "c.pem", "--tls-key", "k.pem", "--print-config"});
    ASSERT_EQ(printed.rc, 0) << printed.err;
    EXPECT_NE(printed.out.find("\nstarttls = \"" + mode +
                               "\"\ntls-cert = \"c.pem\"\ntls-key = \"k.pem\"\n"),
              std::string::npos)
        << printed.out;
  }
}

TEST(SinkConfig, UsageErrorsExitTwo) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--bogus"}, {"extra"}, {"--threads"}, {"--seed", "1", "--seed", "2"}}) {
    const Result r = run(args);
    EXPECT_EQ(r.rc, 2) << args[0];
    EXPECT_EQ(r.err.rfind("ringmta-sink: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("--help"), std::string::npos) << r.err;
  }
  EXPECT_NE(run({"--bogus"}).err.find("--bogus"), std::string::npos);
}

TEST(SinkConfig, PortZeroMayRepeat) {
  const Result r = run({"--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.cfg.listeners.size(), 2u);
}

// ---- TOML ----------------------------------------------------------------------------------

constexpr const char* kFullConfig = R"(# three domains on one listener, and a second listener
threads = 1
mode = "digest"
digest-log = "/tmp/ids.log"
metrics = "127.0.0.1:9101"
seed = 5

[[listener]]
listen = "127.0.0.1:2526"
hostname = "mx.gmail.test"
max-message-size = "1M"
max-recipients = 50
max-connections = 100
chunking = false
tempfail-rate = 0.05
delay-end-of-data = "lognormal:2ms,0.3"
delay = "1ms"
rate-limit = 500
rate-limit-burst = 50
rate-limit-reply = 451
greylist-capacity = 1024

[[listener.rule]]
phase = "rcpt"
probability = 0.1
reply = "452 4.2.2 Mailbox full"

[[listener.rule]]
phase = "data"
probability = 0.01
action = "disconnect-mid-data"
after-bytes = 4096

[[listener.rule]]
phase = "connect"
probability = 0.02
action = "reply-and-disconnect"
delay = "uniform:1s-2s"

[listener.domain."slow.test"]
delay = "200ms"
greylist-wait = "5m"

[[listener.domain."slow.test".rule]]
phase = "end-of-data"
probability = 0.5
reply = "451 4.3.0 Slow and failing"

[listener.domain."*.broken.test"]
disconnect-rate = 0.3
rate-limit = 10

[[listener]]
listen = ["127.0.0.1:2527", "127.0.0.1:2528"]
)";

TEST(SinkConfigToml, FullExample) {
  const TomlFile f(kFullConfig);
  const Result r = run({"--config", f.path()});
  ASSERT_EQ(r.rc, -1) << r.err;
  const SinkConfig& c = r.cfg;
  EXPECT_EQ(c.threads, 1u);
  EXPECT_EQ(c.mode, SinkMode::digest);
  EXPECT_EQ(c.digest_log, "/tmp/ids.log");
  EXPECT_EQ(addr(*c.metrics), "127.0.0.1:9101");
  EXPECT_EQ(c.seed, 5u);
  ASSERT_EQ(c.listeners.size(), 3u);
  const ListenerConfig& l = c.listeners[0];
  EXPECT_EQ(addr(l.address), "127.0.0.1:2526");
  EXPECT_EQ(l.server.hostname, "mx.gmail.test");
  EXPECT_EQ(l.server.max_message_size, 1u << 20);
  EXPECT_EQ(l.server.max_recipients, 50u);
  EXPECT_FALSE(l.server.chunking);
  EXPECT_TRUE(l.server.pipelining);
  const BehaviourConfig& b = l.behaviour;
  EXPECT_EQ(b.max_connections, 100u);
  EXPECT_EQ(b.greylist_capacity, 1024u);
  EXPECT_EQ(b.defaults.tempfail_rate, 0.05);
  // `delay` comes after delay-end-of-data in the file; the per-phase key still wins.
  EXPECT_EQ(b.defaults.delays[kRcpt], (DelaySpec{DelaySpec::Kind::fixed, 1'000}));
  EXPECT_EQ(b.defaults.delays[kEod], (DelaySpec{DelaySpec::Kind::lognormal, 2'000, 0, 0.3}));
  EXPECT_EQ(b.defaults.rate_limit, (RateLimit{500, 50, RateLimitReply::defer_451}));
  ASSERT_EQ(b.defaults.rules.size(), 3u);
  EXPECT_EQ(b.defaults.rules[0].phase, Phase::rcpt);
  EXPECT_EQ(b.defaults.rules[0].probability, 0.1);
  EXPECT_EQ(b.defaults.rules[0].action, Action::Kind::reply);
  EXPECT_EQ(b.defaults.rules[0].reply, (ReplySpec{452, {4, 2, 2}, "Mailbox full"}));
  EXPECT_EQ(b.defaults.rules[1].action, Action::Kind::disconnect_mid_data);
  EXPECT_EQ(b.defaults.rules[1].after_bytes, 4096u);
  EXPECT_EQ(b.defaults.rules[2].action, Action::Kind::reply_and_disconnect);
  EXPECT_EQ(b.defaults.rules[2].reply.code, 421);  // the default close reply
  EXPECT_EQ(b.defaults.rules[2].delay,
            (DelaySpec{DelaySpec::Kind::uniform, 1'000'000, 2'000'000, 0}));
  ASSERT_EQ(b.domains.size(), 2u);
  const DomainProfile* slow = nullptr;
  const DomainProfile* broken = nullptr;
  for (const DomainProfile& d : b.domains) {
    if (d.pattern == "slow.test") slow = &d;
    if (d.pattern == "*.broken.test") broken = &d;
  }
  ASSERT_TRUE(slow && broken);
  // A domain `delay` covers the phases a domain can have only.
  EXPECT_EQ(slow->profile.delays[0].kind, DelaySpec::Kind::none);
  EXPECT_EQ(slow->profile.delays[kRcpt], (DelaySpec{DelaySpec::Kind::fixed, 200'000}));
  EXPECT_EQ(slow->profile.greylist_wait_us, std::optional<std::uint64_t>(300'000'000));
  ASSERT_EQ(slow->profile.rules.size(), 1u);
  EXPECT_EQ(slow->profile.rules[0].reply.text, "Slow and failing");
  EXPECT_EQ(broken->profile.disconnect_rate, 0.3);
  EXPECT_EQ(broken->profile.rate_limit.per_second, 10);
  EXPECT_EQ(broken->profile.tempfail_rate, 0);  // nothing inherited from the listener
  // The second table names two addresses with the same (default) settings.
  EXPECT_EQ(addr(c.listeners[1].address), "127.0.0.1:2527");
  EXPECT_EQ(addr(c.listeners[2].address), "127.0.0.1:2528");
  EXPECT_EQ(c.listeners[1].behaviour, BehaviourConfig{});
  // The configuration builds a Behaviour.
  EXPECT_NO_THROW(Behaviour{b});
}

TEST(SinkConfigToml, TopLevelSettingsApplyToTopLevelListen) {
  const TomlFile f(
      "listen = [\"127.0.0.1:2530\", \"127.0.0.1:2531\"]\nhostname = \"top.test\"\n"
      "tempfail-rate = 0.2\n[[rule]]\nphase = \"mail\"\nreply = \"421 4.7.0 Go away\"\n"
      "[domain.\"x.test\"]\npermfail-rate = 1\n[[listener]]\nlisten = \"127.0.0.1:2532\"\n");
  const Result r = run({"--config", f.path()});
  ASSERT_EQ(r.rc, -1) << r.err;
  ASSERT_EQ(r.cfg.listeners.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    const ListenerConfig& l = r.cfg.listeners[i];
    EXPECT_EQ(l.server.hostname, "top.test");
    EXPECT_EQ(l.behaviour.defaults.tempfail_rate, 0.2);
    ASSERT_EQ(l.behaviour.defaults.rules.size(), 1u);
    ASSERT_EQ(l.behaviour.domains.size(), 1u);
    EXPECT_EQ(l.behaviour.domains[0].profile.permfail_rate, 1);
  }
  // A [[listener]] table does not inherit the top-level settings.
  EXPECT_EQ(r.cfg.listeners[2].server.hostname, "localhost");
  EXPECT_EQ(r.cfg.listeners[2].behaviour, BehaviourConfig{});
  // --listen replaces the top-level listen.
  const Result r2 = run({"--config", f.path(), "--listen", "127.0.0.1:2600"});
  ASSERT_EQ(r2.rc, -1) << r2.err;
  ASSERT_EQ(r2.cfg.listeners.size(), 2u);
  EXPECT_EQ(addr(r2.cfg.listeners[0].address), "127.0.0.1:2600");
  EXPECT_EQ(r2.cfg.listeners[0].server.hostname, "top.test");
}

TEST(SinkConfigToml, FlagsOverrideTheFileInEveryListener) {
  const TomlFile f(
      "mode = \"count\"\nthreads = 1\n[[listener]]\nlisten = \"127.0.0.1:2540\"\n"
      "tempfail-rate = 0.3\nhostname = \"a.test\"\n[listener.domain.\"d.test\"]\n"
      "tempfail-rate = 0.7\n[[listener]]\nlisten = \"127.0.0.1:2541\"\n");
  const Result r =
      run({"--config", f.path(), "--tempfail-rate", "0.1", "--threads", "2", "--no-dsn"});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.cfg.threads, 2u);
  EXPECT_EQ(r.cfg.mode, SinkMode::count);
  ASSERT_EQ(r.cfg.listeners.size(), 2u);
  for (const ListenerConfig& l : r.cfg.listeners) {
    EXPECT_EQ(l.behaviour.defaults.tempfail_rate, 0.1);
    EXPECT_FALSE(l.server.dsn);
  }
  EXPECT_EQ(r.cfg.listeners[0].server.hostname, "a.test");
  EXPECT_EQ(r.cfg.listeners[0].behaviour.domains[0].profile.tempfail_rate, 0.7);
}

// Each bad file gives one line: path:line:col: key: reason.
TEST(SinkConfigToml, EveryErrorNamesFileLineAndReason) {
  const std::pair<std::string, std::string> cases[] = {
      {"tempfail_rate = 0.1\n",
       "1:1: tempfail_rate: unknown top-level key (did you mean 'tempfail-rate'?)"},
      {"\n\nbogus = 1\n", "3:1: bogus: unknown top-level key"},
      {"tempfail-rate = 1.5\n", "1:17: tempfail-rate: must be a probability from 0 to 1, got 1.5"},
      {"tempfail-rate = \"0.1\"\n",
       "1:17: tempfail-rate: must be a probability from 0 to 1, not a string"},
      {"threads = 2.5\n",
       "1:11: threads: must be a thread count from 1 to 1024, not a floating-point number"},
      {"seed = -3\n", "1:8: seed: must be an integer from 0 to 2^63-1, got -3"},
      {"mode = \"store\"\n", "1:8: mode: must be discard, count, digest or maildir, got \"store\""},
      {"metrics = \"localhost:9100\"\n",
       "1:11: metrics: 'localhost:9100': not a numeric IPv4 address (IPv6 goes in brackets; "
       "no host names): \"localhost:9100\""},
      {"delay-rcpt = \"5\"\n", "1:14: delay-rcpt: '5' has no unit (us, ms, s, m or h)"},
      {"delay-later = \"5ms\"\n",
       "1:15: delay-later: unknown phase 'later' (connect, ehlo, mail, rcpt, data or "
       "end-of-data)"},
      {"delay = \"lognormal:5ms\"\n",
       "1:9: delay: 'lognormal:5ms': write lognormal:MEDIAN,SIGMA, e.g. lognormal:5ms,0.5"},
      {"greylist-wait = \"-1s\"\n", "1:17: greylist-wait: '-1s': a duration cannot be negative"},
      {"pipelining = \"no\"\n", "1:14: pipelining: must be true or false, not a string"},
      {"rate-limit-reply = 450\n",
       "1:20: rate-limit-reply: must be 421 (4.7.0, then close) or 451 (4.7.1, the session goes "
       "on), got 450"},
      {"max-recipients = 0\n", "1:18: max-recipients: must be from 1 to 1000000, got 0"},
      {"listen = []\n", "1:10: listen: must name at least one address \"HOST:PORT\""},
      {"[[listener]]\nhostname = \"x\"\n", "1:1: [[listener]]: needs listen = \"HOST:PORT\""},
      {"[[listener]]\nlisten = \"127.0.0.1:1\"\nthreads = 2\n",
       "3:1: threads: unknown [[listener]] key (a process-wide setting: put it at the top "
       "level of the file)"},
      {"[listener]\nlisten = \"127.0.0.1:1\"\n",
       "1:1: listener: must be an array of tables: write [[listener]]"},
      {"[[rule]]\nprobability = 0.5\nreply = \"451 x\"\n",
       "1:1: [[rule]]: a rule needs a phase (connect, ehlo, mail, rcpt, data or end-of-data)"},
      {"[[rule]]\nphase = \"quit\"\nreply = \"451 x\"\n",
       "2:9: phase: unknown phase \"quit\" (connect, ehlo, mail, rcpt, data or end-of-data)"},
      {"[[rule]]\nphase = \"rcpt\"\n",
       "1:1: [[rule]]: a rule needs a reply (e.g. reply = \"451 4.3.0 Try again later\") or an "
       "action"},
      {"[[rule]]\nphase = \"rcpt\"\nprobability = 2\nreply = \"451 x\"\n",
       "3:15: probability: must be a probability from 0 to 1, got 2"},
      {"[[rule]]\nphase = \"rcpt\"\nreply = \"250 2.0.0 fine\"\n",
       "3:9: reply: reply 250 is not a failure: a rule replies with 4xx or 5xx"},
      {"[[rule]]\nphase = \"rcpt\"\nreply = \"451 5.3.0 x\"\n",
       "3:9: reply: enhanced status code 5.3.0 does not match reply code 451 (RFC 3463 2: its "
       "class is the code's first digit)"},
      {"[[rule]]\nphase = \"connect\"\nreply = \"450 4.3.0 x\"\n",
       "3:9: reply: at phase 'connect' only 421 or 554 can replace the 220 banner (RFC 5321 "
       "3.1), not 450"},
      {"[[rule]]\nphase = \"rcpt\"\naction = \"explode\"\n",
       "3:10: action: unknown action \"explode\" (reply, disconnect, reply-and-disconnect or "
       "disconnect-mid-data)"},
      {"[[rule]]\nphase = \"rcpt\"\naction = \"disconnect-mid-data\"\n",
       "3:10: action: action 'disconnect-mid-data' works at phase 'data' only, not 'rcpt'"},
      {"[[rule]]\nphase = \"rcpt\"\naction = \"disconnect\"\nreply = \"421 x\"\n",
       "4:9: reply: action 'disconnect' sends no reply; remove reply or use action "
       "'reply-and-disconnect'"},
      {"[[rule]]\nphase = \"rcpt\"\nreply = \"451 x\"\nafter-bytes = 5\n",
       "4:15: after-bytes: after-bytes is only used with action 'disconnect-mid-data'"},
      {"[[rule]]\nphase = \"rcpt\"\nreply = \"451 x\"\nfoo = 1\n",
       "4:1: foo: unknown [[rule]] key"},
      {"[[rule]]\nphase = \"rcpt\"\nprobability = 0.7\nreply = \"451 x\"\n"
       "[[rule]]\nphase = \"rcpt\"\nprobability = 0.4\nreply = \"550 x\"\n",
       "7:15: probability: the rules of phase 'rcpt' add up to probability 1.1 with this one; "
       "one draw decides between them, so at most 1"},
      {"tempfail-rate = 0.6\npermfail-rate = 0.6\n",
       "2:17: permfail-rate: tempfail-rate, permfail-rate and disconnect-rate add up to 1.2; "
       "at most 1"},
      {"rule = 5\n", "1:8: rule: must be an array of tables: write [[rule]]"},
      {"domain = \"x.test\"\n",
       "1:10: domain: must be a table of domain tables: write [domain.\"example.test\"]"},
      {"[domain.\"bad domain\"]\n",
       "1:9: domain: 'bad domain' is not a domain name or a *.domain pattern"},
      {"[domain.\"x.test\"]\nhostname = \"a\"\n",
       "2:1: hostname: unknown domain table key (a listener setting; a domain table takes "
       "tempfail-rate, permfail-rate, disconnect-rate, delay, delay-rcpt, delay-data, "
       "delay-end-of-data, greylist-wait, rate-limit, rate-limit-burst, rate-limit-reply and "
       "rule)"},
      {"[domain.\"x.test\"]\ndelay-mail = \"5ms\"\n",
       "2:14: delay-mail: never applies in a domain table (domains apply from rcpt on)"},
      {"[domain.\"x.test\"]\n[[domain.\"x.test\".rule]]\nphase = \"ehlo\"\nreply = \"451 x\"\n",
       "3:9: phase: phase \"ehlo\" never applies in a domain table (domains apply from rcpt "
       "on)"},
      // toml++ orders keys, so "X.test" is read first and "x.test" is the repeat.
      {"[domain.\"x.test\"]\n[domain.\"X.test\"]\n",
       "1:9: domain: 'x.test' is given twice (names ignore case)"},
      {"[domain.\"x.test\"]\ntempfail-rate = 0.5\n[[domain.\"x.test\".rule]]\n"
       "phase = \"end-of-data\"\nprobability = 0.6\nreply = \"554 x\"\n",
       "5:15: probability: the rules of phase 'end-of-data' add up to probability 1.1 with this "
       "one (tempfail-rate, permfail-rate and disconnect-rate included); one draw decides "
       "between them, so at most 1"},
      {"[[listener]]\nlisten = \"127.0.0.1:2550\"\n[listener.domain.\"x.test\"]\nbogus = 1\n",
       "4:1: bogus: unknown domain table key"},
      {"tempfail-rate = 0.1\n[[listener]]\nlisten = \"127.0.0.1:2551\"\n",
       "1:1: tempfail-rate: top-level listener settings apply to the top-level listen "
       "addresses (or --listen), and there are none; put it in each [[listener]] table"},
      {"mode = \"digest\"\n", "--mode digest needs --digest-log FILE (digest-log in the file)"},
      {"x = = 1\n", "1:5: Error while parsing value: could not determine value type"},
  };
  for (const auto& [text, message] : cases) {
    const TomlFile f(text);
    const Result r = run({"--config", f.path()});
    EXPECT_EQ(r.rc, 2) << text;
    const std::string where = message.rfind("--", 0) == 0 ? "" : f.path() + ":";
    EXPECT_EQ(r.err, "ringmta-sink: " + where + message + "\n") << text;
  }
}

TEST(SinkConfigToml, TopLevelSettingsWithCommandLineListenAreFine) {
  const TomlFile f("tempfail-rate = 0.1\n[[listener]]\nlisten = \"127.0.0.1:2552\"\n");
  const Result r = run({"--config", f.path(), "--listen", "127.0.0.1:2553"});
  ASSERT_EQ(r.rc, -1) << r.err;
  ASSERT_EQ(r.cfg.listeners.size(), 2u);
  EXPECT_EQ(r.cfg.listeners[0].behaviour.defaults.tempfail_rate, 0.1);
  EXPECT_EQ(r.cfg.listeners[1].behaviour.defaults.tempfail_rate, 0);
}

// ---- --print-config ------------------------------------------------------------------------

TEST(SinkConfigPrint, OutputReadsBackToAnEqualConfig) {
  const TomlFile f(kFullConfig);
  const Result first = run({"--config", f.path(), "--no-8bitmime", "--permfail-rate", "0.01",
                            "--delay-mail", "uniform:1ms-3ms", "--greylist-wait", "90s"});
  ASSERT_EQ(first.rc, -1) << first.err;
  const Result printed =
      run({"--config", f.path(), "--no-8bitmime", "--permfail-rate", "0.01", "--delay-mail",
           "uniform:1ms-3ms", "--greylist-wait", "90s", "--print-config"});
  ASSERT_EQ(printed.rc, 0) << printed.err;
  EXPECT_EQ(printed.out, format_sink_config(first.cfg));
  const TomlFile back(printed.out);
  const Result again = run({"--config", back.path()});
  ASSERT_EQ(again.rc, -1) << again.err << "\n" << printed.out;
  EXPECT_TRUE(again.cfg == first.cfg) << printed.out;
  EXPECT_EQ(format_sink_config(again.cfg), printed.out);
}

TEST(SinkConfigPrint, DefaultsAreWrittenOut) {
  const Result r = run({"--print-config"});
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* s :
       {"mode = \"discard\"", "seed = 1", "[[listener]]", "listen = \"127.0.0.1:2525\"",
        "hostname = \"localhost\"", "max-message-size = 36700160", "max-recipients = 100",
        "max-connections = 0", "pipelining = true", "8bitmime = true", "dsn = true", "magic = true",
        "tempfail-rate = 0.0", "delay-end-of-data = \"0s\"", "greylist-wait = \"off\"",
        "rate-limit = 0", "rate-limit-reply = 421", "# metrics"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  const TomlFile back(r.out);
  const Result again = run({"--config", back.path()});
  ASSERT_EQ(again.rc, -1) << again.err;
  EXPECT_TRUE(again.cfg == run({}).cfg);
}

TEST(SinkConfigPrint, StringsAreEscaped) {
  SinkConfig c;
  c.mode = SinkMode::maildir;
  c.maildir = "/tmp/a \"quoted\" \\ dir";
  ListenerConfig l;
  io::parse_socket_address("[::1]:0", l.address, nullptr);
  Rule r;
  r.phase = Phase::rcpt;
  r.reply = ReplySpec{451, {4, 3, 0}, "Say \"later\" \\ please"};
  l.behaviour.defaults.rules.push_back(r);
  c.listeners.push_back(l);
  const TomlFile f(format_sink_config(c));
  const Result back = run({"--config", f.path()});
  ASSERT_EQ(back.rc, -1) << back.err;
  EXPECT_TRUE(back.cfg == c) << format_sink_config(c);
}

}  // namespace
}  // namespace ringmta::sink
