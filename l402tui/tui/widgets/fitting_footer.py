"""Textual's footer, less the keys that do not fit on one line.

At 80 columns the full set (table keys, app keys, Fund or Review for the selected row)
ran off the right edge and left a stray "y C" there.  `?` and the palette list every
key, so the footer gives up the least used first and never the ones a newcomer needs
(Keys, Quit, Open, and what applies to the selected row).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

# Actions hidden first when the line is short of room; those not named here always stay.
DROP_ORDER = ("export_csv", "copy_selected", "toggle_telemetry", "focus_log", "search_log", "toggle_agent",
              "filter", "create_bounty", "show_wallet")


def key_width(key: FooterKey) -> int:
    """Cells a compact FooterKey takes: key, a space, the label, its right margin."""
    label = f" {key.description}" if key.description else ""
    return Text(key.key_display + label).cell_len + 1


def keys_that_fit(keys: list[FooterKey], room: int) -> list[FooterKey]:
    """``keys`` less the least used until they fit ``room`` cells (order kept)."""
    kept = list(keys)
    for action in DROP_ORDER:
        if sum(key_width(k) for k in kept) <= room:
            break
        kept = [k for k in kept if k.action.rpartition(".")[2] != action]
    return kept


class FittingFooter(Footer):
    def compose(self):
        items = list(super().compose())  # no binding groups here: every item is a FooterKey
        width = self.size.width or self.app.size.width
        palette = [k for k in items if k.has_class("-command-palette")]
        keys = [k for k in items if not k.has_class("-command-palette")]
        room = width - sum(key_width(k) + 2 for k in palette)  # + its border and padding
        yield from keys_that_fit(keys, room)
        yield from palette

    def on_resize(self) -> None:
        self.refresh(recompose=True)
