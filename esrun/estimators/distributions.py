"""Distributions as pytrees: their array leaves are the parameters that estimators differentiate.

Each distribution is an immutable ``NamedTuple`` (hence a pytree) with

* ``sample(key, n) -> [n, *event_shape]`` samples (no gradient flows through ``sample``),
* ``log_prob(x) -> []`` the log-density of one sample, summed over the event (differentiable in the params),
* ``mean_value()`` the mean, used by oracles and by estimators that need it.

Samples of ``Bernoulli`` are floats in {0., 1.}; of ``Categorical`` one-hot floats over the last axis.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Gaussian(NamedTuple):
    """Diagonal Gaussian N(mean, exp(log_std)^2); a sample has ``mean.shape``."""

    mean: jax.Array
    log_std: jax.Array

    @property
    def std(self) -> jax.Array:
        return jnp.exp(self.log_std)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        eps = jax.random.normal(key, (n, *jnp.shape(self.mean)), jnp.result_type(self.mean, float))
        return jax.lax.stop_gradient(self.mean + self.std * eps)

    def log_prob(self, x: jax.Array) -> jax.Array:
        z = (x - self.mean) / self.std
        return jnp.sum(-0.5 * z**2 - self.log_std - 0.5 * jnp.log(2 * jnp.pi))

    def mean_value(self) -> jax.Array:
        return self.mean


class Bernoulli(NamedTuple):
    """Independent Bernoulli(sigmoid(logits)); a sample is a {0., 1.} float array of ``logits.shape``."""

    logits: jax.Array

    @property
    def probs(self) -> jax.Array:
        return jax.nn.sigmoid(self.logits)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        u = jax.random.uniform(key, (n, *jnp.shape(self.logits)))
        return jax.lax.stop_gradient((u < self.probs).astype(jnp.result_type(self.logits, float)))

    def log_prob(self, x: jax.Array) -> jax.Array:
        # log p(x) = x log sigmoid(l) + (1 - x) log sigmoid(-l), stable for large |l|.
        return jnp.sum(x * jax.nn.log_sigmoid(self.logits) + (1 - x) * jax.nn.log_sigmoid(-self.logits))

    def mean_value(self) -> jax.Array:
        return self.probs


class Categorical(NamedTuple):
    """Categorical(softmax(logits)) over the last axis; a sample is one-hot of ``logits.shape``."""

    logits: jax.Array

    @property
    def probs(self) -> jax.Array:
        return jax.nn.softmax(self.logits, axis=-1)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        idx = jax.random.categorical(key, self.logits, axis=-1, shape=(n, *jnp.shape(self.logits)[:-1]))
        k = jnp.shape(self.logits)[-1]
        return jax.lax.stop_gradient(jax.nn.one_hot(idx, k, dtype=jnp.result_type(self.logits, float)))

    def log_prob(self, x: jax.Array) -> jax.Array:
        return jnp.sum(x * jax.nn.log_softmax(self.logits, axis=-1))

    def mean_value(self) -> jax.Array:
        return self.probs


class Poisson(NamedTuple):
    """Independent Poisson(exp(log_rate)); a sample is a float array of counts of ``log_rate.shape``."""

    log_rate: jax.Array

    @property
    def rate(self) -> jax.Array:
        return jnp.exp(self.log_rate)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        x = jax.random.poisson(key, self.rate, (n, *jnp.shape(self.log_rate)))
        return jax.lax.stop_gradient(x.astype(jnp.result_type(self.log_rate, float)))

    def log_prob(self, x: jax.Array) -> jax.Array:
        return jnp.sum(x * self.log_rate - self.rate - jax.scipy.special.gammaln(x + 1))

    def mean_value(self) -> jax.Array:
        return self.rate


DISTRIBUTIONS = {"gaussian": Gaussian, "bernoulli": Bernoulli, "categorical": Categorical, "poisson": Poisson}

Distribution = Gaussian | Bernoulli | Categorical | Poisson
"""Any of the distribution pytrees above (what ``dist`` is in the estimator signature)."""
