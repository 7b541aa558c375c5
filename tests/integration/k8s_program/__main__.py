"""A tiny pulumi-kubernetes program: what the Kubernetes sandbox must provision from Pulumi objects.

A namespace, a Deployment with a readiness probe and a preStop sleep, a Service
selecting it, a preview Service selecting nothing yet (skipAwait, as a program
must mark a Service whose pods may not exist), a ConfigMap and a PodDisruptionBudget.
"""

import pulumi
import pulumi_kubernetes as k8s

config = pulumi.Config("fixture")
labels = {"app": "web", "slot": "blue"}
namespace = k8s.core.v1.Namespace("ns", metadata={"name": config.require("namespace")})
ns = namespace.metadata.name
deployment = k8s.apps.v1.Deployment(
    "web-blue",
    metadata={"namespace": ns, "labels": labels},
    spec={
        "replicas": config.require_int("replicas"),
        "selector": {"match_labels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "termination_grace_period_seconds": 10,
                "containers": [
                    {
                        "name": "web",
                        "image": config.require("image"),
                        "ports": [{"name": "http", "container_port": 8080}],
                        "readiness_probe": {"http_get": {"path": "/health", "port": "http"}, "period_seconds": 1, "failure_threshold": 2},
                        "lifecycle": {"pre_stop": {"sleep": {"seconds": 2}}},
                    }
                ],
            },
        },
    },
)
service = k8s.core.v1.Service(
    "web",
    metadata={"name": "web", "namespace": ns, "labels": {"app": "web"}},
    spec={"selector": labels, "ports": [{"name": "http", "port": 80, "target_port": "http"}]},
    opts=pulumi.ResourceOptions(depends_on=[deployment]),
)
preview = k8s.core.v1.Service(
    "web-preview",
    metadata={"name": "web-preview", "namespace": ns, "annotations": {"pulumi.com/skipAwait": "true"}},
    spec={"selector": {"app": "web", "slot": "green"}, "ports": [{"name": "http", "port": 80, "target_port": "http"}]},
)
active = k8s.core.v1.ConfigMap("active", metadata={"name": "web-active-color", "namespace": ns}, data={"color": "blue"})
budget = k8s.policy.v1.PodDisruptionBudget(
    "web-blue", metadata={"namespace": ns}, spec={"max_unavailable": 1, "selector": {"match_labels": labels}}
)
pulumi.export("namespace", ns)
pulumi.export("deployment", deployment.metadata.name)
pulumi.export("deployment_id", deployment.id)
pulumi.export("available_replicas", deployment.status.available_replicas)
pulumi.export("service", service.metadata.name)
pulumi.export("cluster_ip", service.spec.cluster_ip)
pulumi.export("budget", budget.metadata.name)
pulumi.export("config_map", active.metadata.name)
