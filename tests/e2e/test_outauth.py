"""Outbound SMTP AUTH (qmail-remote, qmail-rsmtp, control/authroutes)
against real servers.

- Our own submission service, as scripts/run-instance.sh builds it: a
  second instance ("relay.test") with qmail-reup, qmail-authup,
  checkpassword-cdb, checknotroot and qmail-ofmipd under sslserver -n
  with UCSPITLS='!', so AUTH is offered only after STARTTLS; its users
  are made with qmail-passwd; what it queues goes to a recorder.
- Debian's Postfix from a private directory with Cyrus SASL and an
  sasldb file: one smtpd offering PLAIN and LOGIN, one offering only
  LOGIN, both only after STARTTLS (smtpd_tls_auth_only). Debian's
  Postfix reads its Cyrus configuration from $config_directory/sasl,
  which is the private etc/ here: no system file is touched.
- aiosmtpd for what neither does on demand: a 454, AUTH in cleartext,
  and a slow DATA during which every process is searched for the
  password.

qmail-remote runs directly as the sending instance's account, or from
its queue (qmail-send), with names from a test DNS server.
"""

import base64
import os
import pwd
import re
import shutil
import ssl
import subprocess
import threading
import time

import pytest

import foreign
import qmtest
from qmtest import wait_for
from queuectl import Queue
from test_remote import DnsServer, run_remote

PASSWORD = "Tr0ub4dor &3|x"
OTHER_PASSWORD = "c0rrect-h0rse"
RELAY = "smtp.relay.test"
RCPT = "bob@remote.test"
SENDER = "alice@example.test"
MESSAGE = (b"From: Alice <alice@example.test>\n"
           b"To: Bob <bob@remote.test>\n"
           b"Subject: through a relay\n"
           b"\n"
           b"Sent with SMTP AUTH.\n")


def accepted(ip="127.0.0.1"):
    return re.compile(rb"r\0K" + re.escape(ip.encode()) +
                      rb" accepted message\.\nRemote host said: 2[^\0]*\0")


def secret_file(inst, name, text):
    """control/NAME, the account's, mode 600, as authroutes must be."""
    path = inst.control(name, text)
    path.chmod(0o600)
    return path


def report(result):
    assert result.returncode == 0, result.stderr
    return result.stdout


def no_secret(*blobs):
    for blob in blobs:
        data = blob if isinstance(blob, bytes) else blob.encode()
        for secret in (PASSWORD, OTHER_PASSWORD):
            assert secret.encode() not in data
            assert base64.b64encode(secret.encode()) not in data


# ---- the sending side ----


@pytest.fixture
def sender(make_instance):
    inst = make_instance(host="example.test", mailboxes=("alice", "carol"))
    if not (inst.bindir / "ucspi-tlsc").exists():
        pytest.skip("ucspi-tlsc is not built")
    return inst


@pytest.fixture
def dns():
    server = DnsServer()
    server.start()
    server.a(RELAY, "127.0.0.1")
    yield server
    server.stop()


def remote(inst, dns, host="remote.test", sender=SENDER, rcpts=(RCPT,)):
    return run_remote(inst, host, rcpts=rcpts, dns=dns, sender=sender,
                      message=MESSAGE)


# ---- our submission service ----


class Recorder:
    """QMAILQUEUE for the relay instance: keeps each message with its
    envelope."""

    SCRIPT = """#!/bin/sh
n=$(date +%s%N).$$
cat > '{dir}/tmp.'$n.msg || exit 54
cat <&1 > '{dir}/tmp.'$n.env || exit 54
mv '{dir}/tmp.'$n.msg '{dir}/'$n.msg && mv '{dir}/tmp.'$n.env '{dir}/'$n.env
"""

    def __init__(self, inst):
        self.dir = inst.path / "records"
        self.dir.mkdir(mode=0o700)
        self.program = inst.path / "record-queue"
        self.program.write_text(self.SCRIPT.format(dir=self.dir))
        self.program.chmod(0o755)
        if qmtest.is_root():
            for p in (self.dir, self.program):
                os.chown(p, inst.uid, inst.gid)

    def records(self):
        found = []
        for msg in sorted(self.dir.glob("[0-9]*.msg")):
            env = msg.with_suffix(".env").read_bytes()
            fields = env[1:-2].split(b"\0")
            found.append((msg.read_bytes(), fields[0].decode(),
                          [f[1:].decode() for f in fields[1:]]))
        return found


class Submission:
    def __init__(self, inst, server, recorder):
        self.inst = inst
        self.server = server
        self.port = server.port
        self.recorder = recorder

    def received(self, count=1):
        return wait_for(lambda: len(self.recorder.records()) >= count and
                        self.recorder.records(), timeout=20,
                        message=f"{count} message(s) at the submission "
                        "service")


@pytest.fixture
def submission(make_instance, servers, bindir):
    """relay.test's submission service; users alice and carol."""
    inst = make_instance(host="relay.test", mailboxes=("alice", "carol"))
    for user, password in (("alice", PASSWORD), ("carol", OTHER_PASSWORD)):
        result = inst.run([str(bindir / "qmail-passwd"), "add", user],
                          input=(password + "\n").encode())
        assert result.returncode == 0, result.stderr
    result = inst.run([str(bindir / "mkcert"), "relay.test"])
    assert result.returncode == 0, result.stderr
    recorder = Recorder(inst)
    env = inst.env()
    env.update(CERTFILE=str(inst.path / "control" / "servercert.pem"),
               UCSPITLS="!", QMAILQUEUE=str(recorder.program))
    app = [str(bindir / "qmail-reup"), "-t", "5", str(bindir / "qmail-authup"),
           "smtp", str(bindir / "checkpassword-cdb"),
           str(bindir / "checknotroot"), str(bindir / "qmail-ofmipd")]
    ids = []
    if qmtest.is_root():
        ids = ["-u", str(inst.uid), "-g", str(inst.gid)]
        env.update(SSL_UID=str(inst.uid), SSL_GID=str(inst.gid))
    from test_tls import start_front
    server = start_front(
        servers, lambda port: [str(bindir / "sslserver"), "-n", "-vRH",
                               "-l", "relay.test", *ids, "127.0.0.1",
                               str(port), *app],
        env, "submission")
    return Submission(inst, server, recorder)


def check_authenticated(message, user):
    first = message.split(b"\n", 2)
    assert first[0] == f"Received: from unknown ({user}@127.0.0.1)".encode()
    assert b" with ESMTPSA (" in first[1]  # AUTH, over TLS
    assert message.endswith(b"\nSent with SMTP AUTH.\n")


def test_auth_plain_to_our_submission_after_starttls(sender, dns,
                                                     submission):
    """The service offers AUTH only after STARTTLS; qmail-remote takes
    both steps and the message is queued as alice's."""
    secret_file(sender, "authroutes",
                f"remote.test:{RELAY}:{submission.port} alice {PASSWORD}\n")
    out = report(remote(sender, dns))
    assert accepted().fullmatch(out), out
    message, env_sender, rcpts = submission.received()[0]
    check_authenticated(message, "alice")
    assert (env_sender, rcpts) == (SENDER, [RCPT])


def test_smtproutes_of_the_auth_patches_works_in_place(sender, dns,
                                                       submission):
    secret_file(sender, "smtproutes",
                f"remote.test:{RELAY}:{submission.port} alice {PASSWORD}\n")
    out = report(remote(sender, dns))
    assert accepted().fullmatch(out), out
    check_authenticated(submission.received()[0][0], "alice")


def test_wrong_password_is_permanent_and_names_the_relay(sender, dns,
                                                         submission):
    secret_file(sender, "authroutes",
                f"remote.test:{RELAY}:{submission.port} alice "
                f"{OTHER_PASSWORD}\n")
    out = report(remote(sender, dns))
    assert out == (b"DConnected to 127.0.0.1 but the relay smtp.relay.test "
                   b"rejected my user name or password. (#5.7.8)\n"
                   b"Remote host said: 535 authentication failed "
                   b"(#5.7.8)\0")
    assert submission.recorder.records() == []


def test_no_auth_without_tls_and_the_530_is_reported(sender, dns,
                                                     submission):
    """TLS is off for the relay (notlshosts): the password is not sent,
    and the service refuses the sender, which the report explains."""
    secret_file(sender, "authroutes",
                f"remote.test:{RELAY}:{submission.port} alice {PASSWORD}\n")
    sender.control(f"notlshosts/{RELAY}", "")
    out = report(remote(sender, dns))
    assert out.startswith(
        b"DConnected to 127.0.0.1 but sender was rejected. (I did not "
        b"authenticate: the connection is not encrypted, and the route "
        b"does not allow AUTH in cleartext.)\nRemote host said: 530 ")
    assert submission.recorder.records() == []


def test_sender_routes_pick_relay_and_credentials(sender, dns, submission,
                                                  aiosmtpd_relay):
    """carol's mail goes to the submission service as carol; everyone
    else's goes by the default route to another relay as alice."""
    fake = aiosmtpd_relay(users={"alice": PASSWORD})
    secret_file(sender, "authroutes",
                f"carol@example.test:{RELAY}:{submission.port}"
                f"|carol|{OTHER_PASSWORD}\n"
                f":[127.0.0.1]:{fake.port} alice {PASSWORD}\n")
    out = report(remote(sender, dns, sender="carol@example.test"))
    assert accepted().fullmatch(out), out
    message, env_sender, _ = submission.received()[0]
    check_authenticated(message, "carol")
    assert env_sender == "carol@example.test"
    out = report(remote(sender, dns))
    assert accepted().fullmatch(out), out
    assert fake.handler.logins == [("alice", "PLAIN")]
    assert fake.handler.envelopes == [(SENDER, [RCPT])]
    assert len(submission.recorder.records()) == 1


def test_open_authroutes_defers_everything(sender, dns, submission):
    path = secret_file(sender, "authroutes",
                       f"remote.test:{RELAY}:{submission.port} alice "
                       f"{PASSWORD}\n")
    path.chmod(0o640)
    result = remote(sender, dns)
    assert report(result) == b"ZUnable to read control files. (#4.3.0)\n\0"
    assert b"control/authroutes holds credentials" in result.stderr
    no_secret(result.stderr)


def test_authsenders_left_behind_defers_everything(sender, dns):
    secret_file(sender, "authsenders", "@example.test|alice|pw\n")
    result = remote(sender, dns)
    assert report(result) == b"ZUnable to read control files. (#4.3.0)\n\0"
    assert (b"control/authsenders is not read: move its lines to "
            b"control/authroutes") in result.stderr


def test_showctl_masks_the_secrets(sender, submission):
    secret_file(sender, "authroutes",
                f"remote.test:{RELAY}:{submission.port} alice {PASSWORD}\n"
                f"carol@example.test:{RELAY}|carol|{OTHER_PASSWORD}\n")
    secret_file(sender, "smtproutes", f":{RELAY} -dave {PASSWORD}\n")
    result = sender.run([str(sender.bindir / "qmail-showctl")])
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert (f"  remote.test:{RELAY}:{submission.port} (the rest is not "
            f"shown)") in text
    assert f"  carol@example.test:{RELAY} (the rest is not shown)" in text
    assert f"  :{RELAY} (the rest is not shown)" in text
    assert "authroutes: Credentials qmail-remote gives relays" in text
    no_secret(text, result.stderr)
    assert "carol|" not in text and "dave" not in text


# ---- aiosmtpd: 454, cleartext, a slow relay ----


def make_cert(directory, cn):
    """A self-signed certificate and key in one PEM file."""
    key, crt, pem = (directory / f"{cn}.{x}" for x in ("key", "crt", "pem"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", f"/CN={cn}"],
                   check=True, capture_output=True, timeout=60)
    pem.write_bytes(key.read_bytes() + crt.read_bytes())
    pem.chmod(0o644)
    return pem


class AuthHandler:
    def __init__(self, users, auth_reply=None, data_delay=0):
        self.users = users
        self.auth_reply = auth_reply
        self.data_delay = data_delay
        self.logins = []
        self.envelopes = []

    def authenticator(self, server, session, envelope, mechanism, data):
        from aiosmtpd.smtp import AuthResult
        user = data.login.decode()
        self.logins.append((user, mechanism))
        if self.auth_reply:
            return AuthResult(success=False, handled=False,
                              message=self.auth_reply)
        ok = self.users.get(user) == data.password.decode()
        return AuthResult(success=ok)

    async def handle_RCPT(self, server, session, envelope, address,
                          options):
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        import asyncio
        await asyncio.sleep(self.data_delay)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 queued"


class FakeRelay:
    def __init__(self, controller, handler):
        self.controller = controller
        self.handler = handler
        self.port = controller.port


@pytest.fixture
def aiosmtpd_relay(qm_session_dir):
    pytest.importorskip("aiosmtpd")
    from aiosmtpd.controller import Controller
    made = []
    pem = qm_session_dir / "aiosmtpd.pem"
    if not pem.exists():
        pem = make_cert(qm_session_dir, "aiosmtpd")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pem))

    def start(users, tls=True, **kw):
        handler = AuthHandler(users, **kw)
        controller = Controller(
            handler, hostname="127.0.0.1", port=qmtest.free_port("127.0.0.1"),
            tls_context=ctx if tls else None, auth_require_tls=tls,
            authenticator=handler.authenticator, ready_timeout=10)
        controller.start()
        made.append(controller)
        return FakeRelay(controller, handler)

    yield start
    for controller in made:
        controller.stop()


def test_454_is_temporary(sender, dns, aiosmtpd_relay):
    fake = aiosmtpd_relay(users={}, auth_reply="454 4.7.0 Try later")
    secret_file(sender, "authroutes",
                f"remote.test:{RELAY}:{fake.port} alice {PASSWORD}\n")
    out = report(remote(sender, dns))
    assert out == (b"ZConnected to 127.0.0.1 but the relay smtp.relay.test "
                   b"failed AUTH temporarily. (#4.7.0)\nRemote host said: "
                   b"454 4.7.0 Try later\0")


def test_cleartext_only_when_the_route_allows_it(sender, dns,
                                                 aiosmtpd_relay):
    fake = aiosmtpd_relay(users={"alice": PASSWORD}, tls=False)
    secret_file(sender, "authroutes",
                f"remote.test:{RELAY}:{fake.port} alice {PASSWORD}\n")
    out = report(remote(sender, dns))
    assert out.startswith(b"h127.0.0.1 does not like recipient. (I did not "
                          b"authenticate: the connection is not encrypted")
    assert fake.handler.logins == []
    secret_file(sender, "authroutes",
                f"remote.test:{RELAY}:{fake.port} -alice {PASSWORD}\n")
    out = report(remote(sender, dns))
    assert accepted().fullmatch(out), out
    assert fake.handler.logins == [("alice", "PLAIN")]


# ---- through the queue: nothing shows the password ----


def scan_processes(found, seen, stop):
    """Reads every process's command line and environment until stop is
    set; notes what holds a password and which programs were seen."""
    secrets = [s.encode() for s in (PASSWORD, OTHER_PASSWORD)]
    while not stop.is_set():
        for pid in qmtest.all_pids():
            for part in ("cmdline", "environ"):
                try:
                    with open(f"/proc/{pid}/{part}", "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                if part == "cmdline":
                    seen.add(os.path.basename(data.split(b"\0")[0]))
                for s in secrets:
                    if s in data:
                        found.append((pid, part, data[:200]))
        time.sleep(0.01)


def test_no_password_in_logs_bounces_or_processes(sender, submission,
                                                  aiosmtpd_relay):
    """One message goes to a relay that takes its time over DATA while
    every process is searched; one bounces off a wrong password. The
    password is in no command line, no environment, no log line and no
    bounce."""
    if not qmtest.is_root():
        pytest.skip("reading every process's environment needs root")
    slow = aiosmtpd_relay(users={"alice": PASSWORD}, data_delay=1.5)
    secret_file(sender, "authroutes",
                f"ok.test:[127.0.0.1]:{slow.port} alice {PASSWORD}\n"
                f"remote.test:[127.0.0.1]:{submission.port} alice "
                f"{OTHER_PASSWORD}\n")
    found, seen, stop = [], set(), threading.Event()
    scanner = threading.Thread(target=scan_processes,
                               args=(found, seen, stop), daemon=True)
    queue = Queue(sender)
    scanner.start()
    try:
        queue.start()
        queue.wait_started(timeout=20)
        result = sender.run([str(sender.bindir / "qmail-inject"), "-f",
                             SENDER, "someone@ok.test", RCPT],
                            input=MESSAGE)
        assert result.returncode == 0, result.stderr
        wait_for(lambda: slow.handler.envelopes, timeout=30,
                 message="the message at the slow relay")
        bounces = wait_for(lambda: sender.maildir_messages("alice"),
                           timeout=30, message="a bounce for alice")
        wait_for(lambda: sender.queue_files() == [], timeout=30,
                 message="an empty queue")
    finally:
        stop.set()
        scanner.join(timeout=10)
        queue.close()
    assert b"qmail-rsmtp" in seen and b"ucspi-tlsc" in seen
    assert found == []
    bounce = bounces[0][1]
    assert (b"<bob@remote.test>:\nConnected to 127.0.0.1 but the relay "
            b"[127.0.0.1] rejected my user name or password. (#5.7.8)\n"
            b"Remote host said: 535 authentication failed") in bounce
    log = queue.log_text()
    assert "rejected_my_user_name_or_password" in log or \
        "rejected my user name or password" in log
    no_secret(bounce, log)


# ---- Postfix with Cyrus SASL ----


POSTFIX_USER = "pfuser"

SASL_CONF = """pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: {mechs}
sasldb_path: {db}
"""


class SaslPostfix(foreign.Postfix):
    """foreign.Postfix with TLS and Cyrus SASL (sasldb): smtpd on port
    offers PLAIN and LOGIN, a second one on login_port only LOGIN; both
    only after STARTTLS, and no recipient without AUTH."""

    def __init__(self, top):
        sasl = os.path.join(str(top), "etc", "sasl")
        super().__init__(top, extra=f"""\
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {sasl}
smtpd_sasl_authenticated_header = yes
smtpd_tls_security_level = may
smtpd_tls_chain_files = {top}/cert.pem
smtpd_tls_auth_only = yes
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
""")
        self.sasl = self.etc / "sasl"
        self.login_port = None

    def setup(self):
        super().setup()
        self.sasl.mkdir(mode=0o755, exist_ok=True)
        make_cert(self.top, "cert")
        db = self.sasl / "sasldb2"
        subprocess.run(["saslpasswd2", "-c", "-p", "-f", str(db), "-u",
                        f"postfix.{self.domain}", POSTFIX_USER],
                       input=(PASSWORD + "\n").encode(), check=True,
                       capture_output=True, timeout=30)
        pf = pwd.getpwnam("postfix")
        os.chown(db, pf.pw_uid, pf.pw_gid)
        os.chmod(db, 0o600)
        (self.sasl / "smtpd.conf").write_text(
            SASL_CONF.format(mechs="PLAIN LOGIN", db=db))
        (self.sasl / "smtplogin.conf").write_text(
            SASL_CONF.format(mechs="LOGIN", db=db))

    def start(self):
        self.setup()
        for _ in range(foreign.START_ATTEMPTS):
            self.port = qmtest.free_port("127.0.0.1")
            self.login_port = qmtest.free_port("127.0.0.1")
            (self.etc / "master.cf").write_text(
                foreign.MASTER_CF.format(listen=f"127.0.0.1:{self.port}")
                + "tlsmgr    unix  -       -       n       1000?   1"
                "       tlsmgr\n"
                f"127.0.0.1:{self.login_port} inet n - n - - smtpd\n"
                "  -o smtpd_sasl_path=smtplogin\n")
            self.postfix("check")
            if self.postfix("start", check=False).returncode == 0:
                self.master = self._wait_master()
                for port in (self.port, self.login_port):
                    wait_for(lambda: qmtest.is_listening(self.master, port),
                             timeout=10, message="postfix listening")
                return
        raise foreign.PostfixError("postfix found no free ports")


@pytest.fixture(scope="module")
def postfix_server():
    if not foreign.postfix_installed() or not shutil.which("saslpasswd2"):
        pytest.skip("needs Postfix and sasl2-bin (saslpasswd2)")
    top = qmtest.make_public_tempdir("qm-pfsasl-")
    pf = SaslPostfix(top)
    try:
        pf.start()
        yield pf
    finally:
        left = pf.stop()
        pf.remove()
    assert not left, f"postfix processes survived: {left!r}"


@pytest.fixture
def postfix(postfix_server, qm_logbook):
    postfix_server.empty_maildir()
    mark = len(postfix_server.log_text())
    yield postfix_server
    with open(qm_logbook.new("postfix-maillog"), "w") as f:
        f.write(postfix_server.log_text()[mark:])


def postfix_route(sender, port, user=POSTFIX_USER, password=PASSWORD):
    secret_file(sender, "authroutes",
                f"remote.test:{RELAY}:{port} {user} {password}\n")


def arrived(postfix):
    messages = wait_for(postfix.messages, timeout=20,
                        message="the message in Postfix's Maildir")
    data = messages[0][1]
    assert f"(Authenticated sender: {POSTFIX_USER})".encode() in data
    assert b"with ESMTPSA" in data
    assert data.endswith(b"\nSent with SMTP AUTH.\n")
    return data


@pytest.mark.parametrize("service,mechanism", [("port", "PLAIN"),
                                               ("login_port", "LOGIN")])
def test_postfix_plain_and_login(sender, dns, postfix, service, mechanism):
    postfix_route(sender, getattr(postfix, service))
    out = report(remote(sender, dns))
    assert accepted().fullmatch(out), out
    arrived(postfix)
    assert re.search(rf"sasl_method={mechanism}, "
                     rf"sasl_username={POSTFIX_USER}", postfix.log_text())


def test_postfix_wrong_password(sender, dns, postfix):
    postfix_route(sender, postfix.port, password=OTHER_PASSWORD)
    out = report(remote(sender, dns))
    assert out.startswith(
        b"DConnected to 127.0.0.1 but the relay smtp.relay.test rejected "
        b"my user name or password. (#5.7.8)\nRemote host said: 535 5.7.8 ")
    no_secret(out)


def test_postfix_without_tls_gets_no_password(sender, dns, postfix):
    postfix_route(sender, postfix.port)
    sender.control(f"notlshosts/{RELAY}", "")
    out = report(remote(sender, dns))
    assert out.startswith(
        b"h127.0.0.1 does not like recipient. (I did not authenticate: the "
        b"connection is not encrypted, and the route does not allow AUTH "
        b"in cleartext.)\nRemote host said: 554 5.7.1 ")
    assert postfix.messages() == []
