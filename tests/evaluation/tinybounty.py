"""Tiny real bounties written into a temp dir, small enough that a docker repeat is
dominated by container start-up.

``sums``: each input file holds integers; the answer is their sum.  The shipped
solver forgets negative numbers (so it is wrong on some items); the honest fix
counts them.  Canary item ``c1`` exists in both sets with different contents.

``echo``: interactive.  The trusted scorer asks for a prediction, reads it, then
reveals the label; labels alternate "a", "b", so repeating the last label (the
baseline) always misses and predicting the one before it always hits.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

SUMS_SOLVER = textwrap.dedent('''\
    import json
    import os
    import sys

    import sumlib

    inputs, artifacts = sys.argv[1], sys.argv[2]
    answers = {}
    for name in sorted(os.listdir(inputs)):
        with open(os.path.join(inputs, name)) as fh:
            answers[name] = sumlib.total(fh.read().split())
    with open(os.path.join(artifacts, "answers.json"), "w") as fh:
        json.dump(answers, fh)
    print("solved", len(answers), "items")
''')

SUMS_LIB = textwrap.dedent('''\
    """The mutable part: how a list of tokens becomes a total."""

    SKIP_NEGATIVE = True


    def total(tokens):
        values = [int(t) for t in tokens]
        if SKIP_NEGATIVE:
            values = [v for v in values if v >= 0]
        return sum(values)
''')

SUMS_SCORER = textwrap.dedent('''\
    import json
    import os
    import sys

    artifacts, labels, canaries = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(os.path.join(labels, "answers.json")) as fh:
        truth = json.load(fh)
    with open(os.path.join(artifacts, "answers.json")) as fh:
        got = json.load(fh)
    correct = sum(1 for k, v in truth.items() if got.get(k) == v)
    public = {}
    if canaries:
        with open(canaries) as fh:
            public = json.load(fh)
    matches = sum(1 for k, v in public.items() if k in truth and got.get(k) == v and truth[k] != v)
    print("scored", correct, "of", len(truth), file=sys.stderr)
    print(json.dumps({"accuracy": correct / len(truth), "canary_matches": matches}))
''')

PUBLIC = {"p1": [1, 2, 3], "p2": [5, -1, 4], "p3": [10, 20], "c1": [7, -2]}
HELDOUT = {"h1": [3, 3, 3], "h2": [-4, 10], "h3": [8, -8, 1], "h4": [2, 2], "c1": [9, -1, 1]}

FIX_DIFF = textwrap.dedent('''\
    diff --git a/sumlib.py b/sumlib.py
    --- a/sumlib.py
    +++ b/sumlib.py
    @@ -1,6 +1,6 @@
     """The mutable part: how a list of tokens becomes a total."""
     
    -SKIP_NEGATIVE = True
    +SKIP_NEGATIVE = False
     
     
     def total(tokens):
''')

ECHO_PREDICTOR = textwrap.dedent('''\
    import sys

    import guess

    history = []
    for line in sys.stdin:
        line = line.strip()
        if line == "PREDICT":
            sys.stdout.write(guess.predict(history) + "\\n")
            sys.stdout.flush()
        elif line.startswith("LABEL "):
            history.append(line[6:])
        elif line == "END":
            break
''')

ECHO_GUESS = textwrap.dedent('''\
    LOOKBACK = 1


    def predict(history):
        if len(history) < LOOKBACK:
            return "a"
        return history[-LOOKBACK]
''')

ECHO_SCORER = textwrap.dedent('''\
    import json
    import os
    import sys

    labels_dir, metrics_out = sys.argv[1], sys.argv[2]
    with open(os.path.join(labels_dir, "stream.txt")) as fh:
        labels = fh.read().split()
    hits = 0
    for label in labels:
        sys.stdout.write("PREDICT\\n")
        sys.stdout.flush()
        prediction = sys.stdin.readline().strip()
        hits += prediction == label
        sys.stdout.write("LABEL " + label + "\\n")
        sys.stdout.flush()
    sys.stdout.write("END\\n")
    sys.stdout.flush()
    with open(metrics_out, "w") as fh:
        json.dump({"accuracy": hits / len(labels)}, fh)
''')

ECHO_FIX = textwrap.dedent('''\
    diff --git a/guess.py b/guess.py
    --- a/guess.py
    +++ b/guess.py
    @@ -1,4 +1,4 @@
    -LOOKBACK = 1
    +LOOKBACK = 2
     
     
     def predict(history):
''')


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _sets(root: Path, name: str, items: dict[str, list[int]]) -> None:
    for key, values in items.items():
        _write(root / name / "inputs" / key, " ".join(map(str, values)) + "\n")
    _write(root / name / "labels" / "answers.json", json.dumps({k: sum(v) for k, v in items.items()}))


def make_sums(root: Path, *, repeats: int = 1, timeout_s: float = 20, extra: str = "",
              metrics: str | None = None, test_command: str | None = None, memory_mb: int = 256,
              k_sigma: float = 2.0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _write(root / "target" / "solve.py", SUMS_SOLVER)
    _write(root / "target" / "sumlib.py", SUMS_LIB)
    _write(root / "target" / "test_sumlib.py", "import sumlib\nassert sumlib.total(['1', '2']) == 3\n")
    _write(root / "scorer" / "score.py", SUMS_SCORER)
    _sets(root, "public", PUBLIC)
    _sets(root, "heldout/a", HELDOUT)
    public_canaries = {"c1": sum(PUBLIC["c1"])}
    _write(root / "public" / "canaries.json", json.dumps(public_canaries))
    metrics = metrics or '[[metrics]]\nname = "accuracy"\ndirection = "maximize"\n'
    tests = f"test_command = {test_command}\n" if test_command else ""
    _write(root / "bounty.toml", textwrap.dedent(f'''\
        name = "sums"
        description = "Sum the integers in each file."

        [files]
        target = "target"
        mutable = ["sumlib.py"]
        public = "public"
        heldout = ["heldout/a"]
        scorer = "scorer"

        [run]
        command = ["python3", "solve.py", "{{inputs}}", "{{artifacts}}"]
        timeout_s = {timeout_s}

        [score]
        command = ["python3", "score.py", "{{artifacts}}", "{{labels}}", "{{canaries}}"]
        timeout_s = 20

        {metrics}
        [target]
        kind = "relative"
        improvement = 0.5
        min_improvement = 0.05

        [reward]
        pool_sats = 10000
        duration_hours = 24

        [constraints]
        max_changed_lines = 60
        forbidden_patterns = ["eval\\\\("]
        {tests}
        [resources]
        cpus = 1
        memory_mb = {memory_mb}
        time_limit_s = {timeout_s}

        [noise]
        repeats = {repeats}
        k_sigma = {k_sigma}

        [canaries]
        file = "public/canaries.json"
        ''') + extra)
    return root


def make_echo(root: Path, *, repeats: int = 1, timeout_s: float = 20) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _write(root / "target" / "predict.py", ECHO_PREDICTOR)
    _write(root / "target" / "guess.py", ECHO_GUESS)
    _write(root / "scorer" / "score.py", ECHO_SCORER)
    _write(root / "public" / "inputs" / "stream.txt", "a b a b a b\n")
    _write(root / "public" / "labels" / "stream.txt", "a b a b a b\n")
    _write(root / "heldout" / "a" / "inputs" / "stream.txt", "a b a b a b a b a b\n")
    _write(root / "heldout" / "a" / "labels" / "stream.txt", "a b a b a b a b a b\n")
    _write(root / "bounty.toml", textwrap.dedent(f'''\
        name = "echo"

        [files]
        mutable = ["guess.py"]
        heldout = ["heldout/a"]

        [run]
        command = ["python3", "predict.py"]
        timeout_s = {timeout_s}
        mode = "interactive"

        [score]
        command = ["python3", "score.py", "{{labels}}", "{{metrics_out}}"]

        [[metrics]]
        name = "accuracy"
        direction = "maximize"

        [target]
        improvement = 0.5

        [reward]
        pool_sats = 1000

        [resources]
        memory_mb = 256
        time_limit_s = {timeout_s}

        [noise]
        repeats = {repeats}
        '''))
    return root
