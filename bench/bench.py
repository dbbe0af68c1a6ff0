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
import re
import signal
import socket
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
# Concurrent SMTP sessions each server accepts: above the most we use.
SMTPD_LIMIT = 100
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


# ---- the network: loopback ports and the sockets of a connection ----

LOOPBACK = "127.0.0.1"


def free_port():
    """A loopback port nobody listens on now (another program may still
    take it before us: callers retry)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def tcp_sockets():
    """(local port, remote port, state, inode) of every IPv4 TCP socket,
    from /proc/net/tcp; state "0A" is LISTEN, "01" ESTABLISHED."""
    found = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            found.append((int(fields[1].split(":")[1], 16),
                          int(fields[2].split(":")[1], 16), fields[3],
                          int(fields[9])))
    return found


def listening(port):
    return any(lp == port and st == "0A" for lp, _, st, _ in tcp_sockets())


def wait_listening(port, proc=None, timeout=10):
    """True once something listens on port; False if proc exits first."""
    deadline = time.monotonic() + timeout
    while not listening(port):
        if proc is not None and proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise BenchError(f"nothing listens on port {port} "
                             f"after {timeout}s")
        time.sleep(0.02)
    return True


def server_side_pids(client, server_port, names):
    """The processes named in names that hold the server's end of the
    connection whose client end is the socket client."""
    client_port = client.getsockname()[1]
    inodes = {ino for lp, rp, st, ino in tcp_sockets()
              if lp == server_port and rp == client_port and st == "01"}
    if not inodes:
        return []
    links = {f"socket:[{ino}]" for ino in inodes}
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            comm = pathlib.Path(f"/proc/{name}/comm").read_text().strip()
            if comm not in names:
                continue
            fds = os.listdir(f"/proc/{name}/fd")
            if any(os.readlink(f"/proc/{name}/fd/{fd}") in links
                   for fd in fds):
                found.append(int(name))
        except OSError:
            continue  # gone meanwhile
    return found


def memory_kb(pid):
    """(VmRSS, Pss) of pid in KB; Pss is None without smaps_rollup."""
    rss = pss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    if rss is None:
        raise BenchError(f"no VmRSS for process {pid}")
    return rss, pss


def count_files(*dirs):
    """Files under dirs, however deep (queues split into subdirectories)."""
    n = 0
    for top in dirs:
        for _, _, files in os.walk(top):
            n += len(files)
    return n


def stop_server(proc, timeout=5):
    """TERM, then KILL, a server run in its own session, and whatever it
    started; raises if a process of the session survives."""
    born_by = now_ticks()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    left = kill_session(proc.pid, born_by)
    if left:
        raise BenchError(f"processes of {proc.args[0]} survived: {left}")


# ---- the two systems ----


class Ours:
    """An instance made by qmail-instance, its queue run by qmail-start as
    the instance account, mail injected as that account."""

    name = "ours"

    def __init__(self, ctx, rundir):
        self.ctx = ctx
        self.rundir = rundir
        self.dir = rundir / "qmail"
        self.log = rundir / "qmail-send.log"
        self.proc = None
        self.logfile = None
        self.account = None
        self.inject_argv = None
        self.servers = []  # tcpservers, each leading a session

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

    def cpu(self):
        """CPU seconds so far of the queue and the SMTP servers."""
        return (session_cpu(self.proc.pid)
                + sum(session_cpu(p.pid) for p in self.servers))

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

    # -- SMTP service and the remote channel, for smtp and remote --

    smtpd_names = ("qmail-smtpd",)
    reuses_connections = False  # qmail-remote: one connection a message

    def listen_smtp(self):
        """Starts qmail-smtpd under tcpserver on a free loopback port, as
        the instance account; returns the port. -R -H: no ident and no
        reverse DNS (Postfix gets smtpd_peername_lookup = no)."""
        log = open(self.rundir / "tcpserver.log", "ab")
        try:
            for _ in range(5):
                port = free_port()
                argv = ["setuidgid", self.account, "tcpserver", "-R", "-H",
                        "-l", HOST, "-c", str(SMTPD_LIMIT), "-b",
                        str(SMTPD_LIMIT), LOOPBACK, str(port),
                        str(self.dir / "bin/qmail-smtpd")]
                proc = subprocess.Popen(argv, env=self.env, cwd=self.dir,
                                        stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT,
                                        start_new_session=True)
                self.servers.append(proc)
                if wait_listening(port, proc):
                    return port
                stop_server(proc)  # port taken meanwhile: another one
        finally:
            log.close()
        raise BenchError("tcpserver found no free port:\n"
                         + tail(self.rundir / "tcpserver.log"))

    def write_control(self, name, text):
        path = self.dir / "control" / name
        path.parent.mkdir(exist_ok=True)
        pw = pwd.getpwnam(self.account)
        os.chown(path.parent, pw.pw_uid, pw.pw_gid)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        tmp.chmod(0o644)
        tmp.rename(path)

    def reread_control(self):
        """SIGHUP to qmail-send; returns once it logged the reread."""
        done = b"status: configuration reread"
        start = self.log.stat().st_size
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            with open(self.log, "rb") as f:
                f.seek(start)
                if done in f.read():
                    return
            if time.monotonic() > deadline:
                raise BenchError("qmail-send did not reread its control "
                                 "files:\n" + tail(self.log))
            time.sleep(0.01)

    def route_remote(self, domain, port):
        """Mail for domain goes to [127.0.0.1]:port, without TLS; mail
        for it is accepted by SMTP; the remote channel is on hold."""
        rcpthosts = (self.dir / "control/rcpthosts").read_text()
        self.write_control("rcpthosts", rcpthosts + domain + "\n")
        self.write_control("smtproutes", f"{domain}:[{LOOPBACK}]:{port}\n")
        # TLS only for hosts with a tlshosts/<host>.pem: none.
        self.write_control("tlshosts/exhaustivelist", "")
        self.hold_remote()

    def hold_remote(self):
        self.write_control("concurrencyremote", "0\n")
        self.reread_control()

    def held(self, n):
        """True once n messages wait in the remote channel, none in todo."""
        q = self.dir / "queue"
        return (count_files(q / "todo") == 0
                and count_files(q / "remote") == n)

    def prepare_release(self, concurrency, cache=True):
        """The limit for release(); cache is Postfix's alone."""
        self.write_control("concurrencyremote", f"{concurrency}\n")

    def release(self):
        """HUP applies the new concurrency; ALRM makes everything due."""
        self.proc.send_signal(signal.SIGHUP)
        self.proc.send_signal(signal.SIGALRM)

    def queue_empty(self):
        q = self.dir / "queue"
        return count_files(q / "todo", q / "info") == 0

    def stop(self):
        try:
            while self.servers:
                stop_server(self.servers.pop())
        finally:
            self.stop_queue()

    def stop_queue(self):
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

    def describe(self, injecting):
        return f"ours (injector: {self.injector})" if injecting else "ours"


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
    account. No inet listener unless a benchmark adds one (listen_smtp);
    then only on the loopback address."""

    name = "postfix"

    def __init__(self, ctx, rundir):
        self.ctx = ctx
        self.rundir = rundir
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

    def cpu(self):
        return session_cpu(self.master)

    # -- SMTP service and the remote channel, for smtp and remote --

    smtpd_names = ("smtpd",)
    reuses_connections = True  # smtp_connection_cache_on_demand

    def reconfigure(self, settings, services=()):
        """Sets main.cf parameters and adds master.cf services, then has
        the master reload and waits until every daemon started before the
        reload is gone, so that none works with the old settings."""
        if settings:
            run_checked(["postconf", "-c", str(self.etc), "-e"]
                        + [f"{k}={v}" for k, v in settings.items()],
                        "postconf -e", env=self.env)
        if services:
            with open(self.etc / "master.cf", "a") as f:
                f.write("".join(line + "\n" for line in services))
        old = set(self.daemon_pids())
        self.postfix("reload")
        deadline = time.monotonic() + 30
        while old & set(self.daemon_pids()):
            if time.monotonic() > deadline:
                raise BenchError("postfix daemons survived a reload: "
                                 f"{sorted(old & set(self.daemon_pids()))}")
            time.sleep(0.02)

    def daemon_pids(self):
        return [pid for pid in session_pids(self.master)
                if pid != self.master]

    def listen_smtp(self):
        """Adds an smtpd listener on a free loopback port; returns it.
        Like tcpserver -H for ours: no reverse lookup of the client."""
        for _ in range(5):
            port = free_port()
            self.reconfigure(
                {"mynetworks": f"{LOOPBACK}/32",
                 "smtpd_peername_lookup": "no"},
                [f"{LOOPBACK}:{port} inet n - n - {SMTPD_LIMIT} smtpd",
                 "anvil     unix  -       -       n       -       1  "
                 "     anvil"])
            try:
                wait_listening(port, timeout=10)
                return port
            except BenchError:
                # Taken meanwhile: drop the listener, try another port.
                lines = (self.etc / "master.cf").read_text().splitlines()
                (self.etc / "master.cf").write_text(
                    "".join(line + "\n" for line in lines
                            if not line.startswith(f"{LOOPBACK}:{port} ")
                            and not line.startswith("anvil ")))
        raise BenchError("postfix smtpd found no free port:\n"
                         + tail(self.log))

    def route_remote(self, domain, port):
        """Mail for domain goes to the smtp client and [127.0.0.1]:port;
        cleanup puts every new message on hold (header_checks HOLD)."""
        hold = self.etc / "hold.regexp"
        hold.write_text("/^/ HOLD\n")
        self.reconfigure(
            {"transport_maps": f"inline:{{{domain}=smtp:[{LOOPBACK}]:"
                               f"{port}}}",
             "header_checks": f"regexp:{hold}"},
            ["smtp      unix  -       -       n       -       -       smtp",
             "scache    unix  -       -       n       -       1       "
             "scache"])

    def hold_remote(self):
        pass  # header_checks holds every new message

    def queue_dirs(self, *names):
        return [self.queue / n for n in names]

    def held(self, n):
        """True once n messages wait in the hold queue, none elsewhere."""
        return (count_files(*self.queue_dirs("maildrop", "incoming",
                                             "active", "deferred")) == 0
                and count_files(self.queue / "hold") == n)

    def prepare_release(self, concurrency, cache=True):
        self.reconfigure({
            "default_destination_concurrency_limit": concurrency,
            "smtp_connection_cache_on_demand": "yes" if cache else "no"})

    def release(self):
        """hold -> deferred, then a flush asks qmgr to take them all."""
        run_checked(["postsuper", "-c", str(self.etc), "-H", "ALL"],
                    "postsuper -H", env=self.env)
        run_checked(["postqueue", "-c", str(self.etc), "-f"],
                    "postqueue -f", env=self.env)

    def queue_empty(self):
        return count_files(*self.queue_dirs("maildrop", "incoming", "active",
                                            "deferred", "hold")) == 0

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

    def describe(self, injecting):
        return (f"postfix {self.version}"
                + (" (injector: sendmail, as root)" if injecting else ""))


SYSTEMS = (Ours, Postfix)


# ---- benchmarks ----


class Metric:
    def __init__(self, name, value, better, fmt="{:.0f}"):
        self.name = name
        self.value = value
        self.better = better  # "higher" or "lower"
        self.fmt = fmt


class Benchmark:
    def __init__(self, key, title, detail, run, disk_metric, rounds,
                 injects):
        self.key = key
        self.title = title
        self.detail = detail  # the run's size, formatted with the options
        self.run = run
        self.disk_metric = disk_metric  # a msgs/s metric to compare
        self.rounds = rounds  # unless --rounds says otherwise
        self.injects = injects  # uses the systems' inject()


BENCHMARKS = {}


def benchmark(key, title, detail, disk_metric=None, rounds=3,
              injects=False):
    def register(fn):
        BENCHMARKS[key] = Benchmark(key, title, detail, fn, disk_metric,
                                    rounds, injects)
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


@benchmark("local", "local delivery 2KB",
           "{messages} messages, {parallel} injectors", disk_metric="msgs/s",
           injects=True)
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


# ---- SMTP in, SMTP out ----

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SESSIONS = (1, 20, 50)
REMOTE_DOMAIN = "remote.test"
REMOTE_CONCURRENCY = (20, 100)
CLIENT = "client.test"
# Seconds of an empty queue with mail missing from the Maildir before a
# run calls the missing messages lost.
LOST_AFTER = 5


def smtp_source(ctx, port, n, sessions, rcpt, extra=()):
    """Postfix's smtp-source: n messages of 2 KB body over `sessions`
    parallel sessions, one message per connection, to 127.0.0.1:port."""
    run_checked([SMTP_SOURCE, "-m", str(n), "-s", str(sessions), "-l",
                 "2048", "-M", CLIENT, "-f", f"bench@{CLIENT}", "-t", rcpt]
                + list(extra) + [f"{LOOPBACK}:{port}"],
                "smtp-source", timeout=ctx.args.timeout)


def wait_until(test, timeout, what):
    """Polls test() until true; what() says what failed, at that time."""
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            raise BenchError(f"{what()} after {timeout}s")
        time.sleep(0.02)


class Sink:
    """Postfix's smtp-sink on a loopback port, throwing away what it
    receives; its running counters (-c) tell when the n-th message's final
    dot arrived and how many sessions it took."""

    PATTERN = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")

    def __init__(self, logpath):
        self.logpath = logpath
        self.proc = None
        self.port = None
        self.lock = threading.Lock()
        self.sessions = self.messages = 0
        self.last_ns = 0
        self.reader = None

    def start(self):
        for _ in range(5):
            self.port = free_port()
            with open(self.logpath, "ab") as log:
                self.proc = subprocess.Popen(
                    [SMTP_SINK, "-u", "nobody", "-c", "-m", "512",
                     f"{LOOPBACK}:{self.port}", "512"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=log, start_new_session=True)
            if wait_listening(self.port, self.proc):
                break
            self.stop()
        else:
            raise BenchError("smtp-sink found no free port:\n"
                             + tail(self.logpath))
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        fd = self.proc.stdout.fileno()
        pending = b""
        while chunk := os.read(fd, 65536):
            now = time.time_ns()
            *lines, pending = (pending + chunk).replace(b"\n",
                                                        b"\r").split(b"\r")
            for line in lines:
                m = self.PATTERN.search(line)
                if m is None:
                    continue
                with self.lock:
                    if int(m[3]) != self.messages:
                        self.last_ns = now
                    self.sessions, self.messages = int(m[1]), int(m[3])

    def counts(self):
        with self.lock:
            return self.sessions, self.messages, self.last_ns

    def connections(self):
        """Sessions so far: those ended (smtp-sink counts only these)
        plus those open now, accepted or not, such as cached ones."""
        open_now = sum(1 for lp, _, st, _ in tcp_sockets()
                       if lp == self.port and st == "01")
        return self.counts()[0] + open_now

    def wait_messages(self, total, timeout):
        """Waits until total messages arrived; returns when the last did."""
        def arrived():
            if self.proc.poll() is not None:
                raise BenchError("smtp-sink died:\n" + tail(self.logpath))
            return self.counts()[1] >= total

        wait_until(arrived, timeout, lambda: f"smtp-sink has "
                   f"{self.counts()[1]} of {total} messages")
        return self.counts()[2]

    def stop(self):
        if self.proc is None:
            return
        try:
            stop_server(self.proc)
        finally:
            if self.reader is not None:
                self.reader.join(5)
                self.reader = None
            self.proc.stdout.close()
            self.proc = None


def idle_session_memory(system, port):
    """(RSS, PSS) in KB of the processes serving one SMTP session that
    said EHLO and then waits: ours qmail-smtpd, Postfix's smtpd."""
    with socket.create_connection((LOOPBACK, port), timeout=30) as conn:
        reader = conn.makefile("rb")
        read_reply(reader, "greeting")
        conn.sendall(f"EHLO {CLIENT}\r\n".encode())
        read_reply(reader, "EHLO")
        time.sleep(0.2)  # let the server settle into its wait
        pids = server_side_pids(conn, port, system.smtpd_names)
        if not pids:
            raise BenchError(f"{system.name}: no {system.smtpd_names} "
                             "process holds the session's socket")
        rss = pss = 0
        for pid in pids:
            r, p = memory_kb(pid)
            rss += r
            pss = None if p is None or pss is None else pss + p
        conn.sendall(b"QUIT\r\n")
        reader.close()
    return rss, pss


def read_reply(reader, what):
    """Reads one SMTP reply; it must be 2xx."""
    while True:
        line = reader.readline()
        if not line or not line[:1] == b"2":
            raise BenchError(f"bad reply to {what}: {line!r}")
        if line[3:4] != b"-":
            return


def delivered_since(system, tag, n, timeout):
    """Waits until the n messages that the SMTP server accepted are in
    the Maildir, checks that each carries tag in its Subject, and returns
    the newest file's ctime (ns). Fails early when fewer are there and
    the queue has been empty for a while: a message was lost."""
    newdir = system.maildir() / "new"
    empty_since = None

    def all_there():
        nonlocal empty_since
        if len(os.listdir(newdir)) >= n:
            return True
        if not system.queue_empty():
            empty_since = None
        elif empty_since is None:
            empty_since = time.monotonic()
        elif time.monotonic() - empty_since > LOST_AFTER:
            raise BenchError(
                f"{system.name}: {n} messages accepted (250 after the "
                f"dot), {len(os.listdir(newdir))} delivered, and the "
                f"queue has been empty for {LOST_AFTER}s: lost mail")
        return False

    wait_until(all_there, timeout, lambda: f"{system.name}: only "
               f"{len(os.listdir(newdir))} of {n} messages delivered")
    want = f"Subject: {tag}".encode()
    newest = 0
    count = 0
    for entry in os.scandir(newdir):
        with open(entry.path, "rb") as f:
            if want not in f.read(4096):
                raise BenchError(f"foreign message {entry.path}")
        newest = max(newest, entry.stat().st_ctime_ns)
        count += 1
    if count != n:
        raise BenchError(f"{count} messages in {newdir}, {n} sent")
    return newest


def empty_dir(path):
    for entry in os.scandir(path):
        os.unlink(entry.path)


@benchmark("smtp", "SMTP in 2KB", "{messages} messages per run, "
           "1/20/50 sessions, smtp-source", disk_metric="msgs/s 50 sess",
           rounds=2)
def bench_smtp(ctx, system, round_no):
    """smtp-source sends N messages over 1, 20 and 50 parallel sessions to
    the system's SMTP server; timed from its start until the last message
    is in the Maildir. Before that, the memory of one idle session."""
    n = ctx.args.messages
    port = system.listen_smtp()
    rss, pss = idle_session_memory(system, port)
    metrics = []
    newdir = system.maildir() / "new"
    for sessions in SMTP_SESSIONS:
        empty_dir(newdir)
        tag = f"bench {system.name}.{round_no}.s{sessions}"
        cpu0 = system.cpu()
        start = time.time_ns()
        smtp_source(ctx, port, n, sessions, RCPT, ["-S", tag])
        accepted = time.time_ns()
        end = delivered_since(system, tag, n, ctx.args.timeout)
        cpu = system.cpu() - cpu0
        metrics += [
            Metric(f"msgs/s {sessions} sess", n / ((end - start) / 1e9),
                   "higher"),
            Metric(f"accepted msgs/s {sessions} sess",
                   n / ((accepted - start) / 1e9), "higher"),
            Metric(f"CPU ms/msg {sessions} sess", cpu * 1e3 / n, "lower",
                   "{:.2f}"),
        ]
    metrics.append(Metric("idle session RSS KB", rss, "lower"))
    if pss is not None:
        metrics.append(Metric("idle session PSS KB", pss, "lower"))
    return metrics


def remote_run(ctx, system, sink, port, concurrency, cache=True):
    """N messages to N recipients at the remote domain: injected by SMTP
    onto hold, then released; returns (msgs/s, sink sessions, CPU ms per
    message)."""
    n = ctx.args.messages
    smtp_source(ctx, port, n, 50, f"rcpt@{REMOTE_DOMAIN}", ["-N"])
    wait_until(lambda: system.held(n), ctx.args.timeout,
               lambda: f"{system.name}: the {n} messages never all "
               "reached hold")
    system.prepare_release(concurrency, cache)
    sessions0 = sink.connections()
    messages0 = sink.counts()[1]
    cpu0 = system.cpu()
    start = time.time_ns()
    system.release()
    end = sink.wait_messages(messages0 + n, ctx.args.timeout)
    sessions = sink.connections() - sessions0
    wait_until(system.queue_empty, ctx.args.timeout,
               lambda: f"{system.name}: the queue did not empty")
    cpu = system.cpu() - cpu0  # the queue's last bookkeeping included
    system.hold_remote()
    return n / ((end - start) / 1e9), sessions, cpu * 1e3 / n


def remote_metrics(label, rate, sessions, cpu_ms):
    return [Metric(f"msgs/s {label}", rate, "higher"),
            Metric(f"connections {label}", sessions, "lower"),
            Metric(f"CPU ms/msg {label}", cpu_ms, "lower", "{:.2f}")]


@benchmark("remote", "SMTP out 2KB", "{messages} messages to as many "
           "recipients, one domain, smtp-sink", rounds=2)
def bench_remote(ctx, system, round_no):
    """N messages, each to its own recipient on one remote domain, all
    queued on hold first, then delivered to smtp-sink at concurrency 20
    and 100; timed from the release until the sink has the last one."""
    sink = Sink(system.rundir / f"smtp-sink.{system.name}.log")
    try:
        sink.start()
        port = system.listen_smtp()
        system.route_remote(REMOTE_DOMAIN, sink.port)
        metrics = []
        for c in REMOTE_CONCURRENCY:
            metrics += remote_metrics(
                f"c={c}", *remote_run(ctx, system, sink, port, c))
        # What connection reuse is worth: Postfix once more without it.
        # Ours never reuses a connection, so its c=20 run is the same.
        c = REMOTE_CONCURRENCY[0]
        if system.reuses_connections:
            again = remote_run(ctx, system, sink, port, c, cache=False)
        else:
            again = [m.value for m in metrics[:3]]
        return metrics + remote_metrics(f"c={c} no reuse", *again)
    finally:
        sink.stop()


# ---- submission and POP3: TLS, a login and one message a session ----

# Sessions per run: a fifth of --messages, since each one costs a TLS
# handshake and a password check as well as a message.
LOGIN_SESSIONS_DIVISOR = 5
POP3_MAILDROP = 20  # messages in the box that POP3 sessions read
SASLPASSWD2 = "/usr/sbin/saslpasswd2"
# Cyrus SASL's plugins for PLAIN and sasldb, in Debian's multiarch path.
SASL_PLUGINS = ("libplain.so", "libsasldb.so")


def login_sessions(ctx):
    return max(1, ctx.args.messages // LOGIN_SESSIONS_DIVISOR)


def run_with_input(argv, what, data, env=None):
    """Like run_checked, with data on standard input (for passwords,
    which never go on a command line)."""
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(data, timeout=60)
    except BaseException:
        kill_session(proc.pid, now_ticks())
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise BenchError(f"{what} failed ({proc.returncode}): "
                         + (out + err).decode(errors="replace"))
    return out


def client_tls():
    """The clients' TLS for both systems: no certificate check (each has
    a self-signed one) and no session resumption, so every session pays
    a full handshake."""
    import ssl
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def cheap_hash(password):
    """An md5-crypt hash (about a millisecond to check): the stand-in for
    a password database that keeps plaintext, as Cyrus sasldb does."""
    out = run_with_input(["openssl", "passwd", "-1", "-stdin"],
                         "openssl passwd", password.encode() + b"\n")
    return out.decode().strip()


def timed_sessions(ctx, count, session):
    """Runs session(i) for i in range(count) over --parallel threads;
    returns (seconds for all, [seconds per session]). The first failure
    stops the run."""
    lock = threading.Lock()
    todo = iter(range(count))
    took = []
    failures = []
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            with lock:
                i = next(todo, None)
            if i is None:
                return
            began = time.monotonic()
            try:
                session(i)
            except Exception as e:  # reported below, after the others
                failures.append(f"session {i}: {e!r}")
                stop.set()
                return
            with lock:
                took.append(time.monotonic() - began)

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(ctx.args.parallel)]
    began = time.monotonic()
    deadline = began + ctx.args.timeout
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.1)
                if time.monotonic() > deadline:
                    raise BenchError(f"sessions still running after "
                                     f"{ctx.args.timeout}s")
    finally:
        stop.set()
    elapsed = time.monotonic() - began
    if failures:
        raise BenchError("; ".join(failures[:3]))
    return elapsed, took


def session_metrics(count, elapsed, took, suffix=""):
    ms = [t * 1e3 for t in took]
    return [
        Metric(f"sessions/s{suffix}", count / elapsed, "higher"),
        Metric(f"session p50 ms{suffix}", percentile(ms, 50), "lower",
               "{:.1f}"),
        Metric(f"session p99 ms{suffix}", percentile(ms, 99), "lower",
               "{:.1f}"),
    ]


# -- our side: sslserver and the login chain, as scripts/run-instance.sh
#    starts them, with box's password in checkpassword-cdb's database --


def ours_login_setup(system, password):
    """A certificate (mkcert) and a login for box (qmail-passwd, which
    hashes with yescrypt); returns that hash."""
    as_account = ["setuidgid", system.account]
    run_checked(as_account + [str(system.dir / "bin/mkcert"), "-F", HOST],
                "mkcert", env=system.env)
    run_with_input(as_account + [str(system.dir / "bin/qmail-passwd"),
                                 "add", BOX],
                   "qmail-passwd add", password.encode() + b"\n",
                   env=system.env)
    for line in (system.dir / "users/passwd").read_text().splitlines():
        if line.startswith(BOX + ":"):
            return line.split(":", 2)[1]
    raise BenchError("qmail-passwd wrote no line for " + BOX)


def ours_set_hash(system, password_hash):
    """Puts password_hash into box's line and rebuilds the database."""
    path = system.dir / "users/passwd"
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith(BOX + ":"):
            line = f"{BOX}:{password_hash}:{line.split(':', 2)[2]}"
        lines.append(line + "\n")
    tmp = path.with_name("passwd.bench")
    tmp.write_text("".join(lines))
    pw = pwd.getpwnam(system.account)
    os.chown(tmp, pw.pw_uid, pw.pw_gid)
    tmp.rename(path)
    run_checked(["setuidgid", system.account,
                 str(system.dir / "bin/qmail-passwd"), "build"],
                "qmail-passwd build", env=system.env)


def ours_tls_listener(system, argv):
    """sslserver on a free loopback port as the instance account, with
    STARTTLS/STLS required (-n, UCSPITLS=!), running argv; returns the
    port. No -u/-g: as under make run, the TLS process and the mail
    programs share the account."""
    bindir = system.dir / "bin"
    env = dict(system.env, UCSPITLS="!",
               CERTFILE=str(system.dir / "control/servercert.pem"))
    log = open(system.rundir / "sslserver.log", "ab")
    try:
        for _ in range(5):
            port = free_port()
            cmd = (["setuidgid", system.account, str(bindir / "sslserver"),
                    "-n", "-R", "-H", "-l", HOST, "-c", str(SMTPD_LIMIT),
                    "-b", str(SMTPD_LIMIT), LOOPBACK, str(port)] + argv)
            proc = subprocess.Popen(cmd, env=env, cwd=system.dir,
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT,
                                    start_new_session=True)
            system.servers.append(proc)
            if wait_listening(port, proc):
                return port
            stop_server(proc)  # port taken meanwhile: another one
    finally:
        log.close()
    raise BenchError("sslserver found no free port:\n"
                     + tail(system.rundir / "sslserver.log"))


# -- Postfix's side: a submission service with Cyrus SASL (sasldb) --


def postfix_submission_listener(system, password):
    """Adds a submission smtpd (TLS required, AUTH only over TLS, relay
    only when authenticated) on a free loopback port; returns it. The
    certificate comes from our mkcert, so both sides use the same kind
    of key; box's password is in a private sasldb."""
    missing = [p for p in SASL_PLUGINS
               if not list(pathlib.Path("/usr/lib").glob(f"*/sasl2/{p}"))]
    if missing or not os.access(SASLPASSWD2, os.X_OK):
        raise BenchError(f"Cyrus SASL is missing ({SASLPASSWD2}, "
                         f"{', '.join(SASL_PLUGINS)}): install sasl2-bin, "
                         "libsasl2-modules and libsasl2-modules-db")
    cert = system.etc / "servercert.pem"
    run_checked([str(system.ctx.build / "bin/mkcert"), "-f", str(cert),
                 HOST], "mkcert")
    sasl = system.etc / "sasl"
    sasl.mkdir(exist_ok=True)
    db = sasl / "sasldb2"
    (sasl / "smtpd.conf").write_text(f"pwcheck_method: auxprop\n"
                                     f"auxprop_plugin: sasldb\n"
                                     f"sasldb_path: {db}\n"
                                     f"mech_list: PLAIN LOGIN\n")
    run_with_input([SASLPASSWD2, "-f", str(db), "-c", "-p", "-u", HOST,
                    BOX], "saslpasswd2", password.encode() + b"\n")
    os.chown(db, -1, pwd.getpwnam("postfix").pw_gid)
    db.chmod(0o640)
    restrict = "permit_sasl_authenticated,reject"
    for _ in range(5):
        port = free_port()
        listener = (f"{LOOPBACK}:{port} inet n - n - {SMTPD_LIMIT} smtpd"
                    " -o smtpd_tls_security_level=encrypt"
                    " -o smtpd_tls_auth_only=yes"
                    " -o smtpd_sasl_auth_enable=yes"
                    f" -o smtpd_relay_restrictions={restrict}"
                    f" -o smtpd_recipient_restrictions={restrict}")
        system.reconfigure(
            {"smtpd_peername_lookup": "no",
             "smtpd_tls_cert_file": str(cert),
             "smtpd_sasl_type": "cyrus",
             "cyrus_sasl_config_path": str(sasl),
             "smtpd_sasl_local_domain": HOST},
            [listener,
             "anvil     unix  -       -       n       -       1  "
             "     anvil",
             "tlsmgr    unix  -       -       n       1000?   1  "
             "     tlsmgr"])
        try:
            wait_listening(port, timeout=10)
            return port
        except BenchError:
            # Taken meanwhile: drop what was added, try another port.
            lines = (system.etc / "master.cf").read_text().splitlines()
            (system.etc / "master.cf").write_text(
                "".join(line + "\n" for line in lines
                        if not line.startswith((f"{LOOPBACK}:{port} ",
                                                "anvil ", "tlsmgr "))))
    raise BenchError("postfix submission found no free port:\n"
                     + tail(system.log))


def submit_once(port, tls, password, tag):
    """One submission session: EHLO, STARTTLS, EHLO, AUTH PLAIN, one 2 KB
    message, QUIT."""
    import smtplib
    message = make_message(tag, 2048).replace(b"\n", b"\r\n")
    with smtplib.SMTP(LOOPBACK, port, local_hostname=CLIENT,
                      timeout=60) as s:
        s.starttls(context=tls)
        s.login(BOX, password)  # PLAIN: smtplib's choice among the two
        s.sendmail(SENDER, [RCPT], message)


def submission_run(ctx, system, port, password, prefix):
    """Times login_sessions() submissions, then waits until each message
    is in the Maildir; returns (sessions, elapsed, per-session times,
    delivered msgs/s)."""
    n = login_sessions(ctx)
    newdir = system.maildir() / "new"
    empty_dir(newdir)
    tls = client_tls()
    start_ns = time.time_ns()
    elapsed, took = timed_sessions(
        ctx, n, lambda i: submit_once(port, tls, password, f"{prefix}{i}"))
    end_ns = delivered_since(system, f"bench {prefix}", n, ctx.args.timeout)
    return n, elapsed, took, n / ((end_ns - start_ns) / 1e9)


@benchmark("submission", "submission 587",
           "{messages}/5 sessions, {parallel} at once, each STARTTLS, "
           "AUTH PLAIN, one 2KB message", rounds=2)
def bench_submission(ctx, system, round_no):
    """Logged-in submission sessions per second. Both sides first with a
    cheap password check (Postfix's sasldb keeps plaintext; ours gets an
    md5-crypt hash), then ours alone with its yescrypt default."""
    import secrets
    password = secrets.token_hex(12)
    prefix = f"{system.name}.{round_no}."
    if system.name != "ours":
        port = postfix_submission_listener(system, password)
        n, elapsed, took, rate = submission_run(ctx, system, port, password,
                                                prefix + "c")
        return session_metrics(n, elapsed, took) + [
            Metric("delivered msgs/s", rate, "higher")]
    yescrypt = ours_login_setup(system, password)
    b = system.dir / "bin"
    port = ours_tls_listener(
        system, [f"{b}/qmail-reup", "-t", "5", f"{b}/qmail-authup", "smtp",
                 f"{b}/checkpassword-cdb", f"{b}/checknotroot",
                 f"{b}/qmail-ofmipd"])
    ours_set_hash(system, cheap_hash(password))
    n, elapsed, took, rate = submission_run(ctx, system, port, password,
                                            prefix + "c")
    metrics = session_metrics(n, elapsed, took) + [
        Metric("delivered msgs/s", rate, "higher")]
    ours_set_hash(system, yescrypt)
    n, elapsed, took, _ = submission_run(ctx, system, port, password,
                                         prefix + "y")
    return metrics + session_metrics(n, elapsed, took, ", yescrypt")


def fill_maildrop(system, count):
    """count messages of 2 KB straight into box's Maildir/new, owned by
    the instance account, as a delivery would leave them."""
    pw = pwd.getpwnam(system.account)
    newdir = system.maildir() / "new"
    stamp = int(time.time())
    for i in range(count):
        path = newdir / f"{stamp}.B{i}.{HOST}"
        path.write_bytes(make_message(f"pop3.{i}", 2048))
        os.chown(path, pw.pw_uid, pw.pw_gid)
        path.chmod(0o600)


def pop3_once(port, tls, password):
    """One POP3 session: STLS, USER, PASS, RETR 1, QUIT."""
    import poplib
    p = poplib.POP3(LOOPBACK, port, timeout=60)
    try:
        p.stls(context=tls)
        p.user(BOX)
        p.pass_(password)
        _, lines, _ = p.retr(1)
        if not any(line.startswith(b"X-Bench: ") for line in lines):
            raise BenchError(f"RETR 1 gave no bench message: {lines[:3]}")
        p.quit()
    finally:
        p.close()


@benchmark("pop3", "POP3 110 (ours only)",
           "{messages}/5 sessions, {parallel} at once, each STLS, USER, "
           "PASS, RETR of a 2KB message, QUIT", rounds=2)
def bench_pop3(ctx, system, round_no):
    """POP3 sessions per second, with a cheap password check (md5-crypt)
    and with the yescrypt default. Postfix has no POP3 server: it gets no
    numbers."""
    if system.name != "ours":
        return []
    import secrets
    password = secrets.token_hex(12)
    yescrypt = ours_login_setup(system, password)
    fill_maildrop(system, POP3_MAILDROP)
    b = system.dir / "bin"
    port = ours_tls_listener(
        system, [f"{b}/qmail-authup", "pop3", f"{b}/checkpassword-cdb",
                 f"{b}/checknotroot", f"{b}/qmail-pop3d", "Maildir"])
    tls = client_tls()
    n = login_sessions(ctx)
    metrics = []
    for password_hash, suffix in ((cheap_hash(password), ""),
                                  (yescrypt, ", yescrypt")):
        ours_set_hash(system, password_hash)
        pop3_once(port, tls, password)  # moves new/ into cur/ first
        elapsed, took = timed_sessions(
            ctx, n, lambda i: pop3_once(port, tls, password))
        metrics += session_metrics(n, elapsed, took, suffix)
    return metrics


# ---- tls: opportunistic STARTTLS on port 25, one message a session ----

TLS_SESSIONS_DIVISOR = 5  # sessions per run: --messages / this


def ours_starttls_listener(system):
    """qmail-smtpd under sslserver -n with UCSPITLS='' (STARTTLS offered,
    not required: port 25), as scripts/run-instance.sh runs it, on a free
    loopback port as the instance account; returns the port. The
    certificate is made by mkcert, as make run does."""
    run_checked(["setuidgid", system.account, str(system.dir / "bin/mkcert"),
                 "-F", HOST], "mkcert", env=system.env)
    env = dict(system.env, UCSPITLS="",
               CERTFILE=str(system.dir / "control/servercert.pem"))
    logpath = system.rundir / "sslserver-smtpd.log"
    with open(logpath, "ab") as log:
        for _ in range(5):
            port = free_port()
            argv = ["setuidgid", system.account,
                    str(system.dir / "bin/sslserver"), "-n", "-R", "-H",
                    "-l", HOST, "-c", str(SMTPD_LIMIT), "-b",
                    str(SMTPD_LIMIT), LOOPBACK, str(port),
                    str(system.dir / "bin/qmail-smtpd")]
            proc = subprocess.Popen(argv, env=env, cwd=system.dir,
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT,
                                    start_new_session=True)
            system.servers.append(proc)
            if wait_listening(port, proc):
                return port
            stop_server(proc)  # port taken meanwhile: another one
    raise BenchError("sslserver found no free port:\n" + tail(logpath))


def postfix_starttls_listener(system):
    """An smtpd with smtpd_tls_security_level=may and a certificate from
    our mkcert on a free loopback port; tlsmgr runs, without a session
    cache (none is configured). Returns the port."""
    cert = system.etc / "servercert.pem"
    run_checked([str(system.ctx.build / "bin/mkcert"), "-f", str(cert),
                 HOST], "mkcert")
    for _ in range(5):
        port = free_port()
        system.reconfigure(
            {"smtpd_peername_lookup": "no",
             "smtpd_tls_cert_file": str(cert)},
            [f"{LOOPBACK}:{port} inet n - n - {SMTPD_LIMIT} smtpd"
             " -o smtpd_tls_security_level=may",
             "anvil     unix  -       -       n       -       1  "
             "     anvil",
             "tlsmgr    unix  -       -       n       1000?   1  "
             "     tlsmgr"])
        try:
            wait_listening(port, timeout=10)
            return port
        except BenchError:
            # Taken meanwhile: drop what was added, try another port.
            lines = (system.etc / "master.cf").read_text().splitlines()
            (system.etc / "master.cf").write_text(
                "".join(line + "\n" for line in lines
                        if not line.startswith((f"{LOOPBACK}:{port} ",
                                                "anvil ", "tlsmgr "))))
    raise BenchError("postfix smtpd found no free port:\n"
                     + tail(system.log))


def starttls_client(port, tls):
    """An SMTP client that said EHLO, STARTTLS and EHLO again; raises
    unless the server offered STARTTLS."""
    import smtplib
    s = smtplib.SMTP(LOOPBACK, port, local_hostname=CLIENT, timeout=60)
    try:
        s.ehlo()
        s.starttls(context=tls)
        s.ehlo()
    except BaseException:
        s.close()
        raise
    return s


def starttls_once(port, tls, tag):
    """One session: EHLO, STARTTLS, EHLO, one 2 KB message, QUIT."""
    message = make_message(tag, 2048).replace(b"\n", b"\r\n")
    with starttls_client(port, tls) as s:
        s.sendmail(SENDER, [RCPT], message)


def tls_session_pids(system, conn, port):
    """The processes serving one session: those holding the server's end
    of conn, and their children of the same names (ours: ucspi-tlsd holds
    the socket, qmail-smtpd is its child and talks to it through a
    socketpair)."""
    names = {"ours": ("ucspi-tlsd", "qmail-smtpd")}.get(system.name,
                                                       system.smtpd_names)
    pids = set(server_side_pids(conn, port, names))
    for pid in list(pids):
        try:
            children = pathlib.Path(
                f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                comm = pathlib.Path(f"/proc/{child}/comm").read_text()
            except OSError:
                continue
            if comm.strip() in names:
                pids.add(int(child))
    found = {pathlib.Path(f"/proc/{p}/comm").read_text().strip()
             for p in pids}
    if set(names) - found:
        raise BenchError(f"{system.name}: the idle session has no "
                         f"{', '.join(sorted(set(names) - found))} process")
    return sorted(pids)


def idle_tls_session_memory(system, port, tls):
    """(RSS, PSS) in KB, summed over the processes serving one session
    that did STARTTLS and EHLO and then waits."""
    s = starttls_client(port, tls)
    try:
        time.sleep(0.2)  # let the server settle into its wait
        rss = pss = 0
        for pid in tls_session_pids(system, s.sock, port):
            r, p = memory_kb(pid)
            rss += r
            pss = None if p is None or pss is None else pss + p
        s.quit()
    finally:
        s.close()
    return rss, pss


@benchmark("tls", "SMTP 25 STARTTLS 2KB",
           "{messages}/5 sessions, {parallel} at once, each EHLO, "
           "STARTTLS, EHLO, one 2KB message", rounds=2)
def bench_tls(ctx, system, round_no):
    """Opportunistic-TLS SMTP sessions per second (full handshake each,
    no login), then the memory of one idle TLS session."""
    port = (ours_starttls_listener(system) if system.name == "ours"
            else postfix_starttls_listener(system))
    tls = client_tls()
    # First, as for smtp: one session on an otherwise idle server, so
    # that no other session's process shares (and lowers the PSS of) its
    # pages.
    rss, pss = idle_tls_session_memory(system, port, tls)
    n = max(1, ctx.args.messages // TLS_SESSIONS_DIVISOR)
    prefix = f"{system.name}.{round_no}.t"
    newdir = system.maildir() / "new"
    empty_dir(newdir)
    cpu0 = system.cpu()
    start_ns = time.time_ns()
    elapsed, took = timed_sessions(
        ctx, n, lambda i: starttls_once(port, tls, f"{prefix}{i}"))
    end_ns = delivered_since(system, f"bench {prefix}", n, ctx.args.timeout)
    cpu = system.cpu() - cpu0
    metrics = session_metrics(n, elapsed, took) + [
        Metric("delivered msgs/s", n / ((end_ns - start_ns) / 1e9),
               "higher"),
        Metric("server CPU ms/session", cpu * 1e3 / n, "lower", "{:.2f}"),
        Metric("idle TLS session RSS KB", rss, "lower")]
    if pss is not None:
        metrics.append(Metric("idle TLS session PSS KB", pss, "lower"))
    return metrics


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


# bench/resources.py: the resource figures (`--only resources`).
import resources  # noqa: E402

resources.register(sys.modules[__name__])


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
                             "sh scripts/deps.sh as root")
    if shutil.which("setuidgid", path=PATH) is None:
        raise BenchError("setuidgid is missing (Debian: daemontools)")


def one_run(ctx, bench, system, round_no):
    print(f"  round {round_no + 1}: {system.describe(bench.injects)} ...",
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
    rounds = ctx.args.rounds or bench.rounds
    print(f"{bench.title}: {rounds} rounds, "
          + bench.detail.format(**vars(ctx.args)), flush=True)
    for round_no in range(rounds):
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
            if not results[names[1]].get(name):
                # Measured on our side only (POP3, yescrypt logins).
                rows.append((title, name, runs[0].fmt.format(
                    median_of(runs)), "-", "-", "-"))
                title = ""
                continue
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
    p.add_argument("--rounds", type=int, metavar="R",
                   help="runs of each system per benchmark (default: 3 "
                   "for local, 2 for smtp and remote)")
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
    if (args.messages < 1 or args.parallel < 1
            or (args.rounds is not None and args.rounds < 1)):
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
