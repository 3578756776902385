"""sample_bounties/gpumlp: validates, runs by the contract on the CPU path, an honest tuning
is better, leaked labels hit the honeypots, and (bwrap) every attack is contained or flagged.

The GPU path (CuPy or PyTorch with CUDA) runs on a machine with an NVIDIA GPU:
bench/gpu_sample.sh."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from l402tui.evaluation.antigaming import honeypot_flag
from tests.samples.contract import ROOT, evaluate, replace_in

BOUNTY = "gpumlp"
CPU = {"L402_BACKEND": "numpy"}  # the CPU path, whatever this machine has
# An honest tuning within the same budget (a wider layer, a larger step on larger batches).
TUNED = [("HIDDEN = 32 ", "HIDDEN = 128 "), ("LEARNING_RATE = 0.02 ", "LEARNING_RATE = 0.1 "),
         ("BATCH_SIZE = 64 ", "BATCH_SIZE = 128 ")]


def tune(work: Path) -> None:
    for old, new in TUNED:
        replace_in(work / "model.py", old, new)


def test_validate_passes():
    out = subprocess.run([sys.executable, "-m", "l402tui.cli", "bounty", "validate", str(ROOT / "sample_bounties" / BOUNTY)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "gpumlp: valid" in out.stdout


def test_the_bounty_asks_for_one_gpu_and_pays_for_accuracy(bounty):
    assert bounty.gpu and [m.name for m in bounty.metrics] == ["accuracy"]


def test_baseline_on_public_runs_on_the_cpu_and_scores(bounty, tmp_path):
    result = evaluate(bounty, "public", tmp_path, env=CPU)
    assert result.run_exit == 0, result.run_log
    assert "backend numpy" in result.run_log
    assert 0.5 < result.metrics["accuracy"] < 0.8
    assert "honeypot_items" not in result.metrics  # the public set has none
    assert result.measurements["wall_s"] > 0


def test_heldout_sets_carry_honeypots_and_the_baseline_is_not_flagged(bounty, tmp_path):
    for held in bounty.heldout_dirs:
        declared = json.loads((bounty.root / held / "labels" / "honeypots.json").read_text())
        labels = json.loads((bounty.root / held / "labels" / "labels.json").read_text())
        assert len(declared["items"]) == 24 and declared["chance"] == pytest.approx(1 / 9)
        assert all(labels[p] != truth for p, truth in declared["items"].items())  # decoys differ
        result = evaluate(bounty, held, tmp_path / held.replace("/", "-"), env=CPU)
        assert result.metrics["honeypot_items"] == 24
        assert honeypot_flag([result.metrics], bounty.honeypot_alpha) is None


def test_an_honest_tuning_beats_the_target_on_heldout(bounty, tmp_path):
    base = evaluate(bounty, "heldout/a", tmp_path / "base", env=CPU).metrics["accuracy"]
    tuned = evaluate(bounty, "heldout/a", tmp_path / "tuned", edit=tune, env=CPU).metrics["accuracy"]
    assert tuned / base - 1 > bounty.target_improvement, (base, tuned)


def test_replaying_leaked_labels_hits_every_honeypot_and_is_flagged(bounty, tmp_path):
    def leak(work: Path) -> None:  # the fixed driver itself replays, to test the scorer alone
        (work / "leaked.json").write_text((bounty.root / "heldout/b/labels/labels.json").read_text())
        replace_in(work / "run.py", '        classes = b.to_list(predict(b.asarray(points["x"])))',
                   '        leaked = json.loads((HERE / "leaked.json").read_text())\n'
                   '        classes = [leaked[i] for i in ids]')


    result = evaluate(bounty, "heldout/b", tmp_path, edit=leak, env=CPU)
    m = result.metrics
    assert (m["honeypot_items"], m["honeypot_hits"]) == (24, 24)
    assert m["accuracy"] == pytest.approx(1 - 24 / 1000)  # the decoys are wrong answers
    assert honeypot_flag([m], bounty.honeypot_alpha).kind == "knows_heldout"


def test_a_malformed_prediction_file_scores_zero_not_a_crash(bounty, tmp_path):
    def garbage(work: Path) -> None:
        replace_in(work / "run.py", 'json.dumps(dict(zip(ids, classes)), sort_keys=True)', '"not json"')

    result = evaluate(bounty, "heldout/a", tmp_path, edit=garbage, env=CPU)
    assert result.score_exit == 0 and result.metrics["accuracy"] == 0.0


def test_the_target_unit_tests_pass(bounty):
    out = subprocess.run([sys.executable if a == "python3" else a for a in bounty.test_command],
                         cwd=bounty.target_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
@pytest.mark.bwrap
async def test_every_attack_is_contained_or_flagged_on_the_cpu_path(bounty):
    """The audit, under bubblewrap, with the GPU request dropped (the CPU path CI runs)."""
    from l402tui.evaluation.audit import audit_bounty
    from tests.evaluation.runners_fixture import make_runner

    sandbox = make_runner("bwrap")
    old = (bounty.target_path / "model.py").read_text()
    new = old
    for before, after in TUNED:
        new = new.replace(before, after)
    import difflib

    honest = "diff --git a/model.py b/model.py\n" + "".join(difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), "a/model.py", "b/model.py"))
    report = await audit_bounty(dataclasses.replace(bounty, gpu=False), sandbox=sandbox, time_limit_s=20,
                                baseline_repeats=1, honest_diff=honest, allow_unsandboxed=True, extra_env=CPU)
    print(report.table())
    assert report.vulnerable == [], report.table()
    assert report.honest.verdict == "accepted", report.table()
    verdicts = {r.name: r.verdict for r in report.results}
    assert verdicts["memorise_heldout"] == "flagged", report.table()
