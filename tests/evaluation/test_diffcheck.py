"""Diffs are refused with reasons the agent can act on, before anything runs."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from l402tui.evaluation.diffcheck import DiffRejected, apply_diff, check_diff, is_mutable, parse_diff
from tinybounty import FIX_DIFF


def _patch(path: str, added: list[str], removed: list[str] | None = None, header: str = "") -> str:
    removed = removed or []
    body = "".join(f"-{r}\n" for r in removed) + "".join(f"+{a}\n" for a in added)
    return (f"diff --git a/{path} b/{path}\n{header}--- a/{path}\n+++ b/{path}\n"
            f"@@ -1,{len(removed)} +1,{len(added)} @@\n{body}")


def test_honest_diff_is_accepted_and_applies(sums, tmp_path):
    assert check_diff(sums, FIX_DIFF) == []
    tree = tmp_path / "copy"
    shutil.copytree(sums.target_path, tree)
    apply_diff(sums, FIX_DIFF, tree)
    assert "SKIP_NEGATIVE = False" in (tree / "sumlib.py").read_text()


@pytest.mark.parametrize("diff, reason", [
    ("", "the diff is empty; submit a unified diff (git diff) against target/"),
    ("just some text\n", "this is not a unified diff (no ---/+++ file headers found); produce it with `git diff`"),
    (_patch("../scorer/score.py", ["x = 1"]), "path escapes or is unsafe: ../scorer/score.py leaves the target "
                                              "tree (uses ..)"),
    ("--- /etc/passwd\n+++ /etc/passwd\n@@ -1,0 +1,1 @@\n+evil\n",
     "path escapes or is unsafe: /etc/passwd is an absolute path; paths must be relative to target/ (a/parser.py)"),
    (_patch("solve.py", ["print(1)"]), "solve.py is not a mutable file; this bounty allows changes to: sumlib.py"),
    (_patch(".git/config", ["x"]), "path escapes or is unsafe: .git/config touches git metadata"),
])
def test_refusals_name_the_problem(sums, diff, reason):
    assert reason in check_diff(sums, diff)


def test_symlink_is_refused(sums):
    diff = ("diff --git a/sumlib.py b/sumlib.py\nnew file mode 120000\n--- /dev/null\n+++ b/sumlib.py\n"
            "@@ -0,0 +1 @@\n+/etc/shadow\n\\ No newline at end of file\n")
    assert "sumlib.py: symlinks are not allowed in submissions" in check_diff(sums, diff)


def test_binary_patch_is_refused(sums):
    diff = ("diff --git a/sumlib.py b/sumlib.py\nindex 1..2 100644\nGIT binary patch\nliteral 4\n"
            "LcmZQz00IU00000\n\n")
    assert "sumlib.py: binary patches are not allowed; submit text changes only" in check_diff(sums, diff)


def test_too_many_changed_lines(sums):
    diff = _patch("sumlib.py", [f"x{i} = {i}" for i in range(61)])
    assert "the diff changes 61 lines; this bounty allows at most 60" in check_diff(sums, diff)


def test_forbidden_pattern_reports_file_and_line(sums):
    diff = _patch("sumlib.py", ["ok = 1", "y = eval('2')"])
    assert "sumlib.py:2: added line matches forbidden pattern 'eval\\\\('" in check_diff(sums, diff)


def test_forbidden_pattern_only_checks_added_lines(sums):
    diff = _patch("sumlib.py", ["y = 2"], removed=["y = eval('2')"])
    assert not any("forbidden" in r for r in check_diff(sums, diff))


def test_removed_line_that_looks_like_a_header_stays_in_its_hunk():
    diff = textwrap.dedent("""\
        --- a/m.py
        +++ b/m.py
        @@ -1,2 +1,2 @@
        --- a/x
        -++ b/y
        +fine = 1
        +also = 2
        """)
    patches = parse_diff(diff)
    assert [(p.old_path, p.new_path, p.removed, [t for _, t in p.added]) for p in patches] == [
        ("m.py", "m.py", 2, ["fine = 1", "also = 2"])]


def test_mutable_globs_match_whole_paths(sums):
    assert is_mutable(sums, "sumlib.py")
    assert not is_mutable(sums, "sub/sumlib.py")


def test_diff_that_does_not_apply_says_so(sums, tmp_path):
    diff = _patch("sumlib.py", ["new"], removed=["this line is not in the file"])
    tree = tmp_path / "copy"
    shutil.copytree(sums.target_path, tree)
    with pytest.raises(DiffRejected) as info:
        apply_diff(sums, diff, tree)
    assert info.value.reasons[0].startswith("the diff does not apply to target/ (error: patch failed: sumlib.py:1")
    assert info.value.reasons[0].endswith("make it with `git diff` against an unmodified package")
