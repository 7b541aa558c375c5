"""The Kubernetes sandbox: a local Kubernetes API whose Deployments run real pods and whose Services carry traffic.

``python -m sandbox start --kubernetes`` starts it (clean state every time) and
writes a kubeconfig that the ``kubernetes`` client, kubernetes.core and the
Pulumi mocks use; ``python -m sandbox stop`` stops it, leaving no process behind.

- :mod:`.api`: the API over HTTP (aiohttp): discovery, CRUD, watch, patch, subresources;
- :mod:`.store`: objects, resourceVersions, generations, graceful deletion, garbage collection;
- :mod:`.controllers`: Deployments, ReplicaSets, the scheduler, Endpoints/EndpointSlices, PDBs, namespaces;
- :mod:`.kubelet`: pods as local processes (the AWS sandbox's instance app) with probes and graceful termination;
- :mod:`.proxy`: each Service port as an HAProxy frontend routing like kube-proxy to the ready endpoints;
- :mod:`.server` / :mod:`.daemon`: starting and stopping it; :mod:`.control`: its control calls;
- :mod:`.mocks` / :mod:`.provision`: a Pulumi Kubernetes program provisioned into it under the mock runtime.
"""

DEFAULT_PORT = 5056
CONTEXT = "cutover-sandbox"
TOKEN = "cutover-sandbox"  # noqa: S105 - the sandbox accepts any token; clients need one to send
