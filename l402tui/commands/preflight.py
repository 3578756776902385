"""Checks `serve` and the TUI make before anything opens the data dir: it is private,
and the databases are whole and of a schema this l402tui understands."""

from __future__ import annotations

import click

from l402tui.config import Config


def check_before_start(cfg: Config) -> None:
    """Raise a ClickException (exit 1, the reason and the fix) instead of starting on
    a data dir other users can reach, or on a corrupt or too-new database."""
    from l402tui.store.integrity import DatabaseRefused, check_database
    from l402tui.store.migrations import LATEST
    from l402tui.store.privacy import SIMNET_FILE, DataDirExposed, check_private

    try:
        check_private(cfg.data_dir)
        check_database(cfg.db_path, LATEST)
        check_database(cfg.data_dir / SIMNET_FILE, None)  # the simulated node's own state
    except (DataDirExposed, DatabaseRefused) as exc:
        raise click.ClickException(str(exc)) from None
