"""Disk full, unwritable mailboxes, EMFILE, file modes and the program
environment, end to end (issue 10).

Each test builds an instance whose queue and mailboxes (the homes under
mail/) sit on two small tmpfs file systems that the test mounts, and
fills them with a root-owned filler file kept outside the bind-mounted
directories. A tmpfs counts its space in whole pages and charges nothing
for directories or empty files, so "N pages free" is exact and a
failure always comes from a data write: qmail-queue's, or qmail-local's.
Every test asserts the exact reply or log line, and that nothing was
lost, doubled or half-written; then it frees the space and checks that
the mail goes through.

Root only (mounting needs it). A test must leave no mount and no
process behind: the fixture stops the queue and the servers and then
unmounts, whatever happened.
"""

import json
import os
import re
import stat
import shlex
import shutil
import signal
import smtplib
import subprocess
import time

import pytest

import qmtest
from qmtest import is_root, wait_for
from queuectl import Queue

ME = "example.test"
SENDER = "sender@origin.test"
RCPT = "demo@example.test"
FS_SIZE = 4 * 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
TIMEOUT = 60

QQ_DISK_FULL = (451, b"qq write error or disk full (#4.3.0)")
QQ_START = (451, b"qq temporary problem (#4.3.0)")
QQ_UNLISTED = (451, b"qq internal bug (#4.3.0)")
# How qmail-send logs a report: blanks become _, newlines /.
MAILDIR_NAME = r"\d+\.M\d+P\d+Q\d+\.[^:/]+"
SUCCESS = r"delivery \d+: success: did_1\+0\+0/"

pytestmark = pytest.mark.skipif(not is_root(),
                                reason="mounting a small file system "
                                       "needs root")


def message(subject, size=0):
    """A message of about size bytes that ends in a line naming it."""
    head = (f"From: <{SENDER}>\nTo: <{RCPT}>\nSubject: {subject}\n\n"
            .encode())
    line = b"0123456789" * 7 + b"\n"
    return head + line * (size // len(line)) + f"END {subject}\n".encode()


def envelope(sender, rcpts):
    data = b"F" + sender.encode() + b"\0"
    for rcpt in rcpts:
        data += b"T" + rcpt.encode() + b"\0"
    return data + b"\0"


# ---- mounts ----


class MountError(Exception):
    pass


class Mounts:
    """The mounts of one test, undone in reverse order."""

    def __init__(self):
        self.points = []

    def _mount(self, argv, point):
        r = subprocess.run(argv, capture_output=True, timeout=30)
        if r.returncode != 0:
            raise MountError(r.stderr.decode(errors="replace").strip()
                             or f"mount exited {r.returncode}")
        self.points.append(point)

    def tmpfs(self, point, size):
        point.mkdir(mode=0o755)
        self._mount(["mount", "-t", "tmpfs", "-o",
                     f"size={size},mode=0755", "qm-diskfull", str(point)],
                    point)

    def bind(self, source, point):
        self._mount(["mount", "--bind", str(source), str(point)], point)

    def unmount_all(self):
        """Returns the mount points that could only be detached lazily."""
        stuck = []
        while self.points:
            point = self.points.pop()
            for _ in range(50):
                r = subprocess.run(["umount", str(point)],
                                   capture_output=True, timeout=30)
                if r.returncode == 0:
                    break
                time.sleep(0.1)
            else:
                subprocess.run(["umount", "-l", str(point)],
                               capture_output=True, timeout=30)
                stuck.append(str(point))
        return stuck


class SmallFs:
    """A tmpfs and the filler file that takes its space away."""

    def __init__(self, root):
        self.root = root
        self.filler = root / "filler"

    def free_pages(self):
        st = os.statvfs(self.root)
        assert st.f_bsize == PAGE
        return st.f_bavail

    def fill(self):
        """Takes every free page."""
        chunk = b"\0" * PAGE
        with open(self.filler, "ab", buffering=0) as f:
            while True:
                try:
                    f.write(chunk)
                except OSError as e:
                    if e.errno != 28:  # ENOSPC
                        raise
                    break
        assert self.free_pages() == 0

    def leave_free(self, pages):
        """Gives back pages until exactly pages pages are free (a sparse
        tmpfs file cannot take pages back, so never fewer than now)."""
        more = pages - self.free_pages()
        assert more >= 0
        size = self.filler.stat().st_size
        os.truncate(self.filler, size - more * PAGE)
        assert self.free_pages() == pages

    def release(self):
        self.filler.unlink()


# ---- the instance on small file systems ----


class DiskInstance(qmtest.Instance):
    """An instance with a private bin/ (so that a test may wrap a
    program) and an environment a test may replace."""

    base_env = None

    def install_argv(self):
        argv = super().install_argv()
        at = argv.index("-b")
        return argv[:at] + argv[at + 2:]

    def env(self):
        if self.base_env is not None:
            return dict(self.base_env)
        return super().env()


class World:
    """One test's instance, its two small file systems, its queue runs
    and its servers."""

    def __init__(self, inst, qfs, mfs, servers):
        self.inst = inst
        self.qfs = qfs
        self.mfs = mfs
        self.servers = servers
        self.queues = []
        self.queue_dir = inst.path / "queue"

    # -- files owned by the account --

    def own(self, path):
        os.chown(path, self.inst.uid, self.inst.gid)

    def write_owned(self, path, text, mode=0o644):
        path.write_text(text)
        path.chmod(mode)
        self.own(path)
        return path

    def home(self, box):
        return self.inst.path / "mail" / box

    # -- the queue --

    def start_queue(self):
        queue = Queue(self.inst)
        self.queues.append(queue)
        queue.start()
        queue.wait_started(timeout=TIMEOUT)
        return queue

    def qmail_queue(self, data, env_data):
        """bin/qmail-queue as the account: (exit code, stderr)."""
        read_end, write_end = os.pipe()
        try:
            assert len(env_data) < 60000
            os.write(write_end, env_data)
        finally:
            os.close(write_end)
        argv = self.inst.as_account([str(self.inst.path / "bin" /
                                         "qmail-queue")])
        try:
            proc = subprocess.Popen(argv, env=self.inst.env(),
                                    cwd=self.inst.path,
                                    stdin=subprocess.PIPE, stdout=read_end,
                                    stderr=subprocess.PIPE,
                                    start_new_session=True)
        finally:
            os.close(read_end)
        try:
            _, err = proc.communicate(data, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            qmtest.kill_group(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        return proc.returncode, err

    def inject(self, data, rcpts=(RCPT,), sender=SENDER):
        rc, err = self.qmail_queue(data, envelope(sender, rcpts))
        assert (rc, err) == (0, b"")

    def queue_files(self):
        return self.inst.queue_files()

    def assert_nothing_queued(self):
        """Not a byte of a refused message anywhere in the queue."""
        assert self.queue_files() == []
        for name in ("pid", "intd", "todo"):
            assert os.listdir(self.queue_dir / name) == [], name
        for sub in (self.queue_dir / "mess").iterdir():
            assert os.listdir(sub) == [], sub

    def assert_queue_intact(self):
        """Empty and whole: every directory of the layout, the lock
        files, and qmail-qstat's count."""
        assert self.queue_files() == []
        for name in ("pid", "intd", "todo", "bounce"):
            assert (self.queue_dir / name).is_dir(), name
        for name in ("mess", "info", "local", "remote"):
            subs = sorted(os.listdir(self.queue_dir / name), key=int)
            assert subs == [str(i) for i in range(qmtest.SPLIT)], name
        lock = self.queue_dir / "lock"
        assert (lock / "sendmutex").is_file()
        assert (lock / "tcpto").stat().st_size == 1024
        assert stat.S_ISFIFO((lock / "trigger").stat().st_mode)
        result = self.inst.run([str(self.inst.path / "bin" /
                                    "qmail-qstat")])
        assert (result.returncode, result.stdout) == (
            0, b"messages in queue: 0\n"
               b"messages in queue but not yet preprocessed: 0\n")

    # -- mailboxes --

    def maildir_files(self, box, sub):
        folder = self.home(box) / "Maildir" / sub
        return sorted(folder.iterdir())

    def delivered(self, box):
        return [p.read_bytes() for p in self.maildir_files(box, "new")]

    # -- SMTP --

    def start_smtpd(self, wrapper=(), **extra_env):
        env = self.inst.env()
        env.update(extra_env)
        argv = list(wrapper) + [str(self.inst.path / "bin" / "qmail-smtpd")]
        return self.servers.start(argv, as_account=self.inst, env=env,
                                  name="qmail-smtpd")

    def teardown(self):
        survivors = []
        for queue in self.queues:
            try:
                queue.close()
            except Exception as e:  # noqa: BLE001 -- go on unmounting
                survivors.append(str(e))
        survivors += self.servers.stop_all()
        return survivors


@pytest.fixture
def world(bindir, qm_logbook, servers):
    fsdir = qmtest.make_public_tempdir("qm-fs-")
    path = None
    mounts = Mounts()
    made = None
    problems = []
    try:
        path = qmtest.make_public_tempdir("qm-inst-")
        try:
            for fs, sub in (("q", "queue"), ("m", "mail")):
                mounts.tmpfs(fsdir / fs, FS_SIZE)
                (fsdir / fs / sub).mkdir(mode=0o755)
                (path / sub).mkdir(mode=0o755)
                mounts.bind(fsdir / fs / sub, path / sub)
        except MountError as e:
            pytest.skip(f"cannot mount a small file system here: {e}")
        inst = DiskInstance(path, bindir, ME, ("demo", "alice", "bob"),
                            qm_logbook)
        result = inst.install()
        if result.returncode != 0:
            pytest.fail(f"qmail-instance failed ({result.returncode}): "
                        f"{result.stderr.decode(errors='replace')}",
                        pytrace=False)
        made = World(inst, SmallFs(fsdir / "q"), SmallFs(fsdir / "m"),
                     servers)
        yield made
    finally:
        if made is not None:
            problems += made.teardown()
        else:
            problems += servers.stop_all()
        stuck = mounts.unmount_all()
        if stuck:
            problems.append(f"busy mounts, detached lazily: {stuck}")
        else:
            qmtest.remove_tree(path)
            qmtest.remove_tree(fsdir)
    if problems:
        pytest.fail("teardown: " + "; ".join(problems), pytrace=False)


# ---- helpers for the queue log ----


def log_lines(queue):
    return queue.log_text().splitlines()


def matching(queue, pattern):
    regex = re.compile(pattern)
    return [line for line in log_lines(queue) if regex.fullmatch(line)]


def wait_lines(queue, pattern, count=1):
    """Waits until count log lines match pattern; returns them."""
    return wait_for(lambda: len(matching(queue, pattern)) >= count
                    and matching(queue, pattern), timeout=TIMEOUT,
                    message=f"{count} log line(s) matching {pattern!r}")


def deferral(reason):
    return r"delivery \d+: deferral: " + reason


def retry_now(queue):
    os.kill(queue.proc.pid, signal.SIGALRM)


def wait_delivered_once(world, queue, box, data):
    """The message arrives in box exactly once and the queue empties."""
    wait_lines(queue, SUCCESS)
    wait_for(lambda: world.queue_files() == [], timeout=TIMEOUT,
             message="an empty queue")
    world.assert_queue_intact()
    got = world.delivered(box)
    assert len(got) == 1, got
    assert got[0].endswith(data)
    assert world.maildir_files(box, "tmp") == []
    assert len(matching(queue, SUCCESS)) == 1


# ---- SMTP ----


def smtp_data(client, data):
    """DATA with the message; returns the final (code, text), or the
    reply to DATA itself when it is not 354."""
    reply = client.docmd("DATA")
    if reply[0] != 354:
        return reply
    assert reply == (354, b"go ahead")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    body = b"".join((b"." + line if line.startswith(b".") else line)
                    + b"\r\n" for line in lines)
    client.send(body + b".\r\n")
    return client.getreply()


def smtp_send(server, data, rcpt=RCPT):
    with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
        client.ehlo("client.test")
        assert client.mail(SENDER) == (250, b"ok")
        assert client.rcpt(rcpt) == (250, b"ok")
        reply = smtp_data(client, data)
        assert client.noop()[0] == 250  # the session goes on
        return reply


# ---- the queue file system full ----


def test_smtp_gets_451_when_the_queue_is_full(world):
    queue = world.start_queue()
    server = world.start_smtpd()
    world.qfs.fill()
    assert smtp_send(server, message("full")) == QQ_DISK_FULL
    world.assert_nothing_queued()
    assert world.qfs.free_pages() == 0

    # Room for the start of the message only: it fails half-way, and
    # every page it took comes back.
    world.qfs.leave_free(4)
    assert smtp_send(server, message("half", 64 * 1024)) == QQ_DISK_FULL
    world.assert_nothing_queued()
    assert world.qfs.free_pages() == 4

    # A message that fits goes through in the space that is left (mess,
    # intd, and then info and local: 4 pages at most at once).
    world.qfs.leave_free(8)
    small = message("small")
    assert smtp_send(server, small) == (250, b"ok")
    wait_delivered_once(world, queue, "demo", small)

    world.qfs.release()
    big = message("after", 64 * 1024)
    assert smtp_send(server, big, "alice@example.test") == (250, b"ok")
    wait_lines(queue, SUCCESS, 2)
    wait_for(lambda: world.queue_files() == [], timeout=TIMEOUT)
    world.assert_queue_intact()
    (got,) = world.delivered("alice")
    assert got.endswith(big)
    assert len(world.delivered("demo")) == 1


def test_envelope_that_does_not_fit_leaves_nothing(world):
    """The message fits, its intd file does not: qmail-queue removes the
    mess file it had written."""
    data = message("intd", 3 * PAGE - 300)
    world.qfs.fill()
    world.qfs.leave_free(3)
    rc, err = world.qmail_queue(data, envelope(SENDER, [RCPT]))
    assert (rc, err) == (53, b"")
    world.assert_nothing_queued()
    assert world.qfs.free_pages() == 3
    world.qfs.release()
    world.inject(data)
    assert len(world.queue_files()) == 3  # mess, intd, todo


def test_qmail_send_waits_for_room_in_the_queue(world):
    """qmail-send cannot write info/ and local/ for a queued message: it
    leaves the todo entry alone, and takes the message once there is
    room, at the next trigger."""
    queue = world.start_queue()
    world.qfs.fill()
    world.qfs.leave_free(2)  # the mess and intd files, no more
    first = message("first")
    world.inject(first)
    (mess,) = [f for f in world.queue_files() if f.startswith("mess/")]
    msgid = int(mess.split("/")[-1])
    wait_lines(queue, re.escape(f"warning: unable to write info/"
                                f"{msgid % qmtest.SPLIT}/{msgid}: "
                                "No space left on device"))
    # What it wrote before the failure is gone again.
    wait_for(lambda: world.queue_files() == sorted(
        [mess, f"intd/{msgid}", f"todo/{msgid}"])
        and world.qfs.free_pages() == 0, timeout=TIMEOUT,
        message="qmail-send to remove its half-made files")
    assert world.maildir_files("demo", "new") == []

    world.qfs.release()
    second = message("second")
    world.inject(second, rcpts=["alice@example.test"])
    wait_lines(queue, SUCCESS, 2)
    wait_for(lambda: world.queue_files() == [], timeout=TIMEOUT,
             message="an empty queue")
    world.assert_queue_intact()
    (got,) = world.delivered("demo")
    assert got.endswith(first)
    (got,) = world.delivered("alice")
    assert got.endswith(second)


def test_qmail_inject_says_the_queue_is_full(world):
    world.qfs.fill()
    result = world.inst.run([str(world.inst.path / "bin" / "qmail-inject"),
                             "-f", SENDER, RCPT],
                            input=message("inject"))
    assert result.returncode == 111
    assert result.stderr == (b"qmail-inject: fatal: qq write error or disk "
                             b"full (#4.3.0)\n")
    world.assert_nothing_queued()
    world.qfs.release()
    result = world.inst.run([str(world.inst.path / "bin" / "qmail-inject"),
                             "-f", SENDER, RCPT],
                            input=message("inject"))
    assert (result.returncode, result.stderr) == (0, b"")


# ---- the mailbox file system full ----


def test_maildir_full_defers_then_delivers_once(world):
    queue = world.start_queue()
    data = message("maildir", 40 * 1024)
    world.mfs.fill()
    world.inject(data)
    no_space = deferral(r"Unable_to_write_Maildir_file_\./Maildir/tmp/"
                        + MAILDIR_NAME
                        + r":_No_space_left_on_device\._\(#4\.3\.0\)/")
    wait_lines(queue, no_space)
    assert world.maildir_files("demo", "tmp") == []
    assert world.maildir_files("demo", "new") == []
    queued = world.queue_files()
    assert [f.split("/")[0] for f in queued] == ["info", "local", "mess"]

    # Some room, not enough: the copy dies half-way and is removed.
    world.mfs.leave_free(2)
    retry_now(queue)
    wait_lines(queue, no_space, 2)
    assert world.maildir_files("demo", "tmp") == []
    assert world.maildir_files("demo", "new") == []
    assert world.mfs.free_pages() == 2
    assert world.queue_files() == queued

    world.mfs.release()
    retry_now(queue)
    wait_delivered_once(world, queue, "demo", data)


# ---- unwritable mailbox, missing home ----


@pytest.mark.parametrize("sub,code", [("tmp", "4.2.1"), ("new", "4.3.0")])
def test_unwritable_maildir_defers(world, sub, code):
    queue = world.start_queue()
    folder = world.home("demo") / "Maildir" / sub
    folder.chmod(0o500)
    data = message("unwritable " + sub)
    world.inject(data)
    wait_lines(queue, deferral(
        r"Unable_to_write_Maildir_file_\./Maildir/" + sub + "/"
        + MAILDIR_NAME + r":_Permission_denied\._\(#"
        + re.escape(code) + r"\)/"))
    folder.chmod(0o700)
    assert world.maildir_files("demo", "tmp") == []
    assert world.maildir_files("demo", "new") == []
    retry_now(queue)
    wait_delivered_once(world, queue, "demo", data)


def test_missing_home_defers(world):
    queue = world.start_queue()
    home = world.home("bob")
    away = home.with_name("bob.away")
    home.rename(away)
    data = message("homeless")
    world.inject(data, rcpts=["bob@example.test"])
    wait_lines(queue, deferral(
        "Unable_to_switch_to_" + re.escape(str(home))
        + r":_No_such_file_or_directory\._\(#4\.3\.0\)/"))
    assert world.queue_files()[0].startswith("info/")
    away.rename(home)
    retry_now(queue)
    wait_delivered_once(world, queue, "bob", data)


# ---- EMFILE ----


def prlimit(nofile):
    tool = shutil.which("prlimit")
    if tool is None:
        pytest.skip("prlimit (util-linux) is not installed")
    return [tool, f"--nofile={nofile}:{nofile}"]


def wrapper_script(world, path, nofile, program, pass_args):
    """A script that runs program with RLIMIT_NOFILE = nofile; the only
    thing it adds to program's arguments is its own ("$@")."""
    argv = prlimit(nofile) + [str(program)]
    line = "exec " + " ".join(shlex.quote(a) for a in argv)
    text = "#!/bin/sh\n" + line + (' "$@"\n' if pass_args else "\n")
    world.write_owned(path, text, 0o755)
    return path


def test_smtpd_out_of_descriptors_gives_451(world):
    """qmail-smtpd itself cannot make the pipes to qmail-queue, and says
    so in its reply to DATA."""
    server = world.start_smtpd(wrapper=prlimit(8))
    assert smtp_send(server, message("emfile")) == QQ_START
    world.assert_nothing_queued()


def is_static(program):
    """True when program has no dynamic loader (PT_INTERP)."""
    out = subprocess.run(["readelf", "-l", str(program)],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return b"INTERP" not in out.stdout


def test_qmail_queue_out_of_descriptors_gives_451(world):
    """qmail-queue never holds two descriptors of its own at once, so
    with no descriptor free below its limit its very first open fails.
    Linked statically (with musl, see the Makefile) that open is its own
    pid/ file: exit 63, "451 qq trouble creating files in queue".
    Linked dynamically, the dynamic loader fails first (exit 127), which
    qmail-smtpd(8) answers as an unlisted exit code. Either way nothing
    is queued."""
    program = world.inst.path / "bin" / "qmail-queue"
    wrapper = wrapper_script(world, world.inst.path / "qq-emfile", 3,
                             program, pass_args=False)
    server = world.start_smtpd(QMAILQUEUE=str(wrapper))
    if is_static(program):
        assert smtp_send(server, message("emfile")) == \
            (451, b"qq trouble creating files in queue (#4.3.0)")
    else:
        assert smtp_send(server, message("emfile")) == QQ_UNLISTED
        assert "Error 24" in server.log_text()  # EMFILE, from ld.so
    world.assert_nothing_queued()


def test_qmail_local_out_of_descriptors_defers(world):
    """qmail-local, run by qmail-lspawn with one descriptor to spare,
    cannot make the pipes to forward the message: it defers, and the
    forward happens once, after the limit is gone."""
    bindir = world.inst.path / "bin"
    real = bindir / "qmail-local.real"
    (bindir / "qmail-local").rename(real)
    wrapper_script(world, bindir / "qmail-local", 4, real, pass_args=True)
    world.write_owned(world.home("demo") / ".qmail", "&alice@example.test\n")
    queue = world.start_queue()
    data = message("emfile local")
    world.inject(data)
    wait_lines(queue, deferral(
        r"Unable_to_fork:_Too_many_open_files\._\(#4\.3\.0\)/"))
    queued = world.queue_files()
    assert [f.split("/")[0] for f in queued] == ["info", "local", "mess"]
    real.rename(bindir / "qmail-local")
    retry_now(queue)
    wait_lines(queue, r"delivery \d+: success: did_0\+1\+0/qp_\d+/")
    wait_delivered_once(world, queue, "alice", data)
    assert world.delivered("demo") == []


# ---- file modes ----


def assert_mode(path, mode, world):
    st = os.stat(path)
    assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == \
        (oct(mode), world.inst.uid, world.inst.gid), path


def split_path(world, directory, msgid):
    return world.queue_dir / directory / str(msgid % qmtest.SPLIT) / \
        str(msgid)


def test_queue_and_maildir_file_modes(world):
    # qmail-queue's files, before qmail-send takes the message.
    world.inject(message("modes"), rcpts=[RCPT, "far@remote.test"])
    (mess,) = [f for f in world.queue_files() if f.startswith("mess/")]
    msgid = int(mess.split("/")[-1])
    assert_mode(world.queue_dir / mess, 0o644, world)
    assert_mode(world.queue_dir / "intd" / str(msgid), 0o644, world)
    assert_mode(world.queue_dir / "todo" / str(msgid), 0o644, world)

    # qmail-send's, with both channels on hold so that they stay.
    world.inst.control("concurrencylocal", "0\n")
    world.inst.control("concurrencyremote", "0\n")
    queue = world.start_queue()
    wait_for(lambda: not (world.queue_dir / "todo" / str(msgid)).exists()
             and not (world.queue_dir / "intd" / str(msgid)).exists(),
             timeout=TIMEOUT, message="qmail-send to take the message")
    for directory in ("info", "local", "remote"):
        assert_mode(split_path(world, directory, msgid), 0o600, world)
    queue.stop()

    # A bounce that cannot be injected keeps its bounce/ file.
    (world.inst.path / "control" / "concurrencylocal").unlink()
    world.inst.base_env = dict(world.inst.env(), QMAILQUEUE="/bin/false")
    try:
        queue = world.start_queue()
    finally:
        world.inst.base_env = None
    world.inject(message("bounce"), rcpts=["demo-nosuch@example.test"])
    wait_lines(queue, r"delivery \d+: failure: Sorry,_no_mailbox_here_by_"
               r"that_name\._\(#5\.1\.1\)/")
    bounces = wait_for(lambda: os.listdir(world.queue_dir / "bounce"),
                       timeout=TIMEOUT, message="a bounce file")
    assert len(bounces) == 1
    assert_mode(world.queue_dir / "bounce" / bounces[0], 0o600, world)

    # qmail-local's Maildir file (made in tmp/, linked into new/).
    wait_lines(queue, SUCCESS)
    (delivered,) = world.maildir_files("demo", "new")
    assert_mode(delivered, 0o600, world)
    assert world.maildir_files("demo", "tmp") == []


# ---- the environment of a |program delivery ----


DUMP = """#!/usr/bin/python3 -I
# Records what a .qmail program is given: its initial environment (from
# /proc, before Python touches it), ids, directory and open descriptors.
import json, os, sys
with open("/proc/self/environ", "rb") as f:
    raw = f.read()
fds = []
for fd in range(3, 1024):
    try:
        os.fstat(fd)
    except OSError:
        continue
    fds.append(fd)
env = dict(item.split("=", 1) for item in
           raw.decode("utf-8", "surrogateescape").split("\\0") if item)
data = sys.stdin.buffer.read()
out = {"env": env, "uid": os.getuid(), "gid": os.getgid(),
       "groups": os.getgroups(), "cwd": os.getcwd(), "fds": fds,
       "message_tail": data[-40:].decode("utf-8", "replace")}
with open("envdump.tmp", "w") as f:
    json.dump(out, f)
os.rename("envdump.tmp", "envdump")
"""
DOCUMENTED = {"SENDER", "NEWSENDER", "RECIPIENT", "USER", "HOME", "LOCAL",
              "HOST", "HOST2", "HOST3", "HOST4", "EXT", "EXT2", "EXT3",
              "EXT4", "DEFAULT", "DTLINE", "RPLINE", "UFLINE"}


def test_program_gets_only_the_documented_environment(world):
    home = world.home("demo")
    pwned = home / "pwned"
    world.write_owned(home / "dumpenv", DUMP, 0o755)
    world.write_owned(home / ".qmail-env-default",
                      "|./dumpenv\n|/bin/bash -c true\n")
    start_env = {"PATH": "/usr/bin:/bin",
                 "QMAILHOME": str(world.inst.path),
                 "QM_MARK": "inherited"}
    start_env.update(qmtest.SANITIZER_ENV)
    # A Shellshock-style sender: bash must see it as a plain string.
    sender = f"() {{ :;}}; echo pwned > {pwned}"
    world.inst.base_env = start_env
    try:
        queue = world.start_queue()
    finally:
        world.inst.base_env = None
    # The harness adds UBSan's log_path (queuectl.Queue.start): compare
    # with what qmail-start was really given.
    start_env = dict(queue.env)
    data = message("environment")
    world.inject(data, rcpts=["demo-env-box@example.test"], sender=sender)
    wait_lines(queue, r"delivery \d+: success: did_0\+0\+2/")
    got = json.loads((home / "envdump").read_text())
    env = got["env"]
    # The shell (qmail-local runs /bin/sh -c) adds PWD; nothing else may
    # appear that qmail-start was not given.
    assert set(env) == set(start_env) | DOCUMENTED | {"PWD"}
    for name, value in start_env.items():
        assert env[name] == value, name
    assert env["PWD"] == str(home)
    assert {k: env[k] for k in DOCUMENTED - {"UFLINE"}} == {
        "SENDER": sender, "NEWSENDER": sender,
        "RECIPIENT": "demo-env-box@example.test",
        "USER": world.inst.account, "HOME": str(home),
        "LOCAL": "demo-env-box", "HOST": "example.test",
        "HOST2": "example", "HOST3": "example", "HOST4": "example",
        "EXT": "env-box", "EXT2": "box", "EXT3": "", "EXT4": "",
        "DEFAULT": "box",
        "DTLINE": "Delivered-To: demo-env-box@example.test\n",
        # Not a dot-atom: quoted (qmail-local(8)).
        "RPLINE": f'Return-Path: <"{sender}">\n'}
    # Blanks in the mbox From line become dashes.
    assert re.fullmatch("From " + re.escape(sender.replace(" ", "-"))
                        + r" \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n",
                        env["UFLINE"]), env["UFLINE"]
    # Only the message and the report: no queue file or pipe leaks in.
    assert got["fds"] == []
    assert (got["uid"], got["gid"]) == (world.inst.uid, world.inst.gid)
    assert set(got["groups"]) <= {world.inst.gid}
    assert got["cwd"] == str(home)
    assert got["message_tail"] == data[-40:].decode()
    assert not pwned.exists()
