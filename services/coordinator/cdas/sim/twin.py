"""The training twin: GRPO's data efficiency, at the level that matters for choosing prompts.

What prompt selection changes in an RL run is which groups carry a gradient, how much the model
learns from them, and what their rollouts cost. The twin models exactly that and nothing else.

World (drawn once per seed):
  - each training prompt x has a latent difficulty b(x) in logits. A share ``unsolvable`` is the
    hard tail, b ~ Normal(``hard``, ``spread``): never solved at the start, and solved later only
    if the model's ability comes near it and the prompt is trained on (with ``hard`` large, no
    amount of training solves them: wrong ground truth, beyond the model). A share ``solved`` has
    b = -inf (right from the first step), the rest b ~ Normal(0, ``spread``);
  - ``heldout`` benchmark prompts, never trained on, from the same mixture shifted by
    ``heldout_shift`` (benchmarks such as AIME are harder than MATH's training set);
  - a label per prompt, MATH-level style 1..5: the quintile of b(x) + Normal(0, ``label_noise``),
    with b clipped to +-3 ``spread`` (offline labels track difficulty, imperfectly), for the
    curriculum strategy.

Model: a global ability theta (starts at ``ability``), a prompt-specific skill u(x) (starts 0) and
the policy's confidence, a logit scale kappa (starts 1). A rollout of prompt x is correct with
probability

    p(x) = sigmoid(kappa * (theta + u(x) - b(x))),

and a step rolls out G answers per prompt: k(x) ~ Binomial(G, p(x)).

Two mechanisms push pass rates toward 0 and 1 as training goes on, and the twin keeps both, in
amounts the data decide (``cdas.sim.calibrate``):
  - prompt-specific learning (memorisation): u(x) grows on the prompts that are trained on, so
    they end up always solved, and Random's batches fill with solved prompts;
  - sharpening: RL for reasoning makes the policy confident early: its entropy collapses and its
    pass rates polarise on every prompt, trained on or not (Cui et al. 2025, "The Entropy Mechanism
    of Reinforcement Learning for Reasoning Language Models", arXiv 2505.22617; Yue et al. 2025,
    "Does Reinforcement Learning Really Incentivize Reasoning Capacity in LLMs Beyond the Base
    Model?", arXiv 2504.13837: RL narrows pass@k toward pass@1). Here kappa grows with the
    training signal the policy has received, ``kappa += sharpen * sum_{x in T} v(x) / B`` per step:
    the same quantity that moves theta, with no saturation, so a run that learns nothing does not
    sharpen either. A prompt with theta + u - b > 0 climbs toward always solved, one below falls
    toward never, without being trained on.

Learning is driven by each group's reward variance: GRPO's advantages are the rewards minus the
group mean, so a group whose G rewards are equal (all right or all wrong) teaches nothing. The
signal of a group is its normalized variance, v(x) = 4 k (G - k) / G^2 in [0, 1]. After a step
whose trained groups are T (all B groups; DAPO's dynamic sampling keeps B informative ones):

    theta += ``transfer`` * (``ceiling`` - theta) * sum_{x in T} v(x) / B      (transfer)
    u(x)  += ``specific`` * v(x)                                  for x in T   (prompt-specific)

The transfer is what reaches prompts never trained on; the factor (ceiling - theta) makes it
saturate, as RL on one dataset mostly elicits what the base model can already do (the paper's
Random run gains 19 points in 55 steps, then 0.9 in the next 55). Dividing by B, not by the
number of informative groups, is GRPO's batch mean: zero-variance groups dilute the step.

Held-out accuracy: the expected pass rate on the held-out prompts, mean
sigmoid(kappa (theta - b_h)) (u is 0 there: they were never trained on; sharpening reaches them).
It is exact, not sampled, so curves show the model and not benchmark noise.

Cost: a step's rollouts are counted, and a GPU-time proxy in token units: a right answer costs 1,
a wrong one ``wrong_length`` (failed reasoning runs longer, often to the length limit); generation
pays for every rollout, training ``train_cost`` per unit for the trained groups only.
``gpu_hours_per_unit`` scales units to GPU-hours so that Random's 110 steps cost the paper's
~304 GPU-hours (its Figure 2b).

The defaults are fitted by the calibration protocol (``cdas.sim.calibrate``) to the paper's Random
and Prioritized runs; every other strategy runs with them unchanged, as a prediction. Cost per step:
O(B) for the batch, O(H) for the held-out accuracy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

LEVELS = 5
"""Label levels (MATH's 1..5)."""


@dataclass(frozen=True)
class TwinParams:
    """Every parameter of the twin, with its default and what it stands for.

    The ones marked *fitted* come from ``cdas.sim.calibrate`` (the paper's Random and Prioritized
    runs); the others are priors stated here and left alone by the fit.
    """

    prompts: int = 12000
    """training prompts (the paper's MATH set)"""
    heldout: int = 4000
    """held-out benchmark prompts, never trained on"""
    group: int = 8
    """G, rollouts per prompt"""
    batch: int = 1024
    """B, prompts per training step"""
    spread: float = 2.0
    """prior: std of the latent difficulty of ordinary prompts, in logits"""
    unsolvable: float = 0.39272
    """fitted: share of prompts in the hard tail, never solved at the start"""
    hard: float = 6.28498
    """fitted: centre of the hard tail's difficulty, in logits (1e6: no training ever solves it)"""
    solved: float = 0.107274
    """fitted: share of prompts solved from the start"""
    ability: float = -0.636389
    """fitted: the initial ability theta_0, in logits"""
    ceiling: float = 1.83692
    """fitted: the ability that transfer approaches and never passes"""
    transfer: float = 0.255226
    """fitted: share of the remaining headroom (ceiling - theta) gained per unit of batch signal"""
    specific: float = 0.376352
    """fitted: logits of prompt-specific skill gained per unit of a group's signal"""
    heldout_shift: float = 1.05337
    """fitted: how much harder the held-out prompts are than the training ones, in logits"""
    sharpen: float = 0.0
    """fitted: growth of the policy's logit scale kappa per unit of batch signal (sharpening)"""
    label_noise: float = 1.0
    """prior: noise of the offline level labels against the latent difficulty, in logits"""
    wrong_length: float = 2.5
    """prior: tokens of a wrong answer over those of a right one (cost proxy)"""
    train_cost: float = 0.7
    """prior: GPU time of training on a rollout over that of generating it (cost proxy)"""
    gpu_hours_per_unit: float = 0.000116357
    """fitted: GPU-hours per cost unit (Random's 110 steps = 304 GPU-hours)"""

    def with_(self, **changes: Any) -> TwinParams:
        """A copy with ``changes``; an unknown name is an error naming it."""
        kinds = {f.name: type(getattr(self, f.name)) for f in fields(self)}
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in kinds:
                raise ValueError(f"twin parameter {name!r} does not exist; known: {sorted(kinds)}")
            if kinds[name] is int:
                if float(value) != int(value) or int(value) < 1:
                    raise ValueError(f"twin parameter {name} = {value!r}: give a whole number >= 1")
                value = int(value)
            elif not math.isfinite(float(value)):
                raise ValueError(f"twin parameter {name} = {value!r}: give a finite number")
            clean[name] = value
        return replace(self, **clean)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_params(cls: type[Any] = TwinParams) -> list[tuple[str, Any, str]]:
    """(name, default, explanation) for every field of the dataclass ``cls`` (the twin's
    parameters by default), from the docstring under each field."""
    import ast
    import inspect

    source = inspect.getsource(cls)
    tree = ast.parse(source).body[0]
    assert isinstance(tree, ast.ClassDef)
    docs: dict[str, str] = {}
    body = tree.body
    for pos, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            following = body[pos + 1] if pos + 1 < len(body) else None
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                docs[node.target.id] = str(following.value.value)
    defaults = cls()
    return [(f.name, getattr(defaults, f.name), docs.get(f.name, "")) for f in fields(cls)]


def _difficulties(rng: np.random.Generator, n: int, p: TwinParams) -> tuple[FloatArray, BoolArray]:
    """Latent difficulties of ``n`` prompts (the hard tail, the solved share and the rest) and
    which of them are in the hard tail. The draws are the same whatever ``hard`` is, so two
    worlds of one seed differ only where their parameters do."""
    b = rng.normal(0.0, p.spread, n)
    kind = rng.random(n)
    tail = kind < p.unsolvable
    b[tail] += p.hard
    b[kind >= 1.0 - p.solved] = -np.inf
    return b, tail


def _sigmoid(z: FloatArray) -> FloatArray:
    with np.errstate(over="ignore"):
        out: FloatArray = 1.0 / (1.0 + np.exp(-z))
    return out


@dataclass
class Twin:
    """One simulated training run's model and world; ``seed`` fixes both, and the rollouts."""

    params: TwinParams = field(default_factory=TwinParams)
    seed: int = 0
    theta: float = field(init=False)
    kappa: float = field(init=False)
    b: FloatArray = field(init=False, repr=False)
    tail: BoolArray = field(init=False, repr=False)
    """which training prompts are in the hard tail"""
    tail_heldout: BoolArray = field(init=False, repr=False)
    """which held-out prompts are in the hard tail"""
    b_heldout: FloatArray = field(init=False, repr=False)
    u: FloatArray = field(init=False, repr=False)
    labels: IntArray = field(init=False, repr=False)
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        p = self.params
        world = np.random.default_rng([self.seed, 0x7717])
        self.b, self.tail = _difficulties(world, p.prompts, p)
        b_heldout, self.tail_heldout = _difficulties(world, p.heldout, p)
        self.b_heldout = b_heldout + p.heldout_shift
        # the hard tail and the solved prompts are labelled as if at most 3 spreads out: hard or
        # easy, but mixed with the ordinary prompts there by the noise, as MATH's level 5 holds
        # both kinds
        reach = 3.0 * p.spread
        noisy = np.clip(self.b, -reach, reach) + world.normal(0.0, p.label_noise, p.prompts)
        edges = np.quantile(noisy, np.linspace(0, 1, LEVELS + 1)[1:-1])
        self.labels = (np.searchsorted(edges, noisy, side="right") + 1).astype(np.int64)
        self.u = np.zeros(p.prompts)
        self.theta = p.ability
        self.kappa = 1.0
        self.rng = np.random.default_rng([self.seed, 0x5EED])

    # ---------------------------------------------------------------- the model
    def pass_probability(self, idx: IntArray) -> FloatArray:
        """p(x) = sigmoid(kappa (theta + u(x) - b(x))) for the prompts ``idx``."""
        return _sigmoid(self.kappa * (self.theta + self.u[idx] - self.b[idx]))

    def rollout(self, idx: IntArray) -> IntArray:
        """Correct answers out of G for each prompt of ``idx``: k ~ Binomial(G, p(x))."""
        k: IntArray = self.rng.binomial(self.params.group, self.pass_probability(idx))
        return k.astype(np.int64)

    def signal(self, k: IntArray) -> FloatArray:
        """A group's normalized reward variance, 4 k (G - k) / G^2: 0 for all-equal rewards."""
        g = self.params.group
        out: FloatArray = 4.0 * k * (g - k) / (g * g)
        return out

    def learn(self, idx: IntArray, k: IntArray) -> float:
        """Train on the groups ``idx`` with ``k`` correct; returns the step's signal sum / B."""
        p = self.params
        v = self.signal(k)
        strength = float(v.sum()) / p.batch
        self.theta += p.transfer * (p.ceiling - self.theta) * strength
        self.kappa += p.sharpen * strength
        np.add.at(self.u, idx, p.specific * v)
        return strength

    def accuracy(self) -> float:
        """Held-out accuracy: mean sigmoid(kappa (theta - b_h)) over the held-out prompts, exact."""
        return float(np.mean(_sigmoid(self.kappa * (self.theta - self.b_heldout))))

    def entropy(self, idx: IntArray | None = None) -> float:
        """Mean binary entropy (bits) of one rollout's correctness, over ``idx`` (default: every
        training prompt): what sharpening lowers everywhere, memorisation only where trained."""
        p = self.pass_probability(np.arange(self.b.size) if idx is None else idx)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
        return float(np.mean(np.nan_to_num(h)))

    def cost_units(self, k: IntArray) -> float:
        """Token units of the groups with ``k`` correct: 1 per right answer, ``wrong_length``
        per wrong one."""
        wrong = self.params.group * k.size - int(k.sum())
        return float(k.sum()) + self.params.wrong_length * wrong
