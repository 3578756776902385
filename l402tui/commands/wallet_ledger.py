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


async def _node_check(cfg: Config, store) -> dict:
    """The store against the Lightning node: open findings and discrepancies no finding explains."""
    from l402tui.coordinator import reconcile
    from l402tui.lightning import LightningError, make_backend

    out: dict = {"discrepancies": [], "node_error": None}
    try:
        backend = make_backend(cfg)
    except LightningError as exc:
        out["node_error"] = str(exc)
        return out
    try:
        found = await reconcile.find_discrepancies(store, backend)
        out["discrepancies"] = [d.as_dict() for d in await reconcile.unexplained(store, found)]
    except LightningError as exc:
        out["node_error"] = str(exc)
    finally:
        await backend.close()
    return out


async def _open_findings(store) -> list[dict]:
    from l402tui.coordinator import reconcile

    return await reconcile.open_findings(store)


async def _report(cfg: Config, bounty_id: str | None, show_entries: bool, check: bool = False) -> dict:
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
            "findings": await _open_findings(store),
            "node": await _node_check(cfg, store) if check else None,
        }
    finally:
        await store.close()


@click.command("ledger")
@click.option("--bounty", "bounty_id", help="Only this bounty.")
@click.option("--entries", "show_entries", is_flag=True, help="Also list every ledger entry.")
@click.option("--check", is_flag=True,
              help="Also compare the store with the Lightning node and list open findings of the start-up checks.")
@click.option("--acknowledge", metavar="ID|all",
              help="Close a finding (or all) once you have dealt with it; needs --note.")
@click.option("--note", help="What you did about the finding(s) acknowledged (kept in the event log).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ledger(ctx: click.Context, bounty_id: str | None, show_entries: bool, check: bool, acknowledge: str | None,
           note: str | None, as_json: bool) -> None:
    """Where every bounty's sats are: funded, paid, owed, held back, refunded, fees.

    Exits 1 if the books do not balance, payouts are halted or a start-up finding (lost
    writes, a paid token the store forgot, an orphaned hold) is still open; with --check
    also when the Lightning node and the store disagree.
    """
    root = ctx.find_root().obj
    if isinstance(root, Config):
        cfg = root
    else:  # invoked on its own (tests, embedding): the usual defaults < file < env
        from l402tui.config import load_config

        cfg = load_config()
    if acknowledge is not None:
        _acknowledge(cfg, acknowledge, note)
        return
    report = asyncio.run(_report(cfg, bounty_id, show_entries, check))
    node = report["node"] or {}
    bad = bool(report["halted"] or report["problems"] or any(b["books"]["problems"] for b in report["bounties"])
               or report["findings"] or node.get("discrepancies") or node.get("node_error"))
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
    _print_findings(report["findings"])
    _print_node(node)
    click.echo("books balance" if not bad else "books DO NOT balance" if report["problems"] else "see above")
    sys.exit(1 if bad else 0)


def _print_findings(findings: list[dict]) -> None:
    for f in findings:
        click.secho(f"FINDING {f['id']} ({f['kind']}): {f['message']}", fg="red")
        if f["action"]:
            click.echo(f"  done: {f['action']}")
    if findings:
        click.echo("  when dealt with: l402tui wallet ledger --acknowledge ID --note 'what you did'")


def _print_node(node: dict) -> None:
    if not node:
        return
    if node["node_error"]:
        click.secho(f"NODE NOT CHECKED: {node['node_error']}", fg="red")
    for d in node["discrepancies"]:
        click.secho(f"NODE AND STORE DIFFER ({d['kind']}): {d['message']}", fg="red")
    if node["discrepancies"]:
        click.echo("  a running coordinator may be applying these now; a start of `l402tui serve` reconciles them")
    if not (node["node_error"] or node["discrepancies"]):
        click.echo("store and Lightning node agree")


def _acknowledge(cfg: Config, which: str, note: str | None) -> None:
    from l402tui.coordinator import reconcile
    from l402tui.store import Store

    if not note or not note.strip():
        raise click.UsageError("--acknowledge needs --note 'what you did about it' (it goes into the event log)")
    if which != "all" and not which.isdigit():
        raise click.UsageError(f"--acknowledge takes a finding id (a number) or 'all', not {which!r}")
    if not cfg.db_path.exists():
        raise click.ClickException(f"no coordinator database at {cfg.db_path}")

    async def go() -> int:
        store = await Store.open(cfg.db_path)
        try:
            return await reconcile.acknowledge(store, None if which == "all" else int(which), note.strip())
        finally:
            await store.close()

    n = asyncio.run(go())
    if n == 0:
        raise click.ClickException(f"no open finding {which}; `l402tui wallet ledger --check` lists them")
    click.echo(f"acknowledged {n} finding{'s' if n != 1 else ''}")
