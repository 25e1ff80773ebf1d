"""verl 0.7.1's own trainer on the CPU, with only the GPU parts stood in, for tests/test_verl_*.py.

The real code: Hydra's composition of verl's ``ppo_trainer`` config, ``RayPPOTrainer.__init__``
and
its ``_create_dataloader`` (``create_rl_dataset``, ``create_rl_sampler`` loading the sampler from
``data.sampler.class_path``, the ``StatefulDataLoader``), ``fit`` (the step loop, GRPO's advantage,
metrics, ``_save_checkpoint``/``_load_checkpoint`` with the dataloader's ``data.pt``, the
``sampler.update`` call). Stood in: ``ray`` (``tests.gpu_stubs``, plus every ``ray.*`` submodule
verl imports), the rollout engine (``generate_sequences``: fixed-length responses whose reward is
``reward(prompt id, rollout)``), the actor worker group (log-probs, the update, its weights'
checkpoint) and the weight sync (``checkpoint_manager``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

from tests import gpu_stubs
from tests.recording import CallLog

gpu_stubs.install()


class _RayStubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Any ``ray.*`` module the stand-in lacks, as a ``MagicMock`` module (verl imports a few at
    module level and never calls them on the paths the tests run)."""

    def find_spec(
        self, name: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name.split(".")[0] == "ray" and name not in sys.modules:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = MagicMock(name=spec.name)
        module.__spec__, module.__path__, module.__name__ = spec, [], spec.name
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


if not any(isinstance(f, _RayStubs) for f in sys.meta_path):
    sys.meta_path.insert(0, _RayStubs())
    _ray = sys.modules["ray"]
    for _name in ("actor", "exceptions", "runtime_context"):
        setattr(_ray, _name, MagicMock(name=f"ray.{_name}"))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
import verl  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo.ray_trainer import RayPPOTrainer  # noqa: E402
from verl.trainer.ppo.utils import Role  # noqa: E402

PROMPT_LEN, RESPONSE_LEN = 3, 2
SAMPLER = [
    "data.sampler.class_path=pkg://cdas_verl.sampler",
    "data.sampler.class_name=CoordinatorSampler",
]


def write_rows(path: Path, count: int) -> Path:
    """A verl parquet file of ``count`` math rows, ``extra_info.index`` = 100 + row (ids are not
    row numbers, so a test that mixes the two fails)."""
    rows = [
        {
            "data_source": "toy",
            "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
            "ability": "math",
            "reward_model": {"ground_truth": str(2 * i), "style": "rule"},
            "extra_info": {"index": 100 + i, "split": "train"},
        }
        for i in range(count)
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def reward(prompt_id: str, rollout: int) -> float:
    """A deterministic 0/1 reward: prompt p gets ``int(p) % 5`` of its rollouts right (some
    groups all wrong, some mixed, some, with G <= 4, all right)."""
    return 1.0 if rollout < int(prompt_id) % 5 else 0.0


def config(data: Path, out: Path, *overrides: str) -> DictConfig:
    """verl's own ``ppo_trainer`` config (Hydra), GRPO on the toy data, with ``overrides``."""
    folder = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    base = [
        f"data.train_files={data}",
        f"data.val_files={data}",
        "data.train_batch_size=4",
        "data.dataloader_num_workers=0",
        "data.filter_overlong_prompts=False",
        "data.shuffle=False",
        *SAMPLER,
        "actor_rollout_ref.rollout.n=4",
        "actor_rollout_ref.actor.use_kl_loss=False",
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_in_reward=False",
        "trainer.logger=[console]",
        "trainer.val_before_train=False",
        "trainer.test_freq=-1",
        "trainer.save_freq=-1",
        "trainer.balance_batch=False",
        "trainer.total_training_steps=3",
        f"trainer.default_local_dir={out}",
        "trainer.resume_mode=auto",
    ]
    with initialize_config_dir(config_dir=folder, version_base=None):
        return compose(config_name="ppo_trainer", overrides=[*base, *overrides])


class Rollouts:
    """The rollout engine: every response ``RESPONSE_LEN`` tokens, its reward on the last one.
    Records the prompt ids of each generation call."""

    def __init__(self, score: Callable[[str, int], float] = reward) -> None:
        self.score = score
        self.calls: list[list[str]] = []

    def generate_sequences(self, batch: DataProto) -> DataProto:
        ids = [str(info["index"]) for info in batch.non_tensor_batch["extra_info"]]
        uids = list(batch.non_tensor_batch["uid"]) if "uid" in batch.non_tensor_batch else None
        self.calls.append(ids)
        n = len(ids)
        rollout: dict[str, int] = {}
        scores = torch.zeros(n, RESPONSE_LEN)
        for row, prompt_id in enumerate(ids):
            key = uids[row] if uids is not None else f"{prompt_id}/{row}"
            k = rollout[key] = rollout.get(key, -1) + 1
            scores[row, -1] = self.score(prompt_id, k)
        prompts = torch.ones(n, PROMPT_LEN, dtype=torch.long)
        responses = torch.full((n, RESPONSE_LEN), 2, dtype=torch.long)
        out = DataProto.from_dict(
            tensors={
                "prompts": prompts,
                "responses": responses,
                "input_ids": torch.cat([prompts, responses], dim=1),
                "attention_mask": torch.ones(n, PROMPT_LEN + RESPONSE_LEN, dtype=torch.long),
                "position_ids": torch.arange(PROMPT_LEN + RESPONSE_LEN).repeat(n, 1),
                "rm_scores": scores,
            },
            non_tensors={"multi_modal_inputs": np.array([{} for _ in range(n)], dtype=object)},
            meta_info={"timing": {}},
        )
        return out

    def start_profile(self) -> None: ...

    def stop_profile(self) -> None: ...


class ActorGroup:
    """The actor worker group: zero log-probs, an update that reports no metrics, a checkpoint
    of nothing."""

    def compute_log_prob(self, batch: DataProto) -> DataProto:
        shape = batch.batch["responses"].shape
        return DataProto.from_dict(
            tensors={"old_log_probs": torch.zeros(shape), "entropys": torch.zeros(shape)}
        )

    def update_actor(self, batch: DataProto) -> DataProto:
        return DataProto(meta_info={"metrics": {}})

    def save_checkpoint(self, local_path: str, *args: Any, **kwargs: Any) -> None:
        Path(local_path).mkdir(parents=True, exist_ok=True)

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> None: ...


class WeightSync:
    def update_weights(self, step: int) -> None: ...

    def sleep_replicas(self) -> None: ...


class Pools:
    def get_n_gpus(self) -> int:
        return 1


def trainer(
    cfg: DictConfig, rollouts: Rollouts, cls: type[RayPPOTrainer] = RayPPOTrainer
) -> RayPPOTrainer:
    """verl's trainer as ``main_ppo``'s ``TaskRunner`` builds it (its own dataset, sampler and
    dataloader), with the stand-ins in place of the workers ``init_workers`` would start."""
    ppo = cls(
        config=cfg,
        tokenizer=None,
        role_worker_mapping={Role.ActorRollout: object},
        resource_pool_manager=Pools(),
        ray_worker_group_cls=None,
    )
    ppo.actor_rollout_wg = ActorGroup()
    ppo.async_rollout_manager = rollouts
    ppo.checkpoint_manager = WeightSync()
    return ppo


def recorded(ppo: RayPPOTrainer) -> CallLog:
    """The trainer's sampler, its client wrapped in a ``CallLog`` (not for a checkpointed
    embedded run: the snapshot in the sampler's state needs the library itself)."""
    sampler = sampler_of(ppo)
    recording = sampler.client = CallLog(sampler.client)
    return recording


def sampler_of(ppo: RayPPOTrainer) -> Any:
    return ppo.train_dataloader.sampler


def served(rollouts: Rollouts, group_size: int) -> list[list[str]]:
    """Each generation call's prompt ids, one per group (a call holds each ``group_size`` times)."""
    return [ids[::group_size] for ids in rollouts.calls]


def by_hand(
    client: Any,
    run: str,
    steps: Sequence[Sequence[str]],
    size: int,
    group_size: int,
    start: int = 1,
) -> None:
    """The same results posted by hand: step by step, ``next_batch`` then every group's rewards."""
    for step, expected in enumerate(steps, start=start):
        ids = list(client.next_batch(run, step, size).prompt_ids)
        assert ids == list(expected)
        results = [
            {"prompt_id": p, "rewards": [reward(p, k) for k in range(group_size)]} for p in ids
        ]
        client.report_results(run, step, results)
