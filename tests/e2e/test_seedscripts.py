"""The seed's run scripts for ports 587 and 110, run as written under
daemontools supervise, against temporary system accounts.

Each service directory's run file is the seed's command line from
spec/ucspi-tls.md with only these substitutions: the ucspissl account
becomes nobody, /var/qmail becomes the test instance, and the port a
free one. The programs are found by name through PATH (the instance's
bin), and checkpassword is our system checkpassword. The run file also
sets QMAILHOME and, for 587, QMAILQUEUE=qmail-qmqpc: an instance's
qmail-queue is not setuid, so a system user's qmail-ofmipd hands the
message by QMQP to the instance's qmail-qmqpd, which queues it as the
instance's account, and the instance's queue delivers it to demo.

The tests create system users (useradd, chpasswd) and a uid-0 alias of
root with its own password, so they run only as root under CI or with
QM_SYSTEM_TESTS=1. They must never change root's password, and never
leave an account, a process or a temporary directory behind.
"""

import base64
import datetime
import email.utils
import os
import poplib
import pwd
import re
import secrets
import shutil
import smtplib
import ssl
import subprocess
import threading
import time
import types

import pytest

import qmtest
from qmtest import wait_for
from queuectl import Queue

ME = "example.test"
NOLOGIN = "/usr/sbin/nologin"
TOOLS = ("useradd", "userdel", "chpasswd", "supervise", "svc", "svstat",
         "tcpserver", "tcpclient", "setuidgid")

# The seed's command lines (spec/ucspi-tls.md). The 110 line there
# elides its environment with "..."; it is the 587 line's.
SEED_587 = """\
env UCSPITLS='!' SSL_UID=$(id -u ucspissl) SSL_GID=$(id -g ucspissl) \\
    CERTFILE=/var/qmail/control/servercert.pem \\
  sslserver -ne -vRl0 0 587 \\
    qmail-reup -t 5 qmail-authup smtp checkpassword checknotroot qmail-ofmipd
"""
SEED_110 = """\
env UCSPITLS='!' SSL_UID=$(id -u ucspissl) SSL_GID=$(id -g ucspissl) \\
    CERTFILE=/var/qmail/control/servercert.pem \\
  sslserver -ne -vRl0 0 110 \\
    qmail-authup pop3 checkpassword checknotroot qmail-pop3d Maildir
"""

FAILED = (535, b"authentication failed (#5.7.8)")
LAST_FAILURE = (535, b"authentication failed (#5.7.8)\n"
                b"too many failed logins; closing connection (#5.7.8)")
NEED_TLS = (530, b"Must issue a STARTTLS command first (#5.7.0)")
NEED_AUTH = (530, b"authentication required (#5.7.1)")
GO_AHEAD = (235, b"ok, go ahead (#2.0.0)")
POP_FAILED = "-ERR authorization failed"
ROOT_REFUSED = "checknotroot: WAS RUNNING AS ROOT, TERMINATING"

# Programs that run as root during a session: those before
# checkpassword, none of which does TLS itself.
ROOT_BEFORE_LOGIN = {"supervise", "tcpserver", "qmail-reup", "qmail-authup"}
# And for a moment: checkpassword until it changes ids, checknotroot
# refusing uid 0, and ucspi-tlsd loading the key before it forks and
# takes SSL_UID (it reads nothing from the network as root).
ROOT_FOR_A_MOMENT = ROOT_BEFORE_LOGIN | {"checkpassword", "checknotroot",
                                         "ucspi-tlsd"}


def skip_reason():
    if not qmtest.is_root():
        return "needs root: it creates system users and runs services as root"
    if not (os.environ.get("CI") or os.environ.get("QM_SYSTEM_TESTS") == "1"):
        return ("it creates system users: runs only as root under CI or "
                "with QM_SYSTEM_TESTS=1")
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is needed"
    return None


pytestmark = pytest.mark.skipif(skip_reason() is not None,
                                reason=str(skip_reason()))


# ---- system accounts ----


def account_tool(argv, data=None, ok=(0,)):
    """Runs useradd, userdel or chpasswd; again while another process
    holds the lock on the account files."""
    deadline = time.monotonic() + 30
    while True:
        result = subprocess.run(argv, input=data, capture_output=True,
                                timeout=60)
        if result.returncode in ok:
            return result
        if b"lock" not in result.stderr or time.monotonic() > deadline:
            raise AssertionError(f"{argv!r} failed ({result.returncode}): "
                                 f"{result.stderr!r}")
        time.sleep(0.1)


def root_shadow_entry():
    with open("/etc/shadow") as f:
        return [line for line in f if line.startswith("root:")]


def make_owned_dir(path, entry, mode):
    path.mkdir(mode=mode)
    path.chmod(mode)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def add_user(base, name, password, alias_of_root=False):
    """A user whose home, under base, it owns and holds a Maildir; or,
    with alias_of_root, a second name for uid 0 that expires in two
    days, so that one left behind by a killed run dies by itself."""
    home = base / name
    if alias_of_root:
        expiry = (datetime.date.today() + datetime.timedelta(days=2))
        account_tool(["useradd", "-o", "-u", "0", "-g", "0", "-N", "-M",
                      "-d", str(home), "-s", NOLOGIN, "-e",
                      expiry.isoformat(), name])
    else:
        account_tool(["useradd", "-M", "-U", "-d", str(home), "-s",
                      NOLOGIN, name])
    entry = pwd.getpwnam(name)
    make_owned_dir(home, entry, 0o755)
    if not alias_of_root:
        for sub in ("Maildir", "Maildir/new", "Maildir/cur", "Maildir/tmp"):
            make_owned_dir(home / sub, entry, 0o700)
    account_tool(["chpasswd"], f"{name}:{password}\n".encode())
    return types.SimpleNamespace(name=name, password=password, entry=entry,
                                 home=home)


def remove_user(name, alias_of_root=False):
    # userdel refuses a name of uid 0 while root has processes: -f.
    # Exit 6: useradd itself had failed, there is nothing to remove.
    account_tool(["userdel", "-f", name] if alias_of_root else
                 ["userdel", name], ok=(0, 6))


@pytest.fixture(scope="module")
def accounts():
    """Two users (alice-like one, bob-like two) and root's alias."""
    before = root_shadow_entry()
    base = qmtest.make_public_tempdir("qm-seedusers-")
    tail = secrets.token_hex(3)
    made = []
    try:
        users = {}
        for key in ("one", "two"):
            name = f"qmts{key}{tail}"
            made.append((name, False))
            users[key] = add_user(base, name, f"pw {secrets.token_hex(8)}")
        name = f"qmtroot{tail}"
        made.append((name, True))
        users["root"] = add_user(base, name, f"r {secrets.token_hex(8)}",
                                 alias_of_root=True)
        yield types.SimpleNamespace(**users)
    finally:
        errors = []
        for name, alias in reversed(made):
            try:
                remove_user(name, alias)
            except AssertionError as e:
                errors.append(str(e))
        shutil.rmtree(base, ignore_errors=True)
        assert not errors, errors
        for name, _ in made:
            with pytest.raises(KeyError):
                pwd.getpwnam(name)
        assert root_shadow_entry() == before, "root's password changed"


# ---- the instance, its queue and its QMQP server ----


@pytest.fixture(scope="module")
def system(bindir, qm_session_dir, accounts):
    """The instance with a certificate, its queue running, and a
    qmail-qmqpd taking the system users' mail into it."""
    if not (bindir / "sslserver").exists():
        pytest.skip("sslserver is not built yet")
    book = qmtest.LogBook(qm_session_dir / "logs" / "seedscripts-module")
    inst = qmtest.Instance(qmtest.make_public_tempdir("qm-seed-"), bindir,
                           ME, ["demo"], book)
    servers = qmtest.Servers(bindir, book, qm_session_dir)
    queue = None
    try:
        result = inst.install()
        assert result.returncode == 0, result.stderr
        made = inst.run([str(inst.path / "bin" / "mkcert"), "127.0.0.1"])
        assert made.returncode == 0, made.stderr
        qmqpd = servers.start([str(inst.path / "bin" / "qmail-qmqpd")],
                              as_account=inst, name="qmail-qmqpd",
                              localname=ME)
        inst.control("qmqpservers", f"127.0.0.1:{qmqpd.port}\n")
        queue = Queue(inst)
        queue.start()
        queue.wait_started(timeout=20)
        yield types.SimpleNamespace(inst=inst, queue=queue, book=book,
                                    accounts=accounts,
                                    nobody=pwd.getpwnam("nobody"))
        assert queue.stop() == 0
    finally:
        if queue is not None:
            queue.close()
        errors = servers.stop_all()
        inst.remove()
        assert not errors, errors
        reports = book.sanitizer_reports()
        assert not reports, [path.name for path, _ in reports]


def client_context(inst):
    """Trusts the instance's self-signed certificate, for 127.0.0.1."""
    text = (inst.path / "control" / "servercert.pem").read_text()
    cert = re.search(r"-----BEGIN CERTIFICATE-----.*?"
                     r"-----END CERTIFICATE-----", text, re.S).group(0)
    return ssl.create_default_context(cadata=cert)


# ---- the services under supervise ----


def run_file(inst, seed, port, extra_env=()):
    """The run file: the seed's line with only the allowed changes."""
    line = (seed.replace("ucspissl", "nobody")
            .replace("/var/qmail", str(inst.path))
            .replace(" 587 ", f" {port} ").replace(" 110 ", f" {port} "))
    env = [("PATH", f"{inst.path}/bin:/usr/bin:/bin"),
           ("QMAILHOME", str(inst.path))] + list(extra_env)
    return ("#!/bin/sh\n"
            "# The seed's run script, for test_seedscripts.py.\n"
            "exec 2>&1\n"
            + "".join(f"{name}='{value}'\n" for name, value in env)
            + "export " + " ".join(name for name, _ in env) + "\n"
            + "exec " + line)


class Supervised:
    """One service directory run by `supervise DIR` in a session of its
    own; stop() ends it with svc -dx and checks that nothing is left."""

    START_TIMEOUT = 10

    def __init__(self, directory, log_path):
        self.dir = directory
        self.log_path = log_path
        self.proc = None

    def start(self, text):
        self.dir.mkdir(mode=0o755)
        (self.dir / "run").write_text(text)
        (self.dir / "run").chmod(0o755)
        env = dict(qmtest.SANITIZER_ENV, PATH="/usr/bin:/bin")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["supervise", str(self.dir)], env=env,
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def child_pid(self):
        """The pid of the run script (by then tcpserver), from svstat."""
        result = subprocess.run(["svstat", str(self.dir)],
                                capture_output=True, timeout=10)
        m = re.search(rb": up \(pid (\d+)\)", result.stdout)
        return int(m.group(1)) if m else None

    def wait_listening(self, port):
        """True once tcpserver listens; False when the port was taken."""
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            pid = self.child_pid()
            if pid and qmtest.is_listening(pid, port):
                return True
            if "address already used" in self.log_text():
                return False
            time.sleep(0.05)
        raise AssertionError(f"{self.dir} not listening on {port}:\n"
                             f"{self.log_text()}")

    def members(self):
        return qmtest.session_members(self.proc.pid)

    def stop(self):
        """svc -dx, then every process of the session must end."""
        if self.proc is None:
            return
        sid = self.proc.pid
        try:
            result = subprocess.run(["svc", "-dx", str(self.dir)],
                                    capture_output=True, timeout=10)
            assert result.returncode == 0, result.stderr
            self.proc.wait(timeout=15)
            wait_for(lambda: not qmtest.session_members(sid), timeout=15,
                     message=f"every process of {self.dir.name} to end")
        finally:
            left = qmtest.session_members(sid)
            for pid, _ in left:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None


def start_service(system, qm_session_dir, qm_logbook, name, seed,
                  extra_env=()):
    """Starts the seed's script under supervise on a free port (for
    host 0, every address); returns (service, port)."""
    for attempt in range(5):
        port = qmtest.free_port("0.0.0.0")
        directory = qm_session_dir / f"seed-{name}-{port}-{attempt}"
        service = Supervised(directory, qm_logbook.new(f"supervise-{name}"))
        service.start(run_file(system.inst, seed, port, extra_env))
        try:
            if service.wait_listening(port):
                service.port = port
                return service
        except AssertionError:
            service.stop()
            shutil.rmtree(directory, ignore_errors=True)
            raise
        service.stop()
        shutil.rmtree(directory, ignore_errors=True)
    raise AssertionError(f"no free port for {name}")


@pytest.fixture
def submission(system, qm_session_dir, qm_logbook):
    qmqpc = system.inst.path / "bin" / "qmail-qmqpc"
    service = start_service(system, qm_session_dir, qm_logbook,
                            "submission", SEED_587,
                            [("QMAILQUEUE", str(qmqpc))])
    try:
        yield service
    finally:
        service.stop()
        shutil.rmtree(service.dir, ignore_errors=True)


@pytest.fixture
def pop3(system, qm_session_dir, qm_logbook):
    service = start_service(system, qm_session_dir, qm_logbook, "pop3",
                            SEED_110)
    try:
        yield service
    finally:
        service.stop()
        shutil.rmtree(service.dir, ignore_errors=True)


# ---- processes, through /proc ----


def proc_info(pid):
    """(name, [uids], [gids], [groups], cwd) of pid, or None once gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            name = f.read().strip()
        fields = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = [int(v) for v in value.split()] if key in (
                    "Uid", "Gid", "Groups") else value
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    return types.SimpleNamespace(pid=pid, name=name, uids=fields["Uid"],
                                 gids=fields["Gid"],
                                 groups=fields["Groups"], cwd=cwd)


def proc_environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        raw = f.read()
    return dict(item.decode(errors="replace").partition("=")[::2]
                for item in raw.split(b"\0") if item)


def processes(service):
    return [info for info in (proc_info(pid) for pid, _ in service.members())
            if info is not None]


def named(service, name):
    return [p for p in processes(service) if p.name == name]


def check_session_ids(system, service, program, user):
    """program runs as user in its home, the TLS process as nobody,
    and only the programs before checkpassword as root."""
    (proc,) = wait_for(lambda: named(service, program),
                       message=f"{program} to run")
    entry = user.entry
    assert proc.uids == [entry.pw_uid] * 4
    assert proc.gids == [entry.pw_gid] * 4
    assert proc.groups == [entry.pw_gid]
    env = proc_environ(proc.pid)
    assert (env.get("USER"), env.get("HOME")) == (user.name, str(user.home))
    if program == "qmail-pop3d":
        assert proc.cwd == str(user.home)
    tls = named(service, "ucspi-tlsd")
    assert tls, processes(service)
    for p in tls:
        assert p.uids == [system.nobody.pw_uid] * 4, p
        assert p.gids == [system.nobody.pw_gid] * 4, p
    for p in processes(service):
        if 0 in p.uids:
            assert p.name in ROOT_BEFORE_LOGIN, p


class RootWatch:
    """Samples the service's processes while it is open, noting the
    names seen running with uid 0 anywhere in their ids."""

    def __init__(self, service):
        self.service = service
        self.seen = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.done.is_set():
            for p in processes(self.service):
                if 0 in p.uids:
                    self.seen.add(p.name)
            time.sleep(0.002)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(timeout=10)


# ---- SMTP helpers ----


def b64_plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def smtp_over_tls(system, service):
    """An smtplib session past EHLO, STARTTLS and EHLO again."""
    smtp = smtplib.SMTP("127.0.0.1", service.port, timeout=20,
                        local_hostname="client.example")
    try:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
        smtp.starttls(context=client_context(system.inst))
        smtp.ehlo()
        assert smtp.has_extn("auth")
        assert smtp.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        assert not smtp.has_extn("starttls")
    except BaseException:
        smtp.close()  # an open connection would keep the service's
        raise         # processes alive past svc -dx
    return smtp


def auth_plain(smtp, user, password):
    return smtp.docmd("AUTH", "PLAIN " + b64_plain(user, password))


def delivered(system, marker):
    """The message holding marker in demo's Maildir, once it is there."""
    def find():
        for _, data in system.inst.maildir_messages("demo"):
            if marker.encode() in data:
                return data
        return None

    try:
        return wait_for(find, timeout=30, message=f"delivery of {marker}")
    except AssertionError as e:
        raise AssertionError(f"{e}\nqueue log:\n{system.queue.log_text()}")


def header_fields(data):
    """[(name, value)] of the header, continuation lines joined."""
    head = data.split(b"\n\n", 1)[0].decode()
    fields = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + "\n" + line)
        else:
            name, _, value = line.partition(":")
            fields.append((name, value.strip()))
    return fields


def values(fields, name):
    return [v for n, v in fields if n.lower() == name.lower()]


# ---- 587 ----


@pytest.mark.parametrize("mech,who", [("PLAIN", "one"), ("LOGIN", "two")])
def test_submission_delivers_with_fixed_headers(system, submission, mech,
                                                who):
    user = getattr(system.accounts, who)
    marker = f"seed-{secrets.token_hex(6)}"
    with smtp_over_tls(system, submission) as smtp:
        cipher = smtp.sock.cipher()[0]
        smtp.user, smtp.password = user.name, user.password
        method = smtp.auth_plain if mech == "PLAIN" else smtp.auth_login
        assert smtp.auth(mech, method) == GO_AHEAD
        check_session_ids(system, submission, "qmail-ofmipd", user)
        # Bare addresses: the envelope and the header get qualified.
        message = (f"From: {user.name}\r\nTo: demo\r\n"
                   f"Subject: {marker}\r\n\r\nsent with AUTH {mech}\r\n")
        assert smtp.sendmail(user.name, ["demo"], message) == {}
    data = delivered(system, marker)
    address = f"{user.name}@{ME}"
    head = (f"Return-Path: <{address}>\nDelivered-To: demo@{ME}\n").encode()
    assert data.startswith(head), data[:400]
    rest = data[len(head):]
    # qmail-queue's and qmail-qmqpd's lines, then qmail-ofmipd's.
    received = re.match(
        rb"Received: \(qmail \d+ invoked [^\n]*\); [^\n]+\n"
        rb"Received: from [^\n]+\n  by example\.test with QMQP; [^\n]+\n"
        rb"Received: from (\S+)(?: \(HELO client\.example\))? \(([^)]*)\)\n"
        rb"  by 0 with ESMTPSA \(([^)]*) encrypted\); ([^\n]+)\n", rest)
    assert received, rest[:600]
    assert received.group(2) == f"{user.name}@127.0.0.1".encode()
    assert received.group(3).decode() == cipher
    email.utils.parsedate_to_datetime(received.group(4).decode())
    fields = header_fields(rest[received.end():])
    assert values(fields, "From") == [address]
    assert values(fields, "To") == [f"demo@{ME}"]
    assert values(fields, "Subject") == [marker]
    (date,) = values(fields, "Date")
    email.utils.parsedate_to_datetime(date)
    (msgid,) = values(fields, "Message-ID")
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", msgid), msgid
    assert data.endswith(f"\n\nsent with AUTH {mech}\n".encode())


def test_four_failures_then_success_on_one_connection(system, submission):
    user = system.accounts.one
    with smtp_over_tls(system, submission) as smtp:
        for _ in range(4):
            assert auth_plain(smtp, user.name, user.password + "x") == FAILED
        assert auth_plain(smtp, user.name, user.password) == GO_AHEAD
        check_session_ids(system, submission, "qmail-ofmipd", user)
        # qmail-ofmipd answers at once: no second greeting came.
        assert smtp.docmd("MAIL", f"FROM:<{user.name}>") == (250, b"ok")
        assert smtp.docmd("RSET")[0] == 250
    assert submission.log_text().count(f"login failed for {user.name}") == 4


def test_fifth_failure_ends_the_session(system, submission):
    user = system.accounts.one
    smtp = smtp_over_tls(system, submission)
    try:
        for _ in range(4):
            assert auth_plain(smtp, user.name, "wrong") == FAILED
        assert auth_plain(smtp, user.name, "wrong") == LAST_FAILURE
        with pytest.raises(smtplib.SMTPServerDisconnected):
            auth_plain(smtp, user.name, user.password)
    finally:
        smtp.close()
    assert not named(submission, "qmail-ofmipd")


def test_auth_needs_starttls_and_mail_needs_auth(system, submission):
    user = system.accounts.one
    with smtplib.SMTP("127.0.0.1", submission.port, timeout=20,
                      local_hostname="client.example") as smtp:
        smtp.ehlo()
        assert auth_plain(smtp, user.name, user.password) == NEED_TLS
        assert smtp.docmd("AUTH", "LOGIN") == NEED_TLS
        assert smtp.docmd("MAIL", f"FROM:<{user.name}>")[0] == 530
        smtp.starttls(context=client_context(system.inst))
        smtp.ehlo()
        assert smtp.docmd("MAIL", f"FROM:<{user.name}>") == NEED_AUTH
        assert smtp.docmd("RCPT", "TO:<demo>") == NEED_AUTH
        assert smtp.docmd("DATA") == NEED_AUTH
        assert auth_plain(smtp, user.name, user.password) == GO_AHEAD
    assert ROOT_REFUSED not in submission.log_text()


def test_root_password_gets_the_wrong_password_reply(system, submission):
    root, user = system.accounts.root, system.accounts.one
    with RootWatch(submission) as watch:
        with smtp_over_tls(system, submission) as smtp:
            right = auth_plain(smtp, root.name, root.password)
            wrong = auth_plain(smtp, root.name, root.password + "x")
            other = auth_plain(smtp, user.name, "wrong")
            assert right == wrong == other == FAILED
            assert submission.log_text().count(ROOT_REFUSED) == 1
            # The session goes on, and a user may still log in.
            assert auth_plain(smtp, user.name, user.password) == GO_AHEAD
            check_session_ids(system, submission, "qmail-ofmipd", user)
    assert watch.seen <= ROOT_FOR_A_MOMENT, watch.seen
    assert "qmail-ofmipd" not in watch.seen


# ---- 110 ----


def fill_maildir(user, messages):
    """Puts messages into the user's Maildir/new, after emptying it;
    returns their file names in delivery order."""
    maildir = user.home / "Maildir"
    for sub in ("new", "cur", "tmp"):
        for entry in (maildir / sub).iterdir():
            entry.unlink()
    names = []
    stamp = int(time.time())
    for n, data in enumerate(messages, 1):
        name = f"{stamp}.M{n}P{os.getpid()}.seedtest"
        path = maildir / "new" / name
        path.write_bytes(data)
        path.chmod(0o600)
        os.chown(path, user.entry.pw_uid, user.entry.pw_gid)
        names.append(name)
    return names


def maildir_state(user):
    maildir = user.home / "Maildir"
    return {sub: sorted(e.name for e in (maildir / sub).iterdir())
            for sub in ("new", "cur")}


def pop_over_tls(system, service):
    pop = poplib.POP3("127.0.0.1", service.port, timeout=20)
    try:
        assert "STLS" in pop.capa()
        pop.stls(context=client_context(system.inst))
    except BaseException:
        pop.close()
        raise
    return pop


MESSAGES = [
    b"From: a@example.test\nSubject: one\n\nline one\n.starts with a dot\n",
    b"Subject: two\n\nbody of two\nsecond line\n",
    b"Subject: three\n\nthree\n",
]


def test_pop3_session_over_stls(system, pop3):
    user = system.accounts.two
    names = fill_maildir(user, MESSAGES)
    pop = pop_over_tls(system, pop3)
    try:
        assert pop.user(user.name).startswith(b"+OK")
        assert pop.pass_(user.password).startswith(b"+OK")
        check_session_ids(system, pop3, "qmail-pop3d", user)
        sizes = [len(m) for m in MESSAGES]
        assert pop.stat() == (3, sum(sizes))
        assert pop.list()[1] == [b"%d %d" % (n, s)
                                 for n, s in enumerate(sizes, 1)]
        assert pop.uidl()[1] == [b"%d %s" % (n, name.encode())
                                 for n, name in enumerate(names, 1)]
        assert pop.retr(1)[1] == MESSAGES[0].rstrip(b"\n").split(b"\n")
        assert pop.top(2, 0)[1] == [b"Subject: two", b""]
        assert pop.top(2, 1)[1] == [b"Subject: two", b"", b"body of two"]
        assert pop.dele(1).startswith(b"+OK")
        assert pop.stat() == (2, sizes[1] + sizes[2])
        assert pop.quit().startswith(b"+OK")
    finally:
        pop.close()
    state = maildir_state(user)
    assert state == {"new": [], "cur": [names[1] + ":2,",
                                        names[2] + ":2,"]}, state


def test_pop3_dele_then_dropped_connection_keeps_the_mail(system, pop3):
    user = system.accounts.one
    (name,) = fill_maildir(user, MESSAGES[:1])
    pop = pop_over_tls(system, pop3)
    try:
        pop.user(user.name)
        pop.pass_(user.password)
        assert pop.dele(1).startswith(b"+OK")
        assert pop.stat() == (0, 0)
        (proc,) = named(pop3, "qmail-pop3d")
    finally:
        pop.close()  # no QUIT
    wait_for(lambda: not qmtest.pid_alive(proc.pid),
             message="qmail-pop3d to end")
    assert maildir_state(user) == {"new": [], "cur": [name + ":2,"]}


def test_pop3_needs_stls(system, pop3):
    user = system.accounts.one
    pop = poplib.POP3("127.0.0.1", pop3.port, timeout=20)
    try:
        for command in (pop.user, pop.pass_):
            with pytest.raises(poplib.error_proto) as e:
                command(user.name)
            assert e.value.args[0] == \
                b"-ERR Must issue an STLS command first"
    finally:
        pop.close()


def pop_login_reply(system, service, user, password):
    """The reply to PASS on a fresh STLS connection."""
    pop = pop_over_tls(system, service)
    try:
        assert pop.user(user).startswith(b"+OK")
        try:
            return pop.pass_(password).decode()
        except poplib.error_proto as e:
            return e.args[0].decode()
    finally:
        pop.close()


def test_pop3_root_password_gets_the_wrong_password_reply(system, pop3):
    root, user = system.accounts.root, system.accounts.one
    fill_maildir(user, [])
    with RootWatch(pop3) as watch:
        right = pop_login_reply(system, pop3, root.name, root.password)
        wrong = pop_login_reply(system, pop3, root.name, root.password + "x")
        other = pop_login_reply(system, pop3, user.name, "wrong")
        assert right == wrong == other == POP_FAILED
        assert pop3.log_text().count(ROOT_REFUSED) == 1
    assert watch.seen <= ROOT_FOR_A_MOMENT, watch.seen
    assert "qmail-pop3d" not in watch.seen
