#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_teardown
short_description: Retire the expired standby colour of an app on Kubernetes
version_added: 0.1.0
description:
  - For each colour that is a standby (annotation C(cutover.bluegreen/state=standby)) whose retire-after time has
    passed, waits until no production Service's EndpointSlices hold any of its pods (drained), then scales its
    Deployment to zero replicas, keeping the Deployment and its image for a fast restore, and marks it
    C(cutover.bluegreen/state=retired) with the replicas it had.
  - Never touches the live colour, nor a colour any Service other than the preview Service selects, even with
    O(force); re-reads the Services right before scaling. A standby before its retire-after time is skipped unless
    O(force). A colour without the standby mark is skipped.
  - A re-run when nothing is due changes nothing.
author:
  - cutover maintainers (@cutover)
options:
  colors:
    description:
      - The colours to consider (V(blue), V(green), V(idle)); default both.
    type: list
    elements: str
  force:
    description:
      - Retire a standby before its retire-after time (never the live colour).
    type: bool
    default: false
  drain_timeout:
    description:
      - Seconds to wait for the colour's pods to leave every production Service's endpoints (0 to 3600).
    type: int
    default: 300
  wait:
    description:
      - Wait until the colour's pods have stopped (their preStop delay and grace period are honoured).
  wait_timeout:
    description:
      - Seconds to wait for the pods to stop (0 to 86400).
    default: 300
extends_documentation_fragment:
  - cutover.bluegreen.k8s_app
  - cutover.bluegreen.k8s_app.fence
  - cutover.bluegreen.wait
  - cutover.bluegreen.wait.optional
  - kubernetes.core.k8s_auth_options
notes:
  - Needs C(list) on Deployments, Services, Pods and EndpointSlices and C(patch) on the app's Deployments.
  - In check mode nothing is changed; the result says which colours would be retired.
"""

EXAMPLES = r"""
- name: Retire shop's expired standby
  cutover.bluegreen.k8s_teardown:
    app: shop
    namespace: shop
"""

RETURN = r"""
decisions:
  description: Per colour considered, C(action) (V(teardown) or V(skip)), the C(reason) and its C(retire_after).
  returned: success
  type: list
  elements: dict
torn_down:
  description:
    - The colours retired (C(color), C(deployment), C(replicas_before), C(drain_seconds), C(stop_seconds)).
  returned: success
  type: list
  elements: dict
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import k8s_retire, waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_module import run_step, step_module


def main():
    module = step_module(
        dict(
            colors=dict(type="list", elements="str"),
            force=dict(type="bool", default=False),
            drain_timeout=dict(type="int", default=300),
            **waits.argument_spec(300),
        ),
        supports_check_mode=True,
    )
    params = module.params

    def check():
        for color in params["colors"] or []:
            if color not in ("blue", "green", "idle"):
                raise CutoverError("colors may name blue, green or idle, got %r" % (color,))

    def tear_down(step):
        result = k8s_retire.teardown(
            step.client,
            step.pair,
            colors=params["colors"],
            force=params["force"],
            wait=params["wait"],
            drain_timeout=params["drain_timeout"],
            wait_timeout=params["wait_timeout"],
            **step.context,
        )
        if module._diff:
            colors = step.pair["colors"]
            torn = sorted({t["color"] for t in result["torn_down"]})
            result["diff"] = dict(
                before={c: {"replicas": colors[c]["replicas"], "state": colors[c]["state"]} for c in torn},
                after={c: {"replicas": 0, "state": "retired"} for c in torn},
            )
        return result

    run_step(module, tear_down, check)


if __name__ == "__main__":
    main()
