"""Real diffs made with `git diff`, and what real `git apply` changes, for the diff-check tests.

Independent of ``l402tui.evaluation.diffcheck`` on purpose: the tests compare the
checker with git, so git here is driven directly, not through the code under test.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".git")


def _env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CEILING_DIRECTORIES": str(home.parent), "LC_ALL": "C",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t"}


def git_diff(target: Path, work: Path, edit: Callable[[Path], None], *flags: str) -> str:
    """The staged `git diff` (renames and copies found) after ``edit`` changes a copy of ``target``."""
    repo = work / "repo"
    shutil.copytree(target, repo, ignore=IGNORE, symlinks=True)
    env = _env(work)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    edit(repo)
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
    out = subprocess.run(["git", "diff", "--cached", "-M", "-C", *flags], cwd=repo, env=env, check=True,
                         capture_output=True)
    return out.stdout.decode("utf-8", "surrogateescape")


def git_changes(target: Path, work: Path, diff: str) -> set[str] | None:
    """The paths real `git apply -p1` changes in a copy of ``target`` (None if it refuses the diff).
    A diff without a final newline gets one, as the harness gives it one."""
    diff = diff if diff.endswith("\n") else diff + "\n"
    tree = work / "applied"
    shutil.copytree(target, tree, ignore=IGNORE, symlinks=True)
    proc = subprocess.run(["git", "apply", "-p1", "--whitespace=nowarn", "-"], cwd=tree, env=_env(work),
                          input=diff.encode("utf-8", "surrogateescape"), capture_output=True)
    if proc.returncode != 0:
        return None
    return _differences(filecmp.dircmp(target, tree, ignore=["__pycache__", ".git"]), "")


def _differences(cmp: filecmp.dircmp, prefix: str) -> set[str]:
    out: set[str] = set()
    for name in cmp.left_only + cmp.right_only:
        path = Path(cmp.right if name in cmp.right_only else cmp.left) / name
        if path.is_dir() and not path.is_symlink():
            out |= {prefix + str(p.relative_to(path.parent)) for p in path.rglob("*") if not p.is_dir()}
        else:
            out.add(prefix + name)
    for name in cmp.common_files + cmp.funny_files:
        left, right = Path(cmp.left) / name, Path(cmp.right) / name
        if (os.lstat(left).st_mode != os.lstat(right).st_mode
                or not filecmp.cmp(left, right, shallow=False)):
            out.add(prefix + name)
    for name, sub in cmp.subdirs.items():
        out |= _differences(sub, f"{prefix}{name}/")
    return out
