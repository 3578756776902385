from __future__ import annotations

from pathlib import Path

import pytest

VALID_TOML = '''\
name = "Tiny"
description = "Make it better."

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
name = "error"
direction = "minimize"
weight = 1.0

[[metrics]]
name = "correct_frac"
direction = "maximize"
weight = 0.0
guard = true
tolerance = 0.0

[target]
kind = "relative"
improvement = 0.05
min_improvement = 0.005

[reward]
pool_sats = 100000
duration_hours = 48

[constraints]
max_changed_lines = 100
forbidden_patterns = ["import socket"]

[resources]
cpus = 1
memory_mb = 256
time_limit_s = 60

[noise]
repeats = 3
k_sigma = 2.0

[canaries]
file = "public/canaries.json"
'''


def make_bounty(root: Path, toml: str = VALID_TOML) -> Path:
    (root / "target").mkdir(parents=True)
    (root / "target" / "solve.py").write_text("print('hi')\n")
    for d in ("public/inputs", "public/labels", "heldout/a/inputs", "heldout/a/labels",
              "heldout/b/inputs", "heldout/b/labels", "scorer"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "public" / "inputs" / "1.txt").write_text("1 2\n")
    (root / "public" / "labels" / "1.txt").write_text("3\n")
    (root / "public" / "canaries.json").write_text("{}\n")
    (root / "heldout" / "a" / "inputs" / "1.txt").write_text("5 6\n")
    (root / "heldout" / "a" / "labels" / "1.txt").write_text("11\n")
    (root / "heldout" / "b" / "inputs" / "1.txt").write_text("7 8\n")
    (root / "heldout" / "b" / "labels" / "1.txt").write_text("15\n")
    (root / "scorer" / "score.py").write_text("print('{}')\n")
    (root / "bounty.toml").write_text(toml)
    return root


@pytest.fixture
def bounty_dir(tmp_path: Path) -> Path:
    return make_bounty(tmp_path / "bounty")
