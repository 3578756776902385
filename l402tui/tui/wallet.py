"""The wallets the TUI shows and when one is short (plain data, no Textual).

Two wallets matter on one box: the coordinator's (it pays every payout of a self-funded
pool, and of a hold-funded one once the hold is settled) and the side-panel agent's (it
pays L402 fees and stakes).  A wallet is *short* when it holds less than what it will be
asked to pay; the wallet screen offers to fund exactly the difference.
"""

from __future__ import annotations

from dataclasses import dataclass

from l402tui.tui.source import BountyRow, WalletState

COORDINATOR = "coordinator"
AGENT = "agent"


@dataclass(frozen=True)
class WalletLine:
    name: str
    balance_msat: int | None
    need_msat: int
    why: str  # what the need is made of, in words

    @property
    def short_msat(self) -> int:
        return 0 if self.balance_msat is None else max(0, self.need_msat - self.balance_msat)


def coordinator_need(bounties: list[BountyRow]) -> tuple[int, str]:
    """What the coordinator's wallet must be able to pay: the pool left of every OPEN
    self-funded bounty (no hold invoice backs those: the wallet is the pool)."""
    owed = [b for b in bounties if b.status == "OPEN" and b.funding_mode == "self"]
    total = sum(b.pool_left_msat for b in owed)
    if not owed:
        return 0, "no open self-funded pool to pay from this wallet"
    return total, f"pool left of {len(owed)} open self-funded bount{'y' if len(owed) == 1 else 'ies'}"


def wallet_lines(state: WalletState, bounties: list[BountyRow]) -> list[WalletLine]:
    need, why = coordinator_need(bounties)
    lines = [WalletLine(COORDINATOR, state.balances.get(COORDINATOR), need, why)]
    if AGENT in state.balances:
        lines.append(WalletLine(AGENT, state.balances[AGENT], state.agent_need_msat,
                                "one download and one submission (L402 fees)"))
    return lines
