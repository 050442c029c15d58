"""configs/rastrigin.yaml on any CPU: seed -> final f(mean), generations, with XLA's default code and with the CPU
code generation pinned to another instruction set (another CPU family's rounding; docs/determinism.md).

    .venv/bin/python bench/rastrigin_any_cpu.py                          # seeds 0-4, default and AVX
    .venv/bin/python bench/rastrigin_any_cpu.py --seeds 0-9 --isas AVX,SSE4_2 strategy.population=200
    .venv/bin/python bench/rastrigin_any_cpu.py --batched 20 --specs 200:2,1000:2   # success rate over 20 seeds

Default mode: ``esrun.train(configs/rastrigin.yaml, seed=S, *overrides)`` per seed, one child process per XLA
setting (XLA reads XLA_FLAGS once). ``--batched N``: a screening replay of the same CMA-ES (esrun's strategy,
population and sigma from ``--specs pop:sigma``) on N seeds at once, vmapped over seeds and scanned over 200
generations; its start points are drawn differently from the runner's, so it gives success rates, not the
runner's trajectories.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, load_average, machine_header

ESRUN_XLA_DEFAULTS = "--xla_cpu_multi_thread_eigen=false"


def seeds_arg(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def run_seeds(seeds: list[int], overrides: list[str]) -> None:
    import esrun

    for seed in seeds:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            s = esrun.train(ROOT / "configs/rastrigin.yaml", f"seed={seed}", f"logging.dir={d}",
                            "logging.tensorboard=false", *overrides, progress=False).summary
            print(f"| {os.environ.get('BENCH_ISA', 'default')} | {seed} | {-s['final_eval_return']:.4g} | "
                  f"{s['generations']} | {s['stop_reason']} | {time.perf_counter() - t0:.1f} |", flush=True)


def run_batched(n: int, specs: list[str]) -> None:
    import esrun  # noqa: F401  (esrun's XLA defaults before JAX)

    # isort: split
    import jax
    import jax.numpy as jnp
    import numpy as np

    from esrun.config.schema import StrategyConfig
    from esrun.strategies import STRATEGIES
    from esrun.tasks.synthetic import rastrigin

    dim, generations = 10, 200
    for spec in specs:
        pop, sigma = int(spec.split(":")[0]), float(spec.split(":")[1])
        strategy = STRATEGIES["cma_es"](dim, pop, StrategyConfig(name="cma_es", population=pop, sigma=sigma))

        def init(seed: int, strategy=strategy):
            key = jax.random.PRNGKey(seed)
            return strategy.init(key, jax.random.uniform(jax.random.fold_in(key, 1), (dim,), minval=-3.0, maxval=3.0))

        states = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[init(i) for i in range(n)])

        def one(state, strategy=strategy, pop=pop):
            def step(state, _):
                x = strategy.member_params(state, jnp.arange(pop, dtype=jnp.int32))
                state, _ = strategy.tell(state, -jax.vmap(rastrigin)(x))
                return state, rastrigin(strategy.mean(state))

            _, f = jax.lax.scan(step, state, None, length=generations)
            return f[-1], jnp.where(jnp.any(f <= 0.01), jnp.argmax(f <= 0.01) + 1, -1)

        final, gens = (np.asarray(a) for a in jax.jit(jax.vmap(one))(states))
        ok = gens > 0
        print(f"| {os.environ.get('BENCH_ISA', 'default')} | {pop} | {sigma} | {ok.sum()}/{n} | "
              f"{(final < 1).sum()}/{n} | {int(np.median(gens[ok])) if ok.any() else '-'} | "
              f"{gens.max() if ok.any() else '-'} | {sorted(np.round(final[~ok], 3).tolist())} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--isas", default="AVX", help="--xla_cpu_max_isa values to run besides the default")
    ap.add_argument("--batched", type=int, default=0, help="screen N seeds at once instead of esrun.train runs")
    ap.add_argument("--specs", default="200:2,1000:2", help="--batched: population:sigma,...")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help="config overrides, e.g. strategy.population=200")
    args = ap.parse_args()
    if args.child:
        run_batched(args.batched, args.specs.split(",")) if args.batched else run_seeds(seeds_arg(args.seeds),
                                                                                         args.overrides)
        return
    machine_header(" ".join(["bench/rastrigin_any_cpu.py", *sys.argv[1:]]))
    if args.batched:
        print("| XLA | population | sigma | reached f <= 0.01 | f < 1 | median generations | max | trapped at f |")
        print("|---|---|---|---|---|---|---|---|")
    else:
        print("| XLA | seed | final f(mean) | generations | stop | wall s |\n|---|---|---|---|---|---|")
    for isa in ["default", *[i for i in args.isas.split(",") if i]]:
        flags = ESRUN_XLA_DEFAULTS if isa == "default" else f"--xla_cpu_max_isa={isa} {ESRUN_XLA_DEFAULTS}"
        env = {**os.environ, "XLA_FLAGS": flags, "BENCH_ISA": isa}
        subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], env=env, check=True,
                       cwd=Path(__file__).parent)
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
