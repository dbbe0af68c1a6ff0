"""End-to-end tests of the .qmail helper programs: forward, condredirect,
bouncesaying, except, preline and maildirmake.

forward and condredirect hand the message to $QMAILQUEUE, here a small
script that saves its fd 0 (the message) and fd 1 (the envelope) and
exits with a chosen code. Every temporary file lives in a directory that
is removed at the end.
"""

import os
import stat
import subprocess

import pytest

import qmtest

MESSAGE = b"Subject: hello\n\nThis is the body.\nFrom here on.\n"
DTLINE = "Delivered-To: box@example.test\n"
RPLINE = "Return-Path: <sender@example.org>\n"
UFLINE = "From sender@example.org Thu Jan  1 00:00:00 1970\n"


@pytest.fixture
def work():
    path = qmtest.make_public_tempdir("qm-helpers-")
    yield path
    qmtest.remove_tree(path)


class FakeQueue:
    """$QMAILQUEUE: saves the message and the envelope, exits with code."""

    def __init__(self, directory):
        self.dir = directory
        self.script = directory / "fake-qmail-queue"
        self.set_code(0)

    def set_code(self, code):
        self.script.write_text(
            "#!/bin/sh\n"
            f"cat > '{self.dir}/msg' || exit 54\n"
            f"cat <&1 > '{self.dir}/env' || exit 54\n"
            f"exit {code}\n")
        self.script.chmod(0o755)

    @property
    def message(self):
        path = self.dir / "msg"
        return path.read_bytes() if path.exists() else None

    @property
    def envelope(self):
        path = self.dir / "env"
        return path.read_bytes() if path.exists() else None


@pytest.fixture
def queue(work):
    return FakeQueue(work)


@pytest.fixture
def helper(bindir, qm_logbook, work, queue):
    """helper(prog, *args, env=..., stdin=bytes or None)."""

    def call(prog, *args, env=None, stdin=MESSAGE, drop=()):
        full = qmtest.program_env(bindir)
        full.update({"NEWSENDER": "sender@example.org", "DTLINE": DTLINE,
                     "RPLINE": RPLINE, "UFLINE": UFLINE,
                     "QMAILQUEUE": str(queue.script)})
        full.update(env or {})
        for name in drop:
            full.pop(name, None)
        argv = [str(bindir / prog)] + [str(a) for a in args]
        if stdin is None:
            result = subprocess.run(argv, env=full, cwd=work,
                                    stdin=subprocess.DEVNULL,
                                    capture_output=True, timeout=30)
        else:
            # A regular file, as qmail-local gives: it can be rewound.
            path = work / "message-in"
            path.write_bytes(stdin)
            with open(path, "rb") as f:
                result = subprocess.run(argv, env=full, cwd=work, stdin=f,
                                        capture_output=True, timeout=30)
        with open(qm_logbook.new("run-" + prog), "wb") as f:
            f.write(f"argv: {argv!r}\nexit: {result.returncode}\n"
                    "stderr:\n".encode())
            f.write(result.stderr)
        return result
    return call


def sh(script):
    """A program run without a shell by the helper; sh is the program."""
    return ["/bin/sh", "-c", script]


# ---- forward ----


def test_forward_queues_with_dtline_and_envelope(helper, queue):
    result = helper("forward", "a@example.net", "b@example.com")
    assert result.returncode == 0, result.stderr
    assert queue.message == DTLINE.encode() + MESSAGE
    assert queue.envelope == (b"Fsender@example.org\0Ta@example.net\0"
                              b"Tb@example.com\0\0")


def test_forward_empty_sender_and_message(helper, queue):
    result = helper("forward", "a@example.net", env={"NEWSENDER": ""},
                    stdin=b"")
    assert result.returncode == 0, result.stderr
    assert queue.message == DTLINE.encode()
    assert queue.envelope == b"F\0Ta@example.net\0\0"


@pytest.mark.parametrize("code, expected", [
    (31, 100), (11, 100), (71, 111), (53, 111), (81, 111)])
def test_forward_queue_failures(helper, queue, code, expected):
    queue.set_code(code)
    result = helper("forward", "a@example.net")
    assert result.returncode == expected
    reply = b"554 " if expected == 100 else b"451 "
    assert reply in result.stderr


def test_forward_unusable_queue_is_temporary(helper, work):
    result = helper("forward", "a@example.net",
                    env={"QMAILQUEUE": str(work / "missing")})
    assert result.returncode == 111


@pytest.mark.parametrize("args, drop, what", [
    ((), (), b"usage"),
    (("a@example.net",), ("NEWSENDER",), b"NEWSENDER"),
    (("a@example.net",), ("DTLINE",), b"DTLINE"),
])
def test_forward_usage_is_permanent(helper, queue, args, drop, what):
    result = helper("forward", *args, drop=drop)
    assert result.returncode == 100
    assert what in result.stderr
    assert queue.envelope is None


# ---- condredirect ----


def test_condredirect_forwards_on_zero(helper, queue, work):
    seen = work / "seen"
    result = helper("condredirect", "new@example.net",
                    *sh(f"cat > '{seen}'; exit 0"))
    assert result.returncode == 99, result.stderr
    # The program read the whole message, and it was still forwarded
    # whole.
    assert seen.read_bytes() == MESSAGE
    assert queue.message == DTLINE.encode() + MESSAGE
    assert queue.envelope == b"Fsender@example.org\0Tnew@example.net\0\0"


@pytest.mark.parametrize("script, expected", [
    ("exit 111", 111), ("exit 100", 0), ("exit 1", 0), ("exit 99", 0),
    ("kill -SEGV $$", 111)])
def test_condredirect_other_answers(helper, queue, script, expected):
    result = helper("condredirect", "new@example.net", *sh(script))
    assert result.returncode == expected
    assert queue.envelope is None


def test_condredirect_program_not_found(helper, queue, work):
    result = helper("condredirect", "new@example.net", work / "missing")
    assert result.returncode == 111
    assert b"missing" in result.stderr
    assert queue.envelope is None


def test_condredirect_queue_refuses(helper, queue):
    queue.set_code(31)
    result = helper("condredirect", "new@example.net", "true")
    assert result.returncode == 100
    queue.set_code(71)
    result = helper("condredirect", "new@example.net", "true")
    assert result.returncode == 111


def test_condredirect_needs_a_seekable_message(bindir, queue, work):
    env = qmtest.program_env(bindir)
    env.update({"NEWSENDER": "s@example.org", "DTLINE": DTLINE,
                "QMAILQUEUE": str(queue.script)})
    result = subprocess.run([str(bindir / "condredirect"), "n@example.net",
                             "true"], env=env, input=MESSAGE,
                            capture_output=True, timeout=30)
    assert result.returncode == 111
    assert b"rewind" in result.stderr
    assert queue.envelope is None


@pytest.mark.parametrize("args, drop", [
    (("new@example.net",), ()), ((), ()),
    (("new@example.net", "true"), ("NEWSENDER",)),
    (("new@example.net", "true"), ("DTLINE",))])
def test_condredirect_usage(helper, queue, args, drop):
    result = helper("condredirect", *args, drop=drop)
    assert result.returncode == 100
    assert queue.envelope is None


# ---- bouncesaying ----


def test_bouncesaying_always(helper):
    result = helper("bouncesaying", "This address is no longer in use.")
    assert result.returncode == 100
    assert result.stderr == b"This address is no longer in use.\n"
    assert result.stdout == b""


@pytest.mark.parametrize("script, expected", [
    ("exit 0", 100), ("exit 111", 111), ("exit 100", 0), ("exit 3", 0),
    ("kill -KILL $$", 111)])
def test_bouncesaying_with_program(helper, script, expected):
    result = helper("bouncesaying", "Go away.", *sh(script))
    assert result.returncode == expected
    assert (b"Go away.\n" in result.stderr) == (expected == 100)


def test_bouncesaying_program_reads_message(helper, work):
    seen = work / "seen"
    result = helper("bouncesaying", "No.", *sh(f"cat > '{seen}'; exit 1"))
    assert result.returncode == 0
    assert seen.read_bytes() == MESSAGE


def test_bouncesaying_usage(helper):
    result = helper("bouncesaying")
    assert result.returncode == 100
    assert b"usage" in result.stderr


# ---- except ----


@pytest.mark.parametrize("script, expected", [
    ("exit 0", 100), ("exit 100", 0), ("exit 111", 111), ("exit 1", 1),
    ("exit 99", 99), ("kill -SEGV $$", 111)])
def test_except_codes(helper, script, expected):
    result = helper("except", *sh(script))
    assert result.returncode == expected


def test_except_passes_descriptors(helper):
    result = helper("except", *sh("cat; echo err >&2; exit 100"))
    assert result.returncode == 0
    assert result.stdout == MESSAGE
    assert result.stderr == b"err\n"


def test_except_usage_and_missing_program(helper, work):
    assert helper("except").returncode == 100
    result = helper("except", work / "missing")
    assert result.returncode == 111


# ---- preline ----


@pytest.mark.parametrize("flags, lines", [
    ((), UFLINE + RPLINE + DTLINE),
    (("-d",), UFLINE + RPLINE),
    (("-r",), UFLINE + DTLINE),
    (("-f",), RPLINE + DTLINE),
    (("-dr",), UFLINE),
    (("-d", "-r", "-f"), ""),
    (("-f", "--"), RPLINE + DTLINE),
])
def test_preline_lines(helper, work, flags, lines):
    out = work / "out"
    result = helper("preline", *flags, *sh(f"cat > '{out}'; exit 7"))
    assert result.returncode == 7, result.stderr
    assert out.read_bytes() == lines.encode() + MESSAGE


def test_preline_omitted_line_need_not_be_set(helper, work):
    out = work / "out"
    result = helper("preline", "-f", *sh(f"cat > '{out}'"),
                    drop=("UFLINE",))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (RPLINE + DTLINE).encode() + MESSAGE


def test_preline_program_that_stops_reading(helper):
    big = MESSAGE + b"x" * (4 << 20) + b"\n"
    result = helper("preline", *sh("exit 3"), stdin=big)
    assert result.returncode == 3


@pytest.mark.parametrize("args, drop, expected", [
    ((), (), 100),
    (("-x", "true"), (), 100),
    (("-d",), (), 100),
    (("true",), ("UFLINE",), 100),
    (("-f", "true"), ("RPLINE",), 100),
    (("true",), ("DTLINE",), 100),
])
def test_preline_usage(helper, args, drop, expected):
    assert helper("preline", *args, drop=drop).returncode == expected


def test_preline_crash_and_missing_program(helper, work):
    assert helper("preline", *sh("kill -SEGV $$")).returncode == 111
    result = helper("preline", work / "missing")
    assert result.returncode == 111
    assert b"missing" in result.stderr


# ---- maildirmake ----


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_maildirmake(helper, work):
    box = work / "Maildir"
    result = helper("maildirmake", box, stdin=None)
    assert result.returncode == 0, result.stderr
    assert mode_of(box) == 0o700
    assert sorted(os.listdir(box)) == ["cur", "new", "tmp"]
    for sub in ("cur", "new", "tmp"):
        assert stat.S_ISDIR(os.lstat(box / sub).st_mode)
        assert mode_of(box / sub) == 0o700
        assert os.listdir(box / sub) == []


def test_maildirmake_refuses_existing(helper, work):
    box = work / "Maildir"
    box.mkdir(mode=0o755)
    result = helper("maildirmake", box, stdin=None)
    assert result.returncode == 111
    assert str(box).encode() in result.stderr
    assert os.listdir(box) == []
    assert mode_of(box) == 0o755


def test_maildirmake_usage_and_missing_parent(helper, work):
    assert helper("maildirmake", stdin=None).returncode == 100
    assert helper("maildirmake", "a", "b", stdin=None).returncode == 100
    result = helper("maildirmake", work / "no" / "Maildir", stdin=None)
    assert result.returncode == 111
