#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_smoke_test
short_description: Smoke-test the idle colour of an app on Kubernetes through its preview Service
version_added: 0.1.0
description:
  - Requests O(path) through the preview Service of the app (C(<app>-preview), which selects the idle colour) until
    it answers one of O(status), with O(expect) in its body when given, at most O(retries) + 1 times, O(delay) seconds
    apart; fails naming the last answer otherwise.
  - The request goes through the API server's service proxy (C(/api/v1/namespaces/<namespace>/services/<preview>/proxy/<path>)),
    which forwards it to a ready endpoint of the Service, so it works wherever the kubeconfig works, without a
    route into the cluster or a port-forward.
  - Refuses, before any request, a preview Service that does not select the colour under test (O(color), by default
    the idle colour), since the test would then judge another release.
  - Reads only; it changes nothing (and runs in check mode too).
author:
  - cutover maintainers (@cutover)
options:
  path:
    description:
      - The path to request, starting with C(/).
    type: str
    default: /
  color:
    description:
      - The colour under test, which the preview Service must select; V(idle) is the colour the live Service does not
        select.
    type: str
    choices: [idle, blue, green]
    default: idle
extends_documentation_fragment:
  - cutover.bluegreen.smoke
  - cutover.bluegreen.k8s_app
  - kubernetes.core.k8s_auth_options
notes:
  - Needs C(list) on Deployments and Services and C(get) on C(services/proxy) of the preview Service (the deployer Role
    of C(infra/kubernetes) grants them).
"""

EXAMPLES = r"""
- name: Smoke-test the new release of shop before it takes production
  cutover.bluegreen.k8s_smoke_test:
    app: shop
    namespace: shop
    path: /health
    expect: v2
"""

RETURN = r"""
status:
  description: The status of the passing answer.
  returned: success
  type: int
  sample: 200
content:
  description: Its body (at most 4096 characters).
  returned: always
  type: str
attempts:
  description: The requests made.
  returned: always
  type: int
  sample: 1
seconds:
  description: How long the test took.
  returned: success
  type: float
service:
  description: The Service requested.
  returned: always
  type: str
  sample: shop-preview
color:
  description: The colour under test.
  returned: always
  type: str
  sample: green
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import k8s_smoke, smoke, waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_module import (
    app_module,
    discover_pair,
    kube,
    progress_of,
    run,
    validate_app_options,
)


def main():
    module = app_module(
        dict(
            path=dict(type="str", default="/"),
            color=dict(type="str", choices=list(k8s_smoke.COLOR_CHOICES), default="idle"),
            **smoke.argument_spec(),
        ),
        supports_check_mode=True,
    )
    params = module.params

    def operation():
        validate_app_options(module)
        k8s_smoke.validate_inputs(params["path"], params["status"], params["retries"], params["delay"], params["color"])
        client = kube(module)
        pair = discover_pair(module, client, with_pods=False)
        result = k8s_smoke.smoke_test(
            client,
            pair,
            path=params["path"],
            statuses=params["status"],
            expect=params["expect"],
            retries=params["retries"],
            delay=params["delay"],
            color=params["color"],
            service=params.get("preview_service"),
            waiter=waits.Waiter(progress_of(module)),
        )
        result["changed"] = False
        return result

    run(module, operation)


if __name__ == "__main__":
    main()
