"""End to end over loopback: a real coordinator (HTTP, L402, evaluation worker, payouts) on
the simulated Lightning network; the agent pays, downloads, improves, submits, is accepted
and claims its payout, and its wallet moves by exactly what it was paid minus what it spent."""

import asyncio

import pytest
from aiohttp.test_utils import TestServer

from agent_fixtures import make_bounty
from l402tui.agent.events import PayoutClaimed, SubmissionSent, VerdictReceived
from l402tui.agent.remote import CoordinatorClient, RemoteError
from l402tui.agent.search import SearchProposer
from l402tui.agent.session import AgentSession
from l402tui.config import load_config

pytestmark = pytest.mark.slow


@pytest.fixture
def cfg(tmp_path, request):
    overrides = {"paths.data_dir": str(tmp_path / "data"), "evaluation.sandbox": "local",
                 "evaluation.allow_unsandboxed": True}
    holdback_s = getattr(request, "param", None)  # indirect parametrization: a short holdback
    if holdback_s is not None:
        overrides["coordinator.holdback_seconds"] = holdback_s
    return load_config(tmp_path / "none.toml", env={}).with_overrides(overrides)


@pytest.fixture
async def world(cfg, tmp_path):
    from l402tui.coordinator.app import create_app
    from l402tui.coordinator.service import Coordinator
    from l402tui.evaluation.worker import run_worker
    from l402tui.lightning.sim import SimNetwork
    from l402tui.store import Store

    net = SimNetwork.from_config(cfg)
    # Self-funded: the operator's own node holds the pool (10 000 sats) it pays out from.
    await net.create_node("coordinator", 20_000_000, exist_ok=True)
    await net.create_node("agent-1", 100_000_000, exist_ok=True)
    store = await Store.open(cfg.db_path)
    coordinator = Coordinator(cfg, store, net.node("coordinator"))
    coordinator.tick_s = 0.05
    server = TestServer(create_app(coordinator, manage_lifecycle=False), host="127.0.0.1")
    await coordinator.start()
    await server.start_server()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(store, cfg, stop=stop))
    bounty = await coordinator.create_bounty(make_bounty(tmp_path / "sponsor"), self_funded=True)
    yield {"url": str(server.make_url("")).rstrip("/"), "net": net, "coordinator": coordinator,
           "bounty_id": bounty["bounty"]["id"]}
    stop.set()
    await asyncio.wait_for(worker, 30)
    await server.close()
    await coordinator.stop()
    await store.close()
    await net.close()


async def test_agent_pays_improves_submits_is_accepted_and_claims(world, tmp_path):
    wallet = world["net"].node("agent-1")
    before = (await wallet.status()).balance_msat
    events = []
    async with CoordinatorClient(world["url"], wallet, spend_cap_sats=200) as client:
        session = AgentSession(client, world["bounty_id"], tmp_path / "agent-ws", SearchProposer(seed=5),
                               on_event=events.append, poll_s=0.1)
        summary = await session.run(max_experiments=6, settle_timeout_s=60)
        spent_msat = client.http.spent_msat
    after = (await wallet.status()).balance_msat

    assert summary.kept >= 1 and summary.best_metric < summary.baseline_metric
    sent = [e for e in events if isinstance(e, SubmissionSent)]
    verdicts = [e for e in events if isinstance(e, VerdictReceived)]
    claims = [e for e in events if isinstance(e, PayoutClaimed)]
    assert sent and verdicts[0].status == "ACCEPTED", verdicts
    assert claims and {c.purpose for c in claims} == {"payout"}  # the 20 % holdback waits for stability
    claimed = sum(c.amount_msat for c in claims)
    # What the coordinator says it paid this submission, to the msat.
    view = await world["coordinator"].submission(sent[0].submission_id)
    paid_rows = [p for p in view["payouts"]["payments"] if p["status"] == "COMPLETE"]
    assert sum(p["amount_msat"] for p in paid_rows) == claimed > 0
    # 21 sats download + 5 sats per submission, plus routing fees, all within the cap.
    assert spent_msat >= (21 + 5 * len(sent)) * 1000
    assert after - before == claimed - spent_msat
    assert session.records[0].claimed_msat == claimed
    # The work tree holds the package and the kept history; results.tsv the experiments.
    assert (tmp_path / "agent-ws" / "results.tsv").read_text().startswith("commit\tmetric")


async def test_spending_cap_below_the_price_stops_before_paying(world, tmp_path):
    wallet = world["net"].node("agent-1")
    before = (await wallet.status()).balance_msat
    async with CoordinatorClient(world["url"], wallet, spend_cap_sats=10) as client:
        session = AgentSession(client, world["bounty_id"], tmp_path / "ws", SearchProposer())
        with pytest.raises(RemoteError, match="exceed the spending cap of 10 sats"):
            await session.open()
    assert (await wallet.status()).balance_msat == before
    assert not (tmp_path / "ws").exists()


async def test_the_cli_works_for_a_coordinator_in_another_process(world, cfg, tmp_path):
    """`l402tui agent --coordinator URL` as a real subprocess, paying from the same sim network."""
    import sys

    wallet = world["net"].node("agent-1")
    before = (await wallet.status()).balance_msat
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "l402tui.cli", "--data-dir", str(cfg.data_dir), "agent", "--coordinator", world["url"],
        "--max-experiments", "4", "--workdir", str(tmp_path / "cli-ws"), "--seed", "5", "-q",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode()
    assert proc.returncode == 0, text
    assert f"working on {world['bounty_id']}" in text
    assert "verdict for" in text and "ACCEPTED" in text and "claimed" in text
    claimed_sats = int(text.rsplit("sats spent on the coordinator, ", 1)[1].split(" sats claimed")[0])
    spent_sats = int(text.rsplit(" sats spent on the coordinator", 1)[0].rsplit("\n", 1)[1])
    assert claimed_sats > 0 and spent_sats >= 26
    assert (await wallet.status()).balance_msat > before


async def test_a_package_that_does_not_match_its_published_hash_is_refused(world):
    async with CoordinatorClient(world["url"], world["net"].node("agent-1"), spend_cap_sats=100) as client:
        listed = await client.bounty(world["bounty_id"])
        assert listed.status == "OPEN" and len(listed.package_sha256) == 64
        with pytest.raises(RemoteError, match="but the coordinator published 0+; not using it"):
            await client.download(world["bounty_id"], "0" * 64)


async def test_an_unreachable_coordinator_says_so(cfg):
    from l402tui.lightning.sim import SimNetwork

    net = SimNetwork.from_config(cfg)
    try:
        async with CoordinatorClient("http://127.0.0.1:9", net.node("agent-1"), spend_cap_sats=1) as client:
            with pytest.raises(RemoteError, match=r"cannot reach http://127.0.0.1:9 .*is `l402tui serve` running"):
                await client.bounties()
    finally:
        await net.close()


@pytest.mark.parametrize("cfg", [2], indirect=True)
async def test_a_running_agent_claims_its_holdback_once_the_stability_check_releases_it(world, tmp_path):
    wallet = world["net"].node("agent-1")
    events = []
    stop = asyncio.Event()

    def on_event(event):
        events.append(event)
        if isinstance(event, PayoutClaimed) and event.purpose == "holdback":
            stop.set()

    async with CoordinatorClient(world["url"], wallet, spend_cap_sats=200) as client:
        session = AgentSession(client, world["bounty_id"], tmp_path / "ws", SearchProposer(seed=5),
                               on_event=on_event, poll_s=0.1)
        run = asyncio.create_task(session.run(stop=stop, settle_timeout_s=5))
        await asyncio.wait_for(stop.wait(), 90)
        await asyncio.wait_for(run, 30)
    claims = [e for e in events if isinstance(e, PayoutClaimed)]
    assert [c.purpose for c in claims] == ["payout", "holdback"]
    view = await world["coordinator"].submission(claims[0].submission_id)
    assert view["status"] == "PAID_FULL"
    split = view["payouts"]
    paid = {p["purpose"]: p["amount_msat"] for p in split["payments"] if p["status"] == "COMPLETE"}
    assert paid == {c.purpose: c.amount_msat for c in claims}
    assert paid["holdback"] * 4 == pytest.approx(paid["payout"], abs=4)  # 80 / 20
