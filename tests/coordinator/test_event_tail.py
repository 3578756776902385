"""Many event-stream followers share one read of the events table."""

from __future__ import annotations

import asyncio

import aiohttp

from l402tui.coordinator.event_tail import EventTail
from tests.coordinator.conftest import url


async def test_followers_share_one_read_per_change():
    log = [{"id": i, "kind": "x"} for i in range(1, 6)]
    reads = 0

    async def fetch(after: int, limit: int):
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)  # a real query takes a while: followers pile up behind it
        return [e for e in log if e["id"] > after][:limit]

    async def newest() -> int:
        return log[-1]["id"]

    tail = EventTail(fetch, newest, size=8, page=3)
    await tail.refresh()  # reads the newest `size` events once
    reads = 0
    assert await tail.after(5, 10) == [] and reads == 0
    assert [e["id"] for e in await tail.after(0, 10)] == [1, 2, 3, 4, 5] and reads == 0
    log.extend({"id": i, "kind": "y"} for i in range(6, 14))
    reads = 0
    waiters = [tail.waiter() for _ in range(500)]
    await asyncio.gather(*(tail.refresh() for _ in range(500)))
    assert reads == 3  # 8 new events in pages of 3, read once for all 500
    assert all(w.is_set() for w in waiters)
    assert [e["id"] for e in await tail.after(5, 100)] == list(range(6, 14))
    assert [e["id"] for e in await tail.after(10, 2)] == [11, 12]
    # A follower further back than memory (8 events) pages through the store.
    log.extend({"id": i, "kind": "z"} for i in range(14, 20))
    await tail.refresh()
    reads = 0
    assert [e["id"] for e in await tail.after(1, 4)] == [2, 3, 4, 5] and reads == 1


async def test_followers_behind_the_tail_read_each_old_page_once_and_few_at_a_time():
    # A thousand event-stream clients starting from 0 on a coordinator with more history
    # than the tail holds: each old page is read from the store once for all of them, and
    # never more than two reads run at once, so the store still answers everything else.
    log = [{"id": i, "kind": "x"} for i in range(1, 101)]
    reads = running = most = 0

    async def fetch(after: int, limit: int):
        nonlocal reads, running, most
        reads += 1
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.005)
        running -= 1
        return [e for e in log if e["id"] > after][:limit]

    async def newest() -> int:
        return log[-1]["id"]

    tail = EventTail(fetch, newest, size=20, page=10)
    await tail.refresh()
    reads = 0

    async def replay() -> list[int]:
        got, last = [], 0
        while True:
            page = await tail.after(last, 10)
            if not page:
                return got
            got += [e["id"] for e in page]
            last = page[-1]["id"]

    results = await asyncio.gather(*(replay() for _ in range(1000)))
    assert all(r == list(range(1, 101)) for r in results)
    assert reads == 8 and most <= 2  # pages 1-80 from the store once each; 81-100 from memory


async def test_hundreds_of_streams_each_get_every_event(server, coordinator, bounty_dir):
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    after = await coordinator.last_event_id()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        streams = [await session.get(url(server, f"/api/v1/events?after={after}"), headers=headers)
                   for _ in range(200)]
        try:
            assert all(s.status == 200 for s in streams)
            await coordinator.create_bounty(bounty_dir, self_funded=True)

            async def first_event(stream) -> bytes:
                while True:
                    line = await stream.content.readline()
                    if line.startswith(b"event: "):
                        return line.strip()

            got = await asyncio.wait_for(asyncio.gather(*(first_event(s) for s in streams)), timeout=30)
        finally:
            for s in streams:
                s.close()
    assert set(got) == {b"event: bounty.created"}
