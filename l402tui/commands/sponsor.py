"""`l402tui sponsor invite|list|remove|post|status`: sponsors who are not the operator.

``invite``, ``list`` and ``remove`` are the operator's: they open this machine's
coordinator database (a running `l402tui serve` on the same data dir sees the change at
once).  ``post`` and ``status`` are the sponsor's: they talk to a coordinator over HTTP
with the sponsor credential (docs/sponsors.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import click

from l402tui.config import Config


def _with_store(cfg: Config, action: Callable[[Any], Awaitable[Any]]) -> Any:
    from l402tui.l402.rootkeys import MasterKeyError
    from l402tui.store import Store

    async def go() -> Any:
        store = await Store.open(cfg.db_path)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except MasterKeyError as exc:
        raise click.ClickException(str(exc)) from None


def _open_private(path: Path) -> Any:
    """``path`` created 0600 for writing, or a ClickException that says why it cannot be."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way is FileExistsError too: not the credential's own
        raise click.ClickException(f"cannot write the credential to {path}: {exc.strerror or exc}") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never over an existing file
    except FileExistsError:
        raise click.ClickException(f"{path} exists; choose a new file (a credential is never overwritten)") \
            from None
    except OSError as exc:
        raise click.ClickException(f"cannot write the credential to {path}: {exc.strerror or exc}") from None
    return os.fdopen(fd, "w")


@click.group()
def sponsor() -> None:
    """Sponsors who post bounties on this coordinator without its admin macaroon."""


@sponsor.command()
@click.option("--name", help="Who the sponsor is (shown to you in `sponsor list`).")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True,
              help="How long the credential is valid.")
@click.option("--posts", type=click.IntRange(0, None), default=None, help="How many bounties it may post "
              "(default: no limit).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the credential to this new file (0600) instead of printing it.")
@click.pass_obj
def invite(cfg: Config, name: str | None, days: int, posts: int | None, out: Path | None) -> None:
    """Issue a sponsor credential for someone you know: it posts without the posting fee and
    opens only that sponsor's bounties.  Hand it over privately: it is their key."""
    from l402tui.l402.sponsor import SponsorAuthority

    async def go(store: Any) -> Any:
        return await SponsorAuthority(store).invite(name=name, valid_until=int(time.time()) + days * 86400,
                                                    posts_allowed=posts)

    if out is not None:
        out = out.expanduser()
        # The file first: a path that cannot be written refuses before a credential is minted.
        f = _open_private(out)
        try:
            minted = _with_store(cfg, go)
        except BaseException:
            f.close()
            out.unlink(missing_ok=True)
            raise
        with f:
            f.write(minted.macaroon_b64 + "\n")
        click.echo(f"sponsor {minted.sponsor_id}: credential written to {out}", err=True)
        return
    minted = _with_store(cfg, go)
    click.echo(minted.macaroon_b64)
    click.echo(f"sponsor {minted.sponsor_id}: send 'Authorization: Bearer <the line above>', or attach with "
               "`l402tui --attach URL --sponsor-macaroon FILE`", err=True)


@sponsor.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_sponsors(cfg: Config, as_json: bool) -> None:
    """Sponsors, how they came (invite or paid), and the bounties each posted."""
    async def go(store: Any) -> Any:
        return await store.fetchall(
            "SELECT s.id, s.name, s.origin, s.created_at, s.revoked_at, GROUP_CONCAT(b.bounty_id) AS bounties "
            "FROM sponsors s LEFT JOIN sponsor_bounties b ON b.sponsor_id = s.id "
            # A 402 names a sponsor before it pays: only those who paid (or were invited) are listed.
            "WHERE s.origin = 'invite' OR EXISTS (SELECT 1 FROM sponsor_tokens t JOIN invoices i ON "
            "i.payment_hash = t.payment_hash WHERE t.sponsor_id = s.id AND i.status = 'SETTLED') "
            "GROUP BY s.id ORDER BY s.created_at")

    rows = _with_store(cfg, go)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "removed" if r["revoked_at"] else r["origin"]
        click.echo(f"{r['id']}  {state:<8} {r['name'] or '-':<20} {r['bounties'] or '-'}")


@sponsor.command()
@click.argument("sponsor_id")
@click.pass_obj
def remove(cfg: Config, sponsor_id: str) -> None:
    """Refuse every credential of SPONSOR_ID from now on (its bounties run on)."""
    from l402tui.l402.sponsor import SponsorAuthority

    if not _with_store(cfg, lambda store: SponsorAuthority(store).remove(sponsor_id)):
        raise click.ClickException(f"no sponsor {sponsor_id} (or already removed); `l402tui sponsor list` shows them")
    click.echo(f"sponsor {sponsor_id} removed")


def _client(url: str, credential: Path) -> Any:
    from l402tui.coordinator.sponsor_client import SponsorClient

    try:
        return SponsorClient(url, credential_path=credential)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read the sponsor credential {credential}: {exc}") from None


def _remote(action: Awaitable[Any], client: Any) -> Any:
    from l402tui.coordinator.errors import CoordinatorError

    async def go() -> Any:
        try:
            return await action
        finally:
            await client.close()

    try:
        return asyncio.run(go())
    except CoordinatorError as exc:
        for problem in exc.details.get("problems", []):
            click.echo(problem, err=True)
        raise click.ClickException(exc.message) from None
    except OSError as exc:  # a bounty folder file it cannot read while packing, say
        where = f" ({exc.filename})" if exc.filename else ""
        raise click.ClickException(f"{exc.strerror or exc}{where}; fix it and post again") from None


_URL = click.option("--url", required=True, metavar="URL", help="The coordinator, e.g. https://bounties.example")
_CREDENTIAL = click.option("--credential", required=True, type=click.Path(dir_okay=False, path_type=Path),
                           help="Your sponsor credential file (macaroon, or macaroon:preimage after paying the fee).")


@sponsor.command()
@_URL
@_CREDENTIAL
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path), required=False)
@click.option("--git", "git_url", metavar="URL", help="Post from this git repository instead of DIRECTORY.")
@click.option("--commit", "git_ref", metavar="ID|TAG", help="With --git: the commit (or tag) to publish.")
@click.option("--subdir", default="", metavar="PATH", help="With --git: the folder holding bounty.toml.")
def post(url: str, credential: Path, directory: Path | None, git_url: str | None, git_ref: str | None,
         subdir: str) -> None:
    """Post the bounty in DIRECTORY (packed and uploaded) or at --git URL --commit ID; prints the
    funding hold invoice to pay from your wallet."""
    if (directory is None) == (git_url is None) or (git_url is not None and not git_ref):
        raise click.UsageError("give DIRECTORY, or --git URL with --commit")
    client = _client(url, credential)
    source = {"url": git_url, "commit": git_ref, "subdir": subdir} if git_url else directory
    result = _remote(client.create_bounty(source), client)
    funding = result.get("funding") or {}
    click.echo(f"bounty {result['bounty']['id']} is {result['bounty']['status']}")
    if funding.get("invoice"):
        click.echo(f"pay {funding['amount_sats']:,} sats (pool {funding['pool_sats']:,} + fee {funding['fee_sats']:,}) "
                   f"to open it:\n{funding['invoice']}")


@sponsor.command()
@_URL
@_CREDENTIAL
def status(url: str, credential: Path) -> None:
    """Who this credential is and the state of its bounties."""
    client = _client(url, credential)

    async def go() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return await client.whoami(), await client.list_bounties()

    me, bounties = _remote(go(), client)
    left = "no limit" if me["posts_left"] is None else me["posts_left"]
    click.echo(f"sponsor {me['sponsor_id']} ({me['origin']}), valid until {time.ctime(me['valid_until'])}, "
               f"posts left: {left}")
    for b in bounties:
        click.echo(f"  {b['id']}  {b['status']:<17} pool left {b.get('pool_left_sats', 0):,} sats")
