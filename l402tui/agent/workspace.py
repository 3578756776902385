"""The agent's git work tree for one bounty (gitpython).

Layout: the unpacked package (``bounty.toml``, ``target/``, ``public/``, ``scorer/``) is
committed as the *baseline* on its own branch and tagged.  An experiment follows
autoresearch's rhythm: the proposer edits files; :meth:`Workspace.read_change` reads
the edit as one diff against the baseline, which the loop evaluates; then either
:meth:`keep` commits it with the metric in the message (the branch advances) or
:meth:`reject` puts it aside as a stash entry and resets to the last kept commit.  So
the branch holds only the baseline and kept commits, and every evaluated experiment
has a commit hash to look at (``git stash list`` lists the rejected ones).

The loop is meant to cost no more than a shell loop of commit and reset.  When the
proposer only edited the text of tracked files (the usual case), the change is read,
committed or set aside without any git process (:mod:`l402tui.agent.fastpath` writes
the objects, refs and index as git would).  Anything unusual (new, deleted or binary
files) goes through ``git diff``, ``git commit`` and ``git stash``.

A kill at any moment leaves one of a few states, and :meth:`recover` returns each to
the last kept commit.  ``results.tsv`` and scratch space live in the work tree root but
are excluded from git, so resets never touch them.
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import shutil
import tempfile
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import git
from git import Actor

from l402tui.agent.diffs import diff_paths, rerooted
from l402tui.agent.fastpath import RESULTS_FILE, SCRATCH, FastChange, TreeState
from l402tui.bounty import BountySpec, load_bounty
from l402tui.bounty.package import unpack
from l402tui.bounty.spec import SPEC_FILE

BASELINE_TAG = "l402tui-baseline"
CANDIDATE_PREFIX = "candidate: "
AGENT = Actor("l402tui agent", "agent@l402tui.invalid")
T = TypeVar("T")
_TRAILER_RE = re.compile(r"^(Metric|Memory-GB): (\S+)$", re.MULTILINE)


def _serialized(method: Callable[..., T]) -> Callable[..., T]:
    """One git operation at a time per work tree: gitpython keeps one long-lived
    ``git cat-file`` pipe per repository, and two threads talking on it at once (the
    loop's worker and a UI or the submit task) deadlock."""

    @functools.wraps(method)
    def wrapper(self: "Workspace", *args: Any, **kwargs: Any) -> T:
        with self._git_lock:
            return method(self, *args, **kwargs)

    return wrapper


class WorkspaceError(Exception):
    """The work tree cannot be used as asked; the message says what to do."""


@dataclass(frozen=True)
class Change:
    """The work tree against the baseline (see :meth:`Workspace.read_change`)."""

    full_diff: str  # paths from the work tree root
    paths: tuple[str, ...]  # every file that differs from the baseline
    target_diff: str  # target/ only, paths relative to it: what the harness applies
    is_new: bool  # differs from the last kept commit (False: the proposer changed nothing)


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
        self._kept_full_diff: str | None = None  # baseline..last kept, to tell "no change" from a change
        self._lock_fd: int | None = None  # held while an agent works here (see acquire)
        self._git_lock = threading.RLock()
        # Read from the ref file once: no object lookup, safe from any thread.
        self._baseline = git.SymbolicReference.dereference_recursive(self.repo, f"refs/tags/{BASELINE_TAG}")
        # Unset until the tree is known to equal HEAD (after create, keep, reset or recover).
        self._state = TreeState(self.repo, self.root, self._baseline)
        self._fast: FastChange | None = None  # what the last read_change found, when it needed no git

    # creation -------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, package: bytes, *, branch: str, target_dir: str = "target",
               description: str = "") -> "Workspace":
        """Unpack ``package`` into an empty ``root`` and commit it as the baseline.

        Built in a sibling folder and renamed into place at the end, so an interrupted
        creation leaves no half-made work tree behind (a rerun starts afresh)."""
        root = Path(root)
        if root.exists() and any(root.iterdir()):
            raise WorkspaceError(f"{root} is not empty; pick a new folder or open the existing work tree")
        root.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{root.name}.creating-", dir=root.parent))
        try:
            cls._build(building, package, branch, description)
            if root.exists():
                root.rmdir()  # empty, checked above
            os.rename(building, root)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        ws = cls(root, target_dir)
        ws._state.reload()
        return ws

    @staticmethod
    def _build(root: Path, package: bytes, branch: str, description: str) -> None:
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
        # `git add` in a subprocess rather than repo.index.add: the latter chdir()s the whole
        # process, which breaks when two agents create work trees at once in threads.
        repo.git.add("--", *sorted(files))
        message = f"baseline: {description}".rstrip(": ") if description else "baseline"
        commit = repo.index.commit(message, author=AGENT, committer=AGENT)
        repo.create_tag(BASELINE_TAG, ref=commit)
        repo.close()

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
        return self._baseline

    @property
    def branch(self) -> str:
        return self.repo.active_branch.name

    @_serialized
    def head(self) -> str:
        return self.repo.head.commit.hexsha

    @_serialized
    def last_kept(self) -> str:
        """The newest commit on the branch that is not an unjudged candidate."""
        commit = self.repo.head.commit
        while commit.message.startswith(CANDIDATE_PREFIX) and commit.parents:
            commit = commit.parents[0]
        return commit.hexsha

    @_serialized
    def kept_commits(self) -> list[KeptCommit]:
        """Kept commits after the baseline, oldest first (what the branch holds)."""
        out = []
        for commit in self.repo.iter_commits(f"{self.baseline}..{self.last_kept()}", first_parent=True):
            out.append(_parse_kept(commit))
        return list(reversed(out))

    @_serialized
    def changed_paths(self) -> list[str]:
        """Paths (relative to the work tree root) that differ from HEAD, untracked included."""
        raw = self.repo.git.status("--porcelain", "-z", "--untracked-files=all", "--no-renames")
        return sorted({entry[3:] for entry in raw.split("\0") if len(entry) > 3})

    @_serialized
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
            data = tomllib.loads((dest / SPEC_FILE).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            data = {}
        heldout = (data.get("files") or {}).get("heldout") or []
        honeypots = (data.get("antigaming") or {}).get("honeypots")
        for rel in [heldout] if isinstance(heldout, str) else heldout:
            path = (dest / str(rel)).resolve()
            if path.is_relative_to(dest.resolve()):
                path.mkdir(parents=True, exist_ok=True)
                if isinstance(honeypots, str):
                    # The held-out honeypot list is the sponsor's secret; an empty stand-in satisfies the validator.
                    stand_in = (path / "labels" / honeypots).resolve()
                    if stand_in.is_relative_to(path) and not stand_in.exists():
                        stand_in.parent.mkdir(parents=True, exist_ok=True)
                        stand_in.write_text("[]\n", encoding="utf-8")
        return load_bounty(dest)

    # the experiment rhythm ------------------------------------------------------------

    @_serialized
    def read_change(self) -> Change:
        """The work tree against the baseline: in-process when only tracked text files
        changed, else in one ``git diff`` (new files in target/ are added to the index
        first so the diff shows them)."""
        prefix = self.target_dir + "/"
        self._fast = self._state.change()
        if self._fast is not None:
            full = self._fast.full_diff
            return Change(full, self._fast.paths, rerooted(full, prefix), bool(self._fast.edited))
        untracked = self._untracked_in_target()
        if untracked:
            self.repo.git.add("--", *untracked)
        full = self.repo.git.diff(self.baseline, "--no-color", "--no-ext-diff", "--no-renames",
                                  strip_newline_in_stdout=False)
        return Change(full, tuple(diff_paths(full)), rerooted(full, prefix), full != self._kept_diff())

    @_serialized
    def keep(self, change: Change, description: str, metric: float, memory_gb: float) -> str:
        """Commit the work tree as a kept experiment, the metric in the message; the branch advances."""
        message = f"{_one_line(description)}\n\nMetric: {metric:.6f}\nMemory-GB: {memory_gb:.1f}\n"
        fast, self._fast = self._fast, None
        if fast is not None and fast.edited and fast.full_diff == change.full_diff:
            self._kept_full_diff = None  # git's text, if ever needed, is not ours: ask git again
            return self._state.commit(fast, message)
        self.repo.git.commit("-q", "--all", "--no-verify", "-m", message)
        self._kept_full_diff = change.full_diff
        self._state.reload()
        return self._head_sha()

    @_serialized
    def reject(self, description: str) -> str:
        """Put a judged-and-rejected experiment aside and reset to the last kept commit, in
        one git process: ``git stash push`` records it as a commit (listed by ``git stash
        list``, shown by ``git stash show -p <hash>``) and resets the work tree.  Returns
        that commit's hash for results.tsv.  An edit of tracked text files only is set
        aside the same way without a git process."""
        message = CANDIDATE_PREFIX + _one_line(description)
        fast, self._fast = self._fast, None
        if fast is not None and fast.edited:
            return self._state.set_aside(fast, message)
        self.repo.git.stash("push", "--quiet", "--message", message)
        self._state.reload()
        return git.SymbolicReference.dereference_recursive(self.repo, "refs/stash")

    @_serialized
    def discard(self, clean: bool = False) -> None:
        """Hard reset to the last kept commit (files the edit added go with it); with
        ``clean``, also delete untracked files anywhere in the work tree (after an edit that
        was never read, such as a failed proposer's)."""
        self.repo.git.reset("-q", "--hard", "HEAD")
        if clean:
            self.repo.git.clean("-fdq")  # results.tsv and scratch are excluded; -x is not given
        self._fast = None
        self._state.reload()

    def _kept_diff(self) -> str:
        if self._kept_full_diff is None:
            self._kept_full_diff = self.repo.git.diff(self.baseline, self.last_kept(), "--no-color",
                                                      "--no-ext-diff", "--no-renames", strip_newline_in_stdout=False)
        return self._kept_full_diff

    def _untracked_in_target(self) -> list[str]:
        tracked = {path for path, _stage in self.repo.index.entries}
        found = []
        for dirpath, dirnames, filenames in os.walk(self.target):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in filenames:
                if name.endswith(".pyc"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                if rel not in tracked:
                    found.append(rel)
        return found

    @_serialized
    def reopen(self) -> None:
        """Fresh git handles.  A Ctrl-C reaches the whole process group, gitpython's
        long-lived ``git cat-file`` helpers included; the old handles would hit a broken pipe."""
        self.repo.close()
        self.repo = git.Repo(self.root)
        self._state = TreeState(self.repo, self.root, self._baseline)
        self._fast = None

    def acquire(self) -> None:
        """Claim the work tree for this process (one agent per work tree); raises
        WorkspaceError naming the holder if another agent has it.  Holding the claim is
        what makes clearing git's stale lock files in :meth:`recover` safe."""
        if self._lock_fd is not None:
            return
        fd = os.open(self.scratch / "agent.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise WorkspaceError(f"another agent (pid {holder}) is working in {self.root}; stop it or "
                                 "give this one its own --workdir") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    @_serialized
    def recover(self) -> bool:
        """After a crash or kill: back to the last kept commit, with no stray files.
        True if anything was undone."""
        self.acquire()
        # A git process killed mid-write leaves its lock file; with the work tree ours
        # alone, any lock left is stale.
        for stale in Path(self.repo.git_dir).rglob("*.lock"):
            stale.unlink(missing_ok=True)
        dirty = bool(self.changed_paths())
        last_kept = self.last_kept()
        candidate = self.head() != last_kept
        if dirty or candidate:
            self.repo.git.reset("-q", "--hard", last_kept)
            # results.tsv and scratch are excluded and -x is not given, so they survive.
            self.repo.git.clean("-fdq")
        self._kept_full_diff = None
        self._fast = None
        self._state.reload()
        return dirty or candidate

    def _head_sha(self) -> str:
        # Reads the ref files only; no object lookup.
        return git.SymbolicReference.dereference_recursive(self.repo, "HEAD")

    @_serialized
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
