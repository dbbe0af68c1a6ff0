"""End-to-end tests of the admin tools: qmail-qread, qmail-qstat and
qmail-showctl, run as the instance's account on queues and control files
written byte by byte here.

They must leave nothing behind: every process a test starts is stopped,
and every file lives in the instance, which the fixture removes.
"""

import os
import re
import signal
import subprocess
import threading
import time

import pytest

import qmtest
from qmtest import is_root, wait_for

SPLIT = qmtest.SPLIT
DATE = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul" \
    r"|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000"
HEADER = re.compile(DATE + r"  #\d+  \d+  <[ -~]*>(  bouncing)?"
                    r"(  not yet processed)?")
RECIPIENT = re.compile(r"  (done\t)?(local|remote)\t[ -~]*|  rcpt\t[ -~]*")


def tool(instance, name):
    return instance.run([str(instance.bindir / name)])


def put(instance, rel, data, mode=0o600, mtime=None):
    """Writes queue/REL with exactly these bytes, owned by the account as
    qmail-send would leave it."""
    path = instance.path / "queue" / rel
    path.write_bytes(data)
    path.chmod(mode)
    if is_root():
        os.chown(path, instance.uid, instance.gid)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def split(dirname, msgid):
    return f"{dirname}/{msgid % SPLIT}/{msgid}"


def gmdate(t):
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t))


def lines(result):
    return result.stdout.decode("ascii").split("\n")


def qstat_lines(messages, todo):
    return (f"messages in queue: {messages}\n"
            f"messages in queue but not yet preprocessed: {todo}\n").encode()


# ---- an empty queue ----


def test_qread_empty_queue(instance):
    result = tool(instance, "qmail-qread")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_qstat_empty_queue(instance):
    result = tool(instance, "qmail-qstat")
    assert result.returncode == 0, result.stderr
    assert result.stdout == qstat_lines(0, 0)
    assert result.stderr == b""


# ---- a queue written byte by byte ----

BIRTH = 1700000000  # Tue, 14 Nov 2023 22:13:20 +0000


def write_queue(instance):
    """Four messages in every state qmail-send leaves them in."""
    # 100: processed, some recipients done, one with unsafe bytes.
    put(instance, split("mess", 100), b"x" * 37, 0o640)
    put(instance, split("info", 100), b"Fann@example.org\0", mtime=BIRTH)
    put(instance, split("local", 100),
        b"Tbob@example.test\0Dcarol@example.test\0")
    put(instance, split("remote", 100),
        b"Tdan@example.net\0De\x1b[31m\\x\xff@example.net\0")
    # 47: still in todo/ (qmail-queue's envelope), empty sender.
    put(instance, split("mess", 47), b"y" * 5, 0o640)
    put(instance, "intd/47", b"u1000\0p4242\0F\0Tzed@example.test\0"
        b"Tyan@example.net\0")
    os.link(instance.path / "queue/intd/47", instance.path / "queue/todo/47")
    # 200: every recipient done, a bounce waiting.
    put(instance, split("mess", 200), b"", 0o640)
    put(instance, split("info", 200), b"F\x07bell@example.org\0",
        mtime=BIRTH + 60)
    put(instance, "bounce/200", b"<x@example.net>:\nNo such user.\n\n")
    # 300: info/ already written, todo/ not yet cleaned: todo/ counts.
    put(instance, split("mess", 300), b"z" * 12, 0o640)
    put(instance, split("info", 300), b"Finfo@example.org\0")
    put(instance, split("local", 300), b"Tinfo@example.test\0")
    put(instance, "todo/300", b"u0\0p1\0Fnew@example.org\0"
        b"Tnew@example.test\0")


def test_qread_lists_every_state(instance):
    write_queue(instance)
    result = tool(instance, "qmail-qread")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    out = lines(result)
    assert out[-1] == ""
    out = out[:-1]
    # Every date has the RFC 5322 form; then the rest is exact.
    for i in (0, 3, 8, 9):
        assert re.fullmatch(DATE + "  #.*", out[i]), out[i]
    rest = [line.split("  #", 1)[1] if line[:1] != " " else line
            for line in out]
    assert rest == [
        "47  5  <>  not yet processed",
        "  rcpt\tzed@example.test",
        "  rcpt\tyan@example.net",
        "100  37  <ann@example.org>",
        "  local\tbob@example.test",
        "  done\tlocal\tcarol@example.test",
        "  remote\tdan@example.net",
        "  done\tremote\te\\x1b[31m\\\\x\\xff@example.net",
        "200  0  <\\x07bell@example.org>  bouncing",
        "300  12  <new@example.org>  not yet processed",
        "  rcpt\tnew@example.test",
    ]
    # The date is the info file's mtime.
    assert out[3].startswith(gmdate(BIRTH) + "  #100  ")
    assert out[8].startswith(gmdate(BIRTH + 60) + "  #200  ")


def test_qstat_counts(instance):
    write_queue(instance)
    result = tool(instance, "qmail-qstat")
    assert result.returncode == 0, result.stderr
    assert result.stdout == qstat_lines(4, 2)
    assert result.stderr == b""


def test_qstat_counts_only_regular_files(instance):
    put(instance, split("mess", 5), b"m")
    (instance.path / "queue" / split("mess", 6)).mkdir()
    os.symlink("5", instance.path / "queue" / split("mess", 7))
    put(instance, "todo/5", b"u0\0p1\0F\0Tx@example.test\0")
    result = tool(instance, "qmail-qstat")
    assert result.returncode == 0, result.stderr
    assert result.stdout == qstat_lines(1, 1)


def test_qread_torn_and_foreign_records_are_left_out(instance):
    put(instance, split("mess", 9), b"m")
    put(instance, split("info", 9), b"Fs@example.org\0")
    # A record without its NUL is still being written; an unknown type
    # is skipped as qmail-send skips it.
    put(instance, split("local", 9), b"Ta@example.test\0Xjunk\0Tb@exa")
    put(instance, split("info", 9) + ".tmp", b"not a message")
    result = tool(instance, "qmail-qread")
    assert result.returncode == 0, result.stderr
    out = lines(result)
    assert out[0].endswith("  #9  1  <s@example.org>")
    assert out[1:] == ["  local\ta@example.test", ""]


# ---- trouble: warnings name the file, the rest is still listed ----


def two_messages(instance):
    for msgid in (1, 2):
        put(instance, split("mess", msgid), b"m" * msgid, 0o640)
        put(instance, split("info", msgid), b"Fs@example.org\0")
        put(instance, split("remote", msgid), b"Tr@example.net\0")


@pytest.mark.skipif(not is_root(), reason="needs a file the account "
                    "cannot read")
def test_qread_skips_unreadable_file_with_warning(instance):
    two_messages(instance)
    path = instance.path / "queue" / split("remote", 1)
    os.chown(path, 0, 0)  # root's, mode 0600: unreadable for the account
    result = tool(instance, "qmail-qread")
    assert result.returncode == 111
    err = result.stderr.decode()
    assert f"unable to read {path}: Permission denied" in err, err
    out = lines(result)
    assert len(out) == 3 and out[0].endswith("  #2  2  <s@example.org>")
    assert out[1] == "  remote\tr@example.net"


def test_qread_message_file_missing_is_trouble(instance):
    two_messages(instance)
    os.unlink(instance.path / "queue" / split("mess", 2))
    result = tool(instance, "qmail-qread")
    assert result.returncode == 111
    path = instance.path / "queue" / split("mess", 2)
    assert f"unable to read {path}: No such file" in result.stderr.decode()
    out = lines(result)
    assert out[0].endswith("  #1  1  <s@example.org>") and len(out) == 3


def test_qread_damaged_info_is_trouble(instance):
    two_messages(instance)
    put(instance, split("info", 1), b"Fno-terminator")
    put(instance, "todo/3", b"u0\0p1\0Tno-sender@example.test\0")
    put(instance, split("mess", 3), b"m")
    result = tool(instance, "qmail-qread")
    assert result.returncode == 111
    err = result.stderr.decode()
    info = instance.path / "queue" / split("info", 1)
    todo = instance.path / "queue" / "todo/3"
    assert f"trouble with {info}: not an info file" in err, err
    assert f"trouble with {todo}: not an envelope" in err, err
    assert lines(result)[0].endswith("  #2  2  <s@example.org>")


def test_tools_fail_without_a_queue(instance):
    os.rename(instance.path / "queue", instance.path / "queue.away")
    for name in ("qmail-qread", "qmail-qstat"):
        result = tool(instance, name)
        assert result.returncode == 111, name
        err = result.stderr.decode()
        assert f"{instance.path}/queue" in err, err
        assert "No such file or directory" in err, err
        assert result.stdout == b""


def test_tools_fail_without_a_home(instance, bindir, qm_logbook):
    env = instance.env()
    env["QMAILHOME"] = str(instance.path / "nowhere")
    for name in ("qmail-qread", "qmail-qstat", "qmail-showctl"):
        result = instance.run([str(bindir / name)], env=env)
        assert result.returncode == 111, name
        assert str(instance.path / "nowhere") in result.stderr.decode()


# ---- files disappearing while it reads ----


def churn(instance, stop, errors):
    """Moves messages through the queue in qmail-send's order, as fast as
    possible, until told to stop."""
    queue = instance.path / "queue"
    msgid = 1000
    try:
        while not stop.is_set():
            msgid += 1
            mess, info = queue / split("mess", msgid), \
                queue / split("info", msgid)
            local, todo = queue / split("local", msgid), \
                queue / f"todo/{msgid}"
            intd = queue / f"intd/{msgid}"
            mess.write_bytes(b"message\n")
            # qmail-queue links the finished envelope into todo/.
            intd.write_bytes(b"u0\0p1\0Fs@example.org\0Tu@example.test\0")
            os.link(intd, todo)
            info.write_bytes(b"")  # qmail-send truncates, then writes
            info.write_bytes(b"Fs@example.org\0")
            local.write_bytes(b"Tu@example.test\0")
            todo.unlink()
            intd.unlink()
            with open(local, "r+b") as f:
                f.write(b"D")
            local.unlink()
            info.unlink()
            mess.unlink()
    except OSError as e:
        errors.append(e)


def test_qread_and_qstat_while_the_queue_changes(instance):
    # One message stays throughout, so that every listing has something
    # to show whatever the scheduler does with the churning thread.
    queue = instance.path / "queue"
    (queue / split("mess", 999)).write_bytes(b"message\n")
    (queue / split("info", 999)).write_bytes(b"Fs@example.org\0")
    (queue / split("local", 999)).write_bytes(b"Tu@example.test\0")
    stop = threading.Event()
    errors = []
    worker = threading.Thread(target=churn, args=(instance, stop, errors))
    worker.start()
    seen = 0
    try:
        for _ in range(40):
            for name in ("qmail-qstat", "qmail-qread"):
                result = tool(instance, name)
                assert result.returncode == 0, result.stderr
                assert result.stderr == b""
            for line in lines(result)[:-1]:
                assert HEADER.fullmatch(line) or RECIPIENT.fullmatch(line)
                seen += bool(HEADER.fullmatch(line))
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not errors
    assert seen >= 40, "the message that stays was not always listed"


def inject(instance, tmp, name, sender, rcpts, body):
    (tmp / f"{name}.msg").write_bytes(body)
    (tmp / f"{name}.env").write_bytes(
        b"F" + sender + b"\0" + b"".join(b"T" + r + b"\0" for r in rcpts)
        + b"\0")
    result = instance.run(["sh", "-c", f'exec qmail-queue <"{tmp}/{name}.msg"'
                           f' 1<"{tmp}/{name}.env"'])
    assert result.returncode == 0, result.stderr


@pytest.fixture
def scratch():
    path = qmtest.make_public_tempdir("qm-e2e-admin-")
    yield path
    qmtest.remove_tree(path)


def test_qread_on_a_real_queue_with_qmail_send(instance, scratch,
                                               qm_logbook):
    # One recipient each: the test is about qmail-qread, and must not
    # depend on how qmail-send schedules the recipients of one message.
    boxes = ("demo", "alice")
    for i in range(12):
        inject(instance, scratch, f"m{i}", b"ann@example.org",
               [f"{boxes[i % 2]}@example.test".encode()],
               b"Subject: %d\n\nhello\n" % i)
    result = tool(instance, "qmail-qstat")
    assert result.stdout == qstat_lines(12, 12)
    result = tool(instance, "qmail-qread")
    assert result.returncode == 0, result.stderr
    out = lines(result)
    assert len(out) == 25
    ids, rcpts = [], []
    for i in range(0, 24, 2):
        assert HEADER.fullmatch(out[i]), out[i]
        date, msgid, size, sender, mark = out[i].split("  ")
        assert (sender, mark) == ("<ann@example.org>", "not yet processed")
        ids.append(int(msgid[1:]))
        # The message file holds qmail-queue's Received line too.
        assert int(size) > len(b"Subject: 10\n\nhello\n")
        rcpts.append(out[i + 1])
    assert ids == sorted(ids)
    assert sorted(rcpts) == ["  rcpt\talice@example.test"] * 6 + \
        ["  rcpt\tdemo@example.test"] * 6

    log = open(qm_logbook.new("qmail-send"), "wb")
    proc = subprocess.Popen(
        instance.as_account([str(instance.bindir / "qmail-start"),
                             "./Maildir/"]),
        env=instance.env(), cwd=instance.path, stdin=subprocess.DEVNULL,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def drained():
            for name in ("qmail-qread", "qmail-qstat"):
                r = tool(instance, name)
                assert r.returncode == 0 and r.stderr == b"", r.stderr
            return r.stdout == qstat_lines(0, 0)
        wait_for(drained, timeout=30, interval=0,
                 message="the queue to empty")
        assert len(instance.maildir_messages("demo")) == 6
        assert len(instance.maildir_messages("alice")) == 6
        assert tool(instance, "qmail-qread").stdout == b""
    finally:
        qmtest.kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            qmtest.kill_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        wait_for(lambda: not qmtest.session_members(proc.pid), timeout=10)
        log.close()


# ---- qmail-showctl ----


def sections(text):
    """{name: [lines]} for each control section of qmail-showctl."""
    found = {}
    for block in text.split("\n\n")[1:]:
        head, *body = block.rstrip("\n").split("\n")
        found[head.split(":", 1)[0]] = [head] + body
    return found


def test_showctl_fresh_instance(instance):
    instance.control("nosuchfile", "whatever\n")
    result = tool(instance, "qmail-showctl")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    text = result.stdout.decode("ascii")
    head = text.split("\n\n")[0].split("\n")
    assert head[0] == f"qmail home directory: {instance.path}"
    assert head[1].startswith("compiled-in prefix: /")
    assert head[2] == f"subdirectory split: {SPLIT}"
    assert head[3].startswith("instance: yes")
    assert head[4] == "role accounts:"
    for i, role in enumerate(("send", "remote", "queue", "log", "daemon",
                              "alias")):
        assert re.fullmatch(
            rf"  {role}: user {instance.account} \(uid {instance.uid}\), "
            rf"group \S+ \(gid {instance.gid}\)", head[5 + i]), head[5 + i]
    s = sections(text)
    assert s["me"][1:] == ["  example.test"]
    assert s["locals"][1:] == ["  example.test", "  localhost"]
    assert s["rcpthosts"][1:] == ["  example.test", "  localhost"]
    assert s["concurrencylocal"][1:] == ["  (Default.) 10"]
    assert s["helohost"][1:] == ["  (Default.) same as me: example.test"]
    assert s["defaultdelivery"][1:] == ["  ./Maildir/"]
    assert s["servercert.pem"][1:] == [
        "  (Default.) absent: qmail-smtpd does not offer STARTTLS"]
    # Each section starts with what the file means.
    assert s["concurrencylocal"][0].startswith("concurrencylocal: Most ")
    # Unknown files come last.
    assert text.endswith("\n\nnosuchfile: unrecognised.\n")
    assert "unrecognised" not in text[:-len("nosuchfile: unrecognised.\n")]


def test_showctl_values_and_escapes(instance):
    instance.control("me", b"exa\x1bmple.test\\\n")
    instance.control("concurrencylocal", "5\n")
    instance.control("concurrencyremote", "\n")
    instance.control("badmailfrom", "# comment\n\n@spam.example\n x \n")
    instance.control("percenthack", "")
    instance.control("doublebounceto", "\n")
    instance.control("smtproutes", "example.net:relay.example:2525 user "
                     "secret-password\n:smart.example\n")
    instance.control("tlshosts/mx.example.net.pem", "pem")
    instance.control("clientcert.pem", "-----BEGIN PRIVATE KEY-----\n")
    instance.control("bad\x01name", "x\n")
    result = tool(instance, "qmail-showctl")
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode("ascii")
    assert "\x1b" not in text and "\x01" not in text
    s = sections(text)
    assert s["me"][1:] == ["  exa\\x1bmple.test\\\\"]
    assert s["helohost"][1:] == [
        "  (Default.) same as me: exa\\x1bmple.test\\\\"]
    assert s["concurrencylocal"][1:] == ["  5"]
    assert s["concurrencyremote"][1:] == ["  (Default.) 20"]
    assert s["badmailfrom"][1:] == ["  @spam.example", "   x"]
    assert s["percenthack"][1:] == ["  (No entries.)"]
    assert s["virtualdomains"][1:] == ["  (Default.) none"]
    assert s["doublebounceto"][1:] == ["  (Empty.)"]
    assert s["smtproutes"][1:] == [
        "  example.net:relay.example:2525 (the rest is not shown)",
        "  :smart.example"]
    assert "secret-password" not in text and "PRIVATE" not in text
    assert s["tlshosts"][1:] == ["  mx.example.net.pem"]
    assert s["clientcert.pem"][1:] == ["  Present: 28 bytes"]
    assert text.endswith("\n\nbad\\x01name: unrecognised.\n")


def test_showctl_trouble_is_reported_and_listing_goes_on(instance):
    instance.control("queuelifetime", "a week\n")
    instance.control("timeoutremote", "99999999999999999999999\n")
    os.symlink("nowhere.pem", instance.path / "control/servercert.pem")
    (instance.path / "control/locals").unlink()
    (instance.path / "control/locals").mkdir()
    result = tool(instance, "qmail-showctl")
    assert result.returncode == 111
    s = sections(result.stdout.decode("ascii"))
    assert s["queuelifetime"][1:] == ["  a week",
                                      "  Trouble: not a usable number"]
    assert s["timeoutremote"][2] == "  Trouble: not a usable number"
    assert s["servercert.pem"][1:] == ["  Trouble: a symbolic link to nothing"]
    assert s["locals"][1:] == ["  Trouble: Is a directory"]
    # The rest is still there.
    assert s["rcpthosts"][1:] == ["  example.test", "  localhost"]
    err = result.stderr.decode()
    for name in ("queuelifetime", "timeoutremote", "servercert.pem",
                 "locals"):
        assert f"trouble with {instance.path}/control/{name}: " in err, err


def test_showctl_without_me(instance):
    (instance.path / "control/me").unlink()
    result = tool(instance, "qmail-showctl")
    assert result.returncode == 0, result.stderr
    s = sections(result.stdout.decode("ascii"))
    assert s["me"][1:] == ["  (Default.) none: this file must be set"]
    assert s["helohost"][1:] == ["  (Default.) same as me, which is not set"]
