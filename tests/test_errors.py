"""One error hierarchy both ways: what the coordinator raises is what every client raises
back — through the coordinator's own error middleware on a real loopback server, read by
the admin client, the agent's client and the L402 client."""

from __future__ import annotations

import socket

import pytest
from aiohttp import web

from l402tui.agent.remote import CoordinatorClient, RemoteError
from l402tui.coordinator.app import errors_middleware
from l402tui.coordinator.client import HttpCoordinatorClient
from l402tui.coordinator.errors import wire
from l402tui.errors import (BadRequest, Conflict, Forbidden, Invalid, L402TuiError, LimitReached, NotFound,
                            PaymentRequired, TooLarge, Unauthorized, Unavailable, Unreachable, from_response)
from l402tui.l402.client import L402Client

CLASSES = [BadRequest, Unauthorized, PaymentRequired, Forbidden, NotFound, Conflict, TooLarge, Invalid, Unavailable]


@pytest.mark.parametrize("cls", CLASSES)
def test_wire_form_reads_back_as_the_same_class(cls):
    raised = cls("the bounty is CLOSED; it takes no submissions", code="bounty_not_open", details={"field": "x"})
    status, body, headers = wire(raised)
    back = from_response(status, body, retry_after=headers.get("Retry-After"))
    assert type(back) is cls and back.status == status == cls.status
    assert (back.code, back.message, back.details) == ("bounty_not_open", raised.message, {"field": "x"})


def test_limit_keeps_its_wait_and_the_statuses_no_class_stands_for_keep_theirs():
    status, body, headers = wire(LimitReached("slow down", retry_after_s=17, code="daily_limit"))
    assert headers == {"Retry-After": "17"} and body["retry_after_s"] == 17
    back = from_response(status, body, retry_after=headers["Retry-After"])
    assert isinstance(back, LimitReached) and back.retry_after_s == 17 and back.code == "daily_limit"
    assert back.details == {"retry_after_s": 17}
    odd = from_response(418, {"error": "teapot", "message": "short and stout"})
    assert type(odd) is L402TuiError and odd.status == 418 and odd.code == "teapot"
    html = from_response(502, b"<html>Bad Gateway</html>", context="listing bounties")
    assert isinstance(html, Unavailable) and html.message == "listing bounties: <html>Bad Gateway</html>"


def test_400_is_not_the_422_class_and_unreachable_is_an_unavailable():
    assert type(from_response(400, {"error": "bad_request", "message": "not JSON"})) is BadRequest
    assert not issubclass(BadRequest, Invalid) and not issubclass(Invalid, BadRequest)
    assert issubclass(Unreachable, Unavailable) and Unreachable.status == 503


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def refusing_server():
    """A server whose every route raises the error its path names, through the coordinator's middleware."""
    by_name = {cls.__name__: cls for cls in CLASSES}

    async def handler(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "LimitReached":
            raise LimitReached("too many", retry_after_s=9, code="daily_limit")
        raise by_name[name](f"{name} on purpose", code=f"code_{name.lower()}")

    app = web.Application(middlewares=[errors_middleware])
    app.router.add_route("*", "/api/v1/{tail:.*}/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_every_client_raises_what_the_server_raised(refusing_server):
    url = refusing_server
    async with HttpCoordinatorClient(url, admin_macaroon="x") as admin, \
            CoordinatorClient(url, wallet=None, spend_cap_sats=0) as agent:  # type: ignore[arg-type]
        for cls in [*CLASSES, LimitReached]:
            name = cls.__name__
            with pytest.raises(cls) as got:
                await admin._call("GET", f"/api/v1/admin/{name}")
            assert type(got.value) is cls and got.value.code == ("daily_limit" if cls is LimitReached
                                                                 else f"code_{name.lower()}")
            with pytest.raises(RemoteError) as got:
                await agent.bounty(f"b/{name}")  # GET /api/v1/bounties/b/<name>
            # A 402 without a challenge is the L402 client's own refusal to pay: still a PaymentRequired.
            assert (type(got.value) is cls or cls is PaymentRequired) and isinstance(got.value, cls)
            assert got.value.status == cls.status and got.value.message.startswith(f"reading bounty b/{name}: ")
        async with L402Client(wallet=None, spend_cap_sats=0) as l402:  # type: ignore[arg-type]
            answer = await l402.get(url + "/api/v1/bounties/x/LimitReached")
            error = answer.error("downloading")
            assert type(error) is LimitReached and error.retry_after_s == 9
            assert (await l402.get(url + "/api/v1/bounties/x/BadRequest")).error().status == 400


async def test_no_answer_is_unreachable_on_every_client():
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    async with HttpCoordinatorClient(url, admin_macaroon="x") as admin, \
            CoordinatorClient(url, wallet=None, spend_cap_sats=0) as agent:  # type: ignore[arg-type]
        with pytest.raises(Unreachable, match="is `l402tui serve` running"):
            await admin.list_bounties()
        with pytest.raises(Unreachable, match=f"listing bounties: cannot reach {url}"):
            await agent.bounties()
        async with L402Client(wallet=None, spend_cap_sats=0) as l402:  # type: ignore[arg-type]
            with pytest.raises(Unavailable):
                await l402.get(url + "/api/v1/bounties")
