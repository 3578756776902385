"""Starting a complete coordinator in this process: service, HTTP app (L402 gate,
admin API, events), evaluation worker, admin macaroon.  `l402tui serve`, the TUI's
in-process mode and the demo all start it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from l402tui.config import Config


@dataclass
class RunningCoordinator:
    coordinator: Any  # l402tui.coordinator.service.Coordinator
    runner: Any  # aiohttp.web.AppRunner
    url: str | None  # None when the port could not be bound (the service still runs)
    admin_path: Path
    sandbox: str  # the runner evaluations use ("docker", "bwrap" or "local")
    bind_error: str | None = None

    async def close(self) -> None:
        """Stop the server, the worker and the service (the app's cleanup closes the service)."""
        await self.runner.cleanup()


def sandbox_choice(cfg: Config) -> str:
    from l402tui.evaluation.runners import sandbox_status

    _, chosen = sandbox_status(cfg.section("evaluation"))
    return chosen


async def start_coordinator(cfg: Config, *, net: Any = None, evaluate: bool = True,
                            tolerate_bind_error: bool = False, access_log: bool = False) -> RunningCoordinator:
    """Open and start the coordinator with its HTTP API on coordinator.host:port (0 = any free port).

    ``net``: an open SimNetwork to use for the coordinator's node (the demo shares one);
    otherwise the backend comes from config.  With ``tolerate_bind_error`` a port that is
    taken leaves the service running without HTTP instead of failing."""
    from aiohttp import web

    from l402tui.coordinator.admin import ensure_admin_macaroon
    from l402tui.coordinator.app import create_app
    from l402tui.coordinator.service import Coordinator

    backend = None
    if net is not None:
        backend = net.node(cfg.get("lightning.node"))
    coordinator = await Coordinator.open(cfg, backend)
    if coordinator.backend.name == "sim":
        # The embedded network needs this node to exist; a real node simply is.
        await coordinator.backend.net.create_node(coordinator.backend.node_name, 0, exist_ok=True)
    admin_path = await ensure_admin_macaroon(coordinator.store, cfg.data_dir)
    log_options: dict[str, Any] = ({"access_log_format": '%a "%r" %s %b %Tfs'} if access_log
                                   else {"access_log": None})
    runner = web.AppRunner(create_app(coordinator, run_evaluations=evaluate), handle_signals=False,
                           shutdown_timeout=2.0, **log_options)
    await runner.setup()  # starts the service's background work and, with evaluate, the worker
    host, port = cfg.get("coordinator.host"), int(cfg.get("coordinator.port"))
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        if not tolerate_bind_error:
            await runner.cleanup()
            raise
        return RunningCoordinator(coordinator, runner, None, admin_path, sandbox_choice(cfg),
                                  bind_error=f"{host}:{port}: {exc.strerror or exc}")
    sockets = site._server.sockets if site._server else []
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = f"[{host}]" if ":" in host else host
    return RunningCoordinator(coordinator, runner, f"http://{shown}:{bound}", admin_path, sandbox_choice(cfg))
