"""Nothing a run writes reaches an agent.

A random marker is planted in the held-out inputs and labels; hostile diffs write
it, and data derived from it, into every channel a run controls (stdout, stderr,
an exception, the exit code, output file names, a symlink's name, the answer it
scores, its timing).  After the submissions are judged by the real worker in a
real sandbox, every agent-facing route of the real HTTP app is walked and no
response carries the marker in any encoding.  The operator's views do carry it:
proof the channels were used.
"""

from __future__ import annotations

import base64
import difflib
import json
import secrets
import sys
from pathlib import Path

import aiohttp
import pytest

from l402tui.coordinator.app import ROUTES
from l402tui.evaluation.reasons import is_code
from l402tui.l402.client import L402Client
from tests.coordinator.conftest import SOLVE, make_bounty, url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "evaluation"))
from runners_fixture import make_runner  # noqa: E402

HOSTILE = '''\
import json, os, pathlib, sys, time
inputs, artifacts = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
nums = json.loads((inputs / "nums.json").read_text())
OFFSET = 1
MODE = "@MODE@"
secret = (inputs / "secret.txt").read_text().strip()
print("stdout", secret)
print("stderr", secret, file=sys.stderr)
if MODE == "symlink":
    os.symlink("/nonexistent", artifacts / secret)
elif MODE == "filename":
    (artifacts / (secret + ".json")).write_text(json.dumps(secret))
elif MODE == "exception":
    raise RuntimeError("leak " + secret)
elif MODE == "exitcode":
    sys.exit(int(secret[:2], 16))
elif MODE == "answer":
    (artifacts / "answer.json").write_text(json.dumps(int(secret[:12], 16)))
    sys.exit(0)
elif MODE == "sleep":
    time.sleep(int(secret[0], 16) / 10)
elif MODE == "labels":
    for p in pathlib.Path("/").rglob("sum.json"):
        print("found", p)
(artifacts / "answer.json").write_text(json.dumps(sum(nums) + OFFSET))
'''
MODES = ["symlink", "filename", "exception", "exitcode", "answer", "sleep", "labels"]


def _diff(mode: str) -> str:
    new = HOSTILE.replace("@MODE@", mode)
    body = "".join(difflib.unified_diff(SOLVE.splitlines(keepends=True), new.splitlines(keepends=True),
                                        "a/solve.py", "b/solve.py"))
    return "diff --git a/solve.py b/solve.py\n" + body


def _encodings(marker: str) -> list[str]:
    raw = bytes.fromhex(marker)
    return [marker, marker.upper(), marker[::-1], marker[:16], marker[-16:],
            base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("="),
            base64.b64encode(marker.encode()).decode()[:20], str(int(marker[:12], 16))]


def _plant(folder: Path, marker: str) -> None:
    for part in ("heldout/a", "heldout/b"):
        (folder / part / "inputs" / "secret.txt").write_text(marker + "\n")
        (folder / part / "labels" / "secret.txt").write_text(marker + "\n")
    # The public set has its own (harmless) secret so the runs behave alike there.
    (folder / "public" / "inputs" / "secret.txt").write_text("00" * 16 + "\n")


@pytest.mark.parametrize("kind", [pytest.param("bwrap", marks=pytest.mark.bwrap),
                                  pytest.param("docker", marks=pytest.mark.docker)])
async def test_a_planted_marker_reaches_no_agent_facing_route(kind, server, coordinator, tmp_path, net):
    from l402tui.evaluation.worker import run_worker

    sandbox = make_runner(kind)
    marker = secrets.token_hex(16)
    folder = make_bounty(tmp_path / "sponsor")
    _plant(folder, marker)
    coordinator.cfg = coordinator.cfg.with_overrides({"coordinator.submissions_per_day": 50})
    bounty_id = (await coordinator.create_bounty(folder, self_funded=True))["bounty"]["id"]

    answers: list[tuple[str, str]] = []  # (what, body) of every agent-facing response
    async with L402Client(net.node("agent-1"), spend_cap_sats=10_000) as client:
        ids = []
        for mode in MODES:
            sub = await client.post(url(server, f"/api/v1/bounties/{bounty_id}/submissions"),
                                    json={"diff": _diff(mode), "claimed_score": 0.0})
            assert sub.status == 202, sub.text
            answers.append((f"submit {mode}", sub.text))
            ids.append(sub.json()["id"])
        assert await run_worker(coordinator.store, coordinator.cfg, idle_exit=True, sandbox=sandbox) == 1 + len(MODES)
        await coordinator.reconcile()

        for route in ROUTES:
            if route.access == "admin" or route.method != "GET":
                continue
            paths = [route.path]
            if "{id}" in route.path:
                subject = ids if "submissions" in route.path else [bounty_id]
                paths = [route.path.replace("{id}", i) for i in subject]
            for path in paths:
                got = await client.get(url(server, path))
                assert got.status < 500, (path, got.status)
                if got.headers.get("Content-Type", "").startswith("application/json"):
                    answers.append((path, got.text))
                answers.append((path + " headers", json.dumps(dict(got.headers))))
        for sid in ids:
            claim = await client.post(url(server, f"/api/v1/submissions/{sid}/claim"), json={"invoice": "lnbcrt1"})
            answers.append((f"claim {sid}", claim.text))

    # The operator saw the marker (the channels were really used) ...
    operator = [json.dumps(await coordinator.submission_detail(sid)) for sid in ids]
    assert any(marker in text for text in operator), "the hostile runs never reached the marker"
    # ... and no agent-facing answer carries it in any form.
    for what, body in answers:
        for needle in _encodings(marker):
            assert needle not in body, f"{what} leaks the marker ({needle!r})"
    views = [json.loads(body) for what, body in answers
             if what.startswith("/api/v1/submissions/") and not what.endswith("headers")]
    assert len(views) == len(MODES)
    metrics = {"error"}
    for view in views:
        assert view["status"] in ("ACCEPTED", "REJECTED", "FLAGGED"), view
        assert all(is_code(c, metrics) for c in view["reasons"]), view
        if view["status"] != "ACCEPTED":
            assert view["verdict"]["published"] is None and view["verdict"]["improvement"] is None
    # The event stream is the operator's alone.
    async with aiohttp.ClientSession() as session:
        async with session.get(url(server, "/api/v1/events")) as r:
            assert r.status == 401
