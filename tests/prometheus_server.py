"""A real Prometheus (Debian's ``prometheus`` package) for the tests, and promtool.

The monitoring tests check the committed deploy/prometheus and deploy/grafana files against what
the coordinator really exports, so they run the real tools rather than re-implementing PromQL or
the config schema. ``PrometheusServer`` runs one Prometheus on a free port with its TSDB in a test
directory; ``scrape_config`` derives its config from the committed ``prometheus.yml`` (same job,
same rules) with only the target and the intervals changed, so the test exercises the file users
deploy.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def installed(binary: str) -> str:
    """``binary``'s path; a missing one fails the test (never a skip): `make system` installs it."""
    if not Path(binary).exists():
        pytest.fail(f"{binary} is missing: install the Debian package prometheus (make system)")
    return binary


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool; the caller asserts on the exit status and the output."""
    installed(PROMTOOL)
    return subprocess.run(
        [PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path}: not a YAML mapping"
    return data


def free_port() -> int:
    """A port free now (the OS picks it); Prometheus binds it a moment later."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape_config(target: str, interval: str = "1s") -> dict[str, Any]:
    """The committed prometheus.yml with the cdas job's target replaced by ``target``, the scrape
    and evaluation intervals set to ``interval`` (a test cannot wait 15 s per sample) and the rule
    files made absolute (the derived config lives elsewhere)."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config.get("rule_files", [])]
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == "cdas"]
    assert len(jobs) == 1, "prometheus.yml must have exactly one job named cdas"
    jobs[0]["static_configs"] = [{"targets": [target]}]
    return config


class PrometheusServer:
    """One Prometheus process: config and TSDB in ``directory``, HTTP on a free local port."""

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        self.directory = directory
        self.config_path = directory / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = directory / "prometheus.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        """Start and wait for /-/ready; on failure, stop it and fail with its log. The port is
        free when chosen; another process may take it before Prometheus binds it, so a bind
        failure is retried on a new port."""
        for _ in range(3):
            if self._start(timeout):
                return self
            self.stop()
            if "address already in use" not in self.log():
                break
        pytest.fail(f"Prometheus did not become ready on port {self.port}; its log:\n{self.log()}")

    def _start(self, timeout: float) -> bool:
        self.port = free_port()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    installed(PROMETHEUS),
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=info",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query through the HTTP API; the result vector (``[{"metric", "value"}]``)."""
        params = {"query": expr} if at is None else {"query": expr, "time": str(at)}
        response = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        body = response.json()
        assert response.status_code == 200, (expr, body)
        assert body["status"] == "success", (expr, body)
        assert body["data"]["resultType"] == "vector", (expr, body["data"]["resultType"])
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 15.0, what: str = "") -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns a non-empty vector (rules run every interval)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                targets = httpx.get(f"{self.url}/api/v1/targets", timeout=10).text
                pytest.fail(
                    f"no series for {what or expr} after {timeout} s\n"
                    f"targets: {targets}\nlog:\n{self.log()}"
                )
            time.sleep(0.2)


@contextlib.contextmanager
def running_prometheus(directory: Path, config: dict[str, Any]) -> Iterator[PrometheusServer]:
    """A started Prometheus, killed at exit whatever happened."""
    server = PrometheusServer(directory, config)
    try:
        yield server.start()
    finally:
        server.stop()
