"""ringmta-relay part 1 (accepts mail, stores it durably, no delivery yet) against real clients
on loopback: the 250 and what it stands for (the spool holds the message, Received: first,
body unchanged), relay access, connection and spool limits, crash safety (SIGKILL under load,
20+ times, every acked message found again, unchanged), a full disk (tmpfs), a damaged spool
at start, and bad usage. Figures are asserted, not just exit codes (DESIGN.md decision 4).

The crash test uses the optimised relay ($RINGMTA_RELEASE_BIN, default build/bin) for speed;
everything else the test build ($RINGMTA_BIN, default build/asan/bin)."""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import smtplib
import socket
import subprocess
import time
from collections import Counter

import pytest

from relaylib import (
    HEADER_SIZE, QUEUED, TYPE_MESSAGE, TYPE_SEGMENT, crc32c, decode_message, queue_digest,
    queue_list, read_records, release_relay_binary, run_relay, segments,
)
from sinklib import HOST, SmtpClient, dot_stuff, make_message, metric, scrape


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def metrics_of(r) -> dict:
    assert r.metrics_addr, "relay started without --metrics"
    return scrape(r.metrics_addr)


def send(port: int, msg_id: str, body: bytes, rcpts=("rcpt@example.test",), sender="sender@client.example"):
    """One message over a fresh connection, lock-step. Returns the final reply."""
    with SmtpClient(port) as c:
        assert c.banner().code == 220
        c.ehlo()
        env, final = c.send_message(sender, list(rcpts), make_message(msg_id, body))
        assert [r.code for r in env] == [250] * (1 + len(rcpts)) + [354], [str(r) for r in env]
        c.cmd("QUIT")
        return final


def client_from(port: int, src: str = "127.0.0.1") -> SmtpClient:
    """An SmtpClient whose connection comes from a chosen loopback address."""
    c = SmtpClient.__new__(SmtpClient)
    c.sock = socket.create_connection((HOST, port), timeout=10, source_address=(src, 0))
    c.buf, c.received = b"", b""
    return c


# ---- 1. Basics --------------------------------------------------------------------------------


def test_message_is_queued_with_received_header(relay, tmp_path):
    r = relay("--threads", "1")
    assert r.recovered == 0 and r.durability == "batch" and r.threads == 1, r.ready_line
    # Dot-stuffing on the wire (smtplib does it), CRLF, 8-bit-free text.
    body = b"first line\r\n.leading dot\r\n..two dots\r\nlast\r\n"
    message = make_message("basic-1", body, subject="basics")

    with smtplib.SMTP(HOST, r.port, timeout=10) as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert s.mail("sender@client.example")[0] == 250
        assert s.rcpt("rcpt@example.test")[0] == 250
        code, text = s.data(message)
    text = text.decode()
    assert code == 250, f"{code} {text}"
    m = QUEUED.match(text)
    assert m, f"250 reply {text!r} is not '2.0.0 Ok: queued as <16 hex>'"
    queue_id = m.group(1)

    # The spool, read by the relay's own tool: the accounting digest (headers excluded)...
    digest = queue_digest(r.spool)
    assert len(digest) == 1, digest
    d = digest[0]
    assert d.id == "basic-1"
    assert d.octets == len(body) and d.sha256 == sha(body), (d, len(body), sha(body))
    assert d.rcpts == ("rcpt@example.test",)
    # ...and the listing: queue id, stored size (Received: + the message as received).
    entries, summary = queue_list(r.spool)
    assert len(entries) == 1 and summary["messages"] == 1 and summary["recipients"] == 1, (entries, summary)
    e = entries[0]
    assert e.queue_id == queue_id and e.sender == "sender@client.example" and e.rcpts == ("rcpt@example.test",)

    # The record on disk: Received: prepended, then the message byte for byte as received.
    recs = [rec for p in segments(r.spool) for rec in read_records(p)[0] if rec.type == TYPE_MESSAGE]
    assert len(recs) == 1, recs
    stored = decode_message(recs[0].payload)
    assert f"{stored.id:016x}" == queue_id
    assert stored.sender == "sender@client.example" and stored.rcpts == ["rcpt@example.test"]
    assert stored.client_ip == "127.0.0.1" and stored.helo == "client.example"
    wire = dot_stuff(message)
    assert stored.body.endswith(wire), "the stored body does not end with the message as received"
    received = stored.body[: len(stored.body) - len(wire)]
    assert re.fullmatch(
        rb"Received: from client\.example \(127\.0\.0\.1\)\r\n"
        rb"\tby localhost \(ringmta\) with ESMTP id " + queue_id.encode() + rb"\r\n"
        rb"\tfor <rcpt@example\.test>; [A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n",
        received), f"unexpected Received: header {received!r}"
    assert e.stored_bytes == len(stored.body), (e, len(stored.body))
    assert summary["bytes"] == HEADER_SIZE + recs[0].length, summary

    assert r.stop() == 0, f"SIGTERM: exit {r.returncode}; stderr {r.stderr()[-2000:]}"
    # Still there after a clean stop, and recovered at the next start.
    r2 = relay("--threads", "1", spool=r.spool)
    assert r2.recovered == 1, r2.ready_line
    assert [x.id for x in queue_digest(r.spool)] == ["basic-1"]


# ---- 2. Relay access --------------------------------------------------------------------------


def test_loopback_relays_anywhere_by_default(relay):
    r = relay()
    with SmtpClient(r.port) as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>").code == 250
        for rcpt in ("x@anything.invalid", "y@example.com", "z@sub.other.test"):
            rep = c.cmd(f"RCPT TO:<{rcpt}>")
            assert rep.code == 250, f"{rcpt}: {rep}"


def test_relay_access_denied_outside_relay_networks(relay, tmp_path):
    r = relay("--relay-network", "10.0.0.0/8", "--accept-domain", "example.test",
              "--accept-domain", "*.sub.test", "--metrics", "127.0.0.1:0")
    expect = [
        ("a@example.test", 250),
        ("b@EXAMPLE.Test", 250),       # domains compare ignoring case
        ("c@x.sub.test", 250),         # *.sub.test: its sub-domains...
        ("d@deep.x.sub.test", 250),
        ("e@sub.test", 554),           # ...not sub.test itself
        ("f@other.test", 554),
        ("g@notexample.test", 554),    # not a suffix match on a label boundary
        ("h@example.test.evil", 554),
        ("postmaster@other.test", 554),  # only the bare <Postmaster> is special
    ]
    denied = 0
    with SmtpClient(r.port) as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>").code == 250
        for rcpt, code in expect:
            rep = c.cmd(f"RCPT TO:<{rcpt}>")
            assert rep.code == code, f"RCPT {rcpt}: {rep}, expected {code}"
            if code == 554:
                denied += 1
                assert rep.line == "554 5.7.1 Relay access denied", rep.line
        rep = c.cmd("RCPT TO:<Postmaster>")
        assert rep.code == 250, f"bare <Postmaster>: {rep}"
        assert c.cmd("DATA").code == 354
        body = b"relay access\r\n"
        c.send(dot_stuff(make_message("access-1", body)) + b".\r\n")
        final = c.read_reply()
        assert final.code == 250, final
        c.cmd("QUIT")

    d = queue_digest(r.spool)
    assert len(d) == 1 and d[0].id == "access-1" and d[0].sha256 == sha(body)
    assert d[0].rcpts == ("a@example.test", "b@EXAMPLE.Test", "c@x.sub.test", "d@deep.x.sub.test",
                          "Postmaster"), d[0].rcpts
    samples = metrics_of(r)
    assert metric(samples, "ringmta_relay_recipients_total", outcome="relay_denied") == denied == 5
    assert metric(samples, "ringmta_relay_recipients_total", outcome="accepted") == 5
    assert metric(samples, "ringmta_relay_messages_total", outcome="accepted") == 1


def test_relay_network_is_matched_by_client_address(relay):
    """--relay-network 127.0.0.2/32 trusts one loopback address and not another."""
    r = relay("--relay-network", "127.0.0.2/32")
    for src, code in (("127.0.0.2", 250), ("127.0.0.3", 554), ("127.0.0.1", 554)):
        with client_from(r.port, src) as c:
            c.banner()
            c.ehlo()
            assert c.cmd("MAIL FROM:<a@client.example>").code == 250
            rep = c.cmd("RCPT TO:<x@elsewhere.test>")
            assert rep.code == code, f"from {src}: {rep}"


# ---- 3. Limits --------------------------------------------------------------------------------


def test_max_connections(relay):
    r = relay("--max-connections", "3", "--metrics", "127.0.0.1:0")
    held = [SmtpClient(r.port) for _ in range(3)]
    try:
        for c in held:
            assert c.banner().code == 220
        extra = SmtpClient(r.port)
        b = extra.banner()
        assert b.code == 421 and b.enhanced == "4.7.0", b
        extra.expect_closed()
        extra.close()
        # The limit is on concurrent sessions: one leaves, the next is served.
        held[0].cmd("QUIT")
        held[0].expect_closed()
        held[0].close()
        deadline = time.monotonic() + 5
        while True:
            with SmtpClient(r.port) as again:
                b = again.banner()
            if b.code == 220 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert b.code == 220, f"a slot freed by QUIT was not reused: {b}"
    finally:
        for c in held:
            c.close()
    samples = metrics_of(r)
    assert metric(samples, "ringmta_relay_sessions_refused_total", reason="connection_limit") >= 1


def test_max_connections_per_client(relay):
    r = relay("--max-connections-per-client", "2", "--metrics", "127.0.0.1:0")
    held = [client_from(r.port) for _ in range(2)]
    try:
        for c in held:
            assert c.banner().code == 220
        with client_from(r.port) as third:
            b = third.banner()
            assert b.code == 421 and b.enhanced == "4.7.0", b
            assert "your address" in b.text, b
        # Per client address: another loopback address still gets in.
        with client_from(r.port, "127.0.0.2") as other:
            b = other.banner()
            assert b.code == 220, f"a different client address was refused: {b}"
    finally:
        for c in held:
            c.close()
    samples = metrics_of(r)
    assert metric(samples, "ringmta_relay_sessions_refused_total", reason="client_limit") == 1


def test_spool_quota_messages(relay):
    r = relay("--spool-quota-messages", "5", "--metrics", "127.0.0.1:0")
    bodies = {f"quota-{i}": f"message {i}\r\n".encode() * (i + 1) for i in range(5)}
    with SmtpClient(r.port) as c:
        c.banner()
        c.ehlo()
        for mid, body in bodies.items():
            _, final = c.send_message("a@client.example", ["x@example.test"], make_message(mid, body))
            assert final.code == 250, f"{mid}: {final}"
        rep = c.cmd("MAIL FROM:<a@client.example>")
        assert rep.code == 452 and rep.enhanced == "4.3.1", rep
        assert c.cmd("NOOP").code == 250  # the session goes on
    with SmtpClient(r.port) as c:  # and so does a new one, refused the same way
        c.banner()
        c.ehlo()
        rep = c.cmd("MAIL FROM:<a@client.example>")
        assert rep.code == 452 and rep.enhanced == "4.3.1", rep
    digest = {d.id: d for d in queue_digest(r.spool)}
    assert sorted(digest) == sorted(bodies), sorted(digest)
    for mid, body in bodies.items():
        assert digest[mid].sha256 == sha(body) and digest[mid].octets == len(body), mid
    samples = metrics_of(r)
    assert metric(samples, "ringmta_relay_spool_messages") == 5
    assert metric(samples, "ringmta_relay_messages_total", outcome="accepted") == 5


def test_spool_quota_bytes(relay):
    r = relay("--segment-size", "1M", "--spool-quota-bytes", "1M")
    body = (b"q" * 98 + b"\r\n") * 1000  # 100 KB
    acked = []
    with SmtpClient(r.port) as c:
        c.banner()
        c.ehlo()
        for i in range(20):
            rep = c.cmd("MAIL FROM:<a@client.example>")
            if rep.code != 250:
                break
            assert c.cmd("RCPT TO:<x@example.test>").code == 250
            assert c.cmd("DATA").code == 354
            c.send(dot_stuff(make_message(f"qb-{i}", body)) + b".\r\n")
            final = c.read_reply()
            assert final.code == 250, final
            acked.append(f"qb-{i}")
        assert rep.code == 452 and rep.enhanced == "4.3.1", rep
    # Refused once the records reach 1 MiB: 100 KB each, so the 11th MAIL (10 * ~100 KB < 1 MiB).
    assert len(acked) == 11, f"{len(acked)} messages of 100 KB taken under a 1 MiB quota"
    assert sorted(d.id for d in queue_digest(r.spool)) == sorted(acked)


def test_max_message_size(relay):
    r = relay("--max-message-size", "10K")
    with SmtpClient(r.port) as c:
        c.banner()
        ehlo = c.ehlo()
        assert "SIZE 10240" in ehlo.lines, ehlo
        rep = c.cmd("MAIL FROM:<a@client.example> SIZE=20000")
        assert rep.code == 552 and rep.enhanced == "5.3.4", rep
        # Without a SIZE declaration: refused at the final dot.
        big = make_message("size-big", (b"x" * 998 + b"\r\n") * 20)
        _, final = c.send_message("a@client.example", ["x@example.test"], big)
        assert final.code == 552 and final.enhanced == "5.3.4", final
        # The session survives, and a message under the limit is taken.
        small_body = b"small\r\n"
        _, final = c.send_message("a@client.example", ["x@example.test"], make_message("size-small", small_body))
        assert final.code == 250, final
    assert [(d.id, d.sha256) for d in queue_digest(r.spool)] == [("size-small", sha(small_body))]


# ---- 4. Crash test: SIGKILL under load, 20+ times ----------------------------------------------

CRASH_ITERATIONS = 20


def wait_first_accept(r, lg, timeout: float = 10.0) -> None:
    """Waits until the relay has acked a message (the load has really started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert lg.running(), f"loadgen ended before any message was accepted: {lg.stderr()[-2000:]}"
        if metric(scrape(r.metrics_addr), "ringmta_relay_messages_total", outcome="accepted") >= 1:
            return
        time.sleep(0.005)
    raise AssertionError(f"no message accepted within {timeout}s of the load starting")


@pytest.mark.timeout(150)
def test_crash_under_load_loses_nothing_acked(relay, loadgen, tmp_path, report_figure):
    binary = release_relay_binary()
    if not binary.exists():
        pytest.fail(f"{binary} is missing: the crash test runs the optimised relay; build it "
                    f"(cmake --preset release && cmake --build --preset release) or set RINGMTA_RELEASE_BIN")
    seed = int(os.environ.get("RINGMTA_CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"crash test seed {seed} (RINGMTA_CRASH_SEED to repeat)")
    spool = tmp_path / "crash-spool"
    # 1M segments: many rotations under load (each start also opens fresh ones), little disk.
    base = ["--segment-size", "1M", "--metrics", "127.0.0.1:0"]
    plan = ["batch"] * CRASH_ITERATIONS
    plan.insert(CRASH_ITERATIONS // 2, "always")

    acked: dict[str, tuple[str, int]] = {}  # every id acked so far -> (body sha256, recipients)
    ledger_codes: dict[str, int] = {}  # every id the loadgen logged -> final code
    ledger_count: Counter = Counter()
    rows = []
    torn_repairs = quarantined = 0  # repairs the restarts reported
    in_spool_before = 0
    t_start = time.monotonic()
    for i, durability in enumerate(plan):
        r = relay(*base, "--durability", durability, spool=spool, binary=binary)
        # Recovery finds exactly what the (read-only) queue tool listed after the kill.
        assert r.recovered == in_spool_before, (
            f"iteration {i}: recovered {r.recovered} messages but the spool listed {in_spool_before}; {r.ready_line}")
        assert r.durability == durability
        torn_repairs += r.stderr().count("cut a torn tail")
        quarantined += r.stderr().count("copied to")
        lg = loadgen.start("--target", f"127.0.0.1:{r.port}", "--connections", 4, "--duration", "1.6s",
                           "--size", "uniform:600-12000", "--recipients", "uniform:1-3",
                           "--seed", i + 1, "--run-id", f"crash{i}", "--timeout", "10s",
                           "--connect-timeout", "2s")
        wait_first_accept(r, lg)
        delay = rng.uniform(0.05, 1.0)
        time.sleep(delay)
        r.crash()
        assert r.returncode == -signal.SIGKILL, f"relay was not killed by SIGKILL: {r.returncode}"
        rc = lg.wait(20)
        assert rc in (0, 1), f"loadgen exited {rc}: {lg.stderr()[-2000:]}"

        ledger = lg.ledger
        assert ledger, f"iteration {i}: empty ledger"
        run_acked = 0
        for l in ledger:
            ledger_count[l.id] += 1
            ledger_codes[l.id] = l.code
            if l.code == 250:
                acked[l.id] = (l.sha256, l.accepted)
                run_acked += 1
            else:
                assert l.code == 0, f"iteration {i}: unexpected reply to {l.id}: {l}"
        dupl = [k for k, n in ledger_count.items() if n > 1]
        assert not dupl, f"ids twice in the ledgers: {dupl[:5]}"

        spool_lines = queue_digest(spool, binary=binary)
        ids = Counter(d.id for d in spool_lines)
        twice = [k for k, n in ids.items() if n > ledger_count.get(k, 0) and n > 1]
        assert not twice, f"iteration {i}: ids stored more than once: {twice[:5]}"
        by_id = {d.id: d for d in spool_lines}
        lost = [k for k in acked if k not in by_id]
        assert not lost, (f"iteration {i} ({durability}, killed {delay:.2f}s into the load): "
                          f"{len(lost)} acked messages missing from the spool, e.g. {lost[:5]}")
        corrupted = [k for k, (h, _) in acked.items() if by_id[k].sha256 != h]
        assert not corrupted, f"iteration {i}: {len(corrupted)} body sha256 mismatches, e.g. {corrupted[:5]}"
        wrong_rcpts = [k for k, (_, n) in acked.items() if len(by_id[k].rcpts) != n]
        assert not wrong_rcpts, f"iteration {i}: recipient counts differ: {wrong_rcpts[:5]}"
        unknown = [k for k in by_id if k not in ledger_codes]
        assert not unknown, f"iteration {i}: ids in the spool that no ledger logged: {unknown[:5]}"
        extra = [k for k in by_id if ledger_codes[k] != 250]
        found = sum(1 for k in by_id if ledger_codes[k] == 250)
        assert found == len(acked)
        run_extra = sum(1 for k in extra if k.startswith(f"crash{i}-"))
        rows.append((i, durability, delay, run_acked, len(ledger), run_extra, len(spool_lines)))
        print(f"iteration {i:2d} {durability:6s} killed {delay:.2f}s into the load: acked {run_acked:5d} "
              f"of {len(ledger):5d}, found {run_acked:5d}, extra {run_extra}; spool {len(spool_lines)} "
              f"messages; recovered {r.recovered} at start in {r.recovery_ms:.1f} ms")
        in_spool_before = len(spool_lines)

    # A last start recovers everything, takes mail again, and stops cleanly.
    r = relay(*base, spool=spool, binary=binary)
    assert r.recovered == in_spool_before, r.ready_line
    torn_repairs += r.stderr().count("cut a torn tail")
    quarantined += r.stderr().count("copied to")
    final = send(r.port, "after-crashes", b"still alive\r\n")
    assert final.code == 250, final
    assert r.stop() == 0, f"SIGTERM after recovery: exit {r.returncode}; {r.stderr()[-2000:]}"
    elapsed = time.monotonic() - t_start

    total_acked = len(acked)
    total_extra = sum(x[5] for x in rows)
    with_acks = sum(1 for x in rows if x[3] > 0)
    assert with_acks == len(plan), f"only {with_acks} of {len(plan)} runs got any 250 before the kill"
    assert total_acked >= 20 * len(plan), f"only {total_acked} messages acked in {len(plan)} runs"
    report_figure("relay crash test (SIGKILL under load)",
                  f"{len(plan)} kills ({plan.count('always')} with --durability always), seed {seed}: "
                  f"acked {total_acked}, found {total_acked}, lost 0, extra (stored, not acked) "
                  f"{total_extra}; restarts cut {torn_repairs} torn tails, quarantined {quarantined} records; "
                  f"{elapsed:.1f} s")


def test_steady_load_every_message_answered_and_stored(relay, loadgen):
    """No crash: 5,000 messages over 8 connections with 1M segments (rotations, group
    commits): every one answered 250 in time, and the spool is exactly the ledger."""
    r = relay("--segment-size", "1M")
    n = 5000
    lg = loadgen("--target", f"127.0.0.1:{r.port}", "--connections", 8, "--messages", n,
                 "--size", "uniform:600-4000", "--recipients", "uniform:1-2", "--run-id", "steady",
                 "--timeout", "5s", timeout=60)
    c = lg.counts
    assert (c["started"], c["accepted"], c["errors"], c["tempfail"]) == (n, n, 0, 0), (c, lg.json["conn_errors"])
    ledger = {l.id: l for l in lg.ledger}
    digest = queue_digest(r.spool)
    assert len(digest) == n == len(ledger), (len(digest), len(ledger))
    for d in digest:
        l = ledger[d.id]
        assert (d.sha256, len(d.rcpts)) == (l.sha256, l.accepted), (d, l)


def test_sigterm_under_load_keeps_every_acked_message(relay, loadgen):
    """A clean stop in the middle of the load: exit 0, every 250 in the spool, unchanged."""
    r = relay("--metrics", "127.0.0.1:0", "--segment-size", "1M")
    lg = loadgen.start("--target", f"127.0.0.1:{r.port}", "--connections", 8, "--duration", "2s",
                       "--size", "uniform:600-20000", "--run-id", "term", "--timeout", "10s")
    wait_first_accept(r, lg)
    time.sleep(0.5)
    assert r.stop(timeout=15) == 0, f"SIGTERM under load: exit {r.returncode}; {r.stderr()[-2000:]}"
    lg.wait(20)
    ok = {l.id: l.sha256 for l in lg.ledger if l.code == 250}
    others = Counter(f"{l.code} {l.enhanced}" for l in lg.ledger if l.code != 250)
    assert set(others) <= {"0 -", "421 4.3.2"}, f"unexpected replies while stopping: {others}"
    assert len(ok) >= 100, f"only {len(ok)} acked before SIGTERM"
    digest = {d.id: d.sha256 for d in queue_digest(r.spool)}
    lost = [k for k in ok if k not in digest]
    assert not lost, f"{len(lost)} acked messages missing after a clean stop, e.g. {lost[:5]}"
    assert all(digest[k] == h for k, h in ok.items()), "body changed"
    extra = set(digest) - set(ok)
    assert not extra - {l.id for l in lg.ledger}, "spool holds ids the loadgen never sent"
    r2 = relay(spool=r.spool)
    assert r2.recovered == len(digest), r2.ready_line
    print(f"SIGTERM under load: acked {len(ok)}, stored {len(digest)}, other outcomes {dict(others)}")


# ---- 5. A full disk ---------------------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path, relay):
    """An 8 MiB tmpfs at <tmp>/tmpfs, unmounted at teardown (after the relays on it stop)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                       capture_output=True, timeout=10)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        relay.stop_all()  # nothing may keep files open on it
        u = subprocess.run(["umount", str(mnt)], capture_output=True, timeout=10)
        if u.returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)
            pytest.fail(f"umount {mnt}: {u.stderr.decode().strip()} (lazily unmounted)")


def test_full_disk_gives_451_and_recovers(relay, small_tmpfs):
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * (5 << 20))  # 5 of 8 MiB; the relay's first segment takes 1
    spool = small_tmpfs / "spool"
    r = relay("--threads", "1", "--segment-size", "1M", "--metrics", "127.0.0.1:0", spool=spool)
    body = (b"y" * 98 + b"\r\n") * 1000  # 100 KB: about 10 to a segment
    acked: dict[str, str] = {}
    with SmtpClient(r.port) as c:
        c.banner()
        c.ehlo()
        refused = None
        for i in range(60):
            mid = f"full-{i}"
            _, final = c.send_message("a@client.example", ["x@example.test"], make_message(mid, body))
            if final.code != 250:
                refused = (i, final)
                break
            acked[mid] = sha(body)
        assert refused is not None, f"60 messages of 100 KB fitted in an 8 MiB tmpfs: {len(acked)} acked"
        i, final = refused
        assert final.code == 451 and final.enhanced == "4.3.0", f"message {i} on a full disk: {final}"
        assert 15 <= len(acked) <= 40, f"{len(acked)} acked before the disk was full (expected ~20-30)"
        assert r.running(), "relay died on ENOSPC"
        assert c.cmd("NOOP").code == 250, "session unusable after 451"
        # Still full: refused again, at once.
        _, again = c.send_message("a@client.example", ["x@example.test"], make_message("full-again", body))
        assert again.code == 451 and again.enhanced == "4.3.0", again
        # Everything acked so far is in the spool, intact.
        digest = {d.id: d.sha256 for d in queue_digest(spool)}
        missing = [m for m in acked if digest.get(m) != acked[m]]
        assert not missing, f"acked before the disk filled but missing/changed: {missing}"
        # Space comes back: the relay creates a segment again (it retries after ~100 ms).
        filler.unlink()
        time.sleep(0.15)
        _, after = c.send_message("a@client.example", ["x@example.test"], make_message("full-after", body))
        assert after.code == 250, f"disk has room again, still refused: {after}"
        acked["full-after"] = sha(body)
        c.cmd("QUIT")
    samples = metrics_of(r)
    assert metric(samples, "ringmta_relay_messages_total", outcome="spool_error") == 2
    assert metric(samples, "ringmta_relay_messages_total", outcome="accepted") == len(acked)
    assert r.stop() == 0, r.stderr()
    # The operator is told once per outage (not once per refused message), and when it ends.
    log = r.stderr()
    assert log.count("cannot create a spool segment") == 1, log
    assert "No space left on device" in log, log
    assert log.count("can be created in") == 1, log
    digest = {d.id: d.sha256 for d in queue_digest(spool)}
    assert digest == acked, (sorted(set(digest) ^ set(acked)))


# ---- 6. A damaged spool at start ---------------------------------------------------------------


def test_damaged_spool_is_repaired_at_start(relay):
    r = relay("--threads", "1", "--segment-size", "1M")
    bodies = {f"dmg-{i}": f"body of message {i}\r\n".encode() * 50 for i in range(1, 4)}
    for mid, b in bodies.items():
        assert send(r.port, mid, b).code == 250
    assert r.stop() == 0
    segs = segments(r.spool)
    assert len(segs) == 1, segs
    seg = segs[0]
    recs, end = read_records(seg)
    assert [x.type for x in recs] == [TYPE_SEGMENT, TYPE_MESSAGE, TYPE_MESSAGE, TYPE_MESSAGE], recs
    m1, m2, m3 = recs[1:]
    assert m3.end == end
    assert [decode_message(x.payload).body.endswith(bodies[f"dmg-{n}"]) for n, x in ((1, m1), (2, m2), (3, m3))] == [True] * 3

    data = bytearray(seg.read_bytes())
    # A flipped bit inside message 2's body (the header stays sound: its length is trusted).
    flip_at = m2.end - 10
    data[flip_at] ^= 0x01
    bad_record = bytes(data[m2.offset:m2.end])
    # A torn tail: the first 60% of a record where the next write would have gone.
    whole = bytes(data[m1.offset:m1.end])
    torn = whole[: int(len(whole) * 0.6)]
    data[end:end + len(torn)] = torn
    seg.write_bytes(bytes(data))
    size_before = seg.stat().st_size

    # The read-only queue tool sees the damage but changes nothing.
    before = seg.read_bytes()
    listed = {d.id for d in queue_digest(r.spool)}
    assert listed == {"dmg-1", "dmg-3"}, listed
    assert seg.read_bytes() == before, "ringmta-relay queue modified the spool"

    r2 = relay("--threads", "1", "--segment-size", "1M", spool=r.spool)
    assert r2.recovered == 2, r2.ready_line
    err = r2.stderr()
    assert f"ringmta-relay: spool: cut a torn tail off {seg} at {end}\n" in err, (
        f"no report of the torn tail cut at {end}: {err}")
    qfile = r.spool / "quarantine" / f"{seg.parent.name}-{seg.name}@{m2.offset}.bad"
    assert re.search(rf"record at {re.escape(str(seg))}@{m2.offset} \({len(bad_record)} bytes\) "
                     rf"failed its check: copied to {re.escape(str(qfile))}\n", err), (
        f"no quarantine report for the record at {m2.offset}: {err}")
    qfiles = sorted((r.spool / "quarantine").glob("*.bad"))
    assert qfiles == [qfile], qfiles
    assert qfiles[0].read_bytes() == bad_record, "the quarantined bytes are not the damaged record"
    assert seg.stat().st_size == end < size_before, (seg.stat().st_size, end, size_before)

    # Everything else is still there, unchanged, and new mail is taken.
    assert send(r2.port, "dmg-4", b"after repair\r\n").code == 250
    assert r2.stop() == 0
    digest = {d.id: d for d in queue_digest(r.spool)}
    assert sorted(digest) == ["dmg-1", "dmg-3", "dmg-4"], sorted(digest)
    for mid in ("dmg-1", "dmg-3"):
        assert digest[mid].sha256 == sha(bodies[mid])


# ---- 7. Bad usage -----------------------------------------------------------------------------

BAD_FLAGS = [
    ["--durability", "sometimes"],
    ["--no-such-flag"],
    ["--segment-size", "512K"],
    ["--relay-network", "10.1.2.3/8"],
    ["--listen", "localhost:2525"],
    ["--threads", "0"],
    ["--max-message-size", "2G"],
]


@pytest.mark.parametrize("args", BAD_FLAGS, ids=[" ".join(a) for a in BAD_FLAGS])
def test_bad_flags_exit_2_with_one_line(args, tmp_path):
    rc, out, err = run_relay(*args, "--spool", tmp_path / "spool", timeout=10, cwd=tmp_path)
    assert rc == 2, f"{args}: exit {rc}; stderr {err!r}"
    lines = err.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("ringmta-relay: "), f"{args}: stderr {err!r}"
    assert out == "", out
    assert not (tmp_path / "spool").exists(), "refused configuration but created the spool"


BAD_TOML = [
    ("bad value", 'durability = "sometimes"\n', 1),
    ("syntax", 'threads = 2\nlisten = ["127.0.0.1:0"\n', None),
    ("unknown key", 'threads = 2\ncolour = "blue"\n', 2),
    ("wrong type", 'threads = "two"\n', 1),
    ("bad network", 'relay-networks = ["300.0.0.0/8"]\n', 1),
]


@pytest.mark.parametrize("name,text,line", BAD_TOML, ids=[b[0] for b in BAD_TOML])
def test_bad_toml_exit_2_with_one_line(name, text, line, tmp_path):
    conf = tmp_path / "relay.toml"
    conf.write_text(text)
    rc, out, err = run_relay("--config", conf, timeout=10, cwd=tmp_path)
    assert rc == 2, f"{name}: exit {rc}; stderr {err!r}"
    lines = err.strip().split("\n")
    assert len(lines) == 1, f"{name}: stderr {err!r}"
    assert lines[0].startswith(f"ringmta-relay: {conf}:"), f"{name}: no file name: {err!r}"
    if line is not None:
        assert lines[0].startswith(f"ringmta-relay: {conf}:{line}:"), f"{name}: not line {line}: {err!r}"


def test_print_config_round_trips(tmp_path):
    args = ["--listen", "127.0.0.1:2600", "--threads", "1", "--durability", "always",
            "--segment-size", "2M", "--spool-quota-messages", "77", "--spool-quota-bytes", "10M",
            "--relay-network", "10.0.0.0/8", "--relay-network", "::1/128",
            "--accept-domain", "example.test", "--accept-domain", "*.example.test",
            "--max-connections", "7", "--max-connections-per-client", "3", "--max-message-size", "1M",
            "--spool", str(tmp_path / "s p"), "--hostname", "mx.example.test", "--no-chunking"]
    rc, out1, err = run_relay(*args, "--print-config", timeout=10, cwd=tmp_path)
    assert rc == 0, err
    for want in ('durability = "always"', 'segment-size = "2M"', "spool-quota-messages = 77",
                 'relay-networks = ["10.0.0.0/8", "::1/128"]', '"*.example.test"', "max-connections = 7",
                 "max-connections-per-client = 3", 'hostname = "mx.example.test"', "chunking = false",
                 'listen = ["127.0.0.1:2600"]', "threads = 1"):
        assert want in out1, f"{want!r} not in --print-config output:\n{out1}"
    conf = tmp_path / "printed.toml"
    conf.write_text(out1)
    rc, out2, err = run_relay("--config", conf, "--print-config", timeout=10, cwd=tmp_path)
    assert rc == 0, err
    assert out2 == out1, "--print-config output read back with --config prints differently"
    # The defaults round-trip too.
    rc, d1, _ = run_relay("--print-config", timeout=10, cwd=tmp_path)
    conf.write_text(d1)
    rc2, d2, err = run_relay("--config", conf, "--print-config", timeout=10, cwd=tmp_path)
    assert rc == rc2 == 0 and d1 == d2, err


def test_segment_from_newer_version_refused(relay, tmp_path):
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 B.4 check value
    r = relay("--threads", "1")
    assert send(r.port, "newer-1", b"old format\r\n").code == 250
    assert r.stop() == 0
    seg = segments(r.spool)[0]
    data = bytearray(seg.read_bytes())
    # The real header checks out with this CRC-32C, so the edit below is a well-formed header.
    assert int.from_bytes(data[16:20], "little") == crc32c(bytes(data[:16]))
    data[4:6] = (2).to_bytes(2, "little")
    data[16:20] = crc32c(bytes(data[:16])).to_bytes(4, "little")
    seg.write_bytes(bytes(data))
    before = seg.read_bytes()
    try:
        rc, out, err = run_relay("--listen", "127.0.0.1:0", "--spool", r.spool, timeout=15, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail("the relay started on a spool with a segment from a newer format version")
    assert rc == 1, f"exit {rc}; stdout {out!r}; stderr {err!r}"
    assert "listening" not in out, out
    lines = err.strip().split("\n")
    assert len(lines) == 1 and str(seg) in lines[0] and "newer" in lines[0], err
    assert seg.read_bytes() == before, "the relay changed a segment it must not touch"
    assert sorted(p.name for p in seg.parent.iterdir()) == [seg.name], "the relay added files"
    rc, out, err = run_relay("queue", "--spool", r.spool, timeout=15)
    assert rc == 1 and str(seg) in err, f"queue: exit {rc}; {err!r}"
