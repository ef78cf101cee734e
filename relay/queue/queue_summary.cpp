// The queue summary; see queue_summary.hpp.
#include "relay/queue/queue_summary.hpp"

#include <time.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <string>

#include "core/smtp/ascii.hpp"

namespace ringmta::relay {
namespace {

constexpr std::array<std::uint64_t, 9> kBucketMinutes = {5, 10, 20, 40, 80, 160, 320, 640, 1280};
constexpr std::size_t kColumns = kBucketMinutes.size() + 2;  // T, buckets, older
using Row = std::array<std::uint64_t, kColumns>;

std::size_t bucket_of(std::uint64_t age_ms) {
  const std::uint64_t minutes = age_ms / 60'000;
  for (std::size_t i = 0; i < kBucketMinutes.size(); ++i) {
    if (minutes < kBucketMinutes[i]) return i + 1;
  }
  return kColumns - 1;
}

void print_row(std::ostream& out, const std::string& name, const Row& row) {
  char cell[320];
  std::snprintf(cell, sizeof(cell), "%30s", name.c_str());
  out << cell;
  for (std::uint64_t v : row) {
    std::snprintf(cell, sizeof(cell), " %6llu", static_cast<unsigned long long>(v));
    out << cell;
  }
  out << '\n';
}

}  // namespace

std::uint64_t unix_now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000;
}

void print_queue_summary(const std::vector<spool::LiveMessage>& live, std::uint64_t now_unix_ms,
                         std::ostream& out) {
  std::map<std::string, Row> by_domain;
  Row total{};
  const spool::LiveMessage* oldest = nullptr;
  for (const spool::LiveMessage& m : live) {
    const std::uint64_t arrival = m.envelope.arrival_unix_ms;
    const std::size_t b = bucket_of(now_unix_ms > arrival ? now_unix_ms - arrival : 0);
    bool any = false;
    for (std::size_t i = 0; i < m.envelope.recipients.size(); ++i) {
      if (i < m.outcomes.size() && spool::is_final(m.outcomes[i].state)) continue;
      const std::string& a = m.envelope.recipients[i].address;
      const std::size_t at = a.rfind('@');
      std::string domain = at == std::string::npos ? std::string("(none)") : a.substr(at + 1);
      for (char& c : domain) c = smtp::to_lower(c);
      Row& row = by_domain[domain];
      ++row[0];
      ++row[b];
      ++total[0];
      ++total[b];
      any = true;
    }
    if (any && (oldest == nullptr || arrival < oldest->envelope.arrival_unix_ms)) oldest = &m;
  }
  std::vector<std::pair<std::string, Row>> rows(by_domain.begin(), by_domain.end());
  std::stable_sort(rows.begin(), rows.end(),
                   [](const auto& a, const auto& b) { return a.second[0] > b.second[0]; });
  char head[64];
  std::snprintf(head, sizeof(head), "%30s %6s", "domain", "T");
  out << head;
  for (std::uint64_t m : kBucketMinutes) {
    std::snprintf(head, sizeof(head), " %6llu", static_cast<unsigned long long>(m));
    out << head;
  }
  out << "  1280+\n";
  print_row(out, "TOTAL", total);
  for (const auto& [name, row] : rows) print_row(out, name, row);
  out << "-- " << live.size() << " messages, " << total[0] << " recipients to deliver";
  if (oldest != nullptr) {
    const std::uint64_t arrival = oldest->envelope.arrival_unix_ms;
    char id[17];
    std::snprintf(id, sizeof(id), "%016llx", static_cast<unsigned long long>(oldest->envelope.id));
    out << "; oldest " << id << ", " << (now_unix_ms > arrival ? now_unix_ms - arrival : 0) / 1000
        << " s old";
  }
  out << '\n';
}

}  // namespace ringmta::relay
