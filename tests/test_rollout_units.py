"""The rollout worker's parts, each on its own: prompt sets, prompt formatting, the command line's
bad input, the state directory, the backends' argument mappings (no engine needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cdas_rollout import backends
from cdas_rollout.backends import (
    BackendError,
    SamplingSettings,
    check_shape,
    group_choices,
    make_backend,
    openai_request_body,
    transformers_generate_kwargs,
    vllm_sampling_kwargs,
)
from cdas_rollout.cli import main, parse_params, prompts_argument
from cdas_rollout.dataset import PromptFormatter, chat_to_text, load_dataset
from cdas_rollout.worker import RolloutWorker, StateError, WorkerConfig, write_atomic

import cdas
from tests.tiny_lm import MATH12K, build_tokenizer

# ---------------------------------------------------------------------------------------------
# prompt sets


def test_math12k_layout_ids_are_row_indexes_and_answers_the_ground_truths() -> None:
    dataset = load_dataset(MATH12K, limit=50)
    table = pq.read_table(MATH12K).slice(0, 50)
    assert dataset.ids == [str(i) for i in range(50)]  # as cdas.sim.dataset registers them
    truths = [r["ground_truth"] for r in table.column("reward_model").to_pylist()]
    assert [e.answer for e in dataset] == truths
    first = dataset["0"]
    assert isinstance(first.prompt, list)
    assert first.prompt[0]["role"] == "user"
    assert "hyperbola" in first.prompt[0]["content"]
    assert prompts_argument(dataset) == 50  # a count, like `cdas simulate`'s runs


def test_the_whole_math12k_file_loads_with_the_sim_modules_ids() -> None:
    from cdas.sim import dataset as sim

    ours = load_dataset(MATH12K)
    theirs = sim.load(MATH12K)
    assert ours.ids == theirs.ids
    assert [e.answer for e in ours] == theirs.answers


def test_jsonl_with_configured_keys(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    rows = [
        {"uid": "q-7", "question": "What is 1+1?", "final": 2},
        {"uid": "q-9", "question": [{"role": "user", "content": "2+2?"}], "final": "4"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    dataset = load_dataset(path, prompt_key="question", answer_key="final", id_key="uid")
    assert dataset.ids == ["q-7", "q-9"]
    assert [e.answer for e in dataset] == ["2", "4"]
    assert dataset["q-9"].prompt == [{"role": "user", "content": "2+2?"}]
    assert prompts_argument(dataset) == ["q-7", "q-9"]
    with pytest.raises(KeyError, match="'q-8' is not in"):
        dataset["q-8"]


def test_an_id_column_is_used_by_default_and_nested_answers_are_found(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    table = pa.Table.from_pylist(
        [
            {"id": 10, "prompt": "a", "reward_model": {"ground_truth": "1", "style": "rule"}},
            {"id": 20, "prompt": "b", "reward_model": {"ground_truth": "2", "style": "rule"}},
        ]
    )
    pq.write_table(table, path)
    dataset = load_dataset(path)
    assert dataset.ids == ["10", "20"]
    assert dataset["20"].answer == "2"


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ('{"prompt": "a", "answer": 1}\n', {"prompt_key": "question"}, "no prompt key 'question'"),
        ('{"prompt": "a"}\n', {}, "none of the answer keys"),
        ('{"prompt": "a", "answer": 1}\n', {"answer_key": "sol"}, "no answer key 'sol'"),
        ('{"prompt": "a", "answer": 1}\n', {"id_key": "uid"}, "no id key 'uid'"),
        ('{"prompt": "a", "answer": 1}\nnot json\n', {}, ":2: not JSON"),
        ('{"prompt": "a", "answer": 1}\n[1]\n', {}, ":2: a row must be a JSON object"),
        ('{"prompt": 5, "answer": 1}\n', {}, "row 0: the prompt is neither text nor a chat"),
        ('{"prompt": "a", "answer": null}\n', {}, "row 0: no answer under 'answer'"),
        (
            '{"id": 1, "prompt": "a", "answer": 1}\n{"id": 1, "prompt": "b", "answer": 2}\n',
            {},
            "prompt id '1' appears twice",
        ),
        ("\n", {}, "holds no rows"),
    ],
)
def test_bad_prompt_sets_name_the_problem(
    tmp_path: Path, content: str, kwargs: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_dataset(path, **kwargs)


def test_missing_or_unknown_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet"):
        load_dataset(tmp_path / "nope.parquet")
    (tmp_path / "p.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"unknown prompt set format '\.csv'"):
        load_dataset(tmp_path / "p.csv")


def test_chats_go_through_the_chat_template_when_there_is_one() -> None:
    tokenizer = build_tokenizer(["some corpus text 1 2 3"], vocab_size=300)
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    templated = PromptFormatter(tokenizer)(chat)
    assert templated == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert PromptFormatter(None)(chat) == "What is 2+2?" == chat_to_text(chat)
    assert PromptFormatter(tokenizer)("plain text") == "plain text"
    tokenizer.chat_template = None
    assert PromptFormatter(tokenizer)(chat) == "What is 2+2?"


# ---------------------------------------------------------------------------------------------
# the command line: bad input is an error naming the bad value


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


BASE = ["--run", "r", "--model", "m", "--batch-size", "4", "--steps", "1", "--data"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "vlm"], "unknown backend 'vlm'"),
        (["--param", "warmup"], "--param 'warmup' is not key=value"),
        (["--param", "=1", "--strategy", "cdas"], "--param '=1' is not key=value"),
        (["--worker-index", "3", "--workers", "2"], "--worker-index 3 must be below --workers 2"),
        (["--coordinator", "ftp://x"], "--coordinator 'ftp://x' must start with http"),
        (["--backend", "openai"], "--backend openai needs --openai-url"),
        (["--temperature", "-1"], "temperature must be >= 0, got -1.0"),
        (["--top-p", "0"], "top_p must be in (0, 1], got 0.0"),
        (["--retry-for", "-5"], "--retry-for must be >= 0, got -5.0"),
    ],
)
def test_cli_bad_values_are_named(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "p.jsonl"
    data.write_text('{"prompt": "a", "answer": "1"}\n')
    err = _fails([*BASE, str(data), *extra], capsys)
    assert message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--batch-size", "x"], "--batch-size must be an integer, got 'x'"),
        (["-n", "0"], "--group-size must be >= 1, got 0"),
        (["--steps", "-1"], "--steps must be >= 0, got -1"),
    ],
)
def test_cli_bad_numbers_are_named(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--run", "r", "--model", "m", "--data", "x.jsonl", "--steps", "1", "-b", "2"]
    assert message in _fails([*base, *argv], capsys)


def test_cli_missing_data_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.parquet"
    assert f"--data '{missing}': no such file" in _fails([*BASE, str(missing)], capsys)


def test_cli_a_bad_prompt_set_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "p.jsonl"
    data.write_text('{"question": "a"}\n')
    assert "no prompt key 'prompt'" in _fails([*BASE, str(data)], capsys)


def test_cli_without_a_reachable_coordinator_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.redis_servers import free_port

    data = tmp_path / "p.jsonl"
    data.write_text('{"prompt": "a", "answer": "1"}\n')
    url = f"http://127.0.0.1:{free_port()}"
    argv = [*BASE, str(data), "--coordinator", url, "--retry-for", "0", "--strategy", "cdas"]
    assert main(argv) == 1
    assert "coordinator unreachable" in capsys.readouterr().err


def test_params_are_json_when_they_parse() -> None:
    assert parse_params(["warmup=false", "threshold=0.25", "schedule=[[1, 3]]", "name=x y"]) == {
        "warmup": False,
        "threshold": 0.25,
        "schedule": [[1, 3]],
        "name": "x y",
    }


def test_importing_the_package_imports_no_engine() -> None:
    code = (
        "import sys, cdas_rollout, cdas_rollout.cli; "
        "print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# the worker's configuration and state directory


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch size must be >= 1, got 0"),
        ({"group_size": 0}, "group size must be >= 1, got 0"),
        ({"workers": 0}, "workers must be >= 1, got 0"),
        ({"worker_index": 2, "workers": 2}, r"worker index must be in \[0, 2\), got 2"),
    ],
)
def test_worker_config_checks(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"run_id": "r", "batch_size": 4, "group_size": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        WorkerConfig(**args)


class NoBackend:
    tokenizer = None

    def generate(self, prompts: list[str], n: int) -> list[list[str]]:
        raise AssertionError("not called")


def test_a_state_dir_of_another_run_or_share_is_refused(tmp_path: Path) -> None:
    dataset = load_dataset(MATH12K, limit=4)
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    state = tmp_path / "state"
    RolloutWorker(coordinator, dataset, NoBackend(), WorkerConfig("a", 2, 2, state_dir=state))
    saved = json.loads((state / "state.json").read_text())
    assert saved["run_id"] == "a"
    assert saved["next_step"] is None
    for other in (
        WorkerConfig("b", 2, 2, state_dir=state),
        WorkerConfig("a", 2, 2, worker_index=1, workers=2, state_dir=state),
        WorkerConfig("a", 4, 2, state_dir=state),
    ):
        with pytest.raises(StateError, match="belongs to"):
            RolloutWorker(coordinator, dataset, NoBackend(), other)
    (state / "state.json").write_text("{torn")
    with pytest.raises(StateError, match="is not JSON"):
        RolloutWorker(coordinator, dataset, NoBackend(), WorkerConfig("a", 2, 2, state_dir=state))


def test_write_atomic_replaces_whole_files_and_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f.json"
    write_atomic(target, {"a": 1})
    write_atomic(target, {"a": 2, "b": [1, 2]})
    assert json.loads(target.read_text()) == {"a": 2, "b": [1, 2]}
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]
    with pytest.raises(TypeError):
        write_atomic(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"a": 2, "b": [1, 2]}  # the old file survives
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


# ---------------------------------------------------------------------------------------------
# backends: how the shared sampling settings map to each API (no engine needed)


def test_sampling_settings_map_to_each_api() -> None:
    s = SamplingSettings(max_new_tokens=32, temperature=0.7, top_p=0.9, top_k=0, seed=3)
    assert vllm_sampling_kwargs(s, 8) == {
        "n": 8,
        "max_tokens": 32,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": -1,  # vLLM's "off"
    }
    assert openai_request_body("m", ["p1", "p2"], s, 8) == {
        "model": "m",
        "prompt": ["p1", "p2"],
        "n": 8,
        "max_tokens": 32,
        "temperature": 0.7,
        "top_p": 0.9,
    }  # no seed per request (every step would sample the same answers), no top_k when off
    assert transformers_generate_kwargs(s, 8) == {
        "max_new_tokens": 32,
        "num_return_sequences": 8,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 0,  # transformers' default would be 50
    }
    greedy = SamplingSettings(temperature=0.0, max_new_tokens=4)
    assert transformers_generate_kwargs(greedy, 8) == {
        "max_new_tokens": 4,
        "num_return_sequences": 1,
        "do_sample": False,
    }
    assert vllm_sampling_kwargs(SamplingSettings(top_k=20), 1)["top_k"] == 20
    assert openai_request_body("m", ["p"], SamplingSettings(top_k=20), 1)["top_k"] == 20


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be >= 1, got 0"),
        ({"temperature": float("nan")}, "temperature must be >= 0, got nan"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\], got 1.5"),
        ({"top_k": -1}, r"top_k must be >= 0 \(0: off\), got -1"),
    ],
)
def test_bad_sampling_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SamplingSettings(**kwargs)


def test_choices_are_grouped_by_index_and_bad_answers_rejected() -> None:
    answer = {"choices": [{"index": i, "text": f"t{i}"} for i in (5, 0, 3, 1, 4, 2)]}
    assert group_choices(answer, 3, 2) == [["t0", "t1"], ["t2", "t3"], ["t4", "t5"]]
    with pytest.raises(BackendError, match="out of range"):
        group_choices({"choices": [{"index": 6, "text": ""}]}, 3, 2)
    with pytest.raises(BackendError, match="not a completions answer"):
        group_choices({"error": "x"}, 1, 1)
    with pytest.raises(BackendError, match=r"groups of sizes \[2, 1\] for 2 prompts x 2"):
        check_shape(["a", "b"], 2, [["x", "y"], ["z"]])


def test_unknown_backend_and_missing_engines_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown backend 'tgi'"):
        make_backend("tgi", "m", SamplingSettings())
    with pytest.raises(ValueError, match="needs --openai-url"):
        make_backend("openai", "m", SamplingSettings())
    with pytest.raises(ValueError, match="must be http"):
        make_backend("openai", "m", SamplingSettings(), url="localhost:8000")
    monkeypatch.setitem(sys.modules, "vllm", None)  # as where vllm is not installed
    with pytest.raises(BackendError, match=r"pip install 'cdas-rollout\[vllm\]'"):
        backends.VLLMBackend("m", SamplingSettings())
