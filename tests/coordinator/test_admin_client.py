"""The admin API and HttpCoordinatorClient (what the TUI's --attach uses) over loopback."""

from __future__ import annotations

import asyncio
import io
import tarfile

import pytest

from l402tui.coordinator.client import AdminUnauthorized, HttpCoordinatorClient
from l402tui.coordinator.errors import Invalid, NotFound
from tests.coordinator.conftest import diff_text, url


def _tarball(folder) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buf.getvalue()


async def test_client_mirrors_the_service(server, coordinator, bounty_dir):
    async with HttpCoordinatorClient(url(server, "/"), admin_macaroon=server.admin_token) as client:
        created = await client.create_bounty(_tarball(bounty_dir), self_funded=True)  # uploaded, not a path
        bounty_id = created["bounty"]["id"]
        assert created["bounty"]["status"] == "OPEN"
        assert await client.get_bounty(bounty_id) == await coordinator.get_bounty(bounty_id)
        assert await client.list_bounties(include_all=True) == await coordinator.list_bounties(include_all=True)
        sub = await coordinator.submit(bounty_id, "tok", diff_text())
        assert await client.submission(sub["id"]) == await coordinator.submission(sub["id"])
        assert await client.submission_detail(sub["id"]) == await coordinator.submission_detail(sub["id"])
        assert [s["id"] for s in await client.list_submissions(bounty_id)] == [sub["id"]]
        assert await client.invoices() == await coordinator.invoices()
        assert isinstance(await client.ledger(bounty_id), list)
        assert await client.leaderboard(bounty_id) == []
        with pytest.raises(NotFound):
            await client.get_bounty("nope")
        with pytest.raises(Invalid) as err:
            await client.create_bounty(b"not a tarball", self_funded=True)
        assert "tarball" in err.value.message
        closed = await client.close_bounty(bounty_id)
        assert closed["status"] in ("CLOSED", "SETTLED")
    async with HttpCoordinatorClient(url(server, "/"), admin_macaroon="AgEBbogus") as wrong:
        with pytest.raises(AdminUnauthorized):
            await wrong.list_bounties(include_all=True)


async def test_event_stream_replays_then_follows(server, coordinator, bounty_dir):
    async with HttpCoordinatorClient(url(server, "/"), admin_macaroon=server.admin_token) as client:
        stream = client.follow_events(0)
        first = await asyncio.wait_for(stream.__anext__(), 10)  # admin.macaroon_created
        assert first["id"] >= 1
        bounty_id = (await coordinator.create_bounty(bounty_dir, self_funded=True))["bounty"]["id"]
        seen = []
        while not any(e["kind"] == "bounty.status" and e["subject_id"] == bounty_id for e in seen):
            seen.append(await asyncio.wait_for(stream.__anext__(), 10))
        ids = [first["id"]] + [e["id"] for e in seen]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert any(e["kind"] == "bounty.created" for e in seen)
        await stream.aclose()
