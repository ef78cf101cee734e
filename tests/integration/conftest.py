"""Fixtures of the ringmta-sink integration suite.

- `sink`: a factory that starts ringmta-sink with the given arguments on 127.0.0.1:0, waits
  for its ready line, and at teardown stops it by PID (SIGTERM, then SIGKILL after a
  timeout) and asserts it exited 0 (or the code the test asked for) with no sanitizer report.
  Children are also tied to this process with a parent-death signal, so they die even if
  pytest itself is killed.
- `run_sink`: runs ringmta-sink to completion (bad flags, --print-config), bounded in time.
- a per-test wall-clock bound (default 60 s; `@pytest.mark.timeout(N)`), raised in the test
  as TestTimeout.
- `loadgen`: a factory that runs ringmta-loadgen (loadgenlib.py), bounded, stopped by PID.
- `relay`: a factory that starts ringmta-relay (relaylib.py) on 127.0.0.1:0 with a spool in
  the test's tmp_path, waits for its ready line, and at teardown stops it by PID and checks
  its exit status (a relay the test SIGKILLed on purpose is exempt) and stderr.

Binaries: $RINGMTA_BIN (default build/asan/bin) and, for the scale test,
$RINGMTA_RELEASE_BIN (default build/bin)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from proclib import (asan_binary, check_sanitizers, launcher, release_binary,
                      sanitizer_report, stop_process)

DEFAULT_TIMEOUT = 60.0

READY = re.compile(
    r"^ringmta-sink (\S+) listening on (.+?)(?: metrics (\S+))? mode (\S+) threads (\d+)$"
)


def sink_binary() -> Path:
    return asan_binary("ringmta-sink")


def release_sink_binary() -> Path:
    return release_binary("ringmta-sink")


# ---- Per-test time bound ----------------------------------------------------------------------


class TestTimeout(Exception):
    __test__ = False


def _disarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


@pytest.fixture(autouse=True)
def _time_bound(request):
    m = request.node.get_closest_marker("timeout")
    seconds = float(m.args[0]) if m else DEFAULT_TIMEOUT

    def expired(signum, frame):
        raise TestTimeout(f"{request.node.nodeid} exceeded its {seconds:g} s bound")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        _disarm()
        signal.signal(signal.SIGALRM, old)


# ---- The sink ---------------------------------------------------------------------------------


class Sink:
    """One ringmta-sink process. stdout and stderr go to files (nothing can block on a pipe)."""

    def __init__(self, binary: Path, args: list[str], workdir: Path, name: str, expect_exit: int | None):
        self.binary = binary
        self.args = args
        self.workdir = workdir
        self.name = name
        self.expect_exit = expect_exit
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.killed = False
        self.ready_line = ""
        self.addresses: list[tuple[str, int]] = []
        self.metrics_addr: str | None = None
        self.mode = ""
        self.threads = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    def start(self, ready_timeout: float) -> "Sink":
        if not self.binary.exists():
            raise AssertionError(f"{self.binary} is missing: build it (cmake --build --preset asan)")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                launcher() + [str(self.binary)] + self.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.workdir,
            )
        self._wait_ready(ready_timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            text = self.stdout_path.read_text(errors="replace")
            if "\n" in text:
                self.ready_line = text.split("\n", 1)[0]
                m = READY.match(self.ready_line)
                assert m, f"unexpected first stdout line {self.ready_line!r}; stderr: {self.stderr()}"
                self.addresses = []
                for a in m.group(2).split():
                    host, port = a.rsplit(":", 1)
                    self.addresses.append((host.strip("[]"), int(port)))
                self.metrics_addr = m.group(3)
                self.mode = m.group(4)
                self.threads = int(m.group(5))
                return
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"ringmta-sink exited with {self.proc.returncode} before it was ready; "
                    f"args {self.args}; stderr: {self.stderr()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"ringmta-sink not ready within {timeout}s; stderr: {self.stderr()}")
            time.sleep(0.01)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status (negative:
        killed by that signal)."""
        if self.proc is None:
            return 0
        if stop_process(self.proc, timeout):
            self.killed = True
        self.returncode = self.proc.returncode
        return self.returncode

    def vm_rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")

    def describe(self) -> str:
        return f"ringmta-sink {' '.join(self.args)} (pid {self.proc.pid if self.proc else '-'})"


class SinkFactory:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.sinks: list[Sink] = []

    def __call__(
        self,
        *args: str,
        listen: bool = True,
        expect_exit: int | None = 0,
        binary: Path | None = None,
        ready_timeout: float = 15.0,
    ) -> Sink:
        """Starts ringmta-sink with `args` (plus --listen 127.0.0.1:0 unless listen=False or
        args has its own) and returns it once ready."""
        argv = list(args)
        if listen and "--listen" not in argv and "--config" not in argv:
            argv = ["--listen", "127.0.0.1:0"] + argv
        s = Sink(binary or sink_binary(), argv, self.workdir, f"sink{len(self.sinks)}", expect_exit)
        self.sinks.append(s)
        return s.start(ready_timeout)

    def finish(self) -> list[str]:
        problems = []
        for s in self.sinks:
            if s.proc is None:
                continue
            was_running = s.running()
            rc = s.stop()
            err = s.stderr()
            if s.killed:
                problems.append(f"{s.describe()} did not stop within 10 s of SIGTERM; killed")
            elif s.expect_exit is not None and rc != s.expect_exit:
                how = "after SIGTERM" if was_running else "on its own"
                problems.append(f"{s.describe()} exited {rc} {how}, expected {s.expect_exit}; stderr:\n{err[-4000:]}")
            if sanitizer_report(err):
                problems.append(f"{s.describe()}: sanitizer report in stderr:\n{err[-6000:]}")
        return problems


@pytest.fixture
def sink(tmp_path, request):
    factory = SinkFactory(tmp_path)
    request.node.stash[_SINKS] = factory
    try:
        yield factory
    finally:
        _disarm()  # the teardown below is bounded by its own timeouts
        problems = factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def run_sink(tmp_path):
    """Runs ringmta-sink to completion: (returncode, stdout, stderr). Killed after `timeout`."""

    def run(*args: str, timeout: float = 15.0, binary: Path | None = None):
        b = binary or sink_binary()
        assert b.exists(), f"{b} is missing: build it (cmake --build --preset asan)"
        p = subprocess.run(
            launcher() + [str(b)] + list(args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            cwd=tmp_path,
        )
        err = p.stderr.decode(errors="replace")
        check_sanitizers(err, f"ringmta-sink {args}")
        return p.returncode, p.stdout.decode(errors="replace"), err

    return run


_SINKS = pytest.StashKey[SinkFactory]()


@pytest.fixture
def loadgen(tmp_path, request):
    """A factory for ringmta-loadgen runs (loadgenlib.LoadgenFactory): loadgen(*args) runs one
    to completion, bounded, with --json and --ledger into tmp_path; loadgen.start(*args) leaves
    it running. At teardown any run still going is stopped by PID and fails the test, as does
    a sanitizer report."""
    from loadgenlib import LoadgenFactory

    factory = LoadgenFactory(tmp_path)
    request.node.stash[_LOADGENS] = factory
    try:
        yield factory
    finally:
        _disarm()
        problems = factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


_LOADGENS = pytest.StashKey[object]()


@pytest.fixture
def relay(tmp_path, request):
    """A factory for ringmta-relay processes (relaylib.RelayFactory): relay(*args, spool=DIR,
    binary=PATH, expect_exit=0) returns it ready. At teardown every one still running is
    stopped by PID (SIGTERM, then SIGKILL) and must have exited as expected, with no
    sanitizer report."""
    from relaylib import RelayFactory

    factory = RelayFactory(tmp_path)
    request.node.stash[_RELAYS] = factory
    try:
        yield factory
    finally:
        _disarm()
        problems = factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


_RELAYS = pytest.StashKey[object]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _SINKS in item.stash:
        for s in item.stash[_SINKS].sinks:
            report.sections.append((f"{s.name} stderr ({s.describe()})", s.stderr()[-6000:] or "(empty)"))
    if report.failed and _LOADGENS in item.stash:
        for r in item.stash[_LOADGENS].runs:
            report.sections.append((f"{r.name} output ({r.describe()})",
                                    (r.stderr()[-3000:] + r.stdout()[-3000:]) or "(empty)"))
    if report.failed and _RELAYS in item.stash:
        for r in item.stash[_RELAYS].relays:
            report.sections.append((f"{r.name} stderr ({r.describe()})", r.stderr()[-6000:] or "(empty)"))


# ---- Figures worth seeing in every run (printed after the test summary) ----------------------

_FIGURES: list[str] = []


@pytest.fixture
def report_figure():
    """report_figure("what", value): printed in the terminal summary, even with -q."""

    def add(what: str, value) -> None:
        _FIGURES.append(f"{what}: {value}")
        print(f"{what}: {value}")

    return add


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("ringmta-sink figures")
        for f in _FIGURES:
            terminalreporter.write_line(f)
