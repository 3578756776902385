"""`l402tui tui` (and plain `l402tui`): open the terminal UI."""

from __future__ import annotations

import click

from l402tui.config import Config


@click.command()
@click.option("--read-only", is_flag=True,
              help="Only look: read the database without starting a coordinator (safe beside `serve`).")
@click.pass_context
def tui(ctx: click.Context, read_only: bool = False) -> None:
    """Open the terminal UI with the coordinator in-process, or over `--attach URL`."""
    from l402tui.tui.launch import LaunchError, build_app

    cfg: Config = ctx.obj
    root = ctx.find_root()
    if not root.meta.get("attach"):  # attached, the data dir is the daemon's business
        from l402tui.commands.preflight import check_before_start

        check_before_start(cfg)
    try:
        app = build_app(cfg, root.meta.get("attach"), root.meta.get("admin_macaroon"), read_only=read_only,
                        sponsor_macaroon=root.meta.get("sponsor_macaroon"))
    except LaunchError as exc:
        raise click.ClickException(str(exc)) from None
    if root.meta.get("attach"):
        _reach(cfg, root.meta["attach"], root.meta.get("admin_macaroon"), root.meta.get("sponsor_macaroon"))
    app.run()
    if app.return_code:
        ctx.exit(app.return_code)


def _reach(cfg: Config, url: str, admin_macaroon, sponsor_macaroon) -> None:
    """Open the daemon once before the screen takes over: nothing listening, a missing or
    refused macaroon end here in one line rather than in an empty TUI with a toast."""
    import asyncio

    from l402tui.tui.coordinator_link import open_attached
    from l402tui.tui.source import SourceError

    async def probe() -> None:
        source = await open_attached(url, admin_macaroon, cfg, sponsor_macaroon=sponsor_macaroon)
        await source.close()

    try:
        asyncio.run(probe())
    except SourceError as exc:
        raise click.ClickException(f"--attach {url}: {exc}") from None
