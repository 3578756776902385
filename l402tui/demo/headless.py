"""`l402tui demo --headless`: the whole story as plain log lines, then a summary table.

One process: the coordinator (HTTP API, L402 gate, evaluation worker, payouts) runs
on this event loop beside the sponsor and two agents, all on the simulated network.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import Callable

from l402tui.demo import story
from l402tui.demo.world import AGENTS, DemoPlan, open_network


def _stamp(started: float) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", flush=True)

    return say


async def run_headless(plan: DemoPlan, *, timeout_s: float, print_summary: bool = True) -> int:
    """Run until a payout and its holdback release are seen (exit 0) or the timeout (exit 1)."""
    from l402tui.coordinator.runtime import start_coordinator

    started = time.monotonic()
    say = _stamp(started)
    cfg = plan.cfg
    marks = story.Milestones()
    net = await open_network(cfg)
    before = await story.balances(net)
    say(f"simulated Lightning network ready: sponsor {before['sponsor'] // 1000:,} sats, "
        + ", ".join(f"{a} {before[a] // 1000:,} sats" for a in AGENTS))
    running = await start_coordinator(cfg, net=net)
    say(f"coordinator listening on {running.url} (sandbox: {running.sandbox}, lightning: sim)")
    show = story.Performance(dataclasses.replace(plan, url=running.url), net, say, marks, asyncio.Event())
    code = 1
    try:
        await show.begin()
        deadline = time.monotonic() + timeout_s
        if await show.until_complete(lambda: time.monotonic() > deadline):
            code = 0
            say("the story is complete: funded, fees paid, experiments, evaluated, paid 80 %, holdback released")
        else:
            missing = [m for m in story.REQUIRED if m not in marks.seen]
            say(f"timed out after {timeout_s:.0f} s before: {', '.join(missing)}")
        # Give the agent a moment to claim what was just released.
        if code == 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(_until(lambda: "holdback_paid" in marks.seen), 30)
    finally:
        await show.end_actors()
        after = await story.balances(net)
        summary = await _summary(show.admin, before, after, marks) if show.admin else ""
        await show.close()
        await running.close()
        await net.close()
    if print_summary and summary:
        print(summary, flush=True)
    return code


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.2)


async def _summary(admin, before: dict[str, int], after: dict[str, int], marks: story.Milestones) -> str:
    lines = ["", "summary", "-------", "milestones (seconds after start):"]
    for name in (*story.REQUIRED, "holdback_paid"):
        at = marks.seen.get(name)
        lines.append(f"  {name:<20} {'—' if at is None else f'{at:6.1f}'}")
    lines.append("")
    lines.append(f"  {'node':<12} {'before (sats)':>14} {'after (sats)':>14} {'change (sats)':>14}")
    for node in before:
        delta = (after[node] - before[node]) / 1000
        lines.append(f"  {node:<12} {before[node] / 1000:>14,.3f} {after[node] / 1000:>14,.3f} {delta:>+14,.3f}")
    try:
        bounties = await admin.list_bounties(include_all=True)
        subs = await admin.list_submissions()
    except Exception as exc:  # noqa: BLE001 - the summary is best effort after shutdown
        lines.append(f"(could not read bounties: {exc})")
        return "\n".join(lines)
    per_bounty: dict[str, int] = {}
    for s in subs:
        per_bounty[s["bounty_id"]] = per_bounty.get(s["bounty_id"], 0) + 1
    lines.append("")
    lines.append(f"  {'bounty':<26} {'status':<17} {'pool left (sats)':>16} {'submissions':>11}")
    for b in bounties:
        lines.append(f"  {b['id']:<26} {b['status']:<17} {b.get('pool_left_sats', 0):>16,} "
                     f"{per_bounty.get(b['id'], 0):>11}")
    lines.append("")
    lines.append(f"  {'submission':<26} {'bounty':<18} {'status':<19} {'paid (sats)':>12}")
    for s in subs:
        detail = await admin.submission_detail(s["id"])
        payments = (detail.get("payouts") or {}).get("payments", [])
        paid = sum(p["amount_msat"] for p in payments if p.get("status") == "COMPLETE")
        lines.append(f"  {s['id']:<26} {s['bounty_id']:<18} {s['status']:<19} {paid / 1000:>12,.3f}")
    return "\n".join(lines)
