"""Stand-ins for the modules that cannot load without a GPU: ``ray``, ``vllm``, ``flash_attn``.

OpenRLHF imports them at module level; its own CPU tests stand in for them the same way. Everything
else OpenRLHF imports (torch, transformers, deepspeed, datasets, torchdata) is the real package.

- ``ray`` runs actors in this process: ``ray.remote(cls)`` gives an actor class whose ``.remote``
  builds the object and whose handles' methods have ``.remote`` calling it at once; object refs are
  the values themselves (``ray.get``/``ray.put`` are identities, ``ray.wait`` hands back the first
  ``num_returns``). ``ray.util.*`` (placement groups, queues) are ``MagicMock`` modules.
- ``vllm.SamplingParams`` keeps its keyword arguments; the rest of ``vllm`` and all of
  ``flash_attn`` are ``MagicMock`` modules, never called on the paths the tests run (the tests
  hand OpenRLHF their own engines).

Each module gets a real ``__spec__``: transformers and peft probe optional packages with
``importlib.util.find_spec``, which raises on a module whose ``__spec__`` is missing.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from unittest.mock import MagicMock


class _Method:
    def __init__(self, bound: Callable[..., Any]) -> None:
        self._bound = bound

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._bound(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._bound(*args, **kwargs)


class LocalActor:
    """A handle to an actor living in this process."""

    def __init__(self, instance: Any) -> None:
        self._instance = instance

    def __getattr__(self, name: str) -> _Method:
        return _Method(getattr(self._instance, name))


class LocalActorClass:
    """What ``ray.remote(cls)`` returns: ``.remote(...)`` builds the actor."""

    def __init__(self, cls: type, options: dict[str, Any] | None = None) -> None:
        self.__ray_actor_class__ = cls
        self.options_given = options or {}

    def remote(self, *args: Any, **kwargs: Any) -> LocalActor:
        return LocalActor(self.__ray_actor_class__(*args, **kwargs))

    def options(self, **options: Any) -> LocalActorClass:
        return LocalActorClass(self.__ray_actor_class__, {**self.options_given, **options})


def _remote(*args: Any, **options: Any) -> Any:
    if args and not options and callable(args[0]):
        target = args[0]
        return LocalActorClass(target) if isinstance(target, type) else _Method(target)
    return lambda target: _remote(target)


def _wait(refs: Sequence[Any], num_returns: int = 1, timeout: float | None = None) -> Any:
    refs = list(refs)
    return refs[:num_returns], refs[num_returns:]


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attrs)
    return module


def _mock_module(name: str) -> MagicMock:
    module = MagicMock(name=name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__name__ = name
    module.__path__ = []
    return module


class SamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)


@contextmanager
def hidden() -> Iterator[None]:
    """The stand-ins out of ``sys.modules`` for a while, as on a machine without a GPU stack: a
    library that probes for vLLM with importlib (TRL does, on import and at run time) must find
    none, not a stand-in without a version."""
    if not getattr(sys.modules.get("ray"), "CDAS_TEST_STUB", False):
        yield
        return
    names = [n for n in sys.modules if n.split(".")[0] in ("ray", "vllm", "flash_attn")]
    saved = {n: sys.modules.pop(n) for n in names}
    try:
        yield
    finally:
        sys.modules.update(saved)


def install() -> None:
    """Put the stand-ins into ``sys.modules`` (once; a real ray/vllm is never replaced)."""
    if getattr(sys.modules.get("ray"), "CDAS_TEST_STUB", False):
        return
    for real in ("ray", "vllm", "flash_attn"):
        if real in sys.modules:
            raise RuntimeError(f"{real} is already imported; the stand-ins must come first")
    ray = _module(
        "ray",
        CDAS_TEST_STUB=True,
        remote=_remote,
        get=lambda refs, timeout=None: refs,
        put=lambda value: value,
        wait=_wait,
        init=lambda *a, **k: None,
        is_initialized=lambda: True,
        shutdown=lambda: None,
        ObjectRef=object,
    )
    ray.__path__ = []  # a package: its submodules below
    util = _mock_module("ray.util")
    ray.util = util  # type: ignore[attr-defined]
    sys.modules["ray"] = ray
    sys.modules["ray.util"] = util
    for sub in ("placement_group", "scheduling_strategies", "queue", "state"):
        sys.modules[f"ray.util.{sub}"] = _mock_module(f"ray.util.{sub}")
    vllm = _mock_module("vllm")
    vllm.SamplingParams = SamplingParams
    sys.modules["vllm"] = vllm
    for sub in ("utils", "inputs", "lora", "lora.request", "distributed"):
        sys.modules[f"vllm.{sub}"] = _mock_module(f"vllm.{sub}")
    for name in (
        "flash_attn",
        "flash_attn.utils",
        "flash_attn.utils.distributed",
        "flash_attn.bert_padding",
        "flash_attn.ops",
        "flash_attn.ops.triton",
        "flash_attn.ops.triton.cross_entropy",
    ):
        sys.modules[name] = _mock_module(name)
