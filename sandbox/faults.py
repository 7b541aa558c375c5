"""Fault injection: the sandbox answers a share of AWS API calls the way a busy AWS does.

AWS throttles callers and now and then fails a request with a 5xx; a deploy
tool must survive both, and must never apply a write twice when it retries one
whose response was lost. The sandbox can do the same on purpose, reproducibly:

``GET    /_sandbox/faults``  the rules, the seed and what was injected so far
``POST   /_sandbox/faults``  ``{"seed": 7, "rules": [rule, ...], "add": false}``: set (or, with ``add``, extend) the rules
``DELETE /_sandbox/faults``  no more faults

A rule: ``{"rate": 0.3, "service": "elbv2", "operation": "DescribeListeners",
"error": "throttling" | "500", "when": "before" | "after", "writes": false,
"times": null}``. ``service`` and ``operation`` are optional (every service,
every operation; either may be a list). ``times`` ends a rule after it failed
that many calls (``{"rate": 1, "times": 1}``: the next matching call fails, no
other). ``writes`` limits a rule to operations that change
something (every operation but Describe*, Get*, List*, Query, Scan and
BatchGet*). A ``500`` is injected ``before`` the request is applied (nothing
changed) or ``after`` it (the change is made and its response is lost, as when
a connection drops); throttling always comes before, as AWS rejects a
throttled request unprocessed.

Each (rule, service, operation) draws from its own random stream seeded with
``seed``, so the n-th call of an operation meets the same fate in every run,
whatever other calls run in between.

The error is the one the service itself answers, in its protocol:

=============================  ===========================================  ==========================
service                        throttling                                   500
=============================  ===========================================  ==========================
ELBv2, Auto Scaling (query)    ``Throttling`` (400)                         ``InternalFailure``
EC2                            ``RequestLimitExceeded`` (503)               ``InternalError``
CloudWatch (JSON, query-compatible)  ``Throttling`` (400, ``x-amzn-query-error``)  ``InternalServiceError``
DynamoDB                       ``ProvisionedThroughputExceededException`` on item
                               operations, ``ThrottlingException`` on the others (400)  ``InternalServerError``
SSM                            ``ThrottlingException`` (400)                ``InternalServerError``
=============================  ===========================================  ==========================

Rules can also be given when the sandbox starts (``python -m sandbox start
--fault-rate 0.3 ...``, the daemon's ``--faults JSON``).
"""

from __future__ import annotations

import io
import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

ROUTE = "/_sandbox/faults"
ERRORS = ("throttling", "500")
WHEN = ("before", "after")
# The names users know (boto3's) -> the signing name in a request's credential scope.
SERVICES = {
    "elbv2": "elasticloadbalancing",
    "elasticloadbalancing": "elasticloadbalancing",
    "autoscaling": "autoscaling",
    "ec2": "ec2",
    "cloudwatch": "monitoring",
    "monitoring": "monitoring",
    "dynamodb": "dynamodb",
    "ssm": "ssm",
}
READ_PREFIXES = ("Describe", "Get", "List", "Query", "Scan", "BatchGet")
DYNAMODB_ITEM_OPERATIONS = {
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
}
# Where the environ marks what was injected, for the API call counter (sandbox.api_calls).
ENVIRON_KEY = "cutover.fault"


class FaultError(ValueError):
    """A rule or setting that makes no sense; the message names the field."""


def is_write(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES)


def _names(value: Any, field: str) -> list[str] | None:
    if value is None or value == "" or value == []:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(item, str) and item for item in values):
        raise FaultError(f"{field} must be a name or a list of names, got {value!r}")
    return values


def validate_rule(rule: Any) -> dict[str, Any]:
    """A rule with its defaults filled in, or a FaultError naming the bad field."""
    if not isinstance(rule, dict):
        raise FaultError(f"a rule must be an object, got {rule!r}")
    unknown = sorted(set(rule) - {"rate", "service", "operation", "error", "when", "writes", "times"})
    if unknown:
        raise FaultError(f"unknown rule fields: {', '.join(unknown)} (allowed: rate, service, operation, error, when, writes, times)")
    rate = rule.get("rate")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise FaultError(f"rate must be a number from 0 to 1, got {rate!r}")
    services = _names(rule.get("service"), "service")
    for service in services or []:
        if service not in SERVICES:
            raise FaultError(f"service {service!r} is not one of {', '.join(sorted(SERVICES))}")
    error = rule.get("error", "throttling")
    if error not in ERRORS:
        raise FaultError(f"error must be one of {', '.join(ERRORS)}, got {error!r}")
    when = rule.get("when", "before")
    if when not in WHEN:
        raise FaultError(f"when must be one of {', '.join(WHEN)}, got {when!r}")
    if when == "after" and error != "500":
        raise FaultError("when=after (the response of an applied request is lost) goes with error=500; AWS throttles before applying")
    writes = rule.get("writes", False)
    if not isinstance(writes, bool):
        raise FaultError(f"writes must be true or false, got {writes!r}")
    times = rule.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise FaultError(f"times must be a whole number of at least 1 (or absent: no limit), got {times!r}")
    return {
        "rate": float(rate),
        "service": sorted({SERVICES[service] for service in services}) if services else None,
        "operation": _names(rule.get("operation"), "operation"),
        "error": error,
        "when": when,
        "writes": writes,
        "times": times,
    }


def validate_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise FaultError(f"seed must be a whole number, got {seed!r}")
    return seed


def _protocol(environ: dict[str, Any], service: str) -> str:
    content_type = environ.get("CONTENT_TYPE", "")
    if "x-amz-json" in content_type:
        return "json"
    if service == "ec2":
        return "ec2"
    return "query"


def error_code(service: str, operation: str, error: str) -> tuple[int, str, str]:
    """``(HTTP status, code, message)`` that ``service`` answers for a throttled or failed ``operation``."""
    if error == "throttling":
        if service == "ec2":
            return 503, "RequestLimitExceeded", "Request limit exceeded."
        if service == "dynamodb":
            if operation in DYNAMODB_ITEM_OPERATIONS:
                return (
                    400,
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded.",
                )
            return 400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."
        if service == "ssm":
            return 400, "ThrottlingException", "Rate exceeded"
        return 400, "Throttling", "Rate exceeded"
    if service == "ec2":
        return 500, "InternalError", "An internal error has occurred"
    if service in ("dynamodb", "ssm"):
        return 500, "InternalServerError", "Internal server error"
    if service == "monitoring":
        return 500, "InternalServiceError", "Internal service error"
    return 500, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure."


def error_response(environ: dict[str, Any], service: str, operation: str, error: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """``(status line, headers, body)`` of the error, in the protocol the request used."""
    status, code, message = error_code(service, operation, error)
    request_id = str(uuid.uuid4())
    reason = {400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}[status]
    protocol = _protocol(environ, service)
    if protocol == "json":
        content_type = environ.get("CONTENT_TYPE", "application/x-amz-json-1.0").split(";")[0]
        headers = [("Content-Type", content_type), ("x-amzn-RequestId", request_id)]
        if service == "monitoring":
            # CloudWatch speaks JSON in "query compatible" mode: the query error code travels in this header.
            fault = "Sender" if status < 500 else "Receiver"
            headers.append(("x-amzn-query-error", f"{code};{fault}"))
            type_name = {"Throttling": "ThrottlingException", "InternalServiceError": "InternalServiceFault"}[code]
        else:
            type_name = code
        prefix = {"dynamodb": "com.amazonaws.dynamodb.v20120810#", "monitoring": "com.amazonaws.cloudwatch#"}.get(service, "")
        body = json.dumps({"__type": prefix + type_name, "message": message}).encode()
    elif protocol == "ec2":
        headers = [("Content-Type", "text/xml;charset=UTF-8")]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        ).encode()
    else:
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
        kind = "Sender" if status < 500 else "Receiver"
        body = (
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
    headers.append(("Content-Length", str(len(body))))
    return f"{status} {reason}", headers, body


class Faults:
    """The rules in force and their random streams (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seed = 0
        self.rules: list[dict[str, Any]] = []
        self._streams: dict[tuple[int, str, str], random.Random] = {}
        self._fired: Counter[int] = Counter()
        self.injected: Counter[str] = Counter()

    def configure(self, rules: Any = None, seed: Any = None, add: bool = False) -> dict[str, Any]:
        if rules is None:
            rules = []
        if not isinstance(rules, list):
            raise FaultError(f"rules must be a list of rules, got {rules!r}")
        checked = [validate_rule(rule) for rule in rules]
        with self._lock:
            if seed is not None:
                self.seed = validate_seed(seed)
            self.rules = (self.rules if add else []) + checked
            self._streams.clear()
            self._fired.clear()
            self.injected.clear()
            return self._describe()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return self._describe()

    def _describe(self) -> dict[str, Any]:
        injected: dict[str, dict[str, int]] = {}
        for key, count in sorted(self.injected.items()):
            action, kind = key.rsplit("|", 1)
            injected.setdefault(action, {})[kind] = count
        return {"seed": self.seed, "rules": list(self.rules), "injected": injected, "total": sum(self.injected.values())}

    def choose(self, service: str, operation: str) -> dict[str, Any] | None:
        """The rule that fails this call, or None (each matching rule draws once from its own stream)."""
        with self._lock:
            for index, rule in enumerate(self.rules):
                if rule["service"] is not None and service not in rule["service"]:
                    continue
                if rule["operation"] is not None and operation not in rule["operation"]:
                    continue
                if rule["writes"] and not is_write(operation):
                    continue
                if rule["times"] is not None and self._fired[index] >= rule["times"]:
                    continue
                key = (index, service, operation)
                stream = self._streams.get(key)
                if stream is None:
                    stream = self._streams[key] = random.Random(f"{self.seed}:{index}:{service}:{operation}")  # noqa: S311 - reproducible on purpose
                if stream.random() < rule["rate"]:
                    self._fired[index] += 1
                    kind = "throttling" if rule["error"] == "throttling" else f"500-{rule['when']}"
                    self.injected[f"{service}:{operation}|{kind}"] += 1
                    return rule
            return None


def _respond(start_response: Callable[..., Any], status: int, document: dict[str, Any]) -> list[bytes]:
    body = json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"
    start_response(
        f"{status} {'OK' if status == 200 else 'Bad Request'}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def faulting(
    app: Callable[..., Iterable[bytes]], faults: Faults, action_of: Callable[[dict[str, Any], bytes], str]
) -> Callable[..., Iterable[bytes]]:
    """``app`` with the control route and the faults applied to AWS API calls.

    ``action_of(environ, body)`` names a call ``service:Operation`` (the counter's
    own parser; the body has been read and put back by the counter).
    """

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == ROUTE:
            method = environ.get("REQUEST_METHOD", "GET")
            try:
                if method == "DELETE":
                    return _respond(start_response, 200, faults.configure([]))
                if method == "POST":
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                    try:
                        document = json.loads(environ["wsgi.input"].read(length) or b"{}")
                    except ValueError:
                        raise FaultError("the body must be a JSON object") from None
                    if not isinstance(document, dict):
                        raise FaultError("the body must be a JSON object")
                    unknown = sorted(set(document) - {"rules", "seed", "add"})
                    if unknown:
                        raise FaultError(f"unknown fields: {', '.join(unknown)} (allowed: rules, seed, add)")
                    return _respond(
                        start_response, 200, faults.configure(document.get("rules"), document.get("seed"), bool(document.get("add")))
                    )
                return _respond(start_response, 200, faults.describe())
            except FaultError as exc:
                return _respond(start_response, 400, {"error": str(exc)})
        if path.startswith(("/_sandbox/", "/moto-api")) or not faults.rules:
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        service, _, operation = action_of(environ, body).partition(":")
        rule = faults.choose(service, operation)
        if rule is None:
            return app(environ, start_response)
        kind = "throttling" if rule["error"] == "throttling" else f"500-{rule['when']}"
        environ[ENVIRON_KEY] = kind
        if rule["when"] == "after":
            # Apply the request, then lose its response.
            captured: list[Any] = []
            result = app(environ, lambda status, headers, exc_info=None: captured.append(status) or (lambda data: None))
            try:
                for _chunk in result:
                    pass
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()
        status, headers, payload = error_response(environ, service, operation, rule["error"])
        start_response(status, headers)
        return [payload]

    return application
