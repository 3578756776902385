"""`l402tui bounty ...`: validate, pack, verify-commitment (plus create/list/show/try/audit)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from l402tui.commands.lazy import lazy_group

from l402tui.bounty import BountyInvalid, load_bounty
from l402tui.bounty.commitment import commit, verify
from l402tui.bounty.package import PackagingError, build_package

EXIT_INVALID = 2


# Subcommands that need heavier packages are defined in their own modules and loaded
# only when invoked: name -> "module:attribute".
LAZY = {
    "try": "l402tui.commands.bounty_eval:try_cmd",
    "audit": "l402tui.commands.bounty_eval:audit",
    "create": "l402tui.commands.bounty_admin:create",
    "list": "l402tui.commands.bounty_admin:list_cmd",
    "show": "l402tui.commands.bounty_admin:show",
}


_BountyGroup = lazy_group("l402tui bounty", LAZY)


@click.group(cls=_BountyGroup)
def bounty() -> None:
    """Work with bounty folders (each holds a bounty.toml; see docs/bounty-format.md).

    validate, pack, commit, try and audit work on a folder and need no coordinator;
    create, list and show use the coordinator database in the data dir.

    \b
    Start here:
      l402tui bounty validate sample_bounties/logparse
      l402tui bounty try sample_bounties/logparse --repeats 1
      l402tui bounty create --self-funded sample_bounties/logparse
    """


def _load_or_exit(directory: Path):
    try:
        return load_bounty(directory)
    except BountyInvalid as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        n = len(exc.problems)
        click.echo(f"{n} problem{'s' if n != 1 else ''} found", err=True)
        sys.exit(EXIT_INVALID)


def _heldout_index(spec, index: int, option: str) -> int:
    """A held-out set the bounty has: 0 .. n-1 (the coordinator rotates past the end; a
    person asking for set 5 of 2 means a mistake, not set 1)."""
    n = len(spec.heldout_dirs)
    if not 0 <= index < n:
        sets = ", ".join(f"{i} ({d})" for i, d in enumerate(spec.heldout_dirs))
        raise click.BadParameter(f"{index}: {spec.name} has {n} held-out set(s): {sets}", param_hint=option)
    return index


@bounty.command(epilog="\b\nExample:\n  l402tui bounty validate sample_bounties/logparse")
@click.argument("directory", type=click.Path(path_type=Path))
def validate(directory: Path) -> None:
    """Check DIRECTORY/bounty.toml and report every problem at once (exit 2 if any)."""
    from l402tui.bounty.validation import validate_folder_sync

    report = validate_folder_sync(directory)
    if not report.ok:
        for problem in report.problems:
            click.echo(problem, err=True)
        n = len(report.problems)
        click.echo(f"{n} problem{'s' if n != 1 else ''} found", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(f"{report.name}: valid")
    for note in report.notes:
        click.echo(f"  {note}")


@bounty.command(epilog="\b\nExample:\n  l402tui bounty pack sample_bounties/logparse -o logparse.tar.gz")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the tarball here (default: print only its sha256).")
def pack(directory: Path, output: Path | None) -> None:
    """Build the deterministic package agents download and print its sha256."""
    spec = _load_or_exit(directory)
    try:
        package = build_package(spec)
    except PackagingError as exc:
        raise click.ClickException(str(exc)) from None
    if output:
        output.write_bytes(package.data)
    click.echo(f"{package.sha256}  {output or '(not written)'}  {package.size} bytes, {len(package.files)} files")


@bounty.command("commit")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--set", "set_index", default=0, show_default=True, help="Which held-out set (index).")
def commit_cmd(directory: Path, set_index: int) -> None:
    """Print a fresh held-out commitment (salt and hash) for DIRECTORY as JSON."""
    spec = _load_or_exit(directory)
    set_index = _heldout_index(spec, set_index, "--set")
    c = commit(spec.heldout_path(set_index), spec.heldout_dirs[set_index])
    click.echo(json.dumps({"set": c.set_name, "salt": c.salt_hex, "commitment": c.commitment_hex,
                           "files": len(c.manifest)}, indent=2))


@bounty.command("verify-commitment")
@click.argument("heldout_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--salt", required=True, help="The revealed salt (hex).")
@click.option("--commitment", "commitment_hex", required=True, help="The published commitment (hex).")
def verify_commitment(heldout_dir: Path, salt: str, commitment_hex: str) -> None:
    """Check that HELDOUT_DIR matches a published commitment once its salt is revealed."""
    try:
        result = verify(heldout_dir, salt, commitment_hex)
    except ValueError:
        raise click.BadParameter(f"{salt!r} is not hex (the salt `bounty show` prints once revealed)",
                                 param_hint="--salt") from None
    if result.ok:
        click.echo(f"OK: {heldout_dir} matches commitment {commitment_hex}")
        return
    click.echo(f"MISMATCH: {heldout_dir} hashes to {result.actual}, the commitment is {commitment_hex}", err=True)
    sys.exit(1)
