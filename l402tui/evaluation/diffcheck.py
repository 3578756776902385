"""Checking and applying a submission's unified diff against the bounty's target/ tree.

A diff is refused, with reasons the agent sees, when it: is empty or not a diff;
names a path that is absolute, climbs out with ``..``, or touches ``.git``; adds a
symlink or another special file mode; carries a binary patch; touches a file
outside ``files.mutable``; changes more lines than ``constraints.max_changed_lines``;
or adds a line matching one of ``constraints.forbidden_patterns``.  Only then is it
applied, with ``git apply`` (checked first) in a fresh copy of target/.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath

from l402tui.bounty.spec import BountySpec

ALLOWED_MODES = {"100644", "100755"}


class DiffRejected(ValueError):
    def __init__(self, reasons: list[str]):
        self.reasons = reasons
        super().__init__("; ".join(reasons))


@dataclass
class FilePatch:
    old_path: str | None  # None for a new file
    new_path: str | None  # None for a deleted file
    modes: list[str] = field(default_factory=list)
    binary: bool = False
    added: list[tuple[int, str]] = field(default_factory=list)  # (line in new file, text)
    removed: int = 0

    @property
    def paths(self) -> list[str]:
        return sorted({p for p in (self.old_path, self.new_path) if p is not None})


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
    return re.compile("".join(out) + r"\Z")


def is_mutable(spec: BountySpec, path: str) -> bool:
    return any(glob_regex(g.lstrip("./") if g.startswith("./") else g).match(path) for g in spec.mutable)


def _strip_prefix(raw: str, prefix: str) -> str | None:
    raw = raw.split("\t", 1)[0].strip()
    if raw.startswith('"') and raw.endswith('"'):
        raw = raw[1:-1]  # git quotes unusual names; the name itself is checked below
    if raw == "/dev/null":
        return None
    return raw[len(prefix):] if raw.startswith(prefix) else raw


def parse_diff(diff: str) -> list[FilePatch]:
    """Split a unified diff (git-style or plain) into per-file patches.

    Hunks are consumed by their line counts from the ``@@`` header, so a removed
    line that reads ``-- x`` is never mistaken for a file header.
    """
    patches: list[FilePatch] = []
    current: FilePatch | None = None
    lines = diff.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            m = re.match(r"diff --git (\S+) (\S+)$", line)
            a, b = (m.group(1), m.group(2)) if m else ("", "")
            current = FilePatch(_strip_prefix(a, "a/"), _strip_prefix(b, "b/"))
            patches.append(current)
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old = _strip_prefix(line[4:], "a/")
            new = _strip_prefix(lines[i + 1][4:], "b/")
            if current is None or current.added or current.removed:
                current = FilePatch(old, new)
                patches.append(current)
            else:  # the ---/+++ pair after a diff --git header is authoritative
                current.old_path, current.new_path = old, new
            i += 2
            continue
        elif current is not None and re.match(r"(old mode|new mode|deleted file mode|new file mode) (\d+)", line):
            current.modes.append(line.split()[-1])
        elif current is not None and line.startswith(("rename from ", "copy from ")):
            current.old_path = line.split(" ", 2)[2]
        elif current is not None and line.startswith(("rename to ", "copy to ")):
            current.new_path = line.split(" ", 2)[2]
        elif current is not None and (line.startswith("GIT binary patch") or
                                      (line.startswith("Binary files ") and line.endswith(" differ"))):
            current.binary = True
        elif line.startswith("@@") and current is not None:
            m = re.match(r"@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", line)
            if m:
                old_left = int(m.group(1)) if m.group(1) is not None else 1
                new_no = int(m.group(2))
                new_left = int(m.group(3)) if m.group(3) is not None else 1
                i += 1
                while i < len(lines) and (old_left > 0 or new_left > 0):
                    body = lines[i]
                    if body.startswith("+"):
                        current.added.append((new_no, body[1:]))
                        new_no += 1
                        new_left -= 1
                    elif body.startswith("-"):
                        current.removed += 1
                        old_left -= 1
                    elif body.startswith("\\"):
                        pass  # "\ No newline at end of file"
                    else:  # context (a bare empty line is context whose space was stripped)
                        new_no += 1
                        old_left -= 1
                        new_left -= 1
                    i += 1
                continue
        i += 1
    return patches


def _bad_path(path: str) -> str | None:
    if "\0" in path or "\\" in path:
        return f"{path!r} contains a NUL or backslash"
    p = PurePosixPath(path)
    if p.is_absolute():
        return f"{path} is an absolute path; paths must be relative to target/ (a/parser.py)"
    if ".." in p.parts:
        return f"{path} leaves the target tree (uses ..)"
    if ".git" in p.parts:
        return f"{path} touches git metadata"
    if not p.parts or path.endswith("/"):
        return f"{path!r} is not a file path"
    return None


def check_diff(spec: BountySpec, diff: str) -> list[str]:
    """Reasons to refuse ``diff`` for this bounty, each saying what to change; [] means acceptable."""
    if not diff or not diff.strip():
        return ["the diff is empty; submit a unified diff (git diff) against target/"]
    patches = parse_diff(diff)
    if not patches:
        return ["this is not a unified diff (no ---/+++ file headers found); produce it with `git diff`"]
    reasons: list[str] = []
    changed = 0
    patterns = [(p, re.compile(p)) for p in spec.forbidden_patterns]
    for patch in patches:
        if not patch.paths:
            reasons.append("a file header names no path")
            continue
        for path in patch.paths:
            bad = _bad_path(path)
            if bad:
                reasons.append(f"path escapes or is unsafe: {bad}")
            elif not is_mutable(spec, path):
                reasons.append(f"{path} is not a mutable file; this bounty allows changes to: "
                               + ", ".join(spec.mutable))
        for mode in patch.modes:
            if mode == "120000":
                reasons.append(f"{patch.paths[0]}: symlinks are not allowed in submissions")
            elif mode not in ALLOWED_MODES:
                reasons.append(f"{patch.paths[0]}: file mode {mode} is not allowed (only 100644 and 100755)")
        if patch.binary:
            reasons.append(f"{patch.paths[0]}: binary patches are not allowed; submit text changes only")
        changed += len(patch.added) + patch.removed
        for lineno, text in patch.added:
            for source, rx in patterns:
                if rx.search(text):
                    where = patch.new_path or patch.paths[0]
                    reasons.append(f"{where}:{lineno}: added line matches forbidden pattern {source!r}")
    if changed > spec.max_changed_lines:
        reasons.append(f"the diff changes {changed} lines; this bounty allows at most {spec.max_changed_lines}")
    if changed == 0 and not any(p.modes for p in patches) and not reasons:
        reasons.append("the diff changes no lines")
    return list(dict.fromkeys(reasons))  # same reason once, in order


def apply_diff(spec: BountySpec, diff: str, tree: Path) -> None:
    """Check, then apply ``diff`` to ``tree`` (a fresh copy of target/); raises DiffRejected."""
    reasons = check_diff(spec, diff)
    if reasons:
        raise DiffRejected(reasons)
    git_apply(diff, tree)


def git_apply(diff: str, tree: Path) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".patch", delete=False, encoding="utf-8") as fh:
        fh.write(diff if diff.endswith("\n") else diff + "\n")
        patch_file = fh.name
    # The ceiling keeps git from finding a repository above the copy and applying
    # paths relative to that repository's root instead.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tree.parent), "LC_ALL": "C"}
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    try:
        for args in (["--check"], []):
            proc = subprocess.run(["git", "apply", *args, "-p1", "--whitespace=nowarn", patch_file],
                                  cwd=tree, env=env, capture_output=True, text=True, timeout=60)
            if proc.returncode != 0:
                detail = " ".join(proc.stderr.replace(patch_file, "diff").split())[:500]
                raise DiffRejected([f"the diff does not apply to target/ ({detail}); "
                                    "make it with `git diff` against an unmodified package"])
    finally:
        os.unlink(patch_file)
