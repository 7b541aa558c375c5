# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Polling with a back-off, like botocore's waiters but with a predicate of ours.

``poll`` calls ``check`` until it returns a truthy value, sleeping a little
longer each time (starting at ``delay``, growing by ``factor`` up to
``max_delay``), and never past ``timeout``. ``check`` may raise
:class:`CutoverError` to fail early (an unhealthy target that will not recover,
say). Progress is reported through ``progress(message)`` at most every
``report_every`` seconds. Returns ``(result, waited_seconds)``.

Every look first asks the fence of the running module (:mod:`fence`), if it has
one, whether its run still holds the lease: a wait of a run that lost it ends
with :class:`lease.LostLock` instead of going on.
"""

from __future__ import annotations

import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import fence
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError


class WaitTimeout(CutoverError):
    """The condition did not hold within the timeout."""


def poll(
    check,
    timeout,
    what,
    delay=0.5,
    max_delay=10.0,
    factor=1.5,
    progress=None,
    report_every=10.0,
    describe=None,
    clock=time.monotonic,
    sleep=time.sleep,
):
    if timeout < 0:
        raise CutoverError("timeout for %s must not be negative, got %s" % (what, timeout))
    started = clock()
    deadline = started + timeout
    last_report = started
    attempt = 0
    while True:
        attempt += 1
        fence.look(what)
        result = check()
        now = clock()
        if result:
            return result, round(now - started, 3)
        if now >= deadline:
            state = describe() if describe else None
            message = "timed out after %.0f s waiting for %s" % (now - started, what)
            if state:
                message += ": %s" % state
            raise WaitTimeout(message, waited=round(now - started, 3), attempts=attempt)
        if progress and now - last_report >= report_every:
            last_report = now
            state = describe() if describe else ""
            progress("still waiting for %s after %.0f s%s" % (what, now - started, ": " + state if state else ""))
        sleep(max(0.0, min(delay, deadline - now)))
        delay = min(delay * factor, max_delay)
