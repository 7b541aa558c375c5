"""cutover: one blue-green pair per stack (see Pulumi.yaml for every config key)."""

import pulumi
from pulumi.runtime import config as runtime_config

from bluegreen_pair import BlueGreenPair, parse_config, strip_namespace


def stack_config() -> dict:
    """Every config value of the stack (the CLI passes them in PULUMI_CONFIG; tests set them directly)."""
    merged = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return merged


# Validate first: bad input fails here, before a single resource is registered.
args = parse_config(strip_namespace(stack_config()))
pair = BlueGreenPair(args.service, args)
for key, value in pair.outputs.items():
    pulumi.export(key, value)
