"""make install, qmail-instcheck, qmail-config and qmail-mkaccounts,
without touching the system.

scripts/install.sh (what `make install` runs) installs into a temporary
PREFIX, with INSTALL_ACCOUNT standing for every qmail account (nobody
when we are root, else ourselves), so that owners and the setuid bit are
set as in production without any system account. It is called directly
rather than through make: `make install PREFIX=...` would rebuild the
whole tree with that prefix compiled in. qmail-mkaccounts runs against
stand-ins for getent, groupadd, useradd and usermod that keep their
accounts in a temporary directory. The real install is test_system.py.
"""

import grp
import os
import pathlib
import pwd
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest

import qmtest

REPO = pathlib.Path(__file__).resolve().parents[2]
SPLIT = qmtest.SPLIT


def build_dir():
    return pathlib.Path(os.environ.get("QM_BUILD") or REPO / "build")


def role_account():
    """The account that stands for every qmail account."""
    if qmtest.is_root():
        return "nobody"
    return pwd.getpwuid(os.getuid()).pw_name


def owner_names(account):
    entry = pwd.getpwnam(account)
    return account, grp.getgrgid(entry.pw_gid).gr_name


def run_install(prefix, account="", dest="", env=None):
    """scripts/install.sh as make install runs it; CompletedProcess."""
    argv = ["sh", "scripts/install.sh", str(build_dir()), str(dest),
            str(prefix), str(SPLIT), account]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)


def instcheck(prefix, account=None, *extra):
    argv = [str(build_dir() / "bin" / "qmail-instcheck")]
    if account:
        argv += ["-a", account]
    argv += list(extra) + [str(prefix)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.fixture
def tmp_prefix():
    base = qmtest.make_public_tempdir("qm-install-")
    try:
        yield base
    finally:
        qmtest.remove_tree(base)


@pytest.fixture
def installed(tmp_prefix):
    """A fresh install under a temporary prefix: (prefix, account)."""
    prefix = tmp_prefix / "qmail"
    account = role_account()
    result = run_install(prefix, account)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "qmail-instcheck: ok: " in result.stdout
    return prefix, account


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def built_programs():
    return sorted(p.name for p in (build_dir() / "bin").iterdir()
                  if p.is_file())


# ---- make install and qmail-instcheck ----


def test_install_lays_out_the_tree_with_qmails_modes(installed):
    prefix, account = installed
    user, group = owner_names(account)
    uid = pwd.getpwnam(user).pw_uid
    queue = prefix / "queue"
    expected = {
        prefix / "bin" / "qmail-queue": (stat.S_ISREG, 0o4711),
        prefix / "bin" / "qmail-send": (stat.S_ISREG, 0o755),
        prefix / "man" / "man8" / "qmail-instcheck.8": (stat.S_ISREG,
                                                         0o644),
        prefix / "control": (stat.S_ISDIR, 0o755),
        prefix / "users": (stat.S_ISDIR, 0o755),
        prefix / "alias": (stat.S_ISDIR, 0o2755),
        queue: (stat.S_ISDIR, 0o750),
        queue / "pid": (stat.S_ISDIR, 0o700),
        queue / "intd": (stat.S_ISDIR, 0o700),
        queue / "todo": (stat.S_ISDIR, 0o750),
        queue / "bounce": (stat.S_ISDIR, 0o700),
        queue / "mess" / str(SPLIT - 1): (stat.S_ISDIR, 0o750),
        queue / "info" / "0": (stat.S_ISDIR, 0o700),
        queue / "local" / "0": (stat.S_ISDIR, 0o700),
        queue / "remote" / "0": (stat.S_ISDIR, 0o700),
        queue / "lock": (stat.S_ISDIR, 0o750),
        queue / "lock" / "sendmutex": (stat.S_ISREG, 0o600),
        queue / "lock" / "tcpto": (stat.S_ISREG, 0o644),
        queue / "lock" / "tcpto6": (stat.S_ISREG, 0o644),
        queue / "lock" / "trigger": (stat.S_ISFIFO, 0o622),
        prefix / "service-templates" / "qmail-smtpd" / "run":
            (stat.S_ISREG, 0o755),
        prefix / "service-templates" / "qmail-smtpd" / "log" / "run":
            (stat.S_ISREG, 0o755),
        prefix / "service-templates" / "tcp.smtp": (stat.S_ISREG, 0o644),
    }
    for path, (kind, mode) in expected.items():
        st = os.lstat(path)
        assert kind(st.st_mode), path
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (mode, uid), path
    assert not (queue / "mess" / str(SPLIT)).exists()
    assert (queue / "lock" / "tcpto").read_bytes() == b"\0" * 1024
    assert (queue / "lock" / "tcpto6").read_bytes() == b"\0" * 2048
    installed_bins = sorted(p.name for p in (prefix / "bin").iterdir())
    assert installed_bins == built_programs()
    manifest = (prefix / "manifest").read_text().splitlines()
    assert "bin/qmail-instcheck" in manifest
    assert "man/man8/qmail-instcheck.8" in manifest
    # The templates name the real prefix, and nothing else changed.
    template = (prefix / "service-templates" / "qmail-send" /
                "run").read_text()
    source = (REPO / "etc" / "service" / "qmail-send" / "run").read_text()
    assert template == source.replace("/var/qmail", str(prefix))
    assert "/var/qmail" not in template
    # ~alias: placeholders that keep the mail in ~alias/Maildir.
    for name in ("postmaster", "mailer-daemon", "root"):
        dot = prefix / "alias" / f".qmail-{name}"
        assert dot.read_text().splitlines()[-1] == "./Maildir/"
        assert mode_of(dot) == 0o644
    for sub in ("", "/new", "/cur", "/tmp"):
        path = pathlib.Path(f"{prefix}/alias/Maildir{sub}")
        assert path.is_dir() and os.lstat(path).st_uid == uid
        assert mode_of(path) & 0o777 == 0o700


def test_instcheck_reports_exactly_what_changed(installed):
    prefix, account = installed
    user, group = owner_names(account)
    result = instcheck(prefix, account)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    total = int(lines[0].split()[2])
    assert lines[0] == (f"qmail-instcheck: ok: {total} paths under {prefix},"
                        " each with the owner and mode of the table")
    # The table: the fixed part plus every manifest line and its dirs.
    assert total > 4 * SPLIT + len(built_programs())

    queue = prefix / "queue"
    os.chmod(queue / "lock" / "trigger", 0o666)
    os.chmod(prefix / "bin" / "qmail-queue", 0o755)
    (queue / "lock" / "tcpto6").unlink()
    (queue / "intd").rmdir()
    (queue / "intd").symlink_to("todo")
    wrong = [
        f"{queue}/intd: expected dir {user}:{group} 0700, "
        f"found symlink {user}:{group} 0777",
        f"{queue}/lock/tcpto6: expected file {user}:{group} 0644, "
        "found nothing",
        f"{queue}/lock/trigger: expected fifo {user}:{group} 0622, "
        f"found fifo {user}:{group} 0666",
        f"{prefix}/bin/qmail-queue: expected file {user}:{group} 4711, "
        f"found file {user}:{group} 0755",
    ]
    if qmtest.is_root():
        os.chown(queue / "mess" / "3", 0, -1)
        # In the table's order: intd, then the mess/N directories.
        wrong.insert(1, f"{queue}/mess/3: expected dir {user}:{group} 0750,"
                     f" found dir root:{group} 0750")
    entry = pwd.getpwnam(user)
    os.lchown(queue / "intd", entry.pw_uid, entry.pw_gid)
    result = instcheck(prefix, account)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == wrong + [
        f"qmail-instcheck: {len(wrong)} problems in {total} paths under "
        f"{prefix}"]
    assert result.stderr == ""

    # make install again: the programs are ours and are put right; the
    # queue is the administrator's: what is missing is made, what exists
    # is left alone, so the check still fails, and says why.
    (queue / "intd").unlink()
    result = run_install(prefix, account)
    assert result.returncode == 111
    assert "install: fatal: the check above found problems" in result.stderr
    still = [line for line in wrong
             if "/lock/trigger:" in line or "/mess/3:" in line]
    assert [line for line in result.stdout.splitlines()
            if ": expected " in line] == still
    assert mode_of(prefix / "bin" / "qmail-queue") == 0o4711
    assert (queue / "lock" / "tcpto6").read_bytes() == b"\0" * 2048
    assert mode_of(queue / "intd") == 0o700


def test_install_keeps_what_the_administrator_made(installed):
    prefix, account = installed
    uid = pwd.getpwnam(account).pw_uid
    control = prefix / "control" / "me"
    control.write_text("mail.example.com\n")
    postmaster = prefix / "alias" / ".qmail-postmaster"
    postmaster.write_text("&admin@example.com\n")
    (prefix / "alias" / ".qmail-root").unlink()
    # A message in the queue, as qmail-queue leaves it.
    mess = prefix / "queue" / "mess" / "5" / "28"
    mess.write_bytes(b"Subject: kept\n\nbody\n")
    todo = prefix / "queue" / "todo" / "28"
    todo.write_bytes(b"u0\0p1\0Fa@b\0Tc@d\0\0")
    service = prefix / "supervise" / "qmail-send"
    service.mkdir(parents=True)
    (service / "run").write_text("#!/bin/sh\n# edited\n")
    before = {p: (p.read_bytes(), os.lstat(p).st_mtime_ns)
              for p in (control, postmaster, mess, todo, service / "run")}

    result = run_install(prefix, account)
    assert result.returncode == 0, result.stdout + result.stderr
    for path, (data, mtime) in before.items():
        assert (path.read_bytes(), os.lstat(path).st_mtime_ns) == (data,
                                                                   mtime)
    # A missing placeholder comes back; the administrator's Maildir
    # choice is not undone (it exists, and is left as it is).
    root = prefix / "alias" / ".qmail-root"
    assert root.read_text().endswith("./Maildir/\n")
    assert os.lstat(root).st_uid == uid


def test_install_refuses_a_queue_of_another_split(installed):
    """Programs built for one split would not find the messages of a
    queue made with another: the install stops, naming both."""
    prefix, account = installed
    extra = prefix / "queue" / "mess" / str(SPLIT)
    extra.mkdir()
    result = run_install(prefix, account)
    assert result.returncode != 0
    assert (f"{prefix}/queue/mess has {SPLIT + 1} subdirectories, not "
            f"SPLIT {SPLIT}") in result.stderr
    extra.rmdir()
    assert run_install(prefix, account).returncode == 0


def test_alias_maildir_not_recreated_once_placeholders_exist(installed):
    prefix, account = installed
    shutil.rmtree(prefix / "alias" / "Maildir")
    for name in ("postmaster", "mailer-daemon", "root"):
        (prefix / "alias" / f".qmail-{name}").write_text("&a@example.com\n")
    result = run_install(prefix, account)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (prefix / "alias" / "Maildir").exists()


def test_staged_install_has_no_owners_no_setuid_and_no_queue(tmp_prefix):
    dest = tmp_prefix / "stage"
    result = run_install("/var/qmail", dest=dest)
    assert result.returncode == 0, result.stdout + result.stderr
    root = dest / "var" / "qmail"
    assert result.stdout.splitlines() == [
        f"install: installed into {root}",
        "install: staged without owners: no setuid qmail-queue, no queue, "
        "no ~alias;",
        "install: the target's install step applies qmail-instcheck -p's "
        "table.",
    ]
    assert not (root / "queue").exists()
    assert not (root / "alias").exists()
    assert (root / "control").is_dir() and (root / "users").is_dir()
    assert mode_of(root / "bin" / "qmail-queue") == 0o711
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            mode = mode_of(os.path.join(dirpath, name))
            assert not mode & (stat.S_ISUID | stat.S_ISGID), (dirpath, name)
            if qmtest.is_root():
                assert os.lstat(os.path.join(dirpath, name)).st_uid == 0


@pytest.mark.skipif(not qmtest.is_root(), reason="install as root only")
def test_install_says_to_run_mkaccounts_when_accounts_are_missing(
        tmp_prefix):
    """As root with no DESTDIR: `id` and `getent` stand-ins say that
    qmailq and the group qmail do not exist."""
    shims = tmp_prefix / "shims"
    shims.mkdir()
    write_script(shims / "id", """\
        #!/bin/sh
        [ "$1" = -u ] && [ "$2" = qmailq ] && exit 1
        exec /usr/bin/id "$@"
        """)
    write_script(shims / "getent", """\
        #!/bin/sh
        [ "$1" = group ] && [ "$2" = qmail ] && exit 2
        exec /usr/bin/getent "$@"
        """)
    env = dict(os.environ, PATH=f"{shims}:{os.environ['PATH']}")
    prefix = tmp_prefix / "qmail"
    result = run_install(prefix, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    missing = [a for a in ACCOUNTS if a == "qmailq" or not user_exists(a)]
    missing += [f"{g}(group)" for g in ("qmail", "nofiles")
                if g == "qmail" or not group_exists(g)]
    assert result.stdout.splitlines() == [
        f"install: installed into {prefix}",
        f"install: the accounts {' '.join(missing)} are missing, so "
        "qmail-queue is not setuid and",
        "install: the queue, ~alias, control/ and users/ were not made. "
        "Create the",
        "install: accounts with",
        f"install:   {prefix}/bin/qmail-mkaccounts",
        "install: and run make install again.",
    ]
    # Nothing that is made once is made wrong: control/ too waits for
    # the accounts (its group is qmail).
    for name in ("queue", "alias", "control", "users"):
        assert not (prefix / name).exists(), name
    assert mode_of(prefix / "bin" / "qmail-queue") == 0o711
    # Once the accounts exist, make install again completes the tree:
    # nothing the first run left is in the way.
    result = run_install(prefix, role_account())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "qmail-instcheck: ok: " in result.stdout


def test_instcheck_refuses_foreign_manifest_lines(installed):
    prefix, account = installed
    manifest = prefix / "manifest"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines + ["../../etc/passwd", "bin/.x",
                                           "control/me", "x" * 2000])
                        + "\n")
    n = len(lines)
    result = instcheck(prefix, account)
    assert result.returncode == 1
    out = result.stdout.splitlines()
    assert out[:4] == [
        f"{prefix}/manifest: line {n + 1} is not a file make install "
        "writes: ../../etc/passwd",
        f"{prefix}/manifest: line {n + 2} is not a file make install "
        "writes: bin/.x",
        f"{prefix}/manifest: line {n + 3} is not a file make install "
        "writes: control/me",
        f"{prefix}/manifest: line {n + 4} is not a file make install "
        "writes: " + "x" * 1025,
    ]
    assert out[4].startswith("qmail-instcheck: 4 problems in ")
    printed = instcheck(prefix, account, "-p")
    assert printed.returncode == 100
    assert printed.stdout == ""
    assert printed.stderr == (f"qmail-instcheck: fatal: {prefix}/manifest: "
                              f"line {n + 1} is not a file make install "
                              "writes\n")


def test_instcheck_table_is_what_install_applies(installed):
    prefix, account = installed
    user, group = owner_names(account)
    result = instcheck(prefix, account, "-p")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    by_path = {r[6]: r for r in rows}
    assert by_path["."] == ["own", "d", user, group, "0755", "0", "."]
    assert by_path["bin/qmail-queue"] == ["own", "f", user, group, "4711",
                                          "0", "bin/qmail-queue"]
    assert by_path["queue/lock/tcpto6"] == ["make", "f", user, group,
                                            "0644", "2048",
                                            "queue/lock/tcpto6"]
    assert by_path["queue/lock/trigger"][:5] == ["make", "p", user, group,
                                                 "0622"]
    # Without -a the table names qmail's accounts.
    plain = instcheck(prefix, None, "-p")
    owners = {line.split()[6]: line.split()[2:4]
              for line in plain.stdout.splitlines()}
    assert owners["bin/qmail-queue"] == ["qmailq", "qmail"]
    assert owners["queue/info/0"] == ["qmails", "qmail"]
    assert owners["queue/lock/tcpto"] == ["qmailr", "qmail"]
    assert owners["alias"] == ["alias", "qmail"]
    assert owners["bin/qmail-send"] == ["root", "qmail"]
    # Parents come before what they hold.
    paths = [r[6] for r in rows]
    for i, path in enumerate(paths):
        parent = os.path.dirname(path)
        if parent:
            assert parent in paths[:i], path


def test_instcheck_usage_and_root_mapping(tmp_prefix):
    prog = str(build_dir() / "bin" / "qmail-instcheck")
    result = subprocess.run([prog, "-a", "root", str(tmp_prefix)],
                            capture_output=True, text=True)
    assert result.returncode == 100
    assert result.stderr == ("qmail-instcheck: fatal: -a root: the account "
                             "must not be root\n")
    result = subprocess.run([prog, "-x"], capture_output=True, text=True)
    assert result.returncode == 100
    result = subprocess.run([prog, str(tmp_prefix / "none")],
                            capture_output=True, text=True)
    assert result.returncode == 111
    assert str(tmp_prefix / "none") in result.stderr


# ---- qmail-config ----


@pytest.fixture
def home(tmp_prefix):
    (tmp_prefix / "control").mkdir()
    return tmp_prefix


def config(home, *args):
    env = dict(os.environ, QMAILHOME=str(home))
    return subprocess.run([str(build_dir() / "bin" / "qmail-config")]
                          + list(args), env=env, capture_output=True,
                          text=True, timeout=60)


def control_files(home):
    return {p.name: p.read_text() for p in (home / "control").iterdir()}


def test_config_writes_the_files_for_a_name(home):
    result = config(home, "Mail.Example.COM")
    assert result.returncode == 0, result.stderr
    assert control_files(home) == {
        "me": "mail.example.com\n",
        "defaultdomain": "example.com\n",
        "plusdomain": "example.com\n",
        "locals": "mail.example.com\nlocalhost\n",
        "rcpthosts": "mail.example.com\n",
        "defaultdelivery": "./Maildir/\n",
    }
    assert result.stdout.splitlines() == [
        "qmail-config: control/me: mail.example.com",
        "qmail-config: control/defaultdomain: example.com",
        "qmail-config: control/plusdomain: example.com",
        "qmail-config: control/locals: mail.example.com localhost",
        "qmail-config: control/rcpthosts: mail.example.com",
        "qmail-config: control/defaultdelivery: ./Maildir/",
    ]
    for path in (home / "control").iterdir():
        assert mode_of(path) == 0o644


def test_config_keeps_existing_files_unless_forced(home):
    assert config(home, "mail.example.com").returncode == 0
    (home / "control" / "locals").write_text("edited\n")
    result = config(home, "-H", "out.example.net", "mx.example.org")
    assert result.returncode == 0, result.stderr
    files = control_files(home)
    assert files["me"] == "mail.example.com\n"
    assert files["locals"] == "edited\n"
    assert files["helohost"] == "out.example.net\n"
    assert "qmail-config: control/me exists, kept (-f replaces it)" in \
        result.stdout.splitlines()
    result = config(home, "-f", "-d", "example.net", "-D", "./Mailbox",
                    "mx.example.org")
    assert result.returncode == 0, result.stderr
    files = control_files(home)
    assert files["me"] == "mx.example.org\n"
    assert files["locals"] == "mx.example.org\nlocalhost\n"
    assert files["defaultdomain"] == "example.net\n"
    assert files["plusdomain"] == "example.net\n"
    assert files["defaultdelivery"] == "./Mailbox\n"
    assert files["helohost"] == "out.example.net\n"  # no -H: untouched
    assert sorted(files) == sorted(
        ["me", "defaultdomain", "plusdomain", "locals", "rcpthosts",
         "defaultdelivery", "helohost"])


def test_config_two_label_name_is_its_own_domain(home):
    assert config(home, "example.com").returncode == 0
    assert control_files(home)["defaultdomain"] == "example.com\n"


@pytest.mark.parametrize("name, why", [
    ("localhost", "is not fully qualified"),
    ("a..example.com", "is not a domain name"),
    ("a-.example.com", "is not a domain name"),
    ("mail.example.com.", "is not a domain name"),
    ("bad_name.example.com", "is not a domain name"),
    ("x y.example.com", "is not a domain name"),
    ("192.0.2.1", "is an address"),
    ("a" * 64 + ".example.com", "is too long"),
    ("$(touch /tmp/qm-pwned).example.com", "is not a domain name"),
])
def test_config_refuses_bad_names(home, name, why):
    result = config(home, name)
    assert result.returncode == 100
    assert why in result.stderr
    assert control_files(home) == {}
    assert not os.path.exists("/tmp/qm-pwned")


def test_config_needs_the_control_directory(tmp_prefix):
    result = config(tmp_prefix / "none", "mail.example.com")
    assert result.returncode == 111
    assert "control" in result.stderr


# ---- qmail-mkaccounts, against stand-in account tools ----

FAKE_TOOL = """\
#!{python}
# A stand-in for {name}: the accounts live in $FAKE_ACCOUNTS.
import os, sys
db = os.environ["FAKE_ACCOUNTS"]
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
with open(os.path.join(db, "calls"), "a") as f:
    f.write(" ".join([name] + args) + "\\n")
def load(kind):
    with open(os.path.join(db, kind)) as f:
        return [l.rstrip("\\n").split(":") for l in f if l.strip()]
def save(kind, rows):
    with open(os.path.join(db, kind), "w") as f:
        f.writelines(":".join(r) + "\\n" for r in rows)
def opts(args):
    found, rest = {{}}, []
    it = iter(args)
    for a in it:
        if a in ("-g", "-d", "-s"):
            found[a] = next(it)
        elif a.startswith("-"):
            found[a] = True
        else:
            rest.append(a)
    return found, rest
groups, users = load("group"), load("passwd")
if name == "getent":
    rows = groups if args[0] == "group" else users
    for r in rows:
        if r[0] == args[1]:
            print(":".join(r))
            sys.exit(0)
    sys.exit(2)
o, rest = opts(args)
if name == "groupadd":
    groups.append([rest[0], "x", str(800 + len(groups)), ""])
    save("group", groups)
elif name == "useradd":
    gid = [g[2] for g in groups if g[0] == o["-g"]][0]
    users.append([rest[0], "x", str(900 + len(users)), gid, "", o["-d"],
                  o["-s"]])
    save("passwd", users)
elif name == "usermod":
    for u in users:
        if u[0] == rest[0]:
            if "-g" in o:
                u[3] = [g[2] for g in groups if g[0] == o["-g"]][0]
            if "-d" in o:
                u[5] = o["-d"]
            if "-s" in o:
                u[6] = o["-s"]
    save("passwd", users)
"""

ACCOUNTS = ["alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr",
            "qmails", "ucspissl"]


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def write_script(path, text):
    path.write_text(textwrap.dedent(text))
    path.chmod(0o755)


@pytest.fixture
def fake_accounts(tmp_prefix):
    db = tmp_prefix / "db"
    db.mkdir()
    (db / "group").write_text("")
    (db / "passwd").write_text("")
    (db / "calls").write_text("")
    shims = tmp_prefix / "shims"
    shims.mkdir()
    for name in ("getent", "groupadd", "useradd", "usermod"):
        write_script(shims / name, FAKE_TOOL.format(python=sys.executable,
                                                    name=name))
    return db, shims


def mkaccounts(fake, *args, home="/var/qmail"):
    db, shims = fake
    env = dict(os.environ, FAKE_ACCOUNTS=str(db), QMAILHOME=home,
               PATH=f"{shims}:{os.environ['PATH']}")
    (db / "calls").write_text("")
    return subprocess.run([str(build_dir() / "bin" / "qmail-mkaccounts")]
                          + list(args), env=env, capture_output=True,
                          text=True, timeout=60)


def calls(fake, tool):
    db, _ = fake
    return [line for line in (db / "calls").read_text().splitlines()
            if line.split()[0] == tool]


def nologin():
    for shell in ("/usr/sbin/nologin", "/sbin/nologin", "/usr/bin/false",
                  "/bin/false"):
        if os.access(shell, os.X_OK):
            return shell


def test_mkaccounts_check_mode_reports_and_changes_nothing(fake_accounts):
    result = mkaccounts(fake_accounts, "-n")
    assert result.returncode == 1
    assert result.stdout.splitlines() == (
        [f"qmail-mkaccounts: group {g}: missing"
         for g in ("nofiles", "qmail", "ucspissl")]
        + [f"qmail-mkaccounts: account {a}: missing" for a in ACCOUNTS]
        + ["qmail-mkaccounts: 11 problems"])
    assert calls(fake_accounts, "groupadd") == []
    assert calls(fake_accounts, "useradd") == []


def test_mkaccounts_creates_what_doc_install_lists(fake_accounts):
    result = mkaccounts(fake_accounts)
    assert result.returncode == 0, result.stdout + result.stderr
    shell = nologin()
    assert calls(fake_accounts, "groupadd") == [
        "groupadd -r nofiles", "groupadd -r qmail", "groupadd -r ucspissl"]
    assert calls(fake_accounts, "useradd") == [
        f"useradd -r -M -g nofiles -d /var/qmail/alias -s {shell} alias",
        f"useradd -r -M -g nofiles -d /var/qmail -s {shell} qmaild",
        f"useradd -r -M -g nofiles -d /var/qmail -s {shell} qmaill",
        f"useradd -r -M -g nofiles -d /var/qmail -s {shell} qmailp",
        f"useradd -r -M -g qmail -d /var/qmail -s {shell} qmailq",
        f"useradd -r -M -g qmail -d /var/qmail -s {shell} qmailr",
        f"useradd -r -M -g qmail -d /var/qmail -s {shell} qmails",
        f"useradd -r -M -g ucspissl -d /nonexistent -s {shell} ucspissl",
    ]
    assert result.stdout.splitlines()[-1] == (
        "qmail-mkaccounts: ok: the 8 accounts and 3 groups of "
        "doc/install.md are as they should be")
    again = mkaccounts(fake_accounts, "-n")
    assert again.returncode == 0
    assert again.stdout.splitlines() == [result.stdout.splitlines()[-1]]


def test_mkaccounts_reports_wrong_accounts_and_fixes_only_with_f(
        fake_accounts):
    assert mkaccounts(fake_accounts).returncode == 0
    db, _ = fake_accounts
    rows = [line.split(":") for line in
            (db / "passwd").read_text().splitlines()]
    groups = {line.split(":")[0]: line.split(":")[2] for line in
              (db / "group").read_text().splitlines()}
    for r in rows:
        if r[0] == "qmaild":
            r[3], r[6] = groups["qmail"], "/bin/bash"
        if r[0] == "alias":
            r[5] = "/tmp/elsewhere"
        if r[0] == "qmailp":
            r[2] = "0"
    (db / "passwd").write_text("".join(":".join(r) + "\n" for r in rows))
    shell = nologin()
    wrong = [
        "qmail-mkaccounts: account alias: home /tmp/elsewhere, expected "
        "/var/qmail/alias (-f fixes it: usermod -d /var/qmail/alias alias)",
        f"qmail-mkaccounts: account qmaild: primary group {groups['qmail']},"
        f" expected nofiles ({groups['nofiles']}) (-f fixes it: usermod -g "
        "nofiles qmaild)",
        "qmail-mkaccounts: account qmaild: login shell /bin/bash, expected "
        f"{shell} (-f fixes it: usermod -s {shell} qmaild)",
        "qmail-mkaccounts: account qmailp: has uid 0; remove it and run "
        "qmail-mkaccounts again",
    ]
    for args in (["-n"], []):
        result = mkaccounts(fake_accounts, *args)
        assert result.returncode == 1
        assert result.stdout.splitlines() == wrong + [
            "qmail-mkaccounts: 4 problems"]
        assert calls(fake_accounts, "usermod") == []
    result = mkaccounts(fake_accounts, "-f")
    assert result.returncode == 1  # uid 0 is not for a program to fix
    assert calls(fake_accounts, "usermod") == [
        "usermod -d /var/qmail/alias alias", "usermod -g nofiles qmaild",
        f"usermod -s {shell} qmaild"]
    assert result.stdout.splitlines() == [
        "qmail-mkaccounts: account alias: home /tmp/elsewhere, expected "
        "/var/qmail/alias: fixed",
        f"qmail-mkaccounts: account qmaild: primary group {groups['qmail']},"
        f" expected nofiles ({groups['nofiles']}): fixed",
        f"qmail-mkaccounts: account qmaild: login shell /bin/bash, expected "
        f"{shell}: fixed",
        wrong[3],
        "qmail-mkaccounts: 1 problem",
    ]
    result = mkaccounts(fake_accounts, "-n")
    assert result.stdout.splitlines() == [wrong[3],
                                          "qmail-mkaccounts: 1 problem"]


def test_mkaccounts_uses_the_home_it_is_given(fake_accounts):
    result = mkaccounts(fake_accounts, home="/opt/qmail")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(fake_accounts, "useradd")[0].split()[6] == \
        "/opt/qmail/alias"
    bad = mkaccounts(fake_accounts, "-n", "-f")
    assert bad.returncode == 0  # the last of -n and -f wins: -f
    usage = mkaccounts(fake_accounts, "extra")
    assert usage.returncode == 100
