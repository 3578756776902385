"""`l402tui sandbox status|setup`: which runner evaluations use, and making docker work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

SETUP_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "docker-setup.sh"


@click.group()
def sandbox() -> None:
    """Evaluation sandboxes: docker, bubblewrap (bwrap), local."""


@sandbox.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show every runner, whether it works here and why, and which one is in use."""
    from l402tui.evaluation.runners import sandbox_status

    settings = ctx.obj.section("evaluation") if ctx.obj is not None else {"sandbox": "auto"}
    statuses, chosen = sandbox_status(settings)
    if as_json:
        click.echo(json.dumps({"chosen": chosen, "setting": settings.get("sandbox", "auto"),
                               "runners": [s.__dict__ for s in statuses]}, indent=2))
    else:
        for s in statuses:
            mark = "*" if s.kind == chosen else " "
            state = "ok" if s.available else "unavailable"
            click.echo(f"{mark} {s.kind:<7} {state:<12} {s.detail}")
        setting = settings.get("sandbox", "auto")
        click.echo(f"\nevaluations use: {chosen} (evaluation.sandbox = {setting})")
        picked = next((s for s in statuses if s.kind == chosen), None)
        if picked is not None and not picked.available:
            click.echo(f"WARNING: {chosen} was chosen in the config but is unavailable: {picked.detail}")
        if chosen == "local":
            click.echo("WARNING: no isolating sandbox: untrusted submissions are "
                       + ("run WITHOUT isolation (evaluation.allow_unsandboxed = true)"
                          if settings.get("allow_unsandboxed") else "refused"))
    statuses_by_kind = {s.kind: s for s in statuses}
    if not statuses_by_kind[chosen].available:
        sys.exit(1)


@sandbox.command()
@click.option("--image", help="Image name to build (default: evaluation.docker_image).")
@click.pass_context
def setup(ctx: click.Context, image: str | None) -> None:
    """Install and start docker if needed and build the base image offline (about a minute)."""
    image = image or (ctx.obj.get("evaluation.docker_image") if ctx.obj is not None else None)
    if not SETUP_SCRIPT.exists():
        raise click.ClickException(f"{SETUP_SCRIPT} is missing from this installation")
    env = None
    if image:
        import os

        env = {**os.environ, "L402TUI_EVALUATION__DOCKER_IMAGE": image}
    # The script reports its own progress on stderr, line by line.
    proc = subprocess.run(["bash", str(SETUP_SCRIPT)], env=env)
    if proc.returncode != 0:
        raise click.ClickException("docker setup failed (see the messages above); bubblewrap still works "
                                   "if installed: `l402tui sandbox status`")
    click.echo("docker sandbox ready")
