"""A baseline that learns: exponentially weighted mean and variance of one metric.

The weight ``alpha`` makes old windows fade, so slow drift (a daily cycle) moves the baseline
along with it, while a sudden jump lands far outside the learned spread. Deviations are measured
against ``max(std, floor)``: a floor keeps a perfectly steady series from flagging tiny wobbles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class EwmaBaseline:
    """Running exponentially weighted mean and variance (West's incremental form)."""

    alpha: float = 0.1
    mean: float = 0.0
    var: float = 0.0
    count: int = 0

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))

    def score(self, value: float, floor: float) -> float:
        """Signed distance of ``value`` from the mean in units of ``max(std, floor)``."""
        spread = max(self.std, floor, 1e-12)
        return (value - self.mean) / spread

    def update(self, value: float) -> None:
        if self.count == 0:
            self.mean, self.var = value, 0.0
        else:
            # A faster start: the first windows weigh as a plain average would.
            alpha = max(self.alpha, 1.0 / (self.count + 1))
            diff = value - self.mean
            incr = alpha * diff
            self.mean += incr
            self.var = (1.0 - alpha) * (self.var + diff * incr)
        self.count += 1

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "mean": self.mean, "var": self.var, "count": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EwmaBaseline:
        return cls(
            float(data["alpha"]), float(data["mean"]), float(data["var"]), int(data["count"])
        )
