"""SQLite store: schema migrations (sqlite-utils) and async access (aiosqlite).

``Store``, ``open_sync`` and ``now`` load ``store.db`` (sqlite-utils, aiosqlite) on first
use, so light modules here (``privacy``, ``integrity``) import without them.
"""

from typing import Any

__all__ = ["Store", "open_sync", "now"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from l402tui.store import db

        return getattr(db, name)
    raise AttributeError(f"module 'l402tui.store' has no attribute {name!r}")
