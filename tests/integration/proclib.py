"""What every integration-test process wrapper shares: where the binaries are, how they are
started (dying with the test run), stopped (SIGTERM, then SIGKILL) and checked for sanitizer
reports. conftest (sinks), loadgenlib and relaylib build on it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "ThreadSanitizer")


def bin_dir(env: str, default: str) -> Path:
    p = Path(os.environ.get(env, default))
    return p if p.is_absolute() else REPO / p


def asan_binary(name: str) -> Path:
    """The sanitizer build the tests run by default ($RINGMTA_BIN)."""
    return bin_dir("RINGMTA_BIN", "build/asan/bin") / name


def release_binary(name: str) -> Path:
    """The optimized build, for tests that need its speed ($RINGMTA_RELEASE_BIN)."""
    return bin_dir("RINGMTA_RELEASE_BIN", "build/bin") / name


def launcher() -> list[str]:
    # setpriv execs the program in place (same PID) with SIGKILL as its parent-death signal.
    sp = shutil.which("setpriv")
    return [sp, "--pdeathsig", "KILL", "--"] if sp else []


def sanitizer_report(text: str) -> bool:
    return any(mark in text for mark in SANITIZER_MARKS)


def check_sanitizers(text: str, what: str) -> None:
    assert not sanitizer_report(text), f"sanitizer report from {what}:\n{text[-6000:]}"


def stop_process(proc: subprocess.Popen, timeout: float) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL. True when it had to be killed."""
    if proc.poll() is not None:
        return False
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return True
