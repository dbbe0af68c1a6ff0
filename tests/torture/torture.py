#!/usr/bin/python3
"""torture.py: `make torture`, SIGKILL the mail system under SMTP load.

One instance takes steady SMTP load (qmail-smtpd under tcpserver) for
local Maildirs and, through control/smtproutes, for a loopback SMTP sink
(aiosmtpd in a child process), so that qmail-remote and qmail-rsmtp run
too. Meanwhile a kill loop SIGKILLs, at random moments, one process of a
kind taken in turn: qmail-send, qmail-lspawn, qmail-rspawn, qmail-clean,
qmail-local, qmail-remote, qmail-rsmtp, qmail-smtpd or qmail-queue, and
restarts the qmail-start tree when one of its long-lived members died,
as supervise would. In the end the queue drains and every message that
got a 250 after DATA must be, whole, in the mailbox (or the sink) of each
of its recipients; duplicates are counted, not failed (qmail delivers at
least once).

It must never signal a process outside the sessions it started (it
looks them up in /proc by session), and never leave a process or
(without --keep) a temporary directory behind, even on Ctrl-C. Only the
moments are random: the verdict never depends on timing.
"""

import argparse
import collections
import errno
import hashlib
import itertools
import os
import pathlib
import random
import re
import select
import shutil
import signal
import smtplib
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import qmtest  # noqa: E402
from queuectl import Queue, QueueError  # noqa: E402
from test_crash import queue_entries  # noqa: E402

HOST = "example.test"
REMOTE = "remote.test"
LOCAL_BOXES = ("alice", "bob", "carol")
REMOTE_USERS = ("dave", "erin")
SENDER_BOX = "sender"  # bounces land here: a kill must never cause one
SENDER = f"{SENDER_BOX}@{HOST}"
LOOPBACK = "127.0.0.1"

TREE = ("qmail-send", "qmail-lspawn", "qmail-rspawn", "qmail-clean")
KINDS = TREE + ("qmail-local", "qmail-remote", "qmail-rsmtp",
                "qmail-smtpd", "qmail-queue")
# Kinds that live for one delivery or injection: aim a few ms into
# their life rather than at once, so that the kill lands mid-work.
SHORT_LIVED = ("qmail-local", "qmail-remote", "qmail-rsmtp", "qmail-queue")
FIND_TIMEOUT = 20  # seconds to wait for a process of the kind to exist
TREE_EXIT_TIMEOUT = 60  # for the rest of a broken qmail-start tree
STUCK_DIRS = ("todo", "info", "local", "remote", "bounce")
ID_RE = re.compile(rb"^X-Torture-Id: (\S+)$", re.M)


class TortureError(Exception):
    pass


# ---- messages ----


def make_message(ident, rcpts, size):
    """About size bytes, all derived from ident, whose last line proves
    that it arrived whole."""
    head = (f"From: Torture <{SENDER}>\nTo: {', '.join(rcpts)}\n"
            f"Subject: torture {ident}\nMessage-ID: <{ident}@{HOST}>\n"
            f"X-Torture-Id: {ident}\n\n").encode()
    filler = "abcdefghijklmnopqrstuvwxyz0123456789" * 2
    lines = []
    total = len(head)
    n = 0
    while total < size:
        line = f"{ident} {n:06d} {filler}"[:72] + "\n"
        lines.append(line)
        total += len(line)
        n += 1
    lines.append(f"END-OF-MESSAGE {ident}\n")
    return head + "".join(lines).encode()


def message_size(rng):
    """Mostly small messages, some large enough that a kill often lands
    while one is being written."""
    if rng.random() < 0.1:
        return rng.randint(64 << 10, 512 << 10)
    return rng.randint(500, 8000)


Sent = collections.namedtuple("Sent", "rcpts length digest outcome")


class Ledger:
    """What every client sent, by message id, and what it was told:
    'accepted' (250 after DATA), 'refused' (any other reply) or
    'unknown' (the connection ended before the reply to the dot)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}
        self.session_errors = 0

    def record(self, ident, rcpts, message, outcome):
        digest = hashlib.sha256(message).digest()
        with self.lock:
            self.sent[ident] = Sent(tuple(rcpts), len(message), digest,
                                    outcome)

    def count(self, outcome):
        with self.lock:
            return sum(1 for s in self.sent.values() if s.outcome == outcome)

    def error(self):
        with self.lock:
            self.session_errors += 1


# ---- the sink: aiosmtpd in a child process ----


def sink_main(directory, host, port):
    """Runs in the child: accepts every message, stores it (envelope
    first) in directory/new before it answers 250. Exits 75 if the port
    is taken."""
    import asyncio
    from aiosmtpd.smtp import SMTP

    directory = pathlib.Path(directory)
    counter = itertools.count()

    class Store:
        async def handle_DATA(self, server, session, envelope):
            name = f"{time.time_ns()}.{next(counter)}"
            head = f"X-Sink-From: {envelope.mail_from}\n" + "".join(
                f"X-Sink-Rcpt: {r}\n" for r in envelope.rcpt_tos)
            data = (head.encode() + b"\n"
                    + envelope.original_content.replace(b"\r\n", b"\n"))
            tmp = directory / "tmp" / name
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, directory / "new" / name)
            return "250 2.0.0 stored"

    async def serve():
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(
            lambda: SMTP(Store(), hostname="sink.test"), host, port)
        await stop.wait()
        server.close()
        await server.wait_closed()

    try:
        asyncio.run(serve())
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return 75
        raise
    return 0


class Sink:
    """The sink process, in a session of its own."""

    def __init__(self, directory, logbook):
        self.dir = directory
        self.logbook = logbook
        self.proc = None
        self.port = None
        for sub in ("tmp", "new"):
            (directory / sub).mkdir(parents=True)

    def start(self):
        log_path = self.logbook.new("sink")
        for _ in range(8):
            port = qmtest.free_port(LOOPBACK)
            with open(log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, str(pathlib.Path(__file__).resolve()),
                     "--sink", str(self.dir), LOOPBACK, str(port)],
                    stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)
            ready = qmtest.wait_for(
                lambda: (self.proc.poll() is not None
                         or qmtest.is_listening(self.proc.pid, port)),
                timeout=30, message="the sink to listen")
            if ready and self.proc.poll() is None:
                self.port = port
                return port
            if self.proc.returncode != 75:
                raise TortureError(f"the sink exited "
                                   f"({self.proc.returncode}): "
                                   f"{log_path.read_text(errors='replace')}")
        raise TortureError("the sink found no free port")

    def stop(self):
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            qmtest.kill_group(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        self.proc = None


# ---- the SMTP load ----


class Load:
    """`clients` threads, each sending messages over SMTP sessions of one
    to five messages, each to one to four recipients, local and remote
    mixed. They pause while the queue holds more than `backlog` messages,
    so that the end of the run does not wait for a mountain of mail."""

    def __init__(self, port, clients, seed, ledger, inst, backlog):
        self.port = port
        self.ledger = ledger
        self.inst = inst
        self.backlog = backlog
        self.stop_flag = threading.Event()
        self.open_gate = threading.Event()
        self.open_gate.set()
        self.threads = [threading.Thread(target=self._client,
                                         args=(n, f"{seed}:client{n}"),
                                         daemon=True)
                        for n in range(clients)]
        self.threads.append(threading.Thread(target=self._gatekeeper,
                                             daemon=True))

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self, timeout=120):
        self.stop_flag.set()
        self.open_gate.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def _gatekeeper(self):
        while not self.stop_flag.wait(0.5):
            queued = queue_backlog(self.inst)
            if queued > self.backlog:
                self.open_gate.clear()
            elif queued < self.backlog // 2:
                self.open_gate.set()

    def _client(self, n, seed):
        rng = random.Random(seed)
        seq = itertools.count()
        while not self.stop_flag.is_set():
            self.open_gate.wait(1)
            if not self.open_gate.is_set():
                continue
            try:
                with smtplib.SMTP(LOOPBACK, self.port,
                                  local_hostname="client.test",
                                  timeout=120) as smtp:
                    for _ in range(rng.randint(1, 5)):
                        if self.stop_flag.is_set():
                            break
                        self._send_one(smtp, rng, f"c{n}-{next(seq)}")
            except (smtplib.SMTPException, OSError):
                self.ledger.error()
                time.sleep(0.02)

    def _send_one(self, smtp, rng, ident):
        count = rng.randint(1, 4)
        rcpts = []
        for _ in range(count):
            if rng.random() < 0.6:
                rcpts.append(f"{rng.choice(LOCAL_BOXES)}@{HOST}")
            else:
                rcpts.append(f"{rng.choice(REMOTE_USERS)}@{REMOTE}")
        rcpts = sorted(set(rcpts))
        message = make_message(ident, rcpts, message_size(rng))
        code, _ = smtp.mail(SENDER)
        if code != 250:
            self.ledger.record(ident, (), message, "refused")
            smtp.rset()
            return
        accepted = [r for r in rcpts if smtp.rcpt(r)[0] == 250]
        if not accepted:
            self.ledger.record(ident, (), message, "refused")
            smtp.rset()
            return
        # Until the reply to the dot arrives, the outcome is unknown.
        self.ledger.record(ident, accepted, message, "unknown")
        try:
            code, _ = smtp.data(message.replace(b"\n", b"\r\n"))
        except smtplib.SMTPDataError:
            self.ledger.record(ident, accepted, message, "refused")
            smtp.rset()
            return
        self.ledger.record(ident, accepted, message,
                           "accepted" if code == 250 else "refused")


def count_entries(path):
    try:
        return sum(1 for _ in os.scandir(path))
    except OSError:
        return 0


def queue_backlog(inst):
    """Messages in todo/ or info/: what qmail-send still has to do."""
    queue = inst.path / "queue"
    info = sum(count_entries(queue / "info" / str(i))
               for i in range(qmtest.SPLIT))
    return count_entries(queue / "todo") + info


# ---- finding and killing the processes of this instance ----


Proc = collections.namedtuple("Proc", "pid comm ppid sid")


def proc_comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def session_procs(sids):
    """Live processes whose session is one of sids."""
    found = []
    for pid in qmtest.all_pids():
        st = qmtest.proc_stat(pid)
        if st is None or st[0] == "Z" or st[3] not in sids:
            continue
        comm = proc_comm(pid)
        if comm is not None:
            found.append(Proc(pid, comm, st[1], st[3]))
    return found


def candidates(kind, procs, send_pid, tcpserver_pid):
    """The processes of kind among procs. A child forked but not yet
    executed carries its parent's name, so the long-lived kinds are also
    recognised by their parent."""
    if kind == "qmail-send":
        return [p for p in procs if p.pid == send_pid and p.comm == kind]
    if kind in TREE:
        return [p for p in procs if p.comm == kind and p.ppid == send_pid]
    if kind == "qmail-smtpd":
        return [p for p in procs
                if p.comm == kind and p.ppid == tcpserver_pid]
    if kind == "qmail-queue":
        return [p for p in procs
                if p.comm == kind and p.sid == tcpserver_pid]
    return [p for p in procs if p.comm == kind and p.sid == send_pid]


def kill_exactly(victim):
    """SIGKILLs victim through a pidfd, after checking that the pid
    still names the same process, and waits until it is dead. False if
    it was gone already."""
    try:
        fd = os.pidfd_open(victim.pid)
    except ProcessLookupError:
        return False
    try:
        st = qmtest.proc_stat(victim.pid)
        if (st is None or st[0] == "Z" or st[1] != victim.ppid
                or st[3] != victim.sid or proc_comm(victim.pid)
                != victim.comm):
            return False
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        # A pidfd becomes readable once its process has exited.
        if not select.select([fd], [], [], 30)[0]:
            raise TortureError(f"{victim} survived SIGKILL for 30 s")
        return True
    finally:
        os.close(fd)


class Killer:
    """The kill rounds, and the restarts that follow them."""

    def __init__(self, rng, queue, smtpd, stats):
        self.rng = rng
        self.queue = queue
        self.smtpd = smtpd
        self.stats = stats

    def sessions(self):
        return {self.queue.proc.pid, self.smtpd.proc.pid}

    def find_and_kill(self, kind):
        """Kills one process of kind; returns (victim, how many of the kind
        ran), or None if none showed up in FIND_TIMEOUT seconds."""
        deadline = time.monotonic() + FIND_TIMEOUT
        pause = 0.001 if kind in SHORT_LIVED else 0.02
        while time.monotonic() < deadline:
            found = candidates(kind, session_procs(self.sessions()),
                               self.queue.proc.pid, self.smtpd.proc.pid)
            if not found:
                time.sleep(pause)
                continue
            victim = self.rng.choice(found)
            if kind in SHORT_LIVED:
                time.sleep(self.rng.uniform(0, 0.004))
            elif kind == "qmail-smtpd":
                time.sleep(self.rng.uniform(0, 0.02))
            if kill_exactly(victim):
                return victim, len(found)
        return None

    def restart_tree(self):
        """Waits until the rest of the qmail-start tree has exited, as it
        must once qmail-send or a helper is gone, then starts a new one.
        Returns the seconds the old tree took to go."""
        started = time.monotonic()
        try:
            qmtest.wait_for(lambda: not self.queue.running()
                            and not self.queue.members(),
                            timeout=TREE_EXIT_TIMEOUT, interval=0.02,
                            message="the qmail-start tree to exit")
        except AssertionError:
            left = [cmd for _, cmd in self.queue.members()]
            self.stats.anomalies.append(
                f"the qmail-start tree did not exit within "
                f"{TREE_EXIT_TIMEOUT} s; killed what was left: {left}")
            self.stats.forced += 1
            self.queue.close()
        took = time.monotonic() - started
        self.queue.start()
        self.queue.wait_started(timeout=60)
        self.stats.restarts += 1
        return took

    def check_alive(self):
        """A tree that died with nobody killing it is a defect: note it
        and restart, so that the run can go on."""
        if not self.queue.running():
            self.stats.anomalies.append(
                "qmail-send exited by itself; log:\n"
                + "\n".join(self.queue.log_text().splitlines()[-10:]))
            self.restart_tree()
        if self.smtpd.proc.poll() is not None:
            raise TortureError("tcpserver for qmail-smtpd exited")

    def round(self, number, kind):
        self.check_alive()
        hit = self.find_and_kill(kind)
        if hit is None:
            self.stats.missed[kind] += 1
            print(f"round {number:3d}: no {kind} showed up in "
                  f"{FIND_TIMEOUT} s", flush=True)
            return False
        victim, running = hit
        self.stats.kills[kind] += 1
        note = ""
        if kind in TREE:
            took = self.restart_tree()
            note = f"; tree gone in {took:.2f} s, restarted"
        print(f"round {number:3d}: SIGKILL {kind} pid {victim.pid} "
              f"(1 of {running}){note}", flush=True)
        return True


class Stats:
    def __init__(self):
        self.kills = collections.Counter()
        self.missed = collections.Counter()
        self.restarts = 0
        self.forced = 0
        self.anomalies = []
        self.rounds = 0
        self.load_seconds = 0.0
        self.drain_seconds = 0.0


def kill_plan(rng, rounds):
    """Kinds in shuffled blocks of all of them, so that any nine rounds in
    a row from the start cover every kind."""
    plan = []
    while len(plan) < rounds:
        block = list(KINDS)
        rng.shuffle(block)
        plan += block
    return plan[:rounds]


def run_rounds(args, rng, killer, stats, load_started):
    """Spreads the rounds over --seconds of load; a round whose kind did
    not show up is tried again later, twice at most."""
    plan = collections.deque(kill_plan(rng, args.rounds))
    retries = collections.Counter()
    gap = args.seconds / max(1, args.rounds)
    number = 0
    while plan:
        due = load_started + gap * (number + rng.uniform(0.3, 1.0))
        time.sleep(max(0.0, due - time.monotonic()))
        kind = plan.popleft()
        number += 1
        if not killer.round(number, kind) and retries[kind] < 2:
            retries[kind] += 1
            plan.append(kind)
    stats.rounds = number
    rest = load_started + args.seconds - time.monotonic()
    if rest > 0:
        time.sleep(rest)
    killer.check_alive()


# ---- the end: drain, then look at everything ----


def drain(inst, queue, timeout, stats):
    """Lets qmail-send finish every message, with SIGALRM every few
    seconds so that deferred deliveries are retried at once."""
    started = time.monotonic()
    last_alarm = 0.0

    def idle():
        nonlocal last_alarm
        if time.monotonic() - last_alarm > 3:
            os.kill(queue.proc.pid, signal.SIGALRM)
            last_alarm = time.monotonic()
        entries = queue_entries(inst)
        busy = any(entries[d] for d in STUCK_DIRS)
        working = any(p.comm in SHORT_LIVED
                      for p in session_procs({queue.proc.pid}))
        return not busy and not working

    try:
        qmtest.wait_for(idle, timeout=timeout, interval=0.2,
                        message="the queue to drain")
    except AssertionError as e:
        stats.anomalies.append(str(e))
    stats.drain_seconds = time.monotonic() - started


def maildir_files(maildir):
    """(name, bytes) of every file in new/ and cur/, one at a time."""
    for sub in ("new", "cur"):
        for entry in sorted(os.scandir(maildir / sub), key=lambda e: e.name):
            if entry.is_file():
                with open(entry.path, "rb") as f:
                    yield f"{sub}/{entry.name}", f.read()


def sink_files(sink_dir):
    """(recipients, name, message) of everything the sink stored."""
    for entry in sorted(os.scandir(sink_dir / "new"), key=lambda e: e.name):
        with open(entry.path, "rb") as f:
            raw = f.read()
        head, _, data = raw.partition(b"\n\n")
        rcpts = [line[len(b"X-Sink-Rcpt: "):].decode()
                 for line in head.split(b"\n")
                 if line.startswith(b"X-Sink-Rcpt: ")]
        yield rcpts, f"sink/{entry.name}", data


def whole(data, sent):
    """Does data end with exactly the message that was sent?"""
    return (len(data) >= sent.length and hashlib.sha256(
        data[len(data) - sent.length:]).digest() == sent.digest)


def message_id(data):
    header_end = data.find(b"\n\n")
    m = ID_RE.search(data if header_end < 0 else data[:header_end])
    return m.group(1).decode() if m else None


class Verdict:
    def __init__(self):
        self.got = collections.Counter()  # (ident, rcpt) -> files
        self.local_files = self.remote_files = 0
        self.truncated = []
        self.bounces = []
        self.tmp_left = 0
        self.lost = []
        self.duplicates = 0
        self.without_250 = 0
        self.leftovers = {}
        self.unexplained = []


def check_file(verdict, ledger, name, data, rcpts):
    ident = message_id(data)
    sent = ledger.sent.get(ident) if ident else None
    if sent is None or not whole(data, sent):
        verdict.truncated.append(name)
        return
    for rcpt in rcpts:
        verdict.got[(ident, rcpt)] += 1


def check_deliveries(verdict, ledger, inst, sink_dir):
    for box in LOCAL_BOXES + (SENDER_BOX, "alias"):
        maildir = inst.maildir(box)
        # What killed deliveries left behind; readers remove it later.
        verdict.tmp_left += count_entries(maildir / "tmp")
        for name, data in maildir_files(maildir):
            if box in (SENDER_BOX, "alias"):
                verdict.bounces.append(f"{box}/{name}")
                continue
            verdict.local_files += 1
            check_file(verdict, ledger, f"{box}/{name}", data,
                       [f"{box}@{HOST}"])
    for rcpts, name, data in sink_files(sink_dir):
        verdict.remote_files += 1
        check_file(verdict, ledger, name, data, rcpts)
    for ident, sent in ledger.sent.items():
        counts = [verdict.got[(ident, r)] for r in sent.rcpts]
        if sent.outcome == "accepted":
            verdict.lost += [(ident, r) for r, n in zip(sent.rcpts, counts)
                             if n == 0]
            verdict.duplicates += sum(n - 1 for n in counts if n > 1)
        elif any(counts):
            verdict.without_250 += 1


def mess_ident(inst, qid):
    path = inst.path / "queue" / "mess" / str(int(qid) % qmtest.SPLIT) / qid
    try:
        with open(path, "rb") as f:
            return message_id(f.read(16384))
    except OSError:
        return None


def check_queue(verdict, ledger, inst, stats):
    """After the drain nothing may wait in todo/ info/ local/ remote/
    bounce/. What may stay is what SIGKILL leaves and qmail-send removes
    36 hours later: a killed qmail-queue's pid/ file or mess/ file (with
    intd/ when it had got as far), at most one per kill of qmail-queue;
    and a finished message's mess/ file, when qmail-send or qmail-clean
    died between the end of the message and its removal, at most one per
    kill in the qmail-start tree. Anything else is a defect."""
    entries = queue_entries(inst)
    for d in STUCK_DIRS:
        if entries[d]:
            verdict.unexplained.append(f"{d}/: {entries[d][:10]}")
    intd, mess = set(entries["intd"]), set(entries["mess"])
    for qid in sorted(intd - mess):
        verdict.unexplained.append(f"intd/{qid} without its mess file")
    injections, finished = [], []
    for qid in sorted(mess):
        ident = mess_ident(inst, qid)
        sent = ledger.sent.get(ident) if ident else None
        if qid not in intd and sent is not None and sent.outcome == (
                "accepted") and not any(
                    verdict.got[(ident, r)] == 0 for r in sent.rcpts):
            finished.append(qid)
        elif sent is None or sent.outcome != "accepted":
            injections.append(qid)
        else:
            verdict.unexplained.append(
                f"mess/{qid} ({ident}) of an accepted message that is "
                f"not delivered")
    verdict.leftovers = {"pid": len(entries["pid"]),
                         "aborted injections": len(injections),
                         "finished, not removed": len(finished)}
    if len(injections) > stats.kills["qmail-queue"]:
        verdict.unexplained.append(
            f"{len(injections)} aborted injections left in mess/ for "
            f"{stats.kills['qmail-queue']} qmail-queue kills: {injections}")
    if len(entries["pid"]) > stats.kills["qmail-queue"]:
        verdict.unexplained.append(
            f"{len(entries['pid'])} pid/ files for "
            f"{stats.kills['qmail-queue']} qmail-queue kills")
    tree_kills = sum(stats.kills[k] for k in TREE) + stats.forced
    if len(finished) > tree_kills:
        verdict.unexplained.append(
            f"{len(finished)} finished messages left in mess/ for "
            f"{tree_kills} kills in the qmail-start tree: {finished}")


# ---- the report ----


def print_summary(args, stats, ledger, verdict, reports):
    accepted = [s for s in ledger.sent.values() if s.outcome == "accepted"]
    rcpts = [r for s in accepted for r in s.rcpts]
    remote_rcpts = sum(1 for r in rcpts if r.endswith("@" + REMOTE))
    print("\ntorture summary")
    print(f"{'program':<14}{'kills':>7}{'missed':>8}")
    for kind in KINDS:
        print(f"{kind:<14}{stats.kills[kind]:>7}{stats.missed[kind]:>8}")
    rows = [
        ("seed", args.seed),
        ("seconds of load", f"{stats.load_seconds:.0f}"),
        ("SMTP clients", args.clients),
        ("kill rounds", stats.rounds),
        ("kills", sum(stats.kills.values())),
        ("tree restarts", stats.restarts),
        ("forced tree stops", stats.forced),
        ("messages sent", len(ledger.sent)),
        ("accepted (250 after DATA)", len(accepted)),
        ("refused (4xx/5xx)", ledger.count("refused")),
        ("no reply to the dot", ledger.count("unknown")),
        ("SMTP sessions broken", ledger.session_errors),
        ("recipients accepted", f"{len(rcpts)} ({len(rcpts) - remote_rcpts}"
         f" local, {remote_rcpts} remote)"),
        ("files delivered", f"{verdict.local_files + verdict.remote_files}"
         f" ({verdict.local_files} Maildir, {verdict.remote_files} sink)"),
        ("lost", len(verdict.lost)),
        ("duplicates", verdict.duplicates),
        ("truncated or corrupt", len(verdict.truncated)),
        ("bounces", len(verdict.bounces)),
        ("delivered without a 250", verdict.without_250),
        ("Maildir tmp/ leftovers", verdict.tmp_left),
        ("queue leftovers", ", ".join(f"{k} {v}" for k, v in
                                      verdict.leftovers.items())),
        ("unexplained queue files", len(verdict.unexplained)),
        ("sanitizer reports", len(reports)),
        ("drain seconds", f"{stats.drain_seconds:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def failures(args, stats, verdict, reports):
    out = []
    if verdict.lost:
        out.append(f"lost: {verdict.lost[:20]}")
    if verdict.truncated:
        out.append(f"truncated or corrupt: {verdict.truncated[:20]}")
    if verdict.bounces:
        out.append(f"bounces: {verdict.bounces[:20]}")
    out += [f"queue: {u}" for u in verdict.unexplained]
    out += [f"anomaly: {a}" for a in stats.anomalies]
    out += [f"sanitizer report in {path}" for path, _ in reports]
    if args.rounds >= len(KINDS):
        never = [k for k in KINDS if stats.kills[k] == 0]
        if never:
            out.append(f"never killed: {never}")
    return out


# ---- running it ----


def copy_binaries(build, tmp):
    """A copy of build/bin that the instance account may execute (the
    build tree may sit under /root, mode 0700)."""
    source = build / "bin"
    if not (source / "qmail-instance").is_file():
        raise TortureError(f"{source}/qmail-instance is missing: run make "
                           "first (or set QM_BUILD)")
    target = tmp / "bin"
    shutil.copytree(source, target)
    target.chmod(0o755)
    for entry in target.iterdir():
        entry.chmod(0o755)
    return target


def make_instance(tmp, bindir, logbook):
    inst = qmtest.Instance(tmp / "instance", bindir, HOST,
                           LOCAL_BOXES + (SENDER_BOX,), logbook)
    result = inst.install()
    if result.returncode != 0:
        raise TortureError(f"qmail-instance failed ({result.returncode}): "
                           f"{result.stderr.decode(errors='replace')}")
    return inst


def torture(args, tmp):
    build = pathlib.Path(os.environ.get("QM_BUILD") or REPO / "build")
    rng = random.Random(args.seed)
    logbook = qmtest.LogBook(tmp / "logs")
    bindir = copy_binaries(build, tmp)
    inst = make_instance(tmp, bindir, logbook)
    stats, ledger = Stats(), Ledger()
    sink = Sink(tmp / "sink", logbook)
    servers = qmtest.Servers(bindir, logbook, tmp)
    queue = Queue(inst)
    load = None
    print(f"torture: build {build}, directory {tmp}, seed {args.seed}, "
          f"{args.rounds} rounds over {args.seconds} s, "
          f"{args.clients} clients", flush=True)
    try:
        port = sink.start()
        inst.control("smtproutes", f"{REMOTE}:[{LOOPBACK}]:{port}\n")
        inst.control("tlshosts/exhaustivelist", "")
        queue.start()
        queue.wait_started(timeout=60)
        env = dict(inst.env(), RELAYCLIENT="")
        smtpd = servers.start([str(inst.path / "bin" / "qmail-smtpd")],
                              env=env, as_account=inst, name="qmail-smtpd",
                              localname=HOST)
        load = Load(smtpd.port, args.clients, args.seed, ledger, inst,
                    args.backlog)
        started = time.monotonic()
        load.start()
        run_rounds(args, rng, Killer(rng, queue, smtpd, stats), stats,
                   started)
        if not load.stop():
            stats.anomalies.append("an SMTP client did not finish in 120 s")
        stats.load_seconds = time.monotonic() - started
        print(f"torture: load stopped; {ledger.count('accepted')} accepted, "
              f"draining the queue", flush=True)
        drain(inst, queue, args.drain_timeout, stats)
        try:
            queue.stop()
        except QueueError as e:
            stats.anomalies.append(str(e))
        for e in servers.stop_all():
            stats.anomalies.append(e)
        sink.stop()

        verdict = Verdict()
        check_deliveries(verdict, ledger, inst, sink.dir)
        check_queue(verdict, ledger, inst, stats)
        reports = logbook.sanitizer_reports()
        print_summary(args, stats, ledger, verdict, reports)
        bad = failures(args, stats, verdict, reports)
        for line in bad:
            print(f"FAIL {line}")
        print("torture: " + ("FAILED" if bad else "passed: nothing lost, "
                             "nothing truncated"), flush=True)
        return 1 if bad else 0
    finally:
        if load is not None:
            load.stop(timeout=10)
        errors = servers.stop_all()
        queue.close()
        sink.stop()
        for e in errors:
            print(f"torture: {e}", file=sys.stderr)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="SIGKILL the mail system's processes under SMTP load, "
        "then check that no accepted message was lost or truncated.")
    p.add_argument("--rounds", type=int, default=27, metavar="N",
                   help="kill rounds (default 27: each kind 3 times)")
    p.add_argument("--seconds", type=float, default=120, metavar="S",
                   help="seconds of load to spread the rounds over "
                   "(default 120)")
    p.add_argument("--clients", type=int, default=4, metavar="C",
                   help="concurrent SMTP clients (default 4)")
    p.add_argument("--seed", default=None,
                   help="seed of the random moments and messages")
    p.add_argument("--backlog", type=int, default=300, metavar="M",
                   help="clients pause while more messages are queued "
                   "(default 300)")
    p.add_argument("--drain-timeout", type=float, default=600, metavar="S",
                   help="seconds to let the queue drain (default 600)")
    p.add_argument("--tmpdir", default=os.environ.get("QM_TMPDIR", "/tmp"),
                   help="where the temporary directory goes (/tmp)")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory")
    p.add_argument("--sink", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.sink is None and (args.rounds < 1 or args.seconds <= 0
                              or args.clients < 1 or args.backlog < 2):
        p.error("--rounds, --seconds, --clients and --backlog must be "
                "positive")
    if args.seed is None:
        args.seed = str(random.SystemRandom().randrange(10 ** 6))
    return args


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv):
    args = parse_args(argv)
    if args.sink is not None:
        directory, host, port = args.sink
        return sink_main(directory, host, int(port))
    signal.signal(signal.SIGTERM, raise_interrupt)
    os.environ["QM_TMPDIR"] = args.tmpdir
    tmp = qmtest.make_public_tempdir("qm-torture-")
    try:
        return torture(args, tmp)
    except KeyboardInterrupt:
        print("\ntorture: interrupted", file=sys.stderr)
        return 130
    except (TortureError, QueueError, qmtest.ServerError,
            AssertionError) as e:
        print(f"torture: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"torture: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
