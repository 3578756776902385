"""Outputs a hostile run leaves for the host to copy: whatever their shape, the repeat ends
with a code of the run's own (output_invalid, disk_limit), never the coordinator's
internal_error with a run-chosen path in its detail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from l402tui.evaluation.harness import evaluate
from l402tui.evaluation.phases import BYTES_PER_ENTRY, PhaseFailed, trusted_copy
from l402tui.evaluation.run_disk import _copy_back
from tinybounty import FIX_DIFF

STEP = "d" * 200


def _deep(root: Path, levels: int = 40) -> Path:
    """A tree deeper than PATH_MAX (made with relative paths, as a run can)."""
    root.mkdir(parents=True, exist_ok=True)
    here = os.open(root, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir(STEP, dir_fd=here)
            nxt = os.open(STEP, os.O_RDONLY, dir_fd=here)
            os.close(here)
            here = nxt
    finally:
        os.close(here)
    return root


def test_a_tree_deeper_than_path_max_is_output_invalid(tmp_path):
    with pytest.raises(PhaseFailed) as caught:
        trusted_copy(_deep(tmp_path / "artifacts"), tmp_path / "scored", 64 << 20)
    assert caught.value.code == "output_invalid"
    (tmp_path / "back").mkdir()
    with pytest.raises(PhaseFailed) as caught:
        _copy_back(_deep(tmp_path / "run"), tmp_path / "back", 64 << 20, 1000)
    assert caught.value.code == "output_invalid"
    assert not any((tmp_path / "back").iterdir())  # nothing half-copied is left for the scorer


def test_too_many_entries_is_disk_limit(tmp_path):
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    cap = 64 * BYTES_PER_ENTRY
    for i in range(65):
        (artifacts / f"f{i}").touch()
    with pytest.raises(PhaseFailed) as caught:
        trusted_copy(artifacts, tmp_path / "scored", cap)
    assert caught.value.code == "disk_limit"
    (artifacts / "f0").unlink()
    assert trusted_copy(artifacts, tmp_path / "ok", cap) == tmp_path / "ok"


async def test_a_run_leaving_a_too_deep_tree_fails_as_output_invalid(isolated, sums):
    code = ("import atexit, os\n"
            "def _deep():\n"
            "    os.chdir(os.environ['L402_ARTIFACTS'])\n"
            "    for _ in range(40):\n"
            f"        os.mkdir({STEP!r}); os.chdir({STEP!r})\n"
            "atexit.register(_deep)\n")
    lines = code.splitlines()
    diff = FIX_DIFF.replace("+SKIP_NEGATIVE = False\n", "+SKIP_NEGATIVE = False\n" + "".join(f"+{l}\n" for l in lines)
                            ).replace("@@ -1,6 +1,6 @@", f"@@ -1,6 +1,{6 + len(lines)} @@")
    result = await evaluate(sums, diff, sandbox=isolated)
    assert result.status == "failed" and result.code == "output_invalid"
    assert STEP not in " ".join(result.reasons)  # the detail names no run-chosen path either
