"""``HttpCoordinatorClient``: the coordinator's read surface (and admin actions) over HTTP.

For the TUI's ``--attach URL`` mode: the same method names and return shapes as
:class:`~l402tui.coordinator.service.Coordinator`, backed by the admin API and
the server-sent event stream of a running ``l402tui serve``.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator
from urllib.parse import quote

import aiohttp

from l402tui.errors import NotFound, Unauthorized, Unreachable, from_response

if TYPE_CHECKING:
    from l402tui.bounty.gitsource import GitSource

# The names this client's callers know; the classes are l402tui.errors'.
CoordinatorUnreachable = Unreachable
AdminUnauthorized = Unauthorized


class _StreamRefused(Exception):
    """The event stream answered 5xx: worth reconnecting to."""


class HttpCoordinatorClient:
    """Talks to ``base_url`` with the admin macaroon (text, or read from ``macaroon_path``)."""

    # Where the full (operator's) views live; a sponsor's client reads the same views of its
    # own bounties under its own prefix (sponsor_client.py).
    views_prefix = "/api/v1/admin"

    def __init__(self, base_url: str, *, admin_macaroon: str | None = None, macaroon_path: Path | None = None,
                 timeout_s: float = 30.0, session: aiohttp.ClientSession | None = None,
                 stream_idle_s: float = 45.0, max_reconnect_delay_s: float = 15.0):
        self.base_url = base_url.rstrip("/")
        if admin_macaroon is None and macaroon_path is not None:
            admin_macaroon = Path(macaroon_path).expanduser().read_text().strip()
        self.admin_macaroon = admin_macaroon
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        # Three missed keep-alives (the server sends one every 15 s) and the stream is taken for dead.
        self.stream_idle_s = stream_idle_s
        self.max_reconnect_delay_s = max_reconnect_delay_s
        self.last_event_seen = 0  # the id the event stream resumes after

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
                raw = await r.read()
                status = r.status
                retry_after = r.headers.get("Retry-After")
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            raise Unreachable(f"cannot reach the coordinator at {self.base_url}: {exc}; "
                              "is `l402tui serve` running?") from None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw  # a proxy's HTML page, say: from_response keeps its text
        if status < 400:
            return body
        error = from_response(status, body, retry_after=retry_after)
        if status == 404 and error.message.startswith("404: Not Found"):  # aiohttp's own: no such route
            raise NotFound(f"{method} {path.split('?')[0]} is not served by the coordinator at {self.base_url}: "
                           "it runs an older l402tui than this client; upgrade it", code="route_missing")
        raise error

    # -- the service's read methods -----------------------------------------------------

    async def list_bounties(self, *, include_all: bool = False) -> list[dict[str, Any]]:
        path = "/api/v1/admin/bounties" if include_all else "/api/v1/bounties"
        return (await self._call("GET", path))["bounties"]

    async def get_bounty(self, bounty_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/v1/bounties/{bounty_id}")

    async def leaderboard(self, bounty_id: str) -> list[dict[str, Any]]:
        return (await self._call("GET", f"/api/v1/bounties/{bounty_id}/leaderboard"))["leaderboard"]

    async def funding(self, bounty_id: str) -> dict[str, Any] | None:
        return (await self._call("GET", f"{self.views_prefix}/bounties/{quote(bounty_id, safe='')}/funding"))[
            "funding"]

    async def submission(self, submission_id: str) -> dict[str, Any]:
        """The submission as its agent sees it (codes and published numbers only)."""
        return await self._call("GET", f"/api/v1/submissions/{submission_id}")

    async def submission_detail(self, submission_id: str) -> dict[str, Any]:
        """The operator's view: the whole verdict and the evaluation's detail."""
        return await self._call("GET", f"{self.views_prefix}/submissions/{quote(submission_id, safe='')}")

    async def list_submissions(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        params = {"limit": str(limit), **({"bounty_id": bounty_id} if bounty_id else {})}
        return (await self._call("GET", f"{self.views_prefix}/submissions", params=params))["submissions"]

    async def ledger_page(self, bounty_id: str | None = None, limit: int = 500) -> dict[str, list[dict[str, Any]]]:
        """Ledger entries, invoices and payments in one request (the route answers all three)."""
        params = {"limit": str(limit), **({"bounty_id": bounty_id} if bounty_id else {})}
        return await self._call("GET", f"{self.views_prefix}/ledger", params=params)

    async def ledger(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        return (await self.ledger_page(bounty_id, limit))["entries"]

    async def invoices(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        return (await self.ledger_page(bounty_id, limit))["invoices"]

    async def payments(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        return (await self.ledger_page(bounty_id, limit))["payments"]

    async def last_event_id(self) -> int:
        """The newest event's id: follow from here to see only what happens from now on."""
        return int((await self._call("GET", "/api/v1/admin/events", params={"limit": "1"}))["last_event_id"])

    async def follow_events(self, after_id: int = 0, *, reconnect: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Every event after ``after_id``, then live ones, each exactly once.

        When the stream drops (a daemon restart, an SSH tunnel that died, a silent
        network — noticed when not even the 15 s keep-alive arrives), it reconnects
        with ``Last-Event-ID`` set to the last id seen, so the server replays exactly
        what was missed; an id at or below it is never yielded twice.  With
        ``reconnect=False`` a break raises :class:`CoordinatorUnreachable` instead, and
        the caller resumes after ``last_event_seen`` when it sees fit."""
        last = self.last_event_seen = after_id
        delay = 0.5
        while True:
            try:
                async with aclosing(self._sse_once(last)) as stream:  # closed here, not by the GC
                    async for eid, event in stream:
                        delay = 0.5
                        if eid <= last:
                            continue  # a server that replays too much must not make us repeat
                        last = self.last_event_seen = eid
                        yield event
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as exc:
                if not reconnect:
                    raise Unreachable(f"the event stream from {self.base_url} broke off ({exc}); "
                                      "is `l402tui serve` still running?") from None
            except _StreamRefused as exc:  # 5xx from the daemon or a proxy in front of it: it may be restarting
                if not reconnect:
                    raise Unreachable(f"the event stream from {self.base_url}: {exc}") from None
            if not reconnect:  # the server never ends a stream on its own but when it stops
                raise Unreachable(f"the event stream from {self.base_url} ended; "
                                  "is `l402tui serve` still running?")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_reconnect_delay_s)

    async def _sse_once(self, after_id: int) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """One connection of the event stream, resumed after ``after_id``; ends when it closes."""
        headers = {**self._headers(), "Last-Event-ID": str(after_id), "Accept": "text/event-stream",
                   "Cache-Control": "no-cache"}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self.stream_idle_s)
        async with self.session().get(self.base_url + "/api/v1/events", headers=headers, timeout=timeout) as r:
            if r.status != 200:
                raw = await r.read()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                error = from_response(r.status, body, retry_after=r.headers.get("Retry-After"))
                if r.status >= 500:
                    raise _StreamRefused(f"HTTP {r.status}: {error.message}")
                raise error
            data: list[str] = []
            event_id: str | None = None
            async for raw in r.content:
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line:  # a blank line dispatches what was gathered
                    if data:
                        event = json.loads("\n".join(data))
                        yield (int(event_id) if event_id is not None else int(event["id"])), event
                    data, event_id = [], None
                    continue
                if line.startswith(":"):
                    continue  # comment: the greeting and keep-alives
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    data.append(value)
                elif field == "id":
                    event_id = value
            # A half-received event (no blank line yet) is dropped: it comes again after the resume.

    # -- admin actions -------------------------------------------------------------------

    async def create_bounty(self, source: "Path | str | bytes | GitSource", *,
                            self_funded: bool = False) -> dict[str, Any]:
        """From a path on the coordinator's host, the bytes of a .tar.gz of the folder, or a
        git repository at a commit (the coordinator fetches it)."""
        from l402tui.bounty.gitsource import GitSource

        if isinstance(source, GitSource):
            return await self._call("POST", "/api/v1/admin/bounties",
                                    json={"git": source.to_json(), "self_funded": self_funded})
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

    # -- what lives beside the coordinator's database -------------------------------------

    async def evaluations(self, limit: int = 200, *, bounty_id: str | None = None,
                          submission_id: str | None = None) -> list[dict[str, Any]]:
        params = {"limit": str(limit), **({"bounty_id": bounty_id} if bounty_id else {}),
                  **({"submission_id": submission_id} if submission_id else {})}
        return (await self._call("GET", f"{self.views_prefix}/evaluations", params=params))["evaluations"]

    async def eval_log(self, evaluation_id: int, offset: int = 0, max_bytes: int = 256 * 1024) -> dict[str, Any]:
        """One page of an evaluation's log: ``lines`` (whole lines) and ``next_offset``."""
        return await self._call("GET", f"{self.views_prefix}/evaluations/{int(evaluation_id)}/log",
                                params={"offset": str(offset), "max_bytes": str(max_bytes)})

    async def submission_diff(self, submission_id: str) -> str:
        return (await self._call("GET", f"{self.views_prefix}/submissions/{quote(submission_id, safe='')}/diff"))[
            "diff"]

    async def holdback_timers(self, bounty_id: str | None = None) -> list[dict[str, Any]]:
        params = {"bounty_id": bounty_id} if bounty_id else {}
        return (await self._call("GET", f"{self.views_prefix}/holdbacks", params=params))["holdbacks"]

    async def review_submission(self, submission_id: str, decision: str, note: str = "") -> dict[str, Any]:
        """``decision``: "accept" (not gaming: the stake is refunded) or "gaming" (forfeited)."""
        return await self._call("POST", f"/api/v1/admin/submissions/{quote(submission_id, safe='')}/review",
                                json={"decision": decision, "note": note})

    async def review(self, submission_id: str, decision: str, note: str = "") -> dict[str, Any]:
        """The service's name (``Coordinator.review``) for :meth:`review_submission`."""
        return await self.review_submission(submission_id, decision, note)

    async def wallet(self) -> dict[str, Any]:
        """GET /api/v1/admin/wallet: balance_msat, hold_window_s, backend, can_deposit."""
        return await self._call("GET", "/api/v1/admin/wallet")

    async def wallet_invoice(self, amount_sats: int) -> dict[str, Any]:
        """An invoice of the coordinator's node, to fund its wallet from another one."""
        return await self._call("POST", "/api/v1/admin/wallet/invoice", json={"amount_sats": int(amount_sats)})

    async def payouts_state(self) -> dict[str, Any]:
        """``{"halted": reason or None, "unknown_payments": [idempotency keys]}``."""
        return await self._call("GET", "/api/v1/admin/payouts")

    async def resume_payouts(self, note: str) -> dict[str, Any]:
        return await self._call("POST", "/api/v1/admin/payouts/resume", json={"note": note})

    async def resolve_payment(self, key: str, *, sent: bool, fee_msat: int = 0) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/admin/payments/{quote(key, safe='')}/resolve",
                                json={"sent": sent, "fee_msat": fee_msat})

    async def claim_refund(self, bounty_id: str, bolt11: str) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/admin/bounties/{quote(bounty_id, safe='')}/refund",
                                json={"invoice": bolt11})
