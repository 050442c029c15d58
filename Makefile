# The two commands of the README. Both install what they need into ./.venv first.
.PHONY: run test bench

run:   ## install, then train the default job: configs/cartpole.yaml on the local backend, TensorBoard logs in runs/
	bash scripts/setup.sh run

test:  ## install (Python packages + Debian SLURM), then run the whole test suite
	bash scripts/setup.sh test

bench: ## the benchmarks under bench/ (each prints its figures; see docs/BENCHMARKS.md)
	for b in bench/*.py; do case $$b in */_*) ;; *) .venv/bin/python $$b || exit 1;; esac; done
