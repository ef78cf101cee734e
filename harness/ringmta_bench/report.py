"""The comparison table printed at the end of a run, and report.md in the run folder."""

from __future__ import annotations

from pathlib import Path

from .results import PERCENTILES


def _f(v, spec=",.0f", none="-"):
    return none if v is None else format(v, spec)


def _med(summary: dict | None, key: str):
    s = (summary or {}).get(key)
    return None if s is None else s["median"]


def _median_of(runs, fn):
    import statistics
    vals = [v for v in (fn(r) for r in runs if "accepted" in r) if v is not None]
    return statistics.median(vals) if vals else None


def _rate_cell(summary, key, reps):
    s = (summary or {}).get(key)
    if s is None:
        return "-"
    if reps > 1:
        return f"{s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f})"
    return f"{s['median']:,.0f}"


def rows(result: dict) -> list[dict]:
    """One row per system: medians over its runs (what the table and report show)."""
    out = []
    for name, s in result["systems"].items():
        runs = [r for r in s["runs"] if "accepted" in r]
        row = {"system": name, "skipped": s["skipped"], "runs": len(s["runs"]),
               "ok": all(r["ok"] for r in s["runs"]) if s["runs"] else None}
        row["accepted"] = _rate_cell(s["summary"], "accepted_msg_s", len(runs))
        row["delivered"] = _rate_cell(s["summary"], "delivered_msg_s", len(runs))
        for p in ("p50", "p99", "p99.9"):
            row[f"a_{p}"] = _median_of(runs, lambda r, p=p: r["accept_latency_ms"][p])
        row["d_p99"] = _median_of(runs, lambda r: (r["delivery_latency_ms"] or {}).get("p99"))
        row["cpu_us"] = _median_of(runs, lambda r: r["sut_cpu_us_per_msg"])
        row["rss_mib"] = _median_of(runs, lambda r: (r["peak_rss_kib"]["sut"] / 1024.0)
                                    if r["peak_rss_kib"]["sut"] else None)
        for k in ("lost", "duplicated", "corrupted", "bounced", "queued"):
            row[k] = sum(r["ledger"][k] for r in runs) if runs else None
        row["saturated"] = sorted({x for r in runs for x in r.get("saturated", [])})
        out.append(row)
    return out


def ratios(result: dict) -> list[str]:
    """ringmta-like systems against direct and postfix, on the medians."""
    med = {n: (_med(s["summary"], "accepted_msg_s"), _med(s["summary"], "delivered_msg_s"))
           for n, s in result["systems"].items()}
    lines = []
    for n, (a, d) in med.items():
        if not n.startswith("ringmta"):
            continue
        for other in ("direct", "postfix"):
            oa, od = med.get(other, (None, None))
            parts = []
            if a and oa:
                parts.append(f"accepted {a / oa:.2f}x")
            if d and od:
                parts.append(f"delivered {d / od:.2f}x")
            if parts:
                lines.append(f"{n} / {other}: " + ", ".join(parts))
    return lines


def table(result: dict) -> str:
    """The terminal comparison table."""
    hdr = (f"{'system':<16} {'accepted/s':>18} {'delivered/s':>18} {'acc p50':>8} {'p99':>8} "
           f"{'p99.9 ms':>9} {'dlv p99 ms':>10} {'SUT us/msg':>10} {'RSS MiB':>8} "
           f"{'lost':>5} {'dup':>5} {'queued':>6}  result")
    out = [hdr, "-" * len(hdr)]
    for r in rows(result):
        if r["skipped"]:
            out.append(f"{r['system']:<16} skipped: {r['skipped']}")
            continue
        verdict = "ok" if r["ok"] else "FAILED"
        if r["saturated"]:
            verdict += " (saturated: " + ", ".join(r["saturated"]) + ")"
        out.append(
            f"{r['system']:<16} {r['accepted']:>18} {r['delivered']:>18} {_f(r['a_p50'], '.2f'):>8} "
            f"{_f(r['a_p99'], '.2f'):>8} {_f(r['a_p99.9'], '.2f'):>9} {_f(r['d_p99'], ',.1f'):>10} "
            f"{_f(r['cpu_us'], ',.1f'):>10} {_f(r['rss_mib'], ',.1f'):>8} {_f(r['lost'], 'd'):>5} "
            f"{_f(r['duplicated'], 'd'):>5} {_f(r['queued'], 'd'):>6}  {verdict}")
    rt = ratios(result)
    if rt:
        out.append("")
        out += rt
    return "\n".join(out)


def _lat_row(name, lat):
    if lat is None:
        return f"| {name} | " + " | ".join("-" for _ in PERCENTILES) + " |"
    return f"| {name} | " + " | ".join(_f(lat.get(p), ",.3f") for p in PERCENTILES) + " |"


def markdown(result: dict, out_dir: Path) -> str:
    sc = result["scenario"]
    m = result["machine"]
    ld = sc["load"]
    mode = f"open loop at {ld['rate']:g} msg/s" if ld["rate"] else "closed loop"
    L = [f"# ringmta-bench: {result['scenario_name']}", ""]
    if sc.get("description"):
        L += [sc["description"], ""]
    L += [f"- started {result['started_utc']}, git {result['git_commit'][:12]}"
          f"{' (dirty)' if result['git_dirty'] else ''}",
          f"- machine: {m['cpu_model']}, {m['cpus']} CPUs, kernel {m['kernel']}, "
          f"{m['fs_type']}, {(m['mem_kib'] or 0) // 1024} MiB",
          f"- load: {mode}, {ld['connections']} connections, size {ld['size']}, recipients "
          f"{ld['recipients']}, domains {', '.join(ld['domains'])}, "
          + (f"{ld['messages']} messages" if ld["messages"] else f"{ld['duration']:g} s")
          + (f" ({ld['warmup']:g} s warm-up)" if ld["warmup"] else "")
          + f", {sc['repeat']} repetition(s), systems alternating order",
          f"- ringmta durability: {result['durability']}"
          + (" (UNSAFE: no sync, measures the cost of durability)" if "none" in result["durability"].split(",") else ""),
          f"- verdict: **{'ok' if result['ok'] else 'FAILED'}**", ""]
    if result["failures"]:
        L += ["Failures:", ""] + [f"- {f}" for f in result["failures"]] + [""]
    L += ["## Side by side (medians over repetitions)", "", "```", table(result), "```", ""]
    for name, s in result["systems"].items():
        L += [f"## {name}", ""]
        if s["skipped"]:
            L += [f"Skipped: {s['skipped']}", ""]
            continue
        for r in s["runs"]:
            L += [f"### repetition {r['rep'] + 1}: {'ok' if r['ok'] else 'FAILED'} (folder `{r['dir']}/`)", ""]
            if r["failures"]:
                L += [f"- {f}" for f in r["failures"]] + [""]
            if "accepted" not in r:
                continue
            led = r["ledger"]
            cpu = r["cpu_s"]
            rss = r["peak_rss_kib"]
            L += ["| figure | value |", "| --- | --- |",
                  f"| accepted | {r['accepted']:,} in {r['measured_s']:.2f} s = {r['accepted_msg_s']:,.1f} msg/s |",
                  f"| delivered | {_f(r['delivered'], ',d')} at {_f(r['delivered_msg_s'], ',.1f')} msg/s (first 250 to last delivery) |",
                  f"| errors | {r['errors']:,} ({r['error_rate'] * 100:.2f} %): {r['outcomes']} |",
                  f"| CPU s | system under test {_f(cpu['sut'], '.2f')}, loadgen {cpu['loadgen']:.2f}, sinks {cpu['sinks']:.2f} |",
                  f"| SUT CPU per message | {_f(r['sut_cpu_us_per_msg'], ',.1f')} us |",
                  f"| peak RSS KiB | system under test {_f(rss['sut'], ',d')}, loadgen {_f(rss['loadgen'], ',d')}, sinks {_f(rss['sinks'], ',d')} |",
                  f"| ledger | accepted {led['accepted']:,}, delivered {led['delivered']:,}, lost {led['lost']}, "
                  f"duplicated {led['duplicated']}, corrupted {led['corrupted']}, bounced {led['bounced']}, queued {led['queued']}"
                  f"{', unacknowledged delivered ' + str(led['unacknowledged_delivered']) if led['unacknowledged_delivered'] else ''} |",
                  "| busiest thread, share of a core | "
                  + ", ".join(f"{k} {v * 100:.0f} %" for k, v in r["cpu_share_of_core"].items() if v is not None)
                  + (" — **saturated: " + ", ".join(r["saturated"]) + "** (the figures may describe the load tools)"
                     if r["saturated"] else "") + " |",
                  "", "| latency ms | " + " | ".join(PERCENTILES) + " |",
                  "| --- |" + " ---: |" * len(PERCENTILES),
                  _lat_row("accept (end of data -> 250)", r["accept_latency_ms"]),
                  _lat_row("delivery (250 -> at the sink)", r["delivery_latency_ms"]), ""]
    rt = ratios(result)
    if rt:
        L += ["## Ratios", ""] + [f"- {x}" for x in rt] + [""]
    if result.get("plots"):
        L += ["## Plots", ""] + [f"![{p}]({p})" for p in result["plots"]] + [""]
    L += ["Delivery latency is FIFO-equivalent: the k-th message accepted (ledger) against the "
          "moment the sinks had their k-th message (their /metrics counter, polled every "
          f"{sc['run']['poll_interval'] * 1000:g} ms). Accept latency is the loadgen's HDR "
          "histogram. See docs/bench.md.", ""]
    return "\n".join(L)
