"""The eval log of an untrusted run: streamed live to the sponsor, capped in size.

What the agent's code prints may contain held-out data, so it goes only to the
sponsor's eval-log pane and a file next to the evaluation, never into anything
the agent gets back.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

CHUNK = 64 * 1024


class LogSink:
    """Drains a pipe into ``path`` (up to ``cap`` bytes) and forwards lines to ``on_line``.

    Past the cap it keeps reading and discarding, so a chatty process never blocks
    on a full pipe, and notes the truncation once.
    """

    def __init__(self, path: Path, cap: int, on_line: Callable[[str], None] | None = None, prefix: str = ""):
        self.path = path
        self.cap = cap
        self.on_line = on_line
        self.prefix = prefix
        self.written = 0
        self.truncated = False
        self._lock = threading.Lock()

    def note(self, text: str) -> None:
        """A line from the harness itself (not the untrusted code)."""
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"[harness] {text}\n")
        if self.on_line:
            self.on_line(f"{self.prefix}[harness] {text}")

    def pump(self, fd: int) -> None:
        pending = b""
        with open(self.path, "ab") as fh:
            while True:
                try:
                    chunk = os.read(fd, CHUNK)
                except OSError:
                    break
                if not chunk:
                    break
                room = self.cap - self.written
                if room > 0:
                    kept = chunk[:room]
                    fh.write(kept)
                    fh.flush()
                    self.written += len(kept)
                    pending += kept
                    *lines, pending = pending.split(b"\n")
                    self._forward(lines)
                if len(chunk) > room and not self.truncated:
                    self.truncated = True
                    fh.write(f"\n[harness] log truncated at {self.cap} bytes\n".encode())
                    self._forward([pending, f"[harness] log truncated at {self.cap} bytes".encode()])
                    pending = b""
            if pending:
                self._forward([pending])
        os.close(fd)

    def _forward(self, lines: list[bytes]) -> None:
        if not self.on_line:
            return
        for line in lines:
            self.on_line(self.prefix + line.decode("utf-8", "replace"))

    def text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
