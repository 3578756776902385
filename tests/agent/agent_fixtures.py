"""A tiny real bounty built in a temp folder: guess a hidden number.

``target/model.py`` holds a marked constant; the run phase writes it as the
prediction; the scorer reports the absolute error against the labels (minimize).
The best value is 3.0, so a search over the mark can only improve by moving there.
"""

from __future__ import annotations

import sys
from pathlib import Path

PY = sys.executable

BOUNTY_TOML = """\
name = "guess"
description = "Guess the hidden number: predict.py prints GUESS; lower error is better."

[files]
target = "target"
mutable = ["model.py"]
public = "public"
heldout = ["heldout/a"]
scorer = "scorer"

[run]
command = ["{py}", "predict.py", "{{inputs}}", "{{artifacts}}"]
timeout_s = 20

[score]
command = ["{py}", "score.py", "{{artifacts}}", "{{labels}}", "{{measurements}}"]
timeout_s = 20

[[metrics]]
name = "error"
direction = "minimize"

[target]
improvement = 0.5
min_improvement = 0.01

[reward]
pool_sats = 10000
duration_hours = 1

[noise]
repeats = {repeats}
k_sigma = 2.0
"""

MODEL = """\
GUESS = 0.5  # search: float(0.01, 100.0, log)
STEPS = 4  # search: int(1, 16)
MODE = "plain"  # search: choice("plain", "double")
"""

PREDICT = """\
import json, pathlib, sys
import model
inputs, artifacts = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = len(list(inputs.iterdir()))
guess = model.GUESS * (2 if model.MODE == "double" else 1)
(artifacts / "prediction.json").write_text(json.dumps({"guess": guess, "n": n}))
"""

SCORE = """\
import json, pathlib, sys
artifacts, labels, measurements = map(pathlib.Path, sys.argv[1:4])
pred = json.loads((artifacts / "prediction.json").read_text())
truth = float((labels / "answer.txt").read_text())
print("scoring...")
print(json.dumps({"error": abs(pred["guess"] - truth), "inputs_seen": pred["n"]}))
"""


def make_bounty(root: Path, *, repeats: int = 1, truth: float = 3.0) -> Path:
    (root / "target").mkdir(parents=True)
    (root / "target" / "model.py").write_text(MODEL)
    (root / "target" / "predict.py").write_text(PREDICT)
    for part, value in (("public", truth), ("heldout/a", truth + 0.25)):
        (root / part / "inputs").mkdir(parents=True)
        (root / part / "labels").mkdir(parents=True)
        (root / part / "inputs" / "item1.txt").write_text("x")
        (root / part / "labels" / "answer.txt").write_text(str(value))
    (root / "scorer").mkdir()
    (root / "scorer" / "score.py").write_text(SCORE)
    (root / "bounty.toml").write_text(BOUNTY_TOML.format(py=PY, repeats=repeats))
    return root


class ScriptedProposer:
    """Fixed edits, one per experiment: ("guess", value) sets GUESS, ("write", rel, text)
    writes a file in the work tree, ("fail", why) makes the proposer fail, ("none",)
    changes nothing."""

    name = "scripted"

    def __init__(self, script: list[tuple]):
        self.script = list(script)

    async def propose(self, ctx):
        from l402tui.agent.proposers import Proposal, ProposerFailed

        step = self.script.pop(0)
        if step[0] == "guess":
            model = ctx.target / "model.py"
            lines = model.read_text().splitlines(keepends=True)
            lines[0] = f"GUESS = {step[1]}  # search: float(0.01, 100.0, log)\n"
            model.write_text("".join(lines))
            return Proposal(f"GUESS = {step[1]}")
        if step[0] == "write":
            (ctx.root / step[1]).write_text(step[2])
            return Proposal(f"write {step[1]}")
        if step[0] == "fail":
            raise ProposerFailed(step[1])
        return Proposal("nothing")
