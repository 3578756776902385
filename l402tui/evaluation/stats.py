"""How repeats are summarised: the median, and a spread robust to one slow repeat.

The first run in a fresh sandbox, or any run on a busy machine, can take twice as long
as the rest.  A sample stdev then inflates the k·σ acceptance bar past any real gain;
1.4826 × the median absolute deviation estimates the same σ for normal noise and
ignores a lone outlier.  With two repeats there is no median to lean on, so the
sample stdev is used; one repeat has no spread.
"""

from __future__ import annotations

import statistics
from typing import Sequence

MAD_TO_SIGMA = 1.4826  # σ of a normal distribution per unit of its median absolute deviation


def spread(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    if len(values) == 2:
        return float(statistics.stdev(values))
    med = statistics.median(values)
    return float(MAD_TO_SIGMA * statistics.median(abs(v - med) for v in values))
