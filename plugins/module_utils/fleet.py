# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fleet releases: many services in one run, in waves and in an order of regions (pure functions).

A playbook's first play (``cutover.bluegreen.fleet_plan``, on the controller) turns what the user gave
(``service``, ``services`` or ``service_group``, ``regions``, ``waves``, ``max_fail_percentage``) into a
plan: one Ansible host per service and region, in the order they run, and the play's ``serial`` as
explicit batch sizes. A batch never spans two regions, so a region's last wave ends before the next
region's first begins. The services of a batch run in parallel, up to Ansible's forks; each keeps its
own lock, journal entry and record.

After each batch, ``judge`` decides whether the fleet goes on, by Ansible's own rule for
``max_fail_percentage`` (more than that share of the batch failed, or all of it) and by the region rule
(a region goes on to the next only when every one of its services succeeded). The play prints ``lines``
(one per service) after the batch that is the last to run, and stops the batches after it.

Everything here is checked before any service is read or changed; bad values are reported all at once,
each naming its variable and what is allowed.
"""

from __future__ import annotations

import re

from ansible_collections.cutover.bluegreen.plugins.module_utils.inputs import SERVICE, failure_message, show

REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")  # us-east-1, eu-central-2, us-gov-west-1, ap-southeast-3
WAVE = re.compile(r"^\s*(\d+)\s*(%?)\s*$")
MAX_WAVES = 20
SUCCEEDED = ("succeeded", "canary", "ok")  # a canary run that stopped as asked, a status that was read
SINGLE_HOST = "localhost"  # ``-e service=x`` runs as before, on localhost
WAVES_ALLOWED = (
    "wave sizes, comma-separated: a number of services (1 or more) or a share of each region's services "
    "(1%% to 100%%), the last repeated until every service had its turn, at most %d, e.g. 1,100%% or 1,25%%" % MAX_WAVES
)


class FleetError(ValueError):
    """Bad fleet inputs; ``problems`` holds one line per bad input."""

    def __init__(self, problems):
        super().__init__(failure_message("fleet", problems))
        self.problems = problems


def names_of(value):
    """A list from ``a,b,c`` (what ``-e services=a,b,c`` gives), a list, or a single name; blanks dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        items = [value]
    return [str(item).strip() for item in items if str(item).strip()]


def given(value):
    """Whether a variable was given: an empty text (a blank survey answer) counts as not given."""
    return value is not None and not (isinstance(value, str) and not value.strip()) and value != []


def read_waves(value):
    """``[int or "N%"]`` from ``1,100%``, ``[1, "100%"]`` or ``2``; None when not given; ValueError when bad."""
    if not given(value):
        return None
    items = names_of(value) if not isinstance(value, int) or isinstance(value, bool) else [value]
    if isinstance(value, bool) or not items or len(items) > MAX_WAVES:
        raise ValueError(value)
    waves = []
    for item in items:
        match = WAVE.match(str(item))
        if not match:
            raise ValueError(item)
        number, percent = int(match.group(1)), match.group(2)
        if percent and not 1 <= number <= 100 or not percent and number < 1:
            raise ValueError(item)
        waves.append("%d%%" % number if percent else number)
    return waves


def read_percentage(value, default=0):
    """A whole number from 0 to 100 from an int or a text of digits; ValueError otherwise."""
    if not given(value):
        return default
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.match(r"^\s*\d+\s*$", value):
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError(value)
    return value


def wave_sizes(waves, count):
    """Batch sizes for ``count`` services, the way Ansible reads a ``serial`` list: a share is of ``count``
    (rounded down, at least 1), the last size repeats, the last batch takes what is left."""
    if count <= 0:
        return []
    waves = waves or [count]
    sizes, left, index = [], count, 0
    while left > 0:
        wave = waves[min(index, len(waves) - 1)]
        size = max(1, int(int(wave[:-1]) / 100.0 * count)) if isinstance(wave, str) else wave
        size = min(size, left)
        sizes.append(size)
        left -= size
        index += 1
    return sizes


def members_of(group, hosts, hostvars):
    """The services of an inventory group: ``[{name, service, region}]``; a host's ``service`` variable names
    its service (default: the host's name), its ``cutover_aws_region`` its region (default: none given)."""
    members = []
    for host in hosts:
        variables = hostvars.get(host) or {}
        service = variables.get("service")
        region = variables.get("cutover_aws_region")
        members.append(
            {
                "name": host,
                "service": str(service).strip() if given(service) else host,
                "region": str(region).strip() if given(region) else None,
            }
        )
    return members


def service_rule(platform):
    """The rule for service names on ``platform`` (app names on kubernetes); an unknown platform is the role's to
    refuse, the names are judged as on aws meanwhile."""
    rules = getattr(SERVICE, "rules", None)
    return rules.get(platform) or rules.get("aws") if rules else SERVICE


def plan(
    service=None,
    services=None,
    service_group=None,
    members=None,
    regions=None,
    waves=None,
    max_fail_percentage=None,
    usage="",
    platform="aws",
):
    """The fleet of one run, or FleetError naming every bad input. ``members`` are the hosts of ``service_group``
    (:func:`members_of`, None when the inventory has no such group); service names follow ``platform``'s rule."""
    rule = service_rule(platform)
    service_allowed = "a service name: %s" % rule.allowed
    problems = []
    ways = [name for name, value in (("service", service), ("services", services), ("service_group", service_group)) if given(value)]
    if not ways:
        problems.append("service, services or service_group: none given; %s" % (usage or "name the service(s) to release"))
    elif len(ways) > 1:
        problems.append("%s: give one of them, not %s" % (", ".join(ways), " and ".join(ways)))

    order = names_of(regions)
    for region in order:
        if not REGION.match(region):
            problems.append(
                "regions=%s: allowed region names, comma-separated (e.g. us-east-1,eu-west-1); %s is not one" % (show(regions), region)
            )
            break
    if len(set(order)) != len(order):
        problems.append("regions=%s: allowed each region once" % show(regions))
    if order and platform == "kubernetes":
        problems.append(
            "regions=%s: allowed only on aws (AWS regions); on kubernetes name the apps of each cluster in their own run" % show(regions)
        )

    try:
        wave_list = read_waves(waves)
    except ValueError:
        wave_list = None
        problems.append("waves=%s: allowed %s" % (show(waves), WAVES_ALLOWED))
    try:
        max_fail = read_percentage(max_fail_percentage)
    except ValueError:
        max_fail = 0
        problems.append(
            "max_fail_percentage=%s: allowed a whole number from 0 (any failed service stops the fleet after its wave) to 100"
            % show(max_fail_percentage)
        )

    entries = []  # (name, service, region)
    if ways == ["service"] or ways == ["services"]:
        variable = ways[0]
        value = service if variable == "service" else services
        names = names_of(value)
        # one service's name is checked by its role, with every other input of the role, in one message
        bad = [name for name in names if rule.problem(name) is not None] if variable == "services" else []
        if not names:
            problems.append("%s=%s: allowed %s" % (variable, show(value), "one or more service names, comma-separated"))
        elif bad:
            problems.append("%s=%s: allowed %s; not allowed: %s" % (variable, show(value), service_allowed, ", ".join(bad)))
        elif variable == "service" and len(names) > 1:
            problems.append("service=%s: allowed one service name; name several with services=a,b,c" % show(value))
        elif len(set(names)) != len(names):
            problems.append("%s=%s: allowed each service once" % (variable, show(value)))
        for name in names:
            if order:
                entries += [("%s@%s" % (name, region), name, region) for region in order]
            else:
                entries.append((SINGLE_HOST if variable == "service" else name, name, None))
    elif ways == ["service_group"]:
        if members is None:
            problems.append(
                "service_group=%s: allowed the name of an inventory group whose hosts are services; there is no such group"
                % show(service_group)
            )
        elif not members:
            problems.append("service_group=%s: the group has no hosts" % show(service_group))
        else:
            bad = ["%s (service %s)" % (m["name"], m["service"]) for m in members if rule.problem(m["service"]) is not None]
            if bad:
                problems.append(
                    "service_group=%s: each host's service must be %s; not allowed: %s"
                    % (show(service_group), service_allowed, ", ".join(bad))
                )
            bad_regions = ["%s (%s)" % (m["name"], m["region"]) for m in members if m["region"] and not REGION.match(m["region"])]
            if bad_regions:
                problems.append(
                    "service_group=%s: cutover_aws_region of %s is not a region name" % (show(service_group), ", ".join(bad_regions))
                )
            if order:
                missing = [m["name"] for m in members if m["region"] not in order]
                if missing:
                    problems.append(
                        "regions=%s: every host of service_group %s needs its cutover_aws_region among them; not: %s"
                        % (
                            show(regions),
                            show(service_group),
                            ", ".join("%s (%s)" % (n, _region_of(members, n) or "no region") for n in missing),
                        )
                    )
            pairs = [(m["service"], m["region"]) for m in members]
            twice = sorted({"%s%s" % (s, " in " + r if r else "") for s, r in pairs if pairs.count((s, r)) > 1})
            if twice:
                problems.append(
                    "service_group=%s: each service once per region; more than once: %s" % (show(service_group), ", ".join(twice))
                )
            entries = [(m["name"], m["service"], m["region"]) for m in members]
            if not order:
                order = []
                for m in members:
                    if m["region"] not in order:
                        order.append(m["region"])
    if problems:
        raise FleetError(problems)

    region_order = order or [None]
    hosts, serial, batches = [], [], []
    for region_index, region in enumerate(region_order):
        in_region = [entry for entry in entries if entry[2] == region]
        start = 0
        for wave_index, size in enumerate(wave_sizes(wave_list, len(in_region))):
            batch = len(batches)
            names = []
            for name, service_name, host_region in in_region[start : start + size]:
                hosts.append(
                    {
                        "name": name,
                        "service": service_name,
                        "region": host_region,
                        "region_index": region_index,
                        "wave": wave_index + 1,
                        "batch": batch,
                    }
                )
                names.append(name)
            batches.append({"region": region, "region_index": region_index, "wave": wave_index + 1, "hosts": names})
            serial.append(size)
            start += size
    return {
        "hosts": hosts,
        "serial": serial,
        "batches": batches,
        "regions": [region for region in region_order if region is not None],
        "max_fail_percentage": max_fail,
        "waves": wave_list or [],
        "fleet": ways != ["service"] or bool(order),
    }


def _region_of(members, name):
    return next((m["region"] for m in members if m["name"] == name), None)


def ansible_stops(failed, size, max_fail_percentage):
    """Whether Ansible ends the play after a batch of ``size`` hosts of which ``failed`` failed: more than
    ``max_fail_percentage`` percent of the batch (its own comparison), or the whole batch."""
    if size <= 0:
        return False
    return failed == size or (failed / size) > (max_fail_percentage / 100.0)


def _where(batch):
    return "wave %d%s" % (batch["wave"], " of " + batch["region"] if batch["region"] else "")


def judge(fleet, batch_hosts, results):
    """After a batch: ``{stop, final, reason, lines}``. ``batch_hosts`` are the hosts that ran in it,
    ``results`` maps each host that ran so far to ``{outcome, message}``."""
    names = set(batch_hosts)
    index = next((b for b, batch in enumerate(fleet["batches"]) if names & set(batch["hosts"])), None)
    if index is None:
        raise ValueError("none of %s is in the fleet" % sorted(names))
    batch = fleet["batches"][index]
    failed = [name for name in batch["hosts"] if (results.get(name) or {}).get("outcome") not in SUCCEEDED]
    reason = None
    if ansible_stops(len(failed), len(batch["hosts"]), fleet["max_fail_percentage"]):
        reason = "%s failed: %d of %d service%s (max_fail_percentage %d)" % (
            _where(batch),
            len(failed),
            len(batch["hosts"]),
            "" if len(batch["hosts"]) == 1 else "s",
            fleet["max_fail_percentage"],
        )
    last_of_region = index + 1 == len(fleet["batches"]) or fleet["batches"][index + 1]["region_index"] != batch["region_index"]
    if reason is None and last_of_region and index + 1 < len(fleet["batches"]):
        region_hosts = [h["name"] for h in fleet["hosts"] if h["region_index"] == batch["region_index"]]
        region_failed = [name for name in region_hosts if (results.get(name) or {}).get("outcome") not in SUCCEEDED]
        if region_failed:
            reason = "region %s did not succeed (%s failed); the next region starts only after every service of a region succeeded" % (
                batch["region"],
                ", ".join(region_failed),
            )
    final = reason is not None or index + 1 == len(fleet["batches"])
    return {
        "stop": reason is not None,
        "final": final,
        "reason": reason,
        "batch": index,
        "failed_hosts": failed,
        "lines": summary_lines(fleet, results, reason) if final else [],
    }


def summary_lines(fleet, results, reason=None):
    """One line per service of the fleet, in the order of the plan, then a total."""
    lines, counts = [], {}
    several_regions = len(fleet["regions"]) > 1
    waves = len(fleet["batches"]) > len(fleet["regions"] or [None])
    for host in fleet["hosts"]:
        where = []
        if several_regions or (host["region"] and host["name"] != host["service"]):
            where.append(host["region"] or "default region")
        if waves:
            where.append("wave %d" % host["wave"])
        label = host["service"] + (" (%s)" % ", ".join(where) if where else "")
        result = results.get(host["name"])
        if result is None:
            outcome, message = "not started", ("the fleet stopped: %s" % reason) if reason else "not run"
        else:
            outcome, message = result.get("outcome") or "failed", result.get("message") or ""
        counts[outcome] = counts.get(outcome, 0) + 1
        lines.append("%s: %s%s" % (label, outcome, " - " + message if message else ""))
    total = ", ".join("%d %s" % (count, outcome) for outcome, count in sorted(counts.items(), key=lambda item: -item[1]))
    lines.append("fleet of %d: %s%s" % (len(fleet["hosts"]), total, "; stopped: " + reason if reason else ""))
    return lines


def batch_count_text(fleet):
    """How the fleet runs, for the plan's message."""
    regions = fleet["regions"]
    sizes = ",".join(str(size) for size in fleet["serial"])
    return "%d service run%s in %d batch%s (%s)%s, max_fail_percentage %d" % (
        len(fleet["hosts"]),
        "" if len(fleet["hosts"]) == 1 else "s",
        len(fleet["batches"]),
        "" if len(fleet["batches"]) == 1 else "es",
        sizes,
        (" over the regions " + ", then ".join(regions)) if regions else "",
        fleet["max_fail_percentage"],
    )
