"""TLS on both doors (``cdas serve --tls-cert --tls-key``) and the clients that take a CA.

A throwaway PKI (a CA, a server certificate for 127.0.0.1 and localhost signed by it, and a second
CA that signs nothing we serve) is made once per module with the ``openssl`` command line. The
service runs in process on free ports, except where the command line itself is under test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import cdas
from cdas.client import AsyncRestClient, GrpcClient, RestClient, RetryPolicy, TlsError, connect
from cdas.client.tls import CA_ENV
from cdas.core.errors import InvalidArgumentError, ServiceUnavailableError
from cdas.service.server import Service
from cdas.service.settings import ServiceSettings, load_tls
from tests.services import running_service, serve_process

ONCE = RetryPolicy(attempts=1)
PATIENT = RetryPolicy(for_seconds=30, max_delay=1)
"""What a trainer riding out a restart uses: a TLS failure must not be retried under it."""
SERVE = [sys.executable, "-m", "cdas.cli", "serve", "--port", "0", "--grpc-port", "0"]


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path
    other_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_ca(name: str, cwd: Path) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    assert shutil.which("openssl"), "the openssl command makes the test certificates (make system)"
    where = tmp_path_factory.mktemp("pki")
    _make_ca("ca", where)
    _make_ca("other", where)
    (where / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
        cwd=where,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=where,
    )  # fmt: skip
    return Pki(
        where / "ca.pem", where / "server.pem", where / "server.key", where / "other.pem",
        where / "other.key",
    )  # fmt: skip


def _settings(pki: Pki) -> ServiceSettings:
    return ServiceSettings(
        port=0, grpc_port=0, grace_seconds=1, tls_cert=str(pki.cert), tls_key=str(pki.key)
    )


@pytest.fixture(scope="module")
def served(pki: Pki) -> Iterator[Service]:
    """One TLS service for the module's client tests."""
    with running_service(cdas.Coordinator(cdas.MemoryStore()), _settings(pki)) as service:
        yield service


def _urls(service: Service) -> tuple[str, str]:
    assert service.bound is not None
    return f"https://127.0.0.1:{service.bound.port}", f"127.0.0.1:{service.bound.grpc_port}"


def _round_trip(client: RestClient | GrpcClient, run_id: str) -> None:
    assert client.put_run(run_id, prompts=16, seed=1).created
    batch = client.next_batch(run_id, 1, 4)
    assert len(batch.prompt_ids) == 4
    outcome = client.report_results(
        run_id, 1, [{"prompt_id": p, "correct": 2, "total": 4} for p in batch.prompt_ids]
    )
    assert outcome.applied == 4


def _fails_fast(call: Callable[[], object], within: float = 5.0) -> TlsError:
    """The TlsError ``call`` raises, well before a retrying client would have given up."""
    started = time.monotonic()
    with pytest.raises(TlsError) as info:
        call()
    assert time.monotonic() - started < within
    return info.value


# ------------------------------------------------------------------------- clients with the CA


def test_rest_over_https_with_the_ca(pki: Pki, served: Service) -> None:
    url, _ = _urls(served)
    with RestClient(url, ca=str(pki.ca), retry=ONCE) as client:
        _round_trip(client, "rest-tls")
    assert served.coordinator.get_run("rest-tls").results == 4
    health = httpx.get(f"{url}/healthz", verify=ssl.create_default_context(cafile=pki.ca))
    assert health.json() == {"status": "ok"}


def test_async_rest_over_https_with_the_ca(pki: Pki, served: Service) -> None:
    url, _ = _urls(served)

    async def go() -> list[str]:
        async with AsyncRestClient(url, ca=str(pki.ca), retry=ONCE) as client:
            await client.put_run("async-tls", prompts=8)
            return (await client.next_batch("async-tls", 1, 2)).prompt_ids

    assert len(asyncio.run(go())) == 2


def test_grpc_with_the_ca(pki: Pki, served: Service) -> None:
    _, target = _urls(served)
    with GrpcClient(target, ca=str(pki.ca), retry=ONCE) as client:
        _round_trip(client, "grpc-tls")
    port = target.rsplit(":", 1)[1]
    with connect(f"grpcs://localhost:{port}/", ca=str(pki.ca), retry=ONCE) as client:
        assert isinstance(client, GrpcClient)
        assert client.get_run("grpc-tls").results == 4


def test_connect_takes_the_ca_from_the_environment(
    pki: Pki, served: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, target = _urls(served)
    monkeypatch.setenv(CA_ENV, str(pki.ca))
    for address in (url, f"grpcs://{target}"):
        with connect(address, retry=ONCE) as client:
            assert client.put_run("from-env", prompts=4).run_id == "from-env"


def test_the_integrations_take_the_ca(pki: Pki, served: Service) -> None:
    from cdas_openrlhf.settings import CoordinatorSettings
    from cdas_rollout.cli import make_client

    url, target = _urls(served)
    settings = CoordinatorSettings(url=url, run="r", ca_file=str(pki.ca))
    assert CoordinatorSettings.from_env(settings.to_env()) == settings  # it reaches the actor
    with settings.client() as client:
        client.list_runs()
    with make_client(f"grpcs://{target}", None, 5.0, str(pki.ca)) as client:
        client.list_runs()


# ------------------------------------------------------------------- failures, clear and fast


def test_a_client_without_the_ca_fails_clearly_and_is_not_retried(
    pki: Pki, served: Service
) -> None:
    url, target = _urls(served)
    with RestClient(url, retry=PATIENT) as rest:
        error = _fails_fast(rest.list_runs)
    assert "certificate verification failed" in error.message
    assert "no CA file" in error.message
    with GrpcClient(target, tls=True, retry=PATIENT) as over_grpc:
        error = _fails_fast(over_grpc.list_runs)
    assert "certificate verification failed" in error.message
    assert "CERTIFICATE_VERIFY_FAILED" in error.message
    assert not PATIENT.should_retry(error, 1, idempotent=True)


def test_a_client_with_another_ca_names_it(pki: Pki, served: Service) -> None:
    url, target = _urls(served)
    other = str(pki.other_ca)
    with RestClient(url, ca=other, retry=PATIENT) as rest:
        assert other in _fails_fast(rest.list_runs).message
    with connect(f"grpcs://{target}", ca=other, retry=PATIENT) as over_grpc:
        assert other in _fails_fast(over_grpc.list_runs).message


def test_plaintext_to_the_tls_ports_fails(served: Service) -> None:
    url, target = _urls(served)
    plain = url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/healthz", timeout=5)
    with RestClient(plain, retry=ONCE) as rest, pytest.raises(ServiceUnavailableError) as info:
        rest.list_runs()
    assert "does the coordinator serve TLS?" in info.value.message
    over_grpc = GrpcClient(target, retry=ONCE)
    with over_grpc, pytest.raises(ServiceUnavailableError) as info:
        over_grpc.list_runs()
    assert "does the coordinator serve TLS?" in info.value.message


def test_tls_to_a_plaintext_service_says_so(pki: Pki) -> None:
    with running_service(cdas.Coordinator(cdas.MemoryStore())) as plain:
        assert plain.bound is not None
        url = f"https://127.0.0.1:{plain.bound.port}"
        target = f"127.0.0.1:{plain.bound.grpc_port}"
        with RestClient(url, ca=str(pki.ca), retry=PATIENT) as rest:
            assert "does not speak TLS" in _fails_fast(rest.list_runs).message
        with GrpcClient(target, ca=str(pki.ca), retry=PATIENT) as over_grpc:
            assert "does not speak TLS" in _fails_fast(over_grpc.list_runs).message


def test_an_unreadable_ca_file_is_refused_at_construction(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-ca.pem")
    with pytest.raises(InvalidArgumentError, match=r"no-ca\.pem"):
        RestClient("https://127.0.0.1:1", ca=missing)
    with pytest.raises(InvalidArgumentError, match=r"no-ca\.pem"):
        GrpcClient("127.0.0.1:1", ca=missing)
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("hello")
    with pytest.raises(InvalidArgumentError, match="holds no PEM certificate"):
        connect("grpcs://127.0.0.1:1", ca=str(not_pem))


# ------------------------------------------------------------------------ server settings


def test_a_certificate_without_its_key_is_refused(pki: Pki) -> None:
    with pytest.raises(InvalidArgumentError, match="needs --tls-key"):
        ServiceSettings(tls_cert=str(pki.cert))
    with pytest.raises(InvalidArgumentError, match="needs --tls-cert"):
        ServiceSettings(tls_key=str(pki.key))
    assert not ServiceSettings().tls


def test_bad_tls_files_are_named_before_anything_binds(pki: Pki, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(InvalidArgumentError, match=r"--tls-cert '.*missing\.pem' cannot be read"):
        load_tls(missing, str(pki.key))
    with pytest.raises(InvalidArgumentError, match="are not a PEM certificate and its key"):
        load_tls(str(pki.cert), str(pki.other_key))  # another certificate's key
    settings = ServiceSettings(port=0, grpc_port=0, tls_cert=missing, tls_key=str(pki.key))
    service = Service(cdas.Coordinator(cdas.MemoryStore()), settings)
    with pytest.raises(InvalidArgumentError, match=r"missing\.pem"):
        asyncio.run(service.start())
    assert service.grpc is None  # nothing was made, so nothing was bound
    service.executor.shutdown()


# ---------------------------------------------------------------------------- cdas serve


def test_cdas_serve_with_tls_flags(pki: Pki) -> None:
    with serve_process("--tls-cert", str(pki.cert), "--tls-key", str(pki.key)) as process:
        serving = next(line for line in process.lines if line.get("msg") == "serving")
        assert serving["tls"] is True
        assert serving["rest"].startswith("https://")
        assert process.url.startswith("https://")
        with RestClient(process.url, ca=str(pki.ca), retry=ONCE) as rest:
            _round_trip(rest, "served-tls")
        with connect(f"grpcs://{process.target}", ca=str(pki.ca), retry=ONCE) as over_grpc:
            assert over_grpc.get_run("served-tls").results == 4


def _refused(*flags: str, env: dict[str, str] | None = None) -> str:
    """``cdas serve``'s complaint: it exits non-zero before serving."""
    environ = {**os.environ, **(env or {})}
    for name in ("CDAS_TLS_CERT", "CDAS_TLS_KEY"):
        if name not in (env or {}):
            environ.pop(name, None)
    done = subprocess.run(
        [*SERVE, *flags], capture_output=True, text=True, timeout=60, env=environ, check=False
    )
    assert done.returncode != 0
    assert '"msg": "serving"' not in done.stderr
    return done.stderr


def test_cdas_serve_refuses_a_certificate_without_a_key(pki: Pki) -> None:
    assert "needs --tls-key" in _refused("--tls-cert", str(pki.cert))
    assert "needs --tls-cert" in _refused(env={"CDAS_TLS_KEY": str(pki.key)})


def test_cdas_serve_refuses_a_missing_certificate(pki: Pki, tmp_path: Path) -> None:
    missing = str(tmp_path / "gone.pem")
    complaint = _refused("--tls-cert", missing, "--tls-key", str(pki.key))
    assert missing in complaint
    assert "cannot be read" in complaint
