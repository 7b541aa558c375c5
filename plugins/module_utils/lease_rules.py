# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The rules of the deployment lock, one implementation for every store that keeps it.

The lock of a service is a lease held by one run at a time; the rules are the
same on AWS (a DynamoDB item, :mod:`lease`) and on Kubernetes (a
``coordination.k8s.io/v1`` Lease, :mod:`k8s_lease`), and live here once:

* **Identity**: every run holds the lease under ``owner`` (a name for people)
  and ``token`` (unique to the run); only that token renews, checks or
  releases it (:func:`validate`).
* **Acquiring** (:func:`plan_acquire`): a free lease is taken; the same token
  changes nothing while more than half of the lease is left (and neither its
  length nor its purpose differ), else it renews; another run's expired lease
  is taken over, its holder recorded (:func:`takeover_record`); another run's
  live lease is refused naming the holder, since and until when, and how to
  take it over (:func:`refusal`), unless ``takeover`` names that holder.
* **Fencing** (:func:`fence_problem`): a run goes on only while the lease is
  its own and live.
* **Releasing** (:func:`plan_release`): only by the same token; a free lease
  changes nothing; another run's lease is never released.

:func:`acquire`, :func:`release` and :func:`check` apply the rules to a
*store*: an object with ``label`` (``service shop``, ``app shop``: how
messages name the lock), ``gone`` (why a lease can be missing), ``hint(lease)``
(the option that takes a lease over), ``read()`` (the stored lease, as stored),
``view(stored, now)`` (the lease as :func:`lease.view` shows it, or None),
``write(action, stored, owner, token, lease_seconds, now, purpose,
deployment_id, check_mode)`` (returns what is stored after; raises
:class:`Race` when the lease changed since it was read), ``delete(stored,
token)`` (raises :class:`Race` likewise, or :class:`LostLock`) and
``renew(token, lease_seconds)`` (False when the lease is not the token's).
:class:`LeaseFence` fences the waits and changes of a run over any store.
"""

from __future__ import annotations

import re
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, isoformat, utcnow

MAX_LEASE_SECONDS = 7 * 24 * 3600
MAX_TAKEOVERS = 10
MAX_OWNER_LENGTH = 256
MAX_PURPOSE_LENGTH = 1024
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{7,127}$")
ATTEMPTS = 3

# What acquiring does, decided by plan_acquire().
ACQUIRE = "acquire"
RENEW = "renew"
TAKE_OVER = "take_over"  # an expired lease of another run
TAKE_OVER_NAMED = "take_over_named"  # a live lease of the run that ``takeover`` names
UNCHANGED = "unchanged"
TAKEOVERS = (TAKE_OVER, TAKE_OVER_NAMED)
# What releasing does.
RELEASE = "release"
NOT_HELD = "not_held"


class LostLock(CutoverError):
    """This run no longer holds the lease (taken over, expired, released) or its controller is gone."""

    def __init__(self, message, **details):
        details.setdefault("lost_lock", True)
        super().__init__(message if message.startswith("lost the lock") else "lost the lock: " + message, **details)


class Race(Exception):
    """A write of the lease met a lease that changed since it was read; ``current`` is what is stored now."""

    def __init__(self, current):
        super().__init__("the lease changed since it was read")
        self.current = current


def renew_interval(lease_seconds):
    """How often a live run renews its lease: a quarter of it, so three renewals may fail before it lapses."""
    return max(1.0, lease_seconds / 4.0)


# -- input ---------------------------------------------------------------------------------------
def validate_token(token):
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        raise CutoverError("token must name one run: 8 to 128 letters, digits and _ . : - (such as a uuid), got %r" % (token,))


def validate(owner=None, token=None, lease_seconds=None, takeover=None, purpose=None, owner_required=False):
    """Bad input fails before anything is read or written, naming the option."""
    if owner is not None or owner_required:
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
    if purpose is not None and len(purpose) > MAX_PURPOSE_LENGTH:
        raise CutoverError("purpose must be at most %d characters, got %d" % (MAX_PURPOSE_LENGTH, len(purpose)))


# -- texts ---------------------------------------------------------------------------------------
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
    return takeover in (lease.get("token"), lease.get("owner"))


def refusal(label, lease, takeover=None, hint=None):
    """Why a live lease of another run refuses this run, with how to take it over (a CutoverError).

    ``label`` names the lock (``service shop``), ``hint`` is the option that takes ``lease`` over.
    """
    since = lease.get("acquired_at") or "?"
    text = "%s is locked by %s since %s, until %s (%d s left" % (
        label,
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
        "To take the lock from it now (for an incident rollback, say), run again with %s" % (lease["seconds_left"], hint)
    )
    return CutoverError(
        text,
        holder=lease.get("owner"),
        holder_token=lease.get("token"),
        purpose=lease.get("purpose"),
        acquired_at=lease.get("acquired_at"),
        expires_at=lease["expires_at"],
        takeover_hint=hint,
        lock=lease,
    )


def _taken_from(lease, token):
    """The takeover record of ``lease`` that took it from ``token``, if any."""
    for entry in reversed(lease.get("takeovers") or []):
        if token and entry.get("token") == token:
            return entry
    return None


def fence_problem(label, lease, token, gone="released"):
    """Why the run holding ``token`` may not go on (a text), or None while ``lease`` (a view) is its own and live."""
    if not lease:
        return "the lock of %s is not held any more (%s)" % (label, gone)
    if lease.get("token") != token:
        text = "the lock of %s is now held by %s since %s" % (label, describe_holder(lease), lease["acquired_at"])
        taken = _taken_from(lease, token)
        if taken:
            how = "by name" if taken.get("reason") == "named" else "after this run's lease expired at %s" % taken.get("expires_at")
            text += "; it took the lock from this run at %s, %s" % (taken.get("taken_at"), how)
        return text
    if lease["expired"]:
        return "the lease of this run on %s expired at %s (it was not renewed in time)" % (label, lease["expires_at"])
    return None


# -- decisions -----------------------------------------------------------------------------------
def plan_acquire(label, lease, token, lease_seconds, takeover=None, purpose=None, hint=None):
    """What acquiring does given the lease as it is (a view, or None): ACQUIRE, RENEW, TAKE_OVER, TAKE_OVER_NAMED or
    UNCHANGED. Raises the :func:`refusal` when another run's live lease may not be taken."""
    if not lease:
        return ACQUIRE
    if lease["token"] == token:
        same_terms = lease["lease_seconds"] == lease_seconds and (purpose is None or purpose == lease["purpose"])
        if same_terms and not lease["expired"] and lease["seconds_left"] * 2 >= lease_seconds:
            return UNCHANGED
        return RENEW
    if lease["expired"]:
        return TAKE_OVER
    if names_holder(lease, takeover):
        return TAKE_OVER_NAMED
    raise refusal(label, lease, takeover, hint(lease) if callable(hint) else hint)


def plan_release(label, lease, token):
    """RELEASE (this run's lease), NOT_HELD (no lease); another run's lease (live or expired) is not released."""
    if not lease:
        return NOT_HELD
    if lease["token"] != token:
        state = "expired at" if lease["expired"] else "until"
        raise LostLock(
            "the lock of %s is held by %s (token %s) since %s, %s %s, not by this run (token %s); it was not released"
            % (label, describe_holder(lease), lease["token"], lease["acquired_at"], state, lease["expires_at"], token),
            holder=lease["owner"],
            holder_token=lease["token"],
            expires_at=lease["expires_at"],
            lock=lease,
        )
    return RELEASE


def takeover_record(lease, action, owner, now):
    """What a lease taken over keeps of its previous holder (``lease``, a view), in its ``takeovers``."""
    return {
        "owner": lease.get("owner"),
        "token": lease.get("token"),
        "purpose": lease.get("purpose"),
        "deployment_id": lease.get("deployment_id"),
        "acquired_at": lease.get("acquired_at"),
        "renewed_at": lease.get("renewed_at"),
        "expires_at": lease.get("expires_at"),
        "taken_at": isoformat(now),
        "taken_by": owner,
        "reason": "expired" if action == TAKE_OVER else "named",
    }


def takeovers_after(history, record):
    """The takeover history with ``record`` added: the last :data:`MAX_TAKEOVERS`."""
    return (list(history or []) + [record])[-MAX_TAKEOVERS:]


# -- over a store --------------------------------------------------------------------------------
def acquire(store, owner, token, lease_seconds, takeover=None, purpose=None, deployment_id=None, check_mode=False, now=None):
    """Acquire (or renew) the lease for the run ``token``; returns ``{changed, operation, lock, previous}``.

    ``lock`` is the lease after the call (as it would be, in check mode),
    ``previous`` the lease before it (None when free). A lost race decides
    again on what is stored now (the lease then is usually another run's:
    refused). A run that holds the lease and names another journal entry now
    renews it, so the lease names that entry.
    """
    validate(owner, token, lease_seconds, takeover, purpose, owner_required=True)
    current = store.read()
    for _attempt in range(ATTEMPTS):
        moment = now or utcnow()
        previous = store.view(current, moment)
        action = plan_acquire(store.label, previous, token, lease_seconds, takeover, purpose, store.hint)
        if action == UNCHANGED and deployment_id is not None and deployment_id != previous.get("deployment_id"):
            action = RENEW
        if action == UNCHANGED:
            return dict(changed=False, operation=action, lock=previous, previous=previous)
        try:
            written = store.write(action, current, owner, token, lease_seconds, moment, purpose, deployment_id, check_mode)
        except Race as race:
            current = race.current  # the lease changed since it was read: decide again on what is there now
            continue
        return dict(changed=True, operation=action, lock=store.view(written, moment), previous=previous)
    raise CutoverError("the lock of %s kept changing while acquiring it (%d attempts); try again" % (store.label, ATTEMPTS))


def release(store, token, check_mode=False, now=None):
    """Release the lease of the run ``token``; returns ``{changed, operation, lock, previous}`` (``lock`` is None after)."""
    validate_token(token)
    for _attempt in range(ATTEMPTS):
        moment = now or utcnow()
        current = store.read()
        previous = store.view(current, moment)
        action = plan_release(store.label, previous, token)
        if action == NOT_HELD:
            return dict(changed=False, operation=action, lock=None, previous=None)
        if not check_mode:
            try:
                store.delete(current, token)
            except Race:
                continue
        return dict(changed=True, operation=action, lock=None, previous=previous)
    raise CutoverError("the lock of %s kept changing while releasing it (%d attempts); try again" % (store.label, ATTEMPTS))


def check(store, token, before=None, now=None):
    """Raise :class:`LostLock` unless the lease is this token's and live (one read); returns the lease."""
    moment = now or utcnow()
    lease = store.view(store.read(), moment)
    why = fence_problem(store.label, lease, token, store.gone)
    if why:
        raise LostLock(why + ("; stopped before %s" % before if before else ""), lock=lease)
    return lease


class LeaseFence:
    """The lease ``token`` holds in ``store``, and the controller that must stay alive for it (see :mod:`fence`).

    :meth:`look` runs on every look of a wait: the controller must live and
    the lease must still be the token's (a reading less than
    ``REUSE_SECONDS`` old is reused); a fence that ``renews`` renews the lease
    every quarter of it instead, the renewal's condition being the check.
    :meth:`guard` runs right before a change: the same checks, read fresh.
    """

    REUSE_SECONDS = 1.0

    def __init__(self, store, token, controller=None, renews=False, lease_seconds=None, clock=time.monotonic, controller_problem=None):
        validate_token(token)
        if renews and not lease_seconds:
            raise CutoverError("a fence that renews the lease needs its lease_seconds")
        self.store, self.token = store, token
        self.controller = controller
        self.renews = renews
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.controller_problem = controller_problem
        self.last_renewal = clock()
        self.last_read = None
        self.reuse_seconds = self.REUSE_SECONDS
        self.reads = 0
        self.renewals = 0

    def _controller(self, before):
        if self.controller and self.controller_problem:
            why = self.controller_problem(self.controller)
            if why:
                raise LostLock("%s, so this work of its run stops; stopped before %s" % (why, before), controller=self.controller)

    def look(self, what):
        """Before a look of a wait: the controller lives and the lease is ours (renewed when due)."""
        self._controller(what)
        if self.renews and self.clock() - self.last_renewal >= renew_interval(self.lease_seconds):
            if not self.store.renew(self.token, self.lease_seconds):
                self.reads += 1
                check(self.store, self.token, before=what)
                raise LostLock("the lease of %s is not this run's any more; stopped before %s" % (self.store.label, what))
            self.last_renewal = self.last_read = self.clock()
            self.renewals += 1
            return
        if self.last_read is not None and self.clock() - self.last_read < self.reuse_seconds:
            return
        self.guard(what)

    def guard(self, before):
        """Right before a change: the controller lives and the lease is this run's and live (read fresh)."""
        self._controller(before)
        self.reads += 1
        check(self.store, self.token, before=before)
        self.last_read = self.clock()

    def holds(self):
        """Whether the lease is still this run's, even expired (its work may then put back its own change)."""
        self.reads += 1
        lease = self.store.view(self.store.read(), utcnow())
        return bool(lease) and lease.get("token") == self.token


# -- the heartbeat -------------------------------------------------------------------------------
def hold(
    renew,
    label,
    lease_seconds,
    controller,
    controller_problem,
    failures=(CutoverError,),
    renew_every=None,
    max_seconds=None,
    look_every=1.0,
    progress=None,
    clock=time.monotonic,
    sleep=time.sleep,
):
    """Keep a run's lease while its controller lives; returns why it stopped and how often it renewed.

    ``renew()`` renews the lease in its store and returns None, or why the lease
    is not the run's any more (released or taken over). Looks at the controller
    every ``look_every`` seconds (no API call) and renews every ``renew_every``
    seconds (a quarter of the lease by default). Stops when the controller is
    gone (the lease is left to expire, so the journal entry it names stays with
    it for the run that takes over), when a renewal finds the lease is not the
    run's any more, or after ``max_seconds``. A renewal that raises one of
    ``failures`` (throttled beyond the retries, the network, the API server
    unreachable) is tried again at the next interval.
    """
    renew_every = renew_interval(lease_seconds) if renew_every is None else renew_every
    started = clock()
    last = started
    renewals = count_failed = 0
    errors = []
    while True:
        why = controller_problem(controller)
        if why:
            return dict(stopped="controller_gone", reason=why, renewals=renewals, failed_renewals=count_failed, errors=errors[-3:])
        now = clock()
        if max_seconds is not None and now - started >= max_seconds:
            return dict(stopped="time_limit", reason="held for %d s" % max_seconds, renewals=renewals, failed_renewals=count_failed)
        if now - last >= renew_every:
            last = now
            try:
                lost = renew()
                if lost:
                    return dict(stopped="not_held", reason=lost, renewals=renewals, failed_renewals=count_failed)
                renewals += 1
            except failures as exc:
                count_failed += 1
                errors.append(getattr(exc, "message", None) or str(exc))
                if progress:
                    progress("renewing the lease of %s failed (%s); trying again in %.0f s" % (label, errors[-1], renew_every))
        sleep(look_every)
