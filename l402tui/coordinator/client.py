"""``HttpCoordinatorClient``: the coordinator's read surface (and admin actions) over HTTP.

For the TUI's ``--attach URL`` mode: the same method names and return shapes as
:class:`~l402tui.coordinator.service.Coordinator`, backed by the admin API and
the server-sent event stream of a running ``l402tui serve``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp

from l402tui.coordinator.errors import Conflict, CoordinatorError, Invalid, LimitReached, NotFound, Unavailable

_BY_STATUS = {404: NotFound, 409: Conflict, 422: Invalid, 400: Invalid, 503: Unavailable}


class CoordinatorUnreachable(CoordinatorError):
    status = 503
    code = "unreachable"


class AdminUnauthorized(CoordinatorError):
    status = 401
    code = "unauthorized"


class HttpCoordinatorClient:
    """Talks to ``base_url`` with the admin macaroon (text, or read from ``macaroon_path``)."""

    def __init__(self, base_url: str, *, admin_macaroon: str | None = None, macaroon_path: Path | None = None,
                 timeout_s: float = 30.0, session: aiohttp.ClientSession | None = None):
        self.base_url = base_url.rstrip("/")
        if admin_macaroon is None and macaroon_path is not None:
            admin_macaroon = Path(macaroon_path).expanduser().read_text().strip()
        self.admin_macaroon = admin_macaroon
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session

    async def __aenter__(self) -> "HttpCoordinatorClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_macaroon}"} if self.admin_macaroon else {}

    async def _call(self, method: str, path: str, *, headers_extra: dict[str, str] | None = None,
                    **kwargs: Any) -> Any:
        try:
            async with self.session().request(method, self.base_url + path,
                                              headers={**self._headers(), **(headers_extra or {})},
                                              timeout=self.timeout, **kwargs) as r:
                body = await r.json(content_type=None)
                status = r.status
                retry_after = r.headers.get("Retry-After")
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            raise CoordinatorUnreachable(f"cannot reach the coordinator at {self.base_url}: {exc}; "
                                         "is `l402tui serve` running?") from None
        if status < 400:
            return body
        message = body.get("message", str(body)) if isinstance(body, dict) else str(body)
        code = body.get("error") if isinstance(body, dict) else None
        if status == 401:
            raise AdminUnauthorized(message)
        if status == 429:
            raise LimitReached(message, retry_after_s=int(retry_after or 1))
        details = {k: v for k, v in body.items() if k not in ("error", "message")} if isinstance(body, dict) else {}
        raise _BY_STATUS.get(status, CoordinatorError)(message, code=code, details=details)

    # -- the service's read methods -----------------------------------------------------

    async def list_bounties(self, *, include_all: bool = False) -> list[dict[str, Any]]:
        path = "/api/v1/admin/bounties" if include_all else "/api/v1/bounties"
        return (await self._call("GET", path))["bounties"]

    async def get_bounty(self, bounty_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/v1/bounties/{bounty_id}")

    async def leaderboard(self, bounty_id: str) -> list[dict[str, Any]]:
        return (await self._call("GET", f"/api/v1/bounties/{bounty_id}/leaderboard"))["leaderboard"]

    async def funding(self, bounty_id: str) -> dict[str, Any] | None:
        return (await self._call("GET", f"/api/v1/admin/bounties/{bounty_id}/funding"))["funding"]

    async def submission(self, submission_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/v1/submissions/{submission_id}")

    async def list_submissions(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        params = {"limit": str(limit), **({"bounty_id": bounty_id} if bounty_id else {})}
        return (await self._call("GET", "/api/v1/admin/submissions", params=params))["submissions"]

    async def _ledger(self, bounty_id: str | None, limit: int) -> dict[str, Any]:
        params = {"limit": str(limit), **({"bounty_id": bounty_id} if bounty_id else {})}
        return await self._call("GET", "/api/v1/admin/ledger", params=params)

    async def ledger(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        return (await self._ledger(bounty_id, limit))["entries"]

    async def invoices(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        return (await self._ledger(bounty_id, limit))["invoices"]

    async def payments(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        return (await self._ledger(bounty_id, limit))["payments"]

    async def follow_events(self, after_id: int = 0, *, reconnect: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Every event after ``after_id``, then live ones; reconnects from the last id seen."""
        last = after_id
        delay = 0.5
        while True:
            try:
                async with self.session().get(self.base_url + "/api/v1/events", headers={
                        **self._headers(), "Last-Event-ID": str(last), "Accept": "text/event-stream"},
                        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as r:
                    if r.status == 401:
                        raise AdminUnauthorized((await r.json(content_type=None)).get("message", "unauthorized"))
                    data: list[str] = []
                    async for raw in r.content:
                        line = raw.decode("utf-8").rstrip("\n")
                        if line.startswith("data:"):
                            data.append(line[5:].lstrip())
                        elif not line and data:
                            event = json.loads("\n".join(data))
                            data = []
                            last = event["id"]
                            delay = 0.5
                            yield event
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
                if not reconnect:
                    raise CoordinatorUnreachable(f"the event stream from {self.base_url} ended") from None
            if not reconnect:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)

    # -- admin actions -------------------------------------------------------------------

    async def create_bounty(self, source: Path | str | bytes, *, self_funded: bool = False) -> dict[str, Any]:
        """From a path on the coordinator's host, or the bytes of a .tar.gz of the folder."""
        if isinstance(source, (bytes, bytearray)):
            return await self._call("POST", "/api/v1/admin/bounties", data=bytes(source),
                                    params={"self_funded": "1" if self_funded else "0"},
                                    headers_extra={"Content-Type": "application/gzip"})
        return await self._call("POST", "/api/v1/admin/bounties",
                                json={"path": str(source), "self_funded": self_funded})

    async def cancel_bounty(self, bounty_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/admin/bounties/{bounty_id}/cancel")

    async def close_bounty(self, bounty_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/admin/bounties/{bounty_id}/close")

    async def revoke_token(self, token_id: str) -> int:
        return (await self._call("POST", f"/api/v1/admin/tokens/{token_id}/revoke"))["revoked_keys"]
