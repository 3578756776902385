"""`l402tui wallet ...`: the configured Lightning node from the command line.

balance / invoice / pay / send / list work on any backend (``make_backend``);
nodes / mine / deposit drive the simulated network.  ``ledger`` (the coordinator's
books) lives in its own module and is loaded only when asked for.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Awaitable, Callable

import click

from l402tui.commands.lazy import lazy_group
from l402tui.config import Config

# Subcommands owned by other parts of the app: name -> "module:attribute".
LAZY = {
    "ledger": "l402tui.commands.wallet_ledger:ledger",
}


_WalletGroup = lazy_group("l402tui wallet", LAZY)


def _cfg(ctx: click.Context) -> Config:
    root = ctx.find_root().obj
    if isinstance(root, Config):
        return root
    from l402tui.config import load_config

    return load_config()


def _run(ctx: click.Context, action: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``action(backend)`` on the configured node and turn Lightning errors into messages."""
    from l402tui.lightning import LightningError, make_backend

    async def go() -> Any:
        backend = make_backend(_cfg(ctx), ctx.meta.get("wallet_node"))
        try:
            return await action(backend)
        finally:
            await backend.close()

    try:
        return asyncio.run(go())
    except LightningError as exc:
        raise click.ClickException(str(exc)) from None


def _sim(ctx: click.Context, action: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``action(net)`` on the simulated network (refused on other backends)."""
    from l402tui.lightning import LightningError
    from l402tui.lightning.sim import SimNetwork

    cfg = _cfg(ctx)
    if cfg.get("lightning.backend") != "sim":
        raise click.ClickException(f"this command drives the simulated network, but lightning.backend is "
                                   f"{cfg.get('lightning.backend')!r}")

    async def go() -> Any:
        net = SimNetwork.from_config(cfg)
        try:
            return await action(net)
        finally:
            await net.close()

    try:
        return asyncio.run(go())
    except LightningError as exc:
        raise click.ClickException(str(exc)) from None


def _sats(msat: int) -> str:
    return f"{msat // 1000:,} sat" + (f" {msat % 1000} msat" if msat % 1000 else "")


def _msat(sats: float) -> int:
    if sats < 0:
        raise click.BadParameter("amounts cannot be negative")
    return int(round(sats * 1000))


@click.group(cls=_WalletGroup)
@click.option("--node", metavar="NAME", help="Sim node to speak for (default: lightning.node).")
@click.pass_context
def wallet(ctx: click.Context, node: str | None) -> None:
    """Balance, invoices and payments of the configured Lightning node.

    \b
    Examples:
      l402tui wallet balance
      l402tui wallet --node agent-1 invoice 1000 -d "coffee"
      l402tui wallet pay lnbcrt10u1...
    """
    ctx.meta["wallet_node"] = node


@wallet.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def balance(ctx: click.Context, as_json: bool) -> None:
    """Spendable balance, node id and block height."""
    status = _run(ctx, lambda b: b.status())
    if as_json:
        click.echo(json.dumps(status.__dict__, indent=2))
        return
    click.echo(f"{status.alias} ({status.backend}, {status.network}, block {status.block_height})")
    click.echo(f"node id  {status.node_id}")
    click.echo(f"balance  {_sats(status.balance_msat)}")


@wallet.command()
@click.argument("amount_sat", type=float)
@click.option("-d", "--description", default="l402tui wallet", show_default=True,
              help="Text the payer sees in the invoice.")
@click.option("--expiry", "expiry_s", default=3600, show_default=True, help="Seconds until it expires.")
@click.pass_context
def invoice(ctx: click.Context, amount_sat: float, description: str, expiry_s: int) -> None:
    """Create an invoice for AMOUNT_SAT (0 = any amount) and print it."""
    inv = _run(ctx, lambda b: b.create_invoice(_msat(amount_sat), description, expiry_s))
    click.echo(inv.bolt11)
    click.echo(f"payment hash {inv.payment_hash}", err=True)


@wallet.command()
@click.argument("bolt11")
@click.option("--max-fee-sat", type=float, help="Refuse routes that cost more in fees.")
@click.option("--amount-sat", type=float, help="Amount for an invoice without one.")
@click.option("--timeout", "timeout_s", default=60.0, show_default=True,
              help="Seconds to wait for the payment to succeed or fail.")
@click.pass_context
def pay(ctx: click.Context, bolt11: str, max_fee_sat: float | None, amount_sat: float | None,
        timeout_s: float) -> None:
    """Pay a BOLT11 invoice."""
    payment = _run(ctx, lambda b: b.pay(
        bolt11, max_fee_msat=None if max_fee_sat is None else _msat(max_fee_sat),
        amount_msat=None if amount_sat is None else _msat(amount_sat), timeout_s=timeout_s))
    click.echo(f"{payment.state.value}: {_sats(payment.amount_msat)} to {payment.destination or '?'}, "
               f"fee {_sats(payment.fee_msat)}")
    if payment.preimage:
        click.echo(f"preimage {payment.preimage}")
    elif payment.state.value == "PENDING":
        click.echo("held by the payee (a hold invoice): it completes when they settle, or is refunded")


@wallet.command()
@click.argument("destination")
@click.argument("amount_sat", type=float)
@click.option("--max-fee-sat", type=float, help="Refuse routes that cost more in fees.")
@click.pass_context
def send(ctx: click.Context, destination: str, amount_sat: float, max_fee_sat: float | None) -> None:
    """Keysend AMOUNT_SAT to DESTINATION (a node id, or a sim node's name)."""

    async def go(backend: Any) -> Any:
        node_id = destination
        if len(destination) != 66 and getattr(backend, "net", None) is not None:
            node_id = (await backend.net.node(destination).status()).node_id
        return await backend.keysend(node_id, _msat(amount_sat),
                                     max_fee_msat=None if max_fee_sat is None else _msat(max_fee_sat))

    payment = _run(ctx, go)
    click.echo(f"{payment.state.value}: {_sats(payment.amount_msat)} to {payment.destination or destination}, "
               f"fee {_sats(payment.fee_msat)}")


@wallet.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Invoices this node issued (and, on the sim, payments it made)."""

    async def go(backend: Any) -> tuple[list, list]:
        payments = await backend.list_payments() if hasattr(backend, "list_payments") else []
        return await backend.list_invoices(), payments

    invoices, payments = _run(ctx, go)
    if as_json:
        click.echo(json.dumps({"invoices": [_plain(i) for i in invoices],
                               "payments": [_plain(p) for p in payments]}, indent=2))
        return
    click.echo(f"{len(invoices)} invoice(s)")
    for i in invoices:
        kind = "hold " if i.is_hold else ""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(i.created_at))
        click.echo(f"  {when}  {i.state.value:<9} {kind}{_sats(i.amount_msat):>16}  {i.payment_hash[:16]}  "
                   f"{i.description}")
    if payments:
        click.echo(f"{len(payments)} payment(s)")
        for p in payments:
            click.echo(f"  {p.state.value:<9} {_sats(p.amount_msat):>16} fee {_sats(p.fee_msat):<10} "
                       f"to {p.destination or '?':<12} {p.payment_hash[:16]}" + (f"  {p.error}" if p.error else ""))


def _plain(obj: Any) -> dict:
    out = dict(obj.__dict__)
    for key, value in out.items():
        if hasattr(value, "value"):
            out[key] = value.value
    return out


@wallet.command()
@click.option("--create", "create", metavar="NAME", help="Create a node with this name.")
@click.option("--balance-sat", default=0.0, show_default=True, help="Starting balance for --create.")
@click.pass_context
def nodes(ctx: click.Context, create: str | None, balance_sat: float) -> None:
    """List the simulated network's nodes (or create one)."""

    async def go(net: Any) -> tuple[list, int, Any]:
        if create:
            await net.create_node(create, _msat(balance_sat))
        return await net.nodes(), await net.height(), await net.totals()

    rows, height, totals = _sim(ctx, go)
    click.echo(f"simulated network at block {height}: {len(rows)} node(s)")
    for n in rows:
        click.echo(f"  {n.name:<16} {_sats(n.balance_msat):>18}  {n.pubkey}")
    click.echo(f"held in HTLCs {_sats(totals.held_msat)}, routing fees {_sats(totals.fees_msat)}, "
               f"minted {_sats(totals.minted_msat)}" + ("" if totals.balanced else "  (BOOKS DO NOT BALANCE)"))


@wallet.command()
@click.argument("blocks", type=int, default=1)
@click.pass_context
def mine(ctx: click.Context, blocks: int) -> None:
    """Advance the simulated block clock by BLOCKS (expiries due happen now)."""
    height = _sim(ctx, lambda net: net.mine(blocks))
    click.echo(f"block height {height}")


@wallet.command()
@click.argument("name")
@click.argument("amount_sat", type=float)
@click.pass_context
def deposit(ctx: click.Context, name: str, amount_sat: float) -> None:
    """Add AMOUNT_SAT of new funds to sim node NAME (a faucet)."""
    balance_msat = _sim(ctx, lambda net: net.deposit(name, _msat(amount_sat)))
    click.echo(f"{name}: {_sats(balance_msat)}")
