"""Run an async service on its own event loop in a daemon thread, and call it from another loop.

The coordinator does blocking work inside some of its coroutines (packing a bounty,
measuring its baseline); on the TUI's loop that would freeze the screen for tens
of seconds.  On a loop of its own it can take as long as it likes.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self._tear_down()

    def _tear_down(self) -> None:
        """What asyncio.run does at the end: cancel what is left and let it finish, close the
        async generators, then the loop.  Left to the garbage collector instead, each of
        these prints an "Exception ignored" traceback over the user's shell at exit."""
        loop = self.loop
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=5))
            for task in pending:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: no "exception was never retrieved" at exit
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        except Exception:  # tearing down must never raise into the UI's exit
            pass
        finally:
            loop.close()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the thread's loop; await its result from the caller's loop."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    async def stream(self, make: Callable[[], AsyncIterator[T]]) -> AsyncIterator[T]:
        """Iterate an async generator that lives on the thread's loop."""
        caller = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(maxsize=10_000)
        done = object()

        async def pump() -> None:
            try:
                async for item in make():
                    caller.call_soon_threadsafe(queue.put_nowait, item)
            except Exception as exc:  # handed to the consumer, which decides what it means
                caller.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                caller.call_soon_threadsafe(queue.put_nowait, done)

        future = asyncio.run_coroutine_threadsafe(pump(), self.loop)
        try:
            while True:
                item = await queue.get()
                if item is done:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            future.cancel()

    def stop(self, timeout: float = 10.0) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


class ThreadedProxy:
    """Calls ``obj``'s coroutine methods on ``thread``'s loop; ``follow_events`` is streamed."""

    def __init__(self, obj: Any, thread: LoopThread):
        self._obj = obj
        self._thread = thread

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        attr = getattr(self._obj, name)
        if name == "follow_events":
            return lambda *a, **kw: self._thread.stream(lambda: attr(*a, **kw))

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._thread.run(attr(*args, **kwargs))

        return call
