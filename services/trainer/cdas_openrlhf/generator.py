"""OpenRLHF's samples generator, seeing every complete group and closing each step.

``SamplesGenerator._generate_vllm`` turns the G responses of one prompt into G experiences with G
consecutive ``_process_response_into_experience`` calls, and only then applies dynamic filtering.
Wrapping that method therefore sees every group whole, the groups the filter is about to drop
included, without touching OpenRLHF's generation or filtering code. ``generate_samples`` marks a
training step: groups are recorded only inside it (evaluation reuses ``_generate_vllm`` and is not
reported), and the loader's step ends when it returns.

A response's reward is its ``scores`` (what the dynamic filter judges), else its ``reward``; the
coordinator counts a rollout correct when it exceeds the run's threshold (default 0.5).
"""

from __future__ import annotations

from typing import Any

from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

from cdas_openrlhf.loader import CoordinatorPromptLoader


class MissingRewardError(RuntimeError):
    """A response came back without a reward: the trainer needs a reward function or model."""


def scalar(value: Any) -> float:
    """A reward as one float: OpenRLHF passes floats, one-element lists or tensors."""
    while isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"expected one reward per response, got {value!r}")
        value = value[0]
    if hasattr(value, "numel"):  # a torch tensor
        if value.numel() != 1:
            raise ValueError(f"expected one reward per response, got a tensor of {value.numel()}")
        return float(value.reshape(-1)[0].item())
    return float(value)


class CoordinatorSamplesGenerator(SamplesGenerator):  # type: ignore[misc]  # untyped upstream
    def __init__(self, *, loader: CoordinatorPromptLoader, **kwargs: Any) -> None:
        super().__init__(prompts_dataloader=loader, **kwargs)
        self.loader = loader
        self._training = False
        self._group_size = 0
        self._group: list[dict[str, Any]] = []

    def generate_samples(self, **generate_kwargs: Any) -> Any:
        self._training = True
        self._group_size = int(
            generate_kwargs.get("n_samples_per_prompt", self.args.rollout.n_samples_per_prompt)
        )
        try:
            out = super().generate_samples(**generate_kwargs)
        finally:
            self._training = False
        if self._group:
            raise RuntimeError(
                f"{len(self._group)} responses of an incomplete group of {self._group_size}"
            )
        self.loader.end_step()
        return out

    def _process_response_into_experience(self, response: Any, **generate_kwargs: Any) -> Any:
        if self._training:
            self._group.append(response)
            if len(self._group) == self._group_size:
                group, self._group = self._group, []
                self._record(group)
        return super()._process_response_into_experience(response, **generate_kwargs)

    def _record(self, group: list[dict[str, Any]]) -> None:
        prompt, label = group[0]["prompt"], group[0]["label"]
        if any(r["prompt"] != prompt or r["label"] != label for r in group):
            raise RuntimeError("a group's responses answer different prompts")
        rewards = []
        for response in group:
            value = response.get("scores")
            if value is None:
                value = response.get("reward")
            if value is None:
                raise MissingRewardError(
                    "a response has no reward: pass --reward.remote_url with a reward function "
                    "(cdas_openrlhf/reward.py grades math answers) or a reward model server"
                )
            rewards.append(scalar(value))
        self.loader.record_group(prompt, label, rewards)
