"""A blue-green app on Kubernetes (two Deployments, two Services), for cutover.bluegreen."""

from .component import RELEASE_OWNED, TYPE, BlueGreenApp
from .config import NAMESPACE, BlueGreenAppArgs, ConfigError, ReadinessProbe, defaults, parse_config, read_stack_config, strip_namespace
from .rbac import deployer_rules, granted

__all__ = [
    "NAMESPACE",
    "RELEASE_OWNED",
    "TYPE",
    "BlueGreenApp",
    "BlueGreenAppArgs",
    "ConfigError",
    "ReadinessProbe",
    "defaults",
    "deployer_rules",
    "granted",
    "parse_config",
    "read_stack_config",
    "strip_namespace",
]
