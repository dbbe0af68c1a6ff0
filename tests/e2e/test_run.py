"""`make run`: the instance starts under svscan, delivers, and stops cleanly.

This drives scripts/run-instance.sh (what `make run` executes after
building) with the build under test, in a fresh directory, and checks
that SIGTERM and SIGINT leave no process of the instance behind.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from qmtest import wait_for

REPO = pathlib.Path(__file__).resolve().parents[2]


def instance_pids(home):
    """Processes whose command line or cwd mentions the instance."""
    pids = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ")
            cwd = os.readlink(d / "cwd")
        except OSError:
            continue
        if str(home).encode() in cmd or cwd.startswith(str(home)):
            pids.append(int(d.name))
    return pids


@pytest.fixture
def run_dir():
    d = tempfile.mkdtemp(prefix="qm-run-", dir="/tmp")
    os.chmod(d, 0o755)
    yield pathlib.Path(d) / "instance"
    if not os.environ.get("QM_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


PORTS = ("QM_SMTP_PORT", "QM_SMTPS_PORT", "QM_SUBMISSION_PORT",
         "QM_POP3_PORT", "QM_POP3S_PORT", "QM_QMQP_PORT")


def free_port():
    """A port free on both 127.0.0.1 and ::1 (the services use both)."""
    import socket
    for _ in range(50):
        with socket.socket() as s4:
            s4.bind(("127.0.0.1", 0))
            port = s4.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET6) as s6:
                    s6.bind(("::1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def start(run_dir):
    env = dict(os.environ, QM_BUILD=os.environ.get("QM_BUILD", str(REPO / "build")))
    for name in PORTS:
        env[name] = str(free_port())
    log = open(run_dir.parent / "run.log", "wb")
    proc = subprocess.Popen(
        ["sh", str(REPO / "scripts/run-instance.sh"), str(run_dir)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, cwd=str(REPO))
    return proc


def log_text(run_dir):
    return (run_dir.parent / "run.log").read_text(errors="replace")


def inject(run_dir, rcpt, body):
    account = (run_dir / "INSTANCE").read_text().strip()
    env = dict(os.environ, QMAILHOME=str(run_dir))
    r, w = os.pipe()
    os.write(w, b"Fsender@example.test\0T" + rcpt.encode() + b"\0\0")
    os.close(w)
    prefix = ["setuidgid", account] if os.getuid() == 0 else []
    p = subprocess.run(prefix + [str(run_dir / "bin/qmail-queue")],
                       input=body, stdout=r, env=env)
    os.close(r)
    return p.returncode


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_delivers_and_stops(run_dir, sig):
    proc = start(run_dir)
    try:
        wait_for(lambda: "Press Ctrl-C to stop." in log_text(run_dir),
                 timeout=60, message="run-instance did not start")
        wait_for(lambda: "status: local 0/10 remote 0/20" in log_text(run_dir),
                 timeout=20, message="qmail-send did not start")
        assert inject(run_dir, "demo@localhost",
                      b"Subject: run test\n\nhello from make run\n") == 0
        maildir = run_dir / "mail/demo/Maildir/new"
        wait_for(lambda: list(maildir.iterdir()), timeout=20,
                 message="message not delivered")
        (msg,) = list(maildir.iterdir())
        data = msg.read_bytes()
        assert data.startswith(b"Return-Path: <sender@example.test>\n"
                               b"Delivered-To: demo@localhost\n"
                               b"Received: (qmail ")
        assert data.endswith(b"\nSubject: run test\n\nhello from make run\n")
        # The log reaches the terminal as well as instance/log/.
        wait_for(lambda: "end msg" in log_text(run_dir), timeout=10)
        assert list((run_dir / "log/qmail").glob("current"))
        assert instance_pids(run_dir)
    finally:
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log_text(run_dir)
    assert "run-instance: stopped" in log_text(run_dir)
    for report in ("ERROR: AddressSanitizer", "runtime error:",
                   "ERROR: LeakSanitizer"):
        assert report not in log_text(run_dir), log_text(run_dir)
    wait_for(lambda: not instance_pids(run_dir), timeout=10,
             message="processes left behind")


@pytest.mark.skipif(os.getuid() != 0, reason="the instance gets its own "
                    "account only under root")
def test_run_relocates_an_instance_its_account_cannot_reach():
    """As root below a directory others may not search (root's home is
    0700 on Debian), make run puts the instance under
    /var/lib/qmail-instance, links the path asked for to it, says so, and
    the instance works; a second run reuses it."""
    closed = pathlib.Path(tempfile.mkdtemp(prefix="qm-run-closed-",
                                           dir="/tmp"))
    os.chmod(closed, 0o700)
    run_dir = closed / "instance"
    real = pathlib.Path("/var/lib/qmail-instance") / \
        str(run_dir).replace("/", "_")
    try:
        for attempt in range(2):
            proc = start(run_dir)
            try:
                wait_for(lambda: "Press Ctrl-C to stop." in log_text(run_dir),
                         timeout=60, message="run-instance did not start")
                assert os.readlink(run_dir) == str(real)
                said = (f"qmail-instance: {closed} may not be searched by "
                        f"others: the instance is in {real}, and {run_dir} "
                        f"links to it")
                assert (said in log_text(run_dir)) == (attempt == 0)
                if attempt == 0:
                    wait_for(lambda: "status: local 0/10 remote 0/20"
                             in log_text(run_dir), timeout=20)
                    # The account reaches the instance only by its
                    # real path.
                    assert inject(real, "demo@localhost",
                                  b"Subject: relocated\n\nhello\n") == 0
                    maildir = real / "mail/demo/Maildir/new"
                    wait_for(lambda: list(maildir.iterdir()), timeout=20,
                             message="message not delivered")
            finally:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            assert proc.returncode == 0, log_text(run_dir)
            wait_for(lambda: not instance_pids(real), timeout=10,
                     message="processes left behind")
            (run_dir.parent / "run.log").unlink()
        assert len(list((real / "mail/demo/Maildir/new").iterdir())) == 1
    finally:
        shutil.rmtree(closed, ignore_errors=True)
        shutil.rmtree(real, ignore_errors=True)


def test_run_reuses_the_instance(run_dir):
    for _ in range(2):
        proc = start(run_dir)
        try:
            wait_for(lambda: "Press Ctrl-C to stop." in log_text(run_dir),
                     timeout=60)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        assert proc.returncode == 0
        wait_for(lambda: not instance_pids(run_dir), timeout=10)
    # The second start kept the first one's instance (same control/me).
    assert (run_dir / "control/me").read_text().strip()
    assert (run_dir / "queue/lock/trigger").exists()


def test_run_serves_submission_and_pop3_over_tls(run_dir):
    """The whole system as a person meets it: STARTTLS on SMTP, AUTH on
    submission, and both messages read back over POP3 with STLS."""
    import poplib
    import smtplib
    import ssl

    ports = {name: free_port() for name in PORTS}
    env = dict(os.environ,
               QM_BUILD=os.environ.get("QM_BUILD", str(REPO / "build")),
               **{k: str(v) for k, v in ports.items()})
    log = open(run_dir.parent / "run.log", "wb")
    proc = subprocess.Popen(
        ["sh", str(REPO / "scripts/run-instance.sh"), str(run_dir)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, cwd=str(REPO))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the instance's own self-signed cert
    try:
        wait_for(lambda: "Press Ctrl-C to stop." in log_text(run_dir),
                 timeout=60, message="run-instance did not start")
        password = (run_dir / "demo.password").read_text().strip()
        assert len(password) >= 16
        assert password in log_text(run_dir)
        assert (run_dir / "demo.password").stat().st_mode & 0o077 == 0

        def smtp(port):
            return wait_for(lambda: _connect(smtplib.SMTP, port),
                            timeout=20, message=f"port {port}")

        s = smtp(ports["QM_SMTP_PORT"])
        s.starttls(context=ctx)
        s.sendmail("someone@example.test", ["demo@localhost"],
                   b"Subject: over 25\r\n\r\nfirst\r\n")
        s.quit()
        s = smtp(ports["QM_SUBMISSION_PORT"])
        code, _ = s.mail("demo@localhost")
        assert code == 530  # no AUTH, no TLS: nothing goes
        s.rset()
        s.starttls(context=ctx)
        s.login("demo", password)
        s.sendmail("demo@localhost", ["demo@localhost"],
                   b"Subject: over 587\r\n\r\nsecond\r\n")
        s.quit()

        def count():
            box = run_dir / "mail/demo/Maildir"
            return len(list((box / "new").iterdir())) + \
                len(list((box / "cur").iterdir()))
        wait_for(lambda: count() == 2, timeout=30,
                 message="both messages delivered")
        p = poplib.POP3("127.0.0.1", ports["QM_POP3_PORT"], timeout=20)
        p.stls(context=ctx)
        p.user("demo")
        p.pass_(password)
        n, _ = p.stat()
        assert n == 2
        bodies = [b"\n".join(p.retr(i)[1]) for i in (1, 2)]
        p.quit()
        assert any(b"Subject: over 25" in b and b"ESMTPS (" in b
                   for b in bodies)
        assert any(b"Subject: over 587" in b and b"ESMTPSA (" in b and
                   b"(demo@127.0.0.1)" in b for b in bodies)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log_text(run_dir)
    wait_for(lambda: not instance_pids(run_dir), timeout=10,
             message="processes left behind")


def _connect(cls, port):
    try:
        return cls("127.0.0.1", port, timeout=20)
    except OSError:
        return None
