// ringmta-loadgen configuration: every flag and TOML key, the defaults, every refusal with
// its exact one-line message, --help/--version, and --print-config reading back to an equal
// configuration.
#include "loadgen/load_config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/unit/config/config_test_support.hpp"

namespace ringmta::loadgen {
namespace {

using config_test::TomlFile;
using Result = config_test::LoadResult<LoadConfig>;

Result run(std::vector<std::string> args) {
  return config_test::run_loader<LoadConfig>(load_loadgen_config, "ringmta-loadgen",
                                             std::move(args));
}

// The one line a refusal writes, and its exit code.
std::string refusal(std::vector<std::string> args) {
  return config_test::refusal_text(run(std::move(args)));
}

// ---- Defaults and flags ----------------------------------------------------------------------

TEST(LoadConfig, NoArgumentsGiveTheLoopbackDefaults) {
  const Result r = run({});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, "");
  const LoadConfig& c = r.cfg;
  EXPECT_EQ(c.target.to_string(), "127.0.0.1:2525");
  EXPECT_EQ(c.threads, 1u);
  EXPECT_EQ(c.connections, 50u);
  EXPECT_EQ(c.rate, 0);
  EXPECT_EQ(c.arrival, Arrival::constant);
  EXPECT_EQ(c.messages, 0u);
  EXPECT_EQ(c.duration_s, 10);
  EXPECT_EQ(c.warmup_s, 0);
  EXPECT_EQ(c.ramp_up_s, 0);
  EXPECT_EQ(c.messages_per_connection, 0u);
  EXPECT_EQ(c.think_time_us, 0u);
  EXPECT_EQ(c.helo, "loadgen.ringmta.test");
  EXPECT_TRUE(c.pipelining);
  EXPECT_FALSE(c.bdat);
  EXPECT_EQ(c.connect_timeout_ms, 10'000u);
  EXPECT_EQ(c.reply_timeout_ms, 60'000u);
  EXPECT_EQ(c.size, "1024");
  EXPECT_EQ(c.recipients, "1");
  EXPECT_EQ(c.to_domains, std::vector<std::string>{"ringmta.test"});
  EXPECT_EQ(c.from, "loadgen@ringmta.test");
  EXPECT_EQ(c.seed, 1u);
  EXPECT_EQ(c.json_path, "");
  EXPECT_EQ(c.ledger_path, "");
  EXPECT_TRUE(c.progress);
  // r<yyyymmddThhmmss>-<pid>
  EXPECT_TRUE(std::regex_match(c.run_id, std::regex("r[0-9]{8}T[0-9]{6}-[0-9]+"))) << c.run_id;
  EXPECT_TRUE(c.run_id.ends_with("-" + std::to_string(::getpid()))) << c.run_id;
}

TEST(LoadConfig, EveryFlagSetsItsField) {
  const Result r = run({"--target",
                        "[::1]:2600",
                        "--threads",
                        "2",
                        "--connections",
                        "7",
                        "--rate",
                        "1500.5",
                        "--arrival",
                        "poisson",
                        "--messages",
                        "1234",
                        "--duration",
                        "2m",
                        "--warmup",
                        "15s",
                        "--ramp-up",
                        "500ms",
                        "--messages-per-connection",
                        "100",
                        "--helo",
                        "client.example",
                        "--no-pipelining",
                        "--bdat",
                        "--connect-timeout",
                        "250ms",
                        "--timeout",
                        "2s",
                        "--size",
                        "uniform:1K-64K",
                        "--recipients",
                        "uniform:1-5",
                        "--to-domain",
                        "a.test:3",
                        "--to-domain",
                        "b.test",
                        "--from",
                        "sender@example.test",
                        "--run-id",
                        "nightly_2024.01-a",
                        "--seed",
                        "42",
                        "--json",
                        "out.json",
                        "--ledger",
                        "out.ledger",
                        "--no-progress"});
  ASSERT_EQ(r.rc, -1) << r.err;
  const LoadConfig& c = r.cfg;
  EXPECT_EQ(c.target.to_string(), "[::1]:2600");
  EXPECT_EQ(c.threads, 2u);
  EXPECT_EQ(c.connections, 7u);
  EXPECT_EQ(c.rate, 1500.5);
  EXPECT_EQ(c.arrival, Arrival::poisson);
  EXPECT_EQ(c.messages, 1234u);
  EXPECT_EQ(c.duration_s, 120);
  EXPECT_EQ(c.warmup_s, 15);
  EXPECT_EQ(c.ramp_up_s, 0.5);
  EXPECT_EQ(c.messages_per_connection, 100u);
  EXPECT_EQ(c.helo, "client.example");
  EXPECT_FALSE(c.pipelining);
  EXPECT_TRUE(c.bdat);
  EXPECT_EQ(c.connect_timeout_ms, 250u);
  EXPECT_EQ(c.reply_timeout_ms, 2'000u);
  EXPECT_EQ(c.size, "uniform:1K-64K");
  EXPECT_EQ(c.recipients, "uniform:1-5");
  EXPECT_EQ(c.to_domains, (std::vector<std::string>{"a.test:3", "b.test"}));
  EXPECT_EQ(c.from, "sender@example.test");
  EXPECT_EQ(c.run_id, "nightly_2024.01-a");
  EXPECT_EQ(c.seed, 42u);
  EXPECT_EQ(c.json_path, "out.json");
  EXPECT_EQ(c.ledger_path, "out.ledger");
  EXPECT_FALSE(c.progress);
}

TEST(LoadConfig, ThinkTimeIsAClosedLoopSetting) {
  const Result r = run({"--think-time", "5ms"});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.cfg.think_time_us, 5'000u);
  EXPECT_EQ(r.cfg.rate, 0);
}

TEST(LoadConfig, DurationsTakeUnitsOrBareSeconds) {
  struct Case {
    const char* text;
    double seconds;
  };
  for (const Case& k :
       {Case{"10s", 10}, Case{"2m", 120}, Case{"1h", 3600}, Case{"1.5", 1.5}, Case{"30", 30},
        Case{"250ms", 0.25}, Case{"1500us", 0.0015}, Case{"0.5s", 0.5}, Case{"100ns", 1e-7}}) {
    const Result r = run({"--duration", k.text});
    ASSERT_EQ(r.rc, -1) << k.text << ": " << r.err;
    EXPECT_DOUBLE_EQ(r.cfg.duration_s, k.seconds) << k.text;
  }
  const Result t = run({"--timeout", "1.5", "--connect-timeout", "3"});
  ASSERT_EQ(t.rc, -1) << t.err;
  EXPECT_EQ(t.cfg.reply_timeout_ms, 1'500u);
  EXPECT_EQ(t.cfg.connect_timeout_ms, 3'000u);
}

TEST(LoadConfig, MessagesAloneSendThemWithoutATimeLimit) {
  // As smtp-source -m N: the count ends the run, however long it takes.
  const Result r = run({"--messages", "500"});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.cfg.messages, 500u);
  EXPECT_EQ(r.cfg.duration_s, 0);
  // Both given: both apply, whichever comes first.
  const Result both = run({"--messages", "500", "--duration", "30s"});
  ASSERT_EQ(both.rc, -1) << both.err;
  EXPECT_EQ(both.cfg.messages, 500u);
  EXPECT_EQ(both.cfg.duration_s, 30);
  // A duration of 0 lifts the time limit when a count is given.
  const Result count = run({"--duration", "0", "--messages", "9"});
  ASSERT_EQ(count.rc, -1) << count.err;
  EXPECT_EQ(count.cfg.duration_s, 0);
}

TEST(LoadConfig, SizeAcceptsEveryFactorySpecAndKeepsTheText) {
  for (const char* s : {"1", "512", "64K", "4m", "1G", "uniform:1K-64K", "lognormal:4K,1.0"}) {
    const Result r = run({"--size", s});
    ASSERT_EQ(r.rc, -1) << s << ": " << r.err;
    EXPECT_EQ(r.cfg.size, s);
  }
}

TEST(LoadConfig, RecipientsAndFromForms) {
  for (const char* s : {"1", "100", "1000", "uniform:1-1", "uniform:2-50"}) {
    const Result r = run({"--recipients", s});
    ASSERT_EQ(r.rc, -1) << s << ": " << r.err;
    EXPECT_EQ(r.cfg.recipients, s);
  }
  const Result from = run({"--from", "bounce+x@sub.example.test"});
  ASSERT_EQ(from.rc, -1) << from.err;
  EXPECT_EQ(from.cfg.from, "bounce+x@sub.example.test");
  const Result upper = run({"--to-domain", "Mixed.Test:1000000"});
  ASSERT_EQ(upper.rc, -1) << upper.err;
  EXPECT_EQ(upper.cfg.to_domains, std::vector<std::string>{"Mixed.Test:1000000"});
  const Result helo = run({"--helo", "[127.0.0.1]"});
  ASSERT_EQ(helo.rc, -1) << helo.err;
  EXPECT_EQ(helo.cfg.helo, "[127.0.0.1]");
}

TEST(LoadConfig, HelpShowsGroupsUnitsDefaultsAndTheLoopModes) {
  const Result r = run({"--help"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.err, "");
  for (const char* s : {"Target:",
                        "Load (closed loop unless --rate; see below):",
                        "SMTP:",
                        "Messages:",
                        "Output:",
                        "--target HOST:PORT",
                        "--rate R",
                        "--duration DURATION",
                        "(default 10s",
                        "(default 50)",
                        "coordinated omission",
                        "Closed loop",
                        "Open loop",
                        "250us, 5ms",
                        "--to-domain DOMAIN[:WEIGHT]",
                        "--size BYTES|SPEC",
                        "Exit codes",
                        "--no-pipelining",
                        "--print-config",
                        "--version"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << "missing: " << s << "\n" << r.out;
  }
  // 100 columns at most, so it reads in a terminal.
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_LE(line.size(), 100u) << line;
  }
}

TEST(LoadConfig, VersionPrintsTheVersion) {
  const Result r = run({"--version"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.out.rfind("ringmta-loadgen ", 0), 0u) << r.out;
}

// ---- Refusals --------------------------------------------------------------------------------

TEST(LoadConfig, EveryBadFlagIsRefusedWithItsReason) {
  struct Case {
    std::vector<std::string> args;
    std::string err;  // the whole line, or a prefix when it does not end with "\n"
  };
  const std::vector<Case> cases = {
      {{"--target", "localhost:25"},
       "ringmta-loadgen: --target: 'localhost:25': "},  // prefix: the reason is the parser's
      {{"--target", "127.0.0.1:0"},
       "ringmta-loadgen: --target: '127.0.0.1:0': port 0 cannot be connected to\n"},
      {{"--threads", "0"},
       "ringmta-loadgen: --threads: must be a thread count from 1 to 1024, got '0'\n"},
      {{"--threads", "two"},
       "ringmta-loadgen: --threads: must be a thread count from 1 to 1024, got 'two'\n"},
      {{"--connections", "0"},
       "ringmta-loadgen: --connections: must be a connection count from 1 to 1000000, got '0'\n"},
      {{"--rate", "0"},
       "ringmta-loadgen: --rate: must be above 0 messages per second, got '0' (leave it out for "
       "a closed loop)\n"},
      {{"--rate", "-5"},
       "ringmta-loadgen: --rate: must be a rate in messages per second, from above 0 to 1e9, "
       "got '-5'\n"},
      {{"--rate", "inf"},
       "ringmta-loadgen: --rate: must be a rate in messages per second, from above 0 to 1e9, "
       "got 'inf'\n"},
      {{"--rate", "nan"},
       "ringmta-loadgen: --rate: must be a rate in messages per second, from above 0 to 1e9, "
       "got 'nan'\n"},
      {{"--rate", "10", "--arrival", "burst"},
       "ringmta-loadgen: --arrival: must be constant or poisson, got 'burst'\n"},
      {{"--messages", "-1"},
       "ringmta-loadgen: --messages: must be a message count (0: no count limit), got '-1'\n"},
      {{"--duration", "10x"},
       "ringmta-loadgen: --duration: '10x': unknown unit 'x' (ns, us, ms, s, m or h; none means "
       "seconds)\n"},
      {{"--duration", "-1s"},
       "ringmta-loadgen: --duration: '-1s': a duration cannot be negative\n"},
      {{"--duration", "ten"},
       "ringmta-loadgen: --duration: 'ten' is not a duration (a number and a unit: 250us, 5ms, "
       "1.5s, 2m, 1h; or seconds)\n"},
      {{"--duration", "721h"}, "ringmta-loadgen: --duration: must be at most 720h, got '721h'\n"},
      {{"--duration", "0.0000000001"},
       "ringmta-loadgen: --duration: '0.0000000001' has more than 9 decimals\n"},
      {{"--duration", "1.5ns"},
       "ringmta-loadgen: --duration: '1.5ns' is finer than a nanosecond\n"},
      {{"--warmup", ""}, "ringmta-loadgen: --warmup: empty duration (write e.g. 10s, 500ms, 2m)\n"},
      {{"--think-time", "1500ns"},
       "ringmta-loadgen: --think-time: must be whole microseconds, got '1500ns'\n"},
      {{"--think-time", "2h"}, "ringmta-loadgen: --think-time: must be at most 1h, got '2h'\n"},
      {{"--timeout", "500us"},
       "ringmta-loadgen: --timeout: must be whole milliseconds, at least 1ms, got '500us'\n"},
      {{"--connect-timeout", "0"},
       "ringmta-loadgen: --connect-timeout: must be whole milliseconds, at least 1ms, got '0'\n"},
      {{"--messages-per-connection", "4294967296"},
       "ringmta-loadgen: --messages-per-connection: must be a message count (0: reuse the "
       "connection forever), got '4294967296'\n"},
      {{"--helo", "bad name"},
       "ringmta-loadgen: --helo: must be a domain or an address literal such as [127.0.0.1] "
       "(RFC 5321 4.1.1.1), got 'bad name'\n"},
      {{"--size", "0"}, "ringmta-loadgen: --size: '0': a size must be at least 1 byte\n"},
      {{"--size", "2G"}, "ringmta-loadgen: --size: '2G' is larger than the 1G maximum\n"},
      {{"--size", "normal:1K"},
       "ringmta-loadgen: --size: 'normal:1K': unknown distribution 'normal' "},  // prefix
      {{"--recipients", "0"},
       "ringmta-loadgen: --recipients: '0' is not a recipient count (a whole number from 1 to "
       "1000)\n"},
      {{"--recipients", "1001"},
       "ringmta-loadgen: --recipients: '1001' is not a recipient count (a whole number from 1 to "
       "1000)\n"},
      {{"--recipients", "uniform:5-2"},
       "ringmta-loadgen: --recipients: 'uniform:5-2': the low bound is above the high bound\n"},
      {{"--to-domain", "a.test:0"},
       "ringmta-loadgen: --to-domain: 'a.test:0': the weight '0' is not a whole number from 1 to "
       "1000000\n"},
      {{"--to-domain", "a.test:1.5"},
       "ringmta-loadgen: --to-domain: 'a.test:1.5': the weight '1.5' is not a whole number from 1 "
       "to 1000000\n"},
      {{"--to-domain", "a.test:x"},
       "ringmta-loadgen: --to-domain: 'a.test:x': the weight 'x' is not a whole number from 1 to "
       "1000000\n"},
      {{"--to-domain", "not a domain"},
       "ringmta-loadgen: --to-domain: 'not a domain' is not a domain name\n"},
      {{"--to-domain", "a.test", "--to-domain", "A.TEST:2"},
       "ringmta-loadgen: --to-domain: 'a.test' is given twice (names ignore case)\n"},
      {{"--from", "<a@b.test>"},
       "ringmta-loadgen: --from: must be an address such as loadgen@ringmta.test (local@domain, "
       "no angle brackets), got '<a@b.test>'\n"},
      {{"--from", "no-at-sign"},
       "ringmta-loadgen: --from: must be an address such as loadgen@ringmta.test (local@domain, "
       "no angle brackets), got 'no-at-sign'\n"},
      {{"--from", ""},
       "ringmta-loadgen: --from: must be an address such as loadgen@ringmta.test (local@domain, "
       "no angle brackets), got ''\n"},
      {{"--run-id", "a/b"},
       "ringmta-loadgen: --run-id: must be 1 to 64 letters, digits, '-', '.' or '_', got "
       "'a/b'\n"},
      {{"--run-id", ""},
       "ringmta-loadgen: --run-id: must be 1 to 64 letters, digits, '-', '.' or '_', got ''\n"},
      {{"--run-id", std::string(65, 'x')},
       "ringmta-loadgen: --run-id: must be 1 to 64 letters, digits, '-', '.' or '_', got '" +
           std::string(65, 'x') + "'\n"},
      {{"--seed", "9223372036854775808"},
       "ringmta-loadgen: --seed: must be an integer from 0 to 2^63-1, got "
       "'9223372036854775808'\n"},
  };
  for (const Case& k : cases) {
    const std::string err = refusal(k.args);
    const std::string want = k.err;
    if (want.ends_with("\n")) {
      EXPECT_EQ(err, want) << k.args[0];
    } else {
      EXPECT_EQ(err.rfind(want, 0), 0u) << err;
      EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
      EXPECT_TRUE(err.ends_with("\n")) << err;
    }
  }
}

TEST(LoadConfig, SettingsThatContradictEachOtherAreRefused) {
  EXPECT_EQ(refusal({"--duration", "0"}),
            "ringmta-loadgen: --duration: the run has no end: --duration and --messages are both "
            "0; set at least one\n");
  EXPECT_EQ(refusal({"--duration", "0", "--messages", "0"}),
            "ringmta-loadgen: --duration: the run has no end: --duration and --messages are both "
            "0; set at least one\n");
  EXPECT_EQ(refusal({"--duration", "10s", "--warmup", "10s"}),
            "ringmta-loadgen: --warmup: must be shorter than the duration (10s), which includes "
            "it\n");
  EXPECT_EQ(refusal({"--warmup", "1m"}),  // against the default 10s
            "ringmta-loadgen: --warmup: must be shorter than the duration (10s), which includes "
            "it\n");
  EXPECT_EQ(refusal({"--duration", "5s", "--ramp-up", "5s"}),
            "ringmta-loadgen: --ramp-up: must be shorter than the duration (5s)\n");
  EXPECT_EQ(refusal({"--arrival", "poisson"}),
            "ringmta-loadgen: --arrival: poisson arrivals need --rate (open loop); a closed loop "
            "sends each message when the previous one is answered\n");
  EXPECT_EQ(refusal({"--rate", "100", "--think-time", "1ms"}),
            "ringmta-loadgen: --think-time: only applies to a closed loop (no --rate); an open "
            "loop starts messages on its schedule\n");
  EXPECT_EQ(refusal({"--threads", "4", "--connections", "2"}),
            "ringmta-loadgen: --connections: 2 connections leave some of the 4 threads idle; "
            "give at least one per thread\n");
  EXPECT_EQ(refusal({"--json", "x", "--ledger", "x"}),
            "ringmta-loadgen: --ledger: is the same file as --json\n");
  // A warm-up in a count-bounded run (no time limit) is fine.
  const Result r = run({"--messages", "100", "--warmup", "1m"});
  EXPECT_EQ(r.rc, -1) << r.err;
}

TEST(LoadConfig, UsageErrorsAreOneLine) {
  EXPECT_EQ(refusal({"--frobnicate"}),
            "ringmta-loadgen: --frobnicate: unknown option (ringmta-loadgen --help lists them)\n");
  EXPECT_EQ(refusal({"--frobnicate=3"}),
            "ringmta-loadgen: --frobnicate: unknown option (ringmta-loadgen --help lists them)\n");
  EXPECT_EQ(refusal({"extra"}),
            "ringmta-loadgen: 'extra': unexpected argument (options take the form --name "
            "VALUE)\n");
  EXPECT_EQ(refusal({"--no-pipelining=false"}),
            "ringmta-loadgen: --no-pipelining: takes no value\n");
  EXPECT_EQ(refusal({"--rate", "1", "--rate", "2"}),
            "ringmta-loadgen: --rate: At Most 1 required but received 2 (ringmta-loadgen --help "
            "lists the options)\n");
  const std::string missing = refusal({"--rate"});
  EXPECT_EQ(missing.rfind("ringmta-loadgen: --rate: ", 0), 0u) << missing;
  EXPECT_EQ(std::count(missing.begin(), missing.end(), '\n'), 1) << missing;
}

// ---- TOML ------------------------------------------------------------------------------------

TEST(LoadConfig, EveryTomlKeySetsItsField) {
  const TomlFile f(R"(target = "127.0.0.2:2700"
threads = 3
connections = 9
rate = 250
arrival = "poisson"
messages = 77
duration = 90
warmup = "5s"
ramp-up = 2.5
messages-per-connection = 10
helo = "toml.example"
pipelining = false
bdat = true
connect-timeout = "1s"
timeout = "30s"
size = 2048
recipients = 2
to-domain = ["x.test:2", "y.test:15"]
from = "t@toml.example"
run-id = "from-toml"
seed = 7
json = "t.json"
ledger = "t.ledger"
progress = false
)");
  const Result r = run({"--config", f.path()});
  ASSERT_EQ(r.rc, -1) << r.err;
  const LoadConfig& c = r.cfg;
  EXPECT_EQ(c.target.to_string(), "127.0.0.2:2700");
  EXPECT_EQ(c.threads, 3u);
  EXPECT_EQ(c.connections, 9u);
  EXPECT_EQ(c.rate, 250);
  EXPECT_EQ(c.arrival, Arrival::poisson);
  EXPECT_EQ(c.messages, 77u);
  EXPECT_EQ(c.duration_s, 90);
  EXPECT_EQ(c.warmup_s, 5);
  EXPECT_EQ(c.ramp_up_s, 2.5);
  EXPECT_EQ(c.messages_per_connection, 10u);
  EXPECT_EQ(c.helo, "toml.example");
  EXPECT_FALSE(c.pipelining);
  EXPECT_TRUE(c.bdat);
  EXPECT_EQ(c.connect_timeout_ms, 1'000u);
  EXPECT_EQ(c.reply_timeout_ms, 30'000u);
  EXPECT_EQ(c.size, "2048");
  EXPECT_EQ(c.recipients, "2");
  EXPECT_EQ(c.to_domains, (std::vector<std::string>{"x.test:2", "y.test:15"}));
  EXPECT_EQ(c.from, "t@toml.example");
  EXPECT_EQ(c.run_id, "from-toml");
  EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(c.json_path, "t.json");
  EXPECT_EQ(c.ledger_path, "t.ledger");
  EXPECT_FALSE(c.progress);

  const TomlFile think("think-time = \"20ms\"\nto-domain = \"only.test\"\n");
  const Result t = run({"--config", think.path()});
  ASSERT_EQ(t.rc, -1) << t.err;
  EXPECT_EQ(t.cfg.think_time_us, 20'000u);
  EXPECT_EQ(t.cfg.to_domains, std::vector<std::string>{"only.test"});
}

TEST(LoadConfig, FlagsOverrideTheFile) {
  const TomlFile f(
      "connections = 9\nrate = 250\nto-domain = [\"x.test\", \"y.test\"]\nduration = \"1m\"\n");
  const Result r = run(
      {"--config", f.path(), "--connections", "3", "--to-domain", "z.test", "--duration", "20s"});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.cfg.connections, 3u);
  EXPECT_EQ(r.cfg.rate, 250);  // not overridden
  EXPECT_EQ(r.cfg.to_domains, std::vector<std::string>{"z.test"});
  EXPECT_EQ(r.cfg.duration_s, 20);
  // The file's duration counts as given: --messages then keeps it.
  const Result m = run({"--config", f.path(), "--messages", "5"});
  ASSERT_EQ(m.rc, -1) << m.err;
  EXPECT_EQ(m.cfg.duration_s, 60);
}

TEST(LoadConfig, TomlErrorsNameTheFileLineColumnAndKey) {
  struct Case {
    const char* toml;
    std::string err;  // after "ringmta-loadgen: FILE:"
  };
  const std::vector<Case> cases = {
      {"threads = 0\n", "1:11: threads: must be a thread count from 1 to 1024, got 0"},
      {"threads = \"2\"\n", "1:11: threads: must be a thread count from 1 to 1024, not a string"},
      {"\nrate = 0\n",
       "2:8: rate: must be above 0 messages per second, got 0 (leave it out for a closed loop)"},
      {"rate = true\n",
       "1:8: rate: must be a rate in messages per second, from above 0 to 1e9, not a boolean"},
      {"duration = \"5 s\"\n",
       "1:12: duration: '5 s': unknown unit ' s' (ns, us, ms, s, m or h; none means seconds)"},
      {"duration = -1\n",
       "1:12: duration: must be a duration such as \"10s\", \"500ms\" or \"2m\", or a number of "
       "seconds, got -1"},
      {"duration = [1]\n",
       "1:12: duration: must be a duration such as \"10s\", \"500ms\" or \"2m\", or a number of "
       "seconds, not an array"},
      {"pipelining = \"no\"\n", "1:14: pipelining: must be true or false, not a string"},
      {"size = 0\n", "1:8: size: must be a size in bytes from 1 to 1G, got 0"},
      {"size = \"uniform:9K-1K\"\n",
       "1:8: size: 'uniform:9K-1K': the low bound is above the high bound"},
      {"to-domain = []\n", "1:13: to-domain: must name at least one domain"},
      {"to-domain = [\"a.test\",\n  \"a.test:2\"]\n",
       "2:3: to-domain: 'a.test' is given twice (names ignore case)"},
      {"to-domain = 5\n",
       "1:13: to-domain: must be a domain, optionally with a weight: \"example.test:3\", not an "
       "integer"},
      {"target = \"127.0.0.1\"\n", "1:10: target: '127.0.0.1': "},  // reason from the parser
      {"threds = 2\n", "1:1: threds: unknown key"},
      {"ramp_up = 2\n", "1:1: ramp_up: unknown key (did you mean 'ramp-up'?)"},
      {"no-pipelining = true\n", "1:1: no-pipelining: unknown key (write pipelining = false)"},
      {"print-config = true\n", "1:1: print-config: unknown key (a command-line flag only)"},
      {"[target]\nhost = 1\n", "1:1: target: must be an address \"HOST:PORT\", not a table"},
      {"duration = \"10s\"\nwarmup = \"10s\"\n",
       "2:10: warmup: must be shorter than the duration (10s), which includes it"},
      {"duration = 0\n",
       "1:12: duration: the run has no end: --duration and --messages are both 0; set at least "
       "one"},
      {"arrival = \"poisson\"\n",
       "1:11: arrival: poisson arrivals need --rate (open loop); a closed loop sends each message "
       "when the previous one is answered"},
      {"threads = [", ""},  // a TOML syntax error: file:line:col and toml++'s words
  };
  for (const Case& k : cases) {
    const TomlFile f(k.toml);
    const std::string err = refusal({"--config", f.path()});
    const std::string prefix = "ringmta-loadgen: " + f.path() + ":";
    ASSERT_EQ(err.rfind(prefix, 0), 0u) << err;
    const std::string rest = err.substr(prefix.size());
    if (k.err.empty() || k.err.back() == ' ') {
      EXPECT_EQ(rest.rfind(k.err, 0), 0u) << rest;
    } else {
      EXPECT_EQ(rest, k.err + "\n");
    }
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
}

TEST(LoadConfig, UnreadableConfigFileIsRefused) {
  EXPECT_EQ(refusal({"--config", "/nonexistent/x.toml"}),
            "ringmta-loadgen: --config: cannot read '/nonexistent/x.toml': No such file or "
            "directory\n");
}

// ---- --print-config --------------------------------------------------------------------------

TEST(LoadConfig, PrintConfigReadsBackToTheSameConfiguration) {
  const std::vector<std::vector<std::string>> command_lines = {
      {"--run-id", "fixed"},
      {"--target",
       "[::1]:2600",
       "--threads",
       "2",
       "--connections",
       "7",
       "--rate",
       "1500.5",
       "--arrival",
       "poisson",
       "--messages",
       "1234",
       "--duration",
       "2m",
       "--warmup",
       "15s",
       "--ramp-up",
       "1.25",
       "--messages-per-connection",
       "100",
       "--helo",
       "client.example",
       "--no-pipelining",
       "--bdat",
       "--connect-timeout",
       "250ms",
       "--timeout",
       "90s",
       "--size",
       "lognormal:4K,0.5",
       "--recipients",
       "uniform:1-5",
       "--to-domain",
       "a.test:3",
       "--to-domain",
       "b.test",
       "--from",
       "x@y.test",
       "--run-id",
       "nightly.1",
       "--seed",
       "42",
       "--json",
       "out \"quoted\".json",
       "--ledger",
       "out.ledger",
       "--no-progress"},
      {"--messages", "10", "--run-id", "r", "--rate", "0.25", "--arrival", "constant"},
      {"--messages", "10", "--think-time", "1500us", "--run-id", "count-only"},
  };
  for (const auto& args : command_lines) {
    const Result direct = run(args);
    ASSERT_EQ(direct.rc, -1) << direct.err;
    std::vector<std::string> print = args;
    print.push_back("--print-config");
    const Result printed = run(print);
    ASSERT_EQ(printed.rc, 0) << printed.err;
    const TomlFile f(printed.out);
    const Result back = run({"--config", f.path()});
    ASSERT_EQ(back.rc, -1) << back.err << "\n" << printed.out;
    EXPECT_TRUE(back.cfg == direct.cfg) << printed.out;
    // And once more: the printed text is a fixed point.
    const Result again = run({"--config", f.path(), "--print-config"});
    EXPECT_EQ(again.out, printed.out);
  }
}

TEST(LoadConfig, PrintConfigShowsDefaultsAndLeavesAGeneratedRunIdOut) {
  const Result r = run({"--print-config"});
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* s :
       {"target = \"127.0.0.1:2525\"\n", "connections = 50\n", "duration = \"10s\"\n",
        "timeout = \"1m\"\n", "connect-timeout = \"10s\"\n", "size = \"1024\"\n",
        "to-domain = [\"ringmta.test\"]\n", "pipelining = true\n",
        "# rate = ", "# json = \"FILE\"  (off)\n", "# run-id = \"r"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << "missing: " << s << "\n" << r.out;
  }
  EXPECT_EQ(r.out.find("\nrun-id ="), std::string::npos) << r.out;
  // Read back, it is the same configuration with a fresh run id.
  const TomlFile f(r.out);
  const Result back = run({"--config", f.path()});
  ASSERT_EQ(back.rc, -1) << back.err;
  LoadConfig want;
  io::parse_socket_address("127.0.0.1:2525", want.target, nullptr);
  want.run_id = back.cfg.run_id;
  EXPECT_TRUE(back.cfg == want);
}

}  // namespace
}  // namespace ringmta::loadgen
