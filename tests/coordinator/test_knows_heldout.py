"""A diff that knows the held-out answers is flagged ``knows_heldout`` and paid nothing;
an honest improvement on the same bounty is accepted and paid.  Real worker, real
sandbox, real judge and payouts over the sim network."""

from __future__ import annotations

import difflib
import json
import random
import sys
from pathlib import Path

import pytest


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "evaluation"))
from runners_fixture import make_runner  # noqa: E402

TOML = '''\
name = "Doubling"
description = "Answer 2x for every item."

[files]
target = "target"
mutable = ["solve.py"]
public = "public"
heldout = ["heldout/a", "heldout/b"]
scorer = "scorer"

[run]
command = ["python3", "solve.py", "{inputs}", "{artifacts}"]
timeout_s = 30

[score]
command = ["python3", "{scorer}/score.py", "{artifacts}", "{labels}"]
timeout_s = 30

[[metrics]]
name = "wrong"
direction = "minimize"

[target]
kind = "relative"
improvement = 0.5
min_improvement = 0.05

[reward]
pool_sats = 100000
duration_hours = 1

[noise]
repeats = 1
k_sigma = 0.0

[antigaming]
honeypots = "honeypots.json"
'''

SOLVE = '''\
import json, pathlib, sys
inputs, artifacts = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
items = json.loads((inputs / "items.json").read_text())
FACTOR = 3
(artifacts / "answers.json").write_text(json.dumps({k: v * FACTOR for k, v in items.items()}))
'''

SCORE = '''\
import json, pathlib, sys
artifacts, labels = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
got = json.loads((artifacts / "answers.json").read_text())
want = json.loads((labels / "answers.json").read_text())
pots = set(json.loads((labels / "honeypots.json").read_text()))
wrong = sum(1 for k, v in want.items() if k not in pots and got.get(k) != v)
hits = sum(1 for k in pots if got.get(k) == want[k])
print(json.dumps({"wrong": wrong + 1, "honeypot_items": len(pots), "honeypot_hits": hits,
                  "honeypot_chance": 0.01}))
'''


def _bounty(root: Path) -> tuple[Path, dict[str, int]]:
    rng = random.Random(7)
    folder = root / "doubling"
    (folder / "target").mkdir(parents=True)
    (folder / "target" / "solve.py").write_text(SOLVE)
    (folder / "scorer").mkdir()
    (folder / "scorer" / "score.py").write_text(SCORE)
    (folder / "bounty.toml").write_text(TOML)
    leaked: dict[str, int] = {}
    for part in ("public", "heldout/a", "heldout/b"):
        items = {f"{part[-1]}{i}": rng.randrange(1, 1000) for i in range(40)}
        answers = {k: 2 * v for k, v in items.items()}
        pots = sorted(rng.sample(sorted(items), 10))
        for k in pots:  # honeypots: a random answer no rule can predict (chance 1 in 100 per item)
            answers[k] = rng.randrange(100_000, 100_100)
        (folder / part / "inputs").mkdir(parents=True)
        (folder / part / "labels").mkdir(parents=True)
        (folder / part / "inputs" / "items.json").write_text(json.dumps(items))
        (folder / part / "labels" / "answers.json").write_text(json.dumps(answers))
        (folder / part / "labels" / "honeypots.json").write_text(json.dumps(pots))
        if part == "heldout/a":
            leaked = answers
    return folder, leaked


def _diff(new: str) -> str:
    body = "".join(difflib.unified_diff(SOLVE.splitlines(keepends=True), new.splitlines(keepends=True),
                                        "a/solve.py", "b/solve.py"))
    return "diff --git a/solve.py b/solve.py\n" + body


@pytest.mark.bwrap
async def test_memorised_heldout_is_flagged_and_unpaid_while_honest_work_is_paid(coordinator, tmp_path, net):
    from l402tui.evaluation.worker import run_worker

    sandbox = make_runner("bwrap")
    folder, leaked = _bounty(tmp_path / "sponsor")
    await coordinator.start()
    bounty_id = (await coordinator.create_bounty(folder, self_funded=True))["bounty"]["id"]
    honest = await coordinator.submit(bounty_id, "honest", _diff(SOLVE.replace("FACTOR = 3", "FACTOR = 2")),
                                      payout_destination="agent-1")
    replay = SOLVE.replace("FACTOR = 3", "FACTOR = 2").replace(
        '(artifacts / "answers.json").write_text(json.dumps({k: v * FACTOR for k, v in items.items()}))',
        f'LEAKED = {json.dumps(leaked)}\n'
        '(artifacts / "answers.json").write_text(json.dumps({k: LEAKED.get(k, v * FACTOR) '
        'for k, v in items.items()}))')
    memoriser = await coordinator.submit(bounty_id, "memoriser", _diff(replay), payout_destination="agent-1")
    assert await run_worker(coordinator.store, coordinator.cfg, idle_exit=True, sandbox=sandbox) == 3
    await coordinator.reconcile_evaluations()

    ok = await coordinator.submission_detail(honest["id"])
    assert ok["status"] in ("ACCEPTED", "PAID_PARTIAL"), ok
    assert not ok["verdict"]["flags"]
    caught = await coordinator.submission_detail(memoriser["id"])
    assert caught["status"] == "FLAGGED", caught
    flag = caught["verdict"]["flags"][0]
    assert flag["kind"] == "knows_heldout" and flag["evidence"]["k"] == 10 and flag["evidence"]["n"] == 10
    assert (await coordinator.submission(memoriser["id"]))["reasons"] == ["flagged:knows_heldout"]
    allocated = {e["subject_id"] for e in await coordinator.events_after(0, 1000) if e["kind"] == "payout.allocated"}
    assert honest["id"] in allocated and memoriser["id"] not in allocated
    paid = await coordinator.store.scalar(
        "SELECT COALESCE(SUM(amount_msat), 0) FROM payments WHERE submission_id = ? AND purpose IN "
        "('payout', 'holdback')", (memoriser["id"],))
    assert paid == 0
