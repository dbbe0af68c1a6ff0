"""Fixtures for the end-to-end tests: a session copy of the binaries,
mail-system instances, servers under tcpserver, and per-test logs.

Tests run as root in CI, so every program a fixture starts for an instance
runs as that instance's account, and everything lives under /tmp where that
account can reach it. A fixture must never leave a process or a temporary
directory behind (QM_KEEP=1 keeps the directories for debugging).
"""

import os
import pathlib
import re
import shutil
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import qmtest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
KEPT = []

# Every process a test starts, by whatever means, runs with the same
# sanitizer settings: reports go to stderr, leaks are not checked (the
# programs exit without freeing, as qmail's do).
for _name, _value in qmtest.SANITIZER_ENV.items():
    os.environ.setdefault(_name, _value)


def build_dir():
    return pathlib.Path(os.environ.get("QM_BUILD") or REPO / "build")


@pytest.fixture(scope="session")
def qm_session_dir():
    """Session directory under /tmp, reachable by instance accounts."""
    path = qmtest.make_public_tempdir("qm-e2e-")
    if qmtest.keep_temporaries():
        KEPT.append(path)
    yield path
    qmtest.remove_tree(path)


@pytest.fixture(scope="session")
def bindir(qm_session_dir):
    """A copy of $QM_BUILD/bin that instance accounts may execute (the
    build tree may sit under /root, mode 0700)."""
    source = build_dir() / "bin"
    if not (source / "qmail-instance").is_file():
        pytest.fail(f"{source}/qmail-instance is missing: run make first "
                    "(or set QM_BUILD)", pytrace=False)
    target = qm_session_dir / "bin"
    shutil.copytree(source, target, symlinks=False)
    target.chmod(0o755)
    for entry in target.iterdir():
        entry.chmod(0o755)
    return target


@pytest.fixture(autouse=True)
def qm_logbook(request, qm_session_dir):
    """The logs of this test; fails it at teardown on a sanitizer report."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", request.node.nodeid)[-150:]
    book = qmtest.LogBook(qm_session_dir / "logs" / safe)
    request.node.qm_logbook = book
    yield book
    reports = book.sanitizer_reports()
    if reports:
        names = ", ".join(path.name for path, _ in reports)
        pytest.fail(f"sanitizer report in {names}", pytrace=False)


@pytest.fixture
def make_instance(bindir, qm_logbook):
    """Factory: make_instance(host=..., mailboxes=[...]) -> Instance."""
    made = []

    def make(host="example.test", mailboxes=None):
        path = qmtest.make_public_tempdir("qm-inst-")
        if qmtest.keep_temporaries():
            KEPT.append(path)
        inst = qmtest.Instance(path, bindir, host,
                               mailboxes or ("demo", "alice", "bob"),
                               qm_logbook)
        made.append(inst)
        result = inst.install()
        if result.returncode != 0:
            pytest.fail(f"qmail-instance failed ({result.returncode}): "
                        f"{result.stderr.decode(errors='replace')}",
                        pytrace=False)
        return inst

    yield make
    for inst in made:
        inst.remove()


@pytest.fixture
def instance(make_instance):
    return make_instance()


@pytest.fixture
def servers(bindir, qm_logbook, qm_session_dir, make_instance):
    """Factory of tcpserver-run servers. It depends on make_instance so
    that servers stop before any instance directory is removed."""
    pool = qmtest.Servers(bindir, qm_logbook, qm_session_dir)
    yield pool
    errors = pool.stop_all()
    if errors:
        pytest.fail("server teardown: " + "\n".join(errors), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Adds the test's logs to the report of its first failing phase."""
    outcome = yield
    report = outcome.get_result()
    book = getattr(item, "qm_logbook", None)
    if not report.failed or book is None or getattr(item, "qm_logs_shown",
                                                    False):
        return
    item.qm_logs_shown = True
    for path, text in book.texts():
        if text.strip():
            report.sections.append((f"qm log {path.name}", text))


def pytest_terminal_summary(terminalreporter):
    for path in KEPT:
        terminalreporter.write_line(f"QM_KEEP: kept {path}")
