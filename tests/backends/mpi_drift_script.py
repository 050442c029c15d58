"""Run under ``mpiexec -n 2`` by test_mpi_backend.py: rank 1's replica drifts (its mean shifted); the hash
comparison in ``MPIBackend.tell`` finds it and rank 1 adopts rank 0's full state. Prints one line per rank."""
import sys

from esrun.backends import get_backend
from esrun.config import load_config
from esrun.digest import params_hash
from esrun.runner.replica import Replica

cfg = load_config(None, ["task.type=synthetic", "task.dim=10", "strategy.population=8", "backend.chunk_size=2",
                         "backend.type=mpi", "backend.hash_every=1", "budget.generations=2"])
evaluator = Replica(cfg)
backend = get_backend("mpi")(cfg, evaluator)
state = backend.start(evaluator.init_state()) or evaluator.init_state()
fitness, steps, obs = evaluator.combine(backend.evaluate(state))
state, _ = evaluator.apply(state, fitness, steps, obs)
truth = params_hash(evaluator.mean(state))
if backend.rank == 1:
    state = state._replace(strategy=state.strategy._replace(mean=state.strategy.mean + 1.0))
replaced = backend.tell(fitness, obs, state)
final = replaced if replaced is not None else state
print(f"rank={backend.rank} replaced={replaced is not None} agrees={params_hash(evaluator.mean(final)) == truth} "
      f"syncs={backend.meter.syncs}", flush=True)
sys.exit(0)
