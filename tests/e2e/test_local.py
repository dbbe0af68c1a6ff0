"""End-to-end tests of local delivery: qmail-local and maildir2mbox.

qmail-local runs directly (as qmail-lspawn would run it) in a temporary
home, with the message in a file on stdin. Each test checks the exact
exit code, the report on stdout and the files left behind. Forwarding
uses a QMAILQUEUE script that records what it was given.
"""

import json
import os
import pathlib
import re
import shutil
import stat
import subprocess
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:")

MESSAGE = (b"From: Alice <alice@example.org>\n"
           b"To: joe@example.com\n"
           b"Subject: test\n"
           b"\n"
           b"Hello Joe.\n"
           b"From the start of a line.\n"
           b">From a quoted line.\n"
           b"Delivered-To: joe@example.com\n")


def binary(name):
    build = pathlib.Path(os.environ.get("QM_BUILD") or REPO / "build")
    path = build / "bin" / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run make first (or set QM_BUILD)",
                    pytrace=False)
    return str(path)


@pytest.fixture
def scratch():
    """A directory outside the home for messages and recordings."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="qm-local-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def home():
    """A home directory, mode 0755, with an empty Maildir."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="qm-home-"))
    path.chmod(0o755)
    os.mkdir(path / "Maildir")
    for sub in ("tmp", "new", "cur"):
        os.mkdir(path / "Maildir" / sub)
    yield path
    # A test may leave the home sticky or writable.
    path.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


def run_local(home, scratch, *, message=MESSAGE, local="joe", dash="",
              ext="", domain="example.com", sender="alice@example.org",
              default="./Maildir/", options=(), env=None):
    msgfile = scratch / "message"
    msgfile.write_bytes(message)
    full_env = dict(os.environ)
    full_env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0"
    full_env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    full_env.pop("QMAILQUEUE", None)
    full_env.update(env or {})
    with open(msgfile, "rb") as stdin:
        result = subprocess.run(
            [binary("qmail-local"), *options, "--", "joe", str(home), local,
             dash, ext, domain, sender, default],
            stdin=stdin, capture_output=True, env=full_env, timeout=120)
    for marker in SANITIZER_MARKERS:
        assert marker not in result.stderr.decode(errors="replace")
    return result


def write_dotqmail(home, name, content, mode=0o644):
    path = home / name
    path.write_bytes(content.encode() if isinstance(content, str)
                     else content)
    path.chmod(mode)
    return path


def maildir_files(home, sub="new"):
    return sorted((home / "Maildir" / sub).iterdir())


def assert_nothing_delivered(home):
    assert maildir_files(home) == []
    assert maildir_files(home, "tmp") == []
    assert not (home / "Mailbox").exists()


HEAD = (b"Return-Path: <alice@example.org>\n"
        b"Delivered-To: joe@example.com\n")
FROM_LINE = re.compile(rb"From (\S+) (Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                       rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                       rb"[ 123]\d \d\d:\d\d:\d\d \d{4}\n")


# --- Maildir ---

def test_default_delivery_to_maildir(home, scratch):
    r = run_local(home, scratch)
    assert r.returncode == 0, r.stdout
    assert r.stdout == b"did 1+0+0\n"
    files = maildir_files(home)
    assert len(files) == 1
    assert maildir_files(home, "tmp") == []
    assert files[0].read_bytes() == HEAD + MESSAGE
    assert re.fullmatch(r"\d+\.M\d+P\d+Q\d+\.[^/:]+", files[0].name)
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_dotqmail_maildir_line(home, scratch):
    write_dotqmail(home, ".qmail", "# deliver here\n./Maildir/\n")
    r = run_local(home, scratch, default="./Mailbox")
    assert r.returncode == 0
    assert r.stdout == b"did 1+0+0\n"
    assert [f.read_bytes() for f in maildir_files(home)] == [HEAD + MESSAGE]
    assert not (home / "Mailbox").exists()


def test_two_maildir_deliveries_get_two_files(home, scratch):
    write_dotqmail(home, ".qmail", "./Maildir/\n./Maildir/\n")
    r = run_local(home, scratch)
    assert r.returncode == 0
    assert r.stdout == b"did 2+0+0\n"
    files = maildir_files(home)
    assert len(files) == 2
    assert all(f.read_bytes() == HEAD + MESSAGE for f in files)


def test_missing_maildir_is_temporary(home, scratch):
    shutil.rmtree(home / "Maildir")
    r = run_local(home, scratch)
    assert r.returncode == 111
    assert r.stdout.startswith(b"Unable to write Maildir file ./Maildir/tmp/")
    assert b"No such file or directory" in r.stdout


def test_large_message_streams(home, scratch):
    body = b"".join(b"line %07d of a long message\n" % i
                    for i in range(200000))
    message = b"Subject: big\n\n" + body
    r = run_local(home, scratch, message=message)
    assert r.returncode == 0
    assert maildir_files(home)[0].read_bytes() == HEAD + message


def test_return_path_quotes_odd_sender(home, scratch):
    r = run_local(home, scratch, sender="john smith@example.org")
    assert r.returncode == 0
    content = maildir_files(home)[0].read_bytes()
    assert content.startswith(b'Return-Path: <"john smith"@example.org>\n')


# --- mbox ---

def test_mbox_delivery_quotes_and_appends(home, scratch):
    write_dotqmail(home, ".qmail", "./Mailbox\n")
    r = run_local(home, scratch)
    assert r.returncode == 0
    assert r.stdout == b"did 1+0+0\n"
    r = run_local(home, scratch, message=b"Subject: two\n\nFrom x\nno eol")
    assert r.returncode == 0
    data = (home / "Mailbox").read_bytes()
    assert stat.S_IMODE((home / "Mailbox").stat().st_mode) == 0o600
    first = FROM_LINE.match(data)
    assert first and first.group(1) == b"alice@example.org"
    rest = data[first.end():]
    quoted = MESSAGE.replace(b"\nFrom the", b"\n>From the").replace(
        b"\n>From a", b"\n>>From a")
    assert rest.startswith(HEAD + quoted + b"\n")
    rest = rest[len(HEAD + quoted + b"\n"):]
    second = FROM_LINE.match(rest)
    assert second
    assert rest[second.end():] == (HEAD + b"Subject: two\n\n>From x\n"
                                   b"no eol\n\n")


def test_mbox_empty_sender(home, scratch):
    write_dotqmail(home, ".qmail", "./Mailbox\n")
    r = run_local(home, scratch, sender="")
    assert r.returncode == 0
    data = (home / "Mailbox").read_bytes()
    m = FROM_LINE.match(data)
    assert m and m.group(1) == b"MAILER-DAEMON"
    assert data[m.end():].startswith(b"Return-Path: <>\n"
                                     b"Delivered-To: joe@example.com\n")


def test_mbox_in_missing_directory_is_temporary(home, scratch):
    write_dotqmail(home, ".qmail", "./nodir/Mailbox\n")
    r = run_local(home, scratch)
    assert r.returncode == 111
    assert r.stdout == (b"Unable to open ./nodir/Mailbox: No such file or "
                        b"directory. (#4.2.1)\n")


# --- programs ---

def test_program_gets_the_bare_message(home, scratch):
    write_dotqmail(home, ".qmail", "|cat > got\n")
    r = run_local(home, scratch)
    assert r.returncode == 0
    assert r.stdout == b"did 0+0+1\n"
    # No Return-Path or Delivered-To: preline adds those.
    assert (home / "got").read_bytes() == MESSAGE


def test_each_instruction_reads_from_the_start(home, scratch):
    write_dotqmail(home, ".qmail",
                   "|head -c 5 > first\n|cat > second\n./Maildir/\n")
    r = run_local(home, scratch)
    assert r.returncode == 0
    assert r.stdout == b"did 1+0+2\n"
    assert (home / "first").read_bytes() == MESSAGE[:5]
    assert (home / "second").read_bytes() == MESSAGE
    assert maildir_files(home)[0].read_bytes() == HEAD + MESSAGE


def test_program_exit_99_stops_processing(home, scratch):
    write_dotqmail(home, ".qmail",
                   "|touch ran1\n|exit 99\n|touch ran2\n./Maildir/\n")
    r = run_local(home, scratch)
    assert r.returncode == 0
    assert r.stdout == b"did 0+0+2\n"
    assert (home / "ran1").exists()
    assert not (home / "ran2").exists()
    assert maildir_files(home) == []


@pytest.mark.parametrize("code,expect", [
    (100, 100), (64, 100), (65, 100), (70, 100), (76, 100), (77, 100),
    (78, 100), (112, 100), (111, 111), (1, 111), (2, 111), (75, 111)])
def test_program_exit_codes(home, scratch, code, expect):
    write_dotqmail(home, ".qmail", f"|exit {code}\n|touch later\n")
    r = run_local(home, scratch)
    assert r.returncode == expect
    assert r.stdout == b""
    assert not (home / "later").exists()


def test_program_output_is_the_report(home, scratch):
    write_dotqmail(home, ".qmail",
                   "|echo Mailbox full; echo and stderr too >&2; exit 100\n")
    r = run_local(home, scratch)
    assert r.returncode == 100
    assert r.stdout == b"Mailbox full\nand stderr too\n"


def test_program_killed_by_signal_is_temporary(home, scratch):
    write_dotqmail(home, ".qmail", "|kill -9 $$\n./Maildir/\n")
    r = run_local(home, scratch)
    assert r.returncode == 111
    assert r.stdout == b"Aack, child crashed. (#4.3.0)\n"
    assert maildir_files(home) == []


def test_program_runs_in_home(home, scratch):
    write_dotqmail(home, ".qmail", "|pwd > where\n")
    r = run_local(home, scratch)
    assert r.returncode == 0
    assert (home / "where").read_text().strip() == str(home)


def dump_env_line():
    return ("|/usr/bin/python3 -c 'import json, os; "
            "print(json.dumps(dict(os.environ)))' > envdump\n")


def test_program_environment(home, scratch):
    write_dotqmail(home, ".qmail-foo-default", dump_env_line())
    r = run_local(home, scratch, local="joe-Foo-Bar.Baz-Qux", dash="-",
                  ext="Foo-Bar.Baz-Qux", domain="mail.Example.com",
                  sender="alice@example.org",
                  env={"QM_INHERITED": "kept", "DEFAULT": "stale"})
    assert r.returncode == 0, r.stdout
    env = json.loads((home / "envdump").read_text())
    assert env["SENDER"] == "alice@example.org"
    assert env["NEWSENDER"] == "alice@example.org"
    assert env["RECIPIENT"] == "joe-Foo-Bar.Baz-Qux@mail.Example.com"
    assert env["USER"] == "joe"
    assert env["HOME"] == str(home)
    assert env["LOCAL"] == "joe-Foo-Bar.Baz-Qux"
    assert env["EXT"] == "Foo-Bar.Baz-Qux"
    assert env["EXT2"] == "Bar.Baz-Qux"
    assert env["EXT3"] == "Qux"
    assert env["EXT4"] == ""
    assert env["DEFAULT"] == "Bar.Baz-Qux"
    assert env["HOST"] == "mail.Example.com"
    assert env["HOST2"] == "mail.Example"
    assert env["HOST3"] == "mail"
    assert env["HOST4"] == "mail"
    assert env["DTLINE"] == \
        "Delivered-To: joe-Foo-Bar.Baz-Qux@mail.Example.com\n"
    assert env["RPLINE"] == "Return-Path: <alice@example.org>\n"
    assert re.fullmatch(r"From alice@example\.org \w{3} \w{3} [ \d]\d "
                        r"\d\d:\d\d:\d\d \d{4}\n", env["UFLINE"])
    assert env["QM_INHERITED"] == "kept"


def test_default_is_unset_for_an_exact_file(home, scratch):
    write_dotqmail(home, ".qmail-foo", dump_env_line())
    r = run_local(home, scratch, local="joe-foo", dash="-", ext="foo",
                  domain="a.b.c.d.e", env={"DEFAULT": "stale"})
    assert r.returncode == 0, r.stdout
    env = json.loads((home / "envdump").read_text())
    assert "DEFAULT" not in env
    assert env["EXT2"] == ""
    assert (env["HOST2"], env["HOST3"], env["HOST4"]) == \
        ("a.b.c.d", "a.b.c", "a.b")


def test_envelope_never_reaches_the_shell(home, scratch):
    pwned = home / "pwned"
    write_dotqmail(home, ".qmail-default",
                   '|printf "%s\\n" "$SENDER" > sender.txt\n'
                   "|/bin/bash -c 'echo bash ran' > bash.txt\n")
    senders = [f"$(touch {pwned})@example.org",
               f"`touch {pwned}`@example.org",
               f"() {{ :; }}; touch {pwned}",
               f"x;touch {pwned}@example.org"]
    for sender in senders:
        for ext in (f"$(touch {pwned})", "a;touch${IFS}pwned"):
            r = run_local(home, scratch, sender=sender, dash="-", ext=ext,
                          local="joe-" + ext)
            assert r.returncode == 0, r.stdout
            assert (home / "sender.txt").read_text() == sender + "\n"
            assert (home / "bash.txt").read_text() == "bash ran\n"
            assert not pwned.exists()
    assert not (home / "pwned").exists()


# --- .qmail lookup ---

def test_ext_lookup_order(home, scratch):
    write_dotqmail(home, ".qmail-foo-bar", "./exact\n")
    write_dotqmail(home, ".qmail-foo-default", "./foodefault\n")
    write_dotqmail(home, ".qmail-default", "./default\n")
    cases = [("foo-bar", "exact"), ("FOO-Bar", "exact"),
             ("foo-baz", "foodefault"), ("foo-bar-baz", "foodefault"),
             ("other", "default"), ("foo", "default")]
    for ext, box in cases:
        r = run_local(home, scratch, local="joe-" + ext, dash="-", ext=ext)
        assert r.returncode == 0, (ext, r.stdout)
        assert r.stdout == b"did 1+0+0\n"
        assert (home / box).read_bytes().count(b"\nDelivered-To: joe-" +
                                               ext.encode()) == 1, ext


def test_ext_dots_become_colons(home, scratch):
    write_dotqmail(home, ".qmail-www:example:com", "./colon\n")
    write_dotqmail(home, ".qmail-www.example.com", "./dotted\n")
    r = run_local(home, scratch, local="joe-www.Example.com", dash="-",
                  ext="www.Example.com")
    assert r.returncode == 0
    assert (home / "colon").exists()
    assert not (home / "dotted").exists()


def test_no_matching_ext_bounces(home, scratch):
    write_dotqmail(home, ".qmail", "./Maildir/\n")
    write_dotqmail(home, ".qmail-foo", "./Maildir/\n")
    r = run_local(home, scratch, local="joe-nothing", dash="-",
                  ext="nothing")
    assert r.returncode == 100
    assert r.stdout == b"Sorry, no mailbox here by that name. (#5.1.1)\n"
    assert_nothing_delivered(home)


def test_empty_dotqmail_means_default_delivery(home, scratch):
    write_dotqmail(home, ".qmail-foo", "")
    r = run_local(home, scratch, local="joe-foo", dash="-", ext="foo",
                  default="./Mailbox")
    assert r.returncode == 0
    assert (home / "Mailbox").exists()


def test_default_delivery_may_hold_several_lines(home, scratch):
    r = run_local(home, scratch, default="./Maildir/\n|cat > copy\n")
    assert r.returncode == 0
    assert r.stdout == b"did 1+0+1\n"
    assert (home / "copy").read_bytes() == MESSAGE


# --- refusals ---

def test_delivered_to_loop_bounces(home, scratch):
    looping = b"Delivered-To: joe@example.com\n" + MESSAGE
    r = run_local(home, scratch, message=looping)
    assert r.returncode == 100
    assert r.stdout == (b"This message is looping: it already has my "
                        b"Delivered-To line. (#5.4.6)\n")
    assert_nothing_delivered(home)
    # Case and blanks around the value do not hide the loop.
    looping = b"Subject: x\ndelivered-to:   JOE@Example.COM  \n\nbody\n"
    r = run_local(home, scratch, message=looping)
    assert r.returncode == 100


def test_other_delivered_to_is_no_loop(home, scratch):
    # Another address in the header, ours only in the body (MESSAGE ends
    # with it): deliver.
    message = b"Delivered-To: bob@example.com\n" + MESSAGE
    r = run_local(home, scratch, message=message)
    assert r.returncode == 0
    r = run_local(home, scratch,
                  message=b"Delivered-To: joe@example.com.evil\n\nx\n")
    assert r.returncode == 0
    assert len(maildir_files(home)) == 2


def test_writable_home_is_temporary(home, scratch):
    home.chmod(0o757)
    r = run_local(home, scratch)
    assert r.returncode == 111
    assert r.stdout == b"Uh-oh: home directory is writable. (#4.7.0)\n"
    assert_nothing_delivered(home)


def test_sticky_home_is_temporary(home, scratch):
    home.chmod(0o1755)
    r = run_local(home, scratch)
    assert r.returncode == 111
    assert r.stdout == (b"Home directory is sticky: user is editing his "
                        b".qmail file. (#4.2.1)\n")
    assert_nothing_delivered(home)


def test_missing_home_is_temporary(home, scratch):
    r = run_local(home / "gone", scratch)
    assert r.returncode == 111
    assert r.stdout.startswith(b"Unable to switch to ")


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_writable_dotqmail_is_temporary(home, scratch, mode):
    write_dotqmail(home, ".qmail", "./Maildir/\n", mode)
    r = run_local(home, scratch)
    assert r.returncode == 111
    assert r.stdout == b"Uh-oh: .qmail file is writable. (#4.7.0)\n"
    assert_nothing_delivered(home)


@pytest.mark.parametrize("content,line,why", [
    (b"|touch ran\n./Maildir/\n&\n", 3, b"empty forwarding address"),
    (b"|touch ran\n&bob@exa\0mple.com\n./Maildir/\n", 2,
     b"NUL byte in line"),
    (b"|touch ran\n./Maildir/\n|" + b"x" * 5000 + b"\n", 3,
     b"line too long"),
    (b"\n|touch ran\n./Maildir/\n", 1, b"first line is blank"),
    (b"|touch ran\n./Maildir/\n <bob@example.com>\n", 3,
     b"unrecognised delivery instruction"),
    (b"|touch ran\n./Maildir/\r\n", 2, b"control character in line"),
])
def test_unreadable_line_delivers_nothing(home, scratch, content, line, why):
    write_dotqmail(home, ".qmail", content)
    r = run_local(home, scratch)
    assert r.returncode == 111
    assert r.stdout == b"Uh-oh: .qmail line %d: %s. (#4.2.1)\n" % (line, why)
    assert_nothing_delivered(home)
    assert not (home / "ran").exists()


def test_bad_default_delivery_is_named(home, scratch):
    r = run_local(home, scratch, default="&")
    assert r.returncode == 111
    assert r.stdout == (b"Uh-oh: the default delivery line 1: empty "
                        b"forwarding address. (#4.2.1)\n")


def test_executable_dotqmail_allows_only_forwards(home, scratch):
    write_dotqmail(home, ".qmail", "&bob@example.net\n./Maildir/\n", 0o744)
    r = run_local(home, scratch)
    assert r.returncode == 111
    assert b"execute bit" in r.stdout
    assert_nothing_delivered(home)


def test_usage(home, scratch):
    r = subprocess.run([binary("qmail-local"), "--", "joe", str(home)],
                       capture_output=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 100
    assert r.stdout.startswith(b"qmail-local: usage:")
    r = run_local(pathlib.Path("relative/home"), scratch)
    assert r.returncode == 100


# --- -n ---

def test_describe_only(home, scratch):
    write_dotqmail(home, ".qmail",
                   "# c\n./Maildir/\n./Mailbox\n|touch ran\n&bob@x.org\n"
                   "carol@y.org\n")
    r = run_local(home, scratch, options=("-n",))
    assert r.returncode == 0
    assert r.stdout == (b"maildir ./Maildir/\nmbox ./Mailbox\n"
                        b"program touch ran\nforward bob@x.org\n"
                        b"forward carol@y.org\ndid 2+2+1\n")
    assert_nothing_delivered(home)
    assert not (home / "ran").exists()


# --- forwarding ---

def fake_queue(scratch, code=0):
    """A QMAILQUEUE that records fd 0 and fd 1, then exits with code."""
    script = scratch / "fake-queue"
    script.write_text("#!/bin/sh\n"
                      f"cat > '{scratch}/qq-message'\n"
                      f"cat <&1 > '{scratch}/qq-envelope'\n"
                      f"exit {code}\n")
    script.chmod(0o755)
    return {"QMAILQUEUE": str(script)}


def test_forward(home, scratch):
    write_dotqmail(home, ".qmail",
                   "# two forwards\n&bob@example.net\ncarol@example.net\n")
    r = run_local(home, scratch, env=fake_queue(scratch))
    assert r.returncode == 0, r.stdout
    assert re.fullmatch(rb"did 0\+2\+0\nqp \d+\n", r.stdout)
    assert (scratch / "qq-envelope").read_bytes() == (
        b"Falice@example.org\0Tbob@example.net\0Tcarol@example.net\0\0")
    assert (scratch / "qq-message").read_bytes() == (
        b"Delivered-To: joe@example.com\n" + MESSAGE)
    assert_nothing_delivered(home)


def test_forward_permanent_failure(home, scratch):
    write_dotqmail(home, ".qmail", "&bob@example.net\n")
    r = run_local(home, scratch, env=fake_queue(scratch, 31))
    assert r.returncode == 100
    assert r.stdout == (b"Unable to forward message: mail server "
                        b"permanently rejected message (#5.3.0).\n")


def test_forward_temporary_failure(home, scratch):
    write_dotqmail(home, ".qmail", "&bob@example.net\n")
    r = run_local(home, scratch, env=fake_queue(scratch, 53))
    assert r.returncode == 111
    assert r.stdout == (b"Unable to forward message: qq write error or "
                        b"disk full (#4.3.0).\n")


def test_forwards_go_after_other_deliveries(home, scratch):
    write_dotqmail(home, ".qmail", "&bob@example.net\n|exit 111\n")
    r = run_local(home, scratch, env=fake_queue(scratch))
    assert r.returncode == 111
    assert not (scratch / "qq-message").exists()


def test_forward_before_exit_99_still_happens(home, scratch):
    write_dotqmail(home, ".qmail",
                   "&bob@example.net\n|exit 99\n&carol@example.net\n")
    r = run_local(home, scratch, env=fake_queue(scratch))
    assert r.returncode == 0
    assert (scratch / "qq-envelope").read_bytes() == (
        b"Falice@example.org\0Tbob@example.net\0\0")


def test_forward_owner_sender(home, scratch):
    write_dotqmail(home, ".qmail-list", "&bob@example.net\n")
    write_dotqmail(home, ".qmail-list-owner", "./Maildir/\n")
    args = dict(local="joe-list", dash="-", ext="list",
                env=fake_queue(scratch))
    r = run_local(home, scratch, **args)
    assert r.returncode == 0
    assert (scratch / "qq-envelope").read_bytes().startswith(
        b"Fjoe-list-owner@example.com\0")
    # With -owner-default too: a VERP sender.
    write_dotqmail(home, ".qmail-list-owner-default", "./Maildir/\n")
    r = run_local(home, scratch, **args)
    assert r.returncode == 0
    assert (scratch / "qq-envelope").read_bytes().startswith(
        b"Fjoe-list-owner-@example.com-@[]\0")
    # A bounce keeps its empty sender.
    r = run_local(home, scratch, sender="", **args)
    assert r.returncode == 0
    assert (scratch / "qq-envelope").read_bytes().startswith(b"F\0")


# --- maildir2mbox ---

def run_maildir2mbox(home):
    env = dict(os.environ, MAILDIR=str(home / "Maildir"),
               MAIL=str(home / "mbox"), MAILTMP=str(home / "mbox.tmp"),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=0")
    r = subprocess.run([binary("maildir2mbox")], capture_output=True,
                       env=env, timeout=60)
    for marker in SANITIZER_MARKERS:
        assert marker not in r.stderr.decode(errors="replace")
    return r


def test_maildir2mbox_moves_messages(home, scratch):
    (home / "mbox").write_bytes(b"From old Thu Jan  1 00:00:00 1970\n\nold\n\n")
    (home / "mbox").chmod(0o640)
    (home / "Maildir" / "new" / "200.M1P1Q1.host").write_bytes(
        b"Return-Path: <bob@example.net>\nSubject: b\n\nFrom me\nend")
    (home / "Maildir" / "cur" / "100.M1P1Q1.host:2,S").write_bytes(
        b"Subject: a\n\n>From you\n")
    r = run_maildir2mbox(home)
    assert r.returncode == 0, r.stderr
    assert (home / "mbox").read_bytes() == (
        b"From old Thu Jan  1 00:00:00 1970\n\nold\n\n"
        b"From MAILER-DAEMON Thu Jan  1 00:01:40 1970\n"
        b"Subject: a\n\n>>From you\n\n"
        b"From bob@example.net Thu Jan  1 00:03:20 1970\n"
        b"Return-Path: <bob@example.net>\nSubject: b\n\n>From me\nend\n\n")
    assert stat.S_IMODE((home / "mbox").stat().st_mode) == 0o640
    assert maildir_files(home) == [] and maildir_files(home, "cur") == []
    assert not (home / "mbox.tmp").exists()


def test_maildir2mbox_after_qmail_local(home, scratch):
    run_local(home, scratch)
    r = run_maildir2mbox(home)
    assert r.returncode == 0
    data = (home / "mbox").read_bytes()
    m = FROM_LINE.match(data)
    assert m and m.group(1) == b"alice@example.org"
    assert data[m.end():].startswith(HEAD)


def test_maildir2mbox_nothing_to_do(home, scratch):
    r = run_maildir2mbox(home)
    assert r.returncode == 0
    assert not (home / "mbox").exists()


def test_maildir2mbox_trouble_keeps_messages(home, scratch):
    msg = home / "Maildir" / "new" / "1.M1P1Q1.host"
    msg.write_bytes(b"Subject: keep\n\nx\n")
    (home / "mbox.tmp").mkdir()  # the temporary copy cannot be made
    r = run_maildir2mbox(home)
    assert r.returncode == 111
    assert r.stderr.startswith(b"maildir2mbox: fatal: ")
    assert msg.exists()
    r = subprocess.run([binary("maildir2mbox")], capture_output=True,
                       env={"PATH": "/bin"})
    assert r.returncode == 111
    assert b"MAILDIR" in r.stderr
