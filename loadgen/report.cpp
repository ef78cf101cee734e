// Formatting a run's Results: the wrk2-style summary, the JSON result file and the progress
// line. The JSON is laid out for people too (one histogram or timeline row per line), since
// reference results are committed and diffed.
#include "loadgen/report.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <ostream>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ringmta::loadgen {

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::connect:
      return "connect";
    case Phase::banner:
      return "banner";
    case Phase::ehlo:
      return "ehlo";
    case Phase::tls:
      return "tls";
    case Phase::envelope:
      return "envelope";
    case Phase::accept:
      return "accept";
    case Phase::transaction:
      return "transaction";
  }
  return "?";
}

const char* conn_error_name(ConnError e) {
  switch (e) {
    case ConnError::refused:
      return "refused";
    case ConnError::connect_timeout:
      return "connect_timeout";
    case ConnError::reset:
      return "reset";
    case ConnError::closed:
      return "closed";
    case ConnError::reply_timeout:
      return "reply_timeout";
    case ConnError::protocol:
      return "protocol";
    case ConnError::tls:
      return "tls";
    case ConnError::auth:
      return "auth";
    case ConnError::other:
      return "other";
  }
  return "?";
}

namespace {

using Json = nlohmann::ordered_json;

// snprintf into a std::string; the attribute lets -Wformat check every call.
__attribute__((format(printf, 1, 2))) std::string printf_string(const char* fmt, ...) {
  char buf[256];
  va_list args;
  va_start(args, fmt);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return std::string(buf, n < 0 ? 0 : std::min(static_cast<std::size_t>(n), sizeof buf - 1));
}

const stats::Histogram& phase(const Results& r, Phase p) {
  return r.latency[static_cast<std::size_t>(p)];
}

// "99.9" rather than "99.900000": the keys of percentiles_ns.
std::string percentile_key(double p) {
  std::string s = printf_string("%.4f", p);
  while (s.back() == '0')
    s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

// null where a figure does not exist (no sample), rather than a 0 that reads as a latency.
Json ns_or_null(const stats::Histogram& h, std::uint64_t v) {
  return h.count() == 0 ? Json(nullptr) : Json(v);
}

Json phase_json(const stats::Histogram& h) {
  Json j;
  j["count"] = h.count();
  j["min_ns"] = ns_or_null(h, h.min());
  j["mean_ns"] = h.count() == 0 ? Json(nullptr) : Json(h.mean());
  j["max_ns"] = ns_or_null(h, h.max());
  Json pct = Json::object();
  for (double p : kReportPercentiles)
    pct[percentile_key(p)] = ns_or_null(h, h.value_at_percentile(p));
  j["percentiles_ns"] = std::move(pct);
  j["highest_ns"] = h.highest();
  j["overflow"] = h.overflow();
  return j;
}

Json buckets_json(const stats::Histogram& h) {
  Json b = Json::array();
  h.for_each_bucket([&](std::uint64_t lower, std::uint64_t upper, std::uint64_t count) {
    b.push_back(Json::array({lower, upper, count}));
  });
  return b;
}

Json timeline_row(std::size_t second, const SecondStats& s) {
  const stats::Histogram& h = s.accept_latency;
  Json row;
  row["second"] = second;
  row["accepted"] = s.accepted;
  row["tempfail"] = s.tempfail;
  row["permfail"] = s.permfail;
  row["errors"] = s.errors;
  row["p50_ns"] = ns_or_null(h, h.value_at_percentile(50));
  row["p99_ns"] = ns_or_null(h, h.value_at_percentile(99));
  return row;
}

// A pretty-printed value nested `depth` levels deep in the hand-written outer object.
std::string nested(const Json& j, int depth) {
  const std::string pad(static_cast<std::size_t>(depth) * 2, ' ');
  std::string s = j.dump(2);
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (char c : s) {
    out += c;
    if (c == '\n') out += pad;
  }
  return out;
}

std::string key(std::string_view k) {
  return Json(k).dump() + ": ";
}

}  // namespace

CpuUse cpu_use(const Results& r) {
  CpuUse c;
  c.total_s = r.cpu_user_s + r.cpu_system_s;
  c.wall_s = r.warmup_s + r.duration_s;
  if (c.wall_s > 0) c.one_core_pct = 100 * c.total_s / c.wall_s;
  c.capacity_pct = c.one_core_pct / (r.threads > 0 ? r.threads : 1);
  c.saturated = c.capacity_pct > kSaturatedPct;
  return c;
}

double throughput_msg_s(const Results& r) {
  return r.duration_s > 0 ? static_cast<double>(r.accepted) / r.duration_s : 0;
}

std::string format_latency(std::uint64_t ns) {
  const double v = static_cast<double>(ns);
  if (ns < 1'000) return std::to_string(ns) + "ns";
  if (ns < 1'000'000) return printf_string("%.2fus", v / 1e3);
  if (ns < 1'000'000'000) return printf_string("%.2fms", v / 1e6);
  return printf_string("%.2fs", v / 1e9);
}

std::string progress_line(std::uint64_t second, double accepted_per_s, std::uint64_t p50_ns,
                          std::uint64_t p99_ns, std::uint64_t errors) {
  const auto lat = [](std::uint64_t ns) { return ns == 0 ? std::string("-") : format_latency(ns); };
  return printf_string("%6" PRIu64 "s %10.0f accepted/s   p50 %9s   p99 %9s   errors %-10" PRIu64,
                       second, accepted_per_s, lat(p50_ns).c_str(), lat(p99_ns).c_str(), errors);
}

void write_summary(std::ostream& out, const Results& r) {
  const bool open = r.mode == "open";
  out << "ringmta-loadgen run " << r.run_id << "\n";
  out << "  target " << r.target << ", "
      << (open ? printf_string("open loop at %g msg/s", r.rate) : std::string("closed loop"))
      << ", " << r.threads << (r.threads == 1 ? " thread, " : " threads, ") << r.connections
      << (open ? " connections at most" : " connections") << "\n";
  out << "  measured " << printf_string("%.2fs", r.duration_s);
  if (r.warmup_s > 0) out << " after " << printf_string("%.2fs", r.warmup_s) << " of warm-up";
  out << ", size " << r.size_spec << ", seed " << r.seed << "\n\n";

  const stats::Histogram& acc = phase(r, Phase::accept);
  if (acc.count() == 0) {
    out << "  Accept latency: no message was answered after the warm-up\n";
  } else {
    out << "  Accept latency (end of data -> final reply), " << acc.count() << " messages\n";
    for (double p : kReportPercentiles) {
      out << printf_string("  %8.3f%%  %10s\n", p,
                           format_latency(acc.value_at_percentile(p)).c_str());
    }
    out << printf_string("  %8.3f%%  %10s  (max)\n", 100.0, format_latency(acc.max()).c_str());
    if (acc.overflow() > 0) {
      out << "  " << acc.overflow() << " replies took longer than " << format_latency(acc.highest())
          << ", the histogram's range\n";
    }
  }

  out << "\n"
      << printf_string("  %-12s %10s %10s %10s %10s\n", "Phase", "p50", "p99", "max", "count");
  for (std::size_t i = 0; i < kPhaseCount; ++i) {
    const Phase p = static_cast<Phase>(i);
    if (p == Phase::accept) continue;
    const stats::Histogram& h = r.latency[i];
    if (h.count() == 0) {
      out << printf_string("  %-12s %10s %10s %10s %10d\n", phase_name(p), "-", "-", "-", 0);
      continue;
    }
    out << printf_string("  %-12s %10s %10s %10s %10" PRIu64 "\n", phase_name(p),
                         format_latency(h.value_at_percentile(50)).c_str(),
                         format_latency(h.value_at_percentile(99)).c_str(),
                         format_latency(h.max()).c_str(), h.count());
  }
  out << (open ? "  (transaction: from the scheduled start, waits for a connection included)\n"
               : "  (transaction: from the start of the message to its final reply)\n");

  out << "\n";
  const double mib_s =
      r.duration_s > 0 ? static_cast<double>(r.bytes_sent) / r.duration_s / (1 << 20) : 0;
  out << printf_string("  Throughput   %.2f accepted msg/s (%" PRIu64 " in %.2fs), %.2f MiB/s\n",
                       throughput_msg_s(r), r.accepted, r.duration_s, mib_s);
  out << "  Outcomes     started " << r.started << ", accepted " << r.accepted << ", tempfail "
      << r.tempfail << ", permfail " << r.permfail << ", errors " << r.errors;
  if (r.warmup_messages > 0) out << " (and " << r.warmup_messages << " in the warm-up)";
  out << "\n";
  out << "  Recipients   accepted " << r.recipients_accepted << ", rejected "
      << r.recipients_rejected << "\n";
  out << "  Replies     ";
  if (r.replies.empty()) out << " none";
  bool first = true;
  for (const auto& [code, n] : r.replies) {
    out << (first ? " " : ", ") << code << ": " << n;
    first = false;
  }
  out << "\n";
  out << "  Conn errors ";
  bool any = false;
  for (std::size_t i = 0; i < kConnErrorCount; ++i) {
    if (r.conn_errors[i] == 0) continue;
    out << (any ? ", " : " ") << conn_error_name(static_cast<ConnError>(i)) << " "
        << r.conn_errors[i];
    any = true;
  }
  out << (any ? "\n" : " none\n");
  out << "  Connections  " << r.connections_opened << " opened; " << r.pipelined_transactions
      << " transactions pipelined, " << r.bdat_transactions << " with BDAT";
  if (r.tls_handshakes > 0) {
    out << "; " << r.tls_handshakes << " TLS handshakes, " << r.tls_resumed << " resumed";
    out << printf_string(", %.3fs CPU in handshakes",
                         static_cast<double>(r.tls_handshake_cpu_ns) / 1e9);
  }
  out << "\n";
  if (open) {
    out << "  Waits        " << r.waited_for_connection << " messages waited for a free connection";
    if (r.waited_for_connection > 0) {
      out << " (longest " << format_latency(r.max_connection_wait_ns) << "; raise --connections)";
    }
    out << "\n";
  }
  const CpuUse cpu = cpu_use(r);
  out << printf_string(
      "  Loadgen CPU  %.2fs (user %.2fs + system %.2fs) = %.1f%% of one core, %.1f%% of %u "
      "thread%s\n",
      cpu.total_s, r.cpu_user_s, r.cpu_system_s, cpu.one_core_pct, cpu.capacity_pct, r.threads,
      r.threads == 1 ? "" : "s");
  if (cpu.saturated) {
    out << printf_string(
        "  WARNING: loadgen saturated (%.0f%% of its threads' capacity): these figures may "
        "measure the loadgen, not the server; add --threads or lower the load\n",
        cpu.capacity_pct);
  }
}

void write_json(std::ostream& out, const Results& r) {
  // Hand-written outer object so that each histogram's buckets and each timeline row take one
  // line; everything else is nlohmann's pretty print.
  Json head;
  head["schema"] = kResultSchema;
  head["run_id"] = r.run_id;
  head["target"] = r.target;
  head["mode"] = r.mode;
  head["rate_msg_s"] = r.mode == "open" ? Json(r.rate) : Json(nullptr);
  head["threads"] = r.threads;
  head["connections"] = r.connections;
  head["size_spec"] = r.size_spec;
  head["seed"] = r.seed;
  head["start_unix_ms"] = r.start_unix_ms;
  head["warmup_s"] = r.warmup_s;
  head["duration_s"] = r.duration_s;
  head["throughput_msg_s"] = throughput_msg_s(r);
  head["max_connection_wait_ns"] = r.max_connection_wait_ns;

  Json counts;
  counts["started"] = r.started;
  counts["accepted"] = r.accepted;
  counts["tempfail"] = r.tempfail;
  counts["permfail"] = r.permfail;
  counts["errors"] = r.errors;
  counts["warmup_messages"] = r.warmup_messages;
  counts["recipients_accepted"] = r.recipients_accepted;
  counts["recipients_rejected"] = r.recipients_rejected;
  counts["bytes_sent"] = r.bytes_sent;
  counts["connections_opened"] = r.connections_opened;
  counts["pipelined_transactions"] = r.pipelined_transactions;
  counts["bdat_transactions"] = r.bdat_transactions;
  counts["tls_handshakes"] = r.tls_handshakes;
  counts["tls_resumed"] = r.tls_resumed;
  counts["tls_handshake_cpu_ns"] = r.tls_handshake_cpu_ns;
  counts["waited_for_connection"] = r.waited_for_connection;

  Json replies = Json::object();
  for (const auto& [code, n] : r.replies)
    replies[code] = n;
  Json conn_errors = Json::object();
  for (std::size_t i = 0; i < kConnErrorCount; ++i)
    conn_errors[conn_error_name(static_cast<ConnError>(i))] = r.conn_errors[i];

  const CpuUse c = cpu_use(r);
  Json cpu;
  cpu["user_s"] = r.cpu_user_s;
  cpu["system_s"] = r.cpu_system_s;
  cpu["total_s"] = c.total_s;
  cpu["wall_s"] = c.wall_s;
  cpu["one_core_pct"] = c.one_core_pct;
  cpu["capacity_pct"] = c.capacity_pct;
  cpu["saturated"] = c.saturated;

  out << "{\n";
  for (const auto& [k, v] : head.items())
    out << "  " << key(k) << v.dump() << ",\n";
  out << "  " << key("counts") << nested(counts, 1) << ",\n";
  out << "  " << key("replies") << nested(replies, 1) << ",\n";
  out << "  " << key("conn_errors") << nested(conn_errors, 1) << ",\n";
  out << "  " << key("latency") << "{\n";
  for (std::size_t i = 0; i < kPhaseCount; ++i) {
    const stats::Histogram& h = r.latency[i];
    out << "    " << key(phase_name(static_cast<Phase>(i))) << "{\n";
    const Json figures = phase_json(h);  // named: items() does not extend a temporary's life
    for (const auto& [k, v] : figures.items())
      out << "      " << key(k) << v.dump() << ",\n";
    out << "      " << key("buckets") << buckets_json(h).dump() << "\n";
    out << "    }" << (i + 1 < kPhaseCount ? ",\n" : "\n");
  }
  out << "  },\n";
  out << "  " << key("timeline") << "[";
  for (std::size_t i = 0; i < r.timeline.size(); ++i) {
    out << (i == 0 ? "\n    " : ",\n    ") << timeline_row(i, r.timeline[i]).dump();
  }
  out << (r.timeline.empty() ? "],\n" : "\n  ],\n");
  out << "  " << key("cpu") << nested(cpu, 1) << "\n";
  out << "}\n";
}

}  // namespace ringmta::loadgen
