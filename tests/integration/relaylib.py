"""Helpers for the ringmta-relay integration tests: the relay process (started on 127.0.0.1:0,
ready line parsed, stopped by PID, SIGKILL for crash tests), `ringmta-relay queue` (listing
and digest form), and the spool's on-disk records read in Python (relay/spool/record.hpp:
CRC-32C, record headers, message envelopes) so that tests can find record boundaries and
damage segments on purpose.

Binaries: $RINGMTA_BIN/ringmta-relay (default build/asan/bin); the crash test uses the
optimised $RINGMTA_RELEASE_BIN/ringmta-relay (default build/bin)."""

from __future__ import annotations

import re
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from proclib import (asan_binary, check_sanitizers, launcher, release_binary,
                      sanitizer_report, stop_process)
from sinklib import DigestLine


READY = re.compile(
    r"^ringmta-relay (\S+) listening on (.+?)(?: metrics (\S+))? spool (.+) durability (\S+) "
    r"threads (\d+) recovered (\d+) messages in ([0-9.]+) ms$"
)
QUEUED = re.compile(r"^2\.0\.0 Ok: queued as ([0-9a-f]{16})$")


def relay_binary() -> Path:
    return asan_binary("ringmta-relay")


def release_relay_binary() -> Path:
    return release_binary("ringmta-relay")


# ---- The relay process ------------------------------------------------------------------------


class Relay:
    """One ringmta-relay process. stdout and stderr go to files (nothing blocks on a pipe)."""

    def __init__(self, binary: Path, args: list[str], workdir: Path, name: str, spool: Path,
                 expect_exit: int | None):
        self.binary = binary
        self.args = args
        self.workdir = workdir
        self.name = name
        self.spool = spool
        self.expect_exit = expect_exit
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.killed = False  # did not stop on SIGTERM
        self.crashed_on_purpose = False  # SIGKILLed by the test
        self.ready_line = ""
        self.addresses: list[tuple[str, int]] = []
        self.metrics_addr: str | None = None
        self.durability = ""
        self.threads = 0
        self.recovered = -1
        self.recovery_ms = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    def start(self, ready_timeout: float) -> "Relay":
        if not self.binary.exists():
            raise AssertionError(f"{self.binary} is missing: build it (cmake --build --preset asan, "
                                 f"or cmake --preset release && cmake --build --preset release)")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                launcher() + [str(self.binary)] + self.args,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.workdir,
            )
        deadline = time.monotonic() + ready_timeout
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
                self.durability = m.group(5)
                self.threads = int(m.group(6))
                self.recovered = int(m.group(7))
                self.recovery_ms = float(m.group(8))
                return self
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"ringmta-relay exited with {self.proc.returncode} before it was ready; "
                    f"args {self.args}; stderr: {self.stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"ringmta-relay not ready within {ready_timeout}s; stderr: {self.stderr()}")
            time.sleep(0.01)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status (negative:
        killed by that signal)."""
        if self.proc is None:
            return 0
        if stop_process(self.proc, timeout):
            self.killed = True
        self.returncode = self.proc.returncode
        return self.returncode

    def crash(self) -> None:
        """SIGKILL, as a crash: no chance to flush or clean up."""
        self.crashed_on_purpose = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.returncode = self.proc.wait(10)

    def describe(self) -> str:
        return f"ringmta-relay {' '.join(self.args)} (pid {self.proc.pid if self.proc else '-'})"


class RelayFactory:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.relays: list[Relay] = []

    def __call__(self, *args: str, spool: Path | None = None, listen: bool = True,
                 expect_exit: int | None = 0, binary: Path | None = None,
                 ready_timeout: float = 15.0) -> Relay:
        """Starts ringmta-relay with `args`, plus --listen 127.0.0.1:0 (unless listen=False or
        args has its own) and --spool (`spool`, default <tmp>/spool), and returns it once
        ready."""
        argv = [str(a) for a in args]
        if listen and "--listen" not in argv and "--config" not in argv:
            argv = ["--listen", "127.0.0.1:0"] + argv
        spool = Path(spool) if spool is not None else self.workdir / "spool"
        if "--spool" not in argv:
            argv += ["--spool", str(spool)]
        r = Relay(binary or relay_binary(), argv, self.workdir, f"relay{len(self.relays)}", spool, expect_exit)
        self.relays.append(r)
        return r.start(ready_timeout)

    def stop_all(self) -> None:
        for r in self.relays:
            r.stop()

    def finish(self) -> list[str]:
        problems = []
        for r in self.relays:
            if r.proc is None:
                continue
            was_running = r.running()
            rc = r.stop()
            err = r.stderr()
            if r.killed:
                problems.append(f"{r.describe()} did not stop within 10 s of SIGTERM; killed")
            elif r.crashed_on_purpose:
                pass
            elif r.expect_exit is not None and rc != r.expect_exit:
                how = "after SIGTERM" if was_running else "on its own"
                problems.append(f"{r.describe()} exited {rc} {how}, expected {r.expect_exit}; stderr:\n{err[-4000:]}")
            if sanitizer_report(err):
                problems.append(f"{r.describe()}: sanitizer report in stderr:\n{err[-6000:]}")
        return problems


def run_relay(*args, timeout: float = 30.0, binary: Path | None = None, cwd: Path | None = None):
    """Runs ringmta-relay to completion (bad flags, --print-config, queue): (returncode,
    stdout, stderr). Killed after `timeout`."""
    b = binary or relay_binary()
    assert b.exists(), f"{b} is missing: build it (cmake --build --preset asan)"
    p = subprocess.run(launcher() + [str(b)] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout, cwd=cwd)
    err = p.stderr.decode(errors="replace")
    check_sanitizers(err, f"ringmta-relay {args}")
    return p.returncode, p.stdout.decode(errors="replace"), err


# ---- ringmta-relay queue ----------------------------------------------------------------------


@dataclass(frozen=True)
class QueueEntry:
    queue_id: str  # 16 hex digits
    stored_bytes: int  # the stored body: Received: + message as received (dot-stuffed)
    arrival_unix_ms: int
    sender: str
    rcpts: tuple[str, ...]


QUEUE_LINE = re.compile(r"^([0-9a-f]{16}) (\d+) (\d+) <([^>]*)> (.*)$")
SUMMARY = re.compile(r"^-- (\d+) messages, (\d+) recipients, (\d+) bytes in (\d+) segments$")


def queue_list(spool: Path, binary: Path | None = None, timeout: float = 60.0) -> tuple[list[QueueEntry], dict]:
    """`ringmta-relay queue --spool DIR`: the entries and the summary line's figures."""
    rc, out, err = run_relay("queue", "--spool", spool, binary=binary, timeout=timeout)
    assert rc == 0, f"ringmta-relay queue exited {rc}: {err}"
    lines = out.splitlines()
    assert lines, "queue printed nothing (not even the summary line)"
    m = SUMMARY.match(lines[-1])
    assert m, f"last queue line is not the summary: {lines[-1]!r}"
    summary = dict(zip(("messages", "recipients", "bytes", "segments"), (int(x) for x in m.groups())))
    entries = []
    for raw in lines[:-1]:
        q = QUEUE_LINE.match(raw)
        assert q, f"bad queue line {raw!r}"
        entries.append(QueueEntry(q.group(1), int(q.group(2)), int(q.group(3)), q.group(4),
                                  tuple(q.group(5).split(",")) if q.group(5) else ()))
    assert len(entries) == summary["messages"], f"{len(entries)} lines but summary says {lines[-1]!r}"
    return entries, summary


def queue_digest(spool: Path, binary: Path | None = None, timeout: float = 60.0) -> list[DigestLine]:
    """`ringmta-relay queue --spool DIR --digest`, parsed as the sink's digest lines."""
    rc, out, err = run_relay("queue", "--spool", spool, "--digest", binary=binary, timeout=timeout)
    assert rc == 0, f"ringmta-relay queue --digest exited {rc}: {err}"
    lines = []
    for raw in out.splitlines():
        f = raw.split("\t")
        assert len(f) == 4, f"queue --digest line without 4 TAB-separated fields: {raw!r}"
        assert re.fullmatch(r"[0-9a-f]{64}", f[2]), f"bad sha256 in {raw!r}"
        lines.append(DigestLine(f[0], int(f[1]), f[2], tuple(f[3].split(",")) if f[3] else ()))
    return lines


# ---- The spool on disk (relay/spool/record.hpp) -----------------------------------------------


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), table-driven; crc32c(b"123456789") == 0xE3069283."""
    c = crc ^ 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


HEADER_SIZE = 24
MAGIC = b"RGMS"
TYPE_SEGMENT, TYPE_MESSAGE, TYPE_OUTCOME = 1, 2, 3


@dataclass
class Record:
    offset: int
    version: int
    type: int
    length: int  # payload bytes
    payload_crc: int
    payload: bytes

    @property
    def end(self) -> int:
        return self.offset + HEADER_SIZE + self.length


def encode_header(version: int, rtype: int, flags: int, length: int, payload_crc: int) -> bytes:
    head = MAGIC + struct.pack("<HBBII", version, rtype, flags, length, payload_crc)
    return head + struct.pack("<II", crc32c(head), 0)


def read_records(path: Path) -> tuple[list[Record], int]:
    """The sound records of a segment file, in order, and where the written part ends (the
    first all-zero header). Asserts that every header and payload checks out: use it on
    segments the test has not damaged."""
    data = Path(path).read_bytes()
    out = []
    off = 0
    while off + HEADER_SIZE <= len(data):
        head = data[off:off + HEADER_SIZE]
        if head == bytes(HEADER_SIZE):
            break
        assert head[:4] == MAGIC, f"{path}@{off}: no record magic: {head!r}"
        version, rtype, _flags, length, pcrc = struct.unpack("<HBBII", head[4:16])
        (hcrc,) = struct.unpack("<I", head[16:20])
        assert hcrc == crc32c(head[:16]), f"{path}@{off}: header crc mismatch"
        payload = data[off + HEADER_SIZE:off + HEADER_SIZE + length]
        assert len(payload) == length, f"{path}@{off}: record runs past the end of the file"
        assert crc32c(payload) == pcrc, f"{path}@{off}: payload crc mismatch"
        out.append(Record(off, version, rtype, length, pcrc, payload))
        off += HEADER_SIZE + length
    return out, off


@dataclass
class StoredMessage:
    id: int
    arrival_unix_ms: int
    body_format: int
    sender: str
    client_ip: str
    helo: str
    rcpts: list[str]
    body: bytes  # as stored: Received: first, then the message as received


def decode_message(payload: bytes) -> StoredMessage:
    """relay/spool/record.cpp decode_message_payload in Python."""
    pos = 0

    def take(fmt: str):
        nonlocal pos
        vals = struct.unpack_from(fmt, payload, pos)
        pos += struct.calcsize(fmt)
        return vals

    def string() -> str:
        nonlocal pos
        (n,) = take("<H")
        s = payload[pos:pos + n]
        pos += n
        return s.decode("utf-8", "replace")

    mid, arrival, fmt, _flags, _ret = take("<QQBBB")
    sender = string()
    string()  # envid
    client_ip, helo = string(), string()
    (count,) = take("<I")
    rcpts = []
    for _ in range(count):
        rcpts.append(string())
        take("<B")
        string()
    (body_len,) = take("<Q")
    body = payload[pos:]
    assert len(body) == body_len, f"body length {len(body)} != envelope's {body_len}"
    return StoredMessage(mid, arrival, fmt, sender, client_ip, helo, rcpts, body)


def segments(spool: Path) -> list[Path]:
    """Every segment file of the spool, thread directory then name order (write order)."""
    return sorted(Path(spool).glob("t*/seg-*.log"))
