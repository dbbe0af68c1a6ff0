"""Tests of the end-to-end harness itself: qmail-instance's layout, the
fixtures, servers under tcpserver and their clean teardown.

These tests must prove that the fixtures work for real; they must never
leave a process or a /tmp directory behind, even when they fail.
"""

import hashlib
import os
import pathlib
import socket
import stat
import subprocess
import sys
import textwrap

import pytest

import qmtest
from qmtest import is_root, wait_for

QUEUE_MODES = {
    ".": 0o750, "pid": 0o700, "intd": 0o700, "todo": 0o750,
    "bounce": 0o700, "lock": 0o750,
}
SPLIT_MODES = {"mess": 0o750, "info": 0o700, "local": 0o700,
               "remote": 0o700}


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def lines_of(path):
    return pathlib.Path(path).read_text().splitlines()


# ---- the instance ----


def test_instance_control_files(instance):
    control = instance.path / "control"
    assert (control / "me").read_text() == "example.test\n"
    for name in ("locals", "rcpthosts"):
        assert set(lines_of(control / name)) >= {"example.test", "localhost"}
    assert (control / "defaultdelivery").read_text() == "./Maildir/\n"
    assert (instance.path / "INSTANCE").read_text() == instance.account + "\n"
    assert os.readlink(instance.path / "bin") == str(instance.bindir)


def test_instance_queue_layout(instance):
    queue = instance.path / "queue"
    for name, mode in QUEUE_MODES.items():
        assert (queue / name).is_dir(), name
        assert mode_of(queue / name) == mode, name
    for name, mode in SPLIT_MODES.items():
        assert mode_of(queue / name) == mode, name
        entries = sorted(os.listdir(queue / name), key=int)
        assert entries == [str(i) for i in range(qmtest.SPLIT)], name
        for sub in entries:
            assert (queue / name / sub).is_dir()
            assert mode_of(queue / name / sub) == mode, f"{name}/{sub}"
    assert stat.S_ISFIFO(os.lstat(queue / "lock" / "trigger").st_mode)
    assert instance.queue_files() == []


def test_instance_mailboxes_and_assign(instance):
    for box in ("demo", "alice", "bob"):
        for sub in ("new", "cur", "tmp"):
            assert instance.maildir(box).joinpath(sub).is_dir()
        assert instance.maildir_messages(box) == []
    assign = lines_of(instance.path / "users" / "assign")
    assert assign[-1] == "."
    assert f"=alice:{instance.account}:{instance.uid}:{instance.gid}:" \
        f"{instance.path}/mail/alice:::" in assign


@pytest.mark.skipif(not is_root(), reason="ownership matters only as root")
def test_instance_owned_by_unprivileged_account(instance):
    assert instance.account != "root"
    assert instance.uid != 0 and instance.gid != 0
    for root, dirs, files in os.walk(instance.path):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            st = os.lstat(name)
            assert (st.st_uid, st.st_gid) == (instance.uid, instance.gid), \
                name


def test_make_instance_factory(make_instance, instance):
    other = make_instance(host="other.test", mailboxes=["carol"])
    assert (other.path / "control" / "me").read_text() == "other.test\n"
    assert os.listdir(other.path / "mail") == ["carol"]
    assert other.path != instance.path
    assert other.account == instance.account


def snapshot(root):
    """Everything qmail-instance could change under root, except directory
    times and the bin symlink's inode (it is refreshed on purpose)."""
    state = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            entry = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                     st.st_uid, st.st_gid]
            if stat.S_ISLNK(st.st_mode):
                entry.append(os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                data = pathlib.Path(path).read_bytes()
                entry.append(hashlib.sha256(data).hexdigest())
                if rel != "users/cdb":  # rebuilt by qmail-newu each time
                    entry += [st.st_ino, st.st_mtime_ns]
            state[rel] = entry
    return state


def test_rerun_changes_nothing(instance):
    instance.control("me", "edited.test\n")
    message = instance.maildir("alice") / "new" / "1.x"
    message.write_text("keep me\n")
    if is_root():
        os.chown(message, instance.uid, instance.gid)
    before = snapshot(instance.path)
    result = instance.install()
    assert result.returncode == 0, result.stderr
    assert snapshot(instance.path) == before
    assert (instance.path / "control" / "me").read_text() == "edited.test\n"
    assert instance.maildir_messages("alice") == [("1.x", b"keep me\n")]


# ---- instance helpers ----


def test_control_is_atomic_and_owned(instance):
    path = instance.control("concurrencyremote", "7\n")
    assert path.read_text() == "7\n"
    st = os.lstat(path)
    if is_root():
        assert (st.st_uid, st.st_gid) == (instance.uid, instance.gid)
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert not [n for n in os.listdir(path.parent) if n.startswith(".")]
    with pytest.raises(ValueError):
        instance.control("../escape", "x")
    nested = instance.control("sub/dir/file", b"\x00bytes")
    assert nested.read_bytes() == b"\x00bytes"
    if is_root():
        for path in (nested, nested.parent, nested.parent.parent):
            assert os.lstat(path).st_uid == instance.uid, path


def test_run_as_account_with_environment(instance):
    result = instance.run(["sh", "-c", 'id -u; id -g; echo "$QMAILHOME"; '
                           'command -v qmail-instance; cat'],
                          input=b"from stdin\n", check=True)
    uid, gid, home, found, echoed = result.stdout.decode().splitlines()
    assert (int(uid), int(gid)) == (instance.uid, instance.gid)
    if is_root():
        assert int(uid) != 0
    assert home == str(instance.path)
    assert found == str(instance.bindir / "qmail-instance")
    assert echoed == "from stdin"
    env = instance.env()
    assert env["ASAN_OPTIONS"] == qmtest.SANITIZER_ENV["ASAN_OPTIONS"]
    assert env["UBSAN_OPTIONS"] == qmtest.SANITIZER_ENV["UBSAN_OPTIONS"]


def test_run_reports_failure(instance):
    result = instance.run(["sh", "-c", "echo oops >&2; exit 3"])
    assert result.returncode == 3 and result.stderr == b"oops\n"
    with pytest.raises(subprocess.CalledProcessError):
        instance.run(["false"], check=True)


def live_processes_matching(text):
    return [p for p in qmtest.all_pids()
            if text in qmtest.proc_cmdline(p) and qmtest.pid_alive(p)]


def test_run_timeout_kills_the_session(instance):
    # Unique durations, so that the sleeps can be found by their argv.
    background, foreground = (f"300.{os.getpid()}{i}" for i in (1, 2))
    with pytest.raises(subprocess.TimeoutExpired):
        instance.run(["sh", "-c", f"sleep {background} & sleep {foreground}"],
                     timeout=0.5)
    for duration in (background, foreground):
        wait_for(lambda: not live_processes_matching(f"sleep {duration}"),
                 timeout=2, message=f"sleep {duration} to die")


def test_maildir_and_queue_helpers(instance):
    new = instance.maildir("bob") / "new"
    cur = instance.maildir("bob") / "cur"
    (new / "2.b").write_bytes(b"two")
    (cur / "1.a:2,S").write_bytes(b"one")
    (instance.maildir("bob") / "tmp" / "3.c").write_bytes(b"not yet")
    assert instance.maildir_messages("bob") == [("1.a:2,S", b"one"),
                                                 ("2.b", b"two")]
    (instance.path / "queue" / "mess" / "5" / "123").write_bytes(b"m")
    (instance.path / "queue" / "todo" / "123").write_bytes(b"t")
    assert instance.queue_files() == ["mess/5/123", "todo/123"]


def test_wait_for():
    calls = []

    def third_time():
        calls.append(1)
        return len(calls) >= 3 and "done"

    assert wait_for(third_time, timeout=5, interval=0.01) == "done"
    with pytest.raises(AssertionError, match="never"):
        wait_for(lambda: 0, timeout=0.1, interval=0.01, message="never")


# ---- servers ----

ADDRESSES = [
    pytest.param("127.0.0.1", "TCP", id="ipv4"),
    pytest.param("::1", "TCP6", id="ipv6", marks=pytest.mark.skipif(
        not qmtest.ipv6_loopback_available(), reason="no IPv6 loopback")),
]


@pytest.mark.parametrize("host,proto", ADDRESSES)
def test_server_runs_program(servers, instance, host, proto):
    server = servers.start(["/usr/bin/env"], host=host, as_account=instance)
    assert server.host == host and server.proc.poll() is None
    env = qmtest.parse_env_output(qmtest.read_all(server.connect()))
    assert env["PROTO"] == proto
    assert env["TCPREMOTEIP"] == host
    assert env["TCPLOCALPORT"] == str(server.port)
    assert env["TCPLOCALHOST"] == "example.test"
    assert env["QMAILHOME"] == str(instance.path)
    assert env["PATH"].startswith(str(instance.bindir) + os.pathsep)
    assert env["ASAN_OPTIONS"] == qmtest.SANITIZER_ENV["ASAN_OPTIONS"]


@pytest.mark.parametrize("host,proto", ADDRESSES)
def test_server_runs_as_account(servers, instance, host, proto):
    server = servers.start(["sh", "-c", "id -u; id -g"], host=host,
                           as_account=instance)
    uid, gid = qmtest.read_all(server.connect()).decode().split()
    if is_root():
        assert (int(uid), int(gid)) == (instance.uid, instance.gid)
        assert int(uid) != 0
    else:
        assert int(uid) == os.getuid()


def test_server_without_account(servers):
    server = servers.start(["sh", "-c", "echo hello; echo to-log >&2"],
                           name="greeter")
    assert qmtest.read_all(server.connect()) == b"hello\n"
    wait_for(lambda: "to-log" in server.log_text())
    assert server.log_path.name.endswith("server-greeter.log")


def test_two_servers_get_distinct_ports(servers):
    a = servers.start(["true"])
    b = servers.start(["true"])
    assert a.port != b.port


def test_server_that_cannot_start_fails_with_its_log(servers):
    with pytest.raises(qmtest.ServerError, match="illegal option"):
        servers.start(["true"], tcpserver_opts=["-Z"])
    assert servers.running == []


def test_server_retries_a_port_in_use(servers, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = [taken.getsockname()[1]]
        real_free_port = qmtest.free_port

        def busy_first(host):
            return ports.pop() if ports else real_free_port(host)

        monkeypatch.setattr(qmtest, "free_port", busy_first)
        server = servers.start(["sh", "-c", "echo up"])
        assert server.port != taken.getsockname()[1]
    assert server.log_text().count("=== tcpserver") == 2
    assert qmtest.read_all(server.connect()) == b"up\n"


def children_of_session(sid):
    return [(pid, cmd) for pid, cmd in qmtest.session_members(sid)
            if pid != sid]


def test_stop_leaves_no_process(servers, instance):
    server = servers.start(["sleep", "300"], as_account=instance)
    sid = server.proc.pid
    conn = server.connect()
    try:
        children = wait_for(lambda: children_of_session(sid),
                            message="the sleep child")
        assert any("sleep 300" in cmd for _, cmd in children)
        servers.stop(server)
    finally:
        conn.close()
    assert server.proc.returncode is not None
    assert not qmtest.pid_alive(sid)
    for pid, _ in children:
        assert not qmtest.pid_alive(pid)
    assert qmtest.session_members(sid) == []
    assert servers.running == []
    servers.stop(server)  # stopping twice is harmless


def test_stop_kills_a_child_that_ignores_term(servers):
    server = servers.start(["sh", "-c", "trap '' TERM; sleep 300 & wait"])
    sid = server.proc.pid
    conn = server.connect()
    try:
        wait_for(lambda: children_of_session(sid))
        servers.stop(server)
    finally:
        conn.close()
    assert qmtest.session_members(sid) == []


# ---- qmail-instance on bad input ----


@pytest.fixture
def scratch():
    path = qmtest.make_public_tempdir("qm-scratch-")
    yield path
    qmtest.remove_tree(path)


def qmail_instance(bindir, *args):
    return subprocess.run([str(bindir / "qmail-instance"), *args],
                          capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL,
                          env=qmtest.program_env(bindir))


def test_bad_mailbox_name_is_refused(bindir, scratch):
    target = scratch / "inst"
    result = qmail_instance(bindir, "-H", "example.test", "-b", str(bindir),
                            "-m", "alice", "-m", "Bad/Name", str(target))
    err = result.stderr.decode()
    assert result.returncode == 100, err
    assert "usage" in err or "Bad/Name" in err
    assert not target.exists()
    assert os.listdir(scratch) == []


def test_path_with_space_is_refused(bindir, scratch):
    target = scratch / "with space"
    result = qmail_instance(bindir, "-H", "example.test", "-b", str(bindir),
                            str(target))
    err = result.stderr.decode()
    assert result.returncode == 111, err
    assert "instance path" in err and str(target) in err
    assert not (target / "control").exists()


@pytest.mark.skipif(not qmtest.is_root(), reason="only root makes an "
                    "instance for another account")
def test_unreachable_directory_is_refused(bindir, scratch):
    """As root, an instance below a directory that others may not search
    could not be used by its own account: refused, naming that
    directory."""
    closed = scratch / "closed"
    closed.mkdir(mode=0o700)
    os.chmod(closed, 0o700)
    target = closed / "inst"
    result = qmail_instance(bindir, "-H", "example.test", "-b", str(bindir),
                            str(target))
    err = result.stderr.decode()
    assert result.returncode == 111, err
    assert err == (f"qmail-instance: fatal: {closed} may not be searched by "
                   f"others (ls -ld {closed}), so the instance's account "
                   f"could not reach {target}: choose a directory below "
                   f"searchable ones, or chmod o+x {closed}\n")
    assert not (target / "control").exists()


def test_missing_directory_argument_is_usage(bindir):
    result = qmail_instance(bindir, "-H", "example.test")
    assert result.returncode == 100
    assert "usage" in result.stderr.decode()


# ---- the harness's own failure reporting, seen from a nested pytest ----

NESTED_CONFTEST = """
import importlib.util, sys
sys.path.insert(0, {e2e!r})
spec = importlib.util.spec_from_file_location("qm_conftest", {conftest!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
globals().update({{k: v for k, v in vars(module).items()
                   if not k.startswith("__")}})
"""

NESTED_TESTS = """
import qmtest

def test_failure_shows_server_log(servers):
    server = servers.start(["sh", "-c", "echo qm-marker-{tag} >&2"])
    qmtest.read_all(server.connect())
    qmtest.wait_for(lambda: "qm-marker" in server.log_text())
    assert False, "deliberate"

def test_sanitizer_report_fails_teardown(servers):
    server = servers.start(
        ["sh", "-c", "echo 'x.c:1:2: runtime error: deliberate' >&2"])
    qmtest.read_all(server.connect())
    qmtest.wait_for(lambda: "runtime error" in server.log_text())

def test_sanitizer_report_from_run_fails_teardown(instance):
    instance.run(["sh", "-c",
                  "echo '==1==ERROR: AddressSanitizer: deliberate' >&2"])

def test_clean_server_passes(servers):
    server = servers.start(["true"])
    qmtest.read_all(server.connect())
"""


def test_failure_reporting(scratch):
    e2e = pathlib.Path(__file__).resolve().parent
    tag = f"{os.getpid()}"
    (scratch / "conftest.py").write_text(NESTED_CONFTEST.format(
        e2e=str(e2e), conftest=str(e2e / "conftest.py")))
    (scratch / "test_nested.py").write_text(
        textwrap.dedent(NESTED_TESTS).replace("{tag}", tag))
    env = dict(os.environ)
    env.pop("QM_KEEP", None)
    env.setdefault("QM_BUILD", str(e2e.parents[1] / "build"))
    # The nested run keeps its directories apart, so that other tests
    # running at the same time cannot confuse the check below.
    private = scratch / "tmp"
    private.mkdir()
    private.chmod(0o755)
    env["QM_TMPDIR"] = str(private)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(scratch), str(scratch)],
        cwd=scratch, env=env, capture_output=True, timeout=120,
        stdin=subprocess.DEVNULL)
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 1, out
    assert "1 failed, 3 passed, 2 errors" in out, out
    assert "qm log 00-server-sh.log" in out, out
    assert f"qm-marker-{tag}" in out, out
    assert "ERROR at teardown of test_sanitizer_report_fails_teardown" in out
    assert "sanitizer report in 00-server-sh.log" in out, out
    assert "sanitizer report in 01-run-sh.log" in out, out
    assert list(private.iterdir()) == []


def test_queue_ubsan_reports_reach_the_logbook(instance, qm_logbook):
    """qmail-send's fd 2 goes nowhere a test reads, so the queue runs with
    UBSan's log_path in a directory the LogBook scans: a report written
    there fails the test like one in a log file."""
    from queuectl import Queue

    queue = Queue(instance)
    try:
        pid = queue.start()
        queue.wait_started()
        environ = pathlib.Path(f"/proc/{pid}/environ").read_bytes()
        options = [v for v in environ.split(b"\0")
                   if v.startswith(b"UBSAN_OPTIONS=")]
        assert len(options) == 1
        log_path = pathlib.Path(
            options[0].split(b"log_path=", 1)[1].split(b":")[0].decode())
        assert log_path.parent in qm_logbook.watched
        assert log_path.name == "ubsan-run1"
        assert stat.S_IMODE(log_path.parent.stat().st_mode) == 0o1777
        assert queue.env["UBSAN_OPTIONS"] == options[0].split(b"=", 1)[1].decode()
        assert qm_logbook.sanitizer_reports() == []
        # What UBSan would write (log_path gets the pid appended).
        report = log_path.with_name(f"{log_path.name}.{pid}")
        report.write_text("x.c:1:1: runtime error: signed integer "
                          "overflow\n")
        found = qm_logbook.sanitizer_reports()
        assert [path for path, _ in found] == [report]
        report.unlink()
        assert qm_logbook.sanitizer_reports() == []
    finally:
        queue.stop()
