"""The sampler's settings: ``data.sampler.cdas.*`` in verl's config, else ``CDAS_*`` variables.

verl builds the sampler itself (``create_rl_sampler``) with only the dataset and the ``data``
section of its config, so the coordinator settings travel in that section, as a ``cdas`` dict under
``data.sampler`` (Hydra: ``+data.sampler.cdas.run=...``). Each key may come from the environment
instead (``CDAS_RUN``, ...), since verl's trainer runs as a Ray actor that inherits the job's
runtime environment; a key in the config wins over its variable.

The API token is never a key: it is read where the trainer runs, from the file ``token_file``
names (a mounted secret), else ``$CDAS_API_TOKEN``, so it stays out of verl's logged config.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import cdas
from cdas.client import RetryPolicy, connect
from cdas.client.connect import SCHEMES
from cdas.core.api import Batches, RunSetup
from cdas.core.errors import InvalidArgumentError
from cdas.service.settings import load_token

SECTION = "data.sampler.cdas"
"""Where the settings live in verl's config."""

ENV = {
    "url": "CDAS_COORDINATOR_URL",
    "run": "CDAS_RUN",
    "strategy": "CDAS_STRATEGY",
    "params": "CDAS_PARAMS",
    "seed": "CDAS_SEED",
    "id_key": "CDAS_ID_KEY",
    "max_rounds": "CDAS_MAX_ROUNDS",
    "retry_for": "CDAS_RETRY_FOR",
    "token_file": "CDAS_API_TOKEN_FILE",
    "ca_file": "CDAS_CA_FILE",
}
"""Each setting's environment variable (used when the config does not set the key)."""

BATCH_KEYS = ("data_source", "reward_model", "extra_info")
"""The dataset columns verl keeps in the batch it hands to ``update`` (``_get_gen_batch`` moves the
others into the generation batch), so the only ones an id can be read from."""


class SettingsError(ValueError):
    """A setting is missing or malformed (the message names the key and its value)."""


class CoordinatorClient(RunSetup, Batches, Protocol):
    """The calls the sampler makes (``cdas.core.api``): ``put_run``, then a step's calls
    (``next_batch``, ``report_results``, ``advance``); the library and every SDK client have
    them."""


@dataclass(frozen=True)
class SamplerSettings:
    run: str
    """The run id. The first start creates the run with the dataset's prompt ids; a restart finds
    it (``put_run`` is idempotent); another prompt set or config under the same id is refused."""
    url: str | None = None
    """``http://host:8000``, ``https://...``, ``grpc://host:50051`` or ``grpcs://...``; None: the
    library embedded in the trainer's process (its run state rides in verl's checkpoints)."""
    strategy: str = "cdas"
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    id_key: str = "extra_info.index"
    """Where each row's prompt id is: a dotted path into one of ``BATCH_KEYS`` (verl's own
    preprocessing scripts write ``extra_info.index``)."""
    max_rounds: int = 10
    """Coordinator rounds one step may use when verl draws further batches inside a step (DAPO's
    group filter): round 0 and at most ``max_rounds - 1`` refills."""
    retry_for: float = 600.0
    """Seconds an SDK client keeps retrying an unreachable coordinator before the trainer fails."""
    token_file: str | None = None
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if not self.run:
            raise SettingsError(
                f"{SECTION}.run (or ${ENV['run']}) is required: the run id the trainer feeds"
            )
        if self.url is not None and not self.url.startswith(SCHEMES):
            raise SettingsError(
                f"{SECTION}.url must start with http://, https://, grpc:// or grpcs://, "
                f"got {self.url!r}"
            )
        if self.id_key.split(".")[0] not in BATCH_KEYS:
            raise SettingsError(
                f"{SECTION}.id_key {self.id_key!r} must start with one of {', '.join(BATCH_KEYS)}: "
                "verl keeps only those columns in the batch whose rewards the sampler posts"
            )
        if self.max_rounds < 1:
            raise SettingsError(f"{SECTION}.max_rounds must be >= 1, got {self.max_rounds}")
        if not self.retry_for >= 0:
            raise SettingsError(f"{SECTION}.retry_for must be >= 0, got {self.retry_for}")

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def where(self) -> str:
        return self.url or "the embedded coordinator"

    def connect(self) -> CoordinatorClient:
        """An SDK client for ``url`` (retried for ``retry_for`` seconds), else a new embedded
        coordinator."""
        if self.url is None:
            return cdas.Coordinator(cdas.MemoryStore())
        try:
            token = load_token(self.token_file)
            retry = RetryPolicy(for_seconds=self.retry_for, max_delay=5.0)
            return connect(self.url, token, retry=retry, ca=self.ca_file)
        except InvalidArgumentError as exc:  # an unreadable token or CA file
            raise SettingsError(f"{SECTION}: {exc.message}") from exc

    @classmethod
    def from_config(
        cls, section: Mapping[str, Any] | None, env: Mapping[str, str] | None = None
    ) -> SamplerSettings:
        """The settings from verl's ``data.sampler.cdas`` (None: absent), each missing key from
        its ``CDAS_*`` variable, else its default."""
        env = os.environ if env is None else env
        given = dict(section or {})
        unknown = sorted(set(given) - set(ENV))
        if unknown:
            raise SettingsError(
                f"unknown key {SECTION}.{unknown[0]}; the keys are {', '.join(sorted(ENV))}"
            )
        values: dict[str, Any] = {}
        for key, variable in ENV.items():
            if given.get(key) is not None:
                values[key] = given[key]
            elif env.get(variable):
                values[key] = _parse(key, variable, env[variable])
        values.setdefault("run", "")
        params = values.get("params", {})
        if not isinstance(params, Mapping):
            raise SettingsError(f"{SECTION}.params must be a mapping, got {params!r}")
        values["params"] = _plain(params)
        for key, kind in (("seed", int), ("max_rounds", int), ("retry_for", float)):
            if key in values:
                values[key] = _number(key, values[key], kind)
        return cls(**values)


def _parse(key: str, variable: str, raw: str) -> Any:
    if key == "params":
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise SettingsError(f"${variable} is not JSON: {raw!r}") from exc
    return raw


def _number(key: str, value: Any, kind: type[int] | type[float]) -> Any:
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float)):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise SettingsError(
            f"{SECTION}.{key} (${ENV[key]}) must be {'an integer' if kind is int else 'a number'}, "
            f"got {value!r}"
        ) from None


def _plain(value: Any) -> Any:
    """An OmegaConf node (or anything mapping- or list-like) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value
