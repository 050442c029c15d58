"""Running observation statistics, merged exactly across chunks and workers (Chan et al. parallel update).

Statistics are kept as (count, mean, M2) in float64; merging two sets A and B:

    n = n_A + n_B,  delta = mean_B - mean_A
    mean = mean_A + delta * n_B / n
    M2   = M2_A + M2_B + delta^2 * n_A n_B / n

Merging is done in chunk order everywhere, so the result does not depend on how chunks were split between
workers; it equals (up to that fixed order) what one process computes over the same observations.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np


class ObsStats(NamedTuple):
    count: float  # type: ignore[assignment]  # the field shadows tuple.count, as a NamedTuple field may
    mean: np.ndarray  # [obs_dim] float64
    m2: np.ndarray  # [obs_dim] float64

    @classmethod
    def zeros(cls, dim: int) -> ObsStats:
        return cls(0.0, np.zeros(dim, np.float64), np.zeros(dim, np.float64))

    @classmethod
    def from_batch(cls, x: np.ndarray) -> ObsStats:
        x = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
        if len(x) == 0:
            return cls.zeros(x.shape[-1])
        mean = x.mean(0)
        return cls(float(len(x)), mean, ((x - mean) ** 2).sum(0))

    def merge(self, other: ObsStats) -> ObsStats:
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        return ObsStats(n, mean, m2)

    @property
    def std(self) -> np.ndarray:
        if self.count < 2:
            return np.ones_like(self.mean)
        return np.sqrt(np.maximum(self.m2 / self.count, 1e-8))

    def normalizer(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) as float32 for the policy input: obs_n = (obs - mean) / std, clipped to +-task.obs_clip."""
        return self.mean.astype(np.float32), self.std.astype(np.float32)


def merge_all(stats: Iterable[ObsStats | None]) -> ObsStats | None:
    """Merge in the given order (chunk order: the result is then bitwise the same however chunks were spread);
    ``None`` entries are skipped, and all ``None`` gives ``None``."""
    out = None
    for s in stats:
        if s is None:
            continue
        out = s if out is None else out.merge(s)
    return out
