"""The ES update at scale: peak memory and seconds of esrun's chunked OpenAI-ES ``tell`` beside evosax ``Open_ES``.

    .venv/bin/python bench/es_update.py [--params 1000000] [--population 1024] [--tell-chunk 64,16] [--reps 1]

Every variant runs in a fresh interpreter (``bench/_common.run_child``) and reports

* ``peak``: the increase of the process's peak RSS over its RSS just before the measured call (high-water mark
  reset through ``/proc/self/clear_refs`` after imports, set-up and compilation), and
* XLA's compiled memory analysis of the jitted function (``temp``: scratch buffers; ``args`` / ``out``: inputs and
  outputs), which needs no execution.

Variants (same P, population, Adam, sigma 0.1, centered ranks, a fixed random fitness vector):

    esrun_tell     esrun.strategies.openai_es.OpenAIES.tell, jitted: regenerates eps in chunks of tell_chunk pairs
    esrun_members  OpenAIES.member_params for one evaluation chunk of 64 members (the worker-side regeneration;
                   a generation does population / 64 of them, spread over the workers)
    evosax         evosax Open_ES: ask (materializes the [population, P] matrix) then tell (needs it)

``--child VARIANT`` runs one variant and prints one ``RESULT {json}`` line (used internally).
"""
from __future__ import annotations

import argparse
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
import _common as C  # noqa: E402

SIGMA, LR = 0.1, 0.01


def _analysis(compiled) -> dict:
    m = compiled.memory_analysis()
    return {"temp_mib": m.temp_size_in_bytes / C.MIB, "args_mib": m.argument_size_in_bytes / C.MIB,
            "out_mib": m.output_size_in_bytes / C.MIB}


def _clock(fn):
    """(result, wall seconds, CPU seconds of this process: user + sys, all threads) of one blocking call."""
    import time

    c0 = time.process_time()
    out, wall = C.timed(fn)
    return out, wall, time.process_time() - c0


def _fits(*analyses) -> bool:
    need = sum(a["temp_mib"] + a["out_mib"] for a in analyses) * C.MIB
    return need < 0.8 * C.mem_available_gib() * 2**30


def child_esrun_tell(a) -> dict:
    import jax
    import jax.numpy as jnp

    from esrun.strategies.openai_es import OpenAIES

    s = OpenAIES(num_params=a.params, population=a.population, sigma_init=SIGMA, learning_rate=LR,
                 tell_chunk=a.tell_chunk)
    state = s.init(jax.random.PRNGKey(0), jnp.zeros(a.params, jnp.float32))
    fitness = jax.random.normal(jax.random.PRNGKey(1), (a.population,))
    tell = jax.jit(s.tell).lower(state, fitness).compile()
    out = {"variant": "esrun_tell", "tell_chunk": a.tell_chunk, **_analysis(tell)}
    times, cpu = [], []
    with C.PeakRSS() as peak:
        for _ in range(a.reps):
            _, dt, dc = _clock(lambda: jax.block_until_ready(tell(state, fitness)))
            times.append(dt)
            cpu.append(dc)
    out.update(seconds=min(times), cpu=min(cpu), peak_mib=peak.increase_mib, rss_before_mib=peak.before, hwm_reset=peak.reset_ok)
    # compile-only: XLA scratch of the tell for other chunk sizes (no execution)
    out["temp_mib_by_tell_chunk"] = {
        c: _analysis(jax.jit(OpenAIES(num_params=a.params, population=a.population, sigma_init=SIGMA,
                                      learning_rate=LR, tell_chunk=c).tell).lower(state, fitness).compile())["temp_mib"]
        for c in (8, 16, 32, 64, 128, 256)}
    return out


def child_esrun_members(a) -> dict:
    import jax
    import jax.numpy as jnp

    from esrun.strategies.openai_es import OpenAIES

    s = OpenAIES(num_params=a.params, population=a.population, sigma_init=SIGMA, learning_rate=LR,
                 tell_chunk=a.tell_chunk)
    state = s.init(jax.random.PRNGKey(0), jnp.zeros(a.params, jnp.float32))
    members = jnp.arange(64, dtype=jnp.int32)
    fn = jax.jit(s.member_params).lower(state, members).compile()
    out = {"variant": "esrun_members", "chunk": 64, **_analysis(fn)}
    times, cpu = [], []
    with C.PeakRSS() as peak:
        for _ in range(a.reps):
            _, dt, dc = _clock(lambda: jax.block_until_ready(fn(state, members)))
            times.append(dt)
            cpu.append(dc)
    out.update(seconds=min(times), cpu=min(cpu), peak_mib=peak.increase_mib, rss_before_mib=peak.before, hwm_reset=peak.reset_ok)
    return out


def child_evosax(a) -> dict:
    import jax
    import jax.numpy as jnp
    import optax
    from evosax.algorithms import Open_ES

    es = Open_ES(population_size=a.population, solution=jnp.zeros(a.params, jnp.float32),
                 optimizer=optax.adam(LR), std_schedule=optax.constant_schedule(SIGMA))
    params = es.default_params
    key = jax.random.PRNGKey(0)
    state = es.init(key, jnp.zeros(a.params, jnp.float32), params)
    fitness = jax.random.normal(jax.random.PRNGKey(1), (a.population,))
    ask = type(es).ask.lower(es, key, state, params).compile()
    pop_shape = jax.ShapeDtypeStruct((a.population, a.params), jnp.float32)
    tell = type(es).tell.lower(es, key, pop_shape, fitness, state, params).compile()
    out = {"variant": "evosax", "ask": _analysis(ask), "tell": _analysis(tell)}
    out.update(temp_mib=out["ask"]["temp_mib"] + out["tell"]["temp_mib"], args_mib=out["tell"]["args_mib"],
               out_mib=out["ask"]["out_mib"])
    if not _fits(out["ask"], out["tell"]):
        out["skipped"] = f"needs more than 80% of the {C.mem_available_gib():.1f} GiB available"
        return out
    ask_t, tell_t, ask_c, tell_c = [], [], [], []
    with C.PeakRSS() as peak:
        for _ in range(a.reps):
            (population, _s), dt_ask, dc_ask = _clock(lambda: jax.block_until_ready(ask(key, state, params)))
            (new, _m), dt_tell, dc_tell = _clock(
                lambda: jax.block_until_ready(tell(key, population, fitness, state, params)))
            del population, new, _m, _s
            ask_t.append(dt_ask)
            tell_t.append(dt_tell)
            ask_c.append(dc_ask)
            tell_c.append(dc_tell)
    out.update(seconds_ask=min(ask_t), seconds=min(tell_t), cpu_ask=min(ask_c), cpu=min(tell_c), peak_mib=peak.increase_mib, rss_before_mib=peak.before,
               hwm_reset=peak.reset_ok)
    return out


CHILDREN = {"esrun_tell": child_esrun_tell, "esrun_members": child_esrun_members, "evosax": child_evosax}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=int, default=1_000_000)
    p.add_argument("--population", type=int, default=1024)
    p.add_argument("--tell-chunk", default="32,16", help="comma-separated; the first is the esrun default 32")
    p.add_argument("--reps", type=int, default=1, help="timed calls per variant (the fastest is reported)")
    p.add_argument("--child", choices=sorted(CHILDREN))
    a = p.parse_args()
    chunks = [int(c) for c in str(a.tell_chunk).split(",")]
    if a.child:
        a.tell_chunk = chunks[0]
        C.emit(CHILDREN[a.child](a))
        return
    C.machine_header("bench/es_update.py " + " ".join(sys.argv[1:]))
    common = ["--params", str(a.params), "--population", str(a.population), "--reps", str(a.reps)]
    print(f"# P = {a.params:,} parameters, population {a.population}, reps {a.reps}; each variant in a fresh "
          "process; wall seconds and CPU seconds (user+sys of the process, all threads)", flush=True)
    rows = []
    for c in chunks:
        r = C.run_child("es_update.py", common + ["--tell-chunk", str(c), "--child", "esrun_tell"])
        print("#", r, flush=True)
        rows.append({"name": f"esrun OpenAIES.tell, tell_chunk {c}", **r, "wall_total": r["seconds"],
                     "cpu_total": r["cpu"]})
    e = rows[0]
    v = C.run_child("es_update.py", common + ["--child", "evosax"])
    print("#", v, flush=True)
    if "seconds" in v:
        v.update(wall_total=v["seconds_ask"] + v["seconds"], cpu_total=v["cpu_ask"] + v["cpu"])
    rows.append({"name": "evosax Open_ES ask + tell", **v})
    m = C.run_child("es_update.py", common + ["--tell-chunk", str(chunks[0]), "--child", "esrun_members"])
    print("#", m, flush=True)
    rows.append({"name": "esrun member_params, one chunk of 64 members", **m, "wall_total": m["seconds"],
                 "cpu_total": m["cpu"]})
    print()
    print(C.table(rows, [("name", "variant", ""), ("peak_mib", "peak RSS increase (MiB)", ".0f"),
                         ("temp_mib", "XLA temp (MiB)", ".0f"), ("out_mib", "XLA outputs (MiB)", ".0f"),
                         ("seconds_ask", "ask wall (s)", ".1f"), ("seconds", "tell wall (s)", ".1f"),
                         ("wall_total", "total wall (s)", ".1f"), ("cpu_total", "total CPU (s)", ".1f")]))
    print()
    gens = a.population // 64
    if "peak_mib" in v:
        for r in rows[: len(chunks)]:
            print(f"[{r['name']}] peak RSS: evosax / esrun = {v['peak_mib'] / r['peak_mib']:.1f}x;  XLA temp+out: "
                  f"{(v['temp_mib'] + v['out_mib']) / (r['temp_mib'] + r['out_mib']):.1f}x;  "
                  f"evosax tell / esrun tell: wall {v['seconds'] / r['seconds']:.2f}x, CPU {v['cpu'] / r['cpu']:.2f}x;  "
                  f"evosax ask+tell / esrun tell: wall {v['wall_total'] / r['seconds']:.2f}x, "
                  f"CPU {v['cpu_total'] / r['cpu']:.2f}x")
        print(f"generation's strategy work, evosax ask+tell / esrun (tell + {gens} member chunks of 64): "
              f"wall {v['wall_total'] / (e['seconds'] + gens * m['seconds']):.2f}x, "
              f"CPU {v['cpu_total'] / (e['cpu'] + gens * m['cpu']):.2f}x  (member chunks run on the workers)")
    else:
        print("evosax:", v.get("skipped"))
    print("esrun tell XLA temp (MiB) by tell_chunk (compile-only): "
          + ", ".join(f"{k}: {t:.0f}" for k, t in e["temp_mib_by_tell_chunk"].items()))
    print(f"# load average at end: {C.load_average()}")


if __name__ == "__main__":
    main()
