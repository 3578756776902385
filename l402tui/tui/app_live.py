"""The side panels of L402App that sample or stream on their own: GPU/host telemetry
(a thread worker, skipped while the panel is hidden) and the agent's event stream."""

from __future__ import annotations

import asyncio

from textual import work

from l402tui.tui.app_loading import while_shown
from l402tui.tui.messages import AgentEventReceived, SourceFailed, TelemetrySampled
from l402tui.tui.widgets.agent_panel import AgentPanel
from l402tui.tui.widgets.telemetry_pane import TelemetryPane


class LivePanels:
    @work(thread=True, exclusive=True, group="telemetry", exit_on_error=False)
    def _sample_telemetry(self) -> None:
        if not self.is_running or not self.screen_stack:
            return  # quitting
        if not self.main_screen.query_one("#side").display:
            return  # hidden: do not spend a core-second an hour drawing what nobody sees
        if len(self.screen_stack) > 1:
            return  # a detail or dialog is over the panes: redrawing under it costs ~1 % of a core
        self.post_message(TelemetrySampled(self.gpu_sampler.read(), self.host_sampler.read()))

    @while_shown
    def on_telemetry_sampled(self, message: TelemetrySampled) -> None:
        self.main_screen.query_one(TelemetryPane).update_readings(message.gpu, message.host)

    def _attach_agent(self) -> None:
        self.main_screen.query_one(AgentPanel).attach(self.agent.description, self.agent.minimize)
        self._follow_agent()

    @work(exclusive=True, group="agent-events", exit_on_error=False)
    async def _follow_agent(self) -> None:
        try:
            async for event in self.agent.events():
                self.post_message(AgentEventReceived(event))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.post_message(SourceFailed("agent event stream", str(exc)))

    @while_shown
    def on_agent_event_received(self, message: AgentEventReceived) -> None:
        self.main_screen.query_one(AgentPanel).apply(message.event)
