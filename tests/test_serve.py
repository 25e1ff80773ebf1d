"""``cdas serve`` as a process: JSON logs, both doors, graceful shutdown (drain, in-flight calls
finish), the embedded store's state file across restarts, and the bearer token."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import cdas
from cdas.client import GrpcClient, RestClient, RetryPolicy
from cdas.core.errors import UnauthenticatedError
from tests.services import rest_url, running_service, serve_process

SERVE = [sys.executable, "-m", "cdas.cli", "serve"]
ONCE = RetryPolicy(attempts=1)


def _health(target: str) -> int:
    """The gRPC health status of the whole server ("")."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return int(answer.status)


def _environ(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("CDAS_API_TOKEN", None)
    env.update(extra)
    return env


# ---------------------------------------------------------------------------- (a) start, logs


def test_serve_logs_json_lines_and_answers_on_both_doors() -> None:
    process = subprocess.Popen(
        [*SERVE, "--store", "memory", "--port", "0", "--grpc-port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_environ(),
    )
    assert process.stderr is not None
    try:
        serving: dict[str, Any] | None = None
        raw: list[str] = []
        deadline = time.monotonic() + 30
        while serving is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            raw.append(line)
            entry = json.loads(line)
            if entry["msg"] == "serving":
                serving = entry
        assert serving is not None, raw
        port, grpc_port = int(serving["port"]), int(serving["grpc_port"])
        assert port > 0
        assert grpc_port > 0
        assert serving["rest"] == f"http://127.0.0.1:{port}"
        assert serving["grpc"] == f"127.0.0.1:{grpc_port}"
        assert serving["store"] == "MemoryStore"
        assert serving["auth"] is False

        url, target = f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}"
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert _health(target) == health_pb2.HealthCheckResponse.SERVING
        with RestClient(url, retry=ONCE) as rest, GrpcClient(target, retry=ONCE) as over_grpc:
            created = rest.put_run("both", prompts=100, seed=4)
            assert created.created
            batch = over_grpc.next_batch("both", 0, 10)
            assert rest.next_batch("both", 0, 10) == batch
            outcome = over_grpc.report_results(
                "both", 0, [{"prompt_id": p, "correct": 2, "total": 4} for p in batch.prompt_ids]
            )
            assert outcome.applied == 10
            assert rest.get_run("both").results == 10
            with pytest.raises(cdas.RunNotFoundError):
                over_grpc.get_run("absent")
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest_of_log = process.communicate(timeout=30)
    assert process.returncode == 0
    lines = raw + rest_of_log.splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    for entry in entries:
        assert {"ts", "level", "msg"} <= entry.keys(), entry
        assert entry["ts"].endswith("Z")
        assert entry["level"] in {"debug", "info", "warning", "error", "critical"}
    messages = [e["msg"] for e in entries]
    assert messages.index("serving") < messages.index("draining") < messages.index("stopped")
    access = [e for e in entries if e.get("door") in ("rest", "grpc")]
    assert {e["door"] for e in access} == {"rest", "grpc"}
    assert all(isinstance(e["duration_ms"], int | float) for e in access)


# ---------------------------------------------------------------------------- (b) shutdown


def test_sigterm_drains_then_lets_the_call_in_flight_finish() -> None:
    prompts = 4_000_000
    with (
        serve_process("--store", "memory", "--drain", "1", "--grace", "20") as served,
        RestClient(served.url, retry=ONCE, timeout=60) as rest,
    ):
        started = time.monotonic()
        rest.put_run("measure", prompts=prompts)
        took = time.monotonic() - started
        assert took > 0.3, f"registering {prompts} prompts took only {took:.2f} s"
        rest.delete_run("measure")

        answers: list[Any] = []

        def slow_call() -> None:
            try:
                answers.append(rest.put_run("slow", prompts=prompts))
            except BaseException as exc:  # reported by the test thread
                answers.append(exc)

        caller = threading.Thread(target=slow_call)
        caller.start()
        time.sleep(min(0.2, took / 4))
        assert not answers, "the slow call finished before SIGTERM"
        signalled = time.monotonic()
        served.process.send_signal(signal.SIGTERM)

        readiness: list[int] = []
        health: list[int] = []
        while time.monotonic() - signalled < 0.8:
            try:
                readiness.append(httpx.get(f"{served.url}/readyz", timeout=2).status_code)
                health.append(_health(served.target))
            except (httpx.HTTPError, grpc.RpcError):
                break  # the listeners closed
            time.sleep(0.05)
        caller.join(timeout=60)
        code = served.process.wait(timeout=60)

    assert readiness, "readiness was never answered during the drain"
    assert readiness[-1] == 503
    assert health[-1] == health_pb2.HealthCheckResponse.NOT_SERVING
    assert len(answers) == 1
    run = answers[0]
    assert isinstance(run, cdas.RunInfo), run
    assert (run.run_id, run.size, run.created) == ("slow", prompts, True)
    assert code == 0
    messages = [line.get("msg") for line in served.lines]
    assert "draining" in messages
    assert "stopped" in messages
    assert messages.index("draining") < messages.index("stopped")
    draining = next(line for line in served.lines if line.get("msg") == "draining")
    assert draining["drain_seconds"] == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{served.url}/healthz", timeout=2)


# ---------------------------------------------------------------------------- (c) state file


def _steps(api: Any, run_id: str, steps: range) -> list[Any]:
    answers = []
    for step in steps:
        batch = api.next_batch(run_id, step, 16)
        results = [{"prompt_id": p, "correct": step % 9, "total": 8} for p in batch.prompt_ids]
        answers.append((batch.prompt_ids, api.report_results(run_id, step, results)))
    return answers


def test_the_state_file_keeps_runs_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state" / "cdas.zip"
    library = cdas.Coordinator(cdas.MemoryStore())
    library.put_run("kept", strategy="cdas", prompts=200, seed=5)
    expected = _steps(library, "kept", range(8))

    with serve_process("--store", "memory", "--state-file", str(state)) as first:
        with RestClient(first.url, retry=ONCE) as rest:
            rest.put_run("kept", strategy="cdas", prompts=200, seed=5)
            assert _steps(rest, "kept", range(4)) == expected[:4]
            before = rest.get_run("kept")
            state_before = rest.get_state("kept")
            prompt_before = rest.get_prompt("kept", "7")
        assert first.terminate() == 0
    assert state.exists()
    assert before.step == 3
    assert before.competence != 0.0
    assert before.results == 64

    with serve_process("--store", "memory", "--state-file", str(state)) as second:
        with RestClient(second.url, retry=ONCE) as rest:
            after = rest.get_run("kept")
            assert (after.step, after.competence) == (before.step, before.competence)
            assert after.to_dict() == before.to_dict()
            assert rest.get_state("kept").to_dict() == state_before.to_dict()
            assert rest.get_prompt("kept", "7") == prompt_before
            assert _steps(rest, "kept", range(4, 8)) == expected[4:]
        assert second.terminate() == 0
    assert any(line.get("msg") == "stopped" for line in second.lines)


# ---------------------------------------------------------------------------- (d) auth


def _assert_guarded(url: str, target: str, token: str) -> None:
    assert httpx.get(f"{url}/v1/runs").status_code == 401
    wrong = httpx.get(f"{url}/v1/runs", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthenticated"
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/readyz").status_code == 200
    assert _health(target) == health_pb2.HealthCheckResponse.SERVING
    with RestClient(url, retry=ONCE) as rest, GrpcClient(target, retry=ONCE) as over_grpc:
        with pytest.raises(UnauthenticatedError):
            rest.list_runs()
        with pytest.raises(UnauthenticatedError):
            over_grpc.list_runs()
    with (
        RestClient(url, token, retry=ONCE) as rest,
        GrpcClient(target, token, retry=ONCE) as over_grpc,
    ):
        assert rest.put_run("guarded", prompts=10).created
        assert [r.run_id for r in over_grpc.list_runs()] == ["guarded"]


def test_the_token_comes_from_the_environment() -> None:
    with serve_process(env={"CDAS_API_TOKEN": "s3cret-env"}) as served:
        assert any(line.get("msg") == "serving" and line["auth"] for line in served.lines)
        _assert_guarded(served.url, served.target, "s3cret-env")


def test_the_token_comes_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  from-the-file\n")
    with serve_process("--token-file", str(token_file)) as served:
        _assert_guarded(served.url, served.target, "from-the-file")


def test_an_empty_token_file_stops_serve(tmp_path: Path) -> None:
    token_file = tmp_path / "empty-token"
    token_file.write_text("  \n")
    done = subprocess.run(
        [*SERVE, "--port", "0", "--grpc-port", "0", "--token-file", str(token_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_environ(),
        check=False,
    )
    assert done.returncode != 0
    assert str(token_file) in done.stderr
    assert "empty" in done.stderr
    assert '"msg": "serving"' not in done.stderr


# ---------------------------------------------------------------------------- embedded Service


def test_an_embedded_service_answers_rest_promptly_on_the_default_event_loop() -> None:
    """``Service`` on a plain asyncio loop (no uvloop): a keep-alive REST call takes about a
    millisecond, not the 40 ms of Nagle's algorithm meeting delayed ACKs."""
    with (
        running_service(cdas.Coordinator(cdas.MemoryStore())) as service,
        httpx.Client(base_url=rest_url(service.bound)) as client,
    ):
        client.put("/v1/runs/quick", json={"prompts": {"count": 100}}).raise_for_status()
        timings = []
        for _ in range(15):
            started = time.perf_counter()
            client.get("/v1/runs/quick").raise_for_status()
            timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.02, f"median {statistics.median(timings) * 1e3:.1f} ms"
