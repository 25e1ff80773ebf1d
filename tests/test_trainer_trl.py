"""TRL 1.16's ``GRPOTrainer`` trains on the coordinator's prompts: its own code, on this CPU.

``CoordinatorGRPOTrainer`` runs TRL's whole loop (dataloader, generation with ``transformers``,
reward functions, GRPO loss and optimizer, evaluation, checkpoints and ``resume_from_checkpoint``)
with a tiny Qwen2 model built in the test (``tests.tiny_lm``, no download). The coordinator is
real: the library in process, and ``cdas serve`` on a real Redis over REST and gRPC.

What TRL generated on is recorded by a reward function (it sees every generation batch's rows, in
TRL's order: each prompt ``G`` times in a row). The rewards depend only on the prompt and the
completion's place in its group, so two runs that get the same prompts get the same results,
whatever the model sampled; the coordinator's state then tells whether a run was resumed right.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from tests import gpu_stubs

with gpu_stubs.hidden():  # TRL probes for vLLM on import: the OpenRLHF tests' stand-in is none
    import trl.trainer.grpo_trainer  # noqa: F401

from cdas_trl import (
    CheckpointStateError,
    CoordinatorGRPOTrainer,
    CoordinatorSettings,
    CoordinatorUnreachableError,
    SettingsError,
    TRLVersionError,
    UnsupportedSetupError,
    check_trl_version,
)
from cdas_trl.batches import (
    PromptColumnError,
    dataset_prompt_ids,
    generation_rows,
    group_results,
)
from cdas_trl.trainer import SNAPSHOT_FILE, STATE_FILE
from datasets import Dataset, IterableDataset
from transformers import AutoTokenizer, TrainerCallback
from trl.trainer.grpo_config import GRPOConfig

import cdas
from cdas.client.prompt_ids import PromptIdError, prompt_ids
from cdas.service.process import serve_process
from tests.conftest import assert_same_state, logical_state
from tests.recording import CallLog
from tests.redis_servers import RedisServer, free_port
from tests.tiny_lm import build_tiny_lm


@pytest.fixture(autouse=True)
def _no_gpu_stand_ins() -> Iterator[None]:
    """TRL also asks for vLLM while it trains: the stand-ins stay hidden for these tests."""
    with gpu_stubs.hidden():
        yield


ROWS, G = 12, 2
WEIGHTS = [1.0, 0.5]


def row(i: int) -> dict[str, Any]:
    return {"qid": f"q{i}", "prompt": f"Question {i}: what is {i} plus {i}?", "answer": str(2 * i)}


def right_answers(qid: str) -> int:
    """How many of a group's G completions the ``correct`` reward function marks right."""
    return int(qid[1:]) % (G + 1)


@dataclass
class Recorder:
    """The reward functions: ``correct`` (1 for the first k of a group's completions, k by
    prompt) and ``style`` (0.8 for all, weighted 0.5, so the weighted sum is right > 0.5 exactly
    when ``correct`` is 1, and an unweighted sum would make every completion right)."""

    trainer: CoordinatorGRPOTrainer | None = None
    train: list[list[str]] = field(default_factory=list)
    """The qids of every training generation batch, in TRL's order."""
    evaluated: int = 0

    def correct(self, completions: list[Any], qid: list[str], **_: Any) -> list[float]:
        assert self.trainer is not None
        if self.trainer.model is not None and self.trainer.model.training:
            self.train.append(list(qid))
        else:
            self.evaluated += 1
        assert len(qid) % G == 0
        return [1.0 if i % G < right_answers(q) else 0.0 for i, q in enumerate(qid)]

    @staticmethod
    def style(completions: list[Any], **_: Any) -> list[float]:
        return [0.8] * len(completions)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = [row(i)["prompt"] for i in range(ROWS)]
    return build_tiny_lm(
        tmp_path_factory.mktemp("trl") / "lm", corpus, vocab_size=300, hidden_size=32, heads=2
    )


@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Offline (no hub, no telemetry ping) and one torch thread on this small machine."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("CDAS_API_TOKEN", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(out: Path, **overrides: Any) -> GRPOConfig:
    options: dict[str, Any] = {
        "output_dir": str(out),
        "per_device_train_batch_size": 4,
        "num_generations": G,
        "max_completion_length": 6,
        "learning_rate": 1e-3,
        "reward_weights": WEIGHTS,
        "max_steps": 3,
        "logging_steps": 1000,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "bf16": False,
        "fp16": False,
        "disable_tqdm": True,
        "seed": 0,
        "use_vllm": False,
    }
    options.update(overrides)
    return GRPOConfig(**options)


def trainer(
    model_dir: Path,
    args: GRPOConfig,
    settings: CoordinatorSettings,
    recorder: Recorder | None = None,
    dataset: Any = None,
    **kwargs: Any,
) -> CoordinatorGRPOTrainer:
    recorder = recorder or Recorder()
    made = CoordinatorGRPOTrainer(
        model=str(model_dir),
        reward_funcs=[recorder.correct, recorder.style],
        args=args,
        train_dataset=Dataset.from_list([row(i) for i in range(ROWS)])
        if dataset is None
        else dataset,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        coordinator=settings,
        **kwargs,
    )
    recorder.trainer = made
    return made


class StepCounter(TrainerCallback):
    """Counts the optimizer steps a ``train`` call runs (a resumed one runs only the rest)."""

    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.steps += 1


class RecordingClient(CallLog):
    """A coordinator (the library) that logs the order of the trainer's calls, its
    ``put_run`` too."""

    def __init__(self) -> None:
        self.library = cdas.Coordinator(cdas.MemoryStore())
        super().__init__(self.library)

    def put_run(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("put_run", 0, 0))
        return super().put_run(*args, **kwargs)


def expected_layout(coord: Any, run: str, step: int, size: int) -> list[str]:
    """The rows TRL should generate on for ``step``: the coordinator's batch, each G times."""
    return [p for p in coord.next_batch(run, step, size).prompt_ids for _ in range(G)]


def history(coord: Any, run: str) -> list[dict[str, Any]]:
    return [h.to_dict() for h in coord.get_state(run).history]


# -- the library in process: steps_per_generation, num_iterations, evaluation, resume ------------


@dataclass
class EmbeddedRun:
    recorder: Recorder
    coordinator: cdas.Coordinator
    out: Path
    applied: int


B_EMBEDDED = 4  # per_device 4 x steps_per_generation 2 = 8 rows = 4 prompts x G


def embedded_args(out: Path, **overrides: Any) -> GRPOConfig:
    """A generation batch serves steps_per_generation 2 x num_iterations 2 = 4 optimizer steps
    (gradient_accumulation_steps 1): 12 steps are 3 coordinator steps."""
    return config(
        out,
        steps_per_generation=2,
        num_iterations=2,
        max_steps=12,
        save_strategy="steps",
        save_steps=2,
        **overrides,
    )


@pytest.fixture(scope="module")
def embedded(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> EmbeddedRun:
    out = tmp_path_factory.mktemp("embedded")
    recorder = Recorder()
    args = embedded_args(
        out,
        eval_strategy="steps",
        eval_steps=6,
        per_device_eval_batch_size=4,
    )
    made = trainer(
        model_dir,
        args,
        CoordinatorSettings(run="embedded", id_column="qid", seed=3),
        recorder,
        eval_dataset=Dataset.from_list([row(i) for i in range(2)]),
    )
    made.train()
    assert isinstance(made.coordinator, cdas.Coordinator)
    return EmbeddedRun(recorder, made.coordinator, out, made.applied)


def test_every_generation_batch_is_the_coordinators_and_every_group_is_posted_once(
    embedded: EmbeddedRun,
) -> None:
    coord, recorder = embedded.coordinator, embedded.recorder
    assert len(recorder.train) == 3, "12 optimizer steps, a generation batch every 4"
    served: Counter[str] = Counter()
    for step, generated in enumerate(recorder.train, start=1):
        assert generated == expected_layout(coord, "embedded", step, B_EMBEDDED), step
        batch = coord.next_batch("embedded", step, B_EMBEDDED).prompt_ids
        served.update(batch)
        for qid in batch:
            info = coord.get_prompt("embedded", qid)
            if info.last_step == step:  # the weighted sum, thresholded at 0.5 by the coordinator
                assert info.last_pass_rate == pytest.approx(right_answers(qid) / G), qid
    for qid in (f"q{i}" for i in range(ROWS)):
        assert coord.get_prompt("embedded", qid).updates == served[qid], qid
    run = coord.get_run("embedded")
    assert (run.strategy, run.seed, run.size, run.step) == ("cdas", 3, ROWS, 3)
    assert (run.results, run.duplicates, run.rollouts) == (3 * B_EMBEDDED, 0, 3 * B_EMBEDDED * G)
    assert embedded.applied == 3 * B_EMBEDDED
    assert [h["step"] for h in history(coord, "embedded")] == [1, 2, 3]


def test_evaluation_generates_on_its_own_rows_and_is_never_reported(
    embedded: EmbeddedRun,
) -> None:
    assert embedded.recorder.evaluated == 2, "eval_steps 6 of 12"
    run = embedded.coordinator.get_run("embedded")
    assert run.rollouts == 3 * B_EMBEDDED * G  # training groups only


def test_checkpoints_hold_the_step_to_ask_next_and_the_embedded_coordinators_state(
    embedded: EmbeddedRun,
) -> None:
    def saved(step: int) -> dict[str, Any]:
        folder = embedded.out / f"checkpoint-{step}"
        assert (folder / SNAPSHOT_FILE).is_file()
        state: dict[str, Any] = json.loads((folder / STATE_FILE).read_text())
        return state

    # a generation batch serves optimizer steps 1-4, 5-8, 9-12
    assert [saved(s)["step"] for s in (2, 4, 6, 8, 10, 12)] == [1, 2, 2, 3, 3, 4]
    assert saved(2) == {"run": "embedded", "batch_size": B_EMBEDDED, "step": 1}


def test_a_fresh_trainer_resumed_inside_a_generation_window_asks_the_same_step_again(
    embedded: EmbeddedRun, model_dir: Path, tmp_path: Path
) -> None:
    """Resumed from checkpoint-2 (step 1's batch half used), the embedded coordinator comes back
    from the snapshot, step 1 is asked again (same prompts; its results are duplicates), and the
    run ends where the uninterrupted one did."""
    recorder, counter = Recorder(), StepCounter()
    args = embedded_args(tmp_path)
    settings = CoordinatorSettings(run="embedded", id_column="qid", seed=3)
    made = trainer(model_dir, args, settings, recorder, callbacks=[counter])
    made.train(resume_from_checkpoint=str(embedded.out / "checkpoint-2"))
    assert counter.steps == 10, "optimizer steps 3-12"
    coord = made.coordinator
    assert isinstance(coord, cdas.Coordinator)
    assert coord is not embedded.coordinator
    assert recorder.train == embedded.recorder.train, "steps 1 (again), 2, 3: the same prompts"
    assert (made.applied, made.duplicates) == (2 * B_EMBEDDED, B_EMBEDDED)
    assert history(coord, "embedded") == history(embedded.coordinator, "embedded")
    whole, resumed = embedded.coordinator.get_run("embedded"), coord.get_run("embedded")
    assert (resumed.step, resumed.results, resumed.competence) == (
        whole.step,
        whole.results,
        whole.competence,
    )
    for qid in (f"q{i}" for i in range(ROWS)):
        assert coord.get_prompt("embedded", qid) == embedded.coordinator.get_prompt("embedded", qid)


# -- cdas serve on Redis: REST, then gRPC for the resumed trainer --------------------------------


B_SERVED = 4  # per_device 4 x gradient_accumulation 2 = 8 rows = 4 prompts x G


def test_cdas_serve_on_redis_feeds_trl_and_a_resume_applies_nothing_twice(
    model_dir: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    """Content-hash ids (no id column), gradient accumulation 2 (a generation batch per optimizer
    step), checkpoints every step. A fresh trainer resumed from checkpoint-1 over gRPC asks for
    steps 2 and 3 again: the same prompts, every result a duplicate, the run unchanged."""
    redis_url = f"{redis_server.url}/13"
    store = cdas.RedisStore(redis_url)
    store.client.flushdb()
    library = cdas.Coordinator(store)
    rows = [row(i) for i in range(ROWS)]
    ids = prompt_ids(rows, None, "prompt", "answer")
    qid_of = dict(zip(ids, (r["qid"] for r in rows), strict=True))
    args: dict[str, Any] = {
        "gradient_accumulation_steps": 2,
        "save_strategy": "steps",
        "save_steps": 1,
    }
    settings: dict[str, Any] = {
        "run": "served",
        "strategy": "random",
        "label_column": "answer",
        "retry_for": 30,
    }
    with serve_process("--store", redis_url) as server:
        first = Recorder()
        settings_a = CoordinatorSettings(url=server.url, **settings)
        made = trainer(model_dir, config(tmp_path, **args), settings_a, first)
        made.train()
        assert made.applied == 3 * B_SERVED
        before = (library.get_run("served"), history(library, "served"))

        second, counter = Recorder(), StepCounter()
        resumed = trainer(
            model_dir,
            config(tmp_path / "again", **args),
            CoordinatorSettings(url=f"grpc://{server.target}", **settings),
            second,
            callbacks=[counter],
        )
        resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))
    assert counter.steps == 2, "optimizer steps 2 and 3"
    assert len(first.train) == 3
    for step, generated in enumerate(first.train, start=1):
        expected = expected_layout(library, "served", step, B_SERVED)
        assert generated == [qid_of[p] for p in expected], step
    assert second.train == first.train[1:], "steps 2 and 3 again, the same prompts"
    assert (resumed.applied, resumed.duplicates) == (0, 2 * B_SERVED)
    run, steps = library.get_run("served"), history(library, "served")
    assert [h["step"] for h in steps] == [1, 2, 3]
    assert steps == before[1]
    assert (run.results, run.rollouts, run.competence) == (
        before[0].results,
        before[0].rollouts,
        before[0].competence,
    )
    assert run.duplicates == before[0].duplicates + 2 * B_SERVED
    store.client.flushdb()
    store.close()


def test_each_steps_results_go_with_the_next_steps_ask_and_end_as_results_posted_by_hand(
    model_dir: Path, tmp_path: Path
) -> None:
    """A ready client (``CoordinatorSettings.client``) sees the trainer's calls in order, whatever
    accelerate's dataloader fetched ahead: step t's results go with step t + 1's ask in one
    ``advance``, the last step's with ``report_results``. The run's whole state is that of the
    same batches and rewards posted by hand with the two calls."""
    client, recorder = RecordingClient(), Recorder()
    settings = CoordinatorSettings(run="ordered", client=client)
    made = trainer(model_dir, config(tmp_path), settings, recorder)
    made.train()
    assert client.calls == [
        ("put_run", 0, 0),
        ("next_batch", 1, 0),
        ("advance", 1, 0),
        ("advance", 2, 0),
        ("report_results", 3, 0),
    ]
    assert not (tmp_path / "checkpoint-3").exists()
    assert client.library.get_run("ordered").results == 3 * 2  # 4 rows a step: 2 prompts x G
    assert (made.applied, made.duplicates) == (3 * 2, 0)

    rows = [row(i) for i in range(ROWS)]
    ids = prompt_ids(rows, None, "prompt", None)
    qid_of = dict(zip(ids, (r["qid"] for r in rows), strict=True))
    by_hand = cdas.Coordinator(cdas.MemoryStore())
    by_hand.put_run("ordered", "cdas", {}, 0, ids)
    assert len(recorder.train) == 3
    for step, generated in enumerate(recorder.train, start=1):
        batch = by_hand.next_batch("ordered", step, 2).prompt_ids
        assert generated == [qid_of[p] for p in batch for _ in range(G)], step
        results = [  # the weighted sum: correct x 1 + style 0.8 x 0.5
            {"prompt_id": p, "rewards": [(i < right_answers(qid_of[p])) + 0.4 for i in range(G)]}
            for p in batch
        ]
        by_hand.report_results("ordered", step, results)
    assert_same_state(logical_state(client.library, "ordered"), logical_state(by_hand, "ordered"))


# -- what the integration refuses -----------------------------------------------------------------


def test_a_missing_id_column_is_named_before_the_model_loads(tmp_path: Path) -> None:
    with pytest.raises(PromptColumnError, match=r"id_column 'uid' is not a column.*qid, prompt"):
        CoordinatorGRPOTrainer(
            model=str(tmp_path / "never-loaded"),
            reward_funcs=[Recorder.style],
            args=config(tmp_path),
            train_dataset=Dataset.from_list([row(i) for i in range(ROWS)]),
            coordinator=CoordinatorSettings(run="r", id_column="uid"),
        )


def test_an_unknown_strategy_is_named(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"strategy 'nope'"):
        trainer(model_dir, config(tmp_path), CoordinatorSettings(run="r", strategy="nope"))


def test_an_unreachable_coordinator_is_named_after_retry_for(
    model_dir: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = CoordinatorSettings(run="r", url=url, retry_for=0.3)
    with pytest.raises(CoordinatorUnreachableError, match=rf"{url}.*retry_for=0.3s"):
        trainer(model_dir, config(tmp_path), settings)


def test_setups_it_cannot_honour_are_refused_naming_the_setting(tmp_path: Path) -> None:
    def build(dataset: Any, **overrides: Any) -> None:
        CoordinatorGRPOTrainer(
            model=str(tmp_path / "never-loaded"),
            reward_funcs=[Recorder.style],
            args=config(tmp_path, **overrides),
            train_dataset=dataset,
            coordinator=CoordinatorSettings(run="r"),
        )

    stream = IterableDataset.from_generator(lambda: iter([row(0)]))
    with pytest.raises(UnsupportedSetupError, match=r"train_dataset must be a datasets\.Dataset"):
        build(stream)
    with pytest.raises(UnsupportedSetupError, match="generation_batch_size 32 / num_generations"):
        build(Dataset.from_list([row(i) for i in range(ROWS)]), per_device_train_batch_size=32)
    with pytest.raises(TRLVersionError, match=r"trl 1\.15\.0 is installed.*trl==1\.16\.0"):
        check_trl_version("1.15.0")
    assert check_trl_version() == "1.16.0"


def test_a_checkpoint_of_another_run_is_refused(model_dir: Path, tmp_path: Path) -> None:
    made = trainer(model_dir, config(tmp_path), CoordinatorSettings(run="mine"))
    folder = tmp_path / "checkpoint-7"
    folder.mkdir()
    with pytest.raises(CheckpointStateError, match=r"not saved by CoordinatorGRPOTrainer"):
        made.train(resume_from_checkpoint=str(folder))
    (folder / STATE_FILE).write_text(json.dumps({"run": "theirs", "batch_size": 2, "step": 3}))
    with pytest.raises(CheckpointStateError, match=r"run 'theirs', this trainer has 'mine'"):
        made.train(resume_from_checkpoint=str(folder))


# -- the pieces ----------------------------------------------------------------------------------


def test_settings_validate_and_read_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SettingsError, match="run is required"):
        CoordinatorSettings(run="")
    with pytest.raises(SettingsError, match="'redis://x'"):
        CoordinatorSettings(run="r", url="redis://x")
    with pytest.raises(SettingsError, match="retry_for must be >= 0"):
        CoordinatorSettings(run="r", url="http://x", retry_for=-1)
    library = cdas.Coordinator(cdas.MemoryStore())
    with pytest.raises(SettingsError, match="a url or a client, not both"):
        CoordinatorSettings(run="r", url="http://x", client=library)
    assert CoordinatorSettings(run="r", client=library).connect() is library
    assert CoordinatorSettings(run="r").embedded
    assert not CoordinatorSettings(run="r", client=library).embedded
    assert CoordinatorSettings(run="r", url="http://x").token() is None
    monkeypatch.setenv("CDAS_API_TOKEN", "from-env")
    assert CoordinatorSettings(run="r", url="http://x").token() == "from-env"
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    assert CoordinatorSettings(run="r", url="http://x", token_file=str(secret)).token() == (
        "from-file"
    )
    with pytest.raises(SettingsError, match="token_file"):
        CoordinatorSettings(run="r", url="http://x", token_file=str(tmp_path / "none")).token()


def test_prompt_ids_follow_the_shared_rule() -> None:
    rows = [row(i) for i in range(4)] + [row(0)]
    dataset = Dataset.from_list(rows)
    assert dataset_prompt_ids(Dataset.from_list(rows[:4]), "qid", None) == ["q0", "q1", "q2", "q3"]
    with pytest.raises(PromptIdError, match="rows 0 and 4 have the same 'qid'"):
        dataset_prompt_ids(dataset, "qid", None)
    hashed = dataset_prompt_ids(dataset, None, "answer")
    assert hashed == prompt_ids(rows, None, "prompt", "answer")  # cdas_openrlhf's rule too
    assert hashed[4] == f"{hashed[0]}-1"
    assert dataset_prompt_ids(dataset, None, None) == prompt_ids(rows, None, "prompt", None)
    with pytest.raises(PromptColumnError, match="label_column 'solution'"):
        dataset_prompt_ids(dataset, None, "solution")


def test_generation_rows_and_group_results() -> None:
    rows = generation_rows([{"a": 1, "b": 2}, {"a": 3, "b": 4}], ["a"], 2)
    assert rows == [{"a": 1}, {"a": 1}, {"a": 3}, {"a": 3}]
    rows[0]["x"] = 1
    assert rows[1] == {"a": 1}, "every copy is its own dict"
    nan = math.nan
    assert group_results(["p", "q", "r"], [1.0, 0.0, nan, 0.5, nan, nan], 2) == [
        {"prompt_id": "p", "rewards": [1.0, 0.0]},
        {"prompt_id": "q", "rewards": [0.5]},
    ]
    with pytest.raises(ValueError, match="3 rewards for 2 prompts x 2"):
        group_results(["p", "q"], [1.0, 0.0, 1.0], 2)
