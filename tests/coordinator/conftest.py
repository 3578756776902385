"""A tiny real bounty, a simulated Lightning network and a coordinator over them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from l402tui.config import load_config
from l402tui.coordinator.service import Coordinator
from l402tui.lightning.sim import SimNetwork
from l402tui.store import Store

BOUNTY_TOML = '''\
name = "Tiny sum"
description = "Sum numbers faster and more accurately."

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

[target]
kind = "relative"
improvement = 0.5
min_improvement = 0.01

[reward]
pool_sats = 100000
duration_hours = @HOURS@
@STAKE@

[noise]
repeats = 1
k_sigma = 2.0
'''

SOLVE = '''\
import json, pathlib, sys
inputs, artifacts = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
nums = json.loads((inputs / "nums.json").read_text())
OFFSET = 3
(artifacts / "answer.json").write_text(json.dumps(sum(nums) + OFFSET))
'''

SCORE = '''\
import json, pathlib, sys
artifacts, labels = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
got = json.loads((artifacts / "answer.json").read_text())
want = json.loads((labels / "sum.json").read_text())
print(json.dumps({"error": abs(got - want)}))
'''

GOOD_DIFF = '''\
--- a/solve.py
+++ b/solve.py
@@ -1,5 +1,5 @@
 import json, pathlib, sys
 inputs, artifacts = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
 nums = json.loads((inputs / "nums.json").read_text())
-OFFSET = 3
+OFFSET = 1
 (artifacts / "answer.json").write_text(json.dumps(sum(nums) + OFFSET))
'''


def make_bounty(root: Path, *, hours: float = 0.1, stake_sats: int = 0, name: str = "tiny") -> Path:
    folder = root / name
    (folder / "target").mkdir(parents=True)
    (folder / "target" / "solve.py").write_text(SOLVE)
    for part, nums in (("public", [1, 2, 3]), ("heldout/a", [10, 20]), ("heldout/b", [5, 5, 5])):
        (folder / part / "inputs").mkdir(parents=True)
        (folder / part / "labels").mkdir(parents=True)
        (folder / part / "inputs" / "nums.json").write_text(json.dumps(nums))
        (folder / part / "labels" / "sum.json").write_text(json.dumps(sum(nums)))
    (folder / "scorer").mkdir()
    (folder / "scorer" / "score.py").write_text(SCORE)
    stake = f"stake_sats = {stake_sats}" if stake_sats else ""
    (folder / "bounty.toml").write_text(BOUNTY_TOML.replace("@HOURS@", str(hours)).replace("@STAKE@", stake))
    return folder


@pytest.fixture
def bounty_dir(tmp_path) -> Path:
    return make_bounty(tmp_path / "sponsor")


@pytest.fixture
def cfg(tmp_path):
    data = tmp_path / "data"
    return load_config(tmp_path / "no-config.toml", env={}).with_overrides({"paths.data_dir": str(data)})


@pytest.fixture
async def net(cfg):
    network = SimNetwork.from_config(cfg)
    await network.create_node("coordinator", 0, exist_ok=True)
    await network.create_node("sponsor", 10_000_000_000, exist_ok=True)
    await network.create_node("agent-1", 100_000_000, exist_ok=True)
    yield network
    await network.close()


@pytest.fixture
async def coordinator(cfg, net):
    store = await Store.open(cfg.db_path)
    coord = Coordinator(cfg, store, net.node("coordinator"))
    coord.tick_s = 0.05
    yield coord
    await coord.stop()
    await store.close()


def diff_text() -> str:
    return textwrap.dedent(GOOD_DIFF)


@pytest.fixture
async def server(coordinator):
    """The HTTP app on a real loopback socket; yields (base_url, coordinator)."""
    from aiohttp.test_utils import TestServer

    from l402tui.coordinator.admin import ensure_admin_macaroon
    from l402tui.coordinator.app import create_app

    app = create_app(coordinator, manage_lifecycle=False)
    await coordinator.start()
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    admin_path = await ensure_admin_macaroon(coordinator.store, coordinator.data_dir)
    srv.admin_token = admin_path.read_text().strip()
    yield srv
    await srv.close()


def url(srv, path: str) -> str:
    return str(srv.make_url(path))
