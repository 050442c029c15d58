"""One ``task.engine: mujoco`` worker process (``python -m esrun.tasks.mujoco_worker``): whole episodes, here.

Messages are pickles, each preceded by its length (8 bytes, little endian), on stdin (requests) and stdout (answers):

    first request  (env_id, max_episode_steps, policy_cfg, obs_norm, obs_clip)  ->  "ready"
    then, per call (params [C, P], members [n], seeds [n], mean, std, slots, collect)  ->  Episodes
    EOF on stdin ends the process.

A call's jobs are claimed one at a time from the pipe whose read end is this process's only argument
(:class:`esrun.tasks.pipe_messages.JobQueue`): a worker with a free slot takes the next job, whatever member it is
(ES's antithetic pairs differ in episode length systematically, so a fixed split would leave one worker idle).

The worker builds the env model and the policy from the same config as the main process and runs
:class:`esrun.tasks.mujoco_episodes.EpisodeRunner`: one message each way per call (a generation's share of
episodes), nothing per env step. Started as ``-m esrun.tasks.mujoco_worker``, Python imports ``esrun`` first, which
sets esrun's XLA flags before JAX is loaded, as in the main process.
"""
from __future__ import annotations

import os
import sys

from esrun.tasks.pipe_messages import JobQueue, receive, send


def main() -> None:
    import signal

    import jax
    import jax.numpy as jnp

    # The policy call per env step is a tiny program: run it inline on this thread rather than handing it to the
    # CPU client's dispatch thread and waiting (bench/policy_call_latency.py, quiet 2-core VM: the same at 8 slots,
    # 20 % less at 32). This process only steps episodes, so nothing here overlaps with an asynchronous computation.
    jax.config.update("jax_cpu_enable_async_dispatch", False)

    from esrun.policies import ActionSpec, build_policy
    from esrun.tasks.mujoco_env import EnvModel
    from esrun.tasks.mujoco_episodes import EpisodeRunner, make_act

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the parent decides, EOF ends us
    queue = JobQueue(int(sys.argv[1]))
    fin, fout = sys.stdin.fileno(), os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything printed (MuJoCo's C warnings too) goes to stderr,
    sys.stdout = sys.stderr  # the answer pipe carries messages only
    try:
        env_id, max_steps, policy_cfg, obs_norm, obs_clip = receive(fin)
        env = EnvModel(env_id, max_steps)
        policy = build_policy(policy_cfg, env.obs_dim, ActionSpec.from_gym_space(env.action_space))
        runner = EpisodeRunner(env, make_act(policy, obs_norm, obs_clip))
        send(fout, "ready")
        while True:
            params, members, seeds, mean, std, slots, collect = receive(fin)
            send(fout, runner.run(jnp.asarray(params), members, seeds, mean, std, slots, collect, queue.claim))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
