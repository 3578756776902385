"""Review a (flagged) submission: its verdict and diff, then accept or confirm gaming."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from l402tui.tui import format as fmt
from l402tui.tui.source import CoordinatorSource, SubmissionRow

MAX_DIFF_CHARS = 200_000  # beyond this the diff is cut (the coordinator caps diffs far lower)


class ReviewScreen(ModalScreen[str | None]):
    """Returns "accept", "gaming" or None."""

    DEFAULT_CSS = """
    ReviewScreen { align: center middle; }
    ReviewScreen > Vertical { width: 100%; height: 100%; border: round $primary; background: $surface;
                              padding: 0 1; }
    ReviewScreen #verdict { height: auto; margin-bottom: 1; }
    ReviewScreen VerticalScroll { height: 1fr; background: $background; }
    ReviewScreen Horizontal { height: auto; align-horizontal: right; }
    ReviewScreen Button { margin-left: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="review_cancel")]

    def __init__(self, source: CoordinatorSource, submission: SubmissionRow):
        super().__init__()
        self.source = source
        self.submission = submission
        self.diff_text: str | None = None  # what is shown, once loaded

    def compose(self) -> ComposeResult:
        s = self.submission
        with Vertical():
            verdict = Text()
            verdict.append(f"Submission {s.id}", style="bold")
            verdict.append(f"  bounty {s.bounty_id} · {s.status}\n")
            verdict.append(f"claimed {fmt.score(s.claimed_score)} · held-out {fmt.score(s.heldout_score)}"
                           f" · paid {fmt.sats(s.payout_msat)} sat\n")
            verdict.append(s.reasons or "no reasons recorded", style="yellow" if s.status == "FLAGGED" else "")
            yield Static(verdict, id="verdict")
            with VerticalScroll(id="diff-scroll"):
                yield Static(Text("loading diff…", style="dim"), id="diff")
            with Horizontal():
                yield Button("Accept (not gaming)", id="accept", variant="success", disabled=not self.source.can_act)
                yield Button("Confirm gaming", id="gaming", variant="error", disabled=not self.source.can_act)
                yield Button("Close", id="cancel")

    def on_mount(self) -> None:
        self.border_title = "Review submission"
        self._load_diff()

    @work(exclusive=True, group="diff", exit_on_error=False)
    async def _load_diff(self) -> None:
        diff_widget = self.query_one("#diff", Static)
        try:
            diff = await self.source.submission_diff(self.submission.id)
        except Exception as exc:
            diff_widget.update(Text(f"cannot load the diff: {exc}", style="red"))
            return
        if len(diff) > MAX_DIFF_CHARS:
            diff = diff[:MAX_DIFF_CHARS] + f"\n… cut at {MAX_DIFF_CHARS:,} characters"
        self.diff_text = diff
        from rich.syntax import Syntax  # pygments: only when a diff is shown

        diff_widget.update(Syntax(diff or "(empty diff)", "diff", theme="ansi_dark", word_wrap=False,
                                  background_color="default"))

    @on(Button.Pressed)
    def _chosen(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
