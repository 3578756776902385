"""Checking and applying a submission's unified diff against the bounty's target/ tree.

Two stages, both needed before anything runs:

1. **The text, read as git reads it** (``diffparse``).  Refused: an empty diff or
   one git would call corrupt; control characters in headers; a path that is
   absolute, climbs out with ``..``, touches ``.git`` or holds control characters;
   a file outside ``files.mutable``; a symlink, an executable or another special
   mode; a binary patch; more changed lines than ``constraints.max_changed_lines``;
   an added line with a control character or matching ``constraints.forbidden_patterns``.
2. **What git actually does** with it: ``git apply --numstat --summary --apply`` in
   a scratch copy of target/ (no config, no hooks), then a walk of the tree after
   against the tree before.  Every policy runs again on the *result*: each path
   that differs must be a mutable regular text file, not made executable, within
   the line limit, its new lines free of forbidden patterns.  Any disagreement
   between what was read in stage 1 and what git did (another path, another line
   count, a rename the headers did not show) refuses the diff.

Reasons go to the submitting agent and say what to change; names in them are
escaped (``diffparse.show``) so they can never carry terminal escape sequences.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from l402tui.bounty.spec import BountySpec
from l402tui.evaluation.diffparse import FilePatch, parse_diff, read_diff, show

__all__ = ["DiffRejected", "FilePatch", "apply_diff", "check_diff", "git_apply", "glob_regex", "is_mutable",
           "parse_diff"]

# The same copy the harness makes of target/ (it copies with these rules too).
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".git")
# Content may hold tabs and form feeds, and \r only at a line's end (CRLF files).  Every
# other control, the Unicode line separators and the bidi overrides ("Trojan Source")
# are refused: other readers split or reorder lines on them.
_CONTENT_BAD = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]|\r(?!\\Z)")
GIT_TIMEOUT_S = 60
_REMAKE = "make it with `git diff` against an unmodified package"


class DiffRejected(ValueError):
    def __init__(self, reasons: list[str]):
        self.reasons = reasons
        super().__init__("; ".join(reasons))


@lru_cache(maxsize=256)
def glob_regex(glob: str) -> re.Pattern[str]:
    """A glob relative to target/ as a full-path regex: ``*`` stays within one folder,
    ``**/`` spans any number of them (so ``parser.py`` does not match ``sub/parser.py``)."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def is_mutable(spec: BountySpec, path: str) -> bool:
    return any(glob_regex(g.removeprefix("./")).match(path) for g in spec.mutable)


def _bad_path(path: str) -> str | None:
    if _CONTENT_BAD.search(path) or "\r" in path or "\x0c" in path or "\t" in path or "\\" in path:
        return f"{show(path)} holds a control character or a backslash"
    p = PurePosixPath(path)
    if p.is_absolute():
        return f"{show(path)} is an absolute path; paths must be relative to target/ (a/parser.py)"
    if ".." in p.parts:
        return f"{show(path)} leaves the target tree (uses ..)"
    if ".git" in p.parts:
        return f"{show(path)} touches git metadata"
    if not p.parts or path.endswith("/") or "//" in path:
        return f"{show(path)} is not a file path"
    return None


def _path_reasons(spec: BountySpec, path: str) -> list[str]:
    bad = _bad_path(path)
    if bad:
        return [f"path escapes or is unsafe: {bad}"]
    if not is_mutable(spec, path):
        return [f"{show(path)} is not a mutable file; this bounty allows changes to: " + ", ".join(spec.mutable)]
    return []


def _line_reasons(spec: BountySpec, where: str, lineno: int, text: str) -> list[str]:
    """Reasons about one added line: its characters, then the forbidden patterns, matched
    on the line as git splits it and on every piece other readers would split it into."""
    bad = _CONTENT_BAD.search(text)
    if bad:
        return [f"{where}:{lineno}: added line holds the control character {show(bad.group())}; "
                "only tabs, form feeds and a CRLF line end are allowed in text"]
    pieces = [text, *text.splitlines()]
    return [f"{where}:{lineno}: added line matches forbidden pattern {source!r}"
            for source in spec.forbidden_patterns if any(_pattern(source).search(p) for p in pieces)]


@lru_cache(maxsize=256)
def _pattern(source: str) -> re.Pattern[str]:
    return re.compile(source)


def _text_reasons(spec: BountySpec, patches: list[FilePatch]) -> list[str]:
    """Stage 1: the policies on the diff as read (cheap, and the clearest messages)."""
    reasons: list[str] = []
    for patch in patches:
        if not patch.paths:
            reasons.append(f"line {patch.line}: a file header names no path")
            continue
        for path in patch.paths:
            reasons += _path_reasons(spec, path)
        name = show(patch.new_path or patch.paths[0])
        if patch.new_mode == "120000":
            reasons.append(f"{name}: symlinks are not allowed in submissions")
        elif patch.new_mode is not None and patch.new_mode != "100644":
            reasons.append(f"{name}: file mode {show(patch.new_mode)} is not allowed; submissions change regular, "
                           "non-executable files (mode 100644) only")
        if patch.binary:
            reasons.append(f"{name}: binary patches are not allowed; submit text changes only")
        for lineno, text in patch.added:
            reasons += _line_reasons(spec, name, lineno, text)
    changed = sum(len(p.added) + p.removed for p in patches)
    if changed > spec.max_changed_lines:
        reasons.append(f"the diff changes {changed} lines; this bounty allows at most {spec.max_changed_lines}")
    return reasons


def check_diff(spec: BountySpec, diff: str) -> list[str]:
    """Reasons to refuse ``diff`` for this bounty, each saying what to change; [] means acceptable.

    Applies the diff in a scratch copy of target/ with git to judge what git makes of it
    (see the module doc): one git process and a copy of target/, a few ms for the samples."""
    if not diff or not diff.strip():
        return ["the diff is empty; submit a unified diff (git diff) against target/"]
    try:
        diff.encode("utf-8")
    except UnicodeEncodeError:
        return ["the diff is not valid UTF-8 text (it holds unpaired surrogates); " + _REMAKE]
    diff = diff if diff.endswith("\n") else diff + "\n"
    patches, problems = read_diff(diff)
    if problems:
        return problems
    if not patches:
        return ["this is not a unified diff (no ---/+++ file headers found); produce it with `git diff`"]
    reasons = _text_reasons(spec, patches)
    if not reasons:
        reasons = _applied_reasons(spec, diff, patches)
    return list(dict.fromkeys(reasons))  # same reason once, in order


def _applied_reasons(spec: BountySpec, diff: str, patches: list[FilePatch]) -> list[str]:
    """Stage 2: apply in a scratch copy and judge the result (see the module doc)."""
    root = Path(tempfile.mkdtemp(prefix="l402tui-diffcheck-"))
    try:
        tree = root / "tree"
        shutil.copytree(spec.target_path, tree, ignore=COPY_IGNORE, symlinks=True)
        before = TreeSnapshot.take(tree)
        try:
            proc = _git(["--numstat", "--summary", "-z", "--apply"], diff, tree, root)
        except subprocess.TimeoutExpired:
            return [f"git took more than {GIT_TIMEOUT_S} s to apply the diff; {_REMAKE}"]
        if proc.returncode != 0:
            return [_apply_failure(proc.stderr)]
        try:
            numstat, summary = _read_numstat(proc.stdout)
        except ValueError:
            return [_disagree("git's --numstat output could not be read")]
        reasons = _compare_numstat(patches, numstat) or _compare_summary(patches, summary)
        if reasons:
            return reasons
        after = TreeSnapshot.take(tree)
        return _result_reasons(spec, patches, numstat, before, after, tree)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _read_numstat(out: bytes) -> tuple[list[tuple[str, str, str]], str]:
    """git's ``--numstat -z`` records (added, deleted, path; "-" for binary) and the summary after them."""
    *records, summary = out.split(b"\0")
    stats = []
    for record in records:
        added, deleted, name = record.split(b"\t", 2)  # ValueError when git wrote something else
        if not re.fullmatch(rb"\d+|-", added) or not re.fullmatch(rb"\d+|-", deleted):
            raise ValueError(record)
        stats.append((added.decode(), deleted.decode(), name.decode("utf-8", "surrogateescape")))
    return stats, summary.decode("utf-8", "replace")


def _disagree(what: str) -> str:
    return (f"git reads this diff differently from the checker ({what}); refused. Lines end at \\n only and "
            f"headers hold no control characters: {_REMAKE}")


def _compare_numstat(patches: list[FilePatch], numstat: list[tuple[str, str, str]]) -> list[str]:
    read = [(str(len(p.added)), str(p.removed), p.new_path if p.new_path is not None else p.old_path)
            for p in patches]
    if len(read) != len(numstat):
        return [_disagree(f"git finds {len(numstat)} file patch(es), the checker {len(read)}")]
    for (r_add, r_del, r_path), (g_add, g_del, g_path) in zip(read, numstat):
        if r_path != g_path:
            return [_disagree(f"git patches {show(g_path)} where the checker read {show(str(r_path))}")]
        if (r_add, r_del) != (g_add, g_del):
            return [_disagree(f"{show(g_path)}: git adds {g_add} and removes {g_del} lines, "
                              f"the checker read {r_add} and {r_del}")]
    return []


def _compare_summary(patches: list[FilePatch], summary: str) -> list[str]:
    git_kinds = Counter(line.split(" ", 2)[1] for line in summary.split("\n")
                        if line.startswith(" ") and line.split(" ", 2)[1] in ("create", "delete", "rename", "copy"))
    read_kinds = Counter("create" if p.old_path is None else "delete" if p.new_path is None else
                         "rename" if p.is_rename else "copy" if p.is_copy else "modify" for p in patches)
    read_kinds.pop("modify", None)
    if git_kinds != read_kinds:
        return [_disagree(f"git creates, deletes, renames or copies {dict(git_kinds)}, the checker read "
                          f"{dict(read_kinds)}")]
    return []


def _result_reasons(spec: BountySpec, patches: list[FilePatch], numstat: list[tuple[str, str, str]],
                    before: TreeSnapshot, after: TreeSnapshot, tree: Path) -> list[str]:
    reasons: list[str] = []
    written = {path for p in patches for path in p.written}
    changed = changed_paths(before, after, spec.target_path, tree)
    if not changed:
        return ["the diff changes no file once applied"]
    for path in changed:
        if path not in written:
            reasons.append(_disagree(f"git changed {show(path)}, which the diff's headers do not name"))
            continue
        reasons += _path_reasons(spec, path)
        if path not in after.entries:
            continue  # deleted (a mutable file: allowed)
        kind, mode = after.kind(path), after.entries[path].st_mode
        name = show(path)
        if kind == "symlink":
            reasons.append(f"{name}: symlinks are not allowed in submissions")
            continue
        if kind != "file":
            reasons.append(f"{name}: only regular files may be changed")
            continue
        if mode & 0o111 and not (path in before.entries and before.entries[path].st_mode & 0o111):
            reasons.append(f"{name}: a submission may not make a file executable")
        new_text = read_text(tree / path)
        if new_text is None:
            reasons.append(f"{name}: the result is not a UTF-8 text file; submit text changes only")
            continue
        old_text = read_text(spec.target_path / path) if before.kind(path) == "file" else ""
        for lineno, text in _new_lines(old_text or "", new_text):
            reasons += _line_reasons(spec, name, lineno, text)
    lines = sum(int(a) + int(d) for a, d, _ in numstat if a != "-")
    if any(a == "-" for a, _, _ in numstat):
        reasons.append("binary patches are not allowed; submit text changes only")
    if lines > spec.max_changed_lines:
        reasons.append(f"the diff changes {lines} lines; this bounty allows at most {spec.max_changed_lines}")
    return reasons


@dataclass
class TreeSnapshot:
    """Every non-directory entry under a tree, by path relative to it, with its lstat."""
    entries: dict[str, os.stat_result]

    @classmethod
    def take(cls, root: Path) -> "TreeSnapshot":
        entries: dict[str, os.stat_result] = {}
        stack = [""]
        while stack:
            rel = stack.pop()
            with os.scandir(root / rel if rel else root) as it:
                for entry in it:
                    path = f"{rel}/{entry.name}" if rel else entry.name
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(path)
                    else:
                        entries[path] = entry.stat(follow_symlinks=False)
        return cls(entries)

    def kind(self, path: str) -> str | None:
        st = self.entries.get(path)
        if st is None:
            return None
        return "file" if stat.S_ISREG(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "other"


def changed_paths(before: TreeSnapshot, after: TreeSnapshot, original: Path, tree: Path) -> list[str]:
    """Paths whose existence, type, mode or content differ between the two snapshots of
    ``tree``; ``original`` holds the content from before (the copy was made from it).
    An entry git did not touch keeps its inode, size and times, so only the others are read."""
    out = []
    for path in sorted(before.entries.keys() | after.entries.keys()):
        b, a = before.entries.get(path), after.entries.get(path)
        if b is None or a is None or b.st_mode != a.st_mode:
            out.append(path)
        elif (b.st_ino, b.st_dev, b.st_size, b.st_mtime_ns, b.st_ctime_ns) == \
                (a.st_ino, a.st_dev, a.st_size, a.st_mtime_ns, a.st_ctime_ns):
            continue
        elif stat.S_ISLNK(a.st_mode):
            if os.readlink(original / path) != os.readlink(tree / path):
                out.append(path)
        elif not stat.S_ISREG(a.st_mode) or (original / path).read_bytes() != (tree / path).read_bytes():
            out.append(path)
    return out


def read_text(path: Path) -> str | None:
    """The file as text, or None when it is binary (a NUL byte, as git judges) or not UTF-8."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _new_lines(old: str, new: str) -> list[tuple[int, str]]:
    """Lines of ``new`` (split at \\n, as git does) that ``old`` does not hold as often:
    whatever the hunks claimed, these are the lines the diff brought in."""
    have = Counter(old.split("\n"))
    out = []
    for lineno, line in enumerate(new.split("\n"), 1):
        if have[line] > 0:
            have[line] -= 1
        elif line:
            out.append((lineno, line))
    return out


def apply_diff(spec: BountySpec, diff: str, tree: Path) -> None:
    """Check, then apply ``diff`` to ``tree`` (a fresh copy of target/); raises DiffRejected."""
    reasons = check_diff(spec, diff)
    if reasons:
        raise DiffRejected(reasons)
    git_apply(diff, tree)


def git_apply(diff: str, tree: Path) -> None:
    """Apply ``diff`` to ``tree`` with git exactly as ``check_diff`` judged it; raises DiffRejected."""
    home = Path(tempfile.mkdtemp(prefix="l402tui-gitapply-"))
    try:
        try:
            proc = _git([], diff if diff.endswith("\n") else diff + "\n", tree, home)
        except subprocess.TimeoutExpired:
            raise DiffRejected([f"git took more than {GIT_TIMEOUT_S} s to apply the diff; {_REMAKE}"]) from None
        if proc.returncode != 0:
            raise DiffRejected([_apply_failure(proc.stderr)])
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _git(args: list[str], diff: str, tree: Path, home: Path) -> subprocess.CompletedProcess[bytes]:
    # No configuration but git's defaults (no system, global or XDG file; HOME is empty),
    # and the ceiling keeps git from finding a repository above the copy and applying
    # paths relative to that repository's root instead.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "XDG_CONFIG_HOME": str(home),
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_ATTR_NOSYSTEM": "1",
           "GIT_CEILING_DIRECTORIES": str(tree.parent), "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    return subprocess.run(["git", "apply", *args, "-p1", "--whitespace=nowarn", "-"], input=diff.encode("utf-8"),
                          cwd=tree, env=env, capture_output=True, timeout=GIT_TIMEOUT_S)


def _apply_failure(stderr: bytes) -> str:
    detail = " ".join(stderr.decode("utf-8", "replace").split())[:500]
    detail = "".join(c if c.isprintable() else show(c)[1:-1] for c in detail)
    return f"the diff does not apply to target/ ({detail}); {_REMAKE}"
