"""The end of `l402tui demo`: when each milestone came, every node's balance before and
after, the bounties and the submissions with what each was paid (what the headless demo
prints as its summary).  Esc closes; `d` opens it again."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from l402tui.tui import format as fmt
from l402tui.tui.widgets.record_table import status_text


def _table(*columns: tuple[str, str]) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", expand=False)
    for label, justify in columns:
        table.add_column(label, justify=justify, no_wrap=True)
    return table


def summary_renderable(summary) -> Group:
    """The summary as rich tables (``summary`` is a demo.story.StorySummary)."""
    milestones = _table(("Milestone", "left"), ("seconds after start", "right"))
    for _name, sentence, at in summary.milestones:
        milestones.add_row(sentence, "—" if at is None else f"{at:.1f}")
    balances = _table(("Node", "left"), ("before (sat)", "right"), ("after (sat)", "right"),
                      ("change (sat)", "right"))
    for node, before, after in summary.balances:
        change = after - before
        sign = "+" if change > 0 else ("−" if change < 0 else "")
        balances.add_row(node, fmt.sats_exact(before), fmt.sats_exact(after),
                         Text(sign + fmt.sats_exact(abs(change)),
                              style="green" if change > 0 else ("red" if change < 0 else "")))
    parts: list = [milestones, Text(""), balances, Text("")]
    if summary.problem:
        parts.append(Text(summary.problem, style="yellow"))
        return Group(*parts)
    bounties = _table(("Bounty", "left"), ("Status", "left"), ("Pool left (sat)", "right"),
                      ("Submissions", "right"), ("Id", "left"))
    for b in summary.bounties:
        bounties.add_row(b["name"], status_text(b["status"]), fmt.sats(b["pool_left_sats"] * 1000),
                         str(b["submissions"]), Text(b["id"], style="dim"))
    subs = _table(("Submission", "left"), ("Bounty", "left"), ("Status", "left"), ("Paid (sat)", "right"))
    for s in summary.submissions:
        subs.add_row(s["id"], s["bounty_id"], status_text(s["status"]), fmt.sats_exact(s["paid_msat"]))
    parts += [bounties, Text(""), subs if summary.submissions else Text("no submissions", style="dim")]
    return Group(*parts)


class DemoSummaryScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    DemoSummaryScreen { align: center middle; }
    DemoSummaryScreen > VerticalScroll { width: 90; max-width: 100%; height: auto; max-height: 100%;
                                         border: round $primary; background: $surface; padding: 0 1; }
    DemoSummaryScreen #summary-head { margin-bottom: 1; }
    """
    BINDINGS = [Binding("escape,q,d", "close", "Close", id="summary_close")]

    def __init__(self, summary):
        super().__init__()
        self.summary = summary

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text.assemble(("The story is complete", "bold"), ("  esc closes · d opens it again", "dim")),
                         id="summary-head")
            yield Static(summary_renderable(self.summary), id="summary-body")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).border_title = "Demo summary"

    def action_close(self) -> None:
        self.dismiss(None)
