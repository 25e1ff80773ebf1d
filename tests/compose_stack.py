"""docker-compose.yml read as Compose reads it, and its containers' commands as plain processes.

No Docker engine runs here, so the tests take each service's command, environment and health check
from the compose file, interpolated from ``.env`` exactly as Compose would (``${VAR}``,
``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``$$``), prepend the image's
``ENTRYPOINT`` from its Dockerfile, and run them on this machine. The only changes are the ones a
container network makes for free, listed in ``Network``: service hostnames become 127.0.0.1,
container ports become free ports (a server is told its port with the flag it already takes), and
container paths of volumes become folders of the test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_FILE = ROOT / ".env"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """``KEY=value`` lines; comments and blank lines skipped (values here are never quoted)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env line without '=': {line!r}"
        env[key.strip()] = value.strip()
    return env


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of one string."""

    def one(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return arg if value is not None else ""
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise ValueError(f"required variable {name} is missing: {arg}")
        return value or ""

    return _VARIABLE.sub(one, text)


def variables(text: str) -> set[str]:
    """Every variable a compose file refers to (``$$`` escapes excluded)."""
    return {
        m.group("braced") or m.group("named")
        for m in _VARIABLE.finditer(text)
        if not m.group("escaped")
    }


def _walk(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [_walk(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v, env) for k, v in value.items()}
    return value


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file with YAML anchors and merge keys resolved, then interpolated (values are
    interpolated after parsing, as Compose does, so a value can never change the structure)."""
    env = read_env_file() if env is None else env
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return dict(_walk(document, env))


def active_services(compose: Mapping[str, Any], profiles: set[str]) -> list[str]:
    """What ``docker compose --profile ... up`` starts: services without profiles, and those with
    one of ``profiles``."""
    return [
        name
        for name, service in compose["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & profiles
    ]


def dockerfile_entrypoint(dockerfile: Path) -> list[str]:
    """The exec-form ``ENTRYPOINT`` of a Dockerfile's last stage."""
    entrypoint: list[str] = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("FROM "):
            entrypoint = []
        if line.startswith("ENTRYPOINT "):
            entrypoint = json.loads(line.removeprefix("ENTRYPOINT "))
    assert entrypoint, f"no exec-form ENTRYPOINT in {dockerfile}"
    return entrypoint


def dockerfile_env(dockerfile: Path) -> dict[str, str]:
    """``ENV key=value`` of a Dockerfile's last stage (values without spaces)."""
    env: dict[str, str] = {}
    for line in dockerfile.read_text().splitlines():
        if line.startswith("FROM "):
            env = {}
        if line.startswith("ENV "):
            for part in shlex.split(line.removeprefix("ENV ").replace("\\", "")):
                key, sep, value = part.partition("=")
                if sep:
                    env[key] = value
    return env


@dataclass
class Network:
    """What a container network gives for free, made explicit for plain processes."""

    hosts: dict[str, str] = field(default_factory=dict)
    """``host:container_port`` -> ``127.0.0.1:free_port``."""
    paths: dict[str, str] = field(default_factory=dict)
    """container path -> host path (volumes, files baked into an image)."""

    def apply(self, text: str) -> str:
        """Host names, then container paths, each in one pass, longest first. A path is replaced
        only where it starts a path (``/prometheus`` in ``--storage.tsdb.path=/prometheus`` but
        not in ``/etc/prometheus/prometheus.yml``), and a replacement is never replaced again."""
        for mapping, boundary in ((self.hosts, ""), (self.paths, r"(?<![\w./-])")):
            if mapping:
                names = sorted(mapping, key=len, reverse=True)
                alternatives = "|".join(re.escape(n) for n in names)
                pattern = re.compile(rf"{boundary}(?:{alternatives})(?![\w.-])")
                text = pattern.sub(partial(_lookup, mapping), text)
        return text


def _lookup(table: Mapping[str, str], match: re.Match[str]) -> str:
    return table[match.group(0)]


def command(
    compose: Mapping[str, Any], name: str, network: Network
) -> tuple[list[str], dict[str, str]]:
    """A service's argv (entrypoint + command) and environment, translated by ``network``."""
    service = compose["services"][name]
    argv: list[str] = list(service.get("entrypoint") or [])
    if not argv and "build" in service:
        argv = dockerfile_entrypoint(ROOT / service["build"]["dockerfile"])
    cmd = service["command"]
    argv += shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
    if "build" in service:
        env = {**dockerfile_env(ROOT / service["build"]["dockerfile"]), **env}
    return [network.apply(a) for a in argv], {k: network.apply(v) for k, v in env.items()}


def healthcheck(compose: Mapping[str, Any], name: str, network: Network) -> list[str]:
    """A service's health check as argv (``CMD-SHELL`` through ``sh -c``), translated."""
    test = compose["services"][name]["healthcheck"]["test"]
    kind, rest = test[0], test[1:]
    argv = ["sh", "-c", rest[0]] if kind == "CMD-SHELL" else list(rest)
    assert kind in ("CMD", "CMD-SHELL"), test
    return [network.apply(a) for a in argv]


def plain_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This machine's PATH and the test venv first, plus the container's variables."""
    base = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR")}
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return {**base, **extra, "PATH": path, "PYTHONUNBUFFERED": "1"}
