"""The embedded backend: every chunk evaluated in this process, in chunk order."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from esrun.backends.base import Backend, ReplicaLike, State, register


class LocalBackend(Backend):
    def __init__(self, cfg: Any, evaluator: ReplicaLike):
        self.evaluator = evaluator
        self.workers = 1

    def start(self, state: State) -> None:
        return None

    def evaluate(self, state: State) -> list:
        return self.evaluator.evaluate_chunks(state, range(self.evaluator.num_chunks))


@register("local")
def make_local(cfg: Any, evaluator: ReplicaLike,
               replica_factory: Callable[[Any], ReplicaLike] | None = None) -> LocalBackend:
    return LocalBackend(cfg, evaluator)
