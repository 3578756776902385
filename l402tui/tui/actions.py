"""Every app-level action once: its binding id, default key, footer label and palette text.

The BINDINGS of the app, the command palette and the `?` keys screen are all built
from this table, so a key remapped in config (``tui.keymap``: binding id -> key)
changes everywhere, and nothing can be reachable by key yet missing from the palette.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionSpec:
    id: str  # binding id: what users name in tui.keymap
    key: str  # default key(s), comma-separated
    action: str  # Textual action string
    label: str  # short, for the footer
    help: str  # a sentence, for the palette and the keys screen
    footer: bool = True


APP_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("show_keys", "question_mark", "show_keys", "Keys", "Show every key and its binding id"),
    ActionSpec("show_bounties", "1", "show_tab('bounties')", "Bounties", "Show the bounties table",
               footer=False),
    ActionSpec("show_submissions", "2", "show_tab('submissions')", "Subs", "Show the submissions table",
               footer=False),
    ActionSpec("show_ledger", "3", "show_tab('ledger')", "Ledger",
               "Show the ledger: holds, stakes, payouts, refunds", footer=False),
    ActionSpec("focus_log", "l", "focus_log", "Log", "Focus the evaluation log (follows the running evaluation)"),
    ActionSpec("search_log", "slash", "search_log", "Search", "Search the evaluation log"),
    ActionSpec("toggle_agent", "a", "toggle_agent", "Agent", "Show or hide the agent side panel"),
    ActionSpec("toggle_telemetry", "g", "toggle_telemetry", "GPU", "Show or hide the GPU / host panel"),
    ActionSpec("create_bounty", "c", "create_bounty", "Create", "Create a bounty from a folder (validated first)"),
    ActionSpec("fund_bounty", "f", "fund_bounty", "Fund", "Fund the selected bounty (hold invoice or self-funded)"),
    ActionSpec("show_wallet", "w", "show_wallet", "Wallet",
               "Wallets: balances against what they will pay; fund one that is short (deposit or invoice QR)"),
    ActionSpec("review_submission", "v", "review_submission", "Review",
               "Review the selected submission: diff, accept or confirm gaming"),
    ActionSpec("close_bounty", "X", "close_bounty", "Close", "Close the selected bounty and refund what is left",
               footer=False),
    ActionSpec("copy_selected", "y", "copy_selected", "Copy",
               "Copy the selected id or invoice to the clipboard (OSC 52)"),
    ActionSpec("export_csv", "e", "export_csv", "CSV", "Export the table on screen to a CSV file"),
    ActionSpec("show_summary", "d", "show_summary", "Summary",  # the story pane's title names the key
               "The demo's summary: milestones, balances before and after, bounties, submissions", footer=False),
    ActionSpec("refresh", "r", "refresh", "Refresh", "Reload every pane from the coordinator", footer=False),
    ActionSpec("cycle_theme", "T", "cycle_theme", "Theme", "Switch to the next theme", footer=False),
    ActionSpec("agent_start", "s", "agent('start')", "Start", "Start or resume the agent loop", footer=False),
    ActionSpec("agent_pause", "p", "agent('pause')", "Pause", "Pause the agent loop", footer=False),
    ActionSpec("agent_stop", "S", "agent('stop')", "Stop", "Stop the agent loop", footer=False),
    ActionSpec("quit", "q", "quit", "Quit", "Quit l402tui"),
)

# Bindings that belong to one widget (active while it has focus); remappable too.
WIDGET_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("log_next_match", "n", "next_match", "Next", "Eval log: next search match"),
    ActionSpec("log_prev_match", "N", "previous_match", "Prev", "Eval log: previous search match"),
    ActionSpec("log_follow", "end,G", "follow", "Follow", "Eval log: jump to the end and follow new lines"),
)

# The tables' own keys (active while a table has focus).
TABLE_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("table_filter", "slash", "filter", "Filter", "Table: filter rows by words in any column"),
    ActionSpec("table_status_filter", "F", "status_filter", "Status",
               "Table: show one status at a time (FLAGGED first), then all", footer=False),
    ActionSpec("table_sort", "o", "sort_next", "Sort", "Table: sort by the next column (or click a header)",
               footer=False),
    ActionSpec("table_sort_reverse", "O", "sort_reverse", "Reverse", "Table: reverse the sort", footer=False),
    ActionSpec("table_choose", "enter", "choose", "Open",
               "Table: open the selected row (a bounty's charts, a submission's detail)"),
)

BINDING_IDS = frozenset(a.id for a in (*APP_ACTIONS, *WIDGET_ACTIONS, *TABLE_ACTIONS))


def make_bindings(specs: tuple[ActionSpec, ...]) -> list:
    from textual.binding import Binding

    return [Binding(s.key, s.action, s.label, show=s.footer, id=s.id, tooltip=s.help) for s in specs]


class KeymapError(ValueError):
    """A tui.keymap entry that names no binding or is not a key string."""


def check_keymap(keymap: dict) -> dict[str, str]:
    """Validate ``tui.keymap`` from config: ids must exist, keys must be strings."""
    bad = [k for k in keymap if k not in BINDING_IDS]
    if bad:
        raise KeymapError(
            f"tui.keymap: unknown binding id(s) {', '.join(map(repr, sorted(bad)))}; "
            f"known ids: {', '.join(sorted(BINDING_IDS))} (press ? in the app to see them)")
    for binding_id, key in keymap.items():
        if not isinstance(key, str) or not key.strip():
            raise KeymapError(f"tui.keymap.{binding_id}: expected a key string such as \"ctrl+a\", got {key!r}")
    return {k: v.strip() for k, v in keymap.items()}
