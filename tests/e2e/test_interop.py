"""Interoperability of our outbound SMTP (qmail-remote, qmail-rsmtp) with
two servers that are not ours: python3-aiosmtpd and Debian's Postfix.

qmail-remote runs directly, as the sending instance's account, with
control/smtproutes sending remote.test to [127.0.0.1]:PORT and
control/tlshosts/exhaustivelist present (no STARTTLS is tried). PORT is a
recording relay (foreign.RecordingProxy) in front of the foreign server,
so each test sees both what the server made of the session (aiosmtpd's
envelope and content, Postfix's Maildir and log) and the exact bytes on
the wire, read by read: pipelined commands arrive in one read, commands
sent one at a time each in their own.

The Postfix instance is private (config, queue, Maildir and log under one
/tmp directory, `postfix -c DIR`), shared by the tests of this module,
and stopped at the end with every process of it gone. Its tests are
skipped only when Postfix is not installed (scripts/deps.sh and
scripts/bench-deps.sh install it without configuring a system Postfix)
or when not run as root, which Postfix's master needs.
"""

import re

import pytest

import foreign
import qmtest
from qmtest import is_root, wait_for
from test_remote import report, run_remote

SENDER = "alice@example.test"
BOB = "bob@remote.test"
IP = "127.0.0.1"
# The stored message: dots at line starts, a lone dot, a bare CR, a line
# stored with CRLF.
STORED = (b"From: Alice <alice@example.test>\n"
          b"To: Bob <bob@remote.test>\n"
          b"Subject: dots and carriage returns\n"
          b"Date: Sun, 29 Nov 2026 12:00:00 +0000\n"
          b"Message-ID: <interop-1@example.test>\n"
          b"\n"
          b".leading dot\n"
          b"..two dots\n"
          b".\n"
          b"a bare\rcarriage return\n"
          b"stored with CRLF\r\n"
          b"last line\n")
# What a server must get out of it: every line ending is CRLF, the bare
# CR ends a line, and the quoting dots are gone again.
CONTENT = (b"From: Alice <alice@example.test>\r\n"
           b"To: Bob <bob@remote.test>\r\n"
           b"Subject: dots and carriage returns\r\n"
           b"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n"
           b"Message-ID: <interop-1@example.test>\r\n"
           b"\r\n"
           b".leading dot\r\n"
           b"..two dots\r\n"
           b".\r\n"
           b"a bare\r\n"
           b"carriage return\r\n"
           b"stored with CRLF\r\n"
           b"last line\r\n")
# ... and what goes on the wire after DATA's 354.
DATA_STREAM = (CONTENT.replace(b"\r\n.", b"\r\n..")
               + b".\r\n")
EIGHT_BIT = (b"From: Alice <alice@example.test>\n"
             b"To: Bob <bob@remote.test>\n"
             b"Subject: plain header\n"
             b"\n"
             b"Gr\xc3\xbc\xc3\x9fe, caf\xc3\xa9, and a Latin-1 \xe9.\n")
UTF8_HEADER = (b"From: Alice <alice@example.test>\n"
               b"To: Bob <bob@remote.test>\n"
               b"Subject: Gr\xc3\xbc\xc3\x9fe\n"
               b"\n"
               b"An ASCII body.\n")
ASCII = (b"From: Alice <alice@example.test>\n"
         b"To: Bob <bob@remote.test>\n"
         b"Subject: ascii\n"
         b"\n"
         b"Nothing but ASCII.\n")
UTF8_RCPT = "b\u00f8b@remote.test"

NO_UTF8 = (b"DConnected to 127.0.0.1 but it does not support SMTPUTF8, "
           b"which this message needs for its non-ASCII addresses or "
           b"header. (#5.6.7)\0")
TOO_BIG = (b"DConnected to 127.0.0.1 but the message is larger than the "
           b"server accepts. (#5.3.4)\0")
NO_RCPT = b"DConnected to 127.0.0.1 but no recipient was accepted.\0"
AIO_ACCEPTED = (b"K127.0.0.1 accepted message.\nRemote host said: "
                b"250 Message accepted for delivery\0")
POSTFIX_ACCEPTED = re.compile(rb"K127\.0\.0\.1 accepted message\.\n"
                              rb"Remote host said: 250 2\.0\.0 Ok: queued "
                              rb"as [0-9A-F]+\0")


def crlf(stored):
    """What a server gets of a stored message with plain LF lines."""
    assert b"\r" not in stored
    return stored.replace(b"\n", b"\r\n")


def refused(said):
    """The report of a recipient refused permanently."""
    return (f"h{IP} does not like recipient.\nRemote host said: "
            f"{said}\0").encode()


# ---- the sender and its route ----


@pytest.fixture
def sender(make_instance):
    inst = make_instance(host="example.test", mailboxes=("alice",))
    if not (inst.bindir / "qmail-rsmtp").exists():
        pytest.skip("qmail-rsmtp is not built yet")
    inst.control("tlshosts/exhaustivelist", "")
    inst.control("timeoutremote", "15\n")
    return inst


@pytest.fixture
def proxies():
    made = []

    def make(port):
        proxy = foreign.RecordingProxy(IP, port)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


def route(inst, proxy):
    inst.control("smtproutes", f"remote.test:[{IP}]:{proxy.port}\n")


def deliver(inst, rcpts=(BOB,), message=STORED):
    return report(run_remote(inst, "remote.test", rcpts=list(rcpts),
                             sender=SENDER, message=message, timeout=60))


def ehlo_keywords(session):
    """The keywords of the server's EHLO reply, upper case."""
    text = session.text("s").decode("utf-8", errors="replace")
    lines = text.split("\r\n")
    first = next(i for i, line in enumerate(lines)
                 if line.startswith("250") and i > 0)
    words = []
    if lines[first][3:4] == " ":
        return words  # no extensions at all
    for line in lines[first + 1:]:
        if not line.startswith("250"):
            break
        words.append(line[4:].split(" ")[0].upper())
        if line[3:4] == " ":
            break
    return words


def assert_one_command_per_read(session):
    """Without PIPELINING every command waits for the reply to the one
    before: each read holds exactly one command line up to DATA."""
    for data in session.reads("c"):
        if data.upper().startswith(b"QUIT"):
            break
        assert data.count(b"\r\n") == 1 and data.endswith(b"\r\n"), (
            "more than one command in a read", data)
        if data.upper() == b"DATA\r\n":
            break


def verbs(session):
    return [line.rstrip(b"\r\n").split(b" ")[0].split(b":")[0].upper()
            for line in session.commands()]


# ---- aiosmtpd ----


@pytest.fixture
def aiosmtpd():
    """Factory: aiosmtpd(handler=None, **smtp_options) -> Aiosmtpd."""
    pytest.importorskip("aiosmtpd")
    made = []

    def start(handler=None, **options):
        server = foreign.Aiosmtpd(handler or foreign.RecordingHandler(),
                                  **options)
        made.append(server)
        return server

    yield start
    for server in made:
        server.stop()


def aio_route(sender, aiosmtpd, proxies, handler=None, **options):
    server = aiosmtpd(handler, **options)
    proxy = proxies(server.port)
    route(sender, proxy)
    return server.handler, proxy


def test_aiosmtpd_plain_delivery_is_byte_exact(sender, aiosmtpd, proxies):
    handler, proxy = aio_route(sender, aiosmtpd, proxies)
    assert deliver(sender) == b"r\0" + AIO_ACCEPTED
    [got] = handler.messages
    assert got["content"] == CONTENT
    assert got["mail_from"] == SENDER
    assert got["rcpt_tos"] == [BOB]
    # SIZE counts CRLF pairs but not the quoting dots (RFC 1870).
    assert got["mail_options"] == [f"SIZE={len(CONTENT)}"]
    assert got["rcpt_options"] == []
    assert got["smtp_utf8"] is False
    session = proxy.last_session()
    assert session.mail_command() == (
        f"MAIL FROM:<{SENDER}> SIZE={len(CONTENT)}\r\n".encode())
    wire = session.text("c")
    assert wire[wire.index(b"DATA\r\n") + 6:] == DATA_STREAM + b"QUIT\r\n"
    assert verbs(session) == [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"QUIT"]


def test_aiosmtpd_offers_no_pipelining_and_we_do_not_pipeline(
        sender, aiosmtpd, proxies):
    _, proxy = aio_route(sender, aiosmtpd, proxies)
    assert deliver(sender, rcpts=[BOB, "carol@remote.test"]) == (
        b"r\0r\0" + AIO_ACCEPTED)
    session = proxy.last_session()
    assert "PIPELINING" not in ehlo_keywords(session)
    assert "SIZE" in ehlo_keywords(session)
    assert_one_command_per_read(session)
    assert verbs(session) == [b"EHLO", b"MAIL", b"RCPT", b"RCPT", b"DATA",
                              b"QUIT"]


def test_aiosmtpd_one_recipient_refused(sender, aiosmtpd, proxies):
    handler = foreign.RecordingHandler(
        refuse={"nosuch@remote.test": "550 no such user"})
    handler, proxy = aio_route(sender, aiosmtpd, proxies, handler)
    out = deliver(sender, rcpts=[BOB, "nosuch@remote.test",
                                 "carol@remote.test"])
    assert out == (b"r\0" + refused("550 no such user") +
                   b"r\0" + AIO_ACCEPTED)
    [got] = handler.messages
    assert got["rcpt_tos"] == [BOB, "carol@remote.test"]
    assert got["content"] == CONTENT


def test_aiosmtpd_every_recipient_refused_sends_no_data(sender, aiosmtpd,
                                                        proxies):
    handler = foreign.RecordingHandler(refuse={
        BOB: "550 no such user", "carol@remote.test": "553 not here"})
    handler, proxy = aio_route(sender, aiosmtpd, proxies, handler)
    out = deliver(sender, rcpts=[BOB, "carol@remote.test"])
    assert out == (refused("550 no such user") +
                   refused("553 not here") + NO_RCPT)
    assert handler.messages == []
    assert verbs(proxy.last_session()) == [b"EHLO", b"MAIL", b"RCPT",
                                           b"RCPT", b"QUIT"]


def test_aiosmtpd_null_sender(sender, aiosmtpd, proxies):
    """A bounce: MAIL FROM:<>."""
    handler, proxy = aio_route(sender, aiosmtpd, proxies)
    out = report(run_remote(sender, "remote.test", rcpts=[BOB], sender="",
                            message=ASCII, timeout=60))
    assert out == b"r\0" + AIO_ACCEPTED
    assert proxy.last_session().mail_command() == (
        f"MAIL FROM:<> SIZE={len(crlf(ASCII))}\r\n".encode())
    [got] = handler.messages
    assert got["mail_from"] == "<>"
    assert got["content"] == crlf(ASCII)


@pytest.mark.parametrize("slack", [0, -1], ids=["at-limit", "one-over"])
def test_aiosmtpd_size_limit(sender, aiosmtpd, proxies, slack):
    """The limit aiosmtpd announces in EHLO SIZE: a message of exactly
    that size goes, one byte more is refused before MAIL. (No line starts
    with a dot: aiosmtpd counts the quoting dots against its limit,
    which RFC 1870 leaves out of SIZE, so such a message at the limit
    fails after DATA with 552.)"""
    message = ASCII + b"x" * 70 + b"\n"
    size = len(crlf(message))
    handler, proxy = aio_route(sender, aiosmtpd, proxies,
                               data_size_limit=size + slack)
    out = deliver(sender, message=message)
    session = proxy.last_session()
    assert "SIZE" in ehlo_keywords(session)
    if slack == 0:
        assert out == b"r\0" + AIO_ACCEPTED
        [got] = handler.messages
        assert got["mail_options"] == [f"SIZE={size}"]
        assert got["content"] == crlf(message)
    else:
        assert out == TOO_BIG
        assert handler.mail_commands == 0
        assert handler.messages == []
        assert verbs(session) == [b"EHLO", b"QUIT"]


def test_aiosmtpd_8bit_body_is_8bitmime_not_smtputf8(sender, aiosmtpd,
                                                     proxies):
    """An 8-bit body with ASCII headers and envelope: BODY=8BITMIME, and
    no SMTPUTF8 even though this server offers it."""
    handler, proxy = aio_route(sender, aiosmtpd, proxies,
                               enable_SMTPUTF8=True)
    assert deliver(sender, message=EIGHT_BIT) == b"r\0" + AIO_ACCEPTED
    [got] = handler.messages
    assert got["content"] == crlf(EIGHT_BIT)
    assert got["mail_options"] == [f"SIZE={len(crlf(EIGHT_BIT))}",
                                   "BODY=8BITMIME"]
    assert got["smtp_utf8"] is False


def test_aiosmtpd_ascii_message_never_smtputf8(sender, aiosmtpd, proxies):
    handler, proxy = aio_route(sender, aiosmtpd, proxies,
                               enable_SMTPUTF8=True)
    assert deliver(sender, message=ASCII) == b"r\0" + AIO_ACCEPTED
    session = proxy.last_session()
    assert "SMTPUTF8" in ehlo_keywords(session)
    assert session.mail_command() == (
        f"MAIL FROM:<{SENDER}> SIZE={len(crlf(ASCII))}\r\n".encode())
    [got] = handler.messages
    assert got["mail_options"] == [f"SIZE={len(crlf(ASCII))}"]


def test_aiosmtpd_utf8_recipient_with_smtputf8(sender, aiosmtpd, proxies):
    handler, proxy = aio_route(sender, aiosmtpd, proxies,
                               enable_SMTPUTF8=True)
    assert deliver(sender, rcpts=[UTF8_RCPT], message=ASCII) == (
        b"r\0" + AIO_ACCEPTED)
    [got] = handler.messages
    assert got["rcpt_tos"] == [UTF8_RCPT]
    # An ASCII body needs no BODY=8BITMIME; the address needs SMTPUTF8.
    assert got["mail_options"] == [f"SIZE={len(crlf(ASCII))}", "SMTPUTF8"]
    assert got["smtp_utf8"] is True
    assert got["content"] == crlf(ASCII)
    rcpt = [line for line in proxy.last_session().commands()
            if line.startswith(b"RCPT")]
    assert rcpt == [f"RCPT TO:<{UTF8_RCPT}>\r\n".encode()]


def test_aiosmtpd_utf8_header_with_smtputf8(sender, aiosmtpd, proxies):
    handler, _ = aio_route(sender, aiosmtpd, proxies, enable_SMTPUTF8=True)
    assert deliver(sender, message=UTF8_HEADER) == b"r\0" + AIO_ACCEPTED
    [got] = handler.messages
    assert got["mail_options"] == [f"SIZE={len(crlf(UTF8_HEADER))}",
                                   "BODY=8BITMIME", "SMTPUTF8"]
    assert got["content"] == crlf(UTF8_HEADER)


@pytest.mark.parametrize("rcpt,message", [(UTF8_RCPT, ASCII),
                                          (BOB, UTF8_HEADER)],
                         ids=["utf8-recipient", "utf8-header"])
def test_aiosmtpd_without_smtputf8_is_permanent(sender, aiosmtpd, proxies,
                                                rcpt, message):
    handler, proxy = aio_route(sender, aiosmtpd, proxies,
                               enable_SMTPUTF8=False)
    assert deliver(sender, rcpts=[rcpt], message=message) == NO_UTF8
    session = proxy.last_session()
    assert "SMTPUTF8" not in ehlo_keywords(session)
    assert verbs(session) == [b"EHLO", b"QUIT"]
    assert handler.mail_commands == 0


# ---- Postfix ----

POSTFIX_SIZE_LIMIT = 20000
# Postfix refuses a bare LF even from loopback here, so that every
# delivery also proves that we sent none; it refuses a sender at MAIL,
# not at the first RCPT.
POSTFIX_EXTRA = f"""\
message_size_limit = {POSTFIX_SIZE_LIMIT}
smtputf8_enable = yes
smtpd_forbid_bare_newline = reject
smtpd_forbid_bare_newline_exclusions =
smtpd_delay_reject = no
smtpd_sender_restrictions =
    check_sender_access inline:{{ {{refused@example.test = 553 go away}} }}
smtpd_recipient_restrictions =
    check_recipient_access inline:{{
        {{nosuch@remote.test = 550 no such user}}
        {{later@remote.test = 450 try later}} }}
"""


@pytest.fixture(scope="module")
def postfix_server():
    if not foreign.postfix_installed():
        pytest.skip("Postfix is not installed (/usr/sbin/postfix): "
                    "as root, scripts/deps.sh or scripts/bench-deps.sh "
                    "installs it")
    if not is_root():
        pytest.skip("Postfix's master must be started as root")
    top = qmtest.make_public_tempdir("qm-postfix-")
    server = foreign.Postfix(top, extra=POSTFIX_EXTRA)
    try:
        try:
            server.start()
        except foreign.PostfixError as e:
            pytest.fail(str(e), pytrace=False)
        yield server
    finally:
        left = server.stop()
        server.remove()
    assert not left, f"postfix processes survived: {left!r}"


@pytest.fixture
def postfix(postfix_server, qm_logbook):
    """The shared Postfix with an empty Maildir; its log lines of this
    test go to the test's logs."""
    postfix_server.empty_maildir()
    postfix_server.log_mark = len(postfix_server.log_text())
    yield postfix_server
    text = postfix_server.log_text()[postfix_server.log_mark:]
    with open(qm_logbook.new("postfix-maillog"), "w") as f:
        f.write(text)
    # Postfix notices a client that sends before it may (RFC 2920).
    if "improper command pipelining" in text:
        pytest.fail("Postfix logged improper command pipelining",
                    pytrace=False)


NOSUCH_SAID = ("550 5.7.1 <nosuch@remote.test>: Recipient address "
               "rejected: no such user")


def pf_route(sender, postfix, proxies):
    proxy = proxies(postfix.port)
    route(sender, proxy)
    return proxy


def arrived(postfix, count=1):
    """The Maildir's messages once count are there (and no more)."""
    messages = wait_for(lambda: len(postfix.messages()) >= count and
                        postfix.messages(), timeout=20,
                        message=f"{count} message(s) in Postfix's Maildir")
    assert len(messages) == count, messages
    return [data for _, data in messages]


def log_has(postfix, pattern):
    """Waits for a line of this test in Postfix's log."""
    return wait_for(lambda: re.search(
        pattern, postfix.log_text()[postfix.log_mark:]),
                    timeout=10, message=f"Postfix log line {pattern!r}")


def assert_pipelined(session, rcpts):
    """MAIL, every RCPT and DATA reached the server in one read."""
    mail = session.mail_command()
    batch = mail + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts) \
        + b"DATA\r\n"
    reads = [data for data in session.reads("c")
             if data.startswith(b"MAIL FROM:")]
    assert reads == [batch]


def test_postfix_plain_delivery(sender, postfix, proxies):
    proxy = pf_route(sender, postfix, proxies)
    out = deliver(sender)
    assert re.fullmatch(rb"r\0" + POSTFIX_ACCEPTED.pattern, out), out
    [data] = arrived(postfix)
    trace, rest = foreign.strip_trace(data)
    # Postfix stores LF lines: the CRLF line and the bare CR came over as
    # CRLF and are LF now; the quoting dots are gone.
    assert rest == CONTENT.replace(b"\r\n", b"\n")
    assert trace[0] == f"Return-Path: <{SENDER}>\n".encode()
    assert f"Delivered-To: {BOB}\n".encode() in trace
    assert re.match(rb"Received: from example\.test \(unknown "
                    rb"\[127\.0\.0\.1\]\)\n", b"".join(
                        t for t in trace if t.startswith(b"Received:")))
    assert b"with ESMTP id" in b"".join(trace)
    queue_id = re.search(rb"queued as ([0-9A-F]+)", out).group(1).decode()
    log_has(postfix, rf"{queue_id}: from=<{SENDER}>, size=\d+, nrcpt=1")
    log_has(postfix, rf"{queue_id}: to=<{BOB}>, relay=virtual, .*"
            r"status=sent \(delivered to maildir\)")
    log_has(postfix, r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 "
            r"mail=1 rcpt=1 data=1 quit=1 commands=5")
    session = proxy.last_session()
    assert "PIPELINING" in ehlo_keywords(session)
    assert_pipelined(session, [BOB])
    wire = session.text("c")
    assert wire[wire.index(b"DATA\r\n") + 6:] == DATA_STREAM + b"QUIT\r\n"


def test_postfix_ascii_message_has_no_smtputf8_or_body(sender, postfix,
                                                       proxies):
    proxy = pf_route(sender, postfix, proxies)
    out = deliver(sender, message=ASCII)
    assert re.fullmatch(rb"r\0" + POSTFIX_ACCEPTED.pattern, out), out
    session = proxy.last_session()
    assert {"SMTPUTF8", "8BITMIME"} <= set(ehlo_keywords(session))
    assert session.mail_command() == (
        f"MAIL FROM:<{SENDER}> SIZE={len(crlf(ASCII))}\r\n".encode())
    [data] = arrived(postfix)
    assert foreign.strip_trace(data)[1] == ASCII


def test_postfix_pipelined_recipients_one_refused(sender, postfix, proxies):
    proxy = pf_route(sender, postfix, proxies)
    rcpts = [BOB, "nosuch@remote.test", "carol@remote.test"]
    out = deliver(sender, rcpts=rcpts, message=ASCII)
    assert re.fullmatch(rb"r\0" + re.escape(refused(NOSUCH_SAID)) +
                        rb"r\0" + POSTFIX_ACCEPTED.pattern, out), out
    assert_pipelined(proxy.last_session(), rcpts)
    delivered_to = sorted(
        re.search(rb"^Delivered-To: (.*)$", data, re.M).group(1)
        for data in arrived(postfix, 2))
    assert delivered_to == [BOB.encode(), b"carol@remote.test"]


@pytest.mark.parametrize("rcpts,kind", [
    (["nosuch@remote.test"], b"D"),
    (["nosuch@remote.test", "later@remote.test"], b"Z")],
    ids=["permanent", "one-temporary"])
def test_postfix_every_recipient_refused(sender, postfix, proxies, rcpts,
                                         kind):
    """No recipient accepted: Postfix answers the pipelined DATA with an
    error and no message follows; one temporary refusal makes it Z."""
    proxy = pf_route(sender, postfix, proxies)
    out = deliver(sender, rcpts=rcpts, message=ASCII)
    expect = refused(NOSUCH_SAID)
    if len(rcpts) > 1:
        expect += (b"s127.0.0.1 does not like recipient.\nRemote host said: "
                   b"450 4.7.1 <later@remote.test>: Recipient address "
                   b"rejected: try later\0")
    assert out == expect + kind + NO_RCPT[1:]
    session = proxy.last_session()
    assert_pipelined(session, rcpts)
    assert verbs(session) == ([b"EHLO", b"MAIL"] + [b"RCPT"] * len(rcpts) +
                              [b"DATA", b"QUIT"])
    assert b"\r\n354 " not in session.text("s")
    assert postfix.messages() == []


def test_postfix_sender_refused_while_pipelining(sender, postfix, proxies):
    """MAIL refused: the replies to the pipelined RCPT and DATA are read
    (and ignored) before QUIT, and only the message report is written."""
    proxy = pf_route(sender, postfix, proxies)
    out = report(run_remote(sender, "remote.test", rcpts=[BOB],
                            sender="refused@example.test", message=ASCII,
                            timeout=60))
    assert out == (b"DConnected to 127.0.0.1 but sender was rejected.\n"
                   b"Remote host said: 553 5.7.1 <refused@example.test>: "
                   b"Sender address rejected: go away\0")
    session = proxy.last_session()
    assert_pipelined(session, [BOB])
    assert verbs(session) == [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"QUIT"]
    # QUIT went after the last reply, so Postfix saw it in step.
    replies = session.text("s").split(b"\r\n")
    assert replies[-2].startswith(b"221 ")
    log_has(postfix, r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 "
            r"mail=0/1 rcpt=0/1 data=0/1 quit=1 commands=2/5")
    assert postfix.messages() == []


def test_postfix_null_sender(sender, postfix, proxies):
    pf_route(sender, postfix, proxies)
    out = report(run_remote(sender, "remote.test", rcpts=[BOB], sender="",
                            message=ASCII, timeout=60))
    assert re.fullmatch(rb"r\0" + POSTFIX_ACCEPTED.pattern, out), out
    [data] = arrived(postfix)
    trace, rest = foreign.strip_trace(data)
    assert trace[0] == b"Return-Path: <>\n"
    assert rest == ASCII
    log_has(postfix, r"from=<>, size=\d+, nrcpt=1")


def test_postfix_refuses_bare_lf_so_the_checks_mean_something(postfix):
    """The other Postfix tests rely on this instance refusing a bare LF:
    prove that it does, with a client that sends one in DATA."""
    with qmtest.connect(IP, postfix.port) as sock:
        replies = sock.makefile("rb")

        def wait_for_reply(code):
            while True:
                line = replies.readline()
                assert line[:3] == code, line
                if line[3:4] == b" ":
                    return

        wait_for_reply(b"220")
        sock.sendall(b"EHLO bad.test\r\n")
        wait_for_reply(b"250")
        sock.sendall(b"MAIL FROM:<x@example.test>\r\n"
                     b"RCPT TO:<bob@remote.test>\r\nDATA\r\n")
        wait_for_reply(b"250")
        wait_for_reply(b"250")
        wait_for_reply(b"354")
        sock.sendall(b"Subject: bare\r\n\r\nbare\nLF\r\n.\r\n")
        got = replies.readline()
        replies.close()
    assert got == (b"550 5.5.2 postfix.remote.test Error: bare <LF> "
                   b"received\r\n")
    assert postfix.messages() == []


def test_postfix_size_limit(sender, postfix, proxies):
    proxy = pf_route(sender, postfix, proxies)
    line = b"x" * 76 + b"\n"
    under = ASCII + line * ((POSTFIX_SIZE_LIMIT - 2000) // len(line))
    out = deliver(sender, message=under)
    assert re.fullmatch(rb"r\0" + POSTFIX_ACCEPTED.pattern, out), out
    session = proxy.last_session()
    assert "SIZE" in ehlo_keywords(session)
    server_text = session.text("s")
    assert f"250-SIZE {POSTFIX_SIZE_LIMIT}\r\n".encode() in server_text
    assert session.mail_command() == (
        f"MAIL FROM:<{SENDER}> SIZE={len(crlf(under))}\r\n".encode())
    [data] = arrived(postfix)
    assert foreign.strip_trace(data)[1] == under

    postfix.empty_maildir()
    over = ASCII + line * (POSTFIX_SIZE_LIMIT // len(line) + 1)
    assert deliver(sender, message=over) == TOO_BIG
    assert verbs(proxy.last_session()) == [b"EHLO", b"QUIT"]
    log_has(postfix, r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 "
            r"quit=1 commands=2")
    assert postfix.messages() == []


def test_postfix_utf8_recipient(sender, postfix, proxies):
    proxy = pf_route(sender, postfix, proxies)
    out = deliver(sender, rcpts=[UTF8_RCPT], message=ASCII)
    assert re.fullmatch(rb"r\0" + POSTFIX_ACCEPTED.pattern, out), out
    session = proxy.last_session()
    assert session.mail_command() == (
        f"MAIL FROM:<{SENDER}> SIZE={len(crlf(ASCII))} SMTPUTF8\r\n"
        .encode())
    assert_pipelined(session, [UTF8_RCPT])
    [data] = arrived(postfix)
    trace, rest = foreign.strip_trace(data)
    assert rest == ASCII
    assert f"Delivered-To: {UTF8_RCPT}\n".encode() in trace
    assert b"with UTF8SMTP id" in b"".join(trace)
    log_has(postfix, rf"to=<{UTF8_RCPT}>, relay=virtual, .*status=sent")


def test_postfix_8bit_and_utf8_header(sender, postfix, proxies):
    proxy = pf_route(sender, postfix, proxies)
    out = deliver(sender, message=EIGHT_BIT)
    assert re.fullmatch(rb"r\0" + POSTFIX_ACCEPTED.pattern, out), out
    assert proxy.last_session().mail_command() == (
        f"MAIL FROM:<{SENDER}> SIZE={len(crlf(EIGHT_BIT))} "
        f"BODY=8BITMIME\r\n".encode())
    [data] = arrived(postfix)
    assert foreign.strip_trace(data)[1] == EIGHT_BIT

    postfix.empty_maildir()
    out = deliver(sender, message=UTF8_HEADER)
    assert re.fullmatch(rb"r\0" + POSTFIX_ACCEPTED.pattern, out), out
    assert proxy.last_session().mail_command() == (
        f"MAIL FROM:<{SENDER}> SIZE={len(crlf(UTF8_HEADER))} "
        f"BODY=8BITMIME SMTPUTF8\r\n".encode())
    [data] = arrived(postfix)
    assert foreign.strip_trace(data)[1] == UTF8_HEADER
