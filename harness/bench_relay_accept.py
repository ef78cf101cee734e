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
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postfix_peer  # noqa: E402  (harness/postfix_peer.py)
from ringmta_bench import procs  # noqa: E402
from side_by_side import (ROOT, RunFailed, UsageError, check_maillog,  # noqa: E402
                          check_outcomes, cpu_reader, figures, fmt, loadgen_cmd,
                          make_run_root, median_of, medians, missing_binary, per_round_text,
                          postfix_skip_reason, print_median_table, print_problems, ratio,
                          ratios_per_round, remove_postfix_files, remove_queues, rounds_record,
                          run_loadgen_child, run_problems, run_rounds, spool_count,
                          start_ready, stop_popen, systems_arg, unwind_on, write_record)

RINGMTA = ("ringmta-batch", "ringmta-always", "ringmta-none")
ALL = RINGMTA + ("postfix",)


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

    def sample(child):
        if not args.messages:
            marks = [t_start + max(args.warmup, 0.2), t_start + args.duration - 0.1]
            for mark in marks:
                while child.poll() is None and time.time() < mark:
                    time.sleep(min(0.01, max(0.0, mark - time.time())))
                if child.poll() is not None:
                    break
                samples.append((time.time(), cpu()))
    lg = run_loadgen_child(cmd, run_dir, json_path, limit, during=sample)
    c_end = cpu()
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


def check_accounting(res, stored, what, problems):
    res["stored"] = stored
    acc = res["accepted_incl_warmup"]
    if stored < acc:
        problems.append(f"LOST: the loadgen saw {acc} messages accepted, {what} holds {stored}")
    elif stored > acc:
        problems.append(f"{what} holds {stored} messages, the loadgen saw {acc} accepted: "
                        f"{stored - acc} stored but not acknowledged")


def run_ringmta(system, args, run_dir):
    mode = system.split("-", 1)[1]
    spool = os.path.join(run_dir, "spool")
    port = procs.free_port()
    cmd = [args.relay_bin, "--listen", f"127.0.0.1:{port}", "--spool", spool,
           "--durability", mode, "--threads", str(args.relay_threads)] + args.relay_arg
    problems = []
    log_path = os.path.join(run_dir, "relay.log")
    proc, _ = start_ready(cmd, log_path, system)
    try:
        procs.wait_banner(port, 10.0, alive=lambda: proc.poll() is None, what="ringmta-relay")
        cpu = cpu_reader(proc.pid)
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
        rc, stop_s = stop_popen(proc)
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
    check_maillog(pf, res, problems)
    if not args.keep:
        remove_postfix_files(pf)
    res["problems"] = problems
    return res


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
    p.add_argument("--systems", default=list(ALL),
                   type=systems_arg(ALL, "batch, always, none, postfix",
                                    ("batch", "always", "none")),
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
    if missing_binary("bench_relay_accept", (args.relay_bin, args.loadgen_bin),
                      "cmake --preset release && cmake --build --preset release"):
        return 2
    systems = list(dict.fromkeys(args.systems))
    postfix_skipped = postfix_skip_reason(systems)
    if not systems:
        print("bench_relay_accept: nothing to run", file=sys.stderr)
        return 2

    # SIGTERM unwinds like Ctrl-C, so every child (relay, loadgen, Postfix) is stopped.
    unwind_on(signal.SIGTERM)

    stamp, run_root, mount, fstype = make_run_root(args.out_dir, "bench-relay-accept")
    load = (f"{args.messages} messages" if args.messages else
            f"{args.duration:g}s ({args.warmup:g}s warm-up)")
    print(f"spools and Postfix queue under {os.path.relpath(run_root, ROOT)} "
          f"({fstype} on {mount}); {load}, {args.connections} connections, {args.size} B, "
          f"1 recipient; relay --threads {args.relay_threads} {' '.join(args.relay_arg)}",
          flush=True)

    def run_one(system, run_dir, r):
        if system == "postfix":
            return run_postfix(args, run_dir)
        return run_ringmta(system, args, run_dir)

    def show(res, r, system):
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
    runs = []
    interrupted = False
    try:
        run_rounds(runs, systems, args.rounds, run_root, run_one,
                   (RunFailed, procs.StartFailed, postfix_peer.PostfixError,
                    subprocess.TimeoutExpired), show, 14)
    except UsageError as e:
        print(f"bench_relay_accept: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True
        print("bench_relay_accept: interrupted; every child stopped", file=sys.stderr)
        if not args.keep:   # the interrupted run's spool or queue (failed runs keep theirs)
            remove_queues(run_root)

    med = medians(runs, systems, ("rate_msg_s", "p50_ms", "p99_ms", "server_cpu_us_per_msg",
                                  "server_cpu_us_per_msg_whole_run", "loadgen_capacity_pct"),
                  lambda x: "rate_msg_s" in x)

    def m(system, key):
        return median_of(med, system, key)
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
    per_round = ratios_per_round(runs, args.rounds,
                                 {"batch_vs_postfix_rate": ("ringmta-batch", "postfix"),
                                  "always_vs_postfix_rate": ("ringmta-always", "postfix"),
                                  "none_vs_batch_rate": ("ringmta-none", "ringmta-batch")})
    target_met = (ratios["batch_vs_postfix_rate"] >= args.target_ratio
                  if ratios["batch_vs_postfix_rate"] is not None else None)

    print(f"\nmedian of {args.rounds} rounds (min-max), {load}, {args.connections} "
          f"connections, {args.size} B, 1 recipient:")
    print_median_table(systems, med, "server", 14, "accepted msg/s (min-max)", 26, [
        ("p50 ms", 8, "p50_ms", lambda v: fmt(v, "8.2f")),
        ("p99 ms", 8, "p99_ms", lambda v: fmt(v, "8.2f")),
        ("CPU us/msg", 11, "server_cpu_us_per_msg", lambda v: fmt(v, "11.0f")),
        ("(whole run)", 11, "server_cpu_us_per_msg_whole_run", lambda v: fmt(v, "11.0f"))])
    if postfix_skipped:
        print(f"  postfix        {postfix_skipped}: skipped")
    for k, v in ratios.items():
        print(f"  {k}: {fmt(v, '.2f')}{per_round_text(per_round.get(k))}")
    if target_met is not None:
        print(f"  target batch / Postfix >= {args.target_ratio:g}: "
              f"{'met' if target_met else 'NOT met'}")

    problems = run_problems(runs, interrupted)
    write_record(os.path.join(args.out_dir, f"bench-relay-accept-{stamp}.json"),
                 rounds_record("bench-relay-accept/1", args, run_root, (mount, fstype),
                               postfix_skipped, runs, med, ratios, per_round,
                               target_ratio=args.target_ratio, target_met=target_met,
                               problems=problems))
    if print_problems(problems):
        return 1
    if args.fail_below_target and target_met is False:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
