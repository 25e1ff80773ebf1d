"""deploy/k8s against Kubernetes's own schemas and against the real service, without a cluster.

A manifest that a cluster would reject, or one it would accept but that cannot work (a probe on
a route the app lacks, a Service that selects no pod, arguments ``cdas serve`` refuses, a store
URL without the password, a PodDisruptionBudget that blocks every drain), fails here:

- every object validates in strict mode (unknown fields rejected) against the OpenAPI-derived
  schemas kubernetes-validate ships, for the oldest Kubernetes the manifests claim (1.30) and the
  newest the package knows; the Prometheus Operator's kinds against schemas written from its CRDs
  (tests/k8s_manifests.py);
- the objects refer to one another correctly (selectors, port names, ConfigMap and Secret keys,
  the ServiceAccount), checked the way the API server and the kubelet resolve them;
- the container's arguments and environment, expanded as the kubelet expands them, parse with the
  real ``cdas serve`` parser and start a real ``cdas serve`` against a real, password-protected
  Redis and a real Redis Cluster, whose probes then answer on the routes the manifests name.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]  # no type information shipped
import pytest
import redis
import yaml
from fastapi.routing import APIRoute

import cdas
from cdas import cli
from cdas.service.rest.app import create_app
from tests.k8s_manifests import (
    CRD_SCHEMAS,
    DASHBOARD,
    DOCKERFILE,
    K8S_DIR,
    RULES,
    SECRET_EXAMPLE,
    Resource,
    container_env,
    expand,
    find,
    kustomization,
    listed_files,
    load_documents,
    mounted_files,
    one,
    render,
    selects,
    string_data,
)
from tests.redis_servers import RedisClusterNodes, RedisServer
from tests.services import serve_process

OLDEST = "1.30"
"""The oldest Kubernetes the manifests are written for (deploy/README.md): every field they use
is GA or on by default there (topologySpreadConstraints.matchLabelKeys, the PDB's
unhealthyPodEvictionPolicy)."""

NEWEST = ".".join(kubernetes_validate.latest_version().split(".")[:2])
"""The newest Kubernetes kubernetes-validate has schemas for: deprecations show up here first."""

VERSIONS = [OLDEST, NEWEST]

PARSE_URL: Callable[[str], dict[str, Any]] = redis.connection.parse_url
"""redis-py's URL parser, which RedisStore's clients use (``redis+cluster://`` read as
``redis://``); redis-py does not annotate it."""

UID = 10001
"""The fixed non-root user services/coordinator/Dockerfile creates."""


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def rendered() -> list[Resource]:
    return render()


@pytest.fixture(scope="module")
def example_secret() -> Resource:
    (secret,) = load_documents(SECRET_EXAMPLE)
    return secret


@pytest.fixture(scope="module")
def deployment(rendered: list[Resource]) -> Resource:
    return one(rendered, "Deployment", "cdas-coordinator")


def _pod(deployment: Resource) -> Resource:
    pod: Resource = deployment["spec"]["template"]
    return pod


def _container(deployment: Resource) -> Resource:
    containers: list[Resource] = _pod(deployment)["spec"]["containers"]
    (container,) = containers
    return container


def _configmaps(rendered: list[Resource]) -> dict[str, dict[str, str]]:
    return {c["metadata"]["name"]: dict(c.get("data", {})) for c in find(rendered, "ConfigMap")}


def _secrets(secret: Resource) -> dict[str, dict[str, str]]:
    return {secret["metadata"]["name"]: string_data(secret)}


def _env(rendered: list[Resource], secret: Resource) -> dict[str, str]:
    return container_env(
        _container(one(rendered, "Deployment")), _configmaps(rendered), _secrets(secret)
    )


def _args(rendered: list[Resource], env: dict[str, str]) -> list[str]:
    return [expand(arg, env) for arg in _container(one(rendered, "Deployment"))["args"]]


def _serve_args(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``argv`` parsed by the real ``cdas`` parser, in a process environment of ``env`` only (the
    parser reads defaults such as $CDAS_STORE from the environment when it is built)."""
    for name in list(os.environ):
        if name.startswith("CDAS_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cli.build_parser().parse_args(argv)


def _get_routes() -> set[str]:
    app = create_app(cdas.Coordinator(cdas.MemoryStore()))
    return {
        route.path
        for route in app.routes
        if isinstance(route, APIRoute) and "GET" in (route.methods or ())
    }


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON document (the dashboard's queries among them)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _port_number(container: Resource, port: int | str) -> int:
    """A probe's or Service's target port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


# ---------------------------------------------------------------------------- the file set
def test_every_manifest_is_listed_once_and_the_example_secret_never(
    rendered: list[Resource],
) -> None:
    """A manifest missing from the kustomization is never applied; the example Secret listed
    would apply placeholder credentials over the operator's real ones."""
    listed = listed_files(K8S_DIR)
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert all(path.is_file() for path in listed), [p for p in listed if not p.is_file()]
    on_disk = {p.resolve() for p in K8S_DIR.rglob("*.yaml")}
    root = (K8S_DIR / "kustomization.yaml").resolve()
    assert on_disk - set(listed) - {root} == {SECRET_EXAMPLE.resolve()}, (
        "every manifest but the example Secret must be listed in a kustomization"
    )
    # Nothing secret is applied from the repository: the operator creates the Secret.
    assert find(rendered, "Secret") == []


def test_rendered_objects(rendered: list[Resource]) -> None:
    """What `kubectl apply -k deploy/k8s` creates, all in one namespace (the Services, the
    ServiceMonitor and the PDB find their pods by label within it)."""
    names = sorted((r["kind"], r["metadata"]["name"]) for r in rendered)
    assert names == [
        ("ConfigMap", "cdas-coordinator"),
        ("Deployment", "cdas-coordinator"),
        ("HorizontalPodAutoscaler", "cdas-coordinator"),
        ("Namespace", "cdas"),
        ("PodDisruptionBudget", "cdas-coordinator"),
        ("PrometheusRule", "cdas-coordinator"),
        ("Service", "cdas-coordinator"),
        ("Service", "cdas-coordinator-grpc"),
        ("ServiceAccount", "cdas-coordinator"),
        ("ServiceMonitor", "cdas-coordinator"),
    ]
    namespace = kustomization(K8S_DIR)["namespace"]
    assert namespace == one(rendered, "Namespace")["metadata"]["name"]
    for r in rendered:
        if r["kind"] != "Namespace":
            assert r["metadata"]["namespace"] == namespace, r["kind"]


# ---------------------------------------------------------------------------- schemas
@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_strictly_against_kubernetes(
    version: str, rendered: list[Resource], example_secret: Resource
) -> None:
    """Strict, as kubectl applies by default (--validate=strict): other clients may have the
    API server drop an unknown field silently, so a misspelt field is a setting that never took
    effect."""
    checked = []
    for resource in [*rendered, example_secret]:
        if (resource["apiVersion"], resource["kind"]) in CRD_SCHEMAS:
            continue
        # Raises ValidationError on an unknown field, a wrong type or a missing required field.
        validated = kubernetes_validate.validate(resource, version, strict=True)
        assert validated == version
        checked.append(resource["kind"])
    assert len(checked) == len(rendered) + 1 - len(CRD_SCHEMAS)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["spec", "template", "spec", "containers", 0, "readinessProbe", "httpGet", "pathh"], "/"),
        (["spec", "template", "spec", "securityContext", "runAsUser"], "10001"),
        (["spec", "replicas"], "3"),
    ],
)
def test_the_strict_validation_catches_a_typo_and_a_wrong_type(
    deployment: Resource, path: list[str | int], value: str
) -> None:
    """The control for the test above: the validator does reject what a cluster would."""
    broken = copy.deepcopy(deployment)
    node: Any = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, OLDEST, strict=True)


def test_prometheus_operator_objects_validate_against_their_crd_schemas(
    rendered: list[Resource],
) -> None:
    """kubernetes-validate has no schema for custom resources; the operator's CRD would refuse
    these objects at apply time, or prune unknown fields, so they are checked here."""
    for (api_version, kind), schema in CRD_SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        resource = one(rendered, kind)
        assert resource["apiVersion"] == api_version
        jsonschema.Draft202012Validator(schema).validate(resource)
        broken = copy.deepcopy(resource)
        broken["spec"]["selectorr" if kind == "ServiceMonitor" else "group"] = {}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(schema).validate(broken)
    monitor = copy.deepcopy(one(rendered, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(
            CRD_SCHEMAS[(monitor["apiVersion"], "ServiceMonitor")]
        ).validate(monitor)


# ---------------------------------------------------------------------------- monitoring
def test_the_prometheus_rule_is_rules_yml(rendered: list[Resource]) -> None:
    """One set of rules and alerts on both paths (compose and Kubernetes)."""
    groups = yaml.safe_load(RULES.read_text("utf-8"))["groups"]
    assert one(rendered, "PrometheusRule")["spec"]["groups"] == groups


def test_the_service_monitor_scrapes_metrics_on_every_replica_once(
    rendered: list[Resource], deployment: Resource
) -> None:
    monitor = one(rendered, "ServiceMonitor")
    spec = monitor["spec"]
    services = [
        s
        for s in find(rendered, "Service")
        if s["metadata"]["namespace"] == monitor["metadata"]["namespace"]
        and selects(spec["selector"], s["metadata"]["labels"])
    ]
    # One Service: two would scrape every pod twice and double every counter's sum.
    assert [s["metadata"]["name"] for s in services] == ["cdas-coordinator"]
    (service,) = services
    assert selects(service["spec"]["selector"], _pod(deployment)["metadata"]["labels"])
    (endpoint,) = spec["endpoints"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    container = _container(deployment)
    assert _port_number(container, port["targetPort"]) == 8000
    assert endpoint["path"] in _get_routes()
    # Prometheus's scrape timeout may not exceed its interval (the operator refuses it).
    assert int(endpoint["scrapeTimeout"].rstrip("s")) <= int(endpoint["interval"].rstrip("s"))
    # The job label the rules and the dashboard query is the value of the Service's jobLabel.
    job = service["metadata"]["labels"][spec["jobLabel"]]
    queries = [RULES.read_text("utf-8"), *_strings(json.loads(DASHBOARD.read_text("utf-8")))]
    queried = {job for text in queries for job in re.findall(r'job="([^"]+)"', text)}
    assert queried == {job} == {"cdas"}


# ---------------------------------------------------------------------------- wiring
def test_services_select_the_pods_and_name_their_ports(
    rendered: list[Resource], deployment: Resource, example_secret: Resource
) -> None:
    """A Service whose selector or target port misses has no endpoints: every call refused."""
    labels = _pod(deployment)["metadata"]["labels"]
    container = _container(deployment)
    args = _args(rendered, _env(rendered, example_secret))
    rest_port = int(args[args.index("--port") + 1])
    grpc_port = int(args[args.index("--grpc-port") + 1])
    assert selects(deployment["spec"]["selector"], labels)
    wanted = {"http": rest_port, "grpc": grpc_port}
    for service in find(rendered, "Service"):
        assert selects(service["spec"]["selector"], labels), service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            assert _port_number(container, port["targetPort"]) == wanted[port["name"]]
    headless = one(rendered, "Service", "cdas-coordinator-grpc")
    assert headless["spec"]["clusterIP"] == "None"
    assert [p["name"] for p in headless["spec"]["ports"]] == ["grpc"]
    assert not headless["spec"]["publishNotReadyAddresses"]


def test_probes_ask_the_apps_own_health_routes(deployment: Resource) -> None:
    """A probe on a route the app lacks answers 404: the pod never becomes ready (readiness) or
    is restarted forever (liveness)."""
    routes = _get_routes()
    container = _container(deployment)
    probes = {
        kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness", "readiness")
    }
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startup": "/healthz",
        "liveness": "/healthz",
        "readiness": "/readyz",  # 503 while Redis is unreachable or the process drains
    }
    for probe in probes.values():
        assert probe["path"] in routes
        assert _port_number(container, probe["port"]) == 8000
    # The liveness probe must ride out a stalled Redis: REST store calls wait up to the store's
    # 60 s socket timeout on the same worker threads that answer /healthz.
    live = container["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 60


def test_the_container_arguments_parse_with_the_real_cli(
    rendered: list[Resource],
    deployment: Resource,
    example_secret: Resource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flag `cdas serve` refuses is a CrashLoopBackOff; a store URL that lost the password or
    an unset $CDAS_STORE (the parser would fall back to the embedded store: every replica its own
    state) is worse, since the pods would start and answer."""
    env = _env(rendered, example_secret)
    args = _args(rendered, env)
    for value in [*args, *env.values()]:
        assert "$(" not in value, f"a reference Kubernetes would leave unexpanded: {value}"
    parsed = _serve_args(args, env, monkeypatch)
    assert parsed.command == "serve"
    assert parsed.host == "0.0.0.0"  # every pod address, not only loopback
    config = _configmaps(rendered)["cdas-coordinator"]
    password = string_data(example_secret)["redis-password"]
    assert parsed.store == (
        f"{config['CDAS_REDIS_SCHEME']}://{config['CDAS_REDIS_USERNAME']}:{password}"
        f"@{config['CDAS_REDIS_ADDRESS']}"
    )
    assert parsed.store.startswith("redis+cluster://")
    # The password is not on the command line (ps, /proc/<pid>/cmdline): it comes by $CDAS_STORE.
    assert not any(password in arg for arg in args)
    assert "--store" not in args
    # What RedisStore hands redis-py: the Secret's password, the ConfigMap's address.
    options = PARSE_URL("redis://" + parsed.store.split("://", 1)[1])
    host, port = config["CDAS_REDIS_ADDRESS"].rsplit(":", 1)
    assert (options["host"], options["port"]) == (host, int(port))
    assert options.get("password") == urllib.parse.unquote(password)
    # The token file is the one the Secret volume mounts.
    files = mounted_files(
        _pod(deployment)["spec"], _container(deployment), _secrets(example_secret)
    )
    assert files == {parsed.token_file: string_data(example_secret)["api-token"]}
    assert parsed.log_level == "info"
    assert parsed.threads >= 1
    assert parsed.max_body_mb == 256


def test_secret_and_configmap_keys_exist(
    rendered: list[Resource], deployment: Resource, example_secret: Resource
) -> None:
    """The kubelet refuses to start a container whose Secret or ConfigMap key is missing; the
    example Secret holds exactly the keys the Deployment reads (so `kubectl create secret` as
    documented is complete), with placeholder values only."""
    pod = _pod(deployment)["spec"]
    container = _container(deployment)
    used: set[str] = set()
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == example_secret["metadata"]["name"]
            assert not ref.get("optional", False)
            used.add(ref["key"])
    for volume in pod["volumes"]:
        if "secret" in volume:
            assert volume["secret"]["secretName"] == example_secret["metadata"]["name"]
            used |= {item["key"] for item in volume["secret"]["items"]}
    values = string_data(example_secret)
    assert used == set(values) == {"api-token", "redis-password"}
    assert all("REPLACE" in value for value in values.values())
    assert example_secret["metadata"]["namespace"] == kustomization(K8S_DIR)["namespace"]
    configmaps = _configmaps(rendered)
    for source in container["envFrom"]:
        assert source["configMapRef"]["name"] in configmaps
    mounts = {m["name"] for m in container["volumeMounts"]}
    assert mounts == {v["name"] for v in pod["volumes"]}


def test_shutdown_fits_in_the_termination_grace_period(
    rendered: list[Resource],
    deployment: Resource,
    example_secret: Resource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kubelet sends SIGKILL when the grace period ends: calls still in flight then are cut
    (safe to retry, but slow), and a drain shorter than endpoint propagation sends trainers to a
    closed port."""
    env = _env(rendered, example_secret)
    parsed = _serve_args(_args(rendered, env), env, monkeypatch)
    period = _pod(deployment)["spec"]["terminationGracePeriodSeconds"]
    # SIGTERM: readiness 503 for --drain (endpoints leave every node meanwhile), then in-flight
    # calls get --grace, then the store is closed; SIGKILL only after all of it.
    assert parsed.drain >= 5, "too short for endpoint removal to reach every node"
    assert period >= parsed.drain + parsed.grace + 5
    readiness = _container(deployment)["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] <= parsed.drain


def test_pods_run_unprivileged_as_the_images_user(
    rendered: list[Resource], deployment: Resource
) -> None:
    """The namespace enforces the restricted Pod Security Standard: a pod that asks for less
    (root, privilege escalation, capabilities, no seccomp) is refused at admission."""
    pod = _pod(deployment)["spec"]
    container = _container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == container["securityContext"]["runAsUser"] == UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    account = one(rendered, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False
    labels = one(rendered, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_the_image_is_the_packages(deployment: Resource) -> None:
    """The kustomization's image rule must name the Deployment's image, or kustomize leaves the
    placeholder in place; the tag follows the package version."""
    (rule,) = kustomization(K8S_DIR)["images"]
    image = _container(deployment)["image"]
    assert image == f"{rule['newName']}:{rule['newTag']}"
    assert rule["newTag"] == cdas.__version__
    assert image.split("/")[-1].split(":")[0] == "cdas-coordinator"


def test_the_image_runs_the_way_the_pod_expects(deployment: Resource) -> None:
    """services/coordinator/Dockerfile's final stage: its user is the pod's runAsUser (a
    mismatch leaves files unreadable or, for a name instead of a number, fails runAsNonRoot), its
    entrypoint is `cdas` (the container's args start with `serve`), and it exposes both ports."""
    text = DOCKERFILE.read_text("utf-8").replace("\\\n", " ")
    final = text[text.rindex("\nFROM ") :]
    users = re.findall(r"^USER\s+(\S+)", final, re.MULTILINE)
    assert users[-1] in {str(UID), f"{UID}:{UID}"}
    (entrypoint,) = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", final, re.MULTILINE)
    assert json.loads(entrypoint) == ["cdas"]
    assert _container(deployment)["args"][0] == "serve"
    assert "command" not in _container(deployment)
    exposed = {
        int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", final, re.MULTILINE) for p in line.split()
    }
    assert exposed == {p["containerPort"] for p in _container(deployment)["ports"]}


def test_disruptions_and_scaling_keep_two_replicas_serving(
    rendered: list[Resource], deployment: Resource
) -> None:
    """A PDB that allows no eviction blocks every node drain; one that allows too many lets an
    upgrade take the service down."""
    labels = _pod(deployment)["metadata"]["labels"]
    replicas = deployment["spec"]["replicas"]
    assert replicas == 3
    budget = one(rendered, "PodDisruptionBudget")["spec"]
    assert selects(budget["selector"], labels)
    if "maxUnavailable" in budget:
        allowed = int(budget["maxUnavailable"])
    else:
        allowed = replicas - int(budget["minAvailable"])
    # At least one eviction at a time (or node drains block forever), and two keep serving.
    assert 1 <= allowed <= replicas - 2
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    rollout = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rollout["maxUnavailable"] == 0
    scaler = one(rendered, "HorizontalPodAutoscaler")["spec"]
    target = scaler["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert scaler["minReplicas"] == replicas < scaler["maxReplicas"]
    for constraint in _pod(deployment)["spec"]["topologySpreadConstraints"]:
        assert selects(constraint["labelSelector"], labels)


# ---------------------------------------------------------------------------- the real process
@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("k8s-cluster")).start()
    try:
        yield nodes
    finally:
        nodes.stop()


PASSWORD = "p@ss:w/rd%"
"""A password with every character a URL gives a meaning to: the Secret holds it URL-encoded."""


def _started_as_the_kubelet_would(
    rendered: list[Resource],
    example_secret: Resource,
    tmp_path: Path,
    redis_config: dict[str, str],
    password: str,
) -> tuple[list[str], dict[str, str], str]:
    """The container's arguments and environment with the operator's values: ``redis_config``
    in the ConfigMap, ``password`` (URL-encoded) and a token in the Secret. The Secret volume is
    written under ``tmp_path`` and the arguments pointed there; the ports become 0 (any free
    one) and the drain short, so the test neither collides with a running service nor waits."""
    configmaps = _configmaps(rendered)
    configmaps["cdas-coordinator"].update(redis_config)
    token = "k8s-test-token"
    secrets = {
        example_secret["metadata"]["name"]: {
            "api-token": token,
            "redis-password": urllib.parse.quote(password, safe=""),
        }
    }
    deployment = one(rendered, "Deployment")
    container = _container(deployment)
    env = container_env(container, configmaps, secrets)
    args = [expand(arg, env) for arg in container["args"]]
    for path, content in mounted_files(_pod(deployment)["spec"], container, secrets).items():
        local = tmp_path / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(content, encoding="utf-8")
        args = [str(local) if arg == path else arg for arg in args]
    overrides = {"--port": "0", "--grpc-port": "0", "--drain": "0.2", "--grace": "2"}
    args = [overrides.get(args[i - 1], arg) if i else arg for i, arg in enumerate(args)]
    assert args[0] == "serve"
    return args[1:], env, token


def _check_serving(url: str, token: str, deployment: Resource) -> None:
    container = _container(deployment)
    with httpx.Client(base_url=url, timeout=10) as http:
        for kind in ("startup", "liveness", "readiness"):
            answer = http.get(container[f"{kind}Probe"]["httpGet"]["path"])
            assert answer.status_code == 200, (kind, answer.text)
        assert http.get("/readyz").json()["store"] == "ok"
        assert http.get("/v1/runs").status_code == 401  # the token file was read
        headers = {"Authorization": f"Bearer {token}"}
        created = http.put("/v1/runs/k8s", json={"prompts": {"count": 100}}, headers=headers)
        assert created.status_code == 201, created.text
        batch = http.post("/v1/runs/k8s/batches", json={"step": 1, "size": 8}, headers=headers)
        assert len(batch.json()["prompt_ids"]) == 8
        metrics = http.get("/metrics").text
        assert "cdas_store_up 1.0" in metrics


def test_a_real_cdas_serve_starts_from_the_manifests_on_a_password_protected_redis(
    rendered: list[Resource], example_secret: Resource, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        redis.Redis(port=server.port).config_set("requirepass", PASSWORD)
        config = {"CDAS_REDIS_SCHEME": "redis", "CDAS_REDIS_ADDRESS": f"127.0.0.1:{server.port}/0"}
        args, env, token = _started_as_the_kubelet_would(
            rendered, example_secret, tmp_path, config, PASSWORD
        )
        with serve_process(*args, env=env) as served:
            _check_serving(served.url, token, one(rendered, "Deployment"))
            assert served.terminate(signal.SIGTERM, timeout=30) == 0
        assert redis.Redis(port=server.port, password=PASSWORD).exists("cdas:{k8s}:meta")
    finally:
        server.stop()


def test_a_real_cdas_serve_starts_from_the_manifests_on_a_redis_cluster(
    rendered: list[Resource], example_secret: Resource, tmp_path: Path, cluster: RedisClusterNodes
) -> None:
    """The ConfigMap's own scheme (redis+cluster), with no password (an empty Secret value)."""
    config = {"CDAS_REDIS_ADDRESS": f"127.0.0.1:{cluster.servers[1].port}"}
    args, env, token = _started_as_the_kubelet_would(rendered, example_secret, tmp_path, config, "")
    assert env["CDAS_STORE"].startswith("redis+cluster://:@127.0.0.1:")
    with serve_process(*args, env=env) as served:
        _check_serving(served.url, token, one(rendered, "Deployment"))
        assert served.terminate(signal.SIGTERM, timeout=30) == 0
