"""Turning the effective config (and --attach) into a ready-to-run L402App."""

from __future__ import annotations

import logging
from pathlib import Path

from l402tui.config import Config
from l402tui.tui.actions import KeymapError, check_keymap
from l402tui.tui.source import CoordinatorSource


class LaunchError(ValueError):
    """The TUI cannot start with these settings; the message says what to change."""


def source_factory(cfg: Config, attach: str | None, admin_macaroon: Path | None, *, read_only: bool = False,
                   sponsor_macaroon: Path | None = None):
    """An async callable that opens the data source (run in a worker after first paint)."""
    if sponsor_macaroon is not None and not attach:
        raise LaunchError("--sponsor-macaroon needs --attach URL: a sponsor sees a coordinator over its API")
    if attach:
        if not attach.startswith(("http://", "https://")):
            raise LaunchError(f"--attach {attach!r}: give the daemon's URL, e.g. http://127.0.0.1:8402")
        if admin_macaroon is not None and not Path(admin_macaroon).expanduser().is_file():
            raise LaunchError(f"--admin-macaroon {admin_macaroon}: no such file; use the path `l402tui serve` "
                              "printed (admin.macaroon in its data dir)")

        async def open_remote() -> CoordinatorSource:
            from l402tui.tui.coordinator_link import open_attached

            return await open_attached(attach, admin_macaroon, cfg, sponsor_macaroon=sponsor_macaroon)

        return open_remote

    async def open_local() -> CoordinatorSource:
        if read_only:
            import asyncio

            from l402tui.store.lean_imports import preload

            await asyncio.to_thread(preload, "l402tui.tui.store_source")  # off the UI thread
            from l402tui.tui.store_source import StoreSource

            return await StoreSource.open(cfg.db_path)
        from l402tui.tui.coordinator_link import open_in_process

        return await open_in_process(cfg)

    return open_local


def build_app(cfg: Config, attach: str | None = None, admin_macaroon: Path | None = None, *,
              read_only: bool = False, sponsor_macaroon: Path | None = None):
    from l402tui.tui.app import L402App

    tui = cfg.section("tui")
    try:
        keymap = check_keymap(tui["keymap"])
    except KeymapError as exc:
        raise LaunchError(str(exc)) from None
    log_to_file(cfg)
    return L402App(
        source_factory(cfg, attach, admin_macaroon, read_only=read_only, sponsor_macaroon=sponsor_macaroon),
        agent_factory=lambda source: agent_for(cfg, source),
        theme=tui["theme"],
        keymap=keymap,
        user_theme_dir=cfg.data_dir / "themes",
        export_dir=cfg.data_dir / "exports",
        log_cap_bytes=cfg.get("evaluation.log_cap_bytes"),
        animation=tui["animation"],
    )


def log_to_file(cfg: Config) -> Path:
    """Send library logging to a file: anything printed to the terminal would tear the UI."""
    path = cfg.data_dir / "logs" / "tui.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return path


def agent_for(cfg: Config, source: CoordinatorSource):
    """The side panel's agent: offline on tui.agent_local_dir, else against the coordinator
    the TUI shows (in-process or attached); none for the read-only view."""
    from l402tui.tui.agent_controller import LoopAgentController, local_loop_factory, remote_loop_factory

    raw = cfg.get("agent.workdir")
    agents_dir = Path(raw).expanduser() if raw else cfg.data_dir / "agents"
    local = cfg.get("tui.agent_local_dir")
    if local:
        folder = Path(local).expanduser()
        return LoopAgentController(local_loop_factory(folder, agents_dir / f"{folder.name}-local"),
                                   description=f"offline on {folder} · search proposer")
    url = getattr(source, "http_url", None)
    if not url:
        return None
    bounty = cfg.get("tui.agent_bounty") or None
    return LoopAgentController(remote_loop_factory(cfg, url, bounty, agents_dir), wallet_name=cfg.get("agent.node"),
                               description=f"{bounty or 'first open bounty'} at {url} · search proposer · "
                                           f"wallet {cfg.get('agent.node')}")
