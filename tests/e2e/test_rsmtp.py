"""qmail-rsmtp against a scripted SMTP server on pipes: no network at all.

The real binary runs with the message on fd 0, the server's replies on
fd 6 and its commands going out on fd 7, as under tcpclient. A script
plays the server: each step waits for the bytes the client must send
next, then answers, hangs up, goes silent or stops reading. Every test asserts the
whole transcript the client sent, the exact report bytes on fd 1 and the
exit code. The harness must never leave a process behind, and no test
may wait on the client for longer than the timeout it set plus a margin.
A known bug in the client is a strict xfail that says what is wrong, so
the test starts to count the moment the bug is fixed.
"""

import base64
import fcntl
import os
import pathlib
import select
import socket
import subprocess
import tempfile
import time

import pytest

import qmtest

REPO = pathlib.Path(__file__).resolve().parents[2]

# ---- the harness ----

CLOSE = "CLOSE"    # the server hangs up: EOF on fd 6, EPIPE on fd 7
SILENT = "SILENT"  # the server reads on but never answers again
STALL = "STALL"    # the server neither answers nor reads again
STEP_WAIT = 10     # seconds a step may wait for the client's bytes


def rsmtp_binary():
    build = pathlib.Path(os.environ.get("QM_BUILD") or REPO / "build")
    path = build / "bin" / "qmail-rsmtp"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run make first (or set QM_BUILD)",
                    pytrace=False)
    return path


class Result:
    """What one run produced: exit code, report bytes (fd 1), everything
    the client sent (fd 7), the transcript as it stood when each step's
    reply went out, and how long the client took after the server went
    silent, stalled or hung up."""

    def __init__(self):
        self.code = None
        self.report = b""
        self.transcript = b""
        self.snapshots = []
        self.after_action = None
        self.elapsed = None


def reserve_fds_6_and_7(*more):
    """Keeps fds 6 and 7 (and more) open in this process: subprocess
    marks pass_fds inheritable before preexec_fn runs and fails on a
    closed one, and a free 6 or 7 could be handed to a pipe that the
    child then loses."""
    for fd in (6, 7) + more:
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            if null != fd:
                os.dup2(null, fd, inheritable=False)
                os.close(null)


def high_pipe():
    """A pipe whose ends sit at fd 10 or above, so that dup2 onto 6 and 7
    in the child can never overwrite the other end."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends


class Server:
    """The test's side of the two pipes."""

    def __init__(self, from_client, to_client, result):
        self.from_client = from_client
        self.to_client = to_client
        self.result = result
        self.received = bytearray()
        self.pos = 0

    def read_some(self, wait):
        """Reads what the client sent within wait seconds; False at EOF."""
        if self.from_client is None:
            return False
        ready, _, _ = select.select([self.from_client], [], [], wait)
        if not ready:
            return True
        data = os.read(self.from_client, 65536)
        self.received += data
        return bool(data)

    def drain_now(self):
        """Takes in whatever the client has sent by now."""
        while self.from_client is not None:
            ready, _, _ = select.select([self.from_client], [], [], 0)
            if not ready or not self.read_some(0):
                return

    def expect(self, wanted):
        """Waits until the client's next bytes are wanted, and consumes
        them. Bytes that cannot start wanted fail the step at once, so a
        wrong client costs no timeout."""
        deadline = time.monotonic() + STEP_WAIT
        while True:
            have = bytes(self.received[self.pos:self.pos + len(wanted)])
            if have == wanted:
                self.pos += len(wanted)
                return
            left = deadline - time.monotonic()
            if (not wanted.startswith(have) or left <= 0 or
                    not self.read_some(left)):
                raise AssertionError(
                    f"client should have sent {wanted!r} after byte "
                    f"{self.pos}, but sent "
                    f"{bytes(self.received[self.pos:])!r}")

    def say(self, data):
        try:
            os.write(self.to_client, data)
        except BrokenPipeError:
            pass  # the client is gone; the report tells why

    def hang_up_sending(self):
        if self.to_client is not None:
            os.close(self.to_client)
            self.to_client = None

    def hang_up_reading(self):
        if self.from_client is not None:
            os.close(self.from_client)
            self.from_client = None

    def drain_until_eof(self, deadline):
        while self.from_client is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("client still running at the deadline")
            if not self.read_some(left):
                return


def play(server, proc, script, settle, give_up):
    """Runs the script; returns when the client has exited or must be
    killed. An action (CLOSE, SILENT, STALL) ends the script."""
    result = server.result
    for expect, reply in script:
        if expect is not None:
            server.expect(expect)
        if callable(reply):  # a step of the test's own, e.g. TLS
            reply(server)
            continue
        if reply in (CLOSE, SILENT, STALL):
            started = time.monotonic()
            if reply == CLOSE:
                server.hang_up_sending()
                server.hang_up_reading()
            elif reply == SILENT:
                server.drain_until_eof(time.monotonic() + give_up)
            proc.wait(timeout=give_up)
            result.after_action = time.monotonic() - started
            return
        if settle:
            time.sleep(settle)
        server.drain_now()
        result.snapshots.append(bytes(server.received))
        server.say(reply)
    # The script is over: the server stops talking and hears the rest.
    server.hang_up_sending()
    server.drain_until_eof(time.monotonic() + give_up)
    proc.wait(timeout=give_up)


def spawn(argv, env, message, client_in, client_out, log_path, extra_fds):
    """Starts the client with fd 0 a file holding message, fds 6 and 7
    the given pipe ends (and each target of extra_fds its source), stdout
    a pipe and stderr the log."""

    def preexec():
        os.dup2(client_in, 6)
        os.dup2(client_out, 7)
        for target, source in extra_fds.items():
            os.dup2(source, target)

    full_env = {"PATH": "/usr/bin:/bin"}
    full_env.update(qmtest.SANITIZER_ENV)
    full_env.update(env)
    with tempfile.TemporaryFile() as msg, \
            open(log_path or os.devnull, "wb") as stderr:
        msg.write(message)
        msg.seek(0)
        return subprocess.Popen(
            [os.fsencode(a) for a in argv], stdin=msg,
            stdout=subprocess.PIPE, stderr=stderr,
            env={os.fsencode(k): os.fsencode(v)
                 for k, v in full_env.items()},
            preexec_fn=preexec, pass_fds=(6, 7, *extra_fds))


def run_rsmtp(script, message, sender, rcpts, env, log_path=None,
              settle=0.0, args=None, extra_fds=None):
    """Runs qmail-rsmtp against script; returns a Result.

    script is a list of (bytes the client must send next, or None;
    the server's reply bytes, or CLOSE, SILENT or STALL, or a function
    called with the Server). settle waits that long before each reply,
    so a snapshot shows whether the client sent more than it should
    have before the answer. extra_fds maps descriptors of the client to
    descriptors here (10 or above), which stay the caller's."""
    extra_fds = extra_fds or {}
    reserve_fds_6_and_7(*extra_fds)
    result = Result()
    timeout = int(env.get("RSMTP_TIMEOUT", "1200"))
    give_up = min(timeout, 60) + 10
    argv = [str(rsmtp_binary())] + (args if args is not None
                                     else ["--", sender] + list(rcpts))
    from_client, client_out = high_pipe()
    client_in, to_client = high_pipe()
    server = Server(from_client, to_client, result)
    proc = None
    try:
        started = time.monotonic()
        try:
            proc = spawn(argv, env, message, client_in, client_out,
                         log_path, extra_fds)
        finally:
            os.close(client_in)
            os.close(client_out)
        play(server, proc, script, settle, give_up)
        result.elapsed = time.monotonic() - started
        result.report = proc.stdout.read()
        result.code = proc.returncode
        # Whatever the client wrote before it exited is still in the pipe.
        server.drain_until_eof(time.monotonic() + 5)
        result.transcript = bytes(server.received)
    finally:
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        server.hang_up_sending()
        server.hang_up_reading()
    return result


# ---- the conversation's pieces ----

IP = "192.0.2.7"
HOST = "mx.example.net"
HELO = "relay.example.org"
SENDER = "alice@example.org"
RCPT = "bob@example.net"
RCPTS = ["bob@example.net", "carol@example.net"]
ENV = {"RSMTP_HOST": HOST, "RSMTP_HELO": HELO, "RSMTP_TIMEOUT": "3",
       "TCPREMOTEIP": IP}

GREETING = b"220 mx.example.net ESMTP\r\n"
EHLO = b"EHLO relay.example.org\r\n"
HELO_CMD = b"HELO relay.example.org\r\n"
MAIL = b"MAIL FROM:<alice@example.org>\r\n"
DATA = b"DATA\r\n"
QUIT = b"QUIT\r\n"
OK = b"250 ok\r\n"
GO = b"354 go ahead\r\n"
BYE = b"221 bye\r\n"
QUEUED = b"250 ok 1234 qp 99\r\n"
MESSAGE = b"Subject: hi\n\nhello\n"
WIRE = b"Subject: hi\r\n\r\nhello\r\n.\r\n"
WIRE_SIZE = len(WIRE) - 3  # what SIZE= must say: no final dot
RCPT_ACCEPTED = b"r\0"


def rcpt_cmd(address):
    return b"RCPT TO:<" + address.encode() + b">\r\n"


def ehlo_reply(*caps):
    lines = [b"mx.example.net"] + [c.encode() for c in caps]
    return b"".join(b"250" + (b" " if i == len(lines) - 1 else b"-") + line
                    + b"\r\n" for i, line in enumerate(lines))


def final(kind, text, said=None):
    """A message report made by the client's final()."""
    out = f"{kind}Connected to {IP} but {text}"
    if said is not None:
        out += f"\nRemote host said: {said}"
    return out.encode() + b"\0"


def rcpt_report(kind, said):
    return (f"{kind}{IP} does not like recipient.\nRemote host said: "
            f"{said}\0").encode()


def delivered(said="250 ok 1234 qp 99"):
    return f"K{IP} accepted message.\nRemote host said: {said}\0".encode()


DIED = final("Z", "the connection died. (#4.4.2)")
TIMED_OUT = final("Z", "the connection timed out. (#4.4.2)")
BROKE = final("Z", "the server broke the SMTP protocol. (#4.4.2)")
NO_UTF8 = final("D", "it does not support SMTPUTF8, which this message "
                "needs for its non-ASCII addresses or header. (#5.6.7)")
TOO_BIG = final("D", "the message is larger than the server accepts. "
                "(#5.3.4)")
PARTIAL = (b"DThe message has a partial last line; I will not send it. "
           b"(#5.6.2)\0")


def opening(*caps):
    return [(None, GREETING), (EHLO, ehlo_reply(*caps))]


def plain_dialogue(rcpts=(RCPT,), wire=WIRE, caps=()):
    """A whole delivery, one command at a time."""
    script = opening(*caps) + [(MAIL, OK)]
    script += [(rcpt_cmd(r), OK) for r in rcpts]
    return script + [(DATA, GO), (wire, QUEUED), (QUIT, BYE)]


def joined(script):
    return b"".join(expect for expect, _ in script if expect is not None)


@pytest.fixture
def rsmtp(qm_logbook):
    """rsmtp(script, message=..., sender=..., rcpts=..., **env) -> Result;
    the client's stderr goes to the test's log book."""

    def run(script, message=MESSAGE, sender=SENDER, rcpts=(RCPT,),
            settle=0.0, args=None, env=None, extra_fds=None, **extra):
        full = dict(ENV if env is None else env)
        full.update({k: str(v) for k, v in extra.items()})
        return run_rsmtp(script, message, sender, rcpts, full,
                         log_path=qm_logbook.new("qmail-rsmtp"),
                         settle=settle, args=args, extra_fds=extra_fds)

    return run


def check(result, code, report, transcript):
    assert result.transcript == transcript
    assert result.report == report
    assert result.code == code


# ---- deliveries that work ----


def test_plain_delivery_one_command_at_a_time(rsmtp):
    """No PIPELINING offered: each command waits for the previous reply,
    which each snapshot proves (nothing beyond the command answered)."""
    script = plain_dialogue(RCPTS)
    result = rsmtp(script, rcpts=RCPTS, settle=0.1)
    check(result, 0, RCPT_ACCEPTED * 2 + delivered(), joined(script))
    expected_so_far = b""
    for (expect, _), seen in zip(script, result.snapshots):
        expected_so_far += expect or b""
        assert seen == expected_so_far


def test_pipelining_sends_envelope_in_one_go(rsmtp):
    """MAIL, every RCPT and DATA arrive before the server has answered
    anything after EHLO; the replies are then read in order."""
    envelope = MAIL + rcpt_cmd(RCPTS[0]) + rcpt_cmd(RCPTS[1]) + DATA
    script = opening("PIPELINING") + [
        (envelope, OK + OK + OK + GO),
        (WIRE, QUEUED),
        (QUIT, BYE),
    ]
    result = rsmtp(script, rcpts=RCPTS, settle=0.1)
    check(result, 0, RCPT_ACCEPTED * 2 + delivered(), joined(script))
    assert result.snapshots[2] == EHLO + envelope


def test_pipelining_keyword_is_case_insensitive(rsmtp):
    envelope = MAIL + rcpt_cmd(RCPT) + DATA
    script = opening("pipelining") + [(envelope, OK + OK + GO),
                                      (WIRE, QUEUED), (QUIT, BYE)]
    result = rsmtp(script)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


def test_server_using_bare_lf_is_understood(rsmtp):
    script = [(None, b"220 mx\n"), (EHLO, b"250-mx\n250 SIZE\n"),
              (f"MAIL FROM:<{SENDER}> SIZE={WIRE_SIZE}\r\n".encode(),
               b"250 ok\n"),
              (rcpt_cmd(RCPT), b"250 ok\n"), (DATA, b"354 go\n"),
              (WIRE, b"250 done\n"), (QUIT, b"221 bye\n")]
    result = rsmtp(script)
    check(result, 0, RCPT_ACCEPTED + delivered("250 done"), joined(script))


def test_multi_line_replies_are_joined_with_slashes(rsmtp):
    script = opening() + [
        (MAIL, b"250-sender\r\n250-looks\r\n250 fine\r\n"),
        (rcpt_cmd(RCPT), b"250-one\r\n250 two\r\n"),
        (DATA, b"354-first\r\n354 then send\r\n"),
        (WIRE, b"250-accepted\r\n250-as\r\n250 12345\r\n"),
        (QUIT, BYE),
    ]
    result = rsmtp(script)
    check(result, 0,
          RCPT_ACCEPTED + delivered("250-accepted/250-as/250 12345"),
          joined(script))


def test_unsafe_bytes_in_reply_text_cannot_reach_the_report(rsmtp):
    """A NUL, a newline or a control byte from the server would end or
    forge a report record: they come out as '?'."""
    script = opening() + [(MAIL, OK),
                          (rcpt_cmd(RCPT), b"550 no\0r\x01\xff\tx\r\n"),
                          (QUIT, BYE)]
    result = rsmtp(script)
    check(result, 0,
          rcpt_report("h", "550 no?r???x") +
          final("D", "no recipient was accepted."),
          joined(script))


def test_defaults_without_helo_and_remote_ip(rsmtp):
    """No RSMTP_HELO: EHLO localhost; no TCPREMOTEIP: reports name
    RSMTP_HOST."""
    env = {"RSMTP_HOST": HOST, "RSMTP_TIMEOUT": "5"}
    script = [(None, GREETING), (b"EHLO localhost\r\n", ehlo_reply()),
              (MAIL, b"553 no\r\n"), (QUIT, BYE)]
    result = rsmtp(script, env=env)
    check(result, 0, (f"DConnected to {HOST} but sender was rejected.\n"
                      "Remote host said: 553 no\0").encode(), joined(script))


def test_helo_name_with_space_is_not_sent(rsmtp):
    script = [(None, GREETING), (b"EHLO localhost\r\n", b"421 no\r\n"),
              (QUIT, BYE)]
    result = rsmtp(script, RSMTP_HELO="evil\r\nRSET")
    check(result, 0, final("Z", "my name was rejected.", "421 no"),
          joined(script))


def test_usage_without_recipients(rsmtp):
    result = rsmtp([], args=["--", SENDER])
    check(result, 100, b"", b"")


# ---- STARTTLS with no TLS program; what an address may carry ----


@pytest.mark.parametrize("policy", [None, "try", "off"])
def test_starttls_offered_but_no_tls_program(rsmtp, policy):
    """Without UCSPI-TLS descriptors there is no STARTTLS to try: unless
    TLS is required, the mail goes in cleartext."""
    script = plain_dialogue(caps=("STARTTLS",))
    extra = {"RSMTP_TLS": policy} if policy else {}
    result = rsmtp(script, **extra)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


@pytest.mark.parametrize("caps,why", [
    ((), "it does not offer STARTTLS, which I require for it. (#4.7.0)"),
    (("STARTTLS",), "I require TLS for it and no TLS program is running. "
                    "(#4.7.0)")])
def test_tls_required_but_impossible(rsmtp, caps, why):
    script = opening(*caps) + [(QUIT, BYE)]
    result = rsmtp(script, RSMTP_TLS="require")
    check(result, 0, final("Z", why), joined(script))


@pytest.mark.parametrize("who", ["sender", "recipient"])
@pytest.mark.parametrize("eol", ["\r\n", "\n", "\r"],
                         ids=["crlf", "lf", "cr"])
def test_no_command_injection_through_addresses(rsmtp, who, eol):
    """Whatever becomes of such an address, every CR and LF on the wire
    ends a command, and the injected text never becomes one."""
    evil = f"x@example.net{eol}RSET"
    script = [(None, GREETING + ehlo_reply() + OK * 4)]
    result = rsmtp(script, sender=evil if who == "sender" else SENDER,
                   rcpts=[evil if who == "recipient" else RCPT])
    lines = result.transcript.split(b"\r\n")
    assert lines[-1] == b""
    for line in lines[:-1]:
        assert b"\r" not in line and b"\n" not in line
        assert not line.startswith(b"RSET")


# ---- the greeting ----


@pytest.mark.parametrize("greeting", [b"421 too busy\r\n",
                                      b"554 go away\r\n",
                                      b"554-go\r\n554 away\r\n"])
def test_greeting_not_2xx_means_next_address(rsmtp, greeting):
    script = [(None, greeting), (QUIT, BYE)]
    result = rsmtp(script)
    check(result, 75, b"", QUIT)


def test_greeting_not_2xx_and_quit_unanswered(rsmtp):
    """A server that hangs up instead of answering QUIT changes nothing."""
    result = rsmtp([(None, b"421 busy\r\n"), (QUIT, CLOSE)])
    check(result, 75, b"", QUIT)


@pytest.mark.parametrize("greeting", [b"", b"220 mx.example.net ESMTP"])
def test_no_greeting_means_next_address(rsmtp, greeting):
    result = rsmtp([(None, greeting), (None, CLOSE)])
    check(result, 75, b"", b"")


@pytest.mark.parametrize("greeting", [
    b"SSH-2.0-OpenSSH_9.2\r\n",
    b"220-mx\r\n230 mixed\r\n",
    b"220 " + b"x" * 3000 + b"\r\n",
    b"".join(b"220-x\r\n" for _ in range(150)) + b"220 x\r\n",
], ids=["garbage", "mixed-codes", "long-line", "too-many-lines"])
def test_garbage_greeting_means_next_address(rsmtp, greeting):
    result = rsmtp([(None, greeting)])
    check(result, 75, b"", b"")


# ---- EHLO and HELO ----


def test_ehlo_rejected_then_helo(rsmtp):
    """An old server: HELO, then no ESMTP at all, so one command at a
    time and no BODY= for an 8-bit message."""
    message = b"Subject: cafe\n\ncaf\xc3\xa9\n"
    wire = b"Subject: cafe\r\n\r\ncaf\xc3\xa9\r\n.\r\n"
    script = [(None, GREETING), (EHLO, b"502 what?\r\n"), (HELO_CMD, OK),
              (MAIL, OK), (rcpt_cmd(RCPT), OK), (DATA, GO), (wire, QUEUED),
              (QUIT, BYE)]
    result = rsmtp(script, message=message, settle=0.05)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))
    assert result.snapshots[3] == EHLO + HELO_CMD + MAIL


def test_ehlo_4xx_is_temporary(rsmtp):
    script = [(None, GREETING), (EHLO, b"421-not now\r\n421 later\r\n"),
              (QUIT, BYE)]
    result = rsmtp(script)
    check(result, 0,
          final("Z", "my name was rejected.", "421-not now/421 later"),
          joined(script))


@pytest.mark.parametrize("reply,kind", [(b"550 who are you\r\n", "D"),
                                        (b"451 try later\r\n", "Z")])
def test_helo_rejected(rsmtp, reply, kind):
    script = [(None, GREETING), (EHLO, b"500 unknown\r\n"),
              (HELO_CMD, reply), (QUIT, BYE)]
    result = rsmtp(script)
    check(result, 0, final(kind, "my name was rejected.",
                           reply.decode().strip()), joined(script))


# ---- MAIL ----


@pytest.mark.parametrize("reply,kind", [(b"451 greylisted\r\n", "Z"),
                                        (b"553 no such sender\r\n", "D")])
def test_mail_rejected(rsmtp, reply, kind):
    script = opening() + [(MAIL, reply), (QUIT, BYE)]
    result = rsmtp(script, rcpts=RCPTS)
    check(result, 0, final(kind, "sender was rejected.",
                           reply.decode().strip()), joined(script))


@pytest.mark.parametrize("reply,kind", [(b"451 greylisted\r\n", "Z"),
                                        (b"553 no such sender\r\n", "D")])
def test_mail_rejected_with_pipelining(rsmtp, reply, kind):
    """The RCPT and DATA replies are still read before QUIT: no QUIT is
    seen until the last of them has gone out."""
    envelope = MAIL + rcpt_cmd(RCPTS[0]) + rcpt_cmd(RCPTS[1]) + DATA
    script = opening("PIPELINING") + [
        (envelope, reply),
        (None, b"503 need MAIL first\r\n"),
        (None, b"503 need MAIL first\r\n"),
        (None, b"503-no valid\r\n503 recipients\r\n"),
        (QUIT, BYE),
    ]
    result = rsmtp(script, rcpts=RCPTS, settle=0.15)
    check(result, 0, final(kind, "sender was rejected.",
                           reply.decode().strip()), joined(script))
    for seen in result.snapshots[2:6]:
        assert seen == EHLO + envelope


# ---- RCPT ----

MIXED_RCPTS = ["a@example.net", "b@example.net", "c@example.net",
               "d@example.net"]
MIXED_REPLIES = [OK, b"550-no such\r\n550 user here\r\n",
                 b"452 mailbox full\r\n", b"251 will forward\r\n"]
MIXED_REPORTS = (RCPT_ACCEPTED + rcpt_report("h", "550-no such/550 user here")
                 + rcpt_report("s", "452 mailbox full") + RCPT_ACCEPTED)


def test_mixed_recipients(rsmtp):
    script = opening() + [(MAIL, OK)]
    script += [(rcpt_cmd(r), reply)
               for r, reply in zip(MIXED_RCPTS, MIXED_REPLIES)]
    script += [(DATA, GO), (WIRE, QUEUED), (QUIT, BYE)]
    result = rsmtp(script, rcpts=MIXED_RCPTS)
    check(result, 0, MIXED_REPORTS + delivered(), joined(script))


def test_mixed_recipients_with_pipelining(rsmtp):
    envelope = MAIL + b"".join(rcpt_cmd(r) for r in MIXED_RCPTS) + DATA
    script = opening("PIPELINING") + [
        (envelope, OK + b"".join(MIXED_REPLIES) + GO),
        (WIRE, QUEUED), (QUIT, BYE)]
    result = rsmtp(script, rcpts=MIXED_RCPTS)
    check(result, 0, MIXED_REPORTS + delivered(), joined(script))


@pytest.mark.parametrize("replies,kind", [
    ([b"550 no\r\n", b"553 nope\r\n"], "D"),
    ([b"550 no\r\n", b"451 later\r\n"], "Z"),
])
def test_all_recipients_rejected_means_no_data(rsmtp, replies, kind):
    script = opening() + [(MAIL, OK)]
    script += [(rcpt_cmd(r), reply) for r, reply in zip(RCPTS, replies)]
    script += [(QUIT, BYE)]
    result = rsmtp(script, rcpts=RCPTS)
    reports = b"".join(rcpt_report("h" if r.startswith(b"5") else "s",
                                   r.decode().strip()) for r in replies)
    check(result, 0, reports + final(kind, "no recipient was accepted."),
          joined(script))


def test_all_recipients_rejected_with_pipelining(rsmtp):
    envelope = MAIL + rcpt_cmd(RCPTS[0]) + rcpt_cmd(RCPTS[1]) + DATA
    script = opening("PIPELINING") + [
        (envelope, OK + b"550 no\r\n" + b"550 nope\r\n" +
         b"503 no valid recipients\r\n"),
        (QUIT, BYE)]
    result = rsmtp(script, rcpts=RCPTS)
    check(result, 0, rcpt_report("h", "550 no") + rcpt_report("h", "550 nope")
          + final("D", "no recipient was accepted."), joined(script))


def test_data_accepted_with_no_recipients_gets_no_message(rsmtp):
    """A broken server says 354 although it refused every recipient: the
    client ends the data at once with a lone dot."""
    envelope = MAIL + rcpt_cmd(RCPT) + DATA
    script = opening("PIPELINING") + [
        (envelope, OK + b"450 later\r\n" + GO),
        (b".\r\n", b"554 no valid recipients\r\n"),
        (QUIT, BYE)]
    result = rsmtp(script)
    check(result, 0, rcpt_report("s", "450 later") +
          final("Z", "no recipient was accepted."), joined(script))


# ---- DATA and after ----


@pytest.mark.parametrize("reply,kind", [(b"451 local error\r\n", "Z"),
                                        (b"554 no thanks\r\n", "D")])
def test_data_rejected(rsmtp, reply, kind):
    script = opening() + [(MAIL, OK), (rcpt_cmd(RCPT), OK), (DATA, reply),
                          (QUIT, BYE)]
    result = rsmtp(script)
    check(result, 0, RCPT_ACCEPTED + final(kind, "failed on DATA command.",
                                           reply.decode().strip()),
          joined(script))


@pytest.mark.parametrize("reply,kind", [(b"451 disk full\r\n", "Z"),
                                        (b"554-spam\r\n554 go away\r\n",
                                         "D")])
def test_message_rejected_after_data(rsmtp, reply, kind):
    """The recipient was accepted ('r'), then the message failed: the
    message report says what became of it, as qmail-rspawn expects."""
    script = plain_dialogue()
    script[-2] = (WIRE, reply)
    result = rsmtp(script)
    said = reply.decode().strip().replace("\r\n", "/")
    check(result, 0, RCPT_ACCEPTED +
          final(kind, "failed after I sent the message.", said),
          joined(script))


# ---- servers that break the protocol ----

BREAKERS = {
    "garbage": b"ok, fine\r\n",
    "long-line": b"250 " + b"y" * 2100 + b"\r\n",
    "wrong-continuation": b"250-ok\r\n251 ok\r\n",
    "bad-separator": b"250-ok\r\n250_ok\r\n",
    "too-many-lines": b"250-x\r\n" * 100 + b"250 x\r\n",
}


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("kind", list(BREAKERS))
def test_protocol_breakers(rsmtp, step, kind):
    """Each reply after the greeting, in turn, replaced by nonsense: a
    temporary failure, and not another word to that server."""
    script = plain_dialogue()[:step + 1]
    script[step] = (script[step][0], BREAKERS[kind])
    result = rsmtp(script)
    accepted = RCPT_ACCEPTED if step > 3 else b""
    check(result, 0, accepted + BROKE, joined(script))


# ---- hang-ups and timeouts at each step ----

# plain_dialogue(RCPTS): 0 greeting, 1 EHLO, 2 MAIL, 3 and 4 RCPT,
# 5 DATA, 6 the message, 7 QUIT.
CUTS = {"after-greeting": 1, "after-ehlo": 2, "after-mail": 3,
        "mid-rcpt": 4, "after-data": 5, "after-message": 6}


def cut_script(step, action):
    script = plain_dialogue(RCPTS)[:step + 1]
    script[step] = (script[step][0], action)
    accepted = RCPT_ACCEPTED * max(0, min(step - 3, 2))
    return script, accepted


@pytest.mark.parametrize("where", list(CUTS))
def test_hang_up(rsmtp, where):
    script, accepted = cut_script(CUTS[where], CLOSE)
    result = rsmtp(script, rcpts=RCPTS)
    check(result, 0, accepted + DIED, joined(script))
    assert result.after_action < 3


def big_message():
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWX\n"
    body = line * (1 << 14)  # 1 MiB, far more than a pipe holds
    return b"Subject: big\n\n" + body, (b"Subject: big\r\n\r\n" +
                                        body.replace(b"\n", b"\r\n") +
                                        b".\r\n")


def test_hang_up_mid_message(rsmtp):
    message, wire = big_message()
    script = opening() + [(MAIL, OK), (rcpt_cmd(RCPT), OK), (DATA, GO),
                          (wire[:5000], CLOSE)]
    result = rsmtp(script, message=message)
    assert result.code == 0
    assert result.report == RCPT_ACCEPTED + DIED
    head = joined(script[:-1])
    assert result.transcript.startswith(head + wire[:5000])
    assert (head + wire).startswith(result.transcript)
    assert len(result.transcript) < len(head + wire)


@pytest.mark.parametrize("seconds", [1, 2])
def test_greeting_timeout_means_next_address(rsmtp, seconds):
    result = rsmtp([(None, SILENT)], RSMTP_TIMEOUT=seconds)
    check(result, 75, b"", b"")
    assert seconds - 0.1 <= result.after_action < seconds + 1.5


@pytest.mark.parametrize("where", list(CUTS))
def test_timeout(rsmtp, where):
    script, accepted = cut_script(CUTS[where], SILENT)
    result = rsmtp(script, rcpts=RCPTS, RSMTP_TIMEOUT=1)
    check(result, 0, accepted + TIMED_OUT, joined(script))
    assert 0.9 <= result.after_action < 2.5


def test_timeout_writing_the_message(rsmtp):
    """The server stops reading: the pipe fills and the write times out."""
    message, wire = big_message()
    script = opening() + [(MAIL, OK), (rcpt_cmd(RCPT), OK), (DATA, GO),
                          (None, STALL)]
    result = rsmtp(script, message=message, RSMTP_TIMEOUT=1)
    assert result.code == 0
    assert result.report == RCPT_ACCEPTED + TIMED_OUT
    head = joined(script)
    assert result.transcript.startswith(head + wire[:1000])
    assert (head + wire).startswith(result.transcript)
    assert len(result.transcript) < len(head + wire)
    assert 0.9 <= result.after_action < 2.5


# ---- SIZE ----


def size_dialogue(mail, wire, caps=("SIZE 10000",)):
    return opening(*caps) + [(mail, OK), (rcpt_cmd(RCPT), OK), (DATA, GO),
                             (wire, QUEUED), (QUIT, BYE)]


def test_size_counts_crlf_as_sent(rsmtp):
    """LF and bare CR each become CRLF; a stored CRLF stays one CRLF."""
    message = b"Subject: s\n\none\rtwo\r\nthree\n\rfour\r\n"
    wire = b"Subject: s\r\n\r\none\r\ntwo\r\nthree\r\n\r\nfour\r\n"
    assert len(wire) == 39
    script = size_dialogue(b"MAIL FROM:<alice@example.org> SIZE=39\r\n",
                           wire + b".\r\n")
    result = rsmtp(script, message=message)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


def test_size_excludes_doubled_dots(rsmtp):
    message = b"Subject: d\n\n.one\n..two\n.\n"
    wire = b"Subject: d\r\n\r\n..one\r\n...two\r\n..\r\n.\r\n"
    # RFC 1870: octets including CRLF pairs, but not the terminating dot
    # or the doubled quoting dots: the stored text with CRLF, 30 bytes.
    assert len(wire) - 3 - 3 == 30
    script = size_dialogue(b"MAIL FROM:<alice@example.org> SIZE=30\r\n",
                           wire)
    result = rsmtp(script, message=message)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


def test_size_limit_ignores_doubled_dots(rsmtp):
    """A message of exactly the server's limit (RFC 1870 size) goes, even
    when dot-stuffing makes it longer on the wire."""
    message = b"Subject: d\n\n.one\n"
    wire = b"Subject: d\r\n\r\n..one\r\n.\r\n"
    script = size_dialogue(b"MAIL FROM:<alice@example.org> SIZE=20\r\n",
                           wire, caps=("SIZE 20",))
    result = rsmtp(script, message=message)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


@pytest.mark.parametrize("cap", ["SIZE", "SIZE 0", f"size {WIRE_SIZE}",
                                 "SIZE  1000"])
def test_size_without_a_limit_or_at_the_limit(rsmtp, cap):
    """No number or 0 is no limit; a message of exactly the limit goes."""
    mail = f"MAIL FROM:<{SENDER}> SIZE={WIRE_SIZE}\r\n".encode()
    script = size_dialogue(mail, WIRE, caps=(cap,))
    result = rsmtp(script)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


def test_size_limit_too_small(rsmtp):
    script = opening("PIPELINING", f"SIZE {WIRE_SIZE - 1}") + [(QUIT, BYE)]
    result = rsmtp(script)
    check(result, 0, TOO_BIG, joined(script))


# ---- 8BITMIME and SMTPUTF8 ----

BODY_8BIT = b"Subject: cafe\n\ncaf\xc3\xa9\n"
WIRE_8BIT = b"Subject: cafe\r\n\r\ncaf\xc3\xa9\r\n.\r\n"
HEADER_8BIT = b"Subject: caf\xc3\xa9\n\ncafe\n"
WIRE_HEADER_8BIT = b"Subject: caf\xc3\xa9\r\n\r\ncafe\r\n.\r\n"


@pytest.mark.parametrize("message,wire,caps,params", [
    (BODY_8BIT, WIRE_8BIT, ("8BITMIME",), b" BODY=8BITMIME"),
    (BODY_8BIT, WIRE_8BIT, (), b""),
    (BODY_8BIT, WIRE_8BIT, ("SMTPUTF8",), b""),
    (MESSAGE, WIRE, ("8BITMIME", "SMTPUTF8"), b""),
], ids=["8bit-offered", "8bit-not-offered", "8bit-body-is-not-utf8",
        "ascii"])
def test_body_8bitmime(rsmtp, message, wire, caps, params):
    """BODY=8BITMIME only for 8-bit content and when offered; an 8-bit
    body alone never needs SMTPUTF8; ASCII gets no parameter at all."""
    mail = b"MAIL FROM:<alice@example.org>" + params + b"\r\n"
    script = opening(*caps) + [(mail, OK), (rcpt_cmd(RCPT), OK),
                               (DATA, GO), (wire, QUEUED), (QUIT, BYE)]
    result = rsmtp(script, message=message)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


UTF8_SENDER = "j\u00f6rg@example.org"
UTF8_RCPT = "\u7530\u4e2d@example.net"


@pytest.mark.parametrize("sender,rcpt,message,wire,params", [
    (UTF8_SENDER, RCPT, MESSAGE, WIRE, b" SIZE=22 SMTPUTF8"),
    (SENDER, UTF8_RCPT, MESSAGE, WIRE, b" SIZE=22 SMTPUTF8"),
    (SENDER, RCPT, HEADER_8BIT, WIRE_HEADER_8BIT,
     b" SIZE=24 BODY=8BITMIME SMTPUTF8"),
], ids=["sender", "recipient", "header"])
def test_smtputf8_offered(rsmtp, sender, rcpt, message, wire, params):
    mail = b"MAIL FROM:<" + sender.encode() + b">" + params + b"\r\n"
    script = opening("SIZE 1000", "8BITMIME", "SMTPUTF8") + [
        (mail, OK), (rcpt_cmd(rcpt), OK), (DATA, GO), (wire, QUEUED),
        (QUIT, BYE)]
    result = rsmtp(script, message=message, sender=sender, rcpts=[rcpt])
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


@pytest.mark.parametrize("sender,rcpts,message", [
    (UTF8_SENDER, [RCPT], MESSAGE),
    (SENDER, [RCPT, UTF8_RCPT], MESSAGE),
    (SENDER, [RCPT], HEADER_8BIT),
], ids=["sender", "second-recipient", "header"])
def test_smtputf8_needed_but_not_offered(rsmtp, sender, rcpts, message):
    script = opening("PIPELINING", "8BITMIME", "SIZE 1000") + [(QUIT, BYE)]
    result = rsmtp(script, message=message, sender=sender, rcpts=rcpts)
    check(result, 0, NO_UTF8, joined(script))


def test_8bit_body_after_crlf_header_needs_no_smtputf8(rsmtp):
    message = b"Subject: cafe\r\n\r\ncaf\xc3\xa9\r\n"
    mail = b"MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n"
    script = opening("8BITMIME") + [(mail, OK), (rcpt_cmd(RCPT), OK),
                                    (DATA, GO), (WIRE_8BIT, QUEUED),
                                    (QUIT, BYE)]
    result = rsmtp(script, message=message)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


# ---- line ends and dots ----


def test_line_ends_and_dots(rsmtp):
    message = (b".first\n"          # a dot at the very start
               b"lf\n"
               b"crlf\r\n"
               b"bare\rcr\n"
               b"cr-then-crlf\r\r\n"
               b".\n"                # a lone dot must not end the data
               b"..two\r\n"
               b"after cr\r.dot\n"   # a line started by a bare CR
               b"\r\n.\r\n"          # a stored end-of-data sequence
               b"mid.dot .\n"
               b"last\n")
    wire = (b"..first\r\n"
            b"lf\r\n"
            b"crlf\r\n"
            b"bare\r\ncr\r\n"
            b"cr-then-crlf\r\n\r\n"
            b"..\r\n"
            b"...two\r\n"
            b"after cr\r\n..dot\r\n"
            b"\r\n..\r\n"
            b"mid.dot .\r\n"
            b"last\r\n"
            b".\r\n")
    script = plain_dialogue(wire=wire)
    result = rsmtp(script, message=message)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))
    assert b"\r\r" not in result.transcript


def test_empty_message(rsmtp):
    script = plain_dialogue(wire=b".\r\n")
    result = rsmtp(script, message=b"")
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


@pytest.mark.parametrize("split", [b"\r\n", b"\n."])
def test_line_ends_across_read_boundaries(rsmtp, split):
    """The client reads the message 32 KiB at a time: a CRLF or a line
    start cut by that boundary changes nothing."""
    for chunk in (32768, 8192, 4096):
        filler = b"x" * (chunk - 1) + split[:1]
        message = filler + split[1:] + b"tail\n" + filler + split[1:] + b"\n"
        wire = (message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                .replace(b"\r\n.", b"\r\n..") + b".\r\n")
        script = plain_dialogue(wire=wire)
        result = rsmtp(script, message=message)
        check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))
        assert b"\r\r" not in result.transcript


@pytest.mark.parametrize("message", [
    b"Subject: x\n\nno newline at the end",
    b"Subject: x\n\nends in a bare CR\r",
    b"x",
])
def test_partial_last_line_is_never_sent(rsmtp, message):
    script = [(None, GREETING), (QUIT, BYE)]
    result = rsmtp(script, message=message)
    check(result, 0, PARTIAL, QUIT)


# ---- AUTH (RFC 4954) ----
#
# The credentials come on a descriptor (RSMTP_AUTHFD), as qmail-remote
# passes them; TLS is played by the test as the UCSPI-TLS program would:
# it takes the client's "Y" on SSLCTLFD, hands it new descriptors for the
# encrypted channel (here plain pipes) and the SSL_* block.

AUTH_USER = "relay-user"
AUTH_PASS = "s3cret p\u00e4ss:|word"
AUTH_FD, TLS_CTL_FD, TLS_READ_FD, TLS_WRITE_FD = 8, 3, 4, 5
STARTTLS = b"STARTTLS\r\n"
READY = b"220 ready for TLS\r\n"
AUTHED = b"235 2.7.0 Authentication successful\r\n"
NEED_AUTH = b"530 5.7.0 Authentication required\r\n"


def b64(data):
    return base64.b64encode(data.encode() if isinstance(data, str)
                            else data)


PLAIN_CMD = (b"AUTH PLAIN " + b64(f"\0{AUTH_USER}\0{AUTH_PASS}") + b"\r\n")
LOGIN_STEPS = [(b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
               (b64(AUTH_USER) + b"\r\n", b"334 UGFzc3dvcmQ6\r\n"),
               (b64(AUTH_PASS) + b"\r\n", AUTHED)]


class Descriptors:
    """Descriptors handed to the client, closed at the end of the test."""

    def __init__(self):
        self.mine = []

    def high(self, fd):
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        self.mine.append(moved)
        return moved

    def secret(self, data):
        """A pipe holding data, its writing end closed: the read end."""
        r, w = os.pipe()
        os.write(w, data)
        os.close(w)
        return self.high(r)

    def close_now(self, fd):
        """Closes one of ours, e.g. a client's end once the client has
        it: while we hold it, the client's exit shows no EOF."""
        self.mine.remove(fd)
        os.close(fd)

    def close(self):
        for fd in self.mine:
            os.close(fd)
        self.mine = []


@pytest.fixture
def fds():
    d = Descriptors()
    yield d
    d.close()


class FakeTls:
    """The UCSPI-TLS program's part: after the client's 'Y' the server
    side moves to new pipes, and the client gets SSL_PROTOCOL."""

    def __init__(self, fds):
        self.fds = fds
        ctl_client, self.ctl = socket.socketpair()
        self.ctl_client = fds.high(os.dup(ctl_client.fileno()))
        ctl_client.close()
        r, self.to_client = os.pipe()
        self.from_client, w = os.pipe()
        self.client_read = fds.high(r)
        self.client_write = fds.high(w)

    def extra_fds(self):
        return {TLS_CTL_FD: self.ctl_client, TLS_READ_FD: self.client_read,
                TLS_WRITE_FD: self.client_write}

    def env(self):
        return {"SSLCTLFD": str(TLS_CTL_FD), "SSLREADFD": str(TLS_READ_FD),
                "SSLWRITEFD": str(TLS_WRITE_FD), "RSMTP_TLS": "try"}

    def __call__(self, server):
        for fd in (self.ctl_client, self.client_read, self.client_write):
            self.fds.close_now(fd)
        self.ctl.settimeout(STEP_WAIT)
        assert self.ctl.recv(1) == b"Y"
        server.hang_up_sending()
        server.hang_up_reading()
        server.from_client, server.to_client = (self.from_client,
                                                self.to_client)
        self.ctl.sendall(b"SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=TEST\0\0")
        self.ctl.close()


def auth_env(fds, user=AUTH_USER, password=AUTH_PASS, raw=None, **more):
    data = raw if raw is not None else (user + "\0" + password + "\0").encode()
    env = dict(ENV, RSMTP_AUTHFD=str(AUTH_FD))
    env.update(more)
    return env, {AUTH_FD: fds.secret(data)}


def after_tls(tls, *caps):
    return opening("STARTTLS") + [(STARTTLS, READY), (None, tls),
                                  (EHLO, ehlo_reply(*caps))]


def envelope_and_data():
    return [(MAIL, OK), (rcpt_cmd(RCPT), OK), (DATA, GO), (WIRE, QUEUED),
            (QUIT, BYE)]


def run_auth(rsmtp, fds, script_for, tls=True, settle=0.0, **env_more):
    """script_for(the fake TLS, or None) -> script; env_more goes to
    auth_env."""
    fake = FakeTls(fds) if tls else None
    env, extra = auth_env(fds, **env_more)
    if fake:
        env.update(fake.env())
        extra.update(fake.extra_fds())
    script = script_for(fake)
    result = rsmtp(script, env=env, extra_fds=extra, settle=settle)
    return result, script


def no_secret_in(result):
    for blob in (AUTH_PASS.encode(), b64(AUTH_PASS),
                 b64(f"\0{AUTH_USER}\0{AUTH_PASS}")):
        assert blob not in result.report


def test_auth_plain_offered_only_after_starttls(rsmtp, fds):
    """The first EHLO offers no AUTH; the one after TLS does, and AUTH
    PLAIN goes with an initial response, before MAIL."""
    result, script = run_auth(
        rsmtp, fds, lambda t: after_tls(t, "AUTH PLAIN LOGIN")
        + [(PLAIN_CMD, AUTHED)] + envelope_and_data())
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))
    assert result.transcript.index(STARTTLS) < result.transcript.index(
        b"AUTH")
    no_secret_in(result)


@pytest.mark.parametrize("cap", ["AUTH LOGIN", "AUTH=LOGIN", "auth login",
                                 "AUTH CRAM-MD5 LOGIN"])
def test_auth_login_when_plain_is_not_offered(rsmtp, fds, cap):
    result, script = run_auth(
        rsmtp, fds, lambda t: after_tls(t, cap) + LOGIN_STEPS
        + envelope_and_data())
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


def test_auth_plain_is_preferred_and_never_cram_md5(rsmtp, fds):
    result, script = run_auth(
        rsmtp, fds, lambda t: after_tls(t, "AUTH CRAM-MD5 LOGIN PLAIN")
        + [(PLAIN_CMD, AUTHED)] + envelope_and_data())
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


def test_auth_with_pipelining(rsmtp, fds):
    """AUTH is never pipelined; the envelope after it is."""
    result, script = run_auth(
        rsmtp, fds, lambda t: after_tls(t, "PIPELINING", "AUTH PLAIN")
        + [(PLAIN_CMD, AUTHED),
           (MAIL + rcpt_cmd(RCPT) + DATA, OK + OK + GO),
           (WIRE, QUEUED), (QUIT, BYE)], settle=0.1)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))
    assert result.snapshots[4].endswith(PLAIN_CMD)  # nothing after it


def auth_failure(kind, text, said):
    return final(kind, f"the relay {HOST} {text}", said)


@pytest.mark.parametrize("reply,kind,text", [
    ("535 5.7.8 Error: authentication failed", "D",
     "rejected my user name or password. (#5.7.8)"),
    ("454 4.7.0 Temporary authentication failure", "Z",
     "failed AUTH temporarily. (#4.7.0)"),
    ("421 4.3.2 going down", "Z", "failed AUTH temporarily. (#4.7.0)"),
    ("504 5.5.4 Unrecognized authentication type", "D",
     "refused AUTH. (#5.7.0)"),
    ("534 5.7.9 Authentication mechanism is too weak", "D",
     "refused AUTH. (#5.7.0)"),
    ("250 what?", "Z", "broke off the AUTH exchange. (#4.7.0)"),
], ids=["535", "454", "421", "504", "534", "250"])
def test_auth_plain_replies(rsmtp, fds, reply, kind, text):
    result, script = run_auth(
        rsmtp, fds, lambda t: after_tls(t, "AUTH PLAIN")
        + [(PLAIN_CMD, reply.encode() + b"\r\n"), (QUIT, BYE)])
    check(result, 0, auth_failure(kind, text, reply), joined(script))


@pytest.mark.parametrize("step", [0, 1, 2])
def test_auth_login_rejected_at_each_step(rsmtp, fds, step):
    steps = LOGIN_STEPS[:step] + [(LOGIN_STEPS[step][0],
                                   b"535 5.7.8 no\r\n"), (QUIT, BYE)]
    result, script = run_auth(
        rsmtp, fds, lambda t: after_tls(t, "AUTH LOGIN") + steps)
    check(result, 0, auth_failure(
        "D", "rejected my user name or password. (#5.7.8)",
        "535 5.7.8 no"), joined(script))


def test_auth_login_454_is_temporary(rsmtp, fds):
    steps = LOGIN_STEPS[:2] + [(LOGIN_STEPS[2][0], b"454 4.7.0 later\r\n"),
                               (QUIT, BYE)]
    result, script = run_auth(
        rsmtp, fds, lambda t: after_tls(t, "AUTH LOGIN") + steps)
    check(result, 0, auth_failure(
        "Z", "failed AUTH temporarily. (#4.7.0)", "454 4.7.0 later"),
        joined(script))


def test_auth_challenge_after_plain_is_cancelled(rsmtp, fds):
    result, script = run_auth(
        rsmtp, fds, lambda t: after_tls(t, "AUTH PLAIN")
        + [(PLAIN_CMD, b"334 \r\n"), (b"*\r\n", b"501 cancelled\r\n"),
           (QUIT, BYE)])
    check(result, 0, auth_failure(
        "Z", "broke off the AUTH exchange. (#4.7.0)", "334 "),
        joined(script))


def test_a_reply_quoting_the_secret_is_scrubbed(rsmtp, fds):
    quoted = (b"535 you sent " + b64(f"\0{AUTH_USER}\0{AUTH_PASS}") +
              b" and " + AUTH_PASS.encode() + b"\r\n")
    result, script = run_auth(
        rsmtp, fds, lambda t: after_tls(t, "AUTH PLAIN")
        + [(PLAIN_CMD, quoted), (QUIT, BYE)])
    check(result, 0, auth_failure(
        "D", "rejected my user name or password. (#5.7.8)",
        "535 you sent [hidden] and [hidden]"), joined(script))
    no_secret_in(result)


def test_login_reply_quoting_the_secret_is_scrubbed(rsmtp, fds):
    quoted = b"535 bad " + b64(AUTH_PASS) + b"\r\n"
    steps = LOGIN_STEPS[:2] + [(LOGIN_STEPS[2][0], quoted), (QUIT, BYE)]
    result, script = run_auth(
        rsmtp, fds, lambda t: after_tls(t, "AUTH LOGIN") + steps)
    check(result, 0, auth_failure(
        "D", "rejected my user name or password. (#5.7.8)",
        "535 bad [hidden]"), joined(script))
    no_secret_in(result)


NOT_ENCRYPTED = (" (I did not authenticate: the connection is not "
                 "encrypted, and the route does not allow AUTH in "
                 "cleartext.)")
NOT_OFFERED = (" (I did not authenticate: the server offers neither AUTH "
               "PLAIN nor AUTH LOGIN.)")


def test_no_auth_in_cleartext_and_the_530_says_why(rsmtp, fds):
    """No TLS program: the credentials stay unused, and when the relay
    then refuses the sender, the report says why."""
    result, script = run_auth(
        rsmtp, fds, lambda t: opening("AUTH PLAIN LOGIN")
        + [(MAIL, NEED_AUTH), (QUIT, BYE)], tls=False)
    check(result, 0, final("D", "sender was rejected." + NOT_ENCRYPTED,
                           NEED_AUTH.decode().strip()), joined(script))
    assert b"AUTH" not in result.transcript


def test_no_auth_in_cleartext_when_starttls_is_refused(rsmtp, fds):
    fake = FakeTls(fds)
    env, extra = auth_env(fds)
    env.update(fake.env())
    extra.update(fake.extra_fds())
    script = opening("STARTTLS", "AUTH PLAIN") + [
        (STARTTLS, b"454 TLS not available\r\n"), (MAIL, OK),
        (rcpt_cmd(RCPT), b"554 5.7.1 Relay access denied\r\n"),
        (QUIT, BYE)]
    result = rsmtp(script, env=env, extra_fds=extra)
    check(result, 0, rcpt_report(
        "h", "554 5.7.1 Relay access denied").replace(
            b" does not like recipient.",
            b" does not like recipient." + NOT_ENCRYPTED.encode())
        + final("D", "no recipient was accepted."), joined(script))


def test_relay_without_auth_may_still_take_the_mail(rsmtp, fds):
    result, script = run_auth(
        rsmtp, fds, lambda t: opening("AUTH PLAIN") + envelope_and_data(),
        tls=False)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


def test_cleartext_allowed_by_the_route(rsmtp, fds):
    result, script = run_auth(
        rsmtp, fds, lambda t: opening("AUTH PLAIN")
        + [(PLAIN_CMD, AUTHED)] + envelope_and_data(), tls=False,
        RSMTP_AUTHCLEARTEXT="1")
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


def test_implicit_tls_counts_as_encrypted(rsmtp, fds):
    result, script = run_auth(
        rsmtp, fds, lambda t: opening("AUTH PLAIN")
        + [(PLAIN_CMD, AUTHED)] + envelope_and_data(), tls=False,
        SSL_PROTOCOL="TLSv1.3")
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


@pytest.mark.parametrize("caps", [(), ("AUTH CRAM-MD5",), ("AUTH",)],
                         ids=["none", "cram-md5", "empty"])
def test_no_usable_mechanism(rsmtp, fds, caps):
    result, script = run_auth(
        rsmtp, fds, lambda t: after_tls(t, *caps)
        + [(MAIL, NEED_AUTH), (QUIT, BYE)])
    check(result, 0, final("D", "sender was rejected." + NOT_OFFERED,
                           NEED_AUTH.decode().strip()), joined(script))


def test_no_credentials_means_no_auth(rsmtp):
    script = plain_dialogue(caps=("AUTH PLAIN LOGIN",))
    result = rsmtp(script)
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))


BAD_CREDENTIALS = (b"ZUnable to read the AUTH credentials from qmail-remote. "
                   b"(#4.3.0)\0")


@pytest.mark.parametrize("raw", [
    b"", b"user", b"user\0", b"\0password\0", b"user\0password",
    b"user\0pass\0extra", b"u" * 2000 + b"\0p\0"],
    ids=["empty", "no-nul", "no-password", "no-user", "no-final-nul",
         "trailing", "too-long"])
def test_malformed_credentials(rsmtp, fds, raw):
    env, extra = auth_env(fds, raw=raw)
    result = rsmtp([(None, GREETING)], env=env, extra_fds=extra)
    check(result, 0, BAD_CREDENTIALS, b"")


@pytest.mark.parametrize("value", ["x", "6", "2", "-1", "99"])
def test_credentials_descriptor_that_is_not_one(rsmtp, value):
    result = rsmtp([(None, GREETING)], RSMTP_AUTHFD=value)
    check(result, 0, BAD_CREDENTIALS, b"")


def test_empty_password_is_sent(rsmtp, fds):
    plain = b"AUTH PLAIN " + b64(f"\0{AUTH_USER}\0") + b"\r\n"
    result, script = run_auth(
        rsmtp, fds, lambda t: after_tls(t, "AUTH PLAIN")
        + [(plain, AUTHED)] + envelope_and_data(), password="")
    check(result, 0, RCPT_ACCEPTED + delivered(), joined(script))
