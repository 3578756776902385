"""Maps TOML key paths (``metrics[1].direction``) to the line they are written on.

``tomllib`` gives values but not positions; validation messages need lines, so
this scans the text for table headers and ``key =`` lines.  It handles the forms
bounty files use (tables, arrays of tables, dotted and quoted keys); for anything
else it falls back to the nearest enclosing table's line.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*=""")


def _clean(key: str) -> str:
    return ".".join(p.strip().strip("\"'") for p in key.split("."))


class KeyLines:
    def __init__(self, text: str):
        self.lines: dict[str, int] = {}
        counts: dict[str, int] = {}
        table = ""
        in_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if in_multiline in line:
                    in_multiline = None
                continue
            header = _HEADER.match(line)
            if header:
                name = _clean(header.group(2))
                if header.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    table = f"{name}[{index}]"
                    self.lines.setdefault(name, number)
                else:
                    table = name
                self.lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                path = f"{table}.{_clean(key.group(1))}" if table else _clean(key.group(1))
                self.lines.setdefault(path, number)
                rest = line[key.end():]
                for quote in ('"""', "'''"):
                    if rest.count(quote) == 1:
                        in_multiline = quote

    def line_of(self, path: str) -> int | None:
        """The line of ``path``, else of its nearest parent, else None."""
        while path:
            if path in self.lines:
                return self.lines[path]
            for i, candidate in enumerate(self._items(path)):
                if candidate in self.lines:
                    return self.lines[candidate]
            if "." in path:
                path = path.rsplit(".", 1)[0]
            elif path.endswith("]"):
                path = path[: path.rfind("[")]
            else:
                break
        return None

    @staticmethod
    def _items(path: str) -> list[str]:
        # "metrics[1]" may be addressed as a list item of an inline array: try "metrics" too.
        return [re.sub(r"\[\d+\]$", "", path)] if path.endswith("]") else []
