"""End-to-end tests of qmail-remote and its helpers (qmail-tcpto,
qmail-tcpok), with real DNS answers, real sockets and a real remote MX.

A small DNS server (python3-dnslib) on 127.0.0.1, UDP and TCP on one
random port, answers MX, A, AAAA and CNAME, NXDOMAIN, SERVFAIL, a null MX
and a truncated UDP answer; qmail-remote is pointed at it with
DNSCACHEIP. A second instance ("remote.test") runs qmail-smtpd under
tcpserver on 127.0.0.2 or ::1 and its own queue, so a delivery is proven
by the message in its Maildir. Other addresses of 127.0.0.0/8 play MX
hosts that refuse connections (nothing listens), that greet with 554, that
only record a connection, or that never complete one (a listener with a
full backlog, so the connect times out). All MX hosts share the port that
the smtpd got, which a route "domain::port" (MX lookup, that port) gives
qmail-remote.

qmail-remote is run directly as the instance account, with the message
as a file on fd 0, and its exact report bytes are checked. The last tests
send through a first instance's queue (qmail-send, qmail-rspawn) to the
second instance. Nothing here may outlive its test: the fixtures stop
every server, listener and queue they started.
"""

import json
import os
import re
import shutil
import socket
import socketserver
import struct
import subprocess
import threading
import time

import pytest
from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, A, DNSRecord

import qmtest
from qmtest import is_root, wait_for
from queuectl import Queue

SENDER = "alice@example.test"
RCPT = "bob@remote.test"
MESSAGE = (b"From: Alice <alice@example.test>\n"
           b"To: Bob <bob@remote.test>\n"
           b"Subject: over SMTP\n"
           b"\n"
           b"Hello through qmail-remote.\n"
           b"A second line.\n")
NOCONN = (b"ZSorry, I wasn't able to establish an SMTP connection. "
          b"(#4.4.1)\nLast attempt: ")
TEMP_DNS = b"ZSorry, I couldn't find any host by that name. (#4.1.2)\n\0"
AMBIGUOUS = (b"DSorry. Although I'm listed as a best-preference MX or A for "
             b"that host,\nit isn't in my control/locals file, so I don't "
             b"treat it as local. (#5.4.6)\n\0")
IPV6 = pytest.mark.skipif(not qmtest.ipv6_loopback_available(),
                          reason="no IPv6 loopback")


def accepted_re(ip):
    """qmail-rsmtp's reports for one accepted recipient and message."""
    return re.compile(rb"r\0K" + re.escape(ip.encode()) +
                      rb" accepted message\.\nRemote host said: 250 [^\0]*"
                      rb"\0")


# ---- a DNS server ----


class DnsServer:
    """Answers from a small zone, as a recursive resolver would: CNAMEs
    are chased (unless a name is in no_chase) and put before the records
    of the final name. Names in truncate get an empty answer with TC over
    UDP and the full one over TCP. Every query is logged as (protocol,
    name, type)."""

    def __init__(self):
        self.records = {}
        self.cnames = {}
        self.exists = set()
        self.nxdomain = set()
        self.servfail = set()
        self.truncate = set()
        self.no_chase = set()
        self.log = []
        self.lock = threading.Lock()
        self.port = None
        self.servers = []
        self.threads = []

    # -- the zone --

    def add(self, name, rtype, *values):
        self.exists.add(name)
        self.records.setdefault((name, rtype), []).extend(values)

    def mx(self, name, *pairs):
        self.add(name, "MX", *[MX(host, pref) for pref, host in pairs])

    def a(self, name, *addresses):
        self.add(name, "A", *[A(x) for x in addresses])

    def aaaa(self, name, *addresses):
        self.add(name, "AAAA", *[AAAA(x) for x in addresses])

    def cname(self, name, target):
        self.cnames[name] = target

    def queries(self, proto=None):
        with self.lock:
            return [(p, n, t) for p, n, t in self.log
                    if proto is None or p == proto]

    # -- answers --

    def answer(self, data, proto):
        request = DNSRecord.parse(data)
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.log.append((proto, qname, qtype))
        reply = request.reply()
        if qname in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply.pack()
        if proto == "udp" and qname in self.truncate:
            reply.header.tc = 1
            return reply.pack()
        name = qname
        for _ in range(10):
            if name not in self.cnames or qtype == "CNAME":
                break
            target = self.cnames[name]
            reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(target),
                                ttl=60))
            if name in self.no_chase:
                return reply.pack()
            name = target
        if name in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
        elif name in self.nxdomain or name not in self.exists:
            reply.header.rcode = RCODE.NXDOMAIN
        else:
            for rdata in self.records.get((name, qtype), []):
                reply.add_answer(RR(name, getattr(QTYPE, qtype),
                                    rdata=rdata, ttl=60))
        return reply.pack()

    # -- the sockets --

    def start(self):
        dns = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                try:
                    sock.sendto(dns.answer(data, "udp"), self.client_address)
                except Exception as e:  # noqa: BLE001 (a test server)
                    print(f"dns: bad UDP query: {e!r}")

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.settimeout(10)
                while True:
                    head = self._read(2)
                    if not head:
                        return
                    data = self._read(struct.unpack("!H", head)[0])
                    if data is None:
                        return
                    out = dns.answer(data, "tcp")
                    self.request.sendall(struct.pack("!H", len(out)) + out)

            def _read(self, n):
                buf = b""
                while len(buf) < n:
                    chunk = self.request.recv(n - len(buf))
                    if not chunk:
                        return None
                    buf += chunk
                return buf

        socketserver.ThreadingUDPServer.allow_reuse_address = True
        for _ in range(20):
            udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
            port = udp.server_address[1]
            try:
                tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port),
                                                      Tcp)
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise RuntimeError("no port free for UDP and TCP at once")
        udp.daemon_threads = tcp.daemon_threads = True
        self.port = port
        self.servers = [udp, tcp]
        for server in self.servers:
            thread = threading.Thread(target=server.serve_forever,
                                      kwargs={"poll_interval": 0.05},
                                      daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(timeout=5)


# ---- listeners that play broken MX hosts ----


class Listener:
    """A TCP listener on host:port. mode "record": accept, note the
    connection, send greeting (if any) and close after the peer does, or
    says QUIT, or after a few seconds. mode "backlog": never accept, and
    fill the accept queue so that further connects time out."""

    def __init__(self, host, port, mode="record", greeting=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, port
        self.greeting = greeting
        self.connections = 0
        self.fillers = []
        self.stopping = threading.Event()
        self.thread = None
        if mode == "backlog":
            self.sock.listen(0)
            for _ in range(3):
                filler = socket.socket(family, socket.SOCK_STREAM)
                filler.setblocking(False)
                try:
                    filler.connect((host, port))
                except BlockingIOError:
                    pass
                self.fillers.append(filler)
            time.sleep(0.2)
        else:
            self.sock.listen(16)
            self.sock.settimeout(0.05)
            self.thread = threading.Thread(target=self._serve, daemon=True)
            self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(5)
                try:
                    if self.greeting:
                        conn.sendall(self.greeting)
                    self._until_quit(conn)
                except OSError:
                    pass

    @staticmethod
    def _until_quit(conn):
        """Reads until EOF, answering a QUIT, so that a polite client
        does not wait for the timeout."""
        data = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
            if b"QUIT\r\n" in data.upper():
                conn.sendall(b"221 bye\r\n")
                return

    def close(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(timeout=5)
        for filler in self.fillers:
            filler.close()
        self.sock.close()


# ---- a remote MX that counts sessions (for concurrencyremote) ----


class SmtpSink:
    """A minimal SMTP server on host:port that accepts everything, holds
    each message for `hold` seconds before its 250, and counts how many
    sessions are open at once."""

    def __init__(self, host, hold=0.6):
        self.hold = hold
        self.active = 0
        self.max_active = 0
        self.messages = []
        self.lock = threading.Lock()
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                with sink.lock:
                    sink.active += 1
                    sink.max_active = max(sink.max_active, sink.active)
                try:
                    sink.session(self.rfile, self.wfile)
                finally:
                    with sink.lock:
                        sink.active -= 1

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def session(self, rfile, wfile):
        def say(line):
            wfile.write(line + b"\r\n")
            wfile.flush()

        say(b"220 sink.test ESMTP")
        while True:
            line = rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                say(b"250 sink.test")
            elif verb == b"DATA":
                say(b"354 go ahead")
                data = b""
                while True:
                    chunk = rfile.readline()
                    if not chunk or chunk == b".\r\n":
                        break
                    data += chunk
                time.sleep(self.hold)
                with self.lock:
                    self.messages.append(data)
                say(b"250 ok queued")
            elif verb == b"QUIT":
                say(b"221 bye")
                return
            else:
                say(b"250 ok")

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# ---- fixtures ----


@pytest.fixture
def dns():
    server = DnsServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def listeners():
    made = []

    def make(*args, **kwargs):
        listener = Listener(*args, **kwargs)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()


@pytest.fixture
def sender(make_instance):
    """The instance whose qmail-remote sends."""
    return make_instance(host="example.test", mailboxes=("alice",))


class RemoteMx:
    def __init__(self, inst, server, queue):
        self.inst = inst
        self.server = server
        self.queue = queue
        self.host = server.host
        self.port = server.port

    def delivered(self, count=1, timeout=30):
        """Waits for count messages in bob's Maildir; returns them."""
        wait_for(lambda: len(self.inst.maildir_messages("bob")) >= count,
                 timeout=timeout, message=f"{count} message(s) for bob")
        return [data for _, data in self.inst.maildir_messages("bob")]


@pytest.fixture
def remote_mx(make_instance, servers):
    """Factory: the second instance, remote.test, with qmail-smtpd on
    host and its queue running."""
    queues = []

    def start(host="127.0.0.2"):
        inst = make_instance(host="remote.test", mailboxes=("bob",))
        server = servers.start([str(inst.path / "bin" / "qmail-smtpd")],
                               host=host, as_account=inst,
                               name="remote-smtpd", localname="remote.test")
        queue = Queue(inst)
        queues.append(queue)
        queue.start()
        queue.wait_started(timeout=20)
        return RemoteMx(inst, server, queue)

    yield start
    for queue in queues:
        queue.close()


def need_rsmtp(inst):
    if not (inst.bindir / "qmail-rsmtp").exists():
        pytest.skip("qmail-rsmtp is not built yet")


def run_remote(inst, host, rcpts=(RCPT,), dns=None, sender=SENDER,
               message=MESSAGE, timeout=120, env=None, cwd=None):
    """Runs the instance's qmail-remote as its account, the message on
    fd 0 as a file; returns the CompletedProcess."""
    path = inst.path / "message.tmp"
    path.write_bytes(message)
    argv = [str(inst.path / "bin" / "qmail-remote"), host, sender,
            *rcpts]
    full = inst.as_account(argv)
    if full[0] == "setuidgid":
        full[0] = shutil.which("setuidgid")  # PATH may be changed below
    environ = inst.env()
    if dns is not None:
        environ["DNSCACHEIP"] = f"127.0.0.1:{dns.port}"
    environ.update(env or {})
    with open(path, "rb") as stdin:
        proc = subprocess.Popen(full, stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=environ,
                                cwd=cwd or inst.path,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            qmtest.kill_group(proc.pid, 9)
            proc.communicate()
            raise
    result = subprocess.CompletedProcess(full, proc.returncode, out, err)
    inst._record("qmail-remote", full, result)
    return result


def report(result):
    assert result.returncode == 0, result.stderr
    return result.stdout


def mx_route(inst, port, domain="remote.test"):
    """MX lookup as usual for domain, but on this port."""
    inst.control("smtproutes", f"{domain}::{port}\n")


def check_delivered(mx, count=1):
    messages = mx.delivered(count)
    for data in messages:
        assert data.endswith(MESSAGE), data[-300:]
        assert b"Delivered-To: bob@remote.test\n" in data
    return messages


# ---- MX, AAAA, A ----


def test_lowest_preference_first(sender, dns, remote_mx, listeners):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    other = listeners("127.0.0.4", mx.port, greeting=b"554 not me\r\n")
    dns.mx("remote.test", (20, "mx2.remote.test"), (10, "mx1.remote.test"))
    dns.a("mx1.remote.test", "127.0.0.2")
    dns.a("mx2.remote.test", "127.0.0.4")
    mx_route(sender, mx.port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    check_delivered(mx)
    assert other.connections == 0
    # AAAA before A for the one exchanger that was needed.
    names = [(n, t) for _, n, t in dns.queries()]
    assert names[:3] == [("remote.test", "MX"),
                         ("mx1.remote.test", "AAAA"),
                         ("mx1.remote.test", "A")], names


def test_refused_mx_falls_back_to_the_next(sender, dns, remote_mx):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    # 127.0.0.3: nothing listens there, the connection is refused.
    dns.mx("remote.test", (10, "mx1.remote.test"), (20, "mx2.remote.test"))
    dns.a("mx1.remote.test", "127.0.0.3")
    dns.a("mx2.remote.test", "127.0.0.2")
    mx_route(sender, mx.port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    check_delivered(mx)
    names = [n for _, n, t in dns.queries() if t == "A"]
    assert names == ["mx1.remote.test", "mx2.remote.test"]
    # A refused connection is no timeout: nothing is recorded.
    table = (sender.path / "queue" / "lock" / "tcpto").read_bytes()
    assert table == bytes(1024)


def test_every_mx_refused_is_temporary(sender, dns):
    port = qmtest.free_port("127.0.0.1")
    dns.mx("remote.test", (10, "mx1.remote.test"), (20, "mx2.remote.test"))
    dns.a("mx1.remote.test", "127.0.0.3")
    dns.a("mx2.remote.test", "127.0.0.4")
    mx_route(sender, port)
    result = run_remote(sender, "remote.test", dns=dns)
    assert report(result) == (NOCONN + b"mx2.remote.test [127.0.0.4] port " +
                              str(port).encode() +
                              b": connection refused.\n\0")
    # tcpclient's own words went into the report, not to the log.
    assert b"unable to connect" not in result.stderr


def test_greeting_failure_tries_the_next_address(sender, dns, remote_mx,
                                                 listeners):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    rude = listeners("127.0.0.4", mx.port, greeting=b"554 go away\r\n")
    dns.mx("remote.test", (10, "mx1.remote.test"), (20, "mx2.remote.test"))
    dns.a("mx1.remote.test", "127.0.0.4")
    dns.a("mx2.remote.test", "127.0.0.2")
    mx_route(sender, mx.port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    assert rude.connections == 1
    check_delivered(mx)


def test_greeting_failure_everywhere_is_temporary(sender, dns, listeners):
    need_rsmtp(sender)
    port = qmtest.free_port("127.0.0.4")
    rude = listeners("127.0.0.4", port, greeting=b"554 go away\r\n")
    dns.mx("remote.test", (10, "mx1.remote.test"))
    dns.a("mx1.remote.test", "127.0.0.4")
    mx_route(sender, port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert out == (NOCONN + b"mx1.remote.test [127.0.0.4] port " +
                   str(port).encode() +
                   b": connected, but greeting failed.\n\0")
    assert rude.connections == 1


@IPV6
def test_delivery_over_ipv6_from_aaaa(sender, dns, remote_mx, listeners):
    mx = remote_mx("::1")
    need_rsmtp(sender)
    sender.control("notipme", "::1\n")
    # The A record leads to a listener that must not be reached first.
    v4 = listeners("127.0.0.4", mx.port, greeting=b"554 not me\r\n")
    dns.mx("remote.test", (10, "mx6.remote.test"))
    dns.aaaa("mx6.remote.test", "::1")
    dns.a("mx6.remote.test", "127.0.0.4")
    mx_route(sender, mx.port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert accepted_re("::1").fullmatch(out), out
    check_delivered(mx)
    assert v4.connections == 0


@IPV6
def test_own_ipv6_address_as_best_mx_is_refused(sender, dns):
    dns.mx("remote.test", (10, "mx6.remote.test"))
    dns.aaaa("mx6.remote.test", "::1")
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert out == AMBIGUOUS


def test_own_address_drops_it_and_every_worse_mx(sender, dns, remote_mx,
                                                 listeners):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    worse = listeners("127.0.0.4", mx.port, greeting=b"554 not me\r\n")
    dns.mx("remote.test", (10, "mx1.remote.test"), (20, "me.remote.test"),
           (30, "mx3.remote.test"))
    dns.a("mx1.remote.test", "127.0.0.3")  # refused
    dns.a("me.remote.test", "127.0.0.1")   # ours
    dns.a("mx3.remote.test", "127.0.0.4")
    mx_route(sender, mx.port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert out == (NOCONN + b"mx1.remote.test [127.0.0.3] port " +
                   str(mx.port).encode() + b": connection refused.\n\0")
    assert worse.connections == 0


def test_own_address_as_best_mx_is_permanent(sender, dns):
    dns.mx("remote.test", (10, "me.remote.test"), (20, "mx2.remote.test"))
    dns.a("me.remote.test", "127.0.0.1")
    dns.a("mx2.remote.test", "127.0.0.2")
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert out == AMBIGUOUS


def test_moreipme_counts_as_ours(sender, dns):
    sender.control("moreipme", "127.0.0.2\n")
    dns.mx("remote.test", (10, "mx.remote.test"))
    dns.a("mx.remote.test", "127.0.0.2")
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert out == AMBIGUOUS


def test_a_record_without_mx(sender, dns, remote_mx):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    dns.a("remote.test", "127.0.0.2")
    mx_route(sender, mx.port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    check_delivered(mx)
    assert [(n, t) for _, n, t in dns.queries()] == [
        ("remote.test", "MX"), ("remote.test", "AAAA"),
        ("remote.test", "A")]


def test_name_without_any_address_is_temporary(sender, dns):
    dns.add("remote.test", "TXT")  # exists, but no MX, AAAA or A
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert out == TEMP_DNS


def test_cname_chain_is_followed(sender, dns, remote_mx):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    dns.cname("alias.test", "remote.test")
    dns.mx("remote.test", (10, "mx.remote.test"))
    dns.cname("mx.remote.test", "host.remote.test")
    # The server does not chase this link: qmail-remote asks again.
    dns.cname("host.remote.test", "real.remote.test")
    dns.no_chase.add("host.remote.test")
    dns.a("real.remote.test", "127.0.0.2")
    mx_route(sender, mx.port, domain="alias.test")
    out = report(run_remote(sender, "alias.test", dns=dns))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    check_delivered(mx)
    assert ("udp", "real.remote.test", "A") in dns.queries()


def test_null_mx_is_permanent(sender, dns):
    dns.mx("nomail.test", (0, "."))
    dns.a("nomail.test", "127.0.0.2")
    out = report(run_remote(sender, "nomail.test", rcpts=["x@nomail.test"],
                            dns=dns))
    assert out == (b"DSorry, nomail.test does not accept mail: it publishes "
                   b"a null MX (RFC 7505). (#5.1.10)\n\0")
    assert [t for _, _, t in dns.queries()] == ["MX"]


def test_nxdomain_is_permanent(sender, dns):
    out = report(run_remote(sender, "nosuch.test", rcpts=["x@nosuch.test"],
                            dns=dns))
    assert out == (b"DSorry, I couldn't find any host named nosuch.test. "
                   b"(#5.1.2)\n\0")


def test_servfail_is_temporary(sender, dns):
    dns.servfail.add("broken.test")
    out = report(run_remote(sender, "broken.test", rcpts=["x@broken.test"],
                            dns=dns))
    assert out == TEMP_DNS


def test_exchanger_failures(sender, dns, remote_mx):
    """An exchanger that does not exist is skipped; one that fails
    temporarily is skipped too, and is the answer only when nothing
    else is left."""
    dns.mx("soft.test", (10, "broken.soft.test"), (20, "gone.soft.test"))
    dns.servfail.add("broken.soft.test")
    out = report(run_remote(sender, "soft.test", rcpts=["x@soft.test"],
                            dns=dns))
    assert out == TEMP_DNS
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    dns.mx("remote.test", (10, "broken.soft.test"), (20, "gone.soft.test"),
           (30, "mx.remote.test"))
    dns.a("mx.remote.test", "127.0.0.2")
    mx_route(sender, mx.port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    check_delivered(mx)


def test_truncated_answer_is_retried_over_tcp(sender, dns, remote_mx):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    dns.mx("remote.test", *[(10, f"mx{i}.remote.test") for i in range(40)])
    for i in range(40):
        dns.a(f"mx{i}.remote.test", "127.0.0.2")
    dns.truncate.add("remote.test")
    mx_route(sender, mx.port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    check_delivered(mx)
    assert ("udp", "remote.test", "MX") in dns.queries()
    assert ("tcp", "remote.test", "MX") in dns.queries()


def test_mx_order_among_equals_is_random(sender, dns):
    """Three MX hosts of one preference, all refusing: the last one
    tried (named in the report) changes from run to run."""
    port = qmtest.free_port("127.0.0.1")
    dns.mx("remote.test", (10, "a.remote.test"), (10, "b.remote.test"),
           (10, "c.remote.test"))
    for name, ip in (("a", "127.0.0.3"), ("b", "127.0.0.4"),
                     ("c", "127.0.0.5")):
        dns.a(f"{name}.remote.test", ip)
    mx_route(sender, port)
    last = set()
    for _ in range(12):
        out = report(run_remote(sender, "remote.test", dns=dns))
        m = re.search(rb"Last attempt: (\w)\.remote\.test", out)
        assert m, out
        last.add(m.group(1))
    assert len(last) >= 2, last


def test_mx_named_like_a_literal_is_only_a_name(sender, dns, listeners):
    """DNS data never becomes an address literal: an exchanger called
    "[127.0.0.4]" is looked up as a name (and does not exist)."""
    port = qmtest.free_port("127.0.0.4")
    target = listeners("127.0.0.4", port, greeting=b"554 not me\r\n")
    dns.mx("remote.test", (10, "[127.0.0.4]"))
    mx_route(sender, port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert out == TEMP_DNS
    assert target.connections == 0
    assert ("udp", "[127.0.0.4]", "A") in dns.queries()


def test_bad_dnscacheip_is_temporary(sender):
    out = report(run_remote(sender, "remote.test",
                            env={"DNSCACHEIP": "127.0.0.1:x"}))
    assert out == (b"ZDNSCACHEIP is not an IPv4 address with an optional "
                   b":port. (#4.3.0)\n\0")


# ---- smtproutes and literals ----


def test_smtproutes_relay_with_port(sender, dns, remote_mx):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    dns.mx("remote.test", (10, "wrong.remote.test"))
    dns.a("relay.test", "127.0.0.2")
    sender.control("smtproutes", f".other.test:nowhere.test\n"
                   f"remote.test:relay.test:{mx.port}\n")
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    check_delivered(mx)
    # A relay is looked up for addresses only.
    assert [(n, t) for _, n, t in dns.queries()] == [
        ("relay.test", "AAAA"), ("relay.test", "A")]


def test_smtproutes_wildcard_and_default(sender, remote_mx):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    sender.control("smtproutes", f".test:[127.0.0.3]:{mx.port}\n"
                   f":[127.0.0.2]:{mx.port}\n")
    # sub.remote.test matches ".test": refused there.
    out = report(run_remote(sender, "sub.remote.test"))
    assert out == (NOCONN + b"[127.0.0.3] port " + str(mx.port).encode() +
                   b": connection refused.\n\0")
    # remote.example matches only the default route.
    out = report(run_remote(sender, "remote.example"))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    check_delivered(mx)


def test_smtproutes_relay_may_be_our_own_address(sender, remote_mx):
    """As in qmail, a relay is not checked against our addresses."""
    mx = remote_mx("127.0.0.1")
    need_rsmtp(sender)
    sender.control("smtproutes", f"remote.test:[127.0.0.1]:{mx.port}\n")
    out = report(run_remote(sender, "remote.test"))
    assert accepted_re("127.0.0.1").fullmatch(out), out
    check_delivered(mx)


def test_smtproutes_relay_as_a_bare_address(sender, dns, remote_mx):
    """qmail takes a relay written without brackets as an address too;
    it is never looked up in the DNS."""
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    sender.control("smtproutes", f"remote.test:127.0.0.2:{mx.port}\n")
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    check_delivered(mx)
    assert dns.queries() == []


def test_smtproutes_relay_that_does_not_exist(sender, dns):
    sender.control("smtproutes", "remote.test:gone.test\n")
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert out == (b"DSorry, I couldn't find any host named gone.test. "
                   b"(#5.1.2)\n\0")


def test_bad_smtproutes_is_temporary(sender):
    sender.control("smtproutes", "remote.test:relay.test:port\n")
    result = run_remote(sender, "remote.test")
    assert report(result) == b"ZUnable to read control files. (#4.3.0)\n\0"
    assert (b"control/smtproutes: not a route: remote.test:relay.test:port"
            in result.stderr)


def test_address_literal(sender, remote_mx):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    sender.control("smtproutes", f"::{mx.port}\n")
    out = report(run_remote(sender, "[127.0.0.2]"))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    check_delivered(mx)


@IPV6
def test_ipv6_address_literal(sender, remote_mx):
    mx = remote_mx("::1")
    need_rsmtp(sender)
    sender.control("smtproutes", f"::{mx.port}\n")
    sender.control("notipme", "::1\n")
    out = report(run_remote(sender, "[IPv6:::1]"))
    assert accepted_re("::1").fullmatch(out), out
    check_delivered(mx)


def test_literal_of_our_own_address_is_refused(sender):
    out = report(run_remote(sender, "[127.0.0.1]"))
    assert out == AMBIGUOUS


def test_malformed_literal_is_permanent(sender):
    out = report(run_remote(sender, "[127.0.0]"))
    assert out == (b"DSorry, I couldn't find any host named [127.0.0]. "
                   b"(#5.1.2)\n\0")


def test_invoked_improperly(sender):
    out = report(run_remote(sender, "remote.test", rcpts=()))
    assert out == (b"DI (qmail-remote) was invoked improperly. (#5.3.5)\n"
                   b"\0")


# ---- the interface with qmail-rsmtp, through a stand-in ----


FAKE_RSMTP = r'''#!/usr/bin/python3
# A stand-in for qmail-rsmtp: records what it was given, then behaves as
# the next line of its plan says ("exit N", or "report" to write reports).
import json, os, sys
base = os.environ["FAKE_RSMTP_DIR"]
data = sys.stdin.buffer.read()
n = len([f for f in os.listdir(base) if f.endswith(".json")])
record = {"argv": sys.argv[1:], "message": data.decode("latin-1"),
          "env": {k: os.environ.get(k) for k in ("RSMTP_HOST", "RSMTP_HELO",
                  "RSMTP_TIMEOUT", "TCPREMOTEIP", "TCPREMOTEPORT")}}
with open(os.path.join(base, f"{n}.json"), "w") as f:
    json.dump(record, f)
sys.stderr.write(f"fake-rsmtp: call {n}\n")
sys.stderr.flush()
plan = open(os.path.join(base, "plan")).read().split("\n")
step = plan[n] if n < len(plan) else "exit 3"
if step == "report":
    sys.stdout.buffer.write(b"r\0Kfake accepted\0")
    sys.exit(0)
if step == "kill":
    os.kill(os.getpid(), 9)
sys.exit(int(step.split()[1]))
'''


class PrivateInstance(qmtest.Instance):
    """An instance with its own copy of bin/, so a test may replace a
    program there."""

    def install_argv(self):
        argv = super().install_argv()
        at = argv.index("-b")
        return argv[:at] + argv[at + 2:]


@pytest.fixture
def private(bindir, qm_logbook):
    path = qmtest.make_public_tempdir("qm-inst-")
    inst = PrivateInstance(path, bindir, "example.test", ("alice",),
                           qm_logbook)
    try:
        result = inst.install()
        assert result.returncode == 0, result.stderr
        yield inst
    finally:
        inst.remove()


def fake_rsmtp(inst, plan):
    target = inst.path / "bin" / "qmail-rsmtp"
    target.write_text(FAKE_RSMTP)
    target.chmod(0o755)
    base = inst.path / "fake-rsmtp"
    base.mkdir()
    (base / "plan").write_text("\n".join(plan))
    if is_root():
        for path in (target, base, base / "plan"):
            os.chown(path, inst.uid, inst.gid)
    return base


def fake_calls(base):
    calls = sorted(base.glob("*.json"), key=lambda p: int(p.stem))
    return [json.loads(p.read_text()) for p in calls]


def test_client_interface(private, dns, listeners):
    """Argv, environment and a rewound message for every attempt; exit
    75 and other failures move on; exit 0 ends it with the client's
    reports passed through untouched."""
    port = qmtest.free_port("127.0.0.3")
    base = fake_rsmtp(private, ["exit 75", "exit 3", "kill", "report"])
    hosts = [listeners(f"127.0.0.{i}", port) for i in (3, 4, 5, 6)]
    dns.mx("remote.test", *[(10 * i, f"mx{i}.remote.test")
                            for i in (3, 4, 5, 6)])
    for i in (3, 4, 5, 6):
        dns.a(f"mx{i}.remote.test", f"127.0.0.{i}")
    private.control("helohost", "helo.example.test\n")
    private.control("timeoutremote", "77\n")
    mx_route(private, port)
    result = run_remote(private, "remote.test", dns=dns,
                        rcpts=["bob@remote.test", "-x@remote.test"],
                        sender="", env={"FAKE_RSMTP_DIR": str(base)})
    assert report(result) == b"r\0Kfake accepted\0"
    # The client's stderr is passed on.
    assert result.stderr == b"".join(b"fake-rsmtp: call %d\n" % i
                                     for i in range(4))
    calls = fake_calls(base)
    assert len(calls) == 4
    for i, call in zip((3, 4, 5, 6), calls):
        assert call["argv"] == ["--", "", "bob@remote.test",
                                "-x@remote.test"]
        assert call["message"].encode("latin-1") == MESSAGE
        assert call["env"] == {"RSMTP_HOST": f"mx{i}.remote.test",
                               "RSMTP_HELO": "helo.example.test",
                               "RSMTP_TIMEOUT": "77",
                               "TCPREMOTEIP": f"127.0.0.{i}",
                               "TCPREMOTEPORT": str(port)}
    assert [h.connections for h in hosts] == [1, 1, 1, 1]


def test_client_failure_is_named_in_the_report(private, dns, listeners):
    port = qmtest.free_port("127.0.0.3")
    base = fake_rsmtp(private, ["exit 75", "exit 3"])
    listeners("127.0.0.3", port)
    listeners("127.0.0.4", port)
    dns.mx("remote.test", (10, "mx3.remote.test"), (20, "mx4.remote.test"))
    dns.a("mx3.remote.test", "127.0.0.3")
    dns.a("mx4.remote.test", "127.0.0.4")
    private.control("me", "me.example.test\n")
    mx_route(private, port)
    out = report(run_remote(private, "remote.test", dns=dns,
                            env={"FAKE_RSMTP_DIR": str(base)}))
    assert out == (NOCONN + b"mx4.remote.test [127.0.0.4] port " +
                   str(port).encode() +
                   b": connected, but qmail-rsmtp failed (exit 3).\n\0")
    calls = fake_calls(base)
    # Without control/helohost, control/me is the HELO name.
    assert calls[0]["env"]["RSMTP_HELO"] == "me.example.test"
    assert calls[0]["env"]["RSMTP_TIMEOUT"] == "1200"


def test_client_killed_is_named_in_the_report(private, listeners):
    # No TLS program in the chain: what is tested is qmail-rsmtp's fate.
    private.control("tlshosts/exhaustivelist", "")
    port = qmtest.free_port("127.0.0.3")
    base = fake_rsmtp(private, ["kill"])
    listeners("127.0.0.3", port)
    private.control("smtproutes", f"remote.test:[127.0.0.3]:{port}\n")
    out = report(run_remote(private, "remote.test",
                            env={"FAKE_RSMTP_DIR": str(base)}))
    assert out == (NOCONN + b"[127.0.0.3] port " + str(port).encode() +
                   b": connected, but qmail-rsmtp failed (signal 9).\n\0")


def test_relative_home(private, listeners):
    """QMAILHOME relative to where qmail-remote started still finds
    bin/qmail-rsmtp after the chdir to the home."""
    port = qmtest.free_port("127.0.0.3")
    base = fake_rsmtp(private, ["report"])
    listeners("127.0.0.3", port)
    private.control("smtproutes", f"remote.test:[127.0.0.3]:{port}\n")
    out = report(run_remote(private, "remote.test",
                            env={"FAKE_RSMTP_DIR": str(base),
                                 "QMAILHOME": private.path.name},
                            cwd=private.path.parent))
    assert out == b"r\0Kfake accepted\0"


def test_client_program_missing(private, listeners):
    private.control("tlshosts/exhaustivelist", "")
    port = qmtest.free_port("127.0.0.3")
    listeners("127.0.0.3", port)
    (private.path / "bin" / "qmail-rsmtp").unlink(missing_ok=True)
    private.control("smtproutes", f"remote.test:[127.0.0.3]:{port}\n")
    result = run_remote(private, "remote.test")
    assert report(result) == (NOCONN + b"[127.0.0.3] port " +
                              str(port).encode() +
                              b": tcpclient failed.\n\0")
    assert b"tcpclient: fatal: unable to run " in result.stderr


def test_tcpclient_missing(sender, listeners):
    port = qmtest.free_port("127.0.0.3")
    listeners("127.0.0.3", port)
    sender.control("smtproutes", f"remote.test:[127.0.0.3]:{port}\n")
    env = {"PATH": "/nonexistent"}
    out = report(run_remote(sender, "remote.test", env=env))
    assert out == (NOCONN + b"[127.0.0.3] port " + str(port).encode() +
                   b": unable to run tcpclient.\n\0")


# ---- tcpto ----


def tcpto_path(inst, v6=False):
    return inst.path / "queue" / "lock" / ("tcpto6" if v6 else "tcpto")


def qmail_record(ip, count, when):
    """One record of qmail's tcpto, byte by byte."""
    return (socket.inet_aton(ip) + bytes([count, 0, 0, 0]) +
            struct.pack("<I", when & 0xffffffff) + bytes(4))


def v6_record(ip, count, when):
    return (socket.inet_pton(socket.AF_INET6, ip) +
            bytes([count]) + bytes(7) + struct.pack("<Q", when))


def write_owned(inst, path, data):
    path.write_bytes(data)
    path.chmod(0o644)
    if is_root():
        os.chown(path, inst.uid, inst.gid)


def test_connect_timeout_is_recorded(sender, dns, remote_mx, listeners):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    listeners("127.0.0.5", mx.port, mode="backlog")
    sender.control("timeoutconnect", "1\n")
    dns.mx("remote.test", (10, "slow.remote.test"), (20, "mx.remote.test"))
    dns.a("slow.remote.test", "127.0.0.5")
    dns.a("mx.remote.test", "127.0.0.2")
    mx_route(sender, mx.port)
    before = int(time.time())
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    check_delivered(mx)
    table = tcpto_path(sender).read_bytes()
    assert len(table) == 1024
    assert table[:8] == socket.inet_aton("127.0.0.5") + bytes([1, 0, 0, 0])
    when = struct.unpack("<I", table[8:12])[0]
    assert before <= when <= time.time() + 1
    assert table[12:] == bytes(1024 - 12)
    result = sender.run([str(sender.path / "bin" / "qmail-tcpto")])
    assert re.fullmatch(rb"127\.0\.0\.5 timed out \d+ seconds ago; "
                        rb"# recent timeouts: 1\n", result.stdout)


def test_every_address_timing_out(sender, dns, listeners):
    port = qmtest.free_port("127.0.0.5")
    listeners("127.0.0.5", port, mode="backlog")
    sender.control("timeoutconnect", "1\n")
    dns.mx("remote.test", (10, "slow.remote.test"))
    dns.a("slow.remote.test", "127.0.0.5")
    mx_route(sender, port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert out == (NOCONN + b"slow.remote.test [127.0.0.5] port " +
                   str(port).encode() + b": timed out.\n\0")


def test_recent_timeouts_are_skipped(sender, dns, remote_mx, listeners):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    dead = listeners("127.0.0.5", mx.port, greeting=b"554 not me\r\n")
    now = int(time.time())
    table = bytearray(1024)
    table[16:32] = qmail_record("127.0.0.5", 2, now - 60)
    write_owned(sender, tcpto_path(sender), bytes(table))
    dns.mx("remote.test", (10, "dead.remote.test"), (20, "mx.remote.test"))
    dns.a("dead.remote.test", "127.0.0.5")
    dns.a("mx.remote.test", "127.0.0.2")
    mx_route(sender, mx.port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert accepted_re("127.0.0.2").fullmatch(out), out
    assert dead.connections == 0
    # Untouched: 127.0.0.2 was never in it.
    assert tcpto_path(sender).read_bytes() == bytes(table)
    check_delivered(mx)


def test_old_timeouts_and_single_timeouts_are_tried(sender, dns, listeners):
    need_rsmtp(sender)
    port = qmtest.free_port("127.0.0.5")
    first = listeners("127.0.0.5", port, greeting=b"554 busy\r\n")
    second = listeners("127.0.0.6", port, greeting=b"554 busy\r\n")
    now = int(time.time())
    table = (qmail_record("127.0.0.5", 2, now - 7000) +
             qmail_record("127.0.0.6", 1, now - 10) + bytes(1024 - 32))
    write_owned(sender, tcpto_path(sender), table)
    dns.mx("remote.test", (10, "a.remote.test"), (20, "b.remote.test"))
    dns.a("a.remote.test", "127.0.0.5")
    dns.a("b.remote.test", "127.0.0.6")
    mx_route(sender, port)
    report(run_remote(sender, "remote.test", dns=dns))
    assert (first.connections, second.connections) == (1, 1)
    # Both connected: both counts are cleared, addresses kept.
    after = tcpto_path(sender).read_bytes()
    assert after[:5] == socket.inet_aton("127.0.0.5") + b"\0"
    assert after[16:21] == socket.inet_aton("127.0.0.6") + b"\0"


@IPV6
def test_the_last_address_is_tried_even_if_timed_out(sender, dns, remote_mx):
    mx = remote_mx("::1")
    need_rsmtp(sender)
    sender.control("notipme", "::1\n")
    now = int(time.time())
    write_owned(sender, tcpto_path(sender, v6=True),
                v6_record("::1", 5, now - 30))
    dns.mx("remote.test", (10, "mx6.remote.test"))
    dns.aaaa("mx6.remote.test", "::1")
    mx_route(sender, mx.port)
    out = report(run_remote(sender, "remote.test", dns=dns))
    assert accepted_re("::1").fullmatch(out), out
    check_delivered(mx)
    after = tcpto_path(sender, v6=True).read_bytes()
    assert after[:16] == socket.inet_pton(socket.AF_INET6, "::1")
    assert after[16] == 0  # connected: cleared


def test_qmail_tcpto_reads_an_old_file(sender):
    now = int(time.time())
    table = bytearray(1024)
    table[0:16] = qmail_record("192.0.2.1", 2, now - 100)
    table[48:64] = qmail_record("198.51.100.7", 10, now - 4000)
    table[64:80] = qmail_record("192.0.2.99", 0, now - 5)  # free slot
    write_owned(sender, tcpto_path(sender), bytes(table))
    write_owned(sender, tcpto_path(sender, v6=True),
                bytes(32) + v6_record("2001:db8::25", 3, now - 50))
    result = sender.run([str(sender.path / "bin" / "qmail-tcpto")])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    pattern = r"(\S+) timed out (\d+) seconds ago; # recent timeouts: (\d+)"
    found = [re.fullmatch(pattern, line).groups() for line in lines]
    assert [(ip, count) for ip, _, count in found] == [
        ("192.0.2.1", "2"), ("198.51.100.7", "10"), ("2001:db8::25", "3")]
    ages = [int(age) for _, age, _ in found]
    for age, want in zip(ages, (100, 4000, 50)):
        assert want <= age <= want + 5


def test_qmail_tcpok_clears_both_tables(sender):
    now = int(time.time())
    write_owned(sender, tcpto_path(sender),
                qmail_record("192.0.2.1", 2, now) + bytes(1008))
    write_owned(sender, tcpto_path(sender, v6=True),
                v6_record("2001:db8::1", 2, now))
    result = sender.run([str(sender.path / "bin" / "qmail-tcpok")])
    assert result.returncode == 0, result.stderr
    assert tcpto_path(sender).read_bytes() == bytes(1024)
    assert tcpto_path(sender, v6=True).read_bytes() == bytes(2048)
    result = sender.run([str(sender.path / "bin" / "qmail-tcpto")])
    assert (result.returncode, result.stdout) == (0, b"")


def test_qmail_tcpok_without_tcpto6(sender):
    # qmail-instance makes the file; an old queue may not have it.
    tcpto_path(sender, v6=True).unlink(missing_ok=True)
    result = sender.run([str(sender.path / "bin" / "qmail-tcpok")])
    assert result.returncode == 0, result.stderr
    assert not tcpto_path(sender, v6=True).exists()
    assert tcpto_path(sender).read_bytes() == bytes(1024)


def test_qmail_tcpto_unreadable_table(sender):
    path = tcpto_path(sender)
    path.unlink()
    path.mkdir()
    result = sender.run([str(sender.path / "bin" / "qmail-tcpto")])
    assert result.returncode == 111
    assert result.stderr.startswith(
        b"qmail-tcpto: fatal: unable to read queue/lock/tcpto: ")


# ---- through the queue ----


def inject(inst, rcpts, message=MESSAGE):
    result = inst.run([str(inst.path / "bin" / "qmail-inject"),
                       "-f", SENDER, *rcpts], input=message)
    assert result.returncode == 0, result.stderr


def test_queue_delivers_through_qmail_remote(sender, remote_mx):
    mx = remote_mx("127.0.0.2")
    need_rsmtp(sender)
    sender.control("smtproutes", f"remote.test:[127.0.0.2]:{mx.port}\n")
    queue = Queue(sender)
    try:
        queue.start()
        queue.wait_started(timeout=20)
        inject(sender, [RCPT])
        messages = mx.delivered()
        assert b"Subject: over SMTP\n" in messages[0]
        assert messages[0].endswith(b"\nHello through qmail-remote.\n"
                                    b"A second line.\n")
        wait_for(lambda: re.search(
            r"delivery \d+: success: 127\.0\.0\.2_accepted_message\./",
            queue.log_text()), timeout=30, message="the success line")
        wait_for(lambda: sender.queue_files() == [], timeout=30,
                 message="an empty queue")
    finally:
        queue.close()


def test_queue_bounces_a_permanent_dns_failure(sender, dns):
    # qmail-start gets DNSCACHEIP and passes it on to qmail-remote.
    old = os.environ.get("DNSCACHEIP")
    os.environ["DNSCACHEIP"] = f"127.0.0.1:{dns.port}"
    queue = Queue(sender)
    try:
        queue.start()
    finally:
        if old is None:
            del os.environ["DNSCACHEIP"]
        else:
            os.environ["DNSCACHEIP"] = old
    try:
        queue.wait_started(timeout=20)
        inject(sender, ["someone@nosuch.test"])
        bounces = wait_for(lambda: sender.maildir_messages("alice"),
                           timeout=30, message="a bounce for alice")
        text = bounces[0][1]
        assert (b"<someone@nosuch.test>:\nSorry, I couldn't find any host "
                b"named nosuch.test. (#5.1.2)\n") in text
    finally:
        queue.close()


def test_concurrencyremote_holds(sender):
    need_rsmtp(sender)
    sink = SmtpSink("127.0.0.2", hold=0.7)
    queue = Queue(sender)
    try:
        sender.control("concurrencyremote", "2\n")
        sender.control("smtproutes", f"sink.test:[127.0.0.2]:{sink.port}\n")
        queue.start()
        queue.wait_started(timeout=20)
        for i in range(6):
            inject(sender, [f"r{i}@sink.test"])
        wait_for(lambda: len(sink.messages) == 6, timeout=60,
                 message="six messages at the sink")
        assert sink.max_active == 2
        wait_for(lambda: sender.queue_files() == [], timeout=30,
                 message="an empty queue")
    finally:
        queue.close()
        sink.close()
