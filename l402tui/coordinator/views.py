"""What the coordinator shows about bounties and submissions: rows to plain dicts.

The same dicts go to the TUI (in-process) and over HTTP, so both see one truth.
Nothing secret leaves here: no salts before the reveal, no preimages, no eval logs.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from l402tui.bounty import BountySpec


def spec_summary(spec: BountySpec) -> dict[str, Any]:
    """The public part of a bounty.toml, stored with the bounty at creation."""
    return {
        "name": spec.name,
        "description": spec.description,
        "mutable": list(spec.mutable),
        "metrics": [{"name": m.name, "direction": m.direction, "weight": m.weight, "guard": m.guard,
                     "tolerance": m.tolerance, "source": m.source} for m in spec.metrics],
        "primary_metric": spec.primary_metric.name,
        "target": {"kind": spec.target_kind, "improvement": spec.target_improvement,
                   "min_improvement": spec.min_improvement},
        "stake_sats": spec.stake_sats,
        "rejected_stake_keep_percent": spec.rejected_stake_keep_percent,
        "holdback_s": spec.holdback_s,
        "constraints": {"max_changed_lines": spec.max_changed_lines,
                        "forbidden_patterns": list(spec.forbidden_patterns),
                        "test_command": spec.test_command},
        "resources": {"cpus": spec.cpus, "memory_mb": spec.memory_mb, "gpu": spec.gpu,
                      "time_limit_s": spec.time_limit_s},
        "noise": {"repeats": spec.repeats, "k_sigma": spec.k_sigma},
        "heldout_sets": len(spec.heldout_dirs),
    }


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def bounty_view(row: dict[str, Any], commitments: list[dict[str, Any]], *, pool_left_msat: int,
                rules: dict[str, Any], price_sats: dict[str, int], best: dict[str, Any] | None) -> dict[str, Any]:
    """A bounty as anyone may see it; ``best`` is what may be published of its current best
    (:func:`l402tui.coordinator.disclosure.agent_best`), never the stored medians."""
    summary = _loads(row["spec_json"]) or {}
    primary = summary.get("primary_metric")
    metric = next((m for m in summary.get("metrics", []) if m["name"] == primary), None)
    baseline = _loads(row["baseline_json"]) or {"status": "pending"}
    return {
        "id": row["id"],
        "name": row["name"],
        "description": summary.get("description", ""),
        "status": row["status"],
        "metric": metric,
        "metrics": summary.get("metrics", []),
        "baseline": baseline,
        "best": best,
        "target": summary.get("target"),
        "pool_sats": row["pool_msat"] // 1000,
        "pool_left_sats": pool_left_msat // 1000,
        "funding_mode": row["funding_mode"],
        "deadline": iso(row["deadline"]),
        "deadline_unix": row["deadline"],
        "created_at": iso(row["created_at"]),
        "rules": {
            "mutable": summary.get("mutable", []),
            **summary.get("constraints", {}),
            "stake_sats": summary.get("stake_sats", 0),
            "resources": summary.get("resources"),
            "noise": summary.get("noise"),
            **rules,
        },
        "source": summary.get("source"),  # a git source's URL and exact commit, when it came from one
        "package": {"sha256": row["package_sha256"], "size": row["package_size"],
                    "price_sats": price_sats.get("download_sats")},
        "submit_price_sats": price_sats.get("submit_sats"),
        "heldout_commitments": [
            {"set": c["set_index"], "commitment": c["commitment_hex"],
             # The salt is the secret that makes the hash unguessable: only after the reveal.
             "salt": c["salt_hex"] if c["revealed_at"] else None,
             "revealed_at": iso(c["revealed_at"])}
            for c in commitments
        ],
    }


def submission_view(row: dict[str, Any], *, stake_invoice: dict[str, Any] | None = None) -> dict[str, Any]:
    """A submission with its whole verdict and the operator's detail: operator and sponsor views only
    (an agent's view is :func:`l402tui.coordinator.disclosure.agent_submission`)."""
    verdict = _loads(row["verdict_json"])
    reasons = _loads(row["reasons"]) if row["reasons"] and row["reasons"].startswith("[") else (
        [row["reasons"]] if row["reasons"] else [])
    out = {
        "id": row["id"],
        "bounty_id": row["bounty_id"],
        "status": row["status"],
        "claimed_score": row["claimed_score"],
        "payout_destination": row["payout_destination"],
        "diff_sha256": row["diff_sha256"],
        "verdict": verdict,
        "reasons": reasons,
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
    if stake_invoice is not None:
        out["stake"] = stake_invoice
    return out


def event_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "kind": row["kind"], "subject_id": row["subject_id"],
            "payload": _loads(row["payload_json"]) or {}, "created_at": row["created_at"]}
