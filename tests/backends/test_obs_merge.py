"""Observation statistics merged across chunks / workers (parallel Welford, Chan et al.) equal what one process
computes over the same observations, and do not depend on how the chunks were split between workers."""
from __future__ import annotations

import numpy as np

from esrun.runner.replica import Replica
from esrun.tasks.base import ChunkResult
from esrun.tasks.obs_norm import ObsStats, merge_all


def _chunks(seed=0, dim=4):
    rng = np.random.default_rng(seed)
    sizes = [1, 37, 500, 3, 260, 1, 999]  # uneven chunk sizes, including single observations
    # offsets and scales far from 0 / 1, as in real observation streams
    return [rng.normal(5.0, 3.0, (n, dim)) * np.array([1.0, 1e-3, 1e3, 10.0]) + 100.0 for n in sizes]


def test_merged_statistics_equal_one_pass_over_all_observations():
    chunks = _chunks()
    merged = merge_all(ObsStats.from_batch(c) for c in chunks)
    everything = np.concatenate(chunks)
    assert merged.count == len(everything)
    np.testing.assert_allclose(merged.mean, everything.mean(0), rtol=1e-13, atol=0)
    np.testing.assert_allclose(merged.m2 / merged.count, everything.var(0), rtol=1e-10, atol=0)
    np.testing.assert_allclose(merged.std, everything.std(0), rtol=1e-10)


def test_running_statistics_over_generations_equal_one_pass():
    """State after several generations (stats.merge(generation delta)) equals the statistics of all data."""
    gens = [_chunks(seed) for seed in range(3)]
    stats = ObsStats.zeros(4)
    for chunks in gens:
        stats = stats.merge(merge_all(ObsStats.from_batch(c) for c in chunks))
    everything = np.concatenate([c for chunks in gens for c in chunks])
    np.testing.assert_allclose(stats.mean, everything.mean(0), rtol=1e-13)
    np.testing.assert_allclose(stats.m2 / stats.count, everything.var(0), rtol=1e-10)


def test_combine_in_chunk_order_is_independent_of_the_worker_split():
    """Whatever the worker each chunk ran on, Replica.combine merges in chunk order: bitwise equal results."""
    chunks = _chunks()
    results = [ChunkResult(np.arange(2.0), np.ones(2, np.int64), ObsStats.from_batch(c)) for c in chunks]
    _, steps, reference = Replica.combine(results)
    for workers in (2, 3, 7):
        # a worker evaluates chunks c % workers == w; the backend returns them re-sorted by chunk id
        by_worker = [[(c, results[c]) for c in range(len(results)) if c % workers == w] for w in range(workers)]
        gathered = sorted((pair for part in by_worker for pair in part), key=lambda p: p[0])
        _, steps_w, stats = Replica.combine([r for _, r in gathered])
        assert steps_w == steps
        assert stats.count == reference.count
        assert stats.mean.tobytes() == reference.mean.tobytes() and stats.m2.tobytes() == reference.m2.tobytes()
