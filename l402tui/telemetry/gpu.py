"""GPU readings through NVML (nvidia-ml-py), read lazily and cached.

``pynvml`` is imported on the first read, not at import time, and NVML is
initialised once.  Each field is queried on its own so one unsupported query (power
on some consumer cards, for instance) leaves the others intact.  Readings are cached
for ``min_interval_s`` (1 s by default) so however often the UI asks, the driver is
asked at most once a second.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    utilization_pct: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    temperature_c: float | None
    power_w: float | None
    power_limit_w: float | None
    uuid: str | None = None  # stable identity (CUDA_VISIBLE_DEVICES, docker --gpus device=)
    minor: int | None = None  # /dev/nvidia<minor>, which need not equal the NVML index

    @property
    def memory_pct(self) -> float | None:
        if not self.memory_total_bytes or self.memory_used_bytes is None:
            return None
        return 100.0 * self.memory_used_bytes / self.memory_total_bytes


@dataclass(frozen=True)
class GpuSnapshot:
    gpus: tuple[GpuReading, ...]
    unavailable_reason: str | None  # why there are no readings, in words; None when NVML answered
    taken_at: float


class GpuSampler:
    """Reads every GPU NVML can see; ``read()`` never raises."""

    def __init__(self, min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 nvml: Any = None):
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._nvml = nvml  # the pynvml module, or a stand-in with the same functions
        self._initialised = False
        self._failed_reason: str | None = None
        self._cached: GpuSnapshot | None = None
        self._lock = threading.Lock()
        self.driver_reads = 0  # how many times NVML was actually queried (for tests and bench)

    def read(self) -> GpuSnapshot:
        with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached.taken_at < self.min_interval_s:
                return self._cached
            self._cached = self._read_uncached(now)
            return self._cached

    def _init(self) -> str | None:
        """Initialise NVML once; returns why it is unavailable, or None."""
        if self._initialised:
            return None
        if self._failed_reason is not None:
            return self._failed_reason
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            self._nvml.nvmlInit()
        except ImportError:
            self._failed_reason = "no GPU (nvidia-ml-py is not installed)"
        except Exception as exc:  # NVMLError and anything a broken driver throws
            name = type(exc).__name__
            if "LibraryNotFound" in name or "DriverNotLoaded" in name:
                self._failed_reason = "no GPU (no NVIDIA driver found)"
            else:
                self._failed_reason = f"no GPU (NVML: {exc or name})"
        else:
            self._initialised = True
            return None
        return self._failed_reason

    def _read_uncached(self, now: float) -> GpuSnapshot:
        reason = self._init()
        if reason is not None:
            return GpuSnapshot((), reason, now)
        nv = self._nvml
        self.driver_reads += 1
        count = self._query(nv.nvmlDeviceGetCount)
        if not count:
            return GpuSnapshot((), "no GPU (NVML sees no devices)", now)
        gpus = []
        for index in range(count):
            handle = self._query(nv.nvmlDeviceGetHandleByIndex, index)
            if handle is None:
                continue
            name = self._query(nv.nvmlDeviceGetName, handle)
            if isinstance(name, bytes):
                name = name.decode(errors="replace")
            util = self._query(nv.nvmlDeviceGetUtilizationRates, handle)
            mem = self._query(nv.nvmlDeviceGetMemoryInfo, handle)
            temp = self._query(nv.nvmlDeviceGetTemperature, handle, getattr(nv, "NVML_TEMPERATURE_GPU", 0))
            power_mw = self._query(nv.nvmlDeviceGetPowerUsage, handle)
            limit_mw = self._query(nv.nvmlDeviceGetEnforcedPowerLimit, handle)
            uuid = self._query(nv.nvmlDeviceGetUUID, handle) if hasattr(nv, "nvmlDeviceGetUUID") else None
            minor = self._query(nv.nvmlDeviceGetMinorNumber, handle) if hasattr(nv, "nvmlDeviceGetMinorNumber") \
                else None
            gpus.append(GpuReading(
                index=index,
                name=name or f"GPU {index}",
                utilization_pct=float(util.gpu) if util is not None else None,
                memory_used_bytes=int(mem.used) if mem is not None else None,
                memory_total_bytes=int(mem.total) if mem is not None else None,
                temperature_c=float(temp) if temp is not None else None,
                power_w=power_mw / 1000.0 if power_mw is not None else None,
                power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
                uuid=uuid.decode(errors="replace") if isinstance(uuid, bytes) else uuid,
                minor=int(minor) if minor is not None else None,
            ))
        return GpuSnapshot(tuple(gpus), None if gpus else "no GPU (NVML could not open any device)", now)

    @staticmethod
    def _query(fn: Callable[..., Any], *args: Any) -> Any:
        # Like nvitop's nvmlQuery(..., default=NA): a failed query is a missing value.
        try:
            return fn(*args)
        except Exception:
            return None

    def close(self) -> None:
        with self._lock:
            if self._initialised:
                self._query(self._nvml.nvmlShutdown)
                self._initialised = False


@dataclass(frozen=True)
class GpuDevice:
    """One whole GPU as an evaluation slot holds it."""

    index: int  # NVML's
    name: str
    uuid: str | None = None
    minor: int | None = None

    @property
    def dev_path(self) -> str:
        return f"/dev/nvidia{self.minor if self.minor is not None else self.index}"

    @property
    def visible_id(self) -> str:
        """What CUDA_VISIBLE_DEVICES and ``docker --gpus device=`` take: the UUID when NVML
        gave one (CUDA's own order of indices may differ from NVML's)."""
        return self.uuid or str(self.index)


def gpu_devices(sampler: GpuSampler | None = None) -> tuple[tuple[GpuDevice, ...], str | None]:
    """The GPUs NVML sees, and why there are none; never raises."""
    try:
        snap = (sampler or GpuSampler(min_interval_s=0)).read()
    except Exception as exc:  # a monitor must not take the coordinator down
        return (), f"no GPU (NVML: {exc.__class__.__name__})"
    devices = tuple(GpuDevice(g.index, g.name, g.uuid, g.minor) for g in snap.gpus)
    return devices, None if devices else (snap.unavailable_reason or "no GPU")
