"""End-to-end tests of qmail-overview: an instance whose queue runs under
svscan with multilog, real local and remote deliveries, a deferral to a
refusing loopback port, a permanent failure with its bounce, a restart
of qmail-send, and a service that is down; then the exact health lines
and per-domain numbers, computed independently from the log here.

Everything under svscan runs as the instance's account, in one session
that the fixture ends with svc -dx and checks is empty. Waiting is done
only with bounded polls.
"""

import os
import re
import socket
import signal
import subprocess
import time

import pytest

import qmtest
from qmtest import is_root, wait_for

HOST = "example.test"
AGE = r"(\d+s|\d+m\d\ds|\d+h\d\dm)"
DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
TAI64_UNIX = (1 << 62) + 10
HEADER = ("domain                   msgs rcpts  dlvd defer  fail "
          " avg-delay max-delay")
NO_MAILBOX = "Sorry, no mailbox here by that name. (#5.1.1)"
MESSAGE = b"Subject: overview\n\nhello\n"


def own(inst, path):
    if is_root():
        os.chown(path, inst.uid, inst.gid)


def write_script(inst, path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    own(inst, path.parent)
    path.write_text(text)
    path.chmod(0o755)
    own(inst, path)


class ServiceTree:
    """svscan on the instance's service/ directory, as its account."""

    def __init__(self, inst, logbook):
        self.inst = inst
        self.dir = inst.path / "service"
        self.log_path = logbook.new("svscan")
        self.proc = None

    def add(self, name, run, log_run=None):
        write_script(self.inst, self.dir / name / "run", run)
        if log_run:
            write_script(self.inst, self.dir / name / "log" / "run", log_run)

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.inst.as_account(["svscan", str(self.dir)]),
                env=self.inst.env(), cwd=self.inst.path,
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def svc(self, flags, name):
        result = subprocess.run(["svc", flags, str(self.dir / name)],
                                capture_output=True, timeout=10)
        assert result.returncode == 0, result.stderr

    def svstat(self, name):
        result = subprocess.run(["svstat", str(self.dir / name)],
                                capture_output=True, timeout=10)
        return result.stdout.decode(errors="replace")

    def up_for(self, name):
        m = re.search(r": up \(pid \d+\) (\d+) seconds", self.svstat(name))
        return int(m.group(1)) if m else -1

    def stop(self):
        """svscan first, so that it starts nothing new; then svc -dx every
        service; nothing of the session may be left."""
        if self.proc is None:
            return
        sid = self.proc.pid
        try:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            dirs = [d for d in self.dir.glob("*") if d.is_dir()]
            dirs += [d / "log" for d in dirs if (d / "log").is_dir()]
            for d in dirs:
                subprocess.run(["svc", "-dx", str(d)], capture_output=True,
                               timeout=10)
            wait_for(lambda: not qmtest.session_members(sid), timeout=30,
                     message="every supervised process to end")
        finally:
            for pid, _ in qmtest.session_members(sid):
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None


@pytest.fixture
def refusing_port():
    """A loopback port bound but not listening: connections are refused,
    and no other process can take it while the test runs."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def silent_port():
    """A loopback port that takes connections and never says a word, so a
    delivery there stays under way. Closing it resets them all."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def tree(make_instance, qm_logbook):
    inst = make_instance(host=HOST, mailboxes=("demo", "alice", "bob"))
    tree = ServiceTree(inst, qm_logbook)
    yield tree
    tree.stop()


# ---- the log, read independently ----


def log_lines(inst):
    """(ms, text) of every whole line of log/qmail/current."""
    try:
        data = (inst.path / "log" / "qmail" / "current").read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for raw in data.decode(errors="replace").split("\n")[:-1]:
        m = re.match(r"@([0-9a-f]{16})([0-9a-f]{8}) (.*)", raw)
        if m:
            ms = ((int(m.group(1), 16) - TAI64_UNIX) * 1000
                  + int(m.group(2), 16) // 1000000)
            out.append((ms, m.group(3)))
        else:
            out.append((None, raw))
    return out


def count(inst, prefix):
    return sum(1 for _, line in log_lines(inst) if line.startswith(prefix))


def count_re(inst, pattern):
    regex = re.compile(pattern)
    return sum(1 for _, line in log_lines(inst) if regex.search(line))


def wait_count(inst, prefix, n, timeout=30):
    wait_for(lambda: count(inst, prefix) >= n, timeout=timeout,
             message=f"{n} log lines starting {prefix!r}")
    assert count(inst, prefix) == n


def fmt_age(s):
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def utc(ms):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms // 1000))


def fmt_delay(ms):
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60000:
        return f"{ms // 1000}.{ms % 1000 // 100}s"
    return fmt_age(ms // 1000)


def delays(inst):
    """{domain: [ms]} from new msg to each success, as logged."""
    born, started, out = {}, {}, {}
    for ms, line in log_lines(inst):
        m = re.fullmatch(r"new msg (\d+)", line)
        if m:
            born[m.group(1)] = ms
        m = re.fullmatch(r"starting delivery (\d+): msg (\d+) to \w+ "
                         r"\S*@(\S+)", line)
        if m:
            started[m.group(1)] = (m.group(2), m.group(3).lower())
        m = re.match(r"delivery (\d+): success", line)
        if m:
            msg, dom = started.pop(m.group(1))
            out.setdefault(dom, []).append(ms - born[msg])
    return out


def delay_columns(ms_list):
    if not ms_list:
        return "-", "-"
    return fmt_delay(sum(ms_list) // len(ms_list)), fmt_delay(max(ms_list))


def row(name, msgs, rcpts, dlvd, defer, fail, avg, mx):
    return (f"{name:<24}{msgs:>5}{rcpts:>6}{dlvd:>6}{defer:>6}{fail:>6}"
            f"{avg:>10}{mx:>10}")


def disk_line_level(path):
    vfs = os.statvfs(path)
    pct = vfs.f_bavail * 100 // vfs.f_blocks if vfs.f_blocks else 100
    levels = [pct]
    if vfs.f_files:
        levels.append(vfs.f_favail * 100 // vfs.f_files)
    low = min(levels)
    return "FAIL" if low < 5 else "WARN" if low < 15 else "OK"


# ---- the scenario ----


def send(inst, *rcpts):
    result = inst.run([str(inst.bindir / "sendmail"), "-f",
                       f"demo@{HOST}", *rcpts], input=MESSAGE)
    assert result.returncode == 0, result.stderr


def overview(inst, *args, stdin=None):
    return inst.run([str(inst.bindir / "qmail-overview"), *args],
                    input=stdin)


def deferrals(inst):
    return count_re(inst, r"^delivery \d+: deferral")


def alarm_ready_pid(tree):
    """The pid of the supervised qmail-send once it catches SIGALRM (its
    handlers are in place); None before that."""
    m = re.search(r": up \(pid (\d+)\)", tree.svstat("qmail"))
    if not m:
        return None
    try:
        with open(f"/proc/{m.group(1)}/status") as f:
            status = f.read()
    except OSError:
        return None
    caught = re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M)
    if ("\nName:\tqmail-send\n" not in "\n" + status or not caught
            or not int(caught.group(1), 16) >> (signal.SIGALRM - 1) & 1):
        return None
    return int(m.group(1))


def restart_and_retry(tree, how):
    """Restart qmail-send (svc -t or -k), then ALRM once the new one is
    ready: a deferred message keeps its retry time across a restart."""
    old = alarm_ready_pid(tree)
    assert old is not None
    tree.svc(how, "qmail")
    wait_for(lambda: alarm_ready_pid(tree) not in (None, old), timeout=30,
             message="a new qmail-send")
    tree.svc("-a", "qmail")


def run_scenario(tree, port, silent):
    inst = tree.inst
    inst.control("smtproutes", f"remote.test:[127.0.0.1]:{port}\n"
                 f"slow.test:[127.0.0.1]:{silent}\n")
    logdir = inst.path / "log" / "qmail"
    tree.add("qmail", "#!/bin/sh\nexec 2>&1\nexec qmail-start ./Maildir/\n",
             f"#!/bin/sh\nexec multilog t {logdir}\n")
    tree.add("smtpd", "#!/bin/sh\nexec sleep 3600\n")
    logdir.mkdir()
    own(inst, logdir)
    tree.start()
    wait_for(lambda: count(inst, "status: local") >= 1, timeout=30,
             message="qmail-send to start under svscan")

    send(inst, f"alice@{HOST}", f"bob@{HOST}")
    wait_count(inst, "end msg", 1)
    send(inst, f"alice@{HOST}")
    wait_count(inst, "end msg", 2)
    send(inst, f"nosuch@{HOST}")  # fails, and its bounce is delivered
    wait_count(inst, "end msg", 4)
    send(inst, "someone@remote.test")
    wait_for(lambda: deferrals(inst) == 1, timeout=60,
             message="the first deferral")
    tree.svc("-a", "qmail")  # ALRM: try again now
    wait_for(lambda: deferrals(inst) == 2, timeout=60,
             message="the second deferral")
    restart_and_retry(tree, "-t")  # a clean restart
    wait_for(lambda: deferrals(inst) == 3, timeout=60,
             message="the deferral after the restart")
    send(inst, f"alice@{HOST}")
    wait_count(inst, "end msg", 5)
    # A crash while a delivery is under way: it never reports, and the
    # next run numbers its deliveries from 1 again.
    send(inst, "x@slow.test")
    slow = r"^starting delivery \d+: msg \d+ to remote x@slow\.test$"
    wait_for(lambda: count_re(inst, slow) == 1, timeout=60,
             message="the delivery to the silent server")
    restart_and_retry(tree, "-k")
    wait_for(lambda: count_re(inst, slow) == 2 and deferrals(inst) == 4,
             timeout=60, message="both retries after the crash")
    tree.svc("-d", "smtpd")
    wait_for(lambda: ": down " in tree.svstat("smtpd"), timeout=30,
             message="smtpd to be down")
    wait_for(lambda: tree.up_for("qmail") >= 5, timeout=30,
             message="qmail up for 5 seconds")
    wait_for(lambda: tree.up_for("qmail/log") >= 5, timeout=30,
             message="its log up for 5 seconds")


def test_overview_of_real_deliveries(tree, refusing_port, silent_port):
    inst = tree.inst
    run_scenario(tree, refusing_port, silent_port)
    # Both restarts really reused delivery numbers.
    starts = [line for _, line in log_lines(inst)
              if line.startswith("starting delivery 1:")]
    assert len(starts) == 3, starts
    assert count(inst, "status: exiting") == 1

    queue_before = {f: os.stat(inst.path / "queue" / f).st_mtime_ns
                    for f in inst.queue_files()}
    result = overview(inst)
    assert result.returncode == 2, result.stderr  # smtpd is down
    assert result.stderr == b""
    out = result.stdout.decode("ascii").split("\n")
    lines = log_lines(inst)
    byte_total = sum(int(m.group(1)) for _, line in lines
                     for m in [re.match(r"info msg \d+: bytes (\d+) ", line)]
                     if m)
    assert count(inst, "new msg") == 7

    assert re.fullmatch(rf"qmail-overview: {re.escape(str(inst.path))}, "
                        rf"{DATE}", out[0]), out[0]
    assert re.fullmatch(rf"OK    service qmail         up {AGE}; "
                        rf"log up {AGE}", out[1]), out[1]
    assert re.fullmatch(rf"FAIL  service smtpd         down {AGE}, "
                        r"normally up", out[2]), out[2]
    assert re.fullmatch(rf"OK    queue                 messages 2, not yet "
                        rf"processed 0, oldest {AGE}", out[3]), out[3]
    assert out[4] == "OK    recipients pending    local 0, remote 2"
    level = disk_line_level(inst.path / "queue")
    assert re.fullmatch(rf"{level} +disk +free \d+\.\d [KMGTP]iB of "
                        r"\d+\.\d [KMGTP]iB \(\d+%\)"
                        r"(, inodes free \d+ \(\d+%\))?", out[5]), out[5]
    assert out[6] == ("OK    queue lock            lock/trigger and "
                      "lock/sendmutex present")
    assert out[7] == (f"OK    qmail-send log        lines {len(lines)} "
                      "(not qmail-send's 0), warnings 0, fatal 0")
    assert out[8] == ""
    assert re.fullmatch(rf"activity in the last 1d00h, since {DATE}",
                        out[9]), out[9]
    stamps = [ms for ms, _ in lines]
    assert out[10] == (f"log lines from {utc(min(stamps))} to "
                       f"{utc(max(stamps))}")
    assert out[11] == (f"new messages 7 ({byte_total} bytes), bounces 1 "
                       "(discarded 0)")
    # The delivery lost in the crash is forgotten; its retry is under way.
    assert out[12] == ("qmail-send restarts 2, deliveries in progress 1, "
                       "results without a start 0")
    assert out[13] == ""
    d = delays(inst)
    assert len(d["example.test"]) == 5 and "remote.test" not in d
    deferral = ("Sorry, I wasn't able to establish an SMTP connection. "
                f"(#4.4.1)/Last attempt: [127.0.0.1] port {refusing_port}: "
                "connection refused.")
    assert out[14:] == [
        HEADER,
        row("example.test", 5, 6, 5, 0, 1,
            *delay_columns(d["example.test"])),
        f"  failure (1): {NO_MAILBOX}",
        row("remote.test", 1, 1, 0, 4, 0, "-", "-"),
        f"  deferral (4): {deferral}",
        row("total", 6, 7, 5, 4, 1, *delay_columns(d["example.test"])),
        "",
    ]

    # The whole log from standard input, and as a directory: the same.
    data = (inst.path / "log" / "qmail" / "current").read_bytes()
    for args, stdin in ((["-t", "0", "-"], data),
                        (["-t", "0", str(inst.path / "log" / "qmail")], None)):
        again = overview(inst, *args, stdin=stdin)
        assert again.returncode == 2, again.stderr
        lines2 = again.stdout.decode().split("\n")
        assert lines2[9] == "activity in the whole log"
        assert lines2[10:] == out[10:]

    # Without stamps (a log captured without multilog): the same counts,
    # and no delays.
    plain = b"".join(re.sub(rb"^@[0-9a-f]{24} ", b"", line) + b"\n"
                     for line in data.split(b"\n")[:-1])
    bare = overview(inst, "-m", "1", "-", stdin=plain)
    lines3 = bare.stdout.decode().split("\n")
    assert lines3[9] == "activity in the whole log (it has no time stamps)"
    assert lines3[10:12] == out[11:13]
    assert lines3[13:] == [
        HEADER,
        row("example.test", 5, 6, 5, 0, 1, "-", "-"),
        f"  failure (1): {NO_MAILBOX}",
        "(1 more domains)",
        row("total", 6, 7, 5, 4, 1, "-", "-"),
        "",
    ]

    # A window that ends before any of it: nothing counted. (This is
    # about time passing: the window is one second.)
    last = max(ms for ms, _ in log_lines(inst)) / 1000
    wait_for(lambda: time.time() > last + 2.5, timeout=10,
             message="the log to be older than the window")
    empty = overview(inst, "-t", "1").stdout.decode().split("\n")
    assert re.fullmatch(rf"activity in the last 1s, since {DATE}", empty[9])
    assert empty[11] == ("qmail-send restarts 0, deliveries in progress 1, "
                         "results without a start 0")
    assert empty[10] == "new messages 0 (0 bytes), bounces 0 (discarded 0)"
    assert empty[13:] == [HEADER, row("total", 0, 0, 0, 0, 0, "-", "-"), ""]

    # It only looked.
    assert {f: os.stat(inst.path / "queue" / f).st_mtime_ns
            for f in inst.queue_files()} == queue_before


# ---- without services and logs ----


def put(inst, rel, data, mtime=None):
    path = inst.path / "queue" / rel
    path.write_bytes(data)
    own(inst, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_overview_of_a_stalled_queue(instance):
    """A message left in todo/ for ten minutes, no trigger, an empty
    service directory, and a log with a warning and garbage."""
    old = int(time.time()) - 600
    put(instance, "mess/5/5", b"Subject: x\n\nbody\n", old)
    put(instance, "todo/5", b"u100\0p200\0Fs@example.org\0Tr@example.net\0",
        old)
    put(instance, "mess/7/30", b"m", old + 60)
    put(instance, "info/7/30", b"Fs@example.org\0", old + 60)
    put(instance, "remote/7/30", b"Ta@x.test\0Db@x.test\0Tc@y.test\0")
    put(instance, "local/7/30", b"Td@example.test\0")
    (instance.path / "queue" / "lock" / "trigger").unlink()
    log = (b"warning: unable to read todo: Permission denied\n"
           b"not a qmail-send line\n"
           b"new msg 30\n"
           b"starting delivery 1: msg 30 to remote a@X.test\n"
           b"delivery 1: deferral: try_later/\n"
           b"delivery 1: success: cut off")  # no newline: still written
    before = instance.queue_files()
    result = overview(instance, "-s", str(instance.path / "service"), "-",
                      stdin=log)
    assert result.returncode == 2, result.stderr
    out = result.stdout.decode("ascii").split("\n")
    assert out[1] == (f"WARN  services              none in "
                      f"{instance.path}/service")
    assert re.fullmatch(r"WARN  queue                 messages 2, not yet "
                        r"processed 1 for 10m0\ds, oldest 10m0\ds",
                        out[2]), out[2]
    assert out[3] == "OK    recipients pending    local 1, remote 2"
    assert out[5] == ("FAIL  queue lock            lock/trigger: missing")
    assert out[6] == ("WARN  qmail-send log        lines 5 (not qmail-send's "
                      "1), warnings 1, fatal 0; last: warning: unable to "
                      "read todo: Permission denied")
    assert out[8] == "activity in the whole log (it has no time stamps)"
    assert out[9] == "new messages 1 (0 bytes), bounces 0 (discarded 0)"
    assert out[10] == ("qmail-send restarts 0, deliveries in progress 0, "
                       "results without a start 0")
    assert out[12:] == [
        HEADER,
        row("x.test", 1, 1, 0, 1, 0, "-", "-"),
        "  deferral (1): try later",
        row("total", 1, 1, 0, 1, 0, "-", "-"),
        "",
    ]
    assert instance.queue_files() == before


def test_overview_unreadable_queue_and_log(instance):
    missing = instance.path / "log" / "nothing-here"
    result = overview(instance, "-d", str(instance.path / "nonexistent"),
                      "-s", str(instance.path / "service"), str(missing))
    assert result.returncode == 2
    out = result.stdout.decode().split("\n")
    assert out[2] == (f"FAIL  queue                 unable to switch to "
                      f"{instance.path}/nonexistent/queue: No such file or "
                      "directory")
    assert out[3] == (f"WARN  qmail-send log        unable to read {missing}: "
                      "No such file or directory")
    assert (f"qmail-overview: warning: unable to read {missing}: No such "
            "file or directory").encode() in result.stderr


@pytest.mark.parametrize("args", [["-x"], ["-t", "abc"], ["-t", "-5"],
                                  ["-m", "99999999999"]])
def test_overview_bad_options(instance, args):
    result = overview(instance, *args)
    assert result.returncode == 100
    assert result.stdout == b""
    assert result.stderr.startswith(b"qmail-overview: fatal: ")


def test_overview_services_not_supervised(instance):
    """A service that supervise does not run is a failure, in svstat's
    words; without svstat nothing can be told, and it says why."""
    write_script(instance, instance.path / "service" / "smtpd" / "run",
                 "#!/bin/sh\nexec sleep 3600\n")
    result = overview(instance, "-")
    out = result.stdout.decode().split("\n")
    assert out[1] == ("FAIL  service smtpd         unable to open "
                      "supervise/ok: file does not exist")
    assert result.returncode == 2

    # A PATH with setuidgid (for the harness, as root) but no svstat.
    tools = qmtest.make_public_tempdir("qm-nosvstat-")
    try:
        os.symlink("/usr/bin/setuidgid", tools / "setuidgid")
        env = instance.env()
        env["PATH"] = str(tools)
        result = instance.run([str(instance.bindir / "qmail-overview"), "-"],
                              input=b"", env=env)
        out = result.stdout.decode().split("\n")
        assert out[1] == ("WARN  service smtpd         unable to run svstat: "
                          "No such file or directory")
    finally:
        qmtest.remove_tree(tools)
