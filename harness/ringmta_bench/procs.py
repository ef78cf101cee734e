"""Child processes of a run: free loopback ports, start with the log in the run folder,
readiness (the ready line, then the SMTP banner), /proc CPU and peak RSS, and stop by PID.

Every child is started in its own session (so a terminal's Ctrl-C reaches only the harness,
which then stops the children in order) and, where setpriv exists, with SIGKILL as its
parent-death signal (so even a SIGKILLed harness leaves nothing behind). Each child's PID is
appended to <run folder>/pids as it starts. Children are reaped with wait4(), which also
gives their final CPU time and peak RSS. install_signal_handlers() turns SIGINT/SIGTERM
into an Interrupted exception in the main thread; `with deferred_signals():` holds them back
while the children are being stopped, so a second Ctrl-C cannot cut a clean-up short.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; the run stops and every child is stopped."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StartFailed(RuntimeError):
    """A process did not start or did not become ready in time."""


_deferred: list[int] | None = None


def _on_signal(signum, frame):
    if _deferred is not None:
        _deferred.append(signum)
        return
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


@contextlib.contextmanager
def deferred_signals():
    """Signals during the block are remembered and raised (as Interrupted) after it."""
    global _deferred
    outer = _deferred
    if outer is None:
        _deferred = []
    try:
        yield
    finally:
        if outer is None:
            pending, _deferred = _deferred, None
            if pending:
                raise Interrupted(pending[0])


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launcher() -> list[str]:
    sp = shutil.which("setpriv")
    return [sp, "--pdeathsig", "KILL", "--"] if sp else []


# ---- /proc ------------------------------------------------------------------------------------

def _stat_ticks(path: str) -> tuple[int, int]:
    """(utime, stime) clock ticks of a /proc stat file; OSError or IndexError if unreadable."""
    with open(path) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]), int(rest[12])


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a live process (its threads included), seconds; None if gone."""
    try:
        u, s = _stat_ticks(f"/proc/{pid}/stat")
    except (OSError, IndexError):
        return None
    return (u + s) / TICK


def proc_times_s(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of a live process, apart; None if gone."""
    try:
        u, s = _stat_ticks(f"/proc/{pid}/stat")
    except (OSError, IndexError):
        return None
    return u / TICK, s / TICK


def thread_cpu_s(pid: int) -> dict[int, float]:
    """{tid: utime + stime seconds} of each thread of a live process."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            u, s = _stat_ticks(f"/proc/{pid}/task/{tid}/stat")
            out[int(tid)] = (u + s) / TICK
        except (OSError, IndexError):
            pass
    return out


def _kib_field(path: str, key: str) -> int | None:
    """The KiB figure of the line starting with key in a /proc file; None if not there."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM (peak resident set) of a live process, KiB."""
    return _kib_field(f"/proc/{pid}/status", "VmHWM:")


def pss_kib(pid: int) -> int | None:
    """Proportional set size (shared pages split among their users), KiB: what a group of
    processes sharing libraries (Postfix's daemons) adds up to without double counting."""
    return _kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")


class CpuWindow:
    """CPU of a process between start() and stop(): total and the busiest thread's share."""

    def __init__(self, pid: int):
        self.pid = pid
        self.t0 = self.t1 = None
        self.c0 = self.c1 = {}

    def start(self):
        self.t0, self.c0 = time.monotonic(), thread_cpu_s(self.pid)
        return self

    def stop(self):
        c = thread_cpu_s(self.pid)
        if c:
            self.t1, self.c1 = time.monotonic(), c
        return self

    def cpu_s(self) -> float | None:
        if self.t1 is None:
            return None
        return sum(self.c1.values()) - sum(v for k, v in self.c0.items() if k in self.c1)

    def busiest_thread_share(self) -> float | None:
        """The largest share of one core one thread used in the window (0-1)."""
        if self.t1 is None or self.t1 <= self.t0:
            return None
        wall = self.t1 - self.t0
        return max((v - self.c0.get(k, 0.0)) / wall for k, v in self.c1.items()) if self.c1 else None


# ---- children ---------------------------------------------------------------------------------

class Child:
    """One child process: argv, log file (stdout + stderr), PID recorded in pid_file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, pid_file: Path, cwd: Path | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.pid_file = Path(pid_file)
        self.cwd = cwd
        self.pid: int | None = None
        self.returncode: int | None = None
        self.rusage = None
        self.last_rss_kib: int | None = None
        self._popen = None

    def start(self) -> "Child":
        with open(self.log_path, "wb") as log:
            self._popen = subprocess.Popen(_launcher() + self.argv, stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=subprocess.STDOUT,
                                           cwd=self.cwd, start_new_session=True)
        self.pid = self._popen.pid
        with open(self.pid_file, "a") as f:
            f.write(f"{self.name} {self.pid}\n")
        return self

    def poll(self) -> int | None:
        """The exit status once it has exited (then reaped), else None."""
        if self.returncode is not None or self.pid is None:
            return self.returncode
        try:
            pid, status, ru = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.returncode = -1
            return self.returncode
        if pid == 0:
            rss = peak_rss_kib(self.pid)
            if rss is not None:
                self.last_rss_kib = rss
            return None
        self.rusage = ru
        self.returncode = os.waitstatus_to_exitcode(status)
        self._popen.returncode = self.returncode   # keeps subprocess from warning
        return self.returncode

    def running(self) -> bool:
        return self.pid is not None and self.poll() is None

    def wait(self, timeout: float) -> int | None:
        end = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= end:
                return None
            time.sleep(0.02)
        return self.returncode

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; always reaped. Returns the exit status
        (negative: the signal that ended it)."""
        if self.pid is None:
            return None
        if self.poll() is None:
            self.last_rss_kib = peak_rss_kib(self.pid) or self.last_rss_kib
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(timeout) is None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait(30)
        return self.returncode

    def cpu_total_s(self) -> float | None:
        """Whole-life CPU (after exit: from wait4; while running: /proc)."""
        if self.rusage is not None:
            return self.rusage.ru_utime + self.rusage.ru_stime
        return proc_cpu_s(self.pid) if self.pid else None

    def peak_rss_kib(self) -> int | None:
        """VmHWM: read now while it runs, else the last reading before it exited (taken at
        every poll() and just before stop() signals it)."""
        live = peak_rss_kib(self.pid) if self.pid and self.returncode is None else None
        return live or self.last_rss_kib

    def log_tail(self, n: int = 8) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-n:])

    def wait_line(self, pattern: re.Pattern, timeout: float) -> re.Match:
        """Wait for a line of the log matching pattern (the ready line)."""
        end = time.monotonic() + timeout
        while True:
            try:
                text = self.log_path.read_text(errors="replace")
            except OSError:
                text = ""
            for line in text.splitlines():
                m = pattern.search(line)
                if m:
                    return m
            if self.poll() is not None:
                raise StartFailed(f"{self.name} exited with status {self.returncode} before it "
                                  f"was ready: {self.log_tail()}")
            if time.monotonic() > end:
                raise StartFailed(f"{self.name} not ready within {timeout:g} s: {self.log_tail()}")
            time.sleep(0.02)


def wait_banner(port: int, timeout: float, alive=lambda: True, what: str = "server") -> str:
    """Connect to 127.0.0.1:port until the 220 banner comes; returns the banner line."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        if not alive():
            raise StartFailed(f"{what} exited before its SMTP banner")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                data = s.recv(512)
                if data.startswith(b"220"):
                    with contextlib.suppress(OSError):
                        s.sendall(b"QUIT\r\n")
                    return data.decode(errors="replace").splitlines()[0]
                last = data
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise StartFailed(f"{what}: no SMTP banner on 127.0.0.1:{port} within {timeout:g} s ({last})")


class ChildSet:
    """The children of one run, stopped in reverse start order by stop_all()."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.pid_file = self.run_dir / "pids"
        self.children: list[Child] = []
        self.stoppers: list = []      # extra clean-ups (a Postfix instance), run first

    def start(self, name: str, argv: list[str], cwd: Path | None = None) -> Child:
        c = Child(name, argv, self.run_dir / f"{name}.log", self.pid_file, cwd=cwd)
        self.children.append(c)
        return c.start()

    def record_pid(self, name: str, pid: int) -> None:
        """A process not started here (a Postfix daemon), for the record."""
        with open(self.pid_file, "a") as f:
            f.write(f"{name} {pid}\n")

    def stop_all(self, timeout: float = 15.0) -> list[str]:
        """Stop every child still running; returns problems (killed, cleanup errors)."""
        problems = []
        with deferred_signals():
            for fn in reversed(self.stoppers):
                try:
                    fn()
                except Exception as e:           # keep stopping the others
                    problems.append(f"stopping: {e}")
            self.stoppers.clear()
            for c in reversed(self.children):
                if c.pid is not None and c.returncode is None:
                    rc = c.stop(timeout)
                    if rc is not None and rc < 0:
                        problems.append(f"{c.name} had to be killed (status {rc})")
        return problems
