"""BlueGreenApp: one blue-green app on Kubernetes, as a Pulumi ComponentResource.

Pulumi owns the topology; Ansible (cutover.bluegreen) owns what changes per
release. ``RELEASE_OWNED`` lists exactly those properties, and every resource that
has one is created with ``ignore_changes`` on it, so ``pulumi up`` after any number
of cutovers proposes no change and never flips traffic back.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .config import APP_LABEL, COLORS, SLOT_LABEL, BlueGreenAppArgs
from .rbac import deployer_rules

TYPE = "cutover:kubernetes:BlueGreenApp"
SKIP_AWAIT = "pulumi.com/skipAwait"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"

# Resource type -> properties a release changes (Pulumi property paths).
RELEASE_OWNED: dict[str, list[str]] = {
    DEPLOYMENT: ["spec.replicas", "spec.template.spec.containers[*].image"],
    SERVICE: ["spec.selector"],
    CONFIG_MAP: ["data"],  # the active colour
}


class BlueGreenApp(pulumi.ComponentResource):
    """A namespace (or an existing one), Deployments ``<app>-blue`` and ``<app>-green``, the live Service
    ``<app>``, the preview Service ``<app>-preview``, a PodDisruptionBudget per colour, the ConfigMap that
    publishes the active colour, and a ServiceAccount, Role and RoleBinding for the deployer."""

    def __init__(self, name: str, args: BlueGreenAppArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        self.args = args
        app = args.app

        def child(type_token: str, **kwargs: Any) -> pulumi.ResourceOptions:
            """Every child belongs to the component; what a release owns is ignored."""
            owned = RELEASE_OWNED.get(type_token)
            return pulumi.ResourceOptions(parent=self, ignore_changes=list(owned) if owned else None, **kwargs)

        labels = {**args.labels, APP_LABEL: app}

        # --- namespace ---------------------------------------------------------------------
        if args.create_namespace:
            namespace = k8s.core.v1.Namespace(
                f"{name}-namespace",
                metadata={"name": args.effective_namespace, "labels": labels},
                opts=child("kubernetes:core/v1:Namespace"),
            )
            ns: pulumi.Input[str] = namespace.metadata.name
        else:
            ns = args.effective_namespace

        def metadata(object_name: str, extra_labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None):
            meta: dict[str, Any] = {"name": object_name, "namespace": ns, "labels": {**labels, **(extra_labels or {})}}
            if annotations:
                meta["annotations"] = annotations
            return meta

        # --- the two colours -----------------------------------------------------------------
        probe = args.readiness
        container: dict[str, Any] = {
            "name": args.container_name,
            "image": args.image,
            "ports": [{"name": "http", "container_port": args.container_port, "protocol": "TCP"}],
            "readiness_probe": {
                "http_get": {"path": probe.path, "port": "http"},
                "initial_delay_seconds": probe.initial_delay,
                "period_seconds": probe.period,
                "timeout_seconds": probe.timeout,
                "success_threshold": probe.success_threshold,
                "failure_threshold": probe.failure_threshold,
            },
            "resources": _resources(args),
        }
        if args.env:
            container["env"] = [{"name": key, "value": value} for key, value in sorted(args.env.items())]
        if args.pre_stop_seconds:
            # The pod leaves the Services' endpoints when its deletion starts; the preStop delay keeps it
            # serving until every proxy has noticed, before the process is asked to stop.
            if args.pre_stop_mode == "sleep":
                container["lifecycle"] = {"pre_stop": {"sleep": {"seconds": args.pre_stop_seconds}}}
            else:
                container["lifecycle"] = {"pre_stop": {"exec": {"command": ["sleep", str(args.pre_stop_seconds)]}}}

        deployments: dict[str, k8s.apps.v1.Deployment] = {}
        budgets: dict[str, k8s.policy.v1.PodDisruptionBudget] = {}
        for color in COLORS:
            live = color == "blue"
            selector = {APP_LABEL: app, SLOT_LABEL: color}
            logical = f"{name}-{color}"
            deployments[color] = k8s.apps.v1.Deployment(
                logical,
                metadata=metadata(args.deployment_name(color), {SLOT_LABEL: color}),
                spec={
                    "replicas": args.replicas if live else 0,
                    "selector": {"match_labels": selector},
                    "min_ready_seconds": args.min_ready_seconds,
                    "strategy": {"type": "RollingUpdate", "rolling_update": {"max_surge": "25%", "max_unavailable": 0}},
                    "template": {
                        "metadata": {"labels": {**labels, **selector}},
                        "spec": {"termination_grace_period_seconds": args.termination_grace_seconds, "containers": [container]},
                    },
                },
                opts=child(DEPLOYMENT),
            )
            budgets[color] = k8s.policy.v1.PodDisruptionBudget(
                logical,
                metadata=metadata(args.deployment_name(color), {SLOT_LABEL: color}),
                spec={"max_unavailable": args.pdb_max_unavailable, "selector": {"match_labels": selector}},
                opts=child("kubernetes:policy/v1:PodDisruptionBudget"),
            )

        # --- Services -------------------------------------------------------------------------
        ports = [{"name": "http", "port": args.service_port, "target_port": "http", "protocol": "TCP"}]
        # Pulumi waits for a Service with a selector until it has a ready endpoint; the preview Service
        # selects the idle colour, which has no pods until a release, and the live one none at 0 replicas.
        live_service = k8s.core.v1.Service(
            f"{name}-live",
            metadata=metadata(args.service_name, annotations={SKIP_AWAIT: "true"} if args.replicas == 0 else None),
            spec={"type": args.service_type, "selector": {APP_LABEL: app, SLOT_LABEL: "blue"}, "ports": ports},
            opts=child(SERVICE, depends_on=[deployments["blue"]]),
        )
        preview_service = k8s.core.v1.Service(
            f"{name}-preview",
            metadata=metadata(args.preview_service_name, annotations={SKIP_AWAIT: "true"}),
            spec={"type": "ClusterIP", "selector": {APP_LABEL: app, SLOT_LABEL: "green"}, "ports": ports},
            opts=child(SERVICE),
        )

        # --- the active colour, for jobs that must run on the live side only -------------------------
        active = k8s.core.v1.ConfigMap(
            f"{name}-active-color",
            metadata=metadata(args.active_color_config_map),
            data={"color": "blue"},
            opts=child(CONFIG_MAP),
        )

        # --- the deployer: a ServiceAccount bound to a Role with only what the collection calls ------------
        account = k8s.core.v1.ServiceAccount(
            f"{name}-deployer",
            metadata=metadata(args.effective_service_account),
            opts=child("kubernetes:core/v1:ServiceAccount"),
        )
        role = k8s.rbac.v1.Role(
            f"{name}-deployer",
            metadata=metadata(f"{app}-deployer"),
            rules=[_snake_rule(rule) for rule in self.rules],
            opts=child("kubernetes:rbac.authorization.k8s.io/v1:Role"),
        )
        subjects: list[dict[str, Any]] = [{"kind": "ServiceAccount", "name": args.effective_service_account, "namespace": ns}]
        subjects += [{"kind": "User", "name": user, "api_group": "rbac.authorization.k8s.io"} for user in args.deployer_users]
        subjects += [{"kind": "Group", "name": group, "api_group": "rbac.authorization.k8s.io"} for group in args.deployer_groups]
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-deployer",
            metadata=metadata(f"{app}-deployer"),
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{app}-deployer"},
            subjects=subjects,
            opts=child("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", depends_on=[role, account]),
        )

        self.deployments = deployments
        self.budgets = budgets
        self.services = {"live": live_service, "preview": preview_service}
        self.active_color = active
        self.role = role
        self.role_binding = binding
        self.service_account = account
        self.outputs: dict[str, pulumi.Input[Any]] = {
            "app": app,
            "namespace": ns,
            "deployments": {color: deployments[color].metadata.name for color in COLORS},
            "service": live_service.metadata.name,
            "preview_service": preview_service.metadata.name,
            "cluster_ip": live_service.spec.cluster_ip,
            "active_color_config_map": active.metadata.name,
            "journal_config_map": args.journal_config_map,
            "lease": args.lease_name,
            "pod_disruption_budgets": {color: budgets[color].metadata.name for color in COLORS},
            "deployer_service_account": account.metadata.name,
            "deployer_role": role.metadata.name,
        }
        self.register_outputs(self.outputs)

    @property
    def rules(self) -> list[dict[str, Any]]:
        """The deployer Role's rules (Kubernetes field names)."""
        args = self.args
        return deployer_rules(
            deployments=[args.deployment_name(color) for color in COLORS],
            config_maps=[args.active_color_config_map, args.journal_config_map],
            lease=args.lease_name,
            preview_service=args.preview_service_name,
        )


def _resources(args: BlueGreenAppArgs) -> dict[str, dict[str, str]]:
    requests = {k: v for k, v in (("cpu", args.cpu_request), ("memory", args.memory_request)) if v}
    limits = {k: v for k, v in (("cpu", args.cpu_limit), ("memory", args.memory_limit)) if v}
    out = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _snake_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A Role rule with the Python SDK's argument names."""
    names = {"apiGroups": "api_groups", "resourceNames": "resource_names"}
    return {names.get(key, key): value for key, value in rule.items()}
