import os
import subprocess
from pathlib import Path

import pytest

from l402tui.agent.workspace import BASELINE_TAG, Workspace, WorkspaceError


@pytest.fixture
def ws(tmp_path, package):
    return Workspace.create(tmp_path / "ws", package, branch="l402tui/guess", description="guess")


def branch_messages(ws):
    return [c.message.split("\n")[0] for c in ws.repo.iter_commits(ws.branch)]


def set_guess(ws, value):
    model = ws.target / "model.py"
    model.write_text(model.read_text().replace(model.read_text().split("\n")[0],
                                               f"GUESS = {value}  # search: float(0.01, 100.0, log)"))


def test_create_commits_the_package_as_the_tagged_baseline(ws, package):
    assert ws.branch == "l402tui/guess"
    assert ws.repo.tags[BASELINE_TAG].commit.hexsha == ws.head() == ws.baseline
    tracked = {e.path for e in ws.repo.head.commit.tree.traverse() if e.type == "blob"}
    assert {"bounty.toml", "target/model.py", "target/predict.py", "scorer/score.py",
            "public/labels/answer.txt"} <= tracked
    assert not any(p.startswith("heldout") for p in tracked)
    assert ws.changed_paths() == []
    with pytest.raises(WorkspaceError, match="not empty"):
        Workspace.create(ws.root, package, branch="x")


def test_a_failed_creation_leaves_nothing_behind(tmp_path):
    with pytest.raises(Exception):
        Workspace.create(tmp_path / "ws", b"not a tarball", branch="b")
    assert list(tmp_path.iterdir()) == []


def test_keep_puts_the_metric_in_the_message_and_discard_resets(ws):
    set_guess(ws, 1.5)
    change = ws.read_change()
    assert change.paths == ("target/model.py",) and change.is_new
    kept = ws.keep(change, "GUESS 1.5", 1.5, 0.04)
    assert ws.head() == kept == ws.last_kept()
    message = ws.repo.commit(kept).message
    assert message.startswith("GUESS 1.5\n") and "Metric: 1.500000" in message and "Memory-GB: 0.0" in message
    assert not ws.read_change().is_new  # nothing changed since the keep

    set_guess(ws, 9.0)
    (ws.target / "stray.txt").write_text("output of a bad idea")
    change = ws.read_change()
    assert change.paths == ("target/model.py", "target/stray.txt")
    bad = ws.reject("GUESS 9")
    assert ws.head() == kept and ws.changed_paths() == []
    assert "GUESS = 1.5" in (ws.target / "model.py").read_text()
    assert not (ws.target / "stray.txt").exists()
    assert "candidate: GUESS 9" in ws.repo.commit(bad).message  # still inspectable by hash
    assert "GUESS = 9.0" in ws.repo.git.stash("show", "-p", bad)
    assert branch_messages(ws) == ["GUESS 1.5", "baseline: guess"]
    assert [(k.description, k.metric) for k in ws.kept_commits()] == [("GUESS 1.5", 1.5)]


def test_results_and_scratch_survive_resets(ws):
    ws.results_path.write_text("commit\tmetric\tmemory_gb\tstatus\tdescription\n")
    (ws.scratch / "best.json").write_text("{}")
    set_guess(ws, 2.0)
    (ws.root / "notes.txt").write_text("left by a failed proposer")
    ws.discard(clean=True)
    assert ws.results_path.exists() and (ws.scratch / "best.json").exists()
    assert not (ws.root / "notes.txt").exists() and ws.changed_paths() == []


def test_the_diff_is_rerooted_at_target_and_applies_to_a_fresh_copy(ws, bounty_dir, tmp_path):
    set_guess(ws, 2.5)
    (ws.target / "extra.py").write_text("X = 1\n")
    change = ws.read_change()
    assert "--- a/model.py\n+++ b/model.py\n" in change.target_diff
    assert "+++ b/extra.py" in change.target_diff and "target/" not in change.target_diff
    ws.keep(change, "two files", 0.5, 0.0)
    diff = ws.diff()
    assert diff == change.target_diff and diff.endswith("\n")
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(bounty_dir / "target"), str(copy)], check=True)
    subprocess.run(["git", "apply", "-"], input=diff.encode(), cwd=copy, check=True)
    assert (copy / "model.py").read_text() == (ws.target / "model.py").read_text()
    assert (copy / "extra.py").read_text() == "X = 1\n"


def test_changes_outside_target_are_seen(ws):
    (ws.root / "scorer" / "score.py").write_text("print('{\"error\": 0}')\n")
    change = ws.read_change()
    assert change.paths == ("scorer/score.py",) and change.target_diff == ""


def test_recover_undoes_a_half_done_experiment(ws):
    set_guess(ws, 1.0)
    kept = ws.keep(ws.read_change(), "kept", 2.0, 0.0)
    set_guess(ws, 7.0)
    ws.read_change()
    ws.repo.git.commit("-qam", "candidate: an older agent left this on the branch")
    set_guess(ws, 8.0)  # and a dirty tree on top
    (ws.root / "stray.txt").write_text("x")
    assert ws.recover() is True
    assert ws.head() == kept and ws.changed_paths() == []
    assert ws.recover() is False


def test_one_agent_per_work_tree_and_stale_git_locks_are_cleared(ws):
    ws.acquire()
    other = Workspace(ws.root)
    with pytest.raises(WorkspaceError, match=rf"another agent \(pid {os.getpid()}\) is working in"):
        other.recover()
    (Path(ws.repo.git_dir) / "index.lock").write_text("")  # left by a git killed mid-write
    ws.recover()
    assert not (Path(ws.repo.git_dir) / "index.lock").exists()
    ws.release()
    other.recover()  # free now
    other.release()


def test_open_refuses_a_folder_it_did_not_make(tmp_path):
    with pytest.raises(WorkspaceError, match="not an agent work tree"):
        Workspace(tmp_path)
    subprocess.run(["git", "init", "-q", str(tmp_path / "other")], check=True)
    with pytest.raises(WorkspaceError, match="no l402tui-baseline tag"):
        Workspace(tmp_path / "other")


def test_spec_is_rooted_at_a_pristine_baseline_copy(ws):
    set_guess(ws, 9.0)
    (ws.root / "scorer" / "score.py").write_text("print('{\"error\": 0}')\n")  # tampering in the work tree
    spec = ws.spec()
    assert spec.name == "guess" and spec.mutable == ("model.py",)
    assert spec.root == (ws.scratch / "baseline").resolve()
    assert "GUESS = 0.5" in (spec.target_path / "model.py").read_text()
    assert "abs(pred" in (spec.scorer_path / "score.py").read_text()
    assert spec.heldout_path(0).is_dir()  # an empty placeholder: the package has no held-out set
    assert sorted(ws.changed_paths()) == ["scorer/score.py", "target/model.py"]


def test_git_work_from_two_threads_does_not_deadlock(ws):
    """gitpython's cat-file pipe is shared per repository; the work tree serializes its use."""
    import threading

    set_guess(ws, 2.0)
    ws.keep(ws.read_change(), "kept", 0.5, 0.0)
    errors = []

    def hammer():
        try:
            for _ in range(100):
                assert ws.last_kept() == ws.head()
                ws.kept_commits()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and errors == []
