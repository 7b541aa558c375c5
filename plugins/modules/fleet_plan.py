#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_plan
short_description: Plan a release of one service or of a fleet of services, in waves and regions
version_added: 0.1.0
description:
  - The first task of the collection's playbooks C(deploy.yml), C(rollback.yml) and C(status.yml). Turns the
    services to release (O(service), O(services) or the hosts of O(service_group)), the order of O(regions), the
    O(waves) and O(max_fail_percentage) into a plan - one host per service and region, in the order they run -
    and the play's C(serial) as explicit batch sizes, so that a wave never spans two regions.
  - Fails with one message that lists every bad input, one line each naming the variable and what is allowed,
    before any service is read or changed.
  - Values given as C(-e key=value) arrive as strings and are read as such (C(services=a,b,c), C(waves=1,100%),
    C(max_fail_percentage=0), C(regions=us-east-1,eu-west-1)); lists and numbers from JSON work the same.
  - An action that runs in the controller process, without starting a module and without any AWS call.
author:
  - cutover maintainers (@cutover)
options:
  service:
    description:
      - One service; it runs as the host C(localhost), as the playbooks always did (unless O(regions) are given).
    type: raw
  services:
    description:
      - Several services, comma-separated or as a list; each runs as a host named after it (with O(regions),
        C(<service>@<region>) for each region). A host of the inventory with that name lends its variables.
    type: raw
  service_group:
    description:
      - An inventory group whose hosts are services. A host's variable C(service) names its service (by default the
        host's name), its C(cutover_aws_region) its region; its other variables (role variables such as
        C(deploy_smoke_test_url)) apply to that service alone.
      - AWX job slicing splits such a group between the slices of a job.
    type: str
  regions:
    description:
      - The order of AWS regions, comma-separated or as a list (refused with O(platform=kubernetes)).
        A region's services start only when every service of the region before succeeded.
        With O(services), each service runs in each region; with O(service_group), each host's
        C(cutover_aws_region) must be one of them (by default the order in which they first appear).
    type: raw
  waves:
    description:
      - Wave sizes within each region, as C(serial) takes them - a number of services or a share of the region's
        services (V(1%) to V(100%), rounded down, at least 1) - comma-separated or as a list; the last size repeats
        until every service had its turn, for example V(1,100%) (one service first, then the rest) or V(1,25%).
      - By default all the services of a region run at once.
    type: raw
  max_fail_percentage:
    description:
      - After a wave in which more than this share of its services failed (or all of them), the fleet stops; the
        later waves do not start. V(0) (the default) stops it after any failure.
      - Services within one wave run to their end whatever the others do.
    type: raw
  platform:
    description:
      - The platform of the services (V(aws), V(kubernetes)), whose rule for names applies (app names on
        kubernetes). Anything else is judged as V(aws) here and refused by the role.
    type: str
    default: aws
  usage:
    description:
      - How to call the playbook, for the message when no service is named.
    type: str
    default: ""
notes:
  - Runs the same in check mode; it changes nothing.
  - A fleet is refused with C(--limit) (which would leave some of its services out of the run unseen); name the
    services to run instead.
extends_documentation_fragment:
  - cutover.bluegreen.controller_action
attributes:
  check_mode:
    support: full
    description: Plans the same way; it never changes anything.
"""

EXAMPLES = r"""
- name: Plan the services of this run
  cutover.bluegreen.fleet_plan:
    services: "{{ services | default(omit) }}"
    waves: 1,100%
    regions: us-east-1,eu-west-1
  register: cutover_fleet_plan

- name: Make each service of this run a host
  ansible.builtin.add_host:
    name: "{{ item.name }}"
    groups: cutover_fleet
    cutover_service: "{{ item.service }}"
    cutover_fleet_region: "{{ item.region }}"
  loop: "{{ cutover_fleet_plan.hosts }}"
"""

RETURN = r"""
hosts:
  description: One host per service and region, in the order they run.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "shop@us-east-1", "service": "shop", "region": "us-east-1", "region_index": 0, "wave": 1, "batch": 0}]
serial:
  description: The batch sizes, for the play's C(serial).
  returned: success
  type: list
  elements: int
  sample: [1, 2, 1, 2]
batches:
  description: Each batch's region, wave and hosts.
  returned: success
  type: list
  elements: dict
regions:
  description: The regions in their order (empty when none was given).
  returned: success
  type: list
  elements: str
max_fail_percentage:
  description: The share of a wave's services that may fail without stopping the fleet.
  returned: success
  type: int
fleet:
  description: Whether the run is a fleet (O(services), O(service_group) or O(regions)) rather than one O(service).
  returned: success
  type: bool
msg:
  description: How the fleet runs, or every bad input, one line each.
  returned: always
  type: str
  sample: "fleet: 3 service runs in 2 batches (1,2), max_fail_percentage 0"
problems:
  description: The bad inputs, one message each.
  returned: failure
  type: list
  elements: str
"""
