"""Durability: SIGKILL at random moments never loses a queued message.

qmail's promise (qmail-queue(8), INTERNALS): once qmail-queue exits 0 the
message is delivered at least once, whatever crashes afterwards, and a
message whose injection died before the todo link is never delivered.
These tests SIGKILL qmail-send with its spawners, and qmail-queue, at
moments picked by a seeded random generator while work is under way, and
then check the Maildir and the queue directories. Only the timing is
random; the outcome each test asserts is always the same. Duplicates are
allowed (qmail delivers at least once), losses and half messages are not.

Set QM_CRASH_SEED to replay a seed (every test prints the one it used),
and QM_QUICK=1 for smaller counts. Nothing here may outlive its test: the
fixtures SIGKILL every session they started.
"""

import collections
import concurrent.futures
import os
import random
import re
import signal
import subprocess
import threading
import time

import pytest

import qmtest
from queuectl import Queue

QUICK = bool(os.environ.get("QM_QUICK"))
SEED = int(os.environ.get("QM_CRASH_SEED", "1977"))
RCPT = "demo@example.test"
SENDER = "sender@example.test"
LOCAL_SLOTS = 10  # concurrencylocal: the instance keeps qmail's default
# The queue directories that must hold nothing once all mail is out.
QUEUE_DIRS = ("mess", "info", "local", "remote", "todo", "intd", "bounce")
SPLIT_DIRS = ("mess", "info", "local", "remote")
SEQ_RE = re.compile(rb"^X-Seq: (\d+)$", re.M)
INJECT_RE = re.compile(rb"^X-Inject: (\S+)$", re.M)


def seeded(name):
    """A generator for one test, seeded from SEED and the test's name so
    that the tests do not depend on each other's order."""
    seed = f"{SEED}:{name}"
    print(f"random seed {seed!r} (replay with QM_CRASH_SEED={SEED})")
    return random.Random(seed)


# ---- messages ----


def seq_message(seq, filler=2000):
    """A small message whose last line proves it arrived whole."""
    lines = [f"From: <{SENDER}>", f"To: <{RCPT}>",
             f"Subject: durability {seq}", f"X-Seq: {seq}", ""]
    text = f"payload {seq} " * (filler // 12)
    lines += [text[i:i + 70] for i in range(0, len(text), 70)]
    lines.append(f"END-OF-MESSAGE {seq}")
    return ("\n".join(lines) + "\n").encode()


def big_message(tag, size):
    """About size bytes, tagged by an X-Inject header."""
    head = (f"From: <{SENDER}>\nTo: <{RCPT}>\nSubject: big {tag}\n"
            f"X-Inject: {tag}\n\n").encode()
    line = b"0123456789" * 7 + b"\n"
    tail = f"END-OF-MESSAGE {tag}\n".encode()
    return head + line * (size // len(line)) + tail


def envelope(rcpts=(RCPT,)):
    data = b"F" + SENDER.encode() + b"\0"
    for r in rcpts:
        data += b"T" + r.encode() + b"\0"
    return data + b"\0"


# ---- injection ----


class Injector:
    """Runs bin/qmail-queue as the instance account, each in a session of
    its own; close() SIGKILLs whatever is still running and refuses more."""

    def __init__(self, inst):
        self.inst = inst
        self.lock = threading.Lock()
        self.procs = set()
        self.closed = False
        self.errlog = open(inst.logbook.new("qmail-queue-stderr"), "ab")

    def spawn(self, envelope_fd):
        """qmail-queue with its stdin a pipe we hold and envelope_fd (the
        read end of a pipe) as fd 1."""
        argv = self.inst.as_account(
            [str(self.inst.path / "bin" / "qmail-queue")])
        with self.lock:
            if self.closed:
                raise RuntimeError("injector closed")
            proc = subprocess.Popen(argv, env=self.inst.env(),
                                    cwd=self.inst.path,
                                    stdin=subprocess.PIPE,
                                    stdout=envelope_fd, stderr=self.errlog,
                                    start_new_session=True)
            self.procs.add(proc)
        return proc

    def forget(self, proc):
        with self.lock:
            self.procs.discard(proc)

    def run(self, message, env_data=None, timeout=60):
        """Injects message; returns qmail-queue's exit code."""
        rfd, wfd = os.pipe()
        try:
            data = env_data if env_data is not None else envelope()
            if len(data) > 4096:
                raise ValueError("envelope larger than a pipe write")
            os.write(wfd, data)
            os.close(wfd)
            wfd = -1
            proc = self.spawn(rfd)
        finally:
            os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
        try:
            proc.communicate(message, timeout=timeout)
        except subprocess.TimeoutExpired:
            qmtest.kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            self.forget(proc)
        return proc.returncode

    def kill(self, proc):
        qmtest.kill_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self.forget(proc)

    def close(self):
        with self.lock:
            self.closed = True
            procs = list(self.procs)
        for proc in procs:
            qmtest.kill_group(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.errlog.close()


class BackgroundInjection:
    """Injects seq_message(0..count-1), `parallel` at a time, in a thread,
    so that the test can crash the queue meanwhile."""

    def __init__(self, injector, count, parallel=8):
        self.injector = injector
        self.count = count
        self.parallel = parallel
        self.codes = {}
        self.errors = []
        self.thread = threading.Thread(target=self._main, daemon=True)

    def start(self):
        self.thread.start()

    def _one(self, seq):
        try:
            self.codes[seq] = self.injector.run(seq_message(seq))
        except Exception as e:  # reported by the test, not lost here
            self.errors.append((seq, repr(e)))

    def _main(self):
        with concurrent.futures.ThreadPoolExecutor(self.parallel) as pool:
            list(pool.map(self._one, range(self.count)))

    def done(self):
        return not self.thread.is_alive()

    def join(self, timeout):
        self.thread.join(timeout)
        return self.done()


# ---- the queue on disk, and the mailbox ----


def split_count(inst):
    mess = inst.path / "queue" / "mess"
    return sum(1 for e in os.listdir(mess) if e.isdigit())


def queue_entries(inst):
    """{directory: sorted ids} for every queue directory but lock/."""
    queue = inst.path / "queue"
    found = {}
    for d in ("pid",) + QUEUE_DIRS:
        names = []
        if d in SPLIT_DIRS:
            for sub in sorted(os.listdir(queue / d)):
                names += os.listdir(queue / d / sub)
        else:
            names = os.listdir(queue / d)
        found[d] = sorted(names)
    return found


def mess_path(inst, ident):
    ident = int(ident)
    return (inst.path / "queue" / "mess" / str(ident % split_count(inst))
            / str(ident))


def mess_head(inst, ident, limit=8192):
    """The first bytes of mess/<id>, or b"" if it is gone."""
    try:
        with open(mess_path(inst, ident), "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        return b""


def has_pending_rcpt(inst, ident):
    """Does local/ or remote/ hold a recipient not yet done for ident?"""
    split = split_count(inst)
    for chan in ("local", "remote"):
        path = inst.path / "queue" / chan / str(int(ident) % split) / ident
        try:
            records = path.read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if any(r.startswith(b"T") for r in records):
            return True
    return False


def queued_seqs(inst):
    """X-Seq values of messages that qmail-send will still deliver: those
    with a todo entry, or with an info file and a recipient to do."""
    entries = queue_entries(inst)
    seqs = set()
    for ident in set(entries["todo"]) | set(entries["info"]):
        if ident not in entries["todo"] and not has_pending_rcpt(inst, ident):
            continue
        m = SEQ_RE.search(mess_head(inst, ident))
        if m:
            seqs.add(int(m.group(1)))
    return seqs


def delivered_files(inst, box="demo"):
    """[(name, bytes)] of every delivered message, new/ and cur/."""
    return inst.maildir_messages(box)


def delivered_count(inst, box="demo"):
    return len(os.listdir(inst.maildir(box) / "new"))


def delivered_seqs(inst):
    """Counter of X-Seq values in the Maildir."""
    seen = collections.Counter()
    for _, data in delivered_files(inst):
        m = SEQ_RE.search(data)
        if m:
            seen[int(m.group(1))] += 1
    return seen


def queue_busy(inst):
    """The non-empty queue directories among QUEUE_DIRS."""
    entries = queue_entries(inst)
    return {d: entries[d] for d in QUEUE_DIRS if entries[d]}


def orphan_mess(inst, entries):
    """mess files with no intd, todo or info: what a crash leaves between
    msg_check_done() unlinking info and qmail-clean removing mess (a few
    ms on a busy disk, so a kill lands there in about half the runs).
    qmail has the same window and removes such a file once it is 36
    hours old (scan_orphans here); it is never delivered again. The test
    tolerates them, one per kill at most, instead of an empty mess/."""
    others = set(entries["intd"]) | set(entries["todo"]) | set(entries["info"])
    return [i for i in entries["mess"] if i not in others]


def assert_drained(inst, kills):
    """Once every message is out: nothing left in the queue but orphaned
    mess files (see orphan_mess), at most one per kill, since qmail-send
    ends one message at a time. Returns the orphans."""
    entries = queue_entries(inst)
    left = {d: entries[d] for d in QUEUE_DIRS if entries[d] and d != "mess"}
    assert not left, f"left in the queue: {left}"
    orphans = orphan_mess(inst, entries)
    assert orphans == entries["mess"]
    assert len(orphans) <= kills, f"mess files left: {orphans}"
    if orphans:
        seqs = [SEQ_RE.search(mess_head(inst, i)).group(1).decode()
                for i in orphans]
        print(f"orphaned mess files (qmail removes them after 36 hours): "
              f"{orphans}, X-Seq {seqs}")
    return orphans


def wait_idle(inst, timeout, ignore=("mess",)):
    """Waits until the queue holds nothing but `ignore`d directories. With
    every injection finished, what is not delivered then never will be,
    so callers check the Maildir afterwards rather than wait for it."""
    try:
        qmtest.wait_for(
            lambda: not queue_busy(inst).keys() - set(ignore),
            timeout=timeout, interval=0.05, message="the queue to empty")
    except AssertionError as e:
        raise AssertionError(f"{e}; queue now {queue_summary(inst)}")


def queue_summary(inst):
    return {d: len(v) for d, v in queue_entries(inst).items() if v}


def assert_all_delivered(inst, want):
    missing = sorted(set(want) - set(delivered_seqs(inst)))
    assert not missing, (f"never delivered: X-Seq {missing}; queue now "
                         f"{queue_summary(inst)}")


# ---- fixtures ----


@pytest.fixture
def queue(instance):
    q = Queue(instance)
    yield q
    q.close()


@pytest.fixture
def injector(instance):
    inj = Injector(instance)
    yield inj
    inj.close()


# ---- 1. the queue crashes while 500 messages are delivered ----


def wait_for_deliveries_under_way(q, timeout=10):
    """Waits until a qmail-local of this run exists; returns how many."""
    return qmtest.wait_for(q.deliveries_running, timeout=timeout,
                           interval=0.002,
                           message="a delivery under way")


def test_queue_killed_during_deliveries_loses_nothing(instance, queue,
                                                       injector):
    rng = seeded("deliveries")
    count = 100 if QUICK else 500
    kills = 3
    inst = instance
    queue.start()
    queue.wait_started()
    feed = BackgroundInjection(injector, count)
    feed.start()

    # The first kill lands once a random number of injections is done,
    # so that injection goes on across the crash; the others once a
    # random number of files (in a later band of the run each) is in the
    # Maildir. Each lands a random instant after a delivery started.
    for k in range(kills):
        low = int(count * (0.2 + 0.25 * k))
        target = rng.randint(low, low + int(count * 0.15))
        delay = rng.uniform(0, 0.005)  # a local delivery takes ms
        if k == 0:
            qmtest.wait_for(lambda: len(feed.codes) >= target or feed.done(),
                            timeout=60, interval=0.005,
                            message=f"{target} injections before kill 1")
        else:
            qmtest.wait_for(lambda: delivered_count(inst) >= target,
                            timeout=60, interval=0.005,
                            message=f"{target} deliveries before kill "
                            f"{k + 1}")
        wait_for_deliveries_under_way(queue)
        time.sleep(delay)
        killed = queue.crash(survey=True)
        locals_killed = sum("qmail-local" in c for c in killed)
        print(f"kill {k + 1}: target {target}, +{delay * 1000:.1f} ms: "
              f"{len(feed.codes)} injected, {delivered_count(inst)} files "
              f"in new/, {len(killed)} processes, {locals_killed} "
              f"qmail-local, injection "
              f"{'done' if feed.done() else 'running'}")
        queue.start()
        queue.wait_started()

    assert feed.join(120), "injection did not finish"
    assert not feed.errors, f"injection failed: {feed.errors}"
    bad = {s: c for s, c in feed.codes.items() if c != 0}
    assert not bad, f"qmail-queue exit codes: {bad}"
    assert len(feed.codes) == count

    want = set(range(count))
    wait_idle(inst, timeout=90)
    assert queue.stop() == 0
    assert_all_delivered(inst, want)

    # Every file in the Maildir is one whole message we injected.
    seen = collections.Counter()
    for name, data in delivered_files(inst):
        m = SEQ_RE.search(data)
        assert m, f"{name}: no X-Seq header"
        seq = int(m.group(1))
        assert data.endswith(seq_message(seq)), f"{name}: truncated"
        assert data.startswith(b"Return-Path: <" + SENDER.encode() + b">\n")
        seen[seq] += 1
    assert set(seen) == want
    dups = sorted((s, n) for s, n in seen.items() if n > 1)
    extra = sum(seen.values()) - count
    print(f"{sum(seen.values())} files for {count} messages; "
          f"{len(dups)} delivered more than once: {dups}")
    # Only a delivery in a busy slot at a kill can be repeated: a done
    # recipient is marked D before its slot is reused.
    assert extra <= kills * LOCAL_SLOTS, f"too many duplicates: {dups}"

    assert_drained(inst, kills)


# ---- 2. injections killed half-way are never delivered ----


class SlowFeed:
    """Writes chunks to a pipe at a steady pace in a thread, holding the
    last one back until release(): the test decides whether the data
    ever completes, never the timing."""

    def __init__(self, fd_or_file, chunks, pause):
        self.out = fd_or_file
        self.chunks = chunks
        self.pause = pause
        self.released = threading.Event()
        self.finished = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _write(self, data):
        if isinstance(self.out, int):
            view = memoryview(data)
            while view:
                view = view[os.write(self.out, view):]
        else:
            self.out.write(data)
            self.out.flush()

    def _main(self):
        try:
            for chunk in self.chunks[:-1]:
                self._write(chunk)
                time.sleep(self.pause)
            self.released.wait()
            self._write(self.chunks[-1])
            self.finished.set()
        except (BrokenPipeError, OSError, ValueError) as e:
            self.error = e
        finally:
            self.close()

    def close(self):
        try:
            if isinstance(self.out, int):
                os.close(self.out)
            else:
                self.out.close()
        except OSError:
            pass

    def start(self):
        self.thread.start()
        return self

    def release(self):
        self.released.set()

    def join(self):
        self.released.set()
        self.thread.join(30)


Pace = collections.namedtuple("Pace", "chunks pause env_pause")


def chunked(data, n):
    size = -(-len(data) // n)
    return [data[i:i + size] for i in range(0, len(data), size)]


def new_entries(inst, directory, before):
    return set(queue_entries(inst)[directory]) - before


def inject_slowly(inst, injector, message, env_data, pace, kill_in):
    """Feeds message in pace.chunks pieces, then the envelope a record at
    a time, each piece pace.pause seconds after the last. kill_in is None
    to let it complete, or ("message", seconds after the start) or
    ("envelope", seconds after intd/ appeared). Returns (exit code, what
    happened)."""
    rfd, wfd = os.pipe()
    try:
        proc = injector.spawn(rfd)
    finally:
        os.close(rfd)
    phase = kill_in[0] if kill_in else None
    body = SlowFeed(proc.stdin, chunked(message, pace.chunks), pace.pause)
    env_records = re.findall(rb"[^\0]*\0", env_data[:-1]) + [b"\0"]
    env = SlowFeed(wfd, env_records, pace.env_pause)
    intd_before = set(queue_entries(inst)["intd"])
    try:
        body.start()
        if phase == "message":
            time.sleep(kill_in[1])
            assert proc.poll() is None, "qmail-queue exited early"
            injector.kill(proc)
            return proc.returncode, "killed while reading the message"
        body.release()
        # The envelope starts once qmail-queue waits for it, so that it
        # really reads it slowly.
        qmtest.wait_for(lambda: new_entries(inst, "intd", intd_before),
                        timeout=30, message="qmail-queue to make intd")
        env.start()
        if phase == "envelope":
            time.sleep(kill_in[1])
            assert proc.poll() is None, (
                "qmail-queue exited before its envelope ended: "
                f"{proc.returncode}")
            injector.kill(proc)
            return proc.returncode, "killed while reading the envelope"
        env.release()
        code = proc.wait(timeout=60)
        injector.forget(proc)
        return code, "completed"
    finally:
        body.join()
        if env.thread.ident is not None:  # started
            env.join()
        env.close()
        if proc.poll() is None:
            injector.kill(proc)


def test_killed_injection_is_never_delivered(instance, queue, injector):
    rng = seeded("injection")
    inst = instance
    size = (1 if QUICK else 5) << 20
    # About 0.6 s for the message, 0.2 s for the envelope.
    pace = Pace(chunks=40, pause=0.015, env_pause=0.05)
    rcpts = [RCPT] * 4
    plan = ([("message", rng.uniform(0, pace.chunks * pace.pause))
             for _ in range(3)]
            + [("envelope", rng.uniform(0, len(rcpts) * pace.env_pause))
               for _ in range(3)]
            + [None])
    rng.shuffle(plan)
    # One more completed injection first, so that a kill never follows a
    # fresh queue only.
    plan.insert(0, None)

    outcomes = []
    completed = []
    for n, kill_in in enumerate(plan):
        tag = f"{'completed' if kill_in is None else 'killed'}-{n}"
        message = big_message(tag, size)
        code, what = inject_slowly(inst, injector, message,
                                   envelope(rcpts), pace, kill_in)
        when = "" if kill_in is None else f" {kill_in[1] * 1000:.0f} ms in"
        outcomes.append(f"{tag}: {what}{when}, exit {code}")
        print(outcomes[-1])
        if kill_in is None:
            assert code == 0, outcomes[-1]
            completed.append((tag, message))
        else:
            assert code == -signal.SIGKILL, outcomes[-1]

    # Before qmail-send runs: only completed injections have a todo
    # entry.
    entries = queue_entries(inst)
    todo_tags = sorted(INJECT_RE.search(mess_head(inst, i)).group(1).decode()
                       for i in entries["todo"])
    assert todo_tags == sorted(tag for tag, _ in completed), (
        f"todo: {todo_tags}")
    print(f"before delivery: {dict((d, len(v)) for d, v in entries.items())}")

    queue.start()
    queue.wait_started()

    # Killed injections leave mess/ and intd/ entries behind.
    wait_idle(inst, timeout=60, ignore=("mess", "intd"))
    assert queue.stop() == 0

    got = collections.Counter()
    for name, data in delivered_files(inst):
        m = INJECT_RE.search(data[:8192])
        assert m, f"{name}: no X-Inject header"
        tag = m.group(1).decode()
        assert not tag.startswith("killed"), f"{name}: {tag} was delivered"
        assert data.endswith(dict(completed)[tag]), f"{name}: truncated"
        got[tag] += 1
    assert got == {tag: len(rcpts) for tag, _ in completed}

    # Leftovers of killed injections: pid/, mess/ and intd/ (the envelope
    # case) without todo, as qmail leaves them; nothing else.
    entries = queue_entries(inst)
    left = {d: v for d, v in entries.items()
            if v and d not in ("pid", "mess", "intd")}
    assert not left, f"unexpected queue files: {left}"
    for ident in entries["mess"]:
        m = INJECT_RE.search(mess_head(inst, ident))
        assert not m or m.group(1).startswith(b"killed"), (
            f"mess/{ident} of a completed message is still queued")
    print(f"leftovers: pid {len(entries['pid'])}, "
          f"mess {len(entries['mess'])}, intd {len(entries['intd'])}")


# ---- 3. qmail-send killed before it processed todo ----


def new_info(inst, before):
    """Has qmail-send written an info file since the snapshot `before`?"""
    return set(queue_entries(inst)["info"]) - set(before["info"])


def todo_removed(inst, before):
    """Has qmail-clean removed a todo entry since the snapshot `before`?"""
    return set(before["todo"]) - set(queue_entries(inst)["todo"])


# When each round kills qmail-send: a random instant after the start
# (maybe before it looks at todo/ at all), after its first new info file
# (while it writes and syncs a batch), or after the first todo entry went
# (while qmail-clean drops the batch's entries). Waiting for the queue
# files rather than for a fixed time keeps the aim whatever the speed of
# the build (sanitizers make the start slow).
KILL_MOMENTS = (("after the start", None, 0.04),
                ("after a new info file", new_info, 0.02),
                ("after a todo entry went", todo_removed, 0.005))


def test_queue_killed_before_todo_processed(instance, queue, injector):
    rng = seeded("todo")
    inst = instance
    rounds = 6 if QUICK else 12
    per_round = 10
    injected = set()
    log = []
    for r in range(rounds):
        for i in range(per_round):
            seq = r * per_round + i
            assert injector.run(seq_message(seq)) == 0
            injected.add(seq)
        moment, event, spread = KILL_MOMENTS[r % len(KILL_MOMENTS)]
        delay = rng.uniform(0, spread)
        before = queue_entries(inst)
        queue.start()
        started = time.monotonic()
        if event is not None:
            qmtest.wait_for(lambda: event(inst, before), timeout=30,
                            interval=0.001,
                            message=f"qmail-send: {moment}")
        time.sleep(delay)
        queue.crash()
        elapsed = time.monotonic() - started
        entries = queue_entries(inst)
        delivered = set(delivered_seqs(inst))
        lost = injected - delivered - queued_seqs(inst)
        log.append(f"round {r + 1}: killed {elapsed * 1000:.1f} ms after "
                   f"the start ({delay * 1000:.1f} ms {moment}); "
                   f"todo {len(entries['todo'])}, info "
                   f"{len(entries['info'])}, delivered {len(delivered)}")
        print(log[-1])
        assert not lost, (f"round {r + 1}: lost {sorted(lost)}\n"
                          + "\n".join(log))

    queue.start()
    wait_idle(inst, timeout=60)
    assert queue.stop() == 0
    assert_all_delivered(inst, injected)
    seen = collections.Counter()
    for name, data in delivered_files(inst):
        m = SEQ_RE.search(data)
        assert m, f"{name}: no X-Seq header"
        assert data.endswith(seq_message(int(m.group(1)))), (
            f"{name}: truncated")
        seen[int(m.group(1))] += 1
    assert set(seen) == injected
    print(f"{sum(seen.values())} files for {len(injected)} messages")
    assert_drained(inst, rounds)
