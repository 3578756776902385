"""The demo's story in the app (`l402tui demo`): narration lines go to the story pane,
and when the story is complete its summary screen opens (and `d` opens it again).
Outside the demo nothing arrives and the pane stays hidden."""

from __future__ import annotations

from l402tui.tui.app_loading import while_shown
from l402tui.tui.messages import StoryEnded, StoryTold
from l402tui.tui.widgets.story_pane import StoryPane


class DemoStory:
    story_summary = None  # a demo.story.StorySummary once the story is complete

    @while_shown
    def on_story_told(self, message: StoryTold) -> None:
        self.main_screen.query_one(StoryPane).tell(message.at_s, message.line)

    @while_shown
    def on_story_ended(self, message: StoryEnded) -> None:
        self.story_summary = message.summary
        self.main_screen.query_one(StoryPane).end()
        self.refresh_bindings()  # `d` appears in the footer
        self.action_show_summary()

    def action_show_summary(self) -> None:
        from l402tui.tui.screens.demo_summary import DemoSummaryScreen

        if self.story_summary is None:
            self.notify("the demo's summary comes when its story is complete", severity="warning")
            return
        if isinstance(self.screen, DemoSummaryScreen):
            return
        self.push_screen(DemoSummaryScreen(self.story_summary))
