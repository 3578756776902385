"""One bounty in full (Enter on a bounty row): its facts, the held-out score of every
submission with the best so far and the baseline (braille chart), and how its pool
drained, payment by payment.  `y` copies the full bounty id."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from l402tui.tui import format as fmt
from l402tui.tui.bounty_history import PoolStep, pool_history, score_history
from l402tui.tui.chart import Series, line_chart
from l402tui.tui.source import BountyRow, LedgerRow, SubmissionRow
from l402tui.tui.widgets.record_table import status_text

CHART_ROWS = 7


class BountyDetailScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    BountyDetailScreen { align: center middle; }
    BountyDetailScreen > Vertical { width: 100%; height: 100%; border: round $primary;
                                    background: $surface; padding: 0 1; }
    BountyDetailScreen #bounty-scroll { height: 1fr; }
    BountyDetailScreen .chart-title { margin-top: 1; text-style: bold; }
    BountyDetailScreen .chart { height: auto; }
    """
    BINDINGS = [Binding("escape,q", "close", "Close", id="bounty_detail_close"),
                Binding("y", "copy_id", "Copy id", id="bounty_detail_copy")]

    def __init__(self, bounty: BountyRow, submissions: list[SubmissionRow], ledger: list[LedgerRow], *,
                 now: float):
        super().__init__()
        self.bounty = bounty
        self.history = score_history(bounty, submissions)
        self.pool = pool_history(bounty, ledger)
        self.now = now

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._facts(), id="bounty-facts")
            with VerticalScroll(id="bounty-scroll"):
                yield Static(id="score-title", classes="chart-title")
                yield Static(id="score-chart", classes="chart")
                yield Static(id="pool-title", classes="chart-title")
                yield Static(id="pool-chart", classes="chart")
                yield Static(id="pool-steps")
            yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(Vertical).border_title = f"Bounty {self.bounty.name}"
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        width = max(30, self.size.width - 6)
        b, h = self.bounty, self.history
        n_kept = len(h.kept)
        self.query_one("#score-title", Static).update(Text.assemble(
            f"{b.metric} on the held-out set, by submission", (
                f"  {len(h.scores)} submission(s) · {n_kept} accepted (●) · best line cyan · "
                "baseline dotted yellow", "dim")))
        chart = line_chart([Series(h.scores, "dim", line=False), Series(h.best, "cyan")], width, CHART_ROWS,
                           baseline=b.baseline, marks=h.kept) if h.scores else \
            Text("no submissions yet: the chart starts with the first one", style="dim")
        self.query_one("#score-chart", Static).update(chart)
        spent = b.pool_msat - b.pool_left_msat
        self.query_one("#pool-title", Static).update(Text.assemble(
            "pool left, by payment", (f"  {fmt.sats(b.pool_left_msat)} of {fmt.sats(b.pool_msat)} sat left · "
                                      f"{fmt.sats(max(0, spent))} sat gone", "dim")))
        values = [s.left_msat / 1000 for s in self.pool]
        self.query_one("#pool-chart", Static).update(
            line_chart([Series(values, "green")], width, CHART_ROWS - 2, label_width=9) if len(values) > 1 else
            Text("nothing paid from the pool yet", style="dim"))
        self.query_one("#pool-steps", Static).update(self._steps())

    def _facts(self) -> Table:
        b = self.bounty
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim")
        table.add_column()
        table.add_column(style="dim")
        table.add_column()
        deadline = f"{fmt.utc(b.deadline)} ({fmt.until(b.deadline, self.now)})" if b.deadline else "—"
        funding = "self-funded (the coordinator's wallet)" if b.funding_mode == "self" else "hold invoice"
        table.add_row("id", b.id, "status", status_text(b.status))
        table.add_row("metric", b.metric, "baseline → best", f"{fmt.score(b.baseline)} → {fmt.score(b.best)}")
        table.add_row("pool", f"{fmt.sats(b.pool_msat)} sat", "left", f"{fmt.sats(b.pool_left_msat)} sat")
        table.add_row("funding", funding, "deadline", deadline)
        return table

    def _steps(self) -> Table:
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="dim")
        for name, justify in (("when (UTC)", "left"), ("what", "left"), ("sat", "right"), ("left", "right"),
                              ("submission", "left")):
            table.add_column(name, justify=justify, no_wrap=True)
        for step in self.pool[1:]:
            table.add_row(*self._step_cells(step))
        return table

    def _step_cells(self, step: PoolStep) -> tuple[str, ...]:
        if step.kind == "now":
            return ("now", "reserved, fees", "", fmt.sats(step.left_msat), "")
        return (fmt.utc(step.at), step.kind, fmt.sats(step.amount_msat), fmt.sats(step.left_msat),
                step.submission_id or "")

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(self.bounty.id)
        self.notify(f"copied {self.bounty.id}")

    def action_close(self) -> None:
        self.dismiss(None)
