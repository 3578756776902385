"""The operator's posting policy: a bounty over a limit is refused at creation with the limit
it broke (422 over HTTP, a clear CLI error), and `config show` lists every policy key."""

from __future__ import annotations

import json

import aiohttp
import pytest
from click.testing import CliRunner

from l402tui.bounty import load_bounty
from l402tui.config import ConfigError, load_config
from l402tui.coordinator.errors import Invalid, Unavailable
from l402tui.coordinator.policy import INVITED, OPERATOR, PAYING, PostingPolicy, check_bounty
from tests.coordinator.conftest import url

POLICY_KEYS = ("who_may_post", "posting_fee_sats", "max_pool_sats", "max_cpus", "max_memory_mb", "max_disk_mb",
               "allow_gpu", "max_time_limit_s", "allowed_images", "git_protocols", "git_allow_file",
               "git_allowed_hosts", "git_allow_private_hosts", "git_max_repo_mb", "git_max_file_mb", "git_timeout_s")


def _with_resources(folder, **resources):
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in resources.items())
    toml = folder / "bounty.toml"
    base = toml.read_text().split("\n[resources]\n")[0]  # replace an earlier [resources], never add a second
    toml.write_text(base + f"\n[resources]\n{lines}\n")
    return folder


@pytest.mark.parametrize("resources, overrides, limit", [
    ({}, {"policy.max_pool_sats": 99_999}, "policy.max_pool_sats"),  # the tiny bounty's pool is 100,000
    ({"cpus": 8}, {}, "policy.max_cpus"),
    ({"memory_mb": 16384}, {}, "policy.max_memory_mb"),
    ({"disk_mb": 20480}, {}, "policy.max_disk_mb"),
    ({"gpu": True}, {"policy.allow_gpu": False}, "policy.allow_gpu"),
    ({"time_limit_s": 25}, {"policy.max_time_limit_s": 20.0}, "policy.max_time_limit_s"),
    ({"image": "someone-elses/image:latest"}, {}, "policy.allowed_images"),
])
def test_each_limit_is_named_when_broken(cfg, bounty_dir, resources, overrides, limit):
    assert check_bounty(cfg, load_bounty(bounty_dir)) is None  # the tiny bounty as it is: within the defaults
    spec = load_bounty(_with_resources(bounty_dir, **resources))
    breach = check_bounty(cfg.with_overrides(overrides), spec)
    assert breach is not None and breach.limit == limit, breach
    assert limit in breach.message


def test_within_policy_and_allowed_images(cfg, bounty_dir):
    spec = load_bounty(_with_resources(bounty_dir, image="lab/image:1", cpus=2))
    assert check_bounty(cfg, spec).limit == "policy.allowed_images"
    assert check_bounty(cfg.with_overrides({"policy.allowed_images": ["lab/image:1"]}), spec) is None
    default_image = load_bounty(_with_resources(bounty_dir, image=cfg.get("evaluation.docker_image")))
    assert check_bounty(cfg, default_image) is None  # the coordinator's own image is always allowed


def test_the_run_limit_is_the_smaller_of_run_timeout_and_time_limit(cfg, bounty_dir):
    spec = load_bounty(_with_resources(bounty_dir, time_limit_s=5000))  # run.timeout_s is 30: runs stop at 30 s
    assert check_bounty(cfg.with_overrides({"policy.max_time_limit_s": 30.0}), spec) is None
    breach = check_bounty(cfg.with_overrides({"policy.max_time_limit_s": 29.0}), spec)
    assert breach.limit == "policy.max_time_limit_s" and "is 30 s" in breach.message


def test_who_may_post():
    def policy(who):
        cfg = load_config(env={"L402TUI_POLICY__WHO_MAY_POST": who}).with_overrides({})
        return PostingPolicy.from_config(cfg)

    assert [policy("anyone_who_pays").may_post(k) for k in (OPERATOR, INVITED, PAYING)] == [True, True, True]
    assert [policy("invited").may_post(k) for k in (OPERATOR, INVITED, PAYING)] == [True, True, False]
    assert [policy("nobody").may_post(k) for k in (OPERATOR, INVITED, PAYING)] == [True, False, False]
    with pytest.raises(ConfigError, match="anyone_who_pays, invited, nobody"):
        policy("everyone")


async def test_create_refuses_over_policy_and_writes_nothing(cfg, net, bounty_dir):
    from l402tui.coordinator.service import Coordinator
    from l402tui.store import Store

    _with_resources(bounty_dir, cpus=16, memory_mb=65536)
    store = await Store.open(cfg.db_path)
    coord = Coordinator(cfg.with_overrides({"policy.max_pool_sats": 10}), store, net.node("coordinator"))
    try:
        with pytest.raises(Invalid) as caught:
            await coord.create_bounty(bounty_dir, self_funded=True)
        exc = caught.value
        assert exc.code == "over_policy" and exc.details["limit"] == "policy.max_pool_sats"
        assert exc.details["value"] == 100_000 and exc.details["allowed"] == 10
        assert [b["limit"] for b in exc.details["breaches"]] == ["policy.max_pool_sats", "policy.max_cpus",
                                                                 "policy.max_memory_mb"]
        assert await coord.list_bounties(include_all=True) == []
        assert [p for p in (coord.data_dir / "bounties").iterdir() if not p.name.startswith(".")] == []

        broken = Coordinator(cfg.with_overrides({"policy.who_may_post": "all"}), store, net.node("coordinator"))
        with pytest.raises(Unavailable, match="policy.who_may_post"):
            await broken.create_bounty(bounty_dir, self_funded=True)
    finally:
        await coord.stop()
        await store.close()


@pytest.fixture
def tight_cfg(cfg):
    return cfg.with_overrides({"policy.max_pool_sats": 50_000})


@pytest.fixture
async def tight_server(tight_cfg, net):
    from aiohttp.test_utils import TestServer

    from l402tui.coordinator.admin import ensure_admin_macaroon
    from l402tui.coordinator.app import create_app
    from l402tui.coordinator.service import Coordinator
    from l402tui.store import Store

    store = await Store.open(tight_cfg.db_path)
    coord = Coordinator(tight_cfg, store, net.node("coordinator"))
    srv = TestServer(create_app(coord, manage_lifecycle=False), host="127.0.0.1")
    await srv.start_server()
    srv.admin_token = (await ensure_admin_macaroon(store, coord.data_dir)).read_text().strip()
    yield srv
    await srv.close()
    await coord.stop()
    await store.close()


async def test_admin_api_answers_422_with_the_limit(tight_server, bounty_dir):
    headers = {"Authorization": f"Bearer {tight_server.admin_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url(tight_server, "/api/v1/admin/bounties"), headers=headers,
                             json={"path": str(bounty_dir), "self_funded": True}) as r:
            body = await r.json()
    assert r.status == 422, body
    assert body["error"] == "over_policy" and body["limit"] == "policy.max_pool_sats"
    assert "reward.pool_sats is 100,000 sats; this coordinator allows at most 50,000 sats" in body["message"]


def test_cli_refuses_with_the_limit_and_config_show_lists_the_keys(tmp_path, bounty_dir):
    from l402tui.cli import main

    runner = CliRunner()
    env = {"L402TUI_CONFIG": str(tmp_path / "none.toml"), "L402TUI_POLICY__MAX_POOL_SATS": "50000"}
    done = runner.invoke(main, ["--data-dir", str(tmp_path / "data"), "bounty", "create", str(bounty_dir),
                                "--self-funded"], env=env)
    assert done.exit_code == 1
    assert "over this coordinator's policy" in done.output and "(policy.max_pool_sats)" in done.output

    env["L402TUI_POLICY__ALLOWED_IMAGES"] = '["lab/image:1", "lab/image:2"]'
    shown = runner.invoke(main, ["config", "show"], env=env)
    assert shown.exit_code == 0, shown.output
    for key in POLICY_KEYS:
        assert f"policy.{key}" in shown.output
    as_json = json.loads(runner.invoke(main, ["config", "show", "--json"], env=env).output)
    assert as_json["policy.allowed_images"] == {"value": ["lab/image:1", "lab/image:2"],
                                                "source": "env:L402TUI_POLICY__ALLOWED_IMAGES"}
    assert as_json["coordinator.fee_percent"]["value"] == 7.5
    bad = runner.invoke(main, ["config", "show"], env={**env, "L402TUI_POLICY__GIT_PROTOCOLS": "https"})
    assert bad.exit_code != 0 and "expected list" in bad.output


def test_policy_is_its_own_section():
    cfg = load_config(env={})
    assert set(POLICY_KEYS) == set(cfg.section("policy")) and "policy" not in cfg.section("tui")
    assert PostingPolicy.from_config(cfg).who_may_post == "invited"
