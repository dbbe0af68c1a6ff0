"""foreign: SMTP servers that are not ours, for the interoperability tests.

- RecordingProxy: a TCP relay between our client and a server that keeps
  every read of each direction, in the order the relay saw them, so that a
  test can tell whether commands were pipelined.
- Aiosmtpd: python3-aiosmtpd's Controller on 127.0.0.1 with a handler
  that records each envelope and can refuse chosen recipients.
- Postfix: Debian's Postfix from a private config and queue directory,
  with only an smtpd on 127.0.0.1 and virtual(8) delivery to one Maildir.

Nothing here may touch a system file or leave a process behind: Postfix
runs with `postfix -c DIR`, never reads /etc/postfix, and stop() waits
until every process of its session is gone (or kills them).
"""

import os
import pathlib
import pwd
import selectors
import signal
import socket
import subprocess
import threading
import time

import qmtest

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
START_ATTEMPTS = 8


# ---- a recording TCP relay ----


class Session:
    """One relayed connection: events are (side, bytes) with side "c"
    for what the client sent and "s" for what the server sent, one event
    per read."""

    def __init__(self):
        self.events = []
        self.done = threading.Event()

    def reads(self, side):
        return [data for who, data in self.events if who == side]

    def text(self, side):
        return b"".join(self.reads(side))

    def client_lines(self):
        """Every line the client sent (commands and message), CRLF kept."""
        return self.text("c").splitlines(keepends=True)

    def mail_command(self):
        found = [line for line in self.client_lines()
                 if line.upper().startswith(b"MAIL FROM:")]
        assert len(found) == 1, found
        return found[0]

    def commands(self):
        """The client's SMTP commands up to DATA's reply and after the
        message: the message itself is left out."""
        out, in_data = [], False
        for line in self.client_lines():
            if in_data:
                in_data = line != b".\r\n"
                continue
            out.append(line)
            in_data = line.upper() == b"DATA\r\n" and self._data_went_on()
        return out

    def _data_went_on(self):
        return b"\r\n354 " in b"\r\n" + self.text("s")


class RecordingProxy:
    """Listens on 127.0.0.1 (free port) and relays each connection to
    upstream, recording it as a Session."""

    def __init__(self, upstream_host, upstream_port):
        self.upstream = (upstream_host, upstream_port)
        self.sessions = []
        self.stopping = threading.Event()
        self.threads = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            session = Session()
            self.sessions.append(session)
            thread = threading.Thread(target=self._relay,
                                      args=(client, session), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _relay(self, client, session):
        """One loop for both directions, so that events are in the order
        the data came in; the first EOF or error ends the session."""
        try:
            server = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            client.close()
            session.done.set()
            return
        peer = {client: (server, "c"), server: (client, "s")}
        sel = selectors.DefaultSelector()
        for sock in peer:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
        try:
            while not self.stopping.is_set():
                for key, _ in sel.select(timeout=0.05):
                    other, side = peer[key.fileobj]
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    session.events.append((side, data))
                    other.setblocking(True)
                    other.sendall(data)
                    other.setblocking(False)
        except OSError:
            pass
        finally:
            sel.close()
            client.close()
            server.close()
            session.done.set()

    def last_session(self, timeout=10):
        """The newest session, once it has ended."""
        qmtest.wait_for(lambda: self.sessions, timeout=timeout,
                        message="a relayed connection")
        session = self.sessions[-1]
        assert session.done.wait(timeout), "the relayed session never ended"
        return session

    def close(self):
        self.stopping.set()
        self.sock.close()
        self.thread.join(timeout=5)
        for thread in self.threads:
            thread.join(timeout=5)


# ---- aiosmtpd ----


class RecordingHandler:
    """aiosmtpd handler: keeps every accepted message's envelope and
    content; refuses the recipients in `refuse` with their reply."""

    ACCEPTED = "250 Message accepted for delivery"

    def __init__(self, refuse=None):
        self.refuse = dict(refuse or {})
        self.messages = []
        self.mail_commands = 0

    async def handle_MAIL(self, server, session, envelope, address,
                          mail_options):
        self.mail_commands += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "smtp_utf8": envelope.smtp_utf8,
            "content": bytes(envelope.original_content),
        })
        return self.ACCEPTED


class Aiosmtpd:
    """An aiosmtpd server on 127.0.0.1; smtp_options go to its SMTP class
    (enable_SMTPUTF8, data_size_limit, ...)."""

    def __init__(self, handler, **smtp_options):
        from aiosmtpd.controller import Controller

        self.handler = handler
        smtp_options.setdefault("enable_SMTPUTF8", False)
        smtp_options.setdefault("server_hostname", "aiosmtpd.remote.test")
        for _ in range(START_ATTEMPTS):
            port = qmtest.free_port("127.0.0.1")
            controller = Controller(handler, hostname="127.0.0.1", port=port,
                                    ready_timeout=10, **smtp_options)
            try:
                controller.start()
            except OSError:
                controller.stop(no_assert=True)
                continue
            self.controller, self.port = controller, port
            return
        raise RuntimeError("aiosmtpd found no free port")

    def stop(self):
        self.controller.stop()


# ---- Postfix ----


def postfix_installed():
    return os.access(POSTFIX, os.X_OK) and os.access(POSTCONF, os.X_OK)


MASTER_CF = """\
# Only an smtpd on loopback and what delivery to a Maildir needs.
{listen} inet  n       -       n       -       -       smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
anvil     unix  -       -       n       -       1       anvil
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
virtual   unix  -       n       n       -       -       virtual
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixError(Exception):
    pass


class Postfix:
    """A private Postfix under top/: etc/ (main.cf, master.cf), queue/,
    data/, mail/box/ (the Maildir every recipient of `domain` goes to,
    owned by `account`) and maillog. extra is added to main.cf."""

    def __init__(self, top, domain="remote.test", account="nobody",
                 extra=""):
        self.top = pathlib.Path(top)
        self.etc = self.top / "etc"
        self.queue = self.top / "queue"
        self.data = self.top / "data"
        self.mail = self.top / "mail"
        self.maillog = self.top / "maillog"
        self.domain = domain
        self.account = pwd.getpwnam(account)
        self.extra = extra
        self.port = None
        self.master = None
        self.log_mark = 0  # where the current test's log lines begin
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                    "MAIL_CONFIG": str(self.etc)}

    def maildir(self):
        return self.mail / "box"

    def main_cf(self):
        acct = self.account
        return f"""\
compatibility_level = 3.6
config_directory = {self.etc}
queue_directory = {self.queue}
data_directory = {self.data}
maillog_file = {self.maillog}
maillog_file_prefixes = {self.top}
myhostname = postfix.{self.domain}
mydomain = {self.domain}
myorigin = $myhostname
mydestination =
mynetworks = 127.0.0.0/8
inet_interfaces = loopback-only
inet_protocols = ipv4
smtpd_peername_lookup = no
local_header_rewrite_clients =
alias_maps =
alias_database =
local_recipient_maps =
relayhost =
biff = no
virtual_mailbox_domains = {self.domain}
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:{acct.pw_uid}
virtual_gid_maps = static:{acct.pw_gid}
virtual_minimum_uid = 1
{self.extra}
"""

    def setup(self):
        for d in (self.etc, self.queue, self.data, self.mail):
            d.mkdir(parents=True, exist_ok=True)
        os.chown(self.data, pwd.getpwnam("postfix").pw_uid, -1)
        for sub in ("", "new", "cur", "tmp"):
            (self.maildir() / sub).mkdir(mode=0o700, exist_ok=True)
        for path in (self.mail, self.maildir(), *[
                self.maildir() / s for s in ("new", "cur", "tmp")]):
            os.chown(path, self.account.pw_uid, self.account.pw_gid)
        (self.etc / "main.cf").write_text(self.main_cf())

    def postfix(self, *args, check=True):
        result = subprocess.run([POSTFIX, "-c", str(self.etc), *args],
                                env=self.env, stdin=subprocess.DEVNULL,
                                capture_output=True, timeout=60)
        if check and result.returncode != 0:
            raise PostfixError(
                f"postfix {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.decode(errors='replace')}\n"
                f"{self.log_text()[-2000:]}")
        return result

    def version(self):
        out = subprocess.run([POSTCONF, "-c", str(self.etc), "-h",
                              "mail_version"], env=self.env,
                             capture_output=True, timeout=30)
        return out.stdout.decode().strip()

    def start(self):
        """Starts the master on a free port (retrying if the port was
        taken in the meantime)."""
        self.setup()
        for _ in range(START_ATTEMPTS):
            self.port = qmtest.free_port("127.0.0.1")
            (self.etc / "master.cf").write_text(
                MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
            self.postfix("check")  # also makes the queue directories
            result = self.postfix("start", check=False)
            if result.returncode == 0:
                self.master = self._wait_master()
                qmtest.wait_for(
                    lambda: qmtest.is_listening(self.master, self.port),
                    timeout=10, message="postfix listening")
                return
            if b"in use" not in result.stderr and \
                    "in use" not in self.log_text():
                raise PostfixError(
                    f"postfix start failed: {result.stderr!r}\n"
                    f"{self.log_text()[-2000:]}")
        raise PostfixError("postfix found no free port")

    def _wait_master(self):
        def pid():
            try:
                return int((self.queue / "pid" / "master.pid").read_text()
                           .split()[0])
            except (OSError, ValueError, IndexError):
                return None
        master = qmtest.wait_for(pid, timeout=10, message="master.pid")
        st = qmtest.proc_stat(master)
        # The master calls setsid(): its session holds every process of
        # this instance, which is how stop() finds them all.
        if st is None or st[3] != master:
            raise PostfixError(f"postfix master {master} is not a session "
                               "leader")
        return master

    def stop(self):
        """Stops the instance; returns the processes that survived even
        SIGKILL (an empty list when all is well)."""
        if self.master is None:
            return []
        sid, self.master = self.master, None
        try:
            self.postfix("stop", check=False)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 15
        while qmtest.session_members(sid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if qmtest.session_members(sid):
            self.postfix("abort", check=False)
        for _ in range(40):
            left = qmtest.session_members(sid)
            if not left:
                return []
            for pid, _ in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        return qmtest.session_members(sid)

    def log_text(self):
        try:
            return self.maillog.read_text(errors="replace")
        except OSError:
            return ""

    def messages(self):
        """[(name, bytes)] of the Maildir's new/ and cur/, by name."""
        found = []
        for sub in ("new", "cur"):
            for entry in sorted((self.maildir() / sub).iterdir()):
                if entry.is_file():
                    found.append((entry.name, entry.read_bytes()))
        return sorted(found)

    def empty_maildir(self):
        for sub in ("new", "cur"):
            for entry in (self.maildir() / sub).iterdir():
                entry.unlink()

    def remove(self):
        qmtest.remove_tree(self.top)


def strip_trace(delivered, names=(b"return-path", b"delivered-to",
                                  b"x-original-to", b"received")):
    """The message without the trace headers Postfix put on top of it:
    returns (trace header lines, the rest)."""
    lines = delivered.splitlines(keepends=True)
    trace, i = [], 0
    while i < len(lines):
        name = lines[i].split(b":", 1)[0].lower()
        if name not in names:
            break
        trace.append(lines[i])
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            trace.append(lines[i])
            i += 1
    return trace, b"".join(lines[i:])


__all__ = ["RecordingProxy", "Session", "RecordingHandler", "Aiosmtpd",
           "Postfix", "PostfixError", "postfix_installed", "strip_trace"]
