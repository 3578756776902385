"""The admin macaroon: revocation works on the next request, appended junk is refused, the server keeps serving."""

from __future__ import annotations

import base64
import time

import aiohttp

from l402tui.coordinator.admin import ADMIN_FILE, ensure_admin_macaroon
from l402tui.store import Store
from tests.coordinator.conftest import url

ADMIN_ROUTE = "/api/v1/admin/bounties"


async def _status(session, server, token: str, path: str = ADMIN_ROUTE) -> int:
    async with session.get(url(server, path), headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status


async def test_junk_appended_to_the_admin_macaroon_is_refused(server):
    token = server.admin_token
    raw = base64.b64decode(token)
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    variants = {
        "base64 junk": token.rstrip("=") + "AAAA",
        "text junk": token + "junk",
        "bytes after the macaroon": base64.b64encode(raw + b"xyz").decode(),
        "bytes after, URL-safe": base64.urlsafe_b64encode(raw + b"\x00").decode().rstrip("="),
        "punctuation": token + "!!",
        "a second macaroon": token + "," + token,
        "truncated": token[:-8],
    }
    async with aiohttp.ClientSession() as session:
        assert await _status(session, server, token) == 200
        assert await _status(session, server, urlsafe) == 200  # the same bytes in the other alphabet
        for name, text in variants.items():
            assert await _status(session, server, text) == 401, name
        assert await _status(session, server, token) == 200  # still serving, still accepting the real one


async def test_a_revoked_admin_macaroon_stops_at_once(server):
    async with aiohttp.ClientSession() as session:
        assert await _status(session, server, server.admin_token) == 200
        async with session.post(url(server, "/api/v1/admin/tokens/admin/revoke"),
                                headers={"Authorization": f"Bearer {server.admin_token}"}) as r:
            assert r.status == 200 and (await r.json())["revoked_keys"] == 1
        # The very next request, on every admin route kind (list, events stream).
        assert await _status(session, server, server.admin_token) == 401
        assert await _status(session, server, server.admin_token, "/api/v1/events") == 401
        async with session.get(url(server, "/api/v1/bounties")) as r:
            assert r.status == 200  # the public API is unaffected


async def test_revocation_by_another_process_is_seen_on_the_next_request(server, coordinator):
    async with aiohttp.ClientSession() as session:
        assert await _status(session, server, server.admin_token) == 200
        other = await Store.open(coordinator.store.path)  # e.g. an operator's script on the same database
        try:
            async with other.transaction() as txn:
                await txn.execute("UPDATE l402_root_keys SET revoked_at = ? WHERE token_id = 'admin'", (time.time(),))
        finally:
            await other.close()
        assert await _status(session, server, server.admin_token) == 401


async def test_a_revoked_admin_macaroon_is_replaced_at_the_next_start(server, coordinator):
    async with aiohttp.ClientSession() as session:
        async with session.post(url(server, "/api/v1/admin/tokens/admin/revoke"),
                                headers={"Authorization": f"Bearer {server.admin_token}"}) as r:
            assert r.status == 200
        path = await ensure_admin_macaroon(coordinator.store, coordinator.data_dir)
        assert path.name == ADMIN_FILE and (path.stat().st_mode & 0o777) == 0o600
        fresh = path.read_text().strip()
        assert fresh != server.admin_token
        assert await _status(session, server, fresh) == 200
        assert await _status(session, server, server.admin_token) == 401


async def test_deleting_the_file_rotates_the_admin_macaroon(server, coordinator):
    old = server.admin_token
    (coordinator.data_dir / ADMIN_FILE).unlink()
    fresh = (await ensure_admin_macaroon(coordinator.store, coordinator.data_dir)).read_text().strip()
    async with aiohttp.ClientSession() as session:
        assert await _status(session, server, fresh) == 200
        assert await _status(session, server, old) == 401  # a copy of the old file opens nothing any more
    # A start with the file in place keeps it.
    again = (await ensure_admin_macaroon(coordinator.store, coordinator.data_dir)).read_text().strip()
    assert again == fresh


async def test_an_open_event_stream_ends_when_its_macaroon_is_revoked(server, coordinator, bounty_dir):
    import asyncio

    from l402tui.coordinator import admin_api

    headers = {"Authorization": f"Bearer {server.admin_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(url(server, "/api/v1/events"), headers=headers) as stream:
            assert stream.status == 200
            await stream.content.readuntil(b"\n\n")  # the stream's greeting
            async with session.post(url(server, "/api/v1/admin/tokens/admin/revoke"), headers=headers) as r:
                assert r.status == 200
            await asyncio.sleep(admin_api.REVERIFY_S)
            await coordinator.create_bounty(bounty_dir, self_funded=True)  # events the stream would carry

            async def drain() -> bytes:
                return await stream.content.read()  # returns once the server ends the stream

            rest = await asyncio.wait_for(drain(), timeout=10)
    assert b"bounty.created" not in rest
