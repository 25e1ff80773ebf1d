"""The OpenRLHF integration's parts on their own: the loader's mapping of draws onto coordinator
rounds and episodes, prompt ids, the settings that travel to the trainer actor, the launcher's
command line. The library coordinator (``cdas.Coordinator`` on a ``MemoryStore``) stands in for
the service: the loader only calls ``next_batch``, ``report_results`` and ``advance``, the same on
both."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
import torch

from tests import gpu_stubs

gpu_stubs.install()

from cdas_openrlhf import launch  # noqa: E402
from cdas_openrlhf.generator import scalar  # noqa: E402
from cdas_openrlhf.loader import CoordinatorPromptLoader, LoaderStateError  # noqa: E402
from cdas_openrlhf.settings import ENV, CoordinatorSettings, SettingsError, parse_param  # noqa: E402
from cdas_openrlhf.version import OpenRLHFVersionError, check_openrlhf_version  # noqa: E402

import cdas  # noqa: E402
from cdas.client.prompt_ids import PromptIdError, content_id, prompt_ids  # noqa: E402
from tests.conftest import assert_same_state, logical_state  # noqa: E402
from tests.recording import CallLog  # noqa: E402

N, B = 20, 4


def rows(n: int = N) -> list[tuple[str, str, str, None]]:
    return [("math", f"prompt {i}", f"{i}", None) for i in range(n)]


def make_loader(
    strategy: str = "random", params: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[CoordinatorPromptLoader, cdas.Coordinator]:
    coord = cdas.Coordinator(cdas.MemoryStore())
    ids = [f"p{i}" for i in range(N)]
    coord.put_run("run", strategy, params or {}, seed=3, prompts=ids)
    return CoordinatorPromptLoader(coord, "run", rows(), ids, B, **kwargs), coord


def draw(it: Any, k: int) -> list[str]:
    """k prompts off the iterator (as OpenRLHF's batch helper draws them), as their row texts."""
    out = []
    for _ in range(k):
        _, prompts, _, _ = next(it)
        out.append(prompts[0])
    return out


def ids_of(texts: list[str]) -> list[str]:
    return [f"p{t.split()[1]}" for t in texts]


def test_draws_map_onto_rounds_of_size_b() -> None:
    loader, coord = make_loader()
    it = iter(loader)
    first = ids_of(draw(it, B))
    assert first == coord.next_batch("run", 0, B).prompt_ids
    refills = ids_of(draw(it, B + 1))  # refill j comes from round ceil(j / B), position (j-1) % B
    round1 = coord.next_batch("run", 0, B, 1).prompt_ids
    round2 = coord.next_batch("run", 0, B, 2).prompt_ids
    assert refills == [*round1, round2[0]]
    assert len(set(first + refills)) == 2 * B + 1  # a step never repeats a prompt
    loader.end_step()
    assert loader.step == 1
    assert ids_of(draw(it, B)) == coord.next_batch("run", 1, B).prompt_ids


def test_each_item_is_one_prompt_in_the_collate_format() -> None:
    loader, _ = make_loader()
    datasources, prompts, labels, images = next(iter(loader))
    assert (len(datasources), len(prompts), len(labels), len(images)) == (1, 1, 1, 1)
    assert datasources == ["math"]
    assert labels[0] == prompts[0].split()[1]


def test_groups_are_posted_before_a_further_round_and_at_the_end_of_the_step() -> None:
    loader, coord = make_loader()
    it = iter(loader)
    texts = draw(it, B)
    for text in texts[:2]:
        loader.record_group(text, text.split()[1], [1.0, 0.0, 0.0, 0.0])
    assert coord.get_run("run").results == 0  # queued, not yet posted
    draw(it, 1)  # a refill needs round 1: the coordinator sees the queued groups first
    assert coord.get_run("run").results == 2
    for text in texts[2:]:
        loader.record_group(text, text.split()[1], [1.0, 1.0, 1.0, 1.0])
    loader.end_step()
    assert coord.get_run("run").results == B
    for pid in ids_of(texts):
        assert coord.get_prompt("run", pid).last_step == 0
    assert coord.get_prompt("run", ids_of(texts)[0]).last_pass_rate == 0.25
    assert (loader.applied, loader.duplicates) == (B, 0)


def rewards_of(text: str) -> list[float]:
    """A group's rewards by prompt: prompt i gets i % 4 of its 3 rollouts right (some all right,
    some all wrong)."""
    right = int(text.split()[1]) % 4
    return [1.0 if k < right else 0.0 for k in range(3)]


def results(texts: list[str]) -> list[dict[str, Any]]:
    """The groups' results, posted by hand."""
    return [{"prompt_id": ids_of([t])[0], "rewards": rewards_of(t)} for t in texts]


def test_a_steps_last_post_carries_the_next_steps_batch_and_ends_as_posted_by_hand() -> None:
    """Inside an episode, the end of step t posts with ``advance`` and its answer is step
    t + 1's round 0 (drawn without another call); the episode's last step posts with
    ``report_results``. The run ends as the same draws and results with the two calls leave it."""
    loader, coord = make_loader("cdas", steps_per_episode=2)
    recording = CallLog(coord)
    loader.client = recording
    by_hand = cdas.Coordinator(cdas.MemoryStore())
    by_hand.put_run("run", "cdas", {}, seed=3, prompts=[f"p{i}" for i in range(N)])
    it = iter(loader)
    for step in range(2):
        texts = draw(it, B)
        for text in texts:
            loader.record_group(text, text.split()[1], rewards_of(text))
        (refill,) = draw(it, 1)  # round 1: the step's first B groups are posted first
        loader.record_group(refill, refill.split()[1], rewards_of(refill))
        loader.end_step()

        assert ids_of(texts) == by_hand.next_batch("run", step, B).prompt_ids
        by_hand.report_results("run", step, results(texts))
        assert ids_of([refill]) == by_hand.next_batch("run", step, B, 1).prompt_ids[:1]
        by_hand.report_results("run", step, results([refill]))
    with pytest.raises(StopIteration):
        next(it)
    assert recording.calls == [
        ("next_batch", 0, 0),
        ("report_results", 0, 0),
        ("next_batch", 0, 1),
        ("advance", 0, 0),  # step 0's last group, step 1's round 0
        ("report_results", 1, 0),
        ("next_batch", 1, 1),
        ("report_results", 1, 0),  # the episode's last step: no batch of step 2
    ]
    assert (loader.applied, loader.duplicates) == (2 * (B + 1), 0)
    assert_same_state(logical_state(coord, "run"), logical_state(by_hand, "run"))


def test_a_regenerated_step_gets_the_same_prompts_and_its_results_count_once() -> None:
    loader, coord = make_loader()
    texts = draw(iter(loader), B + 2)
    for text in texts:
        loader.record_group(text, text.split()[1], [0.0, 1.0])
    loader.end_step()
    again, _ = make_loader()
    again.client = coord  # a restarted trainer, same coordinator, resumed at step 0
    assert draw(iter(again), B + 2) == texts
    for text in texts:
        again.record_group(text, text.split()[1], [1.0, 1.0])
    again.end_step()
    assert (again.applied, again.duplicates) == (0, B + 2)
    assert coord.get_prompt("run", ids_of(texts)[0]).last_pass_rate == 0.5


def test_a_group_for_a_prompt_not_served_this_step_is_refused() -> None:
    loader, _ = make_loader()
    (text,) = draw(iter(loader), 1)
    loader.record_group(text, text.split()[1], [1.0])
    with pytest.raises(KeyError, match="not served in step 0"):
        loader.record_group(text, text.split()[1], [1.0])  # served once, reported twice


def test_the_round_cap_ends_the_draws_and_the_next_iterator_starts_a_full_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loader, _ = make_loader(max_rounds=2, steps_per_episode=3)
    it = iter(loader)
    draw(it, 2 * B)
    with caplog.at_level(logging.WARNING, "cdas_openrlhf"), pytest.raises(StopIteration):
        next(it)
    assert "used its 2 rounds" in caplog.text
    loader.end_step()
    it = iter(loader)
    for step in range(1, 4):
        assert len(draw(it, B)) == B
        loader.end_step()
        assert loader.step == step + 1
    with pytest.raises(StopIteration):
        next(it)


def test_the_coordinators_own_round_limit_ends_the_draws() -> None:
    loader, _ = make_loader("dynamic", {"max_rounds": 2})
    it = iter(loader)
    draw(it, 2 * B)
    with pytest.raises(StopIteration):
        next(it)


def test_round_zero_errors_are_not_swallowed() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("run", "random", prompts=[f"p{i}" for i in range(N)])
    loader = CoordinatorPromptLoader(coord, "other-run", rows(), [f"p{i}" for i in range(N)], B)
    with pytest.raises(cdas.NotFoundError):
        next(iter(loader))


def test_episodes_are_steps_per_episode_steps() -> None:
    loader, _ = make_loader()
    assert loader.steps_per_episode == N // B
    assert len(loader) == N // B * B
    it = iter(loader)
    for _ in range(N // B):
        draw(it, B)
        loader.end_step()
    with pytest.raises(StopIteration):
        next(it)
    assert len(draw(iter(loader), B)) == B  # the next episode


def test_state_dict_resumes_the_step_and_a_finished_episode_yields_nothing_first() -> None:
    loader, coord = make_loader(steps_per_episode=2)
    it = iter(loader)
    for _ in range(2):
        draw(it, B)
        loader.end_step()
    state = loader.state_dict()
    assert state == {"run_id": "run", "batch_size": B, "step": 2, "episode_end": 2}
    resumed = CoordinatorPromptLoader(coord, "run", rows(), [f"p{i}" for i in range(N)], B,
                                      steps_per_episode=2)  # fmt: skip
    resumed.load_state_dict(state)
    assert list(iter(resumed)) == []  # the checkpoint's episode is over (as OpenRLHF's loader)
    assert ids_of(draw(iter(resumed), B)) == coord.next_batch("run", 2, B).prompt_ids


def test_state_of_another_run_or_batch_size_is_refused() -> None:
    loader, _ = make_loader()
    with pytest.raises(LoaderStateError, match="run_id 'elsewhere'"):
        loader.load_state_dict({"run_id": "elsewhere", "batch_size": B, "step": 3})
    with pytest.raises(LoaderStateError, match="batch_size 16"):
        loader.load_state_dict({"run_id": "run", "batch_size": 16, "step": 3})
    assert loader.step == 0


def test_a_run_registered_with_other_prompts_is_named() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("run", "random", prompts=[f"q{i}" for i in range(N)])
    loader = CoordinatorPromptLoader(coord, "run", rows(), [f"p{i}" for i in range(N)], B)
    with pytest.raises(LoaderStateError, match="another prompt set"):
        next(iter(loader))


@pytest.mark.parametrize("size", [0, N + 1])
def test_batch_size_outside_the_prompts_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match=f"rollout batch size {size}"):
        CoordinatorPromptLoader(cdas.Coordinator(cdas.MemoryStore()), "r", rows(),
                                [f"p{i}" for i in range(N)], size)  # fmt: skip


# ---------------------------------------------------------------------- prompt ids
def test_an_id_column_gives_the_ids() -> None:
    data: list[dict[str, Any]] = [{"id": 7, "input": "a"}, {"id": "x", "input": "b"}]
    assert prompt_ids(data, "id", "input", None) == ["7", "x"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"id": "a", "input": "x"}, {"id": "a", "input": "y"}], "rows 0 and 1 have the same 'id'"),
        ([{"id": "", "input": "x"}], "row 0: id column 'id' holds ''"),
        ([{"id": "é" * 200, "input": "x"}], "ids must be 1-256 bytes"),
    ],
)
def test_a_bad_id_column_is_named(data: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(PromptIdError, match=message):
        prompt_ids(data, "id", "input", None)


def test_content_hashes_follow_the_rows_not_their_order() -> None:
    data = [{"input": [{"role": "user", "content": f"q{i}"}], "label": str(i)} for i in range(50)]
    ids = prompt_ids(data, "id", "input", "label")
    assert len(set(ids)) == 50
    assert all(len(i) == 16 for i in ids)
    shuffled = list(range(50))
    random.Random(0).shuffle(shuffled)
    assert prompt_ids([data[k] for k in shuffled], "id", "input", "label") == [
        ids[k] for k in shuffled
    ]
    assert ids[3] == content_id(data[3]["input"], "3")
    # the label is part of the content; identical rows are told apart by order
    twice = prompt_ids([data[0], data[0], {**data[0], "label": "x"}], "id", "input", "label")
    assert twice[0] == ids[0]
    assert twice[1] == f"{ids[0]}-1"
    assert twice[2] not in (twice[0], twice[1])


# ---------------------------------------------------------------------- settings and launcher
def test_settings_travel_through_the_environment() -> None:
    settings = CoordinatorSettings(
        url="grpc://coordinator:50051",
        run="r1",
        strategy="dynamic",
        params={"max_rounds": 4, "threshold": 0.5},
        seed=9,
        id_key="uid",
        max_rounds=4,
        retry_for=30.5,
        steps_per_episode=7,
        token_file="/run/secrets/token",
    )
    env = settings.to_env()
    assert "CDAS_API_TOKEN" not in env
    assert CoordinatorSettings.from_env(env) == settings
    assert CoordinatorSettings.from_env({ENV["url"]: "http://c:8000", ENV["run"]: "r"}) == (
        CoordinatorSettings(url="http://c:8000", run="r")
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "CDAS_COORDINATOR_URL, CDAS_RUN not set"),
        ({ENV["url"]: "coordinator:8000", ENV["run"]: "r"}, "got 'coordinator:8000'"),
        ({ENV["url"]: "http://c", ENV["run"]: "r", ENV["seed"]: "x"}, "CDAS_SEED must be a number"),
        ({ENV["url"]: "http://c", ENV["run"]: "r", ENV["params"]: "{"}, "CDAS_PARAMS is not JSON"),
        ({ENV["url"]: "http://c", ENV["run"]: "r", ENV["max_rounds"]: "0"}, "max_rounds must be"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        CoordinatorSettings.from_env(env)


def test_params_are_json_when_they_can_be() -> None:
    assert parse_param("warmup=false") == ("warmup", False)
    assert parse_param("max_rounds=4") == ("max_rounds", 4)
    assert parse_param("schedule=1:0,50:4") == ("schedule", "1:0,50:4")
    with pytest.raises(SettingsError, match=r"--coordinator\.param .warmup. is not key=value"):
        parse_param("warmup")


def test_the_launcher_splits_its_flags_from_openrlhfs() -> None:
    settings, rest = launch.parse([
        "--actor.model_name_or_path", "Qwen/Qwen2.5-7B",
        "--coordinator.url", "http://coordinator:8000",
        "--coordinator.run", "grpo-math",
        "--coordinator.param", "warmup=false",
        "--rollout.batch_size", "1024",
        "--coordinator.max_rounds", "3",
    ])  # fmt: skip
    assert (settings.url, settings.run, settings.strategy) == (
        "http://coordinator:8000",
        "grpo-math",
        "cdas",
    )
    assert (dict(settings.params), settings.max_rounds) == ({"warmup": False}, 3)
    assert rest == ["--actor.model_name_or_path", "Qwen/Qwen2.5-7B", "--rollout.batch_size", "1024"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--coordinator.run", "r"], "--coordinator.url"),
        (["--coordinator.url", "http://c", "--coordinator.run", "r", "--train.async_enable"],
         "--train.async_enable is not supported"),
        (["--coordinator.url", "c:8000", "--coordinator.run", "r"], "must start with http://"),
        (["--coordinator.url", "http://c", "--coordinator.run", "r",
          "--coordinator.token_file", "/nonexistent/token"], "cannot read --coordinator.token"),
    ],
)  # fmt: skip
def test_the_launcher_refuses_bad_command_lines(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        launch.parse(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_token_flag_reaches_the_environment_not_the_runtime_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CDAS_API_TOKEN", raising=False)
    settings, _ = launch.parse(
        ["--coordinator.url", "http://c", "--coordinator.run", "r", "--coordinator.token", "s3"]
    )
    assert settings.token() == "s3"
    assert "s3" not in settings.to_env().values()


def test_cdas_math_names_the_shipped_reward_file() -> None:
    import cdas_openrlhf.reward

    base = ["--coordinator.url", "http://c", "--coordinator.run", "r"]
    _, rest = launch.parse([*base, "--reward.remote_url", "cdas-math", "--x", "cdas-math"])
    assert rest == ["--reward.remote_url", cdas_openrlhf.reward.__file__, "--x", "cdas-math"]
    _, rest = launch.parse([*base, "--reward.remote_url=cdas-math"])
    assert rest == [f"--reward.remote_url={cdas_openrlhf.reward.__file__}"]


def test_only_the_pinned_openrlhf_is_accepted() -> None:
    assert check_openrlhf_version() == "0.11.2"
    with pytest.raises(OpenRLHFVersionError, match=r"openrlhf 0\.12\.0 is installed"):
        check_openrlhf_version("0.12.0")


def test_rewards_come_as_floats_lists_or_tensors() -> None:
    assert scalar(1.0) == 1.0
    assert scalar([0.0]) == 0.0
    assert scalar(torch.tensor([1.0])) == 1.0
    assert scalar([torch.tensor(0.5)]) == 0.5
    with pytest.raises(ValueError, match="one reward per response"):
        scalar(torch.tensor([1.0, 0.0]))


def test_prepare_flattens_math12k_with_row_index_ids(tmp_path: Any) -> None:
    import json

    import pyarrow.parquet as pq
    from cdas_openrlhf import prepare

    from cdas.sim.dataset import SHIPPED

    source = SHIPPED
    target = tmp_path / "math12k.jsonl"
    prepare.main([str(source), str(target)])
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    table = pq.read_table(source).to_pylist()
    assert len(lines) == len(table) == 12000
    for k in (0, 1, 5000, 11999):
        assert lines[k] == {
            "id": str(k),
            "prompt": table[k]["prompt"],
            "label": table[k]["reward_model"]["ground_truth"],
        }
    assert prompt_ids(lines, "id", "prompt", "label") == [str(k) for k in range(12000)]
    with pytest.raises(SystemExit):
        prepare.main([str(source), str(target), "--label", "reward_model.answer"])
