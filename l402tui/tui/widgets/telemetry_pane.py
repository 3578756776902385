"""The GPU / host pane: bars and sparklines, nvitop-style, from cached readings.

It only draws; sampling happens in a thread worker of the app (NVML calls can
stall on a sick driver) and arrives as a message once a second.
"""

from __future__ import annotations

from collections import deque

from rich.console import Group
from rich.text import Text
from textual.widget import Widget

from l402tui.telemetry.gpu import GpuSnapshot
from l402tui.telemetry.host import HostReading
from l402tui.tui import format as fmt
from l402tui.tui.bars import bar, sparkline

HISTORY = 240  # samples kept per series (4 minutes at 1 Hz)
LABEL = 5


class TelemetryPane(Widget):
    DEFAULT_CSS = """
    TelemetryPane { height: auto; padding: 0 1; }
    """

    def __init__(self, interval_s: float = 1.0, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.interval_s = interval_s
        self.host_name = ""  # which machine these readings are of (attached: not the daemon's)
        self.gpu: GpuSnapshot | None = None
        self.host: HostReading | None = None
        self.history: dict[str, deque[float | None]] = {}
        self._shape: tuple | None = None

    def update_readings(self, gpu: GpuSnapshot, host: HostReading) -> None:
        self.gpu, self.host = gpu, host
        self._push("cpu", host.cpu_pct)
        self._push("mem", host.memory_pct)
        for g in gpu.gpus:
            self._push(f"gpu{g.index}", g.utilization_pct)
            self._push(f"gpumem{g.index}", g.memory_pct)
        # Re-layout the screen only when the pane's height can change (GPUs came or went);
        # otherwise a once-a-second repaint of this pane alone is all idle costs.
        shape = (len(gpu.gpus), gpu.unavailable_reason is None, host.load_1m is not None)
        self.refresh(layout=shape != self._shape)
        self._shape = shape

    def _push(self, key: str, value: float | None) -> None:
        self.history.setdefault(key, deque(maxlen=HISTORY)).append(value)

    def render(self):
        width = max(self.content_size.width - 1, 20)  # - 1: never wrap into the scrollbar
        if self.host is None or self.gpu is None:
            return Text("reading GPU and host…", style="dim")
        parts: list[Text] = []
        if self.gpu.gpus:
            for g in self.gpu.gpus:
                parts.append(Text(fmt.short_id(f"GPU{g.index} {g.name}", width), style="bold"))
                parts.append(self._meter("util", g.utilization_pct, width))
                parts.append(self._spark(f"gpu{g.index}", width))
                mem = f"{fmt.bytes_iec(g.memory_used_bytes)} / {fmt.bytes_iec(g.memory_total_bytes)}"
                parts.append(self._meter("mem", g.memory_pct, width, mem))
                temp = "—" if g.temperature_c is None else f"{g.temperature_c:.0f}°C"
                power = "—" if g.power_w is None else f"{g.power_w:.0f} W"
                if g.power_limit_w:
                    power += f" / {g.power_limit_w:.0f} W"
                parts.append(Text(f"{'temp':<{LABEL}}{temp}   {power}"))
        else:
            parts.append(Text(self.gpu.unavailable_reason or "no GPU", style="bold yellow"))
        h = self.host
        parts.append(Text(f"{self.host_name or 'Host'} · {h.cpu_count} CPU", style="bold"))
        parts.append(self._meter("cpu", h.cpu_pct, width))
        parts.append(self._spark("cpu", width))
        mem = f"{fmt.bytes_iec(h.memory_used_bytes)} / {fmt.bytes_iec(h.memory_total_bytes)}"
        parts.append(self._meter("mem", h.memory_pct, width, mem))
        if h.load_1m is not None:
            parts.append(Text(f"{'load':<{LABEL}}{h.load_1m:.2f} {h.load_5m:.2f} {h.load_15m:.2f}"))
        for part in parts:
            part.no_wrap, part.overflow = True, "crop"
        return Group(*parts)

    def _meter(self, label: str, pct: float | None, width: int, suffix: str | None = None) -> Text:
        value = "N/A" if pct is None else f"{pct:5.1f}%"
        bar_width = max(4, width - LABEL - len(value) - 1)
        style = "green" if pct is None or pct < 70 else ("yellow" if pct < 90 else "red")
        line = Text(f"{label:<{LABEL}}")
        line.append(bar(None if pct is None else pct / 100, bar_width), style=style)
        line.append(f" {value}")
        if suffix:
            line.append(f"\n{'':<{LABEL}}{suffix}", style="dim")
        return line

    def _spark(self, key: str, width: int) -> Text:
        values = list(self.history.get(key, ()))
        span = width - LABEL
        # Oldest left, newest right, growing from the left until the line is full.  The
        # label says how far back the line reaches (one sample per reading interval).
        seconds = min(len(values), span) * self.interval_s
        reach = f"{seconds:.0f}s" if seconds < 100 else f"{seconds / 60:.0f}m"
        label = Text(reach.ljust(LABEL), style="dim")
        return label + Text(sparkline(values[-span:], min(len(values), span), 0, 100), style="cyan")
