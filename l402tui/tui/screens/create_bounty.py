"""Create a bounty from a folder: type the path, see validation, then create.

The dialog only offers what will work: a deadline beyond the Lightning node's hold
window cannot be funded by a hold invoice, so it offers self-funding (and says why
before anything is pressed); self-funding needs the coordinator's wallet to hold
the pool, so its balance is checked first (and, on the simulated network, can be
topped up here).  Creating runs inside the dialog: an error is shown in it and
nothing is lost; only success closes it."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from l402tui.tui import format as fmt
from l402tui.tui.source import ActionResult, CoordinatorSource, SourceError, ValidationReport


class CreateBountyScreen(ModalScreen[ActionResult | None]):
    """Returns the create result, or None when cancelled."""

    DEFAULT_CSS = """
    CreateBountyScreen { align: center middle; }
    CreateBountyScreen > Vertical { width: 100; max-width: 100%; height: auto; max-height: 90%;
                                    border: round $primary; background: $surface; padding: 0 1; }
    CreateBountyScreen #report { height: auto; max-height: 16; margin: 1 0; }
    CreateBountyScreen Horizontal { height: auto; align-horizontal: right; }
    CreateBountyScreen Button { margin-left: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="create_cancel")]

    def __init__(self, source: CoordinatorSource, initial: str = ""):
        super().__init__()
        self.source = source
        self.initial = initial
        self.report: ValidationReport | None = None
        self.hold_ok = True
        self.self_ok = True
        self.checked_path: Path | None = None
        self.advice = ""  # why one way of funding is chosen (shown before pressing)
        self.short_msat = 0  # how much the coordinator wallet lacks for a self-funded pool
        self.error = ""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text.assemble(("Create a bounty", "bold"),
                                       ("  folder with a bounty.toml; enter validates", "dim")))
            yield Input(value=self.initial, placeholder="path/to/bounty_folder", id="path")
            yield Static(id="report")
            with Horizontal():
                yield Button("Validate", id="validate")
                yield Button("Create (hold invoice)", id="create", variant="primary", disabled=True,
                             classes="create-button")
                yield Button("Create self-funded", id="create-self", disabled=True, classes="create-button")
                yield Button("Deposit (sim)", id="deposit", disabled=True)
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.border_title = "Create bounty"
        if not self.source.can_act:
            self.query_one("#report", Static).update(Text(
                f"Validation works here, but creating needs a coordinator: {self.source.description} "
                "is read-only.", style="yellow"))

    @on(Input.Submitted, "#path")
    @on(Button.Pressed, "#validate")
    def _validate(self) -> None:
        raw = self.query_one("#path", Input).value.strip()
        if not raw:
            self.query_one("#report", Static).update(Text("Type the folder that holds bounty.toml.",
                                                          style="yellow"))
            return
        for button in self.query(".create-button"):
            button.disabled = True
        self.query_one("#report", Static).update(Text(f"validating {raw} …", style="dim"))
        self._run_validation(Path(raw).expanduser())

    @work(exclusive=True, group="validate", exit_on_error=False)
    async def _run_validation(self, path: Path) -> None:
        try:
            report = await self.source.validate_bounty(path)
        except Exception as exc:  # a validation crash is shown, not fatal
            report = ValidationReport(False, None, (f"{path}: validation failed: {exc}",))
        self.report, self.checked_path = report, path
        self.error = ""
        self.hold_ok, self.self_ok = True, True
        if report.ok and self.source.can_act:
            await self._choose_funding(report)
        self._show(report)

    async def _choose_funding(self, report: ValidationReport) -> None:
        """Which funding will work, and why (the hold window, the coordinator's balance)."""
        advice = []
        try:
            window = await self.source.hold_window_s()
            balances = await self.source.wallet_balances()
        except SourceError as exc:
            window, balances = None, {}
            advice.append(f"could not check the wallet: {exc}")
        deadline = report.deadline_in_s
        if window is not None and deadline is not None and deadline > window:
            self.hold_ok = False
            advice.append(f"The deadline is {fmt.span(deadline)} away, beyond the {fmt.span(window)} a funding hold "
                          "invoice can be held on this node: it must be self-funded (the coordinator's wallet "
                          "pays the winners).")
        have = balances.get("coordinator")
        need = report.pool_msat or 0
        self.short_msat = 0
        if have is not None and have < need:
            self.short_msat = need - have
            self.self_ok = False
            advice.append(f"Self-funding needs {fmt.sats(need)} sat in the coordinator's wallet; it holds "
                          f"{fmt.sats(have)} sat ({fmt.sats(self.short_msat)} short)."
                          + (" Press Deposit to add it on the simulated network." if self._can_deposit() else
                             " Pay an invoice of the coordinator's node from another wallet first."))
        elif have is not None:
            advice.append(f"The coordinator's wallet holds {fmt.sats(have)} sat (the pool is {fmt.sats(need)}).")
        self.advice = "\n".join(advice)

    def _can_deposit(self) -> bool:
        wallet = getattr(self.source, "wallet", None)
        return bool(getattr(wallet, "can_deposit", False))

    def _show(self, report: ValidationReport) -> None:
        text = Text()
        if report.ok:
            text.append(f"✓ {report.name}: valid\n", style="bold green")
            for note in report.notes:
                text.append(f"  {note}\n")
        else:
            n = len(report.problems)
            text.append(f"✗ {n} problem{'s' if n != 1 else ''}: fix them and press enter again\n",
                        style="bold red")
            for problem in report.problems:
                text.append(f"  {problem}\n")
        if report.ok and not self.source.can_act:
            text.append("Creating needs a coordinator: this view is read-only.", style="yellow")
        if report.ok and self.advice:
            text.append(self.advice + "\n", style="bold yellow" if not (self.hold_ok and self.self_ok) else "")
        if self.error:
            text.append(f"✗ {self.error}\n", style="bold red")
        self.query_one("#report", Static).update(text)
        can = report.ok and self.source.can_act
        hold, own = self.query_one("#create", Button), self.query_one("#create-self", Button)
        hold.disabled = not (can and self.hold_ok)
        own.disabled = not (can and self.self_ok)
        # The button that will work is the primary one (enter presses the focused button).
        hold.variant, own.variant = ("primary", "default") if self.hold_ok else ("default", "primary")
        self.query_one("#deposit", Button).disabled = not (can and self.short_msat and self._can_deposit())
        if can and not self.hold_ok and self.self_ok:
            own.focus()

    @on(Button.Pressed, ".create-button")
    def _create(self, event: Button.Pressed) -> None:
        if self.report is not None and self.report.ok and self.checked_path is not None:
            self._run_create(self.checked_path, event.button.id == "create-self")

    @work(exclusive=True, group="create", exit_on_error=False)
    async def _run_create(self, path: Path, self_funded: bool) -> None:
        for button in self.query(".create-button"):
            button.disabled = True
        self.query_one("#report", Static).update(Text(
            f"creating {path.name} ({'self-funded' if self_funded else 'hold invoice'}): measuring the baseline "
            "can take a few minutes…", style="dim"))
        try:
            result = await self.source.create_bounty(path, self_funded)
        except SourceError as exc:
            self.error = f"create failed: {exc}"
            if self.report is not None:
                self._show(self.report)
            return
        self.dismiss(result)

    @on(Button.Pressed, "#deposit")
    def _deposit(self) -> None:
        self._run_deposit(self.short_msat)

    @work(exclusive=True, group="create", exit_on_error=False)
    async def _run_deposit(self, amount_msat: int) -> None:
        try:
            result = await self.source.deposit(amount_msat)
        except SourceError as exc:
            self.error = f"deposit failed: {exc}"
        else:
            self.error = ""
            self.notify(result.message, timeout=5)
        if self.report is not None:
            self.hold_ok, self.self_ok = True, True
            await self._choose_funding(self.report)
            self._show(self.report)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
