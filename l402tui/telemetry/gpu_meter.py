"""One GPU measured from outside while a run holds it: the harness's GPU metrics.

A slot holds a whole GPU, so everything the GPU does between :meth:`GpuMeter.start`
and :meth:`GpuMeter.stop` is the run's.  The run's code never reports these figures.

- ``gpu_s``: GPU-seconds, utilisation-weighted: the sum of ``utilization/100 * dt``
  over samples (a run that keeps the GPU busy for 10 s scores 10; one that holds it
  idle scores 0).
- ``gpu_energy_j``: NVML's total energy counter (mJ since the driver loaded) at the
  end minus at the start; on GPUs without the counter (before Volta), power samples
  integrated over time.
- ``gpu_peak_mem_mb``: the highest memory in use during the run above what was in use
  when it started.

Like the sampler, nothing here raises: a query NVML refuses is a missing figure
(``None``), which the harness turns into ``measurement_unavailable`` when a bounty
pays for it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from l402tui.telemetry.gpu import GpuDevice


@dataclass(frozen=True)
class GpuUsage:
    gpu_s: float | None
    gpu_energy_j: float | None
    gpu_peak_mem_mb: float | None


NO_USAGE = GpuUsage(None, None, None)


def _query(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:
        return None


class GpuMeter:
    def __init__(self, device: GpuDevice, *, interval_s: float = 0.05, nvml: Any = None,
                 clock: Callable[[], float] = time.monotonic):
        self.device = device
        self.interval_s = interval_s
        self._nv = nvml
        self._clock = clock
        self._handle: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._energy_start: float | None = None
        self._mem_start: int | None = None
        self._mem_peak: int | None = None
        self._busy_s: float | None = None
        self._power_j: float | None = None
        self._last: float = 0.0
        self.samples = 0

    def start(self) -> "GpuMeter":
        try:
            if self._nv is None:
                import pynvml

                self._nv = pynvml
            self._nv.nvmlInit()
        except Exception:
            self._nv = None
            return self
        self._handle = _query(self._nv.nvmlDeviceGetHandleByIndex, self.device.index)
        if self._handle is None:
            return self
        self._energy_start = _query(self._nv.nvmlDeviceGetTotalEnergyConsumption, self._handle)
        mem = _query(self._nv.nvmlDeviceGetMemoryInfo, self._handle)
        self._mem_start = self._mem_peak = int(mem.used) if mem is not None else None
        self._last = self._clock()
        self._thread = threading.Thread(target=self._sample_loop, daemon=True, name="gpu-meter")
        self._thread.start()
        return self

    def _sample_once(self) -> None:
        now = self._clock()
        dt, self._last = now - self._last, now
        self.samples += 1
        util = _query(self._nv.nvmlDeviceGetUtilizationRates, self._handle)
        if util is not None:
            self._busy_s = (self._busy_s or 0.0) + float(util.gpu) / 100.0 * dt
        mem = _query(self._nv.nvmlDeviceGetMemoryInfo, self._handle)
        if mem is not None:
            self._mem_peak = max(self._mem_peak or 0, int(mem.used))
        if self._energy_start is None:
            power_mw = _query(self._nv.nvmlDeviceGetPowerUsage, self._handle)
            if power_mw is not None:
                self._power_j = (self._power_j or 0.0) + power_mw / 1000.0 * dt

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample_once()

    def stop(self) -> GpuUsage:
        """The run's figures; NO_USAGE when NVML could not be asked at all."""
        if self._thread is None:
            self._shutdown()
            return NO_USAGE
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample_once()  # the tail between the last sample and the end of the run
        energy = None
        if self._energy_start is not None:
            end = _query(self._nv.nvmlDeviceGetTotalEnergyConsumption, self._handle)
            if end is not None and end >= self._energy_start:
                energy = (end - self._energy_start) / 1000.0
        elif self._power_j is not None:
            energy = self._power_j
        peak = None
        if self._mem_peak is not None and self._mem_start is not None:
            peak = max(0, self._mem_peak - self._mem_start) / (1024 * 1024)
        self._shutdown()
        return GpuUsage(self._busy_s, energy, peak)

    def _shutdown(self) -> None:
        if self._nv is not None:
            _query(self._nv.nvmlShutdown)
