"""Diffs are refused with reasons the agent can act on, before anything runs."""

from __future__ import annotations

import dataclasses
import shutil
import textwrap
from pathlib import Path

import pytest

from gitdiffs import git_diff
from l402tui.bounty import load_bounty
from l402tui.evaluation import diffcheck, diffparse
from l402tui.evaluation.diffcheck import DiffRejected, apply_diff, check_diff, is_mutable, parse_diff
from tinybounty import FIX_DIFF, SUMS_LIB, SUMS_SOLVER


FILES = {"sumlib.py": SUMS_LIB, "solve.py": SUMS_SOLVER}


def _insert(path: str, added: list[str]) -> str:
    """A diff that applies: ``added`` on top of the sums bounty's ``path`` (each item one line to git)."""
    old = FILES[path].split("\n")[:-1]
    body = "".join(f"+{a}\n" for a in added) + "".join(f" {line}\n" for line in old[:3])
    return (f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -1,3 +1,{3 + len(added)} @@\n{body}")


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
    assert [(p.old_path, p.new_path, p.removed_lines, [t for _, t in p.added]) for p in patches] == [
        ("m.py", "m.py", ["-- a/x", "++ b/y"], ["fine = 1", "also = 2"])]


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


# --- Judged on what git applies (real `git diff` output, real `git apply`) ---------------------------

SAMPLES = Path(__file__).resolve().parents[2] / "sample_bounties"


def _real_diff(spec, tmp_path, edit, *flags) -> str:
    return git_diff(spec.target_path, tmp_path, edit, *flags)


def _rename_to_fixed(repo):
    (repo / "sumlib.py").rename(repo / "sumlib_impl.py")


def _copy_to_new(repo):
    shutil.copy(repo / "sumlib.py", repo / "helper.py")


def _make_executable(repo):
    (repo / "sumlib.py").chmod(0o755)


def _symlink(repo):
    (repo / "sumlib.py").unlink()
    (repo / "sumlib.py").symlink_to("/etc/passwd")


def _binary(repo):
    (repo / "sumlib.py").write_bytes(b"\x00\x01 compiled \x00")


@pytest.mark.parametrize("edit, flags, reason", [
    (_rename_to_fixed, (), "sumlib_impl.py is not a mutable file; this bounty allows changes to: sumlib.py"),
    (_copy_to_new, ("--find-copies-harder",), "helper.py is not a mutable file; this bounty allows changes to: "
                                              "sumlib.py"),
    (_make_executable, (), "sumlib.py: file mode 100755 is not allowed; submissions change regular, "
                           "non-executable files (mode 100644) only"),
    (_symlink, (), "sumlib.py: symlinks are not allowed in submissions"),
    (_binary, ("--binary",), "sumlib.py: binary patches are not allowed; submit text changes only"),
    (_binary, (), "sumlib.py: binary patches are not allowed; submit text changes only"),
])
def test_real_git_diffs_that_break_the_rules_are_refused(sums, tmp_path, edit, flags, reason):
    diff = _real_diff(sums, tmp_path, edit, *flags)
    assert ("rename from" in diff) == (edit is _rename_to_fixed)
    assert ("copy from" in diff) == (edit is _copy_to_new)
    assert reason in check_diff(sums, diff)


@pytest.mark.parametrize("name, edits", [
    ("sqlquery", {"indexes.sql": "CREATE INDEX idx_orders_2 ON orders(day);\n",
                  "settings.sql": "PRAGMA cache_size = -8000;\n",
                  "query.sql": "-- tuned\n"}),
    ("logparse", {"logparse.py": "# faster paths first\n"}),
    ("charlm", {"model.py": "# a better schedule\n"}),
])
def test_honest_multi_file_diffs_of_the_samples_pass(tmp_path, name, edits):
    spec = load_bounty(SAMPLES / name)

    def edit(repo):
        for path, extra in edits.items():
            text = (repo / path).read_text().split("\n")
            text[len(text) // 2:len(text) // 2] = extra.rstrip("\n").split("\n")  # into the middle, and
            (repo / path).write_text(extra + "\n".join(text))                      # on top
    diff = _real_diff(spec, tmp_path, edit)
    assert diff.count("diff --git") == len(edits)
    assert check_diff(spec, diff) == []
    tree = tmp_path / "tree"
    shutil.copytree(spec.target_path, tree)
    apply_diff(spec, diff, tree)
    assert all((tree / path).read_text().startswith(extra) for path, extra in edits.items())


def test_crlf_file_content_is_accepted_as_git_reads_it(sums, tmp_path):
    (sums.target_path / "sumlib.py").write_bytes(SUMS_LIB.replace("\n", "\r\n").encode())
    diff = _real_diff(sums, tmp_path, lambda repo: (repo / "sumlib.py").write_bytes(
        (repo / "sumlib.py").read_bytes().replace(b"= True", b"= False")))
    assert "+SKIP_NEGATIVE = False\r\n" in diff
    assert check_diff(sums, diff) == []


@pytest.mark.parametrize("char", ["\x1b", "\x00", "\x0b", "\x85", "\u2028", "\u202e", "\r"])
def test_control_characters_in_added_text_are_refused_and_shown_escaped(sums, char):
    diff = _patch("sumlib.py", [f"x = 1{char}import os  # hi"])
    reasons = check_diff(sums, diff)
    assert any("sumlib.py:1: added line holds the control character" in r for r in reasons), reasons
    assert all(r.isprintable() for r in reasons)


def test_forbidden_patterns_match_every_way_a_line_can_be_split(sums):
    spec = dataclasses.replace(sums, forbidden_patterns=(r"^import\s+os\b",))
    diff = _patch("sumlib.py", ["x = 1\x0cimport os"])  # one line to git, two to str.splitlines()
    assert "sumlib.py:1: added line matches forbidden pattern '^import\\\\s+os\\\\b'" in check_diff(spec, diff)


def test_escape_sequences_in_paths_never_reach_a_reason(sums):
    diff = _patch("sumlib.py\x1b]0;owned\x07", ["x = 1"]).replace("diff --git", "diff  --git")
    reasons = check_diff(sums, diff)
    assert reasons and all(r.isprintable() for r in reasons)


# --- The git stage stands on its own: if the reading ever missed something, git's view refuses it -----

HIDDEN = _insert("sumlib.py", ["x = 1"]) + _insert("solve.py", ["import os"])


def _reader_that_misses_the_second_file(diff):
    patches, problems = diffparse.read_diff(diff)
    return patches[:1], problems


def test_numstat_disagreement_refuses(sums, monkeypatch):
    monkeypatch.setattr(diffcheck, "read_diff", _reader_that_misses_the_second_file)
    assert check_diff(sums, HIDDEN) == [
        "git reads this diff differently from the checker (git finds 2 file patch(es), the checker 1); refused. "
        "Lines end at \\n only and headers hold no control characters: make it with `git diff` against an "
        "unmodified package"]


def test_tree_comparison_refuses_a_path_nobody_named(sums, monkeypatch):
    monkeypatch.setattr(diffcheck, "read_diff", _reader_that_misses_the_second_file)
    monkeypatch.setattr(diffcheck, "_compare_numstat", lambda patches, numstat: [])
    reasons = check_diff(sums, HIDDEN)
    assert any("git changed solve.py, which the diff's headers do not name" in r for r in reasons), reasons


def test_line_limit_counts_what_git_counts(sums, monkeypatch):
    real = diffparse.read_diff

    def undercount(diff):
        patches, problems = real(diff)
        for p in patches:
            p.added = p.added[:1]
        return patches, problems
    monkeypatch.setattr(diffcheck, "read_diff", undercount)
    monkeypatch.setattr(diffcheck, "_compare_numstat", lambda patches, numstat: [])
    diff = _insert("sumlib.py", [f"x{i} = {i}" for i in range(61)])
    assert "the diff changes 61 lines; this bounty allows at most 60" in check_diff(sums, diff)


def test_git_runs_without_the_users_config(sums, tmp_path, monkeypatch):
    # The operator's config must not change what applies: here it would ignore whitespace
    # in context lines, so a diff against a reformatted file would slip through.
    cfg = tmp_path / "gitconfig"
    cfg.write_text("[apply]\n\tignoreWhitespace = change\n")
    for name in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG"):
        monkeypatch.setenv(name, str(cfg))
    monkeypatch.setenv("HOME", str(tmp_path))
    diff = _insert("sumlib.py", ["x = 1"]).replace(" SKIP_NEGATIVE = True", " SKIP_NEGATIVE  =  True")
    assert check_diff(sums, diff)[0].startswith("the diff does not apply to target/")
