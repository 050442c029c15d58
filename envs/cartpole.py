"""CartPole-v1 as pure JAX functions, with the dynamics of Gymnasium 1.4's ``CartPoleEnv``.

Physics (Barto, Sutton & Anderson 1983; Gymnasium's explicit-Euler variant), with force F = +-force_mag:

    temp     = (F + m_p l thdot^2 sin th) / (m_c + m_p)
    thacc    = (g sin th - cos th temp) / (l (4/3 - m_p cos^2 th / (m_c + m_p)))
    xacc     = temp - m_p l thacc cos th / (m_c + m_p)
    x' = x + tau xdot,  xdot' = xdot + tau xacc,  th' = th + tau thdot,  thdot' = thdot + tau thacc

Reward 1 on every step including the terminating one; terminated when |x'| > 2.4 or |th'| > 12 degrees (strict
inequalities, as Gymnasium); truncated at ``max_steps`` = 500 steps; initial state uniform in (-0.05, 0.05)^4;
observation ``(x, xdot, th, thdot)``.

Precision: Gymnasium keeps the state in float64 and casts only the observation to float32; here the state is
float32 throughout (JAX's default; enabling x64 is a process-wide switch we do not flip). One step therefore
differs from Gymnasium's by float32 rounding (relative ~1e-7), and trajectories from the same state drift apart
only by that accumulated rounding (tests/tasks/test_envs.py quantifies it).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from envs.spec import ActionSpec, JaxEnv


class Params(NamedTuple):
    """Gymnasium's constants for CartPole-v1 (``length`` is half the pole's length)."""

    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5
    force_mag: float = 10.0
    tau: float = 0.02
    theta_threshold: float = 12 * 2 * math.pi / 360
    x_threshold: float = 2.4
    reset_bound: float = 0.05
    max_steps: int = 500

    @property
    def total_mass(self) -> float:
        return self.masspole + self.masscart

    @property
    def polemass_length(self) -> float:
        return self.masspole * self.length


class State(NamedTuple):
    physics: jax.Array  # [4] float32: x, x_dot, theta, theta_dot
    t: jax.Array  # [] int32: steps taken since reset


OBSERVATION_DIM = 4
ACTION_SPEC = ActionSpec(kind="discrete", n=2)


def reset(key: jax.Array, params: Params = Params()) -> tuple[State, jax.Array]:
    """Initial state uniform in ``(-reset_bound, reset_bound)^4``; returns ``(state, obs [4])``."""
    physics = jax.random.uniform(
        key, (4,), jnp.float32, minval=-params.reset_bound, maxval=params.reset_bound
    )
    return State(physics, jnp.zeros((), jnp.int32)), physics


def step(state: State, action: jax.Array, params: Params = Params()):
    """One Euler step under action 0 (push left) or 1 (push right).

    Returns ``(state, obs [4] float32, reward [] float32, terminated [] bool, truncated [] bool)``.
    """
    x, x_dot, theta, theta_dot = state.physics
    force = jnp.where(action == 1, params.force_mag, -params.force_mag).astype(jnp.float32)
    costheta = jnp.cos(theta)
    sintheta = jnp.sin(theta)
    temp = (force + params.polemass_length * jnp.square(theta_dot) * sintheta) / params.total_mass
    thetaacc = (params.gravity * sintheta - costheta * temp) / (
        params.length * (4.0 / 3.0 - params.masspole * jnp.square(costheta) / params.total_mass)
    )
    xacc = temp - params.polemass_length * thetaacc * costheta / params.total_mass

    x = x + params.tau * x_dot
    x_dot = x_dot + params.tau * xacc
    theta = theta + params.tau * theta_dot
    theta_dot = theta_dot + params.tau * thetaacc
    physics = jnp.stack([x, x_dot, theta, theta_dot])
    t = state.t + 1

    terminated = (
        (x < -params.x_threshold)
        | (x > params.x_threshold)
        | (theta < -params.theta_threshold)
        | (theta > params.theta_threshold)
    )
    truncated = t >= params.max_steps
    reward = jnp.ones((), jnp.float32)
    return State(physics, t), physics, reward, terminated, truncated


ENV = JaxEnv(
    reset=reset,
    step=step,
    params=Params(),
    observation_dim=OBSERVATION_DIM,
    observation_high=(2 * 2.4, math.inf, 2 * 12 * 2 * math.pi / 360, math.inf),
    action_spec=ACTION_SPEC,
)
