"""GPU and host readings: lazy, cached, never raising."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from l402tui.telemetry.gpu import GpuSampler
from l402tui.telemetry.host import HostSampler


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class FakeNvml:
    """Stands in for pynvml (no NVIDIA driver here): same function names, same failure
    style — an unsupported query raises an NVMLError subclass."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, gpus, fail_init=None):
        self.gpus = gpus
        self.fail_init = fail_init
        self.calls = 0

    def nvmlInit(self):
        if self.fail_init:
            raise self.fail_init

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        self.calls += 1
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return self.gpus[h]["name"].encode()

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=self.gpus[h]["util"], memory=0)

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=self.gpus[h]["used"], total=self.gpus[h]["total"], free=0)

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self.gpus[h]["temp"]

    def nvmlDeviceGetPowerUsage(self, h):
        if self.gpus[h].get("power_mw") is None:
            raise NVMLError_NotSupported("Not Supported")
        return self.gpus[h]["power_mw"]

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        raise NVMLError_NotSupported("Not Supported")


GPU = {"name": "NVIDIA A100", "util": 91, "used": 30 * 2**30, "total": 40 * 2**30, "temp": 64, "power_mw": 250_000}


def _nvidia_present() -> bool:
    return _nvidia_gpu_present()


@pytest.mark.skipif("_nvidia_present()", reason="this machine has an NVIDIA driver")
def test_without_a_driver_it_says_no_gpu_and_does_not_raise():
    snapshot = GpuSampler().read()  # the real pynvml on this machine: no libnvidia-ml
    assert snapshot.gpus == () and snapshot.unavailable_reason.startswith("no GPU")


def test_readings_are_cached_so_the_driver_is_asked_at_most_once_a_second():
    now = [100.0]
    nvml = FakeNvml([GPU])
    sampler = GpuSampler(clock=lambda: now[0], nvml=nvml)
    first = sampler.read()
    for _ in range(50):
        assert sampler.read() is first
    now[0] += 0.99
    sampler.read()
    assert nvml.calls == 1
    now[0] += 0.02
    sampler.read()
    assert nvml.calls == 2


def test_an_unsupported_query_leaves_the_other_fields():
    nvml = FakeNvml([GPU, {**GPU, "name": "GeForce GTX 1050", "power_mw": None}])
    a, b = GpuSampler(nvml=nvml).read().gpus
    assert (a.name, a.utilization_pct, a.temperature_c, a.power_w) == ("NVIDIA A100", 91.0, 64.0, 250.0)
    assert a.memory_pct == 75.0 and a.power_limit_w is None
    assert b.power_w is None and b.utilization_pct == 91.0


def test_a_broken_driver_is_reported_once_and_not_retried():
    class NVMLError_DriverNotLoaded(NVMLError):
        pass

    nvml = FakeNvml([GPU], fail_init=NVMLError_DriverNotLoaded("Driver Not Loaded"))
    now = [0.0]
    sampler = GpuSampler(clock=lambda: now[0], nvml=nvml)
    assert sampler.read().unavailable_reason == "no GPU (no NVIDIA driver found)"
    now[0] += 5
    assert sampler.read().unavailable_reason == "no GPU (no NVIDIA driver found)"
    assert nvml.calls == 0


def test_host_readings_come_from_psutil_and_prime_the_cpu_counter():
    sampler = HostSampler()
    first = sampler.read()
    assert first.cpu_pct is None  # the first read only starts the measurement
    second = sampler.read()
    assert 0.0 <= second.cpu_pct <= 100.0
    assert second.cpu_count >= 1 and 0 < second.memory_pct < 100 and second.load_1m is not None


def _nvidia_gpu_present() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
        return count > 0
    except Exception:
        return False


@pytest.mark.skipif(not _nvidia_gpu_present(), reason="needs an NVIDIA GPU and driver")
def test_a_real_gpu_reads_through_nvml():
    snapshot = GpuSampler().read()
    assert snapshot.unavailable_reason is None and snapshot.gpus
    gpu = snapshot.gpus[0]
    assert gpu.name and gpu.memory_total_bytes > 2**30 and 0 <= gpu.utilization_pct <= 100
    assert gpu.temperature_c is not None and gpu.power_w is not None and gpu.power_w > 0
