"""`l402tui bounty validate` reports every problem at once, one precise line each."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from l402tui.bounty import BountyInvalid, load_bounty
from l402tui.cli import main

from .conftest import VALID_TOML, make_bounty


def _validate(directory: Path):
    return CliRunner().invoke(main, ["bounty", "validate", str(directory)])


def test_valid_bounty_passes(bounty_dir: Path) -> None:
    result = _validate(bounty_dir)
    assert result.exit_code == 0, result.output
    assert "Tiny: valid" in result.output
    spec = load_bounty(bounty_dir)
    assert spec.mutable == ("solve.py",)
    assert [m.name for m in spec.metrics] == ["error", "correct_frac"]
    assert spec.metrics[1].guard is True
    assert spec.heldout_dirs == ("heldout/a", "heldout/b")
    assert spec.primary_metric.name == "error"


def _line_of(toml: str, needle: str) -> int:
    for number, line in enumerate(toml.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


# (description, edit of the valid TOML, expected message fragment, the text on the line it must point at)
BROKEN = [
    ("direction typo", ('direction = "minimize"', 'direction = "min"'),
     'metrics[0].direction must be "minimize" or "maximize", got "min"', 'direction = "min"'),
    ("second metric direction", ('direction = "maximize"', 'direction = "up"'),
     'metrics[1].direction must be "minimize" or "maximize", got "up"', 'direction = "up"'),
    ("weight is a string", ("weight = 1.0", 'weight = "heavy"'),
     "metrics[0].weight must be a number, got a string 'heavy'", 'weight = "heavy"'),
    ("negative pool", ("pool_sats = 100000", "pool_sats = -5"),
     "reward.pool_sats must be > 0, got -5", "pool_sats = -5"),
    ("pool as float", ("pool_sats = 100000", "pool_sats = 1.5"),
     "reward.pool_sats must be an integer, got a number 1.5", "pool_sats = 1.5"),
    ("relative target as percent", ("improvement = 0.05", "improvement = 5"),
     "target.improvement is relative (a fraction)", "improvement = 5"),
    ("unknown target kind", ('kind = "relative"', 'kind = "percent"'),
     'target.kind must be "relative" or "absolute", got "percent"', 'kind = "percent"'),
    ("min above target", ("min_improvement = 0.005", "min_improvement = 0.5"),
     "target.min_improvement (0.5) must not exceed target.improvement (0.05)", "min_improvement = 0.5"),
    ("bad regex", ('forbidden_patterns = ["import socket"]', 'forbidden_patterns = ["import (socket"]'),
     "constraints.forbidden_patterns[0] is not a valid regex", "forbidden_patterns"),
    ("unknown placeholder", ('"{inputs}", "{artifacts}"]', '"{input}", "{artifacts}"]'),
     "run.command uses unknown placeholder {input}", 'command = ["python3", "solve.py"'),
    ("labels in the run phase", ('"{inputs}", "{artifacts}"]', '"{labels}", "{artifacts}"]'),
     "run.command uses unknown placeholder {labels}", 'command = ["python3", "solve.py"'),
    ("mutable glob matches nothing", ('mutable = ["solve.py"]', 'mutable = ["nothing.py"]'),
     "files.mutable glob 'nothing.py' matches no file in target/", "mutable ="),
    ("mutable escapes", ('mutable = ["solve.py"]', 'mutable = ["../x.py"]'),
     "files.mutable[0] must stay inside files.target", "mutable ="),
    ("missing held-out dir", ('heldout = ["heldout/a", "heldout/b"]', 'heldout = ["heldout/a", "heldout/zz"]'),
     "files.heldout names 'heldout/zz', which is not a directory", "heldout ="),
    ("held-out inside target", ('heldout = ["heldout/a", "heldout/b"]', 'heldout = ["target"]'),
     "lies inside files.target, so it would ship to agents", "heldout ="),
    ("unknown key", ("k_sigma = 2.0", "k_sigma = 2.0\nsigma_k = 3"),
     "noise.sigma_k is not a known key", "sigma_k = 3"),
    ("repeats zero", ("repeats = 3", "repeats = 0"), "noise.repeats must be > 0, got 0", "repeats = 0"),
    ("tiny memory", ("memory_mb = 256", "memory_mb = 8"),
     "resources.memory_mb is 8 MB; at least 32 MB", "memory_mb = 8"),
    ("naive deadline", ("duration_hours = 48", "deadline = 2026-12-31T00:00:00"),
     "reward.deadline must carry a time zone", "deadline = 2026"),
    ("canary file missing", ('file = "public/canaries.json"', 'file = "public/nope.json"'),
     "canaries.file names 'public/nope.json', which is not a file", 'file = "public/nope.json"'),
    ("guard weight zero not guard", ("guard = true", "guard = false"),
     "metrics[1].weight is 0 and the metric is not a guard", "weight = 0.0"),
    ("harness metric name", ('name = "error"\n', 'name = "error"\nsource = "harness"\n'),
     'with source = "harness" must be one of wall_s, cpu_s, peak_rss_mb', 'name = "error"'),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_each_broken_bounty_gives_one_precise_line(tmp_path: Path, case) -> None:
    _, (old, new), fragment, line_text = case
    assert old in VALID_TOML
    toml = VALID_TOML.replace(old, new, 1)
    directory = make_bounty(tmp_path / "b", toml)
    result = _validate(directory)
    assert result.exit_code == 2, result.output
    problems = [l for l in result.output.splitlines() if "bounty.toml" in l]
    assert len(problems) == 1, result.output
    expected_line = _line_of(toml, line_text)
    assert re.match(rf".*bounty\.toml:{expected_line}: ", problems[0]), (problems[0], expected_line)
    assert fragment in problems[0]
    assert result.output.rstrip().endswith("1 problem found")


def test_many_problems_reported_at_once(tmp_path: Path) -> None:
    toml = VALID_TOML
    for _, (old, new), _, _ in BROKEN[:6]:
        toml = toml.replace(old, new, 1)
    directory = make_bounty(tmp_path / "b", toml)
    result = _validate(directory)
    assert result.exit_code == 2
    lines = [l for l in result.output.splitlines() if "bounty.toml:" in l]
    # pool_sats is edited twice by the first six cases (negative, then float is a no-op), so 5 distinct problems
    assert len(lines) >= 5, result.output
    with pytest.raises(BountyInvalid) as info:
        load_bounty(directory)
    assert len(info.value.problems) == len(lines)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    toml = VALID_TOML.replace('name = "Tiny"', 'name = "Tiny', 1)
    result = _validate(make_bounty(tmp_path / "b", toml))
    assert result.exit_code == 2
    assert "bounty.toml:1: TOML syntax error" in result.output


def test_missing_required_keys(tmp_path: Path) -> None:
    toml = "\n".join(l for l in VALID_TOML.splitlines() if not l.startswith(("pool_sats", "improvement")))
    result = _validate(make_bounty(tmp_path / "b", toml + "\n"))
    assert result.exit_code == 2
    assert "reward.pool_sats is required" in result.output
    assert "target.improvement is required" in result.output


def test_missing_folder(tmp_path: Path) -> None:
    result = _validate(tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "bounty.toml: not found" in result.output
