"""cutover: one blue-green pair per stack.

The keys are documented in Pulumi.yaml; their defaults live in bluegreen_pair/config.py.
"""

import pulumi
import pulumi_aws as aws

from bluegreen_pair import NAMESPACE, BlueGreenPair, parse_config, read_stack_config

# Validate first: bad input fails here, before a single resource is registered. Values come
# through pulumi.Config; the keys the stack sets (what the CLI hands over in PULUMI_CONFIG,
# read by pulumi.runtime.get_config_env) only serve to refuse a key of ours that we do not know.
args = parse_config(read_stack_config(pulumi.Config(NAMESPACE).get, pulumi.runtime.get_config_env()))
pair = BlueGreenPair(args.service, args)
for key, value in pair.outputs.items():
    pulumi.export(key, value)
# Where the pair lives, for the playbooks' region: the aws provider's own config (aws:region,
# else AWS_REGION / AWS_DEFAULT_REGION).
pulumi.export("region", aws.config.region)
