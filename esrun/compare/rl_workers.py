"""Data-parallel policy gradients on a worker pool: episodes, the methods' losses, replicas and all-reduce.

Every worker (an in-process object, a Ray actor or an MPI rank) is a :class:`PGReplica`: it holds the current
flat parameters ``theta [P]`` and the Adam state, collects its own batch of episodes, and differentiates the
method's loss on it with ``jax.grad``. The gradients are averaged over workers (all-reduce) and every replica --
the driver's too -- applies the same Adam step to the same average, so the replicas stay bitwise identical:

    iteration k:   worker w collects N episodes with keys from (seed, k, w)        (only scalars travel back)
                   for each of the method's U = epochs x minibatches updates u:
                       g_w = grad_theta loss_w(theta)        [P] float32             worker -> driver  4P bytes
                       g   = 1/W sum_w g_w                   (in worker order)       driver -> worker  4P bytes
                       theta, adam = adam_step(theta, adam, g)                     on every replica

So the bytes per worker per iteration are ~ 2 x 4P x U (plus pickle headers and the episode statistics):
O(num_params), against ES's O(population) (docs/design.md, "The seed protocol"). The bytes are measured from the
serialized messages (Ray: the pickled arrays; MPI: the Allreduce buffers plus the pickled statistics).

Episodes: N episodes per worker stepped together in one Gymnasium vector env (``gym.make_vec``, sync mode so each
slot takes its own reset seed), actions sampled from the categorical policy ``softmax(Policy.logits)``, finished
episodes masked, stopped when all are done. A batch is padded to T = the env's step limit so every jitted shape
is fixed (one compilation per method). Group methods (RLOO, GRPO) use groups of G consecutive episodes that
start from the same reset seed (the RL analogue of G answers to one prompt).

Losses are the library's objectives, ``esrun.estimators.rl``; per-step advantages go through them as sequences
of length one (rows ``[N*T, 1]``), and the losses are rescaled by T so each is an average over episodes of a sum
over time steps.
"""
from __future__ import annotations

import hashlib
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from esrun.errors import OptionError
from esrun.estimators import rl as R

COMMON_DEFAULTS = {
    "learning_rate": 0.01,
    "episodes_per_worker": 8,  # N: episodes each worker collects per iteration
    "gamma": 0.99,  # discount of the reward-to-go
    "eval_every": 5,  # iterations between greedy evaluations
    "eval_episodes": 10,
    "final_eval_episodes": 20,
    "max_episode_steps": None,
}


# -- keys ------------------------------------------------------------------------------------------------------
def collect_key(seed: int, iteration: int, worker: int) -> jax.Array:
    """Key of worker ``w``'s episodes in iteration ``k``: fold_in(fold_in(fold_in(PRNGKey(seed), 5), k), w)."""
    root = jax.random.fold_in(jax.random.PRNGKey(seed), 5)
    return jax.random.fold_in(jax.random.fold_in(root, iteration), worker)


def initial_key(seed: int) -> jax.Array:
    """fold_in(PRNGKey(seed), 3): the key ES's Evaluator uses for x0, so ES and PG start from the same theta."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), 3)


def _int_seed(key) -> int:
    words = np.asarray(jax.random.key_data(key)).ravel().tolist()
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0] % (2**31 - 1))


# -- batches ---------------------------------------------------------------------------------------------------
class Batch(NamedTuple):
    """N episodes padded to T steps (numpy or jax arrays).

    obs [N, T, D] float32; actions [N, T] int32; mask [N, T] float32 (1 while the episode runs);
    old_logp [N, T] log pi_old(a_t | s_t) recorded at sampling; rtg [N, T] discounted reward-to-go
    sum_{t' >= t} gamma^{t'-t} r_t'; returns [N] undiscounted episode return; adv [N, T] per-step advantage
    prepared by the method (zeros when unused); ref_logp [N, T] log pi_ref (the initial policy; GRPO's KL).
    """

    obs: np.ndarray
    actions: np.ndarray
    mask: np.ndarray
    old_logp: np.ndarray
    rtg: np.ndarray
    returns: np.ndarray
    adv: np.ndarray
    ref_logp: np.ndarray


def reward_to_go(rewards: np.ndarray, mask: np.ndarray, gamma: float) -> np.ndarray:
    """``rtg[:, t] = r_t + gamma * rtg[:, t + 1]`` over the masked steps; [N, T] -> [N, T]."""
    out = np.zeros_like(rewards, dtype=np.float32)
    acc = np.zeros(rewards.shape[0], np.float64)
    for t in range(rewards.shape[1] - 1, -1, -1):
        acc = (rewards[:, t] + gamma * acc) * mask[:, t]
        out[:, t] = acc
    return out


def time_baseline(rtg: jax.Array, mask: jax.Array) -> jax.Array:
    """b_t = mean of rtg[:, t] over the episodes still running at t; [N, T] -> [T]. Independent of the action
    at t only up to the episode's own 1/N share (the usual batch baseline)."""
    return (rtg * mask).sum(0) / jnp.maximum(mask.sum(0), 1.0)


def token_logp(policy, params: jax.Array, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """log pi_theta(a_t | s_t) = log_softmax(Policy.logits(theta, s_t))[a_t]: obs [N, T, D], actions [N, T] -> [N, T]."""
    logits = jax.vmap(jax.vmap(policy.logits, (None, 0)), (None, 0))(params, obs)
    return jnp.take_along_axis(jax.nn.log_softmax(logits), actions[..., None], axis=-1)[..., 0]


def _rows(x: jax.Array) -> jax.Array:
    return x.reshape(-1, 1)


# -- methods ---------------------------------------------------------------------------------------------------
def _reinforce(logp, b: Batch, o: dict) -> jax.Array:
    """-1/N sum_i sum_t rtg_it log pi(a_it | s_it): REINFORCE with reward-to-go (Williams, 1992)."""
    t = logp.shape[1]
    return t * R.reinforce_loss(_rows(logp), b.rtg.reshape(-1), _rows(b.mask))


def _reinforce_baseline(logp, b: Batch, o: dict) -> jax.Array:
    """-1/N sum_i sum_t (rtg_it - b_t) log pi(a_it | s_it), b_t the batch mean reward-to-go at step t."""
    t = logp.shape[1]
    adv = (b.rtg - time_baseline(b.rtg, b.mask)[None]) * b.mask
    return t * R.reinforce_loss(_rows(logp), adv.reshape(-1), _rows(b.mask))


def _grouped(fn, returns: jax.Array, group: int) -> jax.Array:
    return jax.vmap(fn)(returns.reshape(-1, group)).reshape(-1)


def _rloo(logp, b: Batch, o: dict) -> jax.Array:
    """-1/N sum_i A_i sum_t log pi(a_it | s_it), A = leave_one_out_advantages(R) within each group of G."""
    adv = _grouped(R.leave_one_out_advantages, b.returns, o["group_size"])
    return R.reinforce_loss(logp, adv, b.mask)


def _grpo(logp, b: Batch, o: dict) -> jax.Array:
    """grpo_loss with A = group_advantages(R) per group of G, pi_old = the sampling policy, pi_ref = theta_0."""
    adv = _grouped(R.group_advantages, b.returns, o["group_size"])
    return R.grpo_loss(logp, b.old_logp, b.ref_logp, adv, b.mask, o["clip_eps"], o["kl_coef"], o["kl_estimator"])


def _ppo(logp, b: Batch, o: dict) -> jax.Array:
    """T x ppo_clip_loss over steps: -1/N sum_i sum_t min(r_it A_it, clip(r_it) A_it), A normalised (rtg - b_t)."""
    t = logp.shape[1]
    return t * R.ppo_clip_loss(_rows(logp), _rows(b.old_logp), b.adv.reshape(-1), _rows(b.mask), o["clip_eps"])


def _normalised_step_advantages(rtg: np.ndarray, mask: np.ndarray) -> np.ndarray:
    adv = (rtg - np.asarray(time_baseline(rtg, mask))[None]) * mask
    valid = mask > 0
    std = adv[valid].std() if valid.any() else 1.0
    return ((adv - adv[valid].mean()) / (std + 1e-8) * mask).astype(np.float32)


class PGMethod(NamedTuple):
    """A policy-gradient method: its loss ``(logp [N, T], Batch, options) -> []`` and its option defaults.

    ``epochs`` x ``minibatches`` (options) gradient steps per collected batch; ``group_size`` divides N."""

    loss: Callable
    defaults: dict
    step_advantages: bool = False  # fill Batch.adv with normalised (rtg - b_t) at collection
    grouped: bool = False  # episodes in groups of G sharing a reset seed


METHODS: dict[str, PGMethod] = {
    "reinforce": PGMethod(_reinforce, {}),
    "reinforce_baseline": PGMethod(_reinforce_baseline, {}),
    "rloo": PGMethod(_rloo, {"group_size": 4}, grouped=True),
    "grpo": PGMethod(_grpo, {"group_size": 4, "epochs": 1, "clip_eps": 0.2, "kl_coef": 0.0,
                             "kl_estimator": "k3"}, grouped=True),
    "ppo": PGMethod(_ppo, {"epochs": 4, "minibatches": 2, "clip_eps": 0.2}, step_advantages=True),
}


def resolve_options(method: str, options: dict) -> dict:
    """Defaults merged with ``options``; an unknown option or an inconsistent size raises OptionError (a UserError and a ValueError)."""
    if method not in METHODS:
        raise OptionError(f"unknown policy-gradient method {method!r}; known: {sorted(METHODS)}")
    m = METHODS[method]
    allowed = {**COMMON_DEFAULTS, "epochs": 1, "minibatches": 1, **m.defaults}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise OptionError(f"{method}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
    o = {**allowed, **options}
    n = o["episodes_per_worker"]
    if m.grouped and (o["group_size"] < 2 or n % o["group_size"]):
        raise OptionError(f"{method}: group_size = {o['group_size']} must be >= 2 and divide "
                         f"episodes_per_worker = {n}")
    if n % o["minibatches"]:
        raise OptionError(f"{method}: minibatches = {o['minibatches']} must divide episodes_per_worker = {n}")
    return o


def updates_per_iteration(options: dict) -> int:
    return int(options["epochs"]) * int(options["minibatches"])


# -- one replica -----------------------------------------------------------------------------------------------
def params_hash(params) -> str:
    return hashlib.sha256(np.asarray(params, np.float32).tobytes()).hexdigest()


class PGReplica:
    """One worker's (or the driver's) replica: parameters, Adam state, and -- on workers -- the episode batch.

    ``spec``: dict(method, options (resolved), env_id, policy (PolicyConfig as a dict), seed).
    """

    def __init__(self, spec: dict, worker: int):
        from esrun.config.schema import PolicyConfig
        from esrun.policies import ActionSpec, build_policy

        import gymnasium as gym

        self.spec, self.worker = spec, worker
        self.method = METHODS[spec["method"]]
        self.o = spec["options"]
        probe = gym.make(spec["env_id"])
        self.obs_dim = int(np.prod(probe.observation_space.shape))
        action_spec = ActionSpec.from_gym_space(probe.action_space)
        self.horizon = int(self.o["max_episode_steps"] or probe.spec.max_episode_steps)
        probe.close()
        if action_spec.kind != "discrete":
            raise OptionError(f"{spec['env_id']}: the policy-gradient baselines need a discrete action space")
        self.policy = build_policy(PolicyConfig(**spec["policy"]), self.obs_dim, action_spec)
        self.num_params = self.policy.num_params
        self.params = self.policy.init(initial_key(spec["seed"]))
        self.params0 = self.params
        self.opt = optax.adam(self.o["learning_rate"])
        self.opt_state = self.opt.init(self.params)
        self._apply = jax.jit(self._apply_impl)
        self._grad = jax.jit(jax.grad(self._loss))
        self._act = jax.jit(self._act_impl)
        self._logp = jax.jit(partial(token_logp, self.policy))
        self.env = None
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
        """Run this worker's N episodes of ``iteration``; keep the batch; return its scalars."""
        import gymnasium as gym

        n, t_max = self.o["episodes_per_worker"], self.horizon
        if self.env is None:
            kw = {"max_episode_steps": self.o["max_episode_steps"]} if self.o["max_episode_steps"] else {}
            self.env = gym.make_vec(self.spec["env_id"], num_envs=n, vectorization_mode="sync", **kw)
        key = collect_key(self.spec["seed"], iteration, self.worker)
        base = _int_seed(jax.random.fold_in(key, 0))
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
        adv = _normalised_step_advantages(rtg, mask) if self.method.step_advantages else np.zeros_like(rtg)
        ref = logp_b
        if self.o.get("kl_coef", 0.0):
            ref = np.asarray(self._logp(self.params0, obs_b, act_b))
        self.batch = Batch(obs_b, act_b, mask, logp_b, rtg, rew_b.sum(1), adv, ref)
        self.iteration = iteration
        self._perm_key = jax.random.fold_in(key, 2)
        return {"returns": rew_b.sum(1).astype(np.float64).tolist(), "steps": int(mask.sum())}

    def grad(self, update: int) -> np.ndarray:
        """Gradient [P] float32 of the loss on minibatch ``update % minibatches`` of epoch ``update // minibatches``."""
        mbs = self.o["minibatches"]
        b = self.batch
        if mbs > 1:
            epoch, m = divmod(update, mbs)
            perm = np.asarray(jax.random.permutation(jax.random.fold_in(self._perm_key, epoch), b.obs.shape[0]))
            size = b.obs.shape[0] // mbs
            idx = np.sort(perm[m * size:(m + 1) * size])
            b = Batch(*(x[idx] for x in b))
        return np.asarray(self._grad(self.params, b), np.float32)

    # -- every replica --
    def apply(self, grad: np.ndarray) -> None:
        self.params, self.opt_state = self._apply(self.params, self.opt_state, jnp.asarray(grad, jnp.float32))

    def params_hash(self) -> str:
        return params_hash(self.params)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


def average(grads: list[np.ndarray]) -> np.ndarray:
    """1/W sum_w g_w in worker order (float64 accumulation, float32 result): the same bytes on every replica."""
    acc = np.zeros_like(grads[0], np.float64)
    for g in grads:
        acc += g
    return (acc / len(grads)).astype(np.float32)


# -- worker pools: the all-reduce ------------------------------------------------------------------------------
class WireReplica:
    """A Ray actor's body: a PGReplica whose answers and inputs are pickled bytes (so their sizes are measured)."""

    def __init__(self, spec: dict, worker: int):
        self.replica = PGReplica(spec, worker)

    def collect(self, iteration: int) -> bytes:
        from esrun.backends.comm import dumps

        return dumps(self.replica.collect(iteration))

    def grad(self, update: int) -> bytes:
        from esrun.backends.comm import dumps

        return dumps(self.replica.grad(update))

    def apply(self, blob: bytes) -> None:
        from esrun.backends.comm import loads

        self.replica.apply(loads(blob))

    def params_hash(self) -> str:
        return self.replica.params_hash()


class Pool:
    """Where episodes are collected and gradients all-reduced. ``driver`` is the replica the coordinator
    evaluates; after ``step(u)`` every replica (workers and driver) has applied update ``u``'s average."""

    workers: int = 1
    is_coordinator: bool = True
    driver: PGReplica

    def __init__(self, spec: dict, workers: int):
        from esrun.backends.comm import CommMeter

        self.spec = spec
        self.workers = workers
        self.meter = CommMeter(workers)

    def collect(self, iteration: int) -> list[dict]:
        raise NotImplementedError

    def step(self, update: int) -> None:
        raise NotImplementedError

    def hashes(self) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        self.driver.close()


class LocalPool(Pool):
    """``workers`` replicas in this process, stepped one after the other; nothing is serialized (0 bytes)."""

    def __init__(self, spec: dict, workers: int):
        super().__init__(spec, workers)
        self.replicas = [PGReplica(spec, w) for w in range(workers)]
        self.driver = PGReplica(spec, -1)

    def collect(self, iteration):
        return [r.collect(iteration) for r in self.replicas]

    def step(self, update):
        g = average([r.grad(update) for r in self.replicas])
        for r in (*self.replicas, self.driver):
            r.apply(g)

    def hashes(self):
        return [r.params_hash() for r in self.replicas]

    def close(self):
        for r in self.replicas:
            r.close()
        super().close()


class RayPool(Pool):
    """One Ray actor per worker. The driver gathers the pickled gradients, averages them in worker order and
    puts the average once in the object store; each actor then applies it (calls to one actor run in order, so
    the next ``grad`` sees the updated parameters). Bytes per worker: the pickled gradient it sends and the
    pickled average (and statistics, and the small call arguments) it receives."""

    def __init__(self, spec: dict, workers: int, address=None):
        import math
        import os

        from esrun.backends.ray_backend import FORWARDED_ENV, connect

        super().__init__(spec, workers)
        self.ray, self._owns = connect(address)
        cpus = self.ray.cluster_resources().get("CPU", 1.0)
        per_worker = min(1.0, math.floor(cpus / workers * 1e4) / 1e4) or 0.0001
        opts = {"num_cpus": per_worker}
        env = {k: os.environ[k] for k in (*FORWARDED_ENV, "JAX_DISABLE_MOST_OPTIMIZATIONS") if k in os.environ}
        if env:  # the actors' jitted numerics must match the driver's replica
            opts["runtime_env"] = {"env_vars": env}
        actor = self.ray.remote(WireReplica).options(**opts)
        self.actors = [actor.remote(spec, w) for w in range(workers)]
        self.driver = PGReplica(spec, -1)
        self._pending: list = []  # apply calls not yet confirmed (errors surface at the next collect)

    def _msg(self, w: int, *args) -> None:
        from esrun.backends.comm import dumps

        self.meter.worker_received(w, len(dumps(args)))

    def collect(self, iteration):
        from esrun.backends.comm import loads

        self.ray.get(self._pending)
        self._pending = []
        for w in range(self.workers):
            self._msg(w, iteration)
        blobs = self.ray.get([a.collect.remote(iteration) for a in self.actors])
        for w, blob in enumerate(blobs):
            self.meter.worker_sent(w, len(blob))
        return [loads(b) for b in blobs]

    def step(self, update):
        from esrun.backends.comm import dumps, loads

        for w in range(self.workers):
            self._msg(w, update)
        blobs = self.ray.get([a.grad.remote(update) for a in self.actors])
        for w, blob in enumerate(blobs):
            self.meter.worker_sent(w, len(blob))
        g = average([loads(b) for b in blobs])
        blob = dumps(g)
        ref = self.ray.put(blob)
        self._pending += [a.apply.remote(ref) for a in self.actors]
        for w in range(self.workers):
            self.meter.worker_received(w, len(blob))
        self.driver.apply(g)

    def hashes(self):
        return self.ray.get([a.params_hash.remote() for a in self.actors])

    def close(self):
        for a in self.actors:
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors = []
        if self._owns:
            self.ray.shutdown()
        super().close()


class MPIPool(Pool):
    """Every rank is a worker and its own driver (SPMD, launched with ``mpiexec -n W``): statistics by
    ``allgather`` (pickled, measured), gradients by ``Allreduce(SUM)`` of the float32 [P] buffer, then / W."""

    def __init__(self, spec: dict, workers: int):
        from esrun.backends.mpi_backend import mpi_world

        self.MPI, self.comm = mpi_world("launch it with: mpiexec -n N esrun compare CONFIG backend.type=mpi")
        size = self.comm.Get_size()
        super().__init__(spec, size)
        self.rank = self.comm.Get_rank()
        self.is_coordinator = self.rank == 0
        self.driver = PGReplica(spec, self.rank)

    def collect(self, iteration):
        from esrun.backends.comm import dumps

        stats = self.driver.collect(iteration)
        out = self.comm.allgather(stats)
        for w, s in enumerate(out):  # each rank sends its stats and receives the others'
            n = len(dumps(s))
            self.meter.worker_sent(w, n)
            for v in range(self.workers):
                if v != w:
                    self.meter.worker_received(v, n)
        return out

    def step(self, update):
        g = self.driver.grad(update)
        total = np.empty_like(g)
        self.comm.Allreduce(g, total, op=self.MPI.SUM)
        for w in range(self.workers):
            self.meter.worker_sent(w, g.nbytes)
            self.meter.worker_received(w, total.nbytes)
        self.driver.apply((total / self.workers).astype(np.float32))

    def hashes(self):
        return self.comm.allgather(self.driver.params_hash())


POOLS: dict[str, Callable[..., Pool]] = {"local": LocalPool, "ray": RayPool, "mpi": MPIPool}
