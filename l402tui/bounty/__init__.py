"""Bounty definitions: the bounty.toml spec, packaging and the held-out commitment."""

from l402tui.bounty.spec import BountyInvalid, BountySpec, Metric, Phase, Problem, load_bounty

__all__ = ["BountyInvalid", "BountySpec", "Metric", "Phase", "Problem", "load_bounty"]
