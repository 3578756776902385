"""The admin event stream resumes where it broke off: across a restart of the HTTP server
(same port, same database) and through a tunnel that goes silent, every event arrives
exactly once and in order, and the reconnect asks for it with Last-Event-ID."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest
from aiohttp import web

from l402tui.coordinator.admin import ensure_admin_macaroon
from l402tui.coordinator.app import create_app
from l402tui.coordinator.client import AdminUnauthorized, CoordinatorUnreachable, HttpCoordinatorClient


class Seen:
    """Things that happened, in order, and a wait for the n-th one (a marker, not a timer)."""

    def __init__(self) -> None:
        self.items: list = []
        self._grew = asyncio.Event()

    def add(self, item) -> None:
        self.items.append(item)
        self._grew.set()

    async def count(self, n: int, timeout: float = 20) -> None:
        async def wait() -> None:
            while len(self.items) < n:
                self._grew.clear()
                await self._grew.wait()
        await asyncio.wait_for(wait(), timeout)


class Server:
    """create_app over one coordinator on a fixed loopback port that can be stopped and started."""

    def __init__(self, coordinator):
        self.coordinator = coordinator
        self.port = 0
        self.runner: web.AppRunner | None = None
        self.streams = Seen()  # the Last-Event-ID of every stream request, once its answer starts

    async def start(self) -> None:
        app = create_app(self.coordinator, manage_lifecycle=False)

        async def seen(request: web.Request, response: web.StreamResponse) -> None:
            if request.path == "/api/v1/events":
                self.streams.add(request.headers.get("Last-Event-ID"))

        app.on_response_prepare.append(seen)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def last_event_ids(self) -> list[str | None]:
        return self.streams.items


def refused_reconnects(client: HttpCoordinatorClient) -> Seen:
    """Record each stream connection of ``client`` that could not connect, by the id it
    resumes after (wraps the client's one-connection method on this instance only)."""
    refused, once = Seen(), client._sse_once

    async def counted(after_id: int):
        try:
            async for item in once(after_id):
                yield item
        except aiohttp.ClientConnectionError:
            refused.add(after_id)
            raise

    client._sse_once = counted
    return refused


class Tunnel:
    """A TCP relay on loopback (an SSH tunnel stands in between); ``stall()`` makes every
    open connection go silent without closing it, as a dead tunnel does."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.server: asyncio.AbstractServer | None = None
        self.open: list[asyncio.Event] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def stall(self) -> None:
        for flag in self.open:
            flag.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        flowing = asyncio.Event()
        flowing.set()
        self.open.append(flowing)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if flowing.is_set():  # a stalled tunnel swallows what it is given
                        dst.write(data)
                        await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        self.server.close()


async def _emit(coordinator, n: int, tag: str) -> list[int]:
    ids = []
    for i in range(n):
        async with coordinator.transaction() as txn:
            await txn.event("test.tick", f"{tag}-{i}", n=i)
        ids.append(await coordinator.last_event_id())
    return ids


class Following:
    """``client.follow_events(start)`` in a task, collecting into ``got``."""

    def __init__(self, client: HttpCoordinatorClient, start: int):
        self.got: list[dict] = []
        self._arrived = asyncio.Event()
        self.task = asyncio.create_task(self._follow(client, start))

    async def _follow(self, client: HttpCoordinatorClient, start: int) -> None:
        try:
            async for event in client.follow_events(start):
                self.got.append(event)
                self._arrived.set()
        finally:
            self._arrived.set()  # wakes until() to report the end

    async def until(self, want_id: int, timeout: float = 20) -> None:
        """Wait until event ``want_id`` arrived; a follower that died raises its own error here."""
        async def wait() -> None:
            while not self.got or self.got[-1]["id"] < want_id:
                if self.task.done():
                    self.task.result()  # re-raises what ended it
                    raise AssertionError("the event stream ended")
                self._arrived.clear()
                await self._arrived.wait()
        await asyncio.wait_for(wait(), timeout)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def token(coordinator):
    return (await ensure_admin_macaroon(coordinator.store, coordinator.data_dir)).read_text().strip()


async def test_events_resume_across_a_server_restart_without_loss_or_repeats(coordinator, token):
    server = Server(coordinator)
    await server.start()
    client = HttpCoordinatorClient(server.url, admin_macaroon=token, max_reconnect_delay_s=0.5)
    refused = refused_reconnects(client)
    start = await client.last_event_id()  # from now on: history is not replayed
    follow = Following(client, start)
    try:
        first = await _emit(coordinator, 5, "before")
        await follow.until(first[-1])
        await server.stop()
        missed = await _emit(coordinator, 5, "while-down")  # written while no server runs
        await refused.count(1)  # the client has retried against the closed port
        assert refused.items[0] == first[-1]
        await server.start()
        await follow.until(missed[-1])
        live = await _emit(coordinator, 3, "after")
        await follow.until(live[-1])
    finally:
        await follow.stop()
        await client.close()
        await server.stop()
    got = follow.got
    ids = [e["id"] for e in got]
    assert ids == first + missed + live  # every event, once, in order
    assert [e["subject_id"] for e in got][5:10] == [f"while-down-{i}" for i in range(5)]
    # The reconnect asked the server to replay from the last event seen (not from the start).
    assert server.last_event_ids[0] == str(start)
    assert str(first[-1]) in server.last_event_ids[1:]
    assert client.last_event_seen == live[-1]


async def test_a_silent_tunnel_is_noticed_and_the_stream_resumes_through_a_new_one(coordinator, token):
    server = Server(coordinator)
    await server.start()
    tunnel = Tunnel(server.port)
    port = await tunnel.start()
    # Keep-alives come every 15 s; here the stream is taken for dead after 1 s of silence.
    client = HttpCoordinatorClient(f"http://127.0.0.1:{port}", admin_macaroon=token, stream_idle_s=1.0,
                                   max_reconnect_delay_s=0.5)
    follow = Following(client, await coordinator.last_event_id())
    try:
        first = await _emit(coordinator, 3, "a")
        await follow.until(first[-1])
        tunnel.stall()  # the old connection swallows these; the next one replays them
        during = await _emit(coordinator, 4, "b")
        await follow.until(during[-1], timeout=15)
    finally:
        await follow.stop()
        await client.close()
        await tunnel.close()
        await server.stop()
    assert [e["id"] for e in follow.got] == first + during
    assert str(first[-1]) in server.last_event_ids[1:]


async def test_the_stream_refuses_a_wrong_macaroon_and_a_one_shot_follow_reports_the_break(coordinator, token):
    server = Server(coordinator)
    await server.start()
    try:
        wrong = HttpCoordinatorClient(server.url, admin_macaroon="AgEBbogus")
        with pytest.raises(AdminUnauthorized):
            await wrong.follow_events(0).__anext__()
        await wrong.close()
        once = HttpCoordinatorClient(server.url, admin_macaroon=token)
        stream = once.follow_events(await once.last_event_id(), reconnect=False)
        pending = asyncio.ensure_future(stream.__anext__())
        await server.streams.count(2)  # the wrong macaroon's request, then this stream's
        await server.stop()
        with pytest.raises(CoordinatorUnreachable, match="is `l402tui serve` still running"):
            await asyncio.wait_for(pending, 10)
        await once.close()
    finally:
        if server.runner is not None and server.runner.sites:
            await server.stop()


async def test_the_server_replays_after_the_query_or_the_header_which_wins(coordinator, token):
    import aiohttp

    server = Server(coordinator)
    await server.start()
    ids = await _emit(coordinator, 4, "q")
    auth = {"Authorization": f"Bearer {token}"}

    async def first_id(http, **kw) -> int:
        async with http.get(server.url + "/api/v1/events", **kw) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            async for raw in r.content:
                if raw.startswith(b"id: "):
                    return int(raw[4:])
        raise AssertionError("no event")

    try:
        async with aiohttp.ClientSession() as http:
            assert await first_id(http, params={"after": str(ids[0])}, headers=auth) == ids[1]
            assert await first_id(http, params={"after": str(ids[0])},
                                  headers={**auth, "Last-Event-ID": str(ids[2])}) == ids[3]
            async with http.get(server.url + "/api/v1/events", headers={**auth, "Last-Event-ID": "x"}) as r:
                assert r.status == 422 and "Last-Event-ID" in (await r.json())["message"]
    finally:
        await server.stop()
