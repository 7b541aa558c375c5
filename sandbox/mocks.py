"""Pulumi mocks that create each resource of the program in the sandbox through boto3.

Under ``pulumi.runtime.set_mocks`` the program runs with no CLI and no provider
plugin; every ``new_resource`` call here makes the real resource in the sandbox
and hands back its real id, ARN and attributes, so the stack outputs are the
sandbox's own. Create-only: enough for a sandbox that starts clean each time.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import boto3
import pulumi

from . import ACCESS_KEY, REGION, SECRET_KEY

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105 - Pulumi's secret marker, not a secret


def plain(value: Any) -> Any:
    """Unwrap Pulumi secrets and turn the mock runtime's floats back into ints."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return plain(value.get("value"))
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _tag_list(tags: dict[str, str] | None) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted((tags or {}).items())]


class SandboxMocks(pulumi.runtime.Mocks):
    """Creates each resource for real in the sandbox at ``endpoint``."""

    def __init__(self, endpoint: str, region: str = REGION):
        session = boto3.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=region)
        self.region = region
        self._client = lambda service: session.client(service, endpoint_url=endpoint)
        self.ec2 = self._client("ec2")
        self.elbv2 = self._client("elbv2")
        self.autoscaling = self._client("autoscaling")
        self.account = self._client("sts").get_caller_identity()["Account"]
        self.created: list[tuple[str, str, str]] = []
        self._creators: dict[str, Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]]] = {
            "aws:ec2/vpc:Vpc": self._vpc,
            "aws:ec2/internetGateway:InternetGateway": self._internet_gateway,
            "aws:ec2/routeTable:RouteTable": self._route_table,
            "aws:ec2/subnet:Subnet": self._subnet,
            "aws:ec2/routeTableAssociation:RouteTableAssociation": self._route_table_association,
            "aws:ec2/securityGroup:SecurityGroup": self._security_group,
            "aws:ec2/launchTemplate:LaunchTemplate": self._launch_template,
            "aws:lb/loadBalancer:LoadBalancer": self._load_balancer,
            "aws:lb/targetGroup:TargetGroup": self._target_group,
            "aws:lb/listener:Listener": self._listener,
            "aws:lb/listenerRule:ListenerRule": self._listener_rule,
            "aws:autoscaling/group:Group": self._auto_scaling_group,
            "aws:dynamodb/table:Table": self._table,
            "aws:ssm/parameter:Parameter": self._parameter,
            "aws:iam/policy:Policy": self._policy,
        }

    # -- the Mocks interface -------------------------------------------------------
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if not args.typ.startswith("aws:"):
            return f"{args.name}-component", {}
        creator = self._creators.get(args.typ)
        if creator is None:
            raise NotImplementedError(f"the sandbox cannot create {args.typ} ({args.name}); add it to sandbox/mocks.py")
        inputs = plain(args.inputs)
        try:
            resource_id, outputs = creator(args.name, inputs)
        except Exception as exc:
            raise RuntimeError(f"creating {args.typ} {args.name!r} in the sandbox failed: {exc}") from exc
        self.created.append((args.typ, args.name, resource_id))
        return resource_id, {**inputs, "id": resource_id, **outputs}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":  # noqa: S105
            zones = self.ec2.describe_availability_zones(
                Filters=[{"Name": "state", "Values": [plain(args.args).get("state") or "available"]}]
            )["AvailabilityZones"]
            return {
                "id": self.region,
                "names": [zone["ZoneName"] for zone in zones],
                "zoneIds": [zone["ZoneId"] for zone in zones],
            }
        raise NotImplementedError(f"the sandbox does not answer the invoke {args.token}")

    # -- helpers ---------------------------------------------------------------------
    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"

    def _tag_spec(self, kind: str, tags: dict[str, str] | None) -> list[dict[str, Any]]:
        return [{"ResourceType": kind, "Tags": _tag_list(tags)}] if tags else []

    # -- network ---------------------------------------------------------------------
    def _vpc(self, _name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        vpc = self.ec2.create_vpc(CidrBlock=inputs["cidrBlock"], TagSpecifications=self._tag_spec("vpc", inputs.get("tags")))["Vpc"]
        for attribute in ("enableDnsSupport", "enableDnsHostnames"):
            if attribute in inputs:
                self.ec2.modify_vpc_attribute(
                    VpcId=vpc["VpcId"], **{attribute[0].upper() + attribute[1:]: {"Value": bool(inputs[attribute])}}
                )
        return vpc["VpcId"], {"arn": self._arn("ec2", f"vpc/{vpc['VpcId']}"), "defaultSecurityGroupId": ""}

    def _internet_gateway(self, _name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        igw = self.ec2.create_internet_gateway(TagSpecifications=self._tag_spec("internet-gateway", inputs.get("tags")))["InternetGateway"]
        if inputs.get("vpcId"):
            self.ec2.attach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=inputs["vpcId"])
        return igw["InternetGatewayId"], {"arn": self._arn("ec2", f"internet-gateway/{igw['InternetGatewayId']}")}

    def _route_table(self, _name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        table = self.ec2.create_route_table(VpcId=inputs["vpcId"], TagSpecifications=self._tag_spec("route-table", inputs.get("tags")))[
            "RouteTable"
        ]
        for route in inputs.get("routes", []):
            self.ec2.create_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock=route["cidrBlock"], GatewayId=route["gatewayId"])
        return table["RouteTableId"], {"arn": self._arn("ec2", f"route-table/{table['RouteTableId']}")}

    def _subnet(self, _name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        subnet = self.ec2.create_subnet(
            VpcId=inputs["vpcId"],
            CidrBlock=inputs["cidrBlock"],
            AvailabilityZone=inputs["availabilityZone"],
            TagSpecifications=self._tag_spec("subnet", inputs.get("tags")),
        )["Subnet"]
        return subnet["SubnetId"], {"arn": subnet.get("SubnetArn", self._arn("ec2", f"subnet/{subnet['SubnetId']}"))}

    def _route_table_association(self, _name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        association = self.ec2.associate_route_table(RouteTableId=inputs["routeTableId"], SubnetId=inputs["subnetId"])
        return association["AssociationId"], {}

    def _security_group(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        group_id = self.ec2.create_security_group(
            GroupName=inputs.get("name") or name,
            Description=inputs.get("description") or "Managed by Pulumi",
            VpcId=inputs["vpcId"],
            TagSpecifications=self._tag_spec("security-group", inputs.get("tags")),
        )["GroupId"]
        permissions = []
        for rule in inputs.get("ingress", []):
            permission: dict[str, Any] = {"IpProtocol": rule["protocol"], "FromPort": rule["fromPort"], "ToPort": rule["toPort"]}
            if rule.get("cidrBlocks"):
                permission["IpRanges"] = [{"CidrIp": cidr, "Description": rule.get("description", "")} for cidr in rule["cidrBlocks"]]
            if rule.get("securityGroups"):
                permission["UserIdGroupPairs"] = [
                    {"GroupId": sg, "Description": rule.get("description", "")} for sg in rule["securityGroups"]
                ]
            permissions.append(permission)
        if permissions:
            self.ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=permissions)
        # Egress: a new group already allows all outbound traffic, which is all the program asks for.
        return group_id, {"arn": self._arn("ec2", f"security-group/{group_id}"), "name": inputs.get("name") or name}

    # -- compute -----------------------------------------------------------------------
    def _launch_template(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        data: dict[str, Any] = {"ImageId": inputs["imageId"], "InstanceType": inputs["instanceType"]}
        if inputs.get("userData"):
            base64.b64decode(inputs["userData"], validate=True)
            data["UserData"] = inputs["userData"]
        if inputs.get("vpcSecurityGroupIds"):
            data["SecurityGroupIds"] = inputs["vpcSecurityGroupIds"]
        specs = [{"ResourceType": s["resourceType"], "Tags": _tag_list(s.get("tags"))} for s in inputs.get("tagSpecifications", [])]
        if specs:
            data["TagSpecifications"] = specs
        template = self.ec2.create_launch_template(
            LaunchTemplateName=inputs.get("name") or name,
            LaunchTemplateData=data,
            TagSpecifications=self._tag_spec("launch-template", inputs.get("tags")),
        )["LaunchTemplate"]
        template_id = template["LaunchTemplateId"]
        return template_id, {
            "arn": self._arn("ec2", f"launch-template/{template_id}"),
            "latestVersion": template["LatestVersionNumber"],
            "defaultVersion": template["DefaultVersionNumber"],
            "name": template["LaunchTemplateName"],
        }

    def _auto_scaling_group(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        group_name = inputs.get("name") or name
        template = inputs["launchTemplate"]
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group_name,
            MinSize=inputs["minSize"],
            MaxSize=inputs["maxSize"],
            DesiredCapacity=inputs.get("desiredCapacity", inputs["minSize"]),
            VPCZoneIdentifier=",".join(inputs["vpcZoneIdentifiers"]),
            TargetGroupARNs=inputs.get("targetGroupArns", []),
            HealthCheckType=inputs.get("healthCheckType", "EC2"),
            HealthCheckGracePeriod=inputs.get("healthCheckGracePeriod", 300),
            LaunchTemplate={"LaunchTemplateId": template["id"], "Version": str(template.get("version", "$Default"))},
            Tags=[
                {
                    "ResourceId": group_name,
                    "ResourceType": "auto-scaling-group",
                    "Key": tag["key"],
                    "Value": tag["value"],
                    "PropagateAtLaunch": bool(tag.get("propagateAtLaunch")),
                }
                for tag in inputs.get("tags", [])
            ],
        )
        group = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"][0]
        return group_name, {"arn": group["AutoScalingGroupARN"], "name": group_name}

    # -- load balancing -------------------------------------------------------------------
    def _load_balancer(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        lb = self.elbv2.create_load_balancer(
            Name=inputs.get("name") or name,
            Subnets=inputs["subnets"],
            SecurityGroups=inputs.get("securityGroups", []),
            Scheme="internal" if inputs.get("internal") else "internet-facing",
            Type=inputs.get("loadBalancerType", "application"),
            Tags=_tag_list(inputs.get("tags")),
        )["LoadBalancers"][0]
        arn = lb["LoadBalancerArn"]
        return arn, {
            "arn": arn,
            "arnSuffix": arn.split(":loadbalancer/", 1)[1],
            "dnsName": lb["DNSName"],
            "zoneId": lb.get("CanonicalHostedZoneId", ""),
            "name": lb["LoadBalancerName"],
        }

    def _target_group(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        check = inputs.get("healthCheck", {})
        group = self.elbv2.create_target_group(
            Name=inputs.get("name") or name,
            Protocol=inputs.get("protocol", "HTTP"),
            Port=inputs["port"],
            VpcId=inputs["vpcId"],
            TargetType=inputs.get("targetType", "instance"),
            HealthCheckEnabled=bool(check.get("enabled", True)),
            HealthCheckProtocol=check.get("protocol", "HTTP"),
            HealthCheckPort=str(check.get("port", "traffic-port")),
            HealthCheckPath=check.get("path", "/"),
            HealthCheckIntervalSeconds=check.get("interval", 30),
            HealthCheckTimeoutSeconds=check.get("timeout", 5),
            HealthyThresholdCount=check.get("healthyThreshold", 5),
            UnhealthyThresholdCount=check.get("unhealthyThreshold", 2),
            Matcher={"HttpCode": check.get("matcher", "200")},
            Tags=_tag_list(inputs.get("tags")),
        )["TargetGroups"][0]
        arn = group["TargetGroupArn"]
        if "deregistrationDelay" in inputs:
            self.elbv2.modify_target_group_attributes(
                TargetGroupArn=arn,
                Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(inputs["deregistrationDelay"])}],
            )
        return arn, {"arn": arn, "arnSuffix": arn.split(":", 5)[5], "name": group["TargetGroupName"]}

    @staticmethod
    def _actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for order, action in enumerate(actions, start=1):
            if action["type"] != "forward":
                raise NotImplementedError(f"the sandbox program only uses forward actions, not {action['type']}")
            out.append({"Type": "forward", "TargetGroupArn": action["targetGroupArn"], "Order": order})
        return out

    def _listener(self, _name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "LoadBalancerArn": inputs["loadBalancerArn"],
            "Protocol": inputs.get("protocol", "HTTP"),
            "Port": inputs["port"],
            "DefaultActions": self._actions(inputs["defaultActions"]),
            "Tags": _tag_list(inputs.get("tags")),
        }
        if inputs.get("certificateArn"):
            kwargs["Certificates"] = [{"CertificateArn": inputs["certificateArn"]}]
            kwargs["SslPolicy"] = inputs.get("sslPolicy")
        arn = self.elbv2.create_listener(**kwargs)["Listeners"][0]["ListenerArn"]
        return arn, {"arn": arn}

    def _listener_rule(self, _name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        conditions = []
        for condition in inputs.get("conditions", []):
            if "pathPattern" not in condition:
                raise NotImplementedError("the sandbox program only uses path-pattern rule conditions")
            conditions.append({"Field": "path-pattern", "PathPatternConfig": {"Values": condition["pathPattern"]["values"]}})
        arn = self.elbv2.create_rule(
            ListenerArn=inputs["listenerArn"],
            Priority=inputs["priority"],
            Conditions=conditions,
            Actions=self._actions(inputs["actions"]),
            Tags=_tag_list(inputs.get("tags")),
        )["Rules"][0]["RuleArn"]
        return arn, {"arn": arn}

    # -- lock, journal, parameter, policy ---------------------------------------------------
    def _table(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        dynamodb = self._client("dynamodb")
        keys = [{"AttributeName": inputs["hashKey"], "KeyType": "HASH"}]
        if inputs.get("rangeKey"):
            keys.append({"AttributeName": inputs["rangeKey"], "KeyType": "RANGE"})
        table = dynamodb.create_table(
            TableName=inputs.get("name") or name,
            BillingMode=inputs.get("billingMode", "PAY_PER_REQUEST"),
            KeySchema=keys,
            AttributeDefinitions=[{"AttributeName": a["name"], "AttributeType": a["type"]} for a in inputs["attributes"]],
            Tags=_tag_list(inputs.get("tags")),
        )["TableDescription"]
        ttl = inputs.get("ttl") or {}
        if ttl.get("enabled"):
            dynamodb.update_time_to_live(
                TableName=table["TableName"],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["attributeName"]},
            )
        return table["TableName"], {"arn": table["TableArn"], "name": table["TableName"]}

    def _parameter(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ssm = self._client("ssm")
        parameter_name = inputs.get("name") or name
        ssm.put_parameter(
            Name=parameter_name,
            Value=inputs["value"],
            Type=inputs.get("type", "String"),
            Description=inputs.get("description", ""),
            Tags=_tag_list(inputs.get("tags")),
        )
        return parameter_name, {"arn": self._arn("ssm", f"parameter{parameter_name}"), "name": parameter_name, "version": 1}

    def _policy(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        policy = self._client("iam").create_policy(
            PolicyName=inputs.get("name") or name,
            PolicyDocument=inputs["policy"],
            Description=inputs.get("description", ""),
            Tags=_tag_list(inputs.get("tags")),
        )["Policy"]
        return policy["Arn"], {"arn": policy["Arn"], "policyId": policy["PolicyId"], "name": policy["PolicyName"]}
