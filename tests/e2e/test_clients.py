"""Real mail clients against `make run`: swaks and msmtp submit over
STARTTLS with AUTH, fetchmail reads over POP3 with STLS and over POP3S.

One instance, started by scripts/run-instance.sh on free ports as
test_run.py does, serves the whole module. The clients verify the
instance's self-signed certificate where they can (msmtp and fetchmail
trust control/servercert.pem and expect the name in control/me), so a
test also fails when TLS falls back to anything unverified. It must
never leave a process or a temporary directory behind, and it skips,
naming scripts/deps.sh, only when a client program is not installed.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid

import pytest

from qmtest import SANITIZER_MARKERS, wait_for

REPO = pathlib.Path(__file__).resolve().parents[2]
PORTS = ("QM_SMTP_PORT", "QM_SMTPS_PORT", "QM_SUBMISSION_PORT",
         "QM_POP3_PORT", "QM_POP3S_PORT", "QM_QMQP_PORT")
CLIENT_TIMEOUT = 30


def need(program):
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (scripts/deps.sh)")
    return path


def free_port():
    """A port free on both 127.0.0.1 and ::1 (the services use both)."""
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


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def processes_under(path):
    """Live processes whose command line or cwd mentions path."""
    found = []
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
        if str(path).encode() in cmd or cwd.startswith(str(path)):
            found.append(int(d.name))
    return found


class MailSystem:
    """What `make run` started, as a client sees it."""

    def __init__(self, top, ports):
        self.top = top
        self.home = top / "instance"
        self.ports = ports
        self.log = top / "run.log"

    @property
    def password(self):
        return (self.home / "demo.password").read_text().strip()

    @property
    def name(self):
        """The name in the certificate, as mkcert made it."""
        return (self.home / "control/me").read_text().splitlines()[0]

    @property
    def submission(self):
        return f"127.0.0.1:{self.ports['QM_SUBMISSION_PORT']}"

    @property
    def cert(self):
        return self.home / "control/servercert.pem"

    def maildir(self):
        return self.home / "mail/demo/Maildir"

    def messages(self):
        box = self.maildir()
        return sorted((box / "new").iterdir()) + sorted(
            (box / "cur").iterdir())

    def delivered(self, marker):
        """The bytes of the delivered message holding marker, waiting for
        it to arrive."""
        def find():
            for path in self.messages():
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue  # moved to cur/ meanwhile
                if marker.encode() in data:
                    return data
            return None
        return wait_for(find, timeout=30, message=f"delivery of {marker}")

    def inject(self, message):
        """Queues message for demo@localhost as the instance's account."""
        account = (self.home / "INSTANCE").read_text().strip()
        prefix = ["setuidgid", account] if os.getuid() == 0 else []
        r = subprocess.run(
            prefix + [str(self.home / "bin/sendmail"), "demo@localhost"],
            input=message, env=dict(os.environ, QMAILHOME=str(self.home)),
            capture_output=True, timeout=CLIENT_TIMEOUT)
        assert r.returncode == 0, r.stderr

    def text(self):
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def mail():
    top = pathlib.Path(tempfile.mkdtemp(prefix="qm-clients-", dir="/tmp"))
    top.chmod(0o755)
    ports = {name: free_port() for name in PORTS}
    system = MailSystem(top, ports)
    env = dict(os.environ,
               QM_BUILD=os.environ.get("QM_BUILD", str(REPO / "build")),
               **{k: str(v) for k, v in ports.items()})
    with open(system.log, "wb") as log:
        proc = subprocess.Popen(
            ["sh", str(REPO / "scripts/run-instance.sh"), str(system.home)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=str(REPO))
    try:
        wait_for(lambda: "Press Ctrl-C to stop." in system.text(),
                 timeout=60, message="run-instance did not start")
        for name in ("QM_SUBMISSION_PORT", "QM_POP3_PORT", "QM_POP3S_PORT"):
            wait_for(lambda: accepts(ports[name]), timeout=20,
                     message=f"{name} {ports[name]}")
        yield system
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    try:
        assert proc.returncode == 0, system.text()
        for report in SANITIZER_MARKERS:
            assert report not in system.text(), system.text()
        wait_for(lambda: not processes_under(system.home), timeout=10,
                 message="processes left behind")
    finally:
        if not os.environ.get("QM_KEEP"):
            shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def scratch():
    path = pathlib.Path(tempfile.mkdtemp(prefix="qm-client-", dir="/tmp"))
    yield path
    if not os.environ.get("QM_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


def run(argv, input=None, env=None):
    return subprocess.run(argv, input=input, env=env, capture_output=True,
                          timeout=CLIENT_TIMEOUT)


def output(r):
    return (r.stdout + r.stderr).decode(errors="replace")


def marker():
    return f"qm-{uuid.uuid4().hex[:16]}"


def assert_submitted(data, mark):
    """A message that came in through authenticated submission over TLS."""
    assert f"Subject: {mark}".encode() in data
    assert b"ESMTPSA (" in data and b"(demo@127.0.0.1)" in data


# ---- swaks: STARTTLS, then AUTH PLAIN or LOGIN ----


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_submits_after_starttls(mail, mech):
    swaks = need("swaks")
    mark = marker()
    r = run([swaks, "--server", mail.submission, "--tls", "--auth", mech,
             "--auth-user", "demo", "--auth-password", mail.password,
             "--from", "demo@localhost", "--to", "demo@localhost",
             "--header", f"Subject: {mark}",
             "--body", f"sent by swaks with AUTH {mech}"])
    text = output(r)
    assert r.returncode == 0, text
    # AUTH is offered only once TLS is on ("<~" marks lines inside TLS).
    assert "<-  250-AUTH" not in text and "<~  250-AUTH LOGIN PLAIN" in text
    assert "<~  235 ok, go ahead (#2.0.0)" in text, text
    data = mail.delivered(mark)
    assert_submitted(data, mark)
    assert f"sent by swaks with AUTH {mech}".encode() in data


def test_swaks_wrong_password_is_refused(mail):
    swaks = need("swaks")
    r = run([swaks, "--server", mail.submission, "--tls", "--auth", "PLAIN",
             "--auth-user", "demo", "--auth-password", mail.password + "x",
             "--from", "demo@localhost", "--to", "demo@localhost"])
    text = output(r)
    assert r.returncode != 0, text
    assert "<~* 535 authentication failed (#5.7.8)" in text, text
    assert "MAIL FROM" not in text


# ---- msmtp: a submission client configured as a person would ----


@pytest.mark.parametrize("mech", ["plain", "login"])
def test_msmtp_submits_with_verified_tls(mail, scratch, mech):
    msmtp = need("msmtp")
    mark = marker()
    rc = scratch / "msmtprc"
    log = scratch / "msmtp.log"
    secret = scratch / "password"
    secret.write_text(mail.password + "\n")
    rc.write_text(f"""\
defaults
tls on
tls_starttls on
tls_trust_file {mail.cert}
tls_host_override {mail.name}
logfile {log}

account demo
host 127.0.0.1
port {mail.ports['QM_SUBMISSION_PORT']}
from demo@localhost
auth {mech}
user demo
passwordeval "cat {secret}"

account default : demo
""")
    rc.chmod(0o600)
    message = (f"To: demo@localhost\nSubject: {mark}\n\n"
               f"sent by msmtp with auth {mech}\n.leading dot\n").encode()
    r = run([msmtp, "-C", str(rc), "-t"], input=message)
    assert r.returncode == 0, output(r) + log.read_text(errors="replace")
    assert "tls=on auth=on" in log.read_text()
    data = mail.delivered(mark)
    assert_submitted(data, mark)
    assert f"sent by msmtp with auth {mech}\n.leading dot\n".encode() in data


# ---- fetchmail: POP3 with STLS on the POP3 port, and POP3S ----


def fetch(mail, scratch, port, tls_option):
    """Runs fetchmail once for demo; returns (result, fetched messages)."""
    fetchmail = need("fetchmail")
    home = scratch / "fetchmail"
    out = scratch / "out"
    home.mkdir(mode=0o700)
    out.mkdir()
    rc = home / "fetchmailrc"
    rc.write_text(f"""\
set no syslog
poll 127.0.0.1 service {port} protocol POP3 auth password
  user "demo" there with password "{mail.password}"
  {tls_option} sslproto 'tls1.2+'
  sslcertck sslcertfile {mail.cert} sslcommonname {mail.name}
  fetchall
  mda "/bin/sh -c 'cat > {out}/msg.$$'"
""")
    rc.chmod(0o600)
    r = run([fetchmail, "-v", "--nodetach", "-f", str(rc)],
            env=dict(os.environ, FETCHMAILHOME=str(home)))
    return r, [p.read_bytes() for p in sorted(out.iterdir())]


def test_fetchmail_reads_and_deletes_over_stls(mail, scratch):
    marks = [marker(), marker()]
    bodies = [b"first line\n..two dots\n.\nafter a lone dot\n",
              b"".join(b"line %d of a longer message\n" % i
                       for i in range(2000))]
    for mark, body in zip(marks, bodies):
        mail.inject(f"Subject: {mark}\n\n".encode() + body)
    stored = [mail.delivered(mark) for mark in marks]
    r, fetched = fetch(mail, scratch, mail.ports["QM_POP3_PORT"], "")
    text = output(r)
    assert r.returncode == 0, text
    # STLS before the password, and the certificate verified.
    assert text.index("POP3> STLS") < text.index("POP3> PASS"), text
    assert "upgrade to TLS succeeded" in text
    for mark, body, original in zip(marks, bodies, stored):
        (data,) = [m for m in fetched if f"Subject: {mark}".encode() in m]
        # Byte for byte as stored, below the header fetchmail adds:
        # CRLF and dot-stuffing were undone exactly.
        assert data.endswith(b"\n\n" + body)
        assert data.endswith(original[original.index(b"Received: (qmail"):])
    # fetchmail deleted what it fetched; qmail-pop3d removed it at QUIT.
    assert "POP3> QUIT" in text
    assert mail.messages() == []


def test_fetchmail_reads_over_pop3s(mail, scratch):
    mark = marker()
    mail.inject(f"Subject: {mark}\n\nover implicit TLS\n".encode())
    original = mail.delivered(mark)
    r, fetched = fetch(mail, scratch, mail.ports["QM_POP3S_PORT"], "ssl")
    text = output(r)
    assert r.returncode == 0, text
    assert "POP3> STLS" not in text
    (data,) = [m for m in fetched if f"Subject: {mark}".encode() in m]
    assert data.endswith(b"\n\nover implicit TLS\n")
    assert data.endswith(original[original.index(b"Received: (qmail"):])
    assert mail.messages() == []
