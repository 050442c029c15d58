"""Whole episodes on K MuJoCo slots in one process: the loop each ``task.engine: mujoco`` worker runs.

A call runs n jobs (episodes) on K slots (``MjData``), lock-step over the slots of this process only:

    per step:  a [K, nu] = act(params[member of slot], (obs - mean) / std)     one jitted call, vmapped over K
               ctrl <- a[k]; mj_step(model, data_k, nstep = frame_skip)          each active slot k
                 (+ mj_rnePostConstraint where contact forces are read); copy the env's MjData fields
               reward, terminated, obs from those fields before/after            numpy over K (esrun.tasks.mujoco_env)
    a slot whose episode ends takes the next job (of this call, or claimed from the queue the workers share), or idles.

Job j starts from the env's reset noise drawn from ``np_random(seed_j)`` (Gymnasium's ``env.reset(seed=seed_j)``),
so its return, length and observations depend only on (params of its member, mean, std, seed_j): not on K, on the
slot it ran in, or on which process ran it (each policy row has the same bits in a batch of any size,
:func:`make_act`).

Per job the observations the policy saw (initial state included, the state after the last step not) are reduced to
``ObsStats`` (two-pass, float64); the caller merges them in job order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    from esrun.tasks.mujoco_env import EnvModel


def make_act(policy: Any, obs_norm: bool, obs_clip: float | None) -> Callable:
    """``act(params [C, P], slot_member [K] int, obs [K, obs_dim] float64, mean, std [obs_dim] float32) -> [K, nu]``.

    The input ``x = clip((float32(obs) - mean) / std)`` is computed in numpy (IEEE, element by element) and the
    policy rows in one jitted ``vmap``: each row's bits are then the same for every K and every row position
    (tested), which is what makes an episode independent of the slot, the worker count and the width. (XLA fusing
    the division into the policy gives rows whose last bits depend on K.)
    """
    import jax

    rows = jax.jit(lambda params, slot_member, x: jax.vmap(policy.apply)(params[slot_member], x))

    lo, hi = (np.float32(-obs_clip), np.float32(obs_clip)) if obs_norm and obs_clip is not None else (None, None)

    def act(params: Any, slot_member: np.ndarray, obs: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        x = obs.astype(np.float32)
        np.subtract(x, mean, out=x)
        np.divide(x, std, out=x)
        if lo is not None:  # as the Gymnasium task (task.obs_clip; None: ARS, no clip)
            np.clip(x, lo, hi, out=x)
        return np.asarray(rows(params, np.asarray(slot_member, np.int32), x))

    return act


@dataclass
class Episodes:
    """What a call returns: the indices of the jobs it ran, and for every job index (rows of jobs run elsewhere
    stay 0) returns [n] float64 (NaN: the simulator failed), steps [n] int64, observation statistics (count [n],
    mean / m2 [n, obs_dim] float64; count 0 when not collected); the slot steps taken (useful or not) and failures,
    for the benchmarks."""

    jobs: np.ndarray
    returns: np.ndarray
    steps: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    slot_steps: int
    failures: int


class EpisodeRunner:
    """One model and a growing set of ``MjData`` slots; :meth:`run` plays jobs to the end."""

    def __init__(self, env: EnvModel, act: Callable):
        import mujoco

        self.env, self.act = env, act
        self.model = mujoco.MjModel.from_xml_path(env.xml_path)
        self.datas: list[Any] = []

    def _reset(self, k: int, seed: int) -> None:
        """Slot k starts a fresh episode: Gymnasium's ``mj_resetData``, reset noise from ``np_random(seed)``,
        ``mj_forward``."""
        import mujoco
        from gymnasium.utils.seeding import np_random

        qpos, qvel = self.env.reset_state(np_random(int(seed))[0])
        d = self.datas[k]
        mujoco.mj_resetData(self.model, d)
        d.qpos[:], d.qvel[:] = qpos, qvel
        mujoco.mj_forward(self.model, d)

    def run(self, params: Any, members: np.ndarray, seeds: np.ndarray, mean: Any, std: Any, slots: int,
            collect: bool, claim: Callable[[], int] | None = None) -> Episodes:
        """Jobs of ``members`` / ``seeds`` (job j: member ``members[j]`` of ``params``, reset seed ``seeds[j]``) on
        ``slots`` slots: all of them in order, or those ``claim()`` hands out (a job index, or -1: no more)."""
        import mujoco

        env, n = self.env, len(members)
        if claim is None:
            order = iter(range(n))

            def claim() -> int:
                return next(order, -1)

        k_all = max(1, min(slots, n))
        while len(self.datas) < k_all:
            self.datas.append(mujoco.MjData(self.model))
        out = Episodes(np.zeros(0, np.int64), np.zeros(n), np.zeros(n, np.int64), np.zeros(n),
                       np.zeros((n, env.obs_dim)), np.zeros((n, env.obs_dim)), 0, 0)
        ran: list[int] = []
        state = env.alloc(k_all)  # MjData fields of every slot after its last step (esrun.tasks.mujoco_env)
        qs = state["qs"]  # [K, nq + nv]: qpos and qvel
        # per slot: its MjData and (destination row, MjData array) pairs, fetched once
        views = [(d, d.ctrl, [(state[f][k], getattr(d, f)) for f in env.fields])
                 for k, d in enumerate(self.datas[:k_all])]
        slot_job = np.full(k_all, -1)
        slot_member = np.zeros(k_all, np.int32)  # the member of each slot's job (0 when idle)
        slot_return = np.zeros(k_all)  # running return of each slot's episode (summed step by step, float64)
        ep_len = np.zeros(k_all, np.int64)  # steps of each slot's episode (grows on idle slots too: unused there)
        rows = np.arange(k_all)
        seen = np.zeros((k_all, env.max_steps, env.obs_dim)) if collect else None
        more = n > 0

        def start(k: int) -> bool:
            """Slot k takes the next job (True), or idles (False)."""
            nonlocal more
            j = claim() if more else -1
            slot_job[k] = j
            if j < 0:
                more = False
                return False
            ran.append(j)
            self._reset(k, seeds[j])
            for row, src in views[k][2]:
                row[...] = src
            slot_member[k], slot_return[k], ep_len[k] = members[j], 0.0, 0
            return True

        for k in range(k_all):
            start(k)
        obs = env.observe(state)
        x_before = env.x_position(state)
        frame_skip, model, max_steps = env.frame_skip, self.model, env.max_steps
        rne = env.kind.contact_forces  # Gymnasium's do_simulation: mj_rnePostConstraint after mj_step
        live = np.flatnonzero(slot_job >= 0)
        while len(live):
            action = self.act(params, slot_member, obs, mean, std)
            if seen is not None:
                if len(live) == k_all:
                    seen[rows, ep_len] = obs
                else:
                    seen[live, ep_len[live]] = obs[live]
            raised = []
            for k in live.tolist():
                d, ctrl, pairs = views[k]
                try:
                    ctrl[:] = action[k]
                    mujoco.mj_step(model, d, nstep=frame_skip)
                    if rne:
                        mujoco.mj_rnePostConstraint(model, d)
                    for row, src in pairs:
                        row[...] = src
                except Exception:  # noqa: BLE001 - a raising step fails this job's episode (NaN), not the run
                    raised.append(k)
            out.slot_steps += len(live)
            x_after = env.x_position(state)
            reward, term = env.reward(x_before, x_after, state, action)
            slot_return += reward  # idle slots add garbage (reset when they start)
            ep_len += 1
            bad = ~np.isfinite(qs).all(1)  # idle slots hold a finite (or zeroed) state
            if raised:
                bad[raised] = True
            done = term | bad
            done |= ep_len >= max_steps
            done &= slot_job >= 0
            ended = np.flatnonzero(done).tolist()
            for k in ended:
                j = slot_job[k]
                out.steps[j], out.returns[j] = ep_len[k], slot_return[k]
                if bad[k]:
                    out.returns[j] = np.nan
                    out.failures += 1
                if seen is not None:
                    x = seen[k, :ep_len[k]]
                    out.count[j], out.mean[j] = len(x), x.mean(0)
                    out.m2[j] = ((x - out.mean[j]) ** 2).sum(0)
                if not start(k) and bad[k]:  # a failed slot left idle: its state may be NaN
                    for a in state.values():
                        a[k] = 0.0
            if ended:
                live = np.flatnonzero(slot_job >= 0)
                x_before = env.x_position(state)  # fresh slots start from their reset position
            else:
                x_before = x_after
            obs = env.observe(state)
        out.jobs = np.asarray(ran, np.int64)
        return out
