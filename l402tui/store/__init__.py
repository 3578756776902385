"""SQLite store: schema migrations (sqlite-utils) and async access (aiosqlite)."""

from l402tui.store.db import Store, open_sync, now

__all__ = ["Store", "open_sync", "now"]
