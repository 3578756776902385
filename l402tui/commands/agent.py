"""`l402tui agent`: the autoresearch loop, headless, with one progress line per experiment.

Offline: ``l402tui agent --local sample_bounties/logparse`` runs the loop on a bounty
folder.  Against a coordinator: ``l402tui agent --coordinator URL [--bounty ID]`` pays
for the package, runs the loop, submits good commits and claims payouts.  Ctrl-C stops
cleanly: the work tree goes back to the last kept commit and a rerun resumes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click

from l402tui.config import Config

TEMPLATES_HELP = "claude, codex, aider, or a command line using {prompt}, {program}, {files}, {workdir}"


def _cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a CPU list; write e.g. 0-1 or 2,3") from None
    return cpus


def _format(event, metric_name: str = "metric") -> str | None:
    from l402tui.agent import events as ev

    if isinstance(event, ev.LoopStarted):
        what = "resumed" if event.resumed else "started"
        best = "?" if event.best_metric is None else f"{event.best_metric:.6f}"
        return (f"{what} {event.bounty} on branch {event.branch} in {event.work_tree}: "
                f"{event.experiments_done} experiment(s) so far, best {event.metric_name} {best} "
                f"({event.direction})")
    if isinstance(event, ev.ExperimentFinished):
        metric = "   crash  " if event.metric is None else f"{event.metric:.6f}"
        return (f"#{event.number:<4} {event.status:<7} {metric}  {event.commit}  {event.duration_s:5.1f}s  "
                f"{event.description}  [{event.reason}]")
    if isinstance(event, ev.LoopProgress):
        best = "?" if event.best_metric is None else f"{event.best_metric:.6f}"
        return (f"      {event.experiments} experiments, {event.kept} kept, {event.crashed} crashed, "
                f"{event.per_hour:.0f}/h, best {best}")
    if isinstance(event, ev.SubmissionSent):
        return (f"submitted {event.commit} as {event.submission_id} (public {event.public_metric:.6f}); "
                f"{event.paid_sats} sats spent on the coordinator")
    if isinstance(event, ev.VerdictReceived):
        gain = "" if event.improvement is None else f", improvement {event.improvement:.2%}"
        reasons = f": {'; '.join(event.reasons)}" if event.reasons else ""
        return f"verdict for {event.submission_id}: {event.status}{gain}{reasons}"
    if isinstance(event, ev.PayoutClaimed):
        return f"claimed {event.amount_msat // 1000} sats ({event.purpose}) for {event.submission_id}: {event.status}"
    if isinstance(event, ev.RemoteProblem):
        return f"coordinator: {event.message} (will retry)"
    if isinstance(event, ev.LoopStopped):
        return f"stopped: {event.reason} after {event.experiments} experiment(s)"
    return None


def _printer(quiet: bool):
    from l402tui.agent.events import ExperimentStarted, LoopProgress

    def on_event(event) -> None:
        if isinstance(event, ExperimentStarted) or (quiet and isinstance(event, LoopProgress)):
            return
        line = _format(event)
        if line:
            click.echo(line)
            sys.stdout.flush()

    return on_event


def _proposer(kind: str, command_line: str | None, seed: int, strategy: str, timeout_s: float):
    if kind == "search":
        from l402tui.agent.search import SearchProposer

        return SearchProposer(seed=seed, strategy=strategy)
    from l402tui.agent.proposers import CommandProposer

    if not command_line:
        raise click.UsageError(f"--proposer command needs --command ({TEMPLATES_HELP})")
    try:
        return CommandProposer.from_command_line(command_line, timeout_s=timeout_s)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _evaluator(kind: str, parallel: int = 0):
    from l402tui.agent.public_eval import HarnessEvaluator
    from l402tui.evaluation.runners import make_sandbox
    from l402tui.evaluation.sandbox import SandboxUnavailable

    try:
        return HarnessEvaluator(make_sandbox(kind), parallel=parallel)
    except SandboxUnavailable as exc:
        raise click.ClickException(f"sandbox {kind!r} is not usable here: {exc}") from None


def _agents_dir(cfg: Config) -> Path:
    raw = cfg.get("agent.workdir")
    return Path(raw).expanduser() if raw else cfg.data_dir / "agents"


@click.command(epilog="\b\nExamples:\n"
                      "  l402tui agent --local sample_bounties/logparse --max-experiments 5\n"
                      "  l402tui agent --coordinator http://127.0.0.1:8402 --minutes 30\n"
                      "  l402tui agent --coordinator http://127.0.0.1:8402 --proposer command --command claude")
@click.option("--coordinator", "coordinator_url", metavar="URL", help="Coordinator to work for, e.g. http://127.0.0.1:8402.")
@click.option("--bounty", "bounty_id", metavar="ID", help="Bounty id (default: the first OPEN one with pool left).")
@click.option("--local", "local_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run offline on a bounty folder (no coordinator, no payments).")
@click.option("--proposer", type=click.Choice(["search", "command"]), default=None,
              help="search: built-in, mutates `# search:` marks; command: a coding-agent CLI (default: agent.proposer).")
@click.option("--command", "command_line", metavar="CMD", help=f"For --proposer command: {TEMPLATES_HELP}.")
@click.option("--proposer-timeout", type=float, default=900.0, show_default=True,
              help="Seconds a command proposer may take per experiment.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the search proposer.")
@click.option("--strategy", type=click.Choice(["hill", "random"]), default="hill", show_default=True,
              help="Search proposer: hill changes one or two marks around the best so far; random "
                   "samples every mark afresh.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="The git work tree (default: <agent.workdir or data dir>/agents/<bounty>). Rerun to resume.")
@click.option("--max-experiments", type=int, help="Stop after this many experiments (default: never stop).")
@click.option("--minutes", type=float, help="Stop after this many minutes (default: never stop).")
@click.option("--repeats", type=int, help="Repeats per evaluation (default: the bounty's [noise] repeats).")
@click.option("--experiment-timeout", type=float, help="Run-phase seconds per experiment before it is a crash.")
@click.option("--sandbox", type=click.Choice(["local", "bwrap", "docker", "auto"]), default=None,
              help="Where candidates are scored (default: agent.sandbox, i.e. local: your own code).")
@click.option("--node", help="Sim wallet node to pay from and be paid to (default: agent.node).")
@click.option("--cpus", "cpu_list", metavar="LIST", help="Pin this agent and its evaluations to CPUs, e.g. 0-1.")
@click.option("--gpu", "gpu_index", metavar="INDEX", help="Expose only this GPU to evaluations (CUDA_VISIBLE_DEVICES).")
@click.option("-q", "--quiet", is_flag=True, help="One line per experiment, no progress lines.")
@click.pass_obj
def agent(cfg: Config, coordinator_url: str | None, bounty_id: str | None, local_dir: Path | None,
          proposer: str | None, command_line: str | None, proposer_timeout: float, seed: int, strategy: str,
          workdir: Path | None, max_experiments: int | None, minutes: float | None, repeats: int | None,
          experiment_timeout: float | None, sandbox: str | None, node: str | None, cpu_list: str | None,
          gpu_index: str | None, quiet: bool) -> None:
    """Run the autoresearch loop: propose, evaluate on the public set, keep or reset, log to results.tsv."""
    if bool(coordinator_url) == bool(local_dir):
        raise click.UsageError("give either --coordinator URL or --local BOUNTY_DIR")
    if cpu_list:
        os.sched_setaffinity(0, _cpu_list(cpu_list))  # inherited by every evaluation it starts
    if gpu_index is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_index
    from l402tui.agent.loop import LoopSettings

    chosen = _proposer(proposer or cfg.get("agent.proposer"), command_line, seed, strategy, proposer_timeout)
    evaluator = _evaluator(sandbox or cfg.get("agent.sandbox"), int(cfg.get("agent.parallel_repeats") or 0))
    settings = LoopSettings(repeats=repeats, experiment_timeout_s=experiment_timeout)
    deadline_s = minutes * 60 if minutes else None
    on_event = _printer(quiet)
    if local_dir:
        job = _run_local(cfg, local_dir, workdir, chosen, evaluator, settings, on_event, max_experiments, deadline_s)
    else:
        job = _run_remote(cfg, coordinator_url, bounty_id, workdir, chosen, evaluator, settings, on_event,
                          max_experiments, deadline_s, node or cfg.get("agent.node"))
    try:
        asyncio.run(job)
    except KeyboardInterrupt:
        click.echo("interrupted: the work tree is back on its last kept commit; run the same command to resume")
        sys.exit(130)


async def _run_local(cfg, local_dir, workdir, proposer, evaluator, settings, on_event, max_experiments, deadline_s):
    from l402tui.agent.loop import ExperimentLoop, LoopError
    from l402tui.agent.workspace import Workspace, WorkspaceError
    from l402tui.bounty import BountyInvalid, load_bounty
    from l402tui.bounty.package import PackagingError, build_package

    try:
        spec = load_bounty(local_dir)
        package = build_package(spec)
    except BountyInvalid as exc:
        raise click.ClickException(f"{local_dir} is not a valid bounty:\n{exc}") from None
    except PackagingError as exc:
        raise click.ClickException(str(exc)) from None
    root = workdir or _agents_dir(cfg) / f"{spec.name}-local"
    try:
        ws = await asyncio.to_thread(Workspace.open_or_create, root, package.data, branch=f"l402tui/{spec.name}",
                                     description=f"{spec.name} package {package.sha256[:12]}")
    except WorkspaceError as exc:
        raise click.ClickException(str(exc)) from None
    if package.sha256[:12] not in ws.repo.commit(ws.baseline).message:
        raise click.ClickException(f"{root} was made from another version of {spec.name} (its baseline is "
                                   f"{ws.repo.commit(ws.baseline).message.strip()!r}); pass a new --workdir")
    loop = ExperimentLoop(ws, proposer, evaluator, settings=settings, on_event=on_event)
    try:
        summary = await loop.run(max_experiments, deadline_s=deadline_s)
    except (LoopError, WorkspaceError) as exc:
        raise click.ClickException(str(exc)) from None
    _print_summary(summary, ws.results_path)


async def _run_remote(cfg, url, bounty_id, workdir, proposer, evaluator, settings, on_event, max_experiments,
                      deadline_s, node):
    from l402tui.agent.loop import LoopError
    from l402tui.agent.remote import CoordinatorClient, RemoteError
    from l402tui.agent.session import AgentSession
    from l402tui.agent.workspace import WorkspaceError
    from l402tui.lightning import LightningError, make_backend

    wallet = make_backend(cfg, node=node)
    try:
        async with CoordinatorClient(url, wallet, spend_cap_sats=int(cfg.get("agent.spend_cap_sats"))) as client:
            if not bounty_id:
                chosen = await client.first_open_bounty()
                bounty_id = chosen.id
                click.echo(f"working on {bounty_id} ({chosen.name}), {chosen.pool_left_sats} sats left")
            root = workdir or _agents_dir(cfg) / bounty_id
            session = AgentSession(client, bounty_id, root, proposer, evaluator=evaluator, settings=settings,
                                   on_event=on_event)
            summary = await session.run(max_experiments, deadline_s=deadline_s)
            _print_summary(summary, session.ws.results_path)
            claimed = sum(r.claimed_msat for r in session.records)
            click.echo(f"{client.spent_sats} sats spent on the coordinator, {claimed // 1000} sats claimed")
    except (RemoteError, LoopError, LightningError, WorkspaceError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        await wallet.close()


def _print_summary(summary, results_path: Path) -> None:
    if summary.baseline_metric is not None and summary.best_metric is not None:
        click.echo(f"baseline {summary.baseline_metric:.6f} -> best {summary.best_metric:.6f}; "
                   f"{summary.experiments} experiment(s) this run, {summary.kept} kept; log: {results_path}")
