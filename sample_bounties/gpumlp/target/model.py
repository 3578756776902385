"""The mutable part: a small MLP classifier and how it is trained.

Anything here may change: architecture, initialisation, optimiser, schedule,
hyperparameters (the marked constants are a good start for the built-in search proposer).
The training budget is STEPS minibatch steps; the run's wall time is a guard, so spend the
budget better rather than longer.  Use only the operations of backend.Backend (``b``) so the
same file trains on numpy (CPU), CuPy or PyTorch (GPU).
"""

HIDDEN = 32  # search: int(16, 512)
LEARNING_RATE = 0.02  # search: float(0.001, 0.5)
BATCH_SIZE = 64  # search: int(16, 1024)
STEPS = 300  # search: int(100, 600)
INIT_SCALE = 1.0  # search: float(0.1, 3.0)
SEED = 7


def train(b, x, y, classes):
    """Fit on (x, y) and return a predict(x) -> class indices function."""
    n, dim = x.shape
    w1 = b.randn((dim, HIDDEN), SEED, INIT_SCALE / dim ** 0.5)
    b1 = b.zeros((HIDDEN,))
    w2 = b.randn((HIDDEN, classes), SEED + 1, INIT_SCALE / HIDDEN ** 0.5)
    b2 = b.zeros((classes,))
    order = b.np.random.default_rng(SEED)
    for step in range(STEPS):
        idx = b.labels(order.integers(0, n, BATCH_SIZE))
        xb, yb = x[idx], b.onehot(y[idx], classes)
        h = b.relu(xb @ w1 + b1)
        logits = h @ w2 + b2
        p = b.exp(logits - b.row_max(logits))
        p = p / b.row_sum(p)
        g = (p - yb) / BATCH_SIZE
        gw2, gb2 = h.T @ g, b.col_sum(g)
        gh = (g @ w2.T) * (h > 0)
        gw1, gb1 = xb.T @ gh, b.col_sum(gh)
        for param, grad in ((w1, gw1), (b1, gb1), (w2, gw2), (b2, gb2)):
            param -= LEARNING_RATE * grad

    def predict(xs):
        return b.argmax_rows(b.relu(xs @ w1 + b1) @ w2 + b2)

    return predict
