# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The deployment lock of an app on Kubernetes: a ``coordination.k8s.io/v1`` Lease.

One Lease per app, ``<app>-cutover-lock`` in the app's namespace. Every run holds
it under an identity of its own: ``owner``, a name for people (``alice@ci-1 pid
4242``, ``awx-job-42``), and ``token``, unique to the run. The Lease keeps:

* ``spec.holderIdentity``: the token of the run holding it (absent when free);
* ``spec.leaseDurationSeconds``, ``spec.acquireTime``, ``spec.renewTime``: the
  lease expires ``leaseDurationSeconds`` after ``renewTime``;
* ``spec.leaseTransitions``: how many times it changed hands;
* annotations ``cutover.bluegreen/owner``, ``/purpose``, ``/deployment-id`` (the
  journal entry the run writes) and ``/takeovers`` (the last 10 holders it was
  taken from, as JSON).

The rules are the AWS lock's:

* **Free** (no Lease, or no holder): acquiring takes it.
* **Held by the same token**: acquiring again changes nothing while more than
  half of the lease is left (same ``lease_seconds`` and ``purpose``); otherwise it
  renews. :func:`renew` pushes the expiry out (what a live run does in its waits).
* **Held by another token, expired** (its run died): taken over, the previous
  holder recorded in the takeovers.
* **Held by another token, live**: refused, naming the holder, what it does,
  since when and until when, and how to take it over: ``takeover`` naming that
  holder (its owner or its token) takes the live lease.
* **Release**: only by the same token; releasing a lease nobody holds changes
  nothing; another run's lease is not released.

Every write is an update naming the ``resourceVersion`` that was read, so the
API server refuses it (409 Conflict) if anyone wrote the Lease since: two runs
can never both hold it, and the loser of a race re-reads and decides again.
Every decision is a pure function; :func:`acquire`, :func:`renew`,
:func:`release` and :func:`read` talk to the API server.
"""

from __future__ import annotations

import datetime
import json
import re
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import controller as controllers
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, isoformat, parse_time, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import is_conflict, is_not_found
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import ANNOTATION_PREFIX, names

ANNOTATION_OWNER = ANNOTATION_PREFIX + "owner"
ANNOTATION_PURPOSE = ANNOTATION_PREFIX + "purpose"
ANNOTATION_DEPLOYMENT = ANNOTATION_PREFIX + "deployment-id"
ANNOTATION_TAKEOVERS = ANNOTATION_PREFIX + "takeovers"
HOLDER_ANNOTATIONS = (ANNOTATION_OWNER, ANNOTATION_PURPOSE, ANNOTATION_DEPLOYMENT)

MAX_LEASE_SECONDS = 7 * 24 * 3600
MAX_TAKEOVERS = 10
MAX_OWNER_LENGTH = 256
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{7,127}$")
ATTEMPTS = 3

ACQUIRE = "acquire"
RENEW = "renew"
TAKE_OVER = "take_over"  # an expired lease of another run
TAKE_OVER_NAMED = "take_over_named"  # a live lease of the run that ``takeover`` names
UNCHANGED = "unchanged"
TAKEOVERS = (TAKE_OVER, TAKE_OVER_NAMED)
RELEASE = "release"
NOT_HELD = "not_held"


class LostLock(CutoverError):
    """This run does not hold the lease (any more): taken over, expired, released."""

    def __init__(self, message, **details):
        details.setdefault("lost_lock", True)
        super().__init__(message if message.startswith("lost the lock") else "lost the lock: " + message, **details)


# -- time ----------------------------------------------------------------------------------------
def micro_time(moment):
    """A Kubernetes MicroTime: ``2026-01-01T12:00:00.000000Z``."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def renew_interval(lease_seconds):
    """How often a live run renews its lease: a quarter of it, so three renewals may fail before it lapses."""
    return max(1.0, lease_seconds / 4.0)


# -- input ---------------------------------------------------------------------------------------
def validate_token(token):
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        raise CutoverError("token must name one run: 8 to 128 letters, digits and _ . : - (such as a uuid), got %r" % (token,))


def validate(owner=None, token=None, lease_seconds=None, takeover=None, purpose=None):
    """Bad input fails before anything is read or written, naming the option."""
    if owner is not None:
        if not isinstance(owner, str) or not owner.strip():
            raise CutoverError("owner must be a non-empty string naming the run that holds the lock")
        if len(owner) > MAX_OWNER_LENGTH:
            raise CutoverError("owner must be at most %d characters, got %d" % (MAX_OWNER_LENGTH, len(owner)))
    if token is not None:
        validate_token(token)
    if lease_seconds is not None:
        if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int):
            raise CutoverError("lease_seconds must be a whole number of seconds, got %r" % (lease_seconds,))
        if not 1 <= lease_seconds <= MAX_LEASE_SECONDS:
            raise CutoverError("lease_seconds must be from 1 to %d (7 days), got %d" % (MAX_LEASE_SECONDS, lease_seconds))
    if takeover is not None and (not isinstance(takeover, str) or not takeover.strip()):
        raise CutoverError("takeover must name the holder to take the lock from (its owner or its token), got %r" % (takeover,))
    if purpose is not None and len(purpose) > 1024:
        raise CutoverError("purpose must be at most 1024 characters, got %d" % len(purpose))


# -- views and texts ---------------------------------------------------------------------------
def _takeovers(annotations):
    try:
        value = json.loads(annotations.get(ANNOTATION_TAKEOVERS) or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def view(obj, now):
    """The lease as reported to users, or None when nobody holds it."""
    if not obj:
        return None
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    token = spec.get("holderIdentity")
    if not token:
        return None
    annotations = meta.get("annotations") or {}
    duration = int(spec.get("leaseDurationSeconds") or 0)
    renewed = spec.get("renewTime") or spec.get("acquireTime")
    try:
        expires = parse_time(renewed) + datetime.timedelta(seconds=duration) if renewed else now
    except CutoverError:
        expires = now  # an unreadable time: treat the lease as expired
    left = (expires - now).total_seconds()
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "owner": annotations.get(ANNOTATION_OWNER) or token,
        "token": token,
        "purpose": annotations.get(ANNOTATION_PURPOSE),
        "deployment_id": annotations.get(ANNOTATION_DEPLOYMENT),
        "acquired_at": _iso(spec.get("acquireTime")),
        "renewed_at": _iso(renewed),
        "expires_at": isoformat(expires),
        "lease_seconds": duration,
        "expired": left <= 0,
        "seconds_left": max(0, int(left)),
        "transitions": int(spec.get("leaseTransitions") or 0),
        "takeovers": _takeovers(annotations),
    }


def _iso(stamp):
    try:
        return isoformat(parse_time(stamp)) if stamp else None
    except CutoverError:
        return stamp


def describe_holder(lease):
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


def takeover_hint(lease):
    return "takeover=%s" % lease.get("token")


def refusal(app, lease, takeover=None):
    """Why a live lease of another run refuses this run, with how to take it over."""
    text = "app %s is locked by %s since %s, until %s (%d s left" % (
        app,
        describe_holder(lease),
        lease.get("acquired_at") or "?",
        lease["expires_at"],
        lease["seconds_left"],
    )
    if lease.get("renewed_at") and lease["renewed_at"] != lease.get("acquired_at"):
        text += ", renewed %s" % lease["renewed_at"]
    text += ")"
    if takeover:
        text = "takeover=%s does not name the holder of the lock: %s" % (takeover, text)
    text += (
        ". A live run renews its lease; if that run is gone, its lease expires by itself within %d s. To take the lock "
        "from it now, run again with %s (its token) or takeover=<its owner>" % (lease["seconds_left"], takeover_hint(lease))
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


def fence_problem(app, lease, token):
    """Why the run holding ``token`` may not go on (a text), or None while the lease is its own and live."""
    if not lease:
        return "the lock of app %s is not held any more (released)" % app
    if lease["token"] != token:
        text = "the lock of app %s is now held by %s since %s" % (app, describe_holder(lease), lease["acquired_at"])
        for entry in reversed(lease.get("takeovers") or []):
            if entry.get("token") == token:
                text += "; it took the lock from this run at %s (%s)" % (entry.get("taken_at"), entry.get("reason"))
                break
        return text
    if lease["expired"]:
        return "the lease of this run on app %s expired at %s (it was not renewed in time)" % (app, lease["expires_at"])
    return None


# -- decisions ---------------------------------------------------------------------------------
def plan_acquire(app, lease, token, lease_seconds, takeover=None, purpose=None):
    """What acquiring does: ACQUIRE, RENEW, TAKE_OVER, TAKE_OVER_NAMED or UNCHANGED; refuses another run's live lease."""
    if not lease:
        return ACQUIRE
    if lease["token"] == token:
        same = lease["lease_seconds"] == lease_seconds and (purpose is None or purpose == lease["purpose"])
        if same and not lease["expired"] and lease["seconds_left"] * 2 >= lease_seconds:
            return UNCHANGED
        return RENEW
    if lease["expired"]:
        return TAKE_OVER
    if names_holder(lease, takeover):
        return TAKE_OVER_NAMED
    raise refusal(app, lease, takeover)


def plan_release(app, lease, token):
    """RELEASE (this run's lease) or NOT_HELD (free); another run's lease (live or expired) is refused."""
    if not lease:
        return NOT_HELD
    if lease["token"] != token:
        state = "expired at" if lease["expired"] else "until"
        raise LostLock(
            "the lock of app %s is held by %s (token %s) since %s, %s %s, not by this run (token %s); it was not released"
            % (app, describe_holder(lease), lease["token"], lease["acquired_at"], state, lease["expires_at"], token),
            holder=lease["owner"],
            holder_token=lease["token"],
            expires_at=lease["expires_at"],
            lock=lease,
        )
    return RELEASE


def lease_body(app, namespace, action, current, owner, token, lease_seconds, now, purpose=None, deployment_id=None):
    """The whole Lease object acquiring writes, for an action other than UNCHANGED (``current``: the stored object or None)."""
    current = current or {}
    meta, spec = dict(current.get("metadata") or {}), dict(current.get("spec") or {})
    annotations = dict(meta.get("annotations") or {})
    held = view(current, now)
    stamp = micro_time(now)
    if action == RENEW:
        purpose = annotations.get(ANNOTATION_PURPOSE) if purpose is None else purpose
        deployment_id = annotations.get(ANNOTATION_DEPLOYMENT) if deployment_id is None else deployment_id
        acquired = spec.get("acquireTime") or stamp
        transitions = int(spec.get("leaseTransitions") or 0)
    else:
        acquired = stamp
        transitions = int(spec.get("leaseTransitions") or 0) + (1 if current else 0)
    if action in TAKEOVERS:
        previous = {
            "owner": held["owner"],
            "token": held["token"],
            "purpose": held["purpose"],
            "deployment_id": held["deployment_id"],
            "acquired_at": held["acquired_at"],
            "renewed_at": held["renewed_at"],
            "expires_at": held["expires_at"],
            "taken_at": isoformat(now),
            "taken_by": owner,
            "reason": "expired" if action == TAKE_OVER else "named",
        }
        annotations[ANNOTATION_TAKEOVERS] = json.dumps((_takeovers(annotations) + [previous])[-MAX_TAKEOVERS:], sort_keys=True)
    for key in HOLDER_ANNOTATIONS:
        annotations.pop(key, None)
    annotations[ANNOTATION_OWNER] = owner
    if purpose:
        annotations[ANNOTATION_PURPOSE] = purpose
    if deployment_id:
        annotations[ANNOTATION_DEPLOYMENT] = deployment_id
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": names(app)["lease"],
            "namespace": namespace,
            "labels": dict(meta.get("labels") or {"app": app}),
            "annotations": annotations,
        },
        "spec": {
            "holderIdentity": token,
            "leaseDurationSeconds": lease_seconds,
            "acquireTime": acquired,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        },
    }
    if meta.get("resourceVersion"):
        body["metadata"]["resourceVersion"] = meta["resourceVersion"]
    return body


def released_body(current):
    """The Lease after its holder let it go: no holder, the history kept."""
    meta, spec = dict(current.get("metadata") or {}), dict(current.get("spec") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in HOLDER_ANNOTATIONS}
    meta["annotations"] = annotations
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations", "resourceVersion") if k in meta},
        "spec": {"leaseTransitions": int(spec.get("leaseTransitions") or 0)},
    }


# -- the API ---------------------------------------------------------------------------------------
def read_object(kube, app, namespace):
    """The stored Lease object, or None."""
    try:
        return kube.call("get", "coordination.k8s.io/leases", namespace, names(app)["lease"])
    except CutoverError as exc:
        if is_not_found(exc):
            return None
        raise


def read(kube, app, namespace, now=None):
    return view(read_object(kube, app, namespace), now or utcnow())


def _write(kube, namespace, current, body):
    if current:
        return kube.call("update", "coordination.k8s.io/leases", namespace, body["metadata"]["name"], body=body)
    return kube.call("create", "coordination.k8s.io/leases", namespace, body=body)


def _lost_race(exc):
    """A conflicting write: someone updated the Lease since it was read (409), or created it first (409 AlreadyExists)."""
    return is_conflict(exc)


def acquire(kube, app, namespace, owner, token, lease_seconds, takeover=None, purpose=None, deployment_id=None, check_mode=False, now=None):
    """Acquire (or renew) the lease for the run ``token``; returns ``{changed, operation, lock, previous}``."""
    validate(owner, token, lease_seconds, takeover, purpose)
    for _attempt in range(ATTEMPTS):
        moment = now or utcnow()
        current = read_object(kube, app, namespace)
        previous = view(current, moment)
        action = plan_acquire(app, previous, token, lease_seconds, takeover, purpose)
        if action == UNCHANGED and (deployment_id is None or deployment_id == previous["deployment_id"]):
            return dict(changed=False, operation=action, lock=previous, previous=previous)
        if action == UNCHANGED:
            action = RENEW  # the same run names its journal entry now
        body = lease_body(app, namespace, action, current, owner, token, lease_seconds, moment, purpose, deployment_id)
        if not check_mode:
            try:
                body = _write(kube, namespace, current, body)
            except CutoverError as exc:
                if _lost_race(exc):
                    continue  # the lease changed since it was read: decide again
                raise
        return dict(changed=True, operation=action, lock=view(body, moment), previous=previous)
    raise CutoverError("the lock of app %s kept changing while acquiring it (%d attempts); try again" % (app, ATTEMPTS))


def renew(kube, app, namespace, token, lease_seconds=None, now=None):
    """Push the expiry of this run's lease out; returns the lease. Raises :class:`LostLock` when it is not this run's."""
    validate_token(token)
    for _attempt in range(ATTEMPTS):
        moment = now or utcnow()
        current = read_object(kube, app, namespace)
        lease = view(current, moment)
        if not lease or lease["token"] != token:
            raise LostLock(fence_problem(app, lease, token) or "the lock of app %s is not this run's" % app, lock=lease)
        body = dict(current)
        body["spec"] = dict(current["spec"], renewTime=micro_time(moment))
        if lease_seconds:
            body["spec"]["leaseDurationSeconds"] = lease_seconds
        try:
            return view(kube.call("update", "coordination.k8s.io/leases", namespace, current["metadata"]["name"], body=body), moment)
        except CutoverError as exc:
            if _lost_race(exc):
                continue
            raise
    raise CutoverError("the lock of app %s kept changing while renewing it (%d attempts)" % (app, ATTEMPTS))


def check(kube, app, namespace, token, before=None, now=None):
    """Raise :class:`LostLock` unless the lease is this token's and live; returns the lease."""
    moment = now or utcnow()
    lease = read(kube, app, namespace, moment)
    why = fence_problem(app, lease, token)
    if why:
        raise LostLock(why + ("; stopped before %s" % before if before else ""), lock=lease)
    return lease


def release(kube, app, namespace, token, check_mode=False, now=None):
    """Release the lease of the run ``token``; returns ``{changed, operation, lock, previous}`` (``lock`` None after)."""
    validate_token(token)
    for _attempt in range(ATTEMPTS):
        moment = now or utcnow()
        current = read_object(kube, app, namespace)
        previous = view(current, moment)
        action = plan_release(app, previous, token)
        if action == NOT_HELD:
            return dict(changed=False, operation=action, lock=None, previous=None)
        if not check_mode:
            try:
                kube.call("update", "coordination.k8s.io/leases", namespace, current["metadata"]["name"], body=released_body(current))
            except CutoverError as exc:
                if _lost_race(exc):
                    continue
                raise
        return dict(changed=True, operation=action, lock=None, previous=previous)
    raise CutoverError("the lock of app %s kept changing while releasing it (%d attempts); try again" % (app, ATTEMPTS))


# -- the heartbeat -------------------------------------------------------------------------------
def hold(
    kube,
    app,
    namespace,
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

    The AWS lock's heartbeat (:func:`lease.hold`) on the Lease: looks at the
    controller every ``look_every`` seconds (no API call) and renews every
    ``renew_every`` seconds (a quarter of the lease by default). Stops when the
    controller is gone (the lease is left to expire, so the journal entry it
    names stays with it for the run that takes over), when a renewal finds the
    lease is not this token's any more (released or taken over), or after
    ``max_seconds``. A renewal that fails for another reason (the API server
    unreachable, throttled beyond the retries) is tried again at the next interval.
    """
    validate(token=token, lease_seconds=lease_seconds)
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
                renew(kube, app, namespace, token, lease_seconds)
                renewals += 1
            except LostLock as exc:
                return dict(stopped="not_held", reason=exc.message, renewals=renewals, failed_renewals=failures)
            except CutoverError as exc:
                failures += 1
                errors.append(exc.message)
                if progress:
                    progress("renewing the lease of %s failed (%s); trying again in %.0f s" % (app, exc.message, renew_every))
        sleep(look_every)


# -- fencing: the waits and changes of a run that holds the lock -------------------------------------------
class Fence:
    """The lease ``token`` holds on an app: checked right before each change, renewed (or checked) on waits.

    With ``controller`` (the run's ``ansible-playbook`` process, see :mod:`controller`), the work also stops
    once that process is gone: a task's worker and an ``async`` job outlive a killed controller, and must not
    go on changing the app while its lease runs out.
    """

    REUSE_SECONDS = 1.0

    def __init__(self, kube, app, namespace, token, lease_seconds=None, controller=None, clock=time.monotonic, controller_problem=None):
        validate(token=token, lease_seconds=lease_seconds)
        self.kube, self.app, self.namespace, self.token = kube, app, namespace, token
        self.lease_seconds = lease_seconds
        self.controller = controller
        self.controller_problem = controller_problem or controllers.problem
        self.clock = clock
        self.last_renewal = clock()
        self.last_read = None
        self.renewals = 0

    def _controller(self, before):
        if self.controller:
            why = self.controller_problem(self.controller)
            if why:
                raise LostLock("%s, so this work of its run stops; stopped before %s" % (why, before), controller=self.controller)

    def guard(self, before):
        """Right before a change: the controller lives, and the lease is this run's and live (read fresh)."""
        self._controller(before)
        check(self.kube, self.app, self.namespace, self.token, before=before)
        self.last_read = self.clock()

    def look(self, what):
        """On a look of a wait: renew every quarter of the lease (when its length is known), else check."""
        self._controller(what)
        now = self.clock()
        if self.lease_seconds and now - self.last_renewal >= renew_interval(self.lease_seconds):
            renew(self.kube, self.app, self.namespace, self.token, self.lease_seconds)
            self.last_renewal = self.last_read = self.clock()
            self.renewals += 1
            return
        if self.last_read is not None and now - self.last_read < self.REUSE_SECONDS:
            return
        self.guard("waiting for %s" % what)


def guard(fence, before):
    if fence is not None:
        fence.guard(before)


def look(fence, what):
    if fence is not None:
        fence.look(what)
