"""The OpenAI-compatible backend against a real HTTP server: a small FastAPI app served by uvicorn
on a free port, implementing ``/v1/completions`` (a list of prompts, ``n`` choices each) on top of
the tiny model with transformers, as ``vllm serve`` does on top of vLLM."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import uvicorn
from cdas_rollout.backends import (
    BackendError,
    OpenAIBackend,
    SamplingSettings,
    TransformersBackend,
    make_backend,
)
from cdas_rollout.dataset import load_dataset
from cdas_rollout.grading import grade
from cdas_rollout.worker import RolloutWorker, WorkerConfig
from fastapi import Body, FastAPI, HTTPException

import cdas
from cdas.client import RestClient
from tests.redis_servers import free_port
from tests.services import rest_url, running_service
from tests.tiny_lm import MathLM, build_math_lm

SERVED_NAME = "tiny-math"


# torch's own lazily imported modules (torch.utils.mkldnn) warn about torch.jit on import
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)


@pytest.fixture(scope="session")
def math_lm(tmp_path_factory: pytest.TempPathFactory) -> MathLM:
    """The tiny model taught 24 math12k prompts (built once per session, cached on disk)."""
    return build_math_lm(tmp_path_factory.getbasetemp() / "tiny-math-lm")


class CompletionsServer:
    """``POST /v1/completions`` on the tiny model. It records each request and the groups it
    generated, and returns the choices in reverse order: a client must group them by ``index``
    (prompt i's j-th choice has index i * n + j), not by position."""

    def __init__(self, model: Path) -> None:
        self.engine = TransformersBackend(model, SamplingSettings(seed=0))
        self.requests: list[dict[str, Any]] = []
        self.generated: list[list[list[str]]] = []
        app = FastAPI()

        @app.post("/v1/completions")
        def completions(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
            self.requests.append(body)
            if body.get("model") != SERVED_NAME:
                raise HTTPException(400, f"unknown model {body.get('model')!r}")
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            n = int(body.get("n", 1))
            self.engine.sampling = SamplingSettings(
                max_new_tokens=int(body.get("max_tokens", 16)),
                temperature=float(body.get("temperature", 1.0)),
                top_p=float(body.get("top_p", 1.0)),
            )
            groups = self.engine.generate(prompts, n)
            self.generated.append(groups)
            choices = [
                {"index": i * n + j, "text": text, "logprobs": None, "finish_reason": "stop"}
                for i, group in enumerate(groups)
                for j, text in enumerate(group)
            ]
            return {
                "id": f"cmpl-{len(self.requests)}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": SERVED_NAME,
                "choices": choices[::-1],
            }

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )

    def __enter__(self) -> CompletionsServer:
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the completions server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def completions_server(math_lm: MathLM) -> Iterator[CompletionsServer]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with CompletionsServer(math_lm.model) as server:
        yield server
    torch.set_num_threads(threads)


def test_worker_runs_steps_through_an_openai_compatible_server(
    math_lm: MathLM, completions_server: CompletionsServer, tmp_path: Path
) -> None:
    dataset = load_dataset(math_lm.data)
    backend = make_backend(
        "openai",
        SERVED_NAME,
        SamplingSettings(max_new_tokens=24, temperature=1.0),
        url=completions_server.url + "/v1",
        tokenizer=str(math_lm.model),  # the chat template, applied on the worker's side
    )
    assert isinstance(backend, OpenAIBackend)
    completions_server.requests.clear()
    completions_server.generated.clear()
    with (
        running_service(cdas.Coordinator(cdas.MemoryStore())) as service,
        RestClient(rest_url(service.bound)) as client,
    ):
        client.put_run("openai", strategy="cdas", prompts=len(dataset))
        config = WorkerConfig("openai", 6, 3, state_dir=tmp_path / "state", keep_completions=True)
        reports = RolloutWorker(client, dataset, backend, config).run(2)
        assert [r.step for r in reports] == [1, 2]
        assert len(completions_server.requests) == 2  # one request per step, n choices each
        for report, request, generated in zip(
            reports, completions_server.requests, completions_server.generated, strict=True
        ):
            assert request["n"] == 3
            assert request["max_tokens"] == 24
            assert request["model"] == SERVED_NAME
            expected_prompts = [
                backend.tokenizer.apply_chat_template(
                    dataset[pid].prompt, tokenize=False, add_generation_prompt=True
                )
                for pid in report.prompt_ids
            ]
            assert request["prompt"] == expected_prompts
            assert expected_prompts[0].endswith("<|im_start|>assistant\n")
            # grouped by index although the server sent them reversed
            assert report.completions == generated
            for pid, texts, rewards in zip(
                report.prompt_ids, report.completions or [], report.rewards, strict=True
            ):
                assert rewards == [grade(t, dataset[pid].answer) for t in texts]
                prompt = client.get_prompt("openai", pid)
                assert prompt.updates == 1
                assert prompt.last_pass_rate == sum(r > 0.5 for r in rewards) / 3
        assert client.get_run("openai").rollouts == 2 * 6 * 3
        # the tiny model really answers through HTTP: some right answers came back
        assert sum(sum(g) for r in reports for g in r.rewards) > 0


def test_server_errors_and_an_unreachable_server_are_backend_errors(
    completions_server: CompletionsServer,
) -> None:
    wrong_model = OpenAIBackend(completions_server.url, "no-such-model", SamplingSettings())
    with pytest.raises(BackendError, match=r"HTTP 400.*no-such-model"):
        wrong_model.generate(["hi"], 2)
    down = OpenAIBackend(
        f"http://127.0.0.1:{free_port()}", SERVED_NAME, SamplingSettings(), retry_for=0.5
    )
    started = time.monotonic()
    with pytest.raises(BackendError, match="unreachable"):
        down.generate(["hi"], 2)
    assert time.monotonic() - started >= 0.5  # it kept retrying for retry_for seconds


def test_sampling_settings_reach_the_server(completions_server: CompletionsServer) -> None:
    settings = SamplingSettings(max_new_tokens=5, temperature=0.0, top_p=0.5, top_k=7)
    backend = OpenAIBackend(completions_server.url, SERVED_NAME, settings)
    completions_server.requests.clear()
    groups = backend.generate(["a", "b", "c"], 2)
    assert [len(g) for g in groups] == [2, 2, 2]
    request = completions_server.requests[-1]
    assert {k: request[k] for k in ("max_tokens", "temperature", "top_p", "top_k", "n")} == {
        "max_tokens": 5,
        "temperature": 0.0,
        "top_p": 0.5,
        "top_k": 7,
        "n": 2,
    }
    # temperature 0 is greedy on the server: both choices of a prompt agree
    assert all(g[0] == g[1] for g in groups)
