"""One protocol of the library's operations (``cdas.core.api``): the Coordinator and the two
synchronous clients implement every part of it, with the same signatures, so a caller typed
against a part takes any of them. mypy holds the assignments below; the tests hold the
signatures at run time (a default or a parameter name that drifts in one door fails here)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import cdas
from cdas.client import GrpcClient, RestClient
from cdas.core import api

IMPLEMENTATIONS = (cdas.Coordinator, RestClient, GrpcClient)


def _typed(c: cdas.Coordinator, r: RestClient, g: GrpcClient) -> list[api.CoordinatorApi]:
    """Never called: mypy checks that each of the three is a ``CoordinatorApi``."""
    return [c, r, g]


def _methods(protocol: type[Any]) -> dict[str, inspect.Signature]:
    names = [
        name
        for name, value in vars(protocol).items()
        if callable(value) and not name.startswith("_")
    ]
    return {name: inspect.signature(getattr(protocol, name)) for name in names}


PARTS = (api.Batches, api.RunSetup, api.Lookups, api.Runs, api.Reads, api.Snapshots)


def test_each_operation_is_declared_once() -> None:
    seen: dict[str, str] = {}
    for part in PARTS:
        for name in _methods(part):
            assert name not in seen, f"{name} in {part.__name__} and {seen[name]}"
            seen[name] = part.__name__
    assert set(seen) == {
        "next_batch", "report_results", "advance", "put_run", "get_run", "list_runs", "delete_run",
        "add_prompts", "get_prompt", "get_state", "prompt_page", "export_prompts", "snapshot",
        "restore",
    }  # fmt: skip
    assert all(part in api.CoordinatorApi.__mro__ for part in PARTS)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_every_door_has_every_operation_with_the_protocols_signature(
    implementation: type[Any],
) -> None:
    for part in PARTS:
        for name, declared in _methods(part).items():
            method = getattr(implementation, name, None)
            assert method is not None, f"{implementation.__name__} has no {name}"
            actual = inspect.signature(method)
            assert list(actual.parameters) == list(declared.parameters), (implementation, name)
            defaults = [p.default for p in actual.parameters.values()]
            assert defaults == [p.default for p in declared.parameters.values()], (
                implementation,
                name,
            )
