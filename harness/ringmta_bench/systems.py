"""The three ways a run is wired, all on loopback, all in one run folder:

  direct   ringmta-loadgen -> the first sink (no relay: the ceiling of the path)
  ringmta  ringmta-loadgen -> ringmta-relay (--route per sink domain) -> the sinks
  postfix  ringmta-loadgen -> a private Postfix (relayhost / transport_maps) -> the sinks

Every sink runs in digest mode with /metrics. For the relays the loadgen's sender is
loadgen@bounces.ringmta.test, routed to one more sink ("bounces", maildir mode) so that
every delivery status notification can be read back by the ledger.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import procs, promscrape
from .scenario import BOUNCE_DOMAIN, ringmta_settings, system_base

HARNESS = Path(__file__).resolve().parents[1]
ROOT = HARNESS.parent
READY_RE = re.compile(r" listening on (\S+)(?:.*? metrics (\S+))?")


def binary(name: str) -> Path:
    """build/bin/NAME (or $RINGMTA_RELEASE_BIN/NAME)."""
    import os
    d = Path(os.environ.get("RINGMTA_RELEASE_BIN", ROOT / "build" / "bin"))
    return (d if d.is_absolute() else ROOT / d) / name


class SystemSkipped(Exception):
    """The system cannot run on this machine (Postfix not installed, not root)."""


@dataclass
class Sink:
    name: str
    child: procs.Child
    port: int
    metrics: tuple[str, int]
    domains: list[str]
    digest: Path | None = None
    maildir: Path | None = None


@dataclass
class Wiring:
    """What a run needs to know about the system it drives."""
    system: str
    port: int                                   # where the loadgen sends
    sinks: list[Sink]
    bounce_sink: Sink | None = None
    relay: procs.Child | None = None
    relay_metrics: tuple[str, int] | None = None
    spool: Path | None = None
    postfix: object | None = None               # postfix_peer.PostfixPeer
    durability: str = "n/a"
    sut_version: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def sender(self) -> str:
        return "loadgen@ringmta.test" if self.system == "direct" else f"loadgen@{BOUNCE_DOMAIN}"

    def sut_cpu_s(self) -> float | None:
        """CPU used so far by the system under test (None for direct)."""
        if self.relay is not None:
            return self.relay.cpu_total_s()
        if self.postfix is not None:
            return self.postfix.cpu_seconds()
        return None

    def sut_rss_kib(self) -> int | None:
        if self.relay is not None:
            return self.relay.peak_rss_kib()
        if self.postfix is not None:
            # Many processes sharing libraries: their PSS added up, at the end of the load.
            return sum(procs.pss_kib(p) or 0 for p in self.postfix.processes()) or None
        return None

    def queue_empty(self) -> bool | None:
        """True once the relay or Postfix holds nothing more to deliver (None: no queue)."""
        if self.relay_metrics is not None:
            try:
                m = promscrape.scrape(self.relay_metrics)
            except OSError:
                return None
            q = m.get(promscrape.RELAY_QUEUE)
            return None if q is None else q == 0
        if self.postfix is not None:
            return self.postfix.queued_messages() == 0
        return None

    def sut_alive(self) -> bool:
        if self.relay is not None:
            return self.relay.running()
        if self.postfix is not None:
            return bool(self.postfix.processes())
        return True


def _sink_argv(s: dict, name: str, run_dir: Path, mode: str) -> tuple[list[str], Path]:
    out = run_dir / (f"digest-{name}.tsv" if mode == "digest" else f"maildir-{name}")
    argv = [binary("ringmta-sink"), "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
            "--threads", str(s["threads"]), "--mode", mode]
    argv += ["--digest-log", out] if mode == "digest" else ["--maildir", out]
    for flag in ("tempfail_rate", "permfail_rate", "disconnect_rate"):
        if s.get(flag):
            argv += ["--" + flag.replace("_", "-"), f"{s[flag]:g}"]
    if s.get("delay"):
        argv += ["--delay", s["delay"]]
    if s.get("delay_end_of_data"):
        argv += ["--delay-end-of-data", s["delay_end_of_data"]]
    return argv + list(s.get("extra_args", [])), out


def _start_sink(children: procs.ChildSet, s: dict, name: str, run_dir: Path, mode: str,
                timeout: float) -> Sink:
    argv, out = _sink_argv(s, name, run_dir, mode)
    if mode == "digest":
        out.unlink(missing_ok=True)      # the sink appends; a digest describes one run
    child = children.start(f"sink-{name}", argv)
    m = child.wait_line(READY_RE, timeout)
    port = promscrape.parse_addr(m.group(1))[1]
    procs.wait_banner(port, timeout, alive=child.running, what=f"sink {name}")
    sink = Sink(name, child, port, promscrape.parse_addr(m.group(2)), s.get("domains", []))
    if mode == "digest":
        sink.digest = out
    else:
        sink.maildir = out
    return sink


def check_available(system: str) -> None:
    """Raise SystemSkipped with the reason when `system` cannot run here."""
    if system_base(system) == "postfix":
        import os
        import sys
        sys.path.insert(0, str(HARNESS))
        import postfix_peer
        try:
            postfix_peer.check_installed()
        except postfix_peer.PostfixNotInstalled as e:
            raise SystemSkipped(str(e)) from None
        if os.geteuid() != 0:
            raise SystemSkipped("a private Postfix instance needs root (its master runs as "
                                "root, its daemons as the postfix user)")


def wire(system: str, sc: dict, run_dir: Path, children: procs.ChildSet) -> Wiring:
    """Start the sinks and the system under test; every process is ready when this returns.
    Whatever starts is in `children` (or its stoppers), so stop_all() cleans up on failure."""
    timeout = sc["run"]["start_timeout"]
    base = system_base(system)
    # The direct path only uses the first sink: the others would sit idle, so they are
    # started only for the relays.
    confs = sc["sinks"][:1] if base == "direct" else sc["sinks"]
    sinks = [_start_sink(children, s, s["name"], run_dir, "digest", timeout) for s in confs]
    if base == "direct":
        return Wiring(system, sinks[0].port, sinks)
    bounce = _start_sink(children, {"threads": 1}, "bounces", run_dir, "maildir", timeout)
    routes = [(d, s) for s in sinks for d in s.domains]
    if base == "ringmta":
        rs = ringmta_settings(sc, system)
        spool = run_dir / "spool"
        argv = [binary("ringmta-relay"), "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                "--spool", spool, "--durability", rs["durability"], "--threads", str(rs["threads"])]
        for d, s in routes:
            argv += ["--route", f"{d}=127.0.0.1:{s.port}"]
            if d != "*":
                argv += ["--accept-domain", d]
        argv += ["--route", f"{BOUNCE_DOMAIN}=127.0.0.1:{bounce.port}"]
        argv += rs["extra_args"]
        relay = children.start("relay", argv)
        m = relay.wait_line(READY_RE, timeout)
        port = promscrape.parse_addr(m.group(1))[1]
        procs.wait_banner(port, timeout, alive=relay.running, what="ringmta-relay")
        version = (relay.log_path.read_text(errors="replace").split(" listening", 1)[0]
                   .splitlines()[-1].strip())
        return Wiring(system, port, sinks, bounce, relay=relay,
                      relay_metrics=promscrape.parse_addr(m.group(2)), spool=spool,
                      durability=rs["durability"], sut_version=version)

    # postfix
    import sys
    sys.path.insert(0, str(HARNESS))
    import postfix_peer
    pf_conf = sc["postfix"]
    for parent in [run_dir.resolve()] + list(run_dir.resolve().parents):
        if parent.stat().st_mode & 0o001 == 0:
            raise procs.StartFailed(f"Postfix's daemons (user postfix) cannot reach the run folder: "
                                    f"{parent} is not searchable by others (mode "
                                    f"{parent.stat().st_mode & 0o777:04o}); use --out elsewhere")
    default = next((s for d, s in routes if d == "*"), sinks[0])
    transport = [(d, s) for d, s in routes if d != "*"] + [(BOUNCE_DOMAIN, bounce)]
    entries = ", ".join(f"{d[1:] if d.startswith('*.') else d}=smtp:[127.0.0.1]:{s.port}"
                        for d, s in transport)
    settings = {
        "transport_maps": f"inline:{{ {entries} }}",
        "smtp_connection_cache_destinations": ", ".join(
            f"[127.0.0.1]:{s.port}" for s in sinks + [bounce]),
        "smtp_initial_destination_concurrency": str(min(50, sc["load"]["connections"])),
    }
    settings.update(pf_conf["main_cf"])
    pf = postfix_peer.PostfixPeer(run_dir / "postfix", relay_port=default.port, main_cf=settings,
                                  process_limit=max(pf_conf["process_limit"],
                                                    4 * sc["load"]["connections"]),
                                  start_timeout=timeout)
    children.stoppers.append(lambda: _stop_postfix(pf, children))
    pf.start()
    for pid in pf.processes():
        children.record_pid("postfix", pid)
    w = Wiring(system, pf.port, sinks, bounce, postfix=pf, durability="always (Postfix fsyncs each message)",
               sut_version=f"Postfix {pf.version}")
    return w


def _stop_postfix(pf, children: procs.ChildSet) -> None:
    for pid in pf.processes():
        children.record_pid("postfix", pid)
    pf.stop()


def relay_queue_digest(spool: Path, out: Path, timeout: float = 120.0) -> str | None:
    """`ringmta-relay queue --spool DIR --digest` into out; None when fine, else the problem."""
    import subprocess
    try:
        p = subprocess.run([str(binary("ringmta-relay")), "queue", "--spool", str(spool), "--digest"],
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"ringmta-relay queue --digest: no answer within {timeout:g} s"
    out.write_bytes(p.stdout)
    if p.returncode != 0:
        return f"ringmta-relay queue --digest: exit {p.returncode}: {p.stderr.decode(errors='replace').strip()[-300:]}"
    return None


def remove_bulky(run_dir: Path) -> None:
    """Ledgers, digests, spools and queues of a run that passed (logs and JSON stay)."""
    for p in list(run_dir.glob("digest-*.tsv")) + list(run_dir.glob("ledger.tsv")) + \
            list(run_dir.glob("queued.tsv")):
        p.unlink(missing_ok=True)
    for d in ("spool", "postfix/queue", "postfix/data"):
        shutil.rmtree(run_dir / d, ignore_errors=True)
