"""The Ray executor's parts that need no cluster: what a node is sent, what comes back,
and the refusals an operator can cause."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from l402tui.bounty import load_bounty
from l402tui.config import ConfigError, load_config
from l402tui.evaluation.harness import EvaluationResult, RepeatRun
from l402tui.evaluation.ray_executor import _keep_logs, _unpack, pack_frozen
from l402tui.evaluation.worker import run_worker
from l402tui.store.db import Store
from tinybounty import make_sums


def _two_sets(root: Path) -> Path:
    make_sums(root)
    (root / "heldout" / "b" / "inputs").mkdir(parents=True)
    (root / "heldout" / "b" / "inputs" / "secret-b").write_text("7 8\n")
    (root / "heldout" / "b" / "labels").mkdir()
    (root / "heldout" / "b" / "labels" / "answers.json").write_text('{"secret-b": 15}')
    toml = root / "bounty.toml"
    toml.write_text(toml.read_text().replace('heldout = ["heldout/a"]', 'heldout = ["heldout/a", "heldout/b"]'))
    return root


def test_a_node_gets_only_the_heldout_set_it_judges(tmp_path):
    spec = load_bounty(_two_sets(tmp_path / "b"))
    assert spec.heldout_dirs == ("heldout/a", "heldout/b")
    (spec.root / "target" / "link").symlink_to("/etc/passwd")
    for index, (kept, empty) in enumerate([("a", "b"), ("b", "a")]):
        names = tarfile.open(fileobj=io.BytesIO(pack_frozen(spec, index))).getnames()
        assert any(n.startswith(f"bounty/heldout/{kept}/labels/") for n in names)
        assert f"bounty/heldout/{empty}" in names  # the folder, so the spec still loads ...
        assert not any(n.startswith(f"bounty/heldout/{empty}/") for n in names)  # ... without its contents
        assert "bounty/target/link" not in names
        unpacked = load_bounty(_unpack(pack_frozen(spec, index), tmp_path / f"node{index}"))
        assert unpacked.heldout_path(index).name == kept
        assert (unpacked.target_path / "sumlib.py").read_text() == (spec.target_path / "sumlib.py").read_text()


def _tarball(files: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_logs_from_a_node_land_in_the_coordinators_log_dir_and_stay_inside_it(tmp_path):
    result = EvaluationResult("ok", [], runs=[RepeatRun(0, {}, 0.1, 0.1, 1.0, 0, "run-0.log")])
    here = tmp_path / "logs" / "attempt-1"
    _keep_logs(_tarball([("run-0.log", b"solved 3 items\n")]), here, result)
    assert Path(result.runs[0].log_path) == here / "run-0.log"
    assert Path(result.runs[0].log_path).read_text() == "solved 3 items\n"
    with pytest.raises(tarfile.OutsideDestinationError):
        _keep_logs(_tarball([("../../escaped.log", b"x")]), tmp_path / "logs" / "attempt-2", result)
    assert not (tmp_path / "escaped.log").exists()


async def test_an_unknown_executor_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="expected dict"):
        load_config(tmp_path / "none.toml", env={"L402TUI_EVALUATION__RAY_RESOURCES": "[1]"})
    cfg = load_config(tmp_path / "none.toml", env={}).with_overrides({"evaluation.executor": "kubernetes"})
    store = await Store.open(tmp_path / "db.sqlite")
    try:
        with pytest.raises(ValueError, match='evaluation.executor = .kubernetes. is not known; use "local"'):
            await run_worker(store, cfg, idle_exit=True)
    finally:
        await store.close()
