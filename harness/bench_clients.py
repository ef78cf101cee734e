#!/usr/bin/python3
"""Side-by-side: load clients against sinks, same load, one run.

Pairs (client -> sink), each run for the same number of 1-KiB, one-recipient messages over
the same number of reused connections:
  ringmta-loadgen -> ringmta-sink     ringmta-loadgen -> smtp-sink
  smtp-source     -> ringmta-sink     smtp-source     -> smtp-sink
For every run: the wall time and message rate, the client's CPU time (user + system, from
wait4), the sink's CPU time (from /proc/PID/stat). Rounds alternate the pairs so machine
noise hits all alike; the median round is reported with the ratios that matter:
  loadgen CPU/msg vs smtp-source CPU/msg (same sink), and the rate each client reaches
  against each sink.

    /usr/bin/python3 harness/bench_clients.py --messages 50000 --connections 50 --rounds 3

Writes results/runs/bench-clients-<time>.json (ignored by git). Exit 0 when every run
worked, 1 if one failed, 2 on bad usage.
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


def client_cmd(kind, port, args):
    if kind == "ringmta-loadgen":
        return [args.loadgen_bin, "--target", f"127.0.0.1:{port}", "--connections",
                str(args.connections), "--messages", str(args.messages), "--size",
                str(args.size), "--threads", str(args.loadgen_threads), "--no-progress"]
    return [args.smtp_source, "-d", "-s", str(args.connections), "-m", str(args.messages),
            "-l", str(args.size), f"127.0.0.1:{port}"]


def run_pair(client, sink, args):
    sink_proc, port = start_test_sink(sink, args.sink_bin, args.smtp_sink, args.sink_threads)
    try:
        s0 = procs.proc_cpu_s(sink_proc.pid)
        t0 = time.monotonic()
        child = subprocess.Popen(client_cmd(client, port, args), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        deadline = time.monotonic() + args.timeout
        while True:
            pid, status, ru = os.wait4(child.pid, os.WNOHANG)
            if pid != 0:
                break
            if time.monotonic() > deadline:
                child.kill()
                raise RuntimeError(f"{client} -> {sink}: timed out")
            time.sleep(0.01)
        wall = time.monotonic() - t0
        s1 = procs.proc_cpu_s(sink_proc.pid)
        out = child.stdout.read().decode(errors="replace")
        err = child.stderr.read().decode(errors="replace")
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError(f"{client} -> {sink}: exit {code}: {err.strip()[:400]}")
        if client == "ringmta-loadgen" and f"accepted {args.messages}," not in out:
            raise RuntimeError(f"{client} -> {sink}: not every message accepted:\n{out}")
    finally:
        stop_popen(sink_proc, 10)
    client_cpu = ru.ru_utime + ru.ru_stime
    return {
        "client": client, "sink": sink, "messages": args.messages, "wall_s": wall,
        "rate_msg_s": args.messages / wall,
        "client_cpu_s": client_cpu, "client_user_s": ru.ru_utime, "client_system_s": ru.ru_stime,
        "client_cpu_us_per_msg": client_cpu * 1e6 / args.messages,
        "sink_cpu_s": s1 - s0, "sink_cpu_us_per_msg": (s1 - s0) * 1e6 / args.messages,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=50000)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--loadgen-threads", type=int, default=1)
    p.add_argument("--sink-threads", type=int, default=1)
    p.add_argument("--sink-bin", default=os.path.join(ROOT, "build", "bin", "ringmta-sink"))
    p.add_argument("--loadgen-bin", default=os.path.join(ROOT, "build", "bin", "ringmta-loadgen"))
    p.add_argument("--smtp-sink", default=shutil.which("smtp-sink") or "/usr/sbin/smtp-sink")
    p.add_argument("--smtp-source", default=shutil.which("smtp-source") or "/usr/sbin/smtp-source")
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args()
    if missing_binary("bench_clients",
                      (args.sink_bin, args.loadgen_bin, args.smtp_sink, args.smtp_source),
                      "cmake --preset release && cmake --build --preset release; "
                      "postfix installed"):
        return 2
    pairs = [("ringmta-loadgen", "ringmta-sink"), ("smtp-source", "ringmta-sink"),
             ("ringmta-loadgen", "smtp-sink"), ("smtp-source", "smtp-sink")]
    runs = []
    try:
        for r in range(args.rounds):
            for client, sink in pairs:
                res = run_pair(client, sink, args)
                res["round"] = r
                runs.append(res)
                print(f"round {r} {client:15s} -> {sink:12s} {res['rate_msg_s']:8.0f} msg/s  "
                      f"client {res['client_cpu_us_per_msg']:6.1f} us/msg  "
                      f"sink {res['sink_cpu_us_per_msg']:6.1f} us/msg", flush=True)
    except RuntimeError as e:
        print(f"bench_clients: {e}", file=sys.stderr)
        return 1
    med = {}
    for client, sink in pairs:
        mine = [x for x in runs if x["client"] == client and x["sink"] == sink]
        med[f"{client}->{sink}"] = {
            k: statistics.median(x[k] for x in mine)
            for k in ("rate_msg_s", "client_cpu_us_per_msg", "sink_cpu_us_per_msg")}
    print(f"\nmedian of {args.rounds} rounds, {args.messages} x {args.size} B, one recipient, "
          f"{args.connections} reused connections:")
    for key, m in med.items():
        print(f"  {key:32s} {m['rate_msg_s']:8.0f} msg/s  client {m['client_cpu_us_per_msg']:6.1f}"
              f" us/msg  sink {m['sink_cpu_us_per_msg']:6.1f} us/msg")
    lg, ss = med["ringmta-loadgen->ringmta-sink"], med["smtp-source->ringmta-sink"]
    ratios = {
        "loadgen_cpu_per_msg_vs_smtp_source": lg["client_cpu_us_per_msg"] /
                                              ss["client_cpu_us_per_msg"],
        "loadgen_rate_vs_smtp_source": lg["rate_msg_s"] / ss["rate_msg_s"],
        "sink_cpu_per_msg_ringmta_vs_smtp_sink_under_loadgen":
            med["ringmta-loadgen->ringmta-sink"]["sink_cpu_us_per_msg"] /
            med["ringmta-loadgen->smtp-sink"]["sink_cpu_us_per_msg"],
        "loadgen_rate_ringmta_sink_vs_smtp_sink":
            med["ringmta-loadgen->ringmta-sink"]["rate_msg_s"] /
            med["ringmta-loadgen->smtp-sink"]["rate_msg_s"],
    }
    for k, v in ratios.items():
        print(f"  {k}: {v:.2f}")
    write_record(os.path.join(ROOT, "results", "runs",
                              time.strftime("bench-clients-%Y%m%dT%H%M%S.json")),
                 {"args": vars(args), "runs": runs, "median": med, "ratios": ratios})
    return 0


if __name__ == "__main__":
    sys.exit(main())
