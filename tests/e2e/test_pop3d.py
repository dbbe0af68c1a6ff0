"""qmail-pop3d end to end: poplib and raw sockets against the real program
under tcpserver, in an instance Maildir, as the instance account.

Most tests put qmail-pop3d behind a tiny stand-in for qmail-authup that
the test writes itself (LOGIN_SCRIPT): it greets, answers USER, reads
PASS and execs qmail-pop3d in the mailbox home, so that qmail-pop3d's
first line answers PASS exactly as after a real login. The tests at the
end go through the real qmail-authup (and qmail-popup) with a test
checkpassword. Every test asserts the exact replies and what became of
the files: nothing may be deleted without QUIT, and nothing deleted by
QUIT may survive it.
"""

import os
import poplib
import socket
import subprocess
import time

import pytest

import qmtest
from qmtest import wait_for

HOST = "127.0.0.1"
BOX = "demo"
MB = 1024 * 1024

LOGIN_SCRIPT = """#!/bin/sh
# Test stand-in for qmail-authup: a greeting, USER and PASS accepted
# (the shell reads one byte at a time, so nothing of the next command is
# taken from qmail-pop3d), then qmail-pop3d answers PASS.
printf '+OK ready\\r\\n'
IFS= read -r line || exit 1
printf '+OK\\r\\n'
IFS= read -r line || exit 1
cd "$HOME" || exit 1
exec '{pop3d}' Maildir
"""

CHECKPASSWORD = """#!/usr/bin/python3
# Test checkpassword: any user with the password "secret" gets the
# mailbox home; anything else is a failed login (exit 1).
import os, sys
data = b""
while len(data) < 512:
    chunk = os.read(3, 512 - len(data))
    if not chunk:
        break
    data += chunk
fields = data.split(b"\\0")
if len(sys.argv) < 2 or len(fields) < 3:
    sys.exit(2)
if fields[1] != b"secret":
    sys.exit(1)
os.environ["USER"] = fields[0].decode()
os.environ["HOME"] = {home!r}
os.chdir({home!r})
os.execvp(sys.argv[1], sys.argv[1:])
"""


# ---- the mailbox ----


class Mailbox:
    """The demo Maildir of an instance, and messages put into it the way
    a delivery agent does (tmp/, then a rename into new/)."""

    def __init__(self, inst):
        self.inst = inst
        self.home = inst.path / "mail" / BOX
        self.maildir = inst.maildir(BOX)
        self.seq = 0

    def own(self, path):
        if qmtest.is_root():
            os.chown(path, self.inst.uid, self.inst.gid)

    def deliver(self, data, when=None, sub="new"):
        """Puts one message in; returns its file name."""
        self.seq += 1
        when = when or int(time.time())
        name = f"{when}.M{self.seq}P{os.getpid()}Q{self.seq}.example.test"
        tmp = self.maildir / "tmp" / name
        tmp.write_bytes(data)
        tmp.chmod(0o600)
        self.own(tmp)
        if sub == "cur":
            name += ":2,"
        os.rename(tmp, self.maildir / sub / name)
        return name

    def names(self, sub):
        return sorted(p.name for p in (self.maildir / sub).iterdir())

    def files(self):
        """{name: bytes} of cur/ and new/."""
        found = {}
        for sub in ("new", "cur"):
            for p in (self.maildir / sub).iterdir():
                found[f"{sub}/{p.name}"] = p.read_bytes()
        return found


@pytest.fixture
def box(instance):
    return Mailbox(instance)


def account_file(inst, path, text, mode=0o755):
    path.write_text(text)
    path.chmod(mode)
    if qmtest.is_root():
        os.chown(path, inst.uid, inst.gid)
    return str(path)


def pop3d_env(inst, home, **extra):
    env = inst.env()
    env["HOME"] = str(home)
    env.update(extra)
    return env


@pytest.fixture
def start(servers, instance, box, bindir):
    """start(**env) -> a server running the login stand-in and
    qmail-pop3d as the instance account; as_root=True runs it as root."""
    script = account_file(instance, instance.path / "pop3-login",
                          LOGIN_SCRIPT.format(pop3d=bindir / "qmail-pop3d"))

    def run(as_root=False, **extra):
        return servers.start([script], host=HOST,
                             as_account=None if as_root else instance,
                             env=pop3d_env(instance, box.home, **extra),
                             name="qmail-pop3d")

    return run


@pytest.fixture
def server(start):
    return start()


def login(server):
    pop = poplib.POP3(server.host, server.port, timeout=30)
    assert pop.getwelcome() == b"+OK ready"
    assert pop.user(BOX) == b"+OK"
    assert pop.pass_("anything") == b"+OK"
    return pop


class Raw:
    """A POP3 client that shows the exact bytes."""

    def __init__(self, server, login=True, timeout=30):
        self.sock = server.connect(timeout=timeout)
        self.file = self.sock.makefile("rb")
        if login:
            assert self.line() == b"+OK ready\r\n"
            assert self.cmd(b"USER demo") == b"+OK\r\n"
            assert self.cmd(b"PASS x") == b"+OK\r\n"

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        return self.file.readline(1 << 16)

    def cmd(self, command):
        self.send(command + b"\r\n")
        return self.line()

    def body(self):
        """The rest of a multi-line response, the final dot included."""
        parts = []
        while True:
            line = self.line()
            assert line, "connection closed inside a multi-line response"
            parts.append(line)
            if line == b".\r\n":
                return b"".join(parts)

    def multi(self, command):
        status = self.cmd(command)
        assert status.startswith(b"+OK"), status
        return status, self.body()

    def eof(self):
        """True when the server closed the connection (and sent nothing
        more)."""
        return self.file.read() == b""

    def close(self):
        self.file.close()
        self.sock.close()


def pop3d_pids(server):
    return [pid for pid, cmd in qmtest.session_members(server.proc.pid)
            if "qmail-pop3d" in cmd]


def wait_pop3d_gone(server):
    wait_for(lambda: not pop3d_pids(server), timeout=20,
             message="qmail-pop3d to exit")


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split()[1:]
    raise AssertionError(f"no {field} for {pid}")


# ---- the basic commands ----


# Three messages, in delivery order, and their sizes: 20, 21 and 30.
ONE = b"Subject: one\n\nfirst\n"
TWO = b"Subject: two\n\nsecond\n"
THREE = b"Subject: three\n\nthird message\n"
TOTAL = len(ONE) + len(TWO) + len(THREE)


def three_messages(box):
    """The three messages, delivered out of order; returns their names
    in delivery order."""
    b = box.deliver(TWO, when=1700000200)
    a = box.deliver(ONE, when=1700000100)
    c = box.deliver(THREE, when=1700000300)
    return [a, b, c]


def test_stat_list_uidl_in_delivery_order(server, box):
    names = three_messages(box)
    assert (len(ONE), len(TWO), len(THREE), TOTAL) == (20, 21, 30, 71)
    pop = login(server)
    assert pop.stat() == (3, 71)
    resp, lines, _ = pop.list()
    assert resp == b"+OK"
    assert lines == [b"1 20", b"2 21", b"3 30"]
    assert pop.list(2) == b"+OK 2 21"
    resp, lines, _ = pop.uidl()
    assert lines == [f"{i + 1} {n}".encode() for i, n in enumerate(names)]
    assert pop.uidl(3) == f"+OK 3 {names[2]}".encode()
    assert pop.quit() == b"+OK"
    # new/ went into cur/ with ":2," added, and nothing else changed.
    assert box.names("new") == []
    assert box.names("cur") == sorted(n + ":2," for n in names)


def test_empty_maildrop(server, box):
    pop = login(server)
    assert pop.stat() == (0, 0)
    assert pop.list()[1] == []
    assert pop.uidl()[1] == []
    assert pop.quit() == b"+OK"


def test_capa_noop_and_case(server, box):
    box.deliver(b"x\n")
    pop = login(server)
    assert pop.capa() == {"TOP": [], "UIDL": [], "PIPELINING": []}
    assert pop.noop() == b"+OK"
    assert pop._shortcmd("stat") == b"+OK 1 2"
    assert pop._shortcmd("NoOp") == b"+OK"
    pop.quit()


def test_retr_exact_bytes(server, box):
    dotted = (b"Subject: dots\n\n.leading dot\n..two dots\nmid.dot\n.\n"
              b"last line without newline")
    crlf = b"Subject: crlf\r\n\r\nalready CR LF\r\n.dot\r\n"
    empty = b""
    box.deliver(dotted, when=1)
    box.deliver(crlf, when=2)
    box.deliver(empty, when=3)
    raw = Raw(server)
    assert raw.multi(b"RETR 1") == (
        b"+OK\r\n",
        b"Subject: dots\r\n\r\n..leading dot\r\n...two dots\r\nmid.dot\r\n"
        b"..\r\nlast line without newline\r\n.\r\n")
    assert raw.multi(b"RETR 2")[1] == (
        b"Subject: crlf\r\n\r\nalready CR LF\r\n..dot\r\n.\r\n")
    assert raw.multi(b"RETR 3")[1] == b".\r\n"
    assert raw.cmd(b"QUIT") == b"+OK\r\n"
    assert raw.eof()
    # poplib undoes the stuffing: the lines are the message's own.
    pop = login(server)
    assert pop.retr(1)[1] == [b"Subject: dots", b"", b".leading dot",
                              b"..two dots", b"mid.dot", b".",
                              b"last line without newline"]
    pop.quit()


def test_top(server, box):
    box.deliver(b"From: a@example.test\nSubject: top\n\nb1\n.b2\nb3\n")
    box.deliver(b"Subject: no body at all\n")
    raw = Raw(server)
    head = b"From: a@example.test\r\nSubject: top\r\n\r\n"
    assert raw.multi(b"TOP 1 0")[1] == head + b".\r\n"
    assert raw.multi(b"TOP 1 2")[1] == head + b"b1\r\n..b2\r\n.\r\n"
    assert raw.multi(b"top 1 99")[1] == head + b"b1\r\n..b2\r\nb3\r\n.\r\n"
    assert (raw.multi(b"TOP 1 99999999999999999999999")[1]
            == head + b"b1\r\n..b2\r\nb3\r\n.\r\n")
    assert raw.multi(b"TOP 2 0")[1] == b"Subject: no body at all\r\n.\r\n"
    # TOP is not RETR: nothing becomes seen, LAST does not move.
    assert raw.cmd(b"LAST") == b"+OK 0\r\n"
    assert raw.cmd(b"QUIT") == b"+OK\r\n"
    assert all(name.endswith(":2,") for name in box.names("cur"))
    pop = login(server)
    assert pop.top(1, 1)[1] == [b"From: a@example.test", b"Subject: top",
                                b"", b"b1"]
    pop.quit()


# ---- UPDATE ----


def test_dele_then_quit_removes_and_marks_seen(server, box):
    names = three_messages(box)
    pop = login(server)
    assert pop.retr(2)[1] == [b"Subject: two", b"", b"second"]
    assert pop.dele(1) == b"+OK message 1 deleted"
    assert pop.stat() == (2, 51)
    assert pop.list()[1] == [b"2 21", b"3 30"]
    assert pop.uidl()[1] == [f"2 {names[1]}".encode(),
                             f"3 {names[2]}".encode()]
    assert pop.quit() == b"+OK"
    # Deleted gone; retrieved marked seen; the third untouched.
    assert box.names("cur") == [names[1] + ":2,S", names[2] + ":2,"]
    pop = login(server)
    assert pop.stat() == (2, 51)
    # The UIDL survives the flag change.
    assert pop.uidl(1) == f"+OK 1 {names[1]}".encode()
    pop.quit()


def test_dele_then_dropped_connection_deletes_nothing(server, box):
    names = three_messages(box)
    raw = Raw(server)
    assert raw.cmd(b"DELE 1") == b"+OK message 1 deleted\r\n"
    assert raw.cmd(b"DELE 2") == b"+OK message 2 deleted\r\n"
    assert raw.multi(b"RETR 3")[0] == b"+OK\r\n"
    raw.close()
    wait_pop3d_gone(server)
    assert box.names("cur") == sorted(n + ":2," for n in names)


def test_rset_undoes_dele(server, box):
    names = three_messages(box)
    pop = login(server)
    pop.dele(1)
    pop.dele(3)
    assert pop.stat() == (1, 21)
    assert pop.rset() == b"+OK"
    assert pop.stat() == (3, 71)
    assert pop.list()[1] == [b"1 20", b"2 21", b"3 30"]
    assert pop.dele(1) == b"+OK message 1 deleted"
    assert pop.quit() == b"+OK"
    assert box.names("cur") == [names[1] + ":2,", names[2] + ":2,"]


def test_last(server, box):
    three_messages(box)
    pop = login(server)
    assert pop._shortcmd("LAST") == b"+OK 0"
    pop.retr(2)
    assert pop._shortcmd("LAST") == b"+OK 2"
    pop.retr(1)
    assert pop._shortcmd("LAST") == b"+OK 2"
    pop.dele(3)
    assert pop._shortcmd("LAST") == b"+OK 3"
    pop.rset()
    assert pop._shortcmd("LAST") == b"+OK 0"
    pop.quit()
    # Messages 1 and 2 were retrieved: the next session starts at 2.
    pop = login(server)
    assert pop._shortcmd("LAST") == b"+OK 2"
    pop.quit()


# ---- other processes at work ----


def test_delivery_during_a_session(server, box):
    names = three_messages(box)
    pop = login(server)
    assert pop.stat() == (3, 71)
    late = box.deliver(b"Subject: late\n\nlate\n", when=1600000000)
    assert pop.stat() == (3, 71)
    assert pop.list()[1] == [b"1 20", b"2 21", b"3 30"]
    assert pop.retr(3)[1] == [b"Subject: three", b"", b"third message"]
    assert pop.dele(1) == b"+OK message 1 deleted"
    with pytest.raises(poplib.error_proto, match="no such message"):
        pop.retr(4)
    assert pop.quit() == b"+OK"
    # The late message waited in new/ for the next session, where its
    # (older) delivery time puts it first.
    assert box.names("new") == [late]
    pop = login(server)
    resp, lines, _ = pop.uidl()
    assert lines == [f"1 {late}".encode(), f"2 {names[1]}".encode(),
                     f"3 {names[2]}".encode()]
    assert pop.retr(1)[1] == [b"Subject: late", b"", b"late"]
    pop.quit()


def test_file_removed_or_renamed_during_a_session(server, box):
    names = three_messages(box)
    raw = Raw(server)
    assert raw.cmd(b"STAT") == b"+OK 3 71\r\n"
    cur = box.maildir / "cur"
    (cur / (names[0] + ":2,")).unlink()
    # Another reader sets a flag: the message is found again.
    os.rename(cur / (names[2] + ":2,"), cur / (names[2] + ":2,F"))
    assert raw.cmd(b"RETR 1") == b"-ERR message 1 is gone\r\n"
    assert raw.cmd(b"TOP 1 0") == b"-ERR message 1 is gone\r\n"
    assert (raw.multi(b"RETR 3")[1]
            == b"Subject: three\r\n\r\nthird message\r\n.\r\n")
    assert raw.multi(b"RETR 2")[0] == b"+OK\r\n"
    # The listing still shows the session's list.
    assert raw.cmd(b"STAT") == b"+OK 3 71\r\n"
    assert raw.cmd(b"DELE 1") == b"+OK message 1 deleted\r\n"
    assert raw.cmd(b"DELE 3") == b"+OK message 3 deleted\r\n"
    # A message already gone counts as deleted; the renamed one is
    # deleted under its new name.
    assert raw.cmd(b"QUIT") == b"+OK\r\n"
    assert raw.eof()
    assert box.names("cur") == [names[1] + ":2,S"]


def test_two_sessions_at_once(server, box):
    names = three_messages(box)
    one = login(server)
    two = login(server)
    assert one.stat() == two.stat() == (3, 71)
    one.dele(1)
    two.dele(1)
    two.dele(2)
    assert two.quit() == b"+OK"
    assert one.quit() == b"+OK"
    assert box.names("cur") == [names[2] + ":2,"]


# ---- bad input ----


def test_bad_commands(server, box):
    box.deliver(b"Subject: x\n\nx\n")
    raw = Raw(server)
    cases = [
        (b"FOO", b"-ERR unknown command\r\n"),
        (b"", b"-ERR unknown command\r\n"),
        (b"USER demo", b"-ERR unknown command\r\n"),
        (b"APOP demo 0123", b"-ERR unknown command\r\n"),
        (b"RETR", b"-ERR syntax error\r\n"),
        (b"RETR x", b"-ERR syntax error\r\n"),
        (b"RETR -1", b"-ERR syntax error\r\n"),
        (b"RETR 1 2", b"-ERR syntax error\r\n"),
        (b"TOP 1", b"-ERR syntax error\r\n"),
        (b"TOP 1 -1", b"-ERR syntax error\r\n"),
        (b"STAT 1", b"-ERR syntax error\r\n"),
        (b"RETR 0", b"-ERR no such message\r\n"),
        (b"RETR 2", b"-ERR no such message\r\n"),
        (b"LIST 2", b"-ERR no such message\r\n"),
        (b"UIDL 0", b"-ERR no such message\r\n"),
        (b"TOP 9 0", b"-ERR no such message\r\n"),
        (b"DELE 99999999999999999999999999", b"-ERR no such message\r\n"),
        (b"RETR 18446744073709551617", b"-ERR no such message\r\n"),
        (b"DELE 1", b"+OK message 1 deleted\r\n"),
        (b"DELE 1", b"-ERR message 1 already deleted\r\n"),
        (b"RETR 1", b"-ERR message 1 already deleted\r\n"),
        (b"LIST 1", b"-ERR message 1 already deleted\r\n"),
        (b"STAT", b"+OK 0 0\r\n"),
        (b"RSET", b"+OK\r\n"),
        (b"STAT", b"+OK 1 14\r\n"),
        (b"NOOP", b"+OK\r\n"),
    ]
    for command, reply in cases:
        assert raw.cmd(command) == reply, command
    # Over-long lines are refused and skipped to their end; the session
    # goes on.
    assert raw.cmd(b"NOOP " + b"x" * 600) == b"-ERR line too long\r\n"
    assert raw.cmd(b"RETR 1" + b" " * 5000) == b"-ERR line too long\r\n"
    assert raw.cmd(b"X" * 100000) == b"-ERR line too long\r\n"
    assert raw.cmd(b"NOOP" + b" " * 506) == b"+OK\r\n"  # 512 with CR LF
    assert raw.cmd(b"NOOP" + b" " * 507) == b"-ERR line too long\r\n"
    # A bare LF ends a line too, and a NUL byte is no command.
    raw.send(b"NOOP\n")
    assert raw.line() == b"+OK\r\n"
    assert raw.cmd(b"NO\0OP") == b"-ERR unknown command\r\n"
    assert raw.cmd(b"QUIT") == b"+OK\r\n"
    assert raw.eof()
    assert len(box.names("cur")) == 1


def test_too_many_errors_end_the_session(server, box):
    name = box.deliver(b"Subject: x\n\nx\n")
    raw = Raw(server)
    assert raw.cmd(b"DELE 1") == b"+OK message 1 deleted\r\n"
    for _ in range(19):
        assert raw.cmd(b"BOGUS") == b"-ERR unknown command\r\n"
    assert raw.cmd(b"BOGUS") == b"-ERR too many errors\r\n"
    assert raw.eof()
    wait_pop3d_gone(server)
    assert box.names("cur") == [name + ":2,"]
    assert "too many errors" in server.log_text()


def test_pipelined_commands(server, box):
    three_messages(box)
    raw = Raw(server)
    raw.send(b"STAT\r\nLIST 1\r\nTOP 2 0\r\nDELE 3\r\nSTAT\r\nNOOP\r\n")
    assert raw.line() == b"+OK 3 71\r\n"
    assert raw.line() == b"+OK 1 20\r\n"
    assert raw.line() == b"+OK\r\n"
    assert raw.body() == b"Subject: two\r\n\r\n.\r\n"
    assert raw.line() == b"+OK message 3 deleted\r\n"
    assert raw.line() == b"+OK 2 41\r\n"
    assert raw.line() == b"+OK\r\n"
    raw.close()


def test_pipelined_replies_do_not_wait_for_an_unfinished_line(server, box):
    """Replies to the commands read so far go out while the next line is
    still on its way: a client may wait for them before it ends it. (The
    server's timeout is far longer than this client's 5 seconds.)"""
    three_messages(box)
    raw = Raw(server, timeout=5)
    raw.send(b"STAT\r\nNOOP\r\nST")
    assert raw.line() == b"+OK 3 71\r\n"
    assert raw.line() == b"+OK\r\n"
    raw.send(b"AT\r\n")
    assert raw.line() == b"+OK 3 71\r\n"
    raw.close()


def test_timeout_ends_the_session_without_update(start, box):
    name = box.deliver(b"Subject: x\n\nx\n")
    server = start(TIMEOUT="1")
    raw = Raw(server)
    assert raw.cmd(b"DELE 1") == b"+OK message 1 deleted\r\n"
    began = time.monotonic()
    assert raw.eof()  # closed without a reply
    assert time.monotonic() - began < 10
    wait_pop3d_gone(server)
    assert box.names("cur") == [name + ":2,"]
    assert "timeout" in server.log_text()


def test_trickled_command_hits_the_timeout(start, box):
    """One byte a second never trips a 2-second read timeout, but a
    whole command line must arrive within it."""
    name = box.deliver(b"Subject: x\n\nx\n")
    server = start(TIMEOUT="2")
    raw = Raw(server)
    assert raw.cmd(b"DELE 1") == b"+OK message 1 deleted\r\n"
    began = time.monotonic()
    closed = False
    for byte in b"NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP":
        try:
            raw.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(1)
        if not pop3d_pids(server):
            closed = True
            break
    assert closed and time.monotonic() - began < 20
    # A byte sent just before the server's close arrives unread, and the
    # kernel answers it with a reset: that is a close as well.
    try:
        assert raw.eof()
    except ConnectionResetError:
        pass
    assert box.names("cur") == [name + ":2,"]  # no UPDATE state
    assert "timeout" in server.log_text()


def test_bad_timeout_falls_back(start, box):
    box.deliver(b"x\n")
    server = start(TIMEOUT="soon")
    pop = login(server)
    assert pop.stat() == (1, 2)
    pop.quit()
    assert "ignoring TIMEOUT=soon" in server.log_text()


def test_missing_maildir(server, box):
    os.rename(box.maildir / "cur", box.maildir / "cur.away")
    raw = Raw(server, login=False)
    assert raw.line() == b"+OK ready\r\n"
    assert raw.cmd(b"USER demo") == b"+OK\r\n"
    assert raw.cmd(b"PASS x") == b"-ERR unable to open the maildir\r\n"
    assert raw.eof()
    assert "unable to open" in server.log_text()


# ---- who it runs as ----


@pytest.mark.skipif(not qmtest.is_root(), reason="needs root")
def test_refuses_to_run_as_root(instance, box, bindir, start):
    name = box.deliver(b"Subject: x\n\nx\n")
    # Directly: exit 1, a diagnostic, and not a byte to the client.
    result = subprocess.run([str(bindir / "qmail-pop3d"), "Maildir"],
                            cwd=box.home, input=b"STAT\r\nQUIT\r\n",
                            capture_output=True, timeout=30,
                            env=pop3d_env(instance, box.home))
    assert result.returncode == 1
    assert result.stdout == b""
    assert b"refusing to run as root" in result.stderr
    # Under tcpserver without -u/-g: PASS gets no answer at all.
    server = start(as_root=True)
    raw = Raw(server, login=False)
    assert raw.line() == b"+OK ready\r\n"
    assert raw.cmd(b"USER demo") == b"+OK\r\n"
    raw.send(b"PASS x\r\n")
    assert raw.eof()
    assert "refusing to run as root" in server.log_text()
    # The Maildir was not touched.
    assert box.names("new") == [name]
    assert box.names("cur") == []


@pytest.mark.skipif(not qmtest.is_root(), reason="needs root")
def test_runs_as_the_maildir_owner(server, instance, box):
    box.deliver(b"Subject: x\n\nx\n")
    raw = Raw(server)
    assert raw.cmd(b"STAT") == b"+OK 1 14\r\n"
    pids = pop3d_pids(server)
    assert len(pids) == 1
    uids = proc_status(pids[0], "Uid")
    gids = proc_status(pids[0], "Gid")
    assert {int(u) for u in uids} == {instance.uid}
    assert {int(g) for g in gids} == {instance.gid}
    assert raw.multi(b"RETR 1")[0] == b"+OK\r\n"
    assert raw.cmd(b"QUIT") == b"+OK\r\n"
    [seen] = (box.maildir / "cur").iterdir()
    assert seen.name.endswith(":2,S")
    assert seen.stat().st_uid == instance.uid


# ---- memory ----


def test_twenty_megabytes_with_a_small_peak(server, box):
    line = b"." + b"0123456789" * 9 + b"\n"  # 92 bytes, every one stuffed
    count = 20 * MB // len(line) + 1
    message = b"Subject: big\n\n" + line * count
    box.deliver(message)
    want_size = (len(b"Subject: big\r\n\r\n")
                 + count * (len(line) + 2) + len(b".\r\n"))
    raw = Raw(server)
    assert raw.cmd(b"LIST 1") == f"+OK 1 {len(message)}\r\n".encode()
    [pid] = pop3d_pids(server)
    before = int(proc_status(pid, "VmHWM")[0])
    assert raw.cmd(b"RETR 1") == b"+OK\r\n"
    got = 0
    lines = 0
    stuffed = b".." + line[1:-1] + b"\r\n"
    while True:
        data = raw.line()
        assert data, "connection closed during RETR"
        got += len(data)
        if data == b".\r\n":
            break
        lines += 1
        if lines > 2:
            assert data == stuffed
    assert got == want_size
    after = int(proc_status(pid, "VmHWM")[0])
    # kB: a peak that grew by less than 2 MB while 20 MB went through.
    assert after - before < 2048, (before, after)
    assert after < 16 * 1024, after
    assert raw.cmd(b"QUIT") == b"+OK\r\n"


# ---- through the real login programs ----


def authup_available(bindir):
    return (bindir / "qmail-authup").is_file()


@pytest.fixture
def checkpassword(instance, box):
    return account_file(instance, instance.path / "test-checkpassword",
                        CHECKPASSWORD.format(home=str(box.home)))


def start_authup(servers, instance, argv, as_root=False):
    return servers.start(argv, host=HOST,
                         as_account=None if as_root else instance,
                         env=instance.env(), name=os.path.basename(argv[0]))


def test_through_qmail_authup(servers, instance, box, bindir,
                              checkpassword):
    if not authup_available(bindir):
        pytest.skip("qmail-authup is not built")
    names = three_messages(box)
    server = start_authup(servers, instance,
                          [str(bindir / "qmail-authup"), "pop3",
                           checkpassword, str(bindir / "qmail-pop3d"),
                           "Maildir"])
    pop = poplib.POP3(HOST, server.port, timeout=30)
    assert pop.getwelcome().startswith(b"+OK <")
    assert pop.user(BOX) == b"+OK"
    assert pop.pass_("secret") == b"+OK"
    assert pop.stat() == (3, 71)
    assert pop.capa() == {"TOP": [], "UIDL": [], "PIPELINING": []}
    assert pop.retr(1)[1] == [b"Subject: one", b"", b"first"]
    assert pop.dele(2) == b"+OK message 2 deleted"
    assert pop.quit() == b"+OK"
    assert box.names("cur") == [names[0] + ":2,S", names[2] + ":2,"]
    # A wrong password never reaches qmail-pop3d.
    pop = poplib.POP3(HOST, server.port, timeout=30)
    pop.user(BOX)
    with pytest.raises(poplib.error_proto, match="-ERR"):
        pop.pass_("wrong")
    pop.close()
    assert len(box.names("cur")) == 2


def test_through_qmail_popup(servers, instance, box, bindir, checkpassword):
    if not authup_available(bindir):
        pytest.skip("qmail-authup is not built")
    box.deliver(ONE)
    server = start_authup(servers, instance,
                          [str(bindir / "qmail-popup"), "ignored.example",
                           checkpassword, str(bindir / "qmail-pop3d"),
                           "Maildir"])
    pop = poplib.POP3(HOST, server.port, timeout=30)
    assert b"ignored.example" not in pop.getwelcome()
    assert pop.getwelcome().startswith(b"+OK <")
    pop.user(BOX)
    assert pop.pass_("secret") == b"+OK"
    assert pop.stat() == (1, 20)
    pop.quit()


@pytest.mark.skipif(not qmtest.is_root(), reason="needs root")
def test_root_through_qmail_authup_is_a_failed_login(servers, instance, box,
                                                     bindir, checkpassword):
    if not authup_available(bindir):
        pytest.skip("qmail-authup is not built")
    name = box.deliver(b"Subject: x\n\nx\n")
    # The test checkpassword does not change the uid: qmail-pop3d starts
    # as root, refuses, and qmail-authup reports a failed login.
    server = start_authup(servers, instance,
                          [str(bindir / "qmail-authup"), "pop3",
                           checkpassword, str(bindir / "qmail-pop3d"),
                           "Maildir"], as_root=True)
    pop = poplib.POP3(HOST, server.port, timeout=30)
    pop.user(BOX)
    with pytest.raises(poplib.error_proto,
                       match=r"^b.-ERR authorization failed.$"):
        pop.pass_("secret")
    pop.close()
    assert "refusing to run as root" in server.log_text()
    assert box.names("new") == [name]


def test_popup_usage(bindir):
    result = subprocess.run([str(bindir / "qmail-popup"), "host.only"],
                            capture_output=True, timeout=30)
    assert result.returncode == 100
    assert b"usage" in result.stderr
    assert result.stdout == b""
