"""docker-compose.yml: valid Compose, holding what the stack needs, and its CPU profile running.

There is no Docker engine here. The file is validated against the Compose Specification twice:
the specification's JSON schema (as shipped in docker-compose 1.29.2, the last Python release) and
the ``compose_spec`` parser (Rust, strict, current specification), after Compose's own
interpolation from ``.env``. Then the CPU profile's containers (Redis, the coordinator, the
simulated trainer) and Prometheus run together as plain processes with their compose commands and
environment (``tests.compose_stack``), each health check is run against them, and the GPU
profile's rollout worker runs its command up to the GPU.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cdas.client import RestClient, RetryPolicy
from cdas.core.errors import UnauthenticatedError
from tests import compose_stack as stack
from tests.redis_servers import free_port

PATIENT = RetryPolicy(for_seconds=30, max_delay=0.5)


def compose_schema() -> dict[str, Any]:
    spec = importlib.util.find_spec("compose")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    path = Path(next(iter(spec.submodule_search_locations))) / "config" / "compose_spec.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


@pytest.mark.parametrize("profile", ["gpu", "cpu", "verl"])
def test_the_compose_file_is_valid_compose(profile: str) -> None:
    env = {**stack.read_env_file(), "COMPOSE_PROFILES": profile}
    compose = stack.load_compose(env)
    jsonschema.Draft201909Validator(compose_schema()).validate(compose)
    # numbers Compose would coerce from interpolated strings are kept as given; the Rust parser
    # reads the interpolated YAML as Compose does
    from compose_spec import PyCompose

    parsed = PyCompose.from_yaml(yaml.safe_dump(compose))
    parsed.validate()
    assert sorted(parsed.service_names()) == sorted(compose["services"])


def test_a_broken_file_is_refused_by_both_validators() -> None:
    """The validators are not vacuous: an unknown key and a bad condition are refused."""
    from compose_spec import PyCompose

    compose = stack.load_compose()
    compose["services"]["coordinator"]["healthchek"] = {"test": ["CMD", "true"]}
    with pytest.raises(jsonschema.ValidationError, match="healthchek"):
        jsonschema.Draft201909Validator(compose_schema()).validate(compose)
    with pytest.raises(ValueError, match="healthchek"):
        PyCompose.from_yaml(yaml.safe_dump(compose)).validate()
    compose = stack.load_compose()
    compose["services"]["coordinator"]["depends_on"]["redis"]["condition"] = "healthy"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft201909Validator(compose_schema()).validate(compose)


def test_the_stack_holds_what_it_must() -> None:
    compose = stack.load_compose()
    services = compose["services"]
    assert set(services) == {
        "redis", "coordinator", "trainer", "rollout", "verl-trainer", "sim-trainer", "prometheus",
        "grafana",
    }  # fmt: skip
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        for dependency, how in (service.get("depends_on") or {}).items():
            assert how == {"condition": "service_healthy"}, (name, dependency)
            assert "healthcheck" in services[dependency], dependency
        image = service["image"]
        assert ":" in image, image
        assert not image.endswith(":latest"), image
    waits = {n: set(s.get("depends_on") or ()) for n, s in services.items()}
    assert waits["coordinator"] == {"redis"}
    assert waits["trainer"] == waits["rollout"] == waits["sim-trainer"] == {"coordinator"}
    assert waits["verl-trainer"] == {"coordinator"}
    # GPUs: reserved for the trainers and the rollout worker only
    for name, service in services.items():
        devices = service.get("deploy", {}).get("resources", {}).get("reservations", {})
        devices = devices.get("devices", [])
        if name in ("trainer", "rollout", "verl-trainer"):
            assert devices, name
            assert all(d["driver"] == "nvidia" for d in devices), devices
            assert all("gpu" in d["capabilities"] for d in devices), devices
        else:
            assert not devices, name
    # profiles: `up` on a GPU host (COMPOSE_PROFILES=gpu in .env), `--profile cpu up` and
    # `--profile verl up` (verl's trainer in place of OpenRLHF's and the rollout worker)
    assert stack.read_env_file()["COMPOSE_PROFILES"] == "gpu"
    gpu = stack.active_services(compose, {"gpu"})
    cpu = stack.active_services(compose, {"cpu"})
    verl = stack.active_services(compose, {"verl"})
    assert set(gpu) == set(services) - {"sim-trainer", "verl-trainer"}
    assert set(cpu) == set(services) - {"trainer", "rollout", "verl-trainer"}
    assert set(verl) == {"redis", "coordinator", "verl-trainer", "prometheus", "grafana"}
    # Redis persists: append-only, on a named volume
    assert "--appendonly yes" in services["redis"]["command"][-1]
    assert "redis-data:/data" in services["redis"]["volumes"]
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert {n for n in named if not n.startswith((".", "/", "$"))} <= set(compose["volumes"])
    for name in ("coordinator", "trainer", "rollout", "verl-trainer", "sim-trainer"):
        assert (stack.ROOT / services[name]["build"]["dockerfile"]).exists()


def test_the_verl_trainer_runs_as_the_openrlhf_trainer_does() -> None:
    """``--profile verl`` swaps the trainer, nothing else: the verl service has the OpenRLHF
    trainer's environment (the token), volumes, shared memory, health check, dependency and GPU
    reservation, its own image (services/verl/Dockerfile, entrypoint ``cdas-verl``), and the same
    model, strategy, B, G and GPUs from .env on a run of its own."""
    compose = stack.load_compose()
    services = compose["services"]
    trainer, verl = services["trainer"], services["verl-trainer"]
    for key in ("environment", "volumes", "shm_size", "healthcheck", "depends_on", "deploy"):
        assert verl[key] == trainer[key], key
    assert verl["build"] == {"context": ".", "dockerfile": "services/verl/Dockerfile"}
    assert verl["image"].startswith("cdas-verl:")
    dockerfile = stack.ROOT / verl["build"]["dockerfile"]
    assert stack.dockerfile_entrypoint(dockerfile) == ["cdas-verl"]
    env = stack.read_env_file()
    overrides = dict(a.split("=", 1) for a in verl["command"])
    assert len(overrides) == len(verl["command"]), "each Hydra key once"
    assert all("#" not in a and " " not in a for a in verl["command"]), verl["command"]
    assert overrides["data.sampler.class_path"] == "pkg://cdas_verl.sampler"
    assert overrides["data.sampler.class_name"] == "CoordinatorSampler"
    assert overrides["data.dataloader_num_workers"] == "0"  # the sampler refuses prefetching
    assert overrides["+data.sampler.cdas.url"] == "http://coordinator:8000"
    assert overrides["+data.sampler.cdas.run"] == env["VERL_RUN"] != env["TRAINER_RUN"]
    assert overrides["+data.sampler.cdas.strategy"] == env["TRAINER_STRATEGY"]
    assert overrides["actor_rollout_ref.model.path"] == env["TRAINER_MODEL"]
    assert overrides["data.train_batch_size"] == env["TRAINER_BATCH"]
    assert overrides["actor_rollout_ref.rollout.n"] == env["TRAINER_GROUP"]
    assert overrides["trainer.n_gpus_per_node"] == env["TRAINER_GPUS"]
    assert overrides["reward.custom_reward_function.path"] == "pkg://cdas_verl.reward"
    assert overrides["trainer.default_local_dir"].startswith("/checkpoints/")
    # the data is what the image's prepare step writes (ids at extra_info.index)
    assert overrides["data.train_files"] == "/opt/cdas/data/math12k.verl.parquet"
    assert overrides["data.train_files"] in dockerfile.read_text()
    # the token is never a Hydra key (verl logs its config)
    assert not any("token" in key for key in overrides), overrides


def test_settings_come_from_the_documented_env_file_and_no_secret_is_written_down() -> None:
    raw = stack.COMPOSE_FILE.read_text()
    env = stack.read_env_file()
    used = stack.variables(raw)
    assert used - set(env) == set(), "every variable the compose file uses is set in .env"
    assert {k for k in env if not k.startswith("COMPOSE_")} - used == set(), "no stray settings"
    lines = stack.ENV_FILE.read_text().splitlines()
    for key in env:  # each setting has a comment in its block
        at = next(k for k, line in enumerate(lines) if line.startswith(f"{key}="))
        assert any(line.startswith("#") for line in lines[max(0, at - 12) : at]), key
    for secret in ("CDAS_API_TOKEN", "REDIS_PASSWORD"):
        assert env[secret] == "", f"{secret} ships empty in .env"
    document = yaml.safe_load(raw)
    for name, service in document["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("TOKEN", "PASSWORD", "SECRET")):
                assert str(value).startswith("${"), (name, key)


@pytest.fixture
def network(tmp_path: Path) -> stack.Network:
    return stack.Network(
        hosts={
            "redis:6379": f"127.0.0.1:{free_port()}",
            "coordinator:8000": f"127.0.0.1:{free_port()}",
        },
        paths={
            "/data": str(tmp_path / "redis-data"),
            "/tmp/demo-out": str(tmp_path / "demo-out"),
            "/etc/prometheus": str(stack.ROOT / "deploy" / "prometheus"),
            "/prometheus": str(tmp_path / "prometheus-data"),
            "/opt/cdas/data": str(stack.ROOT / "data"),
        },
    )


def _port(network: stack.Network, host: str) -> str:
    return network.hosts[host].rsplit(":", 1)[1]


class Processes:
    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        process = subprocess.Popen(
            argv, env=stack.plain_env(env), stdout=handle, stderr=subprocess.STDOUT
        )
        self.running.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.running):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


@pytest.fixture
def processes() -> Iterator[Processes]:
    running = Processes()
    yield running
    running.stop()


def wait_healthy(argv: list[str], env: dict[str, str], what: str, timeout: float = 40) -> None:
    """Run a health check until it passes, as Docker does (interval shortened)."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(argv, env=stack.plain_env(env), capture_output=True, timeout=10)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never became healthy: {done.stdout!r} {done.stderr!r}")
        time.sleep(0.3)


def test_the_cpu_profile_runs_end_to_end_as_plain_processes(
    tmp_path: Path, network: stack.Network, processes: Processes
) -> None:
    env = {
        **stack.read_env_file(),
        "COMPOSE_PROFILES": "cpu",
        "CDAS_API_TOKEN": "compose-test-token",
        "REDIS_PASSWORD": "compose-test-password",
        "SIM_STEPS": "3",
        "SIM_STRATEGIES": "cdas,dynamic",
    }
    compose = stack.load_compose(env)
    (tmp_path / "redis-data").mkdir()
    # Redis: its command, told its port the way redis-server takes it
    argv, redis_env = stack.command(compose, "redis", network)
    argv[-1] += f" --port {_port(network, 'redis:6379')} --bind 127.0.0.1"
    processes.start(argv, redis_env, tmp_path / "redis.log")
    check = stack.healthcheck(compose, "redis", network)
    check[-1] = check[-1].replace("redis-cli", f"redis-cli -p {_port(network, 'redis:6379')}")
    wait_healthy(check, redis_env, "redis")
    # the coordinator: the image's entrypoint and the compose command, on free ports
    argv, coordinator_env = stack.command(compose, "coordinator", network)
    rest_port = _port(network, "coordinator:8000")
    assert argv[:2] == ["cdas", "serve"]
    argv += ["--port", rest_port, "--grpc-port", str(free_port())]
    coordinator = processes.start(argv, coordinator_env, tmp_path / "coordinator.log")
    check = [
        a.replace("127.0.0.1:8000", f"127.0.0.1:{rest_port}")
        for a in stack.healthcheck(compose, "coordinator", network)
    ]
    wait_healthy(check, coordinator_env, "coordinator")
    # the simulated trainer: runs to the end, authenticated, against the coordinator
    argv, trainer_env = stack.command(compose, "sim-trainer", network)
    wait_healthy(stack.healthcheck(compose, "sim-trainer", network), trainer_env, "sim-trainer")
    done = subprocess.run(argv, env=stack.plain_env(trainer_env), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout.decode()[-2000:] + done.stderr.decode()[-2000:]
    url = f"http://{network.hosts['coordinator:8000']}"
    with RestClient(url, "compose-test-token", retry=PATIENT) as client:
        runs = {run.run_id: run for run in client.list_runs()}
        assert {r.strategy for r in runs.values()} == {"cdas", "dynamic"}
        assert all(run.step == 3 and run.size == 12000 for run in runs.values())
        before = {r: client.get_state(r).to_dict() for r in runs}
    with (
        RestClient(url, retry=RetryPolicy(attempts=1)) as anonymous,
        pytest.raises(UnauthenticatedError),
    ):
        anonymous.list_runs()
    # the state lives in Redis (append-only file on the volume): a restarted coordinator has it
    coordinator.terminate()
    assert coordinator.wait(timeout=30) == 0
    assert list((tmp_path / "redis-data").rglob("*.aof")), "append-only files on the volume"
    restarted, _ = stack.command(compose, "coordinator", network)
    restarted += ["--port", rest_port, "--grpc-port", str(free_port())]
    processes.start(restarted, coordinator_env, tmp_path / "coordinator2.log")
    wait_healthy(check, coordinator_env, "coordinator (restarted)")
    with RestClient(url, "compose-test-token", retry=PATIENT) as client:
        assert {r: client.get_state(r).to_dict() for r in runs} == before
    # Prometheus with the compose command and the project's config: up, and its health check passes
    argv, prometheus_env = stack.command(compose, "prometheus", network)
    prometheus_port = free_port()
    processes.start(
        ["prometheus", *argv, f"--web.listen-address=127.0.0.1:{prometheus_port}"],
        prometheus_env,
        tmp_path / "prometheus.log",
    )
    check = [
        a.replace("127.0.0.1:9090", f"127.0.0.1:{prometheus_port}")
        for a in stack.healthcheck(compose, "prometheus", network)
    ]
    wait_healthy(check, prometheus_env, "prometheus")


def test_the_gpu_rollout_command_runs_up_to_the_gpu(
    tmp_path: Path, network: stack.Network, processes: Processes
) -> None:
    """No GPU here: the rollout worker's compose command parses, loads math12k, creates its run on
    the coordinator, and stops only where vLLM is needed, with that said."""
    compose = stack.load_compose()
    argv, coordinator_env = stack.command(compose, "coordinator", network)
    rest_port = _port(network, "coordinator:8000")
    argv += ["--port", rest_port, "--grpc-port", str(free_port())]
    processes.start(argv, {**coordinator_env, "CDAS_STORE": "memory"}, tmp_path / "coordinator.log")
    network.paths["/state"] = str(tmp_path / "state")
    argv, rollout_env = stack.command(compose, "rollout", network)
    assert argv[0] == "cdas-rollout"
    done = subprocess.run(argv, env=stack.plain_env(rollout_env), capture_output=True, timeout=120)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 1, output
    assert "vllm" in output.lower(), output
    with RestClient(f"http://127.0.0.1:{rest_port}", retry=PATIENT) as client:
        run = client.get_run(stack.read_env_file()["ROLLOUT_RUN"])
        assert (run.strategy, run.size, run.step) == ("cdas", 12000, None)


def test_the_gpu_trainer_command_runs_up_to_ray(tmp_path: Path, network: stack.Network) -> None:
    """No GPU (and so no Ray) here: the trainer's compose command passes cdas-openrlhf's checks
    (its flags, the pinned OpenRLHF, the token) and stops where Ray is imported, with that said."""
    compose = stack.load_compose()
    network.paths["/checkpoints"] = str(tmp_path / "checkpoints")
    argv, trainer_env = stack.command(compose, "trainer", network)
    assert argv[0] == "cdas-openrlhf"
    done = subprocess.run(argv, env=stack.plain_env(trainer_env), capture_output=True, timeout=120)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode != 0, output
    assert "No module named 'ray'" in output, output[-3000:]
    assert "usage:" not in output, "the launcher accepted every flag"
