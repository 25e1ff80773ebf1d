"""Every setting of the benchmark, fixed before any strategy is compared, and the presets.

The task, the model, the warm start and GRPO are one frozen ``Settings``; a preset is a complete
``Settings`` and the command line can only choose a preset, the strategies, the seeds, the number of
steps, the device and where to write. Nothing here depends on the strategy being run: every
strategy of an experiment trains from the same warm start with the same settings, and only the
prompts the coordinator chooses differ.

How the defaults were chosen (docs/grpo.md says it again): the task's rungs and the warm start's
length were set so that, at the start of RL, the training prompts' pass rates (G samples at
temperature 1) split into roughly a quarter always solved, a third to a half never solved and the
rest in between, as MATH does for the paper's 7B model; GRPO's learning rate was set on pilot runs
of Random alone, so that the baseline learns. No setting was chosen by looking at another strategy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from cdas_grpo.model import ModelConfig
from cdas_grpo.task import Rung, parse_mix, parse_rungs


@dataclass(frozen=True)
class Settings:
    """One experiment's fixed settings (the ``cpu`` preset's values are the defaults)."""

    preset: str = "cpu"
    """the preset these settings come from"""
    rungs: str = "2x2,2x3,2x4,2x5,3x1,3x2,3x3,4x1,4x2,4x3"
    """difficulty levels, OPERANDSxDIGITS; the training and held-out sets hold them in equal
    shares"""
    train_prompts: int = 768
    """N, the fixed training set the coordinator samples from"""
    heldout_prompts: int = 512
    """held-out prompts, never trained on, same mix of rungs"""
    task_seed: int = 0
    """draws the training set, the held-out set and the warm start's data (>= 0)"""
    layers: int = 3
    """transformer blocks"""
    width: int = 96
    """model width (embedding size)"""
    heads: int = 4
    """attention heads"""
    warm_rungs: str = "2x2:12,2x3:12,2x4:12,2x5:12,3x1:2,3x2:2,3x3:2"
    """supervised warm start: the rungs it is taught, RUNG:WEIGHT (here two-operand sums, a
    ninth three-operand ones, no four-operand one)"""
    warm_noise: float = 0.08
    """supervised warm start: chance that an answer digit receiving a carry is wrong in its data
    (imperfect data: the model starts unsure where sums are hard)"""
    warm_steps: int = 600
    """supervised warm start: AdamW steps on fresh problems (never a training or held-out one)"""
    warm_batch: int = 128
    """supervised warm start: problems per step"""
    warm_lr: float = 3e-3
    """supervised warm start: peak learning rate (linear warm-up over 50 steps, linear decay)"""
    batch: int = 64
    """B, prompts per GRPO step (DAPO's dynamic sampling: informative groups per step)"""
    group: int = 8
    """G, rollouts per prompt"""
    steps: int = 100
    """GRPO steps per run"""
    lr: float = 1e-4
    """GRPO's learning rate (AdamW, gradient norm clipped at 1)"""
    lr_warmup: int = 10
    """GRPO steps over which the learning rate rises linearly to ``lr`` (then constant)"""
    minibatches: int = 4
    """optimizer steps per GRPO step, each on a quarter of the trained groups with PPO's clipped
    objective (the paper's setup: B x G = 8192 rollouts, train batch 2048)"""
    temperature: float = 1.0
    """sampling temperature of the rollouts (and of the pass rates the warm start is measured by)"""
    oversample: int = 3
    """DAPO's dynamic sampling: prompts per round, in multiples of B"""
    probe: int = 256
    """training prompts whose exact pass rate is tracked every step (memorisation against
    transfer: compare with the held-out accuracy)"""

    def __post_init__(self) -> None:
        parse_rungs(self.rungs)
        parse_mix(self.warm_rungs)
        for f in fields(self):
            value = getattr(self, f.name)
            positive = isinstance(value, int | float) and not isinstance(value, bool)
            if positive and f.name not in ("task_seed", "warm_noise") and value <= 0:
                raise ValueError(f"setting {f.name} = {value!r}: give a positive number")
        if not 0 <= self.warm_noise < 1:
            raise ValueError(f"setting warm_noise = {self.warm_noise}: give a share in [0, 1)")
        if self.task_seed < 0:
            raise ValueError(f"setting task_seed = {self.task_seed}: give 0 or more")
        if self.batch > self.train_prompts:
            raise ValueError(
                f"setting batch = {self.batch} is larger than train_prompts = {self.train_prompts}"
            )
        if self.width % self.heads:
            raise ValueError(f"setting width = {self.width} is not a multiple of heads")

    @property
    def rung_list(self) -> tuple[Rung, ...]:
        return parse_rungs(self.rungs)

    @property
    def model(self) -> ModelConfig:
        longest = max(r.answer_length() for r in (*self.rung_list, *parse_mix(self.warm_rungs)[0]))
        return ModelConfig(self.layers, self.width, self.heads, places=longest + 1)

    def warm_start_key(self) -> str:
        """A digest of what the warm start depends on: its file is reused only under it."""
        names = (
            "rungs", "train_prompts", "heldout_prompts", "task_seed", "layers", "width", "heads",
            "warm_rungs", "warm_noise", "warm_steps", "warm_batch", "warm_lr",
        )  # fmt: skip
        text = json.dumps({n: getattr(self, n) for n in names}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, Settings] = {
    "cpu": Settings(),
    # one H200: a wider, deeper policy and a paper-sized step (B = 256 prompts x G = 8)
    "gpu": Settings(
        preset="gpu",
        train_prompts=3072,
        heldout_prompts=1024,
        layers=6,
        width=256,
        heads=8,
        warm_steps=1500,
        warm_batch=256,
        batch=256,
        steps=110,
        probe=512,
    ),
    # the tests: seconds, not minutes
    "tiny": Settings(
        preset="tiny",
        rungs="2x2,2x3",
        warm_rungs="2x2,2x3",
        train_prompts=96,
        heldout_prompts=64,
        layers=2,
        width=64,
        heads=2,
        warm_steps=500,
        warm_batch=64,
        warm_noise=0.15,
        batch=32,
        group=8,
        steps=6,
        lr=1e-4,
        lr_warmup=2,
        minibatches=2,
        probe=16,
    ),
}
