# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""One way to wait: a condition per thing waited for, one loop that looks, reports and times out.

kubernetes.core's shape (``module_utils/k8s/waiter.py``): a predicate per
condition, and one waiter that calls it until it holds and says how long it
waited. Every wait of the collection, on AWS and on Kubernetes, is a
:class:`Condition` given to a :class:`Waiter`:

* a :class:`Condition` names what is waited for, in words (``what``: "every
  target of target group shop-green to be healthy (at least 2)"); its
  ``check`` looks once and returns a truthy result when the condition holds
  (anything falsy: not yet), or raises :class:`CutoverError` when it never will
  (a target that stays unhealthy, a pod in a crash loop): a failing predicate
  ends the wait at once, before its timeout. ``describe`` says where the
  condition stands, for the progress lines and the timeout's message.
* a :class:`Waiter` looks with a growing pause (``delay``, times ``factor``
  each look, up to ``max_delay``; botocore's waiters use a fixed delay, ours
  look often at first, when most waits end, and less later), never past its
  timeout; reports ``still waiting for <what> after <n> s: <where it stands>``
  at most every ``report_every`` seconds and, once done, how long it waited;
  and times out with ``timed out after <n> s waiting for <what>: <where it
  stands>`` (:class:`WaitTimeout`). Given several conditions, it waits for each
  in turn within one timeout, and the timeout names the condition still unmet.

Every look first asks the fences of the running module (:mod:`fence`), if it
has any, whether its run still holds the lease: a wait of a run that lost it
ends with ``LostLock`` instead of going on.

The wait options of the modules compose the same way (kubernetes.core's
``WAIT_ARG_SPEC`` and its doc fragment): :func:`argument_spec` with the doc
fragment ``cutover.bluegreen.wait``, checked once by :func:`validate`.
"""

from __future__ import annotations

import collections
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import fence
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError

DEFAULT_TIMEOUT = 600
REPORT_EVERY = 10.0


class WaitTimeout(CutoverError):
    """The condition did not hold within the timeout (``details['condition']`` names it)."""


class Condition:
    """What a wait waits for: ``what`` (words), ``check()`` (one look: truthy when it holds), ``describe()`` (where it stands).

    ``pace`` (``{delay, max_delay, factor}``, any of them) is how often this
    condition is worth a look, when it differs from the waiter's.
    """

    def __init__(self, what, check, describe=None, pace=None):
        self.what = what
        self.check = check
        self.describe = describe or (lambda: None)
        self.pace = dict(pace or {})


Waited = collections.namedtuple("Waited", "result seconds looks")


class Waiter:
    """The one loop every wait runs in (see the module docstring).

    ``delay``, ``factor`` and ``max_delay`` are the pace of a wait (each wait of
    the library has its own: :meth:`paced`); ``max_sleep`` caps the pause
    between two looks whatever the pace (a module's ``wait_sleep``).
    """

    def __init__(
        self,
        progress=None,
        delay=0.5,
        max_delay=10.0,
        factor=1.5,
        report_every=REPORT_EVERY,
        clock=time.monotonic,
        sleep=time.sleep,
        max_sleep=None,
    ):
        self.progress = progress
        self.delay, self.max_delay, self.factor = delay, max_delay, factor
        self.report_every = report_every
        self.clock, self.sleep = clock, sleep
        self.max_sleep = max_sleep

    def paced(self, delay=None, max_delay=None, factor=None):
        """The same waiter (progress, clock, ``max_sleep``) at another pace."""
        return Waiter(
            self.progress,
            self.delay if delay is None else delay,
            self.max_delay if max_delay is None else max_delay,
            self.factor if factor is None else factor,
            self.report_every,
            self.clock,
            self.sleep,
            self.max_sleep,
        )

    def wait(self, condition, timeout, looks=None):
        """Look until ``condition`` holds; returns :data:`Waited` (its result, the seconds waited, the looks).

        With ``looks``, the wait ends after that many looks too (a request retried so many times).
        """
        return self.wait_all([condition], timeout, looks)[0]

    def wait_all(self, conditions, timeout, looks=None):
        """Wait for each condition in turn, all within ``timeout`` seconds; returns a :data:`Waited` per condition."""
        check_seconds("timeout", timeout)
        deadline = self.clock() + timeout
        return [self._wait(condition, deadline, looks) for condition in conditions]

    def _wait(self, condition, deadline, most_looks=None):
        started = last_report = self.clock()
        pace = dict({"delay": self.delay, "max_delay": self.max_delay, "factor": self.factor}, **condition.pace)
        most = pace["max_delay"] if self.max_sleep is None else max(0.1, min(pace["max_delay"], self.max_sleep))
        delay = min(pace["delay"], most)
        looks = 0
        while True:
            looks += 1
            fence.look(condition.what)
            result = condition.check()
            now = self.clock()
            waited = round(now - started, 3)
            if result:
                if self.progress and looks > 1:
                    self.progress("%s: done after %.1f s (%d looks)" % (condition.what, waited, looks))
                return Waited(result, waited, looks)
            if now >= deadline or (most_looks is not None and looks >= most_looks):
                state = condition.describe()
                message = "timed out after %.0f s waiting for %s" % (now - started, condition.what)
                if state:
                    message += ": %s" % state
                raise WaitTimeout(message, waited=waited, attempts=looks, condition=condition.what)
            if self.progress and now - last_report >= self.report_every:
                last_report = now
                state = condition.describe()
                self.progress("still waiting for %s after %.0f s%s" % (condition.what, now - started, ": " + state if state else ""))
            self.sleep(max(0.0, min(delay, deadline - now)))
            delay = min(delay * pace["factor"], most)


def waiter_for(waiter=None, progress=None, clock=None, sleep=None, **pace):
    """The waiter a library wait runs on: ``waiter`` (a module's, with its ``wait_sleep``) at this wait's pace, else a new one."""
    if waiter is not None:
        return waiter.paced(**pace)
    return Waiter(progress, clock=clock or time.monotonic, sleep=sleep or time.sleep, **pace)


def poll(
    check,
    timeout,
    what,
    delay=0.5,
    max_delay=10.0,
    factor=1.5,
    progress=None,
    report_every=REPORT_EVERY,
    describe=None,
    clock=time.monotonic,
    sleep=time.sleep,
):
    """One condition on a :class:`Waiter`, in one call: ``(result, waited_seconds)``."""
    waiter = Waiter(progress, delay, max_delay, factor, report_every, clock, sleep)
    waited = waiter.wait(Condition(what, check, describe), timeout)
    return waited.result, waited.seconds


# -- the wait options of the modules -------------------------------------------------------------
# Options holding seconds, checked wherever a module has them (the ranges in k8s_module.SECONDS_LIMITS).
SECONDS_OPTIONS = ("wait_timeout", "wait_sleep", "unhealthy_timeout", "verify_timeout", "drain_timeout")


def argument_spec(timeout=DEFAULT_TIMEOUT, aliases=(), wait=True, wait_aliases=()):
    """The wait options of a module (doc fragment ``cutover.bluegreen.wait``): ``wait``, ``wait_timeout``, ``wait_sleep``.

    ``timeout`` is the module's default of ``wait_timeout`` (None: the module
    computes it), ``aliases`` the names it had before (``wait_aliases`` those
    of ``wait``); ``wait=False`` leaves out the ``wait`` switch (doc fragment
    ``cutover.bluegreen.wait.optional``), for a module that always waits.
    """
    timeout_spec = dict(type="int")
    if timeout is not None:
        timeout_spec["default"] = timeout
    if aliases:
        timeout_spec["aliases"] = list(aliases)
    spec = dict(wait_timeout=timeout_spec, wait_sleep=dict(type="int"))
    if wait:
        spec["wait"] = dict(type="bool", default=True)
        if wait_aliases:
            spec["wait"]["aliases"] = list(wait_aliases)
    return spec


def check_seconds(option, value, most=None):
    """A number of seconds an option holds: 0 or more (and at most ``most``); None (not given) passes."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CutoverError("%s must be a number of seconds, got %r" % (option, value))
    if value < 0 or (most is not None and value > most):
        allowed = "zero or more seconds" if most is None else "from 0 to %d seconds" % most
        raise CutoverError("%s must be %s, got %s" % (option, allowed, value))
    return value


def validate(params, limits=None):
    """Check every seconds option among ``params`` (a module's), before anything is read; ``limits``: most seconds per option."""
    for option in SECONDS_OPTIONS:
        if option in params:
            check_seconds(option, params[option], (limits or {}).get(option))


def progress_writer(log, path=None):
    """Where a module's waits report: ``log`` (the module's log) and, with ``path`` (a module's ``progress_file``),
    one line each at the end of that file, for a task that watches the module's ``async`` job
    (``cutover.bluegreen.job_wait`` prints the lines as they come)."""

    def report(message):
        log(message)
        if path:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(" ".join(str(message).split()) + "\n")

    return report


def waiter_of(params, progress=None):
    """The :class:`Waiter` a module's wait options describe (``wait_sleep`` caps the pause between two looks)."""
    return Waiter(progress, max_sleep=params.get("wait_sleep"))
