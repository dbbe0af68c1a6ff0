#!/usr/bin/python3
"""resources.py: the resource figures of issue 10, as the `resources`
benchmark of bench.py.

    make bench BENCH_ARGS="--only resources"
    QM_BUILD=$PWD/build /usr/bin/python3 bench/resources.py \\
        [--sessions N] [--queued M] [bench.py options]

It measures, on each system the driver starts:

- many idle SMTP sessions at once (1000): the memory of the server side,
  in all and per session (ours: tcpserver and every qmail-smtpd;
  Postfix: its master, anvil and every smtpd);
- ours only: a queue of 10,000 messages whose remote recipients are
  deferred (a loopback port that refuses connections), with
  qmail-send's memory at 0, 2,500, 5,000 and 10,000 queued, the bytes
  per message and how straight the line is; and its responsiveness with
  all of them queued: how long a local message takes to reach the
  Maildir (and, for comparison, with an empty queue), how long
  qmail-send takes to start again after a restart, and how long a local
  message takes right after that restart, while every queued message is
  retried at once.

It must never leave a process or a socket behind (the driver stops each
system; the sessions and the refusing socket are closed here), and its
figures decide no test.
"""

import os
import pwd
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

# Changed by the standalone options before a run, never during one.
SIZES = {"sessions": 1000, "queued": 10000}
CHECKPOINTS = (0, 0.25, 0.5, 1.0)  # of SIZES["queued"]
INJECTORS = 8
REMOTE = "remote.test"
LOCAL_SAMPLES = 5
SETTLE_TIMEOUT = 1800  # seconds for a stage of the queue to settle
RESTART_QUIET = 10  # seconds after a restart in which nothing is due
MESSAGE = (b"From: bench@bench.test\nSubject: queued\n\n"
           + b"This message waits in the queue for a host that refuses.\n"
           * 16)

b = None  # bench.py, given to register()


def register(bench_module):
    """Called by bench.py: adds the `resources` benchmark."""
    global b
    b = bench_module
    b.benchmark("resources", "resources", describe(), rounds=1)(run)


def describe():
    return (f"{SIZES['sessions']} idle SMTP sessions; ours: a queue of "
            f"{SIZES['queued']} deferred messages")


def run(ctx, system, round_no):
    raise_fd_limit(SIZES["sessions"] * 2 + 256)
    metrics = idle_sessions(system, SIZES["sessions"])
    if system.name == "ours":
        metrics += QueueRun(system, SIZES["queued"]).measure()
    return metrics


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return
    if hard != resource.RLIM_INFINITY and hard < want:
        hard = want  # we are root (check_prerequisites)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def process_name(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def memory_sum(pids):
    """(RSS KB, PSS KB, how many) over the pids still alive."""
    rss = pss = n = 0
    for pid in pids:
        try:
            r, p = b.memory_kb(pid)
        except (OSError, b.BenchError):
            continue  # gone meanwhile
        rss += r
        pss += p or 0
        n += 1
    return rss, pss, n


# ---- many idle SMTP sessions ----


def listen(system, limit):
    """An SMTP listener taking `limit` sessions at once; returns its port
    and the leader of the processes that serve it."""
    if system.name == "ours":
        return listen_ours(system, limit)
    return listen_postfix(system, limit)


def listen_ours(system, limit):
    log = open(system.rundir / "tcpserver-resources.log", "ab")
    try:
        for _ in range(5):
            port = b.free_port()
            argv = ["setuidgid", system.account, "tcpserver", "-R", "-H",
                    "-l", b.HOST, "-c", str(limit), "-b", str(limit),
                    b.LOOPBACK, str(port), str(system.dir / "bin/qmail-smtpd")]
            proc = subprocess.Popen(argv, env=system.env, cwd=system.dir,
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT,
                                    start_new_session=True)
            system.servers.append(proc)  # stopped with the system
            if b.wait_listening(port, proc):
                return port, proc.pid
            b.stop_server(proc)
    finally:
        log.close()
    raise b.BenchError("tcpserver found no free port")


def listen_postfix(system, limit):
    for _ in range(5):
        port = b.free_port()
        system.reconfigure(
            {"mynetworks": f"{b.LOOPBACK}/32",
             "smtpd_peername_lookup": "no"},
            [f"{b.LOOPBACK}:{port} inet n - n - {limit} smtpd",
             "anvil     unix  -       -       n       -       1       anvil"])
        try:
            b.wait_listening(port, timeout=10)
        except b.BenchError:
            continue
        return port, system.master
    raise b.BenchError("postfix smtpd found no free port")


def open_session(port):
    """Connects, reads the greeting, says EHLO, reads the reply."""
    sock = socket.create_connection((b.LOOPBACK, port), timeout=120)
    try:
        reader = sock.makefile("rb")
        b.read_reply(reader, "greeting")
        sock.sendall(f"EHLO {b.CLIENT}\r\n".encode())
        b.read_reply(reader, "EHLO")
        reader.close()
    except BaseException:
        sock.close()
        raise
    return sock


def readable(sock):
    poller = select.poll()  # select() stops at descriptor 1023
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def server_pids(leader):
    """(shared, per session) processes of a listener: ours tcpserver and
    its qmail-smtpds; Postfix's master and anvil, and its smtpds."""
    shared, sessions = [leader], []
    for pid in b.session_pids(leader):
        name = process_name(pid)
        if name in ("qmail-smtpd", "smtpd"):
            sessions.append(pid)
        elif name == "anvil":
            shared.append(pid)
    return shared, sessions


def idle_sessions(system, count):
    port, leader = listen(system, count + 100)
    socks = []
    try:
        began = time.monotonic()
        for _ in range(count):
            socks.append(open_session(port))
        opened = time.monotonic() - began
        time.sleep(1)  # let every server settle into its wait
        shared, served = server_pids(leader)
        if len(served) < count:
            raise b.BenchError(f"{system.name}: {len(served)} session "
                               f"processes for {count} sessions")
        # Nothing to read on any of them: no session was closed.
        if any(readable(sock) for sock in socks):
            raise b.BenchError(f"{system.name}: a session ended while "
                               "idle")
        rss, pss, n = memory_sum(shared + served)
    finally:
        for sock in socks:
            sock.close()
    if system.name == "ours":
        b.wait_until(lambda: not server_pids(leader)[1], 60,
                     lambda: "qmail-smtpd processes still running")
    tag = f"{count} idle"
    print(f"\n    {system.name}: {count} idle sessions opened in "
          f"{opened:.1f}s, {n} processes measured ({len(served)} serving "
          f"sessions): RSS {rss / 1024:.1f} MB, PSS {pss / 1024:.1f} MB",
          end="", flush=True)
    return [
        b.Metric(f"{tag}: RSS MB", rss / 1024, "lower", "{:.1f}"),
        b.Metric(f"{tag}: PSS MB", pss / 1024, "lower", "{:.1f}"),
        b.Metric(f"{tag}: RSS KB/session", rss / count, "lower", "{:.0f}"),
        b.Metric(f"{tag}: PSS KB/session", pss / count, "lower", "{:.0f}"),
    ]


# ---- a large queue (ours) ----


class QueueRun:
    """Ours with `total` messages deferred in the remote channel."""

    def __init__(self, system, total):
        self.system = system
        self.total = total
        self.queue = system.dir / "queue"
        self.injected = 0
        self.log_start = 0  # where the current qmail-send's log begins
        self.refuser = None
        pw = pwd.getpwnam(system.account)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid

    def measure(self):
        try:
            return self.run()
        finally:
            if self.refuser is not None:
                self.refuser.close()

    def run(self):
        self.route_to_refuser()
        empty = [self.local_latency() for _ in range(LOCAL_SAMPLES)]
        points = []
        for fraction in CHECKPOINTS:
            target = int(self.total * fraction)
            self.inject_remote(target - self.injected)
            self.settle()
            points.append((target, self.send_memory()))
            print(f"\n    ours: {target} queued: qmail-send RSS "
                  f"{points[-1][1][0]} KB, PSS {points[-1][1][1]} KB",
                  end="", flush=True)
        latencies = [self.local_latency() for _ in range(LOCAL_SAMPLES)]
        startup, first_status = self.restart()
        after_restart = self.local_latency()
        # Each deferred message keeps its retry time (the channel file's
        # atime), so the restart alone retries none of them; ALRM then
        # makes all of them due at once.
        time.sleep(max(0.0, first_status + RESTART_QUIET - time.monotonic()))
        early = self.deferrals()
        alarm = time.monotonic()
        self.system.proc.send_signal(signal.SIGALRM)
        retried = self.wait_retried(alarm, early)
        restarted = self.send_memory()
        print(f"\n    ours: after the restart qmail-send RSS {restarted[0]} "
              f"KB, PSS {restarted[1]} KB", end="", flush=True)
        m = self.total
        return (self.memory_metrics(points, restarted)
                + [b.Metric("local delivery ms, 0 queued",
                            statistics.median(empty), "lower", "{:.0f}"),
                   b.Metric(f"local delivery ms, {m} queued",
                            statistics.median(latencies), "lower", "{:.0f}"),
                   b.Metric(f"local delivery max ms, {m} queued",
                            max(latencies), "lower", "{:.0f}"),
                   b.Metric(f"restart to status s, {m} queued", startup,
                            "lower", "{:.2f}"),
                   b.Metric("local delivery ms after restart",
                            after_restart, "lower", "{:.0f}"),
                   b.Metric(f"retried in {RESTART_QUIET} s after restart",
                            early, "lower", "{:.0f}"),
                   b.Metric(f"retry of all {m} after ALRM s", retried,
                            "lower", "{:.0f}")])

    # -- setting up --

    def route_to_refuser(self):
        """remote.test goes to a loopback port that is bound but never
        listens: every connection is refused at once, and no other
        program can take the port while we hold it."""
        self.refuser = socket.socket()
        self.refuser.bind((b.LOOPBACK, 0))
        port = self.refuser.getsockname()[1]
        self.system.write_control("smtproutes",
                                  f"{REMOTE}:[{b.LOOPBACK}]:{port}\n")
        self.system.write_control("tlshosts/exhaustivelist", "")
        self.system.reread_control()

    def inject_remote(self, count):
        """count messages, each to its own remote recipient, by parallel
        qmail-queue processes (message on fd 0, envelope on fd 1)."""
        lock = threading.Lock()
        numbers = iter(range(self.injected, self.injected + count))
        failures = []

        def worker():
            while not failures:
                with lock:
                    i = next(numbers, None)
                if i is None:
                    return
                envelope = (f"F{b.SENDER}\0Tr{i}@{REMOTE}\0\0").encode()
                code = self.queue_one(envelope)
                if code != 0:
                    failures.append(f"qmail-queue exit {code}")

        threads = [threading.Thread(target=worker, daemon=True)
                   for _ in range(INJECTORS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise b.BenchError("injection failed: " + failures[0])
        self.injected += count

    def queue_one(self, envelope, message=MESSAGE):
        rfd, wfd = os.pipe()
        try:
            os.write(wfd, envelope)
            os.close(wfd)
            wfd = -1
            proc = subprocess.Popen(
                [str(self.system.dir / "bin/qmail-queue")],
                env=self.system.env, cwd=self.system.dir,
                stdin=subprocess.PIPE, stdout=rfd,
                user=self.uid, group=self.gid, extra_groups=[])
        finally:
            os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
        proc.communicate(message)
        return proc.returncode

    # -- watching --

    def log_text(self):
        with open(self.system.log, "rb") as f:
            f.seek(self.log_start)
            return f.read()

    def deferrals(self):
        return self.log_text().count(b": deferral: ")

    def busy(self):
        return any(process_name(pid) in ("qmail-remote", "tcpclient")
                   for pid in b.session_pids(self.system.proc.pid))

    def settle(self):
        """Until every injected message was taken from todo/ and tried
        once, and no delivery runs."""
        def settled():
            return (b.count_files(self.queue / "todo") == 0
                    and b.count_files(self.queue / "info") == self.injected
                    and self.deferrals() >= self.injected
                    and not self.busy())

        b.wait_until(settled, SETTLE_TIMEOUT, lambda: (
            f"queue not settled: {b.count_files(self.queue / 'todo')} in "
            f"todo, {b.count_files(self.queue / 'info')} in info, "
            f"{self.deferrals()} deferrals for {self.injected} messages"))
        time.sleep(0.5)

    def send_memory(self):
        pid = self.system.proc.pid
        if process_name(pid) != "qmail-send":
            raise b.BenchError(f"process {pid} is {process_name(pid)}, "
                               "not qmail-send")
        return b.memory_kb(pid)

    # -- responsiveness --

    def local_latency(self):
        """ms from injecting one local message to its file in new/."""
        newdir = self.system.maildir() / "new"
        before = set(os.listdir(newdir))
        began = time.monotonic()
        code = self.queue_one(f"F{b.SENDER}\0T{b.RCPT}\0\0".encode(),
                              b"Subject: local\n\nhello\n")
        if code != 0:
            raise b.BenchError(f"qmail-queue exit {code}")
        b.wait_until(lambda: set(os.listdir(newdir)) - before, 300,
                     lambda: "the local message never arrived")
        return (time.monotonic() - began) * 1000

    def restart(self):
        """Stops qmail-send, starts it again; returns (seconds from the
        start until it logged its first status line, that moment)."""
        self.system.stop_queue()
        self.log_start = self.system.log.stat().st_size
        began = time.monotonic()
        self.system.start()

        def status():
            return b"status: local" in self.log_text()

        b.wait_until(status, 600, lambda: "no status line after restart")
        now = time.monotonic()
        return now - began, now

    def wait_retried(self, since, before):
        """Seconds from since (the ALRM) until every queued message was
        tried again; before is how many were tried before it."""
        def done():
            return (self.deferrals() - before >= self.injected
                    and not self.busy())

        b.wait_until(done, SETTLE_TIMEOUT, lambda: (
            f"{self.deferrals()} of {self.injected} retried"))
        return time.monotonic() - since

    # -- the figures --

    def memory_metrics(self, points, restarted):
        """RSS and PSS at each checkpoint, the bytes per message from the
        first to the last, and how far the middle points stray from that
        straight line, as a share of the whole growth."""
        out = []
        for n, (rss, pss) in points:
            out.append(b.Metric(f"qmail-send RSS KB, {n} queued", rss,
                                "lower"))
            out.append(b.Metric(f"qmail-send PSS KB, {n} queued", pss,
                                "lower"))
        (n0, (r0, p0)), (n1, (r1, p1)) = points[0], points[-1]
        for label, first, last, index in (("RSS", r0, r1, 0),
                                          ("PSS", p0, p1, 1)):
            growth = last - first
            out.append(b.Metric(f"qmail-send {label} bytes/msg",
                                growth * 1024 / (n1 - n0), "lower",
                                "{:.0f}"))
            worst = 0.0
            for n, values in points[1:-1]:
                line = first + growth * (n - n0) / (n1 - n0)
                if growth:
                    worst = max(worst, abs(values[index] - line) / growth)
            out.append(b.Metric(f"qmail-send {label} off-line %", 100 * worst,
                                "lower", "{:.1f}"))
        out.append(b.Metric("qmail-send RSS KB after restart",
                            restarted[0], "lower"))
        out.append(b.Metric("qmail-send PSS KB after restart",
                            restarted[1], "lower"))
        return out


# ---- on its own ----


def main(argv):
    import argparse

    p = argparse.ArgumentParser(
        description="The resource figures (bench.py --only resources), "
        "with their own sizes; other options go to bench.py.")
    p.add_argument("--sessions", type=int, default=SIZES["sessions"],
                   metavar="N", help="idle SMTP sessions (1000)")
    p.add_argument("--queued", type=int, default=SIZES["queued"],
                   metavar="M", help="messages in the queue (10000)")
    args, rest = p.parse_known_args(argv)
    if args.sessions < 1 or args.queued < 4:
        p.error("--sessions must be positive and --queued at least 4")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench  # registers the copy of this module it imports

    mine = sys.modules["resources"]
    mine.SIZES.update(sessions=args.sessions, queued=args.queued)
    bench.BENCHMARKS["resources"].detail = mine.describe()
    return bench.main(["--only", "resources"] + rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
