#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_switch
short_description: Switch the production traffic of an app on Kubernetes to the other colour
version_added: 0.1.0
description:
  - Changes the C(slot) in the selector of the live Service B(and of every other Service of the namespace that
    selects the old colour of the app), so that no Service keeps sending production traffic to the old colour.
    The preview Service is pointed at the colour that becomes idle (O(swap_preview)).
  - "Plan, guard, apply, verify: it refuses, before changing anything, a colour with fewer Ready pods than
    required (O(min_ready), by default the old colour's replicas) or whose rollout is not complete, and while a
    Service selects the app without a slot (both colours). Each Service is patched naming the C(resourceVersion)
    read, so a Service whose selector changed meanwhile is refused rather than overwritten; when one patch fails, the
    Services already switched are put back. Then it reads back until every production Service selects the new
    colour and its EndpointSlices hold only new-colour pods, at least O(min_ready) of them Ready."
  - Kubernetes changes one object at a time; between two Services' patches, for milliseconds, one has moved and
    the other not yet.
  - The old colour is marked standby (annotations C(cutover.bluegreen/state=standby) and
    C(cutover.bluegreen/retire-after)) before traffic moves, so a run killed half way leaves it marked; the new
    colour loses any such marks; the ConfigMap C(<app>-active-color) publishes the new colour (O(publish)).
  - Switching to the colour already live changes nothing (it still verifies the endpoints).
author:
  - cutover maintainers (@cutover)
options:
  to_color:
    description:
      - The colour to switch to; V(idle) is the colour the live Service does not select.
    type: str
    choices: [idle, blue, green]
    default: idle
  min_ready:
    description:
      - Ready pods the new colour must have (1 to 1000), before and after the switch. Default the old colour's
        replicas (at least 1).
    type: int
  swap_preview:
    description:
      - Point the preview Service at the colour that becomes idle.
    type: bool
    default: true
  wait:
    description:
      - Read back the Services and their endpoints after the switch, until they hold only the new colour's pods.
    aliases: [verify]
  wait_timeout:
    description:
      - Seconds to wait for the endpoints to follow the selectors (0 to 3600).
    aliases: [verify_timeout]
    default: 60
  publish:
    description:
      - Publish the new colour in the ConfigMap C(<app>-active-color) (created when missing).
    type: bool
    default: true
  standby_ttl:
    description:
      - How long the old colour stays warm before teardown may retire it, in seconds or as a duration like V(30m),
        V(2h), V(1d). A standby keeps the retire-after time it has. Default one day.
    type: str
  retire_after:
    description:
      - An explicit UTC time (ISO 8601) from which the old colour may be retired, instead of O(standby_ttl).
    type: str
  check_mode_guard:
    description:
      - In check mode, run the guard on the colour as it is now. V(false) skips it there, for a check run of a whole
        release whose rollout (not made in check mode) would first change the colour; a real run always guards.
    type: bool
    default: true
extends_documentation_fragment:
  - cutover.bluegreen.k8s_app
  - cutover.bluegreen.k8s_app.fence
  - cutover.bluegreen.wait
  - cutover.bluegreen.wait.optional
  - kubernetes.core.k8s_auth_options
notes:
  - "Steps it combines, because they always go together: marking the old colour standby (before traffic moves, so a
    run killed half way leaves it marked), moving every Service, and publishing the live colour (O(publish)). The
    step order around it is the role's."
  - Needs C(get), C(list) and C(patch) on Services, C(list) on Deployments, Pods and EndpointSlices, C(get) and C(patch) on
    the app's Deployments, C(get), C(update) (or C(create)) on the ConfigMap C(<app>-active-color).
  - In check mode nothing is changed; the guard still runs (unless O(check_mode_guard=false)), so a switch that would be
    refused fails.
"""

EXAMPLES = r"""
- name: Switch shop to its idle colour, keeping the old one warm for two hours
  cutover.bluegreen.k8s_switch:
    app: shop
    namespace: shop
    standby_ttl: 2h
  register: switched
"""

RETURN = r"""
from_color:
  description: The colour production traffic left.
  returned: success
  type: str
  sample: blue
to_color:
  description: The colour production traffic goes to.
  returned: success
  type: str
  sample: green
changes:
  description: The selector changes (C(service), C(role) V(live), V(production) or V(preview), C(before), C(after)).
  returned: success
  type: list
  elements: dict
guard:
  description: The C(ready) pods counted and the C(required) number.
  returned: success
  type: dict
switch:
  description:
    - How long the patches took (C(seconds)) and when (C(switched_at), and as seconds since the epoch C(epoch)); null when
      nothing was patched.
  returned: success
  type: dict
verify:
  description: The C(seconds) the endpoints took to follow and the production C(services) verified.
  returned: success, unless in check mode or with verify=false
  type: dict
active_color:
  description: The ConfigMap written (C(config_map), C(before), C(after), C(changed)).
  returned: success, with publish
  type: dict
standby:
  description: The old colour's standby mark (C(color), C(deployment), C(retire_after), C(source)).
  returned: success
  type: dict
ready:
  description: On a refusal by the guard, the Ready pods of the colour.
  returned: failure
  type: int
required:
  description: On a refusal by the guard, the Ready pods required.
  returned: failure
  type: int
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import k8s_switch, waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import parse_time
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_module import check_time, run_step, step_module
from ansible_collections.cutover.bluegreen.plugins.module_utils.retire import parse_ttl


def main():
    module = step_module(
        dict(
            to_color=dict(type="str", choices=list(k8s_switch.TO_COLOR_CHOICES), default="idle"),
            min_ready=dict(type="int"),
            swap_preview=dict(type="bool", default=True),
            publish=dict(type="bool", default=True),
            standby_ttl=dict(type="str"),
            retire_after=dict(type="str"),
            check_mode_guard=dict(type="bool", default=True),
            **waits.argument_spec(60, aliases=["verify_timeout"], wait_aliases=["verify"]),
        ),
        supports_check_mode=True,
        mutually_exclusive=[("standby_ttl", "retire_after")],
    )
    params = module.params

    def check():
        k8s_switch.validate_inputs(params["to_color"], params["min_ready"], params["wait_timeout"])
        check_time("standby_ttl", params["standby_ttl"], parse_ttl)
        check_time("retire_after", params["retire_after"], parse_time)

    def switch(step):
        result = k8s_switch.switch(
            step.client,
            step.pair,
            to_color=params["to_color"],
            min_ready=params["min_ready"],
            swap_preview=params["swap_preview"],
            verify=params["wait"],
            verify_timeout=params["wait_timeout"],
            publish=params["publish"],
            standby_ttl=params["standby_ttl"],
            retire_after=params["retire_after"],
            guard=params["check_mode_guard"] or not module.check_mode,
            **step.context,
        )
        if module._diff:
            result["diff"] = dict(
                before={c["service"]: c["before"] for c in result["changes"]},
                after={c["service"]: c["after"] for c in result["changes"]},
            )
        return result

    run_step(module, switch, check)


if __name__ == "__main__":
    main()
