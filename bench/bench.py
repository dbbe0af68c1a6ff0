#!/usr/bin/python3
"""bench.py: `make bench`, this MTA against Postfix on the same machine.

Each benchmark is one function registered in BENCHMARKS; the driver runs
every selected benchmark on both systems, alternating which goes first
round by round, each run on a freshly made instance or spool, and prints
the median of every metric with the ratio ours/Postfix. It also measures
what the disk itself sustains, so that both systems can be read as a
fraction of the machine's limit.

It must never touch /etc/postfix or a system Postfix (every postfix
command gets -c and MAIL_CONFIG of a private directory), never leave a
process or (without --keep) a temporary directory behind, even on Ctrl-C,
and its timings must never decide a pass/fail test.
"""

import argparse
import email.utils
import math
import os
import pathlib
import pwd
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HOST = "bench.test"
BOX = "box"
SENDER = f"bench@{HOST}"
RCPT = f"{BOX}@{HOST}"
# An account of its own, so that nothing aimed at the test instances'
# account (qmailinst) can reach the benchmark's processes.
ACCOUNT = "qmbench"
POSTFIX = "/usr/sbin/postfix"
POSTFIX_SENDMAIL = "/usr/sbin/sendmail"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


# ---- processes, seen through /proc (Linux) ----


def proc_stat_fields(pid):
    """The fields of /proc/PID/stat after the command name, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split()


def now_ticks():
    """The time since boot in clock ticks, as /proc/PID/stat counts."""
    with open("/proc/uptime") as f:
        return float(f.read().split()[0]) * CLK_TCK


def session_pids(sid, zombies=False, born_by=None):
    """Processes of session sid; zombies only when asked. With born_by
    (clock ticks), only those started by then: pids are reused fast on a
    busy machine, and a stranger may lead a session of the same number
    once ours is gone."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = proc_stat_fields(name)
        if fields is None or int(fields[3]) != sid:
            continue
        if fields[0] == b"Z" and not zombies:
            continue
        if born_by is not None and int(fields[19]) > born_by + 1:
            continue
        found.append(int(name))
    return found


def session_cpu(sid):
    """CPU seconds used so far by session sid (its leader alive): each
    process's own time plus that of the children it has reaped. A child
    not reaped yet (alive or zombie) is counted by itself, so nothing
    counts twice."""
    ticks = 0
    for pid in session_pids(sid, zombies=True):
        fields = proc_stat_fields(pid)
        if fields is not None:
            ticks += sum(int(x) for x in fields[11:15])
    return ticks / CLK_TCK


def kill_session(sid, born_by, timeout=5.0):
    """SIGKILLs whatever is left of session sid; returns survivors."""
    deadline = time.monotonic() + timeout
    left = session_pids(sid, born_by=born_by)
    while left and time.monotonic() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        left = session_pids(sid, born_by=born_by)
    return left


def wait_session_gone(sid, born_by, timeout):
    deadline = time.monotonic() + timeout
    while session_pids(sid, born_by=born_by):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_checked(argv, what, env=None, timeout=60):
    """Runs argv in a session of its own; if it fails to finish (timeout,
    Ctrl-C), kills the whole session, helpers included."""
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        kill_session(proc.pid, now_ticks())
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise BenchError(f"{what} failed ({proc.returncode}): "
                         f"{' '.join(argv)}\n"
                         + out.decode(errors="replace")
                         + err.decode(errors="replace"))
    return out


def tail(path, lines=30):
    try:
        text = pathlib.Path(path).read_text(errors="replace")
    except OSError:
        return f"({path}: unreadable)"
    return "\n".join(text.splitlines()[-lines:])


# ---- the two systems ----


class Ours:
    """An instance made by qmail-instance, its queue run by qmail-start as
    the instance account, mail injected as that account."""

    name = "ours"

    def __init__(self, ctx, rundir):
        self.ctx = ctx
        self.dir = rundir / "qmail"
        self.log = rundir / "qmail-send.log"
        self.proc = None
        self.logfile = None
        self.account = None
        self.inject_argv = None

    def setup(self):
        run_checked([str(self.ctx.build / "bin/qmail-instance"), "-H", HOST,
                     "-u", ACCOUNT, "-m", BOX, str(self.dir)],
                    "qmail-instance")
        self.account = (self.dir / "INSTANCE").read_text().strip()
        self.env = {"PATH": PATH, "QMAILHOME": str(self.dir)}
        prefix = ["setuidgid", self.account]
        inject = self.dir / "bin/qmail-inject"
        if inject.exists():
            self.injector = "qmail-inject"
            self.inject_argv = prefix + [str(inject), RCPT]
        else:
            self.injector = "qmail-queue"
            self.inject_argv = prefix + [str(self.dir / "bin/qmail-queue")]

    def maildir(self):
        return self.dir / "mail" / BOX / "Maildir"

    def start(self):
        delivery = (self.dir / "control/defaultdelivery").read_text()
        argv = ["setuidgid", self.account, str(self.dir / "bin/qmail-start"),
                delivery.splitlines()[0]]
        self.logfile = open(self.log, "ab")
        self.proc = subprocess.Popen(argv, env=self.env, cwd=self.dir,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.logfile,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        # Ready once qmail-send reads the trigger: before that, a message
        # would wait for the next todo scan.
        trigger = self.dir / "queue/lock/trigger"
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"qmail-start exited "
                                 f"({self.proc.returncode}):\n"
                                 + tail(self.log))
            try:
                fd = os.open(trigger, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("qmail-send never opened lock/trigger:\n"
                                 + tail(self.log))
            time.sleep(0.01)

    def session(self):
        return self.proc.pid

    def inject(self, message, register):
        """Injects one message; returns the exit code."""
        if self.injector == "qmail-inject":
            proc = subprocess.Popen(self.inject_argv, env=self.env,
                                    cwd=self.dir, stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL)
        else:
            # qmail-queue: the message on fd 0, the envelope on fd 1.
            rfd, wfd = os.pipe()
            try:
                os.write(wfd, b"F" + SENDER.encode() + b"\0T"
                         + RCPT.encode() + b"\0\0")
                os.close(wfd)
                wfd = -1
                proc = subprocess.Popen(self.inject_argv, env=self.env,
                                        cwd=self.dir, stdin=subprocess.PIPE,
                                        stdout=rfd)
            finally:
                os.close(rfd)
                if wfd >= 0:
                    os.close(wfd)
        register(proc)
        proc.communicate(message)
        return proc.returncode

    def stop(self):
        if self.proc is None:
            return
        sid = self.proc.pid
        born_by = now_ticks()
        try:
            if self.proc.poll() is None:
                # qmail-start became qmail-send: TERM lets it finish the
                # deliveries in progress, then the helpers see EOF.
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    pass
            wait_session_gone(sid, born_by, 10)
            left = kill_session(sid, born_by)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
            if left:
                raise BenchError(f"processes of qmail-send survived: {left}")
        finally:
            self.proc = None
            if self.logfile:
                self.logfile.close()
                self.logfile = None

    def describe(self):
        return f"ours (injector: {self.injector})"


POSTFIX_MASTER_CF = """\
# Only what local submission and virtual(8) delivery need.
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
virtual   unix  -       n       n       -       -       virtual
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """Debian's Postfix from private config, queue and data directories,
    delivering with virtual(8) into one Maildir owned by the bench
    account. No inet listener: master.cf has no inet service."""

    name = "postfix"

    def __init__(self, ctx, rundir):
        self.ctx = ctx
        self.top = rundir / "postfix"
        self.etc = self.top / "etc"
        self.queue = self.top / "queue"
        self.data = self.top / "data"
        self.mail = self.top / "mail"
        self.log = self.top / "maillog"
        self.env = {"PATH": PATH, "MAIL_CONFIG": str(self.etc)}
        self.master = None
        self.started = False
        self.version = "?"
        self.injector = "sendmail"

    def postfix(self, *args):
        return run_checked([POSTFIX, "-c", str(self.etc)] + list(args),
                           "postfix " + " ".join(args), env=self.env)

    def setup(self):
        pw = pwd.getpwnam(ACCOUNT)  # made by qmail-instance, just before
        for d in (self.etc, self.queue, self.data, self.mail):
            d.mkdir(parents=True)
        os.chown(self.data, pwd.getpwnam("postfix").pw_uid, -1)
        box = self.maildir()
        for sub in ("", "new", "cur", "tmp"):
            (box / sub).mkdir(mode=0o700, exist_ok=True)
        for path in (self.mail, self.mail / BOX, box, box / "new",
                     box / "cur", box / "tmp"):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        (self.etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
config_directory = {self.etc}
queue_directory = {self.queue}
data_directory = {self.data}
maillog_file = {self.log}
maillog_file_prefixes = {self.top}
myhostname = {HOST}
mydomain = {HOST}
myorigin = {HOST}
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
local_recipient_maps =
relayhost =
virtual_mailbox_domains = {HOST}
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = static:{BOX}/
virtual_uid_maps = static:{pw.pw_uid}
virtual_gid_maps = static:{pw.pw_gid}
virtual_minimum_uid = 1
""")
        (self.etc / "master.cf").write_text(POSTFIX_MASTER_CF)
        self.postfix("check")  # also makes the queue directories
        self.version = run_checked(
            ["postconf", "-c", str(self.etc), "-h", "mail_version"],
            "postconf", env=self.env).decode().strip()

    def maildir(self):
        return self.mail / BOX

    def read_master_pid(self):
        try:
            text = (self.queue / "pid/master.pid").read_text()
            return int(text.split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self):
        self.started = True
        self.postfix("start")
        deadline = time.monotonic() + 10
        while (pid := self.read_master_pid()) is None:
            if time.monotonic() > deadline:
                raise BenchError("postfix master wrote no pid file:\n"
                                 + tail(self.log))
            time.sleep(0.02)
        self.master = pid
        # The master daemonized with setsid(): its pid names the session
        # of every Postfix process of this instance.
        fields = proc_stat_fields(self.master)
        if fields is None or int(fields[3]) != self.master:
            raise BenchError(f"postfix master {self.master} is not a "
                             "session leader")

    def session(self):
        return self.master

    def inject(self, message, register):
        # As root: Postfix's set-gid postdrop refuses a private config
        # directory to anyone else (unless the system main.cf lists it).
        proc = subprocess.Popen([POSTFIX_SENDMAIL, "-C", str(self.etc),
                                 "-i", RCPT], env=self.env,
                                stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL)
        register(proc)
        proc.communicate(message)
        return proc.returncode

    def stop(self):
        if not self.started:
            return
        sid = self.master or self.read_master_pid()
        born_by = now_ticks()
        try:
            try:
                self.postfix("stop")
            except (BenchError, subprocess.TimeoutExpired) as e:
                print(f"bench: {e}", file=sys.stderr)
            if sid is None:
                return
            if not wait_session_gone(sid, born_by, 15):
                subprocess.run([POSTFIX, "-c", str(self.etc), "abort"],
                               env=self.env, capture_output=True,
                               timeout=30)
            left = kill_session(sid, born_by)
            if left:
                raise BenchError(f"postfix processes survived: {left}")
        finally:
            self.master = None
            self.started = False

    def describe(self):
        return f"postfix {self.version} (injector: sendmail, as root)"


SYSTEMS = (Ours, Postfix)


# ---- benchmarks ----


class Metric:
    def __init__(self, name, value, better, fmt="{:.0f}"):
        self.name = name
        self.value = value
        self.better = better  # "higher" or "lower"
        self.fmt = fmt


class Benchmark:
    def __init__(self, key, title, run, disk_metric=None):
        self.key = key
        self.title = title
        self.run = run
        self.disk_metric = disk_metric  # a msgs/s metric to compare


BENCHMARKS = {}


def benchmark(key, title, disk_metric=None):
    def register(fn):
        BENCHMARKS[key] = Benchmark(key, title, fn, disk_metric)
        return fn

    return register


def make_message(tag, size):
    """A message of exactly size bytes whose X-Bench header carries tag
    and the injection time (fixed width, so the size never changes)."""
    stamp = time.time_ns()
    head = (f"From: Bench <{SENDER}>\n"
            f"To: <{RCPT}>\n"
            f"Subject: bench {tag}\n"
            f"Date: {email.utils.formatdate(stamp / 1e9)}\n"
            f"Message-ID: <{tag}.{stamp}@{HOST}>\n"
            f"X-Bench: {tag} {stamp:020d}\n\n").encode()
    line = b"abcdefghijklmnopqrstuvwxyz0123456789" * 2 + b"\n"
    body = (line * (size // len(line) + 1))[:max(0, size - len(head) - 1)]
    return head + body + b"\n"


def read_stamps(newdir, prefix):
    """{tag: (injected_ns, delivered_ns)} from the files in newdir. The
    delivery time is the file's ctime: link/rename into new/ and the
    unlink of the tmp/ name both set it."""
    found = {}
    for entry in os.scandir(newdir):
        with open(entry.path, "rb") as f:
            head = f.read(8192)
        delivered = entry.stat().st_ctime_ns
        for line in head.split(b"\n"):
            if line.startswith(b"X-Bench: "):
                tag, stamp = line[9:].decode().split()
                if not tag.startswith(prefix):
                    raise BenchError(f"foreign message {entry.path}")
                if tag in found:
                    raise BenchError(f"message {tag} delivered twice")
                found[tag] = (int(stamp), delivered)
                break
            if not line.strip():
                raise BenchError(f"no X-Bench header in {entry.path}")
    return found


def percentile(values, p):
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


class Injectors:
    """N injections by a pool of threads, each running one injector
    process at a time; Ctrl-C kills the running ones."""

    def __init__(self, system, count, parallel, tag_prefix, size):
        self.system = system
        self.count = count
        self.parallel = parallel
        self.prefix = tag_prefix
        self.size = size
        self.lock = threading.Lock()
        self.next = 0
        self.running = set()
        self.failures = []
        self.stop = threading.Event()

    def take(self):
        with self.lock:
            if self.stop.is_set() or self.next >= self.count:
                return None
            self.next += 1
            return self.next - 1

    def register(self, proc):
        with self.lock:
            self.running.add(proc)
        if self.stop.is_set():
            proc.kill()

    def worker(self):
        while (i := self.take()) is not None:
            message = make_message(f"{self.prefix}{i}", self.size)
            try:
                code = self.system.inject(message, self.register)
            except Exception as e:  # reported, then the run stops
                code = f"{e}"
            finally:
                with self.lock:
                    self.running = {p for p in self.running
                                    if p.returncode is None}
            if code != 0:
                self.failures.append(f"message {i}: injector exit {code}")
                self.stop.set()

    def run(self):
        threads = [threading.Thread(target=self.worker, daemon=True)
                   for _ in range(self.parallel)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.1)
        finally:
            self.stop.set()
            with self.lock:
                for proc in self.running:
                    if proc.returncode is None:
                        proc.kill()
            for t in threads:
                t.join(10)
        if self.failures:
            raise BenchError("injection failed: "
                             + "; ".join(self.failures[:5]))


@benchmark("local", "local delivery 2KB", disk_metric="msgs/s")
def bench_local(ctx, system, round_no):
    """N messages of 2 KB injected by 8 parallel injectors, timed from the
    first injection until all N are in the Maildir."""
    n = ctx.args.messages
    newdir = system.maildir() / "new"
    prefix = f"{system.name}.{round_no}."
    sid = system.session()
    cpu0 = session_cpu(sid)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time_ns()
    Injectors(system, n, ctx.args.parallel, prefix, 2048).run()
    injected = time.time_ns()
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    deadline = time.monotonic() + ctx.args.timeout
    seen = 0
    while True:
        seen = len(os.listdir(newdir))
        if seen >= n:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"{system.name}: only {seen} of {n} messages "
                             f"delivered after {ctx.args.timeout}s")
        time.sleep(0.02)
    cpu1 = session_cpu(sid)
    stamps = read_stamps(newdir, prefix)
    if len(stamps) != n:
        raise BenchError(f"{system.name}: {len(stamps)} messages in "
                         f"new/, {n} injected")
    end = max(d for _, d in stamps.values())
    latencies = [(d - i) / 1e6 for i, d in stamps.values()]
    inject_cpu = (children1.ru_utime + children1.ru_stime
                  - children0.ru_utime - children0.ru_stime)
    return [
        Metric("msgs/s", n / ((end - start) / 1e9), "higher"),
        Metric("accepted msgs/s", n / ((injected - start) / 1e9), "higher"),
        Metric("latency p50 ms", percentile(latencies, 50), "lower",
               "{:.1f}"),
        Metric("latency p99 ms", percentile(latencies, 99), "lower",
               "{:.1f}"),
        Metric("inject CPU ms/msg", inject_cpu * 1e3 / n, "lower",
               "{:.2f}"),
        Metric("daemon CPU ms/msg", (cpu1 - cpu0) * 1e3 / n, "lower",
               "{:.2f}"),
    ]


# ---- the disk's own limit ----


def disk_ops(base, seconds, writers, dirsync):
    """Operations per second of: create a file in tmp/, write 2 KB, fsync,
    close, rename into new/ (then fsync new/ when dirsync), by `writers`
    threads at once into one directory, as deliveries into one Maildir."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="disk-", dir=base))
    try:
        (top / "tmp").mkdir()
        (top / "new").mkdir()
        data = b"x" * 2047 + b"\n"
        counts = [0] * writers
        stop_at = time.monotonic() + seconds

        def work(k):
            dfd = os.open(top / "new", os.O_RDONLY | os.O_DIRECTORY)
            try:
                n = 0
                while time.monotonic() < stop_at:
                    name = f"{k}.{n}"
                    tmp, new = top / "tmp" / name, top / "new" / name
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                 0o600)
                    try:
                        os.write(fd, data)
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    os.rename(tmp, new)
                    if dirsync:
                        os.fsync(dfd)
                    n += 1
                counts[k] = n
            finally:
                os.close(dfd)

        threads = [threading.Thread(target=work, args=(k,), daemon=True)
                   for k in range(writers)]
        began = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.1)
        return sum(counts) / (time.monotonic() - began)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def measure_disk(ctx):
    seconds = ctx.args.disk_seconds
    results = {}
    for writers in sorted({1, ctx.args.parallel}):
        for dirsync in (False, True):
            results[(writers, dirsync)] = disk_ops(ctx.tmp, seconds,
                                                   writers, dirsync)
    return results


# ---- the driver ----


class Context:
    def __init__(self, args):
        self.args = args
        self.build = pathlib.Path(os.environ.get("QM_BUILD")
                                  or pathlib.Path(__file__).resolve()
                                  .parents[1] / "build")
        self.tmp = None


def check_prerequisites(ctx):
    if os.geteuid() != 0:
        raise BenchError("run as root: Postfix's master needs it, and "
                         "each system then runs as its own accounts")
    if not (ctx.build / "bin/qmail-instance").exists():
        raise BenchError(f"{ctx.build}/bin/qmail-instance is missing: "
                         "run make first (or set QM_BUILD)")
    for path in (POSTFIX, POSTFIX_SENDMAIL):
        if not os.access(path, os.X_OK):
            raise BenchError(f"{path} is missing: run "
                             "sh scripts/bench-deps.sh as root")
    if shutil.which("setuidgid", path=PATH) is None:
        raise BenchError("setuidgid is missing (Debian: daemontools)")


def one_run(ctx, bench, system, round_no):
    print(f"  round {round_no + 1}: {system.describe()} ...",
          end="", flush=True)
    began = time.monotonic()
    try:
        system.start()
        metrics = bench.run(ctx, system, round_no)
    except BaseException:
        print(" failed", flush=True)
        for path in (getattr(system, "log", None),):
            if path is not None:
                print(f"--- last lines of {path}:\n{tail(path)}",
                      file=sys.stderr)
        raise
    finally:
        system.stop()
    shown = ", ".join(f"{m.name} {m.fmt.format(m.value)}" for m in metrics)
    print(f" {shown} ({time.monotonic() - began:.1f}s)", flush=True)
    return metrics


def run_benchmark(ctx, bench):
    """Runs bench for every round on both systems, alternating which goes
    first, and returns {system name: {metric name: [Metric per round]}}."""
    results = {cls.name: {} for cls in SYSTEMS}
    print(f"{bench.title}: {ctx.args.rounds} rounds, "
          f"{ctx.args.messages} messages, {ctx.args.parallel} injectors",
          flush=True)
    for round_no in range(ctx.args.rounds):
        rundir = pathlib.Path(tempfile.mkdtemp(
            prefix=f"{bench.key}-r{round_no + 1}-", dir=ctx.tmp))
        rundir.chmod(0o755)
        systems = [cls(ctx, rundir) for cls in SYSTEMS]
        for system in systems:  # ours first: it makes the account
            system.setup()
        order = systems if round_no % 2 == 0 else systems[::-1]
        for system in order:
            for m in one_run(ctx, bench, system, round_no):
                results[system.name].setdefault(m.name, []).append(m)
        if not ctx.args.keep:
            shutil.rmtree(rundir, ignore_errors=True)
    return results


def median_of(metrics):
    return statistics.median(m.value for m in metrics)


def better_of(names, va, vb, better):
    if va == vb:
        return "-"
    return names[0] if (va > vb) == (better == "higher") else names[1]


def print_table(ctx, done, disk):
    names = [cls.name for cls in SYSTEMS]
    rows = [("benchmark", "metric", names[0], names[1], "ratio", "better")]
    disk_limits = (("% of disk limit", disk[(ctx.args.parallel, False)]),
                   ("% of disk+dirsync", disk[(ctx.args.parallel, True)]))
    for bench, results in done:
        title = bench.title
        for name, runs in results[names[0]].items():
            va, vb = median_of(runs), median_of(results[names[1]][name])
            ratio = f"{va / vb:.2f}" if vb else "-"
            winner = better_of(names, va, vb, runs[0].better)
            fmt = runs[0].fmt
            rows.append((title, name, fmt.format(va), fmt.format(vb), ratio,
                         winner))
            title = ""
            if name != bench.disk_metric:
                continue
            for label, ops in disk_limits:
                rows.append(("", label, f"{100 * va / ops:.1f}",
                             f"{100 * vb / ops:.1f}", ratio, winner))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  "
              + "  ".join(f"{c:>{w}}" for c, w in zip(r[2:], widths[2:])))
    print("(medians over rounds; ratio = ours/postfix)", flush=True)


def print_disk(ctx, disk):
    print(f"disk limit in {ctx.tmp} (2 KB file: create, write, fsync, "
          "rename; ops/s):")
    for (writers, dirsync), ops in sorted(disk.items()):
        what = "+ fsync of the directory" if dirsync else "file fsync only"
        print(f"  {writers} writer{'s' if writers > 1 else ' '}  "
              f"{what:<26} {ops:8.0f}")
    print(flush=True)


def load_note(when):
    """The load average, with a warning when other work competes."""
    load = os.getloadavg()[0]
    note = f"bench: load average {load:.2f} {when}"
    if load > 0.5 * (os.cpu_count() or 1):
        note += " (other work is running: numbers will be noisy)"
    print(note, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Benchmark this MTA against Postfix on this machine.")
    p.add_argument("--messages", type=int, default=2000, metavar="N",
                   help="messages per run (default 2000)")
    p.add_argument("--rounds", type=int, default=3, metavar="R",
                   help="runs of each system per benchmark (default 3)")
    p.add_argument("--only", action="append", choices=sorted(BENCHMARKS),
                   help="run only this benchmark (repeatable)")
    p.add_argument("--parallel", type=int, default=8, metavar="P",
                   help="parallel injectors (default 8)")
    p.add_argument("--timeout", type=float, default=300, metavar="S",
                   help="seconds to wait for delivery after injection")
    p.add_argument("--disk-seconds", type=float, default=2.0, metavar="S",
                   help="seconds per disk-limit measurement (default 2)")
    p.add_argument("--tmpdir", default="/tmp",
                   help="where the temporary directory goes (/tmp)")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory")
    args = p.parse_args(argv)
    if args.messages < 1 or args.rounds < 1 or args.parallel < 1:
        p.error("--messages, --rounds and --parallel must be positive")
    return args


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv):
    args = parse_args(argv)
    ctx = Context(args)
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        check_prerequisites(ctx)
        ctx.tmp = pathlib.Path(tempfile.mkdtemp(prefix="qm-bench-",
                                                dir=args.tmpdir))
        ctx.tmp.chmod(0o755)
        selected = args.only or list(BENCHMARKS)
        print(f"bench: {os.cpu_count()} CPUs, build {ctx.build}, "
              f"temporary directory {ctx.tmp}", flush=True)
        load_note("at start")
        disk = measure_disk(ctx)
        print_disk(ctx, disk)
        done = []
        for key in selected:
            done.append((BENCHMARKS[key], run_benchmark(ctx,
                                                        BENCHMARKS[key])))
        print_table(ctx, done, disk)
        load_note("at the end")
        return 0
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
        return 130
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        if ctx.tmp is not None:
            if args.keep:
                print(f"bench: kept {ctx.tmp}", file=sys.stderr)
            else:
                shutil.rmtree(ctx.tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
