"""A diff's changes as normalised token streams, so a reworded copy reads as the same code.

What is folded, per file kind (by suffix):

- Python (``tokenize``): comments, blank lines, indentation and line breaks go; a
  string literal becomes its *value* (quote style, prefixes and escapes folded), a
  number its value (``0.50`` = ``.5``, ``1_000`` = ``1000``); names the author
  introduced are renamed canonically in order of first appearance.  Names that
  already stood in the file (seen on removed or context lines), keywords, builtins
  and attributes (after ``.``) keep their spelling: renaming them would change what
  the code does, so a copier cannot, and keeping them tells genuinely different
  edits of the same lines apart (``HIDDEN = 96`` is not ``BATCH = 96``).
- SQL (``sqlglot``, SQLite dialect): parsed and rewritten canonically (keyword case,
  quoting of identifiers, ``<>``/``!=``, spacing), then tokenised; unquoted
  identifiers lower-cased; names the author binds (index names, ``AS`` aliases,
  table aliases) renamed canonically.  Fragments that do not parse are tokenised raw.
- Anything else: lines with whitespace runs folded, blank and comment-only lines dropped.

The diff is read the way git reads it: lines end at ``\\n`` only, and a hunk is
consumed by the counts in its ``@@`` header.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import re
import textwrap
import tokenize
from dataclasses import dataclass, field

_HUNK = re.compile(r"@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_COMMENT_LINE = re.compile(r"^\s*(#|//|--)")
_KEEP_NAMES = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | {"self", "cls"}
_FIELD = re.compile(r"\{[^{}]*\}")
_NAME = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
_SKIP_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                tokenize.ENCODING, tokenize.ENDMARKER}
# For fragments tokenize cannot finish (an unterminated triple-quoted string in the added lines).
_FALLBACK = re.compile(r'''[rRbBfFuU]{0,2}(?:"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')'''
                       r"|#[^\n]*|\d[\w.]*|[A-Za-z_]\w*|\S")


@dataclass
class FileChange:
    path: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    context: list[str] = field(default_factory=list)


def _header_path(raw: str) -> str | None:
    raw = raw.split("\t", 1)[0].strip().strip('"')
    if raw == "/dev/null":
        return None
    return raw[2:] if raw[:2] in ("a/", "b/") else raw


def file_changes(diff: str) -> list[FileChange]:
    """Added, removed and context lines per file, split on ``\\n`` only as git does."""
    lines = diff.split("\n")
    files: list[FileChange] = []
    current: FileChange | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _header_path(line[4:]), _header_path(lines[i + 1][4:])
            current = FileChange(new or old or "")
            files.append(current)
            i += 2
            continue
        m = _HUNK.match(line)
        if m and current is not None:
            old_left = int(m.group(1)) if m.group(1) is not None else 1
            new_left = int(m.group(2)) if m.group(2) is not None else 1
            i += 1
            while i < len(lines) and (old_left > 0 or new_left > 0):
                body = lines[i]
                if body.startswith("\\"):  # "\ No newline at end of file"
                    i += 1
                    continue
                tag, text = body[:1], body[1:]
                if tag == "+":
                    current.added.append(text)
                    new_left -= 1
                elif tag == "-":
                    current.removed.append(text)
                    old_left -= 1
                else:
                    current.context.append(text)
                    old_left -= 1
                    new_left -= 1
                i += 1
            continue
        i += 1
    return files


# -- Python -----------------------------------------------------------------------------

def _string_value(tok: str) -> str:
    try:
        value = ast.literal_eval(tok)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        # f-strings and the like: fold the prefix and the quotes, keep the body.
        body = tok.lstrip("rRbBfFuU")
        quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
        return "F:" + body[len(quote):len(body) - len(quote)]
    return "S:" + repr(value)


def _number_value(tok: str) -> str:
    try:
        value = ast.literal_eval(tok)
    except (ValueError, SyntaxError):
        return "N:" + tok.lower()
    return "N:" + repr(value)


def _raw_python_tokens(text: str) -> list[tuple[int, str]]:
    """(kind, text) pairs; tokenize first, the fallback lexer for the lines it cannot finish."""
    seen: list[tuple[int, str, int]] = []
    done_rows = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.NEWLINE, tokenize.NL):
                done_rows = tok.end[0]
            if tok.type not in _SKIP_TOKENS:
                seen.append((tok.type, tok.string, tok.end[0]))
        return [(kind, string) for kind, string, _ in seen]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    out = [(kind, string) for kind, string, row in seen if row <= done_rows]
    for m in _FALLBACK.finditer("\n".join(text.split("\n")[done_rows:])):
        piece = m.group(0)
        if piece.startswith("#"):
            continue
        if piece.lstrip("rRbBfFuU")[:1] in ("\"", "'"):
            out.append((tokenize.STRING, piece))
        elif piece[0].isdigit():
            out.append((tokenize.NUMBER, piece))
        elif piece[0].isalpha() or piece[0] == "_":
            out.append((tokenize.NAME, piece))
        else:
            out.append((tokenize.OP, piece))
    return out


def python_tokens(added: list[str], known: set[str]) -> list[str]:
    """The normalised tokens of added Python lines; ``known`` holds names already in the file."""
    text = textwrap.dedent("\n".join(added)) + "\n"
    names: dict[str, str] = {}
    out: list[str] = []
    previous = ""

    def rename(name: str) -> str:
        if name in _KEEP_NAMES or name in known:
            return name
        return names.setdefault(name, f"v{len(names)}")

    for kind, tok in _raw_python_tokens(text):
        if kind == tokenize.STRING:
            value = _string_value(tok)
            if value.startswith("F:"):  # an f-string: the names in its {fields} are code too
                value = _FIELD.sub(lambda f: _NAME.sub(lambda n: rename(n.group(0)), f.group(0)), value)
            out.append(value)
        elif kind == tokenize.NUMBER:
            out.append(_number_value(tok))
        elif kind == tokenize.NAME and previous != ".":
            out.append(rename(tok))
        else:
            out.append(tok)
        previous = tok
    return out


def python_names(lines: list[str]) -> set[str]:
    return set(re.findall(r"[A-Za-z_]\w*", "\n".join(lines)))


# -- SQL --------------------------------------------------------------------------------

def sql_tokens(added: list[str]) -> list[str]:
    """The normalised tokens of added SQL lines (canonical via sqlglot where they parse)."""
    from sqlglot import transpile
    from sqlglot.errors import SqlglotError
    from sqlglot.tokens import Tokenizer, TokenType

    text = "\n".join(added)
    try:
        text = ";\n".join(transpile(text, read="sqlite", write="sqlite"))
    except SqlglotError:
        pass  # a fragment of a statement: tokenise it as written
    try:
        tokens = Tokenizer().tokenize(text)
    except SqlglotError:
        return text_tokens(added)
    kinds = [t.token_type for t in tokens]
    words = [t.text.upper() for t in tokens]
    name_kinds = (TokenType.VAR, TokenType.IDENTIFIER)

    def is_name(j: int) -> bool:
        return 0 <= j < len(kinds) and kinds[j] in name_kinds

    # SQLite names are case-insensitive, quoted or not.  Bound names (index names, AS
    # aliases, table aliases) are found first, as an alias may be used before it is bound.
    bound = {tokens[j].text.lower() for j in range(len(tokens)) if is_name(j) and (
        words[j - 1:j] == ["AS"] or words[j - 1:j] == ["INDEX"] or words[max(0, j - 3):j] == ["IF", "NOT", "EXISTS"]
        or (is_name(j - 1) and j >= 2 and words[j - 2] in ("FROM", "JOIN", ",")))}
    canonical: dict[str, str] = {}
    out: list[str] = []
    for j, tok in enumerate(tokens):
        if tok.token_type == TokenType.STRING:
            out.append("S:" + tok.text)
        elif tok.token_type == TokenType.NUMBER:
            out.append(_number_value(tok.text))
        elif is_name(j):
            name = tok.text.lower()
            out.append(canonical.setdefault(name, f"v{len(canonical)}") if name in bound else name)
        elif tok.token_type != TokenType.SEMICOLON:  # separators: a trailing ";" changes nothing
            out.append(words[j])
    return out


# -- anything else ----------------------------------------------------------------------

def text_tokens(added: list[str]) -> list[str]:
    return [" ".join(line.split()) for line in added if line.strip() and not _COMMENT_LINE.match(line)]


def change_tokens(diff: str) -> tuple[list[str], list[str]]:
    """(added, removed) normalised tokens of the whole diff, each file's prefixed by its path."""
    added: list[str] = []
    removed: list[str] = []
    for change in file_changes(diff):
        kind = change.path.rsplit(".", 1)[-1].lower() if "." in change.path else ""
        if kind in ("py", "pyi"):
            known = python_names(change.removed + change.context)
            new, old = python_tokens(change.added, known), python_tokens(change.removed, known)
        elif kind == "sql":
            new, old = sql_tokens(change.added), sql_tokens(change.removed)
        else:
            new, old = text_tokens(change.added), text_tokens(change.removed)
        if new:
            added += ["FILE:" + change.path, *new]
        if old:
            removed += ["FILE:" + change.path, *old]
    return added, removed
