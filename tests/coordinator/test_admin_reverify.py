"""Open event streams re-check the admin macaroon's revocation every second; a thousand
of them share one read of its row instead of a thousand, and a revocation still stops
every one of them within that second.  An admin request that is not a stream reads the
row every time (a revoked macaroon stops at once)."""

from __future__ import annotations

import asyncio

import pytest

from l402tui.coordinator.admin import ADMIN_TOKEN_ID, AdminAuth, AdminRefused, ensure_admin_macaroon


async def test_streams_share_the_revocation_read_and_still_see_a_revocation(coordinator, monkeypatch):
    store = coordinator.store
    token = (await ensure_admin_macaroon(store, coordinator.data_dir)).read_text().strip()
    auth = AdminAuth(store)
    header = f"Bearer {token}"
    await auth.verify_header(header)  # signature checked once
    reads = 0
    real_get = auth.keys.get

    async def counted_get(identifier, *, fresh=False):
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)  # a query takes a while: callers pile up behind it
        return await real_get(identifier, fresh=fresh)

    monkeypatch.setattr(auth.keys, "get", counted_get)
    auth._fresh.clear()  # as if the last read were a second old
    await asyncio.gather(*(auth.verify_header(header, max_age_s=1.0) for _ in range(1000)))
    assert reads == 1
    # Plain admin requests are not served from it.
    await auth.verify_header(header)
    await auth.verify_header(header)
    assert reads == 3

    async with store.transaction() as txn:
        await txn.execute("UPDATE l402_root_keys SET revoked_at = 1 WHERE token_id = ?", (ADMIN_TOKEN_ID,))
    with pytest.raises(AdminRefused):
        await auth.verify_header(header)
    auth._fresh.clear()
    outcomes = await asyncio.gather(*(auth.verify_header(header, max_age_s=1.0) for _ in range(50)),
                                    return_exceptions=True)
    assert all(isinstance(o, AdminRefused) for o in outcomes)
