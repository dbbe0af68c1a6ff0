"""qmail-smtpd end to end: real clients on real sockets under tcpserver.

Each test starts qmail-smtpd for an instance (as its account) and talks
to it with smtplib, swaks, or a raw socket for what no polite client
would send. It asserts the exact replies and what came of them: the
queue (nothing at all after a refusal), what qmail-queue was handed (a
QMAILQUEUE recorder keeps the message and the envelope), and the Maildir
when the queue runs. A refused message must never leave anything behind,
and the smuggling variants must never end a message.

The tests share one instance (see shared_instance) that each gets back as
new. They must never leave a process behind: servers and the queue are
stopped by fixtures, also when a test fails.
"""

import email.utils
import os
import re
import shutil
import smtplib
import subprocess
import threading
import time

import pytest

import qmtest
from qmtest import wait_for
from queuectl import Queue

HOSTS = [
    pytest.param("127.0.0.1", id="ipv4"),
    pytest.param("::1", id="ipv6", marks=pytest.mark.skipif(
        not qmtest.ipv6_loopback_available(), reason="no IPv6 loopback")),
]
SENDER = "sender@example.test"
RCPT = "demo@example.test"
SMTPLF = "451 See https://cr.yp.to/docs/smtplf.html."
RELAY_REFUSED = ("553 sorry, that domain isn't in my list of allowed "
                 "rcpthosts (#5.7.1)")
BADMAILFROM = ("553 sorry, your envelope sender is in my badmailfrom list "
               "(#5.7.1)")
TOO_BIG = "552 sorry, that message size exceeds my databytes limit (#5.3.4)"
NEED_UTF8 = "553 sorry, 8-bit addresses need SMTPUTF8 (#5.6.7)"
BAD_UTF8 = "553 sorry, that address is not valid UTF-8 (#5.6.7)"
BAD_LITERAL = "553 sorry, that address literal is not valid (#5.1.3)"
EHLO_LINES = ["250-PIPELINING", "250-8BITMIME", "250-SMTPUTF8"]
MB = 1024 * 1024


# ---- starting the server ----


def start_smtpd(servers, inst, host="127.0.0.1", localname="example.test",
                **extra_env):
    env = inst.env()
    env.update(extra_env)
    return servers.start([str(inst.path / "bin" / "qmail-smtpd")],
                         host=host, as_account=inst, env=env,
                         name="qmail-smtpd", localname=localname)


def account_dir(inst, name):
    """A directory in the instance that its account may write."""
    path = inst.path / name
    path.mkdir(mode=0o755)
    if qmtest.is_root():
        os.chown(path, inst.uid, inst.gid)
    return path


def account_script(inst, path, text):
    path.write_text(text)
    path.chmod(0o755)
    if qmtest.is_root():
        os.chown(path, inst.uid, inst.gid)
    return str(path)


class Recorder:
    """A QMAILQUEUE program that keeps what it is given, as qmail-queue
    would queue it: nothing when the envelope never came (the message was
    cancelled), otherwise the message and the envelope, in order."""

    SCRIPT = """#!/bin/sh
# Records one injection for the test; refuses one without an envelope.
dir='{dir}'
tmp="$dir/tmp.$$"
cat > "$tmp.msg" || exit 54
cat <&1 > "$tmp.env" || exit 54
if [ ! -s "$tmp.env" ]; then rm -f "$tmp.msg" "$tmp.env"; exit 91; fi
sleep {delay}
n=$(date +%s%N).$$
mv "$tmp.msg" "$dir/$n.msg" && mv "$tmp.env" "$dir/$n.env" || exit 53
exit 0
"""

    def __init__(self, inst, delay=0):
        self.dir = account_dir(inst, "qq-records")
        self.program = account_script(
            inst, inst.path / "qq-record",
            self.SCRIPT.format(dir=self.dir, delay=delay))

    def records(self):
        """[(message bytes, sender, [recipients])], oldest first."""
        found = []
        done = [p for p in self.dir.glob("*.msg")
                if not p.name.startswith("tmp.")]
        for msg in sorted(done, key=lambda p: tuple(
                map(int, p.stem.split(".")))):
            env = msg.with_suffix(".env").read_bytes()
            found.append((msg.read_bytes(),) + parse_envelope(env))
        return found

    def leftovers(self):
        return sorted(p.name for p in self.dir.glob("tmp.*"))


def parse_envelope(data):
    """qmail-queue's envelope: F sender NUL, (T rcpt NUL)*, NUL."""
    assert data.startswith(b"F") and data.endswith(b"\0\0"), data[:200]
    fields = data[1:-1].split(b"\0")
    assert fields[-1] == b""
    rcpts = fields[1:-1]
    assert all(r.startswith(b"T") for r in rcpts), rcpts[:5]
    return (fields[0].decode(errors="surrogateescape"),
            [r[1:].decode(errors="surrogateescape") for r in rcpts])


def split_received(message):
    """(qmail-smtpd's Received field, the rest of the message)."""
    first, sep, rest = message.partition(b"\n")
    assert first.startswith(b"Received: from "), message[:300]
    second, sep, rest = rest.partition(b"\n")
    assert second.startswith(b"  by "), message[:300]
    return first + b"\n" + second + b"\n", rest


def check_received(field, helo, ip, local, proto):
    """The exact layout, with a date from the last few minutes."""
    helo_part = f" (HELO {helo})" if helo else ""
    want = (f"Received: from unknown{helo_part} ({ip})\n"
            f"  by {local} with {proto}; ").encode()
    assert field.startswith(want), field
    assert field.endswith(b"\n")
    date = field[len(want):-1].decode()
    assert date.endswith(" +0000"), date
    when = email.utils.parsedate_to_datetime(date).timestamp()
    assert abs(when - time.time()) < 300, date


def queued(inst):
    """Messages qmail-queue left in todo/ (the queue is not running)."""
    return [f for f in inst.queue_files() if f.startswith("todo/")]


def assert_nothing_queued(inst, recorder=None):
    assert inst.queue_files() == []
    if recorder is not None:
        assert recorder.records() == []
        assert recorder.leftovers() == []


# ---- a raw client ----


class Client:
    """An SMTP client that sends exactly the bytes it is given."""

    def __init__(self, server, timeout=15):
        self.sock = server.connect(timeout)
        self.pending = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        """One reply line without CRLF; None at EOF."""
        while b"\r\n" not in self.pending:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                assert self.pending == b"", self.pending
                return None
            self.pending += data
        line, _, self.pending = self.pending.partition(b"\r\n")
        return line.decode("utf-8", errors="replace")

    def reply(self):
        """The lines of one reply."""
        lines = []
        while True:
            line = self.line()
            assert line is not None, f"EOF after {lines!r}"
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return lines

    def expect(self, *replies):
        """Each argument is the one line of the next reply."""
        for want in replies:
            assert self.reply() == [want]

    def command(self, line, want):
        self.send(line + "\r\n")
        self.expect(want)

    def assert_closed(self):
        assert self.line() is None

    def close(self):
        self.sock.close()


def session(server, ehlo="client.test"):
    """A client past the greeting and, unless ehlo is None, past EHLO."""
    c = Client(server)
    c.expect("220 example.test ESMTP")
    if ehlo is not None:
        c.send(f"EHLO {ehlo}\r\n")
        assert c.reply()[0] == "250-example.test"
    return c


def begin_data(c, sender=SENDER, rcpts=(RCPT,)):
    c.command(f"MAIL FROM:<{sender}>", "250 ok")
    for r in rcpts:
        c.command(f"RCPT TO:<{r}>", "250 ok")
    c.command("DATA", "354 go ahead")


@pytest.fixture
def queue(instance):
    q = Queue(instance)
    yield q
    q.close()


# ---- one instance for the whole file ----
#
# Making an instance costs about a second, and this file has dozens of
# short tests. They share one, which every test gets back exactly as
# qmail-instance made it: the same control files, an empty queue, empty
# Maildirs and none of the files a test added.

INSTANCE_FILES = ("qq-records", "qq-record", "qq-fail")


def control_snapshot(inst):
    control = inst.path / "control"
    return {p.name: p.read_bytes() for p in control.iterdir() if p.is_file()}


def restore(inst, snapshot):
    control = inst.path / "control"
    for path in control.iterdir():
        if path.name not in snapshot:
            path.unlink()
    for name, data in snapshot.items():
        path = control / name
        if not path.is_file() or path.read_bytes() != data:
            inst.control(name, data)
    for rel in inst.queue_files():
        (inst.path / "queue" / rel).unlink()
    for box in inst.mailboxes:
        for sub in ("new", "cur", "tmp"):
            for path in (inst.maildir(box) / sub).iterdir():
                path.unlink()
    for name in INSTANCE_FILES:
        path = inst.path / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def shared_instance(bindir, qm_session_dir):
    path = qmtest.make_public_tempdir("qm-smtpd-")
    book = qmtest.LogBook(qm_session_dir / "logs" / "test_smtpd-instance")
    inst = qmtest.Instance(path, bindir, "example.test",
                           ("demo", "alice", "bob"), book)
    result = inst.install()
    if result.returncode != 0:
        qmtest.remove_tree(path)
        pytest.fail(f"qmail-instance failed ({result.returncode}): "
                    f"{result.stderr.decode(errors='replace')}",
                    pytrace=False)
    yield inst, control_snapshot(inst)
    inst.remove()


@pytest.fixture
def instance(shared_instance, qm_logbook):
    """The shared instance, as new, logging into this test's logs."""
    inst, snapshot = shared_instance
    inst.logbook = qm_logbook
    restore(inst, snapshot)
    return inst


# ---- the dialogue ----


def test_dialogue_replies(servers, instance):
    c = session(start_smtpd(servers, instance), ehlo=None)
    c.send("EHLO client.test\r\n")
    assert c.reply() == ["250-example.test"] + EHLO_LINES + ["250 SIZE"]
    c.command("HELO client.test", "250 example.test")
    c.command("NOOP", "250 ok")
    c.command("noop", "250 ok")
    c.command("VRFY demo", "252 send some mail, i'll try my best")
    c.command("HELP", "214 qmail home page: https://cr.yp.to/qmail.html")
    c.command("RSET", "250 flushed")
    c.command("QUIT", "221 example.test")
    c.assert_closed()


def test_ehlo_size_follows_databytes(servers, instance):
    instance.control("databytes", "12345\n")
    c = session(start_smtpd(servers, instance), ehlo=None)
    c.send("EHLO client.test\r\n")
    assert c.reply() == (["250-example.test"] + EHLO_LINES
                         + ["250 SIZE 12345"])
    c.close()
    # DATABYTES in the environment wins over control/databytes.
    c = session(start_smtpd(servers, instance, DATABYTES="777"), ehlo=None)
    c.send("EHLO client.test\r\n")
    assert c.reply()[-1] == "250 SIZE 777"
    c.close()


def test_greeting_from_control(servers, instance):
    instance.control("smtpgreeting", "mx.example.test welcome\n")
    c = Client(start_smtpd(servers, instance))
    c.expect("220 mx.example.test welcome ESMTP")
    c.command("QUIT", "221 mx.example.test welcome")
    c.assert_closed()


def test_helo_and_ehlo_reset_the_transaction(servers, instance):
    recorder = Recorder(instance)
    c = session(start_smtpd(servers, instance,
                            QMAILQUEUE=recorder.program))
    for again, first in (("EHLO again.test", "250-example.test"),
                         ("HELO again.test", "250 example.test"),
                         ("RSET", "250 flushed")):
        c.command(f"MAIL FROM:<{SENDER}>", "250 ok")
        c.command(f"RCPT TO:<{RCPT}>", "250 ok")
        c.send(again + "\r\n")
        assert c.reply()[0] == first
        c.command("DATA", "503 MAIL first (#5.5.1)")
        c.command(f"RCPT TO:<{RCPT}>", "503 MAIL first (#5.5.1)")
    # After the resets a new transaction starts cleanly, with only its
    # own recipient.
    c.command("MAIL FROM:<other@example.test>", "250 ok")
    c.command("RCPT TO:<alice@example.test>", "250 ok")
    c.command("DATA", "354 go ahead")
    c.send("Subject: after resets\r\n\r\nbody\r\n.\r\n")
    c.expect("250 ok")
    c.command("QUIT", "221 example.test")
    ((msg, sender, rcpts),) = recorder.records()
    assert (sender, rcpts) == ("other@example.test", ["alice@example.test"])
    # The last HELO named the client; RSET does not change that.
    assert msg.startswith(b"Received: from unknown (HELO again.test) ")
    assert b"  by example.test with SMTP; " in msg


def test_sequence_errors(servers, instance):
    c = session(start_smtpd(servers, instance))
    c.command(f"RCPT TO:<{RCPT}>", "503 MAIL first (#5.5.1)")
    c.command("DATA", "503 MAIL first (#5.5.1)")
    c.command("MAIL FROM <x@example.test>",
              "501 syntax: MAIL FROM:<address> (#5.5.4)")
    c.command(f"MAIL FROM:<{SENDER}>", "250 ok")
    c.command("DATA", "503 RCPT first (#5.5.1)")
    c.command("MAIL FROM:<other@example.test>",
              "503 nested MAIL command (#5.5.1)")
    c.command("RCPT demo@example.test",
              "501 syntax: RCPT TO:<address> (#5.5.4)")
    c.command("RCPT TO:<>",
              "553 sorry, an empty recipient is not allowed (#5.1.3)")
    c.command("QUIT", "221 example.test")
    c.assert_closed()
    assert_nothing_queued(instance)


def test_mail_and_rcpt_parameters(servers, instance):
    instance.control("databytes", "1000\n")
    c = session(start_smtpd(servers, instance))
    c.command(f"MAIL FROM:<{SENDER}> FOO=BAR",
              "555 unsupported parameter (#5.5.4)")
    c.command(f"MAIL FROM:<{SENDER}> BODY=BINARYMIME",
              "501 unknown BODY type (#5.5.4)")
    c.command(f"MAIL FROM:<{SENDER}> SIZE=12x",
              "501 bad SIZE parameter (#5.5.4)")
    c.command(f"MAIL FROM:<{SENDER}> SIZE=1000 BODY=8BITMIME", "250 ok")
    c.command(f"RCPT TO:<{RCPT}> NOTIFY=NEVER",
              "555 unsupported parameter (#5.5.4)")
    c.command(f"RCPT TO:<{RCPT}>", "250 ok")
    c.command("RSET", "250 flushed")
    c.command(f"mail from:<{SENDER}> body=7bit smtputf8", "250 ok")
    c.command("QUIT", "221 example.test")


# ---- delivery and the Received line ----


@pytest.mark.parametrize("host", HOSTS)
def test_delivered_with_received_line(servers, instance, queue, host):
    queue.start()
    queue.wait_started()
    server = start_smtpd(servers, instance, host=host,
                         localname="mx.example.test")
    body = ("From: <sender@example.test>\nTo: <demo@example.test>\n"
            "Subject: delivered\n\nfirst line\n.leading dot\n"
            "..two dots\nlast line\n")
    with smtplib.SMTP(host, server.port, local_hostname="client.test",
                      timeout=15) as client:
        code, text = client.ehlo("client.test")
        assert code == 250
        assert client.has_extn("pipelining") and client.has_extn("size")
        assert client.sendmail(SENDER, [RCPT], body) == {}
    (name, data), = wait_for(lambda: instance.maildir_messages("demo"),
                             timeout=20, message="delivery to demo")
    head = (b"Return-Path: <sender@example.test>\n"
            b"Delivered-To: demo@example.test\n")
    assert data.startswith(head), data[:300]
    qmail_queue, _, rest = data[len(head):].partition(b"\n")
    assert qmail_queue.startswith(b"Received: (qmail "), qmail_queue
    received, rest = split_received(rest)
    check_received(received, "client.test", host, "mx.example.test", "ESMTP")
    assert rest == body.encode()
    wait_for(lambda: instance.queue_files() == [], timeout=10,
             message="the queue to empty")


@pytest.mark.parametrize("host", HOSTS)
def test_helo_gives_smtp(servers, instance, host):
    recorder = Recorder(instance)
    server = start_smtpd(servers, instance, host=host,
                         QMAILQUEUE=recorder.program)
    result = subprocess.run(
        ["swaks", "--server", host, "--port", str(server.port),
         "--protocol", "SMTP", "--helo", "old.client.test",
         "--from", SENDER, "--to", RCPT,
         "--header", "Subject: by swaks", "--body", "swaks body line"],
        capture_output=True, timeout=30)
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out + result.stderr.decode()
    assert "-> HELO old.client.test" in out
    assert "<-  250 ok" in out
    ((msg, sender, rcpts),) = recorder.records()
    assert (sender, rcpts) == (SENDER, [RCPT])
    received, rest = split_received(msg)
    check_received(received, "old.client.test", host, "example.test",
                   "SMTP")
    assert b"\nSubject: by swaks\n" in rest
    assert b"\n\nswaks body line\n" in rest
    assert b"\r" not in rest


def test_received_line_makes_outside_values_safe(servers, instance):
    recorder = Recorder(instance)
    server = start_smtpd(servers, instance, QMAILQUEUE=recorder.program)
    c = session(server, ehlo=None)
    c.send(b"EHLO evil(host)\\x\xff\x01here\r\n")
    assert c.reply()[0] == "250-example.test"
    begin_data(c)
    c.send("Subject: safe\r\n\r\n.\r\n")
    c.expect("250 ok")
    ((msg, _, _),) = recorder.records()
    received, _ = split_received(msg)
    check_received(received, "evil?host??x??here", "127.0.0.1",
                   "example.test", "ESMTP")


def test_only_a_finished_qmail_queue_gives_250(servers, instance):
    recorder = Recorder(instance, delay=1)
    c = session(start_smtpd(servers, instance, QMAILQUEUE=recorder.program))
    begin_data(c)
    c.send("Subject: slow queue\r\n\r\n.\r\n")
    start = time.monotonic()
    c.expect("250 ok")
    assert time.monotonic() - start >= 0.9
    assert len(recorder.records()) == 1


def test_environment_values_are_made_safe(instance):
    """Outside values from tcpserver's environment (run directly, as
    tcpserver -H -R cannot set them) never break the Received field."""
    recorder = Recorder(instance)
    env = instance.env()
    env.update(TCPREMOTEIP="192.0.2.7", TCPREMOTEHOST="evil host(x)\\",
               TCPREMOTEINFO="id\x01ent", TCPLOCALHOST="mx(local)",
               TCPLOCALIP="192.0.2.1", QMAILQUEUE=recorder.program)
    dialogue = (b"EHLO client.test\r\nMAIL FROM:<a@example.test>\r\n"
                b"RCPT TO:<demo@example.test>\r\nDATA\r\n"
                b"Subject: env\r\n\r\n.\r\nQUIT\r\n")
    result = instance.run([str(instance.path / "bin" / "qmail-smtpd")],
                          input=dialogue, env=env)
    assert result.returncode == 0
    replies = result.stdout.decode().split("\r\n")
    assert replies[-4:] == ["354 go ahead", "250 ok", "221 example.test", ""]
    ((msg, _, _),) = recorder.records()
    received, _ = split_received(msg)
    want = (b"Received: from evil?host?x?? (HELO client.test) "
            b"(id?ent@192.0.2.7)\n  by mx?local? with ESMTP; ")
    assert received.startswith(want), received


def test_helo_matching_the_host_name_is_not_repeated(instance):
    recorder = Recorder(instance)
    env = instance.env()
    env.update(TCPREMOTEIP="192.0.2.7", TCPREMOTEHOST="client.test",
               TCPLOCALHOST="example.test", QMAILQUEUE=recorder.program)
    dialogue = (b"HELO CLIENT.test\r\nMAIL FROM:<a@example.test>\r\n"
                b"RCPT TO:<demo@example.test>\r\nDATA\r\n"
                b"Subject: env\r\n\r\n.\r\nQUIT\r\n")
    result = instance.run([str(instance.path / "bin" / "qmail-smtpd")],
                          input=dialogue, env=env)
    assert result.returncode == 0
    ((msg, _, _),) = recorder.records()
    received, _ = split_received(msg)
    assert received.startswith(b"Received: from client.test (192.0.2.7)\n"
                               b"  by example.test with SMTP; "), received


def test_client_vanishing_in_data_queues_nothing(servers, instance):
    server = start_smtpd(servers, instance)
    c = session(server)
    pid = smtpd_pid(server)
    begin_data(c)
    c.send("Subject: vanishing\r\n\r\n" + "line\r\n" * 1000)
    c.close()
    wait_for(lambda: not qmtest.pid_alive(pid), timeout=10,
             message="qmail-smtpd to end")
    assert_nothing_queued(instance)


# ---- relaying ----


def test_rcpthosts_refuses_relaying(servers, instance):
    instance.control("rcpthosts", "example.test\n.sub.example.org\n")
    recorder = Recorder(instance)
    c = session(start_smtpd(servers, instance, QMAILQUEUE=recorder.program))
    c.command(f"MAIL FROM:<{SENDER}>", "250 ok")
    c.command("RCPT TO:<someone@elsewhere.test>", RELAY_REFUSED)
    c.command("RCPT TO:<someone@example.test.elsewhere.test>", RELAY_REFUSED)
    c.command("RCPT TO:<x@sub.example.org>", RELAY_REFUSED)
    c.command("RCPT TO:<x@a.sub.example.org>", "250 ok")
    c.command("RCPT TO:<DEMO@EXAMPLE.TEST>", "250 ok")
    c.command("RCPT TO:<postmaster>", "250 ok")
    c.command("DATA", "354 go ahead")
    c.send("Subject: relay\r\n\r\n.\r\n")
    c.expect("250 ok")
    ((_, _, rcpts),) = recorder.records()
    assert rcpts == ["x@a.sub.example.org", "DEMO@EXAMPLE.TEST",
                     "postmaster"]


def test_relayclient_allows_relaying_and_is_appended(servers, instance):
    recorder = Recorder(instance)
    c = session(start_smtpd(servers, instance, RELAYCLIENT="+relay",
                            QMAILQUEUE=recorder.program))
    c.command(f"MAIL FROM:<{SENDER}>", "250 ok")
    c.command("RCPT TO:<someone@elsewhere.test>", "250 ok")
    c.command(f"RCPT TO:<{RCPT}>", "250 ok")
    c.command("DATA", "354 go ahead")
    c.send("Subject: relay\r\n\r\n.\r\n")
    c.expect("250 ok")
    ((_, sender, rcpts),) = recorder.records()
    assert sender == SENDER
    assert rcpts == ["someone@elsewhere.test+relay",
                     "demo@example.test+relay"]


def test_empty_relayclient_allows_relaying(servers, instance):
    recorder = Recorder(instance)
    c = session(start_smtpd(servers, instance, RELAYCLIENT="",
                            QMAILQUEUE=recorder.program))
    begin_data(c, rcpts=["someone@elsewhere.test"])
    c.send("Subject: relay\r\n\r\n.\r\n")
    c.expect("250 ok")
    ((_, _, rcpts),) = recorder.records()
    assert rcpts == ["someone@elsewhere.test"]


def write_cdb(path, keys):
    """A cdb as qmail-newmrh would make it (qmail-newmrh does not exist
    yet): each key lowercased, with an empty value, through tinycdb."""
    text = "".join(f"+{len(k)},0:{k}->\n" for k in keys) + "\n"
    subprocess.run(["cdb", "-c", str(path)], input=text.encode(),
                   check=True, timeout=10)


def test_morercpthosts_cdb(servers, instance):
    instance.control("rcpthosts", "example.test\n")
    cdb = instance.path / "control" / "morercpthosts.cdb"
    write_cdb(cdb, ["more.test", ".wild.test"])
    cdb.chmod(0o644)
    recorder = Recorder(instance)
    c = session(start_smtpd(servers, instance, QMAILQUEUE=recorder.program))
    c.command(f"MAIL FROM:<{SENDER}>", "250 ok")
    c.command("RCPT TO:<a@more.test>", "250 ok")
    c.command("RCPT TO:<b@MORE.Test>", "250 ok")
    c.command("RCPT TO:<c@x.wild.test>", "250 ok")
    c.command("RCPT TO:<d@wild.test>", RELAY_REFUSED)
    c.command("RCPT TO:<e@less.test>", RELAY_REFUSED)
    c.command(f"RCPT TO:<{RCPT}>", "250 ok")
    c.command("DATA", "354 go ahead")
    c.send("Subject: more\r\n\r\n.\r\n")
    c.expect("250 ok")
    ((_, _, rcpts),) = recorder.records()
    assert rcpts == ["a@more.test", "b@MORE.Test", "c@x.wild.test", RCPT]


def test_without_rcpthosts_everything_is_accepted(servers, instance):
    (instance.path / "control" / "rcpthosts").unlink()
    c = session(start_smtpd(servers, instance))
    c.command(f"MAIL FROM:<{SENDER}>", "250 ok")
    c.command("RCPT TO:<someone@elsewhere.test>", "250 ok")
    c.command("QUIT", "221 example.test")


def test_badmailfrom(servers, instance):
    instance.control("badmailfrom", "bad@spam.test\n@spamdomain.test\n")
    c = session(start_smtpd(servers, instance))
    c.command("MAIL FROM:<bad@spam.test>", BADMAILFROM)
    c.command("MAIL FROM:<BAD@Spam.Test>", BADMAILFROM)
    c.command("MAIL FROM:<anyone@spamdomain.test>", BADMAILFROM)
    c.command("MAIL FROM:<anyone@sub.spamdomain.test>", "250 ok")
    c.command("RSET", "250 flushed")
    c.command("MAIL FROM:<good@spam.test>", "250 ok")
    c.command("RSET", "250 flushed")
    c.command("MAIL FROM:<>", "250 ok")
    c.command("QUIT", "221 example.test")
    assert_nothing_queued(instance)


# ---- databytes ----


def test_size_parameter_over_databytes_gets_552_at_once(servers, instance):
    instance.control("databytes", "1000\n")
    c = session(start_smtpd(servers, instance))
    c.command(f"MAIL FROM:<{SENDER}> SIZE=1001", TOO_BIG)
    c.command(f"MAIL FROM:<{SENDER}> SIZE=99999999999999999999999", TOO_BIG)
    c.command(f"RCPT TO:<{RCPT}>", "503 MAIL first (#5.5.1)")
    c.command(f"MAIL FROM:<{SENDER}> SIZE=1000", "250 ok")
    c.command("QUIT", "221 example.test")
    assert_nothing_queued(instance)


def test_size_parameter_without_databytes(servers, instance):
    c = session(start_smtpd(servers, instance))
    c.command(f"MAIL FROM:<{SENDER}> SIZE=99999999999999999999999", "250 ok")
    c.command("QUIT", "221 example.test")


def test_databytes_exceeded_after_data(servers, instance):
    instance.control("databytes", "1000\n")
    c = session(start_smtpd(servers, instance))
    begin_data(c)
    c.send(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n"
           + (b"y" * 70 + b"\r\n") * 20 + b".\r\n")
    c.expect(TOO_BIG)
    assert_nothing_queued(instance)
    # The session goes on, with the transaction gone; a message that
    # fits (exactly 1000 bytes once decoded) is then taken.
    c.command(f"RCPT TO:<{RCPT}>", "503 MAIL first (#5.5.1)")
    begin_data(c)
    c.send(b"Subject: fits\r\n\r\n" + b"z" * (1000 - 15 - 1) + b"\r\n.\r\n")
    c.expect("250 ok")
    c.command("QUIT", "221 example.test")
    assert len(queued(instance)) == 1


# ---- pipelining ----


def test_pipelining_replies_in_order(servers, instance):
    recorder = Recorder(instance)
    c = session(start_smtpd(servers, instance, QMAILQUEUE=recorder.program))
    rcpts = [f"r{i}@example.test" if i % 10 != 7 else f"r{i}@relay.test"
             for i in range(50)]
    c.send(f"MAIL FROM:<{SENDER}>\r\n"
           + "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts) + "DATA\r\n")
    replies = [c.reply() for _ in range(52)]
    want = ([["250 ok"]]
            + [[RELAY_REFUSED] if r.endswith("relay.test") else ["250 ok"]
               for r in rcpts]
            + [["354 go ahead"]])
    assert replies == want
    c.send("Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    c.expect("250 ok", "221 example.test")
    c.assert_closed()
    ((msg, sender, got),) = recorder.records()
    assert sender == SENDER
    assert got == [r for r in rcpts if r.endswith("example.test")]
    assert split_received(msg)[1] == b"Subject: pipelined\n\nbody\n"


def test_replies_do_not_wait_for_an_unfinished_line(servers, instance):
    """Replies to the commands read so far go out while the next line is
    still on its way (the server's timeout is far longer than this
    client's 5 seconds)."""
    c = Client(start_smtpd(servers, instance), timeout=5)
    c.expect("220 example.test ESMTP")
    c.send("EHLO client.test\r\nNOOP\r\nNO")
    assert c.reply()[0] == "250-example.test"
    c.expect("250 ok")
    c.send("OP\r\nQUIT\r\n")
    c.expect("250 ok", "221 example.test")
    c.assert_closed()


# ---- SMTPUTF8 ----


UTF8_SENDER = "δοκιμή@example.test"
UTF8_RCPT = "démo@example.test"


def test_smtputf8_address_accepted_with_the_parameter(servers, instance):
    recorder = Recorder(instance)
    server = start_smtpd(servers, instance, QMAILQUEUE=recorder.program)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=15) as client:
        client.ehlo("client.test")
        assert client.has_extn("smtputf8")
        refused = client.sendmail(
            UTF8_SENDER, [UTF8_RCPT, RCPT],
            b"Subject: utf8\r\n\r\nbody\r\n", mail_options=["SMTPUTF8"])
        assert refused == {}
    ((msg, sender, rcpts),) = recorder.records()
    assert (sender, rcpts) == (UTF8_SENDER, [UTF8_RCPT, RCPT])


def test_8bit_address_without_smtputf8_gets_553(servers, instance):
    c = session(start_smtpd(servers, instance))
    c.command(f"MAIL FROM:<{UTF8_SENDER}>", NEED_UTF8)
    c.command(f"MAIL FROM:<{SENDER}>", "250 ok")
    c.command(f"RCPT TO:<{UTF8_RCPT}>", NEED_UTF8)
    c.command("QUIT", "221 example.test")
    assert_nothing_queued(instance)


def test_8bit_quoted_local_part_without_smtputf8_gets_553(servers, instance):
    c = session(start_smtpd(servers, instance))
    c.command('MAIL FROM:<"café"@example.test>', NEED_UTF8)
    c.command(f"MAIL FROM:<{SENDER}>", "250 ok")
    c.command('RCPT TO:<"démo"@example.test>', NEED_UTF8)
    c.command("QUIT", "221 example.test")


@pytest.mark.parametrize("path", [
    b"<\xc0\xafdemo@example.test>",      # overlong
    b"<\xed\xa0\x80@example.test>",       # surrogate
    b"<demo@example.\xf4\x90\x80\x80>",   # above U+10FFFF
    b"<demo\xe2\x82@example.test>",       # truncated
    b'<"\xff"@example.test>',             # inside quotes
], ids=["overlong", "surrogate", "too-high", "truncated", "quoted"])
def test_invalid_utf8_address_gets_553(servers, instance, path):
    c = session(start_smtpd(servers, instance))
    c.send(b"MAIL FROM:" + path + b" SMTPUTF8\r\n")
    c.expect(BAD_UTF8)
    c.command(f"MAIL FROM:<{SENDER}> SMTPUTF8", "250 ok")
    c.send(b"RCPT TO:" + path + b"\r\n")
    c.expect(BAD_UTF8)
    c.command("QUIT", "221 example.test")
    assert_nothing_queued(instance)


# ---- address literals ----


@pytest.mark.parametrize("host,literals", [
    pytest.param("127.0.0.1", ["[127.0.0.1]"], id="ipv4"),
    pytest.param("::1", ["[IPv6:::1]", "[ipv6:0:0:0:0:0:0:0:1]"], id="ipv6",
                 marks=pytest.mark.skipif(
                     not qmtest.ipv6_loopback_available(),
                     reason="no IPv6 loopback")),
])
def test_our_address_literal_becomes_localiphost(servers, instance, host,
                                                 literals):
    instance.control("localiphost", "lit.example.test\n")
    instance.control("rcpthosts", "example.test\nlit.example.test\n")
    recorder = Recorder(instance)
    c = session(start_smtpd(servers, instance, host=host,
                            QMAILQUEUE=recorder.program))
    begin_data(c, rcpts=[f"demo@{lit}" for lit in literals])
    c.send("Subject: literal\r\n\r\n.\r\n")
    c.expect("250 ok")
    ((_, _, rcpts),) = recorder.records()
    assert rcpts == ["demo@lit.example.test"] * len(literals)


def test_localiphost_defaults_to_me(servers, instance):
    recorder = Recorder(instance)
    c = session(start_smtpd(servers, instance, QMAILQUEUE=recorder.program))
    begin_data(c, rcpts=["demo@[127.0.0.1]"])
    c.send("Subject: literal\r\n\r\n.\r\n")
    c.expect("250 ok")
    ((_, _, rcpts),) = recorder.records()
    assert rcpts == [RCPT]


def test_other_address_literals(servers, instance):
    c = session(start_smtpd(servers, instance))
    c.command(f"MAIL FROM:<{SENDER}>", "250 ok")
    # Not one of ours: it stays a literal, which rcpthosts does not list.
    c.command("RCPT TO:<demo@[192.0.2.1]>", RELAY_REFUSED)
    c.command("RCPT TO:<demo@[IPv6:::1]>", RELAY_REFUSED)
    for bad in ("[127.0.0]", "[127.0.0.1", "[::1]", "[IPv6:1.2.3.4]",
                "[300.1.1.1]", "[]"):
        c.command(f"RCPT TO:<demo@{bad}>", BAD_LITERAL)
    c.command("MAIL FROM:<x@[1.2.3.4.5]>", "503 nested MAIL command (#5.5.1)")
    c.command("RSET", "250 flushed")
    c.command("MAIL FROM:<x@[1.2.3.4.5]>", BAD_LITERAL)


# ---- bad input ----


def test_bare_lf_in_a_command(servers, instance):
    c = session(start_smtpd(servers, instance))
    c.command(f"MAIL FROM:<{SENDER}>", "250 ok")
    c.command(f"RCPT TO:<{RCPT}>", "250 ok")
    c.send("DATA\n")
    c.expect(SMTPLF)
    c.assert_closed()
    assert_nothing_queued(instance)


def test_bare_lf_alone(servers, instance):
    c = session(start_smtpd(servers, instance), ehlo=None)
    c.send("\n")
    c.expect(SMTPLF)
    c.assert_closed()


def test_bare_lf_in_data(servers, instance):
    c = session(start_smtpd(servers, instance))
    begin_data(c)
    c.send("Subject: lf\r\n\r\nfirst\nsecond\r\n.\r\n")
    c.expect(SMTPLF)
    c.assert_closed()
    assert_nothing_queued(instance)


SMUGGLED = (b"MAIL FROM:<evil@x>\r\nRCPT TO:<demo@example.test>\r\n"
            b"DATA\r\nsmuggled\r\n.\r\n")
SMUGGLED_DECODED = (b"MAIL FROM:<evil@x>\nRCPT TO:<demo@example.test>\n"
                    b"DATA\nsmuggled\n")


@pytest.mark.parametrize("marker,body", [
    (b"\n.\n", None),
    (b"\r.\r", b"hello\r.\r" + SMUGGLED_DECODED),
    (b"\n.\r\n", None),
    (b"\r\n.\n", None),
    (b"\r\n.\r", b"hello\n\r" + SMUGGLED_DECODED),
    (b"\r.\r\n", b"hello\r.\n" + SMUGGLED_DECODED),
], ids=["LF.LF", "CR.CR", "LF.CRLF", "CRLF.LF", "CRLF.CR", "CR.CRLF"])
def test_smuggling_never_ends_the_message(servers, instance, marker, body):
    """body None: the bare LF ends the session and nothing is queued;
    otherwise exactly one message is queued and it holds the text."""
    recorder = Recorder(instance)
    c = session(start_smtpd(servers, instance, QMAILQUEUE=recorder.program))
    begin_data(c)
    c.send(b"Subject: smuggle\r\n\r\nhello" + marker + SMUGGLED)
    if body is None:
        c.expect(SMTPLF)
        c.assert_closed()
        assert recorder.records() == []
    else:
        c.expect("250 ok")
        c.command("QUIT", "221 example.test")
        c.assert_closed()
        ((msg, sender, rcpts),) = recorder.records()
        assert (sender, rcpts) == (SENDER, [RCPT])
        assert split_received(msg)[1] == b"Subject: smuggle\n\n" + body
    assert recorder.leftovers() == []


def test_smuggling_with_the_real_queue(servers, instance):
    """The same with qmail-queue itself: one message in the queue."""
    c = session(start_smtpd(servers, instance))
    begin_data(c)
    c.send(b"Subject: smuggle\r\n\r\nhello\r\n.\r" + SMUGGLED)
    c.expect("250 ok")
    c.command("QUIT", "221 example.test")
    assert len(queued(instance)) == 1


def test_nul_in_a_command(servers, instance):
    c = session(start_smtpd(servers, instance))
    c.send(b"NOOP\0x\r\n")
    c.expect("501 NUL in command (#5.5.2)")
    c.send(b"MAIL FROM:<a\0b@example.test>\r\n")
    c.expect("501 NUL in command (#5.5.2)")
    c.command(f"RCPT TO:<{RCPT}>", "503 MAIL first (#5.5.1)")
    c.command("NOOP", "250 ok")
    c.command("QUIT", "221 example.test")
    assert_nothing_queued(instance)


def test_long_command_line(servers, instance):
    c = session(start_smtpd(servers, instance))
    c.send("NOOP " + "x" * 10240 + "\r\n")
    c.expect("500 line too long (#5.5.2)")
    c.command("NOOP", "250 ok")
    c.send(f"MAIL FROM:<{'a' * 10240}@example.test>\r\n")
    c.expect("500 line too long (#5.5.2)")
    c.command(f"RCPT TO:<{RCPT}>", "503 MAIL first (#5.5.1)")
    c.command("QUIT", "221 example.test")
    assert_nothing_queued(instance)


def test_long_command_line_ending_in_a_bare_lf(servers, instance):
    """Only CRLF ends a line, also one too long to read whole: its bare
    LF ends the session like any other."""
    c = session(start_smtpd(servers, instance))
    c.send("NOOP " + "x" * 2000 + "\n")
    c.expect(SMTPLF)
    c.assert_closed()


def test_two_megabyte_header_line(servers, instance):
    c = session(start_smtpd(servers, instance))
    begin_data(c)
    c.send(b"Subject: long\r\nX-Long: " + b"h" * (2 * MB) + b"\r\n\r\n"
           + b"body\r\n.\r\n")
    c.expect("552 sorry, the message header is too long (#5.6.0)")
    assert_nothing_queued(instance)
    c.command("NOOP", "250 ok")
    c.command("QUIT", "221 example.test")


def test_too_many_hops(servers, instance):
    recorder = Recorder(instance)
    c = session(start_smtpd(servers, instance, QMAILQUEUE=recorder.program))
    hop = b"Received: from a by b; Thu, 1 Jan 2026 00:00:00 +0000\r\n"
    begin_data(c)
    c.send(hop * 60 + b"Delivered-To: x@example.test\r\n" * 41
           + b"\r\nbody\r\n.\r\n")
    c.expect("554 too many hops, this message is looping (#5.4.6)")
    assert recorder.records() == []
    begin_data(c)
    c.send(hop * 100 + b"\r\n" + hop * 5 + b".\r\n")
    c.expect("250 ok")
    assert len(recorder.records()) == 1


def test_ten_thousand_recipients(servers, instance):
    recorder = Recorder(instance)
    c = session(start_smtpd(servers, instance, QMAILQUEUE=recorder.program))
    c.command(f"MAIL FROM:<{SENDER}>", "250 ok")
    replies = []
    batch = 500
    for start in range(0, 10000, batch):
        c.send("".join(f"RCPT TO:<r{i}@example.test>\r\n"
                       for i in range(start, start + batch)))
        replies += [c.reply() for _ in range(batch)]
    assert replies[:1000] == [["250 ok"]] * 1000
    assert replies[1000:] == [["452 too many recipients (#4.5.3)"]] * 9000
    c.command("DATA", "354 go ahead")
    c.send("Subject: many\r\n\r\n.\r\n")
    c.expect("250 ok")
    ((_, sender, rcpts),) = recorder.records()
    assert sender == SENDER
    assert rcpts == [f"r{i}@example.test" for i in range(1000)]


def sanitized(path):
    with open(path, "rb") as f:
        return b"AddressSanitizer" in f.read()


def memory_kb(pid):
    """(VmHWM, VmRSS) of pid in kB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    values = dict(re.findall(r"^(VmHWM|VmRSS):\s+(\d+) kB", text, re.M))
    return int(values["VmHWM"]), int(values["VmRSS"])


def smtpd_pid(server):
    """The qmail-smtpd that tcpserver started (not tcpserver itself,
    whose command line names it too)."""
    def find():
        for pid, cmd in qmtest.session_members(server.proc.pid):
            if (pid != server.proc.pid
                    and cmd.split(" ")[0].endswith("/qmail-smtpd")
                    and memory_kb(pid)):
                return pid
        return None
    return wait_for(find, timeout=10, message="the qmail-smtpd process")


def test_fifty_megabytes_over_databytes(servers, instance):
    instance.control("databytes", f"{MB}\n")
    server = start_smtpd(servers, instance)
    c = session(server)
    pid = smtpd_pid(server)
    baseline = memory_kb(pid)[0]
    begin_data(c)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            m = memory_kb(pid)
            if m:
                peak[0] = max(peak[0], *m)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        line = b"0123456789" * 7 + b"\r\n"
        chunk = line * (MB // len(line))
        c.send(b"Subject: fifty megabytes\r\n\r\n")
        for _ in range(50):
            c.send(chunk)
        c.send(b".\r\n")
        c.expect(TOO_BIG)
        peak[0] = max(peak[0], memory_kb(pid)[0])
    finally:
        done.set()
        sampler.join()
    print(f"qmail-smtpd memory: baseline VmHWM {baseline} kB, "
          f"peak {peak[0]} kB")
    assert_nothing_queued(instance)
    c.command("NOOP", "250 ok")
    c.command("QUIT", "221 example.test")
    if sanitized(instance.bindir / "qmail-smtpd"):
        # ASan's shadow memory and quarantine raise the baseline; what
        # counts is that reading 50 MB did not add to it.
        assert peak[0] - baseline < 20 * 1024
    else:
        assert peak[0] < 20 * 1024


def test_silent_client_times_out(servers, instance):
    instance.control("timeoutsmtpd", "2\n")
    server = start_smtpd(servers, instance)
    # Two at once, to wait only once: one between commands, one in DATA.
    idle = session(server)
    idle_since = time.monotonic()
    in_data = session(server)
    begin_data(in_data)
    in_data.send("Subject: never finished\r\n\r\nhalf a line")
    data_since = time.monotonic()
    idle.expect("451 timeout (#4.4.2)")
    idle.assert_closed()
    idle_waited = time.monotonic() - idle_since
    in_data.expect("451 timeout (#4.4.2)")
    in_data.assert_closed()
    data_waited = time.monotonic() - data_since
    assert 1.5 <= idle_waited < 10, idle_waited
    assert 1.5 <= data_waited < 10, data_waited
    assert_nothing_queued(instance)


def test_unknown_commands_end_the_session(servers, instance):
    """A client sending 20 unknown commands is cut off at the 10th. They
    go one at a time: a server closing with unread input sends a reset,
    which could destroy its last replies before the client reads them."""
    c = session(start_smtpd(servers, instance), ehlo=None)
    for i in range(9):
        c.command(f"XYZZY{i}", "502 unimplemented (#5.5.1)")
    c.send("XYZZY9\r\n")
    c.expect("502 unimplemented (#5.5.1)",
             "421 too many errors; closing connection (#4.7.0)")
    c.assert_closed()


# ---- qmail-queue failures ----


def test_qmail_queue_that_cannot_run(servers, instance):
    c = session(start_smtpd(servers, instance,
                            QMAILQUEUE=str(instance.path / "no-such-qq")))
    begin_data(c)
    c.send("Subject: nowhere\r\n\r\nbody\r\n.\r\n")
    c.expect("451 qq internal bug (#4.3.0)")
    c.command("QUIT", "221 example.test")
    assert_nothing_queued(instance)


@pytest.mark.parametrize("code,fd6,reply", [
    (53, "", "451 qq write error or disk full (#4.3.0)"),
    (31, "", "554 mail server permanently rejected message (#5.3.0)"),
    (82, "Dsorry, custom refusal", "554 sorry, custom refusal"),
    (82, "Ztry later", "451 try later"),
], ids=["53", "31", "82-D", "82-Z"])
def test_qmail_queue_exit_codes(servers, instance, code, fd6, reply):
    script = account_script(
        instance, instance.path / "qq-fail",
        "#!/bin/sh\n# Reads like qmail-queue, then refuses.\n"
        "cat > /dev/null; cat <&1 > /dev/null\n"
        f"printf '%s' '{fd6}' >&6\nexit {code}\n")
    c = session(start_smtpd(servers, instance, QMAILQUEUE=script))
    begin_data(c)
    c.send("Subject: refused\r\n\r\nbody\r\n.\r\n")
    c.expect(reply)
    # The transaction is over either way.
    c.command(f"RCPT TO:<{RCPT}>", "503 MAIL first (#5.5.1)")
    c.command("QUIT", "221 example.test")
    assert_nothing_queued(instance)
