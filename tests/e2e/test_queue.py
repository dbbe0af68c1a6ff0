"""End-to-end tests of the queue: qmail-queue, qmail-send and its helpers
(qmail-start, qmail-clean, qmail-lspawn, qmail-rspawn), run as a whole
in an instance, with fake_remote.py standing in for qmail-remote.

Every test checks exact results (queue files, log lines, delivered bytes,
bounce text) against spec/queue.md and qmail's documented behaviour. A
test must never leave a process behind: each queue runs in its own
session, which the fixture kills and checks at teardown. Waiting is done
only with bounded polls (qmtest.wait_for), never with bare sleeps, except
where the test is about time passing (queuelifetime).
"""

import email.utils
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time

import pytest

import qmtest
from qmtest import is_root, wait_for

HERE = pathlib.Path(__file__).resolve().parent
SPLIT = qmtest.SPLIT
ME = "example.test"
MESSAGE = (b"From: Sender <sender@origin.test>\n"
           b"To: someone\n"
           b"Subject: queue test\n"
           b"\n"
           b"Hello from the queue tests.\n"
           b"A second line.\n")
# What qmail-remote prints for a recipient it refused (qmail-remote(8)).
HARD_TEXT = ("192.0.2.1 does not like recipient.\n"
             "Remote host said: 550 5.1.1 no such user\n")
SOFT_TEXT = ("192.0.2.1 does not like recipient.\n"
             "Remote host said: 451 4.3.0 try again later\n")
ACCEPTED = ["r", "K192.0.2.1 accepted message.\nRemote host said: 250 ok\n"]
ACCEPTED_LOG = "192.0.2.1_accepted_message./Remote_host_said:_250_ok/"
HARD = ["h" + HARD_TEXT, "DGiving up on 192.0.2.1.\n"]
SOFT = ["s" + SOFT_TEXT, "ZGiving up on 192.0.2.1.\n"]
RECEIVED_RE = re.compile(
    rb"Received: \(qmail (\d+) invoked by uid (\d+)\); ([^\n]*)\n")
TOO_LONG = ("I'm not going to try again; this message has been in the "
            "queue too long.")


def envelope(sender, rcpts):
    """The envelope qmail-queue reads on fd 1."""
    data = b"F" + sender.encode() + b"\0"
    for rcpt in rcpts:
        data += b"T" + rcpt.encode() + b"\0"
    return data + b"\0"


def address_of_length(n, domain="remote.test"):
    tail = "@" + domain
    return "x" * (n - len(tail)) + tail


# ---- an instance with its own bin/ ----


class PrivateInstance(qmtest.Instance):
    """An instance whose bin/ is a private copy (qmail-instance without
    -b), so that a test may put its own qmail-remote there."""

    def install_argv(self):
        argv = super().install_argv()
        at = argv.index("-b")
        return argv[:at] + argv[at + 2:]


class QueueRun:
    """One run of qmail-start (which execs qmail-send) in its own session,
    as the instance account, its log in a file of the test's logbook."""

    START_TIMEOUT = 15

    def __init__(self, inst, logbook, args):
        self.inst = inst
        self.log_path = logbook.new("qmail-send")
        argv = inst.as_account([str(inst.path / "bin" / "qmail-start"),
                                *args])
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv, env=inst.env(), cwd=inst.path,
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        self.sid = self.proc.pid
        wait_for(lambda: self.proc.poll() is not None
                 or "status:" in self.text(), timeout=self.START_TIMEOUT,
                 message="qmail-send to log its first status")
        assert self.proc.poll() is None, \
            f"qmail-start exited {self.proc.returncode}:\n{self.text()}"

    def text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def lines(self):
        return self.text().splitlines()

    def wait_line(self, line, timeout=15):
        """Waits until the log holds exactly this line."""
        wait_for(lambda: line in self.lines(), timeout=timeout,
                 message=f"log line {line!r}")

    def wait_match(self, pattern, timeout=15):
        """Waits for a line matching pattern; returns the match."""
        regex = re.compile(pattern)

        def find():
            for line in self.lines():
                m = regex.fullmatch(line)
                if m:
                    return m
            return None

        return wait_for(find, timeout=timeout,
                        message=f"a log line matching {pattern!r}")

    def send_signal(self, sig):
        os.kill(self.proc.pid, sig)

    def session_left(self):
        return qmtest.session_members(self.sid)

    def wait_exit(self, timeout=20):
        """Waits for qmail-send and then every process of its session."""
        rc = self.proc.wait(timeout=timeout)
        wait_for(lambda: not self.session_left(), timeout=timeout,
                 message="the queue's helpers to exit")
        return rc

    def stop(self, timeout=20):
        """SIGTERM to qmail-send; returns its exit code once the whole
        session is gone."""
        self.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self):
        """Kills the session; returns the processes that survived."""
        qmtest.kill_group(self.sid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 5
        left = self.session_left()
        while left and time.monotonic() < deadline:
            for pid, _ in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
            left = self.session_left()
        return left


class Mta:
    """The world of one test: a private instance, the fake qmail-remote
    in its bin/, and the queue runs started on it."""

    def __init__(self, inst, logbook):
        self.inst = inst
        self.logbook = logbook
        self.queue = inst.path / "queue"
        self.fake = inst.path / "fake-remote"
        self.runs = []
        self._install_fake()

    # -- files owned by the account --

    def own(self, path):
        if is_root():
            os.chown(path, self.inst.uid, self.inst.gid)

    def write_owned(self, path, data, mode=0o644):
        path = pathlib.Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_bytes(data if isinstance(data, bytes) else data.encode())
        tmp.chmod(mode)
        self.own(tmp)
        os.replace(tmp, path)

    # -- the fake qmail-remote --

    def _install_fake(self):
        for sub in ("", "started", "done", "gates"):
            (self.fake / sub).mkdir(exist_ok=True)
            self.own(self.fake / sub)
        target = self.inst.path / "bin" / "qmail-remote"
        assert not (self.inst.path / "bin").is_symlink()
        shutil.copyfile(HERE / "fake_remote.py", target)
        target.chmod(0o755)
        self.own(target)
        self.configure()

    def configure(self, default=None, rcpts=None):
        """What the fake reports: a rule per recipient, and a default."""
        config = {"default": default or {"reports": ACCEPTED},
                  "rcpts": rcpts or {}}
        self.write_owned(self.fake / "config.json", json.dumps(config))

    def open_gate(self, name):
        self.write_owned(self.fake / "gates" / name, b"")

    def _records(self, sub):
        found = []
        for path in sorted((self.fake / sub).glob("*.json")):
            record = json.loads(path.read_text())
            if sub == "done":
                record["message"] = path.with_suffix(".msg").read_bytes()
            found.append(record)
        return found

    def remote_calls(self):
        """The finished calls, in order: argv, message, reports."""
        return self._records("done")

    def remote_started(self):
        return self._records("started")

    def fake_state(self):
        try:
            return json.loads((self.fake / "state.json").read_text())
        except FileNotFoundError:
            return {"calls": 0, "running": 0, "max_running": 0}

    # -- the queue --

    def start(self, *args):
        run = QueueRun(self.inst, self.logbook, args or ("./Maildir/",))
        self.runs.append(run)
        return run

    def qmail_queue(self, message, env_bytes, stdin=None, stdout=None):
        """Runs qmail-queue as the account: message bytes on fd 0 (or the
        given fd), env_bytes written into a pipe on fd 1 (or the given
        fd). Returns (exit code, pid, stderr)."""
        read_end = None
        if stdout is None:
            assert len(env_bytes) < 60000, "the pipe would fill"
            read_end, write_end = os.pipe()
            try:
                view = memoryview(env_bytes)
                while view:
                    view = view[os.write(write_end, view):]
            finally:
                os.close(write_end)
            stdout = read_end
        argv = self.inst.as_account([str(self.inst.path / "bin" /
                                         "qmail-queue")])
        try:
            proc = subprocess.Popen(
                argv, env=self.inst.env(), cwd=self.inst.path,
                stdin=subprocess.PIPE if stdin is None else stdin,
                stdout=stdout, stderr=subprocess.PIPE,
                start_new_session=True)
        finally:
            if read_end is not None:
                os.close(read_end)
        try:
            _, err = proc.communicate(message if stdin is None else None,
                                      timeout=30)
        except subprocess.TimeoutExpired:
            qmtest.kill_group(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        log = self.logbook.new("run-qmail-queue")
        log.write_bytes(f"argv: {argv!r}\nexit: {proc.returncode}\n"
                        "stderr:\n".encode() + err)
        return proc.returncode, proc.pid, err

    def inject(self, sender, rcpts, message=MESSAGE):
        """Queues a message; returns its id (the one new mess file)."""
        before = set(self.mess_ids())
        rc, _, err = self.qmail_queue(message, envelope(sender, rcpts))
        assert rc == 0, err
        new = set(self.mess_ids()) - before
        assert len(new) == 1, new
        return new.pop()

    def mess_ids(self):
        ids = []
        for sub in (self.queue / "mess").iterdir():
            ids += [int(entry.name) for entry in sub.iterdir()]
        return sorted(ids)

    def split_file(self, directory, msgid):
        return self.queue / directory / str(msgid % SPLIT) / str(msgid)

    def queue_files(self):
        return self.inst.queue_files()

    def wait_queue_empty(self, timeout=15):
        wait_for(lambda: self.queue_files() == [], timeout=timeout,
                 message="an empty queue")

    # -- mailboxes --

    def maildir_new(self, box):
        folder = self.inst.maildir(box) / "new"
        return [p.read_bytes() for p in sorted(folder.iterdir())]

    def teardown(self):
        return [left for run in self.runs for left in run.kill()]


@pytest.fixture
def private_instance(bindir, qm_logbook):
    path = qmtest.make_public_tempdir("qm-inst-")
    inst = PrivateInstance(path, bindir, ME, ("demo", "alice", "bob"),
                           qm_logbook)
    try:
        result = inst.install()
        if result.returncode != 0:
            pytest.fail(f"qmail-instance failed ({result.returncode}): "
                        f"{result.stderr.decode(errors='replace')}",
                        pytrace=False)
        yield inst
    finally:
        inst.remove()


@pytest.fixture
def mta(private_instance, qm_logbook):
    world = Mta(private_instance, qm_logbook)
    yield world
    survivors = world.teardown()
    if survivors:
        pytest.fail(f"queue processes survived SIGKILL: {survivors!r}",
                    pytrace=False)


# ---- checks shared by tests ----


def check_received(data, uid):
    """Splits a queued message into its Received line's (pid, uid) and
    the rest, after checking the line's form and date."""
    m = RECEIVED_RE.match(data)
    assert m, data[:200]
    assert int(m.group(2)) == uid
    when = email.utils.parsedate_to_datetime(m.group(3).decode())
    assert when.utcoffset() is not None
    assert abs(when.timestamp() - time.time()) < 300, m.group(3)
    return int(m.group(1)), data[m.end():]


def in_order(lines, wanted):
    """True when every line of wanted occurs in lines, in that order."""
    it = iter(lines)
    return all(any(line == w for line in it) for w in wanted)


def split_bounce(data):
    """A bounce as queued: (header lines, body)."""
    head, sep, body = data.partition(b"\n\n")
    assert sep, data
    return head.decode().split("\n"), body.decode()


def assert_queue_untouched(mta):
    """Nothing at all left in the queue by a refused injection."""
    assert mta.queue_files() == []
    for name in ("pid", "intd", "todo"):
        assert os.listdir(mta.queue / name) == [], name
    for sub in (mta.queue / "mess").iterdir():
        assert os.listdir(sub) == [], sub


def lines_starting(run, prefix):
    return [line for line in run.lines() if line.startswith(prefix)]


# ---- 1. qmail-queue ----


def test_qmail_queue_queues_a_message(mta):
    rc, pid, err = mta.qmail_queue(
        MESSAGE, envelope("sender@origin.test",
                          ["far@remote.test", "demo@example.test"]))
    assert rc == 0, err
    assert err == b""
    (msgid,) = mta.mess_ids()
    mess = mta.split_file("mess", msgid)
    assert mess.is_file()
    assert os.stat(mess).st_ino == msgid
    todo = mta.queue / "todo" / str(msgid)
    intd = mta.queue / "intd" / str(msgid)
    uid = mta.inst.uid
    expected = (f"u{uid}\0p{pid}\0Fsender@origin.test\0Tfar@remote.test\0"
                f"Tdemo@example.test\0").encode()
    assert todo.read_bytes() == expected
    assert intd.read_bytes() == expected
    assert os.stat(todo).st_ino == os.stat(intd).st_ino
    qp, rest = check_received(mess.read_bytes(), uid)
    assert qp == pid
    assert rest == MESSAGE
    assert os.stat(mess).st_uid == uid
    assert mta.queue_files() == sorted([
        f"intd/{msgid}", f"mess/{msgid % SPLIT}/{msgid}", f"todo/{msgid}"])


def test_qmail_queue_copies_message_bytes_exactly(mta):
    # No final newline, NULs, 8-bit bytes, and more than one pipe's worth.
    body = bytes(range(256)) * 600 + b"\r\nlast line without newline"
    rc, _, err = mta.qmail_queue(body, envelope("", ["a@remote.test"]))
    assert rc == 0, err
    (msgid,) = mta.mess_ids()
    _, rest = check_received(mta.split_file("mess", msgid).read_bytes(),
                             mta.inst.uid)
    assert rest == body


@pytest.mark.parametrize("where", ["sender", "recipient"])
@pytest.mark.parametrize("length,code", [(1002, 0), (1003, 11), (5000, 11)])
def test_qmail_queue_address_length_limit(mta, where, length, code):
    long = address_of_length(length)
    assert len(long) == length
    if where == "sender":
        env_bytes = envelope(long, ["a@remote.test"])
    else:
        env_bytes = envelope("s@origin.test", ["a@remote.test", long])
    rc, _, err = mta.qmail_queue(MESSAGE, env_bytes)
    assert rc == code, err
    if code:
        assert_queue_untouched(mta)
    else:
        (msgid,) = mta.mess_ids()
        todo = (mta.queue / "todo" / str(msgid)).read_bytes()
        assert todo.endswith(env_bytes[:-1])


MALFORMED = {
    "empty": b"",
    "only the terminator": b"\0",
    "recipient first": b"Ta@remote.test\0\0",
    "no recipients": b"Fs@origin.test\0\0",
    "no final NUL": b"Fs@origin.test\0Ta@remote.test\0",
    "unterminated record": b"Fs@origin.test\0Ta@remote.test",
    "unterminated sender": b"Fs@origin.test",
    "unknown record": b"Fs@origin.test\0Ta@remote.test\0Xb@remote.test\0\0",
    "two senders": b"Fs@origin.test\0Fs2@origin.test\0Ta@remote.test\0\0",
}


@pytest.mark.parametrize("env_bytes", MALFORMED.values(), ids=MALFORMED)
def test_qmail_queue_refuses_malformed_envelope(mta, env_bytes):
    rc, _, err = mta.qmail_queue(MESSAGE, env_bytes)
    assert rc == 91, err
    assert_queue_untouched(mta)


def test_qmail_queue_unreadable_envelope(mta):
    read_end, write_end = os.pipe()
    try:
        # fd 1 open for writing only: reading the envelope fails.
        rc, _, err = mta.qmail_queue(MESSAGE, b"", stdout=write_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert rc == 54, err
    assert_queue_untouched(mta)


def test_qmail_queue_unreadable_message(mta):
    read_end, write_end = os.pipe()
    try:
        rc, _, err = mta.qmail_queue(
            None, envelope("s@origin.test", ["a@remote.test"]),
            stdin=write_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert rc == 54, err
    assert_queue_untouched(mta)


def test_qmail_queue_pulls_the_trigger(mta):
    """A running qmail-send learns of the new message at once (its
    periodic todo scan is a minute away)."""
    run = mta.start()
    msgid = mta.inject("sender@origin.test", ["far@remote.test"])
    run.wait_line(f"new msg {msgid}", timeout=10)


# ---- 2. a queue written by hand, in the documented format ----


def handmade_mess(mta, message):
    """Writes a mess file as qmail-queue would; returns its id, the
    file's inode number."""
    tmp = mta.queue / "mess" / "0" / "handmade"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, message)
        os.fsync(fd)
    finally:
        os.close(fd)
    msgid = os.stat(tmp).st_ino
    mess = mta.split_file("mess", msgid)
    os.rename(tmp, mess)
    mta.own(mess)
    return msgid


def handmade_message(mta, message, sender, rcpts, qp=4242):
    """Writes mess/, intd/ and todo/ as qmail-queue would, without it."""
    msgid = handmade_mess(mta, message)
    data = f"u{mta.inst.uid}\0p{qp}\0F{sender}\0".encode()
    data += b"".join(b"T" + r.encode() + b"\0" for r in rcpts)
    intd = mta.queue / "intd" / str(msgid)
    intd.write_bytes(data)
    intd.chmod(0o644)
    mta.own(intd)
    os.link(intd, mta.queue / "todo" / str(msgid))
    return msgid


def handmade_in_progress(mta, message, sender, remote=None, local=None,
                         bounce=None, birth=None):
    """Writes the state qmail-send leaves for a message it has taken from
    todo/: mess/, info/ (whose mtime is the birth), the channel files
    and bounce/."""
    msgid = handmade_mess(mta, message)
    files = [(mta.split_file("info", msgid), b"F" + sender.encode() + b"\0"),
             (mta.split_file("remote", msgid), remote),
             (mta.split_file("local", msgid), local),
             (mta.queue / "bounce" / str(msgid), bounce)]
    for path, data in files:
        if data is not None:
            mta.write_owned(path, data, mode=0o600)
    if birth is not None:
        os.utime(mta.split_file("info", msgid), (birth, birth))
    return msgid


def test_handmade_queue_remote_delivery(mta):
    message = b"Subject: by hand\n\nwritten byte by byte\n"
    msgid = handmade_message(mta, message, "hand@origin.test",
                             ["far@remote.test"])
    run = mta.start()
    run.wait_line(f"end msg {msgid}")
    (call,) = mta.remote_calls()
    assert call["argv"] == ["remote.test", "hand@origin.test",
                            "far@remote.test"]
    assert call["message"] == message
    assert f"info msg {msgid}: bytes {len(message)} from " \
        f"<hand@origin.test> qp 4242 uid {mta.inst.uid}" in run.lines()
    mta.wait_queue_empty()


def test_handmade_queue_local_and_remote_delivery(mta):
    message = b"Subject: by hand\n\nto a Maildir and afar\n"
    msgid = handmade_message(mta, message, "hand@origin.test",
                             ["demo@example.test", "far@remote.test"])
    run = mta.start()
    run.wait_line(f"end msg {msgid}")
    (call,) = mta.remote_calls()
    assert call["argv"] == ["remote.test", "hand@origin.test",
                            "far@remote.test"]
    assert call["message"] == message
    assert mta.maildir_new("demo") == [
        b"Return-Path: <hand@origin.test>\n"
        b"Delivered-To: demo@example.test\n" + message]
    mta.wait_queue_empty()


# ---- 3. remote delivery ----


def test_remote_delivery(mta):
    msgid = mta.inject("sender@origin.test", ["far@remote.test"])
    mess = mta.split_file("mess", msgid).read_bytes()
    qp, _ = check_received(mess, mta.inst.uid)
    run = mta.start()
    run.wait_line(f"end msg {msgid}")
    (call,) = mta.remote_calls()
    assert call["argv"] == ["remote.test", "sender@origin.test",
                            "far@remote.test"]
    assert call["message"] == mess
    uid = mta.inst.uid
    assert in_order(run.lines(), [
        f"new msg {msgid}",
        f"info msg {msgid}: bytes {len(mess)} from <sender@origin.test> "
        f"qp {qp} uid {uid}",
        f"starting delivery 1: msg {msgid} to remote far@remote.test",
        "status: local 0/10 remote 1/20",
        f"delivery 1: success: {ACCEPTED_LOG}",
        "status: local 0/10 remote 0/20",
        f"end msg {msgid}",
    ]), run.text()
    mta.wait_queue_empty()
    assert run.stop() == 0


def test_remote_delivery_one_per_recipient(mta):
    rcpts = ["a@one.test", "b@two.test", "c@one.test"]
    msgid = mta.inject("sender@origin.test", rcpts)
    run = mta.start()
    run.wait_line(f"end msg {msgid}")
    calls = mta.remote_calls()
    assert sorted(c["argv"][2] for c in calls) == sorted(rcpts)
    for c in calls:
        assert c["argv"][0] == c["argv"][2].split("@")[1]
        assert c["argv"][1] == "sender@origin.test"
    assert len(lines_starting(run, "starting delivery")) == 3
    mta.wait_queue_empty()


# ---- 4. bounces ----


def bounce_calls(mta):
    return [c for c in mta.remote_calls() if c["argv"][1] in ("", "#@[]")]


def test_permanent_failure_bounces_to_sender(mta):
    mta.configure(rcpts={"bad@remote.test": {"reports": HARD}})
    msgid = mta.inject("sender@origin.test", ["bad@remote.test"])
    original = mta.split_file("mess", msgid).read_bytes()
    run = mta.start()
    m = run.wait_match(rf"bounce msg {msgid} qp (\d+)")
    bqp = int(m.group(1))
    run.wait_line(f"end msg {msgid}")
    failure = lines_starting(run, "delivery 1: ")
    assert len(failure) == 1
    assert failure[0].startswith(
        "delivery 1: failure: 192.0.2.1_does_not_like_recipient./"
        "Remote_host_said:_550_5.1.1_no_such_user/")
    wait_for(lambda: len(mta.remote_calls()) == 2)
    first, bounce = mta.remote_calls()
    assert first["argv"] == ["remote.test", "sender@origin.test",
                             "bad@remote.test"]
    assert bounce["argv"] == ["origin.test", "", "sender@origin.test"]
    qp, data = check_received(bounce["message"], mta.inst.uid)
    assert qp == bqp
    head, body = split_bounce(data)
    assert head[0].startswith("Date: ")
    email.utils.parsedate_to_datetime(head[0][len("Date: "):])
    assert head[1:] == ["From: MAILER-DAEMON@example.test",
                        "To: sender@origin.test",
                        "Subject: failure notice"]
    assert body.startswith(
        "Hi. This is the qmail-send program at example.test.\n"
        "I'm afraid I wasn't able to deliver your message to the "
        "following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work "
        "out.\n\n"
        "<bad@remote.test>:\n" + HARD_TEXT)
    report, sep, copy = body.partition(
        "\n\n--- Below this line is a copy of the message.\n\n")
    assert sep, body
    assert copy.encode().endswith(original)
    mta.wait_queue_empty()


def test_bounce_lists_every_failed_recipient(mta):
    mta.configure(rcpts={"bad1@remote.test": {"reports": HARD},
                         "bad2@remote.test": {"reports": HARD}})
    msgid = mta.inject("sender@origin.test",
                       ["bad1@remote.test", "ok@remote.test",
                        "bad2@remote.test"])
    run = mta.start()
    run.wait_line(f"end msg {msgid}")
    wait_for(lambda: bounce_calls(mta))
    (bounce,) = bounce_calls(mta)
    _, body = split_bounce(check_received(bounce["message"],
                                          mta.inst.uid)[1])
    assert "<ok@remote.test>" not in body
    for rcpt in ("bad1@remote.test", "bad2@remote.test"):
        assert f"<{rcpt}>:\n{HARD_TEXT}" in body
    assert len(lines_starting(run, "bounce msg")) == 1
    mta.wait_queue_empty()


def test_message_report_d_after_accepted_recipient_bounces(mta):
    """qmail-remote(8): the message report D is a permanent failure even
    when the recipient was accepted (the server refused the data), so
    qmail-rspawn reports D and the message bounces at once."""
    after_data = ["r", "DFailed after I sent the message.\n"
                  "Remote host said: 554 5.7.1 rejected\n"]
    mta.configure(rcpts={"late@remote.test": {"reports": after_data}})
    msgid = mta.inject("sender@origin.test", ["late@remote.test"])
    run = mta.start()
    run.wait_match(r"delivery 1: .*")
    assert lines_starting(run, "delivery 1: ") == [
        "delivery 1: failure: Failed_after_I_sent_the_message./"
        "Remote_host_said:_554_5.7.1_rejected/"]
    run.wait_line(f"end msg {msgid}")
    wait_for(lambda: bounce_calls(mta))
    (bounce,) = bounce_calls(mta)
    _, body = split_bounce(check_received(bounce["message"],
                                          mta.inst.uid)[1])
    assert ("<late@remote.test>:\nFailed after I sent the message.\n"
            "Remote host said: 554 5.7.1 rejected\n\n") in body


def test_failure_text_has_recipient_and_message_reports(mta):
    """qmail-rspawn passes on the recipient report's text followed by the
    message report's, so a bounce ends with qmail-remote's "Giving up on"
    line, as qmail's bounces do."""
    mta.configure(rcpts={"bad@remote.test": {"reports": HARD}})
    msgid = mta.inject("sender@origin.test", ["bad@remote.test"])
    run = mta.start()
    run.wait_line(f"end msg {msgid}")
    assert lines_starting(run, "delivery 1: ") == [
        "delivery 1: failure: 192.0.2.1_does_not_like_recipient./"
        "Remote_host_said:_550_5.1.1_no_such_user/"
        "Giving_up_on_192.0.2.1./"]
    wait_for(lambda: bounce_calls(mta))
    (bounce,) = bounce_calls(mta)
    _, body = split_bounce(check_received(bounce["message"],
                                          mta.inst.uid)[1])
    assert (f"<bad@remote.test>:\n{HARD_TEXT}"
            "Giving up on 192.0.2.1.\n\n") in body


def test_verp_sender_is_rewritten_per_recipient(mta):
    msgid = mta.inject("list-@lists.test-@[]",
                       ["joe@remote.test", "ann@other.test"])
    run = mta.start()
    run.wait_line(f"end msg {msgid}")
    calls = sorted(c["argv"] for c in mta.remote_calls())
    assert calls == [
        ["other.test", "list-ann=other.test@lists.test", "ann@other.test"],
        ["remote.test", "list-joe=remote.test@lists.test",
         "joe@remote.test"],
    ]


def test_local_permanent_failure_bounces(mta):
    """qmail-local's exit 100 and its text reach the bounce through
    qmail-lspawn."""
    msgid = mta.inject("sender@origin.test", ["nosuchbox@example.test"])
    run = mta.start()
    run.wait_line(
        f"starting delivery 1: msg {msgid} to local nosuchbox@example.test")
    run.wait_line("delivery 1: failure: Sorry,_no_mailbox_here_by_that_"
                  "name._(#5.1.1)/")
    run.wait_line(f"end msg {msgid}")
    wait_for(lambda: bounce_calls(mta))
    (bounce,) = bounce_calls(mta)
    assert bounce["argv"] == ["origin.test", "", "sender@origin.test"]
    _, body = split_bounce(check_received(bounce["message"],
                                          mta.inst.uid)[1])
    assert ("\n\n<nosuchbox@example.test>:\n"
            "Sorry, no mailbox here by that name. (#5.1.1)\n\n"
            "--- Below this line is a copy of the message.\n\n") in body
    mta.wait_queue_empty()


def test_local_deferral_is_retried(mta):
    """A .qmail program that exits 111 defers the delivery; ALRM retries
    it, and the second attempt reaches the Maildir."""
    home = mta.inst.path / "mail" / "bob"
    flag = home / "ok-flag"
    mta.write_owned(home / ".qmail-retry",
                    f"|test -e {flag} || exit 111\n./Maildir/\n")
    msgid = mta.inject("sender@origin.test", ["bob-retry@example.test"])
    run = mta.start()
    run.wait_match(r"delivery 1: deferral: .*")
    assert mta.split_file("local", msgid).read_bytes() == \
        b"Tbob-retry@example.test\0"
    assert mta.maildir_new("bob") == []
    mta.write_owned(flag, b"")
    run.send_signal(signal.SIGALRM)
    run.wait_match(r"delivery 2: success: .*")
    run.wait_line(f"end msg {msgid}")
    (data,) = mta.maildir_new("bob")
    assert data.startswith(b"Return-Path: <sender@origin.test>\n"
                           b"Delivered-To: bob-retry@example.test\n"
                           b"Received: (qmail ")
    assert data.endswith(MESSAGE)
    mta.wait_queue_empty()


# ---- 5. double and triple bounces ----


def test_double_bounce_goes_to_postmaster(mta):
    mta.configure(rcpts={"bad@remote.test": {"reports": HARD}})
    msgid = mta.inject("", ["bad@remote.test"])
    run = mta.start()
    bqp = run.wait_match(rf"bounce msg {msgid} qp (\d+)").group(1)
    run.wait_line(f"end msg {msgid}")
    (first,) = mta.remote_calls()
    assert first["argv"] == ["remote.test", "", "bad@remote.test"]
    info = run.wait_match(rf"info msg (\d+): bytes \d+ from <#@\[\]> "
                          rf"qp {bqp} uid {mta.inst.uid}")
    bounce_id = int(info.group(1))
    run.wait_line(f"starting delivery 2: msg {bounce_id} to local "
                  f"postmaster@example.test")
    run.wait_line(f"end msg {bounce_id}")
    (data,) = mta.maildir_new("alias")
    assert data.startswith(b"Return-Path: <#@[]>\n")
    text = data.decode()
    assert "\nTo: postmaster@example.test\n" in text
    assert ("\n\nHi. This is the qmail-send program at example.test.\n"
            "I tried to deliver a bounce message to this address, but the "
            "bounce bounced!\n\n<bad@remote.test>:\n" + HARD_TEXT) in text
    mta.wait_queue_empty()


def test_double_bounce_to_configured_address(mta):
    mta.inst.control("doublebounceto", "dbadmin\n")
    mta.inst.control("doublebouncehost", "hq.test\n")
    mta.inst.control("bouncefrom", "bouncer\n")
    mta.inst.control("bouncehost", "bounces.test\n")
    mta.configure(rcpts={"bad@remote.test": {"reports": HARD}})
    msgid = mta.inject("", ["bad@remote.test"])
    run = mta.start()
    run.wait_line(f"end msg {msgid}")
    wait_for(lambda: len(mta.remote_calls()) == 2)
    _, dbl = mta.remote_calls()
    assert dbl["argv"] == ["hq.test", "#@[]", "dbadmin@hq.test"]
    head, body = split_bounce(check_received(dbl["message"],
                                             mta.inst.uid)[1])
    assert head[1:] == ["From: bouncer@bounces.test",
                        "To: dbadmin@hq.test",
                        "Subject: failure notice"]
    assert "but the bounce bounced!" in body
    mta.wait_queue_empty()
    # The files may go before the line is logged: wait for it.
    wait_for(lambda: len(lines_starting(run, "end msg")) >= 2)
    assert len(lines_starting(run, "end msg")) == 2


def test_triple_bounce_is_discarded(mta):
    mta.configure(rcpts={"bad@remote.test": {"reports": HARD}})
    msgid = mta.inject("#@[]", ["bad@remote.test"])
    run = mta.start()
    run.wait_line(f"end msg {msgid}")
    assert f"triple bounce: discarding bounce/{msgid}" in run.lines()
    (call,) = mta.remote_calls()
    assert call["argv"] == ["remote.test", "#@[]", "bad@remote.test"]
    assert lines_starting(run, "bounce msg") == []
    assert lines_starting(run, "new msg") == [f"new msg {msgid}"]
    mta.wait_queue_empty()
    assert run.stop() == 0
    assert len(mta.remote_calls()) == 1


# ---- 6. queuelifetime ----


def test_queuelifetime_turns_deferral_into_bounce(mta):
    mta.inst.control("queuelifetime", "1\n")
    mta.configure(rcpts={"slow@remote.test": {"reports": SOFT}})
    msgid = mta.inject("sender@origin.test", ["slow@remote.test"])
    run = mta.start()
    run.wait_match(r"delivery 1: deferral: .*")
    seen = time.time()
    assert mta.split_file("remote", msgid).read_bytes() == \
        b"Tslow@remote.test\0"
    # The message must be older than queuelifetime (whole seconds, and
    # "older" means strictly more than 1) before the retry.
    time.sleep(max(0.0, int(seen) + 2.05 - time.time()))
    run.send_signal(signal.SIGALRM)
    run.wait_match(rf"bounce msg {msgid} qp \d+")
    run.wait_line(f"end msg {msgid}")
    wait_for(lambda: bounce_calls(mta))
    second = [line for line in lines_starting(run, "delivery 2: ")]
    assert len(second) == 1 and "192.0.2.1_does_not_like_recipient" \
        in second[0]
    (bounce,) = bounce_calls(mta)
    assert bounce["argv"] == ["origin.test", "", "sender@origin.test"]
    _, body = split_bounce(check_received(bounce["message"],
                                          mta.inst.uid)[1])
    assert f"<slow@remote.test>:\n{SOFT_TEXT}" in body
    report = body.split("--- Below this line")[0]
    assert TOO_LONG in report
    mta.wait_queue_empty()


# ---- 7. routing ----


def hold_deliveries(mta):
    mta.inst.control("concurrencylocal", "0\n")
    mta.inst.control("concurrencyremote", "0\n")


def test_routing_writes_local_and_remote_files(mta):
    """With both channels on hold, the files qmail-send writes show how
    each recipient was routed, byte for byte."""
    hold_deliveries(mta)
    mta.inst.control("locals", "example.test\nlocalhost\nother.local\n")
    mta.inst.control("virtualdomains",
                     "# comment\nvirt.test:alice\nspecial@virt.test:\n"
                     ".wild.test:bob\nVirtCase.test:carol\n")
    mta.inst.control("percenthack", "relay.test\n")
    mta.inst.control("envnoathost", "noat.test\n")
    rcpts = [
        "demo@example.test",        # locals
        "x@other.local",            # locals, added
        "y@EXAMPLE.TEST",           # locals match any case
        "joe@virt.test",            # virtual: alice-joe@virt.test
        "special@virt.test",        # empty prepend: an exception
        "z@deep.sub.wild.test",     # wildcard
        "w@virtcase.test",          # case-insensitive domain
        "u%other.test@relay.test",  # percenthack: u@other.test
        "v%other.test@plain.test",  # no percenthack here
        "p%inner.test%relay.test@relay.test",  # twice: p@inner.test
        "nobody",                   # envnoathost: nobody@noat.test
        "far@remote.test",
    ]
    msgid = mta.inject("sender@origin.test", rcpts)
    run = mta.start()
    run.wait_line(f"new msg {msgid}")
    assert mta.split_file("info", msgid).read_bytes() == \
        b"Fsender@origin.test\0"
    local = [b"demo@example.test", b"x@other.local", b"y@EXAMPLE.TEST",
             b"alice-joe@virt.test", b"bob-z@deep.sub.wild.test",
             b"carol-w@virtcase.test"]
    remote = [b"special@virt.test", b"u@other.test",
              b"v%other.test@plain.test", b"p@inner.test",
              b"nobody@noat.test", b"far@remote.test"]
    assert mta.split_file("local", msgid).read_bytes() == \
        b"".join(b"T" + r + b"\0" for r in local)
    assert mta.split_file("remote", msgid).read_bytes() == \
        b"".join(b"T" + r + b"\0" for r in remote)
    wait_for(lambda: not (mta.queue / "todo" / str(msgid)).exists())
    assert not (mta.queue / "intd" / str(msgid)).exists()
    assert mta.split_file("mess", msgid).exists()
    assert lines_starting(run, "starting delivery") == []
    assert "status: local 0/0 remote 0/0" in run.lines()


def test_default_routing_without_control_files(mta):
    hold_deliveries(mta)
    (mta.inst.path / "control" / "locals").unlink()
    msgid = mta.inject("sender@origin.test",
                       ["nobody", "a@example.test", "b@localhost"])
    run = mta.start()
    run.wait_line(f"new msg {msgid}")
    # envnoathost and locals both default to control/me.
    assert mta.split_file("local", msgid).read_bytes() == \
        b"Tnobody@example.test\0Ta@example.test\0"
    assert mta.split_file("remote", msgid).read_bytes() == \
        b"Tb@localhost\0"


def test_virtual_domain_delivers_to_prepended_user(mta):
    mta.inst.control("virtualdomains", "virt.test:alice\n")
    home = mta.inst.path / "mail" / "alice"
    mta.write_owned(home / ".qmail-default", b"./Maildir/\n")
    msgid = mta.inject("sender@origin.test", ["joe@virt.test"])
    run = mta.start()
    run.wait_line(
        f"starting delivery 1: msg {msgid} to local alice-joe@virt.test")
    run.wait_line(f"end msg {msgid}")
    (data,) = mta.maildir_new("alice")
    assert data.startswith(b"Return-Path: <sender@origin.test>\n"
                           b"Delivered-To: alice-joe@virt.test\n"
                           b"Received: (qmail ")
    assert data.endswith(MESSAGE)
    assert mta.maildir_new("demo") == []
    mta.wait_queue_empty()


def test_percenthack_delivers_to_inner_host(mta):
    mta.inst.control("percenthack", "relay.test\n")
    msgid = mta.inject("sender@origin.test", ["u%other.test@relay.test"])
    run = mta.start()
    run.wait_line(f"end msg {msgid}")
    (call,) = mta.remote_calls()
    assert call["argv"] == ["other.test", "sender@origin.test",
                            "u@other.test"]
    mta.wait_queue_empty()


def test_envnoathost_delivers_to_its_host(mta):
    mta.inst.control("envnoathost", "noat.test\n")
    msgid = mta.inject("sender@origin.test", ["nobody"])
    run = mta.start()
    run.wait_line(f"end msg {msgid}")
    (call,) = mta.remote_calls()
    assert call["argv"] == ["noat.test", "sender@origin.test",
                            "nobody@noat.test"]
    mta.wait_queue_empty()


# ---- 8. signals ----


def test_hup_rereads_locals_and_virtualdomains(mta):
    mta.inst.control("concurrencylocal", "0\n")
    before = mta.inject("sender@origin.test",
                        ["x@late.test", "y@virt2.test"])
    run = mta.start()
    # Remote deliveries run at once and may remove the remote file before
    # it can be read: the log says how each recipient was routed.
    run.wait_line(f"end msg {before}")
    starts = [line for line in run.lines()
              if line.startswith("starting delivery") and
              f"msg {before} " in line]
    assert sorted(line.split(" to ", 1)[1] for line in starts) == \
        ["remote x@late.test", "remote y@virt2.test"]

    mta.inst.control("locals", "example.test\nlocalhost\nlate.test\n")
    mta.inst.control("virtualdomains", "virt2.test:bob\n")
    run.send_signal(signal.SIGHUP)
    run.wait_line("status: configuration reread")
    after = mta.inject("sender@origin.test",
                       ["x@late.test", "y@virt2.test"])
    # The new message may reuse the first one's inode, hence its id, so
    # its "new msg" line is not a signal: wait for its local file (the
    # local channel is on hold, so the file stays).
    # The file is created, then written: wait for its contents.
    local = mta.split_file("local", after)
    wait_for(lambda: local.exists() and
             local.read_bytes() == b"Tx@late.test\0Tbob-y@virt2.test\0",
             message=f"the recipients in {local}")
    assert not mta.split_file("remote", after).exists()
    assert len(mta.remote_calls()) == 2


def test_alrm_retries_a_deferred_message_now(mta):
    mta.configure(rcpts={"later@remote.test": {"reports": SOFT}})
    msgid = mta.inject("sender@origin.test", ["later@remote.test"])
    run = mta.start()
    run.wait_match(r"delivery 1: deferral: 192\.0\.2\.1_does_not_like_"
                   r"recipient\./.*")
    assert mta.split_file("remote", msgid).read_bytes() == \
        b"Tlater@remote.test\0"
    mta.configure()
    run.send_signal(signal.SIGALRM)
    run.wait_line(f"delivery 2: success: {ACCEPTED_LOG}")
    run.wait_line(f"end msg {msgid}")
    assert [c["argv"][2] for c in mta.remote_calls()] == \
        ["later@remote.test"] * 2
    mta.wait_queue_empty()


def test_term_waits_for_deliveries_under_way(mta):
    mta.configure(default={"reports": ACCEPTED, "gate": "go"})
    msgid = mta.inject("sender@origin.test", ["far@remote.test"])
    run = mta.start()
    wait_for(lambda: mta.remote_started(), message="the delivery to start")
    run.send_signal(signal.SIGTERM)
    # qmail-send must not exit while the delivery runs; a second message
    # queued now must not be started.
    second = mta.inject("sender@origin.test", ["next@remote.test"])
    assert run.proc.poll() is None
    mta.open_gate("go")
    assert run.wait_exit() == 0
    lines = run.lines()
    assert f"delivery 1: success: {ACCEPTED_LOG}" in lines
    assert f"end msg {msgid}" in lines
    assert lines[-1] == "status: exiting"
    assert [c["argv"][2] for c in mta.remote_calls()] == ["far@remote.test"]
    # The first message is gone; the second is still queued, untouched.
    assert mta.mess_ids() == [second]
    assert (mta.queue / "todo" / str(second)).exists()


def test_term_when_idle_exits_at_once(mta):
    run = mta.start()
    assert run.stop(timeout=10) == 0
    assert run.lines()[-1] == "status: exiting"


# ---- 9. restart ----


def test_restart_rebuilds_from_info(mta):
    mta.configure(rcpts={"later@remote.test": {"reports": SOFT}})
    msgid = mta.inject("sender@origin.test",
                       ["later@remote.test", "ok@remote.test"])
    run = mta.start()
    run.wait_match(r"delivery \d: deferral: .*")
    run.wait_match(r"delivery \d: success: .*")
    wait_for(lambda: len(mta.remote_calls()) == 2)
    assert run.stop() == 0
    assert mta.queue_files() == sorted([
        f"info/{msgid % SPLIT}/{msgid}", f"mess/{msgid % SPLIT}/{msgid}",
        f"remote/{msgid % SPLIT}/{msgid}"])
    # The delivered recipient is marked done in place; the other stays.
    assert mta.split_file("remote", msgid).read_bytes() == \
        b"Tlater@remote.test\0Dok@remote.test\0"

    mta.configure()
    again = mta.start()
    # The deferred recipient waits for its retry time (see
    # test_restart_keeps_the_retry_schedule); ALRM makes it now.
    wait_for(lambda: "status: local" in again.text())
    again.send_signal(signal.SIGALRM)
    again.wait_line(f"end msg {msgid}")
    calls = mta.remote_calls()
    assert [c["argv"][2] for c in calls[2:]] == ["later@remote.test"]
    assert calls[2]["message"] == calls[0]["message"]
    assert lines_starting(again, "new msg") == []
    assert in_order(again.lines(), [
        f"starting delivery 1: msg {msgid} to remote later@remote.test",
        f"delivery 1: success: {ACCEPTED_LOG}",
        f"end msg {msgid}",
    ]), again.text()
    mta.wait_queue_empty()
    assert again.stop() == 0


def test_restart_resumes_a_documented_queue_state(mta):
    """A message taken from todo/ by an earlier qmail-send, written here
    in the documented format: one recipient done (D), one pending (T),
    one failure already recorded in bounce/."""
    message = b"Subject: resumed\n\nhalf done\n"
    msgid = handmade_in_progress(
        mta, message, "sender@origin.test",
        remote=b"Ddone@remote.test\0Tpending@remote.test\0",
        bounce=b"<gone@remote.test>:\nEarlier failure.\n\n")
    run = mta.start()
    run.wait_line(f"end msg {msgid}")
    wait_for(lambda: len(mta.remote_calls()) == 2)
    (delivery,) = [c for c in mta.remote_calls() if c["argv"][1]]
    assert delivery["argv"] == ["remote.test", "sender@origin.test",
                                "pending@remote.test"]
    assert delivery["message"] == message
    (bounce,) = bounce_calls(mta)
    assert bounce["argv"] == ["origin.test", "", "sender@origin.test"]
    _, body = split_bounce(check_received(bounce["message"],
                                          mta.inst.uid)[1])
    assert ("\n\n<gone@remote.test>:\nEarlier failure.\n\n"
            "--- Below this line is a copy of the message.\n\n") in body
    assert body.endswith(message.decode())
    assert "done@remote.test" not in body
    assert f"new msg {msgid}" not in run.lines()
    mta.wait_queue_empty()


def retry_times(birth, c):
    """The retry times qmail's schedule gives a first deferral less
    than 4 seconds after birth: birth + (floor(sqrt(age)) + c)^2."""
    return {birth + (n + c) ** 2 for n in (0, 1)}


def test_restart_keeps_the_retry_schedule(mta):
    """A deferred channel keeps its next retry in its file's mtime, as in
    qmail: a restarted qmail-send waits for it instead of retrying at
    once, and ALRM still retries now."""
    home = mta.inst.path / "mail" / "bob"
    flag = home / "ok-flag"
    mta.write_owned(home / ".qmail-retry",
                    f"|test -e {flag} || exit 111\n./Maildir/\n")
    mta.configure(rcpts={"later@remote.test": {"reports": SOFT}})
    local = mta.inject("sender@origin.test", ["bob-retry@example.test"])
    remote = mta.inject("sender@origin.test", ["later@remote.test"])
    run = mta.start()
    run.wait_match(rf"delivery \d+: deferral: .*")
    wait_for(lambda: len(lines_starting(run, "delivery ")) == 2)
    assert sorted(line.split(": ")[1] for line in
                  lines_starting(run, "delivery ")) == ["deferral"] * 2
    assert run.stop() == 0
    for msgid, chan, c in ((local, "local", 10), (remote, "remote", 20)):
        birth = int(mta.split_file("info", msgid).stat().st_mtime)
        st = mta.split_file(chan, msgid).stat()
        assert int(st.st_mtime) in retry_times(birth, c), (chan, birth, st)
        assert int(st.st_atime) == int(st.st_mtime)
        assert st.st_mtime > time.time()

    mta.write_owned(flag, b"")
    mta.configure()
    again = mta.start()
    wait_for(lambda: "status: local" in again.text())
    # Both are 100 and 400 seconds away: nothing may start for now.
    time.sleep(3)
    assert lines_starting(again, "starting delivery") == [], again.text()
    again.send_signal(signal.SIGALRM)
    again.wait_line(f"end msg {local}")
    again.wait_line(f"end msg {remote}")
    assert [c["argv"][2] for c in mta.remote_calls()] == \
        ["later@remote.test"] * 2
    (data,) = mta.maildir_new("bob")
    assert data.endswith(MESSAGE)
    mta.wait_queue_empty()


def test_restart_retries_a_past_mtime_at_once(mta):
    """A channel file whose mtime has passed (never deferred, or its
    retry time came while qmail-send was down) is due at once."""
    mta.configure(default={"reports": ACCEPTED})
    due = handmade_in_progress(mta, b"Subject: due\n\ndue\n",
                               "sender@origin.test",
                               remote=b"Tdue@remote.test\0",
                               birth=time.time() - 30)
    path = mta.split_file("remote", due)
    os.utime(path, (path.stat().st_atime, time.time() - 5))
    run = mta.start()
    run.wait_line(f"end msg {due}")
    assert [c["argv"][2] for c in mta.remote_calls()] == ["due@remote.test"]


def test_restart_takes_birth_from_info_mtime(mta):
    """The age that queuelifetime limits counts from the info file's
    mtime: an old message bounces on its first deferral after a restart,
    a young one is only deferred."""
    mta.inst.control("queuelifetime", "3600\n")
    mta.configure(rcpts={"slow@remote.test": {"reports": SOFT}})
    now = time.time()
    old = handmade_in_progress(mta, b"Subject: old\n\nold\n",
                               "sender@origin.test",
                               remote=b"Tslow@remote.test\0",
                               birth=now - 7200)
    young = handmade_in_progress(mta, b"Subject: young\n\nyoung\n",
                                 "sender@origin.test",
                                 remote=b"Tslow@remote.test\0",
                                 birth=now - 60)
    run = mta.start()
    run.wait_match(rf"bounce msg {old} qp \d+")
    run.wait_line(f"end msg {old}")
    num = run.wait_match(rf"starting delivery (\d+): msg {young} to remote "
                         r"slow@remote\.test").group(1)
    # A bounce would be logged in the same pass as the deferral.
    result = run.wait_match(rf"delivery {num}: (\w+): .*")
    assert result.group(1) == "deferral", result.group(0)
    assert [line.split()[2] for line in lines_starting(run, "bounce msg")] \
        == [str(old)]
    assert mta.split_file("remote", young).read_bytes() == \
        b"Tslow@remote.test\0"
    wait_for(lambda: bounce_calls(mta))
    (bounce,) = bounce_calls(mta)
    _, body = split_bounce(check_received(bounce["message"],
                                          mta.inst.uid)[1])
    assert f"<slow@remote.test>:\n{SOFT_TEXT}" in body
    assert TOO_LONG in body.split("--- Below this line")[0]
    assert body.endswith("Subject: old\n\nold\n")


def test_clean_removes_stale_pid_files(mta):
    old = mta.queue / "pid" / "100.1000.0"
    fresh = mta.queue / "pid" / "200.2000.0"
    for path in (old, fresh):
        mta.write_owned(path, b"")
    past = time.time() - 37 * 3600
    os.utime(old, (past, past))
    mta.start()
    wait_for(lambda: not old.exists(), message="the stale pid file to go")
    assert fresh.exists()


def test_hup_with_a_broken_file_keeps_the_old_configuration(mta):
    run = mta.start()
    mta.inst.control("locals", b"example.test\nlate.test\0bad\n")
    mta.inst.control("virtualdomains", "virt3.test:bob\n")
    run.send_signal(signal.SIGHUP)
    run.wait_line("warning: keeping the old configuration")
    assert any(line.startswith("warning: unable to read control/locals")
               for line in run.lines()), run.text()
    msgid = mta.inject("sender@origin.test",
                       ["x@late.test", "y@virt3.test"])
    run.wait_line(f"end msg {msgid}")
    assert sorted(c["argv"] for c in mta.remote_calls()) == [
        ["late.test", "sender@origin.test", "x@late.test"],
        ["virt3.test", "sender@origin.test", "y@virt3.test"]]


# ---- 10. concurrency ----


def test_concurrencyremote_limits_parallel_deliveries(mta):
    mta.inst.control("concurrencyremote", "2\n")
    mta.configure(default={"reports": ACCEPTED, "sleep": 0.8})
    ids = [mta.inject("sender@origin.test", [f"r{i}@remote.test"])
           for i in range(6)]
    run = mta.start()
    for msgid in ids:
        run.wait_line(f"end msg {msgid}", timeout=30)
    state = mta.fake_state()
    assert state["calls"] == 6
    assert state["max_running"] == 2
    assert state["running"] == 0
    statuses = lines_starting(run, "status: local")
    assert "status: local 0/10 remote 2/2" in statuses
    assert all(re.fullmatch(r"status: local 0/10 remote [012]/2", s)
               for s in statuses), statuses
    mta.wait_queue_empty()


def test_recipients_waiting_for_a_slot_are_all_delivered(mta):
    """Regression: when a job's last running delivery ended while other
    recipients of the same message still waited for a free slot, one of
    them was skipped and the message stayed in the queue until a
    restart. With one slot and three recipients per message every
    recipient must be delivered."""
    mta.inst.control("concurrencyremote", "1\n")
    mta.configure(default={"reports": ACCEPTED, "sleep": 0.05})
    ids = [mta.inject("sender@origin.test",
                      [f"m{i}r{k}@remote.test" for k in range(3)])
           for i in range(4)]
    run = mta.start()
    for msgid in ids:
        run.wait_line(f"end msg {msgid}", timeout=30)
    rcpts = sorted(call["argv"][2] for call in mta.remote_calls())
    assert rcpts == sorted(f"m{i}r{k}@remote.test"
                           for i in range(4) for k in range(3))
    mta.wait_queue_empty()
    assert run.stop() == 0
