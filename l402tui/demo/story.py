"""The demo's actors — a sponsor and two agents — and the narration of what happens.

The actors are ordinary clients: the sponsor posts and funds bounties through the
coordinator's admin API and pays the funding hold invoice from its own sim node; each
agent pays L402 fees, downloads, runs the autoresearch loop with the built-in search
proposer, submits and claims, exactly as `l402tui agent` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from l402tui.config import Config
from l402tui.demo.world import AGENT_CAST, CAST, SPONSOR, Actor, DemoPlan

Say = Callable[[str], None]


@dataclass
class Milestones:
    """What a viewer should see, with the seconds since start when it first happened."""

    started: float = field(default_factory=time.monotonic)
    seen: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def mark(self, name: str) -> None:
        if name not in self.seen:
            self.seen[name] = time.monotonic() - self.started
            self.changed.set()

    def has(self, *names: str) -> bool:
        return all(n in self.seen for n in names)


REQUIRED = ("funded", "fee_paid", "experiment", "evaluated", "payout", "holdback_released")
# What each milestone means to a viewer (the TUI's summary screen says these).
MILESTONE_SENTENCES = {
    "funded": "bounties funded (hold invoices accepted)",
    "fee_paid": "first L402 fee paid",
    "experiment": "first experiment finished",
    "evaluated": "first submission evaluated",
    "payout": "first payout (80 %)",
    "holdback_released": "first holdback released (stability check)",
    "holdback_paid": "holdback paid to the agent",
}


@dataclass
class StorySummary:
    """The end of the story in figures: when each milestone came, each node's balance
    before and after, and where the bounties and submissions ended up."""

    milestones: list[tuple[str, str, float | None]]  # (name, sentence, seconds after start or None)
    balances: list[tuple[str, int, int]]  # (node, msat before, msat after)
    bounties: list[dict[str, Any]] = field(default_factory=list)  # id, name, status, pool_left_sats, submissions
    submissions: list[dict[str, Any]] = field(default_factory=list)  # id, bounty_id, status, paid_msat
    problem: str = ""  # why bounties or submissions could not be read, if so


async def collect_summary(admin, before: dict[str, int], after: dict[str, int], marks: Milestones) -> StorySummary:
    """Read the summary from the coordinator's admin API (best effort: a failed read is said, not raised)."""
    summary = StorySummary(
        milestones=[(name, MILESTONE_SENTENCES[name], marks.seen.get(name)) for name in (*REQUIRED, "holdback_paid")],
        balances=[(node, before[node], after.get(node, before[node])) for node in before])
    try:
        bounties = await admin.list_bounties(include_all=True)
        subs = await admin.list_submissions()
        for s in subs:
            detail = await admin.submission_detail(s["id"])
            payments = (detail.get("payouts") or {}).get("payments", [])
            summary.submissions.append({
                "id": s["id"], "bounty_id": s["bounty_id"], "status": s["status"],
                "paid_msat": sum(p["amount_msat"] for p in payments if p.get("status") == "COMPLETE")})
    except Exception as exc:  # noqa: BLE001 - the summary is best effort near shutdown
        summary.problem = f"could not read bounties and submissions: {exc}"
        return summary
    for b in bounties:
        summary.bounties.append({"id": b["id"], "name": b.get("name", b["id"]), "status": b["status"],
                                 "pool_left_sats": b.get("pool_left_sats", 0),
                                 "submissions": sum(1 for s in subs if s["bounty_id"] == b["id"])})
    return summary


def _sats(msat: Any) -> str:
    return f"{int(msat or 0) // 1000:,} sats"


def describe_event(event: dict[str, Any], names: dict[str, str], marks: Milestones) -> str | None:
    """One plain line for a coordinator event a viewer cares about (None for the rest)."""
    kind = event.get("kind", "")
    subject = event.get("subject_id") or ""
    p = event.get("payload") or {}
    name = names.get(subject, subject)
    if kind == "bounty.created":
        names[subject] = p.get("name", subject)
        return f"sponsor posted bounty “{p.get('name')}” ({subject}), pool {p.get('pool_sats', 0):,} sats"
    if kind == "bounty.status":
        status = p.get("status") or p.get("to")
        if status == "AWAITING_FUNDING":
            return f"{name}: funding hold invoice issued for {p.get('amount_sats', '?'):,} sats (pool + fee)"
        if status == "OPEN":
            marks.mark("funded")
            return f"{name}: OPEN — the sponsor's payment is held in escrow (hold invoice ACCEPTED)"
        return f"{name}: {status}"
    if kind == "bounty.baseline":
        return f"{name}: baseline measured on the held-out set ({_metrics(p)})"
    if kind == "l402.token_minted":
        return None
    if kind == "invoice.status" and p.get("invoice_kind") == "l402" and p.get("status") == "SETTLED":
        marks.mark("fee_paid")
        bounty = names.get(p.get("bounty_id") or "", p.get("bounty_id") or "a bounty")
        return f"L402 fee paid: {_sats(p.get('amount_msat'))} for {bounty}"
    if kind == "submission.status":
        status = p.get("status") or p.get("to")
        if status in ("ACCEPTED", "REJECTED", "FLAGGED"):
            marks.mark("evaluated")
            why = "; ".join(p.get("reasons") or []) if isinstance(p.get("reasons"), list) else (p.get("reasons") or "")
            extra = f" — {why}" if why else ""
            return f"submission {subject}: {status}{extra}"
        if status in ("QUEUED", "EVALUATING"):
            return f"submission {subject}: {status.lower()}"
        return None
    if kind == "payout.allocated":
        return (f"payout for {subject}: {_sats(p.get('now_msat'))} now (80 %), "
                f"{_sats(p.get('holdback_msat'))} held back for the stability check")
    if kind == "funding.settled":
        return f"{name}: funding hold settled at the first payout; the coordinator now holds the rest of the pool"
    if kind == "payment.complete":
        if p.get("purpose") == "payout":
            marks.mark("payout")
        if p.get("purpose") == "holdback":
            marks.mark("holdback_paid")
        return f"paid {_sats(p.get('amount_msat'))} ({p.get('purpose')}) for {p.get('submission_id') or subject}"
    if kind == "payment.awaiting_claim":
        return f"{_sats(p.get('amount_msat'))} ({p.get('purpose')}) waits for the agent's claim invoice"
    if kind == "holdback.evaluating":
        return f"stability check for {subject}: re-evaluating on a rotated held-out set"
    if kind == "holdback.released":
        marks.mark("holdback_released")
        return f"holdback released for {subject}: {p.get('reason') or 'the improvement held'}"
    if kind == "holdback.forfeited":
        marks.mark("holdback_forfeited")
        return f"holdback forfeited for {subject}: {p.get('reason', '')}"
    if kind == "evaluation.failed":
        return f"evaluation failed for {subject}: {p.get('error', '')}"
    return None


def _metrics(payload: dict[str, Any]) -> str:
    metrics = payload.get("metrics") or {}
    shown = [f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)) and k != "files_scored"]
    return ", ".join(shown[:4]) or "pending"


def describe_agent_event(agent: str, event: Any, marks: Milestones) -> str | None:
    from l402tui.agent import events as ev

    if isinstance(event, ev.LoopStarted):
        return f"{agent}: loop started on {event.bounty} ({event.metric_name}, {event.direction})"
    if isinstance(event, ev.ExperimentFinished):
        marks.mark("experiment")
        metric = "crash" if event.metric is None else f"{event.metric:.4g}"
        return f"{agent}: experiment {event.number} {event.status:<7} {metric:>9}  {event.description}"
    if isinstance(event, ev.BestImproved):
        return f"{agent}: new best {event.metric:.4g} (was {event.previous if event.previous is None else f'{event.previous:.4g}'})"
    if isinstance(event, ev.SubmissionSent):
        marks.mark("submitted")
        return f"{agent}: submitted {event.submission_id} (public {event.public_metric:.4g}; spent {event.paid_sats} sats so far)"
    if isinstance(event, ev.VerdictReceived):
        return f"{agent}: verdict {event.status} for {event.submission_id}"
    if isinstance(event, ev.PayoutClaimed):
        if event.purpose == "holdback":
            marks.mark("holdback_claimed")
        return f"{agent}: claimed {_sats(event.amount_msat)} ({event.purpose}, {event.status})"
    if isinstance(event, ev.RemoteProblem):
        return f"{agent}: coordinator problem: {event.message}"
    return None


async def wait_for_coordinator(url: str, admin_path: Path, timeout_s: float = 60.0):
    """An admin client once the coordinator answers (it may still be starting)."""
    from l402tui.coordinator.client import HttpCoordinatorClient
    from l402tui.errors import L402TuiError

    deadline = time.monotonic() + timeout_s
    last = "not started"
    while time.monotonic() < deadline:
        if admin_path.is_file():
            client = HttpCoordinatorClient(url, macaroon_path=admin_path)
            try:
                await client.list_bounties()
                return client
            except L402TuiError as exc:  # not up yet (Unreachable), or still starting
                last = str(exc)
                await client.close()
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the coordinator at {url} did not come up within {timeout_s:.0f} s: {last}")


async def sponsor_posts_and_funds(admin, net, bounty_dirs: tuple[Path, ...], say: Say) -> list[str]:
    """Create each bounty (hold-funded) and pay its funding invoice from the sponsor's node."""
    sponsor = net.node(SPONSOR)
    ids = []
    for folder in bounty_dirs:
        created = await admin.create_bounty(str(folder))
        bounty_id = created["bounty"]["id"]
        ids.append(bounty_id)
        funding = created.get("funding") or await admin.funding(bounty_id)
        payment = await sponsor.pay(funding["invoice"])
        say(f"sponsor paid the funding hold invoice for {bounty_id} ({funding['amount_sats']:,} sats): "
            f"payment {payment.state.value} (held)")
    for bounty_id in ids:  # the coordinator opens each once it sees the held payment
        deadline = time.monotonic() + 30
        while (await admin.get_bounty(bounty_id))["status"] != "OPEN":
            if time.monotonic() > deadline:
                raise RuntimeError(f"bounty {bounty_id} did not open within 30 s of its funding payment")
            await asyncio.sleep(0.2)
    return ids


async def run_agent(cfg: Config, net, url: str, actor: Actor, bounty_id: str, stop: asyncio.Event,
                    say: Say, marks: Milestones) -> None:
    from l402tui.agent.remote import CoordinatorClient
    from l402tui.agent.search import SearchProposer
    from l402tui.agent.session import AgentSession

    name = actor.name
    workdir = cfg.data_dir / "agents" / name
    def on_event(event: Any) -> None:
        line = describe_agent_event(name, event, marks)
        if line:
            say(line)

    async with CoordinatorClient(url, net.node(name), spend_cap_sats=int(cfg.get("agent.spend_cap_sats"))) as client:
        # These agents wait for the coordinator's held-out baseline before working: it is
        # what their submissions will be judged against (and measuring it on a quiet
        # machine keeps its noise, and so the acceptance bar, honest).
        while not (await client.bounty(bounty_id)).baseline:
            if stop.is_set():
                return
            await asyncio.sleep(0.5)
        say(f"{name}: the baseline of {bounty_id} is published; starting work")
        session = AgentSession(client, bounty_id, workdir, SearchProposer(seed=actor.seed), on_event=on_event,
                               poll_s=0.5)
        await session.run(stop=stop, settle_timeout_s=5)


async def follow_coordinator(admin, say: Say, marks: Milestones, stop: asyncio.Event) -> None:
    names: dict[str, str] = {}
    async for event in admin.follow_events(0):
        line = describe_event(event, names, marks)
        if line:
            say(line)
        if stop.is_set():
            return


async def balances(net) -> dict[str, int]:
    out = {}
    for actor in sorted(CAST, key=lambda a: a.role != "sponsor"):  # the sponsor first, then the cast's order
        out[actor.name] = (await net.node(actor.name).status()).balance_msat
    return out


class Performance:
    """The demo's story, the same in both modes: once the coordinator at ``plan.url``
    answers, its events are narrated, the sponsor posts and funds the plan's bounties, and
    each agent of the cast works on one of them until ``stop`` is set."""

    def __init__(self, plan: DemoPlan, net, say: Say, marks: Milestones, stop: asyncio.Event):
        self.plan, self.net, self.say, self.marks, self.stop = plan, net, say, marks, stop
        self.admin = None
        self.tasks: list[asyncio.Task] = []

    async def begin(self, *, wait_s: float = 60.0) -> list[str]:
        """Start the narration and the agents; the ids of the bounties posted."""
        cfg = self.plan.cfg
        self.admin = await wait_for_coordinator(self.plan.url, cfg.data_dir / "admin.macaroon", timeout_s=wait_s)
        self.tasks.append(asyncio.create_task(follow_coordinator(self.admin, self.say, self.marks, self.stop)))
        ids = await sponsor_posts_and_funds(self.admin, self.net, self.plan.bounty_dirs, self.say)
        for actor, bounty_id in zip(AGENT_CAST, ids):
            self.tasks.append(asyncio.create_task(
                run_agent(cfg, self.net, self.plan.url, actor, bounty_id, self.stop, self.say, self.marks)))
        return ids

    def failure(self) -> BaseException | None:
        """The first actor that stopped with an error, if any."""
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                return task.exception()
        return None

    async def until_complete(self, give_up: Callable[[], bool]) -> bool:
        """Wait for every required milestone (True), or until ``give_up()`` says so (False),
        checking at least once a second; an actor's failure is raised (and so told)."""
        while not self.marks.has(*REQUIRED):
            if give_up():
                return False
            failure = self.failure()
            if failure is not None:
                raise failure
            self.marks.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.marks.changed.wait(), 1.0)
        return True

    async def end_actors(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.end_actors()
        if self.admin is not None:
            await self.admin.close()
