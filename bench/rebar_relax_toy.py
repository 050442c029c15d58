"""The REBAR / RELAX toy (Tucker et al., 2017; Grathwohl et al., 2018): minimize E_{b ~ Bernoulli(sigmoid(phi))}
[(b - t)^2] at t = 0.499 with one sample per step and Adam(0.01), comparing REINFORCE, REBAR (eta and
temperature trained to minimize variance) and RELAX (c = eta f(sigma_lambda(z)) + MLP(z), trained likewise).

Prints, every `--every` steps, the exact loss E f, the logit and the single-sample gradient variance of each
estimator at the current parameters (measured with 2000 fresh samples). The optimum is phi -> -inf (p -> 0), since
f(1) - f(0) = 1 - 2t = 0.002 > 0.

    .venv/bin/python bench/rebar_relax_toy.py [--steps 3000] [--every 500]
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

from esrun import estimators as E

T = 0.499


def f(b):
    return jnp.sum((b - T) ** 2)


def exact_loss(phi):
    p = jax.nn.sigmoid(phi)
    return p * (1 - T) ** 2 + (1 - p) * T**2


def make_trainer(name, steps, lr=0.01):
    """Returns ``run(key) -> (phi [steps], aux [steps, ...])`` (a jitted lax.scan) and ``variance(key, phi, aux)``."""
    opt = optax.adam(lr)
    cv = E.rebar_mlp_control_variate(f, hidden=(8,))

    def init(key):
        phi = jnp.zeros(())
        aux = {"reinforce": (), "rebar": (jnp.asarray(1.0), jnp.log(jnp.asarray(0.5))),
               "relax": cv.init(key, ())}[name]
        return phi, aux, opt.init(phi), opt.init(aux)

    def grad_and_aux_grad(key, phi, aux):
        dist = E.Bernoulli(phi)
        if name == "reinforce":
            return E.score_function(key, f, dist, 1).grad.logits, ()
        if name == "rebar":
            est, g_aux = E.rebar_with_variance_grad(key, f, dist, 1, aux[0], aux[1])
            return est.grad.logits, g_aux
        est, g_aux = E.relax(key, f, dist, 1, cv, aux, return_cv_grad=True)
        return est.grad.logits, g_aux

    def step(carry, key):
        phi, aux, s_phi, s_aux = carry
        g, g_aux = grad_and_aux_grad(key, phi, aux)
        u, s_phi = opt.update(g, s_phi)
        phi = optax.apply_updates(phi, u)
        if name != "reinforce":
            u_aux, s_aux = opt.update(g_aux, s_aux)
            aux = optax.apply_updates(aux, u_aux)
        return (phi, aux, s_phi, s_aux), (phi, aux)

    @jax.jit
    def run(key):
        k0, k1 = jax.random.split(key)
        _, (phis, auxs) = jax.lax.scan(step, init(k0), jax.random.split(k1, steps))
        return phis, auxs

    def variance(key, phi, aux, n=2000):
        dist = E.Bernoulli(jnp.asarray(phi))
        if name == "reinforce":
            per = E.score_function(key, f, dist, n).per_sample.logits
        elif name == "rebar":
            per = E.rebar(key, f, dist, n, eta=aux[0], temperature=jnp.exp(aux[1])).per_sample.logits
        else:
            per = E.relax(key, f, dist, n, cv, aux).per_sample.logits
        return float(jnp.var(per))

    return run, variance


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    key = jax.random.PRNGKey(args.seed)
    print(f"toy: f(b) = (b - {T})^2, one sample per step, Adam(0.01), {args.steps} steps")
    print(f"{'estimator':>10} {'step':>6} {'logit':>9} {'E f':>10} {'Var(single-sample grad)':>24}")
    for name in ("reinforce", "rebar", "relax"):
        run, variance = make_trainer(name, args.steps)
        curve, auxs = run(key)
        checkpoints = list(range(0, args.steps, args.every)) + [args.steps - 1]
        for s in checkpoints:
            phi = float(curve[s])
            aux = jax.tree.map(lambda a, s=s: a[s], auxs)
            v = variance(jax.random.PRNGKey(123), phi, aux)
            print(f"{name:>10} {s + 1:>6} {phi:>9.4f} {float(exact_loss(phi)):>10.6f} {v:>24.3e}")
        if name == "rebar":
            print(f"{'':>10} trained eta = {float(aux[0]):.4f}, temperature = {float(jnp.exp(aux[1])):.4f}")
        if name == "relax":
            print(f"{'':>10} trained eta = {float(aux['eta']):.4f}, "
                  f"temperature = {float(jnp.exp(aux['log_temperature'])):.4f}")


if __name__ == "__main__":
    main()
