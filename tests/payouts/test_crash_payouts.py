"""kill -9 the coordinator at random points of the pay path (a few runs here; 100 in
bench/crash_payouts.py): zero double payments, zero lost submissions, balanced books."""

from __future__ import annotations

import pytest
from crash_harness import one_run


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_during_payouts_never_pays_twice(tmp_path, seed):
    run = one_run(tmp_path, seed, submissions=6, max_kills=3)
    assert run.kills >= 1  # the harness really killed the process
    assert run.problems == []
    assert run.double_payments == 0
    assert run.lost_submissions == 0
    assert run.payments_owed == run.payments_complete == 6  # every 80 % payout went out exactly once
