"""qmtest: helpers for the end-to-end tests (instances, servers, logs).

The fixtures in conftest.py are thin wrappers around the classes here, and
tests import this module for wait_for() and the /proc helpers. Everything
it starts it must also stop: it never leaves a process, a temporary
directory or a changed system file behind, and it never runs a mail
program as root when an instance account exists.
"""

import errno
import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

# Options for binaries built with `make SAN=1`: report and exit, never
# abort (a core dump would hide the report), and stop at the first UB.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "ERROR: UndefinedBehaviorSanitizer",
    "runtime error:",
)
LOCALNAME = "example.test"
SPLIT = 23


def is_root():
    return os.geteuid() == 0


def keep_temporaries():
    return bool(os.environ.get("QM_KEEP"))


def remove_tree(path):
    """Removes a temporary tree unless QM_KEEP asks to keep it."""
    if path is not None and not keep_temporaries():
        shutil.rmtree(path, ignore_errors=True)


def make_public_tempdir(prefix):
    """A fresh directory under /tmp (or $QM_TMPDIR) that an unprivileged
    account can enter (mkdtemp makes it 0700, and tests run as root)."""
    base = os.environ.get("QM_TMPDIR") or "/tmp"
    path = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o755)
    return path


def wait_for(predicate, timeout=10, interval=0.05, message=None):
    """Polls predicate() until it returns something true, and returns that.

    Raises AssertionError after timeout seconds, so a test can simply call
    it; the last value seen goes into the message to help the diagnosis."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what} "
                f"(last value {value!r})")
        time.sleep(interval)


def program_env(bindir, base=None):
    """The environment for every program a fixture starts: bindir first in
    PATH and the sanitizer options, unless base already chose them."""
    env = dict(os.environ if base is None else base)
    path = env.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    env["PATH"] = f"{bindir}{os.pathsep}{path}"
    for name, value in SANITIZER_ENV.items():
        env.setdefault(name, value)
    return env


# ---- processes, seen through /proc (Linux) ----


def proc_stat(pid):
    """(state, ppid, pgrp, session) of pid, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; it ends at the
    # last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    return (fields[0].decode(), int(fields[1]), int(fields[2]),
            int(fields[3]))


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    return " ".join(a.decode(errors="replace") for a in raw.split(b"\0")
                    if a)


def all_pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def session_members(sid):
    """Live (non-zombie) processes in session sid: [(pid, cmdline)]."""
    found = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None and st[3] == sid and st[0] != "Z":
            found.append((pid, proc_cmdline(pid)))
    return found


def kill_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def socket_inodes(pid):
    inodes = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(int(m.group(1)))
    return inodes


def is_listening(pid, port):
    """True once pid holds a socket listening on port: the kernel then
    completes every TCP handshake, so the server accepts connections. This
    asks /proc rather than connecting, so that readiness never costs the
    server a session of its own."""
    inodes = socket_inodes(pid)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            listening = fields[3] == "0A"
            if listening and local_port == port and int(fields[9]) in inodes:
                return True
    return False


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(host):
    """A port the kernel just handed out on host; it may be taken again
    before tcpserver binds it, so callers retry."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_taken(server, attempt_log):
    """Did tcpserver exit because another process took its port? With -q
    it says nothing, so try the port as tcpserver binds it."""
    if "address already used" in attempt_log:
        return True
    if server.proc.returncode != 111:
        return False
    family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((server.host, server.port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


def connect(host, port, timeout=10):
    return socket.create_connection((host, port), timeout=timeout)


def read_all(sock, limit=1 << 20):
    """Reads until the peer closes (or limit bytes), then closes sock."""
    chunks = []
    total = 0
    with sock:
        while total < limit:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
            total += len(data)
    return b"".join(chunks)


def parse_env_output(data):
    """/usr/bin/env's output as a dict."""
    env = {}
    for line in data.decode(errors="replace").splitlines():
        name, sep, value = line.partition("=")
        if sep:
            env[name] = value
    return env


# ---- logs of one test ----


class LogBook:
    """The log files of one test: server logs and the stderr of every
    program run through an instance. All of them are printed when the test
    fails and scanned for sanitizer reports at teardown."""

    def __init__(self, directory):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.paths = []
        self.watched = []

    def report_dir(self, name):
        """A directory for sanitizer reports written by log_path (for a
        process whose stderr goes nowhere a test reads); every file that
        appears in it counts as a log of this test. Writable by all, like
        /tmp: in a production layout each queue daemon has its own
        account."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80] or "reports"
        path = self.dir / f"reports-{safe}"
        path.mkdir(exist_ok=True)
        path.chmod(0o1777)
        if path not in self.watched:
            self.watched.append(path)
        return path

    def new(self, name):
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80] or "log"
        path = self.dir / f"{len(self.paths):02d}-{safe}.log"
        self.paths.append(path)
        return path

    def texts(self):
        out = []
        reports = []
        for directory in self.watched:
            try:
                reports += sorted(p for p in directory.iterdir()
                                  if p.is_file())
            except OSError:
                continue
        for path in self.paths + reports:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            out.append((path, text))
        return out

    def sanitizer_reports(self):
        return [(path, text) for path, text in self.texts()
                if any(m in text for m in SANITIZER_MARKERS)]


# ---- instances ----


class Instance:
    """One mail-system instance made by qmail-instance in its own /tmp
    directory; mail programs run in it as its account, never as root."""

    def __init__(self, path, bindir, host, mailboxes, logbook):
        self.path = pathlib.Path(path)
        self.bindir = pathlib.Path(bindir)
        self.host = host
        self.mailboxes = list(mailboxes)
        self.logbook = logbook
        self.account = None
        self.uid = None
        self.gid = None

    def install_argv(self):
        argv = [str(self.bindir / "qmail-instance"), "-H", self.host,
                "-b", str(self.bindir)]
        for box in self.mailboxes:
            argv += ["-m", box]
        return argv + [str(self.path)]

    def install(self):
        """Runs qmail-instance (as the caller: as root it must chown);
        returns the CompletedProcess."""
        result = subprocess.run(self.install_argv(), env=self.env(),
                                stdin=subprocess.DEVNULL,
                                capture_output=True, timeout=60)
        self._record("qmail-instance", self.install_argv(), result)
        if result.returncode == 0:
            self.account = (self.path / "INSTANCE").read_text().strip()
            entry = pwd.getpwnam(self.account)
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
        return result

    def env(self):
        env = program_env(self.bindir)
        env["QMAILHOME"] = str(self.path)
        return env

    def control(self, name, text):
        """Writes control/NAME atomically, owned by the account."""
        if name.startswith("/") or ".." in pathlib.PurePath(name).parts:
            raise ValueError(f"bad control file name: {name}")
        target = self.path / "control" / name
        self._make_owned_dirs(target.parent)
        data = text.encode() if isinstance(text, str) else bytes(text)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.chmod(0o644)
        if is_root():
            os.chown(tmp, self.uid, self.gid)
        os.replace(tmp, target)
        return target

    def _make_owned_dirs(self, directory):
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for path in reversed(missing):
            path.mkdir(mode=0o755)
            if is_root():
                os.chown(path, self.uid, self.gid)

    def maildir(self, box):
        if box == "alias":
            return self.path / "alias" / "Maildir"
        return self.path / "mail" / box / "Maildir"

    def maildir_messages(self, box):
        """[(filename, bytes)] of messages in new/ and cur/, by name."""
        found = []
        for sub in ("new", "cur"):
            folder = self.maildir(box) / sub
            for entry in sorted(folder.iterdir()):
                if entry.is_file():
                    found.append((entry.name, entry.read_bytes()))
        return sorted(found)

    def queue_files(self):
        """Paths (relative to queue/) of every regular file outside lock/."""
        queue = self.path / "queue"
        found = []
        for root, dirs, files in os.walk(queue):
            rel = pathlib.Path(root).relative_to(queue)
            if rel == pathlib.Path("."):
                dirs[:] = [d for d in dirs if d != "lock"]
            for name in files:
                if stat.S_ISREG(os.lstat(os.path.join(root, name)).st_mode):
                    found.append(str(rel / name))
        return sorted(found)

    def as_account(self, argv):
        """argv wrapped so that it runs as the account when we are root."""
        if is_root():
            return ["setuidgid", self.account] + list(argv)
        return list(argv)

    def run(self, argv, input=None, timeout=30, check=False, env=None,
            cwd=None):
        """Runs argv as the account in its own session; on timeout kills
        the whole session and raises subprocess.TimeoutExpired."""
        full = self.as_account(argv)
        proc = subprocess.Popen(
            full, env=env if env is not None else self.env(),
            cwd=cwd or self.path, start_new_session=True,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid, signal.SIGKILL)
            try:
                out, err = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                # Something that left the session still holds the pipes.
                proc.kill()
                out, err = b"", b""
            self._record(argv[0], full,
                         subprocess.CompletedProcess(full, proc.returncode,
                                                     out, err))
            raise subprocess.TimeoutExpired(full, timeout, out, err)
        result = subprocess.CompletedProcess(full, proc.returncode, out, err)
        self._record(argv[0], full, result)
        if check:
            result.check_returncode()
        return result

    def _record(self, name, argv, result):
        path = self.logbook.new("run-" + os.path.basename(str(name)))
        with open(path, "wb") as f:
            f.write(f"argv: {argv!r}\nexit: {result.returncode}\n"
                    "stderr:\n".encode())
            f.write(result.stderr or b"")

    def remove(self):
        remove_tree(self.path)


# ---- servers under tcpserver ----


class Server:
    def __init__(self, host, port, proc, log_path, argv):
        self.host = host
        self.port = port
        self.proc = proc
        self.log_path = log_path
        self.argv = argv
        self.stopped = False

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def connect(self, timeout=10):
        return connect(self.host, self.port, timeout)

    def __repr__(self):
        return f"<Server {self.argv!r} on [{self.host}]:{self.port}>"


class ServerError(Exception):
    pass


class Servers:
    """Starts programs under tcpserver, each tcpserver in its own session,
    and makes sure that stopping one leaves no process of it behind."""

    START_TIMEOUT = 10
    STOP_TIMEOUT = 5
    BIND_ATTEMPTS = 8

    def __init__(self, bindir, logbook, cwd):
        self.bindir = bindir
        self.logbook = logbook
        self.cwd = cwd
        self.running = []

    def start(self, argv, host="127.0.0.1", env=None, as_account=None,
              name=None, tcpserver_opts=(), localname=LOCALNAME):
        if env is None:
            env = as_account.env() if as_account else program_env(
                self.bindir)
        else:
            env = dict(env)
            for key, value in SANITIZER_ENV.items():
                env.setdefault(key, value)
        ids = []
        if as_account is not None and is_root():
            ids = ["-u", str(as_account.uid), "-g", str(as_account.gid)]
        cwd = as_account.path if as_account is not None else self.cwd
        log_path = self.logbook.new(
            "server-" + (name or os.path.basename(argv[0])))
        for _ in range(self.BIND_ATTEMPTS):
            port = free_port(host)
            full = (["tcpserver", "-q", "-R", "-H", "-l", localname]
                    + list(tcpserver_opts) + ids + [host, str(port)]
                    + list(argv))
            server = self._spawn(full, env, cwd, host, port, log_path)
            if self._wait_ready(server):
                self.running.append(server)
                return server
            attempt_log = server.log_text()[server.log_start:]
            if not port_taken(server, attempt_log):
                raise ServerError(
                    f"tcpserver {full!r} died at start:\n{attempt_log}")
        raise ServerError(f"no free port for {argv!r} on {host}; "
                          f"last log:\n{server.log_text()}")

    def _spawn(self, full, env, cwd, host, port, log_path):
        start = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            log.write(f"=== {' '.join(full)}\n".encode())
            log.flush()
            proc = subprocess.Popen(full, env=env, cwd=cwd,
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT,
                                    start_new_session=True)
        server = Server(host, port, proc, log_path, full)
        server.log_start = start
        return server

    def _wait_ready(self, server):
        """True once listening; False if tcpserver exited; raises (after
        killing it) if it neither listens nor exits in time."""
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                self._terminate(server)
                return False
            if is_listening(server.proc.pid, server.port):
                return True
            time.sleep(0.02)
        leftovers = self._terminate(server)
        raise ServerError(
            f"{server!r} not listening after {self.START_TIMEOUT}s "
            f"(leftovers {leftovers!r}):\n{server.log_text()}")

    def _terminate(self, server):
        """TERM, then KILL, the whole session; returns what survived."""
        sid = server.proc.pid
        server.stopped = True
        kill_group(sid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        kill_group(sid, signal.SIGKILL)
        try:
            server.proc.wait(timeout=self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        # A child that left the process group (setpgid) still carries the
        # session id; give the killed ones a moment to die, then report.
        deadline = time.monotonic() + self.STOP_TIMEOUT
        left = session_members(sid)
        while left and time.monotonic() < deadline:
            for pid, _ in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
            left = session_members(sid)
        return left

    def stop(self, server):
        """Stops server and everything it started; raises ServerError if a
        process of its session survives."""
        if server in self.running:
            self.running.remove(server)
        if server.stopped:
            return
        left = self._terminate(server)
        if left:
            raise ServerError(
                f"processes of {server!r} survived SIGKILL: {left!r}")

    def stop_all(self):
        """Stops every server still running; returns error messages."""
        errors = []
        while self.running:
            server = self.running[-1]
            try:
                self.stop(server)
            except ServerError as e:
                errors.append(str(e))
        return errors
