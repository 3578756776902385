"""`?`: every key, what it does and its binding id (the name to use in tui.keymap)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from l402tui.tui.actions import APP_ACTIONS, TABLE_ACTIONS, WIDGET_ACTIONS


class KeysScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    KeysScreen { align: center middle; }
    KeysScreen > VerticalScroll { width: 96; max-width: 100%; height: auto; max-height: 90%;
                                  border: round $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="keys_close")]

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, pad_edge=False, show_edge=False)
        table.add_column("Key", style="bold", no_wrap=True)
        table.add_column("Binding id", style="dim", no_wrap=True)
        table.add_column("What it does", ratio=1)
        for spec in (*APP_ACTIONS, *WIDGET_ACTIONS, *TABLE_ACTIONS):
            table.add_row(self._key_for(spec.id, spec.key), spec.id, spec.help)
        table.add_row("ctrl+p", "command_palette", "Every action by name (type to filter)")
        with VerticalScroll():
            yield Static(Text.assemble(("Keys", "bold"), ("  remap any of them in config: [tui.keymap] "
                                                         "binding_id = \"key\"   (esc closes)", "dim")))
            yield Static(table)

    def _key_for(self, binding_id: str, default: str) -> str:
        keys = getattr(self.app, "keymap", {}).get(binding_id, default)  # effective key after remapping
        return ", ".join(_display(k) for k in keys.split(","))

    def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


def _display(key: str) -> str:
    key = key.strip()
    return {"question_mark": "?", "slash": "/"}.get(key, key)
