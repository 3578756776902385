"""Reading ``git diff`` output: which files it touches, and the same diff re-rooted at target/.

With ``--no-renames`` every file section starts with ``diff --git a/P b/P`` (the same
path twice) and its header lines run until the first ``@@`` hunk; hunk lines start with
space, ``+``, ``-`` or ``\\``, so neither can be mistaken for a header.  One full-path
diff thus answers both "did anything outside target/ change?" and "what does the
harness apply?", for one git call instead of two.
"""

from __future__ import annotations

import codecs

HEADER = "diff --git "


def _unquote(path: str) -> str:
    if len(path) >= 2 and path[0] == path[-1] == '"':
        # git C-quotes unusual names: backslash escapes, octal bytes for non-ASCII
        return codecs.escape_decode(path[1:-1].encode("latin-1"))[0].decode("utf-8", "replace")
    return path


def section_path(header_line: str) -> str:
    """The path of a ``diff --git a/P b/P`` line (P twice, as with --no-renames)."""
    rest = header_line[len(HEADER):].rstrip("\n")
    first = rest[:(len(rest) - 1) // 2]
    first = _unquote(first)
    return first[2:] if first.startswith("a/") else first


def diff_paths(diff: str) -> list[str]:
    return [section_path(line) for line in diff.splitlines() if line.startswith(HEADER)]


def rerooted(diff: str, prefix: str) -> str:
    """The sections of ``diff`` under ``prefix`` (e.g. ``"target/"``), with paths relative
    to it: ``a/target/x.py`` becomes ``a/x.py``."""
    out: list[str] = []
    keep = header = False
    for line in diff.splitlines(keepends=True):
        if line.startswith(HEADER):
            keep = section_path(line).startswith(prefix)
            header = True
        elif header and line.startswith("@@"):
            header = False
        if not keep:
            continue
        if header:
            for side in ("a/", "b/"):
                line = line.replace(f" {side}{prefix}", f" {side}", 1).replace(f'"{side}{prefix}', f'"{side}', 1)
        out.append(line)
    return "".join(out)
