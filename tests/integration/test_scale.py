"""Scale: 10,000 concurrent idle SMTP connections held open against the optimised build
(ASan would inflate memory): every one gets the banner, the sink's resident memory stays
under 150 MiB, and after all are closed the sink counts none open and still serves."""

import errno
import os
import resource
import selectors
import socket
import struct
import time

import pytest

from conftest import release_sink_binary
from sinklib import HOST, SmtpClient, metric, scrape

CONNECTIONS = 10_000
RSS_LIMIT_MIB = 150
BANNER = b"220 localhost ESMTP ringmta\r\n"


def raise_nofile(need: int) -> tuple[int, int]:
    """Raises this process's RLIMIT_NOFILE (the sink inherits it). Returns the old limits."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (65536, old[1]):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, old[1])))
            break
        except (ValueError, OSError):
            continue
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
        pytest.fail(f"RLIMIT_NOFILE can only be raised to {soft}, this test needs {need} "
                    f"(raise the hard limit: ulimit -Hn, or run as root)")
    return old


def open_idle_connections(port: int, count: int, in_flight: int = 500, timeout: float = 90.0) -> list[socket.socket]:
    """Opens `count` connections and reads each one's banner, keeping at most `in_flight`
    waiting for a banner at a time (the listen backlog is finite)."""
    sel = selectors.DefaultSelector()
    done: list[socket.socket] = []
    pending: dict[socket.socket, bytes] = {}
    bad: list[bytes] = []
    opened = 0
    deadline = time.monotonic() + timeout
    try:
        while len(done) + len(bad) < count:
            assert time.monotonic() < deadline, f"only {len(done)} banners after {timeout}s"
            while opened < count and len(pending) < in_flight:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                rc = s.connect_ex((HOST, port))
                assert rc in (0, errno.EINPROGRESS), os.strerror(rc)
                pending[s] = b""
                sel.register(s, selectors.EVENT_READ)
                opened += 1
            for key, _ in sel.select(timeout=1.0):
                s = key.fileobj
                try:
                    chunk = s.recv(256)
                except (ConnectionResetError, ConnectionRefusedError) as e:
                    chunk = b""
                    bad.append(repr(e).encode())
                buf = pending[s] + chunk
                if not chunk or buf.endswith(b"\r\n"):
                    sel.unregister(s)
                    del pending[s]
                    if buf == BANNER:
                        done.append(s)
                    else:
                        bad.append(buf)
                        s.close()
                else:
                    pending[s] = buf
        assert not bad, f"{len(bad)} connections without the banner, e.g. {bad[:3]}"
        return done
    except BaseException:
        for s in list(pending) + done:
            s.close()
        raise
    finally:
        sel.close()


@pytest.mark.timeout(180)
def test_10k_idle_connections(sink, report_figure):
    binary = release_sink_binary()
    if not binary.exists():
        pytest.fail(f"the optimised build is missing: {binary} (cmake --preset release && "
                    f"cmake --build --preset release; or set RINGMTA_RELEASE_BIN)")
    old_limits = raise_nofile(CONNECTIONS + 1000)
    conns: list[socket.socket] = []
    try:
        s = sink("--metrics", "127.0.0.1:0", binary=binary)
        base_kib = s.vm_rss_kib()
        t0 = time.monotonic()
        conns = open_idle_connections(s.port, CONNECTIONS)
        took = time.monotonic() - t0
        assert len(conns) == CONNECTIONS
        time.sleep(0.5)  # the last sessions settle
        rss_kib = s.vm_rss_kib()
        m = scrape(s.metrics_addr)
        assert metric(m, "ringmta_sink_sessions_active") == CONNECTIONS
        assert metric(m, "ringmta_sink_sessions_total") == CONNECTIONS
        report_figure("sink VmRSS idle (release)", f"{base_kib / 1024:.1f} MiB")
        report_figure(f"sink VmRSS with {CONNECTIONS} idle connections (release)",
                      f"{rss_kib / 1024:.1f} MiB ({(rss_kib - base_kib) * 1024 / CONNECTIONS:.0f} bytes per connection; "
                      f"all banners in {took:.1f}s)")
        assert rss_kib / 1024 < RSS_LIMIT_MIB, f"VmRSS {rss_kib / 1024:.1f} MiB with {CONNECTIONS} idle connections"
        # Close them all: half with FIN, half with RST (SO_LINGER 0).
        for i, c in enumerate(conns):
            if i % 2:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        conns = []
        deadline = time.monotonic() + 20
        while True:
            active = metric(scrape(s.metrics_addr), "ringmta_sink_sessions_active")
            if active == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert active == 0, f"{active:.0f} sessions still open 20 s after the clients closed"
        with SmtpClient(s.port) as c:
            assert c.banner().line == "220 localhost ESMTP ringmta"
            assert c.cmd("QUIT").line == "221 2.0.0 Bye"
    finally:
        for c in conns:
            c.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, old_limits)
