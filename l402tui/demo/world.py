"""The demo's world: a data dir, a simulated Lightning network with a sponsor and
two agents, and copies of the sample bounties with demo-sized deadlines.

Everything here is real — the coordinator, the sandboxes, the evaluation harness,
the agents' loops and the BOLT11/L402 payments — only the Lightning network is the
embedded simulation, and time scales are shortened (holdback about a minute).
"""

from __future__ import annotations

import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from l402tui.config import Config

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLES_DIR = ROOT / "sample_bounties"

SPONSOR_SATS = 2_000_000
AGENT_SATS = 20_000


@dataclass(frozen=True)
class Actor:
    """One party of the demo: its sim node's name, what that node starts with, and, for an
    agent, the seed of its search proposer (so a run can be told again)."""

    name: str
    role: str  # "coordinator", "sponsor" or "agent"
    start_sats: int
    seed: int | None = None


# Who is who, for both demo modes (headless and in the TUI) alike.
CAST = (Actor("coordinator", "coordinator", 0),
        Actor("sponsor", "sponsor", SPONSOR_SATS),
        Actor("agent-1", "agent", AGENT_SATS, seed=7),
        Actor("agent-2", "agent", AGENT_SATS, seed=8))
COORDINATOR = next(a.name for a in CAST if a.role == "coordinator")
SPONSOR = next(a.name for a in CAST if a.role == "sponsor")
AGENT_CAST = tuple(a for a in CAST if a.role == "agent")
AGENTS = tuple(a.name for a in AGENT_CAST)  # each works on one of the demo's bounties, in this order
DEMO_BOUNTIES = ("logparse", "sqlquery")
DEMO_DURATION_HOURS = 2  # within the funding hold window below
BLOCK_INTERVAL_S = 60.0  # 144-block HTLCs then last ~2.4 h, so a 2 h bounty can be escrowed
HOLDBACK_S = 60


class DemoError(RuntimeError):
    """The demo cannot start; the message says what is missing."""


@dataclass(frozen=True)
class DemoPlan:
    cfg: Config
    bounty_dirs: tuple[Path, ...]
    url: str


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def demo_config(base: Config, data_dir: Path, *, port: int | None = None,
                holdback_s: float = HOLDBACK_S) -> Config:
    """The user's config with the demo's time scales and an isolated data dir.

    Sandbox choice, prices and fees stay as configured, so the demo shows what the
    operator's own setup would do."""
    port = port or free_port()
    return base.with_overrides({
        "paths.data_dir": str(data_dir),
        "lightning.backend": "sim",
        "lightning.node": COORDINATOR,
        "lightning.sim_block_interval_s": BLOCK_INTERVAL_S,
        "coordinator.host": "127.0.0.1",
        "coordinator.port": port,
        "coordinator.holdback_seconds": int(holdback_s),
        "coordinator.submissions_per_day": 50,
        "coordinator.verdict_quantum_s": 5.0,  # verdicts in time classes of 5, 10, 20 … s: short for a demo
        "agent.node": AGENTS[0],
        "tui.agent_bounty": "",
    }, source="demo")


def copy_bounty(sample: str, dest_root: Path, holdback_s: float = HOLDBACK_S) -> Path:
    """Copy a sample bounty as the demo sponsor posts it: same code and data, a 2 h
    deadline and a holdback of about a minute (instead of a day)."""
    source = SAMPLES_DIR / sample
    if not (source / "bounty.toml").is_file():
        raise DemoError(f"sample bounty {source} is missing; run the demo from a checkout of l402tui")
    dest = dest_root / sample
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    toml = (dest / "bounty.toml").read_text(encoding="utf-8")
    toml, n = re.subn(r"(?m)^duration_hours\s*=.*$", f"duration_hours = {DEMO_DURATION_HOURS}", toml)
    if n != 1:
        raise DemoError(f"{source}/bounty.toml has no single reward.duration_hours line to shorten for the demo")
    # A bounty's own holdback_s wins over the config's: shorten it in the copy too.
    toml = re.sub(r"(?m)^holdback_s\s*=.*$", f"holdback_s = {int(holdback_s)}", toml)
    (dest / "bounty.toml").write_text(toml, encoding="utf-8")
    return dest


def prepare(base: Config, data_dir: Path, *, bounties: tuple[str, ...] = DEMO_BOUNTIES, fresh: bool = True,
            port: int | None = None, holdback_s: float = HOLDBACK_S) -> DemoPlan:
    """Lay out the data dir and the sponsor's bounty folders (synchronous, before any loop)."""
    if data_dir.exists():
        from l402tui.coordinator.runtime import data_dir_busy

        busy = data_dir_busy(data_dir)
        if busy:  # never wipe (or share) the folder of a demo that is still running
            raise DemoError(busy.replace("stop it first, or attach to it: `l402tui --attach URL`",
                                         "stop that demo first, or pass another --data-dir"))
    if fresh and data_dir.exists():
        marker = data_dir / ".l402tui-demo"
        if not marker.exists() and any(data_dir.iterdir()):
            raise DemoError(f"{data_dir} is not empty and is not a previous demo's folder; pick another --data-dir")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / ".l402tui-demo").write_text("made by `l402tui demo`; safe to delete\n")
    cfg = demo_config(base, data_dir, port=port, holdback_s=holdback_s)
    sponsor_dir = data_dir / "sponsor"
    dirs = tuple(copy_bounty(name, sponsor_dir, holdback_s) for name in bounties)
    return DemoPlan(cfg, dirs, f"http://127.0.0.1:{cfg.get('coordinator.port')}")


async def open_network(cfg: Config):
    """The sim network with the demo's nodes funded (idempotent)."""
    from l402tui.lightning.sim import SimNetwork

    net = SimNetwork.from_config(cfg)
    for actor in CAST:
        await net.create_node(actor.name, actor.start_sats * 1000, exist_ok=True)
    return net
