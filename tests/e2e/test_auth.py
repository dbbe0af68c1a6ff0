"""qmail-authup, qmail-reup, checkpassword, checkpassword-cdb, qmail-passwd
and checknotroot end to end.

Servers run under tcpserver as the instance's account (as root only where
a test is about switching ids). Virtual users are made with qmail-passwd
and checked by checkpassword-cdb; system accounts are temporary ones made
with useradd and chpasswd, removed afterwards, and root's password is never
touched. Clients are smtplib, poplib and raw sockets for what no polite
client sends. Messages go to a QMAILQUEUE recorder, which keeps what
qmail-ofmipd queued: the message and its envelope.
"""

import base64
import contextlib
import fcntl
import os
import poplib
import pwd
import re
import secrets
import shutil
import smtplib
import ssl
import stat
import subprocess
import time

import pytest

import qmtest
from qmtest import wait_for

PLAIN_OK = "235 ok, go ahead (#2.0.0)"
FAILED = "535 authentication failed (#5.7.8)"
MALFORMED = "501 malformed auth input (#5.5.4)"
CANCELLED = "501 auth exchange cancelled (#5.0.0)"
UNKNOWN_MECH = "504 auth type unimplemented (#5.5.4)"
NEED_AUTH = "530 authentication required (#5.7.1)"
NEED_TLS = "530 Must issue a STARTTLS command first (#5.7.0)"
AUTHZID = "535 authorization identity must be the user (#5.7.8)"
CRASHED = "454 temporary authentication failure (#4.3.0)"
LAST_FAILURE = ["535-authentication failed (#5.7.8)",
                "535 too many failed logins; closing connection (#5.7.8)"]
USERNAME = "334 VXNlcm5hbWU6"
PASSWORD = "334 UGFzc3dvcmQ6"
GIVEUP = 12

USERS = {"alice": "correct horse", "bob": "pa ss:w\u00f6rd"}


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain(user, password, authzid=""):
    return b64(f"{authzid}\0{user}\0{password}")


# ---- a raw client ----


class Client:
    """Bytes out, CRLF lines in; for what smtplib and poplib never send.
    It reads one byte at a time until TLS, so that nothing meant for the
    TLS layer is taken by the cleartext reader."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    @classmethod
    def to(cls, server, timeout=10):
        return cls(server.connect(timeout=timeout))

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(1)
            if not data:
                raise EOFError(f"EOF after {self.buf!r}")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        assert line.endswith(b"\r"), line
        return line[:-1].decode()

    def reply(self):
        """One SMTP reply: all its lines."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def cmd1(self, text):
        """A command whose reply is one line."""
        lines = self.cmd(text)
        assert len(lines) == 1, lines
        return lines[0]

    def closed(self, timeout=10):
        """True when the server closes the connection with nothing more
        to say."""
        self.sock.settimeout(timeout)
        try:
            return self.buf == b"" and self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


# ---- the instance side ----


def account_dir(inst, name, mode=0o755):
    path = inst.path / name
    path.mkdir(mode=mode)
    path.chmod(mode)
    if qmtest.is_root():
        os.chown(path, inst.uid, inst.gid)
    return path


def script(inst, name, text):
    path = inst.path / name
    path.write_text(text)
    path.chmod(0o755)
    if qmtest.is_root():
        os.chown(path, inst.uid, inst.gid)
    return str(path)


class Recorder:
    """A QMAILQUEUE program that keeps each message and its envelope. Its
    directory is open to every uid (sticky), since a system user's
    qmail-ofmipd writes there too."""

    SCRIPT = """#!/bin/sh
# Records one message for the test (message on fd 0, envelope on fd 1).
n=$(date +%s%N).$$
cat > '{dir}/tmp.'$n.msg || exit 54
cat <&1 > '{dir}/tmp.'$n.env || exit 54
mv '{dir}/tmp.'$n.msg '{dir}/'$n.msg && mv '{dir}/tmp.'$n.env '{dir}/'$n.env
"""

    def __init__(self, inst):
        self.dir = account_dir(inst, "records", mode=0o1777)
        self.program = script(inst, "record-queue",
                              self.SCRIPT.format(dir=self.dir))

    def records(self):
        found = []
        for msg in sorted(self.dir.glob("[0-9]*.msg")):
            env = msg.with_suffix(".env").read_bytes()
            assert env.startswith(b"F") and env.endswith(b"\0\0"), env
            fields = env[1:-2].split(b"\0")
            found.append((msg.read_bytes(), fields[0].decode(),
                          [f[1:].decode() for f in fields[1:]]))
        return found


def add_user(bindir, inst, login, password, *opts, as_root=False):
    argv = [str(bindir / "qmail-passwd")] + list(opts) + ["add", login]
    data = (password + "\n").encode()
    if as_root:
        result = subprocess.run(argv, input=data, env=inst.env(),
                                capture_output=True, timeout=60)
    else:
        result = inst.run(argv, input=data)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def inst(make_instance, bindir):
    """An instance with the virtual users of USERS."""
    inst = make_instance(mailboxes=("alice", "bob", "carol"))
    for login, password in USERS.items():
        add_user(bindir, inst, login, password)
    return inst


def authup_argv(bindir, proto="smtp", cpw=None, prog=None, tries=None,
                reup=None):
    argv = []
    if reup is not None:
        argv += [str(bindir / "qmail-reup"), "-t", str(reup)]
    argv.append(str(bindir / "qmail-authup"))
    if tries is not None:
        argv += ["-t", str(tries)]
    argv.append(proto)
    argv += cpw or [str(bindir / "checkpassword-cdb")]
    argv += prog or ([str(bindir / "qmail-ofmipd")] if proto == "smtp"
                     else [str(bindir / "qmail-pop3d"), "Maildir"])
    return argv


def start(servers, inst, argv, as_root=False, **env_extra):
    env = inst.env()
    env.pop("QMAILQUEUE", None)
    for name, value in env_extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return servers.start(argv, as_account=None if as_root else inst,
                         env=env, name=os.path.basename(argv[0]),
                         tcpserver_opts=["-v"])


def start_submission(servers, bindir, inst, recorder=None, as_root=False,
                     env=None, **kw):
    extra = dict(env or {})
    if recorder is not None:
        extra["QMAILQUEUE"] = recorder.program
    return start(servers, inst, authup_argv(bindir, **kw), as_root=as_root,
                 **extra)


def end_statuses(server):
    """Exit codes (or minus the signal) from the wait statuses tcpserver
    -v logged, in order."""
    found = []
    for m in re.finditer(r"tcpserver: end \d+ status (\d+)",
                         server.log_text()):
        status = int(m.group(1))
        found.append(status >> 8 if status & 0x7f == 0 else -(status & 0x7f))
    return found


def wait_end_status(server, count=1):
    wait_for(lambda: len(end_statuses(server)) >= count,
             message="the session to end")
    return end_statuses(server)[count - 1]


def members_named(server, name):
    return [pid for pid, cmd in qmtest.session_members(server.proc.pid)
            if name in cmd.split(" ")[0]]


def proc_ids(pid):
    ids = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                ids[key] = [int(v) for v in value.split()]
    return ids


def root_only():
    return pytest.mark.skipif(not qmtest.is_root(), reason="needs root")


def send_message(smtp, rcpt="carol@example.test"):
    smtp.sendmail("alice@example.test", [rcpt],
                  b"Subject: hello\r\n\r\nthe body\r\n")


def check_queued(recorder, user, rcpt="carol@example.test"):
    records = wait_for(recorder.records, message="the queued message")
    assert len(records) == 1
    message, sender, rcpts = records[0]
    assert sender == "alice@example.test"
    assert rcpts == [rcpt]
    first = message.split(b"\n", 2)
    assert first[0] == f"Received: from unknown ({user}@127.0.0.1)".encode()
    assert first[1].startswith(b"  by example.test with ESMTPA; ")
    assert b"\nSubject: hello\n" in message
    assert message.endswith(b"\nthe body\n")
    return message


# ---- SMTP AUTH that works ----


def test_ehlo_and_greeting_defaults(servers, bindir, inst):
    server = start_submission(servers, bindir, inst)
    c = Client.to(server)
    assert c.reply() == ["220 example.test ESMTP"]
    assert c.cmd("EHLO client.example") == [
        "250-example.test", "250-AUTH LOGIN PLAIN", "250-PIPELINING",
        "250-8BITMIME", "250-SIZE", "250 SMTPUTF8"]
    assert c.cmd("HELO client.example") == ["250 example.test"]
    assert c.cmd("NOOP") == ["250 ok"]
    assert c.cmd("RSET") == ["250 flushed"]
    assert c.cmd("QUIT") == ["221 example.test"]
    assert c.closed()
    assert wait_end_status(server) == 0


def test_ehlo_follows_controls(servers, bindir, inst):
    inst.control("smtpgreeting", "submit.example.test hello\n")
    inst.control("databytes", "123456\n")
    server = start_submission(
        servers, bindir, inst, env={"AUTHUP_SASL_BROKEN_CLIENTS": "1"})
    c = Client.to(server)
    assert c.reply() == ["220 submit.example.test hello ESMTP"]
    assert c.cmd("EHLO x") == [
        "250-submit.example.test hello", "250-AUTH LOGIN PLAIN",
        "250-AUTH=LOGIN PLAIN", "250-PIPELINING", "250-8BITMIME",
        "250-SIZE 123456", "250 SMTPUTF8"]
    c.close()
    inst.control("smtpcapabilities", "# ours\nPIPELINING\nX-FOO bar\n")
    server = start_submission(servers, bindir, inst)
    c = Client.to(server)
    c.reply()
    assert c.cmd("EHLO x") == [
        "250-submit.example.test hello", "250-AUTH LOGIN PLAIN",
        "250-PIPELINING", "250 X-FOO bar"]


def test_refuses_to_run_without_a_greeting(servers, bindir, inst):
    (inst.path / "control" / "me").unlink()
    server = start_submission(servers, bindir, inst)
    c = Client.to(server)
    assert c.closed()
    assert wait_end_status(server) == 111
    assert "neither control/smtpgreeting nor control/me" in \
        server.log_text()


@pytest.mark.parametrize("initial", [True, False], ids=["ir", "no-ir"])
def test_plain_login_queues_a_message(servers, bindir, inst, initial):
    recorder = Recorder(inst)
    server = start_submission(servers, bindir, inst, recorder)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as smtp:
        smtp.ehlo("client.example")
        smtp.user, smtp.password = "alice", USERS["alice"]
        code, text = smtp.auth("PLAIN", smtp.auth_plain,
                               initial_response_ok=initial)
        assert (code, text) == (235, b"ok, go ahead (#2.0.0)")
        send_message(smtp)
    check_queued(recorder, "alice")
    assert wait_end_status(server) == 0


@pytest.mark.parametrize("initial", [True, False], ids=["ir", "no-ir"])
def test_login_mechanism_queues_a_message(servers, bindir, inst, initial):
    recorder = Recorder(inst)
    server = start_submission(servers, bindir, inst, recorder)
    c = Client.to(server)
    c.reply()
    c.cmd("EHLO client.example")
    if initial:
        assert c.cmd1("AUTH LOGIN " + b64("bob")) == PASSWORD
    else:
        assert c.cmd1("auth login") == USERNAME
        assert c.cmd1(b64("bob")) == PASSWORD
    assert c.cmd1(b64(USERS["bob"])) == PLAIN_OK
    # qmail-ofmipd takes over: already past EHLO, MAIL at once.
    assert c.cmd1("MAIL FROM:<alice@example.test>") == "250 ok"
    assert c.cmd1("RCPT TO:<carol@example.test>") == "250 ok"
    assert c.cmd1("DATA").startswith("354")
    assert c.cmd1("Subject: hello\r\n\r\nthe body\r\n.") == "250 ok"
    assert c.cmd1("QUIT").startswith("221")
    check_queued(recorder, "bob")


def test_smtplib_login_picks_a_mechanism(servers, bindir, inst):
    recorder = Recorder(inst)
    server = start_submission(servers, bindir, inst, recorder)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as smtp:
        assert smtp.login("alice", USERS["alice"])[0] == 235
        send_message(smtp)
    check_queued(recorder, "alice")


def test_commands_pipelined_after_auth_reach_ofmipd(servers, bindir, inst):
    """authup never reads past the AUTH line: what follows in the same
    packet belongs to qmail-ofmipd."""
    recorder = Recorder(inst)
    server = start_submission(servers, bindir, inst, recorder)
    c = Client.to(server)
    c.reply()
    c.send("EHLO x\r\nAUTH PLAIN " + plain("alice", USERS["alice"])
           + "\r\nMAIL FROM:<alice@example.test>\r\n"
           "RCPT TO:<carol@example.test>\r\nDATA\r\n")
    assert c.reply()[-1] == "250 SMTPUTF8"
    assert c.reply() == [PLAIN_OK]
    assert c.reply() == ["250 ok"]
    assert c.reply() == ["250 ok"]
    assert c.reply()[0].startswith("354")
    assert c.cmd1("Subject: hello\r\n\r\nthe body\r\n.") == "250 ok"
    check_queued(recorder, "alice")


def test_authzid_equal_to_the_user_is_fine(servers, bindir, inst):
    server = start_submission(servers, bindir, inst)
    c = Client.to(server)
    c.reply()
    assert c.cmd1("AUTH PLAIN " + plain("alice", USERS["alice"],
                                        authzid="alice")) == PLAIN_OK


def test_tls_required_without_descriptors(servers, bindir, inst):
    """UCSPITLS=! with no TLS program in front: no login is possible,
    and the log says why."""
    server = start_submission(servers, bindir, inst, env={"UCSPITLS": "!"})
    c = Client.to(server)
    c.reply()
    assert c.cmd("EHLO x") == ["250-example.test", "250-PIPELINING",
                               "250-8BITMIME", "250-SIZE", "250 SMTPUTF8"]
    assert c.cmd1("AUTH PLAIN " + plain("alice", USERS["alice"])) == \
        NEED_TLS
    assert c.cmd1("STARTTLS") == "502 TLS not available (#5.5.1)"
    assert "TLS is required but the UCSPI-TLS descriptors are missing" in \
        server.log_text()


def test_implicit_tls_counts_as_active(servers, bindir, inst):
    """SMTPS (port 465): TLS was done before authup, so a required TLS
    policy is met and STARTTLS is not offered."""
    server = start_submission(servers, bindir, inst,
                              env={"UCSPITLS": "!", "SMTPS": "1"})
    c = Client.to(server)
    c.reply()
    assert c.cmd("EHLO x")[:2] == ["250-example.test", "250-AUTH LOGIN PLAIN"]
    assert c.cmd1("AUTH PLAIN " + plain("alice", USERS["alice"])) == \
        PLAIN_OK


# ---- SMTP bad input ----


BAD_INPUT = [
    pytest.param(["MAIL FROM:<a@example.test>"], [NEED_AUTH], id="mail"),
    pytest.param(["RCPT TO:<a@example.test>"], [NEED_AUTH], id="rcpt"),
    pytest.param(["DATA"], [NEED_AUTH], id="data"),
    pytest.param(["VRFY alice"], [NEED_AUTH], id="vrfy"),
    pytest.param(["STARTTLS"], ["502 TLS not available (#5.5.1)"],
                 id="starttls-unavailable"),
    pytest.param(["FOO"], [NEED_AUTH], id="unknown-verb"),
    pytest.param([""], [NEED_AUTH], id="empty-line"),
    pytest.param(["AUTH"], [MALFORMED], id="no-mechanism"),
    pytest.param(["AUTH CRAM-MD5"], [UNKNOWN_MECH], id="unknown-mechanism"),
    pytest.param(["AUTH PLAIN !!!!"], [MALFORMED], id="plain-bad-base64"),
    pytest.param(["AUTH PLAIN YWJj"], [MALFORMED], id="plain-one-field"),
    pytest.param(["AUTH PLAIN " + plain("", "pw")], [MALFORMED],
                 id="plain-empty-user"),
    pytest.param(["AUTH PLAIN " + plain("alice", "")], [MALFORMED],
                 id="plain-empty-password"),
    pytest.param(["AUTH PLAIN " + plain("alice", "corr\0ect horse")],
                 [MALFORMED], id="plain-password-with-nul"),
    pytest.param(["AUTH PLAIN " + plain("alice", USERS["alice"], "bob")],
                 [AUTHZID], id="plain-other-authzid"),
    pytest.param(["AUTH PLAIN " + plain("ali\nce", "x")], [MALFORMED],
                 id="plain-user-with-newline"),
    pytest.param(["AUTH PLAIN a b"], [MALFORMED], id="plain-two-words"),
    pytest.param(["AUTH PLAIN", "*"], ["334 ", CANCELLED], id="plain-cancel"),
    pytest.param(["AUTH PLAIN", "not base64"], ["334 ", MALFORMED],
                 id="plain-response-bad-base64"),
    pytest.param(["AUTH PLAIN", ""], ["334 ", MALFORMED],
                 id="plain-empty-response"),
    pytest.param(["AUTH PLAIN", "="], ["334 ", MALFORMED],
                 id="plain-equals-response"),
    pytest.param(["AUTH PLAIN ="], [MALFORMED], id="plain-empty-initial"),
    pytest.param(["AUTH LOGIN", "*"], [USERNAME, CANCELLED],
                 id="login-cancel-user"),
    pytest.param(["AUTH LOGIN", b64("alice"), "*"],
                 [USERNAME, PASSWORD, CANCELLED], id="login-cancel-pass"),
    pytest.param(["AUTH LOGIN", ""], [USERNAME, MALFORMED],
                 id="login-empty-user"),
    pytest.param(["AUTH LOGIN ="], [MALFORMED], id="login-empty-initial"),
    pytest.param(["AUTH LOGIN", b64("alice"), ""],
                 [USERNAME, PASSWORD, MALFORMED], id="login-empty-password"),
    pytest.param(["AUTH LOGIN", b64("alice"), b64("a\0b")],
                 [USERNAME, PASSWORD, MALFORMED],
                 id="login-password-with-nul"),
    pytest.param(["AUTH LOGIN", "%%%%"], [USERNAME, MALFORMED],
                 id="login-bad-base64"),
    pytest.param(["AUTH LOGIN", b64("alice"), "A" * 1200],
                 [USERNAME, PASSWORD, MALFORMED], id="login-long-response"),
    pytest.param(["AUTH PLAIN " + "A" * 10240], [MALFORMED],
                 id="auth-line-10k"),
    pytest.param(["NOOP " + "x" * 2000], ["500 line too long (#5.5.2)"],
                 id="long-command"),
    pytest.param(["AUTH PLAIN AG\0Jvy"], [MALFORMED], id="auth-with-nul"),
    pytest.param(["NO\0OP"], ["501 NUL in command (#5.5.2)"],
                 id="nul-in-command"),
]


@pytest.mark.parametrize("lines,replies", BAD_INPUT)
def test_bad_input(servers, bindir, inst, lines, replies):
    recorder = Recorder(inst)
    server = start_submission(servers, bindir, inst, recorder)
    c = Client.to(server)
    assert c.reply() == ["220 example.test ESMTP"]
    assert c.cmd("EHLO x")[-1] == "250 SMTPUTF8"
    got = [c.cmd1(line) for line in lines]
    assert got == replies
    # The session goes on, nothing was used up, and a good login works.
    assert c.cmd1("NOOP") == "250 ok"
    for _ in range(4):
        assert c.cmd1("AUTH PLAIN " + plain("alice", "wrong")) == FAILED
    assert c.cmd1("AUTH PLAIN " + plain("alice", USERS["alice"])) == \
        PLAIN_OK
    assert c.cmd1("QUIT").startswith("221")
    assert recorder.records() == []
    assert "corr" not in server.log_text()  # no password in the log


def test_too_many_errors_end_the_session(servers, bindir, inst):
    server = start_submission(servers, bindir, inst)
    c = Client.to(server)
    c.reply()
    for _ in range(9):
        assert c.cmd1("MAIL FROM:<a@b>") == NEED_AUTH
    assert c.cmd1("MAIL FROM:<a@b>") == NEED_AUTH
    assert c.reply() == ["421 too many errors; closing connection (#4.7.0)"]
    assert c.closed()


def test_wrong_password_then_right_one(servers, bindir, inst):
    server = start_submission(servers, bindir, inst)
    c = Client.to(server)
    c.reply()
    assert c.cmd1("AUTH PLAIN " + plain("alice", "wrong")) == FAILED
    assert c.cmd1("AUTH PLAIN " + plain("nobody-here", "x")) == FAILED
    assert c.cmd1("AUTH PLAIN " + plain("Alice", USERS["alice"])) == FAILED
    assert c.cmd1("AUTH LOGIN " + b64("bob")) == PASSWORD
    assert c.cmd1(b64(USERS["bob"])) == PLAIN_OK
    log = server.log_text()
    assert "login failed for alice (try 1 of 5)" in log
    assert "correct horse" not in log and "wrong" not in log


@pytest.mark.parametrize("reup", [None, 5], ids=["authup", "reup"])
def test_four_failures_then_success(servers, bindir, inst, reup):
    recorder = Recorder(inst)
    server = start_submission(servers, bindir, inst, recorder, reup=reup)
    c = Client.to(server)
    assert c.reply() == ["220 example.test ESMTP"]
    for _ in range(4):
        assert c.cmd1("AUTH PLAIN " + plain("alice", "wrong")) == FAILED
    assert c.cmd1("AUTH PLAIN " + plain("alice", USERS["alice"])) == \
        PLAIN_OK
    assert c.cmd1("MAIL FROM:<alice@example.test>") == "250 ok"
    assert c.cmd1("RCPT TO:<carol@example.test>") == "250 ok"
    assert c.cmd1("DATA").startswith("354")
    assert c.cmd1("Subject: hello\r\n\r\nthe body\r\n.") == "250 ok"
    assert c.cmd1("QUIT").startswith("221")
    assert c.closed()
    check_queued(recorder, "alice")
    assert wait_end_status(server) == 0


@pytest.mark.parametrize("reup", [None, 5], ids=["authup", "reup"])
def test_fifth_failure_ends_the_session(servers, bindir, inst, reup):
    server = start_submission(servers, bindir, inst, reup=reup)
    c = Client.to(server)
    assert c.reply() == ["220 example.test ESMTP"]
    for _ in range(4):
        assert c.cmd1("AUTH PLAIN " + plain("alice", "wrong")) == FAILED
    assert c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"] + "x")) == \
        LAST_FAILURE
    assert c.closed()  # and never a second greeting
    assert wait_end_status(server) == GIVEUP
    assert server.log_text().count("login failed for alice") == 5


def test_tries_option_and_reup_count(servers, bindir, inst):
    # authup -t wins over the count reup hands it.
    server = start_submission(servers, bindir, inst, reup=5, tries=2)
    c = Client.to(server)
    c.reply()
    assert c.cmd1("AUTH PLAIN " + plain("alice", "wrong")) == FAILED
    assert c.cmd("AUTH PLAIN " + plain("alice", "wrong")) == LAST_FAILURE
    assert c.closed()
    # reup -t 3: three tries on the one connection.
    server = start_submission(servers, bindir, inst, reup=3)
    c = Client.to(server)
    c.reply()
    assert c.cmd1("AUTH PLAIN " + plain("alice", "wrong")) == FAILED
    assert c.cmd1("AUTH PLAIN " + plain("alice", "wrong")) == FAILED
    assert c.cmd("AUTH PLAIN " + plain("alice", "wrong")) == LAST_FAILURE
    assert c.closed()
    assert wait_end_status(server) == GIVEUP


def test_crashing_checkpassword_is_temporary(servers, bindir, inst):
    crash = script(inst, "crash-cpw",
                   "#!/bin/sh\n# Reads its input, then dies of SIGSEGV.\n"
                   "cat <&3 >/dev/null\nkill -SEGV $$\n")
    server = start_submission(servers, bindir, inst, cpw=[crash], tries=2)
    c = Client.to(server)
    c.reply()
    assert c.cmd1("AUTH PLAIN " + plain("alice", "x")) == CRASHED
    assert c.cmd1("NOOP") == "250 ok"
    assert c.cmd("AUTH PLAIN " + plain("alice", "x")) == [
        "454-temporary authentication failure (#4.3.0)",
        "454 too many failed logins; closing connection (#4.3.0)"]
    assert c.closed()
    assert "killed by signal 11 for alice" in server.log_text()


def test_checkpassword_input_and_environment(servers, bindir, inst):
    """The fd-3 input, AUTHUP_USER, the variables authup keeps to itself,
    and fds 0 and 1 handed on to prog."""
    out = account_dir(inst, "seen", mode=0o777)
    spy = script(inst, "spy-cpw", f"""#!/bin/sh
# Keeps what checkpassword gets, then runs prog as a good login would.
cat <&3 > {out}/input
printf '%s' "$AUTHUP_USER" > {out}/user
env > {out}/env
exec "$@"
""")
    prog = script(inst, "prog", """#!/bin/sh
# Answers on fd 1 what it reads on fd 0.
printf '235 hello from prog\\r\\n'
read line
printf 'got %s\\n' "$line"
""")
    server = start_submission(
        servers, bindir, inst, cpw=[spy], prog=[prog],
        env={"UCSPITLS": "", "DISABLETLS": "1", "REUP": "1",
             "REUP_TRIES": "3", "AUTHUP_USER": "mallory"})
    c = Client.to(server)
    c.reply()
    assert c.cmd1("AUTH PLAIN " + plain("al ice", "p w")) == \
        "235 hello from prog"
    c.send("ping\r\n")
    assert c.line() == "got ping"
    assert (out / "user").read_text() == "al ice"
    assert (out / "input").read_bytes() == b"al ice\0p w\0\0"
    env = (out / "env").read_text().splitlines()
    for name in ("UCSPITLS", "DISABLETLS", "REUP", "REUP_TRIES"):
        assert not [line for line in env if line.startswith(name + "=")]
    assert "AUTHUP_USER=al ice" in env


# ---- timeouts and silence ----


def test_silent_client_mid_auth(servers, bindir, inst):
    inst.control("timeoutsmtpd", "2\n")
    server = start_submission(servers, bindir, inst)
    c = Client.to(server)
    c.reply()
    assert c.cmd1("AUTH LOGIN") == USERNAME
    started = time.monotonic()
    assert c.line() == "451 timeout (#4.4.2)"
    assert c.closed()
    assert 1.5 < time.monotonic() - started < 8
    assert wait_end_status(server) == 0


def test_client_gone_before_login(servers, bindir, inst):
    server = start_submission(servers, bindir, inst, reup=5)
    c = Client.to(server)
    c.reply()
    c.send("AUTH LOGIN")  # no line end, then gone
    c.close()
    assert wait_end_status(server) == 0


# ---- qmail-reup on its own ----


def reup_prog(inst, codes):
    """A prog that logs REUP and REUP_TRIES and exits with codes[try-1]."""
    log = inst.path / "reup.log"
    body = "\n".join(f"{i + 1}) exit {code} ;;" if code >= 0
                     else f"{i + 1}) kill -TERM $$ ;;"
                     for i, code in enumerate(codes))
    return log, script(inst, "reup-prog", f"""#!/bin/sh
# Logs its try and exits as the test says.
echo "$REUP/$REUP_TRIES" >> {log}
case $REUP in
{body}
esac
exit 99
""")


@pytest.mark.parametrize("codes,tries,status,runs", [
    ([3, 4, 0], 5, 0, ["1/5", "2/4", "3/3"]),
    ([3, 12], 5, 12, ["1/5", "2/4"]),
    ([3, 4, 5], 3, 5, ["1/3", "2/2", "3/1"]),
    ([0], 1, 0, ["1/1"]),
    ([7, -1, 0], 5, 111, ["1/5", "2/4"]),
], ids=["success", "twelve", "tries-out", "one", "signal"])
def test_reup_reruns(inst, bindir, codes, tries, status, runs):
    log, prog = reup_prog(inst, codes)
    result = inst.run([str(bindir / "qmail-reup"), "-t", str(tries), prog])
    assert result.returncode == status
    assert log.read_text().split() == runs


def test_reup_usage(inst, bindir):
    for argv in ([], ["-t"], ["-t", "0", "true"], ["-t", "x", "true"],
                 ["-t", "5"]):
        result = inst.run([str(bindir / "qmail-reup")] + argv)
        assert result.returncode == 100, argv
        assert b"usage" in result.stderr
    log, prog = reup_prog(inst, [1, 0])
    assert inst.run([str(bindir / "qmail-reup"), prog]).returncode == 0
    assert inst.run([str(bindir / "qmail-reup"), "-t2", "--",
                     prog]).returncode == 0


def test_authup_usage(inst, bindir):
    for argv in ([], ["smtp"], ["smtp", "checkpassword"], ["imap", "a", "b"],
                 ["-t", "0", "smtp", "a", "b"], ["-t"]):
        result = inst.run([str(bindir / "qmail-authup")] + argv)
        assert result.returncode == 100, argv
        assert b"usage" in result.stderr


# ---- checknotroot ----


def test_checknotroot(inst, bindir):
    cnr = str(bindir / "checknotroot")
    result = inst.run([cnr, "sh", "-c", "echo ran as $(id -u)"])
    assert result.returncode == 0
    assert result.stdout.decode() == f"ran as {inst.uid}\n"
    result = inst.run([cnr])
    assert result.returncode == 1 and b"usage" in result.stderr
    result = inst.run([cnr, "/nonexistent/prog"])
    assert result.returncode == 1
    assert b"unable to run /nonexistent/prog" in result.stderr


@root_only()
def test_checknotroot_refuses_root(qm_session_dir, bindir):
    mark = qm_session_dir / "checknotroot-ran"
    result = subprocess.run([str(bindir / "checknotroot"), "touch",
                             str(mark)], capture_output=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr == \
        b"checknotroot: WAS RUNNING AS ROOT, TERMINATING\n"
    assert not mark.exists()


@root_only()
def test_root_login_looks_like_a_wrong_password(servers, bindir, inst):
    """A checkpassword that accepts anyone and keeps root (as a real one
    would for root's right password) ends in checknotroot: the client
    gets the reply a wrong password gets."""
    accept = script(inst, "accept-all",
                    "#!/bin/sh\n# Accepts every login, as root.\n"
                    "cat <&3 >/dev/null\nexec \"$@\"\n")
    server = start_submission(
        servers, bindir, inst, as_root=True, cpw=[accept],
        prog=[str(bindir / "checknotroot"), str(bindir / "qmail-ofmipd")])
    c = Client.to(server)
    c.reply()
    assert c.cmd1("AUTH PLAIN " + plain("root", "anything")) == FAILED
    assert "checknotroot: WAS RUNNING AS ROOT, TERMINATING" in \
        server.log_text()
    assert c.cmd1("QUIT").startswith("221")


# ---- who runs prog ----


@root_only()
def test_ofmipd_runs_as_the_virtual_user(servers, bindir, inst):
    """As root, checkpassword-cdb takes the ids in the cdb: qmail-ofmipd
    runs as the instance account, in the user's home."""
    recorder = Recorder(inst)
    server = start_submission(servers, bindir, inst, recorder, as_root=True,
                              prog=[str(bindir / "checknotroot"),
                                    str(bindir / "qmail-ofmipd")])
    c = Client.to(server)
    c.reply()
    assert c.cmd1("AUTH PLAIN " + plain("alice", USERS["alice"])) == \
        PLAIN_OK
    pids = wait_for(lambda: members_named(server, "qmail-ofmipd"))
    ids = proc_ids(pids[0])
    assert ids["Uid"] == [inst.uid] * 4
    assert ids["Gid"] == [inst.gid] * 4
    assert ids["Groups"] == [inst.gid]
    assert c.cmd1("MAIL FROM:<alice@example.test>") == "250 ok"
    assert c.cmd1("QUIT").startswith("221")


# ---- system accounts ----


@contextlib.contextmanager
def system_user(password, method=None):
    """A temporary account with a password; removed afterwards."""
    name = "qmt" + secrets.token_hex(4)
    home = qmtest.make_public_tempdir("qm-home-")
    try:
        subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh",
                        "-U", name], check=True, capture_output=True,
                       timeout=60)
        entry = pwd.getpwnam(name)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        argv = ["chpasswd"] + (["-c", method] if method else [])
        subprocess.run(argv, input=f"{name}:{password}\n".encode(),
                       check=True, capture_output=True, timeout=60)
        yield entry
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def shadow_hash(name):
    with open("/etc/shadow") as f:
        for line in f:
            fields = line.split(":")
            if fields[0] == name:
                return fields[1]
    return None


# Moves stdin to fd 3, as qmail-authup's pipe would be, then runs argv.
ON_FD3 = ["/bin/sh", "-c", 'exec 3<&0 0</dev/null; exec "$@"', "sh"]


def run_on_fd3(argv, data, env):
    """Runs argv with data readable on fd 3."""
    return subprocess.run(ON_FD3 + list(argv), input=data, env=env,
                          capture_output=True, timeout=60)


def run_checkpassword(bindir, cpw, data, prog, env=None):
    """Runs cpw prog... with data on fd 3; returns the CompletedProcess."""
    return run_on_fd3([str(bindir / cpw)] + prog, data,
                      env or qmtest.program_env(bindir))


IDS_PROG = ["/bin/sh", "-c", "id -u; id -g; id -G; pwd; "
            "echo \"$USER|$HOME|$SHELL\"; "
            "if [ -e /proc/self/fd/3 ]; then echo fd3 open; "
            "else echo fd3 closed; fi"]


@root_only()
@pytest.mark.parametrize("method", [None, "SHA512"], ids=["yescrypt",
                                                           "sha512"])
def test_system_checkpassword(bindir, method):
    with system_user("s3cret word", method) as user:
        stored = shadow_hash(user.pw_name)
        assert stored.startswith("$y$" if method is None else "$6$")
        ok = run_checkpassword(
            bindir, "checkpassword",
            f"{user.pw_name}\0s3cret word\0<ts>\0".encode(), IDS_PROG)
        assert ok.returncode == 0, ok.stderr
        lines = ok.stdout.decode().splitlines()
        assert lines[:4] == [str(user.pw_uid), str(user.pw_gid),
                             str(user.pw_gid), user.pw_dir]
        assert lines[4] == f"{user.pw_name}|{user.pw_dir}|/bin/sh"
        assert lines[5] == "fd3 closed"
        for bad in (f"{user.pw_name}\0s3cret wordx\0\0",
                    f"{user.pw_name}\0S3cret word\0\0",
                    f"{user.pw_name}\0\0\0",
                    f"{user.pw_name}x\0s3cret word\0\0",
                    "root\0s3cret word\0\0"):
            result = run_checkpassword(bindir, "checkpassword",
                                       bad.encode(), IDS_PROG)
            assert result.returncode == 1, bad
            assert result.stdout == b""


@root_only()
def test_system_checkpassword_locked_and_expired(bindir):
    def data_for(user):
        return f"{user.pw_name}\0pw\0\0".encode()

    with system_user("pw") as user:
        assert run_checkpassword(bindir, "checkpassword", data_for(user),
                                 ["true"]).returncode == 0
        subprocess.run(["usermod", "-L", user.pw_name], check=True,
                       timeout=60)
        assert shadow_hash(user.pw_name).startswith("!")
        assert run_checkpassword(bindir, "checkpassword", data_for(user),
                                 ["true"]).returncode == 1
        subprocess.run(["usermod", "-U", user.pw_name], check=True,
                       timeout=60)
        subprocess.run(["chage", "-E", "1", user.pw_name], check=True,
                       timeout=60)
        assert run_checkpassword(bindir, "checkpassword", data_for(user),
                                 ["true"]).returncode == 1
        subprocess.run(["chage", "-E", "-1", user.pw_name], check=True,
                       timeout=60)
        subprocess.run(["passwd", "-d", user.pw_name], check=True,
                       capture_output=True, timeout=60)
        assert shadow_hash(user.pw_name) == ""
        assert run_checkpassword(bindir, "checkpassword",
                                 f"{user.pw_name}\0\0\0".encode(),
                                 ["true"]).returncode == 1


def test_checkpassword_misuse(bindir):
    for cpw in ("checkpassword", "checkpassword-cdb"):
        assert run_checkpassword(bindir, cpw, b"a\0b\0\0",
                                 []).returncode == 2
        if cpw == "checkpassword" and not qmtest.is_root():
            continue  # without root it stops before reading
        for data in (b"", b"alice", b"alice\0pw", b"\0pw\0\0"):
            result = run_checkpassword(bindir, cpw, data, ["true"])
            assert result.returncode == 2, (cpw, data)


def test_system_checkpassword_needs_root(inst, bindir):
    """Without root no system password can be read: temporary."""
    if not qmtest.is_root():
        pytest.skip("needs root to run as the account")
    cpw = str(bindir / "checkpassword")
    result = run_on_fd3(["setuidgid", inst.account, cpw, "true"],
                        b"root\0x\0\0", inst.env())
    assert result.returncode == 111
    assert b"not running as root" in result.stderr


@root_only()
def test_system_login_through_authup(servers, bindir, inst):
    """The seed's pipeline with the system checkpassword: qmail-ofmipd
    runs as the account that logged in."""
    recorder = Recorder(inst)
    with system_user("open sesame") as user:
        server = start_submission(
            servers, bindir, inst, recorder, as_root=True, reup=5,
            cpw=[str(bindir / "checkpassword")],
            prog=[str(bindir / "checknotroot"),
                  str(bindir / "qmail-ofmipd")])
        with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as smtp:
            smtp.ehlo("client.example")
            smtp.user, smtp.password = user.pw_name, "wrong"
            with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                smtp.auth("PLAIN", smtp.auth_plain)
            assert e.value.smtp_code == 535
            smtp.password = "open sesame"
            assert smtp.auth("LOGIN", smtp.auth_login)[0] == 235
            pids = wait_for(lambda: members_named(server, "qmail-ofmipd"))
            ids = proc_ids(pids[0])
            assert ids["Uid"] == [user.pw_uid] * 4
            assert ids["Gid"] == [user.pw_gid] * 4
            assert ids["Groups"] == [user.pw_gid]
            send_message(smtp)
        check_queued(recorder, user.pw_name)
        servers.stop(server)


# ---- checkpassword-cdb ----


def test_cdb_checkpassword_directly(inst, bindir):
    env = inst.env()
    prog = ["/bin/sh", "-c", "id -u; pwd; echo \"$USER|$HOME|$SHELL\""]
    good = f"alice\0{USERS['alice']}\0\0".encode()

    def run(data, argv=prog):
        return run_on_fd3(
            inst.as_account([str(bindir / "checkpassword-cdb")] + argv),
            data, env)

    result = run(good)
    assert result.returncode == 0, result.stderr
    home = inst.path / "mail" / "alice"
    uid = inst.uid if qmtest.is_root() else os.getuid()
    assert result.stdout.decode().splitlines() == [
        str(uid), str(home), f"alice|{home}|/bin/sh"]
    for bad in (b"alice\0wrong\0\0", b"Alice\0correct horse\0\0",
                b"zed\0x\0\0", b"al:ice\0x\0\0", b"bob\0correct horse\0\0"):
        assert run(bad).returncode == 1, bad
    # -f names another cdb; a missing one is temporary.
    cdb = inst.path / "users" / "passwd.cdb"
    assert run(good, ["-f", str(cdb)] + prog).returncode == 0
    assert run(good, ["-f", str(cdb) + ".none"] + prog).returncode == 111
    assert run(good, ["-f"]).returncode == 2
    # Locked by hand: a '!' before the hash.
    text = (inst.path / "users" / "passwd").read_text()
    (inst.path / "users" / "passwd").write_text(
        text.replace("alice:", "alice:!", 1))
    assert inst.run([str(bindir / "qmail-passwd"),
                     "build"]).returncode == 0
    assert run(good).returncode == 1


def test_cdb_checkpassword_refuses_foreign_ids(inst, bindir):
    """Not root: an entry with another uid is a failed login."""
    add = inst.run([str(bindir / "qmail-passwd"), "-u", "54321", "-g",
                    "54321", "add", "dave"], input=b"pw\n")
    assert add.returncode == 0, add.stderr
    result = run_on_fd3(
        inst.as_account([str(bindir / "checkpassword-cdb"), "true"]),
        b"dave\0pw\0\0", inst.env())
    assert result.returncode == 1
    assert b"not mine to take" in result.stderr


# ---- qmail-passwd ----


def passwd_lines(inst):
    return (inst.path / "users" / "passwd").read_text().splitlines()


def test_passwd_files_and_modes(inst, bindir):
    users = inst.path / "users"
    for name in ("passwd", "passwd.cdb", "passwd.lock"):
        st = os.stat(users / name)
        assert stat.S_IMODE(st.st_mode) == 0o600, name
        if qmtest.is_root():
            assert (st.st_uid, st.st_gid) == (inst.uid, inst.gid), name
    lines = passwd_lines(inst)
    assert [line.split(":")[0] for line in lines] == ["alice", "bob"]
    login, hash_, uid, gid, home = lines[0].split(":", 4)
    assert hash_.startswith("$y$")
    assert home == str(inst.path / "mail" / "alice")
    if qmtest.is_root():
        assert (int(uid), int(gid)) == (inst.uid, inst.gid)
    assert not (users / "passwd.tmp").exists()
    assert not (users / "passwd.cdb.tmp").exists()


@root_only()
def test_passwd_as_root_gives_files_to_the_account(inst, bindir):
    add_user(bindir, inst, "carol", "c pw", as_root=True)
    for name in ("passwd", "passwd.cdb"):
        st = os.stat(inst.path / "users" / name)
        assert (st.st_uid, st.st_gid) == (inst.uid, inst.gid)
        assert stat.S_IMODE(st.st_mode) == 0o600
    line = passwd_lines(inst)[-1]
    assert line.split(":")[2:4] == [str(inst.uid), str(inst.gid)]


def test_passwd_change_remove_and_refusals(servers, bindir, inst):
    qp = str(bindir / "qmail-passwd")
    before = passwd_lines(inst)
    result = inst.run([qp, "add", "alice"], input=b"x\n")
    assert result.returncode == 100
    assert b"alice already exists" in result.stderr
    assert inst.run([qp, "change", "zed"], input=b"x\n").returncode == 100
    assert inst.run([qp, "remove", "zed"]).returncode == 100
    # Never a password in argv, never a bad login or an empty password.
    assert inst.run([qp, "add", "dave", "pw"]).returncode == 100
    assert inst.run([qp, "add", "da:ve"], input=b"pw\n").returncode == 100
    assert inst.run([qp, "add", "dave"], input=b"\n").returncode == 100
    assert inst.run([qp, "add", "dave"], input=b"").returncode == 100
    assert inst.run([qp, "add", "dave"],
                    input=b"x" * 600 + b"\n").returncode == 100
    assert inst.run([qp, "-u", "0", "add", "dave"],
                    input=b"pw\n").returncode == 100
    assert passwd_lines(inst) == before
    # change: the new password works, the old one does not.
    assert inst.run([qp, "change", "alice"],
                    input=b"new one\r\n").returncode == 0
    after = passwd_lines(inst)
    assert after[0] != before[0] and after[1] == before[1]
    server = start_submission(servers, bindir, inst)
    c = Client.to(server)
    c.reply()
    assert c.cmd1("AUTH PLAIN " + plain("alice", USERS["alice"])) == FAILED
    assert c.cmd1("AUTH PLAIN " + plain("alice", "new one")) == PLAIN_OK
    c.close()
    # remove: gone from both files.
    assert inst.run([qp, "remove", "bob"]).returncode == 0
    assert [line.split(":")[0] for line in passwd_lines(inst)] == ["alice"]
    c = Client.to(server)
    c.reply()
    assert c.cmd1("AUTH PLAIN " + plain("bob", USERS["bob"])) == FAILED


def test_passwd_build_checks_hand_edits(inst, bindir):
    qp = str(bindir / "qmail-passwd")
    users = inst.path / "users"
    cdb_before = (users / "passwd.cdb").read_bytes()
    text = (users / "passwd").read_text()
    (users / "passwd").write_text(text + "broken line\n")
    result = inst.run([qp, "build"])
    assert result.returncode == 111
    assert b"line 3 is malformed" in result.stderr
    assert (users / "passwd.cdb").read_bytes() == cdb_before
    (users / "passwd").write_text("# only a comment\n" + text)
    assert inst.run([qp, "build"]).returncode == 0
    assert inst.run([qp, "build", "x"]).returncode == 100


def test_passwd_waits_for_the_lock(inst, bindir):
    lock = inst.path / "users" / "passwd.lock"
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    proc = subprocess.Popen(
        inst.as_account([str(bindir / "qmail-passwd"), "add", "carol"]),
        env=inst.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        proc.stdin.write(b"pw\n")
        proc.stdin.close()
        time.sleep(1)
        assert proc.poll() is None  # waiting for us
        assert "carol" not in (inst.path / "users" / "passwd").read_text()
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert proc.wait(timeout=30) == 0
    assert passwd_lines(inst)[-1].startswith("carol:")


def test_passwd_concurrent_adds(inst, bindir):
    procs = []
    for i in range(6):
        procs.append(subprocess.Popen(
            inst.as_account([str(bindir / "qmail-passwd"), "add",
                             f"user{i}"]),
            env=inst.env(), stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for p in procs:
        p.stdin.write(b"pw\n")
        p.stdin.close()
    for p in procs:
        assert p.wait(timeout=60) == 0
    names = sorted(line.split(":")[0] for line in passwd_lines(inst))
    assert names == sorted(["alice", "bob"] + [f"user{i}" for i in range(6)])


# ---- POP3 ----


def start_pop3(servers, bindir, inst, as_root=False, env=None, **kw):
    return start(servers, inst, authup_argv(bindir, proto="pop3", **kw),
                 as_root=as_root, **(env or {}))


def put_mail(inst, box, name, text):
    path = inst.maildir(box) / "new" / name
    path.write_bytes(text)
    if qmtest.is_root():
        os.chown(path, inst.uid, inst.gid)


def test_pop3_login_and_mail(servers, bindir, inst):
    put_mail(inst, "alice", "1.1.host", b"Subject: one\n\nfirst\n")
    server = start_pop3(servers, bindir, inst)
    pop = poplib.POP3("127.0.0.1", server.port, timeout=20)
    welcome = pop.getwelcome().decode()
    assert re.fullmatch(r"\+OK <\d+\.\d+@example\.test>", welcome), welcome
    caps = pop.capa()
    assert "USER" in caps and "TOP" in caps and "UIDL" in caps
    assert "STLS" not in caps
    assert pop.user("alice").startswith(b"+OK")
    assert pop.pass_(USERS["alice"]).startswith(b"+OK")
    assert pop.stat()[0] == 1
    assert b"first" in b"\n".join(pop.retr(1)[1])
    pop.quit()
    assert wait_end_status(server) == 0


POP3_BAD = [
    pytest.param(["PASS x"], ["-ERR USER first"], id="pass-before-user"),
    pytest.param(["USER"], ["-ERR malformed user name"], id="empty-user"),
    pytest.param(["USER "], ["-ERR malformed user name"], id="blank-user"),
    pytest.param(["USER alice", "PASS"], ["+OK", "-ERR malformed password"],
                 id="empty-password"),
    pytest.param(["APOP alice 0123456789abcdef"], ["-ERR APOP not supported"],
                 id="apop"),
    pytest.param(["STAT"], ["-ERR authorization first"], id="stat"),
    pytest.param(["STLS"], ["-ERR TLS not available"], id="stls-unavailable"),
    pytest.param(["USER alice", "PASS a\0b"], ["+OK", "-ERR NUL in command"],
                 id="password-with-nul"),
    pytest.param(["USER " + "a" * 2000], ["-ERR line too long"],
                 id="long-line"),
]


@pytest.mark.parametrize("lines,replies", POP3_BAD)
def test_pop3_bad_input(servers, bindir, inst, lines, replies):
    server = start_pop3(servers, bindir, inst)
    c = Client.to(server)
    assert c.line().startswith("+OK <")
    assert [c.cmd1(line) for line in lines] == replies
    assert c.cmd1("USER alice") == "+OK"
    assert c.cmd1("PASS " + USERS["alice"]).startswith("+OK")
    assert c.cmd1("QUIT").startswith("+OK")


def test_pop3_failure_ends_the_session(servers, bindir, inst):
    server = start_pop3(servers, bindir, inst)
    c = Client.to(server)
    c.line()
    assert c.cmd1("USER alice") == "+OK"
    assert c.cmd1("PASS wrong") == "-ERR authorization failed"
    assert c.closed()
    assert wait_end_status(server) == GIVEUP


def test_pop3_more_tries_and_quit(servers, bindir, inst):
    server = start_pop3(servers, bindir, inst, tries=3)
    c = Client.to(server)
    c.line()
    assert c.cmd1("USER alice") == "+OK"
    assert c.cmd1("PASS wrong") == "-ERR authorization failed"
    assert c.cmd1("PASS " + USERS["alice"]) == "-ERR USER first"
    assert c.cmd1("QUIT") == "+OK"
    assert c.closed()
    assert wait_end_status(server) == 0


def test_pop3_password_with_blanks(servers, bindir, inst):
    server = start_pop3(servers, bindir, inst)
    pop = poplib.POP3("127.0.0.1", server.port, timeout=20)
    pop.user("bob")
    assert pop.pass_(USERS["bob"]).startswith(b"+OK")
    pop.quit()


@root_only()
def test_pop3d_runs_as_the_user(servers, bindir, inst):
    server = start_pop3(servers, bindir, inst, as_root=True,
                        prog=[str(bindir / "checknotroot"),
                              str(bindir / "qmail-pop3d"), "Maildir"])
    c = Client.to(server)
    c.line()
    c.cmd1("USER alice")
    assert c.cmd1("PASS " + USERS["alice"]).startswith("+OK")
    pids = wait_for(lambda: members_named(server, "qmail-pop3d"))
    assert proc_ids(pids[0])["Uid"] == [inst.uid] * 4
    assert c.cmd1("QUIT").startswith("+OK")


def test_pop3_greeting_and_capabilities_from_control(servers, bindir, inst):
    inst.control("pop3greeting", "pop.example.test\n")
    inst.control("pop3capabilities", "TOP\nX-ONE\n")
    server = start_pop3(servers, bindir, inst)
    c = Client.to(server)
    assert re.fullmatch(r"\+OK <\d+\.\d+@pop\.example\.test>", c.line())
    c.send("CAPA\r\n")
    lines = []
    while not lines or lines[-1] != ".":
        lines.append(c.line())
    assert lines == ["+OK capability list follows", "USER", "TOP", "X-ONE",
                     "."]


def test_pop3_timestamp_reaches_checkpassword(servers, bindir, inst):
    out = account_dir(inst, "seen", mode=0o777)
    spy = script(inst, "spy-cpw", f"""#!/bin/sh
# Keeps the input, then fails the login.
cat <&3 > {out}/input
exit 1
""")
    server = start_pop3(servers, bindir, inst, cpw=[spy])
    c = Client.to(server)
    stamp = c.line()[4:]
    c.cmd1("USER alice")
    assert c.cmd1("PASS pw") == "-ERR authorization failed"
    assert (out / "input").read_bytes() == \
        b"alice\0pw\0" + stamp.encode() + b"\0"


# ---- TLS ----


def tls_programs_missing(bindir):
    return not (bindir / "sslserver").exists()


@pytest.fixture(scope="session")
def tls_cert(qm_session_dir):
    """A self-signed certificate for localhost, with its key."""
    d = qm_session_dir / "auth-tls"
    d.mkdir(mode=0o755)
    result = subprocess.run(
        ["openssl", "req", "-x509", "-nodes", "-newkey", "rsa:2048",
         "-keyout", "key.pem", "-out", "cert.pem", "-days", "2",
         "-subj", "/CN=localhost", "-addext",
         "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        cwd=d, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    pem = d / "server.pem"
    pem.write_bytes((d / "cert.pem").read_bytes()
                    + (d / "key.pem").read_bytes())
    pem.chmod(0o644)
    return {"pem": pem, "ca": d / "cert.pem"}


def tls_context(tls_cert):
    return ssl.create_default_context(cafile=str(tls_cert["ca"]))


def start_tls_server(servers, bindir, inst, tls_cert, argv, policy="!",
                     **extra):
    """argv under `sslserver -n` as the seed's run script has it, the
    application as the instance's account."""
    if tls_programs_missing(bindir):
        pytest.skip("sslserver is not built yet")
    env = inst.env()
    env.update({"UCSPITLS": policy, "CERTFILE": str(tls_cert["pem"])})
    env.update(extra)
    ids = []
    if qmtest.is_root():
        env.update({"SSL_UID": str(inst.uid), "SSL_GID": str(inst.gid)})
        ids = ["-u", str(inst.uid), "-g", str(inst.gid)]
    log_path = servers.logbook.new("server-sslserver")
    for _ in range(servers.BIND_ATTEMPTS):
        port = qmtest.free_port("127.0.0.1")
        full = ([str(bindir / "sslserver"), "-ne", "-vRl", "example.test"]
                + ids + ["127.0.0.1", str(port)] + argv)
        server = servers._spawn(full, env, inst.path, "127.0.0.1", port,
                                log_path)
        if servers._wait_ready(server):
            servers.running.append(server)
            return server
        if not qmtest.port_taken(server, server.log_text()):
            raise qmtest.ServerError(server.log_text())
    raise qmtest.ServerError("no free port")


def test_starttls_then_auth(servers, bindir, inst, tls_cert):
    recorder = Recorder(inst)
    argv = authup_argv(bindir, reup=5)
    server = start_tls_server(servers, bindir, inst, tls_cert, argv,
                              QMAILQUEUE=recorder.program)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as smtp:
        smtp.ehlo("client.example")
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
        code, text = smtp.docmd("AUTH", "PLAIN " + plain("alice", "x"))
        assert (code, text.decode()) == (530, NEED_TLS[4:])
        smtp.starttls(context=tls_context(tls_cert))
        smtp.ehlo("client.example")
        assert smtp.has_extn("auth")
        assert not smtp.has_extn("starttls")
        assert smtp.docmd("STARTTLS") == (502, b"TLS not available (#5.5.1)")
        smtp.user, smtp.password = "alice", USERS["alice"]
        assert smtp.auth("PLAIN", smtp.auth_plain)[0] == 235
        send_message(smtp)
    records = wait_for(recorder.records)
    assert b" with ESMTPSA" in records[0][0].split(b"\n")[1]


def test_failed_logins_after_starttls_stay_encrypted(servers, bindir, inst,
                                                     tls_cert):
    """The seed pipeline: four failures and a success after STARTTLS on
    one connection, one greeting, nothing in cleartext after TLS."""
    argv = authup_argv(bindir, reup=5, prog=[
        str(bindir / "checknotroot"), str(bindir / "qmail-ofmipd")])
    server = start_tls_server(servers, bindir, inst, tls_cert, argv)
    raw = server.connect(timeout=20)
    c = Client(raw)
    assert c.reply() == ["220 example.test ESMTP"]
    assert c.cmd("EHLO x")[1] == "250-STARTTLS"
    assert c.cmd1("STARTTLS") == "220 ready for tls"
    tls = tls_context(tls_cert).wrap_socket(raw, server_hostname="localhost")
    c = Client(tls)
    assert "250-AUTH LOGIN PLAIN" in c.cmd("EHLO x")
    for _ in range(4):
        assert c.cmd1("AUTH PLAIN " + plain("alice", "wrong")) == FAILED
    assert c.cmd1("AUTH LOGIN " + b64("alice")) == PASSWORD
    assert c.cmd1(b64(USERS["alice"])) == PLAIN_OK
    assert c.cmd1("MAIL FROM:<alice@example.test>") == "250 ok"
    assert c.cmd1("QUIT").startswith("221")
    tls.close()
    # Exactly one qmail-authup ran for the connection.
    log = server.log_text()
    assert log.count("login failed for alice") == 4


def test_fifth_failure_after_starttls(servers, bindir, inst, tls_cert):
    argv = authup_argv(bindir, reup=5)
    server = start_tls_server(servers, bindir, inst, tls_cert, argv)
    raw = server.connect(timeout=20)
    c = Client(raw)
    c.reply()
    assert c.cmd1("STARTTLS") == "220 ready for tls"
    tls = tls_context(tls_cert).wrap_socket(raw, server_hostname="localhost")
    c = Client(tls)
    for _ in range(4):
        assert c.cmd1("AUTH PLAIN " + plain("alice", "wrong")) == FAILED
    assert c.cmd("AUTH PLAIN " + plain("alice", "wrong")) == LAST_FAILURE
    with pytest.raises((EOFError, ssl.SSLError, ConnectionError)):
        c.line()  # the session ends, with no new greeting


def spy_checkpassword(inst, bindir):
    """checkpassword-cdb behind a wrapper that notes every run."""
    runs = inst.path / "cpw-runs"
    spy = script(inst, "spy-cdb", f"""#!/bin/sh
# Notes the run, then checks the password for real.
echo run >> {runs}
exec {bindir}/checkpassword-cdb "$@"
""")
    return runs, spy


@pytest.mark.parametrize("proto", ["smtp", "pop3"])
def test_commands_pipelined_after_starttls_are_dropped(servers, bindir,
                                                       inst, tls_cert,
                                                       proto):
    """CVE-2011-0411: what follows STARTTLS/STLS in the same packet is
    never executed, neither in cleartext nor inside TLS."""
    runs, spy = spy_checkpassword(inst, bindir)
    argv = authup_argv(bindir, proto=proto, cpw=[spy])
    server = start_tls_server(servers, bindir, inst, tls_cert, argv,
                              policy="")
    raw = server.connect(timeout=20)
    c = Client(raw)
    if proto == "smtp":
        c.reply()
        c.send("STARTTLS\r\nAUTH PLAIN " + plain("alice", USERS["alice"])
               + "\r\n")
        assert c.line() == "220 ready for tls"
    else:
        c.line()
        c.send(f"STLS\r\nUSER alice\r\nPASS {USERS['alice']}\r\n")
        assert c.line() == "+OK begin TLS negotiation"
    try:
        tls = tls_context(tls_cert).wrap_socket(raw,
                                                server_hostname="localhost")
        tls.settimeout(3)
        data = tls.recv(4096)
    except (ssl.SSLError, ConnectionError, OSError):
        data = b""
    assert b"235" not in data and b"+OK" not in data
    time.sleep(0.5)
    assert not runs.exists()  # checkpassword never ran


def test_pop3_stls_then_login(servers, bindir, inst, tls_cert):
    argv = authup_argv(bindir, proto="pop3")
    server = start_tls_server(servers, bindir, inst, tls_cert, argv)
    raw = server.connect(timeout=20)
    c = Client(raw)
    assert c.line().startswith("+OK <")
    c.send("CAPA\r\n")
    lines = []
    while not lines or lines[-1] != ".":
        lines.append(c.line())
    assert "STLS" in lines and "USER" not in lines
    assert c.cmd1("USER alice") == "-ERR Must issue an STLS command first"
    assert c.cmd1("PASS x") == "-ERR Must issue an STLS command first"
    assert c.cmd1("STLS x") == "-ERR STLS takes no arguments"
    assert c.cmd1("STLS") == "+OK begin TLS negotiation"
    tls = tls_context(tls_cert).wrap_socket(raw, server_hostname="localhost")
    c = Client(tls)
    c.send("CAPA\r\n")
    lines = []
    while not lines or lines[-1] != ".":
        lines.append(c.line())
    assert "STLS" not in lines and "USER" in lines
    assert c.cmd1("STLS") == "-ERR TLS not available"
    assert c.cmd1("USER alice") == "+OK"
    assert c.cmd1("PASS " + USERS["alice"]).startswith("+OK")
    assert c.cmd1("QUIT").startswith("+OK")


FD3_WRAPPER = """#!/bin/sh
# Puts the UCSPI-TLS descriptor named by $1 on fd 3, as ucspi-ssl may,
# and notes what it is.
case $1 in
ctl) eval "exec 3<&$SSLCTLFD $SSLCTLFD<&-"; SSLCTLFD=3 ;;
data) eval "exec 3<&$SSLREADFD $SSLREADFD<&-"; SSLREADFD=3; SSLWRITEFD=3 ;;
esac
export SSLCTLFD SSLREADFD SSLWRITEFD
readlink /proc/$$/fd/3 > {out}/fd3
shift
exec "$@"
"""

FD3_SPY = """#!/bin/sh
# Notes the TLS descriptors checkpassword inherits, then checks for real.
for v in SSLCTLFD SSLREADFD SSLWRITEFD; do
    eval "n=\\$$v"
    echo "$v=$n $(readlink /proc/$$/fd/$n)" >> {out}/seen
done
echo "0 $(readlink /proc/$$/fd/0)" >> {out}/seen
exec {bindir}/checkpassword-cdb "$@"
"""


@pytest.mark.parametrize("which", ["ctl", "data"])
@pytest.mark.parametrize("starttls", [True, False], ids=["tls", "clear"])
def test_tls_descriptor_on_fd3(servers, bindir, inst, tls_cert, which,
                               starttls):
    """ucspi-ssl may hand out fd 3, checkpassword's input: authup moves it
    first, and the child still has its TLS descriptors (on 0 and 1 once
    TLS runs)."""
    out = account_dir(inst, "fd3", mode=0o777)
    wrap = script(inst, "fd3-wrap", FD3_WRAPPER.replace("{out}", str(out)))
    spy = script(inst, "fd3-spy", FD3_SPY.replace("{out}", str(out))
                 .replace("{bindir}", str(bindir)))
    argv = [wrap, which] + authup_argv(bindir, cpw=[spy], reup=5)
    server = start_tls_server(servers, bindir, inst, tls_cert, argv,
                              policy="")
    raw = server.connect(timeout=20)
    c = Client(raw)
    assert c.reply() == ["220 example.test ESMTP"]
    if starttls:
        assert c.cmd1("STARTTLS") == "220 ready for tls"
        c = Client(tls_context(tls_cert).wrap_socket(
            raw, server_hostname="localhost"))
    assert c.cmd1("AUTH PLAIN " + plain("alice", "wrong")) == FAILED
    assert c.cmd1("AUTH PLAIN " + plain("alice", USERS["alice"])) == \
        PLAIN_OK
    assert c.cmd1("MAIL FROM:<alice@example.test>") == "250 ok"
    assert c.cmd1("QUIT").startswith("221")
    fd3 = (out / "fd3").read_text().strip()
    assert fd3.startswith("socket:")
    seen = (out / "seen").read_text().splitlines()
    assert len(seen) == 8  # two runs of four lines
    for run in (seen[:4], seen[4:]):
        fds = dict(line.split(" ", 1) for line in run)
        ctl = [k for k in fds if k.startswith("SSLCTLFD=")][0]
        assert ctl != "SSLCTLFD=3" and fds[ctl].startswith("socket:")
        if starttls:
            # The TLS data socket is on 0 and 1, and named so.
            assert "SSLREADFD=0" in fds and "SSLWRITEFD=1" in fds
            if which == "data":
                assert fds["0"] == fd3
        else:
            rd = [k for k in fds if k.startswith("SSLREADFD=")][0]
            assert rd != "SSLREADFD=3" and fds[rd].startswith("socket:")
            if which == "data":
                assert fds[rd] == fd3
            else:
                assert fds[ctl] == fd3
