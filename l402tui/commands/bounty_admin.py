"""`l402tui bounty create|list|show`: publish and inspect bounties on this machine's coordinator.

They open the coordinator's database in the data dir directly (a running
`l402tui serve` on the same data dir sees the changes at once).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Awaitable, Callable

import click

from l402tui.config import Config


def _run(cfg: Config, action: Callable[[Any], Awaitable[Any]]) -> Any:
    from l402tui.coordinator.errors import CoordinatorError
    from l402tui.coordinator.service import Coordinator

    async def go() -> Any:
        coordinator = await Coordinator.open(cfg)
        try:
            return await action(coordinator)
        finally:
            await coordinator.close()

    try:
        return asyncio.run(go())
    except CoordinatorError as exc:
        for problem in exc.details.get("problems", []):
            if problem not in exc.message:  # the message already says it (a single policy breach)
                click.echo(problem, err=True)
        message = exc.message
        if getattr(exc, "code", None) == "unknown_bounty":  # the service speaks to HTTP clients
            message = message.replace("GET /api/v1/bounties lists them", "`l402tui bounty list --all` lists them")
        raise click.ClickException(message) from None


def _sats(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


@click.command(epilog="\b\nExamples:\n  l402tui bounty create --self-funded sample_bounties/logparse\n"
                      "  l402tui bounty create --git https://example.org/b.git --commit <full id> --subdir bounty")
@click.argument("directory", type=click.Path(path_type=Path), required=False)
@click.option("--git", "git_url", metavar="URL", help="Fetch the bounty from this git repository instead of DIRECTORY.")
@click.option("--commit", "git_ref", metavar="ID|TAG", help="With --git: the full commit id (or a tag) to publish.")
@click.option("--subdir", default="", metavar="PATH", help="With --git: the folder inside the repository that "
              "holds bounty.toml (default: the top).")
@click.option("--self-funded", is_flag=True,
              help="You are the sponsor: reserve the pool in the ledger instead of a funding hold invoice.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def create(cfg: Config, directory: Path | None, git_url: str | None, git_ref: str | None, subdir: str,
           self_funded: bool, as_json: bool) -> None:
    """Publish the bounty in DIRECTORY (or --git URL --commit ID): validate, freeze a copy, pack,
    commit the held-out sets.

    A git source is fetched at that exact commit without running anything from the
    repository (no hooks, filters or submodules); the package records the commit.
    Without --self-funded it prints a hold invoice for pool + fee; the bounty opens
    when that payment is held.  The baseline is measured by the evaluation queue.
    """
    source = _source(directory, git_url, git_ref, subdir)

    async def action(coordinator):
        backend = coordinator.backend
        if backend.name == "sim":
            await backend.net.create_node(backend.node_name, 0, exist_ok=True)
        return await coordinator.create_bounty(source, self_funded=self_funded)

    result = _run(cfg, action)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    b = result["bounty"]
    click.echo(f"created {b['id']}  ({b['name']})  status {b['status']}")
    click.echo(f"  package    sha256 {b['package']['sha256']}  {b['package']['size']} bytes")
    if result.get("source"):
        src = result["source"]
        click.echo(f"  source     {src['url']} at commit {src['commit']}" + (f" (folder {src['subdir']})"
                                                                            if src["subdir"] else ""))
    for c in b["heldout_commitments"]:
        click.echo(f"  held-out {c['set']}  commitment {c['commitment']}")
    click.echo(f"  pool       {_sats(b['pool_sats'])} sats, deadline {b['deadline']}")
    click.echo("  baseline   queued for the evaluation queue (runs under `l402tui serve`)")
    if result["funding"]:
        f = result["funding"]
        click.echo(f"  fund it:   pay {_sats(f['amount_sats'])} sats (pool {_sats(f['pool_sats'])} + fee "
                   f"{_sats(f['fee_sats'])}); the payment is held until the first payout:")
        click.echo(f"  {f['invoice']}")


def _source(directory: Path | None, git_url: str | None, git_ref: str | None, subdir: str):
    if git_url is None:
        if directory is None:
            raise click.UsageError("give the bounty folder (DIRECTORY) or --git URL --commit ID")
        if git_ref or subdir:
            raise click.UsageError("--commit and --subdir go with --git")
        return directory
    if directory is not None:
        raise click.UsageError("give either DIRECTORY or --git, not both")
    if not git_ref:
        raise click.UsageError("--git needs --commit: the full commit id (or a tag) to publish")
    from l402tui.bounty.gitsource import GitSource

    return GitSource(git_url, git_ref, subdir)


@click.command("list")
@click.option("--all", "include_all", is_flag=True, help="Include drafts, unfunded and cancelled bounties.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_cmd(cfg: Config, include_all: bool, as_json: bool) -> None:
    """List bounties: id, status, pool and what is left, deadline, name."""
    bounties = _run(cfg, lambda c: c.list_bounties(include_all=include_all))
    if as_json:
        click.echo(json.dumps(bounties, indent=2))
        return
    if not bounties:
        click.echo("no bounties" + ("" if include_all else " open (try --all)"))
        return
    rows = [(b["id"], b["status"], _sats(b["pool_sats"]), _sats(b["pool_left_sats"]), b["deadline"] or "-",
             b["name"]) for b in bounties]
    header = ("ID", "STATUS", "POOL", "LEFT", "DEADLINE", "NAME")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())


@click.command()
@click.argument("bounty_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show(cfg: Config, bounty_id: str, as_json: bool) -> None:
    """Show one bounty: metric, baseline, best, target, pool, deadline, rules, commitments."""

    async def action(coordinator):
        return {"bounty": await coordinator.get_bounty(bounty_id),
                "funding": await coordinator.funding(bounty_id),
                "leaderboard": await coordinator.leaderboard(bounty_id)}

    result = _run(cfg, action)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    b = result["bounty"]
    metric = b["metric"] or {}
    click.echo(f"{b['id']}  {b['name']}  [{b['status']}]")
    if b["description"]:
        click.echo(f"  {b['description']}")
    click.echo(f"  metric     {metric.get('name')} ({metric.get('direction')})")
    base = b["baseline"]
    click.echo(f"  baseline   {base.get('metrics') if base.get('status') == 'measured' else base.get('status')}")
    if b["best"] and b["best"].get("submission_id"):
        click.echo(f"  best       {b['best']['metrics']} by {b['best']['submission_id']}")
    t = b["target"] or {}
    click.echo(f"  target     {t.get('kind')} improvement {t.get('improvement')} (min {t.get('min_improvement')})")
    click.echo(f"  pool       {_sats(b['pool_sats'])} sats, {_sats(b['pool_left_sats'])} left "
               f"({b['funding_mode']}-funded)")
    if result["funding"]:
        click.echo(f"  funding    {result['funding']['status']} ({_sats(result['funding']['amount_sats'])} sats)")
    click.echo(f"  deadline   {b['deadline']}")
    r = b["rules"]
    click.echo(f"  rules      mutable {', '.join(r['mutable'])}; max {r.get('max_changed_lines')} changed lines; "
               f"{r['submissions_per_day']}/day per token; stake {r.get('stake_sats', 0)} sats")
    click.echo(f"  package    {b['package']['sha256']} ({b['package']['price_sats']} sats to download)")
    for c in b["heldout_commitments"]:
        salt = f" salt {c['salt']}" if c["salt"] else ""
        click.echo(f"  held-out {c['set']}  {c['commitment']}{salt}")
    for entry in result["leaderboard"]:
        click.echo(f"  #{entry['rank']}  {entry['submission_id']}  improvement {entry['improvement']:.2%}")
