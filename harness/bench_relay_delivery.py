#!/usr/bin/python3
"""Side-by-side: how fast mail gets through ringmta-relay and Postfix to a sink, one run.

Three paths, each in turn, each with a fresh ringmta-sink (digest mode) and a fresh spool or
queue in the run folder (results/runs/bench-relay-delivery-<time>/):
  direct   ringmta-loadgen -> ringmta-sink                       (no relay: the ceiling)
  ringmta  ringmta-loadgen -> ringmta-relay --durability batch -> ringmta-sink
  postfix  ringmta-loadgen -> a private Postfix (relayhost = the sink) -> ringmta-sink
The same closed-loop load for each (default 20000 messages, 50 connections, 1 KiB, one
recipient). The delivered rate is taken at the sink, the same way for all three: messages
the loadgen saw accepted / (time the sink's accepted counter reached that number - time of
the first 250 in the loadgen's ledger), the counter read from the sink's /metrics every
--poll-interval. Each run is reconciled: every 250 in the ledger must be in the sink's digest
log exactly once with the same body SHA-256 (missing, duplicated, corrupted, unexpected are
counted; any of them fails the run). Also: the relay's CPU per delivered message (ringmta:
/proc/PID/stat; Postfix: the whole instance), delivery latency p50/p99 (ringmta: its
delivery_latency_seconds histogram, interpolated within buckets; Postfix: the delay= of its
maillog) and, for all three alike, a queueing delay from the ledger's accept times and the
sink's delivered curve (FIFO-equivalent: the k-th accepted against the k-th delivered).
Rounds alternate the order; medians, spreads and the ratios:
  ringmta / postfix delivered rate (target >= 30), ringmta / direct (target >= 0.45).

    /usr/bin/python3 harness/bench_relay_delivery.py --rounds 3 --messages 20000
    /usr/bin/python3 harness/bench_relay_delivery.py --tls     # STARTTLS on both hops

With --tls every hop uses STARTTLS: the loadgen --starttls, the sink and ringmta-relay
--starttls on with a certificate made once per run (scripts/make-test-ca RUN/ca), the relay's
outbound TLS opportunistic (its default), Postfix with smtpd and smtp TLS at "may". The
handshake counts of each hop are reported (sink, relay inbound and outbound, Postfix's
maillog, the loadgen's JSON).

Writes results/runs/bench-relay-delivery-<time>.json. Exit 0 when every run worked and
every message was accounted for (Postfix not installed: reported as skipped), 1 when a run
failed (a process died, loadgen errors, a message missing, duplicated or changed, delivery
not complete within --delivery-timeout; with --fail-below-target also a target not met),
2 on bad usage or missing binaries. See docs/bench-relay-delivery.md.
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postfix_peer  # noqa: E402  (harness/postfix_peer.py)
from ringmta_bench import procs  # noqa: E402
from ringmta_bench.promscrape import (SINK_ACCEPTED, histogram_quantile,  # noqa: E402
                                      parse_addr, scrape)
from ringmta_bench.run import nearest_rank, reaching_times, time_reaching  # noqa: E402
from side_by_side import (ROOT, RunFailed, UsageError, check_maillog,  # noqa: E402
                          check_outcomes, cpu_reader, figures, fmt, loadgen_cmd,
                          make_run_root, median_of, medians, missing_binary, per_round_text,
                          postfix_skip_reason, print_median_table, print_problems, ratio,
                          ratios_per_round, remove_postfix_files, remove_queues, rounds_record,
                          run_loadgen_child, run_problems, run_rounds, spool_count, spread,
                          start_ready, stop_popen, systems_arg, unwind_on, write_record)

ALL = ("direct", "ringmta", "postfix")
DOMAIN = "ringmta.test"          # the loadgen's default --to-domain


# ---- child processes -------------------------------------------------------------------

def word_after(words, key):
    """The HOST:PORT after `key` in a ready line, as (host, port)."""
    return parse_addr(words[words.index(key) + 1])


class SinkPoller(threading.Thread):
    """Reads the sink's accepted-message counter every `interval` s: samples (unix s, n)."""

    def __init__(self, addr, interval):
        super().__init__(daemon=True)
        self.addr, self.interval = addr, interval
        self.samples = []
        self.errors = 0
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            t0 = time.time()
            try:
                n = scrape(self.addr).get(SINK_ACCEPTED)
                t1 = time.time()
                if n is not None:
                    self.samples.append(((t0 + t1) / 2, int(n)))
            except OSError:
                self.errors += 1
            self.stop_event.wait(max(0.0, self.interval - (time.time() - t0)))

    def last(self):
        return self.samples[-1][1] if self.samples else 0

    def stop(self):
        self.stop_event.set()
        self.join(timeout=5)


def run_loadgen(args, port, run_dir, messages, run_id):
    """ringmta-loadgen against port with a ledger. Returns (loadgen JSON, command, ledger
    path)."""
    json_path = os.path.join(run_dir, "loadgen.json")
    ledger = os.path.join(run_dir, "ledger.tsv")
    a = argparse.Namespace(**vars(args))
    a.messages = messages
    cmd = loadgen_cmd(a, port, json_path) + ["--ledger", ledger, "--run-id", run_id]
    if args.tls:
        cmd.append("--starttls")
    limit = args.run_timeout
    try:
        return run_loadgen_child(cmd, run_dir, json_path, limit), cmd, ledger
    except subprocess.TimeoutExpired:
        raise RunFailed(f"ringmta-loadgen still running after {limit:g} s "
                        f"(--run-timeout)") from None


# ---- accounting --------------------------------------------------------------------------

def read_ledger(path):
    """{id: (unix s of the 250, body sha256)} of the 2xx lines, and the other lines' ids."""
    acked, other = {}, set()
    with open(path, errors="replace") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 5:
                continue
            if p[1].startswith("2"):
                acked[p[0]] = (int(p[3]) / 1000.0, p[4])
            else:
                other.add(p[0])
    return acked, other


def reconcile(acked, other, digest_path):
    """Every acknowledged id once in the digest log, with the ledger's body SHA-256."""
    seen = {}
    corrupted = unexpected = not_acked = 0
    with open(digest_path, errors="replace") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 3:
                continue
            mid, sha = p[0], p[2]
            seen[mid] = seen.get(mid, 0) + 1
            if mid in acked:
                if acked[mid][1] != sha:
                    corrupted += 1
            elif mid in other:
                not_acked += 1
            else:
                unexpected += 1
    missing = sum(1 for mid in acked if mid not in seen)
    duplicates = sum(n - 1 for mid, n in seen.items() if n > 1)
    return {"acked": len(acked), "digest_lines": sum(seen.values()), "missing": missing,
            "duplicates": duplicates, "corrupted": corrupted,
            "delivered_not_acked": not_acked, "unexpected": unexpected}


def queue_delay(accept_times, samples):
    """FIFO-equivalent delay of the k-th accepted message: when the sink's counter reached k
    minus the k-th 250 in the ledger. Its mean is the true mean delay (Little's law); its
    percentiles are those of a system that delivers in arrival order."""
    acc = sorted(accept_times)
    d = sorted(td - ta for ta, td in zip(acc, reaching_times(samples, range(1, len(acc) + 1))))
    if not d:
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None}
    return {"p50_ms": nearest_rank(d, 50) * 1e3, "p99_ms": nearest_rank(d, 99) * 1e3,
            "mean_ms": statistics.fmean(d) * 1e3}


# ---- one run -------------------------------------------------------------------------------

def run_one(system, args, run_dir, r):
    """One path, one run: sink, server (relay or Postfix or none), loadgen, wait, reconcile."""
    problems = []
    messages = args.postfix_messages if system == "postfix" else args.messages
    digest = os.path.join(run_dir, "digest.tsv")
    sink_cmd = [args.sink_bin, "--listen", "127.0.0.1:0", "--mode", "digest",
                "--digest-log", digest, "--metrics", "127.0.0.1:0",
                "--threads", str(args.sink_threads)] + tls_server_args(args)
    res = {"system": system, "messages": messages, "sink_cmd": sink_cmd}
    sink, words = start_ready(sink_cmd, os.path.join(run_dir, "sink.log"), "ringmta-sink")
    relay = pf = poller = None
    rm = {}
    try:
        sink_port = word_after(words, "on")[1]
        sink_metrics = word_after(words, "metrics")
        if system == "direct":
            port = sink_port

            def cpu():
                return None
        elif system == "ringmta":
            spool = os.path.join(run_dir, "spool")
            cmd = [args.relay_bin, "--listen", "127.0.0.1:0", "--spool", spool,
                   "--durability", "batch", "--threads", str(args.relay_threads),
                   "--accept-domain", DOMAIN, "--route", f"{DOMAIN}=127.0.0.1:{sink_port}",
                   "--metrics", "127.0.0.1:0"] + tls_server_args(args) + args.relay_arg
            res["server_cmd"] = cmd
            relay, rwords = start_ready(cmd, os.path.join(run_dir, "relay.log"),
                                        "ringmta-relay")
            port = word_after(rwords, "on")[1]
            relay_metrics = word_after(rwords, "metrics")
            procs.wait_banner(port, 10.0, alive=lambda: relay.poll() is None,
                              what="ringmta-relay")
            cpu = cpu_reader(relay.pid)
        else:
            settings = postfix_peer.relayhost_delivery_settings(sink_port, args.connections)
            if args.tls:
                settings.update(postfix_peer.tls_settings(
                    args.tls_cert, args.tls_key, smtpd_level="may", smtp_level="may"))
                settings.update(postfix_peer.relayhost_tls_delivery_settings())
            settings.update(args.postfix_setting)
            pf = postfix_peer.PostfixPeer(os.path.join(run_dir, "postfix"),
                                          relay_port=sink_port, main_cf=settings,
                                          process_limit=max(200, 4 * args.connections))
            pf.start()
            port = pf.port
            res.update(postfix_version=pf.version, config_dir=pf.config_dir,
                       postfix_settings=pf.main_cf_settings())
            cpu = pf.cpu_seconds
        procs.wait_banner(sink_port, 10.0, alive=lambda: sink.poll() is None,
                          what="ringmta-sink")

        sink_cpu0 = procs.proc_cpu_s(sink.pid)
        poller = SinkPoller(sink_metrics, args.poll_interval)
        poller.start()
        cpu0 = cpu()
        run_id = f"bd{time.strftime('%H%M%S')}-r{r}-{system}"
        lg, lg_cmd, ledger = run_loadgen(args, port, run_dir, messages, run_id)
        res["loadgen_cmd"] = lg_cmd
        t_lg_end = time.time()
        acked, other = read_ledger(ledger)
        n = len(acked)
        # Wait until the sink has as many messages as the loadgen saw accepted.
        end = time.monotonic() + args.delivery_timeout
        next_check = 0.0
        while poller.last() < n and time.monotonic() < end:
            if relay is not None and relay.poll() is not None or sink.poll() is not None:
                break
            if pf is not None and time.monotonic() > next_check:   # a /proc walk: 1/s
                next_check = time.monotonic() + 1.0
                if not pf.processes():
                    break
            time.sleep(args.poll_interval / 2)
        cpu1 = cpu()
        sink_cpu1 = procs.proc_cpu_s(sink.pid) if sink.poll() is None else None
        sink_hs_cpu = None
        if args.tls:
            try:
                sm = scrape(sink_metrics)
                res["tls"] = {"sink_handshakes": tls_outcomes(
                    sm, "ringmta_sink_tls_handshakes_total")}
                sink_hs_cpu = micro_to_s(sm.get(SINK_HS_CPU))
            except OSError as e:
                problems.append(f"ringmta-sink /metrics: {e}")
        time.sleep(2 * args.poll_interval)     # one more sample: late extras show up
        poller.stop()
        samples = poller.samples
        res["sink_count_at_end"] = poller.last()
        res["sink_poll_errors"] = poller.errors
        res["sink_polls"] = len(samples)
        if poller.last() < n:
            problems.append(f"the sink has {poller.last()} messages of the {n} the loadgen saw "
                            f"accepted, {time.time() - t_lg_end:.0f} s after the loadgen ended"
                            + ("" if relay is None or relay.poll() is None else
                               f"; ringmta-relay exited with code {relay.returncode}")
                            + ("" if sink.poll() is None else
                               f"; ringmta-sink exited with code {sink.returncode}"))
        if system == "ringmta":
            try:
                rm = scrape(relay_metrics)
            except OSError as e:
                rm = {}
                problems.append(f"ringmta-relay /metrics: {e}")
            res["relay_metrics"] = {k: v for k, v in rm.items()
                                    if "deliveries_total" in k or "outbound_connections" in k
                                    or "outbound_pipelined" in k
                                    or k.startswith("ringmta_relay_queue_")
                                    or k.startswith("ringmta_relay_messages_total")
                                    or "_tls_" in k}
            if args.tls:
                res.setdefault("tls", {}).update(
                    relay_inbound_handshakes=tls_outcomes(rm, "ringmta_relay_tls_handshakes_total"),
                    relay_outbound_tls=tls_outcomes(rm, "ringmta_relay_outbound_tls_total"))
            for q in (50, 99):
                v = histogram_quantile(rm, "ringmta_relay_delivery_latency_seconds", q / 100)
                res[f"delivery_p{q}_ms"] = v * 1e3 if v is not None else None
            cnt = rm.get("ringmta_relay_delivery_latency_seconds_count")
            res["delivery_mean_ms"] = (rm["ringmta_relay_delivery_latency_seconds_sum"] / cnt
                                       * 1e3 if cnt else None)
            res["delivery_latency_source"] = ("relay /metrics delivery_latency_seconds, "
                                              "linear within buckets 1 ms/10 ms/100 ms/1 s/...")
            for k in ("failed", "deferred", "throttled", "expired"):
                v = rm.get(f'ringmta_relay_deliveries_total{{outcome="{k}"}}', 0)
                if v:
                    problems.append(f"ringmta-relay: {int(v)} deliveries {k}")
    finally:
        if poller is not None and poller.is_alive():
            poller.stop()
        if relay is not None:
            rc, stop_s = stop_popen(relay)
            res.update(relay_exit=rc, relay_stop_s=stop_s)
        if pf is not None:
            pf.stop()
        sink_rc, _ = stop_popen(sink)     # SIGTERM: the digest log is flushed at exit
    if sink_rc != 0:
        problems.append(f"ringmta-sink exit code {sink_rc}")

    res.update(figures(lg))
    if args.tls:
        counts = lg.get("counts", {})
        res.setdefault("tls", {})["loadgen"] = {k: counts.get(k) for k in
                                               ("tls_handshakes", "tls_resumed")}
        t = res["tls"]
        for what in ("sink_handshakes", "relay_inbound_handshakes", "relay_outbound_tls"):
            if t.get(what, {}).get("failed"):
                problems.append(f"TLS: {int(t[what]['failed'])} failed handshakes ({what})")
        if not sum(t.get("sink_handshakes", {}).values()):
            problems.append("TLS: the sink saw no TLS handshake (--tls)")
    res["loadgen_rate_msg_s"] = res.pop("rate_msg_s")     # accepted at the loadgen
    check_outcomes(res, problems)
    acc = reconcile(acked, other, digest)
    res["accounting"] = acc
    for k in ("duplicates", "corrupted", "delivered_not_acked", "unexpected"):
        if acc[k]:
            problems.append(f"{k}: {acc[k]} (of {n} messages the loadgen saw accepted, "
                            f"{acc['digest_lines']} digest lines)")

    # The delivered rate: first 250 in the ledger -> the sink's counter reaching n.
    accept_times = [v[0] for v in acked.values()]
    t_first = min(accept_times) if accept_times else None
    t_done = time_reaching(samples, n) if n else None
    res["first_accepted_unix_s"] = t_first
    res["last_delivered_unix_s"] = t_done
    res["loadgen_start_unix_s"] = lg["start_unix_ms"] / 1000.0
    res["last_accepted_unix_s"] = max(accept_times) if accept_times else None
    if t_first is not None and t_done is not None and t_done > t_first:
        res["window_s"] = t_done - t_first
        res["rate_msg_s"] = n / res["window_s"]
        res["drain_s"] = t_done - res["last_accepted_unix_s"]
    else:
        res["rate_msg_s"] = None
        if not problems:
            problems.append("no delivered rate (no message accepted or delivered)")
    if t_done is not None:
        res["queue_delay"] = queue_delay(accept_times, samples)

    if system != "direct":
        used = (cpu1 - cpu0) if cpu1 is not None and cpu0 is not None else None
        res["server_cpu_s"] = used
        res["server_cpu_us_per_msg"] = used * 1e6 / n if used is not None and n else None
    if sink_cpu1 is not None:
        res["sink_cpu_us_per_msg"] = (sink_cpu1 - sink_cpu0) * 1e6 / n if n else None
    if args.tls:
        res["tls_handshake_cpu"] = handshake_cpu_shares(
            system, res, lg, rm, sink_hs_cpu,
            sink_cpu1 - sink_cpu0 if sink_cpu1 is not None else None)

    queued = 0        # still in the relay's spool / Postfix's queue after the run
    if system == "ringmta":
        queued, last = spool_count(args, os.path.join(run_dir, "spool"))
        res["spool_after"] = last
        if queued and not acc["missing"]:
            problems.append(f"the spool still lists {queued} messages after every message "
                            f"was delivered and the relay stopped: {last}")
        with open(os.path.join(run_dir, "relay.log"), errors="replace") as f:
            res["relay_log_tail"] = f.read().strip().splitlines()[-5:]
    if system == "postfix":
        dl = pf.delivery_log()
        delays = sorted(dl.pop("delays_s"))
        res["postfix_deliveries"] = dl
        res["delivery_p50_ms"] = nearest_rank(delays, 50) * 1e3 if delays else None
        res["delivery_p99_ms"] = nearest_rank(delays, 99) * 1e3 if delays else None
        res["delivery_mean_ms"] = statistics.fmean(delays) * 1e3 if delays else None
        res["delivery_latency_source"] = "maillog delay= of each status=sent (10 ms steps)"
        counts = pf.queue_counts()
        res["queue_counts_after"] = counts
        queued = sum(counts.values())
        if queued and not acc["missing"]:
            problems.append(f"Postfix's queue is not empty after the run: {counts}")
        if dl["status"].get("sent", 0) != n or len(dl["status"]) > 1:
            problems.append(f"Postfix logged {dl['status']} deliveries for {n} messages "
                            f"(each should be one status=sent)")
        check_maillog(pf, res, problems)
        if args.tls:
            conns = pf.tls_connections()
            res.setdefault("tls", {})["postfix_maillog"] = {
                "from": sum(1 for c in conns if c[1] == "from"),
                "to": sum(1 for c in conns if c[1] == "to")}

    if acc["missing"]:
        # Not at the sink: still queued (delivery too slow or stuck), or LOST.
        res["queued_after"] = queued
        problems.append(f"missing at the sink: {acc['missing']} of {n} messages the loadgen "
                        f"saw accepted; {queued} still queued, so "
                        f"{max(0, acc['missing'] - queued)} LOST (neither delivered nor queued)")
    failed = bool(problems)
    if not args.keep and not failed:
        for path in (digest, ledger):
            try:
                os.remove(path)
            except OSError:
                pass
        shutil.rmtree(os.path.join(run_dir, "spool"), ignore_errors=True)
        if pf is not None:
            remove_postfix_files(pf)
    res["problems"] = problems
    return res


# ---- main ----------------------------------------------------------------------------------

def name_value(text):
    name, eq, value = text.partition("=")
    if not eq or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name.strip(), value.strip()


def tls_server_args(args):
    """--starttls on and the run's certificate, for the sink and ringmta-relay (with --tls)."""
    if not args.tls:
        return []
    return ["--starttls", "on", "--tls-cert", args.tls_cert, "--tls-key", args.tls_key]


TLS_OUTCOMES = ("full", "resumed", "failed")


def tls_outcomes(metrics, name):
    """{full, resumed, failed: n} of a TLS handshake counter in a scrape()."""
    return {o: metrics.get(f'{name}{{outcome="{o}"}}', 0.0) for o in TLS_OUTCOMES}


SINK_HS_CPU = "ringmta_sink_tls_handshake_cpu_microseconds_total"
RELAY_HS_CPU = "ringmta_relay_tls_handshake_cpu_microseconds_total"
RELAY_OUT_HS_CPU = "ringmta_relay_outbound_tls_handshake_cpu_microseconds_total"
POSTFIX_HS_CPU = ("not measured: Postfix's smtpd, smtp and tlsmgr export no handshake CPU "
                  "time (its maillog has the handshakes, not their cost)")


def micro_to_s(v):
    return v / 1e6 if v is not None else None


def hs_share(cpu_s, process_cpu_s, handshakes):
    """One process's handshake CPU: seconds, of its CPU seconds over the run, per handshake."""
    return {"handshake_cpu_s": cpu_s, "process_cpu_s": process_cpu_s,
            "share": ratio(cpu_s, process_cpu_s), "handshakes": handshakes,
            "cpu_us_per_handshake": cpu_s * 1e6 / handshakes
            if cpu_s is not None and handshakes else None}


def handshake_cpu_shares(system, res, lg, rm, sink_hs_cpu, sink_cpu_s):
    """--tls: what TLS handshakes cost each process of a run, as a share of its CPU time.
    The relay's counters are read after the run from its /metrics (it started with the run,
    so they cover the same window as its CPU time); the loadgen's come from its JSON."""
    t = res.get("tls", {})
    counts = lg.get("counts", {})
    out = {
        "sink": hs_share(sink_hs_cpu, sink_cpu_s, sum(t.get("sink_handshakes", {}).values())),
        "loadgen": hs_share(counts.get("tls_handshake_cpu_ns", 0) / 1e9
                            if "tls_handshake_cpu_ns" in counts else None,
                            res.get("loadgen_cpu_s"), counts.get("tls_handshakes")),
    }
    if system == "ringmta":
        # Inbound and outbound also apart: each hop's figures stand on their own.
        cpu = res.get("server_cpu_s")
        hops = {"inbound": hs_share(micro_to_s(rm.get(RELAY_HS_CPU)), cpu,
                                    sum(t.get("relay_inbound_handshakes", {}).values())),
                "outbound": hs_share(micro_to_s(rm.get(RELAY_OUT_HS_CPU)), cpu,
                                     sum(t.get("relay_outbound_tls", {}).values()))}
        both = [h["handshake_cpu_s"] for h in hops.values()]
        out["relay"] = hs_share(sum(both) if None not in both else None, cpu,
                                sum(h["handshakes"] for h in hops.values()))
        for hop, h in hops.items():
            out["relay"].update({f"{hop}_{k}": v for k, v in h.items() if k != "process_cpu_s"})
    elif system == "postfix":
        out["relay"] = POSTFIX_HS_CPU
    return out


def hs_share_text(hc):
    """ "relay 12.3% sink 8.1% loadgen 9.0%" for a run's (or the medians') shares."""
    parts = []
    for who in ("relay", "sink", "loadgen"):
        v = hc.get(who)
        if isinstance(v, str):
            parts.append(f"{who} not measured")
        elif v is not None:
            share = v.get("share")
            parts.append(f"{who} {fmt(share * 100 if share is not None else None, '.1f')}%")
    return " ".join(parts)


def ktls_available():
    """kTLS is there when the kernel lists the "tls" upper-layer protocol (as
    io::ktls_available() reads it)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            return "tls" in f.read().split()
    except OSError:
        return False


def col(v, spec, width):
    """fmt() right-aligned in width (a missing figure as '-')."""
    return f"{fmt(v, spec):>{width}s}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20000,
                   help="messages per run (default 20000)")
    p.add_argument("--postfix-messages", type=int, default=0,
                   help="messages per Postfix run (default: --messages)")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--systems", type=systems_arg(ALL, "direct, ringmta, postfix"),
                   default=list(ALL),
                   help="comma-separated: direct,ringmta,postfix (default all)")
    # Half the CPUs: the loadgen and the sink run on the same machine and need the rest.
    p.add_argument("--relay-threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    p.add_argument("--relay-arg", action="append", default=[],
                   help="extra ringmta-relay argument, repeatable (recorded in the JSON)")
    p.add_argument("--postfix-setting", action="append", default=[], type=name_value,
                   help="extra Postfix main.cf NAME=VALUE, repeatable, applied last "
                        "(e.g. --postfix-setting in_flow_delay=0s)")
    p.add_argument("--sink-threads", type=int, default=2)
    p.add_argument("--loadgen-threads", type=int, default=1)
    p.add_argument("--reply-timeout", type=float, default=10.0,
                   help="loadgen --timeout in seconds: a reply later than this is an error")
    p.add_argument("--delivery-timeout", type=float, default=120.0,
                   help="seconds after the loadgen ends for the sink to have every message")
    p.add_argument("--run-timeout", type=float, default=600.0,
                   help="seconds the loadgen may run (default 600)")
    p.add_argument("--poll-interval", type=float, default=0.02,
                   help="seconds between two reads of the sink's counter (default 0.02)")
    p.add_argument("--target-postfix", type=float, default=30.0,
                   help="ringmta / Postfix delivered rate to report against (default 30)")
    p.add_argument("--target-direct", type=float, default=0.45,
                   help="ringmta / direct delivered rate to report against (default 0.45)")
    p.add_argument("--fail-below-target", action="store_true",
                   help="exit 1 when a target is not met")
    p.add_argument("--tls", action="store_true",
                   help="STARTTLS on both hops of every path (certificates made once per run "
                        "with scripts/make-test-ca)")
    p.add_argument("--keep", action="store_true",
                   help="keep ledgers, digest logs, spools, Postfix queues and maillogs")
    p.add_argument("--relay-bin", default=os.path.join(ROOT, "build", "bin", "ringmta-relay"))
    p.add_argument("--loadgen-bin",
                   default=os.path.join(ROOT, "build", "bin", "ringmta-loadgen"))
    p.add_argument("--sink-bin", default=os.path.join(ROOT, "build", "bin", "ringmta-sink"))
    p.add_argument("--out-dir", default=os.path.join(ROOT, "results", "runs"))
    args = p.parse_args()
    args.postfix_messages = args.postfix_messages or args.messages
    args.postfix_setting = dict(args.postfix_setting)
    # loadgen_cmd (bench_relay_accept) reads these: a fixed count, no time limit, no warm-up.
    args.duration, args.warmup = 0, 0
    if args.rounds < 1 or args.connections < 1 or args.size < 1 or args.messages < 1 \
            or args.postfix_messages < 1 or args.reply_timeout <= 0 \
            or args.delivery_timeout <= 0 or args.poll_interval <= 0 or args.run_timeout <= 0:
        print("bench_relay_delivery: need --rounds, --connections, --size, --messages >= 1 and "
              "positive timeouts and --poll-interval", file=sys.stderr)
        return 2
    systems = list(dict.fromkeys(args.systems))
    bins = [args.loadgen_bin, args.sink_bin] + ([args.relay_bin] if "ringmta" in systems else [])
    if missing_binary("bench_relay_delivery", bins,
                      "cmake --preset release && cmake --build --preset release"):
        return 2
    postfix_skipped = postfix_skip_reason(systems)

    # SIGTERM (and SIGHUP) unwind like Ctrl-C: every child is stopped in the finally blocks.
    unwind_on(signal.SIGTERM, signal.SIGHUP)

    stamp, run_root, mount, fstype = make_run_root(args.out_dir, "bench-relay-delivery")
    args.tls_cert = args.tls_key = None
    if args.tls:
        # Postfix's smtpd reads the key as root at start; the folder must be reachable.
        ca = os.path.join(run_root, "ca")
        mk = subprocess.run([os.path.join(ROOT, "scripts", "make-test-ca"), ca],
                            capture_output=True, text=True, timeout=60)
        if mk.returncode != 0:
            print(f"bench_relay_delivery: scripts/make-test-ca failed: {mk.stderr.strip()}",
                  file=sys.stderr)
            return 2
        os.chmod(ca, 0o755)
        args.tls_cert = os.path.join(ca, "server.pem")
        args.tls_key = os.path.join(ca, "server.key")
    print(f"run folder {os.path.relpath(run_root, ROOT)} ({fstype} on {mount}); "
          f"{args.messages} messages ({args.postfix_messages} for Postfix), "
          f"{args.connections} connections, {args.size} B, 1 recipient; relay --durability "
          f"batch --threads {args.relay_threads} {' '.join(args.relay_arg)}"
          f"{'; STARTTLS on both hops' if args.tls else ''}", flush=True)

    def show(res, r, system):
        if res.get("rate_msg_s") is not None:
            qd = res.get("queue_delay", {})
            print(f"round {r} {system:8s} {res['rate_msg_s']:9.0f} msg/s delivered "
                  f"({res['accounting']['acked']} in {res['window_s']:.2f} s; loadgen "
                  f"{res['loadgen_rate_msg_s']:.0f} accepted/s)  CPU "
                  f"{fmt(res.get('server_cpu_us_per_msg'), '.0f')} us/msg  delivery "
                  f"p50/p99 {fmt(res.get('delivery_p50_ms'), '.1f')}/"
                  f"{fmt(res.get('delivery_p99_ms'), '.1f')} ms  queue delay "
                  f"p50/p99 {fmt(qd.get('p50_ms'), '.1f')}/"
                  f"{fmt(qd.get('p99_ms'), '.1f')} ms"
                  f"{'  ' + res['warning'] if res.get('warning') else ''}"
                  + (f"  TLS handshake share of CPU: "
                     f"{hs_share_text(res['tls_handshake_cpu'])}"
                     if res.get("tls_handshake_cpu") else ""), flush=True)
    runs = []
    interrupted = False
    try:
        run_rounds(runs, systems, args.rounds, run_root,
                   lambda system, run_dir, r: run_one(system, args, run_dir, r),
                   (RunFailed, procs.StartFailed, postfix_peer.PostfixError,
                    subprocess.TimeoutExpired, OSError), show, 8)
    except UsageError as e:
        print(f"bench_relay_delivery: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True
        print("bench_relay_delivery: interrupted; every child stopped", file=sys.stderr)
        if not args.keep:   # the interrupted run's spool and queue (failed runs keep theirs)
            remove_queues(run_root, {f"r{x['round']}-{x['system']}" for x in runs})

    def usable(x):
        return x.get("rate_msg_s") is not None and not x["problems"]
    med = medians(runs, systems, ("rate_msg_s", "loadgen_rate_msg_s", "server_cpu_us_per_msg",
                                  "sink_cpu_us_per_msg", "delivery_p50_ms", "delivery_p99_ms",
                                  "p50_ms", "p99_ms"), usable,
                  {f"queue_delay_{k}": (lambda x, k=k: x.get("queue_delay", {}).get(k))
                   for k in ("p50_ms", "p99_ms", "mean_ms")})

    def m(system, key):
        return median_of(med, system, key)
    ratios = {
        "ringmta_vs_postfix_rate": ratio(m("ringmta", "rate_msg_s"), m("postfix", "rate_msg_s")),
        "ringmta_vs_direct_rate": ratio(m("ringmta", "rate_msg_s"), m("direct", "rate_msg_s")),
        "postfix_vs_ringmta_cpu_per_msg": ratio(m("postfix", "server_cpu_us_per_msg"),
                                                m("ringmta", "server_cpu_us_per_msg")),
    }
    per_round = ratios_per_round(runs, args.rounds,
                                 {"ringmta_vs_postfix_rate": ("ringmta", "postfix"),
                                  "ringmta_vs_direct_rate": ("ringmta", "direct")},
                                 lambda x: not x["problems"])
    targets = {}
    for name, target in (("ringmta_vs_postfix_rate", args.target_postfix),
                         ("ringmta_vs_direct_rate", args.target_direct)):
        targets[name] = {"target": target, "met": (ratios[name] >= target
                                                   if ratios[name] is not None else None)}

    print(f"\nmedian of {args.rounds} rounds (min-max), {args.connections} connections, "
          f"{args.size} B, 1 recipient, ringmta-relay --durability batch:")
    print_median_table(systems, med, "path", 8, "delivered msg/s (min-max)", 27, [
        (head, w, key, lambda v, spec=spec, w=w: col(v, spec, w))
        for head, w, key, spec in (("CPU us/msg", 10, "server_cpu_us_per_msg", ".0f"),
                                   ("deliv p50", 9, "delivery_p50_ms", ".1f"),
                                   ("deliv p99", 9, "delivery_p99_ms", ".1f"),
                                   ("qdelay p50", 10, "queue_delay_p50_ms", ".1f"),
                                   ("qdelay p99", 10, "queue_delay_p99_ms", ".1f"),
                                   ("accept p99", 10, "p99_ms", ".2f"))])
    print("  (ms; deliv = accepted -> delivered: relay histogram (ringmta), maillog delay= "
          "(postfix); qdelay = FIFO-equivalent, ledger 250 -> sink counter, all paths)")
    if postfix_skipped:
        print(f"  postfix  {postfix_skipped}: skipped")
    for k, v in ratios.items():
        extra = per_round_text(per_round.get(k))
        tgt = targets.get(k)
        verdict = (f"  target >= {tgt['target']:g}: {'met' if tgt['met'] else 'NOT met'}"
                   if tgt and tgt["met"] is not None else "")
        print(f"  {k}: {fmt(v, '.2f')}{extra}{verdict}")

    tls_summary = None
    if args.tls:
        tls_summary = {"ktls": "available" if ktls_available() else "not available",
                       "per_path": {}}
        print("  TLS on both hops (STARTTLS; handshakes summed over the completed runs):")
        for system in systems:
            mine = [x.get("tls", {}) for x in runs if x["system"] == system]
            tot = {}
            for t in mine:
                for what, d in t.items():
                    for k, v in d.items():
                        if v is not None:
                            tot.setdefault(what, {}).setdefault(k, 0)
                            tot[what][k] += v
            tls_summary["per_path"][system] = tot

            def fr(d):
                return (f"full {int(d.get('full', 0))} resumed {int(d.get('resumed', 0))}"
                        f" failed {int(d.get('failed', 0))}") if d else "-"
            line = f"    {system:8s} sink: {fr(tot.get('sink_handshakes'))}"
            if system == "ringmta":
                line += (f"; relay inbound: {fr(tot.get('relay_inbound_handshakes'))}"
                         f"; relay outbound: {fr(tot.get('relay_outbound_tls'))}")
            if system == "postfix":
                pm = tot.get("postfix_maillog", {})
                line += (f"; Postfix maillog TLS connections from clients {pm.get('from', 0)}, "
                         f"to the sink {pm.get('to', 0)}")
            lgc = tot.get("loadgen", {})
            line += (f"; loadgen handshakes {int(lgc.get('tls_handshakes', 0))} "
                     f"(resumed {int(lgc.get('tls_resumed', 0))})")
            print(line)
        print(f"  kTLS: {tls_summary['ktls']}")
        print("  handshake share of CPU (median of the runs without problems; handshake CPU "
              "time from each process's counters / its CPU time over the run):")
        shares = tls_summary["handshake_cpu_share"] = {}
        for system in systems:
            mine = [x["tls_handshake_cpu"] for x in runs if x["system"] == system
                    and x.get("tls_handshake_cpu") and not x["problems"]]
            med_hs = {}
            for who in ("relay", "sink", "loadgen"):
                got = [hc[who] for hc in mine if who in hc]
                if got and isinstance(got[0], str):
                    med_hs[who] = got[0]
                elif got:
                    med_hs[who] = {k: spread([g.get(k) for g in got]) for k in got[0]}
            shares[system] = med_hs
            line = f"    {system:8s} " + (hs_share_text(
                {who: v if isinstance(v, str) else {"share": v["share"]["median"]}
                 for who, v in med_hs.items()}) if med_hs else "no run completed")
            print(line)
            for who, hops in (("relay", ("inbound_", "outbound_")), ("sink", ("",)),
                              ("loadgen", ("",))):
                v = med_hs.get(who)
                if not isinstance(v, dict):
                    continue
                parts = []
                for hop in hops:
                    share = v[f"{hop}share"]["median"]
                    parts.append(
                        f"{hop.rstrip('_') + ' ' if hop else ''}"
                        f"{fmt(v[f'{hop}handshake_cpu_s']['median'], '.3f')} s "
                        f"({fmt(share * 100 if share is not None else None, '.1f')}%) in "
                        f"{fmt(v[f'{hop}handshakes']['median'], '.0f')} handshakes, "
                        f"{fmt(v[f'{hop}cpu_us_per_handshake']['median'], '.0f')} us each")
                print(f"             {who} ({fmt(v['process_cpu_s']['median'], '.2f')} s CPU): "
                      f"{'; '.join(parts)}")
            if isinstance(med_hs.get("relay"), str):
                print(f"             relay: {med_hs['relay']}")

    problems = run_problems(runs, interrupted)
    write_record(os.path.join(args.out_dir, f"bench-relay-delivery-{stamp}.json"),
                 rounds_record("bench-relay-delivery/1", args, run_root, (mount, fstype),
                               postfix_skipped, runs, med, ratios, per_round, targets=targets,
                               tls=tls_summary, problems=problems))
    if print_problems(problems):
        return 1
    if args.fail_below_target and any(t["met"] is False for t in targets.values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
