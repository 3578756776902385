"""The array backend the model trains on (fixed: not part of the bounty's mutable file).

On a machine with an NVIDIA GPU the run uses CuPy (a drop-in for numpy) or, failing that,
PyTorch with CUDA; anywhere else numpy on the CPU.  ``L402_BACKEND`` forces one
("numpy", "cupy", "torch").  The model only uses the operations of :class:`Backend`, so
one model file runs on all three.
"""

from __future__ import annotations

import os


class Backend:
    name = "numpy"

    def __init__(self):
        import numpy

        self.np = numpy
        self.xp = numpy

    def asarray(self, a, dtype="float32"):
        return self.xp.asarray(a, dtype=dtype)

    def randn(self, shape, seed, scale=1.0):
        host = self.np.random.default_rng(seed).standard_normal(shape).astype("float32") * scale
        return self.asarray(host)

    def zeros(self, shape):
        return self.xp.zeros(shape, dtype="float32")

    def relu(self, x):
        return self.xp.maximum(x, 0)

    def exp(self, x):
        return self.xp.exp(x)

    def row_max(self, x):
        return x.max(axis=1, keepdims=True)

    def row_sum(self, x):
        return x.sum(axis=1, keepdims=True)

    def col_sum(self, x):
        return x.sum(axis=0)

    def argmax_rows(self, x):
        return x.argmax(axis=1)

    def sqrt(self, x):
        return self.xp.sqrt(x)

    def onehot(self, labels, classes):
        out = self.zeros((len(labels), classes))
        out[self.xp.arange(len(labels)), labels] = 1.0
        return out

    def labels(self, a):
        return self.xp.asarray(a, dtype="int64")

    def to_list(self, x):
        return [int(v) for v in self.np.asarray(x).tolist()]

    def sync(self):
        pass


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self):
        super().__init__()
        import cupy

        cupy.cuda.runtime.getDeviceCount()  # raises without a usable GPU
        self.xp = cupy

    def to_list(self, x):
        return [int(v) for v in self.xp.asnumpy(x).tolist()]

    def sync(self):
        self.xp.cuda.Stream.null.synchronize()


class TorchBackend(Backend):
    name = "torch"

    def __init__(self):
        super().__init__()
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA device")
        self.torch = torch
        self.device = torch.device("cuda")

    def asarray(self, a, dtype="float32"):
        t = self.torch
        return t.as_tensor(self.np.asarray(a), dtype=getattr(t, dtype), device=self.device)

    def randn(self, shape, seed, scale=1.0):
        return self.asarray(self.np.random.default_rng(seed).standard_normal(shape).astype("float32") * scale)

    def zeros(self, shape):
        return self.torch.zeros(shape, dtype=self.torch.float32, device=self.device)

    def relu(self, x):
        return self.torch.clamp_min(x, 0)

    def exp(self, x):
        return self.torch.exp(x)

    def row_max(self, x):
        return x.max(dim=1, keepdim=True).values

    def row_sum(self, x):
        return x.sum(dim=1, keepdim=True)

    def col_sum(self, x):
        return x.sum(dim=0)

    def argmax_rows(self, x):
        return x.argmax(dim=1)

    def sqrt(self, x):
        return self.torch.sqrt(x)

    def onehot(self, labels, classes):
        out = self.zeros((len(labels), classes))
        out[self.torch.arange(len(labels), device=self.device), labels] = 1.0
        return out

    def labels(self, a):
        return self.torch.as_tensor(self.np.asarray(a), dtype=self.torch.int64, device=self.device)

    def to_list(self, x):
        return [int(v) for v in x.cpu().tolist()]

    def sync(self):
        self.torch.cuda.synchronize()


def pick() -> Backend:
    wanted = os.environ.get("L402_BACKEND", "")
    if not wanted and os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        wanted = "numpy"  # no GPU for this run: skip importing CuPy and PyTorch (seconds each)
    choices = {"numpy": [Backend], "cupy": [CupyBackend], "torch": [TorchBackend]}.get(
        wanted, [CupyBackend, TorchBackend, Backend])
    for kind in choices:
        try:
            return kind()
        except Exception:  # not installed, or no GPU: the next one
            if wanted:
                raise
    return Backend()
