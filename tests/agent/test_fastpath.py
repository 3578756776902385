"""Reading and setting aside an edit of tracked text files without a git process:
same answers as git itself, seen by git as its own stash entries."""

import os
import subprocess

import git
import pytest

from l402tui.agent.workspace import Workspace


@pytest.fixture
def ws(tmp_path, package):
    return Workspace.create(tmp_path / "ws", package, branch="l402tui/guess", description="guess")


def set_guess(ws, value):
    model = ws.target / "model.py"
    first = model.read_text().split("\n")[0]
    model.write_text(model.read_text().replace(first, f"GUESS = {value}  # search: float(0.01, 100.0, log)"))


@pytest.fixture
def no_git_process(monkeypatch):
    """Fail the test if gitpython starts a git command (its cat-file pipe, already open, is fine)."""
    calls = []
    original = git.cmd.Git.execute

    def forbid(self, command, *args, **kwargs):
        calls.append(command)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(git.cmd.Git, "execute", forbid)
    return calls


def git_diff(ws):
    return ws.repo.git.diff(ws.baseline, "--no-renames", strip_newline_in_stdout=False)


def applied(tmp_path, ws, diff, name):
    """The baseline's files with ``diff`` applied by git apply (the harness's reading of it)."""
    copy = tmp_path / name
    subprocess.run(["git", "clone", "-q", str(ws.root), str(copy)], check=True)
    subprocess.run(["git", "checkout", "-q", ws.baseline], cwd=copy, check=True)
    subprocess.run(["git", "apply", "-"], input=diff.encode(), cwd=copy, check=True)
    return {p: (copy / p).read_bytes() for p in ("target/model.py", "target/predict.py")}


def test_an_edit_is_read_and_set_aside_without_a_git_process(ws, no_git_process, tmp_path):
    set_guess(ws, 4.5)
    no_git_process.clear()
    change = ws.read_change()
    assert change.paths == ("target/model.py",) and change.is_new
    assert "-GUESS = 0.5" in change.target_diff and "+GUESS = 4.5" in change.target_diff
    sha = ws.reject("GUESS 4.5")
    assert no_git_process == []
    assert "GUESS = 0.5" in (ws.target / "model.py").read_text()
    # git sees a stash entry of its own kind, and a clean tree
    assert ws.repo.git.stash("list").splitlines() == ["stash@{0}: On l402tui/guess: candidate: GUESS 4.5"]
    shown = ws.repo.git.stash("show", "-p", sha)
    assert "+GUESS = 4.5" in shown and "-GUESS = 0.5" in shown
    assert ws.changed_paths() == [] and ws.head() == ws.baseline


def test_a_kept_edit_is_committed_without_a_git_process_and_git_agrees(ws, no_git_process):
    set_guess(ws, 2.0)
    no_git_process.clear()
    sha = ws.keep(ws.read_change(), "GUESS 2.0", 2.0, 0.1)
    set_guess(ws, 3.0)
    second = ws.keep(ws.read_change(), "GUESS 3.0", 1.0, 0.1)
    assert no_git_process == []
    assert ws.head() == second and ws.repo.commit(second).parents[0].hexsha == sha
    message = ws.repo.commit(second).message
    assert message.startswith("GUESS 3.0\n\nMetric: 1.000000\nMemory-GB: 0.1")
    assert ws.changed_paths() == []  # the index follows the commit
    ws.repo.git.fsck("--strict")  # every object well formed and connected
    assert "+GUESS = 3.0" in ws.repo.git.show(second) and "-GUESS = 2.0" in ws.repo.git.show(second)
    assert [line.split(": ", 1)[1] for line in ws.repo.git.reflog(ws.branch).splitlines()[:2]] == \
        ["commit: GUESS 3.0", "commit: GUESS 2.0"]
    # git's own next commit builds on it (no stale cached tree in the index)
    (ws.target / "extra.py").write_text("X = 1\n")
    ws.repo.git.add("--all")
    ws.repo.git.commit("-qm", "by git")
    files = ws.repo.git.show("--name-only", "--format=", "HEAD").split()
    assert files == ["target/extra.py"] and "GUESS = 3.0" in ws.repo.git.show("HEAD:target/model.py")


def test_the_in_process_diff_means_what_gits_diff_means(ws, tmp_path):
    set_guess(ws, 1.25)
    ws.keep(ws.read_change(), "kept", 1.0, 0.0)
    predict = ws.target / "predict.py"
    predict.write_text(predict.read_text() + "# a trailing line without a newline")  # no newline at the end
    set_guess(ws, 2.5)
    ours = ws.read_change().full_diff
    assert ws._fast is not None  # this edit took the in-process path
    assert "\\ No newline at end of file" in ours
    assert applied(tmp_path, ws, ours, "ours") == applied(tmp_path, ws, git_diff(ws), "gits")


def test_a_same_size_edit_in_the_same_clock_tick_is_still_seen(ws):
    set_guess(ws, 1.0)
    ws.reject("first")  # restores the file: its stat is fresh
    model = ws.target / "model.py"
    before = os.stat(model)
    set_guess(ws, 2.0)  # same length, maybe the same coarse mtime
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))  # and made to look untouched
    change = ws.read_change()
    assert change.is_new and "+GUESS = 2.0" in change.full_diff


def test_new_deleted_and_binary_files_go_through_git(ws):
    (ws.target / "extra.py").write_text("X = 1\n")
    change = ws.read_change()
    assert ws._fast is None and change.paths == ("target/extra.py",)
    ws.discard(clean=True)
    (ws.target / "model.py").write_bytes(b"\x00\x01binary")
    change = ws.read_change()
    assert ws._fast is None and "Binary files" in change.full_diff
    sha = ws.reject("binary")
    assert ws.changed_paths() == [] and sha in ws.repo.git.stash("list", "--format=%H")


def test_kept_edits_stay_in_the_diff_until_they_are_undone(ws):
    set_guess(ws, 3.0)
    ws.keep(ws.read_change(), "kept", 1.0, 0.0)
    unchanged = ws.read_change()
    assert not unchanged.is_new and "+GUESS = 3.0" in unchanged.full_diff
    set_guess(ws, 0.5)  # back to the baseline's value
    back = ws.read_change()
    assert back.is_new and back.full_diff == "" and back.paths == ()
