"""`l402tui bounty try` and `l402tui bounty audit`: evaluate a bounty folder locally.

Both use the same harness and sandboxes as the coordinator, so what a sponsor sees
here is what submissions will get.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from l402tui.commands.bounty import _heldout_index, _load_or_exit

SANDBOX_CHOICES = click.Choice(["auto", "docker", "bwrap", "local"])


def _sandbox(ctx: click.Context, kind: str | None, image: str | None):
    from l402tui.evaluation.runners import image_for, pick_sandbox
    from l402tui.evaluation.sandbox import SandboxUnavailable

    settings = dict(ctx.obj.section("evaluation")) if ctx.obj is not None else {"sandbox": "auto"}
    if kind:
        settings["sandbox"] = kind
    try:
        return pick_sandbox(settings, image=image_for(image, settings)), settings
    except SandboxUnavailable as exc:
        raise click.ClickException(f"sandbox {settings['sandbox']}: {exc}") from None


@click.command("try", epilog="\b\nExample:\n  l402tui bounty try sample_bounties/logparse --diff faster.patch "
                              "--repeats 1")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--diff", "diff_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A unified diff against target/ to evaluate against the baseline.")
@click.option("--set", "eval_set", type=click.Choice(["public", "heldout"]), default="heldout", show_default=True,
              help="Score on the public data agents see, or a secret held-out set as the coordinator does.")
@click.option("--heldout-index", default=0, show_default=True, help="Which held-out set (0 = the first in [files] heldout).")
@click.option("--sandbox", "kind", type=SANDBOX_CHOICES, help="Runner (default: evaluation.sandbox).")
@click.option("--repeats", type=int, help="Repeats (default: the bounty's [noise] repeats).")
@click.option("--quiet", is_flag=True, help="Do not stream the run's output.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def try_cmd(ctx: click.Context, directory: Path, diff_file: Path | None, eval_set: str, heldout_index: int,
            kind: str | None, repeats: int | None, quiet: bool, as_json: bool) -> None:
    """Evaluate DIRECTORY's baseline (and a diff) exactly as the coordinator would."""
    from l402tui.evaluation import antigaming, harness, scoring

    spec = _load_or_exit(directory)
    heldout_index = _heldout_index(spec, heldout_index, "--heldout-index")
    sandbox, settings = _sandbox(ctx, kind, spec.image)
    diff = diff_file.read_text(encoding="utf-8") if diff_file else None
    if diff is not None:
        reasons = harness.check_diff(spec, diff)
        if reasons:
            for reason in reasons:
                click.echo(f"refused: {reason}", err=True)
            sys.exit(1)
    log = None if quiet or as_json else (lambda line: click.echo(line, err=True))
    click.echo(f"sandbox: {sandbox.kind}" + ("" if sandbox.isolated else " (NO ISOLATION)"), err=True)

    async def go():
        base = await harness.evaluate(spec, None, eval_set=eval_set, heldout_index=heldout_index, sandbox=sandbox,
                                      repeats=repeats, log=log, log_cap_bytes=int(settings["log_cap_bytes"]))
        cand = None
        if diff is not None and base.ok:
            # `bounty try` is the operator's own tool: their diff, their machine.
            cand = await harness.evaluate(spec, diff, eval_set=eval_set, heldout_index=heldout_index,
                                          sandbox=sandbox, repeats=repeats, log=log, allow_unsandboxed=True,
                                          log_cap_bytes=int(settings["log_cap_bytes"]))
        return base, cand

    base, cand = asyncio.run(go())
    out: dict = {"baseline": base.to_json()}
    if cand is not None:
        out["candidate"] = cand.to_json()
        if cand.ok:
            v = scoring.verdict(spec, cand.medians, baseline_medians=base.medians, baseline_spreads=base.spreads)
            out["verdict"] = v.to_json()
            flag = antigaming.canary_flag(r.metrics for r in cand.runs) if eval_set == "heldout" else None
            out["flags"] = [flag.to_json()] if flag else []
    if as_json:
        click.echo(json.dumps(out, indent=2, sort_keys=True))
    else:
        _print_result("baseline", base)
        if cand is not None:
            _print_result("candidate", cand)
        if "verdict" in out:
            v = out["verdict"]
            state = "ACCEPTED" if v["accepted"] else "REJECTED"
            click.echo(f"verdict: {state}, improvement {v['improvement']:.2%} (needs > {v['threshold']:.2%}), "
                       f"payout {v['payout_fraction']:.0%} of the pool")
            for reason in v["reasons"]:
                click.echo(f"  - {reason}")
            for flag in out["flags"]:
                click.echo(f"  FLAGGED: {flag['reason']}")
    if not base.ok or (cand is not None and not cand.ok):
        sys.exit(1)


def _print_result(label: str, result) -> None:
    if not result.ok:
        click.echo(f"{label}: {result.status.upper()}: " + "; ".join(result.reasons))
        return
    cells = ", ".join(f"{k} {v:.6g} ±{result.spreads.get(k, 0):.2g}" for k, v in sorted(result.medians.items()))
    click.echo(f"{label} ({len(result.runs)} repeats, {result.sandbox}): {cells}")


@click.command(epilog="\b\nExample:\n  l402tui bounty audit sample_bounties/logparse --only network,read_labels")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--sandbox", "kind", type=SANDBOX_CHOICES, help="Runner (default: evaluation.sandbox).")
@click.option("--time-limit", type=float, help="Cap the run phase's time limit (seconds) to audit faster.")
@click.option("--baseline-repeats", type=int, help="Repeats for the baseline (default: the bounty's).")
@click.option("--honest", "honest_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also check that this honest improvement (a diff) is accepted.")
@click.option("--only", help="Comma-separated attack names to run (default: all).")
@click.option("--ignore-patterns", is_flag=True,
              help="Drop the bounty's forbidden_patterns to test what the sandbox alone contains.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def audit(ctx: click.Context, directory: Path, kind: str | None, time_limit: float | None,
          baseline_repeats: int | None, honest_file: Path | None, only: str | None, ignore_patterns: bool,
          as_json: bool) -> None:
    """Attack DIRECTORY's own evaluation with standard gaming tricks; exit 1 if any succeeds.

    Each attack is a real diff evaluated in the sandbox: hard-coded canaries, reading
    labels, leaking data into logs, editing the scorer or tests, writing outside the
    work dir, network, fork bomb, memory hog, endless loop, a broken speed-up and a
    cache across runs.  Results: contained, flagged or VULNERABLE.
    """
    from l402tui.evaluation.attacks import ATTACKS
    from l402tui.evaluation.audit import audit_bounty

    spec = _load_or_exit(directory)
    sandbox, settings = _sandbox(ctx, kind, spec.image)
    names = {a.name for a in ATTACKS}
    chosen = {n.strip() for n in only.split(",")} if only else None
    if chosen and chosen - names:
        raise click.BadParameter(f"unknown attack(s) {', '.join(sorted(chosen - names))}; known: "
                                 + ", ".join(a.name for a in ATTACKS), param_hint="--only")
    honest = honest_file.read_text(encoding="utf-8") if honest_file else None
    if not sandbox.isolated:
        click.echo("warning: the local runner has no isolation; the audit shows what an attacker could do here",
                   err=True)
    progress = None if as_json else (lambda msg: click.echo(msg, err=True))
    report = asyncio.run(audit_bounty(spec, sandbox=sandbox, time_limit_s=time_limit,
                                      baseline_repeats=baseline_repeats, honest_diff=honest,
                                      allow_unsandboxed=True, only=chosen, progress=progress,
                                      ignore_patterns=ignore_patterns))
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.table())
    if report.vulnerable:
        sys.exit(1)
