"""A blue-green pair of Auto Scaling groups behind one ALB, for cutover.bluegreen."""

from .component import RELEASE_OWNED, TYPE, BlueGreenPair
from .config import (
    NAMESPACE,
    BlueGreenPairArgs,
    ConfigError,
    HealthCheck,
    config_defaults,
    config_schema,
    parse_config,
    read_stack_config,
    strip_namespace,
)

__all__ = [
    "NAMESPACE",
    "RELEASE_OWNED",
    "TYPE",
    "BlueGreenPair",
    "BlueGreenPairArgs",
    "ConfigError",
    "HealthCheck",
    "config_defaults",
    "config_schema",
    "parse_config",
    "read_stack_config",
    "strip_namespace",
]
