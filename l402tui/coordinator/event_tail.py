"""The newest events in memory, read from the store once for every follower.

Each event-stream client used to query the events table itself whenever anything was
committed and once a second besides: a thousand open streams were a thousand queries a
second on an idle coordinator.  Now followers read from this tail, and one refresh at a
time reads the store (a follower that wakes while a refresh runs waits for it instead
of starting its own).  A follower further behind than the tail remembers pages through
the store as before.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from typing import Any, Awaitable, Callable

Fetch = Callable[[int, int], Awaitable[list[dict[str, Any]]]]


class EventTail:
    def __init__(self, fetch: Fetch, last_id: Callable[[], Awaitable[int]], *, size: int = 4096, page: int = 200):
        self._fetch = fetch
        self._last_id = last_id
        self._events: deque[dict[str, Any]] = deque(maxlen=size)
        self._ids: deque[int] = deque(maxlen=size)
        self._base: int | None = None  # every event with an id above this is in memory
        self._page = page
        self._lock = asyncio.Lock()
        self._newer = asyncio.Event()  # set (and replaced) whenever a refresh found events

    def waiter(self) -> asyncio.Event:
        """An event set when the tail next grows (take it before reading, then wait on it)."""
        return self._newer

    async def refresh(self) -> None:
        """Read what was committed since the last refresh; at most one runs at a time."""
        if self._lock.locked():
            async with self._lock:  # someone is reading it for us
                return
        async with self._lock:
            if self._base is None:
                self._base = await self._last_id()
                return
            newest = self._ids[-1] if self._ids else self._base
            grew = False
            while True:
                batch = await self._fetch(newest, self._page)
                for event in batch:
                    if len(self._ids) == self._ids.maxlen:
                        self._base = self._ids[0]  # the oldest leaves memory
                    self._events.append(event)
                    self._ids.append(event["id"])
                    newest = event["id"]
                grew = grew or bool(batch)
                if len(batch) < self._page:
                    break
            if grew:
                done, self._newer = self._newer, asyncio.Event()
                done.set()

    async def after(self, last: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` events with ids above ``last``, from memory when the tail covers them."""
        if self._base is None:
            await self.refresh()
        if self._base is None or last < self._base:
            return await self._fetch(last, limit)
        start = bisect.bisect_right(self._ids, last)
        return [self._events[i] for i in range(start, min(start + limit, len(self._events)))]
