"""What the side-by-side benchmark scripts share (bench_relay_accept.py, bench_relay_delivery.py,
bench_sink.py, bench_clients.py): their children on loopback (started, read ready, stopped),
the loadgen run and its figures, rounds in rotating order, medians, spreads and ratios, and
the summary and JSON record. Ports, /proc CPU, SMTP banners and /metrics come from
ringmta_bench (procs, promscrape), the same code ringmta-bench uses.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postfix_peer  # noqa: E402  (harness/postfix_peer.py)
from ringmta_bench import procs  # noqa: E402
from ringmta_bench.results import mount_of  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RunFailed(RuntimeError):
    pass


class UsageError(RuntimeError):
    pass


# ---- child processes -------------------------------------------------------------------

def start_ready(cmd, log_path, what, timeout=15.0):
    """Start cmd (stdout+stderr to log_path) and wait for its "listening on" line.

    Returns (Popen, the ready line's words). The caller stops it (stop_popen) in a finally.
    """
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + timeout
        while True:
            with open(log_path, errors="replace") as f:
                for line in f:
                    if " listening on " in line:
                        return proc, line.split()
            if proc.poll() is not None or time.monotonic() > end:
                with open(log_path, errors="replace") as f:
                    raise RunFailed(f"{what}: no ready line (exit {proc.poll()}): "
                                    f"{f.read().strip()[-400:]}")
            time.sleep(0.02)
    except BaseException:
        stop_popen(proc)
        raise


def stop_popen(proc, timeout=15.0):
    """SIGTERM, then SIGKILL after timeout s. Returns (exit code, seconds to exit)."""
    t0 = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode, time.monotonic() - t0


def cpu_reader(pid):
    """A function giving the CPU seconds pid has used so far; once it is reaped, the last
    figure read (a zombie still has its figures)."""
    last = [0.0]

    def cpu():
        v = procs.proc_cpu_s(pid)
        if v is not None:
            last[0] = v
        return last[0]
    return cpu


def start_test_sink(kind, sink_bin, smtp_sink, threads):
    """ringmta-sink (discard mode) or Postfix's smtp-sink on a free loopback port, once its
    banner is there: (Popen, port). The caller stops it (stop_popen, 10 s)."""
    port = procs.free_port()
    if kind == "ringmta-sink":
        cmd = [sink_bin, "--listen", f"127.0.0.1:{port}", "--threads", str(threads)]
    else:
        cmd = [smtp_sink, "-u", "nobody", "-c", f"127.0.0.1:{port}", "1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        procs.wait_banner(port, 10.0, alive=lambda: proc.poll() is None, what=kind)
    except BaseException:
        stop_popen(proc, 10)
        raise
    return proc, port


def systems_arg(known, shown, short=()):
    """An argparse type: a comma-separated list of systems out of known, a name in short
    standing for "ringmta-NAME"; an unknown one is refused with the names in shown."""
    def parse(text):
        out = []
        for s in text.split(","):
            s = s.strip()
            if s in short:
                s = "ringmta-" + s
            if s not in known:
                raise argparse.ArgumentTypeError(f"unknown system {s!r} ({shown})")
            out.append(s)
        return out
    return parse


def missing_binary(prog, paths, hint):
    """Prints which of paths is not an executable (with how to get it); True if one is not."""
    for path in paths:
        if not os.access(path, os.X_OK):
            print(f"{prog}: {path} is not there ({hint})", file=sys.stderr)
            return True
    return False


# ---- the loadgen ---------------------------------------------------------------------------

def loadgen_cmd(args, port, json_path):
    cmd = [args.loadgen_bin, "--target", f"127.0.0.1:{port}",
           "--connections", str(args.connections), "--size", str(args.size),
           "--recipients", "1", "--threads", str(args.loadgen_threads),
           "--timeout", f"{int(args.reply_timeout * 1000)}ms", "--no-progress",
           "--json", json_path]
    if args.messages:
        cmd += ["--messages", str(args.messages), "--duration", "0"]
    else:
        cmd += ["--duration", f"{args.duration}s"]
    if args.warmup:
        cmd += ["--warmup", f"{args.warmup}s"]
    return cmd


def run_loadgen_child(cmd, run_dir, json_path, limit, during=None):
    """Run the loadgen cmd, its output to RUN_DIR/loadgen.txt; during(child) runs while it
    does. Killed if still running after limit s (subprocess.TimeoutExpired). Returns its
    JSON; exit 2 raises UsageError, any other failure RunFailed."""
    txt = os.path.join(run_dir, "loadgen.txt")
    with open(txt, "w") as out_f:
        child = subprocess.Popen(cmd, stdout=out_f, stderr=subprocess.STDOUT)
        try:
            if during is not None:
                during(child)
            child.wait(timeout=limit)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    with open(txt, errors="replace") as f:
        text = f.read()
    if child.returncode == 2:
        raise UsageError(f"ringmta-loadgen refused its arguments: {text.strip()[-400:]}")
    if child.returncode != 0:
        raise RunFailed(f"ringmta-loadgen exit {child.returncode}: {text.strip()[-400:]}")
    with open(json_path) as f:
        return json.load(f)


def figures(lg):
    pct = lg["latency"]["accept"]["percentiles_ns"]
    c = lg["counts"]
    return {
        "accepted": c["accepted"],
        "accepted_incl_warmup": sum(r["accepted"] for r in lg["timeline"]),
        "tempfail": c["tempfail"], "permfail": c["permfail"], "errors": c["errors"],
        "conn_errors": {k: v for k, v in lg["conn_errors"].items() if v},
        "replies": lg["replies"],
        "rate_msg_s": lg["throughput_msg_s"],
        "measured_s": lg["duration_s"],
        "p50_ms": pct["50"] / 1e6 if pct.get("50") is not None else None,
        "p99_ms": pct["99"] / 1e6 if pct.get("99") is not None else None,
        "p999_ms": pct["99.9"] / 1e6 if pct.get("99.9") is not None else None,
        "loadgen_cpu_s": lg["cpu"]["total_s"],
        "loadgen_capacity_pct": lg["cpu"]["capacity_pct"],
        "loadgen_saturated": lg["cpu"]["saturated"],
    }


def check_outcomes(res, problems):
    if res["errors"] or res["tempfail"] or res["permfail"]:
        problems.append(f"loadgen: accepted {res['accepted']}, tempfail {res['tempfail']}, "
                        f"permfail {res['permfail']}, errors {res['errors']} "
                        f"{res['conn_errors']} replies {res['replies']}")
    if res["loadgen_saturated"]:
        res["warning"] = "loadgen saturated: the figures may describe the loadgen"


# ---- what the servers hold -------------------------------------------------------------------

def spool_count(args, spool):
    out = subprocess.run([args.relay_bin, "queue", "--spool", spool], capture_output=True,
                         text=True, timeout=300)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    parts = last.split()
    if out.returncode != 0 or len(parts) < 3 or parts[0] != "--" or parts[2] != "messages,":
        raise RunFailed(f"ringmta-relay queue --spool {spool}: exit {out.returncode}, last line "
                        f"{last!r}: {out.stderr.strip()[-300:]}")
    return int(parts[1]), last


def postfix_skip_reason(systems):
    """With "postfix" in systems: None if a private instance can run here, else why not
    (printed, and "postfix" taken out of systems)."""
    if "postfix" not in systems:
        return None
    try:
        postfix_peer.check_installed()
        if os.geteuid() != 0:
            raise postfix_peer.PostfixNotInstalled(
                "postfix not usable: a private instance needs root")
    except postfix_peer.PostfixNotInstalled as e:
        print(f"{e}: skipped", flush=True)
        systems.remove("postfix")
        return str(e)
    return None


def check_maillog(pf, res, problems):
    """The maillog's problem lines into res; a fatal or panic line is a problem of the run."""
    res["maillog_problems"] = pf.maillog_problems()
    if any(" fatal:" in x or " panic:" in x for x in res["maillog_problems"]):
        problems.append("Postfix logged fatal/panic: " + res["maillog_problems"][-1])


def remove_postfix_files(pf):
    """The instance's queue and maillog (its configuration stays)."""
    pf.remove_queue()
    try:
        os.remove(pf.maillog)
    except OSError:
        pass


# ---- rounds --------------------------------------------------------------------------------

def unwind_on(*signums):
    """These signals unwind like Ctrl-C (KeyboardInterrupt): every child is stopped in the
    finally blocks."""
    def on_signal(signum, frame):
        raise KeyboardInterrupt
    for s in signums:
        signal.signal(s, on_signal)


def make_run_root(out_dir, name):
    """OUT_DIR/NAME-<time>/: (time stamp, folder, its mount point, its file system type)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    run_root = os.path.join(out_dir, f"{name}-{stamp}")
    os.makedirs(run_root, exist_ok=True)
    mount, fstype = mount_of(run_root)
    return stamp, run_root, mount, fstype


def run_rounds(runs, systems, rounds, run_root, run_one, failures, show, width):
    """Every system once a round, in RUN_ROOT/r<round>-<system>/, the order rotated by one
    each round so machine noise hits all alike. run_one(system, run_dir, r) gives the run's
    dict (with "problems"); an exception of a type in failures becomes its problem. Each run
    is appended to runs (so the caller keeps them on KeyboardInterrupt), then show(res, r,
    system) prints its line, then its problems are printed."""
    for r in range(rounds):
        order = systems[r % len(systems):] + systems[:r % len(systems)]
        for system in order:
            run_dir = os.path.join(run_root, f"r{r}-{system}")
            os.makedirs(run_dir)
            try:
                res = run_one(system, run_dir, r)
            except failures as e:
                res = {"system": system, "problems": [f"run failed: {e}"]}
            res["round"] = r
            res["loadavg_1m_after"] = os.getloadavg()[0]
            runs.append(res)
            show(res, r, system)
            for prob in res["problems"]:
                print(f"round {r} {system:{width}s} PROBLEM: {prob}", flush=True)


def remove_queues(run_root, skip=()):
    """After an interruption: the spools and Postfix queues of the runs in run_root (but
    those named in skip)."""
    for d in os.listdir(run_root):
        if d not in skip:
            shutil.rmtree(os.path.join(run_root, d, "spool"), ignore_errors=True)
            shutil.rmtree(os.path.join(run_root, d, "postfix", "queue"), ignore_errors=True)


# ---- medians, spreads, ratios --------------------------------------------------------------

def spread(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "spread_pct": None}
    med = statistics.median(vals)
    return {"median": med, "min": min(vals), "max": max(vals),
            "spread_pct": 100.0 * (max(vals) - min(vals)) / med if med else None}


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(v, spec):
    return format(v, spec) if v is not None else "-"


def medians(runs, systems, keys, usable, derived=None):
    """{system: {key: spread of the usable runs' figures}, "runs": how many}; derived is
    {name: function of a run} for figures not stored under one key."""
    med = {}
    for system in systems:
        mine = [x for x in runs if x["system"] == system and usable(x)]
        med[system] = {k: spread([x.get(k) for x in mine]) for k in keys}
        for name, get in (derived or {}).items():
            med[system][name] = spread([get(x) for x in mine])
        med[system]["runs"] = len(mine)
    return med


def median_of(med, system, key):
    return med.get(system, {}).get(key, {}).get("median")


def ratios_per_round(runs, rounds, pairs, usable=lambda x: True):
    """The rate ratios of pairs {name: (a, b)} round by round (a round's systems ran back to
    back, so drift in the machine's load cancels better), with their median and range."""
    per_round = {}
    for name, (a, b) in pairs.items():
        vals = []
        for r in range(rounds):
            ra = [x.get("rate_msg_s") for x in runs if x["round"] == r and x["system"] == a
                  and usable(x)]
            rb = [x.get("rate_msg_s") for x in runs if x["round"] == r and x["system"] == b
                  and usable(x)]
            if ra and rb and ra[0] is not None and rb[0]:
                vals.append(ra[0] / rb[0])
        if vals:
            per_round[name] = {"values": vals, **spread(vals)}
    return per_round


def rate_range_text(rate):
    """ "median (min-max)" of a spread() of rates."""
    return (f"{fmt(rate['median'], '.0f')} ({fmt(rate['min'], '.0f')}-"
            f"{fmt(rate['max'], '.0f')})")


def print_median_table(systems, med, first, name_w, rate_head, rate_w, columns):
    """The summary table, a row a system: its median rate (min-max), then columns, each
    (heading, width, key in med, text of its median)."""
    print(f"  {first:{name_w}s} {rate_head:>{rate_w}s} "
          + " ".join(f"{head:>{w}s}" for head, w, _, _ in columns))
    for system in systems:
        s = med[system]
        if not s["runs"]:
            print(f"  {system:{name_w}s} {'no run completed':>{rate_w}s}")
            continue
        print(f"  {system:{name_w}s} {rate_range_text(s['rate_msg_s']):>{rate_w}s} "
              + " ".join(text(s[key]["median"]) for _, _, key, text in columns))


def per_round_text(pr):
    """The round-by-round figure printed after a ratio (empty without one)."""
    return (f"   (round by round: median {pr['median']:.2f}, {pr['min']:.2f}-{pr['max']:.2f})"
            if pr else "")


# ---- the record ----------------------------------------------------------------------------

def run_problems(runs, interrupted):
    problems = [f"round {x['round']} {x['system']}: {p}" for x in runs for p in x["problems"]]
    if interrupted:
        problems.append("interrupted")
    return problems


def rounds_record(schema, args, run_root, fs, postfix_skipped, runs, med, ratios, per_round,
                  **rest):
    """The JSON record of a run of rounds (bench_relay_accept, bench_relay_delivery): what
    ran where, every run, the medians and ratios; rest (the script's own) follows in order."""
    return {"schema": schema, "args": vars(args), "command": " ".join(sys.argv),
            "run_folder": run_root, "filesystem": {"mount": fs[0], "type": fs[1]},
            "cpus": os.cpu_count(), "postfix_skipped": postfix_skipped, "runs": runs,
            "median": med, "ratios": ratios, "ratios_per_round": per_round, **rest}


def write_record(path, record):
    """The run's JSON record, and where it went."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    print(f"  written to {os.path.relpath(path, ROOT)}")


def print_problems(problems):
    """Every problem on stderr; True if there was one (the run then exits 1)."""
    if not problems:
        return False
    print(f"\n{len(problems)} problem(s):", file=sys.stderr)
    for prob in problems:
        print(f"  {prob}", file=sys.stderr)
    return True
