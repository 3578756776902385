"""Turning the effective config (and --attach) into a ready-to-run L402App."""

from __future__ import annotations

from pathlib import Path

from l402tui.config import Config
from l402tui.tui.actions import KeymapError, check_keymap
from l402tui.tui.source import CoordinatorSource, SourceError


class LaunchError(ValueError):
    """The TUI cannot start with these settings; the message says what to change."""


def source_factory(cfg: Config, attach: str | None, admin_macaroon: Path | None):
    """An async callable that opens the data source (run in a worker after first paint)."""
    if attach:
        return _attach_factory(cfg, attach, admin_macaroon)

    async def open_local() -> CoordinatorSource:
        from l402tui.tui.store_source import StoreSource

        return await StoreSource.open(cfg.db_path)

    return open_local


def _attach_factory(cfg: Config, url: str, admin_macaroon: Path | None):
    if not url.startswith(("http://", "https://")):
        raise LaunchError(f"--attach {url!r}: give the daemon's URL, e.g. http://127.0.0.1:8402")
    try:
        from l402tui.tui.http_source import HttpSource
    except ImportError as exc:
        raise LaunchError(f"--attach needs the coordinator's HTTP client, which this build lacks ({exc})") from None

    async def open_remote() -> CoordinatorSource:
        try:
            return await HttpSource.open(url, admin_macaroon, cfg)
        except SourceError:
            raise
        except OSError as exc:
            raise SourceError(f"cannot reach {url}: {exc}; is `l402tui serve` running there?") from None

    return open_remote


def build_app(cfg: Config, attach: str | None = None, admin_macaroon: Path | None = None):
    from l402tui.tui.app import L402App

    tui = cfg.section("tui")
    try:
        keymap = check_keymap(tui["keymap"])
    except KeymapError as exc:
        raise LaunchError(str(exc)) from None
    return L402App(
        source_factory(cfg, attach, admin_macaroon),
        theme=tui["theme"],
        keymap=keymap,
        user_theme_dir=cfg.data_dir / "themes",
        export_dir=cfg.data_dir / "exports",
        log_cap_bytes=cfg.get("evaluation.log_cap_bytes"),
        animation=tui["animation"],
    )
