"""The manual pages in doc/man: each renders with `man -l` without a
single groff warning, each is indexed by whatis under its own name, and
every program the build installs has one, and a row in the README's
program table.

These tests read doc/man and build/bin only; they write nothing but a
deliberately broken page in pytest's temporary directory, which proves
that the checks can fail.
"""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
MAN_DIR = REPO / "doc" / "man"
PAGES = sorted(p for p in MAN_DIR.iterdir()
               if re.fullmatch(r"[^.].*\.[1-8]", p.name))

# A fixed width and locale: line breaking, and so the "cannot break line"
# warnings, depend on both.
MAN_ENV = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MANPAGER="cat",
               PAGER="cat")

pytestmark = pytest.mark.skipif(
    not (shutil.which("man") and shutil.which("lexgrog")),
    reason="man-db is not installed (make deps installs it)")


def render(page):
    """man -l with every groff warning on ("w": all of them, including
    undefined macros, which "all" leaves out)."""
    return subprocess.run(["man", "--warnings=w", "-l", str(page)],
                          env=MAN_ENV, capture_output=True, timeout=60)


def whatis_names(page):
    """The names whatis will index for page, as lexgrog parses its NAME
    section, or None when lexgrog cannot parse it."""
    r = subprocess.run(["lexgrog", str(page)], env=MAN_ENV,
                       capture_output=True, text=True, timeout=60)
    names = []
    for line in r.stdout.splitlines():
        m = re.fullmatch(r'.*?: "(.*) - .*"', line)
        if not m:
            return None
        names += [n.strip() for n in m.group(1).split(",")]
    return names if r.returncode == 0 and names else None


def test_pages_exist():
    assert len(PAGES) > 40, f"only {len(PAGES)} pages in {MAN_DIR}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_renders_without_warnings(page):
    r = render(page)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stderr == b"", r.stderr.decode(errors="replace")
    text = r.stdout.decode()
    assert "NAME" in text and "DESCRIPTION" in text, text[:500]
    assert page.stem in text, text[:500]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_name_section_names_the_file(page):
    names = whatis_names(page)
    assert names is not None, f"lexgrog cannot parse the NAME of {page}"
    assert page.stem in names, f"{page.name}: NAME gives {names}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_title_line_matches_the_file(page):
    th = next((line for line in page.read_text().splitlines()
               if line.startswith(".TH ")), None)
    assert th, f"{page.name} has no .TH line"
    fields = th.split()
    # Upper case is the older style, and still correct.
    assert fields[1].replace("\\-", "-").lower() == page.stem, th
    assert fields[2] == page.suffix[1:], th


def test_every_program_has_a_page(bindir):
    programs = sorted(p.name for p in bindir.iterdir() if p.is_file())
    assert "qmail-smtpd" in programs
    stems = {p.stem for p in PAGES}
    missing = [name for name in programs if name not in stems]
    assert missing == [], f"programs without a page in {MAN_DIR}: {missing}"


def readme_programs():
    """The names in backquotes in the rows of the README's Programs
    table, with the status of each row."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Programs\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3:
            continue
        for name in re.findall(r"`([^`]+)`", cells[1]):
            rows[name.split()[0]] = cells[2]
    return rows


def test_readme_lists_every_program(bindir):
    rows = readme_programs()
    programs = sorted(p.name for p in bindir.iterdir() if p.is_file())
    missing = [name for name in programs if name not in rows]
    assert missing == [], f"programs missing from README.md: {missing}"
    planned = [name for name in programs
               if not rows[name].startswith("works")]
    assert planned == [], f"built programs not marked works: {planned}"


def test_a_broken_page_is_caught(tmp_path):
    """The checks above can fail: a misspelt macro warns, and a page
    without a NAME section cannot be indexed."""
    broken = tmp_path / "broken.1"
    broken.write_text(".TH broken 1\n.SH NAME\nbroken \\- a test page\n"
                      ".SH DESCRIPTION\n.BX text\n")
    r = render(broken)
    assert b"macro 'BX' not defined" in r.stderr, r.stderr
    assert whatis_names(broken) == ["broken"]

    nameless = tmp_path / "nameless.1"
    nameless.write_text(".TH nameless 1\n.SH DESCRIPTION\ntext\n")
    assert whatis_names(nameless) is None
