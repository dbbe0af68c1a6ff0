"""The system test: a real production install on this machine.

`make install` into /var/qmail, qmail-mkaccounts, qmail-config,
qmail-services into a temporary svscan directory, svscan, and then mail
through ports 25 (STARTTLS), 587 (STARTTLS and AUTH as a real system
user whose password is set with chpasswd, yescrypt) and 110 (STLS), and
through /usr/sbin/sendmail made ours with qmail-sendmail-alt -d, into
that user's Maildir. While sessions are open and a delivery runs, every
process under svscan must run as doc/architecture.md says.

It changes the machine, so it runs only as root with QM_SYSTEM_INSTALL=1
or under CI (a throwaway machine), never through QM_SYSTEM_TESTS alone:
that one allows accounts, this one also writes /var/qmail, diverts
another package's /usr/sbin/sendmail and binds ports 25, 587 and 110.
It refuses a machine where /var/qmail exists (unless an earlier run of
this test made it), where one of those ports is taken, or where the
binaries were not built for /var/qmail. The sanitizer build is skipped:
the run scripts start every program with `env -`, which drops the
sanitizer options, and the setuid qmail-queue cannot run LeakSanitizer.

The services live in a temporary directory, not /etc/service (which
Debian's daemontools-run would start at every boot). Afterwards svscan
and every supervised process are gone and the ports free; the sendmail
diversion, /etc/tcp.smtp and the test user are removed; /var/qmail and
the accounts this test created are removed too when /var/qmail did not
exist before (nothing of theirs is left then), and accounts that
existed are put back as they were.
"""

import grp
import hashlib
import os
import pathlib
import poplib
import pwd
import re
import secrets
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
import types

import pytest

import qmtest
from qmtest import wait_for

REPO = pathlib.Path(__file__).resolve().parents[2]
PREFIX = pathlib.Path("/var/qmail")
MARKER = PREFIX / ".qm-system-test"
HOST = "mail.qmsys.test"
PORTS = (25, 587, 110)
# qmail-send last: its log directory holds the others', and must still
# be made as qmaill's.
SERVICES = ("qmail-smtpd", "qmail-submission", "qmail-pop3d", "qmail-send")
ROLE_ACCOUNTS = ("alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr",
                 "qmails", "ucspissl")
ROLE_GROUPS = ("nofiles", "qmail", "ucspissl")
RULES = (pathlib.Path("/etc/tcp.smtp"), pathlib.Path("/etc/tcp.smtp.cdb"))
SENDMAIL = pathlib.Path("/usr/sbin/sendmail")
LIB_SENDMAIL = pathlib.Path("/usr/lib/sendmail")
TOOLS = ("make", "svscan", "supervise", "svc", "svok", "multilog",
         "setuidgid", "tcpserver", "tcprules", "useradd", "userdel",
         "usermod", "groupdel", "chpasswd", "update-alternatives",
         "dpkg-divert", "openssl")
USER_ROLE = "(the user)"

# doc/architecture.md, "Accounts": program -> (account, group) of every
# process under svscan. None for the group: any group of that account.
DOCUMENTED = {
    "svscan": ("root", None),
    "supervise": ("root", None),
    "multilog": ("qmaill", "nofiles"),
    "qmail-send": ("qmails", "qmail"),
    "qmail-lspawn": ("root", None),
    "qmail-rspawn": ("qmailr", "qmail"),
    "qmail-clean": ("qmailq", "qmail"),
    "tcpserver": ("root", None),
    "ucspi-tlsd": ("ucspissl", "ucspissl"),
    "qmail-smtpd": ("qmaild", "nofiles"),
    "rblsmtpd": ("qmaild", "nofiles"),
    "qmail-reup": ("root", None),
    "qmail-authup": ("root", None),
    "qmail-ofmipd": (USER_ROLE, USER_ROLE),
    "qmail-pop3d": (USER_ROLE, USER_ROLE),
    "qmail-local": (USER_ROLE, USER_ROLE),
    # The program a .qmail line runs, through sh, as the user.
    "sh": (USER_ROLE, USER_ROLE),
    "sleep": (USER_ROLE, USER_ROLE),
}


def build_dir():
    return pathlib.Path(os.environ.get("QM_BUILD") or REPO / "build")


def compiled_prefix():
    try:
        text = (build_dir() / "gen" / "auto.h").read_text()
    except OSError:
        return None
    m = re.search(r'#define AUTO_PREFIX "([^"]*)"', text)
    return m.group(1) if m else None


def sanitizer_build():
    try:
        return b"libasan" in (build_dir() / "bin" / "qmail-send").read_bytes()
    except OSError:
        return False


def port_free(port):
    for family, host in ((socket.AF_INET, "0.0.0.0"),
                         (socket.AF_INET6, "::")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((host, port))
        except OSError as e:
            if family == socket.AF_INET6 and e.errno in (97, 99):
                continue  # no IPv6 on this machine
            return False
    return True


def skip_reason():
    if not qmtest.is_root():
        return "the system install needs root"
    if not (os.environ.get("CI") or
            os.environ.get("QM_SYSTEM_INSTALL") == "1"):
        return ("it installs into /var/qmail and binds ports 25, 587 and "
                "110: runs only under CI or with QM_SYSTEM_INSTALL=1")
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is needed"
    if compiled_prefix() != str(PREFIX):
        return (f"{build_dir()} was built for {compiled_prefix()}, not "
                f"{PREFIX}: run make with the default PREFIX")
    if sanitizer_build():
        return ("the sanitizer build: the run scripts' `env -` drops the "
                "sanitizer options; the plain build runs this test")
    if PREFIX.exists() and not MARKER.exists():
        return f"{PREFIX} exists: this test installs only where it is new"
    for port in PORTS:
        if not port_free(port):
            return f"port {port} is in use"
    return None


pytestmark = pytest.mark.skipif(skip_reason() is not None,
                                reason=str(skip_reason()))


# ---- running things ----


def run(argv, book, name, input=None, timeout=300, env=None, check=True,
        cwd=None):
    """Runs argv; keeps its output in the test log and prints it (pytest
    -s shows what make install and the tools said)."""
    env = dict(os.environ if env is None else env)
    for var in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "QMAILHOME"):
        env.pop(var, None)
    result = subprocess.run(argv, input=input, capture_output=True,
                            text=True, timeout=timeout, env=env, cwd=cwd)
    text = (f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}"
            f"[exit {result.returncode}]\n")
    with open(book.new(name), "w") as f:
        f.write(text)
    print(text, end="")
    if check:
        assert result.returncode == 0, text
    return result


def account_tool(argv, data=None, ok=(0,)):
    """useradd, userdel, usermod, groupdel, chpasswd: again while another
    process holds the lock on the account files."""
    deadline = time.monotonic() + 30
    while True:
        result = subprocess.run(argv, input=data, capture_output=True,
                                timeout=60)
        if result.returncode in ok:
            return result
        if b"lock" not in result.stderr or time.monotonic() > deadline:
            raise AssertionError(f"{argv!r} failed ({result.returncode}): "
                                 f"{result.stderr!r}")
        time.sleep(0.2)


def passwd_entry(name):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def group_entry(name):
    try:
        return grp.getgrnam(name)
    except KeyError:
        return None


def file_state(path):
    """What is at path: None, ("link", target) or ("file", sha256)."""
    if os.path.islink(path):
        return ("link", os.readlink(path))
    if not os.path.exists(path):
        return None
    return ("file", hashlib.sha256(path.read_bytes()).hexdigest())


def make_install(book, name):
    argv = ["make", "-C", str(REPO), "install"]
    if build_dir().resolve() != (REPO / "build").resolve():
        argv.append(f"BUILD={build_dir()}")
    return run(argv, book, name, timeout=900)


# ---- processes, through /proc ----


def proc_ids(pid):
    """(argv0 name, real uid, effective uid, real gid, effective gid)."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    cmd = qmtest.proc_cmdline(pid)
    name = os.path.basename(cmd.split(" ")[0]) if cmd else ""
    return (name, int(fields["Uid"][0]), int(fields["Uid"][1]),
            int(fields["Gid"][0]), int(fields["Gid"][1]))


def descendants(root_pid):
    """Live processes below root_pid (and it), by parent links."""
    children = {}
    for pid in qmtest.all_pids():
        st = qmtest.proc_stat(pid)
        if st is not None and st[0] != "Z":
            children.setdefault(st[1], []).append(pid)
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        if qmtest.pid_alive(pid):
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def snapshot(root_pid):
    """[(pid, name, ruid, euid, rgid, egid)] of everything under svscan."""
    out = []
    for pid in descendants(root_pid):
        try:
            out.append((pid,) + proc_ids(pid))
        except (OSError, KeyError):
            pass
    return out


def names(snap):
    return sorted(row[1] for row in snap)


def wrong_ids(snap, user):
    """Lines for every process whose name or ids the table does not
    document."""
    wrong = []
    for pid, name, ruid, euid, rgid, egid in snap:
        if name not in DOCUMENTED:
            wrong.append(f"{pid} {name}: not in the documented table")
            continue
        account, group = DOCUMENTED[name]
        entry = user if account == USER_ROLE else pwd.getpwnam(account)
        if (ruid, euid) != (entry.pw_uid, entry.pw_uid):
            wrong.append(f"{pid} {name}: uid {ruid}/{euid}, expected "
                         f"{entry.pw_name} ({entry.pw_uid})")
        if group is None:
            continue
        gid = (user.pw_gid if group == USER_ROLE
               else grp.getgrnam(group).gr_gid)
        if (rgid, egid) != (gid, gid):
            wrong.append(f"{pid} {name}: gid {rgid}/{egid}, expected {gid}")
    return wrong


# ---- the install, the services and the teardown ----


class System:
    def __init__(self, book, base):
        self.book = book
        self.base = base
        self.service_dir = base / "service"
        self.log_dir = base / "log"
        self.svscan = None
        self.user = None
        self.password = None
        self.home = None
        self.had_prefix = PREFIX.exists()
        self.accounts_before = {n: passwd_entry(n) for n in ROLE_ACCOUNTS}
        self.groups_before = {n: group_entry(n) for n in ROLE_GROUPS}
        self.rules_before = {p: p.exists() for p in RULES}
        self.sendmail_before = (file_state(SENDMAIL),
                                file_state(LIB_SENDMAIL))
        self.outputs = {}

    # -- setting up --

    def install(self):
        first = make_install(self.book, "make-install-1")
        self.outputs["install-1"] = first.stdout
        MARKER.write_text("made by tests/e2e/test_system.py\n")
        made = run([str(PREFIX / "bin" / "qmail-mkaccounts"), "-f"],
                   self.book, "qmail-mkaccounts", check=False)
        self.outputs["mkaccounts"] = made.stdout
        assert made.returncode == 0, made.stdout + made.stderr
        second = make_install(self.book, "make-install-2")
        self.outputs["install-2"] = second.stdout

    def add_user(self):
        self.user_name = f"qmsys{secrets.token_hex(3)}"
        self.password = f"pw {secrets.token_hex(8)}"
        homes = qmtest.make_public_tempdir("qm-sysuser-")
        self.home = homes / self.user_name
        account_tool(["useradd", "-M", "-U", "-d", str(self.home), "-s",
                      "/usr/sbin/nologin", self.user_name])
        self.user = pwd.getpwnam(self.user_name)
        for sub in ("", "/Maildir", "/Maildir/new", "/Maildir/cur",
                    "/Maildir/tmp"):
            path = pathlib.Path(f"{self.home}{sub}")
            path.mkdir(mode=0o700 if sub else 0o755)
            os.chown(path, self.user.pw_uid, self.user.pw_gid)
        # A delivery that takes a while, to see qmail-local at work.
        slow = self.home / ".qmail-slow"
        slow.write_text("|sleep 4\n")
        slow.chmod(0o644)
        os.chown(slow, self.user.pw_uid, self.user.pw_gid)
        account_tool(["chpasswd", "-c", "YESCRYPT"],
                     f"{self.user_name}:{self.password}\n".encode())
        with open("/etc/shadow") as f:
            (line,) = [l for l in f if l.startswith(self.user_name + ":")]
        assert line.split(":")[1].startswith("$y$"), "not yescrypt"

    def services(self):
        self.service_dir.mkdir()
        run([str(PREFIX / "bin" / "qmail-services"), "-l",
             str(self.log_dir), str(self.service_dir)] + list(SERVICES),
            self.book, "qmail-services")

    def start(self):
        log = open(self.book.new("svscan"), "wb")
        env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
        self.svscan = subprocess.Popen(
            ["svscan", str(self.service_dir)], env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()

        def listening():
            pids = descendants(self.svscan.pid)
            return all(any(qmtest.is_listening(pid, port) for pid in pids)
                       for port in PORTS)

        wait_for(listening, timeout=30, message="ports 25, 587 and 110")
        wait_for(lambda: {"qmail-send", "qmail-lspawn", "qmail-rspawn",
                          "qmail-clean"} <= set(names(self.snapshot())),
                 timeout=30, message="qmail-send and its helpers")

    def snapshot(self):
        return snapshot(self.svscan.pid)

    def maildir_files(self):
        new = self.home / "Maildir" / "new"
        cur = self.home / "Maildir" / "cur"
        return sorted(list(new.iterdir()) + list(cur.iterdir()))

    # -- tearing down --

    def stop(self):
        """svc -dx every service and log, then svscan; returns what is
        left (nothing, or it is killed and reported)."""
        if self.svscan is None:
            return []
        root = self.svscan.pid
        self.svscan.send_signal(signal.SIGTERM)
        try:
            self.svscan.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.svscan.kill()
            self.svscan.wait(timeout=10)
        dirs = [d for s in SERVICES for d in (self.service_dir / s,
                                              self.service_dir / s / "log")]
        for d in dirs:
            if d.is_dir():
                subprocess.run(["svc", "-dx", str(d)], capture_output=True,
                               timeout=10)

        def all_gone():
            return not [pid for pid, _ in qmtest.session_members(root)]

        try:
            wait_for(all_gone, timeout=30, message="every supervised "
                     "process to end")
            left = []
        except AssertionError:
            left = qmtest.session_members(root)
            for pid, _ in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.svscan = None
        return left

    def restore(self):
        errors = []

        def attempt(what, fn):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 (keep restoring)
                errors.append(f"{what}: {e}")

        attempt("sendmail", lambda: run(
            [str(PREFIX / "bin" / "qmail-sendmail-alt"), "-r"], self.book,
            "qmail-sendmail-alt-r"))
        for path, existed in self.rules_before.items():
            if not existed:
                attempt(str(path), lambda p=path: p.unlink(missing_ok=True))
        if self.user is not None:
            attempt("test user", lambda: account_tool(
                ["userdel", self.user_name]))
            attempt("test home", lambda: shutil.rmtree(self.home.parent))
        if not self.had_prefix or MARKER.exists():
            attempt(str(PREFIX), lambda: shutil.rmtree(PREFIX))
            # Nothing is owned by the accounts made here any more.
            for name, before in self.accounts_before.items():
                if before is None and passwd_entry(name):
                    attempt(name, lambda n=name: account_tool(
                        ["userdel", n], ok=(0, 6)))
            for name, before in self.groups_before.items():
                if before is None and group_entry(name):
                    attempt(name, lambda n=name: account_tool(
                        ["groupdel", n], ok=(0, 6)))
        for name, before in self.accounts_before.items():
            now = passwd_entry(name)
            if before is None or now is None or (
                    now.pw_dir, now.pw_shell, now.pw_gid) == (
                    before.pw_dir, before.pw_shell, before.pw_gid):
                continue
            attempt(name, lambda b=before: account_tool(
                ["usermod", "-d", b.pw_dir, "-s", b.pw_shell, "-g",
                 str(b.pw_gid), b.pw_name]))
        shutil.rmtree(self.base, ignore_errors=True)
        return errors


@pytest.fixture(scope="module")
def system(qm_session_dir):
    book = qmtest.LogBook(qm_session_dir / "logs" / "system-module")
    base = qmtest.make_public_tempdir("qm-system-")
    sysm = System(book, base)
    try:
        sysm.install()
        run([str(PREFIX / "bin" / "qmail-config"), HOST], book,
            "qmail-config")
        sysm.add_user()
        sysm.services()
        sysm.start()
        yield sysm
    finally:
        left = sysm.stop()
        errors = sysm.restore()
        assert not left, f"processes left after svc -dx: {left!r}"
        for port in PORTS:
            assert port_free(port), f"port {port} still taken"
        assert not errors, errors
        if not sysm.had_prefix:
            assert not PREFIX.exists()
        assert (file_state(SENDMAIL), file_state(LIB_SENDMAIL)) == \
            sysm.sendmail_before


# ---- the tests ----


def test_install_checks_and_is_idempotent(system):
    out = system.outputs
    # The first make install says what to do when accounts were missing.
    if any(v is None for v in system.accounts_before.values()):
        assert f"{PREFIX}/bin/qmail-mkaccounts" in out["install-1"]
    assert re.search(r"^qmail-instcheck: ok: \d+ paths under /var/qmail, "
                     r"each with the owner and mode of the table$",
                     out["install-2"], re.M), out["install-2"]
    check = run([str(PREFIX / "bin" / "qmail-instcheck")], system.book,
                "qmail-instcheck")
    assert check.stdout.startswith("qmail-instcheck: ok: ")
    accounts = run([str(PREFIX / "bin" / "qmail-mkaccounts"), "-n"],
                   system.book, "qmail-mkaccounts-n")
    assert accounts.stdout.splitlines() == [
        "qmail-mkaccounts: ok: the 8 accounts and 3 groups of "
        "doc/install.md are as they should be"]
    queue = PREFIX / "bin" / "qmail-queue"
    st = os.stat(queue)
    assert (st.st_uid, st.st_mode & 0o7777) == (
        pwd.getpwnam("qmailq").pw_uid, 0o4711)
    assert (PREFIX / "control" / "me").read_text() == HOST + "\n"

    # Again: what the administrator has (control, the services) stays.
    watched = [PREFIX / "control" / "me", PREFIX / "control" / "locals",
               PREFIX / "alias" / ".qmail-postmaster",
               system.service_dir / "qmail-smtpd" / "run",
               system.service_dir / "qmail-send" / "log" / "run"]
    before = [(p.read_bytes(), os.stat(p).st_mtime_ns) for p in watched]
    make_install(system.book, "make-install-3")
    again = run([str(PREFIX / "bin" / "qmail-services"), "-l",
                 str(system.log_dir), str(system.service_dir)]
                + list(SERVICES), system.book, "qmail-services-again")
    assert f"{system.service_dir}/qmail-smtpd/run exists, kept (-f " \
           "replaces it)" in again.stdout
    assert [(p.read_bytes(), os.stat(p).st_mtime_ns)
            for p in watched] == before
    # The run scripts point at /var/qmail and at the test's log dir,
    # which qmail-services made for qmaill, and where multilog writes.
    log_run = (system.service_dir / "qmail-smtpd" / "log" /
               "run").read_text()
    assert f"multilog t {system.log_dir}/smtpd" in log_run
    qmaill = pwd.getpwnam("qmaill")
    for sub in ("", "/smtpd", "/submission", "/pop3d"):
        st = os.stat(f"{system.log_dir}{sub}")
        assert (st.st_uid, st.st_mode & 0o777) == (qmaill.pw_uid, 0o750)
    wait_for(lambda: re.search(
        r"^@[0-9a-f]{24} status: local 0/\d+ remote 0/\d+$",
        (system.log_dir / "current").read_text(errors="replace"), re.M),
        timeout=30, message="qmail-send's log through multilog")
    assert (pathlib.Path("/etc/tcp.smtp.cdb")).exists()


def client_context():
    """Trusts the self-signed certificate qmail-services made."""
    text = (PREFIX / "control" / "servercert.pem").read_text()
    cert = re.search(r"-----BEGIN CERTIFICATE-----.*?"
                     r"-----END CERTIFICATE-----", text, re.S).group(0)
    ctx = ssl.create_default_context(cadata=cert)
    ctx.check_hostname = False  # we connect to 127.0.0.1; checked below
    return ctx


def peer_name(sock):
    subject = dict(x[0] for x in sock.getpeercert()["subject"])
    return subject["commonName"]


def message(user, subject):
    return (f"From: {user}@{HOST}\r\nTo: {user}@{HOST}\r\n"
            f"Subject: {subject}\r\n\r\nbody of {subject}\r\n").encode()


def send_25(user, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", 25, timeout=30) as s:
        code, _ = s.ehlo("client.qmsys.test")
        assert code == 250 and s.has_extn("starttls")
        assert s.starttls(context=client_context())[0] == 220
        assert peer_name(s.sock) == HOST
        s.ehlo("client.qmsys.test")
        assert s.mail(f"{user}@{HOST}")[0] == 250
        assert s.rcpt(rcpt)[0] == 250
        code, text = s.data(message(user, subject))
        assert code == 250 and text.startswith(b"ok"), (code, text)


def test_mail_flows_through_25_587_sendmail_and_110(system):
    user = system.user_name
    send_25(user, f"{user}@{HOST}", "via-25")

    with smtplib.SMTP("127.0.0.1", 587, timeout=30) as s:
        s.ehlo("client.qmsys.test")
        assert not s.has_extn("auth"), "AUTH offered before STARTTLS"
        assert s.starttls(context=client_context())[0] == 220
        s.ehlo("client.qmsys.test")
        assert s.has_extn("auth")
        assert s.login(user, system.password) == (
            235, b"ok, go ahead (#2.0.0)")
        assert s.mail(f"{user}@{HOST}")[0] == 250
        assert s.rcpt(f"{user}@{HOST}")[0] == 250
        code, text = s.data(message(user, "via-587"))
        assert code == 250, (code, text)

    # /usr/sbin/sendmail: Postfix's on the CI machine. Without -d nothing
    # changes; -d moves it aside and makes ours the alternative.
    alt = str(PREFIX / "bin" / "qmail-sendmail-alt")
    before = file_state(SENDMAIL)
    plain = run([alt], system.book, "qmail-sendmail-alt", check=False)
    if before is not None and before[0] == "file":
        assert plain.returncode == 1
        assert "nothing was changed" in plain.stdout
        assert file_state(SENDMAIL) == before
        run([alt, "-d"], system.book, "qmail-sendmail-alt-d")
        assert (SENDMAIL.parent / "sendmail.distrib").exists()
    else:
        assert plain.returncode == 0, plain.stdout + plain.stderr
    assert os.path.realpath(SENDMAIL) == str(PREFIX / "bin" / "sendmail")
    assert os.path.realpath(LIB_SENDMAIL) == str(PREFIX / "bin" /
                                                 "sendmail")
    result = subprocess.run(
        ["setuidgid", user, str(SENDMAIL), "-f", f"{user}@{HOST}",
         f"{user}@{HOST}"], input=message(user, "via-sendmail"),
        capture_output=True, timeout=60, cwd="/",
        env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr

    wait_for(lambda: len(system.maildir_files()) == 3, timeout=60,
             message="three deliveries to the Maildir")
    for path in system.maildir_files():
        st = os.stat(path)
        assert (st.st_uid, st.st_mode & 0o777) == (system.user.pw_uid,
                                                   0o600), path

    pop = poplib.POP3("127.0.0.1", 110, timeout=30)
    try:
        assert pop.stls(context=client_context()).startswith(b"+OK")
        assert peer_name(pop.sock) == HOST
        pop.user(user)
        assert pop.pass_(system.password).startswith(b"+OK")
        count, _ = pop.stat()
        assert count == 3
        subjects = set()
        for i in range(1, count + 1):
            _, lines, _ = pop.retr(i)
            text = b"\n".join(lines).decode()
            subject = re.search(r"^Subject: (.*)$", text, re.M).group(1)
            subjects.add(subject)
            assert f"body of {subject}" in text
            assert f"Delivered-To: {user}@{HOST}" in text
        assert subjects == {"via-25", "via-587", "via-sendmail"}
    finally:
        pop.quit()


def test_every_process_runs_as_documented(system):
    """Sessions open on 25 (after STARTTLS), 587 (after AUTH) and 110
    (after login), and a .qmail program delivery under way: then every
    process under svscan is checked against the documented accounts."""
    user = system.user_name
    ctx = client_context()
    smtp = smtplib.SMTP("127.0.0.1", 25, timeout=30)
    sub = smtplib.SMTP("127.0.0.1", 587, timeout=30)
    pop = poplib.POP3("127.0.0.1", 110, timeout=30)
    try:
        smtp.ehlo("client.qmsys.test")
        smtp.starttls(context=ctx)
        smtp.ehlo("client.qmsys.test")
        sub.ehlo("client.qmsys.test")
        sub.starttls(context=ctx)
        sub.ehlo("client.qmsys.test")
        sub.login(user, system.password)
        pop.stls(context=ctx)
        pop.user(user)
        pop.pass_(system.password)
        send_25(user, f"{user}-slow@{HOST}", "slow")

        wanted = {"qmail-smtpd", "qmail-ofmipd", "qmail-pop3d",
                  "qmail-local", "ucspi-tlsd"}

        def busy():
            snap = system.snapshot()
            ok = wanted <= set(names(snap)) and all(
                DOCUMENTED.get(row[1], ("", ""))[0] != "ucspissl" or
                row[2] == pwd.getpwnam("ucspissl").pw_uid for row in snap)
            return snap if ok else None

        snap = wait_for(busy, timeout=30, message="the sessions and the "
                        "slow delivery")
        print("\n".join(f"{pid:>7} {name:<14} uid {ruid}/{euid} gid "
                        f"{rgid}/{egid}"
                        for pid, name, ruid, euid, rgid, egid in snap))
        assert wrong_ids(snap, system.user) == []
    finally:
        for close in (smtp.close, sub.close, pop.close):
            try:
                close()
            except OSError:
                pass
