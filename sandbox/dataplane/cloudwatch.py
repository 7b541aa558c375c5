"""The sandbox's CloudWatch for the load balancer: ``AWS/ApplicationELB`` as AWS publishes it, alarms as CloudWatch evaluates them.

moto stores whatever it is given and answers at once; AWS does not, and a
release check that passes against moto can pass on AWS without evidence. So the
data plane's metrics live here, with AWS's semantics (the time constants, the
period and the publication lag, are :class:`Settings`; the sandbox compresses
them, the semantics stay):

- one datapoint per metric and dimension set per period ``[t, t+P)`` aligned to
  the clock, timestamped ``t``, published ``lag`` seconds after the period ended;
- no datapoint at all where nothing happened: no ``RequestCount`` for a period
  without requests, no ``HTTPCode_*`` count for a period without such answers
  (ALB publishes no zeros);
- counts are statistic sets whose samples are all 1 (``Sum`` is the count;
  ``Minimum``, ``Maximum`` and ``Average`` are 1, as AWS documents for ALB's
  counts); ``TargetResponseTime`` keeps every response time, so percentiles
  (``p50``, ``p90``, ``p99``, any ``pNN.N``) come from the real distribution, through
  GetMetricStatistics ``ExtendedStatistics`` and GetMetricData ``Stat``;
- ``HealthyHostCount`` and ``UnHealthyHostCount`` are gauges sampled every
  second for each target group a listener uses, published every period, zeros
  included;
- a query's buckets start at its StartTime rounded down to the metric's period
  (AWS rounds to the minute) and step by the query's Period; only buckets with
  data are returned;
- PutMetricData refuses namespaces that begin with ``AWS/``
  (InvalidParameterValue), as AWS does: nobody can write the load balancer's
  metrics but the load balancer;
- metric alarms start in ``INSUFFICIENT_DATA`` and are evaluated every period
  like CloudWatch does (threshold and comparison, EvaluationPeriods,
  DatapointsToAlarm, TreatMissingData; the most recent real datapoints of an
  evaluation range a few periods longer than EvaluationPeriods), with AWS's
  state reasons and a history entry per transition. Alarms on metric math,
  anomaly bands and composite alarms are not evaluated (they keep their state).

Everything but :func:`install` and :func:`evaluate_alarms` is pure and tested
without moto.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LOG = logging.getLogger("sandbox.dataplane")
NAMESPACE = "AWS/ApplicationELB"
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d{1,10})?|100)$")
COMPARISONS = {
    "GreaterThanOrEqualToThreshold": (lambda value, threshold: value >= threshold, "greater than or equal to"),
    "GreaterThanThreshold": (lambda value, threshold: value > threshold, "greater than"),
    "LessThanThreshold": (lambda value, threshold: value < threshold, "less than"),
    "LessThanOrEqualToThreshold": (lambda value, threshold: value <= threshold, "less than or equal to"),
}
MISSING_TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")
EXTRA_PERIODS = 3  # CloudWatch looks a few periods further back than EvaluationPeriods when data is missing


@dataclass(frozen=True)
class Settings:
    """The time constants: the metrics' period and how long after its end a period is published."""

    period: int = 60
    lag: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.period, bool) or not isinstance(self.period, int) or self.period < 1:
            raise ValueError(f"the metric period must be a whole number of seconds, at least 1; got {self.period!r}")
        if self.lag < 0:
            raise ValueError(f"the metric lag must be 0 seconds or more; got {self.lag!r}")


AWS = Settings(period=60, lag=60.0)  # AWS/ApplicationELB: 60-second periods, arriving about a minute after they end


# -- datapoints ---------------------------------------------------------------------------------
@dataclass
class Aggregate:
    """One datapoint: a statistic set, with every sample kept where percentiles are wanted."""

    sample_count: float
    total: float
    minimum: float
    maximum: float
    values: list[float] | None = None

    @classmethod
    def count(cls, n: int) -> Aggregate:
        """A count as ALB publishes it: ``n`` samples of 1."""
        return cls(float(n), float(n), 1.0, 1.0)

    @classmethod
    def of(cls, values: Sequence[float]) -> Aggregate:
        if not values:
            raise ValueError("a datapoint needs at least one value")
        return cls(float(len(values)), float(sum(values)), float(min(values)), float(max(values)), [float(v) for v in values])


def statistic(aggregates: Sequence[Aggregate], stat: str) -> float | None:
    """A statistic over datapoints (``Sum``, ``SampleCount``, ``Average``, ``Minimum``, ``Maximum``, ``pNN``); None if unknown."""
    if not aggregates:
        return None
    samples = sum(a.sample_count for a in aggregates)
    if stat == "Sum":
        return sum(a.total for a in aggregates)
    if stat == "SampleCount":
        return samples
    if stat == "Average":
        return sum(a.total for a in aggregates) / samples if samples else None
    if stat == "Minimum":
        return min(a.minimum for a in aggregates)
    if stat == "Maximum":
        return max(a.maximum for a in aggregates)
    match = PERCENTILE.match(stat)
    if match is None:
        return None
    if any(a.values is None for a in aggregates):
        # statistic sets without their samples: only a set whose samples are all one value has percentiles
        low, high = min(a.minimum for a in aggregates), max(a.maximum for a in aggregates)
        return low if low == high else None
    return percentile([v for a in aggregates for v in a.values or ()], float(match.group(1)))


def percentile(values: Sequence[float], rank: float) -> float | None:
    """The nearest-rank percentile (``rank`` 0-100) of the values."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, math.ceil(rank / 100.0 * len(ordered)) - 1)
    return ordered[min(index, len(ordered) - 1)]


def valid_statistic(stat: str) -> bool:
    return stat in STATISTICS or PERCENTILE.match(stat or "") is not None


def buckets(
    points: Iterable[tuple[int, Aggregate]], start: float, end: float, period: int, resolution: int
) -> list[tuple[int, list[Aggregate]]]:
    """Datapoints of ``[start, end)`` grouped into query buckets, oldest first.

    Buckets begin at ``start`` rounded down to the metric's resolution (its
    period; AWS rounds to the minute) and last ``period`` seconds each.
    """
    origin = int(start // resolution * resolution)
    grouped: dict[int, list[Aggregate]] = {}
    for moment, aggregate in points:
        if origin <= moment < end:
            bucket = origin + (moment - origin) // period * period
            grouped.setdefault(bucket, []).append(aggregate)
    return sorted(grouped.items())


def dimension_key(dimensions: Iterable[Mapping[str, Any]] | Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    if isinstance(dimensions, Mapping):
        return tuple(sorted((str(k), str(v)) for k, v in dimensions.items()))
    return tuple(sorted((str(d["Name"]), str(d.get("Value"))) for d in dimensions))


SeriesKey = tuple[str, str, str, str, tuple[tuple[str, str], ...]]  # account, region, namespace, metric, dimensions


class Store:
    """Published datapoints per series; shared by the publisher (the reconcile loop) and moto's request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, dict[int, Aggregate]] = {}
        self._units: dict[SeriesKey, str] = {}

    def put(self, account: str, region: str, name: str, dimensions: Any, start: int, aggregate: Aggregate, unit: str) -> None:
        key = (account, region, NAMESPACE, name, dimension_key(dimensions))
        with self._lock:
            self._series.setdefault(key, {})[int(start)] = aggregate
            self._units[key] = unit

    def points(
        self, account: str, region: str, namespace: str, name: str, dimensions: Any
    ) -> tuple[list[tuple[int, Aggregate]], str | None]:
        key = (account, region, namespace, name, dimension_key(dimensions))
        with self._lock:
            return sorted(self._series.get(key, {}).items()), self._units.get(key)

    def series(self) -> list[SeriesKey]:
        with self._lock:
            return list(self._series)

    def clear(self) -> None:
        with self._lock:
            self._series.clear()
            self._units.clear()


# -- alarms (pure) ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlarmRule:
    """What CloudWatch evaluates of a metric alarm."""

    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    comparison: str
    threshold: float
    treat_missing: str = "missing"
    statistic: str = "Sum"


@dataclass(frozen=True)
class Evaluation:
    state: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)


def _stamp(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%d/%m/%y %H:%M:%S")


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def evaluate(rule: AlarmRule, values: Mapping[int, float], now: float, state: str) -> Evaluation:
    """The alarm's state after an evaluation at ``now``, from its datapoints (period start -> value).

    As CloudWatch documents it: the evaluation range is the last
    EvaluationPeriods + a few periods that ended by ``now``. With at least
    EvaluationPeriods real datapoints in it, the most recent of them decide and
    TreatMissingData plays no part; with fewer, all real ones count and the
    missing ones are filled as the alarm says (``breaching`` / ``notBreaching``;
    ``missing`` and ``ignore`` fill nothing). With no datapoint at all:
    ``missing`` -> INSUFFICIENT_DATA, ``ignore`` -> the state is kept,
    ``breaching`` -> ALARM, ``notBreaching`` -> OK. ALARM when at least
    DatapointsToAlarm of the evaluated points breach, else OK.
    """
    breaches, words = COMPARISONS[rule.comparison]
    last_end = int(now // rule.period * rule.period)
    span = [last_end - (k + 1) * rule.period for k in range(rule.evaluation_periods + EXTRA_PERIODS)]  # newest first
    real = [(moment, float(values[moment])) for moment in span if moment in values]
    data = {
        "version": "1.0",
        "queryDate": _iso(now),
        "startDate": _iso(span[-1]),
        "statistic": rule.statistic,
        "period": rule.period,
        "threshold": rule.threshold,
        "recentDatapoints": [value for _, value in reversed(real[: rule.evaluation_periods])],
    }
    if not real:
        none = f"Threshold Crossed: no datapoints were received for {rule.evaluation_periods} periods and {rule.evaluation_periods}"
        if rule.treat_missing == "breaching":
            return Evaluation("ALARM", f"{none} missing datapoints were treated as [Breaching].", data)
        if rule.treat_missing == "notBreaching":
            return Evaluation("OK", f"{none} missing datapoints were treated as [NonBreaching].", data)
        if rule.treat_missing == "ignore":
            return Evaluation(state, "", data)
        return Evaluation(
            "INSUFFICIENT_DATA",
            f"Insufficient Data: {rule.evaluation_periods} datapoint{'s were' if rule.evaluation_periods > 1 else ' was'} unknown.",
            data,
        )
    evaluated = real[: rule.evaluation_periods]
    filled = rule.evaluation_periods - len(evaluated)
    breaching = sum(1 for _, value in evaluated if breaches(value, rule.threshold))
    if rule.treat_missing == "breaching":
        breaching += filled
    alarm = breaching >= rule.datapoints_to_alarm
    shown = ", ".join(f"{value!r} ({_stamp(moment)})" for moment, value in evaluated)
    data["evaluatedDatapoints"] = [{"timestamp": _iso(moment), "value": value} for moment, value in evaluated]
    count = len(evaluated)
    if alarm:
        reason = (
            f"Threshold Crossed: {breaching} out of the last {rule.evaluation_periods} datapoints [{shown}] "
            f"{'was' if breaching == 1 else 'were'} {words} the threshold ({rule.threshold!r}) "
            f"(minimum {rule.datapoints_to_alarm} datapoint{'s' if rule.datapoints_to_alarm > 1 else ''} for OK -> ALARM transition)."
        )
        return Evaluation("ALARM", reason, data)
    reason = (
        f"Threshold Crossed: {count} datapoint{'s' if count > 1 else ''} [{shown}] "
        f"{'was' if count == 1 else 'were'} not {words} the threshold ({rule.threshold!r})."
    )
    return Evaluation("OK", reason, data)


def alarm_rule(alarm: Any) -> AlarmRule | None:
    """The rule of a moto ``Alarm``, or None when the sandbox does not evaluate its kind."""
    if getattr(alarm, "rule", None) or getattr(alarm, "metric_data_queries", None) or not alarm.metric_name:
        return None
    if alarm.comparison_operator not in COMPARISONS:
        return None
    stat = alarm.extended_statistic or alarm.statistic
    if not stat or not valid_statistic(stat):
        return None
    evaluation_periods = int(alarm.evaluation_periods)
    return AlarmRule(
        period=int(alarm.period),
        evaluation_periods=evaluation_periods,
        datapoints_to_alarm=int(alarm.datapoints_to_alarm or evaluation_periods),
        comparison=alarm.comparison_operator,
        threshold=float(alarm.threshold),
        treat_missing=alarm.treat_missing_data or "missing",
        statistic=stat,
    )


# -- moto ---------------------------------------------------------------------------------------------
STORE = Store()
_INSTALLED: dict[str, tuple[Any, str, Any]] = {}
_settings = Settings(period=5, lag=3.0)


def settings() -> Settings:
    return _settings


def _epoch(moment: Any) -> float:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _when(moment: int) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def _moto_points(backend: Any, namespace: str, name: str, dimensions: Any) -> list[tuple[int, Aggregate]]:
    """A custom metric's datapoints from moto's store, as aggregates at whole seconds."""
    from moto.cloudwatch.models import MetricAggregatedDatum, MetricDatum

    wanted = dimension_key(dimensions)
    points = []
    for datum in list(backend.metric_data):
        if datum.namespace != namespace or datum.name != name:
            continue
        if tuple(sorted((d.name or "", d.value or "") for d in datum.dimensions)) != wanted:
            continue
        moment = int(_epoch(datum.timestamp))
        if isinstance(datum, MetricDatum):
            points.append((moment, Aggregate.of([float(datum.value)])))
        elif isinstance(datum, MetricAggregatedDatum):
            points.append((moment, Aggregate(float(datum.sample_count), float(datum.sum), float(datum.min), float(datum.max))))
    return points


def series_values(
    account: str,
    region: str,
    namespace: str,
    name: str,
    dimensions: Any,
    stat: str,
    start: float,
    end: float,
    period: int,
    backend: Any = None,
) -> dict[int, float]:
    """Bucket start -> statistic, for a query or an alarm."""
    if namespace == NAMESPACE:
        points, _ = STORE.points(account, region, namespace, name, dimensions)
        resolution = _settings.period
    else:
        points, resolution = (_moto_points(backend, namespace, name, dimensions) if backend is not None else []), 1
    values = {}
    for moment, group in buckets(points, start, end, period, resolution):
        value = statistic(group, stat)
        if value is not None:
            values[moment] = value
    return values


def evaluate_alarms(now: float) -> int:
    """Evaluate every metric alarm of every account and region once; returns how many changed state."""
    from moto.cloudwatch.models import cloudwatch_backends

    changed = 0
    for account, regions in list(cloudwatch_backends.items()):
        for region, backend in list(regions.items()):
            for alarm in list(backend.alarms.values()):
                rule = alarm_rule(alarm)
                if rule is None:
                    continue
                dims = [{"Name": d.name, "Value": d.value} for d in alarm.dimensions]
                span = rule.period * (rule.evaluation_periods + EXTRA_PERIODS + 1)
                end = now // rule.period * rule.period
                values = series_values(
                    account, region, alarm.namespace, alarm.metric_name, dims, rule.statistic, end - span, end, rule.period, backend
                )
                result = evaluate(rule, values, now, alarm.state_value)
                if result.state != alarm.state_value:
                    alarm.update_state(result.reason, json.dumps(result.data), result.state)
                    changed += 1
                    LOG.info("alarm %s: %s (%s)", alarm.name, result.state, result.reason)
    return changed


def _datapoint(moment: int, group: list[Aggregate], stats: list[str], extended: list[str], unit: str | None) -> dict[str, Any]:
    point: dict[str, Any] = {"Timestamp": _when(moment)}
    for stat in stats:
        value = statistic(group, stat)
        if value is not None:
            point[stat] = value
    if extended:
        point["ExtendedStatistics"] = {stat: value for stat in extended if (value := statistic(group, stat)) is not None}
    if unit:
        point["Unit"] = unit
    return point


def install(config: Settings) -> None:
    """Patch moto in this process: AWS/ApplicationELB answered from :data:`STORE`, alarms, PutMetricData. Idempotent."""
    global _settings
    from moto.cloudwatch.exceptions import InvalidParameterCombination, InvalidParameterValue, ValidationError
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.responses import ActionResult

    _settings = config
    if _INSTALLED:
        return
    originals = {
        "get_metric_statistics": (CloudWatchResponse, "get_metric_statistics", CloudWatchResponse.get_metric_statistics),
        "get_metric_data": (CloudWatchResponse, "get_metric_data", CloudWatchResponse.get_metric_data),
        "put_metric_data": (CloudWatchBackend, "put_metric_data", CloudWatchBackend.put_metric_data),
        "put_metric_alarm": (CloudWatchBackend, "put_metric_alarm", CloudWatchBackend.put_metric_alarm),
    }
    original_statistics = CloudWatchResponse.get_metric_statistics
    original_data = CloudWatchBackend.get_metric_data
    original_put = CloudWatchBackend.put_metric_data
    original_alarm = CloudWatchBackend.put_metric_alarm

    def get_metric_statistics(self: Any) -> Any:
        if self._get_param("Namespace") != NAMESPACE:
            return original_statistics(self)
        name = self._get_param("MetricName")
        start, end = _epoch(self._get_param("StartTime")), _epoch(self._get_param("EndTime"))
        period = self._get_int_param("Period")
        stats = self._get_param("Statistics", []) or []
        extended = self._get_param("ExtendedStatistics", []) or []
        if not stats and not extended:
            raise InvalidParameterCombination("Must specify either Statistics or ExtendedStatistics")
        if stats and extended:
            raise InvalidParameterCombination("Only one of Statistics or ExtendedStatistics can be specified.")  # AWS: not both
        for stat in stats:
            if stat not in STATISTICS:
                raise InvalidParameterValue(f"The value {stat} for parameter Statistics is not supported.")
        for stat in extended:
            if not PERCENTILE.match(stat):
                raise InvalidParameterValue(f"The value {stat} for parameter ExtendedStatistics is not supported.")
        if not period or period < 1:
            raise InvalidParameterValue("The parameter Period must be greater than 0.")
        if start >= end:
            raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
        points, unit = STORE.points(self.current_account, self.region, NAMESPACE, name, self._get_param("Dimensions", []) or [])
        data = [_datapoint(m, g, stats, extended, unit) for m, g in buckets(points, start, end, period, _settings.period)]
        return ActionResult({"Label": name, "Datapoints": data})

    def get_metric_data(
        self: Any, queries: list[dict[str, Any]], start_time: Any, end_time: Any, scan_by: str = "TimestampAscending"
    ) -> Any:
        ours = [q for q in queries if (q.get("MetricStat") or {}).get("Metric", {}).get("Namespace") == NAMESPACE]
        if not ours:
            return original_data(self, queries, start_time, end_time, scan_by)
        start, end = _epoch(start_time), _epoch(end_time)
        if start >= end:
            raise ValidationError("The parameter EndTime must be greater than StartTime.")
        rest = [q for q in queries if q not in ours]
        theirs = {r["id"]: r for r in (original_data(self, rest, start_time, end_time, scan_by) if rest else [])}
        results = []
        for query in queries:
            if query not in ours:
                if query["Id"] in theirs:
                    results.append(theirs[query["Id"]])
                continue
            stat_query = query["MetricStat"]
            stat, period = stat_query.get("Stat", ""), int(stat_query.get("Period") or 0)
            if not valid_statistic(stat):
                raise ValidationError(f"The value {stat} for parameter MetricDataQueries.member.1.MetricStat.Stat is not supported.")
            if period < 1:
                raise ValidationError("The parameter MetricDataQueries.member.1.MetricStat.Period must be greater than 0.")
            metric = stat_query["Metric"]
            values = series_values(
                self.account_id, self.region_name, NAMESPACE, metric["MetricName"], metric.get("Dimensions", []), stat, start, end, period
            )
            moments = sorted(values, reverse=scan_by != "TimestampAscending")
            if query.get("ReturnData", True) in (False, "false"):
                continue
            results.append(
                {
                    "id": query["Id"],
                    "label": query.get("Label") or f"{metric['MetricName']} {stat}",
                    "values": [values[m] for m in moments],
                    "timestamps": [_when(m) for m in moments],
                    "status_code": "Complete",
                }
            )
        return results

    def put_metric_data(self: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        if str(namespace or "").startswith("AWS/"):
            raise InvalidParameterValue(f"The value {namespace} for parameter Namespace is invalid.")
        return original_put(self, namespace, metric_data)

    alarm_signature = inspect.signature(original_alarm)

    def put_metric_alarm(self: Any, *args: Any, **kwargs: Any) -> Any:
        given = alarm_signature.bind(self, *args, **kwargs).arguments
        name, namespace, period = given["name"], given["namespace"], given.get("period")
        evaluation_periods, datapoints = given.get("evaluation_periods"), given.get("datapoints_to_alarm")
        treat = given.get("treat_missing_data")
        if namespace == NAMESPACE and period and int(period) % _settings.period:
            raise ValidationError(
                f"AWS/ApplicationELB metrics have {_settings.period}-second periods here (AWS: 60); "
                f"the alarm's Period must be a multiple of {_settings.period}, got {period}"
            )
        if datapoints and evaluation_periods and int(datapoints) > int(evaluation_periods):
            raise ValidationError("DatapointsToAlarm must be less than or equal to EvaluationPeriods")
        if treat and treat not in MISSING_TREATMENTS:
            supported = ", ".join(MISSING_TREATMENTS)
            raise ValidationError(f"Option {treat} is not supported. Supported options for parameter TreatMissingData are {supported}.")
        existed = name in self.alarms
        alarm = original_alarm(self, *args, **kwargs)
        if not existed:  # AWS: a new alarm has no data yet (moto: OK)
            alarm.state_value = "INSUFFICIENT_DATA"
            alarm.state_reason = "Unchecked: Initial alarm creation"
        return alarm

    CloudWatchResponse.get_metric_statistics = get_metric_statistics
    CloudWatchBackend.get_metric_data = get_metric_data
    CloudWatchBackend.put_metric_data = put_metric_data
    CloudWatchBackend.put_metric_alarm = put_metric_alarm
    _INSTALLED.update(originals)


def uninstall() -> None:
    for cls, name, function in _INSTALLED.values():
        setattr(cls, name, function)
    _INSTALLED.clear()
