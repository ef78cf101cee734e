"""Bad input over a real socket. The client side of each golden transcript
(tests/golden/smtp/*.in) is replayed against ringmta-sink and its replies are compared with
the S: lines of the .ref file, while a well-behaved smtplib client keeps sending messages
on another connection the whole time. Then garbage and abrupt closes.

Where the golden handler differs from the sink's default behaviour the script is adapted:
- "250 2.0.0 Ok: queued as N" (the golden driver's resume text) is the sink's
  "250 2.0.0 Message accepted";
- the golden handler refuses recipients "reject*" (550 5.1.1) and "defer*" (450 4.2.0); the
  sink's magic recipients give the same codes, so those recipients become "permfail+reject*"
  and "tempfail+defer*" and only the reply texts are mapped;
- its refusal of the sender "reject@" (550 5.7.1) has no sink equivalent: that one command
  and its reply are left out;
- !config keys become flags (starttls=on is --starttls on with the test CA's certificate,
  require_tls=on makes it --starttls required);
- at !tls the replay does a real TLS handshake (Python's ssl) and sends the rest over TLS.
  Steps sent after the 220 to STARTTLS but before !tls (plaintext "before the handshake
  completes", which the sans-I/O session drops) are left out: on a socket those bytes reach
  the TLS layer, which fails the handshake (test_tls.py checks that case)."""

import random
import re
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sinklib import (HOST, SmtpClient, SteadyClient, c_escape, fingerprint, make_message, parse_ref,
                     parse_script, wait_digest)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "smtp"

CONFIG_FLAGS = {
    "hostname": lambda v: ["--hostname", v],
    "max_message_size": lambda v: ["--max-message-size", v],
    "max_recipients": lambda v: ["--max-recipients", v],
}
for _ext in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking", "dsn"):
    CONFIG_FLAGS[_ext] = (lambda e: lambda v: [] if v in ("on", "true", "1") else [f"--no-{e}"])(_ext)

TEXT_MAP = {
    "Recipient rejected by test policy": "No such mailbox (permfail+ recipient)",
    "Recipient deferred by test policy": "Mailbox temporarily unavailable (tempfail+ recipient)",
}
SENDER_REJECT_STEP = b"MAIL FROM:<reject@client.example>\r\n"
SENDER_REJECT_REPLY = "550 5.7.1 Sender rejected by test policy"


def scripts():
    # Transcripts with AUTH need the unit harness's scripted verdicts (a user "tempfail" gets
    # 454, ...), which no server binary has: they run in tests/unit (whole, cut at every
    # byte); AUTH over a socket is tested against the relay in test_relay_tls.py.
    names = sorted(p.stem for p in GOLDEN.glob("*.in")
                   if not re.search(r"^!config .*\bauth=on\b", p.read_text(), re.M))
    assert len(names) >= 9, f"golden transcripts missing in {GOLDEN}"
    return names


def flags_for(config: dict[str, str], ca: Path) -> list[str]:
    args = ["--hostname", "localhost"]
    on = ("on", "true", "1")
    if config.get("starttls") in on:
        mode = "required" if config.get("require_tls") in on else "on"
        args += ["--starttls", mode, "--tls-cert", str(ca / "server.pem"), "--tls-key", str(ca / "server.key")]
    for k, v in config.items():
        if k in ("starttls", "require_tls"):
            continue
        args += CONFIG_FLAGS[k](v)
    return args


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ca")
    subprocess.run([str(Path(__file__).resolve().parents[2] / "scripts" / "make-test-ca"), str(d)],
                   check=True, timeout=60, stdout=subprocess.DEVNULL)
    return d


def adapt(steps: list[bytes], expected: list[str]) -> tuple[list[bytes], list[str]]:
    out_steps = []
    removed = 0
    for st in steps:
        if st == SENDER_REJECT_STEP:
            removed += 1
            continue
        st = re.sub(rb"(RCPT TO:<)(reject)", rb"\1permfail+\2", st)
        st = re.sub(rb"(RCPT TO:<)(defer)", rb"\1tempfail+\2", st)
        out_steps.append(st)
    out_expected = []
    for line in expected:
        if line == SENDER_REJECT_REPLY and removed:
            removed -= 1
            continue
        line = re.sub(r"^250 2\.0\.0 Ok: queued as \d+$", "250 2.0.0 Message accepted", line)
        for a, b in TEXT_MAP.items():
            line = line.replace(a, b)
        out_expected.append(line)
    assert removed == 0, "a removed sender step had no matching reply"
    return out_steps, out_expected


def replay(port: int, steps: list[bytes], pause: float = 0.003, timeout: float = 20.0) -> list[str]:
    """Sends each step as its own write while a reader collects every reply line until the
    server closes (each script ends with QUIT)."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    received = bytearray()
    done = threading.Event()

    def reader():
        try:
            while True:
                b = sock.recv(65536)
                if not b:
                    break
                received.extend(b)
        except OSError:
            pass
        finally:
            done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        for st in steps:
            sock.sendall(st)
            time.sleep(pause)
        assert done.wait(timeout), f"the sink did not close after QUIT; received {bytes(received)!r}"
    finally:
        sock.close()
        t.join(5)
    text = bytes(received)
    assert text.endswith(b"\r\n"), f"partial reply at the end: {text[-200:]!r}"
    return [c_escape(l) for l in text[:-2].split(b"\r\n")]


def replay_tls(port: int, before: list[bytes], after: list[bytes], ca: Path, pause: float = 0.003,
               timeout: float = 20.0) -> list[str]:
    """As replay(), with a real TLS handshake between `before` (plaintext, ending with the
    STARTTLS) and `after` (over TLS). One thread: the SSL socket is read between sends."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    received = bytearray()
    try:
        for st in before:
            sock.sendall(st)
            time.sleep(pause)
        ready = b"220 2.0.0 Ready to start TLS\r\n"
        while not received.endswith(ready):
            b = sock.recv(1)  # byte by byte: nothing behind the 220 may be read as plaintext
            assert b, f"closed before the 220 to STARTTLS; received {bytes(received)!r}"
            received += b
        ctx = ssl.create_default_context(cafile=str(ca / "ca.pem"))
        tls = ctx.wrap_socket(sock, server_hostname="localhost")

        def drain(wait: float) -> bool:
            tls.settimeout(wait)
            try:
                while True:
                    b = tls.recv(65536)
                    if not b:
                        return False
                    received.extend(b)
            except (socket.timeout, ssl.SSLWantReadError):
                return True

        for st in after:
            tls.sendall(st)
            time.sleep(pause)
            drain(0.02)
        deadline = time.monotonic() + timeout
        while drain(0.2):
            assert time.monotonic() < deadline, f"the sink did not close after QUIT; received {bytes(received)!r}"
    finally:
        sock.close()
    text = bytes(received)
    assert text.endswith(b"\r\n"), f"partial reply at the end: {text[-200:]!r}"
    return [c_escape(l) for l in text[:-2].split(b"\r\n")]


@pytest.mark.parametrize("name", scripts())
def test_golden_transcript_replayed_on_a_socket(sink, tmp_path, name, test_ca):
    script = parse_script(GOLDEN / f"{name}.in")
    ref = parse_ref(GOLDEN / f"{name}.ref")
    flags = flags_for(script.config, test_ca)
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log), *flags)
    tls_ctx = ssl.create_default_context(cafile=str(test_ca / "ca.pem")) if script.tls else None
    steady = SteadyClient(s.port, prefix=f"bg-{name}", tls_context=tls_ctx)
    steady.start()
    try:
        steady.wait_sent(2)  # sending before the replay starts...
        steps, expected = adapt(script.steps, ref.replies)
        if script.tls:
            starttls = max(i for i, st in enumerate(steps[:script.tls_at]) if b"STARTTLS\r\n" in st)
            got = replay_tls(s.port, steps[:starttls + 1], steps[script.tls_at:], test_ca)
        else:
            got = replay(s.port, steps)
        steady.wait_sent(len(steady.sent) + 2)  # ...and still after it ends
    finally:
        steady.stop()
    assert got == expected

    # Exactly the messages the transcript delivers reach the digest log, with their content.
    want = [fingerprint(body, stuffed=(fmt == "dot-stuffed")) for body, fmt in zip(ref.messages, ref.formats)]
    assert len(want) == sum(1 for l in expected if l == "250 2.0.0 Message accepted")
    assert not steady.errors, steady.errors
    lines = wait_digest(log, len(want) + len(steady.sent))
    mine = [l for l in lines if not l.id.startswith("bg-")]
    assert [l.fingerprint for l in mine] == want
    assert [len(l.rcpts) for l in mine] == ref.rcpts_per_message
    # The concurrent client: every message accepted once, with its content.
    bg = sorted((l.id, l.fingerprint) for l in lines if l.id.startswith("bg-"))
    assert bg == sorted((i, fingerprint(f"X-Ringmta-Id: {i}\r\n\r\nsteady\r\n.dot\r\n".encode())) for i in steady.sent)

    if name == "smuggling_bare_newlines":
        assert expected.count("554 5.6.0 Error: bare CR or LF in message data (RFC 5321 2.3.8)") == 7
        assert len(mine) == 1 and mine[0].rcpts == ("b@example.test",)
        assert mine[0].fingerprint == fingerprint(b"Subject: clean\r\n\r\nok\r\n")
        assert not any("victim@example.test" in l.rcpts for l in lines), "a smuggled message was accepted"
    if name == "pipelined_three_recipients":
        assert [l.rcpts for l in mine] == [("alice@example.test", "carol@example.test"), ("Postmaster",)]


SMUGGLING = [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\n.\r\n\r\n"]


@pytest.mark.parametrize("fake_end", SMUGGLING, ids=[repr(x) for x in SMUGGLING])
def test_smuggling_variant_gets_554_and_no_second_message(sink, tmp_path, fake_end):
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log))
    with SmtpClient(s.port) as c:
        c.banner()
        c.ehlo()
        c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
        c.send(b"X-Ringmta-Id: outer\r\n\r\nx" + fake_end
               + b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n"
               + b"X-Ringmta-Id: smuggled\r\n\r\nforged\r\n.\r\n")
        assert c.read_reply().line == "554 5.6.0 Error: bare CR or LF in message data (RFC 5321 2.3.8)"
        # nothing else was answered: the smuggled commands were message data
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        _, final = c.send_message("a@client.example", ["b@example.test"], make_message("after", b"ok\r\n"))
        assert final.line == "250 2.0.0 Message accepted"
    lines = wait_digest(log, 1)
    assert [l.id for l in lines] == ["after"]


def test_bdat_with_unreadable_size_closes(sink):
    s = sink()
    with SmtpClient(s.port) as c:
        c.banner()
        c.ehlo()
        c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.test>\r\nBDAT lots LAST\r\nNOOP\r\n")
        assert c.read_reply().code == 250
        assert c.read_reply().code == 250
        assert c.read_reply().line == "501 5.5.4 Error: BDAT chunk size unreadable; closing"
        assert c.expect_closed() == b""


@pytest.mark.timeout(60)
def test_garbage_and_abrupt_closes_leave_the_sink_serving(sink, tmp_path):
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log))
    steady = SteadyClient(s.port, prefix="bg-garbage")
    steady.start()
    rng = random.Random(2023)
    try:
        steady.wait_sent(2)
        for i in range(60):
            kind = i % 4
            with socket.create_connection((HOST, s.port), timeout=5) as sock:
                if kind == 0:  # random bytes, then close without reading
                    sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randint(1, 5000))))
                elif kind == 1:  # a long line without an end, then close
                    sock.sendall(b"EHLO " + b"x" * 200_000)
                elif kind == 2:  # mid-DATA close
                    sock.sendall(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
                                 + b"X-Ringmta-Id: never\r\n\r\n" + b"half a message\r\n" * 100)
                else:  # NUL bytes and lone CRs in commands, pipelined, then reset
                    sock.sendall(b"EHLO c\x00\r\nNOOP\r\r\nRSET\n\x00\x00\r\n" * 50)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        with SmtpClient(s.port) as c:
            c.banner()
            c.ehlo()
            _, final = c.send_message("a@client.example", ["b@example.test"], make_message("survivor", b"ok\r\n"))
            assert final.line == "250 2.0.0 Message accepted"
        steady.wait_sent(len(steady.sent) + 2)
    finally:
        steady.stop()
    assert not steady.errors, steady.errors
    lines = wait_digest(log, 1 + len(steady.sent))
    assert sorted(l.id for l in lines if not l.id.startswith("bg-")) == ["survivor"]
    assert len(lines) == 1 + len(steady.sent)
