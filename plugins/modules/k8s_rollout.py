#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_rollout
short_description: Roll a release out on the idle colour of an app on Kubernetes and wait until it is ready
version_added: 0.1.0
description:
  - Sets the image of the app's container in the idle colour's Deployment and scales it to the live colour's
    replicas (or O(replicas)), optionally to O(preparation_replicas) first, and clears its standby marks.
  - Waits until the rollout is complete (this generation observed, every replica updated, ready and available, no
    pod of an older template left) and every pod of the colour runs the image and is Ready.
  - Fails early, naming each failing pod and its reason - at once for V(CrashLoopBackOff), V(ImagePullBackOff),
    V(ErrImagePull), V(InvalidImageName), V(CreateContainerConfigError) and V(CreateContainerError); after
    O(unhealthy_timeout) seconds for a pod that stays Pending (unschedulable, with the scheduler's message) or
    whose readiness probe keeps failing (with the kubelet's probe message).
  - Refuses the live colour, and a rollout while a Service other than the preview Service sends production traffic
    to the idle colour (the new pods would serve users before anything checked them).
  - A re-run with the same image and replicas changes nothing and only waits for readiness.
author:
  - cutover maintainers (@cutover)
options:
  image:
    description:
      - The image to roll out, like C(registry.example.com/shop:v2) (a tag or a digest). Omitted, the colour keeps its
        image and is only scaled.
    type: str
  replicas:
    description:
      - Pods to run (0 to 1000). Default the live colour's replicas.
    type: int
  preparation_replicas:
    description:
      - Scale to this many pods first (1 to 1000, fewer than O(replicas)), wait until they are Ready, then to
        O(replicas). Skipped when the colour already has at least this many.
    type: int
  color:
    description:
      - The colour to roll out. V(idle) is the colour the live Service does not select; naming the live colour fails.
    type: str
    choices: [idle, blue, green]
    default: idle
  wait:
    description:
      - Wait until the rollout is complete and every pod is Ready.
  wait_timeout:
    description:
      - Seconds to wait in all (0 to 86400).
  unhealthy_timeout:
    description:
      - Seconds a pod may stay Pending or fail its readiness probe before the rollout fails (0 to 86400).
    type: int
    default: 120
  progress_file:
    description:
      - A file on the machine the module runs on to which the rollout's waits append their progress, one line each
        (every 10 s what it still waits for, and when each wait is done), for a task that watches an C(async) run of
        this module (M(cutover.bluegreen.job_wait) prints them as they come).
      - The lines also go to the module's log.
    type: path
extends_documentation_fragment:
  - cutover.bluegreen.k8s_app
  - cutover.bluegreen.k8s_app.fence
  - cutover.bluegreen.wait
  - cutover.bluegreen.wait.optional
  - kubernetes.core.k8s_auth_options
notes:
  - Needs C(list) on Deployments, Services, Pods and Events, C(get) and C(patch) on the app's Deployments.
  - In check mode nothing is changed and nothing is waited for; the result and the diff say what would change.
"""

EXAMPLES = r"""
- name: Roll registry.example.com/shop:v2 out on the idle colour
  cutover.bluegreen.k8s_rollout:
    app: shop
    namespace: shop
    image: registry.example.com/shop:v2
    preparation_replicas: 1
  register: rollout
"""

RETURN = r"""
color:
  description: The colour rolled out.
  returned: success
  type: str
  sample: green
live_color:
  description: The live colour (not touched).
  returned: success
  type: str
  sample: blue
deployment:
  description: The Deployment rolled out.
  returned: success
  type: str
  sample: shop-green
image:
  description: The image the colour runs now.
  returned: success
  type: str
  sample: registry.example.com/shop:v2
replicas:
  description: The replicas it runs now.
  returned: success
  type: int
  sample: 2
before:
  description: The colour's C(image), C(replicas) and marks before the task.
  returned: success
  type: dict
after:
  description: The same after the task.
  returned: success
  type: dict
rollout:
  description: The patches applied (C(steps), each with its C(replicas) and the C(seconds) waited) and the C(seconds) in all.
  returned: success, unless in check mode
  type: dict
pods:
  description: On failure, each failing pod with its C(reason), C(message), C(phase) and the C(seconds) it has not been Ready.
  returned: failure
  type: list
  elements: dict
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import k8s_rollout, waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_module import run_step, step_module


def main():
    module = step_module(
        dict(
            image=dict(type="str"),
            replicas=dict(type="int"),
            preparation_replicas=dict(type="int"),
            color=dict(type="str", choices=list(k8s_rollout.COLOR_CHOICES), default="idle"),
            unhealthy_timeout=dict(type="int", default=120),
            progress_file=dict(type="path"),
            **waits.argument_spec(),
        ),
        supports_check_mode=True,
    )
    params = module.params
    wanted = (params["image"], params["replicas"], params["preparation_replicas"], params["color"])

    def roll_out(step):
        plan = k8s_rollout.plan_rollout(step.pair, *wanted)
        result = dict(changed=plan["changed"], **{key: plan[key] for key in ("color", "live_color", "deployment", "image", "replicas")})
        result.update(before=plan["before"], after=plan["after"])
        if not step.check_mode:
            result["rollout"] = k8s_rollout.apply_rollout(
                step.client,
                plan,
                wait=params["wait"],
                timeout=params["wait_timeout"],
                unhealthy_timeout=params["unhealthy_timeout"],
                fence=step.fence,
                waiter=step.waiter,
            )
        if module._diff:
            result["diff"] = dict(before=plan["before"], after=plan["after"])
        return result

    run_step(module, roll_out, lambda: k8s_rollout.validate_inputs(*wanted))


if __name__ == "__main__":
    main()
