"""The ``l402tui`` command.  Subcommands live in ``l402tui/commands/`` and are
imported only when used, so ``l402tui --help`` and the TUI start fast.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from pathlib import Path

import click

from l402tui.config import ConfigError, load_config

# name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "tui": ("l402tui.commands.tui:tui", "Open the terminal UI (the default)."),
    "demo": ("l402tui.commands.demo:demo", "A sponsor, two agents and a coordinator on a simulated network."),
    "serve": ("l402tui.commands.serve:serve", "Run the coordinator headless (HTTP API + L402)."),
    "agent": ("l402tui.commands.agent:agent", "Run the autoresearch agent loop against a coordinator."),
    "bounty": ("l402tui.commands.bounty:bounty", "Validate, try, audit, create and inspect bounties."),
    "wallet": ("l402tui.commands.wallet:wallet", "Lightning wallet: balance, invoices, payments, ledger."),
    "sandbox": ("l402tui.commands.sandbox:sandbox", "Evaluation sandboxes: status and setup."),
    "config": ("l402tui.commands.config:config", "Show the effective configuration."),
    "backup": ("l402tui.commands.backup:backup", "Copy the databases and keys, consistently, into a folder."),
    "sponsor": ("l402tui.commands.sponsor:sponsor", "Sponsors who are not the operator: invite, list, remove, post."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        target, _ = SUBCOMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return _unavailable(name)
            raise
        return getattr(module, attr)

    def invoke(self, ctx: click.Context):
        """Every subcommand runs here: a file the OS refuses (a data dir that is a file or
        not writable, a full disk, a missing output folder) and Ctrl-C end in one line, not
        a traceback.  Whatever was written before stays written: each change is its own
        SQLite transaction."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            ctx.exit(130)
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # `l402tui ... | head`: click ends it quietly
                raise
            raise click.ClickException(_os_error_line(exc, ctx.obj)) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _os_error_line(exc: OSError, cfg: object) -> str:
    """``exc`` as one line that names the path and, when it lies in the data dir, the way out."""
    what = exc.strerror or str(exc)
    path = exc.filename
    line = f"{path}: {what}" if path else what
    data_dir = getattr(cfg, "data_dir", None)
    if path and data_dir is not None:
        inside = Path(os.path.abspath(os.fsdecode(path)))
        root = Path(os.path.abspath(data_dir))
        if inside == root or root in inside.parents or inside in root.parents:
            line += (f" (the data dir is {data_dir}: it must be a directory this user can write; "
                     "pass --data-dir DIR or set [paths] data_dir)")
    return line


def _unavailable(name: str) -> click.Command:
    @click.command(name, help="Not available in this build.")
    def missing() -> None:
        raise click.ClickException(f"'l402tui {name}' is not available in this build yet")

    return missing


@click.group(cls=LazyGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Config file (default: $XDG_CONFIG_HOME/l402tui/config.toml, or $L402TUI_CONFIG).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the database, packages and logs live (default: $XDG_DATA_HOME/l402tui).")
@click.option("--attach", metavar="URL", help="Open the TUI against a running `l402tui serve` at URL.")
@click.option("--admin-macaroon", type=click.Path(dir_okay=False, path_type=Path),
              help="Admin macaroon file for --attach (default: the daemon's data dir).")
@click.option("--sponsor-macaroon", type=click.Path(dir_okay=False, path_type=Path),
              help="Attach as a sponsor with this credential file: only your bounties, no operator actions.")
@click.version_option(package_name="l402tui")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, data_dir: Path | None,
         attach: str | None, admin_macaroon: Path | None, sponsor_macaroon: Path | None = None) -> None:
    """Autoresearch bounties paid over Lightning, coordinated from your terminal.

    Run with no command to open the TUI with a coordinator in-process.
    Try `l402tui demo` for a self-contained tour on a simulated Lightning network.

    Settings come from defaults < config file < L402TUI_SECTION__KEY env vars < flags;
    `l402tui config show` prints each value and where it came from.
    """
    umask = os.umask(0o077)
    os.umask(umask | 0o077)  # all this command and its children create is private (store/privacy.py)
    ctx.call_on_close(lambda: os.umask(umask))  # an in-process caller (a test's CliRunner) gets its own back
    try:
        cfg = load_config(config_path)
        cfg = cfg.with_overrides({"paths.data_dir": str(data_dir) if data_dir else None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    ctx.obj = cfg
    ctx.meta["attach"] = attach
    ctx.meta["admin_macaroon"] = admin_macaroon
    ctx.meta["sponsor_macaroon"] = sponsor_macaroon
    if ctx.invoked_subcommand is None:
        ctx.invoke(LazyGroup.get_command(main, ctx, "tui"))  # type: ignore[arg-type]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
