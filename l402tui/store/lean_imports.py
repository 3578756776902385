"""Importing the data layer without the optional heavyweights sqlite-utils drags in.

sqlite-utils imports numpy and pandas at import time whenever they are installed, only
to map their scalar types to column types — values we never insert.  numpy alone (a
dependency: bounty code run by the local sandbox uses it) adds ~12 MB and OpenBLAS
threads per core; with pandas on the machine it is +40 MB and most of a second before
the first query.  The store imports sqlite-utils with both hidden (so the TUI, serve,
the demo and agents all start lean), then makes them importable again for anyone who
really wants them.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

HIDDEN_FROM_SQLITE_UTILS = ("numpy", "pandas")
_lock = threading.Lock()


def import_sqlite_utils() -> ModuleType:
    """sqlite_utils, imported (once) without numpy and pandas; theirs to import later still."""
    with _lock:
        if "sqlite_utils" in sys.modules:
            return sys.modules["sqlite_utils"]
        # A None entry in sys.modules makes `import numpy` raise ImportError, which is
        # exactly how sqlite-utils learns that an optional module is absent.
        hidden = [name for name in HIDDEN_FROM_SQLITE_UTILS if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            return importlib.import_module("sqlite_utils")
        finally:
            for name in hidden:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]


def preload(*modules: str) -> None:
    """Import ``modules`` (run it in a thread: this is the slow part of opening a source),
    sqlite-utils first and lean."""
    import_sqlite_utils()
    for name in modules:
        importlib.import_module(name)
