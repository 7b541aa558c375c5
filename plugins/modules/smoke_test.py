#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: smoke_test
short_description: Smoke-test a release at a URL that reaches only it (the test listener of the pair)
version_added: 0.1.0
description:
  - Requests O(url) until it answers one of O(status), with O(expect) in its body when given, at most O(retries) + 1
    times, O(delay) seconds apart; fails naming the last answer otherwise. An answer with another status (a 503 while
    the new colour warms up) or no answer at all (refused, timed out) counts as a failing look.
  - Its looks are those of the collection's one waiter, with its progress lines in the module's log (how long it
    waited, why the last answer failed), none of the C(FAILED - RETRYING) lines of an C(until) loop.
  - On AWS the URL is the test listener's, which forwards to the idle colour only; on Kubernetes, a URL given
    instead of the preview Service (see M(cutover.bluegreen.k8s_smoke_test)).
  - Reads only; it changes nothing. Like M(ansible.builtin.uri), it is skipped in check mode, where the idle colour
    has not received the release.
author:
  - cutover maintainers (@cutover)
options:
  url:
    description:
      - The URL to request, C(http://) or C(https://), path included.
    type: str
    required: true
  timeout:
    description:
      - Seconds one request may take (more than 0, at most 300).
    type: float
    default: 10
  validate_certs:
    description:
      - Whether an C(https://) URL's certificate must be valid.
    type: bool
    default: true
extends_documentation_fragment:
  - cutover.bluegreen.smoke
notes:
  - Runs in the controller's worker process when the task runs on the controller (see the collection's README).
"""

EXAMPLES = r"""
- name: Smoke-test the idle colour through the test listener
  cutover.bluegreen.smoke_test:
    url: http://shop-alb.example.com:8080/health
    expect: v2
    retries: 5
"""

RETURN = r"""
url:
  description: The URL requested.
  returned: always
  type: str
status:
  description: The status of the passing answer (of the last answer when it failed; null when nothing answered).
  returned: always
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
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cutover.bluegreen.plugins.module_utils import smoke
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError


def main(module_class=AnsibleModule):
    """``module_class``: what builds the module (the in-process action passes its own; see plugin_utils.in_process)."""
    module = module_class(
        argument_spec=dict(
            url=dict(type="str", required=True),
            timeout=dict(type="float", default=10.0),
            validate_certs=dict(type="bool", default=True),
            **smoke.argument_spec(),
        ),
        supports_check_mode=False,
    )
    params = module.params

    def opener(url, **kwargs):
        from ansible.module_utils.urls import open_url

        return open_url(url, validate_certs=params["validate_certs"], **kwargs)

    try:
        result = smoke.smoke_test_url(
            params["url"],
            statuses=params["status"],
            expect=params["expect"],
            retries=params["retries"],
            delay=params["delay"],
            timeout=params["timeout"],
            opener=opener,
            progress=module.log,
        )
    except CutoverError as exc:
        module.fail_json(msg=exc.message, url=params["url"], **exc.details)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
