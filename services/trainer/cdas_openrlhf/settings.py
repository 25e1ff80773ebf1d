"""Where the coordinator is and which run the trainer feeds: the ``--coordinator.*`` flags.

OpenRLHF builds its ``PPOTrainer`` as a Ray actor, possibly on another node, so the settings travel
as environment variables (``to_env``/``from_env``) that the launcher puts into Ray's runtime
environment. The API token is never one of them: it is read where the trainer runs, from
``CDAS_API_TOKEN`` or from the file ``CDAS_API_TOKEN_FILE`` names (a mounted secret), so it does not
show in Ray's dashboard or job logs. The CA bundle of a TLS coordinator (``https://``,
``grpcs://``) is a path, so it travels: ``CDAS_CA_FILE``, the variable every client honours.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdas.client import GrpcClient, RestClient, RetryPolicy, connect, params
from cdas.client.connect import SCHEMES

ENV = {
    "url": "CDAS_COORDINATOR_URL",
    "run": "CDAS_RUN",
    "strategy": "CDAS_STRATEGY",
    "params": "CDAS_PARAMS",
    "seed": "CDAS_SEED",
    "id_key": "CDAS_ID_KEY",
    "max_rounds": "CDAS_MAX_ROUNDS",
    "retry_for": "CDAS_RETRY_FOR",
    "steps_per_episode": "CDAS_STEPS_PER_EPISODE",
    "token_file": "CDAS_API_TOKEN_FILE",
    "ca_file": "CDAS_CA_FILE",
}
TOKEN_ENV = "CDAS_API_TOKEN"


class SettingsError(ValueError):
    """A coordinator setting is missing or malformed (the message names it and its value)."""


def parse_param(text: str) -> tuple[str, Any]:
    """``--coordinator.param k=v`` (``cdas.client.params``: ``v`` is JSON when it parses)."""
    try:
        return params.parse_param(text, "--coordinator.param")
    except ValueError as error:
        raise SettingsError(str(error)) from None


@dataclass(frozen=True)
class CoordinatorSettings:
    url: str
    """``http://host:8000`` (REST) or ``grpc://host:50051``; ``https://``, ``grpcs://``: TLS."""
    run: str
    strategy: str = "cdas"
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    id_key: str = "id"
    """The dataset column holding prompt ids; rows without it get a content hash (``ids``)."""
    max_rounds: int = 10
    """Coordinator rounds one step may use for dynamic filtering's refills (DAPO: 10)."""
    retry_for: float = 600.0
    """Seconds to keep retrying an unreachable coordinator before the trainer fails."""
    steps_per_episode: int | None = None
    """Steps in one OpenRLHF episode; default: the prompt count // the rollout batch size."""
    token_file: str | None = None
    ca_file: str | None = None
    """The CA bundle (PEM) that signs a TLS coordinator's certificate (plaintext urls ignore it);
    None: ``$CDAS_CA_FILE`` where the trainer runs, else the default CAs."""

    def __post_init__(self) -> None:
        if not self.url.startswith(SCHEMES):
            raise SettingsError(
                "--coordinator.url must start with http://, https://, grpc:// or grpcs://, "
                f"got {self.url!r}"
            )
        if not self.run:
            raise SettingsError("--coordinator.run is required (the run id the trainer feeds)")
        if self.max_rounds < 1:
            raise SettingsError(f"--coordinator.max_rounds must be >= 1, got {self.max_rounds}")
        if not self.retry_for >= 0:
            raise SettingsError(f"--coordinator.retry_for must be >= 0, got {self.retry_for}")
        if self.steps_per_episode is not None and self.steps_per_episode < 1:
            raise SettingsError(
                f"--coordinator.steps_per_episode must be >= 1, got {self.steps_per_episode}"
            )

    def token(self) -> str | None:
        """The API token: ``CDAS_API_TOKEN``, else the content of ``token_file``."""
        if os.environ.get(TOKEN_ENV):
            return os.environ[TOKEN_ENV]
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip() or None
            except OSError as exc:
                raise SettingsError(
                    f"cannot read --coordinator.token_file {self.token_file!r}: {exc}"
                ) from exc
        return None

    def client(self) -> RestClient | GrpcClient:
        """An SDK client that rides out a coordinator restart for ``retry_for`` seconds."""
        retry, token = RetryPolicy(for_seconds=self.retry_for, max_delay=5.0), self.token()
        try:
            return connect(self.url, token, retry=retry, ca=self.ca_file)
        except ValueError as exc:  # an unreadable CA file
            raise SettingsError(f"--coordinator.ca_file: {exc}") from exc

    def to_env(self) -> dict[str, str]:
        env = {
            ENV["url"]: self.url,
            ENV["run"]: self.run,
            ENV["strategy"]: self.strategy,
            ENV["params"]: json.dumps(dict(self.params), sort_keys=True),
            ENV["seed"]: str(self.seed),
            ENV["id_key"]: self.id_key,
            ENV["max_rounds"]: str(self.max_rounds),
            ENV["retry_for"]: repr(self.retry_for),
        }
        if self.steps_per_episode is not None:
            env[ENV["steps_per_episode"]] = str(self.steps_per_episode)
        if self.token_file:
            env[ENV["token_file"]] = self.token_file
        if self.ca_file:
            env[ENV["ca_file"]] = self.ca_file
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CoordinatorSettings:
        env = os.environ if env is None else env
        missing = [ENV[k] for k in ("url", "run") if not env.get(ENV[k])]
        if missing:
            raise SettingsError(
                f"{', '.join(missing)} not set: start training with cdas-openrlhf "
                "(it passes the --coordinator.* flags to the trainer actor)"
            )

        def number(key: str, kind: type[int] | type[float]) -> Any:
            raw = env[ENV[key]]
            try:
                return kind(raw)
            except ValueError as exc:
                raise SettingsError(f"{ENV[key]} must be a number, got {raw!r}") from exc

        try:
            params = json.loads(env.get(ENV["params"], "{}"))
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{ENV['params']} is not JSON: {env[ENV['params']]!r}") from exc
        return cls(
            url=env[ENV["url"]],
            run=env[ENV["run"]],
            strategy=env.get(ENV["strategy"], "cdas"),
            params=params,
            seed=number("seed", int) if ENV["seed"] in env else 0,
            id_key=env.get(ENV["id_key"], "id"),
            max_rounds=number("max_rounds", int) if ENV["max_rounds"] in env else 10,
            retry_for=number("retry_for", float) if ENV["retry_for"] in env else 600.0,
            steps_per_episode=(
                number("steps_per_episode", int) if ENV["steps_per_episode"] in env else None
            ),
            token_file=env.get(ENV["token_file"]) or None,
            ca_file=env.get(ENV["ca_file"]) or None,
        )
