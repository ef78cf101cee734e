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
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[11], fields[12] = utime, stime (fields 14 and 15 of the whole line)
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(512)  # the banner
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


def run_one(kind, args):
    port = free_port()
    if kind == "ringmta-sink":
        cmd = [args.sink_bin, "--listen", f"127.0.0.1:{port}", "--threads", str(args.threads)]
    else:
        cmd = [args.smtp_sink, "-u", "nobody", "-c", f"127.0.0.1:{port}", "1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port)
        u0, s0 = cpu_seconds(proc.pid)
        t0 = time.monotonic()
        client = subprocess.run(
            [args.smtp_source, "-d", "-s", str(args.sessions), "-m", str(args.messages),
             "-l", str(args.size), f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=args.timeout)
        wall = time.monotonic() - t0
        u1, s1 = cpu_seconds(proc.pid)
        if client.returncode != 0:
            raise RuntimeError(f"smtp-source failed against {kind}: {client.stderr.decode()}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
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
    for path in (args.sink_bin, args.smtp_sink, args.smtp_source):
        if not os.access(path, os.X_OK):
            print(f"bench_sink: {path} is not there (build with cmake --preset release && "
                  f"cmake --build --preset release; install postfix)", file=sys.stderr)
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
    out_dir = os.path.join(ROOT, "results", "runs")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, time.strftime("bench-sink-%Y%m%dT%H%M%S.json"))
    with open(out, "w") as f:
        json.dump({"args": vars(args), "runs": runs, "median": med,
                   "ratio_cpu_per_msg": cpu_ratio, "ratio_rate": rate_ratio}, f, indent=1)
    print(f"  written to {os.path.relpath(out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
