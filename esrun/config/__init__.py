"""Config schema, YAML loading, dotted overrides and validation."""
from esrun.config.load import ConfigError, dump_config, load_config, validate
from esrun.config.schema import (
    BackendConfig,
    BudgetConfig,
    Config,
    GymTaskConfig,
    JaxEnvTaskConfig,
    LoggingConfig,
    PolicyConfig,
    StrategyConfig,
    SyntheticTaskConfig,
)

__all__ = [
    "Config", "ConfigError", "load_config", "validate", "dump_config", "BackendConfig", "BudgetConfig",
    "GymTaskConfig", "JaxEnvTaskConfig", "LoggingConfig", "PolicyConfig", "StrategyConfig", "SyntheticTaskConfig",
]
