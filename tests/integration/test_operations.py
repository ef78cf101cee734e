"""Operations: stopping on SIGTERM with clients connected, refusing bad flags and bad TOML
(exit 2, one line on stderr naming the flag or file:line:column), --print-config that reads
back to itself, and the Prometheus endpoint's figures."""

import re
import signal
import smtplib
import socket
import time
import urllib.error
import urllib.request

import pytest

from sinklib import HOST, SmtpClient, dot_stuff, make_message, metric, scrape, wait_digest

SHUTDOWN = "421 4.3.2 Service shutting down"


# ---- SIGTERM ----------------------------------------------------------------------------------


def test_sigterm_with_clients_connected(sink, tmp_path):
    log = tmp_path / "digest.log"
    s = sink("--mode", "digest", "--digest-log", str(log))
    greeted = SmtpClient(s.port)
    assert greeted.banner().code == 220
    ready = SmtpClient(s.port)
    ready.banner()
    ready.ehlo()
    in_mail = SmtpClient(s.port)  # a transaction begun: it may finish
    in_mail.banner()
    in_mail.ehlo()
    assert in_mail.cmd("MAIL FROM:<a@client.example>").code == 250
    in_data = SmtpClient(s.port)
    in_data.banner()
    in_data.ehlo()
    assert [in_data.cmd(c).code for c in ("MAIL FROM:<a@client.example>", "RCPT TO:<b@example.test>", "DATA")] == [250, 250, 354]
    try:
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        # idle sessions: 421 4.3.2 at once, then the close
        for c in (greeted, ready):
            assert c.read_reply().line == SHUTDOWN
            assert c.expect_closed() == b""
        # sessions inside a transaction finish it, then get the 421
        in_data.send(dot_stuff(make_message("finished-in-data", b"x\r\n")) + b".\r\n")
        assert in_data.read_reply().line == "250 2.0.0 Message accepted"
        assert in_data.read_reply().line == SHUTDOWN
        assert in_data.expect_closed() == b""
        assert in_mail.cmd("RCPT TO:<b@example.test>").line == "250 2.1.5 Recipient ok"
        assert in_mail.cmd("DATA").code == 354
        in_mail.send(dot_stuff(make_message("finished-in-mail", b"y\r\n")) + b".\r\n")
        assert in_mail.read_reply().line == "250 2.0.0 Message accepted"
        assert in_mail.read_reply().line == SHUTDOWN
        assert in_mail.expect_closed() == b""
        assert s.wait(5) == 0
        took = time.monotonic() - t0
    finally:
        for c in (greeted, ready, in_mail, in_data):
            c.close()
    assert took < 5, f"exit took {took:.1f}s"
    # the digest log was flushed at exit: no wait needed
    assert sorted(l.id for l in wait_digest(log, 2, settle=0)) == ["finished-in-data", "finished-in-mail"]
    # nothing listens any more
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, s.port), timeout=2)


@pytest.mark.timeout(40)
def test_sigterm_closes_a_stuck_transaction_after_the_grace_period(sink):
    s = sink()
    with SmtpClient(s.port, timeout=30) as c:
        c.banner()
        c.ehlo()
        assert [c.cmd(x).code for x in ("MAIL FROM:<a@client.example>", "RCPT TO:<b@example.test>", "DATA")] == [250, 250, 354]
        c.send(b"half a message that never ends\r\n")
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        c.expect_closed(timeout=20)
        assert s.wait(20) == 0
        took = time.monotonic() - t0
    # the reactor's shutdown grace is 10 s
    assert took < 15, f"exit took {took:.1f}s"


# ---- Bad flags and bad configuration ----------------------------------------------------------

BAD_FLAGS = [
    (["--threads", "0"], "ringmta-sink: --threads: must be a thread count from 1 to 1024, got '0'"),
    (["--tempfail-rate", "1.5"], "ringmta-sink: --tempfail-rate: must be a probability from 0 to 1, got '1.5'"),
    (["--delay", "5parsecs"], "ringmta-sink: --delay: '5parsecs': unknown unit 'parsecs' (us, ms, s, m or h)"),
    (["--mode", "digest"], "ringmta-sink: --mode digest needs --digest-log FILE (digest-log in the file)"),
    (["--mode", "mbox"], "ringmta-sink: --mode: must be discard, count, digest or maildir, got 'mbox'"),
    (["--rate-limit-reply", "450"], "ringmta-sink: --rate-limit-reply: must be 421 (4.7.0, then close) or 451 (4.7.1, the session goes on), got '450'"),
    (["--max-message-size", "12Q"], "ringmta-sink: --max-message-size: must be a size in bytes"),
    (["--listen", "localhost:25"], "ringmta-sink: --listen: 'localhost:25': not a numeric IPv4 address"),
    (["--greylist-wait", "-1s"], "ringmta-sink: --greylist-wait: '-1s': a duration cannot be negative"),
    (["--bogus"], "ringmta-sink: The following argument was not expected: --bogus"),
]


@pytest.mark.parametrize("args,message", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flag_exits_2_with_one_line(run_sink, args, message):
    rc, out, err = run_sink("--listen", "127.0.0.1:0", *args)
    assert rc == 2, err
    assert out == "", "nothing on stdout (no ready line)"
    lines = err.splitlines()
    assert lines[0].startswith(message), err
    # CLI11's own parse errors add a pointer to --help; every other error is one line
    if args[0] == "--bogus":
        assert lines[1:] == ["Run 'ringmta-sink --help' for the options."]
    else:
        assert len(lines) == 1, err


def test_listen_address_in_use_exits_2(run_sink):
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc, out, err = run_sink("--listen", f"{HOST}:{port}")
    assert rc == 2
    assert out == ""
    assert err == f"ringmta-sink: cannot listen on {HOST}:{port}: Address already in use\n"


@pytest.mark.parametrize("mode", ["digest", "maildir"])
def test_unusable_output_path_exits_2_before_ready(run_sink, mode):
    """A digest log or maildir that cannot be created is a bad setting: refused at start,
    before the ready line (a harness waiting for that line must not see a sink that is
    about to die), with exit code 2."""
    path = "/nonexistent-ringmta/dir/out"
    flag = "--digest-log" if mode == "digest" else "--maildir"
    rc, out, err = run_sink("--listen", "127.0.0.1:0", "--mode", mode, flag, path)
    assert (rc, out) == (2, ""), f"exit {rc}, stdout {out!r}, stderr {err!r}"
    assert len(err.splitlines()) == 1 and err.startswith("ringmta-sink: "), err
    assert "/nonexistent-ringmta/dir" in err and "No such file or directory" in err, err


BAD_TOML = [
    # file text, line, column, the rest of the message (after "FILE:LINE:COL: ")
    ("threads = 1\n\nbogus-key = 1\n", 3, 1, "bogus-key: unknown top-level key"),
    ('threads = 2\nmode = "digest\n', 2, None, "Error while parsing string"),
    ("# rates\ntempfail-rate = 2.0\n", 2, 17, "tempfail-rate: must be a probability from 0 to 1, got 2"),
    ('[[rule]]\nphase = "rcpt"\nprobability = 0.6\nreply = "450 4.2.0 a"\n'
     '[[rule]]\nphase = "rcpt"\nprobability = 0.6\nreply = "450 4.2.0 b"\n', 7, None,
     "probability: the rules of phase 'rcpt' add up to probability 1.2"),
    ('[[rule]]\nphase = "connect"\nreply = "250 fine"\n', 3, None, "reply: reply 250 is not a failure"),
    ('[domain."slow.test"]\ndelay-mail = "1s"\n', 2, None, "delay-mail: never applies in a domain table"),
    ('[[rule]]\nphase = "later"\n', 2, None, "phase: "),
]


@pytest.mark.parametrize("text,line,col,message", BAD_TOML, ids=[b[3].split(":")[0] for b in BAD_TOML])
def test_bad_toml_exits_2_naming_file_line_and_key(run_sink, tmp_path, text, line, col, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    rc, out, err = run_sink("--config", str(cfg))
    assert rc == 2, err
    assert out == ""
    assert len(err.splitlines()) == 1, err
    m = re.match(rf"^ringmta-sink: {re.escape(str(cfg))}:(\d+):(\d+): (.*)$", err.rstrip("\n"))
    assert m, err
    assert int(m.group(1)) == line, err
    if col is not None:
        assert int(m.group(2)) == col, err
    assert m.group(3).startswith(message), err


def test_missing_config_file_exits_2(run_sink, tmp_path):
    rc, out, err = run_sink("--config", str(tmp_path / "absent.toml"))
    assert rc == 2
    assert err == f"ringmta-sink: --config: cannot read '{tmp_path / 'absent.toml'}': No such file or directory\n"


# ---- --print-config ---------------------------------------------------------------------------

RICH = """
threads = 1
seed = 7

[[listener]]
listen = "127.0.0.1:0"
hostname = "mx1.sink.test"
max-message-size = "2M"
max-connections = 50
chunking = false
delay-rcpt = "uniform:1ms-5ms"
greylist-wait = "90s"
[[listener.rule]]
phase = "rcpt"
probability = 0.05
reply = "452 4.2.2 Mailbox full"
[[listener.rule]]
phase = "data"
probability = 0.01
action = "disconnect-mid-data"
after-bytes = 2048
[listener.domain."slow.test"]
delay-end-of-data = "lognormal:20ms,0.5"
rate-limit = 100
rate-limit-reply = 451
[listener.domain."*.broken.test"]
tempfail-rate = 0.5
[[listener.domain."*.broken.test".rule]]
phase = "rcpt"
probability = 0.25
action = "reply-and-disconnect"

[[listener]]
listen = "127.0.0.1:0"
magic = false
rate-limit = 500
"""


def test_print_config_reads_back_to_itself(run_sink, tmp_path, sink):
    cfg = tmp_path / "rich.toml"
    cfg.write_text(RICH)
    rc, first, err = run_sink("--config", str(cfg), "--tempfail-rate", "0.125", "--mode", "digest",
                              "--digest-log", str(tmp_path / "d.log"), "--print-config")
    assert (rc, err) == (0, "")
    # flags win over the file, in every listener
    assert first.count("tempfail-rate = 0.125\n") == 2
    assert 'mode = "digest"\n' in first and "seed = 7\n" in first
    assert 'hostname = "mx1.sink.test"\n' in first and "max-message-size = 2097152\n" in first
    assert '[listener.domain."*.broken.test"]' in first
    printed = tmp_path / "printed.toml"
    printed.write_text(first)
    rc, second, err = run_sink("--config", str(printed), "--print-config")
    assert (rc, err) == (0, "")
    assert second == first
    # and the printed file starts a working sink with both listeners
    s = sink("--config", str(printed))
    assert len(s.addresses) == 2 and s.mode == "digest" and s.threads == 1
    with SmtpClient(s.addresses[0][1]) as c:
        assert c.banner().line == "220 mx1.sink.test ESMTP ringmta"
        assert "CHUNKING" not in c.ehlo().lines


def test_print_config_defaults_read_back(run_sink, tmp_path):
    rc, first, err = run_sink("--print-config")
    assert (rc, err) == (0, "")
    assert 'listen = "127.0.0.1:2525"\n' in first and "max-message-size = 36700160\n" in first
    p = tmp_path / "defaults.toml"
    p.write_text(first)
    rc, second, err = run_sink("--config", str(p), "--print-config")
    assert (rc, err, second) == (0, "", first)


# ---- Metrics ----------------------------------------------------------------------------------


def test_metrics_count_what_was_sent(sink):
    s = sink("--metrics", "127.0.0.1:0")
    assert re.fullmatch(r"127\.0\.0\.1:\d+", s.metrics_addr or ""), s.ready_line
    m0 = scrape(s.metrics_addr)
    assert metric(m0, "ringmta_sink_messages_total", outcome="accepted") == 0
    sent = 0
    wire = 0
    for conn in range(3):
        with smtplib.SMTP(HOST, s.port, local_hostname="client.example", timeout=10) as c:
            for i in range(10):
                msg = make_message(f"m-{conn}-{i}", b"metrics\r\n.line\r\n" * (i + 1))
                assert c.sendmail("a@client.example", ["b@example.test", "c@example.test"], msg) == {}
                sent += 1
                wire += len(dot_stuff(msg))
    with SmtpClient(s.port) as c:
        c.banner()
        c.ehlo()
        for rcpt, code in (("tempfail-data+x@example.test", 450), ("permfail-data+x@example.test", 550)):
            msg = make_message("refused", b"x\r\n")
            _, final = c.send_message("a@client.example", [rcpt], msg)
            assert final.code == code
            wire += len(dot_stuff(msg))
        assert c.cmd("MAIL FROM:<a@client.example>").code == 250
        assert c.cmd("RCPT TO:<permfail+x@example.test>").code == 550
    deadline = time.monotonic() + 5
    while True:  # the last session's close is counted asynchronously
        m = scrape(s.metrics_addr)
        if metric(m, "ringmta_sink_sessions_active") == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert metric(m, "ringmta_sink_messages_total", outcome="accepted") == sent == 30
    assert metric(m, "ringmta_sink_messages_total", outcome="tempfail") == 1
    assert metric(m, "ringmta_sink_messages_total", outcome="permfail") == 1
    assert metric(m, "ringmta_sink_messages_total", outcome="disconnect") == 1  # MAIL open at the close
    assert metric(m, "ringmta_sink_recipients_total", outcome="accepted") == 2 * sent + 2
    assert metric(m, "ringmta_sink_recipients_total", outcome="rejected") == 1
    assert metric(m, "ringmta_sink_received_bytes_total") == wire
    assert metric(m, "ringmta_sink_sessions_total") == 4
    assert metric(m, "ringmta_sink_sessions_active") == 0
    assert metric(m, "ringmta_sink_command_latency_seconds_count", phase="end_of_data") == sent + 2
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://{s.metrics_addr}/nothing-here", timeout=5)
    assert e.value.code == 404
