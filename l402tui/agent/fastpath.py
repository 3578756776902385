"""An experiment without a git process, for the common case.

Most experiments edit the text of files git already tracks and nothing else (the
search proposer rewrites a constant).  For those, the work tree needs no ``git diff``
to read the change and no ``git stash`` to set a rejected one aside:

* :class:`TreeState` remembers, for the state of the last kept commit, every file's
  ``stat`` signature and (read on demand through gitpython's object database) its
  content.  A scan compares signatures; a file whose signature changed, or whose
  signature was taken too close to its last write to be trusted (the kernel stamps
  files with a coarse clock, so an edit in the same tick keeps size and mtime: git's
  "racy clean" problem), has its content compared.  The diff against the baseline is
  made in-process from the contents.
* A rejected edit is recorded as a stash entry written in-process (a commit with the
  edited tree whose parents are the kept commit and an index commit, and a reflog line
  on ``refs/stash``: ``git stash list`` and ``git stash show -p`` see it as their own),
  and the edited files get their kept content back.

Anything else (a new, deleted or binary file, an executable bit changed) makes
:meth:`TreeState.change` answer ``None`` and the caller uses git itself.
"""

from __future__ import annotations

import difflib
import io
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import git
from git.objects.fun import tree_entries_from_data, tree_to_stream
from git.index.typ import BaseIndexEntry, IndexEntry
from gitdb import IStream
from gitdb.db import LooseObjectDB

SCRATCH = ".l402tui"
RESULTS_FILE = "results.tsv"
# Never part of a candidate (mirrors the work tree's .git/info/exclude).
_SKIP_DIRS = {".git", "__pycache__"}
_SKIP_ROOT = {RESULTS_FILE, SCRATCH, ".claude"}
RACY_NS = 2_000_000_000  # a signature younger than this, relative to its file's mtime, is not trusted


@dataclass(frozen=True)
class Sig:
    size: int
    mtime_ns: int
    ctime_ns: int  # cannot be set back by a program, unlike mtime
    ino: int
    executable: bool


@dataclass
class FastChange:
    """What :meth:`TreeState.change` found: the candidate's contents of the files that
    differ from the kept state, and the full diff against the baseline."""

    edited: dict[str, bytes]  # path -> content now (differs from the kept commit)
    full_diff: str
    paths: tuple[str, ...]  # every file that differs from the baseline
    sections: dict[str, str]  # path -> its diff section (baseline -> now)


def _skipped(rel: str, name: str, is_dir: bool) -> bool:
    if is_dir:
        return name in _SKIP_DIRS or ("/" not in rel and (name in _SKIP_ROOT or name.startswith(".aider")))
    return name.endswith(".pyc") or ("/" not in rel and (name in _SKIP_ROOT or name.startswith(".aider")))


def scan(root: Path) -> dict[str, os.stat_result]:
    """Every file git would see in the work tree, with its stat (symlinks included, unfollowed)."""
    found: dict[str, os.stat_result] = {}
    stack = [("", str(root))]
    while stack:
        prefix, path = stack.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                rel = prefix + entry.name
                is_dir = entry.is_dir(follow_symlinks=False)
                if _skipped(rel, entry.name, is_dir):
                    continue
                if is_dir:
                    stack.append((rel + "/", entry.path))
                else:
                    found[rel] = entry.stat(follow_symlinks=False)
    return found


def _sig(st: os.stat_result) -> Sig:
    return Sig(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, bool(st.st_mode & 0o111))


def _text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def section(path: str, old: str, new: str) -> str:
    """One file's section of a git-style unified diff (``diff --git`` header, three lines
    of context, ``\\ No newline at end of file`` where a side lacks one)."""
    out = [f"diff --git a/{path} b/{path}\n"]
    for line in difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                     f"a/{path}", f"b/{path}"):
        if line.startswith(("---", "+++")):
            out.append(line.rstrip("\n") + "\n")  # difflib leaves the header's tab-less form; keep one newline
        elif line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)


class TreeState:
    """The work tree's files as of the last kept commit; see the module doc."""

    def __init__(self, repo: git.Repo, root: Path, baseline: str):
        self.repo = repo
        self.root = root
        self.baseline = baseline
        self._sigs: dict[str, Sig] | None = None
        self._taken_ns = 0
        self._kept_sha = ""
        self._kept_tree = b""  # the kept commit's tree and subject, for stash entries
        self._kept_subject = ""
        self._base_blobs: dict[str, bytes | None] = {}
        self._author = ""
        self._kept: dict[str, bytes] = {}  # content at the kept commit, read on demand
        self._base_sections: dict[str, str] = {}  # baseline -> kept, per file that differs
        # Objects are written here in-process: repo.odb.store would run `git hash-object`.
        self._loose = LooseObjectDB(os.path.join(repo.common_dir, "objects"))

    # -- reading ---------------------------------------------------------------------------------

    def _blob(self, commit: str, path: str) -> bytes | None:
        try:
            return (self.repo.commit(commit).tree / path).data_stream.read()
        except KeyError:
            return None

    def _base_content(self, path: str) -> bytes | None:
        if path not in self._base_blobs:
            self._base_blobs[path] = self._blob(self.baseline, path)
        return self._base_blobs[path]

    def _set_kept(self, commit: git.Commit) -> None:
        self._kept_sha = commit.hexsha
        self._kept_tree = commit.tree.binsha
        message = commit.message if isinstance(commit.message, str) else commit.message.decode("utf-8", "replace")
        self._kept_subject = message.split("\n", 1)[0]

    def _kept_content(self, path: str) -> bytes | None:
        if path not in self._kept:
            data = self._blob(self._kept_sha, path)
            if data is None:
                return None
            self._kept[path] = data
        return self._kept[path]

    def reload(self) -> None:
        """Take the snapshot of a work tree that equals HEAD by construction (just after
        a commit of the whole tree, a hard reset or a recovery).  Where that cannot be
        told cheaply (files added or deleted, binary or new files since the baseline) the
        snapshot stays unset and git answers instead."""
        self._sigs = None
        self._load()

    def _load(self) -> bool:
        head = self.repo.head.commit
        files = scan(self.root)
        tracked = {item.path for item in head.tree.traverse() if item.type == "blob"}
        if set(files) != tracked or any(not stat.S_ISREG(st.st_mode) for st in files.values()):
            return False
        self._set_kept(head)
        reader = self.repo.config_reader()
        self._author = f"{reader.get_value('user', 'name', 'l402tui agent')} <{reader.get_value('user', 'email', '')}>"
        self._kept = {}
        self._base_sections = {}
        base = self.repo.commit(self.baseline).tree
        base_shas = {item.path: item.binsha for item in base.traverse() if item.type == "blob"}
        for item in head.tree.traverse():
            if item.type != "blob" or base_shas.get(item.path) == item.binsha:
                continue
            old = self._base_content(item.path)
            new, old_text = item.data_stream.read(), _text(old) if old is not None else None
            new_text = _text(new)
            if old_text is None or new_text is None:
                return False  # a file added or binary since the baseline: git's diff is the reference
            self._base_sections[item.path] = section(item.path, old_text, new_text)
        if set(base_shas) != tracked:
            return False  # files added or deleted since the baseline
        self._sigs = {rel: _sig(st) for rel, st in files.items()}
        self._taken_ns = time.time_ns()
        return True

    def change(self) -> FastChange | None:
        """The work tree against the kept state and the baseline, or None when only git can tell."""
        if self._sigs is None:
            return None
        files = scan(self.root)
        if set(files) != set(self._sigs):
            return None  # a file appeared or went away
        edited: dict[str, bytes] = {}
        for rel, st in files.items():
            old = self._sigs[rel]
            now = _sig(st)
            if not stat.S_ISREG(st.st_mode) or now.executable != old.executable:
                return None
            racy = self._taken_ns - max(old.mtime_ns, old.ctime_ns) < RACY_NS
            if now == old and not racy:
                continue
            with open(self.root / rel, "rb") as fh:
                data = fh.read()
            if data != self._kept_content(rel):
                if _text(data) is None:
                    return None
                edited[rel] = data
        sections = dict(self._base_sections)
        for rel, data in edited.items():
            base = self._base_content(rel)
            base_text = _text(base) if base is not None else None
            if base_text is None:
                return None
            if data == base:
                sections.pop(rel, None)
            else:
                sections[rel] = section(rel, base_text, data.decode("utf-8"))
        paths = tuple(sorted(sections))
        return FastChange(edited, "".join(sections[p] for p in paths), paths, sections)

    # -- after the verdict --------------------------------------------------------------------

    def commit(self, change: FastChange, message: str) -> str:
        """Commit the candidate on the branch, as ``git commit --all`` would: tree and
        commit objects, the index entries of the edited files (their stat left blank, so
        git re-reads those files once; no cached trees kept, so git rebuilds them), then
        the branch ref with its reflog lines.  Returns the commit's hash."""
        blobs, tree = self._edited_tree(change)
        sha = self._commit(tree, [bytes.fromhex(self._kept_sha)], message.rstrip("\n") + "\n")
        index = git.IndexFile(self.repo)
        for path, blob in blobs.items():
            old = index.entries[(path, 0)]
            index.entries[(path, 0)] = IndexEntry.from_base(BaseIndexEntry((old.mode, blob, 0, path)))
        index.write(ignore_extension_data=True)
        branch = self.repo.active_branch.name
        subject = message.split("\n", 1)[0]
        self._move_ref(f"refs/heads/{branch}", sha, f"commit: {subject}", also_head=True)
        self._kept_sha, self._kept_tree, self._kept_subject = sha.hex(), tree, subject
        self._kept.update(change.edited)
        self._base_sections = {p: change.sections[p] for p in change.paths}
        self._restat(change.edited)
        return sha.hex()

    def set_aside(self, change: FastChange, message: str) -> str:
        """Record the candidate as a stash entry and put the kept contents back; returns
        the entry's commit hash.  The commit and the reflog line come first, so a kill
        before the files are restored leaves a dirty tree that recovery resets."""
        branch = self.repo.active_branch.name
        head = bytes.fromhex(self._kept_sha)
        _, tree = self._edited_tree(change)
        index_commit = self._commit(self._kept_tree, [head],
                                    f"index on {branch}: {self._kept_sha[:7]} {self._kept_subject}")
        text = f"On {branch}: {message}"
        entry = self._commit(tree, [head, index_commit], text)
        self._move_ref("refs/stash", entry, text)
        for rel in change.edited:
            content = self._kept_content(rel)
            assert content is not None
            with open(self.root / rel, "wb") as fh:
                fh.write(content)
        self._restat(change.edited)
        return entry.hex()

    def _edited_tree(self, change: FastChange) -> tuple[dict[str, bytes], bytes]:
        """The candidate's blobs (path -> sha) and the kept tree with them in place."""
        blobs = {p: self._store(b"blob", d) for p, d in change.edited.items()}
        return blobs, self._tree_with(self._kept_tree, [(tuple(p.split("/")), sha) for p, sha in blobs.items()])

    def _restat(self, paths) -> None:
        assert self._sigs is not None
        for rel in paths:
            self._sigs[rel] = _sig(os.lstat(self.root / rel))
        self._taken_ns = time.time_ns()

    def _commit(self, tree: bytes, parents: list[bytes], message: str) -> bytes:
        """A commit object by the work tree's own author (set in its config at creation)."""
        when = self._when()  # one moment for author and committer
        lines = [f"tree {tree.hex()}", *(f"parent {p.hex()}" for p in parents),
                 f"author {self._author} {when}", f"committer {self._author} {when}", "", message, ""]
        return self._store(b"commit", "\n".join(lines).encode("utf-8"))

    @staticmethod
    def _when() -> str:
        return f"{int(time.time())} +0000"

    def _move_ref(self, ref: str, new: bytes, message: str, also_head: bool = False) -> None:
        """Point ``ref`` at ``new`` with reflog lines, the way git writes them: the reflog
        first, then the value to a lock file renamed over the ref, so a kill leaves the
        old value or the new one."""
        git_dir = self.repo.common_dir
        path = os.path.join(git_dir, *ref.split("/"))
        try:
            with open(path, encoding="ascii") as fh:
                old = fh.read().strip()
        except FileNotFoundError:
            old = _packed_ref(git_dir, ref) or "0" * 40
        line = f"{old} {new.hex()} {self._author} {self._when()}\t{message}\n"
        for log_ref in (ref, "HEAD") if also_head else (ref,):
            log = os.path.join(git_dir, "logs", *log_ref.split("/"))
            os.makedirs(os.path.dirname(log), exist_ok=True)
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(line)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lock = path + ".lock"
        with open(lock, "x", encoding="ascii") as fh:  # "x": another git writing this ref wins
            fh.write(new.hex() + "\n")
        os.replace(lock, path)

    def _store(self, kind: bytes, data: bytes) -> bytes:
        return self._loose.store(IStream(kind, len(data), io.BytesIO(data))).binsha

    def _tree_with(self, tree_sha: bytes, changes) -> bytes:
        """A copy of tree ``tree_sha`` with existing blobs replaced: ``changes`` yields
        (path parts, new blob sha)."""
        direct: dict[str, bytes] = {}
        below: dict[str, list] = {}
        for parts, sha in changes:
            if len(parts) == 1:
                direct[parts[0]] = sha
            else:
                below.setdefault(parts[0], []).append((parts[1:], sha))
        entries = tree_entries_from_data(self.repo.odb.stream(tree_sha).read())
        out = []
        for sha, mode, name in entries:
            if name in direct:
                sha = direct[name]
            elif name in below:
                sha = self._tree_with(sha, below[name])
            out.append((sha, mode, name))
        buf = io.BytesIO()
        tree_to_stream(out, buf.write)
        return self._store(b"tree", buf.getvalue())


def _packed_ref(git_dir: str, ref: str) -> str | None:
    try:
        with open(os.path.join(git_dir, "packed-refs"), encoding="ascii") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    except FileNotFoundError:
        pass
    return None
