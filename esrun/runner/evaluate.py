"""`esrun eval RUN_DIR`: the return of a run's final policy over N episodes, optionally with a video."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from esrun.errors import UserError
from esrun.runner import checkpoint

if TYPE_CHECKING:
    from jax.typing import ArrayLike

    from esrun.tasks.obs_norm import ObsStats


def _load_run(run_dir: Path):
    """The run's config and a Replica for it, and the state of its newest intact checkpoint."""
    import sys

    from esrun.config.load import read_yaml
    from esrun.runner.names import validate
    from esrun.runner.replica import Replica

    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"'{run_dir}' is not a run directory (no config.yaml)")
    cfg = validate(read_yaml(run_dir / "config.yaml"))
    ev = Replica(cfg)
    try:
        saved, _ = checkpoint.load(run_dir, ev.init_state(),
                                   warn=lambda msg: print(f"esrun: warning: {msg}", file=sys.stderr, flush=True))
    except BaseException:
        ev.task.close()
        raise
    return cfg, ev, saved


def evaluate_run(run_dir: Path, episodes: int, video: str | None = None, seed: int = 12345) -> dict:
    """Mean and std of the final policy's return over ``episodes`` (seeds from ``seed``)."""
    import jax

    if episodes < 1:
        raise UserError(f"--episodes = {episodes}: must be >= 1")
    cfg, ev, saved = _load_run(run_dir)
    if not ev.task.has_eval:
        raise UserError(f"task of '{run_dir}' has no evaluation return")
    mean = np.asarray(ev.strategy.mean(saved.strategy), np.float32)
    returns = ev.task.evaluate_policy(mean, jax.random.PRNGKey(seed), episodes, saved.obs_stats)
    if video:
        frames = render_frames(ev.task, mean, saved.obs_stats, seed)
        save_video(frames, video)
        if cfg.logging.tensorboard:  # also in the run's TensorBoard images, at the checkpoint's generation
            from esrun.logging.tensorboard import TensorBoardSink

            sink = TensorBoardSink(run_dir)
            sink.video("eval/video", frames[::VIDEO_STRIDE][:VIDEO_MAX_FRAMES], int(saved.generation))
            sink.close()
    ev.task.close()
    return {"mean": float(np.mean(returns)), "std": float(np.std(returns)), "episodes": episodes,
            "returns": [float(r) for r in returns]}


VIDEO_STRIDE, VIDEO_MAX_FRAMES = 2, 150
"""TensorBoard videos keep every 2nd frame, at most 150 (a short GIF of a few hundred kB)."""


def render_frames(task: Any, params: ArrayLike, obs_stats: ObsStats | None, seed: int, max_frames: int = 1000
                  ) -> np.ndarray:
    """One episode of the policy ``params`` as rgb frames ``[T, H, W, 3]`` uint8 (Gymnasium tasks that render).

    ``task``: any task with ``env_id``, ``policy`` and ``spec`` (GymTask, the MuJoCo engine's task).
    """
    import os
    import warnings

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
    import gymnasium as gym
    import jax.numpy as jnp

    env_id = getattr(task, "env_id", None)
    if env_id is None or not hasattr(task, "policy"):
        raise UserError("--video needs a Gymnasium task")
    try:
        env = gym.make(env_id, render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        frames: list[Any] = [env.render()]
    except Exception as exc:  # noqa: BLE001 - the environment cannot render here
        raise UserError(f"{env_id} cannot render rgb frames: {str(exc).splitlines()[0]}") from None
    norm_mean, norm_std = (obs_stats.normalizer() if (obs_stats is not None and getattr(task, "obs_norm", False))
                           else (0.0, 1.0))
    p = jnp.asarray(params)
    for _ in range(max_frames):
        x = (np.asarray(obs, np.float32) - norm_mean) / norm_std
        clip = getattr(task, "obs_clip", 5.0)  # as the task's own policy input (task.obs_clip; None: not clipped)
        if getattr(task, "obs_norm", False) and clip is not None:
            x = np.clip(x, -clip, clip)
        action = np.asarray(task.policy.apply(p, jnp.asarray(x)))
        obs, _, term, trunc, _ = env.step(int(action) if task.spec.kind == "discrete" else action)
        frames.append(env.render())
        if term or trunc:
            break
    env.close()
    if frames[0] is None:
        raise UserError(f"{env_id} returned no rgb frames")
    return np.stack(frames).astype(np.uint8)


def save_video(frames: np.ndarray, path: str) -> None:
    """Frames written with imageio (mp4 via ffmpeg, or gif by extension)."""
    import imageio.v2 as imageio

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if str(path).endswith(".gif"):
        imageio.mimsave(path, list(frames), duration=1 / 30)
    else:
        imageio.mimsave(path, list(frames), fps=30, macro_block_size=1)


def write_video(task: Any, params: ArrayLike, obs_stats: ObsStats | None, path: str, seed: int,
                max_frames: int = 1000) -> None:
    """One episode's rgb frames written to ``path`` (mp4 or gif by extension)."""
    save_video(render_frames(task, params, obs_stats, seed, max_frames), path)
