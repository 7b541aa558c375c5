"""The three patch formats of the Kubernetes API: JSON merge patch, strategic merge patch, JSON patch.

- JSON merge patch (RFC 7386, ``application/merge-patch+json``): maps merge,
  ``null`` deletes a key, lists are replaced whole.
- Strategic merge patch (``application/strategic-merge-patch+json``): like a merge
  patch, except that the lists Kubernetes marks with a merge key
  (:data:`sandbox.k8s.kinds.MERGE_KEYS`: containers by ``name``, Service ports by
  ``port``, conditions by ``type``...) merge item by item, and the directives
  ``$patch`` (``replace``/``delete``/``merge``), ``$setElementOrder/<list>``,
  ``$deleteFromPrimitiveList/<list>`` and ``$retainKeys`` are honoured.
- JSON patch (RFC 6902, ``application/json-patch+json``), through the ``jsonpatch``
  package.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
CONTENT_TYPES = (JSON_PATCH, MERGE, STRATEGIC)


class PatchError(ValueError):
    """The patch cannot be applied (malformed, or a JSON patch ``test`` failed)."""


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    try:
        return jsonpatch.apply_patch(target, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError, TypeError) as exc:
        raise PatchError(f"the JSON patch cannot be applied: {exc}") from None


def strategic_merge_patch(target: Any, patch: Any, merge_keys: dict[tuple[str, ...], str]) -> Any:
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch is a JSON object")
    return _merge_map(target if isinstance(target, dict) else {}, patch, (), merge_keys)


def _merge_map(target: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...], keys: dict[tuple[str, ...], str]) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip({k: v for k, v in patch.items() if k != "$patch"})
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise PatchError(f"unknown $patch directive {directive!r} at {'.'.join(path) or 'the root'}")
    result = copy.deepcopy(target)
    retain = patch.get("$retainKeys")
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    removals = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$deleteFromPrimitiveList/")}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        here = (*path, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            merged = _merge_map(current if isinstance(current, dict) else {}, value, here, keys)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and here in keys:
            current = result.get(key)
            result[key] = _merge_list(current if isinstance(current, list) else [], value, here, keys)
        else:
            result[key] = _strip(copy.deepcopy(value))
    for key, values in removals.items():
        if isinstance(result.get(key), list):
            result[key] = [item for item in result[key] if item not in values]
    for key, order in orders.items():
        if isinstance(result.get(key), list) and isinstance(order, list):
            result[key] = _ordered(result[key], order, keys.get((*path, key), ""))
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _identity(item: Any, merge_key: str) -> Any:
    if merge_key == "":
        return ("value", repr(item))
    return ("key", item.get(merge_key)) if isinstance(item, dict) else ("value", repr(item))


def _merge_list(target: list[Any], patch: list[Any], path: tuple[str, ...], keys: dict[tuple[str, ...], str]) -> list[Any]:
    merge_key = keys[path]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip(item) for item in patch if not (isinstance(item, dict) and item.get("$patch") == "replace")]
    result = [copy.deepcopy(item) for item in target]
    for item in patch:
        if merge_key == "":  # a set of primitives: add what is missing
            if item not in result:
                result.append(copy.deepcopy(item))
            continue
        if not isinstance(item, dict) or merge_key not in item:
            raise PatchError(f"an item of {'.'.join(path)} lacks its merge key {merge_key!r}")
        identity = _identity(item, merge_key)
        index = next((i for i, existing in enumerate(result) if _identity(existing, merge_key) == identity), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(_merge_map({}, item, (*path, "[]"), keys))
        else:
            result[index] = _merge_map(result[index], item, (*path, "[]"), keys)
    return result


def _ordered(items: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    """Items in the order of ``$setElementOrder`` (those it does not name keep their place after)."""
    wanted = [_identity(entry, merge_key) for entry in order]
    rank = {identity: i for i, identity in enumerate(wanted)}
    named = sorted((item for item in items if _identity(item, merge_key) in rank), key=lambda item: rank[_identity(item, merge_key)])
    others = [item for item in items if _identity(item, merge_key) not in rank]
    return named + others


def _strip(value: Any) -> Any:
    """A value with strategic-merge directives removed (what is stored)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def apply(content_type: str, target: dict[str, Any], patch: Any, merge_keys: dict[tuple[str, ...], str]) -> dict[str, Any]:
    """The patched object; PatchError names the problem."""
    base = content_type.split(";", 1)[0].strip().lower()
    if base == JSON_PATCH:
        result = json_patch(target, patch)
    elif base == MERGE:
        if not isinstance(patch, dict):
            raise PatchError("a merge patch is a JSON object")
        result = merge_patch(target, patch)
    elif base == STRATEGIC:
        result = strategic_merge_patch(target, patch, merge_keys)
    else:
        raise PatchError(f"unsupported patch type {content_type!r}")
    if not isinstance(result, dict):
        raise PatchError("the patched object is not a JSON object")
    return result
