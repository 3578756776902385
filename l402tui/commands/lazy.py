"""Click groups whose subcommands live in other modules and load only when invoked,
so `--help` and unrelated commands stay fast and heavy imports happen on use."""

from __future__ import annotations

import importlib

import click


def lazy_group(prefix: str, lazy: dict[str, str]) -> type[click.Group]:
    """A click.Group class adding ``lazy`` ({name: "module:attribute"}) to its own commands.

    A subcommand whose module is absent answers with a clear error instead of vanishing."""

    class LazySubcommands(click.Group):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return sorted(set(super().list_commands(ctx)) | set(lazy))

        def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
            if name not in lazy:
                return super().get_command(ctx, name)
            module_name, attr = lazy[name].split(":")
            try:
                return getattr(importlib.import_module(module_name), attr)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise

                @click.command(name, help="Not available in this build.")
                def missing() -> None:
                    raise click.ClickException(f"'{prefix} {name}' is not available in this build yet")

                return missing

    return LazySubcommands
