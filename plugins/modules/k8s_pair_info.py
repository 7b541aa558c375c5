#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_pair_info
short_description: Read the state of a blue-green app on Kubernetes
version_added: 0.1.0
description:
  - Finds an app's pair of Deployments (C(<app>-blue), C(<app>-green)) and reports the live colour (the C(slot) the
    live Service selects), the idle colour, both Deployments (replicas, image, rollout status, standby marks, pods),
    every Service of the namespace that selects a colour of the app, and the preview Service.
  - Also reports who holds the deployment lock (the Lease C(<app>-cutover-lock)), the most recent deployments of
    the journal (the ConfigMap C(<app>-cutover-journal)) and the published active colour.
  - With O(release), also says whether that release is a re-run of an unfinished deployment whose run died
    (RV(resume)), and where it stands, so the re-run resumes it instead of starting another.
  - Reads only; it never changes anything.
author:
  - cutover maintainers (@cutover)
options:
  deployments:
    description:
      - How many of the most recent deployments to return from the journal, newest first (0 to 100).
    type: int
    default: 5
  release:
    description:
      - The release the caller is about to run, to find an unfinished deployment of the same release that a dead
        run left (see RV(resume)).
    type: dict
    suboptions:
      phase:
        description: The phase of the release.
        type: str
        choices: [full]
        default: full
      image:
        description: Its container image.
        type: str
        required: true
  takeover:
    description:
      - The holder the caller will take the lock from (its owner or token), as for M(cutover.bluegreen.k8s_lock);
        a live lease it names counts as one the caller may take for RV(resume).
    type: str
extends_documentation_fragment:
  - cutover.bluegreen.k8s_app
  - kubernetes.core.k8s_auth_options
notes:
  - Needs C(list) on Deployments, Services and Pods and C(get) on the Lease and the two ConfigMaps of the app (the
    deployer Role of C(infra/kubernetes) grants them).
"""

EXAMPLES = r"""
- name: Read the pair of the shop app
  cutover.bluegreen.k8s_pair_info:
    app: shop
    namespace: shop
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
    app:
      description: The app.
      type: str
      sample: shop
    namespace:
      description: Its namespace.
      type: str
      sample: shop
    live_color:
      description: The colour the live Service selects.
      type: str
      sample: blue
    idle_color:
      description: The other colour.
      type: str
      sample: green
    colors:
      description:
        - Per colour, its Deployment (C(name), C(replicas), C(image), C(container), C(ready_replicas),
          C(updated_replicas), C(available_replicas), C(generation), C(observed_generation), C(state),
          C(retire_after), C(annotations), C(conditions)) and its C(pods) (C(name), C(ready), C(phase), C(image), C(ip)).
      type: dict
    services:
      description: Per colour, the Services (not the preview) that select it.
      type: dict
      sample: {blue: [shop, shop-internal], green: []}
    unslotted_services:
      description: Services selecting the app without a slot, so both colours (a switch refuses while there are any).
      type: list
      elements: str
    live_service:
      description: The live Service (C(name), C(selector), C(type)).
      type: dict
    preview_service:
      description: The preview Service, or null when there is none.
      type: dict
    preview_color:
      description: The colour the preview Service selects.
      type: str
      sample: green
    split:
      description: Whether a Service other than the preview sends production traffic to the idle colour.
      type: bool
lock:
  description: The lease on the app (owner, token, purpose, acquired_at, renewed_at, expires_at, expired, seconds_left), or null.
  returned: always
  type: dict
deployments:
  description: The most recent journal entries, newest first.
  returned: always
  type: list
  elements: dict
resume:
  description:
    - With O(release), the unfinished deployment that release resumes, or null. A deployment is resumed when the
      lease names it and may be taken (it expired, or O(takeover) names its holder), it is still in progress, it is
      the same release, and production is where that release left it - on its old colour (before the switch) or on
      its new one (the switch was done).
    - C(deployment_id), C(from_color), C(to_color), C(from_version), C(switched), C(switched_at) (when the switch
      began, as the entry noted it), C(holder) and C(steps_left).
  returned: with release
  type: dict
active_color:
  description: The colour the ConfigMap C(<app>-active-color) publishes, or null when it does not exist.
  returned: always
  type: str
  sample: blue
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import journal, k8s_journal, k8s_lease
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_module import app_module, discover_pair, kube, run, validate_app_options


def main():
    release = dict(
        type="dict",
        options=dict(phase=dict(type="str", choices=["full"], default="full"), image=dict(type="str", required=True)),
    )
    module = app_module(dict(deployments=dict(type="int", default=5), release=release, takeover=dict(type="str")), supports_check_mode=True)
    params = module.params

    def operation():
        validate_app_options(module)
        if not 0 <= params["deployments"] <= k8s_journal.MAX_RECENT:
            raise CutoverError("deployments must be from 0 to %d, got %d" % (k8s_journal.MAX_RECENT, params["deployments"]))
        client = kube(module)
        pair = discover_pair(module, client)
        active = client.get_or_none("configmaps", params["namespace"], pair["names"]["active_color_config_map"])
        active_color = ((active or {}).get("data") or {}).get("color")
        entries = k8s_journal.recent(client, params["app"], params["namespace"], params["deployments"])
        lock = k8s_lease.read(client, params["app"], params["namespace"])
        resume = None
        if params["release"] is not None and lock and lock.get("deployment_id"):
            entry = k8s_journal.get(client, params["app"], params["namespace"], lock["deployment_id"])
            # No canary splits traffic on Kubernetes: the live Service, which a switch moves first, says whether the
            # release was switched (a run killed between two Services' patches is resumed and finishes the switch).
            resume = journal.plan_resume(lock, entry, params["release"], params["takeover"], pair["live_color"])
        pair.pop("service_views", None)
        return dict(
            changed=False,
            pair=pair,
            lock=lock,
            resume=resume,
            deployments=[journal.view(entry) for entry in entries],
            active_color=active_color,
        )

    run(module, operation)


if __name__ == "__main__":
    main()
