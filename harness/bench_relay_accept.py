#!/usr/bin/python3
"""Side-by-side: how fast ringmta-relay and Postfix accept mail, same load, one run.

The servers, each in turn on its own loopback port, each with a fresh spool or queue in the
run folder (results/runs/bench-relay-accept-<time>/, so all on one file system):
  ringmta-batch   ringmta-relay --durability batch  (group commit, the default)
  ringmta-always  ringmta-relay --durability always (one fdatasync per message, as Postfix)
  ringmta-none    ringmta-relay --durability none   (no sync: the cost of durability)
  postfix         a private Postfix instance (harness/postfix_peer.py) holding every message
                  in its hold queue: accepted and stored, nothing delivered
This is an accept-only comparison (the relay gets no route, so it keeps what it accepts): the same
ringmta-loadgen closed loop (default 50 reused connections, 1 KiB, one recipient) against
each. For every run: accepted msg/s and the end-of-data -> 250 latency (p50, p99) from the
loadgen, the server's CPU time per stored message (ringmta: /proc/PID/stat of the relay;
Postfix: master + every daemon of the instance, reaped ones included), the loadgen's own CPU,
and the accounting: messages the loadgen saw accepted (warm-up included) == messages in the
spool (`ringmta-relay queue`) or in Postfix's queue (queue files, and `postqueue -p`).
Rounds alternate the servers (the order rotates each round) so machine noise hits all alike;
medians, spreads and the ratios are reported:
  ringmta batch / Postfix accept rate (the target is >= 20), always / Postfix, none / batch.

    /usr/bin/python3 harness/bench_relay_accept.py --duration 4 --warmup 1 --rounds 3

Writes results/runs/bench-relay-accept-<time>.json (ignored by git). Exit 0 when every run
worked and every message was accounted for (Postfix not installed: reported as skipped),
1 when a run failed (a server died, loadgen errors or refusals, stored != accepted), 2 on bad
usage or missing binaries.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postfix_peer  # noqa: E402  (harness/postfix_peer.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")
RINGMTA = ("ringmta-batch", "ringmta-always", "ringmta-none")
ALL = RINGMTA + ("postfix",)


class RunFailed(RuntimeError):
    pass


class UsageError(RuntimeError):
    pass


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_banner(port, timeout=10.0, alive=lambda: True):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not alive():
            raise RunFailed(f"the server on port {port} exited during start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RunFailed(f"no SMTP banner on port {port}")


def fs_of(path):
    """(mount point, fs type) holding path."""
    path = os.path.realpath(path)
    best = ("/", "?")
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                best = (mnt, parts[2])
    return best


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


def run_loadgen(args, port, run_dir, cpu):
    """Run the loadgen against port; cpu() is the server's CPU seconds so far.

    Returns (loadgen JSON, command, CPU figures): the server's CPU over the whole loadgen
    run (connection set-up and Postfix's process start-up included) and over the steady
    part, from the end of the warm-up to shortly before the loadgen stops starting messages,
    with the messages accepted in that window (from the loadgen's per-second timeline).
    """
    json_path = os.path.join(run_dir, "loadgen.json")
    cmd = loadgen_cmd(args, port, json_path)
    limit = (args.duration or 600) + args.warmup + 4 * args.reply_timeout + 60
    samples = []
    c_start = cpu()
    t_start = time.time()
    with open(os.path.join(run_dir, "loadgen.txt"), "w") as out_f:
        child = subprocess.Popen(cmd, stdout=out_f, stderr=subprocess.STDOUT)
        try:
            if not args.messages:
                marks = [t_start + max(args.warmup, 0.2), t_start + args.duration - 0.1]
                for mark in marks:
                    while child.poll() is None and time.time() < mark:
                        time.sleep(min(0.01, max(0.0, mark - time.time())))
                    if child.poll() is not None:
                        break
                    samples.append((time.time(), cpu()))
            child.wait(timeout=limit)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    c_end = cpu()
    with open(os.path.join(run_dir, "loadgen.txt"), errors="replace") as f:
        text = f.read()
    if child.returncode == 2:
        raise UsageError(f"ringmta-loadgen refused its arguments: {text.strip()[-400:]}")
    if child.returncode != 0:
        raise RunFailed(f"ringmta-loadgen exit {child.returncode}: {text.strip()[-400:]}")
    with open(json_path) as f:
        lg = json.load(f)
    cpu_fig = {"server_cpu_s": c_end - c_start, "steady_cpu_s": None,
               "steady_window_s": None, "steady_accepted": None}
    if len(samples) == 2 and samples[1][0] > samples[0][0]:
        # Messages accepted in the window, from the timeline rows (by finishing second),
        # each row weighted by its overlap with the window.
        w0 = samples[0][0] - lg["start_unix_ms"] / 1000.0
        w1 = samples[1][0] - lg["start_unix_ms"] / 1000.0
        acc = 0.0
        for row in lg["timeline"]:
            lo, hi = row["second"], row["second"] + 1
            acc += row["accepted"] * max(0.0, min(hi, w1) - max(lo, w0))
        cpu_fig.update(steady_cpu_s=samples[1][1] - samples[0][1], steady_window_s=w1 - w0,
                       steady_accepted=round(acc))
    return lg, cmd, cpu_fig


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


def check_accounting(res, stored, what, problems):
    res["stored"] = stored
    acc = res["accepted_incl_warmup"]
    if stored < acc:
        problems.append(f"LOST: the loadgen saw {acc} messages accepted, {what} holds {stored}")
    elif stored > acc:
        problems.append(f"{what} holds {stored} messages, the loadgen saw {acc} accepted: "
                        f"{stored - acc} stored but not acknowledged")


def spool_count(args, spool):
    out = subprocess.run([args.relay_bin, "queue", "--spool", spool], capture_output=True,
                         text=True, timeout=300)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    parts = last.split()
    if out.returncode != 0 or len(parts) < 3 or parts[0] != "--" or parts[2] != "messages,":
        raise RunFailed(f"ringmta-relay queue --spool {spool}: exit {out.returncode}, last line "
                        f"{last!r}: {out.stderr.strip()[-300:]}")
    return int(parts[1]), last


def stop_relay(proc):
    """SIGTERM, then SIGKILL after 15 s. Returns (exit code, seconds to exit)."""
    t0 = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode, time.monotonic() - t0


def run_ringmta(system, args, run_dir):
    mode = system.split("-", 1)[1]
    spool = os.path.join(run_dir, "spool")
    port = postfix_peer.free_port()
    cmd = [args.relay_bin, "--listen", f"127.0.0.1:{port}", "--spool", spool,
           "--durability", mode, "--threads", str(args.relay_threads)] + args.relay_arg
    problems = []
    log_path = os.path.join(run_dir, "relay.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 15
        while True:
            with open(log_path, errors="replace") as f:
                if "listening on" in f.read():
                    break
            if proc.poll() is not None or time.monotonic() > end:
                with open(log_path, errors="replace") as f:
                    raise RunFailed(f"{system}: no ready line (exit {proc.poll()}): "
                                    f"{f.read().strip()[-400:]}")
            time.sleep(0.02)
        wait_banner(port, alive=lambda: proc.poll() is None)
        last = [0.0]

        def cpu():
            try:
                last[0] = proc_cpu(proc.pid)   # a zombie still has its figures
            except OSError:
                pass
            return last[0]
        try:
            lg, lg_cmd, cpu_fig = run_loadgen(args, port, run_dir, cpu)
        except RunFailed as e:
            if proc.poll() is not None:
                raise RunFailed(f"{e}; ringmta-relay exited with code {proc.returncode} "
                                f"during the run") from None
            raise
        if proc.poll() is not None:
            problems.append(f"ringmta-relay exited with code {proc.returncode} during the run")
    finally:
        rc, stop_s = stop_relay(proc)
    if rc != 0 and not problems:
        problems.append(f"ringmta-relay exit code {rc} after SIGTERM")
    res = figures(lg)
    res.update(system=system, server_cmd=cmd, loadgen_cmd=lg_cmd, relay_stop_s=stop_s,
               relay_exit=rc)
    check_outcomes(res, problems)
    stored, last = spool_count(args, spool)
    res["spool_summary"] = last
    check_accounting(res, stored, "the spool", problems)
    res.update(cpu_fig)
    with open(log_path, errors="replace") as f:
        res["relay_log_tail"] = f.read().strip().splitlines()[-5:]
    if not args.keep:
        shutil.rmtree(spool, ignore_errors=True)
    res["problems"] = problems
    return res


def run_postfix(args, run_dir):
    problems = []
    pf = postfix_peer.PostfixPeer(os.path.join(run_dir, "postfix"), hold=True,
                                  process_limit=max(200, 4 * args.connections))
    with pf:
        lg, lg_cmd, cpu_fig = run_loadgen(args, pf.port, run_dir, pf.cpu_seconds)
        nproc = len(pf.processes())
        counts = pf.queue_counts()
        try:
            via_postqueue = pf.postqueue_count()
        except postfix_peer.PostfixError as e:
            via_postqueue = None
            problems.append(str(e))
    res = figures(lg)
    res.update(system="postfix", postfix_version=pf.version, config_dir=pf.config_dir,
               loadgen_cmd=lg_cmd, postfix_processes_at_end=nproc, queue_counts=counts,
               postqueue_count=via_postqueue)
    check_outcomes(res, problems)
    stored = sum(counts.values())
    check_accounting(res, stored, "Postfix's queue", problems)
    if via_postqueue is not None and via_postqueue != stored:
        problems.append(f"postqueue -p says {via_postqueue} messages, queue files {stored}")
    if counts["hold"] != stored:
        problems.append(f"messages outside the hold queue: {counts}")
    res.update(cpu_fig)
    res["maillog_problems"] = pf.maillog_problems()
    if any(" fatal:" in l or " panic:" in l for l in res["maillog_problems"]):
        problems.append("Postfix logged fatal/panic: " + res["maillog_problems"][-1])
    if not args.keep:
        pf.remove_queue()
        try:
            os.remove(pf.maillog)
        except OSError:
            pass
    res["problems"] = problems
    return res


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


def parse_systems(text):
    out = []
    for s in text.split(","):
        s = s.strip()
        if s in ("batch", "always", "none"):
            s = "ringmta-" + s
        if s not in ALL:
            raise argparse.ArgumentTypeError(f"unknown system {s!r} (batch, always, none, "
                                             f"postfix)")
        out.append(s)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=4.0,
                   help="seconds per run, warm-up included (default 4)")
    p.add_argument("--warmup", type=float, default=1.0,
                   help="seconds at the start of each run left out of rate and latency "
                        "(default 1: Postfix starts its smtpd processes then)")
    p.add_argument("--messages", type=int, default=0,
                   help="a fixed message count per run instead of --duration")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--systems", type=parse_systems, default=list(ALL),
                   help="comma-separated: batch,always,none,postfix (default all)")
    p.add_argument("--relay-threads", type=int, default=2)
    p.add_argument("--relay-arg", action="append", default=[],
                   help="extra ringmta-relay argument, repeatable, e.g. "
                        "--relay-arg=--batch-max-wait=0us (recorded in the JSON)")
    p.add_argument("--loadgen-threads", type=int, default=1)
    p.add_argument("--reply-timeout", type=float, default=5.0,
                   help="loadgen --timeout in seconds: a reply later than this is an error")
    p.add_argument("--target-ratio", type=float, default=20.0,
                   help="ringmta batch / Postfix accept rate to report against (default 20)")
    p.add_argument("--fail-below-target", action="store_true",
                   help="exit 1 when the batch / Postfix ratio is below --target-ratio")
    p.add_argument("--keep", action="store_true",
                   help="keep spools, Postfix queues and maillogs in the run folder")
    p.add_argument("--relay-bin", default=os.path.join(ROOT, "build", "bin", "ringmta-relay"))
    p.add_argument("--loadgen-bin",
                   default=os.path.join(ROOT, "build", "bin", "ringmta-loadgen"))
    p.add_argument("--out-dir", default=os.path.join(ROOT, "results", "runs"))
    args = p.parse_args()
    if args.rounds < 1 or args.connections < 1 or args.size < 1 or args.duration < 0 \
            or args.warmup < 0 or args.messages < 0 or args.reply_timeout <= 0 \
            or (not args.messages and args.duration <= args.warmup):
        print("bench_relay_accept: need --rounds >= 1, --connections >= 1, --size >= 1, "
              "--reply-timeout > 0 and --duration > --warmup (or --messages)", file=sys.stderr)
        return 2
    for path in (args.relay_bin, args.loadgen_bin):
        if not os.access(path, os.X_OK):
            print(f"bench_relay_accept: {path} is not there (cmake --preset release && "
                  f"cmake --build --preset release)", file=sys.stderr)
            return 2
    systems = list(dict.fromkeys(args.systems))
    postfix_skipped = None
    if "postfix" in systems:
        try:
            postfix_peer.check_installed()
            if os.geteuid() != 0:
                raise postfix_peer.PostfixNotInstalled(
                    "postfix not usable: a private instance needs root")
        except postfix_peer.PostfixNotInstalled as e:
            postfix_skipped = str(e)
            print(f"{e}: skipped", flush=True)
            systems.remove("postfix")
    if not systems:
        print("bench_relay_accept: nothing to run", file=sys.stderr)
        return 2

    # SIGTERM unwinds like Ctrl-C, so every child (relay, loadgen, Postfix) is stopped.
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    stamp = time.strftime("%Y%m%dT%H%M%S")
    run_root = os.path.join(args.out_dir, f"bench-relay-accept-{stamp}")
    os.makedirs(run_root, exist_ok=True)
    mount, fstype = fs_of(run_root)
    load = (f"{args.messages} messages" if args.messages else
            f"{args.duration:g}s ({args.warmup:g}s warm-up)")
    print(f"spools and Postfix queue under {os.path.relpath(run_root, ROOT)} "
          f"({fstype} on {mount}); {load}, {args.connections} connections, {args.size} B, "
          f"1 recipient; relay --threads {args.relay_threads} {' '.join(args.relay_arg)}",
          flush=True)
    runs = []
    interrupted = False
    try:
        for r in range(args.rounds):
            order = systems[r % len(systems):] + systems[:r % len(systems)]
            for system in order:
                run_dir = os.path.join(run_root, f"r{r}-{system}")
                os.makedirs(run_dir)
                try:
                    if system == "postfix":
                        res = run_postfix(args, run_dir)
                    else:
                        res = run_ringmta(system, args, run_dir)
                except (RunFailed, postfix_peer.PostfixError,
                        subprocess.TimeoutExpired) as e:
                    res = {"system": system, "problems": [f"run failed: {e}"]}
                res["round"] = r
                res["loadavg_1m_after"] = os.getloadavg()[0]
                runs.append(res)
                res["server_cpu_us_per_msg_whole_run"] = (
                    res["server_cpu_s"] * 1e6 / res["stored"]
                    if res.get("server_cpu_s") is not None and res.get("stored") else None)
                res["server_cpu_us_per_msg"] = (
                    res["steady_cpu_s"] * 1e6 / res["steady_accepted"]
                    if res.get("steady_cpu_s") is not None and res.get("steady_accepted")
                    else res["server_cpu_us_per_msg_whole_run"])
                cpu_us = res["server_cpu_us_per_msg"]
                if "rate_msg_s" in res:
                    print(f"round {r} {system:14s} {res['rate_msg_s']:9.0f} msg/s  "
                          f"p50 {fmt(res['p50_ms'], '7.2f')} ms  p99 {fmt(res['p99_ms'], '7.2f')}"
                          f" ms  CPU {fmt(cpu_us, '6.0f')} us/msg (whole run "
                          f"{fmt(res['server_cpu_us_per_msg_whole_run'], '.0f')})  "
                          f"stored {res['stored']}"
                          f"{'  ' + res['warning'] if res.get('warning') else ''}", flush=True)
                for prob in res["problems"]:
                    print(f"round {r} {system:14s} PROBLEM: {prob}", flush=True)
    except UsageError as e:
        print(f"bench_relay_accept: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True
        print("bench_relay_accept: interrupted; every child stopped", file=sys.stderr)
        if not args.keep:   # the interrupted run's spool or queue (failed runs keep theirs)
            for d in os.listdir(run_root):
                shutil.rmtree(os.path.join(run_root, d, "spool"), ignore_errors=True)
                shutil.rmtree(os.path.join(run_root, d, "postfix", "queue"),
                              ignore_errors=True)

    med = {}
    for system in systems:
        mine = [x for x in runs if x["system"] == system and "rate_msg_s" in x]
        med[system] = {k: spread([x.get(k) for x in mine])
                       for k in ("rate_msg_s", "p50_ms", "p99_ms", "server_cpu_us_per_msg",
                                 "server_cpu_us_per_msg_whole_run", "loadgen_capacity_pct")}
        med[system]["runs"] = len(mine)

    def m(system, key):
        return med.get(system, {}).get(key, {}).get("median")
    ratios = {
        "batch_vs_postfix_rate": ratio(m("ringmta-batch", "rate_msg_s"),
                                       m("postfix", "rate_msg_s")),
        "always_vs_postfix_rate": ratio(m("ringmta-always", "rate_msg_s"),
                                        m("postfix", "rate_msg_s")),
        "none_vs_batch_rate": ratio(m("ringmta-none", "rate_msg_s"),
                                    m("ringmta-batch", "rate_msg_s")),
        "postfix_vs_batch_cpu_per_msg": ratio(m("postfix", "server_cpu_us_per_msg"),
                                              m("ringmta-batch", "server_cpu_us_per_msg")),
        "postfix_vs_batch_p99": ratio(m("postfix", "p99_ms"), m("ringmta-batch", "p99_ms")),
    }
    # The same ratios round by round (servers of one round ran back to back, so drift in the
    # machine's load cancels better), with their median and range.
    per_round = {}
    pairs = {"batch_vs_postfix_rate": ("ringmta-batch", "postfix"),
             "always_vs_postfix_rate": ("ringmta-always", "postfix"),
             "none_vs_batch_rate": ("ringmta-none", "ringmta-batch")}
    for name, (a, b) in pairs.items():
        vals = []
        for r in range(args.rounds):
            ra = [x.get("rate_msg_s") for x in runs if x["round"] == r and x["system"] == a]
            rb = [x.get("rate_msg_s") for x in runs if x["round"] == r and x["system"] == b]
            if ra and rb and ra[0] is not None and rb[0]:
                vals.append(ra[0] / rb[0])
        if vals:
            per_round[name] = {"values": vals, **spread(vals)}
    target_met = (ratios["batch_vs_postfix_rate"] >= args.target_ratio
                  if ratios["batch_vs_postfix_rate"] is not None else None)

    print(f"\nmedian of {args.rounds} rounds (min-max), {load}, {args.connections} "
          f"connections, {args.size} B, 1 recipient:")
    print(f"  {'server':14s} {'accepted msg/s (min-max)':>26s} {'p50 ms':>8s} {'p99 ms':>8s} "
          f"{'CPU us/msg':>11s} {'(whole run)':>11s}")
    for system in systems:
        s = med[system]
        if not s["runs"]:
            print(f"  {system:14s} {'no run completed':>26s}")
            continue
        rate = s["rate_msg_s"]
        rate_txt = (f"{fmt(rate['median'], '.0f')} ({fmt(rate['min'], '.0f')}-"
                    f"{fmt(rate['max'], '.0f')})")
        print(f"  {system:14s} {rate_txt:>26s} {fmt(s['p50_ms']['median'], '8.2f')} "
              f"{fmt(s['p99_ms']['median'], '8.2f')} "
              f"{fmt(s['server_cpu_us_per_msg']['median'], '11.0f')} "
              f"{fmt(s['server_cpu_us_per_msg_whole_run']['median'], '11.0f')}")
    if postfix_skipped:
        print(f"  postfix        {postfix_skipped}: skipped")
    for k, v in ratios.items():
        pr = per_round.get(k)
        extra = (f"   (round by round: median {pr['median']:.2f}, {pr['min']:.2f}-{pr['max']:.2f})"
                 if pr else "")
        print(f"  {k}: {fmt(v, '.2f')}{extra}")
    if target_met is not None:
        print(f"  target batch / Postfix >= {args.target_ratio:g}: "
              f"{'met' if target_met else 'NOT met'}")

    problems = [f"round {x['round']} {x['system']}: {p}" for x in runs for p in x["problems"]]
    if interrupted:
        problems.append("interrupted")
    out = os.path.join(args.out_dir, f"bench-relay-accept-{stamp}.json")
    with open(out, "w") as f:
        json.dump({"schema": "bench-relay-accept/1", "args": vars(args),
                   "command": " ".join(sys.argv), "run_folder": run_root,
                   "filesystem": {"mount": mount, "type": fstype}, "cpus": os.cpu_count(),
                   "postfix_skipped": postfix_skipped, "runs": runs, "median": med,
                   "ratios": ratios, "ratios_per_round": per_round,
                   "target_ratio": args.target_ratio,
                   "target_met": target_met, "problems": problems}, f, indent=1)
    print(f"  written to {os.path.relpath(out, ROOT)}")
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for prob in problems:
            print(f"  {prob}", file=sys.stderr)
        return 1
    if args.fail_below_target and target_met is False:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
