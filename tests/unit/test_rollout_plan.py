"""Rollout plans: which launch-template version, which group updates, and what is refused."""

from __future__ import annotations

import base64
import datetime

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import Pair
from ansible_collections.cutover.bluegreen.plugins.module_utils.rollout import (
    DEFAULT_SUSPEND_PROCESSES,
    apply_rollout,
    choose_color,
    decode_user_data,
    plan_asg,
    plan_launch_template,
    plan_rollout,
    resolve_version,
    validate_inputs,
    version_specs,
    wait_in_service,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import WaitTimeout

from tests.unit.fake_clock import FakeClock

LT = "lt-0123456789abcdef0"
OLD_AMI = "ami-00000000000000001"
NEW_AMI = "ami-0123456789abcdef0"


def b64(text):
    return base64.b64encode(text.encode()).decode()


def version(number, default=False, **data):
    return {
        "LaunchTemplateId": LT,
        "LaunchTemplateName": "cutover-shop",
        "VersionNumber": number,
        "DefaultVersion": default,
        "LaunchTemplateData": data,
    }


V1 = version(1, default=True, ImageId=OLD_AMI, InstanceType="t3.micro", UserData=b64("version=v1"), SecurityGroupIds=["sg-1"])
V2 = version(2, ImageId=NEW_AMI, InstanceType="t3.micro", UserData=b64("version=v1"), SecurityGroupIds=["sg-1"])


def template(number, template_id=LT):
    return {"id": template_id, "name": "cutover-shop", "version": str(number)}


# --- launch-template version -------------------------------------------------------------
def test_new_version_holds_only_the_changed_keys_on_top_of_the_live_version():
    plan = plan_launch_template(template(1), template(1), [V1], image_id=NEW_AMI, instance_type="t3.micro")
    assert plan["create"] is True and plan["version"] is None
    assert plan["base_version"] == 1
    assert plan["data"] == {"ImageId": NEW_AMI}  # the instance type did not change: not sent
    assert plan["changes"] == {"image_id": {"before": OLD_AMI, "after": NEW_AMI}}


def test_version_the_idle_colour_already_runs_is_reused():
    plan = plan_launch_template(template(2), template(1), [V1, V2], image_id=NEW_AMI)
    assert (plan["create"], plan["version"], plan["reused"]) == (False, 2, "current")
    assert plan["data"] == {}


def test_newest_version_with_the_values_is_reused_after_an_interrupted_run():
    # A run created version 2 and stopped before pointing the idle group at it.
    plan = plan_launch_template(template(1), template(1), [V1, V2], image_id=NEW_AMI)
    assert (plan["create"], plan["version"], plan["reused"]) == (False, 2, "latest")


def test_live_version_is_reused_when_nothing_changes():
    plan = plan_launch_template(template(2), template(1), [V1, V2], image_id=OLD_AMI)
    assert (plan["create"], plan["version"], plan["reused"]) == (False, 1, "live")
    assert plan["changes"] == {}


def test_user_data_is_compared_decoded_and_sent_encoded():
    same = plan_launch_template(template(1), template(1), [V1], user_data="version=v1")
    assert same["create"] is False and same["changes"] == {}
    changed = plan_launch_template(template(1), template(1), [V1], user_data="version=v2")
    assert changed["create"] is True
    assert changed["data"] == {"UserData": b64("version=v2")}
    assert changed["changes"] == {"user_data": {"before": "version=v1", "after": "version=v2"}}
    assert decode_user_data(changed["data"]["UserData"]) == "version=v2"


def test_a_changed_value_the_idle_colour_has_but_not_production_is_still_a_new_version():
    stale = version(3, ImageId=NEW_AMI, InstanceType="t3.small", UserData=b64("version=v1"))
    plan = plan_launch_template(template(3), template(1), [V1, stale], image_id=NEW_AMI, instance_type="t3.micro")
    # The idle colour's version 3 has the image but another instance type; production (1) is the base.
    assert plan["create"] is True and plan["base_version"] == 1
    assert plan["data"] == {"ImageId": NEW_AMI}


def test_base_is_the_live_version_not_a_stale_idle_one():
    live = version(2, ImageId=NEW_AMI, InstanceType="t3.micro", UserData=b64("version=v2"))
    plan = plan_launch_template(template(1), template(2), [V1, live], image_id="ami-0fedcba9876543210")
    assert plan["base_version"] == 2 and plan["current_version"] == 1
    assert plan["data"] == {"ImageId": "ami-0fedcba9876543210"}  # production's user data v2 is kept


def test_other_template_for_the_live_colour_bases_on_the_idle_version():
    plan = plan_launch_template(template(1), template(7, "lt-other"), [V1], image_id=NEW_AMI)
    assert plan["base_version"] == 1
    assert version_specs(template(1), template(7, "lt-other")) == ["1", "$Latest"]
    assert version_specs(template(1), template(2)) == ["1", "2", "$Latest"]


def test_latest_and_default_version_specs_are_resolved():
    assert resolve_version("$Latest", [V1, V2])["VersionNumber"] == 2
    assert resolve_version("$Default", [V1, V2])["VersionNumber"] == 1
    assert resolve_version("2", [V1, V2]) is V2
    assert resolve_version("9", [V1, V2]) is None
    plan = plan_launch_template({"id": LT, "name": "cutover-shop", "version": "$Latest"}, template(1), [V1, V2], image_id=NEW_AMI)
    assert (plan["current_version"], plan["version"]) == (2, 2)


def test_missing_version_and_no_template_are_refused():
    with pytest.raises(CutoverError, match="has no version 5"):
        plan_launch_template(template(5), template(1), [V1], image_id=NEW_AMI)
    with pytest.raises(CutoverError, match="does not use a launch template"):
        plan_launch_template({"id": None, "name": None, "version": None}, template(1), [V1])


# --- Auto Scaling group ---------------------------------------------------------------------
def asg(name="shop-green", version_="1", min_size=0, max_size=4, desired=0, instances=(), suspended=(), tags=None):
    return {
        "name": name,
        "min_size": min_size,
        "max_size": max_size,
        "desired_capacity": desired,
        "launch_template": {"id": LT, "name": "cutover-shop", "version": version_},
        "instances": [
            {"id": i, "lifecycle_state": "InService", "health_status": "Healthy", "launch_template_version": version_} for i in instances
        ],
        "in_service": len(instances),
        "suspended_processes": sorted(suspended),
        "tags": tags or {},
    }


def test_empty_idle_colour_is_pointed_at_the_version_and_scaled_in_one_update():
    plan = plan_asg(asg(), 2, capacity=2)
    assert [s["name"] for s in plan["steps"]] == ["scale"]
    assert plan["steps"][0]["update"] == {"LaunchTemplate": {"LaunchTemplateId": LT, "Version": "2"}, "MinSize": 2, "DesiredCapacity": 2}
    assert plan["steps"][0]["wait_for"] == 2
    assert plan["suspend"] == list(DEFAULT_SUSPEND_PROCESSES)
    assert plan["after"] == {"name": "shop-green", "launch_template_version": "2", "min_size": 2, "max_size": 4, "desired_capacity": 2}
    assert plan["changed"] is True


def test_max_size_is_raised_to_the_capacity_never_lowered():
    plan = plan_asg(asg(max_size=2), 2, capacity=6)
    assert plan["steps"][-1]["update"]["MaxSize"] == 6
    plan = plan_asg(asg(max_size=10), 2, capacity=3)
    assert "MaxSize" not in plan["steps"][-1]["update"]


def test_group_already_rolled_out_needs_no_update_and_no_suspension():
    plan = plan_asg(asg(version_="2", min_size=2, desired=2, instances=["i-1", "i-2"]), 2, capacity=2)
    assert [s["update"] for s in plan["steps"]] == [{}]
    assert plan["changed"] is False and plan["suspend"] == [] and plan["stale"] == []


def test_instances_of_another_version_are_replaced_first():
    plan = plan_asg(asg(version_="2", min_size=2, desired=2, instances=["i-1", "i-2"]), 3, capacity=2)
    assert plan["stale"] == ["i-1", "i-2"]
    assert [s["name"] for s in plan["steps"]] == ["replace", "scale"]
    assert plan["steps"][0]["update"] == {"MinSize": 0, "DesiredCapacity": 0}  # still on the old version
    assert plan["steps"][1]["update"] == {"LaunchTemplate": {"LaunchTemplateId": LT, "Version": "3"}, "MinSize": 2, "DesiredCapacity": 2}


def test_each_instances_own_version_decides_what_is_stale_not_the_groups():
    group = asg(version_="$Latest", min_size=2, desired=2, instances=["i-1", "i-2", "i-3"])
    group["instances"][0]["launch_template_version"] = "2"
    group["instances"][1]["launch_template_version"] = "1"
    plan = plan_asg(group, 2, capacity=2)  # i-2 ran version 1; i-3 says $Latest, which proves no version
    assert plan["stale"] == ["i-2", "i-3"]
    assert [s["name"] for s in plan["steps"]] == ["replace", "scale"]
    # A group already pointed at the version may still run instances of an earlier one.
    group = asg(version_="2", min_size=2, desired=2, instances=["i-1", "i-2"])
    group["instances"][1]["launch_template_version"] = "1"
    plan = plan_asg(group, 2, capacity=2)
    assert plan["stale"] == ["i-2"] and plan["changed"] is True
    assert plan["steps"][0] == {"name": "replace", "update": {"MinSize": 0, "DesiredCapacity": 0}, "wait_for": 0}


def test_preparation_capacity_comes_first():
    plan = plan_asg(asg(), 2, capacity=4, preparation_capacity=1)
    assert [(s["name"], s["wait_for"]) for s in plan["steps"]] == [("prepare", 1), ("scale", 4)]
    assert plan["steps"][0]["update"] == {"LaunchTemplate": {"LaunchTemplateId": LT, "Version": "2"}, "MinSize": 1, "DesiredCapacity": 1}
    assert plan["steps"][1]["update"] == {"MinSize": 4, "DesiredCapacity": 4}


def test_preparation_is_skipped_when_the_group_is_already_past_it():
    plan = plan_asg(asg(version_="2", min_size=1, desired=1, instances=["i-1"]), 2, capacity=4, preparation_capacity=1)
    assert [s["name"] for s in plan["steps"]] == ["scale"]


def test_only_processes_not_already_suspended_are_suspended_and_so_resumed():
    plan = plan_asg(asg(suspended=["AZRebalance", "HealthCheck"]), 2, capacity=2)
    assert plan["suspend"] == ["AlarmNotification", "ScheduledActions", "ReplaceUnhealthy"]


@pytest.mark.parametrize(
    ("group", "message"),
    [
        (asg(suspended=["Launch"]), "the Launch process of Auto Scaling group shop-green is suspended"),
        (asg(version_="1", min_size=2, desired=2, instances=["i-1", "i-2"], suspended=["Terminate"]), "the Terminate process"),
        # Replacing scales to zero and back to the same capacity: that needs Launch too.
        (asg(version_="1", min_size=2, desired=2, instances=["i-1", "i-2"], suspended=["Launch"]), "the Launch process"),
    ],
)
def test_suspended_launch_or_terminate_is_refused(group, message):
    with pytest.raises(CutoverError, match=message):
        plan_asg(group, 2, capacity=2)


def test_plan_asg_rejects_bad_capacities():
    with pytest.raises(CutoverError, match="capacity must not be negative"):
        plan_asg(asg(), 2, capacity=-1)
    with pytest.raises(CutoverError, match=r"preparation_capacity \(2\) must be at least 0 and smaller than capacity \(2\)"):
        plan_asg(asg(), 2, capacity=2, preparation_capacity=2)


# --- inputs and colours -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_id": "ubuntu-22.04"}, "image_id 'ubuntu-22.04' is not an AMI id"),
        ({"image_id": "ami-XYZ"}, "image_id 'ami-XYZ' is not an AMI id"),
        ({"instance_type": "large"}, "instance_type 'large' is not an EC2 instance type"),
        ({"capacity": -1}, "capacity must not be negative, got -1"),
        ({"preparation_capacity": -2}, "preparation_capacity must not be negative, got -2"),
        ({"wait_timeout": -5}, "wait_timeout must be zero or more seconds, got -5"),
        ({"capacity": 2, "preparation_capacity": 2}, r"preparation_capacity \(2\) must be smaller than capacity \(2\)"),
        ({"suspend_processes": ["Launch"]}, "suspend_processes must not include Launch"),
        ({"suspend_processes": ["Nap"]}, "unknown scaling process 'Nap'"),
    ],
)
def test_bad_inputs_are_named(kwargs, message):
    with pytest.raises(CutoverError, match=message):
        validate_inputs(**kwargs)


def test_good_inputs_pass():
    validate_inputs(image_id=NEW_AMI, instance_type="t3.micro", capacity=2, preparation_capacity=1, wait_timeout=0)
    validate_inputs(image_id="ami-12345678", instance_type="u-6tb1.metal")


def make_pair(weights=None, blue_desired=2, green_asg=None, blue_version="1"):
    weights = weights or {"blue": 1}
    tgs = {c: f"arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/shop-{c}/1" for c in ("blue", "green")}
    colors = {
        "blue": {
            "target_group": {"arn": tgs["blue"], "name": "shop-blue"},
            "asg": asg("shop-blue", blue_version, 2, 4, blue_desired, ["i-b1", "i-b2"]),
            "targets": [],
            "health": {},
        },
        "green": {"target_group": {"arn": tgs["green"], "name": "shop-green"}, "asg": green_asg or asg(), "targets": [], "health": {}},
    }
    forwarders = [
        {
            "arn": "listener/prod",
            "kind": "listener",
            "listener_arn": "listener/prod",
            "role": "production",
            "priority": "default",
            "actions": [],
            "weights": {tgs[c]: w for c, w in weights.items()},
        }
    ]
    return Pair("shop", "lb", colors, [{"arn": "listener/prod", "role": "production"}], forwarders)


def test_idle_resolves_to_the_colour_production_does_not_forward_to():
    assert choose_color(make_pair({"blue": 1})) == "green"
    assert choose_color(make_pair({"green": 1}), "idle") == "blue"


@pytest.mark.parametrize("weights", [{"blue": 1}, {"blue": 90, "green": 10}])
def test_the_live_colour_is_refused(weights):
    with pytest.raises(CutoverError, match="refusing to roll out blue: it is the live colour of 'shop'") as error:
        choose_color(make_pair(weights), "blue")
    assert error.value.details["live_color"] == "blue"


def test_split_production_needs_the_non_live_colour_named():
    pair = make_pair({"blue": 90, "green": 10})
    with pytest.raises(CutoverError, match="split between both colours"):
        choose_color(pair, "idle")
    assert choose_color(pair, "green") == "green"


def test_a_colour_sharing_the_live_group_is_refused():
    pair = make_pair(green_asg=asg("shop-blue"))
    with pytest.raises(CutoverError, match="shares its Auto Scaling group or target group with the live colour"):
        choose_color(pair, "green")


class FakeEc2:
    def __init__(self, versions):
        self.versions = list(versions)
        self.calls = []

    def describe_launch_template_versions(self, LaunchTemplateId, Versions, aws_retry=False):
        self.calls.append(("describe", tuple(Versions)))
        found = [resolve_version(spec, self.versions) for spec in Versions]
        return {"LaunchTemplateVersions": [v for v in found if v]}

    def create_launch_template_version(self, LaunchTemplateId, SourceVersion, LaunchTemplateData, aws_retry=False, **_):
        self.calls.append(("create", SourceVersion, LaunchTemplateData))
        number = max(v["VersionNumber"] for v in self.versions) + 1
        base = resolve_version(SourceVersion, self.versions)["LaunchTemplateData"]
        self.versions.append(version(number, **{**base, **LaunchTemplateData}))
        return {"LaunchTemplateVersion": self.versions[-1]}


def test_capacity_defaults_to_the_live_colours_desired_capacity():
    ec2 = FakeEc2([V1])
    plan = plan_rollout(ec2, make_pair(blue_desired=3), image_id=NEW_AMI)
    assert plan["color"] == "green" and plan["capacity"] == 3
    assert plan["template"]["create"] is True
    assert plan["group"]["steps"][-1]["update"]["LaunchTemplate"]["Version"] == "2"  # the number it will get
    assert ec2.calls == [("describe", ("1", "$Latest"))]  # one read, no write


def test_preparation_capacity_not_below_the_live_capacity_is_refused_before_any_call():
    ec2 = FakeEc2([V1])
    with pytest.raises(CutoverError, match=r"preparation_capacity \(2\) must be smaller than capacity \(2, the live colour's"):
        plan_rollout(ec2, make_pair(blue_desired=2), image_id=NEW_AMI, preparation_capacity=2)
    assert ec2.calls == []


def test_standby_tags_of_the_rolled_out_colour_are_cleared():
    pair = make_pair(green_asg=asg(tags={"cutover:state": "standby", "cutover:retire-after": "2030-01-01T00:00:00Z"}))
    plan = plan_rollout(FakeEc2([V1]), pair)
    assert plan["clear_tags"] == ["cutover:retire-after", "cutover:state"]
    assert plan["changed"] is True


# --- applying and waiting ---------------------------------------------------------------------------
def raw_instance(instance_id, state="InService", health="Healthy", version_="2"):
    return {
        "InstanceId": instance_id,
        "LifecycleState": state,
        "HealthStatus": health,
        "LaunchTemplate": {"LaunchTemplateId": LT, "Version": version_},
    }


class FakeAutoScaling:
    """Hands out group states in order (the last one repeats) and records every call."""

    def __init__(self, states, activities=()):
        self.states = list(states)
        self.activities = list(activities)
        self.calls = []

    def describe_auto_scaling_groups(self, AutoScalingGroupNames, aws_retry=False):
        self.calls.append(("describe",))
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        version_, desired, instances = state
        return {
            "AutoScalingGroups": [
                {
                    "AutoScalingGroupName": AutoScalingGroupNames[0],
                    "MinSize": desired,
                    "MaxSize": 4,
                    "DesiredCapacity": desired,
                    "LaunchTemplate": {"LaunchTemplateId": LT, "LaunchTemplateName": "cutover-shop", "Version": version_},
                    "Instances": instances,
                    "SuspendedProcesses": [],
                    "Tags": [],
                }
            ]
        }

    def describe_scaling_activities(self, AutoScalingGroupName, MaxRecords, aws_retry=False):
        self.calls.append(("activities",))
        return {"Activities": self.activities}

    def suspend_processes(self, AutoScalingGroupName, ScalingProcesses, aws_retry=False):
        self.calls.append(("suspend", tuple(ScalingProcesses)))

    def resume_processes(self, AutoScalingGroupName, ScalingProcesses, aws_retry=False):
        self.calls.append(("resume", tuple(ScalingProcesses)))

    def update_auto_scaling_group(self, AutoScalingGroupName, aws_retry=False, **update):
        self.calls.append(("update", update))

    def delete_tags(self, Tags, aws_retry=False):
        self.calls.append(("delete_tags", tuple(t["Key"] for t in Tags)))


def test_only_instances_that_report_the_version_count_whatever_the_group_says():
    clock = FakeClock()
    autoscaling = FakeAutoScaling(
        [
            ("2", 2, [raw_instance("i-1", version_="1"), raw_instance("i-2", version_="1")]),
            ("2", 2, [raw_instance("i-1", version_="1"), raw_instance("i-2", version_="1")]),
            ("2", 2, [raw_instance("i-3"), raw_instance("i-4")]),
        ]
    )
    group, waited = wait_in_service(autoscaling, "shop-green", 2, 2, timeout=60, known={"i-1", "i-2"}, clock=clock, sleep=clock.sleep)
    assert [i["InstanceId"] for i in group["Instances"]] == ["i-3", "i-4"]
    assert len([c for c in autoscaling.calls if c == ("describe",)]) == 3 and waited == clock.now > 0
    with pytest.raises(WaitTimeout, match=r"i-1 InService/Healthy v1"):
        wait_in_service(
            FakeAutoScaling([("2", 2, [raw_instance("i-1", version_="1")])]), "shop-green", 1, 2, timeout=5, clock=clock, sleep=clock.sleep
        )


def test_stale_instances_never_count_and_extra_instances_are_waited_out():
    clock = FakeClock()
    autoscaling = FakeAutoScaling(
        [
            ("2", 2, [raw_instance("i-old"), raw_instance("i-1")]),
            ("2", 2, [raw_instance("i-1"), raw_instance("i-2"), raw_instance("i-3")]),
            ("2", 2, [raw_instance("i-1"), raw_instance("i-2"), raw_instance("i-3", "Terminating")]),
        ]
    )
    wait_in_service(autoscaling, "shop-green", 2, 2, timeout=60, stale={"i-old"}, known={"i-old", "i-3"}, clock=clock, sleep=clock.sleep)
    assert len([c for c in autoscaling.calls if c == ("describe",)]) == 3


def test_instances_that_keep_failing_end_the_wait_early():
    clock = FakeClock()
    autoscaling = FakeAutoScaling(
        [
            ("2", 2, [raw_instance("i-1", "Pending")]),
            ("2", 2, [raw_instance("i-1", "InService", "Unhealthy")]),
            ("2", 2, [raw_instance("i-1", "Terminating", "Unhealthy"), raw_instance("i-2", "Pending")]),
            ("2", 2, [raw_instance("i-2", "Terminating", "Unhealthy"), raw_instance("i-3", "Pending")]),
        ],
        activities=[{"StatusCode": "Failed", "StatusMessage": "Instance failed to pass ELB health checks", "StartTime": None}],
    )
    with pytest.raises(
        CutoverError, match=r"instances of Auto Scaling group shop-green keep failing .*i-1 Terminating/Unhealthy.*i-2"
    ) as error:
        wait_in_service(autoscaling, "shop-green", 2, 2, timeout=600, clock=clock, sleep=clock.sleep)
    assert "Instance failed to pass ELB health checks" in error.value.message
    assert clock.now < 60  # long before the timeout


def test_failed_launches_end_the_wait_early():
    clock = FakeClock()
    since = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    failed = {"StatusCode": "Failed", "StatusMessage": "The image id '[ami-0123]' does not exist", "StartTime": since}
    older = {"StatusCode": "Failed", "StatusMessage": "an earlier failure", "StartTime": since - datetime.timedelta(hours=1)}
    autoscaling = FakeAutoScaling([("2", 2, [])], activities=[failed, failed, older])
    with pytest.raises(CutoverError, match="cannot launch instances: The image id") as error:
        wait_in_service(autoscaling, "shop-green", 2, 2, timeout=600, since=since, clock=clock, sleep=clock.sleep)
    assert "an earlier failure" not in error.value.message
    assert 30 <= clock.now < 120


def test_wait_times_out_describing_the_group():
    clock = FakeClock()
    autoscaling = FakeAutoScaling([("2", 2, [raw_instance("i-1", "Pending")])])
    with pytest.raises(CutoverError, match=r"timed out after 20 s waiting for Auto Scaling group shop-green .*i-1 Pending/Healthy"):
        wait_in_service(autoscaling, "shop-green", 2, 2, timeout=20, clock=clock, sleep=clock.sleep)


def test_apply_suspends_scales_waits_and_resumes_what_it_suspended():
    clock = FakeClock()
    ec2 = FakeEc2([V1])
    pair = make_pair(green_asg=asg(suspended=["AZRebalance"], tags={"cutover:state": "standby"}))
    plan = plan_rollout(ec2, pair, image_id=NEW_AMI)
    autoscaling = FakeAutoScaling([("2", 2, [raw_instance("i-1"), raw_instance("i-2")])])
    outcome = apply_rollout(ec2, autoscaling, plan, wait_timeout=60, clock=clock, sleep=clock.sleep)
    assert outcome["version"] == 2 and plan["template"]["version"] == 2
    assert ec2.calls[-1] == ("create", "1", {"ImageId": NEW_AMI})
    kinds = [c[0] for c in autoscaling.calls]
    assert kinds == ["suspend", "update", "describe", "resume", "delete_tags", "describe"]
    suspended = ("AlarmNotification", "ScheduledActions", "ReplaceUnhealthy")
    assert autoscaling.calls[0] == ("suspend", suspended) and autoscaling.calls[3] == ("resume", suspended)
    assert autoscaling.calls[1][1]["LaunchTemplate"] == {"LaunchTemplateId": LT, "Version": "2"}
    assert set(outcome["timings"]) == {"launch_template", "scale", "total"}


def test_processes_are_resumed_when_the_wait_fails():
    clock = FakeClock()
    plan = plan_rollout(FakeEc2([V1]), make_pair(), image_id=NEW_AMI)
    autoscaling = FakeAutoScaling([("2", 2, [])])
    with pytest.raises(CutoverError, match="timed out") as error:
        apply_rollout(FakeEc2([V1]), autoscaling, plan, wait_timeout=10, clock=clock, sleep=clock.sleep)
    assert error.value.details["launch_template_version"] == 2
    assert autoscaling.calls[-1] == ("resume", DEFAULT_SUSPEND_PROCESSES)


def test_replacing_waits_for_old_instances_then_scales():
    clock = FakeClock()
    green = asg(version_="2", min_size=2, desired=2, instances=["i-old1", "i-old2"])
    green["launch_template"]["version"] = "2"
    v2 = version(2, ImageId=NEW_AMI)
    plan = plan_rollout(FakeEc2([V1, v2]), make_pair(green_asg=green), image_id="ami-0fedcba9876543210")
    assert plan["group"]["stale"] == ["i-old1", "i-old2"]
    autoscaling = FakeAutoScaling(
        [
            ("2", 0, [raw_instance("i-old1", "Terminating"), raw_instance("i-old2")]),
            ("2", 0, [raw_instance("i-old1", "Terminating"), raw_instance("i-old2", "Terminating")]),
            ("3", 2, [raw_instance("i-new1", version_="3"), raw_instance("i-new2", version_="3")]),
        ]
    )
    ec2 = FakeEc2([V1, v2])
    outcome = apply_rollout(ec2, autoscaling, plan, wait_timeout=60, clock=clock, sleep=clock.sleep)
    updates = [c[1] for c in autoscaling.calls if c[0] == "update"]
    assert updates[0] == {"MinSize": 0, "DesiredCapacity": 0}
    assert updates[1]["LaunchTemplate"]["Version"] == "3" and updates[1]["DesiredCapacity"] == 2
    assert set(outcome["timings"]) >= {"replace", "scale"}


def test_without_wait_only_the_final_wait_is_skipped():
    clock = FakeClock()
    plan = plan_rollout(FakeEc2([V1]), make_pair(blue_desired=3), image_id=NEW_AMI, preparation_capacity=1)
    autoscaling = FakeAutoScaling([("2", 1, [raw_instance("i-1")])])
    outcome = apply_rollout(FakeEc2([V1]), autoscaling, plan, wait=False, wait_timeout=60, clock=clock, sleep=clock.sleep)
    kinds = [c[0] for c in autoscaling.calls]
    assert kinds == ["suspend", "update", "describe", "update", "resume", "describe"]
    assert outcome["waited_seconds"] == 0.0
