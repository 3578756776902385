"""GPU figures of the run phase, measured from outside through NVML; never raising."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from l402tui.bounty import load_bounty
from l402tui.evaluation.harness import evaluate
from l402tui.evaluation.sandbox import LocalSandbox
from l402tui.telemetry.gpu import GpuDevice, GpuSampler, gpu_devices
from l402tui.telemetry.gpu_meter import NO_USAGE, GpuMeter
from tinybounty import make_sums

MB = 1024 * 1024


class FakeNvml:
    """pynvml's functions for one GPU whose counters the test moves (no driver here)."""

    def __init__(self, *, energy: bool = True):
        self.energy_mj = 5_000_000
        self.used = 300 * MB
        self.util = 50
        self.power_mw = 200_000
        self.has_energy = energy
        self.inits = self.shutdowns = 0

    def nvmlInit(self):
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.has_energy:
            raise RuntimeError("NVMLError_NotSupported")
        return self.energy_mj

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=self.used, total=80_000 * MB, free=0)

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=self.util, memory=0)

    def nvmlDeviceGetPowerUsage(self, h):
        return self.power_mw


DEVICE = GpuDevice(0, "Fake", "GPU-0000", 0)


def _until_samples(meter: GpuMeter, n: int) -> None:
    deadline = time.monotonic() + 10
    while meter.samples < n:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_energy_peak_memory_and_gpu_seconds_of_a_run():
    nv = FakeNvml()
    started = time.monotonic()
    meter = GpuMeter(DEVICE, interval_s=0.005, nvml=nv).start()
    nv.used = 1324 * MB  # the run allocates 1 GiB, then frees half
    _until_samples(meter, 3)
    nv.used = 812 * MB
    nv.energy_mj += 1_234_567
    usage = meter.stop()
    elapsed = time.monotonic() - started
    assert usage.gpu_energy_j == pytest.approx(1234.567)
    assert usage.gpu_peak_mem_mb == pytest.approx(1024.0)
    assert 0 < usage.gpu_s <= 0.5 * elapsed + 1e-6  # 50 % busy for at most the run's time
    assert nv.inits == nv.shutdowns == 1


def test_without_the_energy_counter_power_is_integrated():
    nv = FakeNvml(energy=False)
    meter = GpuMeter(DEVICE, interval_s=0.005, nvml=nv).start()
    _until_samples(meter, 3)
    usage = meter.stop()
    assert usage.gpu_energy_j is not None and usage.gpu_energy_j > 0
    assert usage.gpu_energy_j == pytest.approx(200 * usage.gpu_s / 0.5)  # same samples: P·Σdt = 200 W · gpu_s/0.5


def test_no_driver_means_no_figures_and_no_exception():
    class Broken:
        def __getattr__(self, name):
            def fail(*a):
                raise RuntimeError("NVMLError_LibraryNotFound")
            return fail

    assert GpuMeter(DEVICE, nvml=Broken()).start().stop() == NO_USAGE
    if not gpu_devices()[0]:
        assert GpuMeter(DEVICE).start().stop() == NO_USAGE  # the real pynvml, without a driver
    devices, reason = gpu_devices(GpuSampler(nvml=Broken()))
    assert devices == () and reason.startswith("no GPU")


async def test_a_bounty_paying_for_gpu_energy_is_measurement_unavailable_without_nvml(tmp_path):
    energy = ('[[metrics]]\nname = "accuracy"\ndirection = "maximize"\n'
              '[[metrics]]\nname = "gpu_energy_j"\ndirection = "minimize"\nsource = "harness"\nweight = 0.5\n')
    root = make_sums(tmp_path / "g", metrics=energy)
    toml = root / "bounty.toml"
    toml.write_text(toml.read_text().replace("[resources]\n", "[resources]\ngpu = true\n", 1))
    spec = load_bounty(root)
    # No slot GPU to meter (and no NVML here): the figure is missing, never a guess.
    result = await evaluate(spec, None, sandbox=LocalSandbox(), repeats=1)
    assert (result.status, result.code) == ("failed", "measurement_unavailable")
    assert "cannot measure gpu_energy_j" in result.reasons[0]
