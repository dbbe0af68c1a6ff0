"""End-to-end tests of the whole local mail path: injection (sendmail,
qmail-inject, qmail-ofmipd, sendmail -bs), the queue, qmail-lspawn,
qmail-local and the mailboxes, run together as one mail system.

Part 1 runs in an instance, every program as its account, with the
queue started by queuectl. Part 2 runs a production-style home as root,
with the classic role accounts, to check that each process takes its
role and each delivery runs as the mailbox's owner; it changes the
system's accounts, so it runs only as root under CI or with
QM_SYSTEM_TESTS=1, never on a developer's machine by accident.

Tests wait only with bounded polls (qmtest.wait_for), never with bare
sleeps, and must never leave a process behind: every queue and every
program talked to over pipes is stopped in a finally or a fixture.
"""

import email.utils
import os
import pathlib
import pwd
import grp
import re
import secrets
import select
import shutil
import signal
import smtplib
import stat
import subprocess
import time
import types

import pytest

import qmtest
from qmtest import is_root, wait_for
from queuectl import Queue

ME = "example.test"
SPLIT = qmtest.SPLIT
QUEUE_RECEIVED_RE = re.compile(
    rb"Received: \(qmail \d+ invoked by uid (\d+)\); ([^\n]*)\n")
NO_MAILBOX = "Sorry, no mailbox here by that name. (#5.1.1)"
BOUNCE_INTRO = (
    "Hi. This is the qmail-send program at example.test.\n"
    "I'm afraid I wasn't able to deliver your message to the following "
    "addresses.\n"
    "This is a permanent error; I've given up. Sorry it didn't work out.\n\n")
BELOW = "\n--- Below this line is a copy of the message.\n\n"
ACCEPTED_235 = "235 ok, go ahead (#2.0.0)"
BAD_SENDER = ("553 sorry, you are not allowed to use that sender address "
              "(#5.7.1)")
BAD_FROM = "553 sorry, you are not allowed to use that From address (#5.7.1)"
ALREADY = "503 you are already authenticated (#5.5.1)"
IO_TIMEOUT = 15


# ---- helpers shared by both parts ----


def message(subject, to="demo@example.test", body="A body line.\n"):
    return f"To: {to}\nSubject: {subject}\n\n{body}".encode()


def check_date(text):
    """text is an RFC 5322 date within the last few minutes."""
    when = email.utils.parsedate_to_datetime(text)
    assert when.utcoffset() is not None, text
    assert abs(when.timestamp() - time.time()) < 300, text


def split_queue_received(data):
    """(uid of qmail-queue's caller, the rest) of a message as queued."""
    m = QUEUE_RECEIVED_RE.match(data)
    assert m, data[:300]
    check_date(m.group(2).decode())
    return int(m.group(1)), data[m.end():]


def header_lines(data):
    """The header of a message as a list of lines, and its body."""
    head, sep, body = data.partition(b"\n\n")
    assert sep, data[:500]
    return head.decode(errors="replace").split("\n"), body


def fields(lines, name):
    prefix = name.lower() + ":"
    return [line for line in lines if line.lower().startswith(prefix)]


def log_lines(queue):
    return queue.log_text().splitlines()


def wait_log(queue, pattern, timeout=20):
    """Waits for a line of the queue's log matching pattern; returns the
    match."""
    regex = re.compile(pattern)

    def find():
        for line in log_lines(queue):
            m = regex.fullmatch(line)
            if m:
                return m
        return None

    return wait_for(find, timeout=timeout,
                    message=f"a log line matching {pattern!r}")


def stop_queue(queue):
    """For a finally: SIGTERM (QueueError when the queue does not stop),
    and SIGKILL for whatever survives that in any case."""
    try:
        queue.stop()
    finally:
        queue.close()


class PipeSmtp:
    """An SMTP server program on our pipes (its fd 0 and fd 1), in a
    session of its own; its stderr goes to a file of the logbook."""

    def __init__(self, argv, env, cwd, logbook, name):
        self.log_path = logbook.new(name)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log,
            start_new_session=True)
        self.pending = b""

    def send(self, data):
        self.proc.stdin.write(data.encode() if isinstance(data, str)
                              else data)
        self.proc.stdin.flush()

    def line(self):
        """One reply line without CRLF; None at EOF."""
        deadline = time.monotonic() + IO_TIMEOUT
        out = self.proc.stdout.fileno()
        while b"\r\n" not in self.pending:
            left = deadline - time.monotonic()
            assert left > 0, f"no reply line: {self.pending!r}"
            ready, _, _ = select.select([out], [], [], left)
            if not ready:
                continue
            data = os.read(out, 65536)
            if not data:
                assert self.pending == b"", self.pending
                return None
            self.pending += data
        line, _, self.pending = self.pending.partition(b"\r\n")
        return line.decode(errors="replace")

    def reply(self):
        lines = []
        while True:
            line = self.line()
            assert line is not None, f"EOF after {lines!r}"
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return lines

    def expect(self, want):
        assert self.reply() == [want]

    def command(self, line, want):
        self.send(line + "\r\n")
        self.expect(want)

    def data(self, body, want):
        """DATA, then body (LF line ends) dot-stuffed and ended."""
        self.command("DATA", "354 go ahead")
        lines = body.decode().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        text = "".join(("." + ln if ln.startswith(".") else ln) + "\r\n"
                       for ln in lines)
        self.send(text + ".\r\n")
        self.expect(want)

    def quit(self):
        """QUIT; returns the exit code once the program has ended."""
        self.send("QUIT\r\n")
        reply = self.reply()
        assert len(reply) == 1 and reply[0].startswith("221 "), reply
        assert self.line() is None
        return self.proc.wait(timeout=IO_TIMEOUT)

    def close(self):
        """For a finally: nothing of the session survives."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        qmtest.kill_group(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc.stdout.close()
        self.log.close()


# ====================================================================
# Part 1: an instance
# ====================================================================


@pytest.fixture
def inst(make_instance):
    return make_instance(host=ME, mailboxes=("demo", "alice", "bob"))


@pytest.fixture
def queue(inst):
    """The instance's queue, running with ./Maildir/ as the default."""
    q = Queue(inst, "./Maildir/")
    q.start()
    try:
        q.wait_started()
        yield q
    finally:
        stop_queue(q)


def own(inst, path):
    if is_root():
        os.chown(path, inst.uid, inst.gid)


def write_owned(inst, path, data, mode=0o644):
    """Writes a file of the account atomically (a .qmail must never be
    seen half-written by a delivery)."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    tmp.chmod(mode)
    own(inst, tmp)
    os.replace(tmp, path)
    return path


def home_of(inst, box):
    if box == "alias":
        return inst.path / "alias"
    return inst.path / "mail" / box


def dotqmail(inst, box, ext, text):
    name = ".qmail" + (f"-{ext}" if ext else "")
    return write_owned(inst, home_of(inst, box) / name, text)


def user_env(inst, user="alice", **extra):
    """The environment of a user running a mail program: only what we
    choose of the QMAIL*/MAIL* family, whatever the caller has."""
    env = inst.env()
    for name in list(env):
        if (name.startswith(("QMAIL", "MAIL", "TCP")) or
                name in ("USER", "LOGNAME", "NAME", "AUTHUP_USER")):
            del env[name]
    env["QMAILHOME"] = str(inst.path)
    env["USER"] = user
    env["LOGNAME"] = user
    env.update(extra)
    return env


def maildir_new(inst, box):
    folder = inst.maildir(box) / "new"
    return [p.read_bytes() for p in sorted(folder.iterdir())]


def wait_mail(inst, box, count=1, timeout=20):
    """Waits until box holds count messages in new/; returns them."""
    wait_for(lambda: len(maildir_new(inst, box)) >= count, timeout=timeout,
             message=f"{count} message(s) in {box}'s Maildir")
    found = maildir_new(inst, box)
    assert len(found) == count, found
    return found


def wait_queue_empty(inst, timeout=20):
    wait_for(lambda: inst.queue_files() == [], timeout=timeout,
             message="an empty queue")


def split_file(inst, directory, msgid):
    return inst.path / "queue" / directory / str(msgid % SPLIT) / str(msgid)


def run_program(inst, argv, data, user="alice", **extra):
    """Runs a bin/ program as the account with data on stdin."""
    prog = [str(inst.path / "bin" / argv[0])] + list(argv[1:])
    return inst.run(prog, input=data, env=user_env(inst, user, **extra))


def delivered_prefix(sender, recipient):
    return (f"Return-Path: <{sender}>\n"
            f"Delivered-To: {recipient}\n").encode()


def check_injected_header(lines, frm="alice@example.test"):
    """The fields qmail-inject adds: Date, Message-ID and From."""
    (date,) = fields(lines, "Date")
    check_date(date[len("Date: "):])
    (msgid,) = fields(lines, "Message-ID")
    assert re.fullmatch(r"Message-ID: <[^<>@\s]+@example\.test>", msgid), \
        msgid
    assert fields(lines, "From") == [f"From: {frm}"]


def check_bounce(data, recipient, failed, text, original_subject):
    """A bounce in qmail's format, delivered to recipient's Maildir:
    failed is the address that failed and text its report."""
    head = delivered_prefix("", recipient)
    assert data.startswith(head), data[:300]
    _, rest = split_queue_received(data[len(head):])
    lines, body = header_lines(rest)
    assert lines[0].startswith("Date: ")
    check_date(lines[0][len("Date: "):])
    assert lines[1:] == ["From: MAILER-DAEMON@example.test",
                         f"To: {recipient}",
                         "Subject: failure notice"], lines
    body = body.decode(errors="replace")
    assert body.startswith(BOUNCE_INTRO + f"<{failed}>:\n{text}"), body
    report, sep, copy = body.partition(BELOW)
    assert sep, body
    assert f"\nSubject: {original_subject}\n" in copy


# ---- 1.1 sendmail -t and qmail-inject, to a Maildir and an mbox ----

INJECTORS = {
    "sendmail-t": ["sendmail", "-t"],
    "qmail-inject": ["qmail-inject"],
}


@pytest.mark.parametrize("argv", INJECTORS.values(), ids=INJECTORS)
def test_injected_message_reaches_a_maildir(inst, queue, argv):
    body = "First line.\n.a line with a dot\nFrom here on.\n"
    result = run_program(inst, argv,
                         message("to a maildir", to="demo", body=body))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    (data,) = wait_mail(inst, "demo")
    head = delivered_prefix("alice@example.test", "demo@example.test")
    assert data.startswith(head), data[:300]
    _, rest = split_queue_received(data[len(head):])
    lines, got_body = header_lines(rest)
    # The unqualified To is completed with defaulthost (control/me).
    assert fields(lines, "To") == ["To: demo@example.test"]
    assert fields(lines, "Subject") == ["Subject: to a maildir"]
    check_injected_header(lines)
    assert got_body == body.encode()
    assert maildir_new(inst, "alice") == []
    wait_queue_empty(inst)


@pytest.mark.parametrize("argv", INJECTORS.values(), ids=INJECTORS)
def test_injected_message_reaches_an_mbox(inst, queue, argv):
    home = home_of(inst, "alice")
    dotqmail(inst, "alice", "", "./mbox\n")
    body = ("Hello.\nFrom the start of a line.\n>From quoted once.\n"
            ">>From quoted twice.\nFrom\nFromage\n From indented.\n")
    result = run_program(inst, argv, message("to an mbox",
                                             to="alice@example.test",
                                             body=body), user="bob")
    assert result.returncode == 0, result.stderr
    mbox = home / "mbox"
    wait_for(lambda: mbox.exists() and mbox.read_bytes().endswith(b"\n\n"),
             timeout=20, message="the mbox delivery")
    wait_queue_empty(inst)
    data = mbox.read_bytes()
    st = os.stat(mbox)
    if is_root():
        assert (st.st_uid, st.st_gid) == (inst.uid, inst.gid)
    assert stat.S_IMODE(st.st_mode) == 0o600
    first, _, rest = data.partition(b"\n")
    m = re.fullmatch(rb"From bob@example\.test "
                     rb"([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d "
                     rb"\d\d:\d\d:\d\d \d{4})", first)
    assert m, first
    when = time.mktime(time.strptime(m.group(1).decode(),
                                     "%a %b %d %H:%M:%S %Y"))
    assert abs(when - time.mktime(time.gmtime())) < 300
    head = delivered_prefix("bob@example.test", "alice@example.test")
    assert rest.startswith(head), rest[:300]
    _, rest = split_queue_received(rest[len(head):])
    lines, got_body = header_lines(rest)
    assert fields(lines, "To") == ["To: alice@example.test"]
    check_injected_header(lines, frm="bob@example.test")
    # Each line matching ^>*From  gets one more '>'; a blank line ends
    # the message.
    assert got_body == (b"Hello.\n>From the start of a line.\n"
                        b">>From quoted once.\n>>>From quoted twice.\n"
                        b"From\nFromage\n From indented.\n\n")
    assert maildir_new(inst, "alice") == []


def test_two_messages_append_to_the_mbox(inst, queue):
    home = home_of(inst, "alice")
    dotqmail(inst, "alice", "", "./mbox\n")
    for n in (1, 2):
        result = run_program(inst, ["qmail-inject", "alice"],
                             message(f"number {n}", to="alice"), user="bob")
        assert result.returncode == 0, result.stderr
        wait_for(lambda: (home / "mbox").exists() and
                 (home / "mbox").read_bytes().count(b"\nSubject: ") == n,
                 timeout=20, message=f"mbox message {n}")
    data = (home / "mbox").read_bytes()
    starts = [m.start() for m in re.finditer(rb"^From bob@example\.test ",
                                             data, re.M)]
    assert len(starts) == 2 and starts[0] == 0
    assert data[:starts[1]].endswith(b"A body line.\n\n")
    assert b"Subject: number 1\n" in data[:starts[1]]
    assert b"Subject: number 2\n" in data[starts[1]:]
    wait_queue_empty(inst)


# ---- 1.2 .qmail forwarding ----


def test_dotqmail_forward_through_the_queue(inst, queue):
    dotqmail(inst, "bob", "", "&demo@example.test\n")
    original = message("forwarded", to="bob@example.test")
    result = run_program(inst, ["qmail-inject"], original)
    assert result.returncode == 0, result.stderr
    wait_log(queue, r"end msg \d+")
    (data,) = wait_mail(inst, "demo")
    # The forward is a new message: its own Return-Path, Delivered-To
    # and qmail-queue Received, then bob's Delivered-To, then the first
    # queueing's Received and the message.
    head = delivered_prefix("alice@example.test", "demo@example.test")
    assert data.startswith(head), data[:300]
    _, rest = split_queue_received(data[len(head):])
    assert rest.startswith(b"Delivered-To: bob@example.test\n"), rest[:200]
    _, rest = split_queue_received(rest[len(b"Delivered-To: "
                                            b"bob@example.test\n"):])
    lines, body = header_lines(rest)
    assert fields(lines, "Subject") == ["Subject: forwarded"]
    assert body == b"A body line.\n"
    assert maildir_new(inst, "bob") == []
    assert len([ln for ln in log_lines(queue)
                if ln.startswith("new msg ")]) == 2
    wait_queue_empty(inst)


# ---- 1.3 program deliveries ----


def test_program_exit_0_goes_on(inst, queue):
    home = home_of(inst, "bob")
    dotqmail(inst, "bob", "p0",
             '|echo "$SENDER $RECIPIENT $EXT $LOCAL" > "$HOME/p0.out"\n'
             "./Maildir/\n")
    original = message("exit 0", to="bob-p0@example.test")
    result = run_program(inst, ["qmail-inject"], original)
    assert result.returncode == 0, result.stderr
    wait_log(queue, r"delivery \d+: success: did_1\+0\+1/")
    (data,) = wait_mail(inst, "bob")
    assert data.startswith(delivered_prefix("alice@example.test",
                                            "bob-p0@example.test"))
    assert (home / "p0.out").read_text() == \
        "alice@example.test bob-p0@example.test p0 bob-p0\n"
    wait_queue_empty(inst)


def test_program_exit_99_stops_later_lines(inst, queue):
    home = home_of(inst, "bob")
    dotqmail(inst, "bob", "p99",
             '|echo first >> "$HOME/p99.log"; exit 99\n'
             '|echo later >> "$HOME/p99.log"\n'
             "./Maildir/\n")
    result = run_program(inst, ["qmail-inject"],
                         message("exit 99", to="bob-p99@example.test"))
    assert result.returncode == 0, result.stderr
    wait_log(queue, r"delivery \d+: success: did_0\+0\+1/")
    wait_log(queue, r"end msg \d+")
    assert (home / "p99.log").read_text() == "first\n"
    assert maildir_new(inst, "bob") == []
    assert maildir_new(inst, "alice") == []
    wait_queue_empty(inst)


def test_program_exit_100_bounces_to_a_local_sender(inst, queue):
    home = home_of(inst, "bob")
    dotqmail(inst, "bob", "p100",
             '|echo "no thanks"; exit 100\n'
             '|echo later >> "$HOME/p100.log"\n'
             "./Maildir/\n")
    result = run_program(inst, ["qmail-inject"],
                         message("exit 100", to="bob-p100@example.test"))
    assert result.returncode == 0, result.stderr
    m = wait_log(queue, r"delivery \d+: failure: (.*)")
    assert m.group(1) == "no_thanks/"
    wait_log(queue, r"bounce msg \d+ qp \d+")
    (data,) = wait_mail(inst, "alice")
    check_bounce(data, "alice@example.test", "bob-p100@example.test",
                 "no thanks\n", "exit 100")
    assert not (home / "p100.log").exists()
    assert maildir_new(inst, "bob") == []
    wait_queue_empty(inst)


def test_program_exit_111_defers_until_fixed(inst, queue):
    dotqmail(inst, "bob", "p111", '|echo "not now"; exit 111\n./Maildir/\n')
    result = run_program(inst, ["qmail-inject"],
                         message("exit 111", to="bob-p111@example.test"))
    assert result.returncode == 0, result.stderr
    wait_log(queue, r"delivery 1: deferral: not_now/")
    m = wait_log(queue, r"new msg (\d+)")
    msgid = int(m.group(1))
    # Still queued, the recipient not done.
    assert split_file(inst, "local", msgid).read_bytes() == \
        b"Tbob-p111@example.test\0"
    assert split_file(inst, "mess", msgid).is_file()
    assert maildir_new(inst, "bob") == []
    dotqmail(inst, "bob", "p111", "./Maildir/\n")
    os.kill(queue.proc.pid, signal.SIGALRM)
    wait_log(queue, r"delivery 2: success: did_1\+0\+0/")
    wait_log(queue, rf"end msg {msgid}")
    (data,) = wait_mail(inst, "bob")
    assert data.startswith(delivered_prefix("alice@example.test",
                                            "bob-p111@example.test"))
    assert maildir_new(inst, "alice") == []
    wait_queue_empty(inst)


# ---- 1.4 extensions and .qmail-default ----


def test_extension_and_default(inst, queue):
    home = home_of(inst, "demo")
    dotqmail(inst, "demo", "foo",
             '|echo "foo ${DEFAULT-unset} $EXT" >> "$HOME/ext.log"\n'
             "./Maildir/\n")
    dotqmail(inst, "demo", "default",
             '|echo "default $DEFAULT $EXT" >> "$HOME/ext.log"\n'
             "./Maildir/\n")
    for rcpt in ("demo-foo", "demo-anything", "demo-some-thing"):
        result = run_program(inst, ["qmail-inject"],
                             message(rcpt, to=f"{rcpt}@example.test"))
        assert result.returncode == 0, result.stderr
    found = wait_mail(inst, "demo", 3)
    dtlines = sorted(d.split(b"\n")[1] for d in found)
    assert dtlines == [b"Delivered-To: demo-anything@example.test",
                       b"Delivered-To: demo-foo@example.test",
                       b"Delivered-To: demo-some-thing@example.test"]
    assert sorted((home / "ext.log").read_text().splitlines()) == [
        "default anything anything",
        "default some-thing some-thing",
        "foo unset foo",
    ]
    wait_queue_empty(inst)


def test_extension_without_a_dotqmail_bounces(inst, queue):
    result = run_program(inst, ["qmail-inject"],
                         message("no ext", to="demo-nothere@example.test"))
    assert result.returncode == 0, result.stderr
    m = wait_log(queue, r"delivery \d+: failure: (.*)")
    assert m.group(1) == NO_MAILBOX.replace(" ", "_") + "/"
    (data,) = wait_mail(inst, "alice")
    check_bounce(data, "alice@example.test", "demo-nothere@example.test",
                 NO_MAILBOX + "\n", "no ext")
    assert maildir_new(inst, "demo") == []
    wait_queue_empty(inst)


# ---- 1.5 an address nobody has ----


def test_unknown_recipient_bounces_without_alias_default(inst, queue):
    """users/assign's "+" catch-all gives nobody-here to the alias home
    with ext nobody-here; with no .qmail file there for it, qmail-local
    bounces as qmail does."""
    assert not (home_of(inst, "alias") / ".qmail-default").exists()
    result = run_program(inst, ["qmail-inject"],
                         message("nobody", to="nobody-here@example.test"))
    assert result.returncode == 0, result.stderr
    m = wait_log(queue, r"delivery \d+: failure: (.*)")
    assert m.group(1) == NO_MAILBOX.replace(" ", "_") + "/"
    (data,) = wait_mail(inst, "alice")
    check_bounce(data, "alice@example.test", "nobody-here@example.test",
                 NO_MAILBOX + "\n", "nobody")
    assert maildir_new(inst, "alias") == []
    wait_queue_empty(inst)


def test_unknown_recipient_lands_in_alias_with_a_default(inst, queue):
    dotqmail(inst, "alias", "default", "./Maildir/\n")
    original = message("nobody", to="nobody-here@example.test")
    result = run_program(inst, ["qmail-inject"], original)
    assert result.returncode == 0, result.stderr
    (data,) = wait_mail(inst, "alias")
    assert data.startswith(delivered_prefix("alice@example.test",
                                            "nobody-here@example.test"))
    assert maildir_new(inst, "alice") == []
    wait_queue_empty(inst)
    assert [ln for ln in log_lines(queue) if "failure" in ln] == []


# ---- 1.6 qmail-ofmipd ----


def start_ofmipd(servers, inst, *args, **env):
    full = user_env(inst, **env)
    return servers.start([str(inst.path / "bin" / "qmail-ofmipd"), *args],
                         as_account=inst, env=full, name="qmail-ofmipd",
                         localname=ME)


def test_ofmipd_fixes_the_header(servers, inst, queue):
    inst.control("defaulthost", "dh.example.test\n")
    server = start_ofmipd(servers, inst)
    body = ("To: demo\n"
            "Bcc: bob@example.test\n"
            "Subject: from a client\n"
            "\n"
            "client body\n")
    with smtplib.SMTP("127.0.0.1", server.port, local_hostname="client.test",
                      timeout=IO_TIMEOUT) as client:
        refused = client.sendmail("alice@example.test",
                                  ["demo@example.test", "bob@example.test"],
                                  body)
        assert refused == {}
    (demo,) = wait_mail(inst, "demo")
    (bob,) = wait_mail(inst, "bob")
    for data, rcpt in ((demo, "demo"), (bob, "bob")):
        head = delivered_prefix("alice@example.test",
                                f"{rcpt}@example.test")
        assert data.startswith(head), data[:300]
        _, rest = split_queue_received(data[len(head):])
        first, _, rest = rest.partition(b"\n")
        m = re.fullmatch(rb"Received: \(qmail-ofmipd 127\.0\.0\.1\); (.*)",
                         first)
        assert m, first
        check_date(m.group(1).decode())
        lines, got = header_lines(rest)
        assert fields(lines, "To") == ["To: demo@dh.example.test"]
        assert fields(lines, "Bcc") == []
        assert fields(lines, "Subject") == ["Subject: from a client"]
        (date,) = fields(lines, "Date")
        check_date(date[len("Date: "):])
        (msgid,) = fields(lines, "Message-ID")
        assert re.fullmatch(r"Message-ID: <[^<>\s]+@example\.test>", msgid)
        assert got == b"client body\n"
    wait_queue_empty(inst)


def ofmipd_session(inst, logbook, *args, user=None):
    """qmail-ofmipd run directly as the account, on our pipes."""
    extra = {"TCPREMOTEIP": "127.0.0.1", "TCPLOCALIP": "127.0.0.1"}
    if user is not None:
        extra["AUTHUP_USER"] = user
    env = user_env(inst, **extra)
    argv = inst.as_account([str(inst.path / "bin" / "qmail-ofmipd"),
                            *args])
    return PipeSmtp(argv, env, inst.path, logbook, "qmail-ofmipd")


def queued_ids(inst):
    return sorted(int(f.split("/")[1]) for f in inst.queue_files()
                  if f.startswith("todo/"))


def test_ofmipd_after_authup_sender_policy(inst, qm_logbook):
    """With AUTHUP_USER, control/ofmipsenders says which envelope senders
    and From addresses the user may use. The queue is not running, so
    what was queued stays in todo/ to be looked at."""
    inst.control("ofmipsenders",
                 "# user:address or user:@domain\n"
                 "alice:alice@example.test\n"
                 "alice:@alice.example\n"
                 "bob:bob@example.test\n")
    s = ofmipd_session(inst, qm_logbook, user="alice")
    try:
        s.expect(ACCEPTED_235)
        # No EHLO: authup had it already.
        s.command("MAIL FROM:<bob@example.test>", BAD_SENDER)
        s.command("MAIL FROM:<someone@other.example>", BAD_SENDER)
        assert inst.queue_files() == []
        s.command("AUTH PLAIN AGFsaWNlAHNlY3JldA==", ALREADY)
        # The policy sees the sender after qualification.
        s.command("MAIL FROM:<alice>", "250 ok")
        s.command("RSET", "250 flushed")
        s.command("MAIL FROM:<alice@example.test>", "250 ok")
        s.command("RCPT TO:<demo@example.test>", "250 ok")
        s.data(b"From: Bob <bob@example.test>\nSubject: not mine\n\nx\n",
               BAD_FROM)
        assert inst.queue_files() == []
        s.command("MAIL FROM:<ALICE@Example.Test>", "250 ok")
        s.command("RCPT TO:<demo@example.test>", "250 ok")
        s.data(b"From: Alice <alice@example.test>\nSubject: mine\n\nok\n",
               "250 ok")
        assert len(queued_ids(inst)) == 1
        s.command("MAIL FROM:<other@alice.example>", "250 ok")
        s.command("RCPT TO:<demo@example.test>", "250 ok")
        s.data(b"From: other@alice.example\nSubject: my domain\n\nok\n",
               "250 ok")
        assert len(queued_ids(inst)) == 2
        assert s.quit() == 0
    finally:
        s.close()
    found = {}
    for msgid in queued_ids(inst):
        data = split_file(inst, "mess", msgid).read_bytes()
        _, rest = split_queue_received(data)
        # As the qmail AUTH patches write it: the user in place of the
        # ident answer, and ESMTPA.
        first, _, rest = rest.partition(b"\n")
        assert first == b"Received: from unknown (alice@127.0.0.1)", first
        second, _, rest = rest.partition(b"\n")
        m = re.fullmatch(rb"  by 127\.0\.0\.1 with ESMTPA; (.*)", second)
        assert m, second
        check_date(m.group(1).decode())
        lines, _ = header_lines(rest)
        (subject,) = fields(lines, "Subject")
        todo = inst.path / "queue" / "todo" / str(msgid)
        found[subject] = todo.read_bytes().split(b"\0", 2)[2]
    assert found == {
        "Subject: mine": b"FALICE@Example.Test\0Tdemo@example.test\0",
        "Subject: my domain": b"Fother@alice.example\0Tdemo@example.test\0",
    }


def test_ofmipd_after_authup_without_policy_accepts_all(inst, qm_logbook):
    assert not (inst.path / "control" / "ofmipsenders").exists()
    s = ofmipd_session(inst, qm_logbook, user="alice")
    try:
        s.expect(ACCEPTED_235)
        s.command("MAIL FROM:<bob@example.test>", "250 ok")
        s.command("RCPT TO:<demo@example.test>", "250 ok")
        s.data(b"From: Bob <bob@example.test>\nSubject: anyone\n\nok\n",
               "250 ok")
        s.command("AUTH LOGIN", ALREADY)
        assert s.quit() == 0
    finally:
        s.close()
    (msgid,) = queued_ids(inst)
    todo = (inst.path / "queue" / "todo" / str(msgid)).read_bytes()
    assert todo.endswith(b"\0Fbob@example.test\0Tdemo@example.test\0")


def test_ofmipd_exit_code_after_authup_never_111(inst, qm_logbook):
    """A broken control file: 421, and exit 0 (authup would take 111
    for a bad password)."""
    ctl = inst.path / "control" / "timeoutsmtpd"
    write_owned(inst, ctl, "not a number\n")
    s = ofmipd_session(inst, qm_logbook, user="alice")
    try:
        reply = s.reply()
        assert reply == ["421 unable to read controls (#4.3.0)"], reply
        assert s.proc.wait(timeout=IO_TIMEOUT) == 0
    finally:
        s.close()


def test_ofmipd_names_cdb(inst, queue, qm_logbook):
    names = inst.path / "ofmipnames.cdb"
    result = inst.run([str(inst.path / "bin" / "qmail-ofmipname"),
                       str(names)],
                      input=b"# sender:Name:address:\n"
                            b"alice@example.test:Alice Liddell:"
                            b"alice.liddell@example.test:\n")
    assert result.returncode == 0, result.stderr
    assert names.is_file()
    s = ofmipd_session(inst, qm_logbook, str(names))
    try:
        s.expect("220 example.test ESMTP")
        s.send("EHLO client.test\r\n")
        assert s.reply()[0] == "250-example.test"
        s.command("MAIL FROM:<alice@example.test>", "250 ok")
        s.command("RCPT TO:<demo@example.test>", "250 ok")
        # A folded From is replaced whole, continuation line included.
        s.data(b"From: someone else\n <alice@example.test>\n"
               b"To: demo@example.test\nSubject: named\n\nhello\n",
               "250 ok")
        # A sender without an entry is left as it is.
        s.command("MAIL FROM:<bob@example.test>", "250 ok")
        s.command("RCPT TO:<demo@example.test>", "250 ok")
        s.data(b"From: bob@example.test\nTo: demo@example.test\n"
               b"Subject: unnamed\n\nhello\n", "250 ok")
        assert s.quit() == 0
    finally:
        s.close()
    found = wait_mail(inst, "demo", 2)
    by_subject = {}
    for data in found:
        lines, _ = header_lines(data)
        (subject,) = fields(lines, "Subject")
        by_subject[subject] = (lines, data)
    lines, data = by_subject["Subject: named"]
    assert data.startswith(delivered_prefix("alice.liddell@example.test",
                                            "demo@example.test"))
    assert fields(lines, "From") == [
        "From: Alice Liddell <alice.liddell@example.test>"]
    assert [line for line in lines if "someone" in line or
            line.startswith((" ", "\t"))] == []
    lines, data = by_subject["Subject: unnamed"]
    assert data.startswith(delivered_prefix("bob@example.test",
                                            "demo@example.test"))
    assert fields(lines, "From") == ["From: bob@example.test"]
    wait_queue_empty(inst)


# ---- 1.7 sendmail -bs ----


def test_sendmail_bs_runs_an_smtp_session(inst, queue, qm_logbook):
    argv = inst.as_account([str(inst.path / "bin" / "sendmail"), "-bs"])
    s = PipeSmtp(argv, user_env(inst), inst.path, qm_logbook, "sendmail-bs")
    original = (b"From: alice@example.test\nTo: demo@example.test\n"
                b"Subject: over -bs\n\n.leading dot\nlast\n")
    try:
        s.expect("220 example.test ESMTP")
        s.command("HELO local.test", "250 example.test")
        s.command("MAIL FROM:<alice@example.test>", "250 ok")
        s.command("RCPT TO:<demo@example.test>", "250 ok")
        s.data(original, "250 ok")
        assert s.quit() == 0
    finally:
        s.close()
    (data,) = wait_mail(inst, "demo")
    head = delivered_prefix("alice@example.test", "demo@example.test")
    assert data.startswith(head), data[:300]
    _, rest = split_queue_received(data[len(head):])
    first, _, rest = rest.partition(b"\n")
    assert first == b"Received: from unknown (HELO local.test) (unknown)", \
        first
    # Without tcpserver there is no TCPLOCALHOST: qmail says "unknown".
    second, _, rest = rest.partition(b"\n")
    m = re.fullmatch(rb"  by unknown with SMTP; (.*)", second)
    assert m, second
    check_date(m.group(1).decode())
    assert rest == original
    wait_queue_empty(inst)


# ====================================================================
# Part 2: production mode, as root, with the classic accounts
# ====================================================================

PROD_HOST = "prod.test"
ROLE_GROUPS = ("qmail", "nofiles")
ROLE_USERS = {  # name: group
    "alias": "nofiles", "qmaild": "nofiles", "qmaill": "nofiles",
    "qmailp": "nofiles", "qmailq": "qmail", "qmailr": "qmail",
    "qmails": "qmail",
}
NOLOGIN = "/usr/sbin/nologin"


def production_skip_reason():
    if not is_root():
        return "production mode needs root"
    if not (os.environ.get("CI") or os.environ.get("QM_SYSTEM_TESTS") == "1"):
        return ("production mode changes the system's accounts: it runs "
                "only under CI or with QM_SYSTEM_TESTS=1")
    if not shutil.which("useradd") or not shutil.which("groupadd"):
        return "useradd and groupadd are needed"
    return None


def account_tool(argv, exists_ok=False):
    """Runs useradd, groupadd or userdel, trying again while another
    process (a concurrent test making an instance) holds the lock on
    /etc/passwd. With exists_ok, "already exists" (exit 9: another
    process made it first) is success."""

    def attempt():
        result = subprocess.run(argv, capture_output=True, timeout=60)
        if b"lock" in result.stderr and result.returncode != 0:
            return None
        return result

    result = wait_for(attempt, timeout=30, interval=0.1,
                      message=f"{argv[0]} to get the passwd lock")
    ok = result.returncode == 0 or (exists_ok and result.returncode == 9)
    assert ok, (argv, result.returncode, result.stderr)


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="module")
def role_accounts():
    """The classic accounts and groups, made when missing. They stay
    after the tests: a CI machine is thrown away, and a machine that
    had them keeps them unchanged."""
    reason = production_skip_reason()
    if reason:
        pytest.skip(reason)
    base = qmtest.make_public_tempdir("qm-roles-")
    try:
        for name in ROLE_GROUPS:
            if not group_exists(name):
                account_tool(["groupadd", "--system", name], exists_ok=True)
        for name, group in ROLE_USERS.items():
            if not user_exists(name):
                home = base / name if name == "alias" else "/nonexistent"
                account_tool(["useradd", "--system", "--no-create-home",
                              "--gid", group, "--home-dir", str(home),
                              "--shell", NOLOGIN, name], exists_ok=True)
        alias = pwd.getpwnam("alias")
        # Only an alias home made here may be written to; the alias of
        # a machine that had one is left alone.
        alias_ours = alias.pw_dir == str(base / "alias")
        if alias_ours:
            os.mkdir(alias.pw_dir, 0o755)
            os.chown(alias.pw_dir, alias.pw_uid, alias.pw_gid)
        yield types.SimpleNamespace(
            users={name: pwd.getpwnam(name) for name in ROLE_USERS},
            alias_ours=alias_ours)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def test_users(role_accounts):
    """Two ordinary users (qmtest1..., qmtest2..., with a random tail so
    that concurrent runs never share one) with homes they own, each with
    a Maildir; removed, with their homes, after each test."""
    base = qmtest.make_public_tempdir("qm-users-")
    tail = secrets.token_hex(3)
    made = {}
    try:
        for key in ("qmtest1", "qmtest2"):
            name = key + tail
            home = base / name
            account_tool(["useradd", "--no-create-home", "--user-group",
                          "--home-dir", str(home), "--shell", NOLOGIN,
                          name])
            entry = pwd.getpwnam(name)
            made[key] = entry
            home.mkdir(mode=0o755)
            for sub in ("Maildir", "Maildir/new", "Maildir/cur",
                        "Maildir/tmp"):
                (home / sub).mkdir(mode=0o700)
            for root, _, _ in os.walk(home):
                os.chown(root, entry.pw_uid, entry.pw_gid)
        yield made
    finally:
        for entry in made.values():
            # --user-group made a group of the same name; userdel
            # removes it with the user (USERGROUPS_ENAB).
            account_tool(["userdel", entry.pw_name])
        shutil.rmtree(base, ignore_errors=True)


class ProductionHome:
    """A qmail home laid out as /var/qmail with qmail's owners and
    modes, and no INSTANCE file; shaped enough like qmtest.Instance for
    queuectl.Queue, which then runs qmail-start as root."""

    def __init__(self, path, bindir, logbook):
        self.path = pathlib.Path(path)
        self.logbook = logbook
        shutil.copytree(bindir, self.path / "bin")
        self.path.chmod(0o755)
        (self.path / "bin").chmod(0o755)
        self._control()
        self._queue()
        (self.path / "users").mkdir(mode=0o755)

    def env(self):
        env = qmtest.program_env(self.path / "bin")
        env["QMAILHOME"] = str(self.path)
        return env

    def as_account(self, argv):
        return list(argv)

    def _control(self):
        control = self.path / "control"
        control.mkdir(mode=0o755)
        for name, text in (("me", PROD_HOST), ("locals", PROD_HOST),
                           ("defaultdelivery", "./Maildir/")):
            (control / name).write_text(text + "\n")
            (control / name).chmod(0o644)

    def _queue(self):
        q = self.path / "queue"
        qmailq = pwd.getpwnam("qmailq").pw_uid
        qmails = pwd.getpwnam("qmails").pw_uid
        qmailr = pwd.getpwnam("qmailr").pw_uid
        gid = grp.getgrnam("qmail").gr_gid

        def make(rel, mode, uid, kind="dir"):
            path = q / rel if rel else q
            if kind == "dir":
                path.mkdir()
            elif kind == "fifo":
                os.mkfifo(path)
            elif kind == "tcpto":
                path.write_bytes(b"\0" * 1024)
            else:
                path.write_bytes(b"")
            os.chown(path, uid, gid)
            os.chmod(path, mode)

        make("", 0o750, qmailq)
        for name in ("pid", "intd"):
            make(name, 0o700, qmailq)
        make("todo", 0o750, qmailq)
        make("mess", 0o750, qmailq)
        for name in ("info", "local", "remote"):
            make(name, 0o700, qmails)
        for n in range(SPLIT):
            make(f"mess/{n}", 0o750, qmailq)
            for name in ("info", "local", "remote"):
                make(f"{name}/{n}", 0o700, qmails)
        make("bounce", 0o700, qmails)
        make("lock", 0o750, qmailq)
        make("lock/sendmutex", 0o600, qmails, "file")
        make("lock/tcpto", 0o644, qmailr, "tcpto")
        make("lock/trigger", 0o622, qmails, "fifo")

    def qmail_queue(self, data, sender, rcpts):
        """Injects as root; returns qmail-queue's exit code."""
        env_bytes = b"F" + sender.encode() + b"\0" + b"".join(
            b"T" + r.encode() + b"\0" for r in rcpts) + b"\0"
        read_end, write_end = os.pipe()
        try:
            os.write(write_end, env_bytes)
        finally:
            os.close(write_end)
        try:
            proc = subprocess.Popen(
                [str(self.path / "bin" / "qmail-queue")], env=self.env(),
                cwd=self.path, stdin=subprocess.PIPE, stdout=read_end,
                stderr=subprocess.PIPE, start_new_session=True)
        finally:
            os.close(read_end)
        _, err = proc.communicate(data, timeout=30)
        assert proc.returncode == 0, err
        return proc.returncode

    def mess_ids(self):
        ids = []
        for sub in (self.path / "queue" / "mess").iterdir():
            ids += [int(e.name) for e in sub.iterdir()]
        return sorted(ids)

    def queue_files(self):
        return qmtest.Instance.queue_files(self)


@pytest.fixture
def prod_home(test_users, bindir, qm_logbook):
    path = qmtest.make_public_tempdir("qm-prod-")
    try:
        yield ProductionHome(path / "qmail", bindir, qm_logbook)
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def prod_queue(prod_home):
    q = Queue(prod_home, "./Maildir/")
    q.start()
    try:
        q.wait_started()
        yield q
    finally:
        stop_queue(q)


def proc_ids(pid):
    """(real uid, effective uid, real gid, [groups]) from /proc."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            found[name] = value.split()
    return (int(found["Uid"][0]), int(found["Uid"][1]),
            int(found["Gid"][0]), [int(g) for g in found["Groups"]])


def queue_roles(queue):
    """{program name: /proc ids} of the queue's long-running processes."""
    roles = {}
    for pid, cmd in queue.members():
        prog = os.path.basename(cmd.split(" ")[0]) if cmd else ""
        if prog in ("qmail-send", "qmail-lspawn", "qmail-rspawn",
                    "qmail-clean"):
            try:
                roles[prog] = proc_ids(pid)
            except OSError:
                pass
    return roles


def write_user_file(path, text, entry):
    path.write_text(text)
    path.chmod(0o644)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def make_user_maildir(path, entry):
    for sub in ("", "/new", "/cur", "/tmp"):
        os.mkdir(f"{path}{sub}", 0o700)
        os.chown(f"{path}{sub}", entry.pw_uid, entry.pw_gid)


def wait_one_file(folder, who):
    wait_for(lambda: list(folder.iterdir()), timeout=20,
             message=f"delivery to {who}")
    found = list(folder.iterdir())
    assert len(found) == 1, found
    return found[0]


def test_production_roles_and_owners(prod_home, prod_queue, test_users,
                                     role_accounts):
    assert not (prod_home.path / "INSTANCE").exists()
    roles = wait_for(lambda: (lambda r: r if len(r) == 4 else None)(
        queue_roles(prod_queue)), timeout=10,
        message="the four queue processes")
    qmail_gid = grp.getgrnam("qmail").gr_gid

    def role(name):
        entry = role_accounts.users[name]
        return (entry.pw_uid, entry.pw_uid, qmail_gid, [qmail_gid])

    assert roles["qmail-send"] == role("qmails")
    assert roles["qmail-clean"] == role("qmailq")
    assert roles["qmail-rspawn"] == role("qmailr")
    assert roles["qmail-lspawn"][:2] == (0, 0)

    one, two = test_users["qmtest1"], test_users["qmtest2"]
    home1, home2 = pathlib.Path(one.pw_dir), pathlib.Path(two.pw_dir)
    write_user_file(home1 / ".qmail",
                    '|id -u > "$HOME/delivered-as"\n./Maildir/\n', one)
    data = b"Subject: production\n\nto two users\n"
    rcpts = [f"{one.pw_name}@{PROD_HOST}", f"{two.pw_name}@{PROD_HOST}"]
    prod_home.qmail_queue(data, "someone@prod.test", rcpts)
    for home, user in ((home1, one), (home2, two)):
        path = wait_one_file(home / "Maildir" / "new", user.pw_name)
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)
        got = path.read_bytes()
        head = delivered_prefix("someone@prod.test",
                                f"{user.pw_name}@{PROD_HOST}")
        assert got.startswith(head), got[:300]
        uid, rest = split_queue_received(got[len(head):])
        assert uid == 0
        assert rest == data
    marker = home1 / "delivered-as"
    wait_for(lambda: marker.exists(), message="the program's file")
    assert marker.read_text() == f"{one.pw_uid}\n"
    assert os.stat(marker).st_uid == one.pw_uid
    assert not (home2 / "delivered-as").exists()
    wait_log(prod_queue, r"delivery \d+: success: did_1\+0\+1/")
    wait_log(prod_queue, r"delivery \d+: success: did_1\+0\+0/")
    wait_for(lambda: prod_home.queue_files() == [], timeout=20,
             message="an empty queue")
    # Still the same roles after the deliveries.
    roles = queue_roles(prod_queue)
    assert roles["qmail-send"] == role("qmails")
    assert roles["qmail-lspawn"][:2] == (0, 0)
    assert prod_queue.stop() == 0


def test_production_never_delivers_as_root(prod_home, test_users,
                                           role_accounts):
    """users/assign may name uid 0: qmail-lspawn must refuse it as a
    temporary failure, so the message waits in the queue. Through the
    passwd rules root never counts, and root's mail goes to alias."""
    one, two = test_users["qmtest1"], test_users["qmtest2"]
    assign = prod_home.path / "users" / "assign"
    assign.write_text("=rootbox:root:0:0:/root:::\n"
                      f"=toor:{one.pw_name}:0:0:{one.pw_dir}:::\n.\n")
    result = subprocess.run([str(prod_home.path / "bin" / "qmail-newu")],
                            env=prod_home.env(), cwd=prod_home.path,
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    alias = role_accounts.users["alias"]
    alias_ours = role_accounts.alias_ours
    rcpts = ["rootbox@prod.test", "toor@prod.test"]
    if alias_ours:
        write_user_file(pathlib.Path(alias.pw_dir) / ".qmail-root",
                        "./Maildir/\n", alias)
        make_user_maildir(pathlib.Path(alias.pw_dir) / "Maildir", alias)
        rcpts.append("root@prod.test")
    prod_home.qmail_queue(b"Subject: for root\n\nno\n", "x@prod.test",
                          rcpts)
    (msgid,) = prod_home.mess_ids()
    q = Queue(prod_home, "./Maildir/")
    q.start()
    try:
        q.wait_started()
        refused = r"deferral: Refusing_to_deliver_as_uid_0\._\(#4\.3\.0\)/"
        for rcpt in ("rootbox", "toor"):
            n = wait_log(q, rf"starting delivery (\d+): msg {msgid} to "
                         rf"local {rcpt}@prod\.test").group(1)
            wait_log(q, rf"delivery {n}: {refused}")
        if alias_ours:
            path = wait_one_file(pathlib.Path(alias.pw_dir) / "Maildir" /
                                 "new", "alias")
            st = os.stat(path)
            assert (st.st_uid, st.st_gid) == (alias.pw_uid, alias.pw_gid)
            assert path.read_bytes().startswith(delivered_prefix(
                "x@prod.test", "root@prod.test"))
            wait_log(q, r"delivery \d+: success: did_1\+0\+0/")
        local = prod_home.path / "queue" / "local" / str(msgid % SPLIT) \
            / str(msgid)
        wait_for(lambda: local.read_bytes().startswith(
            b"Trootbox@prod.test\0Ttoor@prod.test\0"), timeout=10,
            message="both uid 0 recipients still to do")
        assert [ln for ln in q.log_text().splitlines()
                if "failure" in ln] == []
        assert list((pathlib.Path(one.pw_dir) / "Maildir" / "new")
                    .iterdir()) == []
        assert not (pathlib.Path(one.pw_dir) / "delivered-as").exists()
        assert q.stop() == 0
    finally:
        q.close()
    assert prod_home.mess_ids() == [msgid]
