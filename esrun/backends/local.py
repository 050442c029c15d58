"""The embedded backend: every chunk evaluated in this process, in chunk order."""
from __future__ import annotations

from esrun.backends.base import Backend, register


class LocalBackend(Backend):
    def __init__(self, cfg, evaluator):
        self.evaluator = evaluator
        self.workers = 1

    def start(self, state) -> None:
        pass

    def evaluate(self, state) -> list:
        return self.evaluator.evaluate_chunks(state, range(self.evaluator.num_chunks))


@register("local")
def make_local(cfg, evaluator) -> LocalBackend:
    return LocalBackend(cfg, evaluator)
