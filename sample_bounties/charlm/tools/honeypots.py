"""Plant honeypots in every held-out text of charlm (run after make_data.py; idempotent).

A honeypot is a line of letters drawn uniformly at random, inserted between verses.
No model can know them in advance: whatever it predicts, the chance that a letter is
its single most likely byte is at most 1/26.  A model that does better has seen the
held-out text (a leak replayed), which ``antigaming.honeypot_flag`` tests.  The
scorer leaves these bytes out of val_bpb and reports them apart; their byte ranges
are in labels/honeypots.json, which only the trusted scorer reads.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
ALPHABET = "abcdefghijklmnopqrstuvwxyz"
RUNS, RUN_LENGTH = 4, 50
SEEDS = {"heldout/a": 404, "heldout/b": 505}


def without_honeypots(text: bytes, declared: dict) -> bytes:
    for start, end in sorted(declared.get("ranges", []), reverse=True):
        text = text[:start] + text[end + 1:]  # the run and its newline
    return text


def plant(set_dir: Path, seed: int) -> dict:
    labels = set_dir / "labels"
    declared_file = labels / "honeypots.json"
    text = (labels / "val.txt").read_bytes()
    if declared_file.exists():
        text = without_honeypots(text, json.loads(declared_file.read_text(encoding="utf-8")))
    rng = random.Random(seed)
    lines = text.split(b"\n")
    # Evenly spread, never first: the model needs some context to be judged on.
    at = [len(lines) * (2 * i + 1) // (2 * RUNS) + 1 for i in range(RUNS)]
    runs = ["".join(rng.choice(ALPHABET) for _ in range(RUN_LENGTH)).encode("ascii") for _ in range(RUNS)]
    for where, run in sorted(zip(at, runs), reverse=True):
        lines.insert(where, run)
    out = b"\n".join(lines)
    ranges, pos = [], 0
    for line in lines:
        if line in runs:
            ranges.append([pos, pos + len(line)])
        pos += len(line) + 1
    declared = {"about": "byte ranges [start, end) of val.txt drawn uniformly from the alphabet; "
                         "scored apart, left out of val_bpb",
                "alphabet": ALPHABET, "chance": 1 / len(ALPHABET), "ranges": ranges}
    (labels / "val.txt").write_bytes(out)
    declared_file.write_text(json.dumps(declared, indent=1) + "\n", encoding="utf-8")
    return declared


def main() -> None:
    for name, seed in SEEDS.items():
        declared = plant(HERE / name, seed)
        print(f"{name}: {sum(e - s for s, e in declared['ranges'])} honeypot bytes in {len(declared['ranges'])} runs")


if __name__ == "__main__":
    main()
