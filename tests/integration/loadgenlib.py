"""Helpers for the ringmta-loadgen integration tests: running the loadgen (to completion or in
the background, always bounded and stopped by PID), reading its result JSON and ledger
(docs/result-format.md), reconciling the ledger with a sink's digest log, and reading
figures out of its histograms.

Binary: $RINGMTA_BIN/ringmta-loadgen (default build/asan/bin)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from proclib import asan_binary, check_sanitizers, launcher, sanitizer_report, stop_process
from sinklib import DigestLine



def loadgen_binary() -> Path:
    return asan_binary("ringmta-loadgen")


def free_port() -> int:
    """A port nothing listens on right now (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- The ledger -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerLine:
    id: str
    code: int
    enhanced: str  # "2.0.0" or "-"
    unix_ms: int
    sha256: str
    accepted: int  # recipients accepted
    recipients: int  # recipients sent
    text: str


def read_ledger(path: Path) -> list[LedgerLine]:
    if not Path(path).exists():
        return []
    out = []
    for raw in Path(path).read_text().split("\n"):
        if raw == "":
            continue
        f = raw.split("\t")
        assert len(f) == 7, f"ledger line without 7 TAB-separated fields: {raw!r}"
        assert re.fullmatch(r"0|[2-5][0-9][0-9]", f[1]), f"bad reply code in {raw!r}"
        assert f[2] == "-" or re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", f[2]), f"bad enhanced code in {raw!r}"
        assert re.fullmatch(r"[0-9a-f]{64}", f[4]), f"bad sha256 in {raw!r}"
        m = re.fullmatch(r"(\d+)/(\d+)", f[5])
        assert m, f"bad accepted/recipients in {raw!r}"
        out.append(LedgerLine(f[0], int(f[1]), f[2], int(f[3]), f[4], int(m.group(1)), int(m.group(2)), f[6]))
    return out


def reconcile(ledger: list[LedgerLine], digest: list[DigestLine], run_id: str) -> None:
    """docs/result-format.md "Reconciliation" on the direct path, strictly: every 2xx ledger
    line has exactly one digest line with the same id, body SHA-256 and recipient count, and
    every digest line of the run is a 2xx ledger line. No id twice on either side."""
    ids = [l.id for l in ledger]
    dup = len(ids) - len(set(ids))
    assert dup == 0, f"{dup} ids twice in the ledger"
    assert all(i.startswith(run_id + "-") for i in ids), f"ledger ids without run id {run_id}: {ids[:3]}"
    mine = [d for d in digest if d.id.startswith(run_id + "-")]
    assert len(mine) == len(digest), f"{len(digest) - len(mine)} digest lines of another run"
    dids = [d.id for d in mine]
    dup = len(dids) - len(set(dids))
    assert dup == 0, f"{dup} ids twice in the digest log (duplicated deliveries)"
    by_id = {d.id: d for d in mine}
    ok = {l.id: l for l in ledger if 200 <= l.code < 300}
    lost = sorted(set(ok) - set(by_id))
    extra = sorted(set(by_id) - set(ok))
    assert not lost, f"{len(lost)} accepted messages not in the digest log (lost), e.g. {lost[:5]}"
    assert not extra, f"{len(extra)} digest lines without a 2xx ledger line, e.g. {extra[:5]}"
    corrupted = [i for i, l in ok.items() if by_id[i].sha256 != l.sha256]
    assert not corrupted, f"{len(corrupted)} body SHA-256 mismatches, e.g. {corrupted[:5]}"
    wrong_rcpts = [i for i, l in ok.items() if len(by_id[i].rcpts) != l.accepted]
    assert not wrong_rcpts, f"{len(wrong_rcpts)} recipient counts differ, e.g. {wrong_rcpts[:5]}"


# ---- Histograms -------------------------------------------------------------------------------


def count_at_least(hist: dict, ns: int) -> int:
    """Samples of a JSON histogram whose bucket lies at or above `ns` (a bucket straddling
    `ns` counts as above: the error is below 0.8 %)."""
    return sum(c for lo, hi, c in hist["buckets"] if hi >= ns)


def ms(ns) -> str:
    return "null" if ns is None else f"{ns / 1e6:.2f} ms"


# ---- Running the loadgen ----------------------------------------------------------------------


class LoadgenRun:
    """One ringmta-loadgen process. stdout/stderr go to files; JSON and ledger to tmp files."""

    def __init__(self, workdir: Path, name: str, args: list[str], json_out: bool, ledger_out: bool):
        self.workdir = workdir
        self.name = name
        self.json_path = workdir / f"{name}.json" if json_out else None
        self.ledger_path = workdir / f"{name}.ledger" if ledger_out else None
        argv = list(args)
        if self.json_path and "--json" not in argv:
            argv += ["--json", str(self.json_path)]
        if self.ledger_path and "--ledger" not in argv:
            argv += ["--ledger", str(self.ledger_path)]
        if "--no-progress" not in argv:
            argv.append("--no-progress")
        self.args = argv
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.killed = False
        self.t_start = 0.0
        self.elapsed = 0.0
        self._json = None
        self._ledger = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> "LoadgenRun":
        b = loadgen_binary()
        assert b.exists(), f"{b} is missing: build it (cmake --build --preset asan)"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.t_start = time.monotonic()
            self.proc = subprocess.Popen(
                launcher() + [str(b)] + self.args,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.workdir,
            )
        return self

    def wait(self, timeout: float) -> int:
        """Waits for the run to end by itself; on timeout it is stopped (SIGTERM, then SIGKILL)
        and the test fails."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(
                f"ringmta-loadgen did not end within {timeout:g} s: {self.describe()}; "
                f"stopped it (exit {self.returncode}); stdout tail:\n{self.stdout()[-1500:]}")
        self.elapsed = time.monotonic() - self.t_start
        self.check_sanitizers()
        return self.returncode

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        if stop_process(self.proc, timeout):
            self.killed = True
        self.returncode = self.proc.returncode
        return self.returncode

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stdout(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def check_sanitizers(self) -> None:
        check_sanitizers(self.stderr(), self.describe())

    @property
    def json(self) -> dict:
        if self._json is None:
            assert self.json_path and self.json_path.exists(), (
                f"no JSON result from {self.describe()} (exit {self.returncode}); stderr: {self.stderr()[-2000:]}")
            self._json = json.loads(self.json_path.read_text())
            assert self._json.get("schema") == "ringmta-loadgen/1", self._json.get("schema")
        return self._json

    @property
    def counts(self) -> dict:
        return self.json["counts"]

    @property
    def ledger(self) -> list[LedgerLine]:
        if self._ledger is None:
            assert self.ledger_path, "run without a ledger"
            self._ledger = read_ledger(self.ledger_path)
        return self._ledger

    def describe(self) -> str:
        return f"ringmta-loadgen {' '.join(self.args)} (pid {self.proc.pid if self.proc else '-'})"


class LoadgenFactory:
    """loadgen(*args): runs to completion (bounded) and returns the LoadgenRun;
    loadgen.start(*args): returns it running (stop or wait for it in the test; stopped by PID
    at teardown otherwise)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.runs: list[LoadgenRun] = []

    def _new(self, args, json_out: bool, ledger: bool) -> LoadgenRun:
        r = LoadgenRun(self.workdir, f"loadgen{len(self.runs)}", [str(a) for a in args], json_out, ledger)
        self.runs.append(r)
        return r

    def start(self, *args, json_out: bool = True, ledger: bool = True) -> LoadgenRun:
        return self._new(args, json_out, ledger).start()

    def __call__(self, *args, timeout: float = 30.0, expect_exit: int | None = 0,
                 json_out: bool = True, ledger: bool = True) -> LoadgenRun:
        r = self.start(*args, json_out=json_out, ledger=ledger)
        rc = r.wait(timeout)
        if expect_exit is not None:
            assert rc == expect_exit, (
                f"{r.describe()} exited {rc}, expected {expect_exit}; stderr:\n{r.stderr()[-3000:]}\n"
                f"stdout:\n{r.stdout()[-3000:]}")
        return r

    def finish(self) -> list[str]:
        problems = []
        for r in self.runs:
            if r.proc is None:
                continue
            if r.running():
                r.stop()
                problems.append(f"{r.describe()} was still running at teardown; stopped (exit {r.returncode})")
            if r.killed:
                problems.append(f"{r.describe()} did not stop within 10 s of SIGTERM; killed")
            err = r.stderr()
            if sanitizer_report(err):
                problems.append(f"{r.describe()}: sanitizer report in stderr:\n{err[-6000:]}")
        return problems


# ---- Postfix's smtp-sink ----------------------------------------------------------------------


class PostfixSink:
    """/usr/sbin/smtp-sink -u nobody -c 127.0.0.1:PORT BACKLOG, stopped by PID."""

    BINARY = "/usr/sbin/smtp-sink"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.out_path = workdir / "smtp-sink.stdout"
        self.err_path = workdir / "smtp-sink.stderr"

    def start(self, ready_timeout: float = 10.0) -> "PostfixSink":
        deadline = time.monotonic() + ready_timeout
        self.port = free_port()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                launcher() + [self.BINARY, "-u", "nobody", "-c", f"127.0.0.1:{self.port}", "1000"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.workdir,
            )
        while True:  # ready when it answers with its banner
            if self.proc.poll() is not None:
                raise AssertionError(f"smtp-sink exited {self.proc.returncode}: {self.err_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"smtp-sink not answering on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)

    def counters(self) -> dict[str, int]:
        """The last of smtp-sink -c's counters ("sess=N quit=N mesg=N")."""
        text = self.out_path.read_text(errors="replace")
        found = re.findall(r"sess=(\d+) quit=(\d+) mesg=(\d+)", text)
        assert found, f"no counters in smtp-sink output {text[-300:]!r}"
        s, q, m = (int(x) for x in found[-1])
        return {"sess": s, "quit": q, "mesg": m}
