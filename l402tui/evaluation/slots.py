"""Evaluation slots: the share of the machine one evaluation holds while it runs.

A slot is a disjoint set of CPU cores (as many as the bounty's ``resources.cpus``,
rounded up), the bounty's memory, and for ``resources.gpu`` one whole GPU.  The worker
runs as many evaluations at once as slots fit; the sandboxes pin each run to its
cores (cgroup cpuset as root, ``docker --cpuset-cpus``, CPU affinity otherwise) and
its GPU (docker device request, bwrap binding only that ``/dev/nvidiaN``,
``CUDA_VISIBLE_DEVICES``).

Every evaluation of a bounty (its baseline and every candidate) asks for the same
:class:`Need`, so they are measured on slots of the same kind.  A bounty with
``resources.exclusive = true`` holds the whole machine; so does, by default, one
that pays for a harness timing (``cpu_s``, ``wall_s``) unless it says
``resources.exclusive = false`` (``evaluation.exclusive_timing``: see
BENCHMARKS.md for the noise measured with every slot busy).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from l402tui.bounty.spec import BountySpec
from l402tui.telemetry.gpu import GpuDevice, gpu_devices

TIMING_METRICS = frozenset({"cpu_s", "wall_s"})


@dataclass(frozen=True)
class Need:
    cores: int
    memory_mb: int
    gpu: bool = False
    exclusive: bool = False


@dataclass(frozen=True)
class Slot:
    cores: tuple[int, ...]
    memory_mb: int
    gpu: GpuDevice | None = None
    exclusive: bool = False

    @property
    def kind(self) -> str:
        """What a measurement depends on: compare evaluations only across slots of one kind."""
        parts = [f"{len(self.cores)} core{'s' if len(self.cores) != 1 else ''}"]
        if self.gpu is not None:
            parts.append(f"1 GPU ({self.gpu.name})")
        if self.exclusive:
            parts.append("exclusive")
        return ", ".join(parts)

    def describe(self) -> str:
        gpu = f", GPU {self.gpu.index}" if self.gpu is not None else ""
        return f"cores {','.join(map(str, self.cores))}{gpu} ({self.kind})"


class SlotConfigError(ValueError):
    """evaluation.slots / reserved_cores that leave nothing to evaluate on."""


@dataclass
class Machine:
    """What evaluations may use: the cores left after the reserved ones, GPUs, memory."""

    cores: tuple[int, ...]
    gpus: tuple[GpuDevice, ...] = ()
    memory_mb: int = 0  # 0: not limited here
    gpu_unavailable: str | None = None  # why there is no GPU, in words

    @classmethod
    def detect(cls, settings: dict[str, Any], *, gpus: tuple[GpuDevice, ...] | None = None) -> "Machine":
        """This host, per the config's ``evaluation`` section; never raises on missing GPUs."""
        allowed = tuple(sorted(os.sched_getaffinity(0)))
        reserved = int(settings.get("reserved_cores", 0) or 0)
        if reserved < 0 or reserved >= len(allowed):
            raise SlotConfigError(f"evaluation.reserved_cores = {reserved} leaves no core for evaluations on this "
                                  f"machine ({len(allowed)} usable); use 0 to {len(allowed) - 1}")
        reason = None
        if gpus is None:
            gpus, reason = gpu_devices()
        return cls(allowed[reserved:], tuple(gpus), _memory_mb(), reason)


def _memory_mb() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 9 // 10 // 1024  # a tenth for the coordinator and the OS
    except (OSError, ValueError, IndexError):
        pass
    return 0


def need_for(spec: BountySpec, settings: dict[str, Any]) -> Need:
    """The slot every evaluation of ``spec`` gets (the same for its baseline and candidates)."""
    exclusive = spec.exclusive
    if exclusive is None:
        pays_timing = any(m.source == "harness" and m.name in TIMING_METRICS for m in spec.metrics)
        exclusive = pays_timing and bool(settings.get("exclusive_timing", True))
    return Need(max(1, math.ceil(spec.cpus)), spec.memory_mb, spec.gpu, bool(exclusive))


def gpu_refusal(spec: BountySpec, machine_gpus: tuple[tuple[GpuDevice, ...], str | None] | None = None) -> str | None:
    """Why this machine cannot evaluate ``spec`` (it asks for a GPU and there is none), or None.
    (With ``evaluation.executor = "ray"`` the cluster answers instead:
    ``ray_executor.cluster_gpu_refusal``.)"""
    if not spec.gpu:
        return None
    gpus, reason = machine_gpus if machine_gpus is not None else gpu_devices()
    if gpus:
        return None
    return (f"this bounty asks for a GPU (resources.gpu = true) but this coordinator has none ({reason}); "
            "create it on a coordinator with an NVIDIA GPU and its driver, or set resources.gpu = false "
            "if the code also runs on the CPU")


@dataclass
class SlotPool:
    """Hands out disjoint slots of one machine; at most ``max_slots`` at once (0: no cap)."""

    machine: Machine
    max_slots: int = 0
    free_cores: set[int] = field(default_factory=set)
    free_gpus: list[GpuDevice] = field(default_factory=list)
    used_memory_mb: int = 0
    held: list[Slot] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.free_cores = set(self.machine.cores)
        self.free_gpus = list(self.machine.gpus)

    @property
    def capacity(self) -> int:
        """How many one-core slots fit at once: the queue's concurrency."""
        n = len(self.machine.cores)
        return min(n, self.max_slots) if self.max_slots > 0 else n

    def why_not(self, need: Need) -> str | None:
        """None when ``need`` fits now; else "gpu" (only a GPU is missing: others may go
        first) or "cores" (the machine is short: hold everything behind it, so a large or
        exclusive evaluation is not starved by small ones)."""
        if need.gpu and self.machine.gpus and not self.free_gpus:
            return "gpu"
        if self.held and (need.exclusive or any(s.exclusive for s in self.held)):
            return "cores"
        if self.max_slots > 0 and len(self.held) >= self.max_slots:
            return "cores"
        cores = min(need.cores, len(self.machine.cores))
        if len(self.free_cores) < cores:
            return "cores"
        if self.held and self.machine.memory_mb and self.used_memory_mb + need.memory_mb > self.machine.memory_mb:
            return "cores"
        return None

    def take(self, need: Need) -> Slot | None:
        if self.why_not(need) is not None:
            return None
        if need.exclusive:
            cores = tuple(sorted(self.free_cores))
        else:
            cores = tuple(sorted(self.free_cores)[:min(need.cores, len(self.machine.cores))])
        gpu = self.free_gpus.pop(0) if need.gpu and self.free_gpus else None
        slot = Slot(cores, need.memory_mb, gpu, need.exclusive)
        self.free_cores -= set(cores)
        self.used_memory_mb += need.memory_mb
        self.held.append(slot)
        return slot

    def give_back(self, slot: Slot) -> None:
        if slot not in self.held:
            return
        self.held.remove(slot)
        self.free_cores |= set(slot.cores)
        self.used_memory_mb -= slot.memory_mb
        if slot.gpu is not None:
            self.free_gpus.append(slot.gpu)
            self.free_gpus.sort(key=lambda g: g.index)
