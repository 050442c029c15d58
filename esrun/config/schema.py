"""The run configuration as typed, validated data.

A config is YAML with the sections below; any key can be overridden on the command line as
``section.key=value``. Validation happens before any work starts (:func:`esrun.config.load.load_config`);
unknown keys, wrong types and out-of-range values become one-line :class:`ConfigError` messages.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class GymTaskConfig(_Section):
    """A Gymnasium environment, stepped as one vector environment per evaluation chunk."""

    type: Literal["gym"] = "gym"
    env_id: str = Field("CartPole-v1", description="Gymnasium id, e.g. CartPole-v1, Pendulum-v1, Hopper-v5")
    episodes_per_member: int = Field(1, ge=1, description="episodes averaged into one member's fitness")
    max_episode_steps: int | None = Field(None, ge=1, description="truncate episodes (default: the env's)")
    obs_norm: bool = Field(False, description="normalize observations with running statistics")
    vector_width: int | None = Field(
        None, ge=1, description="environments stepped together per chunk (default: all episodes of a chunk)"
    )
    eval_episodes: int = Field(10, ge=1, description="episodes of the mean policy per evaluation")
    eval_every: int = Field(5, ge=1, description="evaluate the mean policy every N generations")
    engine: Literal["gymnasium", "mujoco"] = Field(
        "gymnasium", description="gymnasium: Gymnasium vector envs in this process; mujoco: Gymnasium's MuJoCo "
        "locomotion envs (Swimmer/Hopper/HalfCheetah/Walker2d/Ant/Humanoid-v5) stepped by mj_step on task.workers "
        "processes"
    )
    workers: int | None = Field(None, ge=1, description="engine mujoco: stepping processes (default: all cores)")
    reward_shift: float = Field(
        0.0, description="subtracted from every training step's reward (ARS removes the survival bonus: 1 on "
        "Hopper/Walker2d/Ant/Humanoid); evaluation returns are not shifted"
    )
    obs_clip: float | None = Field(
        5.0, gt=0.0, description="with obs_norm: normalized observations clipped to [-obs_clip, obs_clip]; null = "
        "not clipped (ARS, Mania et al. 2018)"
    )
    max_failed_generations: int = Field(
        3, ge=1, description="stop when every member has failed (raised / non-finite) this many generations in a row"
    )


class JaxEnvTaskConfig(_Section):
    """A JAX-native environment from envs/ (ids under esrun/): the whole rollout is one jitted scan."""

    type: Literal["jax_env"] = "jax_env"
    env_id: str = Field("esrun/CartPole-v1", description="a JAX-native environment id from envs/")
    episodes_per_member: int = Field(1, ge=1)
    max_episode_steps: int | None = Field(None, ge=1)
    eval_episodes: int = Field(10, ge=1)
    eval_every: int = Field(5, ge=1)
    max_failed_generations: int = Field(
        3, ge=1, description="stop when every member has failed (raised / non-finite) this many generations in a row"
    )


class SyntheticTaskConfig(_Section):
    """A synthetic objective over R^dim, minimized (esrun maximizes its negation)."""

    type: Literal["synthetic"] = "synthetic"
    objective: str = Field("sphere", description="sphere | rastrigin | rosenbrock | ackley | styblinski_tang")
    dim: int = Field(10, ge=1, description="number of parameters")
    init_scale: float = Field(3.0, ge=0.0, description="x0 ~ Uniform(-init_scale, init_scale)")
    eval_every: int = Field(1, ge=1, description="record the objective at the mean every N generations")
    max_failed_generations: int = Field(
        3, ge=1, description="stop when every member has failed (raised / non-finite) this many generations in a row"
    )


class BraxTaskConfig(_Section):
    """A Brax environment (brax >= 0.14, Python >= 3.11): the whole rollout is one jitted program, the chunk's
    members sharded over all local JAX devices."""

    type: Literal["brax"] = "brax"
    env_name: str = Field("hopper", description="Brax env: ant | halfcheetah | hopper | humanoid | walker2d | "
                          "swimmer | reacher | inverted_pendulum | fast | ...")
    backend: Literal["generalized", "positional", "spring", "mjx"] = Field(
        "generalized", description="Brax physics pipeline (mjx = MuJoCo XLA)")
    episode_length: int = Field(1000, ge=1, description="env steps per episode before truncation")
    action_repeat: int = Field(1, ge=1, description="env steps per policy action (divides episode_length)")
    episodes_per_member: int = Field(1, ge=1, description="episodes averaged into one member's fitness")
    obs_norm: bool = Field(True, description="normalize observations with running statistics")
    obs_clip: float | None = Field(
        5.0, gt=0.0, description="with obs_norm: normalized observations clipped to [-obs_clip, obs_clip]; null = "
        "not clipped (ARS, Mania et al. 2018)"
    )
    eval_episodes: int = Field(10, ge=1, description="episodes of the mean policy per evaluation")
    eval_every: int = Field(5, ge=1, description="evaluate the mean policy every N generations")
    max_failed_generations: int = Field(
        3, ge=1, description="stop when every member has failed (raised / non-finite) this many generations in a row"
    )

    @model_validator(mode="after")
    def _repeat_divides(self):
        if self.episode_length % self.action_repeat:
            raise ValueError(f"task.action_repeat = {self.action_repeat}: must divide task.episode_length = "
                             f"{self.episode_length}")
        return self


TaskConfig = Annotated[GymTaskConfig | JaxEnvTaskConfig | SyntheticTaskConfig | BraxTaskConfig,
                       Field(discriminator="type")]


class PolicyConfig(_Section):
    type: Literal["mlp", "linear"] = Field("mlp", description="mlp | linear (ignored by synthetic tasks)")
    hidden: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [32, 32])
    activation: Literal["tanh", "relu", "elu", "gelu", "sigmoid"] = "tanh"
    head: Literal["auto", "discrete", "continuous"] = Field("auto", description="auto: from the action space")
    init_scale: float = Field(
        1.0, ge=0.0, description="scale of the initial weights (fan-in normalised); 0 = all zeros (ARS's M = 0)"
    )
    squash: Literal["tanh", "clip", "none"] = Field(
        "tanh", description="continuous head: tanh into the action bounds, clip to them, or none (the raw output "
        "goes to the env, as ARS's M x: MuJoCo clamps ctrl, Gymnasium's control cost sees the raw action)"
    )
    bias: bool = Field(True, description="bias terms in every layer; false: a linear policy is ARS's M x, no bias")


class StrategyConfig(_Section):
    name: str = Field("openai_es",
                      description="openai_es | pgpe | snes | cma_es | ... | evosax/<Name> (any evosax algorithm)")
    population: int = Field(256, gt=0, description="members per generation")
    sigma: float = Field(0.1, gt=0.0, description="perturbation scale (initial std for evosax strategies)")
    sigma_decay: float = Field(1.0, gt=0.0, le=1.0, description="sigma <- max(sigma * decay, sigma_min) per gen")
    sigma_min: float = Field(0.0, ge=0.0)
    antithetic: bool = Field(True, description="mirrored pairs +eps, -eps (population must be even)")
    fitness_shaping: Literal["centered_rank", "z_score", "raw"] = "centered_rank"
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = Field(0.01, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum")
    weight_decay: float = Field(0.0, ge=0.0, description="L2 coefficient: grad <- grad - wd * mean")
    tell_chunk: int = Field(
        32, gt=0, description="noise vectors regenerated per step of the chunked update (memory ~ 16 B x chunk x P)"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="evosax algorithm options (constructor arguments and scalar params, "
        "e.g. {crossover_rate: 0.5}); checked against the algorithm when it is built"
    )
    noise: Literal["counter", "table"] = Field(
        "counter", description="counter: draw each noise vector from (key, generation, index); table: slices of "
        "one shared table per host (faster update for large policies; docs/backends.md)"
    )
    noise_table_size: int = Field(
        2**26, ge=1, le=2**31 - 1, description="noise: table: float32 entries of the shared table (4 B each; "
        "default 2**26 = 256 MiB per host); must be >= the number of parameters"
    )

    top_directions: int | None = Field(
        None, ge=1, description="ars: keep the b best of the population/2 directions by max(r+, r-) (unset: all)"
    )

    @model_validator(mode="after")
    def _even_population(self):
        if self.antithetic and self.population % 2:
            raise ValueError(f"strategy.population = {self.population}: must be even with antithetic sampling")
        return self

    @model_validator(mode="after")
    def _ars_directions(self):
        if self.name != "ars":
            if self.top_directions is not None:
                raise ValueError(f"strategy.top_directions is used by strategy.name = ars only, not {self.name!r}")
            return self
        if not self.antithetic:
            raise ValueError("strategy.antithetic = false: ars evaluates every direction with both signs")
        if self.top_directions is not None and self.top_directions > self.population // 2:
            raise ValueError(
                f"strategy.top_directions = {self.top_directions}: at most population / 2 = "
                f"{self.population // 2} directions"
            )
        return self


class BackendConfig(_Section):
    type: Literal["local", "ray", "mpi"] = "local"
    workers: int = Field(1, ge=1, description="Ray actors (MPI: the number of ranks decides)")
    address: str | None = Field(None, description="Ray: unset = local ray.init; 'auto' or host:port")
    chunk_size: int | None = Field(None, ge=1, description="members per evaluation chunk (divides population)")
    hash_every: int = Field(10, ge=1, description="compare replica hashes every N generations")
    chunk_timeout: float = Field(60.0, gt=0, description="Ray: a chunk not answered after max(this many seconds, "
                                 "chunk_timeout_factor x median chunk time) is also given to another worker")
    chunk_timeout_factor: float = Field(10.0, ge=1, description="Ray: k in the straggler timeout "
                                        "max(chunk_timeout, k x median of the last 64 chunk times)")


class BudgetConfig(_Section):
    generations: int | None = Field(None, ge=1)
    env_steps: int | None = Field(None, ge=1)
    evaluations: int | None = Field(None, ge=1, description="fitness evaluations (population members)")
    wall_seconds: float | None = Field(None, gt=0)
    target_return: float | None = Field(None, description="stop when the evaluation return reaches this")

    @model_validator(mode="after")
    def _some_budget(self):
        if all(v is None for v in (self.generations, self.env_steps, self.evaluations, self.wall_seconds)):
            raise ValueError("budget: set at least one of generations, env_steps, evaluations, wall_seconds")
        return self


class LoggingConfig(_Section):
    dir: str = Field("runs", description="parent of the run directory")
    tensorboard: bool = True
    progress: bool = Field(True, description="live progress line on the console")
    log_every: int = Field(1, ge=1)
    checkpoint_every: int = Field(25, ge=1, description="checkpoint every N generations (and at the end)")
    video_every: int = Field(0, ge=0, description="TensorBoard: a GIF of one episode of the mean policy every N "
                             "evaluations (eval/video; Gymnasium tasks that render); 0 = off")
    keep_checkpoints: int = Field(3, ge=1, description="checkpoints kept (the newest); --resume falls back to "
                                  "an older one when the newest is corrupt")


class Config(_Section):
    name: str = Field("run", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    seed: int = Field(0, ge=0)
    task: TaskConfig = Field(default_factory=GymTaskConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    backend: BackendConfig = Field(default_factory=BackendConfig)
    budget: BudgetConfig = Field(default_factory=lambda: BudgetConfig(generations=100))
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _chunking(self):
        c = self.backend.chunk_size
        if c is not None and self.strategy.population % c:
            raise ValueError(
                f"backend.chunk_size = {c}: must divide strategy.population = {self.strategy.population}"
            )
        return self

    def chunk_size(self) -> int:
        """Members per evaluation chunk: the configured value, else the largest divisor of the population <= 64."""
        if self.backend.chunk_size is not None:
            return self.backend.chunk_size
        pop = self.strategy.population
        return max(d for d in range(1, min(pop, 64) + 1) if pop % d == 0)
