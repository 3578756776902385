"""`l402tui serve`: the coordinator headless — HTTP API, L402 gate, evaluation queue."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import sys

import click

from l402tui.config import Config

log = logging.getLogger("l402tui.serve")


@click.command()
@click.option("--host", help="Address to bind (default: coordinator.host, 127.0.0.1). "
              "0.0.0.0 exposes it to your LAN; see docs/api.md first.")
@click.option("--port", type=int, help="Port (default: coordinator.port, 8402; 0 picks a free one).")
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="Work the evaluation queue in this process (turn off when a separate "
                   "`python -m l402tui.evaluation.worker` does it).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="How much to log.")
@click.pass_obj
def serve(cfg: Config, host: str | None, port: int | None, evaluate: bool, log_level: str) -> None:
    """Run the coordinator headless until SIGINT or SIGTERM.

    Prints the URL, the admin API URL and the admin macaroon's path (0600 in the data
    dir; the TUI's --attach and admin calls send it as 'Authorization: Bearer <it>').
    """
    cfg = cfg.with_overrides({"coordinator.host": host, "coordinator.port": port})
    from l402tui.commands.preflight import check_before_start
    check_before_start(cfg)  # a private data dir, whole databases (refuses with the fix)
    logging.basicConfig(level=getattr(logging, log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING if log_level != "debug" else logging.DEBUG)
    try:
        asyncio.run(_serve(cfg, evaluate))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {cfg.get('coordinator.host')}:{cfg.get('coordinator.port')}: "
                                   f"{exc.strerror or exc}; pick another --port or stop what holds it") from None


async def _serve(cfg: Config, evaluate: bool) -> None:
    from l402tui.coordinator.runtime import start_coordinator

    running = await start_coordinator(cfg, evaluate=evaluate, access_log=True)
    backend = running.coordinator.backend
    host = cfg.get("coordinator.host")
    base = running.url
    click.echo(f"l402tui coordinator listening on {base}  (lightning: {backend.name}, "
               f"evaluations: {'in-process, sandbox ' + running.sandbox if evaluate else 'external worker'})")
    click.echo(f"admin API:       {base}/api/v1/admin/bounties")
    click.echo(f"admin macaroon:  {running.admin_path}  (send as 'Authorization: Bearer <contents>')")
    click.echo(f"attach the TUI:  l402tui --attach {base} --admin-macaroon {running.admin_path}")
    if not _is_loopback(host):
        click.echo("warning: listening beyond this machine over plain HTTP; put a TLS reverse proxy in front "
                   "(docs/api.md)", err=True)
    sys.stdout.flush()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    click.echo("stopping: finishing requests, closing event streams ...")
    await running.close()
    click.echo("stopped")


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
