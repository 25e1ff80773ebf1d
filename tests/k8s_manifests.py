"""What the Kubernetes manifest tests need without a cluster: render deploy/k8s as kustomize would,
expand a container's environment and arguments as the kubelet would, match label selectors as the
API server would, and JSON schemas for the two Prometheus Operator kinds.

The renderer implements only the kustomization fields deploy/k8s uses (resources, components,
namespace, images) and refuses any other, so a manifest that starts using another kustomize
feature fails the tests here instead of being rendered wrongly. It was checked against
``kubectl kustomize deploy/k8s`` (kustomize v5.5.0): the same objects, field for field.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S_DIR = ROOT / "deploy" / "k8s"
SECRET_EXAMPLE = K8S_DIR / "secret.example.yaml"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "cdas.json"
DOCKERFILE = ROOT / "services" / "coordinator" / "Dockerfile"

Resource = dict[str, Any]

KUSTOMIZATION_FIELDS = frozenset(
    {"apiVersion", "kind", "namespace", "resources", "components", "images"}
)
"""The kustomization fields the renderer implements; any other is refused."""

CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass"}
)
"""Kinds kustomize's namespace transformer leaves without a namespace (those that could appear)."""


def load_documents(path: Path) -> list[Resource]:
    """Every non-empty YAML document of ``path``."""
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def kustomization_file(directory: Path) -> Path:
    return directory / "kustomization.yaml"


def kustomization(directory: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(kustomization_file(directory).read_text("utf-8"))
    unknown = set(loaded) - KUSTOMIZATION_FIELDS
    if unknown:
        raise ValueError(
            f"{directory}: kustomization fields this renderer lacks: {sorted(unknown)}"
        )
    return loaded


def listed_files(directory: Path) -> list[Path]:
    """The manifest files a kustomization and its components list, following directories."""
    found: list[Path] = []
    config = kustomization(directory)
    for entry in [*config.get("resources", []), *config.get("components", [])]:
        target = (directory / entry).resolve()
        if target.is_dir():
            found += [kustomization_file(target), *listed_files(target)]
        else:
            found.append(target)
    return found


def _image_name(image: str) -> tuple[str, str]:
    """(name, tag or digest suffix including its separator) of an image reference."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _set_images(resource: Resource, images: list[dict[str, str]]) -> None:
    spec = resource.get("spec", {}).get("template", {}).get("spec", {})
    for container in [*spec.get("containers", []), *spec.get("initContainers", [])]:
        name, suffix = _image_name(container["image"])
        for rule in images:
            if rule["name"] == name:
                new_name = rule.get("newName", name)
                if "digest" in rule:
                    suffix = "@" + rule["digest"]
                elif "newTag" in rule:
                    suffix = ":" + str(rule["newTag"])
                container["image"] = new_name + suffix


def render(directory: Path = K8S_DIR) -> list[Resource]:
    """The objects ``kubectl kustomize directory`` prints, in listing order."""
    config = kustomization(directory)
    out: list[Resource] = []
    for entry in [*config.get("resources", []), *config.get("components", [])]:
        target = (directory / entry).resolve()
        if target.is_dir():
            out += render(target)
        else:
            out += load_documents(target)
    out = copy.deepcopy(out)
    for resource in out:
        if "namespace" in config and resource["kind"] not in CLUSTER_SCOPED:
            resource.setdefault("metadata", {})["namespace"] = config["namespace"]
        if "images" in config:
            _set_images(resource, config["images"])
    return out


def find(resources: list[Resource], kind: str, name: str | None = None) -> list[Resource]:
    return [
        r
        for r in resources
        if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)
    ]


def one(resources: list[Resource], kind: str, name: str | None = None) -> Resource:
    found = find(resources, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# ---------------------------------------------------------------------------- selectors
def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels, matchExpressions) or a Service's plain selector map
    matches ``labels``. An empty selector matches everything, as in Kubernetes."""
    if "matchLabels" in selector or "matchExpressions" in selector:
        match_labels = selector.get("matchLabels", {})
        expressions = selector.get("matchExpressions", [])
    else:
        match_labels, expressions = selector, []
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    for expr in expressions:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


# ---------------------------------------------------------------------------- the kubelet's view
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes's $(VAR) expansion (args, command, env values): a defined variable is replaced,
    an undefined reference is left as written, and $$ is a literal $."""

    def one_reference(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(one_reference, text)


def string_data(secret: Resource) -> dict[str, str]:
    """A Secret's values as strings (the example ships stringData)."""
    data: dict[str, str] = dict(secret.get("stringData", {}))
    if "data" in secret:
        raise ValueError("the example Secret should use stringData (readable placeholders)")
    return data


def container_env(
    container: Resource,
    configmaps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    """The environment the kubelet gives ``container``: envFrom first, then env in order, each
    env value expanded against what is defined before it. A missing ConfigMap, Secret or key
    that is not optional raises KeyError, as it keeps the kubelet from starting the container."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            values = configmaps[source["configMapRef"]["name"]]
        else:
            values = secrets[source["secretRef"]["name"]]
        env.update({prefix + key: value for key, value in values.items()})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = expand(var["value"], env)
            continue
        source = var["valueFrom"]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[var["name"]] = configmaps[ref["name"]][ref["key"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            raise ValueError(f"env {var['name']}: a source the tests do not model: {source}")
    return env


def mounted_files(
    pod_spec: Resource, container: Resource, secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """Path -> content of every file the container's Secret volumes put in it."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    files: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "secret" not in volume:
            continue
        values = secrets[volume["secret"]["secretName"]]
        items = volume["secret"].get("items") or [{"key": k, "path": k} for k in values]
        for item in items:
            files[f"{mount['mountPath'].rstrip('/')}/{item['path']}"] = values[item["key"]]
    return files


# ---------------------------------------------------------------------------- CRD schemas
_DURATION = (
    "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
"""Prometheus's duration, as the operator's CRDs spell the pattern."""

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

_METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}


def _object(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
    }


SERVICE_MONITOR_SCHEMA = _object(
    "ServiceMonitor",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["endpoints", "selector"],
        "properties": {
            "jobLabel": {"type": "string"},
            "targetLabels": {"type": "array", "items": {"type": "string"}},
            "podTargetLabels": {"type": "array", "items": {"type": "string"}},
            "namespaceSelector": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "any": {"type": "boolean"},
                    "matchNames": {"type": "array", "items": {"type": "string"}},
                },
            },
            "selector": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "matchLabels": _STRING_MAP,
                    "matchExpressions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["key", "operator"],
                            "properties": {
                                "key": {"type": "string"},
                                "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                                "values": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                },
            },
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"},
                        "targetPort": {"type": ["integer", "string"]},
                        "path": {"type": "string"},
                        "scheme": {"enum": ["http", "https"]},
                        "interval": {"type": "string", "pattern": _DURATION},
                        "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                        "honorLabels": {"type": "boolean"},
                    },
                },
            },
        },
    },
)
"""The ServiceMonitor fields deploy/k8s uses or may plausibly use, with additionalProperties false
at every level; from the prometheus-operator CRD (monitoring.coreos.com_servicemonitors.yaml,
operator 0.84): spec.selector and spec.endpoints required, scheme http|https, durations in
Prometheus's syntax, jobLabel a string."""

_RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["expr"],
    "properties": {
        "record": {"type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
        "alert": {"type": "string", "minLength": 1},
        "expr": {"type": ["string", "integer"]},
        "for": {"type": "string", "pattern": _DURATION},
        "keep_firing_for": {"type": "string", "pattern": _DURATION, "minLength": 1},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    # "Only one of record and alert must be set", and annotations only on alerts.
    "oneOf": [
        {
            "required": ["record"],
            "not": {
                "anyOf": [
                    {"required": ["alert"]},
                    {"required": ["annotations"]},
                    {"required": ["for"]},
                ]
            },
        },
        {"required": ["alert"], "not": {"required": ["record"]}},
    ],
}

PROMETHEUS_RULE_SCHEMA = _object(
    "PrometheusRule",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "groups": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "interval": {"type": "string", "pattern": _DURATION},
                        "limit": {"type": "integer"},
                        "labels": _STRING_MAP,
                        "rules": {"type": "array", "items": _RULE},
                    },
                },
            }
        },
    },
)
"""The PrometheusRule fields, from the prometheus-operator CRD (monitoring.coreos.com_
prometheusrules.yaml, operator 0.82): groups of {name, interval, limit, labels, rules}, a rule
with expr required and one of record or alert; the record/alert exclusivity and Prometheus's
metric-name syntax for `record`, which the CRD states in prose, are enforced here as well."""

CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR_SCHEMA,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE_SCHEMA,
}
