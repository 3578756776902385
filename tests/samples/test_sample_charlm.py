"""sample_bounties/charlm: interactive, label-safe scoring over the pipe protocol.

Training is capped at a fixed number of steps (CHARLM_MAX_STEPS) so results do not
depend on the machine's load, and the time budget is shortened (CHARLM_TRAIN_SECONDS).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from l402tui.evaluation.antigaming import binomial_tail, honeypot_flag
from tests.samples.contract import ROOT, evaluate, replace_in

BOUNTY = "charlm"
QUICK = {"CHARLM_MAX_STEPS": "1500", "CHARLM_TRAIN_SECONDS": "8"}

MEMORISER = '''

class Memoriser:
    """Gaming on purpose: predicts from a copy of the public eval text (memo.txt)."""

    def __init__(self, honest):
        self.honest = honest
        self.memo = open("memo.txt", "rb").read()

    def predict(self, history):
        probs = self.honest.predict(history)
        tail = bytes(history[-15:])
        at = self.memo.rfind(tail) if tail else -1
        if at >= 0 and at + len(tail) < len(self.memo):
            probs = probs * 0.01
            probs[self.memo[at + len(tail)]] += 0.99
        return probs


_honest_train = train


def train(text, deadline, log=print):
    return Memoriser(_honest_train(text, deadline, log))
'''


def test_validate_passes():
    out = subprocess.run([sys.executable, "-m", "l402tui.cli", "bounty", "validate", str(ROOT / "sample_bounties" / BOUNTY)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "charlm: valid" in out.stdout


@pytest.fixture(scope="module")
def public_run(bounty, tmp_path_factory):
    return evaluate(bounty, "public", tmp_path_factory.mktemp("public"), env=QUICK)


def test_baseline_on_public_scores_every_byte(bounty, public_run):
    assert public_run.run_exit == 0, public_run.run_log
    assert public_run.score_exit == 0, public_run.score_log
    m = public_run.metrics
    assert m["bytes"] == len((bounty.public_path / "labels" / "val.txt").read_bytes())
    assert 2.5 < m["val_bpb"] < 5.0  # far better than uniform (8 bits), far from a good model
    assert m["canary_matches"] == 0
    assert m["cpu_s"] > 0
    assert "trained 1500 steps" in public_run.run_log


def test_baseline_on_heldout(bounty, tmp_path):
    result = evaluate(bounty, "heldout/a", tmp_path, env=QUICK)
    assert result.score_exit == 0, result.score_log
    m = result.metrics
    assert 2.5 < m["val_bpb"] < 5.0
    assert m["canary_matches"] == 0
    honeypot_bytes = sum(e - s for s, e in json.loads((bounty.root / "heldout/a/labels/honeypots.json").read_text())["ranges"])
    assert m["bytes"] + honeypot_bytes == len((bounty.root / "heldout/a/labels/val.txt").read_bytes())
    assert m["honeypot_items"] == honeypot_bytes == 200
    assert honeypot_flag([m], bounty.honeypot_alpha) is None
    print(f"charlm honest heldout/a: honeypot k={m['honeypot_hits']:.0f} of 200, "
          f"p={binomial_tail(200, int(m['honeypot_hits']), m['honeypot_chance']):.3g}")


@pytest.mark.slow
def test_memorising_the_heldout_text_is_flagged_knows_heldout(bounty, tmp_path):
    def leak(work: Path) -> None:
        (work / "memo.txt").write_bytes((bounty.root / "heldout/a/labels/val.txt").read_bytes())
        (work / "model.py").write_text((work / "model.py").read_text() + MEMORISER)

    result = evaluate(bounty, "heldout/a", tmp_path, edit=leak, env=QUICK)
    assert result.score_exit == 0, result.score_log
    m = result.metrics
    assert m["val_bpb"] < 1.0
    flag = honeypot_flag([m], bounty.honeypot_alpha)
    assert flag.kind == "knows_heldout", m
    assert m["honeypot_hits"] > 100  # all but the first bytes of each run, before the memo's context matches


@pytest.mark.slow
def test_better_hyperparameters_lower_val_bpb(bounty, public_run, tmp_path):
    def tune(work: Path) -> None:
        model = work / "model.py"
        for old, new in [('OPTIMIZER = "sgd"', 'OPTIMIZER = "adam"'), ("LEARNING_RATE = 0.02", "LEARNING_RATE = 0.005"),
                         ("BATCH_SIZE = 16", "BATCH_SIZE = 32"), ("HIDDEN = 48", "HIDDEN = 96"),
                         ("CONTEXT = 3", "CONTEXT = 5"), ("EMBED = 8", "EMBED = 10")]:
            replace_in(model, old, new)

    result = evaluate(bounty, "public", tmp_path, edit=tune, env=QUICK)
    assert result.score_exit == 0, result.score_log
    assert result.metrics["val_bpb"] < public_run.metrics["val_bpb"] - 0.3


@pytest.mark.slow
def test_memorising_the_public_text_trips_the_canaries(bounty, tmp_path):
    def cheat(work: Path) -> None:
        (work / "memo.txt").write_bytes((bounty.public_path / "labels" / "val.txt").read_bytes())
        (work / "model.py").write_text((work / "model.py").read_text() + MEMORISER)

    result = evaluate(bounty, "heldout/a", tmp_path, edit=cheat, env=QUICK)
    assert result.score_exit == 0, result.score_log
    assert result.metrics["canary_matches"] == 2  # both canary groups


def test_a_model_that_prints_cannot_corrupt_the_protocol_and_bad_vectors_are_refused(bounty, tmp_path):
    def chatty_and_broken(work: Path) -> None:
        model = work / "model.py"
        replace_in(model, "    rng = np.random.default_rng(SEED)\n",
                   "    rng = np.random.default_rng(SEED)\n    print('hello from the model')\n")
        replace_in(model, "        return self.vocab.to_bytes(probs[0].astype(np.float64))",
                   "        return self.vocab.to_bytes(probs[0].astype(np.float64)) * 3.0")

    result = evaluate(bounty, "public", tmp_path, edit=chatty_and_broken,
                      env={**QUICK, "CHARLM_MAX_STEPS": "10"})
    assert "hello from the model" in result.run_log  # went to stderr, not into the pipe
    assert result.score_exit == 1
    assert "prediction 0 is not a probability distribution" in result.score_log


def test_canary_digits_differ_between_public_and_heldout(bounty):
    groups = json.loads((bounty.root / bounty.canaries).read_text())["groups"]
    items = [item for group in groups.values() for item in group]
    assert len(items) == 20
    public = (bounty.public_path / "labels" / "val.txt").read_text()
    for held in bounty.heldout_dirs:
        text = (bounty.root / held / "labels" / "val.txt").read_text()
        assert text != public
        for item in items:
            assert item["prefix"] + item["answer"] in public
            at = text.index(item["prefix"]) + len(item["prefix"])
            assert text[at].isdigit() and text[at] != item["answer"], (held, item)


def test_the_target_unit_tests_pass(bounty):
    out = subprocess.run([sys.executable if a == "python3" else a for a in bounty.test_command],
                         cwd=bounty.target_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
