"""A JSON body has one meaning and holds only text: a repeated key, or a \\u escape of a
lone UTF-16 surrogate (which no UTF-8 encoder, SQLite's included, accepts), is a 4xx
before any handler runs, on a paid route as on the admin ones; nothing is stored."""

from __future__ import annotations

import json

import aiohttp
import pytest

from l402tui.coordinator.schema import parse_json
from l402tui.coordinator.errors import Invalid
from tests.coordinator.conftest import diff_text, url
from tests.coordinator.test_http_l402 import _buy, _open_bounty


@pytest.mark.parametrize("raw", [b'{"a": "\\ud800"}', b'{"a": ["x\\udfffy"]}', b'{"\\ud800": 1}',
                                 b'{"a": 1, "a": 2}', b'{"a": {"b": 1, "b": 1}}'])
def test_parse_json_refuses_surrogates_and_repeated_keys(raw):
    with pytest.raises(Invalid) as refused:
        parse_json(raw)
    assert refused.value.status == 400 or 400 <= refused.value.status < 500


def test_parse_json_keeps_real_text():
    assert parse_json('{"a": "\\ud83d\\ude00 é", "b": [{"x": 1}, {"x": 2}]}'.encode()) == {
        "a": "\U0001F600 é", "b": [{"x": 1}, {"x": 2}]}


async def test_paid_submit_with_bad_text_is_a_4xx_and_stores_nothing(server, coordinator, bounty_dir, net):
    bounty_id = await _open_bounty(coordinator, bounty_dir)
    path = f"/api/v1/bounties/{bounty_id}/submissions"
    diff = json.dumps(diff_text())[1:-1]
    async with aiohttp.ClientSession() as session:
        macaroon, preimage, _ = await _buy(session, server, net, path, method="POST", json={"diff": diff_text()})
        auth = {"Authorization": f"L402 {macaroon}:{preimage}", "Content-Type": "application/json"}
        for raw in ['{"diff": "%s\\ud800"}' % diff, '{"diff": "\\udc00%s"}' % diff,
                    '{"diff": "%s", "payout_destination": "\\ud800"}' % diff,
                    '{"diff": 5, "diff": "%s"}' % diff, '{"diff": "%s", "diff": "%s"}' % (diff, diff)]:
            async with session.post(url(server, path), data=raw.encode(), headers=auth) as r:
                body = await r.json()
                assert 400 <= r.status < 500 and body["error"] == "invalid_json", (raw[-40:], r.status, body)
        async with session.get(url(server, "/api/v1/status")) as r:
            assert r.status == 200
    assert await coordinator.list_submissions() == []
