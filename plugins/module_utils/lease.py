# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The deployment lock of a service: a lease in the service's DynamoDB table.

One item per service, ``pk = service#<service>``, ``sk = lock``, holds the
lease: ``owner`` (who runs the deploy: a CI job, an AWX job id...),
``purpose``, ``acquired_at`` and ``renewed_at`` (ISO 8601), ``expires_at``
(epoch seconds, also the table's time-to-live attribute, so DynamoDB deletes
leases long past their expiry), ``lease_seconds``, and ``takeovers``: the
previous holders this lease was taken from (the last 10).

Semantics:

* **Free** (no item): acquiring writes the lease.
* **Held by the same owner**: acquiring again changes nothing while more than
  half of the lease is left and neither ``lease_seconds`` nor ``purpose``
  differ (so a second identical run reports no change); otherwise it renews
  the lease (new expiry, same ``acquired_at``). The owner names one run:
  two runs must never use the same owner.
* **Held by another owner, expired** (a crashed run): taken over, the previous
  holder recorded in ``takeovers``. ``takeover=False`` refuses instead, naming
  the expired holder. An expired lease is free in any case once DynamoDB's
  time-to-live has deleted it, so taking it over is the default.
* **Held by another owner, live**: refused, naming the holder and when the
  lease expires, unless ``force_takeover=True`` (an operator who knows the
  holder is gone), which is recorded in ``takeovers`` as forced.
* **Release**: deletes the lease only if the owner matches; releasing a lease
  that is not held changes nothing; releasing another owner's lease fails.

Every write is conditional on the exact state the decision was made from
(the free lease must still be absent, one's own lease still one's own, the
lease taken over still the very one read), so two holders can never hold the
lease at once: the loser of a race re-reads, finds a live lease of another
owner, and fails naming it.

Every function computing a decision is pure; :func:`acquire`,
:func:`release` and :func:`read` read and write the table.
"""

from __future__ import annotations

import datetime
import math

from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, isoformat, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import (
    TTL_ATTRIBUTE,
    ConditionFailed,
    Expression,
    get_item,
    partition_key,
    to_item,
    write_conditionally,
)

LOCK_SORT_KEY = "lock"
MAX_LEASE_SECONDS = 7 * 24 * 3600
MAX_TAKEOVERS = 10
MAX_OWNER_LENGTH = 256
ATTEMPTS = 3

# What acquire() does, decided by plan_acquire().
ACQUIRE = "acquire"
RENEW = "renew"
TAKE_OVER = "take_over"
FORCE = "force_takeover"
UNCHANGED = "unchanged"
# What release() does.
RELEASE = "release"
NOT_HELD = "not_held"


def epoch(moment):
    """Whole epoch seconds of a moment (rounded down)."""
    return int(math.floor(moment.timestamp()))


def iso_epoch(seconds):
    return isoformat(datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc))


def validate(owner, lease_seconds=None):
    """Bad input fails before anything is read or written."""
    if not isinstance(owner, str) or not owner.strip():
        raise CutoverError("owner must be a non-empty string naming the run that holds the lock")
    if len(owner) > MAX_OWNER_LENGTH:
        raise CutoverError("owner must be at most %d characters, got %d" % (MAX_OWNER_LENGTH, len(owner)))
    if lease_seconds is not None:
        if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int):
            raise CutoverError("lease_seconds must be a whole number of seconds, got %r" % (lease_seconds,))
        if lease_seconds <= 0:
            raise CutoverError("lease_seconds must be greater than 0, got %d" % lease_seconds)
        if lease_seconds > MAX_LEASE_SECONDS:
            raise CutoverError("lease_seconds must be at most %d (7 days), got %d" % (MAX_LEASE_SECONDS, lease_seconds))


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
        "purpose": item.get("purpose"),
        "acquired_at": item.get("acquired_at"),
        "renewed_at": item.get("renewed_at"),
        "expires_at": iso_epoch(expires_at),
        "expires_at_epoch": expires_at,
        "lease_seconds": item.get("lease_seconds"),
        "expired": is_expired(expires_at, now),
        "seconds_left": max(0, expires_at - epoch(now)),
        "takeovers": item.get("takeovers") or [],
    }


def describe_holder(lease):
    text = "%s (acquired %s" % (lease["owner"], lease["acquired_at"])
    if lease.get("purpose"):
        text += " for %s" % lease["purpose"]
    return text + ")"


def plan_acquire(service, current, owner, lease_seconds, now, takeover=True, force_takeover=False, purpose=None):
    """Decide what acquiring the lease does: one of ACQUIRE, RENEW, TAKE_OVER, FORCE, UNCHANGED.

    ``current`` is the stored item (plain, as :func:`table.from_item` returns
    it) or None. Raises :class:`CutoverError` naming the holder when the lease
    may not be taken.
    """
    if not current:
        return ACQUIRE
    lease = view(current, now)
    if lease["owner"] == owner:
        same_terms = lease["lease_seconds"] == lease_seconds and (purpose is None or purpose == lease["purpose"])
        if same_terms and not lease["expired"] and lease["seconds_left"] * 2 >= lease_seconds:
            return UNCHANGED
        return RENEW
    details = dict(holder=lease["owner"], expires_at=lease["expires_at"], lock=lease)
    if lease["expired"]:
        if takeover or force_takeover:
            return TAKE_OVER
        raise CutoverError(
            "service %s is locked by %s, whose lease expired at %s; set takeover to take over the expired lease"
            % (service, describe_holder(lease), lease["expires_at"]),
            **details,
        )
    if force_takeover:
        return FORCE
    raise CutoverError(
        "service %s is locked by %s until %s (%d s left); another deploy is running. Wait for it, or set force_takeover "
        "if that run is known to be gone" % (service, describe_holder(lease), lease["expires_at"], lease["seconds_left"]),
        **details,
    )


def lease_item(service, action, current, owner, lease_seconds, now, purpose=None):
    """The item acquiring writes (plain Python), for an action other than UNCHANGED."""
    stamp = isoformat(now)
    item = {
        "pk": partition_key(service),
        "sk": LOCK_SORT_KEY,
        "kind": "lock",
        "service": service,
        "owner": owner,
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
    elif action in (TAKE_OVER, FORCE):
        previous = {
            "owner": current.get("owner"),
            "purpose": current.get("purpose"),
            "acquired_at": current.get("acquired_at"),
            "expires_at": iso_epoch(int(current[TTL_ATTRIBUTE])),
            "taken_at": stamp,
            "taken_by": owner,
            "reason": "expired" if action == TAKE_OVER else "forced",
        }
        item["takeovers"] = (list(current.get("takeovers") or []) + [previous])[-MAX_TAKEOVERS:]
    if purpose is not None:
        item["purpose"] = purpose
    return item


def acquire_condition(action, current, now):
    """The condition that makes the write succeed only if the lease is still what the decision was made from."""
    expression = Expression()
    if action == ACQUIRE:
        text = "attribute_not_exists(%s)" % expression.name("pk")
    elif action == RENEW:
        text = "%s = %s" % (expression.name("owner"), expression.value(current["owner"]))
    elif action in (TAKE_OVER, FORCE):
        text = "%s = %s AND %s = %s AND %s = %s" % (
            expression.name("owner"),
            expression.value(current["owner"]),
            expression.name("acquired_at"),
            expression.value(current.get("acquired_at")),
            expression.name(TTL_ATTRIBUTE),
            expression.value(int(current[TTL_ATTRIBUTE])),
        )
        if action == TAKE_OVER:
            text += " AND %s <= %s" % (expression.name(TTL_ATTRIBUTE), expression.value(epoch(now)))
    else:
        raise ValueError("no condition for %r" % action)
    return expression.arguments(ConditionExpression=text)


def release_condition(owner):
    expression = Expression()
    return expression.arguments(ConditionExpression="%s = %s" % (expression.name("owner"), expression.value(owner)))


def plan_release(service, current, owner, now):
    """RELEASE (our lease), NOT_HELD (no lease); another owner's lease (live or expired) is refused."""
    if not current:
        return NOT_HELD
    lease = view(current, now)
    if lease["owner"] != owner:
        state = "expired at" if lease["expired"] else "until"
        raise CutoverError(
            "the lock of service %s is held by %s %s %s, not by %s; it was not released"
            % (service, describe_holder(lease), state, lease["expires_at"], owner),
            holder=lease["owner"],
            expires_at=lease["expires_at"],
            lock=lease,
        )
    return RELEASE


def _key(service):
    return to_item({"pk": partition_key(service), "sk": LOCK_SORT_KEY})


def read(dynamodb, table, service, now=None):
    """The lease of ``service`` (see :func:`view`), or None when nobody holds it."""
    moment = now or utcnow()
    return view(get_item(dynamodb, table, service, LOCK_SORT_KEY), moment)


def acquire(
    dynamodb,
    table,
    service,
    owner,
    lease_seconds,
    takeover=True,
    force_takeover=False,
    purpose=None,
    check_mode=False,
    now=None,
):
    """Acquire (or renew) the lease; returns ``{changed, operation, lock, previous}``.

    ``lock`` is the lease after the call (as it would be, in check mode),
    ``previous`` the lease before it (None when free). A lost race re-reads
    and decides again (the lease then is usually another owner's: refused).
    """
    validate(owner, lease_seconds)
    if not service:
        raise CutoverError("a service name is required")
    current = get_item(dynamodb, table, service, LOCK_SORT_KEY)
    for _attempt in range(ATTEMPTS):
        moment = now or utcnow()
        action = plan_acquire(service, current, owner, lease_seconds, moment, takeover, force_takeover, purpose)
        previous = view(current, moment)
        if action == UNCHANGED:
            return dict(changed=False, operation=action, lock=previous, previous=previous)
        item = lease_item(service, action, current, owner, lease_seconds, moment, purpose)
        if not check_mode:
            condition = acquire_condition(action, current, moment)
            try:
                write_conditionally(
                    dynamodb,
                    table,
                    service,
                    LOCK_SORT_KEY,
                    lambda item=item, condition=condition: dynamodb.put_item(
                        TableName=table, Item=to_item(item), aws_retry=True, **condition
                    ),
                    lambda stored, item=item: stored == item,
                )
            except ConditionFailed as exc:
                current = exc.current  # the lease changed since it was read: decide again on what is there now
                continue
        return dict(changed=True, operation=action, lock=view(item, moment), previous=previous)
    raise CutoverError("the lock of service %s kept changing while acquiring it (%d attempts); try again" % (service, ATTEMPTS))


def release(dynamodb, table, service, owner, check_mode=False, now=None):
    """Release the lease held by ``owner``; returns ``{changed, operation, lock, previous}`` (``lock`` is None after)."""
    validate(owner)
    if not service:
        raise CutoverError("a service name is required")
    current = get_item(dynamodb, table, service, LOCK_SORT_KEY)
    for _attempt in range(ATTEMPTS):
        moment = now or utcnow()
        action = plan_release(service, current, owner, moment)
        previous = view(current, moment)
        if action == NOT_HELD:
            return dict(changed=False, operation=action, lock=None, previous=None)
        if not check_mode:
            try:
                write_conditionally(
                    dynamodb,
                    table,
                    service,
                    LOCK_SORT_KEY,
                    lambda: dynamodb.delete_item(TableName=table, Key=_key(service), aws_retry=True, **release_condition(owner)),
                    lambda stored: stored is None,
                )
            except ConditionFailed as exc:
                current = exc.current
                continue
        return dict(changed=True, operation=action, lock=None, previous=previous)
    raise CutoverError("the lock of service %s kept changing while releasing it (%d attempts); try again" % (service, ATTEMPTS))
