"""The agent's git work tree for one bounty (gitpython).

Layout: the unpacked package (``bounty.toml``, ``target/``, ``public/``, ``scorer/``) is
committed as the *baseline* on its own branch and tagged.  An experiment follows
autoresearch's rhythm: the proposer edits files, :meth:`Workspace.stage_candidate`
commits them as a *candidate*, the loop evaluates that commit, then either
:meth:`keep` re-commits the same tree with the metric in the message (the branch
advances) or :meth:`discard` hard-resets to the last kept commit.  So the branch holds
only the baseline and kept commits, and every experiment still has a hash to look at.

A kill at any moment leaves one of a few states, and :meth:`recover` returns each to
the last kept commit.  ``results.tsv`` and scratch space live in the work tree root but
are excluded from git, so resets never touch them.
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import git
from git import Actor

from l402tui.bounty import BountySpec, load_bounty
from l402tui.bounty.package import unpack
from l402tui.bounty.spec import SPEC_FILE

BASELINE_TAG = "l402tui-baseline"
CANDIDATE_PREFIX = "candidate: "
AGENT = Actor("l402tui agent", "agent@l402tui.invalid")
SCRATCH = ".l402tui"
RESULTS_FILE = "results.tsv"
_TRAILER_RE = re.compile(r"^(Metric|Memory-GB): (\S+)$", re.MULTILINE)


class WorkspaceError(Exception):
    """The work tree cannot be used as asked; the message says what to do."""


@dataclass(frozen=True)
class KeptCommit:
    sha: str
    description: str
    metric: float | None
    memory_gb: float | None


class Workspace:
    """One bounty's work tree, on branch ``branch``, baseline tagged ``l402tui-baseline``."""

    def __init__(self, root: Path, target_dir: str = "target"):
        self.root = Path(root).resolve()
        try:
            self.repo = git.Repo(self.root)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise WorkspaceError(f"{self.root} is not an agent work tree (no git repository); "
                                 "create it from a bounty package first") from None
        if BASELINE_TAG not in self.repo.tags:
            raise WorkspaceError(f"{self.root} has no {BASELINE_TAG} tag, so it was not made by "
                                 "l402tui agent; point the agent at an empty folder instead")
        self.target_dir = target_dir.strip("/")
        self._candidate: str | None = None  # the staged, unjudged commit at HEAD
        self._untracked: list[str] = []  # seen by the last changed_paths()

    # creation -------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, package: bytes, *, branch: str, target_dir: str = "target",
               description: str = "") -> "Workspace":
        """Unpack ``package`` into an empty ``root`` and commit it as the baseline."""
        root = Path(root)
        if root.exists() and any(root.iterdir()):
            raise WorkspaceError(f"{root} is not empty; pick a new folder or open the existing work tree")
        root.mkdir(parents=True, exist_ok=True)
        repo = git.Repo.init(root, initial_branch=branch)
        exclude = Path(repo.git_dir) / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        # Files the loop or coding-agent CLIs keep beside the code; never part of a candidate.
        exclude.write_text(f"/{RESULTS_FILE}\n/{SCRATCH}/\n__pycache__/\n*.pyc\n/.aider*\n/.claude/\n",
                           encoding="utf-8")
        with repo.config_writer() as config:
            # The loop's commits go through git itself: give them an author, and keep a
            # user's global signing or hooks out of an unattended loop.
            config.set_value("user", "name", AGENT.name)
            config.set_value("user", "email", AGENT.email)
            config.set_value("commit", "gpgsign", "false")
        files = unpack(package, root)
        repo.index.add(sorted(files))
        message = f"baseline: {description}".rstrip(": ") if description else "baseline"
        commit = repo.index.commit(message, author=AGENT, committer=AGENT)
        repo.create_tag(BASELINE_TAG, ref=commit)
        return cls(root, target_dir)

    @classmethod
    def open_or_create(cls, root: Path, package: bytes, *, branch: str, target_dir: str = "target",
                       description: str = "") -> "Workspace":
        root = Path(root)
        if (root / ".git").exists():
            return cls(root, target_dir)
        return cls.create(root, package, branch=branch, target_dir=target_dir, description=description)

    # state ----------------------------------------------------------------------------

    @property
    def target(self) -> Path:
        return self.root / self.target_dir

    @property
    def results_path(self) -> Path:
        return self.root / RESULTS_FILE

    @property
    def scratch(self) -> Path:
        path = self.root / SCRATCH
        path.mkdir(exist_ok=True)
        return path

    @property
    def baseline(self) -> str:
        return self.repo.tags[BASELINE_TAG].commit.hexsha

    @property
    def branch(self) -> str:
        return self.repo.active_branch.name

    def head(self) -> str:
        return self.repo.head.commit.hexsha

    def last_kept(self) -> str:
        """The newest commit on the branch that is not an unjudged candidate."""
        commit = self.repo.head.commit
        while commit.message.startswith(CANDIDATE_PREFIX) and commit.parents:
            commit = commit.parents[0]
        return commit.hexsha

    def kept_commits(self) -> list[KeptCommit]:
        """Kept commits after the baseline, oldest first (what the branch holds)."""
        out = []
        for commit in self.repo.iter_commits(f"{self.baseline}..{self.last_kept()}", first_parent=True):
            out.append(_parse_kept(commit))
        return list(reversed(out))

    def changed_paths(self) -> list[str]:
        """Paths (relative to the work tree root) that differ from HEAD, untracked included."""
        raw = self.repo.git.status("--porcelain", "-z", "--untracked-files=all", "--no-renames")
        out, untracked = [], []
        for entry in raw.split("\0"):
            if len(entry) > 3:
                out.append(entry[3:])
                if entry.startswith("??"):
                    untracked.append(entry[3:])
        self._untracked = untracked
        return sorted(set(out))

    def spec(self) -> BountySpec:
        """The bounty as shipped, rooted at a pristine copy of the baseline (in scratch).

        Evaluations apply a candidate's diff to this copy's target/ and score with this
        copy's scorer, so an edit to the work tree's scorer or public set changes nothing.
        The package has no held-out set but bounty.toml names it and the validator wants
        the folders, so empty placeholders are made there."""
        dest = self.scratch / "baseline"
        marker = dest / ".l402tui-baseline"
        if not (marker.exists() and marker.read_text() == self.baseline):
            shutil.rmtree(dest, ignore_errors=True)
            for item in self.repo.commit(self.baseline).tree.traverse():
                if item.type != "blob":
                    continue
                path = dest / item.path
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(item.data_stream.read())
                os.chmod(path, 0o755 if item.mode & 0o111 else 0o644)
            marker.write_text(self.baseline)
        try:
            heldout = tomllib.loads((dest / SPEC_FILE).read_text(encoding="utf-8"))["files"]["heldout"]
        except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
            heldout = []
        for rel in [heldout] if isinstance(heldout, str) else heldout:
            path = (dest / str(rel)).resolve()
            if path.is_relative_to(dest.resolve()):
                path.mkdir(parents=True, exist_ok=True)
        return load_bounty(dest)

    # the experiment rhythm ------------------------------------------------------------

    def stage_candidate(self, description: str, changed: list[str] | None = None) -> str | None:
        """Commit every change in the work tree as a candidate; None when nothing changed.

        ``changed`` is :meth:`changed_paths` if the caller has just read it (saves a git call)."""
        changed = self.changed_paths() if changed is None else changed
        if not changed:
            return None
        if self._untracked:
            self.repo.git.add("--all", "--", *self._untracked)
        self.repo.git.commit("-q", "--all", "--no-verify", "-m", CANDIDATE_PREFIX + _one_line(description))
        self._candidate = self._head_sha()
        self._untracked = []  # they are in the candidate now; a reset removes them
        return self._candidate

    def keep(self, description: str, metric: float, memory_gb: float) -> str:
        """Turn the candidate at HEAD into a kept commit whose message records the metric
        (same tree, same parent: an amend)."""
        if self._candidate is None or self._head_sha() != self._candidate:
            if not self.repo.head.commit.message.startswith(CANDIDATE_PREFIX):
                raise WorkspaceError("keep() needs a staged candidate at HEAD; call stage_candidate() first")
        message = f"{_one_line(description)}\n\nMetric: {metric:.6f}\nMemory-GB: {memory_gb:.1f}\n"
        self.repo.git.commit("-q", "--amend", "--no-verify", "-m", message)
        self._candidate = None
        return self._head_sha()

    def discard(self) -> None:
        """Hard reset to the last kept commit and delete untracked files in the work tree."""
        if self._candidate is not None and self._head_sha() == self._candidate:
            target = "HEAD~1"  # the candidate's parent is the last kept commit
        else:
            target = self.last_kept()
        self.repo.git.reset("-q", "--hard", target)
        if self._untracked:
            # Scratch and results.tsv are excluded and -x is not used, so they survive.
            self.repo.git.clean("-fdq")
            self._untracked = []
        self._candidate = None

    def reopen(self) -> None:
        """Fresh git handles.  A Ctrl-C reaches the whole process group, gitpython's
        long-lived ``git cat-file`` helpers included; the old handles would hit a broken pipe."""
        self.repo.close()
        self.repo = git.Repo(self.root)

    def recover(self) -> bool:
        """After a crash or kill: back to the last kept commit.  True if anything was undone."""
        dirty = bool(self.changed_paths())
        candidate = self.head() != self.last_kept()
        if dirty or candidate:
            self._candidate = None
            self.discard()
        return dirty or candidate

    def _head_sha(self) -> str:
        # Reads the ref files only; no object lookup.
        return git.SymbolicReference.dereference_recursive(self.repo, "HEAD")

    def diff(self, rev: str = "HEAD") -> str:
        """Unified diff of target/ from the baseline to ``rev``, paths relative to target/."""
        text = self.repo.git.diff(self.baseline, rev, f"--relative={self.target_dir}/", "--no-color",
                                  "--no-ext-diff", strip_newline_in_stdout=False)
        return text


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(no description)"


def _parse_kept(commit: git.Commit) -> KeptCommit:
    message = commit.message if isinstance(commit.message, str) else commit.message.decode()
    trailers = dict(_TRAILER_RE.findall(message))
    def num(key: str) -> float | None:
        try:
            return float(trailers[key])
        except (KeyError, ValueError):
            return None
    return KeptCommit(commit.hexsha, message.split("\n", 1)[0], num("Metric"), num("Memory-GB"))
