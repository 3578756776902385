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
        Column("Submission", lambda s: Text(s.id, style="bold")),
        Column("Bounty", lambda s: s.bounty_id, drop=2),
        Column("Status", lambda s: status_text(s.status), sort=lambda s: s.status),
        Column("Claimed", lambda s: Text(fmt.score(s.claimed_score), justify="right"), sort=lambda s: s.claimed_score),
        Column("Held-out", lambda s: Text(fmt.score(s.heldout_score), justify="right"),
               sort=lambda s: s.heldout_score),
        Column("Paid (sat)", lambda s: Text(fmt.sats(s.payout_msat), justify="right"), sort=lambda s: s.payout_msat),
        Column("At (UTC)", lambda s: fmt.utc(s.created_at), sort=lambda s: s.created_at, drop=1),
        Column("Reasons", lambda s: fmt.reasons_text(s.reasons), shrink=20),
    )
