#!/usr/bin/env bash
# The GPU check of issue 10, one script of at most 8 minutes wall (each stage has its own timeout):
#   0. a Python with esrun + brax + CUDA JAX (see "Environment" below)
#   1. devices (nvidia-smi, jax.devices())
#   2. Brax Ant: compile time (first call) and steady env steps/s of one chunk of POP members x 1000 steps,
#      sharded over all local GPUs                                   (bench/gpu_stages.py chunk)
#   3. a Gymnasium MuJoCo task (Hopper-v5) with the policy on the GPU: steady env steps/s of a chunk
#   4. Brax Ant trained by configs/brax_ant.yaml until the evaluation return reaches 3,000 or CAP seconds pass:
#      prints the time it took, or what it reached
#
#   bash bench/gpu_suite.sh               # on a GPU machine, from the repository root
#   bash bench/gpu_suite.sh --cpu-smoke   # the same stages with tiny sizes on the CPU (tests the script itself;
#                                         # TIMEOUT_SCALE=4 on a heavily loaded machine)
#
# Environment: uses $ESRUN_PYTHON if set, else .venv/bin/python if it imports jax and brax, else python3. When
# that Python has no GPU backend, the script tries `pip install -e ".[brax,cuda]"` into a fresh venv under
# $ESRUN_GPU_VENV (default /tmp/esrun-gpu-venv), capped at INSTALL_S seconds; without network access (or if the
# install fails) it says so and runs every stage on whatever JAX finds (the CPU), marked device=cpu.
set -uo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
[[ "${1:-}" == "--cpu-smoke" ]] && SMOKE=1
START=$SECONDS
# Stage timeouts (and the 8-minute total) multiplied by TIMEOUT_SCALE: for --cpu-smoke on a loaded machine only.
SCALE=${TIMEOUT_SCALE:-1}
t() { echo $(( $1 * SCALE )); }
INSTALL_S=${INSTALL_S:-150}
OUT=${OUT_DIR:-$(mktemp -d /tmp/esrun-gpu-suite.XXXX)}

if (( SMOKE )); then
  export JAX_PLATFORMS=cpu
  POP=8; EP=50; BRAX_OVR=(configs/brax_tiny.yaml); GYM_POP=4; GYM_STEPS=50; CAP=60; TARGET=40
  TRAIN_OVR=(configs/brax_tiny.yaml budget.generations=50)
else
  POP=${POP:-2048}; EP=${EP:-1000}; BRAX_OVR=(configs/brax_ant.yaml); GYM_POP=${GYM_POP:-64}; GYM_STEPS=1000
  CAP=${CAP:-170}; TARGET=3000; TRAIN_OVR=(configs/brax_ant.yaml budget.generations=100000)
fi

# Stage 4 runs the program stage 2 compiled (same config, chunk and episode length): one persistent cache.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$OUT/jax_cache} JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0

say() { printf '\n== [%4ds] %s\n' "$((SECONDS - START))" "$*"; }
has_stack() { "$1" -c 'import jax, brax, esrun' >/dev/null 2>&1; }
has_gpu() { "$1" -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' >/dev/null 2>&1; }

say "0. environment"
PY=${ESRUN_PYTHON:-}
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]] && has_stack .venv/bin/python; then PY=.venv/bin/python; else PY=python3; fi
fi
if (( ! SMOKE )) && ! has_gpu "$PY"; then
  VENV=${ESRUN_GPU_VENV:-/tmp/esrun-gpu-venv}
  echo "$PY has no JAX GPU backend; installing .[brax,cuda] into $VENV (at most ${INSTALL_S}s)"
  if timeout "$INSTALL_S" bash -c "python3 -m venv '$VENV' && '$VENV/bin/pip' install -q -e '.[brax,cuda]'" \
      && has_stack "$VENV/bin/python"; then
    PY=$VENV/bin/python
  else
    echo "install failed or timed out (no network?): continuing with $PY; stages run on its default JAX backend"
  fi
fi
has_stack "$PY" || { echo "FATAL: $PY cannot import jax, brax and esrun; set ESRUN_PYTHON"; exit 1; }
echo "python: $PY"; export PATH="$(dirname "$PY"):$PATH"

say "1. devices"
timeout "$(t 20)" nvidia-smi -L 2>/dev/null || echo "(no nvidia-smi)"
timeout "$(t 60)" "$PY" bench/gpu_stages.py devices || echo "devices stage failed"

COMMON=(logging.progress=false logging.tensorboard=false)
say "2. Brax: compile + steady steps/s, one chunk of $POP members x $EP steps"
timeout "$(t 150)" "$PY" bench/gpu_stages.py chunk "${BRAX_OVR[@]}" "strategy.population=$POP" "backend.chunk_size=$POP" \
  "task.episode_length=$EP" || echo "brax stage failed or timed out (150 s)"

say "3. Gymnasium Hopper-v5 (MuJoCo on the CPU), policy on the default JAX device: steady steps/s"
timeout "$(t 60)" "$PY" bench/gpu_stages.py chunk configs/cartpole.yaml task.type=gym task.env_id=Hopper-v5 \
  task.obs_norm=true "task.max_episode_steps=$GYM_STEPS" policy.type=mlp "strategy.population=$GYM_POP" \
  "backend.chunk_size=$GYM_POP" task.vector_width=null || echo "gymnasium stage failed or timed out (60 s)"

LEFT=$(( $(t 470) - (SECONDS - START) ))
CAP=$(( CAP < LEFT - 40 ? CAP : LEFT - 40 ))
say "4. Brax Ant until eval return >= $TARGET or ${CAP}s of training"
if (( CAP < 30 )); then
  echo "skipped: only ${LEFT}s left of the 8 minutes"
else
  timeout "$(t $(( CAP + 40 )))" "$PY" -m esrun train "${TRAIN_OVR[@]}" "budget.wall_seconds=$CAP" \
    "budget.target_return=$TARGET" task.eval_every=2 "logging.dir=$OUT" "${COMMON[@]}" 2>&1 | tail -3
  "$PY" - "$OUT" "$TARGET" <<'EOF'
import json, pathlib, sys
runs = sorted(pathlib.Path(sys.argv[1]).glob("*/summary.json"))
if not runs:
    sys.exit("no summary: the run did not finish within its timeout")
s = json.loads(runs[-1].read_text())
reached = s["stop_reason"].startswith("target_return")
print(json.dumps({"reached_target": reached, "target": float(sys.argv[2]), "wall_seconds": s["wall_seconds"],
                  "final_eval_return": s["final_eval_return"], "generations": s["generations"],
                  "env_steps": s["env_steps"], "stop_reason": s["stop_reason"]}))
EOF
fi
say "done in $((SECONDS - START)) s (runs under $OUT)"
