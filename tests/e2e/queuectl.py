"""queuectl: start, stop and crash the queue of one instance.

A Queue runs bin/qmail-start as the instance's account, in a session of
its own, with the queue's log (qmail-send's fd 0, qmail-start's fd 1) in a
file of the test's LogBook. setuidgid and qmail-start both exec, so the
process we start becomes qmail-send, and its pid is also the process group
and session of every spawner and delivery under it. A Queue must never
leave a process behind: crash() and stop() wait until the whole session
is gone, and callers put close() in a finally or a fixture teardown.
"""

import os
import signal
import subprocess
import time

import qmtest

STOP_TIMEOUT = 20


class QueueError(Exception):
    pass


class Queue:
    """The queue processes of one instance; start() may follow crash() or
    stop() any number of times, each run logging to a fresh file."""

    def __init__(self, inst, delivery="./Maildir/"):
        self.inst = inst
        self.delivery = delivery
        self.proc = None
        self.log_path = None
        self.runs = 0
        self.env = None

    # ---- starting ----

    def start(self):
        if self.running():
            raise QueueError("the queue is already running")
        self.runs += 1
        self.log_path = self.inst.logbook.new(f"queue-run{self.runs}")
        argv = self.inst.as_account(
            [str(self.inst.path / "bin" / "qmail-start"), self.delivery])
        # qmail-send's fd 2 is a pipe from qmail-lspawn, and UBSan writes
        # its reports to fd 2 (ASan's it redirects itself): a report from
        # the queue would be lost. log_path puts them in files the
        # LogBook scans.
        env = self.inst.env()
        reports = self.inst.logbook.report_dir(self.inst.path.name)
        env["UBSAN_OPTIONS"] = (env.get("UBSAN_OPTIONS", "")
                                + f":log_path={reports}/ubsan-run{self.runs}")
        self.env = env  # what qmail-start was given, for tests to compare
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=self.inst.path,
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        return self.proc.pid

    def wait_started(self, timeout=10):
        """Waits until qmail-send has logged its first status line, which
        it does after both spawners have said hello."""
        qmtest.wait_for(lambda: "status: local" in self.log_text(),
                        timeout=timeout, message="qmail-send to start")

    # ---- looking ----

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def members(self):
        """[(pid, cmdline)] of the live processes of the current run."""
        if self.proc is None:
            return []
        return qmtest.session_members(self.proc.pid)

    def deliveries_running(self):
        """How many qmail-local processes the current run has."""
        return sum(1 for _, cmd in self.members() if "qmail-local" in cmd)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    # ---- ending ----

    def crash(self, survey=False):
        """SIGKILLs the whole process group at once, as a power cut would
        end it (minus the page cache), and waits until all of it is gone.
        With survey, first lists the processes (which takes a few ms of
        /proc reading) and returns their command lines."""
        if self.proc is None:
            return []
        killed = [cmd for _, cmd in self.members()] if survey else []
        self._reap(signal.SIGKILL)
        return killed

    def stop(self):
        """SIGTERM to qmail-send, as svc -d does; it lets deliveries under
        way finish and then exits, and the spawners follow when their pipes
        close. Raises QueueError if that does not happen in time (after
        killing everything)."""
        if self.proc is None:
            return None
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not self.members():
                code = self.proc.returncode
                self.proc = None
                return code
            time.sleep(0.05)
        left = self.members()
        self._reap(signal.SIGKILL)
        raise QueueError(f"the queue did not stop on SIGTERM: {left!r}")

    def close(self):
        """For teardown: whatever state we are in, nothing survives."""
        if self.proc is not None:
            self._reap(signal.SIGKILL)

    def _reap(self, sig):
        sid = self.proc.pid
        qmtest.kill_group(sid, sig)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        # A process that changed its group still carries the session id.
        deadline = time.monotonic() + STOP_TIMEOUT
        left = qmtest.session_members(sid)
        while left and time.monotonic() < deadline:
            for pid, _ in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
            left = qmtest.session_members(sid)
        self.proc = None
        if left:
            raise QueueError(f"queue processes survived SIGKILL: {left!r}")
