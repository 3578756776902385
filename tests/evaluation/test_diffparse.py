"""The checker reads a diff exactly as `git apply` does, so no line break git ignores can hide a file."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitdiffs import git_changes, git_diff
from l402tui.bounty import load_bounty
from l402tui.evaluation.diffcheck import check_diff, is_mutable
from l402tui.evaluation.diffparse import parse_diff, read_diff, show
from tinybounty import SUMS_LIB, SUMS_SOLVER

SAMPLES = Path(__file__).resolve().parents[2] / "sample_bounties"
# Everything str.splitlines() breaks a line on, apart from \n and \r\n.
SEPARATORS = ["\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r"]


def _old_checker_paths(diff: str) -> list[str]:
    """The files the checker saw before it read diffs as git does (str.splitlines, and hunks
    consumed by their @@ counts): the view the attacks below were built against."""
    paths, lines, i = [], diff.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("diff --git "):
            paths.append(lines[i].split(" b/", 1)[1])
        elif m := re.match(r"@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@", lines[i]):
            old, new = int(m.group(1) or 1), int(m.group(2) or 1)
            i += 1
            while i < len(lines) and (old > 0 or new > 0):
                old -= lines[i][:1] not in ("+", "\\")
                new -= lines[i][:1] not in ("-", "\\")
                i += 1
            continue
        i += 1
    return paths


@pytest.mark.parametrize("sep", SEPARATORS, ids=[repr(s) for s in SEPARATORS])
def test_desync_attack_on_logparse_is_refused(tmp_path, sep):
    spec = load_bounty(SAMPLES / "logparse")

    def edit(repo):
        # The mutable file's last added line fakes a hunk header that, for a reader splitting
        # at `sep`, swallows run.py's four header lines (2 context, 1 removed, 1 added).
        with open(repo / "logparse.py", "a", newline="") as fh:
            fh.write(f"# tuned{sep}@@ -0,3 +1,3 @@\n")
        with open(repo / "run.py", "a") as fh:
            fh.write("import shutil; shutil.rmtree('tests')\n")
    diff = git_diff(spec.target_path, tmp_path, edit)
    assert _old_checker_paths(diff) == ["logparse.py"]  # the old checker saw one mutable file
    assert git_changes(spec.target_path, tmp_path, diff) == {"logparse.py", "run.py"}  # git changes two
    assert [p.new_path for p in parse_diff(diff)] == ["logparse.py", "run.py"]
    assert "run.py is not a mutable file; this bounty allows changes to: logparse.py" in check_diff(spec, diff)


def test_separator_in_a_header_is_refused_before_git_runs(sums):
    diff = (f"diff --git a/sumlib.py b/sumlib.py\n--- a/sumlib.py\n+++ b/sumlib.py\x0c+++ b/solve.py\n"
            "@@ -1,1 +1,2 @@\n+x = 1\n \"\"\"The mutable part: how a list of tokens becomes a total.\"\"\"\n")
    assert check_diff(sums, diff) == [
        "line 3 is a diff header or text between files and holds the control character '\\x0c'; "
        "headers may hold tabs only (git C-quotes unusual file names)"]


@pytest.mark.parametrize("line", ["diff --git a/sumlib.py b/sumlib.py\x00", "index 1\x1b[2J..2 100644",
                                  "some text\u2028diff --git a/solve.py b/solve.py", "From: x\x85y"])
def test_control_characters_anywhere_outside_hunks_are_refused(sums, line):
    diff = line + "\n" + FIX
    reasons = check_diff(sums, diff)
    assert len(reasons) == 1 and "holds the control character" in reasons[0] and reasons[0].isprintable()


def test_crlf_diff_is_refused_with_a_clear_reason(sums):
    assert check_diff(sums, FIX.replace("\n", "\r\n")) == [
        "line 1 ends in a carriage return (CRLF line endings): git reads it as part of the header; make the "
        "diff with `git diff`, which writes LF line endings"]


@pytest.mark.parametrize("diff, problem", [
    ("@@ -1 +1 @@\n-a\n+b\n", "line 1: a hunk (@@) without a file header before it"),
    ("--- a/sumlib.py\n+++ b/sumlib.py\n@@ -1,2 +1,2 @@\n-a\nxb\n+c\n",
     "line 5: corrupt patch (a hunk line must start with a space, '-', '+' or '\\')"),
    ("--- a/sumlib.py\n+++ b/sumlib.py\n@@ -1,3 +1,3 @@\n-a\n+c\n", "line 3: the hunk ends early (its @@ counts "
                                                                   "promise more lines)"),
])
def test_corrupt_diffs_are_refused_as_git_refuses_them(sums, diff, problem):
    assert read_diff(diff)[1] == [problem]
    assert check_diff(sums, diff) == [problem]


def test_quoted_names_are_read_as_git_writes_them():
    diff = ('diff --git "a/\\303\\251 x.py" "b/\\303\\251 x.py"\nnew file mode 100644\n--- /dev/null\n'
            '+++ "b/\\303\\251 x.py"\n@@ -0,0 +1 @@\n+x\n')
    (patch,) = parse_diff(diff)
    assert (patch.old_path, patch.new_path, patch.added) == (None, "é x.py", [(1, "x")])


def test_show_escapes_what_a_terminal_would_act_on():
    assert show("sumlib.py") == "sumlib.py"
    assert show("é.py") == "é.py"
    assert show("a\x1b[31m.py") == "'a\\x1b[31m.py'"
    assert show("x\u202ey") == "'x\\u202ey'"


FIX = ("diff --git a/sumlib.py b/sumlib.py\n--- a/sumlib.py\n+++ b/sumlib.py\n@@ -1,3 +1,3 @@\n"
       ' """The mutable part: how a list of tokens becomes a total."""\n \n-SKIP_NEGATIVE = True\n'
       "+SKIP_NEGATIVE = False\n")


# --- Property: whatever the diff, what the checker approves is exactly what git changes ------------

FILES = {"sumlib.py": SUMS_LIB, "solve.py": SUMS_SOLVER, "test_sumlib.py": "import sumlib\n"
         "assert sumlib.total(['1', '2']) == 3\n"}
PIECES = ["x = 1", "# tuned", "@@ -0,3 +1,3 @@", "@@ -1 +1 @@", "diff --git a/solve.py b/solve.py",
          "--- a/solve.py", "+++ b/solve.py", "-", "+", " ", "\\ No newline at end of file", "import os"]
benign = st.sampled_from(["x = 1", "y = 2  # tuned", ""])
pieces = st.lists(st.sampled_from(PIECES + SEPARATORS), min_size=1, max_size=4).map("".join)
line_text = st.sampled_from([benign, benign, benign, pieces]).flatmap(lambda strategy: strategy)


@st.composite
def file_patch(draw, path=None, hide=0):
    """One file's patch, a hunk inserting lines; with ``hide``, at the end of the file and with
    a last line ending in a separator and a fake hunk header that swallows ``hide`` removed and
    added lines: the next file's ---/+++ (and diff --git, as context) for a reader splitting there."""
    path = path or draw(st.sampled_from(["sumlib.py", "sumlib.py", "solve.py", "test_sumlib.py"]))
    old = FILES[path].split("\n")[:-1]
    at = len(old) if hide else draw(st.one_of(st.just(len(old)), st.integers(0, len(old))))
    added = draw(st.lists(line_text, min_size=1, max_size=3))
    if hide:
        added[-1] += draw(st.sampled_from(SEPARATORS)) + f"@@ -0,{hide} +1,{hide} @@"
    before, after = old[max(0, at - 3):at], old[at:at + 3]
    body = "".join(f" {x}\n" for x in before) + "".join(f"+{a}\n" for a in added) + "".join(
        f" {x}\n" for x in after)
    start, ctx = max(0, at - 3) + 1, len(before) + len(after)
    git_line = draw(st.sampled_from([f"diff --git a/{path} b/{path}\n", ""]))
    if git_line:  # sometimes with header lines that change modes or move files
        git_line += draw(st.sampled_from(["", "", "index 1234567..89abcde 100644\n",
                                          "old mode 100644\nnew mode 100755\n", "new file mode 100644\n",
                                          f"similarity index 90%\nrename from {path}\nrename to sumlib.py\n",
                                          f"copy from {path}\ncopy to sumlib.py\n"]))
    return f"{git_line}--- a/{path}\n+++ b/{path}\n@@ -{start},{ctx} +{start},{ctx + len(added)} @@\n{body}"


@st.composite
def smuggling_diff(draw):
    hidden = draw(st.lists(file_patch(), min_size=1, max_size=2))
    return draw(file_patch("sumlib.py", hide=2 if hidden[0].startswith("diff --git") else 1)) + "".join(hidden)


@st.composite
def random_diff(draw):
    diff = draw(st.one_of(st.lists(file_patch(), min_size=1, max_size=3).map("".join), smuggling_diff()))
    # Break some of git's lines for other readers, or join two of them into one for git.
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        spots = [i for i, c in enumerate(diff) if c == "\n"]
        at = draw(st.sampled_from(spots))
        diff = diff[:at] + draw(st.sampled_from(SEPARATORS)) + diff[at + 1:]
    return diff


def test_approved_paths_are_exactly_what_git_changes(sums):
    approved = []

    @settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(random_diff())
    def check(diff):
        reasons = check_diff(sums, diff)
        assert all(r.isprintable() for r in reasons), reasons
        if reasons:
            return
        with tempfile.TemporaryDirectory() as work:
            changed = git_changes(sums.target_path, Path(work), diff)
        assert changed is not None, "approved, but git refuses it"
        assert changed == {p for patch in parse_diff(diff) for p in patch.written}
        assert all(is_mutable(sums, p) for p in changed)
        approved.append(diff)

    check()
    assert approved, "no random diff was approved: the property was never exercised"
