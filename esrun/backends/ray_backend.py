"""Ray backend: ``backend.type=ray``, ``backend.workers=N`` actors, each owning a replica of the run.

    backend.address   unset: a local ``ray.init`` sized to this machine;  ``auto`` or ``host:port``: an existing cluster

Each actor is built from the config (``cfg.model_dump(mode="json")``, validated on the worker) by the replica
factory the runner hands in (by default the class of the coordinator's replica, :class:`esrun.runner.replica.Replica`)
and holds that replica and a ``RunState``. It is sent the full state once when it (re)joins; after that only the
messages of ``esrun.backends.comm`` travel:

    evaluate   coordinator -> free worker: (g, [chunk])       worker -> coordinator: fitness, steps, obs_delta
    tell       coordinator -> every worker: (g, fitness [population], steps, obs_delta); the worker applies
               ``Replica.apply`` — the same pure update as the coordinator — and every ``hash_every``
               generations answers the SHA-256 of its mean, compared with the coordinator's

Scheduling: the generation's chunks form a queue; each idle worker is handed the next chunk, so a slow worker
takes fewer chunks and never holds the generation back by more than one chunk. Actors are placed with Ray's
``SPREAD`` strategy, so the loss of one node takes as few workers as possible.

Fault tolerance. Actors are created with unlimited restarts; a chunk whose worker died goes back to the head of the
queue (another worker takes it), and the restarted actor gets the full state once before it takes work again. A
chunk that is not answered within

    timeout = max(backend.chunk_timeout, backend.chunk_timeout_factor x median(last 64 chunk times))

(a stopped or hung worker, a straggler) is also put back on the queue: another worker evaluates a copy and the
first answer wins; the straggler is not interrupted, takes no new chunk until it answers, and its late answer (a
chunk already evaluated, or of a past generation) is discarded and counted in ``late_results``. Its tells keep
their order on the actor, so a straggler that wakes up applies them and is in step again. Since a member's fitness
depends only on (seed, generation, member), the final parameters equal those of an undisturbed run.
"""
from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from esrun.backends.base import Backend, ReplicaLike, State, register
from esrun.backends.comm import (
    CommMeter,
    decode_results,
    dumps,
    encode_results,
    encode_tell,
    loads,
    log,
    state_from_blob,
    state_to_blob,
)
from esrun.backends.ray_connect import connect, cpus_per_worker, ray_options
from esrun.digest import params_hash
from esrun.errors import UserError

STALE = "stale"  # a worker's answer when its replica is not at the generation asked about: it needs the state
START_TIMEOUT_S = 600.0  # actors that cannot be placed (too few CPUs) fail instead of waiting for ever
MAX_FAILURES_PER_WORKER = 20  # deaths tolerated per worker and run before giving up
CHUNK_TIME_WINDOW = 64  # chunk times (submission to answer) the straggler timeout takes its median over


class RayWorker:
    """A Ray actor's body: one replica of the run, updated exactly like the coordinator's.

    ``replica_factory(cfg)`` builds the replica from the validated config (the runner hands it in; the backend
    never imports the runner). The constructor never raises: a worker that cannot build the task keeps the error
    and reports it from :meth:`ready`, so the coordinator can name it (and the actor is not restarted in a loop).
    """

    def __init__(self, replica_factory: Callable[[Any], ReplicaLike], cfg_json: dict):
        self.state: State = None
        self.evaluator: Any = None  # ReplicaLike once built
        self.error: str | None = None
        try:
            from esrun.config.schema import Config

            self.evaluator = replica_factory(Config.model_validate(cfg_json))
        except Exception as exc:  # noqa: BLE001 - reported to the coordinator as the task's own error
            self.error = " ".join(f"{type(exc).__name__}: {exc}".split())

    def ready(self) -> tuple[int, str | None]:
        """(pid, error or None)."""
        return os.getpid(), self.error

    def pid(self) -> int:
        return os.getpid()

    def set_state(self, blob: bytes) -> int:
        """Adopt the coordinator's full state; returns this process's id (a new id means a restart)."""
        self.state = state_from_blob(blob)
        return os.getpid()

    def evaluate(self, generation: int, chunk_ids: list) -> bytes | str:
        if self.state is None or self.state.generation != generation:
            return STALE
        t0 = time.perf_counter()
        results = self.evaluator.evaluate_chunks(self.state, chunk_ids)
        return encode_results(chunk_ids, results, time.perf_counter() - t0)

    def tell(self, blob: bytes, want_hash: bool) -> str:
        """Apply the generation's update; returns the mean's hash if asked, "" otherwise, STALE if out of step."""
        generation, fitness, steps, obs_delta = loads(blob)
        if self.state is None or self.state.generation != generation:
            return STALE
        self.state, _ = self.evaluator.apply(self.state, fitness, steps, obs_delta)
        return params_hash(self.evaluator.mean(self.state)) if want_hash else ""


class RayBackend(Backend):
    """Coordinator side: a chunk queue over N replica actors; see the module docstring.

    Every call to an actor is an entry of ``self._calls``: ``ref -> (kind, worker, seq, extra)`` with kind
    ``chunk`` (extra: (generation, chunk id)), ``tell`` (extra: the hash expected, or None) or ``sync``;
    ``self._chunk_t0`` holds the submission time of each chunk call in flight (the straggler timeout). Calls to one
    actor run in submission order, so a sync followed by a tell leaves the replica one generation on. A worker takes
    chunks when no sync of it is in flight, so a restarting worker never holds a chunk others could evaluate.
    An answer from a call made before the worker's latest sync (``seq < last_sync``) cannot make it stale again.
    """

    def __init__(self, cfg: Any, evaluator: ReplicaLike,
                 replica_factory: Callable[[Any], ReplicaLike] | None = None):
        self.cfg = cfg
        self.evaluator = evaluator
        # how a worker builds its replica from the config: the runner's (by default the coordinator's replica's
        # own class, a module-level callable Ray can ship by reference)
        self.replica_factory = replica_factory or type(evaluator)
        self.workers = cfg.backend.workers
        self.hash_every = cfg.backend.hash_every
        self.meter = CommMeter(self.workers)
        self.ray: Any = None  # the ray module once connected
        self._owns_ray = False
        self.actors: list = []
        self.pids: list[int] = []  # current process id of each worker (tests kill workers by pid)
        self.busy: dict[int, int] = {}  # worker -> chunk it is evaluating now
        self.requeued_chunks = 0  # chunks put back on the queue: their worker died, or answered STALE
        self.straggler_chunks = 0  # chunks also given to another worker after the straggler timeout
        self.late_results = 0  # answers discarded: chunk already evaluated by another worker, or a past generation
        self.chunks_by_pid: Counter = Counter()  # chunks accepted from each worker process
        self._chunk_t0: dict = {}
        self._backed_up: set = set()  # chunk calls already copied to the queue after the timeout
        self._chunk_times: deque = deque(maxlen=CHUNK_TIME_WINDOW)
        self._failures = 0
        self._calls: dict = {}
        self._seq = 0
        self._last_sync: dict[int, int] = {}
        self._syncing: set[int] = set()
        self._steps = 0
        self._busy_seconds: Counter[int] = Counter()  # seconds (floats) per worker
        self.eval_seconds = 0.0  # last generation: longest time one worker spent evaluating

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, state: State) -> None:
        ray, self._owns_ray = connect(self.cfg.backend.address)
        self.ray = ray
        cpus = ray.cluster_resources().get("CPU", 1.0)
        actor_cls = ray.remote(max_restarts=-1, max_task_retries=0)(RayWorker)
        opts = ray_options(cpus_per_worker(ray, self.workers), scheduling_strategy="SPREAD")
        cfg_json = self.cfg.model_dump(mode="json")
        self.actors = [actor_cls.options(**opts).remote(self.replica_factory, cfg_json)
                       for _ in range(self.workers)]
        refs = [a.ready.remote() for a in self.actors]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=START_TIMEOUT_S)
        if len(done) < len(refs):
            raise UserError(f"ray: only {len(done)} of backend.workers = {self.workers} workers started within "
                            f"{START_TIMEOUT_S:.0f} s (the cluster has {cpus:g} CPUs)")
        for pid, error in ray.get(refs):
            if error is not None:
                raise UserError(f"ray worker (pid {pid}) could not build the task: {error}")
        blob = state_to_blob(state)
        ref = ray.put(blob)
        self.pids = ray.get([a.set_state.remote(ref) for a in self.actors])
        self.meter.setup_bytes += len(blob) * self.workers
        self.meter.syncs += self.workers
        log(f"ray: {self.workers} workers joined (pids {self.pids}); full state of {len(blob)} bytes sent to each")

    def close(self) -> None:
        if self.ray is None:
            return
        for a in self.actors:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(a, no_restart=True)
        self.actors, self._calls = [], {}
        self._chunk_t0.clear()
        self._backed_up.clear()
        if self._owns_ray:
            self.ray.shutdown()
        self.ray = None

    # -- calls to actors ----------------------------------------------------------------------------
    def _call(self, kind: str, w: int, method: str, *args: Any, extra: Any = None, retry: bool = False) -> None:
        """Submit ``method`` to worker ``w``. ``set_state`` and ``tell`` are retried by Ray across a restart (they
        wait for the new process; a tell that reaches a replica at another generation answers STALE and leads to
        a sync); a chunk is not retried: it fails fast and goes back to the queue for another worker."""
        self._seq += 1
        fn = getattr(self.actors[w], method)
        if retry:
            fn = fn.options(max_task_retries=-1)
        ref = fn.remote(*args)
        self._calls[ref] = (kind, w, self._seq, extra)
        if kind == "chunk":
            self._chunk_t0[ref] = time.monotonic()

    def _sync(self, w: int, state, blob_cache: dict) -> None:
        """Send worker ``w`` the full state of this generation (once; it takes no chunk until it answers)."""
        if "ref" not in blob_cache:
            blob = state_to_blob(state)
            blob_cache.update(ref=self.ray.put(blob), size=len(blob))
        self._call("sync", w, "set_state", blob_cache["ref"], retry=True)
        self._last_sync[w] = self._seq
        self._syncing.add(w)
        self.meter.worker_received(w, blob_cache["size"])
        self.meter.setup_bytes += blob_cache["size"]
        self.meter.syncs += 1

    def _failed(self, w: int, what: str) -> None:
        self._failures += 1
        if self._failures > MAX_FAILURES_PER_WORKER * self.workers:
            raise RuntimeError(f"ray: workers failed {self._failures} times; giving up")
        log(f"ray: worker {w} (pid {self.pids[w]}) {what}")

    def _requeue(self, chunk_call, state, queue: deque, results: dict) -> bool:
        """Put a chunk of this generation back at the head of the queue unless it is done or queued already."""
        g, c = chunk_call
        if g != state.generation or c in results or c in queue:
            return False
        queue.appendleft(c)
        return True

    def _answer(self, ref, state, queue: deque, results: dict, blob_cache: dict) -> None:
        """Handle one finished call (chunk results, a tell's hash, a sync's pid, or a dead worker)."""
        kind, w, seq, extra = self._calls.pop(ref)
        covered = seq < self._last_sync.get(w, 0)  # a later sync already brings this worker up to date
        t0 = self._chunk_t0.pop(ref, None)
        self._backed_up.discard(ref)
        if kind == "chunk":
            self.busy.pop(w, None)  # a worker has at most one chunk call in flight
        try:
            answer = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            answer = None
            if kind == "chunk" and self._requeue(extra, state, queue, results):
                self.requeued_chunks += 1
            if not covered:  # else a later sync, already in flight, brings the restarted worker up to date
                self._failed(w, f"died during a {kind} in generation {state.generation}"
                             + ("; its chunk goes to another worker" if kind == "chunk" else ""))
                self._sync(w, state, blob_cache)
            return
        if kind == "sync":
            if seq == self._last_sync[w]:
                self._syncing.discard(w)
            if answer != self.pids[w]:
                self.meter.restarts += 1
                log(f"ray: worker {w} restarted (pid {self.pids[w]} -> {answer}) and received the full state")
                self.pids[w] = answer
        elif answer == STALE:
            if kind == "chunk":
                self._requeue(extra, state, queue, results)
            if not covered and w not in self._syncing:
                self._sync(w, state, blob_cache)
        elif kind == "chunk":
            self.meter.worker_sent(w, len(answer))
            g, c = extra
            if g != state.generation or c in results:  # another worker answered first: the copy is not counted
                self.late_results += 1
                log(f"ray: worker {w} (pid {self.pids[w]}) answered chunk {c} of generation {g} late "
                    f"(now {state.generation}); discarded, it was evaluated by another worker")
                return
            self._chunk_times.append(time.monotonic() - t0)
            self.chunks_by_pid[self.pids[w]] += 1
            seconds, pairs = decode_results(answer)
            self._busy_seconds[w] += seconds  # type: ignore[assignment]
            for chunk, res in pairs:
                results[chunk] = res
        elif kind == "tell" and answer:
            self.meter.worker_sent(w, len(answer.encode()))
            if answer != extra and not covered:
                log(f"ray: worker {w} replica hash {answer[:12]} != coordinator {extra[:12]}; sending the full state")
                self._sync(w, state, blob_cache)

    # -- stragglers -----------------------------------------------------------------------------------
    def chunk_timeout(self) -> float:
        """Seconds after which a chunk is also given to another worker:
        ``max(chunk_timeout, chunk_timeout_factor x median(last CHUNK_TIME_WINDOW chunk times))``."""
        b = self.cfg.backend
        median = statistics.median(self._chunk_times) if self._chunk_times else 0.0
        return max(b.chunk_timeout, b.chunk_timeout_factor * median)

    def _back_up_stragglers(self, state, queue: deque, results: dict, now: float) -> float:
        """Copy every chunk of this generation in flight for longer than the timeout to the head of the queue;
        returns the seconds until the next chunk in flight reaches the timeout (inf when none will)."""
        timeout = self.chunk_timeout()
        wait = math.inf
        for ref, t0 in self._chunk_t0.items():
            if ref in self._backed_up:
                continue
            _, w, _, extra = self._calls[ref]
            if extra[0] != state.generation or extra[1] in results:
                continue
            left = t0 + timeout - now
            if left > 0:
                wait = min(wait, left)
                continue
            self._backed_up.add(ref)
            if self._requeue(extra, state, queue, results):
                self.straggler_chunks += 1
                log(f"ray: worker {w} (pid {self.pids[w]}) has not answered chunk {extra[1]} of generation "
                    f"{extra[0]} within {timeout:.1f} s; another worker evaluates it too")
        return wait

    # -- one generation -----------------------------------------------------------------------------
    def evaluate(self, state: State) -> list:
        ray = self.ray
        g = state.generation
        n = self.evaluator.num_chunks
        queue: deque = deque(range(n))
        results: dict[int, Any] = {}
        blob_cache: dict = {}
        self._busy_seconds = Counter()
        # answers of the last generation's tells (and syncs) that are already in
        if self._calls:
            done, _ = ray.wait(list(self._calls), num_returns=len(self._calls), timeout=0)
            for ref in done:
                self._answer(ref, state, queue, results, blob_cache)
        while len(results) < n:
            free = [w for w in range(self.workers) if w not in self.busy and w not in self._syncing]
            for w in free:
                while queue and queue[0] in results:  # a copy whose original answered meanwhile
                    queue.popleft()
                if not queue:
                    break
                c = queue.popleft()
                self._call("chunk", w, "evaluate", g, [c], extra=(g, c))
                self.meter.worker_received(w, len(dumps((g, [c]))))
                self.busy[w] = c
            wait = self._back_up_stragglers(state, queue, results, time.monotonic())
            if queue and any(w not in self.busy and w not in self._syncing for w in range(self.workers)):
                continue  # a chunk was just copied to the queue and a worker is free to take it
            done, _ = ray.wait(list(self._calls), num_returns=1, timeout=None if math.isinf(wait) else wait)
            for ref in done:
                self._answer(ref, state, queue, results, blob_cache)
        out = [results[c] for c in range(n)]
        # the evaluation on the critical path: the worker that spent longest evaluating this generation
        self.eval_seconds = max(self._busy_seconds.values(), default=0.0)
        self._steps = int(sum(int(r.steps.sum()) for r in out))
        return out

    def tell(self, fitness: Any, obs_delta: Any, state: State) -> None:
        want = state.generation % self.hash_every == 0
        expected = params_hash(self.evaluator.mean(state)) if want else None
        blob = encode_tell(state.generation - 1, fitness, self._steps, obs_delta)
        arg = self.ray.put(blob) if len(blob) > 100_000 else blob
        for w in range(self.workers):
            self._call("tell", w, "tell", arg, want, extra=expected, retry=True)
            self.meter.worker_received(w, len(blob))
        self.meter.end()

    def comm_metrics(self) -> dict[str, float]:
        return self.meter.metrics()


@register("ray")
def make_ray(cfg: Any, evaluator: ReplicaLike,
             replica_factory: Callable[[Any], ReplicaLike] | None = None) -> RayBackend:
    return RayBackend(cfg, evaluator, replica_factory)
