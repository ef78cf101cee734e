"""Reconciliation: the loadgen's ledger against the sinks' digest logs, the bounces and what
is still queued (docs/result-format.md#reconciliation).

Every message the loadgen saw accepted (2xx) must arrive, once, unchanged. Per accepted
message with N accepted recipients: d distinct recipients in the digests, b bounced
(a DSN naming it came back to the bounce sink), q still queued. Messages are counted as
  lost       d + b + q < N (some recipient is nowhere): fails the run
  queued     otherwise, q > 0
  bounced    otherwise, b > 0
  delivered  otherwise (all N delivered)
and, across the digests, corrupted (a digest line whose body SHA-256 is not the ledger's:
fails the run), duplicated ((id, recipient) seen again), unacknowledged_delivered (an id
whose ledger line is not 2xx: not a loss) and foreign (an id of another run, ignored).
Where the queue can only be counted (Postfix: queue files), `queued_count` messages are
taken from the missing ones before any is called lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Ledger:
    accepted: dict[str, tuple[int, str]] = field(default_factory=dict)   # id -> (n rcpts, sha)
    accept_ms: list[int] = field(default_factory=list)    # unix ms of each 2xx, ledger order
    other: set[str] = field(default_factory=set)          # ids that ended otherwise
    outcomes: dict[str, int] = field(default_factory=dict)  # "2xx"/"4xx"/"5xx"/"error": count

    @property
    def accepted_recipients(self) -> int:
        return sum(n for n, _ in self.accepted.values())


def read_ledger(path: Path) -> Ledger:
    led = Ledger()
    with open(path, errors="replace") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 6:
                continue
            code = p[1]
            kind = "error" if code == "0" else f"{code[:1]}xx"
            led.outcomes[kind] = led.outcomes.get(kind, 0) + 1
            if code.startswith("2"):
                acc = p[5].split("/", 1)[0]
                led.accepted[p[0]] = (int(acc) if acc.isdigit() else 1, p[4])
                led.accept_ms.append(int(p[3]))
            else:
                led.other.add(p[0])
    return led


def read_digest(path: Path):
    """Yields (id, sha256, [recipients]) of a sink digest log or `queue --digest` output."""
    try:
        f = open(path, errors="replace")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 4:
                continue
            yield p[0], p[2], [r for r in p[3].split(",") if r]


_ID_RE = re.compile(r"^X-Ringmta-Id:[ \t]*(\S+)", re.I | re.M)
_FINAL_RE = re.compile(r"^Final-Recipient:[ \t]*[A-Za-z0-9-]+;[ \t]*<?([^>\s]+)>?", re.I | re.M)


def read_bounces(maildir: Path) -> tuple[set[tuple[str, str]], int]:
    """(id, recipient) pairs named by the delivery status notifications in a maildir, and the
    number of reports that named no X-Ringmta-Id (reports of mail not from this loadgen)."""
    pairs, unknown = set(), 0
    new = Path(maildir) / "new"
    if not new.is_dir():
        return pairs, 0
    for f in sorted(new.iterdir()):
        text = f.read_text(errors="replace")
        ids = _ID_RE.findall(text)
        rcpts = _FINAL_RE.findall(text)
        if not ids:
            unknown += 1
            continue
        for r in rcpts:
            pairs.add((ids[0], r.lower()))
    return pairs, unknown


def reconcile(led: Ledger, digests: list[Path], bounced: set[tuple[str, str]] | None = None,
              queued_digest: Path | None = None, queued_count: int | None = None) -> dict:
    """The ledger against everything that came out. Returns the counts (see the module doc)."""
    bounced = bounced or set()
    seen: dict[str, set[str]] = {}
    duplicated = corrupted = unacked = foreign = lines = 0
    for path in digests:
        for mid, sha, rcpts in read_digest(path):
            lines += 1
            ent = led.accepted.get(mid)
            if ent is None:
                if mid in led.other:
                    unacked += 1
                else:
                    foreign += 1
                continue
            if sha != ent[1]:
                corrupted += 1
            got = seen.setdefault(mid, set())
            for r in rcpts:
                r = r.lower()
                if r in got:
                    duplicated += 1
                else:
                    got.add(r)
    queued_rcpts: dict[str, set[str]] = {}
    if queued_digest is not None:
        for mid, sha, rcpts in read_digest(queued_digest):
            if mid in led.accepted:
                queued_rcpts.setdefault(mid, set()).update(r.lower() for r in rcpts)
    bounced_by_id: dict[str, int] = {}
    for mid, _ in bounced:
        bounced_by_id[mid] = bounced_by_id.get(mid, 0) + 1

    delivered = lost = n_bounced = n_queued = 0
    r_delivered = r_bounced = r_queued = r_lost = 0
    for mid, (n, _) in led.accepted.items():
        d = len(seen.get(mid, ()))
        b = bounced_by_id.get(mid, 0)
        q = len(queued_rcpts.get(mid, set()) - seen.get(mid, set()))
        r_delivered += min(d, n)
        r_bounced += b
        r_queued += q
        missing = n - d - b - q
        if missing > 0:
            lost += 1
            r_lost += missing
        elif q > 0:
            n_queued += 1
        elif b > 0:
            n_bounced += 1
        else:
            delivered += 1
    queued_by_count = 0
    if queued_count:
        queued_by_count = min(queued_count, lost)
        lost -= queued_by_count
        n_queued += queued_by_count
    return {
        "accepted": len(led.accepted),
        "delivered": delivered,
        "lost": lost,
        "duplicated": duplicated,
        "corrupted": corrupted,
        "bounced": n_bounced,
        "queued": n_queued,
        "unacknowledged_delivered": unacked,
        "foreign": foreign,
        "digest_lines": lines,
        "queued_by_count_only": queued_by_count,
        "recipients": {"accepted": led.accepted_recipients, "delivered": r_delivered,
                       "bounced": r_bounced, "queued": r_queued, "lost": r_lost},
    }
