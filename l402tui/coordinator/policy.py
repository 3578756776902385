"""The operator's posting policy (config ``[policy]``): who may post, what posting costs,
and the largest bounty this coordinator will host.

A bounty over policy is refused at creation with the limit it broke, so the sponsor
knows which number to change; the same check serves the operator's own bounties and
(later) sponsors posting through the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from l402tui.config import ConfigError
from l402tui.coordinator.errors import Invalid, Unavailable

if TYPE_CHECKING:
    from l402tui.bounty import BountySpec
    from l402tui.config import Config

WHO_MAY_POST = ("anyone_who_pays", "invited", "nobody")
OPERATOR, INVITED, PAYING = "operator", "invited", "paying"


@dataclass(frozen=True)
class PolicyBreach:
    """One limit a bounty broke: the setting, what the bounty asks and what is allowed."""

    limit: str
    value: Any
    allowed: Any
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"limit": self.limit, "value": self.value, "allowed": self.allowed, "message": self.message}


@dataclass(frozen=True)
class PostingPolicy:
    who_may_post: str
    posting_fee_sats: int
    max_pool_sats: int
    max_cpus: float
    max_memory_mb: int
    max_disk_mb: int
    allow_gpu: bool
    max_time_limit_s: float
    allowed_images: frozenset[str]
    default_image: str

    @classmethod
    def from_config(cls, cfg: "Config") -> "PostingPolicy":
        p = cfg.section("policy")
        who = str(p["who_may_post"]).strip().lower()
        if who not in WHO_MAY_POST:
            raise ConfigError(f"policy.who_may_post is {p['who_may_post']!r}; use one of {', '.join(WHO_MAY_POST)}")
        images = p["allowed_images"]
        if not all(isinstance(i, str) and i for i in images):
            raise ConfigError(f"policy.allowed_images must be a list of image names, got {images!r}")
        for key in ("posting_fee_sats", "max_pool_sats", "max_cpus", "max_memory_mb", "max_disk_mb",
                    "max_time_limit_s"):
            if p[key] < 0:
                raise ConfigError(f"policy.{key} is {p[key]}; it cannot be negative")
        default_image = str(cfg.get("evaluation.docker_image"))
        return cls(who_may_post=who, posting_fee_sats=int(p["posting_fee_sats"]), max_pool_sats=int(p["max_pool_sats"]),
                   max_cpus=float(p["max_cpus"]), max_memory_mb=int(p["max_memory_mb"]),
                   max_disk_mb=int(p["max_disk_mb"]), allow_gpu=bool(p["allow_gpu"]),
                   max_time_limit_s=float(p["max_time_limit_s"]),
                   allowed_images=frozenset(images) | {default_image}, default_image=default_image)

    def may_post(self, poster: str) -> bool:
        """Whether a poster of this kind (OPERATOR, INVITED or PAYING) may post a bounty now."""
        if poster == OPERATOR:
            return True
        if poster == INVITED:
            return self.who_may_post in ("invited", "anyone_who_pays")
        if poster == PAYING:
            return self.who_may_post == "anyone_who_pays"
        raise ValueError(f"unknown poster kind {poster!r}")

    def breaches(self, spec: "BountySpec") -> list[PolicyBreach]:
        """Every limit ``spec`` breaks, in the order a sponsor would fix them."""
        out: list[PolicyBreach] = []

        def over(limit: str, value: Any, allowed: Any, what: str, unit: str = "") -> None:
            out.append(PolicyBreach(f"policy.{limit}", value, allowed,
                                    f"{what} is {_num(value)}{unit}; this coordinator allows at most "
                                    f"{_num(allowed)}{unit} "
                                    f"(policy.{limit})"))

        if spec.pool_sats > self.max_pool_sats:
            over("max_pool_sats", spec.pool_sats, self.max_pool_sats, "reward.pool_sats", " sats")
        if spec.cpus > self.max_cpus:
            over("max_cpus", spec.cpus, self.max_cpus, "resources.cpus")
        if spec.memory_mb > self.max_memory_mb:
            over("max_memory_mb", spec.memory_mb, self.max_memory_mb, "resources.memory_mb", " MB")
        if spec.disk_mb > self.max_disk_mb:
            over("max_disk_mb", spec.disk_mb, self.max_disk_mb, "resources.disk_mb", " MB")
        if spec.gpu and not self.allow_gpu:
            out.append(PolicyBreach("policy.allow_gpu", True, False,
                                    "resources.gpu is true; this coordinator runs no GPU bounties (policy.allow_gpu)"))
        run_limit = min(spec.run.timeout_s, spec.time_limit_s)  # what the harness enforces on a run
        if run_limit > self.max_time_limit_s:
            over("max_time_limit_s", run_limit, self.max_time_limit_s, "the run's time limit (resources.time_limit_s, "
                 "run.timeout_s)", " s")
        if spec.score.timeout_s > self.max_time_limit_s:
            over("max_time_limit_s", spec.score.timeout_s, self.max_time_limit_s, "score.timeout_s", " s")
        image = spec.image or self.default_image
        if image not in self.allowed_images:
            shown = ", ".join(sorted(self.allowed_images))
            out.append(PolicyBreach("policy.allowed_images", image, sorted(self.allowed_images),
                                    f"resources.image {image!r} is not an allowed run image (allowed: {shown}; "
                                    "policy.allowed_images)"))
        return out


def _num(value: float | int) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,g}"


def check_bounty(cfg: "Config", spec: "BountySpec") -> PolicyBreach | None:
    """The first limit of the operator's policy that ``spec`` breaks, or None."""
    found = PostingPolicy.from_config(cfg).breaches(spec)
    return found[0] if found else None


def enforce(cfg: "Config", spec: "BountySpec") -> None:
    """Raise Invalid (422, code ``over_policy``) naming every limit ``spec`` breaks."""
    try:
        found = PostingPolicy.from_config(cfg).breaches(spec)
    except ConfigError as exc:
        raise Unavailable(f"the coordinator's policy settings are broken: {exc}",
                          code="policy_misconfigured") from None
    if found:
        first = found[0]
        more = f"; {len(found) - 1} more limit(s) broken" if len(found) > 1 else ""
        raise Invalid(f"the bounty is over this coordinator's policy: {first.message}{more}", code="over_policy",
                      details={"limit": first.limit, "value": first.value, "allowed": first.allowed,
                               "problems": [b.message for b in found], "breaches": [b.to_json() for b in found]})
