"""Reading Prometheus /metrics of the sinks and the relay (plain HTTP/1.0 on loopback)."""

from __future__ import annotations

import socket

SINK_ACCEPTED = 'ringmta_sink_messages_total{outcome="accepted"}'
RELAY_QUEUE = "ringmta_relay_queue_messages"


def scrape(addr: tuple[str, int], timeout: float = 2.0) -> dict[str, float]:
    """GET /metrics: {series with its labels, as written: value}."""
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    body = b"".join(chunks).decode(errors="replace").split("\r\n\r\n", 1)[-1]
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, val = line.rpartition(" ")
            try:
                out[name] = float(val)
            except ValueError:
                pass
    return out


def parse_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def histogram_quantile(metrics: dict[str, float], name: str, q: float) -> float | None:
    """Quantile q (0-1) of a Prometheus histogram, linear within the bucket (as PromQL)."""
    buckets = []
    prefix = name + '_bucket{le="'
    for series, v in metrics.items():
        if series.startswith(prefix):
            le = series[len(prefix):-2]
            buckets.append((float("inf") if le == "+Inf" else float(le), v))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lo_b, lo_n = 0.0, 0.0
    for b, n in buckets:
        if n >= rank:
            if b == float("inf"):
                return lo_b
            return lo_b + (b - lo_b) * ((rank - lo_n) / (n - lo_n) if n > lo_n else 1.0)
        lo_b, lo_n = b, n
    return lo_b
