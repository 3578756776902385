"""`l402tui wallet ledger`: the coordinator's double-entry books, per bounty, checked."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from l402tui.config import Config


def _sats(msat: int) -> str:
    sats = msat / 1000
    return f"{sats:,.0f}" if msat % 1000 == 0 else f"{sats:,.3f}"


async def _report(cfg: Config, bounty_id: str | None, show_entries: bool) -> dict:
    from l402tui.coordinator import ledger
    from l402tui.store import Store

    if not cfg.db_path.exists():
        raise click.ClickException(f"no coordinator database at {cfg.db_path}; run `l402tui serve` or pass "
                                   "--data-dir of the coordinator")
    store = await Store.open(cfg.db_path)
    try:
        where, params = ("WHERE id = ?", (bounty_id,)) if bounty_id else ("", ())
        bounties = await store.fetchall(f"SELECT id, name, status FROM bounties {where} ORDER BY created_at", params)
        if bounty_id and not bounties:
            raise click.ClickException(f"no bounty {bounty_id!r}; `l402tui bounty list` shows them")
        books = []
        for b in bounties:
            bb = await ledger.bounty_books(store, b["id"])
            books.append({"bounty": b, "books": bb.as_dict()})
        return {
            "halted": await ledger.halted_reason(store),
            "problems": await ledger.books_balance(store),
            "bounties": books,
            "payments": await store.fetchall(
                "SELECT idempotency_key, purpose, amount_msat, fee_msat, status, attempts, last_error FROM payments "
                + ("WHERE bounty_id = ? " if bounty_id else "") + "ORDER BY created_at", params),
            "entries": await ledger.entries(store, bounty_id=bounty_id) if show_entries else [],
        }
    finally:
        await store.close()


@click.command("ledger")
@click.option("--bounty", "bounty_id", help="Only this bounty.")
@click.option("--entries", "show_entries", is_flag=True, help="Also list every ledger entry.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ledger(ctx: click.Context, bounty_id: str | None, show_entries: bool, as_json: bool) -> None:
    """Where every bounty's sats are: funded, paid, owed, held back, refunded, fees.

    Exits 1 if the books do not balance or payouts are halted.
    """
    root = ctx.find_root().obj
    if isinstance(root, Config):
        cfg = root
    else:  # invoked on its own (tests, embedding): the usual defaults < file < env
        from l402tui.config import load_config

        cfg = load_config()
    report = asyncio.run(_report(cfg, bounty_id, show_entries))
    bad = bool(report["halted"] or report["problems"] or any(b["books"]["problems"] for b in report["bounties"]))
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        sys.exit(1 if bad else 0)
    if report["halted"]:
        click.secho(f"PAYOUTS HALTED: {report['halted']}", fg="red", bold=True)
    if not report["bounties"]:
        click.echo("no bounties yet")
    for item in report["bounties"]:
        b, k = item["bounty"], item["books"]
        click.echo(f"{b['id']}  {b['name']}  [{b['status']}]")
        for label, key in (("funded", "funded"), ("pool left", "pool_left"), ("paid", "paid"), ("owed", "owed"),
                           ("held back", "held_back"), ("refund owed", "refund_pending"), ("refunded", "refunded"),
                           ("fees", "fees"), ("stakes held", "stakes_held")):
            click.echo(f"  {label:<12} {_sats(k[key]):>14} sat")
        for problem in k["problems"]:
            click.secho(f"  PROBLEM: {problem}", fg="red")
    if report["payments"]:
        click.echo("payments:")
        for p in report["payments"]:
            err = f"  ({p['last_error']})" if p["last_error"] and p["status"] != "COMPLETE" else ""
            click.echo(f"  {p['idempotency_key']:<40} {_sats(p['amount_msat']):>12} sat  {p['status']:<15}"
                       f" tries {p['attempts']}{err}")
    for e in report["entries"]:
        click.echo(f"  {e['txn_id']:<40} {e['account']:<36} {_sats(e['amount_msat']):>14}  {e['memo'] or ''}")
    for problem in report["problems"]:
        click.secho(f"PROBLEM: {problem}", fg="red")
    click.echo("books balance" if not bad else "books DO NOT balance" if report["problems"] else "see above")
    sys.exit(1 if bad else 0)
