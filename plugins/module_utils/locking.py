# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one entry point for taking and giving back the lock of a service, on every platform.

Every module that takes or releases the lease comes here: the ``lock`` and
``k8s_lock`` modules, the ``journal`` and ``k8s_journal`` modules when they open
an entry under the lock or close it and give the lock back, and the rollbacks.
The rules are :mod:`lease_rules`' over a lease *store* (``lease.Table`` in
DynamoDB, ``k8s_lease.LeaseObject`` on Kubernetes); the journal entries go to a
journal (``journal.Journal``, ``k8s_journal.Journal``: ``get``, ``start``,
``finish`` and ``validate_record``).

* :func:`take` acquires the lease for a run, naming the entry it writes, and
  when that took over a dead run's lease, settles the entry that lease named
  (:func:`settle_takeover`): a re-run of the same release adopts it, any other
  run closes it as ``interrupted``, naming itself.
* :func:`open_entry` takes the lock and opens the run's entry, which records
  whom it took the lock from; if the entry cannot be opened, the lock is given
  back, so a run that could not open its entry holds nothing.
* :func:`give_back` makes the run's last write, then releases the lease; a run
  whose lease is another run's now writes nothing (``LostLock``), and a failed
  write still releases the lease.
"""

from __future__ import annotations

from ansible_collections.cutover.bluegreen.plugins.module_utils import journal
from ansible_collections.cutover.bluegreen.plugins.module_utils import lease_rules as rules
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, isoformat, utcnow


def _reason(locked):
    return "named" if locked["operation"] == rules.TAKE_OVER_NAMED else "expired"


def settle_takeover(entries, locked, owner, purpose=None, deployment_id=None, check_mode=False, now=None):
    """After ``locked`` (what :func:`lease_rules.acquire` returned) took a dead run's lease over: adopt or interrupt the
    entry it names (:func:`journal.plan_settle`).

    Returns None when nothing was taken over, else ``{deployment_id, action, reason, entry}`` (``entry`` the
    stored entry before, for an adoption).
    """
    if locked["operation"] not in rules.TAKEOVERS:
        return None
    previous = locked["previous"] or {}
    named = previous.get("deployment_id")
    entry = entries.get(named) if named else None
    action, why = journal.plan_settle(previous, entry, deployment_id)
    if action == journal.INTERRUPT:
        moment = now or utcnow()
        note = {"owner": owner, "purpose": purpose, "deployment_id": deployment_id, "at": isoformat(moment), "reason": _reason(locked)}
        entries.finish(
            named,
            journal.INTERRUPTED,
            summary=journal.interrupted_summary(previous, owner, purpose, deployment_id, _reason(locked)),
            record={"interrupted_by": note},
            check_mode=check_mode,
            now=moment,
        )
    return dict(deployment_id=named, action=action, reason=why, entry=entry)


def take(lock, entries, owner, token, lease_seconds, purpose=None, takeover=None, deployment_id=None, check_mode=False, now=None):
    """Take the lock for the run ``token`` (naming its entry ``deployment_id``, if any); returns ``(locked, settled)``.

    ``locked`` is :func:`lease_rules.acquire`'s result, ``settled`` :func:`settle_takeover`'s.
    """
    locked = rules.acquire(lock, owner, token, lease_seconds, takeover, purpose, deployment_id, check_mode, now)
    settled = settle_takeover(entries, locked, owner, purpose, deployment_id, check_mode, now)
    return locked, settled


def open_entry(
    lock,
    entries,
    owner,
    token,
    lease_seconds,
    purpose=None,
    takeover=None,
    deployment_id=None,
    summary=None,
    record=None,
    check_mode=False,
    now=None,
):
    """Take the lock for the run ``token`` and open its entry, which the lease names; returns ``(entry, locked, settled)``.

    The refusals are :func:`lease_rules.acquire`'s. A dead run's lease taken over
    is settled first; the new entry records whom it took the lock from
    (``took_over``), an adopted one who resumed it (``resumed``). When the entry
    cannot be opened the lock is given back.
    """
    moment = now or utcnow()
    record = dict(entries.validate_record(record))
    if deployment_id is not None:
        journal.validate_deployment_id(deployment_id)
    deployment_id = deployment_id or journal.new_deployment_id(moment)
    locked = rules.acquire(lock, owner, token, lease_seconds, takeover, purpose, deployment_id, check_mode, now)
    try:
        settled = settle_takeover(entries, locked, owner, purpose, deployment_id, check_mode, moment)
        if settled is not None:
            previous = locked["previous"]
            record["took_over"] = {
                "owner": previous.get("owner"),
                "purpose": previous.get("purpose"),
                "deployment_id": previous.get("deployment_id"),
                "reason": _reason(locked),
                "at": isoformat(moment),
            }
            if settled["action"] == journal.ADOPT:
                resumed = list(((settled["entry"].get("record") or {}).get("resumed")) or [])
                record["resumed"] = resumed + [{"by": owner, "at": isoformat(moment), "from": previous.get("owner")}]
        entry = entries.start(owner=owner, summary=summary, record=record, deployment_id=deployment_id, check_mode=check_mode, now=moment)
    except Exception:
        if locked["operation"] != rules.UNCHANGED:
            rules.release(lock, token, check_mode=check_mode)
        raise
    return entry, locked, settled


def _release(lock, current, token):
    """Delete the lease read as ``current``; when it changed meanwhile (renewed), release it as it is now."""
    try:
        lock.delete(current, token)
    except rules.Race:
        rules.release(lock, token)


def give_back(lock, token, write=None, check_mode=False, now=None):
    """``write()`` the run's last journal change (if any), then release its lease; returns ``(entry result, lock result)``.

    A run that lost its lock (another run took it over) writes nothing and
    raises :class:`lease_rules.LostLock`: the entry belongs to the run that holds
    the lock now. When writing fails the lease is released all the same (the
    write's error is the one raised).
    """
    rules.validate_token(token)
    moment = now or utcnow()
    current = lock.read()
    previous = lock.view(current, moment)
    action = rules.plan_release(lock.label, previous, token)
    released = dict(changed=action == rules.RELEASE, operation=action, lock=None, previous=previous if previous else None)
    try:
        entry = write() if write else None
    except Exception:
        if action == rules.RELEASE and not check_mode:
            try:
                _release(lock, current, token)
            except CutoverError:
                pass  # the write's failure is what the caller must see
        raise
    if action == rules.RELEASE and not check_mode:
        _release(lock, current, token)
    return entry, released


def journal_task(stores, params, validate_record=journal.validate_record, check_mode=False, shown=None, now=None):
    """What a journal module does (``journal``, ``k8s_journal``): one change of an entry (``state`` started, step or
    finished), with ``lock=acquire`` opened under the lock (:func:`open_entry`), with ``lock=release`` written before
    the lock is given back (:func:`give_back`). The options are checked first (:func:`journal.validate_task`, with the
    journal's ``validate_record``), then ``stores()`` gives the lock store and the journal.

    Returns ``{changed, deployment_id, deployment, missing}``, with ``shown`` (what a diff shows of an entry) the
    ``diff``, and with ``lock``, ``lock`` (the lease after) and ``settled`` (a dead run's entry, when its lease was
    taken over).
    """
    journal.validate_task(params, validate_record)
    lock, entries = stores()
    moment = now or utcnow()
    common = dict(record=params["record"], check_mode=check_mode, now=moment)

    def write():
        if params["state"] == "started":
            return entries.start(owner=params["owner"], summary=params["summary"], deployment_id=params["deployment_id"], **common)
        if params["state"] == "step":
            return entries.step(params["deployment_id"], params["step"], params["status"], **common)
        return entries.finish(params["deployment_id"], params["outcome"], summary=params["summary"], **common)

    locked = settled = None
    if params["lock"] == journal.LOCK_ACQUIRE:
        result, locked, settled = open_entry(
            lock,
            entries,
            params["owner"],
            params["token"],
            params["lease_seconds"],
            purpose=params["purpose"],
            takeover=params["takeover"],
            deployment_id=params["deployment_id"],
            summary=params["summary"],
            **common,
        )
    elif params["lock"] == journal.LOCK_RELEASE:
        result, locked = give_back(lock, params["token"], write, check_mode=check_mode, now=moment)
    else:
        result = write()
    task = dict(
        changed=result["changed"] or bool(locked and locked["changed"]),
        deployment_id=result["deployment_id"],
        deployment=journal.view(result["after"], moment),
        missing=bool(result.get("missing")),
    )
    if shown:
        task["diff"] = dict(before=shown(result["before"]), after=shown(result["after"]))
    if locked is not None:
        task["lock"] = locked["lock"]
    if settled is not None:
        settled.pop("entry", None)
        task["settled"] = settled
    return task


def lock_task(lock, entries, state, owner, token, lease_seconds, purpose=None, takeover=None, deployment_id=None, check_mode=False):
    """What the lock modules do for ``state`` acquired (:func:`take`; a dead run's entry settled is returned as
    ``interrupted``) and released (:func:`give_back`): ``{changed, operation, lock, previous[, interrupted]}``."""
    if state == "released":
        return give_back(lock, token, check_mode=check_mode)[1]
    result, settled = take(lock, entries, owner, token, lease_seconds, purpose, takeover, deployment_id, check_mode)
    if settled is not None:
        settled.pop("entry", None)
        result["interrupted"] = settled
    return result


def diff(result, keys=("owner", "token", "purpose", "deployment_id", "acquired_at", "expires_at")):
    """What the diff of a lock task shows: the holder before and after."""
    return {
        "before": {key: result["previous"].get(key) for key in keys} if result["previous"] else {},
        "after": {key: result["lock"].get(key) for key in keys} if result["lock"] else {},
    }
