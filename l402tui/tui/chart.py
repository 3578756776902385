"""A small braille line chart (2×4 dots per cell): metric over experiments, kept points
marked, the baseline as a dotted line.  Plain text and styles, no Textual, so it draws
the same over SSH, in tmux and in the ANSI theme (styles are ANSI colour names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rich.text import Text

from l402tui.tui import format as fmt

_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row in cell][column in cell]
# Which style wins when several things share a cell.
_RANK = {"": 0, "dim": 1, "yellow": 2, "cyan": 3, "bold green": 4, "bold red": 5}


@dataclass
class Series:
    values: Sequence[float | None]
    style: str = "cyan"
    line: bool = True  # join consecutive points; False: points only


class Canvas:
    def __init__(self, width: int, height: int):
        self.width, self.height = max(1, width), max(1, height)
        self.bits = [[0] * self.width for _ in range(self.height)]
        self.styles = [[""] * self.width for _ in range(self.height)]

    def dot(self, x: int, y: int, style: str) -> None:
        if not (0 <= x < self.width * 2 and 0 <= y < self.height * 4):
            return
        row, col = y // 4, x // 2
        self.bits[row][col] |= _BITS[y % 4][x % 2]
        if _RANK.get(style, 1) >= _RANK.get(self.styles[row][col], 0):
            self.styles[row][col] = style

    def line(self, x0: int, y0: int, x1: int, y1: int, style: str) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps), style)

    def rows(self) -> list[Text]:
        out = []
        for bits, styles in zip(self.bits, self.styles):
            text = Text()
            for b, style in zip(bits, styles):
                text.append(chr(0x2800 + b) if b else " ", style=style or None)
            out.append(text)
        return out


def line_chart(series: Sequence[Series], width: int, height: int, *, baseline: float | None = None,
               marks: Sequence[tuple[int, float]] = (), label_width: int = 7) -> Text:
    """``series`` over a shared x (the index), y scaled to every value and the baseline;
    ``marks`` are (index, value) points drawn bold (kept experiments).  The y range is
    written at the left; a chart with no values says so."""
    values = [v for s in series for v in s.values if v is not None]
    if baseline is not None:
        values.append(baseline)
    if not values:
        return Text("no points yet", style="dim")
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1) * 0.01, hi + 0.5 * (abs(hi) or 1) * 0.01
    plot_w = max(4, width - label_width - 1)
    canvas = Canvas(plot_w, height)
    n = max(len(s.values) for s in series)
    span_x, span_y = plot_w * 2 - 1, height * 4 - 1

    def xy(i: int, v: float) -> tuple[int, int]:
        x = 0 if n <= 1 else round(i * span_x / (n - 1))
        return x, round((hi - v) * span_y / (hi - lo))

    if baseline is not None:
        _, y = xy(0, baseline)
        for x in range(0, span_x + 1, 3):
            canvas.dot(x, y, "yellow")
    for s in series:
        previous = None
        for i, v in enumerate(s.values):
            if v is None:
                previous = None if not s.line else previous
                continue
            point = xy(i, v)
            if s.line and previous is not None:
                canvas.line(*previous, *point, s.style)
            else:
                canvas.dot(*point, s.style)
            previous = point
    for i, v in marks:
        x, y = xy(i, v)
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            canvas.dot(x + dx - (1 if x == span_x else 0), y + dy - (1 if y == span_y else 0), "bold green")
    labels = [fmt.score(hi), *[""] * (height - 2), fmt.score(lo)] if height >= 2 else [fmt.score(hi)]
    out = Text()
    for k, row in enumerate(canvas.rows()):
        out.append(labels[k].rjust(label_width)[:label_width] + " ", style="dim")
        out.append_text(row)
        if k < height - 1:
            out.append("\n")
    return out
