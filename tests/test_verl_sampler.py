"""cdas-verl: verl 0.7.1's own trainer (``RayPPOTrainer``: its config, dataset,
``create_rl_sampler``,
``StatefulDataLoader``, ``fit`` with GRPO, its checkpoints) drawing from ``CoordinatorSampler``,
the coordinator real: the library in process, and ``cdas serve`` on a real Redis. Only the GPU
parts are stood in (``tests.verl_harness``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

# isort: off
from tests import verl_harness as harness  # first: the stand-ins for ray, before verl loads
# isort: on

from cdas_verl.sampler import (
    CoordinatorSampler,
    RoundsExhaustedError,
    SamplerStateError,
    UnsupportedSetupError,
    _total_steps,
)
from cdas_verl.settings import SettingsError
from omegaconf import OmegaConf
from verl import DataProto

import cdas
from tests.conftest import assert_same_state, logical_state
from tests.redis_servers import RedisServer
from tests.services import serve_process

B, G = 4, 4


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return harness.write_rows(tmp_path / "train.parquet", 12)


def run_keys(run: str, **keys: Any) -> list[str]:
    return [
        f"+data.sampler.cdas.run={run}",
        *(f"+data.sampler.cdas.{k}={v}" for k, v in keys.items()),
    ]


def history(coordinator: Any, run: str) -> list[dict[str, Any]]:
    return [h.to_dict() if hasattr(h, "to_dict") else h for h in coordinator.get_state(run).history]


def test_each_step_trains_on_the_coordinators_batch_and_ends_as_results_posted_by_hand(
    data: Path, tmp_path: Path
) -> None:
    """Embedded coordinator, CDAS: three verl steps, each generating on next_batch(run, step, B)
    in verl's layout (each prompt G times in a row); every group posted once, at its step, with
    the next step's batch in the same advance call but the last; the run's whole state equals
    the same results posted by hand with next_batch and report_results."""
    rollouts = harness.Rollouts()
    ppo = harness.trainer(harness.config(data, tmp_path / "out", *run_keys("toy")), rollouts)
    sampler = harness.sampler_of(ppo)
    assert isinstance(sampler, CoordinatorSampler)  # loaded by verl's create_rl_sampler
    assert sampler.total_steps == 3  # trainer.total_training_steps, read from verl's config
    coordinator = sampler.client
    assert isinstance(coordinator, cdas.Coordinator)
    recording = harness.recorded(ppo)
    ppo.fit()
    assert recording.calls == [
        ("next_batch", 1, 0),
        ("advance", 1, 0),  # step 1's groups, step 2's batch
        ("advance", 2, 0),
        ("report_results", 3, 0),  # verl's last step: no batch 4
    ]

    steps = harness.served(rollouts, G)
    assert len(steps) == 3
    for call in rollouts.calls:
        assert call == [p for p in call[::G] for _ in range(G)]  # interleaved: G copies in a row
    for step, ids in enumerate(steps, start=1):
        assert ids == list(coordinator.next_batch("toy", step, B).prompt_ids)
    assert (sampler.applied, sampler.duplicates, sampler.step) == (3 * B, 0, 4)
    for ids in steps:
        for prompt_id in ids:
            info = coordinator.get_prompt("toy", prompt_id)
            assert info.updates == 1
            assert info.last_pass_rate == pytest.approx(min(int(prompt_id) % 5, G) / G)

    by_hand = cdas.Coordinator(cdas.MemoryStore())
    by_hand.put_run("toy", "cdas", {}, 0, [str(100 + i) for i in range(12)])
    harness.by_hand(by_hand, "toy", steps, B, G)
    assert_same_state(logical_state(coordinator, "toy"), logical_state(by_hand, "toy"))


def test_an_embedded_run_resumed_from_a_checkpoint_asks_its_step_again_and_ends_the_same(
    data: Path, tmp_path: Path
) -> None:
    """verl saves the dataloader (and so the sampler, with the run's snapshot) before it calls
    update: a job resumed from global_step_2 asks coordinator step 2 again (its prompts), then 3,
    and ends in the uninterrupted run's state."""
    keys = run_keys("resume", strategy="prioritized")
    first = harness.Rollouts()
    ppo = harness.trainer(harness.config(data, tmp_path / "a", *keys, "trainer.save_freq=2"), first)
    ppo.fit()
    assert (tmp_path / "a" / "global_step_2" / "data.pt").exists()
    whole = harness.sampler_of(ppo).client

    again = harness.Rollouts()
    resumed = harness.trainer(
        harness.config(
            data, tmp_path / "b", *keys,
            "trainer.resume_mode=resume_path",
            f"trainer.resume_from_path={tmp_path / 'a' / 'global_step_2'}",
            "trainer.total_training_steps=4",
        ),
        again,
    )  # fmt: skip
    resumed.fit()
    sampler = harness.sampler_of(resumed)
    assert harness.served(again, G) == harness.served(first, G)[1:]
    assert (sampler.applied, sampler.duplicates, sampler.step) == (2 * B, 0, 4)
    assert_same_state(logical_state(sampler.client, "resume"), logical_state(whole, "resume"))


def test_cdas_serve_on_redis_feeds_verl_and_a_resume_applies_nothing_twice(
    data: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    """A remote coordinator (REST, then gRPC for the resumed job) on Redis: the first job posts
    every group; the job resumed from global_step_2 asks steps 2 and 3 again, gets the same
    prompts, and every result is a duplicate: the run's history does not change."""
    redis_url = f"{redis_server.url}/12"
    store = cdas.RedisStore(redis_url)
    store.client.flushdb()
    library = cdas.Coordinator(store)
    with serve_process("--store", redis_url) as server:
        first = harness.Rollouts()
        keys = run_keys("served", strategy="cdas", retry_for=30)
        ppo = harness.trainer(
            harness.config(data, tmp_path / "a", *keys, f"+data.sampler.cdas.url={server.url}",
                           "trainer.save_freq=2"),
            first,
        )  # fmt: skip
        recording = harness.recorded(ppo)
        ppo.fit()
        assert harness.sampler_of(ppo).applied == 3 * B
        assert [name for name, _, _ in recording.calls] == [
            "next_batch", "advance", "advance", "report_results",
        ]  # fmt: skip
        steps = harness.served(first, G)
        for step, ids in enumerate(steps, start=1):
            assert ids == list(library.next_batch("served", step, B).prompt_ids)
        by_hand = cdas.Coordinator(cdas.MemoryStore())
        by_hand.put_run("served", "cdas", {}, 0, [str(100 + i) for i in range(12)])
        harness.by_hand(by_hand, "served", steps, B, G)
        assert_same_state(logical_state(library, "served"), logical_state(by_hand, "served"))
        before = (library.get_run("served").to_dict(), history(library, "served"))

        again = harness.Rollouts()
        resumed = harness.trainer(
            harness.config(
                data, tmp_path / "b", *keys,
                f"+data.sampler.cdas.url=grpc://{server.target}",
                "trainer.resume_mode=resume_path",
                f"trainer.resume_from_path={tmp_path / 'a' / 'global_step_2'}",
                "trainer.total_training_steps=4",
            ),
            again,
        )  # fmt: skip
        recording = harness.recorded(resumed)
        resumed.fit()
        sampler = harness.sampler_of(resumed)
        # verl's steps 3 and 4 are coordinator steps 2 and 3: step 2 asked again, 4 the last
        assert recording.calls == [
            ("next_batch", 2, 0),
            ("advance", 2, 0),
            ("report_results", 3, 0),
        ]
        assert harness.served(again, G) == steps[1:]
        assert (sampler.applied, sampler.duplicates) == (0, 2 * B)
        after = library.get_run("served").to_dict()
        assert after["counts"].pop("duplicates") == before[0]["counts"].pop("duplicates") + 2 * B
        assert (after, history(library, "served")) == before


def dapo_step(
    sampler: CoordinatorSampler, batches: Any, rollouts: harness.Rollouts, wanted: int
) -> list[DataProto]:
    """One DAPO step as verl's DAPO trainer runs it: draw a batch from the dataloader's iterator,
    generate, score, keep the groups whose rewards vary, and draw again until ``wanted`` groups
    are kept; every generated batch is reported (filtered groups included), the kept ones go to
    ``update``."""
    kept: list[DataProto] = []
    count = 0
    while count < wanted:
        batch = DataProto.from_single_dict(next(batches))
        batch.non_tensor_batch["uid"] = np.array(
            [f"{sampler.step}-{len(rollouts.calls)}-{i}" for i in range(len(batch))], dtype=object
        )
        batch = batch.repeat(repeat_times=G, interleave=True)
        batch = batch.union(
            rollouts.generate_sequences(batch.select(non_tensor_batch_keys=["extra_info", "uid"]))
        )
        batch.batch["token_level_scores"] = batch.batch["rm_scores"]
        sampler.report(batch)
        scores = batch.batch["token_level_scores"].sum(-1).reshape(-1, G)
        varied = (scores.std(dim=1) > 0).repeat_interleave(G)
        kept.append(batch[torch.nonzero(varied).flatten().tolist()])
        count += int(varied.sum()) // G
    sampler.update(DataProto.concat(kept))
    return kept


@pytest.mark.parametrize("strategy", ["dynamic", "random"])
def test_dapo_draws_inside_a_step_are_the_steps_rounds_and_every_group_is_posted(
    data: Path, tmp_path: Path, strategy: str
) -> None:
    """Further batches drawn from verl's dataloader inside one step (DAPO's group filter) come
    from rounds 1, 2, ... of that step (dynamic's rounds; the OpenRLHF refill rule for others);
    the filtered groups are posted too, each once."""
    rollouts = harness.Rollouts()
    ppo = harness.trainer(
        harness.config(data, tmp_path / "out", *run_keys("dapo", strategy=strategy)), rollouts
    )
    sampler = harness.sampler_of(ppo)
    coordinator = sampler.client
    assert isinstance(coordinator, cdas.Coordinator)
    recording = harness.recorded(ppo)
    batches = iter(ppo.train_dataloader)
    dapo_step(sampler, batches, rollouts, wanted=B)
    rounds = harness.served(rollouts, G)
    assert len(rounds) >= 2  # the toy rewards leave some groups without variance
    # every round posted by report(); update() ends the step and asks for step 2 in one call
    assert recording.calls[-1] == ("advance", 1, 0)
    assert [c for c in recording.calls if c[0] == "next_batch"] == [
        ("next_batch", 1, r) for r in range(len(rounds))
    ]
    for round_, ids in enumerate(rounds):
        assert ids == list(coordinator.next_batch("dapo", 1, B, round_).prompt_ids)
    generated = [p for ids in rounds for p in ids]
    assert sampler.applied == len(set(generated))
    assert sampler.duplicates == 0
    assert all(coordinator.get_prompt("dapo", p).updates == 1 for p in generated)
    assert any(
        int(p) % 5 in (0, 4) for p in generated
    )  # a filtered (zero-variance) group was posted
    assert sampler.step == 2
    dapo_step(sampler, batches, rollouts, wanted=1)
    assert harness.served(rollouts, G)[len(rounds)] == list(
        coordinator.next_batch("dapo", 2, B).prompt_ids
    )
    assert ("next_batch", 2, 0) not in recording.calls  # round 0 came with the advance


def test_a_step_that_draws_past_max_rounds_is_refused_naming_the_setting(
    data: Path, tmp_path: Path
) -> None:
    ppo = harness.trainer(
        harness.config(data, tmp_path / "out", *run_keys("cap", strategy="random", max_rounds=2)),
        harness.Rollouts(),
    )
    batches = iter(ppo.train_dataloader)
    next(batches), next(batches)
    with pytest.raises(RoundsExhaustedError, match=r"data\.sampler\.cdas\.max_rounds is 2"):
        next(batches)


def test_verl_settings_the_sampler_cannot_work_with_are_refused_at_start(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(UnsupportedSetupError, match=r"data\.dataloader_num_workers is 2"):
        harness.trainer(
            harness.config(data, out, *run_keys("x"), "data.dataloader_num_workers=2"),
            harness.Rollouts(),
        )
    with pytest.raises(SettingsError, match=r"data\.sampler\.cdas\.run"):
        harness.trainer(harness.config(data, out), harness.Rollouts())
    with pytest.raises(SettingsError, match="unknown strategy"):
        harness.trainer(
            harness.config(data, out, *run_keys("x", strategy="nope")), harness.Rollouts()
        )
    with pytest.raises(SettingsError, match=r"id_key 'prompt' must start with one of"):
        harness.trainer(
            harness.config(data, out, *run_keys("x", id_key="prompt")), harness.Rollouts()
        )
    with pytest.raises(UnsupportedSetupError, match="between 1 and the dataset's 12"):
        harness.trainer(
            harness.config(data, out, *run_keys("x"), "data.train_batch_size=16"),
            harness.Rollouts(),
        )


def test_verls_last_step_is_read_from_the_config_the_sampler_belongs_to() -> None:
    """``trainer.total_training_steps``, capped by the passes ``trainer.total_epochs`` allows,
    as ``RayPPOTrainer`` stops; a data config on its own says nothing (no ``advance``)."""

    def last(steps: int | None, epochs: int | None) -> int | None:
        whole = OmegaConf.create(
            {"data": {}, "trainer": {"total_training_steps": steps, "total_epochs": epochs}}
        )
        return _total_steps(whole.data, 3)

    assert (last(None, 2), last(4, 2), last(10, 2), last(4, None), last(None, None)) == (
        6, 4, 6, 4, None,
    )  # fmt: skip
    assert _total_steps(OmegaConf.create({"train_batch_size": 4}), 3) is None


def test_a_resume_without_verls_step_in_the_state_posts_without_advance(
    data: Path, tmp_path: Path
) -> None:
    """A sampler state saved before it held verl's global step: the sampler cannot tell verl's
    last step, so every step posts with report_results and asks with next_batch."""
    ppo = harness.trainer(
        harness.config(data, tmp_path / "out", *run_keys("old")), harness.Rollouts()
    )
    sampler = harness.sampler_of(ppo)
    state = sampler.state_dict()
    assert state["global_step"] == 1
    del state["global_step"]
    sampler.load_state_dict(state)
    assert sampler.global_step is None
    recording = harness.recorded(ppo)
    ppo.fit()
    assert [name for name, _, _ in recording.calls] == ["next_batch", "report_results"] * 3


def test_a_checkpoint_of_another_run_is_refused(data: Path, tmp_path: Path) -> None:
    ppo = harness.trainer(
        harness.config(data, tmp_path / "out", *run_keys("mine")), harness.Rollouts()
    )
    state = harness.sampler_of(ppo).state_dict()
    other = harness.trainer(
        harness.config(data, tmp_path / "out", *run_keys("other")), harness.Rollouts()
    )
    with pytest.raises(SamplerStateError, match="run 'mine'"):
        harness.sampler_of(other).load_state_dict(state)
