"""The agent side panel: state, experiments/hour, best-metric sparkline, log tail and
start / pause / stop.  It draws what an AgentController reports; the app owns the
controller and runs its event stream in a worker."""

from __future__ import annotations

import time
from typing import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Log, Static

from l402tui.tui import format as fmt
from l402tui.tui.agent_events import (AgentEvent, AgentExperiment, AgentLogLine, AgentStateChanged, AgentStep,
                                      best_so_far, experiments_per_hour)
from l402tui.tui.chart import Series, line_chart

STATE_STYLES = {"running": "bold green", "paused": "bold yellow", "stopped": "dim", "crashed": "bold red",
                "idle": "dim"}


class AgentPanel(Vertical):
    DEFAULT_CSS = """
    AgentPanel { padding: 0 1; }
    AgentPanel #agent-summary { height: auto; }
    AgentPanel #agent-spark { height: 7; }
    AgentPanel #agent-step { height: auto; color: $text-muted; }
    AgentPanel Log { height: 1fr; border: none; background: $surface; }
    AgentPanel #agent-buttons { height: 1; margin-top: 1; }
    AgentPanel Button { min-width: 8; width: 1fr; margin: 0; }
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, id: str | None = None,
                 classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.clock = clock
        self.state = "idle"
        self.detail = ""
        self.step = ""
        self.attached = False
        self.description = ""
        self.minimize = True
        self.experiments: list[AgentExperiment] = []

    def compose(self) -> ComposeResult:
        yield Static(id="agent-summary")
        yield Static(id="agent-spark")
        yield Static(id="agent-step")
        yield Log(max_lines=500, id="agent-log", auto_scroll=True)
        with Horizontal(id="agent-buttons"):
            yield Button("Start", id="agent-start", variant="success", compact=True)
            yield Button("Pause", id="agent-pause", variant="warning", compact=True)
            yield Button("Stop", id="agent-stop", variant="error", compact=True)

    def on_mount(self) -> None:
        self.border_title = "Agent"
        self.redraw()

    def attach(self, description: str, minimize: bool) -> None:
        self.attached, self.description, self.minimize = True, description, minimize
        self.redraw()

    def apply(self, event: AgentEvent) -> None:
        if isinstance(event, AgentExperiment):
            self.experiments.append(event)
            self.query_one(Log).write_line(
                f"{fmt.clock(event.created_at)} {event.status:<7} {fmt.score(event.metric):>8}  {event.description}")
        elif isinstance(event, AgentLogLine):
            self.query_one(Log).write_line(event.text)
        elif isinstance(event, AgentStep):
            self.step = event.text
        elif isinstance(event, AgentStateChanged):
            self.state, self.detail = event.state, event.detail
            if event.minimize is not None:
                self.minimize = event.minimize
        self.redraw()

    def redraw(self) -> None:
        summary = self.query_one("#agent-summary", Static)
        spark = self.query_one("#agent-spark", Static)
        step = self.query_one("#agent-step", Static)
        if not self.attached:
            summary.update(Text.assemble(("No agent loop in this session.\n", "bold"),
                                         ("Run one with `l402tui agent`, or start the app with an "
                                          "agent configured ([agent] in config).", "dim")))
            spark.update("")
            step.update("")
            for button in self.query(Button):
                button.disabled = True
            return
        n = len(self.experiments)
        kept = sum(1 for e in self.experiments if e.status == "keep")
        crashed = sum(1 for e in self.experiments if e.status == "crash")
        rate = experiments_per_hour(self.experiments, self.clock())
        best = best_so_far(self.experiments, self.minimize)
        text = Text()
        text.append(self.state.upper(), style=STATE_STYLES.get(self.state, ""))
        if self.detail:
            text.append(" ")
            text.append(f"· {self.detail}", style="dim")
        text.append(f"\n{self.description}\n", style="dim")
        text.append(f"{n} experiment{'s' if n != 1 else ''} · {kept} kept · {crashed} crashed\n")
        text.append(f"{rate:.1f} experiments/hour\n")
        text.append(f"best {fmt.score(best[-1] if best else None)}", style="bold")
        summary.update(text)
        spark.update(self.chart(max(20, self.size.width - 2)))
        step.update(self.step)
        self.query_one("#agent-start", Button).disabled = self.state == "running"
        self.query_one("#agent-pause", Button).disabled = self.state != "running"
        self.query_one("#agent-stop", Button).disabled = self.state in ("stopped", "idle")

    def chart(self, width: int, height: int = 6) -> Text:
        """Every experiment's metric (dim), the best so far (the line), kept points (bold) and
        the first kept run (the baseline) dotted across."""
        if not self.experiments:
            return Text("the chart starts with the first experiment", style="dim")
        metrics = [e.metric for e in self.experiments]
        best: list[float | None] = []
        current = None
        for e in self.experiments:
            if e.status == "keep" and e.metric is not None and (
                    current is None or (e.metric < current if self.minimize else e.metric > current)):
                current = e.metric
            best.append(current)
        kept = [(i, e.metric) for i, e in enumerate(self.experiments) if e.status == "keep" and e.metric is not None]
        baseline = kept[0][1] if kept else None
        chart = line_chart([Series(metrics, "dim", line=False), Series(best, "cyan")], width, height - 1,
                           baseline=baseline, marks=kept)
        legend = Text(f"\n{'lower' if self.minimize else 'higher'} better ", style="dim")
        legend.append("━best ", style="cyan")
        legend.append("●kept ", style="bold green")
        legend.append("┄base", style="yellow")
        return chart + legend

    def on_resize(self) -> None:
        if self.attached:
            self.redraw()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        verb = (event.button.id or "").removeprefix("agent-")
        event.stop()
        self.app.run_action(f"agent('{verb}')")
