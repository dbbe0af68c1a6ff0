"""End-to-end tests of the users database: qmail-newu, qmail-getpw and
qmail-pw2u, run with QMAILHOME pointing at a temporary directory.

They must leave nothing behind: every temporary directory is removed, and
every system account a test creates is deleted again, even on failure.
"""

import os
import pwd
import secrets
import shutil
import subprocess
import time

import pytest

import qmtest
from qmtest import is_root


@pytest.fixture
def qhome():
    """A bare qmail home holding only users/."""
    path = qmtest.make_public_tempdir("qm-users-")
    (path / "users").mkdir()
    yield path
    qmtest.remove_tree(path)


def run(bindir, logbook, qhome, prog, *args, input=None):
    env = qmtest.program_env(bindir)
    env["QMAILHOME"] = str(qhome)
    argv = [str(bindir / prog)] + [str(a) for a in args]
    result = subprocess.run(argv, env=env, input=input, capture_output=True,
                            cwd="/", timeout=30)
    with open(logbook.new("run-" + prog), "wb") as f:
        f.write(f"argv: {argv!r}\nexit: {result.returncode}\n"
                "stderr:\n".encode())
        f.write(result.stderr)
    return result


def record(user, uid, gid, home, dash, ext):
    fields = [user, str(uid), str(gid), home, dash, ext]
    return b"".join(f.encode() + b"\0" for f in fields)


ASSIGN = """\
=joe:joe:1000:100:/home/joe:::
+joe-:joe:1000:100:/home/joe:-::
=joe-x:exact:1001:101:/home/exact:::
+joe-list-:list:1002:102:/home/list:-:ml-:
+:alias:7790:2108:/var/qmail/alias:-::
.
"""


@pytest.fixture
def getpw(bindir, qm_logbook, qhome):
    def call(*args):
        return run(bindir, qm_logbook, qhome, "qmail-getpw", *args)
    return call


@pytest.fixture
def newu(bindir, qm_logbook, qhome):
    def call(assign=None):
        if assign is not None:
            (qhome / "users" / "assign").write_text(assign)
        return run(bindir, qm_logbook, qhome, "qmail-newu")
    return call


# ---- qmail-newu, then qmail-getpw ----


def test_newu_then_getpw_bytes(qhome, newu, getpw):
    result = newu(ASSIGN)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    cdb = qhome / "users" / "cdb"
    assert (cdb.stat().st_mode & 0o777) == 0o644
    assert not (qhome / "users" / "cdb.tmp").exists()

    cases = {
        "joe": record("joe", 1000, 100, "/home/joe", "", ""),
        "JOE": record("joe", 1000, 100, "/home/joe", "", ""),
        "joe-Foo": record("joe", 1000, 100, "/home/joe", "-", "Foo"),
        "joe-x": record("exact", 1001, 101, "/home/exact", "", ""),
        "Joe-List-Help": record("list", 1002, 102, "/home/list", "-",
                                "ml-Help"),
        "nobody-here": record("alias", 7790, 2108, "/var/qmail/alias", "-",
                              "nobody-here"),
    }
    for local, expected in cases.items():
        result = getpw(local)
        assert result.returncode == 0, (local, result.stderr)
        assert result.stdout == expected, local


def test_newu_replaces_cdb_by_rename(qhome, newu, getpw):
    assert newu(ASSIGN).returncode == 0
    cdb = qhome / "users" / "cdb"
    before = cdb.stat().st_ino
    assert newu("=joe:other:5:6:/o:::\n.\n").returncode == 0
    assert cdb.stat().st_ino != before
    assert getpw("joe").stdout == record("other", 5, 6, "/o", "", "")
    # The old catch-all is gone with the old file.
    assert getpw("joe-foo").returncode in (0, 100)
    assert not getpw("joe-foo").stdout.startswith(b"joe\0")


def test_newu_without_final_dot_changes_nothing(qhome, newu, getpw):
    assert newu(ASSIGN).returncode == 0
    cdb = qhome / "users" / "cdb"
    old = cdb.read_bytes()
    old_ino = cdb.stat().st_ino

    result = newu("=joe:other:5:6:/o:::\n")
    assert result.returncode == 111
    assert result.stdout == b""
    err = result.stderr.decode()
    assert "users/assign" in err
    assert '"."' in err
    assert cdb.read_bytes() == old
    assert cdb.stat().st_ino == old_ino
    assert not (qhome / "users" / "cdb.tmp").exists()
    assert getpw("joe").stdout == record("joe", 1000, 100, "/home/joe", "",
                                         "")


@pytest.mark.parametrize("bad_line, why", [
    ("=joe:joe:1x:100:/home/joe:::", "uid"),
    ("=joe:joe:1000:100:/home/joe::", "too few fields"),
    ("+joe:joe:1000:100:/home/joe:::x", "after the last field"),
    ("# a comment", "= or +"),
])
def test_newu_malformed_line_names_its_number(qhome, newu, bad_line, why):
    assert newu(ASSIGN).returncode == 0
    cdb = qhome / "users" / "cdb"
    old = cdb.read_bytes()

    result = newu("=a:u:1:2:/h:::\n" + bad_line + "\n.\n")
    assert result.returncode == 111
    err = result.stderr.decode()
    assert "users/assign line 2" in err
    assert why in err
    assert cdb.read_bytes() == old
    assert not (qhome / "users" / "cdb.tmp").exists()


def test_newu_without_assign(qhome, newu):
    result = newu()
    assert result.returncode == 111
    assert "users/assign" in result.stderr.decode()
    assert not (qhome / "users" / "cdb").exists()


def test_getpw_usage(getpw):
    for args in ((), ("a", "b")):
        result = getpw(*args)
        assert result.returncode == 100
        assert result.stdout == b""
        assert b"usage" in result.stderr


def test_getpw_bad_cdb_is_temporary(qhome, getpw):
    (qhome / "users" / "cdb").write_bytes(b"junk")
    result = getpw("joe")
    assert result.returncode == 111
    assert result.stdout == b""
    assert b"users/cdb" in result.stderr


# ---- the passwd rules ----


def has_alias():
    try:
        pwd.getpwnam("alias")
        return True
    except KeyError:
        return False


def test_getpw_refuses_root(getpw):
    """No users/cdb: the passwd rules, where uid 0 never counts."""
    for local in ("root", "ROOT", "root-ext"):
        result = getpw(local)
        if has_alias():
            assert result.returncode == 0
            assert result.stdout.split(b"\0")[0] == b"alias"
            assert result.stdout.split(b"\0")[5] == local.encode()
        else:
            assert result.returncode == 100
            assert result.stdout == b""
            assert b"Sorry, no mailbox here by that name. (#5.1.1)" in \
                result.stderr


def account_tool(argv):
    """Runs useradd or userdel, retrying while another process holds the
    lock on /etc/passwd (instances of concurrent tests add accounts)."""
    for _ in range(50):
        result = subprocess.run(argv, capture_output=True, timeout=30)
        if result.returncode == 0 or b"lock" not in result.stderr:
            return result
        time.sleep(0.1)
    return result


@pytest.fixture
def system_user():
    """A temporary account whose home (under /tmp) it owns."""
    if not is_root() or not shutil.which("useradd"):
        pytest.skip("needs root and useradd")
    name = "qmtu" + secrets.token_hex(4)
    base = qmtest.make_public_tempdir("qm-users-home-")
    home = base / "home"
    try:
        result = account_tool(["useradd", "-M", "-d", str(home), "-s",
                               "/usr/sbin/nologin", "-U", name])
        assert result.returncode == 0, result.stderr
        entry = pwd.getpwnam(name)
        home.mkdir()
        os.chown(home, entry.pw_uid, entry.pw_gid)
        yield entry
    finally:
        account_tool(["userdel", name])
        qmtest.remove_tree(base)


def test_getpw_system_user(getpw, system_user):
    u = system_user
    own = record(u.pw_name, u.pw_uid, u.pw_gid, u.pw_dir, "", "")
    result = getpw(u.pw_name)
    assert result.returncode == 0, result.stderr
    assert result.stdout == own
    # Upper case in the address, and an extension split at the first
    # '-' that leaves an account.
    result = getpw(u.pw_name.upper() + "-Ext-More")
    assert result.returncode == 0, result.stderr
    assert result.stdout == record(u.pw_name, u.pw_uid, u.pw_gid, u.pw_dir,
                                   "-", "Ext-More")


def test_getpw_system_user_must_own_home(getpw, system_user):
    u = system_user
    os.chown(u.pw_dir, 0, 0)
    result = getpw(u.pw_name)
    assert not result.stdout.startswith(u.pw_name.encode() + b"\0")
    assert result.returncode == (0 if has_alias() else 100)
    os.rmdir(u.pw_dir)
    result = getpw(u.pw_name)
    assert not result.stdout.startswith(u.pw_name.encode() + b"\0")


def test_getpw_cdb_miss_falls_back_to_passwd(qhome, newu, getpw,
                                             system_user):
    u = system_user
    assert newu("=someone:x:1:1:/x:::\n.\n").returncode == 0
    result = getpw(u.pw_name + "-a")
    assert result.returncode == 0, result.stderr
    assert result.stdout == record(u.pw_name, u.pw_uid, u.pw_gid, u.pw_dir,
                                   "-", "a")


# ---- qmail-pw2u ----


@pytest.fixture
def homes():
    """Home directories for a fake passwd file, owned by their uids."""
    if not is_root():
        pytest.skip("needs root to give homes their owners")
    base = qmtest.make_public_tempdir("qm-pw2u-")

    def make(name, uid):
        path = base / name
        path.mkdir()
        os.chown(path, uid, uid)
        return path
    yield make
    qmtest.remove_tree(base)


@pytest.fixture
def pw2u(bindir, qm_logbook, qhome):
    def call(passwd, *args):
        return run(bindir, qm_logbook, qhome, "qmail-pw2u", *args,
                   input=passwd.encode())
    return call


def passwd_line(name, uid, home):
    return f"{name}:x:{uid}:{uid}:gecos:{home}:/bin/sh\n"


def test_pw2u_default_rules(homes, pw2u):
    joe = homes("joe", 1000)
    alias = homes("alias", 7790)
    other = homes("other", 0)
    text = (passwd_line("root", 0, "/root")
            + passwd_line("joe", 1000, joe)
            + passwd_line("Upper", 1001, joe)
            + passwd_line("notown", 1002, other)
            + passwd_line("nohome", 1003, str(joe) + "/missing")
            + "+::::::\n\n"
            + passwd_line("alias", 7790, alias))
    result = pw2u(text)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == (
        f"=joe:joe:1000:1000:{joe}:::\n"
        f"+joe-:joe:1000:1000:{joe}:-::\n"
        f"=alias:alias:7790:7790:{alias}:::\n"
        f"+alias-:alias:7790:7790:{alias}:-::\n"
        f"+:alias:7790:7790:{alias}:-::\n"
        ".\n")


def test_pw2u_options(homes, pw2u):
    joe = homes("joe", 1000)
    other = homes("other", 0)
    alias = homes("alias", 7790)
    text = (passwd_line("joe", 1000, joe)
            + passwd_line("Bob", 1001, other)
            + passwd_line("gone", 1002, "/nonexistent/qm-home")
            + passwd_line("alias", 7790, alias))
    catchall = f"+:alias:7790:7790:{alias}:-::\n.\n"

    out = pw2u(text, "-C").stdout.decode()
    assert out == (f"=joe:joe:1000:1000:{joe}:::\n"
                   f"=alias:alias:7790:7790:{alias}:::\n" + catchall)
    out = pw2u(text, "-c", "+").stdout.decode()
    assert f"+joe+:joe:1000:1000:{joe}:-::\n" in out
    assert "+joe-:" not in out
    # -O: a home owned by someone else is fine; -u: upper case allowed,
    # the address is lowercased.
    out = pw2u(text, "-O", "-u").stdout.decode()
    assert f"=bob:Bob:1001:1001:{other}:::\n" in out
    assert "gone" not in out
    # -H: homes are not looked at at all.
    out = pw2u(text, "-H").stdout.decode()
    assert "=gone:gone:1002:1002:/nonexistent/qm-home:::\n" in out
    assert "Bob" not in out
    for bad in (("-x",), ("-c", "ab"), ("extra",)):
        result = pw2u(text, *bad)
        assert result.returncode == 100
        assert result.stdout == b""


def test_pw2u_users_files(qhome, homes, pw2u):
    joe = homes("joe", 1000)
    ann = homes("ann", 1001)
    bob = homes("bob", 1002)
    alias = homes("alias", 7790)
    text = (passwd_line("joe", 1000, joe) + passwd_line("ann", 1001, ann)
            + passwd_line("bob", 1002, bob)
            + passwd_line("alias", 7790, alias))
    users = qhome / "users"
    (users / "exclude").write_text("bob\n")
    (users / "mailnames").write_text("joe:Joseph:jo:\nnosuch:x:\n")
    (users / "subusers").write_text("sales:ann:sales:\n")
    (users / "append").write_text("=extra:joe:1000:1000:/x:::\n")
    result = pw2u(text)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == (
        f"=joseph:joe:1000:1000:{joe}:::\n"
        f"+joseph-:joe:1000:1000:{joe}:-::\n"
        f"=jo:joe:1000:1000:{joe}:::\n"
        f"+jo-:joe:1000:1000:{joe}:-::\n"
        f"=ann:ann:1001:1001:{ann}:::\n"
        f"+ann-:ann:1001:1001:{ann}:-::\n"
        f"=alias:alias:7790:7790:{alias}:::\n"
        f"+alias-:alias:7790:7790:{alias}:-::\n"
        f"=sales:ann:1001:1001:{ann}:-:sales:\n"
        f"+sales-:ann:1001:1001:{ann}:-:sales-:\n"
        f"+:alias:7790:7790:{alias}:-::\n"
        "=extra:joe:1000:1000:/x:::\n"
        ".\n")

    (users / "include").write_text("ann\n")
    out = pw2u(text).stdout.decode()
    assert "=ann:" in out
    assert "joseph" not in out and "=alias:" not in out
    assert f"+:alias:7790:7790:{alias}:-::\n" in out


def test_pw2u_errors(homes, pw2u):
    joe = homes("joe", 1000)
    result = pw2u(passwd_line("joe", 1000, joe))
    assert result.returncode == 100
    assert b"alias" in result.stderr
    assert not result.stdout.endswith(b".\n")
    result = pw2u("joe:x:10x0:1:g:/h:/bin/sh\n")
    assert result.returncode == 100
    assert b"line 1" in result.stderr
    result = pw2u("alias:x:1:1:g:/h:/bin/sh\njoe:x:1000\n")
    assert result.returncode == 100
    assert b"line 2" in result.stderr


def test_pw2u_output_feeds_newu(qhome, homes, pw2u, newu, getpw):
    joe = homes("joe", 1000)
    alias = homes("alias", 7790)
    out = pw2u(passwd_line("joe", 1000, joe)
               + passwd_line("alias", 7790, alias))
    assert out.returncode == 0
    assert newu(out.stdout.decode()).returncode == 0
    assert getpw("Joe-Box").stdout == record("joe", 1000, 1000, str(joe),
                                             "-", "Box")
    assert getpw("someone").stdout == record("alias", 7790, 7790,
                                             str(alias), "-", "someone")
