"""A blue-green pair of Auto Scaling groups behind one ALB, for cutover.bluegreen."""

from .component import RELEASE_OWNED, TYPE, BlueGreenPair
from .config import BlueGreenPairArgs, ConfigError, HealthCheck, parse_config, strip_namespace

__all__ = [
    "RELEASE_OWNED",
    "TYPE",
    "BlueGreenPair",
    "BlueGreenPairArgs",
    "ConfigError",
    "HealthCheck",
    "parse_config",
    "strip_namespace",
]
