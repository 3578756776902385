"""Host readings (CPU, memory, load average) through psutil, never raising."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class HostReading:
    cpu_pct: float | None  # all cores together, 0-100
    cpu_count: int
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    load_1m: float | None
    load_5m: float | None
    load_15m: float | None
    taken_at: float

    @property
    def memory_pct(self) -> float | None:
        if not self.memory_total_bytes or self.memory_used_bytes is None:
            return None
        return 100.0 * self.memory_used_bytes / self.memory_total_bytes


class HostSampler:
    """CPU percent is measured between successive reads (psutil's interval=None mode),
    so reading never sleeps; the first read primes the counter and reports None."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._psutil = None
        self._primed = False

    def read(self) -> HostReading:
        now = self._clock()
        try:
            if self._psutil is None:
                import psutil

                self._psutil = psutil
            ps = self._psutil
        except ImportError:
            return HostReading(None, os.cpu_count() or 1, None, None, *_loadavg(), taken_at=now)
        cpu = None
        try:
            value = ps.cpu_percent(interval=None)
            cpu = value if self._primed else None
            self._primed = True
        except Exception:
            pass
        used = total = None
        try:
            vm = ps.virtual_memory()
            used, total = int(vm.total - vm.available), int(vm.total)
        except Exception:
            pass
        return HostReading(cpu, ps.cpu_count() or 1, used, total, *_loadavg(), taken_at=now)


def _loadavg() -> tuple[float | None, float | None, float | None]:
    try:
        return os.getloadavg()
    except (OSError, AttributeError):
        return None, None, None
