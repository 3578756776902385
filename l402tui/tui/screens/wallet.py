"""The wallet screen: what the coordinator's and the agent's wallets hold against what they
will be asked to pay, and a way to fund the one that is short — a deposit on the simulated
network, or an invoice of the coordinator's node (with its QR code) to pay from a phone."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from l402tui.tui import format as fmt
from l402tui.tui.source import BountyRow, CoordinatorSource, SourceError, WalletState
from l402tui.tui.wallet import AGENT, COORDINATOR, WalletLine, wallet_lines

DEFAULT_DEPOSIT_SATS = 100_000


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.0f} h"


class WalletScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    WalletScreen { align: center middle; }
    WalletScreen > Vertical { width: 96; max-width: 100%; height: auto; max-height: 100%;
                              border: round $primary; background: $surface; padding: 0 1; }
    WalletScreen #wallet-table { height: auto; margin: 1 0 0 0; }
    WalletScreen #wallet-notes { height: auto; color: $text-muted; }
    WalletScreen #wallet-result { height: auto; }
    WalletScreen #qr-scroll { height: auto; max-height: 36; }
    WalletScreen #qr { width: auto; height: auto; }
    WalletScreen #amount-row { height: auto; margin-top: 1; }
    WalletScreen #amount-row Static { width: auto; padding: 0 1 0 0; }
    WalletScreen #amount { width: 18; }
    WalletScreen Horizontal { height: auto; align-horizontal: right; }
    WalletScreen Button { margin-left: 1; }
    """
    BINDINGS = [Binding("escape,q", "close", "Close", id="wallet_close"),
                Binding("y", "copy_invoice", "Copy invoice", id="wallet_copy")]

    def __init__(self, source: CoordinatorSource, bounties: list[BountyRow]):
        super().__init__()
        self.source = source
        self.bounties = bounties
        self.state: WalletState | None = None
        self.lines: list[WalletLine] = []
        self.invoice = ""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text.assemble(("Wallets", "bold"), ("  what each holds against what it will pay", "dim")))
            yield Static(Text("reading balances …", style="dim"), id="wallet-table")
            yield Static(id="wallet-notes")
            with Horizontal(id="amount-row"):
                yield Static("amount (sat)")
                yield Input(str(DEFAULT_DEPOSIT_SATS), id="amount", type="integer", compact=True)
            with Horizontal():
                yield Button("Fund coordinator", id="fund-coordinator", variant="primary", disabled=True)
                yield Button("Fund agent", id="fund-agent", disabled=True)
                yield Button("Invoice (QR)", id="invoice", disabled=True)
                yield Button("Close", id="close")
            yield Static(id="wallet-result")
            with VerticalScroll(id="qr-scroll"):
                yield Static(id="qr")

    def on_mount(self) -> None:
        self.query_one(Vertical).border_title = "Wallet"
        if not self.source.can_act:
            self._say(Text(f"{self.source.description} is read-only: balances are the coordinator's to "
                           "show. Run `l402tui` (coordinator in-process) or `l402tui --attach URL`.", "yellow"))
        self.refresh_state()

    # --- reading ---------------------------------------------------------------------
    @work(exclusive=True, group="wallet-read", exit_on_error=False)
    async def refresh_state(self) -> None:
        try:
            state = await self.source.wallet_state()
        except SourceError as exc:
            self.query_one("#wallet-table", Static).update(Text(f"could not read the wallets: {exc}", "red"))
            return
        self.show_state(state)

    def show_state(self, state: WalletState) -> None:
        self.state = state
        self.lines = wallet_lines(state, self.bounties)
        self.query_one("#wallet-table", Static).update(self._table())
        self.query_one("#wallet-notes", Static).update(self._notes())
        acting = self.source.can_act
        short = {line.name: line.short_msat for line in self.lines}
        fund_coord = self.query_one("#fund-coordinator", Button)
        fund_coord.disabled = not (acting and (state.can_deposit or state.can_invoice))
        fund_coord.label = "Fund coordinator" + (f" (short {fmt.sats(short[COORDINATOR])})"
                                                 if short.get(COORDINATOR) else "")
        fund_agent = self.query_one("#fund-agent", Button)
        fund_agent.disabled = not (acting and state.can_deposit and AGENT in state.balances)
        fund_agent.label = "Fund agent" + (f" (short {fmt.sats(short[AGENT])})" if short.get(AGENT) else "")
        self.query_one("#invoice", Button).disabled = not (acting and state.can_invoice)
        worst = max(self.lines, key=lambda line: line.short_msat, default=None)
        if worst is not None and worst.short_msat:  # offer exactly what is missing, rounded up to a sat
            self.query_one("#amount", Input).value = str(-(-worst.short_msat // 1000))

    def _table(self) -> Table:
        table = Table(box=None, pad_edge=False, expand=True, show_edge=False)
        for name, justify in (("wallet", "left"), ("holds (sat)", "right"), ("needs (sat)", "right"),
                              ("", "left"), ("for", "left")):
            table.add_column(name, justify=justify, no_wrap=name != "for", style="bold" if not name else None)
        for line in self.lines:
            if line.balance_msat is None:
                state = Text("not known here", "dim")
            elif line.short_msat:
                state = Text(f"short {fmt.sats(line.short_msat)}", "bold red")
            else:
                state = Text("ok", "green")
            table.add_row(line.name, "—" if line.balance_msat is None else fmt.sats(line.balance_msat),
                          fmt.sats(line.need_msat), state, Text(line.why, "dim"))
        return table

    def _notes(self) -> Text:
        state = self.state
        parts = []
        if state.backend:
            parts.append(f"{state.backend} node {state.node}".rstrip())
        if state.hold_window_s:
            parts.append(f"funding holds last up to {_duration(state.hold_window_s)} here: "
                         "a later deadline is self-funded from the coordinator's wallet")
        if state.can_deposit:
            parts.append("simulated network: Fund mints test sats")
        elif state.can_invoice:
            parts.append("real node: Fund shows an invoice to pay from another wallet")
        return Text(" · ".join(parts))

    # --- acting ----------------------------------------------------------------------
    def _amount_msat(self) -> int | None:
        raw = self.query_one("#amount", Input).value.strip().replace(",", "").replace("_", "")
        if not raw.isdigit() or int(raw) <= 0:
            self._say(Text(f"amount {raw!r}: type a whole number of sats above 0", "red"))
            return None
        if int(raw) > 21_000_000 * 100_000_000:
            self._say(Text("amount: more than 21 million bitcoin", "red"))
            return None
        return int(raw) * 1000

    @on(Button.Pressed, "#fund-coordinator")
    def _fund_coordinator(self) -> None:
        amount = self._amount_msat()
        if amount is None:
            return
        if self.state is not None and self.state.can_deposit:
            self._deposit(amount, COORDINATOR)
        else:
            self._make_invoice(amount)

    @on(Button.Pressed, "#fund-agent")
    def _fund_agent(self) -> None:
        amount = self._amount_msat()
        if amount is not None:
            self._deposit(amount, AGENT)

    @on(Button.Pressed, "#invoice")
    def _invoice(self) -> None:
        amount = self._amount_msat()
        if amount is not None:
            self._make_invoice(amount)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="wallet-act", exit_on_error=False)
    async def _deposit(self, amount_msat: int, wallet: str) -> None:
        try:
            result = await self.source.deposit(amount_msat, wallet)
        except SourceError as exc:
            self._say(Text(f"deposit failed: {exc}", "red"))
            return
        self._say(Text(result.message, "green"))
        self.refresh_state()

    @work(exclusive=True, group="wallet-act", exit_on_error=False)
    async def _make_invoice(self, amount_msat: int) -> None:
        try:
            bolt11 = await self.source.deposit_invoice(amount_msat)
        except SourceError as exc:
            self._say(Text(f"no invoice: {exc}", "red"))
            return
        self.show_invoice(bolt11, amount_msat)

    def show_invoice(self, bolt11: str, amount_msat: int) -> None:
        from l402tui.tui.qr import qr_size, render_qr

        self.invoice = bolt11
        width, height = qr_size(bolt11)
        room = self.app.size
        fits = width <= room.width - 4 and height <= room.height - 4
        self._say(Text.assemble((f"Pay {fmt.sats(amount_msat)} sat to the coordinator's node", "bold"),
                                ("  y copies the invoice" + ("" if fits else
                                 f"; the code needs {width}×{height} cells: enlarge the terminal to scan it"),
                                 "dim"), "\n", (bolt11, "dim")))
        self.query_one("#qr", Static).update(render_qr(bolt11))

    def action_copy_invoice(self) -> None:
        if self.invoice:
            self.app.copy_to_clipboard(self.invoice)
            self.notify("invoice copied (OSC 52)")

    def _say(self, text: Text) -> None:
        self.query_one("#wallet-result", Static).update(text)
