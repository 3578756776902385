"""Machine telemetry for the TUI and the headless commands: GPUs through NVML, the host
through psutil.  Readers never raise: a missing driver or a failed query becomes "no
GPU" or ``None`` fields, because a monitor that crashes the app is worse than none.
"""

from l402tui.telemetry.gpu import GpuReading, GpuSampler
from l402tui.telemetry.host import HostReading, HostSampler

__all__ = ["GpuReading", "GpuSampler", "HostReading", "HostSampler"]
