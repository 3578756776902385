"""Effective configuration: defaults < config file < L402TUI_* env vars < CLI flags.

The config file is TOML at ``$XDG_CONFIG_HOME/l402tui/config.toml`` (or the path in
``L402TUI_CONFIG``).  Every value is addressed as ``section.key``; the env var for
``coordinator.port`` is ``L402TUI_COORDINATOR__PORT`` (double underscore between
section and key).  ``l402tui config show`` prints each value with where it came from.
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "L402TUI_"

# Section -> key -> default.  The type of the default is the type of the setting.
DEFAULTS: dict[str, dict[str, Any]] = {
    "paths": {
        "data_dir": "",  # empty: $XDG_DATA_HOME/l402tui
    },
    "lightning": {
        "backend": "sim",  # sim | cln
        "node": "coordinator",  # which sim node this process speaks for
        "network": "regtest",
        "cln_rpc_path": "",  # e.g. ~/.lightning/regtest/lightning-rpc
        "sim_block_interval_s": 10.0,
        "sim_routing_fee_ppm": 1000,
        "sim_base_fee_msat": 1000,
        "hold_safety_blocks": 6,  # auto-cancel this many blocks before HTLC expiry
        "hold_cltv_blocks": 144,  # CLTV delta requested for hold invoices
    },
    "coordinator": {
        "host": "127.0.0.1",
        "port": 8402,
        "fee_percent": 7.5,
        "holdback_percent": 20.0,
        "holdback_seconds": 48 * 3600,
        "submissions_per_day": 5,
        # A verdict shows to its agent at created + Q·2^k, the end of the time class it fell in
        # (coordinator/disclosure.py): a run that sleeps to signal learns only the class.
        "verdict_quantum_s": 30.0,
        "funding_invoice_expiry_s": 3600,
        "token_valid_s": 7 * 24 * 3600,
        "max_diff_bytes": 256 * 1024,
        "trust_forwarded_for": False,  # behind your own reverse proxy: rate-limit by X-Forwarded-For
        # payouts (coordinator/payouts.py)
        "stability_tolerance": 0.25,  # the 20 % is released if >= 75 % of the improvement holds
        "stability_max_attempts": 3,  # failed stability re-evaluations before the holdback is forfeited
        "payout_max_attempts": 8,  # then the amount waits for a /claim with an invoice
        "payout_retry_base_s": 5.0,  # backoff doubles from here ...
        "payout_retry_max_s": 3600.0,  # ... up to this
        "payout_send_timeout_s": 60.0,
        "payout_max_fee_base_msat": 10_000,  # routing fee limit: base + ppm of the amount
        "payout_max_fee_ppm": 5000,
    },
    "prices": {
        "download_sats": 21,
        "submit_sats": 5,
    },
    "rate_limits": {
        "per_token_per_minute": 60,
        "per_ip_per_minute": 120,
    },
    "l402": {
        # Unpaid 402 offers kept at once, from all addresses together (l402/unpaid.py); past it 503.
        "max_unpaid_challenges": 10_000,
    },
    "evaluation": {
        "sandbox": "auto",  # auto | docker | bwrap | local
        "allow_unsandboxed": False,
        "max_concurrent": 1,  # legacy cap, used when raised above 1 and slots = 0
        "slots": 0,  # evaluations at once, each on its own cores/GPU (slots.py); 0: as many as the cores allow
        "reserved_cores": 0,  # the first cores kept for the coordinator and the TUI
        "exclusive_timing": True,  # bounties paying for cpu_s/wall_s get the whole machine unless they say not
        "docker_image": "l402tui-base:bookworm",
        "log_cap_bytes": 1024 * 1024,
        "overfit_gap": 0.10,  # flag when public gain beats held-out gain by more than this
        "near_duplicate_threshold": 0.90,  # flag a diff this similar to an earlier one
        "max_attempts": 3,  # evaluations that crashed the coordinator this often are FAILED
        "executor": "local",  # local: this machine's slots | ray: a Ray cluster's nodes (docs/scale-out.md)
        "ray_address": "auto",  # ray: the cluster to join; auto: the one `ray start --head` runs on this machine
        "ray_resources": {},  # ray: custom resources every evaluation asks for, e.g. {rig = 1} keeps them off the head
    },
    "agent": {
        "spend_cap_sats": 1000,
        "proposer": "search",
        "workdir": "",  # empty: <data_dir>/agents
        "sandbox": "local",  # where the agent scores its own candidates: local | bwrap | docker | auto
        "node": "agent-1",  # the sim wallet node this agent pays from and is paid to
        "parallel_repeats": 0,  # repeats of a local evaluation run at once; 0: cores // the bounty's cpus
    },
    # What this coordinator accepts for posting (coordinator/policy.py) and how it fetches git
    # sources (bounty/gitsource.py); docs/sponsors.md explains each key.
    "policy": {
        "who_may_post": "invited",  # anyone_who_pays | invited | nobody (sponsors; the operator always may)
        "posting_fee_sats": 1000,
        "max_pool_sats": 1_000_000,
        "max_cpus": 4.0,
        "max_memory_mb": 8192,
        "max_disk_mb": 10240,
        "allow_gpu": True,
        "max_time_limit_s": 3600.0,
        "allowed_images": [],  # run images besides evaluation.docker_image
        "git_protocols": ["https", "http", "git", "ssh"],
        "git_allow_file": False,  # file:// and local paths: tests only, never for sponsors
        "git_allowed_hosts": [],  # empty: any host
        "git_allow_private_hosts": False,  # loopback, private and link-local addresses
        "git_max_repo_mb": 100,  # fetched objects and the checked-out subdirectory, each
        "git_max_file_mb": 20,
        "git_timeout_s": 120.0,
    },
    "tui": {
        "theme": "l402-dark",
        "animation": False,
        "keymap": {},  # binding id -> key, e.g. {"toggle_agent" = "ctrl+a"}
        "agent_bounty": "",  # side-panel agent works on this bounty id; empty: the first OPEN one with pool left
        "agent_local_dir": "",  # or offline on this bounty folder (no coordinator, no payments)
    },
}


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which and why."""


@dataclass
class Config:
    values: dict[str, dict[str, Any]]
    sources: dict[str, str]  # "section.key" -> "default" | "file:<path>" | "env:<NAME>" | "cli"
    config_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def get(self, dotted: str) -> Any:
        section, key = dotted.split(".", 1)
        return self.values[section][key]

    def section(self, name: str) -> dict[str, Any]:
        return self.values[name]

    @property
    def data_dir(self) -> Path:
        raw = self.values["paths"]["data_dir"]
        return Path(raw).expanduser() if raw else xdg_data_home() / "l402tui"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "l402tui.sqlite"

    def with_overrides(self, overrides: dict[str, Any], source: str = "cli") -> "Config":
        """A copy with ``{"section.key": value}`` applied (CLI flags use this)."""
        values = copy.deepcopy(self.values)
        sources = dict(self.sources)
        for dotted, value in overrides.items():
            if value is None:
                continue
            section, key = _split_key(dotted)
            values[section][key] = _coerce(dotted, value, DEFAULTS[section][key])
            sources[dotted] = source
        return Config(values, sources, self.config_path, dict(self.extra))

    def rows(self) -> list[tuple[str, Any, str]]:
        out = []
        for section, keys in self.values.items():
            for key, value in keys.items():
                out.append((f"{section}.{key}", value, self.sources[f"{section}.{key}"]))
        return out


def xdg_config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def xdg_data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def default_config_path() -> Path:
    explicit = os.environ.get(ENV_PREFIX + "CONFIG")
    return Path(explicit).expanduser() if explicit else xdg_config_home() / "l402tui" / "config.toml"


def _split_key(dotted: str) -> tuple[str, str]:
    if "." not in dotted:
        raise ConfigError(f"unknown setting {dotted!r}: use section.key, e.g. coordinator.port")
    section, key = dotted.split(".", 1)
    if section not in DEFAULTS or key not in DEFAULTS[section]:
        known = ", ".join(f"{s}.{k}" for s in DEFAULTS for k in DEFAULTS[s])
        raise ConfigError(f"unknown setting {dotted!r}; known settings: {known}")
    return section, key


def _coerce(where: str, value: Any, default: Any) -> Any:
    """Coerce a value (from TOML or an env string) to the type of its default."""
    kind = type(default)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() in ("1", "true", "yes", "on"):
                    return True
                if text.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if kind is int:
                return int(text)
            if kind is float:
                return float(text)
            if kind in (dict, list):
                parsed = tomllib.loads(f"v = {text}")["v"]
                if isinstance(parsed, kind):
                    return parsed
                raise ValueError(text)
        except (ValueError, tomllib.TOMLDecodeError):
            raise ConfigError(
                f"{where}: expected {kind.__name__}, got {value!r}"
            ) from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")


def load_config(path: Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Build the effective config from defaults, the TOML file and the environment."""
    env = os.environ if env is None else env
    path = path or default_config_path()
    values = copy.deepcopy(DEFAULTS)
    sources = {f"{s}.{k}": "default" for s in DEFAULTS for k in DEFAULTS[s]}

    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        for section, table in data.items():
            if not isinstance(table, dict) or section not in DEFAULTS:
                raise ConfigError(
                    f"{path}: unknown section [{section}]; known: {', '.join(DEFAULTS)}"
                )
            for key, value in table.items():
                dotted = f"{section}.{key}"
                _split_key(dotted)
                values[section][key] = _coerce(f"{path}: {dotted}", value, DEFAULTS[section][key])
                sources[dotted] = f"file:{path}"

    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, key = name[len(ENV_PREFIX):].lower().split("__", 1)
        dotted = f"{section}.{key}"
        try:
            _split_key(dotted)
        except ConfigError as exc:
            raise ConfigError(f"environment variable {name}: {exc}") from None
        values[section][key] = _coerce(f"env {name}", raw, DEFAULTS[section][key])
        sources[dotted] = f"env:{name}"

    return Config(values, sources, path)
