"""A hostile sponsor against the operator: uploads built to hurt the coordinator's host,
refund invoices it should not be paid on, and what error messages tell it.  Real loopback
HTTP and SQLite, as in test_sponsor_routes.py."""

from __future__ import annotations

import io
import tarfile
import time
import zlib
from pathlib import Path

import aiohttp
import pytest

from l402tui.l402.sponsor import SponsorAuthority
from tests.coordinator.conftest import make_bounty, url


@pytest.fixture
def cfg(cfg):
    return cfg.with_overrides({"policy.who_may_post": "invited", "policy.git_max_repo_mb": 1,
                               "policy.git_max_file_mb": 1})


async def _invite(coordinator, name="hostile") -> str:
    return (await SponsorAuthority(coordinator.store).invite(name=name, valid_until=int(time.time()) + 3600)).macaroon_b64


async def _upload(server, credential: str, data: bytes) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url(server, "/api/v1/sponsor/bounties"), data=data,
                             headers={"Authorization": f"Bearer {credential}", "Content-Type": "application/gzip"}) as r:
            return r.status, await r.json(content_type=None)


def _tarball(folder: Path, extra) -> bytes:
    """``folder`` (a valid bounty) packed, then ``extra(tar)`` adds entries; gzip streamed, so
    a member of zeros costs a few KB on the wire however large it is unpacked."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
        extra(tar)
    return zlib.compress(raw.getvalue(), 9, wbits=31)


def _zeros(name: str, size: int):
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        tar.addfile(info, io.BytesIO(b"\0" * size))
    return add


def _many(count: int):
    def add(tar: tarfile.TarFile) -> None:
        for i in range(count):
            info = tarfile.TarInfo(f"public/d{i}")
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
    return add


@pytest.mark.parametrize("extra, words", [
    (_zeros("public/big.bin", 3 * 1024 * 1024), "allowed per file"),  # 3 MB of zeros: a few KB uploaded
    (_many(20_001), "more than 20000 entries"),
], ids=["bomb", "entries"])
async def test_an_upload_is_held_to_the_git_limits_while_it_unpacks(server, coordinator, tmp_path, extra, words):
    credential = await _invite(coordinator)
    data = _tarball(make_bounty(tmp_path / "b"), extra)
    assert len(data) < 512 * 1024
    status, body = await _upload(server, credential, data)
    assert status == 422 and body["error"] == "unsafe_upload" and words in body["message"], body
    assert await coordinator.store.scalar("SELECT COUNT(*) FROM bounties") == 0
    # The post was given back: the same credential posts a sane bounty.
    status, body = await _upload(server, credential, _tarball(make_bounty(tmp_path / "ok"), lambda tar: None))
    assert status == 201, body


async def test_a_refusal_never_names_the_coordinators_folders(server, coordinator, tmp_path):
    """A bounty.toml with problems, or a tarball that cannot be unpacked: the 422 quotes the
    sponsor's own paths (relative to its folder), never where the coordinator unpacked it."""
    credential = await _invite(coordinator)
    folder = make_bounty(tmp_path / "bad")
    toml = folder / "bounty.toml"
    toml.write_text(toml.read_text().replace('target = "target"', 'target = "nowhere"'))
    status, body = await _upload(server, credential, _tarball(folder, lambda tar: None))
    assert status == 422 and body["error"] == "invalid_bounty", body
    assert "files.target" in str(body) and "nowhere" in str(body), body
    assert str(coordinator.data_dir) not in str(body) and ".incoming" not in str(body), body
    assert body["problems"] == ["bounty.toml:5: files.target names 'nowhere', which is not a directory in your bounty "
                                "folder; create it or fix the path"], body


async def test_a_sponsor_cannot_cancel_once_an_improvement_is_accepted(server, coordinator, net, tmp_path):
    """The verdict ACCEPTED is committed before its payout is booked (the funding hold settles in
    between; halted payouts wait longer).  In that window the sponsor can read the diff: a cancel
    would keep the improvement and hand the whole hold back.  Only close is left."""
    from l402tui.coordinator.sponsor_client import SponsorClient

    credential = await _invite(coordinator)
    sponsor = SponsorClient(url(server, "/"), credential=f"{credential}")
    try:
        posted = await sponsor.create_bounty(make_bounty(tmp_path / "b"))
        bounty_id = posted["bounty"]["id"]
        await net.node("sponsor").pay(posted["funding"]["invoice"])
        for _ in range(200):
            if (await coordinator.get_bounty(bounty_id))["status"] == "OPEN":
                break
            await coordinator.reconcile_invoices()
        async with coordinator.store.transaction() as txn:  # a verdict that just landed, payout not yet booked
            await txn.insert("submissions", {"id": "s-won", "bounty_id": bounty_id, "token_id": "t",
                                             "status": "ACCEPTED", "diff": "x", "diff_sha256": "0" * 64,
                                             "created_at": time.time(), "updated_at": time.time()})
        async with aiohttp.ClientSession() as http:
            async with http.post(url(server, f"/api/v1/sponsor/bounties/{bounty_id}/cancel"),
                                 headers={"Authorization": f"Bearer {credential}"}) as r:
                status, body = r.status, await r.json()
        assert status == 409 and body["error"] == "cannot_cancel", body
        assert (await coordinator.get_bounty(bounty_id))["status"] == "OPEN"
    finally:
        await sponsor.close()


async def test_a_sponsor_reads_only_the_diffs_it_pays_for_or_reviews_and_nobody_cancels_what_is_owed(
        server, coordinator, net, tmp_path):
    """Reading every diff while it is judged, then cancelling before any verdict, would hand the
    sponsor the agents' ideas for nothing: a diff shows once accepted (paid for) or flagged
    (reviewed), and a bounty that owes an accepted submission cannot be cancelled by anyone."""
    from l402tui.coordinator.errors import Conflict
    from l402tui.coordinator.sponsor_client import SponsorClient

    credential = await _invite(coordinator)
    sponsor = SponsorClient(url(server, "/"), credential=f"{credential}")
    try:
        posted = await sponsor.create_bounty(make_bounty(tmp_path / "b"))
        bounty_id = posted["bounty"]["id"]
        now = time.time()
        async with coordinator.store.transaction() as txn:
            for sid, status in (("s-queued", "QUEUED"), ("s-running", "EVALUATING"), ("s-rejected", "REJECTED"),
                                ("s-flagged", "FLAGGED"), ("s-won", "ACCEPTED")):
                await txn.insert("submissions", {"id": sid, "bounty_id": bounty_id, "token_id": "t", "status": status,
                                                 "diff": f"+idea of {sid}", "diff_sha256": "0" * 64,
                                                 "created_at": now, "updated_at": now})
        async with aiohttp.ClientSession() as http:
            seen = {}
            for sid in ("s-queued", "s-running", "s-rejected", "s-flagged", "s-won"):
                async with http.get(url(server, f"/api/v1/sponsor/submissions/{sid}/diff"),
                                    headers={"Authorization": f"Bearer {credential}"}) as r:
                    body = await r.json()
                    seen[sid] = (r.status, body.get("error") or body["diff"])
        assert seen == {"s-queued": (403, "diff_not_visible"), "s-running": (403, "diff_not_visible"),
                        "s-rejected": (403, "diff_not_visible"), "s-flagged": (200, "+idea of s-flagged"),
                        "s-won": (200, "+idea of s-won")}, seen
        with pytest.raises(Conflict) as refused:  # the operator's cancel holds to the same rule
            await coordinator.cancel_bounty(bounty_id)
        assert refused.value.code == "cannot_cancel"
    finally:
        await sponsor.close()
