// The routing table and the alias table (relay/route_table.hpp), built from configurations
// loaded as ringmta-relay loads them (flags, or a --config TOML file): which destination a
// domain gets, hop order, pacing overrides, and what each alias expands to, exactly.
#include "relay/route_table.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "relay/relay_config.hpp"
#include "tests/unit/config/config_test_support.hpp"

namespace ringmta::relay {
namespace {

// A configuration loaded from these arguments; the test fails if it does not load.
RelayConfig load(std::vector<std::string> args) {
  const config_test::LoadResult<RelayConfig> r =
      config_test::run_loader<RelayConfig>(load_relay_config, "ringmta-relay", std::move(args));
  EXPECT_EQ(r.rc, -1) << r.err;
  return r.cfg;
}

// A configuration loaded from this TOML text (through a file, as --config reads it).
RelayConfig load_toml(const std::string& text) {
  const config_test::TomlFile f(text);
  return load({"--config", f.path()});
}

// The pattern of the destination a domain routes to; "" for no route.
std::string pattern_of(const RouteTable& t, std::string_view domain) {
  const Destination* d = t.route(domain);
  return d == nullptr ? "" : d->pattern;
}

// Hops as "address/priority", in the table's order.
std::vector<std::string> hops_of(const Destination& d) {
  std::vector<std::string> r;
  for (const Hop& h : d.hops)
    r.push_back(h.address.to_string() + "/" + std::to_string(h.priority));
  return r;
}

// What expand() appends for an address; {"<none>"} when no alias applies (and then it must
// leave out untouched).
std::vector<std::string> expand(const AliasTable& t, std::string_view address) {
  std::vector<std::string> out;
  if (!t.expand(address, out)) {
    EXPECT_TRUE(out.empty());
    return {"<none>"};
  }
  return out;
}

using Strings = std::vector<std::string>;

// ---- Routes ----------------------------------------------------------------------------------

TEST(RouteTable, ExactBeatsSuffixBeatsDefault) {
  // Written default first, so the order of the file is not what decides.
  const RouteTable t(load({"--route", "*=127.0.0.1:3", "--route", "*.example.test=127.0.0.1:2",
                           "--route", "example.test=127.0.0.1:1"}));
  ASSERT_EQ(t.destinations().size(), 3u);
  const Destination* exact = t.route("example.test");
  ASSERT_NE(exact, nullptr);
  EXPECT_EQ(exact->pattern, "example.test");
  EXPECT_EQ(exact->index, 2u);
  EXPECT_EQ(exact, &t.destinations()[2]);
  EXPECT_EQ(hops_of(*exact), Strings{"127.0.0.1:1/0"});

  const Destination* sub = t.route("mx.example.test");
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->pattern, "*.example.test");
  EXPECT_EQ(sub->index, 1u);
  EXPECT_EQ(hops_of(*sub), Strings{"127.0.0.1:2/0"});
  // Sub-domains at any depth.
  EXPECT_EQ(pattern_of(t, "a.b.c.example.test"), "*.example.test");

  const Destination* other = t.route("other.test");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->pattern, "*");
  EXPECT_EQ(other->index, 0u);
  EXPECT_EQ(hops_of(*other), Strings{"127.0.0.1:3/0"});
  // A domain that only ends with the same letters is not a sub-domain.
  EXPECT_EQ(pattern_of(t, "badexample.test"), "*");
  EXPECT_EQ(pattern_of(t, "example.test.other"), "*");
}

TEST(RouteTable, LongestSuffixWins) {
  const RouteTable t(load({"--route", "*.test=127.0.0.1:1", "--route",
                           "*.example.test=127.0.0.1:2", "--route",
                           "*.b.example.test=127.0.0.1:3"}));
  EXPECT_EQ(pattern_of(t, "a.b.example.test"), "*.b.example.test");
  EXPECT_EQ(pattern_of(t, "x.a.b.example.test"), "*.b.example.test");
  // b.example.test is not a sub-domain of itself: the next longer suffix takes it.
  EXPECT_EQ(pattern_of(t, "b.example.test"), "*.example.test");
  EXPECT_EQ(pattern_of(t, "c.example.test"), "*.example.test");
  EXPECT_EQ(pattern_of(t, "example.test"), "*.test");
  EXPECT_EQ(pattern_of(t, "other.test"), "*.test");
  // No default route: what no suffix matches has no route.
  EXPECT_EQ(t.route("test"), nullptr);
  EXPECT_EQ(t.route("example.org"), nullptr);
}

TEST(RouteTable, ASuffixDoesNotMatchItsOwnDomain) {
  const RouteTable only_sub(load({"--route", "*.example.test=127.0.0.1:1"}));
  EXPECT_EQ(only_sub.route("example.test"), nullptr);
  EXPECT_EQ(pattern_of(only_sub, "www.example.test"), "*.example.test");

  const RouteTable with_default(
      load({"--route", "*.example.test=127.0.0.1:1", "--route", "*=127.0.0.1:2"}));
  EXPECT_EQ(pattern_of(with_default, "example.test"), "*");
}

TEST(RouteTable, DomainsCompareIgnoringCase) {
  const RouteTable t(load_toml(R"([[route]]
domain = "Example.TEST"
hops = ["127.0.0.1:1"]

[[route]]
domain = "*.Sub.Example.Test"
hops = ["127.0.0.1:2"]
)"));
  ASSERT_EQ(t.destinations().size(), 2u);
  // Patterns are kept lower case.
  EXPECT_EQ(t.destinations()[0].pattern, "example.test");
  EXPECT_EQ(t.destinations()[1].pattern, "*.sub.example.test");
  EXPECT_EQ(pattern_of(t, "example.test"), "example.test");
  EXPECT_EQ(pattern_of(t, "EXAMPLE.TEST"), "example.test");
  EXPECT_EQ(pattern_of(t, "eXaMpLe.TeSt"), "example.test");
  EXPECT_EQ(pattern_of(t, "Host.SUB.example.TEST"), "*.sub.example.test");
  EXPECT_EQ(t.route("sub.example.test"), nullptr);
  EXPECT_EQ(t.route("Example.TEST2"), nullptr);
}

TEST(RouteTable, AddressLiteralsMatchOnlyTheirOwnEntry) {
  const RouteTable t(load_toml(R"([[route]]
domain = "[127.0.0.1]"
hops = ["127.0.0.1:1"]

[[route]]
domain = "[IPv6:::1]"
hops = ["[::1]:2"]

[[route]]
domain = "*"
hops = ["127.0.0.1:3"]
)"));
  EXPECT_EQ(pattern_of(t, "[127.0.0.1]"), "[127.0.0.1]");
  EXPECT_EQ(pattern_of(t, "[IPv6:::1]"), "[ipv6:::1]");
  EXPECT_EQ(pattern_of(t, "[ipv6:::1]"), "[ipv6:::1]");
  // Another literal gets neither a literal entry nor the default route (route_table.hpp).
  EXPECT_EQ(t.route("[127.0.0.2]"), nullptr);
  EXPECT_EQ(t.route("[10.0.0.1]"), nullptr);
  EXPECT_EQ(t.route("[IPv6:0:0:0:0:0:0:0:1]"), nullptr);  // the same address, written otherwise
  // The bare numbers are a (strange) domain, not the literal.
  EXPECT_EQ(pattern_of(t, "127.0.0.1"), "*");
}

TEST(RouteTable, NoRouteIsNull) {
  const RouteTable none(load({}));
  EXPECT_TRUE(none.destinations().empty());
  EXPECT_EQ(none.route("example.test"), nullptr);
  EXPECT_EQ(none.route("[127.0.0.1]"), nullptr);

  const RouteTable one(load({"--route", "example.test=127.0.0.1:1"}));
  EXPECT_EQ(one.route("example.org"), nullptr);
  EXPECT_EQ(one.route("www.example.test"), nullptr);
  EXPECT_EQ(one.route("test"), nullptr);

  const RouteTable empty_table;
  EXPECT_EQ(empty_table.route("example.test"), nullptr);
}

TEST(RouteTable, HopsAreSortedByPriorityKeepingTheWrittenOrderOfEqualOnes) {
  const RouteTable t(load_toml(R"([[route]]
domain = "example.test"
hops = [{ address = "127.0.0.1:1", priority = 10 },
        { address = "127.0.0.1:2", priority = 5 },
        { address = "127.0.0.1:3", priority = 10 },
        { address = "127.0.0.1:4", priority = 5 },
        { address = "[::1]:5", priority = 0 },
        { address = "127.0.0.1:6", priority = 65535 },
        { address = "127.0.0.1:7", priority = 10 }]

[[route]]
domain = "*"
hops = ["127.0.0.1:9", "127.0.0.1:8", "[127.0.0.1]:7"]
)"));
  ASSERT_EQ(t.destinations().size(), 2u);
  EXPECT_EQ(hops_of(t.destinations()[0]),
            (Strings{"[::1]:5/0", "127.0.0.1:2/5", "127.0.0.1:4/5", "127.0.0.1:1/10",
                     "127.0.0.1:3/10", "127.0.0.1:7/10", "127.0.0.1:6/65535"}));
  // Strings: failover in the order written (priority = position).
  EXPECT_EQ(hops_of(t.destinations()[1]),
            (Strings{"127.0.0.1:9/0", "127.0.0.1:8/1", "127.0.0.1:7/2"}));
  // The flag form too.
  const RouteTable f(load({"--route", "x.test=127.0.0.1:3,127.0.0.1:1,127.0.0.1:2"}));
  EXPECT_EQ(hops_of(f.destinations()[0]),
            (Strings{"127.0.0.1:3/0", "127.0.0.1:1/1", "127.0.0.1:2/2"}));
}

TEST(RouteTable, RoutePolicyOverridesTheGlobalDefaults) {
  const RouteTable t(load_toml(R"(destination-concurrency = 7
messages-per-connection = 50
destination-rate = 12.5
bdat = false

[[route]]
domain = "a.test"
hops = ["127.0.0.1:1"]
concurrency = 3
rate = 2.5

[[route]]
domain = "b.test"
hops = ["127.0.0.1:2"]

[[route]]
domain = "c.test"
hops = ["127.0.0.1:3"]
messages-per-connection = 0
bdat = true
rate = 0
)"));
  ASSERT_EQ(t.destinations().size(), 3u);
  const DeliveryPolicy& a = t.route("a.test")->policy;
  EXPECT_EQ(a.concurrency, 3u);
  EXPECT_EQ(a.messages_per_connection, 50u);
  EXPECT_EQ(a.rate, 2.5);
  EXPECT_FALSE(a.bdat);
  const DeliveryPolicy& b = t.route("b.test")->policy;
  EXPECT_EQ(b.concurrency, 7u);
  EXPECT_EQ(b.messages_per_connection, 50u);
  EXPECT_EQ(b.rate, 12.5);
  EXPECT_FALSE(b.bdat);
  const DeliveryPolicy& c = t.route("c.test")->policy;
  EXPECT_EQ(c.concurrency, 7u);
  EXPECT_EQ(c.messages_per_connection, 0u);
  EXPECT_EQ(c.rate, 0.0);
  EXPECT_TRUE(c.bdat);

  // Without global settings a route without overrides has the built-in defaults.
  const RouteTable d(load({"--route", "*=127.0.0.1:1"}));
  EXPECT_EQ(d.destinations()[0].policy, DeliveryPolicy{});
  EXPECT_EQ(d.destinations()[0].policy.concurrency, 20u);
  EXPECT_EQ(d.destinations()[0].policy.messages_per_connection, 1000u);
  EXPECT_EQ(d.destinations()[0].policy.rate, 0.0);
  EXPECT_TRUE(d.destinations()[0].policy.bdat);
  // Global flags reach the routes too, and override the file's global keys.
  const RouteTable e(load({"--route", "*=127.0.0.1:1", "--destination-concurrency", "4",
                           "--destination-rate", "9", "--no-bdat"}));
  EXPECT_EQ(e.destinations()[0].policy.concurrency, 4u);
  EXPECT_EQ(e.destinations()[0].policy.rate, 9.0);
  EXPECT_FALSE(e.destinations()[0].policy.bdat);
}

TEST(RouteTable, ACopyAnswersFromItsOwnDestinations) {
  RouteTable copy;
  {
    const RouteTable t(load({"--route", "a.test=127.0.0.1:1", "--route", "*.b.test=127.0.0.1:2",
                             "--route", "*=127.0.0.1:3"}));
    copy = t;
  }
  ASSERT_EQ(copy.destinations().size(), 3u);
  EXPECT_EQ(copy.route("a.test"), &copy.destinations()[0]);
  EXPECT_EQ(copy.route("x.b.test"), &copy.destinations()[1]);
  EXPECT_EQ(copy.route("c.test"), &copy.destinations()[2]);
}

// ---- Aliases ---------------------------------------------------------------------------------

TEST(AliasTable, RewritesAnAddress) {
  const AliasTable t(load({"--alias", "info@example.test=ann@example.test"}));
  EXPECT_FALSE(t.empty());
  EXPECT_EQ(expand(t, "info@example.test"), Strings{"ann@example.test"});
  EXPECT_EQ(expand(t, "ann@example.test"), Strings{"<none>"});
  EXPECT_EQ(expand(t, "info@example.org"), Strings{"<none>"});
  EXPECT_EQ(expand(t, "info"), Strings{"<none>"});

  const AliasTable none(load({}));
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(expand(none, "info@example.test"), Strings{"<none>"});
}

TEST(AliasTable, AppendsToWhatOutHolds) {
  const AliasTable t(load({"--alias", "list@x.test=a@y.test,b@y.test"}));
  std::vector<std::string> out{"a@y.test", "z@y.test"};
  ASSERT_TRUE(t.expand("list@x.test", out));
  // What out held is not looked at: a@y.test is there twice.
  EXPECT_EQ(out, (Strings{"a@y.test", "z@y.test", "a@y.test", "b@y.test"}));
  EXPECT_FALSE(t.expand("other@x.test", out));
  EXPECT_EQ(out.size(), 4u);
}

TEST(AliasTable, FansOutInTheOrderWritten) {
  const AliasTable t(load_toml(R"([[alias]]
address = "team@example.test"
to = ["zed@example.test", "ann@other.test", "bob@example.test"]
)"));
  EXPECT_EQ(expand(t, "team@example.test"),
            (Strings{"zed@example.test", "ann@other.test", "bob@example.test"}));
}

TEST(AliasTable, NestedAliasesExpandDepthFirst) {
  const AliasTable t(load({"--alias", "all@x.test=dev@x.test,boss@x.test", "--alias",
                           "dev@x.test=ann@y.test,ops@x.test", "--alias",
                           "ops@x.test=carl@y.test,dora@y.test"}));
  EXPECT_EQ(expand(t, "all@x.test"),
            (Strings{"ann@y.test", "carl@y.test", "dora@y.test", "boss@x.test"}));
  EXPECT_EQ(expand(t, "dev@x.test"), (Strings{"ann@y.test", "carl@y.test", "dora@y.test"}));
  EXPECT_EQ(expand(t, "ops@x.test"), (Strings{"carl@y.test", "dora@y.test"}));

  // A chain of ten aliases (the most allowed) ends at its last address.
  std::vector<std::string> args;
  for (int i = 0; i < 10; ++i) {
    args.push_back("--alias");
    args.push_back("a" + std::to_string(i) + "@x.test=a" + std::to_string(i + 1) + "@x.test");
  }
  const AliasTable chain(load(args));
  EXPECT_EQ(expand(chain, "a0@x.test"), Strings{"a10@x.test"});
  EXPECT_EQ(expand(chain, "a9@x.test"), Strings{"a10@x.test"});
  EXPECT_EQ(expand(chain, "a10@x.test"), Strings{"<none>"});
}

TEST(AliasTable, ASelfTargetIsKept) {
  // A copy stays with the address (Postfix virtual(5)), in the place it is written.
  const AliasTable t(load({"--alias", "ann@x.test=bob@y.test,ann@x.test"}));
  EXPECT_EQ(expand(t, "ann@x.test"), (Strings{"bob@y.test", "ann@x.test"}));
  // Equal ignoring case is the same address; the target is kept as written.
  const AliasTable c(load({"--alias", "ann@x.test=Ann@X.test,bob@y.test"}));
  EXPECT_EQ(expand(c, "ANN@x.test"), (Strings{"Ann@X.test", "bob@y.test"}));
  // Only itself.
  const AliasTable only(load({"--alias", "ann@x.test=ann@x.test"}));
  EXPECT_EQ(expand(only, "ann@x.test"), Strings{"ann@x.test"});
}

TEST(AliasTable, DomainCatchAllAndItsExemptions) {
  const AliasTable t(load({"--alias", "@old.test=inbox@new.test", "--alias",
                           "boss@old.test=ceo@new.test", "--alias",
                           "keep@old.test=keep@old.test"}));
  EXPECT_EQ(expand(t, "anyone@old.test"), Strings{"inbox@new.test"});
  EXPECT_EQ(expand(t, "Anyone@OLD.Test"), Strings{"inbox@new.test"});
  // An exact entry wins over the domain's.
  EXPECT_EQ(expand(t, "boss@old.test"), Strings{"ceo@new.test"});
  // An alias to itself exempts an address.
  EXPECT_EQ(expand(t, "keep@old.test"), Strings{"keep@old.test"});
  // Only the domain itself, not its sub-domains or another domain ending the same way.
  EXPECT_EQ(expand(t, "a@sub.old.test"), Strings{"<none>"});
  EXPECT_EQ(expand(t, "a@bold.test"), Strings{"<none>"});
  EXPECT_EQ(expand(t, "a@new.test"), Strings{"<none>"});
  // The domain is after the last '@': a quoted local part may hold one.
  EXPECT_EQ(expand(t, "\"a@b\"@old.test"), Strings{"inbox@new.test"});
  EXPECT_EQ(expand(t, "\"a@old.test\"@new.test"), Strings{"<none>"});

  // A catch-all whose target is in its own domain: the target is kept (it expands to itself
  // through the catch-all), every other address goes to it.
  const AliasTable self(load({"--alias", "@x.test=postmaster@x.test"}));
  EXPECT_EQ(expand(self, "a@x.test"), Strings{"postmaster@x.test"});
  EXPECT_EQ(expand(self, "postmaster@x.test"), Strings{"postmaster@x.test"});

  // Targets in the domain made exempt: each keeps its mail, every other address gets both.
  const AliasTable both(load({"--alias", "@x.test=a@x.test,b@x.test", "--alias",
                              "a@x.test=a@x.test", "--alias", "b@x.test=b@x.test"}));
  EXPECT_EQ(expand(both, "c@x.test"), (Strings{"a@x.test", "b@x.test"}));
  EXPECT_EQ(expand(both, "a@x.test"), Strings{"a@x.test"});
  EXPECT_EQ(expand(both, "B@X.TEST"), Strings{"b@x.test"});
}

TEST(AliasTable, AddressLiteralDomains) {
  const AliasTable t(load({"--alias", "@[127.0.0.1]=root@x.test", "--alias",
                           "u@[IPv6:::1]=v@x.test"}));
  EXPECT_EQ(expand(t, "anyone@[127.0.0.1]"), Strings{"root@x.test"});
  EXPECT_EQ(expand(t, "anyone@[127.0.0.2]"), Strings{"<none>"});
  EXPECT_EQ(expand(t, "u@[ipv6:::1]"), Strings{"v@x.test"});
  EXPECT_EQ(expand(t, "w@[IPv6:::1]"), Strings{"<none>"});
}

TEST(AliasTable, DuplicatesAreLeftOut) {
  // A diamond: d@y.test is reached by two branches and delivered once.
  const AliasTable d(load({"--alias", "a@x.test=b@x.test,c@x.test", "--alias",
                           "b@x.test=d@y.test,e@y.test", "--alias", "c@x.test=e@y.test,d@y.test"}));
  EXPECT_EQ(expand(d, "a@x.test"), (Strings{"d@y.test", "e@y.test"}));

  // Two aliases that share an inner alias: its recipients come once, in the first place met.
  const AliasTable s(load({"--alias", "all@x.test=dev@x.test,ann@y.test,dev2@x.test", "--alias",
                           "dev@x.test=core@x.test,bob@y.test", "--alias",
                           "dev2@x.test=core@x.test,cid@y.test", "--alias",
                           "core@x.test=ann@y.test,dan@y.test"}));
  EXPECT_EQ(expand(s, "all@x.test"),
            (Strings{"ann@y.test", "dan@y.test", "bob@y.test", "cid@y.test"}));
}

TEST(AliasTable, LocalPartCaseCountsDomainCaseDoesNot) {
  // Final recipients are the same when their local parts are equal and their domains equal
  // ignoring case: the first form met is kept.
  const AliasTable t(load({"--alias", "list@x.test=ann@y.test,g@x.test", "--alias",
                           "g@x.test=ann@Y.TEST,Ann@y.test,bob@y.test,BOB@y.test"}));
  EXPECT_EQ(expand(t, "list@x.test"),
            (Strings{"ann@y.test", "Ann@y.test", "bob@y.test", "BOB@y.test"}));
  // Keys ignore case, local part included; targets are delivered as written.
  const AliasTable k(load({"--alias", "Info@Example.TEST=Ann@Example.TEST"}));
  EXPECT_EQ(expand(k, "info@example.test"), Strings{"Ann@Example.TEST"});
  EXPECT_EQ(expand(k, "INFO@EXAMPLE.TEST"), Strings{"Ann@Example.TEST"});
  EXPECT_EQ(expand(k, "iNfO@eXaMpLe.TeSt"), Strings{"Ann@Example.TEST"});
  // A target met again in another case by a nested alias is not expanded twice.
  const AliasTable n(load({"--alias", "a@x.test=b@x.test,B@X.TEST", "--alias",
                           "b@x.test=c@y.test"}));
  EXPECT_EQ(expand(n, "a@x.test"), Strings{"c@y.test"});
}

TEST(AliasTable, ABadAliasListIsRefused) {
  // The loader refuses these; a configuration built by hand is checked the same way.
  RelayConfig cfg;
  cfg.aliases = {Alias{"a@x.test", {"b@x.test"}}, Alias{"b@x.test", {"a@x.test"}}};
  try {
    const AliasTable t(cfg);
    ADD_FAILURE() << "a cycle was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "alias cycle: a@x.test -> b@x.test -> a@x.test");
  }
  std::size_t failed = 99;
  EXPECT_EQ(check_aliases(cfg.aliases, &failed), "alias cycle: a@x.test -> b@x.test -> a@x.test");
  EXPECT_EQ(failed, 0u);
  cfg.aliases = {Alias{"a@x.test", {"b@x.test"}}};
  EXPECT_EQ(check_aliases(cfg.aliases, nullptr), "");
  EXPECT_EQ(expand(AliasTable(cfg), "A@X.test"), Strings{"b@x.test"});
}

}  // namespace
}  // namespace ringmta::relay
