"""Checking a bounty folder before creating it: one report for `l402tui bounty validate`
and the TUI's Create dialog (no UI here; both print or show it)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ValidationReport:
    """What `bounty validate` (and audit, where available) say about a folder."""

    ok: bool
    name: str | None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # facts worth seeing before creating: metric, package size, audit
    deadline_in_s: float | None = None  # how far the deadline would be if created now
    pool_msat: int | None = None


def validate_folder_sync(path: Path) -> ValidationReport:
    from l402tui.bounty import BountyInvalid, load_bounty
    from l402tui.bounty.package import PackagingError, build_package

    path = Path(path).expanduser()  # the folder, or its bounty.toml (load_bounty says what is missing)
    try:
        spec = load_bounty(path)
    except BountyInvalid as exc:
        return ValidationReport(False, None, tuple(str(p) for p in exc.problems))
    try:
        package = build_package(spec)
    except PackagingError as exc:
        return ValidationReport(False, spec.name, (f"{path}: {exc}",))
    metric = spec.primary_metric
    notes = (
        f"metric {metric.name} ({metric.direction}), {len(spec.metrics)} metric(s) in all",
        f"pool {spec.pool_sats:,} sats, target {spec.target_improvement:g} ({spec.target_kind})",
        f"package {package.size:,} bytes, {len(package.files)} files, sha256 {package.sha256[:16]}…",
        f"{len(spec.heldout_dirs)} held-out set(s), {spec.repeats} repeat(s) per evaluation",
    )
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    deadline_in = (spec.deadline_from(now) - now).total_seconds()
    return ValidationReport(True, spec.name, (), notes, deadline_in_s=deadline_in, pool_msat=spec.pool_sats * 1000)


async def validate_folder(path: Path) -> ValidationReport:
    # Packing reads every file of the bounty: keep it off the event loop.
    return await asyncio.to_thread(validate_folder_sync, path)
