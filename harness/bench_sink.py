#!/usr/bin/python3
"""Side-by-side: ringmta-sink (discard) against Postfix's smtp-sink, same client, same load.

The client is Postfix's smtp-source (-d: reuse connections, -s sessions, -l message size,
one recipient). For each sink and round it measures the wall time of the run, the sink's CPU
time (user + system, from /proc/PID/stat) and the message rate; rounds alternate between the
sinks so machine noise hits both alike, and the median round is reported with the ratios.

    /usr/bin/python3 harness/bench_sink.py --messages 50000 --sessions 50 --rounds 3

Writes a JSON record to results/runs/bench-sink-<time>.json (ignored by git). Exit code 0
when both ran, 1 when a run failed, 2 on bad usage.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ringmta_bench import procs  # noqa: E402
from side_by_side import (ROOT, missing_binary, start_test_sink, stop_popen,  # noqa: E402
                          write_record)


def run_one(kind, args):
    proc, port = start_test_sink(kind, args.sink_bin, args.smtp_sink, args.threads)
    try:
        u0, s0 = procs.proc_times_s(proc.pid)
        t0 = time.monotonic()
        client = subprocess.run(
            [args.smtp_source, "-d", "-s", str(args.sessions), "-m", str(args.messages),
             "-l", str(args.size), f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=args.timeout)
        wall = time.monotonic() - t0
        u1, s1 = procs.proc_times_s(proc.pid)
        if client.returncode != 0:
            raise RuntimeError(f"smtp-source failed against {kind}: {client.stderr.decode()}")
    finally:
        stop_popen(proc, 10)
    user, system = u1 - u0, s1 - s0
    return {
        "sink": kind, "messages": args.messages, "wall_s": wall,
        "rate_msg_s": args.messages / wall, "cpu_user_s": user, "cpu_system_s": system,
        "cpu_us_per_msg": (user + system) * 1e6 / args.messages,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=50000)
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="ringmta-sink worker threads")
    p.add_argument("--sink-bin", default=os.path.join(ROOT, "build", "bin", "ringmta-sink"))
    p.add_argument("--smtp-sink", default=shutil.which("smtp-sink") or "/usr/sbin/smtp-sink")
    p.add_argument("--smtp-source",
                   default=shutil.which("smtp-source") or "/usr/sbin/smtp-source")
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args()
    if missing_binary("bench_sink", (args.sink_bin, args.smtp_sink, args.smtp_source),
                      "build with cmake --preset release && cmake --build --preset release; "
                      "install postfix"):
        return 2
    runs = []
    try:
        for r in range(args.rounds):
            for kind in ("ringmta-sink", "smtp-sink"):
                res = run_one(kind, args)
                res["round"] = r
                runs.append(res)
                print(f"round {r} {kind:13s} {res['rate_msg_s']:9.0f} msg/s  "
                      f"{res['cpu_us_per_msg']:6.1f} us CPU/msg "
                      f"(user {res['cpu_user_s']:.2f} s, system {res['cpu_system_s']:.2f} s)",
                      flush=True)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"bench_sink: {e}", file=sys.stderr)
        return 1
    med = {}
    for kind in ("ringmta-sink", "smtp-sink"):
        mine = [x for x in runs if x["sink"] == kind]
        med[kind] = {k: statistics.median(x[k] for x in mine)
                     for k in ("rate_msg_s", "cpu_us_per_msg", "cpu_user_s", "cpu_system_s")}
    cpu_ratio = med["ringmta-sink"]["cpu_us_per_msg"] / med["smtp-sink"]["cpu_us_per_msg"]
    rate_ratio = med["ringmta-sink"]["rate_msg_s"] / med["smtp-sink"]["rate_msg_s"]
    print(f"\nmedian of {args.rounds} rounds, {args.messages} x {args.size} B, "
          f"smtp-source -d -s {args.sessions}:")
    for kind, m in med.items():
        print(f"  {kind:13s} {m['rate_msg_s']:9.0f} msg/s  {m['cpu_us_per_msg']:6.1f} us CPU/msg")
    print(f"  ratio ringmta-sink / smtp-sink: CPU per message {cpu_ratio:.2f}, "
          f"rate {rate_ratio:.2f}")
    write_record(os.path.join(ROOT, "results", "runs",
                              time.strftime("bench-sink-%Y%m%dT%H%M%S.json")),
                 {"args": vars(args), "runs": runs, "median": med,
                  "ratio_cpu_per_msg": cpu_ratio, "ratio_rate": rate_ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
