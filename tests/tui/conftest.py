"""Fixtures for TUI tests: a seeded database, fixed readings, an app factory."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

import pytest

from l402tui.telemetry.gpu import GpuReading, GpuSnapshot
from l402tui.telemetry.host import HostReading
from tests.tui.seed import NOW, seed


class FixedHost:
    """Host readings that do not change, so screenshots are stable."""

    hostname = "rig-1"  # the pane's title names the machine: the same on every checkout

    def read(self) -> HostReading:
        return HostReading(cpu_pct=37.5, cpu_count=2, memory_used_bytes=3 * 2**30,
                           memory_total_bytes=8 * 2**30, load_1m=0.75, load_5m=0.5, load_15m=0.25, taken_at=NOW)


class FixedGpu:
    """A GpuSampler stand-in: one busy GPU, or none (with NVML's reason)."""

    def __init__(self, with_gpu: bool):
        self.with_gpu = with_gpu

    def read(self) -> GpuSnapshot:
        if not self.with_gpu:
            return GpuSnapshot((), "no GPU (no NVIDIA driver found)", NOW)
        return GpuSnapshot((GpuReading(0, "NVIDIA GeForce RTX 4090", 83.0, 18 * 2**30, 24 * 2**30, 71.0,
                                       312.0, 450.0),), None, NOW)

    def close(self) -> None:
        return None


class RecordedAgent:
    """Replays events recorded from a loop run, for screenshots that must not change
    between runs (the real loop drives the panel in test_pilot_agent.py)."""

    description = "b_logparse01 at http://127.0.0.1:8402 · search proposer · wallet agent-1"
    minimize = False

    def __init__(self):
        from l402tui.tui.agent_events import AgentExperiment, AgentLogLine, AgentStateChanged, AgentStep

        runs = [(0.812, "keep", "baseline"), (0.83, "keep", "THRESHOLD 0.5 -> 0.62"),
                (0.82, "discard", "WINDOW 16 -> 9"), (None, "crash", "MODE plain -> regex (exit 1)"),
                (0.845, "keep", "WINDOW 16 -> 24"), (0.861, "keep", "THRESHOLD 0.62 -> 0.71")]
        self.recorded = [AgentStateChanged("running", "logparse · f1 (maximize)", minimize=False)]
        for i, (metric, status, what) in enumerate(runs):
            self.recorded.append(AgentExperiment(f"c0ffee{i}", metric, status, what, NOW - 600 + 100 * i))
        self.recorded += [AgentLogLine("best 0.845 -> 0.861 at c0ffee5"), AgentStep("experiment 7: WINDOW 24 -> 31")]

    async def start(self):
        return None

    async def pause(self):
        return None

    async def stop(self):
        return None

    async def events(self):
        for event in self.recorded:
            yield event
        await asyncio.Event().wait()  # a live loop keeps its stream open


def acting_source(db: Path, *, balance_msat: int = 0, hold_window_s: float = 23 * 60):
    """A source over the seeded rows that can act (as the in-process coordinator can), for the
    dialogs' screenshots: funding reads the real invoice row; creating fails the way the
    coordinator fails, so the dialog's error handling shows."""
    from l402tui.tui.source import ActionResult, FundingRequest, SourceError
    from l402tui.tui.store_source import StoreSource

    class SimWallet:
        can_deposit = True  # as on the simulated network: the dialog offers a deposit

    class ActingSource(StoreSource):
        can_act = True
        created: list = []
        wallet = SimWallet()

        async def hold_window_s(self):
            return hold_window_s

        async def wallet_balances(self):
            return {"coordinator": self.balance, "agent": 0}

        async def wallet_state(self):
            from l402tui.tui.source import WalletState

            return WalletState(await self.wallet_balances(), hold_window_s, backend="sim", node="coordinator",
                               can_deposit=True, can_invoice=True, agent_need_msat=26_000)

        async def deposit(self, amount_msat: int, wallet: str = "coordinator") -> ActionResult:
            self.balance += amount_msat
            return ActionResult(f"deposited {amount_msat // 1000:,} sat")

        async def fund_bounty(self, bounty_id: str) -> FundingRequest:
            row = await self.store.fetchone("SELECT i.bolt11, i.amount_msat FROM bounties b JOIN invoices i "
                                            "ON i.payment_hash = b.funding_payment_hash WHERE b.id = ?", [bounty_id])
            return FundingRequest(bounty_id, "hold", row["amount_msat"], row["bolt11"])

        async def create_bounty(self, path: Path, self_funded: bool = False) -> ActionResult:
            if not self_funded:
                raise SourceError("create: the deadline is 7d 0h away, beyond the 23m a funding hold invoice can "
                                  "safely be held (HTLC expiry)")
            self.created.append(path)
            return ActionResult(f"created {path.name}: OPEN")

    async def factory():
        source = await ActingSource.open(db, poll_s=0.05, description="in-process · seeded.sqlite · sim")
        source.balance = balance_msat
        return source

    return factory


@pytest.fixture
def seeded_db(tmp_path) -> Path:
    db = tmp_path / "data" / "l402tui.sqlite"
    seed(db, tmp_path / "data" / "logs")
    return db


@pytest.fixture
def make_app(tmp_path):
    """Build an L402App over a StoreSource for ``db`` with fixed clock and readings."""
    from l402tui.tui.app import L402App
    from l402tui.tui.store_source import StoreSource

    def build(db: Path, *, theme: str = "l402-dark", with_gpu: bool = False, source=None, acting: bool = False,
              balance_msat: int = 0, **kw) -> L402App:
        async def factory():
            if acting:
                return await acting_source(db, balance_msat=balance_msat)()
            return source if source is not None else await StoreSource.open(db, poll_s=0.05, description="read-only: seeded.sqlite")

        kw.setdefault("telemetry_interval_s", 3600.0)  # one reading: sparklines do not grow mid-test
        kw.setdefault("log_poll_s", 0.05)
        kw.setdefault("reload_delay_s", 0.05)
        return L402App(factory, theme=theme, gpu=FixedGpu(with_gpu), host=FixedHost(), clock=lambda: NOW,
                       export_dir=tmp_path / "exports", **kw)

    return build


async def wait_for(pilot, condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Let the app run until ``condition()`` holds (workers report back asynchronously)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def loaded(app) -> bool:
    """Every table and the eval log have been filled from the source."""
    from l402tui.tui.widgets.eval_log_pane import EvalLogPane

    try:
        tables_ok = all(app.main_screen.query_one(f"#{t}-table").records for t in
                        ("bounties", "submissions", "ledger"))
        log = app.main_screen.query_one(EvalLogPane)
        side = app.main_screen.query_one("#side")
        telemetry = not side.display or app.main_screen.query_one("#telemetry").host is not None
        view = log.view
        settled = not view.follow or view.scroll_y == view.max_scroll_y  # following: at the end
        return tables_ok and len(view.lines) > 0 and settled and telemetry
    except Exception:
        return False
