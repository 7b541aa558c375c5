"""API errors as Kubernetes reports them: a ``Status`` object with the right code, reason and message."""

from __future__ import annotations

from typing import Any

from .kinds import Kind


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            document["details"] = self.details
        return document


def _details(kind: Kind, name: str, **more: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind.plural}
    if kind.group:
        details["group"] = kind.group
    details.update(more)
    return details


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind.qualified} "{name}" not found', _details(kind, name))


def already_exists(kind: Kind, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{kind.qualified} "{name}" already exists', _details(kind, name))


def conflict(
    kind: Kind, name: str, why: str = "the object has been modified; please apply your changes to the latest version and try again"
) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} "{name}": {why}', _details(kind, name))


def invalid(kind: Kind, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """``causes``: (field, reason such as FieldValueInvalid, message such as 'Invalid value: -1: must be ...')."""
    label = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    rendered = [f"{field}: {message}" for field, _, message in causes]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details = {"name": name, "kind": kind.kind, "causes": [{"reason": r, "message": m, "field": f} for f, r, m in causes]}
    if kind.group:
        details["group"] = kind.group
    return ApiError(422, "Invalid", f'{label} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(message: str, kind: Kind | None = None, name: str = "") -> ApiError:
    return ApiError(403, "Forbidden", message, _details(kind, name) if kind else None)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: {content_type}"
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_many_requests(message: str, details: dict[str, Any] | None = None) -> ApiError:
    return ApiError(429, "TooManyRequests", message, details)
