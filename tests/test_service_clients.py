"""The SDK clients' retries and faults: a Redis store killed and restarted under running trainers,
a coordinator that starts after its clients, and injected HTTP faults (retryable or not, and
``add_prompts`` never repeated on an ambiguous failure)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import cdas
from cdas.client import AsyncRestClient, GrpcClient, RestClient, RetryPolicy
from cdas.core.errors import ServiceUnavailableError
from cdas.service.rest.app import create_app
from tests.conftest import assert_same_state, logical_state
from tests.redis_servers import RedisServer, free_port
from tests.services import rest_url, running_service, serve_process

JSON = "application/json"

PATIENT = RetryPolicy(attempts=400, initial=0.02, max_delay=0.1)
"""Enough tries to span a few seconds of outage (a bit over 20 s at most)."""


def _results(step: int, ids: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, pid in enumerate(ids):
        k = zlib.crc32(f"{step}:{pid}".encode()) % 9
        if n % 3 == 0:
            out.append({"prompt_id": pid, "correct": k, "total": 8})
        elif n % 3 == 1:
            out.append({"prompt_id": pid, "rewards": [1.0] * k + [0.0] * (8 - k)})
        else:
            out.append({"prompt_id": pid, "pass_rate": k / 8, "total": 8})
    return out


def _without_duplicates(
    state: tuple[dict[str, Any], dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run's logical state without its duplicates counter: a retry whose first attempt was
    applied (the answer lost with the dying store) is counted there, and changes nothing else."""
    meta, arrays = state
    return ({**meta, "counts": {**meta["counts"], "duplicates": 0}}, arrays)


# ---------------------------------------------------------------------------- (a) store outage


class Trainer(threading.Thread):
    """Steps one run until told to stop (and at least ``min_steps``), recording every answer."""

    def __init__(self, api: Any, run_id: str, strategy: str, min_steps: int) -> None:
        super().__init__(daemon=True)
        self.api = api
        self.run_id = run_id
        self.strategy = strategy
        self.min_steps = min_steps
        self.stop_after = threading.Event()
        self.steps: list[tuple[float, float, list[str], cdas.ReportOutcome]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.api.put_run(self.run_id, strategy=self.strategy, seed=7, prompts=500)
            step = 0
            while step < self.min_steps or not self.stop_after.is_set():
                started = time.monotonic()
                batch = self.api.next_batch(self.run_id, step, 16)
                outcome = self.api.report_results(
                    self.run_id, step, _results(step, batch.prompt_ids)
                )
                self.steps.append((started, time.monotonic(), batch.prompt_ids, outcome))
                step += 1
                if step > 5000:
                    raise RuntimeError("the outage never ended")
        except BaseException as exc:  # reported by the test thread
            self.error = exc


def test_trainers_step_through_a_redis_outage_and_apply_every_result_once(
    tmp_path: Path,
) -> None:
    server = RedisServer(
        tmp_path / "redis", None, "--appendonly", "yes", "--appendfsync", "always"
    ).start()
    try:
        with (
            serve_process("--store", server.url) as served,
            RestClient(served.url, retry=PATIENT) as rest,
            GrpcClient(served.target, retry=PATIENT) as over_grpc,
        ):
            trainers = [
                Trainer(rest, "rest-run", "cdas", 8),
                Trainer(over_grpc, "grpc-run", "prioritized", 8),
            ]
            for trainer in trainers:
                trainer.start()
            deadline = time.monotonic() + 30
            while any(len(t.steps) < 3 for t in trainers) and time.monotonic() < deadline:
                assert all(t.error is None for t in trainers), [t.error for t in trainers]
                time.sleep(0.01)
            assert all(len(t.steps) >= 3 for t in trainers)

            down = time.monotonic()
            server.kill()
            time.sleep(1.0)
            server.start()
            up = time.monotonic()
            steps_at_restart = [len(t.steps) for t in trainers]
            deadline = time.monotonic() + 60
            while (
                any(len(t.steps) < n + 3 for t, n in zip(trainers, steps_at_restart, strict=True))
                and all(t.error is None for t in trainers)
                and time.monotonic() < deadline
            ):
                time.sleep(0.02)
            for trainer in trainers:
                trainer.stop_after.set()
                trainer.join(timeout=60)
                assert trainer.error is None, trainer.error
                assert not trainer.is_alive()

            # the outage stalled the trainers (their calls were retried), and they went on
            for trainer in trainers:
                stalled = [end - start for start, end, _, _ in trainer.steps if start < up]
                assert max(stalled) > 0.5, f"{trainer.run_id} never waited for the store"
                assert any(start > up for start, _, _, _ in trainer.steps)
                assert any(start < down for start, _, _, _ in trainer.steps)

            remote = {t.run_id: (rest.get_run(t.run_id), rest.snapshot(t.run_id)) for t in trainers}
    finally:
        server.stop()

    # a library run doing the same steps: the same batches, every result applied exactly once
    library = cdas.Coordinator(cdas.MemoryStore())
    for trainer in trainers:
        library.put_run(trainer.run_id, strategy=trainer.strategy, seed=7, prompts=500)
        for step, (_, _, prompt_ids, outcome) in enumerate(trainer.steps):
            batch = library.next_batch(trainer.run_id, step, 16)
            assert batch.prompt_ids == prompt_ids, (trainer.run_id, step)
            expected = library.report_results(trainer.run_id, step, _results(step, prompt_ids))
            assert outcome.applied + outcome.duplicates == len(prompt_ids)
            assert outcome.competence == expected.competence, (trainer.run_id, step)
        info, snapshot = remote[trainer.run_id]
        reported = {(step, pid) for step, (_, _, ids, _) in enumerate(trainer.steps) for pid in ids}
        assert info.results == len(reported) == library.get_run(trainer.run_id).results
        assert info.rollouts == library.get_run(trainer.run_id).rollouts
        assert info.step == len(trainer.steps) - 1
        restored = cdas.Coordinator(cdas.MemoryStore())
        restored.restore(trainer.run_id, snapshot)
        assert_same_state(
            _without_duplicates(logical_state(restored, trainer.run_id)),
            _without_duplicates(logical_state(library, trainer.run_id)),
        )


# ---------------------------------------------------------------------------- (b) late service


def test_clients_wait_for_a_coordinator_that_starts_late() -> None:
    port, grpc_port = free_port(), free_port()
    url, target = f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}"

    # nothing listens: without retries the call fails at once, with the typed error
    once = RetryPolicy(attempts=1)
    with RestClient(url, retry=once) as rest, GrpcClient(target, retry=once) as over_grpc:
        for api in (rest, over_grpc):
            started = time.monotonic()
            with pytest.raises(cdas.StoreUnavailableError) as info:
                api.put_run("late", prompts=100)
            assert isinstance(info.value, ServiceUnavailableError)
            assert time.monotonic() - started < 5

    answers: dict[str, Any] = {}
    errors: list[BaseException] = []

    def trainer(name: str, make: Callable[[], Any]) -> None:
        try:
            with make() as api:
                started = time.monotonic()
                run = api.put_run(f"late-{name}", prompts=100, seed=3)
                waited = time.monotonic() - started
                batch = api.next_batch(f"late-{name}", 0, 8)
                outcome = api.report_results(f"late-{name}", 0, _results(0, batch.prompt_ids))
                answers[name] = (waited, run.created, batch.prompt_ids, outcome)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [
        threading.Thread(target=trainer, args=("rest", lambda: RestClient(url, retry=PATIENT))),
        threading.Thread(target=trainer, args=("grpc", lambda: GrpcClient(target, retry=PATIENT))),
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    assert not answers, "a call succeeded before the coordinator started"
    with serve_process("--port", str(port), "--grpc-port", str(grpc_port)) as served:
        assert (served.port, served.grpc_port) == (port, grpc_port)
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        with RestClient(url) as rest:
            runs = {r.run_id: r for r in rest.list_runs()}

    library = cdas.Coordinator(cdas.MemoryStore())
    for name in ("rest", "grpc"):
        waited, created, prompt_ids, outcome = answers[name]
        assert waited > 0.9
        assert created
        library.put_run(f"late-{name}", prompts=100, seed=3)
        assert library.next_batch(f"late-{name}", 0, 8).prompt_ids == prompt_ids
        expected = library.report_results(f"late-{name}", 0, _results(0, prompt_ids))
        assert outcome == expected
        assert runs[f"late-{name}"].results == 8


# ---------------------------------------------------------------------------- (c) injected faults


def _error_response(status: int, code: str, message: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "details": {}}}
    return httpx.Response(status, json=body)


class Faults:
    """An ``httpx.MockTransport`` handler: each request is answered by the next planned fault,
    or forwarded to the real service once the plan is used up."""

    def __init__(self, plan: list[str] | Callable[[httpx.Request], str | None]) -> None:
        self.plan = plan
        self.requests: list[tuple[str, str]] = []

    def _next(self, request: httpx.Request) -> str | None:
        if callable(self.plan):
            return self.plan(request)
        return self.plan.pop(0) if self.plan else None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        fault = self._next(request)
        if fault == "503":
            return _error_response(503, "store_unavailable", "store unreachable: injected")
        if fault == "proxy-503":
            return httpx.Response(503, text="<html>upstream unavailable</html>")
        if fault == "422":
            return _error_response(422, "invalid_argument", "step is -1; injected")
        if fault == "refused":
            raise httpx.ConnectError("injected: connection refused", request=request)
        request.read()
        with httpx.Client(timeout=30) as forward:
            response = forward.send(request)
        if fault == "lost-answer":
            raise httpx.ReadTimeout("injected: the answer was lost", request=request)
        return httpx.Response(
            response.status_code,
            content=response.content,
            headers={"content-type": response.headers.get("content-type", "")},
        )


@pytest.fixture
def service_url() -> Iterator[tuple[cdas.Coordinator, str]]:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    coordinator.put_run("faults", prompts=50, seed=1)
    with running_service(coordinator) as service:
        yield coordinator, rest_url(service.bound)


QUICK = RetryPolicy(attempts=5, initial=0.01, max_delay=0.02)


def _client(url: str, faults: Faults, retry: RetryPolicy = QUICK) -> RestClient:
    return RestClient(url, retry=retry, transport=httpx.MockTransport(faults))


def test_store_unavailable_answers_are_retried_until_the_call_succeeds(
    service_url: tuple[cdas.Coordinator, str],
) -> None:
    coordinator, url = service_url
    faults = Faults(["503", "503"])
    with _client(url, faults) as client:
        run = client.put_run("retried", prompts=20, seed=2)
    assert run.created
    assert len(faults.requests) == 3
    assert coordinator.get_run("retried").size == 20

    faults = Faults(["proxy-503", "refused"])
    with _client(url, faults) as client:
        batch = client.next_batch("faults", 0, 5)
    assert len(faults.requests) == 3
    assert batch.prompt_ids == coordinator.next_batch("faults", 0, 5).prompt_ids


def test_retries_stop_after_the_policys_attempts(
    service_url: tuple[cdas.Coordinator, str],
) -> None:
    _, url = service_url
    faults = Faults(lambda request: "503")
    with (
        _client(url, faults, RetryPolicy(attempts=3, initial=0.01)) as client,
        pytest.raises(cdas.StoreUnavailableError) as info,
    ):
        client.get_run("faults")
    assert type(info.value) is cdas.StoreUnavailableError
    assert info.value.message == "store unreachable: injected"
    assert len(faults.requests) == 3


def test_an_invalid_argument_answer_is_not_retried(
    service_url: tuple[cdas.Coordinator, str],
) -> None:
    coordinator, url = service_url
    faults = Faults(lambda request: "422")
    with (
        _client(url, faults) as client,
        pytest.raises(cdas.InvalidArgumentError, match="step is -1; injected"),
    ):
        client.report_results("faults", 0, [{"prompt_id": "1", "correct": 1, "total": 2}])
    assert len(faults.requests) == 1
    assert coordinator.get_run("faults").results == 0


def test_add_prompts_with_a_count_is_not_repeated_after_an_ambiguous_failure(
    service_url: tuple[cdas.Coordinator, str],
) -> None:
    coordinator, url = service_url
    before = coordinator.get_run("faults").size
    faults = Faults(lambda request: "lost-answer")
    with _client(url, faults) as client, pytest.raises(ServiceUnavailableError):
        client.add_prompts("faults", 7)
    assert len(faults.requests) == 1
    assert coordinator.get_run("faults").size == before + 7  # applied once, not repeated

    # idempotent calls are retried after the same failure, and answer as if asked once
    faults = Faults(["lost-answer", "forward", "lost-answer", "forward"])
    with _client(url, faults) as client:
        batch = client.next_batch("faults", 3, 6)
        outcome = client.report_results("faults", 3, _results(3, batch.prompt_ids))
    assert len(faults.requests) == 4
    assert batch.prompt_ids == coordinator.next_batch("faults", 3, 6).prompt_ids
    assert (outcome.applied, outcome.duplicates) == (0, 6)  # the lost first try applied them
    assert coordinator.get_run("faults").results == 6

    # and so is advance, the two in one call
    batch = coordinator.next_batch("faults", 4, 6)
    faults = Faults(["lost-answer", "forward"])
    with _client(url, faults) as client:
        answer = client.advance("faults", 4, _results(4, batch.prompt_ids), 6)
    assert len(faults.requests) == 2
    assert (answer.report.applied, answer.report.duplicates) == (0, 6)
    assert answer.batch == coordinator.next_batch("faults", 5, 6)
    assert coordinator.get_run("faults").results == 12

    # add_prompts is retried when surely not applied: refused, or the store said unreachable
    faults = Faults(["refused", "503"])
    with _client(url, faults) as client:
        size = client.add_prompts("faults", ["x-1", "x-2"])
    assert len(faults.requests) == 3
    assert size == coordinator.get_run("faults").size == before + 9


def test_the_async_client_retries_an_unavailable_store_in_process() -> None:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    app = create_app(coordinator)
    seen: list[str] = []

    async def main() -> tuple[cdas.RunInfo, int]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://cdas.test"
        ) as inner:

            async def handler(request: httpx.Request) -> httpx.Response:
                seen.append(request.url.path)
                if len(seen) <= 2:
                    return _error_response(503, "store_unavailable", "injected")
                await request.aread()
                answer = await inner.send(request)
                await answer.aread()
                return httpx.Response(
                    answer.status_code, content=answer.content, headers={"content-type": JSON}
                )

            async with AsyncRestClient(
                "http://cdas.test", retry=QUICK, transport=httpx.MockTransport(handler)
            ) as client:
                run = await client.put_run("async", prompts=30)
                with pytest.raises(cdas.RunNotFoundError):
                    await client.get_run("absent")
                return run, len(seen)

    run, requests = asyncio.run(main())
    assert run.created
    assert requests == 4
    assert coordinator.get_run("async").size == 30


def test_an_invalid_request_answers_the_contract_s_error_body(
    service_url: tuple[cdas.Coordinator, str],
) -> None:
    _, url = service_url
    answer = httpx.post(f"{url}/v1/runs/faults/batches", json={"step": -1, "size": 2})
    assert answer.status_code == 422
    error = json.loads(answer.content)["error"]
    assert error["code"] == "invalid_argument"
    assert "-1" in error["message"]


def test_a_time_budget_keeps_retrying_past_the_attempt_count() -> None:
    """``for_seconds``: trainers ride out a coordinator restart by time, not by a count."""
    with pytest.raises(ValueError, match="for_seconds must be >= 0, got -1"):
        RetryPolicy(for_seconds=-1)
    with pytest.raises(ValueError, match="attempts must be >= 1, got 0"):
        RetryPolicy(attempts=0)
    policy = RetryPolicy(attempts=2, initial=0.01, max_delay=0.02, for_seconds=0.6)
    error = ServiceUnavailableError("down")
    assert policy.should_retry(error, attempt=50, idempotent=True, elapsed=0.5)
    assert not policy.should_retry(error, attempt=1, idempotent=True, elapsed=0.6)
    client = RestClient(f"http://127.0.0.1:{free_port()}", retry=policy)  # nothing listens
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError):
        client.get_run("r")
    assert time.monotonic() - started >= 0.6  # 2 attempts at <= 20 ms apart would stop at once
    client.close()


def test_connect_picks_the_client_by_scheme() -> None:
    from cdas.client import connect

    rest = connect("http://127.0.0.1:8000/", "t")
    assert isinstance(rest, RestClient)
    assert str(rest._http.base_url) == "http://127.0.0.1:8000"
    rest.close()
    grpc_client = connect("grpc://127.0.0.1:50051")
    assert isinstance(grpc_client, GrpcClient)
    grpc_client.close()
    with pytest.raises(ValueError, match="coordinator URL 'coordinator:8000' must start with"):
        connect("coordinator:8000")
