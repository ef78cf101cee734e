"""`ringmta-bench compare BASE NEW`: a benchstat-style comparison of two result.json files.

For each system both results ran and each figure (accept rate, delivery rate, accept p50 and
p99, delivery p99, the system under test's CPU per message) it prints the median and spread of
the repetitions on each side, the change in % or `~` where the change is within the noise,
and exits 1 only on a change beyond the noise AND beyond a threshold in the bad direction, or
on any lost or corrupted message in NEW. The noise rule is in docs/bench-compare.md.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

RESULT_SCHEMA = "ringmta-bench/result"
RESULT_SCHEMA_VERSION = 1
COMPARE_SCHEMA = "ringmta-bench/compare"

ALPHA = 0.05          # Mann-Whitney U significance level, as benchstat's default
MIN_CHANGE_PCT = 3.0  # below this a change is shown as `~` whatever the test says
MWU_MIN_REPS = 4      # from 4+4 runs the exact two-sided U test can reach p < 0.05 (2/70)

# Machine fields that make figures incomparable when they differ (hostname alone does not:
# CI runners of one type have different names).
MACHINE_KEYS = ("cpu_model", "cpus", "kernel", "fs_type")


class BadInput(Exception):
    """Unreadable or unsupported input: exit 2."""


# ---- Figures ------------------------------------------------------------------------------


def _get(run: dict, *path):
    v = run
    for p in path:
        if not isinstance(v, dict):
            return None
        v = v.get(p)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


# (key, label, how to read it from a run, higher is better, gate: "rate" | "p99" | None)
METRICS = (
    ("accepted_msg_s", "accepted msg/s", lambda r: _get(r, "accepted_msg_s"), True, "rate"),
    ("delivered_msg_s", "delivered msg/s", lambda r: _get(r, "delivered_msg_s"), True, "rate"),
    ("accept_p50_ms", "accept p50 ms", lambda r: _get(r, "accept_latency_ms", "p50"), False, None),
    ("accept_p99_ms", "accept p99 ms", lambda r: _get(r, "accept_latency_ms", "p99"), False, "p99"),
    ("delivery_p99_ms", "delivery p99 ms", lambda r: _get(r, "delivery_latency_ms", "p99"), False, None),
    ("sut_cpu_us_per_msg", "SUT CPU us/msg", lambda r: _get(r, "sut_cpu_us_per_msg"), False, None),
)


# ---- Statistics ---------------------------------------------------------------------------


def _midranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Exact two-sided p-value of the Mann-Whitney U (Wilcoxon rank-sum) test, ties included:
    the share of all C(n+m, n) splits of the pooled midranks whose rank sum for the first
    sample is at least as far from its mean as the observed one. Counted by dynamic
    programming over doubled (hence integer) midranks, so exact for any size used here."""
    n, m = len(a), len(b)
    ranks2 = [int(round(2 * r)) for r in _midranks(list(a) + list(b))]
    observed = sum(ranks2[:n])
    mean2 = n * (n + m + 1)  # twice the mean rank sum n(N+1)/2
    dev = abs(observed - mean2)
    # ways[k] maps a doubled rank sum to the number of k-subsets with that sum
    ways: list[dict[int, int]] = [dict() for _ in range(n + 1)]
    ways[0][0] = 1
    for r in ranks2:
        for k in range(n, 0, -1):
            prev = ways[k - 1]
            cur = ways[k]
            for s, c in prev.items():
                cur[s + r] = cur.get(s + r, 0) + c
    total = math.comb(n + m, n)
    extreme = sum(c for s, c in ways[n].items() if abs(s - mean2) >= dev)
    return min(1.0, extreme / total)


def summarize(values: list[float]) -> dict:
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    spread = max(med - lo, hi - med) / abs(med) * 100 if med else 0.0
    return {"n": len(values), "median": med, "min": lo, "max": hi, "spread_pct": spread,
            "values": list(values)}


def judge(base: list[float], new: list[float], alpha: float, min_change_pct: float) -> dict:
    """Is the change between two samples beyond the noise? Returns delta_pct, significant, and
    how that was decided (`test`, `p_value`, `note`)."""
    b, n = summarize(base), summarize(new)
    out = {"base": b, "new": n}
    if b["median"] == 0:
        out.update(delta_pct=None, significant=False, test="none",
                   note="base median is 0")
        return out
    delta = (n["median"] - b["median"]) / abs(b["median"]) * 100
    out["delta_pct"] = delta
    if len(base) >= MWU_MIN_REPS and len(new) >= MWU_MIN_REPS:
        p = mann_whitney_p(base, new)
        out.update(test="mann-whitney", p_value=p)
        beyond = p < alpha
        note = f"p={p:.3f} n={len(base)}+{len(new)}"
    else:
        apart = b["max"] < n["min"] or n["max"] < b["min"]
        out.update(test="ranges", p_value=None)
        beyond = apart
        note = f"ranges {'apart' if apart else 'overlap'} n={len(base)}+{len(new)}"
    if beyond and abs(delta) < min_change_pct:
        beyond = False
        note += f", under {min_change_pct:g}%"
    out.update(significant=beyond, note=note)
    return out


# ---- Input --------------------------------------------------------------------------------


def load_result(arg: str) -> tuple[Path, dict]:
    p = Path(arg)
    if p.is_dir():
        p = p / "result.json"
    if not p.is_file():
        raise BadInput(f"{arg}: no such result file (give a result.json or a run folder holding one)")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"{p}: not readable JSON: {e}")
    if not isinstance(data, dict) or data.get("schema") != RESULT_SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise BadInput(f"{p}: schema is {got!r}, expected {RESULT_SCHEMA!r}")
    ver = data.get("schema_version")
    if ver != RESULT_SCHEMA_VERSION:
        raise BadInput(f"{p}: schema_version {ver!r}, this compare reads {RESULT_SCHEMA_VERSION}")
    if not isinstance(data.get("systems"), dict):
        raise BadInput(f"{p}: no \"systems\" object")
    for name, sysres in data["systems"].items():
        if not isinstance(sysres, dict) or not isinstance(sysres.get("runs", []), list):
            raise BadInput(f"{p}: systems.{name} is not an object with a \"runs\" list")
    return p, data


def _flatten(d, prefix=""):
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def context_warnings(base: dict, new: dict) -> list[str]:
    """Differences that make the comparison less meaningful: machine, scenario, durability."""
    warnings = []
    bm, nm = base.get("machine") or {}, new.get("machine") or {}
    diff = [f"{k} {bm.get(k)!r} vs {nm.get(k)!r}" for k in MACHINE_KEYS if bm.get(k) != nm.get(k)]
    if diff:
        warnings.append("different machines (" + "; ".join(diff) + "): changes may be the "
                        "machine's, not the code's")
    elif bm.get("hostname") != nm.get("hostname"):
        warnings.append(f"different hosts of the same kind ({bm.get('hostname')} vs "
                        f"{nm.get('hostname')})")
    if base.get("scenario_name") != new.get("scenario_name"):
        warnings.append(f"different scenarios: {base.get('scenario_name')!r} vs "
                        f"{new.get('scenario_name')!r}")
    bs, ns = _flatten(base.get("scenario") or {}), _flatten(new.get("scenario") or {})
    keys = sorted(k for k in set(bs) | set(ns) if bs.get(k) != ns.get(k))
    if keys:
        shown = ", ".join(f"{k}: {bs.get(k)!r} -> {ns.get(k)!r}" for k in keys[:6])
        more = f" and {len(keys) - 6} more" if len(keys) > 6 else ""
        warnings.append(f"scenario settings differ: {shown}{more}")
    if base.get("durability") != new.get("durability"):
        warnings.append(f"durability {base.get('durability')!r} vs {new.get('durability')!r}")
    return warnings


def _runs(sysres: dict) -> list[dict]:
    return [r for r in sysres.get("runs") or [] if isinstance(r, dict)]


def _run_name(name: str, r: dict) -> str:
    return r.get("dir") or f"{name} rep {r.get('rep', '?')}"


def loss_failures(new: dict) -> list[str]:
    """Lost or corrupted messages in any run, and runs that produced no figures at all (a
    system that crashed or never started must not pass as 'nothing to compare')."""
    out = []
    for name, sysres in new["systems"].items():
        if sysres.get("skipped"):
            continue
        for r in _runs(sysres):
            led = r.get("ledger") or {}
            lost, corrupted = led.get("lost") or 0, led.get("corrupted") or 0
            if lost or corrupted:
                out.append(f"NEW {name} run {_run_name(name, r)}: {lost} lost, {corrupted} corrupted")
            elif _get(r, "accepted_msg_s") is None:
                why = "; ".join(map(str, r.get("failures") or [])) or "no figures"
                out.append(f"NEW {name} run {_run_name(name, r)} did not complete: {why}")
    return out


# ---- Comparison ---------------------------------------------------------------------------


def compare(base: dict, new: dict, rate_threshold: float, p99_threshold: float,
            alpha: float = ALPHA, min_change_pct: float = MIN_CHANGE_PCT) -> dict:
    report = {"schema": COMPARE_SCHEMA, "schema_version": 1,
              "rate_threshold_pct": rate_threshold, "p99_threshold_pct": p99_threshold,
              "alpha": alpha, "min_change_pct": min_change_pct,
              "warnings": context_warnings(base, new), "notes": [], "failures": [],
              "systems": {}}
    compared = 0
    for name in sorted(set(base["systems"]) | set(new["systems"])):
        bs, ns = base["systems"].get(name), new["systems"].get(name)
        if bs is None or ns is None:
            report["notes"].append(f"{name}: only in {'NEW' if bs is None else 'BASE'}")
            continue
        if bs.get("skipped") or ns.get("skipped"):
            which = "BASE" if bs.get("skipped") else "NEW"
            report["warnings"].append(
                f"{name}: skipped in {which} ({(bs if which == 'BASE' else ns).get('skipped')}), "
                "not compared")
            continue
        bruns, nruns = _runs(bs), _runs(ns)
        if not bruns or not nruns:
            report["warnings"].append(f"{name}: no runs in {'BASE' if not bruns else 'NEW'}")
            continue
        compared += 1
        if min(len(bruns), len(nruns)) == 1:
            report["notes"].append(
                f"{name}: a side has 1 run, so there is no noise estimate and only the "
                "thresholds guard against noise (run with --repeat 4 or more)")
        rows = {}
        for key, label, read, higher_better, gate in METRICS:
            bv = [v for v in map(read, bruns) if v is not None]
            nv = [v for v in map(read, nruns) if v is not None]
            if not bv and not nv:
                continue
            row = {"label": label, "higher_is_better": higher_better, "gate": gate}
            if not bv or not nv:
                row.update(base=summarize(bv) if bv else None, new=summarize(nv) if nv else None,
                           delta_pct=None, significant=False, note="missing on one side")
            else:
                row.update(judge(bv, nv, alpha, min_change_pct))
            row["verdict"] = _verdict(row, higher_better, gate, rate_threshold, p99_threshold)
            if row["verdict"] == "regression":
                limit = rate_threshold if gate == "rate" else p99_threshold
                report["failures"].append(
                    f"{name} {label}: {row['delta_pct']:+.1f}% ({row['note']}), beyond the noise "
                    f"and the {limit:g}% {gate} threshold")
            rows[key] = row
        report["systems"][name] = {"base_runs": len(bruns), "new_runs": len(nruns), "metrics": rows}
    if compared == 0:
        raise BadInput("no system ran in both BASE and NEW: nothing to compare")
    report["failures"] += loss_failures(new)
    report["ok"] = not report["failures"]
    return report


def _verdict(row: dict, higher_better: bool, gate, rate_threshold: float, p99_threshold: float) -> str:
    d = row.get("delta_pct")
    if d is None or not row.get("significant"):
        return "same"
    better = d > 0 if higher_better else d < 0
    if better:
        return "better"
    if gate == "rate" and -d > rate_threshold:
        return "regression"
    if gate == "p99" and d > p99_threshold:
        return "regression"
    return "worse"


# ---- Output -------------------------------------------------------------------------------


def _fmt(v) -> str:
    if v is None:
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _cell(s) -> str:
    if not s:
        return "-"
    return f"{_fmt(s['median'])} ± {s['spread_pct']:.0f}%"


def render(report: dict, base_path: Path, new_path: Path, base: dict, new: dict) -> str:
    def head(p, d):
        commit = (d.get("git_commit") or "?")[:10] + ("+dirty" if d.get("git_dirty") else "")
        return f"{p} ({d.get('scenario_name', '?')}, {d.get('started_utc', '?')}, {commit})"

    lines = [f"base: {head(base_path, base)}", f"new:  {head(new_path, new)}"]
    lines += [f"warning: {w}" for w in report["warnings"]]
    lines += [f"note: {n}" for n in report["notes"]]
    for name, s in report["systems"].items():
        lines.append("")
        lines.append(f"{name:<18} {'base (median ± spread)':<24} {'new (median ± spread)':<24} delta")
        for row in s["metrics"].values():
            if row["delta_pct"] is None:
                delta = f"n/a ({row.get('note', '')})"
            elif row["significant"]:
                delta = f"{row['delta_pct']:+.1f}% ({row['note']})"
            else:
                delta = f"~ ({row['note']})"
            flag = {"regression": "  REGRESSION", "worse": "  worse", "better": "  better"}.get(row["verdict"], "")
            lines.append(f"{row['label']:<18} {_cell(row['base']):<24} {_cell(row['new']):<24} {delta}{flag}")
    lines.append("")
    if report["ok"]:
        lines.append(f"compare: ok (thresholds: rate -{report['rate_threshold_pct']:g}%, "
                     f"p99 +{report['p99_threshold_pct']:g}%)")
    else:
        lines += [f"FAIL: {f}" for f in report["failures"]]
        lines.append(f"compare: FAILED ({len(report['failures'])} problem(s))")
    return "\n".join(lines)


def _pct(text: str) -> float:
    try:
        v = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}")
    if not 0 <= v <= 1000:
        raise argparse.ArgumentTypeError(f"out of range 0-1000: {text!r}")
    return v


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 itself; keep the message short and ours
        self.print_usage(sys.stderr)
        print(f"ringmta-bench compare: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="ringmta-bench compare",
                 description="Compare two ringmta-bench results: median ± spread per system and "
                             "figure, the change or ~ within the noise (docs/bench-compare.md).")
    ap.add_argument("base", metavar="BASE", help="result.json or a run folder (the reference)")
    ap.add_argument("new", metavar="NEW", help="result.json or a run folder (the candidate)")
    ap.add_argument("--rate-threshold", type=_pct, default=10.0, metavar="PCT",
                    help="fail when a rate drops more than this, beyond the noise (default 10)")
    ap.add_argument("--p99-threshold", type=_pct, default=25.0, metavar="PCT",
                    help="fail when the accept p99 rises more than this, beyond the noise (default 25)")
    ap.add_argument("--alpha", type=float, default=ALPHA,
                    help=f"significance level of the U test from {MWU_MIN_REPS}+{MWU_MIN_REPS} runs (default {ALPHA})")
    ap.add_argument("--min-change", type=_pct, default=MIN_CHANGE_PCT, metavar="PCT",
                    help=f"changes smaller than this are ~ (default {MIN_CHANGE_PCT:g})")
    ap.add_argument("--json", metavar="OUT", help="also write the comparison as JSON here")
    args = ap.parse_args(argv)
    if not 0 < args.alpha < 1:
        ap.error("--alpha must be between 0 and 1")
    try:
        bpath, base = load_result(args.base)
        npath, new = load_result(args.new)
        report = compare(base, new, args.rate_threshold, args.p99_threshold, args.alpha, args.min_change)
    except BadInput as e:
        print(f"ringmta-bench compare: {e}", file=sys.stderr)
        return 2
    report["base"], report["new"] = str(bpath), str(npath)
    print(render(report, bpath, npath, base, new))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        except OSError as e:
            print(f"ringmta-bench compare: cannot write {args.json}: {e}", file=sys.stderr)
            return 2
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
