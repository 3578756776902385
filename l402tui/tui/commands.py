"""The command palette: every app action by name (built from the same table as the keys)."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from l402tui.tui.actions import APP_ACTIONS


class ActionsProvider(Provider):
    """Offers every entry of APP_ACTIONS, showing its current key."""

    def _entries(self):
        keymap = getattr(self.app, "keymap", {})
        for spec in APP_ACTIONS:
            key = keymap.get(spec.id, spec.key).replace("question_mark", "?").replace("slash", "/")
            yield spec, f"{spec.help}  · key {key}"  # no [brackets]: the palette reads them as markup

    async def discover(self) -> Hits:
        for spec, title in self._entries():
            yield DiscoveryHit(title, partial(self.app.run_action, spec.action), help=f"binding id: {spec.id}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for spec, title in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, spec.action),
                          help=f"binding id: {spec.id}")
