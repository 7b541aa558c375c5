"""BlueGreenPair: one blue-green pair for one service, as a Pulumi ComponentResource.

Pulumi owns the topology; Ansible (cutover.bluegreen) owns what changes per
release. ``RELEASE_OWNED`` lists exactly those properties, and every resource that
has one is created with ``ignore_changes`` on it, so ``pulumi up`` after any number
of cutovers proposes no change and never flips traffic back.

Physical names are fixed where a person, a test or the collection reads them: the ALB,
target groups, ASGs and launch template are named after the service, the table and the
active-colour parameter are found by name by the collection, and the deployer policy is
attached by name. Security groups and the network take Pulumi's auto-names. A fixed name
rules out Pulumi's default create-before-replace (AWS refuses a second resource of the
same name), so every resource whose replacement a config change can force is deleted
before it is replaced: only the target groups (``app_port`` or the VPC); ASGs, the
launch template, table, parameter and policy are replaced only when their name changes
too.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
from typing import Any

import pulumi
import pulumi_aws as aws

from .config import COLORS, BlueGreenPairArgs
from .policy import deployer_policy

TYPE = "cutover:aws:BlueGreenPair"

# Resource type -> properties a release changes (Pulumi property paths).
RELEASE_OWNED: dict[str, list[str]] = {
    "aws:lb/listener:Listener": ["defaultActions"],
    "aws:lb/listenerRule:ListenerRule": ["actions"],
    "aws:autoscaling/group:Group": ["minSize", "maxSize", "desiredCapacity", "launchTemplate.version"],
    "aws:ssm/parameter:Parameter": ["value"],
}


def subnet_cidrs(vpc_cidr: str, count: int = 2) -> list[str]:
    """Split the VPC range into equal subnets, four bits smaller, and take the first ``count``."""
    network = ipaddress.ip_network(vpc_cidr)
    return [str(net) for net in itertools.islice(network.subnets(prefixlen_diff=4), count)]


class BlueGreenPair(pulumi.ComponentResource):
    """A network, an ALB with a production and a test listener, blue and green
    target groups and Auto Scaling groups, a launch template, the lock-and-journal
    table, the active-colour parameter and a least-privilege deployer policy."""

    def __init__(self, name: str, args: BlueGreenPairArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        self.args = args
        service = args.service
        base_tags = {**args.tags, "cutover:service": service}

        def tags(color: str | None = None, **extra: str) -> dict[str, str]:
            out = {**base_tags, **extra}
            if color:
                out["cutover:color"] = color
            return out

        def child(**kwargs: Any) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, **kwargs)

        def owned(type_token: str) -> pulumi.ResourceOptions:
            return child(ignore_changes=list(RELEASE_OWNED[type_token]))

        # --- network -------------------------------------------------------------
        if args.vpc_id:
            vpc_id: pulumi.Input[str] = args.vpc_id
            subnet_ids: list[pulumi.Input[str]] = list(args.subnet_ids)
        else:
            vpc = aws.ec2.Vpc(
                f"{name}-vpc",
                cidr_block=args.vpc_cidr,
                enable_dns_hostnames=True,
                enable_dns_support=True,
                tags=tags(Name=f"{service}-bluegreen"),
                opts=child(),
            )
            igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags(), opts=child())
            routes = aws.ec2.RouteTable(
                f"{name}-public",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
                tags=tags(),
                opts=child(),
            )
            zones = aws.get_availability_zones(state="available", opts=pulumi.InvokeOptions(parent=self))
            if len(zones.names) < 2:
                raise ValueError(f"the region offers {len(zones.names)} availability zone(s); a pair needs two")
            subnet_ids = []
            for index, (zone, cidr) in enumerate(zip(sorted(zones.names)[:2], subnet_cidrs(args.vpc_cidr), strict=True)):
                subnet = aws.ec2.Subnet(
                    f"{name}-subnet-{index}",
                    vpc_id=vpc.id,
                    cidr_block=cidr,
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags=tags(Name=f"{service}-{zone}"),
                    opts=child(),
                )
                aws.ec2.RouteTableAssociation(f"{name}-subnet-{index}-public", subnet_id=subnet.id, route_table_id=routes.id, opts=child())
                subnet_ids.append(subnet.id)
            vpc_id = vpc.id

        # --- security groups ---------------------------------------------------------
        egress = [aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"])]
        alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb",
            vpc_id=vpc_id,
            description=f"cutover {service}: production listener from allowed CIDRs, test listener from test CIDRs",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=args.production_port,
                    to_port=args.production_port,
                    cidr_blocks=list(args.allowed_cidrs),
                    description="production listener",
                ),
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=args.test_port,
                    to_port=args.test_port,
                    cidr_blocks=list(args.effective_test_cidrs),
                    description="test listener",
                ),
            ],
            egress=egress,
            tags=tags(),
            opts=child(),
        )
        instance_sg = aws.ec2.SecurityGroup(
            f"{name}-instances",
            vpc_id=vpc_id,
            description=f"cutover {service}: application port from the load balancer only",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=args.app_port,
                    to_port=args.app_port,
                    security_groups=[alb_sg.id],
                    description="from the ALB",
                )
            ],
            egress=egress,
            tags=tags(),
            opts=child(),
        )

        # --- load balancer and target groups -------------------------------------------
        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            name=f"{service}-alb",
            load_balancer_type="application",
            internal=False,
            subnets=subnet_ids,
            security_groups=[alb_sg.id],
            tags=tags(),
            opts=child(),
        )
        health = args.health_check
        target_groups: dict[str, aws.lb.TargetGroup] = {}
        for color in COLORS:
            target_groups[color] = aws.lb.TargetGroup(
                f"{name}-{color}",
                name=f"{service}-{color}",
                port=args.app_port,
                protocol="HTTP",
                target_type="instance",
                vpc_id=vpc_id,
                deregistration_delay=args.deregistration_delay,
                health_check=aws.lb.TargetGroupHealthCheckArgs(
                    enabled=True,
                    path=health.path,
                    protocol="HTTP",
                    port="traffic-port",
                    interval=health.interval,
                    timeout=health.timeout,
                    healthy_threshold=health.healthy_threshold,
                    unhealthy_threshold=health.unhealthy_threshold,
                    matcher=health.matcher,
                ),
                tags=tags(color),
                # Fixed name, so no create-before-replace (app_port or the VPC force a replacement).
                # Not an auto-name instead: a new group next to the old one would take over the ASG's
                # instances while the release-owned listener actions still forward to the old group.
                # AWS refuses to delete a group a listener forwards to, so on a live pair such a change
                # fails at the deletion: it needs a new pair (README, "Physical names").
                opts=child(delete_before_replace=True),
            )

        def forward(color: str) -> list[aws.lb.ListenerDefaultActionArgs]:
            return [aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_groups[color].arn)]

        https = args.certificate_arn is not None
        production = aws.lb.Listener(
            f"{name}-production",
            load_balancer_arn=alb.arn,
            port=args.production_port,
            protocol="HTTPS" if https else "HTTP",
            certificate_arn=args.certificate_arn,
            ssl_policy="ELBSecurityPolicy-TLS13-1-2-2021-06" if https else None,
            default_actions=forward("blue"),
            tags=tags(**{"cutover:listener": "production"}),
            opts=owned("aws:lb/listener:Listener"),
        )
        test = aws.lb.Listener(
            f"{name}-test",
            load_balancer_arn=alb.arn,
            port=args.test_port,
            protocol="HTTP",
            default_actions=forward("green"),
            tags=tags(**{"cutover:listener": "test"}),
            opts=owned("aws:lb/listener:Listener"),
        )
        rules = [
            aws.lb.ListenerRule(
                f"{name}-rule-{index}",
                listener_arn=production.arn,
                priority=10 + index,
                conditions=[aws.lb.ListenerRuleConditionArgs(path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=[pattern]))],
                actions=[aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=target_groups["blue"].arn)],
                tags=tags(),
                opts=owned("aws:lb/listenerRule:ListenerRule"),
            )
            for index, pattern in enumerate(args.path_rules)
        ]

        # --- compute ---------------------------------------------------------------------
        template = aws.ec2.LaunchTemplate(
            f"{name}-template",
            name=f"cutover-{service}",
            image_id=args.image_id,
            instance_type=args.instance_type,
            user_data=base64.b64encode(args.user_data.encode()).decode() if args.user_data else None,
            vpc_security_group_ids=[instance_sg.id],
            update_default_version=False,
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="instance", tags=tags()),
            ],
            tags=tags(),
            opts=child(),
        )
        groups: dict[str, aws.autoscaling.Group] = {}
        for color in COLORS:
            live = color == "blue"
            groups[color] = aws.autoscaling.Group(
                f"{name}-{color}",
                name=f"{service}-{color}",
                min_size=args.min_size if live else 0,
                max_size=args.max_size,
                desired_capacity=args.desired_capacity if live else 0,
                vpc_zone_identifiers=subnet_ids,
                target_group_arns=[target_groups[color].arn],
                health_check_type="ELB",
                health_check_grace_period=60,
                launch_template=aws.autoscaling.GroupLaunchTemplateArgs(id=template.id, version=template.latest_version.apply(str)),
                tags=[
                    aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=True)
                    for key, value in tags(color, Name=f"{service}-{color}").items()
                ],
                opts=owned("aws:autoscaling/group:Group"),
            )

        # --- lock, journal, active colour --------------------------------------------------
        table = aws.dynamodb.Table(
            f"{name}-table",
            name=args.effective_table_name,
            billing_mode="PAY_PER_REQUEST",
            hash_key="pk",
            range_key="sk",
            attributes=[
                aws.dynamodb.TableAttributeArgs(name="pk", type="S"),
                aws.dynamodb.TableAttributeArgs(name="sk", type="S"),
            ],
            ttl=aws.dynamodb.TableTtlArgs(attribute_name="expires_at", enabled=True),
            tags=tags(),
            opts=child(),
        )
        parameter = aws.ssm.Parameter(
            f"{name}-active-color",
            name=args.parameter_name,
            type="String",
            value="blue",
            description=f"cutover {service}: the colour the production listener forwards to",
            tags=tags(),
            opts=owned("aws:ssm/parameter:Parameter"),
        )

        # --- deployer policy ----------------------------------------------------------------
        policy_document = pulumi.Output.all(
            listeners=pulumi.Output.all(production.arn, test.arn),
            target_groups=pulumi.Output.all(*(target_groups[c].arn for c in COLORS)),
            asgs=pulumi.Output.all(*(groups[c].arn for c in COLORS)),
            template=template.arn,
            table=table.arn,
            parameter=parameter.arn,
        ).apply(
            lambda v: json.dumps(
                deployer_policy(
                    listener_arns=list(v["listeners"]),
                    target_group_arns=list(v["target_groups"]),
                    asg_arns=list(v["asgs"]),
                    launch_template_arn=v["template"],
                    table_arn=v["table"],
                    parameter_arn=v["parameter"],
                ),
                indent=2,
            )
        )
        policy = aws.iam.Policy(
            f"{name}-deployer",
            name=args.effective_deployer_policy_name,
            description=f"cutover {service}: what the cutover.bluegreen collection needs to release, and no more",
            policy=policy_document,
            tags=tags(),
            opts=child(),
        )

        scheme = "https" if https else "http"
        self.load_balancer = alb
        self.target_groups = target_groups
        self.groups = groups
        self.listeners = {"production": production, "test": test}
        self.rules = rules
        self.launch_template = template
        self.table = table
        self.parameter = parameter
        self.policy = policy
        self.outputs: dict[str, pulumi.Input[Any]] = {
            "service": service,
            "vpc_id": vpc_id,
            "subnet_ids": subnet_ids,
            "load_balancer_arn": alb.arn,
            "load_balancer_dns_name": alb.dns_name,
            "production_listener_arn": production.arn,
            "test_listener_arn": test.arn,
            "rule_arns": [rule.arn for rule in rules],
            "production_url": alb.dns_name.apply(lambda dns: f"{scheme}://{dns}:{args.production_port}"),
            "test_url": alb.dns_name.apply(lambda dns: f"http://{dns}:{args.test_port}"),
            "target_group_arns": {color: target_groups[color].arn for color in COLORS},
            "asg_names": {color: groups[color].name for color in COLORS},
            "launch_template_id": template.id,
            "table_name": table.name,
            "active_color_parameter": parameter.name,
            "deployer_policy_arn": policy.arn,
            "instance_security_group_id": instance_sg.id,
            "alb_security_group_id": alb_sg.id,
        }
        self.register_outputs(self.outputs)
