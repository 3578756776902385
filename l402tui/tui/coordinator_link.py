"""Opening the TUI's data source: the coordinator in-process, or a daemon over HTTP.

Both run inside the TUI's event loop, after the first frame is on screen (the
heavy imports — aiohttp, the coordinator, the Lightning backend — are done in a
thread so the UI keeps drawing meanwhile).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from l402tui.config import Config
from l402tui.store.lean_imports import preload
from l402tui.tui.source import SourceError

HEAVY_MODULES = ("aiohttp.web", "l402tui.coordinator.service", "l402tui.coordinator.app",
                 "l402tui.coordinator.admin", "l402tui.tui.store_source", "l402tui.tui.api_source",
                 "l402tui.tui.loop_thread")


def _port_taken(host: str, port: int) -> bool:
    if port == 0:
        return False
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


async def open_in_process(cfg: Config):
    """Start the coordinator (with its HTTP API and evaluation worker) in this process,
    on its own event loop in a thread so nothing it does can stall the screen.

    If a coordinator already listens on the configured port (`l402tui serve`), a
    second one on the same database would race it: show the data read-only instead
    and say how to attach."""
    await asyncio.to_thread(preload, *HEAVY_MODULES)
    from l402tui.coordinator.runtime import CoordinatorBusy
    from l402tui.tui.api_source import ApiSource
    from l402tui.tui.loop_thread import LoopThread, ThreadedProxy
    from l402tui.tui.store_source import StoreSource

    host, port = cfg.get("coordinator.host"), int(cfg.get("coordinator.port"))
    if _port_taken(host, port):
        return await StoreSource.open(cfg.db_path, description=(
            f"read-only: a coordinator already listens on {host}:{port}; "
            f"use `l402tui --attach http://{host}:{port}` to act"))

    thread = LoopThread("coordinator")
    try:
        coordinator, runner, where, url = await thread.run(_start_coordinator(cfg))
    except CoordinatorBusy as exc:  # a coordinator on another port (a `serve --port`) holds this data dir
        thread.stop()
        return await StoreSource.open(cfg.db_path, description=f"read-only: {exc}")
    except BaseException:
        thread.stop()
        raise
    local = await StoreSource.open(cfg.db_path)  # the TUI's own connection, on the TUI's loop

    async def reviewer(submission_id: str, confirmed: bool, note: str) -> None:
        await thread.run(coordinator.review(submission_id, "gaming" if confirmed else "accept", note))

    async def shut_down() -> None:
        await local.close()
        try:
            await thread.run(runner.cleanup())  # stops the worker and the coordinator, and closes it
        finally:
            thread.stop()

    return ApiSource(ThreadedProxy(coordinator, thread), description=where, store_source=local,
                     reviewer=reviewer, on_close=shut_down, http_url=url,
                     wallet=CoordinatorWallet(coordinator, thread, cfg))


class CoordinatorWallet:
    """The in-process coordinator's Lightning node, as the TUI's wallet screen and Create
    dialog need it: balances, the hold window, invoices, and deposits on the simulated network."""

    def __init__(self, coordinator, thread, cfg: Config):
        self._coordinator = coordinator
        self._thread = thread
        self._cfg = cfg
        self.hold_window_s = float(coordinator.safe_hold_window_s())
        self.can_deposit = coordinator.backend.name == "sim"

    async def balances(self) -> dict[str, int | None]:
        return (await self.state()).balances

    async def state(self):
        from l402tui.coordinator.operator_reads import wallet_state
        from l402tui.tui.source import WalletState

        backend = self._coordinator.backend
        # The same figures GET /api/v1/admin/wallet serves when attached.
        view = await self._thread.run(wallet_state(backend, self.hold_window_s))
        balances: dict[str, int | None] = {"coordinator": view["balance_msat"]}
        if self.can_deposit:  # the agent's wallet lives on the same simulated network
            nodes = {n.name: n.balance_msat for n in await self._thread.run(backend.net.nodes())}
            balances["agent"] = nodes.get(self._cfg.get("agent.node"), 0)  # no node yet: nothing in it
        return WalletState(balances, self.hold_window_s, backend=view["backend"], node=view["alias"],
                           can_deposit=self.can_deposit, can_invoice=True,
                           agent_need_msat=1000 * (int(self._cfg.get("prices.download_sats"))
                                                   + int(self._cfg.get("prices.submit_sats"))))

    async def deposit(self, amount_msat: int, wallet: str = "coordinator") -> int:
        backend = self._coordinator.backend
        node = backend.node_name if wallet == "coordinator" else self._cfg.get("agent.node")
        if wallet != "coordinator":  # the agent's node may not exist before its first run
            await self._thread.run(backend.net.create_node(node, 0, exist_ok=True))
        return await self._thread.run(backend.net.deposit(node, amount_msat))

    async def invoice(self, amount_msat: int) -> str:
        from l402tui.coordinator.operator_reads import deposit_invoice

        return (await self._thread.run(deposit_invoice(self._coordinator.backend, amount_msat)))["bolt11"]


async def _start_coordinator(cfg: Config):
    from l402tui.coordinator.runtime import start_coordinator

    # A port someone else holds (`l402tui serve`?) leaves the coordinator running without HTTP.
    running = await start_coordinator(cfg, tolerate_bind_error=True)
    name = running.coordinator.backend.name
    if running.url:
        where = f"in-process · {running.url} · {name}"
    else:
        where = f"in-process · no HTTP ({running.bind_error}) · {name}"
    return running.coordinator, running.runner, where, running.url


async def open_attached(url: str, admin_macaroon: Path | None, cfg: Config, *, sponsor_macaroon: Path | None = None):
    """A daemon started with `l402tui serve`, through its admin API and event stream (or, with
    ``sponsor_macaroon``, through its sponsor API: that sponsor's bounties only, no agent panel)."""
    if sponsor_macaroon is not None:
        return await _open_as_sponsor(url, sponsor_macaroon)
    await asyncio.to_thread(preload, "l402tui.coordinator.client", "l402tui.tui.api_source")
    from l402tui.coordinator.client import HttpCoordinatorClient
    from l402tui.tui.api_source import ApiSource

    path = admin_macaroon or cfg.data_dir / "admin.macaroon"
    try:
        client = HttpCoordinatorClient(url, macaroon_path=path)
    except OSError as exc:
        raise SourceError(f"cannot read the admin macaroon {path}: {exc.strerror or exc}; "
                          "pass --admin-macaroon with the path `l402tui serve` printed") from None
    source = ApiSource(client, description=f"attached · {url}", on_close=client.close, http_url=url)
    try:
        await source.list_bounties()  # fail now, with the reason, rather than on the first pane
    except SourceError:
        await client.close()
        raise
    return source


async def _open_as_sponsor(url: str, credential: Path):
    await asyncio.to_thread(preload, "l402tui.coordinator.sponsor_client", "l402tui.tui.api_source")
    from l402tui.coordinator.sponsor_client import SponsorClient
    from l402tui.tui.api_source import ApiSource

    try:
        client = SponsorClient(url, credential_path=credential)
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read the sponsor credential {credential}: {exc}") from None
    try:
        me = await client.whoami()  # fail now, with the reason, rather than on the first pane
    except Exception as exc:  # noqa: BLE001 - refused, unreachable: one readable line
        await client.close()
        raise SourceError(f"sponsor credential refused by {url}: {exc}") from None
    # No http_url: the side panel's agent is not a sponsor's to run against this coordinator.
    return ApiSource(client, description=f"sponsor {me['sponsor_id']} · {url}", on_close=client.close)
