"""OpenRLHF 0.11.2 trains on the coordinator's prompts: its own code, on this CPU machine.

``cdas-openrlhf``'s launcher runs with real flags; OpenRLHF parses them, loads the prompts with its
``PromptDataset`` and chat template, runs ``PPOTrainer.fit``, its samples generator (with dynamic
filtering), experience making and GRPO advantages, and saves and restores checkpoint states. Only
``ray``, ``vllm`` and ``flash_attn`` are stood in for (``tests.gpu_stubs``), and with them the Ray
actors (``tests.openrlhf_harness``: engines that answer with a per-prompt share of right answers,
graded by the real reward file with math-verify; model groups that record what PPO received).
The coordinator is real: REST, on a real Redis.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import gpu_stubs

gpu_stubs.install()

import cdas_openrlhf.reward  # noqa: E402
import openrlhf.trainer.ray as openrlhf_ray  # noqa: E402
import openrlhf.trainer.ray.launcher as openrlhf_launcher  # noqa: E402
from cdas_openrlhf import launch  # noqa: E402
from openrlhf.trainer import ppo_trainer as upstream  # noqa: E402

import cdas  # noqa: E402
from cdas.client.prompt_ids import prompt_ids  # noqa: E402
from cdas.service.process import ServeProcess, serve_process  # noqa: E402
from cdas.sim.dataset import SHIPPED  # noqa: E402
from tests import openrlhf_harness as harness  # noqa: E402
from tests.redis_servers import RedisServer, free_port  # noqa: E402
from tests.services import rest_url, running_service  # noqa: E402
from tests.tiny_lm import build_tokenizer  # noqa: E402

MATH12K = SHIPPED  # data/math12k.parquet
ROWS = 48
B, G = 8, 4
REWARD_FILE = cdas_openrlhf.reward.__file__


@dataclass
class Data:
    path: Path
    rows: list[dict[str, Any]]
    tokenizer_dir: Path
    text_of: dict[str, str]
    """prompt id (content hash) -> the prompt as OpenRLHF renders it (chat template)."""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    """The first 48 math12k prompts as a jsonl without an id column, and a tokenizer."""
    root = tmp_path_factory.mktemp("openrlhf")
    table = pq.read_table(MATH12K).slice(0, ROWS).to_pylist()
    rows = [{"prompt": r["prompt"], "answer": r["reward_model"]["ground_truth"]} for r in table]
    path = root / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tokenizer = build_tokenizer([m["content"] for r in rows for m in r["prompt"]])
    tokenizer.save_pretrained(root / "tokenizer")
    ids = prompt_ids(rows, "id", "prompt", "answer")
    text_of = {
        pid: tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
        for pid, r in zip(ids, rows, strict=True)
    }
    assert len(set(text_of.values())) == ROWS
    return Data(path, rows, root / "tokenizer", text_of)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    url = f"{redis_server.url}/14"
    store = cdas.RedisStore(url)
    store.client.flushdb()
    yield url
    store.client.flushdb()
    store.close()


@pytest.fixture
def coordinator(redis_url: str) -> Iterator[tuple[str, cdas.Coordinator]]:
    """A real REST coordinator on Redis (its URL), and the library on the same Redis."""
    library = cdas.Coordinator(cdas.RedisStore(redis_url))
    with running_service(cdas.Coordinator(cdas.RedisStore(redis_url))) as service:
        yield rest_url(service.bound), library


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stand-ins in OpenRLHF's two actor factories; the launcher's process-wide changes
    (environment, argv, the swapped PPOTrainer) undone afterwards."""
    monkeypatch.setattr(openrlhf_ray, "create_vllm_engines", harness.create_engines)
    monkeypatch.setattr(openrlhf_launcher, "RayActorGroup", harness.StandInGroup)
    monkeypatch.setattr(upstream, "PPOTrainer", upstream.PPOTrainer)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    environ = dict(os.environ)
    harness.RECORDER.__init__()  # type: ignore[misc]
    yield
    os.environ.clear()
    os.environ.update(environ)


def train(
    data: Data, tmp: Path, url: str, run: str, *extra: str, on_fit: Any = None
) -> harness.Recorder:
    """``cdas-openrlhf`` with a small GRPO configuration; returns what the actors saw (one
    recorder for the module: copy what a test keeps before the next launch)."""
    harness.RECORDER.__init__()  # type: ignore[misc]
    harness.RECORDER.on_fit = on_fit
    argv = [
        "--coordinator.url", url,
        "--coordinator.run", run,
        "--coordinator.retry_for", "60",
        "--actor.model_name_or_path", str(data.tokenizer_dir),
        "--data.prompt_dataset", str(data.path),
        "--data.input_key", "prompt",
        "--data.label_key", "answer",
        "--data.apply_chat_template",
        "--rollout.batch_size", str(B),
        "--rollout.n_samples_per_prompt", str(G),
        "--rollout.micro_batch_size", "8",
        "--train.batch_size", str(B * G),
        "--train.micro_batch_size", "4",
        "--rollout.max_new_tokens", "32",
        "--data.max_len", "1024",
        "--algo.advantage.estimator", "group_norm",
        "--algo.kl.init_coef", "0",
        "--reward.remote_url", REWARD_FILE,
        "--vllm.num_engines", "1",
        "--actor.num_nodes", "1",
        "--actor.num_gpus_per_node", "1",
        "--ckpt.path", str(tmp / "ckpt"),
        *extra,
    ]  # fmt: skip
    launch.main(argv)
    return harness.RECORDER


def engine_groups(recorder: harness.Recorder) -> dict[str, list[list[float]]]:
    (engine,) = recorder.engines
    return engine.rewards


def zero_gradient(rewards: list[float]) -> bool:
    return min(rewards) == max(rewards)


def requests(url: str) -> Counter[str]:
    """The service's answered requests by operation (its ``/metrics``: the request latency
    histogram's counts, REST and gRPC together)."""
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        if family.name == "cdas_request_duration_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    counts[sample.labels["operation"]] += int(sample.value)
    return counts


def test_grpo_trains_on_the_coordinators_batches_and_posts_every_group(
    data: Data, tmp_path: Path, coordinator: tuple[str, cdas.Coordinator]
) -> None:
    url, library = coordinator
    recorder = train(data, tmp_path, url, "grpo", "--coordinator.steps_per_episode", "3")
    groups = engine_groups(recorder)
    # step t's groups go with step t + 1's batch in one call; the episode's last step is posted
    # on its own, and no batch is asked for a step that never comes
    calls = requests(url)
    assert (calls["next_batch"], calls["advance"], calls["report_results"]) == (1, 2, 1)

    # the engine's answers were graded by math-verify as scripted: k right, G - k wrong
    for text, runs in groups.items():
        k = harness.right_answers(text, G)
        assert all(r == [1.0] * k + [0.0] * (G - k) for r in runs), (text[:60], runs)
    assert {harness.right_answers(t, G) for t in groups} >= {0, G}, "want all-right and all-wrong"

    assert len(recorder.trained) == 3
    served: Counter[str] = Counter()
    for step, trained in enumerate(recorder.trained):
        batch = library.next_batch("grpo", step, B)  # idempotent: the batch the trainer got
        texts = [data.text_of[p] for p in batch.prompt_ids]
        assert Counter(trained) == Counter(dict.fromkeys(texts, G)), f"step {step}"
        served.update(batch.prompt_ids)
        # GRPO's group-normalised advantages: zero exactly for the zero-variance groups
        for text, advantage in zip(trained, recorder.advantages[step], strict=True):
            assert (abs(advantage) < 1e-6) == zero_gradient(groups[text][0]), text[:60]
        for pid in batch.prompt_ids:
            info = library.get_prompt("grpo", pid)
            assert info.last_step == step
            assert info.last_pass_rate == pytest.approx(sum(groups[data.text_of[pid]][-1]) / G)
    for pid, times in served.items():
        assert library.get_prompt("grpo", pid).updates == times
    run = library.get_run("grpo")
    assert (run.strategy, run.size, run.step) == ("cdas", ROWS, 2)
    assert (run.results, run.duplicates, run.rollouts) == (3 * B, 0, 3 * B * G)
    state = library.get_state("grpo")
    assert [h.step for h in state.history] == [0, 1, 2]
    assert all(h.rollouts == B * G for h in state.history)


def served_in_step(
    rounds: list[list[str]], keep: dict[str, bool], b: int
) -> tuple[list[str], list[str]]:
    """Which prompts a dynamically filtered step draws, and which it keeps: the first B, then one
    refill per dropped group, round after round, until B are kept or the rounds run out."""
    queue = [p for r in rounds for p in r]
    drawn = b
    while True:
        dropped = sum(1 for p in queue[:drawn] if not keep[p])
        if b + dropped <= drawn or drawn >= len(queue):
            break
        drawn = min(b + dropped, len(queue))
    return queue[:drawn], [p for p in queue[:drawn] if keep[p]]


def test_dynamic_filtering_refills_from_further_rounds_and_posts_the_dropped_groups(
    data: Data, tmp_path: Path, coordinator: tuple[str, cdas.Coordinator]
) -> None:
    url, library = coordinator
    rounds_allowed = 3
    recorder = train(
        data, tmp_path, url, "dapo",
        "--coordinator.steps_per_episode", "2",
        "--coordinator.max_rounds", str(rounds_allowed),
        "--algo.dynamic_filtering_enable",
    )  # fmt: skip
    keep = {p: 0 < harness.right_answers(t, G) < G for p, t in data.text_of.items()}
    state = library.get_state("dapo")
    assert len(recorder.trained) == 2
    for step, trained in enumerate(recorder.trained):
        rounds_used = state.history[step].batch_size // B
        assert 1 <= rounds_used <= rounds_allowed
        rounds = [library.next_batch("dapo", step, B, r).prompt_ids for r in range(rounds_used)]
        served, kept = served_in_step(rounds, keep, B)
        assert len(served) > B, "some groups were dropped and refilled"
        # PPO got exactly the kept groups, whole; the coordinator got every group
        assert Counter(trained) == Counter({data.text_of[p]: G for p in kept})
        for pid in served:
            info = library.get_prompt("dapo", pid)
            assert info.last_step == step
            expected = harness.right_answers(data.text_of[pid], G) / G
            assert info.last_pass_rate == pytest.approx(expected)
        assert state.history[step].rollouts == len(served) * G
        if len(kept) < B:  # the rounds ran out before B groups were kept
            assert rounds_used == rounds_allowed
    assert library.get_run("dapo").duplicates == 0


def test_a_resumed_run_continues_at_its_checkpoints_step_like_an_uninterrupted_one(
    data: Data, tmp_path: Path, coordinator: tuple[str, cdas.Coordinator]
) -> None:
    url, library = coordinator
    common = ("--coordinator.steps_per_episode", "2", "--ckpt.save_steps", "1")
    first = train(data, tmp_path / "a", url, "resumed", *common, "--train.num_episodes", "1")
    before = list(first.trained)
    assert len(before) == 2
    assert first.checkpoints[-1]["global_step"] == 2
    assert first.checkpoints[-1]["data_loader_state_dict"]["step"] == 2
    second = train(
        data, tmp_path / "a", url, "resumed", *common,
        "--train.num_episodes", "2", "--ckpt.load_enable",
    )  # fmt: skip
    after = list(second.trained)  # (one recorder: copy before the next launch resets it)
    whole = train(data, tmp_path / "b", url, "whole", *common, "--train.num_episodes", "2")
    assert len(after) == 2, "the restart trained steps 2 and 3 only"
    assert before + after == list(whole.trained)
    a, b = library.get_state("resumed"), library.get_state("whole")
    assert [h.step for h in a.history] == [0, 1, 2, 3]
    assert a.competence == b.competence
    assert [h.to_dict() for h in a.history] == [h.to_dict() for h in b.history]
    assert library.get_run("resumed").duplicates == 0


def test_the_loader_rides_out_a_coordinator_outage_without_losing_or_repeating_results(
    data: Data, tmp_path: Path, redis_url: str
) -> None:
    """``cdas serve`` on Redis goes away after the first PPO update and comes back on the same port
    2 s later; the loader's next call waits for it, and every group is applied exactly once."""
    library = cdas.Coordinator(cdas.RedisStore(redis_url))
    port = free_port()
    args = ("--store", redis_url, "--port", str(port))
    times: dict[str, float] = {}
    with ExitStack() as stack:
        servers: list[ServeProcess] = [stack.enter_context(serve_process(*args))]

        def restart() -> None:
            time.sleep(2.0)
            servers.append(stack.enter_context(serve_process(*args)))
            times["back"] = time.monotonic()

        def outage(updates: int) -> None:
            if updates == 1:
                assert servers[0].terminate() == 0
                times["down"] = time.monotonic()
                threading.Thread(target=restart, daemon=True).start()

        recorder = train(
            data, tmp_path, f"http://127.0.0.1:{port}", "outage",
            "--coordinator.steps_per_episode", "3", on_fit=outage,
        )  # fmt: skip
        times["done"] = time.monotonic()
        assert len(servers) == 2
    assert times["down"] + 2.0 <= times["back"] <= times["done"]
    assert len(recorder.trained) == 3  # step 1's results and step 2 went to the restarted one
    run = library.get_run("outage")
    assert (run.step, run.results, run.duplicates, run.rollouts) == (2, 3 * B, 0, 3 * B * G)
    assert [h.step for h in library.get_state("outage").history] == [0, 1, 2]
    served = Counter(
        p for step in range(3) for p in library.next_batch("outage", step, B).prompt_ids
    )
    for pid in data.text_of:
        assert library.get_prompt("outage", pid).updates == served[pid]


def test_evaluation_runs_through_the_same_generator_but_is_not_reported(
    data: Data, tmp_path: Path, coordinator: tuple[str, cdas.Coordinator]
) -> None:
    url, library = coordinator
    recorder = train(
        data, tmp_path, url, "evaluated",
        "--coordinator.steps_per_episode", "2",
        "--eval.dataset", str(data.path),
        "--eval.steps", "1",
        "--eval.n_samples_per_prompt", str(G),
    )  # fmt: skip
    (engine,) = recorder.engines
    assert engine.calls == 2 * B + 2 * ROWS  # two training steps, two evaluations of every row
    run = library.get_run("evaluated")
    assert (run.results, run.rollouts) == (2 * B, 2 * B * G)


def test_the_trainer_subclasses_the_class_inside_rays_actor_wrapper() -> None:
    """Under real Ray, ``PPOTrainer`` is an ``ActorClass`` whose ``__ray_metadata__.modified_class``
    derives from the user's class and names it as ``__ray_actor_class__``."""
    from cdas_openrlhf.trainer import CoordinatorPPOTrainer, unwrap_actor_class

    class Original:
        pass

    class Modified(Original):
        __ray_actor_class__ = Original

    class ActorClass:
        __ray_metadata__ = type("Metadata", (), {"modified_class": Modified})

    assert unwrap_actor_class(ActorClass) is Original
    assert unwrap_actor_class(Original) is Original
    assert issubclass(CoordinatorPPOTrainer, unwrap_actor_class(upstream.PPOTrainer))
