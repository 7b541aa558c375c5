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

The rules are the AWS lock's, implemented once in :mod:`lease_rules`; this
module is their store in a Lease (:class:`LeaseObject`):

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
"""

from __future__ import annotations

import datetime
import json
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import controller as controllers
from ansible_collections.cutover.bluegreen.plugins.module_utils import lease_rules as rules
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, isoformat, parse_time, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import is_conflict
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import ANNOTATION_PREFIX, names
from ansible_collections.cutover.bluegreen.plugins.module_utils.lease_rules import (
    ATTEMPTS,
    RENEW,
    TAKEOVERS,
    LostLock,
    validate_token,
)

ANNOTATION_OWNER = ANNOTATION_PREFIX + "owner"
ANNOTATION_PURPOSE = ANNOTATION_PREFIX + "purpose"
ANNOTATION_DEPLOYMENT = ANNOTATION_PREFIX + "deployment-id"
ANNOTATION_TAKEOVERS = ANNOTATION_PREFIX + "takeovers"
HOLDER_ANNOTATIONS = (ANNOTATION_OWNER, ANNOTATION_PURPOSE, ANNOTATION_DEPLOYMENT)


# -- time ----------------------------------------------------------------------------------------
def micro_time(moment):
    """A Kubernetes MicroTime: ``2026-01-01T12:00:00.000000Z``."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def label(app):
    return "app %s" % app


# -- input ---------------------------------------------------------------------------------------
def validate(owner=None, token=None, lease_seconds=None, takeover=None, purpose=None):
    """Bad input fails before anything is read or written, naming the option (:func:`lease_rules.validate`)."""
    rules.validate(owner, token, lease_seconds, takeover, purpose)


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


def takeover_hint(lease):
    return "takeover=%s" % lease.get("token")


def refusal(app, lease, takeover=None):
    """Why a live lease of another run refuses this run, with how to take it over."""
    return rules.refusal(label(app), lease, takeover, takeover_hint(lease))


def fence_problem(app, lease, token):
    """Why the run holding ``token`` may not go on (a text), or None while the lease is its own and live."""
    return rules.fence_problem(label(app), lease, token)


# -- decisions ---------------------------------------------------------------------------------
def plan_acquire(app, lease, token, lease_seconds, takeover=None, purpose=None):
    """What acquiring does: ACQUIRE, RENEW, TAKE_OVER, TAKE_OVER_NAMED or UNCHANGED; refuses another run's live lease."""
    return rules.plan_acquire(label(app), lease, token, lease_seconds, takeover, purpose, takeover_hint)


def plan_release(app, lease, token):
    """RELEASE (this run's lease) or NOT_HELD (free); another run's lease (live or expired) is refused."""
    return rules.plan_release(label(app), lease, token)


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
        record = rules.takeover_record(held, action, owner, now)
        annotations[ANNOTATION_TAKEOVERS] = json.dumps(rules.takeovers_after(_takeovers(annotations), record), sort_keys=True)
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
    return kube.get_or_none("coordination.k8s.io/leases", namespace, names(app)["lease"])


def read(kube, app, namespace, now=None):
    return view(read_object(kube, app, namespace), now or utcnow())


def _write(kube, namespace, current, body):
    if current:
        return kube.call("update", "coordination.k8s.io/leases", namespace, body["metadata"]["name"], body=body)
    return kube.call("create", "coordination.k8s.io/leases", namespace, body=body)


class LeaseObject:
    """The Lease of ``app``: the store :mod:`lease_rules` applies the rules to."""

    gone = "released"

    def __init__(self, kube, app, namespace):
        self.kube, self.app, self.namespace = kube, app, namespace
        self.label = label(app)
        self.hint = takeover_hint
        self.view = view

    def read(self):
        return read_object(self.kube, self.app, self.namespace)

    def _conflicting(self, call):
        """Make a write; a conflicting one (409: written or created since it was read) is a :class:`lease_rules.Race`."""
        try:
            return call()
        except CutoverError as exc:
            if is_conflict(exc):
                raise rules.Race(self.read()) from exc
            raise

    def write(self, action, current, owner, token, lease_seconds, now, purpose=None, deployment_id=None, check_mode=False):
        body = lease_body(self.app, self.namespace, action, current, owner, token, lease_seconds, now, purpose, deployment_id)
        if check_mode:
            return body
        return self._conflicting(lambda: _write(self.kube, self.namespace, current, body))

    def delete(self, current, token):
        name = current["metadata"]["name"]
        self._conflicting(lambda: self.kube.call("update", "coordination.k8s.io/leases", self.namespace, name, body=released_body(current)))

    def renew(self, token, lease_seconds):
        try:
            renew(self.kube, self.app, self.namespace, token, lease_seconds)
        except LostLock:
            return False
        return True


def acquire(kube, app, namespace, owner, token, lease_seconds, takeover=None, purpose=None, deployment_id=None, check_mode=False, now=None):
    """Acquire (or renew) the lease for the run ``token``; returns ``{changed, operation, lock, previous}``."""
    return rules.acquire(LeaseObject(kube, app, namespace), owner, token, lease_seconds, takeover, purpose, deployment_id, check_mode, now)


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
            if is_conflict(exc):
                continue
            raise
    raise CutoverError("the lock of app %s kept changing while renewing it (%d attempts)" % (app, ATTEMPTS))


def check(kube, app, namespace, token, before=None, now=None):
    """Raise :class:`LostLock` unless the lease is this token's and live; returns the lease."""
    return rules.check(LeaseObject(kube, app, namespace), token, before, now)


def release(kube, app, namespace, token, check_mode=False, now=None):
    """Release the lease of the run ``token``; returns ``{changed, operation, lock, previous}`` (``lock`` None after)."""
    return rules.release(LeaseObject(kube, app, namespace), token, check_mode, now)


# -- the heartbeat -------------------------------------------------------------------------------
def hold(kube, app, namespace, token, lease_seconds, controller, controller_problem=controllers.problem, **pace):
    """Keep this run's lease while its controller lives (:func:`lease_rules.hold`, over the Lease; ``pace`` as there)."""
    validate(token=token, lease_seconds=lease_seconds)

    def renewed():
        try:
            renew(kube, app, namespace, token, lease_seconds)
        except LostLock as exc:
            return exc.message
        return None

    return rules.hold(renewed, label(app), lease_seconds, controller, controller_problem, **pace)


# -- fencing: the waits and changes of a run that holds the lock -------------------------------------------
class Fence(rules.LeaseFence):
    """The lease ``token`` holds on an app: checked right before each change, renewed (when ``lease_seconds`` is
    given, else checked) on the looks of waits (:mod:`fence` enters it for a module run).

    With ``controller`` (the run's ``ansible-playbook`` process, see :mod:`controller`), the work also stops
    once that process is gone: a task's worker and an ``async`` job outlive a killed controller, and must not
    go on changing the app while its lease runs out.
    """

    def __init__(self, kube, app, namespace, token, lease_seconds=None, controller=None, clock=time.monotonic, controller_problem=None):
        validate(token=token, lease_seconds=lease_seconds)
        super().__init__(
            LeaseObject(kube, app, namespace),
            token,
            controller=controller,
            renews=bool(lease_seconds),
            lease_seconds=lease_seconds,
            clock=clock,
            controller_problem=controller_problem or controllers.problem,
        )


def guard(fence, before):
    if fence is not None:
        fence.guard(before)


def look(fence, what):
    if fence is not None:
        fence.look(what)
