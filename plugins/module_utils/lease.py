# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The deployment lock of a service: a lease in the service's DynamoDB table.

One item per service, ``pk = service#<service>``, ``sk = lock``. Every run
holds the lease under an identity of its own: ``owner``, a name for people
(``ansible-playbook alice@ci-1 pid 4242``, ``awx-job-42``), and ``token``, unique
to the run. The item also keeps ``purpose`` (what the run does: ``deploy v2 to
green``), ``deployment_id`` (the journal entry the run writes, if any),
``acquired_at`` and ``renewed_at`` (ISO 8601), ``expires_at`` (epoch seconds,
also the table's time-to-live attribute), ``lease_seconds`` and ``takeovers``:
the holders this lease was taken from (the last 10).

Semantics:

* **Free** (no item): acquiring writes the lease.
* **Held by the same token** (the same run): acquiring again changes nothing
  while more than half of the lease is left and neither ``lease_seconds`` nor
  ``purpose`` differ; otherwise it renews. :func:`renew` pushes the expiry out
  (what a live run's heartbeat does every quarter of the lease).
* **Held by another token, expired** (its run died and stopped renewing): taken
  over, the previous holder recorded in ``takeovers``.
* **Held by another token, live**: refused, naming the holder, what it does,
  since when and until when, and how to take it over: ``takeover`` naming that
  holder (its owner or its token) takes the live lease. The same owner with
  another token is another run, refused like any other.
* **Release**: deletes the lease only if the token matches; releasing a lease
  nobody holds changes nothing; another token's lease is not released.

Every write is conditional on the exact state the decision was made from, so
two runs can never hold the lease at once: the loser of a race re-reads, finds
a live lease of another run, and fails naming it.

:func:`fence_problem` is what a run's long waits and changes ask before they
go on: is the lease still this token's and live? The rules are those of
:mod:`lease_rules`, shared with the Kubernetes Lease (:mod:`k8s_lease`); this
module is their store in DynamoDB (:class:`Table`): the item, its conditional
writes, and :func:`hold`, the heartbeat.
"""

from __future__ import annotations

import datetime
import math
import re
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import controller as controllers
from ansible_collections.cutover.bluegreen.plugins.module_utils import lease_rules as rules
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, isoformat, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.lease_rules import (
    RENEW,
    TAKEOVERS,
    LostLock,
    validate_token,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import (
    TTL_ATTRIBUTE,
    ConditionFailed,
    Expression,
    failed_calls,
    get_item,
    is_condition_failure,
    partition_key,
    table_errors,
    to_item,
    write_conditionally,
)

try:
    import botocore
except ImportError:
    pass  # the modules report a missing botocore

# The names of the lock's decisions and helpers, here as well as in lease_rules.
ACQUIRE, UNCHANGED, TAKE_OVER, TAKE_OVER_NAMED = rules.ACQUIRE, rules.UNCHANGED, rules.TAKE_OVER, rules.TAKE_OVER_NAMED
RELEASE, NOT_HELD = rules.RELEASE, rules.NOT_HELD
renew_interval, names_holder = rules.renew_interval, rules.names_holder

LOCK_SORT_KEY = "lock"
# What a run may ask for as its lease (run_identity and the roles' input check): long enough to renew
# it in time, short enough that a dead run's lease does not block the service for long.
RUN_LEASE_SECONDS = (10, 86400)
GONE = "released, or expired and deleted"


def epoch(moment):
    """Whole epoch seconds of a moment (rounded down)."""
    return int(math.floor(moment.timestamp()))


def iso_epoch(seconds):
    return isoformat(datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc))


def label(service):
    return "service %s" % service


# -- input ---------------------------------------------------------------------------------------
def validate(owner, token=None, lease_seconds=None, takeover=None):
    """Bad input fails before anything is read or written (:func:`lease_rules.validate`; the owner is required)."""
    rules.validate(owner, token, lease_seconds, takeover, owner_required=True)


# -- views and texts ---------------------------------------------------------------------------
def is_expired(expires_at, now):
    """A lease expires at the second ``expires_at`` (epoch seconds): from then on it is expired."""
    return expires_at <= epoch(now)


def view(item, now):
    """The lease as reported to users (ISO times, ``expired``, ``seconds_left``), or None when there is no lease."""
    if not item:
        return None
    expires_at = int(item[TTL_ATTRIBUTE])
    return {
        "service": item.get("service"),
        "owner": item.get("owner"),
        "token": item.get("token"),
        "purpose": item.get("purpose"),
        "deployment_id": item.get("deployment_id"),
        "acquired_at": item.get("acquired_at"),
        "renewed_at": item.get("renewed_at"),
        "expires_at": iso_epoch(expires_at),
        "expires_at_epoch": expires_at,
        "lease_seconds": item.get("lease_seconds"),
        "expired": is_expired(expires_at, now),
        "seconds_left": max(0, expires_at - epoch(now)),
        "takeovers": item.get("takeovers") or [],
    }


def takeover_hint(lease):
    """The exact option that takes ``lease`` over (its token when it has one, else its owner), for ``ansible-playbook``."""
    name = lease.get("token") or lease.get("owner")
    if re.match(r"^[A-Za-z0-9_.:@-]+$", name or ""):
        return "-e takeover=%s" % name
    return "-e takeover='%s'" % str(name).replace("'", "'\\''")


def refusal(service, lease, takeover=None):
    """Why a live lease of another run refuses this run, with how to take it over (a CutoverError)."""
    return rules.refusal(label(service), lease, takeover, takeover_hint(lease))


def fence_problem(service, item, token, now):
    """Why the run holding ``token`` may not go on (a text), or None while the lease is its own and live."""
    return rules.fence_problem(label(service), view(item, now), token, GONE)


# -- acquiring ---------------------------------------------------------------------------------
def plan_acquire(service, current, token, lease_seconds, now, takeover=None, purpose=None):
    """Decide what acquiring the lease does: one of ACQUIRE, RENEW, TAKE_OVER, TAKE_OVER_NAMED, UNCHANGED.

    ``current`` is the stored item (plain, as :func:`table.from_item` returns
    it) or None. Raises :class:`CutoverError` naming the holder when the lease
    may not be taken (:func:`lease_rules.plan_acquire`).
    """
    return rules.plan_acquire(label(service), view(current, now), token, lease_seconds, takeover, purpose, takeover_hint)


def lease_item(service, action, current, owner, token, lease_seconds, now, purpose=None, deployment_id=None):
    """The item acquiring writes (plain Python), for an action other than UNCHANGED."""
    stamp = isoformat(now)
    item = {
        "pk": partition_key(service),
        "sk": LOCK_SORT_KEY,
        "kind": "lock",
        "service": service,
        "owner": owner,
        "token": token,
        "acquired_at": stamp,
        "renewed_at": stamp,
        TTL_ATTRIBUTE: epoch(now) + lease_seconds,
        "lease_seconds": lease_seconds,
        "takeovers": [],
    }
    if action == RENEW:
        item["acquired_at"] = current.get("acquired_at") or stamp
        item["takeovers"] = list(current.get("takeovers") or [])
        if purpose is None:
            purpose = current.get("purpose")
        if deployment_id is None:
            deployment_id = current.get("deployment_id")
    elif action in TAKEOVERS:
        record = rules.takeover_record(view(current, now), action, owner, now)
        item["takeovers"] = rules.takeovers_after(current.get("takeovers"), record)
    if purpose is not None:
        item["purpose"] = purpose
    if deployment_id is not None:
        item["deployment_id"] = deployment_id
    return item


def _pin(expression, current):
    """The condition that the item is still exactly ``current``: same holder, same expiry (any renewal moves it)."""
    holder = (
        "%s = %s" % (expression.name("token"), expression.value(current["token"]))
        if current.get("token")
        else "attribute_not_exists(%s)" % expression.name("token")
    )
    return "%s AND %s = %s AND %s = %s" % (
        holder,
        expression.name("owner"),
        expression.value(current.get("owner")),
        expression.name(TTL_ATTRIBUTE),
        expression.value(int(current[TTL_ATTRIBUTE])),
    )


def acquire_condition(action, current, now):
    """The condition that makes the write succeed only if the lease is still what the decision was made from."""
    expression = Expression()
    if action == ACQUIRE:
        text = "attribute_not_exists(%s)" % expression.name("pk")
    elif action == RENEW:
        text = "%s = %s" % (expression.name("token"), expression.value(current["token"]))
    elif action in TAKEOVERS:
        text = _pin(expression, current)
        if action == TAKE_OVER:
            text += " AND %s <= %s" % (expression.name(TTL_ATTRIBUTE), expression.value(epoch(now)))
    else:
        raise ValueError("no condition for %r" % action)
    return expression.arguments(ConditionExpression=text)


def _token_condition(token):
    expression = Expression()
    return expression.arguments(ConditionExpression="%s = %s" % (expression.name("token"), expression.value(token)))


def release_condition(token):
    return _token_condition(token)


def _key(service):
    return to_item({"pk": partition_key(service), "sk": LOCK_SORT_KEY})


def read_item(dynamodb, table, service):
    """The stored lease item of ``service`` (plain), or None."""
    return get_item(dynamodb, table, service, LOCK_SORT_KEY)


def read(dynamodb, table, service, now=None):
    """The lease of ``service`` (see :func:`view`), or None when nobody holds it."""
    return view(read_item(dynamodb, table, service), now or utcnow())


class Table:
    """The lease of ``service`` in its table: the store :mod:`lease_rules` applies the rules to."""

    gone = GONE

    def __init__(self, dynamodb, table, service):
        if not service:
            raise CutoverError("a service name is required")
        self.dynamodb, self.table, self.service = dynamodb, table, service
        self.label = label(service)
        self.hint = takeover_hint
        self.view = view

    def read(self):
        return read_item(self.dynamodb, self.table, self.service)

    def write(self, action, current, owner, token, lease_seconds, now, purpose=None, deployment_id=None, check_mode=False):
        item = lease_item(self.service, action, current, owner, token, lease_seconds, now, purpose, deployment_id)
        if not check_mode:
            condition = acquire_condition(action, current, now)
            try:
                write_conditionally(
                    self.dynamodb,
                    self.table,
                    self.service,
                    LOCK_SORT_KEY,
                    lambda: self.dynamodb.put_item(TableName=self.table, Item=to_item(item), aws_retry=True, **condition),
                    lambda stored: stored == item,
                )
            except ConditionFailed as exc:
                raise rules.Race(exc.current) from exc
        return item

    def delete(self, current, token):
        delete(self.dynamodb, self.table, self.service, token)

    def renew(self, token, lease_seconds):
        return renew(self.dynamodb, self.table, self.service, token, lease_seconds)


def acquire(
    dynamodb,
    table,
    service,
    owner,
    token,
    lease_seconds,
    takeover=None,
    purpose=None,
    deployment_id=None,
    check_mode=False,
    now=None,
):
    """Acquire (or renew) the lease for the run ``token``; returns ``{changed, operation, lock, previous}``.

    ``lock`` is the lease after the call (as it would be, in check mode),
    ``previous`` the lease before it (None when free). A lost race re-reads
    and decides again (the lease then is usually another run's: refused).
    """
    validate(owner, token, lease_seconds, takeover)
    return rules.acquire(Table(dynamodb, table, service), owner, token, lease_seconds, takeover, purpose, deployment_id, check_mode, now)


# -- renewing, checking --------------------------------------------------------------------------
def renew(dynamodb, table, service, token, lease_seconds, now=None):
    """Push the expiry of this run's lease to ``now + lease_seconds``: one conditional UpdateItem.

    Returns True, or False when the lease is not this token's any more
    (released or taken over); it is never written then.
    """
    moment = now or utcnow()
    expression = Expression()
    update = "SET %s = %s, %s = %s" % (
        expression.name("renewed_at"),
        expression.value(isoformat(moment)),
        expression.name(TTL_ATTRIBUTE),
        expression.value(epoch(moment) + lease_seconds),
    )
    condition = "%s = %s" % (expression.name("token"), expression.value(token))
    try:
        with table_errors(table, service):
            dynamodb.update_item(
                TableName=table,
                Key=_key(service),
                aws_retry=True,
                **expression.arguments(UpdateExpression=update, ConditionExpression=condition),
            )
    except failed_calls() as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def check(dynamodb, table, service, token, before=None, now=None):
    """Raise :class:`LostLock` unless the lease is this token's and live (one GetItem); returns the lease."""
    return rules.check(Table(dynamodb, table, service), token, before, now)


# -- releasing ---------------------------------------------------------------------------------
def plan_release(service, current, token, now):
    """RELEASE (this run's lease), NOT_HELD (no lease); another run's lease (live or expired) is not released."""
    return rules.plan_release(label(service), view(current, now), token)


def delete(dynamodb, table, service, token):
    """Delete this run's lease (conditional on the token); a lease that changed meanwhile raises LostLock.

    A delete whose response was lost and that was sent again finds no lease: that is this delete's doing.
    """
    try:
        write_conditionally(
            dynamodb,
            table,
            service,
            LOCK_SORT_KEY,
            lambda: dynamodb.delete_item(TableName=table, Key=_key(service), aws_retry=True, **release_condition(token)),
            lambda stored: stored is None,
        )
    except ConditionFailed as exc:
        raise LostLock("the lock of service %s changed hands while it was being released; it was not released" % service) from exc


def release(dynamodb, table, service, token, check_mode=False, now=None):
    """Release the lease of the run ``token``; returns ``{changed, operation, lock, previous}`` (``lock`` is None after)."""
    validate_token(token)
    return rules.release(Table(dynamodb, table, service), token, check_mode, now)


# -- the heartbeat -------------------------------------------------------------------------------
def hold(
    dynamodb,
    table,
    service,
    token,
    lease_seconds,
    controller,
    renew_every=None,
    max_seconds=None,
    look_every=1.0,
    progress=None,
    clock=time.monotonic,
    sleep=time.sleep,
    controller_problem=controllers.problem,
):
    """Keep this run's lease while its controller lives (:func:`lease_rules.hold`, over the lock's item)."""

    def renewed():
        if renew(dynamodb, table, service, token, lease_seconds):
            return None
        return "the lease of service %s is not this run's any more (released or taken over)" % service

    return rules.hold(
        renewed,
        label(service),
        lease_seconds,
        controller,
        controller_problem,
        failures=failed_calls() + (botocore.exceptions.BotoCoreError, CutoverError),
        renew_every=renew_every,
        max_seconds=max_seconds,
        look_every=look_every,
        progress=progress,
        clock=clock,
        sleep=sleep,
    )
