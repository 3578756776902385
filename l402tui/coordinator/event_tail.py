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
from collections import OrderedDict, deque
from typing import Any, Awaitable, Callable

Fetch = Callable[[int, int], Awaitable[list[dict[str, Any]]]]


class EventTail:
    def __init__(self, fetch: Fetch, last_id: Callable[[], Awaitable[int]], *, size: int = 4096, page: int = 200,
                 behind_readers: int = 2, behind_pages: int = 64):
        self._fetch = fetch
        self._size = size
        # Followers behind the tail: at most ``behind_readers`` store reads at a time, and the
        # pages they read kept (old events never change), shared by every follower.
        self._behind = asyncio.Semaphore(behind_readers)
        self._pages: OrderedDict[tuple[int, int], list[dict[str, Any]]] = OrderedDict()
        self._pages_max = behind_pages
        self._reading: dict[tuple[int, int], asyncio.Future] = {}
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
                # The newest ``size`` events are read once, here, for every follower.
                self._base = max(0, await self._last_id() - self._size)
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
            return await self._behind_page(last, limit)
        start = bisect.bisect_right(self._ids, last)
        return [self._events[i] for i in range(start, min(start + limit, len(self._events)))]

    async def _behind_page(self, last: int, limit: int) -> list[dict[str, Any]]:
        key = (last, limit)
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
            return page
        reading = self._reading.get(key)
        if reading is not None:  # another follower is reading this page: share its answer
            return list(await asyncio.shield(reading))
        reading = self._reading[key] = asyncio.get_running_loop().create_future()
        try:
            async with self._behind:
                page = await self._fetch(last, limit)
        except BaseException as exc:
            reading.set_exception(exc if isinstance(exc, Exception) else RuntimeError("the read was cancelled"))
            reading.exception()  # read here: nobody may be waiting for it
            raise
        finally:
            del self._reading[key]
        reading.set_result(page)
        # Only a whole page is kept: a short one ended at the newest event then.
        if len(page) == limit:
            self._pages[key] = page
            if len(self._pages) > self._pages_max:
                self._pages.popitem(last=False)
        return page
