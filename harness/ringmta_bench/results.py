"""result.json: the skeleton of a result (schema "ringmta-bench/result" version 1, see
docs/bench-results.md), the machine it ran on, the git commit, and the overall verdict."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from pathlib import Path

from .systems import ROOT

SCHEMA = "ringmta-bench/result"
SCHEMA_VERSION = 1
PERCENTILES = ["p50", "p75", "p90", "p99", "p99.9", "p99.99", "max"]


def _git(*args: str) -> str | None:
    try:
        p = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def mount_of(path: Path | str) -> tuple[str, str]:
    """(mount point, file system type) holding path (from /proc/mounts, longest mount point)."""
    path = os.path.realpath(path)
    best, kind = "/", "unknown"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mnt = parts[1].replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, kind = mnt, parts[2]
    except OSError:
        pass
    return best, kind


def machine(out_dir: Path) -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1])
    except OSError:
        pass
    return {"cpu_model": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
            "fs_type": mount_of(out_dir)[1], "hostname": socket.gethostname(), "mem_kib": mem}


def durability_of(sc: dict, systems: list[str]) -> str:
    """The ringmta durability mode(s) of the run: 'batch', or 'batch,always,none' for variants;
    'n/a' when no ringmta system ran."""
    from .scenario import ringmta_settings, system_base
    modes = []
    for s in systems:
        if system_base(s) == "ringmta":
            m = ringmta_settings(sc, s)["durability"]
            if m not in modes:
                modes.append(m)
    return ",".join(modes) if modes else "n/a"


def new_result(sc: dict, systems: list[str], out_dir: Path) -> dict:
    commit = _git("rev-parse", "HEAD") or "unknown"
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "scenario_name": sc["name"],
        "scenario": sc,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": commit,
        "git_dirty": bool(status) if status is not None else False,
        "machine": machine(out_dir),
        "durability": durability_of(sc, systems),
        "ok": False,
        "failures": [],
        "percentiles": PERCENTILES,
        "systems": {},
    }


def finish(result: dict) -> None:
    """ok and failures over every run of every system ("SYSTEM rep N: reason")."""
    fails = []
    for name, s in result["systems"].items():
        for r in s["runs"]:
            for f in r["failures"]:
                fails.append(f"{name} rep {r['rep'] + 1}: {f}")
    ran = any(s["runs"] for s in result["systems"].values())
    if not ran:
        fails.append("no system could run (all skipped)")
    result["failures"] = fails
    result["ok"] = not fails
    result["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
