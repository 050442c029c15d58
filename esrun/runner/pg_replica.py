"""One replica of a data-parallel policy-gradient run: episodes in a Gymnasium vector env, the loss's gradient, Adam.

Every worker (an in-process object, a Ray actor or an MPI rank) holds a :class:`PGReplica`: the current flat
parameters ``theta [P]`` and the Adam state. It collects its own batch of episodes and differentiates the
method's loss (:mod:`esrun.estimators.policy_gradient`) on it with ``jax.grad``. The pool averages the gradients
over workers (``esrun.backends.pool.average``, in worker order) and every replica -- the driver's too -- applies
the same Adam step to the same average, so the replicas stay bitwise identical:

    iteration k:   worker w collects N episodes with keys from (seed, k, w)        (only scalars travel back)
                   for each of the method's U = epochs x minibatches updates u:
                       g_w = grad_theta loss_w(theta)        [P] float32             worker -> driver  4P bytes
                       g   = 1/W sum_w g_w                   (in worker order)       driver -> worker  4P bytes
                       theta, adam = adam_step(theta, adam, g)                     on every replica

So the bytes per worker per iteration are ~ 2 x 4P x U: O(num_params), against ES's O(population)
(docs/design.md, "The seed protocol").

Episodes: N episodes per worker stepped together in one Gymnasium vector env (``gym.make_vec``, sync mode so each
slot takes its own reset seed), actions sampled from the categorical policy ``softmax(Policy.logits)``, finished
episodes masked, stopped when all are done. A batch is padded to T = the env's step limit so every jitted shape
is fixed (one compilation per method). Group methods (RLOO, GRPO) use groups of G consecutive episodes that
start from the same reset seed (the RL analogue of G answers to one prompt).

A replica is built from a plain ``spec`` dict (picklable, so a transport can ship it) by
``PGReplica(spec, worker)``; the transports in ``esrun.backends`` receive the class as a factory and never import
this module.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from esrun.digest import params_hash
from esrun.errors import OptionError
from esrun.estimators.policy_gradient import (
    METHODS,
    Batch,
    collect_key,
    initial_key,
    normalised_step_advantages,
    reward_to_go,
    token_logp,
)
from esrun.strategies.optimizer import make_optimizer


class PGReplica:
    """One worker's (or the driver's) replica: parameters, Adam state, and -- on workers -- the episode batch.

    ``spec``: dict(method, options (resolved by ``policy_gradient.resolve_options``), env_id, policy
    (PolicyConfig as a dict), seed). ``worker``: the index w of its episode keys (-1: a driver that never collects).
    """

    def __init__(self, spec: dict, worker: int):
        import gymnasium as gym

        from esrun.config.schema import PolicyConfig
        from esrun.policies import ActionSpec, build_policy

        self.spec, self.worker = spec, worker
        self.method = METHODS[spec["method"]]
        self.o = spec["options"]
        probe = gym.make(spec["env_id"])
        assert probe.spec is not None and probe.observation_space.shape is not None  # a registered Box-obs env
        self.obs_dim = int(np.prod(probe.observation_space.shape))
        action_spec = ActionSpec.from_gym_space(probe.action_space)
        horizon = self.o["max_episode_steps"] or probe.spec.max_episode_steps
        assert horizon is not None  # the env registers a time limit, or the options set one
        self.horizon = int(horizon)
        probe.close()
        if action_spec.kind != "discrete":
            raise OptionError(f"{spec['env_id']}: the policy-gradient baselines need a discrete action space")
        self.policy = build_policy(PolicyConfig(**spec["policy"]), self.obs_dim, action_spec)
        self.num_params = self.policy.num_params
        self.params = self.policy.init(initial_key(spec["seed"]))
        self.params0 = self.params
        self.opt = make_optimizer("adam", self.o["learning_rate"])
        self.opt_state = self.opt.init(self.params)
        self._apply = jax.jit(self._apply_impl)
        self._grad = jax.jit(jax.grad(self._loss))
        self._act = jax.jit(self._act_impl)
        self._logp = jax.jit(partial(token_logp, self.policy))
        self.env: Any = None  # the vector env, made on first collect
        self.batch: Batch | None = None
        self.iteration = -1

    # -- pure pieces (jitted) --
    def _apply_impl(self, params, opt_state, grad):
        updates, opt_state = self.opt.update(grad, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def _loss(self, params, batch: Batch):
        return self.method.loss(token_logp(self.policy, params, batch.obs, batch.actions), batch, self.o)

    def _act_impl(self, params, obs, key, t):
        logits = self.policy.logits(params, obs.astype(jnp.float32))  # [N, A]
        action = jax.random.categorical(jax.random.fold_in(key, t), logits)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=-1)[:, 0]
        return action, logp

    # -- the worker's side --
    def collect(self, iteration: int) -> dict:
        """Run this worker's N episodes of ``iteration``; keep the batch; return its scalars
        ``{"returns": [N] floats, "steps": int}``."""
        import gymnasium as gym

        from esrun.tasks.gym import seed_from_key

        n, t_max = self.o["episodes_per_worker"], self.horizon
        if self.env is None:
            kw = {"max_episode_steps": self.o["max_episode_steps"]} if self.o["max_episode_steps"] else {}
            self.env = gym.make_vec(self.spec["env_id"], num_envs=n, vectorization_mode="sync", **kw)
        key = collect_key(self.spec["seed"], iteration, self.worker)
        base = seed_from_key(jax.random.fold_in(key, 0)) % (2**31 - 1)
        slot = np.arange(n) // self.o["group_size"] if self.method.grouped else np.arange(n)
        obs, _ = self.env.reset(seed=[int((base + s) % (2**31 - 1)) for s in slot])
        obs_b = np.zeros((n, t_max, self.obs_dim), np.float32)
        act_b = np.zeros((n, t_max), np.int32)
        rew_b = np.zeros((n, t_max), np.float32)
        mask = np.zeros((n, t_max), np.float32)
        logp_b = np.zeros((n, t_max), np.float32)
        alive = np.ones(n, bool)
        akey = jax.random.fold_in(key, 1)
        for t in range(t_max):
            a, lp = self._act(self.params, obs, akey, t)
            a = np.asarray(a)
            obs_b[:, t], act_b[:, t], logp_b[:, t], mask[:, t] = obs, a, np.asarray(lp), alive
            obs, r, term, trunc, _ = self.env.step(a.astype(np.int64))
            rew_b[:, t] = r * alive
            alive &= ~(term | trunc)
            if not alive.any():
                break
        rtg = reward_to_go(rew_b, mask, self.o["gamma"])
        adv = normalised_step_advantages(rtg, mask) if self.method.step_advantages else np.zeros_like(rtg)
        ref = logp_b
        if self.o.get("kl_coef", 0.0):
            ref = np.asarray(self._logp(self.params0, obs_b, act_b))
        self.batch = Batch(obs=obs_b, actions=act_b, mask=mask, old_logp=logp_b, rtg=rtg, returns=rew_b.sum(1), adv=adv,
                           ref_logp=ref)
        self.iteration = iteration
        self._perm_key = jax.random.fold_in(key, 2)
        return {"returns": rew_b.sum(1).astype(np.float64).tolist(), "steps": int(mask.sum())}

    def grad(self, update: int) -> np.ndarray:
        """Gradient [P] float32 of the loss on minibatch ``update % minibatches`` of epoch ``update // minibatches``."""
        mbs = self.o["minibatches"]
        b = self.batch
        assert b is not None, "grad() before collect()"
        if mbs > 1:
            epoch, m = divmod(update, mbs)
            perm = np.asarray(jax.random.permutation(jax.random.fold_in(self._perm_key, epoch), b.obs.shape[0]))
            size = b.obs.shape[0] // mbs
            idx = np.sort(perm[m * size:(m + 1) * size])
            b = Batch._make(x[idx] for x in b)  # every field, same rows
        return np.asarray(self._grad(self.params, b), np.float32)

    # -- every replica --
    def apply(self, grad: np.ndarray) -> None:
        """theta, adam = adam_step(theta, adam, grad [P]) -- the same average on every replica."""
        self.params, self.opt_state = self._apply(self.params, self.opt_state, jnp.asarray(grad, jnp.float32))

    def params_hash(self) -> str:
        return params_hash(self.params)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
