"""The native OpenAI-ES strategy: seed-derived antithetic members, the chunked tell against a dense reference,
unbiasedness of the smoothed gradient (z-test), shaping, weight decay, the sigma schedule, determinism, memory,
and the sphere-1000 config reaching f < 1e-3.
"""
from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import esrun
from esrun.config.schema import StrategyConfig
from esrun.strategies import STRATEGIES
from esrun.strategies.openai_es import OpenAIES, noise
from esrun.strategies.shaping import SHAPING, centered_rank, raw, z_score

from esrun_helpers import ROOT

KEY = jax.random.PRNGKey(3)


def make(num_params: int, population: int, **kw) -> OpenAIES:
    cfg = StrategyConfig(name="openai_es", population=population, **kw)
    return STRATEGIES["openai_es"](num_params, population, cfg)


def sha(x) -> str:
    return hashlib.sha256(np.asarray(x, np.float32).tobytes()).hexdigest()


# -- members ---------------------------------------------------------------------------------------------


def test_antithetic_members_are_exact_negatives_around_the_mean():
    s = make(13, 20, sigma=0.3)
    state = s.init(KEY, jnp.zeros(13))._replace(generation=jnp.int32(4))
    x = np.asarray(s.member_params(state, jnp.arange(20)))
    np.testing.assert_array_equal(x[0::2], -x[1::2])  # around a zero mean the pairs negate bit for bit
    for k in range(10):  # and member 2k is mean + sigma * eps_k with the protocol's noise
        np.testing.assert_allclose(x[2 * k], 0.3 * np.asarray(noise(state.key, state.generation, k, 13)), rtol=1e-6)
    mean = jnp.linspace(-2.0, 2.0, 13)
    state = s.init(KEY, mean)
    x = np.asarray(s.member_params(state, jnp.arange(20)), np.float64)
    d = x - np.asarray(mean, np.float64)
    np.testing.assert_allclose(d[0::2], -d[1::2], atol=1e-6)
    assert np.all(np.abs(d[0::2]) > 0)


def test_member_params_of_a_slice_equal_rows_of_the_whole_population():
    s = make(17, 30, sigma=0.1)
    state = s.init(KEY, jnp.ones(17))
    full = np.asarray(s.member_params(state, jnp.arange(30)))
    for members in ([7, 8, 9, 10, 11], [3, 28, 3, 0]):
        np.testing.assert_array_equal(s.member_params(state, jnp.array(members)), full[members])
    nxt = np.asarray(s.member_params(state._replace(generation=state.generation + 1), jnp.arange(30)))
    assert not np.allclose(nxt, full)  # a new generation draws new noise
    no_anti = make(17, 30, antithetic=False)
    y = np.asarray(no_anti.member_params(no_anti.init(KEY, jnp.zeros(17)), jnp.arange(30)))
    assert not np.allclose(y[0::2], -y[1::2])


# -- the chunked update --------------------------------------------------------------------------------------


def dense_gradient(s: OpenAIES, state, fitness) -> np.ndarray:
    """g = 1/(n sigma) sum_i u_i sign_i eps_pair(i), with the whole [n, P] noise matrix in float64."""
    u = np.asarray(SHAPING[s.fitness_shaping](jnp.asarray(fitness)), np.float64)
    idx = np.arange(s.population)
    pair, sign = (idx // 2, 1.0 - 2.0 * (idx % 2)) if s.antithetic else (idx, np.ones(s.population))
    eps = np.stack([np.asarray(noise(state.key, state.generation, int(k), s.num_params), np.float64) for k in pair])
    return (u * sign) @ eps / (s.population * float(state.sigma))


@pytest.mark.parametrize("antithetic,population", [(True, 90), (False, 45)])  # 45 noise vectors either way
@pytest.mark.parametrize("tell_chunk", [1, 7, 64])
@pytest.mark.parametrize("shaping", ["centered_rank", "raw"])
def test_chunked_gradient_equals_the_dense_reference(tell_chunk, antithetic, population, shaping):
    s = make(11, population, sigma=0.2, tell_chunk=tell_chunk, antithetic=antithetic, fitness_shaping=shaping)
    state = s.init(KEY, jnp.linspace(-1.0, 1.0, 11))._replace(generation=jnp.int32(2))
    fitness = -jnp.sum((s.member_params(state, jnp.arange(population)) - 0.5) ** 2, axis=1)
    got = np.asarray(jax.jit(s.gradient)(state, fitness), np.float64)
    want = dense_gradient(s, state, fitness)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 * np.abs(want).max())
    assert np.linalg.norm(want) > 0.1


@pytest.mark.parametrize("antithetic", [True, False])
def test_smoothed_gradient_of_a_quadratic_is_unbiased(antithetic):
    """f(x) = -1/2 (x-c)^T A (x-c): E[g] = grad E f(m + sigma eps) = -A (m - c) exactly. z-test per coordinate
    over T = 3000 independent generations (raw fitness, so g is the plain Gaussian-smoothing estimator)."""
    P, n, T = 5, 8, 3000
    a = jnp.array([1.0, 2.0, 0.5, 3.0, 1.5])
    c = jnp.array([0.3, -0.2, 1.0, 0.0, -0.7])
    m = jnp.array([1.0, 0.5, -0.5, 0.2, 0.4])
    s = make(P, n, sigma=0.5, fitness_shaping="raw", antithetic=antithetic)
    state = s.init(KEY, m)

    def estimate(g):
        st = state._replace(generation=g)
        x = s.member_params(st, jnp.arange(n))
        return s.gradient(st, -0.5 * jnp.sum(a * (x - c) ** 2, axis=1))

    grads = np.asarray(jax.jit(jax.vmap(estimate))(jnp.arange(T, dtype=jnp.int32)), np.float64)
    exact = -np.asarray(a * (m - c), np.float64)
    se = grads.std(axis=0, ddof=1) / np.sqrt(T)
    z = (grads.mean(axis=0) - exact) / se
    assert np.all(np.abs(z) < 4.5), z
    assert np.all(se < 0.1 * np.abs(exact).max())  # the test has power: errors of 10% of |grad| are visible


# -- shaping -----------------------------------------------------------------------------------------------------


def test_fitness_shaping_functions():
    f = jnp.array([3.0, 1.0, 2.0, 1.0])
    np.testing.assert_allclose(centered_rank(f), [0.5, -0.5, 1 / 6, -1 / 6], rtol=1e-6)  # tie broken by index
    u = np.asarray(centered_rank(jax.random.normal(KEY, (101,))))
    assert u.min() == -0.5 and u.max() == 0.5 and abs(u.sum()) < 1e-5
    np.testing.assert_allclose(np.sort(u), np.linspace(-0.5, 0.5, 101), atol=1e-6)
    z = np.asarray(z_score(jnp.array([1.0, 2.0, 3.0, 4.0])))
    np.testing.assert_allclose(z, (np.arange(1, 5) - 2.5) / np.sqrt(1.25), rtol=1e-5)
    np.testing.assert_array_equal(raw(f), f)
    assert centered_rank(jnp.array([5.0]))[0] == -0.5  # one member: no division by zero
    assert set(SHAPING) == {"centered_rank", "z_score", "raw"}


# -- optimizer, weight decay and sigma schedule ---------------------------------------------------------------------


def test_weight_decay_shrinks_the_mean_when_the_gradient_is_zero():
    s = make(6, 10, optimizer="sgd", momentum=0.0, learning_rate=0.1, weight_decay=0.5, fitness_shaping="raw")
    mean = jnp.array([1.0, -2.0, 3.0, 0.0, 0.5, -0.25])
    state = s.init(KEY, mean)
    new, metrics = jax.jit(s.tell)(state, jnp.full((10,), 7.0))  # equal fitness: antithetic differences are 0
    assert float(metrics["grad_norm"]) == 0.0
    np.testing.assert_allclose(new.mean, mean * (1 - 0.1 * 0.5), rtol=1e-6)


def test_sgd_step_ascends_gradient_minus_weight_decay():
    s = make(6, 10, optimizer="sgd", momentum=0.0, learning_rate=0.05, weight_decay=0.1, sigma=0.3)
    state = s.init(KEY, jnp.linspace(-1.0, 1.0, 6))
    fitness = -jnp.sum(s.member_params(state, jnp.arange(10)) ** 2, axis=1)
    g = s.gradient(state, fitness)
    new, _ = s.tell(state, fitness)
    np.testing.assert_allclose(new.mean, state.mean + 0.05 * (g - 0.1 * state.mean), rtol=1e-5, atol=1e-7)
    # Adam: the first step moves every coordinate by lr in the direction of the ascent.
    adam = make(6, 10, optimizer="adam", learning_rate=0.05, sigma=0.3)
    st = adam.init(KEY, jnp.linspace(-1.0, 1.0, 6))
    new, _ = adam.tell(st, fitness)
    np.testing.assert_allclose(new.mean - st.mean, 0.05 * np.sign(adam.gradient(st, fitness)), rtol=1e-4)


def test_sigma_schedule_decays_to_the_floor():
    s = make(4, 8, sigma=0.5, sigma_decay=0.5, sigma_min=0.1)
    state = s.init(KEY, jnp.zeros(4))
    tell, member_params = jax.jit(s.tell), jax.jit(s.member_params)
    seen = []
    for _ in range(5):
        x = member_params(state, jnp.arange(8))
        eps = noise(state.key, state.generation, 0, 4)
        np.testing.assert_allclose(x[0] - state.mean, state.sigma * eps, rtol=1e-4, atol=1e-6)
        state, metrics = tell(state, -jnp.sum(x**2, axis=1))
        seen.append(float(metrics["sigma"]))  # the sigma the generation was sampled with
    np.testing.assert_allclose(seen, [0.5, 0.25, 0.125, 0.1, 0.1], rtol=1e-6)
    assert float(state.sigma) == pytest.approx(0.1)
    assert int(state.generation) == 5


# -- determinism and memory ------------------------------------------------------------------------------------------


def test_jitted_tell_is_deterministic():
    s = make(200, 64, tell_chunk=7)
    state = s.init(KEY, jnp.linspace(-1.0, 1.0, 200))
    fitness = -jnp.sum(s.member_params(state, jnp.arange(64)) ** 2, axis=1)
    first = sha(jax.jit(s.tell)(state, fitness)[0].mean)
    again = sha(jax.jit(make(200, 64, tell_chunk=7).tell)(state, fitness)[0].mean)  # fresh object, fresh jit
    assert first == again
    other = sha(jax.jit(s.tell)(state, fitness.at[0].add(1.0))[0].mean)
    assert other != first  # the hash sees a one-member change


def test_tell_memory_is_o_of_chunk_times_params():
    """XLA's own accounting of the compiled tell: temporaries scale with tell_chunk, not with the population."""
    P, n = 100_000, 1024
    dense = n * P * 4
    temps = {}
    for chunk in (4, 16):
        s = make(P, n, tell_chunk=chunk)
        state = s.init(KEY, jnp.zeros(P))
        temps[chunk] = jax.jit(s.tell).lower(state, jnp.zeros(n)).compile().memory_analysis().temp_size_in_bytes
        assert temps[chunk] < 8 * chunk * P * 4, (chunk, temps[chunk])
    assert temps[16] < dense / 10  # 4 buffers of 16 x P against one [1024, P] matrix
    assert temps[16] > 2 * temps[4]  # and they do grow with the chunk


# -- configs ----------------------------------------------------------------------------------------------------------


def test_sphere_1000_config_goes_below_1e_3(tmp_path):
    result = esrun.train(ROOT / "configs/sphere.yaml", f"logging.dir={tmp_path}", "logging.tensorboard=false",
                         progress=False)
    s = result.summary
    assert s["num_params"] == 1000 and s["strategy"] == "openai_es"
    assert -s["final_eval_return"] < 1e-3, s
    assert float(np.sum(result.mean.astype(np.float64) ** 2)) < 1e-3
    assert s["generations"] < 120  # reached the target before the generation budget


def test_range_params_equals_member_params():
    """The pair-sharing fast path of OpenAI-ES gives the rows of member_params (to the last bit or so)."""
    from esrun.strategies.openai_es import OpenAIES

    s = OpenAIES(num_params=33, population=24, sigma_init=0.3)
    st = s.init(jax.random.PRNGKey(4), jnp.linspace(-1, 1, 33))
    st = st._replace(generation=jnp.int32(5))
    for start, size in ((0, 8), (8, 8), (16, 8), (4, 6)):
        fast = jax.jit(s.range_params, static_argnums=2)(st, jnp.int32(start), size)
        ref = s.member_params(st, jnp.arange(start, start + size))
        np.testing.assert_allclose(np.asarray(fast), np.asarray(ref), rtol=1e-6, atol=1e-7)
