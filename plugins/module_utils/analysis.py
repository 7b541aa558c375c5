# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Is the new colour as good as the old one? The gates of a bake after the switch and of each canary step.

A window of whole periods (those that ended after ``since``, up to ``since +
seconds``) is judged on the load balancer's metrics:

- the new colour's target 5XX rate (``HTTPCode_Target_5XX_Count`` /
  ``RequestCount`` of its target group) and the load balancer's own 5XX rate
  (``HTTPCode_ELB_5XX_Count`` / ``RequestCount``, a load-balancer metric only,
  as on AWS);
- a latency percentile of the new colour's ``TargetResponseTime``;
- each against an absolute limit and against a baseline: for a bake, the old
  colour over the same length of time just before the switch; for a canary
  step, the old colour over the same periods (it serves the rest of the
  traffic meanwhile), and the load balancer's 5XX rate before the canary;
- the CloudWatch alarms the user names: any in ``ALARM`` fails.

Too few requests (new colour or baseline) is "not enough data", which never
passes. While the window is open, a gate that already failed on enough
requests, or an alarm in ALARM, fails at once, so a bad release is caught as
early as the data allows. The arithmetic (:func:`figures`, :func:`judge`,
:func:`window`) is pure and tested with fixed datapoints.
"""

from __future__ import annotations

import re
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils.aws import paginate
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.traffic import (
    FAILED,
    NOT_ENOUGH_DATA,
    PASSED,
    align_down,
    align_up,
    dimensions,
    epoch,
    query,
    read_series,
    stamp,
    total,
    validate_period,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import Condition, waiter_for

PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,3})?)$")
BASELINES = ("before", "concurrent")
DEFAULT_LIMITS = {
    "min_requests": 50,
    "max_5xx": None,
    "max_5xx_percent": 1.0,
    "max_elb_5xx_percent": 1.0,
    "max_5xx_increase": 1.0,
    "latency_percentile": "p99",
    "max_latency_ms": None,
    "max_latency_ratio": 1.25,
    "latency_slack_ms": 20.0,
}
DELAY_PERIODS = 3  # how many periods past its end a window's last datapoints may take to arrive
MAX_ALARMS = 100  # DescribeAlarms takes at most 100 names


# -- input ----------------------------------------------------------------------------------------
def validate_limits(limits):
    """The limits, defaults filled in; CutoverError naming the field and what is allowed."""
    checked = dict(DEFAULT_LIMITS)
    unknown = sorted(set(limits or {}) - set(DEFAULT_LIMITS))
    if unknown:
        raise CutoverError("unknown gate limits: %s; known: %s" % (", ".join(unknown), ", ".join(sorted(DEFAULT_LIMITS))))
    checked.update({k: v for k, v in (limits or {}).items() if v is not None or k not in ("min_requests", "latency_percentile")})

    def number(name, low, high=None, whole=False):
        value = checked[name]
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not float(value).is_integer()):
            raise CutoverError("%s must be a %s, got %r" % (name, "whole number" if whole else "number", value))
        if value < low or (high is not None and value > high):
            raise CutoverError(
                "%s must be %s, got %r" % (name, "from %s to %s" % (low, high) if high is not None else "%s or more" % low, value)
            )

    number("min_requests", 0, whole=True)
    number("max_5xx", 0, whole=True)
    for name in ("max_5xx_percent", "max_elb_5xx_percent"):
        number(name, 0, 100)
    number("max_5xx_increase", 0, 100)
    number("max_latency_ms", 0)
    number("max_latency_ratio", 1)
    number("latency_slack_ms", 0)
    if not isinstance(checked["latency_percentile"], str) or not PERCENTILE.match(checked["latency_percentile"]):
        raise CutoverError(
            "latency_percentile must be a percentile such as p50, p90, p99 or p99.9, got %r" % (checked["latency_percentile"],)
        )
    return checked


def validate_alarms(alarms):
    alarms = list(alarms or [])
    if len(alarms) > MAX_ALARMS:
        raise CutoverError("at most %d alarms can be named, got %d" % (MAX_ALARMS, len(alarms)))
    for name in alarms:
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise CutoverError("alarm names must be 1 to 255 characters, got %r" % (name,))
    return alarms


# -- windows (pure) -----------------------------------------------------------------------------------
def window(since, seconds, period):
    """``(start, end, baseline_start)``: whole periods that ended after ``since`` and began before ``since + seconds``.

    The baseline before is as long, and ends where the window starts.
    """
    validate_period(period)
    if seconds < 1:
        raise CutoverError("the window must last at least 1 second, got %r" % (seconds,))
    start = align_down(since, period)
    end = max(align_up(since + seconds, period), start + period)
    return start, end, start - (end - start)


# -- figures and gates (pure) -----------------------------------------------------------------------
def rate(errors, requests):
    return round(100.0 * errors / requests, 3) if requests else None


def figures(requests, errors, latency=None, lb_requests=None, elb_errors=None, start=None, end=None):
    """What one colour did in ``[start, end)``: requests, target 5XX, the load balancer's 5XX, a latency (seconds)."""
    count = total(requests, start, end)
    target_5xx = total({m: v for m, v in errors.items() if m in requests}, start, end)  # a 5XX datapoint comes with requests
    result = {
        "requests": count,
        "target_5xx": target_5xx,
        "target_5xx_percent": rate(target_5xx, count),
        "latency_ms": None if latency is None else round(latency * 1000.0, 3),
    }
    if lb_requests is not None:
        lb_count = total(lb_requests, start, end)
        elb = total({m: v for m, v in (elb_errors or {}).items() if m in lb_requests}, start, end)
        result.update(lb_requests=lb_count, elb_5xx=elb, elb_5xx_percent=rate(elb, lb_count))
    return result


def _gate(name, kind, new, baseline, limit, unit, verdict, detail):
    return {
        "gate": name,
        "kind": kind,
        "new": new,
        "baseline": baseline,
        "limit": limit,
        "unit": unit,
        "verdict": verdict,
        "detail": detail,
    }


def _rate_gates(name, label, new, new_count, baseline, baseline_count, limits, absolute_key, min_requests):
    gates = []
    absolute = limits[absolute_key]
    if absolute is not None:
        if new_count < min_requests or new is None:
            gates.append(_gate(name, "absolute", new, None, absolute, "%", NOT_ENOUGH_DATA, "%s: only %d requests" % (label, new_count)))
        else:
            ok = new <= absolute
            detail = "%s %.2f%% of %d requests (at most %.2f%%)" % (label, new, new_count, absolute)
            gates.append(_gate(name, "absolute", new, None, absolute, "%", PASSED if ok else FAILED, detail))
    increase = limits["max_5xx_increase"]
    if increase is not None:
        if new_count < min_requests or new is None:
            gates.append(_gate(name, "relative", new, baseline, None, "%", NOT_ENOUGH_DATA, "%s: only %d requests" % (label, new_count)))
        elif baseline_count < min_requests or baseline is None:
            detail = "%s: no baseline (only %d requests before)" % (label, baseline_count)
            gates.append(_gate(name, "relative", new, baseline, None, "%", NOT_ENOUGH_DATA, detail))
        else:
            limit = round(baseline + increase, 3)
            ok = new <= limit
            detail = "%s %.2f%% against %.2f%% before (at most %.2f percentage points more)" % (label, new, baseline, increase)
            gates.append(_gate(name, "relative", new, baseline, limit, "%", PASSED if ok else FAILED, detail))
    return gates


def judge(new, baseline, limits, alarms=None):
    """Every gate of a window with its figures, and the verdict: FAILED if any failed, else NOT_ENOUGH_DATA if any lacks data."""
    min_requests = max(int(limits["min_requests"]), 1)
    requests = new["requests"]
    gates = [
        _gate(
            "requests",
            "minimum",
            requests,
            baseline["requests"],
            min_requests,
            "requests",
            PASSED if requests >= min_requests else NOT_ENOUGH_DATA,
            "%d requests reached the new colour (at least %d needed to judge)" % (requests, min_requests),
        )
    ]
    if limits["max_5xx"] is not None:
        ok = new["target_5xx"] <= limits["max_5xx"]
        detail = "%d target 5XX responses (at most %d)" % (new["target_5xx"], limits["max_5xx"])
        gates.append(
            _gate("target_5xx_count", "absolute", new["target_5xx"], None, limits["max_5xx"], "responses", PASSED if ok else FAILED, detail)
        )
    gates += _rate_gates(
        "target_5xx_rate",
        "target 5XX rate",
        new["target_5xx_percent"],
        requests,
        baseline["target_5xx_percent"],
        baseline["requests"],
        limits,
        "max_5xx_percent",
        min_requests,
    )
    if "lb_requests" in new:
        gates += _rate_gates(
            "elb_5xx_rate",
            "load balancer 5XX rate",
            new["elb_5xx_percent"],
            new["lb_requests"],
            baseline.get("elb_5xx_percent"),
            baseline.get("lb_requests", 0),
            dict(limits, max_5xx_percent=limits["max_elb_5xx_percent"]),
            "max_5xx_percent",
            min_requests,
        )
    percentile = limits["latency_percentile"]
    latency, before = new["latency_ms"], baseline["latency_ms"]
    name = "latency_%s" % percentile
    if limits["max_latency_ms"] is not None:
        if requests < min_requests or latency is None:
            gates.append(
                _gate(name, "absolute", latency, None, limits["max_latency_ms"], "ms", NOT_ENOUGH_DATA, "%s: no data" % percentile)
            )
        else:
            ok = latency <= limits["max_latency_ms"]
            detail = "%s latency %.1f ms (at most %s ms)" % (percentile, latency, limits["max_latency_ms"])
            gates.append(_gate(name, "absolute", latency, None, limits["max_latency_ms"], "ms", PASSED if ok else FAILED, detail))
    if limits["max_latency_ratio"] is not None:
        if requests < min_requests or latency is None:
            gates.append(_gate(name, "relative", latency, before, None, "ms", NOT_ENOUGH_DATA, "%s: no data" % percentile))
        elif baseline["requests"] < min_requests or before is None:
            detail = "%s: no baseline (only %d requests before)" % (percentile, baseline["requests"])
            gates.append(_gate(name, "relative", latency, before, None, "ms", NOT_ENOUGH_DATA, detail))
        else:
            limit = round(max(before * limits["max_latency_ratio"], before + limits["latency_slack_ms"]), 3)
            ok = latency <= limit
            detail = "%s latency %.1f ms against %.1f ms before (at most %sx, and never less than +%s ms: %.1f ms)" % (
                percentile,
                latency,
                before,
                limits["max_latency_ratio"],
                limits["latency_slack_ms"],
                limit,
            )
            gates.append(_gate(name, "relative", latency, before, limit, "ms", PASSED if ok else FAILED, detail))
    for alarm, state in sorted((alarms or {}).items()):
        verdict = FAILED if state.get("state") == "ALARM" else PASSED
        detail = "alarm %s is %s%s" % (
            alarm,
            state.get("state"),
            ": " + state["reason"] if state.get("reason") and verdict == FAILED else "",
        )
        gates.append(_gate("alarm", "alarm", state.get("state"), None, "not ALARM", "state", verdict, detail))
    verdicts = [g["verdict"] for g in gates]
    verdict = FAILED if FAILED in verdicts else NOT_ENOUGH_DATA if NOT_ENOUGH_DATA in verdicts else PASSED
    reasons = [g["detail"] for g in gates if g["verdict"] == verdict] if verdict != PASSED else []
    return {"verdict": verdict, "gates": gates, "reasons": reasons}


def early_failure(result, new, limits):
    """Fail before the window ends? Only on a failed gate with enough requests, or on an alarm in ALARM."""
    if result["verdict"] != FAILED:
        return False
    alarm = any(g["gate"] == "alarm" and g["verdict"] == FAILED for g in result["gates"])
    return alarm or new["requests"] >= max(int(limits["min_requests"]), 1)


# -- reading --------------------------------------------------------------------------------------------
def read_window(cloudwatch, load_balancer_arn, new_group, old_group, start, end, baseline_start, period, baseline, percentile):
    """The new colour's and the baseline's figures, with one GetMetricData call."""
    length = end - start
    new_dims, old_dims, lb_dims = (
        dimensions(load_balancer_arn, new_group),
        dimensions(load_balancer_arn, old_group),
        dimensions(load_balancer_arn),
    )
    queries = [
        query("nr", "RequestCount", new_dims, "Sum", period),
        query("ne", "HTTPCode_Target_5XX_Count", new_dims, "Sum", period),
        query("nl", "TargetResponseTime", new_dims, percentile, length),  # one bucket per window length: before, during
        query("or", "RequestCount", old_dims, "Sum", period),
        query("oe", "HTTPCode_Target_5XX_Count", old_dims, "Sum", period),
        query("ol", "TargetResponseTime", old_dims, percentile, length),
        query("lr", "RequestCount", lb_dims, "Sum", period),
        query("le", "HTTPCode_ELB_5XX_Count", lb_dims, "Sum", period),
    ]
    series = read_series(cloudwatch, queries, baseline_start, end)
    new = figures(series["nr"], series["ne"], series["nl"].get(start), series["lr"], series["le"], start, end)
    if baseline == "before":
        old = figures(series["or"], series["oe"], series["ol"].get(baseline_start), start=baseline_start, end=start)
    else:
        old = figures(series["or"], series["oe"], series["ol"].get(start), start=start, end=end)
    lb_before = figures(series["lr"], series["le"], None, series["lr"], series["le"], baseline_start, start)
    old.update(lb_requests=lb_before["lb_requests"], elb_5xx=lb_before["elb_5xx"], elb_5xx_percent=lb_before["elb_5xx_percent"])
    last_period = end - period
    published = last_period in series["nr"]
    return new, old, published


def alarm_states(cloudwatch, names):
    """``{name: {state, reason}}`` of the named alarms (metric and composite); CutoverError naming any that does not exist."""
    if not names:
        return {}
    response = paginate(cloudwatch, "describe_alarms", AlarmNames=list(names), AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    found = {}
    for alarm in response.get("MetricAlarms", []) + response.get("CompositeAlarms", []):
        found[alarm["AlarmName"]] = {"state": alarm.get("StateValue"), "reason": alarm.get("StateReason")}
    missing = [name for name in names if name not in found]
    if missing:
        raise CutoverError("no CloudWatch alarm named %s in this account and region" % ", ".join(sorted(missing)), missing_alarms=missing)
    return found


def analyse(
    cloudwatch,
    load_balancer_arn,
    new_group,
    old_group,
    since,
    seconds,
    period,
    limits,
    alarms=(),
    baseline="before",
    names=("the new colour", "the old colour"),
    progress=None,
    clock=time.monotonic,
    sleep=time.sleep,
    now=None,
    waiter=None,
):
    """Watch the window from ``since`` for ``seconds`` and judge it; returns the result (``verdict`` PASSED, FAILED or NOT_ENOUGH_DATA).

    Looks every fraction of a period; returns early on a failure, else once
    the window's last period is published (or :data:`DELAY_PERIODS` periods
    after it ended, judging what arrived).
    """
    wall = now or (lambda: epoch(utcnow()))
    if baseline not in BASELINES:
        raise CutoverError("baseline must be one of %s, got %r" % (", ".join(BASELINES), baseline))
    limits = validate_limits(limits)
    alarms = validate_alarms(alarms)
    start, end, baseline_start = window(since, seconds, period)
    give_up = end + DELAY_PERIODS * period
    look_every = max(1.0, min(period / 4.0, 15.0))  # a quarter of a period, at an even pace
    waiter = waiter_for(waiter, progress, clock, sleep, delay=look_every, max_delay=look_every, factor=1.0)
    began = waiter.clock()
    state = {"looks": 0, "running": None}

    def check():
        state["looks"] += 1
        moment = wall()
        new, old, published = read_window(
            cloudwatch, load_balancer_arn, new_group, old_group, start, end, baseline_start, period, baseline, limits["latency_percentile"]
        )
        states = alarm_states(cloudwatch, alarms)
        result = judge(new, old, limits, states)
        state["running"] = summary(dict(result, new=new, new_color=names[0]), running=True)
        over = moment >= end
        if not (early_failure(result, new, limits) or (over and published) or moment >= give_up):
            return None
        detected = moment if result["verdict"] != PASSED else None
        result.update(
            new=new,
            baseline=old,
            baseline_kind=baseline,
            alarms=states,
            new_color=names[0],
            old_color=names[1],
            window={"start": stamp(start), "end": stamp(end), "period": period, "periods": (end - start) // period},
            baseline_window={
                "start": stamp(baseline_start if baseline == "before" else start),
                "end": stamp(start if baseline == "before" else end),
            },
            since=since,
            detected_at=detected,
            detect_seconds=None if detected is None else round(detected - since, 1),
            complete=bool(over and published),
            looks=state["looks"],
            waited_seconds=round(waiter.clock() - began, 1),
        )
        result["summary"] = summary(result)
        return result

    # The window decides when the watch ends (its last period published, or DELAY_PERIODS later): the
    # timeout is only a bound past that, never reached while the clocks agree.
    condition = Condition("the window of %s to be judged" % names[0], check, lambda: state["running"])
    return waiter.wait(condition, max(0.0, give_up - wall()) + 2 * period + 60).result


def summary(result, running=False):
    """One line: the verdict and the figures that decided it."""
    new = result["new"]
    figures_text = "%d requests, target 5XX %s, %s %s" % (
        new["requests"],
        "-" if new["target_5xx_percent"] is None else "%.2f%%" % new["target_5xx_percent"],
        next((g["gate"].split("_", 1)[1] for g in result["gates"] if g["gate"].startswith("latency_")), "latency"),
        "-" if new["latency_ms"] is None else "%.1f ms" % new["latency_ms"],
    )
    if running:
        return "%s so far: %s" % (result.get("new_color", "the new colour"), figures_text)
    if result["verdict"] == PASSED:
        return "%s passed every gate: %s" % (result.get("new_color"), figures_text)
    return "%s: %s (%s)" % (result["verdict"], "; ".join(result["reasons"]), figures_text)
