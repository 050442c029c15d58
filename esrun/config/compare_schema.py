"""The ``esrun compare`` configuration as typed, validated data (pydantic, ``extra="forbid"`` everywhere).

It lives beside the ``esrun train`` schema (``esrun.config.schema``, whose PolicyConfig a gym task reuses); the
loader is ``esrun.compare.config`` (through ``esrun.config.load``).

    name: bernoulli_toy            run directory runs/<name>/
    seed: 0                        first seed; seeds k = seed, seed + 1, ..., seed + seeds - 1
    seeds: 3
    task: {type: bernoulli_toy, target: 0.45}       one of TaskConfig's types (the ``type`` key picks it)
    estimators:                    one row of the results each; ``label`` (default: the name) names the row
      - {name: score_function, label: REINFORCE, num_samples: 2}
      - {name: score_function, label: REINFORCE+mean, num_samples: 2, options: {baseline: mean}}
      - {name: disarm, num_samples: 1}
    budget: {evaluations: 4000}    calls of f per estimator and seed (gym tasks: env_steps)
    samples: 8                     default num_samples of an estimator entry
    optimizer: {name: adam, learning_rate: 0.05}
    diagnostics: {points: 2, repeats: 500, reference_samples: 200000}
    backend: {type: local, workers: 1}               local | ray | mpi, as for ``esrun train``
    logging: {dir: runs, tensorboard: true, points: 100}
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from esrun.config.schema import PolicyConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyntheticTask(_Section):
    """Minimize E_{x ~ N(mean, sigma^2 I)} f(x) over the mean (sigma fixed); the final objective is f(mean)."""

    type: Literal["synthetic"] = "synthetic"
    objective: Literal["sphere", "rastrigin", "rosenbrock", "noisy_quadratic", "quantized_sphere"] = Field(
        "sphere", description="f; noisy_quadratic = sum a_i x_i^2 / 2 + noise_std N(0,1); quantized_sphere = "
                              "sum round(x_i)^2 (piecewise constant: not differentiable)")
    dim: int = Field(10, ge=1, le=1000, description="dimension of x")
    sigma: float = Field(0.1, gt=0.0, description="fixed std of the Gaussian search distribution")
    init: float = Field(2.0, ge=0.0, description="x0 ~ Uniform(-init, init)^dim, the same for every seed")
    noise_std: float = Field(1.0, ge=0.0, description="noisy_quadratic: std of the additive noise of one call of f")
    condition: float = Field(10.0, ge=1.0, description="noisy_quadratic: a_i log-spaced from 1 to condition")


class BernoulliToyTask(_Section):
    """f(b) = (b - target)^2, b ~ Bernoulli(sigmoid(logit)) (the source's toy; Tucker et al., 2017)."""

    type: Literal["bernoulli_toy"] = "bernoulli_toy"
    target: float = Field(0.45, ge=0.0, le=1.0)
    init_logit: float = Field(0.0, description="starting logit (the diagnostics point)")


class BinaryTask(_Section):
    """A non-separable objective over {0,1}^dim: f(b) = b^T Q b / dim + c^T b (Q, c fixed by ``instance``)."""

    type: Literal["binary"] = "binary"
    dim: int = Field(8, ge=2, le=12, description="enumerated exactly: 2^dim states")
    instance: int = Field(0, ge=0, description="seed of Q and c")
    init_logit: float = 0.0


class CategoricalTask(_Section):
    """f(z) = sum_i <c_i, z_i> + sum_i z_i^T W z_{i+1} over num_vars one-hot variables of num_classes classes."""

    type: Literal["categorical"] = "categorical"
    num_vars: int = Field(3, ge=1, le=6)
    num_classes: int = Field(4, ge=2, le=8)
    instance: int = Field(0, ge=0, description="seed of c and W")

    @model_validator(mode="after")
    def _enumerable(self):
        if self.num_classes ** self.num_vars > 4096:
            raise ValueError(f"task: num_classes ** num_vars = {self.num_classes ** self.num_vars}: must be <= 4096 "
                             f"(the exact objective and gradient enumerate every state)")
        return self


class TopKTask(_Section):
    """Top-k subset selection: z = topk(theta + Gumbel noise), f(z) = -<w, z>; optimum -sum of the k largest w."""

    type: Literal["topk"] = "topk"
    n: int = Field(20, ge=2, le=1000)
    k: int = Field(5, ge=1)
    instance: int = Field(0, ge=0, description="seed of w")

    @model_validator(mode="after")
    def _k_below_n(self):
        if self.k >= self.n:
            raise ValueError(f"task.k = {self.k}: must be < task.n = {self.n}")
        return self


class VaeBinaryTask(_Section):
    """A VAE with Bernoulli latents on scikit-learn's binarized 8x8 digits (esrun.tasks.vae_binary): maximize ELBO."""

    type: Literal["vae_binary"] = "vae_binary"
    variant: Literal["linear", "nonlinear"] = Field(
        "linear", description="linear: one stochastic layer; nonlinear: two deterministic LeakyReLU layers each side")
    latents: int = Field(32, ge=1, le=512, description="Bernoulli latent variables D")
    hidden: int = Field(64, ge=1, le=1024, description="nonlinear: units of each deterministic hidden layer")
    batch_size: int = Field(50, ge=1, description="images per step (drawn with replacement)")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="x = 1[pixel / 16 > threshold]")
    test_every: int = Field(5, ge=2, description="image i is a test image when i % test_every == 0")
    init_seed: int = Field(0, ge=0, description="seed of the initial parameters (the same for every run seed)")
    eval_samples: int = Field(4, ge=1, le=1000, description="latent draws per image of the reported ELBO")
    diag_batch: int = Field(50, ge=1, le=1437, description="training images of the fixed diagnostics batch")
    reference_pairs: int = Field(2000, ge=1, description="DisARM pairs per image of the reference gradient")


class GymCompareTask(_Section):
    """A Gymnasium environment; every method runs through ``esrun.compare.rl.run_rl_method``."""

    type: Literal["gym"] = "gym"
    env_id: str = Field("CartPole-v1", description="Gymnasium id")
    policy: PolicyConfig = Field(default_factory=PolicyConfig)


TaskConfig = Annotated[SyntheticTask | BernoulliToyTask | BinaryTask | CategoricalTask | TopKTask | GymCompareTask
                       | VaeBinaryTask, Field(discriminator="type")]
TASK_MODELS = {m.model_fields["type"].default: m for m in
               (SyntheticTask, BernoulliToyTask, BinaryTask, CategoricalTask, TopKTask, GymCompareTask,
                VaeBinaryTask)}


class EstimatorEntry(_Section):
    name: str = Field(description="an estimator (esrun.compare.methods.METHODS) or, for gym tasks, an RL method")
    label: str | None = Field(None, min_length=1, pattern=r"^[A-Za-z0-9_+=\-][A-Za-z0-9_.+=\-]*$",
                                 description="row name and TensorBoard directory (default: name)")
    num_samples: int | None = Field(None, ge=1, description="samples (or antithetic pairs) per estimate")
    learning_rate: float | None = Field(None, gt=0.0, description="overrides optimizer.learning_rate")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options of the estimator")

    @property
    def row(self) -> str:
        return self.label or self.name


class BudgetSection(_Section):
    evaluations: int | None = Field(None, ge=1, description="calls of f per estimator and seed")
    env_steps: int | None = Field(None, ge=1, description="environment steps per method and seed (gym)")


class OptimizerSection(_Section):
    name: Literal["adam", "sgd"] = "adam"
    learning_rate: float = Field(0.05, gt=0.0)


class DiagnosticsSection(_Section):
    points: int = Field(2, ge=1, le=20, description="fixed points: the start and points-1 drawn ones")
    repeats: int = Field(300, ge=2, description="independent estimates per point (variance, bias, cosine)")
    reference_samples: int = Field(100_000, ge=100, description="samples of the reference gradient where "
                                                                "no exact one exists")


class BackendSection(_Section):
    type: Literal["local", "ray", "mpi"] = "local"
    workers: int = Field(1, ge=1, description="Ray: jobs in flight (MPI: the number of ranks decides)")
    address: str | None = Field(None, description="Ray: unset = local ray.init; 'auto' or host:port")


class LoggingSection(_Section):
    dir: str = Field("runs", description="parent of the run directory")
    tensorboard: bool = True
    points: int = Field(100, ge=2, le=10_000, description="points per learning curve")


class CompareConfig(_Section):
    name: str = Field("compare", min_length=1, pattern=r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")
    seed: int = Field(0, ge=0)
    seeds: int = Field(3, ge=1, le=100)
    task: TaskConfig = Field(default_factory=BernoulliToyTask)
    estimators: list[EstimatorEntry] = Field(min_length=1)
    budget: BudgetSection = Field(default_factory=BudgetSection)
    samples: int = Field(8, ge=1, description="default num_samples of an estimator entry")
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    diagnostics: DiagnosticsSection = Field(default_factory=DiagnosticsSection)
    backend: BackendSection = Field(default_factory=BackendSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)

    @model_validator(mode="after")
    def _check(self):
        rows = [e.row for e in self.estimators]
        dup = sorted({r for r in rows if rows.count(r) > 1})
        if dup:
            raise ValueError(f"estimators: label {dup[0]!r} is used twice; give each entry its own label")
        if self.task.type == "gym":
            if self.budget.env_steps is None:
                raise ValueError("budget.env_steps: required for a gym task (the x axis is environment steps)")
            if self.budget.evaluations is not None:
                raise ValueError("budget.evaluations: gym tasks are budgeted in env_steps only")
        else:
            if self.budget.evaluations is None:
                raise ValueError(f"budget.evaluations: required for a {self.task.type} task")
            if self.budget.env_steps is not None:
                raise ValueError("budget.env_steps: only gym tasks are budgeted in env_steps")
        return self

    def seed_list(self) -> list[int]:
        return [self.seed + k for k in range(self.seeds)]
