"""Build gpumlp's data (deterministic; run from anywhere, then tools/honeypots.py).

Ten classes in 32 dimensions, each a mixture of three Gaussian clusters placed at random, so
a linear model does poorly and a well-trained MLP does well.  target/data/train.npz (shipped
to agents), public/ and each held-out set are independent draws of the same distribution.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy

HERE = Path(__file__).resolve().parent.parent
DIM, CLASSES, CLUSTERS = 32, 10, 3
SPREAD = 1.6
SETS = {"public": (1000, 11), "heldout/a": (1000, 12), "heldout/b": (1000, 13)}


def centres() -> numpy.ndarray:
    return numpy.random.default_rng(2024).standard_normal((CLASSES, CLUSTERS, DIM)) * 1.0


def draw(n: int, seed: int) -> tuple[numpy.ndarray, numpy.ndarray]:
    rng = numpy.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    k = rng.integers(0, CLUSTERS, n)
    x = centres()[y, k] + rng.standard_normal((n, DIM)) * SPREAD / DIM ** 0.5 * 4
    return x.astype("float32"), y.astype("int64")


def main() -> None:
    x, y = draw(4000, 10)
    (HERE / "target" / "data").mkdir(parents=True, exist_ok=True)
    numpy.savez_compressed(HERE / "target" / "data" / "train.npz", x=x, y=y)
    for name, (n, seed) in SETS.items():
        x, y = draw(n, seed)
        ids = numpy.array([f"{name.replace('/', '-')}-{i:04d}" for i in range(n)])
        (HERE / name / "inputs").mkdir(parents=True, exist_ok=True)
        (HERE / name / "labels").mkdir(parents=True, exist_ok=True)
        numpy.savez_compressed(HERE / name / "inputs" / "points.npz", ids=ids, x=x)
        labels = dict(zip(ids.tolist(), y.tolist()))
        (HERE / name / "labels" / "labels.json").write_text(json.dumps(labels, sort_keys=True) + "\n")
        (HERE / name / "labels" / "honeypots.json").unlink(missing_ok=True)
        print(f"{name}: {n} points")


if __name__ == "__main__":
    main()
