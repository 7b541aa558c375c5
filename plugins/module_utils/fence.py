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
"""

from __future__ import annotations

import contextlib
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import controller as controllers
from ansible_collections.cutover.bluegreen.plugins.module_utils import lease as leases
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import table_name

# Matches doc fragment cutover.bluegreen.lease.
LEASE_ARGUMENT_SPEC = dict(
    lease=dict(
        type="dict",
        options=dict(
            token=dict(type="str", required=True, no_log=False),
            table_name=dict(type="str"),
            lease_seconds=dict(type="int"),
            controller=dict(
                type="dict",
                options=dict(pid=dict(type="int", required=True), started=dict(type="str"), host=dict(type="str")),
            ),
        ),
    ),
)

_ACTIVE = []
REUSE_SECONDS = 1.0  # a look reuses a lease reading younger than this


class Fence:
    """The lease ``token`` holds on ``service`` and the controller that must stay alive for it."""

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
        leases.validate_token(token)
        if renews and not lease_seconds:
            raise CutoverError("a fence that renews the lease needs its lease_seconds")
        self.dynamodb, self.table, self.service, self.token = dynamodb, table, service, token
        self.controller = controller
        self.renews = renews
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.controller_problem = controller_problem
        self.last_renewal = clock()
        self.last_read = None
        self.reuse_seconds = REUSE_SECONDS
        self.reads = 0
        self.renewals = 0

    def _controller(self, before):
        if self.controller:
            why = self.controller_problem(self.controller)
            if why:
                raise leases.LostLock(
                    "%s, so this work of its run stops; stopped before %s" % (why, before),
                    controller=self.controller,
                )

    def look(self, what):
        """Before a look of a wait: the controller lives and the lease is ours (renewed when due)."""
        self._controller(what)
        if self.renews and self.clock() - self.last_renewal >= leases.renew_interval(self.lease_seconds):
            if not leases.renew(self.dynamodb, self.table, self.service, self.token, self.lease_seconds):
                self.reads += 1
                leases.check(self.dynamodb, self.table, self.service, self.token, before=what)
                raise leases.LostLock("the lease of service %s is not this run's any more; stopped before %s" % (self.service, what))
            self.last_renewal = self.clock()
            self.renewals += 1
            return
        if self.last_read is not None and self.clock() - self.last_read < self.reuse_seconds:
            return
        self.guard(what)

    def guard(self, before):
        """Right before a change: the controller lives and the lease is this run's and live (read fresh)."""
        self._controller(before)
        self.reads += 1
        leases.check(self.dynamodb, self.table, self.service, self.token, before=before)
        self.last_read = self.clock()


@contextlib.contextmanager
def fenced(fence):
    """Run the block under ``fence`` (None: unfenced): its waits look and its changes guard."""
    if fence is None:
        yield None
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
    for fence in list(_ACTIVE):
        item = leases.read_item(fence.dynamodb, fence.table, fence.service)
        fence.reads += 1
        if not item or item.get("token") != fence.token:
            return False
    return True
