"""The OpenAPI document matches the routes, and schemathesis fuzzing it finds no 5xx.

The server runs in a background thread with its own event loop (schemathesis
calls are synchronous), on a real loopback socket, over a sim network.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
import requests
import schemathesis
from schemathesis import checks
from hypothesis import HealthCheck, settings

from l402tui.config import load_config
from l402tui.coordinator.admin import ensure_admin_macaroon
from l402tui.coordinator.app import ROUTES, create_app
from l402tui.coordinator.openapi import document
from l402tui.coordinator.service import Coordinator
from l402tui.lightning.sim import SimNetwork
from l402tui.l402.client import L402Client
from tests.coordinator.conftest import diff_text, make_bounty


class LiveServer:
    def __init__(self, root):
        self.root = root
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _start(self):
        from aiohttp import web

        cfg = load_config(self.root / "none.toml", env={}).with_overrides({
            "paths.data_dir": str(self.root / "data"), "rate_limits.per_ip_per_minute": 100_000,
            "rate_limits.per_token_per_minute": 100_000})
        self.net = SimNetwork.from_config(cfg)
        await self.net.create_node("coordinator", 0, exist_ok=True)
        coord = await Coordinator.open(cfg, self.net.node("coordinator"))
        self.bounty_id = (await coord.create_bounty(make_bounty(self.root / "b"), self_funded=True))["bounty"]["id"]
        self.admin = (await ensure_admin_macaroon(coord.store, cfg.data_dir)).read_text().strip()
        self.runner = web.AppRunner(create_app(coord))
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        # Paid L402 tokens (a real sim payment each) for the gated routes.
        await self.net.create_node("agent", 100_000_000, exist_ok=True)
        async with L402Client(self.net.node("agent"), spend_cap_sats=100) as client:
            assert (await client.get(f"{self.base}/api/v1/bounties/{self.bounty_id}/package")).status == 200
            sub = await client.post(f"{self.base}/api/v1/bounties/{self.bounty_id}/submissions",
                                    json={"diff": diff_text(), "claimed_score": 0.0})
            assert sub.status == 202, sub.text
            self.tokens = {path.rsplit("/", 1)[-1]: credential for (_, path), credential in client.tokens.items()}

    async def _stop(self):
        await self.runner.cleanup()
        await self.net.close()

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("live")) as server:
        yield server


def test_document_lists_exactly_the_routes(live):
    served = requests.get(live.base + "/api/v1/openapi.json", timeout=10).json()
    assert served == document(ROUTES)
    in_doc = {(m.upper(), p) for p, ops in served["paths"].items() for m in ops}
    assert in_doc == {(r.method, r.path) for r in ROUTES}
    assert served["paths"]["/api/v1/bounties/{id}/package"]["get"]["security"] == [{"L402": []}]


@pytest.fixture
def api_schema(live):
    schema = schemathesis.openapi.from_dict(document(ROUTES))
    # The event stream never ends by design; it has its own test.
    return schema.exclude(path="/api/v1/events")


schema = schemathesis.pytest.from_fixture("api_schema")


CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.response_headers_conformance, checks.negative_data_rejection]


def _auth(case, live) -> dict[str, str]:
    security = case.operation.definition.raw.get("security") or []
    if {"AdminMacaroon": []} in security:
        return {"Authorization": f"Bearer {live.admin}"}
    if {"L402": []} in security:
        capability = "package" if case.path.endswith("/package") else "submissions"
        return {"Authorization": f"L402 {live.tokens[capability]}"}
    return {}


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_no_server_errors_and_no_schema_violations(case, live):
    """Every route, with the admin macaroon and a paid L402 token: no 5xx, every answer as
    documented (status, content type, body schema, headers), every invalid input refused."""
    if case.path == "/api/v1/events":
        return  # the stream never ends by design; test_red_team_inputs and test_attach_events cover it
    params = case.path_parameters or {}
    if "id" in params and len(str(params["id"])) % 2 == 0 and len(str(params["id"])) <= 256:
        params["id"] = live.bounty_id  # half the valid ids reach a real bounty's handlers
    response = case.call(base_url=live.base, headers=_auth(case, live), timeout=30)
    # A 402 challenge is how L402 refuses a request without a credential (schemathesis
    # expects 401 for a missing Authorization); every other check still applies to it.
    # A case made "negative" through its headers (a missing or junk Authorization) is sent with
    # our real credential instead, so it is a valid request and a 200 is right.
    auth = _auth(case, live)
    components = getattr(case.meta, "components", {}) or {}
    header_negative = any(getattr(loc, "value", loc) == "header" and getattr(info.mode, "value", "") == "negative"
                          for loc, info in components.items())
    skip_negative = response.status_code == 402 or (bool(auth) and header_negative)
    case.validate_response(response, checks=[c for c in CHECKS
                                             if not (skip_negative and c is checks.negative_data_rejection)])
