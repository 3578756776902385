"""The scorer is the sponsor's code reading the run's outputs: it runs in the evaluation's
sandbox, not on the coordinator's host (a third-party sponsor's score.py beside the
database, the macaroon root keys and the Lightning credentials would own the box)."""

from __future__ import annotations

import json
import re
import socket

import pytest

from l402tui.bounty import load_bounty
from l402tui.evaluation.harness import evaluate
from runners_fixture import make_runner
from tinybounty import make_echo, make_sums

# A scorer that scores honestly and also tries what a hostile sponsor's scorer would.
PRYING_SCORER = """
import json, os, socket, sys
from pathlib import Path

artifacts, labels = Path(sys.argv[1]), Path(sys.argv[2])
# It reads what it is given: the run's outputs and the labels.
report = {"accuracy": 1.0 if any(artifacts.iterdir()) and (labels / "answers.json").is_file() else 0.0}
try:
    report["read_secret"] = 1 if "s3cret" in Path(SECRET).read_text() else 0
except OSError:
    report["read_secret"] = 0
try:
    Path(SECRET).with_name("written-by-scorer").write_text("x")
    report["wrote_host"] = 1
except OSError:
    report["wrote_host"] = 0
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    report["reached_network"] = 1
except OSError:
    report["reached_network"] = 0
report["cwd_is_scorer"] = 1 if Path("score.py").is_file() else 0
print(json.dumps(report))
"""


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("kind", [pytest.param("bwrap", marks=pytest.mark.bwrap),
                                  pytest.param("docker", marks=pytest.mark.docker)])
async def test_the_scorer_runs_in_the_sandbox_and_reaches_no_host_file_or_network(kind, sandbox_tmp, listener):
    sandbox = make_runner(kind)
    secret = sandbox_tmp / "coordinator" / "admin.secret"
    secret.parent.mkdir()
    secret.write_text("s3cret")
    root = make_sums(sandbox_tmp / "sums")
    (root / "scorer" / "score.py").write_text(
        PRYING_SCORER.replace("SECRET", repr(str(secret))).replace("PORT", str(listener)))
    spec = load_bounty(root)
    result = await evaluate(spec, None, sandbox=sandbox, eval_set="heldout")
    assert result.ok, result.reasons
    assert result.medians["accuracy"] == 1.0  # it still read the outputs and the labels
    assert result.medians["cwd_is_scorer"] == 1.0
    assert result.medians["read_secret"] == 0.0
    assert result.medians["wrote_host"] == 0.0 and not secret.with_name("written-by-scorer").exists()
    assert result.medians["reached_network"] == 0.0


@pytest.mark.parametrize("kind", ["local", pytest.param("bwrap", marks=pytest.mark.bwrap),
                                  pytest.param("docker", marks=pytest.mark.docker)])
async def test_a_scorer_over_its_time_limit_is_stopped_and_the_output_is_invalid(kind, sandbox_tmp):
    sandbox = make_runner(kind)
    root = make_sums(sandbox_tmp / "sums")
    toml = root / "bounty.toml"
    toml.write_text(re.sub(r'("\{canaries\}"\]\s*timeout_s = )20', r"\g<1>2", toml.read_text(), count=1))
    (root / "scorer" / "score.py").write_text("import time\ntime.sleep(60)\n")
    spec = load_bounty(root)
    assert spec.score.timeout_s == 2
    result = await evaluate(spec, None, sandbox=sandbox, allow_unsandboxed=True)
    assert not result.ok and result.code == "output_invalid", (result.code, result.reasons)


@pytest.mark.parametrize("kind", ["local", pytest.param("bwrap", marks=pytest.mark.bwrap),
                                  pytest.param("docker", marks=pytest.mark.docker)])
async def test_an_interactive_scorer_talks_to_the_predictor_from_its_own_sandbox(kind, sandbox_tmp):
    sandbox = make_runner(kind)
    spec = load_bounty(make_echo(sandbox_tmp / "echo"))
    result = await evaluate(spec, None, sandbox=sandbox, eval_set="heldout", allow_unsandboxed=True)
    assert result.ok, result.reasons
    assert result.medians and all(v == v for v in result.medians.values()), result.medians


def test_the_score_phase_layout_names_only_what_the_scorer_needs(sandbox_tmp):
    from l402tui.evaluation.sandbox import LocalSandbox
    from l402tui.evaluation.score_phase import ScoreBox

    spec = load_bounty(make_sums(sandbox_tmp / "sums"))
    dest = sandbox_tmp / "repeat"
    dest.mkdir()
    box = ScoreBox(spec, spec.root / "heldout" / "a", dest, LocalSandbox())
    argv = box.argv()
    assert argv[:2] == ["python3", "score.py"]
    assert argv[2].endswith("/inputs/artifacts") and argv[3].endswith("/inputs/labels")
    assert argv[4].endswith("/inputs/canaries/canaries.json")
    assert json.loads((box.layout.inputs / "canaries" / "canaries.json").read_text())
    # The work dir is a copy: the frozen scorer itself is never the scorer's current directory.
    assert box.layout.workdir != spec.scorer_path and (box.layout.workdir / "score.py").is_file()


async def test_a_sponsors_bounty_never_runs_on_the_local_runner(sandbox_tmp):
    # Posting is refused without a sandbox; should the sandbox go away afterwards ("auto" falls
    # back to the local runner), the worker refuses the sponsor's baseline rather than run it.
    import time

    from l402tui.config import load_config
    from l402tui.evaluation.queue import EvaluationQueue
    from l402tui.evaluation.sandbox import LocalSandbox
    from l402tui.evaluation.worker import run_worker
    from l402tui.store.db import Store

    store = await Store.open(sandbox_tmp / "db.sqlite")
    root = make_sums(sandbox_tmp / "sums")
    now = time.time()
    async with store.transaction() as txn:
        for bid in ("theirs", "ours"):
            await txn.insert("bounties", {"id": bid, "name": bid, "status": "OPEN", "spec_json": "{}",
                                          "source_dir": str(root), "pool_msat": 1, "created_at": now,
                                          "updated_at": now})
        await txn.insert("sponsors", {"id": "sp1", "name": "acme", "origin": "invite", "created_at": now})
        await txn.insert("sponsor_bounties", {"bounty_id": "theirs", "sponsor_id": "sp1", "token_id": "t1",
                                              "created_at": now})
    queue = EvaluationQueue(store)
    for bid in ("theirs", "ours"):
        await queue.enqueue(bid, kind="baseline")
    cfg = load_config(sandbox_tmp / "none.toml", env={}).with_overrides({"paths.data_dir": str(sandbox_tmp / "data")})
    await run_worker(store, cfg, idle_exit=True, sandbox=LocalSandbox())
    rows = {r["bounty_id"]: r for r in await store.fetchall("SELECT * FROM evaluations")}
    assert rows["ours"]["status"] == "DONE", rows["ours"]["error"]  # the operator's own code: as before
    assert rows["theirs"]["status"] == "FAILED" and "sponsor" in rows["theirs"]["error"]
    await store.close()


@pytest.mark.parametrize("kind", [pytest.param("bwrap", marks=pytest.mark.bwrap),
                                  pytest.param("docker", marks=pytest.mark.docker)])
async def test_the_scorer_runs_under_the_workers_private_umask(kind, sandbox_tmp):
    # The worker runs with umask 077 (store/privacy.py): the score phase's folders must still be
    # reachable by the sandbox user, as the run phase's are.
    import os

    sandbox = make_runner(kind)
    spec = load_bounty(make_sums(sandbox_tmp / "sums"))
    old = os.umask(0o077)
    try:
        result = await evaluate(spec, None, sandbox=sandbox, eval_set="heldout")
    finally:
        os.umask(old)
    assert result.ok, result.reasons
