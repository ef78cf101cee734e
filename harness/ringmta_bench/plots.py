"""PNG plots of a result (matplotlib, Agg): throughput over time per system, accept-latency
percentile curves (HDR-style: x = percentile on a log scale of 1/(1-q)), and a bar chart of
the side-by-side rates. Written next to result.json; returns the file names."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from .results import PERCENTILES  # noqa: E402

_Q = {"p50": 0.5, "p75": 0.75, "p90": 0.9, "p99": 0.99, "p99.9": 0.999, "p99.99": 0.9999, "max": 0.99999}


def _colors(result) -> dict:
    """One colour per system (and repetition), the same in every plot of a run."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    keys = [(name, r["rep"]) for name, r in _runs(result)]
    return {k: cycle[i % len(cycle)] for i, k in enumerate(keys)}


def _runs(result):
    for name, s in result["systems"].items():
        for r in s["runs"]:
            if "accepted" in r:
                yield name, r


def throughput(result: dict, path: Path) -> None:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    colors = _colors(result)
    for name, r in _runs(result):
        tl = r["timeline"]
        label = name if result["scenario"]["repeat"] == 1 else f"{name} rep {r['rep'] + 1}"
        xs = [row["second"] for row in tl]
        color = colors[(name, r["rep"])]
        ax1.plot(xs, [row["accepted"] for row in tl], label=label, drawstyle="steps-post", color=color)
        ax2.plot(xs, [row.get("delivered", 0) for row in tl], label=label, drawstyle="steps-post",
                 color=color)
    ax1.set_ylabel("accepted msg/s (loadgen)")
    ax2.set_ylabel("delivered msg/s (sinks)")
    ax2.set_xlabel("seconds since the loadgen started")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax1.set_title(f"{result['scenario_name']}: throughput over time")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def latency(result: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    xs = [1.0 / (1.0 - _Q[p]) for p in PERCENTILES]
    colors = _colors(result)
    for key, ax, title in (("accept_latency_ms", axes[0], "accept latency (end of data -> 250)"),
                           ("delivery_latency_ms", axes[1], "delivery latency (250 -> sink)")):
        drawn = False
        for name, r in _runs(result):
            lat = r.get(key)
            if not lat:
                continue
            pts = [(x, lat[p]) for x, p in zip(xs, PERCENTILES) if lat.get(p)]
            if not pts:
                continue
            label = name if result["scenario"]["repeat"] == 1 else f"{name} rep {r['rep'] + 1}"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label,
                    color=colors[(name, r["rep"])])
            drawn = True
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels(["50", "75", "90", "99", "99.9", "99.99", "max"])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
            lambda v, _: f"{v:g}" if str(f"{v:g}")[0] in "25" else ""))
        ax.set_xlabel("percentile")
        ax.set_ylabel("ms")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3, which="both")
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no figures", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def rates(result: dict, path: Path) -> None:
    names, acc, dlv, acc_err, dlv_err = [], [], [], [[], []], [[], []]
    for name, s in result["systems"].items():
        summ = s["summary"]
        if s["skipped"] or not summ.get("accepted_msg_s"):
            continue
        names.append(name)
        for key, vals, err in (("accepted_msg_s", acc, acc_err), ("delivered_msg_s", dlv, dlv_err)):
            st = summ.get(key)
            m = st["median"] if st else 0.0
            vals.append(m)
            err[0].append(m - st["min"] if st else 0.0)
            err[1].append(st["max"] - m if st else 0.0)
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(names) + 2), 4.5))
    x = range(len(names))
    w = 0.38
    b1 = ax.bar([i - w / 2 for i in x], acc, w, yerr=acc_err, label="accepted msg/s", capsize=3)
    b2 = ax.bar([i + w / 2 for i in x], dlv, w, yerr=dlv_err, label="delivered msg/s", capsize=3)
    for bars in (b1, b2):
        for b in bars:
            ax.annotate(f"{b.get_height():,.0f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x))
    ax.set_xticklabels(names)
    ax.set_ylabel("msg/s (median; bars: min-max)")
    ax.set_title(f"{result['scenario_name']}: side by side")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_all(result: dict, out_dir: Path) -> list[str]:
    out = []
    for name, fn in (("throughput.png", throughput), ("latency.png", latency), ("rates.png", rates)):
        fn(result, Path(out_dir) / name)
        out.append(name)
    return out
