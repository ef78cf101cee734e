#!/usr/bin/env python3
# Writes the hand-made seed inputs (seed-*) into tests/fuzz/corpus/<target>/: realistic SMTP
# exchanges with the control bytes each target reads first. Inputs merged in by libFuzzer sit
# beside them under hash names. Re-running it rewrites the seeds and leaves the rest alone.
import base64
import pathlib
import struct

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    assert len(data) <= 4096, (target, name, len(data))
    (d / ("seed-" + name)).write_bytes(data)


# --- fuzz_command: one command line, no header -------------------------------------------
COMMANDS = {
    "ehlo": b"EHLO client.example.org",
    "helo": b"HELO mail.example.com",
    "ehlo-ipv4": b"EHLO [192.0.2.1]",
    "ehlo-ipv6": b"EHLO [IPv6:2001:db8::1]",
    "ehlo-utf8": "EHLO παράδειγμα.δοκιμή".encode(),
    "mail": b"MAIL FROM:<alice@example.org>",
    "mail-null-size-body": b"MAIL FROM:<> SIZE=1024 BODY=8BITMIME",
    "mail-dsn": b"MAIL FROM:<a@b.example> SMTPUTF8 RET=HDRS ENVID=QQ314159+2B",
    "mail-quoted": b'MAIL FROM:<"quoted \\" local"@example.org>',
    "mail-route": b"MAIL FROM:<@route.a,@route.b:user@example.org>",
    "mail-lower-zeros": b"mail from:<x@y.example> size=0010 body=7bit",
    "mail-utf8": "MAIL FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8".encode(),
    "mail-auth": b"MAIL FROM:<a@b.example> AUTH=<>",
    "mail-binary": b"MAIL FROM:<a@b.example> BODY=BINARYMIME",
    "mail-unknown-param": b"MAIL FROM:<a@b.example> FOO=bar",
    "mail-space": b"MAIL FROM: <a@b.example>",
    "mail-literal": b"MAIL FROM:<user@[IPv6:::1]>",
    "rcpt": b"RCPT TO:<bob@example.net>",
    "rcpt-postmaster": b"RCPT TO:<Postmaster>",
    "rcpt-dsn": b"RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.net",
    "rcpt-never": b"RCPT TO:<b@[192.0.2.7]> NOTIFY=NEVER",
    "rcpt-utf8-orcpt": "RCPT TO:<b@example.net> ORCPT=utf-8;b\\x{E9}@example.net".encode(),
    "data": b"DATA",
    "bdat": b"BDAT 1000",
    "bdat-last": b"BDAT 0 LAST",
    "bdat-lower": b"bdat 012 last",
    "rset": b"RSET",
    "noop": b"NOOP",
    "noop-quoted": b'NOOP "hello world"',
    "quit": b"QUIT",
    "vrfy": b"VRFY postmaster",
    "help": b"HELP mail",
    "starttls": b"STARTTLS",
    "auth-plain": b"AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=",
    "auth-login": b"AUTH LOGIN",
    "auth-empty": b"AUTH PLAIN =",
    "unknown": b"XYZZY plugh",
    "with-crlf": b"MAIL FROM:<a@b.example>\r\n",
    "two-lines": b"EHLO x.example\r\nQUIT",
    "long-local": b"RCPT TO:<" + b"l" * 65 + b"@example.net>",
}
for name, line in COMMANDS.items():
    write("command", name, line)


# --- fuzz_reply_parser: flags, u16 split point, reply bytes -------------------------------
def reply_seed(data, split, small=False):
    return bytes([1 if small else 0]) + struct.pack(">H", split) + data


EHLO_REPLY = (b"250-mx.example.net Hello client\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n"
              b"250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-SMTPUTF8\r\n"
              b"250-DSN\r\n250-STARTTLS\r\n250-BINARYMIME\r\n250 AUTH PLAIN LOGIN\r\n")
REPLIES = {
    "greeting": (b"220 mx.example.net ESMTP ready\r\n", 5),
    "ehlo-multiline": (EHLO_REPLY, 40),
    "pipelined": (b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <x@y>: Recipient address rejected"
                  b"\r\n354 End data with <CR><LF>.<CR><LF>\r\n", 15),
    "queued-bye": (b"250 2.0.0 Ok: queued as ABC123\r\n221 2.0.0 Bye\r\n", 31),
    "code-mismatch": (b"250-first\r\n251 second\r\n", 3),
    "bare-lf": (b"250 ok\r\n250 bare lf\n", 9),
    "bare-cr": (b"250 a\rb\r\n", 2),
    "malformed": (b"abc\r\n", 1),
    "closing": (b"421 4.3.2 shutting down\r\n", 24),
    "code-only": (b"250\r\n250-\r\n250 \r\n", 6),
    "too-many": (b"452-4.5.3 too many\r\n452 4.5.3 recipients\r\n", 20),
    "enhanced-wrong-class": (b"250 5.1.1 mismatch\r\n550 5.1.1234 x\r\n", 4),
    "long-line": (b"250-" + b"x" * 100 + b"\r\n250 end\r\n", 50),
}
for name, (data, split) in REPLIES.items():
    write("reply_parser", name, reply_seed(data, split))
write("reply_parser", "long-line-small", reply_seed(REPLIES["long-line"][0], 70, small=True))
write("reply_parser", "ehlo-small", reply_seed(EHLO_REPLY, 100, small=True))


# --- fuzz_body_scanner: flags (chunked, piece count), piece sizes - 1, bytes --------------
def body_seed(data, sizes=(), chunked=False):
    return bytes([(1 if chunked else 0) | (len(sizes) << 1)]) + bytes(s - 1 for s in sizes) + data


TEXT = b"".join(b"Line %02d of a message body with some text in it ....\r\n" % i
                for i in range(12))
BODIES = {
    "simple": body_seed(b"Subject: hi\r\n\r\nbody line\r\n.\r\n"),
    "dot-stuffed": body_seed(b"..leading dot\r\n...\r\n..\r\nmiddle . dot\r\n.\r\n", (5, 1, 1)),
    "empty": body_seed(b".\r\n"),
    "bare-lf-dot": body_seed(b"a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n"),
    "dot-bare-lf": body_seed(b"a\r\n.\nb\r\n.\r\n", (3,)),
    "bare-cr-dot": body_seed(b"a\r.\r\n\r\n.\r\n", (2, 2)),
    "dot-cr-x": body_seed(b"x\r\n.\rx\r\n.\r\n", (4, 1)),
    "long-line": body_seed(b"y" * 1100 + b"\r\n.\r\n"),
    "line-999": body_seed(b"." + b"z" * 998 + b"\r\n" + b"w" * 998 + b"\r\n.\r\n", (64,)),
    "eight-bit": body_seed("café ☕\r\n.\r\n".encode()),
    "two-messages": body_seed(b"one\r\n.\r\ntwo\r\n..\r\n.\r\n", (7,)),
    "held-dot": body_seed(b"line\r\n.", (6,)),
    "held-dot-cr": body_seed(b"line\r\n.\r", (6, 1)),
    "simd-blocks": body_seed(TEXT + b".\r\n", (64, 64, 3)),
    "simd-dot-in-block": body_seed(TEXT[:100] + b".hidden\r\n" + TEXT[:100] + b".\r\n"),
    "chunked": body_seed(b"Subject: x\r\n\r\n.line\r\nend", chunked=True),
    "chunked-trailing-cr": body_seed(b"ab\r\ncd\r", (3,), chunked=True),
    "chunked-blocks": body_seed(TEXT + b"\xff\n", (65,), chunked=True),
}
for name, data in BODIES.items():
    write("body_scanner", name, data)


# --- fuzz_server_session ------------------------------------------------------------------
# counts byte: decisions (3 bits), packets (2 bits), pieces (3 bits); flags byte: lazy drain,
# banner (2 bits), AUTH on, AUTH without TLS, failure limit (2 bits: 3, 1, 2, none); then
# decisions (handler decisions and AUTH verdicts: 0 accept, 1 reject, 2 temporary failure,
# 3 too many failures), packet sizes - 1 (u16), piece sizes - 1, client bytes.
def decision(kind, reply=0):
    return {"accept": 0, "reply": 1, "defer": 2}[kind] | (reply << 2)


def server_seed(data, decisions=(), packets=(), pieces=(), lazy=False, banner=0, auth=False,
                auth_without_tls=False, auth_limit=0):
    head = bytes([len(decisions) | (len(packets) << 3) | (len(pieces) << 5),
                  (1 if lazy else 0) | (banner << 1) | (8 if auth else 0) |
                  (16 if auth_without_tls else 0) | (auth_limit << 5)])
    head += bytes(decisions)
    head += b"".join(struct.pack(">H", p - 1) for p in packets)
    head += bytes(p - 1 for p in pieces)
    return head + data


EHLO = b"EHLO client.example\r\n"
ENV = b"MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.test>\r\n"
SESSION = (EHLO + b"MAIL FROM:<a@client.example> SIZE=100\r\nRCPT TO:<b@example.test>\r\n"
           b"RCPT TO:<c@example.test>\r\nDATA\r\nSubject: t\r\n\r\nhello\r\n..dot\r\n.\r\nQUIT\r\n")
TLS1 = EHLO + b"STARTTLS\r\nMAIL FROM:<injected@x.example>\r\n"
SERVER = {
    "pipelined": server_seed(SESSION, pieces=(7, 13)),
    "pipelined-bytewise": server_seed(SESSION),
    "deferred": server_seed(SESSION, decisions=(decision("defer"), decision("accept"),
                                                decision("defer", 1), decision("reply", 5)),
                            pieces=(30,)),
    "refused-rcpt": server_seed(SESSION, decisions=(0, 0, decision("reply", 5), 0, 0)),
    "bdat": server_seed(EHLO + ENV + b"BDAT 12\r\nSubject: x\r\nBDAT 9\r\n\r\n.line\r\n"
                        b"BDAT 0 LAST\r\n" + ENV + b"BDAT 4\r\nab\r\nDATA\r\nBDAT 5 LAST\r\n"
                        b"cd\r\n." + b"BDAT 6 LAST\r\nQUIT\r\n" + ENV +
                        b"BDAT 5\r\na\nb\r\nBDAT 3 LAST\r\nxyzNOOP\r\nQUIT\r\n", pieces=(5, 11)),
    "bdat-deferred-start": server_seed(EHLO + ENV + b"BDAT 3\r\nabcBDAT 3 LAST\r\ndefQUIT\r\n",
                                       decisions=(0, 0, 0, decision("defer", 0), 0),
                                       pieces=(9,)),
    "starttls": server_seed(TLS1 + EHLO + b"STARTTLS\r\n" + ENV + b"QUIT\r\n",
                            packets=(len(TLS1),), pieces=(4,)),
    "smuggling": server_seed(EHLO + ENV + b"DATA\r\nx\n.\r\nMAIL FROM:<evil@x.example>\r\n"
                             b"y\r\n.\r\n" + ENV + b"DATA\r\nz\r.\r\n.\r\nQUIT\r\n", pieces=(3,)),
    "size-limit": server_seed(EHLO + b"MAIL FROM:<a@b.example> SIZE=999999\r\n" + ENV +
                              b"DATA\r\n" + b"0123456789abcdefghijklmnopqrstuvwxyz\r\n" * 60 +
                              b".\r\nQUIT\r\n", pieces=(200,)),
    "long-line": server_seed(EHLO + ENV + b"DATA\r\n" + b"q" * 1001 + b"\r\n.\r\n" +
                             b"NOOP " + b"n" * 600 + b"\r\nQUIT\r\n", pieces=(100,)),
    "too-many-rcpts": server_seed(EHLO + b"MAIL FROM:<a@b.example>\r\n" +
                                  b"".join(b"RCPT TO:<r%d@example.test>\r\n" % i
                                           for i in range(7)) + b"DATA\r\n.\r\nQUIT\r\n"),
    "helo-bdat": server_seed(b"HELO client.example\r\n" + ENV + b"BDAT 2 LAST\r\nhiRSET\r\n"
                             b"VRFY x\r\nHELP\r\nAUTH PLAIN =\r\nQUIT\r\n", pieces=(6,)),
    "rejected-banner": server_seed(EHLO + b"NOOP\r\nQUIT\r\n", banner=1),
    "custom-banner": server_seed(EHLO + ENV + b"RSET\r\n" + ENV + b"EHLO again.example\r\n"
                                 b"QUIT\r\n", banner=2, pieces=(17,)),
    "command-errors": server_seed(b"MAIL FROM:<a@b.example>\r\nEHLO\r\nEHLO client.example\r\n"
                                  b"RCPT TO:<b@c.example>\r\nDATA\r\nMAIL FROM:<bad\r\n"
                                  b"MAIL FROM:<a@b.example> FOO=1\r\nMAIL FROM:<a@b.example>"
                                  b"\r\nMAIL FROM:<a@b.example>\r\nDATA\r\nRCPT TO:<x>\r\n"
                                  b"BDAT x\r\nQUIT\r\n", pieces=(8,)),
    "backpressure": server_seed(b"EHLO a.example\r\n" * 150 + b"QUIT\r\n", lazy=True,
                                pieces=(200,)),
    "utf8": server_seed(EHLO + "MAIL FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8\r\n"
                        "RCPT TO:<b@παράδειγμα.δοκιμή>\r\nDATA\r\ncafé\r\n.\r\nQUIT\r\n".encode()),
    "shutdown-mid-data": server_seed(EHLO + ENV + b"DATA\r\npartial body\r\n.", pieces=(10,)),
}


def b64(s):
    return base64.b64encode(s)


def plain(user, password, authzid=b""):
    return b64(authzid + b"\0" + user + b"\0" + password)


AUTH_OK = b"AUTH PLAIN " + plain(b"alice", b"s3cret") + b"\r\n"
TLS2 = EHLO + AUTH_OK + b"STARTTLS\r\n"
SERVER.update({
    # before TLS: 538; after: LOGIN refused, PLAIN challenge cancelled, PLAIN accepted
    "auth-after-starttls": server_seed(
        TLS2 + EHLO + b"AUTH LOGIN\r\n" + b64(b"alice") + b"\r\n" + b64(b"wrong") +
        b"\r\nAUTH PLAIN\r\n*\r\n" + AUTH_OK + b"AUTH LOGIN\r\n" + ENV + b"DATA\r\nx\r\n.\r\n"
        b"QUIT\r\n", decisions=(0, 0, 1, 0), packets=(len(TLS2),), pieces=(5,),
        auth=True),
    "auth-plain-pipelined": server_seed(
        EHLO + AUTH_OK + b"MAIL FROM:<a@client.example> AUTH=<>\r\nRCPT TO:<b@example.test>\r\n"
        b"DATA\r\nhi\r\n.\r\nAUTH PLAIN\r\nQUIT\r\n", auth=True, auth_without_tls=True,
        pieces=(9,)),
    "auth-failures": server_seed(
        EHLO + b"AUTH CRAM-MD5\r\nAUTH PLAIN abc\r\nAUTH PLAIN\r\nnot base64!\r\n"
        b"AUTH PLAIN " + plain(b"alice", b"s3cret", b"bob") + b"\r\nAUTH PLAIN QR==\r\n"
        b"AUTH LOGIN " + b64(b"bob") + b"\r\n" + b64(b"x\0y") + b"\r\nAUTH PLAIN =\r\n" +
        AUTH_OK + b"QUIT\r\n", decisions=(1, 2, 1), auth=True, auth_without_tls=True,
        pieces=(3,)),
    "auth-limit-one": server_seed(
        EHLO + AUTH_OK + AUTH_OK + b"QUIT\r\n", decisions=(1,), auth=True,
        auth_without_tls=True, auth_limit=1),
    "auth-lockout-verdict": server_seed(
        EHLO + b"AUTH LOGIN " + b64(b"alice") + b"\r\n" + b64(b"s3cret") + b"\r\nNOOP\r\n",
        decisions=(3,), auth=True, auth_without_tls=True, pieces=(2,)),
    "auth-long-lines": server_seed(
        EHLO + b"AUTH PLAIN\r\n" + b"A" * 1100 + b"\r\nAUTH PLAIN " +
        plain(b"u" * 255, b"p" * 255) + b"\r\nAUTH LOGIN\r\n" + b"QUFB" * 100 + b"\r\n" +
        b"QUFB\r\nAUTH PLAIN\r\nAB\nCD\r\nQUIT\r\n", decisions=(2, 0),
        auth=True, auth_without_tls=True, auth_limit=3, pieces=(100,)),
    "auth-shutdown-mid-exchange": server_seed(
        EHLO + b"AUTH LOGIN\r\n" + b64(b"alice") + b"\r\n", auth=True, auth_without_tls=True),
    "auth-not-enabled": server_seed(
        EHLO + AUTH_OK + b"MAIL FROM:<a@client.example> AUTH=<>\r\nQUIT\r\n"),
})
for name, data in SERVER.items():
    write("server_session", name, data)


# --- fuzz_client_session ------------------------------------------------------------------
# flags: pipelining, bdat, smtputf8, dsn, pieces (3 bits), partial drain; recipients pick;
# body octets (u16); timeout before piece N; quit after N results; misc (messages, sender,
# BODY); piece sizes - 1; server bytes.
def client_seed(data, pipelining=True, bdat=False, utf8=False, dsn=False, pieces=(),
                partial=False, rcpt_pick=0, body=100, timeout_at=0, quit_after=1, misc=0):
    flags = ((1 if pipelining else 0) | (2 if bdat else 0) | (4 if utf8 else 0) |
             (8 if dsn else 0) | (len(pieces) << 4) | (0x80 if partial else 0))
    head = bytes([flags, rcpt_pick]) + struct.pack(">H", body)
    head += bytes([timeout_at, quit_after, misc]) + bytes(p - 1 for p in pieces)
    return head + data


SERVER_EHLO = (b"220 mx.example.net ESMTP\r\n250-mx.example.net\r\n250-PIPELINING\r\n"
               b"250-SIZE 10000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n")
OK_TXN = (b"250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n354 End data with <CR><LF>."
          b"<CR><LF>\r\n250 2.0.0 Ok: queued as 1\r\n")
BYE = b"221 2.0.0 Bye\r\n"
SERVER_TLS = (b"220 mx.example.net ESMTP\r\n250-mx.example.net\r\n250-PIPELINING\r\n"
              b"250 STARTTLS\r\n")
CLIENT = {
    "pipelined": client_seed(SERVER_EHLO + OK_TXN + BYE, pieces=(9,)),
    "lockstep": client_seed(SERVER_EHLO + OK_TXN + BYE, pipelining=False),
    "bdat": client_seed(SERVER_EHLO + b"250 ok\r\n250 ok\r\n250 2.0.0 Ok: 100 octets\r\n" + BYE,
                        bdat=True),
    "bdat-lockstep": client_seed(SERVER_EHLO + b"250 ok\r\n250 ok\r\n250 ok\r\n" + BYE,
                                 bdat=True, pipelining=False, pieces=(8,)),
    "helo-fallback": client_seed(b"220 old.example\r\n502 5.5.1 EHLO not implemented\r\n"
                                 b"250 old.example\r\n" + OK_TXN + BYE, pieces=(3, 30)),
    "greeting-refused": client_seed(b"554 5.3.2 No service\r\n"),
    "closing-mid-txn": client_seed(SERVER_EHLO + b"250 ok\r\n421 4.3.2 going down\r\n"),
    "rcpt-mixed": client_seed(SERVER_EHLO + b"250 ok\r\n250 ok\r\n550 5.1.1 no\r\n450 4.2.0 busy"
                              b"\r\n354 go\r\n250 queued\r\n" + BYE, rcpt_pick=2, dsn=True),
    "all-rcpt-refused": client_seed(SERVER_EHLO + b"250 ok\r\n550 no\r\n550 no\r\n554 no valid\r\n"
                                    b"250 reset\r\n" + BYE, rcpt_pick=1, pipelining=False),
    "data-refused": client_seed(SERVER_EHLO + b"250 ok\r\n250 ok\r\n451 4.3.0 later\r\n250 ok\r\n"
                                + BYE),
    "size-local-refusal": client_seed(SERVER_EHLO + BYE, body=20000, quit_after=1),
    "utf8": client_seed(SERVER_EHLO + OK_TXN + BYE, utf8=True, misc=8 | 16),
    "null-sender-two-msgs": client_seed(SERVER_EHLO + OK_TXN + OK_TXN + BYE, misc=1 | 4,
                                        quit_after=2),
    "malformed": client_seed(SERVER_EHLO + b"25O ok\r\n"),
    "timeout": client_seed(SERVER_EHLO + b"250 ok\r\n250 ok\r\n", pieces=(30,), timeout_at=3),
    "many-rcpts": client_seed(SERVER_EHLO + b"250 ok\r\n" + b"250 ok\r\n" * 200 + b"354 go\r\n"
                              b"250 ok\r\n" + BYE, rcpt_pick=199, partial=True, pieces=(40,)),
    "multiline-final": client_seed(SERVER_EHLO + b"250 ok\r\n250 ok\r\n354 go\r\n250-2.0.0 a"
                                   b"\r\n250 2.0.0 b\r\n" + BYE),
    # misc bits 5-6: STARTTLS policy (1 opportunistic, 2 required, 3 opportunistic + AUTH).
    "starttls": client_seed(SERVER_TLS + b"220 2.0.0 go\r\n250-injected\r\n" + SERVER_EHLO[26:]
                            + OK_TXN + BYE, misc=2 << 5, pieces=(20,)),
    "starttls-refused": client_seed(SERVER_TLS + b"454 4.7.0 no TLS\r\n" + OK_TXN + BYE,
                                    misc=1 << 5),
    "starttls-not-offered": client_seed(SERVER_EHLO + BYE, misc=2 << 5),
    "auth-login": client_seed(SERVER_TLS + b"220 go\r\n250-x\r\n250 AUTH LOGIN\r\n"
                              b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 ok\r\n" + OK_TXN + BYE,
                              misc=3 << 5),
}
for name, data in CLIENT.items():
    write("client_session", name, data)
