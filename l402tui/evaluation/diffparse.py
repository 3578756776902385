"""Reading a unified diff the way ``git apply`` reads it.

The checker must see the same patches, paths and lines as git, or every rule
it enforces is void: one added line holding a form feed, split by
``str.splitlines()`` but not by git, once hid a second file's headers from it.
So this parser follows git's own (``apply.c``):

- lines end at ``\\n`` only; any other byte is part of its line;
- a file starts at ``diff --git`` (git header lines follow until one that is
  not a header) or at a ``---``/``+++`` pair directly followed by ``@@ -``;
- a hunk is consumed by the counts in its ``@@`` line; its body lines must
  start with `` ``, ``-``, ``+`` or ``\\ `` (an empty line is empty context);
  anything else is a corrupt patch, as for git;
- every other line is ignored text, as for git.

Header lines (and ignored text) must hold no control character other than a tab,
no DEL, no C1 control and no Unicode line or paragraph separator: git diff never
writes them there (it C-quotes unusual file names), and other readers split
lines on them.  A diff with CRLF line endings is refused for the same reason:
git reads the ``\\r`` as part of each header.  Hunk *content* may end in ``\\r``
(a target file with CRLF line endings); what content may hold is the policy's
business (``diffcheck``), judged on the applied files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Bytes other readers treat as line breaks, and the rest of the controls a header never holds.
_HEADER_BAD = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_FRAGMENT = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_GIT_HEADERS = ("--- ", "+++ ", "old mode ", "new mode ", "deleted file mode ", "new file mode ",
                "copy from ", "copy to ", "rename old ", "rename new ", "rename from ", "rename to ",
                "similarity index ", "dissimilarity index ", "index ")
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


@dataclass
class FilePatch:
    old_path: str | None  # None for a new file
    new_path: str | None  # None for a deleted file
    modes: list[str] = field(default_factory=list)  # every mode its header names
    new_mode: str | None = None  # from "new mode" / "new file mode"
    binary: bool = False
    added: list[tuple[int, str]] = field(default_factory=list)  # (line in new file, text)
    removed: int = 0
    removed_lines: list[str] = field(default_factory=list)  # their text, in order
    is_rename: bool = False
    is_copy: bool = False
    line: int = 0  # 1-based line of the diff where this file's header starts

    @property
    def paths(self) -> list[str]:
        return sorted({p for p in (self.old_path, self.new_path) if p is not None})

    @property
    def written(self) -> list[str]:
        """Paths whose content or existence this patch changes (a copy leaves its source)."""
        out = [self.new_path] if self.new_path is not None else []
        if self.old_path is not None and self.old_path != self.new_path and not self.is_copy:
            out.append(self.old_path)
        return out


def show(text: str) -> str:
    """``text`` safe to print: as is when every character is printable, else quoted with
    escapes, so a name can never carry a terminal escape sequence into a message."""
    if text.isprintable() and "'" not in text and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch.isprintable() and ch not in "'\\":
            out.append(ch)
        elif ch in "'\\":
            out.append("\\" + ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "'" + "".join(out) + "'"


def _unquote(raw: str) -> str | None:
    """A C-quoted git name ("a/\\303\\251.py") as text; None when the quoting is broken."""
    out, i = bytearray(), 1
    while i < len(raw):
        ch = raw[i]
        if ch == '"':
            return out.decode("utf-8", "surrogateescape") if i == len(raw) - 1 else None
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = raw[i + 1:i + 2]
        if nxt in _C_ESCAPES:
            out.append(_C_ESCAPES[nxt])
            i += 2
        elif re.fullmatch(r"[0-3][0-7]{2}", raw[i + 1:i + 4]):
            out.append(int(raw[i + 1:i + 4], 8))
            i += 4
        else:
            return None
    return None


def _name(raw: str, prefix: str) -> str | None:
    """A ---/+++/rename name: quoted or up to a tab; /dev/null is None; ``prefix`` stripped."""
    if raw.startswith('"'):
        end = raw.find('"', 1)
        while end != -1 and raw[end - 1] == "\\" and not raw[:end].endswith("\\\\"):
            end = raw.find('"', end + 1)
        name = _unquote(raw[:end + 1]) if end != -1 else None
        if name is None:
            return raw  # left as written: git reads it differently, and the comparison refuses it
    else:
        name = raw.split("\t", 1)[0].rstrip(" ")
    if name == "/dev/null":
        return None
    return name[len(prefix):] if prefix and name.startswith(prefix) else name


def _git_names(rest: str) -> tuple[str | None, str | None]:
    """The two names of ``diff --git a/X b/X``; when unquoted and ambiguous (spaces), the
    split that gives the same name twice, as git does."""
    if rest.startswith('"') or rest.endswith('"'):
        m = re.fullmatch(r'("(?:[^"\\]|\\.)*"|\S+) ("(?:[^"\\]|\\.)*"|\S+)', rest)
        if m:
            return _name(m.group(1), "a/"), _name(m.group(2), "b/")
        return None, None
    for m in re.finditer(" b/", rest):
        a, b = rest[:m.start()], rest[m.start() + 1:]
        if a.startswith("a/") and a[2:] == b[2:]:
            return a[2:], b[2:]
    parts = rest.split(" ")
    return (_name(parts[0], "a/"), _name(parts[-1], "b/")) if len(parts) == 2 else (None, None)


@dataclass
class _Reader:
    lines: list[str]
    problems: list[str] = field(default_factory=list)
    patches: list[FilePatch] = field(default_factory=list)

    def header_ok(self, i: int) -> bool:
        line = self.lines[i]
        bad = _HEADER_BAD.search(line)
        if bad is None:
            return True
        if bad.group() == "\r" and bad.end() == len(line):
            self.problems.append(f"line {i + 1} ends in a carriage return (CRLF line endings): git reads it as "
                                 "part of the header; make the diff with `git diff`, which writes LF line endings")
        else:
            self.problems.append(f"line {i + 1} is a diff header or text between files and holds the control "
                                 f"character {show(bad.group())}; headers may hold tabs only (git C-quotes "
                                 "unusual file names)")
        return False

    def run(self) -> None:
        i, n = 0, len(self.lines)
        while i < n and not self.problems:
            line = self.lines[i]
            if not self.header_ok(i):
                break
            if line.startswith("@@ -") and _FRAGMENT.match(line):
                self.problems.append(f"line {i + 1}: a hunk (@@) without a file header before it")
                break
            if line.startswith("diff --git "):
                i = self.git_patch(i)
            elif (line.startswith("--- ") and i + 2 < n and self.lines[i + 1].startswith("+++ ")
                  and self.lines[i + 2].startswith("@@ -")):
                if not self.header_ok(i + 1):
                    break
                patch = FilePatch(_name(line[4:], "a/"), _name(self.lines[i + 1][4:], "b/"), line=i + 1)
                self.patches.append(patch)
                i = self.hunks(patch, i + 2)
            else:
                i += 1  # text between files (a commit message, say): git ignores it too

    def git_patch(self, i: int) -> int:
        old, new = _git_names(self.lines[i][len("diff --git "):])
        patch = FilePatch(old, new, line=i + 1)
        self.patches.append(patch)
        i += 1
        while i < len(self.lines) and self.lines[i].startswith(_GIT_HEADERS):
            if not self.header_ok(i):
                return len(self.lines)
            line = self.lines[i]
            if line.startswith("--- "):
                patch.old_path = _name(line[4:], "a/")
            elif line.startswith("+++ "):
                patch.new_path = _name(line[4:], "b/")
            elif line.startswith(("old mode ", "new mode ", "deleted file mode ", "new file mode ")):
                patch.modes.append(line.rsplit(" ", 1)[-1])
                if line.startswith(("new mode ", "new file mode ")):
                    patch.new_mode = patch.modes[-1]
                if line.startswith("deleted file mode "):
                    patch.new_path = None
                elif line.startswith("new file mode "):
                    patch.old_path = None
            elif line.startswith(("rename from ", "rename old ", "copy from ")):
                patch.old_path = _name(line.split(" ", 2)[2], "")
                patch.is_rename, patch.is_copy = line.startswith("rename"), line.startswith("copy")
            elif line.startswith(("rename to ", "rename new ", "copy to ")):
                patch.new_path = _name(line.split(" ", 2)[2], "")
            i += 1
        if i < len(self.lines) and self.lines[i].startswith("@@ -"):
            return self.hunks(patch, i)
        if i < len(self.lines) and self.lines[i].startswith(("GIT binary patch", "Binary files ")):
            patch.binary = True
        return i

    def hunks(self, patch: FilePatch, i: int) -> int:
        lines = self.lines
        while i < len(lines) and lines[i].startswith("@@ -"):
            if not self.header_ok(i):
                return len(lines)
            m = _FRAGMENT.match(lines[i])
            if not m:
                self.problems.append(f"line {i + 1}: corrupt hunk header (expected @@ -a,b +c,d @@)")
                return len(lines)
            old_left = int(m.group(2)) if m.group(2) is not None else 1
            new_no = int(m.group(3))
            new_left = int(m.group(4)) if m.group(4) is not None else 1
            start, changed = i, 0
            i += 1
            while old_left or new_left:
                body = lines[i] if i < len(lines) - 1 or lines[i] else None  # the last "" is the end
                if body is None:
                    self.problems.append(f"line {start + 1}: the hunk ends early (its @@ counts promise more lines)")
                    return len(lines)
                kind = body[:1]
                if kind in ("", " "):
                    old_left, new_left, new_no = old_left - 1, new_left - 1, new_no + 1
                elif kind == "-":
                    old_left, changed = old_left - 1, changed + 1
                    patch.removed += 1
                    patch.removed_lines.append(body[1:])
                elif kind == "+":
                    patch.added.append((new_no, body[1:]))
                    new_left, new_no, changed = new_left - 1, new_no + 1, changed + 1
                elif not (kind == "\\" and body.startswith("\\ ") and len(body) >= 11):
                    self.problems.append(f"line {i + 1}: corrupt patch (a hunk line must start with a space, "
                                         "'-', '+' or '\\')")
                    return len(lines)
                if old_left < 0 or new_left < 0:
                    self.problems.append(f"line {start + 1}: the hunk holds more lines than its @@ counts")
                    return len(lines)
                i += 1
            if not changed:
                self.problems.append(f"line {start + 1}: a hunk that changes no line (git calls it corrupt)")
                return len(lines)
            if i < len(lines) and lines[i].startswith("\\ ") and len(lines[i]) >= 11:
                i += 1  # "\ No newline at end of file" after the last line
        return i


def read_diff(diff: str) -> tuple[list[FilePatch], list[str]]:
    """The diff's file patches as git reads them, and why git or this checker refuses its text.

    A diff that does not end in a newline is read as if it did (``git_apply`` adds one)."""
    lines = diff.split("\n")
    if lines and lines[-1] != "":
        lines.append("")  # the newline git_apply adds
    reader = _Reader(lines)
    reader.run()
    return reader.patches, reader.problems


def parse_diff(diff: str) -> list[FilePatch]:
    """The file patches of ``diff`` as git reads them (see the module doc); never raises."""
    return read_diff(diff)[0]
