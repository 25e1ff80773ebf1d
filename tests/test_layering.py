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
