"""Publishing a bounty: validate, freeze a copy, pack, commit held-out sets, open funding.

Called through :meth:`Coordinator.create_bounty`.  Everything the bounty needs later
(the frozen source, the package, commitments with their salts, the funding hold's
preimage, the queued baseline, the deadline timer) is written in one transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l402tui.bounty import BountyInvalid, BountySpec, load_bounty
from l402tui.bounty.commitment import canonical_manifest, commit
from l402tui.bounty.gitsource import GitLimits, GitSource, GitSourceRefused, fetch_bounty_source
from l402tui.bounty.package import PackagingError, build_package, unpack
from l402tui.coordinator import policy
from l402tui.coordinator.errors import Conflict, Invalid
from l402tui.coordinator.views import spec_summary
from l402tui.lightning.backend import LightningError
from l402tui.store.privacy import make_tree_private

if TYPE_CHECKING:
    from l402tui.coordinator.service import Coordinator

CLN_BLOCK_INTERVAL_S = 600.0


async def create_bounty(coord: "Coordinator", source: Path | str | bytes | GitSource, *,
                        self_funded: bool = False) -> dict[str, Any]:
    """Validate, freeze and publish a bounty from a folder, an uploaded tarball of one, or a
    git repository at one commit (the package then records the commit).

    Returns ``{"bounty": view, "funding": {...} | None, "source": {git URL, commit...} | None}``; with hold funding the
    sponsor pays ``funding.invoice`` and the bounty opens when that payment is held.
    Raises Invalid (with every problem) or Conflict (deadline beyond the hold window).
    """
    bounty_root = coord.data_dir / "bounties"
    bounty_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bounty_root, prefix=".incoming-") as tmp:
        provenance = None
        if isinstance(source, GitSource):
            folder, provenance = await _fetch_git(coord, source, Path(tmp))
        else:
            # Unpacking (and below, copying) a bounty is disk work of up to the upload limits:
            # off the event loop, which keeps answering everyone else meanwhile.
            folder = await asyncio.to_thread(_materialize, source, Path(tmp))
        spec = _load(folder)
        policy.enforce(coord.cfg, spec)
        bounty_id = _new_bounty_id(spec.name)
        home = bounty_root / bounty_id
        # The coordinator evaluates with its own frozen copy, never the sponsor's live folder.
        frozen = await asyncio.to_thread(_freeze, folder, home / "source")
    try:
        return await _publish(coord, bounty_id, home, _load(frozen), self_funded, provenance)
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise


async def _fetch_git(coord: "Coordinator", source: GitSource, tmp: Path) -> tuple[Path, dict[str, Any]]:
    try:  # git runs as subprocesses for up to policy.git_timeout_s: off the event loop
        checkout = await asyncio.to_thread(fetch_bounty_source, source, tmp, GitLimits.from_config(coord.cfg))
    except GitSourceRefused as exc:
        raise Invalid(f"the git source was refused: {exc}", code=exc.code, details={"source": source.to_json()}) from None
    return checkout.folder, checkout.provenance()


def _freeze(folder: Path, frozen: Path) -> Path:
    shutil.copytree(folder, frozen, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
    make_tree_private(frozen)  # copytree keeps the sponsor's modes; held-out labels stay ours alone
    return frozen


def _materialize(source: Path | str | bytes, tmp: Path) -> Path:
    if isinstance(source, (bytes, bytearray)):
        try:
            unpack(bytes(source), tmp / "upload")
        except (PackagingError, OSError, EOFError) as exc:
            raise Invalid(f"the uploaded tarball cannot be unpacked safely: {exc}") from None
        except Exception as exc:  # tarfile raises its own zoo for corrupt input
            raise Invalid(f"the upload is not a gzip tarball of a bounty folder ({exc})") from None
        root = tmp / "upload"
        if (root / "bounty.toml").is_file():
            return root
        subdirs = [p for p in root.iterdir() if p.is_dir()]
        if len(subdirs) == 1 and (subdirs[0] / "bounty.toml").is_file():
            return subdirs[0]
        raise Invalid("the tarball has no bounty.toml at its top (or in its single top folder)")
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise Invalid(f"{folder} is not a directory; give the bounty folder that holds bounty.toml")
    return folder


def _load(folder: Path) -> BountySpec:
    try:
        return load_bounty(folder)
    except BountyInvalid as exc:
        raise Invalid(f"bounty.toml has {len(exc.problems)} problem(s); fix them and retry",
                      code="invalid_bounty", details={"problems": [str(p) for p in exc.problems]}) from None


def safe_hold_window_s(coord: "Coordinator") -> float:
    """How long a funding hold can be held before its HTLC nears expiry."""
    interval = (coord.cfg.get("lightning.sim_block_interval_s") if coord.backend.name == "sim"
                else CLN_BLOCK_INTERVAL_S)
    blocks = coord.cfg.get("lightning.hold_cltv_blocks") - coord.cfg.get("lightning.hold_safety_blocks")
    return max(0.0, blocks * float(interval))


async def _publish(coord: "Coordinator", bounty_id: str, home: Path, spec: BountySpec,
               self_funded: bool, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    now = time.time()
    created = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    deadline = spec.deadline_from(created).timestamp()
    if deadline <= now + 60:
        raise Invalid(f"the deadline {spec.deadline_from(created).isoformat()} is already past (or within a "
                      "minute); set reward.deadline or reward.duration_hours later", code="deadline_past")
    if not self_funded and deadline - now > safe_hold_window_s(coord):
        raise Conflict(
            f"the deadline is {_duration(deadline - now)} away, beyond the {_duration(safe_hold_window_s(coord))} "
            "a funding hold invoice can safely be held (HTLC expiry); create it self-funded (--self-funded) or "
            "shorten reward.duration_hours", code="beyond_hold_window")
    settings = coord.cfg.section("evaluation")
    if settings.get("executor", "local") == "ray":  # the GPU must be on a node of the cluster
        from l402tui.evaluation.ray_executor import cluster_gpu_refusal as gpu_check
    else:  # NVML only when a bounty asks for a GPU
        from l402tui.evaluation.slots import gpu_refusal

        def gpu_check(spec, settings):  # noqa: ARG001 - one call shape for both
            return gpu_refusal(spec)

    if (no_gpu := gpu_check(spec, settings)) is not None:
        raise Invalid(no_gpu, code="no_gpu")
    try:
        package = build_package(spec, provenance=provenance)
    except PackagingError as exc:
        raise Invalid(f"the bounty cannot be packed: {exc}", code="invalid_bounty") from None
    package_path = home / "package.tar.gz"
    package_path.write_bytes(package.data)
    commitments = [commit(spec.heldout_path(i), name) for i, name in enumerate(spec.heldout_dirs)]
    pool_msat = spec.pool_sats * 1000
    fee_msat = int(pool_msat * coord.cfg.get("coordinator.fee_percent") / 100)

    funding = None
    preimage = None
    if not self_funded:
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        try:
            invoice = await coord.backend.create_hold_invoice(
                payment_hash, pool_msat + fee_msat, f"l402tui: fund bounty {bounty_id} ({spec.name})",
                expiry_s=int(coord.cfg.get("coordinator.funding_invoice_expiry_s")),
                cltv_delta=int(coord.cfg.get("lightning.hold_cltv_blocks")), preimage=preimage.hex())
        except LightningError as exc:
            raise Conflict(f"the Lightning node could not create the funding invoice: {exc}",
                           code="lightning_error") from None
        funding = {"invoice": invoice.bolt11, "payment_hash": payment_hash,
                   "amount_sats": (pool_msat + fee_msat) // 1000, "pool_sats": spec.pool_sats,
                   "fee_sats": fee_msat // 1000, "expires_at": invoice.expires_at}

    async with coord.transaction() as txn:
        await txn.insert("bounties", {
            "id": bounty_id, "name": spec.name, "status": "DRAFT",
            "spec_json": json.dumps({**spec_summary(spec), "source": provenance}), "source_dir": str(home / "source"),
            "package_path": str(package_path), "package_sha256": package.sha256, "package_size": package.size,
            "pool_msat": pool_msat, "funding_mode": "self" if self_funded else "hold",
            "funding_payment_hash": funding["payment_hash"] if funding else None,
            "deadline": deadline, "created_at": now, "updated_at": now,
        })
        for i, c in enumerate(commitments):
            await txn.insert("heldout_commitments", {
                "bounty_id": bounty_id, "set_index": i, "set_name": c.set_name,
                "manifest_json": json.dumps(canonical_manifest(c.manifest)),
                "salt_hex": c.salt_hex, "commitment_hex": c.commitment_hex,
            })
        await txn.event("bounty.created", bounty_id, name=spec.name, status="DRAFT",
                        package_sha256=package.sha256, pool_sats=spec.pool_sats, source=provenance)
        # The baseline is measured by the evaluation queue like any submission: same
        # harness, same sandbox, held-out set 0.  Until it lands the view says "pending".
        await txn.insert("evaluations", {"bounty_id": bounty_id, "kind": "baseline", "heldout_set": 0,
                                         "status": "QUEUED", "created_at": now})
        await coord._timer(txn, "bounty_deadline", bounty_id, deadline)
        if self_funded:
            await coord._set_bounty_status(txn, bounty_id, "DRAFT", "OPEN", funding_mode="self")
        else:
            await txn.insert("invoices", {
                "payment_hash": funding["payment_hash"], "kind": "funding", "bolt11": funding["invoice"],
                "amount_msat": pool_msat + fee_msat, "is_hold": 1, "status": "OPEN",
                "preimage": preimage.hex(), "bounty_id": bounty_id, "expires_at": funding["expires_at"],
                "created_at": now, "updated_at": now,
            })
            await coord._set_bounty_status(txn, bounty_id, "DRAFT", "AWAITING_FUNDING",
                                          invoice=funding["invoice"], amount_sats=funding["amount_sats"])
            await coord._timer(txn, "funding_expiry", bounty_id, funding["expires_at"])
    return {"bounty": await coord.get_bounty(bounty_id), "funding": funding, "source": provenance}


def _new_bounty_id(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:24] or "bounty"
    return f"{slug}-{secrets.token_hex(3)}"


def _duration(seconds: float) -> str:
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
