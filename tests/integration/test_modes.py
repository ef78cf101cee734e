"""Message handling modes: discard (nothing written), count (metrics only), digest (one line
per accepted message) and maildir (each message a file in DIR/new, dot-stuffing undone)."""

import os
import re
import smtplib

from sinklib import HOST, SmtpClient, dot_stuff, fingerprint, make_message, metric, scrape, wait_digest

MESSAGES = [
    make_message("mode-1", b"plain body\r\n"),
    make_message("mode-2", b".leading dot\r\n..two\r\n.\r\nend\r\n"),
    make_message("mode-3", b"".join(b"line %d\r\n" % i for i in range(500))),
]


def send_all(port: int, messages=MESSAGES) -> None:
    with smtplib.SMTP(HOST, port, local_hostname="client.example", timeout=10) as c:
        for m in messages:
            assert c.sendmail("a@client.example", ["b@example.test"], m) == {}


def test_discard_accepts_and_writes_nothing(sink, tmp_path):
    work = set(os.listdir(tmp_path))
    s = sink("--mode", "discard", "--metrics", "127.0.0.1:0")
    assert s.mode == "discard"
    send_all(s.port)
    assert metric(scrape(s.metrics_addr), "ringmta_sink_messages_total", outcome="accepted") == len(MESSAGES)
    assert set(os.listdir(tmp_path)) - work == {"sink0.stdout", "sink0.stderr"}


def test_count_mode_counts_messages_and_bytes(sink, tmp_path):
    work = set(os.listdir(tmp_path))
    s = sink("--mode", "count", "--metrics", "127.0.0.1:0")
    assert s.mode == "count"
    send_all(s.port)
    m = scrape(s.metrics_addr)
    assert metric(m, "ringmta_sink_messages_total", outcome="accepted") == len(MESSAGES)
    # content bytes as received: DATA's dot-stuffed body up to the CRLF before the final dot
    assert metric(m, "ringmta_sink_received_bytes_total") == sum(len(dot_stuff(x)) for x in MESSAGES)
    assert metric(m, "ringmta_sink_recipients_total", outcome="accepted") == len(MESSAGES)
    assert set(os.listdir(tmp_path)) - work == {"sink0.stdout", "sink0.stderr"}


def test_digest_mode_logs_each_accepted_message(sink, tmp_path):
    log = tmp_path / "ids.log"
    s = sink("--mode", "digest", "--digest-log", str(log))
    assert s.mode == "digest"
    send_all(s.port)
    with SmtpClient(s.port) as c:  # a refused message is not logged
        c.banner()
        c.ehlo()
        _, final = c.send_message("a@client.example", ["permfail-data+x@example.test"], make_message("refused", b"x\r\n"))
        assert final.code == 550
    lines = wait_digest(log, len(MESSAGES))
    assert [l.fingerprint for l in lines] == [fingerprint(m) for m in MESSAGES]
    assert all(l.rcpts == ("b@example.test",) for l in lines)


def test_maildir_mode_stores_messages_unstuffed(sink, tmp_path):
    md = tmp_path / "Maildir"  # created by the sink
    s = sink("--mode", "maildir", "--maildir", str(md))
    assert s.mode == "maildir"
    assert sorted(os.listdir(md)) == ["cur", "new", "tmp"]
    stored = []
    with SmtpClient(s.port) as c:
        c.banner()
        c.ehlo()
        for m in MESSAGES:
            _, final = c.send_message("a@client.example", ["b@example.test"], m)
            assert final.line == "250 2.0.0 Message accepted"
            stored.append(m)
            # 250 means stored: the file is in new/ before the reply
            assert len(os.listdir(md / "new")) == len(stored)
        # BDAT: raw content, leading dots are data and stay as they are
        raw = make_message("mode-bdat", b".not stuffed\r\n..two\r\n")
        c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.test>\r\n"
               + b"BDAT %d LAST\r\n" % len(raw) + raw)
        assert [c.read_reply().code for _ in range(2)] == [250, 250]
        assert c.read_reply().line == "250 2.0.0 Message accepted"
        stored.append(raw)
        # a refused message is not stored
        _, final = c.send_message("a@client.example", ["tempfail-data+x@example.test"], make_message("no", b"x\r\n"))
        assert final.code == 450
    names = os.listdir(md / "new")
    assert len(names) == len(stored)
    assert all(re.fullmatch(r"\d+\.\d+_\d+_\d+\.ringmta-sink", n) for n in names), names
    contents = sorted((md / "new" / n).read_bytes() for n in names)
    assert contents == sorted(stored)
    assert os.listdir(md / "tmp") == []
    assert os.listdir(md / "cur") == []
