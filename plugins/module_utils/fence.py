# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fencing: work of a run that lost its lease stops before it changes anything more.

A run's module may outlive the run: Ansible starts every task's worker in a
session of its own and an ``async`` job daemonizes, so a rollout job, a drain
or a restore goes on waiting after its controller was killed, and would go on
changing the pair while a new run works on it. A :class:`Fence` stops it:

* :meth:`Fence.look` runs on every look of a wait (:func:`waits.poll` calls
  :func:`look`): the controller must still live and the lease must still be
  this run's token's (one GetItem; a reading less than a second old, such as
  the check right before a change, is reused), else :class:`lease.LostLock`
  ends the wait.
* :meth:`Fence.guard` runs right before a change (:func:`guard`): the same
  checks, always read fresh.
* A fence that ``renews`` (a module that holds the lease itself, such as the
  rollback) renews it on its looks every quarter of the lease instead of only
  reading it: the renewal's condition is the check.

The waits and change points of the library call :func:`look` and
:func:`guard`, which act on the fence the running module entered with
:func:`fenced` (one module run, one operation); without one they do nothing.
That keeps every wait and step function free of a fence argument, and code
that runs without a lease (unit tests, check mode) unchanged.

A fence is :class:`lease_rules.LeaseFence` over the store of the lease: the
DynamoDB item on AWS (:class:`Fence`), the Lease on Kubernetes
(``k8s_lease.Fence``); :func:`fenced` takes either.
"""

from __future__ import annotations

import contextlib
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import controller as controllers
from ansible_collections.cutover.bluegreen.plugins.module_utils import lease as leases
from ansible_collections.cutover.bluegreen.plugins.module_utils import lease_rules as rules
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import table_name

# The run's controller process; matches doc fragment cutover.bluegreen.lease.CONTROLLER (and lease.controller).
CONTROLLER_SPEC = dict(type="dict", options=dict(pid=dict(type="int", required=True), started=dict(type="str"), host=dict(type="str")))

# Matches doc fragment cutover.bluegreen.lease.
LEASE_ARGUMENT_SPEC = dict(
    lease=dict(
        type="dict",
        options=dict(
            token=dict(type="str", required=True, no_log=False),
            table_name=dict(type="str"),
            lease_seconds=dict(type="int"),
            controller=CONTROLLER_SPEC,
        ),
    ),
)

_ACTIVE = []
REUSE_SECONDS = rules.LeaseFence.REUSE_SECONDS  # a look reuses a lease reading younger than this


class Fence(rules.LeaseFence):
    """The lease ``token`` holds on ``service`` (in its table) and the controller that must stay alive for it."""

    def __init__(
        self,
        dynamodb,
        table,
        service,
        token,
        controller=None,
        renews=False,
        lease_seconds=None,
        clock=time.monotonic,
        controller_problem=controllers.problem,
    ):
        super().__init__(leases.Table(dynamodb, table, service), token, controller, renews, lease_seconds, clock, controller_problem)
        self.dynamodb, self.table, self.service = dynamodb, table, service


@contextlib.contextmanager
def fenced(fence):
    """Run the block under ``fence`` (None: unfenced): its waits look and its changes guard.

    A fence already entered (by an outer step of the same module run) is not entered twice.
    """
    if fence is None or fence in _ACTIVE:
        yield fence
        return
    _ACTIVE.append(fence)
    try:
        yield fence
    finally:
        _ACTIVE.remove(fence)


def look(what):
    """Called on every look of a wait; checks the active fence, if any."""
    for fence in list(_ACTIVE):
        fence.look("waiting for %s" % what)


def guard(before):
    """Called right before a change (``before`` names it); checks the active fence, if any."""
    for fence in list(_ACTIVE):
        fence.guard(before)


def of_module(module, make_client, renews=False):
    """The fence a module's ``lease`` option describes, or None (option not given, or check mode: nothing changes).

    ``make_client()`` makes the module's DynamoDB client (called only when there is a fence).
    """
    params = module.params.get("lease")
    if not params or module.check_mode:
        return None
    service = module.params["service"]
    return Fence(
        make_client(),
        table_name(service, params.get("table_name")),
        service,
        params["token"],
        controller=params.get("controller"),
        renews=renews,
        lease_seconds=params.get("lease_seconds"),
    )


def may_clean_up():
    """Whether work that failed may put back its own change: the lease is still this run's (even expired,
    even with its controller gone), so no other run works on the pair yet."""
    return all(fence.holds() for fence in list(_ACTIVE))
