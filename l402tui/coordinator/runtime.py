"""Starting a complete coordinator in this process: service, HTTP app (L402 gate,
admin API, events), evaluation worker, admin macaroon.  `l402tui serve`, the TUI's
in-process mode and the demo all start it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l402tui.config import Config


# How often the coordinator's invoice stream looks at the simulated network's file for
# payments made by other processes.  Payers in this process (the demo's agents, tests)
# wake it at once; the sim's own default of 20 ms cost 2-3 % of a core in an idle TUI.
SIM_POLL_S = 0.25


@dataclass
class RunningCoordinator:
    coordinator: Any  # l402tui.coordinator.service.Coordinator
    runner: Any  # aiohttp.web.AppRunner
    url: str | None  # None when the port could not be bound (the service still runs)
    admin_path: Path
    cfg: Config
    bind_error: str | None = None
    _sandbox: str | None = field(default=None, repr=False)

    @property
    def sandbox(self) -> str:
        """The runner evaluations use ("docker", "bwrap" or "local").  Found on first use:
        asking costs the docker SDK's import and an engine ping, which the TUI never needs."""
        if self._sandbox is None:
            self._sandbox = sandbox_choice(self.cfg)
        return self._sandbox

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
    from l402tui.coordinator.http_common import HEADER_TIMEOUT_S, ConnectionCap, quiet_bad_request_logs
    from l402tui.coordinator.service import Coordinator

    backend = None
    if net is not None:
        backend = net.node(cfg.get("lightning.node"))
    coordinator = await Coordinator.open(cfg, backend)
    try:
        if coordinator.backend.name == "sim":
            # The embedded network needs this node to exist; a real node simply is.
            await coordinator.backend.net.create_node(coordinator.backend.node_name, 0, exist_ok=True)
            coordinator.backend.net.poll_interval_s = max(coordinator.backend.net.poll_interval_s, SIM_POLL_S)
        admin_path = await ensure_admin_macaroon(coordinator.store, cfg.data_dir)
    except BaseException:
        # A refusal before the app owns the coordinator (a damaged token master key, say):
        # close the database threads, or the process could not exit.
        await coordinator.close()
        raise
    log_options: dict[str, Any] = ({"access_log_format": '%a "%r" %s %b %Tfs'} if access_log
                                   else {"access_log": None})
    runner = web.AppRunner(create_app(coordinator, run_evaluations=evaluate), handle_signals=False,
                           shutdown_timeout=2.0, keepalive_timeout=HEADER_TIMEOUT_S, **log_options)
    await runner.setup()  # starts the service's background work and, with evaluate, the worker
    ConnectionCap().install(runner.server)
    quiet_bad_request_logs()
    host, port = cfg.get("coordinator.host"), int(cfg.get("coordinator.port"))
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        if not tolerate_bind_error:
            await runner.cleanup()
            raise
        return RunningCoordinator(coordinator, runner, None, admin_path, cfg,
                                  bind_error=f"{host}:{port}: {exc.strerror or exc}")
    except BaseException:
        # Whatever else stops the start (a bad address, a signal): release the database
        # and the worker, so nothing holds them after we are gone.
        await runner.cleanup()
        raise
    sockets = site._server.sockets if site._server else []
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = f"[{host}]" if ":" in host else host
    return RunningCoordinator(coordinator, runner, f"http://{shown}:{bound}", admin_path, cfg)
