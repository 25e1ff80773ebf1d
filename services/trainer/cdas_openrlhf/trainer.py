"""``CoordinatorPPOTrainer``: OpenRLHF's ``PPOTrainer`` with the coordinator choosing its prompts.

The subclass changes three things and leaves ``fit``, generation, rewards, dynamic filtering, PPO
and checkpointing to OpenRLHF:

1. while OpenRLHF builds its datasets, ``PromptDataset`` also records each row's prompt id
   (``cdas.client.prompt_ids``: the id column, else a content hash), since ``PromptDataset``
   keeps only prompt, label, image and datasource;
2. the run is registered with those ids (``put_run`` is idempotent: a restarted trainer finds its
   run; another prompt set under the same run id is refused), and the prompts dataloader becomes a
   ``CoordinatorPromptLoader``;
3. the samples generator becomes a ``CoordinatorSamplesGenerator``, which posts each step's
   groups.

Under Ray, ``PPOTrainer`` is an actor class; the subclass derives from the class inside it and the
launcher wraps the subclass with ``ray.remote`` again. The coordinator settings come from the
environment (``CoordinatorSettings.from_env``), which the launcher fills.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from openrlhf.trainer import ppo_trainer as upstream

from cdas.client.prompt_ids import prompt_ids
from cdas_openrlhf.generator import CoordinatorSamplesGenerator
from cdas_openrlhf.loader import CoordinatorPromptLoader
from cdas_openrlhf.settings import CoordinatorSettings
from cdas_openrlhf.version import check_openrlhf_version

log = logging.getLogger("cdas_openrlhf")


class UnsupportedModeError(ValueError):
    """An OpenRLHF mode the integration does not drive (the message names the flag)."""


def unwrap_actor_class(cls: Any) -> Any:
    """The plain Python class inside a ``@ray.remote`` actor class (or ``cls`` itself)."""
    metadata = getattr(cls, "__ray_metadata__", None)
    if metadata is not None:
        cls = metadata.modified_class
    return getattr(cls, "__ray_actor_class__", cls)


def check_args(args: Any) -> None:
    """Refuse the OpenRLHF modes whose prompt flow the loader does not map to coordinator steps."""
    if getattr(args.train, "async_enable", False):
        raise UnsupportedModeError(
            "--train.async_enable generates ahead of training, which cdas-openrlhf does not map "
            "to coordinator steps yet; train synchronously (the default)"
        )
    generate = getattr(args.rollout, "vllm_generate_batch_size", None)
    if generate not in (None, args.rollout.batch_size):
        raise UnsupportedModeError(
            f"--rollout.vllm_generate_batch_size {generate} differs from --rollout.batch_size "
            f"{args.rollout.batch_size}; the coordinator serves one batch of the rollout batch "
            "size per step"
        )


@contextmanager
def _recording_prompt_ids(id_key: str) -> Iterator[None]:
    """While OpenRLHF builds its datasets, give each ``PromptDataset`` its rows' prompt ids."""
    original = upstream.PromptDataset

    class RecordingPromptDataset(original):  # type: ignore[misc,valid-type]
        def __init__(self, dataset: Any, tokenizer: Any, strategy: Any, **kwargs: Any) -> None:
            super().__init__(dataset, tokenizer, strategy, **kwargs)
            data = strategy.args.data
            self.prompt_ids = prompt_ids(
                dataset,
                id_key,
                getattr(data, "input_key", "input"),
                getattr(data, "label_key", None),
                getattr(dataset, "column_names", None),
            )

    upstream.PromptDataset = RecordingPromptDataset
    try:
        yield
    finally:
        upstream.PromptDataset = original


class CoordinatorPPOTrainer(unwrap_actor_class(upstream.PPOTrainer)):  # type: ignore[misc]
    prompts_dataloader: Any  # OpenRLHF's dataloader until __init__ swaps in the loader

    def __init__(
        self,
        pretrain: str,
        strategy: Any,
        actor_model_group: Any,
        critic_model_group: Any,
        reward_model_group: Any,
        reference_model_group: Any,
        vllm_engines: Any,
        **generate_kwargs: Any,
    ) -> None:
        check_openrlhf_version()
        args = strategy.args
        check_args(args)
        self.coordinator = settings = CoordinatorSettings.from_env()
        with _recording_prompt_ids(settings.id_key):
            super().__init__(
                pretrain,
                strategy,
                actor_model_group,
                critic_model_group,
                reward_model_group,
                reference_model_group,
                vllm_engines,
                **generate_kwargs,
            )
        dataset: Any = self.prompts_dataloader.dataset  # a RecordingPromptDataset
        client = settings.client()
        run = client.put_run(
            settings.run, settings.strategy, settings.params, settings.seed, dataset.prompt_ids
        )
        log.info(
            "coordinator %s: run %s (%s, %d prompts, %s)",
            settings.url,
            run.run_id,
            run.strategy,
            run.size,
            "created" if run.created else f"resumed after step {run.step}",
        )
        loader = CoordinatorPromptLoader(
            client,
            settings.run,
            dataset,
            dataset.prompt_ids,
            args.rollout.batch_size,
            max_rounds=settings.max_rounds,
            steps_per_episode=settings.steps_per_episode,
        )
        self.prompts_dataloader = loader
        self.samples_generator = CoordinatorSamplesGenerator(
            loader=loader,
            strategy=strategy,
            eval_dataloader=self.eval_dataloader,
            tokenizer=self.tokenizer,
            vllm_engines=self.vllm_engines,
        )
        # OpenRLHF's optimizer-step count (for the LR schedule), from the loader's episode length
        self.max_steps = (
            len(loader)
            * args.rollout.n_samples_per_prompt
            // args.train.batch_size
            * args.train.num_episodes
            * args.train.max_epochs
        )
