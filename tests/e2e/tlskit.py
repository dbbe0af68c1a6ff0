"""tlskit: helpers for the end-to-end TLS tests of the mail programs
(test_starttls.py): a test PKI for mail hosts, qmail-smtpd under our
sslserver, a raw SMTP client that can pipeline into STARTTLS, a fake SMTP
peer with broken TLS, and readers of a peer's queue.

The certificate helpers and the front-end starter come from test_tls.py,
the DNS server from test_remote.py, so that there is one copy of each.
Everything here that starts something also stops it, and nothing here
may touch a system file (no /etc/hosts: names come from the test DNS
server through DNSCACHEIP).
"""

import os
import pathlib
import pwd
import re
import shutil
import socket
import socketserver
import ssl
import threading
import time

import qmtest
from test_tls import cleartext_line, make_ca, make_leaf, start_front

SMTPD_CERT_NAMES = "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
SERVER_EXT = "extendedKeyUsage=serverAuth\n"
CLIENT_EXT = "extendedKeyUsage=clientAuth\n"
TLS_VARS = ("CERTFILE", "KEYFILE", "CCAFILE", "CAFILE", "CADIR", "DHFILE",
            "CIPHERS", "SSL_UID", "SSL_GID", "SSL_CHROOT", "UCSPITLS",
            "DISABLETLS", "SMTPS", "TLS_SERVERNAME", "SSLCTLFD",
            "SSLREADFD", "SSLWRITEFD", "CRLFILE", "QMAILQUEUE",
            "RELAYCLIENT")


# ---- certificates ----


def make_mail_pki(d):
    """CAs and leaves for the mail tests under d; returns paths by name.

    ca signs everything except 'forged', which otherca signs with the
    e-mail address of a listed client: it must never be trusted."""
    d.mkdir(mode=0o755)
    make_ca(d, "ca", "QM Mail CA")
    make_ca(d, "otherca", "QM Mail Other CA")
    make_leaf(d, "smtpd", "/CN=localhost", SERVER_EXT + SMTPD_CERT_NAMES,
              0x2001)
    make_leaf(d, "mx", "/CN=mx.remote.test",
              SERVER_EXT + "subjectAltName=DNS:mx.remote.test\n", 0x2002)
    make_leaf(d, "otherhost", "/CN=other.remote.test",
              SERVER_EXT + "subjectAltName=DNS:other.remote.test\n", 0x2003)
    make_leaf(d, "client", "/CN=client.example.test/"
              "emailAddress=client@example.test", CLIENT_EXT, 0x2101)
    make_leaf(d, "stranger", "/CN=stranger.example.test/"
              "emailAddress=stranger@example.test", CLIENT_EXT, 0x2102)
    make_leaf(d, "forged", "/CN=client.example.test/"
              "emailAddress=client@example.test", CLIENT_EXT, 0x2103,
              ca="otherca")
    for entry in d.iterdir():
        entry.chmod(0o644)
    paths = {p.name.replace(".", "_"): p for p in d.iterdir()}
    paths.update(dir=d, ca=d / "ca.crt", otherca=d / "otherca.crt")
    return paths


def client_context(pki, minimum=None, maximum=None, cert=None):
    """A verifying client context for the smtpd certificate (localhost)."""
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    if cert is not None:
        ctx.load_cert_chain(str(cert))
    return ctx


def account_dir(inst, name):
    """A directory in the instance's home that its account may write."""
    d = inst.path / name
    d.mkdir(mode=0o755)
    if qmtest.is_root():
        os.chown(d, inst.uid, inst.gid)
    return d


def env_dumper(inst):
    """A QMAILQUEUE program that keeps its environment in a file, then
    runs qmail-queue; returns (program, file)."""
    d = account_dir(inst, "qq-env")
    dump = d / "env"
    script = inst.path / "qq-dump"
    script.write_text("#!/bin/sh\n"
                      "# Keeps the environment qmail-queue gets.\n"
                      f"env > '{dump}'\n"
                      f"exec '{inst.path}/bin/qmail-queue'\n")
    script.chmod(0o755)
    return script, dump


def private_copy(src, directory, name="servercert.pem"):
    """src copied into directory (made mode 0700), mode 0600, root's."""
    directory = pathlib.Path(directory)
    directory.mkdir(mode=0o700, exist_ok=True)
    target = directory / name
    target.write_bytes(pathlib.Path(src).read_bytes())
    target.chmod(0o600)
    return target


def readable_copy(inst, src, name):
    """src copied into the instance's home, owned by its account, so that
    a TLS program running as that account can read it."""
    target = inst.path / name
    target.write_bytes(pathlib.Path(src).read_bytes())
    target.chmod(0o600)
    if qmtest.is_root():
        os.chown(target, inst.uid, inst.gid)
    return target


# ---- instances shared by the tests of a module ----


class Snapshot:
    """What qmail-instance made, so that a shared instance can be given
    back to the next test as new: the entries of its home, its control
    files (subdirectories such as tlshosts/ included), an empty queue
    and empty Maildirs."""

    def __init__(self, inst):
        self.inst = inst
        self.top = {p.name for p in inst.path.iterdir()}
        control = inst.path / "control"
        self.control = {p.name: p.read_bytes() for p in control.iterdir()
                        if p.is_file()}

    @staticmethod
    def _remove(path):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()

    def restore(self, logbook):
        inst = self.inst
        inst.logbook = logbook
        for path in inst.path.iterdir():
            if path.name not in self.top:
                self._remove(path)
        control = inst.path / "control"
        for path in control.iterdir():
            if path.name not in self.control or not path.is_file():
                self._remove(path)
        for name, data in self.control.items():
            path = control / name
            if not path.is_file() or path.read_bytes() != data:
                inst.control(name, data)
        for rel in inst.queue_files():
            (inst.path / "queue" / rel).unlink()
        for box in inst.mailboxes:
            for sub in ("new", "cur", "tmp"):
                for path in (inst.maildir(box) / sub).iterdir():
                    path.unlink()
        return inst


def make_shared_instance(bindir, logbook, host, mailboxes):
    """An instance for a whole module; the caller removes it."""
    path = qmtest.make_public_tempdir("qm-inst-")
    inst = qmtest.Instance(path, bindir, host, mailboxes, logbook)
    result = inst.install()
    if result.returncode != 0:
        qmtest.remove_tree(path)
        raise RuntimeError(f"qmail-instance failed ({result.returncode}): "
                           f"{result.stderr.decode(errors='replace')}")
    return inst


# ---- qmail-smtpd under sslserver ----


def nobody_ids():
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def smtpd_env(inst, **extra):
    """The instance's environment without any TLS setting of ours, then
    extra (a value of None leaves the variable unset)."""
    env = inst.env()
    for name in TLS_VARS:
        env.pop(name, None)
    for name, value in extra.items():
        if value is not None:
            env[name] = str(value)
    return env


def sslserver_argv(inst, host, port, delayed=True, localname=None,
                   app=None):
    """sslserver's command line for qmail-smtpd of inst; as root the
    application gets the instance's ids (-u/-g)."""
    argv = [str(inst.bindir / "sslserver")]
    if delayed:
        argv.append("-n")
    argv += ["-vHl", localname or inst.host]
    if qmtest.is_root():
        argv += ["-u", str(inst.uid), "-g", str(inst.gid)]
    return argv + [host, str(port)] + list(
        app or [str(inst.path / "bin" / "qmail-smtpd")])


def start_smtpd(servers, inst, cert, host="127.0.0.1", delayed=True,
                localname=None, app=None, **env):
    """qmail-smtpd of inst under sslserver on a free port. As root the
    TLS process runs as nobody unless SSL_UID/SSL_GID say otherwise."""
    if qmtest.is_root():
        uid, gid = nobody_ids()
        env.setdefault("SSL_UID", uid)
        env.setdefault("SSL_GID", gid)
    environ = smtpd_env(inst, CERTFILE=cert, **env)
    return start_front(
        servers, lambda port: sslserver_argv(inst, host, port, delayed,
                                             localname, app),
        environ, "sslserver-smtpd", host=host)


def start_smtpd_on(servers, inst, cert, host, port, delayed=True, **env):
    """As start_smtpd, on a fixed port (465 needs root); raises
    qmtest.ServerError when the port cannot be had."""
    if qmtest.is_root():
        uid, gid = nobody_ids()
        env.setdefault("SSL_UID", uid)
        env.setdefault("SSL_GID", gid)
    environ = smtpd_env(inst, CERTFILE=cert, **env)
    full = sslserver_argv(inst, host, port, delayed)
    log_path = servers.logbook.new(f"server-sslserver-{port}")
    server = servers._spawn(full, environ, servers.cwd, host, port,
                            log_path)
    if not servers._wait_ready(server):
        raise qmtest.ServerError(f"{full!r} died:\n{server.log_text()}")
    servers.running.append(server)
    return server


def port_free(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def program_of(pid):
    """The basename of argv[0] of pid."""
    words = qmtest.proc_cmdline(pid).split()
    return os.path.basename(words[0]) if words else ""


def session_pids(server):
    """Live processes of a server's session other than tcpserver."""
    sid = server.proc.pid
    return [(pid, cmd) for pid, cmd in qmtest.session_members(sid)
            if pid != sid]


def status_ids(pid):
    """{'Uid': [...], 'Gid': [...], 'Groups': [...]} of /proc/pid/status."""
    ids = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                ids[key] = [int(v) for v in value.split()]
    return ids


# ---- a raw SMTP client ----


class RawSmtp:
    """SMTP over a socket that is cleartext first and may become TLS;
    reads never go past the reply asked for while in cleartext, so that
    the TLS handshake finds its bytes unread."""

    def __init__(self, host, port, timeout=15):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.tls = None
        self.buf = b""

    def _recv(self):
        data = (self.tls or self.sock).recv(65536)
        if not data:
            raise EOFError(f"EOF after {self.buf!r}")
        return data

    def line(self):
        if self.tls is None:
            line = cleartext_line(self.sock)
            if not line:
                raise EOFError("EOF in cleartext")
            return line.decode()
        while b"\n" not in self.buf:
            self.buf += self._recv()
        line, _, self.buf = self.buf.partition(b"\n")
        return (line + b"\n").decode()

    def reply(self):
        """Every line of one reply, without CRLF."""
        lines = []
        while True:
            line = self.line()
            assert line.endswith("\r\n"), line
            lines.append(line[:-2])
            if line[3:4] != "-":
                return lines

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        (self.tls or self.sock).sendall(data)

    def command(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def start_tls(self, ctx, hostname="localhost"):
        self.tls = ctx.wrap_socket(self.sock, server_hostname=hostname,
                                   suppress_ragged_eofs=False)
        return self.tls

    def nothing_unasked(self, wait=0.7):
        """True when the server sends nothing of its own for wait s."""
        sock = self.tls or self.sock
        sock.settimeout(wait)
        try:
            data = sock.recv(4096)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        finally:
            sock.settimeout(15)
        self.buf += data
        return False

    def close(self):
        try:
            (self.tls or self.sock).close()
        except OSError:
            pass


# ---- a fake SMTP peer for qmail-remote ----


class FakePeer:
    """A small SMTP server on host (port chosen, or given) that offers
    STARTTLS and does, for its n-th connection, what plan[n] says (the
    last entry for the rest):

    - "refuse": 454 to STARTTLS;
    - "garbage": 220 to STARTTLS, then bytes that are no TLS, and close;
    - "inject": 220 to STARTTLS with a 554 reply in the same write (a
      man in the middle's injection, which the client must drop), then
      TLS with cert, and mail accepted over it;
    - "plain": answers STARTTLS with 502 and accepts mail in cleartext.

    Each session is recorded as {"commands": [...], "data": bytes,
    "tls_commands": [...]} (the last: commands read over TLS)."""

    def __init__(self, host="127.0.0.2", plan=("plain",), port=0,
                 cert=None):
        self.plan = list(plan)
        self.sessions = []
        self.lock = threading.Lock()
        self.ctx = None
        if cert is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(str(cert))
        peer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                with peer.lock:
                    index = len(peer.sessions)
                    session = {"commands": [], "data": None,
                               "tls_commands": []}
                    peer.sessions.append(session)
                mode = peer.plan[min(index, len(peer.plan) - 1)]
                self.request.settimeout(20)
                try:
                    peer.serve(self, mode, session)
                except (OSError, ssl.SSLError):
                    pass

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def serve(self, handler, mode, session):
        rfile, wfile = handler.rfile, handler.wfile
        commands = session["commands"]

        def say(text):
            wfile.write(text.encode() + b"\r\n")
            wfile.flush()

        say("220 fake.remote.test ESMTP")
        while True:
            line = rfile.readline()
            if not line:
                return
            command = line.decode(errors="replace").rstrip("\r\n")
            commands.append(command)
            verb = command.split(" ")[0].upper()
            if verb == "EHLO":
                say("250-fake.remote.test\r\n250-PIPELINING\r\n"
                    + ("250 SIZE" if commands is session["tls_commands"]
                       else "250 STARTTLS"))
            elif verb == "STARTTLS" and mode == "refuse":
                say("454 4.7.0 TLS not available now")
            elif verb == "STARTTLS" and mode == "garbage":
                say("220 2.0.0 go ahead")
                wfile.write(b"this is no TLS record\r\n" + b"\xff" * 64)
                wfile.flush()
                return
            elif verb == "STARTTLS" and mode == "inject":
                say("220 2.0.0 go ahead\r\n554 5.7.0 injected")
                tls = self.ctx.wrap_socket(handler.request,
                                           server_side=True)
                rfile, wfile = tls.makefile("rb"), tls.makefile("wb")
                commands = session["tls_commands"]
            elif verb == "STARTTLS":
                say("502 5.5.1 not now")
            elif verb == "DATA":
                say("354 go ahead")
                data = b""
                while True:
                    chunk = rfile.readline()
                    if not chunk or chunk == b".\r\n":
                        break
                    data += chunk
                session["data"] = data
                say("250 2.0.0 queued")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("250 ok")

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# ---- what a peer instance received ----


def queued_messages(inst):
    """The messages in the instance's queue (its queue is not running),
    as qmail-queue stored them."""
    mess = inst.path / "queue" / "mess"
    return [p.read_bytes() for p in sorted(mess.rglob("*")) if p.is_file()]


def received_protocol(message):
    """The 'with ...' of the first Received field that has one."""
    m = re.search(rb"\n  by [^\n]* with ([^;]*);", message)
    return m.group(1).decode() if m else None


def wait_gone(pids, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in pids if qmtest.pid_alive(p)]:
            return True
        time.sleep(0.05)
    return False
