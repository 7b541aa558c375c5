#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pair_info
short_description: Read the state of a blue-green pair
version_added: 0.1.0
description:
  - Finds a service's blue-green pair from its tags and reports the live colour (what the production
    listener forwards to), the idle colour, both Auto Scaling groups, both target groups with every
    target's health and reason, and every listener and rule that forwards into the pair.
author:
  - cutover maintainers (@cutover)
extends_documentation_fragment:
  - cutover.bluegreen.pair
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Read the pair of the shop service
  cutover.bluegreen.pair_info:
    service: shop
  register: shop

- name: Show which colour is live
  ansible.builtin.debug:
    msg: "{{ shop.pair.live_color }} is live, {{ shop.pair.idle_color }} is idle"
"""

RETURN = r"""
pair:
  description: The pair as discovered.
  returned: always
  type: dict
  contains:
    service:
      description: The service name.
      type: str
      sample: shop
    live_color:
      description: The colour the production listener forwards (the most) traffic to.
      type: str
      sample: blue
    idle_color:
      description: The other colour.
      type: str
      sample: green
    split:
      description: Whether production traffic is split between both colours (a canary phase).
      type: bool
    production_weights:
      description: Weight per colour of the production listener's default action.
      type: dict
      sample: {"blue": 1}
    production_listener_arn:
      description: ARN of the production listener.
      type: str
    test_listener_arn:
      description: ARN of the test listener, if the pair has one.
      type: str
    load_balancer_arn:
      description: ARN of the load balancer.
      type: str
    listeners:
      description: Listeners of the load balancer with their role (production, test or none).
      type: list
      elements: dict
    forwarders:
      description: Every listener default action and rule that forwards into the pair, with its weights.
      type: list
      elements: dict
    colors:
      description: Per colour, its target group, Auto Scaling group, targets and health counts.
      type: dict
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, discover_pair, pair_module, run


def main():
    module = pair_module(supports_check_mode=True)

    def operation():
        pair = discover_pair(module, client(module, "elbv2"), client(module, "autoscaling"))
        return dict(changed=False, pair=pair.to_dict())

    run(module, operation)


if __name__ == "__main__":
    main()
