"""ringmta-loadgen against real servers on loopback (ringmta-sink, Postfix's smtp-sink): every
message accounted for (JSON counts = ledger = sink digest log, same ids and body SHA-256),
failure and error accounting, pipelining seen from the server's side (reply writes per
message), open-loop rate and arrivals, coordinated omission with a real 1-s server stall,
exit codes, warm-up. Figures, not just exit codes (docs/loadgen.md, docs/result-format.md)."""

from __future__ import annotations

import math
import os
import signal
import statistics
import time

import pytest

from loadgenlib import PostfixSink, count_at_least, free_port, ms, reconcile
from sinklib import metric, read_digest, scrape

ZERO_CONN_ERRORS = {k: 0 for k in ("refused", "connect_timeout", "reset", "closed", "reply_timeout", "protocol", "tls", "auth", "other")}


def digest_sink(sink, tmp_path, *args, name="digest.log"):
    log = tmp_path / name
    return sink("--mode", "digest", "--digest-log", str(log), *args), log


def target(s) -> str:
    return f"127.0.0.1:{s.port}"


def stopped_digest(s, log):
    """Stops the sink (which flushes its digest log at exit) and reads the log."""
    assert s.stop() == 0, f"sink exited {s.returncode}: {s.stderr()[-2000:]}"
    return read_digest(log)


# ---- 1. Accounting ----------------------------------------------------------------------------

ACCOUNTING = [
    ("base", []),
    ("threads2", ["--threads", "2"]),
    ("bdat", ["--bdat"]),
    ("recipients3", ["--recipients", "3"]),
    ("lognormal", ["--size", "lognormal:4K,0.5"]),
    ("one_per_connection", ["--messages-per-connection", "1"]),
]


@pytest.mark.parametrize("name,extra", ACCOUNTING, ids=[a[0] for a in ACCOUNTING])
def test_accounting_closed_loop(sink, loadgen, tmp_path, name, extra):
    n = 3000
    s, log = digest_sink(sink, tmp_path)
    run_id = f"acct-{name}"
    r = loadgen("--target", target(s), "--connections", 10, "--messages", n, "--run-id", run_id, *extra)
    digest = stopped_digest(s, log)
    j, c = r.json, r.counts
    rcpts = 3 if name == "recipients3" else 1

    assert j["mode"] == "closed" and j["rate_msg_s"] is None and j["run_id"] == run_id
    assert (c["started"], c["accepted"], c["tempfail"], c["permfail"], c["errors"]) == (n, n, 0, 0, 0)
    assert c["warmup_messages"] == 0
    assert j["replies"] == {"250 2.0.0": n}
    assert j["conn_errors"] == ZERO_CONN_ERRORS
    assert (c["recipients_accepted"], c["recipients_rejected"]) == (n * rcpts, 0)
    assert c["pipelined_transactions"] == n  # the sink offers PIPELINING
    assert c["bdat_transactions"] == (n if name == "bdat" else 0)
    assert j["latency"]["accept"]["count"] == n and j["latency"]["transaction"]["count"] == n
    assert sum(row["accepted"] for row in j["timeline"]) == n
    assert abs(j["throughput_msg_s"] - n / j["duration_s"]) < 1e-6 * j["throughput_msg_s"]

    # Ledger = JSON = digest, id by id.
    assert len(r.ledger) == n
    assert all((l.code, l.enhanced) == (250, "2.0.0") for l in r.ledger)
    assert all((l.accepted, l.recipients) == (rcpts, rcpts) for l in r.ledger)
    assert len(digest) == n, f"{len(digest)} digest lines for {n} accepted"
    reconcile(r.ledger, digest, run_id)

    if name == "threads2":
        assert j["threads"] == 2
    if name == "recipients3":
        assert all(len(d.rcpts) == 3 and len(set(d.rcpts)) == 3 for d in digest), digest[0]
        assert all(a.endswith("@ringmta.test") for d in digest for a in d.rcpts)
    if name == "lognormal":
        # Sizes (headers included) drawn from lognormal(median 4096, sigma 0.5): mean
        # 4096 * e^(0.125) = 4641. Bodies vary; the header is about the same for all.
        mean_size = c["bytes_sent"] / n
        assert 4641 * 0.95 < mean_size < 4641 * 1.05, mean_size
        bodies = [d.octets for d in digest]
        header = mean_size - statistics.mean(bodies)
        med = statistics.median(bodies) + header
        assert 4096 * 0.95 < med < 4096 * 1.05, (med, header)
        sigma = statistics.pstdev([math.log(b + header) for b in bodies])
        assert 0.45 < sigma < 0.55, f"sigma of ln(size) {sigma:.3f}, expected 0.5"
        # Bodies come from a pool of up to 1024 templates (loadgen/message_factory.hpp).
        assert len(set(bodies)) > 500, f"only {len(set(bodies))} distinct body sizes"
    else:
        assert c["bytes_sent"] == 1024 * n  # exact sizes, headers included
    if name == "one_per_connection":
        assert c["connections_opened"] == n
        assert j["latency"]["connect"]["count"] == n
    else:
        assert c["connections_opened"] == 10


# ---- 2. Failure accounting --------------------------------------------------------------------

FAILURES = [
    ("tempfail", "--tempfail-rate", 451, "4.3.0"),
    ("permfail", "--permfail-rate", 554, "5.6.0"),
]


@pytest.mark.parametrize("kind,flag,code,enhanced", FAILURES, ids=[f[0] for f in FAILURES])
def test_failure_accounting(sink, loadgen, tmp_path, kind, flag, code, enhanced):
    n = 5000
    s, log = digest_sink(sink, tmp_path, flag, "0.1")
    run_id = f"fail-{kind}"
    r = loadgen("--target", target(s), "--connections", 10, "--messages", n, "--run-id", run_id)
    digest = stopped_digest(s, log)
    c, j = r.counts, r.json
    failed = c[kind]
    other = "permfail" if kind == "tempfail" else "tempfail"
    print(f"{kind}: {failed} of {c['started']} ({100 * failed / c['started']:.1f} %)")

    assert c["started"] == n
    assert 0.08 <= failed / n <= 0.12, f"{kind} {failed} of {n}"
    assert (c[other], c["errors"]) == (0, 0)
    assert c["accepted"] + failed == n
    assert j["replies"] == {"250 2.0.0": c["accepted"], f"{code} {enhanced}": failed}
    assert c["recipients_accepted"] == n  # the sink fails the end of data, not the RCPT
    assert c["bytes_sent"] == 1024 * c["accepted"]  # accepted messages only
    assert sum(row[kind] for row in j["timeline"]) == failed

    assert len(r.ledger) == n
    bad = [l for l in r.ledger if l.code == code]
    assert len(bad) == failed and all(l.enhanced == enhanced for l in bad)
    assert sum(1 for l in r.ledger if l.code == 250) == c["accepted"]
    # The digest log has exactly the accepted ones (reconcile: 2xx ids = digest ids).
    assert len(digest) == c["accepted"]
    reconcile(r.ledger, digest, run_id)


# ---- 3. Pipelining seen from the server ------------------------------------------------------

PIPELINING = [
    # name, sink args, loadgen args, pipelined?, bdat?, (low, high) reply writes per message
    ("pipelined", [], [], True, False, (1.5, 2.5)),
    ("no_pipelining_flag", [], ["--no-pipelining"], False, False, (3.5, 4.5)),
    ("sink_without_pipelining", ["--no-pipelining"], [], False, False, (3.5, 4.5)),
    ("bdat", [], ["--bdat"], True, True, (0.5, 1.5)),
]


@pytest.mark.parametrize("name,sink_args,lg_args,pipelined,bdat,writes", PIPELINING, ids=[p[0] for p in PIPELINING])
def test_pipelining_round_trips(sink, loadgen, report_figure, name, sink_args, lg_args, pipelined, bdat, writes):
    """A pipelined DATA transaction costs 2 round trips (MAIL+RCPT+DATA, then the body), a
    lockstep one 4, BDAT 1: the sink counts one reply write per round trip."""
    n = 2000
    s = sink("--metrics", "127.0.0.1:0", *sink_args)
    before = scrape(s.metrics_addr)
    r = loadgen("--target", target(s), "--connections", 10, "--messages", n, "--run-id", f"pipe-{name}", *lg_args)
    after = scrape(s.metrics_addr)

    def delta(name_, **labels):
        return metric(after, name_, **labels) - metric(before, name_, **labels)

    assert r.counts["accepted"] == n
    assert delta("ringmta_sink_messages_total", outcome="accepted") == n
    per_msg = delta("ringmta_sink_reply_writes_total") / n
    report_figure(f"loadgen reply writes per message ({name})", f"{per_msg:.3f}")
    assert writes[0] < per_msg < writes[1], f"{per_msg:.3f} reply writes per message, expected {writes}"
    assert r.counts["pipelined_transactions"] == (n if pipelined else 0)
    assert r.counts["bdat_transactions"] == (n if bdat else 0)


# ---- 4. Open loop rate ------------------------------------------------------------------------

ARRIVALS = [("constant", 0.05), ("poisson", 0.10)]


@pytest.mark.parametrize("arrival,tolerance", ARRIVALS, ids=[a[0] for a in ARRIVALS])
def test_open_loop_rate(sink, loadgen, report_figure, arrival, tolerance):
    rate, duration = 1000, 3
    s = sink()
    r = loadgen("--target", target(s), "--rate", rate, "--duration", f"{duration}s", "--arrival", arrival,
                "--run-id", f"open-{arrival}")
    j, c = r.json, r.counts
    expected = rate * duration
    assert j["mode"] == "open" and j["rate_msg_s"] == rate
    assert (c["tempfail"], c["permfail"], c["errors"]) == (0, 0, 0)
    assert c["accepted"] == c["started"]
    assert abs(c["accepted"] - expected) <= tolerance * expected, f"{c['accepted']} accepted, expected {expected}"
    assert r.elapsed >= duration - 0.1, f"run took {r.elapsed:.2f}s"

    # The timeline: about `rate` per second in the seconds away from the start and the end.
    rows = {row["second"]: row["accepted"] for row in j["timeline"]}
    middle = [rows.get(sec, 0) for sec in range(1, duration - 1)]
    assert middle and all(abs(v - rate) <= tolerance * rate for v in middle), j["timeline"]

    # Arrivals, from the ledger's reply times in 50-ms bins (latency here is ~1 ms): evenly
    # spaced starts give ~50 in every bin; Poisson arrivals have variance = mean.
    t0 = j["start_unix_ms"]
    bins = [0] * (duration * 20)
    for l in r.ledger:
        k = (l.unix_ms - t0) // 50
        if 0 <= k < len(bins):
            bins[k] += 1
    inner = bins[4:-4]
    dispersion = statistics.pvariance(inner) / statistics.mean(inner)
    report_figure(f"loadgen open loop {arrival}: accepted, variance/mean of 50-ms counts",
                  f"{c['accepted']}, {dispersion:.2f}")
    if arrival == "constant":
        assert dispersion < 0.3, f"constant arrivals, but 50-ms counts vary: {inner}"
    else:
        assert 0.5 < dispersion < 2.0, f"Poisson arrivals should have variance ~ mean: {inner}"


# ---- 5. Coordinated omission ------------------------------------------------------------------


def run_with_stall(loadgen, s, args, stall_at=3.0, stall=1.0, timeout=30.0):
    """Runs the loadgen and stops the sink (SIGSTOP, only the one this test started) for
    `stall` seconds, `stall_at` seconds into the run."""
    r = loadgen.start(*args, ledger=False)
    stopped = False
    try:
        time.sleep(max(0.0, r.t_start + stall_at - time.monotonic()))
        assert r.running(), f"loadgen ended before the stall: {r.stderr()}"
        os.kill(s.pid, signal.SIGSTOP)
        stopped = True
        time.sleep(stall)
    finally:
        if stopped:
            os.kill(s.pid, signal.SIGCONT)
    rc = r.wait(timeout)
    assert rc == 0, f"{r.describe()} exited {rc}: {r.stderr()[-2000:]}"
    return r


@pytest.mark.timeout(45)
def test_coordinated_omission(sink, loadgen, report_figure):
    """The same 1-s stall of the server: the open loop (latency from the schedule) shows it
    in its p99, as every message scheduled during the stall waited; the closed loop hides it
    (only the ~10 messages in flight saw it), though its max still shows the stall."""
    s = sink()
    rate, secs = 500, 8
    open_run = run_with_stall(loadgen, s, ["--target", target(s), "--rate", rate, "--duration", f"{secs}s",
                                           "--connections", 50, "--run-id", "co-open"])
    closed_run = run_with_stall(loadgen, s, ["--target", target(s), "--connections", 10,
                                             "--duration", f"{secs}s", "--run-id", "co-closed"])

    figures = {}
    for label, r in (("open", open_run), ("closed", closed_run)):
        lat = r.json["latency"]
        acc, txn = lat["accept"], lat["transaction"]
        slow = count_at_least(acc, 500_000_000)
        figures[label] = (acc, txn, slow)
        report_figure(
            f"coordinated omission, {label} loop ({r.counts['accepted']} accepted)",
            f"accept p50 {ms(acc['percentiles_ns']['50'])} p99 {ms(acc['percentiles_ns']['99'])} "
            f"max {ms(acc['max_ns'])}; transaction p99 {ms(txn['percentiles_ns']['99'])} "
            f"max {ms(txn['max_ns'])}; {slow} messages with accept >= 0.5 s")
        assert r.counts["errors"] == 0 and r.counts["accepted"] == r.counts["started"]

    acc, txn, slow = figures["open"]
    assert open_run.counts["accepted"] >= 0.95 * rate * secs
    assert acc["percentiles_ns"]["99"] >= 500_000_000, "open loop p99 accept hides the 1-s stall"
    assert txn["percentiles_ns"]["99"] >= 500_000_000, "open loop p99 transaction hides the 1-s stall"
    assert acc["max_ns"] >= 900_000_000
    # Messages scheduled in the first half of the stall waited >= 0.5 s: ~rate/2 of them.
    assert slow >= 0.3 * rate, f"only {slow} messages with accept latency >= 0.5 s"

    acc, txn, slow = figures["closed"]
    assert acc["percentiles_ns"]["99"] < 100_000_000, "closed loop p99 should hide the stall (coordinated omission)"
    assert acc["max_ns"] >= 900_000_000, "the stalled messages' latency is missing from the closed loop's max"
    assert txn["max_ns"] >= 900_000_000
    assert 1 <= slow <= 10, f"{slow} closed-loop messages with accept >= 0.5 s; at most the 10 in flight"


# ---- 6. Errors and usage ---------------------------------------------------------------------


def test_nothing_listening_exits_1(loadgen):
    port = free_port()
    r = loadgen("--target", f"127.0.0.1:{port}", "--connections", 5, "--duration", "2s", "--run-id", "refused",
                expect_exit=1, timeout=15)
    c = r.counts
    assert r.json["conn_errors"]["refused"] > 0
    assert {k: v for k, v in r.json["conn_errors"].items() if k != "refused"} == {
        k: 0 for k in ZERO_CONN_ERRORS if k != "refused"}
    assert (c["started"], c["accepted"], c["warmup_messages"]) == (0, 0, 0)
    assert r.ledger == []
    assert r.elapsed < 6, f"a 2-s run against a closed port took {r.elapsed:.1f}s"


@pytest.mark.timeout(25)
def test_nothing_listening_with_only_a_message_count_ends(loadgen):
    """--messages alone means no time limit, but a run where no connection can ever be made
    must still end with exit 1 ("no message could be started"), not retry for ever: well
    after --connect-timeout without a single connection it should give up."""
    port = free_port()
    r = loadgen("--target", f"127.0.0.1:{port}", "--connections", 5, "--messages", 100,
                "--connect-timeout", "2s", "--run-id", "refused-count", expect_exit=1, timeout=12)
    assert r.json["conn_errors"]["refused"] > 0
    assert r.counts["started"] == 0 and r.ledger == []


BAD_FLAGS = [
    (["--connections", "0"], "--connections"),
    (["--rate", "-5"], "--rate"),
    (["--size", "2X"], "--size"),
    (["--bogus"], "--bogus"),
    (["--duration", "abc"], "--duration"),
    (["--target", "localhost:25"], "--target"),
    (["--warmup", "5s", "--duration", "3s"], "--warmup"),
    (["--arrival", "weird"], "--arrival"),
    (["--recipients", "0"], "--recipients"),
]


@pytest.mark.parametrize("args,flag", BAD_FLAGS, ids=[" ".join(a[0]) for a in BAD_FLAGS])
def test_bad_flag_exits_2_with_one_line(loadgen, args, flag):
    r = loadgen(*args, "--messages", 1, expect_exit=2, json_out=False, ledger=False, timeout=10)
    err = r.stderr()
    assert r.stdout() == ""
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one stderr line, got {err!r}"
    assert err.startswith(f"ringmta-loadgen: {flag}: "), err


def test_bad_config_exits_2_naming_file_line_and_key(loadgen, tmp_path):
    cfg = tmp_path / "load.toml"
    cfg.write_text('connections = 5\nbogus = 1\n')
    r = loadgen("--config", str(cfg), expect_exit=2, json_out=False, ledger=False, timeout=10)
    err = r.stderr()
    assert err.count("\n") == 1 and r.stdout() == ""
    assert err == f"ringmta-loadgen: {cfg}:2:1: bogus: unknown key\n", err


def test_sink_closing_mid_transaction(sink, loadgen, tmp_path, report_figure):
    n = 2000
    s, log = digest_sink(sink, tmp_path, "--disconnect-rate", "0.2")
    run_id = "disc"
    r = loadgen("--target", target(s), "--connections", 10, "--messages", n, "--run-id", run_id, timeout=40)
    digest = stopped_digest(s, log)
    c, j = r.counts, r.json
    report_figure("loadgen vs --disconnect-rate 0.2", f"errors {c['errors']} of {c['started']}, "
                  f"{c['connections_opened']} connections opened")

    assert c["started"] == n
    assert 0.17 <= c["errors"] / n <= 0.23, f"{c['errors']} errors of {n}"
    assert (c["tempfail"], c["permfail"]) == (0, 0)
    assert c["accepted"] + c["errors"] == n
    assert j["conn_errors"] == dict(ZERO_CONN_ERRORS, closed=c["errors"])
    assert j["replies"] == {"250 2.0.0": c["accepted"]}  # no reply, no entry
    # Every closed connection was replaced, except at most the last one of each session.
    assert c["errors"] <= c["connections_opened"] <= 10 + c["errors"], c

    assert len(r.ledger) == n
    lost = [l for l in r.ledger if l.code == 0]
    assert len(lost) == c["errors"]
    assert all(l.enhanced == "-" and l.text.startswith("connection error") for l in lost), lost[0]
    assert len(digest) == c["accepted"]
    reconcile(r.ledger, digest, run_id)


# ---- 7. Postfix's smtp-sink --------------------------------------------------------------------


def test_against_postfix_smtp_sink(loadgen, tmp_path):
    n = 2000
    ps = PostfixSink(tmp_path).start()
    try:
        r = loadgen("--target", f"127.0.0.1:{ps.port}", "--connections", 20, "--messages", n, "--run-id", "postfix")
    finally:
        ps.stop()
    c, j = r.counts, r.json
    assert (c["started"], c["accepted"], c["errors"]) == (n, n, 0)
    assert j["replies"] == {"250 2.0.0": n}
    assert len(r.ledger) == n and all(l.code == 250 for l in r.ledger)
    assert len({l.id for l in r.ledger}) == n
    assert c["pipelined_transactions"] == n  # smtp-sink offers PIPELINING
    # smtp-sink's own count (-c): the messages it took (its readiness probe was one session).
    assert ps.counters()["mesg"] == n


# ---- 8. Warm-up -------------------------------------------------------------------------------


def test_warmup_messages_sent_but_not_measured(sink, loadgen, tmp_path):
    rate = 500
    s, log = digest_sink(sink, tmp_path)
    r = loadgen("--target", target(s), "--rate", rate, "--warmup", "1s", "--duration", "3s", "--run-id", "warm")
    digest = stopped_digest(s, log)
    c, j = r.counts, r.json

    assert j["warmup_s"] == 1.0
    assert abs(c["warmup_messages"] - rate) <= 0.05 * rate, c
    assert abs(c["started"] - 2 * rate) <= 0.05 * 2 * rate, c  # the warm-up excluded
    assert c["accepted"] == c["started"]
    assert 1.9 <= j["duration_s"] <= 2.5, j["duration_s"]  # from the end of the warm-up
    assert j["latency"]["accept"]["count"] == c["accepted"]
    assert j["latency"]["transaction"]["count"] == c["started"]
    assert j["replies"] == {"250 2.0.0": c["accepted"]}
    # The ledger has them all; so does the sink.
    assert len(r.ledger) == c["started"] + c["warmup_messages"]
    assert len(digest) == len(r.ledger)
    reconcile(r.ledger, digest, "warm")
    # The warm-up messages are the ones that ended in the first second (latency ~1 ms).
    early = sum(1 for l in r.ledger if l.unix_ms < j["start_unix_ms"] + 1000)
    assert abs(early - c["warmup_messages"]) <= 10, (early, c["warmup_messages"])


def test_warmup_in_timeline_and_not_in_transaction_counts(sink, loadgen):
    """docs/result-format.md: warm-up messages are in no figure "except
    counts.warmup_messages and the timeline" (whose rows include the warm-up's seconds), and
    counts are "after the warm-up unless noted" (only connections_opened says warm-up
    included)."""
    rate = 500
    s = sink()
    r = loadgen("--target", target(s), "--rate", rate, "--warmup", "1s", "--duration", "3s", "--run-id", "warm2")
    c, j = r.counts, r.json
    rows = {row["second"]: row for row in j["timeline"]}
    assert 0 in rows and abs(rows[0]["accepted"] - rate) <= 0.05 * rate, (
        f"timeline second 0 (the warm-up) should have its ~{rate} messages: {j['timeline']}")
    assert sum(row["accepted"] for row in j["timeline"]) == c["accepted"] + c["warmup_messages"]
    assert c["pipelined_transactions"] == c["started"], (
        f"pipelined_transactions {c['pipelined_transactions']} counts the {c['warmup_messages']} warm-up "
        f"messages; started {c['started']}")
