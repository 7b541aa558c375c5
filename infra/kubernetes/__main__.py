"""cutover on Kubernetes: one blue-green app per stack.

The keys are documented in Pulumi.yaml; their defaults live in bluegreen_app/config.py.
"""

import pulumi

from bluegreen_app import NAMESPACE, BlueGreenApp, parse_config, read_stack_config

# Validate first: bad input fails here, before a single resource is registered. Values come
# through pulumi.Config; the keys the stack sets (what the CLI hands over in PULUMI_CONFIG,
# read by pulumi.runtime.get_config_env) only serve to refuse a key of ours that we do not know.
args = parse_config(read_stack_config(pulumi.Config(NAMESPACE).get, pulumi.runtime.get_config_env()))
app = BlueGreenApp(args.app, args)
for key, value in app.outputs.items():
    pulumi.export(key, value)
