"""The behaviour table, each row over a real socket: per-phase rules and actions, delays,
failure rates, per-domain overrides, magic recipients, greylisting, rate and connection
limits, the message size limit. Replies are asserted to the code, enhanced code and text."""

import statistics
import time

import pytest

from sinklib import SmtpClient, bulk_send, dot_stuff, make_message, metric, scrape, wait_digest


def toml(tmp_path, text: str, name: str = "sink.toml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def rule(phase: str, reply: str | None = None, action: str | None = None, extra: str = "") -> str:
    t = f'[[rule]]\nphase = "{phase}"\nprobability = 1.0\n'
    if action:
        t += f'action = "{action}"\n'
    if reply:
        t += f'reply = "{reply}"\n'
    return t + extra


def digest_sink(sink, tmp_path, *args):
    log = tmp_path / "digest.log"
    return sink("--mode", "digest", "--digest-log", str(log), *args), log


def greet(c: SmtpClient) -> None:
    assert c.banner().line == "220 localhost ESMTP ringmta"
    c.ehlo()


# ---- Per-phase reply rules --------------------------------------------------------------------


def test_connect_rule_554(sink, tmp_path):
    s = sink("--config", toml(tmp_path, 'listen = "127.0.0.1:0"\n' + rule("connect", "554 5.7.1 No SMTP service for you")))
    with SmtpClient(s.port) as c:
        banner = c.banner()
        assert banner.code == 554
        # RFC 5321 3.1: after a 554 greeting only QUIT is served.
        assert c.cmd("EHLO client.example").line == "503 5.5.1 Error: no SMTP service here"
        assert c.cmd("MAIL FROM:<a@client.example>").line == "503 5.5.1 Error: no SMTP service here"
        assert c.cmd("QUIT").line == "221 2.0.0 Bye"
        assert c.expect_closed() == b""
    assert banner.line == "554 5.7.1 No SMTP service for you"


def test_connect_rule_421(sink, tmp_path):
    s = sink("--config", toml(tmp_path, 'listen = "127.0.0.1:0"\n' + rule("connect", "421 4.3.2 System not accepting network messages")))
    with SmtpClient(s.port) as c:
        banner = c.banner()
        assert banner.code == 421
        assert c.expect_closed() == b""
    assert banner.line == "421 4.3.2 System not accepting network messages"


PHASE_RULES = [
    # phase, the configured (and expected) reply
    ("ehlo", "550 5.7.1 Client host rejected"),
    ("mail", "451 4.3.1 Insufficient system storage"),
    ("rcpt", "550 5.1.1 User unknown"),
    ("data", "554 5.3.0 Data refused"),
    ("end-of-data", "452 4.3.1 Queue full"),
]


@pytest.mark.parametrize("phase,reply", PHASE_RULES, ids=[p[0] for p in PHASE_RULES])
def test_phase_rule_reply(sink, tmp_path, phase, reply):
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log),
             "--config", toml(tmp_path, 'listen = "127.0.0.1:0"\n' + rule(phase, reply)))
    with SmtpClient(s.port) as c:
        assert c.banner().line == "220 localhost ESMTP ringmta"
        r = c.cmd("EHLO client.example")
        if phase == "ehlo":
            assert r.line == reply
            assert c.cmd("HELO client.example").line == reply
            assert c.cmd("MAIL FROM:<a@client.example>").line == "503 5.5.1 Error: send HELO/EHLO first"
        else:
            assert r.code == 250
            r = c.cmd("MAIL FROM:<a@client.example>")
            if phase == "mail":
                assert r.line == reply
                assert c.cmd("RCPT TO:<b@example.test>").line == "503 5.5.1 Error: need MAIL command"
            else:
                assert r.line == "250 2.1.0 Sender ok"
                r = c.cmd("RCPT TO:<b@example.test>")
                if phase == "rcpt":
                    assert r.line == reply
                    assert c.cmd("DATA").line == "554 5.5.1 Error: no valid recipients"
                else:
                    assert r.line == "250 2.1.5 Recipient ok"
                    r = c.cmd("DATA")
                    if phase == "data":
                        assert r.line == reply
                    else:
                        assert r.line == "354 End data with <CR><LF>.<CR><LF>"
                        c.send(dot_stuff(make_message("refused-1", b"body\r\n")) + b".\r\n")
                        assert c.read_reply().line == reply
        # The session goes on after every refusal.
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        assert c.cmd("QUIT").line == "221 2.0.0 Bye"
    assert wait_digest(log, 0) == []


# ---- Disconnects ------------------------------------------------------------------------------


def _drive_until(c: SmtpClient, phase: str) -> None:
    """Runs the session up to (and including) the command of `phase`, without reading its reply."""
    if phase == "connect":
        return
    greet_line = c.banner().line
    assert greet_line == "220 localhost ESMTP ringmta"
    steps = [("ehlo", "EHLO client.example"), ("mail", "MAIL FROM:<a@client.example>"),
             ("rcpt", "RCPT TO:<b@example.test>"), ("data", "DATA")]
    for name, cmd in steps:
        if name == phase:
            c.send(cmd + "\r\n")
            return
        assert c.cmd(cmd).code in (250, 354)
    c.send(dot_stuff(make_message("cut-1", b"body\r\n")) + b".\r\n")


@pytest.mark.parametrize("phase", ["connect", "ehlo", "mail", "rcpt", "data", "end-of-data"])
def test_disconnect_without_reply(sink, tmp_path, phase):
    s, log = digest_sink(sink, tmp_path, "--config",
                         toml(tmp_path, 'listen = "127.0.0.1:0"\n' + rule(phase, action="disconnect")))
    with SmtpClient(s.port) as c:
        _drive_until(c, phase)
        assert c.expect_closed() == b"", "a reply came before the close"
    assert wait_digest(log, 0) == []


def test_disconnect_rate_1_closes_at_end_of_data(sink, tmp_path):
    s, log = digest_sink(sink, tmp_path, "--disconnect-rate", "1")
    with SmtpClient(s.port) as c:
        _drive_until(c, "end-of-data")
        assert c.expect_closed() == b""
    assert wait_digest(log, 0) == []


REPLY_AND_DISCONNECT = [
    ("mail", None, "421 4.3.2 Service not available, closing transmission channel"),
    ("rcpt", "421 4.7.0 Too busy, closing", "421 4.7.0 Too busy, closing"),
    ("end-of-data", "554 5.7.0 Go away", "554 5.7.0 Go away"),
]


@pytest.mark.parametrize("phase,configured,expected", REPLY_AND_DISCONNECT, ids=[r[0] for r in REPLY_AND_DISCONNECT])
def test_reply_and_disconnect(sink, tmp_path, phase, configured, expected):
    s, log = digest_sink(sink, tmp_path, "--config", toml(
        tmp_path, 'listen = "127.0.0.1:0"\n' + rule(phase, configured, action="reply-and-disconnect")))
    with SmtpClient(s.port) as c:
        _drive_until(c, phase)
        assert c.read_reply().line == expected
        assert c.expect_closed() == b""
    assert wait_digest(log, 0) == []


def test_disconnect_keeps_the_replies_to_earlier_pipelined_commands(sink, tmp_path):
    """A disconnect withholds the reply to the command it applies to, not the replies the
    sink already owes to commands before it in the same pipelined flight (RFC 2920). Above
    all not the 250 of a message it logged as accepted: a client that never saw that 250
    retries it, and the harness counts a duplicate."""
    s, log = digest_sink(sink, tmp_path)
    with SmtpClient(s.port) as c:
        greet(c)
        assert [c.cmd(x).code for x in ("MAIL FROM:<a@client.example>", "RCPT TO:<b@example.test>", "DATA")] == [250, 250, 354]
        # the final dot, and the next transaction pipelined behind it, in one write
        c.send(dot_stuff(make_message("first", b"accepted\r\n")) + b".\r\n"
               + b"MAIL FROM:<a@client.example>\r\nRCPT TO:<disconnect+x@example.test>\r\n")
        got = c.expect_closed()
    lines = wait_digest(log, 1)
    assert [l.id for l in lines] == ["first"]
    assert got == b"250 2.0.0 Message accepted\r\n250 2.1.0 Sender ok\r\n", (
        f"before the close the sink sent {got!r}; message 'first' is in the digest log")


def test_disconnect_mid_data_keeps_the_replies_to_mail_and_rcpt(sink, tmp_path):
    s, log = digest_sink(sink, tmp_path, "--config", toml(tmp_path, 'listen = "127.0.0.1:0"\n' + rule(
        "data", action="disconnect-mid-data", extra="after-bytes = 100\n")))
    msg = make_message("cut-bdat", b"z" * 1000 + b"\r\n")
    with SmtpClient(s.port) as c:
        greet(c)
        # BDAT pipelined with MAIL and RCPT, as a CHUNKING client sends it
        c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.test>\r\n"
               + b"BDAT %d LAST\r\n" % len(msg) + msg)
        got = c.expect_closed()
    assert wait_digest(log, 0) == []
    assert got == b"250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n", f"before the close: {got!r}"


def test_disconnect_mid_data(sink, tmp_path):
    cfg = toml(tmp_path, """
[[listener]]
listen = "127.0.0.1:0"

[[listener]]
listen = "127.0.0.1:0"
[[listener.rule]]
phase = "data"
action = "disconnect-mid-data"
after-bytes = 4096
""")
    s, log = digest_sink(sink, tmp_path, "--config", cfg)
    assert len(s.addresses) == 2
    plain, cutting = s.addresses[0][1], s.addresses[1][1]
    big = make_message("cut-mid-data", b"0123456789abcdefghijklmnopqrstuvwxyz\r\n" * 2000)
    with SmtpClient(cutting) as c:
        greet(c)
        assert c.cmd("MAIL FROM:<a@client.example>").line == "250 2.1.0 Sender ok"
        assert c.cmd("RCPT TO:<b@example.test>").line == "250 2.1.5 Recipient ok"
        assert c.cmd("DATA").line == "354 End data with <CR><LF>.<CR><LF>"
        try:
            c.send(dot_stuff(big) + b".\r\n")
        except OSError:
            pass  # the sink may already have closed: that is the point
        assert c.expect_closed() == b"", "the sink answered the cut message"
    # Control: a message on the other listener is logged, the cut one never.
    with SmtpClient(plain) as c:
        greet(c)
        _, final = c.send_message("a@client.example", ["b@example.test"], make_message("control", b"ok\r\n"))
        assert final.line == "250 2.0.0 Message accepted"
    lines = wait_digest(log, 1)
    assert [l.id for l in lines] == ["control"]


# ---- Delays -----------------------------------------------------------------------------------


def timed_session(port: int, n_rcpts: int = 1) -> dict[str, list[float]]:
    """Times the reply to each phase of one lock-step transaction."""
    t = {}
    start = time.monotonic()
    with SmtpClient(port, timeout=20) as c:
        assert c.banner().code == 220
        t["connect"] = [time.monotonic() - start]

        def timed(name, cmd, code):
            t0 = time.monotonic()
            r = c.cmd(cmd)
            assert r.code == code, f"{cmd}: {r}"
            t.setdefault(name, []).append(time.monotonic() - t0)

        timed("ehlo", "EHLO client.example", 250)
        timed("mail", "MAIL FROM:<a@client.example>", 250)
        for i in range(n_rcpts):
            timed("rcpt", f"RCPT TO:<r{i}@example.test>", 250)
        timed("data", "DATA", 354)
        timed("end-of-data", dot_stuff(make_message("timed", b"x\r\n")) + b".", 250)
        c.cmd("QUIT")
    return t


def test_fixed_delay_every_phase(sink):
    s = sink("--delay", "250ms")
    t = timed_session(s.port)
    wrong = {phase: round(v[0], 4) for phase, v in t.items() if not 0.25 <= v[0] < 2.0}
    assert wrong == {}, f"reply times outside [0.25 s, 2 s): {wrong}"


def test_phase_delay_wins_over_delay(sink):
    s = sink("--delay", "100ms", "--delay-rcpt", "400ms", "--delay-mail", "0s")
    t = {k: round(v[0], 4) for k, v in timed_session(s.port).items()}
    checks = {"rcpt": t["rcpt"] >= 0.4, "mail": t["mail"] < 0.1,
              "ehlo": 0.1 <= t["ehlo"] < 0.4, "end-of-data": 0.1 <= t["end-of-data"] < 0.4}
    assert all(checks.values()), f"reply times {t}; failed: {[k for k, ok in checks.items() if not ok]}"


def test_delay_holds_after_the_sink_was_idle(sink):
    """A delay counts from the command's arrival, however long the sink (or the session)
    was idle before it."""
    s = sink("--delay-connect", "500ms", "--delay-rcpt", "500ms", "--threads", "1")
    time.sleep(1.5)  # nothing to do: the worker waits in io_uring_enter
    t0 = time.monotonic()
    with SmtpClient(s.port) as c:
        assert c.banner().code == 220
        t_banner = time.monotonic() - t0
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>").code == 250
        time.sleep(1.2)  # an idle session
        t0 = time.monotonic()
        assert c.cmd("RCPT TO:<b@example.test>").line == "250 2.1.5 Recipient ok"
        t_rcpt = time.monotonic() - t0
    assert (t_banner >= 0.5, t_rcpt >= 0.5) == (True, True), (
        f"banner after {t_banner:.3f}s, RCPT reply after {t_rcpt:.3f}s; both delays are 500ms")


def test_uniform_delay_within_bounds(sink):
    s = sink("--delay-rcpt", "uniform:50ms-150ms")
    rcpt = timed_session(s.port, n_rcpts=20)["rcpt"]
    assert min(rcpt) >= 0.05
    assert max(rcpt) < 0.15 + 0.25
    assert max(rcpt) - min(rcpt) > 0.02, f"no spread: {rcpt}"
    assert 0.06 <= statistics.mean(rcpt) <= 0.2


def test_lognormal_delay_around_its_median(sink):
    s = sink("--delay-rcpt", "lognormal:40ms,0.5")
    rcpt = timed_session(s.port, n_rcpts=40)["rcpt"]
    assert 0.02 <= statistics.median(rcpt) <= 0.09, rcpt
    assert max(rcpt) - min(rcpt) > 0.02, f"no spread: {rcpt}"


# ---- Failure rates ----------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_tempfail_rate_10_percent_of_2000(sink, tmp_path):
    s, log = digest_sink(sink, tmp_path, "--tempfail-rate", "0.1", "--metrics", "127.0.0.1:0")
    counts = bulk_send(s.port, sessions=20, messages=2000, id_prefix="tf")
    ok = counts.pop("250 2.0.0 Message accepted", 0)
    tempfail = counts.pop("451 4.3.0 Temporary failure, please try again later", 0)
    assert counts == {}, f"unexpected replies: {counts}"
    assert ok + tempfail == 2000
    assert 160 <= tempfail <= 240, f"{tempfail} tempfails out of 2000 (expected 200 +- 40)"
    lines = wait_digest(log, ok)
    assert len(lines) == ok
    assert len({l.id for l in lines}) == ok
    m = scrape(s.metrics_addr)
    assert metric(m, "ringmta_sink_messages_total", outcome="accepted") == ok
    assert metric(m, "ringmta_sink_messages_total", outcome="tempfail") == tempfail


# ---- Per-domain behaviour ---------------------------------------------------------------------

DOMAINS = """
listen = "127.0.0.1:0"

# Unknown domains are refused; the domain tables below replace this profile whole.
[[rule]]
phase = "rcpt"
reply = "550 5.1.2 Unknown domain"

[domain."gmail.test"]

[domain."slow.test"]
delay-rcpt = "300ms"
delay-end-of-data = "200ms"

[domain."broken.test"]
[[domain."broken.test".rule]]
phase = "end-of-data"
reply = "451 4.4.1 Broken backend"
"""


def test_per_domain_overrides(sink, tmp_path):
    s, log = digest_sink(sink, tmp_path, "--config", toml(tmp_path, DOMAINS))

    def one(rcpt: str, msg_id: str):
        with SmtpClient(s.port) as c:
            greet(c)
            assert c.cmd("MAIL FROM:<a@client.example>").line == "250 2.1.0 Sender ok"
            t0 = time.monotonic()
            r = c.cmd(f"RCPT TO:<{rcpt}>")
            t_rcpt = time.monotonic() - t0
            if r.code != 250:
                return r.line, None, t_rcpt, None
            assert c.cmd("DATA").code == 354
            t0 = time.monotonic()
            c.send(dot_stuff(make_message(msg_id, b"to " + rcpt.encode() + b"\r\n")) + b".\r\n")
            final = c.read_reply()
            return r.line, final.line, t_rcpt, time.monotonic() - t0

    rcpt, final, t_rcpt, t_end = one("user@gmail.test", "gmail")
    assert (rcpt, final) == ("250 2.1.5 Recipient ok", "250 2.0.0 Message accepted")
    assert t_rcpt < 0.2 and t_end < 0.2
    rcpt, final, t_rcpt, t_end = one("User@GMAIL.Test", "gmail-upper")
    assert (rcpt, final) == ("250 2.1.5 Recipient ok", "250 2.0.0 Message accepted")
    rcpt, final, slow_rcpt, slow_end = one("user@slow.test", "slow")
    assert (rcpt, final) == ("250 2.1.5 Recipient ok", "250 2.0.0 Message accepted")
    rcpt, final, _, _ = one("user@broken.test", "broken")
    assert (rcpt, final) == ("250 2.1.5 Recipient ok", "451 4.4.1 Broken backend")
    for other in ("user@other.test", "user@mx.gmail.test"):
        rcpt, final, _, _ = one(other, "other")
        assert (rcpt, final) == ("550 5.1.2 Unknown domain", None), other
    lines = wait_digest(log, 3)
    assert sorted((l.id, l.rcpts) for l in lines) == [
        ("gmail", ("user@gmail.test",)), ("gmail-upper", ("User@GMAIL.Test",)), ("slow", ("user@slow.test",))]
    assert (slow_rcpt >= 0.3, slow_end >= 0.2) == (True, True), (
        f"slow.test: RCPT reply after {slow_rcpt:.4f}s (delay 300ms), end of data after {slow_end:.4f}s (delay 200ms)")


# ---- Magic recipients -------------------------------------------------------------------------


def test_magic_local_parts(sink, tmp_path):
    s, log = digest_sink(sink, tmp_path)

    def txn(c, rcpt, msg_id):
        assert c.cmd("MAIL FROM:<a@client.example>").line == "250 2.1.0 Sender ok"
        t0 = time.monotonic()
        r = c.cmd(f"RCPT TO:<{rcpt}>")
        t_rcpt = time.monotonic() - t0
        if r.code != 250:
            assert c.cmd("RSET").line == "250 2.0.0 Ok"
            return r.line, None, t_rcpt, 0.0
        assert c.cmd("DATA").code == 354
        t0 = time.monotonic()
        c.send(dot_stuff(make_message(msg_id, b"magic\r\n")) + b".\r\n")
        final = c.read_reply().line
        return r.line, final, t_rcpt, time.monotonic() - t0

    with SmtpClient(s.port) as c:
        greet(c)
        assert txn(c, "tempfail+x@example.test", "m1")[:2] == (
            "450 4.2.0 Mailbox temporarily unavailable (tempfail+ recipient)", None)
        assert txn(c, "TempFail+x@example.test", "m1b")[:2] == (
            "450 4.2.0 Mailbox temporarily unavailable (tempfail+ recipient)", None)
        assert txn(c, "permfail+x@example.test", "m2")[:2] == (
            "550 5.1.1 No such mailbox (permfail+ recipient)", None)
        assert txn(c, "tempfail-data+x@example.test", "m3")[:2] == (
            "250 2.1.5 Recipient ok", "450 4.2.0 Message temporarily refused (tempfail-data+ recipient)")
        assert txn(c, "permfail-data+x@example.test", "m4")[:2] == (
            "250 2.1.5 Recipient ok", "550 5.1.1 Message refused (permfail-data+ recipient)")
        rcpt, final, t_rcpt, t_end = txn(c, "delay-500ms+x@example.test", "m5")
        assert (rcpt, final) == ("250 2.1.5 Recipient ok", "250 2.0.0 Message accepted")
        # a magic tag needs the '+'; "tempfail@" is an ordinary recipient
        assert txn(c, "tempfail@example.test", "m6")[:2] == ("250 2.1.5 Recipient ok", "250 2.0.0 Message accepted")
    with SmtpClient(s.port) as c:
        greet(c)
        assert c.cmd("MAIL FROM:<a@client.example>").code == 250
        c.send("RCPT TO:<disconnect+x@example.test>\r\n")
        assert c.expect_closed() == b""
    lines = wait_digest(log, 2)
    assert sorted(l.id for l in lines) == ["m5", "m6"]
    # delay-500ms+ as the first recipient delays the RCPT reply and the end-of-data reply
    assert (t_rcpt >= 0.5, t_end >= 0.5) == (True, True), (
        f"delay-500ms+: RCPT reply after {t_rcpt:.4f}s, end of data after {t_end:.4f}s")


def test_no_magic_makes_magic_recipients_ordinary(sink, tmp_path):
    s, log = digest_sink(sink, tmp_path, "--no-magic")
    with SmtpClient(s.port) as c:
        greet(c)
        rcpts = ["tempfail+x@example.test", "permfail+x@example.test", "disconnect+x@example.test",
                 "tempfail-data+x@example.test"]
        replies, final = c.send_message("a@client.example", rcpts, make_message("nomagic", b"x\r\n"))
        assert [r.line for r in replies[1:-1]] == ["250 2.1.5 Recipient ok"] * 4
        assert final.line == "250 2.0.0 Message accepted"
    lines = wait_digest(log, 1)
    assert [(l.id, l.rcpts) for l in lines] == [("nomagic", tuple(rcpts))]


# ---- Greylisting ------------------------------------------------------------------------------


def test_greylisting(sink, tmp_path):
    s, log = digest_sink(sink, tmp_path, "--greylist-wait", "1s", "--metrics", "127.0.0.1:0")
    grey = "451 4.7.1 Greylisted, please try again later"
    with SmtpClient(s.port) as c:
        greet(c)
        assert c.cmd("MAIL FROM:<a@client.example>").line == "250 2.1.0 Sender ok"
        t_first = time.monotonic()
        assert c.cmd("RCPT TO:<b@example.test>").line == grey
        assert c.cmd("RCPT TO:<b@example.test>").line == grey, "retry before the wait must stay greylisted"
        time.sleep(max(0.0, 1.15 - (time.monotonic() - t_first)))
        assert c.cmd("RCPT TO:<b@example.test>").line == "250 2.1.5 Recipient ok"
        assert c.cmd("RCPT TO:<other@example.test>").line == grey, "a new triple is greylisted"
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(make_message("grey", b"after the wait\r\n")) + b".\r\n")
        assert c.read_reply().line == "250 2.0.0 Message accepted"
        # another sender, same recipient: a new triple
        assert c.cmd("MAIL FROM:<z@client.example>").code == 250
        assert c.cmd("RCPT TO:<b@example.test>").line == grey
    lines = wait_digest(log, 1)
    assert [(l.id, l.rcpts) for l in lines] == [("grey", ("b@example.test",))]
    assert metric(scrape(s.metrics_addr), "ringmta_sink_greylisted_total") == 4


# ---- Rate limits ------------------------------------------------------------------------------


def test_rate_limit_421_closes(sink):
    s = sink("--rate-limit", "5")
    with SmtpClient(s.port) as c:
        greet(c)
        accepted = 0
        refusal = None
        for _ in range(20):
            r = c.cmd("MAIL FROM:<a@client.example>")
            if r.code != 250:
                refusal = r
                break
            accepted += 1
            assert c.cmd("RSET").code == 250
        # burst = one second's worth (5), then one token per 200 ms
        assert 5 <= accepted <= 6, accepted
        assert refusal is not None and refusal.line == "421 4.7.0 Too many messages, slow down; closing connection"
        assert c.expect_closed() == b""


@pytest.mark.timeout(30)
def test_rate_limit_451_defers_at_the_configured_rate(sink):
    s = sink("--rate-limit", "10", "--rate-limit-reply", "451", "--metrics", "127.0.0.1:0")
    with SmtpClient(s.port) as c:
        greet(c)
        accepted = refused = 0
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            r = c.cmd("MAIL FROM:<a@client.example>")
            if r.code == 250:
                accepted += 1
                assert c.cmd("RSET").code == 250
            else:
                assert r.line == "451 4.7.1 Rate limit exceeded, try again later"
                refused += 1
                time.sleep(0.002)
        # the session goes on after each 451
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
    # a burst of 10, then 10 per second for 2 s
    assert 27 <= accepted <= 33, accepted
    assert refused > 0
    assert metric(scrape(s.metrics_addr), "ringmta_sink_rate_limited_total") == refused


def test_rate_limit_burst_from_toml(sink, tmp_path):
    s = sink("--config", toml(tmp_path, 'listen = "127.0.0.1:0"\nrate-limit = 1\nrate-limit-burst = 3\n'
                                        'rate-limit-reply = 451\n'))
    with SmtpClient(s.port) as c:
        greet(c)
        got = []
        for _ in range(5):
            r = c.cmd("MAIL FROM:<a@client.example>")
            got.append(r.line)
            if r.code == 250:
                c.cmd("RSET")
    assert got == ["250 2.1.0 Sender ok"] * 3 + ["451 4.7.1 Rate limit exceeded, try again later"] * 2


def test_domain_rate_limit_counts_recipients(sink, tmp_path):
    s = sink("--config", toml(tmp_path, 'listen = "127.0.0.1:0"\n[domain."limited.test"]\nrate-limit = 2\n'
                                        'rate-limit-reply = 451\n'))
    with SmtpClient(s.port) as c:
        greet(c)
        assert c.cmd("MAIL FROM:<a@client.example>").code == 250
        got = [c.cmd(f"RCPT TO:<r{i}@limited.test>").line for i in range(3)]
        other = c.cmd("RCPT TO:<r@other.test>").line
    assert got == ["250 2.1.5 Recipient ok"] * 2 + ["451 4.7.1 Rate limit exceeded, try again later"]
    assert other == "250 2.1.5 Recipient ok"


# ---- Connection limit -------------------------------------------------------------------------


def test_connection_limit(sink):
    s = sink("--max-connections", "3")
    held = [SmtpClient(s.port) for _ in range(3)]
    try:
        for c in held:
            assert c.banner().line == "220 localhost ESMTP ringmta"
        with SmtpClient(s.port) as c:
            refused = c.banner()
            assert refused.code == 421
            assert c.expect_closed() == b""
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:
            with SmtpClient(s.port) as c:
                line = c.banner().line
            if line.startswith("220") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert line == "220 localhost ESMTP ringmta", "a freed slot is not reused"
        assert refused.line == "421 4.7.0 Too many concurrent connections, try again later"
    finally:
        for c in held:
            c.close()


# ---- Message size -----------------------------------------------------------------------------


def test_max_message_size(sink, tmp_path):
    s, log = digest_sink(sink, tmp_path, "--max-message-size", "1000")
    with SmtpClient(s.port) as c:
        assert c.banner().code == 220
        assert "SIZE 1000" in c.ehlo().lines
        # declared: refused at MAIL (RFC 1870 6)
        assert c.cmd("MAIL FROM:<a@client.example> SIZE=1001").line == "552 5.3.4 Error: message size exceeds limit"
        # actual: refused at the end of data, after the rest was read
        assert c.cmd("MAIL FROM:<a@client.example> SIZE=500").line == "250 2.1.0 Sender ok"
        assert c.cmd("RCPT TO:<b@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(make_message("too-big", (b"z" * 70 + b"\r\n") * 40)) + b".\r\n")  # 2,880 body octets
        assert c.read_reply().line == "552 5.3.4 Error: message too big"
        # BDAT over the limit: refused at that chunk
        c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.test>\r\nBDAT 1500 LAST\r\n" + b"b" * 1500)
        assert c.read_reply().line == "250 2.1.0 Sender ok"
        assert c.read_reply().line == "250 2.1.5 Recipient ok"
        assert c.read_reply().line == "552 5.3.4 Error: message too big"
        # the session goes on: a message within the limit is accepted
        assert c.cmd("MAIL FROM:<a@client.example> SIZE=1000").code == 250
        assert c.cmd("RCPT TO:<b@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(make_message("fits", b"small\r\n")) + b".\r\n")
        assert c.read_reply().line == "250 2.0.0 Message accepted"
    lines = wait_digest(log, 1)
    assert [l.id for l in lines] == ["fits"]
