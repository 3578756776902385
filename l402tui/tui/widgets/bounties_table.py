"""The bounties pane: status, pool left, baseline and best, deadline, submissions."""

from __future__ import annotations

from rich.text import Text

from l402tui.tui import format as fmt
from l402tui.tui.source import BountyRow
from l402tui.tui.widgets.record_table import Column, RecordTable, status_text


class BountiesTable(RecordTable[BountyRow]):
    EXPORT_NAME = "bounties"
    EMPTY_TEXT = "No bounties yet. Press c to create one from a folder with a bounty.toml."

    @property
    def COLUMNS(self):  # type: ignore[override]  # the deadline column needs the clock
        return (
            Column("Bounty", lambda b: Text(b.name, style="bold"), shrink=16, sort=lambda b: b.name),
            Column("Status", lambda b: status_text(b.status), sort=lambda b: b.status),
            Column("Best", lambda b: Text(fmt.score(b.best), justify="right"), sort=lambda b: b.best),
            Column("Baseline", lambda b: Text(fmt.score(b.baseline), justify="right"), sort=lambda b: b.baseline,
                   drop=4),
            Column("Pool left", lambda b: Text(fmt.sats(b.pool_left_msat), justify="right"),
                   sort=lambda b: b.pool_left_msat),
            Column("Deadline", lambda b: fmt.until(b.deadline, self.clock()), sort=lambda b: b.deadline),
            Column("Subs", lambda b: Text(str(b.submissions), justify="right"), sort=lambda b: b.submissions,
                   drop=3),
            Column("Metric", lambda b: b.metric, shrink=8),
            Column("Pool", lambda b: Text(fmt.sats(b.pool_msat), justify="right"), sort=lambda b: b.pool_msat,
                   drop=2),
            Column("Id", lambda b: Text(b.id, style="dim"), drop=1),
        )

    def copy_text(self, record: BountyRow) -> str:
        # While a bounty waits for funding the thing worth copying is the invoice to pay.
        return record.funding_bolt11 or record.id
