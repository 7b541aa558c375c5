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
go on: is the lease still this token's and live? Every function computing a
decision is pure; :func:`acquire`, :func:`renew`, :func:`release`, :func:`read`
and :func:`hold` read and write the table.
"""

from __future__ import annotations

import datetime
import math
import re
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import controller as controllers
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, isoformat, utcnow
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

LOCK_SORT_KEY = "lock"
MAX_LEASE_SECONDS = 7 * 24 * 3600
MAX_TAKEOVERS = 10
MAX_OWNER_LENGTH = 256
# What a run may ask for as its lease (run_identity and the roles' input check): long enough to renew
# it in time, short enough that a dead run's lease does not block the service for long.
RUN_LEASE_SECONDS = (10, 86400)
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{7,127}$")
ATTEMPTS = 3

# What acquire() does, decided by plan_acquire().
ACQUIRE = "acquire"
RENEW = "renew"
TAKE_OVER = "take_over"  # an expired lease of another run
TAKE_OVER_NAMED = "take_over_named"  # a live lease of the run that ``takeover`` names
UNCHANGED = "unchanged"
TAKEOVERS = (TAKE_OVER, TAKE_OVER_NAMED)
# What release() does.
RELEASE = "release"
NOT_HELD = "not_held"


class LostLock(CutoverError):
    """This run no longer holds the lease (taken over, expired, released) or its controller is gone."""

    def __init__(self, message, **details):
        details.setdefault("lost_lock", True)
        super().__init__(message if message.startswith("lost the lock") else "lost the lock: " + message, **details)


def epoch(moment):
    """Whole epoch seconds of a moment (rounded down)."""
    return int(math.floor(moment.timestamp()))


def iso_epoch(seconds):
    return isoformat(datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc))


def renew_interval(lease_seconds):
    """How often a live run renews its lease: a quarter of it, so three renewals may fail before it lapses."""
    return max(1.0, lease_seconds / 4.0)


# -- input ---------------------------------------------------------------------------------------
def validate_token(token):
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        raise CutoverError(
            "token must name one run: 8 to 128 letters, digits and _ . : - (such as a uuid), got %r" % (token,),
        )


def validate(owner, token=None, lease_seconds=None, takeover=None):
    """Bad input fails before anything is read or written."""
    if not isinstance(owner, str) or not owner.strip():
        raise CutoverError("owner must be a non-empty string naming the run that holds the lock")
    if len(owner) > MAX_OWNER_LENGTH:
        raise CutoverError("owner must be at most %d characters, got %d" % (MAX_OWNER_LENGTH, len(owner)))
    if token is not None:
        validate_token(token)
    if lease_seconds is not None:
        if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int):
            raise CutoverError("lease_seconds must be a whole number of seconds, got %r" % (lease_seconds,))
        if lease_seconds <= 0:
            raise CutoverError("lease_seconds must be greater than 0, got %d" % lease_seconds)
        if lease_seconds > MAX_LEASE_SECONDS:
            raise CutoverError("lease_seconds must be at most %d (7 days), got %d" % (MAX_LEASE_SECONDS, lease_seconds))
    if takeover is not None and (not isinstance(takeover, str) or not takeover.strip()):
        raise CutoverError("takeover must name the holder to take the lock from (its owner or its token), got %r" % (takeover,))


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


def describe_holder(lease):
    """``ansible-playbook alice@ci-1 pid 4242 (deploy v2 to green)``."""
    text = str(lease.get("owner"))
    if lease.get("purpose"):
        text += " (%s)" % lease["purpose"]
    return text


def names_holder(lease, takeover):
    """Whether ``takeover`` names the holder of ``lease``: its token, or its owner."""
    if not takeover or not lease:
        return False
    takeover = takeover.strip()
    return takeover == lease.get("token") or takeover == lease.get("owner")


def takeover_hint(lease):
    """The exact option that takes ``lease`` over (its token when it has one, else its owner)."""
    name = lease.get("token") or lease.get("owner")
    if re.match(r"^[A-Za-z0-9_.:@-]+$", name or ""):
        return "-e takeover=%s" % name
    return "-e takeover='%s'" % str(name).replace("'", "'\\''")


def refusal(service, lease, takeover=None):
    """Why a live lease of another run refuses this run, with how to take it over (a CutoverError)."""
    since = lease.get("acquired_at") or "?"
    text = "service %s is locked by %s since %s, until %s (%d s left" % (
        service,
        describe_holder(lease),
        since,
        lease["expires_at"],
        lease["seconds_left"],
    )
    if lease.get("renewed_at") and lease["renewed_at"] != since:
        text += ", renewed %s" % lease["renewed_at"]
    text += ")"
    if takeover:
        text = "takeover=%s does not name the holder of the lock: %s" % (takeover, text)
    text += (
        ". A live run renews its lease; if that run is gone, its lease expires by itself within %d s. "
        "To take the lock from it now (for an incident rollback, say), run again with %s" % (lease["seconds_left"], takeover_hint(lease))
    )
    return CutoverError(
        text,
        holder=lease.get("owner"),
        holder_token=lease.get("token"),
        purpose=lease.get("purpose"),
        acquired_at=lease.get("acquired_at"),
        expires_at=lease["expires_at"],
        takeover_hint=takeover_hint(lease),
        lock=lease,
    )


def _taken_from(lease, token):
    """The takeover record of ``lease`` that took it from ``token``, if any."""
    for entry in reversed(lease.get("takeovers") or []):
        if token and entry.get("token") == token:
            return entry
    return None


def fence_problem(service, item, token, now):
    """Why the run holding ``token`` may not go on (a text), or None while the lease is its own and live."""
    if not item:
        return "the lock of service %s is not held any more (released, or expired and deleted)" % service
    lease = view(item, now)
    if lease.get("token") != token:
        text = "the lock of service %s is now held by %s since %s" % (service, describe_holder(lease), lease["acquired_at"])
        taken = _taken_from(lease, token)
        if taken:
            how = "by name" if taken.get("reason") == "named" else "after this run's lease expired at %s" % taken.get("expires_at")
            text += "; it took the lock from this run at %s, %s" % (taken.get("taken_at"), how)
        return text
    if lease["expired"]:
        return "the lease of this run on service %s expired at %s (it was not renewed in time)" % (service, lease["expires_at"])
    return None


# -- acquiring ---------------------------------------------------------------------------------
def plan_acquire(service, current, token, lease_seconds, now, takeover=None, purpose=None):
    """Decide what acquiring the lease does: one of ACQUIRE, RENEW, TAKE_OVER, TAKE_OVER_NAMED, UNCHANGED.

    ``current`` is the stored item (plain, as :func:`table.from_item` returns
    it) or None. Raises :class:`CutoverError` naming the holder when the lease
    may not be taken.
    """
    if not current:
        return ACQUIRE
    lease = view(current, now)
    if lease["token"] == token:
        same_terms = lease["lease_seconds"] == lease_seconds and (purpose is None or purpose == lease["purpose"])
        if same_terms and not lease["expired"] and lease["seconds_left"] * 2 >= lease_seconds:
            return UNCHANGED
        return RENEW
    if lease["expired"]:
        return TAKE_OVER
    if names_holder(lease, takeover):
        return TAKE_OVER_NAMED
    raise refusal(service, lease, takeover)


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
        previous = {
            "owner": current.get("owner"),
            "token": current.get("token"),
            "purpose": current.get("purpose"),
            "deployment_id": current.get("deployment_id"),
            "acquired_at": current.get("acquired_at"),
            "renewed_at": current.get("renewed_at"),
            "expires_at": iso_epoch(int(current[TTL_ATTRIBUTE])),
            "taken_at": stamp,
            "taken_by": owner,
            "reason": "expired" if action == TAKE_OVER else "named",
        }
        item["takeovers"] = (list(current.get("takeovers") or []) + [previous])[-MAX_TAKEOVERS:]
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
    if not service:
        raise CutoverError("a service name is required")
    current = read_item(dynamodb, table, service)
    for _attempt in range(ATTEMPTS):
        moment = now or utcnow()
        action = plan_acquire(service, current, token, lease_seconds, moment, takeover, purpose)
        previous = view(current, moment)
        if action == UNCHANGED:
            return dict(changed=False, operation=action, lock=previous, previous=previous)
        item = lease_item(service, action, current, owner, token, lease_seconds, moment, purpose, deployment_id)
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
    moment = now or utcnow()
    item = read_item(dynamodb, table, service)
    why = fence_problem(service, item, token, moment)
    if why:
        raise LostLock(why + ("; stopped before %s" % before if before else ""), lock=view(item, moment))
    return view(item, moment)


# -- releasing ---------------------------------------------------------------------------------
def plan_release(service, current, token, now):
    """RELEASE (this run's lease), NOT_HELD (no lease); another run's lease (live or expired) is not released."""
    if not current:
        return NOT_HELD
    lease = view(current, now)
    if lease["token"] != token:
        state = "expired at" if lease["expired"] else "until"
        raise LostLock(
            "the lock of service %s is held by %s (token %s) since %s, %s %s, not by this run (token %s); it was not released"
            % (service, describe_holder(lease), lease["token"], lease["acquired_at"], state, lease["expires_at"], token),
            holder=lease["owner"],
            holder_token=lease["token"],
            expires_at=lease["expires_at"],
            lock=lease,
        )
    return RELEASE


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
    if not service:
        raise CutoverError("a service name is required")
    moment = now or utcnow()
    current = read_item(dynamodb, table, service)
    action = plan_release(service, current, token, moment)
    previous = view(current, moment)
    if action == NOT_HELD:
        return dict(changed=False, operation=action, lock=None, previous=None)
    if not check_mode:
        delete(dynamodb, table, service, token)
    return dict(changed=True, operation=action, lock=None, previous=previous)


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
    """Keep this run's lease while its controller lives; returns why it stopped and how often it renewed.

    Looks at the controller every ``look_every`` seconds (no AWS call) and
    renews every ``renew_every`` seconds (a quarter of the lease by default).
    Stops when the controller is gone (the lease is left to expire, so the
    journal entry it names stays with it for the run that takes over), when a
    renewal finds the lease is not this token's any more (released or taken
    over), or after ``max_seconds``. A failed renewal (throttled beyond the
    retries, the network) is tried again at the next interval.
    """
    renew_every = renew_interval(lease_seconds) if renew_every is None else renew_every
    started = clock()
    last = started
    renewals = failures = 0
    errors = []
    while True:
        why = controller_problem(controller)
        if why:
            return dict(stopped="controller_gone", reason=why, renewals=renewals, failed_renewals=failures, errors=errors[-3:])
        now = clock()
        if max_seconds is not None and now - started >= max_seconds:
            return dict(stopped="time_limit", reason="held for %d s" % max_seconds, renewals=renewals, failed_renewals=failures)
        if now - last >= renew_every:
            last = now
            try:
                if not renew(dynamodb, table, service, token, lease_seconds):
                    return dict(
                        stopped="not_held",
                        reason="the lease of service %s is not this run's any more (released or taken over)" % service,
                        renewals=renewals,
                        failed_renewals=failures,
                    )
                renewals += 1
            except failed_calls() + (botocore.exceptions.BotoCoreError, CutoverError) as exc:
                failures += 1
                errors.append(str(exc))
                if progress:
                    progress("renewing the lease of %s failed (%s); trying again in %.0f s" % (service, exc, renew_every))
        sleep(look_every)
