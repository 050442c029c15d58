"""The ES update at scale: esrun's OpenAI-ES tell and member regeneration, counter vs table noise, beside evosax.

    .venv/bin/python bench/es_update.py [--sizes 1e5x256,1e6x1024] [--tell-chunk 32] [--table-size 67108864]
                                        [--reps 2] [--chunk-sweep]

Every variant runs in a fresh interpreter (``bench/_common.run_child``) and reports

* ``peak``: the increase of the process's peak RSS over its RSS just before the measured call (high-water mark
  reset through ``/proc/self/clear_refs`` after imports, set-up and compilation; the noise table's pages are
  faulted in before the reset, so the table is not in the increase: it is counted once per host, separately), and
* XLA's compiled memory analysis of the jitted function (``temp``: scratch buffers; ``args`` / ``out``: inputs and
  outputs), which needs no execution.

Variants at each size (same P, population, Adam, sigma 0.1, centered ranks, a fixed random fitness vector):

    esrun_tell     OpenAIES.tell, jitted; --noise counter: regenerates eps in chunks of tell_chunk pairs;
                   --noise table: sums slices of the shared table (strategies/noise.py)
    limit          the table tell's weighted sum as one BLAS call, np.dot(w [K], M [K, P]) with the same K slices
                   gathered beforehand (not timed); also a numpy loop of K axpys
    esrun_members  OpenAIES.range_params for one evaluation chunk of 64 members (the Replica's worker-side
                   regeneration; a generation does population / 64 of them, spread over the workers)
    evosax         evosax Open_ES: ask (materializes the [population, P] matrix) then tell (needs it)

The parent maps the noise table for the whole run (built once if absent), so every child maps the same pages.
``--child VARIANT`` runs one variant and prints one ``RESULT {json}`` line (used internally).
"""
from __future__ import annotations

import argparse
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
import _common as C  # noqa: E402

SIGMA, LR = 0.1, 0.01
MEMBER_CHUNK = 64


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


def _noise_source(a) -> tuple:
    """(noise source, info dict): COUNTER, or the host's shared table mapped (built if absent) and pre-touched, so
    that the measured call's RSS increase excludes the table (it is counted once per host, as ``table_mib``)."""
    import time

    import jax
    import numpy as np

    from esrun.strategies.noise import COUNTER

    if a.noise == "counter":
        return COUNTER, {"noise": "counter"}
    from esrun.runner.noise_table import aliases, table_source

    t0 = time.perf_counter()
    src, shared = table_source(jax.random.PRNGKey(0), a.table_size, a.params)
    info = {"noise": "table", "table_mib": a.table_size * 4 / C.MIB, "table_open_s": time.perf_counter() - t0,
            "table_built_here": shared.built_here, "table_aliased": aliases(src, shared)}
    float(np.sum(shared.array[:: 1024]))  # fault every page of the mapping in before the high-water mark reset
    return src, info


def child_esrun_tell(a) -> dict:
    import jax
    import jax.numpy as jnp

    from esrun.strategies.openai_es import OpenAIES

    s = OpenAIES(num_params=a.params, population=a.population, sigma_init=SIGMA, learning_rate=LR,
                 tell_chunk=a.tell_chunk)
    state = s.init(jax.random.PRNGKey(0), jnp.zeros(a.params, jnp.float32))
    fitness = jax.random.normal(jax.random.PRNGKey(1), (a.population,))
    noise, info = _noise_source(a)
    tell = jax.jit(s.tell).lower(state, fitness, noise).compile()
    out = {"variant": "esrun_tell", "tell_chunk": a.tell_chunk, **info, **_analysis(tell)}
    times, cpu = [], []
    with C.PeakRSS() as peak:
        for _ in range(a.reps):
            _, dt, dc = _clock(lambda: jax.block_until_ready(tell(state, fitness, noise)))
            times.append(dt)
            cpu.append(dc)
    out.update(seconds=min(times), cpu=min(cpu), peak_mib=peak.increase_mib, rss_before_mib=peak.before,
               hwm_reset=peak.reset_ok)
    if a.noise == "table" or not a.chunk_sweep:
        return out
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
    start = jnp.int32(64)  # the Replica's path: one evaluation chunk of 64 members, each pair's noise once
    noise, info = _noise_source(a)
    fn = jax.jit(s.range_params, static_argnums=2).lower(state, start, MEMBER_CHUNK, noise).compile()
    out = {"variant": "esrun_members", "chunk": MEMBER_CHUNK, **info, **_analysis(fn)}
    times, cpu = [], []
    with C.PeakRSS() as peak:
        for _ in range(a.reps):
            _, dt, dc = _clock(lambda: jax.block_until_ready(fn(state, start, noise)))
            times.append(dt)
            cpu.append(dc)
    out.update(seconds=min(times), cpu=min(cpu), peak_mib=peak.increase_mib, rss_before_mib=peak.before,
               hwm_reset=peak.reset_ok)
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
                lambda population=population: jax.block_until_ready(tell(key, population, fitness, state, params)))
            del population, new, _m, _s
            ask_t.append(dt_ask)
            tell_t.append(dt_tell)
            ask_c.append(dc_ask)
            tell_c.append(dc_tell)
    out.update(seconds_ask=min(ask_t), seconds=min(tell_t), cpu_ask=min(ask_c), cpu=min(tell_c),
               peak_mib=peak.increase_mib, rss_before_mib=peak.before,
               hwm_reset=peak.reset_ok)
    return out


def child_limit(a) -> dict:
    """The same weighted sum of the same table slices as one BLAS call: ``np.dot(w [K], M [K, P])``, M gathered
    beforehand (not timed), and as a loop of K numpy axpys ``acc += w_k * table[o_k : o_k + P]``."""
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np

    from esrun.runner.noise_table import table_source
    from esrun.strategies.shaping import SHAPING

    src, shared = table_source(jax.random.PRNGKey(0), a.table_size, a.params)
    fitness = jax.random.normal(jax.random.PRNGKey(1), (a.population,))
    u = SHAPING["centered_rank"](fitness)
    w = np.asarray(u[0::2] - u[1::2], np.float32)
    state_key = jax.random.fold_in(jax.random.PRNGKey(0), 0)  # any key: the cost does not depend on it
    offs = np.asarray(src.offsets(state_key, jnp.int32(0), jnp.arange(w.size, dtype=jnp.int32), a.params))
    table = shared.array
    gathered = np.stack([table[o:o + a.params] for o in offs])
    dots, axpys = [], []
    for _ in range(max(2, a.reps)):
        t0 = time.perf_counter()
        np.dot(w, gathered)
        dots.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        acc = np.zeros(a.params, np.float32)
        for o, wk in zip(offs, w):
            acc += wk * table[o:o + a.params]
        axpys.append(time.perf_counter() - t0)
    return {"variant": "limit", "seconds": min(dots), "seconds_axpy": min(axpys),
            "gigabytes_read": w.size * a.params * 4 / 1e9}


CHILDREN = {"esrun_tell": child_esrun_tell, "esrun_members": child_esrun_members, "evosax": child_evosax,
            "limit": child_limit}


def _size(text: str) -> tuple[int, int]:
    p, n = text.lower().split("x")
    return int(float(p)), int(n)


def run_size(a, params: int, population: int) -> list[dict]:
    """Every variant at one (P, population), each in a fresh process; counter and table interleaved."""
    common = ["--params", str(params), "--population", str(population), "--reps", str(a.reps),
              "--table-size", str(a.table_size), "--tell-chunk", str(a.tell_chunk)]
    plan = [("esrun tell, counter", ["--child", "esrun_tell", "--noise", "counter"]),
            ("esrun tell, table", ["--child", "esrun_tell", "--noise", "table"]),
            ("limit: np.dot(w, gathered slices)", ["--child", "limit"]),
            (f"esrun members, counter ({MEMBER_CHUNK})", ["--child", "esrun_members", "--noise", "counter"]),
            (f"esrun members, table ({MEMBER_CHUNK})", ["--child", "esrun_members", "--noise", "table"]),
            ("evosax Open_ES ask + tell", ["--child", "evosax"])]
    rows = []
    for name, extra in plan:
        if extra[1] == "evosax":  # minutes per call at 1e6 x 1024 on a busy 2-core machine: one timed call
            extra = extra + ["--reps", "1"]
        r = C.run_child("es_update.py", common + extra, timeout=3600)
        print("#", name, r, flush=True)
        rows.append({"name": name, **r})
    return rows


def report(rows: list[dict], params: int, population: int, table_mib: float) -> None:
    by = {r["name"].split(" (")[0]: r for r in rows}
    tc, tt, lim = by["esrun tell, counter"], by["esrun tell, table"], by["limit: np.dot(w, gathered slices)"]
    mc, mt, ev = by["esrun members, counter"], by["esrun members, table"], by["evosax Open_ES ask + tell"]
    gens = population // MEMBER_CHUNK
    for r in (tc, tt):
        r["gen_wall"] = r["seconds"] + gens * (mc if r is tc else mt)["seconds"]
        r["gen_cpu"] = r["cpu"] + gens * (mc if r is tc else mt)["cpu"]
    tt["process_mib"] = max(tt["peak_mib"], mt["peak_mib"]) + table_mib  # the table counted once (one process)
    tc["process_mib"] = max(tc["peak_mib"], mc["peak_mib"])
    if "seconds" in ev:
        ev.update(gen_wall=ev["seconds_ask"] + ev["seconds"], gen_cpu=ev["cpu_ask"] + ev["cpu"],
                  process_mib=ev["peak_mib"])
    print(f"\n## P = {params:,}, population {population} ({population // 2} pairs), table {table_mib:.0f} MiB\n")
    print(C.table(rows, [("name", "variant", ""), ("seconds_ask", "ask wall (s)", ".3f"),
                         ("seconds", "wall (s)", ".4f"), ("cpu", "CPU (s)", ".4f"),
                         ("peak_mib", "peak RSS increase (MiB)", ".0f"), ("temp_mib", "XLA temp (MiB)", ".0f")]))
    print(f"\ntell: counter / table = wall {tc['seconds'] / tt['seconds']:.1f}x, CPU {tc['cpu'] / tt['cpu']:.1f}x;  "
          f"table / limit = {tt['seconds'] / lim['seconds']:.2f}x (np.dot {lim['seconds']:.3f} s, numpy axpy loop "
          f"{lim['seconds_axpy']:.3f} s, {lim['gigabytes_read']:.2f} GB of slices)")
    print(f"generation's strategy work (tell + {gens} member chunks of {MEMBER_CHUNK}): counter {tc['gen_wall']:.2f} s"
          f" wall / {tc['gen_cpu']:.2f} s CPU, table {tt['gen_wall']:.2f} s / {tt['gen_cpu']:.2f} s")
    if "gen_wall" in ev:
        print(f"evosax ask+tell {ev['gen_wall']:.2f} s wall / {ev['gen_cpu']:.2f} s CPU: evosax / table = wall "
              f"{ev['gen_wall'] / tt['gen_wall']:.1f}x, CPU {ev['gen_cpu'] / tt['gen_cpu']:.1f}x; evosax / counter = "
              f"wall {ev['gen_wall'] / tc['gen_wall']:.1f}x")
        print(f"peak memory per process: evosax {ev['process_mib']:.0f} MiB; table mode {tt['process_mib']:.0f} MiB "
              f"(incl. the {table_mib:.0f} MiB table; {ev['process_mib'] / tt['process_mib']:.1f}x less), counter "
              f"{tc['process_mib']:.0f} MiB ({ev['process_mib'] / tc['process_mib']:.1f}x less)")
    else:
        print("evosax:", ev.get("skipped"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1e5x256,1e6x1024", help="comma-separated PARAMSxPOPULATION")
    p.add_argument("--tell-chunk", type=int, default=32, help="counter mode's tell_chunk (the esrun default 32)")
    p.add_argument("--table-size", type=int, default=2**26, help="noise table floats (the esrun default 2**26)")
    p.add_argument("--reps", type=int, default=2, help="timed calls per variant (the fastest is reported)")
    p.add_argument("--chunk-sweep", action="store_true", help="counter tell: compile-only XLA temp by tell_chunk")
    p.add_argument("--child", choices=sorted(CHILDREN))
    p.add_argument("--noise", choices=("counter", "table"), default="counter")
    p.add_argument("--params", type=int, default=1_000_000)
    p.add_argument("--population", type=int, default=1024)
    a = p.parse_args()
    if a.child:
        C.emit(CHILDREN[a.child](a))
        return
    import time

    import jax

    from esrun.runner.noise_table import open_table, table_key

    C.machine_header("bench/es_update.py " + " ".join(sys.argv[1:]))
    # This process maps the table for the whole run, so the children map the same one (once per host).
    t0 = time.perf_counter()
    shared = open_table(table_key(jax.random.PRNGKey(0)), a.table_size)
    print(f"# noise table {shared.path}: {a.table_size * 4 / C.MIB:.0f} MiB, "
          f"{'built' if shared.built_here else 'mapped'} in {time.perf_counter() - t0:.2f} s", flush=True)
    for text in a.sizes.split(","):
        params, population = _size(text)
        rows = run_size(a, params, population)
        report(rows, params, population, a.table_size * 4 / C.MIB)
    print(f"\n# load average at end: {C.load_average()}")


if __name__ == "__main__":
    main()
