"""STARTTLS (RFC 3207) against ringmta-sink with real TLS peers: Python's smtplib.starttls(),
swaks --tls, a raw socket for the injection cases (CVE-2011-0411: plaintext pipelined behind
STARTTLS is dropped, never run after the handshake), the TLS-required policy (530 5.7.0), and
ringmta-loadgen --starttls with resumption on and off, counted on both sides (the loadgen's
JSON and the sink's /metrics). Certificates come from scripts/make-test-ca."""

from __future__ import annotations

import smtplib
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from sinklib import HOST, SmtpClient, fingerprint, make_message, metric, read_digest, scrape, wait_digest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ca")
    subprocess.run([str(ROOT / "scripts" / "make-test-ca"), str(d)], check=True, timeout=60,
                   stdout=subprocess.DEVNULL)
    return d


def tls_args(ca: Path, mode: str = "on") -> list[str]:
    return ["--starttls", mode, "--tls-cert", str(ca / "server.pem"), "--tls-key", str(ca / "server.key")]


def client_context(ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca / "ca.pem"))
    ctx.check_hostname = True
    return ctx


def test_smtplib_starttls_delivers_over_verified_tls(sink, tmp_path, test_ca):
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log), "--metrics", "127.0.0.1:0", *tls_args(test_ca))
    msg = make_message("smtplib-tls", b"over tls\r\n")
    with smtplib.SMTP(HOST, s.port, local_hostname="client.example", timeout=10) as c:
        c.ehlo()
        assert c.has_extn("starttls")
        code, _ = c.starttls(context=client_context(test_ca))  # checks 127.0.0.1 (an IP SAN)
        assert code == 220
        assert isinstance(c.sock, ssl.SSLSocket)
        assert c.sock.version() in ("TLSv1.3", "TLSv1.2")
        c.ehlo()
        assert not c.has_extn("starttls"), "STARTTLS offered again after TLS"
        assert c.docmd("STARTTLS") == (503, b"5.5.1 Error: TLS already active")
        assert c.sendmail("a@client.example", ["b@example.test"], msg) == {}
    lines = wait_digest(log, 1)
    assert [l.fingerprint for l in lines] == [fingerprint(msg)]
    m = scrape(s.metrics_addr)
    assert metric(m, "ringmta_sink_tls_handshakes_total", outcome="full") == 1
    assert metric(m, "ringmta_sink_tls_handshakes_total", outcome="failed") == 0
    assert metric(m, "ringmta_sink_tls_handshake_seconds_count") == 1


def test_tls12_and_resumption_with_smtplib(sink, test_ca):
    s = sink("--metrics", "127.0.0.1:0", *tls_args(test_ca))
    ctx = client_context(test_ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    session = None
    for i in range(3):
        with smtplib.SMTP(HOST, s.port, timeout=10) as c:
            c.ehlo()
            code, _ = c.docmd("STARTTLS")
            assert code == 220
            c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost", session=session)
            c.file = None
            assert c.sock.version() == "TLSv1.2"
            assert c.sock.session_reused == (i > 0)
            session = c.sock.session
            c.ehlo()
            assert c.noop()[0] == 250
    m = scrape(s.metrics_addr)
    assert metric(m, "ringmta_sink_tls_handshakes_total", outcome="full") == 1
    assert metric(m, "ringmta_sink_tls_handshakes_total", outcome="resumed") == 2
    cpu_us = metric(m, "ringmta_sink_tls_handshake_cpu_microseconds_total")
    assert cpu_us > 0
    # A plaintext session costs no handshake CPU.
    with smtplib.SMTP(HOST, s.port, timeout=10) as c:
        c.ehlo()
        assert c.noop()[0] == 250
    m = scrape(s.metrics_addr)
    assert metric(m, "ringmta_sink_sessions_total") == 4
    assert metric(m, "ringmta_sink_tls_handshake_cpu_microseconds_total") == cpu_us


def test_swaks_tls(sink, tmp_path, test_ca):
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log), *tls_args(test_ca, "required"))
    r = subprocess.run(["swaks", "--server", f"{HOST}:{s.port}", "--tls", "--from", "a@client.example",
                        "--to", "b@example.test", "--helo", "client.example",
                        "--add-header", "X-Ringmta-Id: swaks-tls", "--body", "hello over tls"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<-  220 2.0.0 Ready to start TLS" in r.stdout, r.stdout
    assert "TLS started" in r.stdout, r.stdout
    assert "~> MAIL FROM:<a@client.example>" in r.stdout, "MAIL did not go over TLS"
    lines = wait_digest(log, 1)
    assert [l.id for l in lines] == ["swaks-tls"]


def test_tls_required_refuses_mail_before_starttls(sink, test_ca):
    s = sink(*tls_args(test_ca, "required"))
    with SmtpClient(s.port) as c:
        c.banner()
        assert "STARTTLS" in c.ehlo().lines
        assert c.cmd("MAIL FROM:<a@client.example>").line == "530 5.7.0 Must issue a STARTTLS command first"
        assert c.cmd("NOOP").code == 250
        assert c.cmd("QUIT").code == 221


def starttls_then_wrap(c: SmtpClient, pipelined: bytes, ca: Path) -> ssl.SSLSocket:
    c.send(pipelined)
    r = c.read_reply()
    assert r.line == "220 2.0.0 Ready to start TLS"
    assert c.buf == b"", f"the sink answered behind the 220: {c.buf!r}"
    return client_context(ca).wrap_socket(c.sock, server_hostname="localhost")


def tls_reply(sock: ssl.SSLSocket) -> str:
    data = b""
    while not data.endswith(b"\r\n") or data.split(b"\r\n")[-2][3:4] == b"-":
        chunk = sock.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data.decode()


def test_injection_pipelined_behind_starttls_is_dropped(sink, tmp_path, test_ca):
    """CVE-2011-0411: STARTTLS\\r\\nRSET\\r\\n... in one packet. The RSET and the transaction
    behind it are never answered nor run; after the handshake the session starts over."""
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log), *tls_args(test_ca))
    with SmtpClient(s.port) as c:
        c.banner()
        c.ehlo()
        tls = starttls_then_wrap(c, b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@attacker.example>\r\n"
                                    b"RCPT TO:<victim@example.test>\r\nDATA\r\n", test_ca)
        # Had RSET or MAIL been kept, their 250s would come first; the session is back to
        # "greeted" (RFC 3207 4.2), so MAIL needs EHLO again.
        tls.sendall(b"NOOP\r\n")
        assert tls_reply(tls) == "250 2.0.0 Ok\r\n"
        tls.sendall(b"MAIL FROM:<a@client.example>\r\n")
        assert tls_reply(tls) == "503 5.5.1 Error: send HELO/EHLO first\r\n"
        tls.sendall(b"EHLO client.example\r\n")
        assert "STARTTLS" not in tls_reply(tls)
        tls.sendall(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        assert tls_reply(tls).startswith("250 2.1.0")
        tls.sendall(b"X-Ringmta-Id: after-tls\r\n\r\nok\r\n.\r\nQUIT\r\n")
        rest = b""
        while True:
            chunk = tls.recv(4096)
            if not chunk:
                break
            rest += chunk
            if b"221 " in rest:
                break
        assert b"250 2.0.0 Message accepted" in rest
        tls.close()
    lines = wait_digest(log, 1)
    assert [l.id for l in lines] == ["after-tls"]


def test_plaintext_sent_before_the_handshake_fails_it(sink, test_ca):
    """Plaintext arriving after STARTTLS but in its own packet reaches the TLS layer, where it
    is not a ClientHello: the handshake fails, nothing is answered, the connection closes."""
    s = sink("--metrics", "127.0.0.1:0", *tls_args(test_ca))
    with SmtpClient(s.port) as c:
        c.banner()
        c.ehlo()
        c.send(b"STARTTLS\r\n")
        assert c.read_reply().code == 220
        c.send(b"RSET\r\nMAIL FROM:<evil@attacker.example>\r\n")
        data = c.expect_closed()
        assert b"250" not in data, f"a plaintext command was answered: {data!r}"
    m = scrape(s.metrics_addr)
    assert metric(m, "ringmta_sink_tls_handshakes_total", outcome="failed") == 1


def test_bad_tls_settings_are_refused(run_sink, tmp_path, test_ca):
    rc, _, err = run_sink("--starttls", "on")
    assert rc == 2 and "starttls needs tls-cert and tls-key" in err, err
    rc, _, err = run_sink(*tls_args(test_ca)[:-1], str(test_ca / "client.key"), "--listen", "127.0.0.1:0")
    assert rc == 2 and "key values mismatch" in err, err
    rc, _, err = run_sink("--starttls", "maybe", "--tls-cert", "x", "--tls-key", "y")
    assert rc == 2 and "must be off, on or required" in err, err


@pytest.mark.timeout(120)
@pytest.mark.parametrize("resumption", ["on", "off"])
def test_loadgen_starttls_accounting_and_resumption(sink, loadgen, tmp_path, test_ca, resumption):
    n = 400
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log), "--metrics", "127.0.0.1:0",
             *tls_args(test_ca, "required"))
    r = loadgen("--target", f"127.0.0.1:{s.port}", "--connections", 4, "--messages", n,
                "--messages-per-connection", 1, "--starttls", "--tls-verify", "--tls-ca",
                str(test_ca / "ca.pem"), "--tls-resumption", resumption, "--run-id", f"tls-{resumption}",
                timeout=100)
    j, c = r.json, r.counts
    assert c["accepted"] == n and c["errors"] == 0, c
    assert j["latency"]["tls"]["count"] == n
    assert j["latency"]["tls"]["min_ns"] > 0
    assert c["tls_handshakes"] == n
    assert c["tls_handshake_cpu_ns"] > 0
    assert "TLS handshakes" in r.stdout()
    m = scrape(s.metrics_addr)
    full = metric(m, "ringmta_sink_tls_handshakes_total", outcome="full")
    resumed = metric(m, "ringmta_sink_tls_handshakes_total", outcome="resumed")
    assert full + resumed == n
    assert metric(m, "ringmta_sink_tls_handshakes_total", outcome="failed") == 0
    assert resumed == c["tls_resumed"]
    if resumption == "on":
        # Only the first connections (opened before any ticket came back) are full.
        assert full <= 4, (full, resumed)
    else:
        assert resumed == 0
    assert s.stop() == 0
    lines = read_digest(log)
    assert len(lines) == n
    assert len({l.id for l in lines}) == n


def test_loadgen_starttls_against_a_sink_without_it_is_an_error(sink, loadgen):
    s = sink()
    r = loadgen("--target", f"127.0.0.1:{s.port}", "--connections", 1, "--messages", 5,
                "--starttls", "--connect-timeout", "1s", expect_exit=None, timeout=60)
    assert r.counts["accepted"] == 0
    assert r.json["conn_errors"]["tls"] >= 1, r.json["conn_errors"]
