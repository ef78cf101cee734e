"""`ringmta-bench capacity SCENARIO.toml --slo-p99 5ms`: the highest open-loop rate each
system sustains within a latency SLO, found by bisection over short runs, for sizing.

A step is one short open-loop run of the scenario (through run.run_scenario, one system,
one repetition) at an offered rate. It passes when the accept-latency p99 is within the SLO,
no message was lost or corrupted, and the achieved accept rate is within --rate-slack of the
offered one. The search brackets the limit between a passing and a failing rate and halves
the bracket (geometrically) until it is narrower than --tolerance. Method and output:
docs/bench-compare.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = "ringmta-bench/capacity"
DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*(us|ms|s|m)?\s*$")
UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, None: 1.0}
PROBE_HEADROOM = 1.25  # the open loop is searched up to this many times the closed-loop rate


class UsageError(Exception):
    pass


def parse_duration(text: str, what: str, zero_ok: bool = False) -> float:
    """'5ms', '250us', '1.5s', '2m' or a bare number of seconds (DESIGN.md) -> seconds."""
    m = DURATION_RE.match(text)
    if not m or (float(m.group(1)) <= 0 and not zero_ok):
        raise UsageError(f"{what}: {text!r} is not a {'' if zero_ok else 'positive '}duration "
                         "(5ms, 250us, 1.5s)")
    return float(m.group(1)) * UNIT_S[m.group(2)]


# ---- One step -----------------------------------------------------------------------------


def step_verdict(run: dict | None, offered: float, slo_ms: float, slack_pct: float) -> dict:
    """Reads one run of the result dict; returns the step's figures, `pass` and `why`."""
    if run is None:
        return {"offered_msg_s": offered, "pass": False, "why": "no run"}
    lat = run.get("accept_latency_ms") or {}
    led = run.get("ledger") or {}
    st = {
        "offered_msg_s": offered,
        "achieved_msg_s": run.get("accepted_msg_s"),
        "accept_p50_ms": lat.get("p50"),
        "accept_p99_ms": lat.get("p99"),
        "accept_max_ms": lat.get("max"),
        "accepted": run.get("accepted"),
        "lost": led.get("lost") or 0,
        "corrupted": led.get("corrupted") or 0,
        "error_rate": run.get("error_rate"),
        "saturated": run.get("saturated") or [],
        "run_ok": run.get("ok"),
        "run_failures": run.get("failures") or [],
    }
    why = []
    p99_only = True
    if st["lost"] or st["corrupted"]:
        p99_only = False
        why.append(f"{st['lost']} lost, {st['corrupted']} corrupted")
    p99 = st["accept_p99_ms"]
    if p99 is None:
        p99_only = False
        why.append("no accept latency (nothing accepted)")
    elif p99 > slo_ms:
        why.append(f"p99 {_ms(p99)} ms > SLO {slo_ms:g} ms")
    achieved = st["achieved_msg_s"] or 0.0
    if achieved < offered * (1 - slack_pct / 100):
        p99_only = False
        why.append(f"achieved {achieved:.0f} < {100 - slack_pct:g}% of offered")
    st["pass"] = not why
    st["p99_only"] = bool(why) and p99_only
    st["why"] = "; ".join(why)
    return st


def load_average() -> float | None:
    """The machine's 1-minute load average: other work competing with a step shows here."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def busy_threshold(cpus: int) -> float:
    # A step's own processes (loadgen, sinks, relay threads) keep a few runnable; twice the
    # CPUs plus two is more than a run makes by itself.
    return 2 * cpus + 2


class Search:
    """The bisection for one system. `runner(system, rate_or_None, step_no)` returns the
    result dict of one step (rate None: the closed-loop probe)."""

    def __init__(self, system, runner, slo_ms, min_rate, max_rate, tolerance_pct, slack_pct, log,
                 retries: int = 1):
        self.system, self.runner, self.log = system, runner, log
        self.slo_ms, self.min_rate, self.max_rate = slo_ms, min_rate, max_rate
        self.tolerance, self.slack, self.retries = tolerance_pct, slack_pct, retries
        self.steps: list[dict] = []
        self.out = {"status": None, "capacity_msg_s": None, "bracket": None,
                    "probe_closed_loop_msg_s": None, "skipped": None, "steps": self.steps}

    def _run(self, rate):
        res = self.runner(self.system, rate, len(self.steps) + 1)
        sysres = (res.get("systems") or {}).get(self.system) or {}
        if sysres.get("skipped"):
            raise _Skipped(sysres["skipped"])
        runs = sysres.get("runs") or []
        return res, (runs[0] if runs else None)

    def step(self, rate: float) -> bool:
        """One rate. A step whose only failure is the p99 (it kept up with the schedule and
        lost nothing) is run again, up to `retries` times, and passes if any attempt does: a
        one-off stall of a shared machine looks like that, while a system over its limit
        also falls behind the schedule, or fails again."""
        for attempt in range(1 + self.retries):
            _, run = self._run(rate)
            st = step_verdict(run, rate, self.slo_ms, self.slack)
            st["attempt"] = attempt + 1
            st["loadavg_1m"] = load_average()
            self.steps.append(st)
            self.log(f"{self.system:<14} step {len(self.steps):>2}  offered {rate:>8.0f} msg/s  "
                     f"achieved {_f(st.get('achieved_msg_s'), 0):>8}  p99 {_f(st.get('accept_p99_ms'), 3):>8} ms  "
                     f"{'pass' if st['pass'] else 'FAIL: ' + st['why']}"
                     f"{'  (again)' if attempt else ''}")
            if st["pass"] or not st.get("p99_only"):
                break
        return st["pass"]

    def run(self) -> dict:
        try:
            return self._search()
        except _Skipped as e:
            self.out.update(status="skipped", skipped=str(e))
            self.log(f"{self.system:<14} skipped: {e}")
            return self.out

    def _search(self) -> dict:
        hi = self.max_rate
        if hi is None:
            _, run = self._run(None)
            probe = (run or {}).get("accepted_msg_s") or 0.0
            self.out["probe_closed_loop_msg_s"] = probe
            self.log(f"{self.system:<14} probe    closed loop {probe:.0f} msg/s -> search up to "
                     f"{probe * PROBE_HEADROOM:.0f} msg/s")
            if probe <= 0:
                self.out["status"] = "failed"
                self.out["why"] = "the closed-loop probe accepted nothing"
                return self.out
            hi = probe * PROBE_HEADROOM
        lo = self.min_rate if self.min_rate is not None else hi / 32
        if lo >= hi:
            raise UsageError(f"--min-rate {lo:g} is not below the top of the search {hi:g}")
        if not self.step(lo):
            self.out.update(status="below-min", bracket=[None, lo])
            return self.out
        if self.step(hi):
            self.out.update(status="at-least-max", capacity_msg_s=hi, bracket=[hi, None])
            return self.out
        while hi / lo > 1 + self.tolerance / 100:
            mid = math.sqrt(lo * hi)
            mid = float(round(mid)) if mid >= 100 else round(mid, 1)
            if mid <= lo or mid >= hi:
                break
            if self.step(mid):
                lo = mid
            else:
                hi = mid
        self.out.update(status="found", capacity_msg_s=lo, bracket=[lo, hi])
        return self.out


class _Skipped(Exception):
    pass


def _ms(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def _f(v, digits):
    return "-" if v is None else f"{v:.{digits}f}" if digits else f"{v:.0f}"


# ---- Output -------------------------------------------------------------------------------


def render_table(report: dict) -> str:
    lines = [f"capacity: {report['scenario_name']}, accept p99 <= {report['slo_p99_ms']:g} ms, "
             f"nothing lost, achieved >= {100 - report['rate_slack_pct']:g}% of offered",
             f"{'system':<14} {'capacity msg/s':>14}  {'p99 there':>10}  {'bracket':<20} status"]
    for name, s in report["systems"].items():
        cap = s.get("capacity_msg_s")
        at = next((st for st in s["steps"] if st["offered_msg_s"] == cap and st["pass"]), None)
        br = s.get("bracket") or [None, None]
        bracket = "" if s["status"] in ("skipped", "failed") else \
            f"[{_f(br[0], 0)}, {_f(br[1], 0)}]"
        status = s["status"] if s["status"] != "skipped" else f"skipped ({s['skipped']})"
        if s["status"] == "below-min":
            status += f": fails already at --min-rate {_f(br[1], 0)} ({s['steps'][0]['why']})"
        elif s["status"] == "at-least-max":
            status += ": passes at the top of the search; raise --max-rate"
        lines.append(f"{name:<14} {_f(cap, 0):>14}  {_f(at and at.get('accept_p99_ms'), 3):>10}  "
                     f"{bracket:<20} {status}")
        sat = sorted({p for st in s["steps"] for p in st.get("saturated") or []})
        if sat:
            lines.append(f"{'':<14} warning: saturated in some steps: {', '.join(sat)} "
                         "(the figure may be the load tools' limit)")
    cpus = (report.get("machine") or {}).get("cpus") or os.cpu_count() or 1
    loads = [st.get("loadavg_1m") for s in report["systems"].values() for st in s["steps"]]
    loads = [x for x in loads if x is not None]
    if loads and max(loads) > busy_threshold(cpus):
        lines.append(f"warning: the machine was busy: 1-min load average up to {max(loads):.1f} on "
                     f"{cpus} CPUs during the search (other work competed with the steps; the "
                     "figures are unreliable, search again on a quiet machine)")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, s in report["systems"].items():
        pts = sorted((st for st in s["steps"] if st.get("accept_p99_ms") is not None),
                     key=lambda st: st["offered_msg_s"])
        if not pts:
            continue
        x = [st["offered_msg_s"] for st in pts]
        line, = ax1.plot(x, [st["accept_p99_ms"] for st in pts], marker="o", label=name)
        for st in pts:
            if not st["pass"]:
                ax1.plot(st["offered_msg_s"], st["accept_p99_ms"], "x", color="red", markersize=9)
        ax2.plot(x, [st["achieved_msg_s"] or None for st in pts], marker="o", label=name, color=line.get_color())
        if s.get("capacity_msg_s") and s["status"] == "found":
            for ax in (ax1, ax2):
                ax.axvline(s["capacity_msg_s"], color=line.get_color(), linestyle=":", linewidth=1)
    ax1.axhline(report["slo_p99_ms"], color="grey", linestyle="--", label=f"SLO {report['slo_p99_ms']:g} ms")
    ax1.set_yscale("log")
    offered = [st["offered_msg_s"] for s in report["systems"].values() for st in s["steps"]]
    if offered and max(offered) / min(offered) > 20:  # systems of very different speeds
        for ax in (ax1, ax2):
            ax.set_xscale("log")
        ax2.set_yscale("log")
    ax1.set_xlabel("offered rate (msg/s)")
    ax1.set_ylabel("accept latency p99 (ms, log)")
    ax1.set_title("p99 against offered rate (x: step failed)")
    ax1.legend()
    lo_lim, lim = min(offered or [1]), max(offered or [1])
    ax2.plot([lo_lim, lim], [lo_lim, lim], color="grey", linestyle="--", label="achieved = offered")
    ax2.set_xlabel("offered rate (msg/s)")
    ax2.set_ylabel("achieved accept rate (msg/s)")
    ax2.set_title("achieved against offered (dotted: capacity found)")
    ax2.legend()
    fig.suptitle(f"capacity search: {report['scenario_name']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- CLI ----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"ringmta-bench capacity: {message}", file=sys.stderr)
        raise SystemExit(2)


def _rate(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r}")
    if not 0 < v <= 10_000_000:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 10000000: {text!r}")
    return v


def _pct(text: str) -> float:
    try:
        v = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}")
    if not 0 < v < 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100: {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="ringmta-bench capacity",
                 description="Find, per system, the highest open-loop rate at which the accept "
                             "p99 stays within an SLO and nothing is lost (bisection over short "
                             "runs). See docs/bench-compare.md.")
    ap.add_argument("scenario", metavar="SCENARIO.toml")
    ap.add_argument("--slo-p99", required=True, metavar="DURATION",
                    help="accept-latency p99 objective: 5ms, 500us, 0.2s")
    ap.add_argument("--system", action="append", metavar="NAME",
                    help="search this system (repeatable; default: the scenario's systems)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="scenario override, as for run (repeatable)")
    ap.add_argument("--min-rate", type=_rate, metavar="R",
                    help="bottom of the search, must pass (default: the top / 32)")
    ap.add_argument("--max-rate", type=_rate, metavar="R",
                    help=f"top of the search (default: {PROBE_HEADROOM:g} x the rate of a "
                         "closed-loop probe step with the scenario's connections)")
    ap.add_argument("--step-duration", default="3s", metavar="DURATION",
                    help="measured length of each step, after its warm-up (default 3s)")
    ap.add_argument("--step-warmup", default="0.5s", metavar="DURATION",
                    help="unmeasured start of each step: connections open (default 0.5s)")
    ap.add_argument("--tolerance", type=_pct, default=5.0, metavar="PCT",
                    help="stop when the passing and failing rates are within PCT (default 5)")
    ap.add_argument("--rate-slack", type=_pct, default=3.0, metavar="PCT",
                    help="a step fails when it achieves less than offered - PCT (default 3)")
    ap.add_argument("--retries", type=int, default=1, choices=range(0, 4), metavar="N",
                    help="run a step that failed only on the p99 again, up to N times; it "
                         "passes if any attempt does (default 1)")
    ap.add_argument("--out", metavar="DIR",
                    help="run folder (default results/runs/<UTC date-time>-<scenario>-capacity)")
    ap.add_argument("--quiet", action="store_true", help="no line per step")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ringmta_bench import scenario as scenario_mod

    try:
        slo_s = parse_duration(args.slo_p99, "--slo-p99")
        step_s = parse_duration(args.step_duration, "--step-duration")
        warm_s = parse_duration(args.step_warmup, "--step-warmup", zero_ok=True)
        if args.min_rate and args.max_rate and args.min_rate >= args.max_rate:
            raise UsageError("--min-rate must be below --max-rate")
        base = scenario_mod.load_scenario(args.scenario, args.set)
    except UsageError as e:
        print(f"ringmta-bench capacity: {e}", file=sys.stderr)
        return 2
    except scenario_mod.ScenarioError as e:
        print(f"ringmta-bench capacity: {args.scenario}: {e}", file=sys.stderr)
        return 2
    systems = args.system or base["systems"]
    for s in systems:
        try:
            scenario_mod.load_scenario(args.scenario, args.set + [f"systems={json.dumps([s])}"])
        except scenario_mod.ScenarioError as e:
            print(f"ringmta-bench capacity: --system {s}: {e}", file=sys.stderr)
            return 2

    from ringmta_bench import procs
    from ringmta_bench import run as run_mod
    from ringmta_bench.cli import default_out_dir

    started = datetime.now(timezone.utc)
    out = Path(args.out) if args.out else default_out_dir(f"{base['name']}-capacity")
    out.mkdir(parents=True, exist_ok=True)
    procs.install_signal_handlers()  # SIGINT/SIGTERM: every child stopped, then Interrupted
    log = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    first_result: dict = {}

    def runner(system: str, rate: float | None, n: int) -> dict:
        sets = args.set + [f"systems={json.dumps([system])}", "repeat=1", "load.messages=0",
                           f"load.duration={warm_s + step_s!r}", f"load.warmup={warm_s!r}",
                           f"load.rate={0.0 if rate is None else float(rate)!r}"]
        sc = scenario_mod.load_scenario(args.scenario, sets)
        tag = "probe" if rate is None else f"{rate:g}"
        res = run_mod.run_scenario(sc, [system], out / "steps" / f"{system}-{n:02d}-{tag}", quiet=True)
        if not first_result:
            first_result.update(res)
        return res

    report = {"schema": SCHEMA, "schema_version": 1, "scenario_name": base["name"],
              "scenario": base, "started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "slo_p99_ms": slo_s * 1000, "step_duration_s": step_s, "step_warmup_s": warm_s,
              "tolerance_pct": args.tolerance, "rate_slack_pct": args.rate_slack,
              "retries": args.retries,
              "min_rate": args.min_rate, "max_rate": args.max_rate, "systems": {}}
    t0 = time.monotonic()
    try:
        for s in systems:
            search = Search(s, runner, slo_s * 1000, args.min_rate, args.max_rate,
                            args.tolerance, args.rate_slack, log, args.retries)
            report["systems"][s] = search.run()
    except UsageError as e:
        print(f"ringmta-bench capacity: {e}", file=sys.stderr)
        return 2
    except scenario_mod.ScenarioError as e:
        print(f"ringmta-bench capacity: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, procs.Interrupted) as e:
        report["interrupted"] = True
        (out / "capacity.json").write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nringmta-bench capacity: interrupted ({e}); every process of the run was "
              f"stopped; the steps so far are in {out / 'capacity.json'}", file=sys.stderr)
        return 130
    report["elapsed_s"] = round(time.monotonic() - t0, 1)
    for k in ("git_commit", "git_dirty", "machine", "durability"):
        report[k] = first_result.get(k)

    failures = []
    for name, s in report["systems"].items():
        for st in s["steps"]:
            if st.get("lost") or st.get("corrupted"):
                failures.append(f"{name}: {st['lost']} lost, {st['corrupted']} corrupted at "
                                f"{st['offered_msg_s']:g} msg/s")
        if s["status"] in ("below-min", "failed"):
            failures.append(f"{name}: no rate meets the SLO ({s['status']})")
    report["failures"] = failures
    report["ok"] = not failures
    (out / "capacity.json").write_text(json.dumps(report, indent=1) + "\n")
    png = out / "capacity.png"
    try:
        plot(report, png)
    except Exception as e:  # a plot must not lose the figures already written
        print(f"ringmta-bench capacity: plot failed: {e}", file=sys.stderr)
    print(render_table(report))
    for f in failures:
        print(f"FAIL: {f}")
    print(f"capacity: {out / 'capacity.json'}  plot: {png}  ({report['elapsed_s']:g} s)")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
