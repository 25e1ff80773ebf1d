"""The core stays pure: no web, gRPC, Redis or metrics code is imported under ``cdas.core``."""

from __future__ import annotations

import ast
from pathlib import Path

import cdas

CORE = Path(cdas.__file__).parent / "core"
ALLOWED_THIRD_PARTY = {"numpy"}
FORBIDDEN = {
    "fastapi",
    "uvicorn",
    "pydantic",
    "redis",
    "grpc",
    "prometheus_client",
    "httpx",
    "starlette",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_only_the_standard_library_and_numpy() -> None:
    import sys

    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        for name in _imports(path):
            assert name not in FORBIDDEN, f"{path.name} imports {name}"
            assert (
                name in sys.stdlib_module_names or name in ALLOWED_THIRD_PARTY or name == "cdas"
            ), f"{path.name} imports {name}"
        text = path.read_text()
        for layer in ("cdas.store", "cdas.coordinator", "cdas.cli", "cdas.bench", "cdas.sim"):
            assert f"from {layer}" not in text, (path.name, layer)
            assert f"import {layer}" not in text, (path.name, layer)


TRAINER_SIDE = {"torch", "transformers", "vllm", "openrlhf", "ray", "deepspeed", "flash_attn",
                "math_verify", "cdas_openrlhf", "cdas_rollout", "trl", "cdas_trl",
                "cdas_grpo", "verl", "cdas_verl", "tensordict", "hydra"}  # fmt: skip


def test_the_coordinator_package_never_imports_the_trainer_side() -> None:
    """The coordinator image holds no torch: nothing under ``cdas`` imports the trainer's stack
    (imports inside functions included), and its distribution does not depend on it."""
    import tomllib

    package = Path(cdas.__file__).parent
    files = sorted(package.rglob("*.py"))
    assert len(files) > 50
    for path in files:
        assert not (_imports(path) & TRAINER_SIDE), path
    project = tomllib.loads((package.parents[2] / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += extra
    named = {
        r.split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip() for r in requirements
    }
    distributions = {
        "torch",
        "vllm",
        "openrlhf",
        "cdas-trl",
        "cdas-grpo",
        "cdas-verl",
        "hydra-core",
    }
    assert not (named & (TRAINER_SIDE | distributions)), named


def test_serving_the_coordinator_loads_no_trainer_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys, cdas, cdas.client, cdas.service.server, cdas.sim.demo, cdas.bench.service\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(TRAINER_SIDE)!r})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _recipe(target: str) -> str:
    """What ``make <target>`` would run on a fresh machine (dry run, nothing installed)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        ["make", "-n", "-B", target, "VENV=/nonexistent/venv"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_main_job_installs_only_what_it_runs() -> None:
    """``make demo`` and ``make serve`` install neither the test extras nor the trainer side;
    ``make test`` does (issue 19: the main job's install holds only what it runs)."""
    for target in ("demo", "serve", "simulate", "bench"):
        recipe = _recipe(target)
        assert "pip install" in recipe, target
        for extra in ("[test", "torch", "trl"):
            assert extra not in recipe, (target, extra)
    assert "[sim]" not in _recipe("serve")
    tests = _recipe("install")
    assert "'.[test,sim]'" in tests
    assert "trl==" in tests
    assert "verl==" in tests


LAYERS = {
    "client": ("cdas.coordinator", "cdas.service", "cdas.store", "cdas.observe", "cdas.sim"),
    "observe": ("cdas.service", "cdas.client", "cdas.sim", "cdas.cli"),
    "rpc": ("cdas.service", "cdas.client", "cdas.sim", "cdas.cli"),
}
"""No import runs up the layers: what each package below the doors never imports. The clients
take the request checks and export paging from ``cdas.core.requests``, as the coordinator does."""


def test_no_import_runs_up_the_layers() -> None:
    root = CORE.parent
    for package, above in LAYERS.items():
        files = sorted((root / package).rglob("*.py"))
        assert files, package
        for path in files:
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules = [node.module]
                elif isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                else:
                    continue
                for module in modules:
                    assert not module.startswith(above), f"{package}/{path.name} imports {module}"
