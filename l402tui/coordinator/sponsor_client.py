"""``SponsorClient``: the coordinator's sponsor routes over HTTP, for a sponsor's scripts, the
``l402tui sponsor`` commands and the TUI attached with ``--sponsor-macaroon``.

It has the method names and return shapes of :class:`HttpCoordinatorClient` (and so of the
``Coordinator`` service) that the TUI reads with, backed by ``/api/v1/sponsor/...``: the
same panes then show only this sponsor's bounties.  A folder to post is packed here, on
the sponsor's machine, and uploaded: the coordinator never reads a path a sponsor names.
The event stream is a poll of ``GET /api/v1/sponsor/events`` (sponsors get no SSE).
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote

import aiohttp

from l402tui.coordinator.client import CoordinatorUnreachable, HttpCoordinatorClient
from l402tui.coordinator.errors import Invalid
from l402tui.l402.sponsor import credential_header

_P = "/api/v1/sponsor"
POLL_S = 2.0  # events; under the per-address rate limit together with the reloads they cause
_SKIP = {".git", "__pycache__", ".venv", "node_modules"}


def pack_folder(folder: Path) -> bytes:
    """A .tar.gz of a bounty folder (bounty.toml at its top), without VCS and cache folders
    or links (the coordinator refuses links in an upload anyway)."""
    folder = Path(folder).expanduser()
    if not (folder / "bounty.toml").is_file():
        raise Invalid(f"{folder} has no bounty.toml; give the bounty folder")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if any(part in _SKIP for part in rel.parts) or path.is_symlink():
                continue
            if path.is_dir() or path.is_file():
                tar.add(path, arcname=str(rel), recursive=False)
    return buf.getvalue()


class SponsorClient(HttpCoordinatorClient):
    """Talks to ``base_url`` with a sponsor credential: ``macaroon:preimage`` (bought with the
    posting fee) or ``macaroon`` (an invite), as text or read from ``credential_path``."""

    views_prefix = _P  # the full views, of this sponsor's bounties only

    def __init__(self, base_url: str, *, credential: str | None = None, credential_path: Path | None = None,
                 poll_s: float = POLL_S, **kwargs: Any):
        super().__init__(base_url, **kwargs)
        if credential is None and credential_path is not None:
            credential = Path(credential_path).expanduser().read_text().strip()
        if not credential:
            raise ValueError("a sponsor client needs a credential (the posting fee's macaroon:preimage, or an invite)")
        self.credential = credential.strip()
        self.poll_s = poll_s

    def _headers(self) -> dict[str, str]:
        return {"Authorization": credential_header(self.credential)}

    async def whoami(self) -> dict[str, Any]:
        return await self._call("GET", _P)

    # -- reads, as the TUI makes them -----------------------------------------------------

    async def list_bounties(self, *, include_all: bool = False) -> list[dict[str, Any]]:
        return (await self._call("GET", f"{_P}/bounties"))["bounties"]

    async def get_bounty(self, bounty_id: str) -> dict[str, Any]:
        return await self._call("GET", f"{_P}/bounties/{quote(bounty_id, safe='')}")

    async def submission(self, submission_id: str) -> dict[str, Any]:
        return await self.submission_detail(submission_id)

    # funding, submission_detail, list_submissions, the ledger page, evaluations, their logs,
    # diffs and holdback timers: the operator client's reads, under views_prefix.

    # -- events: a poll of this sponsor's events ------------------------------------------

    async def events_after(self, after_id: int = 0, limit: int = 200) -> list[dict[str, Any]]:
        return (await self._call("GET", f"{_P}/events", params={"after": str(after_id), "limit": str(limit)}))["events"]

    async def last_event_id(self) -> int:
        return int((await self._call("GET", f"{_P}/events", params={"limit": "1", "after": "0"}))["last_event_id"])

    async def follow_events(self, after_id: int = 0, *, reconnect: bool = True) -> AsyncIterator[dict[str, Any]]:
        """This sponsor's events after ``after_id``, then new ones as they come (polled)."""
        last = self.last_event_seen = after_id
        while True:
            try:
                page = await self.events_after(last, 200)
            except CoordinatorUnreachable:
                if not reconnect:
                    raise
                page = []
            for event in page:
                if int(event["id"]) > last:
                    last = self.last_event_seen = int(event["id"])
                    yield event
            if len(page) < 200:
                await asyncio.sleep(self.poll_s)

    # -- actions on its own bounties ---------------------------------------------------------

    async def create_bounty(self, source: Path | str | bytes | dict[str, str], *,
                            self_funded: bool = False) -> dict[str, Any]:
        """Post a bounty: a local folder (packed here), the bytes of a .tar.gz, or a git source
        ``{"url", "commit", "subdir"}``.  The credential must still have a post (an invite, or
        a posting fee not yet used); otherwise the coordinator answers 402 for a new fee."""
        if self_funded:
            raise Invalid("a sponsor's pool is always paid into a hold invoice; self-funding is the operator's")
        if isinstance(source, dict):
            return await self._call("POST", f"{_P}/bounties", json={"git": source})
        data = bytes(source) if isinstance(source, (bytes, bytearray)) else \
            await asyncio.to_thread(pack_folder, Path(source))
        return await self._call("POST", f"{_P}/bounties", data=data, headers_extra={"Content-Type": "application/gzip"})

    async def close_bounty(self, bounty_id: str) -> dict[str, Any]:
        return await self._call("POST", f"{_P}/bounties/{quote(bounty_id, safe='')}/close")

    async def cancel_bounty(self, bounty_id: str) -> dict[str, Any]:
        return await self._call("POST", f"{_P}/bounties/{quote(bounty_id, safe='')}/cancel")

    async def review_submission(self, submission_id: str, decision: str, note: str = "") -> dict[str, Any]:
        return await self._call("POST", f"{_P}/submissions/{quote(submission_id, safe='')}/review",
                                json={"decision": decision, "note": note})

    async def claim_refund(self, bounty_id: str, bolt11: str) -> dict[str, Any]:
        return await self._call("POST", f"{_P}/bounties/{quote(bounty_id, safe='')}/refund", json={"invoice": bolt11})

    async def _operator_only(self, *_: Any, **__: Any) -> Any:
        raise Invalid("that is the operator's: a sponsor credential opens only /api/v1/sponsor routes")

    revoke_token = payouts_state = resume_payouts = resolve_payment = _operator_only  # type: ignore[assignment]


async def buy_credential(base_url: str, wallet: Any, source: Path | bytes, *, spend_cap_sats: int,
                         session: aiohttp.ClientSession | None = None) -> tuple[str, dict[str, Any]]:
    """Post a bounty to a coordinator that takes paid postings: meet the 402, pay the posting
    fee from ``wallet`` (any LightningBackend, within ``spend_cap_sats``), upload.  Returns
    (the sponsor credential ``macaroon:preimage``: keep it, it is the only key to the bounty;
    the coordinator's answer: the bounty and its funding hold invoice)."""
    from l402tui.l402.client import L402Client

    data = bytes(source) if isinstance(source, (bytes, bytearray)) else await asyncio.to_thread(pack_folder, source)
    url = base_url.rstrip("/") + f"{_P}/bounties"
    async with L402Client(wallet, spend_cap_sats=spend_cap_sats, session=session) as client:
        answer = await client.post(url, data=data, headers={"Content-Type": "application/gzip"})
        credential = next(iter(client.tokens.values()), None)
        if session is not None:
            client.session = None  # the caller's session stays open
    if answer.status != 201:
        raise answer.error("posting failed")  # the server's own error class and code (l402tui.errors)
    body = answer.json()
    if credential is None:
        raise Invalid("posting succeeded but no credential was kept: the answer came without a paid token")
    return credential, body
