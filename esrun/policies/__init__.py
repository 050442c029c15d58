"""JAX policies over a flat parameter vector: ``apply(params [P], obs [obs_dim]) -> action``.

Policies are pure: ``init(key) -> [P]`` float32 and ``apply(params, obs)``; a task jits ``apply`` once and
vmaps it over the members it evaluates. Heads: discrete (argmax over logits) and continuous (tanh scaled to the
action bounds).
"""
from esrun.policies.heads import ActionSpec
from esrun.policies.mlp import POLICIES, Policy, build_policy

__all__ = ["ActionSpec", "Policy", "POLICIES", "build_policy"]
