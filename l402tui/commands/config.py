"""`l402tui config show`: the effective configuration and where each value came from."""

from __future__ import annotations

import json

import click

from l402tui.config import Config


@click.group()
def config() -> None:
    """Inspect the effective configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def show(cfg: Config, as_json: bool) -> None:
    """Print every setting, its value and its source (default, file, env or cli)."""
    rows = cfg.rows()
    if as_json:
        click.echo(json.dumps({k: {"value": v, "source": s} for k, v, s in rows}, indent=2, default=str))
        return
    click.echo(f"config file: {cfg.config_path}{'' if cfg.config_path.exists() else ' (not present)'}")
    click.echo(f"data dir:    {cfg.data_dir}")
    click.echo("precedence:  default < file < env (L402TUI_SECTION__KEY) < cli flag\n")
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        click.echo(f"{key:<{width}}  {value!r:<28}  {source}")
