#!/usr/bin/python3
"""A private Postfix instance for side-by-side runs, entirely inside one directory.

    from postfix_peer import PostfixPeer, PostfixNotInstalled

    try:
        with PostfixPeer("/path/run/postfix", smtp_port=2601, relay_port=2602) as pf:
            ...                       # SMTP on 127.0.0.1:2601, relays to [127.0.0.1]:2602
            print(pf.queued_messages(), pf.cpu_seconds())
    except PostfixNotInstalled as e:
        print(f"{e}: skipped")        # "postfix not installed: ..."

The instance lives in DIR: DIR/config (main.cf and master.cf, generated), DIR/queue
(queue_directory), DIR/data (data_directory), DIR/maillog (maillog_file, written by the
instance's own postlogd). Nothing outside DIR is written and no system instance is needed or
touched: smtpd listens only on 127.0.0.1:PORT (no port 25), inet_interfaces = 127.0.0.1,
mynetworks = 127.0.0.0/8, chroot is off for every service, nothing is delivered locally
(mydestination empty, local_transport = error, no aliases), and DNS is not used.
Postfix runs as root's children under the Debian package's `postfix` user and `postdrop`
group (mail_owner, setgid_group), like a system instance.

Two ways to use it:
- relay: relay_port=PORT sets relayhost = [127.0.0.1]:PORT, so Postfix delivers everything
  to that sink (the end-to-end comparison).
- hold: hold=True keeps every accepted message in the hold queue (accept-only comparison).
  It is done with `smtpd_data_restrictions = check_client_access static:HOLD`: smtpd tells
  cleanup to file the message straight into hold/ instead of incoming/, so the accept path
  (smtpd -> cleanup -> queue file written and fsync'ed -> 250) is exactly Postfix's usual
  one, and after the 250 nothing else happens: qmgr never sees the message, no delivery
  attempt, no defer log, no bounce daemon. `defer_transports = smtp` was the alternative,
  but it makes qmgr move every message incoming -> active -> deferred and the bounce daemon
  write a defer log for each, work that competes with accepting on a small machine and is
  not part of what an accept-only comparison measures. In hold mode in_flow_delay is 0:
  with no deliveries there are no flow-control tokens, and cleanup would otherwise pause up
  to 1 s per message (Postfix's back-pressure when arrivals outrun deliveries).

A PostfixPeer is stopped with `postfix -c DIR/config stop`; then every process of the
instance (its master, found by queue_directory/pid/master.pid, and the master's children) is
waited for, and what is left after the timeout gets `postfix abort` and SIGKILL. Only
processes of this instance are ever signalled: the master PID is checked against its
executable and working directory, children by parent PID and start time (and, should the
master be gone, by working directory = this instance's queue directory).
"""
import os
import pwd
import re
import grp
import shutil
import signal
import subprocess
import threading
import time

from ringmta_bench import procs  # harness/ringmta_bench/procs.py

TICK = os.sysconf("SC_CLK_TCK")
QUEUE_NAMES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")


class PostfixNotInstalled(RuntimeError):
    """Postfix (or its postfix user / postdrop group) is not on this machine.

    str(e) starts with "postfix not installed"; callers report it and skip.
    """


class PostfixError(RuntimeError):
    """The instance could not be set up, started or stopped."""


def relayhost_delivery_settings(relay_port, concurrency=50):
    """main.cf settings for a Postfix that relays everything to one known next hop, tuned the
    way an operator tunes delivery to a smart host (pass them as PostfixPeer(main_cf=...)).

    - smtp_connection_cache_destinations = the relayhost: the smtp client always hands its
      connection to scache after a delivery and the next delivery to that hop reuses it
      (the default, smtp_connection_cache_on_demand, only does so while the hop has a
      backlog in the active queue);
    - smtp_initial_destination_concurrency = concurrency: start with all the delivery
      processes the destination allows instead of 5 and the slow-start ramp (the limit
      itself, 50 by default in this peer, is set by PostfixPeer).
    """
    return {
        "smtp_connection_cache_destinations": f"[127.0.0.1]:{relay_port}",
        "smtp_initial_destination_concurrency": str(concurrency),
    }


def tls_settings(cert_file=None, key_file=None, smtpd_level="may", smtp_level="may",
                 loglevel=1):
    """main.cf settings for STARTTLS (pass them as PostfixPeer(main_cf=...)).

    - smtpd (inbound): with cert_file and key_file, smtpd offers STARTTLS at smtpd_level
      ("may": offered, not required). smtpd reads the files at start as root; they must be
      outside any directory the instance cannot reach (a run folder, not pytest's tmp_path).
    - smtp (outbound): smtp_level ("may": TLS when the next hop offers it, certificate not
      checked); None leaves Postfix's default (no TLS).
    - loglevel 1 makes both sides log one "... TLS connection established to|from ..." line
      per TLS session (tls_connections() counts them).
    """
    s = {}
    if cert_file is not None or key_file is not None:
        if cert_file is None or key_file is None:
            raise ValueError("tls_settings: smtpd TLS needs both cert_file and key_file")
        s.update(smtpd_tls_cert_file=os.fspath(cert_file), smtpd_tls_key_file=os.fspath(key_file),
                 smtpd_tls_security_level=smtpd_level, smtpd_tls_loglevel=str(loglevel))
    if smtp_level is not None:
        s.update(smtp_tls_security_level=smtp_level, smtp_tls_loglevel=str(loglevel))
    return s


def relayhost_tls_delivery_settings():
    """With smtp TLS: what an operator adds so that connection caching still works over TLS
    (without it Postfix never reuses a TLS connection: one connection and one full handshake
    per delivery). smtp_tls_connection_reuse = yes runs the TLS in tlsproxy (in master.cf
    whenever TLS settings are given), so the plaintext side can be cached in scache; the
    session cache lets new connections resume."""
    return {
        "smtp_tls_connection_reuse": "yes",
        "smtp_tls_session_cache_database": "btree:${data_directory}/smtp_scache",
    }


_TLS_CONN_RE = re.compile(r"\b(\w+) TLS connection established (to|from) (\S+?):? (TLSv[\d.]+)")


def tls_connections(lines):
    """The "<trust> TLS connection established to|from HOST: TLSvX ..." lines of a maillog
    (smtp_tls_loglevel / smtpd_tls_loglevel >= 1), as a list of
    (trust, "to" or "from", host, protocol), e.g. ("Anonymous", "from", "localhost[127.0.0.1]",
    "TLSv1.3")."""
    out = []
    for line in lines:
        m = _TLS_CONN_RE.search(line)
        if m:
            out.append(m.groups())
    return out


def parse_delivery_log(lines):
    """Tally the smtp client's delivery lines of a maillog.

    Returns {"status": {sent/deferred/bounced/expired: n}, "reused": deliveries over a
    cached connection (conn_use=N >= 2), "delays_s": [the delay= of each status=sent line,
    arrival to delivery in seconds, as Postfix rounds it]}.
    """
    status, reused, delays = {}, 0, []
    for line in lines:
        st = _STATUS_RE.search(line) if "/smtp[" in line else None
        if st is None:
            continue
        status[st.group(1)] = status.get(st.group(1), 0) + 1
        use = _CONN_USE_RE.search(line)
        if use and int(use.group(1)) >= 2:
            reused += 1
        delay = _DELAY_RE.search(line)
        if st.group(1) == "sent" and delay:
            delays.append(float(delay.group(1)))
    return {"status": status, "reused": reused, "delays_s": delays}


_STATUS_RE = re.compile(r", status=(\w+)")
_CONN_USE_RE = re.compile(r", conn_use=(\d+)")
_DELAY_RE = re.compile(r", delay=([0-9.]+)")


def _postconf_default(postconf, name):
    out = subprocess.run([postconf, "-dh", name], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise PostfixNotInstalled(f"postfix not installed: {postconf} -dh {name} failed: "
                                  f"{out.stderr.strip()}")
    return out.stdout.strip()


def check_installed(postfix_bin="/usr/sbin/postfix", postconf_bin="/usr/sbin/postconf"):
    """Return (daemon_directory, mail_version), or raise PostfixNotInstalled."""
    for path in (postfix_bin, postconf_bin):
        if not os.access(path, os.X_OK):
            raise PostfixNotInstalled(f"postfix not installed: no {path} "
                                      f"(Debian: apt-get install postfix)")
    daemon_dir = _postconf_default(postconf_bin, "daemon_directory")
    version = _postconf_default(postconf_bin, "mail_version")
    for prog in ("master", "smtpd", "cleanup", "qmgr", "postlogd"):
        if not os.access(os.path.join(daemon_dir, prog), os.X_OK):
            raise PostfixNotInstalled(f"postfix not installed: no {daemon_dir}/{prog}")
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError:
        raise PostfixNotInstalled("postfix not installed: no 'postfix' user or 'postdrop' "
                                  "group (the Debian package creates them)") from None
    return daemon_dir, version


def _stat(pid, zombies=False):
    """(ppid, starttime, utime+stime, cutime+cstime) of a process, in ticks; None if gone.

    With zombies=False a zombie (exited, only its parent's wait missing) counts as gone.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if rest[0] == "Z" and not zombies:
        return None
    # rest[0] = state (field 3); ppid is field 4, utime..cstime 14-17, starttime 22.
    return (int(rest[1]), int(rest[19]), int(rest[11]) + int(rest[12]),
            int(rest[13]) + int(rest[14]))


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


class PostfixPeer:
    """A private Postfix instance in base_dir (see the module documentation).

    base_dir       created if missing; must be on the file system where the queue should be
    smtp_port      loopback port of its smtpd (default: a free one); self.port
    relay_port     relayhost = [127.0.0.1]:relay_port (None: no relayhost; then hold=True is
                   required, since there is nowhere to deliver)
    hold           keep accepted mail in the hold queue, deliver nothing
    process_limit  default_process_limit (smtpd and cleanup processes; 50 sessions need 50
                   of each)
    main_cf        extra main.cf settings {name: value}, applied last (override anything)
    start_timeout  seconds to wait for the SMTP banner
    """

    def __init__(self, base_dir, smtp_port=None, relay_port=None, hold=False,
                 process_limit=200, main_cf=None, myhostname="postfix-peer.ringmta.test",
                 start_timeout=30.0, postfix_bin="/usr/sbin/postfix",
                 postconf_bin="/usr/sbin/postconf", postqueue_bin="/usr/sbin/postqueue"):
        if relay_port is None and not hold:
            raise ValueError("PostfixPeer needs relay_port (relayhost) or hold=True")
        self.daemon_dir, self.version = check_installed(postfix_bin, postconf_bin)
        self.base_dir = os.path.realpath(base_dir)
        self.config_dir = os.path.join(self.base_dir, "config")
        self.queue_dir = os.path.join(self.base_dir, "queue")
        self.data_dir = os.path.join(self.base_dir, "data")
        self.maillog = os.path.join(self.base_dir, "maillog")
        self.port = smtp_port or procs.free_port()
        self.relay_port = relay_port
        self.hold = hold
        self.process_limit = process_limit
        self.extra_main_cf = dict(main_cf or {})
        self.myhostname = myhostname
        self.start_timeout = start_timeout
        self.postfix_bin = postfix_bin
        self.postconf_bin = postconf_bin
        self.postqueue_bin = postqueue_bin
        self.master_pid = None
        self._master_start = None
        self._known = {}          # pid -> starttime of every instance process seen
        self._started = False

    # ---- configuration -------------------------------------------------------------

    def main_cf_settings(self):
        """The main.cf settings, in order (everything else is `postconf -d`)."""
        s = {
            "compatibility_level": "3.6",
            "config_directory": self.config_dir,
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": self.myhostname,
            "mydomain": "ringmta.test",
            "myorigin": "$myhostname",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "mynetworks_style": "host",
            # Logging: the instance's own postlogd writes this file (no syslog).
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.base_dir,
            "syslog_name": "postfix-peer",
            # Nothing is delivered locally, no aliases, no local recipient checks.
            "mydestination": "",
            "relay_domains": "",
            "local_transport": "error:local delivery is disabled in this test instance",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "append_dot_mydomain": "no",
            "notify_classes": "",
            # No DNS anywhere (loopback only; the relayhost is a bracketed address).
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            # Nothing that limits a benchmark.
            "default_process_limit": str(self.process_limit),
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "smtpd_client_recipient_rate_limit": "0",
            "smtpd_client_event_limit_exceptions": "$mynetworks",
            "smtpd_recipient_limit": "1000",
            "smtpd_error_sleep_time": "0",
            "default_destination_concurrency_limit": "50",
            "smtp_destination_concurrency_limit": "50",
            "relay_destination_concurrency_limit": "50",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "",
        }
        if self.relay_port is not None:
            s["relayhost"] = f"[127.0.0.1]:{self.relay_port}"
        else:
            s["relayhost"] = ""
            # Never used while mail is held; mail released from hold is discarded.
            s["default_transport"] = "discard:no relayhost in this test instance"
        if self.hold:
            s["smtpd_data_restrictions"] = "check_client_access static:HOLD"
            s["in_flow_delay"] = "0s"
        s.update(self.extra_main_cf)
        return s

    def master_cf_text(self):
        """master.cf: the SMTP listener on loopback and the internal services, no chroot."""
        rows = [
            (f"127.0.0.1:{self.port}", "inet", "n", "-", "n", "-", "-", "smtpd"),
            ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
            ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
            ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
            ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
            ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
            ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
            ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
            ("proxywrite", "unix", "-", "-", "n", "-", "1", "proxymap"),
            ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
            ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
            ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
            ("error", "unix", "-", "-", "n", "-", "-", "error"),
            ("retry", "unix", "-", "-", "n", "-", "-", "error"),
            ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
            ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
            ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
            ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
        ]
        if any("_tls_" in k for k in self.extra_main_cf):
            # smtpd and smtp get their entropy and session cache from tlsmgr; without it they
            # log "no entropy for TLS key generation: disabling TLS support".
            rows.append(("tlsmgr", "unix", "-", "-", "n", "1000?", "1", "tlsmgr"))
            # smtp_tls_connection_reuse = yes hands TLS connections to tlsproxy.
            rows.append(("tlsproxy", "unix", "-", "-", "n", "-", "0", "tlsproxy"))
        lines = ["# Generated by harness/postfix_peer.py: a private test instance, no chroot.",
                 "# service type  private unpriv  chroot  wakeup  maxproc command"]
        for r in rows:
            lines.append(f"{r[0]:<22} {r[1]:<10} {r[2]:<3} {r[3]:<3} {r[4]:<3} {r[5]:<6} "
                         f"{r[6]:<3} {r[7]}")
        return "\n".join(lines) + "\n"

    def write_config(self):
        os.makedirs(self.config_dir, exist_ok=True)
        os.chmod(self.base_dir, 0o755)   # mail_owner must reach queue and data directories
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write("# Generated by harness/postfix_peer.py; every other setting is the "
                    "postconf -d default.\n")
            for k, v in self.main_cf_settings().items():
                f.write(f"{k} = {v}\n")
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(self.master_cf_text())
        # Queue and data directories: root-owned tops; `postfix check` (post-install
        # create-missing) makes the sub-directories with the right owners and modes.
        for d in (self.queue_dir, self.data_dir):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.queue_dir, 0o755)
        pw = pwd.getpwnam("postfix")
        os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.data_dir, 0o700)

    # ---- running -------------------------------------------------------------------

    def _env(self):
        env = dict(os.environ)
        env["MAIL_CONFIG"] = self.config_dir
        return env

    def _postfix(self, *args, timeout=60):
        return subprocess.run([self.postfix_bin, "-c", self.config_dir, *args],
                              capture_output=True, text=True, timeout=timeout, env=self._env())

    def start(self):
        """Write the configuration, check it, start the instance, wait for its banner."""
        if self._started:
            return self
        if os.geteuid() != 0:
            raise PostfixError("a private Postfix instance needs root (its master runs as "
                               "root and its daemons as the postfix user)")
        self.write_config()
        warn = subprocess.run([self.postconf_bin, "-c", self.config_dir, "-n"],
                              capture_output=True, text=True, timeout=30, env=self._env())
        if warn.returncode != 0 or "warning" in warn.stderr:
            raise PostfixError(f"postconf -c {self.config_dir} -n: {warn.stderr.strip()}")
        chk = self._postfix("check")
        if chk.returncode != 0:
            raise PostfixError(f"postfix -c {self.config_dir} check failed: "
                               f"{(chk.stdout + chk.stderr).strip()[-2000:]}")
        self._started = True   # from here on stop() cleans up, whatever happens
        try:
            st = self._postfix("start")
            if st.returncode != 0:
                raise PostfixError(f"postfix -c {self.config_dir} start failed "
                                   f"(exit {st.returncode}): "
                                   f"{(st.stdout + st.stderr).strip()[-2000:]}"
                                   f"{self._log_hint()}")
            self._find_master(timeout=10)
            self._wait_banner()
        except BaseException:
            self.stop()
            raise
        return self

    def _find_master(self, timeout):
        pidfile = os.path.join(self.queue_dir, "pid", "master.pid")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                with open(pidfile) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                pid = None
            if pid and self._is_our_master(pid):
                st = _stat(pid)
                if st is not None:
                    self.master_pid, self._master_start = pid, st[1]
                    self._known[pid] = st[1]
                    return
            time.sleep(0.05)
        raise PostfixError(f"no master process for {self.queue_dir} ({pidfile}){self._log_hint()}")

    def _is_our_master(self, pid):
        exe = _readlink(f"/proc/{pid}/exe") or ""
        cwd = _readlink(f"/proc/{pid}/cwd") or ""
        return (os.path.basename(exe.replace(" (deleted)", "")) == "master"
                and os.path.realpath(cwd) == self.queue_dir)

    def _wait_banner(self):
        try:
            procs.wait_banner(self.port, self.start_timeout, what="the Postfix master",
                              alive=lambda: not self.master_pid
                              or _stat(self.master_pid) is not None)
        except procs.StartFailed as e:
            raise PostfixError(f"{e}{self._log_hint()}") from None

    def _log_hint(self):
        tail = self.maillog_tail(8)
        return ("\n  maillog:\n    " + "\n    ".join(tail)) if tail else ""

    def maillog_tail(self, n=20):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read().splitlines()[-n:]
        except OSError:
            return []

    def delivery_log(self):
        """parse_delivery_log() of this instance's maillog (read it after stop())."""
        try:
            with open(self.maillog, errors="replace") as f:
                return parse_delivery_log(f)
        except OSError:
            return parse_delivery_log([])

    def tls_connections(self):
        """tls_connections() of this instance's maillog."""
        try:
            with open(self.maillog, errors="replace") as f:
                return tls_connections(f)
        except OSError:
            return []

    def maillog_problems(self, n=20):
        """The last n lines of the maillog with fatal/panic/error/warning."""
        try:
            with open(self.maillog, errors="replace") as f:
                bad = [l for l in f if any(w in l for w in
                                           (" fatal:", " panic:", " error:", " warning:"))]
        except OSError:
            return []
        return [l.rstrip("\n") for l in bad[-n:]]

    # ---- processes and CPU ---------------------------------------------------------

    def processes(self, zombies=False):
        """PIDs of the instance's live processes: the master first, then its children
        (with zombies=True also those that have exited but are not yet reaped)."""
        pids = []
        master_alive = False
        if self.master_pid is not None:
            st = _stat(self.master_pid, zombies)
            if st is not None and st[1] == self._master_start:
                pids.append(self.master_pid)
                master_alive = True
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            if pid == self.master_pid:
                continue
            st = _stat(pid, zombies)
            if st is None:
                continue
            mine = master_alive and st[0] == self.master_pid
            if not mine and self._known.get(pid) == st[1]:
                mine = True           # seen before as ours (same start time)
            if not mine and not master_alive:
                # Orphans of a dead master: a Postfix daemon working in our queue directory.
                exe = (_readlink(f"/proc/{pid}/exe") or "").replace(" (deleted)", "")
                cwd = _readlink(f"/proc/{pid}/cwd") or ""
                mine = (os.path.dirname(exe) == self.daemon_dir
                        and os.path.realpath(cwd) == self.queue_dir)
            if mine:
                self._known[pid] = st[1]
                pids.append(pid)
        return pids

    def cpu_seconds(self):
        """CPU seconds used so far by the whole instance.

        The master's own time and its reaped children's (cutime + cstime: daemons that have
        exited), plus each live child's own time and its reaped children's. Sample it
        before and after a load, while no daemon is starting or exiting, and take the
        difference. Postfix commands run outside the instance (postqueue, postfix) are not
        included.
        """
        total = 0
        for pid in self.processes(zombies=True):
            st = _stat(pid, zombies=True)
            if st is not None:
                total += st[2] + st[3]
        return total / TICK

    # ---- queue ---------------------------------------------------------------------

    def queue_counts(self):
        """Queue files per queue (maildrop, incoming, active, deferred, hold, corrupt)."""
        counts = {}
        for q in QUEUE_NAMES:
            n = 0
            for _, _, files in os.walk(os.path.join(self.queue_dir, q)):
                n += len(files)
            counts[q] = n
        return counts

    def queued_messages(self):
        """Messages in the queue (all queues), by counting queue files."""
        return sum(self.queue_counts().values())

    def postqueue_count(self):
        """Messages in the queue as `postqueue -p` reports them (through showq)."""
        out = subprocess.run([self.postqueue_bin, "-c", self.config_dir, "-p"],
                             capture_output=True, text=True, timeout=120, env=self._env())
        if out.returncode != 0:
            raise PostfixError(f"postqueue -c {self.config_dir} -p: {out.stderr.strip()}")
        last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        if "Mail queue is empty" in last:
            return 0
        parts = last.split()
        # "-- 12 Kbytes in 10 Requests."
        if len(parts) >= 5 and parts[0] == "--" and parts[3] == "in":
            return int(parts[4])
        raise PostfixError(f"postqueue -p: unexpected last line {last!r}")

    # ---- stopping ------------------------------------------------------------------

    def stop(self, timeout=20.0):
        """Stop the instance and wait until every one of its processes is gone. Idempotent.

        `postfix stop` first; processes still there after `timeout` get `postfix abort`,
        then SIGKILL (only processes of this instance). Raises PostfixError if a process
        survives even that.
        """
        if not self._started:
            return
        old = None
        if threading.current_thread() is threading.main_thread():
            old = signal.signal(signal.SIGINT, signal.SIG_IGN)   # finish the clean-up
        try:
            self._stop(timeout)
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)

    def _stop(self, timeout):
        self.processes()          # remember every child before the master goes
        try:
            self._postfix("stop", timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.processes():
            time.sleep(0.05)
        left = self.processes()
        if left:
            try:
                self._postfix("abort", timeout=10)
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.5)
            for pid in self.processes():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            end = time.monotonic() + 5
            while time.monotonic() < end and self.processes():
                time.sleep(0.05)
        left = self.processes()
        self._started = False
        if left:
            raise PostfixError(f"Postfix processes of {self.base_dir} still alive: {left}")

    def remove_queue(self):
        """Delete the queue and data directories (after stop), keeping config and maillog."""
        if self._started:
            raise PostfixError("remove_queue() on a running instance")
        shutil.rmtree(self.queue_dir, ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


if __name__ == "__main__":
    # Smoke test: python3 harness/postfix_peer.py DIR  (hold mode, prints the port, waits
    # for Enter or Ctrl-C, then stops and prints the queue count).
    import sys
    base = sys.argv[1] if len(sys.argv) > 1 else "postfix-peer-smoke"
    try:
        with PostfixPeer(base, hold=True) as pf:
            print(f"Postfix {pf.version} on 127.0.0.1:{pf.port}, master {pf.master_pid}, "
                  f"processes {pf.processes()}", flush=True)
            try:
                input("Enter to stop ")
            except (EOFError, KeyboardInterrupt):
                pass
            print(f"queued {pf.queued_messages()} {pf.queue_counts()}, "
                  f"CPU {pf.cpu_seconds():.2f} s")
    except PostfixNotInstalled as e:
        print(f"{e}: skipped")
        sys.exit(0)
    except PostfixError as e:
        print(f"postfix_peer: {e}", file=sys.stderr)
        sys.exit(1)
