"""The submissions pane: state, claimed vs held-out score, verdict reasons, payout."""

from __future__ import annotations

from rich.text import Text

from l402tui.tui import format as fmt
from l402tui.tui.source import SubmissionRow
from l402tui.tui.widgets.record_table import Column, RecordTable, status_text


class SubmissionsTable(RecordTable[SubmissionRow]):
    EXPORT_NAME = "submissions"
    EMPTY_TEXT = "No submissions yet: agents submit once they beat a bounty's best."
    COLUMNS = (
        Column("Submission", lambda s: Text(fmt.short_id(s.id, 14), style="bold")),
        Column("Bounty", lambda s: fmt.short_id(s.bounty_id, 14)),
        Column("Status", lambda s: status_text(s.status)),
        Column("Claimed", lambda s: Text(fmt.score(s.claimed_score), justify="right")),
        Column("Held-out", lambda s: Text(fmt.score(s.heldout_score), justify="right")),
        Column("Paid (sat)", lambda s: Text(fmt.sats(s.payout_msat), justify="right")),
        Column("At (UTC)", lambda s: fmt.utc(s.created_at)),
        Column("Reasons", lambda s: fmt.short_id(s.reasons.replace("\n", "; "), 60)),
    )
