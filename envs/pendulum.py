"""Pendulum-v1 as pure JAX functions, with the dynamics of Gymnasium 1.4's ``PendulumEnv``.

With torque u = clip(a, -max_torque, max_torque) and th measured from upright:

    reward  = -(normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2),   normalize(th) = ((th + pi) mod 2 pi) - pi
    thdot'  = clip(thdot + (3 g / (2 l) sin th + 3 / (m l^2) u) dt, -max_speed, max_speed)
    th'     = th + thdot' dt

The reward is that of the state *before* the step (as Gymnasium). Never terminates; truncated at ``max_steps`` =
200; initial ``th`` uniform in [-pi, pi], ``thdot`` uniform in [-1, 1]; observation ``(cos th, sin th, thdot)``.
``th`` is not wrapped (Gymnasium does not wrap it either), so the state is the same number as Gymnasium's.

Precision: Gymnasium computes in float64 (its reward is a float64); here everything is float32. One step agrees
to float32 rounding (relative ~1e-7); over 200 steps the trajectories drift apart only by accumulated rounding
(tests/tasks/test_envs.py quantifies it).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from envs.spec import ActionSpec, JaxEnv


class Params(NamedTuple):
    """Gymnasium's constants for Pendulum-v1 (``g`` is its ``make`` argument, default 10)."""

    max_speed: float = 8.0
    max_torque: float = 2.0
    dt: float = 0.05
    g: float = 10.0
    m: float = 1.0
    l: float = 1.0
    reset_theta: float = math.pi
    reset_theta_dot: float = 1.0
    max_steps: int = 200


class State(NamedTuple):
    theta: jax.Array  # [] float32, unwrapped
    theta_dot: jax.Array  # [] float32
    t: jax.Array  # [] int32


OBSERVATION_DIM = 3
ACTION_SPEC = ActionSpec(kind="continuous", dim=1, low=-2.0, high=2.0)


def _obs(theta, theta_dot):
    return jnp.stack([jnp.cos(theta), jnp.sin(theta), theta_dot])


def angle_normalize(x):
    """Angle mapped to ``[-pi, pi)``."""
    return ((x + jnp.pi) % (2 * jnp.pi)) - jnp.pi


def reset(key: jax.Array, params: Params = Params()) -> tuple[State, jax.Array]:
    """``th ~ U[-reset_theta, reset_theta]``, ``thdot ~ U[-reset_theta_dot, reset_theta_dot]``.

    Returns ``(state, obs [3])``."""
    high = jnp.array([params.reset_theta, params.reset_theta_dot], jnp.float32)
    theta, theta_dot = jax.random.uniform(key, (2,), jnp.float32, minval=-high, maxval=high)
    return State(theta, theta_dot, jnp.zeros((), jnp.int32)), _obs(theta, theta_dot)


def step(state: State, action: jax.Array, params: Params = Params()):
    """One semi-implicit Euler step under torque ``action: [1]``.

    Returns ``(state, obs [3] float32, reward [] float32, terminated [] bool (always False), truncated [] bool)``.
    """
    th, thdot = state.theta, state.theta_dot
    u = jnp.clip(jnp.asarray(action, jnp.float32).reshape(-1)[0], -params.max_torque, params.max_torque)
    costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)

    newthdot = thdot + (
        3 * params.g / (2 * params.l) * jnp.sin(th) + 3.0 / (params.m * params.l**2) * u
    ) * params.dt
    newthdot = jnp.clip(newthdot, -params.max_speed, params.max_speed)
    newth = th + newthdot * params.dt
    t = state.t + 1
    terminated = jnp.zeros((), jnp.bool_)
    truncated = t >= params.max_steps
    return State(newth, newthdot, t), _obs(newth, newthdot), -costs, terminated, truncated


ENV = JaxEnv(
    reset=reset,
    step=step,
    params=Params(),
    observation_dim=OBSERVATION_DIM,
    observation_high=(1.0, 1.0, 8.0),
    action_spec=ACTION_SPEC,
)
