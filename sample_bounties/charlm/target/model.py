"""A tiny character-level language model in numpy: the file agents improve.

``run.py`` (fixed) calls :func:`train` with the training text and a deadline on the
process's CPU clock (``time.process_time()``, so a busy machine does not shorten
training), then asks the returned predictor for next-byte probabilities one byte at
a time while the trusted scorer streams the held-out text (docs/bounty-format.md,
"Interactive mode").  The metric is val_bpb: bits per byte on that text.

Everything here may change: the architecture, the optimiser, the hyperparameters
(marked for the built-in search proposer).  TRAIN_SECONDS is the training budget in
CPU seconds: keep it, the bounty's cpu_s guard rejects submissions that use much
more CPU.  numpy and the standard library only, no network, no files outside the
work directory.
"""

from __future__ import annotations

import os
import time

import numpy as np

TRAIN_SECONDS = 10.0  # CPU seconds; CHARLM_TRAIN_SECONDS may only shorten it (quick tests)
CONTEXT = 3  # search: int(1, 12)
EMBED = 8  # search: int(4, 48)
HIDDEN = 48  # search: int(16, 384)
BATCH_SIZE = 16  # search: int(8, 512)
LEARNING_RATE = 0.02  # search: float(0.001, 0.3, log)
OPTIMIZER = "sgd"  # search: choice(sgd, adam)
SEED = 1337
FLOOR = 1e-4  # probability mass spread over all 256 bytes, so no byte is ever impossible


def max_steps() -> int | None:
    """A step cap for reproducible tests (CHARLM_MAX_STEPS); the time budget still applies."""
    cap = os.environ.get("CHARLM_MAX_STEPS")
    return int(cap) if cap else None


def training_seconds() -> float:
    override = os.environ.get("CHARLM_TRAIN_SECONDS")
    if override:
        return min(TRAIN_SECONDS, max(0.0, float(override)))
    return TRAIN_SECONDS


class Vocabulary:
    """The bytes seen in training plus one id for every other byte."""

    def __init__(self, text: bytes):
        self.seen = np.array(sorted(set(text)), dtype=np.int64)
        self.size = len(self.seen) + 1
        self.unk = self.size - 1
        self.byte_to_id = np.full(256, self.unk, dtype=np.int64)
        self.byte_to_id[self.seen] = np.arange(len(self.seen))
        self.unseen = 256 - len(self.seen)
        self.pad = int(self.byte_to_id[ord("\n")])

    def encode(self, data: bytes) -> np.ndarray:
        return self.byte_to_id[np.frombuffer(data, dtype=np.uint8)]

    def to_bytes(self, p: np.ndarray) -> np.ndarray:
        """Model probabilities over ids -> 256 byte probabilities (with the floor)."""
        out = np.full(256, p[self.unk] / max(1, self.unseen), dtype=np.float64)
        out[self.seen] = p[: self.unk]
        out = (1.0 - FLOOR) * out / out.sum() + FLOOR / 256.0
        return out.astype(np.float32)


class MLP:
    """Bengio-style model: embed the last CONTEXT bytes, one tanh layer, softmax."""

    def __init__(self, vocab_size: int, rng: np.random.Generator):
        k = CONTEXT * EMBED
        self.params = {
            "emb": rng.normal(0, 1.0, (vocab_size, EMBED)).astype(np.float32),
            "w1": (rng.normal(0, 1.0, (k, HIDDEN)) / np.sqrt(k)).astype(np.float32),
            "b1": np.zeros(HIDDEN, np.float32),
            "w2": (rng.normal(0, 1.0, (HIDDEN, vocab_size)) / np.sqrt(HIDDEN)).astype(np.float32),
            "b2": np.zeros(vocab_size, np.float32),
        }
        self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.t = 0

    def forward(self, ctx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = self.params
        x = p["emb"][ctx].reshape(len(ctx), -1)
        h = np.tanh(x @ p["w1"] + p["b1"])
        logits = h @ p["w2"] + p["b2"]
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return x, h, e / e.sum(axis=1, keepdims=True)

    def train_step(self, ctx: np.ndarray, target: np.ndarray) -> float:
        p = self.params
        n = len(ctx)
        x, h, probs = self.forward(ctx)
        loss = float(-np.log(probs[np.arange(n), target] + 1e-12).mean())
        d_logits = probs
        d_logits[np.arange(n), target] -= 1.0
        d_logits /= n
        grads = {"w2": h.T @ d_logits, "b2": d_logits.sum(axis=0)}
        d_a = (d_logits @ p["w2"].T) * (1.0 - h * h)
        grads["w1"] = x.T @ d_a
        grads["b1"] = d_a.sum(axis=0)
        d_emb = np.zeros_like(p["emb"])
        np.add.at(d_emb, ctx, (d_a @ p["w1"].T).reshape(n, CONTEXT, EMBED))
        grads["emb"] = d_emb
        self.update(grads)
        return loss

    def update(self, grads: dict[str, np.ndarray]) -> None:
        if OPTIMIZER == "adam":
            self.t += 1
            b1, b2 = 0.9, 0.999
            for k, g in grads.items():
                self.m[k] = b1 * self.m[k] + (1 - b1) * g
                self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
                m_hat = self.m[k] / (1 - b1 ** self.t)
                v_hat = self.v[k] / (1 - b2 ** self.t)
                self.params[k] -= LEARNING_RATE * m_hat / (np.sqrt(v_hat) + 1e-8)
        else:
            for k, g in grads.items():
                self.params[k] -= LEARNING_RATE * g


class Predictor:
    def __init__(self, model: MLP, vocab: Vocabulary):
        self.model = model
        self.vocab = vocab

    def predict(self, history: bytes | bytearray) -> np.ndarray:
        """Probabilities (256 float32, summing to 1) of the byte that follows history."""
        tail = self.vocab.encode(bytes(history[-CONTEXT:])) if history else np.zeros(0, np.int64)
        ctx = np.full(CONTEXT, self.vocab.pad, dtype=np.int64)
        if len(tail):
            ctx[CONTEXT - len(tail):] = tail
        _, _, probs = self.model.forward(ctx[None, :])
        return self.vocab.to_bytes(probs[0].astype(np.float64))


def train(text: bytes, deadline: float, log=print) -> Predictor:
    """Train on text until time.process_time() reaches deadline; return the predictor."""
    rng = np.random.default_rng(SEED)
    vocab = Vocabulary(text)
    ids = np.concatenate([np.full(CONTEXT, vocab.pad, dtype=np.int64), vocab.encode(text)])
    model = MLP(vocab.size, rng)
    offsets = np.arange(CONTEXT, 0, -1)
    steps, recent = 0, []
    cap = max_steps()
    while time.process_time() < deadline and (cap is None or steps < cap):
        pos = rng.integers(CONTEXT, len(ids), size=BATCH_SIZE)
        loss = model.train_step(ids[pos[:, None] - offsets], ids[pos])
        recent.append(loss)
        steps += 1
        if steps % 2000 == 0:
            log(f"step {steps}: train loss {np.mean(recent) / np.log(2):.3f} bits/byte")
            recent.clear()
    log(f"trained {steps} steps")
    return Predictor(model, vocab)
