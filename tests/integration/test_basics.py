"""Basics: EHLO capabilities and the --no-* switches, messages from real clients (smtplib,
swaks, Postfix smtp-source) and the digest log's accounting and fingerprints, BDAT vs DATA."""

import random
import smtplib
import subprocess

import pytest

from sinklib import HOST, SmtpClient, dot_stuff, fingerprint, make_message, unstuff, wait_digest

DEFAULT_EHLO = ["localhost", "PIPELINING", "SIZE 36700160", "8BITMIME", "SMTPUTF8",
                "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"]


def test_banner_and_ehlo_capabilities(sink):
    s = sink()
    with SmtpClient(s.port) as c:
        assert c.banner().line == "220 localhost ESMTP ringmta"
        r = c.cmd("EHLO client.example")
        assert r.code == 250
        assert r.lines == DEFAULT_EHLO
        assert c.cmd("QUIT").line == "221 2.0.0 Bye"
        c.expect_closed()


def test_hostname_in_banner_and_ehlo(sink):
    s = sink("--hostname", "mx.sink.test")
    with SmtpClient(s.port) as c:
        assert c.banner().line == "220 mx.sink.test ESMTP ringmta"
        assert c.cmd("EHLO client.example").lines[0] == "mx.sink.test"
        assert c.cmd("HELO client.example").line == "250 mx.sink.test"


# Each switch removes its keyword (and only it), and the server then refuses what the
# extension would have allowed.
NO_FLAGS = [
    ("--no-pipelining", "PIPELINING", None, None),
    ("--no-size", "SIZE 36700160", "MAIL FROM:<a@client.example> SIZE=100", "555 5.5.4"),
    ("--no-8bitmime", "8BITMIME", "MAIL FROM:<a@client.example> BODY=8BITMIME", "555 5.5.4"),
    ("--no-smtputf8", "SMTPUTF8", "MAIL FROM:<a@client.example> SMTPUTF8", "555 5.5.4"),
    ("--no-enhancedstatuscodes", "ENHANCEDSTATUSCODES", "MAIL FROM:<a@client.example>", "250 Sender ok"),
    ("--no-chunking", "CHUNKING", None, None),
    ("--no-dsn", "DSN", "MAIL FROM:<a@client.example> RET=HDRS", "555 5.5.4"),
]


@pytest.mark.parametrize("flag,keyword,probe,expected", NO_FLAGS, ids=[f[0] for f in NO_FLAGS])
def test_no_flag_removes_keyword(sink, flag, keyword, probe, expected):
    s = sink(flag)
    with SmtpClient(s.port) as c:
        c.banner()
        r = c.cmd("EHLO client.example")
        assert r.lines == [k for k in DEFAULT_EHLO if k != keyword]
        if probe:
            assert c.cmd(probe).line.startswith(expected)
        if flag == "--no-chunking":
            assert c.cmd("MAIL FROM:<a@client.example>").line == "250 2.1.0 Sender ok"
            assert c.cmd("RCPT TO:<b@example.test>").line == "250 2.1.5 Recipient ok"
            # RFC 3030 2: a BDAT that was not offered is read and dropped, then 502.
            c.send("BDAT 4 LAST\r\nQUIT")
            assert c.read_reply().line == "502 5.5.1 Error: command not implemented"
            assert c.cmd("NOOP").line == "250 2.0.0 Ok"


def test_message_via_smtplib(sink, tmp_path):
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log))
    msg = make_message("smtplib-1", b"Hello from smtplib.\r\n")
    with smtplib.SMTP(HOST, s.port, local_hostname="client.example", timeout=10) as c:
        code, text = c.ehlo()
        assert code == 250
        assert c.sendmail("a@client.example", ["b@example.test"], msg) == {}
        code, text = c.quit()
        assert (code, text) == (221, b"2.0.0 Bye")
    lines = wait_digest(log, 1)
    assert len(lines) == 1
    fp = fingerprint(msg)
    assert lines[0].fingerprint == fp
    assert (fp.id, fp.octets) == ("smtplib-1", len(b"Hello from smtplib.\r\n"))
    assert lines[0].rcpts == ("b@example.test",)


def test_message_via_swaks(sink, tmp_path):
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log))
    p = subprocess.run(
        ["swaks", "--server", HOST, "--port", str(s.port), "--helo", "client.example",
         "--from", "x@client.example", "--to", "a@example.test,b@example.test",
         "--header", "X-Ringmta-Id: swaks-1", "--timeout", "10",
         "--body", "first\n.dot line\n..two dots\nlast"],
        capture_output=True, timeout=30,
    )
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    assert "<-  250 2.0.0 Message accepted" in out
    assert "<-  221 2.0.0 Bye" in out
    # The body as swaks sent it (its transcript), from the header section's end to the dot.
    sent = [l[4:].rstrip("\r") for l in out.split("\n") if l.startswith(" -> ")]
    data = sent[sent.index("DATA") + 1 :]
    message = "".join(l + "\r\n" for l in data[: data.index(".")]).encode()
    body = unstuff(message).split(b"\r\n\r\n", 1)[1]
    assert body.startswith(b"first\r\n.dot line\r\n..two dots\r\nlast\r\n")
    lines = wait_digest(log, 1)
    assert len(lines) == 1
    assert lines[0].fingerprint == fingerprint(message, stuffed=True)
    assert lines[0].id == "swaks-1"
    assert lines[0].octets == len(body)
    assert lines[0].rcpts == ("a@example.test", "b@example.test")


@pytest.mark.timeout(90)
def test_smtp_source_2000_messages(sink, tmp_path):
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log))
    p = subprocess.run(
        ["/usr/sbin/smtp-source", "-d", "-s", "20", "-m", "2000", "-l", "1024",
         "-f", "sender@client.example", "-t", "rcpt@example.test", "-M", "client.example",
         f"{HOST}:{s.port}"],
        capture_output=True, timeout=80,
    )
    # smtp-source stops with "fatal" at the first reply that is not the expected one.
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    assert p.stderr == b""
    lines = wait_digest(log, 2000, timeout=20)
    assert len(lines) == 2000
    assert {l.rcpts for l in lines} == {("rcpt@example.test",)}
    # Every message is the same 1024-octet pattern: one body size and one hash.
    assert len({(l.octets, l.sha256) for l in lines}) == 1
    assert lines[0].octets >= 1024


def _dot_bodies():
    rng = random.Random(5321)
    bodies = [
        b"",
        b".\r\n",
        b"..\r\n...\r\n",
        b".leading\r\nmiddle . dot\r\n.\r\n..x\r\n",
        b"\r\n.\r\n\r\n",
        b"line\r\n.\r\n.\r\nQUIT\r\n",
        b". \r\n.\t\r\n",
    ]
    for _ in range(30):
        lines = []
        for _ in range(rng.randint(1, 60)):
            n = rng.randint(0, 900)
            lead = rng.choice([b"", b".", b"..", b"x"])
            lines.append(lead + bytes(rng.choice(b"abc .xyz-=") for _ in range(n)))
        bodies.append(b"\r\n".join(lines) + b"\r\n")
    bodies.append(b"".join(b"." * (i % 5) + b"big line %d\r\n" % i for i in range(5000)))
    return bodies


def test_smtplib_ids_and_leading_dots_match_digest(sink, tmp_path):
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log))
    expected = {}
    with smtplib.SMTP(HOST, s.port, local_hostname="client.example", timeout=20) as c:
        for i, body in enumerate(_dot_bodies()):
            msg_id = f"dots-{i}"
            rcpts = [f"r{k}@example.test" for k in range(1 + i % 3)]
            msg = make_message(msg_id, body, subject=f"dots {i}")
            assert c.sendmail("a@client.example", rcpts, msg) == {}
            fp = fingerprint(msg)
            assert fp.id == msg_id and fp.octets == len(body)
            expected[msg_id] = (fp, tuple(rcpts))
    lines = wait_digest(log, len(expected))
    assert len(lines) == len(expected)
    got = {l.id: (l.fingerprint, l.rcpts) for l in lines}
    assert len(got) == len(lines), "an id appears twice in the digest log"
    for msg_id, want in expected.items():
        assert got.get(msg_id) == want, msg_id


def test_bdat_gives_the_same_digest_as_data(sink, tmp_path):
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log))
    body = b".dot first\r\n..two\r\nplain\r\n.\r\nend\r\n"
    msg = make_message("same-id", body)
    with SmtpClient(s.port) as c:
        c.banner()
        assert "CHUNKING" in c.ehlo().lines
        # DATA: dot-stuffed on the wire.
        replies, final = c.send_message("a@client.example", ["b@example.test"], msg)
        assert [r.line for r in replies] == ["250 2.1.0 Sender ok", "250 2.1.5 Recipient ok",
                                             "354 End data with <CR><LF>.<CR><LF>"]
        assert final.line == "250 2.0.0 Message accepted"
        # BDAT: the same message raw, in two chunks cut inside a line, pipelined.
        cut = len(msg) - len(body) + 5
        c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.test>\r\n"
               + b"BDAT %d\r\n" % cut + msg[:cut]
               + b"BDAT %d LAST\r\n" % (len(msg) - cut) + msg[cut:])
        assert c.read_reply().line == "250 2.1.0 Sender ok"
        assert c.read_reply().line == "250 2.1.5 Recipient ok"
        assert c.read_reply().line == f"250 2.0.0 {cut} octets received"
        assert c.read_reply().line == "250 2.0.0 Message accepted"
        assert c.cmd("QUIT").line == "221 2.0.0 Bye"
    lines = wait_digest(log, 2)
    assert len(lines) == 2
    want = fingerprint(msg)
    assert want == fingerprint(dot_stuff(msg), stuffed=True)
    assert lines[0].fingerprint == want, "DATA"
    assert lines[1].fingerprint == want, "BDAT"
    assert (want.id, want.octets) == ("same-id", len(body))


def test_id_header_variants(sink, tmp_path):
    """The id is the first X-Ringmta-Id header, any case, trimmed; none gives "-"."""
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log))
    messages = [
        (b"x-ringmta-id:\t spaced \t\r\n\r\nbody 1\r\n", "spaced"),
        (b"X-RINGMTA-ID: first\r\nX-Ringmta-Id: second\r\n\r\nbody 2\r\n", "first"),
        (b"Subject: folded\r\n continued\r\nX-Ringmta-Id: after-fold\r\n\r\nbody 3\r\n", "after-fold"),
        (b"Subject: no id\r\n\r\nX-Ringmta-Id: in-body\r\n", "-"),
        (b"X-Ringmta-Id: only-headers\r\n", "only-headers"),
    ]
    with smtplib.SMTP(HOST, s.port, local_hostname="client.example", timeout=10) as c:
        for m, _ in messages:
            assert c.sendmail("a@client.example", ["b@example.test"], m) == {}
    lines = wait_digest(log, len(messages))
    assert [l.id for l in lines] == [want for _, want in messages]
    assert [l.fingerprint for l in lines] == [fingerprint(m) for m, _ in messages]
    assert lines[-1].octets == 0  # no empty line: no body
