"""End-to-end tests of qmail-inject, sendmail, predate and datemail.

Each test gets its own qmail home under /tmp holding control/me and the
other injection control files, with bin/ linked to the programs under
test. $QMAILQUEUE is a small script that saves its fd 0 (the message) and
fd 1 (the envelope) and exits with a chosen code, so the tests see the
exact bytes that qmail-queue would get. Nothing is left behind.
"""

import os
import re
import subprocess

import pytest

import qmtest

ME = "mail.example.com"
DATE_RE = rb"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000"
MSGID_RE = rb"<\d+\.\d+\.\d+@id\.example\.com>"
PROGRAMS = ("qmail-inject", "sendmail", "predate", "datemail")


class Home:
    """A qmail home with control files, bin/ and a fake qmail-queue."""

    def __init__(self, path, bindir):
        self.path = path
        self.bin = path / "bin"
        self.bin.mkdir()
        for name in PROGRAMS:
            (self.bin / name).symlink_to(bindir / name)
        self.control_dir = path / "control"
        self.control_dir.mkdir()
        self.control("me", ME + "\n")
        self.control("defaultdomain", "example.com\n")
        self.control("idhost", "id.example.com\n")
        self.out = path / "out"
        self.out.mkdir()
        self.script = path / "fake-qmail-queue"
        self.set_code(0)

    def control(self, name, text):
        (self.control_dir / name).write_text(text)

    def set_code(self, code):
        self.script.write_text(
            "#!/bin/sh\n"
            f"touch '{self.out}/ran'\n"
            f"cat > '{self.out}/msg' || exit 54\n"
            f"cat <&1 > '{self.out}/env' || exit 54\n"
            f"exit {code}\n")
        self.script.chmod(0o755)

    def saved(self, name):
        path = self.out / name
        return path.read_bytes() if path.exists() else None

    @property
    def ran(self):
        return (self.out / "ran").exists()

    @property
    def message(self):
        return self.saved("msg")

    @property
    def envelope(self):
        return self.saved("env")


@pytest.fixture
def home(bindir):
    path = qmtest.make_public_tempdir("qm-inject-")
    yield Home(path, bindir)
    qmtest.remove_tree(path)


@pytest.fixture
def run(home, bindir, qm_logbook):
    """run(prog, *args, input=bytes, env={...}) -> CompletedProcess. The
    environment is built from scratch, so nothing of the caller's (NAME,
    QMAILINJECT...) leaks in."""

    def call(prog, *args, input=b"", env=None, argv0=None):
        base = {"PATH": f"{bindir}:/usr/bin:/bin",
                "QMAILHOME": str(home.path),
                "QMAILQUEUE": str(home.script),
                "USER": "alice"}
        base.update(env or {})
        full = qmtest.program_env(bindir, base)
        path = str(home.bin / prog) if argv0 is None else argv0
        result = subprocess.run([path] + [str(a) for a in args],
                                input=input, env=full, cwd=home.path,
                                capture_output=True, timeout=60)
        log = qm_logbook.new(f"run-{prog}")
        log.write_bytes(f"argv: {args!r}\nexit: {result.returncode}\n"
                        "stderr:\n".encode() + result.stderr)
        return result

    return call


def envelope(sender, *rcpts):
    data = b"F" + sender.encode() + b"\0"
    for r in rcpts:
        data += b"T" + r.encode() + b"\0"
    return data + b"\0"


def split_message(data):
    head, sep, body = data.partition(b"\n\n")
    assert sep, data
    return head.split(b"\n"), body


def check_added(lines, name="alice@mail.example.com"):
    """The last three header lines are the ones qmail-inject adds."""
    assert re.fullmatch(rb"Date: " + DATE_RE, lines[-3]), lines
    assert re.fullmatch(rb"Message-ID: " + MSGID_RE, lines[-2]), lines
    assert lines[-1] == b"From: " + name.encode(), lines


# ---- qmail-inject ----


def test_header_recipients_envelope_and_fixed_header(home, run):
    msg = (b"To: bob, Carol <carol@other.example>\nSubject: hi\n"
           b"Bcc: secret\nContent-Length: 99\n\nbody\n")
    r = run("qmail-inject", input=msg)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"" and r.stderr == b""
    assert home.envelope == envelope(
        "alice@mail.example.com", "bob@mail.example.com",
        "carol@other.example", "secret@mail.example.com")
    lines, body = split_message(home.message)
    assert lines[:2] == [
        b"To: bob@mail.example.com, Carol <carol@other.example>",
        b"Subject: hi"]
    assert len(lines) == 5
    check_added(lines)
    assert body == b"body\n"


def test_argv_recipients_and_sender(home, run):
    msg = b"To: nobody@else.example\n\nbody\n"
    r = run("qmail-inject", "-f", "bounce@x.example", "carol",
            "dave@y.example", input=msg)
    assert r.returncode == 0, r.stderr
    assert home.envelope == envelope("bounce@x.example",
                                     "carol@mail.example.com",
                                     "dave@y.example")
    assert home.message.startswith(b"To: nobody@else.example\n")


def test_modes_a_h_H(home, run):
    msg = b"To: hdr@h.example\n\n"
    r = run("qmail-inject", "-a", input=msg)
    assert r.returncode == 100
    assert b"qmail-inject: fatal: no recipients" in r.stderr
    assert not home.ran
    r = run("qmail-inject", "-h", "arg@a.example", input=msg)
    assert r.returncode == 0, r.stderr
    assert home.envelope == envelope("alice@mail.example.com",
                                     "hdr@h.example")
    r = run("qmail-inject", "-H", "arg@a.example", input=msg)
    assert r.returncode == 0, r.stderr
    assert home.envelope == envelope("alice@mail.example.com",
                                     "arg@a.example", "hdr@h.example")


def test_print_mode(home, run):
    msg = b"Subject: x\nTo: bob\n\nline 1\nline 2\n"
    r = run("qmail-inject", "-n", input=msg)
    assert r.returncode == 0, r.stderr
    assert not home.ran
    lines, body = split_message(r.stdout)
    assert lines[:2] == [b"Subject: x", b"To: bob@mail.example.com"]
    check_added(lines)
    assert body == b"line 1\nline 2\n"


def test_cc_recipient_list_not_shown(home, run):
    r = run("qmail-inject", "-n", input=b"Bcc: a@b.example\n\nx\n")
    assert r.returncode == 0, r.stderr
    lines, _ = split_message(r.stdout)
    assert lines[-1] == b"Cc: recipient list not shown: ;"
    assert b"Bcc" not in r.stdout


def test_environment_names_and_flags(home, run):
    env = {"QMAILUSER": "bob", "QMAILHOST": "box", "QMAILNAME": "Bob B.",
           "QMAILSUSER": "bounces", "QMAILSHOST": "lists.example",
           "QMAILINJECT": "r"}
    r = run("qmail-inject", "x@y.example", input=b"To: x@y.example\n\n",
            env=env)
    assert r.returncode == 0, r.stderr
    assert home.envelope == envelope("bounces@lists.example-@[]",
                                     "x@y.example")
    lines, _ = split_message(home.message)
    assert lines[-1] == b'From: "Bob B." <bob@box.example.com>'
    r = run("qmail-inject", "-F", "Zed", "x@y.example",
            input=b"To: x@y.example\n\n", env={"QMAILINJECT": "c"})
    assert r.returncode == 0, r.stderr
    lines, _ = split_message(home.message)
    assert lines[-1] == b"From: alice@mail.example.com (Zed)"


def test_return_path_and_control_overrides(home, run):
    home.control("defaulthost", "dh\n")
    home.control("plusdomain", "plus.example\n")
    msg = b"Return-Path: <rp@list+>\nTo: u\n\n"
    r = run("qmail-inject", input=msg)
    assert r.returncode == 0, r.stderr
    assert home.envelope == envelope("rp@list.plus.example",
                                     "u@dh.example.com")
    assert b"Return-Path" not in home.message
    r = run("qmail-inject", input=msg, env={"QMAILINJECT": "s",
                                            "QMAILDEFAULTHOST": "e.test"})
    assert r.returncode == 0, r.stderr
    assert home.envelope == envelope("alice@e.test", "u@e.test")


def test_control_rewrite(home, run):
    home.control("rewrite", "=:hub.example\n-.internal:gw.example\n")
    r = run("qmail-inject", "-n", input=b"To: a, b@x.internal\n\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"To: a@hub.example, b@gw.example\n")


def test_crlf_passed_through(home, run):
    msg = b"To: bob\r\nSubject: s\r\n\r\nbody\r\nmore\r\n"
    r = run("qmail-inject", input=msg)
    assert r.returncode == 0, r.stderr
    data = home.message
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep and body == b"body\r\nmore\r\n"
    lines = head.split(b"\r\n")
    assert lines[0] == b"To: bob@mail.example.com"
    assert re.fullmatch(rb"Date: " + DATE_RE, lines[2])
    assert b"\n" not in head.replace(b"\r\n", b"")


def test_no_separator_is_all_header(home, run):
    r = run("qmail-inject", input=b"To: bob\nSubject: no body")
    assert r.returncode == 0, r.stderr
    lines = home.message.split(b"\n")
    assert lines[:2] == [b"To: bob@mail.example.com", b"Subject: no body"]
    assert lines[-1] == b""
    check_added(lines[:-1])
    assert b"\n\n" not in home.message


def test_body_without_header(home, run):
    r = run("qmail-inject", "-n", input=b"just text\nmore\n")
    assert r.returncode == 0, r.stderr
    lines, body = split_message(r.stdout)
    assert body == b"just text\nmore\n"
    check_added(lines[:-1])
    assert lines[-1] == b"Cc: recipient list not shown: ;"


def test_large_body_streamed(home, run):
    body = b"".join(b"%08d abcdefghijklmnopqrstuvwxyz\n" % i
                    for i in range(200000))
    r = run("qmail-inject", "x@y.example", input=b"Subject: big\n\n" + body)
    assert r.returncode == 0, r.stderr
    assert home.message.endswith(b"\n\n" + body)


def test_long_recipient_refused_nothing_queued(home, run):
    host = "@x.example"
    long_rcpt = "a" * (1003 - len(host)) + host
    assert len(long_rcpt) == 1003
    r = run("qmail-inject", long_rcpt, input=b"Subject: s\n\nbody\n")
    assert r.returncode == 100
    assert b"qmail-inject: fatal: recipient address too long" in r.stderr
    assert not home.ran
    r = run("qmail-inject", input=b"To: " + long_rcpt.encode() + b"\n\n")
    assert r.returncode == 100
    assert not home.ran
    ok = long_rcpt[1:]
    r = run("qmail-inject", ok, input=b"Subject: s\n\nbody\n")
    assert r.returncode == 0, r.stderr
    assert home.envelope == envelope("alice@mail.example.com", ok)


def test_long_sender_refused(home, run):
    sender = "s" * 1000 + "@x.example"
    r = run("qmail-inject", "-f", sender, "a@b.example", input=b"\n")
    assert r.returncode == 100
    assert b"sender address too long" in r.stderr
    assert not home.ran


def test_header_too_long(home, run):
    line = b"X-Long: " + b"a" * 70000 + b"\n"
    r = run("qmail-inject", "a@b.example", input=line + b"\nbody\n")
    assert r.returncode == 100
    assert b"qmail-inject: fatal: header too long" in r.stderr
    assert not home.ran
    many = b"".join(b"X-%d: %s\n" % (i, b"v" * 1000) for i in range(1100))
    r = run("qmail-inject", "a@b.example", input=many + b"\n")
    assert r.returncode == 100
    assert b"header too long" in r.stderr
    assert not home.ran


def test_unparsable_header_recipients(home, run):
    r = run("qmail-inject", input=b"To: joe smith\n\n")
    assert r.returncode == 100
    assert b"To" in r.stderr
    assert not home.ran
    r = run("qmail-inject", "x@y.example", input=b"To: joe smith\n\n")
    assert r.returncode == 0, r.stderr
    assert home.message.startswith(b"To: joe smith\n")


def test_configuration_errors_are_temporary(home, run):
    (home.control_dir / "defaulthost").mkdir()
    r = run("qmail-inject", "a@b.example", input=b"\n")
    assert r.returncode == 111
    assert b"unable to read control/defaulthost" in r.stderr
    (home.control_dir / "defaulthost").rmdir()
    home.control("rewrite", "=:ok.example\nnonsense\n")
    r = run("qmail-inject", "a@b.example", input=b"\n")
    assert r.returncode == 111
    assert b"invalid instruction in control/rewrite: nonsense" in r.stderr
    (home.control_dir / "rewrite").unlink()
    r = run("qmail-inject", "a@b.example", input=b"\n",
            env={"QMAILMFTFILE": str(home.control_dir)})
    assert r.returncode == 111
    assert not home.ran


def test_mail_followup_to(home, run):
    lists = home.path / "lists"
    lists.write_text("# my lists\nqmail@List.Example\n")
    r = run("qmail-inject", "-n", env={"QMAILMFTFILE": str(lists)},
            input=b"To: qmail@list.example\nCc: bob\n\n")
    assert r.returncode == 0, r.stderr
    lines, _ = split_message(r.stdout)
    assert lines[-1] == (b"Mail-Followup-To: qmail@list.example, "
                         b"bob@mail.example.com")


def test_control_characters_in_environment(home, run):
    r = run("qmail-inject", "a@b.example", input=b"\n",
            env={"QMAILUSER": "joe\nBcc: x"})
    assert r.returncode == 100
    assert b"control character" in r.stderr
    assert not home.ran
    r = run("qmail-inject", "-n", input=b"To: a@b.example\n\n",
            env={"QMAILNAME": "Joe\nBcc: evil@x"})
    assert r.returncode == 0, r.stderr
    lines, _ = split_message(r.stdout)
    assert lines[-1] == b'From: "Joe Bcc: evil@x" <alice@mail.example.com>'


def test_unreadable_input_and_output(home, bindir, run):
    env = qmtest.program_env(bindir, {"PATH": "/usr/bin:/bin",
                                      "QMAILHOME": str(home.path),
                                      "QMAILQUEUE": str(home.script)})
    fd = os.open(home.path, os.O_RDONLY)
    try:
        r = subprocess.run([str(home.bin / "qmail-inject"), "a@b.example"],
                           stdin=fd, env=env, capture_output=True,
                           timeout=30)
    finally:
        os.close(fd)
    assert r.returncode == 111
    assert b"unable to read the message" in r.stderr
    assert not home.ran
    with open("/dev/full", "wb") as full:
        r = subprocess.run([str(home.bin / "qmail-inject"), "-n"],
                           input=b"To: a@b.example\n\n", stdout=full,
                           stderr=subprocess.PIPE, env=env, timeout=30)
    assert r.returncode == 111
    assert b"unable to write the message" in r.stderr


def test_usage_error(home, run):
    r = run("qmail-inject", "-z")
    assert r.returncode == 100
    assert b"qmail-inject: fatal: usage" in r.stderr
    r = run("qmail-inject", "-f")
    assert r.returncode == 100
    assert b"qmail-inject: fatal: usage" in r.stderr


def test_missing_home_is_temporary(home, run):
    r = run("qmail-inject", "a@b.example", input=b"\n",
            env={"QMAILHOME": str(home.path / "nonexistent")})
    assert r.returncode == 111


@pytest.mark.parametrize("code,status", [(31, 100), (53, 111), (11, 100),
                                       (81, 111)])
def test_qmail_queue_failures(home, run, code, status):
    home.set_code(code)
    r = run("qmail-inject", "a@b.example", input=b"Subject: s\n\nbody\n")
    assert r.returncode == status
    assert r.stderr.startswith(b"qmail-inject: fatal: ")
    assert home.ran
    if code == 31:
        assert b"permanently rejected" in r.stderr
    if code == 53:
        assert b"disk full" in r.stderr


def test_qmail_queue_missing(home, run):
    r = run("qmail-inject", "a@b.example", input=b"\n",
            env={"QMAILQUEUE": str(home.path / "no-such-program")})
    assert r.returncode == 111


# ---- sendmail ----


def test_sendmail_t_and_f(home, run):
    msg = b"To: bob\nCc: carol@c.example\nBcc: dan\n\nhello\n.\nafter dot\n"
    r = run("sendmail", "-t", "-f", "sender@s.example", "-oi", "-odb",
            "-oem", "-v", input=msg)
    assert r.returncode == 0, r.stderr
    assert home.envelope == envelope("sender@s.example",
                                     "bob@mail.example.com",
                                     "carol@c.example",
                                     "dan@mail.example.com")
    # A lone dot never ends the message.
    assert home.message.endswith(b"\nhello\n.\nafter dot\n")


def test_sendmail_t_adds_argument_recipients(home, run):
    r = run("sendmail", "-t", "-fsender@s.example", "extra@e.example",
            input=b"To: bob@b.example\n\n")
    assert r.returncode == 0, r.stderr
    assert home.envelope == envelope("sender@s.example", "extra@e.example",
                                     "bob@b.example")


def test_sendmail_without_t_uses_arguments_only(home, run):
    r = run("sendmail", "-i", "-F", "Alice A", "x@x.example",
            input=b"To: bob@b.example\n\n")
    assert r.returncode == 0, r.stderr
    assert home.envelope == envelope("alice@mail.example.com",
                                     "x@x.example")
    lines, _ = split_message(home.message)
    assert lines[-1] == b"From: Alice A <alice@mail.example.com>"


def test_sendmail_no_recipients(home, run):
    r = run("sendmail", input=b"To: bob@b.example\n\n")
    assert r.returncode == 100
    assert not home.ran


@pytest.mark.parametrize("opt", ["-q", "-bt", "-bi", "-X", "-C"])
def test_sendmail_unsupported_option(home, run, opt):
    r = run("sendmail", opt, "x", input=b"\n")
    assert r.returncode == 100
    assert b"sendmail: fatal: unsupported option" in r.stderr
    assert not home.ran


def test_sendmail_missing_value_and_newaliases(home, run):
    r = run("sendmail", "-t", "-f", input=b"\n")
    assert r.returncode == 100
    assert b"sendmail: fatal: option -f needs a value" in r.stderr
    (home.path / "newaliases").symlink_to(home.bin / "sendmail")
    r = run("sendmail", argv0=str(home.path / "newaliases"))
    assert r.returncode == 100
    assert b"not supported" in r.stderr
    assert not home.ran


def test_sendmail_without_qmail_inject(home, run):
    (home.bin / "qmail-inject").unlink()
    r = run("sendmail", "a@b.example", input=b"\n")
    assert r.returncode == 111
    assert b"unable to run" in r.stderr


def test_sendmail_bs_without_smtpd(home, run):
    r = run("sendmail", "-bs", input=b"QUIT\r\n")
    assert r.returncode == 111
    assert b"sendmail: fatal: unable to run" in r.stderr
    assert b"qmail-smtpd" in r.stderr


def test_sendmail_bp_and_mailq(home, run):
    qread = home.bin / "qmail-qread"
    qread.write_text("#!/bin/sh\necho qread \"$@\"\n")
    qread.chmod(0o755)
    r = run("sendmail", "-bp")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"qread\n"
    (home.path / "mailq").symlink_to(home.bin / "sendmail")
    r = run("sendmail", argv0=str(home.path / "mailq"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"qread\n"


# ---- predate and datemail ----


def test_predate_prepends_date(home, run):
    r = run("predate", "cat", input=b"Subject: x\n\nbody\n")
    assert r.returncode == 0, r.stderr
    first, rest = r.stdout.split(b"\n", 1)
    assert re.fullmatch(rb"Date: " + DATE_RE, first)
    assert rest == b"Subject: x\n\nbody\n"


def test_predate_exit_code_and_errors(home, run):
    r = run("predate", "sh", "-c", "cat >/dev/null; exit 7", input=b"x\n")
    assert r.returncode == 7
    r = run("predate", "sh", "-c", "exit 3", input=b"x" * 1000000)
    assert r.returncode == 3
    r = run("predate", "/nonexistent/program", input=b"x\n")
    assert r.returncode == 111
    assert b"unable to run" in r.stderr
    r = run("predate")
    assert r.returncode == 100


def test_predate_unreadable_input_kills_program(home, bindir):
    env = qmtest.program_env(bindir, {"PATH": "/usr/bin:/bin"})
    marker = home.out / "finished"
    fd = os.open(home.path, os.O_RDONLY)
    try:
        r = subprocess.run([str(home.bin / "predate"), "sh", "-c",
                            f"cat >/dev/null; touch '{marker}'"],
                           stdin=fd, env=env, capture_output=True,
                           timeout=30)
    finally:
        os.close(fd)
    assert r.returncode == 111
    assert b"predate: fatal: unable to read input" in r.stderr
    assert not marker.exists()


def test_datemail(home, run):
    r = run("datemail", "-t", input=b"To: bob\nSubject: d\n\nbody\n")
    assert r.returncode == 0, r.stderr
    assert home.envelope == envelope("alice@mail.example.com",
                                     "bob@mail.example.com")
    lines, body = split_message(home.message)
    assert re.fullmatch(rb"Date: " + DATE_RE, lines[0])
    assert sum(1 for line in lines if line.startswith(b"Date:")) == 1
    assert body == b"body\n"
