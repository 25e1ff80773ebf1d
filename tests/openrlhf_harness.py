"""What stands in for OpenRLHF's Ray actors in the CPU tests: the vLLM engines and the model groups.

With ``ray`` stubbed (``tests.gpu_stubs``), OpenRLHF's ``train()`` would build its GPU actors in
this process; the tests hand it these instead, through the two names ``train_ppo_ray`` imports
(``create_vllm_engines``, ``RayActorGroup``). Everything between them is OpenRLHF's own code:
flag parsing, dataset loading and chat templates, ``PPOTrainer.fit``, the samples generator with
its dynamic filtering, experience making and GRPO's group-normalised advantages, checkpoint states.

``ScriptedEngine`` answers each prompt G times; how many of the G answers are right is fixed per
prompt by a hash of its text (so some groups are all right, some all wrong, some mixed), the right
ones say ``\\boxed{<label>}``, and the rewards come from the reward file OpenRLHF was given
(``--reward.remote_url``), loaded the way OpenRLHF's executor loads it: real math-verify grades.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

WRONG = "\\boxed{987654321}"


def right_answers(prompt: str, group_size: int) -> int:
    """How many of a prompt's G answers the engine gets right (0..G, by a hash of the text)."""
    return int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % (group_size + 1)


def _load_reward_func(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("reward_func", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reward_func


class ScriptedEngine:
    """One 'vLLM engine': ``generate_responses`` as ``LLMRayActor`` has it (responses as its
    executor builds them)."""

    def __init__(self, reward_path: str) -> None:
        self.reward_func = _load_reward_func(reward_path)
        self.rewards: dict[str, list[list[float]]] = defaultdict(list)
        """Every group's rewards, by prompt text, in the order generated."""
        self.calls = 0

    def get_num_unfinished_requests(self) -> int:
        return 0

    def generate_responses(
        self,
        prompt: str,
        label: str,
        sampling_params: Any,
        max_length: int,
        hf_tokenizer: Any,
        num_samples: int = 1,
        images: Any = None,
    ) -> list[dict[str, Any]]:
        self.calls += 1
        k = right_answers(prompt, num_samples)
        prompt_ids = hf_tokenizer(prompt, add_special_tokens=False)["input_ids"]
        out, rewards = [], []
        for i in range(num_samples):
            text = f" The answer is \\boxed{{{label}}}" if i < k else f" The answer is {WRONG}"
            action = hf_tokenizer(text, add_special_tokens=False)["input_ids"]
            tokens = prompt_ids + action
            query = hf_tokenizer.decode(tokens, skip_special_tokens=False)
            info = self.reward_func([query], [prompt], [label])
            rewards.append(float(info["scores"][0]))
            out.append(
                {
                    "prompt": prompt,
                    "label": label,
                    "images": images,
                    "mm_train_inputs": None,
                    "observation_tokens": tokens,
                    "action_ranges": [(len(prompt_ids), len(tokens))],
                    "rollout_log_probs": None,
                    "truncated": False,
                    "reward": info["rewards"],
                    "scores": info["scores"],
                    "extra_logs": info.get("extra_logs", {}),
                }
            )
        self.rewards[prompt].append(rewards)
        return out


@dataclass
class Recorder:
    """What the model groups were asked to do, across one launch."""

    engines: list[ScriptedEngine] = field(default_factory=list)
    trained: list[list[str]] = field(default_factory=list)
    """Per training step, the prompt text of every sample the PPO update received."""
    advantages: list[list[float]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    on_fit: Any = None
    """Called with the step number (1-based) after each PPO update: the tests' fault injection."""


RECORDER = Recorder()
CHECKPOINT_FILE = "cdas_test_states.json"


class StandInGroup:
    """``RayActorGroup``'s methods, for the policy (and any other) model group."""

    def __init__(
        self, num_nodes: int, num_gpus_per_node: int, ray_actor_type: Any, **_: Any
    ) -> None:
        self.kind = getattr(ray_actor_type, "__name__", str(ray_actor_type))
        self.ckpt_path: str | None = None

    def async_init_model_from_pretrained(
        self, strategy: Any, *args: Any, **kwargs: Any
    ) -> list[Any]:
        self.ckpt_path = strategy.args.ckpt.path
        return []

    def async_save_model(self) -> list[Any]:
        return []

    def async_run_method_batch(self, method_name: str, **kwargs: Any) -> list[Any]:
        if method_name == "forward":  # one actor's answer: each micro-batch's action log-probs
            return [[torch.zeros_like(mask, dtype=torch.float32) for mask in kwargs["action_mask"]]]
        if method_name == "append":
            experiences = kwargs["experience"]
            RECORDER.trained.append([p for e in experiences for p in e.prompts])
            RECORDER.advantages.append(
                [float(a) for e in experiences for a in e.advantages[:, 0].tolist()]
            )
            return [None]
        raise AssertionError(f"unexpected batched call {method_name}")

    def async_run_method(self, method_name: str, **kwargs: Any) -> list[Any]:
        if method_name == "fit":
            if RECORDER.on_fit is not None:
                RECORDER.on_fit(len(RECORDER.trained))
            return [{"policy_loss": 0.0}]
        if method_name == "save_checkpoint":
            states = kwargs.get("client_states") or {}
            RECORDER.checkpoints.append(json.loads(json.dumps(states, default=str)))
            assert self.ckpt_path is not None
            directory = Path(self.ckpt_path) / "_actor"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / CHECKPOINT_FILE).write_text(json.dumps(states))
            return [None]
        if method_name == "get_checkpoint_states":
            assert self.ckpt_path is not None
            return [json.loads((Path(self.ckpt_path) / "_actor" / CHECKPOINT_FILE).read_text())]
        if method_name in ("broadcast_to_vllm", "empty_cache", "reload_states", "offload_states"):
            return [None]
        raise AssertionError(f"unexpected call {method_name}")


def create_engines(
    num_engines: int, *args: Any, remote_rm_url: Any = None, **kwargs: Any
) -> list[Any]:
    """``create_vllm_engines``'s stand-in: scripted engines that grade with the reward file
    (``--reward.remote_url`` takes several endpoints; OpenRLHF loads the first ``.py`` one)."""
    from tests.gpu_stubs import LocalActor

    path = remote_rm_url[0] if isinstance(remote_rm_url, list) else remote_rm_url
    assert isinstance(path, str), remote_rm_url
    assert path.endswith(".py"), path
    assert os.path.exists(path), path
    engines = [ScriptedEngine(path) for _ in range(num_engines)]
    RECORDER.engines.extend(engines)
    return [LocalActor(engine) for engine in engines]
