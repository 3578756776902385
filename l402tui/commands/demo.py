"""`l402tui demo`: one command, one process, no setup."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from l402tui.config import Config


@click.command()
@click.option("--headless", is_flag=True,
              help="Tell the story as plain log lines and end with a summary (for SSH and CI).")
@click.option("--data-dir", "demo_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the demo keeps its database and sim network (default: <data dir>/demo; "
                   "it is wiped at start).")
@click.option("--timeout", "timeout_s", default=600.0, show_default=True,
              help="Headless: give up (exit 1) if the story has not completed after this many seconds.")
@click.option("--holdback", "holdback_s", default=60.0, show_default=True,
              help="Seconds before the 20 % holdback's stability check.")
@click.pass_obj
def demo(cfg: Config, headless: bool, demo_dir: Path | None, timeout_s: float, holdback_s: float) -> None:
    """A sponsor funds the sample bounties, two agents pay L402 fees, improve them with
    the built-in search proposer and submit; the coordinator evaluates in a sandbox,
    pays 80 % and, after the holdback, releases the rest — all on an embedded simulated
    Lightning network, in a few minutes (about four on two cores).

    Headless, it ends with a summary: when each step happened, each node's balance
    before and after (in sats; Lightning counts in thousandths, hence the decimals),
    every bounty and every submission with what it was paid.
    """
    from l402tui.demo.world import DemoError, prepare

    try:
        plan = prepare(cfg, demo_dir or cfg.data_dir / "demo", holdback_s=holdback_s)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    if headless:
        from l402tui.demo.headless import run_headless

        try:
            code = asyncio.run(run_headless(plan, timeout_s=timeout_s))
        except KeyboardInterrupt:
            click.echo("\ninterrupted: the demo stopped; `l402tui demo` starts it afresh", err=True)
            code = 130
        sys.exit(code)
    from l402tui.demo.interactive import run_interactive

    sys.exit(run_interactive(plan))
