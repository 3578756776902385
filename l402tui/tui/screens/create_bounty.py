"""Create a bounty from a folder: type the path, see validation, then create."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from l402tui.tui.source import CoordinatorSource, ValidationReport


class CreateBountyScreen(ModalScreen[tuple[Path, bool] | None]):
    """Returns (folder, self_funded), or None when cancelled."""

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
        self.checked_path: Path | None = None

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
        self._show(report)

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
        self.query_one("#report", Static).update(text)
        if report.ok and not self.source.can_act:
            text.append("Creating needs a coordinator: this view is read-only.", style="yellow")
            self.query_one("#report", Static).update(text)
        for button in self.query(".create-button"):
            button.disabled = not (report.ok and self.source.can_act)

    @on(Button.Pressed, ".create-button")
    def _create(self, event: Button.Pressed) -> None:
        if self.report is not None and self.report.ok and self.checked_path is not None:
            self.dismiss((self.checked_path, event.button.id == "create-self"))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
