"""ringmta-relay inbound STARTTLS and AUTH with real clients (Python smtplib, swaks, a raw
socket for the injection case, ringmta-loadgen --starttls) and real processes: the relay
delivers what it accepted over TLS to a ringmta-sink, unchanged. The client's address is
taken out of the relay networks (--relay-network 10.0.0.0/8), so only AUTH lets it relay to a
domain that is not accepted. Users come from scripts/ringmta-passwd, certificates from
scripts/make-test-ca."""

from __future__ import annotations

import smtplib
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from loadgenlib import read_ledger  # noqa: F401  (ledger lines through lg.ledger)
from relaylib import run_relay
from sinklib import SmtpClient, make_message, metric, read_digest, scrape
from test_tls import client_context, starttls_then_wrap, test_ca, tls_reply  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def users(tmp_path) -> Path:
    f = tmp_path / "users"
    for name, password in (("alice", "correct horse"), ("bob", "hunter2")):
        subprocess.run(["/usr/bin/python3", str(ROOT / "scripts" / "ringmta-passwd"), "--iterations", "1000",
                        str(f), name], input=password.encode(), check=True, timeout=30,
                       stdout=subprocess.DEVNULL)
    return f


def start(relay, sink, tmp_path, test_ca, users, *extra, starttls="on"):
    s = sink("--mode", "digest", "--digest-log", str(tmp_path / "digest.log"))
    r = relay("--metrics", "127.0.0.1:0", "--relay-network", "10.0.0.0/8",
              "--accept-domain", "local.test", "--route", f"*=127.0.0.1:{s.port}",
              "--starttls", starttls, "--tls-cert", test_ca / "server.pem",
              "--tls-key", test_ca / "server.key", "--auth-users", users, *extra)
    return r, s


def auth_plain(c: smtplib.SMTP, user: str, password: str):
    """One AUTH PLAIN attempt (smtplib's login() tries every mechanism in turn)."""
    c.user, c.password = user, password
    return c.auth("PLAIN", c.auth_plain, initial_response_ok=True)


def auth_refused(c: smtplib.SMTP, user: str, password: str) -> int:
    """One AUTH PLAIN attempt that must be refused; the reply code."""
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        auth_plain(c, user, password)
    return e.value.smtp_code


def wait_delivered(path: Path, n: int, timeout: float = 15.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        lines = read_digest(path)
        if len(lines) >= n or time.monotonic() > deadline:
            time.sleep(0.3)
            return read_digest(path)
        time.sleep(0.05)


def test_smtplib_starttls_login_relays_and_delivers(relay, sink, tmp_path, test_ca, users):
    r, s = start(relay, sink, tmp_path, test_ca, users)
    body = b"over tls\r\n.a dot line\r\n" + (b"x" * 998 + b"\r\n") * 300
    msg = make_message("tls-auth-1", body)
    with smtplib.SMTP("127.0.0.1", r.port, timeout=10) as c:
        c.ehlo("client.example")
        assert "auth" not in c.esmtp_features, "AUTH offered before TLS"
        c.starttls(context=client_context(test_ca))
        c.ehlo("client.example")
        assert "PLAIN" in c.esmtp_features["auth"] and "LOGIN" in c.esmtp_features["auth"]
        # Not authenticated: relaying to a domain that is not accepted is refused.
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            c.sendmail("a@client.example", ["x@elsewhere.test"], msg)
        assert e.value.recipients["x@elsewhere.test"][0] == 554
        c.login("alice", "correct horse")
        assert c.sendmail("a@client.example", ["x@elsewhere.test"], msg) == {}
    lines = wait_delivered(tmp_path / "digest.log", 1)
    assert [(l.id, l.rcpts) for l in lines] == [("tls-auth-1", ("x@elsewhere.test",))]
    sm = scrape(r.metrics_addr)
    assert metric(sm, "ringmta_relay_tls_handshakes_total", outcome="full") == 1
    assert metric(sm, "ringmta_relay_auth_total", outcome="accepted") == 1


def test_received_header_names_tls_and_auth(relay, sink, tmp_path, test_ca, users):
    """RFC 3848: ESMTPS over TLS, ESMTPSA over TLS with AUTH."""
    md = tmp_path / "md"
    s = sink("--mode", "maildir", "--maildir", str(md))
    r = relay("--relay-network", "10.0.0.0/8", "--accept-domain", "local.test",
              "--route", f"*=127.0.0.1:{s.port}", "--starttls", "on", "--tls-cert", test_ca / "server.pem",
              "--tls-key", test_ca / "server.key", "--auth-users", users)
    with smtplib.SMTP("127.0.0.1", r.port, timeout=10) as c:
        c.starttls(context=client_context(test_ca))
        c.ehlo("client.example")
        c.sendmail("a@client.example", ["x@local.test"], make_message("tls-only", b"x\r\n"))
        auth_plain(c, "alice", "correct horse")
        c.sendmail("a@client.example", ["y@elsewhere.test"], make_message("tls-auth", b"y\r\n"))
    deadline = time.monotonic() + 15
    while len(list((md / "new").glob("*"))) < 2:
        assert time.monotonic() < deadline, "not delivered"
        time.sleep(0.05)
    texts = {f.read_bytes().split(b"X-Ringmta-Id: ", 1)[1].split(b"\r\n", 1)[0]: f.read_bytes()
             for f in (md / "new").iterdir()}
    assert b" with ESMTPS id " in texts[b"tls-only"], texts[b"tls-only"][:300]
    assert b" with ESMTPSA id " in texts[b"tls-auth"], texts[b"tls-auth"][:300]


def test_swaks_tls_auth_login(relay, sink, tmp_path, test_ca, users):
    r, s = start(relay, sink, tmp_path, test_ca, users)
    p = subprocess.run(["swaks", "--server", f"127.0.0.1:{r.port}", "--tls", "--auth", "LOGIN",
                        "--auth-user", "bob", "--auth-password", "hunter2", "--from", "b@client.example",
                        "--to", "y@elsewhere.test", "--header", "X-Ringmta-Id: swaks-1"],
                       capture_output=True, timeout=30)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out[-2000:]
    assert "235 2.7.0" in out
    lines = wait_delivered(tmp_path / "digest.log", 1)
    assert [l.id for l in lines] == ["swaks-1"]


def test_bad_passwords_then_421_and_the_client_limit(relay, sink, tmp_path, test_ca, users):
    r, s = start(relay, sink, tmp_path, test_ca, users, "--auth-client-failures", "4")
    with smtplib.SMTP("127.0.0.1", r.port, timeout=10) as c:
        c.starttls(context=client_context(test_ca))
        c.ehlo("client.example")
        for _ in range(2):
            assert auth_refused(c, "alice", "wrong") == 535
        # The third failure in a session: 421 and the session closes.
        assert auth_refused(c, "alice", "wrong again") == 421
    # This client address has 3 failures; one more reaches its limit of 4: then 421 at once,
    # even with the right password.
    with smtplib.SMTP("127.0.0.1", r.port, timeout=10) as c:
        c.starttls(context=client_context(test_ca))
        c.ehlo("client.example")
        assert auth_refused(c, "bob", "nope") == 535
        assert auth_refused(c, "alice", "correct horse") == 421
    sm = scrape(r.metrics_addr)
    assert metric(sm, "ringmta_relay_auth_total", outcome="rejected") == 4
    assert metric(sm, "ringmta_relay_auth_total", outcome="blocked") == 1
    assert metric(sm, "ringmta_relay_auth_total", outcome="accepted") == 0


def test_tls_required_refuses_mail_before_starttls(relay, sink, tmp_path, test_ca, users):
    r, s = start(relay, sink, tmp_path, test_ca, users, starttls="required")
    with SmtpClient(r.port) as c:
        c.banner()
        c.ehlo()
        reply = c.cmd("MAIL FROM:<a@client.example>")
        assert reply.code == 530 and reply.enhanced == "5.7.0", reply


def test_injection_behind_starttls_is_dropped(relay, sink, tmp_path, test_ca, users):
    r, s = start(relay, sink, tmp_path, test_ca, users)
    with SmtpClient(r.port) as c:
        c.banner()
        c.ehlo()
        tls = starttls_then_wrap(c, b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@attacker.example>\r\n"
                                    b"RCPT TO:<victim@local.test>\r\nDATA\r\n", test_ca)
        tls.sendall(b"NOOP\r\n")
        assert tls_reply(tls) == "250 2.0.0 Ok\r\n"
        tls.sendall(b"MAIL FROM:<a@client.example>\r\n")
        assert tls_reply(tls).startswith("503 5.5.1")
        tls.close()
    assert read_digest(tmp_path / "digest.log") == []


def test_loadgen_over_starttls_every_message_delivered_unchanged(relay, sink, loadgen, tmp_path, test_ca, users):
    r, s = start(relay, sink, tmp_path, test_ca, users)
    lg = loadgen("--target", f"127.0.0.1:{r.port}", "--starttls", "--messages", 400, "--connections", 8,
                 "--to-domain", "local.test", "--size", "uniform:500-200000", "--run-id", "tlsload",
                 timeout=60)
    ok = {l.id: l for l in lg.ledger if l.code == 250}
    assert len(ok) == 400
    lines = wait_delivered(tmp_path / "digest.log", 400, 30)
    got = {l.id: l for l in lines}
    assert set(got) == set(ok)
    assert all(got[i].sha256 == ok[i].sha256 for i in ok)
    assert lg.json["counts"].get("tls_handshakes", 8) >= 1
    rm = scrape(r.metrics_addr)
    handshakes = sum(metric(rm, "ringmta_relay_tls_handshakes_total", outcome=o)
                     for o in ("full", "resumed"))
    assert handshakes == lg.json["counts"]["tls_handshakes"]
    assert metric(rm, "ringmta_relay_tls_handshake_cpu_microseconds_total") > 0


def test_bad_tls_and_auth_configuration_exits_2(tmp_path, test_ca, users):
    cases = [
        (["--starttls", "on"], "needs tls-cert and tls-key"),
        (["--auth-users", str(users)], "AUTH is offered only after STARTTLS"),
        (["--starttls", "maybe", "--tls-cert", "x", "--tls-key", "y"], "must be off, on or required"),
    ]
    for args, want in cases:
        rc, out, err = run_relay("--spool", tmp_path / "sp", *args)
        assert rc == 2 and want in err, (args, rc, err)
    bad = tmp_path / "bad-users"
    bad.write_text("alice:plain:secret\n")
    rc, out, err = run_relay("--spool", tmp_path / "sp", "--listen", "127.0.0.1:0", "--starttls", "on",
                             "--tls-cert", test_ca / "server.pem", "--tls-key", test_ca / "server.key",
                             "--auth-users", bad, timeout=30)
    assert rc == 2 and f"{bad}:1" in err, err
    rc, out, err = run_relay("--spool", tmp_path / "sp", "--listen", "127.0.0.1:0", "--starttls", "on",
                             "--tls-cert", tmp_path / "missing.pem", "--tls-key", test_ca / "server.key",
                             timeout=30)
    assert rc == 2 and "missing.pem" in err, err


# ---- Outbound: STARTTLS to the next hop, per route -------------------------------------------


def tls_sink(sink, tmp_path, test_ca, name="digest.log", *extra):
    return sink("--mode", "digest", "--digest-log", str(tmp_path / name), "--metrics", "127.0.0.1:0",
                "--starttls", "on", "--tls-cert", test_ca / "server.pem", "--tls-key", test_ca / "server.key",
                *extra)


def test_outbound_opportunistic_tls_delivers_every_body_unchanged(relay, sink, loadgen, tmp_path, test_ca):
    """Bodies from memory and, after a tempfail, from the spool, encrypted on the way out."""
    s = tls_sink(sink, tmp_path, test_ca, "digest.log", "--tempfail-rate", "0.2", "--seed", "9")
    r = relay("--metrics", "127.0.0.1:0", "--accept-domain", "dest.test", "--route", f"dest.test=127.0.0.1:{s.port}",
              "--retry-first-delay", "200ms", "--retry-max-delay", "1s")
    lg = loadgen("--target", f"127.0.0.1:{r.port}", "--messages", 300, "--connections", 8,
                 "--to-domain", "dest.test", "--size", "uniform:500-200000", "--run-id", "outtls", timeout=60)
    ok = {l.id: l for l in lg.ledger if l.code == 250}
    assert len(ok) == 300
    deadline = time.monotonic() + 60
    while metric(scrape(r.metrics_addr), "ringmta_relay_queue_messages") != 0:
        assert time.monotonic() < deadline, "queue not drained"
        time.sleep(0.1)
    lines = wait_delivered(tmp_path / "digest.log", 300, 10)
    got = {l.id: l for l in lines}
    assert len(lines) == 300 and set(got) == set(ok)
    assert all(got[i].sha256 == ok[i].sha256 for i in ok)
    rm, sm = scrape(r.metrics_addr), scrape(s.metrics_addr)
    full = metric(rm, "ringmta_relay_outbound_tls_total", outcome="full")
    resumed = metric(rm, "ringmta_relay_outbound_tls_total", outcome="resumed")
    assert full >= 1 and metric(rm, "ringmta_relay_outbound_tls_total", outcome="failed") == 0
    assert full == metric(sm, "ringmta_sink_tls_handshakes_total", outcome="full")
    assert resumed == metric(sm, "ringmta_sink_tls_handshakes_total", outcome="resumed")
    assert metric(rm, "ringmta_relay_deliveries_total", outcome="deferred") >= 1
    assert metric(rm, "ringmta_relay_outbound_tls_handshake_cpu_microseconds_total") > 0
    # One log line per TLS connection with its outcome (never one per message).
    logged = [l for l in r.stderr().splitlines() if "outbound TLS to" in l]
    assert len(logged) == full + resumed, logged[:5]
    assert all(f"127.0.0.1:{s.port} (dest.test): TLSv1." in l and "certificate not verified" in l
               for l in logged), logged[:5]
    assert sum("full handshake" in l for l in logged) == full


def submit_one(r, msg_id: str) -> None:
    """One message for x@dest.test through the relay, taken with 250."""
    with SmtpClient(r.port) as c:
        c.banner()
        c.ehlo()
        _, final = c.send_message("a@client.example", ["x@dest.test"], make_message(msg_id, b"x\r\n"))
        assert final.code == 250


def assert_held(r, tmp_path) -> None:
    """The message is deferred and still queued; nothing reached the sink."""
    rm = scrape(r.metrics_addr)
    assert metric(rm, "ringmta_relay_deliveries_total", outcome="delivered") == 0
    assert metric(rm, "ringmta_relay_deliveries_total", outcome="deferred") >= 1
    assert metric(rm, "ringmta_relay_queue_messages") == 1
    assert read_digest(tmp_path / "digest.log") == []


def test_outbound_tls_required_defers_when_the_hop_has_none(relay, sink, tmp_path):
    s = sink("--mode", "digest", "--digest-log", str(tmp_path / "digest.log"))
    r = relay("--metrics", "127.0.0.1:0", "--accept-domain", "dest.test", "--route", f"dest.test=127.0.0.1:{s.port}",
              "--outbound-tls", "required", "--retry-first-delay", "200ms", "--retry-max-delay", "1s")
    submit_one(r, "must-be-tls")
    time.sleep(1.5)
    assert_held(r, tmp_path)


def test_outbound_tls_none_sends_in_plaintext(relay, sink, tmp_path, test_ca):
    s = tls_sink(sink, tmp_path, test_ca)
    r = relay("--metrics", "127.0.0.1:0", "--accept-domain", "dest.test", "--route", f"dest.test=127.0.0.1:{s.port}",
              "--outbound-tls", "none")
    with SmtpClient(r.port) as c:
        c.banner()
        c.ehlo()
        _, final = c.send_message("a@client.example", ["x@dest.test"], make_message("plain-out", b"x\r\n"))
        assert final.code == 250
    assert [l.id for l in wait_delivered(tmp_path / "digest.log", 1)] == ["plain-out"]
    sm = scrape(s.metrics_addr)
    assert metric(sm, "ringmta_sink_tls_handshakes_total", outcome="full") == 0


def test_outbound_tls_handshake_failure_defers_and_is_logged(relay, sink, tmp_path, test_ca):
    """A hop whose certificate does not verify (the test CA is not among the system's trust
    anchors): the handshake fails, the message is deferred with the reason, the failure is
    counted and logged once per connection."""
    s = tls_sink(sink, tmp_path, test_ca)
    r = relay("--metrics", "127.0.0.1:0", "--accept-domain", "dest.test", "--route", f"dest.test=127.0.0.1:{s.port}",
              "--outbound-tls", "required", "--outbound-tls-verify",
              "--retry-first-delay", "200ms", "--retry-max-delay", "1s")
    submit_one(r, "unverified")
    deadline = time.monotonic() + 10
    while metric(scrape(r.metrics_addr), "ringmta_relay_outbound_tls_total", outcome="failed") < 2:
        assert time.monotonic() < deadline, "no second failed handshake (a retry) within 10 s"
        time.sleep(0.1)
    assert_held(r, tmp_path)
    failed = [l for l in r.stderr().splitlines() if "outbound TLS to" in l]
    assert len(failed) >= 2 and all(
        f"127.0.0.1:{s.port} (dest.test) failed: 4.7.5 TLS handshake with 127.0.0.1:{s.port} failed" in l
        for l in failed), failed
