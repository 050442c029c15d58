"""Real Ray (one local session for the module) and real mpiexec: the same final parameters on every backend, a
worker killed with SIGKILL mid-generation, bytes per generation independent of the number of parameters, and
one-line errors for a bad cluster address or a worker that cannot build the task."""
from __future__ import annotations

import os
import signal
import threading
import time

import gymnasium as gym
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from esrun.backends import BACKENDS, get_backend
from esrun.config import load_config
from esrun.errors import UserError
from esrun.runner import train

from esrun_helpers import free_port, read_summary
from esrun_helpers.backends import CARTPOLE_OVERRIDES, run_cli, start_cli, synthetic_overrides
from esrun_helpers.ray_faults import freeze_mid_chunk

pytestmark = pytest.mark.timeout(600)


def _cfg(tmp_path, *overrides, path="configs/cartpole.yaml"):
    return load_config(path, [*CARTPOLE_OVERRIDES, f"logging.dir={tmp_path}", *overrides])


@pytest.fixture
def captured_backends(monkeypatch):
    """Every RayBackend the runner builds in this test (to read its worker pids and counters).

    Before each generation the coordinator waits (at most 180 s) for worker syncs in flight, so that a worker killed
    in an earlier generation has come back (a new process imports JAX and builds the task, slow on a busy machine)
    and is seen taking chunks again within a short run. ``backend.generation_seen`` is the generation being
    evaluated.
    """
    get_backend("ray")
    made = []
    original = BACKENDS["ray"]

    def factory(cfg, evaluator):
        backend = original(cfg, evaluator)
        evaluate = backend.evaluate

        def evaluate_after_syncs(state):
            backend.generation_seen = state.generation
            syncs = [ref for ref, call in backend._calls.items() if call[0] == "sync"]
            if syncs:
                backend.ray.wait(syncs, num_returns=len(syncs), timeout=180)
            return evaluate(state)

        backend.evaluate = evaluate_after_syncs
        made.append(backend)
        return backend

    monkeypatch.setitem(BACKENDS, "ray", factory)
    return made


@pytest.fixture(scope="module")
def local_sha(tmp_path_factory):
    """params_sha256 of the undisturbed CartPole run on the local backend."""
    return train(_cfg(tmp_path_factory.mktemp("local"), "backend.type=local")).params_sha256


LONG = ("budget.generations=5",)
# The last generation (state.generation counts from 0) in which the worker may be killed: the restarted one must be
# seen taking chunks in a later one.
KILL_BY = 3


def test_local_ray_and_mpi_give_the_same_params(ray_session, local_sha, tmp_path, captured_backends):
    mpi = start_cli(["train", "configs/cartpole.yaml", *CARTPOLE_OVERRIDES, f"logging.dir={tmp_path / 'mpi'}",
                     "backend.type=mpi", "--quiet"], mpi_ranks=2)
    try:
        ray_result = train(_cfg(tmp_path / "ray", "backend.type=ray", "backend.workers=2"))
        out, err = mpi.communicate(timeout=300)
    finally:
        mpi.kill()
    assert mpi.returncode == 0, err[-2000:]
    mpi_summary = read_summary(tmp_path / "mpi" / "cartpole")
    assert (mpi_summary["backend"], mpi_summary["workers"]) == ("mpi", 2)
    assert ray_result.summary["workers"] == 2 and ray_result.summary["generations"] == 3
    assert ray_result.params_sha256 == local_sha
    assert mpi_summary["params_sha256"] == local_sha
    # both workers took chunks, and the per-generation traffic was measured
    assert ray_result.summary["bytes_per_generation"] > 0 and mpi_summary["bytes_per_generation"] > 0
    assert captured_backends[0].meter.restarts == 0


# table: issue 13's shared noise table (a restarted actor maps the host's table again, same slices, same hash)
NOISE = {"counter": (), "table": ("strategy.noise=table", f"strategy.noise_table_size={2**20}")}


@pytest.mark.parametrize("noise", sorted(NOISE))
def test_sigkilled_worker_is_restarted_and_the_run_is_unchanged(ray_session, tmp_path, captured_backends, noise):
    killed = {}

    def killer():
        deadline = time.time() + 240
        while time.time() < deadline:
            b = captured_backends[0] if captured_backends else None
            generation = getattr(b, "generation_seen", None)  # None: no generation evaluated yet
            if generation is not None and generation > KILL_BY:
                return  # too late in the run: the assertion below says so
            # wait until worker 0 is evaluating a chunk of a generation after the first, then kill its process
            if generation is not None and b.pids and 0 in b.busy and b.meter._last is not None:
                pids = freeze_mid_chunk(b, (0,))  # (None: it answered a moment ago; poll again)
                if pids is not None:
                    killed["pid"], killed["chunk"] = pids[0], b.busy.get(0)
                    os.kill(killed["pid"], signal.SIGKILL)
                    return
            time.sleep(0.002)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    result = train(_cfg(tmp_path / "ray", "backend.type=ray", "backend.workers=2", *LONG, *NOISE[noise]))
    t.join(5)
    undisturbed = train(_cfg(tmp_path / "local", "backend.type=local", *LONG, *NOISE[noise])).params_sha256
    b = captured_backends[0]
    assert "pid" in killed, "the worker was never seen busy"
    assert b.pids[0] != killed["pid"]  # restarted as a new process
    assert b.meter.restarts >= 1 and b.requeued_chunks >= 1
    assert b.chunks_by_pid[b.pids[0]] > 0  # the restarted worker took chunks again
    assert result.params_sha256 == undisturbed
    acc = EventAccumulator(str(result.run_dir)).Reload()
    restarts = [e.value for e in acc.Scalars("comm/worker_restarts")]
    assert restarts[-1] >= 1


def test_bytes_per_generation_do_not_grow_with_parameters(ray_session, tmp_path):
    per_gen = {}
    for dim in (1_000, 1_000_000):
        cfg = load_config(None, [*synthetic_overrides(dim), f"logging.dir={tmp_path / str(dim)}",
                                 "backend.type=ray", "backend.workers=2"])
        s = train(cfg).summary
        assert s["num_params"] == dim
        per_gen[dim] = s["bytes_per_generation"]
    small, large = per_gen[1_000], per_gen[1_000_000]
    assert small > 0
    assert abs(large - small) <= 0.1 * small, per_gen
    # O(population): far below one copy of the parameters
    assert large < 1_000_000 * 4 / 50


def test_worker_that_cannot_build_the_task_reports_its_error(ray_session, tmp_path):
    env_id = "EsrunOnlyInThisProcess-v0"  # registered here, unknown to the Ray worker processes
    gym.register(env_id, entry_point=gym.envs.classic_control.CartPoleEnv, max_episode_steps=50)
    try:
        cfg = _cfg(tmp_path, "backend.type=ray", "backend.workers=1", f"task.env_id={env_id}")
        with pytest.raises(UserError) as exc:
            train(cfg)
    finally:
        gym.registry.pop(env_id, None)
    msg = str(exc.value)
    assert "could not build the task" in msg and "EsrunOnlyInThisProcess" in msg and "\n" not in msg


def test_unreachable_ray_address_fails_fast_with_one_line(tmp_path):
    """Fast: the error is the TCP probe's ("cannot reach"), not ray.init's own wait for a cluster that never
    answers (the seconds are not asserted: start-up alone varies several-fold between machines)."""
    address = f"127.0.0.1:{free_port()}"  # a port nobody listens on
    p = run_cli(["train", "configs/cartpole.yaml", *CARTPOLE_OVERRIDES, f"logging.dir={tmp_path}",
                 "backend.type=ray", f"backend.address={address}"], timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("esrun: error:")]
    assert len(errors) == 1 and address in errors[0], p.stderr[-2000:]
    assert "cannot reach the Ray cluster" in errors[0], errors[0]


def test_replica_that_drifts_is_detected_by_its_hash_and_resynced(ray_session, tmp_path, captured_backends,
                                                                   capfd):
    """A worker's replica is altered behind the coordinator's back (its mean shifted) after generation 1: the next
    hash comparison (hash_every=1) finds it and the coordinator sends that worker the full state once."""
    from esrun.backends.comm import state_to_blob

    cfg = load_config(None, [*synthetic_overrides(10), f"logging.dir={tmp_path}", "budget.generations=5",
                             "backend.type=ray", "backend.workers=2"])
    drifted = {}

    def drift(backend):
        tell = backend.tell

        def tell_then_drift(fitness, obs_delta, state):
            tell(fitness, obs_delta, state)
            if state.generation == 1:
                bad = state._replace(strategy=state.strategy._replace(mean=state.strategy.mean + 1.0))
                backend.ray.get(backend.actors[0].set_state.remote(state_to_blob(bad)))
                drifted["syncs_before"] = backend.meter.syncs

        backend.tell = tell_then_drift

    get_backend("ray")
    made = BACKENDS["ray"]

    def factory(c, e):
        b = made(c, e)
        drift(b)
        return b

    BACKENDS["ray"] = factory
    try:
        train(cfg)
    finally:
        BACKENDS["ray"] = made
    b = captured_backends[0]
    assert drifted["syncs_before"] == 2  # the two joins
    assert b.meter.syncs == 3 and b.meter.restarts == 0
    assert "worker 0 replica hash" in capfd.readouterr().err
