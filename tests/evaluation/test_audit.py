"""`bounty audit` really attacks the evaluation: everything is contained or flagged in
the isolating sandboxes, the escapes succeed (and are reported) without isolation,
and an honest improvement is still accepted."""

from __future__ import annotations

import json

import pytest

import tinybounty
from runners_fixture import make_runner
from l402tui.bounty import load_bounty
from l402tui.evaluation.audit import audit_bounty
from l402tui.evaluation.sandbox import LocalSandbox
from tinybounty import ECHO_FIX, FIX_DIFF

# The sums scorer, plus honeypots: items whose label is a decoy, scored against the truth
# kept in honeypots.json and counted apart when an output equals the decoy.
HONEYPOT_SCORER = tinybounty.SUMS_SCORER.replace(
    'print("scored", correct',
    'hp_file = os.path.join(labels, "honeypots.json")\n'
    'hp = json.load(open(hp_file)) if os.path.exists(hp_file) else {"items": {}, "chance": 0.0}\n'
    'decoys = {k: truth[k] for k in hp["items"]}\n'
    'truth.update(hp["items"])\n'
    'correct = sum(1 for k, v in truth.items() if got.get(k) == v)\n'
    'hits = sum(1 for k, v in decoys.items() if got.get(k) == v)\n'
    'print("scored", correct').replace(
    '"canary_matches": matches}', '"canary_matches": matches, "honeypot_items": len(decoys), '
    '"honeypot_hits": hits, "honeypot_chance": hp["chance"]}')
HONEYPOTS = {"h5": [4, 5], "h6": [10, 1, 2], "h7": [6, 6]}  # no negatives: the shipped solver gets them right


@pytest.fixture
def sums_with_honeypots(tmp_path):
    root = tinybounty.make_sums(tmp_path / "sums", extra='\n[antigaming]\nhoneypots = "honeypots.json"\n')
    labels = root / "heldout" / "a" / "labels"
    answers = json.loads((labels / "answers.json").read_text())
    for i, (key, values) in enumerate(HONEYPOTS.items()):
        (root / "heldout" / "a" / "inputs" / key).write_text(" ".join(map(str, values)) + "\n")
        answers[key] = 700_000 + 31_337 * i  # decoys, nowhere near the sums
    (labels / "answers.json").write_text(json.dumps(answers))
    (labels / "honeypots.json").write_text(json.dumps({"items": {k: sum(v) for k, v in HONEYPOTS.items()},
                                                       "chance": 1e-6}))
    (root / "scorer" / "score.py").write_text(HONEYPOT_SCORER)
    return load_bounty(root)


def _verdicts(report) -> dict[str, str]:
    return {r.name: r.verdict for r in report.results}


async def test_every_attack_is_contained_or_flagged(isolated, sums_with_honeypots):
    sums = sums_with_honeypots
    report = await audit_bounty(sums, sandbox=isolated, time_limit_s=2, baseline_repeats=1, honest_diff=FIX_DIFF,
                                allow_unsandboxed=True)
    details = {r.name: r.detail for r in report.results}
    assert _verdicts(report) == {
        "hardcode_canaries": "flagged", "read_labels": "contained", "leak_to_logs": "contained",
        "edit_scorer": "contained", "edit_tests": "contained", "write_outside": "contained",
        "network": "contained", "fork_bomb": "contained", "memory_hog": "contained", "endless_loop": "contained",
        "broken_speedup": "flagged", "cache_across_runs": "contained", "symlink_labels": "contained",
        "memorise_heldout": "flagged"}, details
    assert details["symlink_labels"].startswith("failed: repeat 1 of 1: the run left a symlink in its outputs ")
    assert "answers.json" in details["symlink_labels"]
    assert details["hardcode_canaries"] == ("1 canary item(s) on the held-out set got their public answers: "
                                            "the code appears to hard-code public-set answers")
    assert details["edit_scorer"] == ("refused: path escapes or is unsafe: ../scorer/score.py leaves the target "
                                      "tree (uses ..)")
    assert details["edit_tests"] == ("refused: test_sumlib.py is not a mutable file; this bounty allows changes "
                                     "to: sumlib.py")
    assert details["memory_hog"] == "failed: repeat 1 of 1: the run exceeded its memory limit and was killed"
    assert details["endless_loop"] == "failed: repeat 1 of 1: the run exceeded its time limit (2 s) and was killed"
    assert details["fork_bomb"].startswith("fork_bomb refused after ")
    assert details["leak_to_logs"].startswith("printed data stayed in the sponsor's eval log")
    assert details["memorise_heldout"].startswith("3 of 3 honeypot items answered right where chance allows 3e-06 "
                                                  "(one-sided binomial p = 1e-18 over 1 repeat(s), below alpha 0.001)")
    assert report.honest.verdict == "accepted"  # and not flagged: the honest fix hits no decoy
    assert report.honest.detail == "accepted with improvement 60.00%"
    assert report.vulnerable == []
    assert "every attack was contained or flagged" in report.table()


async def test_without_isolation_the_escapes_succeed_and_are_reported(sums):
    report = await audit_bounty(sums, sandbox=LocalSandbox(), time_limit_s=2, baseline_repeats=1,
                                allow_unsandboxed=True,
                                only={"read_labels", "write_outside", "network", "cache_across_runs", "edit_scorer"})
    verdicts = _verdicts(report)
    assert verdicts == {"read_labels": "VULNERABLE", "write_outside": "VULNERABLE", "network": "VULNERABLE",
                        "cache_across_runs": "VULNERABLE", "edit_scorer": "contained"}
    details = {r.name: r.detail for r in report.results}
    assert details["read_labels"].startswith("read ")
    assert str(sums.heldout_path(0) / "labels" / "answers.json") in details["read_labels"]
    assert "4 attack(s) succeeded" in report.table()
    # The audit cleans up what its attacks wrote on the host.
    assert not list(sums.scorer_path.glob("escape-*"))
    assert not list((sums.heldout_path(0) / "labels").glob("escape-*"))


@pytest.mark.parametrize("runner", [pytest.param("bwrap", marks=pytest.mark.bwrap),
                                    # docker's run of this is ~14 s; sample_bounties/charlm covers it (slow)
                                    pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow])])
async def test_interactive_bounty(runner, echo):
    isolated = make_runner(runner)
    report = await audit_bounty(echo, sandbox=isolated, time_limit_s=2, baseline_repeats=1,
                                honest_diff=ECHO_FIX, allow_unsandboxed=True)
    verdicts = _verdicts(report)
    assert verdicts.pop("hardcode_canaries") == "skipped"
    assert verdicts.pop("symlink_labels") == "skipped"  # scored over a pipe, not from output files
    # echo declares no honeypots: the replayed leak would be paid, and the audit says so.
    assert verdicts.pop("memorise_heldout") == "VULNERABLE"
    detail = next(r.detail for r in report.results if r.name == "memorise_heldout")
    assert detail.startswith("accepted with improvement 900.00%; the bounty declares no honeypots"), detail
    assert set(verdicts.values()) == {"contained"}, {r.name: r.detail for r in report.results}
    assert report.honest.verdict == "accepted"
