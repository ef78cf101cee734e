"""One scenario: every system, every repetition (the order of the systems reversed on
every other repetition), each run measured, reconciled and checked; then result.json,
report.md and the plots in the run folder.

    from ringmta_bench.run import run_scenario
    result = run_scenario(scenario_dict, ["direct", "ringmta"], Path("out"), quiet=True)

One run (system S, repetition R, folder S-repR/): the sinks and S start and are ready (SMTP
banner); the loadgen runs; then the harness waits until S has nothing more queued (or
run.drain_timeout), stops S, then the sinks (which flushes their digest logs), lists what
the relay still holds, and reconciles the ledger (ledger.py).
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from pathlib import Path

from . import ledger as ledgerlib
from . import procs, promscrape, systems
from .progress import Progress
from .scenario import ScenarioError, expectations, system_base

PERCENTILES = ["p50", "p75", "p90", "p99", "p99.9", "p99.99", "max"]
_LG_KEYS = {"p50": "50", "p75": "75", "p90": "90", "p99": "99", "p99.9": "99.9", "p99.99": "99.99"}
SATURATION = 0.9          # of one core


class RunError(Exception):
    """A run could not be carried out (a process died, a timeout)."""


# ---- watching a run ---------------------------------------------------------------------------

class Monitor(threading.Thread):
    """Samples, every poll interval, the delivery sinks' accepted-message counters (summed)
    and how many lines the ledger has (the live accepted rate); and the loadgen's CPU."""

    def __init__(self, sinks: list[systems.Sink], ledger_path: Path, interval: float):
        super().__init__(daemon=True)
        self.sinks, self.ledger_path, self.interval = sinks, ledger_path, interval
        self.samples: list[tuple[float, int]] = []       # (unix s, messages at the sinks)
        self.ledger_lines: list[tuple[float, int]] = []  # (monotonic s, lines)
        self.loadgen_window: procs.CpuWindow | None = None
        self.scrape_errors = 0
        self._halt = threading.Event()
        self._lines = 0
        self._pos = 0

    def run(self):
        last_cpu = 0.0
        while not self._halt.is_set():
            t0 = time.time()
            total = 0
            ok = True
            for s in self.sinks:
                try:
                    total += int(promscrape.scrape(s.metrics).get(promscrape.SINK_ACCEPTED, 0))
                except OSError:
                    ok = False
            if ok:
                self.samples.append(((t0 + time.time()) / 2, total))
            else:
                self.scrape_errors += 1
            self._count_ledger()
            if self.loadgen_window is not None and time.monotonic() - last_cpu > 0.5:
                self.loadgen_window.stop()
                last_cpu = time.monotonic()
            self._halt.wait(max(0.0, self.interval - (time.time() - t0)))

    def _count_ledger(self):
        try:
            with open(self.ledger_path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except OSError:
            return
        self._pos += len(data)
        self._lines += data.count(b"\n")
        self.ledger_lines.append((time.monotonic(), self._lines))

    def accepted_rate(self, window: float = 1.0) -> float | None:
        return _recent_rate(self.ledger_lines, window, shorter_ok=True)

    def delivered(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def delivered_rate(self, window: float = 1.0) -> float | None:
        return _recent_rate(self.samples, window, shorter_ok=False)

    def stop(self):
        self._halt.set()
        self.join(timeout=10)


def _recent_rate(pts: list[tuple[float, int]], window: float, shorter_ok: bool) -> float | None:
    """Per second over the last `window` s of (time, count) samples; with shorter_ok, over all
    of them when they span less."""
    if len(pts) < 2:
        return None
    t1, n1 = pts[-1]
    for t0, n0 in reversed(pts):
        if t1 - t0 >= window:
            return (n1 - n0) / (t1 - t0)
    if not shorter_ok:
        return None
    t0, n0 = pts[0]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def reaching_times(samples: list[tuple[float, int]], targets):
    """For rising targets, when the (time, count) samples' counter reached each: linear
    between the samples around it. Ends at the first target the samples never reach."""
    j, prev = 0, None
    for target in targets:
        while j < len(samples) and samples[j][1] < target:
            prev = samples[j]
            j += 1
        if j == len(samples):
            return
        t, n = samples[j]
        yield t if prev is None or prev[1] >= n else prev[0] + (t - prev[0]) * (target - prev[1]) / (n - prev[1])


def time_reaching(samples: list[tuple[float, int]], k: float) -> float | None:
    """When the counter reached k (None if it never did)."""
    return next(reaching_times(samples, (k,)), None)


def nearest_rank(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, math.ceil(q / 100.0 * len(sorted_vals) - 1e-9) - 1))
    return sorted_vals[i]


def fifo_delivery_latency_ms(accept_ms: list[int], samples: list[tuple[float, int]],
                             delivered_total: int) -> dict | None:
    """Delivery latency, the same way for every system: the k-th accepted message (in the
    ledger's accept order) against the moment the sinks' counter reached its k-th share
    (k * final count / accepted). Exact in its mean (Little's law); its percentiles are those
    of a system that delivers in arrival order. Poll-interval resolution."""
    if not accept_ms or not samples or delivered_total <= 0:
        return None
    acc = sorted(accept_ms)
    scale = delivered_total / len(acc)
    reached = reaching_times(samples, (k * scale for k in range(1, len(acc) + 1)))
    d = [max(0.0, td * 1000.0 - ta) for ta, td in zip(acc, reached)]
    if not d:
        return None
    d.sort()
    out = {p: nearest_rank(d, float(p[1:])) for p in PERCENTILES if p != "max"}
    out["max"] = d[-1]
    return out


# ---- one run ----------------------------------------------------------------------------------

def _fmt_s(x: float) -> str:
    return f"{x:g}s"


def loadgen_argv(sc: dict, port: int, sender: str, run_dir: Path, run_id: str) -> list[str]:
    ld = sc["load"]
    argv = [systems.binary("ringmta-loadgen"), "--target", f"127.0.0.1:{port}",
            "--connections", str(ld["connections"]), "--threads", str(ld["threads"]),
            "--duration", _fmt_s(ld["duration"]), "--size", ld["size"],
            "--recipients", ld["recipients"], "--from", sender, "--run-id", run_id,
            "--seed", str(sc["seed"]), "--timeout", f"{max(1, round(ld['timeout'] * 1000))}ms",
            "--json", run_dir / "loadgen.json", "--ledger", run_dir / "ledger.tsv", "--no-progress"]
    if ld["messages"]:
        argv += ["--messages", str(ld["messages"])]
    if ld["warmup"]:
        argv += ["--warmup", _fmt_s(ld["warmup"])]
    if ld["rate"]:
        argv += ["--rate", f"{ld['rate']:g}", "--arrival", ld["arrival"]]
    for d in ld["domains"]:
        argv += ["--to-domain", d]
    if not ld["pipelining"]:
        argv.append("--no-pipelining")
    if ld["bdat"]:
        argv.append("--bdat")
    if ld["messages_per_connection"]:
        argv += ["--messages-per-connection", str(ld["messages_per_connection"])]
    return argv + ld["extra_args"]


def _percentiles_ms(lat: dict) -> dict:
    p = lat.get("percentiles_ns", {})
    out = {k: (p[v] / 1e6 if p.get(v) is not None else None) for k, v in _LG_KEYS.items()}
    out["max"] = lat["max_ns"] / 1e6 if lat.get("max_ns") is not None else None
    return out


def _config_error(system: str, e: procs.StartFailed, child: procs.Child | None) -> None:
    """A child that exited 2 at start refused its configuration: a scenario error."""
    if child is not None and child.returncode == 2:
        key = {"relay": "ringmta.extra_args", "loadgen": "load"}.get(child.name, "sinks")
        raise ScenarioError(key, f"{child.name} refused its arguments: {child.log_tail(3)}") from None


def run_one(sc: dict, system: str, rep: int, run_dir: Path, progress: Progress) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    children = procs.ChildSet(run_dir)
    failures: list[str] = []
    res: dict = {"rep": rep, "ok": False, "failures": failures, "dir": run_dir.name}
    ld = sc["load"]
    mon = None
    try:
        try:
            w = systems.wire(system, sc, run_dir, children)
        except procs.StartFailed as e:
            for c in children.children:
                if c.poll() == 2:
                    _config_error(system, e, c)
            raise RunError(str(e)) from None
        res["durability"] = w.durability
        res["sut_version"] = w.sut_version
        sink_windows = {s.name: procs.CpuWindow(s.child.pid).start() for s in w.sinks}
        sut_cpu0 = w.sut_cpu_s()
        run_id = f"b{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{system}-r{rep}"
        argv = loadgen_argv(sc, w.port, w.sender, run_dir, run_id)
        (run_dir / "ledger.tsv").touch()
        mon = Monitor(w.sinks, run_dir / "ledger.tsv", sc["run"]["poll_interval"])
        mon.start()
        t_start = time.monotonic()
        lg = children.start("loadgen", argv)
        mon.loadgen_window = procs.CpuWindow(lg.pid).start()
        budget = (ld["duration"] if ld["duration"] else 86400) + 2 * ld["timeout"] + 30
        total = ld["duration"] or None
        dead = None
        while lg.poll() is None:
            el = time.monotonic() - t_start
            progress.update(f"{system} rep {rep + 1}: load", el, total, mon.accepted_rate(),
                            "accepted/s")
            if el > budget:
                lg.stop(10)
                raise RunError(f"ringmta-loadgen still running after {budget:g} s")
            for c in [s.child for s in w.sinks] + ([w.relay] if w.relay else []):
                if not c.running():
                    dead = f"{c.name} exited with status {c.returncode} during the load: {c.log_tail(3)}"
            if dead:
                lg.stop(10)
                raise RunError(dead)
            time.sleep(0.05)
        t_load_end = time.monotonic()
        if lg.returncode == 2:
            raise ScenarioError("load", f"ringmta-loadgen refused its arguments: {lg.log_tail(3)}")
        if lg.returncode != 0:
            raise RunError(f"ringmta-loadgen exit {lg.returncode}: {lg.log_tail(4)}")
        lgj = json.loads((run_dir / "loadgen.json").read_text())
        led = ledgerlib.read_ledger(run_dir / "ledger.tsv")
        n_acc = len(led.accepted)

        # Drain: until the system has nothing queued (direct: until the sink has them all).
        drain_end = time.monotonic() + sc["run"]["drain_timeout"]
        next_q = 0.0
        drained = False
        while time.monotonic() < drain_end:
            el = time.monotonic() - t_load_end
            progress.update(f"{system} rep {rep + 1}: drain", el, sc["run"]["drain_timeout"],
                            mon.delivered_rate(), "delivered/s")
            if w.relay is None and w.postfix is None:
                if mon.delivered() >= n_acc:
                    drained = True
                    break
            elif time.monotonic() >= next_q:
                next_q = time.monotonic() + (1.0 if w.postfix is not None else 0.1)
                if w.queue_empty():
                    drained = True
                    break
                if not w.sut_alive():
                    failures.append(f"{system} exited during the drain")
                    break
            time.sleep(sc["run"]["poll_interval"])
        t_drained = time.monotonic()
        if not drained:
            failures.append(f"not drained {sc['run']['drain_timeout']:g} s after the load ended "
                            f"(sinks have {mon.delivered()} messages of {n_acc} accepted)")
        time.sleep(2 * sc["run"]["poll_interval"])     # one more sample: late arrivals
        sut_cpu1 = w.sut_cpu_s()
        sut_rss = w.sut_rss_kib()
        for win in sink_windows.values():
            win.stop()
        mon.stop()
    except BaseException:
        if mon is not None:
            mon.stop()
        children.stop_all()
        raise

    # Stop the system under test first (what it holds stays queued), then the sinks.
    with procs.deferred_signals():
        stop_problems = []
        if w.relay is not None:
            rc = w.relay.stop(30)
            if rc != 0:
                stop_problems.append(f"ringmta-relay exit status {rc} at stop: {w.relay.log_tail(3)}")
            sut_rss = w.relay.peak_rss_kib()
        stop_problems += children.stop_all()
        for s in w.sinks + ([w.bounce_sink] if w.bounce_sink else []):
            if s.child.returncode != 0:
                stop_problems.append(f"{s.child.name} exit status {s.child.returncode}: {s.child.log_tail(3)}")
    failures += stop_problems

    # What is still queued.
    queued_digest = queued_count = None
    if w.spool is not None:
        qpath = run_dir / "queued.tsv"
        problem = systems.relay_queue_digest(w.spool, qpath)
        if problem:
            failures.append(problem)
        else:
            queued_digest = qpath
    if w.postfix is not None:
        queued_count = w.postfix.queued_messages()
        dl = w.postfix.delivery_log()
        res["postfix_deliveries"] = dl["status"]
    bounced, unknown_dsn = (ledgerlib.read_bounces(w.bounce_sink.maildir)
                            if w.bounce_sink is not None else (set(), 0))
    acct = ledgerlib.reconcile(led, [s.digest for s in w.sinks], bounced, queued_digest, queued_count)
    acct["dsn_without_id"] = unknown_dsn

    # Figures.
    c = lgj["counts"]
    accept_lat = _percentiles_ms(lgj["latency"]["accept"])
    samples = mon.samples
    final = samples[-1][1] if samples else 0
    t_first = min(led.accept_ms) / 1000.0 if led.accept_ms else None
    t_done = time_reaching(samples, final) if final else None
    delivered_rate = (acct["delivered"] / (t_done - t_first)
                      if t_first is not None and t_done is not None and t_done > t_first else None)
    deliv_lat = (fifo_delivery_latency_ms(led.accept_ms, samples, final)
                 if system_base(system) != "direct" else None)
    errors = c["tempfail"] + c["permfail"] + c["errors"]
    sut_cpu = (sut_cpu1 - sut_cpu0) if sut_cpu0 is not None and sut_cpu1 is not None else None
    sinks_cpu = sum(win.cpu_s() or 0.0 for win in sink_windows.values())
    lg_child = next(ch for ch in children.children if ch.name == "loadgen")
    res.update({
        "system": system,
        "accepted": c["accepted"],
        "accepted_msg_s": lgj["throughput_msg_s"],
        "delivered": acct["delivered"],
        "delivered_msg_s": delivered_rate,
        "accept_latency_ms": accept_lat,
        "delivery_latency_ms": deliv_lat,
        "delivery_latency_source": (None if deliv_lat is None else
                                    "FIFO-equivalent: ledger accept times vs the sinks' counter"),
        "cpu_s": {"sut": sut_cpu, "loadgen": lgj["cpu"]["total_s"], "sinks": sinks_cpu},
        "sut_cpu_us_per_msg": (sut_cpu * 1e6 / n_acc if sut_cpu is not None and n_acc else None),
        "peak_rss_kib": {"sut": sut_rss, "loadgen": lg_child.peak_rss_kib(),
                         "sinks": sum(s.child.peak_rss_kib() or 0 for s in w.sinks)},
        "ledger": acct,
        "errors": errors,
        "error_rate": errors / c["started"] if c["started"] else 0.0,
        "outcomes": {"started": c["started"], "accepted": c["accepted"], "tempfail": c["tempfail"],
                     "permfail": c["permfail"], "errors": c["errors"],
                     "warmup_messages": c.get("warmup_messages", 0)},
        "replies": lgj.get("replies", {}),
        "conn_errors": {k: v for k, v in lgj.get("conn_errors", {}).items() if v},
        "measured_s": lgj["duration_s"],
        "load_s": t_load_end - t_start,
        "drain_s": t_drained - t_load_end,
        "first_accept_unix_s": t_first,
        "last_delivery_unix_s": t_done,
        "run_id": run_id,
        "loadgen_argv": [str(a) for a in argv],
    })

    # Saturation: the loadgen or a sink above ~90 % of one core (a thread of it, or all its
    # threads together on their share of the machine).
    shares = {}
    lw = mon.loadgen_window
    shares["loadgen"] = max(lgj["cpu"].get("capacity_pct", 0) / 100.0,
                            (lw.busiest_thread_share() or 0.0) if lw else 0.0)
    for name, win in sink_windows.items():
        shares[f"sink-{name}"] = win.busiest_thread_share()
    res["cpu_share_of_core"] = shares
    res["saturated"] = sorted(k for k, v in shares.items() if v is not None and v > SATURATION)
    if lgj["cpu"].get("saturated") and "loadgen" not in res["saturated"]:
        res["saturated"].append("loadgen")

    # Timeline: per second since the loadgen started, accepted (loadgen) and delivered (sinks).
    start_s = lgj["start_unix_ms"] / 1000.0
    tl = {r["second"]: r["accepted"] for r in lgj.get("timeline", [])}
    last_sec = max(list(tl) + [int((t_done or start_s) - start_s)], default=0)
    timeline = []
    prev_count = 0
    for sec in range(last_sec + 1):
        cnt = _count_at(samples, start_s + sec + 1)
        timeline.append({"second": sec, "accepted": tl.get(sec, 0), "delivered": max(0, cnt - prev_count)})
        prev_count = cnt
    res["timeline"] = timeline

    # Checks.
    if acct["lost"]:
        failures.append(f"LOST: {acct['lost']} of {acct['accepted']} accepted messages are neither "
                        f"delivered, bounced nor queued ({acct['recipients']['lost']} recipients)")
    if acct["corrupted"]:
        failures.append(f"CORRUPTED: {acct['corrupted']} digest lines carry a body SHA-256 other "
                        f"than the ledger's")
    if acct["accepted"] == 0:
        failures.append("no message was accepted")
    e = expectations(sc, system)
    _check(failures, "accepted msg/s", res["accepted_msg_s"], e["min_accepted_msg_s"], "min")
    _check(failures, "delivered msg/s", delivered_rate, e["min_delivered_msg_s"], "min")
    _check(failures, "accept p99 ms", accept_lat["p99"], e["max_accept_p99_ms"], "max")
    _check(failures, "error rate", res["error_rate"], e["max_error_rate"], "max")
    _check(failures, "duplicated", acct["duplicated"], e["max_duplicated"], "max")
    res["ok"] = not failures
    if res["ok"] and not sc["run"]["keep_files"]:
        systems.remove_bulky(run_dir)
    return res


def _count_at(samples, t):
    """The sinks' counter at time t (linear between samples; 0 before the first)."""
    prev = None
    for ts, n in samples:
        if ts >= t:
            if prev is None:
                return 0 if ts > t else n
            return int(prev[1] + (n - prev[1]) * (t - prev[0]) / (ts - prev[0])) if ts > prev[0] else n
        prev = (ts, n)
    return prev[1] if prev else 0


def _check(failures, what, value, limit, kind):
    if limit is None:
        return
    if value is None:
        failures.append(f"{what}: no figure to check against the {kind} {limit:g}")
    elif kind == "min" and value < limit:
        failures.append(f"{what} {value:,.1f} below the expected minimum {limit:g}")
    elif kind == "max" and value > limit:
        failures.append(f"{what} {value:,.3g} above the expected maximum {limit:g}")


# ---- a scenario -------------------------------------------------------------------------------

def _stats(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def summarize(runs: list[dict]) -> dict:
    return {
        "accepted_msg_s": _stats([r.get("accepted_msg_s") for r in runs]),
        "delivered_msg_s": _stats([r.get("delivered_msg_s") for r in runs]),
        "accept_p99_ms": _stats([(r.get("accept_latency_ms") or {}).get("p99") for r in runs]),
    }


def run_scenario(scenario: dict, systems_: list[str] | None, out_dir: Path, quiet: bool = True) -> dict:
    """Run a resolved scenario (scenario.load_scenario / resolve) for the given systems (None:
    the scenario's own list), write result.json, report.md and the plots into out_dir, and
    return the result dict (the content of result.json). Raises ScenarioError (bad scenario
    or system name) and procs.Interrupted (SIGINT/SIGTERM, after every child is stopped)."""
    from . import plots, report, results

    sc = scenario
    names = list(sc["systems"]) if not systems_ else list(systems_)
    for i, n in enumerate(names):
        if n not in sc["systems"]:
            raise ScenarioError("--system", f"{n!r} is not a system of this scenario ({', '.join(sc['systems'])})")
    for name in ("ringmta-loadgen", "ringmta-sink", "ringmta-relay"):
        if not systems.binary(name).exists():
            raise ScenarioError("binaries", f"{systems.binary(name)} is missing: build it "
                                "(cmake --preset release && cmake --build --preset release)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(quiet)
    result = results.new_result(sc, names, out_dir)
    skipped = {}
    for n in names:
        try:
            systems.check_available(n)
        except systems.SystemSkipped as e:
            skipped[n] = str(e)
            progress.note(f"{n}: skipped: {e}")
    for n in names:
        result["systems"][n] = {"skipped": skipped.get(n), "runs": [], "summary": summarize([])}
    live = [n for n in names if n not in skipped]
    for rep in range(sc["repeat"]):
        order = live if rep % 2 == 0 else list(reversed(live))
        for n in order:
            progress.note(f"{n}: repetition {rep + 1}/{sc['repeat']}")
            try:
                r = run_one(sc, n, rep, out_dir / f"{n}-rep{rep + 1}", progress)
            except (RunError, procs.StartFailed) as e:
                r = {"rep": rep, "ok": False, "failures": [str(e)], "dir": f"{n}-rep{rep + 1}"}
            progress.clear()
            result["systems"][n]["runs"].append(r)
            if not r["ok"]:
                progress.note(f"{n}: repetition {rep + 1} FAILED: {'; '.join(r['failures'])}")
    for n in live:
        result["systems"][n]["summary"] = summarize(result["systems"][n]["runs"])
    results.finish(result)
    (out_dir / "result.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    try:
        result["plots"] = plots.write_all(result, out_dir)
    except Exception as e:           # a plot problem never hides the figures
        result["plots"] = []
        result.setdefault("notes", []).append(f"plots not written: {e}")
    (out_dir / "result.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out_dir / "report.md").write_text(report.markdown(result, out_dir))
    return result
