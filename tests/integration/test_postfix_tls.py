"""TLS interop with a real Postfix (issue 8): Postfix's smtp client delivering to ringmta-sink
over STARTTLS, and ringmta-relay delivering to Postfix's smtpd over STARTTLS. Each Postfix is
a private instance (harness/postfix_peer.py) in a 0755 folder of its own (its daemons run as
the postfix user, and pytest's tmp_path is not reachable by others); certificates come from
scripts/make-test-ca. Skipped only where Postfix is not installed or we are not root."""

from __future__ import annotations

import os
import shutil
import smtplib
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sinklib import make_message, metric, read_digest, scrape
from test_tls import test_ca  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "harness"))
import postfix_peer  # noqa: E402


def _skip_reason() -> str | None:
    try:
        postfix_peer.check_installed()
    except postfix_peer.PostfixNotInstalled as e:
        return str(e)
    if os.geteuid() != 0:
        return "postfix installed, but a private instance needs root"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


@pytest.fixture
def pf_dir():
    d = Path(tempfile.mkdtemp(prefix="ringmta-postfix-tls-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def wait_for(what, check, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.1)


def send(port: int, ids: list[str], rcpt: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=10) as c:
        for i in ids:
            assert c.sendmail("a@client.example", [rcpt], make_message(i, f"body {i}\r\n".encode())) == {}


@pytest.mark.timeout(30)
def test_postfix_relays_to_the_sink_over_tls(sink, tmp_path, test_ca, pf_dir):
    digest = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(digest), "--metrics", "127.0.0.1:0",
             "--starttls", "on", "--tls-cert", str(test_ca / "server.pem"),
             "--tls-key", str(test_ca / "server.key"))
    ids = [f"pf-to-sink-{i}" for i in range(3)]
    pf = postfix_peer.PostfixPeer(pf_dir / "postfix", relay_port=s.port,
                                  main_cf=postfix_peer.tls_settings(smtp_level="may"),
                                  process_limit=20)
    with pf:
        send(pf.port, ids, "x@dest.test")
        wait_for("digest", lambda: len(read_digest(digest)) >= len(ids), 20)
    assert sorted(l.id for l in read_digest(digest)) == sorted(ids)
    sm = scrape(s.metrics_addr)
    full = metric(sm, "ringmta_sink_tls_handshakes_total", outcome="full")
    resumed = metric(sm, "ringmta_sink_tls_handshakes_total", outcome="resumed")
    assert full + resumed >= 1
    assert metric(sm, "ringmta_sink_tls_handshakes_total", outcome="failed") == 0
    tls = [c for c in pf.tls_connections() if c[1] == "to"]
    assert tls and all(c[2].endswith(f":{s.port}") for c in tls), pf.maillog_tail(30)
    assert pf.delivery_log()["status"] == {"sent": len(ids)}


@pytest.mark.timeout(30)
def test_relay_delivers_to_postfix_smtpd_over_tls(relay, test_ca, pf_dir):
    # smtpd reads the key as root at start, but from a path it can reach: a copy in pf_dir.
    ca = pf_dir / "ca"
    shutil.copytree(test_ca, ca)
    ca.chmod(0o755)
    pf = postfix_peer.PostfixPeer(
        pf_dir / "postfix", hold=True, process_limit=20,
        main_cf=postfix_peer.tls_settings(ca / "server.pem", ca / "server.key", smtp_level=None))
    ids = [f"relay-to-pf-{i}" for i in range(3)]
    with pf:
        r = relay("--metrics", "127.0.0.1:0", "--accept-domain", "dest.test",
                  "--route", f"dest.test=127.0.0.1:{pf.port}")
        send(r.port, ids, "x@dest.test")
        held = wait_for("hold", lambda: pf.queue_counts()["hold"] >= len(ids), 20)
        assert held, (pf.queue_counts(), pf.maillog_tail(30))
        assert pf.postqueue_count() == len(ids)
        rm = scrape(r.metrics_addr)
    assert metric(rm, "ringmta_relay_outbound_tls_total", outcome="full") >= 1
    assert metric(rm, "ringmta_relay_outbound_tls_total", outcome="failed") == 0
    assert metric(rm, "ringmta_relay_deliveries_total", outcome="delivered") == len(ids)
    tls = [c for c in pf.tls_connections() if c[1] == "from"]
    assert tls and all(c[2].endswith("[127.0.0.1]") for c in tls), pf.maillog_tail(30)
    assert all(c[3].startswith("TLSv1.") for c in tls)
