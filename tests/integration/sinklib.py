"""Client-side helpers for the ringmta-sink integration tests: a raw SMTP client with exact
reply parsing, the message fingerprint of core/smtp/message_digest.hpp recomputed in Python,
digest-log and /metrics readers, and the golden transcript (.in/.ref) reader.

Everything here is bounded: sockets carry timeouts and every wait has a deadline."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


class Closed(Exception):
    """The server closed the connection (EOF or reset) while a reply was expected."""


# ---- Replies ----------------------------------------------------------------------------------

_REPLY_LINE = re.compile(rb"^([2-5][0-9][0-9])([ -])(.*)$", re.S)


@dataclass
class Reply:
    code: int
    lines: list[str]  # the text of each line, after "250-" / "250 "

    @property
    def text(self) -> str:
        return self.lines[-1]

    @property
    def line(self) -> str:
        """The last line as sent: "250 2.1.0 Sender ok"."""
        return f"{self.code} {self.lines[-1]}"

    @property
    def enhanced(self) -> str | None:
        m = re.match(r"^([245]\.\d{1,3}\.\d{1,3})(?: |$)", self.lines[-1])
        return m.group(1) if m else None

    def __str__(self) -> str:
        return " / ".join(f"{self.code} {t}" for t in self.lines)


class SmtpClient:
    """One SMTP connection driven by hand: exact bytes out, replies parsed strictly."""

    def __init__(self, port: int, host: str = HOST, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.received = b""  # every byte the server sent, for failure messages

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return False
        self.buf += chunk
        self.received += chunk
        return True

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise Closed(f"connection closed; unread {self.buf!r}; all received {self.received!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_reply(self) -> Reply:
        lines: list[str] = []
        code = None
        while True:
            raw = self.read_line()
            m = _REPLY_LINE.match(raw)
            if not m:
                raise AssertionError(f"malformed reply line {raw!r}")
            c = int(m.group(1))
            if code is not None and c != code:
                raise AssertionError(f"reply code changed inside a multi-line reply: {raw!r}")
            code = c
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return Reply(code, lines)

    def cmd(self, line: str | bytes) -> Reply:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read_reply()

    def banner(self) -> Reply:
        return self.read_reply()

    def ehlo(self, name: str = "client.example") -> Reply:
        r = self.cmd(f"EHLO {name}")
        assert r.code == 250, f"EHLO: {r}"
        return r

    def expect_closed(self, timeout: float = 5.0) -> bytes:
        """Waits for the server to close; returns what arrived before the close."""
        before = self.buf
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                if not self._fill():
                    data, self.buf = self.buf, b""
                    return data
            except socket.timeout:
                continue
        raise AssertionError(f"server did not close within {timeout}s; received {self.buf[len(before):]!r}")

    def send_message(self, sender: str, rcpts: list[str], message: bytes) -> tuple[list[Reply], Reply]:
        """Lock-step MAIL, RCPT..., DATA, dot-stuffed message, final dot. Returns the
        envelope replies and the final reply (or the DATA refusal)."""
        replies = [self.cmd(f"MAIL FROM:<{sender}>")]
        for r in rcpts:
            replies.append(self.cmd(f"RCPT TO:<{r}>"))
        data = self.cmd("DATA")
        replies.append(data)
        if data.code != 354:
            return replies, data
        self.send(dot_stuff(message) + b".\r\n")
        return replies, self.read_reply()


def elapsed(fn, *args):
    """(result, seconds) of one call."""
    t = time.monotonic()
    r = fn(*args)
    return r, time.monotonic() - t


# ---- Messages and their fingerprint -----------------------------------------------------------


def make_message(msg_id: str | None, body: bytes, subject: str = "test", extra_headers: bytes = b"") -> bytes:
    """A CRLF message: headers, empty line, body (which should end in CRLF)."""
    h = b"From: sender@client.example\r\nTo: rcpt@example.test\r\n"
    h += f"Subject: {subject}\r\n".encode()
    if msg_id is not None:
        h += f"X-Ringmta-Id: {msg_id}\r\n".encode()
    return h + extra_headers + b"\r\n" + body


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 4.5.2: a line starting with '.' gets one more. The message must end in CRLF."""
    assert message == b"" or message.endswith(b"\r\n"), "message must end in CRLF"
    out = []
    for line in message.split(b"\r\n")[:-1] if message else []:
        out.append((b"." + line) if line.startswith(b".") else line)
        out.append(b"\r\n")
    return b"".join(out)


def unstuff(wire: bytes) -> bytes:
    """Removes the transparency dot at the start of each line (as MessageDigest does)."""
    out = bytearray()
    line_start = True
    for b in wire:
        if line_start and b == 0x2E:
            line_start = False
            continue
        out.append(b)
        line_start = b == 0x0A
    return bytes(out)


@dataclass(frozen=True)
class Fingerprint:
    id: str  # "-" when the message has no X-Ringmta-Id
    octets: int
    sha256: str


def fingerprint(message: bytes, stuffed: bool = False) -> Fingerprint:
    """core/smtp/message_digest.hpp in Python: the X-Ringmta-Id value (first one, trimmed) and
    the SHA-256 of the bytes after the header section's empty line, dot-stuffing undone."""
    data = unstuff(message) if stuffed else message
    pos = 0
    msg_id = ""
    body = b""
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break  # no empty line: everything is header, the body is empty
        line = data[pos:nl]
        pos = nl + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if line == b"":
            body = data[pos:]
            break
        if line[:1] in (b" ", b"\t"):
            continue
        if not msg_id and line[:13].upper() == b"X-RINGMTA-ID:":
            msg_id = line[13:].strip(b" \t")[:128].decode("latin-1")
    return Fingerprint(msg_id or "-", len(body), hashlib.sha256(body).hexdigest())


@dataclass(frozen=True)
class DigestLine:
    id: str
    octets: int
    sha256: str
    rcpts: tuple[str, ...]

    @property
    def fingerprint(self) -> Fingerprint:
        return Fingerprint(self.id, self.octets, self.sha256)


def read_digest(path: Path) -> list[DigestLine]:
    if not Path(path).exists():
        return []
    out = []
    for raw in Path(path).read_text().splitlines():
        parts = raw.split("\t")
        assert len(parts) == 4, f"digest line without 4 fields: {raw!r}"
        assert re.fullmatch(r"[0-9a-f]{64}", parts[2]), f"bad sha256 in {raw!r}"
        out.append(DigestLine(parts[0], int(parts[1]), parts[2], tuple(parts[3].split(",")) if parts[3] else ()))
    return out


def wait_digest(path: Path, count: int, timeout: float = 10.0, settle: float = 0.6) -> list[DigestLine]:
    """Waits until the log holds at least `count` lines (the sink flushes every 200 ms), then
    `settle` seconds more so that lines beyond `count` would show up too."""
    deadline = time.monotonic() + timeout
    lines = read_digest(path)
    while len(lines) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = read_digest(path)
    if settle:
        time.sleep(settle)
        lines = read_digest(path)
    return lines


# ---- /metrics ---------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')


def scrape(addr: str, timeout: float = 5.0) -> dict[tuple[str, frozenset], float]:
    """GET http://addr/metrics, parsed into {(name, frozenset(label items)): value}."""
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=timeout) as r:
        assert r.status == 200
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparsable metrics line {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(samples: dict, name: str, **labels) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} not exported; have {sorted(k[0] for k in samples)}"
    return samples[key]


# ---- Golden transcripts (tests/unit/smtp/transcript.cpp's .in format) ------------------------


def c_unescape(s: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 >= len(s):
            out += c.encode("utf-8")
            i += 1
            continue
        n = s[i + 1]
        i += 2
        if n == "r":
            out += b"\r"
        elif n == "n":
            out += b"\n"
        elif n == "t":
            out += b"\t"
        elif n == "\\":
            out += b"\\"
        elif n == "x":
            out.append(int(s[i : i + 2], 16))
            i += 2
        else:
            raise ValueError(f"unknown escape \\{n} in {s!r}")
    return bytes(out)


def c_escape(b: bytes) -> str:
    """transcript.cpp's escape(): how .ref files spell bytes."""
    out = []
    for c in b:
        if c == 0x0D:
            out.append("\\r")
        elif c == 0x0A:
            out.append("\\n")
        elif c == 0x5C:
            out.append("\\\\")
        elif c == 0x22:
            out.append('\\"')
        elif c < 32 or c >= 127:
            out.append(f"\\x{c:02x}")
        else:
            out.append(chr(c))
    return "".join(out)


@dataclass
class Script:
    name: str
    config: dict[str, str] = field(default_factory=dict)
    steps: list[bytes] = field(default_factory=list)  # one send() each
    tls: bool = False  # has a !tls step: the TLS handshake goes before steps[tls_at]
    tls_at: int = -1


def parse_script(path: Path) -> Script:
    s = Script(path.stem)
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line or line.startswith("#"):
            continue
        if line.startswith("!config"):
            for item in line[7:].split():
                k, v = item.split("=", 1)
                s.config[k] = v
        elif line == "!tls":
            s.tls = True
            s.tls_at = len(s.steps)
        elif line.startswith("!repeat "):
            n_text, pattern = line[8:].split(" ", 1)
            s.steps.append(b"".join(c_unescape(pattern.replace("{i}", str(i), 1)) for i in range(1, int(n_text) + 1)))
        elif line.startswith("!"):
            raise ValueError(f"unknown directive {line!r} in {path}")
        else:
            s.steps.append(c_unescape(line))
    return s


@dataclass
class Golden:
    replies: list[str]  # the S: lines, escaped as in the file
    messages: list[bytes]  # the body of each "E: message" event (wire format), in order
    formats: list[str]  # "dot-stuffed" or "raw", per message
    rcpts_per_message: list[int]


def parse_ref(path: Path) -> Golden:
    g = Golden([], [], [], [])
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.startswith("S: "):
            g.replies.append(line[3:])
        elif line.startswith("E: message "):
            m = re.match(r'^E: message format=(\S+) .* rcpts=(\d+) body="(.*)"$', line)
            assert m, line
            g.formats.append(m.group(1))
            g.rcpts_per_message.append(int(m.group(2)))
            body = m.group(3).replace('\\"', '"')
            g.messages.append(c_unescape(body))
    return g


# ---- Background traffic -----------------------------------------------------------------------


class SteadyClient(threading.Thread):
    """A well-behaved smtplib client sending small messages with X-Ringmta-Id "<prefix>-<n>"
    over one session until stopped; every failure is recorded."""

    def __init__(self, port: int, prefix: str = "bg", pause: float = 0.01, tls_context=None):
        super().__init__(daemon=True)
        self.port = port
        self.tls_context = tls_context  # an ssl.SSLContext: STARTTLS first
        self.prefix = prefix
        self.pause = pause
        self.sent: list[str] = []
        self.errors: list[str] = []
        self._stop_evt = threading.Event()

    def run(self) -> None:
        import smtplib

        try:
            with smtplib.SMTP(HOST, self.port, local_hostname="steady.example", timeout=10) as s:
                if self.tls_context is not None:
                    s.starttls(context=self.tls_context)
                n = 0
                while not self._stop_evt.is_set():
                    msg_id = f"{self.prefix}-{n}"
                    # small: it must fit the 100-octet limit of the size_limit transcript
                    msg = f"X-Ringmta-Id: {msg_id}\r\n\r\nsteady\r\n.dot\r\n".encode()
                    refused = s.sendmail("steady@client.example", ["steady@example.test"], msg)
                    if refused:
                        self.errors.append(f"{msg_id}: refused {refused}")
                    self.sent.append(msg_id)
                    n += 1
                    self._stop_evt.wait(self.pause)
                s.quit()
        except Exception as e:  # noqa: BLE001 - every failure is a test failure
            self.errors.append(f"after {len(self.sent)} messages: {type(e).__name__}: {e}")

    def wait_sent(self, n: int, timeout: float = 10.0) -> None:
        """Waits until at least n messages were accepted in all (or the client failed)."""
        deadline = time.monotonic() + timeout
        while len(self.sent) < n and not self.errors and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(self.sent) >= n, f"steady client: {len(self.sent)} messages sent, errors {self.errors}"

    def stop(self, timeout: float = 15.0) -> None:
        self._stop_evt.set()
        self.join(timeout)
        assert not self.is_alive(), "steady client did not stop"


def bulk_send(port: int, sessions: int, messages: int, id_prefix: str = "bulk",
              body: bytes = b"bulk message body\r\n" * 50, timeout: float = 60.0) -> dict[str, int]:
    """Sends `messages` messages over `sessions` concurrent pipelining sessions (one
    MAIL+RCPT+DATA flight, then the body) and counts the final replies by their exact line.
    Any other reply (to MAIL, RCPT, DATA) is counted under "MAIL/RCPT/DATA: <line>"."""
    import itertools
    from collections import Counter

    next_seq = itertools.count()
    lock = threading.Lock()
    counts: Counter = Counter()
    errors: list[str] = []
    deadline = time.monotonic() + timeout

    def worker() -> None:
        try:
            with SmtpClient(port) as c:
                c.banner()
                c.ehlo()
                while time.monotonic() < deadline:
                    with lock:
                        seq = next(next_seq)
                    if seq >= messages:
                        break
                    msg = make_message(f"{id_prefix}-{seq}", body)
                    c.send(b"MAIL FROM:<bulk@client.example>\r\nRCPT TO:<rcpt@example.test>\r\nDATA\r\n")
                    env = [c.read_reply() for _ in range(3)]
                    if [r.code for r in env] != [250, 250, 354]:
                        with lock:
                            counts["MAIL/RCPT/DATA: " + " | ".join(r.line for r in env)] += 1
                        c.cmd("RSET")
                        continue
                    c.send(dot_stuff(msg) + b".\r\n")
                    final = c.read_reply()
                    with lock:
                        counts[final.line] += 1
                c.cmd("QUIT")
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic() + 5))
    assert not any(t.is_alive() for t in threads), "bulk sender threads did not finish"
    assert not errors, f"bulk sender errors: {errors[:5]}"
    return dict(counts)
