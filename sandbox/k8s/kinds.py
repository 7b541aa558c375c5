"""The resource types the Kubernetes sandbox serves, as discovery describes them.

One :class:`Kind` per resource: where it lives (group, version, plural), whether
it is namespaced, its subresources, whether it counts ``metadata.generation``, and
which lists a strategic merge patch merges by key (:data:`MERGE_KEYS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_ONLY = ("get", "list", "watch")


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    generation: bool = False  # metadata.generation counts spec changes
    verbs: tuple[str, ...] = VERBS
    categories: tuple[str, ...] = ()
    singular: str = field(default="")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """``group/plural`` (``/pods`` for the core group): how the store files objects."""
        return f"{self.group}/{self.plural}"

    @property
    def qualified(self) -> str:
        """How Kubernetes names the resource in messages: ``deployments.apps``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def discovery(self) -> list[dict]:
        """Entries of an APIResourceList: the resource and each subresource."""
        entries = [
            {
                "name": self.plural,
                "singularName": self.singular or self.kind.lower(),
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": list(self.verbs),
                **({"shortNames": list(self.short_names)} if self.short_names else {}),
                **({"categories": list(self.categories)} if self.categories else {}),
            }
        ]
        for sub in self.subresources:
            entry: dict = {"name": f"{self.plural}/{sub}", "singularName": "", "namespaced": self.namespaced}
            if sub == "scale":
                entry.update(group="autoscaling", version="v1", kind="Scale", verbs=["get", "patch", "update"])
            elif sub == "status":
                entry.update(kind=self.kind, verbs=["get", "patch", "update"])
            elif sub == "eviction":
                entry.update(group="policy", version="v1", kind="Eviction", verbs=["create"])
            elif sub == "log":
                entry.update(kind="Pod", verbs=["get"])
            elif sub == "proxy":
                entry.update(kind="ServiceProxyOptions" if self.plural == "services" else "PodProxyOptions")
                entry["verbs"] = ["create", "delete", "get", "patch", "update"]
            elif sub == "finalize":
                entry.update(kind=self.kind, verbs=["update"])
            entries.append(entry)
        return entries


KINDS: tuple[Kind, ...] = (
    Kind("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), subresources=("status", "finalize")),
    Kind("", "v1", "nodes", "Node", namespaced=False, short_names=("no",), subresources=("status",), verbs=READ_ONLY),
    Kind("", "v1", "pods", "Pod", short_names=("po",), subresources=("status", "log", "eviction", "proxy"), categories=("all",)),
    Kind("", "v1", "services", "Service", short_names=("svc",), subresources=("status", "proxy"), categories=("all",)),
    Kind("", "v1", "endpoints", "Endpoints", short_names=("ep",), singular="endpoints"),
    Kind("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    Kind("", "v1", "secrets", "Secret"),
    Kind("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    Kind("", "v1", "events", "Event", short_names=("ev",)),
    Kind(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        subresources=("status", "scale"),
        generation=True,
        categories=("all",),
    ),
    Kind(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        short_names=("rs",),
        subresources=("status", "scale"),
        generation=True,
        categories=("all",),
    ),
    Kind("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    Kind("coordination.k8s.io", "v1", "leases", "Lease"),
    Kind("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short_names=("pdb",), subresources=("status",), generation=True),
    Kind("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    Kind("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    Kind("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
)

BY_KEY = {kind.key: kind for kind in KINDS}


def find(group: str, version: str, plural: str) -> Kind | None:
    kind = BY_KEY.get(f"{group}/{plural}")
    return kind if kind is not None and kind.version == version else None


def by_kind(api_version: str, kind_name: str) -> Kind | None:
    for kind in KINDS:
        if kind.api_version == api_version and kind.kind == kind_name:
            return kind
    return None


def groups() -> dict[str, list[str]]:
    """Group name -> its versions ("" is the core group)."""
    found: dict[str, list[str]] = {}
    for kind in KINDS:
        versions = found.setdefault(kind.group, [])
        if kind.version not in versions:
            versions.append(kind.version)
    return found


def in_group_version(group: str, version: str) -> list[Kind]:
    return [kind for kind in KINDS if kind.group == group and kind.version == version]


# Strategic merge patch: lists merged by a key (patchMergeKey), by where they sit.
# A path is the field names from the object's root; "[]" steps into a list's items.
_POD_SPEC_LISTS = {
    ("containers",): "name",
    ("initContainers",): "name",
    ("ephemeralContainers",): "name",
    ("volumes",): "name",
    ("imagePullSecrets",): "name",
    ("hostAliases",): "ip",
    ("containers", "[]", "env"): "name",
    ("containers", "[]", "ports"): "containerPort",
    ("containers", "[]", "volumeMounts"): "mountPath",
    ("containers", "[]", "volumeDevices"): "devicePath",
    ("initContainers", "[]", "env"): "name",
    ("initContainers", "[]", "ports"): "containerPort",
    ("initContainers", "[]", "volumeMounts"): "mountPath",
    ("resourceClaims",): "name",
    ("schedulingGates",): "name",
    ("topologySpreadConstraints",): "topologyKey",
}
_META_LISTS = {("metadata", "ownerReferences"): "uid", ("metadata", "finalizers"): ""}  # "" = a set of primitives
_STATUS_LISTS = {("status", "conditions"): "type"}


def _prefixed(prefix: tuple[str, ...], table: dict[tuple[str, ...], str]) -> dict[tuple[str, ...], str]:
    return {prefix + path: key for path, key in table.items()}


MERGE_KEYS: dict[str, dict[tuple[str, ...], str]] = {
    "/pods": {
        **_META_LISTS,
        **_STATUS_LISTS,
        **_prefixed(("spec",), _POD_SPEC_LISTS),
    },
    "apps/deployments": {
        **_META_LISTS,
        **_STATUS_LISTS,
        **_prefixed(("spec", "template", "metadata"), {("ownerReferences",): "uid", ("finalizers",): ""}),
        **_prefixed(("spec", "template", "spec"), _POD_SPEC_LISTS),
    },
    "apps/replicasets": {
        **_META_LISTS,
        **_STATUS_LISTS,
        **_prefixed(("spec", "template", "spec"), _POD_SPEC_LISTS),
    },
    "/services": {**_META_LISTS, **_STATUS_LISTS, ("spec", "ports"): "port"},
    "policy/poddisruptionbudgets": {**_META_LISTS, **_STATUS_LISTS},
    "/namespaces": {**_META_LISTS, **_STATUS_LISTS},
    "/nodes": {**_META_LISTS, **_STATUS_LISTS, ("status", "addresses"): "type"},
}


def merge_keys(kind: Kind) -> dict[tuple[str, ...], str]:
    """The lists a strategic merge patch merges (by key; "" = a set of primitives); every other list is replaced whole."""
    return MERGE_KEYS.get(kind.key, _META_LISTS)
