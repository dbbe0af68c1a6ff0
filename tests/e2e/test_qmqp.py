"""End-to-end tests of QMQP (qmail-qmqpc, qmail-qmqpd) and qmail-newmrh.

Two instances play the two ends: in instance A, qmail-qmqpc (alone, or as
$QMAILQUEUE for qmail-inject) hands messages to the qmail-qmqpd of
instance B, which runs under tcpserver and queues them with B's
qmail-queue; B's queue then delivers them into its Maildirs. Raw sockets
send qmail-qmqpd hand-made packets, and a recording server shows whether
qmail-qmqpc connected at all. qmail-newmrh is checked with Debian's cdb
tool (tinycdb) and through qmail-smtpd's rcpthosts decisions.

A test must never leave a process behind: servers and queues run in
sessions of their own that the fixtures kill at teardown.
"""

import os
import random
import re
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

import qmtest
import queuectl
from qmtest import is_root, wait_for

MESSAGE = (b"From: Sender <sender@a.test>\n"
           b"To: Alice <alice@b.test>\n"
           b"Subject: over QMQP\n"
           b"\n"
           b"Hello through QMQP.\n"
           b"A second line.\n")
SENDER = "sender@a.test"
RCPT = "alice@b.test"
# B's qmail-queue adds its own line above the one of qmail-qmqpd.
RECEIVED_QMQP = (rb"Received: \(qmail \d+ invoked [^\n]*\); [^\n]+\n"
                 rb"Received: from unknown \(127\.0\.0\.1\)\n"
                 rb"  by b\.test with QMQP; [^\n]+\n")
MALFORMED = b"Dmalformed QMQP packet (#5.5.4)"
QQ_ADDR_TOO_LONG, QQ_PERM, QQ_TEMP, QQ_CUSTOM, QQ_ENVELOPE = 11, 31, 71, 82, 91


# ---- QMQP and envelopes, spelled out ----


def ns(data):
    return str(len(data)).encode() + b":" + data + b","


def packet(message, sender, rcpts):
    body = ns(message) + ns(sender.encode() if isinstance(sender, str)
                            else sender)
    for rcpt in rcpts:
        body += ns(rcpt.encode() if isinstance(rcpt, str) else rcpt)
    return ns(body)


def envelope(sender, rcpts):
    """What qmail-queue (and so qmail-qmqpc) reads on fd 1."""
    data = b"F" + sender.encode() + b"\0"
    for rcpt in rcpts:
        data += b"T" + rcpt.encode() + b"\0"
    return data + b"\0"


def parse_netstring(data):
    """The content of the one netstring that data must be exactly."""
    m = re.fullmatch(rb"(0|[1-9][0-9]*):(.*),", data, re.S)
    assert m, f"not a netstring: {data!r}"
    assert int(m.group(1)) == len(m.group(2)), f"bad length: {data!r}"
    return m.group(2)


def exchange(server, data, timeout=30):
    """Sends data to a QMQP server, closes our side, returns its reply."""
    chunks = []
    with server.connect(timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


# ---- running qmail-qmqpc ----


def record(inst, name, argv, code, stderr):
    """Into the test's logbook, so sanitizer reports fail the test."""
    path = inst.logbook.new("run-" + name)
    with open(path, "wb") as f:
        f.write(f"argv: {argv!r}\nexit: {code}\nstderr:\n".encode())
        f.write(stderr)


def run_qmqpc(inst, message, env_bytes, fd6=True, timeout=120):
    """Runs A's qmail-qmqpc as qmail-queue would be run: the message on
    fd 0, the envelope on fd 1 and, when fd6, a pipe on fd 6. Returns
    (exit code, what it wrote on fd 6)."""
    prog = str(inst.path / "bin" / "qmail-qmqpc")
    with tempfile.TemporaryFile() as msg, tempfile.TemporaryFile() as env:
        msg.write(message)
        msg.seek(0)
        env.write(env_bytes)
        env.seek(0)
        reader = writer = None
        pass_fds = ()
        argv = [prog]
        if fd6:
            reader, writer = os.pipe()
            pass_fds = (writer,)
            argv = ["bash", "-c", f'exec "$0" 6>&{writer} {writer}>&-', prog]
        full = inst.as_account(argv)
        proc = subprocess.Popen(full, stdin=msg, stdout=env,
                                stderr=subprocess.PIPE, env=inst.env(),
                                cwd=inst.path, pass_fds=pass_fds,
                                start_new_session=True)
        if writer is not None:
            os.close(writer)
        try:
            text = b""
            if reader is not None:
                with os.fdopen(reader, "rb") as f:
                    text = f.read()
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            qmtest.kill_group(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    record(inst, "qmail-qmqpc", full, proc.returncode, err)
    return proc.returncode, text


# ---- fixtures ----


@pytest.fixture
def a(make_instance):
    return make_instance(host="a.test", mailboxes=["demo"])


@pytest.fixture
def b(make_instance):
    return make_instance(host="b.test", mailboxes=["alice", "bob"])


@pytest.fixture
def qmqpd(servers, b):
    """Factory: a qmail-qmqpd of instance B under tcpserver."""

    def start(env=None):
        full = dict(b.env(), **(env or {}))
        return servers.start([str(b.path / "bin" / "qmail-qmqpd")],
                             as_account=b, env=full, name="qmail-qmqpd",
                             localname="b.test")

    return start


@pytest.fixture
def b_queue(b):
    """Starts B's queue (qmail-start ./Maildir/) on demand."""
    queue = queuectl.Queue(b)
    try:
        yield queue
    finally:
        queue.close()


def start_queue(queue):
    queue.start()
    queue.wait_started(timeout=20)


def closed_port():
    """A port nothing listens on: connections to it are refused."""
    return qmtest.free_port("127.0.0.1")


def use_servers(inst, *ports):
    inst.control("qmqpservers",
                 "".join(f"127.0.0.1:{port}\n" for port in ports))


def fake_queue(inst, name, code, text=b""):
    """A $QMAILQUEUE script that reads the message and the envelope, then
    exits with code, printing text on fd 6."""
    path = inst.path / name
    path.write_bytes(b"#!/bin/sh\n"
                     b"cat >/dev/null\n"
                     b"cat <&1 >/dev/null\n"
                     b"printf '%s' '" + text + b"' >&6\n"
                     b"exit " + str(code).encode() + b"\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def recorder(servers, a):
    """A server that only notes each connection in a file."""
    log = a.path / "connections"
    server = servers.start(
        ["sh", "-c", f"echo connected >> '{log}'"], as_account=a,
        name="recorder")
    server.connections = lambda: (log.read_text().count("connected")
                                  if log.exists() else 0)
    return server


def delivered(inst, box, count=1, timeout=60):
    """Waits for count messages in box; returns their bytes."""
    wait_for(lambda: len(inst.maildir_messages(box)) >= count,
             timeout=timeout, message=f"{count} message(s) in {box}")
    return [data for _, data in inst.maildir_messages(box)]


def assert_delivered_over_qmqp(data, message, sender=SENDER, rcpt=RCPT):
    head = (b"Return-Path: <" + sender.encode() + b">\n"
            b"Delivered-To: " + rcpt.encode() + b"\n")
    assert data.startswith(head), data[:300]
    rest = data[len(head):]
    m = re.match(RECEIVED_QMQP, rest)
    assert m, rest[:300]
    assert rest[m.end():] == message


# ---- qmail-qmqpc to qmail-qmqpd ----


def test_qmqpc_delivers_through_qmqpd(a, b, qmqpd, b_queue):
    server = qmqpd()
    use_servers(a, server.port)
    code, text = run_qmqpc(a, MESSAGE, envelope(SENDER, [RCPT]))
    assert (code, text) == (0, b"")
    assert a.queue_files() == []  # A has no queue of its own in play
    start_queue(b_queue)
    (data,) = delivered(b, "alice")
    assert_delivered_over_qmqp(data, MESSAGE)


def test_qmqpc_several_recipients_and_null_sender(a, b, qmqpd, b_queue):
    server = qmqpd()
    use_servers(a, server.port)
    code, _ = run_qmqpc(a, MESSAGE, envelope("", ["alice@b.test",
                                                   "bob@b.test"]))
    assert code == 0
    start_queue(b_queue)
    (to_alice,) = delivered(b, "alice")
    (to_bob,) = delivered(b, "bob")
    assert_delivered_over_qmqp(to_alice, MESSAGE, "", "alice@b.test")
    assert_delivered_over_qmqp(to_bob, MESSAGE, "", "bob@b.test")


def test_qmqpc_as_qmailqueue_for_qmail_inject(a, b, qmqpd, b_queue):
    if not (a.bindir / "qmail-inject").exists():
        pytest.skip("qmail-inject is not built")
    server = qmqpd()
    use_servers(a, server.port)
    env = dict(a.env(), QMAILQUEUE=str(a.path / "bin" / "qmail-qmqpc"))
    body = b"Subject: injected\n\nSent by qmail-inject over QMQP.\n"
    result = a.run([str(a.path / "bin" / "qmail-inject"), "-f", SENDER,
                    RCPT], input=body, env=env)
    assert result.returncode == 0, result.stderr
    assert a.queue_files() == []
    start_queue(b_queue)
    (data,) = delivered(b, "alice")
    head = (b"Return-Path: <sender@a.test>\nDelivered-To: alice@b.test\n")
    assert data.startswith(head), data[:300]
    assert re.match(RECEIVED_QMQP, data[len(head):]), data[:300]
    assert b"\nSubject: injected\n" in data
    assert data.endswith(b"\n\nSent by qmail-inject over QMQP.\n")


def test_qmqpc_skips_an_unreachable_server(a, b, qmqpd, b_queue):
    server = qmqpd()
    use_servers(a, closed_port(), server.port)
    code, text = run_qmqpc(a, MESSAGE, envelope(SENDER, [RCPT]))
    assert (code, text) == (0, b"")
    start_queue(b_queue)
    (data,) = delivered(b, "alice")
    assert_delivered_over_qmqp(data, MESSAGE)


def test_qmqpc_tries_the_next_server_after_z(a, b, make_instance, servers,
                                             qmqpd, b_queue):
    c = make_instance(host="c.test", mailboxes=["alice"])
    busy = servers.start(
        [str(c.path / "bin" / "qmail-qmqpd")], as_account=c,
        env=dict(c.env(), QMAILQUEUE=fake_queue(c, "qq-busy", 82,
                                                b"Zbusy, try later")),
        name="qmqpd-busy", localname="c.test")
    good = qmqpd()
    use_servers(a, busy.port, good.port)
    code, text = run_qmqpc(a, MESSAGE, envelope(SENDER, [RCPT]))
    assert (code, text) == (0, b"")
    start_queue(b_queue)
    (data,) = delivered(b, "alice")
    assert_delivered_over_qmqp(data, MESSAGE)


@pytest.fixture
def refusing(make_instance, servers):
    """Factory: a qmail-qmqpd (of a third instance) whose qmail-queue
    answers exit code, with text on fd 6."""

    def start(code, text=b""):
        c = make_instance(host="c.test", mailboxes=["alice"])
        server = servers.start(
            [str(c.path / "bin" / "qmail-qmqpd")], as_account=c,
            env=dict(c.env(), QMAILQUEUE=fake_queue(c, "qq", code, text)),
            name="qmqpd-refusing", localname="c.test")
        server.instance = c
        return server

    return start


def test_permanent_refusal_gives_82_with_d_text(a, b, qmqpd, refusing):
    no = refusing(82, b"Dno thanks from the test")
    good = qmqpd()
    # D is final: the working server after it must not get the message.
    use_servers(a, no.port, good.port)
    code, text = run_qmqpc(a, MESSAGE, envelope(SENDER, [RCPT]))
    assert (code, text) == (QQ_CUSTOM, b"Dno thanks from the test")
    assert b.queue_files() == []


def test_permanent_refusal_without_fd6_gives_31(a, refusing):
    no = refusing(82, b"Dno thanks from the test")
    use_servers(a, no.port)
    code, _ = run_qmqpc(a, MESSAGE, envelope(SENDER, [RCPT]), fd6=False)
    assert code == QQ_PERM


def test_qmail_queue_exit_code_becomes_d(a, refusing):
    no = refusing(QQ_PERM)
    use_servers(a, no.port)
    code, text = run_qmqpc(a, MESSAGE, envelope(SENDER, [RCPT]))
    assert code == QQ_CUSTOM
    assert text.startswith(b"D") and b"#5." in text, text


def test_temporary_refusal_gives_82_with_z_text(a, refusing):
    busy = refusing(82, b"Zbusy, try later")
    use_servers(a, busy.port)
    code, text = run_qmqpc(a, MESSAGE, envelope(SENDER, [RCPT]))
    assert (code, text) == (QQ_CUSTOM, b"Zbusy, try later")
    code, text = run_qmqpc(a, MESSAGE, envelope(SENDER, [RCPT]), fd6=False)
    assert code == QQ_TEMP


def test_all_servers_down_is_temporary(a):
    use_servers(a, closed_port(), closed_port())
    code, text = run_qmqpc(a, MESSAGE, envelope(SENDER, [RCPT]))
    assert code == QQ_CUSTOM
    assert text.startswith(b"Z") and len(text) > 1, text
    code, text = run_qmqpc(a, MESSAGE, envelope(SENDER, [RCPT]), fd6=False)
    assert code == QQ_TEMP


def test_no_qmqpservers_is_temporary(a):
    code, text = run_qmqpc(a, MESSAGE, envelope(SENDER, [RCPT]))
    assert code == QQ_CUSTOM and text.startswith(b"Z"), (code, text)


def long_address(n, domain="b.test"):
    tail = "@" + domain
    return "x" * (n - len(tail)) + tail


def test_recorder_sees_a_good_envelope(a, recorder):
    """The control for the envelope tests below: the recorder does see
    qmail-qmqpc when the envelope is good."""
    use_servers(a, recorder.port)
    code, text = run_qmqpc(a, MESSAGE, envelope(SENDER, [RCPT]))
    assert code == QQ_CUSTOM and text.startswith(b"Z")
    assert recorder.connections() == 1


BAD_ENVELOPES = [
    pytest.param(b"", id="empty"),
    pytest.param(b"Talice@b.test\0\0", id="no-sender"),
    pytest.param(b"Fsender@a.test\0\0", id="no-recipient"),
    pytest.param(b"Fsender@a.test\0Talice@b.test\0", id="no-end"),
    pytest.param(b"Fsender@a.test\0Talice@b.test", id="cut-address"),
    pytest.param(b"Fsender@a.test", id="cut-sender"),
    pytest.param(b"Fsender@a.test\0Xalice@b.test\0\0", id="bad-type"),
    pytest.param(b"Fa@a.test\0Fb@a.test\0Talice@b.test\0\0", id="two-F"),
    pytest.param(b"Fsender@a.test\0Talice@b.test\0F\0\0", id="late-F"),
]


@pytest.mark.parametrize("env_bytes", BAD_ENVELOPES)
def test_malformed_envelope_is_91_and_nothing_is_sent(a, recorder,
                                                      env_bytes):
    use_servers(a, recorder.port)
    code, text = run_qmqpc(a, MESSAGE, env_bytes)
    assert code == QQ_ENVELOPE, text
    assert recorder.connections() == 0


@pytest.mark.parametrize("which", ["sender", "recipient"])
def test_address_of_1003_bytes_is_11_and_nothing_is_sent(a, recorder,
                                                         which):
    use_servers(a, recorder.port)
    long = long_address(1003)
    env_bytes = (envelope(long, [RCPT]) if which == "sender"
                 else envelope(SENDER, [RCPT, long]))
    code, _ = run_qmqpc(a, MESSAGE, env_bytes)
    assert code == QQ_ADDR_TOO_LONG
    assert recorder.connections() == 0


def test_address_of_1002_bytes_goes_through(a, b, qmqpd):
    server = qmqpd()
    use_servers(a, server.port)
    code, text = run_qmqpc(a, MESSAGE,
                           envelope(long_address(1002, "a.test"), [RCPT]))
    assert (code, text) == (0, b"")
    assert b.queue_files()  # queued in B (its queue is not running)


def test_message_over_databytes_is_refused_for_good(a, b, qmqpd):
    b.control("databytes", "1000\n")
    server = qmqpd()
    use_servers(a, server.port)
    code, text = run_qmqpc(a, b"x" * 1001, envelope(SENDER, [RCPT]))
    assert code == QQ_CUSTOM
    assert text.startswith(b"D") and b"databytes" in text, text
    assert b.queue_files() == []


def test_large_message_over_databytes_is_refused_for_good(a, b, qmqpd):
    """The refusal comes while qmail-qmqpc is still sending: the client
    must still learn that it is permanent."""
    b.control("databytes", "1000\n")
    server = qmqpd()
    use_servers(a, server.port)
    message = b"Subject: big\n\n" + b"y" * 4000000 + b"\n"
    code, text = run_qmqpc(a, message, envelope(SENDER, [RCPT]))
    assert code == QQ_CUSTOM
    assert text.startswith(b"D") and b"databytes" in text, text
    assert b.queue_files() == []


def big_message(size):
    """size bytes of lines of varied length, some bytes 8-bit."""
    rng = random.Random(628)
    lines = [b"From: sender@a.test\n", b"Subject: five megabytes\n", b"\n"]
    total = sum(map(len, lines))
    alphabet = bytes(range(32, 127)) + bytes(range(0xa0, 0x100))
    while total < size:
        n = min(rng.randrange(0, 300), size - total - 1)
        line = bytes(rng.choice(alphabet) for _ in range(n)) + b"\n"
        lines.append(line)
        total += len(line)
    return b"".join(lines)


def test_five_megabytes_arrive_intact(a, b, qmqpd, b_queue):
    message = big_message(5 * 1024 * 1024)
    assert len(message) == 5 * 1024 * 1024
    server = qmqpd()
    use_servers(a, server.port)
    code, text = run_qmqpc(a, message, envelope(SENDER, [RCPT]))
    assert (code, text) == (0, b"")
    start_queue(b_queue)
    (data,) = delivered(b, "alice", timeout=120)
    assert_delivered_over_qmqp(data, message)


# ---- qmail-qmqpd on hand-made packets ----


def test_qmqpd_accepts_a_good_packet(b, qmqpd):
    server = qmqpd()
    reply = exchange(server, packet(MESSAGE, SENDER, [RCPT]))
    assert parse_netstring(reply).startswith(b"K"), reply
    assert b.queue_files(), "the message was not queued"


GOOD = packet(MESSAGE, SENDER, [RCPT])
BODY = parse_netstring(GOOD)
MALFORMED_PACKETS = [
    pytest.param(str(len(BODY) - 1).encode() + b":" + BODY[:-1] + b",",
                 id="length-one-short"),
    pytest.param(str(len(BODY) + 1).encode() + b":" + BODY + b"x,",
                 id="length-one-long"),
    pytest.param(b"0" + GOOD, id="leading-zero"),
    pytest.param(ns(b"0" + ns(MESSAGE) + ns(SENDER.encode())
                    + ns(RCPT.encode())), id="inner-leading-zero"),
    pytest.param(GOOD[:-1] + b";", id="missing-final-comma"),
    pytest.param(ns(ns(MESSAGE)[:-1] + b";" + ns(SENDER.encode())
                    + ns(RCPT.encode())), id="missing-inner-comma"),
    pytest.param(ns(BODY + b"garbage"), id="trailing-garbage"),
    pytest.param(str(len(BODY) + 100).encode() + b":" + BODY + b",",
                 id="length-past-the-end"),
    pytest.param(ns(b"100000:" + MESSAGE + b"," + ns(SENDER.encode())
                    + ns(RCPT.encode())), id="message-past-the-packet"),
    pytest.param(ns(ns(MESSAGE) + ns(SENDER.encode())),
                 id="no-recipient"),
    pytest.param(ns(ns(MESSAGE)), id="no-sender"),
    pytest.param(b"0:,", id="empty"),
    pytest.param(packet(MESSAGE, "send\0er@a.test", [RCPT]),
                 id="nul-in-sender"),
    pytest.param(packet(MESSAGE, SENDER, [RCPT, "bo\0b@b.test"]),
                 id="nul-in-recipient"),
    pytest.param(packet(MESSAGE, SENDER, [long_address(1003)]),
                 id="recipient-too-long"),
    pytest.param(b"x:" + BODY + b",", id="not-a-number"),
    pytest.param(b"123456789012345678901234567890:" + BODY + b",",
                 id="thirty-digits"),
    pytest.param(b"", id="nothing"),
]


@pytest.mark.parametrize("data", MALFORMED_PACKETS)
def test_qmqpd_refuses_malformed_packets(b, qmqpd, data):
    server = qmqpd()
    reply = exchange(server, data)
    assert parse_netstring(reply) == MALFORMED, reply
    assert b.queue_files() == []


def test_qmqpd_received_line_and_envelope(b, qmqpd, b_queue):
    server = qmqpd()
    reply = exchange(server, packet(MESSAGE, SENDER, [RCPT, "bob@b.test"]))
    assert parse_netstring(reply).startswith(b"K")
    start_queue(b_queue)
    (to_alice,) = delivered(b, "alice")
    (to_bob,) = delivered(b, "bob")
    assert_delivered_over_qmqp(to_alice, MESSAGE)
    assert_delivered_over_qmqp(to_bob, MESSAGE, rcpt="bob@b.test")


@pytest.mark.parametrize("size,ok", [(100, True), (101, False)])
def test_qmqpd_databytes_control(b, qmqpd, size, ok):
    b.control("databytes", "100\n")
    server = qmqpd()
    reply = parse_netstring(exchange(server, packet(b"z" * size, SENDER,
                                                    [RCPT])))
    if ok:
        assert reply.startswith(b"K"), reply
        assert b.queue_files()
    else:
        assert reply.startswith(b"D") and b"databytes" in reply, reply
        assert b"#5.3.4" in reply
        assert b.queue_files() == []


def test_qmqpd_databytes_environment_wins(b, qmqpd):
    b.control("databytes", "1000\n")
    server = qmqpd(env={"DATABYTES": "50"})
    reply = parse_netstring(exchange(server, packet(b"z" * 51, SENDER,
                                                    [RCPT])))
    assert reply.startswith(b"D") and b"databytes" in reply, reply
    assert b.queue_files() == []
    reply = parse_netstring(exchange(server, packet(b"z" * 50, SENDER,
                                                    [RCPT])))
    assert reply.startswith(b"K"), reply


def test_qmqpd_passes_on_qmail_queue_refusal(b, servers):
    server = servers.start(
        [str(b.path / "bin" / "qmail-qmqpd")], as_account=b,
        env=dict(b.env(), QMAILQUEUE=fake_queue(b, "qq-z", 82,
                                                b"Zqueue is full")),
        name="qmqpd-z", localname="b.test")
    reply = exchange(server, packet(MESSAGE, SENDER, [RCPT]))
    assert parse_netstring(reply) == b"Zqueue is full"


def trickle(server, first, byte, seconds):
    """Sends first, then byte once a second for up to seconds; returns
    what the server answered and how long the connection lasted."""
    start = time.monotonic()
    with server.connect(30) as sock:
        sock.sendall(first)
        sock.setblocking(False)
        reply = b""
        while time.monotonic() - start < seconds:
            try:
                sock.sendall(byte)
            except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                pass
            time.sleep(1)
            try:
                chunk = sock.recv(4096)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                break
            reply += chunk
            if not chunk or reply.endswith(b","):
                break
    return reply, time.monotonic() - start


@pytest.mark.parametrize("first,byte", [(b"", b"1"), (b"100:90:", b"x")],
                         ids=["length", "packet"])
def test_qmqpd_trickling_client_is_cut_off(b, qmqpd, b_queue, first, byte):
    """One byte a second never trips the 2-second read timeout, but the
    length must come within it and the packet at 512 bytes a second."""
    b.control("timeoutsmtpd", "2\n")
    server = qmqpd()
    reply, lasted = trickle(server, first, byte, 60)
    assert parse_netstring(reply) == b"Ztimeout (#4.4.2)"
    assert lasted < 30
    # The slot is free again, and a good packet goes through.
    reply = exchange(server, packet(MESSAGE, SENDER, [RCPT]))
    assert parse_netstring(reply).startswith(b"K"), reply
    start_queue(b_queue)
    (data,) = delivered(b, "alice")
    assert_delivered_over_qmqp(data, MESSAGE)


# ---- qmail-newmrh ----


def newmrh(inst):
    return inst.run([str(inst.path / "bin" / "qmail-newmrh")])


def cdb_keys(path):
    """The records of a cdb, as tinycdb's `cdb -d` dumps them."""
    out = subprocess.run(["cdb", "-d", str(path)], capture_output=True,
                         check=True, timeout=30).stdout
    records = re.findall(rb"\+(\d+),(\d+):(.*?)->(.*?)\n", out, re.S)
    for klen, vlen, key, value in records:
        assert (int(klen), int(vlen)) == (len(key), len(value))
    assert out == b"".join(b"+%d,%d:%s->%s\n" % (len(k), len(v), k, v)
                           for _, _, k, v in records) + b"\n", out
    return sorted((k.decode(), v.decode()) for _, _, k, v in records)


def cdb_query(path, key):
    return subprocess.run(["cdb", "-q", str(path), key],
                          capture_output=True, timeout=30)


def test_newmrh_builds_a_lowercased_cdb(instance):
    instance.control("morercpthosts", "More.Example.COM\nsecond.test\n"
                     "\n# a comment\n.Wild.Test\n")
    result = newmrh(instance)
    assert result.returncode == 0, result.stderr
    cdb = instance.path / "control" / "morercpthosts.cdb"
    assert cdb_keys(cdb) == [(".wild.test", ""), ("more.example.com", ""),
                             ("second.test", "")]
    found = cdb_query(cdb, "more.example.com")
    assert (found.returncode, found.stdout) == (0, b"")
    assert cdb_query(cdb, ".wild.test").returncode == 0
    assert cdb_query(cdb, "More.Example.COM").returncode == 100
    assert cdb_query(cdb, "other.test").returncode == 100
    st = os.lstat(cdb)
    assert stat.S_IMODE(st.st_mode) == 0o644
    if is_root():
        assert (st.st_uid, st.st_gid) == (instance.uid, instance.gid)
    assert not (instance.path / "control" / "morercpthosts.cdb.tmp").exists()


def test_newmrh_replaces_the_cdb_atomically(instance):
    control = instance.path / "control"
    instance.control("morercpthosts", "old.test\n")
    assert newmrh(instance).returncode == 0
    cdb = control / "morercpthosts.cdb"
    old_bytes = cdb.read_bytes()
    with open(cdb, "rb") as old:
        old_inode = os.fstat(old.fileno()).st_ino
        instance.control("morercpthosts", "new.test\nnewer.test\n")
        assert newmrh(instance).returncode == 0
        # A reader holding the old file still sees all of it: the new
        # one was renamed into place, not written over the old.
        assert old.read() == old_bytes
    assert os.stat(cdb).st_ino != old_inode
    assert cdb_keys(cdb) == [("new.test", ""), ("newer.test", "")]
    assert not [n for n in os.listdir(control) if ".tmp" in n]


def test_newmrh_without_morercpthosts_makes_an_empty_cdb(instance):
    control = instance.path / "control"
    (control / "morercpthosts").unlink(missing_ok=True)
    result = newmrh(instance)
    assert result.returncode == 0, result.stderr
    cdb = control / "morercpthosts.cdb"
    assert cdb_keys(cdb) == []
    assert cdb.stat().st_size == 2048  # the bare cdb header


def test_newmrh_unreadable_list_keeps_the_old_cdb(instance):
    control = instance.path / "control"
    instance.control("morercpthosts", "kept.test\n")
    assert newmrh(instance).returncode == 0
    before = (control / "morercpthosts.cdb").read_bytes()
    (control / "morercpthosts").unlink()
    (control / "morercpthosts").mkdir()
    result = newmrh(instance)
    assert result.returncode == 111
    assert b"morercpthosts" in result.stderr
    assert (control / "morercpthosts.cdb").read_bytes() == before


def test_newmrh_refuses_a_symlink_at_the_temporary_name(instance):
    control = instance.path / "control"
    instance.control("morercpthosts", "kept.test\n")
    assert newmrh(instance).returncode == 0
    before = (control / "morercpthosts.cdb").read_bytes()
    victim = instance.path / "victim"
    tmp = control / "morercpthosts.cdb.tmp"
    tmp.symlink_to(victim)
    if is_root():
        os.lchown(tmp, instance.uid, instance.gid)
    instance.control("morercpthosts", "changed.test\n")
    result = newmrh(instance)
    assert result.returncode == 111
    assert not victim.exists()
    assert (control / "morercpthosts.cdb").read_bytes() == before


# ---- qmail-smtpd and morercpthosts ----


class Smtp:
    def __init__(self, server):
        self.sock = server.connect(timeout=30)
        self.file = self.sock.makefile("rb")

    def reply(self):
        lines = []
        while True:
            line = self.file.readline()
            assert line.endswith(b"\r\n"), (lines, line)
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), b"".join(lines)

    def command(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.command("QUIT")
        finally:
            self.file.close()
            self.sock.close()


def rcpt_codes(server, rcpts):
    smtp = Smtp(server)
    try:
        assert smtp.reply()[0] == 220
        assert smtp.command("EHLO client.test")[0] == 250
        assert smtp.command("MAIL FROM:<someone@client.test>")[0] == 250
        return {r: smtp.command(f"RCPT TO:<{r}>")[0] for r in rcpts}
    finally:
        smtp.close()


RCPTS = {
    "x@rcpt.test": 250,        # in rcpthosts
    "x@more.test": 250,        # only in morercpthosts
    "x@MORE.Test": 250,        # case does not matter
    "x@sub.wild.test": 250,    # ".wild.test" in morercpthosts
    "x@a.b.wild.test": 250,
    "x@wild.test": 553,        # a ".suffix" entry is not the domain
    "x@notmore.test": 553,
    "x@other.test": 553,
}


@pytest.fixture
def smtpd(servers, instance):
    instance.control("rcpthosts", "rcpt.test\n")
    instance.control("morercpthosts", "more.test\n.wild.test\n")
    env = {k: v for k, v in instance.env().items() if k != "RELAYCLIENT"}
    return servers.start([str(instance.path / "bin" / "qmail-smtpd")],
                         as_account=instance, env=env, name="qmail-smtpd")


def test_smtpd_uses_morercpthosts_cdb(instance, smtpd):
    assert newmrh(instance).returncode == 0
    assert rcpt_codes(smtpd, RCPTS) == RCPTS


def test_smtpd_without_the_cdb_refuses_those_domains(instance, smtpd):
    assert not (instance.path / "control" / "morercpthosts.cdb").exists()
    codes = rcpt_codes(smtpd, RCPTS)
    assert codes["x@rcpt.test"] == 250
    for rcpt in ("x@more.test", "x@sub.wild.test", "x@other.test"):
        assert codes[rcpt] == 553, rcpt
    # Rebuilding takes effect at the next connection.
    assert newmrh(instance).returncode == 0
    assert rcpt_codes(smtpd, RCPTS) == RCPTS
    instance.control("morercpthosts", "other.test\n")
    assert newmrh(instance).returncode == 0
    codes = rcpt_codes(smtpd, RCPTS)
    assert codes["x@other.test"] == 250
    assert codes["x@more.test"] == 553
